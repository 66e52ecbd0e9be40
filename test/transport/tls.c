/*
 * test/transport/tls.c - the "tls" transport (klog_transport_tls): server
 * certificates, client certificates (mutual TLS), the pre-shared-key mode,
 * the peer identities each side sees, a handshake that does not block an
 * accepting loop, garbage instead of a handshake, plaintext that OpenSSL
 * holds after a record (KLOG_TRANSPORT_CTL_CONN_PENDING), a reload of the
 * certificates that keeps the connections that are up, and configuration
 * errors.  Certificates come from test/tls/mkcerts.sh (the openssl
 * command), made once per test in a temporary directory.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <klog/conf.h>

#include "tr_test.h"

#ifndef MKCERTS
#error "MKCERTS must name test/tls/mkcerts.sh"
#endif

static char certdir[64];

static void certs_make(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(certdir, sizeof certdir, "/tmp/klog-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(certdir));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh %s %s", MKCERTS, certdir);
    cr_assert_eq(system(cmd), 0, "%s failed (is the openssl command installed?)", cmd);
}

static void certs_drop(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(tls, .init = certs_make, .fini = certs_drop, .timeout = 60);

/* A conf with key=value pairs; a value starting with '@' names a file in
 * certdir. */
static klog_conf *conf_of(const char *const *kv)
{
    klog_conf *c;
    cr_assert_eq(klog_conf_new(&c), 0);
    for (; kv && kv[0]; kv += 2) {
        char v[256], eb[256] = "";
        if (kv[1][0] == '@')
            snprintf(v, sizeof v, "%s/%s", certdir, kv[1] + 1);
        else
            snprintf(v, sizeof v, "%s", kv[1]);
        cr_assert_eq(klog_conf_set(c, kv[0], v, eb, sizeof eb), 0, "%s=%s: %s", kv[0], v, eb);
    }
    return c;
}

static klog_transport_registry *reg_of(const char *const *kv, int want)
{
    klog_transport_registry *reg;
    cr_assert_eq(klog_transport_registry_new(&reg, 0), 0);
    klog_conf *c = conf_of(kv);
    int rc = klog_transport_register(reg, klog_transport_tls(), c);
    klog_conf_free(c);
    cr_assert_eq(rc, want, "register: %d (%s), want %d", rc, klog_strerror(rc), want);
    return reg;
}

static const char *const SERVER[] = { "ssl.certificate.location", "@server.pem", "ssl.key.location", "@server.key",
                                      NULL };
static const char *const CLIENT[] = { "ssl.ca.location", "@ca.pem", NULL };

/* The accepting side, on its own thread: accept, then receive one frame
 * (the handshake runs inside that receive) and send it back. */
struct acceptor {
    klog_listener *l;
    klog_conn *c;
    int rc;
    char ident[256];
    char info[128];
    pthread_t th;
};

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    a->rc = klog_listener_accept(a->l, 10000, &a->c);
    if (a->rc < 0)
        return NULL;
    const void *fr;
    int n = klog_conn_recv(a->c, 10000, &fr);
    if (n < 0) {
        a->rc = n;
        return NULL;
    }
    klog_conn_control(a->c, KLOG_TRANSPORT_CTL_TLS_PEER, a->ident);
    klog_conn_control(a->c, KLOG_TRANSPORT_CTL_TLS_INFO, a->info);
    struct iovec v = { (void *)fr, (size_t)n };
    a->rc = klog_conn_send(a->c, &v, 1, 10000);
    return NULL;
}

static void acceptor_start(struct acceptor *a, klog_listener *l)
{
    memset(a, 0, sizeof *a);
    a->l = l;
    cr_assert_eq(pthread_create(&a->th, NULL, acceptor_main, a), 0);
}

static int acceptor_join(struct acceptor *a)
{
    pthread_join(a->th, NULL);
    return a->rc;
}

/* Connect with creg, send a frame, expect it back.  Returns connect's or
 * the exchange's error, 0 on success; *out keeps the connection. */
static int round_trip(klog_transport_registry *creg, const char *url, klog_conn **out)
{
    klog_conn *c = NULL;
    int rc = klog_transport_connect(creg, url, 10000, &c);
    if (rc < 0)
        return rc;
    if ((rc = t_send(c, "hello", 5)) == 0) {
        const void *fr;
        rc = klog_conn_recv(c, 10000, &fr);
        if (rc == 5)
            rc = memcmp(fr, "hello", 5) == 0 ? 0 : -EIO;
    }
    if (out && rc == 0)
        *out = c;
    else
        klog_conn_close(c);
    return rc;
}

