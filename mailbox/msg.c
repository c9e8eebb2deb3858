/*
 * Messages and sending. A message is one allocation: the header and its
 * ETF payload. Delivery counts the message in the actor's `count` first,
 * then pushes it; the sender that takes the count from 0 to 1 puts the
 * actor on its scheduler's run queue, so an actor is queued at most once.
 */
#include <stdlib.h>
#include <string.h>

#ifdef __SANITIZE_ADDRESS__
#include <malloc.h>
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(p, n)   ((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#endif

#include "internal.h"

/*
 * Small messages (up to 184 bytes of ETF) are kept for reuse by the
 * scheduler thread that frees them, CA__MSG_CACHE of each size class at
 * most, in stacks of its own: no lock, and a stream of messages costs no
 * malloc and free each. The classes are 16 bytes apart, as malloc's
 * chunks are, so that many messages in flight (a fan-in) take no more
 * memory than before: with classes of 80, 128 and 256 bytes a fan-in of
 * small terms ran 40% slower. Under AddressSanitizer a kept message is
 * poisoned, so a use after free is still caught.
 */
#define CLASS_LEN(c) ((size_t)(c)*16 + 8) /* ETF bytes of class c's blocks */

static int msg_class(size_t len)
{
    return len <= CLASS_LEN(CA__MSG_CLASSES - 1) ? (int)((len + 7) / 16) : -1;
}

ca_msg *ca__msg_new(uint8_t kind, ca_pid from, size_t len)
{
    ca__sched *s = ca__tls_sched;
    int c = msg_class(len);
    ca_msg *m;
    if (c >= 0 && s && s->msg_cached[c]) {
        m = s->msg_cache[c][--s->msg_cached[c]];
        ASAN_UNPOISON_MEMORY_REGION(m, sizeof *m + CLASS_LEN(c));
    } else if (!(m = malloc(sizeof *m + (c >= 0 ? CLASS_LEN(c) : len)))) {
        return NULL;
    }
    m->kind = kind;
    m->from = from;
    m->len = len;
    m->u.p.ptr = NULL;
    m->u.p.dtor = NULL;
    return m;
}

int ca__signal(ca_rt *rt, uint8_t kind, ca_pid from, ca_pid to, const ca_ref *ref, const void *data,
               size_t len)
{
    ca_msg *m = ca__msg_new(kind, from, len);
    if (!m)
        return CA_ENOMEM;
    if (len)
        memcpy(m->data, data, len);
    if (ref)
        m->u.ref = *ref;
    return ca__route(rt, m, to);
}

ca_msg *ca__msg_term(ca_pid from, const void *etf, size_t len)
{
    ca_msg *m = ca__msg_new(CA_MSG_TERM, from, len);
    if (m)
        memcpy(m->data, etf, len);
    return m;
}

/* The memory of m, kept for reuse or freed (len is as allocated, so the
 * class is the one it came from). */
static void msg_release(ca_msg *m)
{
    ca__sched *s = ca__tls_sched;
    int c = msg_class(m->len);
    if (c >= 0 && s && s->msg_cached[c] < CA__MSG_CACHE) {
#ifdef __SANITIZE_ADDRESS__
        if (malloc_usable_size(m) < sizeof *m + CLASS_LEN(c))
            abort(); /* a block smaller than its class: reuse would overflow it */
#endif
        ASAN_POISON_MEMORY_REGION(m, sizeof *m + CLASS_LEN(c));
        s->msg_cache[c][s->msg_cached[c]++] = m;
        return;
    }
    free(m);
}

void ca__msg_cache_drain(ca__sched *s)
{
    for (int c = 0; c < CA__MSG_CLASSES; c++)
        while (s->msg_cached[c]) {
            ca_msg *m = s->msg_cache[c][--s->msg_cached[c]];
            ASAN_UNPOISON_MEMORY_REGION(m, sizeof *m + CLASS_LEN(c));
            free(m);
        }
}

void ca__msg_free(ca_msg *m)
{
    if (m->kind == CA_MSG_PTR && m->u.p.dtor && m->u.p.ptr)
        m->u.p.dtor(m->u.p.ptr);
    msg_release(m);
}

/* A message that was not delivered: a pointer payload stays the
 * sender's, so its destructor does not run. */
static int undelivered(ca_msg *m, int rc)
{
    msg_release(m);
    return rc;
}

/* Count a delivery: on a scheduler thread of this runtime in the
 * scheduler's own counter (single writer), else in the shared one. */
static void count_sent(ca_rt *rt)
{
    ca__sched *s = ca__tls_sched;
    if (s && s->rt == rt)
        atomic_store_explicit(&s->sent, atomic_load_explicit(&s->sent, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&rt->st_sent, 1, memory_order_relaxed);
}

static void count_overflow(ca_actor *a)
{
    atomic_fetch_add_explicit(&a->overflows, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->sched->rt->st_overflows, 1, memory_order_relaxed);
}

/* Count `m` and push it; *runnable says the actor went from empty to
 * non-empty, so the caller must schedule it. */
static inline int push(ca_actor *a, ca_msg *m, bool *runnable)
{
    *runnable = false;
    if (atomic_load_explicit(&a->dead, memory_order_acquire))
        return undelivered(m, CA_ESRCH);
    uint32_t n = atomic_fetch_add_explicit(&a->count, 1, memory_order_acq_rel);
    if (a->cap && m->kind < CA__SIG_INIT && a->overflow != CA_OVERFLOW_DROP_OLDEST &&
        ca__queued(a, n) >= a->cap) {
        /* Undoing the count can only cause a spurious empty turn, never a
         * lost one: the count was above zero before us. */
        atomic_fetch_sub_explicit(&a->count, 1, memory_order_acq_rel);
        count_overflow(a);
        if (a->overflow == CA_OVERFLOW_EXIT)
            atomic_store_explicit(&a->overflow_exit, 1, memory_order_relaxed);
        return undelivered(m, CA_EAGAIN);
    }
    ca__mpsc_push(&a->mbox, &m->node);
    count_sent(a->sched->rt);
    *runnable = n == 0;
    return 0;
}

int ca__deliver(ca_actor *a, ca_msg *m)
{
    bool runnable;
    int rc = push(a, m, &runnable);
    if (runnable)
        ca__schedule(a);
    return rc;
}

int ca__route(ca_rt *rt, ca_msg *m, ca_pid to)
{
    if (!ca_pid_is_local(rt, to)) {
        if (ca_pid_is_none(to))
            return undelivered(m, CA_EINVAL);
        if (m->kind == CA_MSG_PTR)
            return undelivered(m, CA_ENOTSUP);
        if (!rt->dist)
            return undelivered(m, CA_ENOTCONN);
        return rt->dist->send(rt->dist_ctx, m, to);
    }
    ca_actor *a = ca__actor_get(rt, to);
    if (!a)
        return undelivered(m, CA_ESRCH);
    bool runnable;
    int rc = push(a, m, &runnable);
    /* The lookup's reference becomes the run-queue reference when this
     * message makes the actor runnable: one increment and one decrement
     * of the shared slot word saved on every wake-up. */
    if (runnable)
        ca__schedule_ref(a);
    else
        ca__actor_unref(a);
    return rc;
}

/* ---- formatting into a reusable per-thread buffer ---- */

/* The buffer is reached through a fast thread-local pointer; the key only
 * exists so that the buffer is freed when its thread ends. */
static _Thread_local ei_x_buff *tls_x;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_x_free(void *p)
{
    ei_x_free(p);
    free(p);
}

static void tls_key_make(void)
{
    pthread_key_create(&tls_key, tls_x_free);
}

static ei_x_buff *tls_buffer(void)
{
    if (tls_x)
        return tls_x;
    pthread_once(&tls_once, tls_key_make);
    ei_x_buff *x = malloc(sizeof *x);
    if (!x || ei_x_new(x)) {
        free(x);
        return NULL;
    }
    pthread_setspecific(tls_key, x);
    return tls_x = x;
}

int ca__vfmt_tls(const char *fmt, va_list ap, const char **buf, size_t *len)
{
    ei_x_buff *x = tls_buffer();
    if (!fmt)
        return CA_EINVAL;
    if (!x)
        return CA_ENOMEM;
    x->buff[0] = (char)131; /* the version byte: ei_x_new left room, and it only grows */
    x->index = 1;
    int rc = ca_vfmt(x, fmt, ap);
    if (rc)
        return rc;
    *buf = x->buff;
    *len = (size_t)x->index;
    return 0;
}

/* ---- payload checks ---- */

static int check_etf(const void *etf, size_t len)
{
    if (len > INT32_MAX) /* ei indexes with int */
        return CA_ETOOBIG;
    return ca__etf_check(etf, len);
}

/* ---- public sending ---- */

/* A message holding a copy of a term already checked, routed to `to`. */
static int route_copy(ca_rt *rt, ca_pid from, ca_pid to, const void *etf, size_t len)
{
    ca_msg *m = ca__msg_term(from, etf, len);
    if (!m)
        return CA_ENOMEM;
    return ca__route(rt, m, to);
}

static int send_copy(ca_rt *rt, ca_pid from, ca_pid to, const void *etf, size_t len)
{
    int rc = check_etf(etf, len);
    if (rc)
        return rc;
    return route_copy(rt, from, to, etf, len);
}

int ca_send(ca_actor *self, ca_pid to, const void *etf, size_t len)
{
    if (!self)
        return CA_EINVAL;
    return send_copy(self->sched->rt, self->pid, to, etf, len);
}

int ca_rt_send(ca_rt *rt, ca_pid from, ca_pid to, const void *etf, size_t len)
{
    if (!rt)
        return CA_EINVAL;
    return send_copy(rt, from, to, etf, len);
}

static int vsendf(ca_rt *rt, ca_pid from, ca_pid to, const char *fmt, va_list ap)
{
    const char *buf;
    size_t len;
    int rc = ca__vfmt_tls(fmt, ap, &buf, &len);
    if (rc)
        return rc;
    return route_copy(rt, from, to, buf, len);
}

int ca_sendf(ca_actor *self, ca_pid to, const char *fmt, ...)
{
    if (!self)
        return CA_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    int rc = vsendf(self->sched->rt, self->pid, to, fmt, ap);
    va_end(ap);
    return rc;
}

int ca_rt_sendf(ca_rt *rt, ca_pid from, ca_pid to, const char *fmt, ...)
{
    if (!rt)
        return CA_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    int rc = vsendf(rt, from, to, fmt, ap);
    va_end(ap);
    return rc;
}

static int send_ptr(ca_rt *rt, ca_pid from, ca_pid to, uint64_t tag, void *ptr,
                    void (*dtor)(void *))
{
    ca_msg *m = ca__msg_new(CA_MSG_PTR, from, 0);
    if (!m)
        return CA_ENOMEM;
    m->u.p.ptr = ptr;
    m->u.p.dtor = dtor;
    m->u.p.tag = tag;
    return ca__route(rt, m, to);
}

int ca_send_ptr(ca_actor *self, ca_pid to, uint64_t tag, void *ptr, void (*dtor)(void *))
{
    if (!self)
        return CA_EINVAL;
    return send_ptr(self->sched->rt, self->pid, to, tag, ptr, dtor);
}

int ca_rt_send_ptr(ca_rt *rt, ca_pid from, ca_pid to, uint64_t tag, void *ptr, void (*dtor)(void *))
{
    if (!rt)
        return CA_EINVAL;
    return send_ptr(rt, from, to, tag, ptr, dtor);
}

int ca_rt_send_name(ca_rt *rt, ca_pid from, const char *name, const void *etf, size_t len)
{
    ca_pid to;
    if (!rt)
        return CA_EINVAL;
    int rc = ca_whereis(rt, name, &to);
    if (rc)
        return rc;
    return send_copy(rt, from, to, etf, len);
}

int ca_send_name(ca_actor *self, const char *name, const void *etf, size_t len)
{
    if (!self)
        return CA_EINVAL;
    return ca_rt_send_name(self->sched->rt, self->pid, name, etf, len);
}

int ca_sendf_name(ca_actor *self, const char *name, const char *fmt, ...)
{
    ca_pid to;
    if (!self)
        return CA_EINVAL;
    int rc = ca_whereis(self->sched->rt, name, &to);
    if (rc)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    rc = vsendf(self->sched->rt, self->pid, to, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- accessors ---- */

ca_msg_kind ca_msg_type(const ca_msg *m)
{
    return (ca_msg_kind)m->kind;
}

ca_pid ca_msg_from(const ca_msg *m)
{
    return m->from;
}

const char *ca_msg_data(const ca_msg *m, size_t *len)
{
    if (m->kind != CA_MSG_TERM) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = m->len;
    return m->data;
}

void *ca_msg_ptr(const ca_msg *m, uint64_t *tag)
{
    if (m->kind != CA_MSG_PTR)
        return NULL;
    if (tag)
        *tag = m->u.p.tag;
    return m->u.p.ptr;
}

ca_msg *ca_msg_keep(ca_actor *self, ca_msg *m)
{
    if (self && !m)
        m = self->cur;
    if (!self || !m || m != self->cur)
        return NULL;
    self->cur = NULL;
    return m;
}

void ca_msg_release(ca_msg *m)
{
    if (m)
        ca__msg_free(m);
}

int ca_forward(ca_actor *self, ca_pid to, ca_msg *m)
{
    if (!self || !m || (m->kind != CA_MSG_TERM && m->kind != CA_MSG_PTR))
        return CA_EINVAL;
    if (m == self->cur)
        self->cur = NULL;
    return ca__route(self->sched->rt, m, to);
}

void *ca_msg_take_ptr(ca_msg *m)
{
    if (m->kind != CA_MSG_PTR)
        return NULL;
    void *p = m->u.p.ptr;
    m->u.p.ptr = NULL;
    return p;
}

int ca_match(const ca_msg *m, const char *pattern, ...)
{
    if (m->kind != CA_MSG_TERM)
        return CA_ENOMATCH;
    va_list ap;
    va_start(ap, pattern);
    int rc = ca__vmatch_msg(m->data, m->len, pattern, ap);
    va_end(ap);
    return rc;
}
