/*
 * cactor: native C actors with supervised mailboxes, interoperable with
 * Erlang distribution.
 *
 * This is the one public header. Ownership rules are stated on every
 * prototype; where nothing is said, pointers are borrowed for the duration
 * of the call only.
 *
 * Conventions (after libuv and erl_interface):
 *  - every function that can fail returns 0 or a negative CA_E* code;
 *    ca_strerror() and ca_errname() describe it;
 *  - functions taking `ca_actor *self` may only be called from a callback
 *    of that actor (on its scheduler thread); functions taking `ca_rt *`
 *    may be called from any thread;
 *  - every message payload is an Erlang term in external term format
 *    (ETF, starting with the version byte 131), built and read with ei or
 *    with ca_fmt()/ca_match(), except native pointer messages, which never
 *    leave the process.
 */
#ifndef CACTOR_H
#define CACTOR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <ei.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CA_VERSION_MAJOR 0
#define CA_VERSION_MINOR 1
#define CA_VERSION_PATCH 0

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

#define CA_ERRNO_MAP(XX)                                                                           \
    XX(EINVAL, -1, "einval", "invalid argument")                                                   \
    XX(ENOMEM, -2, "enomem", "out of memory")                                                      \
    XX(ESRCH, -3, "esrch", "no such actor")                                                        \
    XX(ENOENT, -4, "enoent", "no such name or item")                                               \
    XX(EEXIST, -5, "eexist", "already exists")                                                     \
    XX(EAGAIN, -6, "eagain", "mailbox full")                                                       \
    XX(EBADTERM, -7, "ebadterm", "malformed term")                                                 \
    XX(ENOMATCH, -8, "enomatch", "term does not match pattern")                                    \
    XX(ECLOSED, -9, "eclosed", "runtime is shutting down")                                         \
    XX(EBADNAME, -10, "ebadname", "invalid name")                                                  \
    XX(ENOTSUP, -11, "enotsup", "operation not supported")                                         \
    XX(ETIMEDOUT, -12, "etimedout", "timed out")                                                   \
    XX(ENOTCONN, -13, "enotconn", "node not connected")                                            \
    XX(EPROTO, -14, "eproto", "protocol error")                                                    \
    XX(ETOOBIG, -15, "etoobig", "too big")                                                         \
    XX(EBADPAT, -16, "ebadpat", "malformed pattern")                                               \
    XX(EUV, -17, "euv", "libuv call failed")                                                       \
    XX(EBUSY, -18, "ebusy", "busy")                                                                \
    XX(EPERM, -19, "eperm", "not permitted")                                                       \
    XX(EIO, -20, "eio", "input/output error")

typedef enum {
#define XX(name, val, lower, str) CA_##name = (val),
    CA_ERRNO_MAP(XX)
#undef XX
} ca_errno;

/* Static strings; never NULL ("unknown error" for unknown codes). */
const char *ca_strerror(int err);
/* Lower-case short name of an error ("esrch"), used as Erlang atom in exit
 * reasons such as {error, esrch}. Static; never NULL. */
const char *ca_errname(int err);

/* ------------------------------------------------------------------ */
/* Identifiers                                                         */
/* ------------------------------------------------------------------ */

/* A process identifier, local or remote, lossless for Erlang pids.
 * `node` is an index in the process-wide node table (ca_node_intern);
 * 0 means "no pid". Passed by value. */
typedef struct ca_pid {
    uint32_t node;
    uint32_t num;
    uint32_t serial;
    uint32_t creation;
} ca_pid;

/* A reference (monitor references, call tags), lossless for Erlang refs. */
typedef struct ca_ref {
    uint32_t node;
    uint32_t creation;
    uint32_t len; /* number of words used in n, 1..5 */
    uint32_t n[5];
} ca_ref;

#define CA_PID_NONE ((ca_pid){0, 0, 0, 0})

int ca_pid_eq(ca_pid a, ca_pid b);
int ca_pid_is_none(ca_pid p);
int ca_ref_eq(const ca_ref *a, const ca_ref *b);

/* The node table is process-wide and only grows: node names (atoms such
 * as "foo@host") map to small indices >= 1 that stay valid until exit.
 * ca_node_intern copies `name`. Names longer than 1020 bytes, empty, or
 * not valid UTF-8 get CA_EBADNAME. */
int ca_node_intern(const char *name, uint32_t *idx);
/* The interned name, or NULL for an unknown index. The string lives until
 * the process exits. */
const char *ca_node_name(uint32_t idx);

/* ------------------------------------------------------------------ */
/* Terms: encoding, formatting and matching over ei                     */
/* ------------------------------------------------------------------ */

/* Largest atom, in bytes of UTF-8, plus the terminating NUL. */
#define CA_MAXATOM (255 * 4 + 1)

/* Encode a pid or ref at the end of `x` (ei_x_buff, caller-owned). */
int ca_encode_pid(ei_x_buff *x, ca_pid pid);
int ca_encode_ref(ei_x_buff *x, const ca_ref *ref);
/* Decode a pid or ref at buf[*index], advancing *index (as ei does). The
 * node name is interned. As with ei's decoders, buf must hold the whole
 * term (e.g. a message, which the runtime has checked): there is no
 * length to stop at. */
int ca_decode_pid(const char *buf, int *index, ca_pid *pid);
int ca_decode_ref(const char *buf, int *index, ca_ref *ref);

/*
 * ca_fmt appends one term, written in Erlang syntax, to `x` (caller-owned;
 * start it with ei_x_new_with_version to get a complete ETF buffer).
 *
 *   literals: atoms (ok, 'EXIT', 'with space'), integers (-42), floats
 *             (1.5), strings ("abc", encoded as Erlang strings), binaries
 *             (<<"abc">>), tuples {..}, lists [..] and [H | T], maps #{K => V}
 *   ~a  const char *      atom (UTF-8)
 *   ~s  const char *      string (list of code points; UTF-8 input)
 *   ~i  long              integer
 *   ~u  unsigned long     integer
 *   ~l  long long         integer
 *   ~f  double            float
 *   ~b  const void *, size_t            binary, copied
 *   ~p  ca_pid            pid (by value)
 *   ~r  const ca_ref *    reference
 *   ~t  const char *, size_t  an encoded term, embedded as is (a leading
 *                         version byte 131 is skipped)
 *
 * Returns 0, CA_EBADPAT for a malformed format, CA_EINVAL for bad
 * arguments (an invalid atom, a NULL string) and for a map given the same
 * key twice (which Erlang would refuse), CA_ENOMEM.
 * On error `x` may hold a partial term: discard it. Each thread keeps the
 * formats it used last compiled (by content, up to 63 bytes): a format
 * written once in the code costs its placeholders only.
 */
