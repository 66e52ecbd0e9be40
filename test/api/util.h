/*
 * test/api/util.h - helpers shared by the producer and consumer API tests.
 *
 * Public API only (klog/klog.h): these tests link the shared library and
 * nothing under lib/.  Everything here is static inline: each test file is
 * its own executable.
 *
 *   - a scratch data directory per test (mkdtemp under /tmp, removed in the
 *     suite's .fini), and an instance opened on it;
 *   - configuration, topics, producers and consumers built from
 *     "key", "value", ..., NULL lists, asserting that every step succeeds;
 *   - a thread-safe collector of delivery reports;
 *   - reading records back into owned copies (ut_msg) so that they can be
 *     compared after the poll that returned them.
 *
 * Assertions (cr_assert*) may only be used on the test's main thread; what
 * worker threads call returns codes instead.
 */
#ifndef KLOG_TEST_API_UTIL_H
#define KLOG_TEST_API_UTIL_H

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>

/* ---- scratch directory and instance -------------------------------------- */

static char ut_dir[64];

static inline void ut_mkdir(void)
{
    snprintf(ut_dir, sizeof ut_dir, "/tmp/klog-api-XXXXXX");
    cr_assert_not_null(mkdtemp(ut_dir), "mkdtemp: %s", strerror(errno));
}

static inline int ut_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void ut_rmdir(void)
{
    if (ut_dir[0])
        cr_assert_eq(nftw(ut_dir, ut_rm_one, 16, FTW_DEPTH | FTW_PHYS), 0, "removing %s", ut_dir);
}

static inline int64_t ut_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t ut_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Join th, waiting at most sec seconds: a guard against a hang, never a
 * measure of speed.  Returns pthread_timedjoin_np's code (0 = joined). */
static inline int ut_join_within(pthread_t th, int sec)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += sec;
    return pthread_timedjoin_np(th, NULL, &dl);
}

static inline void ut_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- configuration ----------------------------------------------------------- */

/* A conf holding the "key", "value" pairs of ap (NULL-terminated). */
static inline klog_conf *ut_vconf(va_list ap)
{
    klog_conf *c = NULL;
    cr_assert_eq(klog_conf_new(&c), 0);
    for (const char *key; (key = va_arg(ap, const char *)) != NULL;) {
        const char *val = va_arg(ap, const char *);
        char err[256] = "";
        int rc = klog_conf_set(c, key, val, err, sizeof err);
        cr_assert_eq(rc, 0, "conf %s=%s: %s (%s)", key, val, klog_err_name(rc), err);
    }
    return c;
}

/* A conf holding "key", "value", ..., NULL (ut_conf(NULL): all defaults). */
static inline klog_conf *ut_conf(const char *first, ...)
{
    klog_conf *c = NULL;
    cr_assert_eq(klog_conf_new(&c), 0);
    va_list ap;
    va_start(ap, first);
    for (const char *key = first; key != NULL; key = va_arg(ap, const char *)) {
        const char *val = va_arg(ap, const char *);
        char err[256] = "";
        int rc = klog_conf_set(c, key, val, err, sizeof err);
        cr_assert_eq(rc, 0, "conf %s=%s: %s (%s)", key, val, klog_err_name(rc), err);
    }
    va_end(ap);
    return c;
}

static inline klog *ut_open(void)
{
    klog *k = NULL;
    char err[256] = "";
    int rc = klog_open(&k, ut_dir, NULL, err, sizeof err);
    cr_assert_eq(rc, 0, "klog_open %s: %s (%s)", ut_dir, klog_err_name(rc), err);
    cr_assert_not_null(k);
    return k;
}

/* Create topic `name` with `parts` partitions and topic keys (pairs, NULL). */
static inline void ut_topic(klog *k, const char *name, int parts, ...)
{
    va_list ap;
    va_start(ap, parts);
    klog_conf *tc = ut_vconf(ap);
    va_end(ap);
    char err[256] = "";
    int rc = klog_topic_create(k, name, parts, tc, err, sizeof err);
    klog_conf_free(tc);
    cr_assert_eq(rc, 0, "topic %s: %s (%s)", name, klog_err_name(rc), err);
}

