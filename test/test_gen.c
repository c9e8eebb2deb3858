/*
 * gen_server interop without a network: a C gen_server (callbacks in
 * OTP's shape) called by another C actor with ca_gen_call, casts, infos,
 * a callee that dies, a callee that never answers.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cactor.h"
#include "probe.h"

#define WAIT_MS 5000

static probe P;
static ca_rt *RT;

/* ---- the server: a counter ---- */

typedef struct counter {
    long n;
} counter;

static int c_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    *state = calloc(1, sizeof(counter));
    return *state ? 0 : CA_ENOMEM;
}

static int c_call(ca_actor *self, void *state, const ca_call_from *from, const char *req,
                  size_t len)
{
    counter *c = state;
    long k;
    if (ca_match_term(req, len, "{add, ~i}", &k) == 0) {
        c->n += k;
        return ca_gen_replyf(self, from, "{ok, ~i}", c->n);
    }
    if (ca_match_term(req, len, "die") == 0)
        return ca_exit(self, "{shutdown, asked}");
    if (ca_match_term(req, len, "ignore") == 0)
        return 0; /* never answered */
    return ca_gen_replyf(self, from, "{error, unknown}");
}

static int c_cast(ca_actor *self, void *state, const char *req, size_t len)
{
    counter *c = state;
    long k;
    (void)self;
    if (ca_match_term(req, len, "{add, ~i}", &k) == 0)
        c->n += k;
    return 0;
}

static int c_info(ca_actor *self, void *state, ca_msg *m)
{
    counter *c = state;
    (void)self;
    if (ca_match(m, "report") == 0)
        probe_say(&P, "server: n=%ld", c->n);
    return 0;
}

static void c_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    char txt[64];
    (void)self;
    ca_term_print(reason, len, txt, sizeof txt);
    probe_say(&P, "server: terminate %s", txt);
    free(state);
}

static int c_format_state(ca_actor *self, void *state, ei_x_buff *out)
{
    counter *c = state;
    (void)self;
    if (c->n == 666) /* a malformed term, {1, and nothing: refused */
        return ei_x_append_buf(out, "\x68\x02\x61\x01", 4) ? CA_ENOMEM : 0;
    return c->n < 0 ? CA_EIO : ca_fmt(out, "{counter, ~i}", c->n);
}

static const ca_gen_server COUNTER = {"counter", c_init,      c_call,        c_cast,
                                      c_info,    c_terminate, c_format_state};
static const ca_gen_server_spec COUNTER_SPEC = {&COUNTER, NULL};

/* ---- the client: one call at a time, reported to the probe ---- */

typedef struct client {
    ca_call call;
    int busy;
} client;

static int cl_init(ca_actor *self, void *arg, void **state)
{
    (void)self;
    (void)arg;
    *state = calloc(1, sizeof(client));
    return *state ? 0 : CA_ENOMEM;
}

/* t (no version byte) as the whole term with version byte that the call
 * functions take */
static void versioned(ei_x_buff *x, const char *t, size_t tl)
{
    ei_x_new_with_version(x);
    ca_fmt(x, "~t", t, tl);
}

/* A call started (or not: reported) with the request in x. */
static int started(client *cl, ei_x_buff *x, int rc)
{
    ei_x_free(x);
    cl->busy = rc == 0;
    if (rc)
        probe_say(&P, "client: call failed %s", ca_errname(rc));
    return 0;
}

static int cl_handle(ca_actor *self, void *state, ca_msg *m)
{
    client *cl = state;
    ca_pid to;
    ca_ref ref;
    const char *r;
    size_t rl;
    char txt[128], name[CA_MAXATOM], mod[CA_MAXATOM], fun[CA_MAXATOM];
    long timeout;
    ei_x_buff x;
    int rc;
    if (ca_match(m, "{call, ~p, ~t, ~i}", &to, &r, &rl, &timeout) == 0) {
        versioned(&x, r, rl);
        rc = ca_gen_call(self, to, x.buff, (size_t)x.index, (uint64_t)timeout, &cl->call);
        return started(cl, &x, rc);
    }
    if (ca_match(m, "{call_name, ~a, ~t}", name, &r, &rl) == 0) {
        versioned(&x, r, rl);
        rc = ca_gen_call_name(self, name, NULL, x.buff, (size_t)x.index, 1000, &cl->call);
        return started(cl, &x, rc);
    }
    if (ca_match(m, "{rpc, ~a, ~a, ~t}", mod, fun, &r, &rl) == 0) {
        versioned(&x, r, rl);
        rc = ca_rpc_call(self, NULL, mod, fun, x.buff, (size_t)x.index, 1000, &cl->call);
        return started(cl, &x, rc);
    }
    if (ca_match(m, "{rpc_cast, ~a, ~a, ~t}", mod, fun, &r, &rl) == 0) {
        versioned(&x, r, rl);
        rc = ca_rpc_cast(self, NULL, mod, fun, x.buff, (size_t)x.index);
        ei_x_free(&x);
        probe_say(&P, "client: cast %s", ca_errname(rc));
        return 0;
    }
    if (!cl->busy)
        return 0;
    if (ca_match(m, "{~r, ~t}", &ref, &r, &rl) == 0 && ca_ref_eq(&ref, &cl->call.ref)) {
        ca_term_print(r, rl, txt, sizeof txt);
        probe_say(&P, "client: reply %s", txt);
    } else if (ca_match(m, "{'DOWN', ~r, process, {~a, _}, ~t}", &ref, name, &r, &rl) == 0 &&
               ca_ref_eq(&ref, &cl->call.ref)) {
        ca_term_print(r, rl, txt, sizeof txt);
        probe_say(&P, "client: down %s %s", name, txt);
    } else if (ca_match(m, "{'DOWN', ~r, process, _, ~t}", &ref, &r, &rl) == 0 &&
               ca_ref_eq(&ref, &cl->call.ref)) {
        ca_term_print(r, rl, txt, sizeof txt);
        probe_say(&P, "client: down %s", txt);
    } else if (ca_match(m, "{'$call_timeout', ~r}", &ref) == 0 && ca_ref_eq(&ref, &cl->call.ref)) {
        probe_say(&P, "client: timeout");
    } else {
        return 0;
    }
    ca_gen_call_done(self, &cl->call);
    cl->busy = 0;
    return 0;
}

