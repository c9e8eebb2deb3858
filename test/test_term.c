/*
 * Terms: the node table, pid/ref conversion, ca_fmt, ca_match_term and
 * ca_term_print, checked against bytes produced by real Erlang (OTP 25).
 *
 * Fixtures come from term_to_binary in erl; the `_v2` ones and most
 * others use [{minor_version, 2}] (UTF-8 atoms), which is what ei writes,
 * so ca_fmt must produce them byte for byte.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "cactor.h"
#include "internal.h"
#include "probe.h"

/* {binary_to_term(NEW_PID_EXT foo@bar 42 3 7), binary_to_term(NEWER_REFERENCE_EXT
 * foo@bar creation 7 [1,2,3])}, default minor version: ATOM_EXT node names. */
static const unsigned char erl_pid_ref[] = {
    131, 104, 2, 88, 100, 0, 7, 102, 111, 111, 64,  98, 97, 114, 0,   0,   0,  42, 0,
    0,   0,   3, 0,  0,   0, 7, 90,  0,   3,   100, 0,  7,  102, 111, 111, 64, 98, 97,
    114, 0,   0, 0,  7,   0, 0, 0,   1,   0,   0,   0,  2,  0,   0,   0,   3};
/* make_ref() and self() in a nonode@nohost emulator. */
static const unsigned char erl_local_ref[] = {
    131, 90,  0, 3, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104, 111,
    115, 116, 0, 0, 0,   0, 0,  0,   181, 209, 106, 176, 0,   2,  59,  9,   167, 38};
static const unsigned char erl_self[] = {131, 88, 100, 0,   13,  110, 111, 110, 111, 100,
                                         101, 64, 110, 111, 104, 111, 115, 116, 0,   0,
                                         0,   9,  0,   0,   0,   0,   0,   0,   0,   0};
/* The same pid and ref with minor_version 2. */
static const unsigned char erl_pid_v2[] = {131, 88, 119, 7, 102, 111, 111, 64, 98, 97, 114, 0,
                                           0,   0,  42,  0, 0,   0,   3,   0,  0,  0,  7};
static const unsigned char erl_ref_v2[] = {131, 90, 0,   3, 119, 7, 102, 111, 111, 64,
                                           98,  97, 114, 0, 0,   0, 7,   0,   0,   0,
                                           1,   0,  0,   0, 2,   0, 0,   0,   3};
/* {ok, 42, -42, 300, -300, 1.5, "abc", <<"ab">>, [], [a,b|c], #{a => 1, b => [2]},
 *  'with space', 'héllo', 'EXIT'} */
static const unsigned char erl_mixed[] = {
    131, 104, 14,  119, 2,   111, 107, 97,  42,  98,  255, 255, 255, 214, 98,  0,   0,   1,
    44,  98,  255, 255, 254, 212, 70,  63,  248, 0,   0,   0,   0,   0,   0,   107, 0,   3,
    97,  98,  99,  109, 0,   0,   0,   2,   97,  98,  106, 108, 0,   0,   0,   2,   119, 1,
    97,  119, 1,   98,  119, 1,   99,  116, 0,   0,   0,   2,   119, 1,   97,  97,  1,   119,
    1,   98,  107, 0,   1,   2,   119, 10,  119, 105, 116, 104, 32,  115, 112, 97,  99,  101,
    119, 6,   104, 195, 169, 108, 108, 111, 119, 4,   69,  88,  73,  84};
/* [1 bsl 40, -(1 bsl 40), 2^63-1, -2^63, 2^64-1, -(2^64-1), 2^31-1, -2^31, 2^31] */
static const unsigned char erl_big[] = {
    131, 108, 0,   0,   0, 9, 110, 6,   0,   0,   0,   0,   0,   0,   1,   110, 6,   1,
    0,   0,   0,   0,   0, 1, 110, 8,   0,   255, 255, 255, 255, 255, 255, 255, 127, 110,
    8,   1,   0,   0,   0, 0, 0,   0,   0,   128, 110, 8,   0,   255, 255, 255, 255, 255,
    255, 255, 255, 110, 8, 1, 255, 255, 255, 255, 255, 255, 255, 255, 98,  127, 255, 255,
    255, 98,  128, 0,   0, 0, 110, 4,   0,   0,   0,   0,   128, 106};
/* {"héllo", [1000, 97], '日本', <<"é"/utf8>>, <<>>, ""} */
static const unsigned char erl_unicode[] = {
    131, 104, 6,   107, 0, 5,   104, 233, 108, 108, 111, 108, 0,   0,   0,
    2,   98,  0,   0,   3, 232, 97,  97,  106, 119, 6,   230, 151, 165, 230,
    156, 172, 109, 0,   0, 0,   2,   195, 169, 109, 0,   0,   0,   0,   106};
/* {a, {b, {c, []}}, [{x, 1}, {y, [2, 3]}], #{}} */
static const unsigned char erl_nested[] = {
    131, 104, 4, 119, 1,  97, 104, 2, 119, 1, 98,  104, 2, 119, 1, 99, 106, 108, 0, 0, 0, 2, 104,
    2,   119, 1, 120, 97, 1,  104, 2, 119, 1, 121, 107, 0, 2,   2, 3,  106, 116, 0, 0, 0, 0};
/* [0.1, -2.5e-10, 1.0e100] */
static const unsigned char erl_float[] = {131, 108, 0,   0,  0,   3,   70,  63,  185, 153, 153, 153,
                                          153, 153, 154, 70, 189, 241, 46,  11,  232, 38,  214, 149,
                                          70,  84,  178, 73, 173, 37,  148, 195, 125, 106};
/* {add, 1, 2} with default options: ATOM_EXT */
static const unsigned char erl_default_atoms[] = {131, 104, 3,  100, 0,  3, 97,
                                                  100, 100, 97, 1,   97, 2};

#define B(a) ((const char *)(a)), sizeof(a)

/* ---- helpers ---- */

/* ca_fmt into a fresh buffer with version byte; returns the result code. */
static int fmt(ei_x_buff *x, const char *f, ...)
{
    va_list ap;
    ei_x_new_with_version(x);
    va_start(ap, f);
    int rc = ca_vfmt(x, f, ap);
    va_end(ap);
    return rc;
}

static int same_bytes(const ei_x_buff *x, const unsigned char *want, size_t n)
{
    if ((size_t)x->index != n || memcmp(x->buff, want, n) != 0) {
        printf("\n  got  (%d):", x->index);
        for (int i = 0; i < x->index; i++)
            printf(" %d", (unsigned char)x->buff[i]);
        printf("\n  want (%zu):", n);
        for (size_t i = 0; i < n; i++)
            printf(" %d", want[i]);
        printf("\n");
        return 0;
    }
    return 1;
}

static void fmt_is(const char *want, size_t n, const char *f)
{
    ei_x_buff x;
    CU_ASSERT_EQUAL(fmt(&x, f), 0);
    CU_ASSERT(same_bytes(&x, (const unsigned char *)want, n));
    ei_x_free(&x);
}

static ca_pid foo_pid(void)
{
    ca_pid p = {0, 42, 3, 7};
    CU_ASSERT_FATAL(ca_node_intern("foo@bar", &p.node) == 0);
    return p;
}

/* ---- node table ---- */

static void test_node_intern(void)
{
    uint32_t a, b, c;
    CU_ASSERT_EQUAL(ca_node_intern("a@h", &a), 0);
    CU_ASSERT(a >= 1);
    CU_ASSERT_EQUAL(ca_node_intern("a@h", &b), 0);
    CU_ASSERT_EQUAL(a, b);
    CU_ASSERT_EQUAL(ca_node_intern("b@h", &c), 0);
    CU_ASSERT_NOT_EQUAL(a, c);
    CU_ASSERT_STRING_EQUAL(ca_node_name(a), "a@h");
    CU_ASSERT_STRING_EQUAL(ca_node_name(c), "b@h");
    CU_ASSERT_PTR_NULL(ca_node_name(0));
    CU_ASSERT_PTR_NULL(ca_node_name(UINT32_MAX));

    /* the table copies */
    char tmp[] = "copy@h";
    CU_ASSERT_EQUAL(ca_node_intern(tmp, &a), 0);
    tmp[0] = 'X';
    CU_ASSERT_STRING_EQUAL(ca_node_name(a), "copy@h");

    char big[1100];
    memset(big, 'n', sizeof(big));
    big[1020] = '\0';
    CU_ASSERT_EQUAL(ca_node_intern(big, &a), 0);
    CU_ASSERT_EQUAL(strlen(ca_node_name(a)), 1020);
    big[1020] = 'n';
    big[1021] = '\0';
    CU_ASSERT_EQUAL(ca_node_intern(big, &a), CA_EBADNAME);
    CU_ASSERT_EQUAL(ca_node_intern("", &a), CA_EBADNAME);
    CU_ASSERT_EQUAL(ca_node_intern("bad\xff@h", &a), CA_EBADNAME);
    CU_ASSERT_EQUAL(ca_node_intern("\xc0\xaf@h", &a), CA_EBADNAME);     /* overlong */
    CU_ASSERT_EQUAL(ca_node_intern("\xed\xa0\x80@h", &a), CA_EBADNAME); /* surrogate */
    CU_ASSERT_EQUAL(ca_node_intern("trunc\xe6\x97", &a), CA_EBADNAME);
    CU_ASSERT_EQUAL(ca_node_intern("日本@h", &a), 0);
    CU_ASSERT_STRING_EQUAL(ca_node_name(a), "日本@h");
    CU_ASSERT_EQUAL(ca_node_intern(NULL, &a), CA_EINVAL);
}

