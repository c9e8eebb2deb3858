/*
 * The runtime: scheduler threads, each running one libuv loop, and the
 * run queues that feed actors to them.
 *
 * An actor becomes runnable when its mailbox goes from empty to non-empty.
 * On its own scheduler's thread it is appended to a plain local queue; from
 * any other thread it goes through the scheduler's MPSC `inq` and one
 * wake-up (waker.h) that coalesces, so a burst of wake-ups costs one
 * loop iteration. An idle handle keeps the loop polling (without blocking)
 * while the local queue is not empty, so I/O and actors take turns.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Actor turns per loop iteration before I/O gets a look in. */
#define TURNS_PER_ITER 256

_Thread_local ca__sched *ca__tls_sched;

ca__sched *ca__current_sched(void)
{
    return ca__tls_sched;
}

static void rq_append(ca__sched *s, ca_actor *a)
{
    atomic_store_explicit(&a->runq.next, NULL, memory_order_relaxed);
    if (s->rq_tail)
        atomic_store_explicit(&s->rq_tail->next, &a->runq, memory_order_relaxed);
    else
        s->rq_head = &a->runq;
    s->rq_tail = &a->runq;
}

static ca_actor *rq_pop(ca__sched *s)
{
    ca__mpsc_node *n = s->rq_head;
    if (!n)
        return NULL;
    s->rq_head = atomic_load_explicit(&n->next, memory_order_relaxed);
    if (!s->rq_head)
        s->rq_tail = NULL;
    return ca__container_of(n, ca_actor, runq);
}

static void idle_cb(uv_idle_t *h);

static void ensure_idle(ca__sched *s)
{
    if (!s->idle_on && !s->stopping) {
        uv_idle_start(&s->idle, idle_cb);
        s->idle_on = true;
    }
}

void ca__schedule(ca_actor *a)
{
    ca__actor_ref(a);
    ca__schedule_ref(a);
}

void ca__schedule_ref(ca_actor *a)
{
    ca__sched *s = a->sched;
    if (ca__tls_sched == s) {
        rq_append(s, a);
        ensure_idle(s);
        return;
    }
    ca__mpsc_push(&s->inq, &a->runq);
    ca__waker_wake(&s->waker);
}

void ca__sched_post(ca__sched *s, ca__task *t)
{
    ca__mpsc_push(&s->tasks, &t->node);
    atomic_fetch_add_explicit(&s->ntasks, 1, memory_order_release);
    ca__waker_wake(&s->waker);
}

/* Move what other threads queued into the local run queue and run posted
 * tasks. A pop that finds a producer mid-push returns NULL; the producer's
 * wake-up comes after its push, so we are called again. */
