/*
 * lib/server/server.c - klog_server: listeners, network threads, connections.
 *
 * Shape (Kafka's SocketServer, folded into one kind of thread).  The
 * server runs num.network.threads workers.  Each owns an epoll set with
 * its connections' readiness descriptors and an eventfd for wake-ups;
 * worker 0 also watches the listeners and hands each accepted connection
 * to the workers in turn.  A connection is served one request at a time,
 * as a Kafka broker mutes a channel until its response is out: while a
 * request is being answered, parked or sent, its connection is not read.
 * So a connection costs its klog_conn (about 600 bytes plus the socket),
 * this struct, and buffers only while a request is in flight; nothing
 * grows with idle connections, and no thread is held by one.
 *
 * A response goes out without waiting (ktr__conn_send_nowait): what the
 * client's socket does not take is kept and finished when the descriptor
 * turns writable, so a client that stops reading holds up nothing but
 * itself.  A transport without a write descriptor is sent to with a
 * deadline instead (the only case in which one client can hold a worker,
 * for at most SEND_FALLBACK_MS).
 *
 * Parked calls (internal.h) wait in their worker's parked list; the worker
 * runs them again when woken (an eventfd write from ksrv_call_wake or
 * ksrv_worker_kick) or at their deadline.
 *
 * Threading: the klog_server_* functions are called by the application
 * (not concurrently on one server: klog/server.h); everything else runs
 * on the worker that owns the connection.  Shared between threads: the
 * listeners array (lmu), each worker's inbox of new connections (imu), the
 * atomics below.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "common/conf.h"
#include "format/format.h"
#include "replication/module.h"
#include "server/acl.h"
#include "server/conf_keys.h"
#include "server/internal.h"
#include "topic/topic.h"
#include "transport/transport_internal.h"

#define MAX_LISTENERS 64
#define EVENTS_PER_WAIT 64
#define FRAMES_PER_TURN 16        /* requests served per connection per wake-up */
#define ACCEPTS_PER_TURN 64
#define SEND_FALLBACK_MS 30000
#define OUT_KEEP (256u * 1024u)   /* an out buffer up to this size is kept between requests */
#define IDLE_SWEEP_NS 1000000000LL

#define IP_BUCKETS 1024
#define QUOTA_BUCKETS 1024
#define QUOTA_MAX_CLIENTS 4096     /* more share one bucket */
#define QUOTA_THROTTLE_MAX_MS 30000

enum ev_kind { EV_WAKE = 1, EV_LISTENER, EV_CONN };

/* Request latency histogram bounds, ms (klog_server_stats). */
static const int lat_bounds_ms[] = { 1, 5, 10, 50, 100, 500, 1000, 5000, 30000 };
#define LAT_BUCKETS (int)(sizeof lat_bounds_ms / sizeof lat_bounds_ms[0])
#define API_KEYS 64

/* What klog_server_stats reports, counted since klog_server_new. */
struct ksrv_metrics {
    _Atomic uint64_t requests[API_KEYS];
    _Atomic uint64_t latency[API_KEYS][LAT_BUCKETS + 1]; /* the last is +Inf */
    _Atomic uint64_t latency_us[API_KEYS];
    _Atomic uint64_t bytes_in, bytes_out;
    _Atomic uint64_t closed_bad;         /* closed for a malformed, unsupported or unauthenticated request */
    _Atomic uint64_t sasl_ok, sasl_failed;
    _Atomic uint64_t throttled, throttle_ms;
};

/* A client's byte rate against quota.producer.default or
 * quota.consumer.default: a token bucket holding at most one second of
 * its quota. */
struct quota {
    struct quota *next;
    double tokens;
    int64_t last;                  /* ns */
    char key[KSRV_PRINCIPAL_MAX + 260]; /* "P" or "F", principal, client id */
};

/* Connections held per peer address (max.connections.per.ip). */
struct ipcount {
    struct ipcount *next;
    int n;
    char host[64];
};

struct ksrv_listener {
    int kind;                      /* EV_LISTENER */
    klog_listener *l;
    int fd;
    bool tcp;
    _Atomic uint64_t accepted, refused;
    _Atomic int64_t open;          /* connections from it held now */
};

struct ksrv_conn {
    int kind;                      /* EV_CONN */
    struct klog_server *srv;
    ksrv_worker *w;
    klog_conn *c;
    int rfd;                       /* readiness (read) descriptor */
    bool wfd_same;                 /* the same descriptor turns writable */
    unsigned mask;                 /* events registered with epoll */
    int64_t last_active;
    struct ksrv_conn *prev, *next; /* the worker's connections */
    struct ksrv_conn *pprev, *pnext; /* the worker's parked calls */
    bool parked;
    bool busy;                     /* a call is in flight */
    bool sending;
    kk_arena arena;
    kk_wbuf out;
    uint8_t lenbuf[4];
    struct iovec *iov;             /* what is left of the response being sent */
    int iovn, iovcap, iovfirst;
    ksrv_call call;
    char local_host[128];
    int32_t local_port;
    struct ksrv_conn *aprev, *anext; /* the worker's connections to read again */
    bool again;
    bool pending_ctl;              /* the transport has KLOG_TRANSPORT_CTL_CONN_PENDING */
    bool ident_done;               /* the transport's identity was asked for */
    ksrv_auth auth;
    struct ksrv_listener *from;    /* the listener that accepted it */
    int64_t mute_until;            /* throttled: not read before (ns) */
    bool muted;
    struct ksrv_conn *mprev, *mnext; /* the worker's muted connections */
    size_t frame_len;              /* the request being served */
};

struct ksrv_worker {
    int kind;                      /* EV_WAKE */
    struct klog_server *srv;
    int idx;
    pthread_t th;
    bool started;
    int epfd, efd;
    _Atomic bool stop;
    _Atomic bool kicked;           /* wake every parked call */
    _Atomic bool woken;            /* some call was woken */
    pthread_mutex_t imu;           /* inbox */
    struct ksrv_conn *inbox;
    struct ksrv_conn *conns;
    struct ksrv_conn *parked;
    struct ksrv_conn *again;       /* readable though epoll cannot tell (TLS) */
    struct ksrv_conn *muted;       /* throttled by a quota */
    int nconns;
    int64_t next_sweep;
    kf_codec *codec;
};

struct klog_server {
    struct klog *k;
    ksrv_conf conf;
    klog_transport_registry *reg;
    pthread_mutex_t lmu;
    struct ksrv_listener *ls[MAX_LISTENERS];
    _Atomic int nls;
    ksrv_worker *w;
    int nw;
    _Atomic int nconns;
    _Atomic unsigned rr;
    bool started, stopped;
    ksrv_groups *groups;
    klog_server_log_cb log_cb;
    void *log_opaque;
    kk_limits lim;
    bool tls;                      /* "tls" has a certificate or a PSK: reload it */
    ksrv_sec *sec;
    pthread_mutex_t ipmu;          /* ips */
    struct ipcount *ips[IP_BUCKETS];
    struct ksrv_metrics m;
    pthread_mutex_t qmu;           /* quotas */
    struct quota *quotas[QUOTA_BUCKETS];
    int nquotas;
};

/* ---- small things ------------------------------------------------------------- */

static int64_t now_ns(void)
{
    return (int64_t)klog__now_ns();
}

void ksrv_log(const struct klog_server *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s->log_cb)
        s->log_cb(s->log_opaque, msg);
    else
        fprintf(stderr, "klog serve: %s\n", msg);
}

