/*
 * The actor runtime: spawning, sending, ordering, names, links, monitors,
 * exits, timers, overflow policies, background work, shutdown.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "cactor.h"
#include "internal.h"
#include "probe.h"
#include "refmap.h"

#define WAIT_MS 5000

static probe P;
static ca_rt *RT;

static ca_rt *rt_start(unsigned threads)
{
    ca_rt_opts o;
    ca_rt_opts_init(&o);
    o.threads = threads;
    ca_rt *rt = NULL;
    CU_ASSERT_FATAL(ca_rt_new(&o, &rt) == 0);
    return rt;
}

static void term_text(const char *buf, size_t len, char *out, size_t cap)
{
    if (ca_term_print(buf, len, out, cap) < 0)
        snprintf(out, cap, "<bad>");
}

/* ---- a scriptable test actor ---- */

typedef struct tactor {
    const char *tag;
    ca_ref mon;
    int init_rc;
    pthread_mutex_t *gate; /* if set, the first message blocks on it */
    atomic_int *freed;
} tactor;

static int t_init(ca_actor *self, void *arg, void **state)
{
    tactor *t = arg;
    (void)self;
    *state = t;
    if (t->init_rc)
        probe_say(&P, "%s: init failing", t->tag);
    return t->init_rc;
}

static int t_handle(ca_actor *self, void *state, ca_msg *m)
{
    tactor *t = state;
    ca_pid p;
    const char *r;
    size_t rlen;
    long n;
    char txt[256];

    if (t->gate) {
        probe_say(&P, "%s: gated", t->tag);
        pthread_mutex_lock(t->gate);
        pthread_mutex_unlock(t->gate);
        t->gate = NULL;
    }
    if (ca_msg_type(m) == CA_MSG_PTR) {
        uint64_t tag;
        long *v = ca_msg_ptr(m, &tag);
        probe_say(&P, "%s: ptr %llu %ld", t->tag, (unsigned long long)tag, v ? *v : -1);
        return 0;
    }
    if (ca_match(m, "{'EXIT', _, ~t}", &r, &rlen) == 0) {
        term_text(r, rlen, txt, sizeof txt);
        probe_say(&P, "%s: EXIT %s", t->tag, txt);
        return 0;
    }
    if (ca_match(m, "{'DOWN', ~r, process, ~p, ~t}", NULL, &p, &r, &rlen) == 0) {
        term_text(r, rlen, txt, sizeof txt);
        probe_say(&P, "%s: DOWN %s", t->tag, txt);
        return 0;
    }
    char name[CA_MAXATOM], node[CA_MAXATOM];
    if (ca_match(m, "{'DOWN', ~r, process, {~a, ~a}, ~t}", NULL, name, node, &r, &rlen) == 0) {
        term_text(r, rlen, txt, sizeof txt);
        probe_say(&P, "%s: DOWN of %s at %s: %s", t->tag, name, node, txt);
        return 0;
    }
    if (ca_match(m, "{monitor_name, ~a, ~a}", name, node) == 0) {
        int rc = ca_monitor_name(self, name, strcmp(node, "here") ? node : NULL, &t->mon);
        probe_say(&P, "%s: monitor_name %s", t->tag, ca_errname(rc));
        return 0;
    }
    if (ca_match(m, "{link, ~p}", &p) == 0) {
        probe_say(&P, "%s: link %s", t->tag, ca_errname(ca_link(self, p)));
        return 0;
    }
    if (ca_match(m, "{unlink, ~p}", &p) == 0) {
        probe_say(&P, "%s: unlink %s", t->tag, ca_errname(ca_unlink(self, p)));
        return 0;
    }
    if (ca_match(m, "{monitor, ~p}", &p) == 0) {
        probe_say(&P, "%s: monitor %s", t->tag, ca_errname(ca_monitor(self, p, &t->mon)));
        return 0;
    }
    if (ca_match(m, "demonitor") == 0) {
        probe_say(&P, "%s: demonitor %s", t->tag, ca_errname(ca_demonitor(self, &t->mon)));
        return 0;
    }
    if (ca_match(m, "{trap, ~i}", &n) == 0) {
        ca_trap_exit(self, (int)n);
        probe_say(&P, "%s: trap %ld", t->tag, n);
        return 0;
    }
    if (ca_match(m, "{exit, ~t}", &r, &rlen) == 0)
        return ca_exit(self, "~t", r, rlen);
    if (ca_match(m, "{kill, ~p, ~t}", &p, &r, &rlen) == 0) {
        char copy[64];
        memcpy(copy, r, rlen);
        return ca_kill(ca_actor_rt(self), ca_self(self), p, "~t", copy, rlen);
    }
    if (ca_match(m, "fail") == 0)
        return CA_EINVAL;
    term_text(ca_msg_data(m, NULL), ca_msg_data(m, &rlen) ? rlen : 0, txt, sizeof txt);
    probe_say(&P, "%s: got %s", t->tag, txt);
    return 0;
}

static void t_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    tactor *t = state;
    char txt[256];
    (void)self;
    term_text(reason, len, txt, sizeof txt);
    probe_say(&P, "%s: terminate %s", t->tag, txt);
    if (t->freed)
        atomic_fetch_add(t->freed, 1);
}

static const ca_behaviour T = {"tactor", t_init, t_handle, t_terminate};

static ca_pid spawn_t(tactor *t, unsigned flags)
{
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.flags = flags;
    ca_pid pid;
    CU_ASSERT_FATAL(ca_spawn(RT, &T, t, &o, &pid) == 0);
    return pid;
}

static int setup(void)
{
    probe_init(&P);
    return 0;
}

static int teardown(void)
{
    probe_free(&P);
    return 0;
}

static void before(void)
{
    probe_reset(&P);
    RT = rt_start(2);
}

static void after(void)
{
    ca_rt_free(RT);
    RT = NULL;
}

/* ---- tests ---- */

static void test_spawn_bad_input(void)
{
    before();
    ca_behaviour nohandle = {"x", NULL, NULL, NULL};
    ca_spawn_opts o;
    ca_pid pid;
    CU_ASSERT_EQUAL(ca_spawn(RT, NULL, NULL, NULL, &pid), CA_EINVAL);
    CU_ASSERT_EQUAL(ca_spawn(RT, &nohandle, NULL, NULL, &pid), CA_EINVAL);
    ca_spawn_opts_init(&o);
    o.name = "";
    CU_ASSERT_EQUAL(ca_spawn(RT, &T, NULL, &o, &pid), CA_EBADNAME);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    o.name = longname;
    CU_ASSERT_EQUAL(ca_spawn(RT, &T, NULL, &o, &pid), CA_EBADNAME);
    o.name = "bad\xff";
    CU_ASSERT_EQUAL(ca_spawn(RT, &T, NULL, &o, &pid), CA_EBADNAME);
    ca_rt_stats st;
    ca_rt_stats_get(RT, &st);
    CU_ASSERT_EQUAL(st.actors_spawned, 0);
    after();
}

static size_t count_in(const ca_pid *pids, size_t n, ca_pid p)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ca_pid_eq(pids[i], p);
    return k;
}

/* ---- process_info: a CA__SIG_INFO answered by the actor itself ---- */

static int infoc_handle(ca_actor *self, void *state, ca_msg *m)
{
    const char *t;
    size_t tl;
    char txt[512];
    (void)self;
    (void)state;
    if (ca_match(m, "{~r, ~t}", NULL, &t, &tl) == 0) {
        term_text(t, tl, txt, sizeof txt);
        probe_say(&P, "info: %s", txt);
    }
    return 0;
}

static const ca_behaviour INFOC = {"infoc", NULL, infoc_handle, NULL};

/* Ask `of` for `items` (ca_fmt syntax) on behalf of the collector. */
static int ask_info(ca_pid collector, ca_pid of, const char *items)
{
    ei_x_buff x;
    ca_ref ref;
    ei_x_new(&x);
    ca_fmt(&x, items);
    ca_make_ref(RT, &ref);
    int rc = ca__signal(RT, CA__SIG_INFO, collector, of, &ref, x.buff, (size_t)x.index);
    ei_x_free(&x);
    return rc;
}

/* "info: " and the term, as the collector prints it. */
static int wait_info(const char *fmt, ...)
{
    char txt[512], line[600];
    ei_x_buff x;
    va_list ap;
    ei_x_new(&x);
    va_start(ap, fmt);
    ca_vfmt(&x, fmt, ap);
    va_end(ap);
    term_text(x.buff, (size_t)x.index, txt, sizeof txt);
    ei_x_free(&x);
    snprintf(line, sizeof line, "info: %s", txt);
    return probe_wait(&P, line, WAIT_MS);
}

