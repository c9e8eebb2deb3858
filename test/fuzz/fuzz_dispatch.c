/*
 * libFuzzer target: what one connected peer can make a node do.
 *
 * A node runs in this process: a runtime with 2 schedulers and, under a
 * supervisor that does not give up (and answers Erlang's supervisor
 * calls, which the input may make), net_kernel, rex, a C gen_server and
 * two actors that act on what they are sent (link, monitor, call, exit,
 * forward, spawn... with whatever pid, name or node the message names).
 * The fuzzer is the peer: an ei C node connected over loopback (a private
 * epmd). Each input is read as a list of control messages built on the
 * real pids, names and references of both sides, with fields and payloads
 * from term templates filled in from the input; some frames go out with
 * a field too many or too few, some payloads and whole frames as raw
 * bytes. Then a round trip through an actor the input cannot name shows
 * that the node still serves (one the input made close the connection is
 * reconnected, as Erlang would). It fails if the node stops answering; a
 * crash or a memory error shows as a sanitizer report first.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "cactor.h"
#include "epmd.h"
#include "node.h"
#include "services.h"

#define NODE_NAME  "fzn@127.0.0.1"
#define PEER_ALIVE "fz"
#define PEER_NAME  "fz@127.0.0.1"
#define GHOST_NAME "ghost@127.0.0.1" /* never up: connecting to it fails */
#define COOKIE     "fuzzcookie"
#define SYNC_NAME  "fz_sync" /* not among the names the input can pick */
#define DEAD_NUM   0x7ff0u   /* a pid number no actor of the run reaches */
#define MAX_FRAMES 64
#define MAX_DEPTH  4

static test_epmd EPMD;
static ca_rt *RT;
static ca_node *NODE;
static ca_pid SUP;
static ei_cnode EC;
static int FD = -1;
static uint64_t SYNC_N;

/* ------------------------------------------------------------------ */
/* The node's actors                                                   */
/* ------------------------------------------------------------------ */

static void quiet(void *ctx, ca_log_level level, const char *line)
{
    (void)ctx, (void)level, (void)line;
}

/* A bare term as ETF with the version byte, for the calls that take one. */
static int versioned(const char *t, size_t tl, char *out, size_t cap, size_t *len)
{
    if (tl + 1 > cap)
        return -1;
    out[0] = (char)131;
    memcpy(out + 1, t, tl);
    *len = tl + 1;
    return 0;
}

#define CALLS 8

/* What a playing actor keeps: its calls, to finish them. */
typedef struct play {
    ca_call calls[CALLS];
    unsigned ncalls;
} play;

static int play_init(ca_actor *self, void *arg, void **state)
{
    play *p = calloc(1, sizeof *p);
    if (!p)
        return CA_ENOMEM;
    ca_trap_exit(self, arg != NULL);
    *state = p;
    return 0;
}

static void call_add(ca_actor *self, play *p, const ca_call *c)
{
    if (p->ncalls == CALLS) {
        ca_gen_call_done(self, &p->calls[0]);
        memmove(p->calls, p->calls + 1, (CALLS - 1) * sizeof p->calls[0]);
        p->ncalls--;
    }
    p->calls[p->ncalls++] = *c;
}

/* A reply, a DOWN or a timeout of one of our calls: finish it. */
static void call_end(ca_actor *self, play *p, const ca_ref *ref)
{
    for (unsigned k = 0; k < p->ncalls; k++) {
        if (ca_ref_eq(&p->calls[k].ref, ref)) {
            ca_gen_call_done(self, &p->calls[k]);
            p->calls[k] = p->calls[--p->ncalls];
            return;
        }
    }
}

static int play_call(ca_actor *self, play *p, ca_msg *m)
{
    char a[CA_MAXATOM], b[CA_MAXATOM], req[512];
    const char *t;
    size_t tl, rl;
    ca_pid pid;
    ca_call c;
    int rc = CA_ENOMATCH;
    if (ca_match(m, "{call, ~p, ~t}", &pid, &t, &tl) == 0 &&
        versioned(t, tl, req, sizeof req, &rl) == 0)
        rc = ca_gen_call(self, pid, req, rl, 20, &c);
    else if (ca_match(m, "{call, ~a, ~a, ~t}", a, b, &t, &tl) == 0 &&
             versioned(t, tl, req, sizeof req, &rl) == 0)
        rc = ca_gen_call_name(self, a, b, req, rl, 20, &c);
    else
        return 0;
    if (rc == 0)
        call_add(self, p, &c);
    return 1;
}

