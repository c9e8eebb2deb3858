/*
 * libFuzzer target: the handshake machine, both roles, fed arbitrary
 * bytes as the peer's side of the conversation.
 *
 * First byte: bit 0 the role, bit 1 (initiator) prepend a valid "ok"
 * status so the fuzzer starts at the challenge, bit 2 answer "true" to
 * "alive", the rest the size of each read (1..32).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

static uint32_t seed;
static int fixed_rand(unsigned char *buf, int num)
{
    for (int i = 0; i < num; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 16);
    }
    return 1;
}

static ca_dist_status policy(void *ctx, const char *peer, uint64_t flags)
{
    (void)ctx;
    /* exercise every status, depending on what the peer sent */
    return (ca_dist_status)((strlen(peer) + flags) % 5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t mode = data[0];
    static ca_dist_hs hs; /* large: keep it off the stack */
    ca_dist_hs_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.role = (mode & 1) ? CA_DIST_INITIATOR : CA_DIST_ACCEPTOR;
    cfg.node_name = "me@host";
    cfg.cookie = "cookie";
    cfg.creation = 42;
    cfg.rand = fixed_rand;
    cfg.alive_continue = (mode >> 2) & 1;
    if (!(mode & 1) && (mode & 2))
        cfg.status_fn = policy;
    seed = 1;
    if (ca__dist_hs_init(&hs, &cfg) != 0)
        abort();

    static unsigned char outbuf[CA_DIST_HS_OUTMIN * 2];
    ca_dist_out out = {outbuf, sizeof outbuf, 0};
    if (ca__dist_hs_start(&hs, &out) != 0)
        abort();

    size_t n = size - 1;
    unsigned char *buf = malloc(n + 5);
    if (buf == NULL)
        return 0;
    size_t len = 0;
    if ((mode & 3) == 3) {
        memcpy(buf, "\0\3sok", 5);
        len = 5;
    }
    memcpy(buf + len, data + 1, n);
    len += n;

    size_t chunk = 1 + ((mode >> 3) & 31), pos = 0;
    while (pos < len && hs.state == CA_DIST_HS_RUNNING) {
        size_t k = len - pos < chunk ? len - pos : chunk, used = 0;
        out.len = 0;
        int rc = ca__dist_hs_feed(&hs, buf + pos, k, &used, &out);
        if (used > k || out.len > out.cap)
            abort();
        if (rc == 0 && hs.state == CA_DIST_HS_FAILED)
            abort();
        if (rc < 0 && hs.state != CA_DIST_HS_FAILED)
            abort();
        if (hs.state == CA_DIST_HS_RUNNING && used != k)
            abort();
        pos += used;
    }
    free(buf);
    return 0;
}
