/*
 * Erlang distribution codecs: EPMD requests, the version 6 (OTP 23+)
 * handshake, framing of a connected stream and control messages.
 *
 * Internal header. Nothing here does I/O: bytes go in as buffers, bytes to
 * send come out in caller-owned buffers, decoded items come out as structs
 * whose spans point into the caller's input. The libuv transport on top
 * owns the sockets, the timers and the node's policy (who may connect,
 * what to do with a decoded signal).
 *
 * Ownership: unless stated otherwise every pointer argument is borrowed
 * for the duration of the call; a span (ca_dist_span) in an output struct
 * points into the input buffer it was decoded from and is valid as long as
 * that buffer is, unchanged.
 *
 * Reference: erts "Distribution Protocol" (erl_dist_protocol) and
 * "External Term Format" chapters, OTP 25.
 */
#ifndef CA_CNODE_DIST_H
#define CA_CNODE_DIST_H

#include <stddef.h>
#include <stdint.h>

#include <ei.h>

#include "cactor.h"

/* ------------------------------------------------------------------ */
/* Common                                                              */
/* ------------------------------------------------------------------ */

/* Longest node name ("alive@host") and cookie we handle, in bytes. Node
 * names are atoms: 255 characters of UTF-8 at most; cookies too. */
#define CA_DIST_MAXNAME   1020
#define CA_DIST_MAXCOOKIE 1020

/* Distribution protocol version spoken (OTP 23+, HANDSHAKE_23). */
#define CA_DIST_VERSION 6

/* A byte range inside some input buffer; never owned. */
typedef struct ca_dist_span {
    const char *p;
    size_t len;
} ca_dist_span;

/* A caller-owned output buffer: encoders append at data[len..cap) and
 * advance len; on CA_ETOOBIG nothing is appended. */
typedef struct ca_dist_out {
    unsigned char *data;
    size_t cap;
    size_t len;
} ca_dist_out;

/* ------------------------------------------------------------------ */
/* EPMD                                                                */
/* ------------------------------------------------------------------ */

#define CA_EPMD_PORT          4369
#define CA_EPMD_NODE_HIDDEN   72 /* 'H': hidden node, what a C node is */
#define CA_EPMD_NODE_NORMAL   77
#define CA_EPMD_PROTO_TCP     0
#define CA_EPMD_ALIVE2_REQ    120
#define CA_EPMD_ALIVE2_RESP   121 /* 16-bit creation */
#define CA_EPMD_ALIVE2_X_RESP 118 /* 32-bit creation */
#define CA_EPMD_PORT_PLEASE2  122
#define CA_EPMD_PORT2_RESP    119
/* Longest alive name (the part before '@') EPMD accepts, in bytes. */
#define CA_EPMD_MAXALIVE (255 * 4)

/*
 * Append an ALIVE2_REQ (with its 2-byte length prefix) registering `alive`
 * (the node name before '@', UTF-8, no '@') listening on `port`: a hidden
 * node, TCP, versions 6..6, no extra data.
 * Errors: CA_EBADNAME (empty, too long, contains '@'), CA_ETOOBIG (out too
 * small; nothing appended).
 */
int ca__epmd_alive2_req(ca_dist_out *out, const char *alive, uint16_t port);

/*
 * Decode EPMD's answer to ALIVE2_REQ, ALIVE2_X_RESP (32-bit creation) or
 * the older ALIVE2_RESP (16-bit creation); EPMD sends it without length
 * prefix. Returns 0 and *used = bytes of the answer with *creation set;
 * 0 and *used = 0 when buf holds only part of it (read more); CA_EEXIST
 * when EPMD refused the registration (result > 0: the name is taken, as a
 * rule); CA_EPROTO for anything else.
 */
int ca__epmd_alive2_resp(const void *buf, size_t len, size_t *used, uint32_t *creation);

/* Append a PORT_PLEASE2_REQ (with length prefix) asking for `alive`.
 * Errors as ca__epmd_alive2_req. */
int ca__epmd_port_please2_req(ca_dist_out *out, const char *alive);

/* A node as EPMD describes it in PORT2_RESP. `name` and `extra` point into
 * the decoded buffer. */
