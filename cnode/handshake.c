/*
 * The distribution handshake, version 6 (HANDSHAKE_23), as a byte-fed
 * state machine for both roles. See erl_dist_protocol, "Distribution
 * Handshake". Every message has a 2-byte big-endian length prefix.
 *
 *   initiator (A)                         acceptor (B)
 *   send_name 'N' ----------------------> (or the old 'n')
 *                 <---------------------- status 's'
 *   ('s' true/false if status was alive ->)
 *                 <---------------------- challenge 'N'
 *   (complement 'c', if A sent 'n' -----> )
 *   challenge_reply 'r' ----------------> checks A's digest
 *   checks B's digest <------------------ challenge_ack 'a'
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "bytes.h"
#include "dist.h"
#include "utf8.h"

enum {
    /* initiator */
    I_START,
    I_STATUS,
    I_CHALLENGE,
    I_ACK,
    /* acceptor */
    A_NAME,
    A_STATUS_REPLY,
    A_COMPLEMENT,
    A_REPLY,
};

/* ------------------------------------------------------------------ */
/* Flags, names, digest                                                */
/* ------------------------------------------------------------------ */

uint64_t ca__dist_flags_missing(uint64_t peer, uint64_t required)
{
    /* OTP 25+ may sum up the whole mandatory set in one bit. */
    if (peer & CA_DFLAG_MANDATORY_25_DIGEST)
        peer |= CA_DFLAG_MANDATORY_25;
    return required & ~peer;
}

/* "alive@host": one '@', both sides non-empty, no NUL, UTF-8. */
static int valid_node_name(const unsigned char *s, size_t n)
{
    if (n == 0 || n > CA_DIST_MAXNAME || memchr(s, 0, n) != NULL)
        return 0;
    const unsigned char *at = memchr(s, '@', n);
    if (at == NULL || at == s || at == s + n - 1)
        return 0;
    if (memchr(at + 1, '@', (size_t)(s + n - at - 1)) != NULL)
        return 0;
    return ca__utf8_valid(s, n);
}

int ca__dist_digest(const char *cookie, size_t cookie_len, uint32_t challenge,
                    unsigned char out[16])
{
    char text[16];
    int tlen = snprintf(text, sizeof text, "%lu", (unsigned long)challenge);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int olen = 0;
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, cookie, cookie_len) == 1 &&
             EVP_DigestUpdate(ctx, text, (size_t)tlen) == 1 &&
             EVP_DigestFinal_ex(ctx, out, &olen) == 1 && olen == 16;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : CA_EIO;
}

const char *ca__dist_hs_strerror(ca_dist_hs_error e)
{
    switch (e) {
    case CA_DIST_HS_OK:
        return "no error";
    case CA_DIST_HS_E_MALFORMED:
        return "malformed handshake message";
    case CA_DIST_HS_E_TOO_BIG:
        return "handshake message too long";
    case CA_DIST_HS_E_UNEXPECTED:
        return "unexpected handshake message";
    case CA_DIST_HS_E_FLAGS:
        return "peer lacks mandatory distribution flags";
    case CA_DIST_HS_E_NAME_ME:
        return "peer asks for a dynamic node name (not supported)";
    case CA_DIST_HS_E_PEER_NAME:
        return "peer is not the node dialled";
    case CA_DIST_HS_E_BAD_REPLY:
        return "invalid challenge reply: peer's cookie differs";
    case CA_DIST_HS_E_BAD_ACK:
        return "invalid challenge ack: peer's cookie differs";
    case CA_DIST_HS_E_NOK:
        return "peer refused: simultaneous connect (nok)";
    case CA_DIST_HS_E_NOT_ALLOWED:
        return "peer refused: not allowed";
    case CA_DIST_HS_E_ALIVE:
        return "peer already has a connection from this node (alive)";
    case CA_DIST_HS_E_STATUS:
        return "unknown or unwanted handshake status";
    case CA_DIST_HS_E_REFUSED:
        return "connection refused by local policy";
    case CA_DIST_HS_E_ALIVE_FALSE:
        return "peer gave up its connection attempt (alive: false)";
    case CA_DIST_HS_E_RANDOM:
        return "random source failed";
    case CA_DIST_HS_E_CRYPTO:
        return "MD5 digest unavailable";
    }
    return "unknown handshake error";
}

/* ------------------------------------------------------------------ */
/* Machine                                                             */
/* ------------------------------------------------------------------ */

