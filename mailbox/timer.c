/*
 * Timers and background work, both on the actor's own scheduler loop.
 *
 * A timer belongs to the actor that set it and lives in that actor's list,
 * so cancelling is a list walk on the owner thread and an exiting actor
 * cancels all of its timers; since the timer fires on the same thread,
 * a successful cancel means the message was never sent.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct ca__timer {
    uv_timer_t h;
    ca__timer *next;
    ca_actor *owner;
    ca_timer id;
    ca_pid to;
    size_t len;
    char data[];
};

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void unlink_timer(ca__timer *t)
{
    ca__actor_ext *x = t->owner->ext;
    for (ca__timer **pp = &x->timers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            return;
        }
    }
}

static void timer_fired(uv_timer_t *h)
{
    ca__timer *t = h->data;
    ca_actor *a = t->owner;
    unlink_timer(t);
    ca_msg *m = ca__msg_term(a->pid, t->data, t->len);
    if (m)
        ca__route(a->sched->rt, m, t->to);
    uv_close((uv_handle_t *)&t->h, timer_closed);
}

int ca_send_after(ca_actor *self, uint64_t ms, ca_pid to, const void *etf, size_t len,
                  ca_timer *out)
{
    if (!self)
        return CA_EINVAL;
    if (ca__etf_check(etf, len))
        return CA_EBADTERM;
    ca__actor_ext *x = self->ext ? self->ext : (self->ext = calloc(1, sizeof *self->ext));
    ca__timer *t = malloc(sizeof *t + len);
    if (!x || !t) {
        free(t);
        return CA_ENOMEM;
    }
    memcpy(t->data, etf, len);
    t->len = len;
    t->to = to;
    t->owner = self;
    t->id = atomic_fetch_add_explicit(&self->sched->rt->next_timer, 1, memory_order_relaxed);
    if (uv_timer_init(&self->sched->loop, &t->h)) {
        free(t);
        return CA_EUV;
    }
    t->h.data = t;
    /* Never early, as Erlang's timers: the loop's clock is read at the
     * start of an iteration (the handlers since then make it late) and
     * kept in whole milliseconds, so read it now and round up. */
    uv_update_time(&self->sched->loop);
    uv_timer_start(&t->h, timer_fired, ms ? ms + 1 : 0, 0);
    t->next = x->timers;
    x->timers = t;
    if (out)
        *out = t->id;
    return 0;
}

int ca_sendf_after(ca_actor *self, uint64_t ms, ca_pid to, ca_timer *out, const char *fmt, ...)
{
    const char *buf;
    size_t len;
    int rc;
    CA__FMT_VARARGS(fmt, buf, len, rc);
    if (rc)
        return rc;
    return ca_send_after(self, ms, to, buf, len, out);
}

int ca_cancel_timer(ca_actor *self, ca_timer id)
{
    if (!self)
        return CA_EINVAL;
    for (ca__timer *t = self->ext ? self->ext->timers : NULL; t; t = t->next) {
        if (t->id == id) {
            unlink_timer(t);
            uv_timer_stop(&t->h);
            uv_close((uv_handle_t *)&t->h, timer_closed);
            return 0;
        }
    }
    return CA_ENOENT;
}

void ca__timers_cancel_all(ca_actor *a)
{
    if (!a->ext)
        return;
    while (a->ext->timers) {
        ca__timer *t = a->ext->timers;
        a->ext->timers = t->next;
        uv_timer_stop(&t->h);
        uv_close((uv_handle_t *)&t->h, timer_closed);
    }
}

/* ---- background work on libuv's thread pool ---- */

typedef struct work {
    uv_work_t req;
    ca_rt *rt;
    ca_pid pid;
    uint64_t tag;
    void *(*fn)(void *);
    void *arg;
    void *result;
    void (*dtor)(void *);
} work;

static void work_run(uv_work_t *req)
{
    work *w = req->data;
    w->result = w->fn(w->arg);
}

static void work_done(uv_work_t *req, int status)
{
    work *w = req->data;
    (void)status;
    ca_msg *m = ca__msg_new(CA_MSG_PTR, w->pid, 0);
    int rc = CA_ENOMEM;
    if (m) {
        m->u.p.ptr = w->result;
        m->u.p.dtor = w->dtor;
        m->u.p.tag = w->tag;
        rc = ca__route(w->rt, m, w->pid);
    }
    if (rc && w->dtor && w->result)
        w->dtor(w->result); /* the actor is gone: nobody else will */
    free(w);
}

int ca_queue_work(ca_actor *self, uint64_t tag, void *(*fn)(void *arg), void *arg,
                  void (*dtor)(void *))
{
    if (!self || !fn)
        return CA_EINVAL;
    work *w = calloc(1, sizeof *w);
    if (!w)
        return CA_ENOMEM;
    w->rt = self->sched->rt;
    w->pid = self->pid;
    w->tag = tag;
    w->fn = fn;
    w->arg = arg;
    w->dtor = dtor;
    w->req.data = w;
    if (uv_queue_work(&self->sched->loop, &w->req, work_run, work_done)) {
        free(w);
        return CA_EUV;
    }
    return 0;
}
