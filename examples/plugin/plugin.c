/*
 * An example cactor-node plugin: load it with
 *
 *     cactor-node --sname demo --load build/example_plugin.so
 *
 * It adds three actors under the node's root supervisor and functions
 * callable with rpc:call / erpc:call:
 *
 *   kv       a key-value store written as a gen_server (ca_gen_server):
 *              gen_server:call({kv, Node}, {put, Key, Value}) -> ok
 *              gen_server:call({kv, Node}, {get, Key}) -> {ok, Value} | not_found
 *              gen_server:cast({kv, Node}, {put, Key, Value})
 *              gen_server:call({kv, Node}, crash) crashes it, and
 *              gen_server:stop({kv, Node}) stops it (a demo of the
 *              supervisor: it comes back, empty)
 *   caller   calls an Erlang gen_server from C without blocking:
 *              {caller, Node} ! {call, Server, Request, ReplyTo}
 *              Server is a pid or {Name, ServerNode} (a registered name);
 *              ReplyTo then gets {called, Reply} or {call_failed, Why};
 *              {caller, Node} ! {rpc, OnNode, M, F, Args, ReplyTo} runs
 *              M:F(Args...) on OnNode as rpc:call does (ca_rpc_call):
 *              {called, Result} (Result as rpc:call returns it);
 *              {rpc_cast, OnNode, M, F, Args, ReplyTo} as rpc:cast does
 *              (ca_rpc_cast): {cast, ok} once sent
 *   kv_pool  a supervisor (simple_one_for_one) of unnamed kv stores, which
 *            Erlang's supervisor module grows and shrinks:
 *              {ok, Pid} = supervisor:start_child({kv_pool, Node}, [])
 *              supervisor:terminate_child({kv_pool, Node}, Pid)
 *              supervisor:which_children({kv_pool, Node})
 *   example:add(A, B) -> A + B
 *   example:reverse(Binary) -> the bytes in reverse order
 *   example:get(Key) -> what kv holds for Key: {ok, Value} | not_found
 *            (answered by kv itself: a deferred rpc answer)
 *   example:call(Server, Request) -> gen_server:call(Server, Request),
 *            Server a pid of any node
 */
#include <stdlib.h>
#include <string.h>

#include <cactor.h>

/* ---- kv ---- */

typedef struct kv_item {
    struct kv_item *next;
    size_t klen, vlen;
    char *key, *val; /* encoded terms, no version byte */
} kv_item;

static kv_item *kv_find(kv_item *list, const char *k, size_t kl)
{
    for (; list; list = list->next)
        if (list->klen == kl && memcmp(list->key, k, kl) == 0)
            return list;
    return NULL;
}

static int kv_put(kv_item **list, const char *k, size_t kl, const char *v, size_t vl)
{
    kv_item *it = kv_find(*list, k, kl);
    char *val = malloc(vl);
    if (!val)
        return CA_ENOMEM;
    memcpy(val, v, vl);
    if (!it) {
        it = calloc(1, sizeof *it);
        if (!it || !(it->key = malloc(kl))) {
            free(it);
            free(val);
            return CA_ENOMEM;
        }
        memcpy(it->key, k, kl);
        it->klen = kl;
        it->next = *list;
        *list = it;
    }
    free(it->val);
    it->val = val;
    it->vlen = vl;
    return 0;
}

typedef struct kv_state {
    kv_item *head;
} kv_state;

static int kv_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    *state = calloc(1, sizeof(kv_state)); /* each incarnation starts empty */
    return *state ? 0 : CA_ENOMEM;
}

/* gen_server:call({kv, Node}, Request) */
static int kv_call(ca_actor *self, void *state, const ca_call_from *from, const char *req,
                   size_t len)
{
    kv_item **list = &((kv_state *)state)->head;
    const char *k, *v;
    size_t kl, vl;
    if (ca_match_term(req, len, "{put, ~t, ~t}", &k, &kl, &v, &vl) == 0) {
        int rc = kv_put(list, k, kl, v, vl);
        ca_gen_replyf(self, from, rc ? "{error, ~a}" : "ok", ca_errname(rc));
        return rc;
    }
    if (ca_match_term(req, len, "{get, ~t}", &k, &kl) == 0) {
        kv_item *it = kv_find(*list, k, kl);
        return it ? ca_gen_replyf(self, from, "{ok, ~t}", it->val, it->vlen)
                  : ca_gen_replyf(self, from, "not_found");
    }
    if (ca_match_term(req, len, "crash") == 0)
        return ca_exit(self, "{crashed, on_request}");
    return ca_gen_replyf(self, from, "{error, unknown_request}");
}

