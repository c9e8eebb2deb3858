/*
 * The services an Erlang node expects of a peer, as plain C actors:
 *
 *   net_kernel  answers {is_auth, Node} (net_adm:ping gives pong);
 *   rex         rpc's server: gen_server calls and casts {call|cast, M, F,
 *               A, GL}, and ei_rpc's {Pid, {call, M, F, A, GL}} (erl_call);
 *   spawn       SPAWN_REQUEST runs a C function in a short-lived actor:
 *               erpc:execute_call/4 (rpc:call and erpc:call on OTP 23+)
 *               exits with erpc's result reason, which reaches the caller
 *               through the monitor the request asked for;
 *               erpc:execute_cast/3 (erpc:cast, rpc:cast) and any other
 *               M:F/A (spawn/4, spawn_link/4, spawn_monitor/4) exit normal,
 *               or with {Reason, Stack} when the function fails, as an
 *               Erlang process would.
 *
 * C functions come from the runtime's rpc table (ca_rpc_register); an
 * unknown one is `undef`, exactly as Erlang reports it.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "services.h"

/* ---- deferred answers (ca_rpc_defer) ---- */

/* A call whose function deferred its answer, awaited by the actor that
 * ran it (rex, or the spawned actor): {Tag, Result} from whoever answers,
 * the watched actor's DOWN, or the timeout. */
typedef struct pending {
    struct pending *next;
    ca_ref tag, mon;
    ca_timer timer;
    unsigned watching : 1, timed : 1;
    unsigned reply : 1; /* rex: `to` waits for the result */
    ca_call_from to;    /* rex: the caller, answered as rpc answers */
} pending;

/* The function being applied on this thread, for ca_rpc_defer. */
typedef struct apply_ctx {
    ca_actor *caller;
    pending *p;
} apply_ctx;

static _Thread_local apply_ctx *cur_apply;

static const char TIMEOUT_ATOM[] = {ERL_SMALL_ATOM_UTF8_EXT, 7, 't', 'i', 'm', 'e', 'o', 'u', 't'};

static void pending_free(ca_actor *self, pending *p)
{
    if (p->watching)
        ca_demonitor(self, &p->mon);
    if (p->timed)
        ca_cancel_timer(self, p->timer);
    free(p);
}

/* The caller's from: {Self, Tag}, answered as {Tag, Result}. */
static int pending_from(ca_actor *self, const pending *p, ca_call_from *from)
{
    ei_x_buff x;
    if (ei_x_new(&x))
        return CA_ENOMEM;
    int rc = ca_fmt(&x, "~r", &p->tag);
    if (rc == 0 && (size_t)x.index > sizeof from->tag)
        rc = CA_ETOOBIG; /* cannot be: a reference of this node */
    if (rc == 0) {
        memset(from, 0, sizeof *from);
        from->pid = ca_self(self);
        from->ref = p->tag;
        from->tag_len = (size_t)x.index;
        memcpy(from->tag, x.buff, from->tag_len);
    }
    ei_x_free(&x);
    return rc;
}

int ca_rpc_defer(ca_actor *caller, ca_pid watch, uint32_t timeout_ms, ca_call_from *from)
{
    apply_ctx *a = cur_apply;
    if (!caller || !from)
        return CA_EINVAL;
    if (!a || a->caller != caller)
        return CA_EPERM;
    if (a->p)
        return CA_EEXIST;
    pending *p = calloc(1, sizeof *p);
    if (!p)
        return CA_ENOMEM;
    ca_make_ref(ca_actor_rt(caller), &p->tag);
    int rc = 0;
    if (!ca_pid_is_none(watch) && (rc = ca_monitor(caller, watch, &p->mon)) == 0)
        p->watching = 1;
    if (rc == 0 && timeout_ms &&
        (rc = ca_sendf_after(caller, timeout_ms, ca_self(caller), &p->timer,
                             "{'$ca_rpc_timeout', ~r}", &p->tag)) == 0)
        p->timed = 1;
    if (rc == 0)
        rc = pending_from(caller, p, from);
    if (rc) {
        pending_free(caller, p);
        return rc;
    }
    a->p = p;
    return 0;
}

