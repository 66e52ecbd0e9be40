/*
 * test/transport/conformance.c - one suite, every transport: tcp (127.0.0.1),
 * unix (path and abstract), mem (real time, no faults armed: it must behave
 * like a reliable stream) and the example of examples/transport_pipe.c.
 * Everything here goes through the public API, plus the core's raw-send
 * hook to feed a peer malformed frames.
 */
#include <poll.h>

#include "tr_test.h"

/* ---- connect, accept, peer identity ---------------------------------------- */

static void t_connect_accept(enum tk k)
{
    struct fx f;
    fx_open(&f, k);
    klog_listener *l = fx_listen(&f);
    char pre[16];
    snprintf(pre, sizeof pre, "%s://", fx_scheme(&f));
    cr_assert_eq(strncmp(klog_listener_url(l), pre, strlen(pre)), 0, "%s", klog_listener_url(l));
    if (k == TK_TCP)
        cr_assert(strcmp(klog_listener_url(l), "tcp://127.0.0.1:0") != 0, "port 0 resolved");

    klog_conn *c, *s;
    fx_pair(&f, l, &c, &s);
    cr_assert_eq(ktr__registry_conns(f.reg), 2);
    const char *cu, *ci, *su, *si;
    cr_assert_eq(klog_conn_peer(c, &cu, &ci), 0);
    cr_assert_eq(klog_conn_peer(s, &su, &si), 0);
    cr_assert_eq(strncmp(cu, pre, strlen(pre)), 0, "%s", cu);
    cr_assert_eq(strncmp(su, pre, strlen(pre)), 0, "%s", su);
    switch (k) {
    case TK_TCP:
        cr_assert_str_eq(cu, klog_listener_url(l)); /* the connector's peer is the listener */
        cr_assert_eq(strncmp(su, "tcp://127.0.0.1:", 16), 0, "%s", su);
        cr_assert_str_eq(ci, "");
        cr_assert_str_eq(si, "");
        break;
    case TK_UNIX:
    case TK_UNIX_ABSTRACT: {
        cr_assert_str_eq(cu, klog_listener_url(l));
        char want[64];
        snprintf(want, sizeof want, "uid=%u gid=%u pid=%d", (unsigned)getuid(), (unsigned)getgid(), (int)getpid());
        cr_assert_str_eq(ci, want);
        cr_assert_str_eq(si, want);
        break;
    }
    case TK_MEM:
        cr_assert_str_eq(ci, "node-a");
        cr_assert_str_eq(si, "node-a");
        break;
    case TK_PIPE: {
        char want[32];
        snprintf(want, sizeof want, "pid=%d", (int)getpid());
        cr_assert_str_eq(si, want);
        break;
    }
    }
    /* Nothing listens there any more: refused. */
    char url[256];
    snprintf(url, sizeof url, "%s", klog_listener_url(l));
    klog_conn_close(c);
    klog_conn_close(s);
    klog_listener_close(l);
    cr_assert_eq(ktr__registry_conns(f.reg), 0);
    klog_conn *x = NULL;
    int rc = klog_transport_connect(f.reg, url, 1000, &x);
    cr_assert(rc == -ECONNREFUSED || rc == -ENOENT, "connect to a closed listener: %s", klog_err_name(rc));
    cr_assert_null(x);
    fx_close(&f);
}

/* ---- frames of every size, through an echo ----------------------------------- */

struct echo {
    klog_conn *c;
    int frames, end;
};

static void *echo_main(void *arg)
{
    struct echo *e = arg;
    for (;;) {
        const void *fr;
        int n = klog_conn_recv(e->c, 20000, &fr);
        if (n < 0) {
            e->end = n;
            return NULL;
        }
        struct iovec v = { (void *)fr, (size_t)n };
        if ((e->end = klog_conn_send(e->c, &v, 1, 20000)) < 0)
            return NULL;
        e->frames++;
    }
}

