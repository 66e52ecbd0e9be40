/*
 * lib/transport/mem.c - the in-memory transport with seeded faults (the
 * model and its rules are in mem.h).
 *
 * Structure.  A net holds nodes (name + partition group), cut links,
 * listeners and pipes, all under one mutex with one condition variable
 * (broadcast on every change; a test network is small).  A pipe is a
 * connection: two ends, each with the queue of frames coming to it, sorted
 * by (due, seq), and the frame being read (`cur`, with `off` bytes given
 * out).  A frame being read is never overtaken: bytes of two frames can
 * not interleave, so the core's framer always sees whole frames.
 *
 * Flow control: a send waits while the receiving end holds MEM_QUEUE_CAP
 * bytes or more (one frame is always let in, whatever its size), as a
 * socket buffer makes a sender wait.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "transport/mem.h"
#include "transport/transport_internal.h"

#define MEM_QUEUE_CAP (4u << 20)
#define MEM_NAME_MAX 63

struct mem_frame {
    struct mem_frame *next;
    int64_t due;
    uint64_t seq;        /* tie-break: order of queueing */
    uint64_t num;        /* frame number on its direction */
    uint32_t src;        /* sending node */
    uint32_t len;
    uint8_t data[];
};

struct mem_pipe;

struct mem_end {
    struct mem_pipe *pipe;
    uint32_t node;
    struct mem_frame *q;    /* frames coming to this end */
    struct mem_frame *cur;  /* being read */
    size_t off;
    size_t qbytes;          /* bytes in q and cur */
    int64_t last_due;       /* FIFO floor for frames sent to this end */
    uint64_t sent;          /* frames sent from this end */
    bool shut, eof, reset, closed;
    int fd;                 /* timerfd, -1 until asked for */
    int64_t armed;          /* what fd is set to: 0 off, 1 now, else a due time */
};

struct mem_pipe {
    struct mem_pipe *next, *prev;
    uint64_t id;
    struct mem_end e[2];    /* e[0] connected, e[1] accepted */
};

struct mem_listener {
    struct mem_listener *next;   /* in net->listeners */
    struct ktr_memnet *net;
    char name[MEM_NAME_MAX + 1];
    uint32_t node;
    struct mem_end *backlog[64]; /* accepted ends waiting for accept, FIFO */
    unsigned nb, head;
    bool shut;
    int fd;
    int64_t armed;
};

struct mem_node {
    char name[MEM_NAME_MAX + 1];
    uint32_t group;
};

struct ktr_memnet {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned refs;
    bool virt;
    int64_t vnow;               /* virtual clock */
    int64_t t0;                 /* real clock at creation */
    uint64_t rng;
    ktr_mem_faults f;
    struct mem_node *nodes;
    uint32_t nnodes, next_group;
    size_t capnodes;
    uint32_t (*cuts)[2];
    size_t ncuts, capcuts;
    struct mem_listener *listeners;
    struct mem_pipe *pipes;
    uint64_t next_conn, qseq, evseq, digest;
    ktr_mem_trace_cb trace;
    void *trace_opaque;
};

/* Per registered transport: the node it is. */
struct mem_tr {
    struct ktr_memnet *net;
    uint32_t node;
};

struct mem_conn {
    struct mem_pipe *p;
    int side;
};

/* ---- clock, randomness, trace ---------------------------------------------- */

static int64_t net_now(const struct ktr_memnet *net)
{
    return net->virt ? net->vnow : (int64_t)klog__now_ns();
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_next(struct ktr_memnet *net)
{
    net->rng += 0x9e3779b97f4a7c15ull;
    return mix64(net->rng);
}

static void emit(struct ktr_memnet *net, enum ktr_mem_action a, uint32_t src, uint32_t dst, uint64_t conn,
                 uint64_t frame, uint32_t len, int64_t due)
{
    int64_t now = net_now(net);
    ktr_mem_event ev = {
        .seq = ++net->evseq,
        .t = net->virt ? now : now - net->t0,
        .action = a,
        .src = src < net->nnodes ? net->nodes[src].name : "",
        .dst = dst < net->nnodes ? net->nodes[dst].name : "",
        .conn = conn,
        .frame = frame,
        .len = len,
        .due = net->virt ? due : (due ? due - net->t0 : 0),
    };
    uint64_t h = net->digest;
    uint64_t fields[] = { ev.seq, (uint64_t)a, src, dst, conn, frame, len,
                          net->virt ? (uint64_t)ev.t : 0, net->virt ? (uint64_t)ev.due : 0 };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(fields); i++)
        h = mix64(h ^ fields[i]) + i;
    net->digest = h;
    if (net->trace)
        net->trace(net->trace_opaque, &ev);
}