static void cl_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    (void)self;
    (void)reason;
    (void)len;
    free(state);
}

static const ca_behaviour CLIENT = {"client", cl_init, cl_handle, cl_terminate};

static void test_calls_casts_infos(void)
{
    ca_pid srv, cl;
    CU_ASSERT_FATAL(ca_spawn(RT, &ca_gen_server_behaviour, (void *)&COUNTER_SPEC, NULL, &srv) == 0);
    CU_ASSERT_FATAL(ca_spawn(RT, &CLIENT, NULL, NULL, &cl) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, {add, 5}, 1000}", srv);
    CU_ASSERT(probe_wait(&P, "client: reply {ok,5}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{'$gen_cast', {add, 10}}");
    ca_rt_sendf(RT, CA_PID_NONE, srv, "report");
    CU_ASSERT(probe_wait(&P, "server: n=15", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, what, 1000}", srv);
    CU_ASSERT(probe_wait(&P, "client: reply {error,unknown}", WAIT_MS));
    /* A call the server never answers: the timeout message. */
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, ignore, 100}", srv);
    CU_ASSERT(probe_wait(&P, "client: timeout", WAIT_MS));
    /* A server dying on the call: DOWN with its reason; then noproc. */
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, die, 1000}", srv);
    CU_ASSERT(probe_wait(&P, "client: down {shutdown,asked}", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "server: terminate {shutdown,asked}", WAIT_MS));
    for (int i = 0; i < 500 && ca_is_alive(RT, srv); i++)
        usleep(1000);
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, {add, 1}, 1000}", srv);
    CU_ASSERT(probe_wait(&P, "client: down noproc", WAIT_MS));
}

/* gen_server:call({Name, Node}) from C: by name here; nothing registered
 * under it: the DOWN names it, with noproc; a bad name is refused. */