static void t_sizes(enum tk k)
{
    struct fx f;
    fx_open(&f, k);
    cr_assert_eq(klog_transport_set_max_frame(f.reg, 32u << 20), 0);
    klog_listener *l = fx_listen(&f);
    klog_conn *c, *s;
    fx_pair(&f, l, &c, &s);
    struct echo e = { .c = s };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, echo_main, &e), 0);

    static const size_t sizes[] = { 0, 1, 2, 3, 4, 5, 100, 4095, 4096, 4097, 65535, 65536, 65537,
                                    1u << 20, (1u << 20) + 7, 16u << 20 };
    uint8_t *buf = malloc(16u << 20);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < KLOG_ARRAY_LEN(sizes); i++) {
        size_t n = sizes[i];
        t_fill(buf, n, (uint32_t)i);
        /* Three pieces, one maybe empty: the core gathers them. */
        size_t a = n / 3, b = n / 2;
        struct iovec v[3] = { { buf, a }, { buf + a, b - a }, { buf + b, n - b } };
        int rc = klog_conn_send(c, v, 3, 20000);
        cr_assert_eq(rc, 0, "send %zu: %s", n, klog_strerror(rc));
        t_expect(c, buf, n);
    }
    free(buf);
    klog_conn_close(c);
    pthread_join(th, NULL);
    cr_assert_eq(e.frames, (int)KLOG_ARRAY_LEN(sizes));
    cr_assert_eq(e.end, -EPIPE, "the echo ended with %s", klog_err_name(e.end));
    klog_conn_close(s);
    klog_listener_close(l);
    fx_close(&f);
}

/* ---- the cap, before allocation ------------------------------------------------ */

static void t_cap(enum tk k)
{
    struct fx f;
    fx_open(&f, k);
    struct t_log lg = { .mu = PTHREAD_MUTEX_INITIALIZER };
    cr_assert_eq(klog_transport_set_log_cb(f.reg, t_log_cb, &lg), 0);
    cr_assert_eq(klog_transport_set_max_frame(f.reg, 1u << 20), 0);
    klog_listener *l = fx_listen(&f);

    /* A length of 2 GiB: refused as soon as it is read, nothing allocated. */
    klog_conn *c1, *s1;
    fx_pair(&f, l, &c1, &s1);
    uint8_t hdr[4];
    t_be32(hdr, 0x80000000u);
    cr_assert_eq(ktr__conn_send_raw(c1, hdr, 4, 5000), 0);
    const void *fr;
    cr_assert_eq(klog_conn_recv(s1, 5000, &fr), KLOG_ETOOBIG);
    cr_assert_null(fr);
    cr_assert_eq(ktr__conn_rx_capacity(s1), 0, "no buffer for a refused frame");
    cr_assert_eq(lg.calls, 1);
    cr_assert_eq(lg.err, KLOG_ETOOBIG);
    cr_assert_not_null(strstr(lg.msg, "2147483648"), "%s", lg.msg);
    cr_assert_not_null(strstr(lg.msg, "socket.request.max.bytes"), "%s", lg.msg);
    const char *pu;
    klog_conn_peer(s1, &pu, NULL);
    cr_assert_str_eq(lg.peer, pu);
    /* The connection is done for; the same answer again, logged once. */
    cr_assert_eq(klog_conn_recv(s1, 0, &fr), KLOG_ETOOBIG);
    cr_assert_eq(klog_conn_send(s1, NULL, 0, 1000), KLOG_ETOOBIG);
    cr_assert_eq(lg.calls, 1);

    /* Another connection on the same listener: a frame of exactly the cap
     * passes, one byte more does not. */
    klog_conn *c2, *s2;
    fx_pair(&f, l, &c2, &s2);
    uint8_t *big = malloc((1u << 20) + 1);
    t_fill(big, (1u << 20) + 1, 9);
    struct t_async as;
    t_send_start(&as, c2, big, 1u << 20);
    t_expect(s2, big, 1u << 20);
    cr_assert_eq(t_send_join(&as), 0);
    t_send_start(&as, c2, big, (1u << 20) + 1); /* the sender has no say */
    cr_assert_eq(klog_conn_recv(s2, 5000, &fr), KLOG_ETOOBIG);
    cr_assert_eq(lg.calls, 2);
    /* The receiver gives up on the connection; that ends the sender's wait
     * (with an error or, where the whole frame fit in buffers, success). */
    klog_conn_close(s2);
    s2 = NULL;
    t_send_join(&as);

    /* And a third still works both ways, while the first two are dead. */
    klog_conn *c3, *s3;
    fx_pair(&f, l, &c3, &s3);
    cr_assert_eq(t_send(c3, "ok", 2), 0);
    t_expect(s3, "ok", 2);
    cr_assert_eq(t_send(s3, "yes", 3), 0);
    t_expect(c3, "yes", 3);
    free(big);
    klog_conn_close(c1), klog_conn_close(s1);
    klog_conn_close(c2), klog_conn_close(s2);
    klog_conn_close(c3), klog_conn_close(s3);
    klog_listener_close(l);
    fx_close(&f);
}

