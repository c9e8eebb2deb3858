/*
 * Big-endian integers in byte buffers: the external term format, the
 * distribution protocol and EPMD all use network byte order, at any
 * alignment. And the one layout every ETF reader here meets first and
 * most: an atom's header.
 */
#ifndef CA_BYTES_H
#define CA_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ei.h>

static inline unsigned ca__get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static inline uint32_t ca__get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t ca__get64(const unsigned char *p)
{
    return (uint64_t)ca__get32(p) << 32 | ca__get32(p + 4);
}

static inline void ca__put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void ca__put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline void ca__put64(unsigned char *p, uint64_t v)
{
    ca__put32(p, (uint32_t)(v >> 32));
    ca__put32(p + 4, (uint32_t)v);
}

/* The header of an atom at p[0..rem) in one of the four plain encodings
 * (ATOM_EXT, SMALL_ATOM_EXT and their UTF-8 forms): its length, 3 or 2,
 * with the atom's byte count in *n; 0 if rem holds no such header. The
 * atom's bytes are the caller's to bound. */
static inline size_t ca__atom_head(const unsigned char *p, size_t rem, size_t *n)
{
    if (rem < 2)
        return 0;
    switch (p[0]) {
    case ERL_SMALL_ATOM_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT:
        *n = p[1];
        return 2;
    case ERL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
        if (rem < 3)
            return 0;
        *n = ca__get16(p + 1);
        return 3;
    default:
        return 0;
    }
}

/* Whether p[0..rem) starts with the atom `name` (ASCII: the same bytes in
 * every encoding): the atom's whole length, or 0. */
static inline size_t ca__atom_is(const unsigned char *p, size_t rem, const char *name)
{
    size_t n, len = strlen(name), hl = ca__atom_head(p, rem, &n);
    if (!hl || n != len || rem - hl < len || memcmp(p + hl, name, len) != 0)
        return 0;
    return hl + len;
}

#endif