static int fail(ca_dist_hs *hs, ca_dist_hs_error e)
{
    hs->state = CA_DIST_HS_FAILED;
    hs->error = e;
    switch (e) {
    case CA_DIST_HS_E_TOO_BIG:
        return CA_ETOOBIG;
    case CA_DIST_HS_E_BAD_REPLY:
    case CA_DIST_HS_E_BAD_ACK:
    case CA_DIST_HS_E_NOT_ALLOWED:
    case CA_DIST_HS_E_REFUSED:
        return CA_EPERM;
    case CA_DIST_HS_E_NOK:
    case CA_DIST_HS_E_ALIVE:
    case CA_DIST_HS_E_ALIVE_FALSE:
        return CA_EBUSY;
    case CA_DIST_HS_E_RANDOM:
    case CA_DIST_HS_E_CRYPTO:
        return CA_EIO;
    default:
        return CA_EPROTO;
    }
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap);
    if (n >= cap)
        return CA_ETOOBIG;
    memcpy(dst, src, n + 1);
    return 0;
}

int ca__dist_hs_init(ca_dist_hs *hs, const ca_dist_hs_config *cfg)
{
    if (hs == NULL || cfg == NULL || cfg->node_name == NULL || cfg->cookie == NULL ||
        cfg->rand == NULL || (cfg->role != CA_DIST_INITIATOR && cfg->role != CA_DIST_ACCEPTOR))
        return CA_EINVAL;
    memset(hs, 0, sizeof *hs);
    /* Until set up, the machine refuses start and feed. */
    hs->state = CA_DIST_HS_FAILED;
    size_t n = strnlen(cfg->node_name, CA_DIST_MAXNAME + 1);
    if (!valid_node_name((const unsigned char *)cfg->node_name, n))
        return CA_EBADNAME;
    memcpy(hs->name, cfg->node_name, n);
    if (copy_str(hs->cookie, sizeof hs->cookie, cfg->cookie) < 0)
        return CA_ETOOBIG;
    if (cfg->expect_peer != NULL) {
        size_t e = strnlen(cfg->expect_peer, CA_DIST_MAXNAME + 1);
        if (!valid_node_name((const unsigned char *)cfg->expect_peer, e))
            return CA_EBADNAME;
        memcpy(hs->expect, cfg->expect_peer, e);
    }
    hs->role = cfg->role;
    hs->state = CA_DIST_HS_RUNNING;
    hs->step = cfg->role == CA_DIST_INITIATOR ? I_START : A_NAME;
    hs->creation = cfg->creation;
    hs->flags = cfg->flags ? cfg->flags : CA_DFLAG_OFFER;
    hs->required = cfg->required ? cfg->required : CA_DFLAG_MANDATORY_25;
    hs->rand = cfg->rand;
    hs->alive_continue = cfg->alive_continue;
    hs->status_fn = cfg->status_fn;
    hs->status_ctx = cfg->status_ctx;
    return 0;
}

uint64_t ca__dist_hs_flags(const ca_dist_hs *hs)
{
    return hs->flags & hs->peer_flags;
}

/* Append one message: length prefix, tag, body. Callers size their
 * messages well under CA_DIST_HS_OUTMIN, checked on entry. */
static unsigned char *msg_begin(ca_dist_out *out, size_t body)
{
    unsigned char *p = out->data + out->len;
    ca__put16(p, (unsigned)body);
    out->len += 2 + body;
    return p + 2;
}

static void send_status(ca_dist_out *out, const char *status)
{
    size_t n = strlen(status);
    unsigned char *p = msg_begin(out, 1 + n);
    p[0] = 's';
    memcpy(p + 1, status, n);
}

static int gen_challenge(ca_dist_hs *hs, uint32_t *c)
{
    unsigned char b[4];
    if (hs->rand(b, 4) != 1)
        return fail(hs, CA_DIST_HS_E_RANDOM);
    *c = ca__get32(b);
    return 0;
}

static void send_name(ca_dist_hs *hs, ca_dist_out *out)
{
    size_t n = strlen(hs->name);
    unsigned char *p = msg_begin(out, 15 + n);
    p[0] = 'N';
    ca__put64(p + 1, hs->flags);
    ca__put32(p + 9, hs->creation);
    ca__put16(p + 13, (unsigned)n);
    memcpy(p + 15, hs->name, n);
}

