/*
 * test/mirror/util.h - helpers of the mirror tests (klog/mirror.h).
 *
 * A scratch klog instance, librdkafka's mock cluster in-process
 * (rdkafka_mock.h: brokers on 127.0.0.1, set down and up, errors pushed
 * onto requests), a mirror driven by a bounded loop, and a reader that
 * takes a Kafka topic back, partition by partition, up to its high
 * watermark, so that a test can hold every record the cluster has against
 * what klog stored.
 *
 * Every loop is bounded in iterations and in time; no assertion is about
 * how fast anything went.
 */
#ifndef KLOG_TEST_MIRROR_UTIL_H
#define KLOG_TEST_MIRROR_UTIL_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <klog/klog.h>
#include <klog/mirror.h>

static inline int64_t mu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the environment: a klog instance, a mock cluster, a mirror ----------- */

typedef struct mu_env {
    char dir[64];
    klog *k;
    rd_kafka_t *mrk;                 /* holds the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    char boot[256];
    klog_mirror *m;
    char log[65536];                 /* the mirror's log lines */
    size_t loglen;
} mu_env;

static inline void mu_log_line(void *opaque, const char *line)
{
    mu_env *e = opaque;
    int n = snprintf(e->log + e->loglen, sizeof e->log - e->loglen, "%s\n", line);
    if (n > 0 && e->loglen + (size_t)n < sizeof e->log)
        e->loglen += (size_t)n;
    if (getenv("MIRROR_TEST_VERBOSE"))
        fprintf(stderr, "mirror: %s\n", line);
}

static inline bool mu_logged(const mu_env *e, const char *needle)
{
    return strstr(e->log, needle) != NULL;
}

/* Open an instance on a scratch directory with "key", "value", ..., NULL. */
static inline void mu_open(mu_env *e, ...)
{
    if (!e->dir[0]) {
        snprintf(e->dir, sizeof e->dir, "/tmp/klog-mirror-XXXXXX");
        cr_assert_not_null(mkdtemp(e->dir));
    }
    klog_conf *c;
    cr_assert_eq(klog_conf_new(&c), 0);
    va_list ap;
    va_start(ap, e);
    const char *k;
    char err[256];
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        cr_assert_eq(klog_conf_set(c, k, v, err, sizeof err), 0, "%s", err);
    }
    va_end(ap);
    err[0] = '\0';
    cr_assert_eq(klog_open(&e->k, e->dir, c, err, sizeof err), 0, "klog_open: %s", err);
    klog_conf_free(c);
}

static inline int mu_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void mu_mock(mu_env *e, int brokers)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "0", err, sizeof err);
    e->mrk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    cr_assert_not_null(e->mrk, "%s", err);
    e->mc = rd_kafka_mock_cluster_new(e->mrk, brokers);
    cr_assert_not_null(e->mc);
    snprintf(e->boot, sizeof e->boot, "%s", rd_kafka_mock_cluster_bootstraps(e->mc));
}

