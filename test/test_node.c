/*
 * The distribution layer, C node to C node: several runtimes in one
 * process, each a node, talking over loopback through a private epmd that
 * this suite starts (and stops by pid). Plus raw clients that speak the
 * handshake with the codec and then misbehave.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/rand.h>

#include "bytes.h"
#include "cactor.h"
#include "dist.h"
#include "epmd.h"
#include "probe.h"

static probe P;    /* what actors report */
static probe LOGS; /* log lines of every runtime */
static probe WARN; /* those at CA_LOG_WARNING or worse */
static test_epmd EPMD;

typedef struct tnode {
    ca_rt *rt;
    ca_node *node;
} tnode;

static void log_fn(void *ctx, ca_log_level level, const char *line)
{
    (void)ctx;
    probe_say(&LOGS, "%s", line);
    if (level <= CA_LOG_WARNING)
        probe_say(&WARN, "%s", line);
}

/* ---- nodes ---- */

/* Start a runtime with 2 schedulers and a node on it with `no` (the epmd
 * port is filled in). */
static int node_start(tnode *t, ca_node_opts *no)
{
    ca_rt_opts ro;
    ca_rt_opts_init(&ro);
    ro.threads = 2;
    ro.log = log_fn;
    ro.log_level = CA_LOG_INFO;
    if (ca_rt_new(&ro, &t->rt))
        return -1;
    no->epmd_port = EPMD.port;
    int rc = ca_node_start(t->rt, no, &t->node);
    if (rc) {
        ca_rt_free(t->rt);
        return rc;
    }
    return 0;
}

static int node_up_tick(tnode *t, const char *name, const char *cookie, size_t max_queue,
                        unsigned ticktime)
{
    ca_node_opts no;
    ca_node_opts_init(&no);
    no.name = name;
    no.cookie = cookie;
    no.max_queue = max_queue;
    no.net_ticktime = ticktime;
    return node_start(t, &no);
}

static int node_up(tnode *t, const char *name, const char *cookie, size_t max_queue)
{
    return node_up_tick(t, name, cookie, max_queue, 0);
}

static void node_down(tnode *t)
{
    if (!t->rt)
        return;
    ca_node_stop(t->node);
    ca_rt_free(t->rt);
    ca_node_free(t->node);
    t->rt = NULL;
}

/* ---- the test actor ----
 *
 * Commands (from the test thread): {send_reg, Name, Node, Msg},
 * {send, Pid, Msg}, {link, Pid}, {monitor, Pid}, {exit, Reason},
 * {monitor_nodes}, {flood, Pid, N}. Messages {hello, X} are answered
 * {world, X} to the sender; {q, I, N} are counted silently, the last
 * (I = N) reported as "<name>: q N". Everything else is reported as
 * "<name>: <term>", EXIT and DOWN as "<name>: exit|down <reason>".
 */
static int t_init(ca_actor *self, void *arg, void **state)
{
    ca_trap_exit(self, 1);
    *state = arg;
    return 0;
}

static void say_term(const char *who, const char *what, const char *t, size_t len)
{
    char buf[256];
    ca_term_print(t, len, buf, sizeof buf);
    probe_say(&P, "%s: %s%s", who, what, buf);
}

static void flood(ca_actor *self, const char *who, ca_pid to, unsigned long n)
{
    static char big[100 * 1024 + 16];
    ei_x_buff x;
    ei_x_new_with_version(&x);
    memset(big, 'x', sizeof big);
    ca_fmt(&x, "~b", big, (size_t)(100 * 1024));
    for (unsigned long i = 0; i < n; i++) {
        int rc = ca_send(self, to, x.buff, (size_t)x.index);
        if (rc) {
            probe_say(&P, "%s: flood %s", who, ca_errname(rc));
            break;
        }
    }
    ei_x_free(&x);
}

static ca_ref LAST_MON; /* tester threads: one command at a time */
static ca_call LAST_CALL;

static int t_handle(ca_actor *self, void *state, ca_msg *m)
{
    const char *who = state;
    ca_ref ref;
    char name[CA_MAXATOM], node[CA_MAXATOM];
    const char *t, *r;
    size_t tl, rl;
    ca_pid pid;
    unsigned long n, i;
    if (ca_match(m, "{send_reg, ~a, ~a, ~t}", name, node, &t, &tl) == 0) {
        ei_x_buff x;
        ei_x_new_with_version(&x);
        ca_fmt(&x, "~t", t, tl);
        int rc = ca_send_reg(self, name, node, x.buff, (size_t)x.index);
        ei_x_free(&x);
        if (rc)
            probe_say(&P, "%s: send_reg %s", who, ca_errname(rc));
    } else if (ca_match(m, "{send, ~p, ~t}", &pid, &t, &tl) == 0) {
        ca_sendf(self, pid, "~t", t, tl);
    } else if (ca_match(m, "{link, ~p}", &pid) == 0) {
        ca_link(self, pid);
    } else if (ca_match(m, "{monitor, ~p}", &pid) == 0) {
        ca_monitor(self, pid, NULL);
    } else if (ca_match(m, "{monitor_name, ~a, ~a}", name, node) == 0) {
        int rc = ca_monitor_name(self, name, node, &LAST_MON);
        if (rc)
            probe_say(&P, "%s: monitor_name %s", who, ca_errname(rc));
    } else if (ca_match(m, "demonitor_last") == 0) {
        probe_say(&P, "%s: demonitor %s", who, ca_errname(ca_demonitor(self, &LAST_MON)));
    } else if (ca_match(m, "{call_name, ~a, ~a, ~t}", name, node, &t, &tl) == 0) {
        ei_x_buff x;
        ei_x_new_with_version(&x);
        ca_fmt(&x, "~t", t, tl);
        int rc = ca_gen_call_name(self, name, node, x.buff, (size_t)x.index, 5000, &LAST_CALL);
        ei_x_free(&x);
        if (rc)
            probe_say(&P, "%s: call_name %s", who, ca_errname(rc));
    } else if (ca_match(m, "{~r, ~t}", &ref, &t, &tl) == 0 && ca_ref_eq(&ref, &LAST_CALL.ref)) {
        ca_gen_call_done(self, &LAST_CALL);
        say_term(who, "reply ", t, tl);
    } else if (ca_match(m, "{'DOWN', _, process, {~a, ~a}, ~t}", name, node, &r, &rl) == 0) {
        char what[2 * CA_MAXATOM + 16];
        snprintf(what, sizeof what, "down of %s at %s: ", name, node);
        say_term(who, what, r, rl);
    } else if (ca_match(m, "{exit, ~t}", &t, &tl) == 0) {
        ca_exit(self, "~t", t, tl);
    } else if (ca_match(m, "{monitor_nodes}") == 0) {
        ca_monitor_node(self, NULL, 1);
    } else if (ca_match(m, "{flood, ~p, ~u}", &pid, &n) == 0) {
        flood(self, who, pid, n);
    } else if (ca_match(m, "{q, ~u, ~u}", &i, &n) == 0) {
        if (i == n)
            probe_say(&P, "%s: q %lu", who, n);
    } else if (ca_match(m, "{hello, ~t}", &t, &tl) == 0) {
        ca_sendf(self, ca_msg_from(m), "{world, ~t}", t, tl);
    } else if (ca_match(m, "{'EXIT', _, ~t}", &r, &rl) == 0) {
        say_term(who, "exit ", r, rl);
    } else if (ca_match(m, "{'DOWN', _, process, _, ~t}", &r, &rl) == 0) {
        say_term(who, "down ", r, rl);
    } else if ((t = ca_msg_data(m, &tl)) != NULL) {
        say_term(who, "", t, tl);
    }
    return 0;
}

