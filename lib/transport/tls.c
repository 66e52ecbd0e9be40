/*
 * lib/transport/tls.c - the "tls" transport: tls://HOST:PORT, TLS 1.2 and
 * 1.3 over TCP through OpenSSL (klog/transport.h, klog_transport_tls).
 *
 * Sockets are the tcp transport's (sock.c, and tcp's listen, accept,
 * connect and peer ops, which keep no state of their own); this file adds
 * an SSL object per connection and the contexts they are made from.
 *
 * The handshake never blocks an accepting event loop.  Accept takes the
 * TCP connection and makes the SSL object in accept state, nothing more;
 * the handshake advances inside recv and send, each step as far as the
 * socket allows, and a step that must wait for the socket either waits
 * until the call's deadline (a blocking caller) or returns -ETIMEDOUT at
 * once (an event loop calling with timeout 0, which comes back when the
 * descriptor is ready).  Two things a descriptor cannot show, and
 * KLOG_TRANSPORT_CTL_CONN_PENDING tells: plaintext OpenSSL decrypted and
 * holds (a record carries more than one recv asked for), and a handshake
 * flight that waits for the socket to take it.  OpenSSL reads no further
 * ahead than the record it works on (read_ahead stays off), so once a recv
 * returns -ETIMEDOUT nothing is held and the descriptor tells the truth.
 *
 * Sends.  OpenSSL insists that a write that could not finish (WANT_WRITE)
 * is retried with the same bytes.  A send writes up to SEND_RECORDS full
 * records (16 KiB each: the fewest records and seals): each straight from
 * the caller's piece when one holds it (a Fetch response's batches, mapped
 * from the segment), else gathered from the frame's pieces into a buffer
 * on the stack.  When the socket cannot take a record, its bytes are
 * copied to the heap, the call reports the records before it (or nothing
 * taken), and the next send, which the core makes with the bytes from
 * there on (it must), finishes that record first.  A caller that gives up on a frame after such a
 * timeout and sends another fails the connection (-EIO) instead of
 * corrupting the stream: the next call's bytes are compared with the
 * staged ones.
 *
 * Locks.  OpenSSL's SSL object is not safe for two threads at once, and
 * the transport contract lets one thread send while another receives: a
 * mutex per connection is held around every SSL call, never across a
 * wait.  The transport's contexts are swapped under its own mutex by a
 * reload; an SSL object holds a reference to the context it was made
 * from, so connections that are up keep their certificates.
 * Shutdown touches no SSL state (a flag and shutdown(2), as for tcp), so
 * it stays safe from any thread; no close_notify is sent.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <klog/transport.h>

#include "common/common.h"
#include "common/conf.h"
#include "transport/conf_keys.h"
#include "transport/sock.h"
#include "transport/transport_internal.h"

#define RECORD_MAX 16384    /* TLS's largest plaintext record */
#define IDENT_MAX 256
#define PSK_MIN 16
#define PSK_MAX 64

/* What init read from the conf; fixed for the transport's life (a reload
 * reads the same files again). */
struct tls_cfg {
    char cert[KC_STR_MAX], key[KC_STR_MAX], pass[KC_STR_MAX], ca[KC_STR_MAX], ciphers[KC_STR_MAX];
    char psk_id[KC_STR_MAX];
    unsigned char psk[PSK_MAX];
    size_t psk_len;
    int client_auth, protocols, endpoint;
};

struct tls_state {
    struct tls_cfg cfg;
    pthread_mutex_t mu;        /* guards srv and cli */
    bool mu_init;
    SSL_CTX *srv;              /* NULL: this end cannot listen (no certificate, no PSK) */
    SSL_CTX *cli;
    bool cli_paths;            /* the system's CAs loaded into cli (ssl_new) */
    BIO_METHOD *bio;           /* the socket BIO of every connection (sock_bio_*) */
};

struct tls_conn {
    struct ktr_sock_conn sock; /* first: tcp's ops take the block as theirs */
    pthread_mutex_t mu;        /* around every SSL call */
    SSL *ssl;
    bool done;                 /* handshake over */
    bool want_write;           /* the handshake's last step waits for POLLOUT */
    bool psk_used;
    int fail;                  /* a final error seen by an SSL call */
    unsigned char *wsave;      /* a record OpenSSL must be handed again */
    size_t wpend;
    char ident[IDENT_MAX];
};