/* ---- truncated frames and peer close ------------------------------------------ */

static void t_truncated(enum tk k)
{
    struct fx f;
    fx_open(&f, k);
    struct t_log lg = { .mu = PTHREAD_MUTEX_INITIALIZER };
    klog_transport_set_log_cb(f.reg, t_log_cb, &lg);
    klog_listener *l = fx_listen(&f);
    const void *fr;

    /* A length of 100, 10 bytes, then the peer goes. */
    klog_conn *c1, *s1;
    fx_pair(&f, l, &c1, &s1);
    uint8_t raw[14];
    t_be32(raw, 100);
    memset(raw + 4, 'x', 10);
    cr_assert_eq(ktr__conn_send_raw(c1, raw, sizeof raw, 5000), 0);
    klog_conn_close(c1);
    cr_assert_eq(klog_conn_recv(s1, 5000, &fr), KLOG_ECORRUPT);
    cr_assert_not_null(strstr(lg.msg, "10 bytes into a frame of 100"), "%s", lg.msg);

    /* Half a length, then the peer goes. */
    klog_conn *c2, *s2;
    fx_pair(&f, l, &c2, &s2);
    cr_assert_eq(ktr__conn_send_raw(c2, raw, 2, 5000), 0);
    klog_conn_close(c2);
    cr_assert_eq(klog_conn_recv(s2, 5000, &fr), KLOG_ECORRUPT);
    cr_assert_eq(lg.calls, 2);

    /* A whole frame, then a clean close: the frame, then -EPIPE, not logged. */
    klog_conn *c3, *s3;
    fx_pair(&f, l, &c3, &s3);
    cr_assert_eq(t_send(c3, "last words", 10), 0);
    klog_conn_close(c3);
    t_expect(s3, "last words", 10);
    cr_assert_eq(klog_conn_recv(s3, 5000, &fr), -EPIPE);
    cr_assert_eq(klog_conn_recv(s3, 0, &fr), -EPIPE);
    cr_assert_eq(lg.calls, 2);

    /* Unaffected: a fourth. */
    klog_conn *c4, *s4;
    fx_pair(&f, l, &c4, &s4);
    cr_assert_eq(t_send(c4, "fine", 4), 0);
    t_expect(s4, "fine", 4);
    klog_conn_close(s1), klog_conn_close(s2), klog_conn_close(s3);
    klog_conn_close(c4), klog_conn_close(s4);
    klog_listener_close(l);
    fx_close(&f);
}

/* ---- shutdown cancels, deadlines hold -------------------------------------------- */

struct blocked {
    klog_conn *c;
    klog_listener *l;
    int rc;
    int64_t ms;
};

static void *recv_main(void *arg)
{
    struct blocked *b = arg;
    const void *fr;
    int64_t t0 = t_ms();
    b->rc = klog_conn_recv(b->c, 10000, &fr);
    b->ms = t_ms() - t0;
    return NULL;
}

static void *accept_main(void *arg)
{
    struct blocked *b = arg;
    klog_conn *c = NULL;
    int64_t t0 = t_ms();
    b->rc = klog_listener_accept(b->l, 10000, &c);
    b->ms = t_ms() - t0;
    klog_conn_close(c);
    return NULL;
}

