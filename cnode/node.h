/*
 * The distribution layer on libuv: internal structures shared by node.c
 * (lifecycle, EPMD registration, the runtime's hooks), conn.c (sockets,
 * handshake, framing, ticks) and dispatch.c (control messages <-> runtime
 * messages and signals, link and monitor tracking).
 *
 * Threads: the node's handles live on scheduler 0's libuv loop, so that
 * the thread that reads a frame also runs the actor it is for (when that
 * actor lives on scheduler 0) and writes the reply: a round trip crosses
 * no thread, as in Erlang, where distribution I/O runs on the schedulers
 * too. The price: decoding a large frame delays the actors of scheduler
 * 0, and the loop cannot spin for work (it would not see its sockets).
 * Everything in ca_node below `sched` and everything in ca__conn is
 * touched by that thread only. Other threads (other schedulers, the caller
 * of ca_node_*) reach it through the MPSC queue `outq` and the wake-up
 * `wake` (waker.h); scheduler 0 itself encodes its items at once, and
 * `flusher` writes them after the loop iteration's turns, in one write
 * per connection.
 */
#ifndef CA_CNODE_NODE_H
#define CA_CNODE_NODE_H

#include <stdatomic.h>
#include <stdbool.h>

#include <uv.h>

#include "dist.h"
#include "internal.h"

/* Per-peer queued-bytes counters, indexed by node index modulo this. */
#define CA__NODE_PEER_SLOTS 4096
/* Bytes a frame costs beyond its payload in the queue bound. */
#define CA__OUT_OVERHEAD 128

/* What an outbound item is. */
enum {
    CA__OUT_PID = 1,     /* m to pid `to` (message or signal) */
    CA__OUT_NAME = 2,    /* m (a term) to {name, peer} */
    CA__OUT_ALIAS = 3,   /* m (a term) to alias */
    CA__OUT_NODEMON = 4, /* node monitor change for m->from; name = node or "" */
};

/* One item queued by any thread for the node's loop. Owns m. */
typedef struct ca__out {
    ca__mpsc_node node;
    struct ca__out *next; /* in a connection's pending list */
    ca_msg *m;
    uint8_t how;
    uint8_t on;    /* NODEMON */
    uint32_t peer; /* node index of the destination */
    size_t cost;   /* counted in the peer's queued bytes; 0 = not counted */
    ca_pid to;     /* PID */
    ca_ref alias;  /* ALIAS */
    char name[];   /* NAME: the registered name; NODEMON: node or "" */
} ca__out;

enum {
    CA__C_RESOLVE = 1, /* looking up the peer's host */
    CA__C_EPMD,        /* asking EPMD for the port */
    CA__C_CONNECT,     /* TCP connect in progress */
    CA__C_HANDSHAKE,
    CA__C_UP,
    CA__C_WAIT,   /* our attempt lost a simultaneous connect: wait for theirs */
    CA__C_CLOSED, /* closing; handles going away */
};

/* A link or monitor that crossed a connection. */
typedef struct ca__link {
    ca_pid local, remote;
} ca__link;

/* A monitor across a connection, kept by reference in one of its maps. */
typedef struct ca__dmon {
    ca__refent e; /* first: the map's key */
    ca_pid local, remote;
    char name[]; /* they monitor a local process by this name, or "" */
} ca__dmon;

typedef struct ca_node ca_node;

/* Reading in batches from one connection (batch.c). */
typedef struct ca__batch {
    uint64_t in;         /* messages read (signals are not counted) */
    uint64_t mark;       /* `in` when the last batch was counted */
    uint64_t t;          /* uv_hrtime() when the last wait began */
    uint64_t retry;      /* `in` from which batching may start again */
    uint64_t retry_span; /* messages to the next try, after one failed */
    uint64_t rate_in;    /* `in` at rate_t: the current rate sample */
    uint64_t rate_t;
    uint64_t rate_ms;   /* uv_now() at rate_t */
    uint64_t msg_ns[2]; /* ns per message of the last two samples; 0: none */
    uint64_t poll_ns;   /* ns per message while polling: batching must keep up */
    uint64_t probe_ms;  /* uv_now() at which to sample the rate again */
    uint64_t win_got;   /* messages, ns and number of the waits not judged yet */
    uint64_t win_ns;
    unsigned win_waits;
    bool on;
    bool dense; /* a wait brought BATCH_DENSE since the last judgement */
} ca__batch;

/* Starts counting; now_ms: uv_now(). */
void ca__batch_init(ca__batch *b, uint64_t now_ms);
/* At the end of an iteration: whether the connection wants the loop to
 * wait (then it counts one wait). idle: scheduler 0's actors are done with
 * what came (no wait otherwise); *now: uv_hrtime(), read once per
 * iteration when first needed (0 before). */
bool ca__batch_next(ca__batch *b, uint64_t batch_ns, bool idle, uint64_t now_ms, uint64_t *now);

/* The control term of the last message delivered from a connection, and
 * where it went: a stream from one process to one destination repeats it
 * byte for byte, and decoding it and looking the name up cost more than
 * the message (dispatch.c). */
#define CA__MEMO_MAX 128
typedef struct ca__send_memo {
    size_t len; /* bytes of the control term, version byte included; 0: none */
    ca_pid from, to;
    bool by_name;     /* `to` came from a name, looked up at registry gen: */
    uint64_t reg_gen; /* the answer holds while ca__registry_gen is this */
    unsigned char ctrl[CA__MEMO_MAX];
} ca__send_memo;

