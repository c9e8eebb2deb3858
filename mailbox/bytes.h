/*
 * Big-endian integers in byte buffers: the external term format, the
 * distribution protocol and EPMD all use network byte order, at any
 * alignment.
 */
#ifndef CA_BYTES_H
#define CA_BYTES_H

#include <stdint.h>

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

#endif