/* What m brings to one of the calls in *list: that call, taken off the
 * list, with *ok (1: its result, 0: it failed) and the result or the
 * reason in *t, *tl; NULL if m is none of theirs. */
static pending *pending_take(pending **list, ca_msg *m, int *ok, const char **t, size_t *tl)
{
    enum { RESULT, DOWN, TIMEOUT } kind;
    ca_ref r;
    if (ca_match(m, "{~r, ~t}", &r, t, tl) == 0)
        kind = RESULT;
    else if (ca_match(m, "{'DOWN', ~r, process, _, ~t}", &r, t, tl) == 0)
        kind = DOWN;
    else if (ca_match(m, "{'$ca_rpc_timeout', ~r}", &r) == 0)
        kind = TIMEOUT;
    else
        return NULL;
    for (pending **pp = list; *pp; pp = &(*pp)->next) {
        pending *p = *pp;
        if (kind == DOWN ? !p->watching || !ca_ref_eq(&p->mon, &r) : !ca_ref_eq(&p->tag, &r))
            continue;
        *pp = p->next;
        p->watching &= kind != DOWN; /* a monitor that fired is gone */
        p->timed &= kind != TIMEOUT;
        *ok = kind == RESULT;
        if (kind == TIMEOUT) {
            *t = TIMEOUT_ATOM;
            *tl = sizeof TIMEOUT_ATOM;
        }
        return p;
    }
    return NULL;
}

/* ---- applying Module:Function(Args) ---- */

/* Length of a proper list, or -1. */
static int list_len(const char *args, size_t len)
{
    int idx = 0, type, size;
    if (ei_get_type(args, &idx, &type, &size))
        return -1;
    if (type == ERL_NIL_EXT)
        return 0;
    if (type == ERL_STRING_EXT)
        return size;
    if (type != ERL_LIST_EXT)
        return -1;
    /* A proper list: the tail after `size` elements must be []. */
    int arity;
    if (ei_decode_list_header(args, &idx, &arity))
        return -1;
    for (int i = 0; i < arity; i++) {
        size_t pos = (size_t)idx;
        if (ca__etf_skip(args, len, &pos))
            return -1;
        idx = (int)pos;
    }
    if (ei_get_type(args, &idx, &type, &size) || type != ERL_NIL_EXT)
        return -1;
    return arity;
}

/* Apply mod:fun(args) (args: a list, ETF without version byte). 0: the
 * result term is appended to `result`; DEFERRED: the function deferred
 * its answer (*deferred, to be awaited by `caller`); else `error` gets
 * {Reason, Stack} as Erlang would raise it (undef for an unknown
 * function). */
enum { DEFERRED = 1 };

static int apply(ca_actor *caller, const char *mod, const char *fun, const char *args, size_t len,
                 ei_x_buff *result, ei_x_buff *error, pending **deferred)
{
    ca__rpc_hit hit;
    int arity = list_len(args, len);
    if (arity < 0) {
        ca_fmt(error, "{badarg, [{~a, ~a, ~t, []}]}", mod, fun, args, len);
        return CA_EINVAL;
    }
    if (ca__rpc_find(ca_actor_rt(caller), mod, fun, arity, &hit)) {
        ca_fmt(error, "{undef, [{~a, ~a, ~t, []}]}", mod, fun, args, len);
        return CA_ENOENT;
    }
    int start = result->index;
    apply_ctx a = {caller, NULL}, *outer = cur_apply;
    cur_apply = &a;
    uint64_t t0 = uv_hrtime();
    int rc = hit.fn(hit.ctx, caller, args, len, result);
    ca__rpc_cost(&hit, uv_hrtime() - t0);
    cur_apply = outer;
    if (rc > 0)
        rc = CA_EINVAL; /* not a code: the function's mistake, never DEFERRED */
    if (rc == 0 && a.p) {
        result->index = start; /* the answer comes later */
        *deferred = a.p;
        return DEFERRED;
    }
    if (a.p)
        pending_free(caller, a.p);
    if (rc == 0 && ca__term_check(result->buff + start, (size_t)(result->index - start)) != 0)
        rc = CA_EBADTERM; /* the function did not append exactly one term */
    if (rc) {
        result->index = start;
        ca_fmt(error, "{{error, ~a}, [{~a, ~a, ~i, []}]}", ca_errname(rc), mod, fun, (long)arity);
    }
    return rc;
}

