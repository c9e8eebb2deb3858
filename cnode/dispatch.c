/*
 * Between the wire and the runtime: control messages from a peer become
 * runtime messages and signals for local actors; messages and signals the
 * runtime routes to remote pids become frames. Links and monitors that
 * cross a connection are noted here as they pass, so that a lost
 * connection can fire them (the runtime's own tables belong to scheduler
 * threads and cannot be read from the node's loop).
 *
 * Runs on the node's loop thread only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "services.h"

static const char noproc_bare[] = {119, 6, 'n', 'o', 'p', 'r', 'o', 'c'};
static const char noconn_bare[] = {119, 12,  'n', 'o', 'c', 'o', 'n',
                                   'n', 'e', 'c', 't', 'i', 'o', 'n'};

/* ---- tracking ---- */

static void link_add(ca__conn *c, ca_pid local, ca_pid remote)
{
    for (size_t i = 0; i < c->nlinks; i++)
        if (ca_pid_eq(c->links[i].local, local) && ca_pid_eq(c->links[i].remote, remote))
            return;
    if (c->nlinks == c->caplinks) {
        size_t cap = c->caplinks ? c->caplinks * 2 : 8;
        ca__link *p = realloc(c->links, cap * sizeof *p);
        if (!p)
            return; /* the link then goes unnoticed on connection loss */
        c->links = p;
        c->caplinks = cap;
    }
    c->links[c->nlinks++] = (ca__link){local, remote};
}

static void link_del(ca__conn *c, ca_pid local, ca_pid remote)
{
    for (size_t i = 0; i < c->nlinks; i++) {
        if (ca_pid_eq(c->links[i].local, local) && ca_pid_eq(c->links[i].remote, remote)) {
            c->links[i] = c->links[--c->nlinks];
            return;
        }
    }
}

static void mon_add(ca__conn *c, ca__refmap *map, const ca_ref *ref, ca_pid local, ca_pid remote,
                    const char *name)
{
    size_t nl = name ? strlen(name) : 0;
    ca__dmon *d = malloc(sizeof *d + nl + 1);
    if (d) {
        d->e.ref = *ref;
        d->local = local;
        d->remote = remote;
        memcpy(d->name, name ? name : "", nl + 1);
        if (ca__refmap_put(map, &d->e) == 0)
            return;
        free(d);
    }
    /* Without a record the monitor still works; only a lost connection
     * cannot fire it. */
    ca_log(c->node->rt, CA_LOG_WARNING, "dist: %s: monitor not recorded: %s", c->peer_name,
           ca_strerror(CA_ENOMEM));
}

static ca__dmon *mon_take(ca__refmap *map, const ca_ref *ref)
{
    return (ca__dmon *)ca__refmap_take(map, ref);
}

/* ---- outbound ---- */

/* The sender on the wire. A sender-less signal (exit/2 from outside any
 * actor) still needs a pid: number 0 of this node, which no actor ever
 * has. So does a signal in another node's name (ca_kill takes any `from`),
 * which a peer would refuse as an invalid distribution message; messages
 * keep theirs (a forwarded one's original sender), as Erlang allows. */
static int from_pid(ca__conn *c, const ca_msg *m, erlang_pid *e)
{
    ca_node *n = c->node;
    ca_pid from = m->from;
    if (ca_pid_is_none(from) || (m->kind != CA_MSG_TERM && from.node != n->self_idx))
        from = (ca_pid){n->self_idx, 0, 0, n->creation};
    return ca__to_ei_pid(from, e);
}

/* Reason = the last element of {'EXIT', From, R} or {'DOWN', Ref, process, P, R}. */
static int last_elem(const ca_msg *m, int arity, const char **r, size_t *len)
{
    int idx = 0, ver, a;
    if (ei_decode_version(m->data, &idx, &ver) || ei_decode_tuple_header(m->data, &idx, &a) ||
        a != arity)
        return CA_EBADTERM;
    for (int i = 0; i < arity - 1; i++)
        if (ca__term_skip(m->data, m->len, &idx))
            return CA_EBADTERM;
    if ((size_t)idx >= m->len)
        return CA_EBADTERM;
    *r = m->data + idx;
    *len = m->len - (size_t)idx;
    return 0;
}

