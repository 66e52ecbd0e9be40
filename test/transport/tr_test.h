/*
 * test/transport/tr_test.h - helpers shared by the transport tests: a
 * fixture per transport (a registry that has it, fresh listen URLs), frame
 * patterns, timing, and pairs of connected ends.
 */
#ifndef KLOG_TEST_TRANSPORT_H
#define KLOG_TEST_TRANSPORT_H

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <klog/transport.h>

#include "common/common.h"
#include "transport/mem.h"
#include "transport/transport_internal.h"

/* The example's vtable (examples/transport_pipe.c, built into the tests
 * that use it with -DTRANSPORT_PIPE_NO_MAIN). */
const klog_transport_methods *pipe_transport_methods(void);

enum tk { TK_TCP, TK_UNIX, TK_UNIX_ABSTRACT, TK_MEM, TK_PIPE };

struct fx {
    enum tk k;
    klog_transport_registry *reg;
    ktr_memnet *net;
    char dir[64];
    int seq;
};

static inline int64_t t_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void t_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static inline void fx_open(struct fx *f, enum tk k)
{
    memset(f, 0, sizeof *f);
    f->k = k;
    /* Writes to a pipe or socket whose reader is gone must fail, not kill. */
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(klog_transport_registry_new(&f->reg, 0), 0);
    if (k == TK_MEM) {
        cr_assert_eq(ktr_memnet_new(&f->net, 42, 0), 0);
        ktr_mem_init in = { f->net, "node-a" };
        cr_assert_eq(klog_transport_register(f->reg, ktr_mem_methods(), &in), 0);
    } else if (k == TK_PIPE) {
        cr_assert_eq(klog_transport_register(f->reg, pipe_transport_methods(), NULL), 0);
    } else if (k == TK_UNIX) {
        snprintf(f->dir, sizeof f->dir, "/tmp/klog-tr-XXXXXX");
        cr_assert_not_null(mkdtemp(f->dir));
    }
}

/* A fresh URL to listen on. */
static inline const char *fx_url(struct fx *f, char *buf, size_t n)
{
    int s = ++f->seq;
    switch (f->k) {
    case TK_TCP: snprintf(buf, n, "tcp://127.0.0.1:0"); break;
    case TK_UNIX: snprintf(buf, n, "unix://%s/s%d.sock", f->dir, s); break;
    case TK_UNIX_ABSTRACT: snprintf(buf, n, "unix://@klog-test-%d-%d", (int)getpid(), s); break;
    case TK_MEM: snprintf(buf, n, "mem://l%d", s); break;
    case TK_PIPE: snprintf(buf, n, "pipe://l%d", s); break;
    }
    return buf;
}

static inline const char *fx_scheme(const struct fx *f)
{
    static const char *s[] = { "tcp", "unix", "unix", "mem", "pipe" };
    return s[f->k];
}

static inline void fx_close(struct fx *f)
{
    klog_transport_registry_free(f->reg);
    ktr_memnet_free(f->net);
    if (f->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        cr_assert_eq(system(cmd), 0);
    }
}

static inline klog_listener *fx_listen(struct fx *f)
{
    char url[128];
    klog_listener *l = NULL;
    int rc = klog_transport_listen(f->reg, fx_url(f, url, sizeof url), &l);
    cr_assert_eq(rc, 0, "listen %s: %s", url, klog_strerror(rc));
    return l;
}

/* Connect to l and accept the other end. */
static inline void fx_pair(struct fx *f, klog_listener *l, klog_conn **client, klog_conn **server)
{
    int rc = klog_transport_connect(f->reg, klog_listener_url(l), 5000, client);
    cr_assert_eq(rc, 0, "connect %s: %s", klog_listener_url(l), klog_strerror(rc));
    rc = klog_listener_accept(l, 5000, server);
    cr_assert_eq(rc, 0, "accept: %s", klog_strerror(rc));
}

/* A byte pattern that depends on (seed, position). */
static inline void t_fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static inline int t_send(klog_conn *c, const void *p, size_t n)
{
    struct iovec v = { (void *)p, n };
    return klog_conn_send(c, &v, 1, 10000);
}

/* Receive one frame and check it equals want[0..n). */
static inline void t_expect(klog_conn *c, const void *want, size_t n)
{
    const void *fr;
    int rc = klog_conn_recv(c, 10000, &fr);
    cr_assert_eq(rc, (int)n, "recv: %d (%s), want %zu bytes", rc, klog_strerror(rc), n);
    cr_assert(n == 0 || memcmp(fr, want, n) == 0, "frame content differs");
}

/* Send on another thread: a frame bigger than a socket buffer needs its
 * reader running. */
struct t_async {
    klog_conn *c;
    const void *p;
    size_t n;
    int rc;
    pthread_t th;
};

static inline void *t_async_main(void *arg)
{
    struct t_async *a = arg;
    a->rc = t_send(a->c, a->p, a->n);
    return NULL;
}

static inline void t_send_start(struct t_async *a, klog_conn *c, const void *p, size_t n)
{
    *a = (struct t_async){ .c = c, .p = p, .n = n };
    cr_assert_eq(pthread_create(&a->th, NULL, t_async_main, a), 0);
}

static inline int t_send_join(struct t_async *a)
{
    pthread_join(a->th, NULL);
    return a->rc;
}

/* Raw bytes of a frame header. */
static inline void t_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A log callback that keeps the last line. */
struct t_log {
    pthread_mutex_t mu;
    int calls, err;
    char peer[256], msg[256];
};

static inline void t_log_cb(void *opaque, const char *peer, int err, const char *msg)
{
    struct t_log *lg = opaque;
    pthread_mutex_lock(&lg->mu);
    lg->calls++;
    lg->err = err;
    snprintf(lg->peer, sizeof lg->peer, "%s", peer);
    snprintf(lg->msg, sizeof lg->msg, "%s", msg);
    pthread_mutex_unlock(&lg->mu);
}

#endif
