/*
 * gen_server interop: answering calls the way gen_server:reply does, and
 * making calls without blocking the actor's scheduler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "dist.h"
#include "internal.h"
#include "node.h"

/*
 * Every call is matched and answered here, so both are written out by
 * hand rather than with ca_match and ca_fmt, whose patterns cost 4,000
 * and 2,000 instructions a call (callgrind, 100 callers on echo).
 */

/* The atom `name` at b[*i]; moves *i past it. */
static int atom_at(const char *b, size_t len, size_t *i, const char *name)
{
    size_t k = ca__atom_is((const unsigned char *)b + *i, len - *i, name);
    *i += k;
    return k != 0;
}

/* A small tuple header of `arity` at b[*i]; moves *i past it. */
static int tuple_at(const char *b, size_t len, size_t *i, unsigned arity)
{
    if (len - *i < 2 || (unsigned char)b[*i] != ERL_SMALL_TUPLE_EXT ||
        (unsigned char)b[*i + 1] != arity)
        return 0;
    *i += 2;
    return 1;
}

/* The tag's reference: Ref, or [alias | Ref] (then 1). */
static int tag_ref(const char *t, size_t tl, ca_ref *ref)
{
    size_t i = 0;
    int alias = 0, idx;
    if (tl > 5 && (unsigned char)t[0] == ERL_LIST_EXT &&
        ca__get32((const unsigned char *)t + 1) == 1) {
        i = 5;
        if (!atom_at(t, tl, &i, "alias"))
            return -1;
        alias = 1;
    }
    idx = (int)i;
    if (ca_decode_ref(t, &idx, ref) != 0 || (size_t)idx != tl)
        return -1;
    return alias;
}

/* {Kind, {Pid, Tag}, Request}: '$gen_call' (gen:call) or system (sys). */
static int call_match(const ca_msg *m, const char *kind, ca_call_from *from, const char **req,
                      size_t *len)
{
    size_t n = 0, i = 1, tag, end;
    const char *b = m ? ca_msg_data(m, &n) : NULL;
    if (!from || !req || !len)
        return CA_EINVAL;
    if (!b || n < 2 || (unsigned char)b[0] != 131 || !tuple_at(b, n, &i, 3) ||
        !atom_at(b, n, &i, kind) || !tuple_at(b, n, &i, 2))
        return CA_ENOMATCH;
    ca_pid pid;
    int idx = (int)i;
    if (ca_decode_pid(b, &idx, &pid) != 0)
        return CA_ENOMATCH;
    tag = end = (size_t)idx;
    if (ca__etf_skip(b, n, &end) < 0 || end - tag > sizeof from->tag)
        return CA_ENOMATCH; /* not a tag gen makes: a ref or [alias | Ref] */
    size_t at = end;
    if (ca__etf_skip(b, n, &end) < 0 || end != n)
        return CA_ENOMATCH;
    memset(from, 0, sizeof *from);
    from->pid = pid;
    from->tag_len = at - tag;
    memcpy(from->tag, b + tag, from->tag_len);
    int a = tag_ref(from->tag, from->tag_len, &from->ref);
    if (a < 0)
        memset(&from->ref, 0, sizeof from->ref); /* some other tag: echoed as is */
    from->alias = a == 1;
    *req = b + at;
    *len = n - at;
    return 0;
}

int ca_gen_call_match(const ca_msg *m, ca_call_from *from, const char **req, size_t *len)
{
    return call_match(m, "$gen_call", from, req, len);
}

int ca__sys_call_match(const ca_msg *m, ca_call_from *from, const char **req, size_t *len)
{
    return call_match(m, "system", from, req, len);
}

/* A tag that is one term, without version byte: `from` may have been
 * filled in by hand. */
static int from_ok(const ca_call_from *from)
{
    return from && from->tag_len && from->tag_len <= sizeof from->tag &&
           (unsigned char)from->tag[0] != 131 && ca__term_check(from->tag, from->tag_len) == 0;
}

