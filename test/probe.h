/*
 * Test support: a probe collects what actors report (lines of text) so that
 * the test thread can wait for an expected line with a deadline instead of
 * sleeping. Header-only; every suite includes it once.
 */
#ifndef CA_TEST_PROBE_H
#define CA_TEST_PROBE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/Basic.h>

#define PROBE_MAX 4096

typedef struct probe {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *lines[PROBE_MAX];
    int n;
} probe;

static inline void probe_init(probe *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
}

static inline void probe_reset(probe *p)
{
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->n; i++)
        free(p->lines[i]);
    p->n = 0;
    pthread_mutex_unlock(&p->lock);
}

static inline void probe_free(probe *p)
{
    probe_reset(p);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}

__attribute__((format(printf, 2, 3))) static inline void probe_say(probe *p, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&p->lock);
    if (p->n < PROBE_MAX)
        p->lines[p->n++] = strdup(buf);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static inline void deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static inline int probe_count_locked(probe *p, const char *line)
{
    int c = 0;
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->lines[i], line) == 0)
            c++;
    return c;
}

/* Wait until `line` has been said at least `times` times; 1 if so. */
static inline int probe_wait_n(probe *p, const char *line, int times, long ms)
{
    struct timespec dl;
    deadline_in(&dl, ms);
    int ok = 0;
    pthread_mutex_lock(&p->lock);
    while (!(ok = probe_count_locked(p, line) >= times))
        if (pthread_cond_timedwait(&p->cond, &p->lock, &dl) != 0) {
            ok = probe_count_locked(p, line) >= times;
            break;
        }
    pthread_mutex_unlock(&p->lock);
    if (!ok) {
        fprintf(stderr, "\nprobe: waited for '%s' x%d; have:\n", line, times);
        pthread_mutex_lock(&p->lock);
        for (int i = 0; i < p->n && i < 40; i++)
            fprintf(stderr, "  %s\n", p->lines[i]);
        pthread_mutex_unlock(&p->lock);
    }
    return ok;
}

static inline int probe_wait(probe *p, const char *line, long ms)
{
    return probe_wait_n(p, line, 1, ms);
}

static inline int probe_count(probe *p, const char *line)
{
    pthread_mutex_lock(&p->lock);
    int c = probe_count_locked(p, line);
    pthread_mutex_unlock(&p->lock);
    return c;
}

/* Index of the first line equal to `line`, or -1. */
static inline int probe_index(probe *p, const char *line)
{
    int at = -1;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->n && at < 0; i++)
        if (strcmp(p->lines[i], line) == 0)
            at = i;
    pthread_mutex_unlock(&p->lock);
    return at;
}

/* Register and run the suites given by `add`; exit code for ctest. */
static inline int run_suites(void (*add)(void))
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    add();
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int failed = (int)CU_get_number_of_failures() + (int)CU_get_number_of_tests_failed();
    int err = CU_get_error();
    CU_cleanup_registry();
    return (failed || err) ? 1 : 0;
}

#define ADD_TEST(suite, fn) CU_add_test(suite, #fn, fn)

#endif
