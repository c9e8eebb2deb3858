/*
 * The node: start and stop, EPMD registration, the runtime's hooks for
 * remote destinations, and the loop (scheduler 0's) that drains what other
 * threads queue for it.
 *
 * Registration with EPMD is done by ca_node_start on the caller's thread
 * with a blocking socket (bounded by a poll timeout): the caller has to
 * wait for the creation anyway, and no loop is involved. The socket is
 * then handed to the node's loop, which keeps it open (EPMD drops the
 * registration when it closes) and notices if EPMD goes away.
 *
 * The loop is scheduler 0's (node.h says why): handles are opened and
 * closed by tasks posted to that scheduler, and ca_node_start and
 * ca_node_stop wait for those tasks, so they refuse to run on a scheduler
 * thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "node.h"

#define EPMD_TIMEOUT_MS 5000

static const ca__dist_ops node_ops;

/* ---- pid and ref conversions ---- */

static int node_str(uint32_t idx, char *out)
{
    const char *s = ca_node_name(idx);
    size_t n = s ? strlen(s) : 0;
    if (!s || n >= MAXATOMLEN_UTF8)
        return CA_EINVAL;
    memcpy(out, s, n + 1);
    return 0;
}

int ca__to_ei_pid(ca_pid p, erlang_pid *e)
{
    e->num = p.num;
    e->serial = p.serial;
    e->creation = p.creation;
    return node_str(p.node, e->node);
}

int ca__to_ei_ref(const ca_ref *r, erlang_ref *e)
{
    if (r->len < 1 || r->len > 5)
        return CA_EINVAL;
    e->len = (int)r->len;
    e->creation = r->creation;
    for (uint32_t i = 0; i < r->len; i++)
        e->n[i] = r->n[i];
    return node_str(r->node, e->node);
}

int ca__from_ei_pid(const erlang_pid *e, ca_pid *p)
{
    int rc = ca_node_intern(e->node, &p->node);
    p->num = e->num;
    p->serial = e->serial;
    p->creation = e->creation;
    return rc;
}

int ca__from_ei_ref(const erlang_ref *e, ca_ref *r)
{
    memset(r, 0, sizeof *r);
    if (e->len < 1 || e->len > 5)
        return CA_EBADTERM;
    r->len = (uint32_t)e->len;
    r->creation = e->creation;
    for (int i = 0; i < e->len; i++)
        r->n[i] = e->n[i];
    return ca_node_intern(e->node, &r->node);
}

/* ---- options, name, cookie ---- */

void ca_node_opts_init(ca_node_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch_us = 100;
}

static int make_name(ca_node *n, const char *name)
{
    char host[256];
    const char *at = name ? strchr(name, '@') : NULL;
    if (!name || !*name || at == name)
        return CA_EBADNAME;
    if (at) {
        if (!at[1] || strchr(at + 1, '@') || strlen(name) > CA_DIST_MAXNAME)
            return CA_EBADNAME;
        snprintf(n->name, sizeof n->name, "%s", name);
    } else {
        if (gethostname(host, sizeof host - 1) != 0)
            return CA_EIO;
        host[sizeof host - 1] = 0;
        char *dot = strchr(host, '.');
        if (dot)
            *dot = 0; /* -sname style: the short host name */
        if (strlen(name) + 1 + strlen(host) > CA_DIST_MAXNAME)
            return CA_EBADNAME;
        size_t al = strlen(name), hl = strlen(host);
        memcpy(n->name, name, al);
        n->name[al] = '@';
        memcpy(n->name + al + 1, host, hl + 1);
    }
    at = strchr(n->name, '@');
    snprintf(n->alive, sizeof n->alive, "%.*s", (int)(at - n->name), n->name);
    snprintf(n->host, sizeof n->host, "%s", at + 1);
    return 0;
}