static const klog_transport_methods *tcp(void)
{
    return ktr_tcp_methods();
}

/* ---- contexts --------------------------------------------------------------- */

static int ssl_errf(char *errbuf, size_t errsize, int rc, const char *what, const char *path)
{
    char reason[200] = "";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    return klog__errf(errbuf, errsize, rc, "%s%s%s: %s", what, path ? " " : "", path ? path : "",
                      reason[0] ? reason : "rejected by OpenSSL");
}

static int file_ok(const char *key, const char *path, char *errbuf, size_t errsize)
{
    if (access(path, R_OK) == 0)
        return 0;
    int rc = -errno;
    return klog__errf(errbuf, errsize, rc, "%s: %s: %s", key, path, klog_strerror(rc));
}

static unsigned int psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk, unsigned int max)
{
    const struct tls_state *st = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct tls_conn *c = SSL_get_app_data(ssl);
    if (!st || !c || !identity || strcmp(identity, st->cfg.psk_id) != 0 || st->cfg.psk_len > max)
        return 0;
    memcpy(psk, st->cfg.psk, st->cfg.psk_len);
    c->psk_used = true;
    snprintf(c->ident, sizeof c->ident, "psk:%.200s", identity);
    return (unsigned int)st->cfg.psk_len;
}

static unsigned int psk_client_cb(SSL *ssl, const char *hint, char *identity, unsigned int max_id,
                                  unsigned char *psk, unsigned int max)
{
    const struct tls_state *st = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct tls_conn *c = SSL_get_app_data(ssl);
    if (!st || !c || strlen(st->cfg.psk_id) + 1 > max_id || st->cfg.psk_len > max)
        return 0;
    memcpy(identity, st->cfg.psk_id, strlen(st->cfg.psk_id) + 1);
    memcpy(psk, st->cfg.psk, st->cfg.psk_len);
    c->psk_used = true;
    snprintf(c->ident, sizeof c->ident, "psk:%.200s", st->cfg.psk_id);
    return (unsigned int)st->cfg.psk_len;
}

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pass = u;
    size_t n = pass ? strlen(pass) : 0;
    if (n == 0 || n >= (size_t)size)
        return 0; /* no passphrase: the key cannot be read */
    memcpy(buf, pass, n);
    return (int)n;
}

