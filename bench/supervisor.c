/*
 * Supervisor benchmarks.
 *
 *   supervisor [restarts] [children]
 *
 * restart: a permanent child crashes (its handler returns an error) and
 *   the time from that return to the first line of the new incarnation's
 *   init is measured, `restarts` times; median and 99th percentile.
 * start: a one_for_one supervisor whose spec lists `children` children,
 *   and a simple_one_for_one supervisor given as many ca_sup_start_child
 *   calls: time until every child's init has run.
 */
#include "bench.h"

static atomic_uint_fast64_t crash_ns;
static atomic_long restarts_left;
static double *lat_us;
static atomic_long nlat;
static bench_latch done;

static int crasher_init(ca_actor *self, void *arg, void **state)
{
    uint64_t now = bench_now_ns();
    uint64_t t = atomic_exchange(&crash_ns, 0);
    (void)arg;
    (void)state;
    if (t)
        lat_us[atomic_fetch_add(&nlat, 1)] = (double)(now - t) / 1e3;
    if (atomic_fetch_sub(&restarts_left, 1) <= 0) {
        bench_latch_down(&done, 1);
        return 0;
    }
    return ca_sendf(self, ca_self(self), "crash");
}

static int crasher_handle(ca_actor *self, void *state, ca_msg *m)
{
    (void)self;
    (void)state;
    (void)m;
    atomic_store(&crash_ns, bench_now_ns());
    return CA_EINVAL;
}

static const ca_behaviour CRASHER = {"crasher", crasher_init, crasher_handle, NULL};

static void bench_restart(unsigned threads, long n)
{
    ca_rt_opts o;
    ca_rt_opts_init(&o);
    o.threads = threads;
    o.log_level = CA_LOG_NONE; /* the crash reports would swamp the figures */
    ca_rt *rt;
    if (ca_rt_new(&o, &rt)) {
        fprintf(stderr, "ca_rt_new failed\n");
        exit(1);
    }
    lat_us = calloc((size_t)n + 1, sizeof *lat_us);
    atomic_store(&nlat, 0);
    atomic_store(&restarts_left, n);
    atomic_store(&crash_ns, 0);
    bench_latch_init(&done, 1);
    ca_child_spec c = {.id = "crasher", .behaviour = &CRASHER, .restart = CA_PERMANENT};
    ca_sup_spec spec = {CA_ONE_FOR_ONE, (int32_t)n + 10, 3600 * 1000, &c, 1, 0};
    uint64_t t0 = bench_now_ns();
    if (ca_sup_start(rt, &spec, NULL, NULL) || bench_latch_wait(&done, 120)) {
        fprintf(stderr, "restart bench did not finish\n");
        exit(1);
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    long k = atomic_load(&nlat);
    double p99 = 0, med = 0;
    if (k > 0) {
        med = bench_median(lat_us, (int)k); /* sorts */
        p99 = lat_us[(size_t)((double)k * 0.99)];
    }
    printf("supervisor restart threads=%u restarts=%ld median=%.2f us p99=%.2f us "
           "rate=%.0f restarts/s (target: median < 10 us)\n",
           threads, k, med, p99, (double)k / secs);
    ca_rt_free(rt);
    bench_latch_destroy(&done);
    free(lat_us);
}

static int idle_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    (void)state;
    bench_latch_down(&done, 1);
    return 0;
}

static int idle_handle(ca_actor *self, void *state, ca_msg *m)
{
    (void)self;
    (void)state;
    (void)m;
    return 0;
}

static const ca_behaviour IDLE = {"idle", idle_init, idle_handle, NULL};

static double start_static(unsigned threads, long n)
{
    ca_rt *rt = bench_rt(threads);
    ca_child_spec *cs = calloc((size_t)n, sizeof *cs);
    char(*ids)[24] = calloc((size_t)n, sizeof *ids);
    for (long i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "c%ld", i);
        cs[i] = (ca_child_spec){.id = ids[i], .behaviour = &IDLE, .restart = CA_PERMANENT};
    }
    ca_sup_spec spec = {CA_ONE_FOR_ONE, 1, 5000, cs, (size_t)n, 0};
    bench_latch_init(&done, n);
    uint64_t t0 = bench_now_ns();
    if (ca_sup_start(rt, &spec, NULL, NULL) || bench_latch_wait(&done, 120)) {
        fprintf(stderr, "static start did not finish\n");
        exit(1);
    }
    double secs = (double)(atomic_load(&done.end_ns) - t0) / 1e9;
    ca_rt_free(rt);
    bench_latch_destroy(&done);
    free(cs);
    free(ids);
    return secs;
}

static double start_dynamic(unsigned threads, long n)
{
    ca_rt *rt = bench_rt(threads);
    ca_child_spec tmpl = {.id = "dyn", .behaviour = &IDLE, .restart = CA_TEMPORARY};
    ca_sup_spec spec = {CA_SIMPLE_ONE_FOR_ONE, 1, 5000, &tmpl, 1, 0};
    ca_pid sup;
    bench_latch_init(&done, n);
    if (ca_sup_start(rt, &spec, NULL, &sup)) {
        fprintf(stderr, "dynamic start failed\n");
        exit(1);
    }
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        int rc = ca_sup_start_child(rt, sup, NULL, NULL, NULL);
        if (rc) {
            fprintf(stderr, "start_child: %s\n", ca_strerror(rc));
            exit(1);
        }
    }
    if (bench_latch_wait(&done, 120)) {
        fprintf(stderr, "dynamic start did not finish\n");
        exit(1);
    }
    double secs = (double)(atomic_load(&done.end_ns) - t0) / 1e9;
    ca_rt_free(rt);
    bench_latch_destroy(&done);
    return secs;
}

int main(int argc, char **argv)
{
    long restarts = bench_arg(argc, argv, 1, 20000);
    long children = bench_arg(argc, argv, 2, 100000);
    unsigned threads = 2;

    bench_restart(1, restarts);
    bench_restart(threads, restarts);

    double s[BENCH_REPS], d[BENCH_REPS];
    for (int r = 0; r < BENCH_REPS; r++) {
        s[r] = start_static(threads, children);
        d[r] = start_dynamic(threads, children);
    }
    double ms = bench_median(s, BENCH_REPS), md = bench_median(d, BENCH_REPS);
    printf("supervisor start one_for_one children=%ld threads=%u time=%.3f s rate=%.0f "
           "children/s (median of %d)\n",
           children, threads, ms, (double)children / ms, BENCH_REPS);
    printf("supervisor start simple_one_for_one start_child calls=%ld threads=%u time=%.3f s "
           "rate=%.0f children/s (median of %d; each call waits for the supervisor)\n",
           children, threads, md, (double)children / md, BENCH_REPS);
    return 0;
}
