/*
 * libFuzzer target: format and pattern strings (the lexers behind
 * ca_fmt and ca_match_term), without placeholders, which would read
 * arguments that are not there. What ca_fmt builds must be one term that
 * the same text, as a pattern, matches; every text, as a pattern, either
 * matches a fixed term, mismatches it or is refused as a bad pattern, and
 * never reads outside its bytes. Compiled (formats and patterns kept per
 * thread) and interpreted, every answer must be the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cactor.h"
#include "internal.h"

/* {ok, [1, 2.5, "ab", <<"c">>], #{a => b}, 'Q'} */
static const unsigned char FIXED[] = {131, 104, 4,   119, 2,   111, 107, 108, 0,   0,   0,   4, 97,
                                      1,   70,  64,  4,   0,   0,   0,   0,   0,   0,   107, 0, 2,
                                      97,  98,  109, 0,   0,   0,   1,   99,  106, 116, 0,   0, 0,
                                      1,   119, 1,   97,  119, 1,   98,  119, 1,   81};

/* ca_match_term, with the answer the interpreter alone gives checked */
static int match_both(const char *t, size_t len, const char *pattern)
{
    int rc = ca_match_term(t, len, pattern);
    ca__term_compiled(0);
    int slow = ca_match_term(t, len, pattern);
    ca__term_compiled(1);
    if (rc != slow)
        abort();
    return rc;
}

/* ca_fmt, with what the interpreter alone builds checked */
static int fmt_both(ei_x_buff *x, const char *fmt)
{
    int rc = ca_fmt(x, fmt);
    ei_x_buff y;
    if (ei_x_new_with_version(&y) != 0)
        return rc;
    ca__term_compiled(0);
    int slow = ca_fmt(&y, fmt);
    ca__term_compiled(1);
    if (rc != slow ||
        (rc == 0 && (x->index != y.index || memcmp(x->buff, y.buff, (size_t)y.index))))
        abort();
    ei_x_free(&y);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, NUL included, so that any overread is caught */
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    for (size_t i = 0; i < size; i++)
        text[i] = data[i] == '~' ? ' ' : (char)data[i];
    text[size] = 0;
    ei_x_buff x;
    if (ei_x_new_with_version(&x) == 0) {
        int rc = fmt_both(&x, text);
        if (rc == 0) {
            if (ca__term_check(x.buff, (size_t)x.index) != 0)
                abort(); /* built something that is not one term */
            if (match_both(x.buff, (size_t)x.index, text) != 0)
                abort(); /* a literal must match what it formats to */
        } else if (rc != CA_EBADPAT && rc != CA_EINVAL && rc != CA_ENOMEM) {
            abort();
        }
        ei_x_free(&x);
    }
    int m = match_both((const char *)FIXED, sizeof FIXED, text);
    if (m != 0 && m != CA_ENOMATCH && m != CA_EBADPAT)
        abort();
    free(text);
    return 0;
}
