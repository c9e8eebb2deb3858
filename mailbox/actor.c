/*
 * Actors: the pid table, spawning, turns, signals (links, monitors, exit
 * signals) and exit.
 *
 * The pid table maps a pid's number to a slot holding the actor and a word
 * `serial << 32 | references`. A lookup takes a reference with one CAS if
 * the serial matches and the count is not zero, so a stale pid misses and
 * an actor cannot be freed under a sender. No lock is taken on lookups.
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"

#define REFS(w)   ((uint32_t)((w)&0xffffffffu))
#define SERIAL(w) ((uint32_t)((w) >> 32))

/* ---- pid table ---- */

static ca__slot *slot_at(ca_rt *rt, uint32_t num)
{
    uint32_t c = num >> CA__SLOT_CHUNK_BITS;
    if (c >= CA__SLOT_MAX_CHUNKS)
        return NULL;
    ca__slot *chunk = atomic_load_explicit(&rt->chunks[c], memory_order_acquire);
    return chunk ? &chunk[num & (CA__SLOT_CHUNK - 1)] : NULL;
}

/* A free slot number, its chunk allocated; 0 when out of memory. */
static uint32_t slot_alloc(ca_rt *rt)
{
    uint32_t num = 0;
    pthread_mutex_lock(&rt->slot_lock);
    if (rt->nfree) {
        num = rt->free_slots[--rt->nfree];
        goto out;
    }
    uint32_t c = rt->nslots >> CA__SLOT_CHUNK_BITS;
    if (c >= CA__SLOT_MAX_CHUNKS)
        goto out;
    if (!atomic_load_explicit(&rt->chunks[c], memory_order_relaxed)) {
        ca__slot *chunk = calloc(CA__SLOT_CHUNK, sizeof *chunk);
        if (!chunk)
            goto out;
        for (uint32_t i = 0; i < CA__SLOT_CHUNK; i++)
            atomic_init(&chunk[i].word, (uint64_t)1 << 32);
        atomic_store_explicit(&rt->chunks[c], chunk, memory_order_release);
    }
    num = rt->nslots++;
out:
    pthread_mutex_unlock(&rt->slot_lock);
    return num;
}

static void slot_release(ca_rt *rt, uint32_t num)
{
    pthread_mutex_lock(&rt->slot_lock);
    if (rt->nfree == rt->capfree) {
        uint32_t cap = rt->capfree ? rt->capfree * 2 : 1024;
        uint32_t *p = realloc(rt->free_slots, cap * sizeof *p);
        if (!p) {
            /* The slot is lost for reuse; its serial already moved on. */
            pthread_mutex_unlock(&rt->slot_lock);
            return;
        }
        rt->free_slots = p;
        rt->capfree = cap;
    }
    rt->free_slots[rt->nfree++] = num;
    pthread_mutex_unlock(&rt->slot_lock);
}