#define NTHREADS 8
#define NNAMES   3000

static uint32_t shared_idx[NTHREADS][NNAMES];
static int thread_errors[NTHREADS];

static void *intern_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char name[64];
    for (int i = 0; i < NNAMES; i++) {
        /* same names in every thread, in a thread-dependent order */
        int k = (i * 7 + id * 131) % NNAMES;
        snprintf(name, sizeof(name), "shared%d@host", k);
        uint32_t idx;
        if (ca_node_intern(name, &idx) != 0) {
            thread_errors[id]++;
            continue;
        }
        shared_idx[id][k] = idx;
        const char *back = ca_node_name(idx);
        if (back == NULL || strcmp(back, name) != 0)
            thread_errors[id]++;
        /* and names of its own */
        snprintf(name, sizeof(name), "own%d_%d@host", id, i);
        if (ca_node_intern(name, &idx) != 0 || ca_node_name(idx) == NULL ||
            strcmp(ca_node_name(idx), name) != 0)
            thread_errors[id]++;
    }
    return NULL;
}

static void test_node_threads(void)
{
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, intern_worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NTHREADS; i++)
        CU_ASSERT_EQUAL(thread_errors[i], 0);
    /* every thread got the same index for the same name */
    for (int k = 0; k < NNAMES; k++) {
        for (int i = 1; i < NTHREADS; i++)
            CU_ASSERT_EQUAL_FATAL(shared_idx[i][k], shared_idx[0][k]);
    }
    /* and the indices are distinct */
    for (int k = 1; k < NNAMES; k++)
        CU_ASSERT_NOT_EQUAL_FATAL(shared_idx[0][k], shared_idx[0][k - 1]);
    uint32_t again;
    CU_ASSERT_EQUAL(ca_node_intern("shared17@host", &again), 0);
    CU_ASSERT_EQUAL(again, shared_idx[0][17]);
}

static void test_pid_ref_eq(void)
{
    ca_pid a = foo_pid(), b = foo_pid();
    CU_ASSERT(ca_pid_eq(a, b));
    b.serial++;
    CU_ASSERT(!ca_pid_eq(a, b));
    CU_ASSERT(ca_pid_is_none(CA_PID_NONE));
    CU_ASSERT(!ca_pid_is_none(a));
    ca_ref r1 = {a.node, 7, 3, {1, 2, 3, 0, 0}}, r2 = r1;
    r2.n[4] = 99; /* beyond len: ignored */
    CU_ASSERT(ca_ref_eq(&r1, &r2));
    r2.n[2] = 4;
    CU_ASSERT(!ca_ref_eq(&r1, &r2));
}

/* ---- pids and refs from and to Erlang ---- */

static void test_decode_erlang_pid_ref(void)
{
    ca_pid p;
    ca_ref r;
    CU_ASSERT_EQUAL_FATAL(ca_match_term(B(erl_pid_ref), "{~p, ~r}", &p, &r), 0);
    CU_ASSERT_STRING_EQUAL(ca_node_name(p.node), "foo@bar");
    CU_ASSERT_EQUAL(p.num, 42);
    CU_ASSERT_EQUAL(p.serial, 3);
    CU_ASSERT_EQUAL(p.creation, 7);
    CU_ASSERT(ca_pid_eq(p, foo_pid()));
    CU_ASSERT_STRING_EQUAL(ca_node_name(r.node), "foo@bar");
    CU_ASSERT_EQUAL(r.creation, 7);
    CU_ASSERT_EQUAL(r.len, 3);
    CU_ASSERT(r.n[0] == 1 && r.n[1] == 2 && r.n[2] == 3);

    CU_ASSERT_EQUAL(ca_match_term(B(erl_local_ref), "~r", &r), 0);
    CU_ASSERT_STRING_EQUAL(ca_node_name(r.node), "nonode@nohost");
    CU_ASSERT_EQUAL(r.len, 3);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_self), "~p", &p), 0);
    CU_ASSERT_STRING_EQUAL(ca_node_name(p.node), "nonode@nohost");
    CU_ASSERT_EQUAL(p.num, 9);

    /* the direct decoders advance the index as ei does */
    int idx = 1, arity;
    CU_ASSERT_EQUAL(ei_decode_tuple_header((const char *)erl_pid_ref, &idx, &arity), 0);
    CU_ASSERT_EQUAL(ca_decode_pid((const char *)erl_pid_ref, &idx, &p), 0);
    CU_ASSERT_EQUAL(ca_decode_ref((const char *)erl_pid_ref, &idx, &r), 0);
    CU_ASSERT_EQUAL(idx, (int)sizeof(erl_pid_ref));
    idx = 1;
    CU_ASSERT_EQUAL(ca_decode_pid((const char *)erl_default_atoms, &idx, &p), CA_EBADTERM);
    CU_ASSERT_EQUAL(idx, 1);
}

/* ca_decode_pid and ca_decode_ref read ASCII node names in place; every
 * encoding of the node atom, both pid and reference forms, edge values
 * and 1..5 words must come out as through ei (ei 5.3 keeps num, serial
 * and words whole, and masks the old forms' creation to 2 bits). */
static size_t put_node_atom(unsigned char *b, int enc, const char *name)
{
    size_t n = strlen(name), h;
    static const unsigned char tags[] = {ERL_SMALL_ATOM_UTF8_EXT, ERL_ATOM_UTF8_EXT, ERL_ATOM_EXT,
                                         ERL_SMALL_ATOM_EXT};
    b[0] = tags[enc];
    if (tags[enc] == ERL_SMALL_ATOM_UTF8_EXT || tags[enc] == ERL_SMALL_ATOM_EXT) {
        b[1] = (unsigned char)n;
        h = 2;
    } else {
        b[1] = 0;
        b[2] = (unsigned char)n;
        h = 3;
    }
    memcpy(b + h, name, n);
    return h + n;
}

/* forms: NEW_PID_EXT, PID_EXT, NEWER_REFERENCE_EXT, NEW_REFERENCE_EXT */
static size_t pid_ref_case(unsigned char *b, int form, int enc, const char *name,
                           unsigned char fill, int words)
{
    static const unsigned char tag[] = {ERL_NEW_PID_EXT, ERL_PID_EXT, ERL_NEWER_REFERENCE_EXT,
                                        ERL_NEW_REFERENCE_EXT};
    static const size_t fixed[] = {12, 9, 4, 1}; /* besides the words */
    size_t i = 0;
    b[i++] = tag[form];
    if (form >= 2) {
        b[i++] = 0;
        b[i++] = (unsigned char)words;
    }
    i += put_node_atom(b + i, enc, name);
    size_t nums = fixed[form] + (form >= 2 ? 4 * (size_t)words : 0);
    for (size_t k = 0; k < nums; k++)
        b[i++] = (unsigned char)(fill + k);
    return i;
}

static void compare_with_ei(const unsigned char *b, size_t len, int form)
{
    int ci = 0, ei = 0;
    uint32_t node;
    if (form < 2) {
        ca_pid p;
        erlang_pid e;
        CU_ASSERT_EQUAL_FATAL(ca_decode_pid((const char *)b, &ci, &p), 0);
        CU_ASSERT_EQUAL_FATAL(ei_decode_pid((const char *)b, &ei, &e), 0);
        CU_ASSERT_EQUAL(ca_node_intern(e.node, &node), 0);
        CU_ASSERT(p.node == node && p.num == e.num && p.serial == e.serial &&
                  p.creation == e.creation);
    } else {
        ca_ref r;
        erlang_ref e;
        CU_ASSERT_EQUAL_FATAL(ca_decode_ref((const char *)b, &ci, &r), 0);
        CU_ASSERT_EQUAL_FATAL(ei_decode_ref((const char *)b, &ei, &e), 0);
        CU_ASSERT_EQUAL(ca_node_intern(e.node, &node), 0);
        CU_ASSERT(r.node == node && r.creation == e.creation && (int)r.len == e.len);
        for (int k = 0; k < 5; k++)
            CU_ASSERT_EQUAL(r.n[k], k < e.len ? e.n[k] : 0);
    }
    CU_ASSERT_EQUAL(ci, ei);
    CU_ASSERT_EQUAL(ci, (int)len);
}