/* {Tag, Reply} laid out by hand: both are terms already, and this is
 * every call's answer (formatting it cost 2,000 instructions). `body` is
 * the reply without version byte, checked. Sent without a third walk. */
static int reply_body(ca_actor *self, const ca_call_from *from, const char *body, size_t blen)
{
    if (!self || !from_ok(from))
        return CA_EINVAL;
    size_t n = 3 + from->tag_len + blen;
    /* 4 KiB: a kilobyte reply took malloc's slow path (past its
     * per-thread cache) with every call */
    char stack[4096], *b = n <= sizeof stack ? stack : malloc(n);
    if (!b)
        return CA_ENOMEM;
    b[0] = (char)131;
    b[1] = (char)ERL_SMALL_TUPLE_EXT;
    b[2] = 2;
    memcpy(b + 3, from->tag, from->tag_len);
    memcpy(b + 3 + from->tag_len, body, blen);
    int rc = from->alias ? ca__send_alias(self, &from->ref, b, n) : ca_send(self, from->pid, b, n);
    if (b != stack)
        free(b);
    /* a caller that gave up and exited is no error: gen_server:reply
     * never fails, and a handle_call that returns what the reply gave
     * would crash the server for it */
    return rc == CA_ESRCH ? 0 : rc;
}

int ca_gen_reply(ca_actor *self, const ca_call_from *from, const void *reply, size_t len)
{
    if (!self || !from)
        return CA_EINVAL;
    if (ca__etf_check(reply, len))
        return CA_EBADTERM;
    return reply_body(self, from, (const char *)reply + 1, len - 1);
}

/* One term as it is (an echo, or a part of the request) needs no
 * formatter: only a check. */
static int reply_term(ca_actor *self, const ca_call_from *from, va_list ap)
{
    const char *t = va_arg(ap, const char *);
    size_t tl = va_arg(ap, size_t);
    if (!t || !tl)
        return CA_EINVAL;
    if ((unsigned char)t[0] == 131) {
        t++;
        tl--;
    }
    if (!tl || (unsigned char)t[0] == 131 || ca__term_check(t, tl))
        return CA_EBADTERM;
    return reply_body(self, from, t, tl);
}

int ca_gen_replyf(ca_actor *self, const ca_call_from *from, const char *fmt, ...)
{
    const char *buf;
    size_t len;
    int rc;
    if (fmt && strcmp(fmt, "~t") == 0) {
        va_list ap;
        va_start(ap, fmt);
        rc = reply_term(self, from, ap);
        va_end(ap);
        return rc;
    }
    CA__FMT_VARARGS(fmt, buf, len, rc);
    if (rc)
        return rc;
    /* ca_gen_reply formats again into its own buffer, so the TLS one is safe. */
    return ca_gen_reply(self, from, buf, len);
}

/* {'$gen_call', {Pid, Tag}, Request} as `from` would have sent it. */
int ca_gen_call_for(ca_actor *self, ca_pid to, const ca_call_from *from, const char *fmt, ...)
{
    if (!self || !from_ok(from) || !fmt)
        return CA_EINVAL;
    ei_x_buff x;
    if (ei_x_new_with_version(&x))
        return CA_ENOMEM;
    int rc = ei_x_encode_tuple_header(&x, 3) || ei_x_encode_atom(&x, "$gen_call") ||
                     ei_x_encode_tuple_header(&x, 2)
                 ? CA_ENOMEM
                 : ca_fmt(&x, "~p", from->pid);
    if (rc == 0 && ei_x_append_buf(&x, from->tag, (int)from->tag_len))
        rc = CA_ENOMEM;
    if (rc == 0) {
        va_list ap;
        va_start(ap, fmt);
        rc = ca_vfmt(&x, fmt, ap);
        va_end(ap);
    }
    if (rc == 0)
        rc = ca_send(self, to, x.buff, (size_t)x.index);
    ei_x_free(&x);
    return rc;
}

