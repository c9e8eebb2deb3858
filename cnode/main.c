/*
 * cactor-node: a C node that joins an Erlang cluster and hosts C actors.
 *
 *   cactor-node --sname NAME | --name NAME@HOST [--cookie C] [--threads N]
 *               [--listen ADDR] [--port P] [--batch-us US] [--spin-us US]
 *               [--load PLUGIN.so ...]
 *               [--probe] [--verbose]
 *
 * It runs until SIGTERM or SIGINT, or until Erlang calls init:stop/0,1
 * (a clean stop, as on SIGTERM) or erlang:halt/0,1 (at once) on it. Built
 * in, under a root supervisor:
 *   net_kernel, rex and spawn requests: net_adm:ping, rpc:call,
 *          erpc:call, the casts, spawn/4 and erl_call into C functions
 *          (ca_rpc_register; built in: erlang:node/0, erlang:whereis/1,
 *          erlang:registered/0, erlang:processes/0, erlang:is_process_alive/1,
 *          erlang:process_info/1,2, cactor:info/0; in this program only:
 *          init:stop/0,1, erlang:halt/0,1);
 *   plugins (--load): their actors and rpc functions;
 *   echo   {Pid, Term} -> Pid ! {echo, Term}; {cast, Term} counts;
 *          {report, Pid} -> Pid ! {count, N} (and resets);
 *          gen_server:call(echo, Req) -> Req.
 *   cactor_probe (--probe, for tests)
 *          {monitor, Pid, To} -> monitors Pid, To gets {down, Pid, Reason};
 *          {monitor_name, Name, Node, To} -> monitors {Name, Node} (To gets
 *          {monitoring_name, Name, Node, ok | Error}), then {down, {Name,
 *          Node}, Reason};
 *          {link, Pid, To} -> links (trapping), To gets {exit, Pid, Reason};
 *          {monitor_node, Node, To} -> To gets {nodeup|nodedown, Node};
 *          {whereis, Name, To} -> To gets {whereis, Name, Pid | undefined}.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "cactor.h"
#include "services.h"

#define MAX_PLUGINS 64

typedef struct cli {
    const char *sname, *name, *cookie, *listen;
    unsigned threads;
    unsigned port;
    unsigned batch_us;
    int batch_set;
    unsigned spin_us;
    int spin_set;
    const char *plugins[MAX_PLUGINS];
    int nplugins;
    int probe;
    int verbose;
} cli;

static void usage(FILE *f)
{
    fprintf(f, "usage: cactor-node (--sname NAME | --name NAME@HOST) [options]\n"
               "  --sname NAME      short node name: NAME@ this host's short name\n"
               "  --name NAME@HOST  long node name\n"
               "  --cookie COOKIE   the cluster's cookie (default: ~/.erlang.cookie, as erl)\n"
               "  --threads N       scheduler threads (default: one per core)\n"
               "  --listen ADDR     address to listen on, IPv4 or IPv6 (default 127.0.0.1)\n"
               "  --port PORT       port to listen on (default 0: any, EPMD tells peers)\n"
               "  --batch-us US     wait up to US microseconds for dense input to pile up\n"
               "                    before reading it (default 100; 0: read at once)\n"
               "  --spin-us US      a scheduler out of work polls this long before it sleeps\n"
               "                    (default 20, at most 1000; 0: sleep at once, least CPU)\n"
               "  --load PLUGIN.so  load a plugin: its actors and C functions (repeatable)\n"
               "  --probe           start the test probe actor cactor_probe\n"
               "  --verbose         log at debug level\n"
               "  --version         print the version and exit\n"
               "EPMD: 127.0.0.1, port $ERL_EPMD_PORT (default 4369).\n"
               "Stops on SIGTERM or SIGINT, or when Erlang calls init:stop/0,1 on it\n"
               "(exit status 0, or the one given); erlang:halt/0,1 ends it at once.\n");
}

static int bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "cactor-node: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    return 2;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v > max || s[0] == '-')
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int takes_value(const char *o)
{
    static const char *const opts[] = {"--sname",  "--name",     "--cookie",  "--threads", "--port",
                                       "--listen", "--batch-us", "--spin-us", "--load"};
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
        if (!strcmp(o, opts[k]))
            return 1;
    return 0;
}

/* 0, or the exit status for a usage error. */
static int parse(int argc, char **argv, cli *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(o, "--probe")) {
            c->probe = 1;
            continue;
        }
        if (!strcmp(o, "--verbose")) {
            c->verbose = 1;
            continue;
        }
        if (!strcmp(o, "--version")) {
            printf("cactor-node %d.%d.%d (libuv %s)\n", CA_VERSION_MAJOR, CA_VERSION_MINOR,
                   CA_VERSION_PATCH, uv_version_string());
            exit(0);
        }
        if (!takes_value(o))
            return bad(strncmp(o, "--", 2) ? "unexpected argument '%s'" : "unknown option '%s'", o);
        if (i + 1 >= argc)
            return bad("%s needs a value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "--sname")) {
            if (!*v || strchr(v, '@'))
                return bad("--sname takes a name without '@', not '%s'", v);
            c->sname = v;
        } else if (!strcmp(o, "--name")) {
            const char *at = strchr(v, '@');
            if (!at || at == v || !at[1] || strchr(at + 1, '@'))
                return bad("--name takes NAME@HOST, not '%s'", v);
            c->name = v;
        } else if (!strcmp(o, "--cookie")) {
            if (!*v)
                return bad("--cookie must not be empty%s", "");
            c->cookie = v;
        } else if (!strcmp(o, "--threads")) {
            if (parse_uint(v, 1024, &c->threads) || !c->threads)
                return bad("--threads takes 1..1024, not '%s'", v);
        } else if (!strcmp(o, "--port")) {
            if (parse_uint(v, 65535, &c->port))
                return bad("--port takes 0..65535, not '%s'", v);
        } else if (!strcmp(o, "--batch-us")) {
            if (parse_uint(v, 1000000, &c->batch_us))
                return bad("--batch-us takes 0..1000000, not '%s'", v);
            c->batch_set = 1;
        } else if (!strcmp(o, "--spin-us")) {
            if (parse_uint(v, 1000, &c->spin_us))
                return bad("--spin-us takes 0..1000, not '%s'", v);
            c->spin_set = 1;
        } else if (!strcmp(o, "--listen")) {
            c->listen = v;
        } else { /* --load */
            if (c->nplugins == MAX_PLUGINS)
                return bad("too many --load options (at most 64)%s", "");
            c->plugins[c->nplugins++] = v;
        }
    }
    if (!c->sname == !c->name)
        return bad("give exactly one of --sname and --name%s", "");
    return 0;
}