static int send_challenge(ca_dist_hs *hs, ca_dist_out *out)
{
    int rc = gen_challenge(hs, &hs->my_challenge);
    if (rc < 0)
        return rc;
    size_t n = strlen(hs->name);
    unsigned char *p = msg_begin(out, 19 + n);
    p[0] = 'N';
    ca__put64(p + 1, hs->flags);
    ca__put32(p + 9, hs->my_challenge);
    ca__put32(p + 13, hs->creation);
    ca__put16(p + 17, (unsigned)n);
    memcpy(p + 19, hs->name, n);
    /* A peer that sent the old 'n' owes us its creation and high flags. */
    hs->step = hs->old_name ? A_COMPLEMENT : A_REPLY;
    return 0;
}

static int digest(ca_dist_hs *hs, uint32_t challenge, unsigned char d[16])
{
    if (ca__dist_digest(hs->cookie, strlen(hs->cookie), challenge, d) < 0)
        return fail(hs, CA_DIST_HS_E_CRYPTO);
    return 0;
}

/* Is digest `got` the right answer to our challenge? Constant time. */
static int check_digest(ca_dist_hs *hs, const unsigned char *got, ca_dist_hs_error bad)
{
    unsigned char want[16];
    int rc = digest(hs, hs->my_challenge, want);
    if (rc < 0)
        return rc;
    if (CRYPTO_memcmp(want, got, 16) != 0)
        return fail(hs, bad);
    return 0;
}

static int set_peer_name(ca_dist_hs *hs, const unsigned char *s, size_t n)
{
    if (!valid_node_name(s, n))
        return fail(hs, CA_DIST_HS_E_MALFORMED);
    memcpy(hs->peer_name, s, n);
    hs->peer_name[n] = 0;
    return 0;
}

/* --- acceptor ----------------------------------------------------- */

static int acc_status(ca_dist_hs *hs, ca_dist_out *out)
{
    ca_dist_status st = CA_DIST_ST_OK;
    if (hs->status_fn != NULL)
        st = hs->status_fn(hs->status_ctx, hs->peer_name, hs->peer_flags);
    switch (st) {
    case CA_DIST_ST_OK:
        send_status(out, "ok");
        return send_challenge(hs, out);
    case CA_DIST_ST_OK_SIMULTANEOUS:
        send_status(out, "ok_simultaneous");
        return send_challenge(hs, out);
    case CA_DIST_ST_NOK:
        send_status(out, "nok");
        return fail(hs, CA_DIST_HS_E_REFUSED);
    case CA_DIST_ST_ALIVE:
        send_status(out, "alive");
        hs->step = A_STATUS_REPLY;
        return 0;
    case CA_DIST_ST_NOT_ALLOWED:
    default:
        send_status(out, "not_allowed");
        return fail(hs, CA_DIST_HS_E_REFUSED);
    }
}

static int acc_name(ca_dist_hs *hs, const unsigned char *m, size_t n, ca_dist_out *out)
{
    const unsigned char *name;
    size_t nlen;
    uint64_t required = hs->required;
    if (m[0] == 'N' && n >= 15) {
        hs->peer_flags = ca__get64(m + 1);
        hs->peer_creation = ca__get32(m + 9);
        nlen = ca__get16(m + 13);
        name = m + 15;
        if (nlen > n - 15) /* extra bytes after the name are allowed */
            return fail(hs, CA_DIST_HS_E_MALFORMED);
    } else if (m[0] == 'n' && n >= 7) {
        /* Old send_name from an OTP 23/24 node that did not know our
         * version: 'n', version (ignored, as OTP does), 32-bit flags, then
         * the name up to the end. Its creation and high flags come later,
         * in a complement; only the low flags can be judged now. */
        hs->old_name = 1;
        hs->peer_flags = ca__get32(m + 3);
        name = m + 7;
        nlen = n - 7;
        required &= UINT64_C(0xffffffff);
    } else {
        return fail(hs,
                    m[0] == 'N' || m[0] == 'n' ? CA_DIST_HS_E_MALFORMED : CA_DIST_HS_E_UNEXPECTED);
    }
    if (hs->peer_flags & CA_DFLAG_NAME_ME) {
        send_status(out, "not_allowed");
        return fail(hs, CA_DIST_HS_E_NAME_ME);
    }
    int rc = set_peer_name(hs, name, nlen);
    if (rc < 0)
        return rc;
    if (hs->peer_flags & CA_DFLAG_MANDATORY_25_DIGEST)
        hs->peer_flags |= CA_DFLAG_MANDATORY_25;
    if (ca__dist_flags_missing(hs->peer_flags, required) != 0) {
        send_status(out, "not_allowed");
        return fail(hs, CA_DIST_HS_E_FLAGS);
    }
    return acc_status(hs, out);
}

