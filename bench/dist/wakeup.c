/*
 * wakeup: what sleeping and waking cost on this machine, printed as one
 * line for bench/dist's machine table. The distribution benchmarks'
 * sequential round trips and batch waits are bounded by it, and on a
 * virtual machine it changes from one hour to the next, so each run
 * measures it again:
 *
 *   - a 100 us ppoll: how long it really lasts (cactor-node's batch wait
 *     is one, with --batch-us 100);
 *   - a round trip between two threads over pipes, each blocked in read
 *     (two wake-ups);
 *   - a round trip of 16 bytes over a TCP connection on 127.0.0.1 between
 *     two threads, each blocked in read (the least a sequential round
 *     trip through the distribution can cost, without Erlang or ei).
 *
 * Medians of many, with the 90th percentile. Everything is bounded.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll */
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define POLLS 2000
#define TRIPS 5000
#define MSG   16

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Median and 90th percentile of v[n], in microseconds. */
static void quantiles(uint64_t *v, size_t n, double *med, double *p90)
{
    qsort(v, n, sizeof *v, cmp_u64);
    *med = (double)v[n / 2] / 1e3;
    *p90 = (double)v[n * 9 / 10] / 1e3;
}

static int read_all(int fd, char *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The echoing side: reads MSG bytes from in, writes them to out, TRIPS
 * times (or until either end fails). */
typedef struct {
    int in, out;
} echo_fds;

static void *echo_main(void *arg)
{
    echo_fds *e = arg;
    char b[MSG];
    for (int i = 0; i < TRIPS; i++)
        if (read_all(e->in, b, MSG) || write_all(e->out, b, MSG))
            break;
    return NULL;
}

/* Round trips from this thread to an echoing one: `to` goes there, `from`
 * comes back. 0, or -1 if a trip failed (then the echoing thread may be
 * blocked for good: the program ends without it). */
static int round_trips(int to, int from, echo_fds *e, double *med, double *p90)
{
    static uint64_t v[TRIPS];
    pthread_t t;
    if (pthread_create(&t, NULL, echo_main, e))
        return -1;
    char b[MSG] = "wakeup ping-pong";
    int rc = 0;
    for (int i = 0; i < TRIPS && !rc; i++) {
        uint64_t t0 = now_ns();
        rc = write_all(to, b, MSG) || read_all(from, b, MSG) ? -1 : 0;
        v[i] = now_ns() - t0;
    }
    if (rc) {
        pthread_detach(t);
        return rc;
    }
    pthread_join(t, NULL);
    quantiles(v, TRIPS, med, p90);
    return 0;
}

static int pipes(double *med, double *p90)
{
    int a[2], b[2];
    if (pipe(a))
        return -1;
    if (pipe(b)) {
        close(a[0]);
        close(a[1]);
        return -1;
    }
    echo_fds e = {a[0], b[1]};
    int rc = round_trips(a[1], b[0], &e, med, p90);
    for (int i = 0; i < 2 && !rc; i++) {
        close(a[i]);
        close(b[i]);
    }
    return rc;
}

/* A connected pair of TCP sockets on 127.0.0.1, with TCP_NODELAY as the
 * distribution sets it. */
static int tcp_pair(int fd[2])
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
    fd[0] = fd[1] = -1;
    if (l < 0)
        return -1;
    if (bind(l, (struct sockaddr *)&sa, sizeof sa) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&sa, &len))
        goto fail;
    if ((fd[0] = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        connect(fd[0], (struct sockaddr *)&sa, sizeof sa) || (fd[1] = accept(l, NULL, NULL)) < 0)
        goto fail;
    close(l);
    for (int i = 0; i < 2; i++)
        setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
fail:
    close(l);
    if (fd[0] >= 0)
        close(fd[0]);
    return -1;
}

static int tcp(double *med, double *p90)
{
    int fd[2];
    if (tcp_pair(fd))
        return -1;
    echo_fds e = {fd[1], fd[1]};
    int rc = round_trips(fd[0], fd[0], &e, med, p90);
    for (int i = 0; i < 2 && !rc; i++)
        close(fd[i]);
    return rc;
}

static void sleeps(double *med, double *p90)
{
    static uint64_t v[POLLS];
    struct timespec ts = {0, 100000};
    for (int i = 0; i < POLLS; i++) {
        uint64_t t0 = now_ns();
        (void)ppoll(NULL, 0, &ts, NULL);
        v[i] = now_ns() - t0;
    }
    quantiles(v, POLLS, med, p90);
}

int main(void)
{
    double sm, s9, pm, p9, tm, t9;
    sleeps(&sm, &s9);
    if (pipes(&pm, &p9) || tcp(&tm, &t9)) {
        perror("wakeup");
        return 1;
    }
    printf("a 100 us ppoll lasts %.0f us (p90 %.0f); a round trip between two threads blocked in "
           "read: %.0f us over pipes (p90 %.0f), %.0f us over TCP on 127.0.0.1 (p90 %.0f); "
           "medians\n",
           sm, s9, pm, p9, tm, t9);
    return 0;
}