/* Where a call goes: a pid, or {name, node} (node NULL: here). */
typedef struct call_dest {
    ca_pid pid;
    const char *name, *node;
} call_dest;

static int call_send(ca_actor *self, const call_dest *d, const char *buf, size_t len)
{
    if (!d->name)
        return ca_send(self, d->pid, buf, len);
    if (!d->node)
        return ca_send_name(self, d->name, buf, len);
    return ca_send_reg(self, d->name, d->node, buf, len);
}

static int call_start(ca_actor *self, const call_dest *d, const void *req, size_t len,
                      uint64_t timeout_ms, ca_call *call)
{
    if (!self || !call)
        return CA_EINVAL;
    if (ca__etf_check(req, len))
        return CA_EBADTERM;
    memset(call, 0, sizeof *call);
    /* The monitor's reference doubles as the call's tag, as in gen:call. */
    int rc = d->name ? ca_monitor_name(self, d->name, d->node, &call->ref)
                     : ca_monitor(self, d->pid, &call->ref);
    if (rc)
        return rc;
    ei_x_buff x;
    if (ei_x_new_with_version(&x)) {
        ca_demonitor(self, &call->ref);
        return CA_ENOMEM;
    }
    rc = ca_fmt(&x, "{'$gen_call', {~p, ~r}, ~t}", ca_self(self), &call->ref, (const char *)req,
                len);
    if (rc == 0)
        rc = call_send(self, d, x.buff, (size_t)x.index);
    ei_x_free(&x);
    /* Gone, or the name unregistered since the monitor looked: the
     * monitor's DOWN answers the call, or else the timeout. */
    if (rc == CA_ESRCH || (d->name && rc == CA_ENOENT))
        rc = 0;
    if (rc == 0)
        rc = ca_sendf_after(self, timeout_ms, ca_self(self), &call->timer, "{'$call_timeout', ~r}",
                            &call->ref);
    if (rc) {
        ca_demonitor(self, &call->ref);
        return rc;
    }
    return 0;
}

int ca_gen_call(ca_actor *self, ca_pid to, const void *req, size_t len, uint64_t timeout_ms,
                ca_call *call)
{
    call_dest d = {.pid = to};
    return call_start(self, &d, req, len, timeout_ms, call);
}

int ca_gen_call_name(ca_actor *self, const char *name, const char *node, const void *req,
                     size_t len, uint64_t timeout_ms, ca_call *call)
{
    if (!name)
        return CA_EINVAL;
    call_dest d = {.name = name, .node = node};
    return call_start(self, &d, req, len, timeout_ms, call);
}

int ca_gen_call_done(ca_actor *self, const ca_call *call)
{
    if (!self || !call)
        return CA_EINVAL;
    ca_demonitor(self, &call->ref);
    if (call->timer)
        ca_cancel_timer(self, call->timer);
    return 0;
}

/* ---- calls from outside the runtime ---- */

/*
 * A program's own thread cannot receive, so a short-lived actor makes the
 * call for it (ca_gen_call: monitor, request, timer) and hands the
 * outcome over under a lock. Its terminate callback, which runs exactly
 * once whatever happens (shutdown included), is what releases the waiter;
 * the waiter owns the struct and frees nothing before that.
 */
typedef struct ext_call {
    ca__waiter wait;
    int rc;
    call_dest dest;
    const void *req;
    size_t len;
    uint64_t timeout_ms;
    ca_call call;
    char *reply;
    size_t reply_len;
} ext_call;

static int ext_init(ca_actor *self, void *arg, void **state)
{
    ext_call *e = arg;
    (void)state;
    int rc = call_start(self, &e->dest, e->req, e->len, e->timeout_ms, &e->call);
    if (rc) {
        e->rc = rc;
        return ca_exit(self, "normal");
    }
    return 0;
}