/* gen_server:cast({kv, Node}, Request) */
static int kv_cast(ca_actor *self, void *state, const char *req, size_t len)
{
    const char *k, *v;
    size_t kl, vl;
    (void)self;
    if (ca_match_term(req, len, "{put, ~t, ~t}", &k, &kl, &v, &vl) == 0)
        return kv_put(&((kv_state *)state)->head, k, kl, v, vl);
    return 0;
}

static void kv_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    (void)self;
    (void)reason;
    (void)len;
    kv_state *st = state;
    kv_item *it = st ? st->head : NULL;
    free(st);
    while (it) {
        kv_item *n = it->next;
        free(it->key);
        free(it->val);
        free(it);
        it = n;
    }
}

/* sys:get_state({kv, Node}): the store as [{Key, Value}], newest first. */
static int kv_format_state(ca_actor *self, void *state, ei_x_buff *out)
{
    kv_item *head = ((kv_state *)state)->head;
    long n = 0;
    (void)self;
    for (kv_item *it = head; it; it = it->next)
        n++;
    if (n && ei_x_encode_list_header(out, n))
        return CA_ENOMEM;
    for (kv_item *it = head; it; it = it->next)
        if (ca_fmt(out, "{~t, ~t}", it->key, it->klen, it->val, it->vlen))
            return CA_ENOMEM;
    return ei_x_encode_empty_list(out) ? CA_ENOMEM : 0;
}

/* Run by ca_gen_server_behaviour, which answers sys too (gen_server:stop,
 * sys:get_state, sys:suspend...). */
static const ca_gen_server KV = {"kv", kv_init,      kv_call,        kv_cast,
                                 NULL, kv_terminate, kv_format_state};
static const ca_gen_server_spec KV_SPEC = {&KV, NULL};

/* ---- caller: one gen_server call at a time, without blocking ---- */

typedef struct caller_state {
    int busy;
    ca_call call;
    ca_pid reply_to;
} caller_state;

static int caller_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    *state = calloc(1, sizeof(caller_state));
    return *state ? 0 : CA_ENOMEM;
}

static void finish(ca_actor *self, caller_state *st)
{
    ca_gen_call_done(self, &st->call);
    st->busy = 0;
}

/* t (a term inside a message, no version byte) as the whole term with
 * version byte that ca_gen_call, ca_rpc_call and ca_rpc_cast take. */
static int versioned(ei_x_buff *x, const char *t, size_t tl)
{
    if (ei_x_new_with_version(x))
        return CA_ENOMEM;
    if (ca_fmt(x, "~t", t, tl) == 0)
        return 0;
    ei_x_free(x);
    return CA_ENOMEM;
}

/* {call, Server, Request, ReplyTo} (Server a pid or {Name, Node}) or
 * {rpc, Node, M, F, Args, ReplyTo}: started, or why not. */
static int caller_start(ca_actor *self, caller_state *st, ca_msg *m, ca_pid *reply_to)
{
    ca_pid server = CA_PID_NONE;
    const char *t;
    size_t tl;
    char name[CA_MAXATOM], node[CA_MAXATOM], fun[CA_MAXATOM];
    int rpc = 0;
    if (ca_match(m, "{call, ~p, ~t, ~p}", &server, &t, &tl, reply_to) &&
        ca_match(m, "{call, {~a, ~a}, ~t, ~p}", name, node, &t, &tl, reply_to)) {
        if (ca_match(m, "{rpc, ~a, ~a, ~a, ~t, ~p}", node, name, fun, &t, &tl, reply_to))
            return 1; /* not a request */
        rpc = 1;
    }
    if (st->busy)
        return CA_EBUSY;
    ei_x_buff x;
    int rc = versioned(&x, t, tl);
    if (rc)
        return rc;
    if (rpc)
        rc = ca_rpc_call(self, node, name, fun, x.buff, (size_t)x.index, 5000, &st->call);
    else if (ca_pid_is_none(server))
        rc = ca_gen_call_name(self, name, node, x.buff, (size_t)x.index, 5000, &st->call);
    else
        rc = ca_gen_call(self, server, x.buff, (size_t)x.index, 5000, &st->call);
    ei_x_free(&x);
    return rc;
}