static int encode_pid_signal(ca__conn *c, ca__out *o, const erlang_pid *from, const erlang_pid *to)
{
    ca_msg *m = o->m;
    ei_x_buff *x = &c->wq;
    const char *r;
    size_t rl;
    erlang_ref ref;
    ca_dist_proc proc = {0};
    ca__dmon *d;
    switch (m->kind) {
    case CA_MSG_TERM:
        if (c->flags & CA_DFLAG_SEND_SENDER)
            return ca__dist_encode_send_sender(x, from, to, m->data, m->len);
        return ca__dist_encode_send(x, to, m->data, m->len);
    case CA__SIG_LINK:
        link_add(c, m->from, o->to);
        return ca__dist_encode_link(x, from, to);
    case CA__SIG_UNLINK:
        link_del(c, m->from, o->to);
        return ca__dist_encode_unlink_id(x, ++c->next_unlink_id, from, to);
    case CA__SIG_EXIT:
        link_del(c, m->from, o->to);
        /* fall through */
    case CA__SIG_EXIT2:
        if (last_elem(m, 3, &r, &rl))
            return CA_EBADTERM;
        return m->kind == CA__SIG_EXIT ? ca__dist_encode_exit(x, from, to, r, rl)
                                       : ca__dist_encode_exit2(x, from, to, r, rl);
    case CA__SIG_MONITOR:
        mon_add(c, &c->watching, &m->u.ref, m->from, o->to, NULL);
        proc.pid = *to;
        if (ca__to_ei_ref(&m->u.ref, &ref))
            return CA_EINVAL;
        return ca__dist_encode_monitor_p(x, from, &proc, &ref);
    case CA__SIG_DEMONITOR:
        free(mon_take(&c->watching, &m->u.ref));
        proc.pid = *to;
        if (ca__to_ei_ref(&m->u.ref, &ref))
            return CA_EINVAL;
        return ca__dist_encode_demonitor_p(x, from, &proc, &ref);
    case CA__SIG_DOWN:
        if (last_elem(m, 5, &r, &rl) || ca__to_ei_ref(&m->u.ref, &ref))
            return CA_EBADTERM;
        proc.pid = *from;
        if ((d = mon_take(&c->watched, &m->u.ref))) {
            /* monitored by name: the DOWN names it the same way */
            if (d->name[0]) {
                proc.is_name = 1;
                snprintf(proc.name, sizeof proc.name, "%s", d->name);
            }
            free(d);
        }
        return ca__dist_encode_monitor_p_exit(x, &proc, to, &ref, r, rl);
    default:
        return CA_ENOTSUP;
    }
}

/* To {Name, Node}: a message, or a monitor by name (ca_monitor_name). */
static int encode_name_item(ca__conn *c, ca__out *o, const erlang_pid *from)
{
    ca_msg *m = o->m;
    ca_dist_proc proc = {.is_name = 1};
    erlang_ref ref;
    if (m->kind == CA_MSG_TERM)
        return ca__dist_encode_reg_send(&c->wq, from, o->name, m->data, m->len);
    if (strlen(o->name) >= sizeof proc.name || ca__to_ei_ref(&m->u.ref, &ref))
        return CA_EINVAL;
    strcpy(proc.name, o->name);
    switch (m->kind) {
    case CA__SIG_MONITOR:
        mon_add(c, &c->watching, &m->u.ref, m->from, CA_PID_NONE, o->name);
        return ca__dist_encode_monitor_p(&c->wq, from, &proc, &ref);
    case CA__SIG_DEMONITOR:
        free(mon_take(&c->watching, &m->u.ref));
        return ca__dist_encode_demonitor_p(&c->wq, from, &proc, &ref);
    default:
        return CA_EINVAL;
    }
}

static int encode_out(ca__conn *c, ca__out *o)
{
    erlang_pid from, to;
    erlang_ref alias;
    ca_msg *m = o->m;
    if (from_pid(c, m, &from))
        return CA_EINVAL;
    switch (o->how) {
    case CA__OUT_PID:
        if (ca__to_ei_pid(o->to, &to))
            return CA_EINVAL;
        return encode_pid_signal(c, o, &from, &to);
    case CA__OUT_NAME:
        return encode_name_item(c, o, &from);
    case CA__OUT_ALIAS:
        if (!(c->flags & CA_DFLAG_ALIAS))
            return CA_ENOTSUP;
        if (ca__to_ei_ref(&o->alias, &alias))
            return CA_EINVAL;
        return ca__dist_encode_alias_send(&c->wq, &from, &alias, m->data, m->len);
    default:
        return CA_EINVAL;
    }
}