static void test_call_by_name(void)
{
    ca_pid srv, cl;
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = "counter";
    CU_ASSERT_FATAL(ca_spawn(RT, &ca_gen_server_behaviour, (void *)&COUNTER_SPEC, &o, &srv) == 0);
    CU_ASSERT_FATAL(ca_spawn(RT, &CLIENT, NULL, NULL, &cl) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call_name, counter, {add, 7}}");
    CU_ASSERT(probe_wait(&P, "client: reply {ok,7}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call_name, nobody, {add, 1}}");
    CU_ASSERT(probe_wait(&P, "client: down nobody noproc", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call_name, counter, die}");
    CU_ASSERT(probe_wait(&P, "client: down counter {shutdown,asked}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call_name, '', x}");
    CU_ASSERT(probe_wait(&P, "client: call failed ebadname", WAIT_MS));
}

/* ---- a proxy: calls handed on with ca_gen_call_for ---- */

static ca_pid PROXY_TO;

static int px_call(ca_actor *self, void *state, const ca_call_from *from, const char *req,
                   size_t len)
{
    ca_call_from f;
    (void)state;
    if (ca_match_term(req, len, "defer") == 0) { /* not in an rpc function */
        probe_say(&P, "proxy: defer %s", ca_errname(ca_rpc_defer(self, CA_PID_NONE, 0, &f)));
        return ca_gen_replyf(self, from, "deferred");
    }
    if (ca_match_term(req, len, "to_dead") == 0) { /* PROXY_TO has exited */
        f = *from;
        f.pid = PROXY_TO;
        probe_say(&P, "proxy: reply to dead %s", ca_errname(ca_gen_replyf(self, &f, "late")));
        return ca_gen_replyf(self, from, "replied");
    }
    if (ca_match_term(req, len, "bad_from") == 0) {
        f = *from;
        f.tag_len = 0;
        probe_say(&P, "proxy: bad from %s", ca_errname(ca_gen_call_for(self, PROXY_TO, &f, "x")));
        f = *from;
        f.tag[0] = (char)131;
        probe_say(&P, "proxy: versioned tag %s",
                  ca_errname(ca_gen_call_for(self, PROXY_TO, &f, "x")));
        return ca_gen_replyf(self, from, "checked");
    }
    /* the counter answers the caller itself: the proxy never sees it */
    return ca_gen_call_for(self, PROXY_TO, from, "~t", req, len);
}

static const ca_gen_server PROXY = {.name = "proxy", .handle_call = px_call};
static const ca_gen_server_spec PROXY_SPEC = {&PROXY, NULL};

static void test_call_for(void)
{
    ca_pid srv, px, cl;
    CU_ASSERT_FATAL(ca_spawn(RT, &ca_gen_server_behaviour, (void *)&COUNTER_SPEC, NULL, &srv) == 0);
    PROXY_TO = srv;
    CU_ASSERT_FATAL(ca_spawn(RT, &ca_gen_server_behaviour, (void *)&PROXY_SPEC, NULL, &px) == 0);
    CU_ASSERT_FATAL(ca_spawn(RT, &CLIENT, NULL, NULL, &cl) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, {add, 3}, 1000}", px);
    CU_ASSERT(probe_wait(&P, "client: reply {ok,3}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, {add, 4}, 1000}", px);
    CU_ASSERT(probe_wait(&P, "client: reply {ok,7}", WAIT_MS));
    /* the counter dies on the handed-on call: the caller monitors the
     * proxy, which lives, so it sees the timeout (as in Erlang) */
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, die, 200}", px);
    CU_ASSERT(probe_wait(&P, "server: terminate {shutdown,asked}", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "client: timeout", WAIT_MS));
    /* a reply to a caller that is gone: no error, as gen_server:reply */
    for (int i = 0; i < 500 && ca_is_alive(RT, srv); i++)
        usleep(1000);
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, to_dead, 1000}", px);
    CU_ASSERT(probe_wait(&P, "proxy: reply to dead ok", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "client: reply replied", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, defer, 1000}", px);
    CU_ASSERT(probe_wait(&P, "proxy: defer eperm", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "client: reply deferred", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{call, ~p, bad_from, 1000}", px);
    CU_ASSERT(probe_wait(&P, "proxy: bad from einval", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "proxy: versioned tag einval", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "client: reply checked", WAIT_MS));
    ca_kill(RT, CA_PID_NONE, px, "kill");
}

/* A call from outside any actor's loop is a plain message: match it. */
static ca_ref RAW_REF;

static int raw_handle(ca_actor *self, void *state, ca_msg *m)
{
    ca_call_from from;
    const char *req;
    size_t len;
    static const ca_ref zero;
    (void)state;
    if (ca_gen_call_match(m, &from, &req, &len) == 0) {
        int hi = len == 4 && memcmp(req + 2, "hi", 2) == 0; /* the atom hi, bare */
        int ref = ca_ref_eq(&from.ref, &RAW_REF) ? 1 : ca_ref_eq(&from.ref, &zero) ? 0 : -1;
        probe_say(&P, "raw: call alias=%d tag_len=%zu hi=%d ref=%d", from.alias, from.tag_len, hi,
                  ref);
    } else {
        probe_say(&P, "raw: other");
    }
    (void)self;
    return 0;
}

static const ca_behaviour RAW = {"raw", NULL, raw_handle, NULL};

static void test_call_match(void)
{
    ca_pid p;
    CU_ASSERT_FATAL(ca_spawn(RT, &RAW, NULL, NULL, &p) == 0);
    ca_ref r;
    ca_make_ref(RT, &r);
    RAW_REF = r;
    ca_rt_sendf(RT, CA_PID_NONE, p, "{'$gen_call', {~p, [alias | ~r]}, hi}", p, &r);
    ca_rt_sendf(RT, CA_PID_NONE, p, "{'$gen_call', {~p, ~r}, hi}", p, &r);
    ca_rt_sendf(RT, CA_PID_NONE, p, "{'$gen_call', {~p, some_tag}, hi}", p); /* echoed as is */
    ca_rt_sendf(RT, CA_PID_NONE, p, "{'$gen_call', {~p, [alias | x]}, hi}", p);
    ca_rt_sendf(RT, CA_PID_NONE, p, "{'$gen_call', {~p, ~r}, hi, extra}", p, &r);
    ca_rt_sendf(RT, CA_PID_NONE, p, "{'$gen_cal', {~p, ~r}, hi}", p, &r);
    ca_rt_sendf(RT, CA_PID_NONE, p, "{'$gen_call', {~r, ~r}, hi}", &r, &r);
    ca_rt_sendf(RT, CA_PID_NONE, p, "{'$gen_call', not_a_from, hi}");
    /* One sender: the last message's line comes after the others. */
    CU_ASSERT(probe_wait_n(&P, "raw: other", 4, WAIT_MS));
    pthread_mutex_lock(&P.lock);
    int alias = 0, plain = 0, atom = 0, odd = 0;
    for (int i = 0; i < P.n; i++) {
        alias +=
            strncmp(P.lines[i], "raw: call alias=1", 17) == 0 && strstr(P.lines[i], "hi=1 ref=1");
        plain +=
            strncmp(P.lines[i], "raw: call alias=0", 17) == 0 && strstr(P.lines[i], "hi=1 ref=1");
        atom += strcmp(P.lines[i], "raw: call alias=0 tag_len=10 hi=1 ref=0") == 0;
        odd += strncmp(P.lines[i], "raw: call alias=0", 17) == 0 &&
               strstr(P.lines[i], "hi=1 ref=0") && strstr(P.lines[i], "tag_len=10") == NULL;
    }
    pthread_mutex_unlock(&P.lock);
    CU_ASSERT_EQUAL(alias, 1);
    CU_ASSERT_EQUAL(plain, 1);
    CU_ASSERT_EQUAL(atom, 1); /* some_tag: SMALL_ATOM_UTF8_EXT, 2 + 8 bytes */
    CU_ASSERT_EQUAL(odd, 1);  /* [alias | x]: a tag, but no reference in it */
}

/* Replies in every form reach the caller as {Tag, Reply}; a bad reply or
 * a tampered `from` is refused with its error, and nothing is sent. */
static int replier_handle(ca_actor *self, void *state, ca_msg *m)
{
    ca_call_from from;
    const char *req;
    size_t len;
    (void)state;
    if (ca_gen_call_match(m, &from, &req, &len) != 0) {
        char txt[2048];
        size_t n;
        const char *b = ca_msg_data(m, &n);
        ca_term_print(b, n, txt, sizeof txt);
        if (ca_match(m, "{{tag, 2}, {big, _}}") == 0)
            probe_say(&P, "got big, %zu bytes", n);
        else
            probe_say(&P, "got %s", txt);
        return 0;
    }
    static const char garbage[] = {(char)131, 104, 9, 1};
    char v[64] = {(char)131};
    memcpy(v + 1, req, len);
    int rc;
    if (ca_match_term(req, len, "as_is") == 0) {
        rc = ca_gen_replyf(self, &from, "~t", req, len); /* no version byte */
    } else if (ca_match_term(req, len, "versioned") == 0) {
        rc = ca_gen_replyf(self, &from, "~t", v, len + 1);
    } else if (ca_match_term(req, len, "big") == 0) {
        static char big[5000];
        rc = ca_gen_replyf(self, &from, "{big, ~b}", big, sizeof big); /* over the stack buffer */
    } else if (ca_match_term(req, len, "garbage") == 0) {
        int r1 = ca_gen_replyf(self, &from, "~t", garbage + 1, sizeof garbage - 1);
        int r2 = ca_gen_replyf(self, &from, "~t", garbage, sizeof garbage);
        int r3 = ca_gen_reply(self, &from, garbage, sizeof garbage);
        int r4 = ca_gen_replyf(self, &from, "~t", NULL, (size_t)0);
        probe_say(&P, "garbage %s %s %s %s", ca_errname(r1), ca_errname(r2), ca_errname(r3),
                  ca_errname(r4));
        return 0;
    } else {
        ca_call_from bad = from;
        bad.tag_len--; /* cut short */
        int r1 = ca_gen_replyf(self, &bad, "~t", req, len);
        bad = from;
        bad.tag[0] = (char)131;
        int r2 = ca_gen_reply(self, &bad, v, len + 1);
        bad.tag_len = 0;
        int r3 = ca_gen_replyf(self, &bad, "~t", req, len);
        probe_say(&P, "tampered %s %s %s", ca_errname(r1), ca_errname(r2), ca_errname(r3));
        return 0;
    }
    probe_say(&P, "replied %s", ca_errname(rc));
    return 0;
}

static const ca_behaviour REPLIER = {"replier", NULL, replier_handle, NULL};

static void test_reply_forms(void)
{
    ca_pid p;
    CU_ASSERT_FATAL(ca_spawn(RT, &REPLIER, NULL, NULL, &p) == 0);
    const char *reqs[] = {"as_is", "versioned", "big", "garbage", "tampered"};
    for (int i = 0; i < 5; i++)
        ca_rt_sendf(RT, CA_PID_NONE, p, "{'$gen_call', {~p, {tag, ~i}}, ~a}", p, (long)i, reqs[i]);
    CU_ASSERT(probe_wait(&P, "got {{tag,0},as_is}", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "got {{tag,1},versioned}", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "got big, 5024 bytes", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "garbage ebadterm ebadterm ebadterm einval", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "tampered einval einval einval", WAIT_MS));
    usleep(20000);
    CU_ASSERT_EQUAL(probe_count(&P, "replied ok"), 3);
    int got = 0; /* the refused ones sent nothing */
    pthread_mutex_lock(&P.lock);
    for (int i = 0; i < P.n; i++)
        got += strncmp(P.lines[i], "got ", 4) == 0;
    pthread_mutex_unlock(&P.lock);
    CU_ASSERT_EQUAL(got, 3);
}

/* Prints sys:get_status's answer {Tag, {status, Pid, {module, gen_server},
 * [PDict, SysState, Parent, Debug, Misc]}} with Pid and Parent checked
 * against the server's pid. */
static ca_pid STATUS_OF;

static int status_handle(ca_actor *self, void *state, ca_msg *m)
{
    char tag[CA_MAXATOM], sys[CA_MAXATOM], txt[512];
    ca_pid pid, parent;
    const char *misc;
    size_t ml;
    (void)self, (void)state;
    if (ca_match(m, "{~a, {status, ~p, {module, gen_server}, [[], ~a, ~p, [], ~t]}}", tag, &pid,
                 sys, &parent, &misc, &ml)) {
        probe_say(&P, "status: unexpected");
        return 0;
    }
    ca_term_print(misc, ml, txt, sizeof txt);
    /* the server's pid, printed, as Self */
    ei_x_buff x;
    char pt[128], *at;
    ei_x_new(&x);
    ca_fmt(&x, "~p", STATUS_OF);
    ca_term_print(x.buff, (size_t)x.index, pt, sizeof pt);
    ei_x_free(&x);
    if ((at = strstr(txt, pt)) != NULL) {
        memmove(at + 4, at + strlen(pt), strlen(at + strlen(pt)) + 1);
        memcpy(at, "Self", 4);
    }
    probe_say(&P, "status %s: %s %s %s %s", tag, ca_pid_eq(pid, STATUS_OF) ? "pid" : "other", sys,
              ca_pid_eq(parent, STATUS_OF) ? "self" : "other", txt);
    return 0;
}

static const ca_behaviour STATUS = {"status", NULL, status_handle, NULL};

/* Waits for `line` and reports whether it came after `before`. */
static int after(const char *line, const char *before)
{
    return probe_wait(&P, line, WAIT_MS) && probe_index(&P, before) >= 0 &&
           probe_index(&P, line) > probe_index(&P, before);
}

/* sys's messages to a C gen_server: get_state and get_status through
 * format_state (or refused without it), suspend and resume (what came
 * meanwhile handled in order on resume, before what came after), the
 * rest refused with their request named, at once; {terminate, Reason}
 * stops it with Reason, while suspended too. */
static void test_sys_messages(void)
{
    static const ca_gen_server PLAIN = {.name = "plain", .handle_call = c_call};
    static const ca_gen_server_spec PLAIN_SPEC = {&PLAIN, NULL};
    ca_pid srv, plain, r, st;
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = "sys_counter";
    CU_ASSERT_FATAL(ca_spawn(RT, &ca_gen_server_behaviour, (void *)&COUNTER_SPEC, &o, &srv) == 0);
    CU_ASSERT_FATAL(ca_spawn(RT, &ca_gen_server_behaviour, (void *)&PLAIN_SPEC, NULL, &plain) == 0);
    CU_ASSERT_FATAL(ca_spawn(RT, &REPLIER, NULL, NULL, &r) == 0);
    CU_ASSERT_FATAL(ca_spawn(RT, &STATUS, NULL, NULL, &st) == 0);
    STATUS_OF = srv;
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, sys1}, get_state}", r);
    CU_ASSERT(probe_wait(&P, "got {sys1,{counter,0}}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, plain, "{system, {~p, sys2}, get_state}", r);
    CU_ASSERT(probe_wait(&P, "got {sys2,{error,{not_supported,get_state}}}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, st1}, get_status}", st);
    CU_ASSERT(probe_wait(&P,
                         "status st1: pid running self [{header,\"Status for generic server "
                         "sys_counter\"},{data,[{\"Status\",running},{\"Parent\",Self},"
                         "{\"Logged events\",[]}]},{data,[{\"State\",{counter,0}}]}]",
                         WAIT_MS));
    /* no format_state: no state, the rest as before; unnamed: the behaviour's name */
    STATUS_OF = plain;
    ca_rt_sendf(RT, CA_PID_NONE, plain, "{system, {~p, st0}, get_status}", st);
    CU_ASSERT(probe_wait(&P,
                         "status st0: pid running self [{header,\"Status for generic server "
                         "plain\"},{data,[{\"Status\",running},{\"Parent\",Self},"
                         "{\"Logged events\",[]}]}]",
                         WAIT_MS));

    /* suspended: sys still answers, nothing else is handled */
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, s1}, suspend}", r);
    CU_ASSERT(probe_wait(&P, "got {s1,ok}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{'$gen_cast', {add, 5}}");
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{'$gen_call', {~p, c1}, {add, 1}}", r);
    ca_rt_sendf(RT, CA_PID_NONE, srv, "report");
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, s2}, get_state}", r);
    CU_ASSERT(probe_wait(&P, "got {s2,{counter,0}}", WAIT_MS));
    STATUS_OF = srv;
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, st2}, get_status}", st);
    CU_ASSERT(probe_wait(&P,
                         "status st2: pid suspended self [{header,\"Status for generic server "
                         "sys_counter\"},{data,[{\"Status\",suspended},{\"Parent\",Self},"
                         "{\"Logged events\",[]}]},{data,[{\"State\",{counter,0}}]}]",
                         WAIT_MS));
    usleep(20000);
    CU_ASSERT_EQUAL(probe_count(&P, "got {c1,{ok,6}}"), 0);
    CU_ASSERT_EQUAL(probe_count(&P, "server: n=6"), 0);
    /* resumed: the held three in order, then what came after the resume */
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, s3}, resume}", r);
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{'$gen_cast', {add, 10}}");
    ca_rt_sendf(RT, CA_PID_NONE, srv, "report");
    CU_ASSERT(after("got {c1,{ok,6}}", "got {s3,ok}"));
    /* (the report comes from the server itself: ordered with its own
     * lines only; {ok, 6} already says the cast came first) */
    CU_ASSERT(probe_wait(&P, "server: n=6", WAIT_MS));
    CU_ASSERT(after("server: n=16", "server: n=6"));

    /* format_state failing, or giving a malformed term */
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{'$gen_cast', {add, -17}}");
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, f1}, get_state}", r);
    CU_ASSERT(probe_wait(&P, "got {f1,{error,{callback_failed,{format_state,eio}}}}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{'$gen_cast', {add, 667}}");
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, f2}, get_state}", r);
    CU_ASSERT(
        probe_wait(&P, "got {f2,{error,{callback_failed,{format_state,ebadterm}}}}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, f3}, {replace_state, fn}}", r);
    CU_ASSERT(probe_wait(&P, "got {f3,{error,{not_supported,{replace_state,fn}}}}", WAIT_MS));

    /* stopped while suspended: what it held goes with it (ASan: no leak) */
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, s4}, suspend}", r);
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{'$gen_call', {~p, c2}, {add, 1}}", r);
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, sys3}, {terminate, {shutdown, stopped}}}", r);
    CU_ASSERT(probe_wait(&P, "got {sys3,ok}", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "server: terminate {shutdown,stopped}", WAIT_MS));
    for (int i = 0; i < 500 && ca_is_alive(RT, srv); i++)
        usleep(1000);
    CU_ASSERT(!ca_is_alive(RT, srv));
    CU_ASSERT_EQUAL(probe_count(&P, "got {c2,{ok,667}}"), 0);
    /* a held message that stops the server ends the replay; the rest go
     * with it (ASan: no leak), unhandled */
    int asked = probe_count(&P, "server: terminate {shutdown,asked}");
    CU_ASSERT_FATAL(ca_spawn(RT, &ca_gen_server_behaviour, (void *)&COUNTER_SPEC, NULL, &srv) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, s5}, suspend}", r);
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{'$gen_call', {~p, c3}, die}", r);
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{'$gen_call', {~p, c4}, {add, 1}}", r);
    ca_rt_sendf(RT, CA_PID_NONE, srv, "{system, {~p, s6}, resume}", r);
    CU_ASSERT(probe_wait_n(&P, "server: terminate {shutdown,asked}", asked + 1, WAIT_MS));
    for (int i = 0; i < 500 && ca_is_alive(RT, srv); i++)
        usleep(1000);
    CU_ASSERT(!ca_is_alive(RT, srv));
    CU_ASSERT_EQUAL(probe_count(&P, "got {c4,{ok,1}}"), 0);
    ca_kill(RT, CA_PID_NONE, plain, "kill");
    ca_kill(RT, CA_PID_NONE, st, "kill");
}