static void t_shutdown(enum tk k)
{
    struct fx f;
    fx_open(&f, k);
    klog_listener *l = fx_listen(&f);
    klog_conn *c, *s;
    fx_pair(&f, l, &c, &s);

    struct blocked b = { .c = s };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, recv_main, &b), 0);
    t_sleep_ms(100);
    cr_assert_eq(klog_conn_shutdown(s), 0);
    cr_assert_eq(klog_conn_shutdown(s), 0); /* idempotent */
    pthread_join(th, NULL);
    cr_assert_eq(b.rc, -ECANCELED, "%s", klog_err_name(b.rc));
    cr_assert_lt(b.ms, 3000, "a blocked receive took %lld ms to see the shutdown", (long long)b.ms);
    const void *fr;
    cr_assert_eq(klog_conn_recv(s, 0, &fr), -ECANCELED);
    cr_assert_eq(t_send(s, "x", 1), -ECANCELED);
    /* The peer is told.  Built-in transports tell it at shutdown; the
     * example's contract allows telling at close at the latest. */
    if (k == TK_PIPE)
        klog_conn_close(s), s = NULL;
    cr_assert_eq(klog_conn_recv(c, 5000, &fr), -EPIPE);

    /* A blocked accept too. */
    struct blocked a = { .l = l };
    cr_assert_eq(pthread_create(&th, NULL, accept_main, &a), 0);
    t_sleep_ms(100);
    cr_assert_eq(klog_listener_shutdown(l), 0);
    pthread_join(th, NULL);
    cr_assert_eq(a.rc, -ECANCELED, "%s", klog_err_name(a.rc));
    cr_assert_lt(a.ms, 3000);
    klog_conn *x = NULL;
    cr_assert_eq(klog_listener_accept(l, 0, &x), -ECANCELED);

    klog_conn_close(c);
    klog_conn_close(s);
    klog_listener_close(l);
    fx_close(&f);
}

static void t_deadlines(enum tk k)
{
    struct fx f;
    fx_open(&f, k);
    klog_listener *l = fx_listen(&f);
    klog_conn *x = NULL;
    int64_t t0 = t_ms();
    cr_assert_eq(klog_listener_accept(l, 150, &x), -ETIMEDOUT);
    int64_t ms = t_ms() - t0;
    cr_assert(ms >= 140 && ms < 2000, "accept waited %lld ms for 150", (long long)ms);
    klog_conn *c, *s;
    fx_pair(&f, l, &c, &s); /* the listener is still good */

    const void *fr;
    t0 = t_ms();
    cr_assert_eq(klog_conn_recv(s, 200, &fr), -ETIMEDOUT);
    ms = t_ms() - t0;
    cr_assert(ms >= 190 && ms < 2000, "recv waited %lld ms for 200", (long long)ms);
    t0 = t_ms();
    cr_assert_eq(klog_conn_recv(s, 0, &fr), -ETIMEDOUT);
    cr_assert_lt(t_ms() - t0, 100, "timeout 0 does not wait");

    /* Half a frame: the receive times out and keeps it; the rest completes it. */
    uint8_t raw[10];
    t_be32(raw, 6);
    memcpy(raw + 4, "abcdef", 6);
    cr_assert_eq(ktr__conn_send_raw(c, raw, 7, 5000), 0);
    cr_assert_eq(klog_conn_recv(s, 100, &fr), -ETIMEDOUT);
    cr_assert_eq(ktr__conn_send_raw(c, raw + 7, 3, 5000), 0);
    t_expect(s, "abcdef", 6);
    /* And the connection goes on both ways after timeouts. */
    cr_assert_eq(t_send(s, "back", 4), 0);
    t_expect(c, "back", 4);
    klog_conn_close(c);
    klog_conn_close(s);
    klog_listener_close(l);
    fx_close(&f);
}

/* ---- many connections at once, and concurrent senders -------------------------- */

#define NCONC 24
#define NFRAMES 20

struct client {
    struct fx *f;
    const char *url;
    uint32_t idx;
    int ok;
};