static void test_decode_pid_ref_as_ei(void)
{
    /* ASCII (read in place) and Latin-1 \xe9 (through ei) names */
    const char *names[] = {"a@b", "node_1@host.example.com", "n\xe9@h"};
    const unsigned char fill[] = {0x00, 0xff, 0x5a};
    unsigned char b[128];
    for (int ni = 0; ni < 3; ni++)
        for (int enc = ni == 2 ? 2 : 0; enc < 4; enc++) /* \xe9 alone is no UTF-8 */
            for (int f = 0; f < 3; f++)
                for (int form = 0; form < 4; form++)
                    for (int words = 1; words <= (form < 2 ? 1 : 5); words++)
                        compare_with_ei(b, pid_ref_case(b, form, enc, names[ni], fill[f], words),
                                        form);
    /* no words, or six: refused, the index unmoved */
    unsigned char bad[64] = {ERL_NEWER_REFERENCE_EXT, 0, 0};
    size_t i = 3 + put_node_atom(bad + 3, 0, "a@b");
    memset(bad + i, 1, 28);
    ca_ref r;
    int idx = 0;
    CU_ASSERT_EQUAL(ca_decode_ref((char *)bad, &idx, &r), CA_EBADTERM);
    bad[2] = 6;
    CU_ASSERT_EQUAL(ca_decode_ref((char *)bad, &idx, &r), CA_EBADTERM);
    CU_ASSERT_EQUAL(idx, 0);
}

static void test_encode_pid_ref(void)
{
    ei_x_buff x;
    ca_pid p = foo_pid();
    ca_ref r = {p.node, 7, 3, {1, 2, 3, 0, 0}};
    CU_ASSERT_EQUAL(fmt(&x, "~p", p), 0);
    CU_ASSERT(same_bytes(&x, erl_pid_v2, sizeof(erl_pid_v2)));
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "~r", &r), 0);
    CU_ASSERT(same_bytes(&x, erl_ref_v2, sizeof(erl_ref_v2)));
    ei_x_free(&x);

    ei_x_new(&x);
    CU_ASSERT_EQUAL(ca_encode_pid(&x, CA_PID_NONE), CA_EINVAL);
    ca_pid unknown = {UINT32_MAX - 1, 1, 2, 3};
    CU_ASSERT_EQUAL(ca_encode_pid(&x, unknown), CA_EINVAL);
    r.len = 0;
    CU_ASSERT_EQUAL(ca_encode_ref(&x, &r), CA_EINVAL);
    r.len = 6;
    CU_ASSERT_EQUAL(ca_encode_ref(&x, &r), CA_EINVAL);
    r.len = 5;
    CU_ASSERT_EQUAL(ca_encode_ref(&x, &r), 0);
    ca_ref back;
    int idx = 0;
    CU_ASSERT_EQUAL(ca_decode_ref(x.buff, &idx, &back), 0);
    CU_ASSERT(ca_ref_eq(&r, &back));
    ei_x_free(&x);
}

/* ---- ca_fmt against term_to_binary ---- */

static void test_fmt_literals(void)
{
    fmt_is(B(erl_mixed), "{ok, 42, -42, 300, -300, 1.5, \"abc\", <<\"ab\">>, [], [a, b | c],"
                         " #{a => 1, b => [2]}, 'with space', 'héllo', 'EXIT'}");
    fmt_is(B(erl_big), "[1099511627776, -1099511627776, 9223372036854775807,"
                       " -9223372036854775808, 18446744073709551615, -18446744073709551615,"
                       " 2147483647, -2147483648, 2147483648]");
    fmt_is(B(erl_unicode), "{\"héllo\", \"\\x{3e8}a\", '日本', <<\"é\"/utf8>>, <<>>, \"\"}");
    fmt_is(B(erl_nested), "{a,{b,{c,[]}},[{x,1},{y,[2,3]}],#{}}");
    fmt_is(B(erl_nested), " { a , { b , { c , [ ] } } ,\n\t[ {x, 1} , {y, [ 2 , 3 ] } ] , #{ } } ");
    fmt_is(B(erl_float), "[0.1, -2.5e-10, 1.0e100]");

    /* the same through placeholders */
    ei_x_buff x;
    CU_ASSERT_EQUAL(fmt(&x, "[~l, ~i, ~l, ~l, ~u, -18446744073709551615, ~i, ~i, ~l]", 1LL << 40,
                        -(1L << 40), LLONG_MAX, LLONG_MIN, ULONG_MAX, 2147483647L, -2147483648L,
                        2147483648LL),
                    0);
    CU_ASSERT(same_bytes(&x, erl_big, sizeof(erl_big)));
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "{~s, ~s, ~a, ~b, ~b, ~s}", "héllo", "Ϩa", "日本", "é", (size_t)2, NULL,
                        (size_t)0, ""),
                    0);
    CU_ASSERT(same_bytes(&x, erl_unicode, sizeof(erl_unicode)));
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "[~f, ~f, ~f]", 0.1, -2.5e-10, 1.0e100), 0);
    CU_ASSERT(same_bytes(&x, erl_float, sizeof(erl_float)));
    ei_x_free(&x);
    /* ~t embeds a term from Erlang, version byte skipped */
    CU_ASSERT_EQUAL(
        fmt(&x, "{~t, ~t}", erl_pid_v2, sizeof(erl_pid_v2), erl_ref_v2 + 1, sizeof(erl_ref_v2) - 1),
        0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "{~p, ~r}", NULL, NULL), 0);
    CU_ASSERT_EQUAL(x.index, 3 + (int)sizeof(erl_pid_v2) - 1 + (int)sizeof(erl_ref_v2) - 1);
    ei_x_free(&x);
}

static void test_fmt_literal_forms(void)
{
    static const unsigned char chars[] = {131, 107, 0, 3, 97, 10, 255};
    fmt_is(B(chars), "[$a, $\\n, 16#ff]");
    static const unsigned char esc[] = {131, 107, 0, 4, 39, 34, 92, 9};
    fmt_is(B(esc), "\"'\\\"\\\\\\t\"");
    static const unsigned char qatom[] = {131, 119, 3, 97, 39, 98};
    fmt_is(B(qatom), "'a\\'b'");
    static const unsigned char bin[] = {131, 109, 0, 0, 0, 4, 1, 120, 121, 255};
    fmt_is(B(bin), "<<1, \"xy\", 255>>");
    static const unsigned char bigneg[] = {131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128};
    fmt_is(B(bigneg), "-9223372036854775808");
    /* a list whose tail is given */
    static const unsigned char tail[] = {131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 2, 2, 3};
    fmt_is(B(tail), "[1 | [2, 3]]");

    /* atoms at the limits, byte for byte as ei encodes them: 255 ASCII
     * characters (the short form), 100 three-byte ones (300 bytes, the
     * long form); one more character is refused */
    char a255[256], euro[301], pat[300];
    memset(a255, 'a', 255);
    a255[255] = 0;
    for (int i = 0; i < 100; i++)
        memcpy(euro + 3 * i, "\xe2\x82\xac", 3);
    euro[300] = 0;
    const char *atoms[] = {a255, euro};
    for (int i = 0; i < 2; i++) {
        ei_x_buff x, e;
        ei_x_new_with_version(&e);
        ei_x_encode_atom_len_as(&e, atoms[i], (int)strlen(atoms[i]), ERLANG_UTF8, ERLANG_UTF8);
        CU_ASSERT_EQUAL(fmt(&x, "~a", atoms[i]), 0);
        CU_ASSERT(same_bytes(&x, (const unsigned char *)e.buff, (size_t)e.index));
        ei_x_free(&x);
        snprintf(pat, sizeof pat, "%s", atoms[i]);
        if (i == 0) { /* the same, unquoted in the pattern */
            CU_ASSERT_EQUAL(fmt(&x, pat), 0);
            CU_ASSERT(same_bytes(&x, (const unsigned char *)e.buff, (size_t)e.index));
            ei_x_free(&x);
        }
        ei_x_free(&e);
    }
    char a256[258];
    memset(a256, 'a', 256);
    a256[256] = 0;
    ei_x_buff x;
    CU_ASSERT_EQUAL(fmt(&x, "~a", a256), CA_EINVAL);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, a256), CA_EBADPAT);
    ei_x_free(&x);

    /* tuples around the small form's limit of 255 elements, nested */
    static const int arities[] = {0, 1, 255, 256, 300};
    for (size_t i = 0; i < sizeof arities / sizeof arities[0]; i++) {
        int n = arities[i];
        char *p = malloc(8 * (size_t)n + 16), *w = p;
        ei_x_buff e;
        ei_x_new_with_version(&e);
        ei_x_encode_tuple_header(&e, 2);
        ei_x_encode_tuple_header(&e, n);
        w += sprintf(w, "{{");
        for (int k = 0; k < n; k++) {
            ei_x_encode_long(&e, k);
            w += sprintf(w, k ? ", %d" : "%d", k);
        }
        ei_x_encode_atom(&e, "end");
        sprintf(w, "}, end}");
        CU_ASSERT_EQUAL(fmt(&x, p), 0);
        CU_ASSERT(same_bytes(&x, (const unsigned char *)e.buff, (size_t)e.index));
        ei_x_free(&x);
        ei_x_free(&e);
        free(p);
    }
}