/* Signals and sends outwards, to whatever the message names. Errors are
 * the point (bad pids, unknown nodes): they are not the actor's. */
static int play_signal(ca_actor *self, ca_msg *m)
{
    char a[CA_MAXATOM], b[CA_MAXATOM], buf[512];
    const char *t;
    size_t tl, bl;
    ca_pid pid;
    ca_ref ref;
    long on;
    if (ca_match(m, "{echo, ~p, ~t}", &pid, &t, &tl) == 0)
        ca_sendf(self, pid, "{echo, ~t}", t, tl);
    else if (ca_match(m, "{link, ~p}", &pid) == 0)
        ca_link(self, pid);
    else if (ca_match(m, "{unlink, ~p}", &pid) == 0)
        ca_unlink(self, pid);
    else if (ca_match(m, "{monitor, ~p}", &pid) == 0)
        ca_monitor(self, pid, &ref);
    else if (ca_match(m, "{monitor, ~a, ~a}", a, b) == 0)
        ca_monitor_name(self, a, b, &ref);
    else if (ca_match(m, "{demonitor, ~r}", &ref) == 0)
        ca_demonitor(self, &ref);
    else if (ca_match(m, "{kill, ~p, ~t}", &pid, &t, &tl) == 0 &&
             versioned(t, tl, buf, sizeof buf, &bl) == 0)
        ca_kill_term(ca_actor_rt(self), ca_self(self), pid, buf, bl);
    else if (ca_match(m, "{send, ~a, ~a, ~t}", a, b, &t, &tl) == 0 &&
             versioned(t, tl, buf, sizeof buf, &bl) == 0)
        ca_send_reg(self, a, b, buf, bl);
    else if (ca_match(m, "{node, ~a, ~i}", a, &on) == 0)
        ca_monitor_node(self, a, (int)on);
    else if (ca_match(m, "{trap, ~a}", a) == 0)
        ca_trap_exit(self, strcmp(a, "true") == 0);
    else
        return 0;
    return 1;
}

/* A linked child that exits at once, with a reason its parent may trap. */
static int spawned_init(ca_actor *self, void *arg, void **state)
{
    (void)arg, (void)state;
    return ca_exit(self, "done");
}

static int spawned_handle(ca_actor *self, void *st, ca_msg *m)
{
    (void)self, (void)st, (void)m;
    return 0;
}

static const ca_behaviour SPAWNED = {"fz_spawned", spawned_init, spawned_handle, NULL};

static int play_handle(ca_actor *self, void *st, ca_msg *m)
{
    play *p = st;
    char buf[512], out[256];
    const char *t, *d;
    size_t tl, bl, dl;
    ca_pid pid;
    ca_ref ref;
    if (play_call(self, p, m) || play_signal(self, m))
        return 0;
    if (ca_match(m, "{exit, ~t}", &t, &tl) == 0 && versioned(t, tl, buf, sizeof buf, &bl) == 0)
        return ca_exit_term(self, buf, bl), 0;
    if (ca_match(m, "{forward, ~p}", &pid) == 0) {
        /* not to itself: the message would come back for ever */
        if (!ca_pid_eq(pid, ca_self(self)))
            ca_forward(self, pid, m);
        return 0;
    }
    if (ca_match(m, "{spawn, _}") == 0) {
        ca_spawn_opts o;
        ca_spawn_opts_init(&o);
        o.flags = CA_SPAWN_LINK;
        return ca_spawn_child(self, &SPAWNED, NULL, &o, NULL), 0;
    }
    if (ca_match(m, "{~r, _}", &ref) == 0 || ca_match(m, "{'$call_timeout', ~r}", &ref) == 0 ||
        ca_match(m, "{'DOWN', ~r, _, _, _}", &ref) == 0) {
        call_end(self, p, &ref);
        return 0;
    }
    /* anything else: read it as an actor would */
    if ((d = ca_msg_data(m, &dl)) != NULL)
        ca_term_print(d, dl, out, sizeof out);
    return 0;
}

static void play_terminate(ca_actor *self, void *st, const char *reason, size_t len)
{
    (void)self, (void)reason, (void)len;
    free(st);
}