/* ---- built-in functions ---- */

static int fn_node(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *r)
{
    (void)ctx;
    (void)args;
    (void)len;
    return ca_fmt(r, "~a", ca_node_name(ca_rt_node(ca_actor_rt(caller))));
}

static int fn_whereis(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *r)
{
    char name[CA_MAXATOM];
    ca_pid pid;
    (void)ctx;
    if (ca_match_term(args, len, "[~a]", name))
        return CA_EINVAL;
    if (ca_whereis(ca_actor_rt(caller), name, &pid) == 0)
        return ca_fmt(r, "~p", pid);
    return ca_fmt(r, "undefined");
}

static int fn_registered(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *r)
{
    char **names;
    size_t n;
    (void)ctx, (void)args, (void)len;
    int rc = ca_registered(ca_actor_rt(caller), &names, &n);
    if (rc)
        return rc;
    if (n && ei_x_encode_list_header(r, (long)n))
        rc = CA_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = ca_fmt(r, "~a", names[i]);
    if (rc == 0 && ei_x_encode_empty_list(r))
        rc = CA_ENOMEM;
    ca_names_free(names, n);
    return rc;
}

static int fn_processes(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *r)
{
    ca_pid *pids;
    size_t n;
    (void)ctx, (void)args, (void)len;
    int rc = ca_rt_actors(ca_actor_rt(caller), &pids, &n);
    if (rc)
        return rc;
    if (n && ei_x_encode_list_header(r, (long)n))
        rc = CA_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = ca_fmt(r, "~p", pids[i]);
    if (rc == 0 && ei_x_encode_empty_list(r))
        rc = CA_ENOMEM;
    free(pids);
    return rc;
}

/* As in Erlang, for a pid of this node only (another's is badarg). */
static int fn_is_process_alive(void *ctx, ca_actor *caller, const char *args, size_t len,
                               ei_x_buff *r)
{
    ca_pid pid;
    ca_rt *rt = ca_actor_rt(caller);
    (void)ctx;
    if (ca_match_term(args, len, "[~p]", &pid) || pid.node != ca_rt_node(rt))
        return CA_EINVAL;
    return ca_fmt(r, ca_is_alive(rt, pid) ? "true" : "false");
}

/* An item, or a proper list of items, of those a C actor has. */
static int info_items_ok(const char *t, size_t len)
{
    char item[CA_MAXATOM];
    int idx = 0, n;
    if (ca_match_term(t, len, "~a", item) == 0)
        return ca__info_item_known(item);
    if (ei_decode_list_header(t, &idx, &n))
        return 0;
    for (int i = 0; i < n; i++)
        if (ei_decode_atom_as(t, &idx, item, sizeof item, ERLANG_UTF8, NULL, NULL) ||
            !ca__info_item_known(item))
            return 0;
    return n == 0 || (idx < (int)len && (unsigned char)t[idx] == ERL_NIL_EXT);
}

/* erlang:process_info(Pid, Item | [Item]) and process_info(Pid) (items
 * '$all'). Links and monitors are the actor's own thread's, so the actor
 * answers, in its next turn, to the deferred call; undefined when dead.
 * Items: registered_name, message_queue_len, links, monitors,
 * monitored_by, trap_exit; any other is badarg. */
static int process_info(ca_actor *caller, const char *items, size_t il, bool all, ca_pid pid)
{
    ca_rt *rt = ca_actor_rt(caller);
    ca_call_from from;
    if (pid.node != ca_rt_node(rt) || (!all && !info_items_ok(items, il)))
        return CA_EINVAL;
    int rc = ca_rpc_defer(caller, CA_PID_NONE, 5000, &from);
    if (rc == 0)
        rc = ca__signal(rt, CA__SIG_INFO, ca_self(caller), pid, &from.ref, items, il);
    return rc == CA_ESRCH ? ca_gen_replyf(caller, &from, "undefined") : rc;
}