static void test_fmt_errors(void)
{
    ei_x_buff x;
    const char *bad[] = {"",          "{a",        "{a,}",    "{a b}",     "[a |]",
                         "[| a]",     "#{a}",      "#{a =>}", "<<256>>",   "<<-1>>",
                         "<<a>>",     "'abc",      "\"abc",   "Var",       "_",
                         "~q",        "~",         "1.",      "1.5e",      "12abc",
                         "{a} junk",  "{a}}",      "#a",      "<a",        "99999999999999999999",
                         "36#",       "37#1",      "\"\\x\"", "<<\"Ϩ\">>", "'\xff'",
                         "16#fg",     "{a, {b,}}", "{,}",     "{a,,b}",    "{{a}",
                         "{a, {b c}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = fmt(&x, bad[i]);
        if (rc != CA_EBADPAT)
            printf("\n  format %s gave %d\n", bad[i], rc);
        CU_ASSERT_EQUAL(rc, CA_EBADPAT);
        ei_x_free(&x);
    }
    char longatom[300];
    memset(longatom, 'a', 256);
    longatom[256] = '\0';
    CU_ASSERT_EQUAL(fmt(&x, "~a", longatom), CA_EINVAL);
    ei_x_free(&x);
    longatom[255] = '\0';
    CU_ASSERT_EQUAL(fmt(&x, "~a", longatom), 0);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "~a", (const char *)NULL), CA_EINVAL);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "~a", "bad\xff"), CA_EINVAL);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "~s", (const char *)NULL), CA_EINVAL);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "~s", "bad\xc3"), CA_EINVAL);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "~f", 1.0 / 0.0), CA_EINVAL);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "~t", "\x83\x68", (size_t)2), CA_EINVAL);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(ca_fmt(NULL, "ok"), CA_EINVAL);
    /* a map with a key twice, which Erlang would refuse to decode */
    CU_ASSERT_EQUAL(fmt(&x, "#{a => 1, a => 2}"), CA_EINVAL);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "#{~a => 1, b => 2}", "b"), CA_EINVAL);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "#{k => #{\"s\" => 1, [115] => 2}}"), CA_EINVAL);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "#{a => 1, b => 1, 1 => a, 1.0 => a}"), 0);
    ei_x_free(&x);
}

/* ---- placeholders: format, then match back ---- */

/* ---- formats compiled once per thread ---- */

/* {ping, N, [A, S], <<B>>, T} as ei writes it */
static void ping_by_ei(ei_x_buff *e, long n, const char *a, const char *str, const char *b,
                       const char *t, size_t tl)
{
    ei_x_new_with_version(e);
    ei_x_encode_tuple_header(e, 5);
    ei_x_encode_atom_len_as(e, "ping", 4, ERLANG_UTF8, ERLANG_UTF8);
    ei_x_encode_long(e, n);
    ei_x_encode_list_header(e, 2);
    ei_x_encode_atom_len_as(e, a, (int)strlen(a), ERLANG_UTF8, ERLANG_UTF8);
    ei_x_encode_string(e, str);
    ei_x_encode_empty_list(e);
    ei_x_encode_binary(e, b, (long)strlen(b));
    ei_x_append_buf(e, t, (int)tl);
}

static void test_compiled_formats(void)
{
    static const char t1[] = {97, 7}, t2[] = {104, 0};
    ei_x_buff x, e;
    /* the same format many times, its arguments changing, each result
     * byte for byte as ei writes it; an argument refused in between */
    for (long i = 0; i < 50; i++) {
        const char *a = i % 2 ? "x" : "yy", *str = i % 3 ? "s" : "", *b = i % 5 ? "bin" : "";
        const char *t = i % 2 ? t1 : t2;
        CU_ASSERT_EQUAL(fmt(&x, "{ping, ~i, [~a, ~s], ~b, ~t}", i * 1000003, a, str, b, strlen(b),
                            t, (size_t)2),
                        0);
        ping_by_ei(&e, i * 1000003, a, str, b, t, 2);
        CU_ASSERT(same_bytes(&x, (const unsigned char *)e.buff, (size_t)e.index));
        ei_x_free(&x);
        ei_x_free(&e);
        if (i == 20) {
            CU_ASSERT_EQUAL(fmt(&x, "{ping, ~i, [~a, ~s], ~b, ~t}", 1L, (const char *)NULL, "s",
                                "b", (size_t)1, t1, (size_t)2),
                            CA_EINVAL);
            ei_x_free(&x);
        }
    }
    /* a format rebuilt in the same buffer is a new format, good or bad */
    char buf[64];
    const char *forms[] = {"{a, ~i}", "{b, ~i, ~i}", "{a, ~q}", "[~i | ~i]", "{a, ~i}"};
    const char *want[] = {"{a,1}", "{b,1,2}", NULL, "[1|2]", "{a,1}"};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5; i++) {
            snprintf(buf, sizeof buf, "%s", forms[i]);
            int rc = fmt(&x, buf, 1L, 2L);
            char out[64];
            if (want[i]) {
                CU_ASSERT_EQUAL(rc, 0);
                ca_term_print(x.buff, (size_t)x.index, out, sizeof out);
                CU_ASSERT_STRING_EQUAL(out, want[i]);
            } else {
                CU_ASSERT_EQUAL(rc, CA_EBADPAT);
            }
            ei_x_free(&x);
        }
    }
    /* many formats at once (more than are kept), each right every time */
    char many[40][32];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 40; i++) {
            snprintf(many[i], sizeof many[i], "{f%d, ~i, ~a}", i);
            CU_ASSERT_EQUAL(fmt(&x, many[i], (long)(i * round), "z"), 0);
            char out[64], exp[64];
            ca_term_print(x.buff, (size_t)x.index, out, sizeof out);
            snprintf(exp, sizeof exp, "{f%d,%d,z}", i, i * round);
            CU_ASSERT_STRING_EQUAL(out, exp);
            ei_x_free(&x);
        }
    /* what is formatted the long way each time: more placeholders than
     * are kept, long constant parts, maps, large tuples */
    for (int round = 0; round < 2; round++) {
        char out[512];
        CU_ASSERT_EQUAL(
            fmt(&x, "[~i,~i,~i,~i,~i,~i,~i,~i,~i,~i]", 1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 9L, 300L),
            0);
        ca_term_print(x.buff, (size_t)x.index, out, sizeof out);
        CU_ASSERT_STRING_EQUAL(out, "[1,2,3,4,5,6,7,8,9,300]");
        ei_x_free(&x);
        CU_ASSERT_EQUAL(fmt(&x, "#{~a => 1, k => ~i}", "a", 2L), 0);
        ca_term_print(x.buff, (size_t)x.index, out, sizeof out);
        CU_ASSERT_STRING_EQUAL(out, "#{a => 1,k => 2}");
        ei_x_free(&x);
        CU_ASSERT_EQUAL(fmt(&x, "#{~a => 1, k => ~i}", "k", 2L), CA_EINVAL);
        ei_x_free(&x);
        CU_ASSERT_EQUAL(fmt(&x, "{\"0123456789012345678901234567890123456789\", ~i}", 5L), 0);
        ca_term_print(x.buff, (size_t)x.index, out, sizeof out);
        CU_ASSERT_STRING_EQUAL(out, "{\"0123456789012345678901234567890123456789\",5}");
        ei_x_free(&x);
    }
}