static const ca_behaviour PLAY = {"fz_play", play_init, play_handle, play_terminate};

static int gen_call(ca_actor *self, void *st, const ca_call_from *from, const char *req, size_t len)
{
    (void)st;
    char buf[512];
    const char *t;
    size_t tl, bl;
    if (ca_match_term(req, len, "noreply") == 0)
        return 0;
    if (ca_match_term(req, len, "{stop, ~t}", &t, &tl) == 0 &&
        versioned(t, tl, buf, sizeof buf, &bl) == 0) {
        ca_gen_replyf(self, from, "ok");
        return ca_exit_term(self, buf, bl), 0;
    }
    ca_gen_replyf(self, from, "~t", req, len);
    return 0;
}

static int gen_cast(ca_actor *self, void *st, const char *req, size_t len)
{
    (void)st;
    char out[256];
    ca_term_print(req, len, out, sizeof out);
    if (ca_match_term(req, len, "crash") == 0)
        return CA_EINVAL;
    (void)self;
    return 0;
}

/* sys:get_state, sys:get_status */
static int gen_state(ca_actor *self, void *st, ei_x_buff *out)
{
    (void)self, (void)st;
    return ca_fmt(out, "{fz_gen, ~p}", ca_self(self));
}

static const ca_gen_server GEN_CB = {
    .name = "fz_gen", .handle_call = gen_call, .handle_cast = gen_cast, .format_state = gen_state};
static const ca_gen_server_spec GEN = {&GEN_CB, NULL};

/* {Pid, N} -> Pid ! {sync, N} */
static int sync_handle(ca_actor *self, void *st, ca_msg *m)
{
    (void)st;
    ca_pid pid;
    const char *t;
    size_t tl;
    if (ca_match(m, "{~p, ~t}", &pid, &t, &tl) == 0)
        ca_sendf(self, pid, "{sync, ~t}", t, tl);
    return 0;
}

static const ca_behaviour SYNC = {"fz_sync", NULL, sync_handle, NULL};

static ca_child_spec KIDS[8] = {
    {.id = "play", .behaviour = &PLAY, .name = "play", .on_sched = 1},
    {.id = "trap", .behaviour = &PLAY, .arg = (void *)1, .name = "trap"},
    {.id = "gen", .behaviour = &ca_gen_server_behaviour, .arg = (void *)&GEN, .name = "gen"},
    {.id = "sync", .behaviour = &SYNC, .name = SYNC_NAME, .on_sched = 1},
};
static size_t NKIDS;

static int start_tree(void)
{
    if (!NKIDS)
        NKIDS = 4 + ca__services_children(KIDS + 4, 8 - 4);
    ca_sup_spec spec = {
        .strategy = CA_ONE_FOR_ONE,
        .intensity = 1000000, /* killing children is fair play here */
        .period_ms = 1000,
        .children = KIDS,
        .nchildren = NKIDS,
    };
    return ca_sup_start(RT, &spec, "sup", &SUP);
}

/* The input stopped or deleted children through the supervisor calls:
 * start them again, so that the next input finds the whole tree. */
static void repair_tree(void)
{
    for (size_t k = 0; k < NKIDS; k++) {
        ca_pid p;
        if (ca_whereis(RT, KIDS[k].name, &p) == 0)
            continue;
        if (ca_sup_restart_child(RT, SUP, KIDS[k].id, NULL) == CA_ENOENT)
            ca_sup_start_child(RT, SUP, &KIDS[k], NULL, NULL);
    }
}

/* The input killed the supervisor (it may guess a pid): kill what
 * survived it (a child trapping exits) so that the names are free, and
 * start the tree again. */
static int restart_tree(void)
{
    for (size_t k = 0; k < NKIDS; k++) {
        ca_pid p;
        for (int i = 0; i < 100 && ca_whereis(RT, KIDS[k].name, &p) == 0; i++) {
            ca_kill(RT, CA_PID_NONE, p, "kill");
            usleep(10 * 1000);
        }
    }
    return start_tree();
}

/* ------------------------------------------------------------------ */
/* Reading the input                                                   */
/* ------------------------------------------------------------------ */

typedef struct in {
    const uint8_t *p;
    size_t n;
} in;

static unsigned next(in *s)
{
    if (!s->n)
        return 0;
    s->n--;
    return *s->p++;
}