static void transport_log(void *opaque, const char *peer, int err, const char *msg)
{
    if (err == -ECONNRESET)
        return; /* a client going away without a goodbye: common, and no fault of ours */
    if (strncmp(peer, "tls:", 4) == 0 && (err == -EPROTO || err == -EKEYREJECTED || err == -EACCES)) {
        ksrv_log(opaque, "%s: TLS handshake failed: %s", peer,
                 err == -EPROTO ? "not TLS, or no protocol version or cipher in common"
                 : err == -EKEYREJECTED ? "its certificate does not verify against ssl.ca.location"
                                        : "no client certificate, and ssl.client.auth=required");
        return;
    }
    ksrv_log(opaque, "%s: %s (%s)", peer, msg, klog_strerror(err));
}

struct klog *ksrv_klog(const struct klog_server *s)
{
    return s->k;
}

const ksrv_conf *ksrv_config(const struct klog_server *s)
{
    return &s->conf;
}

ksrv_groups *ksrv_groups_of(const struct klog_server *s)
{
    return s->groups;
}

ksrv_sec *ksrv_sec_of(const struct klog_server *s)
{
    return s->sec;
}

ksrv_auth *ksrv_conn_auth(ksrv_conn *c)
{
    return &c->auth;
}

void ksrv_conn_set_max_frame(ksrv_conn *c, uint32_t max)
{
    klog_conn_set_max_frame(c->c, max);
}

/* ---- connections per address -------------------------------------------------- */

static unsigned ip_hash(const char *h)
{
    unsigned x = 2166136261u;
    for (; *h; h++)
        x = (x ^ (unsigned char)*h) * 16777619u;
    return x % IP_BUCKETS;
}

/* Count a connection from host; false (nothing counted) over the cap. */
static bool ip_take(struct klog_server *s, const char *host)
{
    if (s->conf.max_conns_per_ip >= INT32_MAX)
        return true;
    pthread_mutex_lock(&s->ipmu);
    struct ipcount **pp = &s->ips[ip_hash(host)], *e = *pp;
    while (e && strcmp(e->host, host))
        e = e->next;
    bool ok = true;
    if (e && e->n >= s->conf.max_conns_per_ip) {
        ok = false;
    } else if (e) {
        e->n++;
    } else if ((e = calloc(1, sizeof *e))) {
        snprintf(e->host, sizeof e->host, "%s", host);
        e->n = 1;
        e->next = *pp;
        *pp = e;
    }
    pthread_mutex_unlock(&s->ipmu);
    return ok;
}

/* ---- quotas ------------------------------------------------------------------------ */

/* Charge n bytes to the client's bucket for kind 'P' (produce) or 'F'
 * (fetch) at rate bytes/s; the time it must wait, in ms (Kafka's
 * throttle_time_ms), 0 within its quota. */
static int32_t quota_charge(struct klog_server *s, char kind, int64_t rate, const char *principal,
                            const kk_str *client_id, size_t n)
{
    char key[sizeof ((struct quota *)0)->key];
    snprintf(key, sizeof key, "%c%s/%.*s", kind, principal, client_id->p ? (int)KLOG_MIN(client_id->len, 255) : 0,
             client_id->p ? client_id->p : "");
    int64_t now = now_ns();
    pthread_mutex_lock(&s->qmu);
    unsigned h = ip_hash(key) % QUOTA_BUCKETS;
    struct quota *q = s->quotas[h];
    while (q && strcmp(q->key, key))
        q = q->next;
    if (!q && s->nquotas >= QUOTA_MAX_CLIENTS) {
        /* a client inventing ids gets no bucket of its own */
        snprintf(key, sizeof key, "%c(others)", kind);
        h = ip_hash(key) % QUOTA_BUCKETS;
        for (q = s->quotas[h]; q && strcmp(q->key, key); q = q->next)
            ;
    }
    if (!q && (q = calloc(1, sizeof *q))) {
        snprintf(q->key, sizeof q->key, "%s", key);
        q->tokens = (double)rate;
        q->last = now;
        q->next = s->quotas[h];
        s->quotas[h] = q;
        s->nquotas++;
    }
    int32_t ms = 0;
    if (q) {
        q->tokens += (double)rate * (double)(now - q->last) / 1e9;
        if (q->tokens > (double)rate)
            q->tokens = (double)rate;
        q->last = now;
        q->tokens -= (double)n;
        if (q->tokens < 0) {
            double d = -q->tokens * 1000.0 / (double)rate;
            ms = d > QUOTA_THROTTLE_MAX_MS ? QUOTA_THROTTLE_MAX_MS : (int32_t)d + 1;
        }
    }
    pthread_mutex_unlock(&s->qmu);
    return ms;
}

/* After a Produce or Fetch is answered: charge its bytes, put the
 * throttle time in the response (Produce v1+: its last field; Fetch v1+:
 * the first after the correlation id), and keep the connection unread for
 * that long (KIP-219: answer at once, then mute). */
static void quota_apply(struct ksrv_conn *cn, size_t frame_len, bool responded)
{
    struct klog_server *s = cn->srv;
    ksrv_call *c = &cn->call;
    int16_t key = c->req.hdr.api_key, v = c->req.hdr.api_version;
    int64_t rate = key == KK_API_PRODUCE ? s->conf.quota_produce : key == KK_API_FETCH ? s->conf.quota_fetch : 0;
    if (rate <= 0 || v < 0)
        return;
    kk_wbuf *o = &cn->out;
    size_t n = key == KK_API_PRODUCE ? frame_len : kk_wbuf_len(o);
    int32_t ms = quota_charge(s, key == KK_API_PRODUCE ? 'P' : 'F', rate, cn->auth.principal, &c->req.hdr.client_id, n);
    if (ms <= 0)
        return;
    if (responded && v >= 1 && !o->err) {
        if (key == KK_API_PRODUCE && o->nrefs == 0 && o->n >= 8)
            kk_w_patch_i32(o, o->n - 4, ms);
        else if (key == KK_API_FETCH && o->n >= 8)
            kk_w_patch_i32(o, 4, ms);
    }
    atomic_fetch_add_explicit(&s->m.throttled, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->m.throttle_ms, (uint64_t)ms, memory_order_relaxed);
    int64_t until = now_ns() + (int64_t)ms * 1000000;
    if (until > cn->mute_until)
        cn->mute_until = until;
}

static void ip_give(struct klog_server *s, const char *host)
{
    if (s->conf.max_conns_per_ip >= INT32_MAX)
        return;
    pthread_mutex_lock(&s->ipmu);
    for (struct ipcount **pp = &s->ips[ip_hash(host)]; *pp; pp = &(*pp)->next) {
        struct ipcount *e = *pp;
        if (strcmp(e->host, host))
            continue;
        if (--e->n == 0) {
            *pp = e->next;
            free(e);
        }
        break;
    }
    pthread_mutex_unlock(&s->ipmu);
}

const char *ksrv_conn_peer(const ksrv_conn *c)
{
    const char *url = "";
    klog_conn_peer(c->c, &url, NULL);
    return url;
}

void ksrv_conn_local(const ksrv_conn *c, const char **host, int32_t *port)
{
    const ksrv_conf *cf = &c->srv->conf;
    *host = cf->advertised_host[0] ? cf->advertised_host : c->local_host;
    *port = c->local_port;
}

void *ksrv_alloc(ksrv_call *c, size_t n)
{
    if (n > SIZE_MAX - 16)
        return NULL;
    void **b = calloc(1, 16 + n);
    if (!b)
        return NULL;
    *b = c->mem;
    c->mem = b;
    return (uint8_t *)b + 16;
}