typedef struct ca_epmd_node {
    uint16_t port;
    uint8_t node_type; /* CA_EPMD_NODE_* */
    uint8_t protocol;
    uint16_t highest; /* distribution versions the node speaks */
    uint16_t lowest;
    ca_dist_span name;
    ca_dist_span extra;
} ca_epmd_node;

/*
 * Decode PORT2_RESP (no length prefix). Returns 0 and *used > 0 with *node
 * filled; 0 and *used = 0 when incomplete; CA_ENOENT when EPMD does not
 * know the name (result > 0: the whole answer is [119, Result]);
 * CA_EPROTO when malformed. It does not judge the versions: a caller that
 * needs version 6 checks lowest <= 6 <= highest.
 */
int ca__epmd_port2_resp(const void *buf, size_t len, size_t *used, ca_epmd_node *node);

/* ------------------------------------------------------------------ */
/* Distribution flags                                                  */
/* ------------------------------------------------------------------ */

#define CA_DFLAG_PUBLISHED           UINT64_C(0x1)
#define CA_DFLAG_ATOM_CACHE          UINT64_C(0x2)
#define CA_DFLAG_EXTENDED_REFERENCES UINT64_C(0x4)
#define CA_DFLAG_DIST_MONITOR        UINT64_C(0x8)
#define CA_DFLAG_FUN_TAGS            UINT64_C(0x10)
#define CA_DFLAG_DIST_MONITOR_NAME   UINT64_C(0x20)
#define CA_DFLAG_HIDDEN_ATOM_CACHE   UINT64_C(0x40)
#define CA_DFLAG_NEW_FUN_TAGS        UINT64_C(0x80)
#define CA_DFLAG_EXTENDED_PIDS_PORTS UINT64_C(0x100)
#define CA_DFLAG_EXPORT_PTR_TAG      UINT64_C(0x200)
#define CA_DFLAG_BIT_BINARIES        UINT64_C(0x400)
#define CA_DFLAG_NEW_FLOATS          UINT64_C(0x800)
#define CA_DFLAG_UNICODE_IO          UINT64_C(0x1000)
#define CA_DFLAG_DIST_HDR_ATOM_CACHE UINT64_C(0x2000)
#define CA_DFLAG_SMALL_ATOM_TAGS     UINT64_C(0x4000)
#define CA_DFLAG_UTF8_ATOMS          UINT64_C(0x10000)
#define CA_DFLAG_MAP_TAG             UINT64_C(0x20000)
#define CA_DFLAG_BIG_CREATION        UINT64_C(0x40000)
#define CA_DFLAG_SEND_SENDER         UINT64_C(0x80000)
#define CA_DFLAG_BIG_SEQTRACE_LABELS UINT64_C(0x100000)
#define CA_DFLAG_EXIT_PAYLOAD        UINT64_C(0x400000)
#define CA_DFLAG_FRAGMENTS           UINT64_C(0x800000)
#define CA_DFLAG_HANDSHAKE_23        UINT64_C(0x1000000)
#define CA_DFLAG_UNLINK_ID           UINT64_C(0x2000000)
#define CA_DFLAG_SPAWN               (UINT64_C(1) << 32)
#define CA_DFLAG_NAME_ME             (UINT64_C(1) << 33)
#define CA_DFLAG_V4_NC               (UINT64_C(1) << 34)
#define CA_DFLAG_ALIAS               (UINT64_C(1) << 35)
#define CA_DFLAG_MANDATORY_25_DIGEST (UINT64_C(1) << 36)

/* What OTP 25 refuses to connect without. A peer may send the single
 * MANDATORY_25_DIGEST bit instead of all of them. */
#define CA_DFLAG_MANDATORY_25                                                                      \
    (CA_DFLAG_EXTENDED_REFERENCES | CA_DFLAG_FUN_TAGS | CA_DFLAG_NEW_FUN_TAGS |                    \
     CA_DFLAG_EXTENDED_PIDS_PORTS | CA_DFLAG_EXPORT_PTR_TAG | CA_DFLAG_BIT_BINARIES |              \
     CA_DFLAG_NEW_FLOATS | CA_DFLAG_UTF8_ATOMS | CA_DFLAG_MAP_TAG | CA_DFLAG_BIG_CREATION |        \
     CA_DFLAG_HANDSHAKE_23)