static void drain_remote(ca__sched *s)
{
    ca__mpsc_node *n;
    while ((n = ca__mpsc_pop(&s->inq)) != NULL)
        rq_append(s, ca__container_of(n, ca_actor, runq));
    if (atomic_load_explicit(&s->ntasks, memory_order_acquire) == 0)
        return;
    while ((n = ca__mpsc_pop(&s->tasks)) != NULL) {
        atomic_fetch_sub_explicit(&s->ntasks, 1, memory_order_relaxed);
        ca__task *t = ca__container_of(n, ca__task, node);
        t->fn(t);
    }
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* How long to spin. Adaptive: when spinning keeps finding nothing (work
 * comes less often than the budget, e.g. round trips through the
 * network), spin only a sixteenth as long, so that an idle-ish scheduler
 * does not burn CPU for latency it does not get. */
static uint64_t spin_budget(const ca__sched *s)
{
    return s->spin_misses >= 4 ? s->rt->spin_ns / 16 : s->rt->spin_ns;
}

/* One hit restores the full budget. */
static void spin_result(ca__sched *s, bool hit)
{
    if (hit)
        s->spin_misses = 0;
    else if (s->spin_misses < 1000)
        s->spin_misses++;
}

/* Before the loop goes to sleep in epoll, look for work from other threads
 * for a short while: waking a sleeping thread costs tens of microseconds
 * on a virtual machine, far more than a message. True if work came. */
static bool spin_for_work(ca__sched *s)
{
    if (!s->rt->spin_ns || s->stopping || s->hosts_io)
        return false;
    uint64_t budget = spin_budget(s), t0 = uv_hrtime();
    bool hit = false;
    do {
        for (int i = 0; i < 32; i++)
            cpu_relax();
        drain_remote(s);
        hit = s->rq_head != NULL;
    } while (!hit && uv_hrtime() - t0 < budget);
    spin_result(s, hit);
    return hit;
}

static void run_turns(ca__sched *s)
{
    for (int i = 0; i < TURNS_PER_ITER; i++) {
        ca_actor *a = rq_pop(s);
        if (!a)
            break;
        s->activity++;
        if (ca__run_actor(a))
            rq_append(s, a);
    }
    if (s->rq_head || spin_for_work(s))
        ensure_idle(s);
    else if (s->idle_on) {
        uv_idle_stop(&s->idle);
        s->idle_on = false;
    }
}

static void idle_cb(uv_idle_t *h)
{
    ca__sched *s = h->data;
    drain_remote(s);
    run_turns(s);
}

static void wake_cb(ca__waker *w)
{
    ca__sched *s = w->data;
    s->activity++;
    drain_remote(s);
    run_turns(s);
}

/* A loop with sockets cannot spin in spin_for_work (it would not see
 * them): it polls the whole loop without blocking instead, for as long as
 * the spin budget since the last thing it did, before it blocks in epoll.
 * Besides the wake-up on our side, this spares the peer's: a write to a
 * socket whose reader sleeps pays for waking it, and a peer streaming
 * messages pays that per write. Adaptive as spin_for_work. */
static void spin_loop(ca__sched *s)
{
    uint64_t budget = spin_budget(s);
    uint64_t seen = s->activity, t0 = uv_hrtime(), now = t0;
    bool hit = false;
    while (now - t0 < budget && !s->stopping) {
        uv_run(&s->loop, UV_RUN_NOWAIT);
        now = uv_hrtime();
        if (s->activity != seen) {
            seen = s->activity;
            t0 = now;
            hit = true;
        }
    }
    spin_result(s, hit);
}

/* A peer that goes away while the node writes to it raises SIGPIPE in the
 * writing thread (libuv writes without MSG_NOSIGNAL), and its default
 * action ends the whole process: one bad peer would kill a program that
 * embeds the runtime and never thought of SIGPIPE. Blocked in the
 * runtime's threads, the write fails with EPIPE instead and the signal
 * stays pending there, harmless; the program's own disposition is not
 * touched. */
static void block_sigpipe(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void sched_main(void *arg)
{
    ca__sched *s = arg;
    block_sigpipe();
    ca__tls_sched = s;
    while (uv_run(&s->loop, UV_RUN_ONCE))
        if (s->hosts_io && s->rt->spin_ns)
            spin_loop(s);
    ca__msg_cache_drain(s);
    ca__tls_sched = NULL;
}

/* ---- actor list (for shutdown and counts) ---- */

void ca__actor_list_remove(ca_actor *a)
{
    ca__sched *s = a->sched;
    pthread_mutex_lock(&s->lock);
    if (a->prev)
        a->prev->next = a->next;
    else if (s->actors == a)
        s->actors = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
    s->nactors--;
    pthread_mutex_unlock(&s->lock);
}

/* ---- shutdown ---- */

typedef struct phase_task {
    ca__task t;
    ca__sched *s;
} phase_task;

static void phase_done(ca_rt *rt)
{
    pthread_mutex_lock(&rt->wait_lock);
    atomic_fetch_add(&rt->phase_done, 1);
    pthread_cond_broadcast(&rt->wait_cond);
    pthread_mutex_unlock(&rt->wait_lock);
}

static void wait_phase(ca_rt *rt, unsigned n)
{
    pthread_mutex_lock(&rt->wait_lock);
    while (atomic_load(&rt->phase_done) < n)
        pthread_cond_wait(&rt->wait_cond, &rt->wait_lock);
    pthread_mutex_unlock(&rt->wait_lock);
}

static const char shutdown_reason[] = {(char)131, 119, 8, 's', 'h', 'u', 't', 'd', 'o', 'w', 'n'};

/* Phase 1 on each scheduler: every actor it owns exits with `shutdown`. */
static void phase_exit(ca__task *t)
{
    phase_task *pt = (phase_task *)t;
    ca__exit_all(pt->s, shutdown_reason, sizeof shutdown_reason);
    phase_done(pt->s->rt);
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

/* Phase 2: every actor is dead, so nothing schedules any more. Empty the
 * run queues (each dead actor drains its mailbox and drops its reference)
 * and close the handles so uv_run returns once background work is done. */
static void phase_stop(ca__task *t)
{
    phase_task *pt = (phase_task *)t;
    ca__sched *s = pt->s;
    drain_remote(s);
    ca_actor *a;
    /* Bounded: after phase 1 nothing sends, so each dead actor settles in
     * one turn; the bound only guards shutdown against a miscount. */
    for (long i = 0; (a = rq_pop(s)) != NULL; i++) {
        if (!ca__run_actor(a))
            continue;
        if (i > 10000000) {
            ca_log(s->rt, CA_LOG_ERROR, "shutdown: actor <%u.%u> never settles", a->pid.num,
                   a->pid.serial);
            break;
        }
        rq_append(s, a);
    }
    s->stopping = true;
    if (s->idle_on)
        uv_idle_stop(&s->idle);
    uv_close((uv_handle_t *)&s->idle, close_cb);
    ca__waker_close(&s->waker, close_cb);
}

static void run_phase(ca_rt *rt, void (*fn)(ca__task *), phase_task *tasks)
{
    atomic_store(&rt->phase_done, 0);
    for (unsigned i = 0; i < rt->nsched; i++) {
        tasks[i].t.fn = fn;
        tasks[i].s = &rt->sched[i];
        ca__sched_post(&rt->sched[i], &tasks[i].t);
    }
}

/* ---- creation ---- */

void ca_rt_opts_init(ca_rt_opts *o)
{
    memset(o, 0, sizeof *o);
    o->log_level = CA_LOG_WARNING;
    o->spin_us = 20;
}

static void log_stderr(void *ctx, ca_log_level level, const char *line)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    (void)ctx;
    fprintf(stderr, "cactor %s: %s\n", names[level], line);
}

void ca_log(ca_rt *rt, ca_log_level level, const char *fmt, ...)
{
    if (level > rt->log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    rt->log(rt->log_ctx, level, line);
}

static uint32_t fresh_creation(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t c = (uint32_t)(ts.tv_nsec ^ ts.tv_sec ^ ((uint32_t)getpid() << 16));
    return c ? c : 1;
}

static int sched_init(ca_rt *rt, ca__sched *s, unsigned idx)
{
    int rc;
    s->rt = rt;
    s->idx = idx;
    ca__mpsc_init(&s->inq);
    ca__mpsc_init(&s->tasks);
    if ((rc = uv_loop_init(&s->loop)) != 0)
        return CA_EUV;
    if ((rc = ca__waker_init(&s->loop, &s->waker, wake_cb)) != 0)
        goto fail_loop;
    if ((rc = uv_idle_init(&s->loop, &s->idle)) != 0)
        goto fail_async;
    s->waker.data = s;
    s->idle.data = s;
    pthread_mutex_init(&s->lock, NULL);
    return 0;
fail_async:
    ca__waker_close(&s->waker, NULL);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    ca__waker_destroy(&s->waker);
fail_loop:
    uv_loop_close(&s->loop);
    return CA_EUV;
}

static void sched_destroy(ca__sched *s)
{
    ca__waker_destroy(&s->waker); /* every thread that could wake it is gone */
    uv_loop_close(&s->loop);
    pthread_mutex_destroy(&s->lock);
}

int ca_rt_new(const ca_rt_opts *opts, ca_rt **out)
{
    ca_rt_opts def;
    int rc;
    unsigned i, started = 0;

    if (!out)
        return CA_EINVAL;
    if (!opts) {
        ca_rt_opts_init(&def);
        opts = &def;
    }
    ca_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return CA_ENOMEM;
    rt->nsched = opts->threads ? opts->threads : (unsigned)uv_available_parallelism();
    if (rt->nsched == 0 || rt->nsched > 1024) {
        rc = CA_EINVAL;
        goto fail_rt;
    }
    rt->batch = opts->batch ? opts->batch : 64;
    rt->spin_ns = (uint64_t)(opts->spin_us > 1000 ? 1000 : opts->spin_us) * 1000u;
    rt->creation = opts->creation ? opts->creation : fresh_creation();
    rt->log = opts->log ? opts->log : log_stderr;
    rt->log_ctx = opts->log_ctx;
    rt->log_level = opts->log_level;
    atomic_store(&rt->next_ref, 1);
    atomic_store(&rt->next_timer, 1);
    if ((rc = ca_node_intern(opts->node_name ? opts->node_name : "nonode@nohost", &rt->node)))
        goto fail_rt;
    if ((rc = ca__registry_new(&rt->reg)))
        goto fail_rt;
    if ((rc = ca__rpc_new(&rt->rpc))) {
        ca__registry_free(rt->reg);
        goto fail_rt;
    }
    pthread_mutex_init(&rt->slot_lock, NULL);
    pthread_mutex_init(&rt->wait_lock, NULL);
    pthread_cond_init(&rt->wait_cond, NULL);
    rt->nslots = 1;

    rt->sched = calloc(rt->nsched, sizeof *rt->sched);
    if (!rt->sched) {
        rc = CA_ENOMEM;
        goto fail_reg;
    }
    for (i = 0; i < rt->nsched; i++) {
        if ((rc = sched_init(rt, &rt->sched[i], i)))
            goto fail_sched;
    }
    for (started = 0; started < rt->nsched; started++) {
        if (uv_thread_create(&rt->sched[started].thread, sched_main, &rt->sched[started])) {
            rc = CA_EUV;
            goto fail_threads;
        }
    }
    *out = rt;
    return 0;

fail_threads:
    /* Stop the threads already running; they own no actor yet. */
    {
        phase_task *tasks = calloc(rt->nsched, sizeof *tasks);
        for (unsigned j = 0; tasks && j < started; j++) {
            tasks[j].t.fn = phase_stop;
            tasks[j].s = &rt->sched[j];
            ca__sched_post(&rt->sched[j], &tasks[j].t);
            uv_thread_join(&rt->sched[j].thread);
        }
        free(tasks);
    }
fail_sched:
    while (i-- > 0) {
        if (i >= started) {
            ca__waker_close(&rt->sched[i].waker, NULL);
            uv_close((uv_handle_t *)&rt->sched[i].idle, NULL);
            uv_run(&rt->sched[i].loop, UV_RUN_NOWAIT);
        }
        sched_destroy(&rt->sched[i]);
    }
    free(rt->sched);
fail_reg:
    ca__registry_free(rt->reg);
    ca__rpc_free(rt->rpc);
    pthread_mutex_destroy(&rt->slot_lock);
    pthread_mutex_destroy(&rt->wait_lock);
    pthread_cond_destroy(&rt->wait_cond);
fail_rt:
    free(rt);
    return rc;
}

void ca_rt_shutdown(ca_rt *rt, int code)
{
    pthread_mutex_lock(&rt->wait_lock);
    if (!rt->shut) {
        rt->shut = true;
        rt->shut_code = code;
    }
    pthread_cond_broadcast(&rt->wait_cond);
    pthread_mutex_unlock(&rt->wait_lock);
}

int ca_rt_wait(ca_rt *rt, int64_t timeout_ms)
{
    struct timespec dl;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &dl);
    if (timeout_ms >= 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&rt->wait_lock);
    while (!rt->shut && rc == 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&rt->wait_cond, &rt->wait_lock);
        else
            rc = pthread_cond_timedwait(&rt->wait_cond, &rt->wait_lock, &dl);
    }
    rc = rt->shut ? rt->shut_code : CA_ETIMEDOUT;
    pthread_mutex_unlock(&rt->wait_lock);
    return rc;
}

void ca_rt_free(ca_rt *rt)
{
    if (!rt)
        return;
    phase_task *tasks = calloc(rt->nsched, sizeof *tasks);
    phase_task one[1];
    /* A node still attached would keep scheduler 0's loop alive. */
    if (rt->dist && rt->dist->stop)
        rt->dist->stop(rt->dist_ctx);
    atomic_store(&rt->closing, true);
    /* Without memory for the task array, shut down one scheduler at a
     * time with a single task: slower, same result. */
    if (tasks) {
        run_phase(rt, phase_exit, tasks);
        wait_phase(rt, rt->nsched);
        run_phase(rt, phase_stop, tasks);
    } else {
        for (unsigned i = 0; i < rt->nsched; i++) {
            atomic_store(&rt->phase_done, 0);
            one[0].t.fn = phase_exit;
            one[0].s = &rt->sched[i];
            ca__sched_post(&rt->sched[i], &one[0].t);
            wait_phase(rt, 1);
        }
    }
    for (unsigned i = 0; i < rt->nsched; i++) {
        if (!tasks) {
            one[0].t.fn = phase_stop;
            one[0].s = &rt->sched[i];
            ca__sched_post(&rt->sched[i], &one[0].t);
        }
        uv_thread_join(&rt->sched[i].thread);
    }
    free(tasks);
    for (unsigned i = 0; i < rt->nsched; i++)
        sched_destroy(&rt->sched[i]);
    ca__slots_free(rt);
    free(rt->sched);
    ca__registry_free(rt->reg);
    ca__rpc_free(rt->rpc);
    pthread_mutex_destroy(&rt->slot_lock);
    pthread_mutex_destroy(&rt->wait_lock);
    pthread_cond_destroy(&rt->wait_cond);
    free(rt);
}

unsigned ca_rt_threads(const ca_rt *rt)
{
    return rt->nsched;
}

uint32_t ca_rt_node(const ca_rt *rt)
{
    return rt->node;
}

uint32_t ca_rt_creation(const ca_rt *rt)
{
    return rt->creation;
}

int ca_pid_is_local(const ca_rt *rt, ca_pid pid)
{
    return pid.node == rt->node && pid.creation == rt->creation;
}

void ca_rt_stats_get(ca_rt *rt, ca_rt_stats *st)
{
    st->actors_alive = atomic_load_explicit(&rt->st_alive, memory_order_relaxed);
    st->actors_spawned = atomic_load_explicit(&rt->st_spawned, memory_order_relaxed);
    uint64_t sent = atomic_load_explicit(&rt->st_sent, memory_order_relaxed);
    for (unsigned i = 0; i < rt->nsched; i++)
        sent += atomic_load_explicit(&rt->sched[i].sent, memory_order_relaxed);
    st->messages_sent = sent;
    st->overflows = atomic_load_explicit(&rt->st_overflows, memory_order_relaxed);
    st->restarts = atomic_load_explicit(&rt->st_restarts, memory_order_relaxed);
}

int ca_rt_actors(ca_rt *rt, ca_pid **pids, size_t *n)
{
    if (!rt || !pids || !n)
        return CA_EINVAL;
    ca_pid *out = NULL;
    size_t cap = 0, k = 0;
    for (unsigned i = 0; i < rt->nsched; i++) {
        ca__sched *s = &rt->sched[i];
        /* Room for this scheduler's list is made outside its lock, which
         * spawns and exits take; the list may grow meanwhile: try again. */
        for (;;) {
            pthread_mutex_lock(&s->lock);
            size_t need = k + (size_t)s->nactors;
            if (need <= cap)
                break;
            pthread_mutex_unlock(&s->lock);
            size_t ncap = need + need / 8 + 16;
            ca_pid *p = realloc(out, ncap * sizeof *p);
            if (!p) {
                free(out);
                return CA_ENOMEM;
            }
            out = p;
            cap = ncap;
        }
        for (ca_actor *a = s->actors; a && k < cap; a = a->next)
            if (!atomic_load(&a->dead))
                out[k++] = a->pid;
        pthread_mutex_unlock(&s->lock);
    }
    if (k == 0) {
        free(out);
        out = NULL;
    }
    *pids = out;
    *n = k;
    return 0;
}

void ca_make_ref(ca_rt *rt, ca_ref *ref)
{
    uint64_t n = atomic_fetch_add_explicit(&rt->next_ref, 1, memory_order_relaxed);
    memset(ref, 0, sizeof *ref);
    ref->node = rt->node;
    ref->creation = rt->creation;
    ref->len = 3;
    /* Erlang keeps 18 bits in the first word of a reference. */
    ref->n[0] = (uint32_t)(n & 0x3ffff);
    ref->n[1] = (uint32_t)(n >> 18);
    ref->n[2] = (uint32_t)(n >> 50);
}