static void test_process_info(void)
{
    before();
    tactor ta = {.tag = "a"}, tb = {.tag = "b"}, tc = {.tag = "c"}, td = {.tag = "d"},
           te = {.tag = "e"};
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = "infoa";
    ca_pid a, b = spawn_t(&tb, 0), c = spawn_t(&tc, 0), k;
    CU_ASSERT_FATAL(ca_spawn(RT, &T, &ta, &o, &a) == 0);
    CU_ASSERT_FATAL(ca_spawn(RT, &INFOC, NULL, NULL, &k) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, a, "{trap, 1}");
    ca_rt_sendf(RT, CA_PID_NONE, a, "{link, ~p}", b);
    ca_rt_sendf(RT, CA_PID_NONE, a, "{monitor, ~p}", c);
    ca_rt_sendf(RT, CA_PID_NONE, b, "{monitor, ~p}", a);
    CU_ASSERT(probe_wait(&P, "a: monitor ok", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "b: monitor ok", WAIT_MS));
    CU_ASSERT_EQUAL(ask_info(k, a, "[registered_name, links, monitors, monitored_by, trap_exit]"),
                    0);
    CU_ASSERT(wait_info("[{registered_name, infoa}, {links, [~p]}, {monitors, [{process, ~p}]}, "
                        "{monitored_by, [~p]}, {trap_exit, true}]",
                        b, c, b));
    /* one item; all of them (no registered_name when there is none); none */
    CU_ASSERT_EQUAL(ask_info(k, b, "links"), 0);
    CU_ASSERT(wait_info("{links, [~p]}", a));
    CU_ASSERT_EQUAL(ask_info(k, c, "'$all'"), 0);
    CU_ASSERT(wait_info("[{message_queue_len, 0}, {links, []}, {monitors, []}, "
                        "{monitored_by, [~p]}, {trap_exit, false}]",
                        a));
    CU_ASSERT_EQUAL(ask_info(k, c, "[]"), 0);
    CU_ASSERT(wait_info("[]"));
    /* the queue behind the request: d is held in its first message */
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&gate);
    td.gate = &gate;
    ca_pid d = spawn_t(&td, 0);
    ca_rt_sendf(RT, CA_PID_NONE, d, "first");
    CU_ASSERT(probe_wait(&P, "d: gated", WAIT_MS));
    CU_ASSERT_EQUAL(ask_info(k, d, "message_queue_len"), 0);
    for (int i = 0; i < 3; i++)
        ca_rt_sendf(RT, CA_PID_NONE, d, "later");
    pthread_mutex_unlock(&gate);
    CU_ASSERT(wait_info("{message_queue_len, 3}"));
    /* an actor that exits with the request queued answers undefined; a
     * dead one is not asked */
    pthread_mutex_lock(&gate);
    te.gate = &gate;
    ca_pid e = spawn_t(&te, 0);
    ca_rt_sendf(RT, CA_PID_NONE, e, "first");
    CU_ASSERT(probe_wait(&P, "e: gated", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, e, "{exit, boom}");
    CU_ASSERT_EQUAL(ask_info(k, e, "links"), 0);
    pthread_mutex_unlock(&gate);
    CU_ASSERT(wait_info("undefined"));
    CU_ASSERT(probe_wait(&P, "e: terminate boom", WAIT_MS));
    for (int w = 0; w < 2000 && ca_is_alive(RT, e); w++)
        usleep(1000);
    CU_ASSERT_EQUAL(ask_info(k, e, "links"), CA_ESRCH);
    after();
}

/* How long a registered function's calls run, as job placement reads it:
 * an average over the last few calls that reaches the value it is fed. */
static int nop_fn(void *ctx, ca_actor *caller, const char *args, size_t len, ei_x_buff *r)
{
    (void)ctx, (void)caller, (void)args, (void)len;
    return ca_fmt(r, "ok");
}

static int find_mf(void *arg, const ca__rpc_stat *st)
{
    ca__rpc_stat *out = arg;
    if (strcmp(st->mod, "m") || strcmp(st->fun, "f"))
        return 0;
    *out = *st;
    return 1; /* found: stop */
}