/* One context (server or client side) from cfg.  NULL with errbuf set. */
static SSL_CTX *ctx_make(struct tls_state *st, bool server, int *rcp, char *errbuf, size_t errsize)
{
    const struct tls_cfg *cf = &st->cfg;
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    int rc = 0;
    if (!ctx) {
        rc = ssl_errf(errbuf, errsize, -ENOMEM, "TLS context", NULL);
        goto fail;
    }
    SSL_CTX_set_app_data(ctx, st);
    int lo = cf->protocols == KC_TLS_13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    int hi = cf->protocols == KC_TLS_12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(ctx, lo);
    SSL_CTX_set_max_proto_version(ctx, hi);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    const char *ciphers = cf->ciphers[0] ? cf->ciphers : (cf->psk_len ? "DEFAULT:PSK" : NULL);
    if (ciphers && !SSL_CTX_set_cipher_list(ctx, ciphers)) {
        rc = ssl_errf(errbuf, errsize, KLOG_ECONF, "ssl.cipher.suites:", ciphers);
        goto fail;
    }
    /* Never OpenSSL's default, which asks on the terminal. */
    SSL_CTX_set_default_passwd_cb(ctx, pass_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)cf->pass);
    if (cf->cert[0]) {
        if ((rc = file_ok("ssl.certificate.location", cf->cert, errbuf, errsize)) < 0 ||
            (rc = file_ok("ssl.key.location", cf->key, errbuf, errsize)) < 0)
            goto fail;
        if (SSL_CTX_use_certificate_chain_file(ctx, cf->cert) != 1) {
            rc = ssl_errf(errbuf, errsize, KLOG_ECONF, "ssl.certificate.location:", cf->cert);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, cf->key, SSL_FILETYPE_PEM) != 1) {
            rc = ssl_errf(errbuf, errsize, KLOG_ECONF, "ssl.key.location:", cf->key);
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            rc = ssl_errf(errbuf, errsize, KLOG_ECONF, "ssl.key.location: does not match the certificate", NULL);
            goto fail;
        }
    }
    /* The passphrase is needed only while the key is read. */
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    if (cf->ca[0]) {
        if ((rc = file_ok("ssl.ca.location", cf->ca, errbuf, errsize)) < 0)
            goto fail;
        if (SSL_CTX_load_verify_locations(ctx, cf->ca, NULL) != 1) {
            rc = ssl_errf(errbuf, errsize, KLOG_ECONF, "ssl.ca.location:", cf->ca);
            goto fail;
        }
    }
    /* (without ssl.ca.location a client trusts the system's CAs: loaded at
     * its first connection, ssl_new, not here; parsing the bundle cost every
     * klog_server_new 1.3 MB of memory and its time, TLS or not) */
    if (server) {
        /* Sessions resumed across a reload or with client certificates
         * need an id context. */
        static const unsigned char sid[] = "klog";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
        int mode = SSL_VERIFY_NONE;
        if (cf->client_auth == KC_CLIENT_AUTH_REQUESTED)
            mode = SSL_VERIFY_PEER;
        else if (cf->client_auth == KC_CLIENT_AUTH_REQUIRED)
            mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        if (mode != SSL_VERIFY_NONE && cf->ca[0]) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cf->ca);
            if (names)
                SSL_CTX_set_client_CA_list(ctx, names);
        }
        SSL_CTX_set_verify(ctx, mode, NULL);
        if (cf->psk_len)
            SSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (cf->psk_len)
            SSL_CTX_set_psk_client_callback(ctx, psk_client_cb);
    }
    ERR_clear_error();
    return ctx;
fail:
    SSL_CTX_free(ctx);
    *rcp = rc;
    return NULL;
}