ca_actor *ca__actor_get(ca_rt *rt, ca_pid pid)
{
    if (pid.node != rt->node || pid.creation != rt->creation)
        return NULL;
    ca__slot *s = slot_at(rt, pid.num);
    if (!s)
        return NULL;
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    for (;;) {
        if (SERIAL(w) != pid.serial || REFS(w) == 0)
            return NULL;
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    return atomic_load_explicit(&s->actor, memory_order_acquire);
}

void ca__actor_ref(ca_actor *a)
{
    atomic_fetch_add_explicit(&a->slot->word, 1, memory_order_relaxed);
}

static void actor_free(ca_actor *a);

void ca__actor_unref(ca_actor *a)
{
    uint64_t w = atomic_fetch_sub_explicit(&a->slot->word, 1, memory_order_acq_rel) - 1;
    if (REFS(w) == 0)
        actor_free(a);
}

/* ---- small helpers ---- */

static ca__actor_ext *ext_of(ca_actor *a)
{
    if (!a->ext)
        a->ext = calloc(1, sizeof *a->ext);
    return a->ext;
}

/* An actor's links: an open-addressing set of pids (linear probing,
 * deletion by backward shift, load at most 1/2), since a supervisor may be
 * linked to 100,000 children and every exit removes one. Empty slots have
 * node 0, which no pid has. */
static uint32_t pid_hash(ca_pid p)
{
    uint64_t h = ((uint64_t)p.num << 32 | p.serial) * 0x9e3779b97f4a7c15ull;
    h ^= ((uint64_t)p.node << 32 | p.creation) * 0xc2b2ae3d27d4eb4full;
    return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

static int links_find(ca__actor_ext *x, ca_pid p)
{
    if (!x || !x->caplinks)
        return -1;
    uint32_t mask = x->caplinks - 1;
    for (uint32_t i = pid_hash(p) & mask; x->links[i].node; i = (i + 1) & mask)
        if (ca_pid_eq(x->links[i], p))
            return (int)i;
    return -1;
}

static void links_put(ca_pid *slots, uint32_t cap, ca_pid p)
{
    uint32_t i = pid_hash(p) & (cap - 1);
    while (slots[i].node)
        i = (i + 1) & (cap - 1);
    slots[i] = p;
}

static int links_add(ca_actor *a, ca_pid p)
{
    ca__actor_ext *x = ext_of(a);
    if (!x)
        return CA_ENOMEM;
    if (links_find(x, p) >= 0)
        return 0;
    if ((x->nlinks + 1) * 2 > x->caplinks) {
        uint32_t cap = x->caplinks ? x->caplinks * 2 : 8;
        ca_pid *n = calloc(cap, sizeof *n);
        if (!n)
            return CA_ENOMEM;
        for (uint32_t i = 0; i < x->caplinks; i++)
            if (x->links[i].node)
                links_put(n, cap, x->links[i]);
        free(x->links);
        x->links = n;
        x->caplinks = cap;
    }
    links_put(x->links, x->caplinks, p);
    x->nlinks++;
    return 0;
}

static bool links_remove(ca_actor *a, ca_pid p)
{
    ca__actor_ext *x = a->ext;
    int found = links_find(x, p);
    if (found < 0)
        return false;
    uint32_t mask = x->caplinks - 1, i = (uint32_t)found, j = i;
    /* Backward shift: move later entries of the probe run into the hole. */
    for (;;) {
        j = (j + 1) & mask;
        if (!x->links[j].node)
            break;
        if (ca__probe_stays(i, j, pid_hash(x->links[j]) & mask))
            continue;
        x->links[i] = x->links[j];
        i = j;
    }
    x->links[i] = CA_PID_NONE;
    x->nlinks--;
    return true;
}

static ca__mon *mon_take(ca__refmap *map, const ca_ref *ref)
{
    return (ca__mon *)ca__refmap_take(map, ref);
}

static int mon_add(ca__refmap *map, const ca_ref *ref, ca_pid pid, uint32_t node, const char *name,
                   size_t nlen)
{
    ca__mon *m = malloc(sizeof *m + nlen + 1);
    if (!m)
        return CA_ENOMEM;
    m->e.ref = *ref;
    m->pid = pid;
    m->node = node;
    memcpy(m->name, name, nlen);
    m->name[nlen] = 0;
    if (ca__refmap_put(map, &m->e)) {
        free(m);
        return CA_ENOMEM;
    }
    return 0;
}

/* A signal to the process registered as `name` on another node. */
static int name_signal(ca_rt *rt, uint8_t kind, ca_pid from, const char *name, uint32_t node,
                       const ca_ref *ref)
{
    if (!rt->dist)
        return CA_ENOTCONN;
    ca_msg *m = ca__msg_new(kind, from, 0);
    if (!m)
        return CA_ENOMEM;
    m->u.ref = *ref;
    return rt->dist->send_name(rt->dist_ctx, m, name, node);
}

/* Encode {'EXIT', From, Reason} or {'DOWN', Ref, process, Pid, Reason}. */
static int encode_exit(ei_x_buff *x, ca_pid from, const char *reason, size_t len)
{
    if (ei_x_new_with_version(x))
        return CA_ENOMEM;
    /* exit/2 from outside any actor has no sender pid: say undefined. */
    int rc = ca_pid_is_none(from) ? ca_fmt(x, "{'EXIT', undefined, ~t}", reason, len)
                                  : ca_fmt(x, "{'EXIT', ~p, ~t}", from, reason, len);
    if (rc) {
        ei_x_free(x);
        return CA_ENOMEM;
    }
    return 0;
}

static void send_term_signal(ca_rt *rt, uint8_t kind, ca_pid from, ca_pid to, const ca_ref *ref,
                             const ei_x_buff *x)
{
    ca__signal(rt, kind, from, to, ref, x->buff, (size_t)x->index);
}

/* {'DOWN', Ref, process, Object, Reason} from `from` to `to`. Object is
 * `from`, or {Name, Node} for a monitor by name (name not empty; node:
 * the name's node), as Erlang's. */
static void send_down(ca_rt *rt, ca_pid from, ca_pid to, const ca_ref *ref, const char *name,
                      uint32_t node, const char *reason, size_t len)
{
    ei_x_buff x;
    const char *nn = ca_node_name(node);
    if (ei_x_new_with_version(&x))
        return;
    int rc = name[0] ? ca_fmt(&x, "{'DOWN', ~r, process, {~a, ~a}, ~t}", ref, name,
                              nn ? nn : "nonode@nohost", reason, len)
                     : ca_fmt(&x, "{'DOWN', ~r, process, ~p, ~t}", ref, from, reason, len);
    if (rc == 0)
        send_term_signal(rt, CA__SIG_DOWN, from, to, ref, &x);
    ei_x_free(&x);
}

static const char noproc_reason[] = {(char)131, 119, 6, 'n', 'o', 'p', 'r', 'o', 'c'};
static const char enomem_reason[] = {(char)131, 119, 6, 'e', 'n', 'o', 'm', 'e', 'm'};

static void info_reply(ca_rt *rt, ca_actor *a, ca_pid self, const ca_msg *m);

/* A signal that reached a dying or dead actor: answer what needs an
 * answer, with the exit reason while the actor is exiting (the link or
 * monitor was made before it died), else noproc. */
static void bounce(ca_rt *rt, ca_pid dead, ca_msg *m, const char *reason, size_t len)
{
    ei_x_buff x;
    if (!reason) {
        reason = noproc_reason;
        len = sizeof noproc_reason;
    }
    if (m->kind == CA__SIG_LINK) {
        if (encode_exit(&x, dead, reason, len) == 0) {
            send_term_signal(rt, CA__SIG_EXIT, dead, m->from, NULL, &x);
            ei_x_free(&x);
        }
    } else if (m->kind == CA__SIG_MONITOR) {
        char name[CA_MAXATOM] = "";
        if (m->len < sizeof name) /* by name: the name as data */
            memcpy(name, m->data, m->len);
        send_down(rt, dead, m->from, &m->u.ref, name, dead.node, reason, len);
    } else if (m->kind == CA__SIG_INFO) {
        info_reply(rt, NULL, dead, m);
    }
}

/* Pop everything left in a dead actor's mailbox; returns how many. */
static uint32_t drain_dead(ca_actor *a, bool answer)
{
    ca__mpsc_node *n;
    uint32_t k = 0;
    while ((n = ca__mpsc_pop(&a->mbox)) != NULL) {
        ca_msg *m = ca__container_of(n, ca_msg, node);
        if (answer)
            bounce(a->sched->rt, a->pid, m, a->reason, a->reason_len);
        ca__msg_free(m);
        k++;
    }
    return k;
}

static void actor_free(ca_actor *a)
{
    ca_rt *rt = a->sched->rt;
    ca__slot *s = a->slot;
    drain_dead(a, !atomic_load(&rt->closing));
    uint32_t num = a->pid.num;
    uint64_t next = (uint64_t)(a->pid.serial + 1u) << 32;
    atomic_store_explicit(&s->actor, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->word, next, memory_order_release);
    free(a);
    slot_release(rt, num);
}

/* ---- spawning ---- */

void ca_spawn_opts_init(ca_spawn_opts *o)
{
    memset(o, 0, sizeof *o);
    o->sched = CA_SCHED_DEFAULT;
}

static ca__sched *placement(ca_rt *rt, ca_actor *parent, const ca_spawn_opts *o)
{
    if (o && o->sched >= 0)
        return &rt->sched[(unsigned)o->sched % rt->nsched];
    if (parent && !(o && o->sched == CA_SCHED_SPREAD))
        return parent->sched;
    unsigned i = atomic_fetch_add_explicit(&rt->rr, 1, memory_order_relaxed);
    return &rt->sched[i % rt->nsched];
}

static int list_insert(ca_actor *a)
{
    ca__sched *s = a->sched;
    pthread_mutex_lock(&s->lock);
    if (s->closed) {
        pthread_mutex_unlock(&s->lock);
        return CA_ECLOSED;
    }
    a->prev = NULL;
    a->next = s->actors;
    if (s->actors)
        s->actors->prev = a;
    s->actors = a;
    s->nactors++;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int spawn(ca_rt *rt, ca_actor *parent, const ca_behaviour *b, void *arg,
                 const ca_spawn_opts *o, ca_pid *out)
{
    int rc;
    if (!rt || !b || !b->handle)
        return CA_EINVAL;
    if (o && o->name && !ca__name_valid(o->name))
        return CA_EBADNAME;
    if (atomic_load(&rt->closing))
        return CA_ECLOSED;

    ca_actor *a = calloc(1, sizeof *a);
    ca_msg *init = ca__msg_new(CA__SIG_INIT, CA_PID_NONE, 0);
    if (!a || !init) {
        rc = CA_ENOMEM;
        goto fail_alloc;
    }
    uint32_t num = slot_alloc(rt);
    if (!num) {
        rc = CA_ENOMEM;
        goto fail_alloc;
    }
    ca__mpsc_init(&a->mbox);
    a->sched = placement(rt, parent, o);
    a->slot = slot_at(rt, num);
    a->b = b;
    a->state = arg;
    a->batch = (o && o->batch) ? o->batch : rt->batch;
    a->cap = o ? o->mailbox_cap : 0;
    a->overflow = o ? (uint8_t)o->overflow : 0;
    if (o && (o->flags & CA_SPAWN_TRAP_EXIT))
        a->flags |= CA__A_TRAP_EXIT;
    uint64_t w = atomic_load_explicit(&a->slot->word, memory_order_relaxed);
    a->pid = (ca_pid){rt->node, num, SERIAL(w), rt->creation};
    if (parent && o && (o->flags & CA_SPAWN_LINK)) {
        if ((rc = links_add(a, parent->pid)) || (rc = links_add(parent, a->pid)))
            goto fail_slot;
    }
    if ((rc = list_insert(a)))
        goto fail_link;
    /* Publish: from here on lookups find it. */
    atomic_store_explicit(&a->slot->actor, a, memory_order_relaxed);
    atomic_store_explicit(&a->slot->word, w | 1, memory_order_release);
    if (o && o->name && (rc = ca__register_actor(rt, o->name, a))) {
        /* Nobody has seen it run: take it back quietly. */
        atomic_store(&a->dead, 1);
        ca__actor_list_remove(a);
        if (parent && o && (o->flags & CA_SPAWN_LINK))
            links_remove(parent, a->pid);
        ca__msg_free(init);
        free(a->ext ? a->ext->links : NULL);
        free(a->ext);
        a->ext = NULL;
        ca__actor_unref(a);
        return rc;
    }
    atomic_fetch_add_explicit(&rt->st_alive, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rt->st_spawned, 1, memory_order_relaxed);
    if (out)
        *out = a->pid;
    init->u.p.ptr = arg;
    ca__deliver(a, init);
    return 0;

fail_link:
    if (parent && o && (o->flags & CA_SPAWN_LINK))
        links_remove(parent, a->pid);
fail_slot:
    atomic_store_explicit(&a->slot->word, (uint64_t)(SERIAL(w) + 1u) << 32, memory_order_release);
    slot_release(rt, num);
fail_alloc:
    if (a) {
        free(a->ext ? a->ext->links : NULL);
        free(a->ext);
    }
    free(a);
    free(init);
    return rc;
}

int ca_spawn(ca_rt *rt, const ca_behaviour *b, void *arg, const ca_spawn_opts *opts, ca_pid *pid)
{
    return spawn(rt, NULL, b, arg, opts, pid);
}

int ca_spawn_child(ca_actor *self, const ca_behaviour *b, void *arg, const ca_spawn_opts *opts,
                   ca_pid *pid)
{
    if (!self)
        return CA_EINVAL;
    return spawn(self->sched->rt, self, b, arg, opts, pid);
}

/* ---- accessors ---- */

ca_pid ca_self(const ca_actor *self)
{
    return self->pid;
}

ca_rt *ca_actor_rt(const ca_actor *self)
{
    return self->sched->rt;
}

unsigned ca_actor_sched(const ca_actor *self)
{
    return self->sched->idx;
}

int ca_trap_exit(ca_actor *self, int on)
{
    int old = (self->flags & CA__A_TRAP_EXIT) != 0;
    if (on)
        self->flags |= CA__A_TRAP_EXIT;
    else
        self->flags &= (uint8_t)~CA__A_TRAP_EXIT;
    return old;
}

int ca_actor_stats_get(ca_rt *rt, ca_pid pid, ca_actor_stats *st)
{
    ca_actor *a = ca__actor_get(rt, pid);
    if (!a)
        return CA_ESRCH;
    int rc = 0;
    if (atomic_load(&a->dead)) {
        rc = CA_ESRCH;
    } else {
        st->queue_len = ca__queued(a, atomic_load_explicit(&a->count, memory_order_relaxed));
        st->handled = atomic_load_explicit(&a->handled, memory_order_relaxed);
        st->overflows = atomic_load_explicit(&a->overflows, memory_order_relaxed);
        st->mailbox_cap = a->cap;
        st->sched = a->sched->idx;
    }
    ca__actor_unref(a);
    return rc;
}

int ca_is_alive(ca_rt *rt, ca_pid pid)
{
    ca_actor *a = ca__actor_get(rt, pid);
    if (!a)
        return 0;
    int alive = !atomic_load(&a->dead);
    ca__actor_unref(a);
    return alive;
}

/* ---- exit reasons ---- */

static int set_reason(ca_actor *a, const char *etf, size_t len)
{
    if (a->reason)
        return 0; /* the first reason wins */
    if (len > UINT32_MAX)
        return CA_ETOOBIG;
    a->reason = malloc(len);
    if (!a->reason)
        return CA_ENOMEM;
    memcpy(a->reason, etf, len);
    a->reason_len = (uint32_t)len;
    a->flags |= CA__A_EXITING;
    return 0;
}

int ca_exit_term(ca_actor *self, const char *reason, size_t len)
{
    if (!self)
        return CA_EINVAL;
    if (ca__etf_check(reason, len))
        return CA_EBADTERM;
    return set_reason(self, reason, len);
}

int ca_exit(ca_actor *self, const char *fmt, ...)
{
    const char *buf;
    size_t len;
    int rc;
    CA__FMT_VARARGS(fmt, buf, len, rc);
    if (rc)
        return rc;
    return set_reason(self, buf, len);
}

void ca__set_reason_fmt(ca_actor *a, const char *fmt, ...)
{
    const char *buf;
    size_t len;
    int rc;
    CA__FMT_VARARGS(fmt, buf, len, rc);
    if (rc == 0)
        rc = set_reason(a, buf, len);
    if (rc) /* out of memory formatting or copying: still exit, saying so */
        set_reason(a, enomem_reason, sizeof enomem_reason);
}

/* ---- exit ---- */

static void notify_links(ca_actor *a, const char *reason, size_t len)
{
    ca__actor_ext *x = a->ext;
    ca_rt *rt = a->sched->rt;
    ei_x_buff buf;
    if (!x || !x->nlinks || encode_exit(&buf, a->pid, reason, len))
        return;
    for (uint32_t i = 0; i < x->caplinks; i++)
        if (x->links[i].node)
            send_term_signal(rt, CA__SIG_EXIT, a->pid, x->links[i], NULL, &buf);
    ei_x_free(&buf);
    free(x->links);
    x->links = NULL;
    x->nlinks = x->caplinks = 0;
}

/* A monitor's target forgets it: a pid, or a name on another node. */
static int unwatch(ca_rt *rt, ca_pid self, const ca__mon *m)
{
    if (!ca_pid_is_none(m->pid))
        return ca__signal(rt, CA__SIG_DEMONITOR, self, m->pid, &m->e.ref, NULL, 0);
    if (m->node == rt->node || !rt->dist)
        return 0; /* nothing was registered here: nobody to tell */
    return name_signal(rt, CA__SIG_DEMONITOR, self, m->name, m->node, &m->e.ref);
}

static void notify_monitors(ca_actor *a, const char *reason, size_t len)
{
    ca__actor_ext *x = a->ext;
    ca_rt *rt = a->sched->rt;
    if (!x)
        return;
    uint32_t it = 0;
    ca__mon *m;
    while ((m = (ca__mon *)ca__refmap_next(&x->watchers, &it))) {
        send_down(rt, a->pid, m->pid, &m->e.ref, m->name, a->pid.node, reason, len);
        free(m);
    }
    ca__refmap_clear(&x->watchers);
    /* Monitors we hold: let the targets forget us. */
    it = 0;
    while ((m = (ca__mon *)ca__refmap_next(&x->mons, &it))) {
        unwatch(rt, a->pid, m);
        free(m);
    }
    ca__refmap_clear(&x->mons);
}

/* Runs on the owner thread. Returns how many messages it drained; only a
 * turn may drain, since only a turn accounts for popped messages. */
static uint32_t do_exit(ca_actor *a, bool drain)
{
    ca_rt *rt = a->sched->rt;
    if (a->flags & CA__A_EXITED)
        return 0;
    if (!a->reason)
        ca__set_reason_fmt(a, "normal");
    a->flags |= CA__A_EXITED;
    atomic_store(&a->dead, 1); /* seq_cst: see ca__registry_drop */
    if (a->b->terminate)
        a->b->terminate(a, a->state, a->reason, a->reason_len);
    a->state = NULL;
    ca__registry_drop(rt, a);
    ca__timers_cancel_all(a);
    notify_links(a, a->reason, a->reason_len);
    notify_monitors(a, a->reason, a->reason_len);
    if (a->ext) {
        free(a->ext->links);
        free(a->ext);
        a->ext = NULL;
    }
    uint32_t k = drain ? drain_dead(a, true) : 0;
    free(a->reason);
    a->reason = NULL;
    ca__actor_list_remove(a);
    atomic_fetch_sub_explicit(&rt->st_alive, 1, memory_order_relaxed);
    return k;
}

/* ---- signals ---- */

int ca__is_atom(const char *buf, size_t len, const char *atom)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t v = len && p[0] == 131, k = ca__atom_is(p + v, len - v, atom);
    return k && k == len - v;
}

/* The Reason of {'EXIT', From, Reason} (no version byte in *reason). */
int ca__reason_of_exit(const ca_msg *m, const char **reason, size_t *len)
{
    int idx = 0, ver, arity;
    const char *b = m->data;
    if (ei_decode_version(b, &idx, &ver) || ei_decode_tuple_header(b, &idx, &arity) || arity != 3 ||
        ca__term_skip(b, m->len, &idx) || ca__term_skip(b, m->len, &idx))
        return CA_EBADTERM;
    int start = idx;
    if (ca__term_skip(b, m->len, &idx))
        return CA_EBADTERM;
    *reason = b + start;
    *len = (size_t)(idx - start);
    return 0;
}

/* Die with the reason carried by an exit signal (re-encoded with a
 * version byte). */
static void exit_with_signal_reason(ca_actor *a, const char *r, size_t rlen)
{
    ca__set_reason_fmt(a, "~t", r, rlen);
}

/* Returns 1 when the message must go to the behaviour as a plain term. */
static int on_exit_signal(ca_actor *a, ca_msg *m)
{
    const char *r;
    size_t rlen;
    bool link = m->kind == CA__SIG_EXIT;
    if (link && !links_remove(a, m->from))
        return 0; /* a link we already dropped */
    if (ca__reason_of_exit(m, &r, &rlen))
        return 0;
    if (!link && ca__is_atom(r, rlen, "kill")) {
        ca__set_reason_fmt(a, "killed");
        return 0;
    }
    if (a->flags & CA__A_TRAP_EXIT)
        return 1;
    if (ca__is_atom(r, rlen, "normal")) {
        if (!link && ca_pid_eq(m->from, a->pid))
            ca__set_reason_fmt(a, "normal");
        return 0;
    }
    exit_with_signal_reason(a, r, rlen);
    return 0;
}

/* ---- process_info (CA__SIG_INFO), answered in the actor's own turn ---- */

/* registered_name first: process_info/1 leaves it out when there is none */
static const char *const INFO_ITEMS[] = {"registered_name", "message_queue_len", "links",
                                         "monitors",        "monitored_by",      "trap_exit"};
#define N_INFO_ITEMS (sizeof INFO_ITEMS / sizeof INFO_ITEMS[0])

int ca__info_item_known(const char *item)
{
    for (size_t i = 0; i < N_INFO_ITEMS; i++)
        if (strcmp(item, INFO_ITEMS[i]) == 0)
            return 1;
    return 0;
}

/* {links, [Pid]}, {monitored_by, [Pid]} or {monitors, [{process, Pid |
 * {Name, Node}}]}: from the actor's tables, which only its thread reads. */
static int info_list(ca_actor *a, const char *item, ei_x_buff *x)
{
    ca__actor_ext *e = a->ext;
    int links = strcmp(item, "links") == 0, mons = strcmp(item, "monitors") == 0;
    const ca__refmap *map = !e ? NULL : mons ? &e->mons : &e->watchers;
    uint32_t n = !e ? 0 : links ? e->nlinks : map->n, it = 0;
    int rc = ei_x_encode_tuple_header(x, 2) || ei_x_encode_atom(x, item) ? CA_ENOMEM : 0;
    if (rc == 0 && n && ei_x_encode_list_header(x, n))
        rc = CA_ENOMEM;
    for (uint32_t i = 0; rc == 0 && links && e && i < e->caplinks; i++)
        if (e->links[i].node)
            rc = ca_fmt(x, "~p", e->links[i]);
    for (ca__refent *r; rc == 0 && !links && map && (r = ca__refmap_next(map, &it));) {
        const ca__mon *mon = (const ca__mon *)r;
        const char *node = ca_node_name(mon->node);
        if (!mons)
            rc = ca_fmt(x, "~p", mon->pid);
        else if (mon->name[0])
            rc = ca_fmt(x, "{process, {~a, ~a}}", mon->name, node ? node : "nonode@nohost");
        else
            rc = ca_fmt(x, "{process, ~p}", mon->pid);
    }
    if (rc == 0 && ei_x_encode_empty_list(x))
        rc = CA_ENOMEM;
    return rc;
}

/* One {Item, Value}. `name` is the registered name, or "". */
static int info_item(ca_actor *a, const char *item, const char *name, ei_x_buff *x)
{
    if (strcmp(item, "registered_name") == 0)
        return name[0] ? ca_fmt(x, "{registered_name, ~a}", name)
                       : ca_fmt(x, "{registered_name, []}");
    if (strcmp(item, "message_queue_len") == 0) { /* what waits behind this request */
        uint32_t q = ca__queued(a, atomic_load(&a->count));
        return ca_fmt(x, "{message_queue_len, ~u}", (unsigned long)(q ? q - 1 : 0));
    }
    if (strcmp(item, "trap_exit") == 0)
        return ca_fmt(x, (a->flags & CA__A_TRAP_EXIT) ? "{trap_exit, true}" : "{trap_exit, false}");
    if (!ca__info_item_known(item))
        return CA_EINVAL; /* the asker checks: cannot be */
    return info_list(a, item, x);
}

/* The answer to process_info: {Item, Value} for an atom, a list of them
 * for a list; for '$all' every item, registered_name only if there is
 * one, as erlang:process_info/1 gives them. */
static int info_answer(ca_actor *a, const ca_msg *m, ei_x_buff *x)
{
    char item[CA_MAXATOM], name[CA_MAXATOM];
    int idx = 0, n, rc = 0;
    ca__name_of(a->sched->rt, a->pid, name, sizeof name);
    if (ca__is_atom(m->data, m->len, "$all")) {
        if (ei_x_encode_list_header(x, (long)N_INFO_ITEMS - !name[0]))
            return CA_ENOMEM;
        for (size_t i = !name[0]; rc == 0 && i < N_INFO_ITEMS; i++)
            rc = info_item(a, INFO_ITEMS[i], name, x);
    } else if (ei_decode_atom_as(m->data, &idx, item, sizeof item, ERLANG_UTF8, NULL, NULL) == 0) {
        return info_item(a, item, name, x);
    } else if (ei_decode_list_header(m->data, &idx, &n) == 0) {
        if (n && ei_x_encode_list_header(x, n))
            return CA_ENOMEM;
        for (int i = 0; rc == 0 && i < n; i++)
            rc = ei_decode_atom_as(m->data, &idx, item, sizeof item, ERLANG_UTF8, NULL, NULL)
                     ? CA_EBADTERM
                     : info_item(a, item, name, x);
    } else {
        return CA_EBADTERM;
    }
    return rc == 0 && ei_x_encode_empty_list(x) ? CA_ENOMEM : rc;
}

/* Answer {Ref, Info} to the asker, or {Ref, undefined} for a dead actor. */
static void info_reply(ca_rt *rt, ca_actor *a, ca_pid self, const ca_msg *m)
{
    ei_x_buff x;
    if (ei_x_new_with_version(&x) || ei_x_encode_tuple_header(&x, 2) ||
        ca_fmt(&x, "~r", &m->u.ref)) {
        ei_x_free(&x);
        return;
    }
    int rc = a ? info_answer(a, m, &x) : ca_fmt(&x, "undefined");
    ca_msg *r = rc == 0 ? ca__msg_term(self, x.buff, (size_t)x.index) : NULL;
    if (r)
        ca__route(rt, r, m->from);
    ei_x_free(&x);
}

/* Returns 1 when `m` is to be handled by the behaviour. */
static int on_signal(ca_actor *a, ca_msg *m)
{
    ca__mon *mon;
    switch (m->kind) {
    case CA__SIG_INIT: {
        void *st = m->u.p.ptr;
        int rc = a->b->init ? a->b->init(a, m->u.p.ptr, &st) : 0;
        a->state = st;
        a->flags |= CA__A_INIT_DONE;
        if (rc)
            ca__set_reason_fmt(a, "{init_failed, ~a}", ca_errname(rc));
        return 0;
    }
    case CA__SIG_LINK:
        if (links_add(a, m->from))
            ca__set_reason_fmt(a, "{error, enomem}");
        return 0;
    case CA__SIG_UNLINK:
        links_remove(a, m->from);
        return 0;
    case CA__SIG_EXIT:
    case CA__SIG_EXIT2:
        return on_exit_signal(a, m);
    case CA__SIG_MONITOR: /* by name (ca_monitor_name): the name as data */
        if (!ext_of(a) ||
            mon_add(&a->ext->watchers, &m->u.ref, m->from, a->pid.node,
                    m->len < CA_MAXATOM ? m->data : "", m->len < CA_MAXATOM ? m->len : 0))
            ca__set_reason_fmt(a, "{error, enomem}");
        return 0;
    case CA__SIG_DEMONITOR:
        if (a->ext && (mon = mon_take(&a->ext->watchers, &m->u.ref)))
            free(mon);
        return 0;
    case CA__SIG_DOWN:
        if (!a->ext || !(mon = mon_take(&a->ext->mons, &m->u.ref)))
            return 0; /* demonitored meanwhile */
        free(mon);
        return 1;
    case CA__SIG_INFO:
        info_reply(a->sched->rt, a, a->pid, m);
        return 0;
    default:
        return 1;
    }
}

static void dispatch(ca_actor *a, ca_msg *m)
{
    if (m->kind >= CA__SIG_INIT && !on_signal(a, m))
        return;
    if (m->kind >= CA__SIG_INIT)
        m->kind = CA_MSG_TERM; /* EXIT or DOWN, delivered as a term */
    int rc = a->b->handle(a, a->state, m);
    atomic_store_explicit(&a->handled, atomic_load_explicit(&a->handled, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (rc < 0)
        ca__set_reason_fmt(a, "{error, ~a}", ca_errname(rc));
}

/* Under drop-oldest, a message popped while the queue holds more than cap
 * others is the oldest surplus: count it and skip it. */
static bool drop_surplus(ca_actor *a, uint32_t popped)
{
    if (a->overflow != CA_OVERFLOW_DROP_OLDEST || !a->cap)
        return false;
    uint32_t queued = atomic_load_explicit(&a->count, memory_order_acquire) - popped;
    if (queued < a->cap)
        return false;
    atomic_fetch_add_explicit(&a->overflows, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->sched->rt->st_overflows, 1, memory_order_relaxed);
    return true;
}

/* Handle up to a batch; true if the actor exited during this turn. */
static bool turn(ca_actor *a, uint32_t *popped)
{
    uint32_t n = 0;
    bool died = false;
    while (n < a->batch) {
        if (atomic_load_explicit(&a->overflow_exit, memory_order_relaxed)) {
            ca__set_reason_fmt(a, "mailbox_overflow");
            n += do_exit(a, true);
            died = true;
            break;
        }
        ca__mpsc_node *node = ca__mpsc_pop(&a->mbox);
        if (!node)
            break; /* empty, or a sender is mid-push: count says which */
        n++;
        ca_msg *m = ca__container_of(node, ca_msg, node);
        if (m->kind < CA__SIG_INIT && drop_surplus(a, n)) {
            ca__msg_free(m);
            continue;
        }
        a->cur = m;
        dispatch(a, m);
        if (a->cur) /* not kept (ca_msg_keep) nor forwarded (ca_forward) */
            ca__msg_free(m);
        a->cur = NULL;
        atomic_store_explicit(&a->done, n, memory_order_relaxed);
        if (a->flags & CA__A_EXITING) {
            n += do_exit(a, true);
            died = true;
            break;
        }
    }
    *popped = n;
    return died;
}

bool ca__run_actor(ca_actor *a)
{
    uint32_t n = 0;
    bool died = false;
    if (atomic_load_explicit(&a->dead, memory_order_acquire))
        n = drain_dead(a, true);
    else
        died = turn(a, &n);
    uint32_t left = atomic_fetch_sub_explicit(&a->count, n, memory_order_acq_rel) - n;
    atomic_store_explicit(&a->done, 0, memory_order_relaxed);
    if (died)
        ca__actor_unref(a); /* the actor's own reference; the queue's remains */
    if (left > 0)
        return true; /* still runnable: keep the run-queue reference */
    ca__actor_unref(a);
    return false;
}

/* Shutdown: every actor of `s` exits with `reason`. */
void ca__exit_all(ca__sched *s, const char *reason, size_t len)
{
    pthread_mutex_lock(&s->lock);
    s->closed = true;
    pthread_mutex_unlock(&s->lock);
    for (;;) {
        pthread_mutex_lock(&s->lock);
        ca_actor *a = s->actors;
        pthread_mutex_unlock(&s->lock);
        if (!a)
            break;
        free(a->reason);
        a->reason = NULL;
        set_reason(a, reason, len);
        /* Queued messages stay for the dead actor's next turn, which its
         * run-queue membership (count > 0) guarantees. */
        do_exit(a, false);
        ca__actor_unref(a); /* the actor's own reference */
    }
}

/* After every thread has stopped: free what is left (should be nothing). */
void ca__slots_free(ca_rt *rt)
{
    for (uint32_t c = 0; c < CA__SLOT_MAX_CHUNKS; c++) {
        ca__slot *chunk = atomic_load(&rt->chunks[c]);
        if (!chunk)
            break;
        for (uint32_t i = 0; i < CA__SLOT_CHUNK; i++) {
            ca_actor *a = atomic_load(&chunk[i].actor);
            if (a) {
                ca_log(rt, CA_LOG_WARNING, "actor <%u.%u> still referenced at exit", a->pid.num,
                       a->pid.serial);
                drain_dead(a, false);
                free(a);
            }
        }
        free(chunk);
    }
    free(rt->free_slots);
}

/* ---- links and monitors ---- */

int ca_link(ca_actor *self, ca_pid to)
{
    ca_rt *rt = self->sched->rt;
    if (ca_pid_eq(to, self->pid))
        return 0;
    if (ca_pid_is_local(rt, to) && !ca_is_alive(rt, to))
        return CA_ESRCH;
    int rc = links_add(self, to);
    if (rc)
        return rc;
    /* If it died just now, its mailbox answers the LINK with noproc. */
    rc = ca__signal(rt, CA__SIG_LINK, self->pid, to, NULL, NULL, 0);
    if (rc == CA_ESRCH) {
        links_remove(self, to);
        return CA_ESRCH;
    }
    return rc;
}

int ca_unlink(ca_actor *self, ca_pid to)
{
    if (!links_remove(self, to))
        return 0;
    int rc = ca__signal(self->sched->rt, CA__SIG_UNLINK, self->pid, to, NULL, NULL, 0);
    return rc == CA_ESRCH ? 0 : rc;
}

int ca_monitor(ca_actor *self, ca_pid to, ca_ref *out)
{
    ca_rt *rt = self->sched->rt;
    ca_ref ref;
    ca_make_ref(rt, &ref);
    if (!ext_of(self) || mon_add(&self->ext->mons, &ref, to, to.node, "", 0))
        return CA_ENOMEM;
    if (out)
        *out = ref;
    int rc = ca__signal(rt, CA__SIG_MONITOR, self->pid, to, &ref, NULL, 0);
    if (rc == CA_ESRCH) {
        /* Already gone: DOWN with noproc, as Erlang does. */
        send_down(rt, to, self->pid, &ref, "", 0, noproc_reason, sizeof noproc_reason);
        return 0;
    }
    if (rc)
        free(mon_take(&self->ext->mons, &ref)); /* not made */
    return rc;
}

int ca_monitor_name(ca_actor *self, const char *name, const char *node, ca_ref *out)
{
    if (!self || !name)
        return CA_EINVAL;
    ca_rt *rt = self->sched->rt;
    uint32_t idx = rt->node;
    if (!ca__name_valid(name) || (node && ca_node_intern(node, &idx)))
        return CA_EBADNAME;
    bool here = idx == rt->node;
    if (!here && !rt->dist)
        return CA_ENOTCONN;
    ca_pid to = CA_PID_NONE;
    if (here && ca_whereis(rt, name, &to) != 0)
        to = CA_PID_NONE;
    ca_ref ref;
    ca_make_ref(rt, &ref);
    size_t nlen = strlen(name);
    if (!ext_of(self) || mon_add(&self->ext->mons, &ref, to, idx, name, nlen))
        return CA_ENOMEM;
    if (out)
        *out = ref;
    int rc;
    if (!here) {
        rc = name_signal(rt, CA__SIG_MONITOR, self->pid, name, idx, &ref);
    } else {
        /* The target keeps the name, for its DOWN. */
        rc = ca_pid_is_none(to) ? CA_ESRCH
                                : ca__signal(rt, CA__SIG_MONITOR, self->pid, to, &ref, name, nlen);
        if (rc == CA_ESRCH) {
            send_down(rt, CA_PID_NONE, self->pid, &ref, name, idx, noproc_reason,
                      sizeof noproc_reason);
            return 0;
        }
    }
    if (rc)
        free(mon_take(&self->ext->mons, &ref)); /* not made */
    return rc;
}

int ca_demonitor(ca_actor *self, const ca_ref *ref)
{
    ca__mon *m = self->ext ? mon_take(&self->ext->mons, ref) : NULL;
    if (!m)
        return CA_ENOENT;
    int rc = unwatch(self->sched->rt, self->pid, m);
    free(m);
    /* A DOWN already in the mailbox finds no monitor and is dropped. */
    return rc == CA_ESRCH ? 0 : rc;
}

int ca_kill_term(ca_rt *rt, ca_pid from, ca_pid to, const char *reason, size_t len)
{
    ei_x_buff x;
    if (!rt)
        return CA_EINVAL;
    if (ca__etf_check(reason, len))
        return CA_EBADTERM;
    if (encode_exit(&x, from, reason, len))
        return CA_ENOMEM;
    ca_msg *m = ca__msg_new(CA__SIG_EXIT2, from, (size_t)x.index);
    if (!m) {
        ei_x_free(&x);
        return CA_ENOMEM;
    }
    memcpy(m->data, x.buff, (size_t)x.index);
    ei_x_free(&x);
    return ca__route(rt, m, to);
}

int ca_kill(ca_rt *rt, ca_pid from, ca_pid to, const char *fmt, ...)
{
    const char *buf;
    size_t len;
    int rc;
    CA__FMT_VARARGS(fmt, buf, len, rc);
    if (rc)
        return rc;
    /* The TLS buffer is reused by encode_exit's callers: copy first. */
    char *copy = malloc(len);
    if (!copy)
        return CA_ENOMEM;
    memcpy(copy, buf, len);
    rc = ca_kill_term(rt, from, to, copy, len);
    free(copy);
    return rc;
}
