/*
 * Supervisors: every strategy with every restart type, intensity and
 * escalation, shutdown order and timeouts, the runtime API, supervised
 * mailboxes, and many dynamic children.
 */
#include <stdatomic.h>
#include <unistd.h>

#include "cactor.h"
#include "probe.h"

#define WAIT_MS 5000

static probe P;
static ca_rt *RT;

typedef struct wcfg {
    const char *tag;
    int trap;            /* trap exits */
    int ignore_shutdown; /* trapping, and ignoring the supervisor's shutdown */
    int fail_init;       /* this many inits fail, then they succeed */
} wcfg;

static int w_init(ca_actor *self, void *arg, void **state)
{
    wcfg *c = arg;
    *state = c;
    if (c->trap || c->ignore_shutdown)
        ca_trap_exit(self, 1);
    probe_say(&P, "%s: start", c->tag);
    if (c->fail_init > 0) {
        c->fail_init--;
        return CA_EINVAL;
    }
    return 0;
}

static int w_handle(ca_actor *self, void *state, ca_msg *m)
{
    wcfg *c = state;
    const char *r;
    size_t len;
    if (ca_match(m, "crash") == 0)
        return CA_EINVAL;
    if (ca_match(m, "stop") == 0)
        return ca_exit(self, "normal");
    if (ca_match(m, "{exit, ~t}", &r, &len) == 0)
        return ca_exit(self, "~t", r, len);
    if (ca_match(m, "{'EXIT', _, ~t}", &r, &len) == 0) {
        if (c->ignore_shutdown) {
            probe_say(&P, "%s: ignoring exit", c->tag);
            return 0;
        }
        return ca_exit(self, "~t", r, len);
    }
    if (ca_match(m, "ping") == 0) {
        probe_say(&P, "%s: pong", c->tag);
        return 0;
    }
    if (ca_match(m, "call_sup") == 0) {
        /* The blocking API refuses to run on a scheduler thread. */
        ca_sup_counts cnt;
        probe_say(&P, "%s: call_sup %s", c->tag,
                  ca_errname(ca_sup_count_children(ca_actor_rt(self), ca_self(self), &cnt)));
        return 0;
    }
    return 0;
}

static void w_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    wcfg *c = state;
    char txt[128];
    (void)self;
    if (ca_term_print(reason, len, txt, sizeof txt) < 0)
        snprintf(txt, sizeof txt, "<bad>");
    probe_say(&P, "%s: stop %s", c->tag, txt);
}

static const ca_behaviour W = {"worker", w_init, w_handle, w_terminate};

static ca_child_spec child(const char *id, wcfg *c, ca_restart r)
{
    ca_child_spec s;
    memset(&s, 0, sizeof s);
    s.id = id;
    s.behaviour = &W;
    s.arg = c;
    s.name = id; /* registered under its id, to find each incarnation */
    s.restart = r;
    return s;
}

static ca_pid whereis(const char *name)
{
    ca_pid p = CA_PID_NONE;
    for (int i = 0; i < 2000; i++) {
        if (ca_whereis(RT, name, &p) == 0)
            return p;
        usleep(1000);
    }
    return p;
}

/* Wait until `name` is registered to a pid other than `old`. */
static ca_pid wait_new_pid(const char *name, ca_pid old)
{
    ca_pid p = CA_PID_NONE;
    for (int i = 0; i < 5000; i++) {
        if (ca_whereis(RT, name, &p) == 0 && !ca_pid_eq(p, old))
            return p;
        usleep(1000);
    }
    return CA_PID_NONE;
}

static void before(void)
{
    probe_reset(&P);
    ca_rt_opts o;
    ca_rt_opts_init(&o);
    o.threads = 2;
    o.log_level = CA_LOG_ERROR;
    CU_ASSERT_FATAL(ca_rt_new(&o, &RT) == 0);
}

static void after(void)
{
    ca_rt_free(RT);
    RT = NULL;
}

static ca_pid start_sup(ca_strategy st, ca_child_spec *cs, size_t n, int intensity)
{
    ca_sup_spec spec = {st, intensity, 5000, cs, n, 0};
    ca_pid sup;
    CU_ASSERT_FATAL(ca_sup_start(RT, &spec, "sup", &sup) == 0);
    return sup;
}

/* ---- one_for_one with every restart type ---- */

static void test_one_for_one_restart_types(void)
{
    before();
    wcfg p = {.tag = "perm"}, t = {.tag = "trans"}, tmp = {.tag = "temp"};
    ca_child_spec cs[] = {child("perm", &p, CA_PERMANENT), child("trans", &t, CA_TRANSIENT),
                          child("temp", &tmp, CA_TEMPORARY)};
    ca_pid sup = start_sup(CA_ONE_FOR_ONE, cs, 3, 10);
    CU_ASSERT(probe_wait(&P, "temp: start", WAIT_MS));

    /* permanent: restarted after a crash, and after a normal exit. */
    ca_pid p1 = whereis("perm");
    ca_rt_sendf(RT, CA_PID_NONE, p1, "crash");
    CU_ASSERT(probe_wait_n(&P, "perm: start", 2, WAIT_MS));
    ca_pid p2 = wait_new_pid("perm", p1);
    CU_ASSERT(!ca_pid_is_none(p2));
    ca_rt_sendf(RT, CA_PID_NONE, p2, "stop");
    CU_ASSERT(probe_wait_n(&P, "perm: start", 3, WAIT_MS));

    /* transient: a normal exit is final, a crash is restarted. */
    ca_pid t1 = whereis("trans");
    ca_rt_sendf(RT, CA_PID_NONE, t1, "crash");
    CU_ASSERT(probe_wait_n(&P, "trans: start", 2, WAIT_MS));
    ca_pid t2 = wait_new_pid("trans", t1);
    ca_rt_sendf(RT, CA_PID_NONE, t2, "{exit, {shutdown, done}}");
    CU_ASSERT(probe_wait(&P, "trans: stop {shutdown,done}", WAIT_MS));
    usleep(100000);
    CU_ASSERT_EQUAL(probe_count(&P, "trans: start"), 2);

    /* temporary: never restarted, and forgotten. */
    ca_rt_sendf(RT, CA_PID_NONE, whereis("temp"), "crash");
    CU_ASSERT(probe_wait(&P, "temp: stop {error,einval}", WAIT_MS));
    usleep(100000);
    CU_ASSERT_EQUAL(probe_count(&P, "temp: start"), 1);

    ca_child_info *ci;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(ca_sup_which_children(RT, sup, &ci, &n), 0);
    CU_ASSERT_EQUAL(n, 2);
    if (n == 2) {
        CU_ASSERT_STRING_EQUAL(ci[0].id, "perm");
        CU_ASSERT_FALSE(ca_pid_is_none(ci[0].pid));
        CU_ASSERT_STRING_EQUAL(ci[1].id, "trans");
        CU_ASSERT(ca_pid_is_none(ci[1].pid)); /* stopped normally, spec kept */
    }
    free(ci);
    ca_sup_counts c;
    CU_ASSERT_EQUAL(ca_sup_count_children(RT, sup, &c), 0);
    CU_ASSERT_EQUAL(c.specs, 2);
    CU_ASSERT_EQUAL(c.active, 1);
    CU_ASSERT_EQUAL(c.workers, 2);
    CU_ASSERT_EQUAL(c.restarts, 3);
    after();
}

