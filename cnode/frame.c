/*
 * Framing of a connected distribution stream: 4-byte big-endian length,
 * then the frame; length 0 is a tick. We never negotiate the atom cache
 * nor fragments, so every other frame is pass-through ('p').
 */
#include <string.h>

#include "bytes.h"
#include "dist.h"

int ca__dist_frame_cut(const void *buf, size_t len, size_t max_frame, size_t *used, size_t *need,
                       ca_dist_frame *frame)
{
    const unsigned char *p = buf;
    *used = 0;
    if (need != NULL)
        *need = 4;
    memset(frame, 0, sizeof *frame);
    if (max_frame == 0)
        max_frame = CA_DIST_FRAME_MAX_DEFAULT;
    if (len < 4)
        return 0;
    uint32_t flen = ca__get32(p);
    /* Refuse before waiting for (or allocating room for) the body. */
    if (flen > max_frame)
        return CA_ETOOBIG;
    if (flen == 0) {
        frame->tick = 1;
        *used = 4;
        return 0;
    }
    if (need != NULL)
        *need = 4 + (size_t)flen;
    if (len >= 5)
        frame->type = p[4];
    /* The type byte alone tells a bad frame: say so early. */
    if (len >= 5 && p[4] != CA_DIST_PASS_THROUGH)
        return CA_EPROTO;
    if (len - 4 < flen)
        return 0;
    frame->data = (const char *)p + 5;
    frame->len = (size_t)flen - 1;
    *used = 4 + (size_t)flen;
    return 0;
}

int ca__dist_frames_each(const void *buf, size_t len, size_t max_frame, size_t *used,
                         int (*fn)(void *ctx, const ca_dist_frame *frame), void *ctx)
{
    const unsigned char *p = buf;
    size_t pos = 0;
    int rc = 0;
    while (pos < len) {
        ca_dist_frame f;
        size_t n;
        rc = ca__dist_frame_cut(p + pos, len - pos, max_frame, &n, NULL, &f);
        if (rc < 0 || n == 0)
            break;
        pos += n;
        if ((rc = fn(ctx, &f)) != 0)
            break;
    }
    *used = pos;
    return rc;
}

int ca__dist_encode_tick(ei_x_buff *x)
{
    static const char zero[4] = {0, 0, 0, 0};
    return ei_x_append_buf(x, zero, 4) < 0 ? CA_ENOMEM : 0;
}