static void call_mem_free(ksrv_call *c)
{
    void **b = c->mem;
    while (b) {
        void **next = *b;
        free(b);
        b = next;
    }
    c->mem = NULL;
}

kf_codec *ksrv_codec(ksrv_call *c)
{
    if (!c->w->codec && kf_codec_new(&c->w->codec) < 0)
        c->w->codec = NULL;
    return c->w->codec;
}

kk_wbuf *ksrv_out(ksrv_call *c)
{
    return &c->conn->out;
}

int ksrv_respond(ksrv_call *c, const void *body)
{
    kk_wbuf *w = &c->conn->out;
    kk_wbuf_reset(w);
    int rc = kk_response_encode(w, c->req.hdr.api_key, c->req.hdr.api_version, c->req.hdr.correlation_id, body);
    if (rc < 0) {
        ksrv_log(c->srv, "%s: cannot encode the %s v%d response: %s", ksrv_conn_peer(c->conn),
                 c->req.api ? c->req.api->name : "?", c->req.hdr.api_version, klog_strerror(rc));
        return rc;
    }
    return KSRV_DONE;
}

static void efd_write(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, a wake-up is pending anyway */
}

void ksrv_call_wake(ksrv_call *c)
{
    if (atomic_exchange_explicit(&c->woken, true, memory_order_acq_rel))
        return;
    atomic_store_explicit(&c->w->woken, true, memory_order_release);
    efd_write(c->w->efd);
}

void ksrv_worker_kick(ksrv_worker *w)
{
    atomic_store_explicit(&w->kicked, true, memory_order_release);
    efd_write(w->efd);
}

/* ---- epoll --------------------------------------------------------------------- */

static void conn_set_mask(struct ksrv_conn *cn, unsigned mask)
{
    if (cn->mask == mask)
        return;
    struct epoll_event ev = { .events = mask, .data.ptr = cn };
    if (epoll_ctl(cn->w->epfd, EPOLL_CTL_MOD, cn->rfd, &ev) == 0)
        cn->mask = mask;
}

/* ---- connections ------------------------------------------------------------- */

static void unpark(struct ksrv_conn *cn)
{
    if (!cn->parked)
        return;
    if (cn->pprev)
        cn->pprev->pnext = cn->pnext;
    else
        cn->w->parked = cn->pnext;
    if (cn->pnext)
        cn->pnext->pprev = cn->pprev;
    cn->pprev = cn->pnext = NULL;
    cn->parked = false;
}

static void again_add(struct ksrv_conn *cn)
{
    if (cn->again)
        return;
    cn->again = true;
    cn->aprev = NULL;
    cn->anext = cn->w->again;
    if (cn->w->again)
        cn->w->again->aprev = cn;
    cn->w->again = cn;
}

static void again_del(struct ksrv_conn *cn)
{
    if (!cn->again)
        return;
    if (cn->aprev)
        cn->aprev->anext = cn->anext;
    else
        cn->w->again = cn->anext;
    if (cn->anext)
        cn->anext->aprev = cn->aprev;
    cn->aprev = cn->anext = NULL;
    cn->again = false;
}

static void mute_del(struct ksrv_conn *cn)
{
    if (!cn->muted)
        return;
    if (cn->mprev)
        cn->mprev->mnext = cn->mnext;
    else
        cn->w->muted = cn->mnext;
    if (cn->mnext)
        cn->mnext->mprev = cn->mprev;
    cn->mprev = cn->mnext = NULL;
    cn->muted = false;
}

/* Throttled: read nothing until mute_until (a client that goes away is
 * still seen: RDHUP). */
static void mute_add(struct ksrv_conn *cn)
{
    if (!cn->muted) {
        cn->muted = true;
        cn->mprev = NULL;
        cn->mnext = cn->w->muted;
        if (cn->w->muted)
            cn->w->muted->mprev = cn;
        cn->w->muted = cn;
    }
    again_del(cn);
    conn_set_mask(cn, EPOLLRDHUP);
}

static void call_end(struct ksrv_conn *cn)
{
    ksrv_call *c = &cn->call;
    if (c->state_free)
        c->state_free(c);
    c->state_free = NULL;
    c->state = NULL;
    unpark(cn);
    call_mem_free(c);
    kk_arena_reset(&cn->arena);
    if (cn->out.cap > OUT_KEEP) {
        size_t max = cn->out.max;
        size_t ref_min = cn->out.ref_min;
        kk_wbuf_free(&cn->out);
        kk_wbuf_init(&cn->out, max);
        cn->out.ref_min = ref_min;
    } else {
        kk_wbuf_reset(&cn->out);
    }
    if (cn->iovcap > 64) {
        free(cn->iov);
        cn->iov = NULL;
        cn->iovcap = 0;
    }
    cn->iovn = cn->iovfirst = 0;
    cn->busy = cn->sending = false;
}

static void conn_close(struct ksrv_conn *cn)
{
    ksrv_worker *w = cn->w;
    if (cn->busy)
        call_end(cn);
    again_del(cn);
    mute_del(cn);
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, cn->rfd, NULL);
    if (cn->prev)
        cn->prev->next = cn->next;
    else
        w->conns = cn->next;
    if (cn->next)
        cn->next->prev = cn->prev;
    w->nconns--;
    atomic_fetch_sub(&cn->srv->nconns, 1);
    ip_give(cn->srv, cn->auth.host);
    ksrv_auth_clear(&cn->auth);
    atomic_fetch_sub_explicit(&cn->from->open, 1, memory_order_relaxed);
    klog_conn_shutdown(cn->c);
    klog_conn_close(cn->c);
    kk_arena_reset(&cn->arena);
    kk_wbuf_free(&cn->out);
    free(cn->iov);
    free(cn);
}

/* The host and port this connection reached us at, for Metadata. */
static void conn_local_addr(struct ksrv_conn *cn, bool tcp, const char *lurl)
{
    cn->local_port = 0;
    snprintf(cn->local_host, sizeof cn->local_host, "%s", lurl);
    if (!tcp)
        return;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (cn->rfd < 0 || getsockname(cn->rfd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, cn->local_host, sizeof cn->local_host);
        cn->local_port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, cn->local_host, sizeof cn->local_host);
        cn->local_port = ntohs(a->sin6_port);
    }
}

static void worker_adopt(ksrv_worker *w, struct ksrv_conn *cn)
{
    cn->w = w;
    cn->call.w = w;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = cn };
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, cn->rfd, &ev) != 0) {
        ksrv_log(cn->srv, "%s: epoll_ctl: %s", ksrv_conn_peer(cn), strerror(errno));
        atomic_fetch_sub(&cn->srv->nconns, 1);
        ip_give(cn->srv, cn->auth.host);
        atomic_fetch_sub_explicit(&cn->from->open, 1, memory_order_relaxed);
        klog_conn_close(cn->c);
        kk_wbuf_free(&cn->out);
        free(cn);
        return;
    }
    cn->mask = EPOLLIN;
    cn->last_active = now_ns();
    cn->prev = NULL;
    cn->next = w->conns;
    if (w->conns)
        w->conns->prev = cn;
    w->conns = cn;
    w->nconns++;
}

/* ---- sending ----------------------------------------------------------------- */

/* Push what is left of the response; 1 when all of it went out, 0 when
 * the socket is full (the rest waits for EPOLLOUT), < 0 on failure. */
