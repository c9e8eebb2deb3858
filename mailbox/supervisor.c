/*
 * Supervisors with the semantics of OTP's supervisor module.
 *
 * A supervisor is an actor that traps exits. It never blocks: where OTP's
 * supervisor waits (stopping a child, then the next), this one runs a job
 * as a small state machine driven by the DOWN and timeout messages it
 * receives. Jobs run one at a time, in order; requests that arrive
 * meanwhile wait their turn, like calls to a busy gen_server.
 *
 * Children are freed only between jobs (purge), so a job's lists of
 * children never dangle; a child to be forgotten is marked `doomed`.
 *
 * Erlang's supervisor module works on it too (which_children,
 * count_children, terminate_child, restart_child, delete_child,
 * get_childspec, and start_child with no extra arguments for
 * simple_one_for_one): its calls
 * become requests like the C API's, answered as OTP's supervisor answers;
 * sys:terminate (gen_server:stop) stops it as it stops OTP's, and
 * sys:get_state shows its flags and children.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define SUP_REQ_TAG 0x7375707265710001ull /* "supreq" */

enum { R_START, R_TERMINATE, R_RESTART, R_DELETE, R_WHICH, R_COUNT, R_SPEC };

typedef struct sup_req {
    int op;
    const ca_child_spec *spec;
    const char *id;
    void *arg;
    ca_pid pid;
    /* answer */
    int rc;
    ca_pid out;
    ca_child_info *infos;
    size_t ninfos;
    ca_sup_counts counts;
    ca__waiter wait;
    /* From an actor (the _async calls): nobody waits; the answer is a
     * message to reply_to, and the request owns copies of what it names. */
    ca_rt *rt;
    ca_pid reply_to, sup;
    ca_ref tag;
    ca_child_spec spec_copy;
    /* From Erlang's supervisor module: answered with ca_gen_reply. */
    struct gen_call *gen;
} sup_req;

typedef struct gen_call {
    ca_actor *self; /* the supervisor: requests end in its turns */
    ca_call_from from;
    ei_x_buff which; /* which_children's or get_childspec's answer, built while
                        the children are at hand */
    bool restarting; /* restart or delete refused: the child is about to restart */
} gen_call;

typedef struct child {
    struct child *prev, *next; /* start order */
    struct child *hnext;       /* pid hash chain */
    ca_child_spec spec;        /* id and name point to owned copies */
    void *arg;
    ca_pid pid; /* CA_PID_NONE when not running */
    bool doomed;
    bool pending; /* a restart is queued */
} child;

enum { J_RESTART, J_STOP_ALL, J_REQ };

typedef struct job {
    struct job *next;
    int kind;
    child *target;
    sup_req *req;
    char *reason; /* J_STOP_ALL: exit reason (ETF) */
    size_t rlen;
    /* progress */
    child **stop;
    size_t nstop, istop;
    child **start;
    size_t nstart;
} job;

#define SUP_MAGIC  0x53555056u /* a live supervisor's state */
#define SPEC_MAGIC 0x53504543u /* a spec copied by ca_sup_start */

typedef struct sup {
    uint32_t magic;
    ca_strategy strategy;
    int32_t intensity;
    uint32_t period_ms;
    unsigned flags;
    child *head, *tail;
    size_t nchildren;
    child *tmpl; /* simple_one_for_one: the template, never started */
    size_t ndoomed;
    child **buckets;
    size_t nbuckets, nhashed;
    /* Times of the restarts within the period, oldest at stamp_at: a ring
     * that grows with them, up to intensity entries (as OTP keeps a list:
     * a large intensity costs nothing until the restarts come). */
    uint64_t *stamps;
    size_t nstamps, stamp_at, stamp_cap;
    uint64_t restarts;
    job *jobs, *jobs_tail, *cur;
    bool stopping_all;
    /* the child being stopped */
    child *stopping;
    ca_ref stop_ref;
    ca_timer stop_timer;
    bool stop_timer_on;
    bool killed;
    uint64_t stop_seq;
    char label[64];
} sup;

/* ---- small helpers ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void say(ca_actor *self, sup *s, ca_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void say(ca_actor *self, sup *s, ca_log_level lvl, const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ca_log(ca_actor_rt(self), lvl, "supervisor %s: %s", s->label, line);
}

static const char *child_label(const child *c)
{
    return c->spec.id && *c->spec.id ? c->spec.id : "(dynamic)";
}

static void req_free_async(sup_req *r)
{
    free(r->infos);
    free((char *)r->id);
    free((char *)r->spec_copy.id);
    free((char *)r->spec_copy.name);
    free(r);
}

/* {ok, [{Id, Pid | undefined, worker | supervisor, Restart}]}, as
 * supervisor:which_children lists them (ids are atoms here). */
static int which_term(ei_x_buff *x, const sup_req *r)
{
    static const char *const restart[] = {"permanent", "transient", "temporary"};
    if (ei_x_encode_tuple_header(x, 2) || ei_x_encode_atom(x, "ok") ||
        ei_x_encode_list_header(x, (long)r->ninfos))
        return CA_ENOMEM;
    for (size_t i = 0; i < r->ninfos; i++) {
        const ca_child_info *c = &r->infos[i];
        const char *type = c->type == CA_SUPERVISOR ? "supervisor" : "worker";
        const char *rs = (unsigned)c->restart < 3 ? restart[c->restart] : "permanent";
        int rc = ca_pid_is_none(c->pid) ? ca_fmt(x, "{~a, undefined, ~a, ~a}", c->id, type, rs)
                                        : ca_fmt(x, "{~a, ~p, ~a, ~a}", c->id, c->pid, type, rs);
        if (rc)
            return rc;
    }
    return r->ninfos && ei_x_encode_empty_list(x) ? CA_ENOMEM : 0; /* the tail */
}

/* The answer of which_children and count_children: built with ei, since
 * its length varies. */
static int answer_data(const sup_req *r)
{
    ei_x_buff x;
    const ca_sup_counts *c = &r->counts;
    if (ei_x_new_with_version(&x))
        return CA_ENOMEM;
    bool head = !ei_x_encode_tuple_header(&x, 3) && !ei_x_encode_atom(&x, "ca_sup") &&
                !ca_encode_ref(&x, &r->tag);
    int rc;
    if (!head)
        rc = CA_ENOMEM;
    else if (r->op == R_WHICH)
        rc = which_term(&x, r);
    else /* keys in Erlang's order */
        rc = ca_fmt(&x,
                    "{ok, #{active => ~u, restarts => ~u, specs => ~u, supervisors => ~u, "
                    "workers => ~u}}",
                    (unsigned long)c->active, (unsigned long)c->restarts, (unsigned long)c->specs,
                    (unsigned long)c->supervisors, (unsigned long)c->workers);
    if (rc == 0)
        rc = ca_rt_send(r->rt, r->sup, r->reply_to, x.buff, (size_t)x.index);
    ei_x_free(&x);
    return rc;
}