static const char *const NAMES[] = {"play",       "trap",   "gen", "rex",
                                    "net_kernel", "nosuch", "sup", ""};
#define NNAMES (sizeof NAMES / sizeof NAMES[0])
static const char *const NODES[] = {NODE_NAME, PEER_NAME, GHOST_NAME, "nohost", "a@b@c"};
#define NNODES (sizeof NODES / sizeof NODES[0])
static const char *const ATOMS[] = {"normal",          "kill",       "shutdown",
                                    "noconnection",    "noproc",     "true",
                                    "false",           "ok",         "$gen_call",
                                    "$gen_cast",       "EXIT",       "DOWN",
                                    "crash",           "noreply",    "alias",
                                    "undefined",       "infinity",   "sync",
                                    "erlang",          "node",       "message_queue_len",
                                    "registered_name", "suspend",    "resume",
                                    "get_state",       "get_status", "terminate",
                                    "replace_state",   "links",      "monitors",
                                    "monitored_by",    "trap_exit",  "$all"};
#define NATOMS (sizeof ATOMS / sizeof ATOMS[0])

static void enc_atom(ei_x_buff *x, const char *a)
{
    ei_x_encode_atom_len_as(x, a, (int)strlen(a), ERLANG_UTF8, ERLANG_UTF8);
}

/* A pid of the peer, of a node that is never up, of the node's actors, of
 * none of them (dead), or of an earlier incarnation of the node. */
static void enc_pid(ei_x_buff *x, unsigned b)
{
    erlang_pid p = *ei_self(&EC);
    ca_pid c;
    switch (b % 8) {
    case 0:
        break;
    case 1:
        p.num = b / 8;
        break;
    case 2:
        snprintf(p.node, sizeof p.node, "%s", GHOST_NAME);
        p.num = b;
        break;
    case 3:
    case 4:
    case 5:
    case 6:
        if (ca_whereis(RT, NAMES[b % 8 - 3], &c) == 0) {
            ca__to_ei_pid(c, &p);
            break;
        }
        /* fall through: gone right now */
    default:
        snprintf(p.node, sizeof p.node, "%s", NODE_NAME);
        p.num = DEAD_NUM + (b & 7);
        p.serial = 0;
        p.creation = b & 8 ? ca_rt_creation(RT) + 1 : ca_rt_creation(RT);
        break;
    }
    ei_x_encode_pid(x, &p);
}

/* Few distinct references, so that monitors and demonitors meet. */
static void enc_ref(ei_x_buff *x, unsigned b)
{
    erlang_ref r = {.len = 3, .n = {b % 4, 7, 9}, .creation = ei_self(&EC)->creation};
    const char *node = b & 4 ? NODE_NAME : b & 8 ? GHOST_NAME : PEER_NAME;
    if (b & 4)
        r.creation = ca_rt_creation(RT);
    snprintf(r.node, sizeof r.node, "%s", node);
    ei_x_encode_ref(x, &r);
}

static void enc_proc_name(ei_x_buff *x, unsigned b)
{
    enc_atom(x, NAMES[b % NNAMES]);
}

static void enc_raw(ei_x_buff *x, in *s)
{
    size_t n = next(s) % 32;
    if (n > s->n)
        n = s->n;
    ei_x_append_buf(x, (const char *)s->p, (int)n);
    s->p += n;
    s->n -= n;
}

static void enc_term(ei_x_buff *x, in *s, int depth);

static void enc_seq(ei_x_buff *x, in *s, int depth, unsigned n, int tuple)
{
    if (tuple)
        ei_x_encode_tuple_header(x, n);
    else if (n)
        ei_x_encode_list_header(x, n);
    for (unsigned k = 0; k < n; k++)
        enc_term(x, s, depth + 1);
    if (!tuple)
        ei_x_encode_empty_list(x);
}

