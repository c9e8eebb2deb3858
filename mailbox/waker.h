/*
 * A cross-thread wake-up for a libuv loop: an eventfd watched by a
 * uv_poll_t, and an atomic flag so that a burst of wake-ups costs one
 * write. It replaces uv_async_t, whose uv_async_send in libuv 1.44 (the
 * one Debian 12 ships) makes the woken loop spin and sched_yield until the
 * waking thread has left its write() — a cost paid on every round trip
 * between threads (libuv fixed it in 1.45).
 */
#ifndef CA_WAKER_H
#define CA_WAKER_H

#include <stdatomic.h>

#include <uv.h>

typedef struct ca__waker ca__waker;
typedef void (*ca__waker_cb)(ca__waker *w);

struct ca__waker {
    uv_poll_t poll;
    int fd;
    _Atomic int pending;
    ca__waker_cb cb;
    void *data;
    uv_close_cb on_closed;
};

/* On the loop's thread. 0 or CA_EUV. */
int ca__waker_init(uv_loop_t *loop, ca__waker *w, ca__waker_cb cb);
/* Any thread: cb runs on the loop thread after this (coalesced). Work
 * published before the call is visible to that cb. */
void ca__waker_wake(ca__waker *w);
/* On the loop's thread; `cb` (may be NULL) runs once the handle is closed.
 * The eventfd stays open: a thread may still be inside ca__waker_wake
 * (a consumer that polls its queues can see the work, and close, before
 * the producer has written), so the owner closes it with
 * ca__waker_destroy once no thread can wake any more (e.g. after joining
 * the loop's thread, with every producer stopped). */
void ca__waker_close(ca__waker *w, uv_close_cb cb);
void ca__waker_destroy(ca__waker *w);

#endif