int ca_fmt(ei_x_buff *x, const char *fmt, ...);
int ca_vfmt(ei_x_buff *x, const char *fmt, va_list ap);

/*
 * ca_match_term matches the term in buf[0..len) (a leading version byte
 * is skipped) against `pattern`, written like ca_fmt's formats. Literals
 * must be equal (integers by value whatever their encoding, atoms by
 * name whatever their encoding); a map pattern matches a map holding at
 * least those keys with matching values; `_` matches any term.
 * Placeholders store what they match through pointers; a NULL pointer
 * matches the type without storing:
 *
 *   ~a  char buf[CA_MAXATOM]             atom name, NUL-terminated
 *   ~s  char *buf, size_t cap             string or list of bytes; fails
 *                                         (no match) if it does not fit
 *   ~i  long *       ~u  unsigned long *   ~l  long long *   (must fit)
 *   ~f  double *
 *   ~b  const char **data, size_t *len   binary: points into buf
 *   ~p  ca_pid *     ~r  ca_ref *
 *   ~t  const char **start, size_t *len  any term: its encoding in buf
 *                                         (no version byte)
 *
 * Returns 0 on a match, CA_ENOMATCH when the term does not match (what
 * was stored so far is unspecified), CA_EBADTERM when buf is not a valid
 * term, CA_EBADPAT for a malformed pattern. Patterns are kept compiled
 * per thread like formats: a pattern written once in the code is not
 * parsed again.
 */
int ca_match_term(const char *buf, size_t len, const char *pattern, ...);
int ca_vmatch_term(const char *buf, size_t len, const char *pattern, va_list ap);

/* Print the term in buf[0..len) in Erlang syntax into out (NUL-terminated,
 * truncated with "..." if longer than cap-1). Returns the length written,
 * or a negative code for a malformed term (out then says so). */
int ca_term_print(const char *buf, size_t len, char *out, size_t cap);

/* ------------------------------------------------------------------ */
/* Runtime                                                             */
/* ------------------------------------------------------------------ */

typedef struct ca_rt ca_rt;
typedef struct ca_actor ca_actor;
typedef struct ca_msg ca_msg;

typedef enum {
    CA_LOG_NONE = -1, /* as a level: log nothing */
    CA_LOG_ERROR = 0,
    CA_LOG_WARNING = 1,
    CA_LOG_INFO = 2,
    CA_LOG_DEBUG = 3,
} ca_log_level;

/* Called from any thread, possibly concurrently; `line` is borrowed. */
typedef void (*ca_log_fn)(void *ctx, ca_log_level level, const char *line);

typedef struct ca_rt_opts {
    unsigned threads;      /* scheduler threads; 0 = number of cores */
    unsigned batch;        /* messages per actor turn; 0 = 64 */
    unsigned spin_us;      /* a scheduler out of work polls for this long before it
                              sleeps (ca_rt_opts_init: 20; 0: never; at most 1000):
                              CPU time traded for cross-thread latency */
    const char *node_name; /* copied; NULL = "nonode@nohost" */
    uint32_t creation;     /* node incarnation; 0 = a fresh non-zero value */
    ca_log_fn log;         /* NULL = lines to stderr */
    void *log_ctx;
    ca_log_level log_level; /* lines above this level are dropped (ca_rt_opts_init:
                               CA_LOG_WARNING; CA_LOG_NONE: nothing) */
} ca_rt_opts;

/* Fill `opts` with defaults. */
void ca_rt_opts_init(ca_rt_opts *opts);

/* Create a runtime and start its scheduler threads. `opts` may be NULL.
 * On success *rt is owned by the caller, who ends it with ca_rt_free. */
int ca_rt_new(const ca_rt_opts *opts, ca_rt **rt);

/* Ask the runtime to stop: ca_rt_wait returns. Safe from any thread,
 * including actor callbacks; `code` is what ca_rt_wait returns. */
void ca_rt_shutdown(ca_rt *rt, int code);

/* Block (not on a scheduler thread!) until ca_rt_shutdown or until
 * timeout_ms passes (-1 = no limit). Returns the shutdown code, or
 * CA_ETIMEDOUT. */
int ca_rt_wait(ca_rt *rt, int64_t timeout_ms);

/* Stop every actor (terminate runs with reason `shutdown`), join the
 * schedulers and free everything, including messages still queued. Must
 * not be called from a scheduler thread. */
void ca_rt_free(ca_rt *rt);

unsigned ca_rt_threads(const ca_rt *rt);
/* This runtime's node index and incarnation (for local pids). */
uint32_t ca_rt_node(const ca_rt *rt);
uint32_t ca_rt_creation(const ca_rt *rt);
int ca_pid_is_local(const ca_rt *rt, ca_pid pid);

/* Runtime-wide figures (relaxed reads, for monitoring). */
typedef struct ca_rt_stats {
    uint64_t actors_alive;
    uint64_t actors_spawned;
    uint64_t messages_sent; /* local deliveries accepted */
    uint64_t overflows;     /* mailbox overflows, any policy */
    uint64_t restarts;      /* children restarted by supervisors */
} ca_rt_stats;
void ca_rt_stats_get(ca_rt *rt, ca_rt_stats *st);
/* The pids of the actors alive now (a snapshot, as erlang:processes/0
 * gives): *pids is malloc'ed, the caller's to free (NULL when *n is 0).
 * Any thread. */
int ca_rt_actors(ca_rt *rt, ca_pid **pids, size_t *n);