/* erl's rules: $HOME/.erlang.cookie, the first line, no trailing blanks. */
static int read_cookie(ca_rt *rt, char *out, size_t cap)
{
    const char *home = getenv("HOME");
    char path[4096];
    if (!home || !*home) {
        ca_log(rt, CA_LOG_ERROR, "dist: no cookie given and HOME is not set");
        return CA_ENOENT;
    }
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        ca_log(rt, CA_LOG_ERROR, "dist: cannot read cookie file %s: %s", path, strerror(e));
        return e == ENOENT ? CA_ENOENT : CA_EPERM;
    }
    size_t len = fread(out, 1, cap - 1, f);
    fclose(f);
    out[len] = 0;
    out[strcspn(out, "\r\n")] = 0;
    len = strlen(out);
    while (len && (out[len - 1] == ' ' || out[len - 1] == '\t'))
        out[--len] = 0;
    if (!len) {
        ca_log(rt, CA_LOG_ERROR, "dist: cookie file %s is empty", path);
        return CA_EPERM;
    }
    return 0;
}

/* ---- EPMD registration (caller's thread, blocking with a deadline) ---- */

static int wait_fd(int fd, short ev)
{
    struct pollfd p = {.fd = fd, .events = ev};
    int r;
    do
        r = poll(&p, 1, EPMD_TIMEOUT_MS);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : r == 0 ? CA_ETIMEDOUT : CA_EIO;
}

static int epmd_dial(uint16_t port, int *out)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return CA_EIO;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        goto fail;
    int err = 0;
    socklen_t el = sizeof err;
    if (wait_fd(fd, POLLOUT) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err)
        goto fail;
    *out = fd;
    return 0;
fail:
    close(fd);
    return CA_EIO;
}

static int epmd_register(ca_node *n, int *fd_out)
{
    unsigned char req[CA_DIST_MAXNAME + 32], resp[16];
    ca_dist_out o = {req, sizeof req, 0};
    int fd, rc = ca__epmd_alive2_req(&o, n->alive, n->port);
    if (rc)
        return rc;
    if ((rc = epmd_dial(n->epmd_port, &fd))) {
        ca_log(n->rt, CA_LOG_ERROR, "dist: cannot reach EPMD at 127.0.0.1:%u", n->epmd_port);
        return rc;
    }
    if (send(fd, req, o.len, MSG_NOSIGNAL) != (ssize_t)o.len) {
        rc = CA_EIO;
        goto fail;
    }
    size_t have = 0, used = 0;
    while (!used) {
        if ((rc = wait_fd(fd, POLLIN)))
            goto fail;
        ssize_t r = recv(fd, resp + have, sizeof resp - have, 0);
        if (r <= 0) {
            rc = CA_EIO;
            goto fail;
        }
        have += (size_t)r;
        if ((rc = ca__epmd_alive2_resp(resp, have, &used, &n->creation)))
            goto fail;
    }
    *fd_out = fd;
    return 0;
fail:
    ca_log(n->rt, CA_LOG_ERROR, "dist: EPMD registration of %s failed: %s", n->alive,
           rc == CA_EEXIST ? "name already registered" : ca_strerror(rc));
    close(fd);
    return rc;
}

/* ---- the loop ---- */

void ca__out_free(ca_node *n, ca__out *o, bool dropped)
{
    if (o->cost)
        atomic_fetch_sub_explicit(&n->queued[o->peer % CA__NODE_PEER_SLOTS], o->cost,
                                  memory_order_relaxed);
    if (dropped) {
        atomic_fetch_add_explicit(&n->st_dropped, 1, memory_order_relaxed);
        ca__dispatch_dropped(n, o);
    }
    if (o->m)
        ca__msg_free(o->m);
    free(o);
}

ca__conn *ca__node_find(ca_node *n, uint32_t peer)
{
    for (ca__conn *c = n->conns; c; c = c->next)
        if (c->registered && c->peer == peer)
            return c;
    return NULL;
}

void ca__node_up_list(ca_node *n)
{
    size_t k = 0;
    for (ca__conn *c = n->conns; c; c = c->next)
        k += c->state == CA__C_UP;
    char **names = calloc(k ? k : 1, sizeof *names);
    size_t i = 0;
    for (ca__conn *c = n->conns; names && c; c = c->next)
        if (c->state == CA__C_UP && (names[i] = strdup(c->peer_name)))
            i++;
    pthread_mutex_lock(&n->list_lock);
    ca_node_list_free(n->up_names, n->nup);
    n->up_names = names;
    n->nup = names ? i : 0;
    pthread_mutex_unlock(&n->list_lock);
    atomic_store_explicit(&n->st_conns, i, memory_order_relaxed);
}