/* ---- on_sched: children pinned to a scheduler, restarts too ---- */

static unsigned sched_of(const char *name)
{
    ca_actor_stats st;
    CU_ASSERT_EQUAL_FATAL(ca_actor_stats_get(RT, whereis(name), &st), 0);
    return st.sched;
}

static void test_on_sched(void)
{
    before();
    wcfg a = {.tag = "p0"}, b = {.tag = "p1"}, c = {.tag = "q1"};
    ca_child_spec cs[] = {child("p0", &a, CA_PERMANENT), child("p1", &b, CA_PERMANENT),
                          child("q1", &c, CA_PERMANENT)};
    cs[0].on_sched = 1; /* scheduler 0 */
    cs[1].on_sched = 2;
    cs[2].on_sched = 4; /* modulo the 2 threads: scheduler 1 */
    start_sup(CA_ONE_FOR_ONE, cs, 3, 10);
    CU_ASSERT(probe_wait(&P, "q1: start", WAIT_MS));
    CU_ASSERT_EQUAL(sched_of("p0"), 0);
    CU_ASSERT_EQUAL(sched_of("p1"), 1);
    CU_ASSERT_EQUAL(sched_of("q1"), 1);
    ca_pid old = whereis("p1");
    ca_rt_sendf(RT, CA_PID_NONE, old, "crash");
    CU_ASSERT(probe_wait_n(&P, "p1: start", 2, WAIT_MS));
    CU_ASSERT(!ca_pid_is_none(wait_new_pid("p1", old)));
    CU_ASSERT_EQUAL(sched_of("p1"), 1);
    after();
}

/* ---- one_for_all and rest_for_one: order of stops and starts ---- */