static int fn_process_info(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *r)
{
    ca_pid pid;
    const char *items;
    size_t il;
    (void)ctx;
    (void)r;
    if (ca_match_term(args, len, "[~p, ~t]", &pid, &items, &il))
        return CA_EINVAL;
    return process_info(caller, items, il, false, pid);
}

static int fn_process_info_all(void *ctx, ca_actor *caller, const char *args, size_t len,
                               ei_x_buff *r)
{
    static const char all[] = {ERL_SMALL_ATOM_UTF8_EXT, 4, '$', 'a', 'l', 'l'};
    ca_pid pid;
    (void)ctx;
    (void)r;
    if (ca_match_term(args, len, "[~p]", &pid))
        return CA_EINVAL;
    return process_info(caller, all, sizeof all, true, pid);
}

/* The registered functions' map, as cactor:info/0 shows it:
 * {M, F, Arity} => #{calls => N, avg_us => U}, Arity `any` for a
 * function registered for every arity. Entries are written first, and
 * counted, so that one registered meanwhile cannot make the count wrong. */
typedef struct fn_stats {
    ei_x_buff x;
    long n;
} fn_stats;

static int function_stat(void *arg, const ca__rpc_stat *st)
{
    fn_stats *f = arg;
    f->n++;
    /* names by ca_fmt: UTF-8 as registered (ei's encoder takes Latin-1) */
    int rc = st->arity < 0 ? ca_fmt(&f->x, "{~a, ~a, any}", st->mod, st->fun)
                           : ca_fmt(&f->x, "{~a, ~a, ~i}", st->mod, st->fun, (long)st->arity);
    return rc ? rc
              : ca_fmt(&f->x, "#{calls => ~u, avg_us => ~u}", (unsigned long)st->calls,
                       (unsigned long)st->avg_us);
}

static int functions_map(ca_rt *rt, ei_x_buff *out)
{
    fn_stats f = {.n = 0};
    if (ei_x_new(&f.x))
        return CA_ENOMEM;
    int rc = ca__rpc_each(rt, function_stat, &f);
    if (rc == 0 && (ei_x_encode_map_header(out, f.n) || ei_x_append_buf(out, f.x.buff, f.x.index)))
        rc = CA_ENOMEM;
    ei_x_free(&f.x);
    return rc;
}

static int fn_info(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *r)
{
    ca_node *node = ctx;
    ca_rt *rt = ca_actor_rt(caller);
    ca_rt_stats st;
    ca_node_stats ns;
    char **names = NULL;
    size_t n = 0;
    (void)args;
    (void)len;
    ca_rt_stats_get(rt, &st);
    ca_node_stats_get(node, &ns);
    if (ca_node_connected(node, &names, &n))
        n = 0;
    ei_x_buff nodes;
    if (ei_x_new(&nodes))
        return CA_ENOMEM;
    int rc = n ? ei_x_encode_list_header(&nodes, (long)n) : 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = ca_fmt(&nodes, "~a", names[i]);
    if (rc == 0)
        rc = ei_x_encode_empty_list(&nodes) ? CA_ENOMEM : 0;
    ca_node_list_free(names, n);
    ei_x_buff fns;
    if (ei_x_new(&fns)) {
        ei_x_free(&nodes);
        return CA_ENOMEM;
    }
    if (rc == 0)
        rc = functions_map(rt, &fns);
    if (rc == 0)
        rc = ca_fmt(r,
                    "#{node => ~a, actors => ~u, spawned => ~u, schedulers => ~u, nodes => ~t, "
                    "messages => ~u, frames_in => ~u, frames_out => ~u, overflows => ~u, "
                    "restarts => ~u, refused_handshakes => ~u, reads => ~u, batch_waits => ~u, "
                    "functions => ~t}",
                    ca_node_self_name(node), (unsigned long)st.actors_alive,
                    (unsigned long)st.actors_spawned, (unsigned long)ca_rt_threads(rt), nodes.buff,
                    (size_t)nodes.index, (unsigned long)st.messages_sent,
                    (unsigned long)ns.frames_in, (unsigned long)ns.frames_out,
                    (unsigned long)st.overflows, (unsigned long)st.restarts,
                    (unsigned long)ns.refused, (unsigned long)ns.reads,
                    (unsigned long)ns.batch_waits, fns.buff, (size_t)fns.index);
    ei_x_free(&nodes);
    ei_x_free(&fns);
    return rc;
}

