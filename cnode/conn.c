/*
 * Connections: dialing (host lookup, EPMD PORT_PLEASE2, TCP connect),
 * accepting, the handshake, reading and cutting frames, writing, ticks,
 * simultaneous connects and closing. Everything here runs on the node's
 * loop thread.
 *
 * A connection is freed when its last handle or request is gone: `refs`
 * counts them, plus one held from creation until ca__conn_close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/rand.h>

#include "bytes.h"
#include "node.h"

#define SETUP_TIMEOUT_MS 7000 /* net_setuptime's default */
#define READ_CHUNK       (64 * 1024)
#define SHRINK_ABOVE     (4u << 20)

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void conn_start_handshake(ca__conn *c);

/* ---- life cycle ---- */

static void conn_free(ca__conn *c)
{
    ca_node *n = c->node;
    free(c->rbuf);
    ei_x_free(&c->wq);
    ei_x_free(&c->wbuf);
    free(c->hs);
    free(c->links);
    ca__refmap *maps[] = {&c->watching, &c->watched};
    for (int k = 0; k < 2; k++) {
        uint32_t it = 0;
        ca__refent *e;
        while ((e = ca__refmap_next(maps[k], &it)))
            free(e);
        ca__refmap_clear(maps[k]);
    }
    free(c);
    ca__node_handle_gone(n);
}

void ca__conn_unref(ca__conn *c)
{
    if (--c->refs == 0)
        conn_free(c);
}

static void handle_closed(uv_handle_t *h)
{
    ca__conn_unref(h->data);
}

static ca__conn *conn_new(ca_node *n, ca_dist_role role)
{
    ca__conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (ei_x_new(&c->wq)) {
        free(c);
        return NULL;
    }
    if (ei_x_new(&c->wbuf)) {
        ei_x_free(&c->wq);
        free(c);
        return NULL;
    }
    c->node = n;
    c->role = role;
    c->refs = 1;
    n->handles++;
    c->wq.index = c->wbuf.index = 0;
    c->last_rx = c->last_tx = uv_now(n->loop);
    ca__batch_init(&c->batch, c->last_rx);
    uv_timer_init(n->loop, &c->timer);
    c->timer.data = c;
    c->timer_open = true;
    c->refs++;
    c->next = n->conns;
    n->conns = c;
    return c;
}

static void list_remove(ca__conn *c)
{
    for (ca__conn **pp = &c->node->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            return;
        }
    }
}

static void drop_pending(ca__conn *c)
{
    while (c->pend_head) {
        ca__out *o = c->pend_head;
        c->pend_head = o->next;
        ca__out_free(c->node, o, true);
    }
    c->pend_tail = NULL;
}

/* Queued frames that will never be written. */
static void drop_wq(ca__conn *c)
{
    ca_node *n = c->node;
    if (c->wq_cost)
        atomic_fetch_sub_explicit(&n->queued[c->peer % CA__NODE_PEER_SLOTS], c->wq_cost,
                                  memory_order_relaxed);
    atomic_fetch_add_explicit(&n->st_dropped, c->wq_frames, memory_order_relaxed);
    c->wq_cost = 0;
    c->wq_frames = 0;
    c->wq.index = 0;
}

static void close_socket(ca__conn *c)
{
    if (c->tcp_open) {
        c->tcp_open = false;
        uv_close((uv_handle_t *)&c->tcp, handle_closed);
    }
}

static const char closed_by_peer[] = "closed by peer";

void ca__conn_close(ca__conn *c, const char *why)
{
    ca_node *n = c->node;
    if (c->state == CA__C_CLOSED)
        return;
    bool was_up = c->state == CA__C_UP;
    c->state = CA__C_CLOSED;
    /* A peer that hangs up is how a node leaves (init:stop/0): not a
     * fault. One that stops answering or breaks the protocol is. */
    bool fault = was_up && why != closed_by_peer;
    if (why)
        ca_log(n->rt, fault ? CA_LOG_WARNING : CA_LOG_INFO, "dist: connection %s %s closed: %s",
               c->role == CA_DIST_INITIATOR ? "to" : "from",
               c->peer_name[0] ? c->peer_name : "(unknown peer)", why);
    c->registered = false;
    list_remove(c);
    if (was_up) {
        ca__dispatch_lost(c);
        ca__node_up_list(n);
        ca__node_peer_event(n, c->peer, false);
    }
    drop_pending(c);
    drop_wq(c);
    close_socket(c);
    if (c->timer_open) {
        c->timer_open = false;
        uv_close((uv_handle_t *)&c->timer, handle_closed);
    }
    ca__conn_unref(c);
}