void ca__dispatch_out(ca__conn *c, ca__out *o)
{
    int rc = ca__conn_reserve(c, o->m->len + 2048);
    if (rc == 0)
        rc = encode_out(c, o);
    if (rc) {
        ca_log(c->node->rt, CA_LOG_WARNING, "dist: dropped a frame (kind %u) to %s: %s", o->m->kind,
               c->peer_name, ca_strerror(rc));
        ca__out_free(c->node, o, true);
        return;
    }
    ca_log(c->node->rt, CA_LOG_DEBUG, "dist: -> %s: kind %u how %u, %zu bytes", c->peer_name,
           o->m->kind, o->how, o->m->len);
    c->wq_frames++;
    c->wq_cost += o->cost;
    o->cost = 0; /* given back when the write completes */
    ca__out_free(c->node, o, false);
}

/* A frame we make ourselves, as an answer. */
static void answer_done(ca__conn *c, int rc, const char *what)
{
    if (rc)
        ca_log(c->node->rt, CA_LOG_WARNING, "dist: cannot answer %s to %s: %s", what, c->peer_name,
               ca_strerror(rc));
    else
        c->wq_frames++;
}

/* ---- inbound ---- */

static void bad_payload(ca__conn *c, const char *what)
{
    ca_log(c->node->rt, CA_LOG_WARNING, "dist: dropped %s from %s: malformed payload", what,
           c->peer_name);
}

static int deliver_term(ca__conn *c, ca_pid from, ca_pid to, const ca_dist_span *p)
{
    if (ca__etf_check(p->p, p->len)) {
        bad_payload(c, "a message");
        return 0;
    }
    ca_msg *m = ca__msg_term(from, p->p, p->len);
    if (m)
        ca__route(c->node->rt, m, to); /* to a dead pid: dropped, as in Erlang */
    return 0;
}

/* A signal with a term: data = ca_fmt(fmt, ...). Returns ca__route's code. */
static int vsignal(ca_rt *rt, uint8_t kind, ca_pid from, ca_pid to, const ca_ref *ref,
                   const char *fmt, va_list ap)
{
    const char *buf;
    size_t len;
    int rc = ca__vfmt_tls(fmt, ap, &buf, &len);
    return rc ? rc : ca__signal(rt, kind, from, to, ref, buf, len);
}

static int signal_fmt(ca__conn *c, uint8_t kind, ca_pid from, ca_pid to, const ca_ref *ref,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vsignal(c->node->rt, kind, from, to, ref, fmt, ap);
    va_end(ap);
    return rc;
}

static void signal_rt(ca_rt *rt, uint8_t kind, ca_pid from, ca_pid to, const ca_ref *ref,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsignal(rt, kind, from, to, ref, fmt, ap);
    va_end(ap);
}

/* noconnection: the DOWN of a monitor of `remote` held by `local`, or of
 * {name, peer} for one by name (name not empty); the EXIT of a link. */
static void down_noconn(ca_rt *rt, ca_pid remote, ca_pid local, const ca_ref *ref, const char *name,
                        const char *peer)
{
    if (name[0])
        signal_rt(rt, CA__SIG_DOWN, remote, local, ref, "{'DOWN', ~r, process, {~a, ~a}, ~t}", ref,
                  name, peer, noconn_bare, sizeof noconn_bare);
    else
        signal_rt(rt, CA__SIG_DOWN, remote, local, ref, "{'DOWN', ~r, process, ~p, ~t}", ref,
                  remote, noconn_bare, sizeof noconn_bare);
}

static void exit_noconn(ca_rt *rt, ca_pid remote, ca_pid local)
{
    signal_rt(rt, CA__SIG_EXIT, remote, local, NULL, "{'EXIT', ~p, ~t}", remote, noconn_bare,
              sizeof noconn_bare);
}

