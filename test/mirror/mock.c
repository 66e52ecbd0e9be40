/*
 * test/mirror/mock.c - the mirror to Kafka against librdkafka's mock
 * cluster, in-process (three brokers on 127.0.0.1): records keep key,
 * value, headers, timestamp, partition and order; commits never pass what
 * Kafka acknowledged; the link goes down and up; the disk budget deletes
 * unforwarded records while it is down (counted as a gap); errors are
 * injected; bad input stops the mirror with a clear message and leaves the
 * klog offsets where they were.
 */
#include "fake_sasl.h"
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
        cr_assert_eq(r->ts, mu_ts0 + idx, "record %d: timestamp", idx);
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

/* pred: the link went down at least once. */
static bool link_went_down(mu_env *e, void *arg)
{
    (void)arg;
    return mu_stats(e).link_downs >= 1;
}

/* pred: everything stored is acknowledged. */
static bool caught_up(mu_env *e, void *arg)
{
    (void)arg;
    klog_mirror_stats s = mu_stats(e);
    return s.lag == 0 && s.in_flight == 0 && s.link_up;
}

/* Every broker down while records keep coming, then up: nothing lost,
 * order kept, nothing committed past what Kafka had acknowledged. */
Test(mirror_mock, cluster_down_and_up)
{
    mu_open(&env, NULL);
    mu_mock(&env, 3);
    cr_assert_eq(rd_kafka_mock_topic_create(env.mc, "t", 2, 1), 0);
    mu_topic(&env, "t", 2, NULL);
    mu_produce(env.k, "t", 2, 0, 200, "a", false, 0);
    mu_mirror(&env, "mirror.to", env.boot, "mirror.topics", "t", "mirror.source.header", "true",
              "mirror.commit.interval.ms", "50", NULL);
    mu_run_until_forwarded(&env, 200, 60000);
    cr_assert_eq(rd_kafka_mock_broker_set_down(env.mc, -1), 0);
    mu_produce(env.k, "t", 2, 200, 300, "b", false, 0);
    char err[512] = "";
    bool held;
    int rc = mu_run(&env, link_went_down, NULL, 60000, &held, err, sizeof err);
    cr_assert_geq(rc, 0, "%s", err);
    cr_assert(held, "the link never went down\n%s", env.log);
    cr_assert(mu_logged(&env, "link down"), "%s", env.log);
    /* a wake-up from any thread makes the next waiting poll return */
    cr_assert_eq(klog_mirror_wakeup(NULL), -EINVAL);
    cr_assert_eq(klog_mirror_wakeup(env.m), 0);
    /* (klog_mirror.h: "or the next one"): the wake-up came before this
     * poll, which must return long before its 60 s; it waited them out
     * once, the flag cleared at the poll's start */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_geq(klog_mirror_poll(env.m, 60000, err, sizeof err), 0, "%s", err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 30, "a poll after klog_mirror_wakeup waited %ld s", (long)(t1.tv_sec - t0.tv_sec));
    /* down: let it try a while (a bounded number of polls), then check the commits */
    for (int i = 0; i < 20; i++)
        cr_assert_geq(klog_mirror_poll(env.m, 50, err, sizeof err), 0, "%s", err);
    klog_mirror_stats s = mu_stats(&env);
    int64_t floor[2];
    for (int p = 0; p < 2; p++) {
        floor[p] = mu_committed(env.k, G, "t", p);
        cr_assert_leq(floor[p], 100 + (int64_t)s.forwarded - 200,
                      "partition %d committed %" PRId64 " with %" PRIu64 " forwarded", p, floor[p], s.forwarded);
    }
    cr_assert_eq(rd_kafka_mock_broker_set_up(env.mc, -1), 0);
    rc = mu_run(&env, caught_up, NULL, 120000, &held, err, sizeof err);
    cr_assert_geq(rc, 0, "%s", err);
    cr_assert(held, "not caught up after the cluster came back\n%s", env.log);
    cr_assert(mu_logged(&env, "link up again"), "%s", env.log);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    s = mu_stats(&env);
    cr_assert_geq(s.link_downs, 1);
    cr_assert_eq(s.gap_records, 0);
    mu_recs rs;
    mu_read_kafka(env.boot, "t", &rs);
    uint64_t dups, missing;
    mu_check_kafka(env.k, &rs, "t", 2, false, floor, &dups, &missing);
    cr_assert_eq(missing, 0);
    cr_log_info("cluster down and up: %zu records in Kafka, %" PRIu64 " duplicates", rs.n, dups);
    for (int p = 0; p < 2; p++)
        cr_assert_eq(mu_committed(env.k, G, "t", p), 250);
    mu_recs_free(&rs);
}