/* {ca_sup, Ref, {ok, Pid} | ok | {ok, Data} | {error, Code}} to the
 * asking actor; then the request is freed. */
static void answer_async(sup_req *r, int rc)
{
    bool data = r->op == R_WHICH || r->op == R_COUNT;
    if (rc == 0 && data)
        rc = answer_data(r); /* sent, or why not */
    if (rc)
        ca_rt_sendf(r->rt, r->sup, r->reply_to, "{ca_sup, ~r, {error, ~a}}", &r->tag,
                    ca_errname(rc));
    else if (r->op == R_START || r->op == R_RESTART)
        ca_rt_sendf(r->rt, r->sup, r->reply_to, "{ca_sup, ~r, {ok, ~p}}", &r->tag, r->out);
    else if (!data)
        ca_rt_sendf(r->rt, r->sup, r->reply_to, "{ca_sup, ~r, ok}", &r->tag);
    req_free_async(r);
}

static void answer_gen(sup_req *r, int rc);

/* Exactly once per request; an asynchronous one is freed here. */
static void req_done(sup_req *r, int rc)
{
    if (r->gen) {
        answer_gen(r, rc);
        return;
    }
    if (!ca_pid_is_none(r->reply_to)) {
        answer_async(r, rc);
        return;
    }
    r->rc = rc;
    ca__waiter_done(&r->wait);
}

/* The request message was dropped (the supervisor died first). */
static void req_abandoned(void *p)
{
    req_done(p, CA_ESRCH);
}

/* ---- pid hash ---- */

static size_t hslot(sup *s, ca_pid p)
{
    return (p.num * 2654435761u) & (s->nbuckets - 1);
}

static void hash_put(sup *s, child *c)
{
    if (s->nhashed >= s->nbuckets) {
        size_t n = s->nbuckets ? s->nbuckets * 2 : 16;
        child **b = calloc(n, sizeof *b);
        if (b) {
            for (size_t i = 0; i < s->nbuckets; i++) {
                child *e = s->buckets[i];
                while (e) {
                    child *nx = e->hnext;
                    size_t h = (e->pid.num * 2654435761u) & (n - 1);
                    e->hnext = b[h];
                    b[h] = e;
                    e = nx;
                }
            }
            free(s->buckets);
            s->buckets = b;
            s->nbuckets = n;
        }
    }
    size_t h = hslot(s, c->pid);
    c->hnext = s->buckets[h];
    s->buckets[h] = c;
    s->nhashed++;
}

static child *hash_find(sup *s, ca_pid p)
{
    if (!s->nbuckets)
        return NULL;
    for (child *c = s->buckets[hslot(s, p)]; c; c = c->hnext)
        if (ca_pid_eq(c->pid, p))
            return c;
    return NULL;
}

static void hash_del(sup *s, child *c)
{
    if (!s->nbuckets || ca_pid_is_none(c->pid))
        return;
    for (child **pp = &s->buckets[hslot(s, c->pid)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == c) {
            *pp = c->hnext;
            s->nhashed--;
            return;
        }
    }
}

/* Mark a child as no longer running. */
static void child_down(sup *s, child *c)
{
    hash_del(s, c);
    c->pid = CA_PID_NONE;
}

/* ---- children ---- */

static child *child_new(const ca_child_spec *spec, void *arg)
{
    child *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->spec = *spec;
    c->spec.id = strdup(spec->id ? spec->id : "");
    c->spec.name = spec->name ? strdup(spec->name) : NULL;
    if (!c->spec.id || (spec->name && !c->spec.name)) {
        free((char *)c->spec.id);
        free((char *)c->spec.name);
        free(c);
        return NULL;
    }
    c->arg = arg;
    return c;
}

static void child_append(sup *s, child *c)
{
    c->prev = s->tail;
    c->next = NULL;
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    s->nchildren++;
}

static void child_free(sup *s, child *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->tail = c->prev;
    s->nchildren--;
    hash_del(s, c);
    free((char *)c->spec.id);
    free((char *)c->spec.name);
    free(c);
}

static child *child_by_id(sup *s, const char *id)
{
    for (child *c = s->head; c; c = c->next)
        if (!c->doomed && strcmp(c->spec.id, id) == 0)
            return c;
    return NULL;
}

/* Mark a child to be forgotten at the next purge. */
static void doom(sup *s, child *c)
{
    if (!c->doomed) {
        c->doomed = true;
        s->ndoomed++;
    }
}

static void purge(sup *s)
{
    if (!s->ndoomed)
        return; /* the common case, and a walk of every child otherwise */
    child *c = s->head;
    while (c) {
        child *n = c->next;
        if (c->doomed && ca_pid_is_none(c->pid)) {
            s->ndoomed--;
            child_free(s, c);
        }
        c = n;
    }
}

static int start_child(ca_actor *self, sup *s, child *c)
{
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = c->spec.name;
    o.flags = CA_SPAWN_LINK;
    o.sched = c->spec.on_sched ? (int)(c->spec.on_sched - 1) : CA_SCHED_SPREAD;
    o.mailbox_cap = c->spec.mailbox_cap;
    o.overflow = c->spec.overflow;
    int rc = ca_spawn_child(self, c->spec.behaviour, c->arg, &o, &c->pid);
    if (rc) {
        c->pid = CA_PID_NONE;
        say(self, s, CA_LOG_ERROR, "child %s failed to start: %s", child_label(c), ca_strerror(rc));
        return rc;
    }
    hash_put(s, c);
    return 0;
}

/* ---- restart decisions ---- */

static bool is_shutdownish(const char *r, size_t len)
{
    if (ca__is_atom(r, len, "normal") || ca__is_atom(r, len, "shutdown"))
        return true;
    return ca_match_term(r, len, "{shutdown, _}") == 0;
}

/* Room for one more stamp, the ring unwound into a buffer twice as big. */
static int stamps_grow(sup *s)
{
    size_t cap = s->stamp_cap ? 2 * s->stamp_cap : 8;
    if (cap > (size_t)s->intensity)
        cap = (size_t)s->intensity;
    uint64_t *b = malloc(cap * sizeof *b);
    if (!b)
        return CA_ENOMEM;
    for (size_t i = 0; i < s->nstamps; i++)
        b[i] = s->stamps[(s->stamp_at + i) % s->stamp_cap];
    free(s->stamps);
    s->stamps = b;
    s->stamp_cap = cap;
    s->stamp_at = 0;
    return 0;
}

/* Record a restart; false when it is one too many for the period (or,
 * out of memory, cannot be counted: giving up is then the safe side). */