/* The call's outcome: 0 and a copy of the reply, or why not. */
static int ext_outcome(ext_call *e, ca_msg *m)
{
    ca_ref ref;
    const char *t;
    size_t tl;
    if (ca_match(m, "{~r, ~t}", &ref, &t, &tl) == 0 && ca_ref_eq(&ref, &e->call.ref)) {
        if (!(e->reply = malloc(tl + 1)))
            return CA_ENOMEM;
        e->reply[0] = (char)131;
        memcpy(e->reply + 1, t, tl);
        e->reply_len = tl + 1;
        return 0;
    }
    if (ca_match(m, "{'DOWN', ~r, process, _, ~t}", &ref, &t, &tl) == 0 &&
        ca_ref_eq(&ref, &e->call.ref))
        return ca__is_atom(t, tl, "noconnection") ? CA_ENOTCONN : CA_ESRCH;
    if (ca_match(m, "{'$call_timeout', ~r}", &ref) == 0 && ca_ref_eq(&ref, &e->call.ref))
        return CA_ETIMEDOUT;
    return 1; /* not about the call */
}

static int ext_handle(ca_actor *self, void *state, ca_msg *m)
{
    ext_call *e = state;
    int rc = ext_outcome(e, m);
    if (rc == 1)
        return 0;
    e->rc = rc;
    ca_gen_call_done(self, &e->call);
    return ca_exit(self, "normal");
}

static void ext_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    ext_call *e = state;
    (void)self, (void)reason, (void)len;
    ca__waiter_done(&e->wait); /* the waiter may free e from here on */
}

static const ca_behaviour ext_caller = {"caller", ext_init, ext_handle, ext_terminate};

static int ext_call_run(ca_rt *rt, ext_call *e, char **reply, size_t *reply_len)
{
    if (!rt || !reply || !reply_len)
        return CA_EINVAL;
    if (ca__current_sched())
        return CA_EPERM; /* waiting here would block a scheduler loop */
    *reply = NULL;
    *reply_len = 0;
    ca__waiter_init(&e->wait);
    e->rc = CA_ECLOSED; /* unless the caller says otherwise: shut down first */
    int rc = ca_spawn(rt, &ext_caller, e, NULL, NULL);
    if (rc)
        ca__waiter_done(&e->wait); /* not spawned: nothing to wait for */
    ca__waiter_wait(&e->wait);
    rc = rc ? rc : e->rc;
    if (rc == 0) {
        *reply = e->reply;
        *reply_len = e->reply_len;
    } else {
        free(e->reply);
    }
    return rc;
}

int ca_rt_call(ca_rt *rt, ca_pid to, const void *req, size_t len, uint64_t timeout_ms, char **reply,
               size_t *reply_len)
{
    ext_call e = {.dest = {.pid = to}, .req = req, .len = len, .timeout_ms = timeout_ms};
    return ext_call_run(rt, &e, reply, reply_len);
}

int ca_rt_call_name(ca_rt *rt, const char *name, const char *node, const void *req, size_t len,
                    uint64_t timeout_ms, char **reply, size_t *reply_len)
{
    if (!name)
        return CA_EINVAL;
    ext_call e = {
        .dest = {.name = name, .node = node}, .req = req, .len = len, .timeout_ms = timeout_ms};
    return ext_call_run(rt, &e, reply, reply_len);
}

/* ---- rpc:call to a node's rex ---- */

/*
 * {call, M, F, Args, user}, what rpc:call asks rex for (RPC_CALL), or the
 * cast of rpc:cast (RPC_CAST). The group leader is the atom `user` (rex
 * takes that node's console): a C actor as group leader would leave the
 * function waiting for answers to io requests.
 */
#define RPC_CALL "{call, ~a, ~a, ~t, user}"
#define RPC_CAST "{'$gen_cast', {cast, ~a, ~a, ~t, user}}"