/* ---- net_kernel ---- */

static int net_kernel_handle(ca_actor *self, void *state, ca_msg *m)
{
    ca_call_from from;
    const char *req;
    size_t len;
    (void)state;
    if (ca_gen_call_match(m, &from, &req, &len) != 0)
        return 0;
    if (ca_match_term(req, len, "{is_auth, _}") == 0)
        return ca_gen_replyf(self, &from, "yes");
    return ca_gen_replyf(self, &from, "{error, unsupported}");
}

static const ca_behaviour net_kernel_b = {"net_kernel", NULL, net_kernel_handle, NULL};

/* ---- rex ---- */

typedef struct rex_state {
    pending *waiting; /* calls whose functions deferred their answers */
} rex_state;

static int rex_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    *state = calloc(1, sizeof(rex_state));
    return *state ? 0 : CA_ENOMEM;
}

static void rex_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    rex_state *st = state;
    (void)self;
    (void)reason;
    (void)len;
    while (st && st->waiting) {
        pending *p = st->waiting;
        st->waiting = p->next;
        free(p);
    }
    free(st);
}

/* M:F(A) for rpc's protocols ({call | cast, M, F, A, GL}): `to`, if not
 * NULL, gets the value or {badrpc, ...}, now or when the function's
 * deferred answer comes. */
static void rex_run(ca_actor *self, rex_state *st, const char *mfa_req, size_t len,
                    const ca_call_from *to)
{
    char mod[CA_MAXATOM], fun[CA_MAXATOM];
    const char *args;
    size_t alen;
    ei_x_buff out, err;
    pending *p = NULL;
    if (ei_x_new_with_version(&out))
        return;
    if (ei_x_new(&err)) {
        ei_x_free(&out);
        return;
    }
    int rc;
    if (ca_match_term(mfa_req, len, "{call, ~a, ~a, ~t, _}", mod, fun, &args, &alen) &&
        ca_match_term(mfa_req, len, "{cast, ~a, ~a, ~t, _}", mod, fun, &args, &alen))
        rc = ca_fmt(&out, "{badrpc, badarg}");
    else if ((rc = apply(self, mod, fun, args, alen, &out, &err, &p)) == DEFERRED) {
        if ((p->reply = to != NULL))
            p->to = *to;
        p->next = st->waiting;
        st->waiting = p;
    } else if (rc)
        rc = ca_fmt(&out, "{badrpc, {'EXIT', ~t}}", err.buff, (size_t)err.index);
    if (rc == 0 && to)
        ca_gen_reply(self, to, out.buff, (size_t)out.index);
    ei_x_free(&out);
    ei_x_free(&err);
}

/* A deferred answer, or its failure, as rpc gives it. */
static void rex_answer(ca_actor *self, pending *p, int ok, const char *t, size_t tl)
{
    if (p->reply && ok)
        ca_gen_replyf(self, &p->to, "~t", t, tl);
    else if (p->reply)
        ca_gen_replyf(self, &p->to, "{badrpc, {'EXIT', ~t}}", t, tl);
    pending_free(self, p);
}