/* {rpc_cast, OnNode, M, F, Args, ReplyTo}: ReplyTo gets {cast, ok | Why}. */
static int caller_cast(ca_actor *self, ca_msg *m)
{
    char node[CA_MAXATOM], mod[CA_MAXATOM], fun[CA_MAXATOM];
    const char *a;
    size_t al;
    ca_pid reply_to;
    if (ca_match(m, "{rpc_cast, ~a, ~a, ~a, ~t, ~p}", node, mod, fun, &a, &al, &reply_to))
        return 1;
    ei_x_buff x;
    int rc = versioned(&x, a, al);
    if (rc)
        return rc;
    rc = ca_rpc_cast(self, node, mod, fun, x.buff, (size_t)x.index);
    ei_x_free(&x);
    return ca_sendf(self, reply_to, "{cast, ~a}", ca_errname(rc));
}

static int caller_handle(ca_actor *self, void *state, ca_msg *m)
{
    caller_state *st = state;
    ca_pid reply_to;
    ca_ref ref;
    const char *r, *why;
    size_t rl, wl;
    int rc = caller_cast(self, m);
    if (rc <= 0)
        return rc;
    rc = caller_start(self, st, m, &reply_to);
    if (rc == 0) {
        st->busy = 1;
        st->reply_to = reply_to;
    } else if (rc < 0) {
        return ca_sendf(self, reply_to, "{call_failed, ~a}",
                        rc == CA_EBUSY ? "busy" : ca_errname(rc));
    } else if (st->busy && ca_match(m, "{~r, ~t}", &ref, &r, &rl) == 0 &&
               ca_ref_eq(&ref, &st->call.ref)) {
        finish(self, st);
        ca_sendf(self, st->reply_to, "{called, ~t}", r, rl);
    } else if (st->busy && ca_match(m, "{'DOWN', ~r, process, _, ~t}", &ref, &why, &wl) == 0 &&
               ca_ref_eq(&ref, &st->call.ref)) {
        finish(self, st);
        ca_sendf(self, st->reply_to, "{call_failed, ~t}", why, wl);
    } else if (st->busy && ca_match(m, "{'$call_timeout', ~r}", &ref) == 0 &&
               ca_ref_eq(&ref, &st->call.ref)) {
        finish(self, st);
        ca_sendf(self, st->reply_to, "{call_failed, timeout}");
    }
    return 0;
}

static void caller_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    (void)self;
    (void)reason;
    (void)len;
    free(state);
}

static const ca_behaviour CALLER = {"caller", caller_init, caller_handle, caller_terminate};

/* ---- rpc functions ---- */

static int add(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *result)
{
    long long a, b;
    (void)ctx;
    (void)caller;
    if (ca_match_term(args, len, "[~l, ~l]", &a, &b))
        return CA_EINVAL;
    return ca_fmt(result, "~l", a + b);
}

static int reverse(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *result)
{
    const char *bin;
    size_t n;
    (void)ctx;
    (void)caller;
    if (ca_match_term(args, len, "[~b]", &bin, &n))
        return CA_EINVAL;
    char *r = malloc(n ? n : 1);
    if (!r)
        return CA_ENOMEM;
    for (size_t i = 0; i < n; i++)
        r[i] = bin[n - 1 - i];
    int rc = ca_fmt(result, "~b", r, n);
    free(r);
    return rc;
}

/* example:notify(Pid, Term): sends Term to Pid, returns ok. A function
 * with an effect, for erpc:cast, rpc:cast and spawn(Node, example, notify,
 * [Pid, Term]); it runs in an actor of its own (`caller`), which is the
 * message's sender. */