void ca__dispatch_dropped(ca_node *n, const ca__out *o)
{
    const ca_msg *m = o->m;
    const char *peer = ca_node_name(o->peer);
    if (!m || !peer)
        return;
    if (m->kind == CA__SIG_MONITOR && o->how == CA__OUT_PID)
        down_noconn(n->rt, o->to, m->from, &m->u.ref, "", peer);
    else if (m->kind == CA__SIG_MONITOR && o->how == CA__OUT_NAME)
        down_noconn(n->rt, CA_PID_NONE, m->from, &m->u.ref, o->name, peer);
    else if (m->kind == CA__SIG_LINK && o->how == CA__OUT_PID)
        exit_noconn(n->rt, o->to, m->from);
}

static int signal_bare(ca__conn *c, uint8_t kind, ca_pid from, ca_pid to, const ca_ref *ref)
{
    return ca__signal(c->node->rt, kind, from, to, ref, NULL, 0);
}

/*
 * What a peer may say, after Erlang (erts_net_message): a link, an exit
 * signal or a monitor comes from one of the peer's own processes and goes
 * to one of ours. Anything else is to Erlang an invalid distribution
 * message, and the connection is dropped; so here: a link or monitor on
 * this connection in some other node's name could not be fired truthfully
 * when the connection goes, and a node that sends one is broken.
 */
static int invalid(ca__conn *c, const char *what)
{
    char why[128];
    snprintf(why, sizeof why, "invalid control message (%s)", what);
    ca__conn_bad(c, why);
    return CA_EPROTO;
}

/* The sender of a signal: 0, or CA_EPROTO (connection closed). */
static int peer_pid(ca__conn *c, const erlang_pid *e, ca_pid *p)
{
    if (ca__from_ei_pid(e, p) || p->node != c->peer)
        return invalid(c, "a signal from a pid not of the sending node");
    return 0;
}

/* The target of a signal: 0; 1 for a pid of an earlier incarnation of
 * this node (gone); or CA_EPROTO (connection closed). */
static int our_pid(ca__conn *c, const erlang_pid *e, ca_pid *p)
{
    ca_rt *rt = c->node->rt;
    if (ca__from_ei_pid(e, p) || p->node != ca_rt_node(rt))
        return invalid(c, "a signal to a pid not of this node");
    return ca_pid_is_local(rt, *p) ? 0 : 1;
}

/* The pids of a link or an exit signal: as our_pid. */
static int pids_of(ca__conn *c, const ca_dist_ctrl *k, ca_pid *from, ca_pid *to)
{
    int rc = peer_pid(c, &k->from.pid, from);
    return rc ? rc : our_pid(c, &k->to.pid, to);
}

/*
 * A frame whose control term is the memo's, byte for byte, goes where the
 * memo's went, without decoding: ETF is read front to back, so the same
 * bytes make the same complete term. The payload is checked as on the
 * long way (deliver_term); one that the long way would refuse as a
 * protocol error (missing, no version byte) takes the long way.
 */
static bool memo_hit(ca__conn *c, const ca_dist_frame *f, ca_dist_span *payload)
{
    const ca__send_memo *m = &c->memo;
    size_t n = m->len;
    if (n == 0 || f->len < n + 2 || (unsigned char)f->data[n] != 131 ||
        memcmp(f->data, m->ctrl, n) != 0)
        return false;
    if (m->by_name && m->reg_gen != ca__registry_gen(c->node->rt))
        return false; /* a name came or went since: look it up again */
    payload->p = f->data + n;
    payload->len = f->len - n;
    return true;
}

static void memo_keep(ca__send_memo *m, const ca_dist_frame *f, const ca_dist_ctrl *k, ca_pid from,
                      ca_pid to, bool by_name, uint64_t reg_gen)
{
    size_t n = (size_t)(k->payload.p - f->data);
    if (n > sizeof m->ctrl) {
        m->len = 0;
        return;
    }
    memcpy(m->ctrl, f->data, n);
    m->len = n;
    m->from = from;
    m->to = to;
    m->by_name = by_name;
    m->reg_gen = reg_gen;
}

