/*
 * test/transport/idle.c - a server holds 1,000 idle client connections on
 * 127.0.0.1 with ONE thread and bounded memory, and still answers a fresh
 * connection at once.
 *
 * The server thread is what a Kafka listener will be: epoll over the
 * listener's and every connection's readiness descriptor (klog_listener_fd,
 * klog_conn_fd), accept and receive with timeout 0 on the ready ones, echo
 * each frame.  The test checks that the process has two threads (the test
 * and the server: the transport starts none), that the core holds less
 * than 1 KiB per connection and no frame buffer for an idle one, and that
 * frames round-trip on a fresh connection and on the first and last idle
 * ones.
 *
 * A plain program (exit 0 pass, 1 fail, 77 skip): the one reason to skip
 * is a hard RLIMIT_NOFILE too low for 2,000 sockets and the test cannot
 * raise it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <klog/transport.h>

#include "transport/transport_internal.h"

#define NIDLE 1000
#define MAXC (NIDLE + 8)

static int failures;
#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "idle.c:%d: FAILED %s: ", __LINE__, #cond);                   \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
            failures++;                                                                   \
            goto out;                                                                     \
        }                                                                                 \
    } while (0)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct server {
    klog_listener *l;
    int stop;                  /* eventfd */
    klog_conn *conns[MAXC];    /* accepted, owned by the server thread */
    atomic_int accepted, frames;
    int err;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = UINT64_MAX };
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, klog_listener_fd(s->l), &ev) < 0) {
        s->err = -errno;
        return NULL;
    }
    ev.data.u64 = UINT64_MAX - 1;
    epoll_ctl(ep, EPOLL_CTL_ADD, s->stop, &ev);
    int n = 0;
    for (;;) {
        struct epoll_event evs[64];
        int k = epoll_wait(ep, evs, 64, 60000); /* bounded: the test ends well before */
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            s->err = k == 0 ? -ETIMEDOUT : -errno;
            break;
        }
        for (int i = 0; i < k; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == UINT64_MAX - 1)
                goto done;
            if (tag == UINT64_MAX) {
                klog_conn *c;
                while (n < MAXC && klog_listener_accept(s->l, 0, &c) == 0) {
                    struct epoll_event ce = { .events = EPOLLIN, .data.u64 = (uint64_t)n };
                    int fd = klog_conn_fd(c);
                    if (fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce) < 0) {
                        s->err = fd < 0 ? fd : -errno;
                        goto done;
                    }
                    s->conns[n++] = c;
                    atomic_fetch_add(&s->accepted, 1);
                }
                continue;
            }
            klog_conn *c = s->conns[tag];
            if (!c)
                continue;
            const void *fr;
            int len;
            while ((len = klog_conn_recv(c, 0, &fr)) >= 0) {
                struct iovec v = { (void *)fr, (size_t)len };
                if (klog_conn_send(c, &v, 1, 1000) < 0)
                    break;
                atomic_fetch_add(&s->frames, 1);
            }
            if (len != -ETIMEDOUT) { /* the client went: forget it */
                epoll_ctl(ep, EPOLL_CTL_DEL, klog_conn_fd(c), NULL);
                klog_conn_close(c);
                s->conns[tag] = NULL;
            }
        }
    }
done:
    close(ep);
    return NULL;
}

static int threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

