/*
 * bench/bench_serve.c - Kafka's own C client (librdkafka) against
 * `klog serve`, each figure beside its baseline measured in the same run
 * (issue 14, "Measured").  The bench starts `klog serve` itself on a fresh
 * directory (tcp://127.0.0.1:0), talks to it over loopback with one
 * librdkafka client at a time, and stops it by its PID at the end.
 *
 * Sections (--only NAME runs one):
 *   produce   1,000,000 records of 100 bytes (no key) from one librdkafka
 *             producer, acks=1, linger.ms=5, batch.size=1000000,
 *             batch.num.messages=10000, no compression: first produce call
 *             to flush() returning.  Baseline: a raw loopback TCP stream of
 *             the same bytes (the producer's tx_bytes, from its statistics)
 *             written in 1 MiB writes to a thread that drains them.
 *   consume   one librdkafka consumer (assign, no group) reads those
 *             1,000,000 records from the start, batches of up to 10,000
 *             from its queue, touching one byte of each value.  Baseline:
 *             the raw loopback stream of the consumer's rx_bytes.
 *   durable   acks=all at one batch size: 300 rounds of "send 1000 records,
 *             flush", through the server (librdkafka, linger.ms=5) and
 *             in-process (klog_producer, acks=all, linger.ms=5,
 *             batch.size=1000000, in this process, a directory of its own
 *             on the same file system), paired round by round in
 *             alternating order, so that both see the disk at the same
 *             moment.  Ratio: server / in-process.
 *   latency   produce latency at 10,000 records/s: acks=1, linger.ms=0,
 *             Nagle off, sends paced on absolute deadlines, latency = the
 *             delivery report's arrival - the send (delivery reports served
 *             by a thread of their own); p50, p99, p99.9, max.  Baseline:
 *             a raw loopback TCP request/response (a 160-byte request, a
 *             16-byte answer from an echo thread) at the same pace: the
 *             network floor under a produce round trip.
 *
 * Throughput figures are the median of --reps runs (default 5); latency
 * runs once, its percentiles pool every sample.  Nothing is compared with
 * a target here: the targets are printed beside the figures for
 * the reader (bench/RESULTS.md holds the figures of a quiet machine).
 * --quick shrinks everything so that `meson test --suite bench` checks only
 * that it runs.  Everything lives under DIR/bench_serve.<pid>/, removed at
 * the end.
 *
 *   bench_serve [--dir DIR] [--reps N] [--quick] [--only NAME]
 *   (KLOG_BIN in the environment overrides the klog tool it starts)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>
#include <librdkafka/rdkafka.h>

#include "bench_util.h"

#ifndef KLOG_CLI
#define KLOG_CLI "klog"
#endif

#define VAL_LEN 100
#define RAW_CHUNK (1u << 20)
#define MAX_REPS 31

static bu_args g_a = { .base = "/tmp/klog-bench-serve" };
static char g_bootstrap[256];
static pid_t g_server = -1;
static klog *g_k;            /* the in-process instance (durable) */
static uint8_t g_val[VAL_LEN];
static uint8_t *g_chunk;
static volatile uint64_t g_sink;
static unsigned g_topic_seq;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_serve: %s: %s\n", what, why);
    if (g_server > 0)
        kill(g_server, SIGKILL);
    exit(1);
}

static void die_rc(const char *what, int rc)
{
    die(what, klog_strerror(rc));
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double secs_since(uint64_t t0)
{
    return (double)(now_ns() - t0) / 1e9;
}

/* ---- klog serve, started and stopped by PID ---------------------------------- */

static void server_start(void)
{
    const char *bin = getenv("KLOG_BIN");
    if (!bin || !*bin)
        bin = KLOG_CLI;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/serve", g_a.dir);
    char *argv[] = { (char *)bin, "-d", dir, "serve", "--listen", "tcp://127.0.0.1:0", "-q", NULL };
    static const char *const schemes[] = { "tcp" };
    char addr[1][256];
    const char *why;
    g_server = bu_serve_start(argv, schemes, addr, 1, &why);
    if (g_server < 0)
        die("klog serve", why);
    snprintf(g_bootstrap, sizeof g_bootstrap, "%s", addr[0]);
}

static void server_stop(void)
{
    if (g_server <= 0)
        return;
    int st = bu_child_stop(g_server);
    g_server = -1;
    if (st < 0)
        die("klog serve", "did not exit within 30 s of SIGTERM");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_serve: klog serve ended with status %d\n", st);
        exit(1);
    }
}