static int on_send(ca__conn *c, const ca_dist_frame *f, const ca_dist_ctrl *k)
{
    ca_pid from = CA_PID_NONE, to;
    ca_rt *rt = c->node->rt;
    uint64_t reg_gen = 0;
    bool by_name = false;
    switch (k->op) {
    case CA_DOP_SEND:
    case CA_DOP_SEND_TT:
        if (ca__from_ei_pid(&k->to.pid, &to) || !ca_pid_is_local(rt, to))
            return 0;
        break;
    case CA_DOP_SEND_SENDER:
    case CA_DOP_SEND_SENDER_TT: /* any sender (a forwarded message's), as in Erlang */
        if (ca__from_ei_pid(&k->from.pid, &from) || ca__from_ei_pid(&k->to.pid, &to) ||
            !ca_pid_is_local(rt, to))
            return 0;
        break;
    case CA_DOP_REG_SEND:
    case CA_DOP_REG_SEND_TT:
        by_name = true;
        reg_gen = ca__registry_gen(rt); /* before the lookup, so a change meanwhile shows */
        if (ca__from_ei_pid(&k->from.pid, &from) || ca_whereis(rt, k->to.name, &to))
            return 0; /* no such name: dropped, as in Erlang */
        break;
    default: /* ALIAS_SEND: C actors make no aliases */
        ca_log(rt, CA_LOG_DEBUG, "dist: message to an unknown alias from %s dropped", c->peer_name);
        return 0;
    }
    memo_keep(&c->memo, f, k, from, to, by_name, reg_gen);
    return deliver_term(c, from, to, &k->payload);
}

static int on_link(ca__conn *c, const ca_dist_ctrl *k)
{
    ca_pid from, to;
    erlang_pid ef, et;
    int rc = pids_of(c, k, &from, &to);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        link_add(c, to, from);
        if (signal_bare(c, CA__SIG_LINK, from, to, NULL) != CA_ESRCH)
            return 0;
        link_del(c, to, from);
    }
    /* no such process: the linker gets EXIT noproc, as from Erlang */
    ca__to_ei_pid(to, &ef);
    ca__to_ei_pid(from, &et);
    answer_done(c, ca__dist_encode_exit(&c->wq, &ef, &et, noproc_bare, sizeof noproc_bare),
                "EXIT noproc");
    return 0;
}

static int on_unlink(ca__conn *c, const ca_dist_ctrl *k)
{
    ca_pid from, to;
    int rc = pids_of(c, k, &from, &to);
    if (rc)
        return rc < 0 ? rc : 0;
    link_del(c, to, from);
    signal_bare(c, CA__SIG_UNLINK, from, to, NULL);
    answer_done(c, ca__dist_encode_unlink_id_ack(&c->wq, k->id, &k->to.pid, &k->from.pid),
                "UNLINK_ID_ACK");
    return 0;
}

static int on_exit_sig(ca__conn *c, const ca_dist_ctrl *k, bool link)
{
    ca_pid from, to;
    int rc = pids_of(c, k, &from, &to);
    if (rc)
        return rc < 0 ? rc : 0;
    if (link)
        link_del(c, to, from);
    signal_fmt(c, link ? CA__SIG_EXIT : CA__SIG_EXIT2, from, to, NULL, "{'EXIT', ~p, ~t}", from,
               k->reason.p, k->reason.len);
    return 0;
}

static void answer_noproc(ca__conn *c, const ca_dist_ctrl *k)
{
    answer_done(c,
                ca__dist_encode_monitor_p_exit(&c->wq, &k->to, &k->from.pid, &k->ref, noproc_bare,
                                               sizeof noproc_bare),
                "MONITOR_P_EXIT noproc");
}

static int on_monitor(ca__conn *c, const ca_dist_ctrl *k)
{
    ca_rt *rt = c->node->rt;
    ca_pid from, to;
    ca_ref ref;
    int rc = peer_pid(c, &k->from.pid, &from);
    if (rc || ca__from_ei_ref(&k->ref, &ref))
        return rc;
    if (k->to.is_name)
        rc = ca_whereis(rt, k->to.name, &to) ? 1 : 0;
    else if ((rc = our_pid(c, &k->to.pid, &to)) < 0)
        return rc;
    if (rc == 0) {
        mon_add(c, &c->watched, &ref, to, from, k->to.is_name ? k->to.name : NULL);
        if (signal_bare(c, CA__SIG_MONITOR, from, to, &ref) != CA_ESRCH)
            return 0;
        free(mon_take(&c->watched, &ref));
    }
    answer_noproc(c, k);
    return 0;
}

