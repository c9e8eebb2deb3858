/*
 * Records keyed by reference, for monitors. An actor or a connection can
 * hold many at once (a gen_server is monitored once per call in flight,
 * and calls end in about the order they began), so finding one must not
 * walk the others: open addressing, linear probing, at most half full.
 *
 * Records embed a ca__refent as their first member; the map holds
 * pointers and owns nothing but its slot array. Two records may share a
 * reference (a peer may send the same one twice): take removes one.
 * Owner thread only.
 */
#ifndef CA_REFMAP_H
#define CA_REFMAP_H

#include <stdint.h>

#include "cactor.h"

typedef struct ca__refent {
    ca_ref ref;
} ca__refent;

typedef struct ca__refmap {
    ca__refent **slots;
    uint32_t n, cap; /* cap: 0 or a power of two */
} ca__refmap;

/* Removal from a linear-probing table (backward shift): whether the entry
 * at slot j, whose home slot is k, must stay when slot `hole` empties,
 * i.e. whether k lies cyclically in (hole, j]. */
static inline int ca__probe_stays(uint32_t hole, uint32_t j, uint32_t k)
{
    return hole <= j ? (hole < k && k <= j) : (hole < k || k <= j);
}

/* 0 or CA_ENOMEM (the map is unchanged then). */
int ca__refmap_put(ca__refmap *m, ca__refent *e);

/* The record with `ref`, or NULL. */
ca__refent *ca__refmap_find(const ca__refmap *m, const ca_ref *ref);

/* Removes the record with `ref` and returns it, or NULL. */
ca__refent *ca__refmap_take(ca__refmap *m, const ca_ref *ref);

/* Iteration: *it = 0 first; NULL at the end. The map must not change
 * meanwhile; ca__refmap_clear afterwards empties it. */
ca__refent *ca__refmap_next(const ca__refmap *m, uint32_t *it);

/* Forgets every record (their owner frees them) and frees the slots. */
void ca__refmap_clear(ca__refmap *m);

#endif