static void enc_term(ei_x_buff *x, in *s, int depth)
{
    unsigned b = next(s), n;
    char bytes[256];
    switch (depth >= MAX_DEPTH ? b % 6 : b % 16) {
    case 0:
        enc_atom(x, ATOMS[next(s) % NATOMS]);
        break;
    case 1:
        ei_x_encode_long(x, (int8_t)next(s));
        break;
    case 2:
        n = next(s) << 24;
        n |= next(s) << 8;
        ei_x_encode_long(x, (long)(int32_t)n);
        break;
    case 3:
        n = next(s) % 64;
        memset(bytes, (int)b, n);
        ei_x_encode_binary(x, bytes, (long)n);
        break;
    case 4:
        enc_pid(x, next(s));
        break;
    case 5:
        enc_ref(x, next(s));
        break;
    case 6:
        enc_seq(x, s, depth, next(s) % 5, 1);
        break;
    case 7:
        enc_seq(x, s, depth, next(s) % 5, 0);
        break;
    case 8:
        n = next(s) % 3;
        ei_x_encode_map_header(x, n);
        for (unsigned k = 0; k < 2 * n; k++)
            enc_term(x, s, depth + 1);
        break;
    case 9:
        n = next(s) % 16;
        for (unsigned k = 0; k < n; k++)
            bytes[k] = (char)next(s);
        ei_x_encode_string_len(x, bytes, (int)n);
        break;
    case 10:
        if (b & 16) { /* an old float whose text fills its 31 bytes, no NUL */
            char f[32] = {99};
            memset(f + 1, '1' + (int)(next(s) % 9), 31);
            ei_x_append_buf(x, f, sizeof f);
        } else {
            ei_x_encode_double(x, (int8_t)next(s) / 3.0);
        }
        break;
    case 11:
        ei_x_encode_ulonglong(x, UINT64_MAX - next(s));
        break;
    case 12: { /* a large binary */
        n = next(s) * 257u;
        char *big = calloc(1, n ? n : 1);
        if (big)
            ei_x_encode_binary(x, big, (long)n);
        else
            ei_x_encode_empty_list(x);
        free(big);
        break;
    }
    case 13: /* deep nesting, past what the templates reach */
        n = next(s) * 4u;
        for (unsigned k = 0; k < n; k++)
            ei_x_encode_list_header(x, 1);
        ei_x_encode_empty_list(x);
        for (unsigned k = 0; k < n; k++)
            ei_x_encode_empty_list(x);
        break;
    case 14: /* an atom of raw bytes: maybe not UTF-8 */
        n = next(s) % 8;
        bytes[0] = 119; /* SMALL_ATOM_UTF8_EXT */
        bytes[1] = (char)n;
        for (unsigned k = 0; k < n; k++)
            bytes[2 + k] = (char)next(s);
        ei_x_append_buf(x, bytes, (int)n + 2);
        break;
    default: /* raw bytes: most likely not a term */
        enc_raw(x, s);
        break;
    }
}

/* {'$gen_call', {From, Tag}, Req}: Tag a ref or [alias | Ref]. */
static void enc_call_head(ei_x_buff *x, in *s)
{
    unsigned b = next(s);
    ei_x_encode_tuple_header(x, 3);
    enc_atom(x, "$gen_call");
    ei_x_encode_tuple_header(x, 2);
    enc_pid(x, b & 1 ? 0 : next(s));
    if (b & 2) {
        ei_x_encode_list_header(x, 1);
        enc_atom(x, "alias");
        enc_ref(x, next(s));
    } else {
        enc_ref(x, next(s));
    }
}

static const char *const MODS[] = {"erlang", "cactor", "erpc", "nosuch", ""};
static const char *const FUNS[] = {
    "node",         "whereis",      "info",  "registered", "process_info", "is_process_alive",
    "execute_call", "execute_cast", "apply", "x"};
#define NMODS (sizeof MODS / sizeof MODS[0])
#define NFUNS (sizeof FUNS / sizeof FUNS[0])

/* What the playing actors act on: {Tag, Fields...}, the fields being
 * p a pid, n a name, N a node, r a ref, b 0 or 1, t any term. */
static const struct {
    const char *tag, *fields;
} COMMANDS[] = {
    {"echo", "pt"},     {"link", "p"},    {"unlink", "p"}, {"monitor", "p"}, {"monitor", "nN"},
    {"demonitor", "r"}, {"call", "pt"},   {"call", "nNt"}, {"kill", "pt"},   {"send", "nNt"},
    {"node", "Nb"},     {"forward", "p"}, {"spawn", "p"},  {"exit", "t"},    {"trap", "t"},
};