static const ca_behaviour tester = {"tester", t_init, t_handle, NULL};

static ca_pid spawn_tester(tnode *t, const char *name)
{
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = name;
    ca_pid pid = CA_PID_NONE;
    CU_ASSERT_EQUAL(ca_spawn(t->rt, &tester, (void *)name, &o, &pid), 0);
    return pid;
}

static void cmd(tnode *t, ca_pid to, const char *fmt, ...)
{
    ei_x_buff x;
    va_list ap;
    ei_x_new_with_version(&x);
    va_start(ap, fmt);
    CU_ASSERT_EQUAL(ca_vfmt(&x, fmt, ap), 0);
    va_end(ap);
    CU_ASSERT_EQUAL(ca_rt_send(t->rt, CA_PID_NONE, to, x.buff, (size_t)x.index), 0);
    ei_x_free(&x);
}

/* ---- fixtures: nodes a and b, shared by the tests ---- */

static tnode A, B;
static ca_pid a1, b1;
#define NA "ta@127.0.0.1"
#define NB "tb@127.0.0.1"

static int setup(void)
{
    probe_init(&P);
    probe_init(&LOGS);
    probe_init(&WARN);
    if (test_epmd_start(&EPMD))
        return -1;
    if (node_up(&A, NA, "c00kie", 0) || node_up(&B, NB, "c00kie", 2u << 20))
        return -1;
    return 0;
}

static int teardown(void)
{
    node_down(&A);
    node_down(&B);
    test_epmd_stop(&EPMD);
    probe_free(&P);
    probe_free(&LOGS);
    probe_free(&WARN);
    return 0;
}

/* ---- tests ---- */

static void test_start_errors(void)
{
    tnode t = {0};
    ca_node *n;
    ca_rt_opts ro;
    ca_rt_opts_init(&ro);
    ro.threads = 1;
    ro.log = log_fn;
    CU_ASSERT_EQUAL(ca_rt_new(&ro, &t.rt), 0);
    ca_node_opts no;
    ca_node_opts_init(&no);
    no.cookie = "x";
    no.epmd_port = EPMD.port;
    no.name = "@host";
    CU_ASSERT_EQUAL(ca_node_start(t.rt, &no, &n), CA_EBADNAME);
    no.name = NA; /* taken in EPMD */
    CU_ASSERT_EQUAL(ca_node_start(t.rt, &no, &n), CA_EEXIST);
    no.name = "tz@127.0.0.1";
    no.cookie = NULL;
    setenv("HOME", "/nonexistent/cactor-test", 1);
    CU_ASSERT_EQUAL(ca_node_start(t.rt, &no, &n), CA_ENOENT);
    ca_rt_free(t.rt);
}