/* The disk budget deletes records while the link is down: they are counted
 * (gap_records, a log line), everything else arrives. */
Test(mirror_mock, disk_budget_fills_while_down)
{
    mu_open(&env, "disk.budget.bytes", "262144", "disk.budget.policy", "delete-oldest", "segment.bytes", "16384",
            NULL);
    mu_mock(&env, 1);
    cr_assert_eq(rd_kafka_mock_topic_create(env.mc, "r", 1, 1), 0);
    mu_topic(&env, "r", 1, NULL);
    mu_produce(env.k, "r", 1, 0, 100, "a", false, 200);
    /* a small librdkafka queue, so that most of what comes while down stays on disk */
    mu_mirror(&env, "mirror.to", env.boot, "mirror.topics", "r", "mirror.source.header", "true",
              "kafka.queue.buffering.max.messages", "300", NULL);
    mu_run_until_forwarded(&env, 100, 60000);
    cr_assert_eq(rd_kafka_mock_broker_set_down(env.mc, -1), 0);
    mu_produce(env.k, "r", 1, 100, 1000, "b", false, 200);
    char err[512] = "";
    for (int i = 0; i < 40; i++)
        cr_assert_geq(klog_mirror_poll(env.m, 50, err, sizeof err), 0, "%s", err);
    mu_produce(env.k, "r", 1, 1100, 3000, "c", false, 200);
    for (int i = 0; i < 20; i++)
        cr_assert_geq(klog_mirror_poll(env.m, 50, err, sizeof err), 0, "%s", err);
    int64_t start, end;
    mu_offsets(env.k, "r", 0, &start, &end);
    int64_t committed = mu_committed(env.k, G, "r", 0);
    cr_assert_gt(start, committed, "the budget deleted nothing unforwarded (start %" PRId64 ", committed %" PRId64 ")",
                 start, committed);
    cr_assert_eq(rd_kafka_mock_broker_set_up(env.mc, -1), 0);
    bool held;
    int rc = mu_run(&env, caught_up, NULL, 120000, &held, err, sizeof err);
    cr_assert_geq(rc, 0, "%s", err);
    cr_assert(held, "not caught up\n%s", env.log);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    klog_mirror_stats s = mu_stats(&env);
    cr_assert_gt(s.gap_records, 0);
    cr_assert_geq(s.gaps, 1);
    cr_assert(mu_logged(&env, "gap: r[0]"), "%s", env.log);
    mu_recs rs;
    mu_read_kafka(env.boot, "r", &rs);
    uint64_t dups, missing;
    int64_t floor[1] = { committed };
    mu_check_kafka(env.k, &rs, "r", 1, true, floor, &dups, &missing);
    cr_assert_eq(missing, s.gap_records, "%" PRIu64 " offsets missing in Kafka, %" PRIu64 " counted as a gap", missing,
                 s.gap_records);
    mu_offsets(env.k, "r", 0, NULL, &end);
    cr_assert_eq(mu_committed(env.k, G, "r", 0), end);
    mu_recs_free(&rs);
}

