/*
 * Internal structures of the actor runtime, shared by mailbox/ and by the
 * distribution layer (cnode/). Not installed.
 *
 * Threads and ownership:
 *  - a scheduler owns one libuv loop and runs on one thread; the actors
 *    placed on it are run only there;
 *  - everything in an actor except its mailbox, its message count, its
 *    dead flag and its counters is touched by its scheduler thread only;
 *    other threads reach an actor by sending it a message or a signal;
 *  - an actor is kept alive by references counted in its pid-table slot:
 *    one while it lives, one while it sits in a run queue, one per thread
 *    that is delivering to it. The last release frees it.
 */
#ifndef CA_INTERNAL_H
#define CA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "cactor.h"
#include "mpsc.h"
#include "refmap.h"
#include "waker.h"

/* Message kinds below 16 are user messages; the others are signals,
 * handled by the runtime before (or instead of) the behaviour. */
enum {
    CA__SIG_INIT = 16, /* first message of every actor; ptr = arg */
    CA__SIG_LINK,      /* from wants a link */
    CA__SIG_UNLINK,    /* from drops its link */
    CA__SIG_EXIT,      /* link broken by from's exit; data {'EXIT', From, Reason} */
    CA__SIG_EXIT2,     /* exit/2 from `from`; data {'EXIT', From, Reason} */
    CA__SIG_MONITOR,   /* from monitors us with ref */
    CA__SIG_DEMONITOR, /* from dropped its monitor ref */
    CA__SIG_DOWN,      /* a monitored actor died; data {'DOWN', Ref, process, Pid, R} */
    CA__SIG_INFO,      /* from asks for process_info; ref tags the answer, data is
                          the item (atom), the items (list) or '$all', no version
                          byte; from gets {Ref, Answer} ({Ref, undefined} if dead) */
};

/* actor.c: whether erlang:process_info's `item` is one a C actor has
 * (what a CA__SIG_INFO may ask for). */
int ca__info_item_known(const char *item);

struct ca_msg {
    ca__mpsc_node node;
    uint8_t kind;
    ca_pid from;
    union {
        struct {
            void *ptr;
            void (*dtor)(void *);
            uint64_t tag;
        } p;
        ca_ref ref; /* MONITOR, DEMONITOR, DOWN */
    } u;
    size_t len; /* ETF bytes in data */
    char data[];
};

/* Monitor records: `mons` are the monitors an actor holds, `watchers` the
 * ones held on it, by reference. */
typedef struct ca__mon {
    ca__refent e;  /* first: the map's key */
    ca_pid pid;    /* target (mons) or watcher (watchers); in mons, CA_PID_NONE
                      for a name on another node (or one not registered here) */
    uint32_t node; /* by name: the name's node */
    char name[];   /* by name: the registered name; else "" */
} ca__mon;

typedef struct ca__timer ca__timer;

/* Rarely used parts of an actor, allocated on first use so that an idle
 * actor stays small. */
typedef struct ca__actor_ext {
    ca_pid *links;
    uint32_t nlinks, caplinks;
    ca__refmap mons;
    ca__refmap watchers;
    ca__timer *timers;
} ca__actor_ext;

typedef struct ca__slot ca__slot;
typedef struct ca__sched ca__sched;

enum {
    CA__A_INIT_DONE = 0x1,
    CA__A_TRAP_EXIT = 0x2,
    CA__A_EXITING = 0x4,
    CA__A_EXITED = 0x8,
};

struct ca_actor {
    ca__mpsc mbox;
    _Atomic uint32_t count; /* messages pushed and not yet accounted by a turn */
    _Atomic uint32_t done;  /* of those, handled in the current turn */
    _Atomic uint8_t dead;
    _Atomic uint8_t overflow_exit;
    uint8_t overflow; /* ca_overflow */
    uint8_t flags;    /* CA__A_*, owner thread only */
    uint32_t cap;
    uint32_t batch;
    uint32_t reason_len; /* here, in what was padding: an idle actor is 192 B */
    ca__mpsc_node runq;  /* link in a run queue */
    ca__sched *sched;
    ca__slot *slot;
    const ca_behaviour *b;
    void *state;
    ca_pid pid;
    _Atomic uint64_t handled;
    _Atomic uint64_t overflows;
    ca__actor_ext *ext;
    char *_Atomic name;    /* registered name; written under the registry lock */
    char *reason;          /* pending exit reason (ETF), set by ca_exit */
    ca_actor *prev, *next; /* the scheduler's list of its actors */
    ca_msg *cur;           /* the message being handled, until kept or forwarded */
};