static int conn_push(struct ksrv_conn *cn)
{
    while (cn->iovfirst < cn->iovn) {
        int cnt = cn->iovn - cn->iovfirst;
        if (cnt > 1024)
            cnt = 1024;
        ssize_t k = ktr__conn_send_nowait(cn->c, cn->iov + cn->iovfirst, cnt);
        if (k < 0)
            return (int)k;
        if (k == 0)
            return 0;
        cn->last_active = now_ns();
        size_t skip = (size_t)k;
        while (cn->iovfirst < cn->iovn && skip >= cn->iov[cn->iovfirst].iov_len)
            skip -= cn->iov[cn->iovfirst++].iov_len;
        if (cn->iovfirst < cn->iovn) {
            cn->iov[cn->iovfirst].iov_base = (uint8_t *)cn->iov[cn->iovfirst].iov_base + skip;
            cn->iov[cn->iovfirst].iov_len -= skip;
        }
    }
    return 1;
}

/* Start sending the response in cn->out.  1: sent (the call is over);
 * 0: the rest waits for the socket; < 0: the connection failed. */
static int conn_send_response(struct ksrv_conn *cn)
{
    kk_wbuf *o = &cn->out;
    size_t len = kk_wbuf_len(o);
    int need = kk_wbuf_iov(o, NULL, 0) + 1;
    if (need > cn->iovcap) {
        struct iovec *v = realloc(cn->iov, (size_t)need * sizeof *v);
        if (!v)
            return -ENOMEM;
        cn->iov = v;
        cn->iovcap = need;
    }
    cn->lenbuf[0] = (uint8_t)(len >> 24);
    cn->lenbuf[1] = (uint8_t)(len >> 16);
    cn->lenbuf[2] = (uint8_t)(len >> 8);
    cn->lenbuf[3] = (uint8_t)len;
    cn->iov[0] = (struct iovec){ cn->lenbuf, 4 };
    cn->iovn = 1 + kk_wbuf_iov(o, cn->iov + 1, cn->iovcap - 1);
    cn->iovfirst = 0;
    if (!cn->wfd_same) {
        /* No write readiness from this transport: send with a deadline. */
        int rc = klog_conn_send(cn->c, cn->iov + 1, cn->iovn - 1, SEND_FALLBACK_MS);
        return rc < 0 ? rc : 1;
    }
    int rc = conn_push(cn);
    if (rc == 0) {
        cn->sending = true;
        conn_set_mask(cn, EPOLLOUT);
    }
    return rc;
}

/* ---- serving a request ------------------------------------------------------- */

