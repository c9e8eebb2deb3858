/*
 * Terms over ei: pid/ref conversion, ca_fmt (Erlang-syntax formats to
 * ETF), ca_match_term (patterns against ETF) and ca_term_print.
 *
 * ei's decoders trust the buffer: they have no length and recurse on
 * nesting. So every term from outside is first checked by check_terms(),
 * a bounded, iterative walk (a count of terms still expected replaces
 * the recursion, since every ETF container gives its size up front).
 * After that, ei_decode_* on the checked bytes stays inside the buffer,
 * but for ei_decode_double on an old FLOAT_EXT (read by float_text
 * instead), and skipping a term uses the same bounded walk instead of
 * ei_skip_term, which would recurse as deep as the term nests (and reads
 * floats with ei_decode_double).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "cactor.h"
#include "internal.h"
#include "utf8.h"

#define VERSION_MAGIC 131
#define MAXATOMCHARS  255
#define PRINT_DEPTH   64
#define FUN_DEPTH     16

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static int cp_valid(int64_t cp)
{
    return cp >= 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
}

static int utf8_enc(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Number of code points of valid UTF-8, or -1. */
static long utf8_count(const char *s, size_t n)
{
    if (ca__utf8_ascii(s, n))
        return (long)n;
    long count = 0;
    for (size_t i = 0; i < n; count++) {
        uint32_t cp;
        int k = ca__utf8_dec((const unsigned char *)s + i, n - i, &cp);
        if (k == 0)
            return -1;
        i += (size_t)k;
    }
    return count;
}

/* Floats are parsed and printed in the C locale whatever the program set. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static locale_t use_c_locale(void)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale ? uselocale(c_locale) : (locale_t)0;
}

static void restore_locale(locale_t old)
{
    if (old)
        uselocale(old);
}

/* ------------------------------------------------------------------ */
/* Checking terms                                                      */
/* ------------------------------------------------------------------ */

/* An atom at b[i], as pids, refs and ports embed one. */
static int check_atom(const unsigned char *b, size_t len, size_t i, size_t *next)
{
    size_t n, hdr = i < len ? ca__atom_head(b + i, len - i, &n) : 0;
    if (!hdr || n > len - i - hdr)
        return CA_EBADTERM;
    /* Latin-1 atoms are at most 255 bytes; UTF-8 ones must be valid so
     * that ~a hands out valid UTF-8 that fits CA_MAXATOM. */
    if (b[i] == ERL_ATOM_EXT || b[i] == ERL_SMALL_ATOM_EXT) {
        if (n > MAXATOMCHARS)
            return CA_EBADTERM;
    } else {
        long c = utf8_count((const char *)b + i + hdr, n);
        if (c < 0 || c > MAXATOMCHARS)
            return CA_EBADTERM;
    }
    *next = i + hdr + n;
    return 0;
}

/* Fixed-size things after a node atom: pids, old refs, ports. */
static int check_node_thing(const unsigned char *b, size_t len, size_t *i, size_t tail)
{
    size_t next;
    int err = check_atom(b, len, *i, &next);
    if (err)
        return err;
    if (tail > len - next)
        return CA_EBADTERM;
    *i = next + tail;
    return 0;
}

static int check_terms(const unsigned char *b, size_t len, size_t i, uint64_t count, size_t *end,
                       int depth);

static int check_new_ref(const unsigned char *b, size_t len, size_t *i, size_t creation)
{
    size_t next;
    if (len - *i < 2)
        return CA_EBADTERM;
    uint32_t n = ca__get16(b + *i);
    /* ei's erlang_ref and ca_ref hold at most 5 words */
    if (n > 5)
        return CA_EBADTERM;
    int err = check_atom(b, len, *i + 2, &next);
    if (err)
        return err;
    if (creation + 4 * (size_t)n > len - next)
        return CA_EBADTERM;
    *i = next + creation + 4 * (size_t)n;
    return 0;
}

/* One term at b[*p] whose tag is t1 or t2; moves *p past it. */
static bool typed(const unsigned char *b, size_t len, size_t *p, unsigned t1, unsigned t2,
                  int depth)
{
    return *p < len && (b[*p] == t1 || b[*p] == t2) && check_terms(b, len, *p, 1, p, depth) == 0;
}

/* NEW_FUN_EXT has both a byte size and sub-terms; they must agree or ei
 * would compute a negative free-variable size. */
static int check_new_fun(const unsigned char *b, size_t len, size_t *i, int depth)
{
    if (depth >= FUN_DEPTH || len - *i < 4)
        return CA_EBADTERM;
    uint32_t size = ca__get32(b + *i);
    if (size < 29 || size > len - *i)
        return CA_EBADTERM;
    uint32_t nfree = ca__get32(b + *i + 25);
    size_t lim = *i + size, p = *i + 29, end;
    /* Module, OldIndex, OldUniq, Pid, then the free variables */
    if (check_atom(b, lim, p, &p) ||
        !typed(b, lim, &p, ERL_SMALL_INTEGER_EXT, ERL_INTEGER_EXT, depth + 1) ||
        !typed(b, lim, &p, ERL_SMALL_INTEGER_EXT, ERL_INTEGER_EXT, depth + 1) ||
        !typed(b, lim, &p, ERL_PID_EXT, ERL_NEW_PID_EXT, depth + 1) ||
        check_terms(b, lim, p, nfree, &end, depth + 1) || end != lim)
        return CA_EBADTERM;
    *i = lim;
    return 0;
}

/* Module:Function/Arity: two atoms and a small integer. */
static int check_export(const unsigned char *b, size_t len, size_t *i)
{
    size_t p = *i;
    if (check_atom(b, len, p, &p) || check_atom(b, len, p, &p) ||
        !typed(b, len, &p, ERL_SMALL_INTEGER_EXT, ERL_SMALL_INTEGER_EXT, 0))
        return CA_EBADTERM;
    *i = p;
    return 0;
}

/* FLOAT_EXT's 31 bytes of text, NUL padded or not at all (Erlang takes
 * both): true and its value if it is a finite number and only NULs follow
 * it. Read here, within the 31 bytes: ei_decode_double (and so
 * ei_skip_term) hands them to sscanf, which looks for a NUL past them
 * when the text fills all 31. */
static bool float_text(const unsigned char *p, double *out)
{
    char tmp[32], *e; /* the text in C locale, NUL-terminated here */
    memcpy(tmp, p, 31);
    tmp[31] = 0;
    locale_t old = use_c_locale();
    double d = strtod(tmp, &e);
    restore_locale(old);
    if (e == tmp || !isfinite(d))
        return false;
    while (e < tmp + 31 && *e == 0)
        e++;
    *out = d;
    return e == tmp + 31;
}

static bool float_text_ok(const unsigned char *p)
{
    double d;
    return float_text(p, &d);
}

/* Check that b[i..len) starts with `count` complete terms; *end is where
 * they stop. Iterative: containers add their elements to `count`. */
static int check_terms(const unsigned char *b, size_t len, size_t i, uint64_t count, size_t *end,
                       int depth)
{
    while (count > 0) {
        /* every term takes at least one byte */
        if (i >= len || count > len - i)
            return CA_EBADTERM;
        count--;
        unsigned char tag = b[i++];
        size_t left = len - i;
        size_t need = 0;
        int err = 0;
        switch (tag) {
        case ERL_SMALL_INTEGER_EXT:
            need = 1;
            break;
        case ERL_INTEGER_EXT:
            need = 4;
            break;
        case NEW_FLOAT_EXT:
            need = 8;
            /* Erlang refuses NaN and infinities (binary_to_term, and a
             * distribution channel that carried one is closed) */
            err = left >= 8 && (ca__get16(b + i) & 0x7ff0) == 0x7ff0;
            break;
        case ERL_FLOAT_EXT:
            need = 31;
            err = left >= 31 && !float_text_ok(b + i);
            break;
        case ERL_ATOM_EXT:
        case ERL_SMALL_ATOM_EXT:
        case ERL_ATOM_UTF8_EXT:
        case ERL_SMALL_ATOM_UTF8_EXT:
            err = check_atom(b, len, i - 1, &i);
            break;
        case ERL_STRING_EXT:
            need = left < 2 ? 2 : 2 + (size_t)ca__get16(b + i);
            break;
        case ERL_BINARY_EXT:
            need = left < 4 ? 4 : 4 + (size_t)ca__get32(b + i);
            break;
        case ERL_BIT_BINARY_EXT:
            /* bits used in the last byte: 1..8, and 0 only when empty */
            need = left < 5 || b[i + 4] > 8 || (b[i + 4] == 0) != (ca__get32(b + i) == 0)
                       ? SIZE_MAX
                       : 5 + (size_t)ca__get32(b + i);
            break;
        case ERL_SMALL_BIG_EXT:
            need = left < 1 ? 1 : 2 + (size_t)b[i];
            break;
        case ERL_LARGE_BIG_EXT:
            need = left < 4 ? 4 : 5 + (size_t)ca__get32(b + i);
            break;
        case ERL_NIL_EXT:
            break;
        case ERL_SMALL_TUPLE_EXT:
            need = 1;
            if (left >= 1)
                count += b[i];
            break;
        case ERL_LARGE_TUPLE_EXT:
            need = 4;
            if (left >= 4)
                count += ca__get32(b + i);
            break;
        case ERL_LIST_EXT:
            need = 4;
            if (left >= 4)
                count += (uint64_t)ca__get32(b + i) + 1;
            break;
        case ERL_MAP_EXT:
            need = 4;
            if (left >= 4)
                count += 2 * (uint64_t)ca__get32(b + i);
            break;
        case ERL_NEW_PID_EXT:
            err = check_node_thing(b, len, &i, 12);
            break;
        case ERL_PID_EXT:
            err = check_node_thing(b, len, &i, 9);
            break;
        case ERL_REFERENCE_EXT:
            err = check_node_thing(b, len, &i, 5);
            break;
        case ERL_NEW_REFERENCE_EXT:
            err = check_new_ref(b, len, &i, 1);
            break;
        case ERL_NEWER_REFERENCE_EXT:
            err = check_new_ref(b, len, &i, 4);
            break;
        case ERL_PORT_EXT:
            err = check_node_thing(b, len, &i, 5);
            break;
        case ERL_NEW_PORT_EXT:
            err = check_node_thing(b, len, &i, 8);
            break;
        case ERL_V4_PORT_EXT:
            err = check_node_thing(b, len, &i, 12);
            break;
        case ERL_EXPORT_EXT:
            err = check_export(b, len, &i);
            break;
        /* FUN_EXT, the pre-R8 fun, is refused: OTP 23 and later refuse it
         * too and never send it. */
        case ERL_NEW_FUN_EXT:
            err = check_new_fun(b, len, &i, depth);
            break;
        default:
            return CA_EBADTERM;
        }
        if (err || need > len - i)
            return CA_EBADTERM;
        i += need;
    }
    *end = i;
    return 0;
}

/* The one term at buf[i] (already checked as part of a larger term). */
static int term_end(const char *buf, size_t len, int i)
{
    size_t end = (size_t)i;
    check_terms((const unsigned char *)buf, len, (size_t)i, 1, &end, 0);
    return (int)end;
}

int ca__term_skip(const char *buf, size_t len, int *idx)
{
    size_t end;
    if (buf == NULL || *idx < 0 || (size_t)*idx >= len || len > INT_MAX ||
        check_terms((const unsigned char *)buf, len, (size_t)*idx, 1, &end, 0))
        return CA_EBADTERM;
    *idx = (int)end;
    return 0;
}

