/*
 * The standalone demo: a supervised pipeline of C actors, no Erlang needed.
 *
 *   source --{job, N}--> square --{result, N, N*N}--> sink
 *
 * `square` has a bug: it crashes on 7. Its supervisor (one_for_one)
 * restarts it under the same name, and the pipeline goes on; the job in
 * hand when it crashed is lost, as in Erlang, and the sink says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cactor.h"

#define JOBS 12

static void say(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(const char *who, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    printf("%-10s %s\n", who, line);
    fflush(stdout);
}

/* ---- source: one job every 100 ms ---- */

static int source_init(ca_actor *self, void *arg, void **state)
{
    (void)arg;
    (void)state;
    say("source", "started as <%u.%u>", ca_self(self).num, ca_self(self).serial);
    return ca_sendf_after(self, 100, ca_self(self), NULL, "{tick, 1}");
}

static int source_handle(ca_actor *self, void *state, ca_msg *m)
{
    long n;
    (void)state;
    if (ca_match(m, "{tick, ~i}", &n) != 0)
        return 0;
    int rc = ca_sendf_name(self, "square", "{job, ~i}", n);
    say("source", "job %ld -> square%s%s", n, rc ? ": " : "", rc ? ca_strerror(rc) : "");
    if (n < JOBS)
        ca_sendf_after(self, 100, ca_self(self), NULL, "{tick, ~i}", n + 1);
    return 0;
}

/* ---- square: crashes on 7 ---- */

static int square_init(ca_actor *self, void *arg, void **state)
{
    (void)arg;
    (void)state;
    say("square", "started as <%u.%u>", ca_self(self).num, ca_self(self).serial);
    return 0;
}

static int square_handle(ca_actor *self, void *state, ca_msg *m)
{
    long n;
    (void)state;
    if (ca_match(m, "{job, ~i}", &n) != 0)
        return 0;
    if (n == 7) {
        say("square", "job 7: dividing by zero (a bug); crashing");
        return ca_exit(self, "{badarith, ~i}", n);
    }
    return ca_sendf_name(self, "sink", "{result, ~i, ~i}", n, n * n);
}

static void square_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    char txt[128];
    (void)self;
    (void)state;
    ca_term_print(reason, len, txt, sizeof txt);
    say("square", "terminated: %s", txt);
}

/* ---- sink: collects results, stops the runtime at the end ---- */

typedef struct sink_state {
    int got;
    long last;
} sink_state;

static int sink_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    sink_state *s = calloc(1, sizeof *s);
    *state = s;
    return s ? 0 : CA_ENOMEM;
}

static int sink_handle(ca_actor *self, void *state, ca_msg *m)
{
    sink_state *s = state;
    long n, sq;
    if (ca_match(m, "{result, ~i, ~i}", &n, &sq) != 0)
        return 0;
    for (long lost = s->last + 1; lost < n; lost++)
        say("sink", "job %ld never arrived (lost in the crash)", lost);
    s->last = n;
    s->got++;
    say("sink", "%ld^2 = %ld", n, sq);
    if (n == JOBS) {
        say("sink", "%d results of %d jobs; stopping", s->got, JOBS);
        ca_rt_shutdown(ca_actor_rt(self), 0);
    }
    return 0;
}

static void sink_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    (void)self;
    (void)reason;
    (void)len;
    free(state);
}

static const ca_behaviour SOURCE = {"source", source_init, source_handle, NULL};
static const ca_behaviour SQUARE = {"square", square_init, square_handle, square_terminate};
static const ca_behaviour SINK = {"sink", sink_init, sink_handle, sink_terminate};

/* Supervisor reports arrive through the runtime's log function. */
static void log_line(void *ctx, ca_log_level level, const char *line)
{
    (void)ctx;
    (void)level;
    say("[log]", "%s", line);
}

int main(void)
{
    ca_rt_opts o;
    ca_rt_opts_init(&o);
    o.threads = 2;
    o.log = log_line;
    o.log_level = CA_LOG_INFO;
    ca_rt *rt;
    int rc = ca_rt_new(&o, &rt);
    if (rc) {
        fprintf(stderr, "demo: cannot start the runtime: %s\n", ca_strerror(rc));
        return 1;
    }

    /* Sink and square first, so that the source finds them. */
    ca_child_spec children[3] = {
        {.id = "sink", .behaviour = &SINK, .name = "sink", .restart = CA_PERMANENT},
        {.id = "square", .behaviour = &SQUARE, .name = "square", .restart = CA_PERMANENT},
        {.id = "source", .behaviour = &SOURCE, .name = "source", .restart = CA_TRANSIENT},
    };
    ca_sup_spec spec = {.strategy = CA_ONE_FOR_ONE,
                        .intensity = 3,
                        .period_ms = 5000,
                        .children = children,
                        .nchildren = 3,
                        .flags = CA_SUP_SHUTDOWN_RT};
    ca_pid root;
    printf("cactor demo: a supervised pipeline source -> square -> sink on %u threads\n",
           ca_rt_threads(rt));
    if ((rc = ca_sup_start(rt, &spec, "root", &root)) != 0) {
        fprintf(stderr, "demo: cannot start the supervisor: %s\n", ca_strerror(rc));
        ca_rt_free(rt);
        return 1;
    }
    rc = ca_rt_wait(rt, 20000);
    if (rc == 0) {
        ca_sup_counts c;
        if (ca_sup_count_children(rt, root, &c) == 0)
            printf("supervisor root: %llu children, %llu active, %llu restart(s)\n",
                   (unsigned long long)c.specs, (unsigned long long)c.active,
                   (unsigned long long)c.restarts);
    }
    ca_rt_free(rt);
    if (rc != 0) {
        fprintf(stderr, "demo: did not finish: %s\n",
                rc < 0 ? ca_strerror(rc) : "supervisor gave up");
        return 1;
    }
    printf("cactor demo: done\n");
    return 0;
}