static void test_one_for_all(void)
{
    before();
    wcfg a = {.tag = "a"}, b = {.tag = "b"}, c = {.tag = "c"};
    ca_child_spec cs[] = {child("a", &a, CA_PERMANENT), child("b", &b, CA_PERMANENT),
                          child("c", &c, CA_PERMANENT)};
    start_sup(CA_ONE_FOR_ALL, cs, 3, 10);
    CU_ASSERT(probe_wait(&P, "c: start", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, whereis("b"), "crash");
    CU_ASSERT(probe_wait_n(&P, "c: start", 2, WAIT_MS));
    CU_ASSERT(probe_wait(&P, "b: stop {error,einval}", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "c: stop shutdown", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "a: stop shutdown", WAIT_MS));
    /* Others stopped last-started first; restarts only after every stop.
     * (Start order is the spec order, but inits run on the children's own
     * schedulers, so their lines may interleave.) */
    CU_ASSERT(probe_index(&P, "c: stop shutdown") < probe_index(&P, "a: stop shutdown"));
    CU_ASSERT(probe_wait_n(&P, "a: start", 2, WAIT_MS));
    CU_ASSERT(probe_wait_n(&P, "b: start", 2, WAIT_MS));
    int last_stop = probe_index(&P, "a: stop shutdown"), restarts = 0;
    pthread_mutex_lock(&P.lock);
    for (int i = 3; i < P.n; i++)
        if (strstr(P.lines[i], ": start")) {
            CU_ASSERT(i > last_stop);
            restarts++;
        }
    pthread_mutex_unlock(&P.lock);
    CU_ASSERT_EQUAL(restarts, 3);
    after();
}

static void test_rest_for_one(void)
{
    before();
    wcfg a = {.tag = "a"}, b = {.tag = "b"}, c = {.tag = "c"}, d = {.tag = "d"};
    ca_child_spec cs[] = {child("a", &a, CA_PERMANENT), child("b", &b, CA_PERMANENT),
                          child("c", &c, CA_PERMANENT), child("d", &d, CA_PERMANENT)};
    start_sup(CA_REST_FOR_ONE, cs, 4, 10);
    CU_ASSERT(probe_wait(&P, "d: start", WAIT_MS));
    ca_pid a1 = whereis("a");
    ca_rt_sendf(RT, CA_PID_NONE, whereis("b"), "crash");
    CU_ASSERT(probe_wait_n(&P, "d: start", 2, WAIT_MS));
    CU_ASSERT(probe_wait(&P, "d: stop shutdown", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "c: stop shutdown", WAIT_MS));
    CU_ASSERT(probe_index(&P, "d: stop shutdown") < probe_index(&P, "c: stop shutdown"));
    /* Inits run on the children's own schedulers: wait for each line. */
    CU_ASSERT(probe_wait_n(&P, "b: start", 2, WAIT_MS));
    CU_ASSERT(probe_wait_n(&P, "c: start", 2, WAIT_MS));
    CU_ASSERT_EQUAL(probe_count(&P, "a: start"), 1);
    CU_ASSERT_EQUAL(probe_count(&P, "b: start"), 2);
    CU_ASSERT_EQUAL(probe_count(&P, "c: start"), 2);
    ca_pid a2 = whereis("a");
    CU_ASSERT(ca_pid_eq(a1, a2));
    after();
}

/* ---- intensity and escalation ---- */

static void test_intensity_exceeded(void)
{
    before();
    wcfg a = {.tag = "a"}, b = {.tag = "b"};
    ca_child_spec cs[] = {child("a", &a, CA_PERMANENT), child("b", &b, CA_PERMANENT)};
    ca_sup_spec spec = {CA_ONE_FOR_ONE, 1, 5000, cs, 2, CA_SUP_SHUTDOWN_RT};
    ca_pid sup;
    CU_ASSERT_FATAL(ca_sup_start(RT, &spec, "sup", &sup) == 0);
    CU_ASSERT(probe_wait(&P, "b: start", WAIT_MS));
    ca_pid b1 = whereis("b");
    ca_rt_sendf(RT, CA_PID_NONE, b1, "crash");
    CU_ASSERT(probe_wait_n(&P, "b: start", 2, WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, wait_new_pid("b", b1), "crash");
    /* Second restart within the period: everything stops, in reverse. */
    CU_ASSERT(probe_wait(&P, "a: stop shutdown", WAIT_MS));
    CU_ASSERT_EQUAL(ca_rt_wait(RT, WAIT_MS), 1);
    for (int i = 0; i < 1000 && ca_is_alive(RT, sup); i++)
        usleep(1000);
    CU_ASSERT_FALSE(ca_is_alive(RT, sup));
    CU_ASSERT_EQUAL(probe_count(&P, "b: start"), 2);
    after();
}

/* Crash b `n` times, waiting for each restart; its last pid. */
static ca_pid crash_b(ca_pid b, int n)
{
    for (int i = 0; i < n && !ca_pid_is_none(b); i++) {
        ca_rt_sendf(RT, CA_PID_NONE, b, "crash");
        b = wait_new_pid("b", b);
    }
    return b;
}

/* Restarts are counted over a sliding period, and a large intensity
 * costs nothing up front (INT32_MAX was a 16 GiB calloc, which fails
 * under ASan or without overcommit: the supervisor could not start). */
static void test_intensity_window(void)
{
    before();
    wcfg b = {.tag = "b"};
    ca_child_spec cs[] = {child("b", &b, CA_PERMANENT)};
    ca_sup_spec big = {CA_ONE_FOR_ONE, INT32_MAX, 5000, cs, 1, 0};
    ca_pid sup;
    CU_ASSERT_FATAL(ca_sup_start(RT, &big, "big", &sup) == 0);
    ca_pid b1 = crash_b(whereis("b"), 40);
    CU_ASSERT_FALSE(ca_pid_is_none(b1));
    CU_ASSERT(ca_is_alive(RT, sup));
    CU_ASSERT_EQUAL(ca_sup_terminate_child(RT, sup, "b", CA_PID_NONE), 0);
    CU_ASSERT_EQUAL(ca_sup_delete_child(RT, sup, "b"), 0);

    /* intensity 3 in 1 s: 3 restarts, a pause, 3 more (the first have
     * left the window), then a 4th within it is one too many */
    ca_sup_spec small = {CA_ONE_FOR_ONE, 3, 1000, cs, 1, 0};
    CU_ASSERT_FATAL(ca_sup_start(RT, &small, "small", &sup) == 0);
    b1 = crash_b(wait_new_pid("b", b1), 3);
    CU_ASSERT(ca_is_alive(RT, sup));
    usleep(1200 * 1000);
    b1 = crash_b(b1, 3);
    CU_ASSERT(ca_is_alive(RT, sup));
    ca_rt_sendf(RT, CA_PID_NONE, b1, "crash");
    for (int i = 0; i < 1000 && ca_is_alive(RT, sup); i++)
        usleep(1000);
    CU_ASSERT_FALSE(ca_is_alive(RT, sup));
    after();
}

static void test_escalation_two_levels(void)
{
    before();
    wcfg w = {.tag = "w"};
    ca_child_spec leaf[] = {child("w", &w, CA_PERMANENT)};
    ca_sup_spec mid = {CA_ONE_FOR_ONE, 0, 5000, leaf, 1, 0};
    ca_child_spec mids[1];
    memset(mids, 0, sizeof mids);
    mids[0].id = "mid";
    mids[0].behaviour = &ca_supervisor;
    mids[0].arg = &mid;
    mids[0].name = "mid";
    mids[0].type = CA_SUPERVISOR;
    ca_sup_spec root = {CA_ONE_FOR_ONE, 1, 5000, mids, 1, CA_SUP_SHUTDOWN_RT};
    ca_pid rootpid;
    CU_ASSERT_FATAL(ca_sup_start(RT, &root, "root", &rootpid) == 0);
    CU_ASSERT(probe_wait(&P, "w: start", WAIT_MS));
    /* Leaf crash: mid (intensity 0) gives up, root restarts mid. */
    ca_pid mid1 = whereis("mid");
    ca_rt_sendf(RT, CA_PID_NONE, whereis("w"), "crash");
    CU_ASSERT(probe_wait_n(&P, "w: start", 2, WAIT_MS));
    ca_pid mid2 = wait_new_pid("mid", mid1);
    CU_ASSERT_FALSE(ca_pid_is_none(mid2));
    ca_sup_counts c;
    CU_ASSERT_EQUAL(ca_sup_count_children(RT, rootpid, &c), 0);
    CU_ASSERT_EQUAL(c.restarts, 1);
    CU_ASSERT_EQUAL(c.supervisors, 1);
    /* Again: root exceeds its own intensity and stops the runtime. */
    ca_pid w2 = whereis("w");
    ca_rt_sendf(RT, CA_PID_NONE, w2, "crash");
    CU_ASSERT_EQUAL(ca_rt_wait(RT, WAIT_MS), 1);
    for (int i = 0; i < 1000 && ca_is_alive(RT, rootpid); i++)
        usleep(1000);
    CU_ASSERT_FALSE(ca_is_alive(RT, rootpid));
    after();
}

/* ---- shutdown protocol ---- */

static void test_shutdown_timeouts(void)
{
    before();
    wcfg coop = {.tag = "coop", .trap = 1}, stub = {.tag = "stub", .ignore_shutdown = 1},
         brute = {.tag = "brute"};
    ca_child_spec cs[] = {child("coop", &coop, CA_PERMANENT), child("stub", &stub, CA_PERMANENT),
                          child("brute", &brute, CA_PERMANENT)};
    cs[1].shutdown_ms = 100;
    cs[2].shutdown_ms = CA_SHUTDOWN_BRUTAL;
    ca_pid sup = start_sup(CA_ONE_FOR_ONE, cs, 3, 10);
    CU_ASSERT(probe_wait(&P, "brute: start", WAIT_MS));
    /* Cooperative stop runs terminate with shutdown. */
    CU_ASSERT_EQUAL(ca_sup_terminate_child(RT, sup, "coop", CA_PID_NONE), 0);
    CU_ASSERT(probe_wait(&P, "coop: stop shutdown", WAIT_MS));
    /* Ignoring the shutdown: killed after the timeout. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CU_ASSERT_EQUAL(ca_sup_terminate_child(RT, sup, "stub", CA_PID_NONE), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    CU_ASSERT(ms >= 95);
    CU_ASSERT(probe_wait(&P, "stub: ignoring exit", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "stub: stop killed", WAIT_MS));
    /* Brutal kill: killed at once. */
    CU_ASSERT_EQUAL(ca_sup_terminate_child(RT, sup, "brute", CA_PID_NONE), 0);
    CU_ASSERT(probe_wait(&P, "brute: stop killed", WAIT_MS));
    /* Stopped children are not restarted; restart_child brings one back. */
    usleep(50000);
    CU_ASSERT_EQUAL(probe_count(&P, "coop: start"), 1);
    ca_pid np;
    CU_ASSERT_EQUAL(ca_sup_restart_child(RT, sup, "coop", &np), 0);
    CU_ASSERT(probe_wait_n(&P, "coop: start", 2, WAIT_MS));
    CU_ASSERT_EQUAL(ca_sup_restart_child(RT, sup, "coop", &np), CA_EBUSY);
    CU_ASSERT_EQUAL(ca_sup_delete_child(RT, sup, "coop"), CA_EBUSY);
    CU_ASSERT_EQUAL(ca_sup_delete_child(RT, sup, "brute"), 0);
    CU_ASSERT_EQUAL(ca_sup_restart_child(RT, sup, "brute", &np), CA_ENOENT);
    CU_ASSERT_EQUAL(ca_sup_terminate_child(RT, sup, "nobody", CA_PID_NONE), CA_ENOENT);
    after();
}

static void test_api(void)
{
    before();
    wcfg a = {.tag = "a"}, b = {.tag = "b"}, bad = {.tag = "bad", .fail_init = 2};
    ca_child_spec cs[] = {child("a", &a, CA_PERMANENT)};
    ca_pid sup = start_sup(CA_ONE_FOR_ONE, cs, 1, 10);
    ca_child_spec cb = child("b", &b, CA_PERMANENT);
    ca_pid pb;
    CU_ASSERT_EQUAL(ca_sup_start_child(RT, sup, &cb, NULL, &pb), 0);
    CU_ASSERT(probe_wait(&P, "b: start", WAIT_MS));
    CU_ASSERT_EQUAL(ca_sup_start_child(RT, sup, &cb, NULL, &pb), CA_EEXIST);
    CU_ASSERT_EQUAL(ca_sup_start_child(RT, sup, NULL, NULL, &pb), CA_EINVAL);
    ca_child_info *ci;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(ca_sup_which_children(RT, sup, &ci, &n), 0);
    CU_ASSERT_EQUAL(n, 2);
    if (n == 2) {
        CU_ASSERT_STRING_EQUAL(ci[1].id, "b");
        CU_ASSERT(ca_pid_eq(ci[1].pid, pb));
    }
    free(ci);
    /* A child whose init fails counts as a crash and is restarted: twice
     * here, then it runs. (Failing for ever, it would exceed the
     * intensity, and the supervisor would stop with a and b.) */
    ca_child_spec cbad = child("bad", &bad, CA_TRANSIENT);
    CU_ASSERT_EQUAL(ca_sup_start_child(RT, sup, &cbad, NULL, &pb), 0);
    CU_ASSERT(probe_wait_n(&P, "bad: start", 3, WAIT_MS));
    ca_sup_counts cnt = {0};
    CU_ASSERT_EQUAL(ca_sup_count_children(RT, sup, &cnt), 0);
    CU_ASSERT_EQUAL(cnt.active, 3);
    CU_ASSERT_EQUAL(cnt.restarts, 2);
    /* The blocking API refuses to run inside an actor. */
    ca_rt_sendf(RT, CA_PID_NONE, whereis("a"), "call_sup");
    CU_ASSERT(probe_wait(&P, "a: call_sup eperm", WAIT_MS));
    /* Bad specs are refused up front. */
    ca_child_spec dup[] = {child("x", &a, CA_PERMANENT), child("x", &b, CA_PERMANENT)};
    ca_sup_spec s1 = {CA_ONE_FOR_ONE, 1, 5000, dup, 2, 0};
    CU_ASSERT_EQUAL(ca_sup_start(RT, &s1, NULL, NULL), CA_EINVAL);
    ca_sup_spec s2 = {CA_SIMPLE_ONE_FOR_ONE, 1, 5000, dup, 2, 0};
    CU_ASSERT_EQUAL(ca_sup_start(RT, &s2, NULL, NULL), CA_EINVAL);
    CU_ASSERT_EQUAL(ca_sup_start(RT, NULL, NULL, NULL), CA_EINVAL);
    /* A dead supervisor answers nothing: the call fails, never hangs. */
    ca_kill(RT, CA_PID_NONE, sup, "kill");
    for (int i = 0; i < 1000 && ca_is_alive(RT, sup); i++)
        usleep(1000);
    CU_ASSERT_EQUAL(ca_sup_count_children(RT, sup, &(ca_sup_counts){0}), CA_ESRCH);
    /* Killed, it could not stop its children in order: they are killed. */
    CU_ASSERT(probe_wait(&P, "a: stop killed", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "bad: stop killed", WAIT_MS));
    after();
}

/* ---- the asynchronous calls, from an actor ---- */

static wcfg XCFG = {.tag = "x"};
static ca_ref BOSS_REF; /* the last request's reference */
static ca_pid BOSS_PID; /* the last {ok, Pid} */

static int boss_handle(ca_actor *self, void *state, ca_msg *m)
{
    char op[CA_MAXATOM], id[CA_MAXATOM], err[CA_MAXATOM];
    ca_pid sup, p;
    ca_ref ref;
    const char *t;
    size_t tl;
    (void)state;
    if (ca_match(m, "{~a, ~p, ~a}", op, &sup, id) == 0) {
        /* the spec and id live on this stack only: the request copies them */
        ca_child_spec cs = child(id, &XCFG, CA_PERMANENT);
        int rc = !strcmp(op, "start") ? ca_sup_start_child_async(self, sup, &cs, NULL, &ref)
                 : !strcmp(op, "dyn") ? ca_sup_start_child_async(self, sup, NULL, &XCFG, &ref)
                 : !strcmp(op, "terminate")
                     ? ca_sup_terminate_child_async(self, sup, id, CA_PID_NONE, &ref)
                 : !strcmp(op, "restart") ? ca_sup_restart_child_async(self, sup, id, &ref)
                 : !strcmp(op, "which")   ? ca_sup_which_children_async(self, sup, &ref)
                 : !strcmp(op, "count")   ? ca_sup_count_children_async(self, sup, &ref)
                                          : ca_sup_delete_child_async(self, sup, id, &ref);
        memset(&cs, 0, sizeof cs);
        memset(id, 'z', 8);
        if (rc == 0)
            BOSS_REF = ref;
        probe_say(&P, "boss: asked %s", ca_errname(rc));
    } else if (ca_match(m, "{ca_sup, ~r, {ok, ~p}}", &ref, &p) == 0) {
        BOSS_PID = p;
        probe_say(&P, "boss: {ok, Pid} %s", ca_ref_eq(&ref, &BOSS_REF) ? "ref" : "other ref");
    } else if (ca_match(m, "{ca_sup, ~r, {ok, ~t}}", &ref, &t, &tl) == 0) {
        char txt[256];
        ca_term_print(t, tl, txt, sizeof txt);
        probe_say(&P, "boss: data %s %s", txt, ca_ref_eq(&ref, &BOSS_REF) ? "ref" : "other ref");
    } else if (ca_match(m, "{ca_sup, ~r, ok}", &ref) == 0) {
        probe_say(&P, "boss: ok %s", ca_ref_eq(&ref, &BOSS_REF) ? "ref" : "other ref");
    } else if (ca_match(m, "{ca_sup, ~r, {error, ~a}}", &ref, err) == 0) {
        probe_say(&P, "boss: error %s %s", err, ca_ref_eq(&ref, &BOSS_REF) ? "ref" : "other ref");
    }
    return 0;
}

static const ca_behaviour BOSS = {"boss", NULL, boss_handle, NULL};

static void boss(ca_pid b, const char *op, ca_pid sup, const char *id, const char *answer)
{
    probe_reset(&P);
    ca_rt_sendf(RT, CA_PID_NONE, b, "{~a, ~p, ~a}", op, sup, id);
    CU_ASSERT(probe_wait(&P, answer, WAIT_MS));
}

static void test_async_calls(void)
{
    before();
    wcfg a = {.tag = "a"};
    ca_child_spec cs[] = {child("a", &a, CA_PERMANENT)};
    ca_pid sup = start_sup(CA_ONE_FOR_ONE, cs, 1, 10), b;
    CU_ASSERT_FATAL(ca_spawn(RT, &BOSS, NULL, NULL, &b) == 0);
    boss(b, "start", sup, "x", "boss: {ok, Pid} ref");
    CU_ASSERT(ca_pid_eq(whereis("x"), BOSS_PID));
    CU_ASSERT(probe_wait(&P, "x: start", WAIT_MS));
    ca_child_info *ci;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(ca_sup_which_children(RT, sup, &ci, &n), 0);
    CU_ASSERT(n == 2 && strcmp(ci[1].id, "x") == 0 && ca_pid_eq(ci[1].pid, BOSS_PID));
    free(ci);
    boss(b, "start", sup, "x", "boss: error eexist ref");
    boss(b, "terminate", sup, "x", "boss: ok ref");
    CU_ASSERT(probe_wait(&P, "x: stop shutdown", WAIT_MS));
    boss(b, "restart", sup, "x", "boss: {ok, Pid} ref");
    CU_ASSERT(probe_wait(&P, "x: start", WAIT_MS));
    boss(b, "delete", sup, "x", "boss: error ebusy ref");
    boss(b, "terminate", sup, "x", "boss: ok ref");
    boss(b, "delete", sup, "x", "boss: ok ref");
    boss(b, "delete", sup, "x", "boss: error enoent ref");
    /* which and count: a's pid varies, so a's entry is checked by parts */
    boss(b, "count", sup, "-",
         "boss: data #{active => 1,restarts => 0,specs => 1,supervisors => 0,workers => 1} ref");
    probe_reset(&P);
    ca_rt_sendf(RT, CA_PID_NONE, b, "{which, ~p, '-'}", sup);
    CU_ASSERT(probe_wait(&P, "boss: asked ok", WAIT_MS));
    for (int i = 0, n = 0; i < 5000 && n < 2; i++) { /* the answer's line */
        pthread_mutex_lock(&P.lock);
        n = P.n;
        pthread_mutex_unlock(&P.lock);
        usleep(1000);
    }
    pthread_mutex_lock(&P.lock);
    CU_ASSERT(P.n == 2 && strncmp(P.lines[1], "boss: data [{a,#Pid<", 20) == 0 &&
              strstr(P.lines[1], ">,worker,permanent}] ref") != NULL);
    pthread_mutex_unlock(&P.lock);
    boss(b, "dyn", sup, "x", "boss: error einval ref"); /* no template here */
    /* a dead supervisor: refused at once */
    ca_kill(RT, CA_PID_NONE, sup, "kill");
    for (int i = 0; i < 1000 && ca_is_alive(RT, sup); i++)
        usleep(1000);
    boss(b, "start", sup, "y", "boss: asked esrch");
    /* simple_one_for_one: started with the template and this arg */
    ca_child_spec tmpl = child("dyn", &XCFG, CA_TEMPORARY);
    tmpl.name = NULL;
    ca_sup_spec s2 = {CA_SIMPLE_ONE_FOR_ONE, 1, 5000, &tmpl, 1, 0};
    ca_pid sup2;
    CU_ASSERT_FATAL(ca_sup_start(RT, &s2, NULL, &sup2) == 0);
    boss(b, "which", sup2, "-", "boss: data [] ref"); /* no children yet */
    boss(b, "dyn", sup2, "ignored", "boss: {ok, Pid} ref");
    CU_ASSERT(probe_wait(&P, "x: start", WAIT_MS));
    CU_ASSERT(ca_is_alive(RT, BOSS_PID));
    after();
}

/* ---- supervised mailboxes ---- */

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;

static int slow_handle(ca_actor *self, void *state, ca_msg *m)
{
    (void)self;
    (void)state;
    if (ca_match(m, "block") == 0) {
        pthread_mutex_lock(&gate); /* test only: hold the actor */
        pthread_mutex_unlock(&gate);
    }
    return 0;
}

static int slow_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    (void)state;
    probe_say(&P, "slow: start");
    return 0;
}

static const ca_behaviour SLOW = {"slow", slow_init, slow_handle, NULL};

static void test_mailbox_overflow_restart(void)
{
    before();
    ca_child_spec cs[1];
    memset(cs, 0, sizeof cs);
    cs[0].id = "slow";
    cs[0].behaviour = &SLOW;
    cs[0].name = "slow";
    cs[0].mailbox_cap = 4;
    cs[0].overflow = CA_OVERFLOW_EXIT;
    ca_pid sup = start_sup(CA_ONE_FOR_ONE, cs, 1, 10);
    CU_ASSERT(probe_wait(&P, "slow: start", WAIT_MS));
    ca_pid s1 = whereis("slow");
    pthread_mutex_lock(&gate);
    ca_rt_sendf(RT, CA_PID_NONE, s1, "block");
    usleep(50000);
    int refused = 0;
    for (int i = 0; i < 10; i++)
        refused += ca_rt_sendf(RT, CA_PID_NONE, s1, "fill") == CA_EAGAIN;
    pthread_mutex_unlock(&gate);
    CU_ASSERT_EQUAL(refused, 7);
    CU_ASSERT(probe_wait_n(&P, "slow: start", 2, WAIT_MS));
    ca_pid s2 = wait_new_pid("slow", s1);
    CU_ASSERT_FALSE(ca_pid_is_none(s2));
    ca_sup_counts c;
    CU_ASSERT_EQUAL(ca_sup_count_children(RT, sup, &c), 0);
    CU_ASSERT_EQUAL(c.restarts, 1);
    after();
}

/* ---- simple_one_for_one ---- */

static atomic_int dyn_alive;

static int dyn_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    (void)state;
    atomic_fetch_add(&dyn_alive, 1);
    return 0;
}