/* A float of a checked term, in either encoding (see float_text). */
static int decode_double(const char *buf, int *idx, double *d)
{
    const unsigned char *p = (const unsigned char *)buf + *idx;
    if (p[0] != ERL_FLOAT_EXT)
        return ei_decode_double(buf, idx, d) < 0 ? CA_EBADTERM : 0;
    if (!float_text(p + 1, d))
        return CA_EBADTERM;
    *idx += 32;
    return 0;
}

/* Skip the version byte if any and check that buf[start..len) is exactly
 * one term. ei uses int indices, hence the INT_MAX limit. */
static int check_whole(const char *buf, size_t len, int *start)
{
    size_t i = 0, end;
    if (buf == NULL || len == 0 || len > INT_MAX)
        return CA_EBADTERM;
    if ((unsigned char)buf[0] == VERSION_MAGIC)
        i = 1;
    int err = check_terms((const unsigned char *)buf, len, i, 1, &end, 0);
    if (err || end != len)
        return CA_EBADTERM;
    *start = (int)i;
    return 0;
}

/* For other files (e.g. checking a payload before queueing it): 0 if
 * buf[0..len) is one well-formed term, with or without version byte. */
int ca__term_check(const char *buf, size_t len)
{
    int start;
    return check_whole(buf, len, &start);
}

/* ------------------------------------------------------------------ */
/* Pids and refs                                                       */
/* ------------------------------------------------------------------ */

static int node_to_ei(uint32_t node, char *out)
{
    const char *name = ca_node_name(node);
    if (name == NULL)
        return CA_EINVAL;
    size_t n = strlen(name);
    /* the table allows up to 1020 bytes, an atom up to 255 characters */
    long chars = utf8_count(name, n);
    if (chars < 0 || chars > MAXATOMCHARS)
        return CA_EINVAL;
    memcpy(out, name, n + 1);
    return 0;
}

int ca_encode_pid(ei_x_buff *x, ca_pid pid)
{
    erlang_pid ep;
    if (x == NULL)
        return CA_EINVAL;
    int err = node_to_ei(pid.node, ep.node);
    if (err)
        return err;
    ep.num = pid.num;
    ep.serial = pid.serial;
    ep.creation = pid.creation;
    return ei_x_encode_pid(x, &ep) < 0 ? CA_ENOMEM : 0;
}

int ca_encode_ref(ei_x_buff *x, const ca_ref *ref)
{
    erlang_ref er;
    if (x == NULL || ref == NULL || ref->len < 1 || ref->len > 5)
        return CA_EINVAL;
    int err = node_to_ei(ref->node, er.node);
    if (err)
        return err;
    er.len = (int)ref->len;
    er.creation = ref->creation;
    memcpy(er.n, ref->n, sizeof(er.n));
    return ei_x_encode_ref(x, &er) < 0 ? CA_ENOMEM : 0;
}

/* The node of a pid or reference at p (its atom), when the name is ASCII,
 * as every node name is in practice: read and interned in place, without
 * ei's copy and conversion. The length of the atom, or 0 for the caller
 * to go through ei (which reads the other encodings the same way; like
 * ei, this trusts the buffer to hold the term). */
static size_t node_in_place(const unsigned char *p, uint32_t *node)
{
    size_t n, hl = ca__atom_head(p, SIZE_MAX, &n);
    if (!hl || n >= MAXATOMLEN || !ca__utf8_ascii(p + hl, n) ||
        ca__node_intern_n((const char *)p + hl, n, node) != 0)
        return 0;
    return hl + n;
}

/* ERL_PID_EXT and ERL_NEW_PID_EXT: num and serial as they are, the old
 * form's creation in its 2 bits, as ei 5.3 reads them. */
static int pid_in_place(const char *buf, int *index, ca_pid *pid)
{
    const unsigned char *p = (const unsigned char *)buf + *index;
    uint32_t node;
    size_t an = (p[0] == ERL_NEW_PID_EXT || p[0] == ERL_PID_EXT) ? node_in_place(p + 1, &node) : 0;
    if (!an)
        return -1;
    const unsigned char *q = p + 1 + an;
    pid->node = node;
    pid->num = ca__get32(q);
    pid->serial = ca__get32(q + 4);
    pid->creation = p[0] == ERL_NEW_PID_EXT ? ca__get32(q + 8) : q[8] & 0x03;
    *index += (int)(1 + an + (p[0] == ERL_NEW_PID_EXT ? 12 : 9));
    return 0;
}

static int ref_in_place(const char *buf, int *index, ca_ref *ref)
{
    const unsigned char *p = (const unsigned char *)buf + *index;
    if (p[0] != ERL_NEW_REFERENCE_EXT && p[0] != ERL_NEWER_REFERENCE_EXT)
        return -1;
    uint32_t words = ca__get16(p + 1), node;
    size_t an = words >= 1 && words <= 5 ? node_in_place(p + 3, &node) : 0;
    if (!an)
        return -1;
    const unsigned char *q = p + 3 + an;
    ref->node = node;
    if (p[0] == ERL_NEWER_REFERENCE_EXT) {
        ref->creation = ca__get32(q);
        q += 4;
    } else {
        ref->creation = *q++ & 0x03;
    }
    ref->len = words;
    memset(ref->n, 0, sizeof ref->n);
    for (uint32_t k = 0; k < words; k++)
        ref->n[k] = ca__get32(q + 4 * k);
    *index = (int)((const char *)q + 4 * words - buf);
    return 0;
}

int ca_decode_pid(const char *buf, int *index, ca_pid *pid)
{
    erlang_pid ep;
    uint32_t node;
    if (buf == NULL || index == NULL || pid == NULL)
        return CA_EINVAL;
    if (pid_in_place(buf, index, pid) == 0)
        return 0;
    int i = *index;
    if (ei_decode_pid(buf, &i, &ep) < 0 || ca_node_intern(ep.node, &node) < 0)
        return CA_EBADTERM;
    pid->node = node;
    pid->num = ep.num;
    pid->serial = ep.serial;
    pid->creation = ep.creation;
    *index = i;
    return 0;
}

