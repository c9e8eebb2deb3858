/*
 * Shared helpers of the benchmark programs in bench/: clocks, a latch
 * the main thread waits on, medians and memory figures. Header-only, as
 * every file in bench/ is built into a program of its own.
 */
#ifndef CA_BENCH_H
#define CA_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cactor.h"

/* Repeats of every figure; the median is what gets reported. */
#define BENCH_REPS 3

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void bench_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (sorts them in place). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A countdown the main thread waits on; actors count down. Waiting is
 * bounded so that a lost message ends the program instead of hanging it. */
typedef struct bench_latch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_long left;
    atomic_uint_fast64_t end_ns; /* when it reached zero */
} bench_latch;

static inline void bench_latch_init(bench_latch *l, long n)
{
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    atomic_store(&l->left, n);
    atomic_store(&l->end_ns, 0);
}

static inline void bench_latch_destroy(bench_latch *l)
{
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
}

static inline void bench_latch_down(bench_latch *l, long k)
{
    if (atomic_fetch_sub(&l->left, k) != k)
        return;
    atomic_store(&l->end_ns, bench_now_ns());
    pthread_mutex_lock(&l->lock);
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

/* 0 when the latch reached zero, -1 after timeout_s seconds. */
static inline int bench_latch_wait(bench_latch *l, unsigned timeout_s)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_s;
    pthread_mutex_lock(&l->lock);
    int rc = 0;
    while (atomic_load(&l->left) > 0 && rc == 0)
        rc = pthread_cond_timedwait(&l->cond, &l->lock, &dl);
    int left = atomic_load(&l->left) > 0;
    pthread_mutex_unlock(&l->lock);
    return left ? -1 : 0;
}

static inline ca_rt *bench_rt(unsigned threads)
{
    ca_rt_opts o;
    ca_rt_opts_init(&o);
    o.threads = threads;
    ca_rt *rt = NULL;
    int rc = ca_rt_new(&o, &rt);
    if (rc) {
        fprintf(stderr, "ca_rt_new: %s\n", ca_strerror(rc));
        exit(1);
    }
    return rt;
}

/* Resident set size in KiB, from /proc/self/statm. */
static inline long bench_rss_kb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The end of a figure's line: " (runs: a b c)" in millions, and a flush so
 * that the line shows before the next figure's minutes of work. */
static inline void bench_print_runs(const double *runs)
{
    printf(" (runs:");
    for (int i = 0; i < BENCH_REPS; i++)
        printf(" %.2f", runs[i] / 1e6);
    printf(")\n");
    fflush(stdout);
}

static inline long bench_arg(int argc, char **argv, int i, long def)
{
    return argc > i ? strtol(argv[i], NULL, 0) : def;
}

static inline const char *bench_sarg(int argc, char **argv, int i, const char *def)
{
    return argc > i ? argv[i] : def;
}

#endif