static char *tls_url(klog_listener *l, const char *host, char *buf, size_t n)
{
    const char *u = klog_listener_url(l); /* tls://127.0.0.1:PORT */
    snprintf(buf, n, "tls://%s:%s", host, strrchr(u, ':') + 1);
    return buf;
}

Test(tls, server_certificate)
{
    klog_transport_registry *sreg = reg_of(SERVER, 0), *creg = reg_of(CLIENT, 0);
    klog_listener *l;
    cr_assert_eq(klog_transport_listen(sreg, "tls://127.0.0.1:0", &l), 0);
    cr_assert(strncmp(klog_listener_url(l), "tls://127.0.0.1:", 16) == 0, "%s", klog_listener_url(l));
    struct acceptor a;
    acceptor_start(&a, l);
    klog_conn *c = NULL;
    int rc = round_trip(creg, klog_listener_url(l), &c);
    cr_assert_eq(rc, 0, "%s", klog_strerror(rc));
    cr_assert_eq(acceptor_join(&a), 0, "%s", klog_strerror(a.rc));
    /* The client checked the server: its identity is the subject. */
    const char *ident = NULL;
    klog_conn_peer(c, NULL, &ident);
    cr_assert_str_eq(ident, "CN=localhost,O=klog");
    char buf[256];
    cr_assert_eq(klog_conn_control(c, KLOG_TRANSPORT_CTL_TLS_PEER, buf), 0);
    cr_assert_str_eq(buf, "CN=localhost,O=klog");
    /* No client certificate asked for: the server vouches for nobody. */
    cr_assert_str_eq(a.ident, "");
    cr_assert(strncmp(a.info, "TLSv1.3 ", 8) == 0, "%s", a.info);
    klog_conn_close(c);
    klog_conn_close(a.c);
    /* By name, checked against the certificate's DNS name. */
    acceptor_start(&a, l);
    char url[128];
    cr_assert_eq(round_trip(creg, tls_url(l, "localhost", url, sizeof url), NULL), 0);
    cr_assert_eq(acceptor_join(&a), 0);
    klog_conn_close(a.c);
    klog_listener_close(l);
    klog_transport_registry_free(sreg);
    klog_transport_registry_free(creg);
}

/* Without ssl.ca.location a client trusts the system's CAs, loaded at its
 * first connection (not at registration): here the system's bundle is the
 * test CA (SSL_CERT_FILE, read by OpenSSL when it loads them; each
 * Criterion test is a process of its own), so the server is trusted; with
 * a bundle that lacks it, refused. */
Test(tls, system_cas_at_the_first_connection)
{
    char ca[512], other[512];
    snprintf(ca, sizeof ca, "%s/ca.pem", certdir);
    snprintf(other, sizeof other, "%s/other-ca.pem", certdir);
    for (int trusted = 1; trusted >= 0; trusted--) {
        klog_transport_registry *sreg = reg_of(SERVER, 0), *creg = reg_of(NULL, 0);
        /* after the registration: the bundle is read at the connection */
        cr_assert_eq(setenv("SSL_CERT_FILE", trusted ? ca : other, 1), 0);
        cr_assert_eq(setenv("SSL_CERT_DIR", "/nonexistent", 1), 0);
        klog_listener *l;
        cr_assert_eq(klog_transport_listen(sreg, "tls://127.0.0.1:0", &l), 0);
        struct acceptor a;
        acceptor_start(&a, l);
        int rc = round_trip(creg, klog_listener_url(l), NULL);
        if (trusted)
            cr_assert_eq(rc, 0, "%d %s", rc, klog_strerror(rc));
        else
            cr_assert_eq(rc, -EKEYREJECTED, "%d %s", rc, klog_strerror(rc));
        acceptor_join(&a);
        klog_conn_close(a.c);
        klog_listener_close(l);
        klog_transport_registry_free(sreg);
        klog_transport_registry_free(creg);
    }
}