/* ---- nodes and reachability --------------------------------------------------- */

/* Index of node name, added if new; or -ENOMEM / -EINVAL. */
static int64_t node_get(struct ktr_memnet *net, const char *name)
{
    if (!name || !name[0] || strlen(name) > MEM_NAME_MAX)
        return -EINVAL;
    for (uint32_t i = 0; i < net->nnodes; i++)
        if (strcmp(net->nodes[i].name, name) == 0)
            return i;
    int rc = klog__vec_reserve(&net->nodes, &net->capnodes, (size_t)net->nnodes + 1, sizeof *net->nodes);
    if (rc < 0)
        return rc;
    struct mem_node *n = &net->nodes[net->nnodes];
    snprintf(n->name, sizeof n->name, "%s", name);
    n->group = 0;
    return net->nnodes++;
}

static bool cut_between(const struct ktr_memnet *net, uint32_t a, uint32_t b)
{
    for (size_t i = 0; i < net->ncuts; i++)
        if ((net->cuts[i][0] == a && net->cuts[i][1] == b) || (net->cuts[i][0] == b && net->cuts[i][1] == a))
            return true;
    return false;
}

static bool reachable(const struct ktr_memnet *net, uint32_t a, uint32_t b)
{
    return net->nodes[a].group == net->nodes[b].group && !cut_between(net, a, b);
}

/* ---- readiness descriptors ------------------------------------------------------ */

/* Set a timerfd to fire at `at` (1 = now, 0 = never); remember it. */
static void fd_arm(int fd, int64_t *armed, int64_t at)
{
    if (fd < 0 || *armed == at)
        return;
    struct itimerspec its = { { 0, 0 }, { 0, 0 } };
    if (at == 1) {
        its.it_value.tv_nsec = 1; /* an absolute time long past: fires at once */
    } else if (at > 1) {
        its.it_value.tv_sec = at / 1000000000;
        its.it_value.tv_nsec = at % 1000000000;
    }
    /* Setting a timerfd also clears expirations not yet read. */
    timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
    *armed = at;
}

static void end_ready(struct ktr_memnet *net, struct mem_end *e)
{
    if (e->fd < 0)
        return;
    int64_t now = net_now(net);
    bool now_ready = e->shut || e->reset || e->cur || (e->q && e->q->due <= now) || (e->eof && !e->q);
    int64_t at = now_ready ? 1 : 0;
    if (!now_ready && e->q && !net->virt)
        at = e->q->due > 1 ? e->q->due : 1;
    fd_arm(e->fd, &e->armed, at);
}

static void listener_ready(struct mem_listener *l)
{
    fd_arm(l->fd, &l->armed, (l->shut || l->nb) ? 1 : 0);
}

static int make_timerfd(void)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* ---- waiting ---------------------------------------------------------------------- */

/* Wait on the net's condition until woken or `until` (CLOCK_MONOTONIC ns,
 * KLOG_TRANSPORT_FOREVER = no limit).  Real time only. */
static void net_wait(struct ktr_memnet *net, int64_t until)
{
    if (until == KLOG_TRANSPORT_FOREVER) {
        pthread_cond_wait(&net->cv, &net->mu);
        return;
    }
    struct timespec ts = { .tv_sec = until / 1000000000, .tv_nsec = until % 1000000000 };
    pthread_cond_timedwait(&net->cv, &net->mu, &ts);
}

/* ---- frames and queues --------------------------------------------------------- */

static void queue_insert(struct ktr_memnet *net, struct mem_end *e, struct mem_frame *f)
{
    f->seq = ++net->qseq;
    struct mem_frame **pp = &e->q;
    while (*pp && ((*pp)->due < f->due || ((*pp)->due == f->due && (*pp)->seq < f->seq)))
        pp = &(*pp)->next;
    f->next = *pp;
    *pp = f;
    e->qbytes += f->len;
}

static void end_flush(struct mem_end *e)
{
    while (e->q) {
        struct mem_frame *f = e->q;
        e->q = f->next;
        free(f);
    }
    free(e->cur);
    e->cur = NULL;
    e->off = 0;
    e->qbytes = 0;
}