static void test_placeholders_roundtrip(void)
{
    ei_x_buff x, inner;
    ca_pid p = foo_pid();
    ca_ref r = {p.node, 9, 3, {10, 20, 30, 0, 0}};
    static const char bin[] = {0, 1, 2, 'z'};
    ei_x_new_with_version(&inner);
    CU_ASSERT_EQUAL(ca_fmt(&inner, "{nested, [1, 2]}"), 0);

    CU_ASSERT_EQUAL_FATAL(fmt(&x, "{~a, ~s, ~i, ~u, ~l, ~f, ~b, ~p, ~r, ~t, ~s, ~a}", "héllo",
                              "日本語 ok", -5L, ULONG_MAX, LLONG_MIN, -0.25, bin, sizeof(bin), p,
                              &r, inner.buff, (size_t)inner.index, "", "'quoted'"),
                          0);

    char atom[CA_MAXATOM], str[64], str2[4], atom2[CA_MAXATOM];
    long i;
    unsigned long u;
    long long l;
    double f;
    const char *bdata, *tdata;
    size_t blen, tlen;
    ca_pid p2;
    ca_ref r2;
    int rc =
        ca_match_term(x.buff, (size_t)x.index, "{~a, ~s, ~i, ~u, ~l, ~f, ~b, ~p, ~r, ~t, ~s, ~a}",
                      atom, str, sizeof(str), &i, &u, &l, &f, &bdata, &blen, &p2, &r2, &tdata,
                      &tlen, str2, sizeof(str2), atom2);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(atom, "héllo");
    CU_ASSERT_STRING_EQUAL(str, "日本語 ok");
    CU_ASSERT_EQUAL(i, -5);
    CU_ASSERT_EQUAL(u, ULONG_MAX);
    CU_ASSERT_EQUAL(l, LLONG_MIN);
    CU_ASSERT_EQUAL(f, -0.25);
    CU_ASSERT_EQUAL(blen, sizeof(bin));
    CU_ASSERT(memcmp(bdata, bin, sizeof(bin)) == 0);
    CU_ASSERT(bdata > x.buff && bdata < x.buff + x.index); /* points into buf */
    CU_ASSERT(ca_pid_eq(p, p2));
    CU_ASSERT(ca_ref_eq(&r, &r2));
    CU_ASSERT_EQUAL(tlen, (size_t)inner.index - 1);
    CU_ASSERT(memcmp(tdata, inner.buff + 1, tlen) == 0);
    CU_ASSERT_EQUAL(ca_match_term(tdata, tlen, "{nested, [1, 2]}"), 0);
    CU_ASSERT_STRING_EQUAL(str2, "");
    CU_ASSERT_STRING_EQUAL(atom2, "'quoted'");

    /* NULL pointers match the type without storing */
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index,
                                  "{~a, ~s, ~i, ~u, ~l, ~f, ~b, ~p, ~r, ~t, ~s, ~a}", NULL, NULL,
                                  (size_t)0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                  NULL, NULL, (size_t)0, NULL),
                    0);
    /* a type mismatch under NULL still fails */
    CU_ASSERT_EQUAL(
        ca_match_term(x.buff, (size_t)x.index, "{~i, _, _, _, _, _, _, _, _, _, _, _}", NULL),
        CA_ENOMATCH);
    ei_x_free(&x);

    /* the limits of each integer placeholder */
    CU_ASSERT_EQUAL(fmt(&x, "{~i, ~i, ~u, ~l, ~l}", LONG_MIN, LONG_MAX, 0UL, LLONG_MAX, -1LL), 0);
    long a, b;
    long long c, d;
    unsigned long e;
    CU_ASSERT_EQUAL(
        ca_match_term(x.buff, (size_t)x.index, "{~i, ~i, ~u, ~l, ~l}", &a, &b, &e, &c, &d), 0);
    CU_ASSERT(a == LONG_MIN && b == LONG_MAX && e == 0 && c == LLONG_MAX && d == -1);
    ei_x_free(&x);
    ei_x_free(&inner);
}

/* ---- matching ---- */

static void test_match_literals(void)
{
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed),
                                  "{ok, 42, -42, 300, -300, 1.5, \"abc\", <<\"ab\">>, [],"
                                  " [a, b | c], #{b => \"\\x02\", a => 1}, 'with space',"
                                  " 'héllo', 'EXIT'}"),
                    0);
    /* integers by value, whatever the encoding */
    CU_ASSERT_EQUAL(ca_match_term(B(erl_big),
                                  "[16#10000000000, -1099511627776, 9223372036854775807,"
                                  " -9223372036854775808, 18446744073709551615,"
                                  " -18446744073709551615, 2147483647, -2147483648, 2147483648]"),
                    0);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_unicode), "{\"héllo\", \"Ϩa\", '日本', <<\"é\"/utf8>>, "
                                                  "<<>>, []}"),
                    0);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_unicode), "{[$h, 233, $l | \"lo\"], [1000, $a], _, "
                                                  "<<195, 169>>, <<>>, \"\"}"),
                    0);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_nested), "{a, {b, {c, []}}, [{x, 1}, {y, [2, 3]}], #{}}"),
                    0);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_float), "[0.1, -2.5e-10, 1.0e100]"), 0);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_float), "[0.1, -2.5e-10, 1.0e101]"), CA_ENOMATCH);
    /* 1 and 1.0 are different terms */
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "{add, 1.0, 2}"), CA_ENOMATCH);
}

static void test_match_atoms_any_encoding(void)
{
    long a, b;
    char name[CA_MAXATOM];
    /* ATOM_EXT from default term_to_binary */
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "{add, ~i, ~i}", &a, &b), 0);
    CU_ASSERT(a == 1 && b == 2);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "{'add', _, _}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "{~a, 1, 2}", name), 0);
    CU_ASSERT_STRING_EQUAL(name, "add");
    /* Latin-1 ATOM_EXT and SMALL_ATOM_EXT with a non-ASCII letter */
    static const unsigned char latin1[] = {131, 104, 2,   100, 0, 5,   'h', 233,
                                           'l', 'l', 'o', 115, 2, 'o', 'k'};
    CU_ASSERT_EQUAL(ca_match_term(B(latin1), "{'héllo', ok}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(B(latin1), "{héllo, ~a}", name), 0);
    CU_ASSERT_STRING_EQUAL(name, "ok");
    CU_ASSERT_EQUAL(ca_match_term(B(latin1), "{~a, _}", name), 0);
    CU_ASSERT_STRING_EQUAL(name, "héllo");
    CU_ASSERT_EQUAL(ca_match_term(B(latin1), "{'hello', ok}"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(latin1), "{'héll', ok}"), CA_ENOMATCH);
    /* ATOM_UTF8_EXT (long form) */
    static const unsigned char utf8long[] = {131, 118, 0, 6, 230, 151, 165, 230, 156, 172};
    CU_ASSERT_EQUAL(ca_match_term(B(utf8long), "'日本'"), 0);
    CU_ASSERT_EQUAL(ca_match_term(B(utf8long), "~a", name), 0);
    CU_ASSERT_STRING_EQUAL(name, "日本");
    /* escapes in quoted atoms */
    static const unsigned char nl[] = {131, 119, 3, 'a', '\n', 'b'};
    CU_ASSERT_EQUAL(ca_match_term(B(nl), "'a\\nb'"), 0);
    CU_ASSERT_EQUAL(ca_match_term(B(nl), "'a\\x{0a}b'"), 0);
}

static void test_match_failures(void)
{
    long a;
    char small[3], fit[4];
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "{add, _}"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "{add, _, _, _}"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "{}"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "{sub, ~i, ~i}", &a, &a), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "{add, 1, 3}"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "[add, 1, 2]"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "add"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), "~a", NULL), CA_ENOMATCH);
    /* integers that do not fit */
    CU_ASSERT_EQUAL(ca_match_term(B(erl_big), "[_, _, _, _, ~i | _]", &a), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_big), "[_, _, _, _, _, ~u | _]", NULL), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_big), "[_, _, _, ~i | _]", &a), 0);
    CU_ASSERT_EQUAL(a, LONG_MIN);
    static const unsigned char huge[] = {131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}; /* 2^64 */
    CU_ASSERT_EQUAL(ca_match_term(B(huge), "~l", NULL), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(huge), "18446744073709551615"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(huge), "_"), 0);
    static const unsigned char bigzero[] = {131, 110, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(ca_match_term(B(bigzero), "0"), 0);
    /* ~s needs room for the NUL */
    CU_ASSERT_EQUAL(
        ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,~s,_,_,_,_,_,_,_}", small, sizeof(small)),
        CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,~s,_,_,_,_,_,_,_}", fit, sizeof(fit)),
                    0);
    CU_ASSERT_STRING_EQUAL(fit, "abc");
    /* a two-byte UTF-8 character that does not fit */
    ei_x_buff x;
    CU_ASSERT_EQUAL(fmt(&x, "\"aé\""), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "~s", small, sizeof(small)),
                    CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "~s", fit, sizeof(fit)), 0);
    CU_ASSERT_STRING_EQUAL(fit, "aé");
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "~s", fit, (size_t)0), CA_ENOMATCH);
    ei_x_free(&x);
    /* ~s refuses improper lists and non-integers */
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,_,_,_,~s,_,_,_,_}", fit, sizeof(fit)),
                    CA_ENOMATCH);
    /* binaries */
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,_,<<\"a\">>,_,_,_,_,_,_}"),
                    CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,_,<<\"abc\">>,_,_,_,_,_,_}"),
                    CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,\"ab\",_,_,_,_,_,_,_}"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,\"abcd\",_,_,_,_,_,_,_}"),
                    CA_ENOMATCH);
    /* a string is not a binary */
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,_,\"ab\",_,_,_,_,_,_}"), CA_ENOMATCH);
}