/* ---- ca_rt_call: calls from a thread of the program's own ---- */

/* Request `fmt` to `to` (or `name`) from this thread; the reply printed
 * into out, or the error's name. */
static int outside(ca_pid to, const char *name, const char *fmt, uint64_t ms, char *out, size_t cap)
{
    ei_x_buff x;
    char *rep = NULL;
    size_t rl = 0;
    ei_x_new_with_version(&x);
    ca_fmt(&x, fmt);
    int rc = name ? ca_rt_call_name(RT, name, NULL, x.buff, (size_t)x.index, ms, &rep, &rl)
                  : ca_rt_call(RT, to, x.buff, (size_t)x.index, ms, &rep, &rl);
    ei_x_free(&x);
    if (rc == 0)
        ca_term_print(rep, rl, out, cap);
    else
        snprintf(out, cap, "%s", ca_errname(rc));
    free(rep);
    return rc;
}

static int inside_handle(ca_actor *self, void *state, ca_msg *m)
{
    static const char req[] = {(char)131, 106}; /* [] */
    char *rep;
    size_t rl;
    (void)state, (void)m;
    probe_say(&P, "inside: %s",
              ca_errname(ca_rt_call(ca_actor_rt(self), ca_self(self), req, 2, 10, &rep, &rl)));
    return 0;
}