static int on_demonitor(ca__conn *c, const ca_dist_ctrl *k)
{
    ca_pid from;
    ca_ref ref;
    int rc = peer_pid(c, &k->from.pid, &from);
    if (rc || ca__from_ei_ref(&k->ref, &ref))
        return rc;
    ca__dmon *d = mon_take(&c->watched, &ref);
    if (!d)
        return 0; /* already fired */
    ca_pid local = d->local;
    free(d);
    signal_bare(c, CA__SIG_DEMONITOR, from, local, &ref);
    return 0;
}

static int on_monitor_exit(ca__conn *c, const ca_dist_ctrl *k)
{
    ca_pid who = CA_PID_NONE, to;
    ca_ref ref;
    int rc = our_pid(c, &k->to.pid, &to);
    if (rc || ca__from_ei_ref(&k->ref, &ref))
        return rc < 0 ? rc : 0;
    free(mon_take(&c->watching, &ref));
    if (k->from.is_name) {
        signal_fmt(c, CA__SIG_DOWN, who, to, &ref, "{'DOWN', ~r, process, {~a, ~a}, ~t}", &ref,
                   k->from.name, c->peer_name, k->reason.p, k->reason.len);
        return 0;
    }
    if (ca__from_ei_pid(&k->from.pid, &who))
        return 0;
    signal_fmt(c, CA__SIG_DOWN, who, to, &ref, "{'DOWN', ~r, process, ~p, ~t}", &ref, who,
               k->reason.p, k->reason.len);
    return 0;
}

/* Which of `monitor` and `link` a spawn request's option list holds. */
static void spawn_opts(const ca_dist_span *opts, bool *monitor, bool *link)
{
    int idx = 0, n = 0, type, size;
    char atom[MAXATOMLEN_UTF8];
    *monitor = *link = false;
    if (ei_decode_list_header(opts->p, &idx, &n))
        return;
    for (int i = 0; i < n; i++) {
        if (ei_get_type(opts->p, &idx, &type, &size))
            return;
        int at = idx;
        if (ei_decode_atom(opts->p, &at, atom) == 0) {
            *monitor |= strcmp(atom, "monitor") == 0;
            *link |= strcmp(atom, "link") == 0;
        }
        size_t pos = (size_t)idx;
        if (ca__etf_skip(opts->p, opts->len, &pos))
            return;
        idx = (int)pos;
    }
}

static void spawn_refuse(ca__conn *c, const ca_dist_ctrl *k, const char *why)
{
    ca_dist_proc res = {.is_name = 1};
    snprintf(res.name, sizeof res.name, "%s", why);
    answer_done(c, ca__dist_encode_spawn_reply(&c->wq, &k->ref, &k->from.pid, 0, &res),
                "SPAWN_REPLY");
}

/*
 * spawn_request: the C function runs in a worker actor (services.c:
 * erpc:execute_call/4 for rpc:call and erpc:call, erpc:execute_cast/3 for
 * the casts, M:F(Args) for spawn/4 and its kin; an unknown function exits
 * with undef, as it would in Erlang). The reply is queued before the
 * worker may run, so the caller sees SPAWN_REPLY before the monitor's
 * exit.
 */
static int on_spawn_request(ca__conn *c, const ca_dist_ctrl *k)
{
    ca_rt *rt = c->node->rt;
    ca_pid caller, worker;
    ca_ref ref;
    bool monitor, link;
    if (ca__from_ei_pid(&k->from.pid, &caller) || ca__from_ei_ref(&k->ref, &ref) ||
        ca__spawn_job(rt, k->module, k->function, k->arity, k->payload.p, k->payload.len,
                      &worker)) {
        spawn_refuse(c, k, "badarg");
        return 0;
    }
    spawn_opts(&k->opts, &monitor, &link);
    uint64_t flags = 0;
    if (link && signal_bare(c, CA__SIG_LINK, caller, worker, NULL) == 0) {
        link_add(c, worker, caller);
        flags |= 1;
    }
    if (monitor && signal_bare(c, CA__SIG_MONITOR, caller, worker, &ref) == 0) {
        mon_add(c, &c->watched, &ref, worker, caller, NULL);
        flags |= 2;
    }
    ca_dist_proc res = {.is_name = 0};
    if (ca__to_ei_pid(worker, &res.pid)) {
        spawn_refuse(c, k, "badarg");
        return 0;
    }
    answer_done(c, ca__dist_encode_spawn_reply(&c->wq, &k->ref, &k->from.pid, flags, &res),
                "SPAWN_REPLY");
    ca__spawn_job_run(rt, worker);
    return 0;
}

