/*
 * hash_plugin: a cactor-node plugin (--load hash_plugin.so) for
 * bench/dist. It adds an actor registered as `hash` under the node's root
 * supervisor:
 *
 *   gen_server:call({hash, Node}, Bin) -> MD5 of Bin (16-byte binary)
 *
 * and the functions dist_echo:id(T) -> T and dist_echo:md5(Bin) -> its
 * MD5 (erpc:call, as on the Erlang contender's node).
 *
 * The hashing never runs in the `hash` actor's own turn (actors must not
 * block their scheduler loop for long); it is spread over the machine in
 * one of two ways, chosen by the environment variable CACTOR_HASH_MODE:
 *
 *   pool (default)  one worker actor per scheduler thread (ca_spawn_child
 *                   with an explicit scheduler, batch 1), fed on demand:
 *                   the call itself is forwarded, not copied (ca_forward),
 *                   to a worker with fewer than CREDIT calls; the worker
 *                   hashes the binary where it lies, replies to the
 *                   caller itself (ca_gen_reply) and tells `hash` it is
 *                   done; calls beyond the credits are kept
 *                   (ca_msg_keep) in `hash`, in order. So a worker whose
 *                   scheduler also serves the node's sockets (scheduler
 *                   0) takes fewer calls, instead of its queue growing
 *                   while the other worker idles.
 *   work            ca_queue_work: the job goes to libuv's thread pool,
 *                   and the result comes back to `hash` as a message,
 *                   which replies.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cactor.h"

#define JOB_TAG    0x6a6f62   /* "job" */
#define DONE_TAG   0x646f6e65 /* "done": ptr is the worker's index + 1 */
#define MAX_WORKER 64
#define CREDIT     2 /* calls per worker: one running, one ready to go */

/* Thread-pool mode: a copy of the binary to hash, and where to answer. */
typedef struct job {
    ca_call_from from;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen;
    int ok;
    size_t len;
    unsigned char data[];
} job;

typedef struct hash_cfg {
    int use_pool;
    unsigned workers;
} hash_cfg;

#define WAITING 4096 /* calls kept while every worker is busy */

typedef struct hash_state {
    const hash_cfg *cfg;
    ca_pid worker[MAX_WORKER];
    unsigned busy[MAX_WORKER]; /* calls sent and not done */
    unsigned n;
    ca_msg *wait[WAITING]; /* kept calls, a ring */
    unsigned whead, nwait;
} hash_state;

static void digest(job *j)
{
    j->ok = EVP_Digest(j->data, j->len, j->md, &j->mdlen, EVP_md5(), NULL) == 1;
}

static int reply(ca_actor *self, job *j)
{
    if (!j->ok)
        return ca_gen_replyf(self, &j->from, "{error, digest}");
    return ca_gen_replyf(self, &j->from, "~b", (const void *)j->md, (size_t)j->mdlen);
}

/* ---- pool worker ---- */

/* The binary of a call, or an error answered. 0 when *data is set. */
static int call_binary(ca_actor *self, ca_msg *m, ca_call_from *from, const char **data,
                       size_t *dlen)
{
    const char *req;
    size_t len;
    if (ca_gen_call_match(m, from, &req, &len) != 0)
        return -1; /* not a call: ignored */
    if (ca_match_term(req, len, "~b", data, dlen) != 0) {
        ca_gen_replyf(self, from, "{error, badarg}");
        return -1;
    }
    return 0;
}

/* A worker's arg and state (no init: state is arg), freed when it ends. */
typedef struct worker_cfg {
    ca_pid boss;
    uintptr_t index;
} worker_cfg;

static int worker_handle(ca_actor *self, void *state, ca_msg *m)
{
    const worker_cfg *w = state;
    ca_call_from from;
    const char *data;
    size_t dlen;
    if (call_binary(self, m, &from, &data, &dlen) == 0) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen;
        int rc = EVP_Digest(data, dlen, md, &mdlen, EVP_md5(), NULL) == 1
                     ? ca_gen_replyf(self, &from, "~b", (const void *)md, (size_t)mdlen)
                     : ca_gen_replyf(self, &from, "{error, digest}");
        if (rc)
            ca_log(ca_actor_rt(self), CA_LOG_WARNING, "hash worker: reply: %s", ca_strerror(rc));
    }
    /* No destructor: the index is not memory. If `hash` is gone, so are
     * we soon (linked). */
    ca_send_ptr(self, w->boss, DONE_TAG, (void *)(w->index + 1), NULL);
    return 0;
}

static void worker_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    (void)self;
    (void)reason;
    (void)len;
    free(state);
}

static const ca_behaviour worker_behaviour = {"hash_worker", NULL, worker_handle, worker_terminate};

/* ---- thread-pool work ---- */

static void *work_fn(void *arg)
{
    digest(arg);
    return arg;
}

/* ---- the `hash` actor ---- */

static int hash_init(ca_actor *self, void *arg, void **state)
{
    const hash_cfg *cfg = arg;
    hash_state *st = calloc(1, sizeof *st);
    if (!st)
        return CA_ENOMEM;
    st->cfg = cfg;
    *state = st;
    if (!cfg->use_pool)
        return 0;
    for (unsigned i = 0; i < cfg->workers; i++) {
        ca_spawn_opts o;
        ca_spawn_opts_init(&o);
        o.flags = CA_SPAWN_LINK;
        o.sched = (int)(i % ca_rt_threads(ca_actor_rt(self)));
        o.batch = 1; /* short turns: the dispatcher may share the thread */
        worker_cfg *w = malloc(sizeof *w);
        if (!w)
            return CA_ENOMEM;
        *w = (worker_cfg){ca_self(self), i};
        int rc = ca_spawn_child(self, &worker_behaviour, w, &o, &st->worker[i]);
        if (rc) {
            free(w);
            return rc;
        }
        st->n++;
    }
    return 0;
}