static void nodemon_change(ca_node *n, ca__out *o)
{
    uint32_t idx = 0;
    if (o->name[0] && ca_node_intern(o->name, &idx))
        return;
    if (o->on) {
        ca__nodemon *nm = malloc(sizeof *nm);
        if (!nm)
            return;
        nm->pid = o->m->from;
        nm->node = idx;
        nm->next = n->nodemons;
        n->nodemons = nm;
        return;
    }
    for (ca__nodemon **pp = &n->nodemons; *pp; pp = &(*pp)->next) {
        if (ca_pid_eq((*pp)->pid, o->m->from) && (*pp)->node == idx) {
            ca__nodemon *dead = *pp;
            *pp = dead->next;
            free(dead);
            return;
        }
    }
}

void ca__node_peer_event(ca_node *n, uint32_t peer, bool up)
{
    const char *name = ca_node_name(peer);
    for (ca__nodemon **pp = &n->nodemons; *pp;) {
        ca__nodemon *nm = *pp;
        if (nm->node && nm->node != peer) {
            pp = &nm->next;
            continue;
        }
        int rc =
            ca_rt_sendf(n->rt, CA_PID_NONE, nm->pid, "{~a, ~a}", up ? "nodeup" : "nodedown", name);
        if (rc == CA_ESRCH) { /* the watcher is gone */
            *pp = nm->next;
            free(nm);
            continue;
        }
        pp = &nm->next;
    }
}

/* An item from another thread, on the loop. */
void ca__node_on_out(ca_node *n, ca__out *o)
{
    if (o->how == CA__OUT_NODEMON) {
        nodemon_change(n, o);
        ca__out_free(n, o, false);
        return;
    }
    if (n->closing_all) {
        ca__out_free(n, o, true);
        return;
    }
    ca__conn *c = ca__node_find(n, o->peer);
    if (!c)
        c = ca__conn_connect(n, o->peer);
    if (!c) {
        ca__out_free(n, o, true);
        return;
    }
    if (c->state == CA__C_UP)
        ca__dispatch_out(c, o);
    else
        ca__conn_pend(c, o);
}

static void close_all(ca_node *n);

static void flush_all(ca_node *n)
{
    for (ca__conn *c = n->conns; c; c = c->next)
        if (c->state == CA__C_UP)
            ca__conn_flush(c);
}

/* Most connections the loop polls while it waits for the others; with
 * more it does not wait. */
#define WAIT_POLLED 16

/* Reading in batches (batch.c): wait if a connection wants to, polling the
 * sockets of the others and the two wake-up eventfds meanwhile, so that
 * work from other threads and messages from peers that do not gain from
 * waiting end the wait at once. */