/* A producer with producer keys (pairs, NULL). */
static inline klog_producer *ut_producer(klog *k, ...)
{
    va_list ap;
    va_start(ap, k);
    klog_conf *c = ut_vconf(ap);
    va_end(ap);
    klog_producer *p = NULL;
    char err[256] = "";
    int rc = klog_producer_new(k, c, &p, err, sizeof err);
    klog_conf_free(c);
    cr_assert_eq(rc, 0, "klog_producer_new: %s (%s)", klog_err_name(rc), err);
    cr_assert_not_null(p);
    return p;
}

/* A consumer with consumer keys (pairs, NULL). */
static inline klog_consumer *ut_consumer(klog *k, ...)
{
    va_list ap;
    va_start(ap, k);
    klog_conf *c = ut_vconf(ap);
    va_end(ap);
    klog_consumer *cs = NULL;
    char err[256] = "";
    int rc = klog_consumer_new(k, c, &cs, err, sizeof err);
    klog_conf_free(c);
    cr_assert_eq(rc, 0, "klog_consumer_new: %s (%s)", klog_err_name(rc), err);
    cr_assert_not_null(cs);
    return cs;
}

/* Partition `part`'s end offset, read through klog_topic_describe. */
static inline int64_t ut_end_offset(klog *k, const char *topic, int part)
{
    klog_partition_info pi[64];
    for (size_t i = 0; i < 64; i++)
        pi[i].struct_size = sizeof pi[i];
    int n = klog_topic_describe(k, topic, pi, 64, NULL, 0);
    cr_assert_gt(n, part, "describe %s: %s", topic, klog_err_name(n));
    return pi[part].end_offset;
}

/* ---- sending ------------------------------------------------------------------ */

/* Send string key and value (NULL = null) to a partition (or
 * KLOG_PARTITION_ANY); returns klog_producer_send's code. */
static inline int ut_send(klog_producer *p, const char *topic, int32_t part, const char *key, const char *value)
{
    klog_record r = KLOG_RECORD_INIT;
    r.partition = part;
    r.key = key;
    r.key_len = key ? strlen(key) : 0;
    r.value = value;
    r.value_len = value ? strlen(value) : 0;
    return klog_producer_send(p, topic, &r);
}

/* ---- delivery reports ------------------------------------------------------------ */

/* Collects copies of every report, from any thread.  d[i].topic is valid
 * only until the producer is closed; topic[i] is a copy that stays. */
typedef struct ut_dr {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    klog_delivery *d;
    char (*topic)[KLOG_TOPIC_NAME_MAX + 1];
    size_t n, cap;
    size_t errors;
} ut_dr;