/* The worker with the fewest jobs, if it has a credit left; else -1. */
static int idlest(const hash_state *st)
{
    int best = -1;
    for (unsigned i = 0; i < st->n; i++)
        if (st->busy[i] < CREDIT && (best < 0 || st->busy[i] < st->busy[best]))
            best = (int)i;
    return best;
}

/* Forward the call m to worker i (it answers the caller). */
static void hand_out(ca_actor *self, hash_state *st, int i, ca_msg *m)
{
    int rc = ca_forward(self, st->worker[i], m);
    if (rc)
        ca_log(ca_actor_rt(self), CA_LOG_WARNING, "hash: forward: %s", ca_strerror(rc));
    else
        st->busy[i]++;
}

static int worker_done(ca_actor *self, hash_state *st, uintptr_t idx1)
{
    if (idx1 == 0 || idx1 > st->n)
        return 0;
    if (st->busy[idx1 - 1])
        st->busy[idx1 - 1]--;
    int i;
    while (st->nwait && (i = idlest(st)) >= 0) {
        ca_msg *m = st->wait[st->whead];
        st->whead = (st->whead + 1) % WAITING;
        st->nwait--;
        hand_out(self, st, i, m);
    }
    return 0;
}

/* Thread-pool mode: the binary copied into a job for ca_queue_work. */
static int queue_job(ca_actor *self, ca_msg *m)
{
    ca_call_from from;
    const char *data;
    size_t dlen;
    if (call_binary(self, m, &from, &data, &dlen) != 0)
        return 0;
    job *j = malloc(sizeof *j + dlen);
    if (!j)
        return ca_gen_replyf(self, &from, "{error, enomem}");
    j->from = from;
    j->len = dlen;
    memcpy(j->data, data, dlen);
    int rc = ca_queue_work(self, JOB_TAG, work_fn, j, free);
    if (rc) {
        free(j);
        return ca_gen_replyf(self, &from, "{error, ~a}", ca_errname(rc));
    }
    return 0;
}

static int hash_handle(ca_actor *self, void *state, ca_msg *m)
{
    hash_state *st = state;
    if (ca_msg_type(m) == CA_MSG_PTR) { /* a worker's or ca_queue_work's */
        uint64_t tag;
        job *j = ca_msg_ptr(m, &tag);
        if (tag == DONE_TAG)
            return worker_done(self, st, (uintptr_t)j);
        if (tag == JOB_TAG && j) {
            int rc = reply(self, j);
            if (rc)
                ca_log(ca_actor_rt(self), CA_LOG_WARNING, "hash: reply: %s", ca_strerror(rc));
        }
        return 0;
    }
    if (!st->n)
        return queue_job(self, m);
    int i = idlest(st);
    if (i >= 0) {
        hand_out(self, st, i, m);
    } else if (st->nwait < WAITING) {
        st->wait[(st->whead + st->nwait++) % WAITING] = ca_msg_keep(self, m);
    } else {
        ca_call_from from;
        const char *data;
        size_t dlen;
        if (call_binary(self, m, &from, &data, &dlen) == 0)
            return ca_gen_replyf(self, &from, "{error, busy}");
    }
    return 0;
}

static hash_cfg config;

static void hash_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    (void)self;
    (void)reason;
    (void)len;
    if (state == &config) /* state is still `arg` if init did not run */
        return;
    hash_state *st = state;
    for (unsigned k = 0; k < st->nwait; k++) /* their callers time out, as with a crashed server */
        ca_msg_release(st->wait[(st->whead + k) % WAITING]);
    free(state);
}

static const ca_behaviour hash_behaviour = {"hash", hash_init, hash_handle, hash_terminate};

/* dist_echo:md5(Bin) -> its MD5, computed in the call (a CPU-heavy
 * function for erpc:call: cactor-node spreads the calls of such a
 * function over its schedulers). */
static int md5(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *result)
{
    const char *bin;
    size_t n;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    (void)ctx;
    (void)caller;
    if (ca_match_term(args, len, "[~b]", &bin, &n))
        return CA_EINVAL;
    if (EVP_Digest(bin, n, md, &mdlen, EVP_md5(), NULL) != 1)
        return CA_EIO;
    return ca_fmt(result, "~b", md, (size_t)mdlen);
}

/* dist_echo:id(T) -> T, for erpc:call (as the Erlang contender's). */
static int id(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *result)
{
    const char *t;
    size_t tl;
    (void)ctx;
    (void)caller;
    if (ca_match_term(args, len, "[~t]", &t, &tl))
        return CA_EINVAL;
    return ei_x_append_buf(result, t, (int)tl) ? CA_ENOMEM : 0;
}

int cactor_plugin_init(ca_plugin *p)
{
    const char *mode = getenv("CACTOR_HASH_MODE");
    config.use_pool = !(mode && strcmp(mode, "work") == 0);
    config.workers = ca_rt_threads(ca_plugin_rt(p));
    if (config.workers > MAX_WORKER)
        config.workers = MAX_WORKER;
    ca_child_spec spec = {
        .id = "hash",
        .behaviour = &hash_behaviour,
        .arg = &config,
        .name = "hash",
        .restart = CA_PERMANENT,
        .on_sched = 1, /* with the sockets: it only forwards */
    };
    int rc = ca_plugin_add_child(p, &spec);
    if (rc == 0)
        rc = ca_rpc_register(ca_plugin_rt(p), "dist_echo", "id", 1, id, NULL);
    return rc ? rc : ca_rpc_register(ca_plugin_rt(p), "dist_echo", "md5", 1, md5, NULL);
}