static void enc_play(ei_x_buff *x, in *s)
{
    unsigned k = next(s) % (sizeof COMMANDS / sizeof COMMANDS[0]);
    ei_x_encode_tuple_header(x, 1 + (long)strlen(COMMANDS[k].fields));
    enc_atom(x, COMMANDS[k].tag);
    for (const char *f = COMMANDS[k].fields; *f; f++) {
        switch (*f) {
        case 'p':
            enc_pid(x, next(s));
            break;
        case 'n':
            enc_proc_name(x, next(s));
            break;
        case 'N':
            enc_atom(x, NODES[next(s) % NNODES]);
            break;
        case 'r':
            enc_ref(x, next(s));
            break;
        case 'b':
            ei_x_encode_long(x, next(s) & 1);
            break;
        default:
            enc_term(x, s, 1);
            break;
        }
    }
}

/* What Erlang's supervisor module asks: {Op, Id | Pid | ExtraArgs | any}. */
static void enc_sup_req(ei_x_buff *x, in *s)
{
    static const char *const OPS[] = {"which_children", "count_children", "terminate_child",
                                      "restart_child",  "delete_child",   "start_child",
                                      "get_childspec"};
    unsigned k = next(s) % (sizeof OPS / sizeof OPS[0]), b = next(s);
    if (k < 2) {
        enc_atom(x, OPS[k]);
        return;
    }
    ei_x_encode_tuple_header(x, 2);
    enc_atom(x, OPS[k]);
    switch (b % 4) {
    case 0:
        enc_atom(x, KIDS[(b / 4) % 8].id ? KIDS[(b / 4) % 8].id : "nosuch");
        break;
    case 1:
        enc_pid(x, next(s));
        break;
    case 2:
        ei_x_encode_empty_list(x);
        break;
    default:
        enc_term(x, s, 1);
        break;
    }
}

/* A message: shapes the node's actors know, or any term. */
static void enc_msg(ei_x_buff *x, in *s)
{
    unsigned b = next(s);
    ei_x_encode_version(x);
    switch (b % 10) {
    case 0:
    case 1:
        enc_play(x, s);
        break;
    case 2: /* a gen_server call */
        enc_call_head(x, s);
        if (b & 32) {
            enc_sup_req(x, s);
            break;
        }
        if (b & 16) {
            ei_x_encode_tuple_header(x, 2);
            enc_atom(x, "stop");
        }
        enc_term(x, s, 1);
        break;
    case 3: /* rpc:call through rex */
        enc_call_head(x, s);
        ei_x_encode_tuple_header(x, 5);
        enc_atom(x, "call");
        enc_atom(x, MODS[next(s) % NMODS]);
        enc_atom(x, FUNS[next(s) % NFUNS]);
        enc_seq(x, s, 1, next(s) % 3, 0);
        enc_pid(x, next(s));
        break;
    case 4: /* net_adm:ping */
        enc_call_head(x, s);
        ei_x_encode_tuple_header(x, 2);
        enc_atom(x, "is_auth");
        enc_atom(x, NODES[next(s) % NNODES]);
        break;
    case 5: /* sys */
        ei_x_encode_tuple_header(x, 3);
        enc_atom(x, "system");
        ei_x_encode_tuple_header(x, 2);
        enc_pid(x, next(s));
        enc_ref(x, next(s));
        enc_term(x, s, 1);
        break;
    case 6:
        ei_x_encode_tuple_header(x, 2);
        enc_atom(x, "$gen_cast");
        enc_term(x, s, 1);
        break;
    case 7:
        enc_raw(x, s);
        break;
    default:
        enc_term(x, s, 0);
        break;
    }
}

/* ------------------------------------------------------------------ */
/* Control messages                                                    */
/* ------------------------------------------------------------------ */

enum { PL_NONE, PL_MSG, PL_REASON };

/* Field letters as in the protocol's tuples (control.c reads the same):
 * f t g pid, F T P pid or name, N name, u unused, r ref, k token,
 * R reason, i id, m {M, F, A}, o spawn options, x spawn flags. */
typedef struct op_shape {
    int op;
    const char *fields;
    int payload;
} op_shape;

