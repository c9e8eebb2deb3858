/*
 * The runtime's table of C functions callable as Module:Function/Arity
 * (rpc:call, erpc:call, erl_call). Written rarely (at start-up, by
 * plugins), read on every call: a reader-writer lock.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct entry {
    struct entry *next;
    _Atomic uint32_t cost_us; /* how long a call runs, averaged (ca__rpc_hit) */
    _Atomic uint64_t calls;
    int arity;
    ca_rpc_fn fn;
    void *ctx;
    char *fun;
    char mod[];
} entry;

struct ca__rpc_table {
    pthread_rwlock_t lock;
    entry *head;
};

int ca__rpc_new(ca__rpc_table **out)
{
    ca__rpc_table *t = calloc(1, sizeof *t);
    if (!t)
        return CA_ENOMEM;
    pthread_rwlock_init(&t->lock, NULL);
    *out = t;
    return 0;
}

void ca__rpc_free(ca__rpc_table *t)
{
    if (!t)
        return;
    while (t->head) {
        entry *e = t->head;
        t->head = e->next;
        free(e);
    }
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

static entry *find(ca__rpc_table *t, const char *mod, const char *fun, int arity)
{
    for (entry *e = t->head; e; e = e->next)
        if ((e->arity == arity || e->arity < 0 || arity < 0) && strcmp(e->mod, mod) == 0 &&
            strcmp(e->fun, fun) == 0)
            return e;
    return NULL;
}

int ca_rpc_register(ca_rt *rt, const char *mod, const char *fun, int arity, ca_rpc_fn fn, void *ctx)
{
    if (!rt || !fn || arity < -1 || arity > 255)
        return CA_EINVAL;
    if (!ca__name_valid(mod) || !ca__name_valid(fun))
        return CA_EBADNAME;
    size_t ml = strlen(mod) + 1, fl = strlen(fun) + 1;
    entry *e = malloc(sizeof *e + ml + fl);
    if (!e)
        return CA_ENOMEM;
    memcpy(e->mod, mod, ml);
    e->fun = e->mod + ml;
    memcpy(e->fun, fun, fl);
    atomic_init(&e->cost_us, 0);
    atomic_init(&e->calls, 0);
    e->arity = arity;
    e->fn = fn;
    e->ctx = ctx;
    ca__rpc_table *t = rt->rpc;
    pthread_rwlock_wrlock(&t->lock);
    int rc = find(t, mod, fun, arity) ? CA_EEXIST : 0;
    if (rc == 0) {
        e->next = t->head;
        t->head = e;
    }
    pthread_rwlock_unlock(&t->lock);
    if (rc)
        free(e);
    return rc;
}

int ca__rpc_find(ca_rt *rt, const char *mod, const char *fun, int arity, ca__rpc_hit *hit)
{
    ca__rpc_table *t = rt->rpc;
    pthread_rwlock_rdlock(&t->lock);
    entry *e = find(t, mod, fun, arity);
    if (e) {
        hit->fn = e->fn;
        hit->ctx = e->ctx;
        hit->cost_us = &e->cost_us; /* entries live as long as the table */
        hit->calls = &e->calls;
    }
    pthread_rwlock_unlock(&t->lock);
    return e ? 0 : CA_ENOENT;
}

void ca__rpc_cost(ca__rpc_hit *hit, uint64_t ns)
{
    /* an average over about the last 8 calls; racing updates lose a
     * sample, which an estimate can afford */
    uint32_t old = atomic_load_explicit(hit->cost_us, memory_order_relaxed);
    int64_t us = ns / 1000 > UINT32_MAX ? UINT32_MAX : (int64_t)(ns / 1000);
    int64_t diff = us - old, step = diff / 8;
    if (step == 0 && diff != 0)
        step = diff > 0 ? 1 : -1; /* converge all the way */
    atomic_store_explicit(hit->cost_us, (uint32_t)(old + step), memory_order_relaxed);
    atomic_fetch_add_explicit(hit->calls, 1, memory_order_relaxed);
}

int ca__rpc_each(ca_rt *rt, int (*cb)(void *arg, const ca__rpc_stat *st), void *arg)
{
    ca__rpc_table *t = rt->rpc;
    int rc = 0;
    pthread_rwlock_rdlock(&t->lock);
    for (entry *e = t->head; e && rc == 0; e = e->next) {
        ca__rpc_stat st = {e->mod, e->fun, e->arity,
                           atomic_load_explicit(&e->calls, memory_order_relaxed),
                           atomic_load_explicit(&e->cost_us, memory_order_relaxed)};
        rc = cb(arg, &st);
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}