/* A call is over (answered, or failed): count it. */
static void metrics_call(struct ksrv_conn *cn, int rc)
{
    struct ksrv_metrics *m = &cn->srv->m;
    ksrv_call *c = &cn->call;
    int16_t key = c->req.hdr.api_key;
    if (key < 0 || key >= API_KEYS || c->req.hdr.api_version < 0)
        return;
    int64_t us = (now_ns() - c->started) / 1000;
    int b = 0;
    while (b < LAT_BUCKETS && us > (int64_t)lat_bounds_ms[b] * 1000)
        b++;
    atomic_fetch_add_explicit(&m->requests[key], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency[key][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_us[key], (uint64_t)(us > 0 ? us : 0), memory_order_relaxed);
    atomic_fetch_add_explicit(&m->bytes_in, cn->frame_len + 4, memory_order_relaxed);
    if (rc == KSRV_DONE)
        atomic_fetch_add_explicit(&m->bytes_out, kk_wbuf_len(&cn->out) + 4, memory_order_relaxed);
}

void ksrv_metric_auth(struct klog_server *s, bool ok)
{
    atomic_fetch_add_explicit(ok ? &s->m.sasl_ok : &s->m.sasl_failed, 1, memory_order_relaxed);
}

static void park(struct ksrv_conn *cn)
{
    if (cn->parked)
        return;
    cn->parked = true;
    cn->pprev = NULL;
    cn->pnext = cn->w->parked;
    if (cn->w->parked)
        cn->w->parked->pprev = cn;
    cn->w->parked = cn;
    /* Not read while parked, but a client that goes away is seen (below). */
    conn_set_mask(cn, EPOLLRDHUP);
}


/* Run the call's handler and act on its answer.  Returns 1 when the call
 * is over (the connection may read again), 0 when it waits (parked or
 * sending), < 0 when the connection must close. */
static int call_run(struct ksrv_conn *cn)
{
    ksrv_call *c = &cn->call;
    ksrv_handler h = ksrv_handler_for(c->req.hdr.api_key);
    atomic_store_explicit(&c->woken, false, memory_order_relaxed);
    int rc = h(c);
    c->runs++;
    if (rc == KSRV_PARK) {
        park(cn);
        return 0;
    }
    unpark(cn);
    metrics_call(cn, rc);
    bool close_after = c->close_after;
    if (rc == KSRV_NORESPONSE) {
        quota_apply(cn, cn->frame_len, false);
        call_end(cn);
        return close_after ? -ECONNABORTED : 1;
    }
    if (rc < 0)
        return rc;
    quota_apply(cn, cn->frame_len, true);
    rc = conn_send_response(cn);
    if (rc == 1) {
        call_end(cn);
        if (close_after)
            return -ECONNABORTED;
    }
    return rc;
}

static int serve_frame(struct ksrv_conn *cn, const void *frame, size_t len)
{
    ksrv_call *c = &cn->call;
    c->srv = cn->srv;
    c->w = cn->w;
    c->conn = cn;
    c->deadline = 0;
    c->started = now_ns();
    c->runs = 0;
    c->expired = false;
    c->state = NULL;
    c->state_free = NULL;
    c->close_after = false;
    atomic_store(&c->woken, false);
    cn->busy = true;
    cn->frame_len = len;
    ksrv_auth *a = &cn->auth;
    if (a->raw) {
        /* After SaslHandshake v0 the SASL tokens come as bare frames, until
         * the exchange is over (also on a connection a TLS certificate had
         * authenticated already). */
        ksrv_sasl_raw_call(c, frame, len);
        return call_run(cn);
    }
    const uint8_t *fb = frame;
    if (len >= 2 && ((int16_t)(fb[0] << 8 | fb[1]) == KREP_API_RAFT || (int16_t)(fb[0] << 8 | fb[1]) == KREP_API_TOPICS)) {
        /* The quorum controller's raft messages between peers and the
         * controller's topic records (private keys: lib/replication),
         * ClusterAction like the other replication requests. */
        int rr = !a->authed || !ksrv_allowed(c, KACL_OP_CLUSTER_ACTION, KACL_RES_CLUSTER, KACL_CLUSTER_NAME)
                     ? -EACCES
                     : krep_mod_raft_frame(krep_mod_of(ksrv_klog(cn->srv)), frame, len, &cn->out);
        if (rr < 0) {
            ksrv_log(cn->srv, "%s: raft frame refused (%s): closing the connection", ksrv_conn_peer(cn),
                     klog_strerror(rr));
            return rr;
        }
        rr = conn_send_response(cn);
        if (rr == 1)
            call_end(cn);
        return rr;
    }
    int rc = kk_request_decode(frame, len, &cn->srv->lim, &cn->arena, &c->req);
    if (rc == KLOG_EFORMAT && c->req.hdr.api_key == KK_API_API_VERSIONS) {
        rc = 0; /* answered with UNSUPPORTED_VERSION and the list */
    } else if (rc == KLOG_EFORMAT) {
        ksrv_log(cn->srv, "%s: %s (api key %d version %d): closing the connection", ksrv_conn_peer(cn),
                 c->req.api ? "unsupported version" : "unknown API", c->req.hdr.api_key, c->req.hdr.api_version);
        return rc;
    } else if (rc < 0) {
        ksrv_log(cn->srv, "%s: malformed request (%s at byte %u%s%s): closing the connection",
                 ksrv_conn_peer(cn), kk_reason_name(c->req.fail.reason), c->req.fail.offset,
                 c->req.fail.field ? ", field " : "", c->req.fail.field ? c->req.fail.field : "");
        return rc;
    }
    if (!ksrv_handler_for(c->req.hdr.api_key) || !ksrv_advertised(cn->srv, c->req.hdr.api_key)) {
        ksrv_log(cn->srv, "%s: API key %d is not served: closing the connection", ksrv_conn_peer(cn),
                 c->req.hdr.api_key);
        return KLOG_EFORMAT;
    }
    int16_t key = c->req.hdr.api_key;
    if (!a->authed && key != KK_API_API_VERSIONS && key != KK_API_SASL_HANDSHAKE && key != KK_API_SASL_AUTHENTICATE) {
        /* As Kafka: nothing but ApiVersions and SASL before authenticating. */
        ksrv_log(cn->srv, "%s: %s request before authenticating: closing the connection", ksrv_conn_peer(cn),
                 c->req.api ? c->req.api->name : "?");
        return -EACCES;
    }
    return call_run(cn);
}

/* Read and serve requests while the connection has whole ones and is not
 * waiting on a call.  Returns < 0 when the connection must close. */
/* Who the transport says the peer is (TLS: once its handshake is over). */
static void conn_identify(struct ksrv_conn *cn)
{
    char id[KTR_IDENT_MAX];
    int rc = klog_conn_control(cn->c, KLOG_TRANSPORT_CTL_TLS_PEER, id);
    if (rc == -EAGAIN)
        return;
    cn->auth.identified = true;
    if (rc == 0 && id[0]) {
        ksrv_auth_identity(cn->srv->sec, &cn->auth, id);
        if (cn->auth.authed)
            klog_conn_set_max_frame(cn->c, cn->srv->conf.max_frame);
    }
}

static int conn_readable(struct ksrv_conn *cn)
{
    again_del(cn);
    if (cn->mute_until) {
        if (now_ns() < cn->mute_until) {
            mute_add(cn);
            return 0;
        }
        cn->mute_until = 0;
        mute_del(cn);
    }
    for (int i = 0; i < FRAMES_PER_TURN && !cn->busy; i++) {
        const void *frame;
        if (!cn->auth.identified)
            conn_identify(cn);
        int n = klog_conn_recv(cn->c, 0, &frame);
        if (n == -ETIMEDOUT)
            return 0;
        if (n < 0)
            return n;
        /* the recv that finished a TLS handshake may bring the first
         * request with it (a peer sends no ApiVersions first) */
        if (!cn->auth.identified)
            conn_identify(cn);
        cn->last_active = now_ns();
        int rc = serve_frame(cn, frame, (size_t)n);
        if (rc < 0) {
            if (rc != -ECONNABORTED)
                atomic_fetch_add_explicit(&cn->srv->m.closed_bad, 1, memory_order_relaxed);
            return rc;
        }
        if (!cn->busy && cn->mute_until) {
            mute_add(cn); /* throttled by its quota */
            return 0;
        }
    }
    if (!cn->busy)
        again_add(cn); /* a turn's worth: the rest on the next turn */
    return 0;
}

/* Back to waiting for a request.  A transport may hold bytes the
 * descriptor does not show (TLS: plaintext decrypted with the last
 * record), or wait for the socket to take a handshake flight: ask it,
 * and read again on the worker's next turn, or wait for POLLOUT too. */
static void conn_idle(struct ksrv_conn *cn)
{
    if (cn->muted)
        return; /* mute_add set its mask */
    unsigned mask = EPOLLIN;
    if (cn->pending_ctl) {
        int f = 0;
        if (klog_conn_control(cn->c, KLOG_TRANSPORT_CTL_CONN_PENDING, &f) < 0)
            f = 0;
        if (f & KLOG_TRANSPORT_PENDING_READ)
            again_add(cn);
        if (f & KLOG_TRANSPORT_PENDING_WRITE)
            mask |= EPOLLOUT;
    }
    conn_set_mask(cn, mask);
}

static void conn_after(struct ksrv_conn *cn, int rc)
{
    if (rc < 0) {
        conn_close(cn);
        return;
    }
    if (!cn->busy)
        conn_idle(cn);
}

/* ---- the worker --------------------------------------------------------------- */

static void accept_some(struct klog_server *s, struct ksrv_listener *sl)
{
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        klog_conn *c;
        int rc = klog_listener_accept(sl->l, 0, &c);
        if (rc == -ETIMEDOUT || rc == -ECANCELED)
            return;
        if (rc < 0) {
            /* -EMFILE and friends: the pending connection stays queued;
             * stop taking for this turn rather than spin. */
            ksrv_log(s, "%s: accept: %s", klog_listener_url(sl->l), klog_strerror(rc));
            return;
        }
        atomic_fetch_add_explicit(&sl->accepted, 1, memory_order_relaxed);
        if (atomic_fetch_add(&s->nconns, 1) >= s->conf.max_conns) {
            atomic_fetch_add_explicit(&sl->refused, 1, memory_order_relaxed);
            atomic_fetch_sub(&s->nconns, 1);
            const char *peer = "";
            klog_conn_peer(c, &peer, NULL);
            ksrv_log(s, "%s: over max.connections (%d): closed", peer, s->conf.max_conns);
            klog_conn_close(c);
            continue;
        }
        struct ksrv_conn *cn = calloc(1, sizeof *cn);
        int fd = klog_conn_fd(c);
        if (!cn || fd < 0) {
            free(cn);
            atomic_fetch_sub(&s->nconns, 1);
            klog_conn_close(c);
            continue;
        }
        cn->kind = EV_CONN;
        cn->srv = s;
        cn->c = c;
        cn->rfd = fd;
        cn->from = sl;
        const char *peer = "";
        klog_conn_peer(c, &peer, NULL);
        ksrv_auth_init(s->sec, &cn->auth, peer);
        if (!ip_take(s, cn->auth.host)) {
            atomic_fetch_add_explicit(&sl->refused, 1, memory_order_relaxed);
            ksrv_log(s, "%s: over max.connections.per.ip (%d): closed", peer, s->conf.max_conns_per_ip);
            free(cn);
            atomic_fetch_sub(&s->nconns, 1);
            klog_conn_close(c);
            continue;
        }
        atomic_fetch_add_explicit(&sl->open, 1, memory_order_relaxed);
        if (!cn->auth.authed)
            klog_conn_set_max_frame(c, ksrv_sec_preauth_max(s->sec));
        int pf = 0;
        cn->pending_ctl = klog_conn_control(c, KLOG_TRANSPORT_CTL_CONN_PENDING, &pf) == 0;
        int wfd = -1;
        cn->wfd_same = klog_conn_control(c, KLOG_TRANSPORT_CTL_CONN_WRITE_FD, &wfd) == 0 && wfd == fd;
        kk_arena_init(&cn->arena, NULL, 0);
        kk_wbuf_init(&cn->out, KLOG_TRANSPORT_MAX_FRAME_LIMIT);
        cn->out.ref_min = 4096;
        conn_local_addr(cn, sl->tcp, klog_listener_url(sl->l));
        unsigned t = atomic_fetch_add(&s->rr, 1) % (unsigned)s->nw;
        ksrv_worker *w = &s->w[t];
        if (w == &s->w[0]) {
            worker_adopt(w, cn);
        } else {
            pthread_mutex_lock(&w->imu);
            cn->next = w->inbox;
            w->inbox = cn;
            pthread_mutex_unlock(&w->imu);
            efd_write(w->efd);
        }
    }
}