static const op_shape OPS[] = {
    {1, "ft", PL_NONE},     {2, "ut", PL_MSG},      {3, "ftR", PL_NONE},    {4, "ft", PL_NONE},
    {5, "", PL_NONE},       {6, "fuN", PL_MSG},     {7, "ft", PL_NONE},     {8, "ftR", PL_NONE},
    {12, "utk", PL_MSG},    {13, "ftkR", PL_NONE},  {16, "fuNk", PL_MSG},   {18, "ftkR", PL_NONE},
    {19, "fTr", PL_NONE},   {20, "fTr", PL_NONE},   {21, "FtrR", PL_NONE},  {22, "ft", PL_MSG},
    {23, "ftk", PL_MSG},    {24, "ft", PL_REASON},  {25, "ftk", PL_REASON}, {26, "ft", PL_REASON},
    {27, "ftk", PL_REASON}, {28, "Ftr", PL_REASON}, {29, "rfgmo", PL_MSG},  {30, "rfgmok", PL_MSG},
    {31, "rtxP", PL_NONE},  {32, "rtxPk", PL_NONE}, {33, "fr", PL_MSG},     {34, "frk", PL_MSG},
    {35, "ift", PL_NONE},   {36, "ift", PL_NONE},   {99, "ft", PL_MSG}, /* an op from the future */
};
#define NOPS (sizeof OPS / sizeof OPS[0])

static void enc_field(ei_x_buff *x, in *s, char f)
{
    unsigned b = next(s);
    switch (f) {
    case 'f': /* the sender: one of the peer's, mostly (else the node hangs up) */
        enc_pid(x, (b & 0xe0) == 0xe0 ? b : b & 0x19);
        break;
    case 't':
    case 'g':
        enc_pid(x, b);
        break;
    case 'F':
    case 'T':
    case 'P':
        if (b & 128)
            enc_proc_name(x, b);
        else
            enc_pid(x, b);
        break;
    case 'N':
        enc_proc_name(x, b);
        break;
    case 'u':
        enc_atom(x, "");
        break;
    case 'r':
        enc_ref(x, b);
        break;
    case 'i':
        ei_x_encode_ulonglong(x, b);
        break;
    case 'x':
        ei_x_encode_long(x, b % 4);
        break;
    case 'm':
        ei_x_encode_tuple_header(x, 3);
        enc_atom(x, MODS[b % NMODS]);
        enc_atom(x, FUNS[next(s) % NFUNS]);
        ei_x_encode_long(x, next(s) % 6);
        break;
    case 'o':
        ei_x_encode_list_header(x, b % 3);
        for (unsigned k = 0; k < b % 3; k++)
            enc_atom(x, (next(s) & 1) ? "monitor" : "link");
        ei_x_encode_empty_list(x);
        break;
    default: /* k, R */
        enc_term(x, s, 1);
        break;
    }
}

/* One frame: length, 'p', the control tuple, the payload if the op has
 * one. Now and then a field too many or too few, or raw bytes. */
static void enc_frame(ei_x_buff *x, in *s)
{
    unsigned b = next(s);
    int at = x->index;
    ei_x_append_buf(x, "\0\0\0\0p", 5);
    if (b == 255) { /* a raw frame body */
        x->index = at + 4;
        enc_raw(x, s);
    } else {
        const op_shape *o = &OPS[b % NOPS];
        size_t nf = strlen(o->fields);
        unsigned mut = next(s);
        int arity = 1 + (int)nf + (mut == 1) - (mut == 2 && nf > 0);
        ei_x_encode_version(x);
        ei_x_encode_tuple_header(x, arity);
        ei_x_encode_long(x, o->op);
        for (int k = 0; k + 1 < arity; k++)
            enc_field(x, s, k < (int)nf ? o->fields[k] : 'R');
        if (o->payload == PL_MSG || (mut == 3 && o->payload == PL_NONE))
            enc_msg(x, s);
        else if (o->payload == PL_REASON) {
            ei_x_encode_version(x);
            enc_term(x, s, 1);
        }
    }
    uint32_t len = htonl((uint32_t)(x->index - at - 4));
    memcpy(x->buff + at, &len, 4);
}

/* ------------------------------------------------------------------ */
/* The connection                                                      */
/* ------------------------------------------------------------------ */

static void disconnect(void)
{
    if (FD >= 0)
        close(FD);
    FD = -1;
}