int ca_decode_ref(const char *buf, int *index, ca_ref *ref)
{
    erlang_ref er;
    uint32_t node;
    if (buf == NULL || index == NULL || ref == NULL)
        return CA_EINVAL;
    if (ref_in_place(buf, index, ref) == 0)
        return 0;
    int i = *index;
    if (ei_decode_ref(buf, &i, &er) < 0 || er.len < 1 || er.len > 5 ||
        ca_node_intern(er.node, &node) < 0)
        return CA_EBADTERM;
    ref->node = node;
    ref->creation = er.creation;
    ref->len = (uint32_t)er.len;
    memset(ref->n, 0, sizeof(ref->n));
    memcpy(ref->n, er.n, (size_t)er.len * sizeof(er.n[0]));
    *index = i;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Pattern lexer (shared by ca_fmt and ca_match_term)                  */
/* ------------------------------------------------------------------ */

/* An integer literal: sign and magnitude, so that all of -2^64+1..2^64-1
 * can be written and compared whatever the term's encoding. */
typedef struct ival {
    int neg;
    uint64_t mag;
} ival;

static void ws(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
        (*p)++;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int atom_start(int c)
{
    return (c >= 'a' && c <= 'z') || (unsigned char)c >= 0x80;
}

static int ident_char(int c)
{
    return atom_start(c) || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '@';
}

static int hexval(int c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* An escape after the backslash, Erlang style. */
static int lex_escape(const char **pp, uint32_t *cp)
{
    const char *p = *pp;
    uint32_t v = 0;
    int c = (unsigned char)*p++;
    switch (c) {
    case 'b':
        v = '\b';
        break;
    case 'd':
        v = 127;
        break;
    case 'e':
        v = 27;
        break;
    case 'f':
        v = '\f';
        break;
    case 'n':
        v = '\n';
        break;
    case 'r':
        v = '\r';
        break;
    case 's':
        v = ' ';
        break;
    case 't':
        v = '\t';
        break;
    case 'v':
        v = '\v';
        break;
    case '^':
        c = (unsigned char)*p++;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '@'))
            return CA_EBADPAT;
        v = (uint32_t)c & 31;
        break;
    case 'x':
        if (*p == '{') {
            int n = 0;
            for (p++; *p != '}'; p++, n++) {
                int h = hexval(*p);
                if (h < 0 || n >= 6)
                    return CA_EBADPAT;
                v = v << 4 | (uint32_t)h;
            }
            if (n == 0)
                return CA_EBADPAT;
            p++;
        } else {
            int h1 = hexval(p[0]), h2 = h1 < 0 ? -1 : hexval(p[1]);
            if (h2 < 0)
                return CA_EBADPAT;
            v = (uint32_t)(h1 << 4 | h2);
            p += 2;
        }
        break;
    default:
        if (c >= '0' && c <= '7') {
            v = (uint32_t)(c - '0');
            for (int k = 0; k < 2 && *p >= '0' && *p <= '7'; k++)
                v = v << 3 | (uint32_t)(*p++ - '0');
        } else if (c >= 0x20 && c < 0x7f) {
            v = (uint32_t)c; /* \\ \' \" and the like stand for themselves */
        } else {
            return CA_EBADPAT;
        }
    }
    if (!cp_valid(v))
        return CA_EBADPAT;
    *pp = p;
    *cp = v;
    return 0;
}

/* One character of a quoted literal: 1 and *cp, or 0 at the closing
 * `quote` (consumed), or CA_EBADPAT. quote 0 reads exactly one character
 * (for $c). */
static int lex_char(const char **pp, char quote, uint32_t *cp)
{
    const char *p = *pp;
    if (*p == '\0')
        return CA_EBADPAT;
    if (quote && *p == quote) {
        *pp = p + 1;
        return 0;
    }
    if (*p == '\\') {
        p++;
        int err = lex_escape(&p, cp);
        if (err)
            return err;
        *pp = p;
        return 1;
    }
    int k = ca__utf8_dec((const unsigned char *)p, strnlen(p, 4), cp);
    if (k == 0)
        return CA_EBADPAT;
    *pp = p + k;
    return 1;
}

/* An atom literal. The name is a slice of the pattern when it can be
 * (bare atoms, quoted ones without escapes), else decoded into scratch
 * (CA_MAXATOM bytes). */
static int lex_atom(const char **pp, char *scratch, const char **name, size_t *len)
{
    const char *p = *pp, *start;
    if (*p != '\'') {
        if (!atom_start(*p))
            return CA_EBADPAT;
        unsigned high = 0;
        for (start = p; ident_char(*p); p++)
            high |= (unsigned char)*p;
        *name = start;
        *len = (size_t)(p - start);
        if (high < 0x80) { /* ASCII: one character a byte, nothing to decode */
            if (*len > MAXATOMCHARS)
                return CA_EBADPAT;
            *pp = p;
            return 0;
        }
    } else {
        start = ++p;
        while (*p && *p != '\'' && *p != '\\')
            p++;
        if (*p == '\'') {
            *name = start;
            *len = (size_t)(p - start);
            p++;
        } else {
            size_t n = 0;
            uint32_t cp;
            int r;
            p = start;
            while ((r = lex_char(&p, '\'', &cp)) == 1) {
                if (n + 4 >= CA_MAXATOM)
                    return CA_EBADPAT;
                n += (size_t)utf8_enc(cp, scratch + n);
            }
            if (r < 0)
                return r;
            *name = scratch;
            *len = n;
        }
    }
    long chars = utf8_count(*name, *len);
    if (chars < 0 || chars > MAXATOMCHARS)
        return CA_EBADPAT;
    *pp = p;
    return 0;
}

static int parse_float(const char *start, const char *end, double *d)
{
    char tmp[64];
    size_t n = (size_t)(end - start);
    if (n >= sizeof(tmp))
        return CA_EBADPAT;
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    locale_t old = use_c_locale();
    char *e;
    *d = strtod(tmp, &e);
    restore_locale(old);
    return *e == '\0' && isfinite(*d) ? 0 : CA_EBADPAT;
}

/* A number literal: -12, 16#ff, $a, 1.5, -2.0e-3. Sets *is_float and
 * either *iv or *d. */
static int lex_num(const char **pp, ival *iv, double *d, int *is_float)
{
    const char *p = *pp, *start = p;
    uint64_t v = 0;
    iv->neg = *p == '-';
    if (iv->neg)
        p++;
    *is_float = 0;
    if (*p == '$') {
        uint32_t cp;
        p++;
        if (lex_char(&p, 0, &cp) != 1)
            return CA_EBADPAT;
        v = cp;
    } else {
        if (!is_digit(*p))
            return CA_EBADPAT;
        for (; is_digit(*p); p++) {
            uint64_t dv = (uint64_t)(*p - '0');
            if (v > (UINT64_MAX - dv) / 10)
                return CA_EBADPAT;
            v = v * 10 + dv;
        }
        if (*p == '#') {
            uint64_t base = v;
            int nd = 0;
            if (base < 2 || base > 36)
                return CA_EBADPAT;
            for (v = 0, p++;; p++, nd++) {
                int c = *p, dv;
                if (is_digit(c))
                    dv = c - '0';
                else if (c >= 'a' && c <= 'z')
                    dv = c - 'a' + 10;
                else if (c >= 'A' && c <= 'Z')
                    dv = c - 'A' + 10;
                else
                    break;
                if ((uint64_t)dv >= base || v > (UINT64_MAX - (uint64_t)dv) / base)
                    return CA_EBADPAT;
                v = v * base + (uint64_t)dv;
            }
            if (nd == 0)
                return CA_EBADPAT;
        } else if (*p == '.' && is_digit(p[1])) {
            for (p++; is_digit(*p);)
                p++;
            if ((*p == 'e' || *p == 'E') &&
                (is_digit(p[1]) || ((p[1] == '-' || p[1] == '+') && is_digit(p[2])))) {
                for (p += 2; is_digit(*p);)
                    p++;
            }
            *is_float = 1;
            int err = parse_float(start, p, d);
            if (err)
                return err;
        }
        if (ident_char(*p))
            return CA_EBADPAT;
    }
    iv->mag = v;
    if (v == 0)
        iv->neg = 0;
    *pp = p;
    return 0;
}

static int is_ph_letter(int c)
{
    return c && strchr("asiulfbprt", c) != NULL;
}

/* ------------------------------------------------------------------ */
/* Binary literals: <<"abc", 1, "é"/utf8>>                             */
/* ------------------------------------------------------------------ */

typedef int (*bin_fn)(void *ctx, const unsigned char *bytes, size_t n);

/* Walk the segments of a binary literal (p after "<<"), handing bytes to
 * fn (which may be NULL to only check syntax). A string segment is one
 * byte per character (all < 256), as in Erlang, or UTF-8 with /utf8. */
static int bin_walk(const char **pp, bin_fn fn, void *ctx)
{
    const char *p = *pp;
    ws(&p);
    if (p[0] == '>' && p[1] == '>') {
        *pp = p + 2;
        return 0;
    }
    for (;;) {
        ws(&p);
        if (*p == '"') {
            const char *s = p + 1, *q = s;
            uint32_t cp;
            int r, utf8 = 0;
            while ((r = lex_char(&q, '"', &cp)) == 1)
                ;
            if (r < 0)
                return r;
            if (strncmp(q, "/utf8", 5) == 0 && !ident_char(q[5]))
                utf8 = 1;
            while ((r = lex_char(&s, '"', &cp)) == 1) {
                char tmp[4];
                int n = 1;
                if (utf8)
                    n = utf8_enc(cp, tmp);
                else if (cp > 255)
                    return CA_EBADPAT;
                else
                    tmp[0] = (char)cp;
                if (fn && (r = fn(ctx, (const unsigned char *)tmp, (size_t)n)) != 0)
                    return r;
            }
            p = q + (utf8 ? 5 : 0);
        } else {
            ival iv;
            double d;
            int is_float;
            int err = lex_num(&p, &iv, &d, &is_float);
            if (err)
                return err;
            if (is_float || iv.neg || iv.mag > 255)
                return CA_EBADPAT;
            unsigned char byte = (unsigned char)iv.mag;
            if (fn && (err = fn(ctx, &byte, 1)) != 0)
                return err;
        }
        ws(&p);
        if (*p == ',') {
            p++;
        } else if (p[0] == '>' && p[1] == '>') {
            *pp = p + 2;
            return 0;
        } else {
            return CA_EBADPAT;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Syntax check: skip one element of a pattern or format               */
/* ------------------------------------------------------------------ */

enum { MODE_FMT, MODE_MATCH };

static int skip_one(const char **pp, int mode, int key);

/* Elements up to `close` (p after the opener); lists may end in "| T".
 * Counts them in *n when n is not NULL. */
static int skip_seq(const char **pp, char close, int list, int mode, int key, uint32_t *n,
                    int *tail)
{
    const char *p = *pp;
    uint32_t count = 0;
    if (tail)
        *tail = 0;
    ws(&p);
    if (*p == close) {
        *pp = p + 1;
        if (n)
            *n = 0;
        return 0;
    }
    for (;;) {
        int err = skip_one(&p, mode, key);
        if (err)
            return err;
        count++;
        ws(&p);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == close)
            break;
        if (!list || *p != '|')
            return CA_EBADPAT;
        p++;
        ws(&p);
        /* the rest of an encoded list is rarely one contiguous term */
        if (mode == MODE_MATCH && p[0] == '~' && p[1] == 't')
            return CA_EBADPAT;
        if ((err = skip_one(&p, mode, key)) != 0)
            return err;
        if (tail)
            *tail = 1;
        ws(&p);
        if (*p != close)
            return CA_EBADPAT;
        break;
    }
    *pp = p + 1;
    if (n)
        *n = count;
    return 0;
}

static int skip_map(const char **pp, int mode, int key, uint32_t *n)
{
    const char *p = *pp;
    uint32_t count = 0;
    ws(&p);
    if (*p != '}') {
        for (;;) {
            /* match: keys are compared, so they must be literals */
            int err = skip_one(&p, mode, mode == MODE_MATCH ? 1 : key);
            if (err)
                return err;
            ws(&p);
            if (p[0] != '=' || p[1] != '>')
                return CA_EBADPAT;
            p += 2;
            if ((err = skip_one(&p, mode, key)) != 0)
                return err;
            count++;
            ws(&p);
            if (*p == '}')
                break;
            if (*p != ',')
                return CA_EBADPAT;
            p++;
        }
    }
    *pp = p + 1;
    if (n)
        *n = count;
    return 0;
}

static int skip_one(const char **pp, int mode, int key)
{
    const char *p = *pp;
    int err = 0;
    ws(&p);
    char c = *p;
    if (c == '{') {
        p++;
        err = skip_seq(&p, '}', 0, mode, key, NULL, NULL);
    } else if (c == '[') {
        p++;
        err = skip_seq(&p, ']', 1, mode, key, NULL, NULL);
    } else if (c == '#' && p[1] == '{') {
        p += 2;
        err = skip_map(&p, mode, key, NULL);
    } else if (c == '<' && p[1] == '<') {
        p += 2;
        err = bin_walk(&p, NULL, NULL);
    } else if (c == '"') {
        uint32_t cp;
        int r;
        for (p++; (r = lex_char(&p, '"', &cp)) == 1;)
            ;
        err = r;
    } else if (c == '~') {
        if (!is_ph_letter(p[1]) || key)
            return CA_EBADPAT;
        p += 2;
    } else if (c == '_') {
        if (mode != MODE_MATCH || key)
            return CA_EBADPAT;
        while (ident_char(*p))
            p++;
    } else if (c == '-' || c == '$' || is_digit(c)) {
        ival iv;
        double d;
        int f;
        err = lex_num(&p, &iv, &d, &f);
    } else if (c == '\'' || atom_start(c)) {
        char scratch[CA_MAXATOM];
        const char *name;
        size_t len;
        err = lex_atom(&p, scratch, &name, &len);
    } else {
        return CA_EBADPAT;
    }
    if (err)
        return err;
    *pp = p;
    return 0;
}

/* The whole pattern is one well-formed element. */
static int check_pattern(const char *p, int mode)
{
    int err = skip_one(&p, mode, 0);
    if (err)
        return err;
    ws(&p);
    return *p ? CA_EBADPAT : 0;
}

/* ------------------------------------------------------------------ */
/* ca_fmt                                                              */
/* ------------------------------------------------------------------ */

typedef struct fmt_prog fmt_prog;

typedef struct fst {
    const char *p;
    va_list ap;
    ei_x_buff *x;
    fmt_prog *rec; /* compiling: placeholders are recorded, not formatted */
} fst;

/* fmt_one when compiling: this format is formatted each time instead */
#define NOCACHE 1

static int xcheck(int eirc)
{
    return eirc < 0 ? CA_ENOMEM : 0;
}

/* ei_x_append_buf, in line when the bytes fit (most of formatting's
 * writes are a few bytes into a buffer with room) */
static int xput(ei_x_buff *x, const void *p, size_t n)
{
    if ((size_t)(x->buffsz - x->index) >= n) {
        memcpy(x->buff + x->index, p, n);
        x->index += (int)n;
        return 0;
    }
    return xcheck(ei_x_append_buf(x, p, (int)n));
}

/* Integers as term_to_binary writes them (ei's long long encoder uses
 * bignums from 2^27 on): SMALL_INTEGER, INTEGER, or the shortest
 * SMALL_BIG. */
static int put_int(ei_x_buff *x, ival v)
{
    unsigned char b[11];
    int n;
    if (!v.neg && v.mag <= 255) {
        b[0] = ERL_SMALL_INTEGER_EXT, b[1] = (unsigned char)v.mag, n = 2;
    } else if (v.mag <= (uint64_t)INT32_MAX + v.neg) {
        uint32_t u = v.neg ? (uint32_t)(0 - v.mag) : (uint32_t)v.mag;
        b[0] = ERL_INTEGER_EXT, n = 5;
        ca__put32(b + 1, u);
    } else {
        b[0] = ERL_SMALL_BIG_EXT, b[2] = (unsigned char)v.neg, n = 3;
        for (uint64_t m = v.mag; m; m >>= 8)
            b[n++] = (unsigned char)m;
        b[1] = (unsigned char)(n - 3);
    }
    return xput(x, b, (size_t)n);
}

static ival ival_of(long long v)
{
    ival r = {v < 0, v < 0 ? 0 - (uint64_t)v : (uint64_t)v};
    return r;
}

/* name[0..len) is valid UTF-8 of at most 255 characters (checked by the
 * callers). Up to 255 bytes, written here as ei would write them
 * (SMALL_ATOM_UTF8_EXT): ei's encoder converts and checks again. */
static int put_atom(ei_x_buff *x, const char *name, size_t len)
{
    if (len > 255)
        return xcheck(ei_x_encode_atom_len_as(x, name, (int)len, ERLANG_UTF8, ERLANG_UTF8));
    char b[2 + 255];
    b[0] = (char)ERL_SMALL_ATOM_UTF8_EXT;
    b[1] = (char)len;
    memcpy(b + 2, name, len);
    return xput(x, b, len + 2);
}

/* Code points from a string literal (quote '"') or from a C string
 * (quote 0, UTF-8). */
typedef struct cpit {
    const char *p;
    int lit;
} cpit;

static int cp_next(cpit *it, uint32_t *cp)
{
    if (it->lit)
        return lex_char(&it->p, '"', cp);
    if (*it->p == '\0')
        return 0;
    int k = ca__utf8_dec((const unsigned char *)it->p, strnlen(it->p, 4), cp);
    if (k == 0)
        return CA_EINVAL;
    it->p += k;
    return 1;
}

/* An Erlang string as term_to_binary writes it: [] if empty, STRING_EXT
 * when every code point is a byte and it is short enough, else a list of
 * integers. Two passes over the source, none over a copy. */
static int put_string(ei_x_buff *x, cpit it)
{
    cpit first = it;
    uint32_t cp, max = 0;
    size_t n = 0;
    int r;
    while ((r = cp_next(&it, &cp)) == 1) {
        n++;
        if (cp > max)
            max = cp;
    }
    if (r < 0)
        return r;
    if (n == 0)
        return xcheck(ei_x_encode_empty_list(x));
    if (n > INT_MAX)
        return CA_ETOOBIG;
    it = first;
    if (max <= 255 && n <= 65535) {
        char hdr[3] = {ERL_STRING_EXT, (char)(n >> 8), (char)n};
        if (xput(x, hdr, 3) != 0)
            return CA_ENOMEM;
        while (cp_next(&it, &cp) == 1) {
            char byte = (char)cp;
            if (xput(x, &byte, 1) != 0)
                return CA_ENOMEM;
        }
        return 0;
    }
    if (ei_x_encode_list_header(x, (long)n) < 0)
        return CA_ENOMEM;
    while (cp_next(&it, &cp) == 1) {
        ival v = {0, cp};
        if (put_int(x, v) != 0)
            return CA_ENOMEM;
    }
    return xcheck(ei_x_encode_empty_list(x));
}

static int bin_append(void *ctx, const unsigned char *bytes, size_t n)
{
    return xput(ctx, bytes, n);
}

/* BINARY_EXT with the length patched in once the segments are out. */
static int fmt_bin(fst *s)
{
    char hdr[5] = {ERL_BINARY_EXT, 0, 0, 0, 0};
    int at = s->x->index;
    if (xput(s->x, hdr, 5) != 0)
        return CA_ENOMEM;
    s->p += 2;
    int err = bin_walk(&s->p, bin_append, s->x);
    if (err)
        return err;
    uint32_t n = (uint32_t)(s->x->index - at - 5);
    ca__put32((unsigned char *)s->x->buff + at + 1, n);
    return 0;
}

static int fmt_one(fst *s);

/* term_to_binary writes a proper list of small integers as STRING_EXT;
 * do the same when a list literal holds only integer literals 0..255.
 * p is after '['; n elements were counted. */
static int byte_list(const char *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        ival iv;
        double d;
        int is_float;
        ws(&p);
        if (!(is_digit(*p) || *p == '$') || lex_num(&p, &iv, &d, &is_float) != 0 || is_float ||
            iv.mag > 255)
            return 0;
        ws(&p);
        p++; /* ',' or ']' */
    }
    return 1;
}

static int fmt_bytes(fst *s, uint32_t n, const char *end)
{
    char hdr[3] = {ERL_STRING_EXT, (char)(n >> 8), (char)n};
    char bytes[256];
    int at = 0;
    if (xput(s->x, hdr, 3) != 0)
        return CA_ENOMEM;
    /* in chunks, through a small buffer: no allocation for a literal */
    const char *p = s->p;
    for (uint32_t done = 0; done < n; done += (uint32_t)at) {
        at = 0;
        for (; at < (int)sizeof(bytes) && done + (uint32_t)at < n; at++) {
            ival iv;
            double d;
            int f;
            ws(&p);
            lex_num(&p, &iv, &d, &f);
            bytes[at] = (char)iv.mag;
            ws(&p);
            p++;
        }
        if (xput(s->x, bytes, at) != 0)
            return CA_ENOMEM;
    }
    s->p = end;
    return 0;
}

/*
 * A tuple in one pass: its header written for the arity 0 and mended at
 * the end, elements formatted as they are read (a count first would lex
 * each nested tuple once per level around it).
 */
static int fmt_tuple(fst *s)
{
    int hdr = s->x->index, err;
    static const char small[2] = {ERL_SMALL_TUPLE_EXT, 0};
    if (xput(s->x, small, 2) != 0)
        return CA_ENOMEM;
    uint32_t n = 0;
    ws(&s->p);
    if (*s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        if ((err = fmt_one(s)) != 0)
            return err;
        n++;
        ws(&s->p);
        if (*s->p == '}')
            break;
        if (*s->p != ',')
            return CA_EBADPAT;
        s->p++;
    }
    s->p++;
    if (n < 256) {
        s->x->buff[hdr + 1] = (char)n;
        return 0;
    }
    if (s->rec)
        return NOCACHE; /* the move would shift what was recorded */
    /* LARGE_TUPLE_EXT: 3 more bytes of header */
    static const char pad[3] = {0};
    if (xput(s->x, pad, 3) != 0)
        return CA_ENOMEM;
    char *h = s->x->buff + hdr;
    memmove(h + 5, h + 2, (size_t)(s->x->index - hdr - 5));
    h[0] = (char)ERL_LARGE_TUPLE_EXT;
    ca__put32((unsigned char *)h + 1, n);
    return 0;
}

/* Elements of a list until `close` (tuples: fmt_tuple). The header is
 * written first, and a list of small integers may become a string, so
 * they are counted (and checked) before being encoded. */
static int fmt_seq(fst *s, char close, int list)
{
    uint32_t n;
    int tail, err;
    if (!list)
        return fmt_tuple(s);
    const char *q = s->p;
    if ((err = skip_seq(&q, close, list, MODE_FMT, 0, &n, &tail)) != 0)
        return err;
    if (list && n == 0)
        return s->p = q, xcheck(ei_x_encode_empty_list(s->x));
    if (list && !tail && n <= 65535 && byte_list(s->p, n))
        return fmt_bytes(s, n, q);
    err = list ? ei_x_encode_list_header(s->x, n) : ei_x_encode_tuple_header(s->x, n);
    if (err < 0)
        return CA_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        if ((err = fmt_one(s)) != 0)
            return err;
        ws(&s->p);
        s->p++; /* ',' or '|' or close, as skip_seq saw */
    }
    if (list && tail) {
        if ((err = fmt_one(s)) != 0)
            return err;
        ws(&s->p);
        s->p++;
    } else if (list) {
        return xcheck(ei_x_encode_empty_list(s->x));
    }
    return 0;
}

/* CA_EINVAL if key i (keys[2i]..keys[2i+1] in buf) is one of the keys
 * before it: Erlang refuses a map that has a key twice. Equal terms built
 * here are equal bytes; terms embedded with ~t are compared as given. */
static int key_again(const char *buf, const int *keys, uint32_t i)
{
    int len = keys[2 * i + 1] - keys[2 * i];
    for (uint32_t j = 0; j < i; j++)
        if (keys[2 * j + 1] - keys[2 * j] == len &&
            memcmp(buf + keys[2 * j], buf + keys[2 * i], (size_t)len) == 0)
            return CA_EINVAL;
    return 0;
}

static int fmt_map(fst *s)
{
    if (s->rec)
        return NOCACHE; /* keys given by placeholders are compared when formatted */
    uint32_t n;
    const char *q = s->p;
    int err = skip_map(&q, MODE_FMT, 0, &n);
    if (err)
        return err;
    if (ei_x_encode_map_header(s->x, n) < 0)
        return CA_ENOMEM;
    if (n == 0) {
        s->p = q;
        return 0;
    }
    /* where each key's bytes start and end, to refuse one given twice */
    int local[2 * 16], *keys = n <= 16 ? local : malloc(2 * n * sizeof *keys);
    if (!keys)
        return CA_ENOMEM;
    for (uint32_t i = 0; i < n && err == 0; i++) {
        keys[2 * i] = s->x->index;
        if ((err = fmt_one(s)) != 0)
            break;
        keys[2 * i + 1] = s->x->index;
        err = key_again(s->x->buff, keys, i);
        ws(&s->p);
        s->p += 2; /* => */
        if (err == 0 && (err = fmt_one(s)) == 0) {
            ws(&s->p);
            s->p++; /* ',' or '}' */
        }
    }
    if (keys != local)
        free(keys);
    return err;
}

static int fmt_embed(fst *s)
{
    const char *t = va_arg(s->ap, const char *);
    size_t len = va_arg(s->ap, size_t);
    int start;
    if (t == NULL || check_whole(t, len, &start) != 0)
        return CA_EINVAL;
    return xput(s->x, t + start, len - (size_t)start);
}

static int prog_record(fst *s);

static int fmt_ph(fst *s)
{
    if (s->rec)
        return prog_record(s);
    char c = s->p[1];
    s->p += 2;
    switch (c) {
    case 'a': {
        const char *a = va_arg(s->ap, const char *);
        if (a == NULL)
            return CA_EINVAL;
        size_t n = strlen(a);
        long chars = utf8_count(a, n);
        if (chars < 0 || chars > MAXATOMCHARS)
            return CA_EINVAL;
        return put_atom(s->x, a, n);
    }
    case 's': {
        const char *str = va_arg(s->ap, const char *);
        if (str == NULL)
            return CA_EINVAL;
        return put_string(s->x, (cpit){str, 0});
    }
    case 'i':
        return put_int(s->x, ival_of(va_arg(s->ap, long)));
    case 'u': {
        ival v = {0, va_arg(s->ap, unsigned long)};
        return put_int(s->x, v);
    }
    case 'l':
        return put_int(s->x, ival_of(va_arg(s->ap, long long)));
    case 'f': {
        double d = va_arg(s->ap, double);
        if (!isfinite(d))
            return CA_EINVAL; /* Erlang has no inf or nan */
        return xcheck(ei_x_encode_double(s->x, d));
    }
    case 'b': {
        const void *data = va_arg(s->ap, const void *);
        size_t len = va_arg(s->ap, size_t);
        if ((data == NULL && len > 0) || len > INT_MAX)
            return CA_EINVAL;
        return xcheck(ei_x_encode_binary(s->x, data ? data : "", (int)len));
    }
    case 'p':
        return ca_encode_pid(s->x, va_arg(s->ap, ca_pid));
    case 'r':
        return ca_encode_ref(s->x, va_arg(s->ap, const ca_ref *));
    case 't':
        return fmt_embed(s);
    default:
        return CA_EBADPAT;
    }
}

static int fmt_literal(fst *s)
{
    char c = *s->p;
    if (c == '-' || c == '$' || is_digit(c)) {
        ival iv;
        double d;
        int is_float;
        int err = lex_num(&s->p, &iv, &d, &is_float);
        if (err)
            return err;
        return is_float ? xcheck(ei_x_encode_double(s->x, d)) : put_int(s->x, iv);
    }
    char scratch[CA_MAXATOM];
    const char *name;
    size_t len;
    int err = lex_atom(&s->p, scratch, &name, &len);
    return err ? err : put_atom(s->x, name, len);
}

static int fmt_one(fst *s)
{
    ws(&s->p);
    const char *p = s->p;
    switch (*p) {
    case '{':
        s->p++;
        return fmt_seq(s, '}', 0);
    case '[':
        s->p++;
        return fmt_seq(s, ']', 1);
    case '#':
        if (p[1] != '{')
            return CA_EBADPAT;
        s->p += 2;
        return fmt_map(s);
    case '<':
        return p[1] == '<' ? fmt_bin(s) : CA_EBADPAT;
    case '"': {
        cpit it = {p + 1, 1};
        int err = put_string(s->x, it);
        if (err)
            return err;
        /* put_string ran the iterator on a copy; find the end */
        uint32_t cp;
        for (s->p = p + 1; lex_char(&s->p, '"', &cp) == 1;)
            ;
        return 0;
    }
    case '~':
        return fmt_ph(s);
    default:
        if (*p == '\'' || *p == '-' || *p == '$' || is_digit(*p) || atom_start(*p))
            return fmt_literal(s);
        return CA_EBADPAT;
    }
}

/*
 * Formats and patterns compiled once per thread, kept by content (one
 * rebuilt in the same buffer is compiled anew) in slots picked by
 * address. Only texts of up to 63 bytes are kept. The slot count is
 * prime so that string literals laid out next to each other (as an
 * actor's patterns are) land in different slots.
 */
#define PROG_SLOTS 31
#define PROG_TEXT  64

typedef struct prog_slot {
    char text[PROG_TEXT]; /* "" for a free slot */
    uint8_t nocache;      /* done the long way each time */
    uint8_t hits;         /* keeps a busy slot from being taken over */
} prog_slot;

enum { SLOT_HIT, SLOT_FILL, SLOT_SKIP };

static _Thread_local int progs_off;

void ca__term_compiled(int on)
{
    progs_off = !on;
}

/* SLOT_HIT: h holds text, compiled; SLOT_FILL: text copied into h, to be
 * compiled; SLOT_SKIP: do it the long way. */
static int slot_use(prog_slot *h, const char *text)
{
    if (progs_off)
        return SLOT_SKIP;
    if (h->text[0] && strcmp(h->text, text) == 0) {
        if (h->hits < UINT8_MAX)
            h->hits++;
        return h->nocache ? SLOT_SKIP : SLOT_HIT;
    }
    size_t n = strnlen(text, PROG_TEXT);
    if (n == PROG_TEXT || n == 0)
        return SLOT_SKIP;
    if (h->text[0] && h->hits) { /* another text's, in use: not yet */
        h->hits /= 2;
        return SLOT_SKIP;
    }
    memcpy(h->text, text, n + 1);
    h->hits = 0;
    return SLOT_FILL;
}

/*
 * A format is formatted in a dry run that writes its constant parts and
 * notes where each placeholder goes; later calls copy the constant bytes
 * and format only the placeholders, with the same code and checks as
 * ever. Formats whose constant parts do not fit PROG_BYTES, maps (whose
 * keys are compared once formatted) and tuples of 256 elements or more
 * are formatted each time.
 */
#define PROG_OPS   8
#define PROG_BYTES 128

struct fmt_prog {
    prog_slot h;
    uint8_t nops;
    uint8_t nbytes;        /* constant bytes in all */
    uint8_t end[PROG_OPS]; /* constant bytes before placeholder i end here */
    uint8_t at[PROG_OPS];  /* placeholder i is at h.text[at[i]] */
    unsigned char bytes[PROG_BYTES];
};

static _Thread_local fmt_prog progs[PROG_SLOTS];

static int prog_record(fst *s)
{
    fmt_prog *g = s->rec;
    char c = s->p[1];
    if (!is_ph_letter(c))
        return CA_EBADPAT;
    if (g->nops == PROG_OPS || s->x->index > PROG_BYTES)
        return NOCACHE;
    g->end[g->nops] = (uint8_t)s->x->index;
    g->at[g->nops++] = (uint8_t)(s->p - g->h.text);
    s->p += 2;
    return 0;
}

/* Compile g's format: 0, NOCACHE, or the format's error. */
static int prog_compile(fmt_prog *g)
{
    ei_x_buff x;
    if (ei_x_new(&x))
        return CA_ENOMEM;
    g->nops = 0;
    fst s = {.p = g->h.text, .x = &x, .rec = g};
    int err = fmt_one(&s);
    if (err == 0) {
        ws(&s.p);
        err = *s.p ? CA_EBADPAT : 0;
    }
    if (err == 0 && x.index > PROG_BYTES)
        err = NOCACHE;
    if (err == 0) {
        memcpy(g->bytes, x.buff, (size_t)x.index);
        g->nbytes = (uint8_t)x.index;
    }
    ei_x_free(&x);
    g->h.nocache = err != 0;
    return err;
}

/* The compiled form of fmt, or NULL: format it the long way. */
static fmt_prog *prog_for(const char *fmt)
{
    fmt_prog *g = &progs[(uintptr_t)fmt % PROG_SLOTS];
    switch (slot_use(&g->h, fmt)) {
    case SLOT_HIT:
        return g;
    case SLOT_FILL:
        return prog_compile(g) == 0 ? g : NULL;
    default:
        return NULL;
    }
}

static int prog_run(const fmt_prog *g, ei_x_buff *x, va_list ap)
{
    fst s = {.x = x};
    va_copy(s.ap, ap);
    int err = 0, from = 0;
    for (int i = 0; i < g->nops && err == 0; i++) {
        if (g->end[i] > from && xput(x, (const char *)g->bytes + from, g->end[i] - from) != 0)
            err = CA_ENOMEM;
        from = g->end[i];
        s.p = g->h.text + g->at[i];
        if (err == 0)
            err = fmt_ph(&s);
    }
    va_end(s.ap);
    if (err == 0 && g->nbytes > from &&
        xput(x, (const char *)g->bytes + from, g->nbytes - from) != 0)
        err = CA_ENOMEM;
    return err;
}

/* The long way: parse and format at once. */
static int vfmt(ei_x_buff *x, const char *fmt, va_list ap)
{
    fst s = {.p = fmt, .x = x};
    va_copy(s.ap, ap);
    int err = fmt_one(&s);
    va_end(s.ap);
    if (err)
        return err;
    ws(&s.p);
    return *s.p ? CA_EBADPAT : 0;
}

int ca_vfmt(ei_x_buff *x, const char *fmt, va_list ap)
{
    if (x == NULL || fmt == NULL)
        return CA_EINVAL;
    const fmt_prog *g = prog_for(fmt);
    return g ? prog_run(g, x, ap) : vfmt(x, fmt, ap);
}

int ca_fmt(ei_x_buff *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int err = ca_vfmt(x, fmt, ap);
    va_end(ap);
    return err;
}

/* ------------------------------------------------------------------ */
/* ca_match_term                                                       */
/* ------------------------------------------------------------------ */

/* The term being matched: at buf[idx], or, for an element of a
 * STRING_EXT (idx < 0), the small integer `v` that has no encoding of
 * its own. */
typedef struct tref {
    int idx;
    int v;
} tref;

typedef struct mst {
    const char *p;
    va_list ap;
    const char *buf;
    size_t len;
    int key; /* > 0 inside a map key: literals only */
} mst;

/* Encodings of 0..255 for ~t on STRING_EXT elements. */
static const char small_int_enc[256][2] = {
#define R4(i)                                                                                      \
    {97, (char)(i)}, {97, (char)((i) + 1)}, {97, (char)((i) + 2)},                                 \
    {                                                                                              \
        97, (char)((i) + 3)                                                                        \
    }
#define R16(i) R4(i), R4((i) + 4), R4((i) + 8), R4((i) + 12)
#define R64(i) R16(i), R16((i) + 16), R16((i) + 32), R16((i) + 48)
    R64(0), R64(64), R64(128), R64(192)
#undef R64
#undef R16
#undef R4
};

static unsigned char tag_at(const mst *m, const tref *t)
{
    return (unsigned char)m->buf[t->idx];
}

/* An integer term (any encoding); 1 if it does not fit 64 bits, -1 if
 * not an integer. Advances t. */
static int term_int(const mst *m, tref *t, ival *v)
{
    if (t->idx < 0) {
        v->neg = 0;
        v->mag = (uint64_t)t->v;
        return 0;
    }
    const unsigned char *b = (const unsigned char *)m->buf + t->idx;
    size_t n;
    const unsigned char *d;
    switch (b[0]) {
    case ERL_SMALL_INTEGER_EXT:
        v->neg = 0, v->mag = b[1];
        t->idx += 2;
        return 0;
    case ERL_INTEGER_EXT: {
        int32_t i = (int32_t)ca__get32(b + 1);
        v->neg = i < 0;
        v->mag = i < 0 ? (uint64_t)(-(int64_t)i) : (uint64_t)i;
        t->idx += 5;
        return 0;
    }
    case ERL_SMALL_BIG_EXT:
        n = b[1], d = b + 3, v->neg = b[2] != 0;
        t->idx += 3 + (int)n;
        break;
    case ERL_LARGE_BIG_EXT:
        n = ca__get32(b + 1), d = b + 6, v->neg = b[5] != 0;
        t->idx += 6 + (int)n;
        break;
    default:
        return -1;
    }
    v->mag = 0;
    for (size_t i = 0; i < n; i++) {
        if (i >= 8 && d[i] != 0)
            return 1;
        if (i < 8)
            v->mag |= (uint64_t)d[i] << (8 * i);
    }
    if (v->mag == 0)
        v->neg = 0;
    return 0;
}

/* An atom term's characters: UTF-8, or Latin-1 when *latin1. */
static int term_atom(const mst *m, tref *t, const unsigned char **s, size_t *n, int *latin1)
{
    if (t->idx < 0)
        return -1;
    const unsigned char *b = (const unsigned char *)m->buf + t->idx;
    switch (b[0]) {
    case ERL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
        *n = ca__get16(b + 1), *s = b + 3;
        break;
    case ERL_SMALL_ATOM_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT:
        *n = b[1], *s = b + 2;
        break;
    default:
        return -1;
    }
    *latin1 = b[0] == ERL_ATOM_EXT || b[0] == ERL_SMALL_ATOM_EXT;
    t->idx = (int)(*s + *n - (const unsigned char *)m->buf);
    return 0;
}

static int atom_eq(const unsigned char *s, size_t n, int latin1, const char *name, size_t len)
{
    if (!latin1)
        return n == len && memcmp(s, name, n) == 0;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char tmp[2];
        int k = utf8_enc(s[i], tmp);
        if (len - j < (size_t)k || memcmp(name + j, tmp, (size_t)k) != 0)
            return 0;
        j += (size_t)k;
    }
    return j == len;
}

