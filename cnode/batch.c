/*
 * Reading in batches. While messages come densely (a stream of casts,
 * many requests in flight), a loop that polls its sockets again as soon
 * as it has answered reads one or two frames per system call, and the
 * peer's kernel delivers each of its writes on its own to a reader that
 * is already waiting: both sides pay per message. So when the actors of
 * scheduler 0 are idle after an iteration that brought messages from a
 * peer at a rate of 2 or more per batch_ns, the loop waits up to batch_ns
 * before it polls that peer's socket again (node.c, batch_wait); what
 * comes meanwhile is read, handled and answered in one go.
 *
 * A wait pays only if the peer does not wait for us. Peers that send on
 * their own (casts, a process with many requests out, callers held up by
 * their own node's CPU) send as much while we wait as while we poll; a
 * few sequential callers send no more than their number per wait, so
 * waiting would slow them down. A wait that brings BATCH_DENSE messages
 * or more has paid (8 sequential callers gain too: their replies go out
 * together). Waits that bring fewer are judged together, as many as
 * promise JUDGE_SPAN messages at the rate seen while polling (the faster
 * of the last two samples, each over RATE_MS and RATE_SPAN messages; the
 * slower may span a pause, and batching starts only once there are two),
 * but JUDGE_WAITS at most (samples that span pauses promise little, and
 * sequential callers would wait for each of many waits): batching goes on
 * if they brought 3/4 of that. A dense stream that pauses (its sender was
 * descheduled for a wait's length, say) is forgiven one such judgement
 * per dense wait: before that rule, one short wait in a stream of casts
 * stopped batching for the 8 ms and more that two new samples take, and
 * a stream from a busy Erlang node was read in batches half the time.
 * Else it is tried again after RETRY_MIN more messages, twice as many
 * after each try that fails (sequential callers lose a little each time).
 * A judgement after PROBE_MS of batching stops it for a new sample
 * anyway: the peer may have changed since. Signals are not counted: a
 * gen_server:call brings a monitor and a demonitor with its request.
 *
 * All of it is per connection: a stream from one peer does not make the
 * sequential callers of another wait.
 */
#include <uv.h>

#include "node.h"

#define BATCH_DENSE 8     /* messages per wait that need no judging */
#define RETRY_MIN   256   /* messages before batching is tried again, */
#define RETRY_MAX   16384 /* twice as many after each try that failed */
#define JUDGE_SPAN  32    /* messages promised by the waits judged together, */
#define JUDGE_WAITS 8     /* or this many waits, whichever comes first */
#define RATE_SPAN   32    /* messages, and */
#define RATE_MS     4     /* ms at least in a rate sample */
#define PROBE_MS    100   /* ms of batching before the rate is sampled again */

void ca__batch_init(ca__batch *b, uint64_t now_ms)
{
    *b = (ca__batch){.retry_span = RETRY_MIN, .rate_t = uv_hrtime(), .rate_ms = now_ms};
}

static uint64_t clock_ns(uint64_t *now)
{
    if (!*now)
        *now = uv_hrtime();
    return *now;
}

/* While polling: a new rate sample every RATE_SPAN messages and RATE_MS. */
static void rate_sample(ca__batch *b, uint64_t now, uint64_t now_ms)
{
    b->msg_ns[1] = b->msg_ns[0];
    b->msg_ns[0] = (now - b->rate_t) / (b->in - b->rate_in);
    b->rate_t = now;
    b->rate_ms = now_ms;
    b->rate_in = b->in;
}

/* Whether to start, from the samples. */
static bool start(ca__batch *b, uint64_t batch_ns, uint64_t now_ms)
{
    uint64_t ns = b->msg_ns[0] < b->msg_ns[1] ? b->msg_ns[0] : b->msg_ns[1];
    if (!ns || ns * 2 > batch_ns)
        return false; /* no two samples yet, or below 2 messages per wait */
    b->poll_ns = ns;
    b->probe_ms = now_ms + PROBE_MS;
    b->win_got = b->win_ns = b->win_waits = 0;
    b->dense = false;
    b->on = true;
    return true;
}

/* Whether to go on, given the messages that came in the last `ns`. */
static bool keep(ca__batch *b, uint64_t got, uint64_t ns, uint64_t now, uint64_t now_ms)
{
    if (got >= BATCH_DENSE) {
        b->win_got = b->win_ns = b->win_waits = 0; /* a dense stream: waiting pays */
        b->retry_span = RETRY_MIN;
        b->dense = true;
        return true;
    }
    b->win_got += got;
    b->win_ns += ns;
    if (++b->win_waits < JUDGE_WAITS && b->win_ns < JUDGE_SPAN * b->poll_ns)
        return true; /* too few messages promised to tell yet */
    bool paid = b->win_got * b->poll_ns * 4 >= b->win_ns * 3;
    b->win_got = b->win_ns = b->win_waits = 0;
    if (!paid && b->dense) {
        /* A dense stream that paused once (its sender was descheduled,
         * say): forgiven once per dense wait. Sequential callers never
         * bring BATCH_DENSE, so they are not made to wait longer. */
        b->dense = false;
        return true;
    }
    b->dense = false;
    if (paid) {
        b->retry_span = RETRY_MIN;
        if (now_ms < b->probe_ms)
            return true;
        b->retry = b->in; /* sample the rate again, then go on */
    } else {
        b->retry = b->in + b->retry_span;
        if (b->retry_span < RETRY_MAX)
            b->retry_span *= 2;
    }
    b->on = false;
    b->rate_t = now; /* the samples start afresh */
    b->rate_ms = now_ms;
    b->rate_in = b->in;
    b->msg_ns[0] = b->msg_ns[1] = 0;
    return false;
}

bool ca__batch_next(ca__batch *b, uint64_t batch_ns, bool idle, uint64_t now_ms, uint64_t *now)
{
    uint64_t got = b->in - b->mark;
    if (idle)
        b->mark = b->in;
    if (!b->on) {
        if (b->in - b->rate_in >= RATE_SPAN && now_ms - b->rate_ms >= RATE_MS)
            rate_sample(b, clock_ns(now), now_ms);
        if (!idle || !got || b->in < b->retry || !start(b, batch_ns, now_ms))
            return false;
    } else {
        if (!idle)
            return false;
        uint64_t t = clock_ns(now);
        if (!keep(b, got, t - b->t, t, now_ms))
            return false;
    }
    b->t = clock_ns(now);
    return true;
}
