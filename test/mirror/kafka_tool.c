/*
 * test/mirror/kafka_tool.c - the Kafka side of the mirror's process-level
 * tests (test_mirror_cli.py), on librdkafka only:
 *
 *   kafka_tool mock N             hold librdkafka's mock cluster of N
 *                                 brokers (127.0.0.1, kernel-chosen ports);
 *                                 print "bootstrap HOST:PORT,..."; then one
 *                                 command per stdin line, each answered
 *                                 "ok": "down" (every broker), "up",
 *                                 "topic NAME PARTITIONS", "rtt MS" (every
 *                                 broker answers that much later),
 *                                 "missing NAME"
 *                                 (metadata says it does not exist);
 *                                 exits at "quit" or end of input
 *   kafka_tool saslfail           a broker that refuses every login
 *                                 (fake_sasl.h); prints "port N"; exits at
 *                                 end of input
 *   kafka_tool count BOOT TOPIC   print the sum of the topic's high
 *                                 watermarks (0 if it does not exist)
 *   kafka_tool dump BOOT TOPIC    print "PARTITION OFFSET SRC_TOPIC
 *                                 SRC_PARTITION SRC_OFFSET" per record,
 *                                 from the klog.src header ("- -1 -1"
 *                                 without it), every partition from its
 *                                 start to its high watermark
 *
 * Exit status 0, or 1 with a message on stderr.  Every wait is bounded.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "fake_sasl.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(const char *what, const char *why)
{
    fprintf(stderr, "kafka_tool: %s: %s\n", what, why);
    return 1;
}

static int cmd_mock(int brokers)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "0", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk)
        return fail("rd_kafka_new", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc)
        return fail("rd_kafka_mock_cluster_new", "failed");
    printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    char line[512], name[256];
    int n;
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "quit", 4))
            break;
        if (!strncmp(line, "down", 4))
            rd_kafka_mock_broker_set_down(mc, -1);
        else if (!strncmp(line, "up", 2))
            rd_kafka_mock_broker_set_up(mc, -1);
        else if (sscanf(line, "topic %255s %d", name, &n) == 2)
            rd_kafka_mock_topic_create(mc, name, n, 1);
        else if (sscanf(line, "rtt %d", &n) == 1)
            rd_kafka_mock_broker_set_rtt(mc, -1, n);
        else if (sscanf(line, "missing %255s", name) == 1)
            rd_kafka_mock_topic_set_error(mc, name, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
        else {
            printf("unknown command\n");
            fflush(stdout);
            continue;
        }
        printf("ok\n");
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}

static int cmd_saslfail(void)
{
    fake_sasl fs;
    if (fake_sasl_start(&fs) < 0)
        return fail("listen", "failed");
    printf("port %d\n", fs.port);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin))
        ;
    fake_sasl_stop(&fs);
    return 0;
}

static rd_kafka_t *consumer(const char *boot)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "bootstrap.servers", boot, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fail("bootstrap.servers", err);
        return NULL;
    }
    rd_kafka_conf_set(c, "group.id", "kafka-tool", err, sizeof err);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(c, "allow.auto.create.topics", "false", err, sizeof err);
    rd_kafka_conf_set(c, "log_level", "2", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk)
        fail("rd_kafka_new", err);
    return rk;
}

/* The topic's partition count, 0 if it does not exist, -1 on error. */
static int partitions(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (int i = 0; i < 10 && (e = rd_kafka_metadata(rk, 0, rkt, &md, 3000)); i++)
        ;
    rd_kafka_topic_destroy(rkt);
    if (e) {
        fail("metadata", rd_kafka_err2str(e));
        return -1;
    }
    int n = md->topics[0].err ? 0 : md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return n;
}

static int cmd_count(const char *boot, const char *topic)
{
    rd_kafka_t *rk = consumer(boot);
    if (!rk)
        return 1;
    int np = partitions(rk, topic);
    int64_t sum = 0;
    for (int p = 0; p < np; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        if (e) {
            rd_kafka_destroy(rk);
            return fail("watermarks", rd_kafka_err2str(e));
        }
        sum += hi;
    }
    rd_kafka_destroy(rk);
    if (np < 0)
        return 1;
    printf("%" PRId64 "\n", sum);
    return 0;
}

static int cmd_dump(const char *boot, const char *topic)
{
    rd_kafka_t *rk = consumer(boot);
    if (!rk)
        return 1;
    int np = partitions(rk, topic);
    int rc = np < 0;
    for (int p = 0; p < np && !rc; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        if (e) {
            rc = fail("watermarks", rd_kafka_err2str(e));
            break;
        }
        if (hi <= lo)
            continue;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = lo;
        rd_kafka_assign(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        int64_t next = lo, until = now_ms() + 120000;
        while (next < hi && now_ms() < until) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
            if (!m)
                continue;
            if (!m->err && m->partition == p) {
                const void *v = NULL;
                size_t vs = 0;
                rd_kafka_headers_t *h = NULL;
                char src[512] = "- -1 -1";
                if (rd_kafka_message_headers(m, &h) == 0 && h &&
                    rd_kafka_header_get_last(h, "klog.src", &v, &vs) == 0 && v && vs < 400) {
                    char s[400];
                    memcpy(s, v, vs);
                    s[vs] = '\0';
                    char *b = strrchr(s, '/');
                    if (b) {
                        *b = '\0';
                        char *a = strrchr(s, '/');
                        if (a) {
                            *a = '\0';
                            snprintf(src, sizeof src, "%s %s %s", s, a + 1, b + 1);
                        }
                    }
                }
                printf("%d %" PRId64 " %s\n", p, m->offset, src);
                next = m->offset + 1;
            }
            rd_kafka_message_destroy(m);
        }
        if (next < hi)
            rc = fail("dump", "timed out before the high watermark");
    }
    rd_kafka_destroy(rk);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "mock"))
        return cmd_mock(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1);
    if (argc == 2 && !strcmp(argv[1], "saslfail"))
        return cmd_saslfail();
    if (argc == 4 && !strcmp(argv[1], "count"))
        return cmd_count(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "dump"))
        return cmd_dump(argv[2], argv[3]);
    fprintf(stderr, "usage: kafka_tool mock N | saslfail | count BOOT TOPIC | dump BOOT TOPIC\n");
    return 2;
}