/* A list in any encoding (NIL, STRING_EXT, LIST_EXT, or LIST_EXT whose
 * tail is another list), walked element by element. */
enum { L_STR, L_LIST, L_END, L_TAIL };
typedef struct lcur {
    int kind;
    int idx; /* next element; at L_END just past the list; at L_TAIL the tail */
    uint32_t left;
} lcur;

static void lcur_norm(const mst *m, lcur *c)
{
    while (c->left == 0) {
        if (c->kind == L_STR) {
            c->kind = L_END;
            return;
        }
        if (c->kind != L_LIST)
            return;
        const unsigned char *b = (const unsigned char *)m->buf + c->idx;
        if (b[0] == ERL_NIL_EXT) {
            c->kind = L_END, c->idx++;
        } else if (b[0] == ERL_STRING_EXT) {
            c->kind = L_STR, c->left = ca__get16(b + 1), c->idx += 3;
        } else if (b[0] == ERL_LIST_EXT) {
            c->left = ca__get32(b + 1), c->idx += 5;
        } else {
            c->kind = L_TAIL;
            return;
        }
    }
}

static int lcur_open(const mst *m, const tref *t, lcur *c)
{
    if (t->idx < 0)
        return CA_ENOMATCH;
    c->idx = t->idx;
    c->left = 0;
    switch (tag_at(m, t)) {
    case ERL_NIL_EXT:
    case ERL_STRING_EXT:
    case ERL_LIST_EXT:
        c->kind = L_LIST; /* let lcur_norm read the header */
        lcur_norm(m, c);
        return 0;
    default:
        return CA_ENOMATCH;
    }
}