static int dyn_handle(ca_actor *self, void *state, ca_msg *m)
{
    (void)self;
    (void)state;
    return ca_match(m, "crash") == 0 ? CA_EINVAL : 0;
}

static void dyn_terminate(ca_actor *self, void *state, const char *r, size_t len)
{
    (void)self;
    (void)state;
    (void)r;
    (void)len;
    atomic_fetch_sub(&dyn_alive, 1);
}

static const ca_behaviour DYN = {"dyn", dyn_init, dyn_handle, dyn_terminate};

static void test_simple_one_for_one_many(void)
{
    before();
    enum { N = 10000 };
    atomic_store(&dyn_alive, 0);
    ca_child_spec tmpl;
    memset(&tmpl, 0, sizeof tmpl);
    tmpl.id = "dyn";
    tmpl.behaviour = &DYN;
    tmpl.restart = CA_TRANSIENT;
    tmpl.shutdown_ms = 1000;
    ca_pid sup = start_sup(CA_SIMPLE_ONE_FOR_ONE, &tmpl, 1, 100);
    ca_pid *pids = calloc(N, sizeof *pids);
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += ca_sup_start_child(RT, sup, NULL, (void *)(intptr_t)i, &pids[i]) == 0;
    CU_ASSERT_EQUAL(ok, N);
    for (int i = 0; i < 5000 && atomic_load(&dyn_alive) < N; i++)
        usleep(1000);
    CU_ASSERT_EQUAL(atomic_load(&dyn_alive), N);
    ca_sup_counts c;
    CU_ASSERT_EQUAL(ca_sup_count_children(RT, sup, &c), 0);
    CU_ASSERT_EQUAL(c.active, N);
    CU_ASSERT_EQUAL(c.specs, 1);
    /* Terminate a few by pid; a crash is restarted (transient). */
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(ca_sup_terminate_child(RT, sup, NULL, pids[i]), 0);
    CU_ASSERT_EQUAL(ca_sup_terminate_child(RT, sup, NULL, pids[0]), CA_ENOENT);
    CU_ASSERT_EQUAL(ca_sup_terminate_child(RT, sup, "dyn", pids[1]), CA_ENOENT);
    CU_ASSERT_EQUAL(ca_sup_restart_child(RT, sup, "dyn", NULL), CA_ENOTSUP);
    ca_rt_sendf(RT, CA_PID_NONE, pids[200], "crash");
    for (int i = 0; i < 2000; i++) {
        CU_ASSERT_EQUAL(ca_sup_count_children(RT, sup, &c), 0);
        if (c.restarts == 1 && c.active == N - 100)
            break;
        usleep(1000);
    }
    CU_ASSERT_EQUAL(c.restarts, 1);
    CU_ASSERT_EQUAL(c.active, N - 100);
    /* Stopping the supervisor stops them all. */
    CU_ASSERT_EQUAL(ca_kill(RT, CA_PID_NONE, sup, "shutdown"), 0);
    for (int i = 0; i < 10000 && atomic_load(&dyn_alive) > 0; i++)
        usleep(1000);
    CU_ASSERT_EQUAL(atomic_load(&dyn_alive), 0);
    free(pids);
    after();
}