static void batch_wait(ca_node *n)
{
    if (!n->batch_ns)
        return;
    bool idle = !n->sched->rq_head; /* else the actors are still at what came */
    uint64_t now = 0, now_ms = uv_now(n->loop);
    struct pollfd fds[2 + WAIT_POLLED] = {{.fd = n->sched->waker.fd, .events = POLLIN},
                                          {.fd = n->wake.fd, .events = POLLIN}};
    nfds_t nfds = 2;
    bool wait = false;
    for (ca__conn *c = n->conns; c; c = c->next) {
        if (c->state != CA__C_UP)
            continue;
        uv_os_fd_t fd;
        if (ca__batch_next(&c->batch, n->batch_ns, idle, now_ms, &now))
            wait = true;
        else if (nfds < 2 + WAIT_POLLED && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            fds[nfds++] = (struct pollfd){.fd = fd, .events = POLLIN};
        else
            idle = false; /* too many to poll: no wait, but go on sampling */
    }
    if (!wait || !idle)
        return;
    atomic_fetch_add_explicit(&n->st_waits, 1, memory_order_relaxed);
    struct timespec ts = {(time_t)(n->batch_ns / 1000000000u), (long)(n->batch_ns % 1000000000u)};
    (void)ppoll(fds, nfds, &ts, NULL); /* EINTR only shortens the wait */
}

/* Runs after the iteration's turns, right before the loop polls. */
static void flusher_cb(uv_prepare_t *h)
{
    ca_node *n = h->data;
    if (n->flush_due) {
        n->flush_due = false;
        flush_all(n);
    }
    batch_wait(n);
}

static void wake_cb(ca__waker *w)
{
    ca_node *n = w->data;
    n->sched->activity++;
    ca__mpsc_node *q;
    uint64_t k = 0;
    while ((q = ca__mpsc_pop(&n->outq)) != NULL) {
        ca__node_on_out(n, ca__container_of(q, ca__out, node));
        k++;
    }
    if (k)
        atomic_fetch_sub_explicit(&n->outq_n, k, memory_order_relaxed);
    flush_all(n);
    if (atomic_load(&n->stopping) && !n->closing_all)
        close_all(n);
}

void ca__node_handle_gone(ca_node *n)
{
    if (--n->handles == 0 && n->closing_all)
        uv_sem_post(&n->done);
}

static void handle_closed(uv_handle_t *h)
{
    ca__node_handle_gone(h->data);
}

static void wake_closed(uv_handle_t *h)
{
    ca__node_handle_gone(((ca__waker *)h)->data); /* poll is the first member */
}

/* Close whatever is open; `done` is posted once the last is gone. */
static void close_all(ca_node *n)
{
    n->closing_all = true;
    for (ca__conn *c = n->conns, *next; c; c = next) {
        next = c->next;
        ca__conn_close(c, NULL);
    }
    if (n->listener_open)
        uv_close((uv_handle_t *)&n->listener, handle_closed);
    if (n->epmd_open)
        uv_close((uv_handle_t *)&n->epmd, handle_closed);
    if (n->flusher_open)
        uv_close((uv_handle_t *)&n->flusher, handle_closed);
    n->listener_open = n->epmd_open = n->flusher_open = false;
    if (n->wake_open) {
        /* `stopping` is set: new senders back off; wait out those that
         * got past the check before closing the handle they signal. */
        while (atomic_load(&n->inflight))
            sched_yield();
        ca__waker_close(&n->wake, wake_closed);
        n->wake_open = false;
    }
    n->sched->hosts_io = false; /* no sockets left: spin as schedulers do */
    if (n->handles == 0)
        uv_sem_post(&n->done);
}

static void listen_cb(uv_stream_t *s, int status)
{
    ca_node *n = s->data;
    if (status < 0) {
        ca_log(n->rt, CA_LOG_WARNING, "dist: accept failed: %s", uv_strerror(status));
        return;
    }
    ca__conn_accept(n);
}

static void epmd_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char sink[64]; /* only this loop's thread reads into it */
    (void)h;
    (void)hint;
    *b = uv_buf_init(sink, sizeof sink);
}

static void epmd_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    ca_node *n = s->data;
    (void)b;
    if (nread >= 0)
        return;
    ca_log(n->rt, CA_LOG_WARNING, "dist: EPMD closed the registration connection (%s)",
           uv_strerror((int)nread));
    uv_close((uv_handle_t *)&n->epmd, handle_closed);
    n->epmd_open = false;
}

/* ---- the runtime's hooks (any thread) ---- */

/* Queue an item for the loop; takes o in every case. On the loop's own
 * thread, encode it at once instead: no queue, no wake-up. */
static int enqueue(ca_node *n, ca__out *o)
{
    if (ca__current_sched() == n->sched) {
        if (atomic_load_explicit(&n->stopping, memory_order_relaxed)) {
            ca__out_free(n, o, false);
            return CA_ENOTCONN;
        }
        ca__node_on_out(n, o);
        n->flush_due = true;
        return 0;
    }
    atomic_fetch_add(&n->inflight, 1);
    if (atomic_load(&n->stopping)) {
        atomic_fetch_sub(&n->inflight, 1);
        ca__out_free(n, o, false);
        return CA_ENOTCONN;
    }
    atomic_fetch_add_explicit(&n->outq_n, 1, memory_order_relaxed);
    ca__mpsc_push(&n->outq, &o->node);
    ca__waker_wake(&n->wake);
    atomic_fetch_sub(&n->inflight, 1);
    return 0;
}

/* The bound applies to messages only: a dropped signal would leave a
 * link or monitor inconsistent. */