struct ca__slot {
    _Atomic uint64_t word; /* serial << 32 | references */
    ca_actor *_Atomic actor;
};

/* A function run on a scheduler's thread (ca__sched_post). */
typedef struct ca__task {
    ca__mpsc_node node;
    void (*fn)(struct ca__task *t);
} ca__task;

#define CA__MSG_CLASSES 12  /* sizes of small messages kept for reuse (msg.c) */
#define CA__MSG_CACHE   256 /* of each, per scheduler */

struct ca__sched {
    ca_rt *rt;
    unsigned idx;
    uv_loop_t loop;
    ca__waker waker;
    uv_idle_t idle;
    uv_thread_t thread;
    ca__mpsc inq;   /* actors made runnable by other threads */
    ca__mpsc tasks; /* ca__task from other threads */
    _Atomic uint32_t ntasks;
    ca__mpsc_node *rq_head, *rq_tail; /* local run queue, owner only */
    bool idle_on;
    bool stopping;
    bool hosts_io;        /* the node's sockets: the whole loop spins (sched_main) */
    uint64_t activity;    /* bumped by whatever the loop did: turns, I/O */
    unsigned spin_misses; /* spins in a row that found no work */
    pthread_mutex_t lock; /* guards the actor list and `closed` */
    bool closed;
    ca_actor *actors;
    uint64_t nactors;
    /* Messages delivered by this scheduler's thread. Only that thread
     * writes it (a plain load and store, no locked instruction), and it
     * sits on a cache line of its own: one shared counter bumped on every
     * send by every thread was a contention point. */
    char pad_sent[64];
    _Atomic uint64_t sent;
    char pad_sent_end[64];
    /* small messages freed here, for reuse (msg.c); owner only, and with
     * the line after it to itself: the schedulers sit in one array */
    unsigned msg_cached[CA__MSG_CLASSES];
    ca_msg *msg_cache[CA__MSG_CLASSES][CA__MSG_CACHE];
    char pad_cache_end[64];
};

/* Hooks of the distribution layer for remote pids and names; NULL when no
 * distribution is attached. Each takes ownership of `m`. */
typedef struct ca__dist_ops {
    int (*send)(void *ctx, ca_msg *m, ca_pid to);
    int (*send_name)(void *ctx, ca_msg *m, const char *name, uint32_t node);
    void (*stop)(void *ctx); /* ca_rt_free's safety net; idempotent */
} ca__dist_ops;

#define CA__SLOT_CHUNK_BITS 12
#define CA__SLOT_CHUNK      (1u << CA__SLOT_CHUNK_BITS)
#define CA__SLOT_MAX_CHUNKS 4096

typedef struct ca__registry ca__registry;
typedef struct ca__rpc_table ca__rpc_table;

struct ca_rt {
    unsigned nsched;
    ca__sched *sched;
    unsigned batch;
    uint64_t spin_ns;
    uint32_t node;
    uint32_t creation;
    ca_log_fn log;
    void *log_ctx;
    ca_log_level log_level;
    _Atomic bool closing;
    _Atomic unsigned rr;
    _Atomic uint64_t next_ref;
    _Atomic uint64_t next_timer;

    /* pid table */
    ca__slot *_Atomic chunks[CA__SLOT_MAX_CHUNKS];
    pthread_mutex_t slot_lock;
    uint32_t nslots; /* slots handed out so far (slot 0 is never used) */
    uint32_t *free_slots;
    uint32_t nfree, capfree;

    ca__registry *reg;
    ca__rpc_table *rpc;
    _Atomic uint64_t st_restarts; /* children restarted by any supervisor */

    const ca__dist_ops *dist;
    void *dist_ctx;

    _Atomic uint64_t st_alive, st_spawned, st_overflows;
    _Atomic uint64_t st_sent; /* sends from threads that are not schedulers;
                                 see ca__sched.sent */