static bool restart_allowed(sup *s)
{
    uint64_t now = now_ms();
    while (s->nstamps && now - s->stamps[s->stamp_at] > s->period_ms) {
        s->stamp_at = (s->stamp_at + 1) % s->stamp_cap;
        s->nstamps--;
    }
    if (s->nstamps >= (size_t)s->intensity)
        return false;
    if (s->nstamps == s->stamp_cap && stamps_grow(s))
        return false;
    s->stamps[(s->stamp_at + s->nstamps) % s->stamp_cap] = now;
    s->nstamps++;
    return true;
}

/* ---- jobs ---- */

static void job_free(job *j)
{
    free(j->stop);
    free(j->start);
    free(j->reason);
    free(j);
}

static void enqueue(sup *s, job *j, bool front)
{
    if (front) {
        j->next = s->jobs;
        s->jobs = j;
        if (!s->jobs_tail)
            s->jobs_tail = j;
        return;
    }
    j->next = NULL;
    if (s->jobs_tail)
        s->jobs_tail->next = j;
    else
        s->jobs = j;
    s->jobs_tail = j;
}

static job *job_new(int kind)
{
    job *j = calloc(1, sizeof *j);
    if (j)
        j->kind = kind;
    return j;
}

/* Lists for a job: `stop` gets running children from `from` to the end,
 * last started first; `start` gets them in start order. */
static int collect(sup *s, job *j, child *from, bool with_start, child *except)
{
    size_t n = 0;
    for (child *c = from; c; c = c->next)
        n++;
    j->stop = calloc(n + 1, sizeof *j->stop);
    j->start = calloc(n + 1, sizeof *j->start);
    if (!j->stop || !j->start)
        return CA_ENOMEM;
    for (child *c = s->tail; c; c = c->prev) {
        if (c != except && !ca_pid_is_none(c->pid))
            j->stop[j->nstop++] = c;
        if (c == from)
            break;
    }
    for (child *c = from; with_start && c; c = c->next) {
        if (c->spec.restart == CA_TEMPORARY && c != except)
            doom(s, c); /* temporary siblings are not restarted */
        else if (!c->doomed)
            j->start[j->nstart++] = c;
    }
    return 0;
}

static void step(ca_actor *self, sup *s);
static void run_jobs(ca_actor *self, sup *s);

/* A child's shutdown in ms or CA_SHUTDOWN_*, OTP's default resolved:
 * 5000 ms for a worker, infinity for a supervisor. */
static int64_t shutdown_of(const ca_child_spec *sp)
{
    if (sp->shutdown_ms != CA_SHUTDOWN_DEFAULT)
        return sp->shutdown_ms;
    return sp->type == CA_SUPERVISOR ? CA_SHUTDOWN_INFINITY : 5000;
}

static void begin_stop(ca_actor *self, sup *s, child *c)
{
    ca_rt *rt = ca_actor_rt(self);
    int64_t ms = shutdown_of(&c->spec);
    s->stopping = c;
    s->killed = false;
    s->stop_seq++;
    ca_unlink(self, c->pid);
    ca_monitor(self, c->pid, &s->stop_ref);
    if (ms == CA_SHUTDOWN_BRUTAL) {
        s->killed = true;
        ca_kill(rt, ca_self(self), c->pid, "kill");
        return;
    }
    ca_kill(rt, ca_self(self), c->pid, "shutdown");
    s->stop_timer_on = false;
    if (ms > 0 && ca_sendf_after(self, (uint64_t)ms, ca_self(self), &s->stop_timer,
                                 "{'$sup_timeout', ~u}", (unsigned long)s->stop_seq) == 0)
        s->stop_timer_on = true;
}

static void finish_job(ca_actor *self, sup *s, job *j)
{
    if (j->kind == J_STOP_ALL) {
        ca_exit_term(self, j->reason, j->rlen);
    } else if (j->kind == J_REQ) {
        sup_req *r = j->req;
        if (r->op == R_TERMINATE) {
            if (j->target &&
                (j->target->spec.restart == CA_TEMPORARY || s->strategy == CA_SIMPLE_ONE_FOR_ONE))
                doom(s, j->target);
            req_done(r, 0);
        }
    }
}

/* Run the current job as far as it can go without waiting. */
static void step(ca_actor *self, sup *s)
{
    job *j = s->cur;
    while (j->istop < j->nstop) {
        child *c = j->stop[j->istop];
        if (ca_pid_is_none(c->pid)) {
            j->istop++;
            continue;
        }
        begin_stop(self, s, c);
        return; /* wait for its DOWN */
    }
    for (size_t i = 0; i < j->nstart; i++) {
        child *c = j->start[i];
        c->pending = false;
        if (!c->doomed && ca_pid_is_none(c->pid) && start_child(self, s, c) == 0)
            say(self, s, CA_LOG_INFO, "child %s restarted", child_label(c));
    }
    s->cur = NULL;
    finish_job(self, s, j);
    job_free(j);
    purge(s);
}

static void handle_request(ca_actor *self, sup *s, job *j);

static void begin_job(ca_actor *self, sup *s, job *j)
{
    int rc = 0;
    s->cur = j;
    if (j->kind == J_RESTART) {
        child *t = j->target;
        if (t->doomed || !ca_pid_is_none(t->pid)) {
            t->pending = false;
            j->nstop = j->nstart = 0; /* restarted meanwhile, or deleted */
        } else if (s->strategy == CA_ONE_FOR_ALL) {
            rc = collect(s, j, s->head, true, NULL);
        } else if (s->strategy == CA_REST_FOR_ONE) {
            rc = collect(s, j, t, true, NULL);
        } else {
            j->start = calloc(1, sizeof *j->start);
            if (j->start)
                j->start[j->nstart++] = t;
            else
                rc = CA_ENOMEM;
        }
    } else if (j->kind == J_STOP_ALL) {
        rc = collect(s, j, s->head, false, NULL);
    } else {
        handle_request(self, s, j);
        if (s->cur != j)
            return; /* answered at once */
    }
    if (rc) {
        /* Cannot even plan: give up the way OTP does when it cannot cope. */
        ca_exit(self, "{shutdown, enomem}");
        s->cur = NULL;
        job_free(j);
        return;
    }
    step(self, s);
}

static void run_jobs(ca_actor *self, sup *s)
{
    while (!s->cur && s->jobs) {
        job *j = s->jobs;
        s->jobs = j->next;
        if (!s->jobs)
            s->jobs_tail = NULL;
        begin_job(self, s, j);
    }
}

/* Stop everything and exit with `reason` (ETF with version byte). */
static void stop_all(ca_actor *self, sup *s, const char *reason, size_t len)
{
    if (s->stopping_all)
        return;
    job *j = job_new(J_STOP_ALL);
    if (j && (j->reason = malloc(len)) != NULL) {
        memcpy(j->reason, reason, len);
        j->rlen = len;
        s->stopping_all = true;
        enqueue(s, j, true);
        return;
    }
    if (j)
        job_free(j);
    ca_exit(self, "{shutdown, enomem}");
}

/* stop_all with a reason as a term comes inside another (no version
 * byte, which stop_all's reason carries); CA_ENOMEM if it could not. */
