/*
 * Control messages of a connected distribution stream (erl_dist_protocol,
 * "Protocol between Connected Nodes"), pass-through form: version byte,
 * control tuple, then for some ops a second term (message or reason).
 *
 * Decoding never trusts the input: ei's decoders read without bounds, so
 * the control term is first walked with a bounded walker, then its fields
 * are read with the small bounded readers below into ei types.
 */
#include <limits.h>
#include <string.h>

#include "bytes.h"
#include "dist.h"
#include "utf8.h"

#define ETF_VERSION 131

/* ------------------------------------------------------------------ */
/* Bounded term walker                                                 */
/* ------------------------------------------------------------------ */

/* Skip an atom (the node of a pid, port or ref), which must be one of the
 * four plain atom tags: no atom cache references in pass-through. */
static int skip_atom(const unsigned char *p, size_t len, size_t *i)
{
    size_t rem = len - *i, n, hl = ca__atom_head(p + *i, rem, &n);
    if (!hl || rem - hl < n)
        return CA_EBADTERM;
    *i += hl + n;
    return 0;
}

/* For a term with a flat body (fixed or length-prefixed), set *n to the
 * bytes after the tag and return 1 (*n = UINT64_MAX when even the length
 * field is cut); return 0 for other tags. `rem` bytes follow the tag. */
static int skip_flat(unsigned tag, const unsigned char *q, size_t rem, uint64_t *n)
{
    switch (tag) {
    case ERL_SMALL_INTEGER_EXT:
        *n = 1;
        return 1;
    case ERL_INTEGER_EXT:
        *n = 4;
        return 1;
    case 'F': /* NEW_FLOAT_EXT */
        *n = 8;
        return 1;
    case ERL_FLOAT_EXT:
        *n = 31;
        return 1;
    case ERL_NIL_EXT:
        *n = 0;
        return 1;
    case ERL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_STRING_EXT:
        *n = rem < 2 ? UINT64_MAX : 2 + (uint64_t)ca__get16(q);
        return 1;
    case ERL_SMALL_ATOM_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT:
        *n = rem < 1 ? UINT64_MAX : 1 + (uint64_t)q[0];
        return 1;
    case ERL_BINARY_EXT:
        *n = rem < 4 ? UINT64_MAX : 4 + (uint64_t)ca__get32(q);
        return 1;
    case ERL_BIT_BINARY_EXT:
        *n = rem < 4 ? UINT64_MAX : 5 + (uint64_t)ca__get32(q);
        return 1;
    case ERL_SMALL_BIG_EXT:
        *n = rem < 1 ? UINT64_MAX : 2 + (uint64_t)q[0];
        return 1;
    case ERL_LARGE_BIG_EXT:
        *n = rem < 4 ? UINT64_MAX : 5 + (uint64_t)ca__get32(q);
        return 1;
    case ERL_NEW_FUN_EXT:
        /* Size counts itself: the whole fun is Size bytes after the tag. */
        *n = rem < 4 || ca__get32(q) < 4 ? UINT64_MAX : (uint64_t)ca__get32(q);
        return 1;
    default:
        return 0;
    }
}

/* Node containers: an atom, then fixed-size numbers. */
static int skip_node_container(unsigned tag, const unsigned char *p, size_t len, size_t *i)
{
    size_t rem = len - *i, words = 0, tail;
    if (tag == ERL_NEW_REFERENCE_EXT || tag == ERL_NEWER_REFERENCE_EXT) {
        if (rem < 2)
            return CA_EBADTERM;
        words = ca__get16(p + *i);
        *i += 2;
    }
    int rc = skip_atom(p, len, i);
    if (rc < 0)
        return rc;
    switch (tag) {
    case ERL_PID_EXT:
        tail = 9;
        break;
    case ERL_NEW_PID_EXT:
    case ERL_V4_PORT_EXT:
        tail = 12;
        break;
    case ERL_PORT_EXT:
    case ERL_REFERENCE_EXT:
        tail = 5;
        break;
    case ERL_NEW_PORT_EXT:
        tail = 8;
        break;
    case ERL_NEW_REFERENCE_EXT:
        tail = 1 + 4 * words;
        break;
    default: /* ERL_NEWER_REFERENCE_EXT */
        tail = 4 + 4 * words;
        break;
    }
    if (len - *i < tail)
        return CA_EBADTERM;
    *i += tail;
    return 0;
}