/* The next element as a tref, or CA_ENOMATCH at the end. */
static int lcur_elem(const lcur *c, const mst *m, tref *t)
{
    if (c->kind == L_STR) {
        t->idx = -1;
        t->v = (unsigned char)m->buf[c->idx];
    } else if (c->kind == L_LIST) {
        t->idx = c->idx;
    } else {
        return CA_ENOMATCH;
    }
    return 0;
}

static void lcur_advance(lcur *c, const mst *m, const tref *t)
{
    c->idx = c->kind == L_STR ? c->idx + 1 : t->idx;
    c->left--;
    lcur_norm(m, c);
}

static void lcur_skip_all(const mst *m, lcur *c)
{
    while (c->kind != L_END) {
        if (c->kind == L_STR) {
            c->idx += (int)c->left;
        } else if (c->kind == L_LIST) {
            for (; c->left > 0; c->left--)
                c->idx = term_end(m->buf, m->len, c->idx);
        } else {
            c->idx = term_end(m->buf, m->len, c->idx);
            c->kind = L_END;
            return;
        }
        c->left = 0;
        lcur_norm(m, c);
    }
}

/* The next element as a code point (for strings). */
static int lcur_cp(const mst *m, lcur *c, int64_t *cp)
{
    tref t;
    ival v;
    if (lcur_elem(c, m, &t) != 0 || term_int(m, &t, &v) != 0 || v.mag > 0x10ffff)
        return CA_ENOMATCH;
    *cp = v.neg ? -(int64_t)v.mag : (int64_t)v.mag;
    lcur_advance(c, m, &t);
    return 0;
}