/* Retriable errors on Produce: retried by the idempotent producer, written once. */
Test(mirror_mock, retriable_produce_errors)
{
    mu_open(&env, NULL);
    mu_mock(&env, 3);
    cr_assert_eq(rd_kafka_mock_topic_create(env.mc, "t", 2, 1), 0);
    mu_topic(&env, "t", 2, NULL);
    rd_kafka_mock_push_request_errors(env.mc, 0 /* Produce */, 6, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND);
    mu_produce(env.k, "t", 2, 0, 400, "a", false, 0);
    mu_mirror(&env, "mirror.to", env.boot, "mirror.topics", "t", "mirror.source.header", "true", NULL);
    mu_run_until_forwarded(&env, 400, 120000);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    mu_recs rs;
    mu_read_kafka(env.boot, "t", &rs);
    uint64_t dups, missing;
    mu_check_kafka(env.k, &rs, "t", 2, false, NULL, &dups, &missing);
    cr_assert_eq(missing, 0);
    cr_assert_eq(dups, 0, "the idempotent producer wrote %" PRIu64 " duplicates", dups);
    mu_recs_free(&rs);
}

/* The cluster refuses a batch as too large: the mirror stops with
 * KLOG_ETOOBIG, and its commit stays below the refused records. */
Test(mirror_mock, cluster_refuses_record_as_too_large)
{
    mu_open(&env, NULL);
    mu_mock(&env, 1);
    cr_assert_eq(rd_kafka_mock_topic_create(env.mc, "t", 1, 1), 0);
    mu_topic(&env, "t", 1, NULL);
    mu_produce(env.k, "t", 1, 0, 100, "a", false, 0);
    mu_mirror(&env, "mirror.to", env.boot, "mirror.topics", "t", "mirror.commit.interval.ms", "10", NULL);
    mu_run_until_forwarded(&env, 100, 60000);
    for (int i = 0; i < 5; i++) /* let a commit of 100 happen */
        cr_assert_geq(klog_mirror_poll(env.m, 20, NULL, 0), 0);
    cr_assert_eq(mu_committed(env.k, G, "t", 0), 100);
    rd_kafka_mock_push_request_errors(env.mc, 0, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    mu_produce(env.k, "t", 1, 100, 50, "b", false, 0);
    char err[512] = "";
    bool held;
    int rc = mu_run(&env, NULL, NULL, 60000, &held, err, sizeof err);
    cr_assert_eq(rc, KLOG_ETOOBIG, "poll returned %d (%s): %s", rc, klog_strerror(rc), err);
    cr_assert(strstr(err, "refused") && strstr(err, "offset 100"), "%s", err);
    cr_assert_eq(klog_mirror_poll(env.m, 0, NULL, 0), KLOG_ETOOBIG, "a failed mirror keeps failing");
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    cr_assert_eq(mu_committed(env.k, G, "t", 0), 100, "the klog offset must stay below the refused record");
    klog_mirror_stats s = mu_stats(&env);
    cr_assert_eq(s.error, KLOG_ETOOBIG);
}

/* A record over librdkafka's message.max.bytes: refused before it is sent. */
Test(mirror_mock, record_over_message_max_bytes)
{
    mu_open(&env, NULL);
    mu_mock(&env, 1);
    cr_assert_eq(rd_kafka_mock_topic_create(env.mc, "t", 1, 1), 0);
    mu_topic(&env, "t", 1, NULL);
    mu_produce(env.k, "t", 1, 0, 10, "a", false, 0);
    mu_produce(env.k, "t", 1, 10, 1, "big", false, 5000);
    mu_produce(env.k, "t", 1, 11, 10, "c", false, 0);
    mu_mirror(&env, "mirror.to", env.boot, "mirror.topics", "t", "kafka.message.max.bytes", "2000", NULL);
    char err[512] = "";
    bool held;
    int rc = mu_run(&env, NULL, NULL, 60000, &held, err, sizeof err);
    cr_assert_eq(rc, KLOG_ETOOBIG, "poll returned %d (%s): %s", rc, klog_strerror(rc), err);
    cr_assert(strstr(err, "offset 10") && strstr(err, "message.max.bytes"), "%s", err);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    cr_assert_eq(mu_committed(env.k, G, "t", 0), 10);
    mu_recs rs;
    mu_read_kafka(env.boot, "t", &rs);
    cr_assert_eq(rs.n, 10);
    mu_recs_free(&rs);
}

/* Nobody at the bootstrap address: -ETIMEDOUT after mirror.connect.timeout.ms. */
Test(mirror_mock, unreachable_bootstrap)
{
    mu_open(&env, NULL);
    mu_topic(&env, "t", 1, NULL);
    mu_produce(env.k, "t", 1, 0, 5, "a", false, 0);
    char boot[64];
    snprintf(boot, sizeof boot, "127.0.0.1:%d", mu_closed_port());
    mu_mirror(&env, "mirror.to", boot, "mirror.topics", "t", "mirror.connect.timeout.ms", "1000", NULL);
    char err[512] = "";
    bool held;
    int rc = mu_run(&env, NULL, NULL, 60000, &held, err, sizeof err);
    cr_assert_eq(rc, -ETIMEDOUT, "poll returned %d (%s): %s", rc, klog_strerror(rc), err);
    cr_assert(strstr(err, "cannot reach the Kafka cluster") && strstr(err, boot), "%s", err);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    cr_assert_eq(mu_committed(env.k, G, "t", 0), KLOG_OFFSET_NONE);
}

/* The Kafka topic does not exist and the cluster does not create it. */
Test(mirror_mock, missing_topic_without_auto_create)
{
    mu_open(&env, NULL);
    mu_mock(&env, 1);
    rd_kafka_mock_topic_set_error(env.mc, "t", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    mu_topic(&env, "t", 2, NULL);
    mu_produce(env.k, "t", 2, 0, 10, "a", false, 0);
    mu_mirror(&env, "mirror.to", env.boot, "mirror.topics", "t", NULL);
    char err[512] = "";
    bool held;
    int rc = mu_run(&env, NULL, NULL, 60000, &held, err, sizeof err);
    cr_assert_eq(rc, KLOG_EUNKNOWN_TOPIC, "poll returned %d (%s): %s", rc, klog_strerror(rc), err);
    cr_assert(strstr(err, "does not exist") && strstr(err, "--create-topics"), "%s", err);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    cr_assert_eq(mu_committed(env.k, G, "t", 0), KLOG_OFFSET_NONE);
    cr_assert_eq(mu_committed(env.k, G, "t", 1), KLOG_OFFSET_NONE);
}

/* The cluster creates topics on first use (the mock's four partitions). */
Test(mirror_mock, missing_topic_auto_created)
{
    mu_open(&env, NULL);
    mu_mock(&env, 1);
    mu_topic(&env, "t", 2, NULL);
    mu_produce(env.k, "t", 2, 0, 40, "a", false, 0);
    mu_mirror(&env, "mirror.to", env.boot, "mirror.topics", "t", "mirror.source.header", "true", NULL);
    mu_run_until_forwarded(&env, 40, 60000);
    cr_assert(mu_logged(&env, "same partition numbers"), "%s", env.log);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    mu_recs rs;
    mu_read_kafka(env.boot, "t", &rs);
    cr_assert_eq(rs.partitions, 4);
    mu_check_kafka(env.k, &rs, "t", 2, false, NULL, NULL, NULL);
    for (size_t i = 0; i < rs.n; i++)
        cr_assert_eq(rs.r[i].partition, rs.r[i].src_part);
    mu_recs_free(&rs);
}

/* The cluster refuses the login: -EACCES with the broker's reason. */
Test(mirror_mock, authentication_failure)
{
    fake_sasl fs;
    cr_assert_eq(fake_sasl_start(&fs), 0);
    mu_open(&env, NULL);
    mu_topic(&env, "t", 1, NULL);
    mu_produce(env.k, "t", 1, 0, 5, "a", false, 0);
    char boot[64];
    snprintf(boot, sizeof boot, "127.0.0.1:%d", fs.port);
    mu_mirror(&env, "mirror.to", boot, "mirror.topics", "t", "kafka.security.protocol", "SASL_PLAINTEXT",
              "kafka.sasl.mechanism", "PLAIN", "kafka.sasl.username", "gateway", "kafka.sasl.password", "wrong", NULL);
    char err[512] = "";
    bool held;
    int rc = mu_run(&env, NULL, NULL, 60000, &held, err, sizeof err);
    fake_sasl_stop(&fs);
    cr_assert_eq(rc, -EACCES, "poll returned %d (%s): %s", rc, klog_strerror(rc), err);
    cr_assert(strstr(err, "authentication") && strstr(err, "Invalid username or password"), "%s", err);
    cr_assert_geq(atomic_load(&fs.refused), 1);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    cr_assert_eq(mu_committed(env.k, G, "t", 0), KLOG_OFFSET_NONE);
}

/* Kafka into klog: a topic of the cluster mirrored into a klog topic
 * (created with its partition count, renamed), records as they were, the
 * Kafka group's offsets committed; a second run takes only what is new. */
static void kafka_produce(const char *boot, const char *topic, int nparts, int first, int n)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", boot, err, sizeof err);
    rd_kafka_conf_set(c, "linger.ms", "1", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    if (!mu_ts0)
        mu_ts0 = mu_wall_ms() - 3600000;
    for (int i = first; i < first + n; i++) {
        char key[16], val[32], hv[16];
        int kl = snprintf(key, sizeof key, "k%d", i % 5), vl = snprintf(val, sizeof val, "cmd-%d", i);
        int hl = snprintf(hv, sizeof hv, "h%d", i);
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, "seq", 3, hv, hl);
        rd_kafka_header_add(h, "none", 4, NULL, 0);
        cr_assert_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(i % nparts),
                                       RD_KAFKA_V_KEY(key, (size_t)kl), RD_KAFKA_V_VALUE(val, (size_t)vl),
                                       RD_KAFKA_V_TIMESTAMP(mu_ts0 + i), RD_KAFKA_V_HEADERS(h),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
    }
    cr_assert_eq(rd_kafka_flush(rk, 60000), 0);
    rd_kafka_destroy(rk);
}

static int64_t kafka_committed(const char *boot, const char *group, const char *topic, int32_t p)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", boot, err, sizeof err);
    rd_kafka_conf_set(c, "group.id", group, err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    cr_assert_not_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, p);
    cr_assert_eq(rd_kafka_committed(rk, l, 10000), 0);
    int64_t off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

Test(mirror_mock, from_kafka_into_klog)
{
    mu_open(&env, NULL);
    mu_mock(&env, 1);
    cr_assert_eq(rd_kafka_mock_topic_create(env.mc, "cmd", 2, 1), 0);
    kafka_produce(env.boot, "cmd", 2, 0, 100);
    /* session.timeout.ms: the mock (2.0.2) holds a rebalance after a member
     * left for as long as the session of the member that left */
    mu_mirror(&env, "mirror.from", env.boot, "mirror.topics", "cmd", "mirror.rename", "cmd:commands",
              "mirror.create.topics", "true", "kafka.session.timeout.ms", "6000", NULL);
    mu_run_until_forwarded(&env, 100, 60000);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    klog_mirror_free(env.m);
    env.m = NULL;
    cr_assert_eq(klog_topic_describe(env.k, "commands", NULL, 0, NULL, 0), 2);
    for (int p = 0; p < 2; p++)
        cr_assert_eq(kafka_committed(env.boot, G, "cmd", p), 50, "Kafka partition %d committed", p);

    kafka_produce(env.boot, "cmd", 2, 100, 20);
    mu_mirror(&env, "mirror.from", env.boot, "mirror.topics", "cmd", "mirror.rename", "cmd:commands",
              "kafka.session.timeout.ms", "6000", NULL);
    mu_run_until_forwarded(&env, 20, 60000);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    cr_assert_eq(mu_stats(&env).forwarded, 20, "the second run must start from the commit");

    klog_consumer *c;
    char err[256];
    klog_conf *cc;
    cr_assert_eq(klog_conf_new(&cc), 0);
    cr_assert_eq(klog_conf_set(cc, "auto.offset.reset", "earliest", err, sizeof err), 0);
    cr_assert_eq(klog_consumer_new(env.k, cc, &c, err, sizeof err), 0);
    klog_conf_free(cc);
    for (int p = 0; p < 2; p++)
        cr_assert_eq(klog_consumer_assign(c, "commands", p, KLOG_OFFSET_BEGINNING), 0);
    int next[2] = { 0, 1 }, got = 0;
    for (int tries = 0; tries < 200 && got < 120; tries++) {
        const klog_message *const *msgs;
        int n = klog_consumer_poll(c, 100, &msgs);
        cr_assert_geq(n, 0);
        for (int i = 0; i < n; i++, got++) {
            const klog_message *mm = msgs[i];
            int p = mm->partition, idx = next[p];
            next[p] += 2;
            char want[32];
            snprintf(want, sizeof want, "cmd-%d", idx);
            cr_assert_eq(mm->value_len, strlen(want));
            cr_assert(!memcmp(mm->value, want, mm->value_len), "partition %d: %.*s where %s was due", p,
                      (int)mm->value_len, (const char *)mm->value, want);
            snprintf(want, sizeof want, "k%d", idx % 5);
            cr_assert(mm->key_len == strlen(want) && !memcmp(mm->key, want, mm->key_len));
            cr_assert_eq(mm->timestamp, mu_ts0 + idx);
            cr_assert_eq(mm->header_count, 2);
            const char *hk;
            size_t hkl, hvl;
            const void *hv;
            cr_assert_eq(klog_message_header(mm, 0, &hk, &hkl, &hv, &hvl), 0);
            snprintf(want, sizeof want, "h%d", idx);
            cr_assert(hkl == 3 && !memcmp(hk, "seq", 3) && hvl == strlen(want) && !memcmp(hv, want, hvl));
            cr_assert_eq(klog_message_header(mm, 1, &hk, &hkl, &hv, &hvl), 0);
            cr_assert_null(hv, "a null header value stays null");
        }
    }
    cr_assert_eq(got, 120);
    klog_consumer_close(c);
}

/* Into klog without the klog topic and without --create-topics. */
Test(mirror_mock, from_kafka_missing_klog_topic)
{
    mu_open(&env, NULL);
    mu_mock(&env, 1);
    cr_assert_eq(rd_kafka_mock_topic_create(env.mc, "cmd", 2, 1), 0);
    kafka_produce(env.boot, "cmd", 2, 0, 10);
    mu_mirror(&env, "mirror.from", env.boot, "mirror.topics", "cmd", NULL);
    char err[512] = "";
    bool held;
    int rc = mu_run(&env, NULL, NULL, 60000, &held, err, sizeof err);
    cr_assert_eq(rc, KLOG_EUNKNOWN_TOPIC, "poll returned %d (%s): %s", rc, klog_strerror(rc), err);
    cr_assert(strstr(err, "klog topic \"cmd\"") && strstr(err, "does not exist"), "%s", err);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    cr_assert_lt(kafka_committed(env.boot, G, "cmd", 0), 0, "nothing may be committed on Kafka");
}

/* Keys and their values are checked when set; start wants a direction and topics. */
Test(mirror_mock, keys_checked)
{
    mu_open(&env, NULL);
    klog_mirror *m;
    char err[512];
    cr_assert_eq(klog_mirror_new(&m, env.k, err, sizeof err), 0);
    cr_assert_eq(klog_mirror_start(m, err, sizeof err), KLOG_ECONF);
    cr_assert(strstr(err, "mirror.to"), "%s", err);
    cr_assert_eq(klog_mirror_set(m, "mirror.nope", "1", err, sizeof err), KLOG_ECONF);
    cr_assert(strstr(err, "unknown key"), "%s", err);
    cr_assert_eq(klog_mirror_set(m, "kafka.no.such.property", "1", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_mirror_set(m, "kafka.bootstrap.servers", "x:1", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_mirror_set(m, "klog.linger.ms", "-5", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_mirror_set(m, "mirror.topics", "a,,b", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_mirror_set(m, "mirror.topics", "^(", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_mirror_set(m, "mirror.rename", "a-b", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_mirror_set(m, "mirror.partitioning", "random", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_mirror_set(m, "mirror.commit.interval.ms", "0", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_mirror_set(m, "mirror.to", "127.0.0.1:1", err, sizeof err), 0);
    cr_assert_eq(klog_mirror_set(m, "mirror.from", "127.0.0.1:1", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_mirror_start(m, err, sizeof err), KLOG_ECONF);
    cr_assert(strstr(err, "mirror.topics"), "%s", err);
    cr_assert_eq(klog_mirror_poll(m, 0, err, sizeof err), KLOG_ESTATE);
    cr_assert_eq(klog_mirror_stop(m), KLOG_ESTATE);
    klog_mirror_stats s = { .struct_size = 4 };
    cr_assert_eq(klog_mirror_stats_get(m, &s), -EINVAL);
    cr_assert_eq(klog_mirror_set_log_cb(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(klog_mirror_new(NULL, env.k, err, sizeof err), -EINVAL);
    klog_mirror_free(m);
    klog_mirror_free(NULL);
}

/* Kafka's retention deletes records the mirror had not read (the mock keeps
 * 5 MB per partition): counted as a gap, against the low watermark. */
Test(mirror_mock, from_kafka_gap_counted)
{
    mu_open(&env, NULL);
    mu_mock(&env, 1);
    cr_assert_eq(rd_kafka_mock_topic_create(env.mc, "cmd", 1, 1), 0);
    kafka_produce(env.boot, "cmd", 1, 0, 50);
    mu_mirror(&env, "mirror.from", env.boot, "mirror.topics", "cmd", "mirror.create.topics", "true",
              "kafka.session.timeout.ms", "6000", NULL);
    mu_run_until_forwarded(&env, 50, 60000);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    klog_mirror_free(env.m);
    env.m = NULL;
    cr_assert_eq(kafka_committed(env.boot, G, "cmd", 0), 50);

    /* 8 MB more: the mock drops its oldest batches, offset 50 among them */
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", env.boot, err, sizeof err);
    rd_kafka_conf_set(c, "batch.num.messages", "10", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    cr_assert_not_null(rk);
    static char big[10000];
    memset(big, 'b', sizeof big);
    for (int i = 0; i < 800; i++)
        cr_assert_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("cmd"), RD_KAFKA_V_PARTITION(0),
                                       RD_KAFKA_V_VALUE(big, sizeof big), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_END),
                     0);
    cr_assert_eq(rd_kafka_flush(rk, 60000), 0);
    int64_t lo = -1, hi = -1;
    cr_assert_eq(rd_kafka_query_watermark_offsets(rk, "cmd", 0, &lo, &hi, 10000), 0);
    rd_kafka_destroy(rk);
    cr_assert_gt(lo, 50, "the mock kept everything (low watermark %" PRId64 ")", lo);

    mu_mirror(&env, "mirror.from", env.boot, "mirror.topics", "cmd", "kafka.session.timeout.ms", "6000", NULL);
    mu_run_until_forwarded(&env, (uint64_t)(hi - lo), 120000);
    cr_assert_eq(klog_mirror_stop(env.m), 0);
    klog_mirror_stats s = mu_stats(&env);
    cr_assert_eq(s.gap_records, (uint64_t)(lo - 50), "gap %" PRIu64 ", the low watermark moved from 50 to %" PRId64,
                 s.gap_records, lo);
    cr_assert_eq(s.gaps, 1);
    cr_assert(mu_logged(&env, "gap: cmd[0]") && mu_logged(&env, "Kafka's retention"), "%s", env.log);
    cr_assert_eq(kafka_committed(env.boot, G, "cmd", 0), hi);
}