/* Both contexts; the server's only when this end can be a server. */
static int ctx_pair(struct tls_state *st, SSL_CTX **srv, SSL_CTX **cli, char *errbuf, size_t errsize)
{
    int rc = 0;
    *srv = *cli = NULL;
    if ((st->cfg.cert[0] || st->cfg.psk_len) && !(*srv = ctx_make(st, true, &rc, errbuf, errsize)))
        return rc;
    if (!(*cli = ctx_make(st, false, &rc, errbuf, errsize))) {
        SSL_CTX_free(*srv);
        *srv = NULL;
        return rc;
    }
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int cfg_read(struct tls_cfg *cf, const klog_conf *conf, char *errbuf, size_t errsize)
{
    memset(cf, 0, sizeof *cf);
#define STR_(f, k) snprintf(cf->f, sizeof cf->f, "%s", klog__conf_str(conf, k))
    STR_(cert, KC_SSL_CERTIFICATE_LOCATION);
    STR_(key, KC_SSL_KEY_LOCATION);
    STR_(pass, KC_SSL_KEY_PASSWORD);
    STR_(ca, KC_SSL_CA_LOCATION);
    STR_(ciphers, KC_SSL_CIPHER_SUITES);
    STR_(psk_id, KC_SSL_PSK_IDENTITY);
#undef STR_
    cf->client_auth = (int)klog__conf_int(conf, KC_SSL_CLIENT_AUTH);
    cf->protocols = (int)klog__conf_int(conf, KC_SSL_ENABLED_PROTOCOLS);
    cf->endpoint = (int)klog__conf_int(conf, KC_SSL_ENDPOINT_IDENTIFICATION);
    if (cf->cert[0] && !cf->key[0])
        return klog__errf(errbuf, errsize, KLOG_ECONF, "ssl.certificate.location is set: ssl.key.location must be too");
    if (cf->key[0] && !cf->cert[0])
        return klog__errf(errbuf, errsize, KLOG_ECONF, "ssl.key.location is set: ssl.certificate.location must be too");
    const char *hex = klog__conf_str(conf, KC_SSL_PSK_KEY);
    size_t n = strlen(hex);
    if (!n != !cf->psk_id[0])
        return klog__errf(errbuf, errsize, KLOG_ECONF, "ssl.psk.identity and ssl.psk.key go together");
    if (n) {
        if (n % 2 || n / 2 < PSK_MIN || n / 2 > PSK_MAX)
            return klog__errf(errbuf, errsize, KLOG_ECONF, "ssl.psk.key: %d to %d bytes in hexadecimal (%d to %d digits)",
                              PSK_MIN, PSK_MAX, 2 * PSK_MIN, 2 * PSK_MAX);
        for (size_t i = 0; i < n; i += 2) {
            int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
            if (hi < 0 || lo < 0)
                return klog__errf(errbuf, errsize, KLOG_ECONF, "ssl.psk.key: not hexadecimal");
            cf->psk[i / 2] = (unsigned char)(hi << 4 | lo);
        }
        cf->psk_len = n / 2;
        if (strlen(cf->psk_id) > 128)
            return klog__errf(errbuf, errsize, KLOG_ECONF, "ssl.psk.identity: at most 128 bytes");
    }
    return 0;
}

/* ---- the socket BIO ------------------------------------------------------------------ */

/* OpenSSL's socket BIO write()s, and a write to a connection the peer has
 * closed raises SIGPIPE, which kills a process that has not ignored it: a
 * replication thread dialling a peer that refuses its certificate did
 * (klog serve, before it set its signals).  A library must not need the
 * application to ignore SIGPIPE, so connections go through this BIO:
 * send(MSG_NOSIGNAL) and recv on the descriptor, the socket BIO's retry
 * and end-of-file conventions (SSL_OP_IGNORE_UNEXPECTED_EOF reads
 * BIO_eof).  It rules out kernel TLS offload (OpenSSL's kTLS needs its
 * own socket BIO); the kernels klog is measured on have no "tls" ULP. */
static int sock_bio_fd(BIO *b) { return (int)(intptr_t)BIO_get_data(b); }

static bool sock_bio_retry(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

static int sock_bio_write(BIO *b, const char *buf, int len)
{
    ssize_t n = send(sock_bio_fd(b), buf, (size_t)len, MSG_NOSIGNAL);
    BIO_clear_retry_flags(b);
    if (n < 0 && sock_bio_retry())
        BIO_set_retry_write(b);
    return (int)n;
}

static int sock_bio_read(BIO *b, char *buf, int len)
{
    if (!buf)
        return 0;
    ssize_t n = recv(sock_bio_fd(b), buf, (size_t)len, 0);
    BIO_clear_retry_flags(b);
    if (n < 0 && sock_bio_retry())
        BIO_set_retry_read(b);
    else if (n == 0)
        BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return (int)n;
}

static int sock_bio_puts(BIO *b, const char *str) { return sock_bio_write(b, str, (int)strlen(str)); }

static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = sock_bio_fd(b);
        return sock_bio_fd(b);
    default:
        return 0;
    }
}

static int sock_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *sock_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "klog socket");
    if (m && (!BIO_meth_set_write(m, sock_bio_write) || !BIO_meth_set_read(m, sock_bio_read) ||
              !BIO_meth_set_puts(m, sock_bio_puts) || !BIO_meth_set_ctrl(m, sock_bio_ctrl) ||
              !BIO_meth_set_create(m, sock_bio_create))) {
        BIO_meth_free(m);
        m = NULL;
    }
    return m;
}

int ktr__tls_check(const klog_conf *conf, char *errbuf, size_t errsize)
{
    struct tls_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    int rc = cfg_read(&st->cfg, conf, errbuf, errsize);
    SSL_CTX *srv = NULL, *cli = NULL;
    if (rc == 0)
        rc = ctx_pair(st, &srv, &cli, errbuf, errsize);
    SSL_CTX_free(srv);
    SSL_CTX_free(cli);
    OPENSSL_cleanse(st, sizeof *st);
    free(st);
    return rc;
}

bool ktr__tls_configured(const klog_conf *conf)
{
    return klog__conf_str(conf, KC_SSL_CERTIFICATE_LOCATION)[0] || klog__conf_str(conf, KC_SSL_PSK_KEY)[0];
}

