/*
 * bench/bench_mirror.c - klog's mirror to a Kafka cluster (klog/mirror.h),
 * beside a plain librdkafka producer of the same records in the same run.
 *
 * The records: N of a 100-byte value (no key, no header), spread over 4
 * partitions, written to a klog topic beforehand (untimed).  Two Kafka
 * sides, one section each:
 *   mock   librdkafka's mock cluster, in-process (one broker on 127.0.0.1)
 *   serve  klog's Kafka protocol server (klog_server, what `klog serve`
 *          runs) on a second instance in this process, tcp://127.0.0.1:0;
 *          it answers acks=all once the batch is durable (fdatasync,
 *          shared between the requests waiting on one partition), which
 *          the plain producer and the mirror both pay
 * On each, per repetition, in alternating order:
 *   plain   one librdkafka producer sends the N values, each to the same
 *           partition number as in klog, with the mirror's producer
 *           settings (enable.idempotence, acks=all, linger.ms 5,
 *           queue.buffering.max.kbytes 65536, RD_KAFKA_MSG_F_COPY); timed
 *           from the first send to the end of rd_kafka_flush;
 *   mirror  a klog_mirror (fresh group) forwards the topic to a Kafka topic
 *           of 4 partitions; timed from klog_mirror_start to the poll
 *           after which every record is acknowledged by Kafka (it reads
 *           from klog, sends, and commits on the way).
 * Printed: records/s of each (median of --reps, min..max), and the ratio
 * mirror/plain.  The targets (ratio >= 0.8, >= 500,000 records/s)
 * are printed beside them, never checked: --quick runs a small N once, for
 * `meson test --suite bench`, to see that it works.
 *
 *   bench_mirror [--dir DIR] [--reps N] [--quick] [--only mock|serve]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <klog/klog.h>
#include <klog/mirror.h>
#include <klog/server.h>

#include "bench_util.h"

#define PROG "bench_mirror"
#define PARTS 4
#define VALUE 100
#define MAX_REPS 15

static bu_args args = { .base = "/tmp" };
static int64_t nrec;
static klog *src;
static char payload[VALUE];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, PROG ": %s: %s\n", what, why);
    exit(1);
}

/* The mirror's librdkafka settings, for the plain producer too. */
static const char *const kafka_conf[] = {
    "enable.idempotence", "true", "acks", "all", "linger.ms", "5", "queue.buffering.max.kbytes", "65536",
    "message.timeout.ms", "0", NULL,
};

/* ---- the records, in klog ------------------------------------------------ */

static void fill_source(void)
{
    char dir[4200], err[256] = "";
    snprintf(dir, sizeof dir, "%s/src", args.dir);
    if (klog_open(&src, dir, NULL, err, sizeof err) < 0)
        die("klog_open", err);
    if (klog_topic_create(src, "b", PARTS, NULL, err, sizeof err) < 0)
        die("klog_topic_create", err);
    klog_producer *p;
    if (klog_producer_new(src, NULL, &p, err, sizeof err) < 0)
        die("klog_producer_new", err);
    memset(payload, 'v', sizeof payload);
    for (int64_t i = 0; i < nrec; i++) {
        klog_record r = KLOG_RECORD_INIT;
        r.partition = (int32_t)(i % PARTS);
        r.value = payload;
        r.value_len = VALUE;
        int rc;
        while ((rc = klog_producer_send(p, "b", &r)) == KLOG_EQUEUEFULL)
            klog_producer_flush(p, 100);
        if (rc < 0)
            die("klog_producer_send", klog_strerror(rc));
    }
    if (klog_producer_close(p) < 0)
        die("klog_producer_close", "a record was not written");
}

/* ---- plain librdkafka ------------------------------------------------------ */

static atomic_llong plain_ok, plain_err;

static void plain_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err)
        atomic_fetch_add(&plain_err, 1);
    else
        atomic_fetch_add(&plain_ok, 1);
}