int ca__etf_skip(const char *buf, size_t len, size_t *pos)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t i = *pos;
    /* Terms still to walk; each needs at least one byte, which bounds it
     * and the loop by the input length. */
    uint64_t pending = 1;
    while (pending > 0) {
        pending--;
        if (i >= len || pending > len - i - 1)
            return CA_EBADTERM;
        unsigned tag = p[i++];
        size_t rem = len - i;
        uint64_t n;
        if (skip_flat(tag, p + i, rem, &n)) {
            if (n > rem)
                return CA_EBADTERM;
            i += (size_t)n;
            continue;
        }
        switch (tag) {
        case ERL_SMALL_TUPLE_EXT:
            if (rem < 1)
                return CA_EBADTERM;
            pending += p[i++];
            break;
        case ERL_LARGE_TUPLE_EXT:
            if (rem < 4)
                return CA_EBADTERM;
            pending += ca__get32(p + i);
            i += 4;
            break;
        case ERL_LIST_EXT: /* elements, then the tail */
            if (rem < 4)
                return CA_EBADTERM;
            pending += (uint64_t)ca__get32(p + i) + 1;
            i += 4;
            break;
        case ERL_MAP_EXT:
            if (rem < 4)
                return CA_EBADTERM;
            pending += 2 * (uint64_t)ca__get32(p + i);
            i += 4;
            break;
        case ERL_EXPORT_EXT: /* module, function, arity */
            pending += 3;
            break;
        case ERL_PID_EXT:
        case ERL_NEW_PID_EXT:
        case ERL_PORT_EXT:
        case ERL_NEW_PORT_EXT:
        case ERL_V4_PORT_EXT:
        case ERL_REFERENCE_EXT:
        case ERL_NEW_REFERENCE_EXT:
        case ERL_NEWER_REFERENCE_EXT:
            if (skip_node_container(tag, p, len, &i) < 0)
                return CA_EBADTERM;
            break;
        default: /* atom cache refs, compressed, removed FUN_EXT, junk */
            return CA_EBADTERM;
        }
    }
    *pos = i;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Bounded readers into ei types                                       */
/* ------------------------------------------------------------------ */

typedef struct rd {
    const unsigned char *p;
    size_t len; /* end of the readable range */
    size_t pos;
} rd;

static int avail(const rd *r, size_t n)
{
    return r->len - r->pos >= n;
}

/* An atom as UTF-8 into out[MAXATOMLEN_UTF8]; Latin-1 atoms converted. */
static int rd_atom(rd *r, char *out)
{
    size_t n, hl = ca__atom_head(r->p + r->pos, r->len - r->pos, &n);
    if (!hl || !avail(r, hl + n))
        return CA_EPROTO;
    unsigned tag = r->p[r->pos];
    int utf8 = tag == ERL_ATOM_UTF8_EXT || tag == ERL_SMALL_ATOM_UTF8_EXT;
    const unsigned char *s = r->p + r->pos + hl;
    size_t o = 0;
    if (n < MAXATOMLEN && ca__utf8_ascii(s, n)) { /* node names, nearly every atom */
        memcpy(out, s, n);
        o = n;
    } else if (utf8) {
        size_t chars = 0;
        for (size_t k = 0; k < n && k < MAXATOMLEN_UTF8; k++)
            chars += (s[k] & 0xC0) != 0x80;
        /* Atoms are at most 255 characters, whatever their bytes. */
        if (n > MAXATOMLEN_UTF8 - 1 || chars > 255 || !ca__utf8_valid(s, n))
            return CA_EPROTO;
        memcpy(out, s, n);
        o = n;
    } else {
        if (n > MAXATOMLEN - 1)
            return CA_EPROTO;
        for (size_t k = 0; k < n; k++) { /* at most 2 * 255 bytes */
            if (s[k] < 0x80) {
                out[o++] = (char)s[k];
            } else {
                out[o++] = (char)(0xC0 | (s[k] >> 6));
                out[o++] = (char)(0x80 | (s[k] & 0x3F));
            }
        }
    }
    out[o] = 0;
    r->pos += hl + n;
    return 0;
}