static int tls_init(void *tst, const void *arg)
{
    struct tls_state *st = tst;
    char eb[256];
    int rc = cfg_read(&st->cfg, arg, eb, sizeof eb);
    if (rc < 0)
        return rc;
    if ((rc = ctx_pair(st, &st->srv, &st->cli, eb, sizeof eb)) < 0)
        return rc;
    if (!(st->bio = sock_bio_method()))
        return -ENOMEM;
    pthread_mutex_init(&st->mu, NULL);
    st->mu_init = true;
    return 0;
}

static void tls_fini(void *tst)
{
    struct tls_state *st = tst;
    SSL_CTX_free(st->srv);
    SSL_CTX_free(st->cli);
    st->srv = st->cli = NULL;
    BIO_meth_free(st->bio);
    st->bio = NULL;
    if (st->mu_init)
        pthread_mutex_destroy(&st->mu);
    OPENSSL_cleanse(&st->cfg, sizeof st->cfg);
}

static int tls_reload(struct tls_state *st, char *errbuf, size_t errsize)
{
    SSL_CTX *srv, *cli;
    int rc = ctx_pair(st, &srv, &cli, errbuf, errsize);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&st->mu);
    SSL_CTX *os = st->srv, *oc = st->cli;
    st->srv = srv;
    st->cli = cli;
    st->cli_paths = false;
    pthread_mutex_unlock(&st->mu);
    SSL_CTX_free(os); /* connections made from them hold references */
    SSL_CTX_free(oc);
    return 0;
}

/* A new SSL object from the current server or client context. */
static SSL *ssl_new(struct tls_state *st, bool server)
{
    pthread_mutex_lock(&st->mu);
    SSL_CTX *ctx = server ? st->srv : st->cli;
    if (ctx && !server && !st->cfg.ca[0] && !st->cli_paths) {
        SSL_CTX_set_default_verify_paths(ctx); /* before any SSL object of it */
        ERR_clear_error();
        st->cli_paths = true;
    }
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    pthread_mutex_unlock(&st->mu);
    return ssl;
}

/* ---- one step of OpenSSL ------------------------------------------------------- */

/* Before an SSL call: its errors, and errno for SSL_ERROR_SYSCALL, are
 * then its own. */
#define PREP_() (ERR_clear_error(), errno = 0)

/* The failure of an SSL call as an error code: -EAGAIN with *ev the poll
 * event to wait for, 0 for the end of the stream, or a final error. */
static int ssl_fail(struct tls_conn *c, int ret, short *ev)
{
    int e = SSL_get_error(c->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *ev = POLLIN;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *ev = POLLOUT;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL: {
        int err = errno;
        ERR_clear_error();
        return err && err != EAGAIN ? -err : 0;
    }
    default:
        break;
    }
    unsigned long le = ERR_peek_last_error();
    int reason = ERR_GET_REASON(le);
    ERR_clear_error();
    switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
        return -EKEYREJECTED;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        return -EACCES;
    default:
        return -EPROTO;
    }
}