static void test_match_lists(void)
{
    long h;
    char rest[16];
    ei_x_buff x;
    /* [H | T] over a LIST_EXT and over a STRING_EXT */
    CU_ASSERT_EQUAL(fmt(&x, "[10, 20, 300]"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[~i | _]", &h), 0);
    CU_ASSERT_EQUAL(h, 10);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[10 | [20 | [300]]]"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[10, 20 | [300 | []]]"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[10, 20]"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[10, 20, 300, 4]"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[_, _, _ | []]"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[_, _, _ | x]"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[]"), CA_ENOMATCH);
    ei_x_free(&x);
    CU_ASSERT_EQUAL(fmt(&x, "\"hello\""), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[$h | ~s]", rest, sizeof(rest)), 0);
    CU_ASSERT_STRING_EQUAL(rest, "ello");
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[~i, $e | \"llo\"]", &h), 0);
    CU_ASSERT_EQUAL(h, 'h');
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[104, 101, 108, 108, 111]"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "\"hell\""), CA_ENOMATCH);
    /* ~t of a STRING_EXT element: a small integer's encoding */
    const char *t;
    size_t tl;
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[_, ~t | _]", &t, &tl), 0);
    CU_ASSERT_EQUAL(ca_match_term(t, tl, "$e"), 0);
    ei_x_free(&x);
    /* a string as a LIST_EXT of small integers, built by hand with ei */
    ei_x_new_with_version(&x);
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_long(&x, 'o');
    ei_x_encode_long(&x, 'k');
    ei_x_encode_empty_list(&x);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "\"ok\""), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "~s", rest, sizeof(rest)), 0);
    CU_ASSERT_STRING_EQUAL(rest, "ok");
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "\"ok!\""), CA_ENOMATCH);
    ei_x_free(&x);
    /* a list whose tail is a STRING_EXT is the same list */
    CU_ASSERT_EQUAL(fmt(&x, "[a | \"bc\"]"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "[a, $b, $c]"), 0);
    ei_x_free(&x);
    /* improper lists */
    char name[CA_MAXATOM];
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,_,_,_,[a, b | ~a],_,_,_,_}", name),
                    0);
    CU_ASSERT_STRING_EQUAL(name, "c");
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,_,_,_,[a, b, c],_,_,_,_}"),
                    CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,_,_,_,[a | _],_,_,_,_}"), 0);
    /* wildcards with names */
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_Tag, _, _, _, _, _, _, _, _, _, _, _, _, _}"),
                    0);
}

static void test_match_maps(void)
{
    ei_x_buff x;
    long v;
    CU_ASSERT_EQUAL(fmt(&x, "#{a => 1, {k, 2} => [x], \"s\" => #{in => 3}, 4 => four}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "#{}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "#{4 => four}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "#{\"s\" => #{in => ~i}, a => 1}", &v),
                    0);
    CU_ASSERT_EQUAL(v, 3);
    CU_ASSERT_EQUAL(
        ca_match_term(x.buff, (size_t)x.index, "#{4 => _, {k, 2} => [_], a => _, \"s\" => _}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "#{b => _}"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "#{a => 2}"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "#{\"s\" => #{out => _}}"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "{}"), CA_ENOMATCH);
    /* keys must be literals */
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "#{~a => 1}", NULL), CA_EBADPAT);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "#{_ => 1}"), CA_EBADPAT);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "#{{~i} => 1}", NULL), CA_EBADPAT);
    ei_x_free(&x);
    /* and a map inside a tuple, then what follows it */
    CU_ASSERT_EQUAL(fmt(&x, "{#{a => 1, b => 2}, after}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "{#{b => 2}, after}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), "{_,_,_,_,_,_,_,_,_,_,#{b => [2]},_,_,_}"), 0);
    ei_x_free(&x);
    /* fmt accepts placeholders as keys */
    CU_ASSERT_EQUAL(fmt(&x, "#{~a => ~i}", "k", 5L), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "#{k => 5}"), 0);
    ei_x_free(&x);
}

static void test_match_bad_patterns(void)
{
    const char *bad[] = {"{add",
                         "{add, _",
                         "{add, _, _} x",
                         "{add,, _}",
                         "~q",
                         "Add",
                         "{add _ _}",
                         "[add | ~t]",
                         "#{a => }",
                         "'add",
                         "<<1",
                         "{sub, ~q}",
                         "[x, ~z]",
                         "#{sub => 1, ~a => 2}",
                         "{add, 1, 2}}",
                         "",
                         "  ",
                         "{add, 1, 2.}",
                         "{1.0e}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* EBADPAT whatever the term, even where it mismatches early */
        int rc = ca_match_term(B(erl_default_atoms), bad[i]);
        if (rc != CA_EBADPAT)
            printf("\n  pattern %s gave %d\n", bad[i], rc);
        CU_ASSERT_EQUAL(rc, CA_EBADPAT);
        CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), bad[i]), CA_EBADPAT);
    }
    CU_ASSERT_EQUAL(ca_match_term(B(erl_default_atoms), NULL), CA_EINVAL);
    /* a good pattern, then a bad one written into the same buffer: the
     * second is not taken for the first (mismatches remember good ones) */
    char pat[32];
    long n;
    for (int i = 0; i < 3; i++) {
        snprintf(pat, sizeof pat, "{sub, ~i}");
        CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), pat, &n), CA_ENOMATCH);
        snprintf(pat, sizeof pat, "{sub, ~q}");
        CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), pat, &n), CA_EBADPAT);
    }
    /* and a long one, past what is remembered */
    char longpat[200];
    snprintf(longpat, sizeof longpat, "{sub, %0150d, ~i}", 0);
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), longpat, &n), CA_ENOMATCH);
    longpat[7] = 'x';
    CU_ASSERT_EQUAL(ca_match_term(B(erl_mixed), longpat, &n), CA_EBADPAT);
}

/* ---- patterns compiled once per thread ---- */

static void test_compiled_patterns(void)
{
    ei_x_buff x;
    long n;
    char a[CA_MAXATOM];
    /* the same patterns many times, the term changing; outputs, literals,
     * arities and the parts left to the interpreter (list, float, string)
     * each decide */
    for (long i = 0; i < 20; i++) {
        const char *name = i % 2 ? "x" : "yy";
        CU_ASSERT_EQUAL(fmt(&x, "{ping, ~i, ~a, [1], 2.5, \"s\"}", i, name), 0);
        const char *t = x.buff;
        size_t tl = (size_t)x.index;
        n = -1;
        CU_ASSERT_EQUAL(ca_match_term(t, tl, "{ping, ~i, ~a, [1], 2.5, \"s\"}", &n, a), 0);
        CU_ASSERT(n == i && strcmp(a, name) == 0);
        CU_ASSERT_EQUAL(ca_match_term(t, tl, "{ping, _, _, [1], 2.5, \"t\"}"), CA_ENOMATCH);
        CU_ASSERT_EQUAL(ca_match_term(t, tl, "{ping, _, _, [1], 2.0, _}"), CA_ENOMATCH);
        CU_ASSERT_EQUAL(ca_match_term(t, tl, "{ping, _, _, [2], _, _}"), CA_ENOMATCH);
        CU_ASSERT_EQUAL(ca_match_term(t, tl, "{ping, _, _, _, _}"), CA_ENOMATCH);
        CU_ASSERT_EQUAL(ca_match_term(t, tl, "{pong, _, _, _, _, _}"), CA_ENOMATCH);
        CU_ASSERT_EQUAL(ca_match_term(t, tl, "{ping, 7, _, _, _, _}"), i == 7 ? 0 : CA_ENOMATCH);
        CU_ASSERT_EQUAL(ca_match_term(t, tl, "{ping, _, x, _Rest, _, _}"), i % 2 ? 0 : CA_ENOMATCH);
        CU_ASSERT_EQUAL(ca_match_term(t, tl, "{ping, -1, _, _, _, _}"), CA_ENOMATCH);
        ei_x_free(&x);
    }
    /* ~i in every integer encoding, and a term that is none */
    const long ints[] = {0,        255,      -1,      256, -300, 2147483647L, -2147483647L - 1,
                         1L << 40, LONG_MIN, LONG_MAX};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        CU_ASSERT_EQUAL(fmt(&x, "{n, ~i}", ints[i]), 0);
        n = 7;
        CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "{n, ~i}", &n), 0);
        CU_ASSERT_EQUAL(n, ints[i]);
        CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "{n, ~i}", NULL), 0);
        ei_x_free(&x);
    }
    CU_ASSERT_EQUAL(fmt(&x, "{n, 1.0}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, "{n, ~i}", &n), CA_ENOMATCH);
    ei_x_free(&x);
    /* a pattern rewritten in the same buffer is a new pattern, good or bad */
    char buf[64];
    const char *forms[] = {"{a, ~i}", "{b, ~i}", "{a, ~q}", "{a, 1}", "{a, 2}", "{a, ~i} x"};
    const int want[] = {0, CA_ENOMATCH, CA_EBADPAT, 0, CA_ENOMATCH, CA_EBADPAT};
    CU_ASSERT_EQUAL(fmt(&x, "{a, 1}"), 0);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 6; i++) {
            snprintf(buf, sizeof buf, "%s", forms[i]);
            CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, buf, &n), want[i]);
        }
    /* patterns 31 bytes apart share a slot: they take turns, each right */
    char pair[100];
    memset(pair, 0, sizeof pair);
    strcpy(pair, "{a, ~i}");
    strcpy(pair + 31, "{b, ~i}");
    strcpy(pair + 62, "{a, ~p}");
    for (int i = 0; i < 100; i++) {
        n = 0;
        CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, pair, &n), 0);
        CU_ASSERT_EQUAL(n, 1);
        CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, pair + 31, &n), CA_ENOMATCH);
        if (i % 7 == 0)
            CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, pair + 62, NULL), CA_ENOMATCH);
    }
    ei_x_free(&x);
    /* a tuple in the large encoding, as another encoder may write it */
    static const unsigned char large[] = {131, 105, 0, 0, 0, 2, 119, 1, 'a', 97, 5};
    CU_ASSERT_EQUAL(ca_match_term(B(large), "{a, 5}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(B(large), "{a, ~i}", &n), 0);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(ca_match_term(B(large), "{a, 5, _}"), CA_ENOMATCH);
    CU_ASSERT_EQUAL(ca_match_term(B(large), "{a}"), CA_ENOMATCH);
    /* more patterns than are kept, and some too long to be, each right
     * every time */
    char many[40][80];
    for (int i = 0; i < 40; i++)
        snprintf(many[i], sizeof many[i], "%*s{f%d, ~i}", i % 3 ? 0 : 60, "", i);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 40; i++) {
            char name[16];
            snprintf(name, sizeof name, "f%d", i);
            CU_ASSERT_EQUAL(fmt(&x, "{~a, ~i}", name, (long)(i * round)), 0);
            n = -1;
            CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, many[i], &n), 0);
            CU_ASSERT_EQUAL(n, i * round);
            CU_ASSERT_EQUAL(ca_match_term(x.buff, (size_t)x.index, many[(i + 1) % 40], &n),
                            CA_ENOMATCH);
            ei_x_free(&x);
        }
}