static int charge(ca_node *n, ca__out *o)
{
    if (o->m->kind != CA_MSG_TERM)
        return 0;
    size_t cost = o->m->len + CA__OUT_OVERHEAD;
    _Atomic uint64_t *q = &n->queued[o->peer % CA__NODE_PEER_SLOTS];
    uint64_t before = atomic_fetch_add_explicit(q, cost, memory_order_relaxed);
    if (before && before + cost > n->max_queue) {
        atomic_fetch_sub_explicit(q, cost, memory_order_relaxed);
        return CA_EBUSY;
    }
    o->cost = cost;
    return 0;
}

static ca__out *out_new(ca_msg *m, uint8_t how, uint32_t peer, const char *name)
{
    size_t nl = name ? strlen(name) + 1 : 1;
    ca__out *o = calloc(1, sizeof *o + nl);
    if (!o)
        return NULL;
    o->m = m;
    o->how = how;
    o->peer = peer;
    if (name)
        memcpy(o->name, name, nl);
    return o;
}

static int queue_msg(ca_node *n, ca_msg *m, uint8_t how, uint32_t peer, const char *name,
                     ca__out **res)
{
    ca__out *o = out_new(m, how, peer, name);
    if (!o) {
        ca__msg_free(m);
        return CA_ENOMEM;
    }
    int rc = charge(n, o);
    if (rc) {
        ca__out_free(n, o, false);
        return rc;
    }
    if (res) {
        *res = o; /* the caller fills in more, then calls enqueue */
        return 0;
    }
    return enqueue(n, o);
}

static int hook_send(void *ctx, ca_msg *m, ca_pid to)
{
    ca_node *n = ctx;
    if (to.node == n->self_idx || !ca_node_name(to.node)) {
        /* a pid of an earlier incarnation of this node: gone */
        ca__msg_free(m);
        return CA_ESRCH;
    }
    ca__out *o;
    int rc = queue_msg(n, m, CA__OUT_PID, to.node, NULL, &o);
    if (rc)
        return rc;
    o->to = to;
    return enqueue(n, o);
}

static int hook_send_name(void *ctx, ca_msg *m, const char *name, uint32_t node)
{
    ca_node *n = ctx;
    if (!ca__name_valid(name)) {
        ca__msg_free(m);
        return CA_EBADNAME;
    }
    return queue_msg(n, m, CA__OUT_NAME, node, name, NULL);
}

static void dist_stop(void *ctx);
static const ca__dist_ops node_ops = {hook_send, hook_send_name, dist_stop};

ca_node *ca_rt_node_of(ca_rt *rt)
{
    return rt && rt->dist == &node_ops ? rt->dist_ctx : NULL;
}

/* ---- public sends ---- */

int ca_rt_send_reg(ca_rt *rt, ca_pid from, const char *name, const char *node, const void *etf,
                   size_t len)
{
    uint32_t idx;
    if (!rt || !name || !node)
        return CA_EINVAL;
    int rc = ca_node_intern(node, &idx);
    if (rc)
        return rc;
    if (idx == rt->node)
        return ca_rt_send_name(rt, from, name, etf, len);
    if (len > INT32_MAX)
        return CA_ETOOBIG;
    if (ca__etf_check(etf, len))
        return CA_EBADTERM;
    if (!rt->dist)
        return CA_ENOTCONN;
    ca_msg *m = ca__msg_term(from, etf, len);
    if (!m)
        return CA_ENOMEM;
    return rt->dist->send_name(rt->dist_ctx, m, name, idx);
}

int ca_send_reg(ca_actor *self, const char *name, const char *node, const void *etf, size_t len)
{
    return self ? ca_rt_send_reg(ca_actor_rt(self), ca_self(self), name, node, etf, len)
                : CA_EINVAL;
}

int ca_sendf_reg(ca_actor *self, const char *name, const char *node, const char *fmt, ...)
{
    const char *buf;
    size_t len;
    int rc;
    CA__FMT_VARARGS(fmt, buf, len, rc);
    return rc ? rc : ca_send_reg(self, name, node, buf, len);
}