static int rex_handle(ca_actor *self, void *state, ca_msg *m)
{
    rex_state *st = state;
    ca_call_from from;
    const char *req;
    size_t len;
    int ok;
    pending *p;
    if (st->waiting && (p = pending_take(&st->waiting, m, &ok, &req, &len)) != NULL)
        rex_answer(self, p, ok, req, len);
    else if (ca_gen_call_match(m, &from, &req, &len) == 0)
        rex_run(self, st, req, len, &from);
    else if (ca_match(m, "{'$gen_cast', ~t}", &req, &len) == 0)
        rex_run(self, st, req, len, NULL);
    else if (ca_match(m, "{~p, ~t}", &from.pid, &req, &len) == 0) {
        /* ei_rpc (erl_call): {Self, {call, M, F, A, GL}} -> {rex, Result},
         * a gen_server reply whose tag is the atom rex */
        static const char rex_tag[] = {ERL_SMALL_ATOM_UTF8_EXT, 3, 'r', 'e', 'x'};
        from.alias = 0;
        memset(&from.ref, 0, sizeof from.ref);
        from.tag_len = sizeof rex_tag;
        memcpy(from.tag, rex_tag, sizeof rex_tag);
        rex_run(self, st, req, len, &from);
    }
    return 0;
}

static const ca_behaviour rex_b = {"rex", rex_init, rex_handle, rex_terminate};

/* ---- spawned functions (spawn_request) ---- */

typedef enum {
    JOB_CALL,  /* erpc:execute_call(Ref, M, F, A): exits with erpc's result */
    JOB_CAST,  /* erpc:execute_cast(M, F, A) (erpc:cast, rpc:cast): exits normal */
    JOB_APPLY, /* spawn(Node, M, F, A) and its kin: M:F(A...), exits normal */
} job_kind;

typedef struct spawn_job {
    job_kind kind;
    bool bad;                              /* the request's arguments are not erpc's */
    pending *waiting;                      /* the function deferred its answer */
    char mod[CA_MAXATOM], fun[CA_MAXATOM]; /* the function (JOB_APPLY's from the start) */
    const char *ref, *fargs;               /* erpc's Ref, the function's args: in args */
    size_t rl, al, len;
    char args[]; /* the request's argument list, with version byte */
} spawn_job;

/* Where the function, its arguments and erpc's Ref are in the request,
 * read once when the job is made (j->bad if they are not there). */
static void job_parse(spawn_job *j)
{
    switch (j->kind) {
    case JOB_CALL:
        j->bad = ca_match_term(j->args, j->len, "[~t, ~a, ~a, ~t]", &j->ref, &j->rl, j->mod, j->fun,
                               &j->fargs, &j->al) != 0;
        break;
    case JOB_CAST:
        j->bad =
            ca_match_term(j->args, j->len, "[~a, ~a, ~t]", j->mod, j->fun, &j->fargs, &j->al) != 0;
        break;
    default: /* the checked list itself, without its version byte */
        j->fargs = j->args + 1;
        j->al = j->len - 1;
        break;
    }
}

/* An Erlang process that crashes exits with {Reason, Stack} (or the
 * reason of an exit), and the runtime logs it; so does a spawned
 * function that fails. */
static int job_failed(ca_actor *self, const spawn_job *j, const char *why, size_t len)
{
    char text[256];
    ca_term_print(why, len, text, sizeof text);
    ca_log(ca_actor_rt(self), CA_LOG_WARNING, "spawned %s:%s failed: %s", j->mod, j->fun, text);
    return ca_exit(self, "~t", why, len);
}

/* The end of a job whose function deferred: the answer, or the reason it
 * never came, which erpc:execute_call reports as an exit. */
static int job_answer(ca_actor *self, spawn_job *j, int ok, const char *t, size_t tl)
{
    if (j->kind != JOB_CALL)
        return ok ? ca_exit(self, "normal") : job_failed(self, j, t, tl);
    return ok ? ca_exit(self, "{~t, return, ~t}", j->ref, j->rl, t, tl)
              : ca_exit(self, "{~t, exit, ~t}", j->ref, j->rl, t, tl);
}

/* The job's first message runs it; if its function defers, the ones
 * after are awaited for the answer (any other is left unread, as by an
 * Erlang process waiting in a receive: dropped here). */
