/*
 * Registered names. A chained hash table under a reader-writer lock:
 * lookups (whereis, send to a name) share the lock and never wait for each
 * other; registering and unregistering are rare and take it alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    ca_actor *actor; /* valid while registered: exit unregisters first */
    ca_pid pid;
    char name[];
} entry;

struct ca__registry {
    pthread_rwlock_t lock;
    entry **buckets;
    size_t nbuckets, count;
    /* Bumped, under the lock, by every name added or removed: who keeps
     * a name's pid compares it instead of looking the name up again. */
    _Atomic uint64_t gen;
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ull;
    }
    return h;
}

int ca__registry_new(ca__registry **out)
{
    ca__registry *r = calloc(1, sizeof *r);
    if (!r)
        return CA_ENOMEM;
    r->nbuckets = 64;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    if (!r->buckets) {
        free(r);
        return CA_ENOMEM;
    }
    pthread_rwlock_init(&r->lock, NULL);
    *out = r;
    return 0;
}

void ca__registry_free(ca__registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        entry *e = r->buckets[i];
        while (e) {
            entry *n = e->next;
            free(e);
            e = n;
        }
    }
    free(r->buckets);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

/* Valid UTF-8 of 1..255 characters without NUL: what an Erlang atom can
 * hold. */
int ca__name_valid(const char *name)
{
    if (!name || !*name)
        return 0;
    const unsigned char *p = (const unsigned char *)name;
    size_t chars = 0;
    while (*p) {
        unsigned c = *p, extra;
        if (c < 0x80)
            extra = 0;
        else if ((c & 0xe0) == 0xc0 && c >= 0xc2)
            extra = 1;
        else if ((c & 0xf0) == 0xe0)
            extra = 2;
        else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
            extra = 3;
        else
            return 0;
        p++;
        for (unsigned i = 0; i < extra; i++, p++)
            if ((*p & 0xc0) != 0x80)
                return 0;
        if (++chars > 255)
            return 0;
    }
    return 1;
}

static entry **find(ca__registry *r, const char *name, uint64_t h)
{
    entry **pp = &r->buckets[h & (r->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->name, name) == 0)
            return pp;
    return pp;
}

static void grow(ca__registry *r)
{
    size_t n = r->nbuckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < r->nbuckets; i++) {
        entry *e = r->buckets[i];
        while (e) {
            entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
}

static int unregister_locked(ca__registry *r, const char *name)
{
    entry **pp = find(r, name, hash_name(name));
    entry *e = *pp;
    if (!e)
        return CA_ENOENT;
    *pp = e->next;
    atomic_store(&e->actor->name, NULL);
    r->count--;
    atomic_fetch_add_explicit(&r->gen, 1, memory_order_release);
    free(e);
    return 0;
}

int ca__register_actor(ca_rt *rt, const char *name, ca_actor *a)
{
    ca__registry *r = rt->reg;
    if (!ca__name_valid(name))
        return CA_EBADNAME;
    size_t len = strlen(name);
    uint64_t h = hash_name(name);
    entry *e = malloc(sizeof *e + len + 1);
    if (!e)
        return CA_ENOMEM;
    memcpy(e->name, name, len + 1);
    e->hash = h;
    e->actor = a;
    e->pid = a->pid;
    int rc = 0;
    pthread_rwlock_wrlock(&r->lock);
    if (atomic_load(&a->dead))
        rc = CA_ESRCH;
    else if (*find(r, name, h) || atomic_load(&a->name))
        rc = CA_EEXIST;
    if (rc == 0) {
        entry **pp = find(r, name, h);
        e->next = NULL;
        *pp = e;
        r->count++;
        atomic_fetch_add_explicit(&r->gen, 1, memory_order_release);
        /* Pairs with ca__registry_drop: one of the two sees the other's
         * store (both sequentially consistent), so a name is never left
         * behind by an actor that died meanwhile. */
        atomic_store(&a->name, e->name);
        if (atomic_load(&a->dead)) {
            unregister_locked(r, name);
            rc = CA_ESRCH;
            e = NULL;
        } else if (r->count > r->nbuckets) {
            grow(r);
        }
    }
    pthread_rwlock_unlock(&r->lock);
    if (rc && e)
        free(e);
    return rc;
}

int ca_register(ca_rt *rt, const char *name, ca_pid pid)
{
    if (!rt)
        return CA_EINVAL;
    if (!ca__name_valid(name))
        return CA_EBADNAME;
    ca_actor *a = ca__actor_get(rt, pid);
    if (!a)
        return CA_ESRCH;
    int rc = ca__register_actor(rt, name, a);
    ca__actor_unref(a);
    return rc;
}

int ca_unregister(ca_rt *rt, const char *name)
{
    if (!rt)
        return CA_EINVAL;
    if (!ca__name_valid(name))
        return CA_EBADNAME;
    pthread_rwlock_wrlock(&rt->reg->lock);
    int rc = unregister_locked(rt->reg, name);
    pthread_rwlock_unlock(&rt->reg->lock);
    return rc;
}

/* Called after `dead` is set (sequentially consistent store). */
void ca__registry_drop(ca_rt *rt, ca_actor *a)
{
    if (!atomic_load(&a->name))
        return;
    pthread_rwlock_wrlock(&rt->reg->lock);
    char *name = atomic_load(&a->name);
    if (name)
        unregister_locked(rt->reg, name);
    pthread_rwlock_unlock(&rt->reg->lock);
}

uint64_t ca__registry_gen(ca_rt *rt)
{
    return atomic_load_explicit(&rt->reg->gen, memory_order_acquire);
}

int ca_whereis(ca_rt *rt, const char *name, ca_pid *pid)
{
    if (!rt)
        return CA_EINVAL;
    if (!ca__name_valid(name))
        return CA_EBADNAME;
    uint64_t h = hash_name(name);
    pthread_rwlock_rdlock(&rt->reg->lock);
    entry *e = *find(rt->reg, name, h);
    if (e && pid)
        *pid = e->pid;
    pthread_rwlock_unlock(&rt->reg->lock);
    return e ? 0 : CA_ENOENT;
}

/* A snapshot: names may come and go as soon as the lock is released. */
int ca_registered(ca_rt *rt, char ***out, size_t *n)
{
    if (!rt || !out || !n)
        return CA_EINVAL;
    *out = NULL;
    *n = 0;
    pthread_rwlock_rdlock(&rt->reg->lock);
    ca__registry *r = rt->reg;
    char **names = calloc(r->count ? r->count : 1, sizeof *names);
    size_t k = 0;
    for (size_t i = 0; names && i < r->nbuckets; i++)
        for (entry *e = r->buckets[i]; e; e = e->next)
            if (!(names[k++] = strdup(e->name)))
                goto nomem;
    pthread_rwlock_unlock(&rt->reg->lock);
    if (!names)
        return CA_ENOMEM;
    *out = names;
    *n = k;
    return 0;
nomem:
    pthread_rwlock_unlock(&rt->reg->lock);
    ca_names_free(names, k);
    return CA_ENOMEM;
}

void ca_names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

/* An actor has one name at most, which its `name` points to while the
 * entry lives: read under the lock that unregistering takes. */
void ca__name_of(ca_rt *rt, ca_pid pid, char *out, size_t cap)
{
    out[0] = 0;
    ca_actor *a = ca__actor_get(rt, pid);
    if (!a)
        return;
    pthread_rwlock_rdlock(&rt->reg->lock);
    const char *name = atomic_load(&a->name);
    if (name)
        snprintf(out, cap, "%s", name);
    pthread_rwlock_unlock(&rt->reg->lock);
    ca__actor_unref(a);
}