/* ---- Erlang's supervisor module ---- */

/* A gen_server call's request, formatted (one at a time). */
static ei_x_buff REQ;

static const ei_x_buff *req(const char *fmt, ...)
{
    if (REQ.buff)
        ei_x_free(&REQ);
    ei_x_new_with_version(&REQ);
    va_list ap;
    va_start(ap, fmt);
    CU_ASSERT_EQUAL(ca_vfmt(&REQ, fmt, ap), 0);
    va_end(ap);
    return &REQ;
}

/* supervisor:Fun(Sup, ...) as Erlang sends it: the reply, checked against
 * `pattern` (its placeholders fill the variadic pointers). */
static int erl_call(ca_pid sup, const ei_x_buff *rq, const char *pattern, ...)
{
    char *reply = NULL;
    size_t rlen = 0;
    int rc = ca_rt_call(RT, sup, rq->buff, (size_t)rq->index, WAIT_MS, &reply, &rlen);
    if (rc == 0) {
        va_list ap;
        va_start(ap, pattern);
        rc = ca_vmatch_term(reply, rlen, pattern, ap);
        va_end(ap);
        if (rc) {
            char txt[512], rtxt[256];
            ca_term_print(reply, rlen, txt, sizeof txt);
            ca_term_print(rq->buff, (size_t)rq->index, rtxt, sizeof rtxt);
            printf("\n  %s answered %s, not %s\n", rtxt, txt, pattern);
        }
    }
    free(reply);
    return rc;
}