static void *client_main(void *arg)
{
    struct client *cl = arg;
    klog_conn *c = NULL;
    if (klog_transport_connect(cl->f->reg, cl->url, 10000, &c) < 0)
        return NULL;
    uint8_t buf[9000];
    int good = 0;
    for (int i = 0; i < NFRAMES; i++) {
        size_t n = (size_t)(i * 449) % sizeof buf;
        t_fill(buf, n, (uint32_t)i + 1000 * cl->idx);
        struct iovec v = { buf, n };
        const void *fr;
        if (klog_conn_send(c, &v, 1, 20000) < 0 || klog_conn_recv(c, 20000, &fr) != (int)n ||
            memcmp(fr, buf, n) != 0)
            break;
        good++;
    }
    cl->ok = good == NFRAMES;
    klog_conn_close(c);
    return NULL;
}

static void t_many(enum tk k)
{
    struct fx f;
    fx_open(&f, k);
    klog_listener *l = fx_listen(&f);
    struct client cl[NCONC];
    pthread_t ct[NCONC], et[NCONC];
    struct echo e[NCONC];
    for (int i = 0; i < NCONC; i++) {
        cl[i] = (struct client){ &f, klog_listener_url(l), (uint32_t)i, 0 };
        cr_assert_eq(pthread_create(&ct[i], NULL, client_main, &cl[i]), 0);
    }
    for (int i = 0; i < NCONC; i++) {
        e[i] = (struct echo){ 0 };
        int rc = klog_listener_accept(l, 10000, &e[i].c);
        cr_assert_eq(rc, 0, "accept %d: %s", i, klog_strerror(rc));
        cr_assert_eq(pthread_create(&et[i], NULL, echo_main, &e[i]), 0);
    }
    cr_assert_eq(ktr__registry_conns(f.reg) <= 2 * NCONC, true);
    int ok = 0;
    for (int i = 0; i < NCONC; i++) {
        pthread_join(ct[i], NULL);
        pthread_join(et[i], NULL);
        ok += cl[i].ok;
        cr_assert_eq(e[i].frames, NFRAMES);
        klog_conn_close(e[i].c);
    }
    cr_assert_eq(ok, NCONC);
    klog_listener_close(l);
    fx_close(&f);
}

/* Several threads send on one connection: every frame arrives whole. */
struct sender {
    klog_conn *c;
    uint32_t id;
    int rc;
};

#define NSEND 4
#define PERSEND 150

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    uint8_t buf[5000];
    for (uint32_t i = 0; i < PERSEND && s->rc == 0; i++) {
        size_t n = 8 + (i * 97 + s->id * 31) % (sizeof buf - 8);
        memcpy(buf, &s->id, 4);
        memcpy(buf + 4, &i, 4);
        t_fill(buf + 8, n - 8, s->id * 100000 + i);
        struct iovec v[2] = { { buf, 8 }, { buf + 8, n - 8 } };
        s->rc = klog_conn_send(s->c, v, 2, 20000);
    }
    return NULL;
}

static void t_senders(enum tk k)
{
    struct fx f;
    fx_open(&f, k);
    klog_listener *l = fx_listen(&f);
    klog_conn *c, *s;
    fx_pair(&f, l, &c, &s);
    struct sender sd[NSEND];
    pthread_t th[NSEND];
    for (uint32_t i = 0; i < NSEND; i++) {
        sd[i] = (struct sender){ c, i, 0 };
        cr_assert_eq(pthread_create(&th[i], NULL, sender_main, &sd[i]), 0);
    }
    uint32_t next[NSEND] = { 0 };
    uint8_t want[5000];
    for (int got = 0; got < NSEND * PERSEND; got++) {
        const void *fr;
        int n = klog_conn_recv(s, 20000, &fr);
        cr_assert_geq(n, 8, "recv: %s", klog_strerror(n));
        uint32_t id, i;
        memcpy(&id, fr, 4);
        memcpy(&i, (const uint8_t *)fr + 4, 4);
        cr_assert_lt(id, NSEND);
        cr_assert_eq(i, next[id], "sender %u: frame %u after %u", id, i, next[id]);
        next[id]++;
        cr_assert_eq((size_t)n, 8 + (i * 97 + id * 31) % (sizeof want - 8));
        t_fill(want, (size_t)n - 8, id * 100000 + i);
        cr_assert(memcmp((const uint8_t *)fr + 8, want, (size_t)n - 8) == 0, "frame %u/%u mixed up", id, i);
    }
    for (int i = 0; i < NSEND; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(sd[i].rc, 0);
    }
    klog_conn_close(c);
    klog_conn_close(s);
    klog_listener_close(l);
    fx_close(&f);
}