/* ---- librdkafka helpers -------------------------------------------------------- */

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
        die(k, err);
}

/* Totals of the client's last statistics: what it sent and received. */
typedef struct {
    _Atomic uint64_t tx_bytes, rx_bytes;
    _Atomic int seen;
} rstats;

static const char *json_val(const char *from, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *s = strstr(from, pat);
    if (!s)
        return NULL;
    s += strlen(pat);
    s += strspn(s, " \t\n");
    if (*s != ':')
        return NULL;
    return s + 1 + strspn(s + 1, " \t\n");
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk, (void)len;
    rstats *st = opaque;
    const char *v;
    /* "tx_bytes" and "rx_bytes" are the top level's totals (a broker's
     * own are "txbytes" and "rxbytes") */
    if ((v = json_val(json, "tx_bytes")))
        atomic_store(&st->tx_bytes, strtoull(v, NULL, 10));
    if ((v = json_val(json, "rx_bytes")))
        atomic_store(&st->rx_bytes, strtoull(v, NULL, 10));
    atomic_fetch_add(&st->seen, 1);
    return 0;
}

/* Serve callbacks until one more statistics report than `seen` came. */
static void stats_wait(rd_kafka_t *rk, rstats *st, bool consumer)
{
    int want = atomic_load(&st->seen) + 2;
    uint64_t end = now_ns() + 5000000000ull;
    while (atomic_load(&st->seen) < want && now_ns() < end) {
        (void)consumer;
        rd_kafka_poll(rk, 50); /* statistics are served on the main queue */
    }
}

static _Atomic uint64_t g_dr_errors, g_dr_count;

static void dr_count_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err && atomic_fetch_add(&g_dr_errors, 1) == 0)
        fprintf(stderr, "bench_serve: delivery failed: %s\n", rd_kafka_err2str(m->err));
    atomic_fetch_add(&g_dr_count, 1);
}

static rd_kafka_t *producer_new(const char *const *kv, rstats *st, void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *))
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", g_bootstrap);
    set(c, "client.id", "bench_serve");
    for (; kv && kv[0]; kv += 2)
        set(c, kv[0], kv[1]);
    if (st) {
        set(c, "statistics.interval.ms", "100");
        rd_kafka_conf_set_stats_cb(c, stats_cb);
        rd_kafka_conf_set_opaque(c, st);
    }
    rd_kafka_conf_set_dr_msg_cb(c, dr ? dr : dr_count_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk)
        die("rd_kafka_new", err);
    return rk;
}

static void produce_one(rd_kafka_t *rk, const char *topic, void *opaque)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                                  RD_KAFKA_V_VALUE(g_val, VAL_LEN), RD_KAFKA_V_OPAQUE(opaque),
                                                  RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            die("rd_kafka_producev", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 1);
    }
}

static void flush_all(rd_kafka_t *rk)
{
    rd_kafka_resp_err_t e = rd_kafka_flush(rk, 120000);
    if (e)
        die("rd_kafka_flush", rd_kafka_err2str(e));
    if (atomic_load(&g_dr_errors))
        die("produce", "delivery reports with errors");
}

/* A topic of one partition, made by producing one record to it (the server
 * creates it: auto.create.topics.enable) and flushing. */
static void topic_new(char *name, size_t cap, const char *prefix)
{
    snprintf(name, cap, "%s-%u", prefix, ++g_topic_seq);
    static const char *const kv[] = { "acks", "1", "linger.ms", "0", NULL };
    rd_kafka_t *rk = producer_new(kv, NULL, NULL);
    produce_one(rk, name, NULL);
    flush_all(rk);
    rd_kafka_destroy(rk);
}

