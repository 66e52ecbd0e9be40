/*
 * test/data/gen_v0_1.c - writes test/data/v0.1/ with klog 0.1.0, the first
 * release, and test/data/v0.1.manifest: every record, as klog 0.1.0 reads
 * it back, and the group's committed offsets.  test/api/compat.c opens a
 * copy of the directory with the klog being built and checks it against
 * the manifest (klog(7), STABILITY: a directory written by an older klog
 * opens in a newer one).
 *
 * It uses klog 0.1.0's API (klog_consumer_poll hands out an array of
 * klog_message structs there), so it is built against that release, not by
 * meson (test/data/README.md says how).  Run once; the output is kept.
 *
 *   gen_v0_1 DIR MANIFEST     DIR must not exist
 *
 * Contents: topic "events" (2 partitions): batches of 5 records from an
 * uncompressed producer and batches of 5 from a zstd one, keys, a null key,
 * a null value, headers; topic "state" (cleanup.policy=compact, 1 KiB
 * segments, no retention): 3 keys written twice, then 60 updates of 5
 * keys and a tombstone, compacted by the cleaner
 * before the manifest is read; group "g1": offsets committed for both
 * partitions of "events".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <klog/klog.h>

#define BASE_TS 1764000000000LL

static char err[512];

static void die(const char *what, int rc)
{
    fprintf(stderr, "gen_v0_1: %s: %s %s\n", what, klog_strerror(rc), err);
    exit(1);
}

#define CK(what, call)             \
    do {                           \
        int rc_ = (call);          \
        if (rc_ < 0)               \
            die(what, rc_);        \
    } while (0)

static klog_conf *conf(const char *const *kv)
{
    klog_conf *c;
    CK("klog_conf_new", klog_conf_new(&c));
    for (; kv && kv[0]; kv += 2)
        CK(kv[0], klog_conf_set(c, kv[0], kv[1], err, sizeof err));
    return c;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static void hex(FILE *f, const void *p, size_t n)
{
    if (!p) {
        fputs(" -", f);
        return;
    }
    fputc(' ', f);
    if (n == 0)
        fputc('=', f); /* empty, not null */
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", ((const unsigned char *)p)[i]);
}

/* Every record of topic/partition, into the manifest. */
static void dump(FILE *f, klog *k, const char *topic, int32_t part)
{
    klog_partition_info pi[4];
    memset(pi, 0, sizeof pi);
    pi[0].struct_size = sizeof pi[0];
    CK("klog_topic_describe", klog_topic_describe(k, topic, pi, 4, NULL, 0));
    fprintf(f, "P %s %d %lld %lld\n", topic, (int)part, (long long)pi[part].start_offset,
            (long long)pi[part].end_offset);
    static const char *const kv[] = { "auto.offset.reset", "earliest", NULL };
    klog_conf *c = conf(kv);
    klog_consumer *cons;
    CK("klog_consumer_new", klog_consumer_new(k, c, &cons, err, sizeof err));
    klog_conf_free(c);
    CK("klog_consumer_assign", klog_consumer_assign(cons, topic, part, KLOG_OFFSET_BEGINNING));
    int64_t pos = pi[part].start_offset;
    for (int tries = 0; pos < pi[part].end_offset && tries < 100; tries++) {
        const klog_message *m = NULL;
        int n = klog_consumer_poll(cons, 100, &m);
        if (n < 0)
            die("klog_consumer_poll", n);
        for (int i = 0; i < n; i++) {
            fprintf(f, "R %s %d %lld %lld", topic, (int)part, (long long)m[i].offset, (long long)m[i].timestamp);
            hex(f, m[i].key, m[i].key_len);
            hex(f, m[i].value, m[i].value_len);
            fprintf(f, " %zu", m[i].header_count);
            for (size_t h = 0; h < m[i].header_count; h++) {
                const char *hk;
                size_t hkl, hvl;
                const void *hv;
                CK("klog_message_header", klog_message_header(&m[i], h, &hk, &hkl, &hv, &hvl));
                hex(f, hk, hkl);
                hex(f, hv, hvl);
            }
            fputc('\n', f);
            pos = m[i].offset + 1;
        }
    }
    if (pos < pi[part].end_offset) {
        fprintf(stderr, "gen_v0_1: %s-%d: read to %lld of %lld\n", topic, (int)part, (long long)pos,
                (long long)pi[part].end_offset);
        exit(1);
    }
    klog_consumer_close(cons);
}

