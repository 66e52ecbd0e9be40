/*
 * test/transport/core.c - the transport core: registration rules, URLs,
 * lifetimes, framing details the conformance suite does not reach, and
 * what is particular to the tcp and unix transports.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "tr_test.h"

TestSuite(registry, .timeout = 60);
TestSuite(framing, .timeout = 60);
TestSuite(tcp, .timeout = 60);
TestSuite(unix_sock, .timeout = 60);

/* ---- a vtable to break: a wrapper over tcp that counts init/fini -------- */

static atomic_int n_init, n_fini;
static int init_rc;
static const klog_transport_methods *base; /* tcp */

static int cnt_init(void *tst, const void *arg)
{
    atomic_fetch_add(&n_init, 1);
    return init_rc;
}

static void cnt_fini(void *tst)
{
    atomic_fetch_add(&n_fini, 1);
}

static klog_transport_methods counting(const char *scheme)
{
    klog_transport_registry *r;
    cr_assert_eq(klog_transport_registry_new(&r, 0), 0);
    base = klog_transport_find(r, "tcp");
    cr_assert_not_null(base);
    klog_transport_registry_free(r); /* the vtable is static: it outlives r */
    klog_transport_methods m = *base;
    m.scheme = scheme;
    m.init = cnt_init;
    m.fini = cnt_fini;
    return m;
}

Test(registry, builtins_and_find)
{
    klog_transport_registry *reg;
    cr_assert_eq(klog_transport_registry_new(&reg, 0), 0);
    const klog_transport_methods *t = klog_transport_find(reg, "tcp://127.0.0.1:9092");
    cr_assert_not_null(t);
    cr_assert_str_eq(t->scheme, "tcp");
    cr_assert_eq(klog_transport_find(reg, "tcp"), t);
    cr_assert_eq(klog_transport_find(reg, "tcp:127.0.0.1:1"), t);
    cr_assert_str_eq(klog_transport_find(reg, "unix:///x")->scheme, "unix");
    cr_assert_null(klog_transport_find(reg, "tls://h:1"), "tls is reserved, not built in yet");
    cr_assert_null(klog_transport_find(reg, "mem://a"), "mem is registered by the tests that use it");
    cr_assert_null(klog_transport_find(reg, NULL));
    cr_assert_null(klog_transport_find(NULL, "tcp"));
    cr_assert_null(klog_transport_find(reg, "TCP://h:1"));
    klog_transport_registry_free(reg);
    klog_transport_registry_free(NULL);

    cr_assert_eq(klog_transport_registry_new(&reg, KLOG_TRANSPORT_REGISTRY_EMPTY), 0);
    cr_assert_null(klog_transport_find(reg, "tcp"));
    klog_conn *c = NULL;
    cr_assert_eq(klog_transport_connect(reg, "tcp://127.0.0.1:1", 100, &c), -EPROTONOSUPPORT);
    klog_transport_registry_free(reg);
    cr_assert_eq(klog_transport_registry_new(&reg, 1u << 7), -EINVAL);
    cr_assert_eq(klog_transport_registry_new(NULL, 0), -EINVAL);
}