static int match_one(mst *m, tref *t);

/* "abc" against the rest of a list: the same code points, then the end. */
static int match_str_cur(mst *m, lcur *c)
{
    uint32_t cp;
    int r;
    m->p++;
    while ((r = lex_char(&m->p, '"', &cp)) == 1) {
        int64_t v;
        if (lcur_cp(m, c, &v) != 0 || v != cp)
            return CA_ENOMATCH;
    }
    if (r < 0)
        return r;
    return c->kind == L_END ? 0 : CA_ENOMATCH;
}

/* ~s: the rest of a list as UTF-8 into out[cap] (out may be NULL). */
static int cap_string(mst *m, lcur *c, char *out, size_t cap)
{
    size_t n = 0;
    while (c->kind == L_STR || c->kind == L_LIST) {
        int64_t v;
        char tmp[4];
        if (lcur_cp(m, c, &v) != 0 || !cp_valid(v))
            return CA_ENOMATCH;
        int k = utf8_enc((uint32_t)v, tmp);
        if (out) {
            if (cap - n <= (size_t)k || cap == 0)
                return CA_ENOMATCH;
            memcpy(out + n, tmp, (size_t)k);
        }
        n += (size_t)k;
    }
    if (c->kind != L_END)
        return CA_ENOMATCH;
    if (out) {
        if (cap == 0)
            return CA_ENOMATCH;
        out[n] = '\0';
    }
    return 0;
}

static int match_list_body(mst *m, lcur *c);

/* After '|': a pattern for the rest of the list. */
static int match_rest(mst *m, lcur *c)
{
    ws(&m->p);
    const char *p = m->p;
    if (p[0] == '~' && p[1] == 't')
        return CA_EBADPAT;
    if (c->kind == L_TAIL) {
        /* an improper tail is a real term */
        tref t = {c->idx, 0};
        int err = match_one(m, &t);
        c->idx = t.idx, c->kind = L_END;
        return err;
    }
    if (p[0] == '[') {
        m->p++;
        return match_list_body(m, c);
    }
    if (p[0] == '"')
        return match_str_cur(m, c);
    if (p[0] == '_') {
        while (ident_char(*m->p))
            m->p++;
        lcur_skip_all(m, c);
        return 0;
    }
    if (p[0] == '~' && p[1] == 's') {
        m->p += 2;
        char *out = va_arg(m->ap, char *);
        size_t cap = va_arg(m->ap, size_t);
        return cap_string(m, c, out, cap);
    }
    return CA_ENOMATCH;
}

/* p after '['. */
static int match_list_body(mst *m, lcur *c)
{
    ws(&m->p);
    if (*m->p == ']') {
        m->p++;
        return c->kind == L_END ? 0 : CA_ENOMATCH;
    }
    for (;;) {
        tref t;
        int err = lcur_elem(c, m, &t);
        if (err || (err = match_one(m, &t)) != 0)
            return err;
        lcur_advance(c, m, &t);
        ws(&m->p);
        switch (*m->p++) {
        case ',':
            continue;
        case ']':
            return c->kind == L_END ? 0 : CA_ENOMATCH;
        case '|':
            if ((err = match_rest(m, c)) != 0)
                return err;
            ws(&m->p);
            return *m->p++ == ']' ? 0 : CA_EBADPAT;
        default:
            return CA_EBADPAT;
        }
    }
}

static int match_list(mst *m, tref *t)
{
    lcur c;
    m->p++;
    int err = lcur_open(m, t, &c);
    if (err || (err = match_list_body(m, &c)) != 0)
        return err;
    t->idx = c.idx;
    return 0;
}

static int match_str(mst *m, tref *t)
{
    lcur c;
    int err = lcur_open(m, t, &c);
    if (err || (err = match_str_cur(m, &c)) != 0)
        return err;
    t->idx = c.idx;
    return 0;
}

static int match_tuple(mst *m, tref *t)
{
    int arity;
    m->p++;
    if (t->idx < 0 || ei_decode_tuple_header(m->buf, &t->idx, &arity) < 0)
        return CA_ENOMATCH;
    ws(&m->p);
    if (*m->p == '}') {
        m->p++;
        return arity == 0 ? 0 : CA_ENOMATCH;
    }
    for (int i = 1;; i++) {
        if (i > arity)
            return CA_ENOMATCH;
        int err = match_one(m, t);
        if (err)
            return err;
        ws(&m->p);
        if (*m->p == ',') {
            m->p++;
        } else if (*m->p == '}') {
            m->p++;
            return i == arity ? 0 : CA_ENOMATCH;
        } else {
            return CA_EBADPAT;
        }
    }
}

/* Subset match: each pattern key (a literal) is looked for among the
 * term's keys, in any order. */
static int match_map(mst *m, tref *t)
{
    int arity;
    m->p += 2;
    if (t->idx < 0 || ei_decode_map_header(m->buf, &t->idx, &arity) < 0)
        return CA_ENOMATCH;
    const int pairs = t->idx;
    size_t end;
    check_terms((const unsigned char *)m->buf, m->len, (size_t)pairs, 2 * (uint64_t)arity, &end, 0);
    ws(&m->p);
    while (*m->p != '}') {
        const char *kp = m->p;
        tref k = {pairs, 0};
        int err = CA_ENOMATCH;
        for (int j = 0; j < arity && err == CA_ENOMATCH; j++) {
            m->p = kp;
            int at = k.idx;
            m->key++;
            err = match_one(m, &k);
            m->key--;
            if (err == CA_ENOMATCH)
                k.idx = term_end(m->buf, m->len, term_end(m->buf, m->len, at));
        }
        if (err)
            return err;
        ws(&m->p);
        if (m->p[0] != '=' || m->p[1] != '>')
            return CA_EBADPAT;
        m->p += 2;
        if ((err = match_one(m, &k)) != 0)
            return err;
        ws(&m->p);
        if (*m->p == ',')
            m->p++;
        else if (*m->p != '}')
            return CA_EBADPAT;
        ws(&m->p);
    }
    m->p++;
    t->idx = (int)end;
    return 0;
}

typedef struct bincmp {
    const unsigned char *data;
    size_t len, pos;
} bincmp;

static int bin_compare(void *ctx, const unsigned char *bytes, size_t n)
{
    bincmp *bc = ctx;
    if (bc->len - bc->pos < n || memcmp(bc->data + bc->pos, bytes, n) != 0)
        return CA_ENOMATCH;
    bc->pos += n;
    return 0;
}

static int match_bin(mst *m, tref *t)
{
    m->p += 2;
    if (t->idx < 0 || tag_at(m, t) != ERL_BINARY_EXT)
        return CA_ENOMATCH;
    const unsigned char *b = (const unsigned char *)m->buf + t->idx;
    bincmp bc = {b + 5, ca__get32(b + 1), 0};
    int err = bin_walk(&m->p, bin_compare, &bc);
    if (err)
        return err;
    if (bc.pos != bc.len)
        return CA_ENOMATCH;
    t->idx += 5 + (int)bc.len;
    return 0;
}

static int int_is(const mst *m, tref *t, ival lit)
{
    ival v;
    if (term_int(m, t, &v) != 0)
        return CA_ENOMATCH;
    return v.neg == lit.neg && v.mag == lit.mag ? 0 : CA_ENOMATCH;
}

static int match_num(mst *m, tref *t)
{
    ival lit;
    double d, f;
    int is_float;
    int err = lex_num(&m->p, &lit, &d, &is_float);
    if (err)
        return err;
    if (is_float) {
        if (t->idx < 0 || decode_double(m->buf, &t->idx, &f) != 0)
            return CA_ENOMATCH;
        return f == d ? 0 : CA_ENOMATCH;
    }
    return int_is(m, t, lit);
}

static int atom_is(const mst *m, tref *t, const char *name, size_t len)
{
    const unsigned char *s;
    size_t n;
    int latin1;
    if (term_atom(m, t, &s, &n, &latin1) != 0 || !atom_eq(s, n, latin1, name, len))
        return CA_ENOMATCH;
    return 0;
}

static int match_atom(mst *m, tref *t)
{
    char scratch[CA_MAXATOM];
    const char *name;
    size_t len;
    int err = lex_atom(&m->p, scratch, &name, &len);
    return err ? err : atom_is(m, t, name, len);
}

static int ph_int(mst *m, tref *t, char c)
{
    void *out = va_arg(m->ap, void *);
    ival v;
    if (term_int(m, t, &v) != 0)
        return CA_ENOMATCH;
    if (c == 'u') {
        if (v.neg || v.mag > ULONG_MAX)
            return CA_ENOMATCH;
        if (out)
            *(unsigned long *)out = (unsigned long)v.mag;
        return 0;
    }
    /* long and long long: magnitude up to MAX, or MAX + 1 when negative */
    uint64_t max = c == 'i' ? (uint64_t)LONG_MAX : (uint64_t)LLONG_MAX;
    if (v.mag > max + (uint64_t)v.neg)
        return CA_ENOMATCH;
    long long ll = v.mag > (uint64_t)LLONG_MAX ? LLONG_MIN
                   : v.neg                     ? -(long long)v.mag
                                               : (long long)v.mag;
    if (out && c == 'i')
        *(long *)out = (long)ll;
    else if (out)
        *(long long *)out = ll;
    return 0;
}