static void send(klog_producer *p, const char *topic, int32_t part, const char *key, const char *value,
                 int64_t ts, const klog_header *h, size_t nh)
{
    klog_record r = KLOG_RECORD_INIT;
    r.partition = part;
    r.key = key;
    r.key_len = key ? strlen(key) : 0;
    r.value = value;
    r.value_len = value ? strlen(value) : 0;
    r.timestamp = ts;
    r.headers = h;
    r.header_count = nh;
    CK("klog_producer_send", klog_producer_send(p, topic, &r));
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_v0_1 DIR MANIFEST\n");
        return 2;
    }
    const char *vs;
    klog_version(&vs);
    static const char *const ikv[] = { "log.cleaner.backoff.ms", "10", NULL };
    klog_conf *ic = conf(ikv);
    klog *k;
    CK("klog_open", klog_open(&k, argv[1], ic, err, sizeof err));
    klog_conf_free(ic);

    /* events: 2 partitions, batches from a plain and a zstd producer; no
     * retention, or the fixed timestamps would soon be past the default's */
    static const char *const ekv[] = { "retention.ms", "-1", NULL };
    klog_conf *ec = conf(ekv);
    CK("topic events", klog_topic_create(k, "events", 2, ec, err, sizeof err));
    klog_conf_free(ec);
    static const char *const plain[] = { "acks", "all", "linger.ms", "0", NULL };
    static const char *const zstd[] = { "acks", "all", "linger.ms", "0", "compression.type", "zstd", NULL };
    const char *const *pk[] = { plain, zstd };
    int n = 0;
    for (int round = 0; round < 4; round++) {
        klog_conf *pc = conf(pk[round % 2]);
        klog_producer *p;
        CK("klog_producer_new", klog_producer_new(k, pc, &p, err, sizeof err));
        klog_conf_free(pc);
        for (int part = 0; part < 2; part++) {
            for (int i = 0; i < 5; i++, n++) {
                char key[32], value[64], hv[32];
                snprintf(key, sizeof key, "user-%d", n % 7);
                snprintf(value, sizeof value, "event %d of round %d", n, round);
                snprintf(hv, sizeof hv, "trace-%d", n);
                klog_header h[2] = { { "trace", 5, hv, strlen(hv) }, { "empty", 5, NULL, 0 } };
                send(p, "events", part, n % 11 == 3 ? NULL : key, n % 13 == 5 ? NULL : value, BASE_TS + n,
                     n % 3 == 0 ? h : NULL, n % 3 == 0 ? (n % 2 ? 2 : 1) : 0);
            }
            CK("klog_producer_flush", klog_producer_flush(p, 10000)); /* one batch each */
        }
        CK("klog_producer_close", klog_producer_close(p));
    }

    /* state: compacted, 1 KiB segments, so that most of it is sealed */
    static const char *const tkv[] = { "cleanup.policy", "compact", "segment.bytes", "1024",
                                       "min.cleanable.dirty.ratio", "0.01", "min.compaction.lag.ms", "0",
                                       "delete.retention.ms", "86400000000", "retention.ms", "-1", NULL };
    klog_conf *tc = conf(tkv);
    CK("topic state", klog_topic_create(k, "state", 1, tc, err, sizeof err));
    klog_conf_free(tc);
    klog_conf *pc = conf(plain);
    klog_producer *p;
    CK("klog_producer_new", klog_producer_new(k, pc, &p, err, sizeof err));
    klog_conf_free(pc);
    /* config-0..2, twice each, never again: compaction keeps the second
     * of each, in a cleaned segment */
    for (int i = 0; i < 6; i++) {
        char key[32], value[64];
        snprintf(key, sizeof key, "config-%d", i % 3);
        snprintf(value, sizeof value, "{\"config\":%d,\"version\":%d}", i % 3, i / 3);
        send(p, "state", 0, key, value, BASE_TS + 900 + i, NULL, 0);
    }
    CK("klog_producer_flush", klog_producer_flush(p, 10000));
    for (int i = 0; i < 60; i++) {
        char key[32], value[64];
        snprintf(key, sizeof key, "device-%d", i % 5);
        snprintf(value, sizeof value, "{\"reading\":%d,\"seq\":%d}", i * 7 % 100, i);
        /* device-2's last update is a tombstone */
        send(p, "state", 0, key, i == 57 ? NULL : value, BASE_TS + 1000 + i, NULL, 0);
        if (i % 4 == 3)
            CK("klog_producer_flush", klog_producer_flush(p, 10000));
    }
    CK("klog_producer_close", klog_producer_close(p));
    klog_partition_info pi;
    for (int i = 0; i < 2000; i++) {
        memset(&pi, 0, sizeof pi);
        pi.struct_size = sizeof pi;
        CK("klog_topic_describe", klog_topic_describe(k, "state", &pi, 1, NULL, 0));
        if (pi.clean_offset > 0)
            break;
        sleep_ms(10);
    }
    if (pi.clean_offset <= 0) {
        fprintf(stderr, "gen_v0_1: the cleaner did not compact \"state\"\n");
        return 1;
    }

    /* g1: a standalone commit (assign, no subscribe) of both partitions */
    static const char *const gkv[] = { "group.id", "g1", "enable.auto.commit", "false", NULL };
    klog_conf *gc = conf(gkv);
    klog_consumer *c;
    CK("klog_consumer_new g1", klog_consumer_new(k, gc, &c, err, sizeof err));
    klog_conf_free(gc);
    CK("assign", klog_consumer_assign(c, "events", 0, 0));
    CK("assign", klog_consumer_assign(c, "events", 1, 0));
    klog_partition_list *l;
    CK("klog_partition_list_new", klog_partition_list_new(&l));
    CK("add", klog_partition_list_add(l, "events", 0, 7, "v0.1 commit"));
    CK("add", klog_partition_list_add(l, "events", 1, 12, NULL));
    CK("klog_consumer_commit", klog_consumer_commit(c, l, 0));
    klog_partition_list_free(l);
    CK("klog_consumer_close", klog_consumer_close(c));

    FILE *f = fopen(argv[2], "w");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    fprintf(f, "# test/data/v0.1.manifest: written by test/data/gen_v0_1.c with klog %s\n"
               "# P topic partition start end; R topic partition offset timestamp key value headers [hkey hvalue]...\n"
               "# (hex; - null, = empty); C group topic partition committed\n", vs);
    dump(f, k, "events", 0);
    dump(f, k, "events", 1);
    dump(f, k, "state", 0);
    int64_t off;
    CK("committed", klog_group_committed(k, "g1", "events", 0, &off));
    fprintf(f, "C g1 events 0 %lld\n", (long long)off);
    CK("committed", klog_group_committed(k, "g1", "events", 1, &off));
    fprintf(f, "C g1 events 1 %lld\n", (long long)off);
    if (fclose(f) != 0) {
        perror(argv[2]);
        return 1;
    }
    CK("klog_close", klog_close(k));
    return 0;
}