Test(tls, untrusted_server_is_refused)
{
    static const char *const OTHER[] = { "ssl.ca.location", "@other-ca.pem", NULL };
    klog_transport_registry *sreg = reg_of(SERVER, 0), *creg = reg_of(OTHER, 0);
    klog_listener *l;
    cr_assert_eq(klog_transport_listen(sreg, "tls://127.0.0.1:0", &l), 0);
    struct acceptor a;
    acceptor_start(&a, l);
    int rc = round_trip(creg, klog_listener_url(l), NULL);
    cr_assert_eq(rc, -EKEYREJECTED, "%d %s", rc, klog_strerror(rc));
    cr_assert_lt(acceptor_join(&a), 0);
    klog_conn_close(a.c);
    klog_listener_close(l);
    klog_transport_registry_free(sreg);
    /* A certificate from the right CA, for another name (alice's, which
     * names no host): refused, unless the name check is off. */
    static const char *const ALICE[] = { "ssl.certificate.location", "@alice.pem", "ssl.key.location", "@alice.key",
                                         NULL };
    static const char *const NOCHECK[] = { "ssl.ca.location", "@ca.pem", "ssl.endpoint.identification.algorithm",
                                           "none", NULL };
    sreg = reg_of(ALICE, 0);
    klog_transport_registry *good = reg_of(CLIENT, 0), *nreg = reg_of(NOCHECK, 0);
    cr_assert_eq(klog_transport_listen(sreg, "tls://127.0.0.1:0", &l), 0);
    acceptor_start(&a, l);
    rc = round_trip(good, klog_listener_url(l), NULL);
    cr_assert_eq(rc, -EKEYREJECTED, "%d %s", rc, klog_strerror(rc));
    acceptor_join(&a);
    klog_conn_close(a.c);
    acceptor_start(&a, l);
    rc = round_trip(nreg, klog_listener_url(l), NULL);
    cr_assert_eq(rc, 0, "%d %s", rc, klog_strerror(rc));
    cr_assert_eq(acceptor_join(&a), 0);
    klog_conn_close(a.c);
    klog_transport_registry_free(good);
    klog_listener_close(l);
    klog_transport_registry_free(nreg);
    klog_transport_registry_free(sreg);
    klog_transport_registry_free(creg);
}

static void mtls_case(const char *client_auth, const char *cert, int want_rc, const char *want_ident)
{
    const char *const S[] = { "ssl.certificate.location", "@server.pem", "ssl.key.location", "@server.key",
                              "ssl.ca.location", "@ca.pem", "ssl.client.auth", client_auth, NULL };
    char cp[64], kp[64];
    snprintf(cp, sizeof cp, "@%s.pem", cert ? cert : "");
    snprintf(kp, sizeof kp, "@%s.key", cert ? cert : "");
    const char *const C[] = { "ssl.ca.location", "@ca.pem", cert ? "ssl.certificate.location" : NULL, cp,
                              "ssl.key.location", kp, NULL };
    klog_transport_registry *sreg = reg_of(S, 0), *creg = reg_of(C, 0);
    klog_listener *l;
    cr_assert_eq(klog_transport_listen(sreg, "tls://127.0.0.1:0", &l), 0);
    struct acceptor a;
    acceptor_start(&a, l);
    int rc = round_trip(creg, klog_listener_url(l), NULL);
    int arc = acceptor_join(&a);
    if (want_rc == 0) {
        cr_assert_eq(rc, 0, "client %s: %s", cert, klog_strerror(rc));
        cr_assert_eq(arc, 0);
        cr_assert_str_eq(a.ident, want_ident);
    } else {
        /* TLS 1.3: the client may finish its handshake before the server
         * refuses its certificate; then its first receive fails. */
        cr_assert_lt(rc, 0, "client %s was let in", cert);
        cr_assert_eq(arc, want_rc, "server side: %d %s", arc, klog_strerror(arc));
    }
    klog_conn_close(a.c);
    klog_listener_close(l);
    klog_transport_registry_free(sreg);
    klog_transport_registry_free(creg);
}

Test(tls, client_certificates)
{
    mtls_case("required", "alice", 0, "CN=alice,O=klog");
    mtls_case("requested", "bob", 0, "CN=bob,O=klog");
    mtls_case("requested", NULL, 0, "");
    mtls_case("none", "alice", 0, "");
    mtls_case("required", NULL, -EACCES, NULL);
    mtls_case("required", "mallory", -EKEYREJECTED, NULL);
    mtls_case("requested", "mallory", -EKEYREJECTED, NULL);
}