static int stop_all_term(ca_actor *self, sup *s, const char *r, size_t rlen)
{
    ei_x_buff x;
    if (ei_x_new_with_version(&x) != 0)
        return CA_ENOMEM;
    int rc = ca_fmt(&x, "~t", r, rlen);
    if (rc == 0)
        stop_all(self, s, x.buff, (size_t)x.index);
    ei_x_free(&x);
    return rc;
}

/* ---- requests ---- */

static int gen_which(sup *s, ei_x_buff *x);

/* The children that are not about to be forgotten. */
static size_t live_children(const sup *s)
{
    size_t n = 0;
    for (const child *c = s->head; c; c = c->next)
        n += !c->doomed;
    return n;
}

static void fill_which(sup *s, sup_req *r)
{
    if (r->gen) {
        req_done(r, gen_which(s, &r->gen->which));
        return;
    }
    size_t n = live_children(s);
    r->infos = calloc(n ? n : 1, sizeof *r->infos);
    if (!r->infos) {
        req_done(r, CA_ENOMEM);
        return;
    }
    for (child *c = s->head; c; c = c->next) {
        if (c->doomed)
            continue;
        ca_child_info *i = &r->infos[r->ninfos++];
        snprintf(i->id, sizeof i->id, "%s", c->spec.id);
        i->pid = c->pid;
        i->type = c->spec.type;
        i->restart = c->spec.restart;
    }
    req_done(r, 0);
}

static void fill_counts(sup *s, sup_req *r)
{
    memset(&r->counts, 0, sizeof r->counts);
    if (s->tmpl)
        r->counts.specs = 1; /* one template, as OTP counts it */
    for (child *c = s->head; c; c = c->next) {
        if (c->doomed)
            continue;
        r->counts.specs += !s->tmpl;
        r->counts.active += !ca_pid_is_none(c->pid);
        if (c->spec.type == CA_SUPERVISOR)
            r->counts.supervisors++;
        else
            r->counts.workers++;
    }
    r->counts.restarts = s->restarts;
    req_done(r, 0);
}

static int gen_spec(sup *s, sup_req *r, ei_x_buff *x);

/* get_childspec, from Erlang only: the answer is a term. */
static void fill_spec(sup *s, sup_req *r)
{
    req_done(r, r->gen ? gen_spec(s, r, &r->gen->which) : CA_EINVAL);
}

static void req_start(ca_actor *self, sup *s, sup_req *r)
{
    child *c;
    if (s->strategy == CA_SIMPLE_ONE_FOR_ONE) {
        if (r->spec) {
            req_done(r, CA_EINVAL);
            return;
        }
        c = child_new(&s->tmpl->spec, r->arg);
    } else {
        if (!r->spec || !r->spec->id || !r->spec->behaviour) {
            req_done(r, CA_EINVAL);
            return;
        }
        if (child_by_id(s, r->spec->id)) {
            req_done(r, CA_EEXIST);
            return;
        }
        c = child_new(r->spec, r->spec->arg);
    }
    if (!c) {
        req_done(r, CA_ENOMEM);
        return;
    }
    child_append(s, c);
    int rc = start_child(self, s, c);
    if (rc)
        doom(s, c);
    r->out = c->pid;
    req_done(r, rc);
}

/* By id, or by pid (as OTP's terminate_child takes either; ids mean
 * nothing to simple_one_for_one). */
static child *req_target(sup *s, sup_req *r)
{
    if (!r->id)
        return hash_find(s, r->pid);
    return s->strategy == CA_SIMPLE_ONE_FOR_ONE ? NULL : child_by_id(s, r->id);
}

static void handle_request(ca_actor *self, sup *s, job *j)
{
    sup_req *r = j->req;
    child *c;
    bool answered = true;
    switch (r->op) {
    case R_START:
        req_start(self, s, r);
        break;
    case R_WHICH:
        fill_which(s, r);
        break;
    case R_COUNT:
        fill_counts(s, r);
        break;
    case R_SPEC:
        fill_spec(s, r);
        break;
    case R_TERMINATE:
        if (!(c = req_target(s, r))) {
            req_done(r, CA_ENOENT);
            break;
        }
        j->target = c;
        c->pending = false;
        j->stop = calloc(1, sizeof *j->stop);
        if (!j->stop) {
            req_done(r, CA_ENOMEM);
            break;
        }
        j->stop[j->nstop++] = c;
        answered = false; /* after the stop, in finish_job */
        break;
    case R_RESTART:
    case R_DELETE:
        if (s->strategy == CA_SIMPLE_ONE_FOR_ONE) {
            req_done(r, CA_ENOTSUP);
        } else if (!(c = req_target(s, r))) {
            req_done(r, CA_ENOENT);
        } else if (!ca_pid_is_none(c->pid) || c->pending) {
            if (r->gen)
                r->gen->restarting = ca_pid_is_none(c->pid);
            req_done(r, CA_EBUSY);
        } else if (r->op == R_DELETE) {
            doom(s, c);
            req_done(r, 0);
        } else {
            int rc = start_child(self, s, c);
            r->out = c->pid;
            req_done(r, rc);
        }
        break;
    default:
        req_done(r, CA_EINVAL);
    }
    if (answered) {
        s->cur = NULL;
        job_free(j);
        purge(s);
    }
}

/* ---- messages ---- */

static void on_child_exit(ca_actor *self, sup *s, child *c, const char *r, size_t rlen)
{
    char txt[256];
    ca_pid was = c->pid;
    ca_term_print(r, rlen, txt, sizeof txt);
    child_down(s, c);
    bool clean = is_shutdownish(r, rlen);
    if (!clean)
        say(self, s, CA_LOG_ERROR, "child %s <%u.%u> exited: %s", child_label(c), was.num,
            was.serial, txt);
    if (s->stopping_all)
        return;
    if (c->spec.restart == CA_TEMPORARY) {
        doom(s, c);
        if (!s->cur)
            purge(s);
        return;
    }
    if (c->spec.restart == CA_TRANSIENT && clean) {
        if (s->strategy == CA_SIMPLE_ONE_FOR_ONE) {
            doom(s, c);
            if (!s->cur)
                purge(s);
        }
        return;
    }
    if (c->pending)
        return;
    if (!restart_allowed(s)) {
        say(self, s, CA_LOG_ERROR, "reached max restart intensity (%d in %u ms); shutting down",
            s->intensity, s->period_ms);
        static const char shutdown[] = {(char)131, 119, 8, 's', 'h', 'u', 't', 'd', 'o', 'w', 'n'};
        stop_all(self, s, shutdown, sizeof shutdown);
        return;
    }
    job *j = job_new(J_RESTART);
    if (!j) {
        ca_exit(self, "{shutdown, enomem}");
        return;
    }
    s->restarts++;
    atomic_fetch_add_explicit(&ca_actor_rt(self)->st_restarts, 1, memory_order_relaxed);
    c->pending = true;
    j->target = c;
    enqueue(s, j, false);
}