void ca__conn_pend(ca__conn *c, ca__out *o)
{
    o->next = NULL;
    if (c->pend_tail)
        c->pend_tail->next = o;
    else
        c->pend_head = o;
    c->pend_tail = o;
}

/* ---- writing ---- */

int ca__conn_reserve(ca__conn *c, size_t more)
{
    ei_x_buff *x = &c->wq;
    size_t need = (size_t)x->index + more;
    if (need > INT32_MAX - 1024)
        return CA_ETOOBIG;
    if (need <= (size_t)x->buffsz)
        return 0;
    size_t cap = (size_t)x->buffsz * 2;
    if (cap < need + 1024)
        cap = need + 1024;
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    char *p = realloc(x->buff, cap);
    if (!p)
        return CA_ENOMEM;
    x->buff = p;
    x->buffsz = (int)cap;
    return 0;
}

static void write_cb(uv_write_t *req, int status)
{
    ca__conn *c = req->data;
    ca_node *n = c->node;
    c->writing = false;
    if (c->wbuf_cost)
        atomic_fetch_sub_explicit(&n->queued[c->peer % CA__NODE_PEER_SLOTS], c->wbuf_cost,
                                  memory_order_relaxed);
    if (status < 0)
        atomic_fetch_add_explicit(&n->st_dropped, c->wbuf_frames, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&n->st_out, c->wbuf_frames, memory_order_relaxed);
    c->wbuf_cost = 0;
    c->wbuf_frames = 0;
    c->wbuf.index = 0;
    if (c->wbuf.buffsz > (int)SHRINK_ABOVE) {
        ei_x_free(&c->wbuf);
        ei_x_new(&c->wbuf);
        c->wbuf.index = 0;
    }
    if (status < 0) {
        if (status != UV_ECANCELED) {
            char why[128];
            snprintf(why, sizeof why, "write failed: %s", uv_strerror(status));
            ca__conn_close(c, why);
        }
        return;
    }
    ca__conn_flush(c);
}

/* Everything queued goes out in one write; what comes meanwhile waits in
 * the other buffer for the next one. */
void ca__conn_flush(ca__conn *c)
{
    if (c->writing || c->state != CA__C_UP || c->wq.index == 0 || !c->tcp_open)
        return;
    ei_x_buff t = c->wbuf;
    c->wbuf = c->wq;
    c->wq = t;
    c->wbuf_cost = c->wq_cost;
    c->wbuf_frames = c->wq_frames;
    c->wq_cost = 0;
    c->wq_frames = 0;
    c->wq.index = 0;
    uv_buf_t b = uv_buf_init(c->wbuf.buff, (unsigned)c->wbuf.index);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (rc) {
        c->wq = c->wbuf; /* give the frames back for the drop count */
        c->wbuf = t;
        ca__conn_close(c, uv_strerror(rc));
        return;
    }
    c->writing = true;
    c->last_tx = uv_now(c->node->loop);
}

/* Handshake messages: small, written as they come. */
typedef struct hs_write {
    uv_write_t req;
    size_t len;
    unsigned char data[];
} hs_write;

static void hs_write_cb(uv_write_t *req, int status)
{
    (void)status; /* a failure shows up on the read side */
    free(req->data);
}

static void send_raw(ca__conn *c, const void *data, size_t len)
{
    if (!len || !c->tcp_open)
        return;
    hs_write *w = malloc(sizeof *w + len);
    if (!w)
        return;
    memcpy(w->data, data, len);
    w->len = len;
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, hs_write_cb))
        free(w);
}

/* ---- ticks and timeouts ---- */