/* ---- the raw loopback stream ------------------------------------------------------ */

typedef struct {
    int lfd;
    uint64_t bytes;
} rawrd;

static void *raw_reader(void *arg)
{
    rawrd *a = arg;
    int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        die("accept", strerror(errno));
    uint8_t *buf = malloc(RAW_CHUNK);
    if (!buf)
        die("malloc", "raw reader");
    uint64_t got = 0, s = 0;
    while (got < a->bytes) {
        ssize_t r = recv(fd, buf, RAW_CHUNK, 0);
        if (r <= 0)
            die("raw stream recv", r < 0 ? strerror(errno) : "EOF");
        got += (uint64_t)r;
        s += buf[0];
    }
    g_sink += s;
    free(buf);
    close(fd);
    return NULL;
}

static int listen_local(uint16_t *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
        die("raw listener", strerror(errno));
    *port = ntohs(a.sin_port);
    return lfd;
}

static int connect_local(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("raw connect", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* `bytes` over a fresh loopback TCP connection in 1 MiB writes, to a thread
 * that drains them: seconds from the first write to the last byte read. */
static double raw_stream(uint64_t bytes)
{
    uint16_t port;
    rawrd a = { listen_local(&port), bytes };
    pthread_t th;
    if (pthread_create(&th, NULL, raw_reader, &a) != 0)
        die("pthread_create", "raw reader");
    int fd = connect_local(port);
    bu_prefault(g_chunk, RAW_CHUNK);
    uint64_t t0 = now_ns();
    for (uint64_t off = 0; off < bytes;) {
        size_t n = bytes - off < RAW_CHUNK ? (size_t)(bytes - off) : RAW_CHUNK;
        ssize_t w = send(fd, g_chunk, n, MSG_NOSIGNAL);
        if (w <= 0)
            die("raw stream send", strerror(errno));
        off += (uint64_t)w;
    }
    pthread_join(th, NULL);
    double s = secs_since(t0);
    close(fd);
    close(a.lfd);
    return s;
}

/* ---- 1: produce ---------------------------------------------------------------- */

static const char *const k_produce_kv[] = {
    "acks", "1", "linger.ms", "5", "batch.size", "1000000", "batch.num.messages", "10000",
    "queue.buffering.max.messages", "2000000", "queue.buffering.max.kbytes", "2097151",
    "compression.type", "none", "enable.idempotence", "false", NULL
};

static uint64_t g_records;
static char g_consume_topic[64];   /* what produce left for consume */

/* One timed run into a fresh topic; *wire gets the producer's tx_bytes. */
static double produce_run(uint64_t records, char *topic, size_t tcap, uint64_t *wire)
{
    topic_new(topic, tcap, "produce");
    rstats st = { 0 };
    rd_kafka_t *rk = producer_new(k_produce_kv, &st, NULL);
    /* connected and warm before the clock starts: one record, flushed */
    produce_one(rk, topic, NULL);
    flush_all(rk);
    stats_wait(rk, &st, false);
    uint64_t tx0 = atomic_load(&st.tx_bytes);
    atomic_store(&g_dr_count, 0);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < records; i++) {
        produce_one(rk, topic, NULL);
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    flush_all(rk);
    double s = secs_since(t0);
    if (atomic_load(&g_dr_count) != records)
        die("produce", "delivery reports missing");
    stats_wait(rk, &st, false);
    *wire = atomic_load(&st.tx_bytes) - tx0;
    rd_kafka_destroy(rk);
    return s;
}

/* CPU seconds (user + system, all threads) of this process and of the
 * server, so that a run says which side was the bottleneck. */
static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double server_cpu(void)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)g_server);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void section_produce(void)
{
    uint64_t n = g_records;
    double kl[MAX_REPS], raw[MAX_REPS];
    uint64_t wire = 0;
    char topic[64];
    double ccpu = 0, scpu = 0, wall = 0;
    for (int r = 0; r < g_a.reps; r++) {
        double c0 = self_cpu(), s0 = server_cpu();
        kl[r] = produce_run(n, topic, sizeof topic, &wire);
        ccpu += self_cpu() - c0;
        scpu += server_cpu() - s0;
        wall += kl[r];
        raw[r] = raw_stream(wire);
    }
    memcpy(g_consume_topic, topic, sizeof topic); /* the last run's topic: n + 1 records */
    double tk = bu_median(kl, g_a.reps), tr = bu_median(raw, g_a.reps);
    double mb = (double)wire / 1e6;
    printf("produce: %" PRIu64 " records, 100-byte values, no key, one librdkafka producer, acks=1 linger.ms=5\n"
           "  batch.size=1000000 batch.num.messages=10000, loopback, %.1f MB on the wire\n", n, mb);
    printf("  raw loopback TCP stream (same bytes)  %8.3f M rec/s %7.0f MB/s\n", n / tr / 1e6, mb / tr);
    printf("  librdkafka -> klog serve              %8.3f M rec/s %7.0f MB/s   ratio to raw %.2f\n", n / tk / 1e6,
           mb / tk, tr / tk);
    printf("  CPU over the timed runs: librdkafka (this process) %.0f%% of a core, klog serve %.0f%%\n", 100 * ccpu / wall,
           100 * scpu / wall);
    printf("  (issue targets: >= 1,000,000 records/s and >= 0.5 of raw; Kafka's published figure for one\n"
           "   producer is 821,557 records/s of 100 bytes)\n\n");
}

