/*
 * test/server/util.h - an in-process klog_server on tcp://127.0.0.1:0 and a
 * client speaking klog's own encoder to it (groups.c, admin.c).
 */
#ifndef KLOG_TEST_SERVER_UTIL_H
#define KLOG_TEST_SERVER_UTIL_H

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <klog/klog.h>
#include <klog/server.h>

#include "kafka/kafka.h"
#include "transport/transport_internal.h"

typedef struct su_env {
    char dir[64];
    klog *k;
    klog_server *s;
    klog_transport_registry *reg;   /* the clients' */
    char url[256];
    char lines[8192];               /* the server's log */
    pthread_mutex_t mu;
} su_env;

static inline void su_log_line(void *opaque, const char *line)
{
    su_env *e = opaque;
    pthread_mutex_lock(&e->mu);
    size_t n = strlen(e->lines);
    snprintf(e->lines + n, sizeof e->lines - n, "%s\n", line);
    pthread_mutex_unlock(&e->mu);
}

/* Open an instance in a scratch directory (conf may be NULL) and serve it. */
static inline void su_up(su_env *e, const klog_conf *conf)
{
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    snprintf(e->dir, sizeof e->dir, "/tmp/klog_srvg_XXXXXX");
    cr_assert(mkdtemp(e->dir));
    char eb[256];
    cr_assert_eq(klog_open(&e->k, e->dir, conf, eb, sizeof eb), 0, "%s", eb);
    cr_assert_eq(klog_server_new(&e->s, e->k, NULL, eb, sizeof eb), 0, "%s", eb);
    cr_assert_eq(klog_server_set_log_cb(e->s, su_log_line, e), 0);
    cr_assert_eq(klog_server_listen(e->s, "tcp://127.0.0.1:0"), 0);
    snprintf(e->url, sizeof e->url, "%s", klog_server_listener_url(e->s, 0));
    cr_assert_eq(klog_server_start(e->s), 0);
    cr_assert_eq(klog_transport_registry_new(&e->reg, 0), 0);
}

static inline void su_down(su_env *e)
{
    klog_transport_registry_free(e->reg);
    klog_server_free(e->s);
    cr_assert_eq(klog_close(e->k), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    cr_assert_eq(system(cmd), 0);
    pthread_mutex_destroy(&e->mu);
}

static inline klog_conn *su_dial(su_env *e)
{
    klog_conn *c;
    cr_assert_eq(klog_transport_connect(e->reg, e->url, 5000, &c), 0);
    return c;
}

/* Send a request (client id "test"); 0 or a negative code. */
static inline int su_send(klog_conn *c, int16_t key, int16_t version, int32_t corr, const void *body)
{
    kk_wbuf w;
    kk_wbuf_init(&w, 0);
    kk_req_header h = { key, version, corr, KK_STR("test") };
    int rc = kk_request_encode(&w, &h, body);
    if (rc == 0) {
        struct iovec iov[8];
        int n = kk_wbuf_iov(&w, iov, 8);
        rc = klog_conn_send(c, iov, n, 5000);
    }
    kk_wbuf_free(&w);
    return rc;
}

/* Receive and decode the response to key/version into out (its arrays in
 * a, which the caller resets).  0 or a negative code (-ETIMEDOUT). */
static inline int su_recv(klog_conn *c, int16_t key, int16_t version, kk_arena *a, kk_response *out, int timeout_ms)
{
    const void *f;
    int n = klog_conn_recv(c, timeout_ms, &f);
    if (n < 0)
        return n;
    return kk_response_decode(f, (size_t)n, key, version, NULL, a, out);
}

/* One request and its response (asserted to arrive within 10 s, with the
 * same correlation id). */
static inline void su_call(klog_conn *c, int16_t key, int16_t version, const void *body, kk_arena *a,
                           kk_response *out)
{
    static _Atomic int32_t corr = 100;
    int32_t id = corr++;
    cr_assert_eq(su_send(c, key, version, id, body), 0);
    int rc = su_recv(c, key, version, a, out, 10000);
    cr_assert_eq(rc, 0, "%s v%d: %s", kk_api_find(key)->name, version, klog_strerror(rc));
    cr_assert_eq(out->correlation_id, id);
}

#endif