static int rpc_request(const char *fmt, const char *mod, const char *fun, const void *args,
                       size_t len, ei_x_buff *x)
{
    if (!ca__name_valid(mod) || !ca__name_valid(fun))
        return CA_EBADNAME;
    if (ca__etf_check(args, len))
        return CA_EBADTERM;
    /* Checked here, not by the remote apply, whose badarg would not say
     * which argument was wrong. */
    char type = ((const char *)args)[1];
    if (type != ERL_LIST_EXT && type != ERL_NIL_EXT && type != ERL_STRING_EXT)
        return CA_EINVAL;
    if (ei_x_new_with_version(x))
        return CA_ENOMEM;
    int rc = ca_fmt(x, fmt, mod, fun, (const char *)args, len);
    if (rc)
        ei_x_free(x);
    return rc;
}

int ca_rpc_call(ca_actor *self, const char *node, const char *mod, const char *fun,
                const void *args, size_t len, uint64_t timeout_ms, ca_call *call)
{
    ei_x_buff x;
    int rc = rpc_request(RPC_CALL, mod, fun, args, len, &x);
    if (rc)
        return rc;
    rc = ca_gen_call_name(self, "rex", node, x.buff, (size_t)x.index, timeout_ms, call);
    ei_x_free(&x);
    return rc;
}

/* rpc:cast in `from`'s name: to {rex, node}, or the local rex. */
static int rpc_cast(ca_rt *rt, ca_pid from, const char *node, const char *mod, const char *fun,
                    const void *args, size_t len)
{
    ei_x_buff x;
    int rc = rpc_request(RPC_CAST, mod, fun, args, len, &x);
    if (rc)
        return rc;
    rc = node ? ca_rt_send_reg(rt, from, "rex", node, x.buff, (size_t)x.index)
              : ca_rt_send_name(rt, from, "rex", x.buff, (size_t)x.index);
    ei_x_free(&x);
    return rc;
}

int ca_rpc_cast(ca_actor *self, const char *node, const char *mod, const char *fun,
                const void *args, size_t len)
{
    return self ? rpc_cast(ca_actor_rt(self), ca_self(self), node, mod, fun, args, len) : CA_EINVAL;
}

int ca_rt_rpc_cast(ca_rt *rt, const char *node, const char *mod, const char *fun, const void *args,
                   size_t len)
{
    return rt ? rpc_cast(rt, CA_PID_NONE, node, mod, fun, args, len) : CA_EINVAL;
}

int ca_rt_rpc_call(ca_rt *rt, const char *node, const char *mod, const char *fun, const void *args,
                   size_t len, uint64_t timeout_ms, char **result, size_t *result_len)
{
    ei_x_buff x;
    int rc = rpc_request(RPC_CALL, mod, fun, args, len, &x);
    if (rc)
        return rc;
    rc = ca_rt_call_name(rt, "rex", node, x.buff, (size_t)x.index, timeout_ms, result, result_len);
    ei_x_free(&x);
    return rc;
}

/* ---- gen_server callbacks over a plain behaviour ---- */

typedef struct gs_state {
    const ca_gen_server *cb;
    void *state;
    bool suspended;
    ca_msg **held; /* what came while suspended, in arrival order */
    size_t nheld, cap;
} gs_state;

static int gs_init(ca_actor *self, void *arg, void **state)
{
    const ca_gen_server_spec *spec = arg;
    *state = NULL; /* from here on, terminate knows it is not the spec */
    if (!spec || !spec->cb)
        return CA_EINVAL;
    gs_state *g = calloc(1, sizeof *g);
    if (!g)
        return CA_ENOMEM;
    g->cb = spec->cb;
    g->state = spec->arg;
    *state = g;
    return g->cb->init ? g->cb->init(self, spec->arg, &g->state) : 0;
}

/* A message for the callbacks (not a sys request). */
static int gs_dispatch(ca_actor *self, gs_state *g, ca_msg *m)
{
    ca_call_from from;
    const char *req;
    size_t len;
    if (ca_gen_call_match(m, &from, &req, &len) == 0) {
        if (!g->cb->handle_call)
            return ca_gen_replyf(self, &from, "{error, not_implemented}");
        return g->cb->handle_call(self, g->state, &from, req, len);
    }
    if (ca_match(m, "{'$gen_cast', ~t}", &req, &len) == 0)
        return g->cb->handle_cast ? g->cb->handle_cast(self, g->state, req, len) : 0;
    return g->cb->handle_info ? g->cb->handle_info(self, g->state, m) : 0;
}

