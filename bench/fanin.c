/*
 * Fan-in: many sender actors, one receiver. Senders are flow-controlled
 * by credit so the receiver's mailbox stays bounded: each starts with
 * WINDOW credits, and the receiver returns CREDIT of them every CREDIT
 * messages it got from that sender. Every sender sends `per` messages.
 *
 * usage: fanin [senders [per [kind [threads]]]]
 *   kind: ptr (ca_send_ptr, tag = sender index) or term ({data, Sender, N}
 *         with ca_sendf, read with ca_match)
 * The receiver is on scheduler 0; senders are spread round robin over
 * all schedulers (so with 2 threads half of them share the receiver's).
 * Without arguments: 100 and 1000 senders, both kinds, 2 threads, 5
 * million messages in all. Each figure is the median of 3 runs.
 */
#include "bench.h"

enum { K_TERM, K_PTR };
#define WINDOW 512
#define CREDIT 128

typedef struct sender {
    ca_pid self;
    long left;   /* messages still to send */
    long credit; /* messages it may send now */
    long got;    /* receiver side: messages from this sender */
    long idx;
} sender;

typedef struct ctx {
    int kind;
    ca_pid receiver;
    sender *senders;
    long nsenders;
    long expect;
    long received;
} ctx;

static ctx C;
static bench_latch done;

static int pump(ca_actor *self, sender *s)
{
    while (s->left > 0 && s->credit > 0) {
        int rc = C.kind == K_PTR ? ca_send_ptr(self, C.receiver, (uint64_t)s->idx, NULL, NULL)
                                 : ca_sendf(self, C.receiver, "{data, ~i, ~i}", s->idx, s->left);
        if (rc)
            return rc;
        s->left--;
        s->credit--;
    }
    return 0;
}

/* Sender: the start message and credit returns both are PTR messages
 * whose tag is the number of credits. */
static int sender_handle(ca_actor *self, void *state, ca_msg *m)
{
    sender *s = state;
    uint64_t credit = 0;
    ca_msg_ptr(m, &credit);
    s->credit += (long)credit;
    return pump(self, s);
}

static int receiver_handle(ca_actor *self, void *state, ca_msg *m)
{
    (void)state;
    long idx = -1, n;
    if (C.kind == K_PTR) {
        uint64_t tag;
        ca_msg_ptr(m, &tag);
        idx = (long)tag;
    } else if (ca_match(m, "{data, ~i, ~i}", &idx, &n) != 0) {
        return CA_ENOMATCH;
    }
    if (idx < 0 || idx >= C.nsenders)
        return CA_EINVAL;
    sender *s = &C.senders[idx];
    if (++s->got % CREDIT == 0)
        ca_send_ptr(self, s->self, CREDIT, NULL, NULL);
    if (++C.received == C.expect)
        bench_latch_down(&done, 1);
    return 0;
}

static const ca_behaviour sender_b = {"sender", NULL, sender_handle, NULL};
static const ca_behaviour receiver_b = {"receiver", NULL, receiver_handle, NULL};

static double run(long nsenders, long per, int kind, unsigned threads)
{
    ca_rt *rt = bench_rt(threads);
    memset(&C, 0, sizeof C);
    C.kind = kind;
    C.nsenders = nsenders;
    C.expect = nsenders * per;
    C.senders = calloc((size_t)nsenders, sizeof *C.senders);
    if (!C.senders)
        exit(1);
    bench_latch_init(&done, 1);
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.sched = 0;
    if (ca_spawn(rt, &receiver_b, NULL, &o, &C.receiver))
        exit(1);
    for (long i = 0; i < nsenders; i++) {
        o.sched = (int)(i % threads);
        C.senders[i].idx = i;
        C.senders[i].left = per;
        if (ca_spawn(rt, &sender_b, &C.senders[i], &o, &C.senders[i].self))
            exit(1);
    }
    bench_sleep_ms(50);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < nsenders; i++)
        ca_rt_send_ptr(rt, CA_PID_NONE, C.senders[i].self, WINDOW, NULL, NULL);
    double rate = -1;
    if (bench_latch_wait(&done, 60) == 0)
        rate = (double)C.expect / ((double)(atomic_load(&done.end_ns) - t0) / 1e9);
    else
        fprintf(stderr, "fanin: receiver got %ld of %ld\n", C.received, C.expect);
    ca_rt_free(rt);
    bench_latch_destroy(&done);
    free(C.senders);
    return rate;
}

static int one(long nsenders, long per, int kind, unsigned threads)
{
    double r[BENCH_REPS], runs[BENCH_REPS];
    for (int i = 0; i < BENCH_REPS; i++)
        if ((runs[i] = r[i] = run(nsenders, per, kind, threads)) < 0)
            return 1;
    double med = bench_median(r, BENCH_REPS);
    printf("fanin senders=%ld receivers=1 kind=%s threads=%u msgs=%ld rate=%.2f Mmsg/s", nsenders,
           kind == K_PTR ? "ptr" : "term", threads, nsenders * per, med / 1e6);
    bench_print_runs(runs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        long n = bench_arg(argc, argv, 1, 100);
        long per = bench_arg(argc, argv, 2, 5000000 / (n > 0 ? n : 1));
        const char *k = bench_sarg(argc, argv, 3, "ptr");
        unsigned threads = (unsigned)bench_arg(argc, argv, 4, 2);
        if (n < 1 || per < 1 || threads < 1) {
            fprintf(stderr, "usage: fanin [senders [per [ptr|term [threads]]]]\n");
            return 2;
        }
        return one(n, per, strcmp(k, "term") ? K_PTR : K_TERM, threads);
    }
    int rc = 0;
    rc |= one(100, 50000, K_PTR, 2);
    rc |= one(1000, 5000, K_PTR, 2);
    rc |= one(100, 20000, K_TERM, 2);
    return rc;
}