static inline void mu_down(mu_env *e)
{
    if (e->m)
        klog_mirror_free(e->m);
    e->m = NULL;
    if (e->k)
        cr_assert_eq(klog_close(e->k), 0);
    e->k = NULL;
    if (e->mc)
        rd_kafka_mock_cluster_destroy(e->mc);
    if (e->mrk)
        rd_kafka_destroy(e->mrk);
    e->mc = NULL;
    e->mrk = NULL;
    if (e->dir[0] && !getenv("MIRROR_TEST_KEEP"))
        nftw(e->dir, mu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A mirror with "key", "value", ..., NULL, started.  Its log goes to e->log. */
static inline void mu_mirror(mu_env *e, ...)
{
    char err[512] = "";
    cr_assert_eq(klog_mirror_new(&e->m, e->k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(klog_mirror_set_log_cb(e->m, mu_log_line, e), 0);
    va_list ap;
    va_start(ap, e);
    const char *k;
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        cr_assert_eq(klog_mirror_set(e->m, k, v, err, sizeof err), 0, "%s=%s: %s", k, v, err);
    }
    va_end(ap);
    cr_assert_eq(klog_mirror_start(e->m, err, sizeof err), 0, "klog_mirror_start: %s", err);
}

static inline klog_mirror_stats mu_stats(mu_env *e)
{
    klog_mirror_stats s = { .struct_size = sizeof s };
    cr_assert_eq(klog_mirror_stats_get(e->m, &s), 0);
    return s;
}

/* Poll the mirror until pred(e, arg) holds, at most max_ms (a guard, not a
 * measure).  Returns the last poll's result (negative: the mirror stopped);
 * *held says whether pred held. */
typedef bool (*mu_pred)(mu_env *e, void *arg);
static inline int mu_run(mu_env *e, mu_pred pred, void *arg, int max_ms, bool *held, char *err, size_t errsize)
{
    int64_t until = mu_ms() + max_ms;
    int rc = 0;
    *held = false;
    for (int i = 0; i < 100000 && mu_ms() < until; i++) {
        if (pred && pred(e, arg)) {
            *held = true;
            return rc;
        }
        rc = klog_mirror_poll(e->m, 50, err, errsize);
        if (rc < 0)
            return rc;
    }
    *held = pred && pred(e, arg);
    return rc;
}

/* pred: everything read so far acknowledged and at least *(uint64_t *)arg forwarded. */
static inline bool mu_forwarded(mu_env *e, void *arg)
{
    klog_mirror_stats s = mu_stats(e);
    return s.forwarded >= *(uint64_t *)arg && s.in_flight == 0;
}

static inline void mu_run_until_forwarded(mu_env *e, uint64_t n, int max_ms)
{
    char err[512] = "";
    bool held;
    int rc = mu_run(e, mu_forwarded, &n, max_ms, &held, err, sizeof err);
    cr_assert_geq(rc, 0, "klog_mirror_poll: %s (%s)\n%s", klog_strerror(rc), err, e->log);
    klog_mirror_stats s = mu_stats(e);
    cr_assert(held, "forwarded %" PRIu64 " of %" PRIu64 " (in flight %" PRIu64 ") in %d ms\n%s", s.forwarded, n,
              s.in_flight, max_ms, e->log);
}

/* ---- klog side -------------------------------------------------------------- */

/* Record timestamps: recent, or retention (7 days by default) deletes them. */
static int64_t mu_ts0;
static inline int64_t mu_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void mu_topic(mu_env *e, const char *name, int partitions, ...)
{
    klog_conf *c = NULL;
    cr_assert_eq(klog_conf_new(&c), 0);
    va_list ap;
    va_start(ap, partitions);
    const char *k;
    char err[256] = "";
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        cr_assert_eq(klog_conf_set(c, k, v, err, sizeof err), 0, "%s", err);
    }
    va_end(ap);
    cr_assert_eq(klog_topic_create(e->k, name, partitions, c, err, sizeof err), 0, "%s", err);
    klog_conf_free(c);
}

/* Send n records to topic, record i to partition i % nparts, with key
 * "k<i % nkeys>" (every 7th record a null key when nulls), value
 * "<tag>-<i>" (every 11th a null value when nulls), a timestamp of its own,
 * and two headers (one with a null value).  Waits for every report. */
static inline void mu_produce(klog *k, const char *topic, int nparts, int first, int n, const char *tag, bool nulls,
                              size_t pad)
{
    klog_producer *p;
    char err[256] = "";
    klog_conf *c;
    cr_assert_eq(klog_conf_new(&c), 0);
    cr_assert_eq(klog_conf_set(c, "linger.ms", "1", err, sizeof err), 0);
    /* small batches: a disk budget can delete below them (a segment holds whole batches) */
    cr_assert_eq(klog_conf_set(c, "batch.size", "8192", err, sizeof err), 0);
    cr_assert_eq(klog_producer_new(k, c, &p, err, sizeof err), 0, "%s", err);
    klog_conf_free(c);
    if (!mu_ts0)
        mu_ts0 = mu_wall_ms() - 3600000;
    char *val = malloc(pad + 64);
    cr_assert_not_null(val);
    for (int j = 0; j < n; j++) {
        int i = first + j;
        char key[32], hv[32];
        int kl = snprintf(key, sizeof key, "k%d", i % 5);
        int vl = snprintf(val, 64, "%s-%d", tag, i);
        if (pad > (size_t)vl) {
            memset(val + vl, 'x', pad - (size_t)vl);
            vl = (int)pad;
        }
        int hl = snprintf(hv, sizeof hv, "h%d", i);
        klog_header h[2] = { { .key = "seq", .key_len = 3, .value = hv, .value_len = (size_t)hl },
                             { .key = "none", .key_len = 4, .value = NULL, .value_len = 0 } };
        klog_record r = KLOG_RECORD_INIT;
        r.partition = i % nparts;
        r.key = nulls && i % 7 == 6 ? NULL : key;
        r.key_len = (size_t)kl;
        r.value = nulls && i % 11 == 10 ? NULL : val;
        r.value_len = (size_t)vl;
        r.timestamp = mu_ts0 + i;
        r.headers = h;
        r.header_count = 2;
        int rc;
        for (int tries = 0; (rc = klog_producer_send(p, topic, &r)) == KLOG_EQUEUEFULL && tries < 1000; tries++)
            klog_producer_flush(p, 100);
        cr_assert_eq(rc, 0, "send: %s", klog_strerror(rc));
    }
    free(val);
    cr_assert_eq(klog_producer_flush(p, 60000), 0);
    int crc = klog_producer_close(p);
    cr_assert_eq(crc, 0, "producer: %s", klog_strerror(crc));
}

static inline int64_t mu_committed(klog *k, const char *group, const char *topic, int32_t p)
{
    int64_t off = -2;
    cr_assert_eq(klog_group_committed(k, group, topic, p, &off), 0);
    return off;
}

static inline void mu_offsets(klog *k, const char *topic, int32_t p, int64_t *start, int64_t *end)
{
    klog_partition_info pi[64] = { [0].struct_size = sizeof(klog_partition_info) };
    int n = klog_topic_describe(k, topic, pi, 64, NULL, 0);
    cr_assert_gt(n, p);
    if (start)
        *start = pi[p].start_offset;
    if (end)
        *end = pi[p].end_offset;
}

/* ---- Kafka side: read a topic back -------------------------------------------- */

typedef struct mu_rec {
    int32_t partition;
    int64_t offset;
    int64_t ts;
    char *key, *val;                 /* NUL-terminated copies; NULL for null */
    size_t vlen;
    char *seq;                       /* header "seq" */
    bool none_hdr_null;              /* header "none" present with a null value */
    char src_topic[256];             /* header klog.src, parsed; "" if absent */
    int32_t src_part;
    int64_t src_off;
} mu_rec;

typedef struct mu_recs {
    mu_rec *r;
    size_t n, cap;
    int partitions;
} mu_recs;

static inline void mu_recs_free(mu_recs *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->r[i].key);
        free(rs->r[i].val);
        free(rs->r[i].seq);
    }
    free(rs->r);
    memset(rs, 0, sizeof *rs);
}

