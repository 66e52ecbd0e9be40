/*
 * test/mirror/mock.c - the mirror to Kafka against librdkafka's mock
 * cluster, in-process (three brokers on 127.0.0.1): records keep key,
 * value, headers, timestamp, partition and order; commits never pass what
 * Kafka acknowledged; the link goes down and up; the disk budget deletes
 * unforwarded records while it is down (counted as a gap); errors are
 * injected; bad input stops the mirror with a clear message and leaves the
 * klog offsets where they were.
 */
#include "util.h"

#define G "klog-mirror"

static mu_env env;

static void teardown(void)
{
    mu_down(&env);
}

TestSuite(mirror_mock, .fini = teardown, .timeout = 240);

/* Every field of every record, partition for partition, in order. */
Test(mirror_mock, forwards_records_as_they_are)
{
    mu_open(&env, NULL);
    mu_mock(&env, 3);
    cr_assert_eq(rd_kafka_mock_topic_create(env.mc, "t", 3, 1), 0);
    mu_topic(&env, "t", 3, NULL);
    mu_produce(env.k, "t", 3, 0, 300, "a", true, 0);
    mu_mirror(&env, "mirror.to", env.boot, "mirror.topics", "t", "mirror.source.header", "true", NULL);
    mu_run_until_forwarded(&env, 300, 60000);
    mu_produce(env.k, "t", 3, 300, 150, "b", true, 0);
    mu_run_until_forwarded(&env, 450, 60000);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    klog_mirror_stats s = mu_stats(&env);
    cr_assert_eq(s.forwarded, 450);
    cr_assert_eq(s.read, 450);
    cr_assert_eq(s.gap_records, 0);
    cr_assert_eq(s.rewinds, 0);
    cr_assert_eq(s.in_flight, 0);
    cr_assert_geq(s.commits, 1);

    mu_recs rs;
    mu_read_kafka(env.boot, "t", &rs);
    cr_assert_eq(rs.n, 450, "Kafka holds %zu records", rs.n);
    int64_t next[3] = { 0, 0, 0 };
    for (size_t i = 0; i < rs.n; i++) {
        const mu_rec *r = &rs.r[i];
        int p = r->partition;
        /* same partition, same order: the n-th record of Kafka partition p
         * is klog's offset n of partition p, which holds record 3n+p */
        cr_assert_eq(r->src_part, p);
        cr_assert_eq(r->src_off, next[p], "partition %d: offset %" PRId64 " where %" PRId64 " was due", p, r->src_off,
                     next[p]);
        int idx = (int)(next[p] * 3 + p);
        next[p]++;
        char want[32];
        snprintf(want, sizeof want, "%s-%d", idx < 300 ? "a" : "b", idx);
        if (idx % 11 == 10)
            cr_assert_null(r->val, "record %d: a null value must stay null", idx);
        else
            cr_assert_str_eq(r->val, want);
        if (idx % 7 == 6) {
            cr_assert_null(r->key, "record %d: a null key must stay null", idx);
        } else {
            snprintf(want, sizeof want, "k%d", idx % 5);
            cr_assert_str_eq(r->key, want);
        }
        cr_assert_eq(r->ts, 1700000000000 + idx, "record %d: timestamp", idx);
        snprintf(want, sizeof want, "h%d", idx);
        cr_assert_not_null(r->seq);
        cr_assert_str_eq(r->seq, want);
        cr_assert(r->none_hdr_null, "record %d: the null header value", idx);
    }
    for (int p = 0; p < 3; p++) {
        cr_assert_eq(next[p], 150);
        cr_assert_eq(mu_committed(env.k, G, "t", p), 150, "partition %d committed", p);
    }
    mu_recs_free(&rs);
}

/* A Kafka topic with fewer partitions than the klog topic: by key hash,
 * each key in one partition, in order; rename on the way. */
Test(mirror_mock, fewer_partitions_hash_keys_and_rename)
{
    mu_open(&env, NULL);
    mu_mock(&env, 1);
    cr_assert_eq(rd_kafka_mock_topic_create(env.mc, "dst", 2, 1), 0);
    mu_topic(&env, "src", 4, NULL);
    mu_produce(env.k, "src", 4, 0, 400, "v", false, 0);
    mu_mirror(&env, "mirror.to", env.boot, "mirror.topics", "^sr.*", "mirror.rename", "src:dst",
              "mirror.source.header", "true", NULL);
    mu_run_until_forwarded(&env, 400, 60000);
    cr_assert(mu_logged(&env, "partition by key hash"), "%s", env.log);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    mu_recs rs;
    mu_read_kafka(env.boot, "dst", &rs);
    cr_assert_eq(rs.n, 400);
    int kpart[5] = { -1, -1, -1, -1, -1 };
    int64_t last[4] = { -1, -1, -1, -1 };
    for (size_t i = 0; i < rs.n; i++) {
        const mu_rec *r = &rs.r[i];
        int key = r->key[1] - '0';
        if (kpart[key] < 0)
            kpart[key] = r->partition;
        cr_assert_eq(kpart[key], r->partition, "key k%d in two partitions", key);
        cr_assert_str_eq(r->src_topic, "src");
        /* within a Kafka partition, a source partition's records keep their order */
        (void)last;
    }
    for (int p = 0; p < 2; p++) {
        int64_t prev[4] = { -1, -1, -1, -1 };
        for (size_t i = 0; i < rs.n; i++)
            if (rs.r[i].partition == p) {
                cr_assert_gt(rs.r[i].src_off, prev[rs.r[i].src_part]);
                prev[rs.r[i].src_part] = rs.r[i].src_off;
            }
    }
    mu_recs_free(&rs);
}