Test(registry, rejects_bad_vtables)
{
    klog_transport_registry *reg;
    cr_assert_eq(klog_transport_registry_new(&reg, 0), 0);
    klog_transport_methods good = counting("good"), m;

    cr_assert_eq(klog_transport_register(reg, NULL, NULL), -EINVAL);
    cr_assert_eq(klog_transport_register(NULL, &good, NULL), -EINVAL);
#define TRY(field, value, want)                                                 \
    do {                                                                        \
        m = good;                                                               \
        m.field = value;                                                        \
        cr_assert_eq(klog_transport_register(reg, &m, NULL), want, #field);     \
    } while (0)
    TRY(version, 0x12340001u, -EINVAL);                        /* not a vtable */
    TRY(version, KLOG_TRANSPORT_MAGIC, KLOG_EFORMAT);          /* version 0 */
    TRY(size, (uint32_t)offsetof(klog_transport_methods, control), KLOG_EFORMAT); /* older than v1 */
    TRY(scheme, NULL, -EINVAL);
    TRY(scheme, "", -EINVAL);
    TRY(scheme, "Tcp", -EINVAL);
    TRY(scheme, "1tcp", -EINVAL);
    TRY(scheme, "tc p", -EINVAL);
    TRY(scheme, "abcdefghijabcdefghijabcdefghijab", -EINVAL); /* 32 characters */
    TRY(connect, NULL, -EINVAL);
    TRY(send, NULL, -EINVAL);
    TRY(recv, NULL, -EINVAL);
    TRY(shutdown, NULL, -EINVAL);
    TRY(close, NULL, -EINVAL);
    TRY(accept, NULL, -EINVAL);       /* listen ops only partly set */
    TRY(listener_close, NULL, -EINVAL);
#undef TRY
    cr_assert_eq(atomic_load(&n_init), 0, "init is not called for a rejected vtable");

    /* A newer version with a bigger struct is fine: the core calls what it knows. */
    struct { klog_transport_methods m; void *later_op; } newer = { good, NULL };
    newer.m.version = KLOG_TRANSPORT_MAGIC | 2u;
    newer.m.size = sizeof newer;
    newer.m.scheme = "newer";
    cr_assert_eq(klog_transport_register(reg, &newer.m, NULL), 0);
    /* Optional ops may be missing. */
    m = good;
    m.scheme = "bare+x.y-z";
    m.init = NULL, m.fini = NULL, m.peer = NULL, m.control = NULL;
    cr_assert_eq(klog_transport_register(reg, &m, NULL), 0);
    /* Dial-only: no listen ops at all. */
    klog_transport_methods dial = good;
    dial.scheme = "dial";
    dial.listen = NULL, dial.accept = NULL, dial.listener_shutdown = NULL, dial.listener_close = NULL;
    cr_assert_eq(klog_transport_register(reg, &dial, NULL), 0);
    klog_listener *l = NULL;
    cr_assert_eq(klog_transport_listen(reg, "dial://127.0.0.1:0", &l), -EOPNOTSUPP);
    /* Duplicates. */
    cr_assert_eq(klog_transport_register(reg, &good, NULL), 0);
    cr_assert_eq(klog_transport_register(reg, &good, NULL), -EEXIST);
    cr_assert_eq(klog_transport_register(reg, base, NULL), -EEXIST, "tcp is built in");
    klog_transport_registry_free(reg);
}

Test(registry, init_failure_and_fini_after_last_close)
{
    klog_transport_registry *reg;
    cr_assert_eq(klog_transport_registry_new(&reg, 0), 0);
    klog_transport_methods m = counting("ctcp");
    atomic_store(&n_init, 0), atomic_store(&n_fini, 0);
    init_rc = -EIO;
    cr_assert_eq(klog_transport_register(reg, &m, NULL), -EIO);
    cr_assert_eq(atomic_load(&n_fini), 1, "fini runs after a failed init");
    cr_assert_null(klog_transport_find(reg, "ctcp"));
    init_rc = 0;
    cr_assert_eq(klog_transport_register(reg, &m, NULL), 0);
    cr_assert_eq(atomic_load(&n_init), 2);

    klog_listener *l;
    cr_assert_eq(klog_transport_listen(reg, "ctcp://127.0.0.1:0", &l), 0);
    cr_assert_eq(strncmp(klog_listener_url(l), "ctcp://127.0.0.1:", 17), 0);
    klog_conn *c, *s;
    cr_assert_eq(klog_transport_connect(reg, klog_listener_url(l), 5000, &c), 0);
    cr_assert_eq(klog_listener_accept(l, 5000, &s), 0);
    /* The owner lets go; what it opened keeps working. */
    klog_transport_registry_free(reg);
    cr_assert_eq(atomic_load(&n_fini), 1);
    cr_assert_eq(t_send(c, "still here", 10), 0);
    t_expect(s, "still here", 10);
    klog_conn_close(c);
    klog_listener_close(l);
    cr_assert_eq(atomic_load(&n_fini), 1);
    klog_conn_close(s); /* the last one out */
    cr_assert_eq(atomic_load(&n_fini), 2);
}

/* The registry's table grows past its first allocation (8) and again:
 * every transport registered before and after a growth is found, the
 * built-in ones too, and one of the first still carries a connection. */
Test(registry, many_transports_grow_the_table)
{
    enum { N = 20 };
    static klog_transport_methods ms[N];
    static char schemes[N][8];
    klog_transport_registry *reg;
    cr_assert_eq(klog_transport_registry_new(&reg, 0), 0); /* tcp and unix */
    atomic_store(&n_init, 0), atomic_store(&n_fini, 0);
    init_rc = 0;
    for (int i = 0; i < N; i++) {
        snprintf(schemes[i], sizeof schemes[i], "t%02d", i);
        ms[i] = counting(schemes[i]);
        cr_assert_eq(klog_transport_register(reg, &ms[i], NULL), 0, "%s", schemes[i]);
    }
    cr_assert_eq(atomic_load(&n_init), N);
    cr_assert_eq(klog_transport_register(reg, &ms[0], NULL), -EEXIST);
    for (int i = 0; i < N; i++) {
        char url[200];
        snprintf(url, sizeof url, "%s://127.0.0.1:1", schemes[i]);
        cr_assert_eq(klog_transport_find(reg, url), &ms[i], "%s", url);
    }
    cr_assert_str_eq(klog_transport_find(reg, "tcp://h:1")->scheme, "tcp");
    cr_assert_str_eq(klog_transport_find(reg, "unix:///x")->scheme, "unix");
    klog_listener *l;
    cr_assert_eq(klog_transport_listen(reg, "t00://127.0.0.1:0", &l), 0);
    klog_conn *c, *s;
    cr_assert_eq(klog_transport_connect(reg, klog_listener_url(l), 5000, &c), 0);
    cr_assert_eq(klog_listener_accept(l, 5000, &s), 0);
    cr_assert_eq(t_send(c, "grown", 5), 0);
    t_expect(s, "grown", 5);
    klog_conn_close(c);
    klog_conn_close(s);
    klog_listener_close(l);
    klog_transport_registry_free(reg);
    cr_assert_eq(atomic_load(&n_fini), N, "every entry finalised");
}

Test(registry, urls)
{
    klog_transport_registry *reg;
    cr_assert_eq(klog_transport_registry_new(&reg, 0), 0);
    klog_listener *l = NULL;
    klog_conn *c = NULL;
    cr_assert_eq(klog_transport_listen(reg, "nope://x", &l), -EPROTONOSUPPORT);
    cr_assert_eq(klog_transport_listen(reg, "tcp", &l), -EINVAL);
    cr_assert_eq(klog_transport_listen(reg, "://x", &l), -EINVAL);
    cr_assert_eq(klog_transport_listen(reg, NULL, &l), -EINVAL);
    cr_assert_eq(klog_transport_listen(reg, "tcp://127.0.0.1", &l), -EINVAL, "no port");
    cr_assert_eq(klog_transport_listen(reg, "tcp://127.0.0.1:99999", &l), -EINVAL);
    cr_assert_eq(klog_transport_listen(reg, "tcp://::1:5", &l), -EINVAL, "IPv6 needs brackets");
    cr_assert_eq(klog_transport_connect(reg, "tcp://127.0.0.1:x", 100, &c), -EINVAL);
    char longu[400];
    memset(longu, 'a', sizeof longu - 1);
    longu[sizeof longu - 1] = '\0';
    memcpy(longu, "tcp://", 6);
    cr_assert_eq(klog_transport_listen(reg, longu, &l), -EINVAL);
    cr_assert_null(l);
    cr_assert_null(c);
    /* "scheme:" without slashes is accepted too. */
    cr_assert_eq(klog_transport_listen(reg, "tcp:127.0.0.1:0", &l), 0);
    cr_assert_eq(klog_transport_connect(reg, klog_listener_url(l), 5000, &c), 0);
    klog_conn_close(c);
    klog_listener_close(l);
    cr_assert_eq(klog_listener_close(NULL), 0);
    cr_assert_eq(klog_conn_close(NULL), 0);
    cr_assert_null(klog_listener_url(NULL));
    cr_assert_eq(klog_listener_fd(NULL), -EINVAL);
    cr_assert_eq(klog_conn_fd(NULL), -EINVAL);
    cr_assert_eq(klog_conn_peer(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(klog_conn_shutdown(NULL), -EINVAL);
    cr_assert_eq(klog_listener_shutdown(NULL), -EINVAL);
    klog_transport_registry_free(reg);
}

/* ---- framing ---------------------------------------------------------------------- */

struct pair {
    struct fx f;
    klog_listener *l;
    klog_conn *c, *s;
};

static void pair_open(struct pair *p, enum tk k)
{
    fx_open(&p->f, k);
    p->l = fx_listen(&p->f);
    fx_pair(&p->f, p->l, &p->c, &p->s);
}

static void pair_close(struct pair *p)
{
    klog_conn_close(p->c);
    klog_conn_close(p->s);
    klog_listener_close(p->l);
    fx_close(&p->f);
}

Test(framing, send_arguments)
{
    struct pair p;
    pair_open(&p, TK_TCP);
    struct iovec v[1024];
    for (int i = 0; i < 1024; i++)
        v[i] = (struct iovec){ "x", 1 };
    cr_assert_eq(klog_conn_send(p.c, v, -1, 100), -EINVAL);
    cr_assert_eq(klog_conn_send(p.c, v, 1024, 100), -EINVAL);
    cr_assert_eq(klog_conn_send(p.c, NULL, 1, 100), -EINVAL);
    cr_assert_eq(klog_conn_send(NULL, v, 1, 100), -EINVAL);
    /* 2 GiB of payload: refused before a byte is read or sent. */
    struct iovec huge[2] = { { NULL, 1u << 30 }, { NULL, 1u << 30 } };
    cr_assert_eq(klog_conn_send(p.c, huge, 2, 100), KLOG_ETOOBIG);
    struct iovec huge1 = { NULL, (size_t)1 << 31 };
    cr_assert_eq(klog_conn_send(p.c, &huge1, 1, 100), KLOG_ETOOBIG);
    /* The connection is fine after those; 1023 pieces make one frame. */
    cr_assert_eq(klog_conn_send(p.c, v, 1023, 5000), 0);
    char want[1023];
    memset(want, 'x', sizeof want);
    t_expect(p.s, want, sizeof want);
    const void *fr;
    cr_assert_eq(klog_conn_recv(p.s, 0, NULL), -EINVAL);
    cr_assert_eq(klog_conn_recv(NULL, 0, &fr), -EINVAL);
    pair_close(&p);
}

static void *slow_recv(void *arg)
{
    const void *fr;
    return (void *)(intptr_t)klog_conn_recv(arg, 1500, &fr);
}

Test(framing, one_receiver_at_a_time)
{
    struct pair p;
    pair_open(&p, TK_TCP);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, slow_recv, p.s), 0);
    t_sleep_ms(200);
    const void *fr;
    cr_assert_eq(klog_conn_recv(p.s, 0, &fr), -EBUSY);
    void *rc;
    pthread_join(th, &rc);
    cr_assert_eq((int)(intptr_t)rc, -ETIMEDOUT);
    cr_assert_eq(klog_conn_recv(p.s, 0, &fr), -ETIMEDOUT, "free again");
    pair_close(&p);
}

Test(framing, buffer_grows_with_bytes_received_not_announced)
{
    struct pair p;
    fx_open(&p.f, TK_TCP);
    cr_assert_eq(klog_transport_set_max_frame(p.f.reg, KLOG_TRANSPORT_MAX_FRAME_LIMIT), 0);
    p.l = fx_listen(&p.f);
    fx_pair(&p.f, p.l, &p.c, &p.s);
    /* Announce 1.5 GiB, send 100 KiB of it. */
    size_t sent = 100 * 1024;
    uint8_t *raw = calloc(1, 4 + sent);
    t_be32(raw, 3u << 29);
    cr_assert_eq(ktr__conn_send_raw(p.c, raw, 4 + sent, 5000), 0);
    const void *fr;
    int64_t t0 = t_ms();
    int rc;
    while ((rc = klog_conn_recv(p.s, 50, &fr)) == -ETIMEDOUT && t_ms() - t0 < 400)
        ;
    cr_assert_eq(rc, -ETIMEDOUT);
    size_t cap = ktr__conn_rx_capacity(p.s);
    cr_assert(cap >= sent && cap <= 2 * sent, "holds %zu bytes after %zu arrived", cap, sent);
    /* An idle connection holds nothing; a small frame keeps a small buffer. */
    cr_assert_eq(ktr__conn_rx_capacity(p.c), 0);
    free(raw);
    pair_close(&p);
}

Test(framing, big_buffer_released_small_one_kept)
{
    struct pair p;
    pair_open(&p, TK_UNIX_ABSTRACT);
    uint8_t *big = malloc(1u << 20);
    t_fill(big, 1u << 20, 3);
    struct t_async as;
    t_send_start(&as, p.c, big, 1u << 20);
    t_expect(p.s, big, 1u << 20);
    cr_assert_eq(t_send_join(&as), 0);
    cr_assert_geq(ktr__conn_rx_capacity(p.s), 1u << 20, "valid until the next receive");
    cr_assert_eq(t_send(p.c, "small", 5), 0);
    t_expect(p.s, "small", 5);
    cr_assert_leq(ktr__conn_rx_capacity(p.s), KTR_RX_KEEP);
    free(big);
    pair_close(&p);
}

Test(framing, per_connection_cap)
{
    struct pair p;
    pair_open(&p, TK_TCP);
    cr_assert_eq(klog_conn_set_max_frame(p.s, 0), -EINVAL);
    cr_assert_eq(klog_conn_set_max_frame(p.s, KLOG_TRANSPORT_MAX_FRAME_LIMIT + 1u), -EINVAL);
    cr_assert_eq(klog_conn_set_max_frame(NULL, 10), -EINVAL);
    cr_assert_eq(klog_transport_set_max_frame(p.f.reg, 0), -EINVAL);
    cr_assert_eq(klog_transport_set_max_frame(NULL, 10), -EINVAL);
    cr_assert_eq(klog_conn_set_max_frame(p.s, 10), 0);
    cr_assert_eq(t_send(p.c, "0123456789", 10), 0);
    t_expect(p.s, "0123456789", 10);
    /* The other direction keeps the registry's cap. */
    cr_assert_eq(t_send(p.s, "0123456789A", 11), 0);
    t_expect(p.c, "0123456789A", 11);
    cr_assert_eq(t_send(p.c, "0123456789A", 11), 0);
    const void *fr;
    cr_assert_eq(klog_conn_recv(p.s, 5000, &fr), KLOG_ETOOBIG);
    pair_close(&p);
}

/* Regression: an accept that timed out keeps a connection object for the
 * next one; the cap and log callback set in between still apply to it. */
Test(framing, settings_taken_when_the_connection_is_made)
{
    struct fx f;
    fx_open(&f, TK_TCP);
    klog_listener *l = fx_listen(&f);
    klog_conn *c, *s = NULL;
    cr_assert_eq(klog_listener_accept(l, 0, &s), -ETIMEDOUT);
    struct t_log lg = { .mu = PTHREAD_MUTEX_INITIALIZER };
    cr_assert_eq(klog_transport_set_max_frame(f.reg, 10), 0);
    cr_assert_eq(klog_transport_set_log_cb(f.reg, t_log_cb, &lg), 0);
    fx_pair(&f, l, &c, &s);
    cr_assert_eq(t_send(c, "0123456789A", 11), 0);
    const void *fr;
    cr_assert_eq(klog_conn_recv(s, 5000, &fr), KLOG_ETOOBIG);
    cr_assert_eq(lg.calls, 1);
    klog_conn_close(c), klog_conn_close(s), klog_listener_close(l);
    fx_close(&f);
}

Test(framing, default_cap_is_kafkas)
{
    struct pair p;
    pair_open(&p, TK_UNIX_ABSTRACT);
    uint8_t hdr[4];
    t_be32(hdr, 104857601u);
    cr_assert_eq(ktr__conn_send_raw(p.c, hdr, 4, 1000), 0);
    const void *fr;
    cr_assert_eq(klog_conn_recv(p.s, 5000, &fr), KLOG_ETOOBIG);
    pair_close(&p);
}

Test(framing, log_callback_cleared)
{
    struct fx f;
    fx_open(&f, TK_TCP);
    struct t_log lg = { .mu = PTHREAD_MUTEX_INITIALIZER };
    cr_assert_eq(klog_transport_set_log_cb(NULL, t_log_cb, &lg), -EINVAL);
    cr_assert_eq(klog_transport_set_log_cb(f.reg, t_log_cb, &lg), 0);
    cr_assert_eq(klog_transport_set_log_cb(f.reg, NULL, NULL), 0);
    klog_listener *l = fx_listen(&f);
    klog_conn *c, *s;
    fx_pair(&f, l, &c, &s);
    uint8_t hdr[4];
    t_be32(hdr, 0xffffffffu);
    cr_assert_eq(ktr__conn_send_raw(c, hdr, 4, 1000), 0);
    const void *fr;
    cr_assert_eq(klog_conn_recv(s, 5000, &fr), KLOG_ETOOBIG);
    cr_assert_eq(lg.calls, 0);
    klog_conn_close(c), klog_conn_close(s), klog_listener_close(l);
    fx_close(&f);
}

/* ---- tcp ---------------------------------------------------------------------------- */

Test(tcp, options_on_sockets)
{
    struct pair p;
    pair_open(&p, TK_TCP);
    int v = 0;
    socklen_t len = sizeof v;
    cr_assert_eq(getsockopt(klog_conn_fd(p.c), IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    cr_assert_eq(v, 1, "TCP_NODELAY on the connecting side");
    cr_assert_eq(getsockopt(klog_conn_fd(p.s), IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    cr_assert_eq(v, 1, "TCP_NODELAY on the accepted side");
    cr_assert_eq(getsockopt(klog_conn_fd(p.s), SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(getsockopt(klog_listener_fd(p.l), SOL_SOCKET, SO_REUSEADDR, &v, &len), 0);
    cr_assert_eq(v, 1, "SO_REUSEADDR on the listener");
    pair_close(&p);
}

Test(tcp, ipv6_and_hostnames)
{
    klog_transport_registry *reg;
    cr_assert_eq(klog_transport_registry_new(&reg, 0), 0);
    klog_listener *l;
    klog_conn *c, *s;
    int rc = klog_transport_listen(reg, "tcp://[::1]:0", &l);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        cr_log_warn("no IPv6 loopback here (%s): [::1] not tested", klog_err_name(rc));
    } else {
        cr_assert_eq(rc, 0, "%s", klog_strerror(rc));
        cr_assert_eq(strncmp(klog_listener_url(l), "tcp://[::1]:", 12), 0, "%s", klog_listener_url(l));
        cr_assert_eq(klog_transport_connect(reg, klog_listener_url(l), 5000, &c), 0);
        cr_assert_eq(klog_listener_accept(l, 5000, &s), 0);
        const char *pu;
        klog_conn_peer(s, &pu, NULL);
        cr_assert_eq(strncmp(pu, "tcp://[::1]:", 12), 0, "%s", pu);
        cr_assert_eq(t_send(c, "v6", 2), 0);
        t_expect(s, "v6", 2);
        klog_conn_close(c), klog_conn_close(s), klog_listener_close(l);
    }
    /* A name: localhost resolves to a loopback address that listens. */
    cr_assert_eq(klog_transport_listen(reg, "tcp://127.0.0.1:0", &l), 0);
    const char *port = strrchr(klog_listener_url(l), ':') + 1;
    char url[64];
    snprintf(url, sizeof url, "tcp://localhost:%s", port);
    rc = klog_transport_connect(reg, url, 5000, &c);
    cr_assert_eq(rc, 0, "%s: %s", url, klog_strerror(rc));
    cr_assert_eq(klog_listener_accept(l, 5000, &s), 0);
    cr_assert_eq(t_send(c, "name", 4), 0);
    t_expect(s, "name", 4);
    klog_conn_close(c), klog_conn_close(s), klog_listener_close(l);
    cr_assert_eq(klog_transport_connect(reg, "tcp://no-such-host.invalid:1", 2000, &c), -EHOSTUNREACH);
    klog_transport_registry_free(reg);
}

Test(tcp, address_in_use_and_reuse)
{
    klog_transport_registry *reg;
    cr_assert_eq(klog_transport_registry_new(&reg, 0), 0);
    klog_listener *l, *l2 = NULL;
    cr_assert_eq(klog_transport_listen(reg, "tcp://127.0.0.1:0", &l), 0);
    char url[64];
    snprintf(url, sizeof url, "%s", klog_listener_url(l));
    cr_assert_eq(klog_transport_listen(reg, url, &l2), -EADDRINUSE);
    /* A connection left in TIME_WAIT does not keep a restarted listener out. */
    klog_conn *c, *s;
    cr_assert_eq(klog_transport_connect(reg, url, 5000, &c), 0);
    cr_assert_eq(klog_listener_accept(l, 5000, &s), 0);
    klog_conn_close(s); /* the server closes first: TIME_WAIT on its port */
    klog_conn_close(c);
    klog_listener_close(l);
    cr_assert_eq(klog_transport_listen(reg, url, &l2), 0);
    cr_assert_str_eq(klog_listener_url(l2), url);
    klog_listener_close(l2);
    klog_transport_registry_free(reg);
}

/* ---- unix ---------------------------------------------------------------------------- */

Test(unix_sock, paths_abstract_and_autobind)
{
    struct fx f;
    fx_open(&f, TK_UNIX);
    char path[128], url[160];
    snprintf(path, sizeof path, "%s/k.sock", f.dir);
    snprintf(url, sizeof url, "unix://%s", path);

    /* A stale socket file (nobody listens) is replaced. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    cr_assert_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    klog_listener *l, *l2 = NULL;
    cr_assert_eq(klog_transport_listen(f.reg, url, &l), 0);
    cr_assert_str_eq(klog_listener_url(l), url);
    /* A live one is not. */
    cr_assert_eq(klog_transport_listen(f.reg, url, &l2), -EADDRINUSE);
    klog_conn *c, *s;
    fx_pair(&f, l, &c, &s);
    const char *pu;
    klog_conn_peer(s, &pu, NULL);
    cr_assert_str_eq(pu, "unix://", "an unnamed client");
    klog_conn_close(c), klog_conn_close(s);
    klog_listener_close(l);
    struct stat st;
    cr_assert_eq(stat(path, &st), -1, "the listener removed its file");

    /* The kernel picks an abstract name. */
    cr_assert_eq(klog_transport_listen(f.reg, "unix://", &l), 0);
    cr_assert_eq(strncmp(klog_listener_url(l), "unix://@", 8), 0, "%s", klog_listener_url(l));
    fx_pair(&f, l, &c, &s);
    cr_assert_eq(t_send(c, "auto", 4), 0);
    t_expect(s, "auto", 4);
    klog_conn_close(c), klog_conn_close(s), klog_listener_close(l);

    /* Limits. */
    char longp[200];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    snprintf(url, sizeof url, "unix:///%.150s", longp);
    cr_assert_eq(klog_transport_listen(f.reg, url, &l2), -EINVAL);
    cr_assert_eq(klog_transport_connect(f.reg, "unix://", 100, &c), -EINVAL);
    fx_close(&f);
}
