/*
 * Intrusive lock-free multi-producer single-consumer queue (Vyukov's
 * design). Producers never block and never loop; the consumer may see
 * the queue as momentarily empty while a producer is between its two
 * steps, and must then try again later (callers keep a count so they
 * know a message is on its way).
 */
#ifndef CA_MPSC_H
#define CA_MPSC_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct ca__mpsc_node {
    struct ca__mpsc_node *_Atomic next;
} ca__mpsc_node;

typedef struct ca__mpsc {
    ca__mpsc_node *_Atomic head; /* producers swap themselves in here */
    ca__mpsc_node *tail;         /* consumer only */
    ca__mpsc_node stub;
} ca__mpsc;

static inline void ca__mpsc_init(ca__mpsc *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
    q->tail = &q->stub;
}

static inline void ca__mpsc_push(ca__mpsc *q, ca__mpsc_node *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    ca__mpsc_node *prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/* NULL when empty, or when a producer has not finished linking yet. */
static inline ca__mpsc_node *ca__mpsc_pop(ca__mpsc *q)
{
    ca__mpsc_node *tail = q->tail;
    ca__mpsc_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (next == NULL)
            return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return NULL; /* a producer is mid-push */
    ca__mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

#define ca__container_of(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))

#endif
