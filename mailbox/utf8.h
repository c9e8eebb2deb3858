/*
 * Strict UTF-8, as Erlang takes it in atoms, node names and unicode
 * strings: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
#ifndef CA_UTF8_H
#define CA_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Decode one code point from s[0..n); its length in bytes, or 0 if it is
 * invalid or truncated. */
static inline int ca__utf8_dec(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    unsigned k;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        k = 1, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        k = 2, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        k = 3, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n <= k)
        return 0;
    for (unsigned j = 1; j <= k; j++) {
        if ((s[j] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[j] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return (int)k + 1;
}

/* 1 if s[0..n) is all ASCII: the common case, checked 8 bytes at a time. */
static inline int ca__utf8_ascii(const void *s, size_t n)
{
    const unsigned char *p = s;
    uint64_t bits = 0, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        bits |= w;
    }
    for (; i < n; i++)
        bits |= p[i];
    return !(bits & 0x8080808080808080u);
}

/* 1 if s[0..n) is strict UTF-8 throughout. */
static inline int ca__utf8_valid(const void *s, size_t n)
{
    const unsigned char *p = s;
    if (ca__utf8_ascii(s, n))
        return 1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = ca__utf8_dec(p + i, n - i, &cp);
        if (k == 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

#endif