/* Suspended: keep the message being handled for the resume. */
static int hold(ca_actor *self, gs_state *g)
{
    if (g->nheld == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 16;
        ca_msg **h = realloc(g->held, cap * sizeof *h);
        if (!h)
            return CA_ENOMEM;
        g->held = h;
        g->cap = cap;
    }
    g->held[g->nheld++] = ca_msg_keep(self, NULL);
    return 0;
}

static void release_held(gs_state *g, size_t from)
{
    for (size_t i = from; i < g->nheld; i++)
        ca_msg_release(g->held[i]);
    g->nheld = 0;
}

/*
 * Resumed: the held messages, in order, before anything still in the
 * mailbox (all of which came later). Each is made the message being
 * handled, so that the callbacks can keep or forward it as usual. A
 * callback that fails or exits ends the replay, as it ends the actor.
 */
static int replay(ca_actor *self, gs_state *g)
{
    ca_msg *resume = self->cur;
    int rc = 0;
    size_t i = 0;
    while (i < g->nheld && rc == 0 && !(self->flags & CA__A_EXITING)) {
        ca_msg *m = g->held[i++];
        self->cur = m;
        rc = gs_dispatch(self, g, m);
        if (self->cur == m)
            ca_msg_release(m);
    }
    self->cur = resume;
    release_held(g, i);
    return rc;
}

/* The state as a term, from the callback; `out` is left as it was if
 * the callback fails. */
static int state_term(ca_actor *self, gs_state *g, ei_x_buff *out)
{
    int start = out->index;
    int rc = g->cb->format_state(self, g->state, out);
    if (rc == 0 && ca__term_check(out->buff + start, (size_t)(out->index - start)))
        rc = CA_EBADTERM;
    if (rc)
        out->index = start;
    return rc;
}

static int failed_reply(ca_actor *self, const ca_call_from *from, int rc)
{
    return ca_gen_replyf(self, from, "{error, {callback_failed, {format_state, ~a}}}",
                         ca_errname(rc));
}

static int state_reply(ca_actor *self, gs_state *g, const ca_call_from *from)
{
    if (!g->cb->format_state)
        return ca_gen_replyf(self, from, "{error, {not_supported, get_state}}");
    ei_x_buff x;
    if (ei_x_new_with_version(&x))
        return CA_ENOMEM;
    int rc = state_term(self, g, &x);
    rc = rc ? failed_reply(self, from, rc) : ca_gen_reply(self, from, x.buff, (size_t)x.index);
    ei_x_free(&x);
    return rc;
}

/*
 * sys:get_status's answer, in gen_server's shape: {status, Pid, {module,
 * gen_server}, [PDict, SysState, Parent, Debug, Misc]} where Misc is
 * [{header, Text}, {data, [{"Status", S}, {"Parent", P}, {"Logged
 * events", []}]}, {data, [{"State", State}]}], the last without
 * format_state. A C actor has no process dictionary, debug options or
 * parent (a process started without one names itself, as here).
 */
#define STATUS_HEAD                                                                                \
    "{status, ~p, {module, gen_server}, [[], ~a, ~p, [], [{header, ~s}, "                          \
    "{data, [{\"Status\", ~a}, {\"Parent\", ~p}, {\"Logged events\", []}]}"

int ca__sys_status_reply(ca_actor *self, const ca_call_from *from, const char *fallback,
                         const char *status, const char *state, size_t len)
{
    char name[CA_MAXATOM], header[CA_MAXATOM + 64];
    ca__name_of(ca_actor_rt(self), ca_self(self), name, sizeof name);
    snprintf(header, sizeof header, "Status for generic server %s",
             name[0] ? name : (fallback ? fallback : "(C)"));
    ca_pid me = ca_self(self);
    /* without a state the pattern stops before the state's ~t */
    const char *fmt = state ? STATUS_HEAD ", {data, [{\"State\", ~t}]}]]}" : STATUS_HEAD "]]}";
    return ca_gen_replyf(self, from, fmt, me, status, me, header, status, me, state, len);
}