static int rd_u32(rd *r, uint32_t *v)
{
    if (!avail(r, 4))
        return CA_EPROTO;
    *v = ca__get32(r->p + r->pos);
    r->pos += 4;
    return 0;
}

static int rd_pid(rd *r, erlang_pid *pid)
{
    if (!avail(r, 1))
        return CA_EPROTO;
    unsigned tag = r->p[r->pos];
    if (tag != ERL_PID_EXT && tag != ERL_NEW_PID_EXT)
        return CA_EPROTO;
    r->pos++;
    int rc = rd_atom(r, pid->node);
    if (rc == 0)
        rc = rd_u32(r, &pid->num);
    if (rc == 0)
        rc = rd_u32(r, &pid->serial);
    if (rc < 0)
        return rc;
    if (tag == ERL_NEW_PID_EXT)
        return rd_u32(r, &pid->creation);
    if (!avail(r, 1))
        return CA_EPROTO;
    pid->creation = r->p[r->pos++] & 0x03;
    return 0;
}

static int rd_ref(rd *r, erlang_ref *ref)
{
    if (!avail(r, 3))
        return CA_EPROTO;
    unsigned tag = r->p[r->pos];
    if (tag != ERL_NEW_REFERENCE_EXT && tag != ERL_NEWER_REFERENCE_EXT)
        return CA_EPROTO;
    size_t words = ca__get16(r->p + r->pos + 1);
    /* V4_NC allows up to 5 words: what erlang_ref holds. */
    if (words < 1 || words > 5)
        return CA_EPROTO;
    r->pos += 3;
    int rc = rd_atom(r, ref->node);
    if (rc < 0)
        return rc;
    if (tag == ERL_NEWER_REFERENCE_EXT) {
        if ((rc = rd_u32(r, &ref->creation)) < 0)
            return rc;
    } else {
        if (!avail(r, 1))
            return CA_EPROTO;
        ref->creation = r->p[r->pos++] & 0x03;
    }
    ref->len = (int)words;
    for (size_t k = 0; k < words; k++)
        if ((rc = rd_u32(r, &ref->n[k])) < 0)
            return rc;
    return 0;
}

/* A non-negative integer that fits 64 bits. */
static int rd_u64(rd *r, uint64_t *v)
{
    if (!avail(r, 2))
        return CA_EPROTO;
    const unsigned char *q = r->p + r->pos;
    switch (q[0]) {
    case ERL_SMALL_INTEGER_EXT:
        *v = q[1];
        r->pos += 2;
        return 0;
    case ERL_INTEGER_EXT:
        if (!avail(r, 5) || (q[1] & 0x80))
            return CA_EPROTO;
        *v = ca__get32(q + 1);
        r->pos += 5;
        return 0;
    case ERL_SMALL_BIG_EXT: {
        size_t n = q[1];
        if (n > 8 || !avail(r, 3 + n) || q[2] != 0)
            return CA_EPROTO;
        uint64_t x = 0;
        for (size_t k = n; k > 0; k--) /* little-endian digits */
            x = (x << 8) | q[2 + k];
        *v = x;
        r->pos += 3 + n;
        return 0;
    }
    default:
        return CA_EPROTO;
    }
}

static int rd_tuple(rd *r, size_t *arity)
{
    if (!avail(r, 2))
        return CA_EPROTO;
    if (r->p[r->pos] == ERL_SMALL_TUPLE_EXT) {
        *arity = r->p[r->pos + 1];
        r->pos += 2;
        return 0;
    }
    if (r->p[r->pos] == ERL_LARGE_TUPLE_EXT && avail(r, 5)) {
        *arity = ca__get32(r->p + r->pos + 1);
        r->pos += 5;
        return 0;
    }
    return CA_EPROTO;
}

static int rd_proc(rd *r, ca_dist_proc *pr)
{
    if (avail(r, 1) && (r->p[r->pos] == ERL_PID_EXT || r->p[r->pos] == ERL_NEW_PID_EXT)) {
        pr->is_name = 0;
        return rd_pid(r, &pr->pid);
    }
    pr->is_name = 1;
    return rd_atom(r, pr->name);
}

/* Any term, as a span (the control term was walked: this cannot fail
 * unless the walker and this range disagree, which is then a bad term). */
