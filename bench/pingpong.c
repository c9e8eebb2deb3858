/*
 * Ping-pong between pairs of actors: each pinger sends one message to its
 * ponger, which answers; the next ping goes out when the pong arrives, so
 * every pair has exactly one message in flight and the figure measures
 * the whole send -> schedule -> turn -> handle path.
 *
 * usage: pingpong [pairs [kind [placement [threads [ms]]]]]
 *   kind:      term  {ping, N} built with ca_sendf, read with ca_match
 *              ei    the same term encoded with ei into a stack buffer,
 *                    sent with ca_send, checked with ei_decode_* (cheaper)
 *              ptr   native pointer messages (ca_send_ptr, tag = N)
 *   placement: same  ponger and pinger on one scheduler (pair i on i % T)
 *              cross ponger on i % T, pinger on (i + 1) % T
 * Without arguments: 1 and 1000 pairs, each kind, both placements, on 2
 * threads. Each run lasts `ms` (default 600) and is repeated 3 times; the
 * median is printed.
 */
#include "bench.h"

enum { K_TERM, K_EI, K_PTR };
enum { TAG_START = 1u << 30 };

typedef struct pair {
    ca_pid ponger;
    uint64_t rounds;
    int kind;
} pair;

static atomic_int stop;
static bench_latch done;

static int send_n(ca_actor *self, ca_pid to, int kind, long n, int pong)
{
    switch (kind) {
    case K_TERM:
        return pong ? ca_sendf(self, to, "{pong, ~i}", n) : ca_sendf(self, to, "{ping, ~i}", n);
    case K_EI: {
        char buf[32];
        int i = 0;
        ei_encode_version(buf, &i);
        ei_encode_tuple_header(buf, &i, 2);
        ei_encode_atom(buf, &i, pong ? "pong" : "ping");
        ei_encode_long(buf, &i, n);
        return ca_send(self, to, buf, (size_t)i);
    }
    default:
        return ca_send_ptr(self, to, (uint64_t)n, NULL, NULL);
    }
}

/* The N of {ping, N} / {pong, N}, or -1. */
static long recv_n(ca_msg *m, int kind, int pong)
{
    long n = -1;
    switch (kind) {
    case K_TERM:
        if ((pong ? ca_match(m, "{pong, ~i}", &n) : ca_match(m, "{ping, ~i}", &n)) != 0)
            return -1;
        return n;
    case K_EI: {
        size_t len;
        const char *b = ca_msg_data(m, &len);
        char atom[MAXATOMLEN];
        int i = 0, ver, ar;
        if (!b || ei_decode_version(b, &i, &ver) || ei_decode_tuple_header(b, &i, &ar) || ar != 2 ||
            ei_decode_atom(b, &i, atom) || strcmp(atom, pong ? "pong" : "ping") ||
            ei_decode_long(b, &i, &n))
            return -1;
        return n;
    }
    default: {
        uint64_t tag;
        if (ca_msg_type(m) != CA_MSG_PTR)
            return -1;
        ca_msg_ptr(m, &tag);
        return (long)tag;
    }
    }
}

static int pong_handle(ca_actor *self, void *state, ca_msg *m)
{
    int kind = (int)(intptr_t)state;
    long n = recv_n(m, kind, 0);
    if (n < 0)
        return CA_ENOMATCH;
    return send_n(self, ca_msg_from(m), kind, n, 1);
}

static int ping_handle(ca_actor *self, void *state, ca_msg *m)
{
    pair *p = state;
    if (ca_msg_type(m) == CA_MSG_PTR && ca_msg_ptr(m, NULL) == p) /* start */
        return send_n(self, p->ponger, p->kind, 0, 0);
    long n = recv_n(m, p->kind, 1);
    if (n < 0)
        return CA_ENOMATCH;
    p->rounds++;
    if (atomic_load_explicit(&stop, memory_order_relaxed)) {
        bench_latch_down(&done, 1);
        return 0;
    }
    return send_n(self, p->ponger, p->kind, n + 1, 0);
}

