/*
 * lib/transport/transport.c - the transport core: registries, vtable
 * checks, listeners and connections, and the one framer every transport
 * shares (Kafka's u32 big-endian length + payload, the cap checked before
 * anything is allocated).
 *
 * Locks.  A registry's mutex guards its list of transports only; nothing
 * blocks under it.  A connection has a send mutex (held across a whole
 * frame, so frames of concurrent senders never interleave) and a receive
 * mutex (taken with trylock: a second receiver gets -EBUSY instead of a
 * frame it cannot own).  Shutdown takes neither: it sets a flag and calls
 * the transport's thread-safe shutdown op, which wakes whoever is blocked.
 *
 * Lifetime.  A registry is reference-counted: one reference for its owner
 * (dropped by klog_transport_registry_free), one per listener and per
 * connection object.  The last one out finishes the transports (fini) and
 * frees the registry, so closing things in any order is safe.
 */
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <klog/transport.h>

#include "common/common.h"
#include "transport/transport_internal.h"

#define SCHEME_MAX 31
#define IOV_CAP 1023 /* iovcnt limit of klog_conn_send (+1 for the length: IOV_MAX) */

struct ktr_entry {
    const klog_transport_methods *m;
    bool inited;               /* init() was called: fini() is due */
    char scheme[SCHEME_MAX + 1];
    void *st;                  /* m->state_size bytes */
};

struct klog_transport_registry {
    pthread_mutex_t lock;      /* guards tr/ntr/cap and the log callback */
    atomic_uint refs;
    struct ktr_entry **tr;     /* entries never move: connections point at them */
    size_t ntr, cap;
    atomic_uint max_frame;
    klog_transport_log_cb log_cb;
    void *log_opaque;
    atomic_size_t bytes;       /* held by listeners and connections (test hook) */
    atomic_size_t conns;
};

struct klog_listener {
    klog_transport_registry *reg;
    struct ktr_entry *tr;
    atomic_bool shut;
    _Atomic(klog_conn *) spare; /* a connection object kept for the next accept */
    size_t size;                /* bytes of this object */
    char url[SCHEME_MAX + 4 + KTR_ADDR_MAX];
    alignas(max_align_t) unsigned char lst[]; /* m->listener_size bytes */
};

struct klog_conn {
    klog_transport_registry *reg;
    struct ktr_entry *tr;
    void *cst;
    size_t size;                /* bytes of this object */
    pthread_mutex_t tx;         /* one frame at a time on the wire */
    pthread_mutex_t rx;         /* one receiver (trylock) */
    atomic_int err;             /* 0, or the final error of the connection */
    atomic_bool shut;
    atomic_uint max_frame;
    klog_transport_log_cb log_cb;
    void *log_opaque;
    /* Receive state, under rx.  A frame in progress survives -ETIMEDOUT. */
    uint8_t hdr[4];
    uint8_t hdr_got;            /* bytes of the length read so far (0..4) */
    uint32_t len;               /* the frame's length, once hdr_got == 4 */
    size_t got;                 /* payload bytes read so far */
    uint8_t *buf;
    size_t cap;
    char peer[SCHEME_MAX + 4 + KTR_PEER_ADDR_MAX];
    char ident[KTR_IDENT_MAX];
    alignas(max_align_t) unsigned char cst_mem[]; /* m->conn_size bytes */
};

/* ---- time -------------------------------------------------------------- */

int64_t ktr__now(void)
{
    return (int64_t)klog__now_ns();
}

int64_t ktr__deadline(int timeout_ms)
{
    if (timeout_ms < 0)
        return KLOG_TRANSPORT_FOREVER;
    return ktr__now() + (int64_t)timeout_ms * 1000000;
}

