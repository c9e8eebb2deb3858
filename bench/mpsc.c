/*
 * The cost of one message on a single thread, without contention:
 *  queue   ca__mpsc_push + ca__mpsc_pop (mailbox/mpsc.h) in a tight loop,
 *          one node in flight, and in bursts of 64;
 *  self    an actor sends itself a pointer message, one in flight: the
 *          whole ca_send_ptr -> lookup -> ca__deliver -> schedule -> turn
 *          -> handle -> free path, on a 1-thread runtime;
 *  burst   an actor sends 64 pointer messages to a sink actor on the same
 *          scheduler, then asks to be run again: deliver + turn per
 *          message, with batched turns.
 *
 * usage: mpsc [n]   (default 20000000 queue ops, n/5 messages); 3 runs,
 * median.
 */
#include "bench.h"
#include "mpsc.h"

static double queue_ns(long n, int burst)
{
    ca__mpsc q;
    static ca__mpsc_node nodes[64];
    ca__mpsc_init(&q);
    uint64_t t0 = bench_now_ns();
    long ops = 0;
    while (ops < n) {
        for (int i = 0; i < burst; i++)
            ca__mpsc_push(&q, &nodes[i]);
        for (int i = 0; i < burst; i++) {
            ca__mpsc_node *x = ca__mpsc_pop(&q);
            if (x != &nodes[i]) {
                fprintf(stderr, "mpsc: lost node\n");
                exit(1);
            }
        }
        ops += burst;
    }
    return (double)(bench_now_ns() - t0) / (double)ops;
}

static bench_latch done;

typedef struct self_ctx {
    long left;
    ca_pid sink;
} self_ctx;

static int self_handle(ca_actor *self, void *state, ca_msg *m)
{
    self_ctx *c = state;
    (void)m;
    if (--c->left <= 0) {
        bench_latch_down(&done, 1);
        return 0;
    }
    return ca_send_ptr(self, ca_self(self), 0, NULL, NULL);
}

static int sink_handle(ca_actor *self, void *state, ca_msg *m)
{
    long *left = state;
    (void)self;
    (void)m;
    if (--*left == 0)
        bench_latch_down(&done, 1);
    return 0;
}

static int burst_handle(ca_actor *self, void *state, ca_msg *m)
{
    self_ctx *c = state;
    (void)m;
    for (int i = 0; i < 64 && c->left > 0; i++, c->left--) {
        int rc = ca_send_ptr(self, c->sink, 0, NULL, NULL);
        if (rc)
            return rc;
    }
    return c->left > 0 ? ca_send_ptr(self, ca_self(self), 0, NULL, NULL) : 0;
}

static const ca_behaviour self_b = {"self", NULL, self_handle, NULL};
static const ca_behaviour sink_b = {"sink", NULL, sink_handle, NULL};
static const ca_behaviour burst_b = {"burst", NULL, burst_handle, NULL};

static double actor_ns(long n, int burst)
{
    ca_rt *rt = bench_rt(1);
    bench_latch_init(&done, 1);
    self_ctx c = {n, CA_PID_NONE};
    long sink_left = n;
    ca_pid p;
    if (burst && ca_spawn(rt, &sink_b, &sink_left, NULL, &c.sink))
        exit(1);
    /* batch 1: the burst actor's self-message waits for the next turn, so
     * the sink (batch 64) keeps up and the queue stays at 64. */
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.batch = 1;
    if (ca_spawn(rt, burst ? &burst_b : &self_b, &c, &o, &p))
        exit(1);
    bench_sleep_ms(20);
    uint64_t t0 = bench_now_ns();
    ca_rt_send_ptr(rt, CA_PID_NONE, p, 0, NULL, NULL);
    double ns = -1;
    if (bench_latch_wait(&done, 60) == 0)
        ns = (double)(atomic_load(&done.end_ns) - t0) / (double)n;
    ca_rt_free(rt);
    bench_latch_destroy(&done);
    return ns;
}

static void report(const char *what, long n, double *v)
{
    double runs[BENCH_REPS];
    memcpy(runs, v, sizeof runs);
    printf("mpsc %s ops=%ld time=%.1f ns/op (runs: %.1f %.1f %.1f)\n", what, n,
           bench_median(v, BENCH_REPS), runs[0], runs[1], runs[2]);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 20000000);
    if (n < 64) {
        fprintf(stderr, "usage: mpsc [n >= 64]\n");
        return 2;
    }
    double v[BENCH_REPS];
    for (int i = 0; i < BENCH_REPS; i++)
        v[i] = queue_ns(n, 1);
    report("queue push+pop (1 in flight)", n, v);
    for (int i = 0; i < BENCH_REPS; i++)
        v[i] = queue_ns(n, 64);
    report("queue push+pop (bursts of 64)", n, v);
    for (int i = 0; i < BENCH_REPS; i++)
        if ((v[i] = actor_ns(n / 5, 0)) < 0)
            return 1;
    report("self-send ptr (send+deliver+turn, 1 thread)", n / 5, v);
    for (int i = 0; i < BENCH_REPS; i++)
        if ((v[i] = actor_ns(n / 5, 1)) < 0)
            return 1;
    report("burst ptr to sink (send+deliver+turn, 1 thread)", n / 5, v);
    return 0;
}
