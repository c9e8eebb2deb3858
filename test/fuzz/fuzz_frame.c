/*
 * libFuzzer target: the framing and control decoders over arbitrary
 * bytes, as a peer could send them after the handshake.
 *
 * The first byte picks the mode: the rest is either a stream of frames
 * (cut with a small maximum, every frame's control decoded, some decoded
 * signals re-encoded and decoded again) or one frame body fed straight to
 * the control decoder.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

static int same_pid(const erlang_pid *a, const erlang_pid *b)
{
    return strcmp(a->node, b->node) == 0 && a->num == b->num && a->serial == b->serial &&
           a->creation == b->creation;
}

/* What we decoded must encode and decode back to the same thing. */
static void round_trip(const ca_dist_ctrl *c)
{
    ei_x_buff x;
    int rc;
    if (ei_x_new(&x) < 0)
        return;
    switch (c->op) {
    case CA_DOP_LINK:
        rc = ca__dist_encode_link(&x, &c->from.pid, &c->to.pid);
        break;
    case CA_DOP_EXIT:
        rc = ca__dist_encode_exit(&x, &c->from.pid, &c->to.pid, c->reason.p, c->reason.len);
        break;
    case CA_DOP_MONITOR_P:
        rc = ca__dist_encode_monitor_p(&x, &c->from.pid, &c->to, &c->ref);
        break;
    case CA_DOP_UNLINK_ID:
        rc = ca__dist_encode_unlink_id(&x, c->id, &c->from.pid, &c->to.pid);
        break;
    case CA_DOP_SEND_SENDER:
        rc =
            ca__dist_encode_send_sender(&x, &c->from.pid, &c->to.pid, c->payload.p, c->payload.len);
        break;
    default:
        ei_x_free(&x);
        return;
    }
    if (rc == 0) {
        ca_dist_frame f;
        size_t used;
        ca_dist_ctrl *d = malloc(sizeof *d);
        if (ca__dist_frame_cut(x.buff, (size_t)x.index, 0, &used, NULL, &f) != 0 ||
            used != (size_t)x.index)
            abort();
        if (d != NULL) {
            /* the payload of a SEND_SENDER is not walked on decode, so it
             * may fail to encode; anything encoded must decode */
            if (ca__dist_ctrl_decode(f.data, f.len, d) != 0 || d->op != c->op)
                abort();
            if (!c->from.is_name && !same_pid(&c->from.pid, &d->from.pid))
                abort();
            if (c->reason.len != d->reason.len || c->id != d->id)
                abort();
            free(d);
        }
    }
    ei_x_free(&x);
}

static int on_frame(void *ctx, const ca_dist_frame *f)
{
    ca_dist_ctrl *c = ctx;
    if (f->tick)
        return 0;
    if (ca__dist_ctrl_decode(f->data, f->len, c) == 0 && c->kind == CA_DIST_CTRL_SIGNAL)
        round_trip(c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ca_dist_ctrl *c = malloc(sizeof *c);
    if (c == NULL)
        return 0;
    const uint8_t mode = data[0];
    /* an exact-size copy so that any overread is caught */
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    if (buf == NULL) {
        free(c);
        return 0;
    }
    memcpy(buf, data + 1, n);
    if (mode & 1) {
        if (ca__dist_ctrl_decode(buf, n, c) == 0 && c->kind == CA_DIST_CTRL_SIGNAL)
            round_trip(c);
    } else {
        size_t used = 0, max = (mode & 2) ? 64 : (size_t)1 << 20;
        /* feed as a growing buffer, in reads of a size the input picks */
        size_t chunk = 1 + (mode >> 2), have = 0;
        while (have < n) {
            have = have + chunk < n ? have + chunk : n;
            size_t off = 0;
            for (;;) {
                size_t u = 0;
                int rc =
                    ca__dist_frames_each(buf + used + off, have - used - off, max, &u, on_frame, c);
                off += u;
                if (rc < 0) {
                    have = n; /* a broken stream: the connection would close */
                    break;
                }
                if (u == 0)
                    break;
            }
            used += off;
        }
    }
    free(buf);
    free(c);
    return 0;
}