/* ---- echo ---- */

typedef struct echo_state {
    unsigned long count;
} echo_state;

static int echo_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    echo_state *st = calloc(1, sizeof *st);
    if (!st)
        return CA_ENOMEM;
    *state = st;
    return 0;
}

/* One look at the message's shape picks the branch, so that each message
 * is matched against one pattern, not tried against all of them: echo is
 * on the path of every benchmark message. */
static int echo_handle(ca_actor *self, void *state, ca_msg *m)
{
    echo_state *st = state;
    ca_call_from from;
    ca_pid pid;
    const char *t;
    size_t len, tl;
    int idx = 0, ver, arity, type, size;
    char atom[MAXATOMLEN_UTF8];
    const char *b = ca_msg_data(m, &len);
    if (!b || ei_decode_version(b, &idx, &ver) || ei_decode_tuple_header(b, &idx, &arity) ||
        ei_get_type(b, &idx, &type, &size))
        return 0; /* anything else is ignored */
    if (type == ERL_PID_EXT || type == ERL_NEW_PID_EXT) {
        if (arity == 2 && ca_match(m, "{~p, ~t}", &pid, &t, &tl) == 0) {
            int rc = ca_sendf(self, pid, "{echo, ~t}", t, tl);
            if (rc && rc != CA_ESRCH)
                ca_log(ca_actor_rt(self), CA_LOG_WARNING, "echo: reply failed: %s",
                       ca_strerror(rc));
        }
        return 0;
    }
    /* UTF-8 as it comes (ei_decode_atom would convert it to Latin-1) */
    if (ei_decode_atom_as(b, &idx, atom, sizeof atom, ERLANG_UTF8, NULL, NULL))
        return 0;
    if (arity == 3 && strcmp(atom, "$gen_call") == 0) {
        if (ca_gen_call_match(m, &from, &t, &tl) == 0)
            ca_gen_replyf(self, &from, "~t", t, tl);
    } else if (arity == 2 && strcmp(atom, "cast") == 0) {
        st->count++;
    } else if (arity == 2 && strcmp(atom, "report") == 0) {
        if (ca_match(m, "{report, ~p}", &pid) == 0)
            ca_sendf(self, pid, "{count, ~u}", st->count);
        st->count = 0;
    } else if (arity == 3 && strcmp(atom, "system") == 0) {
        /* sys:get_state gives the casts counted since the last report */
        ei_x_buff x;
        if (ei_x_new(&x) == 0 && ca_fmt(&x, "#{count => ~u}", st->count) == 0)
            ca__sys_plain(self, m, "echo", x.buff, (size_t)x.index);
        ei_x_free(&x);
    }
    return 0;
}