static inline char *mu_dup(const void *p, size_t n)
{
    if (!p)
        return NULL;
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Read every partition of topic on the cluster at boot from its start to
 * its high watermark, in partition then offset order. */
static inline void mu_read_kafka(const char *boot, const char *topic, mu_recs *out)
{
    memset(out, 0, sizeof *out);
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(c, "bootstrap.servers", boot, err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(c, "group.id", "mu-reader", err, sizeof err);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(c, "log_level", "3", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (int i = 0; i < 20 && (e = rd_kafka_metadata(rk, 0, rkt, &md, 2000)); i++)
        ;
    cr_assert_eq(e, 0, "metadata of %s: %s", topic, rd_kafka_err2str(e));
    cr_assert_eq(md->topics[0].err, 0, "topic %s: %s", topic, rd_kafka_err2str(md->topics[0].err));
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    out->partitions = np;
    for (int p = 0; p < np; p++) {
        int64_t lo = 0, hi = 0;
        cr_assert_eq(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000), 0);
        if (hi <= lo)
            continue;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = lo;
        cr_assert_eq(rd_kafka_assign(rk, l), 0);
        rd_kafka_topic_partition_list_destroy(l);
        int64_t next = lo;
        int64_t until = mu_ms() + 60000;
        while (next < hi && mu_ms() < until) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
            if (!m)
                continue;
            if (m->err || m->partition != p) {
                rd_kafka_message_destroy(m);
                continue;
            }
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 1024;
                out->r = realloc(out->r, out->cap * sizeof *out->r);
                cr_assert_not_null(out->r);
            }
            mu_rec *r = &out->r[out->n++];
            memset(r, 0, sizeof *r);
            r->partition = p;
            r->offset = m->offset;
            r->ts = rd_kafka_message_timestamp(m, NULL);
            r->key = mu_dup(m->key, m->key_len);
            r->val = mu_dup(m->payload, m->len);
            r->vlen = m->len;
            r->src_part = -1;
            r->src_off = -1;
            rd_kafka_headers_t *h = NULL;
            if (rd_kafka_message_headers(m, &h) == 0 && h) {
                const void *v;
                size_t vs;
                if (rd_kafka_header_get_last(h, "seq", &v, &vs) == 0)
                    r->seq = mu_dup(v, vs);
                if (rd_kafka_header_get_last(h, "none", &v, &vs) == 0)
                    r->none_hdr_null = v == NULL;
                if (rd_kafka_header_get_last(h, "klog.src", &v, &vs) == 0 && v) {
                    char *s = mu_dup(v, vs);
                    char *a = strrchr(s, '/');
                    cr_assert_not_null(a);
                    r->src_off = strtoll(a + 1, NULL, 10);
                    *a = '\0';
                    char *b = strrchr(s, '/');
                    cr_assert_not_null(b);
                    r->src_part = (int32_t)strtol(b + 1, NULL, 10);
                    *b = '\0';
                    snprintf(r->src_topic, sizeof r->src_topic, "%s", s);
                    free(s);
                }
            }
            next = m->offset + 1;
            rd_kafka_message_destroy(m);
        }
        cr_assert_geq(next, hi, "%s[%d]: read up to %" PRId64 " of %" PRId64, topic, p, next, hi);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/*
 * Check what Kafka holds of klog topic `topic` (every record carries
 * klog.src): for each partition, the source offsets, duplicates dropped
 * (the first of each kept), strictly increase (per-partition order), and
 * every offset from `from` up to the partition's end is there or, when
 * allow_gaps, below the partition's start now (deleted by the budget);
 * *dups and *missing (if not NULL) count duplicates and offsets missing.
 * A duplicate may only be of an offset at or above *dup_floor[p] when
 * dup_floor is not NULL.
 */
static inline void mu_check_kafka(klog *k, const mu_recs *rs, const char *topic, int nparts, bool allow_gaps,
                                  const int64_t *dup_floor, uint64_t *dups, uint64_t *missing)
{
    uint64_t d = 0, miss = 0;
    for (int p = 0; p < nparts; p++) {
        int64_t start, end;
        mu_offsets(k, topic, p, &start, &end);
        uint8_t *seen = calloc((size_t)end + 1, 1);
        cr_assert_not_null(seen);
        int64_t last = -1;
        for (size_t i = 0; i < rs->n; i++) {
            const mu_rec *r = &rs->r[i];
            if (r->src_part != p || strcmp(r->src_topic, topic))
                continue;
            cr_assert(r->src_off >= 0 && r->src_off < end, "%s[%d]: source offset %" PRId64 " out of range", topic, p,
                      r->src_off);
            if (seen[r->src_off]) {
                d++;
                if (dup_floor)
                    cr_assert_geq(r->src_off, dup_floor[p],
                                  "%s[%d]: offset %" PRId64 " arrived twice but was below the commit (%" PRId64 ")",
                                  topic, p, r->src_off, dup_floor[p]);
                continue;
            }
            seen[r->src_off] = 1;
            cr_assert_gt(r->src_off, last, "%s[%d]: offset %" PRId64 " arrived after %" PRId64 " (order)", topic, p,
                         r->src_off, last);
            last = r->src_off;
        }
        for (int64_t o = 0; o < end; o++) {
            if (seen[o])
                continue;
            miss++;
            cr_assert(allow_gaps && o < start, "%s[%d]: offset %" PRId64 " never reached Kafka (log start %" PRId64 ")",
                      topic, p, o, start);
        }
        free(seen);
    }
    if (dups)
        *dups = d;
    if (missing)
        *missing = miss;
}

/* ---- a TCP port nobody listens on (127.0.0.1) ---------------------------------- */

static inline int mu_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

#endif /* KLOG_TEST_MIRROR_UTIL_H */