/*
 * The flags cactor offers. Besides the mandatory set, each one is a
 * promise the node above keeps:
 *  DIST_MONITOR, DIST_MONITOR_NAME  handle MONITOR_P / DEMONITOR_P /
 *                    MONITOR_P_EXIT, with a pid or a registered name;
 *  SEND_SENDER       the peer tells us the sender of every message;
 *  UNLINK_ID         the new link protocol (UNLINK_ID answered by
 *                    UNLINK_ID_ACK); mandatory from OTP 26;
 *  SPAWN             answer every SPAWN_REQUEST with a SPAWN_REPLY (the
 *                    worker running the C function, or badarg);
 *  ALIAS             accept ALIAS_SEND (replies to gen:call from OTP 24+);
 *  V4_NC             accept 32-bit pid num/serial, 5-word refs, 64-bit
 *                    port ids (what ei types hold); mandatory from OTP 26;
 *  BIG_SEQTRACE_LABELS  trace tokens are passed through undecoded.
 * Not offered: PUBLISHED (a C node is hidden), the atom caches and
 * FRAGMENTS (we want plain pass-through frames), EXIT_PAYLOAD (kept
 * simple; the PAYLOAD_* ops are still decoded), NAME_ME.
 */
#define CA_DFLAG_OFFER                                                                             \
    (CA_DFLAG_MANDATORY_25 | CA_DFLAG_DIST_MONITOR | CA_DFLAG_DIST_MONITOR_NAME |                  \
     CA_DFLAG_SEND_SENDER | CA_DFLAG_UNLINK_ID | CA_DFLAG_SPAWN | CA_DFLAG_ALIAS |                 \
     CA_DFLAG_V4_NC | CA_DFLAG_BIG_SEQTRACE_LABELS)

/* The bits of `required` missing from `peer` (after expanding the
 * MANDATORY_25_DIGEST shorthand); 0 when the peer is acceptable. */
uint64_t ca__dist_flags_missing(uint64_t peer, uint64_t required);

/* ------------------------------------------------------------------ */
/* Handshake                                                           */
/* ------------------------------------------------------------------ */

/* Largest handshake message accepted (body, without the 2-byte length).
 * The largest legal one is a challenge with a 1020-byte name: 1039. */
#define CA_DIST_HS_MAXMSG 2048
/* Free space the output buffer must have on every start/feed call: the
 * most one call can produce (status + challenge + ack, for a peer that
 * pipelines). */
#define CA_DIST_HS_OUTMIN 2048

typedef enum {
    CA_DIST_INITIATOR = 1, /* "A": we connected */
    CA_DIST_ACCEPTOR = 2,  /* "B": we accepted */
} ca_dist_role;

/* Status an acceptor answers to a send_name. */
typedef enum {
    CA_DIST_ST_OK = 0,
    CA_DIST_ST_OK_SIMULTANEOUS, /* we drop our own attempt to that node */
    CA_DIST_ST_NOK,             /* we keep our own attempt: refuse */
    CA_DIST_ST_NOT_ALLOWED,
    CA_DIST_ST_ALIVE, /* already connected: ask the peer (true/false) */
} ca_dist_status;

/*
 * Acceptor policy, called once the peer's name is known (peer_name is
 * NUL-terminated, valid during the call). NULL in the config means
 * "always ok". Must not call back into the machine.
 */
typedef ca_dist_status (*ca_dist_status_fn)(void *ctx, const char *peer_name, uint64_t peer_flags);

/* Random source, RAND_bytes' signature (1 = success), so that OpenSSL's
 * RAND_bytes can be passed as is and tests can pass a fixed sequence. */
typedef int (*ca_dist_rand_fn)(unsigned char *buf, int num);