static void on_exit_msg(ca_actor *self, sup *s, ca_pid from, const char *r, size_t rlen)
{
    child *c = hash_find(s, from);
    if (c) {
        on_child_exit(self, s, c, r, rlen);
        return;
    }
    if (ca__is_atom(r, rlen, "normal"))
        return;
    /* Our parent (or whoever linked to us) went away: stop, then follow. */
    (void)stop_all_term(self, s, r, rlen);
}

static void on_down(ca_actor *self, sup *s, const ca_ref *ref)
{
    if (!s->stopping || !ca_ref_eq(ref, &s->stop_ref))
        return;
    child *c = s->stopping;
    s->stopping = NULL;
    if (s->stop_timer_on) {
        ca_cancel_timer(self, s->stop_timer);
        s->stop_timer_on = false;
    }
    child_down(s, c);
    if (c->spec.restart == CA_TEMPORARY || s->strategy == CA_SIMPLE_ONE_FOR_ONE) {
        /* Stopped on purpose: simple and temporary children are forgotten,
         * unless a restart job is about to start them again. */
        bool restarting = false; /* s->cur: the job that began the stop */
        for (size_t i = 0; i < s->cur->nstart; i++)
            restarting |= s->cur->start[i] == c;
        if (!restarting)
            doom(s, c);
    }
    s->cur->istop++;
    step(self, s);
}

static void on_timeout(ca_actor *self, sup *s, unsigned long seq)
{
    if (!s->stopping || seq != s->stop_seq || s->killed)
        return;
    s->stop_timer_on = false;
    s->killed = true;
    say(self, s, CA_LOG_WARNING, "child %s did not stop in time; killing it",
        child_label(s->stopping));
    ca_kill(ca_actor_rt(self), ca_self(self), s->stopping->pid, "kill");
}

/* ---- Erlang's supervisor module ---- */

/* A child's module, as OTP names it: its behaviour's name, or for a
 * gen_server its callbacks' (OTP's callback module); NULL when that is
 * no atom. */
static const char *module_of(const child *c)
{
    const ca_behaviour *b = c->spec.behaviour;
    const ca_gen_server_spec *gs = b == &ca_gen_server_behaviour ? c->arg : NULL;
    const char *name = gs && gs->cb && gs->cb->name ? gs->cb->name : b ? b->name : NULL;
    return name && ca__name_valid(name) ? name : NULL;
}

static const char *type_name(const ca_child_spec *sp)
{
    return sp->type == CA_SUPERVISOR ? "supervisor" : "worker";
}

/* Its modules, as which_children lists them. */
static int put_modules(ei_x_buff *x, const child *c)
{
    const char *name = module_of(c);
    return name ? ca_fmt(x, "[~a]", name) : ca_fmt(x, "dynamic");
}

/* [{Id | undefined, Pid | restarting | undefined, Type, Modules}], the
 * last started first, as OTP lists them. */
static int gen_which(sup *s, ei_x_buff *x)
{
    bool simple = s->strategy == CA_SIMPLE_ONE_FOR_ONE;
    long n = (long)live_children(s);
    int rc = ei_x_new_with_version(x) || ei_x_encode_list_header(x, n) ? CA_ENOMEM : 0;
    for (child *c = s->tail; c && rc == 0; c = c->prev) {
        if (c->doomed)
            continue;
        rc = ei_x_encode_tuple_header(x, 4) ? CA_ENOMEM
             : simple                       ? ca_fmt(x, "undefined")
                                            : ca_fmt(x, "~a", c->spec.id);
        if (rc == 0)
            rc = !ca_pid_is_none(c->pid) ? ca_fmt(x, "~p", c->pid)
                                         : ca_fmt(x, c->pending ? "restarting" : "undefined");
        if (rc == 0)
            rc = ca_fmt(x, "~a", type_name(&c->spec));
        if (rc == 0)
            rc = put_modules(x, c);
    }
    if (rc == 0 && n && ei_x_encode_empty_list(x)) /* the tail */
        rc = CA_ENOMEM;
    return rc;
}

/* {ok, #{id, start, restart, significant, shutdown, type, modules}}, as
 * OTP's child_to_spec has it. A C child has no Erlang start function:
 * `start` names its behaviour (as `modules` does) with start_link and no
 * arguments. OTP finds a simple_one_for_one's children by pid and its
 * template by id, the other strategies' children by id only. */
static int gen_spec(sup *s, sup_req *r, ei_x_buff *x)
{
    static const char *const restart[] = {"permanent", "transient", "temporary"};
    child *c;
    if (s->tmpl)
        c = r->id ? (strcmp(r->id, s->tmpl->spec.id) == 0 ? s->tmpl : NULL)
                  : (hash_find(s, r->pid) ? s->tmpl : NULL);
    else
        c = r->id ? child_by_id(s, r->id) : NULL;
    if (!c || c->doomed)
        return CA_ENOENT;
    const ca_child_spec *sp = &c->spec;
    int64_t ms = shutdown_of(sp);
    char down[32]; /* brutal_kill, infinity or the milliseconds */
    int dl = 0;
    if (ms == CA_SHUTDOWN_BRUTAL || ms == CA_SHUTDOWN_INFINITY)
        ei_encode_atom(down, &dl, ms == CA_SHUTDOWN_BRUTAL ? "brutal_kill" : "infinity");
    else
        ei_encode_longlong(down, &dl, (long long)ms);
    const char *mod = module_of(c);
    ei_x_buff mods;
    if (ei_x_new(&mods))
        return CA_ENOMEM;
    int rc = put_modules(&mods, c);
    if (rc == 0)
        rc = ei_x_new_with_version(x) ? CA_ENOMEM : 0;
    if (rc == 0)
        rc = ca_fmt(x,
                    "{ok, #{id => ~a, start => {~a, start_link, []}, restart => ~a, "
                    "significant => false, shutdown => ~t, type => ~a, modules => ~t}}",
                    sp->id, mod ? mod : "undefined", restart[sp->restart], down, (size_t)dl,
                    type_name(sp), mods.buff, (size_t)mods.index);
    ei_x_free(&mods);
    return rc;
}

/* {error, Why} for what the request could not do, in OTP's words. */
static const char *gen_error(int rc, bool restarting)
{
    switch (rc) {
    case CA_ENOENT:
        return "not_found";
    case CA_ENOTSUP:
        return "simple_one_for_one";
    case CA_EBUSY:
        return restarting ? "restarting" : "running";
    default:
        return ca_errname(rc);
    }
}