int ca__sys_plain(ca_actor *self, const ca_msg *m, const char *name, const char *state, size_t len)
{
    ca_call_from from;
    const char *req, *r;
    size_t rl, ql;
    if (ca__sys_call_match(m, &from, &req, &ql) != 0)
        return 0;
    if (ca_match_term(req, ql, "{terminate, ~t}", &r, &rl) == 0) {
        ca_gen_replyf(self, &from, "ok"); /* as sys does, before it goes */
        ca_exit(self, "~t", r, rl);
    } else if (ca__is_atom(req, ql, "get_state")) {
        ca_gen_replyf(self, &from, "~t", state, len);
    } else if (ca__is_atom(req, ql, "get_status")) {
        ca__sys_status_reply(self, &from, name, "running", state, len);
    } else { /* suspend and resume too: a plain actor cannot hold messages back */
        ca_gen_replyf(self, &from, "{error, {not_supported, ~t}}", req, ql);
    }
    return 1;
}

static int status_reply(ca_actor *self, gs_state *g, const ca_call_from *from)
{
    ei_x_buff st;
    if (ei_x_new(&st))
        return CA_ENOMEM;
    int rc = g->cb->format_state ? state_term(self, g, &st) : 0;
    rc = rc ? failed_reply(self, from, rc)
            : ca__sys_status_reply(self, from, g->cb->name, g->suspended ? "suspended" : "running",
                                   g->cb->format_state ? st.buff : NULL, (size_t)st.index);
    ei_x_free(&st);
    return rc;
}

/* sys's requests ({system, From, Request}, from sys:get_state,
 * gen_server:stop and the like), answered as gen_server answers them
 * where a C server can; the others with {error, {not_supported,
 * Request}} at once (sys raises it) rather than left to time out. */
static int gs_system(ca_actor *self, gs_state *g, const ca_call_from *from, const char *req,
                     size_t len)
{
    const char *r;
    size_t rl;
    if (ca_match_term(req, len, "{terminate, ~t}", &r, &rl) == 0) {
        ca_gen_replyf(self, from, "ok"); /* as sys does, before it goes */
        return ca_exit(self, "~t", r, rl);
    }
    if (ca__is_atom(req, len, "get_state"))
        return state_reply(self, g, from);
    if (ca__is_atom(req, len, "get_status"))
        return status_reply(self, g, from);
    if (ca__is_atom(req, len, "suspend")) {
        g->suspended = true;
        return ca_gen_replyf(self, from, "ok");
    }
    if (ca__is_atom(req, len, "resume")) {
        int rc = ca_gen_replyf(self, from, "ok");
        g->suspended = false;
        return rc ? rc : replay(self, g);
    }
    return ca_gen_replyf(self, from, "{error, {not_supported, ~t}}", req, len);
}

static int gs_handle(ca_actor *self, void *state, ca_msg *m)
{
    gs_state *g = state;
    ca_call_from from;
    const char *req;
    size_t len;
    if (ca__sys_call_match(m, &from, &req, &len) == 0)
        return gs_system(self, g, &from, req, len);
    if (g->suspended)
        return hold(self, g);
    return gs_dispatch(self, g, m);
}

static void gs_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    gs_state *g = state;
    /* Before init ran, state is still the spec: nothing of ours to free. */
    if (!g || !ca__actor_inited(self))
        return;
    if (g->cb->terminate)
        g->cb->terminate(self, g->state, reason, len);
    release_held(g, 0);
    free(g->held);
    free(g);
}

const ca_behaviour ca_gen_server_behaviour = {"gen_server", gs_init, gs_handle, gs_terminate};
