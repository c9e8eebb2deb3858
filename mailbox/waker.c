/* Cross-thread wake-ups without uv_async_t: see waker.h. */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cactor.h"
#include "waker.h"

static void on_readable(uv_poll_t *h, int status, int events)
{
    ca__waker *w = h->data;
    uint64_t v;
    (void)status;
    (void)events;
    /* Reset the eventfd first, then the flag: a wake after this point
     * writes again, so none is lost. The exchange reads the flag's latest
     * value, which orders every waker's earlier work before cb. */
    while (read(w->fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    atomic_exchange_explicit(&w->pending, 0, memory_order_acq_rel);
    w->cb(w);
}

int ca__waker_init(uv_loop_t *loop, ca__waker *w, ca__waker_cb cb)
{
    w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->fd < 0)
        return CA_EUV;
    atomic_init(&w->pending, 0);
    w->cb = cb;
    w->on_closed = NULL;
    if (uv_poll_init(loop, &w->poll, w->fd)) {
        close(w->fd);
        w->fd = -1;
        return CA_EUV;
    }
    w->poll.data = w;
    if (uv_poll_start(&w->poll, UV_READABLE, on_readable)) {
        uv_close((uv_handle_t *)&w->poll, NULL);
        close(w->fd);
        w->fd = -1;
        return CA_EUV;
    }
    return 0;
}

void ca__waker_wake(ca__waker *w)
{
    /* Always the read-modify-write, never a plain load first: either the
     * loop's reset reads this 1 (and so sees our earlier work), or it came
     * before, this reads 0, and we write. */
    if (atomic_exchange_explicit(&w->pending, 1, memory_order_acq_rel))
        return; /* a wake-up is already on its way */
    uint64_t one = 1;
    while (write(w->fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static void closed(uv_handle_t *h)
{
    ca__waker *w = (ca__waker *)h; /* poll is the first member */
    if (w->on_closed)
        w->on_closed(h);
}

void ca__waker_destroy(ca__waker *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

void ca__waker_close(ca__waker *w, uv_close_cb cb)
{
    w->on_closed = cb;
    uv_close((uv_handle_t *)&w->poll, closed);
}