static int rd_span(rd *r, ca_dist_span *s)
{
    size_t start = r->pos;
    if (ca__etf_skip((const char *)r->p, r->len, &r->pos) < 0)
        return CA_EBADTERM;
    s->p = (const char *)r->p + start;
    s->len = r->pos - start;
    return 0;
}

static int rd_mfa(rd *r, ca_dist_ctrl *c)
{
    size_t arity;
    uint64_t a;
    int rc = rd_tuple(r, &arity);
    if (rc == 0 && arity != 3)
        rc = CA_EPROTO;
    if (rc == 0)
        rc = rd_atom(r, c->module);
    if (rc == 0)
        rc = rd_atom(r, c->function);
    if (rc == 0)
        rc = rd_u64(r, &a);
    if (rc == 0 && a > 255)
        rc = CA_EPROTO;
    if (rc == 0)
        c->arity = (unsigned)a;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Control decoding                                                    */
/* ------------------------------------------------------------------ */

enum { PL_NONE, PL_MSG, PL_REASON };

/*
 * Per op: the tuple's fields after the op, one letter each, and what
 * follows the tuple.
 *   f from pid      F from pid|name   t to pid     T to pid|name
 *   N to name       u unused term     r ref        k trace token
 *   R reason        i 64-bit id       g group leader
 *   m {M,F,A}       o spawn options   x spawn flags P result pid|atom
 */
typedef struct op_spec {
    int op;
    const char *fields;
    int payload;
    ca_dist_ctrl_kind kind;
} op_spec;

static const op_spec OPS[] = {
    {CA_DOP_LINK, "ft", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_SEND, "ut", PL_MSG, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_EXIT, "ftR", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_UNLINK, "ft", PL_NONE, CA_DIST_CTRL_IGNORED},
    {CA_DOP_NODE_LINK, "", PL_NONE, CA_DIST_CTRL_IGNORED},
    {CA_DOP_REG_SEND, "fuN", PL_MSG, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_GROUP_LEADER, "ft", PL_NONE, CA_DIST_CTRL_IGNORED},
    {CA_DOP_EXIT2, "ftR", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_SEND_TT, "utk", PL_MSG, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_EXIT_TT, "ftkR", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_REG_SEND_TT, "fuNk", PL_MSG, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_EXIT2_TT, "ftkR", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_MONITOR_P, "fTr", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_DEMONITOR_P, "fTr", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_MONITOR_P_EXIT, "FtrR", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_SEND_SENDER, "ft", PL_MSG, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_SEND_SENDER_TT, "ftk", PL_MSG, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_PAYLOAD_EXIT, "ft", PL_REASON, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_PAYLOAD_EXIT_TT, "ftk", PL_REASON, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_PAYLOAD_EXIT2, "ft", PL_REASON, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_PAYLOAD_EXIT2_TT, "ftk", PL_REASON, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_PAYLOAD_MONITOR_P_EXIT, "Ftr", PL_REASON, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_SPAWN_REQUEST, "rfgmo", PL_MSG, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_SPAWN_REQUEST_TT, "rfgmok", PL_MSG, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_SPAWN_REPLY, "rtxP", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_SPAWN_REPLY_TT, "rtxPk", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_ALIAS_SEND, "fr", PL_MSG, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_ALIAS_SEND_TT, "frk", PL_MSG, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_UNLINK_ID, "ift", PL_NONE, CA_DIST_CTRL_SIGNAL},
    {CA_DOP_UNLINK_ID_ACK, "ift", PL_NONE, CA_DIST_CTRL_SIGNAL},
};

static const op_spec *find_op(uint64_t op)
{
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++)
        if ((uint64_t)OPS[k].op == op)
            return &OPS[k];
    return NULL;
}

