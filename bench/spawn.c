/*
 * Spawning: (1) spawn and exit: N actors whose init calls ca_exit, so each
 * one is spawned, runs init, exits and is freed; the figure is N divided
 * by the time until the last terminate ran. Spawned by one actor per
 * scheduler with ca_spawn_child (default placement: its own scheduler),
 * and from the main thread with ca_spawn (round robin).
 * (2) idle actors: N actors that wait, spawned from the main thread;
 * runtime memory per actor from mallinfo2 (bytes in use) and RSS, before
 * and after, with the user state being NULL.
 *
 * usage: spawn [n [threads]]   (default 1000000 2); 3 runs, median.
 */
#include <malloc.h>

#include "bench.h"

static bench_latch done;
static atomic_long inits;

static int quit_init(ca_actor *self, void *arg, void **state)
{
    (void)arg;
    (void)state;
    return ca_exit(self, "normal");
}

static int nop_handle(ca_actor *self, void *state, ca_msg *m)
{
    (void)self;
    (void)state;
    (void)m;
    return 0;
}

static void count_terminate(ca_actor *self, void *state, const char *r, size_t len)
{
    (void)self;
    (void)state;
    (void)r;
    (void)len;
    bench_latch_down(&done, 1);
}

static const ca_behaviour quitter_b = {"quitter", quit_init, nop_handle, count_terminate};

/* A spawner actor: spawns `per` children in chunks, sending itself a
 * message between chunks so that its scheduler runs the children too. */
typedef struct spawner {
    long left;
} spawner;

#define CHUNK 256

static int spawner_handle(ca_actor *self, void *state, ca_msg *m)
{
    spawner *sp = state;
    (void)m;
    for (int i = 0; i < CHUNK && sp->left > 0; i++, sp->left--) {
        int rc = ca_spawn_child(self, &quitter_b, NULL, NULL, NULL);
        if (rc)
            return rc;
    }
    if (sp->left > 0)
        return ca_send_ptr(self, ca_self(self), 0, NULL, NULL);
    return 0;
}

static const ca_behaviour spawner_b = {"spawner", NULL, spawner_handle, NULL};

static double run_exit(long n, unsigned threads, int from_main)
{
    ca_rt *rt = bench_rt(threads);
    bench_latch_init(&done, n);
    spawner *sp = calloc(threads, sizeof *sp);
    ca_pid *pids = calloc(threads, sizeof *pids);
    if (!from_main) {
        for (unsigned i = 0; i < threads; i++) {
            ca_spawn_opts o;
            ca_spawn_opts_init(&o);
            o.sched = (int)i;
            sp[i].left = n / threads + (i < n % threads);
            if (ca_spawn(rt, &spawner_b, &sp[i], &o, &pids[i]))
                exit(1);
        }
        bench_sleep_ms(20);
    }
    uint64_t t0 = bench_now_ns();
    if (from_main) {
        for (long i = 0; i < n; i++)
            if (ca_spawn(rt, &quitter_b, NULL, NULL, NULL))
                exit(1);
    } else {
        for (unsigned i = 0; i < threads; i++)
            ca_rt_send_ptr(rt, CA_PID_NONE, pids[i], 0, NULL, NULL);
    }
    double rate = -1;
    if (bench_latch_wait(&done, 120) == 0)
        rate = (double)n / ((double)(atomic_load(&done.end_ns) - t0) / 1e9);
    else
        fprintf(stderr, "spawn: %ld actors did not exit\n", atomic_load(&done.left));
    ca_rt_free(rt);
    bench_latch_destroy(&done);
    free(sp);
    free(pids);
    return rate;
}

static int idle_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    (void)state;
    atomic_fetch_add(&inits, 1);
    return 0;
}

static const ca_behaviour idle_b = {"idle", idle_init, nop_handle, NULL};

static void run_idle(long n, unsigned threads, double *bytes, double *rss_bytes, double *rate)
{
    ca_rt *rt = bench_rt(threads);
    atomic_store(&inits, 0);
    bench_sleep_ms(20);
    malloc_trim(0);
    struct mallinfo2 m0 = mallinfo2();
    long rss0 = bench_rss_kb();
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        if (ca_spawn(rt, &idle_b, NULL, NULL, NULL))
            exit(1);
    /* Wait (bounded) until every init ran and its INIT message is freed. */
    for (int i = 0; i < 60000 && atomic_load(&inits) < n; i++)
        bench_sleep_ms(1);
    uint64_t t1 = bench_now_ns();
    bench_sleep_ms(20);
    struct mallinfo2 m1 = mallinfo2();
    long rss1 = bench_rss_kb();
    /* The scheduler threads' arenas count too: mallinfo2 sums every one. */
    *bytes = ((double)m1.uordblks + (double)m1.hblkhd - (double)m0.uordblks - (double)m0.hblkhd) /
             (double)n;
    *rss_bytes = (double)(rss1 - rss0) * 1024.0 / (double)n;
    *rate = (double)n / ((double)(t1 - t0) / 1e9);
    ca_rt_free(rt);
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 1000000);
    unsigned threads = (unsigned)bench_arg(argc, argv, 2, 2);
    if (n < 1 || threads < 1) {
        fprintf(stderr, "usage: spawn [n [threads]]\n");
        return 2;
    }
    for (int from_main = 0; from_main < 2; from_main++) {
        double r[BENCH_REPS], runs[BENCH_REPS];
        for (int i = 0; i < BENCH_REPS; i++)
            if ((runs[i] = r[i] = run_exit(n, threads, from_main)) < 0)
                return 1;
        printf("spawn+exit actors=%ld threads=%u from=%s rate=%.2f Mactors/s (runs: %.2f %.2f "
               "%.2f)\n",
               n, threads, from_main ? "main(ca_spawn)" : "actors(ca_spawn_child)",
               bench_median(r, BENCH_REPS) / 1e6, runs[0] / 1e6, runs[1] / 1e6, runs[2] / 1e6);
        fflush(stdout);
    }
    double b[BENCH_REPS], rs[BENCH_REPS], rt[BENCH_REPS];
    for (int i = 0; i < BENCH_REPS; i++)
        run_idle(n, threads, &b[i], &rs[i], &rt[i]);
    printf("idle actors=%ld threads=%u heap=%.1f B/actor rss=%.1f B/actor spawn_rate=%.2f "
           "Mactors/s (medians of %d)\n",
           n, threads, bench_median(b, BENCH_REPS), bench_median(rs, BENCH_REPS),
           bench_median(rt, BENCH_REPS) / 1e6, BENCH_REPS);
    return 0;
}