typedef struct ca_dist_hs_config {
    ca_dist_role role;
    const char *node_name; /* ours, "alive@host"; copied */
    const char *cookie;    /* copied */
    uint32_t creation;     /* ours (from EPMD) */
    uint64_t flags;        /* offered; 0 = CA_DFLAG_OFFER */
    uint64_t required;     /* refused when missing; 0 = CA_DFLAG_MANDATORY_25 */
    ca_dist_rand_fn rand;  /* required: challenges */
    /* initiator: the node we dialled; the challenge must carry that name.
     * NULL = accept any (copied). */
    const char *expect_peer;
    /* initiator: answer "true" (go on, the peer drops its old connection)
     * to an "alive" status; 0 = answer "false" and fail. */
    int alive_continue;
    /* acceptor policy; NULL = CA_DIST_ST_OK */
    ca_dist_status_fn status_fn;
    void *status_ctx;
} ca_dist_hs_config;

typedef enum {
    CA_DIST_HS_RUNNING = 0,
    CA_DIST_HS_DONE = 1,
    CA_DIST_HS_FAILED = 2,
} ca_dist_hs_state;

/* Why a handshake failed. */
typedef enum {
    CA_DIST_HS_OK = 0,
    CA_DIST_HS_E_MALFORMED,   /* a message too short, bad name, ...  */
    CA_DIST_HS_E_TOO_BIG,     /* message over CA_DIST_HS_MAXMSG */
    CA_DIST_HS_E_UNEXPECTED,  /* a message not valid at this point */
    CA_DIST_HS_E_FLAGS,       /* peer lacks a required flag */
    CA_DIST_HS_E_NAME_ME,     /* peer asks for a dynamic name */
    CA_DIST_HS_E_PEER_NAME,   /* challenge from another node than dialled */
    CA_DIST_HS_E_BAD_REPLY,   /* acceptor: wrong digest in challenge_reply
                                 (the peer's cookie differs) */
    CA_DIST_HS_E_BAD_ACK,     /* initiator: wrong digest in challenge_ack
                                 (the peer's cookie differs) */
    CA_DIST_HS_E_NOK,         /* initiator: status nok */
    CA_DIST_HS_E_NOT_ALLOWED, /* initiator: status not_allowed */
    CA_DIST_HS_E_ALIVE,       /* initiator: status alive, we said false */
    CA_DIST_HS_E_STATUS,      /* initiator: unknown or unwanted status */
    CA_DIST_HS_E_REFUSED,     /* acceptor: our policy refused the peer */
    CA_DIST_HS_E_ALIVE_FALSE, /* acceptor: peer answered false to alive */
    CA_DIST_HS_E_RANDOM,      /* the random source failed */
    CA_DIST_HS_E_CRYPTO,      /* MD5 unavailable */
} ca_dist_hs_error;

/* Static text for a failure reason; never NULL. */
const char *ca__dist_hs_strerror(ca_dist_hs_error e);

/* One handshake; plain data, no heap: embed it or allocate it, and drop it
 * when done (nothing to free). */
typedef struct ca_dist_hs {
    ca_dist_role role;
    ca_dist_hs_state state;
    ca_dist_hs_error error;
    int step; /* internal state within the role */
    char name[CA_DIST_MAXNAME + 1];
    char cookie[CA_DIST_MAXCOOKIE + 1];
    char expect[CA_DIST_MAXNAME + 1]; /* "" = any */
    uint32_t creation;
    uint64_t flags;
    uint64_t required;
    ca_dist_rand_fn rand;
    int alive_continue;
    ca_dist_status_fn status_fn;
    void *status_ctx;
    uint32_t my_challenge;
    uint32_t peer_challenge;
    int old_name; /* acceptor: the peer sent the old 'n' send_name */
    /* the message being received */
    unsigned char msg[CA_DIST_HS_MAXMSG];
    size_t need; /* body length, once the header is in */
    size_t have; /* bytes of header + body received */
    unsigned char hdr[2];
    /* results, valid when DONE */
    char peer_name[CA_DIST_MAXNAME + 1];
    uint64_t peer_flags; /* as the peer sent them (digest expanded) */
    uint32_t peer_creation;
} ca_dist_hs;

/*
 * Set up a machine from `cfg` (copied; cfg and its strings may go away).
 * On error the machine is left failed (start and feed refuse it).
 * Errors: CA_EINVAL (no rand, bad role, name or cookie NULL), CA_EBADNAME
 * (our name is not "alive@host" or too long), CA_ETOOBIG (cookie too long).
 */