static int64_t next_deadline(ksrv_worker *w)
{
    int64_t d = w->next_sweep;
    for (struct ksrv_conn *cn = w->parked; cn; cn = cn->pnext)
        if (cn->call.deadline < d)
            d = cn->call.deadline;
    for (struct ksrv_conn *cn = w->muted; cn; cn = cn->mnext)
        if (cn->mute_until < d)
            d = cn->mute_until;
    return d;
}

static void run_parked(ksrv_worker *w)
{
    bool all = atomic_exchange_explicit(&w->kicked, false, memory_order_acq_rel);
    atomic_store_explicit(&w->woken, false, memory_order_release);
    int64_t now = now_ns();
    struct ksrv_conn *cn = w->parked, *next;
    for (; cn; cn = next) {
        next = cn->pnext;
        ksrv_call *c = &cn->call;
        bool due = c->deadline <= now;
        if (!all && !due && !atomic_load_explicit(&c->woken, memory_order_acquire))
            continue;
        c->expired = due;
        int rc = call_run(cn);
        if (rc == 1)
            rc = conn_readable(cn);
        conn_after(cn, rc);
    }
}

static void sweep_idle(ksrv_worker *w, int64_t now)
{
    int64_t idle = w->srv->conf.idle_ms * 1000000;
    struct ksrv_conn *cn = w->conns, *next;
    for (; cn; cn = next) {
        next = cn->next;
        if (!cn->busy && now - cn->last_active > idle) {
            ksrv_log(w->srv, "%s: idle for over %" PRId64 " ms: closed", ksrv_conn_peer(cn), w->srv->conf.idle_ms);
            conn_close(cn);
        } else if (cn->sending && now - cn->last_active > idle) {
            /* A client that stopped reading its response: what it pins
             * (buffers, the segments the response points into) goes. */
            ksrv_log(w->srv, "%s: took no byte of its response for over %" PRId64 " ms: closed", ksrv_conn_peer(cn),
                     w->srv->conf.idle_ms);
            conn_close(cn);
        }
    }
}

static void *worker_main(void *arg)
{
    ksrv_worker *w = arg;
    struct klog_server *s = w->srv;
    struct epoll_event evs[EVENTS_PER_WAIT];
    w->next_sweep = now_ns() + IDLE_SWEEP_NS;
    while (!atomic_load(&w->stop)) {
        int64_t d = next_deadline(w), now = now_ns();
        int ms = d <= now || w->again ? 0 : (int)((d - now + 999999) / 1000000);
        int n = epoll_wait(w->epfd, evs, EVENTS_PER_WAIT, ms);
        if (n < 0 && errno != EINTR) {
            ksrv_log(s, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            if (kind == EV_WAKE) {
                uint64_t v;
                ssize_t r = read(w->efd, &v, sizeof v);
                (void)r;
            } else if (kind == EV_LISTENER) {
                accept_some(s, evs[i].data.ptr);
            } else {
                struct ksrv_conn *cn = evs[i].data.ptr;
                int rc = 0;
                if (cn->sending) {
                    rc = conn_push(cn);
                    if (rc == 1) {
                        bool close_after = cn->call.close_after;
                        call_end(cn);
                        rc = close_after ? -ECONNABORTED : conn_readable(cn);
                    }
                } else if (cn->muted) {
                    if (!(evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                        continue;
                    rc = -EPIPE; /* gone while throttled */
                } else if (!cn->busy) {
                    rc = conn_readable(cn);
                } else if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                    /* parked, and the client is gone (closed: RDHUP, asked
                     * for while parked; reset: HUP, reported anyway): no
                     * one to answer, and a JoinGroup's member leaves now
                     * rather than at the call's deadline */
                    rc = -EPIPE;
                } else {
                    continue; /* parked: not reading it */
                }
                conn_after(cn, rc);
            }
        }
        if (atomic_load_explicit(&w->stop, memory_order_acquire))
            break;
        /* New connections from worker 0. */
        pthread_mutex_lock(&w->imu);
        struct ksrv_conn *in = w->inbox;
        w->inbox = NULL;
        pthread_mutex_unlock(&w->imu);
        while (in) {
            struct ksrv_conn *next = in->next;
            worker_adopt(w, in);
            in = next;
        }
        /* Throttled connections whose time is up. */
        if (w->muted) {
            int64_t t = now_ns();
            struct ksrv_conn *m = w->muted;
            while (m) {
                struct ksrv_conn *next = m->mnext;
                if (m->mute_until <= t)
                    conn_after(m, conn_readable(m));
                m = next;
            }
        }
        /* Connections with requests epoll cannot see (conn_idle). */
        struct ksrv_conn *ag = w->again;
        while (ag) {
            struct ksrv_conn *next = ag->anext;
            if (!ag->busy)
                conn_after(ag, conn_readable(ag));
            else
                again_del(ag);
            ag = next;
        }
        if (w->parked)
            run_parked(w);
        else
            atomic_store(&w->kicked, false);
        now = now_ns();
        if (now >= w->next_sweep) {
            sweep_idle(w, now);
            w->next_sweep = now + IDLE_SWEEP_NS;
        }
    }
    return NULL;
}

/* ---- the public API ----------------------------------------------------------- */

static int read_conf(struct klog_server *s, const klog_conf *conf)
{
    ksrv_conf *c = &s->conf;
    c->max_frame = (uint32_t)klog__conf_int(conf, KC_SOCKET_REQUEST_MAX_BYTES);
    c->threads = (int)klog__conf_int(conf, KC_NUM_NETWORK_THREADS);
    c->auto_create = klog__conf_int(conf, KC_AUTO_CREATE_TOPICS) != 0;
    c->idle_ms = klog__conf_int(conf, KC_CONNECTIONS_MAX_IDLE_MS);
    c->node_id = (int32_t)klog__conf_int(conf, KC_NODE_ID);
    c->max_conns = (int)klog__conf_int(conf, KC_MAX_CONNECTIONS);
    c->max_conns_per_ip = (int)klog__conf_int(conf, KC_MAX_CONNECTIONS_PER_IP);
    c->quota_produce = klog__conf_int(conf, KC_QUOTA_PRODUCER_DEFAULT);
    c->quota_fetch = klog__conf_int(conf, KC_QUOTA_CONSUMER_DEFAULT);
    const char *h = klog__conf_str(conf, KC_ADVERTISED_HOST);
    snprintf(c->advertised_host, sizeof c->advertised_host, "%s", h ? h : "");
    return 0;
}

static void worker_fini(ksrv_worker *w)
{
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->efd >= 0)
        close(w->efd);
    pthread_mutex_destroy(&w->imu);
    kf_codec_free(w->codec);
}

KLOG_API int klog_server_new(klog_server **out, klog *k, const klog_conf *conf, char *errbuf, size_t errsize)
{
    if (!out || !k)
        return klog__errf(errbuf, errsize, -EINVAL, "klog_server_new: NULL %s", out ? "instance" : "out");
    *out = NULL;
    int rc;
    if (conf && (rc = klog__conf_check_scope(conf, KC_SCOPE_INSTANCE, errbuf, errsize)) < 0)
        return rc;
    /* a replicated instance (replication.peers) gets replication here:
     * libklog holds its place, this library brings it */
    if ((rc = klog__module_bind(k, &krep_module, errbuf, errsize)) < 0)
        return rc;
    struct klog_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->k = k;
    pthread_mutex_init(&s->lmu, NULL);
    pthread_mutex_init(&s->ipmu, NULL);
    pthread_mutex_init(&s->qmu, NULL);
    read_conf(s, conf ? conf : klog__conf(k));
    kk_limits_default(&s->lim);
    s->lim.max_bytes = s->conf.max_frame;
    if ((rc = klog_transport_registry_new(&s->reg, 0)) < 0)
        goto fail;
    klog_transport_set_max_frame(s->reg, s->conf.max_frame);
    klog_transport_set_log_cb(s->reg, transport_log, s);
    s->nw = s->conf.threads;
    if (!(s->w = calloc((size_t)s->nw, sizeof *s->w))) {
        rc = -ENOMEM;
        goto fail;
    }
    for (int i = 0; i < s->nw; i++)
        s->w[i].epfd = s->w[i].efd = -1;
    for (int i = 0; i < s->nw; i++) {
        ksrv_worker *w = &s->w[i];
        w->kind = EV_WAKE;
        w->srv = s;
        w->idx = i;
        pthread_mutex_init(&w->imu, NULL);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->epfd < 0 || w->efd < 0) {
            rc = -errno;
            goto fail;
        }
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->efd, &ev) != 0) {
            rc = -errno;
            goto fail;
        }
    }
    if ((rc = ksrv_groups_new(s, &s->groups)) < 0)
        goto fail;
    /* TLS: the "tls" scheme is always there; it can listen once a
     * certificate or a pre-shared key is configured, checked here so that
     * a bad file is reported now, with its reason. */
    const klog_conf *cf = conf ? conf : klog__conf(k);
    if ((s->tls = ktr__tls_configured(cf)) && (rc = ktr__tls_check(cf, errbuf, errsize)) < 0) {
        klog_server_free(s);
        return rc;
    }
    if ((rc = klog_transport_register(s->reg, klog_transport_tls(), cf)) < 0)
        goto fail;
    if ((rc = ksrv_sec_new(s, cf, &s->sec, errbuf, errsize)) < 0) {
        klog_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
fail:
    klog_server_free(s);
    return klog__errf(errbuf, errsize, rc, "klog_server_new: %s", klog_strerror(rc));
}