static void pipe_free_if_done(struct ktr_memnet *net, struct mem_pipe *p)
{
    if (!p->e[0].closed || !p->e[1].closed)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else
        net->pipes = p->next;
    if (p->next)
        p->next->prev = p->prev;
    for (int s = 0; s < 2; s++) {
        end_flush(&p->e[s]);
        if (p->e[s].fd >= 0)
            close(p->e[s].fd);
    }
    free(p);
}

/* End e is gone (closed, or never accepted): its peer reads end of stream. */
static void end_close(struct ktr_memnet *net, struct mem_end *e)
{
    struct mem_pipe *p = e->pipe;
    struct mem_end *peer = &p->e[e == &p->e[0] ? 1 : 0];
    e->closed = e->shut = true;
    end_flush(e);
    peer->eof = true;
    end_ready(net, peer);
    pthread_cond_broadcast(&net->cv);
    pipe_free_if_done(net, p);
}

/* ---- the net ---------------------------------------------------------------------- */

int ktr_memnet_new(ktr_memnet **out, uint64_t seed, unsigned flags)
{
    if (!out || (flags & ~(unsigned)KTR_MEMNET_VIRTUAL_TIME))
        return -EINVAL;
    *out = NULL;
    struct ktr_memnet *net = calloc(1, sizeof *net);
    if (!net)
        return -ENOMEM;
    pthread_mutex_init(&net->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&net->cv, &ca);
    pthread_condattr_destroy(&ca);
    net->refs = 1;
    net->virt = flags & KTR_MEMNET_VIRTUAL_TIME;
    net->t0 = (int64_t)klog__now_ns();
    net->rng = seed;
    net->digest = mix64(seed ^ 0x6d656d6e6574ull);
    *out = net;
    return 0;
}

static void net_unref(struct ktr_memnet *net)
{
    pthread_mutex_lock(&net->mu);
    bool last = --net->refs == 0;
    pthread_mutex_unlock(&net->mu);
    if (!last)
        return;
    /* Registries were freed, so their listeners and connections were
     * closed: nothing is left but bookkeeping. */
    while (net->pipes) {
        struct mem_pipe *p = net->pipes;
        p->e[0].closed = p->e[1].closed = true;
        pipe_free_if_done(net, p);
    }
    free(net->nodes);
    free(net->cuts);
    pthread_cond_destroy(&net->cv);
    pthread_mutex_destroy(&net->mu);
    free(net);
}

void ktr_memnet_free(ktr_memnet *net)
{
    if (net)
        net_unref(net);
}

int ktr_memnet_set_faults(ktr_memnet *net, const ktr_mem_faults *f)
{
    if (!net)
        return -EINVAL;
    ktr_mem_faults z = { 0 };
    if (!f)
        f = &z;
    if (f->drop_ppm > 1000000 || f->dup_ppm > 1000000 || f->delay_ppm > 1000000 || f->reorder_ppm > 1000000 ||
        f->delay_min_ns < 0 || f->delay_max_ns < f->delay_min_ns || f->reorder_ns < 0)
        return -EINVAL;
    pthread_mutex_lock(&net->mu);
    net->f = *f;
    pthread_mutex_unlock(&net->mu);
    return 0;
}

int ktr_memnet_cut(ktr_memnet *net, const char *a, const char *b)
{
    if (!net)
        return -EINVAL;
    pthread_mutex_lock(&net->mu);
    int64_t na = node_get(net, a), nb = na < 0 ? na : node_get(net, b);
    int rc = nb < 0 ? (int)nb : 0;
    if (rc == 0 && na == nb)
        rc = -EINVAL;
    if (rc == 0 && !cut_between(net, (uint32_t)na, (uint32_t)nb)) {
        rc = klog__vec_reserve(&net->cuts, &net->capcuts, net->ncuts + 1, sizeof *net->cuts);
        if (rc == 0) {
            net->cuts[net->ncuts][0] = (uint32_t)na;
            net->cuts[net->ncuts][1] = (uint32_t)nb;
            net->ncuts++;
        }
    }
    if (rc == 0) {
        /* Reset every connection on the link, both ways. */
        for (struct mem_pipe *p = net->pipes; p; p = p->next) {
            uint32_t x = p->e[0].node, y = p->e[1].node;
            if (!((x == na && y == nb) || (x == nb && y == na)))
                continue;
            for (int s = 0; s < 2; s++) {
                p->e[s].reset = true;
                end_flush(&p->e[s]);
                end_ready(net, &p->e[s]);
            }
            emit(net, KTR_MEM_RESET, x, y, p->id, 0, 0, 0);
        }
        pthread_cond_broadcast(&net->cv);
    }
    pthread_mutex_unlock(&net->mu);
    return rc;
}