static int rd_field(rd *r, char f, ca_dist_ctrl *c)
{
    ca_dist_span unused;
    switch (f) {
    case 'f':
        c->from.is_name = 0;
        return rd_pid(r, &c->from.pid);
    case 'F':
        return rd_proc(r, &c->from);
    case 't':
        c->to.is_name = 0;
        return rd_pid(r, &c->to.pid);
    case 'T':
        return rd_proc(r, &c->to);
    case 'N':
        c->to.is_name = 1;
        return rd_atom(r, c->to.name);
    case 'u':
        return rd_span(r, &unused);
    case 'r':
        return rd_ref(r, &c->ref);
    case 'k':
        return rd_span(r, &c->token);
    case 'R':
        return rd_span(r, &c->reason);
    case 'i':
        return rd_u64(r, &c->id);
    case 'g':
        return rd_pid(r, &c->group_leader);
    case 'm':
        return rd_mfa(r, c);
    case 'o':
        return rd_span(r, &c->opts);
    case 'x':
        return rd_u64(r, &c->spawn_flags);
    default: /* 'P' */
        return rd_proc(r, &c->result);
    }
}

/* What follows the control term: buf[at..len). */
static int decode_payload(const char *buf, size_t len, size_t at, int mode, ca_dist_ctrl *c)
{
    size_t rest = len - at;
    if (mode == PL_NONE)
        return rest == 0 ? 0 : CA_EPROTO;
    if (rest < 2 || (unsigned char)buf[at] != ETF_VERSION)
        return CA_EPROTO;
    if (mode == PL_MSG) {
        c->payload.p = buf + at;
        c->payload.len = rest;
        return 0;
    }
    /* A reason travels as the payload: exactly one term, kept bare like
     * the reasons inside control tuples. */
    size_t pos = at + 1;
    if (ca__etf_skip(buf, len, &pos) < 0 || pos != len)
        return CA_EBADTERM;
    c->reason.p = buf + at + 1;
    c->reason.len = len - at - 1;
    return 0;
}

static void pid_reset(erlang_pid *p)
{
    p->node[0] = 0;
    p->num = p->serial = p->creation = 0;
}

static void proc_reset(ca_dist_proc *p)
{
    p->is_name = 0;
    pid_reset(&p->pid);
    p->name[0] = 0;
}

/* Empty every field, but only the first byte of the name buffers: the
 * struct is over 10 KB of them, and zeroing it all for every frame was a
 * real share of a small message's cost. Decoders write whole strings. */
static void ctrl_reset(ca_dist_ctrl *c)
{
    c->op = 0;
    c->kind = CA_DIST_CTRL_UNKNOWN;
    proc_reset(&c->from);
    proc_reset(&c->to);
    proc_reset(&c->result);
    c->ref.node[0] = 0;
    c->ref.len = 0;
    memset(c->ref.n, 0, sizeof c->ref.n);
    c->ref.creation = 0;
    c->id = 0;
    c->token = c->reason = c->payload = c->opts = (ca_dist_span){NULL, 0};
    pid_reset(&c->group_leader);
    c->module[0] = c->function[0] = 0;
    c->arity = 0;
    c->spawn_flags = 0;
}

/* Why a control term could not be read: not a well-formed term at all
 * (CA_EBADTERM), or one of the wrong shape (rc). */
static int not_ctrl(const char *buf, size_t len, int rc)
{
    size_t end = 1;
    return ca__etf_skip(buf, len, &end) < 0 ? CA_EBADTERM : rc;
}