/* Who the peer proved to be, once the handshake is over. */
static void set_ident(struct tls_conn *c)
{
    if (c->psk_used)
        return; /* the PSK callback wrote it */
    c->ident[0] = '\0';
    X509 *pc = SSL_get0_peer_certificate(c->ssl);
    if (!pc || SSL_get_verify_result(c->ssl) != X509_V_OK)
        return;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return;
    if (X509_NAME_print_ex(b, X509_get_subject_name(pc), 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(b, c->ident, (int)sizeof c->ident - 1);
        c->ident[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
}

/* Advance the handshake (mu held): 0 when it is over, -EAGAIN with *ev,
 * or a final error. */
static int hs_step(struct tls_conn *c, short *ev)
{
    if (c->done)
        return 0;
    PREP_();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->done = true;
        c->want_write = false;
        set_ident(c);
        return 0;
    }
    int rc = ssl_fail(c, r, ev);
    if (rc == 0)
        rc = -ECONNRESET; /* the peer left in the middle of the handshake */
    c->want_write = rc == -EAGAIN && *ev == POLLOUT;
    return rc;
}

/* Wait for ev on the socket until deadline (0 = ready: try again). */
static int wait_io(struct tls_conn *c, short ev, int64_t deadline)
{
    if (atomic_load(&c->sock.shut))
        return -ECANCELED;
    if (ktr__poll_ms(deadline) == 0)
        return -ETIMEDOUT;
    return ktr_sock_wait(c->sock.fd, ev, -1, deadline);
}

/* ---- the ops -------------------------------------------------------------------- */

static int tls_listen(void *tst, void *lst, const char *addr, char *bound, size_t boundsz)
{
    struct tls_state *st = tst;
    pthread_mutex_lock(&st->mu);
    bool can = st->srv != NULL;
    pthread_mutex_unlock(&st->mu);
    if (!can)
        return -ENOKEY; /* no ssl.certificate.location, no ssl.psk.key */
    return tcp()->listen(NULL, lst, addr, bound, boundsz);
}

static int conn_setup(struct tls_state *st, struct tls_conn *c, bool server)
{
    if (!(c->ssl = ssl_new(st, server)))
        return -ENOMEM;
    BIO *b = BIO_new(st->bio);
    if (!b) {
        SSL_free(c->ssl);
        c->ssl = NULL;
        return -ENOMEM;
    }
    BIO_set_data(b, (void *)(intptr_t)c->sock.fd);
    SSL_set_bio(c->ssl, b, b);
    SSL_set_app_data(c->ssl, c);
    pthread_mutex_init(&c->mu, NULL);
    if (server)
        SSL_set_accept_state(c->ssl);
    else
        SSL_set_connect_state(c->ssl);
    return 0;
}

static int tls_accept(void *tst, void *lst, void *cst, int64_t deadline)
{
    struct tls_conn *c = cst;
    int rc = tcp()->accept(NULL, lst, &c->sock, deadline);
    if (rc < 0)
        return rc;
    if ((rc = conn_setup(tst, c, true)) < 0) {
        ktr_sock_close(&c->sock);
        return rc;
    }
    return 0;
}

static void tls_listener_shutdown(void *tst, void *lst)
{
    tcp()->listener_shutdown(NULL, lst);
}

static void tls_listener_close(void *tst, void *lst)
{
    tcp()->listener_close(NULL, lst);
}

static void conn_release(struct tls_conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
        pthread_mutex_destroy(&c->mu);
    }
    free(c->wsave);
    c->wsave = NULL;
    ktr_sock_close(&c->sock);
}

/* The host of "host:port" / "[v6]:port", for SNI and the name check. */
static void host_of(const char *addr, char *host, size_t n)
{
    const char *b = addr, *e;
    if (*b == '[') {
        b++;
        e = strchr(b, ']');
    } else {
        e = strrchr(b, ':');
    }
    size_t len = e ? (size_t)(e - b) : strlen(b);
    if (len >= n)
        len = n - 1;
    memcpy(host, b, len);
    host[len] = '\0';
}

static bool is_ip(const char *h)
{
    return strspn(h, "0123456789.") == strlen(h) || strchr(h, ':') != NULL;
}

static int tls_connect(void *tst, void *cst, const char *addr, int64_t deadline)
{
    struct tls_state *st = tst;
    struct tls_conn *c = cst;
    int rc = tcp()->connect(NULL, &c->sock, addr, deadline);
    if (rc < 0)
        return rc;
    if ((rc = conn_setup(st, c, false)) < 0) {
        ktr_sock_close(&c->sock);
        return rc;
    }
    char host[256];
    host_of(addr, host, sizeof host);
    if (host[0] && !is_ip(host))
        SSL_set_tlsext_host_name(c->ssl, host);
    if (st->cfg.endpoint == KC_ENDPOINT_HTTPS && host[0]) {
        if (is_ip(host))
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
        else
            SSL_set1_host(c->ssl, host);
    }
    for (;;) {
        short ev = 0;
        pthread_mutex_lock(&c->mu);
        rc = hs_step(c, &ev);
        pthread_mutex_unlock(&c->mu);
        if (rc != -EAGAIN)
            break;
        if ((rc = wait_io(c, ev, deadline)) < 0)
            break;
    }
    if (rc < 0)
        conn_release(c);
    return rc;
}

/*
 * One read or write on a TLS connection: under the connection's lock,
 * finish the handshake, then op (which sets *ev to what it waits for when
 * it returns -EAGAIN); outside it, wait for that event until the deadline
 * and try again.  A final error sticks to the connection.
 */
typedef ssize_t (*tls_op_fn)(struct tls_conn *c, void *arg, short *ev);

static ssize_t tls_io(struct tls_conn *c, int64_t deadline, tls_op_fn op, void *arg)
{
    for (;;) {
        if (atomic_load(&c->sock.shut))
            return -ECANCELED;
        short ev = 0;
        ssize_t rc;
        pthread_mutex_lock(&c->mu);
        if (c->fail)
            rc = c->fail;
        else if ((rc = hs_step(c, &ev)) == 0)
            rc = op(c, arg, &ev);
        if (rc < 0 && rc != -EAGAIN)
            c->fail = (int)rc;
        pthread_mutex_unlock(&c->mu);
        if (rc != -EAGAIN)
            return rc;
        int w = wait_io(c, ev, deadline);
        if (w < 0)
            return w;
    }
}

struct recv_arg {
    void *buf;
    size_t len;
};

static ssize_t recv_op(struct tls_conn *c, void *arg, short *ev)
{
    struct recv_arg *a = arg;
    size_t got = 0;
    PREP_();
    int r = SSL_read_ex(c->ssl, a->buf, a->len, &got);
    return r == 1 ? (ssize_t)got : ssl_fail(c, r, ev);
}

static ssize_t tls_recv(void *tst, void *cst, void *buf, size_t len, int64_t deadline)
{
    (void)tst;
    struct recv_arg a = { buf, len };
    return tls_io(cst, deadline, recv_op, &a);
}

/* Does iov begin with the n bytes at p? */
static bool iov_starts_with(const struct iovec *iov, int iovcnt, const unsigned char *p, size_t n)
{
    for (int i = 0; i < iovcnt && n > 0; i++) {
        size_t k = KLOG_MIN(n, iov[i].iov_len);
        if (memcmp(iov[i].iov_base, p, k) != 0)
            return false;
        p += k;
        n -= k;
    }
    return n == 0;
}

/* Up to one record (RECORD_MAX bytes) of iov from byte off, for
 * SSL_write: a pointer into the caller's piece when it holds the whole
 * record (or is the last piece: a Fetch response's record batches, mapped
 * from the segment, go to OpenSSL without a copy of ours), else the
 * pieces gathered into stage.  Returns the length, 0 at the end. */
static size_t iov_take(const struct iovec *iov, int iovcnt, size_t off, unsigned char *stage,
                       const unsigned char **p)
{
    int i = 0;
    while (i < iovcnt && off >= iov[i].iov_len)
        off -= iov[i++].iov_len;
    if (i == iovcnt)
        return 0;
    size_t first = iov[i].iov_len - off;
    if (first >= RECORD_MAX || i == iovcnt - 1) {
        *p = (const unsigned char *)iov[i].iov_base + off;
        return KLOG_MIN(first, RECORD_MAX);
    }
    size_t n = 0;
    for (; i < iovcnt && n < RECORD_MAX; i++, off = 0) {
        size_t k = KLOG_MIN(iov[i].iov_len - off, RECORD_MAX - n);
        memcpy(stage + n, (const unsigned char *)iov[i].iov_base + off, k);
        n += k;
    }
    *p = stage;
    return n;
}

/* Records one send writes before it returns (1 MiB of plaintext): the
 * core's loop, the lock and the handshake check once per MiB, not per
 * record.  One send(2) per record still (OpenSSL writes each record to
 * the BIO as it seals it). */
#define SEND_RECORDS 64

struct send_arg {
    const struct iovec *iov;
    int iovcnt;
};

/* Up to SEND_RECORDS records of iov: what went, or an error when nothing did. */
static ssize_t send_op(struct tls_conn *c, void *arg, short *ev)
{
    const struct send_arg *a = arg;
    unsigned char stage[RECORD_MAX];
    size_t sent = 0;
    for (int rec = 0; rec < SEND_RECORDS; rec++) {
        const unsigned char *p;
        size_t n;
        if (c->wpend) {
            /* A record OpenSSL began: the same bytes, or the stream is lost
             * (only ever at the start of a call: a call that leaves one
             * returns there). */
            if (!iov_starts_with(a->iov, a->iovcnt, c->wsave, c->wpend))
                return -EIO;
            p = c->wsave;
            n = c->wpend;
        } else if ((n = iov_take(a->iov, a->iovcnt, sent, stage, &p)) == 0) {
            break;
        }
        size_t put = 0;
        PREP_();
        int r = SSL_write_ex(c->ssl, p, n, &put);
        if (r == 1) {
            if (c->wpend) {
                free(c->wsave);
                c->wsave = NULL;
                c->wpend = 0;
            }
            sent += put;
            continue;
        }
        ssize_t e = ssl_fail(c, r, ev);
        if (e == 0)
            e = -EPIPE;
        if (e == -EAGAIN && !c->wpend) {
            if (!(c->wsave = malloc(n))) {
                e = -ENOMEM;
            } else {
                memcpy(c->wsave, p, n);
                c->wpend = n;
            }
        }
        if (sent == 0)
            return e;
        if (e != -EAGAIN)
            c->fail = (int)e; /* what went is reported; the next call fails */
        break;
    }
    return (ssize_t)sent;
}

static ssize_t tls_send(void *tst, void *cst, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    (void)tst;
    struct send_arg a = { iov, iovcnt };
    return tls_io(cst, deadline, send_op, &a);
}

static void tls_shutdown(void *tst, void *cst)
{
    ktr_sock_shutdown(&((struct tls_conn *)cst)->sock);
}

static void tls_close(void *tst, void *cst)
{
    conn_release(cst);
}

static int tls_peer(void *tst, void *cst, char *addr, size_t addrsz, char *ident, size_t identsz)
{
    struct tls_conn *c = cst;
    int rc = tcp()->peer(NULL, &c->sock, addr, addrsz, ident, identsz);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    snprintf(ident, identsz, "%s", c->done ? c->ident : "");
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int tls_control(void *tst, void *lst, void *cst, int op, void *arg)
{
    struct tls_conn *c = cst;
    if (!lst && !cst) {
        if (op == KLOG_TRANSPORT_CTL_TLS_RELOAD) {
            char eb[256];
            int rc = tls_reload(tst, arg ? (char *)arg : eb, 256);
            if (rc == 0 && arg)
                ((char *)arg)[0] = '\0';
            return rc;
        }
        return -ENOTSUP;
    }
    if (c && (op == KLOG_TRANSPORT_CTL_CONN_PENDING || op == KLOG_TRANSPORT_CTL_TLS_PEER ||
              op == KLOG_TRANSPORT_CTL_TLS_INFO)) {
        if (!arg)
            return -EINVAL;
        int rc = 0;
        pthread_mutex_lock(&c->mu);
        if (op == KLOG_TRANSPORT_CTL_CONN_PENDING) {
            int f = 0;
            if (c->done && !c->fail && SSL_pending(c->ssl) > 0)
                f |= KLOG_TRANSPORT_PENDING_READ;
            if (!c->done && c->want_write)
                f |= KLOG_TRANSPORT_PENDING_WRITE;
            *(int *)arg = f;
        } else if (!c->done) {
            rc = -EAGAIN;
        } else if (op == KLOG_TRANSPORT_CTL_TLS_PEER) {
            snprintf(arg, IDENT_MAX, "%s", c->ident);
        } else {
            snprintf(arg, 128, "%s %s", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
        }
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    return ktr_sock_control(lst, c ? &c->sock : NULL, op, arg);
}

static const klog_transport_methods tls_methods = {
    .version = KLOG_TRANSPORT_VERSION,
    .size = sizeof(klog_transport_methods),
    .scheme = "tls",
    .state_size = sizeof(struct tls_state),
    .listener_size = sizeof(struct ktr_sock_listener),
    .conn_size = sizeof(struct tls_conn),
    .init = tls_init,
    .fini = tls_fini,
    .listen = tls_listen,
    .accept = tls_accept,
    .listener_shutdown = tls_listener_shutdown,
    .listener_close = tls_listener_close,
    .connect = tls_connect,
    .send = tls_send,
    .recv = tls_recv,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .peer = tls_peer,
    .control = tls_control,
};

KLOG_API const klog_transport_methods *klog_transport_tls(void)
{
    return &tls_methods;
}