Test(tls, pre_shared_key)
{
    static const char *const PSK[] = { "ssl.psk.identity", "gateway-1", "ssl.psk.key",
                                       "00112233445566778899aabbccddeeff", NULL };
    static const char *const BAD[] = { "ssl.psk.identity", "gateway-1", "ssl.psk.key",
                                       "ffeeddccbbaa99887766554433221100", NULL };
    static const char *const PSK12[] = { "ssl.psk.identity", "gateway-1", "ssl.psk.key",
                                         "00112233445566778899aabbccddeeff", "ssl.enabled.protocols", "TLSv1.2",
                                         NULL };
    klog_transport_registry *sreg = reg_of(PSK, 0), *creg = reg_of(PSK, 0), *breg = reg_of(BAD, 0),
                            *c12 = reg_of(PSK12, 0);
    klog_listener *l;
    cr_assert_eq(klog_transport_listen(sreg, "tls://127.0.0.1:0", &l), 0);
    struct acceptor a;
    acceptor_start(&a, l);
    klog_conn *c = NULL;
    int rc = round_trip(creg, klog_listener_url(l), &c);
    cr_assert_eq(rc, 0, "%s", klog_strerror(rc));
    cr_assert_eq(acceptor_join(&a), 0);
    cr_assert_str_eq(a.ident, "psk:gateway-1");
    cr_assert(strncmp(a.info, "TLSv1.3 ", 8) == 0, "%s", a.info);
    klog_conn_close(c);
    klog_conn_close(a.c);
    /* TLS 1.2's PSK suites. */
    acceptor_start(&a, l);
    rc = round_trip(c12, klog_listener_url(l), NULL);
    cr_assert_eq(rc, 0, "%s", klog_strerror(rc));
    cr_assert_eq(acceptor_join(&a), 0);
    cr_assert_str_eq(a.ident, "psk:gateway-1");
    cr_assert(strncmp(a.info, "TLSv1.2 ", 8) == 0, "%s", a.info);
    klog_conn_close(a.c);
    /* The wrong key. */
    acceptor_start(&a, l);
    rc = round_trip(breg, klog_listener_url(l), NULL);
    cr_assert_lt(rc, 0);
    cr_assert_lt(acceptor_join(&a), 0);
    klog_conn_close(a.c);
    klog_listener_close(l);
    klog_transport_registry_free(sreg);
    klog_transport_registry_free(creg);
    klog_transport_registry_free(breg);
    klog_transport_registry_free(c12);
}

/* A plain TCP socket to the listener's port. */
static int raw_connect(klog_listener *l)
{
    const char *u = klog_listener_url(l);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(strrchr(u, ':') + 1)) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

Test(tls, handshake_does_not_block_accept)
{
    klog_transport_registry *sreg = reg_of(SERVER, 0);
    klog_listener *l;
    cr_assert_eq(klog_transport_listen(sreg, "tls://127.0.0.1:0", &l), 0);
    /* A client that connects and says nothing: accept returns at once,
     * and a receive with timeout 0 times out rather than waiting for the
     * handshake. */
    int quiet = raw_connect(l);
    klog_conn *sc;
    cr_assert_eq(klog_listener_accept(l, 5000, &sc), 0);
    const void *fr;
    int64_t t0 = t_ms();
    cr_assert_eq(klog_conn_recv(sc, 0, &fr), -ETIMEDOUT);
    cr_assert_eq(klog_conn_recv(sc, 50, &fr), -ETIMEDOUT);
    cr_assert_lt(t_ms() - t0, 5000);
    const char *ident = "x";
    klog_conn_peer(sc, NULL, &ident);
    cr_assert_str_eq(ident, "");
    char buf[256];
    cr_assert_eq(klog_conn_control(sc, KLOG_TRANSPORT_CTL_TLS_PEER, buf), -EAGAIN);
    int flags = -1;
    cr_assert_eq(klog_conn_control(sc, KLOG_TRANSPORT_CTL_CONN_PENDING, &flags), 0);
    cr_assert_eq(flags, 0);
    /* Garbage instead of a ClientHello fails that connection alone. */
    int junk = raw_connect(l);
    klog_conn *jc;
    cr_assert_eq(klog_listener_accept(l, 5000, &jc), 0);
    static const char garbage[] = "GET / HTTP/1.0\r\n\r\n this is not TLS at all";
    cr_assert_eq(write(junk, garbage, sizeof garbage), (ssize_t)sizeof garbage);
    int rc = klog_conn_recv(jc, 5000, &fr);
    cr_assert_eq(rc, -EPROTO, "%d %s", rc, klog_strerror(rc));
    cr_assert_eq(klog_conn_recv(jc, 0, &fr), -EPROTO); /* final */
    klog_conn_close(jc);
    close(junk);
    /* The quiet one's handshake goes on when it speaks. */
    cr_assert_eq(klog_conn_recv(sc, 0, &fr), -ETIMEDOUT);
    close(quiet);
    rc = klog_conn_recv(sc, 5000, &fr);
    cr_assert(rc == -ECONNRESET || rc == -EPIPE, "%d %s", rc, klog_strerror(rc));
    klog_conn_close(sc);
    klog_listener_close(l);
    klog_transport_registry_free(sreg);
}