int ca__dist_hs_init(ca_dist_hs *hs, const ca_dist_hs_config *cfg);

/*
 * First bytes to send: the initiator appends its send_name to `out`; the
 * acceptor appends nothing (it waits for the peer). Call once, after init.
 * out must have CA_DIST_HS_OUTMIN bytes free (else CA_EINVAL).
 */
int ca__dist_hs_start(ca_dist_hs *hs, ca_dist_out *out);

/*
 * Feed received bytes (any split). Consumes bytes up to the end of the
 * handshake and sets *used: bytes after that belong to the connected
 * stream (4-byte framing) and are for the caller to keep. Appends what is
 * to be sent to `out` (CA_DIST_HS_OUTMIN bytes free needed).
 *
 * Returns 0 while running or when hs->state became CA_DIST_HS_DONE (then
 * peer_name, peer_flags, peer_creation are set and
 * ca__dist_hs_flags(hs) is what both sides use). On failure returns
 * CA_EPROTO (malformed, unexpected, flags, name), CA_ETOOBIG (message too
 * long), CA_EPERM (wrong cookie, refused, not allowed), CA_EBUSY (nok,
 * alive), CA_EIO (random or crypto failure); hs->state is then
 * CA_DIST_HS_FAILED and hs->error says why. Bytes appended to out must
 * still be sent, even on failure (e.g. a "not_allowed" status), before
 * closing. Feeding a finished machine gives CA_EINVAL.
 */
int ca__dist_hs_feed(ca_dist_hs *hs, const void *data, size_t len, size_t *used, ca_dist_out *out);

/* Flags in force on the connection: ours & the peer's. */
uint64_t ca__dist_hs_flags(const ca_dist_hs *hs);

/*
 * MD5(cookie ++ decimal text of challenge), the handshake digest, through
 * OpenSSL's EVP interface. Returns 0 or CA_EIO (digest unavailable).
 */
int ca__dist_digest(const char *cookie, size_t cookie_len, uint32_t challenge,
                    unsigned char out[16]);

/* ------------------------------------------------------------------ */
/* Framing (after the handshake)                                       */
/* ------------------------------------------------------------------ */

#define CA_DIST_FRAME_MAX_DEFAULT ((size_t)256 << 20)
#define CA_DIST_PASS_THROUGH      112 /* 'p' */
#define CA_DIST_HEADER            68  /* distribution header (atom cache) */

/* One frame. For a tick, tick = 1 and data/len are empty. Otherwise data
 * points just after the 'p' type byte (at the control term's version
 * byte) and len counts the rest of the frame. */
typedef struct ca_dist_frame {
    int tick;
    uint8_t type; /* first byte of the frame; set also on CA_EPROTO */
    const char *data;
    size_t len;
} ca_dist_frame;

/*
 * Cut the frame at the start of buf[0..len): returns 0 and *used > 0 (the
 * frame's 4 + length bytes) with *frame set; 0 and *used = 0 when buf
 * holds only part of a frame (*need, if not NULL, is then the total bytes
 * the frame needs, when known, else 4). Errors: CA_ETOOBIG (length over
 * max_frame; 0 = default), found as soon as the 4 length bytes are in;
 * CA_EPROTO for a frame that is not pass-through (frame->type says which:
 * 68 means the peer uses a distribution header, which we never
 * negotiate). frame->data points into buf.
 */
int ca__dist_frame_cut(const void *buf, size_t len, size_t max_frame, size_t *used, size_t *need,
                       ca_dist_frame *frame);

/*
 * Cut every complete frame in buf[0..len) and call fn on each, in order,
 * stopping at the first nonzero return (returned as is) or error. *used is
 * the bytes of the frames handled: the caller drops them and keeps the
 * rest (a partial frame) for the next read.
 */
int ca__dist_frames_each(const void *buf, size_t len, size_t max_frame, size_t *used,
                         int (*fn)(void *ctx, const ca_dist_frame *frame), void *ctx);

/* Append a tick (4 zero bytes). */
int ca__dist_encode_tick(ei_x_buff *x);

/* ------------------------------------------------------------------ */
/* Control messages                                                    */
/* ------------------------------------------------------------------ */

