/*
 * libFuzzer target: terms as a peer could send them in a message. The
 * runtime checks every payload (ca__term_check) before an actor sees it;
 * what passes must be one term as ei reads it, and whatever an actor then
 * does with it (ca_match_term, ca_gen_call_match, ca_decode_pid/ref on
 * what matched, ca_term_print) must stay within the bytes. What does not
 * pass must be refused by the matcher and the printer too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cactor.h"
#include "internal.h"

/* Matching and decoding the pids and references it finds. */
static void match_all(const char *buf, size_t len)
{
    ca_pid p;
    ca_ref r;
    const char *t, *u;
    size_t tl, ul;
    long i;
    double f;
    char a[CA_MAXATOM], s[64];
    ca_match_term(buf, len, "{~p, ~t}", &p, &t, &tl);
    ca_match_term(buf, len, "{'$gen_call', {~p, ~t}, ~t}", &p, &t, &tl, &u, &ul);
    ca_match_term(buf, len, "~r", &r);
    ca_match_term(buf, len, "[~i | ~t]", &i, &t, &tl);
    ca_match_term(buf, len, "#{a := ~t, 1 := [_, ~f]}", &t, &tl, &f);
    ca_match_term(buf, len, "{~a, ~b, ~s}", a, &t, &tl, s, sizeof s);
    /* a pid or ref as the second element of a tuple, decoded in place */
    if (ca_match_term(buf, len, "{_, ~t}", &t, &tl) == 0) {
        int idx = 0;
        if (ca_match_term(t, tl, "~p", NULL) == 0)
            ca_decode_pid(t, &idx, &p);
        else if (ca_match_term(t, tl, "~r", NULL) == 0)
            ca_decode_ref(t, &idx, &r);
        if (idx < 0 || (size_t)idx > tl)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy so that any overread is caught */
    char *buf = malloc(size ? size : 1);
    char out[512];
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    int ok = ca__term_check(buf, size) == 0;
    int printed = ca_term_print(buf, size, out, sizeof out);
    if (!ok) {
        /* refused by the check: refused everywhere */
        if (ca_match_term(buf, size, "_") != CA_EBADTERM || printed >= 0)
            abort();
        free(buf);
        return 0;
    }
    /* ei agrees it is one term; ei gets a copy with a NUL after it, since
     * ei_decode_double scans an old float's text with sscanf, which reads
     * on to a NUL when the text fills its 31 bytes (valid ETF; cactor
     * reads those bytes itself) */
    char *padded = malloc(size + 1);
    if (padded == NULL)
        abort();
    memcpy(padded, buf, size);
    padded[size] = 0;
    int idx = size && (unsigned char)buf[0] == 131;
    if (ei_skip_term(padded, &idx) < 0 || (size_t)idx != size || printed < 0)
        abort();
    free(padded);
    match_all(buf, size);
    if (size && (unsigned char)buf[0] == 131) { /* as a message */
        ca_msg *m = ca__msg_term(CA_PID_NONE, buf, size);
        ca_call_from from;
        const char *req, *md = m ? ca_msg_data(m, NULL) : NULL;
        size_t rl;
        if (m && ca_gen_call_match(m, &from, &req, &rl) == 0 &&
            (req < md || req + rl != md + size || from.tag_len > sizeof from.tag))
            abort();
        ca__msg_free(m);
    }
    free(buf);
    return 0;
}