static const ca_gen_server NOP_GS = {"nop_server", NULL, NULL, NULL, NULL, NULL, NULL};
static const ca_gen_server_spec NOP_SPEC = {&NOP_GS, NULL};

static void test_erlang_calls(void)
{
    before();
    wcfg a = {.tag = "a"}, b = {.tag = "b"};
    ca_child_spec cs[] = {child("a", &a, CA_PERMANENT), child("b", &b, CA_TEMPORARY),
                          child("g", NULL, CA_PERMANENT)};
    cs[1].type = CA_SUPERVISOR; /* only as listed: it is a worker really */
    cs[2].behaviour = &ca_gen_server_behaviour;
    cs[2].arg = (void *)&NOP_SPEC;
    cs[0].shutdown_ms = 2000;
    cs[2].shutdown_ms = CA_SHUTDOWN_BRUTAL;
    ca_pid sup = start_sup(CA_ONE_FOR_ONE, cs, 3, 10), pa, pb, p, q;
    CU_ASSERT(probe_wait(&P, "b: start", WAIT_MS));
    /* the last started first, as OTP lists them; modules: the behaviour,
     * or a gen_server's callbacks */
    CU_ASSERT_EQUAL(erl_call(sup, req("which_children"),
                             "[{g, _, worker, [nop_server]}, {b, ~p, supervisor, [worker]},"
                             " {a, ~p, worker, [worker]}]",
                             &pb, &pa),
                    0);
    CU_ASSERT(ca_pid_eq(pa, whereis("a")) && ca_pid_eq(pb, whereis("b")));
    CU_ASSERT_EQUAL(erl_call(sup, req("count_children"),
                             "[{specs, 3}, {active, 3}, {supervisors, 1}, {workers, 2}]"),
                    0);
    /* get_childspec: OTP's map, by id only; start names the C behaviour */
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, a}"),
                             "{ok, #{id => a, start => {worker, start_link, []}, "
                             "restart => permanent, significant => false, shutdown => 2000, "
                             "type => worker, modules => [worker]}}"),
                    0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, b}"),
                             "{ok, #{id => b, restart => temporary, shutdown => infinity, "
                             "type => supervisor}}"),
                    0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, g}"),
                             "{ok, #{start => {nop_server, start_link, []}, "
                             "shutdown => brutal_kill, modules => [nop_server]}}"),
                    0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, ~p}", pa), "{error, not_found}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, nosuch}"), "{error, not_found}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{terminate_child, g}"), "ok"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{delete_child, g}"), "ok"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, g}"), "{error, not_found}"), 0);
    /* stopped, restarted, refused while running, deleted once stopped */
    CU_ASSERT_EQUAL(erl_call(sup, req("{terminate_child, a}"), "ok"), 0);
    CU_ASSERT(probe_wait(&P, "a: stop shutdown", WAIT_MS));
    CU_ASSERT_EQUAL(erl_call(sup, req("which_children"), "[_, {a, undefined, worker, _}]"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{restart_child, a}"), "{ok, ~p}", &p), 0);
    CU_ASSERT(ca_pid_eq(p, whereis("a")) && !ca_pid_eq(p, pa));
    CU_ASSERT_EQUAL(erl_call(sup, req("{restart_child, a}"), "{error, running}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{restart_child, ~p}", p), "{error, running}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{delete_child, ~p}", p), "{error, running}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{delete_child, a}"), "{error, running}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{terminate_child, a}"), "ok"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{delete_child, a}"), "ok"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{delete_child, a}"), "{error, not_found}"), 0);
    /* by pid too, as OTP takes it (a temporary child is then forgotten) */
    ca_rt_sendf(RT, CA_PID_NONE, pb, "ping");
    CU_ASSERT(probe_wait(&P, "b: pong", WAIT_MS));
    CU_ASSERT_EQUAL(erl_call(sup, req("{terminate_child, ~p}", pb), "ok"), 0);
    CU_ASSERT(probe_wait(&P, "b: stop shutdown", WAIT_MS));
    CU_ASSERT_EQUAL(erl_call(sup, req("which_children"), "[]"), 0);
    /* unknown ids, other terms, what a C supervisor cannot do */
    CU_ASSERT_EQUAL(erl_call(sup, req("{terminate_child, nosuch}"), "{error, not_found}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{terminate_child, \"a\"}"), "{error, not_found}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{restart_child, 42}"), "{error, not_found}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{start_child, #{id => x, start => {m, f, []}}}"),
                             "{error, {not_supported, {start_child, _}}}"),
                    0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, \"a\"}"), "{error, not_found}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("what"), "{error, {not_supported, what}}"), 0);
    ca_kill(RT, CA_PID_NONE, sup, "shutdown");

    /* simple_one_for_one: started with the template's own arg, known by pid */
    wcfg d = {.tag = "d"};
    ca_child_spec tmpl = child("d", &d, CA_TEMPORARY);
    tmpl.name = NULL;
    ca_sup_spec spec = {CA_SIMPLE_ONE_FOR_ONE, 10, 5000, &tmpl, 1, 0};
    CU_ASSERT_FATAL(ca_sup_start(RT, &spec, NULL, &sup) == 0);
    probe_reset(&P);
    CU_ASSERT_EQUAL(erl_call(sup, req("{start_child, []}"), "{ok, ~p}", &p), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{start_child, []}"), "{ok, ~p}", &q), 0);
    CU_ASSERT(probe_wait_n(&P, "d: start", 2, WAIT_MS));
    CU_ASSERT_EQUAL(
        erl_call(sup, req("which_children"),
                 "[{undefined, ~p, worker, [worker]}, {undefined, ~p, worker, [worker]}]", &pb,
                 &pa),
        0);
    CU_ASSERT(ca_pid_eq(pa, p) && ca_pid_eq(pb, q));
    CU_ASSERT_EQUAL(erl_call(sup, req("count_children"),
                             "[{specs, 1}, {active, 2}, {supervisors, 0}, {workers, 2}]"),
                    0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{start_child, [x]}"), "{error, {not_supported, _}}"), 0);
    /* the template, by a child's pid or by the template's id */
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, ~p}", p),
                             "{ok, #{id => d, start => {worker, start_link, []}, "
                             "restart => temporary, shutdown => 5000, type => worker}}"),
                    0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, d}"), "{ok, #{id => d}}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, ~p}", sup), "{error, not_found}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{terminate_child, d}"), "{error, simple_one_for_one}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{restart_child, d}"), "{error, simple_one_for_one}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{delete_child, d}"), "{error, simple_one_for_one}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{terminate_child, ~p}", p), "ok"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{terminate_child, ~p}", p), "{error, not_found}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("{get_childspec, ~p}", p), "{error, not_found}"), 0);
    CU_ASSERT_EQUAL(erl_call(sup, req("which_children"), "[{undefined, ~p, worker, _}]", &pa), 0);
    CU_ASSERT(ca_pid_eq(pa, q));
    ca_kill(RT, CA_PID_NONE, sup, "shutdown");
    /* and the C API stops a one_for_one child by pid as well */
    wcfg c = {.tag = "c"};
    ca_child_spec cc = child("c", &c, CA_PERMANENT);
    sup = start_sup(CA_ONE_FOR_ONE, &cc, 1, 10);
    CU_ASSERT_EQUAL(ca_sup_terminate_child(RT, sup, NULL, whereis("c")), 0);
    CU_ASSERT(probe_wait(&P, "c: stop shutdown", WAIT_MS));
    CU_ASSERT_EQUAL(ca_sup_terminate_child(RT, sup, NULL, pa), CA_ENOENT);
    ei_x_free(&REQ);
    after();
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

static void add(void)
{
    CU_pSuite s = CU_add_suite("supervisor", setup, teardown);
    ADD_TEST(s, test_one_for_one_restart_types);
    ADD_TEST(s, test_one_for_all);
    ADD_TEST(s, test_on_sched);
    ADD_TEST(s, test_rest_for_one);
    ADD_TEST(s, test_intensity_exceeded);
    ADD_TEST(s, test_intensity_window);
    ADD_TEST(s, test_escalation_two_levels);
    ADD_TEST(s, test_shutdown_timeouts);
    ADD_TEST(s, test_api);
    ADD_TEST(s, test_async_calls);
    ADD_TEST(s, test_mailbox_overflow_restart);
    ADD_TEST(s, test_simple_one_for_one_many);
    ADD_TEST(s, test_erlang_calls);
}

int main(void)
{
    return run_suites(add);
}