int ca__dist_ctrl_decode(const char *buf, size_t len, ca_dist_ctrl *c)
{
    if (buf == NULL || c == NULL)
        return CA_EINVAL;
    ctrl_reset(c);
    if (len < 1 || (unsigned char)buf[0] != ETF_VERSION)
        return CA_EBADTERM;
    /* The fields are read in one pass, each reader bounded by the frame;
     * the control term ends where the last field does. */
    rd r = {(const unsigned char *)buf, len, 1};
    size_t arity, end = 1;
    uint64_t op;
    if (rd_tuple(&r, &arity) < 0 || arity < 1 || rd_u64(&r, &op) < 0 || op > INT_MAX)
        return not_ctrl(buf, len, CA_EPROTO);
    c->op = (int)op;
    const op_spec *spec = find_op(op);
    if (spec == NULL) {
        /* Newer peers may send ops we have never heard of: let the
         * caller log and skip them instead of dropping the connection. */
        if (ca__etf_skip(buf, len, &end) < 0)
            return CA_EBADTERM;
        c->payload.p = end < len ? buf + end : NULL;
        c->payload.len = len - end;
        return 0;
    }
    if (arity != 1 + strlen(spec->fields))
        return not_ctrl(buf, len, CA_EPROTO);
    for (const char *f = spec->fields; *f; f++) {
        int rc = rd_field(&r, *f, c);
        if (rc < 0)
            return not_ctrl(buf, len, rc);
    }
    end = r.pos;
    int rc = decode_payload(buf, len, end, spec->payload, c);
    if (rc < 0)
        return rc;
    c->kind = spec->kind;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */
/* ------------------------------------------------------------------ */

/* Bare encoding of a caller's term: drop a version byte, check that it is
 * one complete term. */
static int bare_term(const char **t, size_t *len)
{
    if (*t == NULL || *len == 0)
        return CA_EBADTERM;
    if ((unsigned char)(*t)[0] == ETF_VERSION) {
        (*t)++;
        (*len)--;
    }
    size_t pos = 0;
    if (ca__etf_skip(*t, *len, &pos) < 0 || pos != *len)
        return CA_EBADTERM;
    return 0;
}

/* ei counts in int: refuse what would not fit before it overflows. */
static int room(const ei_x_buff *x, size_t more)
{
    return x->index >= 0 && more <= (size_t)INT_MAX - 16 - (size_t)x->index;
}

static int begin(ei_x_buff *x, int op, long fields)
{
    static const char hdr[5] = {0, 0, 0, 0, CA_DIST_PASS_THROUGH};
    if (ei_x_append_buf(x, hdr, 5) < 0 || ei_x_encode_version(x) < 0 ||
        ei_x_encode_tuple_header(x, 1 + fields) < 0 || ei_x_encode_long(x, op) < 0)
        return CA_ENOMEM;
    return 0;
}

/* Patch the length in, or roll back to `start` on error. */
static int finish(ei_x_buff *x, int start, int rc)
{
    if (rc < 0) {
        x->index = start;
        return rc;
    }
    uint32_t n = (uint32_t)(x->index - start - 4);
    ca__put32((unsigned char *)x->buff + start, n);
    return 0;
}

static int enc_bytes(ei_x_buff *x, const char *t, size_t len)
{
    return ei_x_append_buf(x, t, (int)len) < 0 ? CA_ENOMEM : 0;
}

/*
 * Pids and references carry their node's name, and one or two go out with
 * nearly every message; ei's encoders convert that name between atom
 * encodings each time. A plain ASCII name (all of them, in practice) is
 * written here directly, byte for byte as ei writes it (test_cnode_codec
 * compares); anything else still goes through ei.
 */
static size_t put_node(unsigned char *b, const char *node)
{
    size_t n = strnlen(node, 256);
    if (n > 255 || !ca__utf8_ascii(node, n))
        return 0;
    b[0] = ERL_SMALL_ATOM_UTF8_EXT;
    b[1] = (unsigned char)n;
    memcpy(b + 2, node, n);
    return n + 2;
}

static int enc_pid(ei_x_buff *x, const erlang_pid *pid)
{
    if (pid == NULL)
        return CA_EINVAL;
    unsigned char b[1 + 2 + 255 + 12];
    size_t k = put_node(b + 1, pid->node);
    if (!k)
        return ei_x_encode_pid(x, pid) < 0 ? CA_EINVAL : 0;
    b[0] = ERL_NEW_PID_EXT;
    ca__put32(b + 1 + k, pid->num);
    ca__put32(b + 5 + k, pid->serial);
    ca__put32(b + 9 + k, pid->creation);
    return enc_bytes(x, (const char *)b, 13 + k);
}

static int enc_ref(ei_x_buff *x, const erlang_ref *ref)
{
    if (ref == NULL || ref->len < 1 || ref->len > 5)
        return CA_EINVAL;
    unsigned char b[3 + 2 + 255 + 4 + 5 * 4];
    size_t k = put_node(b + 3, ref->node);
    if (!k)
        return ei_x_encode_ref(x, ref) < 0 ? CA_EINVAL : 0;
    b[0] = ERL_NEWER_REFERENCE_EXT;
    ca__put16(b + 1, (unsigned)ref->len);
    ca__put32(b + 3 + k, ref->creation);
    for (int i = 0; i < ref->len; i++)
        ca__put32(b + 7 + k + 4 * (size_t)i, ref->n[i]);
    return enc_bytes(x, (const char *)b, 7 + k + 4 * (size_t)ref->len);
}

static int enc_atom(ei_x_buff *x, const char *name)
{
    if (name == NULL)
        return CA_EINVAL;
    size_t n = strnlen(name, MAXATOMLEN_UTF8);
    if (n >= MAXATOMLEN_UTF8 || !ca__utf8_valid(name, n))
        return CA_EINVAL;
    return ei_x_encode_atom_len_as(x, name, (int)n, ERLANG_UTF8, ERLANG_UTF8) < 0 ? CA_EINVAL : 0;
}

static int enc_proc(ei_x_buff *x, const ca_dist_proc *p)
{
    if (p == NULL)
        return CA_EINVAL;
    return p->is_name ? enc_atom(x, p->name) : enc_pid(x, &p->pid);
}

/* The message after the tuple, with its version byte. */
static int enc_payload(ei_x_buff *x, const char *msg, size_t len)
{
    static const char ver = (char)ETF_VERSION;
    int rc = bare_term(&msg, &len);
    if (rc == 0 && !room(x, len + 1))
        rc = CA_ETOOBIG;
    if (rc == 0)
        rc = enc_bytes(x, &ver, 1);
    if (rc == 0)
        rc = enc_bytes(x, msg, len);
    return rc;
}

/* A reason inside the tuple, bare. */
static int enc_reason(ei_x_buff *x, const char *reason, size_t len)
{
    int rc = bare_term(&reason, &len);
    if (rc == 0 && !room(x, len))
        rc = CA_ETOOBIG;
    return rc == 0 ? enc_bytes(x, reason, len) : rc;
}

int ca__dist_encode_send(ei_x_buff *x, const erlang_pid *to, const char *msg, size_t len)
{
    int start = x->index;
    int rc = begin(x, CA_DOP_SEND, 2);
    /* Unused: the empty atom, as OTP sends it. */
    if (rc == 0)
        rc = enc_atom(x, "");
    if (rc == 0)
        rc = enc_pid(x, to);
    if (rc == 0)
        rc = enc_payload(x, msg, len);
    return finish(x, start, rc);
}

int ca__dist_encode_send_sender(ei_x_buff *x, const erlang_pid *from, const erlang_pid *to,
                                const char *msg, size_t len)
{
    int start = x->index;
    int rc = begin(x, CA_DOP_SEND_SENDER, 2);
    if (rc == 0)
        rc = enc_pid(x, from);
    if (rc == 0)
        rc = enc_pid(x, to);
    if (rc == 0)
        rc = enc_payload(x, msg, len);
    return finish(x, start, rc);
}

int ca__dist_encode_reg_send(ei_x_buff *x, const erlang_pid *from, const char *to_name,
                             const char *msg, size_t len)
{
    int start = x->index;
    int rc = begin(x, CA_DOP_REG_SEND, 3);
    if (rc == 0)
        rc = enc_pid(x, from);
    if (rc == 0)
        rc = enc_atom(x, "");
    if (rc == 0)
        rc = enc_atom(x, to_name);
    if (rc == 0)
        rc = enc_payload(x, msg, len);
    return finish(x, start, rc);
}

int ca__dist_encode_alias_send(ei_x_buff *x, const erlang_pid *from, const erlang_ref *alias,
                               const char *msg, size_t len)
{
    int start = x->index;
    int rc = begin(x, CA_DOP_ALIAS_SEND, 2);
    if (rc == 0)
        rc = enc_pid(x, from);
    if (rc == 0)
        rc = enc_ref(x, alias);
    if (rc == 0)
        rc = enc_payload(x, msg, len);
    return finish(x, start, rc);
}

static int enc_two_pids(ei_x_buff *x, int op, const erlang_pid *from, const erlang_pid *to)
{
    int start = x->index;
    int rc = begin(x, op, 2);
    if (rc == 0)
        rc = enc_pid(x, from);
    if (rc == 0)
        rc = enc_pid(x, to);
    return finish(x, start, rc);
}

int ca__dist_encode_link(ei_x_buff *x, const erlang_pid *from, const erlang_pid *to)
{
    return enc_two_pids(x, CA_DOP_LINK, from, to);
}

static int enc_unlink(ei_x_buff *x, int op, uint64_t id, const erlang_pid *from,
                      const erlang_pid *to)
{
    /* Id 0 is outside the protocol's range 1..2^64-1. */
    if (id == 0)
        return CA_EINVAL;
    int start = x->index;
    int rc = begin(x, op, 3);
    if (rc == 0 && ei_x_encode_ulonglong(x, id) < 0)
        rc = CA_ENOMEM;
    if (rc == 0)
        rc = enc_pid(x, from);
    if (rc == 0)
        rc = enc_pid(x, to);
    return finish(x, start, rc);
}

int ca__dist_encode_unlink_id(ei_x_buff *x, uint64_t id, const erlang_pid *from,
                              const erlang_pid *to)
{
    return enc_unlink(x, CA_DOP_UNLINK_ID, id, from, to);
}

int ca__dist_encode_unlink_id_ack(ei_x_buff *x, uint64_t id, const erlang_pid *from,
                                  const erlang_pid *to)
{
    return enc_unlink(x, CA_DOP_UNLINK_ID_ACK, id, from, to);
}

static int enc_exit(ei_x_buff *x, int op, const erlang_pid *from, const erlang_pid *to,
                    const char *reason, size_t len)
{
    int start = x->index;
    int rc = begin(x, op, 3);
    if (rc == 0)
        rc = enc_pid(x, from);
    if (rc == 0)
        rc = enc_pid(x, to);
    if (rc == 0)
        rc = enc_reason(x, reason, len);
    return finish(x, start, rc);
}

int ca__dist_encode_exit(ei_x_buff *x, const erlang_pid *from, const erlang_pid *to,
                         const char *reason, size_t len)
{
    return enc_exit(x, CA_DOP_EXIT, from, to, reason, len);
}

int ca__dist_encode_exit2(ei_x_buff *x, const erlang_pid *from, const erlang_pid *to,
                          const char *reason, size_t len)
{
    return enc_exit(x, CA_DOP_EXIT2, from, to, reason, len);
}

static int enc_monitor(ei_x_buff *x, int op, const erlang_pid *from, const ca_dist_proc *to,
                       const erlang_ref *ref)
{
    int start = x->index;
    int rc = begin(x, op, 3);
    if (rc == 0)
        rc = enc_pid(x, from);
    if (rc == 0)
        rc = enc_proc(x, to);
    if (rc == 0)
        rc = enc_ref(x, ref);
    return finish(x, start, rc);
}

int ca__dist_encode_monitor_p(ei_x_buff *x, const erlang_pid *from, const ca_dist_proc *to,
                              const erlang_ref *ref)
{
    return enc_monitor(x, CA_DOP_MONITOR_P, from, to, ref);
}

int ca__dist_encode_demonitor_p(ei_x_buff *x, const erlang_pid *from, const ca_dist_proc *to,
                                const erlang_ref *ref)
{
    return enc_monitor(x, CA_DOP_DEMONITOR_P, from, to, ref);
}

int ca__dist_encode_monitor_p_exit(ei_x_buff *x, const ca_dist_proc *from, const erlang_pid *to,
                                   const erlang_ref *ref, const char *reason, size_t len)
{
    int start = x->index;
    int rc = begin(x, CA_DOP_MONITOR_P_EXIT, 4);
    if (rc == 0)
        rc = enc_proc(x, from);
    if (rc == 0)
        rc = enc_pid(x, to);
    if (rc == 0)
        rc = enc_ref(x, ref);
    if (rc == 0)
        rc = enc_reason(x, reason, len);
    return finish(x, start, rc);
}

int ca__dist_encode_spawn_reply(ei_x_buff *x, const erlang_ref *req, const erlang_pid *to,
                                uint64_t flags, const ca_dist_proc *result)
{
    int start = x->index;
    int rc = begin(x, CA_DOP_SPAWN_REPLY, 4);
    if (rc == 0)
        rc = enc_ref(x, req);
    if (rc == 0)
        rc = enc_pid(x, to);
    if (rc == 0 && ei_x_encode_ulonglong(x, flags) < 0)
        rc = CA_ENOMEM;
    if (rc == 0)
        rc = enc_proc(x, result);
    return finish(x, start, rc);
}