static int job_handle(ca_actor *self, void *state, ca_msg *m)
{
    spawn_job *j = state;
    const char *why, *stack;
    size_t wl, sl;
    if (j->waiting) {
        int ok;
        pending *p = pending_take(&j->waiting, m, &ok, &why, &wl);
        int rc = p ? job_answer(self, j, ok, why, wl) : 0;
        if (p)
            pending_free(self, p);
        return rc;
    }
    if (j->bad)
        return ca_exit(self, "badarg");
    ei_x_buff res, err;
    if (ei_x_new(&res))
        return CA_ENOMEM;
    if (ei_x_new(&err)) {
        ei_x_free(&res);
        return CA_ENOMEM;
    }
    int rc = apply(self, j->mod, j->fun, j->fargs, j->al, &res, &err, &j->waiting);
    if (rc == DEFERRED)
        rc = 0;
    else if (j->kind != JOB_CALL)
        rc = rc == 0 ? ca_exit(self, "normal") : job_failed(self, j, err.buff, (size_t)err.index);
    /* erpc:execute_call's exit reasons: {Ref, return, V} or
     * {Ref, error, Reason, Stack}. */
    else if (rc == 0)
        rc = ca_exit(self, "{~t, return, ~t}", j->ref, j->rl, res.buff, (size_t)res.index);
    else if (ca_match_term(err.buff, (size_t)err.index, "{~t, ~t}", &why, &wl, &stack, &sl) == 0)
        rc = ca_exit(self, "{~t, error, ~t, ~t}", j->ref, j->rl, why, wl, stack, sl);
    else
        rc = ca_exit(self, "{~t, error, ~t, []}", j->ref, j->rl, err.buff, (size_t)err.index);
    ei_x_free(&res);
    ei_x_free(&err);
    return rc;
}

static void job_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    spawn_job *j = state;
    (void)self;
    (void)reason;
    (void)len;
    if (j)
        free(j->waiting);
    free(j);
}

static const ca_behaviour job_b = {"spawned", NULL, job_handle, job_terminate};

static job_kind job_kind_of(const char *mod, const char *fun, unsigned arity)
{
    if (strcmp(mod, "erpc") != 0)
        return JOB_APPLY;
    if (arity == 4 && strcmp(fun, "execute_call") == 0)
        return JOB_CALL;
    return arity == 3 && strcmp(fun, "execute_cast") == 0 ? JOB_CAST : JOB_APPLY;
}

/* Where a job runs. A function whose calls are short (most) runs on the
 * scheduler that serves the sockets: the request is read, run and
 * answered (its exit is the DOWN erpc waits for) without a thread hop,
 * 3x less CPU per call on the benchmark VM (BENCHMARKS.md). One whose
 * calls have taken HEAVY_US or more is spread over the schedulers, as
 * the BEAM spreads busy processes, so that many callers use every core. */
#define HEAVY_US 20

static int job_sched(ca_rt *rt, const spawn_job *j)
{
    ca__rpc_hit hit;
    if (j->bad)
        return 0; /* badarg, at once */
    int arity = list_len(j->fargs, j->al);
    if (arity < 0 || ca__rpc_find(rt, j->mod, j->fun, arity, &hit))
        return 0;
    return atomic_load_explicit(hit.cost_us, memory_order_relaxed) >= HEAVY_US ? CA_SCHED_DEFAULT
                                                                               : 0;
}

int ca__spawn_job(ca_rt *rt, const char *mod, const char *fun, unsigned arity, const char *args,
                  size_t len, ca_pid *pid)
{
    if (ca__etf_check(args, len) || strlen(mod) >= CA_MAXATOM || strlen(fun) >= CA_MAXATOM)
        return CA_EBADTERM;
    spawn_job *j = malloc(sizeof *j + len);
    if (!j)
        return CA_ENOMEM;
    j->kind = job_kind_of(mod, fun, arity);
    j->bad = false;
    j->waiting = NULL;
    strcpy(j->mod, mod);
    strcpy(j->fun, fun);
    j->ref = NULL;
    j->rl = 0;
    j->len = len;
    memcpy(j->args, args, len);
    job_parse(j);
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.sched = job_sched(rt, j);
    int rc = ca_spawn(rt, &job_b, j, &o, pid);
    if (rc)
        free(j);
    return rc;
}

