/* EPMD requests and answers (erl_dist_protocol, "EPMD Protocol"). */
#include <string.h>

#include "bytes.h"
#include "dist.h"

/* EPMD keys nodes by the alive part only; an '@' there would register a
 * name no node can ever ask for. */
static int alive_len(const char *alive, size_t *n)
{
    if (alive == NULL)
        return CA_EBADNAME;
    size_t len = strnlen(alive, CA_EPMD_MAXALIVE + 1);
    if (len == 0 || len > CA_EPMD_MAXALIVE || memchr(alive, '@', len) != NULL)
        return CA_EBADNAME;
    *n = len;
    return 0;
}

int ca__epmd_alive2_req(ca_dist_out *out, const char *alive, uint16_t port)
{
    size_t n;
    int rc = alive_len(alive, &n);
    if (rc < 0)
        return rc;
    /* 120, port, type, proto, high, low, nlen, name, elen */
    size_t body = 1 + 2 + 1 + 1 + 2 + 2 + 2 + n + 2;
    if (out == NULL || out->cap - out->len < 2 + body)
        return CA_ETOOBIG;
    unsigned char *p = out->data + out->len;
    ca__put16(p, (unsigned)body);
    p[2] = CA_EPMD_ALIVE2_REQ;
    ca__put16(p + 3, port);
    p[5] = CA_EPMD_NODE_HIDDEN;
    p[6] = CA_EPMD_PROTO_TCP;
    ca__put16(p + 7, CA_DIST_VERSION);
    ca__put16(p + 9, CA_DIST_VERSION);
    ca__put16(p + 11, (unsigned)n);
    memcpy(p + 13, alive, n);
    ca__put16(p + 13 + n, 0);
    out->len += 2 + body;
    return 0;
}

int ca__epmd_alive2_resp(const void *buf, size_t len, size_t *used, uint32_t *creation)
{
    const unsigned char *p = buf;
    *used = 0;
    if (len < 2)
        return len == 1 && p[0] != CA_EPMD_ALIVE2_X_RESP && p[0] != CA_EPMD_ALIVE2_RESP ? CA_EPROTO
                                                                                        : 0;
    size_t full;
    if (p[0] == CA_EPMD_ALIVE2_X_RESP)
        full = 6;
    else if (p[0] == CA_EPMD_ALIVE2_RESP)
        full = 4;
    else
        return CA_EPROTO;
    /* A refusal is final whatever follows it: do not wait for the
     * creation bytes EPMD may or may not send with it. */
    if (p[1] != 0)
        return CA_EEXIST;
    if (len < full)
        return 0;
    *creation = full == 6 ? ca__get32(p + 2) : ca__get16(p + 2);
    *used = full;
    return 0;
}

int ca__epmd_port_please2_req(ca_dist_out *out, const char *alive)
{
    size_t n;
    int rc = alive_len(alive, &n);
    if (rc < 0)
        return rc;
    if (out == NULL || out->cap - out->len < 2 + 1 + n)
        return CA_ETOOBIG;
    unsigned char *p = out->data + out->len;
    ca__put16(p, (unsigned)(1 + n));
    p[2] = CA_EPMD_PORT_PLEASE2;
    memcpy(p + 3, alive, n);
    out->len += 3 + n;
    return 0;
}

int ca__epmd_port2_resp(const void *buf, size_t len, size_t *used, ca_epmd_node *node)
{
    const unsigned char *p = buf;
    *used = 0;
    if (len >= 1 && p[0] != CA_EPMD_PORT2_RESP)
        return CA_EPROTO;
    if (len < 2)
        return 0;
    if (p[1] != 0)
        return CA_ENOENT;
    /* 119, 0, port, type, proto, high, low, nlen */
    if (len < 12)
        return 0;
    size_t nlen = ca__get16(p + 10);
    if (nlen == 0)
        return CA_EPROTO;
    if (len < 12 + nlen + 2)
        return 0;
    size_t elen = ca__get16(p + 12 + nlen);
    size_t full = 12 + nlen + 2 + elen;
    if (len < full)
        return 0;
    node->port = (uint16_t)ca__get16(p + 2);
    node->node_type = p[4];
    node->protocol = p[5];
    node->highest = (uint16_t)ca__get16(p + 6);
    node->lowest = (uint16_t)ca__get16(p + 8);
    node->name.p = (const char *)p + 12;
    node->name.len = nlen;
    node->extra.p = (const char *)p + 14 + nlen;
    node->extra.len = elen;
    *used = full;
    return 0;
}