    pthread_mutex_t wait_lock;
    pthread_cond_t wait_cond;
    bool shut;
    int shut_code;
    _Atomic unsigned phase_done;
};

/* Messages not yet handled, given a count read from a->count. A turn
 * publishes `done` as it goes and resets it after settling the count, so
 * in between this may undercount, never overcount. */
static inline uint32_t ca__queued(ca_actor *a, uint32_t count)
{
    uint32_t done = atomic_load_explicit(&a->done, memory_order_relaxed);
    return count > done ? count - done : 0;
}

/* A thread outside the runtime waiting for an actor's answer (blocking
 * supervisor calls, ca_rt_call). The actor's ca__waiter_done is the last
 * it may touch of the waiter's memory: the waiter returns, and frees it,
 * from then on. */
typedef struct ca__waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} ca__waiter;

static inline void ca__waiter_init(ca__waiter *w)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->done = false;
}

static inline void ca__waiter_done(ca__waiter *w)
{
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Until done, then the waiter is gone (init again to reuse it). */
static inline void ca__waiter_wait(ca__waiter *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

/* rt.c */
/* The scheduler whose thread this is, or NULL. */
extern _Thread_local ca__sched *ca__tls_sched;
ca__sched *ca__current_sched(void);
void ca__schedule(ca_actor *a); /* caller holds a reference; adds one for the run queue */
/* The same, handing the caller's reference over to the run queue. */
void ca__schedule_ref(ca_actor *a);
void ca__sched_post(ca__sched *s, ca__task *t);
void ca__actor_list_remove(ca_actor *a);

/* actor.c */
ca_actor *ca__actor_get(ca_rt *rt, ca_pid pid); /* NULL or a referenced actor */
void ca__actor_ref(ca_actor *a);
/* True once the behaviour's init has run (whatever it returned). */
static inline bool ca__actor_inited(const ca_actor *a)
{
    return (a->flags & CA__A_INIT_DONE) != 0;
}
void ca__actor_unref(ca_actor *a);
/* One turn on the owner thread. True: the actor stays runnable and the
 * caller queues it again (with the run-queue reference); false: that
 * reference was dropped. */
bool ca__run_actor(ca_actor *a);
void ca__exit_all(ca__sched *s, const char *reason, size_t len);
void ca__slots_free(ca_rt *rt);

/* msg.c */
ca_msg *ca__msg_new(uint8_t kind, ca_pid from, size_t len);
/* A signal of `kind` from `from`, with data[0..len) copied (len may be 0)
 * and `ref` (may be NULL), routed to `to`: ca__route's code, or
 * CA_ENOMEM. */
int ca__signal(ca_rt *rt, uint8_t kind, ca_pid from, ca_pid to, const ca_ref *ref, const void *data,
               size_t len);
ca_msg *ca__msg_term(ca_pid from, const void *etf, size_t len);
void ca__msg_free(ca_msg *m);
/* Free the small messages the scheduler kept (its thread, at its end). */
void ca__msg_cache_drain(ca__sched *s);
/* Deliver to a referenced local actor; takes `m` in every case (on
 * failure it is freed without running a pointer payload's destructor). */
int ca__deliver(ca_actor *a, ca_msg *m);
/* Route to any pid (local or through the distribution); takes `m`. */
int ca__route(ca_rt *rt, ca_msg *m, ca_pid to);
/* Encode a formatted term with version byte into a thread-local buffer. */
int ca__vfmt_tls(const char *fmt, va_list ap, const char **buf, size_t *len);
/* The same for the arguments that follow `fmt` in a variadic function:
 * the body of every printf-like wrapper of the API. */
#define CA__FMT_VARARGS(fmt, buf, len, rc)                                                         \
    do {                                                                                           \
        va_list ap_;                                                                               \
        va_start(ap_, fmt);                                                                        \
        (rc) = ca__vfmt_tls((fmt), ap_, &(buf), &(len));                                           \
        va_end(ap_);                                                                               \
    } while (0)

/* node.c: ca_node_intern of name[0..len), which need not end in a NUL
 * (but holds none). */
int ca__node_intern_n(const char *name, size_t len, uint32_t *idx);

/* term.c: 0 if buf[0..len) is exactly one well-formed term (a leading
 * version byte is skipped), checked without recursion and never reading
 * past len; else CA_EBADTERM. Use it on anything not built here. */
int ca__term_check(const char *buf, size_t len);
/* Past the one term at buf[*idx], within len, without recursion: 0 or
 * CA_EBADTERM. For terms from outside instead of ei_skip_term, which
 * recurses and, on FLOAT_EXT, reads past the term (sscanf). */
int ca__term_skip(const char *buf, size_t len, int *idx);
/* ca_vmatch_term without the check, for a message's term: every one was
 * checked or built here before it became a message (sends check what
 * they copy, the distribution layer what it reads, signals are built). */
int ca__vmatch_msg(const char *buf, size_t len, const char *pattern, va_list ap);
/* gen.c: {system, {Pid, Tag}, Request}, a call from Erlang's sys module
 * (as ca_gen_call_match matches '$gen_call'). */
int ca__sys_call_match(const ca_msg *m, ca_call_from *from, const char **req, size_t *len);
/* gen.c: sys:get_status's answer in gen_server's shape, for an actor
 * named `fallback` when it is not registered, its status (running,
 * suspended) and its state as a term (no version byte; NULL: none). */
int ca__sys_status_reply(ca_actor *self, const ca_call_from *from, const char *fallback,
                         const char *status, const char *state, size_t len);
/* Whether this thread compiles formats and patterns (on by default): the
 * tests run with it off too, through the interpreter alone. */
void ca__term_compiled(int on);
/* A complete ETF buffer: version byte, then exactly one term. */
static inline int ca__etf_check(const void *etf, size_t len)
{
    if (!etf || len < 2 || *(const unsigned char *)etf != 131)
        return CA_EBADTERM;
    return ca__term_check(etf, len);
}

/* registry.c */
int ca__registry_new(ca__registry **r);
void ca__registry_free(ca__registry *r);
void ca__registry_drop(ca_rt *rt, ca_actor *a); /* on exit */
int ca__name_valid(const char *name);
int ca__register_actor(ca_rt *rt, const char *name, ca_actor *a);
/* Changes with every name added or removed; read it before a lookup
 * whose answer is kept, and the answer holds while it has not moved. */
uint64_t ca__registry_gen(ca_rt *rt);
/* The name `pid` is registered under, or "" (out holds CA_MAXATOM). */
void ca__name_of(ca_rt *rt, ca_pid pid, char *out, size_t cap);

/* rpc.c */
int ca__rpc_new(ca__rpc_table **t);
void ca__rpc_free(ca__rpc_table *t);
/* A registered function, with how long its calls run (in microseconds,
 * averaged over the last few; 0 until one ran). */
typedef struct ca__rpc_hit {
    ca_rpc_fn fn;
    void *ctx;
    _Atomic uint32_t *cost_us;
    _Atomic uint64_t *calls;
} ca__rpc_hit;
/* The function for mod:fun/arity; CA_ENOENT if none. */
int ca__rpc_find(ca_rt *rt, const char *mod, const char *fun, int arity, ca__rpc_hit *hit);
/* Account one call of `ns` nanoseconds to the function's average. */
void ca__rpc_cost(ca__rpc_hit *hit, uint64_t ns);
/* What cactor:info/0 shows of each registered function (arity -1: any). */
typedef struct ca__rpc_stat {
    const char *mod, *fun;
    int arity;
    uint64_t calls;
    uint32_t avg_us;
} ca__rpc_stat;
/* cb for each registered function, under the table's read lock (cb must
 * not register); stops at cb's first non-zero return, which it returns. */
int ca__rpc_each(ca_rt *rt, int (*cb)(void *arg, const ca__rpc_stat *st), void *arg);

/* timer.c */
void ca__timers_cancel_all(ca_actor *a);

/* terms for signals */
int ca__reason_of_exit(const ca_msg *m, const char **reason, size_t *len);
/* 1 if buf (version byte optional) is just the atom `atom` (ASCII). */
int ca__is_atom(const char *buf, size_t len, const char *atom);
void ca__set_reason_fmt(ca_actor *a, const char *fmt, ...);

#endif