static int ph_atom(mst *m, tref *t)
{
    char *out = va_arg(m->ap, char *);
    const unsigned char *s;
    size_t n;
    int latin1;
    if (term_atom(m, t, &s, &n, &latin1) != 0)
        return CA_ENOMATCH;
    if (out == NULL)
        return 0;
    if (!latin1) {
        memcpy(out, s, n); /* checked: at most CA_MAXATOM - 1 bytes */
        out[n] = '\0';
        return 0;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        j += (size_t)utf8_enc(s[i], out + j);
    out[j] = '\0';
    return 0;
}

static int ph_term(mst *m, tref *t)
{
    const char **start = va_arg(m->ap, const char **);
    size_t *len = va_arg(m->ap, size_t *);
    const char *at;
    size_t n;
    if (t->idx < 0) {
        at = small_int_enc[t->v], n = 2;
    } else {
        int end = term_end(m->buf, m->len, t->idx);
        at = m->buf + t->idx, n = (size_t)(end - t->idx);
        t->idx = end;
    }
    if (start)
        *start = at;
    if (len)
        *len = n;
    return 0;
}

/* The placeholder at m->p, known to be well-formed. */
static int ph_match(mst *m, tref *t)
{
    char c = m->p[1];
    m->p += 2;
    switch (c) {
    case 'a':
        return ph_atom(m, t);
    case 'i':
    case 'u':
    case 'l':
        return ph_int(m, t, c);
    case 't':
        return ph_term(m, t);
    case 's': {
        char *out = va_arg(m->ap, char *);
        size_t cap = va_arg(m->ap, size_t);
        lcur lc;
        int err = lcur_open(m, t, &lc);
        if (err || (err = cap_string(m, &lc, out, cap)) != 0)
            return err;
        t->idx = lc.idx;
        return 0;
    }
    default:
        break;
    }
    /* the rest need a real term */
    void *out = va_arg(m->ap, void *);
    if (t->idx < 0)
        return CA_ENOMATCH;
    unsigned char tag = tag_at(m, t);
    switch (c) {
    case 'f': {
        double d;
        if (decode_double(m->buf, &t->idx, &d) != 0)
            return CA_ENOMATCH;
        if (out)
            *(double *)out = d;
        return 0;
    }
    case 'b': {
        size_t *len = va_arg(m->ap, size_t *);
        if (tag != ERL_BINARY_EXT)
            return CA_ENOMATCH;
        const unsigned char *b = (const unsigned char *)m->buf + t->idx;
        if (out)
            *(const char **)out = (const char *)b + 5;
        if (len)
            *len = ca__get32(b + 1);
        t->idx += 5 + (int)ca__get32(b + 1);
        return 0;
    }
    case 'p': {
        ca_pid pid;
        if (tag != ERL_NEW_PID_EXT && tag != ERL_PID_EXT)
            return CA_ENOMATCH;
        int err = ca_decode_pid(m->buf, &t->idx, &pid);
        if (err)
            return err;
        if (out)
            *(ca_pid *)out = pid;
        return 0;
    }
    default: { /* 'r' */
        ca_ref ref;
        if (tag != ERL_NEWER_REFERENCE_EXT && tag != ERL_NEW_REFERENCE_EXT &&
            tag != ERL_REFERENCE_EXT)
            return CA_ENOMATCH;
        int err = ca_decode_ref(m->buf, &t->idx, &ref);
        if (err)
            return err;
        if (out)
            *(ca_ref *)out = ref;
        return 0;
    }
    }
}

static int match_ph(mst *m, tref *t)
{
    return m->key || !is_ph_letter(m->p[1]) ? CA_EBADPAT : ph_match(m, t);
}

static int match_one(mst *m, tref *t)
{
    ws(&m->p);
    const char *p = m->p;
    switch (*p) {
    case '~':
        return match_ph(m, t);
    case '_':
        if (m->key)
            return CA_EBADPAT;
        while (ident_char(*m->p))
            m->p++;
        if (t->idx >= 0)
            t->idx = term_end(m->buf, m->len, t->idx);
        return 0;
    case '{':
        return match_tuple(m, t);
    case '[':
        return match_list(m, t);
    case '"':
        return match_str(m, t);
    case '#':
        return p[1] == '{' ? match_map(m, t) : CA_EBADPAT;
    case '<':
        return p[1] == '<' ? match_bin(m, t) : CA_EBADPAT;
    default:
        if (*p == '-' || *p == '$' || is_digit(*p))
            return match_num(m, t);
        if (*p == '\'' || atom_start(*p))
            return match_atom(m, t);
        return CA_EBADPAT;
    }
}

/*
 * Patterns compiled once per thread (slots as for formats), into a list
 * of steps in the order of the term's encoding: a tuple's arity, an atom
 * or integer literal, a wildcard, a placeholder. Each step reads one
 * term, a tuple's only its header (its elements are the next steps), so
 * matching is a walk along the term with no lexing. Lists, strings,
 * maps, binaries and floats are matched by the interpreter from their
 * place in the pattern's text (a MOP_SUB step). Only well-formed
 * patterns are compiled, so a mismatch needs no check of the pattern.
 */
#define MPROG_OPS   16
#define MPROG_NAMES PROG_TEXT /* escapes only shorten a name */

enum { MOP_TUPLE, MOP_ATOM, MOP_INT, MOP_ANY, MOP_PH, MOP_LONG, MOP_SUB };

typedef struct mop {
    uint8_t kind;
    uint8_t n;   /* MOP_TUPLE: arity (< 32 in 63 bytes); MOP_ATOM: name length */
    uint8_t at;  /* MOP_ATOM: name in names; MOP_PH, MOP_SUB: in h.text */
    uint8_t neg; /* MOP_INT */
    uint64_t mag;
} mop;

typedef struct match_prog {
    prog_slot h;
    uint8_t nops;
    uint8_t nnames;
    mop ops[MPROG_OPS];
    char names[MPROG_NAMES];
} match_prog;

static _Thread_local match_prog mprogs[PROG_SLOTS];

static int mcomp_one(match_prog *g, const char **pp);

static int mcomp_tuple(match_prog *g, const char **pp, mop *o)
{
    const char *p = *pp + 1;
    unsigned n = 0;
    ws(&p);
    while (*p != '}') {
        int err = mcomp_one(g, &p);
        if (err)
            return err;
        n++;
        ws(&p);
        if (*p == ',')
            p++;
        else if (*p != '}')
            return CA_EBADPAT;
    }
    o->n = (uint8_t)n;
    *pp = p + 1;
    return 0;
}

static int mcomp_atom(match_prog *g, const char **pp, mop *o)
{
    char scratch[CA_MAXATOM];
    const char *name;
    size_t len;
    int err = lex_atom(pp, scratch, &name, &len);
    if (err)
        return err;
    if (len > (size_t)(MPROG_NAMES - g->nnames))
        return NOCACHE;
    memcpy(g->names + g->nnames, name, len);
    o->kind = MOP_ATOM;
    o->at = g->nnames;
    o->n = (uint8_t)len;
    g->nnames = (uint8_t)(g->nnames + len);
    return 0;
}

/* One term of the pattern at *pp: 0, NOCACHE, or the pattern's error. */
static int mcomp_one(match_prog *g, const char **pp)
{
    ws(pp);
    const char *p = *pp;
    if (g->nops == MPROG_OPS)
        return NOCACHE;
    mop *o = &g->ops[g->nops++];
    o->at = (uint8_t)(p - g->h.text);
    if (*p == '~') {
        o->kind = p[1] == 'i' ? MOP_LONG : MOP_PH;
        *pp = p + 2;
        return 0;
    }
    if (*p == '_') {
        o->kind = MOP_ANY;
        while (ident_char(*p))
            p++;
        *pp = p;
        return 0;
    }
    if (*p == '{') {
        o->kind = MOP_TUPLE;
        return mcomp_tuple(g, pp, o);
    }
    if (*p == '\'' || atom_start(*p))
        return mcomp_atom(g, pp, o);
    if (*p == '-' || *p == '$' || is_digit(*p)) {
        ival v;
        double d;
        int is_float;
        int err = lex_num(pp, &v, &d, &is_float);
        if (err)
            return err;
        if (!is_float) {
            o->kind = MOP_INT;
            o->neg = (uint8_t)v.neg;
            o->mag = v.mag;
            return 0;
        }
        *pp = p;
    }
    o->kind = MOP_SUB;
    return skip_one(pp, MODE_MATCH, 0);
}

/* The compiled form of pattern, or NULL: match it the long way. */
static const match_prog *mprog_for(const char *pattern)
{
    match_prog *g = &mprogs[(uintptr_t)pattern % PROG_SLOTS];
    switch (slot_use(&g->h, pattern)) {
    case SLOT_HIT:
        return g;
    case SLOT_FILL:
        break;
    default:
        return NULL;
    }
    const char *p = g->h.text;
    g->nops = g->nnames = 0;
    g->h.nocache = check_pattern(p, MODE_MATCH) != 0 || mcomp_one(g, &p) != 0;
    return g->h.nocache ? NULL : g;
}

static int tuple_head(const char *buf, tref *t, unsigned arity)
{
    const unsigned char *b = (const unsigned char *)buf + t->idx;
    if (b[0] == ERL_SMALL_TUPLE_EXT && b[1] == arity) {
        t->idx += 2;
        return 0;
    }
    if (b[0] == ERL_LARGE_TUPLE_EXT && ca__get32(b + 1) == arity) {
        t->idx += 5;
        return 0;
    }
    return CA_ENOMATCH;
}

/* atom_is, the encoding of ca_fmt and of the distribution read in line */
static int op_atom(const mst *m, tref *t, const char *name, uint8_t n)
{
    const unsigned char *b = (const unsigned char *)m->buf + t->idx;
    if (b[0] != ERL_SMALL_ATOM_UTF8_EXT || b[1] != n)
        return atom_is(m, t, name, n);
    t->idx += 2 + n;
    return memcmp(b + 2, name, n) == 0 ? 0 : CA_ENOMATCH;
}

/* ~i, with the encodings that always fit a long read in line */
static int op_long(mst *m, tref *t)
{
    const unsigned char *b = (const unsigned char *)m->buf + t->idx;
    long v;
    if (b[0] == ERL_SMALL_INTEGER_EXT) {
        v = b[1];
        t->idx += 2;
    } else if (b[0] == ERL_INTEGER_EXT) {
        v = (int32_t)ca__get32(b + 1);
        t->idx += 5;
    } else {
        return ph_int(m, t, 'i');
    }
    long *out = va_arg(m->ap, long *);
    if (out)
        *out = v;
    return 0;
}

static int mprog_run(const match_prog *g, mst *m, tref *t)
{
    int err = 0;
    for (const mop *o = g->ops; err == 0 && o < g->ops + g->nops; o++) {
        switch (o->kind) {
        case MOP_TUPLE:
            err = tuple_head(m->buf, t, o->n);
            break;
        case MOP_ATOM:
            err = op_atom(m, t, g->names + o->at, o->n);
            break;
        case MOP_INT:
            err = int_is(m, t, (ival){.neg = o->neg, .mag = o->mag});
            break;
        case MOP_ANY:
            t->idx = term_end(m->buf, m->len, t->idx);
            break;
        case MOP_PH:
            m->p = g->h.text + o->at;
            err = ph_match(m, t);
            break;
        case MOP_LONG:
            err = op_long(m, t);
            break;
        default:
            m->p = g->h.text + o->at;
            err = match_one(m, t);
            break;
        }
    }
    return err;
}

/*
 * Patterns found well-formed, per thread: after a mismatch (an actor
 * trying its patterns in turn) the whole pattern is checked, to tell a
 * bad pattern from a term that does not match, and that costs more than
 * the match. Kept by content, so a pattern rebuilt in the same buffer is
 * checked anew.
 */
#define GOOD_SLOTS 32
#define GOOD_LEN   64

typedef struct good_pattern {
    char text[GOOD_LEN];
} good_pattern;

static _Thread_local good_pattern good[GOOD_SLOTS];

static int pattern_ok(const char *pattern)
{
    good_pattern *g = &good[((uintptr_t)pattern >> 3) % GOOD_SLOTS];
    if (g->text[0] && strcmp(g->text, pattern) == 0)
        return 1;
    if (check_pattern(pattern, MODE_MATCH) != 0)
        return 0;
    size_t n = strlen(pattern);
    if (n > 0 && n < GOOD_LEN)
        memcpy(g->text, pattern, n + 1);
    return 1;
}

static int vmatch(const char *buf, size_t len, int start, const char *pattern, va_list ap)
{
    mst m = {.p = pattern, .buf = buf, .len = len};
    tref t = {start, 0};
    const match_prog *g = mprog_for(pattern);
    va_copy(m.ap, ap);
    int err = g ? mprog_run(g, &m, &t) : match_one(&m, &t);
    va_end(m.ap);
    if (g)
        return err;
    if (err == 0) {
        ws(&m.p);
        return *m.p ? CA_EBADPAT : 0;
    }
    /* A mismatch stops early; a bad pattern must say so whatever the term. */
    if (err == CA_ENOMATCH && !pattern_ok(pattern))
        return CA_EBADPAT;
    return err;
}

int ca_vmatch_term(const char *buf, size_t len, const char *pattern, va_list ap)
{
    int start;
    if (pattern == NULL)
        return CA_EINVAL;
    if (check_whole(buf, len, &start) != 0)
        return CA_EBADTERM;
    return vmatch(buf, len, start, pattern, ap);
}

int ca__vmatch_msg(const char *buf, size_t len, const char *pattern, va_list ap)
{
    if (pattern == NULL)
        return CA_EINVAL;
    return vmatch(buf, len, (unsigned char)buf[0] == VERSION_MAGIC, pattern, ap);
}

int ca_match_term(const char *buf, size_t len, const char *pattern, ...)
{
    va_list ap;
    va_start(ap, pattern);
    int err = ca_vmatch_term(buf, len, pattern, ap);
    va_end(ap);
    return err;
}

/* ------------------------------------------------------------------ */
/* ca_term_print                                                       */
/* ------------------------------------------------------------------ */

typedef struct pout {
    char *out;
    size_t cap;
    size_t n; /* would-be length; only the first cap-1 bytes are kept */
    const char *buf;
    size_t len;
} pout;

static void put(pout *o, const char *s, size_t n)
{
    if (o->n < o->cap - 1) {
        size_t k = o->cap - 1 - o->n < n ? o->cap - 1 - o->n : n;
        memcpy(o->out + o->n, s, k);
    }
    o->n += n;
}

static void puts_(pout *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putf(pout *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(pout *o, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Quote as Erlang would: escapes for the quote, backslash and controls;
 * Latin-1 input is turned into UTF-8. */
static void put_quoted(pout *o, const unsigned char *s, size_t n, int latin1, char q)
{
    put(o, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        char tmp[8];
        if (c == (unsigned char)q || c == '\\') {
            tmp[0] = '\\', tmp[1] = (char)c;
            put(o, tmp, 2);
        } else if (c == '\n') {
            put(o, "\\n", 2);
        } else if (c == '\t') {
            put(o, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            putf(o, "\\%o", c);
        } else if (c >= 0x80 && latin1) {
            put(o, tmp, (size_t)utf8_enc(c, tmp));
        } else {
            tmp[0] = (char)c;
            put(o, tmp, 1);
        }
    }
    put(o, &q, 1);
}

static int needs_quotes(const unsigned char *s, size_t n)
{
    static const char *const reserved[] = {
        "after", "and",   "andalso", "band",    "begin", "bnot", "bor",  "bsl", "bsr",   "bxor",
        "case",  "catch", "cond",    "div",     "end",   "fun",  "if",   "let", "maybe", "not",
        "of",    "or",    "orelse",  "receive", "rem",   "try",  "when", "xor", "else"};
    if (n == 0 || !(s[0] >= 'a' && s[0] <= 'z'))
        return 1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 0x80 || !ident_char(s[i]))
            return 1;
    }
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strlen(reserved[i]) == n && memcmp(reserved[i], s, n) == 0)
            return 1;
    }
    return 0;
}

static void print_atom(pout *o, const unsigned char *s, size_t n, int latin1)
{
    if (needs_quotes(s, n))
        put_quoted(o, s, n, latin1, '\'');
    else
        put(o, (const char *)s, n);
}

/* Shortest text that reads back as the same double, always with a dot
 * or exponent as Erlang floats have. */
static void print_float(pout *o, double d)
{
    char tmp[40];
    locale_t old = use_c_locale();
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    restore_locale(old);
    char *e = strchr(tmp, 'e');
    if (strchr(tmp, '.') == NULL) {
        char rest[40];
        snprintf(rest, sizeof(rest), "%s", e ? e : "");
        if (e)
            *e = '\0';
        strcat(tmp, ".0");
        strcat(tmp, rest);
    }
    puts_(o, tmp);
}

/* Big integers: repeated division by 10 on a copy of the digits. */
static void print_big(pout *o, const unsigned char *d, size_t n, int neg)
{
    unsigned char num[256];
    char dec[640];
    size_t k = sizeof(dec);
    if (n > sizeof(num)) {
        putf(o, "#Big<%zu bytes>", n);
        return;
    }
    memcpy(num, d, n);
    while (n > 0 && num[n - 1] == 0)
        n--;
    do {
        unsigned rem = 0;
        for (size_t i = n; i-- > 0;) {
            unsigned cur = rem << 8 | num[i];
            num[i] = (unsigned char)(cur / 10);
            rem = cur % 10;
        }
        dec[--k] = (char)('0' + rem);
        while (n > 0 && num[n - 1] == 0)
            n--;
    } while (n > 0);
    if (neg)
        dec[--k] = '-';
    put(o, dec + k, sizeof(dec) - k);
}

static int printable(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') || (s[i] >= 0x7f && s[i] < 0xa0))
            return 0;
    }
    return 1;
}