static double run_plain(const char *boot, const char *topic)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    for (const char *const *k = kafka_conf; *k; k += 2)
        rd_kafka_conf_set(c, k[0], k[1], err, sizeof err);
    rd_kafka_conf_set(c, "bootstrap.servers", boot, err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(c, plain_dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk)
        die("rd_kafka_new", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0) /* connected, untimed */
        rd_kafka_metadata_destroy(md);
    atomic_store(&plain_ok, 0);
    atomic_store(&plain_err, 0);
    double t0 = now_s();
    for (int64_t i = 0; i < nrec; i++) {
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION((int32_t)(i % PARTS)),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(payload, VALUE),
                                      RD_KAFKA_V_KEY(NULL, 0), RD_KAFKA_V_TIMESTAMP(0), RD_KAFKA_V_HEADERS(NULL),
                                      RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 1);
        if (e)
            die("rd_kafka_producev", rd_kafka_err2str(e));
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 600000) != 0)
        die("rd_kafka_flush", "timed out");
    double dt = now_s() - t0;
    if (atomic_load(&plain_ok) != nrec || atomic_load(&plain_err))
        die("plain producer", "not every record was acknowledged");
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return (double)nrec / dt;
}

/* ---- the mirror ------------------------------------------------------------ */

/* The mirror's log lines only with BENCH_MIRROR_VERBOSE set. */
static void quiet(void *opaque, const char *line)
{
    (void)opaque;
    if (getenv("BENCH_MIRROR_VERBOSE"))
        fprintf(stderr, "mirror: %s\n", line);
}

static double run_mirror(const char *side, const char *boot, const char *topic, int rep)
{
    char err[1024] = "", group[64], rename[128];
    snprintf(group, sizeof group, "bench-%s-%s-%d", side, topic, rep); /* a group of its own: from offset 0 */
    snprintf(rename, sizeof rename, "b:%s", topic);
    klog_mirror *m;
    if (klog_mirror_new(&m, src, err, sizeof err) < 0)
        die("klog_mirror_new", err);
    klog_mirror_set_log_cb(m, quiet, NULL);
    const char *keys[] = { "mirror.to", boot, "mirror.topics", "b", "mirror.rename", rename, "mirror.group.id", group,
                           NULL };
    for (const char *const *k = keys; *k; k += 2)
        if (klog_mirror_set(m, k[0], k[1], err, sizeof err) < 0)
            die(k[0], err);
    double t0 = now_s();
    if (klog_mirror_start(m, err, sizeof err) < 0)
        die("klog_mirror_start", err);
    klog_mirror_stats s = { .struct_size = sizeof s };
    for (int i = 0; i < 10000000; i++) {
        int rc = klog_mirror_poll(m, 5, err, sizeof err); /* short: the end is seen at once */
        if (rc < 0)
            die("klog_mirror_poll", err);
        klog_mirror_stats_get(m, &s);
        if (s.forwarded >= (uint64_t)nrec && s.in_flight == 0)
            break;
        if (now_s() - t0 > 600)
            die("mirror", "not done in 600 s");
        if (getenv("BENCH_MIRROR_VERBOSE") && i % 10 == 0)
            fprintf(stderr, "forwarded %" PRIu64 " in flight %" PRIu64 " lag %" PRId64 " link %d\n", s.forwarded,
                    s.in_flight, s.lag, s.link_up);
    }
    double dt = now_s() - t0;
    klog_mirror_free(m);
    return (double)nrec / dt;
}

/* ---- a side: alternate the two, print medians ------------------------------ */