KLOG_API klog_transport_registry *klog_server_transports(klog_server *s)
{
    return s ? s->reg : NULL;
}

KLOG_API int klog_server_set_log_cb(klog_server *s, klog_server_log_cb cb, void *opaque)
{
    if (!s)
        return -EINVAL;
    s->log_cb = cb;
    s->log_opaque = opaque;
    return 0;
}

KLOG_API int klog_server_listen(klog_server *s, const char *url)
{
    if (!s || !url)
        return -EINVAL;
    if (s->stopped)
        return KLOG_ESTATE;
    pthread_mutex_lock(&s->lmu);
    int n = atomic_load(&s->nls), rc = 0;
    struct ksrv_listener *sl = NULL;
    if (n >= MAX_LISTENERS) {
        rc = -ENOSPC;
        goto out;
    }
    if (!(sl = calloc(1, sizeof *sl))) {
        rc = -ENOMEM;
        goto out;
    }
    sl->kind = EV_LISTENER;
    if ((rc = klog_transport_listen(s->reg, url, &sl->l)) < 0)
        goto out;
    const char *lu = klog_listener_url(sl->l);
    sl->tcp = strncmp(lu, "tcp:", 4) == 0 || strncmp(lu, "tls:", 4) == 0;
    const char *nousers = n == 0 ? ksrv_sec_no_users(s->sec) : NULL;
    if (nousers)
        ksrv_log(s, "warning: SASL is on and %s holds no user: nobody can authenticate (klog users add, "
                    "then SIGHUP)", nousers);
    if (ksrv_sec_sasl(s->sec) && strncmp(lu, "tcp:", 4) == 0)
        ksrv_log(s, "warning: SASL on a plaintext listener (%s): passwords (PLAIN) and everything after "
                    "them cross the network unencrypted; use a tls:// listener", lu);
    if ((sl->fd = klog_listener_fd(sl->l)) < 0) {
        rc = sl->fd;
        goto out;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = sl };
    if (epoll_ctl(s->w[0].epfd, EPOLL_CTL_ADD, sl->fd, &ev) != 0) {
        rc = -errno;
        goto out;
    }
    s->ls[n] = sl;
    atomic_store(&s->nls, n + 1);
    sl = NULL;
out:
    pthread_mutex_unlock(&s->lmu);
    if (sl) {
        if (sl->l)
            klog_listener_close(sl->l);
        free(sl);
    }
    return rc;
}

KLOG_API int klog_server_listener_count(const klog_server *s)
{
    return s ? atomic_load(&((klog_server *)s)->nls) : 0;
}

KLOG_API const char *klog_server_listener_url(const klog_server *s, int i)
{
    if (!s || i < 0 || i >= atomic_load(&((klog_server *)s)->nls))
        return NULL;
    return klog_listener_url(s->ls[i]->l);
}

KLOG_API int klog_server_start(klog_server *s)
{
    if (!s)
        return -EINVAL;
    if (s->started || s->stopped)
        return KLOG_ESTATE;
    for (int i = 0; i < s->nw; i++) {
        int rc = pthread_create(&s->w[i].th, NULL, worker_main, &s->w[i]);
        if (rc != 0) {
            klog_server_stop(s);
            return -rc;
        }
        s->w[i].started = true;
    }
    s->started = true;
    return 0;
}

KLOG_API int klog_server_stop(klog_server *s)
{
    if (!s)
        return -EINVAL;
    if (s->stopped)
        return 0;
    s->stopped = true;
    int nls = atomic_load(&s->nls);
    for (int i = 0; i < nls; i++)
        klog_listener_shutdown(s->ls[i]->l);
    for (int i = 0; i < s->nw; i++) {
        atomic_store(&s->w[i].stop, true);
        efd_write(s->w[i].efd);
    }
    for (int i = 0; i < s->nw; i++)
        if (s->w[i].started) {
            pthread_join(s->w[i].th, NULL);
            s->w[i].started = false;
        }
    /* Connections first: each points at the listener that accepted it. */
    for (int i = 0; i < s->nw; i++) {
        ksrv_worker *w = &s->w[i];
        while (w->conns)
            conn_close(w->conns);
        struct ksrv_conn *in = w->inbox;
        w->inbox = NULL;
        while (in) {
            struct ksrv_conn *next = in->next;
            atomic_fetch_sub(&s->nconns, 1);
            klog_conn_close(in->c);
            kk_wbuf_free(&in->out);
            free(in);
            in = next;
        }
    }
    for (int i = 0; i < nls; i++) {
        epoll_ctl(s->w[0].epfd, EPOLL_CTL_DEL, s->ls[i]->fd, NULL);
        klog_listener_close(s->ls[i]->l);
        free(s->ls[i]);
        s->ls[i] = NULL;
    }
    atomic_store(&s->nls, 0);
    /* Members joined through this server: their notify functions point at
     * the workers, which go next. */
    if (s->groups)
        ksrv_groups_stop(s->groups);
    return 0;
}

KLOG_API void klog_server_free(klog_server *s)
{
    if (!s)
        return;
    klog_server_stop(s);
    ksrv_groups_free(s->groups);
    if (s->w) {
        for (int i = 0; i < s->nw; i++)
            worker_fini(&s->w[i]);
        free(s->w);
    }
    klog_transport_registry_free(s->reg);
    ksrv_sec_free(s->sec);
    for (int i = 0; i < IP_BUCKETS; i++)
        while (s->ips[i]) {
            struct ipcount *e = s->ips[i];
            s->ips[i] = e->next;
            free(e);
        }
    pthread_mutex_destroy(&s->ipmu);
    for (int i = 0; i < QUOTA_BUCKETS; i++)
        while (s->quotas[i]) {
            struct quota *q = s->quotas[i];
            s->quotas[i] = q->next;
            free(q);
        }
    pthread_mutex_destroy(&s->qmu);
    pthread_mutex_destroy(&s->lmu);
    free(s);
}