static void reply_gen(const sup_req *r, int rc)
{
    const gen_call *g = r->gen;
    const ca_sup_counts *c = &r->counts;
    if (rc)
        ca_gen_replyf(g->self, &g->from, "{error, ~a}", gen_error(rc, g->restarting));
    else if (r->op == R_START || r->op == R_RESTART)
        ca_gen_replyf(g->self, &g->from, "{ok, ~p}", r->out);
    else if (r->op == R_WHICH || r->op == R_SPEC)
        ca_gen_reply(g->self, &g->from, g->which.buff, (size_t)g->which.index);
    else if (r->op == R_COUNT)
        ca_gen_replyf(g->self, &g->from,
                      "[{specs, ~u}, {active, ~u}, {supervisors, ~u}, {workers, ~u}]",
                      (unsigned long)c->specs, (unsigned long)c->active,
                      (unsigned long)c->supervisors, (unsigned long)c->workers);
    else
        ca_gen_replyf(g->self, &g->from, "ok");
}

static void answer_gen(sup_req *r, int rc)
{
    gen_call *g = r->gen;
    /* CA_ESRCH: the supervisor is going with the request; the caller's
     * monitor tells it so. */
    if (rc != CA_ESRCH)
        reply_gen(r, rc);
    if (g->which.buff)
        ei_x_free(&g->which);
    free((char *)r->id);
    free(g);
    free(r);
}

/* What the request names: an atom (an id) or a pid; 0, or not_found (as
 * OTP finds nothing for any other term). */
static int gen_target(const char *t, size_t tl, char *id, ca_pid *pid)
{
    if (ca_match_term(t, tl, "~p", pid) == 0 || ca_match_term(t, tl, "~a", id) == 0)
        return 0;
    return CA_ENOENT;
}

/* supervisor:Fun(Sup, ...) from Erlang: a request like the C API's, or
 * an answer at once. */
static void on_gen_call(ca_actor *self, sup *s, const ca_call_from *from, const char *req,
                        size_t len)
{
    char id[CA_MAXATOM] = "";
    const char *t;
    size_t tl;
    sup_req proto = {.pid = CA_PID_NONE};
    int rc = 0;
    bool simple = s->strategy == CA_SIMPLE_ONE_FOR_ONE;
    if (ca__is_atom(req, len, "which_children")) {
        proto.op = R_WHICH;
    } else if (ca__is_atom(req, len, "count_children")) {
        proto.op = R_COUNT;
    } else if (ca_match_term(req, len, "{terminate_child, ~t}", &t, &tl) == 0) {
        proto.op = R_TERMINATE;
        rc = gen_target(t, tl, id, &proto.pid);
        if (rc == 0 && simple && id[0])
            rc = CA_ENOTSUP; /* ids mean nothing there */
    } else if (ca_match_term(req, len, "{restart_child, ~t}", &t, &tl) == 0) {
        proto.op = R_RESTART;
        rc = simple ? CA_ENOTSUP : gen_target(t, tl, id, &proto.pid);
    } else if (ca_match_term(req, len, "{delete_child, ~t}", &t, &tl) == 0) {
        proto.op = R_DELETE;
        rc = simple ? CA_ENOTSUP : gen_target(t, tl, id, &proto.pid);
    } else if (ca_match_term(req, len, "{get_childspec, ~t}", &t, &tl) == 0) {
        proto.op = R_SPEC;
        rc = gen_target(t, tl, id, &proto.pid);
    } else if (ca_match_term(req, len, "{start_child, []}") == 0 && simple) {
        proto.op = R_START;
        proto.arg = s->tmpl->arg; /* the spec's own, as start_child(Sup, []) has it */
    } else {
        /* A child spec or extra arguments name Erlang code, which a C
         * supervisor cannot start; the rest is no supervisor call. */
        ca_gen_replyf(self, from, "{error, {not_supported, ~t}}", req, len);
        return;
    }
    if (rc) {
        ca_gen_replyf(self, from, "{error, ~a}", gen_error(rc, false));
        return;
    }
    sup_req *r = calloc(1, sizeof *r);
    gen_call *g = calloc(1, sizeof *g);
    char *idc = id[0] ? strdup(id) : NULL;
    job *j = r && g && (idc || !id[0]) ? job_new(J_REQ) : NULL;
    if (!j) {
        free(r);
        free(g);
        free(idc);
        ca_gen_replyf(self, from, "{error, enomem}");
        return;
    }
    *r = proto;
    r->id = idc;
    r->gen = g;
    g->self = self;
    g->from = *from;
    j->req = r;
    enqueue(s, j, false);
}

/* What sys:get_state shows of a supervisor: its flags and children. */
static int state_term(sup *s, ei_x_buff *x)
{
    static const char *const strategy[] = {"one_for_one", "one_for_all", "rest_for_one",
                                           "simple_one_for_one"};
    size_t n = live_children(s);
    return ca_fmt(x,
                  "#{strategy => ~a, intensity => ~i, period_ms => ~u, children => ~u, "
                  "restarts => ~u}",
                  strategy[s->strategy], (long)s->intensity, (unsigned long)s->period_ms,
                  (unsigned long)n, (unsigned long)s->restarts);
}

/* sys from Erlang: sys:terminate (and so gen_server:stop and
 * proc_lib:stop) stops the children in order and then the supervisor
 * with that reason, as OTP's does; get_state and get_status show its
 * flags and children. The rest is refused at once: a C supervisor has
 * no suspended mode, and no state to replace. */
static void on_system(ca_actor *self, sup *s, const ca_call_from *from, const char *req, size_t len)
{
    const char *r;
    size_t rl;
    bool get_state = ca__is_atom(req, len, "get_state");
    if (get_state || ca__is_atom(req, len, "get_status")) {
        ei_x_buff x = {0};
        int rc = ei_x_new_with_version(&x) ? CA_ENOMEM : state_term(s, &x);
        if (rc)
            ca_gen_replyf(self, from, "{error, ~a}", ca_errname(rc));
        else if (get_state)
            ca_gen_reply(self, from, x.buff, (size_t)x.index);
        else
            ca__sys_status_reply(self, from, "supervisor", "running", x.buff + 1,
                                 (size_t)x.index - 1);
        if (x.buff)
            ei_x_free(&x);
        return;
    }
    if (ca_match_term(req, len, "{terminate, ~t}", &r, &rl) != 0) {
        ca_gen_replyf(self, from, "{error, {not_supported, ~t}}", req, len);
        return;
    }
    /* ok as sys gives it, sent in this turn: before the supervisor goes */
    if (stop_all_term(self, s, r, rl))
        ca_gen_replyf(self, from, "{error, enomem}");
    else
        ca_gen_replyf(self, from, "ok");
}