static const ca_behaviour pong_b = {"pong", NULL, pong_handle, NULL};
static const ca_behaviour ping_b = {"ping", NULL, ping_handle, NULL};

static const char *kind_names[] = {"term", "ei", "ptr"};

/* One run; returns messages per second, or a negative value on failure. */
static double run(long npairs, int kind, int cross, unsigned threads, unsigned ms, uint64_t *msgs)
{
    ca_rt *rt = bench_rt(threads);
    pair *pairs = calloc((size_t)npairs, sizeof *pairs);
    ca_pid *pingers = calloc((size_t)npairs, sizeof *pingers);
    if (!pairs || !pingers) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    atomic_store(&stop, 0);
    bench_latch_init(&done, npairs);
    for (long i = 0; i < npairs; i++) {
        ca_spawn_opts o;
        ca_spawn_opts_init(&o);
        o.sched = (int)(i % threads);
        pairs[i].kind = kind;
        if (ca_spawn(rt, &pong_b, (void *)(intptr_t)kind, &o, &pairs[i].ponger))
            exit(1);
        o.sched = (int)((i + (cross ? 1 : 0)) % threads);
        if (ca_spawn(rt, &ping_b, &pairs[i], &o, &pingers[i]))
            exit(1);
    }
    bench_sleep_ms(50); /* let every init run */
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < npairs; i++)
        ca_rt_send_ptr(rt, CA_PID_NONE, pingers[i], TAG_START, &pairs[i], NULL);
    bench_sleep_ms(ms);
    atomic_store(&stop, 1);
    double rate = -1;
    if (bench_latch_wait(&done, 30) == 0) {
        uint64_t total = 0;
        for (long i = 0; i < npairs; i++)
            total += 2 * pairs[i].rounds;
        *msgs = total;
        rate = (double)total / ((double)(atomic_load(&done.end_ns) - t0) / 1e9);
    } else {
        fprintf(stderr, "pingpong: pairs did not finish\n");
    }
    ca_rt_free(rt);
    bench_latch_destroy(&done);
    free(pairs);
    free(pingers);
    return rate;
}

static int one(long npairs, int kind, int cross, unsigned threads, unsigned ms)
{
    double r[BENCH_REPS];
    uint64_t msgs[BENCH_REPS];
    for (int i = 0; i < BENCH_REPS; i++) {
        r[i] = run(npairs, kind, cross, threads, ms, &msgs[i]);
        if (r[i] < 0)
            return 1;
    }
    double runs[BENCH_REPS];
    memcpy(runs, r, sizeof r);
    double med = bench_median(r, BENCH_REPS);
    printf("pingpong pairs=%ld kind=%s placement=%s threads=%u msgs=%llu time=%ums "
           "rate=%.2f Mmsg/s",
           npairs, kind_names[kind], cross ? "cross" : "same", threads, (unsigned long long)msgs[0],
           ms, med / 1e6);
    bench_print_runs(runs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        long pairs = bench_arg(argc, argv, 1, 1000);
        const char *k = bench_sarg(argc, argv, 2, "ptr");
        const char *pl = bench_sarg(argc, argv, 3, "same");
        unsigned threads = (unsigned)bench_arg(argc, argv, 4, 2);
        unsigned ms = (unsigned)bench_arg(argc, argv, 5, 600);
        int kind = !strcmp(k, "term") ? K_TERM : !strcmp(k, "ei") ? K_EI : K_PTR;
        if (pairs < 1 || threads < 1) {
            fprintf(stderr, "usage: pingpong [pairs [term|ei|ptr [same|cross [threads [ms]]]]]\n");
            return 2;
        }
        return one(pairs, kind, !strcmp(pl, "cross"), threads, ms);
    }
    static const long sizes[] = {1, 1000};
    int rc = 0;
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 3; k++)
            for (int c = 0; c < 2; c++)
                rc |= one(sizes[s], k, c, 2, 600);
    return rc;
}