static void print_bytes(pout *o, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        putf(o, i ? ",%u" : "%u", s[i]);
}

static void print_term(pout *o, int *idx, int depth);

static void print_seq(pout *o, int *idx, uint32_t n, int depth)
{
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            put(o, ",", 1);
        print_term(o, idx, depth + 1);
    }
}

/* Node-bound things (pids, refs, ports, funs) in ei's #Name<...> style. */
static void print_node_thing(pout *o, int *idx, unsigned char tag)
{
    const char *b = o->buf;
    if (tag == ERL_NEW_PID_EXT || tag == ERL_PID_EXT) {
        erlang_pid p;
        ei_decode_pid(b, idx, &p);
        putf(o, "#Pid<");
        puts_(o, p.node);
        putf(o, ".%u.%u>", p.num, p.serial);
    } else if (tag == ERL_NEWER_REFERENCE_EXT || tag == ERL_NEW_REFERENCE_EXT ||
               tag == ERL_REFERENCE_EXT) {
        erlang_ref r;
        ei_decode_ref(b, idx, &r);
        putf(o, "#Ref<");
        puts_(o, r.node);
        for (int i = 0; i < r.len && i < 5; i++)
            putf(o, ".%u", r.n[i]);
        put(o, ">", 1);
    } else if (tag == ERL_PORT_EXT || tag == ERL_NEW_PORT_EXT || tag == ERL_V4_PORT_EXT) {
        erlang_port p;
        ei_decode_port(b, idx, &p);
        putf(o, "#Port<");
        puts_(o, p.node);
        putf(o, ".%llu>", (unsigned long long)p.id);
    } else {
        putf(o, "#Fun<>");
        *idx = term_end(b, o->len, *idx);
    }
}

static void print_term(pout *o, int *idx, int depth)
{
    const unsigned char *b = (const unsigned char *)o->buf + *idx;
    unsigned char tag = b[0];
    uint32_t n;
    if (depth > PRINT_DEPTH) {
        put(o, "...", 3);
        *idx = term_end(o->buf, o->len, *idx);
        return;
    }
    switch (tag) {
    case ERL_SMALL_INTEGER_EXT:
        putf(o, "%u", b[1]);
        *idx += 2;
        break;
    case ERL_INTEGER_EXT:
        putf(o, "%d", (int32_t)ca__get32(b + 1));
        *idx += 5;
        break;
    case ERL_SMALL_BIG_EXT:
        print_big(o, b + 3, b[1], b[2]);
        *idx += 3 + b[1];
        break;
    case ERL_LARGE_BIG_EXT:
        print_big(o, b + 6, ca__get32(b + 1), b[5]);
        *idx += 6 + (int)ca__get32(b + 1);
        break;
    case NEW_FLOAT_EXT:
    case ERL_FLOAT_EXT: {
        double d = 0;
        decode_double(o->buf, idx, &d);
        print_float(o, d);
        break;
    }
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT: {
        mst m = {.buf = o->buf, .len = o->len};
        tref t = {*idx, 0};
        const unsigned char *s;
        size_t len;
        int latin1;
        if (term_atom(&m, &t, &s, &len, &latin1) != 0)
            break; /* the tag said atom: cannot happen on checked input */
        print_atom(o, s, len, latin1);
        *idx = t.idx;
        break;
    }
    case ERL_NIL_EXT:
        put(o, "[]", 2);
        *idx += 1;
        break;
    case ERL_STRING_EXT:
        n = ca__get16(b + 1);
        if (printable(b + 3, n)) {
            put_quoted(o, b + 3, n, 1, '"');
        } else {
            put(o, "[", 1);
            print_bytes(o, b + 3, n);
            put(o, "]", 1);
        }
        *idx += 3 + (int)n;
        break;
    case ERL_LIST_EXT:
        put(o, "[", 1);
        *idx += 5;
        print_seq(o, idx, ca__get32(b + 1), depth);
        if ((unsigned char)o->buf[*idx] == ERL_NIL_EXT) {
            *idx += 1;
        } else {
            put(o, "|", 1);
            print_term(o, idx, depth + 1);
        }
        put(o, "]", 1);
        break;
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT:
        n = tag == ERL_SMALL_TUPLE_EXT ? b[1] : ca__get32(b + 1);
        *idx += tag == ERL_SMALL_TUPLE_EXT ? 2 : 5;
        put(o, "{", 1);
        print_seq(o, idx, n, depth);
        put(o, "}", 1);
        break;
    case ERL_MAP_EXT:
        n = ca__get32(b + 1);
        *idx += 5;
        put(o, "#{", 2);
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                put(o, ",", 1);
            print_term(o, idx, depth + 1);
            put(o, " => ", 4);
            print_term(o, idx, depth + 1);
        }
        put(o, "}", 1);
        break;
    case ERL_BINARY_EXT:
        n = ca__get32(b + 1);
        put(o, "<<", 2);
        if (n > 0 && printable(b + 5, n))
            put_quoted(o, b + 5, n, 1, '"');
        else
            print_bytes(o, b + 5, n);
        put(o, ">>", 2);
        *idx += 5 + (int)n;
        break;
    case ERL_BIT_BINARY_EXT:
        n = ca__get32(b + 1);
        put(o, "<<", 2);
        print_bytes(o, b + 6, n ? n - 1 : 0);
        if (n)
            putf(o, "%s%u:%u", n > 1 ? "," : "", b[6 + n - 1] >> (8 - b[5]), b[5]);
        put(o, ">>", 2);
        *idx += 6 + (int)n;
        break;
    default:
        print_node_thing(o, idx, tag);
        break;
    }
}

int ca_term_print(const char *buf, size_t len, char *out, size_t cap)
{
    int start;
    if (out == NULL || cap == 0)
        return CA_EINVAL;
    pout o = {out, cap, 0, buf, len};
    int err = check_whole(buf, len, &start);
    if (err)
        puts_(&o, "<malformed term>");
    else
        print_term(&o, &start, 0);
    if (o.n > cap - 1) {
        o.n = cap - 1;
        /* mark the cut; a tiny buffer just gets what fits of "..." */
        size_t dots = o.n < 3 ? o.n : 3;
        memcpy(out + o.n - dots, "...", dots);
    }
    out[o.n] = '\0';
    return err ? err : (int)o.n;
}