int ktr_memnet_partition(ktr_memnet *net, const char *const *nodes, size_t n)
{
    if (!net || (n && !nodes))
        return -EINVAL;
    pthread_mutex_lock(&net->mu);
    uint32_t g = ++net->next_group;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int64_t k = node_get(net, nodes[i]);
        if (k < 0)
            rc = (int)k;
        else
            net->nodes[k].group = g;
    }
    pthread_cond_broadcast(&net->cv);
    pthread_mutex_unlock(&net->mu);
    return rc;
}

void ktr_memnet_heal(ktr_memnet *net)
{
    if (!net)
        return;
    pthread_mutex_lock(&net->mu);
    for (uint32_t i = 0; i < net->nnodes; i++)
        net->nodes[i].group = 0;
    net->ncuts = 0;
    pthread_cond_broadcast(&net->cv);
    pthread_mutex_unlock(&net->mu);
}

int ktr_memnet_set_time(ktr_memnet *net, int64_t now_ns)
{
    if (!net)
        return -EINVAL;
    pthread_mutex_lock(&net->mu);
    int rc = 0;
    if (!net->virt || now_ns < net->vnow) {
        rc = -EINVAL;
    } else {
        net->vnow = now_ns;
        for (struct mem_pipe *p = net->pipes; p; p = p->next)
            for (int s = 0; s < 2; s++)
                end_ready(net, &p->e[s]);
        pthread_cond_broadcast(&net->cv);
    }
    pthread_mutex_unlock(&net->mu);
    return rc;
}

int64_t ktr_memnet_now(ktr_memnet *net)
{
    pthread_mutex_lock(&net->mu);
    int64_t t = net_now(net);
    pthread_mutex_unlock(&net->mu);
    return t;
}

int64_t ktr_memnet_next_due(ktr_memnet *net)
{
    pthread_mutex_lock(&net->mu);
    int64_t best = -1;
    for (struct mem_pipe *p = net->pipes; p; p = p->next)
        for (int s = 0; s < 2; s++)
            if (p->e[s].q && (best < 0 || p->e[s].q->due < best))
                best = p->e[s].q->due;
    pthread_mutex_unlock(&net->mu);
    return best;
}

void ktr_memnet_set_trace(ktr_memnet *net, ktr_mem_trace_cb cb, void *opaque)
{
    pthread_mutex_lock(&net->mu);
    net->trace = cb;
    net->trace_opaque = cb ? opaque : NULL;
    pthread_mutex_unlock(&net->mu);
}

uint64_t ktr_memnet_digest(ktr_memnet *net, uint64_t *events)
{
    pthread_mutex_lock(&net->mu);
    uint64_t d = net->digest;
    if (events)
        *events = net->evseq;
    pthread_mutex_unlock(&net->mu);
    return d;
}

/* ---- the vtable ------------------------------------------------------------------ */

static int mem_init(void *tst, const void *arg)
{
    struct mem_tr *t = tst;
    const ktr_mem_init *in = arg;
    if (!in || !in->net)
        return -EINVAL;
    struct ktr_memnet *net = in->net;
    pthread_mutex_lock(&net->mu);
    int64_t node = node_get(net, in->node);
    if (node >= 0) {
        net->refs++;
        t->net = net;
        t->node = (uint32_t)node;
    }
    pthread_mutex_unlock(&net->mu);
    return node < 0 ? (int)node : 0;
}

static void mem_fini(void *tst)
{
    struct mem_tr *t = tst;
    if (t->net)
        net_unref(t->net);
}