static int acc_status_reply(ca_dist_hs *hs, const unsigned char *m, size_t n, ca_dist_out *out)
{
    if (m[0] != 's')
        return fail(hs, CA_DIST_HS_E_UNEXPECTED);
    if (n == 5 && memcmp(m + 1, "true", 4) == 0)
        return send_challenge(hs, out);
    if (n == 6 && memcmp(m + 1, "false", 5) == 0)
        return fail(hs, CA_DIST_HS_E_ALIVE_FALSE);
    return fail(hs, CA_DIST_HS_E_MALFORMED);
}

static int acc_complement(ca_dist_hs *hs, const unsigned char *m, size_t n)
{
    if (m[0] != 'c')
        return fail(hs, CA_DIST_HS_E_UNEXPECTED);
    if (n != 9)
        return fail(hs, CA_DIST_HS_E_MALFORMED);
    hs->peer_flags |= (uint64_t)ca__get32(m + 1) << 32;
    hs->peer_creation = ca__get32(m + 5);
    if (hs->peer_flags & CA_DFLAG_MANDATORY_25_DIGEST)
        hs->peer_flags |= CA_DFLAG_MANDATORY_25;
    /* The status is already sent: no "not_allowed" possible, just close. */
    if (ca__dist_flags_missing(hs->peer_flags, hs->required) != 0)
        return fail(hs, CA_DIST_HS_E_FLAGS);
    hs->step = A_REPLY;
    return 0;
}

static int acc_reply(ca_dist_hs *hs, const unsigned char *m, size_t n, ca_dist_out *out)
{
    if (m[0] != 'r')
        return fail(hs, CA_DIST_HS_E_UNEXPECTED);
    if (n != 21)
        return fail(hs, CA_DIST_HS_E_MALFORMED);
    int rc = check_digest(hs, m + 5, CA_DIST_HS_E_BAD_REPLY);
    if (rc < 0)
        return rc;
    hs->peer_challenge = ca__get32(m + 1);
    unsigned char d[16];
    if ((rc = digest(hs, hs->peer_challenge, d)) < 0)
        return rc;
    unsigned char *p = msg_begin(out, 17);
    p[0] = 'a';
    memcpy(p + 1, d, 16);
    hs->state = CA_DIST_HS_DONE;
    return 0;
}

/* --- initiator ---------------------------------------------------- */

static int is_status(const unsigned char *m, size_t n, const char *s)
{
    size_t k = strlen(s);
    return n == 1 + k && memcmp(m + 1, s, k) == 0;
}

static int ini_status(ca_dist_hs *hs, const unsigned char *m, size_t n, ca_dist_out *out)
{
    if (m[0] != 's')
        return fail(hs, CA_DIST_HS_E_UNEXPECTED);
    if (is_status(m, n, "ok") || is_status(m, n, "ok_simultaneous")) {
        hs->step = I_CHALLENGE;
        return 0;
    }
    if (is_status(m, n, "nok"))
        return fail(hs, CA_DIST_HS_E_NOK);
    if (is_status(m, n, "not_allowed"))
        return fail(hs, CA_DIST_HS_E_NOT_ALLOWED);
    if (is_status(m, n, "alive")) {
        /* The peer believes we are still connected. Only the caller knows
         * whether that old connection is gone ("true": go on). */
        if (hs->alive_continue) {
            send_status(out, "true");
            hs->step = I_CHALLENGE;
            return 0;
        }
        send_status(out, "false");
        return fail(hs, CA_DIST_HS_E_ALIVE);
    }
    /* "named:" included: it only answers a NAME_ME we never send. */
    return fail(hs, CA_DIST_HS_E_STATUS);
}