static void test_reg_send_and_reply(void)
{
    a1 = spawn_tester(&A, "a1");
    b1 = spawn_tester(&B, "b1");
    CU_ASSERT_STRING_EQUAL(ca_node_self_name(A.node), NA);
    CU_ASSERT_EQUAL(ca_rt_node_of(A.rt), A.node);
    /* connects on demand: EPMD lookup, handshake, then REG_SEND */
    cmd(&A, a1, "{send_reg, b1, '" NB "', {hello, 1}}");
    CU_ASSERT(probe_wait(&P, "a1: {world,1}", 5000));
    /* by pid, the other way round, on the same connection */
    cmd(&B, b1, "{send, ~p, {hello, 2}}", a1);
    CU_ASSERT(probe_wait(&P, "b1: {world,2}", 5000));
    char **names;
    size_t n;
    CU_ASSERT_EQUAL(ca_node_connected(A.node, &names, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    if (n == 1)
        CU_ASSERT_STRING_EQUAL(names[0], NB);
    ca_node_list_free(names, n);
    /* to an unknown name: dropped silently, the connection stays */
    cmd(&A, a1, "{send_reg, nobody, '" NB "', {hello, 3}}");
    cmd(&A, a1, "{send_reg, b1, '" NB "', {hello, 4}}");
    CU_ASSERT(probe_wait(&P, "a1: {world,4}", 5000));
    /* from this thread (ca_rt_send_reg): in a1's name, so the answer
     * comes back to a1; sender-less; to this node's own name, locally */
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ca_fmt(&x, "{hello, 5}");
    CU_ASSERT_EQUAL(ca_rt_send_reg(A.rt, a1, "b1", NB, x.buff, (size_t)x.index), 0);
    CU_ASSERT(probe_wait(&P, "a1: {world,5}", 5000));
    x.index = 1;
    ca_fmt(&x, "{from_thread, 6}");
    CU_ASSERT_EQUAL(ca_rt_send_reg(A.rt, CA_PID_NONE, "b1", NB, x.buff, (size_t)x.index), 0);
    CU_ASSERT(probe_wait(&P, "b1: {from_thread,6}", 5000));
    CU_ASSERT_EQUAL(ca_rt_send_reg(A.rt, CA_PID_NONE, "a1", NA, x.buff, (size_t)x.index), 0);
    CU_ASSERT(probe_wait(&P, "a1: {from_thread,6}", 5000));
    CU_ASSERT_EQUAL(ca_rt_send_reg(NULL, CA_PID_NONE, "b1", NB, x.buff, (size_t)x.index),
                    CA_EINVAL);
    CU_ASSERT_EQUAL(ca_rt_send_reg(A.rt, CA_PID_NONE, "b1", NB, "\x83\x68", 2), CA_EBADTERM);
    ei_x_free(&x);
}

/* The node's sockets are on scheduler 0: an actor there writes its frames
 * itself, one on scheduler 1 through the node's queue; both reach the
 * peer. ca_rt_free without ca_node_stop stops the node first (else the
 * node's handles would keep scheduler 0's loop alive), and the peer sees
 * the connection go. */
static void test_io_scheduler(void)
{
    tnode t = {0};
    CU_ASSERT_EQUAL_FATAL(node_up(&t, "tc@127.0.0.1", "c00kie", 0), 0);
    static const char *names[] = {"c0", "c1"};
    ca_pid c[2];
    for (int i = 0; i < 2; i++) {
        ca_spawn_opts o;
        ca_spawn_opts_init(&o);
        o.name = names[i];
        o.sched = i;
        CU_ASSERT_EQUAL(ca_spawn(t.rt, &tester, (void *)names[i], &o, &c[i]), 0);
    }
    cmd(&t, c[0], "{send_reg, b1, '" NB "', {hello, 10}}");
    cmd(&t, c[1], "{send_reg, b1, '" NB "', {hello, 11}}");
    CU_ASSERT(probe_wait(&P, "c0: {world,10}", 5000));
    CU_ASSERT(probe_wait(&P, "c1: {world,11}", 5000));
    cmd(&B, b1, "{monitor, ~p}", c[0]);
    cmd(&B, b1, "{send, ~p, {hello, 12}}", c[0]); /* after the monitor, on the same connection */
    CU_ASSERT(probe_wait(&P, "b1: {world,12}", 5000));
    ca_rt_free(t.rt);
    CU_ASSERT(probe_wait(&P, "b1: down noconnection", 5000));
    ca_node_free(t.node);
}

static void test_links_and_monitors(void)
{
    ca_pid b2 = spawn_tester(&B, "b2");
    ca_pid b3 = spawn_tester(&B, "b3");
    cmd(&A, a1, "{link, ~p}", b2);
    cmd(&A, a1, "{monitor, ~p}", b3);
    /* the signals went first on the same connection */
    cmd(&A, a1, "{send, ~p, {hello, sync}}", b3);
    CU_ASSERT(probe_wait(&P, "a1: {world,sync}", 5000));
    cmd(&B, b2, "{exit, boom}");
    CU_ASSERT(probe_wait(&P, "a1: exit boom", 5000));
    cmd(&B, b3, "{exit, bang}");
    CU_ASSERT(probe_wait(&P, "a1: down bang", 5000));
    /* now dead: a link gets noproc, a monitor DOWN noproc */
    cmd(&A, a1, "{link, ~p}", b2);
    CU_ASSERT(probe_wait(&P, "a1: exit noproc", 5000));
    cmd(&A, a1, "{monitor, ~p}", b3);
    CU_ASSERT(probe_wait(&P, "a1: down noproc", 5000));
    /* B links to A: a1's exit reaches b1 */
    ca_pid a2 = spawn_tester(&A, "a2");
    cmd(&B, b1, "{link, ~p}", a2);
    cmd(&B, b1, "{send, ~p, {hello, sync2}}", a2);
    CU_ASSERT(probe_wait(&P, "b1: {world,sync2}", 5000));
    ca_kill(A.rt, CA_PID_NONE, a2, "kill");
    CU_ASSERT(probe_wait(&P, "b1: exit killed", 5000));
}

/* A C gen_server that answers {twice, N} with 2N. */
static int twice_call(ca_actor *self, void *state, const ca_call_from *from, const char *req,
                      size_t len)
{
    long n;
    (void)state;
    if (ca_match_term(req, len, "{twice, ~i}", &n) == 0)
        return ca_gen_replyf(self, from, "~i", 2 * n);
    return ca_exit(self, "{shutdown, asked}");
}

static const ca_gen_server TWICE = {.name = "twice", .handle_call = twice_call};
static const ca_gen_server_spec TWICE_SPEC = {&TWICE, NULL};

/* Monitors and calls by name across nodes: the DOWN names {Name, Node};
 * nothing registered there: noproc; demonitored: nothing; a node that
 * cannot be reached: noconnection at once, for names, pids and links. */
static void test_by_name_remote(void)
{
    ca_pid b4 = spawn_tester(&B, "b4"), b5 = spawn_tester(&B, "b5"), gs;
    ca_pid a4 = spawn_tester(&A, "a4");
    cmd(&A, a4, "{monitor_name, b4, '" NB "'}");
    cmd(&A, a4, "{monitor_name, nobody, '" NB "'}");
    CU_ASSERT(probe_wait(&P, "a4: down of nobody at " NB ": noproc", 5000));
    cmd(&B, b4, "{exit, bye}");
    CU_ASSERT(probe_wait(&P, "a4: down of b4 at " NB ": bye", 5000));
    /* demonitored: b5 goes, nothing comes */
    cmd(&A, a4, "{monitor_name, b5, '" NB "'}");
    cmd(&A, a4, "demonitor_last");
    CU_ASSERT(probe_wait(&P, "a4: demonitor ok", 5000));
    cmd(&A, a4, "{send, ~p, {hello, after_demonitor}}", b5);
    CU_ASSERT(probe_wait(&P, "a4: {world,after_demonitor}", 5000));
    cmd(&B, b5, "{exit, gone}");
    cmd(&A, a4, "{send, ~p, {hello, after_exit}}", b1);
    CU_ASSERT(probe_wait(&P, "a4: {world,after_exit}", 5000));
    usleep(50000);
    CU_ASSERT_EQUAL(probe_count(&P, "a4: down of b5 at " NB ": gone"), 0);
    /* gen_server:call({twice, NB}) from C */
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = "twice";
    CU_ASSERT_FATAL(ca_spawn(B.rt, &ca_gen_server_behaviour, (void *)&TWICE_SPEC, &o, &gs) == 0);
    cmd(&A, a4, "{call_name, twice, '" NB "', {twice, 21}}");
    CU_ASSERT(probe_wait(&P, "a4: reply 42", 5000));
    cmd(&A, a4, "{call_name, twice, '" NB "', stop}");
    CU_ASSERT(probe_wait(&P, "a4: down of twice at " NB ": {shutdown,asked}", 5000));
    /* a node nobody runs: monitors by name and by pid, links: noconnection */
    cmd(&A, a4, "{monitor_name, x, 'nosuch@127.0.0.1'}");
    CU_ASSERT(probe_wait(&P, "a4: down of x at nosuch@127.0.0.1: noconnection", 10000));
    uint32_t nidx;
    CU_ASSERT_FATAL(ca_node_intern("nosuch@127.0.0.1", &nidx) == 0);
    ca_pid ghost = {nidx, 1, 0, 1};
    cmd(&A, a4, "{monitor, ~p}", ghost);
    CU_ASSERT(probe_wait(&P, "a4: down noconnection", 10000));
    cmd(&A, a4, "{link, ~p}", ghost);
    CU_ASSERT(probe_wait(&P, "a4: exit noconnection", 10000));
    cmd(&A, a4, "{monitor_name, '', '" NB "'}");
    CU_ASSERT(probe_wait(&P, "a4: monitor_name ebadname", 5000));
}

static void test_wrong_cookie(void)
{
    tnode W = {0};
    CU_ASSERT_FATAL(node_up(&W, "tw@127.0.0.1", "not-the-cookie", 0) == 0);
    ca_pid w1 = spawn_tester(&W, "w1");
    ca_node_stats before, after;
    ca_node_stats_get(B.node, &before);
    cmd(&W, w1, "{send_reg, b1, '" NB "', {hello, w}}");
    CU_ASSERT(probe_wait(&LOGS,
                         "dist: peer tw@127.0.0.1 refused: invalid challenge reply: "
                         "peer's cookie differs",
                         5000));
    ca_node_stats_get(B.node, &after);
    CU_ASSERT(after.refused > before.refused);
    CU_ASSERT_EQUAL(probe_count(&P, "w1: {world,w}"), 0);
    node_down(&W);
    /* B still serves A */
    cmd(&A, a1, "{send_reg, b1, '" NB "', {hello, after_w}}");
    CU_ASSERT(probe_wait(&P, "a1: {world,after_w}", 5000));
}

/* A raw peer: handshake with the codec, then whatever the test sends. */
static int raw_peer(const char *name, const char *cookie, uint16_t port)
{
    int fd = test_tcp_dial(port);
    if (fd < 0)
        return -1;
    ca_dist_hs hs;
    ca_dist_hs_config cfg = {.role = CA_DIST_INITIATOR,
                             .node_name = name,
                             .cookie = cookie,
                             .creation = 77,
                             .rand = RAND_bytes};
    unsigned char out[CA_DIST_HS_OUTMIN], in[4096];
    ca_dist_out o = {out, sizeof out, 0};
    if (ca__dist_hs_init(&hs, &cfg) || ca__dist_hs_start(&hs, &o))
        goto fail;
    while (hs.state == CA_DIST_HS_RUNNING) {
        if (o.len && send(fd, out, o.len, MSG_NOSIGNAL) != (ssize_t)o.len)
            goto fail;
        o.len = 0;
        ssize_t r = recv(fd, in, sizeof in, 0);
        size_t used;
        if (r <= 0 || ca__dist_hs_feed(&hs, in, (size_t)r, &used, &o))
            goto fail;
    }
    if (o.len && send(fd, out, o.len, MSG_NOSIGNAL) != (ssize_t)o.len)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

/* 1 if the peer closes the socket within 5 s (ticks are skipped). */
static int closed_by_peer(int fd)
{
    char buf[256];
    for (int i = 0; i < 50; i++) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return 1;
    }
    return 0;
}

static void garbage_case(const char *name, const void *bytes, size_t len, const char *log)
{
    int fd = raw_peer(name, "c00kie", ca_node_port(B.node));
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(send(fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
    CU_ASSERT(closed_by_peer(fd));
    close(fd);
    CU_ASSERT(probe_wait(&LOGS, log, 5000));
    CU_ASSERT(probe_count(&WARN, log) == 1); /* a fault */
}

static void test_garbage_closes_one_connection(void)
{
    static const unsigned char not_pass[] = {0, 0, 0, 3, 'x', 1, 2};
    static const unsigned char too_big[] = {0x7f, 0xff, 0xff, 0xff, 'p'};
    static const unsigned char bad_ctrl[] = {0, 0, 0, 4, 'p', 131, 255, 0};
    garbage_case("g1@127.0.0.1", not_pass, sizeof not_pass,
                 "dist: connection from g1@127.0.0.1 closed: frame of type 120, not pass-through");
    garbage_case("g2@127.0.0.1", too_big, sizeof too_big,
                 "dist: connection from g2@127.0.0.1 closed: frame of 2147483647 bytes over the "
                 "268435456 limit");
    garbage_case("g3@127.0.0.1", bad_ctrl, sizeof bad_ctrl,
                 "dist: connection from g3@127.0.0.1 closed: bad control message (malformed term)");
    /* a malformed message is dropped and logged, the connection stays */
    int fd = raw_peer("g4@127.0.0.1", "c00kie", ca_node_port(B.node));
    CU_ASSERT_FATAL(fd >= 0);
    static const char msg[] = {(char)131, 109, 0, 0, 0, 3, 'a', 'b', 'c'};
    erlang_pid from = {.num = 1, .creation = 77};
    strcpy(from.node, "g4@127.0.0.1");
    ei_x_buff x;
    ei_x_new(&x);
    CU_ASSERT_EQUAL(ca__dist_encode_reg_send(&x, &from, "b1", msg, sizeof msg), 0);
    x.buff[x.index - 4] = 9; /* the binary now claims more bytes than it has */
    CU_ASSERT_EQUAL(send(fd, x.buff, (size_t)x.index, MSG_NOSIGNAL), (ssize_t)x.index);
    ei_x_free(&x);
    CU_ASSERT(
        probe_wait(&LOGS, "dist: dropped a message from g4@127.0.0.1: malformed payload", 5000));
    close(fd);
    /* and A is still served */
    cmd(&A, a1, "{send_reg, b1, '" NB "', {hello, after_garbage}}");
    CU_ASSERT(probe_wait(&P, "a1: {world,after_garbage}", 5000));
}

/* A peer that never reads: the sender gets CA_EBUSY, not unbounded memory. */
static void test_busy_peer(void)
{
    int fd = raw_peer("slow@127.0.0.1", "c00kie", ca_node_port(B.node));
    CU_ASSERT_FATAL(fd >= 0);
    uint32_t idx;
    CU_ASSERT_EQUAL(ca_node_intern("slow@127.0.0.1", &idx), 0);
    ca_pid slow = {idx, 1, 0, 77};
    ca_pid b4 = spawn_tester(&B, "b4");
    /* the queue bound of B is 2 MiB; kernel buffers take some more */
    cmd(&B, b4, "{flood, ~p, ~u}", slow, 4000ul);
    CU_ASSERT(probe_wait(&P, "b4: flood ebusy", 20000));
    close(fd);
}

static void test_noconnection_and_node_monitors(void)
{
    tnode C = {0};
    ca_pid a3 = spawn_tester(&A, "a3");
    cmd(&A, a3, "{monitor_nodes}");
    CU_ASSERT_FATAL(node_up(&C, "tc@127.0.0.1", "c00kie", 0) == 0);
    ca_pid c1 = spawn_tester(&C, "c1");
    ca_pid c2 = spawn_tester(&C, "c2");
    cmd(&A, a3, "{link, ~p}", c1);
    cmd(&A, a3, "{monitor, ~p}", c2);
    cmd(&A, a3, "{monitor_name, c2, 'tc@127.0.0.1'}");
    cmd(&A, a3, "{send, ~p, {hello, c}}", c2);
    CU_ASSERT(probe_wait(&P, "a3: {world,c}", 5000));
    CU_ASSERT(probe_wait(&P, "a3: {nodeup,'tc@127.0.0.1'}", 5000));
    node_down(&C); /* the connection goes: link and monitor fire */
    CU_ASSERT(probe_wait(&P, "a3: exit noconnection", 5000));
    CU_ASSERT(probe_wait(&P, "a3: down noconnection", 5000));
    CU_ASSERT(probe_wait(&P, "a3: down of c2 at tc@127.0.0.1: noconnection", 5000));
    CU_ASSERT(probe_wait(&P, "a3: {nodedown,'tc@127.0.0.1'}", 5000));
}

/* A peer that goes silent is declared down after net_ticktime; one that
 * ticks is kept. */
static void test_tick_timeout(void)
{
    tnode T = {0};
    CU_ASSERT_FATAL(node_up_tick(&T, "tt@127.0.0.1", "c00kie", 0, 2) == 0);
    int fd = raw_peer("quiet@127.0.0.1", "c00kie", ca_node_port(T.node));
    CU_ASSERT_FATAL(fd >= 0);
    /* T ticks us (4 zero bytes) while waiting for ours */
    unsigned char buf[4];
    CU_ASSERT_EQUAL(recv(fd, buf, 4, MSG_WAITALL), 4);
    CU_ASSERT(buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 0);
    CU_ASSERT(probe_wait(&LOGS,
                         "dist: connection from quiet@127.0.0.1 closed: net_tick_timeout "
                         "(peer silent)",
                         5000));
    close(fd);
    /* a ticking peer lives on: A (ticktime 60) ticks every 15 s, too
     * slow; so tick by hand for 3 s */
    fd = raw_peer("ticker@127.0.0.1", "c00kie", ca_node_port(T.node));
    CU_ASSERT_FATAL(fd >= 0);
    static const char tick[4] = {0};
    for (int i = 0; i < 12; i++) {
        CU_ASSERT_EQUAL(send(fd, tick, 4, MSG_NOSIGNAL), 4);
        usleep(250 * 1000);
    }
    CU_ASSERT_EQUAL(probe_count(&LOGS, "dist: connection from ticker@127.0.0.1 closed: "
                                       "net_tick_timeout (peer silent)"),
                    0);
    char **names;
    size_t n;
    CU_ASSERT_EQUAL(ca_node_connected(T.node, &names, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    ca_node_list_free(names, n);
    close(fd);
    node_down(&T);
}

/* ---- reading in batches ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Append a REG_SEND frame to `to` carrying the term made of fmt. */
static void reg_send_frame(ei_x_buff *x, const erlang_pid *from, const char *to, const char *fmt,
                           ...)
{
    ei_x_buff m;
    va_list ap;
    ei_x_new_with_version(&m);
    va_start(ap, fmt);
    CU_ASSERT_EQUAL(ca_vfmt(&m, fmt, ap), 0);
    va_end(ap);
    CU_ASSERT_EQUAL(ca__dist_encode_reg_send(x, from, to, m.buff, (size_t)m.index), 0);
    ei_x_free(&m);
}

static void send_all(int fd, ei_x_buff *x)
{
    CU_ASSERT_EQUAL(send(fd, x->buff, (size_t)x->index, MSG_NOSIGNAL), (ssize_t)x->index);
    x->index = 0;
}

/* Read n frames that are not ticks; 1 if they came (within 5 s each). */
/* One frame that is not a tick, into body[cap]: its length, or -1. */
static ssize_t recv_frame(int fd, char *body, size_t cap)
{
    for (;;) {
        unsigned char len[4];
        if (recv(fd, len, 4, MSG_WAITALL) != 4)
            return -1;
        uint32_t l = ca__get32(len);
        if (l > cap || (l && recv(fd, body, l, MSG_WAITALL) != (ssize_t)l))
            return -1;
        if (l)
            return (ssize_t)l;
    }
}

static int recv_frames(int fd, int n)
{
    static char body[1 << 16];
    for (; n > 0; n--)
        if (recv_frame(fd, body, sizeof body) < 0)
            return 0;
    return 1;
}

/* Send n messages in two halves 5 ms apart (the node samples their rate
 * twice before it batches), and wait for w0 to have them all. */
static void burst(ei_x_buff *x, int fd, const erlang_pid *from, unsigned long n)
{
    char line[64];
    for (unsigned long i = 1; i <= n; i++) {
        if (i == 1 || i == n / 2) {
            send_all(fd, x);
            usleep(5 * 1000);
        }
        reg_send_frame(x, from, "w0", "{q, ~u, ~u}", i, n);
    }
    send_all(fd, x);
    snprintf(line, sizeof line, "w0: q %lu", n);
    CU_ASSERT_FATAL(probe_wait(&P, line, 10000));
}

static uint64_t batch_waits(tnode *t)
{
    ca_node_stats st;
    ca_node_stats_get(t->node, &st);
    return st.batch_waits;
}

/* ca_node_opts.batch_us, at 300 ms so that every wait is plain to see.
 * A peer with two requests out at a time, waiting for both answers, makes
 * the node try batching and give it up after one wait; a burst makes
 * it wait before it reads again, so a message sent meanwhile is read late;
 * a message from another thread or from a peer that does not batch ends a
 * wait at once. */
static const char noproc_term[] = {(char)131, 119, 6, 'n', 'o', 'p', 'r', 'o', 'c'};

/* B's b1 as its peers see it; `creation_delta` 1: of an earlier B. */
static erlang_pid b1_seen(uint32_t creation_delta)
{
    erlang_pid e = {.num = b1.num, .serial = b1.serial, .creation = b1.creation - creation_delta};
    strcpy(e.node, NB);
    return e;
}

/* Signals in the name of another node's process, or to one, close the
 * connection (Erlang's "invalid distribution message"); a link to a pid of
 * an earlier incarnation is answered EXIT noproc, the connection stays. */
static void test_invalid_signals(void)
{
    erlang_pid elsewhere = {.num = 5, .creation = 1}, g5 = {.num = 1, .creation = 77};
    erlang_pid g6 = g5, g7 = g5, eb1 = b1_seen(0), old = b1_seen(1);
    strcpy(elsewhere.node, "elsewhere@127.0.0.1");
    strcpy(g5.node, "g5@127.0.0.1");
    strcpy(g6.node, "g6@127.0.0.1");
    strcpy(g7.node, "g7@127.0.0.1");
    ei_x_buff x;
    ei_x_new(&x);
    CU_ASSERT_EQUAL(ca__dist_encode_link(&x, &elsewhere, &eb1), 0);
    garbage_case("g5@127.0.0.1", x.buff, (size_t)x.index,
                 "dist: connection from g5@127.0.0.1 closed: invalid control message (a signal "
                 "from a pid not of the sending node)");
    x.index = 0;
    CU_ASSERT_EQUAL(ca__dist_encode_exit2(&x, &g6, &elsewhere, noproc_term, sizeof noproc_term), 0);
    garbage_case("g6@127.0.0.1", x.buff, (size_t)x.index,
                 "dist: connection from g6@127.0.0.1 closed: invalid control message (a signal "
                 "to a pid not of this node)");

    int fd = raw_peer("g7@127.0.0.1", "c00kie", ca_node_port(B.node));
    CU_ASSERT_FATAL(fd >= 0);
    x.index = 0;
    CU_ASSERT_EQUAL(ca__dist_encode_link(&x, &g7, &old), 0);
    send_all(fd, &x);
    char body[4096];
    ssize_t n = recv_frame(fd, body, sizeof body);
    ca_dist_ctrl k;
    CU_ASSERT_FATAL(n > 1);
    CU_ASSERT_EQUAL_FATAL(ca__dist_ctrl_decode(body + 1, (size_t)n - 1, &k), 0);
    CU_ASSERT_EQUAL(k.op, CA_DOP_EXIT);
    CU_ASSERT(k.from.pid.num == old.num && k.from.pid.creation == old.creation);
    CU_ASSERT(strcmp(k.to.pid.node, "g7@127.0.0.1") == 0);
    CU_ASSERT(k.reason.len == sizeof noproc_term - 1 &&
              memcmp(k.reason.p, noproc_term + 1, k.reason.len) == 0);
    close(fd);
    ei_x_free(&x);
}

/* An exit signal in another node's name goes out in this node's: a peer
 * (B, as Erlang) would take it for an invalid message and hang up, and
 * b1 would never see it. */
static void test_exit_in_another_name(void)
{
    uint32_t idx;
    CU_ASSERT_EQUAL_FATAL(ca_node_intern("elsewhere@127.0.0.1", &idx), 0);
    ca_pid elsewhere = {idx, 5, 0, 1};
    CU_ASSERT_EQUAL(ca_kill(A.rt, elsewhere, b1, "relayed"), 0);
    CU_ASSERT(probe_wait(&P, "b1: exit relayed", 5000));
    cmd(&A, a1, "{send_reg, b1, '" NB "', {hello, after_relay}}");
    CU_ASSERT(probe_wait(&P, "a1: {world,after_relay}", 5000));
}

static void test_batching(void)
{
    tnode t = {0};
    ca_node_opts no;
    ca_node_opts_init(&no);
    CU_ASSERT_EQUAL(no.batch_us, 100);
    no.name = "tw@127.0.0.1";
    no.cookie = "c00kie";
    no.batch_us = 300000;
    CU_ASSERT_EQUAL_FATAL(node_start(&t, &no), 0);
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = "w0";
    o.sched = 0; /* the loop's scheduler: its actors idle is when the loop waits */
    ca_pid w0;
    CU_ASSERT_EQUAL_FATAL(ca_spawn(t.rt, &tester, (void *)"w0", &o, &w0), 0);
    int fd = raw_peer("wp@127.0.0.1", "c00kie", ca_node_port(t.node));
    CU_ASSERT_FATAL(fd >= 0);
    int fd2 = raw_peer("wq@127.0.0.1", "c00kie", ca_node_port(t.node)); /* a second peer */
    CU_ASSERT_FATAL(fd2 >= 0);
    erlang_pid from = {.num = 1, .creation = 77}, from2 = {.num = 2, .creation = 78};
    strcpy(from.node, "wp@127.0.0.1");
    strcpy(from2.node, "wq@127.0.0.1");
    ei_x_buff x;
    ei_x_new(&x);

    /* two sequential callers: once the node has sampled their rate (4 ms,
     * 32 messages), one wait that brings 2 messages instead of thousands,
     * then none */
    uint64_t t0 = now_ms();
    long r = 0;
    for (; r < 5000 && batch_waits(&t) == 0; r++) {
        reg_send_frame(&x, &from, "w0", "{hello, ~i}", 2 * r);
        reg_send_frame(&x, &from, "w0", "{hello, ~i}", 2 * r + 1);
        send_all(fd, &x);
        CU_ASSERT_FATAL(recv_frames(fd, 2));
    }
    CU_ASSERT(r >= 16 && r < 5000); /* 32 messages to sample, then it tried */
    t0 = 0;
    for (long end = r + 9; r < end; r++) {
        if (!t0 && r == end - 8)
            t0 = now_ms(); /* the wait may have held the first of these */
        reg_send_frame(&x, &from, "w0", "{hello, ~i}", 2 * r);
        reg_send_frame(&x, &from, "w0", "{hello, ~i}", 2 * r + 1);
        send_all(fd, &x);
        CU_ASSERT_FATAL(recv_frames(fd, 2));
    }
    CU_ASSERT_EQUAL(batch_waits(&t), 1);
    CU_ASSERT(now_ms() - t0 < 250); /* the wait plus 8 round trips with none */

    /* a burst past the retry mark (1024 messages) starts batching again,
     * from a sample of 4 ms or more: a message sent meanwhile waits */
    burst(&x, fd, &from, 1100);
    for (int i = 0; i < 1000 && batch_waits(&t) < 2; i++)
        usleep(1000);
    t0 = now_ms();
    reg_send_frame(&x, &from, "w0", "{late, 1}");
    send_all(fd, &x);
    CU_ASSERT(probe_wait(&P, "w0: {late,1}", 5000));
    CU_ASSERT(now_ms() - t0 >= 150); /* read when the wait was over */
    CU_ASSERT_EQUAL(batch_waits(&t), 2);

    /* so would one that comes on the same thread; one from this thread
     * ends the wait at once */
    burst(&x, fd, &from, 1101);
    for (int i = 0; i < 1000 && batch_waits(&t) < 3; i++)
        usleep(1000);
    CU_ASSERT_EQUAL(batch_waits(&t), 3);
    t0 = now_ms();
    cmd(&t, w0, "{from_thread, 1}");
    CU_ASSERT(probe_wait(&P, "w0: {from_thread,1}", 5000));
    CU_ASSERT(now_ms() - t0 < 150);

    /* nor does a request from another peer, which does not batch */
    uint64_t waits = batch_waits(&t); /* the one just ended may have had a sequel */
    /* (a burst that a loaded machine read too slowly to start batching is
     * tried again, with more messages: the check is of the other peer) */
    for (unsigned long n = 1102; n < 1102 + 4 * 1100 && batch_waits(&t) == waits; n += 1100) {
        burst(&x, fd, &from, n);
        for (int i = 0; i < 1000 && batch_waits(&t) == waits; i++)
            usleep(1000);
    }
    CU_ASSERT(batch_waits(&t) > waits);
    t0 = now_ms();
    reg_send_frame(&x, &from2, "w0", "{hello, 1}");
    send_all(fd2, &x);
    CU_ASSERT(recv_frames(fd2, 1));
    CU_ASSERT(now_ms() - t0 < 150);

    /* a dense stream that pauses for one wait goes on batching (its
     * sender was held up, say), but not past a second empty wait */
    waits = batch_waits(&t);
    for (int b = 0; b < 16 && batch_waits(&t) == waits; b++) { /* past the retry mark */
        burst(&x, fd, &from, 1103);
        for (int i = 0; i < 100 && batch_waits(&t) == waits; i++)
            usleep(1000);
    }
    CU_ASSERT_FATAL(batch_waits(&t) > waits);
    waits = batch_waits(&t); /* a wait is under way: the 20 come into it */
    for (int i = 1; i <= 20; i++)
        reg_send_frame(&x, &from, "w0", "{q, ~i, 20}", (long)i);
    send_all(fd, &x);
    CU_ASSERT(probe_wait(&P, "w0: q 20", 5000));
    usleep(1500 * 1000);                         /* 300 ms waits: the next two bring nothing */
    CU_ASSERT_EQUAL(batch_waits(&t), waits + 2); /* the first forgiven */

    ca_node_stats st;
    ca_node_stats_get(t.node, &st);
    CU_ASSERT(st.reads > 0 && st.reads < st.frames_in);
    ei_x_free(&x);

    /* a peer that hangs up is no fault: logged, not warned about */
    close(fd2);
    close(fd);
    const char *bye = "dist: connection from wp@127.0.0.1 closed: closed by peer";
    CU_ASSERT(probe_wait(&LOGS, bye, 5000));
    CU_ASSERT(probe_count(&WARN, bye) == 0);
    node_down(&t);
}

/* Frames that repeat the last one's control term are delivered without
 * decoding it again (dispatch.c's memo), and must behave as if it were:
 * a name that moved to another actor between two of them is looked up
 * again, a malformed payload behind the same control term is dropped as
 * ever, one with no version byte still closes the connection. */
static void test_repeated_sends(void)
{
    ca_spawn_opts o;
    ca_spawn_opts_init(&o);
    o.name = "mv";
    ca_pid m1, m2;
    CU_ASSERT_EQUAL_FATAL(ca_spawn(B.rt, &tester, (void *)"m1", &o, &m1), 0);
    int fd = raw_peer("mp@127.0.0.1", "c00kie", ca_node_port(B.node));
    CU_ASSERT_FATAL(fd >= 0);
    erlang_pid from = {.num = 1, .creation = 77};
    strcpy(from.node, "mp@127.0.0.1");
    ei_x_buff f, x;
    ei_x_new(&f);
    ei_x_new(&x);
    reg_send_frame(&f, &from, "mv", "{q, 1, 1}");
    for (int i = 0; i < 3; i++)
        ei_x_append_buf(&x, f.buff, f.index);
    send_all(fd, &x);
    CU_ASSERT(probe_wait_n(&P, "m1: q 1", 3, 5000));

    /* the name moves: m1 lives on without it, m2 takes it */
    CU_ASSERT_EQUAL(ca_unregister(B.rt, "mv"), 0);
    CU_ASSERT_EQUAL_FATAL(ca_spawn(B.rt, &tester, (void *)"m2", &o, &m2), 0);
    ei_x_append_buf(&x, f.buff, f.index);
    send_all(fd, &x);
    CU_ASSERT(probe_wait(&P, "m2: q 1", 5000));

    /* the same control term, a payload whose last integer has a bad tag */
    ei_x_append_buf(&x, f.buff, f.index);
    x.buff[x.index - 2] = (char)200;
    send_all(fd, &x);
    CU_ASSERT(
        probe_wait(&LOGS, "dist: dropped a message from mp@127.0.0.1: malformed payload", 5000));
    ei_x_append_buf(&x, f.buff, f.index);
    send_all(fd, &x);
    CU_ASSERT(probe_wait_n(&P, "m2: q 1", 2, 5000));
    CU_ASSERT_EQUAL(probe_count(&P, "m1: q 1"), 3);

    /* the same control term, a payload without its version byte */
    ei_x_append_buf(&x, f.buff, f.index);
    x.buff[x.index - 10] = (char)130;
    send_all(fd, &x);
    CU_ASSERT(closed_by_peer(fd));
    CU_ASSERT(probe_wait(&LOGS,
                         "dist: connection from mp@127.0.0.1 closed: bad control message "
                         "(protocol error)",
                         5000));
    close(fd);
    ei_x_free(&f);
    ei_x_free(&x);
    ca_kill(B.rt, CA_PID_NONE, m1, "kill");
    ca_kill(B.rt, CA_PID_NONE, m2, "kill");
}

/* Both sides dial at once: one connection wins, nothing is lost. */
static void test_simultaneous_connect(void)
{
    for (int round = 0; round < 3; round++) {
        tnode D = {0}, E = {0};
        char dn[64], en[64], line[128];
        snprintf(dn, sizeof dn, "sd%d@127.0.0.1", round);
        snprintf(en, sizeof en, "se%d@127.0.0.1", round);
        CU_ASSERT_FATAL(node_up(&D, dn, "c00kie", 0) == 0);
        CU_ASSERT_FATAL(node_up(&E, en, "c00kie", 0) == 0);
        ca_pid d1 = spawn_tester(&D, "d1");
        ca_pid e1 = spawn_tester(&E, "e1");
        for (int i = 0; i < 5; i++) {
            cmd(&D, d1, "{send, ~p, {hello, ~i}}", e1, (long)(round * 10 + i));
            cmd(&E, e1, "{send, ~p, {hello, ~i}}", d1, (long)(round * 10 + i));
        }
        for (int i = 0; i < 5; i++) {
            snprintf(line, sizeof line, "d1: {world,%d}", round * 10 + i);
            CU_ASSERT(probe_wait(&P, line, 10000));
            snprintf(line, sizeof line, "e1: {world,%d}", round * 10 + i);
            CU_ASSERT(probe_wait(&P, line, 10000));
        }
        node_down(&D);
        node_down(&E);
    }
    /* Whether the attempts crossed depends on timing: say, do not judge. */
    int crossed = 0;
    pthread_mutex_lock(&LOGS.lock);
    for (int i = 0; i < LOGS.n; i++)
        crossed += strstr(LOGS.lines[i], "simultaneous connect") != NULL;
    pthread_mutex_unlock(&LOGS.lock);
    fprintf(stderr, "(%d crossed) ", crossed);
}

static void add(void)
{
    CU_pSuite s = CU_add_suite("node", setup, teardown);
    CU_add_test(s, "reg send and reply", test_reg_send_and_reply);
    CU_add_test(s, "node I/O on scheduler 0, ca_rt_free stops it", test_io_scheduler);
    CU_add_test(s, "links and monitors across nodes", test_links_and_monitors);
    CU_add_test(s, "monitors and calls by name across nodes", test_by_name_remote);
    CU_add_test(s, "wrong cookie refused", test_wrong_cookie);
    CU_add_test(s, "garbage closes one connection", test_garbage_closes_one_connection);
    CU_add_test(s, "invalid signals close the connection", test_invalid_signals);
    CU_add_test(s, "exit in another node's name", test_exit_in_another_name);
    CU_add_test(s, "busy peer", test_busy_peer);
    CU_add_test(s, "noconnection and node monitors", test_noconnection_and_node_monitors);
    CU_add_test(s, "tick timeout", test_tick_timeout);
    CU_add_test(s, "simultaneous connect", test_simultaneous_connect);
    CU_add_test(s, "reading in batches", test_batching);
    CU_add_test(s, "repeated control terms", test_repeated_sends);
    CU_add_test(s, "start errors", test_start_errors);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return run_suites(add);
}