/* ---- malformed terms ---- */

static void all_truncations(const char *t, size_t n, const char *pattern)
{
    char out[256];
    for (size_t len = 0; len < n; len++) {
        CU_ASSERT_EQUAL(ca_match_term(t, len, pattern, NULL, (size_t)0), CA_EBADTERM);
        CU_ASSERT_EQUAL(ca_match_term(t, len, "_"), CA_EBADTERM);
        CU_ASSERT(ca_term_print(t, len, out, sizeof(out)) < 0);
        /* and from a heap copy of exactly len bytes, so ASan sees overreads */
        char *copy = malloc(len ? len : 1);
        memcpy(copy, t, len);
        CU_ASSERT_EQUAL(ca_match_term(copy, len, "_"), CA_EBADTERM);
        CU_ASSERT(ca_term_print(copy, len, out, sizeof(out)) < 0);
        free(copy);
    }
    CU_ASSERT_EQUAL(ca_match_term(t, n, "_"), 0);
    CU_ASSERT(ca_term_print(t, n, out, sizeof(out)) > 0);
}

static void test_truncated_terms(void)
{
    all_truncations(B(erl_mixed), "{_,_,_,_,_,_,~s,_,_,_,_,_,_,_}");
    all_truncations(B(erl_pid_ref), "{~p, ~r}");
    all_truncations(B(erl_big), "~t");
    all_truncations(B(erl_unicode), "_");
    all_truncations(B(erl_nested), "_");
    all_truncations(B(erl_float), "_");
    /* a trailing byte is not part of any term */
    unsigned char more[sizeof(erl_mixed) + 1];
    memcpy(more, erl_mixed, sizeof(erl_mixed));
    more[sizeof(erl_mixed)] = 'j';
    CU_ASSERT_EQUAL(ca_match_term(B(more), "_"), CA_EBADTERM);
}

static uint32_t rng = 12345;
static unsigned rnd(void)
{
    rng = rng * 1103515245u + 12345u;
    return rng >> 16;
}

static void test_garbage_terms(void)
{
    static const unsigned char bad[][12] = {
        {131, 104, 255},                          /* tuple with 255 missing elements */
        {131, 105, 255, 255, 255, 255},           /* huge LARGE_TUPLE */
        {131, 108, 255, 255, 255, 255, 106},      /* huge list */
        {131, 116, 128, 0, 0, 0},                 /* huge map */
        {131, 109, 0, 0, 0, 9, 1},                /* binary longer than buffer */
        {131, 100, 1, 0, 'a'},                    /* ATOM_EXT of 256 bytes */
        {131, 119, 2, 0xc0, 0xaf},                /* overlong UTF-8 atom */
        {131, 80, 0, 0, 0, 1, 120},               /* compressed: not supported */
        {131, 82, 0},                             /* atom cache ref */
        {131, 99},                                /* FLOAT_EXT cut */
        {131, 90, 0, 6, 119, 1, 'n', 0, 0, 0, 0}, /* ref of 6 words */
        {131, 88, 97, 1, 0, 0, 0, 0, 0, 0, 0, 0}, /* pid whose node is not an atom */
    };
    char out[64];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = sizeof(bad[i]);
        while (n > 1 && bad[i][n - 1] == 0 && i != 10 && i != 11)
            n--;
        CU_ASSERT_EQUAL(ca_match_term((const char *)bad[i], n, "_"), CA_EBADTERM);
        CU_ASSERT(ca_term_print((const char *)bad[i], n, out, sizeof(out)) < 0);
    }
    CU_ASSERT_EQUAL(ca_match_term(NULL, 0, "_"), CA_EBADTERM);
    CU_ASSERT_EQUAL(ca_match_term("\x83", 1, "_"), CA_EBADTERM);
    /* Floats Erlang would refuse: NaN and infinities (an Erlang node
     * closes the distribution channel that carries one), and an old
     * FLOAT_EXT whose text is no number; its proper form is read. */
    static const unsigned char nan[] = {131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0},
                               inf[] = {131, 70, 0xff, 0xf0, 0, 0, 0, 0, 0, 0},
                               big[] = {131, 70, 0x7f, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CU_ASSERT_EQUAL(ca_match_term((const char *)nan, sizeof nan, "_"), CA_EBADTERM);
    CU_ASSERT_EQUAL(ca_match_term((const char *)inf, sizeof inf, "_"), CA_EBADTERM);
    CU_ASSERT_EQUAL(ca_match_term((const char *)big, sizeof big, "_"), 0); /* DBL_MAX */
    unsigned char old[2 + 31] = {131, 99};
    double d = 0;
    memcpy(old + 2, "1.50000000000000000000e+00", 26);
    CU_ASSERT_EQUAL(ca_match_term((const char *)old, sizeof old, "~f", &d), 0);
    CU_ASSERT(d == 1.5);
    old[2 + 27] = 'x'; /* after the padding starts */
    CU_ASSERT_EQUAL(ca_match_term((const char *)old, sizeof old, "_"), CA_EBADTERM);
    memset(old + 2, 0, 31);
    memcpy(old + 2, "nan", 3);
    CU_ASSERT_EQUAL(ca_match_term((const char *)old, sizeof old, "_"), CA_EBADTERM);
    memcpy(old + 2, "zzz", 3);
    CU_ASSERT_EQUAL(ca_match_term((const char *)old, sizeof old, "_"), CA_EBADTERM);
    /* bitstrings: bits in the last byte 1..8, 0 only when empty */
    static const unsigned char bits[][8] = {
        {131, 77, 0, 0, 0, 0, 0},    {131, 77, 0, 0, 0, 1, 3, 0xe0},
        {131, 77, 0, 0, 0, 0, 2},    {131, 77, 0, 0, 0, 1, 0, 0xe0},
        {131, 77, 0, 0, 0, 1, 9, 0}, {131, 77, 0, 0, 0, 2, 8, 1}, /* cut short */
    };
    static const size_t bits_len[] = {7, 8, 7, 8, 8, 8};
    for (int k = 0; k < 6; k++)
        CU_ASSERT_EQUAL(ca_match_term((const char *)bits[k], bits_len[k], "_"),
                        k < 2 ? 0 : CA_EBADTERM);
    /* fun M:F/A: two atoms and a small integer; the pre-R8 FUN_EXT, which
     * OTP 25 refuses, is refused */
    static const unsigned char ext[][11] = {
        {131, 113, 100, 0, 1, 'm', 100, 0, 1, 'f', 97}, /* the arity cut off */
        {131, 113, 97, 120, 100, 0, 1, 'f', 97, 1},     /* the module an integer */
        {131, 113, 100, 0, 1, 'm', 97, 1, 97, 1},       /* the function too */
        {131, 117, 0, 0, 0, 0, 106},
    };
    static const size_t ext_len[] = {11, 10, 10, 7};
    for (int k = 0; k < 4; k++)
        CU_ASSERT_EQUAL(ca_match_term((const char *)ext[k], ext_len[k], "_"), CA_EBADTERM);
    static const unsigned char mfa[] = {131, 113, 100, 0, 1, 'm', 100, 0, 1, 'f', 97, 1};
    CU_ASSERT_EQUAL(ca_match_term((const char *)mfa, sizeof mfa, "_"), 0);
    /* random bytes, and random mutations of valid terms: never a crash */
    for (int round = 0; round < 20000; round++) {
        unsigned char buf[64];
        size_t n = 1 + rnd() % sizeof(buf);
        if (round % 2) {
            for (size_t i = 0; i < n; i++)
                buf[i] = (unsigned char)rnd();
        } else {
            n = sizeof(erl_mixed) < sizeof(buf) ? sizeof(erl_mixed) : sizeof(buf);
            memcpy(buf, erl_mixed, n);
            buf[rnd() % n] = (unsigned char)rnd();
        }
        char *copy = malloc(n);
        memcpy(copy, buf, n);
        int rc = ca_match_term(copy, n, "{~a, ~i, _, _, _, _, _, _, _, _, _, _, _, _}", out, NULL);
        CU_ASSERT(rc == 0 || rc == CA_ENOMATCH || rc == CA_EBADTERM);
        ca_term_print(copy, n, out, sizeof(out));
        free(copy);
    }
}