static int mem_listen(void *tst, void *lst, const char *addr, char *bound, size_t boundsz)
{
    struct mem_tr *t = tst;
    struct mem_listener *l = lst;
    struct ktr_memnet *net = t->net;
    if (!addr[0] || strlen(addr) > MEM_NAME_MAX)
        return -EINVAL;
    pthread_mutex_lock(&net->mu);
    int rc = 0;
    for (struct mem_listener *o = net->listeners; o; o = o->next)
        if (strcmp(o->name, addr) == 0)
            rc = -EADDRINUSE;
    if (rc == 0) {
        snprintf(l->name, sizeof l->name, "%s", addr);
        l->net = net;
        l->node = t->node;
        l->fd = -1;
        l->next = net->listeners;
        net->listeners = l;
        snprintf(bound, boundsz, "%s", addr);
    }
    pthread_mutex_unlock(&net->mu);
    return rc;
}

static int mem_accept(void *tst, void *lst, void *cst, int64_t deadline)
{
    struct mem_listener *l = lst;
    struct mem_conn *c = cst;
    struct ktr_memnet *net = l->net;
    pthread_mutex_lock(&net->mu);
    int rc;
    for (;;) {
        if (l->shut) {
            rc = -ECANCELED;
            break;
        }
        if (l->nb) {
            struct mem_end *e = l->backlog[l->head];
            l->head = (l->head + 1) % KLOG_ARRAY_LEN(l->backlog);
            l->nb--;
            c->p = e->pipe;
            c->side = 1;
            listener_ready(l);
            rc = 0;
            break;
        }
        if (net->virt || net_now(net) >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        net_wait(net, deadline);
    }
    pthread_mutex_unlock(&net->mu);
    return rc;
}

static void mem_listener_shutdown(void *tst, void *lst)
{
    struct mem_listener *l = lst;
    pthread_mutex_lock(&l->net->mu);
    l->shut = true;
    listener_ready(l);
    pthread_cond_broadcast(&l->net->cv);
    pthread_mutex_unlock(&l->net->mu);
}

static void mem_listener_close(void *tst, void *lst)
{
    struct mem_listener *l = lst;
    struct ktr_memnet *net = l->net;
    pthread_mutex_lock(&net->mu);
    for (struct mem_listener **pp = &net->listeners; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    /* Connections nobody accepted: their connectors read end of stream. */
    while (l->nb) {
        struct mem_end *e = l->backlog[l->head];
        l->head = (l->head + 1) % KLOG_ARRAY_LEN(l->backlog);
        l->nb--;
        end_close(net, e);
    }
    pthread_mutex_unlock(&net->mu);
    if (l->fd >= 0)
        close(l->fd);
}

static int mem_connect(void *tst, void *cst, const char *addr, int64_t deadline)
{
    struct mem_tr *t = tst;
    struct mem_conn *c = cst;
    struct ktr_memnet *net = t->net;
    pthread_mutex_lock(&net->mu);
    struct mem_listener *l = net->listeners;
    while (l && strcmp(l->name, addr) != 0)
        l = l->next;
    int rc = 0;
    if (!l || l->shut)
        rc = -ECONNREFUSED;
    else if (!reachable(net, t->node, l->node))
        rc = -EHOSTUNREACH;
    else if (l->nb == KLOG_ARRAY_LEN(l->backlog))
        rc = -ECONNREFUSED; /* backlog full */
    struct mem_pipe *p = NULL;
    if (rc == 0 && !(p = calloc(1, sizeof *p)))
        rc = -ENOMEM;
    if (rc == 0) {
        p->id = ++net->next_conn;
        for (int s = 0; s < 2; s++) {
            p->e[s].pipe = p;
            p->e[s].fd = -1;
        }
        p->e[0].node = t->node;
        p->e[1].node = l->node;
        p->next = net->pipes;
        if (net->pipes)
            net->pipes->prev = p;
        net->pipes = p;
        l->backlog[(l->head + l->nb) % KLOG_ARRAY_LEN(l->backlog)] = &p->e[1];
        l->nb++;
        listener_ready(l);
        emit(net, KTR_MEM_CONNECT, t->node, l->node, p->id, 0, 0, 0);
        pthread_cond_broadcast(&net->cv);
        c->p = p;
        c->side = 0;
    }
    pthread_mutex_unlock(&net->mu);
    return rc;
}

static ssize_t mem_send(void *tst, void *cst, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    struct mem_conn *c = cst;
    struct mem_pipe *p = c->p;
    struct mem_tr *t = tst;
    struct ktr_memnet *net = t->net;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total > UINT32_MAX)
        return -EMSGSIZE;
    pthread_mutex_lock(&net->mu);
    struct mem_end *me = &p->e[c->side], *peer = &p->e[!c->side];
    ssize_t rc;
    for (;;) {
        if (me->shut) {
            rc = -ECANCELED;
            goto out;
        }
        if (me->reset) {
            rc = -ECONNRESET;
            goto out;
        }
        if (peer->closed || peer->shut) {
            rc = -EPIPE;
            goto out;
        }
        if (peer->qbytes < MEM_QUEUE_CAP || !(peer->q || peer->cur))
            break;
        if (net->virt || net_now(net) >= deadline) {
            rc = -ETIMEDOUT;
            goto out;
        }
        net_wait(net, deadline);
    }
    struct mem_frame *f = malloc(sizeof *f + total);
    if (!f) {
        rc = -ENOMEM;
        goto out;
    }
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(f->data + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    f->len = (uint32_t)total;
    f->src = me->node;
    f->num = ++me->sent;
    rc = (ssize_t)total;

    /* The frame's fate: always the same five draws. */
    const ktr_mem_faults *fl = &net->f;
    uint64_t r_drop = rng_next(net) % 1000000, r_reorder = rng_next(net) % 1000000,
             r_delay = rng_next(net) % 1000000, r_amount = rng_next(net), r_dup = rng_next(net) % 1000000;
    int64_t now = net_now(net);
    if (!reachable(net, me->node, peer->node)) {
        emit(net, KTR_MEM_LOST, me->node, peer->node, p->id, f->num, f->len, 0);
        free(f);
        goto out;
    }
    if (r_drop < fl->drop_ppm) {
        emit(net, KTR_MEM_DROP, me->node, peer->node, p->id, f->num, f->len, 0);
        free(f);
        goto out;
    }
    enum ktr_mem_action act = KTR_MEM_SEND;
    if (r_reorder < fl->reorder_ppm) {
        /* Held back, and not a floor for later frames: they overtake it. */
        act = KTR_MEM_REORDER;
        f->due = now + fl->reorder_ns;
    } else {
        f->due = now;
        if (r_delay < fl->delay_ppm) {
            act = KTR_MEM_DELAY;
            uint64_t span = (uint64_t)(fl->delay_max_ns - fl->delay_min_ns) + 1;
            f->due = now + fl->delay_min_ns + (int64_t)(r_amount % span);
        }
        if (f->due < peer->last_due)
            f->due = peer->last_due; /* order kept within the connection */
        peer->last_due = f->due;
    }
    struct mem_frame *dup = NULL;
    if (r_dup < fl->dup_ppm && (dup = malloc(sizeof *f + total)))
        memcpy(dup, f, sizeof *f + total);
    queue_insert(net, peer, f);
    emit(net, act, me->node, peer->node, p->id, f->num, f->len, f->due);
    if (dup) {
        queue_insert(net, peer, dup);
        emit(net, KTR_MEM_DUP, me->node, peer->node, p->id, dup->num, dup->len, dup->due);
    }
    end_ready(net, peer);
    pthread_cond_broadcast(&net->cv);
out:
    pthread_mutex_unlock(&net->mu);
    return rc;
}

static ssize_t mem_recv(void *tst, void *cst, void *buf, size_t len, int64_t deadline)
{
    struct mem_conn *c = cst;
    struct mem_pipe *p = c->p;
    struct mem_tr *t = tst;
    struct ktr_memnet *net = t->net;
    pthread_mutex_lock(&net->mu);
    struct mem_end *me = &p->e[c->side];
    ssize_t rc;
    for (;;) {
        if (me->shut) {
            rc = -ECANCELED;
            break;
        }
        if (me->reset) {
            rc = -ECONNRESET;
            break;
        }
        int64_t now = net_now(net);
        while (!me->cur && me->q && me->q->due <= now) {
            struct mem_frame *f = me->q;
            me->q = f->next;
            if (!reachable(net, f->src, me->node) || f->len == 0) {
                /* In flight when the partition came: lost. */
                if (f->len)
                    emit(net, KTR_MEM_LOST, f->src, me->node, p->id, f->num, f->len, f->due);
                me->qbytes -= f->len;
                free(f);
                continue;
            }
            me->cur = f;
            me->off = 0;
            emit(net, KTR_MEM_RECV, f->src, me->node, p->id, f->num, f->len, f->due);
        }
        if (me->cur) {
            struct mem_frame *f = me->cur;
            size_t n = KLOG_MIN(len, (size_t)f->len - me->off);
            memcpy(buf, f->data + me->off, n);
            me->off += n;
            if (me->off == f->len) {
                me->qbytes -= f->len;
                me->cur = NULL;
                free(f);
                pthread_cond_broadcast(&net->cv); /* room for a waiting sender */
            }
            rc = (ssize_t)n;
            break;
        }
        if (me->eof && !me->q) {
            rc = 0;
            break;
        }
        if (net->virt || now >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        int64_t until = deadline;
        if (me->q && me->q->due < until)
            until = me->q->due;
        net_wait(net, until);
    }
    end_ready(net, me);
    pthread_mutex_unlock(&net->mu);
    return rc;
}

static void mem_shutdown(void *tst, void *cst)
{
    struct mem_conn *c = cst;
    struct mem_tr *t = tst;
    struct ktr_memnet *net = t->net;
    pthread_mutex_lock(&net->mu);
    struct mem_end *me = &c->p->e[c->side], *peer = &c->p->e[!c->side];
    me->shut = true;
    peer->eof = true;
    end_ready(net, me);
    end_ready(net, peer);
    pthread_cond_broadcast(&net->cv);
    pthread_mutex_unlock(&net->mu);
}

static void mem_close(void *tst, void *cst)
{
    struct mem_conn *c = cst;
    struct mem_tr *t = tst;
    pthread_mutex_lock(&t->net->mu);
    end_close(t->net, &c->p->e[c->side]);
    pthread_mutex_unlock(&t->net->mu);
}

static int mem_peer(void *tst, void *cst, char *addr, size_t addrsz, char *ident, size_t identsz)
{
    struct mem_conn *c = cst;
    struct mem_tr *t = tst;
    struct ktr_memnet *net = t->net;
    pthread_mutex_lock(&net->mu);
    const char *node = net->nodes[c->p->e[!c->side].node].name;
    /* The connector sees the node it reached; the acceptor the connecting
     * node and the connection's number (its "ephemeral port"). */
    if (c->side == 0)
        snprintf(addr, addrsz, "%s", node);
    else
        snprintf(addr, addrsz, "%s/%llu", node, (unsigned long long)c->p->id);
    snprintf(ident, identsz, "%s", node);
    pthread_mutex_unlock(&net->mu);
    return 0;
}

static int mem_control(void *tst, void *lst, void *cst, int op, void *arg)
{
    struct mem_tr *t = tst;
    struct ktr_memnet *net = t->net;
    int rc = -ENOTSUP;
    pthread_mutex_lock(&net->mu);
    if (op == KLOG_TRANSPORT_CTL_CONN_FD && cst && arg) {
        struct mem_conn *c = cst;
        struct mem_end *e = &c->p->e[c->side];
        if (e->fd < 0) {
            e->fd = make_timerfd();
            e->armed = 0;
            end_ready(net, e);
        }
        rc = e->fd < 0 ? e->fd : 0;
        if (e->fd < 0)
            e->fd = -1;
        else
            *(int *)arg = e->fd;
    } else if (op == KLOG_TRANSPORT_CTL_LISTENER_FD && lst && arg) {
        struct mem_listener *l = lst;
        if (l->fd < 0) {
            l->fd = make_timerfd();
            l->armed = 0;
            listener_ready(l);
        }
        rc = l->fd < 0 ? l->fd : 0;
        if (l->fd < 0)
            l->fd = -1;
        else
            *(int *)arg = l->fd;
    }
    pthread_mutex_unlock(&net->mu);
    return rc;
}

static const klog_transport_methods mem_methods = {
    .version = KLOG_TRANSPORT_VERSION,
    .size = sizeof(klog_transport_methods),
    .scheme = "mem",
    .state_size = sizeof(struct mem_tr),
    .listener_size = sizeof(struct mem_listener),
    .conn_size = sizeof(struct mem_conn),
    .init = mem_init,
    .fini = mem_fini,
    .listen = mem_listen,
    .accept = mem_accept,
    .listener_shutdown = mem_listener_shutdown,
    .listener_close = mem_listener_close,
    .connect = mem_connect,
    .send = mem_send,
    .recv = mem_recv,
    .shutdown = mem_shutdown,
    .close = mem_close,
    .peer = mem_peer,
    .control = mem_control,
};

const klog_transport_methods *ktr_mem_methods(void)
{
    return &mem_methods;
}