static void echo_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    (void)self;
    (void)reason;
    (void)len;
    free(state);
}

static const ca_behaviour echo_behaviour = {"echo", echo_init, echo_handle, echo_terminate};

/* ---- probe (tests) ---- */

typedef struct probe_state {
    ca_pid to;
} probe_state;

static int probe_init(ca_actor *self, void *arg, void **state)
{
    (void)arg;
    ca_trap_exit(self, 1);
    probe_state *st = calloc(1, sizeof *st);
    *state = st;
    return st ? 0 : CA_ENOMEM;
}

static int probe_handle(ca_actor *self, void *state, ca_msg *m)
{
    probe_state *st = state;
    ca_pid pid, to;
    const char *r, *why;
    size_t rl, wl;
    char node[CA_MAXATOM], name[CA_MAXATOM];
    char text[256];
    size_t tl;
    const char *t = ca_msg_data(m, &tl);
    if (t && ca_term_print(t, tl, text, sizeof text) >= 0)
        ca_log(ca_actor_rt(self), CA_LOG_DEBUG, "probe: got %s", text);
    if (ca_match(m, "{monitor, ~p, ~p}", &pid, &to) == 0) {
        st->to = to;
        ca_monitor(self, pid, NULL);
        ca_sendf(self, to, "{monitoring, ~p}", pid);
    } else if (ca_match(m, "{monitor_name, ~a, ~a, ~p}", name, node, &to) == 0) {
        st->to = to;
        int rc = ca_monitor_name(self, name, node, NULL);
        ca_sendf(self, to, "{monitoring_name, ~a, ~a, ~a}", name, node, ca_errname(rc));
    } else if (ca_match(m, "{link, ~p, ~p}", &pid, &to) == 0) {
        st->to = to;
        ca_link(self, pid);
        ca_sendf(self, to, "{linked, ~p}", pid);
    } else if (ca_match(m, "{whereis, ~a, ~p}", node, &to) == 0) {
        if (ca_whereis(ca_actor_rt(self), node, &pid) == 0)
            ca_sendf(self, to, "{whereis, ~a, ~p}", node, pid);
        else
            ca_sendf(self, to, "{whereis, ~a, undefined}", node);
    } else if (ca_match(m, "{monitor_node, ~a, ~p}", node, &to) == 0) {
        st->to = to;
        ca_monitor_node(self, node, 1);
        ca_sendf(self, to, "{monitoring_node, ~a}", node);
    } else if (ca_match(m, "{'DOWN', _, process, ~t, ~t}", &r, &rl, &why, &wl) == 0) {
        int rc = ca_sendf(self, st->to, "{down, ~t, ~t}", r, rl, why, wl);
        if (rc)
            ca_log(ca_actor_rt(self), CA_LOG_WARNING, "probe: cannot report: %s", ca_strerror(rc));
    } else if (ca_match(m, "{'EXIT', ~t, ~t}", &r, &rl, &why, &wl) == 0) {
        int rc = ca_sendf(self, st->to, "{exit, ~t, ~t}", r, rl, why, wl);
        if (rc)
            ca_log(ca_actor_rt(self), CA_LOG_WARNING, "probe: cannot report: %s", ca_strerror(rc));
    } else if (ca_match(m, "{nodeup, _}") == 0 || ca_match(m, "{nodedown, _}") == 0) {
        size_t tl;
        const char *t = ca_msg_data(m, &tl);
        ca_send(self, st->to, t, tl);
    }
    return 0;
}