Test(tls, pending_plaintext_is_reported)
{
    klog_transport_registry *sreg = reg_of(SERVER, 0), *creg = reg_of(CLIENT, 0);
    klog_listener *l;
    cr_assert_eq(klog_transport_listen(sreg, "tls://127.0.0.1:0", &l), 0);
    struct acceptor a;
    acceptor_start(&a, l);
    klog_conn *c = NULL;
    cr_assert_eq(round_trip(creg, klog_listener_url(l), &c), 0);
    cr_assert_eq(acceptor_join(&a), 0);
    /* Three frames in one TLS record. */
    uint8_t raw[3 * 7];
    for (int i = 0; i < 3; i++) {
        t_be32(raw + 7 * i, 3);
        memcpy(raw + 7 * i + 4, i == 0 ? "one" : i == 1 ? "two" : "six", 3);
    }
    cr_assert_eq(ktr__conn_send_raw(c, raw, sizeof raw, 5000), 0);
    int fd = klog_conn_fd(a.c);
    cr_assert_geq(fd, 0);
    struct pollfd p = { .fd = fd, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 5000), 1);
    const void *fr;
    cr_assert_eq(klog_conn_recv(a.c, 0, &fr), 3);
    cr_assert(memcmp(fr, "one", 3) == 0);
    /* The other two are inside OpenSSL: the socket has nothing more. */
    p.revents = 0;
    cr_assert_eq(poll(&p, 1, 0), 0);
    int flags = 0;
    cr_assert_eq(klog_conn_control(a.c, KLOG_TRANSPORT_CTL_CONN_PENDING, &flags), 0);
    cr_assert_eq(flags, KLOG_TRANSPORT_PENDING_READ);
    cr_assert_eq(klog_conn_recv(a.c, 0, &fr), 3);
    cr_assert(memcmp(fr, "two", 3) == 0);
    cr_assert_eq(klog_conn_recv(a.c, 0, &fr), 3);
    cr_assert(memcmp(fr, "six", 3) == 0);
    cr_assert_eq(klog_conn_control(a.c, KLOG_TRANSPORT_CTL_CONN_PENDING, &flags), 0);
    cr_assert_eq(flags, 0);
    cr_assert_eq(klog_conn_recv(a.c, 0, &fr), -ETIMEDOUT);
    /* A big frame both ways: many records, partial sends. */
    size_t big = 3u << 20;
    uint8_t *buf = malloc(big);
    t_fill(buf, big, 7);
    struct t_async as;
    t_send_start(&as, c, buf, big);
    t_expect(a.c, buf, big);
    cr_assert_eq(t_send_join(&as), 0);
    free(buf);
    klog_conn_close(c);
    klog_conn_close(a.c);
    klog_listener_close(l);
    klog_transport_registry_free(sreg);
    klog_transport_registry_free(creg);
}