/* ---- readiness descriptors ------------------------------------------------------- */

/* Readable, or at end of stream (a pipe reports only POLLHUP there). */
static bool readable(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms) == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

static void t_fds(enum tk k)
{
    struct fx f;
    fx_open(&f, k);
    klog_listener *l = fx_listen(&f);
    int lfd = klog_listener_fd(l);
    cr_assert_geq(lfd, 0, "listener fd: %s", klog_strerror(lfd));
    cr_assert_eq(klog_listener_control(l, KLOG_TRANSPORT_CTL_LISTENER_FD, NULL), lfd,
                 "klog_listener_fd is the LISTENER_FD control");
    cr_assert_eq(klog_listener_control(l, 99999, NULL), -ENOTSUP);
    cr_assert_eq(klog_listener_control(NULL, KLOG_TRANSPORT_CTL_LISTENER_FD, NULL), -EINVAL);
    cr_assert_not(readable(lfd, 0));
    klog_conn *c = NULL, *s = NULL;
    cr_assert_eq(klog_transport_connect(f.reg, klog_listener_url(l), 5000, &c), 0);
    cr_assert(readable(lfd, 5000), "a pending connection makes the listener readable");
    cr_assert_eq(klog_listener_accept(l, 0, &s), 0);
    cr_assert_not(readable(lfd, 0));

    int fd = klog_conn_fd(s);
    cr_assert_geq(fd, 0, "conn fd: %s", klog_strerror(fd));
    int cfd = -1;
    cr_assert_eq(klog_conn_control(s, KLOG_TRANSPORT_CTL_CONN_FD, &cfd), fd);
    cr_assert_eq(cfd, fd);
    cr_assert_not(readable(fd, 0));
    cr_assert_eq(t_send(c, "ping", 4), 0);
    cr_assert(readable(fd, 5000), "a frame makes the connection readable");
    t_expect(s, "ping", 4);
    cr_assert_not(readable(fd, 50), "drained: not readable");
    /* Two frames: still readable after the first is taken. */
    cr_assert_eq(t_send(c, "a", 1), 0);
    cr_assert_eq(t_send(c, "b", 1), 0);
    cr_assert(readable(fd, 5000));
    t_expect(s, "a", 1);
    cr_assert(readable(fd, 5000));
    t_expect(s, "b", 1);
    /* The peer's close is readable too. */
    klog_conn_close(c);
    cr_assert(readable(fd, 5000));
    const void *fr;
    cr_assert_eq(klog_conn_recv(s, 0, &fr), -EPIPE);
    cr_assert_eq(klog_conn_control(s, 99999, NULL), -ENOTSUP);
    klog_conn_close(s);
    klog_listener_close(l);
    fx_close(&f);
}

#define CONFORMANCE(S, K)                                                       \
    TestSuite(S, .timeout = 120);                                              \
    Test(S, connect_accept_peer) { t_connect_accept(K); }                      \
    Test(S, frame_sizes_0_to_16MiB) { t_sizes(K); }                            \
    Test(S, cap_checked_before_allocation) { t_cap(K); }                       \
    Test(S, truncated_frames_and_peer_close) { t_truncated(K); }               \
    Test(S, shutdown_cancels_blocked_calls) { t_shutdown(K); }                 \
    Test(S, deadlines_honoured) { t_deadlines(K); }                            \
    Test(S, many_concurrent_connections) { t_many(K); }                        \
    Test(S, concurrent_senders_never_interleave) { t_senders(K); }             \
    Test(S, readiness_descriptors) { t_fds(K); }

CONFORMANCE(tcp, TK_TCP)
CONFORMANCE(unix_path, TK_UNIX)
CONFORMANCE(unix_abstract, TK_UNIX_ABSTRACT)
CONFORMANCE(mem, TK_MEM)
CONFORMANCE(pipe_example, TK_PIPE)
