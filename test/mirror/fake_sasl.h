/*
 * test/mirror/fake_sasl.h - a Kafka broker that refuses every login: it
 * answers ApiVersions (listing SaslHandshake and SaslAuthenticate),
 * SaslHandshake (mechanism PLAIN offered), then SaslAuthenticate with
 * SASL_AUTHENTICATION_FAILED (58), as a broker does for a wrong password.
 * librdkafka's mock cluster has no SASL, nor has klog serve yet: this is
 * how the tests meet an authentication failure.  One thread, one
 * connection at a time, 127.0.0.1 on a port the kernel picks; every read
 * is bounded (poll with a timeout) and frames are capped before anything
 * is allocated for them.
 */
#ifndef KLOG_TEST_FAKE_SASL_H
#define KLOG_TEST_FAKE_SASL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct fake_sasl {
    int lfd;
    int port;
    pthread_t th;
    atomic_bool stop;
    atomic_int refused;             /* SaslAuthenticate requests refused */
} fake_sasl;

static inline int fs_read_full(fake_sasl *fs, int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n && !atomic_load(&fs->stop)) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int pr = poll(&p, 1, 100);
        if (pr < 0 && errno != EINTR)
            return -1;
        if (pr <= 0)
            continue;
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return got == n ? 0 : -1;
}

typedef struct fs_buf {
    uint8_t b[512];
    size_t n;
} fs_buf;

static inline void fs_i16(fs_buf *w, int16_t v)
{
    uint16_t x = htons((uint16_t)v);
    memcpy(w->b + w->n, &x, 2);
    w->n += 2;
}
static inline void fs_i32(fs_buf *w, int32_t v)
{
    uint32_t x = htonl((uint32_t)v);
    memcpy(w->b + w->n, &x, 4);
    w->n += 4;
}
static inline void fs_str(fs_buf *w, const char *s)
{
    fs_i16(w, (int16_t)strlen(s));
    memcpy(w->b + w->n, s, strlen(s));
    w->n += strlen(s);
}

static inline int fs_send(int fd, int32_t corr, fs_buf *body)
{
    fs_buf f = { .n = 0 };
    fs_i32(&f, (int32_t)(body->n + 4));
    fs_i32(&f, corr);
    memcpy(f.b + f.n, body->b, body->n);
    f.n += body->n;
    return write(fd, f.b, f.n) == (ssize_t)f.n ? 0 : -1;
}

static inline void fs_serve(fake_sasl *fs, int fd)
{
    for (;;) {
        uint32_t len;
        if (fs_read_full(fs, fd, &len, 4) < 0)
            return;
        len = ntohl(len);
        if (len < 8 || len > 65536)
            return;
        uint8_t *req = malloc(len);
        if (!req || fs_read_full(fs, fd, req, len) < 0) {
            free(req);
            return;
        }
        int16_t key = (int16_t)(req[0] << 8 | req[1]), ver = (int16_t)(req[2] << 8 | req[3]);
        int32_t corr = (int32_t)((uint32_t)req[4] << 24 | (uint32_t)req[5] << 16 | (uint32_t)req[6] << 8 | req[7]);
        free(req);
        fs_buf w = { .n = 0 };
        if (key == 18 && ver > 0) { /* ApiVersions: not this version (the client retries v0) */
            fs_i16(&w, 35);
            fs_i32(&w, 0);
        } else if (key == 18) {
            static const int16_t apis[][3] = { { 18, 0, 0 }, { 17, 0, 1 }, { 36, 0, 1 }, { 3, 0, 1 } };
            fs_i16(&w, 0);
            fs_i32(&w, 4);
            for (int i = 0; i < 4; i++)
                fs_i16(&w, apis[i][0]), fs_i16(&w, apis[i][1]), fs_i16(&w, apis[i][2]);
        } else if (key == 17) { /* SaslHandshake: PLAIN it is */
            fs_i16(&w, 0);
            fs_i32(&w, 1);
            fs_str(&w, "PLAIN");
        } else if (key == 36) { /* SaslAuthenticate: refused */
            fs_i16(&w, 58);
            fs_str(&w, "Authentication failed: Invalid username or password");
            fs_i32(&w, 0); /* auth_bytes, empty */
            if (ver >= 1)
                fs_i32(&w, 0), fs_i32(&w, 0); /* session_lifetime_ms (int64) */
            atomic_fetch_add(&fs->refused, 1);
        } else {
            return;
        }
        if (fs_send(fd, corr, &w) < 0)
            return;
    }
}

static inline void *fs_main(void *arg)
{
    fake_sasl *fs = arg;
    while (!atomic_load(&fs->stop)) {
        struct pollfd p = { .fd = fs->lfd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept(fs->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        fs_serve(fs, fd);
        close(fd);
    }
    return NULL;
}

/* Listen on 127.0.0.1:0 and serve in a thread.  Returns 0 or -errno. */
static inline int fake_sasl_start(fake_sasl *fs)
{
    memset(fs, 0, sizeof *fs);
    fs->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (fs->lfd < 0)
        return -errno;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (bind(fs->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fs->lfd, 16) < 0 ||
        getsockname(fs->lfd, (struct sockaddr *)&a, &al) < 0) {
        int e = -errno;
        close(fs->lfd);
        return e;
    }
    fs->port = ntohs(a.sin_port);
    if (pthread_create(&fs->th, NULL, fs_main, fs) != 0) {
        close(fs->lfd);
        return -EAGAIN;
    }
    return 0;
}

static inline void fake_sasl_stop(fake_sasl *fs)
{
    atomic_store(&fs->stop, true);
    pthread_join(fs->th, NULL);
    close(fs->lfd);
}

#endif /* KLOG_TEST_FAKE_SASL_H */