/* ---- 2: consume ---------------------------------------------------------------- */

static double consume_run(const char *topic, uint64_t records, uint64_t *wire)
{
    char err[512];
    rstats st = { 0 };
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", g_bootstrap);
    set(c, "group.id", "bench_serve");  /* required by the API; no subscribe, no commit */
    set(c, "enable.auto.commit", "false");
    set(c, "enable.auto.offset.store", "false");
    set(c, "fetch.wait.max.ms", "100");
    set(c, "queued.min.messages", "1000000");
    set(c, "statistics.interval.ms", "100");
    rd_kafka_conf_set_stats_cb(c, stats_cb);
    rd_kafka_conf_set_opaque(c, &st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk)
        die("rd_kafka_new consumer", err);
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    /* offset 0, not OFFSET_BEGINNING: librdkafka's offset query for a
     * logical offset can wait out a 500 ms retry timer when it races the
     * partition's broker thread, which would dominate a short run */
    rd_kafka_topic_partition_list_add(tl, topic, 0)->offset = 0;
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    rd_kafka_message_t *msgs[10000];
    uint64_t got = 0, s = 0;
    uint64_t t0 = now_ns(), end = t0 + 300000000000ull;
    if (rd_kafka_assign(rk, tl))
        die("rd_kafka_assign", topic);
    rd_kafka_topic_partition_list_destroy(tl);
    uint64_t first = 0;
    while (got < records) {
        if (!first && got)
            first = now_ns();
        if (now_ns() > end)
            die("consume", "not every record within 300 s");
        /* never ask for more than is left: a batch returns when full or
         * at its timeout */
        size_t want = records - got < 10000 ? (size_t)(records - got) : 10000;
        ssize_t n = rd_kafka_consume_batch_queue(q, 1000, msgs, want);
        if (n < 0)
            die("rd_kafka_consume_batch_queue", rd_kafka_err2str(rd_kafka_last_error()));
        for (ssize_t i = 0; i < n; i++) {
            if (msgs[i]->err) {
                if (msgs[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    die("consume", rd_kafka_message_errstr(msgs[i]));
            } else {
                s += ((const uint8_t *)msgs[i]->payload)[0];
                got++;
            }
            rd_kafka_message_destroy(msgs[i]);
        }
    }
    double secs = secs_since(t0);
    if (getenv("BENCH_SERVE_DEBUG"))
        fprintf(stderr, "consume: first record after %.3f s, all after %.3f s\n", (double)(first - t0) / 1e9, secs);
    g_sink += s;
    stats_wait(rk, &st, true);
    *wire = atomic_load(&st.rx_bytes);
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return secs;
}

static void section_consume(void)
{
    uint64_t n = g_records;
    if (!g_consume_topic[0]) { /* --only consume: fill a topic first, untimed */
        uint64_t wire;
        (void)produce_run(n, g_consume_topic, sizeof g_consume_topic, &wire);
    }
    n += 2; /* produce_run's topic also holds the creating record and the warm-up one */
    double kl[MAX_REPS], raw[MAX_REPS];
    uint64_t wire = 0;
    double ccpu = 0, scpu = 0, wall = 0;
    for (int r = 0; r < g_a.reps; r++) {
        double c0 = self_cpu(), s0 = server_cpu();
        kl[r] = consume_run(g_consume_topic, n, &wire);
        ccpu += self_cpu() - c0;
        scpu += server_cpu() - s0;
        wall += kl[r];
        raw[r] = raw_stream(wire);
    }
    double tk = bu_median(kl, g_a.reps), tr = bu_median(raw, g_a.reps);
    double mb = (double)wire / 1e6;
    printf("consume: %" PRIu64 " records of 100 bytes from the start, one librdkafka consumer (assign, batches of\n"
           "  up to 10,000 from its queue), loopback, %.1f MB received\n", n, mb);
    printf("  raw loopback TCP stream (same bytes)  %8.3f M rec/s %7.0f MB/s\n", n / tr / 1e6, mb / tr);
    printf("  klog serve -> librdkafka              %8.3f M rec/s %7.0f MB/s   ratio to raw %.2f\n", n / tk / 1e6,
           mb / tk, tr / tk);
    printf("  CPU over the timed runs: librdkafka (this process) %.0f%% of a core, klog serve %.0f%%\n", 100 * ccpu / wall,
           100 * scpu / wall);
    printf("  (issue target: >= 2,000,000 records/s)\n\n");
}

/* ---- 3: durable ---------------------------------------------------------------- */

static void klog_conf_kv(klog_conf *c, const char *const *kv)
{
    for (; kv[0]; kv += 2) {
        char err[256] = "";
        int rc = klog_conf_set(c, kv[0], kv[1], err, sizeof err);
        if (rc)
            die(kv[0], err);
    }
}

static void section_durable(void)
{
    const uint64_t per = 1000, rounds = g_a.quick ? 10 : 300;
    static const char *const rk_kv[] = { "acks", "all", "linger.ms", "5", "batch.size", "1000000",
                                         "batch.num.messages", "10000", "enable.idempotence", "false", NULL };
    static const char *const kl_kv[] = { "acks", "all", "linger.ms", "5", "batch.size", "1000000", NULL };
    double srv[MAX_REPS], inp[MAX_REPS], nosync[MAX_REPS];
    for (int r = 0; r < g_a.reps; r++) {
        char topic[64];
        topic_new(topic, sizeof topic, "durable");
        rd_kafka_t *rk = producer_new(rk_kv, NULL, NULL);
        /* the in-process side: its own topic in its own instance */
        char ktopic[64], err[256] = "";
        snprintf(ktopic, sizeof ktopic, "durable-%d", r);
        int rc = klog_topic_create(g_k, ktopic, 1, NULL, err, sizeof err);
        if (rc)
            die("klog_topic_create", err);
        klog_conf *c;
        if ((rc = klog_conf_new(&c)))
            die_rc("klog_conf_new", rc);
        klog_conf_kv(c, kl_kv);
        klog_producer *p;
        if ((rc = klog_producer_new(g_k, c, &p, err, sizeof err)))
            die("klog_producer_new", err);
        klog_conf_free(c);
        klog_record rec = KLOG_RECORD_INIT;
        rec.partition = 0;
        rec.value = g_val;
        rec.value_len = VAL_LEN;
        /* one untimed round each: connections, files, buffers */
        for (uint64_t i = 0; i < per; i++) {
            produce_one(rk, topic, NULL);
            if ((rc = klog_producer_send(p, ktopic, &rec)))
                die_rc("klog_producer_send", rc);
        }
        flush_all(rk);
        if ((rc = klog_producer_flush(p, -1)))
            die_rc("klog_producer_flush", rc);
        /* A third leg, librdkafka with acks=1 to the same server: what a
         * round costs the client and the wire without any fsync, so that
         * the acks=all gap can be put where it belongs. */
        static const char *const rk1_kv[] = { "acks", "1", "linger.ms", "5", "batch.size", "1000000",
                                              "batch.num.messages", "10000", "enable.idempotence", "false", NULL };
        char topic1[64];
        topic_new(topic1, sizeof topic1, "nosync");
        rd_kafka_t *rk1 = producer_new(rk1_kv, NULL, NULL);
        for (uint64_t i = 0; i < per; i++)
            produce_one(rk1, topic1, NULL);
        flush_all(rk1);
        double ts = 0, ti = 0, t1 = 0;
        for (uint64_t b = 0; b < rounds; b++) {
            for (int leg = 0; leg < 3; leg++) {
                uint64_t t0 = now_ns();
                int which = (leg + (int)(b % 3)) % 3;
                if (which == 0) {
                    for (uint64_t i = 0; i < per; i++)
                        produce_one(rk, topic, NULL);
                    flush_all(rk);
                    ts += secs_since(t0);
                } else if (which == 1) {
                    for (uint64_t i = 0; i < per; i++)
                        if ((rc = klog_producer_send(p, ktopic, &rec)))
                            die_rc("klog_producer_send", rc);
                    if ((rc = klog_producer_flush(p, -1)))
                        die_rc("klog_producer_flush", rc);
                    ti += secs_since(t0);
                } else {
                    for (uint64_t i = 0; i < per; i++)
                        produce_one(rk1, topic1, NULL);
                    flush_all(rk1);
                    t1 += secs_since(t0);
                }
            }
        }
        rd_kafka_destroy(rk1);
        nosync[r] = t1;
        srv[r] = ts;
        inp[r] = ti;
        rd_kafka_destroy(rk);
        if ((rc = klog_producer_close(p)))
            die_rc("klog_producer_close", rc);
        if ((rc = klog_topic_delete(g_k, ktopic)))
            die_rc("klog_topic_delete", rc);
    }
    double ts = bu_median(srv, g_a.reps), ti = bu_median(inp, g_a.reps), t1 = bu_median(nosync, g_a.reps);
    double recs = (double)(rounds * per);
    printf("durable: acks=all, %" PRIu64 " rounds of (send %" PRIu64 " records of 100 bytes, flush), one thread,\n"
           "  linger.ms=5 batch.size=1000000; each round runs the three legs below in rotating order\n",
           rounds, per);
    printf("  in-process klog_producer (acks=all)   %9.0f rec/s %8.1f us/round\n", recs / ti, ti / (double)rounds * 1e6);
    printf("  librdkafka -> klog serve (acks=all)   %9.0f rec/s %8.1f us/round   ratio to in-process %.2f\n", recs / ts,
           ts / (double)rounds * 1e6, ti / ts);
    printf("  librdkafka -> klog serve (acks=1)     %9.0f rec/s %8.1f us/round   (no fsync: the client and the wire)\n",
           recs / t1, t1 / (double)rounds * 1e6);
    printf("  (issue target: >= 0.8 of the in-process figure)\n\n");
}

/* ---- 4: latency ---------------------------------------------------------------- */

typedef struct {
    uint64_t *lat;
    _Atomic size_t n;
    size_t cap;
    uint64_t record_from;    /* sends before this are warm-up */
    _Atomic bool stop;
    rd_kafka_t *rk;
    int fd;                  /* raw: the client's socket */
    _Atomic uint64_t got;
} latrun;

static latrun *g_lat;

static void lat_note(latrun *L, uint64_t sent, uint64_t now)
{
    size_t n = atomic_load(&L->n);
    if (sent >= L->record_from && n < L->cap) {
        L->lat[n] = now - sent;
        atomic_store(&L->n, n + 1);
    }
    atomic_fetch_add(&L->got, 1);
}

static void dr_lat_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    uint64_t now = now_ns();
    if (m->err)
        die("latency: delivery failed", rd_kafka_err2str(m->err));
    lat_note(g_lat, (uint64_t)(uintptr_t)m->_private, now);
}

static void *lat_poller(void *arg)
{
    latrun *L = arg;
    while (!atomic_load(&L->stop))
        rd_kafka_poll(L->rk, 100);
    return NULL;
}

/* raw baseline: an echo thread answers each 160-byte request with its first 16 bytes */
static void *raw_echo(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        die("accept", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t req[160];
    for (;;) {
        size_t have = 0;
        while (have < sizeof req) {
            ssize_t r = recv(fd, req + have, sizeof req - have, 0);
            if (r <= 0) {
                close(fd);
                return NULL;
            }
            have += (size_t)r;
        }
        if (send(fd, req, 16, MSG_NOSIGNAL) != 16)
            die("echo send", strerror(errno));
    }
}

static void *raw_answers(void *arg)
{
    latrun *L = arg;
    uint8_t resp[16];
    for (;;) {
        size_t have = 0;
        while (have < sizeof resp) {
            ssize_t r = recv(L->fd, resp + have, sizeof resp - have, 0);
            if (r <= 0)
                return NULL;
            have += (size_t)r;
        }
        uint64_t sent;
        memcpy(&sent, resp, sizeof sent);
        lat_note(L, sent, now_ns());
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)n + 0.999999);
    i = i == 0 ? 0 : i - 1;
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e3;
}

static void pace_until(uint64_t t)
{
    struct timespec ts = { (time_t)(t / 1000000000u), (long)(t % 1000000000u) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* One paced run at `rate`/s through klog serve (use_server) or the raw
 * echo; prints one line. */
static void latency_run(const char *label, unsigned rate, double warm, double secs, bool use_server)
{
    latrun L = { 0 };
    uint64_t interval = 1000000000u / rate, count = (uint64_t)((warm + secs) * rate);
    L.cap = (size_t)count;
    L.lat = calloc(L.cap, sizeof *L.lat);
    if (!L.lat)
        die("malloc", "latency samples");
    bu_prefault(L.lat, L.cap * sizeof *L.lat);
    L.record_from = UINT64_MAX; /* nothing counts until the clock starts */
    g_lat = &L;
    char topic[64];
    pthread_t th, echo;
    int lfd = -1;
    if (use_server) {
        static const char *const kv[] = { "acks", "1", "linger.ms", "0", "socket.nagle.disable", "true",
                                          "enable.idempotence", "false", NULL };
        topic_new(topic, sizeof topic, "latency");
        L.rk = producer_new(kv, NULL, dr_lat_cb);
        produce_one(L.rk, topic, (void *)(uintptr_t)0); /* connected: sample 0 is warm-up */
        flush_all(L.rk);
        atomic_store(&L.got, 0);
        if (pthread_create(&th, NULL, lat_poller, &L) != 0)
            die("pthread_create", "poller");
    } else {
        uint16_t port;
        lfd = listen_local(&port);
        if (pthread_create(&echo, NULL, raw_echo, (void *)(intptr_t)lfd) != 0)
            die("pthread_create", "echo");
        L.fd = connect_local(port);
        if (pthread_create(&th, NULL, raw_answers, &L) != 0)
            die("pthread_create", "answers");
    }
    uint64_t t0 = now_ns() + 1000000;
    L.record_from = t0 + (uint64_t)(warm * 1e9);
    uint64_t late = 0;
    uint8_t req[160];
    memset(req, 'r', sizeof req);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t due = t0 + i * interval;
        pace_until(due);
        uint64_t sent = now_ns();
        if (sent > due + interval)
            late++;
        if (use_server) {
            produce_one(L.rk, topic, (void *)(uintptr_t)sent);
        } else {
            memcpy(req, &sent, sizeof sent);
            if (send(L.fd, req, sizeof req, MSG_NOSIGNAL) != (ssize_t)sizeof req)
                die("raw send", strerror(errno));
        }
    }
    double took = secs_since(t0);
    uint64_t end = now_ns() + 60000000000ull;
    while (atomic_load(&L.got) < count && now_ns() < end)
        usleep(1000);
    if (atomic_load(&L.got) < count)
        die("latency", "answers missing after 60 s");
    if (use_server) {
        atomic_store(&L.stop, true);
        pthread_join(th, NULL);
        rd_kafka_destroy(L.rk);
    } else {
        shutdown(L.fd, SHUT_RDWR);
        close(L.fd);
        pthread_join(th, NULL);
        pthread_join(echo, NULL);
        close(lfd);
    }
    size_t n = atomic_load(&L.n);
    qsort(L.lat, n, sizeof *L.lat, cmp_u64);
    printf("  %-34s %7.0f/s sent %7zu samples  p50 %7.1f  p99 %7.1f  p99.9 %8.1f  max %8.1f us%s\n", label,
           (double)count / took, n, pct_us(L.lat, n, 0.50), pct_us(L.lat, n, 0.99), pct_us(L.lat, n, 0.999),
           n ? (double)L.lat[n - 1] / 1e3 : 0.0, late > count / 100 ? "  (sender fell behind)" : "");
    free(L.lat);
    g_lat = NULL;
}

static void section_latency(void)
{
    const double warm = g_a.quick ? 0.02 : 0.5, secs = g_a.quick ? 0.1 : 5.0;
    printf("latency: produce at 10,000 records/s, 100-byte values, acks=1 linger.ms=0, Nagle off, paced on\n"
           "  absolute deadlines; %.2f s warm-up then %.2f s measured\n", warm, secs);
    latency_run("raw loopback request/response", 10000, warm, secs, false);
    latency_run("librdkafka -> klog serve, acks=1", 10000, warm, secs, true);
    printf("  (issue: record p50/p99)\n\n");
}

/* ---- main ---------------------------------------------------------------------- */

static const bu_section k_sections[] = {
    { "produce", section_produce },
    { "consume", section_consume },
    { "durable", section_durable },
    { "latency", section_latency },
};
#define NSECTIONS (sizeof k_sections / sizeof k_sections[0])

int main(int argc, char **argv)
{
    int prc = bu_parse(argc, argv, "bench_serve", k_sections, NSECTIONS, false, 5, MAX_REPS, &g_a);
    if (prc)
        return prc;
    signal(SIGPIPE, SIG_IGN);
    g_records = g_a.quick ? 20000 : 1000000;
    g_chunk = malloc(RAW_CHUNK);
    if (!g_chunk)
        die("malloc", "chunk");
    memset(g_chunk, 'x', RAW_CHUNK);
    for (size_t i = 0; i < VAL_LEN; i++)
        g_val[i] = (uint8_t)('a' + (i * 7) % 26);

    char kdir[4200], err[256] = "";
    snprintf(kdir, sizeof kdir, "%s/inproc", g_a.dir);
    int rc = klog_open(&g_k, kdir, NULL, err, sizeof err);
    if (rc)
        die("klog_open", err);
    server_start();
    const char *ver;
    klog_version(&ver);
    printf("bench_serve: klog %s, librdkafka %s, klog serve at %s (pid %d), dir %s, median of %d run(s)%s\n\n", ver,
           rd_kafka_version_str(), g_bootstrap, (int)g_server, g_a.base, g_a.reps,
           g_a.quick ? " (--quick: tiny sizes, checks only that it runs)" : "");
    fflush(stdout);
    bu_run(k_sections, NSECTIONS, &g_a);
    server_stop();
    if ((rc = klog_close(g_k)))
        die_rc("klog_close", rc);
    bu_cleanup("bench_serve", &g_a);
    free(g_chunk);
    return 0;
}