typedef enum {
    CA_DOP_LINK = 1,
    CA_DOP_SEND = 2,
    CA_DOP_EXIT = 3,
    CA_DOP_UNLINK = 4,
    CA_DOP_NODE_LINK = 5,
    CA_DOP_REG_SEND = 6,
    CA_DOP_GROUP_LEADER = 7,
    CA_DOP_EXIT2 = 8,
    CA_DOP_SEND_TT = 12,
    CA_DOP_EXIT_TT = 13,
    CA_DOP_REG_SEND_TT = 16,
    CA_DOP_EXIT2_TT = 18,
    CA_DOP_MONITOR_P = 19,
    CA_DOP_DEMONITOR_P = 20,
    CA_DOP_MONITOR_P_EXIT = 21,
    CA_DOP_SEND_SENDER = 22,
    CA_DOP_SEND_SENDER_TT = 23,
    CA_DOP_PAYLOAD_EXIT = 24,
    CA_DOP_PAYLOAD_EXIT_TT = 25,
    CA_DOP_PAYLOAD_EXIT2 = 26,
    CA_DOP_PAYLOAD_EXIT2_TT = 27,
    CA_DOP_PAYLOAD_MONITOR_P_EXIT = 28,
    CA_DOP_SPAWN_REQUEST = 29,
    CA_DOP_SPAWN_REQUEST_TT = 30,
    CA_DOP_SPAWN_REPLY = 31,
    CA_DOP_SPAWN_REPLY_TT = 32,
    CA_DOP_ALIAS_SEND = 33,
    CA_DOP_ALIAS_SEND_TT = 34,
    CA_DOP_UNLINK_ID = 35,
    CA_DOP_UNLINK_ID_ACK = 36,
} ca_dist_op;

typedef enum {
    CA_DIST_CTRL_SIGNAL = 0,  /* a known op, fields decoded */
    CA_DIST_CTRL_IGNORED = 1, /* known but obsolete for us (UNLINK,
                                 NODE_LINK, GROUP_LEADER): skip it */
    CA_DIST_CTRL_UNKNOWN = 2, /* op we do not know: log and skip */
} ca_dist_ctrl_kind;

/* A process: a pid, or a registered name (is_name). */
typedef struct ca_dist_proc {
    int is_name;
    erlang_pid pid;
    char name[MAXATOMLEN_UTF8];
} ca_dist_proc;

/*
 * A decoded control message. Which fields an op sets:
 *   LINK, UNLINK, GROUP_LEADER  from, to
 *   SEND(_TT)                   to, payload (+ token)
 *   SEND_SENDER(_TT)            from, to, payload (+ token)
 *   REG_SEND(_TT)               from, to (is_name), payload (+ token)
 *   EXIT(_TT), EXIT2(_TT)       from, to, reason (+ token)
 *   PAYLOAD_EXIT*(_TT)          from, to, reason = the payload (+ token)
 *   MONITOR_P, DEMONITOR_P      from (pid), to (pid or name), ref
 *   MONITOR_P_EXIT              from (the monitored: pid or name), to,
 *                               ref, reason; PAYLOAD_MONITOR_P_EXIT alike
 *   SPAWN_REQUEST(_TT)          ref, from, group_leader, module, function,
 *                               arity, opts, payload = ArgList (+ token)
 *   SPAWN_REPLY(_TT)            ref, to, spawn_flags, result (pid, or an
 *                               error atom as a name) (+ token)
 *   ALIAS_SEND(_TT)             from, ref = the alias, payload (+ token)
 *   UNLINK_ID(_ACK)             id, from, to
 *   NODE_LINK                   nothing but op
 *   unknown ops                 op; payload = whatever follows the control
 *                               term, unchecked (empty if nothing)
 * Spans point into the frame: `payload` is a whole ETF term with its
 * version byte 131 (as ca_send takes it); `reason`, `token` and `opts` are
 * bare term encodings (no version byte) and were checked to be complete
 * terms. The payload's term itself is not walked (it can be 64 MiB+): the
 * consumer's decoder checks it.
 */
