/*
 * gen_server interop: answering calls the way gen_server:reply does, and
 * making calls without blocking the actor's scheduler.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int ca_gen_call_match(const ca_msg *m, ca_call_from *from, const char **req, size_t *len)
{
    const char *tag;
    size_t tagl;
    ca_pid pid;
    int rc = ca_match(m, "{'$gen_call', {~p, ~t}, ~t}", &pid, &tag, &tagl, req, len);
    if (rc)
        return rc;
    if (tagl > sizeof from->tag)
        return CA_ENOMATCH; /* not a tag gen makes: a ref or [alias | Ref] */
    memset(from, 0, sizeof *from);
    from->pid = pid;
    memcpy(from->tag, tag, tagl);
    from->tag_len = tagl;
    if (ca_match_term(tag, tagl, "[alias | ~r]", &from->ref) == 0)
        from->alias = 1;
    else if (ca_match_term(tag, tagl, "~r", &from->ref) != 0)
        memset(&from->ref, 0, sizeof from->ref); /* some other tag: echoed as is */
    return 0;
}

int ca_gen_reply(ca_actor *self, const ca_call_from *from, const void *reply, size_t len)
{
    if (!self || !from)
        return CA_EINVAL;
    if (ca__etf_check(reply, len))
        return CA_EBADTERM;
    ei_x_buff x;
    if (ei_x_new_with_version(&x))
        return CA_ENOMEM;
    int rc = ca_fmt(&x, "{~t, ~t}", from->tag, from->tag_len, (const char *)reply, len);
    if (rc == 0)
        rc = from->alias ? ca_send_alias(self, &from->ref, x.buff, (size_t)x.index)
                         : ca_send(self, from->pid, x.buff, (size_t)x.index);
    ei_x_free(&x);
    return rc;
}

int ca_gen_replyf(ca_actor *self, const ca_call_from *from, const char *fmt, ...)
{
    const char *buf;
    size_t len;
    int rc;
    CA__FMT_VARARGS(fmt, buf, len, rc);
    if (rc)
        return rc;
    /* ca_gen_reply formats again into its own buffer, so the TLS one is safe. */
    return ca_gen_reply(self, from, buf, len);
}

int ca_gen_call(ca_actor *self, ca_pid to, const void *req, size_t len, uint64_t timeout_ms,
                ca_call *call)
{
    if (!self || !call)
        return CA_EINVAL;
    if (ca__etf_check(req, len))
        return CA_EBADTERM;
    memset(call, 0, sizeof *call);
    /* The monitor's reference doubles as the call's tag, as in gen:call. */
    int rc = ca_monitor(self, to, &call->ref);
    if (rc)
        return rc;
    ei_x_buff x;
    if (ei_x_new_with_version(&x)) {
        ca_demonitor(self, &call->ref);
        return CA_ENOMEM;
    }
    rc = ca_fmt(&x, "{'$gen_call', {~p, ~r}, ~t}", ca_self(self), &call->ref, (const char *)req,
                len);
    if (rc == 0)
        rc = ca_send(self, to, x.buff, (size_t)x.index);
    ei_x_free(&x);
    if (rc == CA_ESRCH)
        return 0; /* the monitor's DOWN (noproc) answers the call */
    if (rc == 0)
        rc = ca_sendf_after(self, timeout_ms, ca_self(self), &call->timer, "{'$call_timeout', ~r}",
                            &call->ref);
    if (rc) {
        ca_demonitor(self, &call->ref);
        return rc;
    }
    return 0;
}

int ca_gen_call_done(ca_actor *self, const ca_call *call)
{
    if (!self || !call)
        return CA_EINVAL;
    ca_demonitor(self, &call->ref);
    if (call->timer)
        ca_cancel_timer(self, call->timer);
    return 0;
}

/* ---- gen_server callbacks over a plain behaviour ---- */

typedef struct gs_state {
    const ca_gen_server *cb;
    void *state;
} gs_state;

static int gs_init(ca_actor *self, void *arg, void **state)
{
    const ca_gen_server_spec *spec = arg;
    *state = NULL; /* from here on, terminate knows it is not the spec */
    if (!spec || !spec->cb)
        return CA_EINVAL;
    gs_state *g = calloc(1, sizeof *g);
    if (!g)
        return CA_ENOMEM;
    g->cb = spec->cb;
    g->state = spec->arg;
    *state = g;
    return g->cb->init ? g->cb->init(self, spec->arg, &g->state) : 0;
}

static int gs_handle(ca_actor *self, void *state, ca_msg *m)
{
    gs_state *g = state;
    ca_call_from from;
    const char *req;
    size_t len;
    if (ca_gen_call_match(m, &from, &req, &len) == 0) {
        if (!g->cb->handle_call)
            return ca_gen_replyf(self, &from, "{error, not_implemented}");
        return g->cb->handle_call(self, g->state, &from, req, len);
    }
    if (ca_match(m, "{'$gen_cast', ~t}", &req, &len) == 0)
        return g->cb->handle_cast ? g->cb->handle_cast(self, g->state, req, len) : 0;
    return g->cb->handle_info ? g->cb->handle_info(self, g->state, m) : 0;
}

static void gs_terminate(ca_actor *self, void *state, const char *reason, size_t len)
{
    gs_state *g = state;
    /* Before init ran, state is still the spec: nothing of ours to free. */
    if (!g || !ca__actor_inited(self))
        return;
    if (g->cb->terminate)
        g->cb->terminate(self, g->state, reason, len);
    free(g);
}

const ca_behaviour ca_gen_server_behaviour = {"gen_server", gs_init, gs_handle, gs_terminate};