static int connect_node(void)
{
    struct in_addr addr;
    inet_aton("127.0.0.1", &addr);
    FD = ei_xconnect_host_port_tmo(&EC, (Erl_IpAddr)&addr, ca_node_port(NODE), 5000);
    return FD >= 0 ? 0 : -1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* n bytes out (or in), before the deadline: 0, -1 closed, -2 timed out. */
static int xfer(bool out, char *b, size_t n, int64_t deadline)
{
    while (n > 0) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = FD, .events = out ? POLLOUT : POLLIN};
        if (left <= 0)
            return -2;
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? -2 : -1;
        ssize_t k = out ? send(FD, b, n, MSG_NOSIGNAL | MSG_DONTWAIT) : read(FD, b, n);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Frames until one ends with {sync, N}: 0, -1 closed, -2 timed out. */
static int wait_sync(const ei_x_buff *want, int64_t deadline)
{
    static char *body;
    static size_t cap;
    for (;;) {
        unsigned char h[4];
        int rc = xfer(false, (char *)h, 4, deadline);
        if (rc)
            return rc;
        size_t n = (size_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
        if (n > cap) {
            char *nb = realloc(body, n);
            if (!nb)
                abort();
            body = nb;
            cap = n;
        }
        if ((rc = xfer(false, body, n, deadline)))
            return rc;
        if (n >= (size_t)want->index &&
            memcmp(body + n - want->index, want->buff, (size_t)want->index) == 0)
            return 0;
    }
}

/* The node still serves: {Self, N} to SYNC_NAME, {sync, N} back. A
 * connection the input made the node close is made again; a tree the
 * input killed (the supervisor, by a pid it guessed) is started again. */
static void check_alive(void)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        if (FD < 0 && connect_node() < 0) {
            usleep(200 * 1000); /* the node may still hold the old connection */
            continue;
        }
        uint64_t n = ++SYNC_N;
        ei_x_buff msg, want;
        ei_x_new_with_version(&msg);
        ei_x_encode_tuple_header(&msg, 2);
        ei_x_encode_pid(&msg, ei_self(&EC));
        ei_x_encode_ulonglong(&msg, n);
        ei_x_new_with_version(&want);
        ei_x_encode_tuple_header(&want, 2);
        enc_atom(&want, "sync");
        ei_x_encode_ulonglong(&want, n);
        int rc = ei_reg_send_tmo(&EC, FD, SYNC_NAME, msg.buff, msg.index, 5000) < 0
                     ? -1
                     : wait_sync(&want, now_ms() + 2000);
        ei_x_free(&msg);
        ei_x_free(&want);
        if (rc == 0) {
            repair_tree();
            return;
        }
        if (rc == -1)
            disconnect();
        else if (!ca_is_alive(RT, SUP) && restart_tree() != 0)
            break;
        else
            repair_tree(); /* the sync actor stopped through its supervisor */
    }
    fprintf(stderr, "fuzz_dispatch: the node stopped answering\n");
    abort();
}

/* ------------------------------------------------------------------ */

static int setup(void)
{
    ca_rt_opts ro;
    ca_node_opts no;
    struct in_addr addr;
    /* ei writes without MSG_NOSIGNAL, to connections the node may have
     * closed (bad input): a failed write is handled, not a death */
    signal(SIGPIPE, SIG_IGN);
    if (test_epmd_start(&EPMD))
        return -1;
    ca_rt_opts_init(&ro);
    ro.threads = 2;
    ro.log = quiet;
    if (ca_rt_new(&ro, &RT))
        return -1;
    ca_node_opts_init(&no);
    no.name = NODE_NAME;
    no.cookie = COOKIE;
    no.epmd_port = EPMD.port;
    if (ca_node_start(RT, &no, &NODE) || ca__services_register(RT, NODE) || start_tree())
        return -1;
    inet_aton("127.0.0.1", &addr);
    if (ei_init() ||
        ei_connect_xinit(&EC, "127.0.0.1", PEER_ALIVE, PEER_NAME, (Erl_IpAddr)&addr, COOKIE, 0) < 0)
        return -1;
    /* the first sync waits until the tree has started */
    check_alive();
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (setup()) {
        fprintf(stderr, "fuzz_dispatch: set-up failed\n");
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in s = {data, size};
    ei_x_buff x;
    if (ei_x_new(&x) < 0)
        return 0;
    for (int k = 0; k < MAX_FRAMES && s.n > 0; k++)
        enc_frame(&x, &s);
    if (FD < 0 && connect_node() < 0)
        check_alive(); /* tries again, then fails */
    if (FD >= 0 && xfer(true, x.buff, (size_t)x.index, now_ms() + 10000) < 0)
        disconnect();
    ei_x_free(&x);
    check_alive();
    return 0;
}