/* Where an alias send goes, or why it cannot. */
static int alias_node(ca_actor *self, const ca_ref *alias, size_t len, ca_node **out)
{
    ca_rt *rt = ca_actor_rt(self);
    if (alias->node == rt->node)
        return CA_ENOTSUP;
    if (!(*out = ca_rt_node_of(rt)))
        return CA_ENOTCONN;
    return len > INT32_MAX ? CA_ETOOBIG : 0;
}

static int alias_queue(ca_actor *self, ca_node *n, const ca_ref *alias, const void *etf, size_t len)
{
    ca_msg *m = ca__msg_term(ca_self(self), etf, len);
    if (!m)
        return CA_ENOMEM;
    ca__out *o;
    int rc = queue_msg(n, m, CA__OUT_ALIAS, alias->node, NULL, &o);
    if (rc)
        return rc;
    o->alias = *alias;
    return enqueue(n, o);
}

int ca_send_alias(ca_actor *self, const ca_ref *alias, const void *etf, size_t len)
{
    ca_node *n;
    if (!self || !alias)
        return CA_EINVAL;
    int rc = alias_node(self, alias, len, &n);
    if (rc)
        return rc;
    if (ca__etf_check(etf, len))
        return CA_EBADTERM;
    return alias_queue(self, n, alias, etf, len);
}

int ca__send_alias(ca_actor *self, const ca_ref *alias, const void *etf, size_t len)
{
    ca_node *n;
    int rc = alias_node(self, alias, len, &n);
    return rc ? rc : alias_queue(self, n, alias, etf, len);
}

int ca_monitor_node(ca_actor *self, const char *node, int on)
{
    if (!self)
        return CA_EINVAL;
    ca_node *n = ca_rt_node_of(ca_actor_rt(self));
    if (!n)
        return CA_ENOTCONN;
    uint32_t idx;
    if (node && ca_node_intern(node, &idx))
        return CA_EBADNAME;
    ca_msg *m = ca__msg_new(CA_MSG_TERM, ca_self(self), 0);
    ca__out *o = m ? out_new(m, CA__OUT_NODEMON, 0, node ? node : "") : NULL;
    if (!o) {
        free(m);
        return CA_ENOMEM;
    }
    o->on = on != 0;
    int rc = enqueue(n, o);
    if (rc == 0 && on && node) {
        /* already connected: nodeup now, as the connection came first */
        char **names;
        size_t k;
        if (ca_node_connected(n, &names, &k) == 0) {
            for (size_t i = 0; i < k; i++)
                if (strcmp(names[i], node) == 0)
                    ca_sendf(self, ca_self(self), "{nodeup, ~a}", node);
            ca_node_list_free(names, k);
        }
    }
    return rc;
}

/* ---- start and stop ---- */

/* Run fn on the node's loop thread and wait for its result. */
typedef struct loop_call {
    ca__task t;
    ca_node *n;
    int (*fn)(ca_node *n, void *arg);
    void *arg;
    int rc;
    uv_sem_t sem;
} loop_call;

static void loop_call_run(ca__task *t)
{
    loop_call *lc = (loop_call *)t;
    lc->rc = lc->fn(lc->n, lc->arg);
    uv_sem_post(&lc->sem);
}

static int on_loop(ca_node *n, int (*fn)(ca_node *n, void *arg), void *arg)
{
    loop_call lc = {.t.fn = loop_call_run, .n = n, .fn = fn, .arg = arg};
    if (uv_sem_init(&lc.sem, 0))
        return CA_EUV;
    ca__sched_post(n->sched, &lc.t);
    uv_sem_wait(&lc.sem);
    uv_sem_destroy(&lc.sem);
    return lc.rc;
}