static void test_deep_nesting(void)
{
    /* 200000 nested 1-tuples: checked without recursion */
    size_t depth = 200000, n = 1 + 2 * depth + 1;
    char *buf = malloc(n);
    buf[0] = (char)131;
    for (size_t i = 0; i < depth; i++) {
        buf[1 + 2 * i] = 104;
        buf[2 + 2 * i] = 1;
    }
    buf[n - 1] = 106;
    CU_ASSERT_EQUAL(ca_match_term(buf, n, "_"), 0);
    CU_ASSERT_EQUAL(ca_match_term(buf, n, "{{{_}}}"), 0);
    CU_ASSERT_EQUAL(ca_match_term(buf, n, "{~t}", NULL, NULL), 0);
    char out[512];
    CU_ASSERT(ca_term_print(buf, n, out, sizeof(out)) > 0);
    CU_ASSERT_EQUAL(ca_match_term(buf, n - 1, "_"), CA_EBADTERM);
    free(buf);
}

/* ---- printing ---- */

static void test_print(void)
{
    char out[512];
    int n = ca_term_print(B(erl_mixed), out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "{ok,42,-42,300,-300,1.5,\"abc\",<<\"ab\">>,[],[a,b|c],"
                                "#{a => 1,b => [2]},'with space','héllo','EXIT'}");
    CU_ASSERT_EQUAL(n, (int)strlen(out));
    ca_term_print(B(erl_big), out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "[1099511627776,-1099511627776,9223372036854775807,"
                                "-9223372036854775808,18446744073709551615,"
                                "-18446744073709551615,2147483647,-2147483648,2147483648]");
    ca_term_print(B(erl_float), out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "[0.1,-2.5e-10,1.0e+100]");
    ca_term_print(B(erl_pid_ref), out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "{#Pid<foo@bar.42.3>,#Ref<foo@bar.1.2.3>}");
    /* truncation */
    char small[10];
    n = ca_term_print(B(erl_mixed), small, sizeof(small));
    CU_ASSERT_EQUAL(n, 9);
    CU_ASSERT_STRING_EQUAL(small, "{ok,42...");
    n = ca_term_print(B(erl_default_atoms), small, 2);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_STRING_EQUAL(small, ".");
    /* exactly fitting is not truncated */
    n = ca_term_print(B(erl_default_atoms), small, 10);
    CU_ASSERT_STRING_EQUAL(small, "{add,1,2}");
    n = ca_term_print("\x83\x68", 2, out, sizeof(out));
    CU_ASSERT_EQUAL(n, CA_EBADTERM);
    CU_ASSERT_STRING_EQUAL(out, "<malformed term>");
}

static int compiled_off(void)
{
    ca__term_compiled(0);
    return 0;
}

/* An old FLOAT_EXT whose text fills all 31 bytes, no NUL (Erlang takes
 * it), as the last bytes before unreadable memory: ei_decode_double would
 * hand it to sscanf, which reads on in search of a NUL (a fuzzer found
 * it); everything that reads floats must stay within the 31. */
static void test_old_float_at_memory_end(void)
{
    static const char text[] = "2222222222222222222222222222220"; /* 31 digits */
    long page = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(map != MAP_FAILED);
    CU_ASSERT_FATAL(mprotect(map + page, (size_t)page, PROT_NONE) == 0);
    memset(map, '2', (size_t)page); /* no NUL before the guard either */
    char *t = map + page - 33;
    t[0] = (char)131;
    t[1] = 99; /* FLOAT_EXT */
    memcpy(t + 2, text, 31);
    double d = 0, want = strtod(text, NULL);
    CU_ASSERT_EQUAL(ca__term_check(t, 33), 0);
    CU_ASSERT_EQUAL(ca_match_term(t, 33, "~f", &d), 0);
    CU_ASSERT(d == want);
    CU_ASSERT_EQUAL(ca_match_term(t, 33, "2.0"), CA_ENOMATCH);
    char out[64];
    CU_ASSERT(ca_term_print(t, 33, out, sizeof out) > 0);
    CU_ASSERT(strncmp(out, "2.22222", 7) == 0);
    int idx = 1;
    CU_ASSERT_EQUAL(ca__term_skip(t, 33, &idx), 0);
    CU_ASSERT_EQUAL(idx, 33);
    /* in a tuple, skipped and read: {Float, Float} */
    char *u = map + page - 67;
    memcpy(u, (const char[]){(char)131, 104, 2, 99}, 4);
    memcpy(u + 4, text, 31);
    u[35] = 99;
    memcpy(u + 36, text, 31);
    CU_ASSERT_EQUAL(ca_match_term(u, 67, "{_, ~f}", &d), 0);
    CU_ASSERT(d == want);
    idx = 3;
    CU_ASSERT_EQUAL(ca__term_skip(u, 67, &idx), 0);
    CU_ASSERT_EQUAL(ca__term_skip(u, 67, &idx), 0);
    CU_ASSERT_EQUAL(idx, 67);
    CU_ASSERT_EQUAL(ca__term_skip(u, 67, &idx), CA_EBADTERM); /* nothing left */
    munmap(map, (size_t)page * 2);
}

static int compiled_on(void)
{
    ca__term_compiled(1);
    return 0;
}

/* Formats and patterns, run compiled and through the interpreter alone. */
static void add_fmt_match(CU_pSuite s)
{
    CU_add_test(s, "fmt literals vs term_to_binary", test_fmt_literals);
    CU_add_test(s, "fmt literal forms", test_fmt_literal_forms);
    CU_add_test(s, "fmt errors", test_fmt_errors);
    CU_add_test(s, "placeholders round trip", test_placeholders_roundtrip);
    CU_add_test(s, "compiled formats", test_compiled_formats);
    CU_add_test(s, "compiled patterns", test_compiled_patterns);
    CU_add_test(s, "match literals", test_match_literals);
    CU_add_test(s, "match atoms in any encoding", test_match_atoms_any_encoding);
    CU_add_test(s, "match failures", test_match_failures);
    CU_add_test(s, "match lists", test_match_lists);
    CU_add_test(s, "match maps", test_match_maps);
    CU_add_test(s, "bad patterns", test_match_bad_patterns);
    CU_add_test(s, "truncated terms", test_truncated_terms);
    CU_add_test(s, "garbage terms", test_garbage_terms);
    CU_add_test(s, "deep nesting", test_deep_nesting);
}

static void add(void)
{
    CU_pSuite s = CU_add_suite("term", NULL, NULL);
    CU_add_test(s, "node intern", test_node_intern);
    CU_add_test(s, "node table threads", test_node_threads);
    CU_add_test(s, "pid/ref equality", test_pid_ref_eq);
    CU_add_test(s, "decode Erlang pids and refs", test_decode_erlang_pid_ref);
    CU_add_test(s, "pids and refs decoded in place as ei does", test_decode_pid_ref_as_ei);
    CU_add_test(s, "encode pids and refs", test_encode_pid_ref);
    CU_add_test(s, "print", test_print);
    CU_add_test(s, "old floats at the end of memory", test_old_float_at_memory_end);
    add_fmt_match(CU_add_suite("term: formats and patterns, compiled", NULL, NULL));
    add_fmt_match(
        CU_add_suite("term: formats and patterns, interpreted", compiled_off, compiled_on));
}

int main(void)
{
    return run_suites(add);
}