static inline void ut_dr_init(ut_dr *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static inline void ut_dr_fini(ut_dr *c)
{
    free(c->d);
    free(c->topic);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static inline void ut_dr_add(ut_dr *c, const klog_delivery *d)
{
    pthread_mutex_lock(&c->mu);
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 256;
        klog_delivery *nd = realloc(c->d, nc * sizeof *nd);
        char(*nt)[KLOG_TOPIC_NAME_MAX + 1] = nd ? realloc(c->topic, nc * sizeof *nt) : NULL;
        if (!nt)
            abort();
        c->d = nd;
        c->topic = nt;
        c->cap = nc;
    }
    snprintf(c->topic[c->n], sizeof c->topic[c->n], "%s", d->topic ? d->topic : "(null)");
    c->d[c->n++] = *d;
    if (d->err)
        c->errors++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Ready d[0..n) for klog_producer_poll_deliveries: struct_size set in
 * every element, so that any suffix (d + i) may be passed as well. */
static inline klog_delivery *ut_dr_array(klog_delivery *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = (klog_delivery){ .struct_size = sizeof *d };
    return d;
}

/* The klog_delivery_fn: arg is a ut_dr. */
static inline void ut_dr_cb(void *arg, const klog_delivery *d) { ut_dr_add(arg, d); }

static inline size_t ut_dr_count(ut_dr *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Wait until at least n reports arrived or timeout_ms passed; the count. */
static inline size_t ut_dr_wait(ut_dr *c, size_t n, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (c->n < n && pthread_cond_timedwait(&c->cv, &c->mu, &dl) == 0)
        ;
    size_t got = c->n;
    pthread_mutex_unlock(&c->mu);
    return got;
}

/* ---- reading back ------------------------------------------------------------------ */

/* An owned copy of a klog_message (headers included). */
typedef struct ut_hdr {
    char *key;
    size_t key_len;
    char *value; /* NULL = null value */
    size_t value_len;
} ut_hdr;

typedef struct ut_msg {
    char topic[KLOG_TOPIC_NAME_MAX + 1];
    int32_t partition;
    int64_t offset;
    int64_t timestamp;
    char *key; /* NULL = null key; NUL-terminated copy otherwise */
    size_t key_len;
    char *value;
    size_t value_len;
    size_t header_count;
    ut_hdr *headers;
} ut_msg;

static inline char *ut_dup(const void *p, size_t n)
{
    if (!p)
        return NULL;
    char *d = malloc(n + 1);
    cr_assert_not_null(d);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static inline void ut_msg_copy(ut_msg *o, const klog_message *m)
{
    memset(o, 0, sizeof *o);
    cr_assert_not_null(m->topic);
    snprintf(o->topic, sizeof o->topic, "%s", m->topic);
    o->partition = m->partition;
    o->offset = m->offset;
    o->timestamp = m->timestamp;
    o->key = ut_dup(m->key, m->key_len);
    o->key_len = m->key_len;
    o->value = ut_dup(m->value, m->value_len);
    o->value_len = m->value_len;
    o->header_count = m->header_count;
    if (m->header_count) {
        o->headers = calloc(m->header_count, sizeof *o->headers);
        cr_assert_not_null(o->headers);
        for (size_t i = 0; i < m->header_count; i++) {
            const char *hk;
            const void *hv;
            size_t hkl, hvl;
            int rc = klog_message_header(m, i, &hk, &hkl, &hv, &hvl);
            cr_assert_eq(rc, 0, "header %zu of %zu: %s", i, m->header_count, klog_err_name(rc));
            o->headers[i] = (ut_hdr){ ut_dup(hk ? hk : "", hkl), hkl, ut_dup(hv, hvl), hvl };
        }
    }
}

static inline void ut_msgs_free(ut_msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].key);
        free(m[i].value);
        for (size_t h = 0; h < m[i].header_count; h++) {
            free(m[i].headers[h].key);
            free(m[i].headers[h].value);
        }
        free(m[i].headers);
    }
    free(m);
}

/*
 * Poll until `want` records were read (or, as a guard against a hang, 30 s
 * passed); then poll once more with no wait to catch extras.  Returns the
 * copies in read order; *n receives how many (may differ from want: the
 * caller asserts).  Polls do not wait (a short sleep between empty ones):
 * the blocking path has tests of its own, and a fault there must fail
 * those tests, not hang every other one.
 */
static inline ut_msg *ut_consume(klog_consumer *c, size_t want, size_t *n)
{
    size_t cap = want + 16, got = 0;
    ut_msg *out = calloc(cap, sizeof *out);
    cr_assert_not_null(out);
    int64_t give_up = ut_mono_ms() + 30000;
    bool extra_check = false;
    for (;;) {
        if (got >= want)
            extra_check = true;
        const klog_message *const *m = NULL;
        int rc = klog_consumer_poll(c, 0, &m);
        cr_assert_geq(rc, 0, "poll: %s", klog_err_name(rc));
        if (rc == 0 && !extra_check)
            ut_sleep_ms(1);
        for (int i = 0; i < rc; i++) {
            if (got == cap) {
                cap *= 2;
                out = realloc(out, cap * sizeof *out);
                cr_assert_not_null(out);
            }
            ut_msg_copy(&out[got++], m[i]);
        }
        if (extra_check && rc == 0)
            break;
        if (!extra_check && ut_mono_ms() > give_up)
            break;
    }
    *n = got;
    return out;
}

#endif /* KLOG_TEST_API_UTIL_H */