static const ca_behaviour probe_behaviour = {"cactor_probe", probe_init, probe_handle,
                                             echo_terminate};

/* cactor_probe:positive(): a function that breaks the rule and returns a
 * positive number; its caller must get an error, the node go on. */
static int fn_positive(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *r)
{
    (void)ctx, (void)caller, (void)args, (void)len, (void)r;
    return 1;
}

/* ---- main ---- */

static ca_log_level log_level(const cli *c)
{
    return c->verbose ? CA_LOG_DEBUG : CA_LOG_INFO;
}

/* ---- init:stop and erlang:halt from Erlang ---- */

/* The exit status init:stop asked for; -1 while nobody has. */
static atomic_int stop_status = -1;

/* [] is 0; [N] an exit status (the low 8 bits, as the OS keeps them); a
 * string is a slogan, as Erlang's halt takes it: printed, status 1. */
static int stop_status_of(const char *args, size_t len, int *status)
{
    long n;
    char slogan[256];
    if (ca_match_term(args, len, "[]") == 0) {
        *status = 0;
    } else if (ca_match_term(args, len, "[~i]", &n) == 0 && n >= 0) {
        *status = (int)(n & 0xff);
    } else if (ca_match_term(args, len, "[~s]", slogan, sizeof slogan) == 0) {
        fprintf(stderr, "cactor-node: stopped: %s\n", slogan);
        *status = 1;
    } else {
        return CA_EINVAL;
    }
    return 0;
}

/* init:stop/0,1: answers ok, then main stops the node as on SIGTERM. */
static int fn_init_stop(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *r)
{
    int status, expect = -1;
    (void)ctx;
    (void)caller;
    int rc = stop_status_of(args, len, &status);
    if (rc)
        return rc;
    atomic_compare_exchange_strong(&stop_status, &expect, status); /* the first one wins */
    return ca_fmt(r, "ok");
}

/* erlang:halt/0,1: at once, without stopping actors or answering, as
 * Erlang's does (its callers see the node go down); halt(abort) aborts,
 * for a core dump. */
static int fn_halt(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *r)
{
    int status;
    (void)ctx;
    (void)caller;
    (void)r;
    if (ca_match_term(args, len, "[abort]") == 0)
        abort();
    int rc = stop_status_of(args, len, &status);
    if (rc)
        return rc;
    fflush(stdout);
    fflush(stderr);
    _exit(status);
}

static int register_stop(ca_rt *rt)
{
    int rc;
    if ((rc = ca_rpc_register(rt, "init", "stop", 0, fn_init_stop, NULL)) ||
        (rc = ca_rpc_register(rt, "init", "stop", 1, fn_init_stop, NULL)) ||
        (rc = ca_rpc_register(rt, "erlang", "halt", 0, fn_halt, NULL)))
        return rc;
    return ca_rpc_register(rt, "erlang", "halt", 1, fn_halt, NULL);
}

/* The root supervisor: echo, the node's services (net_kernel, rex), the
 * test probe, then every plugin's actors, in that order. */