int ca__spawn_job_run(ca_rt *rt, ca_pid pid)
{
    return ca_rt_sendf(rt, CA_PID_NONE, pid, "run");
}

/* ---- plugins ---- */

struct ca_plugin {
    ca_rt *rt;
    ca_child_spec *children;
    size_t n, cap;
};

ca_rt *ca_plugin_rt(ca_plugin *p)
{
    return p->rt;
}

int ca_plugin_add_child(ca_plugin *p, const ca_child_spec *spec)
{
    if (!p || !spec || !spec->id || !spec->behaviour)
        return CA_EINVAL;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        ca_child_spec *c = realloc(p->children, cap * sizeof *c);
        if (!c)
            return CA_ENOMEM;
        p->children = c;
        p->cap = cap;
    }
    ca_child_spec *c = &p->children[p->n];
    *c = *spec;
    c->id = strdup(spec->id);
    c->name = spec->name ? strdup(spec->name) : NULL;
    if (!c->id || (spec->name && !c->name)) {
        free((char *)c->id);
        free((char *)c->name);
        return CA_ENOMEM;
    }
    p->n++;
    return 0;
}

ca_plugin *ca__plugin_new(ca_rt *rt)
{
    ca_plugin *p = calloc(1, sizeof *p);
    if (p)
        p->rt = rt;
    return p;
}

void ca__plugin_free(ca_plugin *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free((char *)p->children[i].id);
        free((char *)p->children[i].name);
    }
    free(p->children);
    free(p);
}

const ca_child_spec *ca__plugin_children(ca_plugin *p, size_t *n)
{
    *n = p->n;
    return p->children;
}

int ca__plugin_load(ca_plugin *p, const char *path, char *err, size_t errcap)
{
    /* RTLD_NOW: a missing symbol is an error now, not a crash later. The
     * handle stays open for the life of the process: the plugin's
     * behaviours are referenced by running actors. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errcap, "%s", dlerror());
        return CA_ENOENT;
    }
    ca_plugin_init_fn init;
    *(void **)&init = dlsym(h, CA_PLUGIN_INIT);
    if (!init) {
        snprintf(err, errcap, "%s has no %s()", path, CA_PLUGIN_INIT);
        return CA_EINVAL;
    }
    int rc = init(p);
    if (rc)
        snprintf(err, errcap, "%s() of %s failed: %s", CA_PLUGIN_INIT, path, ca_strerror(rc));
    return rc;
}

/* ---- start-up ---- */

int ca__services_register(ca_rt *rt, ca_node *node)
{
    int rc;
    if ((rc = ca_rpc_register(rt, "erlang", "node", 0, fn_node, NULL)) ||
        (rc = ca_rpc_register(rt, "erlang", "whereis", 1, fn_whereis, NULL)) ||
        (rc = ca_rpc_register(rt, "erlang", "registered", 0, fn_registered, NULL)) ||
        (rc = ca_rpc_register(rt, "erlang", "processes", 0, fn_processes, NULL)) ||
        (rc = ca_rpc_register(rt, "erlang", "is_process_alive", 1, fn_is_process_alive, NULL)) ||
        (rc = ca_rpc_register(rt, "erlang", "process_info", 2, fn_process_info, NULL)) ||
        (rc = ca_rpc_register(rt, "erlang", "process_info", 1, fn_process_info_all, NULL)) ||
        (rc = ca_rpc_register(rt, "cactor", "info", 0, fn_info, node)))
        return rc;
    return 0;
}

size_t ca__services_children(ca_child_spec *out, size_t cap)
{
    const ca_child_spec kids[] = {
        {.id = "net_kernel", .behaviour = &net_kernel_b, .name = "net_kernel", .on_sched = 1},
        {.id = "rex", .behaviour = &rex_b, .name = "rex", .on_sched = 1},
    };
    size_t n = sizeof kids / sizeof kids[0];
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = kids[i];
    return n;
}