static int roundtrip(klog_conn *c, const char *msg)
{
    struct iovec v = { (void *)msg, strlen(msg) };
    int rc = klog_conn_send(c, &v, 1, 5000);
    if (rc < 0)
        return rc;
    const void *fr;
    rc = klog_conn_recv(c, 5000, &fr);
    if (rc < 0)
        return rc;
    return (size_t)rc == v.iov_len && memcmp(fr, msg, v.iov_len) == 0 ? 0 : -EPROTO;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* Both ends of 1,000 connections, plus a few. */
    const rlim_t need = 2 * NIDLE + 64;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
        if (rl.rlim_max < need) {
            printf("SKIP: RLIMIT_NOFILE hard limit %llu < %llu\n", (unsigned long long)rl.rlim_max,
                   (unsigned long long)need);
            return 77;
        }
        rl.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            printf("SKIP: cannot raise RLIMIT_NOFILE: %s\n", strerror(errno));
            return 77;
        }
    }

    klog_transport_registry *reg = NULL;
    struct server *s = calloc(1, sizeof *s);
    klog_conn **clients = calloc(NIDLE, sizeof *clients);
    klog_conn *fresh = NULL;
    pthread_t th;
    bool started = false, all_sent = false;
    s->stop = eventfd(0, EFD_CLOEXEC);
    CHECK(klog_transport_registry_new(&reg, 0) == 0, "registry");
    int rc = klog_transport_listen(reg, "tcp://127.0.0.1:0", &s->l);
    CHECK(rc == 0, "listen: %s", klog_strerror(rc));
    const char *url = klog_listener_url(s->l);
    CHECK(pthread_create(&th, NULL, server_main, s) == 0, "thread");
    started = true;

    int64_t t0 = now_ms();
    for (int i = 0; i < NIDLE; i++) {
        rc = klog_transport_connect(reg, url, 5000, &clients[i]);
        CHECK(rc == 0, "connect %d: %s", i, klog_strerror(rc));
    }
    while (atomic_load(&s->accepted) < NIDLE && now_ms() - t0 < 30000 && !s->err)
        usleep(1000);
    CHECK(atomic_load(&s->accepted) == NIDLE, "server accepted %d of %d (err %d)", atomic_load(&s->accepted),
          NIDLE, s->err);
    int64_t t_open = now_ms() - t0;

    /* Bounded threads: this one and the server's; the transport adds none. */
    int nth = threads_now();
    CHECK(nth == 2, "%d threads", nth);
    /* Bounded memory: the core's objects for 2,000 ends, no frame buffers. */
    size_t bytes = ktr__registry_bytes(reg);
    CHECK(ktr__registry_conns(reg) == 2 * NIDLE, "%zu connections", ktr__registry_conns(reg));
    CHECK(bytes < 2 * NIDLE * 1024u, "core holds %zu bytes for %d connections", bytes, 2 * NIDLE);
    for (int i = 0; i < NIDLE; i++)
        CHECK(ktr__conn_rx_capacity(clients[i]) == 0, "client %d holds a buffer", i);

    /* A fresh connection is served at once. */
    int64_t t1 = now_ms();
    rc = klog_transport_connect(reg, url, 5000, &fresh);
    CHECK(rc == 0, "fresh connect: %s", klog_strerror(rc));
    rc = roundtrip(fresh, "hello from connection 1001");
    CHECK(rc == 0, "fresh round trip: %s", klog_strerror(rc));
    int64_t t_fresh = now_ms() - t1;
    CHECK(t_fresh < 2000, "fresh round trip took %lld ms", (long long)t_fresh);
    /* And the idle ones are alive. */
    CHECK(roundtrip(clients[0], "first") == 0, "first idle connection");
    CHECK(roundtrip(clients[NIDLE - 1], "last") == 0, "last idle connection");
    /* The server counts a frame after its echo is sent, so the client can
     * hold the last echo before the count moves: the count is checked once
     * the server thread has been joined (below). */
    all_sent = true;
    printf("1,000 idle connections: opened in %lld ms; %d threads; core %zu bytes (%zu per end); "
           "fresh round trip %lld ms\n",
           (long long)t_open, nth, bytes, bytes / (2 * NIDLE), (long long)t_fresh);

out:
    if (started) {
        uint64_t one = 1;
        if (write(s->stop, &one, sizeof one) < 0)
            failures++;
        pthread_join(th, NULL);
        if (s->err) {
            fprintf(stderr, "server: %s\n", klog_strerror(s->err));
            failures++;
        }
        /* Exactly the three frames sent, each echoed once: no more, no less. */
        if (all_sent && atomic_load(&s->frames) != 3) {
            fprintf(stderr, "idle.c:%d: FAILED frames == 3: %d frames echoed\n", __LINE__,
                    atomic_load(&s->frames));
            failures++;
        }
    }
    klog_conn_close(fresh);
    for (int i = 0; i < NIDLE; i++)
        klog_conn_close(clients[i]);
    for (int i = 0; i < MAXC; i++)
        klog_conn_close(s->conns[i]);
    klog_listener_close(s->l);
    klog_transport_registry_free(reg);
    close(s->stop);
    free(s);
    free(clients);
    if (failures == 0)
        printf("1 passed, 0 failed\n");
    return failures ? 1 : 0;
}