/* Log a line through the runtime's log function (printf-style). */
void ca_log(ca_rt *rt, ca_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ */
/* Actors                                                              */
/* ------------------------------------------------------------------ */

/*
 * A behaviour: static callbacks shared by many actors; must outlive them.
 *
 * init     optional; runs first on the actor's thread. Sets *state (it
 *          starts as `arg`). A non-zero return makes the actor exit with
 *          reason {init_failed, ErrName} unless ca_exit set one. A
 *          restarted actor gets the same `arg` again: build fresh state
 *          from it here rather than changing it.
 * handle   required; one call per message. `msg` is owned by the runtime
 *          and freed after the call. Return 0 to go on; a negative code
 *          crashes the actor with reason {error, ErrName} unless ca_exit
 *          set a reason during the call.
 * terminate optional; runs exactly once for every actor that was spawned,
 *          whatever happened (even when init failed or never ran, e.g. at
 *          shutdown), with the exit reason (ETF, borrowed) and whatever
 *          state is (`arg` if init did not set it). It owns releasing
 *          `state`.
 */
typedef struct ca_behaviour {
    const char *name; /* for log lines; may be NULL */
    int (*init)(ca_actor *self, void *arg, void **state);
    int (*handle)(ca_actor *self, void *state, ca_msg *msg);
    void (*terminate)(ca_actor *self, void *state, const char *reason, size_t len);
} ca_behaviour;

typedef enum {
    CA_OVERFLOW_REFUSE = 0,      /* the send fails with CA_EAGAIN */
    CA_OVERFLOW_DROP_OLDEST = 1, /* the oldest queued message is dropped */
    CA_OVERFLOW_EXIT = 2,        /* the actor exits with mailbox_overflow */
} ca_overflow;

#define CA_SPAWN_LINK      0x1 /* link to the spawning actor, atomically */
#define CA_SPAWN_TRAP_EXIT 0x2 /* start with trap_exit set */

#define CA_SCHED_DEFAULT (-1) /* ca_spawn: round robin; ca_spawn_child: the parent's */
#define CA_SCHED_SPREAD  (-2) /* round robin, also for ca_spawn_child */

typedef struct ca_spawn_opts {
    const char *name;     /* register atomically (copied); NULL = none */
    unsigned flags;       /* CA_SPAWN_* */
    int sched;            /* scheduler index; -1 = default placement */
    uint32_t mailbox_cap; /* 0 = unbounded */
    ca_overflow overflow; /* policy when mailbox_cap is reached */
    unsigned batch;       /* 0 = runtime default */
} ca_spawn_opts;

void ca_spawn_opts_init(ca_spawn_opts *o);

/* Spawn an actor from any thread; `opts` may be NULL. Placement: round
 * robin over schedulers. On success *pid (may be NULL) is its pid; init
 * runs later, on its own thread. Errors: CA_EINVAL (no behaviour or
 * handle), CA_EBADNAME, CA_EEXIST (name taken), CA_ECLOSED, CA_ENOMEM. */
int ca_spawn(ca_rt *rt, const ca_behaviour *b, void *arg, const ca_spawn_opts *opts, ca_pid *pid);
/* Spawn from inside a callback of `self`. Default placement: self's
 * scheduler. CA_SPAWN_LINK links the child to self before it runs. */
int ca_spawn_child(ca_actor *self, const ca_behaviour *b, void *arg, const ca_spawn_opts *opts,
                   ca_pid *pid);

ca_pid ca_self(const ca_actor *self);
ca_rt *ca_actor_rt(const ca_actor *self);
/* The scheduler the actor runs on, 0..threads-1. */
unsigned ca_actor_sched(const ca_actor *self);

/* Set the exit reason (formatted as with ca_fmt) and make the actor exit
 * when the current callback returns. The first reason set wins. */
int ca_exit(ca_actor *self, const char *reason_fmt, ...);
/* Same, with an encoded reason (ETF, copied; CA_EBADTERM if it is not one
 * term, CA_ETOOBIG from 4 GiB). */
int ca_exit_term(ca_actor *self, const char *reason, size_t len);

/* Send an exit signal to `to`, as erlang:exit/2 from `from` (may be
 * CA_PID_NONE): reason kill cannot be trapped and kills with reason
 * killed; normal is ignored unless `to` traps exits; any other reason
 * kills, or arrives as {'EXIT', From, Reason} when trapping. Any thread.
 * To a remote `to`, a `from` that is none or not of this node goes out as
 * a pid of this node that no actor has (a node speaks for its own
 * processes only). */
int ca_kill(ca_rt *rt, ca_pid from, ca_pid to, const char *reason_fmt, ...);
int ca_kill_term(ca_rt *rt, ca_pid from, ca_pid to, const char *reason, size_t len);

/* Exit signals from links and exit/2 arrive as messages
 * {'EXIT', From, Reason} while trapping. Returns the previous value. */
int ca_trap_exit(ca_actor *self, int on);

/* Link self and `to` (both directions). A dead local `to` gives
 * CA_ESRCH. When either exits, the other gets an exit signal. */
int ca_link(ca_actor *self, ca_pid to);
int ca_unlink(ca_actor *self, ca_pid to);

/* Monitor `to`: when it exits (or is already gone), self receives
 * {'DOWN', Ref, process, Pid, Reason}. *ref (may be NULL) is the monitor
 * reference. A dead local target gives a DOWN with reason noproc. */
int ca_monitor(ca_actor *self, ca_pid to, ca_ref *ref);
/* Monitor the process registered as `name` on `node` ("alive@host"; NULL
 * or this node's name: here), as erlang:monitor(process, {Name, Node}):
 * the DOWN names it {Name, Node}, as {'DOWN', Ref, process, {Name, Node},
 * Reason}. Nothing registered under the name: that DOWN at once, with
 * noproc; the node cannot be reached or goes away: noconnection. The
 * name is looked up when the monitor is made (a process registered under
 * it later is not watched). CA_EBADNAME for a bad name or node,
 * CA_ENOTCONN for another node without distribution. */
int ca_monitor_name(ca_actor *self, const char *name, const char *node, ca_ref *ref);
/* Remove a monitor; a DOWN already queued is removed too (flush). */
int ca_demonitor(ca_actor *self, const ca_ref *ref);

/* A fresh reference of this node (any thread). */
void ca_make_ref(ca_rt *rt, ca_ref *ref);

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

/* Register `pid` (a live local actor) under `name` (an atom: 1..255
 * characters of UTF-8; copied). Errors: CA_EBADNAME, CA_EEXIST (name
 * taken or pid already named), CA_ESRCH. A name is freed when its actor
 * exits. Any thread. */
int ca_register(ca_rt *rt, const char *name, ca_pid pid);
int ca_unregister(ca_rt *rt, const char *name);
/* CA_ENOENT if no actor has the name. */
int ca_whereis(ca_rt *rt, const char *name, ca_pid *pid);
/* The names registered now (a snapshot): *names is a malloc'ed array of
 * *n malloc'ed strings, the caller's to free with ca_names_free. */
int ca_registered(ca_rt *rt, char ***names, size_t *n);
void ca_names_free(char **names, size_t n);

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

typedef enum {
    CA_MSG_TERM = 1, /* ETF payload */
    CA_MSG_PTR = 2,  /* native pointer with a tag (local only) */
} ca_msg_kind;

ca_msg_kind ca_msg_type(const ca_msg *m);
/* The sender if known, else CA_PID_NONE. */
ca_pid ca_msg_from(const ca_msg *m);
/* ETF payload (with version byte), owned by the message; NULL for PTR.
 * It has been checked to be exactly one well-formed term, so ei_decode_*
 * stay within it, with two exceptions for terms from peers: ei_skip_term
 * (it recurses once per nesting level) and ei_decode_double on an old
 * FLOAT_EXT whose text fills its 31 bytes (sscanf reads on past them).
 * ca_match with ~t and ~f has neither problem. */
const char *ca_msg_data(const ca_msg *m, size_t *len);
/* Pointer payload and tag (tag may be NULL), still owned by the message. */
void *ca_msg_ptr(const ca_msg *m, uint64_t *tag);
/* Take the pointer payload: its destructor will not run. */
void *ca_msg_take_ptr(ca_msg *m);

/*
 * Messages past their handler. A handler may keep the message it is
 * handling (m as passed to handle): ca_msg_keep returns it, and it is then
 * the actor's until ca_msg_release or ca_forward (to defer a request, say:
 * there is no selective receive); NULL if m is not the message being
 * handled. m NULL means the message being handled (ca_gen_server's
 * handle_call does not see it). ca_forward sends the message being handled, or a kept one, to
 * `to` without copying it (a dispatcher handing requests to workers; a
 * gen_server call keeps its caller, so a worker can answer it); the
 * receiver's ca_msg_from is still the original sender. ca_forward takes
 * the message in every case, as a send to a dead pid drops it: the return
 * is ca_send's (PTR messages stay on this node: CA_ENOTSUP), or CA_EINVAL
 * for a signal. A kept message's data stays valid and unchanged; release
 * what the actor still keeps when it terminates.
 */
ca_msg *ca_msg_keep(ca_actor *self, ca_msg *m);
void ca_msg_release(ca_msg *m);
int ca_forward(ca_actor *self, ca_pid to, ca_msg *m);
/* Match the message's term (CA_ENOMATCH for a PTR message). */
int ca_match(const ca_msg *m, const char *pattern, ...);

/*
 * Sending. A local destination gets the message in its mailbox; a remote
 * one goes through the distribution layer if one is attached (else
 * CA_ENOTCONN). Per sender, messages arrive in the order sent.
 *
 * Errors: CA_ESRCH (dead or unknown local pid), CA_ENOENT (unregistered
 * name), CA_EAGAIN (mailbox full under the refuse policy), CA_EBADTERM
 * (payload not a term), CA_EINVAL.
 */
/* Copy `len` bytes of ETF (with version byte) into a new message. */
int ca_send(ca_actor *self, ca_pid to, const void *etf, size_t len);
/* Format the message as with ca_fmt. */
int ca_sendf(ca_actor *self, ca_pid to, const char *fmt, ...);
/* Zero-copy native message: on success the message owns `ptr` and calls
 * dtor(ptr) (if not NULL) unless the receiver takes it; on failure the
 * caller still owns ptr. Local destinations only (CA_ENOTSUP). */
int ca_send_ptr(ca_actor *self, ca_pid to, uint64_t tag, void *ptr, void (*dtor)(void *));
int ca_send_name(ca_actor *self, const char *name, const void *etf, size_t len);
int ca_sendf_name(ca_actor *self, const char *name, const char *fmt, ...);

/* The same from any thread, outside actors: the sender is `from` (which
 * may be CA_PID_NONE). */
int ca_rt_send(ca_rt *rt, ca_pid from, ca_pid to, const void *etf, size_t len);
int ca_rt_sendf(ca_rt *rt, ca_pid from, ca_pid to, const char *fmt, ...);
int ca_rt_send_ptr(ca_rt *rt, ca_pid from, ca_pid to, uint64_t tag, void *ptr,
                   void (*dtor)(void *));
int ca_rt_send_name(ca_rt *rt, ca_pid from, const char *name, const void *etf, size_t len);

/* ------------------------------------------------------------------ */
/* Timers and background work                                          */
/* ------------------------------------------------------------------ */

typedef uint64_t ca_timer;

/* After `ms` milliseconds, send the term (ETF, copied) to `to` with self
 * as sender: never earlier (as erlang:send_after), later by up to a
 * millisecond and whatever keeps the scheduler busy. Timers of an actor
 * are cancelled when it exits. *t (may be NULL) identifies the timer. */
int ca_send_after(ca_actor *self, uint64_t ms, ca_pid to, const void *etf, size_t len, ca_timer *t);
int ca_sendf_after(ca_actor *self, uint64_t ms, ca_pid to, ca_timer *t, const char *fmt, ...);
/* 0 if the timer was pending and is now cancelled, CA_ENOENT if it had
 * already fired or is unknown. */
int ca_cancel_timer(ca_actor *self, ca_timer t);

/* Run work(arg) on libuv's thread pool; when it returns R, self receives
 * a PTR message with `tag` and pointer R, owned by the message (dtor
 * releases it if the handler does not take it). work must not touch the
 * actor. If the actor has exited by then, dtor(R) runs. */
int ca_queue_work(ca_actor *self, uint64_t tag, void *(*work)(void *arg), void *arg,
                  void (*dtor)(void *));

/* ------------------------------------------------------------------ */
/* Statistics                                                          */
/* ------------------------------------------------------------------ */

typedef struct ca_actor_stats {
    uint64_t queue_len; /* messages waiting */
    uint64_t handled;   /* messages handled so far */
    uint64_t overflows; /* messages refused or dropped, or the overflow exit */
    uint32_t mailbox_cap;
    unsigned sched;
} ca_actor_stats;

/* Any thread; CA_ESRCH for a dead actor. */
int ca_actor_stats_get(ca_rt *rt, ca_pid pid, ca_actor_stats *st);
/* 1 if a local actor is alive, else 0. */
int ca_is_alive(ca_rt *rt, ca_pid pid);

/* ------------------------------------------------------------------ */
/* Supervisors (OTP semantics)                                         */
/* ------------------------------------------------------------------ */

typedef enum {
    CA_ONE_FOR_ONE = 0,
    CA_ONE_FOR_ALL = 1,
    CA_REST_FOR_ONE = 2,
    CA_SIMPLE_ONE_FOR_ONE = 3,
} ca_strategy;

typedef enum {
    CA_PERMANENT = 0, /* always restarted */
    CA_TRANSIENT = 1, /* restarted unless normal, shutdown or {shutdown, _} */
    CA_TEMPORARY = 2, /* never restarted */
} ca_restart;

typedef enum { CA_WORKER = 0, CA_SUPERVISOR = 1 } ca_child_type;

#define CA_SHUTDOWN_DEFAULT  0    /* 5000 ms for workers, infinity for supervisors */
#define CA_SHUTDOWN_BRUTAL   (-1) /* brutal_kill: exit(Child, kill) */
#define CA_SHUTDOWN_INFINITY (-2)

/* A child specification. The supervisor copies it (and `id`, `name`);
 * `behaviour` and `arg` must outlive every incarnation of the child. */
typedef struct ca_child_spec {
    const char *id;                /* unique among the supervisor's children */
    const ca_behaviour *behaviour; /* for CA_SUPERVISOR: &ca_supervisor */
    void *arg;                     /* for CA_SUPERVISOR: a const ca_sup_spec * */
    const char *name;              /* register each incarnation; NULL = none */
    ca_restart restart;
    int64_t shutdown_ms; /* > 0: ms to wait after exit(Child, shutdown) before
                            kill; or CA_SHUTDOWN_* */
    ca_child_type type;
    uint32_t mailbox_cap; /* as in ca_spawn_opts */
    ca_overflow overflow;
    /* 0 = spread over the schedulers (round robin); k > 0 = always on
     * scheduler k - 1 (modulo their number), e.g. 1 for an actor that
     * mostly answers remote peers: the node's sockets run on scheduler 0. */
    unsigned on_sched;
} ca_child_spec;

#define CA_SUP_SHUTDOWN_RT 0x1 /* when this supervisor exits, ca_rt_shutdown(rt, 1) */

typedef struct ca_sup_spec {
    ca_strategy strategy;
    int32_t intensity;             /* max restarts in period; < 0 means the default 1 */
    uint32_t period_ms;            /* 0 means the default 5000 */
    const ca_child_spec *children; /* started in order; for simple_one_for_one
                                      exactly one, the template */
    size_t nchildren;
    unsigned flags; /* CA_SUP_* */
} ca_sup_spec;

/* The supervisor behaviour, for nested supervisors in child specs. */
extern const ca_behaviour ca_supervisor;

/* Start a supervisor (e.g. the root of a tree) from any thread. `spec`
 * is copied; `name` may be NULL. Children start in order as the
 * supervisor initialises; a child whose init fails counts as a crash.
 * Erlang's supervisor module works on it as on its own: which_children
 * (modules: [Name], a gen_server's callbacks' name or else the
 * behaviour's), count_children, terminate_child (by id or
 * pid), restart_child, delete_child, and for simple_one_for_one
 * start_child(Sup, []) with the template's arg; start_child with a child
 * spec or extra arguments (Erlang code), get_childspec and other calls
 * answer {error, {not_supported, Request}}. sys:terminate (so
 * gen_server:stop) stops its children in order, then it; sys:get_state
 * gives #{strategy, intensity, period_ms, children, restarts}, and
 * sys:get_status the same in gen_server's status; other sys requests get
 * {error, {not_supported, Request}}. */
int ca_sup_start(ca_rt *rt, const ca_sup_spec *spec, const char *name, ca_pid *pid);

/* Supervisor calls. They wait for the supervisor's answer, so they must
 * not be called on a scheduler thread (CA_EPERM there; actors use the
 * _async forms below). CA_ESRCH if the supervisor is dead or dies before
 * answering. */

/* Add and start a child. Other strategies: `spec` required (CA_EEXIST for
 * a used id); simple_one_for_one: `spec` NULL and `arg` is given to the
 * template's behaviour instead of its arg. */
int ca_sup_start_child(ca_rt *rt, ca_pid sup, const ca_child_spec *spec, void *arg, ca_pid *pid);
/* Stop a child by id (the spec is kept, except for temporary children),
 * or by pid (id NULL; the only way for simple_one_for_one). CA_ENOENT if
 * unknown. */
int ca_sup_terminate_child(ca_rt *rt, ca_pid sup, const char *id, ca_pid pid);
/* Start a stopped child again; CA_EBUSY if it runs. */
int ca_sup_restart_child(ca_rt *rt, ca_pid sup, const char *id, ca_pid *pid);
/* Forget a stopped child's spec; CA_EBUSY if it runs. */
int ca_sup_delete_child(ca_rt *rt, ca_pid sup, const char *id);

/* The same from an actor, without waiting (as supervisor:start_child
 * from a process): 0 once asked, and then self gets
 *   {ca_sup, Ref, {ok, Pid}}   start, restart
 *   {ca_sup, Ref, ok}          terminate, delete
 *   {ca_sup, Ref, {ok, [{Id, Pid | undefined, worker | supervisor,
 *                        permanent | transient | temporary}]}}  which
 *                              (Id an atom, in start order)
 *   {ca_sup, Ref, {ok, #{specs, active, supervisors, workers,
 *                        restarts => N}}}  count
 *   {ca_sup, Ref, {error, E}}  E the error's name (ca_errname: eexist,
 *                              enoent, ebusy, esrch if the supervisor
 *                              dies first, ...)
 * with Ref = *ref (may be NULL). The spec and id are copied; behaviour
 * and arg must outlive the child, as for ca_sup_start_child. CA_ESRCH at
 * once if the supervisor is dead. */
int ca_sup_start_child_async(ca_actor *self, ca_pid sup, const ca_child_spec *spec, void *arg,
                             ca_ref *ref);
int ca_sup_terminate_child_async(ca_actor *self, ca_pid sup, const char *id, ca_pid pid,
                                 ca_ref *ref);
int ca_sup_restart_child_async(ca_actor *self, ca_pid sup, const char *id, ca_ref *ref);
int ca_sup_delete_child_async(ca_actor *self, ca_pid sup, const char *id, ca_ref *ref);
int ca_sup_which_children_async(ca_actor *self, ca_pid sup, ca_ref *ref);
int ca_sup_count_children_async(ca_actor *self, ca_pid sup, ca_ref *ref);

typedef struct ca_child_info {
    char id[256];
    ca_pid pid; /* CA_PID_NONE when not running */
    ca_child_type type;
    ca_restart restart;
} ca_child_info;

/* *out is an array of *n entries in start order, owned by the caller
 * (free()). */
int ca_sup_which_children(ca_rt *rt, ca_pid sup, ca_child_info **out, size_t *n);

typedef struct ca_sup_counts {
    uint64_t specs, active, supervisors, workers;
    uint64_t restarts; /* children restarted since the supervisor started */
} ca_sup_counts;

int ca_sup_count_children(ca_rt *rt, ca_pid sup, ca_sup_counts *c);

/* ------------------------------------------------------------------ */
/* Distribution                                                        */
/* ------------------------------------------------------------------ */

/*
 * A node joins an Erlang cluster as a hidden node: it registers with EPMD,
 * accepts and makes connections (handshake version 6, OTP 23+), and makes
 * the runtime's actors reachable as Erlang processes. Its sockets live on
 * scheduler 0's libuv loop: an actor on scheduler 0 gets its messages
 * and writes its replies on the thread that reads and writes the socket,
 * with no thread hop (place actors that mostly serve remote peers there:
 * ca_spawn_opts.sched, ca_child_spec.on_sched); actors on any scheduler
 * send through it without blocking. Decoding a large frame holds up
 * scheduler 0's actors meanwhile.
 */
typedef struct ca_node ca_node;

typedef struct ca_node_opts {
    /* "alive" (like erl -sname: "@" and the short host name are added) or
     * "alive@host.domain" (like erl -name). Required; copied. */
    const char *name;
    /* Copied. NULL = read $HOME/.erlang.cookie as erl does; a missing or
     * unreadable file is an error (CA_ENOENT / CA_EPERM, logged). */
    const char *cookie;
    const char *listen_addr; /* IPv4 or IPv6 literal; NULL = "127.0.0.1" */
    uint16_t port;           /* 0 = ephemeral */
    /* EPMD on 127.0.0.1 at this port; 0 = $ERL_EPMD_PORT, else 4369. */
    uint16_t epmd_port;
    unsigned net_ticktime; /* seconds; 0 = 60 (ticks every ticktime/4) */
    size_t max_frame;      /* bytes; 0 = 256 MiB (64 MiB messages fit) */
    /* Bytes of messages queued towards one peer before ca_send to it
     * gives CA_EBUSY; 0 = 512 MiB. One message always fits an empty
     * queue. Signals (links, exits, monitors) are never refused. */
    size_t max_queue;
    /* While messages come densely (streams, many requests in flight),
     * scheduler 0 waits up to this long, once its actors are idle, before
     * it reads the sockets again, so that input is read, handled and
     * answered in batches: fewer system calls and wake-ups on both sides,
     * for at most this much (plus the kernel's timer slack and wake-up:
     * 205 us in all for 100 on the benchmark VM) added to a message's
     * latency. Decided per connection: a peer whose messages do not keep
     * coming while the node waits (a few sequential callers, who wait
     * for each answer) is told apart by the rate it sends at, and its
     * messages, like work from other threads, end a wait at once.
     * ca_node_opts_init: 100; 0: read as soon as data comes; at most
     * 1000000. */
    unsigned batch_us;
} ca_node_opts;

void ca_node_opts_init(ca_node_opts *o);

/*
 * Start distribution on `rt`: listen, register with EPMD (the connection
 * to EPMD stays open for the node's life) and take the node name and the
 * creation EPMD hands out as the runtime's own (ca_rt_node,
 * ca_rt_creation), so local pids become pids of this node.
 *
 * Must be called before any actor is spawned (CA_EPERM otherwise: pids
 * already handed out would belong to the old name), from a thread that is
 * not a scheduler (CA_EPERM: it waits for EPMD, 5 s at most, and for
 * scheduler 0 to open the sockets). At most one node per
 * runtime (CA_EEXIST). On success *node is owned by the caller.
 * Errors: CA_EINVAL, CA_EBADNAME, CA_ENOENT/CA_EPERM (cookie), CA_EUV
 * (listen failed), CA_EIO (EPMD unreachable), CA_EEXIST (name taken in
 * EPMD), CA_ETIMEDOUT, CA_ENOMEM.
 */
int ca_node_start(ca_rt *rt, const ca_node_opts *opts, ca_node **node);

/*
 * Close every connection (links and monitors across them fire with
 * noconnection, as on a lost connection), unregister from EPMD and wait
 * until scheduler 0 has closed the node's sockets. Call it before
 * ca_rt_free (ca_rt_free does it otherwise), not on a scheduler thread
 * (refused there, with a log line). Afterwards remote sends fail with
 * CA_ENOTCONN. Idempotent.
 */
void ca_node_stop(ca_node *node);
/* Release the node (stopping it first if needed). Call it after
 * ca_rt_free: the runtime keeps a pointer to the node until then. */
void ca_node_free(ca_node *node);

/* "alive@host", valid until ca_node_free. */
const char *ca_node_self_name(const ca_node *node);
/* The listening port (after ca_node_start). */
uint16_t ca_node_port(const ca_node *node);
/* The node attached to `rt`, or NULL. */
ca_node *ca_rt_node_of(ca_rt *rt);

/* Names of the nodes connected right now (handshake done): *out is a
 * malloc'ed array of *count malloc'ed strings, owned by the caller
 * (ca_node_list_free, the same as ca_names_free). Any thread but the
 * node's own. */
int ca_node_connected(ca_node *node, char ***out, size_t *count);
void ca_node_list_free(char **list, size_t n);

typedef struct ca_node_stats {
    uint64_t connections; /* up right now */
    uint64_t accepted;    /* handshakes completed, either role */
    uint64_t refused;     /* handshakes failed (e.g. wrong cookie) */
    uint64_t frames_in, frames_out;
    uint64_t dropped;     /* outbound frames dropped with a connection */
    uint64_t bad_frames;  /* connections closed for a protocol error */
    uint64_t reads;       /* socket reads that brought data */
    uint64_t batch_waits; /* waits for input to pile up (ca_node_opts.batch_us) */
} ca_node_stats;
void ca_node_stats_get(ca_node *node, ca_node_stats *st);

/*
 * Send to {Name, Node}: `node` is a node name ("alive@host"); this node's
 * own name sends locally (as ca_send_name). Connects on demand. Errors as
 * ca_send, plus CA_ENOTCONN (no distribution), CA_EBUSY (queue to that
 * peer full).
 */
int ca_send_reg(ca_actor *self, const char *name, const char *node, const void *etf, size_t len);
int ca_sendf_reg(ca_actor *self, const char *name, const char *node, const char *fmt, ...);
/* The same from any thread, as ca_rt_send: `from` is the sender the
 * receiver sees (CA_PID_NONE: the node itself, a pid that runs nothing). */
int ca_rt_send_reg(ca_rt *rt, ca_pid from, const char *name, const char *node, const void *etf,
                   size_t len);

/* Send to a process alias (ALIAS_SEND), e.g. the reply to an OTP 24+
 * gen_server:call whose From tag is [alias | Alias]. A local alias gives
 * CA_ENOTSUP (C actors make none). */
int ca_send_alias(ca_actor *self, const ca_ref *alias, const void *etf, size_t len);

/*
 * Node monitoring: with on != 0, self gets {nodeup, Node} when a
 * connection to a node comes up and {nodedown, Node} when it goes down
 * (Node an atom), for every node (`node` NULL) or one node name. on = 0
 * removes what a call with the same `node` added. Monitors of an actor
 * that exits are dropped on its next event.
 */
int ca_monitor_node(ca_actor *self, const char *node, int on);

/* ------------------------------------------------------------------ */
/* gen_server interop                                                  */
/* ------------------------------------------------------------------ */

/* Who called: enough to reply later, from any callback of the callee. A
 * plain value: copy it, keep it in the actor's state. */
typedef struct ca_call_from {
    ca_pid pid;
    int alias;      /* the tag is [alias | Ref] (OTP 24+): reply to Ref */
    ca_ref ref;     /* the tag's reference */
    size_t tag_len; /* the tag term as received (no version byte) */
    char tag[1104]; /* fits [alias | Ref] for any node name */
} ca_call_from;

/* Match {'$gen_call', {Pid, Tag}, Request} (gen_server:call, also Elixir's
 * GenServer.call). On 0, *from identifies the caller and *req, *len span
 * the request inside the message (no version byte). CA_ENOMATCH otherwise.
 * Casts are plain messages {'$gen_cast', Request}: match them with
 * ca_match. */
int ca_gen_call_match(const ca_msg *m, ca_call_from *from, const char **req, size_t *len);
/* Reply {Tag, Reply} the way gen_server:reply does (to the alias if the
 * tag has one, else to the pid). `reply` is ETF with version byte. A
 * caller that has exited meanwhile is not an error (0, as gen_server:reply
 * never fails); a full mailbox under the refuse policy is (CA_EAGAIN). */
int ca_gen_reply(ca_actor *self, const ca_call_from *from, const void *reply, size_t len);
int ca_gen_replyf(ca_actor *self, const ca_call_from *from, const char *fmt, ...);
/* Send `to` a gen_server call on behalf of `from`: {'$gen_call', {Pid,
 * Tag}, Request} with from's pid and tag, Request formatted as ca_fmt. The
 * callee's reply (ca_gen_reply, gen_server:reply, a handle_call's return)
 * goes to from's caller directly: a server handing a call to a worker, or
 * an rpc function asking an actor (ca_rpc_defer). Nothing comes back to
 * self. The errors of ca_send. */
int ca_gen_call_for(ca_actor *self, ca_pid to, const ca_call_from *from, const char *fmt, ...);

/*
 * A gen_server in C: callbacks in OTP's shape, for actors that Erlang and
 * Elixir code calls with gen_server:call/cast (GenServer.call/cast).
 *
 * handle_call  a call: reply now or later with ca_gen_reply(self, from,
 *              ...); `from` is valid during the call only, copy it to
 *              reply later. `req` is the request (no version byte).
 * handle_cast  a cast's request; handle_info  any other message.
 * Each returns 0, or a negative code to crash (as a behaviour's handle);
 * each may be NULL (calls then get {error, not_implemented}).
 * format_state  optional: append the state as one term to `out` (no
 *              version byte) for sys:get_state and sys:get_status;
 *              without it sys:get_state raises {not_supported, get_state}
 *              and sys:get_status shows no state. A negative return or a
 *              malformed term: {callback_failed, {format_state, ErrName}}.
 *
 * sys messages are answered by the behaviour, as gen_server does:
 * gen_server:stop (sys's {terminate, Reason}) stops the server with
 * Reason, terminate runs; sys:get_state and sys:get_status; sys:suspend
 * and sys:resume (while suspended, every other message, trapped exits
 * included, waits, uncounted by mailbox_cap, and is handled in order on
 * resume). The rest (sys:replace_state, whose fun C cannot run, sys:trace
 * and the debug options) get {error, {not_supported, Request}} at once.
 * Fields are positional: initializers written for fewer fields leave the
 * later ones NULL.
 */
typedef struct ca_gen_server {
    const char *name; /* for log lines; may be NULL */
    int (*init)(ca_actor *self, void *arg, void **state);
    int (*handle_call)(ca_actor *self, void *state, const ca_call_from *from, const char *req,
                       size_t len);
    int (*handle_cast)(ca_actor *self, void *state, const char *req, size_t len);
    int (*handle_info)(ca_actor *self, void *state, ca_msg *m);
    void (*terminate)(ca_actor *self, void *state, const char *reason, size_t len);
    int (*format_state)(ca_actor *self, void *state, ei_x_buff *out);
} ca_gen_server;

/* What to give as `arg` of the behaviour ca_gen_server_behaviour (e.g. in
 * a child spec): both must outlive the actor. */
typedef struct ca_gen_server_spec {
    const ca_gen_server *cb;
    void *arg; /* given to cb->init */
} ca_gen_server_spec;
extern const ca_behaviour ca_gen_server_behaviour;

/*
 * Call a gen_server (an Erlang process, or a C actor that answers calls)
 * without blocking: sends {'$gen_call', {Self, Ref}, Request} to `to`
 * (`req` is ETF with version byte), monitors it with Ref, and arms a
 * timer. Exactly one of these then arrives: {Ref, Reply};
 * {'DOWN', Ref, process, Pid, Reason} if the callee died (noconnection if
 * its node went away); {'$call_timeout', Ref} after timeout_ms. Then call
 * ca_gen_call_done(self, call) (also to give up early), which drops the
 * monitor and the timer. `call` is a plain value owned by the caller.
 */
typedef struct ca_call {
    ca_ref ref;
    ca_timer timer;
} ca_call;
int ca_gen_call(ca_actor *self, ca_pid to, const void *req, size_t len, uint64_t timeout_ms,
                ca_call *call);
/* The same to the process registered as `name` on `node` (NULL: here), as
 * gen_server:call({Name, Node}, ...): monitored by name (ca_monitor_name),
 * so a DOWN names {Name, Node}, and comes at once with noproc if nothing
 * is registered under the name. */
int ca_gen_call_name(ca_actor *self, const char *name, const char *node, const void *req,
                     size_t len, uint64_t timeout_ms, ca_call *call);
int ca_gen_call_done(ca_actor *self, const ca_call *call);

/*
 * gen_server:call from a program's own thread (not a scheduler thread:
 * CA_EPERM there, where waiting would block a loop; actors use
 * ca_gen_call): sends Request (ETF with version byte) to `to`, or to the
 * process registered as `name` here (node NULL) or on `node`, and waits
 * up to timeout_ms. On 0, *reply is the reply (ETF with version byte,
 * malloc'd: the caller frees it) and *reply_len its length. Else
 * CA_ETIMEDOUT; CA_ESRCH if the callee is not there or died before
 * answering; CA_ENOTCONN if its node went away; CA_ECLOSED if the runtime
 * stopped meanwhile; the errors of ca_gen_call.
 */
int ca_rt_call(ca_rt *rt, ca_pid to, const void *req, size_t len, uint64_t timeout_ms, char **reply,
               size_t *reply_len);
int ca_rt_call_name(ca_rt *rt, const char *name, const char *node, const void *req, size_t len,
                    uint64_t timeout_ms, char **reply, size_t *reply_len);

/*
 * rpc:call from C: run Module:Function(Args...) on `node` (an Erlang or
 * Elixir node, another C node; NULL: this one) through its `rex` server,
 * as rpc:call and erl_interface's ei_rpc do: a gen_server call of
 * {call, Module, Function, Args, user}. `args` is the argument list, ETF
 * with version byte ([] for none). The group leader is the node's `user`,
 * so what the function prints goes to that node's console. The result is
 * whatever rpc:call would return: the function's value, or
 * {badrpc, Reason} if it raised (an exit, an error with its stack, undef;
 * a throw gives the value thrown, as rpc:call does).
 *
 * ca_rpc_call is ca_gen_call_name(self, "rex", node, ...) with that
 * request: the result arrives as {Ref, Result}, or a DOWN (noconnection
 * if the node cannot be reached; noproc if it runs no rex) or the
 * timeout, and ca_gen_call_done ends it. ca_rt_rpc_call waits for it from
 * a program's own thread, as ca_rt_call_name does (same errors; *result
 * is malloc'd ETF with version byte, the caller frees it).
 * CA_EBADNAME for a module or function that is not a valid atom,
 * CA_EBADTERM for a malformed `args`, CA_EINVAL if it is not a list.
 */
int ca_rpc_call(ca_actor *self, const char *node, const char *module, const char *function,
                const void *args, size_t len, uint64_t timeout_ms, ca_call *call);
int ca_rt_rpc_call(ca_rt *rt, const char *node, const char *module, const char *function,
                   const void *args, size_t len, uint64_t timeout_ms, char **result,
                   size_t *result_len);
/* rpc:cast from C: the same function run by `node`'s rex, with nothing
 * coming back. 0 once sent; the errors of ca_send_reg (CA_ENOENT: no rex
 * here) and those of ca_rpc_call's arguments. */
int ca_rpc_cast(ca_actor *self, const char *node, const char *module, const char *function,
                const void *args, size_t len);
/* The same from any thread (a program's own), sent in the node's name. */
int ca_rt_rpc_cast(ca_rt *rt, const char *node, const char *module, const char *function,
                   const void *args, size_t len);

/* ------------------------------------------------------------------ */
/* RPC functions (rpc:call, erpc:call, erl_call) and plugins            */
/* ------------------------------------------------------------------ */

/*
 * A C function callable as Module:Function(Args...) from Erlang with
 * rpc:call(Node, M, F, Args), erpc:call and erl_call -a. `args` is the
 * argument list (ETF, no version byte; match it with ca_match_term, e.g.
 * "[~i, ~i]"); the function appends exactly one term, the result, to
 * `result` (no version byte). It runs on a scheduler thread and must not
 * block. Calls from erpc, rpc:call and spawn/4 run in an actor of their
 * own, on the scheduler that serves the node's sockets (scheduler 0) as
 * long as the function's calls are short (under 20 us on average), so
 * that a call costs no thread hop; a longer-running function's calls are
 * spread over all schedulers. rex's (erl_call, rpc:cast from old nodes)
 * run in rex, on scheduler 0. Return 0, or a negative code: the caller
 * then gets the error
 * {badrpc, {'EXIT', {{error, ErrName}, [...]}}} from rpc:call (erpc:call
 * raises error {error, ErrName}). Unknown functions give `undef` exactly
 * as Erlang does. erpc:cast, rpc:cast and spawn(Node, M, F, Args) (with
 * spawn_link and spawn_monitor) run it too, in an actor of its own
 * (`caller`) that exits normal, or with {{error, ErrName}, [...]}.
 */
typedef int (*ca_rpc_fn)(void *ctx, ca_actor *caller, const char *args, size_t len,
                         ei_x_buff *result);

/* Register Module:Function/Arity (arity -1: any) for this runtime; names
 * are copied. CA_EEXIST if taken, CA_EBADNAME for an invalid atom. */
int ca_rpc_register(ca_rt *rt, const char *module, const char *function, int arity, ca_rpc_fn fn,
                    void *ctx);

/*
 * An rpc function whose answer is not at hand (an actor owns the data,
 * another node must be asked) defers it, as an Erlang function would
 * wait in gen_server:call: it calls ca_rpc_defer and returns 0 without
 * appending a result. *from is then whom to answer, a plain value to
 * copy and pass along (with ca_gen_call_for, or in a message of your
 * own); whoever has the result gives it with ca_gen_reply(self, from,
 * Result), once, from any actor of this node (or an Erlang gen_server the
 * call was handed to, with gen_server:reply or its handle_call's reply),
 * and the caller gets it as the function's value (rpc:call and erpc:call
 * return it; casts and spawn/4 then exit normal). A second answer is
 * dropped. Until then the call waits:
 *
 * watch    an actor (local or remote) that is to answer, or CA_PID_NONE;
 *          if it exits first, the call fails with its exit reason, as a
 *          gen_server:call to it would (rpc:call: {badrpc, {'EXIT',
 *          Reason}}; erpc:call raises exit {exception, Reason}; spawn/4's
 *          process exits with Reason)
 * timeout_ms  0: no limit; else the call fails so with reason `timeout`
 *
 * CA_EPERM outside an rpc function (or for another actor than its
 * `caller`), CA_EEXIST when called twice in one; the errors of
 * ca_monitor and ca_send_after. A function that returns an error after
 * deferring fails as it would without, and the deferral is undone.
 */
int ca_rpc_defer(ca_actor *caller, ca_pid watch, uint32_t timeout_ms, ca_call_from *from);

/*
 * Plugins: cactor-node --load PATH.so dlopens PATH and calls
 *
 *     int cactor_plugin_init(ca_plugin *p);
 *
 * once, before the node serves. The plugin registers rpc functions with
 * ca_rpc_register(ca_plugin_rt(p), ...) and adds actors with
 * ca_plugin_add_child: each becomes a child of the node's root supervisor
 * (the spec is copied; behaviour and arg must live as long as the
 * process). A non-zero return stops the node with an error. See
 * examples/plugin.
 */
typedef struct ca_plugin ca_plugin;
#define CA_PLUGIN_INIT "cactor_plugin_init"
typedef int (*ca_plugin_init_fn)(ca_plugin *p);
ca_rt *ca_plugin_rt(ca_plugin *p);
int ca_plugin_add_child(ca_plugin *p, const ca_child_spec *spec);

#ifdef __cplusplus
}
#endif

#endif /* CACTOR_H */