static int sup_handle(ca_actor *self, void *state, ca_msg *m)
{
    sup *s = state;
    ca_pid from;
    ca_ref ref;
    const char *r;
    size_t rlen;
    unsigned long seq;
    uint64_t tag;
    ca_call_from call;

    if (ca_msg_type(m) == CA_MSG_PTR) {
        if (!ca_msg_ptr(m, &tag) || tag != SUP_REQ_TAG)
            return 0;
        sup_req *req = ca_msg_take_ptr(m);
        job *j = job_new(J_REQ);
        if (!j) {
            req_done(req, CA_ENOMEM);
            return 0;
        }
        j->req = req;
        enqueue(s, j, false);
    } else if (ca_gen_call_match(m, &call, &r, &rlen) == 0) {
        on_gen_call(self, s, &call, r, rlen);
    } else if (ca__sys_call_match(m, &call, &r, &rlen) == 0) {
        on_system(self, s, &call, r, rlen);
    } else if (ca_match(m, "{'EXIT', ~p, ~t}", &from, &r, &rlen) == 0) {
        on_exit_msg(self, s, from, r, rlen);
    } else if (ca_match(m, "{'EXIT', undefined, ~t}", &r, &rlen) == 0) {
        on_exit_msg(self, s, CA_PID_NONE, r, rlen); /* exit/2 from outside actors */
    } else if (ca_match(m, "{'DOWN', ~r, process, _, _}", &ref) == 0) {
        on_down(self, s, &ref);
    } else if (ca_match(m, "{'$sup_timeout', ~u}", &seq) == 0) {
        on_timeout(self, s, seq);
    }
    run_jobs(self, s);
    return 0;
}

/* ---- life cycle ---- */

/* What ca_sup_start passes: its own deep copy of the caller's spec. */
typedef struct spec_box {
    uint32_t magic;
    ca_sup_spec spec;
    ca_child_spec children[];
} spec_box;

static void box_free(spec_box *b)
{
    for (size_t i = 0; i < b->spec.nchildren; i++) {
        free((char *)b->children[i].id);
        free((char *)b->children[i].name);
    }
    free(b);
}

static spec_box *box_new(const ca_sup_spec *spec)
{
    spec_box *b = calloc(1, sizeof *b + spec->nchildren * sizeof b->children[0]);
    if (!b)
        return NULL;
    b->magic = SPEC_MAGIC;
    b->spec = *spec;
    b->spec.children = b->children;
    b->spec.nchildren = 0;
    for (size_t i = 0; i < spec->nchildren; i++) {
        ca_child_spec *c = &b->children[i];
        *c = spec->children[i];
        c->id = spec->children[i].id ? strdup(spec->children[i].id) : NULL;
        c->name = spec->children[i].name ? strdup(spec->children[i].name) : NULL;
        b->spec.nchildren++;
        if ((spec->children[i].id && !c->id) || (spec->children[i].name && !c->name)) {
            box_free(b);
            return NULL;
        }
    }
    return b;
}

static void sup_free(sup *s)
{
    while (s->head)
        child_free(s, s->head);
    if (s->tmpl) {
        free((char *)s->tmpl->spec.id);
        free((char *)s->tmpl->spec.name);
        free(s->tmpl);
    }
    free(s->buckets);
    free(s->stamps);
    free(s);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Ids must be unique: sorted, duplicates are neighbours (n log n, since a
 * spec may list 100,000 children). */
static int unique_ids(const ca_child_spec *cs, size_t n)
{
    const char **ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return 0;
    for (size_t i = 0; i < n; i++)
        ids[i] = cs[i].id;
    qsort(ids, n, sizeof *ids, cmp_id);
    int ok = 1;
    for (size_t i = 1; i < n && ok; i++)
        ok = strcmp(ids[i - 1], ids[i]) != 0;
    free(ids);
    return ok;
}

static int valid_spec(const ca_sup_spec *spec)
{
    if (!spec || (spec->nchildren && !spec->children) || spec->strategy > CA_SIMPLE_ONE_FOR_ONE ||
        (spec->strategy == CA_SIMPLE_ONE_FOR_ONE && spec->nchildren != 1))
        return 0;
    for (size_t i = 0; i < spec->nchildren; i++) {
        const ca_child_spec *cs = &spec->children[i];
        if (!cs->behaviour || !cs->behaviour->handle)
            return 0;
        if (spec->strategy != CA_SIMPLE_ONE_FOR_ONE && (!cs->id || !*cs->id))
            return 0;
    }
    return spec->strategy == CA_SIMPLE_ONE_FOR_ONE || unique_ids(spec->children, spec->nchildren);
}

static int fail_start(ca_actor *self, sup *s, child *c, int rc)
{
    /* Like OTP: stop what started, then exit with the reason. */
    ei_x_buff x;
    if (ei_x_new_with_version(&x) == 0) {
        if (ca_fmt(&x, "{shutdown, {failed_to_start_child, ~a, ~a}}", c->spec.id, ca_errname(rc)) ==
            0)
            stop_all(self, s, x.buff, (size_t)x.index);
        ei_x_free(&x);
    }
    return ca_sendf(self, ca_self(self), "'$sup_kick'");
}

static int sup_setup(ca_actor *self, const ca_sup_spec *spec, void **state)
{
    *state = NULL;
    if (!valid_spec(spec))
        return CA_EINVAL;
    sup *s = calloc(1, sizeof *s);
    if (!s)
        return CA_ENOMEM;
    *state = s;
    s->magic = SUP_MAGIC;
    s->strategy = spec->strategy;
    s->intensity = spec->intensity < 0 ? 1 : spec->intensity;
    s->period_ms = spec->period_ms ? spec->period_ms : 5000;
    s->flags = spec->flags;
    ca_pid me = ca_self(self);
    const char *name = atomic_load(&self->name); /* registered at spawn, before init */
    if (name)
        snprintf(s->label, sizeof s->label, "%s", name);
    else
        snprintf(s->label, sizeof s->label, "<%u.%u>", me.num, me.serial);
    ca_trap_exit(self, 1);
    if (spec->strategy == CA_SIMPLE_ONE_FOR_ONE) {
        s->tmpl = child_new(&spec->children[0], spec->children[0].arg);
        return s->tmpl ? 0 : CA_ENOMEM;
    }
    for (size_t i = 0; i < spec->nchildren; i++) {
        child *c = child_new(&spec->children[i], spec->children[i].arg);
        if (!c)
            return CA_ENOMEM;
        child_append(s, c);
    }
    for (child *c = s->head; c; c = c->next) {
        int rc = start_child(self, s, c);
        if (rc)
            return fail_start(self, s, c, rc);
    }
    return 0;
}

static int sup_init(ca_actor *self, void *arg, void **state)
{
    return sup_setup(self, arg, state);
}

/* The supervisor dies: a killed one could not stop its children in order,
 * so it kills whatever still runs rather than leave orphans; callers still
 * waiting get CA_ESRCH. */
static void sup_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    sup *s = state;
    (void)reason;
    (void)len;
    if (!s)
        return;
    if (s->magic == SPEC_MAGIC) {
        box_free(state); /* never initialised */
        return;
    }
    for (child *c = s->tail; c; c = c->prev)
        if (!ca_pid_is_none(c->pid))
            ca_kill(ca_actor_rt(self), ca_self(self), c->pid, "kill");
    if (s->cur && s->cur->req)
        req_done(s->cur->req, CA_ESRCH);
    if (s->cur)
        job_free(s->cur);
    while (s->jobs) {
        job *j = s->jobs;
        s->jobs = j->next;
        if (j->req)
            req_done(j->req, CA_ESRCH);
        job_free(j);
    }
    if (s->flags & CA_SUP_SHUTDOWN_RT)
        ca_rt_shutdown(ca_actor_rt(self), 1);
    sup_free(s);
}

