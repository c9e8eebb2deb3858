/*
 * The process-wide node table: node names (atoms such as "foo@host") to
 * small indices >= 1 that stay valid until exit.
 *
 * Readers never lock. Entries live in chunks that never move (chunk k
 * holds CHUNK0 << k entries), so an index maps to a fixed address; the
 * entry count is published with a release store after the entry is
 * written. Lookup by name goes through an open-addressing hash table of
 * indices, also read without locks: a reader that misses (maybe because
 * it saw a table just being replaced) retries under the writers' mutex,
 * so a miss is never final. Replaced hash tables are kept (chained from
 * the new one) because a reader may still be probing them; their total
 * size is bounded by the final table's.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cactor.h"
#include "internal.h"
#include "utf8.h"

#define CHUNK0      64u
#define NCHUNKS     26 /* 64 * (2^26 - 1) entries: more than a uint32_t index */
#define MAXNODENAME 1020u
#define TLS_CACHE   4

typedef struct entry {
    const char *name;
    uint32_t len;
    uint32_t hash;
} entry;

typedef struct htab {
    struct htab *older; /* replaced tables stay reachable, never reused */
    uint32_t mask;
    _Atomic uint32_t slot[]; /* node index, 0 = empty */
} htab;

static _Atomic(entry *) chunks[NCHUNKS];
static _Atomic uint32_t nnodes;
static _Atomic(htab *) table;
static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;

/* The last names this thread interned: most pids in a message stream
 * come from the same few nodes. */
static _Thread_local struct {
    const char *name;
    uint32_t len;
    uint32_t idx;
} cache[TLS_CACHE];
static _Thread_local unsigned cache_next;

static uint32_t hash_name(const char *s, size_t len)
{
    /* FNV-1a: names are short, this is fast and good enough. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static entry *entry_at(uint32_t idx)
{
    uint32_t i = idx - 1;
    /* chunk k starts at CHUNK0 * (2^k - 1) */
    unsigned k = 31u - (unsigned)__builtin_clz(i / CHUNK0 + 1);
    uint32_t off = i - CHUNK0 * ((1u << k) - 1);
    entry *c = atomic_load_explicit(&chunks[k], memory_order_acquire);
    return &c[off];
}

const char *ca_node_name(uint32_t idx)
{
    if (idx == 0 || idx > atomic_load_explicit(&nnodes, memory_order_acquire))
        return NULL;
    return entry_at(idx)->name;
}

/* Lock-free probe of the current table; 0 if not found. */
static uint32_t lookup(const char *name, uint32_t len, uint32_t h)
{
    htab *t = atomic_load_explicit(&table, memory_order_acquire);
    if (t == NULL)
        return 0;
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        uint32_t idx = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (idx == 0)
            return 0;
        entry *e = entry_at(idx);
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return idx;
    }
}

static void tab_put(htab *t, uint32_t idx, uint32_t h)
{
    uint32_t i = h & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed) != 0)
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slot[i], idx, memory_order_release);
}

/* Keep the load factor under 1/2 so probes stay short. Called with
 * wlock held, before the new entry is counted. */
static int tab_reserve(uint32_t n)
{
    htab *t = atomic_load_explicit(&table, memory_order_relaxed);
    uint32_t size = t ? t->mask + 1 : 0;
    if (t != NULL && 2 * (uint64_t)n < size)
        return 0;
    uint32_t nsize = size ? size * 2 : 128;
    htab *nt = calloc(1, sizeof(htab) + nsize * sizeof(nt->slot[0]));
    if (nt == NULL)
        return CA_ENOMEM;
    nt->mask = nsize - 1;
    nt->older = t;
    for (uint32_t idx = 1; idx < n; idx++)
        tab_put(nt, idx, entry_at(idx)->hash);
    atomic_store_explicit(&table, nt, memory_order_release);
    return 0;
}

static int insert(const char *name, uint32_t len, uint32_t h, uint32_t *idx)
{
    uint32_t n = atomic_load_explicit(&nnodes, memory_order_relaxed) + 1;
    uint32_t i = n - 1;
    unsigned k = 31u - (unsigned)__builtin_clz(i / CHUNK0 + 1);
    if (k >= NCHUNKS || n == 0)
        return CA_ENOMEM;
    if (atomic_load_explicit(&chunks[k], memory_order_relaxed) == NULL) {
        entry *c = calloc((size_t)CHUNK0 << k, sizeof(entry));
        if (c == NULL)
            return CA_ENOMEM;
        atomic_store_explicit(&chunks[k], c, memory_order_release);
    }
    int err = tab_reserve(n);
    if (err)
        return err;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return CA_ENOMEM;
    memcpy(copy, name, len);
    copy[len] = '\0';
    entry *e = entry_at(n);
    e->name = copy;
    e->len = len;
    e->hash = h;
    /* Publish the entry before the slot that leads to it. */
    atomic_store_explicit(&nnodes, n, memory_order_release);
    tab_put(atomic_load_explicit(&table, memory_order_relaxed), n, h);
    *idx = n;
    return 0;
}

static void cache_put(uint32_t idx)
{
    entry *e = entry_at(idx);
    unsigned i = cache_next++ % TLS_CACHE;
    cache[i].name = e->name;
    cache[i].len = e->len;
    cache[i].idx = idx;
}

/* name[0..slen), which holds no NUL. */
static int intern_len(const char *name, size_t slen, uint32_t *idx)
{
    if (slen == 0 || slen > MAXNODENAME)
        return CA_EBADNAME;
    uint32_t len = (uint32_t)slen;
    for (int i = 0; i < TLS_CACHE; i++) {
        if (cache[i].len == len && memcmp(cache[i].name, name, len) == 0) {
            *idx = cache[i].idx;
            return 0;
        }
    }
    uint32_t h = hash_name(name, len);
    uint32_t found = lookup(name, len, h);
    if (found == 0) {
        /* Only new names need validating: a known one was valid. */
        if (!ca__utf8_valid(name, len))
            return CA_EBADNAME;
        pthread_mutex_lock(&wlock);
        found = lookup(name, len, h);
        int err = found ? 0 : insert(name, len, h, &found);
        pthread_mutex_unlock(&wlock);
        if (err)
            return err;
    }
    cache_put(found);
    *idx = found;
    return 0;
}

int ca_node_intern(const char *name, uint32_t *idx)
{
    if (name == NULL || idx == NULL)
        return CA_EINVAL;
    return intern_len(name, strnlen(name, MAXNODENAME + 1), idx);
}

int ca__node_intern_n(const char *name, size_t len, uint32_t *idx)
{
    return memchr(name, 0, len) ? CA_EBADNAME : intern_len(name, len, idx);
}

int ca_pid_eq(ca_pid a, ca_pid b)
{
    return a.node == b.node && a.num == b.num && a.serial == b.serial && a.creation == b.creation;
}

int ca_pid_is_none(ca_pid p)
{
    return p.node == 0;
}

int ca_ref_eq(const ca_ref *a, const ca_ref *b)
{
    if (a->node != b->node || a->creation != b->creation || a->len != b->len || a->len > 5)
        return 0;
    for (uint32_t i = 0; i < a->len; i++) {
        if (a->n[i] != b->n[i])
            return 0;
    }
    return 1;
}