/* ---- statistics --------------------------------------------------------------------- */

static void prom_escape(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', f);
        if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static uint64_t ld(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

KLOG_API int klog_server_stats(klog_server *s, int format, char **out)
{
    if (!s || !out || (format != KLOG_STATS_JSON && format != KLOG_STATS_PROMETHEUS))
        return -EINVAL;
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    struct ksrv_metrics *m = &s->m;
    pthread_mutex_lock(&s->lmu);
    int nls = atomic_load(&s->nls);
    bool prom = format == KLOG_STATS_PROMETHEUS;
    if (prom) {
        fprintf(f, "# HELP klog_server_connections Client connections held now.\n"
                   "# TYPE klog_server_connections gauge\n");
        for (int i = 0; i < nls; i++) {
            fputs("klog_server_connections{listener=\"", f);
            prom_escape(f, klog_listener_url(s->ls[i]->l));
            fprintf(f, "\"} %" PRId64 "\n", atomic_load(&s->ls[i]->open));
        }
        static const char *const cn[] = { "accepted", "refused" };
        for (int k = 0; k < 2; k++) {
            fprintf(f, "# HELP klog_server_connections_%s_total Connections %s (refused: over max.connections "
                       "or max.connections.per.ip).\n# TYPE klog_server_connections_%s_total counter\n",
                    cn[k], cn[k], cn[k]);
            for (int i = 0; i < nls; i++) {
                fprintf(f, "klog_server_connections_%s_total{listener=\"", cn[k]);
                prom_escape(f, klog_listener_url(s->ls[i]->l));
                fprintf(f, "\"} %" PRIu64 "\n", ld(k ? &s->ls[i]->refused : &s->ls[i]->accepted));
            }
        }
        fprintf(f, "# HELP klog_server_requests_total Requests answered, by API.\n"
                   "# TYPE klog_server_requests_total counter\n");
        for (int k = 0; k < API_KEYS; k++)
            if (ld(&m->requests[k]) && kk_api_find((int16_t)k))
                fprintf(f, "klog_server_requests_total{api=\"%s\"} %" PRIu64 "\n", kk_api_find((int16_t)k)->name,
                        ld(&m->requests[k]));
        fprintf(f, "# HELP klog_server_request_seconds Time from a request's arrival to its answer, by API.\n"
                   "# TYPE klog_server_request_seconds histogram\n");
        for (int k = 0; k < API_KEYS; k++) {
            if (!ld(&m->requests[k]) || !kk_api_find((int16_t)k))
                continue;
            const char *api = kk_api_find((int16_t)k)->name;
            uint64_t cum = 0;
            for (int b = 0; b <= LAT_BUCKETS; b++) {
                cum += ld(&m->latency[k][b]);
                if (b < LAT_BUCKETS)
                    fprintf(f, "klog_server_request_seconds_bucket{api=\"%s\",le=\"%g\"} %" PRIu64 "\n", api,
                            lat_bounds_ms[b] / 1000.0, cum);
                else
                    fprintf(f, "klog_server_request_seconds_bucket{api=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", api, cum);
            }
            fprintf(f, "klog_server_request_seconds_sum{api=\"%s\"} %.6f\n", api, ld(&m->latency_us[k]) / 1e6);
            fprintf(f, "klog_server_request_seconds_count{api=\"%s\"} %" PRIu64 "\n", api, cum);
        }
        static const struct { const char *name, *help; size_t off; } cs[] = {
            { "klog_server_received_bytes_total", "Bytes of requests received.", offsetof(struct ksrv_metrics, bytes_in) },
            { "klog_server_sent_bytes_total", "Bytes of responses sent.", offsetof(struct ksrv_metrics, bytes_out) },
            { "klog_server_closed_bad_requests_total",
              "Connections closed for a malformed, unsupported or unauthenticated request.",
              offsetof(struct ksrv_metrics, closed_bad) },
            { "klog_server_sasl_authentications_total", "SASL authentications that succeeded.",
              offsetof(struct ksrv_metrics, sasl_ok) },
            { "klog_server_sasl_authentication_failures_total", "SASL authentications that failed.",
              offsetof(struct ksrv_metrics, sasl_failed) },
            { "klog_server_throttled_total", "Produce and Fetch answers throttled by a quota.",
              offsetof(struct ksrv_metrics, throttled) },
            { "klog_server_throttle_seconds_total", "Throttle time given to clients.",
              offsetof(struct ksrv_metrics, throttle_ms) },
        };
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
            uint64_t v = ld((_Atomic uint64_t *)((char *)m + cs[i].off));
            fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", cs[i].name, cs[i].help, cs[i].name);
            if (cs[i].off == offsetof(struct ksrv_metrics, throttle_ms))
                fprintf(f, "%s %.3f\n", cs[i].name, v / 1000.0);
            else
                fprintf(f, "%s %" PRIu64 "\n", cs[i].name, v);
        }
    } else {
        fprintf(f, "{\"listeners\":[");
        for (int i = 0; i < nls; i++) {
            fprintf(f, "%s{\"url\":\"", i ? "," : "");
            prom_escape(f, klog_listener_url(s->ls[i]->l));
            fprintf(f, "\",\"connections\":%" PRId64 ",\"accepted\":%" PRIu64 ",\"refused\":%" PRIu64 "}",
                    atomic_load(&s->ls[i]->open), ld(&s->ls[i]->accepted), ld(&s->ls[i]->refused));
        }
        fprintf(f, "],\"requests\":{");
        bool first = true;
        for (int k = 0; k < API_KEYS; k++) {
            if (!ld(&m->requests[k]) || !kk_api_find((int16_t)k))
                continue;
            fprintf(f, "%s\"%s\":{\"count\":%" PRIu64 ",\"seconds\":%.6f}", first ? "" : ",",
                    kk_api_find((int16_t)k)->name, ld(&m->requests[k]), ld(&m->latency_us[k]) / 1e6);
            first = false;
        }
        fprintf(f, "},\"received_bytes\":%" PRIu64 ",\"sent_bytes\":%" PRIu64 ",\"closed_bad_requests\":%" PRIu64
                   ",\"sasl_authentications\":%" PRIu64 ",\"sasl_authentication_failures\":%" PRIu64
                   ",\"throttled\":%" PRIu64 ",\"throttle_seconds\":%.3f}\n",
                ld(&m->bytes_in), ld(&m->bytes_out), ld(&m->closed_bad), ld(&m->sasl_ok), ld(&m->sasl_failed),
                ld(&m->throttled), ld(&m->throttle_ms) / 1000.0);
    }
    pthread_mutex_unlock(&s->lmu);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    return 0;
}

KLOG_API int klog_server_reload(klog_server *s, char *errbuf, size_t errsize)
{
    if (!s)
        return klog__errf(errbuf, errsize, -EINVAL, "klog_server_reload: NULL server");
    if (s->tls) {
        char eb[256] = "";
        int rc = klog_transport_control(s->reg, "tls", KLOG_TRANSPORT_CTL_TLS_RELOAD, eb);
        if (rc < 0)
            return klog__errf(errbuf, errsize, rc, "%s", eb[0] ? eb : klog_strerror(rc));
    }
    int rc = ksrv_sec_reload(s->sec, errbuf, errsize);
    if (rc == 0 && errbuf && errsize)
        errbuf[0] = '\0';
    return rc;
}