static const ca_behaviour INSIDE = {"inside", NULL, inside_handle, NULL};

static void test_calls_from_outside(void)
{
    ca_pid srv, in;
    char out[64];
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = "counter2";
    CU_ASSERT_FATAL(ca_spawn(RT, &ca_gen_server_behaviour, (void *)&COUNTER_SPEC, &o, &srv) == 0);
    CU_ASSERT_EQUAL(outside(srv, NULL, "{add, 5}", 1000, out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "{ok,5}");
    CU_ASSERT_EQUAL(outside(srv, "counter2", "{add, 1}", 1000, out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "{ok,6}");
    /* never answered: the timeout, not before it */
    uint64_t t0 = uv_hrtime();
    CU_ASSERT_EQUAL(outside(srv, NULL, "ignore", 100, out, sizeof out), CA_ETIMEDOUT);
    CU_ASSERT(uv_hrtime() - t0 >= 100 * 1000000ull);
    CU_ASSERT_EQUAL(outside(srv, "nobody", "{add, 1}", 1000, out, sizeof out), CA_ESRCH);
    CU_ASSERT_EQUAL(outside(srv, NULL, "die", 1000, out, sizeof out), CA_ESRCH);
    CU_ASSERT(probe_wait(&P, "server: terminate {shutdown,asked}", WAIT_MS));
    CU_ASSERT_EQUAL(outside(srv, NULL, "{add, 1}", 1000, out, sizeof out), CA_ESRCH);
    char *rep;
    size_t rl;
    CU_ASSERT_EQUAL(ca_rt_call(RT, srv, "bad", 3, 1000, &rep, &rl), CA_EBADTERM);
    CU_ASSERT_EQUAL(ca_rt_call(NULL, srv, "bad", 3, 1000, &rep, &rl), CA_EINVAL);
    /* an actor waiting would block its scheduler */
    CU_ASSERT_FATAL(ca_spawn(RT, &INSIDE, NULL, NULL, &in) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, in, "go");
    CU_ASSERT(probe_wait(&P, "inside: eperm", WAIT_MS));
}

/* ---- ca_rpc_call, ca_rt_rpc_call: against a rex that says what it got ---- */

static int rex_call(ca_actor *self, void *state, const ca_call_from *from, const char *req,
                    size_t len)
{
    char mod[CA_MAXATOM], fun[CA_MAXATOM];
    const char *args;
    size_t al;
    (void)state;
    if (ca_match_term(req, len, "{call, ~a, ~a, ~t, user}", mod, fun, &args, &al) == 0)
        return ca_gen_replyf(self, from, "{ran, ~a, ~a, ~t}", mod, fun, args, al);
    return ca_gen_replyf(self, from, "{unexpected, ~t}", req, len);
}

static int rex_cast(ca_actor *self, void *state, const char *req, size_t len)
{
    char txt[128];
    (void)self, (void)state;
    ca_term_print(req, len, txt, sizeof txt);
    probe_say(&P, "rex: cast %s", txt);
    return 0;
}

static const ca_gen_server REX = {.name = "rex", .handle_call = rex_call, .handle_cast = rex_cast};
static const ca_gen_server_spec REX_SPEC = {&REX, NULL};

/* M:F(Args) through rex from this thread: the result printed into out,
 * or the error's name. */
static int rpc_outside(const char *mod, const char *fun, const char *args, char *out, size_t cap)
{
    ei_x_buff x;
    char *res = NULL;
    size_t rl = 0;
    ei_x_new_with_version(&x);
    ca_fmt(&x, args);
    int rc = ca_rt_rpc_call(RT, NULL, mod, fun, x.buff, (size_t)x.index, 1000, &res, &rl);
    ei_x_free(&x);
    if (rc == 0)
        ca_term_print(res, rl, out, cap);
    else
        snprintf(out, cap, "%s", ca_errname(rc));
    free(res);
    return rc;
}

static void test_rpc_calls(void)
{
    char out[128], *res;
    size_t rl;
    /* no rex here yet: at once, not at the timeout */
    uint64_t t0 = uv_hrtime();
    CU_ASSERT_EQUAL(rpc_outside("lists", "reverse", "[1, 2]", out, sizeof out), CA_ESRCH);
    CU_ASSERT(uv_hrtime() - t0 < 500 * 1000000ull);
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = "rex";
    ca_pid rex, cl;
    CU_ASSERT_FATAL(ca_spawn(RT, &ca_gen_server_behaviour, (void *)&REX_SPEC, &o, &rex) == 0);
    CU_ASSERT_EQUAL(rpc_outside("lists", "reverse", "[1, {a, <<\"b\">>}]", out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "{ran,lists,reverse,[1,{a,<<\"b\">>}]}");
    CU_ASSERT_EQUAL(rpc_outside("erlang", "node", "[]", out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "{ran,erlang,node,[]}");
    /* a list of bytes travels as a string: still a list */
    CU_ASSERT_EQUAL(rpc_outside("m", "f", "\"abc\"", out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "{ran,m,f,\"abc\"}");
    CU_ASSERT_EQUAL(rpc_outside("caf\xc3\xa9", "f", "[]", out, sizeof out), 0);
    /* bad input: a clear error, nothing sent */
    CU_ASSERT_EQUAL(rpc_outside("m", "f", "{1, 2}", out, sizeof out), CA_EINVAL);
    CU_ASSERT_EQUAL(rpc_outside("m", "f", "atom", out, sizeof out), CA_EINVAL);
    CU_ASSERT_EQUAL(rpc_outside("", "f", "[]", out, sizeof out), CA_EBADNAME);
    CU_ASSERT_EQUAL(rpc_outside("m", "\xff", "[]", out, sizeof out), CA_EBADNAME);
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CU_ASSERT_EQUAL(rpc_outside(big, "f", "[]", out, sizeof out), CA_EBADNAME);
    CU_ASSERT_EQUAL(ca_rt_rpc_call(RT, NULL, "m", "f", "\x83\x6c\0\0", 4, 1000, &res, &rl),
                    CA_EBADTERM);
    CU_ASSERT_EQUAL(ca_rt_rpc_call(RT, NULL, NULL, "f", "\x83\x6a", 2, 1000, &res, &rl),
                    CA_EBADNAME);
    CU_ASSERT_EQUAL(ca_rt_rpc_call(NULL, NULL, "m", "f", "\x83\x6a", 2, 1000, &res, &rl),
                    CA_EINVAL);
    CU_ASSERT_EQUAL(ca_rt_rpc_call(RT, "", "m", "f", "\x83\x6a", 2, 1000, &res, &rl), CA_EBADNAME);
    /* another node, and this runtime has no distribution */
    CU_ASSERT_EQUAL(ca_rt_rpc_call(RT, "n@host", "m", "f", "\x83\x6a", 2, 1000, &res, &rl),
                    CA_ENOTCONN);
    /* from an actor, without blocking: the reply as {Ref, Result} */
    CU_ASSERT_FATAL(ca_spawn(RT, &CLIENT, NULL, NULL, &cl) == 0);
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{rpc, lists, seq, [1, 3]}");
    CU_ASSERT(probe_wait(&P, "client: reply {ran,lists,seq,[1,3]}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{rpc, lists, seq, nolist}");
    CU_ASSERT(probe_wait(&P, "client: call failed einval", WAIT_MS));
    /* rpc:cast: the cast rex gets; nothing comes back */
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{rpc_cast, io, format, [\"hello\", [1]]}");
    CU_ASSERT(probe_wait(&P, "client: cast ok", WAIT_MS));
    CU_ASSERT(probe_wait(&P, "rex: cast {cast,io,format,[\"hello\",[1]],user}", WAIT_MS));
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{rpc_cast, io, format, bad}");
    CU_ASSERT(probe_wait(&P, "client: cast einval", WAIT_MS));
    /* and from this thread */
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ca_fmt(&x, "[from_thread]");
    CU_ASSERT_EQUAL(ca_rt_rpc_cast(RT, NULL, "m", "f", x.buff, (size_t)x.index), 0);
    CU_ASSERT(probe_wait(&P, "rex: cast {cast,m,f,[from_thread],user}", WAIT_MS));
    CU_ASSERT_EQUAL(ca_rt_rpc_cast(RT, "n@host", "m", "f", x.buff, (size_t)x.index), CA_ENOTCONN);
    CU_ASSERT_EQUAL(ca_rt_rpc_cast(RT, NULL, "m", "f", "\x83\x64\x00\x01x", 5), CA_EINVAL);
    CU_ASSERT_EQUAL(ca_rt_rpc_cast(NULL, NULL, "m", "f", x.buff, (size_t)x.index), CA_EINVAL);
    ca_kill(RT, CA_PID_NONE, rex, "kill");
    for (int i = 0; i < 500 && ca_is_alive(RT, rex); i++)
        usleep(1000);
    ca_rt_sendf(RT, CA_PID_NONE, cl, "{rpc_cast, m, f, []}");
    CU_ASSERT(probe_wait(&P, "client: cast enoent", WAIT_MS));
    CU_ASSERT_EQUAL(ca_rt_rpc_cast(RT, NULL, "m", "f", x.buff, (size_t)x.index), CA_ENOENT);
    ei_x_free(&x);
    ca_kill(RT, CA_PID_NONE, cl, "kill");
}

static int setup(void)
{
    probe_init(&P);
    ca_rt_opts o;
    ca_rt_opts_init(&o);
    o.threads = 2;
    return ca_rt_new(&o, &RT) ? -1 : 0;
}

static int teardown(void)
{
    ca_rt_free(RT);
    probe_free(&P);
    return 0;
}

static void add(void)
{
    CU_pSuite s = CU_add_suite("gen", setup, teardown);
    ADD_TEST(s, test_calls_casts_infos);
    ADD_TEST(s, test_call_by_name);
    ADD_TEST(s, test_call_for);
    ADD_TEST(s, test_call_match);
    ADD_TEST(s, test_reply_forms);
    ADD_TEST(s, test_sys_messages);
    ADD_TEST(s, test_calls_from_outside);
    ADD_TEST(s, test_rpc_calls);
}

int main(void)
{
    return run_suites(add);
}