static void compare(const char *tag, const char *side, const char *boot, void (*make_topic)(void *, const char *),
                    void *arg)
{
    double plain[MAX_REPS], mirror[MAX_REPS], ratio[MAX_REPS];
    for (int r = 0; r < args.reps; r++) {
        char tp[64], tm[64];
        snprintf(tp, sizeof tp, "plain-%d", r);
        snprintf(tm, sizeof tm, "mirror-%d", r);
        make_topic(arg, tp);
        make_topic(arg, tm);
        if (r % 2 == 0) {
            plain[r] = run_plain(boot, tp);
            mirror[r] = run_mirror(tag, boot, tm, r);
        } else {
            mirror[r] = run_mirror(tag, boot, tm, r);
            plain[r] = run_plain(boot, tp);
        }
        ratio[r] = mirror[r] / plain[r];
    }
    double pm[MAX_REPS], mm[MAX_REPS];
    memcpy(pm, plain, sizeof pm);
    memcpy(mm, mirror, sizeof mm);
    double pmed = bu_median(pm, args.reps), mmed = bu_median(mm, args.reps), rmed = bu_median(ratio, args.reps);
    printf("%s: %" PRId64 " records of %d bytes, %d partitions, %d run%s\n", side, nrec, VALUE, PARTS, args.reps,
           args.reps == 1 ? "" : "s");
    printf("   plain librdkafka producer  %10.0f records/s (%.0f..%.0f)\n", pmed, pm[0], pm[args.reps - 1]);
    printf("   klog mirror                %10.0f records/s (%.0f..%.0f)   target >= 500000\n", mmed, mm[0],
           mm[args.reps - 1]);
    printf("   mirror / plain             %10.2f (%.2f..%.2f)               target >= 0.80\n", rmed, ratio[0],
           ratio[args.reps - 1]);
}

static void mock_topic(void *arg, const char *name)
{
    rd_kafka_mock_topic_create(arg, name, PARTS, 1);
}

static void section_mock(void)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "0", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk)
        die("rd_kafka_new", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    if (!mc)
        die("rd_kafka_mock_cluster_new", "failed");
    compare("mock", "to librdkafka's mock cluster (in-process, 1 broker)", rd_kafka_mock_cluster_bootstraps(mc), mock_topic,
            mc);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
}

static void klog_topic(void *arg, const char *name)
{
    char err[256] = "";
    if (klog_topic_create(arg, name, PARTS, NULL, err, sizeof err) < 0)
        die("klog_topic_create", err);
}

static void section_serve(void)
{
    char dir[4200], err[256] = "";
    snprintf(dir, sizeof dir, "%s/served", args.dir);
    klog *k;
    if (klog_open(&k, dir, NULL, err, sizeof err) < 0)
        die("klog_open (served)", err);
    klog_server *s;
    if (klog_server_new(&s, k, NULL, err, sizeof err) < 0 || klog_server_listen(s, "tcp://127.0.0.1:0") < 0 ||
        klog_server_start(s) < 0)
        die("klog_server", err[0] ? err : "could not serve on 127.0.0.1");
    const char *url = klog_server_listener_url(s, 0);
    char boot[128];
    snprintf(boot, sizeof boot, "%s", strstr(url, "://") ? strstr(url, "://") + 3 : url);
    compare("serve", "to klog serve (klog_server over tcp://127.0.0.1, same process)", boot, klog_topic, k);
    klog_server_free(s);
    klog_close(k);
}

int main(int argc, char **argv)
{
    static const bu_section sections[] = { { "mock", section_mock }, { "serve", section_serve } };
    int rc = bu_parse(argc, argv, PROG, sections, 2, false, 5, MAX_REPS, &args);
    if (rc)
        return rc;
    nrec = args.quick ? 20000 : 2000000;
    if (getenv("BENCH_MIRROR_RECORDS"))
        nrec = atoll(getenv("BENCH_MIRROR_RECORDS"));
    fill_source();
    printf(PROG ": klog mirror (klog/mirror.h, librdkafka %s) beside a plain librdkafka producer\n",
           rd_kafka_version_str());
    bu_run(sections, 2, &args);
    klog_close(src);
    bu_cleanup(PROG, &args);
    return 0;
}