Test(tls, reload_keeps_connections)
{
    char dir[96];
    snprintf(dir, sizeof dir, "%s/live", certdir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/server.pem %s/server.key %s/", dir, certdir, certdir, dir);
    cr_assert_eq(system(cmd), 0);
    const char *const S[] = { "ssl.certificate.location", "@live/server.pem", "ssl.key.location", "@live/server.key",
                              NULL };
    klog_transport_registry *sreg = reg_of(S, 0), *creg = reg_of(CLIENT, 0);
    klog_listener *l;
    cr_assert_eq(klog_transport_listen(sreg, "tls://127.0.0.1:0", &l), 0);
    struct acceptor a;
    acceptor_start(&a, l);
    klog_conn *old = NULL;
    cr_assert_eq(round_trip(creg, klog_listener_url(l), &old), 0);
    cr_assert_eq(acceptor_join(&a), 0);
    klog_conn *old_srv = a.c;
    const char *ident;
    klog_conn_peer(old, NULL, &ident);
    cr_assert_str_eq(ident, "CN=localhost,O=klog");

    /* A broken file: the reload fails, says why, and changes nothing. */
    snprintf(cmd, sizeof cmd, "echo broken > %s/server.pem", dir);
    cr_assert_eq(system(cmd), 0);
    char eb[256] = "";
    int rc = klog_transport_control(sreg, "tls", KLOG_TRANSPORT_CTL_TLS_RELOAD, eb);
    cr_assert_eq(rc, KLOG_ECONF, "%d %s", rc, klog_strerror(rc));
    cr_assert(strstr(eb, "ssl.certificate.location") != NULL, "%s", eb);

    snprintf(cmd, sizeof cmd, "cp %s/server2.pem %s/server.pem && cp %s/server2.key %s/server.key", certdir, dir,
             certdir, dir);
    cr_assert_eq(system(cmd), 0);
    rc = klog_transport_control(sreg, "tls", KLOG_TRANSPORT_CTL_TLS_RELOAD, eb);
    cr_assert_eq(rc, 0, "%s: %s", klog_strerror(rc), eb);
    /* New connections get the new certificate... */
    acceptor_start(&a, l);
    klog_conn *neu = NULL;
    cr_assert_eq(round_trip(creg, klog_listener_url(l), &neu), 0);
    cr_assert_eq(acceptor_join(&a), 0);
    klog_conn_peer(neu, NULL, &ident);
    cr_assert_str_eq(ident, "CN=localhost,O=klog-reloaded");
    klog_conn_close(neu);
    klog_conn_close(a.c);
    /* ...and the old one still works. */
    cr_assert_eq(t_send(old, "still", 5), 0);
    t_expect(old_srv, "still", 5);
    cr_assert_eq(t_send(old_srv, "here", 4), 0);
    t_expect(old, "here", 4);
    klog_conn_close(old);
    klog_conn_close(old_srv);
    cr_assert_eq(klog_transport_control(sreg, "nope", KLOG_TRANSPORT_CTL_TLS_RELOAD, NULL), -EPROTONOSUPPORT);
    cr_assert_eq(klog_transport_control(sreg, "tcp", KLOG_TRANSPORT_CTL_TLS_RELOAD, NULL), -ENOTSUP);
    klog_listener_close(l);
    klog_transport_registry_free(sreg);
    klog_transport_registry_free(creg);
}

Test(tls, configuration_errors)
{
    static const char *const NOKEY[] = { "ssl.certificate.location", "@server.pem", NULL };
    static const char *const MISSING[] = { "ssl.certificate.location", "@nope.pem", "ssl.key.location",
                                           "@server.key", NULL };
    static const char *const MISMATCH[] = { "ssl.certificate.location", "@server.pem", "ssl.key.location",
                                            "@alice.key", NULL };
    static const char *const SHORTPSK[] = { "ssl.psk.identity", "g", "ssl.psk.key", "0011", NULL };
    static const char *const ENC_NOPASS[] = { "ssl.certificate.location", "@server.pem", "ssl.key.location",
                                              "@enc.key", NULL };
    static const char *const ENC[] = { "ssl.certificate.location", "@server.pem", "ssl.key.location", "@enc.key",
                                       "ssl.key.password", "s3cret", NULL };
    klog_transport_registry_free(reg_of(NOKEY, KLOG_ECONF));
    klog_transport_registry_free(reg_of(MISSING, -ENOENT));
    klog_transport_registry_free(reg_of(MISMATCH, KLOG_ECONF));
    klog_transport_registry_free(reg_of(SHORTPSK, KLOG_ECONF));
    klog_transport_registry_free(reg_of(ENC_NOPASS, KLOG_ECONF));
    klog_transport_registry_free(reg_of(ENC, 0));
    /* The reasons, for a server to print. */
    klog_conf *c = conf_of(MISMATCH);
    char eb[256] = "";
    cr_assert_eq(ktr__tls_check(c, eb, sizeof eb), KLOG_ECONF);
    cr_assert(strstr(eb, "mismatch") != NULL || strstr(eb, "does not match") != NULL, "%s", eb);
    klog_conf_free(c);
    c = conf_of(MISSING);
    cr_assert_eq(ktr__tls_check(c, eb, sizeof eb), -ENOENT);
    cr_assert(strstr(eb, "nope.pem") != NULL, "%s", eb);
    klog_conf_free(c);
    /* Without a certificate a registry can connect but not listen. */
    klog_transport_registry *reg = reg_of(NULL, 0);
    klog_listener *l;
    cr_assert_eq(klog_transport_listen(reg, "tls://127.0.0.1:0", &l), -ENOKEY);
    klog_transport_registry_free(reg);
}