typedef struct ca_dist_ctrl {
    int op; /* as received (ca_dist_op when known) */
    ca_dist_ctrl_kind kind;
    ca_dist_proc from;
    ca_dist_proc to;
    erlang_ref ref;
    uint64_t id;
    ca_dist_span token;
    ca_dist_span reason;
    ca_dist_span payload;
    /* spawn */
    erlang_pid group_leader;
    char module[MAXATOMLEN_UTF8];
    char function[MAXATOMLEN_UTF8];
    unsigned arity;
    ca_dist_span opts;
    uint64_t spawn_flags;
    ca_dist_proc result;
} ca_dist_ctrl;

/*
 * Decode a pass-through frame's content (frame->data, frame->len: version
 * byte, control tuple, then the payload if any). Returns 0 (see c->kind;
 * an unknown op is not an error), CA_EBADTERM when the control term is not
 * a complete, well-formed term, CA_EPROTO when it is a term but not a
 * valid control message (wrong arity or types for its op, a payload
 * missing or where none belongs). Never reads outside buf[0..len).
 */
int ca__dist_ctrl_decode(const char *buf, size_t len, ca_dist_ctrl *c);

/*
 * Walk one ETF term (no version byte) at buf[*pos..len) and move *pos past
 * it, bounded and without recursion. 0 or CA_EBADTERM (truncated, unknown
 * tag, atom cache references, compressed terms).
 */
int ca__etf_skip(const char *buf, size_t len, size_t *pos);

/*
 * Frame encoders: each appends one whole frame (4-byte length, 'p', the
 * control tuple with version byte, then the payload, if any) to x
 * (caller-owned, any state; the frame starts at x->index). Terms given as
 * bytes (`msg`, `reason`) are ETF, with or without the version byte 131,
 * exactly one complete term; they are copied in as they are, never
 * re-encoded. Errors: CA_EBADTERM (not one complete term), CA_EINVAL
 * (bad atom or arguments), CA_ETOOBIG (frame over 2 GiB, ei's limit),
 * CA_ENOMEM; on error x->index is back where it was.
 */
int ca__dist_encode_send(ei_x_buff *x, const erlang_pid *to, const char *msg, size_t len);
int ca__dist_encode_send_sender(ei_x_buff *x, const erlang_pid *from, const erlang_pid *to,
                                const char *msg, size_t len);
int ca__dist_encode_reg_send(ei_x_buff *x, const erlang_pid *from, const char *to_name,
                             const char *msg, size_t len);
int ca__dist_encode_alias_send(ei_x_buff *x, const erlang_pid *from, const erlang_ref *alias,
                               const char *msg, size_t len);
int ca__dist_encode_link(ei_x_buff *x, const erlang_pid *from, const erlang_pid *to);
int ca__dist_encode_unlink_id(ei_x_buff *x, uint64_t id, const erlang_pid *from,
                              const erlang_pid *to);
int ca__dist_encode_unlink_id_ack(ei_x_buff *x, uint64_t id, const erlang_pid *from,
                                  const erlang_pid *to);
int ca__dist_encode_exit(ei_x_buff *x, const erlang_pid *from, const erlang_pid *to,
                         const char *reason, size_t len);
int ca__dist_encode_exit2(ei_x_buff *x, const erlang_pid *from, const erlang_pid *to,
                          const char *reason, size_t len);
/* to: the monitored process, a pid or a name (registered on the peer). */
int ca__dist_encode_monitor_p(ei_x_buff *x, const erlang_pid *from, const ca_dist_proc *to,
                              const erlang_ref *ref);
int ca__dist_encode_demonitor_p(ei_x_buff *x, const erlang_pid *from, const ca_dist_proc *to,
                                const erlang_ref *ref);
/* from: the monitored process as the monitor named it (pid or name). */
int ca__dist_encode_monitor_p_exit(ei_x_buff *x, const ca_dist_proc *from, const erlang_pid *to,
                                   const erlang_ref *ref, const char *reason, size_t len);
/* result: the new pid, or an error atom (is_name) such as badarg. */
int ca__dist_encode_spawn_reply(ei_x_buff *x, const erlang_ref *req, const erlang_pid *to,
                                uint64_t flags, const ca_dist_proc *result);

#endif /* CA_CNODE_DIST_H */
