/* Records keyed by reference: see refmap.h. */
#include <stdbool.h>
#include <stdlib.h>

#include "refmap.h"

#define MIN_CAP 8u

static bool ref_eq(const ca_ref *a, const ca_ref *b)
{
    if (a->node != b->node || a->creation != b->creation || a->len != b->len)
        return false;
    for (uint32_t i = 0; i < a->len && i < 5; i++)
        if (a->n[i] != b->n[i])
            return false;
    return true;
}

/* Erlang's references count up in their low word, ours too: a
 * multiplicative mix spreads neighbours over the table. */
static uint32_t ref_hash(const ca_ref *r)
{
    uint64_t h = (uint64_t)r->node << 32 ^ r->creation;
    for (uint32_t i = 0; i < r->len && i < 5; i++)
        h = (h ^ r->n[i]) * 0x9E3779B97F4A7C15u;
    return (uint32_t)(h >> 32);
}

static void place(ca__refent **slots, uint32_t cap, ca__refent *e)
{
    uint32_t mask = cap - 1, i = ref_hash(&e->ref) & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = e;
}

static int resize(ca__refmap *m, uint32_t cap)
{
    ca__refent **s = calloc(cap, sizeof *s);
    if (!s)
        return CA_ENOMEM;
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->slots[i])
            place(s, cap, m->slots[i]);
    free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

int ca__refmap_put(ca__refmap *m, ca__refent *e)
{
    if ((m->n + 1) * 2 > m->cap) {
        if (m->cap > UINT32_MAX / 4)
            return CA_ENOMEM;
        int rc = resize(m, m->cap ? m->cap * 2 : MIN_CAP);
        if (rc)
            return rc;
    }
    place(m->slots, m->cap, e);
    m->n++;
    return 0;
}

static long find_at(const ca__refmap *m, const ca_ref *ref)
{
    if (!m->n)
        return -1;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = ref_hash(ref) & mask; m->slots[i]; i = (i + 1) & mask)
        if (ref_eq(&m->slots[i]->ref, ref))
            return (long)i;
    return -1;
}

ca__refent *ca__refmap_find(const ca__refmap *m, const ca_ref *ref)
{
    long i = find_at(m, ref);
    return i < 0 ? NULL : m->slots[i];
}

/* Backward shift: later records of the probe run move into the hole. */
static void remove_at(ca__refmap *m, uint32_t hole)
{
    uint32_t mask = m->cap - 1, j = hole;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j])
            break;
        if (ca__probe_stays(hole, j, ref_hash(&m->slots[j]->ref) & mask))
            continue;
        m->slots[hole] = m->slots[j];
        hole = j;
    }
    m->slots[hole] = NULL;
    m->n--;
}

ca__refent *ca__refmap_take(ca__refmap *m, const ca_ref *ref)
{
    long i = find_at(m, ref);
    if (i < 0)
        return NULL;
    ca__refent *e = m->slots[i];
    remove_at(m, (uint32_t)i);
    /* Give memory back after a burst: empty, or an eighth full. */
    if (!m->n)
        ca__refmap_clear(m);
    else if (m->cap > 64 && m->n * 8 < m->cap)
        (void)resize(m, m->cap / 2); /* stays as it is if that fails */
    return e;
}

ca__refent *ca__refmap_next(const ca__refmap *m, uint32_t *it)
{
    while (*it < m->cap) {
        ca__refent *e = m->slots[(*it)++];
        if (e)
            return e;
    }
    return NULL;
}

void ca__refmap_clear(ca__refmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->n = m->cap = 0;
}