int ktr__poll_ms(int64_t deadline)
{
    if (deadline == KLOG_TRANSPORT_FOREVER)
        return -1;
    int64_t left = deadline - ktr__now();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* ---- vtables and URLs --------------------------------------------------- */

static bool scheme_ok(const char *s)
{
    if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char ch = s[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' || ch == '.' || ch == '-'))
            return false;
    }
    return n <= SCHEME_MAX;
}

int ktr__check_methods(const klog_transport_methods *m)
{
    if (!m)
        return -EINVAL;
    /* The magic catches a pointer to something that is not a vtable. */
    if ((m->version & 0xffff0000u) != KLOG_TRANSPORT_MAGIC)
        return -EINVAL;
    /* Version 0 was never issued; a struct shorter than version 1 comes
     * from a header this core does not know. */
    if ((m->version & 0xffffu) == 0 || m->size < KTR_METHODS_V1_SIZE)
        return KLOG_EFORMAT;
    if (!scheme_ok(m->scheme))
        return -EINVAL;
    if (!m->connect || !m->send || !m->recv || !m->shutdown || !m->close)
        return -EINVAL;
    int nl = !!m->listen + !!m->accept + !!m->listener_shutdown + !!m->listener_close;
    if (nl != 0 && nl != 4)
        return -EINVAL;
    return 0;
}

/* Split "scheme://rest" or "scheme:rest" (or, with bare_ok, "scheme").
 * 0 or -EINVAL. */
static int parse_url(const char *url, char scheme[SCHEME_MAX + 1], const char **rest, bool bare_ok)
{
    if (!url)
        return -EINVAL;
    const char *colon = strchr(url, ':');
    size_t n = colon ? (size_t)(colon - url) : strlen(url);
    if (n == 0 || n > SCHEME_MAX || (!colon && !bare_ok))
        return -EINVAL;
    memcpy(scheme, url, n);
    scheme[n] = '\0';
    if (!scheme_ok(scheme))
        return -EINVAL;
    const char *r = colon ? colon + 1 : url + n;
    if (r[0] == '/' && r[1] == '/')
        r += 2;
    if (strlen(r) >= KTR_ADDR_MAX)
        return -EINVAL;
    *rest = r;
    return 0;
}

static struct ktr_entry *find_locked(const klog_transport_registry *reg, const char *scheme)
{
    for (size_t i = 0; i < reg->ntr; i++)
        if (strcmp(reg->tr[i]->scheme, scheme) == 0)
            return reg->tr[i];
    return NULL;
}

static struct ktr_entry *find_entry(klog_transport_registry *reg, const char *scheme)
{
    pthread_mutex_lock(&reg->lock);
    struct ktr_entry *e = find_locked(reg, scheme);
    pthread_mutex_unlock(&reg->lock);
    return e;
}

/* ---- registries ---------------------------------------------------------- */

static void reg_destroy(klog_transport_registry *reg)
{
    for (size_t i = 0; i < reg->ntr; i++) {
        struct ktr_entry *e = reg->tr[i];
        if (e->inited && e->m->fini)
            e->m->fini(e->st);
        free(e);
    }
    free(reg->tr);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

static void reg_ref(klog_transport_registry *reg)
{
    atomic_fetch_add_explicit(&reg->refs, 1, memory_order_relaxed);
}

static void reg_unref(klog_transport_registry *reg)
{
    if (atomic_fetch_sub_explicit(&reg->refs, 1, memory_order_acq_rel) == 1)
        reg_destroy(reg);
}

KLOG_API int klog_transport_registry_new(klog_transport_registry **out, unsigned flags)
{
    if (!out || (flags & ~(unsigned)KLOG_TRANSPORT_REGISTRY_EMPTY))
        return -EINVAL;
    *out = NULL;
    klog_transport_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return -ENOMEM;
    pthread_mutex_init(&reg->lock, NULL);
    atomic_init(&reg->refs, 1);
    atomic_init(&reg->max_frame, KLOG_TRANSPORT_MAX_FRAME_DEFAULT);
    if (!(flags & KLOG_TRANSPORT_REGISTRY_EMPTY)) {
        int rc = klog_transport_register(reg, ktr_tcp_methods(), NULL);
        if (rc == 0)
            rc = klog_transport_register(reg, ktr_unix_methods(), NULL);
        if (rc < 0) {
            reg_destroy(reg);
            return rc;
        }
    }
    *out = reg;
    return 0;
}

KLOG_API void klog_transport_registry_free(klog_transport_registry *reg)
{
    if (reg)
        reg_unref(reg);
}

KLOG_API int klog_transport_register(klog_transport_registry *reg, const klog_transport_methods *m,
                                     const void *init_arg)
{
    if (!reg)
        return -EINVAL;
    int rc = ktr__check_methods(m);
    if (rc < 0)
        return rc;
    if (find_entry(reg, m->scheme))
        return -EEXIST;
    /* The state block follows the entry, aligned for anything. */
    size_t off = (sizeof(struct ktr_entry) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    if (m->state_size > SIZE_MAX - off)
        return -ENOMEM;
    struct ktr_entry *e = calloc(1, off + m->state_size);
    if (!e)
        return -ENOMEM;
    e->m = m;
    e->st = (unsigned char *)e + off;
    snprintf(e->scheme, sizeof e->scheme, "%s", m->scheme);
    if (m->init) {
        e->inited = true;
        rc = m->init(e->st, init_arg);
        if (rc < 0) {
            if (m->fini)
                m->fini(e->st);
            free(e);
            return rc;
        }
    }
    pthread_mutex_lock(&reg->lock);
    rc = 0;
    if (find_locked(reg, m->scheme)) {
        rc = -EEXIST; /* a concurrent registration of the same scheme won */
    } else {
        rc = klog__vec_reserve(&reg->tr, &reg->cap, reg->ntr + 1, sizeof *reg->tr);
    }
    if (rc == 0)
        reg->tr[reg->ntr++] = e;
    pthread_mutex_unlock(&reg->lock);
    if (rc < 0) {
        if (e->inited && m->fini)
            m->fini(e->st);
        free(e);
    }
    return rc;
}

KLOG_API const klog_transport_methods *klog_transport_find(const klog_transport_registry *reg,
                                                           const char *url)
{
    char scheme[SCHEME_MAX + 1];
    const char *rest;
    if (!reg || parse_url(url, scheme, &rest, true) < 0)
        return NULL;
    klog_transport_registry *r = (klog_transport_registry *)reg; /* the lock only */
    struct ktr_entry *e = find_entry(r, scheme);
    return e ? e->m : NULL;
}

KLOG_API int klog_transport_control(klog_transport_registry *reg, const char *scheme, int op, void *arg)
{
    char sch[SCHEME_MAX + 1];
    const char *rest;
    if (!reg || parse_url(scheme, sch, &rest, true) < 0)
        return -EINVAL;
    struct ktr_entry *e = find_entry(reg, sch);
    if (!e)
        return -EPROTONOSUPPORT;
    if (!e->m->control)
        return -ENOTSUP;
    return e->m->control(e->st, NULL, NULL, op, arg);
}

KLOG_API int klog_transport_set_max_frame(klog_transport_registry *reg, uint32_t max_bytes)
{
    if (!reg || max_bytes == 0 || max_bytes > KLOG_TRANSPORT_MAX_FRAME_LIMIT)
        return -EINVAL;
    atomic_store(&reg->max_frame, max_bytes);
    return 0;
}

KLOG_API int klog_transport_set_log_cb(klog_transport_registry *reg, klog_transport_log_cb cb,
                                       void *opaque)
{
    if (!reg)
        return -EINVAL;
    pthread_mutex_lock(&reg->lock);
    reg->log_cb = cb;
    reg->log_opaque = cb ? opaque : NULL;
    pthread_mutex_unlock(&reg->lock);
    return 0;
}

size_t ktr__registry_bytes(const klog_transport_registry *reg)
{
    return atomic_load(&((klog_transport_registry *)reg)->bytes);
}

size_t ktr__registry_conns(const klog_transport_registry *reg)
{
    return atomic_load(&((klog_transport_registry *)reg)->conns);
}

/* ---- connection objects ---------------------------------------------------- */

static klog_conn *conn_alloc(klog_transport_registry *reg, struct ktr_entry *tr)
{
    size_t size = sizeof(klog_conn) + tr->m->conn_size;
    klog_conn *c = calloc(1, size);
    if (!c)
        return NULL;
    c->reg = reg;
    c->tr = tr;
    c->cst = c->cst_mem;
    c->size = size;
    pthread_mutex_init(&c->tx, NULL);
    pthread_mutex_init(&c->rx, NULL);
    reg_ref(reg);
    atomic_fetch_add(&reg->bytes, size);
    return c;
}

/* Free a connection object whose transport state holds nothing (never
 * connected, or already closed by the transport). */
static void conn_free(klog_conn *c)
{
    klog_transport_registry *reg = c->reg;
    if (c->buf) {
        atomic_fetch_sub(&reg->bytes, c->cap);
        free(c->buf);
    }
    atomic_fetch_sub(&reg->bytes, c->size);
    pthread_mutex_destroy(&c->tx);
    pthread_mutex_destroy(&c->rx);
    free(c);
    reg_unref(reg);
}

/* The connection is up: take the registry's settings as they are now (the
 * object may have waited as a listener's spare), and ask the transport who
 * the peer is, once. */
static void conn_established(klog_conn *c)
{
    klog_transport_registry *reg = c->reg;
    atomic_store(&c->max_frame, atomic_load(&reg->max_frame));
    pthread_mutex_lock(&reg->lock);
    c->log_cb = reg->log_cb;
    c->log_opaque = reg->log_opaque;
    pthread_mutex_unlock(&reg->lock);
    char addr[KTR_PEER_ADDR_MAX] = "";
    const klog_transport_methods *m = c->tr->m;
    if (m->peer && m->peer(c->tr->st, c->cst, addr, sizeof addr, c->ident, sizeof c->ident) < 0) {
        addr[0] = '\0';
        c->ident[0] = '\0';
    }
    addr[sizeof addr - 1] = '\0';
    c->ident[sizeof c->ident - 1] = '\0';
    snprintf(c->peer, sizeof c->peer, "%s://%s", c->tr->scheme, addr);
    atomic_fetch_add(&c->reg->conns, 1);
}

/* Make err the connection's final error (the first one wins) and log it
 * if it is news and worth a line.  Returns the final error. */
__attribute__((format(printf, 3, 4))) static int conn_fail(klog_conn *c, int err, const char *fmt, ...)
{
    int prev = 0;
    if (!atomic_compare_exchange_strong(&c->err, &prev, err))
        return prev;
    if (err == -ECANCELED || err == -EPIPE || !c->log_cb)
        return err;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->log_cb(c->log_opaque, c->peer, err, msg);
    return err;
}

/* Stop early on a shut or failed connection. */
static int conn_state(klog_conn *c)
{
    if (atomic_load_explicit(&c->shut, memory_order_acquire))
        return -ECANCELED;
    return atomic_load_explicit(&c->err, memory_order_acquire);
}

/* ---- listeners ---------------------------------------------------------------- */

KLOG_API int klog_transport_listen(klog_transport_registry *reg, const char *url, klog_listener **out)
{
    if (!reg || !out)
        return -EINVAL;
    *out = NULL;
    char scheme[SCHEME_MAX + 1];
    const char *rest;
    if (parse_url(url, scheme, &rest, false) < 0)
        return -EINVAL;
    struct ktr_entry *tr = find_entry(reg, scheme);
    if (!tr)
        return -EPROTONOSUPPORT;
    if (!tr->m->listen)
        return -EOPNOTSUPP;
    size_t size = sizeof(klog_listener) + tr->m->listener_size;
    klog_listener *l = calloc(1, size);
    if (!l)
        return -ENOMEM;
    l->reg = reg;
    l->tr = tr;
    l->size = size;
    char bound[KTR_ADDR_MAX] = "";
    int rc = tr->m->listen(tr->st, l->lst, rest, bound, sizeof bound);
    if (rc < 0) {
        free(l);
        return rc;
    }
    bound[sizeof bound - 1] = '\0';
    snprintf(l->url, sizeof l->url, "%s://%s", scheme, bound);
    reg_ref(reg);
    atomic_fetch_add(&reg->bytes, size);
    *out = l;
    return 0;
}

KLOG_API const char *klog_listener_url(const klog_listener *l)
{
    return l ? l->url : NULL;
}

KLOG_API int klog_listener_accept(klog_listener *l, int timeout_ms, klog_conn **out)
{
    if (!l || !out)
        return -EINVAL;
    *out = NULL;
    if (atomic_load(&l->shut))
        return -ECANCELED;
    int64_t deadline = ktr__deadline(timeout_ms);
    /* A server polling with timeout 0 would allocate and free an object per
     * empty accept; keep one. */
    klog_conn *c = atomic_exchange(&l->spare, NULL);
    if (!c && !(c = conn_alloc(l->reg, l->tr)))
        return -ENOMEM;
    const klog_transport_methods *m = l->tr->m;
    int rc = m->accept(l->tr->st, l->lst, c->cst, deadline);
    if (rc < 0) {
        if (rc == -EAGAIN)
            rc = -ETIMEDOUT;
        memset(c->cst, 0, m->conn_size); /* the transport left nothing in it */
        klog_conn *none = NULL;
        if (!atomic_compare_exchange_strong(&l->spare, &none, c))
            conn_free(c);
        return rc;
    }
    conn_established(c);
    *out = c;
    return 0;
}

KLOG_API int klog_listener_fd(klog_listener *l)
{
    return klog_listener_control(l, KLOG_TRANSPORT_CTL_LISTENER_FD, NULL);
}

KLOG_API int klog_listener_shutdown(klog_listener *l)
{
    if (!l)
        return -EINVAL;
    if (!atomic_exchange(&l->shut, true))
        l->tr->m->listener_shutdown(l->tr->st, l->lst);
    return 0;
}

KLOG_API int klog_listener_close(klog_listener *l)
{
    if (!l)
        return 0;
    klog_transport_registry *reg = l->reg;
    l->tr->m->listener_close(l->tr->st, l->lst);
    klog_conn *spare = atomic_exchange(&l->spare, NULL);
    if (spare)
        conn_free(spare);
    atomic_fetch_sub(&reg->bytes, l->size);
    free(l);
    reg_unref(reg);
    return 0;
}

KLOG_API int klog_listener_control(klog_listener *l, int op, void *arg)
{
    if (!l)
        return -EINVAL;
    const klog_transport_methods *m = l->tr->m;
    if (!m->control)
        return -ENOTSUP;
    if (op == KLOG_TRANSPORT_CTL_LISTENER_FD) {
        int fd = -1;
        int rc = m->control(l->tr->st, l->lst, NULL, op, &fd);
        if (rc < 0)
            return rc;
        if (arg)
            *(int *)arg = fd;
        return fd < 0 ? -ENOTSUP : fd;
    }
    return m->control(l->tr->st, l->lst, NULL, op, arg);
}

/* ---- connections ---------------------------------------------------------------- */

KLOG_API int klog_transport_connect(klog_transport_registry *reg, const char *url, int timeout_ms,
                                   klog_conn **out)
{
    if (!reg || !out)
        return -EINVAL;
    *out = NULL;
    char scheme[SCHEME_MAX + 1];
    const char *rest;
    if (parse_url(url, scheme, &rest, false) < 0)
        return -EINVAL;
    struct ktr_entry *tr = find_entry(reg, scheme);
    if (!tr)
        return -EPROTONOSUPPORT;
    int64_t deadline = ktr__deadline(timeout_ms);
    klog_conn *c = conn_alloc(reg, tr);
    if (!c)
        return -ENOMEM;
    int rc = tr->m->connect(tr->st, c->cst, rest, deadline);
    if (rc < 0) {
        conn_free(c);
        return rc == -EAGAIN ? -ETIMEDOUT : rc;
    }
    conn_established(c);
    *out = c;
    return 0;
}

KLOG_API int klog_conn_send(klog_conn *c, const struct iovec *iov, int iovcnt, int timeout_ms)
{
    if (!c || iovcnt < 0 || iovcnt > IOV_CAP || (iovcnt > 0 && !iov))
        return -EINVAL;
    uint64_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > KLOG_TRANSPORT_MAX_FRAME_LIMIT)
            return KLOG_ETOOBIG;
        total += iov[i].iov_len;
        if (total > KLOG_TRANSPORT_MAX_FRAME_LIMIT)
            return KLOG_ETOOBIG;
    }
    int64_t deadline = ktr__deadline(timeout_ms);

    /* Our own copy of the vector, with the length in front; we advance it
     * in place as the transport takes bytes. */
    struct iovec stackv[17];
    struct iovec *v = stackv;
    if (iovcnt + 1 > (int)KLOG_ARRAY_LEN(stackv) && !(v = malloc((size_t)(iovcnt + 1) * sizeof *v)))
        return -ENOMEM;
    uint8_t hdr[4] = { (uint8_t)(total >> 24), (uint8_t)(total >> 16), (uint8_t)(total >> 8), (uint8_t)total };
    int n = 0;
    v[n++] = (struct iovec){ hdr, 4 };
    for (int i = 0; i < iovcnt; i++)
        if (iov[i].iov_len)
            v[n++] = iov[i];

    const klog_transport_methods *m = c->tr->m;
    pthread_mutex_lock(&c->tx);
    int rc = conn_state(c);
    uint64_t left = total + 4, sent = 0;
    int first = 0;
    while (rc == 0 && left > 0) {
        ssize_t k = m->send(c->tr->st, c->cst, v + first, n - first, deadline);
        if (k == -EAGAIN)
            k = -ETIMEDOUT;
        if (k == -ETIMEDOUT && sent == 0) {
            rc = -ETIMEDOUT; /* nothing of the frame went out: still framed */
            break;
        }
        if (k < 0) {
            if (atomic_load(&c->shut))
                k = -ECANCELED;
            rc = conn_fail(c, (int)k, "send failed after %llu of %llu bytes of a frame: %s",
                           (unsigned long long)sent, (unsigned long long)(total + 4), klog_strerror((int)k));
            break;
        }
        if (k == 0 || (uint64_t)k > left) {
            rc = conn_fail(c, -EIO, "transport %s took %zd bytes of %llu", c->tr->scheme, k,
                           (unsigned long long)left);
            break;
        }
        sent += (uint64_t)k;
        left -= (uint64_t)k;
        size_t skip = (size_t)k;
        while (first < n && skip >= v[first].iov_len)
            skip -= v[first++].iov_len;
        if (first < n) {
            v[first].iov_base = (uint8_t *)v[first].iov_base + skip;
            v[first].iov_len -= skip;
        }
    }
    pthread_mutex_unlock(&c->tx);
    if (v != stackv)
        free(v);
    return rc;
}

ssize_t ktr__conn_send_nowait(klog_conn *c, const struct iovec *iov, int iovcnt)
{
    if (!c || iovcnt <= 0 || !iov)
        return -EINVAL;
    const klog_transport_methods *m = c->tr->m;
    pthread_mutex_lock(&c->tx);
    ssize_t rc = conn_state(c);
    if (rc == 0) {
        ssize_t k = m->send(c->tr->st, c->cst, iov, iovcnt, 0);
        if (k == -EAGAIN || k == -ETIMEDOUT) {
            rc = 0;
        } else if (k <= 0) {
            if (k < 0 && atomic_load(&c->shut))
                k = -ECANCELED;
            rc = conn_fail(c, k < 0 ? (int)k : -EIO, "send failed: %s", klog_strerror(k < 0 ? (int)k : -EIO));
        } else {
            rc = k;
        }
    }
    pthread_mutex_unlock(&c->tx);
    return rc;
}

int ktr__conn_send_raw(klog_conn *c, const void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = ktr__deadline(timeout_ms);
    const klog_transport_methods *m = c->tr->m;
    pthread_mutex_lock(&c->tx);
    int rc = conn_state(c);
    size_t off = 0;
    while (rc == 0 && off < len) {
        struct iovec v = { (uint8_t *)buf + off, len - off };
        ssize_t k = m->send(c->tr->st, c->cst, &v, 1, deadline);
        if (k <= 0)
            rc = k < 0 ? (int)k : -EIO;
        else
            off += (size_t)k;
    }
    pthread_mutex_unlock(&c->tx);
    return rc;
}

size_t ktr__conn_rx_capacity(const klog_conn *c)
{
    return c->cap;
}

/* Read from the transport into p[0..want); returns > 0, 0 at end of stream,
 * -ETIMEDOUT or another error (not yet recorded). */
static ssize_t rx_some(klog_conn *c, void *p, size_t want, int64_t deadline)
{
    ssize_t k = c->tr->m->recv(c->tr->st, c->cst, p, want, deadline);
    if (k == -EAGAIN)
        k = -ETIMEDOUT;
    if (k > (ssize_t)want)
        k = -EIO;
    if (k < 0 && k != -ETIMEDOUT && atomic_load(&c->shut))
        k = -ECANCELED;
    return k;
}

static void rx_set_cap(klog_conn *c, uint8_t *buf, size_t cap)
{
    atomic_fetch_add(&c->reg->bytes, cap);
    atomic_fetch_sub(&c->reg->bytes, c->cap);
    c->buf = buf;
    c->cap = cap;
}

KLOG_API int klog_conn_recv(klog_conn *c, int timeout_ms, const void **frame)
{
    if (!c || !frame)
        return -EINVAL;
    *frame = NULL;
    if (pthread_mutex_trylock(&c->rx) != 0)
        return -EBUSY;
    int rc = conn_state(c);
    if (rc < 0)
        goto out;
    int64_t deadline = ktr__deadline(timeout_ms);

    /* A new frame: drop a big buffer the previous one needed. */
    if (c->hdr_got == 0 && c->cap > KTR_RX_KEEP) {
        free(c->buf);
        rx_set_cap(c, NULL, 0);
    }
    while (c->hdr_got < 4) {
        ssize_t k = rx_some(c, c->hdr + c->hdr_got, 4u - c->hdr_got, deadline);
        if (k == -ETIMEDOUT) {
            rc = -ETIMEDOUT;
            goto out;
        }
        if (k < 0) {
            rc = conn_fail(c, (int)k, "receive failed: %s", klog_strerror((int)k));
            goto out;
        }
        if (k == 0) {
            if (c->hdr_got == 0)
                rc = conn_fail(c, -EPIPE, "peer closed the connection");
            else
                rc = conn_fail(c, KLOG_ECORRUPT, "connection ended inside a frame's length (%u of 4 bytes)",
                               c->hdr_got);
            goto out;
        }
        c->hdr_got += (uint8_t)k;
        if (c->hdr_got == 4) {
            /* The cap, before a single byte is allocated for the frame. */
            uint32_t len = (uint32_t)c->hdr[0] << 24 | (uint32_t)c->hdr[1] << 16 | (uint32_t)c->hdr[2] << 8 | c->hdr[3];
            uint32_t max = atomic_load(&c->max_frame);
            if (len > max) {
                /* 0x16 0x03: a TLS handshake record, i.e. a TLS client on a
                 * plaintext listener (KAFKA-4090). */
                bool tls = c->hdr[0] == 0x16 && c->hdr[1] == 0x03 && c->hdr[2] <= 0x04;
                rc = conn_fail(c, KLOG_ETOOBIG,
                               "frame of %u bytes is over socket.request.max.bytes (%u)%s; closing the connection",
                               len, max, tls ? " (it looks like a TLS handshake: is the client set to use TLS "
                                               "on a plaintext listener?)" : "");
                goto out;
            }
            c->len = len;
            c->got = 0;
        }
    }
    while (c->got < c->len) {
        if (c->got == c->cap) {
            /* Grow with what arrived, not with what was announced: at most
             * twice the bytes received, at least KTR_RX_KEEP. */
            size_t ncap = KLOG_MAX((size_t)KTR_RX_KEEP, c->cap * 2);
            if (ncap > c->len)
                ncap = c->len;
            uint8_t *nb = realloc(c->buf, ncap);
            if (!nb) {
                rc = conn_fail(c, -ENOMEM, "no memory for a frame of %u bytes", c->len);
                goto out;
            }
            rx_set_cap(c, nb, ncap);
        }
        size_t want = KLOG_MIN(c->cap, (size_t)c->len) - c->got;
        ssize_t k = rx_some(c, c->buf + c->got, want, deadline);
        if (k == -ETIMEDOUT) {
            rc = -ETIMEDOUT;
            goto out;
        }
        if (k < 0) {
            rc = conn_fail(c, (int)k, "receive failed: %s", klog_strerror((int)k));
            goto out;
        }
        if (k == 0) {
            rc = conn_fail(c, KLOG_ECORRUPT, "connection ended %zu bytes into a frame of %u bytes", c->got,
                           c->len);
            goto out;
        }
        c->got += (size_t)k;
    }
    /* A whole frame. */
    static const uint8_t empty[1];
    *frame = c->len ? (const void *)c->buf : (const void *)empty;
    rc = (int)c->len;
    c->hdr_got = 0;
    c->len = 0;
    c->got = 0;
out:
    pthread_mutex_unlock(&c->rx);
    return rc;
}

KLOG_API int klog_conn_fd(klog_conn *c)
{
    if (!c)
        return -EINVAL;
    const klog_transport_methods *m = c->tr->m;
    if (!m->control)
        return -ENOTSUP;
    int fd = -1;
    int rc = m->control(c->tr->st, NULL, c->cst, KLOG_TRANSPORT_CTL_CONN_FD, &fd);
    if (rc < 0)
        return rc;
    return fd < 0 ? -ENOTSUP : fd;
}

KLOG_API int klog_conn_peer(const klog_conn *c, const char **url, const char **identity)
{
    if (!c)
        return -EINVAL;
    if (url)
        *url = c->peer;
    if (identity)
        *identity = c->ident;
    return 0;
}

KLOG_API int klog_conn_set_max_frame(klog_conn *c, uint32_t max_bytes)
{
    if (!c || max_bytes == 0 || max_bytes > KLOG_TRANSPORT_MAX_FRAME_LIMIT)
        return -EINVAL;
    atomic_store(&c->max_frame, max_bytes);
    return 0;
}

KLOG_API int klog_conn_shutdown(klog_conn *c)
{
    if (!c)
        return -EINVAL;
    if (!atomic_exchange(&c->shut, true))
        c->tr->m->shutdown(c->tr->st, c->cst);
    return 0;
}

KLOG_API int klog_conn_close(klog_conn *c)
{
    if (!c)
        return 0;
    c->tr->m->close(c->tr->st, c->cst);
    atomic_fetch_sub(&c->reg->conns, 1);
    conn_free(c);
    return 0;
}

KLOG_API int klog_conn_control(klog_conn *c, int op, void *arg)
{
    if (!c)
        return -EINVAL;
    if (op == KLOG_TRANSPORT_CTL_CONN_FD) {
        int fd = klog_conn_fd(c);
        if (fd >= 0 && arg)
            *(int *)arg = fd;
        return fd;
    }
    const klog_transport_methods *m = c->tr->m;
    if (!m->control)
        return -ENOTSUP;
    return m->control(c->tr->st, NULL, c->cst, op, arg);
}