const ca_behaviour ca_supervisor = {"supervisor", sup_init, sup_handle, sup_terminate};

/* ca_sup_start's behaviour: its arg is a spec_box to consume. */
static int owned_init(ca_actor *self, void *arg, void **state)
{
    spec_box *b = arg;
    int rc = sup_setup(self, &b->spec, state);
    box_free(b);
    return rc;
}

static const ca_behaviour owned_supervisor = {"supervisor", owned_init, sup_handle, sup_terminate};

int ca_sup_start(ca_rt *rt, const ca_sup_spec *spec, const char *name, ca_pid *pid)
{
    if (!rt || !valid_spec(spec))
        return CA_EINVAL;
    spec_box *b = box_new(spec);
    if (!b)
        return CA_ENOMEM;
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = name;
    int rc = ca_spawn(rt, &owned_supervisor, b, &o, pid);
    if (rc)
        box_free(b);
    return rc;
}

/* ---- calls ---- */

static int call(ca_rt *rt, ca_pid sup_pid, sup_req *r)
{
    if (!rt)
        return CA_EINVAL;
    if (ca__current_sched())
        return CA_EPERM; /* waiting here would block a scheduler loop */
    ca__waiter_init(&r->wait);
    int rc = ca_rt_send_ptr(rt, CA_PID_NONE, sup_pid, SUP_REQ_TAG, r, req_abandoned);
    if (rc)
        ca__waiter_done(&r->wait); /* not sent: nothing to wait for */
    ca__waiter_wait(&r->wait);
    return rc ? rc : r->rc;
}

/* The request, copied with what it points to, for a supervisor that
 * answers self by message. */
static int call_async(ca_actor *self, ca_pid sup_pid, const sup_req *proto, ca_ref *ref)
{
    if (!self)
        return CA_EINVAL;
    ca_rt *rt = ca_actor_rt(self);
    sup_req *r = calloc(1, sizeof *r);
    if (!r)
        return CA_ENOMEM;
    *r = *proto;
    r->rt = rt;
    r->reply_to = ca_self(self);
    r->sup = sup_pid;
    r->id = NULL;
    r->spec = NULL;
    ca_make_ref(rt, &r->tag);
    bool nomem = (proto->id && !(r->id = strdup(proto->id)));
    if (proto->spec) {
        r->spec_copy = *proto->spec;
        r->spec_copy.id = r->spec_copy.name = NULL;
        r->spec = &r->spec_copy;
        nomem |= proto->spec->id && !(r->spec_copy.id = strdup(proto->spec->id));
        nomem |= proto->spec->name && !(r->spec_copy.name = strdup(proto->spec->name));
    }
    ca_ref tag = r->tag; /* once sent, r may be answered and gone */
    int rc =
        nomem ? CA_ENOMEM : ca_rt_send_ptr(rt, r->reply_to, sup_pid, SUP_REQ_TAG, r, req_abandoned);
    if (rc) {
        req_free_async(r); /* not taken: still ours */
        return rc;
    }
    if (ref)
        *ref = tag;
    return 0;
}

int ca_sup_start_child_async(ca_actor *self, ca_pid sup, const ca_child_spec *spec, void *arg,
                             ca_ref *ref)
{
    sup_req r = {.op = R_START, .spec = spec, .arg = arg};
    return call_async(self, sup, &r, ref);
}

int ca_sup_terminate_child_async(ca_actor *self, ca_pid sup, const char *id, ca_pid pid,
                                 ca_ref *ref)
{
    sup_req r = {.op = R_TERMINATE, .id = id, .pid = pid};
    return call_async(self, sup, &r, ref);
}

int ca_sup_restart_child_async(ca_actor *self, ca_pid sup, const char *id, ca_ref *ref)
{
    sup_req r = {.op = R_RESTART, .id = id};
    return call_async(self, sup, &r, ref);
}

int ca_sup_delete_child_async(ca_actor *self, ca_pid sup, const char *id, ca_ref *ref)
{
    sup_req r = {.op = R_DELETE, .id = id};
    return call_async(self, sup, &r, ref);
}

int ca_sup_which_children_async(ca_actor *self, ca_pid sup, ca_ref *ref)
{
    sup_req r = {.op = R_WHICH};
    return call_async(self, sup, &r, ref);
}

int ca_sup_count_children_async(ca_actor *self, ca_pid sup, ca_ref *ref)
{
    sup_req r = {.op = R_COUNT};
    return call_async(self, sup, &r, ref);
}

int ca_sup_start_child(ca_rt *rt, ca_pid sup_pid, const ca_child_spec *spec, void *arg, ca_pid *pid)
{
    sup_req r = {.op = R_START, .spec = spec, .arg = arg};
    int rc = call(rt, sup_pid, &r);
    if (rc == 0 && pid)
        *pid = r.out;
    return rc;
}

int ca_sup_terminate_child(ca_rt *rt, ca_pid sup_pid, const char *id, ca_pid pid)
{
    sup_req r = {.op = R_TERMINATE, .id = id, .pid = pid};
    return call(rt, sup_pid, &r);
}

int ca_sup_restart_child(ca_rt *rt, ca_pid sup_pid, const char *id, ca_pid *pid)
{
    sup_req r = {.op = R_RESTART, .id = id};
    int rc = call(rt, sup_pid, &r);
    if (rc == 0 && pid)
        *pid = r.out;
    return rc;
}

int ca_sup_delete_child(ca_rt *rt, ca_pid sup_pid, const char *id)
{
    sup_req r = {.op = R_DELETE, .id = id};
    return call(rt, sup_pid, &r);
}

int ca_sup_which_children(ca_rt *rt, ca_pid sup_pid, ca_child_info **out, size_t *n)
{
    sup_req r = {.op = R_WHICH};
    if (!out || !n)
        return CA_EINVAL;
    int rc = call(rt, sup_pid, &r);
    if (rc == 0) {
        *out = r.infos;
        *n = r.ninfos;
    } else {
        free(r.infos);
    }
    return rc;
}

int ca_sup_count_children(ca_rt *rt, ca_pid sup_pid, ca_sup_counts *c)
{
    sup_req r = {.op = R_COUNT};
    if (!c)
        return CA_EINVAL;
    int rc = call(rt, sup_pid, &r);
    if (rc == 0)
        *c = r.counts;
    return rc;
}