static void test_rpc_cost(void)
{
    before();
    ca__rpc_hit hit;
    CU_ASSERT_EQUAL(ca__rpc_find(RT, "m", "f", 0, &hit), CA_ENOENT);
    CU_ASSERT_EQUAL_FATAL(ca_rpc_register(RT, "m", "f", 0, nop_fn, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(ca__rpc_find(RT, "m", "f", 0, &hit), 0);
    CU_ASSERT(hit.fn == nop_fn);
    CU_ASSERT_EQUAL(atomic_load(hit.cost_us), 0);
    ca__rpc_cost(&hit, 100000); /* one slow call moves it, not all the way */
    uint32_t one = atomic_load(hit.cost_us);
    CU_ASSERT(one > 0 && one < 100);
    for (int i = 0; i < 100; i++)
        ca__rpc_cost(&hit, 100000);
    CU_ASSERT_EQUAL(atomic_load(hit.cost_us), 100);
    for (int i = 0; i < 100; i++)
        ca__rpc_cost(&hit, 500);
    CU_ASSERT_EQUAL(atomic_load(hit.cost_us), 0);
    ca__rpc_cost(&hit, UINT64_MAX); /* clamped, no wrap */
    CU_ASSERT(atomic_load(hit.cost_us) > 0);
    /* what cactor:info/0 shows: calls counted, the average */
    ca__rpc_stat st = {0};
    CU_ASSERT_EQUAL(ca__rpc_each(RT, find_mf, &st), 1);
    CU_ASSERT_EQUAL(st.calls, 202);
    CU_ASSERT_EQUAL(st.arity, 0);
    CU_ASSERT_EQUAL(st.avg_us, atomic_load(hit.cost_us));
    after();
}

/* erlang:processes/0's snapshot: every live actor once, the dead gone. */
static void test_rt_actors(void)
{
    enum { N = 50, KILLED = 20 };
    before();
    ca_pid *pids = (ca_pid *)1, made[N];
    size_t n = 1;
    CU_ASSERT_EQUAL(ca_rt_actors(RT, &pids, &n), 0);
    CU_ASSERT(pids == NULL && n == 0);
    CU_ASSERT_EQUAL(ca_rt_actors(NULL, &pids, &n), CA_EINVAL);
    CU_ASSERT_EQUAL(ca_rt_actors(RT, NULL, &n), CA_EINVAL);
    tactor t[N];
    for (int i = 0; i < N; i++) {
        t[i] = (tactor){.tag = "x"};
        made[i] = spawn_t(&t[i], 0);
    }
    CU_ASSERT_EQUAL_FATAL(ca_rt_actors(RT, &pids, &n), 0);
    CU_ASSERT_EQUAL(n, N);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(count_in(pids, n, made[i]), 1);
    free(pids);
    for (int i = 0; i < KILLED; i++)
        CU_ASSERT_EQUAL(ca_kill(RT, CA_PID_NONE, made[i], "kill"), 0);
    for (int i = 0; i < KILLED; i++) {
        for (int w = 0; w < 2000 && ca_is_alive(RT, made[i]); w++)
            usleep(1000);
        CU_ASSERT_FALSE(ca_is_alive(RT, made[i]));
    }
    CU_ASSERT_EQUAL_FATAL(ca_rt_actors(RT, &pids, &n), 0);
    CU_ASSERT_EQUAL(n, N - KILLED);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(count_in(pids, n, made[i]), i >= KILLED);
    free(pids);
    after();
}

static void test_send_and_reply_path(void)
{
    before();
    tactor a = {.tag = "a"};
    ca_pid pa = spawn_t(&a, 0);
    CU_ASSERT_EQUAL(ca_rt_sendf(RT, CA_PID_NONE, pa, "{hello, ~i, ~a}", 42L, "world"), 0);
    CU_ASSERT(probe_wait(&P, "a: got {hello,42,world}", WAIT_MS));
    /* A payload that is not a term is refused, not delivered. */
    CU_ASSERT_EQUAL(ca_rt_send(RT, CA_PID_NONE, pa, "\x83\x61", 2), CA_EBADTERM);
    CU_ASSERT_EQUAL(ca_rt_send(RT, CA_PID_NONE, pa, "junk", 4), CA_EBADTERM);
    CU_ASSERT_EQUAL(ca_rt_send(RT, CA_PID_NONE, CA_PID_NONE, "\x83\x61\x01", 3), CA_EINVAL);
    /* The handler reports before the runtime counts the message. */
    ca_actor_stats st = {0};
    for (int i = 0; i < 1000; i++) {
        CU_ASSERT_EQUAL_FATAL(ca_actor_stats_get(RT, pa, &st), 0);
        if (st.handled == 1)
            break;
        usleep(1000);
    }
    CU_ASSERT_EQUAL(st.handled, 1);
    after();
}

static void test_send_to_dead(void)
{
    before();
    tactor a = {.tag = "a"};
    ca_pid pa = spawn_t(&a, 0);
    CU_ASSERT_EQUAL(ca_rt_sendf(RT, CA_PID_NONE, pa, "{exit, normal}"), 0);
    CU_ASSERT(probe_wait(&P, "a: terminate normal", WAIT_MS));
    /* The actor is torn down right after terminate; allow it a moment. */
    for (int i = 0; i < 500 && ca_is_alive(RT, pa); i++)
        usleep(1000);
    CU_ASSERT_EQUAL(ca_is_alive(RT, pa), 0);
    CU_ASSERT_EQUAL(ca_rt_sendf(RT, CA_PID_NONE, pa, "hello"), CA_ESRCH);
    long v = 5;
    CU_ASSERT_EQUAL(ca_rt_send_ptr(RT, CA_PID_NONE, pa, 1, &v, NULL), CA_ESRCH);
    /* A pid of another node without distribution: not connected. */
    ca_pid remote = pa;
    CU_ASSERT_EQUAL(ca_node_intern("other@host", &remote.node), 0);
    CU_ASSERT_EQUAL(ca_rt_sendf(RT, CA_PID_NONE, remote, "hello"), CA_ENOTCONN);
    /* Same node, other incarnation: a stale pid. */
    ca_pid stale = pa;
    stale.creation ^= 1;
    CU_ASSERT_EQUAL(ca_rt_sendf(RT, CA_PID_NONE, stale, "hello"), CA_ENOTCONN);
    after();
}

/* Ordering: several senders, each numbering its messages. */
typedef struct order_state {
    long next[8];
    long errors;
    long total;
    long expect;
} order_state;

static int order_handle(ca_actor *self, void *state, ca_msg *m)
{
    order_state *o = state;
    long who, seq;
    (void)self;
    if (ca_match(m, "{~i, ~i}", &who, &seq) != 0 || who < 0 || who >= 8) {
        o->errors++;
        return 0;
    }
    if (seq != o->next[who])
        o->errors++;
    o->next[who] = seq + 1;
    if (++o->total == o->expect)
        probe_say(&P, "order: done errors=%ld", o->errors);
    return 0;
}

static const ca_behaviour ORDER = {"order", NULL, order_handle, NULL};

typedef struct sender_arg {
    ca_pid to;
    long who, n, sent;
} sender_arg;

static void *sender_thread(void *arg)
{
    sender_arg *s = arg;
    for (long i = 0; i < s->n; i++)
        while (ca_rt_sendf(RT, CA_PID_NONE, s->to, "{~i, ~i}", s->who, i) != 0)
            ;
    return NULL;
}

static int burst_handle(ca_actor *self, void *state, ca_msg *m)
{
    sender_arg *s = state;
    (void)m;
    /* Spread over turns: each message sends a slice, so senders interleave. */
    for (int k = 0; k < 100 && s->sent < s->n; k++, s->sent++)
        ca_sendf(self, s->to, "{~i, ~i}", s->who, s->sent);
    if (s->sent < s->n)
        ca_sendf(self, ca_self(self), "more");
    return 0;
}

static const ca_behaviour BURST = {"burst", NULL, burst_handle, NULL};

static void test_order_per_sender(void)
{
    before();
    order_state os = {.expect = 4 * 20000 + 4 * 1000};
    ca_pid rx;
    CU_ASSERT_FATAL(ca_spawn(RT, &ORDER, &os, NULL, &rx) == 0);
    pthread_t th[4];
    sender_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (sender_arg){rx, i, 20000, 0};
        pthread_create(&th[i], NULL, sender_thread, &args[i]);
    }
    /* Actors on both schedulers send too. */
    sender_arg aargs[4];
    for (int i = 0; i < 4; i++) {
        aargs[i] = (sender_arg){rx, 4 + i, 1000, 0};
        ca_pid p;
        CU_ASSERT_FATAL(ca_spawn(RT, &BURST, &aargs[i], NULL, &p) == 0);
        ca_rt_sendf(RT, CA_PID_NONE, p, "go");
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CU_ASSERT(probe_wait(&P, "order: done errors=0", 20000));
    after();
}

/* Messages of every size around the small-message limit (msg.c keeps
 * small ones for reuse on the scheduler that frees them), sent to self in
 * rounds so that each round reuses the last one's memory: every message
 * must arrive whole, whatever size the memory it reuses had. */
typedef struct sizes_state {
    int round, got, bad;
} sizes_state;

#define SIZES_MAX   400
#define SIZES_ROUND 4

static int sizes_handle(ca_actor *self, void *state, ca_msg *m)
{
    sizes_state *st = state;
    const char *b;
    size_t len;
    if (ca_match(m, "~b", &b, &len) == 0) {
        for (size_t i = 0; i < len; i++)
            st->bad += (unsigned char)b[i] != (unsigned char)(len + i + st->round);
        if (++st->got % (SIZES_MAX + 1))
            return 0;
        if (++st->round == SIZES_ROUND) {
            probe_say(&P, "sizes: %d got, %d bad", st->got, st->bad);
            return 0;
        }
    }
    /* a round: the sizes in an order that mixes big and small */
    char buf[SIZES_MAX];
    for (size_t k = 0; k <= SIZES_MAX; k++) {
        size_t len2 = (k * 37 + (size_t)st->round) % (SIZES_MAX + 1);
        for (size_t i = 0; i < len2; i++)
            buf[i] = (char)(len2 + i + (size_t)st->round);
        if (ca_sendf(self, ca_self(self), "~b", (const void *)buf, len2) != 0)
            st->bad++;
    }
    return 0;
}

static const ca_behaviour SIZES = {"sizes", NULL, sizes_handle, NULL};

static void test_message_sizes_reused(void)
{
    before();
    sizes_state st = {0};
    ca_pid p;
    CU_ASSERT_FATAL(ca_spawn(RT, &SIZES, &st, NULL, &p) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, p, "go");
    CU_ASSERT(probe_wait(&P, "sizes: 1604 got, 0 bad", 10000));
    after();
}

static void test_names(void)
{
    before();
    tactor a = {.tag = "a"}, b = {.tag = "b"};
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = "alpha";
    ca_pid pa, pb, w;
    CU_ASSERT_FATAL(ca_spawn(RT, &T, &a, &o, &pa) == 0);
    CU_ASSERT_EQUAL(ca_whereis(RT, "alpha", &w), 0);
    CU_ASSERT(ca_pid_eq(w, pa));
    /* Taken name, bad names, unknown names. */
    CU_ASSERT_EQUAL(ca_spawn(RT, &T, &b, &o, &pb), CA_EEXIST);
    pb = spawn_t(&b, 0);
    CU_ASSERT_EQUAL(ca_register(RT, "alpha", pb), CA_EEXIST);
    CU_ASSERT_EQUAL(ca_register(RT, "alpha2", pa), CA_EEXIST); /* one name per actor */
    CU_ASSERT_EQUAL(ca_register(RT, "", pb), CA_EBADNAME);
    CU_ASSERT_EQUAL(ca_register(RT, NULL, pb), CA_EBADNAME);
    CU_ASSERT_EQUAL(ca_whereis(RT, "nobody", &w), CA_ENOENT);
    CU_ASSERT_EQUAL(ca_unregister(RT, "nobody"), CA_ENOENT);
    CU_ASSERT_EQUAL(ca_rt_send_name(RT, CA_PID_NONE, "nobody", "\x83\x61\x01", 3), CA_ENOENT);
    /* Send by name. */
    CU_ASSERT_EQUAL(ca_rt_send_name(RT, CA_PID_NONE, "alpha", "\x83\x61\x07", 3), 0);
    CU_ASSERT(probe_wait(&P, "a: got 7", WAIT_MS));
    /* Unregister, re-register elsewhere. */
    CU_ASSERT_EQUAL(ca_unregister(RT, "alpha"), 0);
    CU_ASSERT_EQUAL(ca_whereis(RT, "alpha", &w), CA_ENOENT);
    CU_ASSERT_EQUAL(ca_register(RT, "alpha", pb), 0);
    CU_ASSERT_EQUAL(ca_whereis(RT, "alpha", &w), 0);
    CU_ASSERT(ca_pid_eq(w, pb));
    /* The list of names: alpha, and no more. */
    char **names;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(ca_registered(RT, &names, &n), 0);
    CU_ASSERT(n == 1 && strcmp(names[0], "alpha") == 0);
    ca_names_free(names, n);
    CU_ASSERT_EQUAL(ca_registered(NULL, &names, &n), CA_EINVAL);
    /* The name is freed when its actor exits. */
    ca_rt_sendf(RT, CA_PID_NONE, pb, "fail");
    CU_ASSERT(probe_wait(&P, "b: terminate {error,einval}", WAIT_MS));
    int gone = 0;
    for (int i = 0; i < 500 && !gone; i++) {
        gone = ca_whereis(RT, "alpha", &w) == CA_ENOENT;
        if (!gone)
            usleep(1000);
    }
    CU_ASSERT(gone);
    CU_ASSERT_EQUAL(ca_register(RT, "alpha", pa), 0);
    /* Registering a dead actor fails. */
    CU_ASSERT_EQUAL(ca_register(RT, "beta", pb), CA_ESRCH);
    after();
}

static void test_link_crash_kills_partner(void)
{
    before();
    tactor a = {.tag = "a"}, b = {.tag = "b"};
    ca_pid pa = spawn_t(&a, 0), pb = spawn_t(&b, 0);
    ca_rt_sendf(RT, CA_PID_NONE, pa, "{link, ~p}", pb);
    CU_ASSERT(probe_wait(&P, "a: link ok", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pb, "{exit, boom}");
    CU_ASSERT(probe_wait(&P, "b: terminate boom", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "a: terminate boom", WAIT_MS));
    after();
}

static void test_link_trap_exit(void)
{
    before();
    tactor a = {.tag = "a"}, b = {.tag = "b"};
    ca_pid pa = spawn_t(&a, CA_SPAWN_TRAP_EXIT), pb = spawn_t(&b, 0);
    ca_rt_sendf(RT, CA_PID_NONE, pb, "{link, ~p}", pa);
    CU_ASSERT(probe_wait(&P, "b: link ok", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pb, "fail");
    CU_ASSERT(probe_wait(&P, "a: EXIT {error,einval}", WAIT_MS));
    /* a lives on. */
    ca_rt_sendf(RT, CA_PID_NONE, pa, "still_here");
    CU_ASSERT(probe_wait(&P, "a: got still_here", WAIT_MS));
    CU_ASSERT_EQUAL(probe_count(&P, "a: terminate {error,einval}"), 0);
    after();
}

static void test_link_normal_exit_ignored(void)
{
    before();
    tactor a = {.tag = "a"}, b = {.tag = "b"};
    ca_pid pa = spawn_t(&a, 0), pb = spawn_t(&b, 0);
    ca_rt_sendf(RT, CA_PID_NONE, pa, "{link, ~p}", pb);
    CU_ASSERT(probe_wait(&P, "a: link ok", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pb, "{exit, normal}");
    CU_ASSERT(probe_wait(&P, "b: terminate normal", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pa, "ping");
    CU_ASSERT(probe_wait(&P, "a: got ping", WAIT_MS));
    CU_ASSERT_EQUAL(probe_count(&P, "a: terminate normal"), 0);
    after();
}

static void test_link_to_dead_and_unlink(void)
{
    before();
    tactor a = {.tag = "a"}, b = {.tag = "b"}, c = {.tag = "c"};
    ca_pid pa = spawn_t(&a, 0), pb = spawn_t(&b, 0), pc = spawn_t(&c, 0);
    ca_rt_sendf(RT, CA_PID_NONE, pb, "{exit, normal}");
    CU_ASSERT(probe_wait(&P, "b: terminate normal", WAIT_MS));
    for (int i = 0; i < 500 && ca_is_alive(RT, pb); i++)
        usleep(1000);
    ca_rt_sendf(RT, CA_PID_NONE, pa, "{link, ~p}", pb);
    CU_ASSERT(probe_wait(&P, "a: link esrch", WAIT_MS));
    /* Unlink: the partner's exit no longer reaches us. */
    ca_rt_sendf(RT, CA_PID_NONE, pa, "{link, ~p}", pc);
    CU_ASSERT(probe_wait(&P, "a: link ok", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pa, "{unlink, ~p}", pc);
    CU_ASSERT(probe_wait(&P, "a: unlink ok", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pc, "{exit, boom}");
    CU_ASSERT(probe_wait(&P, "c: terminate boom", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pa, "ping");
    CU_ASSERT(probe_wait(&P, "a: got ping", WAIT_MS));
    CU_ASSERT_EQUAL(probe_count(&P, "a: terminate boom"), 0);
    after();
}

static void test_kill_signals(void)
{
    before();
    tactor a = {.tag = "a"}, b = {.tag = "b"}, c = {.tag = "c"};
    ca_pid pa = spawn_t(&a, CA_SPAWN_TRAP_EXIT), pb = spawn_t(&b, CA_SPAWN_TRAP_EXIT);
    ca_pid pc = spawn_t(&c, 0);
    /* Trapping: a custom reason arrives as a message. */
    CU_ASSERT_EQUAL(ca_kill(RT, CA_PID_NONE, pa, "{shutdown, tired}"), 0);
    CU_ASSERT(probe_wait(&P, "a: EXIT {shutdown,tired}", WAIT_MS));
    /* kill cannot be trapped and becomes killed. */
    CU_ASSERT_EQUAL(ca_kill(RT, CA_PID_NONE, pa, "kill"), 0);
    CU_ASSERT(probe_wait(&P, "a: terminate killed", WAIT_MS));
    /* normal is ignored by a non-trapping actor. */
    CU_ASSERT_EQUAL(ca_kill(RT, CA_PID_NONE, pc, "normal"), 0);
    ca_rt_sendf(RT, CA_PID_NONE, pc, "ping");
    CU_ASSERT(probe_wait(&P, "c: got ping", WAIT_MS));
    CU_ASSERT_EQUAL(probe_count(&P, "c: terminate normal"), 0);
    /* Anything else kills a non-trapping actor; links see `killed`. */
    ca_rt_sendf(RT, CA_PID_NONE, pb, "{link, ~p}", pc);
    CU_ASSERT(probe_wait(&P, "b: link ok", WAIT_MS));
    CU_ASSERT_EQUAL(ca_kill(RT, CA_PID_NONE, pc, "kill"), 0);
    CU_ASSERT(probe_wait(&P, "c: terminate killed", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "b: EXIT killed", WAIT_MS));
    CU_ASSERT_EQUAL(ca_kill(RT, CA_PID_NONE, pc, "kill"), CA_ESRCH);
    CU_ASSERT_EQUAL(ca_kill_term(RT, CA_PID_NONE, pb, "zz", 2), CA_EBADTERM);
    after();
}

/* An exit signal whose reason nests a million lists deep, as an Erlang
 * peer's exit(Pid, Deep) can carry one: read without recursion (ei's
 * ei_skip_term recursed once per level and overflowed the stack), the
 * actor dies of it, a linked actor trapping exits gets it. */
static void test_deep_exit_reason(void)
{
    enum { DEPTH = 1000000 };
    static const char list1[] = {108, 0, 0, 0, 1}; /* LIST_EXT of one element */
    before();
    /* written by hand: ei_x grows 100 bytes at a time, which under ASan's
     * realloc (always a copy) takes minutes for 6 MB */
    size_t len = 1 + 5 * (size_t)DEPTH + DEPTH + 1;
    char *deep = malloc(len);
    CU_ASSERT_FATAL(deep != NULL);
    deep[0] = (char)131;
    for (size_t i = 0; i < DEPTH; i++)
        memcpy(deep + 1 + 5 * i, list1, sizeof list1);
    memset(deep + 1 + 5 * (size_t)DEPTH, 106, (size_t)DEPTH + 1); /* the [] and every tail */
    char text[256], line[300];
    term_text(deep, len, text, sizeof text);
    CU_ASSERT(strncmp(text, "[[[[", 4) == 0);
    tactor a = {.tag = "a"}, w = {.tag = "w"};
    ca_pid pa = spawn_t(&a, 0), pw = spawn_t(&w, CA_SPAWN_TRAP_EXIT);
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{link, ~p}", pa);
    CU_ASSERT(probe_wait(&P, "w: link ok", WAIT_MS));
    CU_ASSERT_EQUAL(ca_kill_term(RT, CA_PID_NONE, pa, deep, len), 0);
    snprintf(line, sizeof line, "a: terminate %s", text);
    CU_ASSERT(probe_wait(&P, line, WAIT_MS));
    snprintf(line, sizeof line, "w: EXIT %s", text);
    CU_ASSERT(probe_wait(&P, line, WAIT_MS));
    free(deep);
    after();
}

static void test_monitors(void)
{
    before();
    tactor w = {.tag = "w"}, a = {.tag = "a"}, b = {.tag = "b"};
    ca_pid pw = spawn_t(&w, 0), pa = spawn_t(&a, 0), pb = spawn_t(&b, 0);
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{monitor, ~p}", pa);
    CU_ASSERT(probe_wait(&P, "w: monitor ok", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pa, "{exit, {shutdown, done}}");
    CU_ASSERT(probe_wait(&P, "w: DOWN {shutdown,done}", WAIT_MS));
    /* Demonitor: no DOWN. */
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{monitor, ~p}", pb);
    CU_ASSERT(probe_wait_n(&P, "w: monitor ok", 2, WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pw, "demonitor");
    CU_ASSERT(probe_wait(&P, "w: demonitor ok", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pb, "fail");
    CU_ASSERT(probe_wait(&P, "b: terminate {error,einval}", WAIT_MS));
    /* Monitoring a dead actor: DOWN noproc. */
    for (int i = 0; i < 500 && ca_is_alive(RT, pb); i++)
        usleep(1000);
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{monitor, ~p}", pb);
    CU_ASSERT(probe_wait(&P, "w: DOWN noproc", WAIT_MS));
    CU_ASSERT_EQUAL(probe_count(&P, "w: DOWN {error,einval}"), 0);
    ca_rt_sendf(RT, CA_PID_NONE, pw, "demonitor");
    CU_ASSERT(probe_wait(&P, "w: demonitor enoent", WAIT_MS));
    after();
}

/* The monitor store: references counting up, as Erlang's and ours do;
 * taken in the order they came (calls ending in the order they began)
 * while new ones come; duplicates; a burst given back. */
static void ref_n(ca_ref *r, uint32_t i)
{
    *r = (ca_ref){.node = 7, .creation = 3, .len = 3, .n = {i & 0x3ffff, i >> 18, 42}};
}

static void test_refmap(void)
{
    enum { N = 5000 };
    ca__refent *e = calloc(N + 1, sizeof *e);
    CU_ASSERT_FATAL(e != NULL);
    ca__refmap m = {0};
    ca_ref r;
    for (uint32_t i = 0; i < N; i++) {
        ref_n(&e[i].ref, i);
        CU_ASSERT_EQUAL(ca__refmap_put(&m, &e[i]), 0);
        /* FIFO in a window of 100, like 100 callers */
        if (i >= 100) {
            ref_n(&r, i - 100);
            CU_ASSERT_PTR_EQUAL(ca__refmap_take(&m, &r), &e[i - 100]);
        }
    }
    CU_ASSERT_EQUAL(m.n, 100);
    CU_ASSERT(m.cap <= 512); /* given back as calls ended, not N big */
    ref_n(&r, 0);
    CU_ASSERT_PTR_NULL(ca__refmap_take(&m, &r));
    CU_ASSERT_PTR_NULL(ca__refmap_find(&m, &r));
    /* same numbers, another node or creation or length: not the same */
    ref_n(&r, N - 1);
    r.node = 8;
    CU_ASSERT_PTR_NULL(ca__refmap_find(&m, &r));
    ref_n(&r, N - 1);
    r.creation = 4;
    CU_ASSERT_PTR_NULL(ca__refmap_find(&m, &r));
    ref_n(&r, N - 1);
    r.len = 2;
    CU_ASSERT_PTR_NULL(ca__refmap_find(&m, &r));
    ref_n(&r, N - 1);
    CU_ASSERT_PTR_EQUAL(ca__refmap_find(&m, &r), &e[N - 1]);
    /* a duplicate: each take removes one */
    e[N].ref = e[N - 1].ref;
    CU_ASSERT_EQUAL(ca__refmap_put(&m, &e[N]), 0);
    ca__refent *t1 = ca__refmap_take(&m, &r), *t2 = ca__refmap_take(&m, &r);
    CU_ASSERT(t1 && t2 && t1 != t2);
    CU_ASSERT_PTR_NULL(ca__refmap_take(&m, &r));
    /* iteration sees each of the rest once */
    uint32_t it = 0, seen = 0;
    ca__refent *x;
    while ((x = ca__refmap_next(&m, &it))) {
        long i = x - e;
        CU_ASSERT(i >= N - 100 && i < N - 1);
        seen++;
    }
    CU_ASSERT_EQUAL(seen, 99);
    /* taken in the reverse order, every removal keeps the others found */
    for (uint32_t i = N - 2; i >= N - 100; i--) {
        ref_n(&r, i);
        CU_ASSERT_PTR_EQUAL(ca__refmap_take(&m, &r), &e[i]);
        if (i % 10 == 0) {
            ref_n(&r, N - 100);
            CU_ASSERT_PTR_EQUAL(ca__refmap_find(&m, &r), i == N - 100 ? NULL : &e[N - 100]);
        }
    }
    CU_ASSERT_EQUAL(m.n, 0);
    CU_ASSERT_EQUAL(m.cap, 0);
    CU_ASSERT_PTR_NULL(m.slots);
    ca__refmap_clear(&m);
    free(e);
}

/* One actor monitors another many times, drops every other monitor, and
 * gets a DOWN for each one left, not for the others. */
typedef struct many {
    ca_pid target;
    ca_ref refs[1000];
    int downs, unknown;
} many;

static int many_handle(ca_actor *self, void *state, ca_msg *m)
{
    many *w = state;
    ca_ref r;
    if (ca_match(m, "monitor") == 0) {
        int fails = 0;
        for (int i = 0; i < 1000; i++)
            fails += ca_monitor(self, w->target, &w->refs[i]) != 0;
        for (int i = 0; i < 1000; i += 2)
            fails += ca_demonitor(self, &w->refs[i]) != 0;
        fails += ca_demonitor(self, &w->refs[0]) != CA_ENOENT;
        probe_say(&P, "many: monitored, %d failed", fails);
    } else if (ca_match(m, "{'DOWN', ~r, process, _, _}", &r) == 0) {
        int i = 0;
        while (i < 1000 && !ca_ref_eq(&w->refs[i], &r))
            i++;
        w->unknown += i == 1000 || i % 2 == 0;
        if (++w->downs == 500)
            probe_say(&P, "many: 500 DOWN, %d unexpected", w->unknown);
        else if (w->downs > 500)
            probe_say(&P, "many: DOWN %d", w->downs);
    }
    return 0;
}

static const ca_behaviour MANY = {"many", NULL, many_handle, NULL};

static void test_many_monitors(void)
{
    before();
    tactor a = {.tag = "a"};
    many w = {.target = spawn_t(&a, 0)};
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    ca_pid pw;
    CU_ASSERT_FATAL(ca_spawn(RT, &MANY, &w, &o, &pw) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, pw, "monitor");
    CU_ASSERT(probe_wait(&P, "many: monitored, 0 failed", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, w.target, "{exit, done}");
    CU_ASSERT(probe_wait(&P, "many: 500 DOWN, 0 unexpected", WAIT_MS));
    usleep(20000);
    CU_ASSERT_EQUAL(probe_count(&P, "many: DOWN"), 0);
    after();
}

/* Monitors by name: the DOWN names {Name, Node}; nothing registered:
 * noproc at once; demonitored: nothing; bad names refused. */
static void test_monitor_by_name(void)
{
    before();
    tactor w = {.tag = "w"}, a = {.tag = "a"}, b = {.tag = "b"};
    ca_pid pw = spawn_t(&w, 0);
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = "target_a";
    ca_pid pa, pb;
    CU_ASSERT_FATAL(ca_spawn(RT, &T, &a, &o, &pa) == 0);
    o.name = "target_b";
    CU_ASSERT_FATAL(ca_spawn(RT, &T, &b, &o, &pb) == 0);
    const char *self_node = ca_node_name(pw.node);
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{monitor_name, target_a, here}");
    CU_ASSERT(probe_wait(&P, "w: monitor_name ok", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pa, "{exit, {shutdown, a}}");
    char want[256];
    snprintf(want, sizeof want, "w: DOWN of target_a at %s: {shutdown,a}", self_node);
    CU_ASSERT(probe_wait(&P, want, WAIT_MS));
    /* nothing under the name: noproc at once */
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{monitor_name, nobody, here}");
    snprintf(want, sizeof want, "w: DOWN of nobody at %s: noproc", self_node);
    CU_ASSERT(probe_wait(&P, want, WAIT_MS));
    /* this node by its name, then demonitored: no DOWN when b goes */
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{monitor_name, target_b, ~a}", self_node);
    CU_ASSERT(probe_wait_n(&P, "w: monitor_name ok", 3, WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pw, "demonitor");
    CU_ASSERT(probe_wait(&P, "w: demonitor ok", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pb, "{exit, {shutdown, b}}");
    CU_ASSERT(probe_wait(&P, "b: terminate {shutdown,b}", WAIT_MS));
    usleep(20000);
    snprintf(want, sizeof want, "w: DOWN of target_b at %s: {shutdown,b}", self_node);
    CU_ASSERT_EQUAL(probe_count(&P, want), 0);
    /* bad names; another node without distribution */
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{monitor_name, '', here}");
    CU_ASSERT(probe_wait(&P, "w: monitor_name ebadname", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{monitor_name, target_a, 'other@host'}");
    CU_ASSERT(probe_wait(&P, "w: monitor_name enotconn", WAIT_MS));
    CU_ASSERT_EQUAL(probe_count(&P, "w: monitor_name ok"), 3);
    CU_ASSERT_EQUAL(ca_monitor_name(NULL, "x", NULL, NULL), CA_EINVAL);
    after();
}

static void test_init_failure(void)
{
    before();
    tactor w = {.tag = "w"}, a = {.tag = "a", .init_rc = CA_EINVAL};
    ca_pid pw = spawn_t(&w, CA_SPAWN_TRAP_EXIT);
    ca_pid pa = spawn_t(&a, 0);
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{monitor, ~p}", pa);
    CU_ASSERT(probe_wait(&P, "a: terminate {init_failed,einval}", WAIT_MS));
    /* the monitor may come after the death: then noproc */
    static const char *const down[] = {"w: DOWN {init_failed,einval}", "w: DOWN noproc"};
    for (int i = 0; i < WAIT_MS && !probe_count(&P, down[0]) && !probe_count(&P, down[1]); i++)
        usleep(1000);
    CU_ASSERT_EQUAL(probe_count(&P, down[0]) + probe_count(&P, down[1]), 1);
    after();
}

/* Spawn from a handler, linked, with the child crashing. */
static int parent_handle(ca_actor *self, void *state, ca_msg *m)
{
    tactor *child = state;
    ca_spawn_opts o;
    ca_pid pid;
    if (ca_match(m, "spawn") == 0) {
        ca_spawn_opts_init(&o);
        o.flags = CA_SPAWN_LINK;
        int rc = ca_spawn_child(self, &T, child, &o, &pid);
        probe_say(&P, "parent: spawn %s same_sched=%d", ca_errname(rc),
                  rc == 0 && ca_actor_sched(self) == ca_actor_sched(self));
        if (rc == 0)
            ca_sendf(self, pid, "fail");
        return 0;
    }
    if (ca_match(m, "{'EXIT', _, ~t}", NULL, NULL) == 0) {
        probe_say(&P, "parent: child exit");
        return 0;
    }
    return 0;
}

static void parent_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    char txt[128];
    (void)self;
    (void)state;
    term_text(reason, len, txt, sizeof txt);
    probe_say(&P, "parent: terminate %s", txt);
}

static const ca_behaviour PARENT = {"parent", NULL, parent_handle, parent_terminate};

static void test_spawn_child_link(void)
{
    before();
    tactor child = {.tag = "child"};
    ca_pid pp;
    CU_ASSERT_FATAL(ca_spawn(RT, &PARENT, &child, NULL, &pp) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, pp, "spawn");
    CU_ASSERT(probe_wait(&P, "parent: spawn ok same_sched=1", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "child: terminate {error,einval}", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "parent: terminate {error,einval}", WAIT_MS));
    after();
}

/* Timers. */
static uint64_t BUSY_T0;

static int timer_handle(ca_actor *self, void *state, ca_msg *m)
{
    ca_timer *t = state;
    long n;
    if (ca_match(m, "{after, ~i}", &n) == 0) {
        int rc = ca_sendf_after(self, (uint64_t)n, ca_self(self), t, "{tick, ~i}", n);
        probe_say(&P, "timer: set %ld %s", n, ca_errname(rc));
    } else if (ca_match(m, "cancel") == 0) {
        probe_say(&P, "timer: cancel %s", ca_errname(ca_cancel_timer(self, *t)));
    } else if (ca_match(m, "{tick, ~i}", &n) == 0) {
        probe_say(&P, "timer: tick %ld", n);
    } else if (ca_match(m, "{busy_after, ~i}", &n) == 0) {
        /* 20 ms of work first: the loop's clock, read before it, is late */
        uint64_t until = uv_hrtime() + 20 * 1000000ull;
        while (uv_hrtime() < until)
            ;
        BUSY_T0 = uv_hrtime();
        ca_sendf_after(self, (uint64_t)n, ca_self(self), t, "{busy_tick, ~i}", n);
    } else if (ca_match(m, "{busy_tick, ~i}", &n) == 0) {
        uint64_t took = uv_hrtime() - BUSY_T0;
        probe_say(&P, "timer: busy tick %s", took >= (uint64_t)n * 1000000 ? "on time" : "early");
    } else if (ca_match(m, "{forever, ~i}", &n) == 0) {
        ca_timer unused;
        ca_sendf_after(self, (uint64_t)n, ca_self(self), &unused, "never");
    }
    return 0;
}

static const ca_behaviour TIMER = {"timer", NULL, timer_handle, NULL};

static void test_timers(void)
{
    before();
    ca_timer t = 0;
    ca_pid p;
    CU_ASSERT_FATAL(ca_spawn(RT, &TIMER, &t, NULL, &p) == 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ca_rt_sendf(RT, CA_PID_NONE, p, "{after, 50}");
    CU_ASSERT(probe_wait(&P, "timer: tick 50", WAIT_MS));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    CU_ASSERT(ms >= 50);
    /* Never early, even when set late in a busy iteration of the loop. */
    ca_rt_sendf(RT, CA_PID_NONE, p, "{busy_after, 30}");
    CU_ASSERT(probe_wait(&P, "timer: busy tick on time", WAIT_MS));
    CU_ASSERT_EQUAL(probe_count(&P, "timer: busy tick early"), 0);
    /* Cancel after firing: enoent. */
    ca_rt_sendf(RT, CA_PID_NONE, p, "cancel");
    CU_ASSERT(probe_wait(&P, "timer: cancel enoent", WAIT_MS));
    /* Cancel before firing: ok, and no tick. */
    ca_rt_sendf(RT, CA_PID_NONE, p, "{after, 200}");
    ca_rt_sendf(RT, CA_PID_NONE, p, "cancel");
    CU_ASSERT(probe_wait(&P, "timer: cancel ok", WAIT_MS));
    usleep(300000);
    CU_ASSERT_EQUAL(probe_count(&P, "timer: tick 200"), 0);
    /* A pending timer of an exiting actor is cancelled (no leak, no send). */
    ca_rt_sendf(RT, CA_PID_NONE, p, "{forever, 100000}");
    CU_ASSERT_EQUAL(ca_kill(RT, CA_PID_NONE, p, "kill"), 0);
    after();
}

/* Overflow policies: a gate holds the actor in its first message while the
 * test fills the mailbox. */
static void overflow_case(ca_overflow policy, int *accepted, int *refused, ca_pid *pid,
                          pthread_mutex_t *gate, tactor *t)
{
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.mailbox_cap = 8;
    o.overflow = policy;
    pthread_mutex_lock(gate);
    t->gate = gate;
    CU_ASSERT_FATAL(ca_spawn(RT, &T, t, &o, pid) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, *pid, "{first}");
    /* Wait until the actor is inside the first message (count stays 1). */
    char gated[64];
    snprintf(gated, sizeof gated, "%s: gated", t->tag);
    CU_ASSERT(probe_wait(&P, gated, WAIT_MS));
    *accepted = *refused = 0;
    for (long i = 0; i < 20; i++) {
        int rc = ca_rt_sendf(RT, CA_PID_NONE, *pid, "{n, ~i}", i);
        if (rc == 0)
            (*accepted)++;
        else if (rc == CA_EAGAIN)
            (*refused)++;
    }
}

static void test_overflow_refuse(void)
{
    before();
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    tactor t = {.tag = "r"};
    int acc, ref;
    ca_pid pid;
    overflow_case(CA_OVERFLOW_REFUSE, &acc, &ref, &pid, &gate, &t);
    CU_ASSERT_EQUAL(acc, 7); /* cap 8, one taken by the message in hand */
    CU_ASSERT_EQUAL(ref, 13);
    ca_actor_stats st;
    CU_ASSERT_EQUAL(ca_actor_stats_get(RT, pid, &st), 0);
    CU_ASSERT_EQUAL(st.overflows, 13);
    CU_ASSERT_EQUAL(st.queue_len, 8);
    pthread_mutex_unlock(&gate);
    CU_ASSERT(probe_wait(&P, "r: got {n,6}", WAIT_MS));
    CU_ASSERT_EQUAL(probe_count(&P, "r: got {n,7}"), 0);
    after();
}

static void test_overflow_drop_oldest(void)
{
    before();
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    tactor t = {.tag = "d"};
    int acc, ref;
    ca_pid pid;
    overflow_case(CA_OVERFLOW_DROP_OLDEST, &acc, &ref, &pid, &gate, &t);
    CU_ASSERT_EQUAL(acc, 20);
    CU_ASSERT_EQUAL(ref, 0);
    pthread_mutex_unlock(&gate);
    CU_ASSERT(probe_wait(&P, "d: got {n,19}", WAIT_MS));
    /* The newest cap messages survive: each popped message is dropped
     * while cap or more wait behind it. */
    CU_ASSERT_EQUAL(probe_count(&P, "d: got {n,11}"), 0);
    CU_ASSERT_EQUAL(probe_count(&P, "d: got {n,12}"), 1);
    ca_actor_stats st;
    CU_ASSERT_EQUAL(ca_actor_stats_get(RT, pid, &st), 0);
    CU_ASSERT_EQUAL(st.overflows, 12);
    ca_rt_stats rs;
    ca_rt_stats_get(RT, &rs);
    CU_ASSERT_EQUAL(rs.overflows, 12);
    after();
}

static void test_overflow_exit(void)
{
    before();
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    tactor w = {.tag = "w"}, t = {.tag = "x"};
    ca_pid pw = spawn_t(&w, 0);
    int acc, ref;
    ca_pid pid;
    overflow_case(CA_OVERFLOW_EXIT, &acc, &ref, &pid, &gate, &t);
    CU_ASSERT_EQUAL(acc, 7);
    CU_ASSERT_EQUAL(ref, 13);
    ca_rt_sendf(RT, CA_PID_NONE, pw, "{monitor, ~p}", pid);
    CU_ASSERT(probe_wait(&P, "w: monitor ok", WAIT_MS));
    pthread_mutex_unlock(&gate);
    CU_ASSERT(probe_wait(&P, "x: terminate mailbox_overflow", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "w: DOWN mailbox_overflow", WAIT_MS));
    after();
}

/* Background work. */
static void *square(void *arg)
{
    long *v = malloc(sizeof *v);
    *v = (long)(intptr_t)arg * (long)(intptr_t)arg;
    return v;
}

static int work_handle(ca_actor *self, void *state, ca_msg *m)
{
    (void)state;
    long n;
    if (ca_match(m, "{square, ~i}", &n) == 0) {
        probe_say(&P, "work: queued %s",
                  ca_errname(ca_queue_work(self, 77, square, (void *)(intptr_t)n, free)));
        return 0;
    }
    uint64_t tag;
    long *v = ca_msg_ptr(m, &tag);
    if (v)
        probe_say(&P, "work: result tag=%llu %ld", (unsigned long long)tag, *v);
    return 0;
}

static const ca_behaviour WORK = {"work", NULL, work_handle, NULL};

static void test_queue_work(void)
{
    before();
    ca_pid p;
    CU_ASSERT_FATAL(ca_spawn(RT, &WORK, NULL, NULL, &p) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, p, "{square, 12}");
    CU_ASSERT(probe_wait(&P, "work: queued ok", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "work: result tag=77 144", WAIT_MS));
    after();
}

/* Pointer messages: delivered without copy; the destructor runs when the
 * receiver does not take the pointer, and not when the send fails. */
static atomic_int dtor_calls;
static void count_dtor(void *p)
{
    (void)p;
    atomic_fetch_add(&dtor_calls, 1);
}

/* The destructor of the pointer message just sent ran, exactly once. */
static void dtor_ran_once(void)
{
    for (int i = 0; i < 500 && atomic_load(&dtor_calls) == 0; i++)
        usleep(1000);
    CU_ASSERT_EQUAL(atomic_load(&dtor_calls), 1);
}

static void test_ptr_messages(void)
{
    before();
    tactor a = {.tag = "a"};
    ca_pid pa = spawn_t(&a, 0);
    static long v = 99;
    atomic_store(&dtor_calls, 0);
    CU_ASSERT_EQUAL(ca_rt_send_ptr(RT, CA_PID_NONE, pa, 5, &v, count_dtor), 0);
    CU_ASSERT(probe_wait(&P, "a: ptr 5 99", WAIT_MS));
    dtor_ran_once();
    ca_pid remote = pa;
    ca_node_intern("elsewhere@host", &remote.node);
    CU_ASSERT_EQUAL(ca_rt_send_ptr(RT, CA_PID_NONE, remote, 5, &v, count_dtor), CA_ENOTSUP);
    CU_ASSERT_EQUAL(atomic_load(&dtor_calls), 1);
    after();
}

/* Keeping and forwarding: a "relay" forwards what it gets to `to`, or
 * keeps it while closed and forwards the kept ones, in order, when opened;
 * the receiver sees the original sender and the same bytes, not a copy. */
typedef struct relay {
    ca_pid to;
    int closed;
    ca_msg *kept[8];
    int nkept;
} relay;

static const void *FORWARDED_DATA; /* what the relay last forwarded */

static int relay_handle(ca_actor *self, void *state, ca_msg *m)
{
    relay *r = state;
    if (ca_match(m, "close") == 0) {
        r->closed = 1;
        return 0;
    }
    if (ca_match(m, "open") == 0) {
        for (int i = 0; i < r->nkept; i++)
            ca_forward(self, r->to, r->kept[i]);
        r->nkept = 0;
        r->closed = 0;
        return 0;
    }
    if (ca_match(m, "drop") == 0) { /* what is kept is released */
        for (int i = 0; i < r->nkept; i++)
            ca_msg_release(r->kept[i]);
        r->nkept = 0;
        return 0;
    }
    if (ca_msg_keep(self, (ca_msg *)1) != NULL) /* not the message being handled */
        probe_say(&P, "relay: kept a stranger");
    if (r->closed) {
        CU_ASSERT_FATAL(r->nkept < 8);
        r->kept[r->nkept++] = ca_msg_keep(self, m);
        probe_say(&P, "relay: kept %d", r->nkept);
        return 0;
    }
    FORWARDED_DATA = ca_msg_data(m, NULL);
    probe_say(&P, "relay: forward %s", ca_errname(ca_forward(self, r->to, m)));
    return 0;
}

static const ca_behaviour RELAY = {"relay", NULL, relay_handle, NULL};

static int sink_handle(ca_actor *self, void *state, ca_msg *m)
{
    ca_pid *sender = state;
    long n;
    uint64_t tag;
    (void)self;
    if (ca_match(m, "{n, ~i}", &n) == 0) {
        probe_say(&P, "sink: n %ld from %s", n,
                  ca_pid_eq(ca_msg_from(m), *sender) ? "sender" : "other");
        /* the relay's message is alive until here: a copy would differ */
        if (n == 1)
            probe_say(&P, "sink: %s", ca_msg_data(m, NULL) == FORWARDED_DATA ? "same" : "copied");
    } else if (ca_msg_ptr(m, &tag))
        probe_say(&P, "sink: ptr %llu", (unsigned long long)tag);
    return 0;
}

static const ca_behaviour SINK = {"sink", NULL, sink_handle, NULL};

static void test_keep_and_forward(void)
{
    before();
    ca_pid sender = {0}, sink, rl;
    tactor snd = {.tag = "snd"};
    sender = spawn_t(&snd, 0);
    CU_ASSERT_FATAL(ca_spawn(RT, &SINK, &sender, NULL, &sink) == 0);
    relay r = {.to = sink};
    CU_ASSERT_FATAL(ca_spawn(RT, &RELAY, &r, NULL, &rl) == 0);
    /* forwarded as is, from `sender` */
    ca_rt_sendf(RT, sender, rl, "{n, 1}");
    CU_ASSERT(probe_wait(&P, "relay: forward ok", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "sink: n 1 from sender", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "sink: same", WAIT_MS));
    /* kept while closed, forwarded in order when opened */
    ca_rt_sendf(RT, CA_PID_NONE, rl, "close");
    for (long i = 2; i <= 4; i++)
        ca_rt_sendf(RT, sender, rl, "{n, ~i}", i);
    CU_ASSERT(probe_wait(&P, "relay: kept 3", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, rl, "open");
    CU_ASSERT(probe_wait(&P, "sink: n 4 from sender", WAIT_MS));
    int i2 = probe_index(&P, "sink: n 2 from sender"),
        i3 = probe_index(&P, "sink: n 3 from sender"),
        i4 = probe_index(&P, "sink: n 4 from sender");
    CU_ASSERT(i2 >= 0 && i2 < i3 && i3 < i4);
    /* kept, then released (ASan: nothing leaks, nothing is freed twice) */
    ca_rt_sendf(RT, CA_PID_NONE, rl, "close");
    ca_rt_sendf(RT, sender, rl, "{n, 5}");
    CU_ASSERT(probe_wait(&P, "relay: kept 1", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, rl, "drop");
    ca_rt_sendf(RT, CA_PID_NONE, rl, "open");
    /* a pointer message changes hands; its destructor runs once, there */
    static long v = 7;
    atomic_store(&dtor_calls, 0);
    CU_ASSERT_EQUAL(ca_rt_send_ptr(RT, CA_PID_NONE, rl, 9, &v, count_dtor), 0);
    CU_ASSERT(probe_wait(&P, "sink: ptr 9", WAIT_MS));
    dtor_ran_once();
    /* to a dead pid: dropped, as a send would be */
    ca_kill(RT, CA_PID_NONE, sink, "kill");
    for (int i = 0; i < 1000 && ca_is_alive(RT, sink); i++)
        usleep(1000);
    ca_rt_sendf(RT, sender, rl, "{n, 6}");
    CU_ASSERT(probe_wait(&P, "relay: forward esrch", WAIT_MS));
    CU_ASSERT_EQUAL(probe_count(&P, "relay: kept a stranger"), 0);
    CU_ASSERT_PTR_NULL(ca_msg_keep(NULL, NULL));
    after();
}

/* A write to a broken pipe in a handler (what the node's loop does when a
 * peer vanishes mid-write) fails with EPIPE; it does not kill a process
 * that leaves SIGPIPE at its default. */
static int pipe_handle(ca_actor *self, void *state, ca_msg *m)
{
    int fd = (int)(intptr_t)state;
    (void)self;
    (void)m;
    ssize_t r = write(fd, "x", 1);
    probe_say(&P, "pipe: write %zd %s", r, r < 0 && errno == EPIPE ? "EPIPE" : "?");
    return 0;
}

static void test_sigpipe_in_handler(void)
{
    static const ca_behaviour B = {"pipe", NULL, pipe_handle, NULL};
    int sv[2];
    before();
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    close(sv[1]);
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);
    ca_pid pid;
    CU_ASSERT_FATAL(ca_spawn(RT, &B, (void *)(intptr_t)sv[0], NULL, &pid) == 0);
    CU_ASSERT_EQUAL(ca_rt_sendf(RT, CA_PID_NONE, pid, "go"), 0);
    CU_ASSERT(probe_wait(&P, "pipe: write -1 EPIPE", 5000));
    signal(SIGPIPE, old);
    after();
    close(sv[0]);
}

/* Shutdown with actors holding queued messages and pointer payloads. */
static void test_shutdown_frees_everything(void)
{
    before();
    atomic_int freed = 0;
    tactor ts[50];
    atomic_store(&dtor_calls, 0);
    static long v = 1;
    for (int i = 0; i < 50; i++) {
        ts[i] = (tactor){.tag = "s", .freed = &freed};
        ca_pid p = spawn_t(&ts[i], 0);
        for (int k = 0; k < 20; k++)
            ca_rt_sendf(RT, CA_PID_NONE, p, "{junk, ~i}", (long)k);
        ca_rt_send_ptr(RT, CA_PID_NONE, p, 1, &v, count_dtor);
    }
    ca_rt_free(RT);
    RT = NULL;
    CU_ASSERT_EQUAL(atomic_load(&freed), 50);
    CU_ASSERT_EQUAL(atomic_load(&dtor_calls), 50);
}

/* Many actors spawned and stopped; the table reuses slots with new serials. */
static void test_spawn_exit_churn(void)
{
    before();
    atomic_int freed = 0;
    enum { N = 20000 };
    tactor *ts = calloc(N, sizeof *ts);
    ca_pid *pids = calloc(N, sizeof *pids);
    for (int i = 0; i < N; i++) {
        ts[i] = (tactor){.tag = "c", .freed = &freed};
        pids[i] = spawn_t(&ts[i], 0);
        CU_ASSERT_EQUAL(ca_kill(RT, CA_PID_NONE, pids[i], "kill"), 0);
    }
    for (int i = 0; i < 5000 && atomic_load(&freed) < N; i++)
        usleep(1000);
    CU_ASSERT_EQUAL(atomic_load(&freed), N);
    for (int i = 0; i < 500; i++) {
        ca_rt_stats st;
        ca_rt_stats_get(RT, &st);
        if (st.actors_alive == 0)
            break;
        usleep(1000);
    }
    ca_rt_stats st;
    ca_rt_stats_get(RT, &st);
    CU_ASSERT_EQUAL(st.actors_alive, 0);
    CU_ASSERT_EQUAL(st.actors_spawned, N);
    /* A new actor may reuse an old slot, but never an old pid. */
    tactor fresh = {.tag = "fresh"};
    ca_pid pf = spawn_t(&fresh, 0);
    for (int i = 0; i < N; i++)
        CU_ASSERT_FALSE(ca_pid_eq(pf, pids[i]));
    CU_ASSERT_EQUAL(ca_rt_sendf(RT, CA_PID_NONE, pids[0], "x"), CA_ESRCH);
    free(ts);
    free(pids);
    after();
}

static void test_rt_wait_and_shutdown(void)
{
    before();
    CU_ASSERT_EQUAL(ca_rt_wait(RT, 20), CA_ETIMEDOUT);
    ca_rt_shutdown(RT, 7);
    CU_ASSERT_EQUAL(ca_rt_wait(RT, -1), 7);
    CU_ASSERT_EQUAL(ca_rt_threads(RT), 2);
    after();
}

static void test_errors(void)
{
    CU_ASSERT_STRING_EQUAL(ca_errname(CA_ESRCH), "esrch");
    CU_ASSERT_STRING_EQUAL(ca_strerror(CA_ESRCH), "no such actor");
    CU_ASSERT_STRING_EQUAL(ca_strerror(12345), "unknown error");
    CU_ASSERT_STRING_EQUAL(ca_errname(0), "ok");
}

static void add(void)
{
    CU_pSuite s = CU_add_suite("actor", setup, teardown);
    ADD_TEST(s, test_errors);
    ADD_TEST(s, test_spawn_bad_input);
    ADD_TEST(s, test_send_and_reply_path);
    ADD_TEST(s, test_send_to_dead);
    ADD_TEST(s, test_order_per_sender);
    ADD_TEST(s, test_message_sizes_reused);
    ADD_TEST(s, test_names);
    ADD_TEST(s, test_link_crash_kills_partner);
    ADD_TEST(s, test_link_trap_exit);
    ADD_TEST(s, test_link_normal_exit_ignored);
    ADD_TEST(s, test_link_to_dead_and_unlink);
    ADD_TEST(s, test_kill_signals);
    ADD_TEST(s, test_monitors);
    ADD_TEST(s, test_refmap);
    ADD_TEST(s, test_many_monitors);
    ADD_TEST(s, test_monitor_by_name);
    ADD_TEST(s, test_init_failure);
    ADD_TEST(s, test_spawn_child_link);
    ADD_TEST(s, test_timers);
    ADD_TEST(s, test_overflow_refuse);
    ADD_TEST(s, test_overflow_drop_oldest);
    ADD_TEST(s, test_overflow_exit);
    ADD_TEST(s, test_queue_work);
    ADD_TEST(s, test_ptr_messages);
    ADD_TEST(s, test_keep_and_forward);
    ADD_TEST(s, test_sigpipe_in_handler);
    ADD_TEST(s, test_shutdown_frees_everything);
    ADD_TEST(s, test_spawn_exit_churn);
    ADD_TEST(s, test_rt_wait_and_shutdown);
    ADD_TEST(s, test_rt_actors);
    ADD_TEST(s, test_process_info);
    ADD_TEST(s, test_rpc_cost);
    ADD_TEST(s, test_deep_exit_reason);
}

int main(void)
{
    return run_suites(add);
}