static int ini_challenge(ca_dist_hs *hs, const unsigned char *m, size_t n, ca_dist_out *out)
{
    if (m[0] != 'N')
        return fail(hs, CA_DIST_HS_E_UNEXPECTED);
    if (n < 19)
        return fail(hs, CA_DIST_HS_E_MALFORMED);
    size_t nlen = ca__get16(m + 17);
    if (nlen > n - 19)
        return fail(hs, CA_DIST_HS_E_MALFORMED);
    int rc = set_peer_name(hs, m + 19, nlen);
    if (rc < 0)
        return rc;
    if (hs->expect[0] != 0 && strcmp(hs->expect, hs->peer_name) != 0)
        return fail(hs, CA_DIST_HS_E_PEER_NAME);
    hs->peer_flags = ca__get64(m + 1);
    if (hs->peer_flags & CA_DFLAG_MANDATORY_25_DIGEST)
        hs->peer_flags |= CA_DFLAG_MANDATORY_25;
    if (ca__dist_flags_missing(hs->peer_flags, hs->required) != 0)
        return fail(hs, CA_DIST_HS_E_FLAGS);
    hs->peer_challenge = ca__get32(m + 9);
    hs->peer_creation = ca__get32(m + 13);
    unsigned char d[16];
    if ((rc = gen_challenge(hs, &hs->my_challenge)) < 0 ||
        (rc = digest(hs, hs->peer_challenge, d)) < 0)
        return rc;
    unsigned char *p = msg_begin(out, 21);
    p[0] = 'r';
    ca__put32(p + 1, hs->my_challenge);
    memcpy(p + 5, d, 16);
    hs->step = I_ACK;
    return 0;
}

static int ini_ack(ca_dist_hs *hs, const unsigned char *m, size_t n)
{
    if (m[0] != 'a')
        return fail(hs, CA_DIST_HS_E_UNEXPECTED);
    if (n != 17)
        return fail(hs, CA_DIST_HS_E_MALFORMED);
    int rc = check_digest(hs, m + 1, CA_DIST_HS_E_BAD_ACK);
    if (rc < 0)
        return rc;
    hs->state = CA_DIST_HS_DONE;
    return 0;
}

/* --- driver ------------------------------------------------------- */

static int handle(ca_dist_hs *hs, const unsigned char *m, size_t n, ca_dist_out *out)
{
    switch (hs->step) {
    case I_STATUS:
        return ini_status(hs, m, n, out);
    case I_CHALLENGE:
        return ini_challenge(hs, m, n, out);
    case I_ACK:
        return ini_ack(hs, m, n);
    case A_NAME:
        return acc_name(hs, m, n, out);
    case A_STATUS_REPLY:
        return acc_status_reply(hs, m, n, out);
    case A_COMPLEMENT:
        return acc_complement(hs, m, n);
    case A_REPLY:
        return acc_reply(hs, m, n, out);
    default: /* I_START: the peer speaks before our send_name */
        return fail(hs, CA_DIST_HS_E_UNEXPECTED);
    }
}

static int out_ok(const ca_dist_out *out)
{
    return out != NULL && out->data != NULL && out->len <= out->cap &&
           out->cap - out->len >= CA_DIST_HS_OUTMIN;
}

int ca__dist_hs_start(ca_dist_hs *hs, ca_dist_out *out)
{
    if (hs == NULL || hs->state != CA_DIST_HS_RUNNING || !out_ok(out))
        return CA_EINVAL;
    if (hs->role == CA_DIST_INITIATOR) {
        if (hs->step != I_START)
            return CA_EINVAL;
        send_name(hs, out);
        hs->step = I_STATUS;
    }
    return 0;
}

int ca__dist_hs_feed(ca_dist_hs *hs, const void *data, size_t len, size_t *used, ca_dist_out *out)
{
    const unsigned char *d = data;
    size_t pos = 0;
    *used = 0;
    if (hs == NULL || hs->state != CA_DIST_HS_RUNNING || !out_ok(out) || (data == NULL && len > 0))
        return CA_EINVAL;
    int rc = 0;
    while (pos < len && hs->state == CA_DIST_HS_RUNNING) {
        if (hs->have < 2) {
            hs->hdr[hs->have++] = d[pos++];
            if (hs->have == 2) {
                hs->need = ca__get16(hs->hdr);
                if (hs->need == 0)
                    rc = fail(hs, CA_DIST_HS_E_MALFORMED);
                else if (hs->need > CA_DIST_HS_MAXMSG)
                    rc = fail(hs, CA_DIST_HS_E_TOO_BIG);
            }
            continue;
        }
        size_t got = hs->have - 2;
        size_t take = hs->need - got;
        if (take > len - pos)
            take = len - pos;
        memcpy(hs->msg + got, d + pos, take);
        pos += take;
        hs->have += take;
        if (hs->have - 2 == hs->need) {
            hs->have = 0;
            rc = handle(hs, hs->msg, hs->need, out);
        }
    }
    *used = pos;
    return rc;
}