int ca__dispatch_in(ca__conn *c, const ca_dist_frame *f)
{
    ca_dist_span payload;
    if (memo_hit(c, f, &payload)) {
        c->batch.in++;
        return deliver_term(c, c->memo.from, c->memo.to, &payload);
    }
    ca_dist_ctrl k;
    int rc = ca__dist_ctrl_decode(f->data, f->len, &k);
    if (rc)
        return rc;
    if (k.kind == CA_DIST_CTRL_IGNORED)
        return 0;
    if (k.kind == CA_DIST_CTRL_UNKNOWN) {
        ca_log(c->node->rt, CA_LOG_WARNING, "dist: unknown control op %d from %s skipped", k.op,
               c->peer_name);
        return 0;
    }
    switch (k.op) {
    case CA_DOP_SEND:
    case CA_DOP_SEND_TT:
    case CA_DOP_SEND_SENDER:
    case CA_DOP_SEND_SENDER_TT:
    case CA_DOP_REG_SEND:
    case CA_DOP_REG_SEND_TT:
    case CA_DOP_ALIAS_SEND:
    case CA_DOP_ALIAS_SEND_TT:
        c->batch.in++;
        return on_send(c, f, &k);
    case CA_DOP_LINK:
        return on_link(c, &k);
    case CA_DOP_UNLINK_ID:
        return on_unlink(c, &k);
    case CA_DOP_EXIT:
    case CA_DOP_EXIT_TT:
    case CA_DOP_PAYLOAD_EXIT:
    case CA_DOP_PAYLOAD_EXIT_TT:
        return on_exit_sig(c, &k, true);
    case CA_DOP_EXIT2:
    case CA_DOP_EXIT2_TT:
    case CA_DOP_PAYLOAD_EXIT2:
    case CA_DOP_PAYLOAD_EXIT2_TT:
        return on_exit_sig(c, &k, false);
    case CA_DOP_MONITOR_P:
        return on_monitor(c, &k);
    case CA_DOP_DEMONITOR_P:
        return on_demonitor(c, &k);
    case CA_DOP_MONITOR_P_EXIT:
    case CA_DOP_PAYLOAD_MONITOR_P_EXIT:
        return on_monitor_exit(c, &k);
    case CA_DOP_SPAWN_REQUEST:
    case CA_DOP_SPAWN_REQUEST_TT:
        c->batch.in++; /* a request, as a message is (erpc:call) */
        return on_spawn_request(c, &k);
    default: /* UNLINK_ID_ACK, SPAWN_REPLY: nothing to do */
        return 0;
    }
}

/* ---- connection loss ---- */

void ca__dispatch_lost(ca__conn *c)
{
    size_t nmons = (size_t)c->watching.n + c->watched.n;
    if (c->nlinks || nmons)
        ca_log(c->node->rt, CA_LOG_INFO, "dist: %s lost: %zu link(s), %zu monitor(s) fire",
               c->peer_name, c->nlinks, nmons);
    for (size_t i = 0; i < c->nlinks; i++)
        exit_noconn(c->node->rt, c->links[i].remote, c->links[i].local);
    c->nlinks = 0;
    uint32_t it = 0;
    ca__dmon *d;
    while ((d = (ca__dmon *)ca__refmap_next(&c->watching, &it))) {
        down_noconn(c->node->rt, d->remote, d->local, &d->e.ref, d->name, c->peer_name);
        free(d);
    }
    ca__refmap_clear(&c->watching);
    /* remote watchers: the local actors forget them */
    it = 0;
    while ((d = (ca__dmon *)ca__refmap_next(&c->watched, &it))) {
        signal_bare(c, CA__SIG_DEMONITOR, d->remote, d->local, &d->e.ref);
        free(d);
    }
    ca__refmap_clear(&c->watched);
}