static int listen_on(ca_node *n, void *arg)
{
    const char *addr = arg;
    struct sockaddr_storage ss;
    int rc;
    n->sched->hosts_io = true;
    if (uv_ip4_addr(addr, n->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(addr, n->port, (struct sockaddr_in6 *)&ss) != 0)
        return CA_EINVAL;
    if ((rc = uv_tcp_init(n->loop, &n->listener)))
        return CA_EUV;
    n->listener.data = n;
    n->listener_open = true;
    n->handles++;
    if ((rc = uv_tcp_bind(&n->listener, (struct sockaddr *)&ss, 0)) ||
        (rc = uv_listen((uv_stream_t *)&n->listener, 128, listen_cb))) {
        ca_log(n->rt, CA_LOG_ERROR, "dist: cannot listen on %s:%u: %s", addr, n->port,
               uv_strerror(rc));
        return CA_EUV;
    }
    int sl = sizeof ss;
    if (uv_tcp_getsockname(&n->listener, (struct sockaddr *)&ss, &sl))
        return CA_EUV;
    n->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* The EPMD socket (takes *arg in every case), the flusher, the wake-up. */
static int open_handles(ca_node *n, void *arg)
{
    int fd = *(int *)arg;
    if (uv_tcp_init(n->loop, &n->epmd)) {
        close(fd);
        return CA_EUV;
    }
    n->epmd.data = n;
    n->epmd_open = true;
    n->handles++;
    if (uv_tcp_open(&n->epmd, fd)) {
        close(fd);
        return CA_EUV;
    }
    uv_read_start((uv_stream_t *)&n->epmd, epmd_alloc, epmd_read);
    if (uv_prepare_init(n->loop, &n->flusher))
        return CA_EUV;
    n->flusher.data = n;
    n->flusher_open = true;
    n->handles++;
    uv_prepare_start(&n->flusher, flusher_cb);
    if (ca__waker_init(n->loop, &n->wake, wake_cb))
        return CA_EUV;
    n->wake.data = n;
    n->wake_open = true;
    n->handles++;
    return 0;
}

static int close_on_loop(ca_node *n, void *arg)
{
    (void)arg;
    close_all(n);
    return 0;
}

static int node_config(ca_node *n, ca_rt *rt, const ca_node_opts *o)
{
    int rc;
    n->rt = rt;
    if ((rc = make_name(n, o->name)))
        return rc;
    if (o->cookie) {
        if (strlen(o->cookie) > CA_DIST_MAXCOOKIE)
            return CA_ETOOBIG;
        snprintf(n->cookie, sizeof n->cookie, "%s", o->cookie);
    } else if ((rc = read_cookie(rt, n->cookie, sizeof n->cookie))) {
        return rc;
    }
    const char *ep = getenv("ERL_EPMD_PORT");
    n->epmd_port = o->epmd_port         ? o->epmd_port
                   : ep && atoi(ep) > 0 ? (uint16_t)atoi(ep)
                                        : CA_EPMD_PORT;
    n->port = o->port;
    n->ticktime = o->net_ticktime ? o->net_ticktime : 60;
    n->max_frame = o->max_frame ? o->max_frame : CA_DIST_FRAME_MAX_DEFAULT;
    n->max_queue = o->max_queue ? o->max_queue : ((size_t)512 << 20);
    n->batch_ns = (uint64_t)(o->batch_us > 1000000 ? 1000000 : o->batch_us) * 1000u;
    return 0;
}

int ca_node_start(ca_rt *rt, const ca_node_opts *o, ca_node **out)
{
    int rc, fd = -1;
    if (!rt || !o || !out)
        return CA_EINVAL;
    if (rt->dist)
        return CA_EEXIST;
    if (ca__current_sched())
        return CA_EPERM; /* it waits for scheduler 0 */
    if (atomic_load(&rt->st_spawned) > 0) {
        ca_log(rt, CA_LOG_ERROR, "dist: ca_node_start after actors were spawned");
        return CA_EPERM;
    }
    ca_node *n = calloc(1, sizeof *n);
    if (!n)
        return CA_ENOMEM;
    if ((rc = node_config(n, rt, o)))
        goto fail_free;
    if (uv_sem_init(&n->done, 0)) {
        rc = CA_EUV;
        goto fail_free;
    }
    ca__mpsc_init(&n->outq);
    pthread_mutex_init(&n->list_lock, NULL);
    n->wake.fd = -1;
    n->sched = &rt->sched[0];
    n->loop = &n->sched->loop;
    if ((rc = on_loop(n, listen_on, (void *)(o->listen_addr ? o->listen_addr : "127.0.0.1"))))
        goto fail_close;
    if ((rc = epmd_register(n, &fd)))
        goto fail_close;
    if ((rc = ca_node_intern(n->name, &n->self_idx))) {
        close(fd);
        goto fail_close;
    }
    if ((rc = on_loop(n, open_handles, &fd)))
        goto fail_close;
    /* No actor exists yet (checked above), so no pid carries the old
     * name; from here on local pids are this node's. */
    rt->node = n->self_idx;
    rt->creation = n->creation;
    rt->dist_ctx = n;
    rt->dist = &node_ops;
    ca_log(rt, CA_LOG_INFO, "dist: node %s up on port %u (creation %u)", n->name, n->port,
           n->creation);
    *out = n;
    return 0;

fail_close:
    on_loop(n, close_on_loop, NULL);
    uv_sem_wait(&n->done);
    ca__waker_destroy(&n->wake);
    pthread_mutex_destroy(&n->list_lock);
    uv_sem_destroy(&n->done);
fail_free:
    free(n);
    return rc;
}

void ca_node_stop(ca_node *n)
{
    if (!n || n->stopped)
        return;
    if (ca__current_sched()) {
        ca_log(n->rt, CA_LOG_ERROR, "dist: ca_node_stop on a scheduler thread: refused");
        return;
    }
    n->stopped = true;
    atomic_fetch_add(&n->inflight, 1);
    atomic_store(&n->stopping, true);
    ca__waker_wake(&n->wake);
    atomic_fetch_sub(&n->inflight, 1);
    uv_sem_wait(&n->done);
    /* Senders that got past the stopping check may still be pushing. */
    while (atomic_load(&n->inflight))
        sched_yield();
    ca__waker_destroy(&n->wake); /* nobody is inside ca__waker_wake now */
    ca__mpsc_node *q;
    while (atomic_load(&n->outq_n)) {
        while ((q = ca__mpsc_pop(&n->outq)) != NULL) {
            ca__out_free(n, ca__container_of(q, ca__out, node), true);
            atomic_fetch_sub(&n->outq_n, 1);
        }
    }
    while (n->nodemons) {
        ca__nodemon *nm = n->nodemons;
        n->nodemons = nm->next;
        free(nm);
    }
    ca__node_up_list(n);
}

static void dist_stop(void *ctx)
{
    ca_node_stop(ctx);
}

void ca_node_free(ca_node *n)
{
    if (!n)
        return;
    ca_node_stop(n);
    /* The runtime is gone (see the header): its hooks are not touched. */
    ca_node_list_free(n->up_names, n->nup);
    pthread_mutex_destroy(&n->list_lock);
    uv_sem_destroy(&n->done);
    free(n);
}

const char *ca_node_self_name(const ca_node *n)
{
    return n->name;
}

uint16_t ca_node_port(const ca_node *n)
{
    return n->port;
}

int ca_node_connected(ca_node *n, char ***out, size_t *count)
{
    if (!n || !out || !count)
        return CA_EINVAL;
    pthread_mutex_lock(&n->list_lock);
    char **names = calloc(n->nup ? n->nup : 1, sizeof *names);
    size_t i = 0;
    for (; names && i < n->nup; i++)
        if (!(names[i] = strdup(n->up_names[i])))
            break;
    size_t want = n->nup;
    pthread_mutex_unlock(&n->list_lock);
    if (!names || i < want) {
        ca_node_list_free(names, i);
        return CA_ENOMEM;
    }
    *out = names;
    *count = i;
    return 0;
}

void ca_node_list_free(char **list, size_t k)
{
    ca_names_free(list, k);
}

void ca_node_stats_get(ca_node *n, ca_node_stats *st)
{
    st->connections = atomic_load_explicit(&n->st_conns, memory_order_relaxed);
    st->accepted = atomic_load_explicit(&n->st_accepted, memory_order_relaxed);
    st->refused = atomic_load_explicit(&n->st_refused, memory_order_relaxed);
    st->frames_in = atomic_load_explicit(&n->st_in, memory_order_relaxed);
    st->frames_out = atomic_load_explicit(&n->st_out, memory_order_relaxed);
    st->dropped = atomic_load_explicit(&n->st_dropped, memory_order_relaxed);
    st->bad_frames = atomic_load_explicit(&n->st_bad, memory_order_relaxed);
    st->reads = atomic_load_explicit(&n->st_reads, memory_order_relaxed);
    st->batch_waits = atomic_load_explicit(&n->st_waits, memory_order_relaxed);
}