static void tick_cb(uv_timer_t *t)
{
    ca__conn *c = t->data;
    ca_node *n = c->node;
    uint64_t now = uv_now(n->loop);
    uint64_t tick_ms = (uint64_t)n->ticktime * 1000 / 4;
    if (c->state != CA__C_UP) {
        ca__conn_close(c, c->state == CA__C_WAIT ? "simultaneous connect: the peer's never came"
                                                 : "connection setup timed out");
        return;
    }
    if (now - c->last_rx >= (uint64_t)n->ticktime * 1000) {
        ca__conn_close(c, "net_tick_timeout (peer silent)");
        return;
    }
    /* Half a period of quiet is enough: the timer and last_tx do not
     * line up exactly, and a missed tick costs the peer's patience. */
    if (now - c->last_tx >= tick_ms / 2 && !c->writing && c->wq.index == 0) {
        static const char tick[4] = {0, 0, 0, 0};
        send_raw(c, tick, sizeof tick);
        c->last_tx = now;
    }
}

static void start_ticks(ca__conn *c)
{
    uint64_t tick_ms = (uint64_t)c->node->ticktime * 1000 / 4;
    if (tick_ms == 0)
        tick_ms = 1;
    uv_timer_start(&c->timer, tick_cb, tick_ms, tick_ms);
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    ca__conn *c = h->data;
    (void)hint;
    size_t want = READ_CHUNK;
    if (c->rcap - c->rlen < want) {
        size_t cap = c->rcap ? c->rcap : READ_CHUNK * 2;
        while (cap - c->rlen < want)
            cap *= 2;
        char *p = realloc(c->rbuf, cap);
        if (!p) {
            *b = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
            return;
        }
        c->rbuf = p;
        c->rcap = cap;
    }
    *b = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void consume(ca__conn *c, size_t used)
{
    if (!used)
        return;
    memmove(c->rbuf, c->rbuf + used, c->rlen - used);
    c->rlen -= used;
    if (c->rcap > SHRINK_ABOVE && c->rlen < READ_CHUNK) {
        char *p = realloc(c->rbuf, READ_CHUNK * 2);
        if (p) {
            c->rbuf = p;
            c->rcap = READ_CHUNK * 2;
        }
    }
}

static int on_frame(void *ctx, const ca_dist_frame *f)
{
    ca__conn *c = ctx;
    if (f->tick)
        return 0;
    atomic_fetch_add_explicit(&c->node->st_in, 1, memory_order_relaxed);
    return ca__dispatch_in(c, f);
}

void ca__conn_bad(ca__conn *c, const char *why)
{
    atomic_fetch_add_explicit(&c->node->st_bad, 1, memory_order_relaxed);
    ca__conn_close(c, why);
}

static void bad_stream(ca__conn *c, int rc, size_t at)
{
    char why[160];
    const unsigned char *p = (const unsigned char *)c->rbuf + at;
    uint32_t len = c->rlen - at >= 4 ? ca__get32(p) : 0;
    if (rc == CA_ETOOBIG)
        snprintf(why, sizeof why, "frame of %u bytes over the %zu limit", len, c->node->max_frame);
    else if (rc == CA_EPROTO && c->rlen - at > 4 && p[4] != CA_DIST_PASS_THROUGH)
        snprintf(why, sizeof why, "frame of type %u, not pass-through", p[4]);
    else
        snprintf(why, sizeof why, "bad control message (%s)", ca_strerror(rc));
    ca__conn_bad(c, why);
}

static void read_frames(ca__conn *c)
{
    size_t used = 0;
    int rc = ca__dist_frames_each(c->rbuf, c->rlen, c->node->max_frame, &used, on_frame, c);
    if (c->state == CA__C_CLOSED)
        return;
    if (rc < 0) {
        bad_stream(c, rc, used);
        return;
    }
    consume(c, used);
    /* Answers written while reading (SPAWN_REPLY, UNLINK_ID_ACK) go out
     * with what the actors answer in this iteration's turns: the flusher
     * runs after them, before the loop polls again (one write per
     * erpc:call instead of two). */
    if (c->wq.index)
        c->node->flush_due = true;
}

static void conn_up(ca__conn *c);

static void read_handshake(ca__conn *c)
{
    unsigned char buf[CA_DIST_HS_OUTMIN];
    ca_dist_out out = {buf, sizeof buf, 0};
    size_t used = 0;
    int rc = ca__dist_hs_feed(c->hs, c->rbuf, c->rlen, &used, &out);
    send_raw(c, out.data, out.len);
    if (rc < 0) {
        ca_node *n = c->node;
        ca_dist_hs_error e = c->hs->error;
        if (c->hs->peer_name[0])
            snprintf(c->peer_name, sizeof c->peer_name, "%s", c->hs->peer_name);
        atomic_fetch_add_explicit(&n->st_refused, 1, memory_order_relaxed);
        if (e == CA_DIST_HS_E_NOK && c->role == CA_DIST_INITIATOR) {
            /* Lost a simultaneous connect: the peer's attempt towards us
             * carries on, and takes over what waits here. */
            c->state = CA__C_WAIT;
            close_socket(c);
            uv_timer_start(&c->timer, tick_cb, SETUP_TIMEOUT_MS, 0);
            return;
        }
        ca_log(n->rt,
               e == CA_DIST_HS_E_BAD_REPLY || e == CA_DIST_HS_E_BAD_ACK ? CA_LOG_WARNING
                                                                        : CA_LOG_INFO,
               "dist: %s %s refused: %s", c->role == CA_DIST_INITIATOR ? "connection to" : "peer",
               c->peer_name[0] ? c->peer_name : "(unknown)", ca__dist_hs_strerror(e));
        ca__conn_close(c, NULL); /* logged above, with the reason */
        return;
    }
    consume(c, used);
    if (c->hs->state == CA_DIST_HS_DONE) {
        conn_up(c);
        if (c->state == CA__C_UP && c->rlen)
            read_frames(c);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    ca__conn *c = s->data;
    (void)b;
    if (c->state == CA__C_CLOSED)
        return;
    if (nread < 0) {
        ca__conn_close(c, nread == UV_EOF ? closed_by_peer : uv_strerror((int)nread));
        return;
    }
    c->rlen += (size_t)nread;
    atomic_fetch_add_explicit(&c->node->st_reads, 1, memory_order_relaxed);
    c->last_rx = uv_now(c->node->loop);
    c->node->sched->activity++;
    if (c->state == CA__C_HANDSHAKE)
        read_handshake(c);
    else if (c->state == CA__C_UP)
        read_frames(c);
}

/* ---- handshake ---- */

static ca_dist_status acceptor_status(void *ctx, const char *peer_name, uint64_t flags)
{
    ca__conn *c = ctx;
    ca_node *n = c->node;
    uint32_t idx;
    (void)flags;
    snprintf(c->peer_name, sizeof c->peer_name, "%s", peer_name);
    if (strcmp(peer_name, n->name) == 0 || ca_node_intern(peer_name, &idx))
        return CA_DIST_ST_NOT_ALLOWED;
    ca__conn *other = ca__node_find(n, idx);
    if (!other || other->state == CA__C_WAIT)
        return CA_DIST_ST_OK;
    if (other->state == CA__C_UP)
        return CA_DIST_ST_ALIVE;
    /* Both sides dialed: the greater name keeps its own attempt. */
    bool ours = strcmp(n->name, peer_name) > 0;
    ca_log(n->rt, CA_LOG_INFO, "dist: simultaneous connect with %s: %s attempt wins", peer_name,
           ours ? "our" : "its");
    return ours ? CA_DIST_ST_NOK : CA_DIST_ST_OK_SIMULTANEOUS;
}

static int hs_setup(ca__conn *c)
{
    ca_node *n = c->node;
    ca_dist_hs_config cfg = {
        .role = c->role,
        .node_name = n->name,
        .cookie = n->cookie,
        .creation = n->creation,
        .rand = RAND_bytes,
        .expect_peer = c->role == CA_DIST_INITIATOR ? c->peer_name : NULL,
        .alive_continue = 1,
        .status_fn = acceptor_status,
        .status_ctx = c,
    };
    c->hs = malloc(sizeof *c->hs);
    if (!c->hs)
        return CA_ENOMEM;
    return ca__dist_hs_init(c->hs, &cfg);
}

static void conn_start_handshake(ca__conn *c)
{
    unsigned char buf[CA_DIST_HS_OUTMIN];
    ca_dist_out out = {buf, sizeof buf, 0};
    int rc = hs_setup(c);
    if (rc == 0)
        rc = ca__dist_hs_start(c->hs, &out);
    if (rc) {
        ca__conn_close(c, "handshake setup failed");
        return;
    }
    c->state = CA__C_HANDSHAKE;
    c->tcp.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    send_raw(c, out.data, out.len);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

/* Another connection to the same peer gives way to `c`. */
static void take_over(ca__conn *c, ca__conn *other)
{
    if (other->pend_head) {
        if (c->pend_tail)
            c->pend_tail->next = other->pend_head;
        else
            c->pend_head = other->pend_head;
        c->pend_tail = other->pend_tail;
        other->pend_head = other->pend_tail = NULL;
    }
    ca__conn_close(other, other->state == CA__C_UP ? "replaced by a new connection" : NULL);
}

static void conn_up(ca__conn *c)
{
    ca_node *n = c->node;
    snprintf(c->peer_name, sizeof c->peer_name, "%s", c->hs->peer_name);
    c->flags = ca__dist_hs_flags(c->hs);
    free(c->hs);
    c->hs = NULL;
    if (c->role == CA_DIST_ACCEPTOR) {
        if (ca_node_intern(c->peer_name, &c->peer)) {
            ca__conn_close(c, "bad peer name");
            return;
        }
        ca__conn *other = ca__node_find(n, c->peer);
        if (other && other != c)
            take_over(c, other);
        c->registered = true;
    }
    c->state = CA__C_UP;
    atomic_fetch_add_explicit(&n->st_accepted, 1, memory_order_relaxed);
    ca_log(n->rt, CA_LOG_INFO, "dist: connected %s %s",
           c->role == CA_DIST_INITIATOR ? "to" : "from", c->peer_name);
    uv_timer_stop(&c->timer);
    start_ticks(c);
    ca__node_up_list(n);
    ca__node_peer_event(n, c->peer, true);
    while (c->pend_head && c->state == CA__C_UP) {
        ca__out *o = c->pend_head;
        c->pend_head = o->next;
        if (!c->pend_head)
            c->pend_tail = NULL;
        ca__dispatch_out(c, o);
    }
    ca__conn_flush(c);
}

/* ---- accepting ---- */

void ca__conn_accept(ca_node *n)
{
    ca__conn *c = conn_new(n, CA_DIST_ACCEPTOR);
    if (!c)
        return;
    uv_tcp_init(n->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_open = true;
    c->refs++;
    if (uv_accept((uv_stream_t *)&n->listener, (uv_stream_t *)&c->tcp)) {
        ca__conn_close(c, NULL);
        return;
    }
    c->state = CA__C_HANDSHAKE;
    uv_timer_start(&c->timer, tick_cb, SETUP_TIMEOUT_MS, 0);
    conn_start_handshake(c);
}

/* ---- dialing ---- */

static void connect_cb(uv_connect_t *req, int status)
{
    ca__conn *c = req->data;
    if (c->state == CA__C_CLOSED)
        return;
    if (status < 0) {
        char why[160];
        snprintf(why, sizeof why, "connect failed: %s", uv_strerror(status));
        ca__conn_close(c, why);
        return;
    }
    conn_start_handshake(c);
}

static void dial(ca__conn *c, uint16_t port)
{
    ca_node *n = c->node;
    struct sockaddr_storage sa = c->addr;
    if (sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&sa)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons(port);
    uv_tcp_init(n->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_open = true;
    c->refs++;
    c->state = CA__C_CONNECT;
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, connect_cb);
    if (rc)
        ca__conn_close(c, uv_strerror(rc));
}

/* One PORT_PLEASE2 exchange with EPMD. */
typedef struct epq {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    ca__conn *c;
    unsigned char req[CA_DIST_MAXNAME + 8];
    size_t reqlen;
    unsigned char resp[CA_DIST_MAXNAME + 64];
    size_t have;
    bool done;
} epq;

static void epq_closed(uv_handle_t *h)
{
    epq *q = h->data;
    ca__conn_unref(q->c);
    free(q);
}

static void epq_finish(epq *q, int port, const char *why)
{
    ca__conn *c = q->c;
    if (q->done)
        return;
    q->done = true;
    uv_close((uv_handle_t *)&q->tcp, epq_closed);
    if (c->state != CA__C_EPMD)
        return;
    if (port <= 0)
        ca__conn_close(c, why);
    else
        dial(c, (uint16_t)port);
}

static void epq_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    epq *q = h->data;
    (void)hint;
    *b = uv_buf_init((char *)q->resp + q->have, (unsigned)(sizeof q->resp - q->have));
}

static void epq_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    epq *q = s->data;
    ca_epmd_node info;
    size_t used = 0;
    (void)b;
    if (nread > 0)
        q->have += (size_t)nread;
    int rc = q->have ? ca__epmd_port2_resp(q->resp, q->have, &used, &info) : 0;
    if (rc == CA_ENOENT) {
        epq_finish(q, -1, "the peer is not registered with EPMD");
    } else if (rc < 0) {
        epq_finish(q, -1, "bad answer from EPMD");
    } else if (used) {
        if (info.lowest > CA_DIST_VERSION || info.highest < CA_DIST_VERSION)
            epq_finish(q, -1, "the peer speaks no distribution version 6");
        else
            epq_finish(q, info.port, NULL);
    } else if (nread < 0 || q->have == sizeof q->resp) {
        epq_finish(q, -1, "EPMD closed without an answer");
    }
}

static void epq_write_cb(uv_write_t *req, int status)
{
    epq *q = req->data;
    if (status < 0)
        epq_finish(q, -1, "cannot write to EPMD");
}

static void epq_connect_cb(uv_connect_t *req, int status)
{
    epq *q = req->data;
    if (q->done)
        return;
    if (status < 0) {
        epq_finish(q, -1, "cannot reach EPMD on the peer's host");
        return;
    }
    uv_buf_t b = uv_buf_init((char *)q->req, (unsigned)q->reqlen);
    q->wreq.data = q;
    uv_write(&q->wreq, (uv_stream_t *)&q->tcp, &b, 1, epq_write_cb);
    uv_read_start((uv_stream_t *)&q->tcp, epq_alloc, epq_read);
}

static bool is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

static void ask_epmd(ca__conn *c)
{
    ca_node *n = c->node;
    char alive[CA_DIST_MAXNAME + 1];
    const char *at = strchr(c->peer_name, '@');
    snprintf(alive, sizeof alive, "%.*s", (int)(at - c->peer_name), c->peer_name);
    epq *q = calloc(1, sizeof *q);
    if (!q) {
        ca__conn_close(c, "out of memory");
        return;
    }
    ca_dist_out o = {q->req, sizeof q->req, 0};
    if (ca__epmd_port_please2_req(&o, alive)) {
        free(q);
        ca__conn_close(c, "bad node name");
        return;
    }
    q->reqlen = o.len;
    q->c = c;
    c->refs++;
    c->state = CA__C_EPMD;
    /* EPMD of a node on this host listens on loopback (and maybe only
     * there, ERL_EPMD_ADDRESS), so ask it there. */
    struct sockaddr_storage sa = c->addr;
    if (is_loopback(&sa) || sa.ss_family != AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&sa;
        memset(&sa, 0, sizeof sa);
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    ((struct sockaddr_in *)&sa)->sin_port = htons(n->epmd_port);
    uv_tcp_init(n->loop, &q->tcp);
    q->tcp.data = q;
    q->creq.data = q;
    if (uv_tcp_connect(&q->creq, &q->tcp, (struct sockaddr *)&sa, epq_connect_cb))
        epq_finish(q, -1, "cannot reach EPMD");
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    ca__conn *c = req->data;
    if (c->state == CA__C_RESOLVE) {
        if (status < 0 || !res) {
            char why[200];
            snprintf(why, sizeof why, "cannot resolve the peer's host: %s",
                     status < 0 ? uv_strerror(status) : "no address");
            ca__conn_close(c, why);
        } else {
            memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
            ask_epmd(c);
        }
    }
    uv_freeaddrinfo(res);
    ca__conn_unref(c);
}

ca__conn *ca__conn_connect(ca_node *n, uint32_t peer)
{
    const char *name = ca_node_name(peer);
    const char *at = name ? strchr(name, '@') : NULL;
    if (!at || at == name || !at[1]) {
        ca_log(n->rt, CA_LOG_WARNING, "dist: cannot connect to '%s': not a node name",
               name ? name : "?");
        return NULL;
    }
    ca__conn *c = conn_new(n, CA_DIST_INITIATOR);
    if (!c)
        return NULL;
    c->peer = peer;
    c->registered = true;
    snprintf(c->peer_name, sizeof c->peer_name, "%s", name);
    c->state = CA__C_RESOLVE;
    uv_timer_start(&c->timer, tick_cb, SETUP_TIMEOUT_MS, 0);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    c->refs++;
    if (uv_getaddrinfo(n->loop, &c->gai, gai_cb, at + 1, NULL, &hints)) {
        c->refs--;
        ca__conn_close(c, "cannot resolve the peer's host");
        return NULL;
    }
    return c;
}