typedef struct ca__conn {
    ca_node *node;
    struct ca__conn *next; /* node's list */
    int state;
    ca_dist_role role;
    int refs;      /* handles and requests outstanding, + 1 until closed */
    uint32_t peer; /* node index; 0 for an acceptor before the handshake */
    char peer_name[CA_DIST_MAXNAME + 1];
    uint64_t flags;  /* in force, once up */
    bool registered; /* in the node's peer map (findable by peer) */

    uv_tcp_t tcp;
    bool tcp_open;
    uv_timer_t timer; /* ticks, handshake and wait timeouts */
    bool timer_open;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    struct sockaddr_storage addr;

    ca_dist_hs *hs;

    /* reading */
    char *rbuf;
    size_t rlen, rcap;
    uint64_t last_rx; /* uv_now of the last bytes received */
    ca__batch batch;
    ca__send_memo memo;

    /* writing: frames go into wq; a write in flight owns wbuf */
    ei_x_buff wq, wbuf;
    size_t wq_cost, wbuf_cost; /* queued-bytes accounting to give back */
    uint64_t wq_frames, wbuf_frames;
    bool writing;
    uv_write_t wreq;
    uint64_t last_tx;

    /* items waiting for the connection to come up, in order */
    ca__out *pend_head, *pend_tail;

    /* links and monitors that crossed this connection */
    ca__link *links;
    size_t nlinks, caplinks;
    ca__refmap watching; /* ca__dmon: local actors monitor remote processes */
    ca__refmap watched;  /* ca__dmon: remote processes monitor local ones */
    uint64_t next_unlink_id;
} ca__conn;

/* A node monitor held by a local actor. */
typedef struct ca__nodemon {
    struct ca__nodemon *next;
    ca_pid pid;
    uint32_t node; /* 0 = all nodes */
} ca__nodemon;

struct ca_node {
    ca_rt *rt;
    char name[CA_DIST_MAXNAME + 1];
    char alive[CA_DIST_MAXNAME + 1];
    char host[CA_DIST_MAXNAME + 1];
    char cookie[CA_DIST_MAXCOOKIE + 1];
    uint32_t self_idx;
    uint32_t creation;
    uint16_t port;
    uint16_t epmd_port;
    unsigned ticktime;
    size_t max_frame;
    size_t max_queue;

    /* shared with other threads */
    ca__mpsc outq;
    _Atomic uint64_t outq_n;
    _Atomic bool stopping;
    _Atomic int inflight; /* senders between their stopping check and wake */
    _Atomic uint64_t queued[CA__NODE_PEER_SLOTS];
    _Atomic uint64_t st_conns, st_accepted, st_refused, st_in, st_out, st_dropped, st_bad;
    _Atomic uint64_t st_reads, st_waits;
    pthread_mutex_t list_lock; /* guards `up_names` for ca_node_connected */
    char **up_names;
    size_t nup;
    bool stopped;

    /* scheduler 0's thread; `done` is posted once, when `handles` (the
     * node's handles and connections) drops to 0 after closing_all */
    ca__sched *sched;
    uv_loop_t *loop;
    uv_sem_t done;
    int handles;
    ca__waker wake;
    bool wake_open;
    uv_prepare_t flusher; /* writes what scheduler 0's turns queued */
    bool flusher_open;
    bool flush_due;
    uint64_t batch_ns; /* the longest wait when reading in batches; 0: off */
    uv_tcp_t listener;
    bool listener_open;
    uv_tcp_t epmd;
    bool epmd_open;
    ca__conn *conns;
    ca__nodemon *nodemons;
    bool closing_all;
};

/* node.c */
ca__conn *ca__node_find(ca_node *n, uint32_t peer);
void ca__node_up_list(ca_node *n); /* refresh up_names */
void ca__node_peer_event(ca_node *n, uint32_t peer, bool up);
void ca__out_free(ca_node *n, ca__out *o, bool dropped);
void ca__node_on_out(ca_node *n, ca__out *o);
/* ca_send_alias of a term the caller has checked (ca_gen_reply). */
int ca__send_alias(ca_actor *self, const ca_ref *alias, const void *etf, size_t len);
/* A handle or connection of the node is gone (closed, freed). */
void ca__node_handle_gone(ca_node *n);

/* conn.c */
ca__conn *ca__conn_connect(ca_node *n, uint32_t peer); /* starts dialing */
void ca__conn_accept(ca_node *n);                      /* on the listener */
void ca__conn_close(ca__conn *c, const char *why);     /* fires noconnection if up */
void ca__conn_bad(ca__conn *c, const char *why);       /* the peer broke the protocol: close */
void ca__conn_unref(ca__conn *c);
/* Reserve room for `more` bytes in the write queue: 0 or CA_ENOMEM. */
int ca__conn_reserve(ca__conn *c, size_t more);
void ca__conn_flush(ca__conn *c);
void ca__conn_pend(ca__conn *c, ca__out *o);

/* dispatch.c */
/* Encode an outbound item onto an up connection (and track it). Takes o. */
void ca__dispatch_out(ca__conn *c, ca__out *o);
/* Handle one incoming pass-through frame. 0, or a negative code: close. */
int ca__dispatch_in(ca__conn *c, const ca_dist_frame *f);
/* The connection is gone: fire noconnection for what crossed it. */
void ca__dispatch_lost(ca__conn *c);
/* An item that will never be sent: a monitor or link in it fails with
 * noconnection, as against a node that cannot be reached in Erlang. */
void ca__dispatch_dropped(ca_node *n, const ca__out *o);

/* pid and ref conversions */
int ca__to_ei_pid(ca_pid p, erlang_pid *e);
int ca__to_ei_ref(const ca_ref *r, erlang_ref *e);
int ca__from_ei_pid(const erlang_pid *e, ca_pid *p);
int ca__from_ei_ref(const erlang_ref *e, ca_ref *r);

#endif