static int start_services(ca_rt *rt, ca_node *node, const cli *c)
{
    char err[512];
    int rc = ca__services_register(rt, node);
    if (rc == 0)
        rc = register_stop(rt);
    if (rc == 0 && c->probe)
        rc = ca_rpc_register(rt, "cactor_probe", "positive", 0, fn_positive, NULL);
    if (rc) {
        fprintf(stderr, "cactor-node: cannot register the built-in functions: %s\n",
                ca_strerror(rc));
        return rc;
    }
    ca_plugin *pl = ca__plugin_new(rt);
    if (!pl)
        return CA_ENOMEM;
    for (int i = 0; i < c->nplugins; i++) {
        if ((rc = ca__plugin_load(pl, c->plugins[i], err, sizeof err))) {
            fprintf(stderr, "cactor-node: --load %s: %s\n", c->plugins[i], err);
            ca__plugin_free(pl);
            return rc;
        }
        ca_log(rt, CA_LOG_INFO, "loaded plugin %s", c->plugins[i]);
    }
    size_t nplug;
    const ca_child_spec *plug = ca__plugin_children(pl, &nplug);
    size_t cap = 8 + nplug, n = 0;
    ca_child_spec *kids = calloc(cap, sizeof *kids);
    if (!kids) {
        ca__plugin_free(pl);
        return CA_ENOMEM;
    }
    kids[n++] =
        (ca_child_spec){.id = "echo",
                        .behaviour = &echo_behaviour,
                        .name = "echo",
                        .restart = CA_PERMANENT,
                        .on_sched = 1 /* the node's I/O scheduler: no thread hop per message */};
    n += ca__services_children(kids + n, cap - n);
    if (c->probe)
        kids[n++] = (ca_child_spec){.id = "probe",
                                    .behaviour = &probe_behaviour,
                                    .name = "cactor_probe",
                                    .restart = CA_PERMANENT};
    for (size_t i = 0; i < nplug; i++)
        kids[n++] = plug[i];
    ca_sup_spec spec = {
        .strategy = CA_ONE_FOR_ONE,
        .intensity = 20,
        .period_ms = 10000,
        .children = kids,
        .nchildren = n,
        .flags = CA_SUP_SHUTDOWN_RT,
    };
    /* ca_sup_start copies the spec, ids and names included. */
    rc = ca_sup_start(rt, &spec, "cactor_sup", NULL);
    free(kids);
    ca__plugin_free(pl);
    return rc;
}

/* Runs until a signal, init:stop, or the runtime shutting itself down (the
 * root supervisor gave up). */
static int wait_for_end(ca_rt *rt, const sigset_t *set)
{
    struct timespec ts = {0, 200 * 1000 * 1000};
    bool asked = false;
    for (;;) {
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM || asked)
            return 0;
        if (atomic_load(&stop_status) >= 0) {
            /* init:stop's ok is on its way out: give it one more wait,
             * since stopping the node drops what is not yet written. */
            asked = true;
            ts.tv_nsec = 100 * 1000 * 1000;
            continue;
        }
        int rc = ca_rt_wait(rt, 0);
        if (rc != CA_ETIMEDOUT)
            return rc;
    }
}

int main(int argc, char **argv)
{
    cli c;
    int rc = parse(argc, argv, &c);
    if (rc)
        return rc;

    /* A node copies every message into a fresh block and frees it soon
     * after: with glibc's defaults, large messages (64 KiB and up) come
     * from mmap or from a heap top that is trimmed back to the kernel at
     * once, so each one pays page faults. Keep freed memory around
     * instead (measured: hash calls of 64 KiB, 297 -> 141 us CPU each). */
    mallopt(M_MMAP_THRESHOLD, 16 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
    mallopt(M_TOP_PAD, 16 * 1024 * 1024);

    /* Block the stop signals before any thread starts (they inherit the
     * mask), so that only sigtimedwait here sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    ca_rt_opts ro;
    ca_rt_opts_init(&ro);
    ro.threads = c.threads;
    if (c.spin_set)
        ro.spin_us = c.spin_us;
    ro.log_level = log_level(&c);
    ca_rt *rt;
    if ((rc = ca_rt_new(&ro, &rt))) {
        fprintf(stderr, "cactor-node: runtime: %s\n", ca_strerror(rc));
        return 1;
    }
    ca_node_opts no;
    ca_node_opts_init(&no);
    no.name = c.name ? c.name : c.sname;
    no.cookie = c.cookie;
    no.listen_addr = c.listen;
    no.port = (uint16_t)c.port;
    if (c.batch_set)
        no.batch_us = c.batch_us;
    ca_node *node;
    if ((rc = ca_node_start(rt, &no, &node))) {
        fprintf(stderr, "cactor-node: cannot start the node: %s\n", ca_strerror(rc));
        ca_rt_free(rt);
        return 1;
    }
    if ((rc = start_services(rt, node, &c))) {
        fprintf(stderr, "cactor-node: cannot start services: %s\n", ca_strerror(rc));
    } else {
        printf("cactor-node %s ready on port %u\n", ca_node_self_name(node), ca_node_port(node));
        fflush(stdout);
        rc = wait_for_end(rt, &set);
    }
    ca_node_stop(node);
    ca_rt_free(rt);
    ca_node_free(node);
    int asked = atomic_load(&stop_status); /* init:stop's, if it came */
    return rc ? 1 : asked > 0 ? asked : 0;
}