static int notify(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *result)
{
    ca_pid to;
    const char *t;
    size_t tl;
    (void)ctx;
    if (ca_match_term(args, len, "[~p, ~t]", &to, &t, &tl))
        return CA_EINVAL;
    int rc = ca_sendf(caller, to, "~t", t, tl);
    return rc ? rc : ca_fmt(result, "ok");
}

/* example:get(Key) -> {ok, Value} | not_found, from the kv actor, which
 * owns the data: the function defers its answer (ca_rpc_defer) and hands
 * the call to kv as a gen_server call in the rpc caller's name
 * (ca_gen_call_for), so kv's reply is the function's value. As with
 * gen_server:call(kv, {get, Key}) in Erlang, the call fails if kv dies
 * first (with kv's exit reason) or takes more than 5 s (timeout). */
static int get(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *result)
{
    const char *key;
    size_t kl;
    ca_pid kv;
    ca_call_from from;
    (void)ctx;
    (void)result;
    if (ca_match_term(args, len, "[~t]", &key, &kl))
        return CA_EINVAL;
    if (ca_whereis(ca_actor_rt(caller), "kv", &kv))
        return CA_ESRCH; /* restarting: the caller gets {error, esrch} */
    int rc = ca_rpc_defer(caller, kv, 5000, &from);
    if (rc == 0)
        rc = ca_gen_call_for(caller, kv, &from, "{get, ~t}", key, kl);
    return rc == CA_ESRCH ? 0 : rc; /* kv just died: the watch says why */
}

/* example:call(Server, Request): gen_server:call(Server, Request) made by
 * a C function, Server a pid of any node (a C actor, an Erlang or Elixir
 * gen_server): the same deferral, handed to Server. */
static int call(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *result)
{
    const char *req;
    size_t rl;
    ca_pid server;
    ca_call_from from;
    (void)ctx;
    (void)result;
    if (ca_match_term(args, len, "[~p, ~t]", &server, &req, &rl))
        return CA_EINVAL;
    int rc = ca_rpc_defer(caller, server, 5000, &from);
    if (rc == 0)
        rc = ca_gen_call_for(caller, server, &from, "~t", req, rl);
    return rc == CA_ESRCH ? 0 : rc; /* a dead server: the watch says noproc */
}

/* ---- entry point ---- */

/* ---- kv_pool ---- */

static const ca_child_spec KV_WORKER = {.id = "kv",
                                        .behaviour = &ca_gen_server_behaviour,
                                        .arg = (void *)&KV_SPEC,
                                        .restart = CA_TEMPORARY};
static const ca_sup_spec KV_POOL = {
    .strategy = CA_SIMPLE_ONE_FOR_ONE, .intensity = 10, .children = &KV_WORKER, .nchildren = 1};

int cactor_plugin_init(ca_plugin *p)
{
    ca_rt *rt = ca_plugin_rt(p);
    ca_child_spec kv = {.id = "kv",
                        .behaviour = &ca_gen_server_behaviour,
                        .arg = (void *)&KV_SPEC,
                        .name = "kv",
                        .restart = CA_PERMANENT};
    ca_child_spec caller = {
        .id = "caller", .behaviour = &CALLER, .name = "caller", .restart = CA_PERMANENT};
    ca_child_spec pool = {.id = "kv_pool",
                          .behaviour = &ca_supervisor,
                          .arg = (void *)&KV_POOL,
                          .name = "kv_pool",
                          .restart = CA_PERMANENT,
                          .shutdown_ms = CA_SHUTDOWN_INFINITY,
                          .type = CA_SUPERVISOR};
    int rc;
    if ((rc = ca_plugin_add_child(p, &kv)) || (rc = ca_plugin_add_child(p, &caller)) ||
        (rc = ca_plugin_add_child(p, &pool)) ||
        (rc = ca_rpc_register(rt, "example", "add", 2, add, NULL)) ||
        (rc = ca_rpc_register(rt, "example", "reverse", 1, reverse, NULL)) ||
        (rc = ca_rpc_register(rt, "example", "notify", 2, notify, NULL)) ||
        (rc = ca_rpc_register(rt, "example", "get", 1, get, NULL)) ||
        (rc = ca_rpc_register(rt, "example", "call", 2, call, NULL)))
        return rc;
    return 0;
}
