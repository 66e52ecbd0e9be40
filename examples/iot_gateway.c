/*
 * examples/iot_gateway.c - a store-and-forward IoT gateway on klog's public
 * API, forwarding to an Apache Kafka cluster through klog's mirror.
 *
 * Simulated sensors produce JSON readings, each with its own sequence
 * number, keyed by sensor id, into the topic "readings" of a klog instance
 * whose disk is bounded: disk.budget.bytes with policy delete-oldest, small
 * segments so that each deletion frees a small slice.  A forwarder thread
 * drives a klog_mirror (klog/mirror.h, libklog-mirror): a member of the
 * consumer group "uplink-forwarder" that hands every reading to librdkafka's
 * idempotent producer and commits the group's offsets only once the Kafka
 * cluster has acknowledged them: at least once, each reading with its key,
 * headers and timestamp, to the partition of the same number.  While the
 * cluster is unreachable the mirror retries for ever and the readings pile
 * up on disk; when the budget is reached the oldest go first (a ring
 * buffer).  When the link returns, forwarding resumes from the last
 * committed offset, or from the start of the log if the budget deleted that
 * far: the mirror counts the readings deleted before they were forwarded
 * and logs their offsets ("gap: readings[P]: N records (offsets A..B) ...").
 *
 *   iot_gateway --dir DIR --kafka BOOTSTRAP [options]    run (until SIGTERM)
 *   iot_gateway --dir DIR --status                       print DIR's state
 *
 * Any Kafka cluster will do; `klog serve` on another directory is one:
 *   klog -d kafka-data serve --listen tcp://127.0.0.1:9092 &
 *   iot_gateway --dir gw-data --kafka 127.0.0.1:9092
 *
 * Sequence numbers survive restarts: at start the gateway reads the log (and
 * its last status file) for each sensor's highest sequence number and goes
 * on from there, so the readings of one sensor are numbered without gaps
 * even across kill -9 (readings still queued in the producer when the
 * process died were never acknowledged; their numbers are used again).
 *
 * While it runs, the gateway rewrites DIR/gateway.status every second;
 * --status prints that file when DIR is held by a running gateway, and
 * otherwise opens DIR and reports from the log itself.
 *
 * Exit status: 0; 1 on an error (a reading failed to be written, or the
 * mirror could not go on: a login refused, a record too large...); 2 for a
 * usage error.
 *
 * Only the public API (<klog/klog.h>, <klog/mirror.h>) is used, as an
 * application would.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>
#include <klog/mirror.h>

#define TOPIC "readings"
#define GROUP "uplink-forwarder"
#define STATUS_FILE "gateway.status"
#define MAX_PARTS 64
#define MAX_SENSORS 10000
#define MAX_SETS 32

static const char *prog = "iot_gateway";

/* ---- small helpers --------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int report_err(const char *what, int rc, const char *errbuf)
{
    fprintf(stderr, "%s: %s: %s (%s)\n", prog, what, errbuf && *errbuf ? errbuf : klog_strerror(rc),
            klog_err_name(rc));
    return rc;
}

static int set_conf(klog_conf *c, const char *key, const char *val)
{
    char err[256] = "";
    int rc = klog_conf_set(c, key, val, err, sizeof err);
    if (rc < 0)
        report_err(key, rc, err);
    return rc;
}

static int set_conf_int(klog_conf *c, const char *key, int64_t val)
{
    char err[256] = "";
    int rc = klog_conf_set_int(c, key, val, err, sizeof err);
    if (rc < 0)
        report_err(key, rc, err);
    return rc;
}

/* "12.3 KiB" */
static const char *fmt_bytes(char *buf, size_t cap, uint64_t b)
{
    if (b < 1024)
        snprintf(buf, cap, "%" PRIu64 " B", b);
    else if (b < 1024 * 1024)
        snprintf(buf, cap, "%.1f KiB", (double)b / 1024);
    else
        snprintf(buf, cap, "%.1f MiB", (double)b / (1024 * 1024));
    return buf;
}

/* ---- options ------------------------------------------------------------------------ */

typedef struct options {
    const char *dir, *kafka, *kafka_topic;
    const char *sets[MAX_SETS];  /* --set KEY=VALUE: mirror keys */
    int nsets;
    int sensors, partitions;
    double rate;              /* readings per second, per sensor */
    double duration;          /* seconds; 0 = until SIGTERM */
    double interval;          /* status line period, seconds */
    double drain;             /* at exit: seconds to go on forwarding what is left */
    uint64_t budget, segment_bytes;
    bool status, budget_set;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s --dir DIR --kafka BOOTSTRAP [options]\n"
            "       %s --dir DIR --status\n"
            "A store-and-forward gateway: simulated sensors write readings to the topic\n"
            "\"" TOPIC "\" on a bounded disk; klog's mirror forwards them to a Kafka cluster\n"
            "and commits (consumer group \"" GROUP "\") once Kafka has acknowledged them.\n"
            "\n"
            "  --dir DIR            data directory (created if missing)\n"
            "  --kafka BOOTSTRAP    the Kafka cluster (host:port,...; e.g. 127.0.0.1:9092)\n"
            "  --kafka-topic NAME   the Kafka topic (default \"" TOPIC "\"; created with the\n"
            "                       partitions of \"" TOPIC "\" if missing)\n"
            "  --set KEY=VALUE      a mirror key: kafka.security.protocol=SASL_SSL,\n"
            "                       kafka.sasl.username=..., mirror.commit.interval.ms=...\n"
            "  --sensors N          simulated sensors (default 4)\n"
            "  --rate R             readings per second per sensor (default 10)\n"
            "  --duration S         stop after S seconds (default: run until SIGTERM/SIGINT)\n"
            "  --budget BYTES       disk budget of the instance (default 67108864)\n"
            "  --segment-bytes N    segment size (default budget/16, 4096 .. 8388608)\n"
            "  --partitions N       partitions of \"" TOPIC "\" when created (default 2)\n"
            "  --interval S         status line period (default 2)\n"
            "  --drain S            at exit, keep forwarding up to S seconds (default 10)\n"
            "  --status             print disk use, offsets (start, end, committed) and\n"
            "                       counts, from the running gateway or from DIR, and exit\n",
            prog, prog);
}

static bool parse_num(const char *s, double min, double max, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= min && v <= max))
        return false;
    *out = v;
    return true;
}

/* Returns 0, or 2 after printing a usage error. */
static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){ .sensors = 4, .partitions = 2, .rate = 10, .interval = 2, .drain = 10,
                    .budget = 64u << 20 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        double v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--status")) {
            o->status = true;
            continue;
        } else if (!strcmp(a, "--dir") && val) {
            o->dir = val;
        } else if (!strcmp(a, "--kafka") && val) {
            o->kafka = val;
        } else if (!strcmp(a, "--kafka-topic") && val) {
            o->kafka_topic = val;
        } else if (!strcmp(a, "--set") && val && strchr(val, '=') && o->nsets < MAX_SETS) {
            o->sets[o->nsets++] = val;
        } else if (!strcmp(a, "--sensors") && parse_num(val, 1, MAX_SENSORS, &v)) {
            o->sensors = (int)v;
        } else if (!strcmp(a, "--partitions") && parse_num(val, 1, MAX_PARTS, &v)) {
            o->partitions = (int)v;
        } else if (!strcmp(a, "--rate") && parse_num(val, 0.01, 100000, &v)) {
            o->rate = v;
        } else if (!strcmp(a, "--duration") && parse_num(val, 0, 1e9, &v)) {
            o->duration = v;
        } else if (!strcmp(a, "--interval") && parse_num(val, 0.1, 3600, &v)) {
            o->interval = v;
        } else if (!strcmp(a, "--drain") && parse_num(val, 0, 3600, &v)) {
            o->drain = v;
        } else if (!strcmp(a, "--budget") && parse_num(val, 65536, 1e15, &v)) {
            o->budget = (uint64_t)v;
            o->budget_set = true;
        } else if (!strcmp(a, "--segment-bytes") && parse_num(val, 4096, 1 << 30, &v)) {
            o->segment_bytes = (uint64_t)v;
        } else {
            fprintf(stderr, "%s: %s: unknown option, or a missing or bad value\n", prog, a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!o->dir || (!o->status && !o->kafka)) {
        fprintf(stderr, "%s: --dir%s is required\n", prog, o->status ? "" : " and --kafka");
        usage(stderr);
        return 2;
    }
    if (!o->segment_bytes) {
        o->segment_bytes = o->budget / 16;
        if (o->segment_bytes < 4096)
            o->segment_bytes = 4096;
        if (o->segment_bytes > 8u << 20)
            o->segment_bytes = 8u << 20;
    }
    return 0;
}

/* ---- the shared state ------------------------------------------------------------------ */

typedef struct gateway {
    options o;
    klog *k;
    klog_producer *p;
    klog_mirror *m;
    int nparts;

    /* sensors: the sensor thread owns next_seq; the delivery callback
     * raises acked_seq (the highest sequence number the log holds) */
    uint64_t *next_seq;
    _Atomic int64_t *acked_seq;
    _Atomic uint64_t produced, produce_errors;
    _Atomic int first_produce_err;

    /* forwarder: the mirror's numbers come from klog_mirror_stats_get */
    _Atomic int mirror_err;           /* what stopped the mirror, or 0 */
    char mirror_msg[1024];            /* its message, set before mirror_err */
    _Atomic bool stop_sensors, stop_forwarder;
} gateway;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---- sensors --------------------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* The sensor index of a key "sensor-<n>"; -1 if not one. */
static int sensor_of_key(const void *key, size_t len)
{
    const char *k = key;
    if (!k || len < 8 || len > 12 || memcmp(k, "sensor-", 7))
        return -1;
    int n = 0;
    for (size_t i = 7; i < len; i++) {
        if (k[i] < '0' || k[i] > '9')
            return -1;
        n = n * 10 + (k[i] - '0');
    }
    return n < MAX_SENSORS ? n : -1;
}

/* The number after "\"seq\":" in a JSON value; false if absent. */
static bool json_seq(const void *v, size_t len, uint64_t *out)
{
    const char *p = v ? memmem(v, len, "\"seq\":", 6) : NULL;
    if (!p)
        return false;
    const char *end = (const char *)v + len;
    uint64_t x = 0;
    int digits = 0;
    for (p += 6; p < end && *p >= '0' && *p <= '9' && digits < 19; p++, digits++)
        x = x * 10 + (uint64_t)(*p - '0');
    *out = x;
    return digits > 0;
}

static void atomic_max(_Atomic int64_t *a, int64_t v)
{
    int64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

/* Delivery callback: on a producer or sending thread, no klog lock held.
 * Atomics only.  opaque = sensor << 48 | seq. */
static void on_delivery(void *arg, const klog_delivery *d)
{
    gateway *g = arg;
    uint64_t tag = (uint64_t)(uintptr_t)d->opaque;
    if (d->err) {
        int zero = 0;
        atomic_compare_exchange_strong(&g->first_produce_err, &zero, d->err);
        atomic_fetch_add(&g->produce_errors, 1);
        return;
    }
    atomic_max(&g->acked_seq[tag >> 48], (int64_t)(tag & ((1ull << 48) - 1)));
    atomic_fetch_add_explicit(&g->produced, 1, memory_order_relaxed);
}

/* One thread plays every sensor: sensors * rate readings a second, in turn. */
static void *sensor_main(void *arg)
{
    gateway *g = arg;
    uint64_t period_ns = (uint64_t)(1e9 / (g->o.rate * g->o.sensors));
    if (period_ns == 0)
        period_ns = 1;
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)wall_ms();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    char key[32], value[256];
    int s = 0;
    bool failed = false;
    while (!atomic_load(&g->stop_sensors)) {
        uint64_t seq = g->next_seq[s];
        int64_t ts = wall_ms();
        double phase = (double)ts / 60000.0 * 6.283185307 + s;
        double noise = (double)(xorshift(&rng) % 1000) / 1000.0 - 0.5;
        int klen = snprintf(key, sizeof key, "sensor-%d", s);
        int vlen = snprintf(value, sizeof value,
                            "{\"sensor\":\"%s\",\"seq\":%" PRIu64 ",\"ts\":%" PRId64
                            ",\"temp_c\":%.2f,\"rh_pct\":%.1f,\"battery_v\":%.3f}",
                            key, seq, ts, 21.0 + 3.0 * sin(phase) + noise, 45.0 + 10.0 * cos(phase) + noise,
                            3.7 - (double)(seq % 10000) / 100000.0);
        klog_record r = KLOG_RECORD_INIT;
        r.key = key;
        r.key_len = (size_t)klen;
        r.value = value;
        r.value_len = (size_t)vlen;
        r.timestamp = ts;
        r.opaque = (void *)(uintptr_t)((uint64_t)s << 48 | seq);
        int rc = klog_producer_send(g->p, TOPIC, &r);
        if (rc == 0) {
            g->next_seq[s] = seq + 1; /* a refused send keeps its number */
            s = (s + 1) % g->o.sensors;
            failed = false;
        } else if (!failed) {
            report_err("klog_producer_send", rc, NULL);
            failed = true;
        }
        /* Next tick; after a stall (a blocked send, a stopped process) do not
         * burst to catch up by more than a second's worth. */
        uint64_t t = (uint64_t)next.tv_sec * 1000000000u + (uint64_t)next.tv_nsec + period_ns;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t n = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
        if (t + 1000000000u < n)
            t = n;
        next.tv_sec = (time_t)(t / 1000000000u);
        next.tv_nsec = (long)(t % 1000000000u);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
            ;
    }
    return NULL;
}

/* ---- reading the log back: each sensor's highest sequence number ------------------------- */

/* Raise last[s] to the highest seq of sensor s in the log.  Returns 0 or a
 * klog error. */
static int scan_log(klog *k, int nparts, int64_t *last, int nsensors)
{
    klog_partition_info parts[MAX_PARTS] = { [0].struct_size = sizeof(klog_partition_info) };
    int n = klog_topic_describe(k, TOPIC, parts, MAX_PARTS, NULL, 0);
    if (n < 0)
        return n == KLOG_EUNKNOWN_TOPIC ? 0 : n;
    if (n > nparts)
        n = nparts;
    klog_conf *cc = NULL;
    klog_consumer *c = NULL;
    char err[256] = "";
    int rc;
    if ((rc = klog_conf_new(&cc)) < 0 || (rc = set_conf(cc, "auto.offset.reset", "earliest")) < 0 ||
        (rc = klog_consumer_new(k, cc, &c, err, sizeof err)) < 0) {
        report_err("scan: klog_consumer_new", rc, err);
        goto out;
    }
    int todo = 0;
    for (int p = 0; p < n; p++)
        if (parts[p].end_offset > parts[p].start_offset) {
            if ((rc = klog_consumer_assign(c, TOPIC, p, KLOG_OFFSET_BEGINNING)) < 0)
                goto out;
            todo++;
        }
    uint64_t idle_since = now_ms();
    while (todo > 0 && now_ms() - idle_since < 10000) {
        const klog_message *const *m;
        int got = klog_consumer_poll(c, 200, &m);
        if (got < 0) {
            rc = got;
            goto out;
        }
        if (got > 0)
            idle_since = now_ms();
        for (int i = 0; i < got; i++) {
            int s = sensor_of_key(m[i]->key, m[i]->key_len);
            uint64_t seq;
            if (s >= 0 && s < nsensors && json_seq(m[i]->value, m[i]->value_len, &seq) && (int64_t)seq > last[s])
                last[s] = (int64_t)seq;
        }
        todo = 0;
        for (int p = 0; p < n; p++) {
            int64_t pos;
            if (parts[p].end_offset > parts[p].start_offset && klog_consumer_position(c, TOPIC, p, &pos) == 0 &&
                pos < parts[p].end_offset)
                todo++;
        }
    }
    rc = 0;
out:
    klog_consumer_close(c);
    klog_conf_free(cc);
    return rc;
}

/* Raise last[s] from the "sensor sensor-<n> last_seq <seq>" lines of an
 * earlier status file: a sensor whose readings were all deleted keeps its
 * numbering. */
static void scan_status_file(const char *dir, int64_t *last, int nsensors)
{
    char path[4096], line[256];
    snprintf(path, sizeof path, "%s/" STATUS_FILE, dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    int s;
    int64_t seq;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "sensor sensor-%d last_seq %" SCNd64, &s, &seq) == 2 && s >= 0 && s < nsensors &&
            seq > last[s])
            last[s] = seq;
    fclose(f);
}

/* ---- status ----------------------------------------------------------------------------- */

typedef struct status {
    uint64_t used, budget;
    int nparts;
    int64_t start[MAX_PARTS], end[MAX_PARTS], committed[MAX_PARTS];
    int64_t lag;               /* stored readings not yet forwarded and committed */
} status;

static int collect(klog *k, status *st)
{
    klog_partition_info parts[MAX_PARTS] = { [0].struct_size = sizeof(klog_partition_info) };
    memset(st, 0, sizeof *st);
    klog_disk_usage(k, &st->used, &st->budget);
    int n = klog_topic_describe(k, TOPIC, parts, MAX_PARTS, NULL, 0);
    if (n < 0)
        return n;
    st->nparts = n < MAX_PARTS ? n : MAX_PARTS;
    for (int p = 0; p < st->nparts; p++) {
        st->start[p] = parts[p].start_offset;
        st->end[p] = parts[p].end_offset;
        int rc = klog_group_committed(k, GROUP, TOPIC, p, &st->committed[p]);
        if (rc < 0)
            return rc;
        int64_t from = st->committed[p] > st->start[p] ? st->committed[p] : st->start[p];
        st->lag += st->end[p] > from ? st->end[p] - from : 0;
    }
    return 0;
}

/* The --status text: "key value..." lines, for people and for awk. */
static void format_status(FILE *f, const status *st, const char *state, const gateway *g, const int64_t *last,
                          int nsensors)
{
    fprintf(f, "state %s\n", state);
    if (g)
        fprintf(f, "pid %ld\nupdated_ms %" PRId64 "\n", (long)getpid(), wall_ms());
    fprintf(f, "disk_used %" PRIu64 "\ndisk_budget %" PRIu64 "\n", st->used, st->budget);
    for (int p = 0; p < st->nparts; p++)
        fprintf(f, "partition %d start %" PRId64 " end %" PRId64 " committed %" PRId64 "\n", p, st->start[p],
                st->end[p], st->committed[p]);
    fprintf(f, "lag %" PRId64 "\n", st->lag);
    if (g) {
        klog_mirror_stats ms = { .struct_size = sizeof ms };
        klog_mirror_stats_get(g->m, &ms);
        fprintf(f, "produced %" PRIu64 "\nforwarded %" PRIu64 "\nlost %" PRIu64 "\ngaps %" PRIu64
                   "\nin_flight %" PRIu64 "\nproduce_errors %" PRIu64 "\nkafka %s\n",
                atomic_load(&g->produced), ms.forwarded, ms.gap_records, ms.gaps, ms.in_flight,
                atomic_load(&g->produce_errors), ms.link_up ? "up" : "down");
    }
    for (int s = 0; s < nsensors; s++)
        if (last[s] >= 0)
            fprintf(f, "sensor sensor-%d last_seq %" PRId64 "\n", s, last[s]);
}

/* Rewrite DIR/gateway.status atomically (tmp, rename). */
static void write_status_file(gateway *g, const status *st, const char *state)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/" STATUS_FILE, g->o.dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int64_t *last = malloc((size_t)g->o.sensors * sizeof *last);
    FILE *f = fopen(tmp, "w");
    if (!f || !last) {
        if (f)
            fclose(f);
        free(last);
        return;
    }
    for (int s = 0; s < g->o.sensors; s++)
        last[s] = atomic_load(&g->acked_seq[s]);
    format_status(f, st, state, g, last, g->o.sensors);
    free(last);
    if (fclose(f) == 0)
        rename(tmp, path);
}

static void print_status_line(gateway *g, const status *st, uint64_t *prev_produced, double dt)
{
    char u[32], b[32];
    uint64_t produced = atomic_load(&g->produced);
    klog_mirror_stats ms = { .struct_size = sizeof ms };
    klog_mirror_stats_get(g->m, &ms);
    printf("%s: produced %" PRIu64 " (%.0f/s), forwarded %" PRIu64 ", lost to the budget %" PRIu64
           ", disk %s of %s (%.0f%%), lag %" PRId64 ", kafka %s\n",
           prog, produced, dt > 0 ? (double)(produced - *prev_produced) / dt : 0.0, ms.forwarded, ms.gap_records,
           fmt_bytes(u, sizeof u, st->used), fmt_bytes(b, sizeof b, st->budget),
           st->budget ? 100.0 * (double)st->used / (double)st->budget : 0.0, st->lag, ms.link_up ? "up" : "down");
    fflush(stdout);
    *prev_produced = produced;
}

/* --status: from the running gateway's file when DIR is locked, else from
 * the log itself. */
static int status_main(const options *o)
{
    struct stat sb;
    if (stat(o->dir, &sb) < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, o->dir, strerror(errno));
        return 1;
    }
    char err[256] = "";
    klog *k = NULL;
    int rc = klog_open(&k, o->dir, NULL, err, sizeof err);
    if (rc == KLOG_ELOCKED) {
        char path[4096], buf[4096];
        snprintf(path, sizeof path, "%s/" STATUS_FILE, o->dir);
        FILE *f = fopen(path, "r");
        if (!f) {
            fprintf(stderr, "%s: %s is in use but has no %s yet\n", prog, o->dir, STATUS_FILE);
            return 1;
        }
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, n, stdout);
        fclose(f);
        return 0;
    }
    if (rc < 0) {
        report_err("klog_open", rc, err);
        return 1;
    }
    status st;
    int64_t *last = malloc(MAX_SENSORS * sizeof *last);
    if (!last) {
        klog_close(k);
        return 1;
    }
    for (int s = 0; s < MAX_SENSORS; s++)
        last[s] = -1;
    if ((rc = collect(k, &st)) < 0 || (rc = scan_log(k, st.nparts, last, MAX_SENSORS)) < 0) {
        report_err(rc == KLOG_EUNKNOWN_TOPIC ? "no topic \"" TOPIC "\"" : "reading the log", rc, NULL);
        free(last);
        klog_close(k);
        return 1;
    }
    scan_status_file(o->dir, last, MAX_SENSORS);
    /* DIR was opened without a budget: report --budget's, or the last run's. */
    st.budget = o->budget_set ? o->budget : 0;
    if (!o->budget_set) {
        char path[4096], line[256];
        snprintf(path, sizeof path, "%s/" STATUS_FILE, o->dir);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f))
            sscanf(line, "disk_budget %" SCNu64, &st.budget);
        if (f)
            fclose(f);
    }
    format_status(stdout, &st, "stopped", NULL, last, MAX_SENSORS);
    free(last);
    return klog_close(k) < 0;
}

/* ---- the forwarder: klog's mirror ------------------------------------------------------ */

/* The mirror's log lines (where it resumes, the link, gaps), on the
 * forwarder's thread. */
static void mirror_log(void *opaque, const char *line)
{
    (void)opaque;
    printf("%s: mirror: %s\n", prog, line);
}

static int mirror_set(klog_mirror *m, const char *key, const char *value)
{
    char err[512] = "";
    int rc = klog_mirror_set(m, key, value, err, sizeof err);
    if (rc < 0)
        report_err(key, rc, err);
    return rc;
}

/* Configure and start the mirror of "readings" to the Kafka cluster:
 * retry for ever while the cluster is unreachable (a gateway boots
 * without its link), create the Kafka topic with our partitions if it is
 * missing, name each record's source (header klog.src) for downstream
 * deduplication.  Returns 0 or a klog error. */
static int mirror_start(gateway *g)
{
    char err[512] = "", rename[512];
    int rc = klog_mirror_new(&g->m, g->k, err, sizeof err);
    if (rc < 0)
        return report_err("klog_mirror_new", rc, err);
    klog_mirror_set_log_cb(g->m, mirror_log, g);
    snprintf(rename, sizeof rename, TOPIC ":%s", g->o.kafka_topic ? g->o.kafka_topic : TOPIC);
    if ((rc = mirror_set(g->m, "mirror.to", g->o.kafka)) < 0 || (rc = mirror_set(g->m, "mirror.topics", TOPIC)) < 0 ||
        (rc = mirror_set(g->m, "mirror.rename", rename)) < 0 || (rc = mirror_set(g->m, "mirror.group.id", GROUP)) < 0 ||
        (rc = mirror_set(g->m, "mirror.create.topics", "true")) < 0 ||
        (rc = mirror_set(g->m, "mirror.connect.timeout.ms", "-1")) < 0 ||
        (rc = mirror_set(g->m, "mirror.source.header", "true")) < 0 ||
        (rc = mirror_set(g->m, "klog.client.id", "iot-gateway")) < 0 ||
        /* A small send queue: while the link is down readings wait on the
         * bounded disk, not in memory (the budget then decides what goes). */
        (rc = mirror_set(g->m, "kafka.queue.buffering.max.messages", "1000")) < 0 ||
        (rc = mirror_set(g->m, "kafka.queue.buffering.max.kbytes", "512")) < 0 ||
        /* Try the link again at least every 2 s once it is back. */
        (rc = mirror_set(g->m, "kafka.reconnect.backoff.max.ms", "2000")) < 0)
        return rc;
    for (int i = 0; i < g->o.nsets; i++) {
        char key[256];
        const char *eq = strchr(g->o.sets[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - g->o.sets[i]), g->o.sets[i]);
        if ((rc = mirror_set(g->m, key, eq + 1)) < 0)
            return rc;
    }
    if ((rc = klog_mirror_start(g->m, err, sizeof err)) < 0)
        return report_err("klog_mirror_start", rc, err);
    return 0;
}

/* The forwarder thread drives the mirror (one thread per mirror); the main
 * thread reads its statistics.  A mirror that cannot go on (a login
 * refused, a record too large for the cluster) stops the gateway. */
static void *forwarder_main(void *arg)
{
    gateway *g = arg;
    while (!atomic_load(&g->stop_forwarder)) {
        char err[1024] = "";
        int rc = klog_mirror_poll(g->m, 200, err, sizeof err);
        if (rc < 0) {
            snprintf(g->mirror_msg, sizeof g->mirror_msg, "%s", err);
            atomic_store(&g->mirror_err, rc);
            interrupted = 1;
            break;
        }
    }
    /* Wait for what is in flight, commit it, leave the group. */
    int rc = klog_mirror_stop(g->m);
    if (rc < 0)
        report_err("klog_mirror_stop", rc, NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    static gateway gw; /* big: not on the stack */
    gateway *g = &gw;
    int rc = parse_options(argc, argv, &g->o);
    if (rc)
        return rc;
    if (g->o.status)
        return status_main(&g->o);
    setvbuf(stdout, NULL, _IOLBF, 0); /* a log: one line at a time */

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status_code = 1;
    char err[256] = "";
    klog_conf *ic = NULL, *tc = NULL, *pc = NULL;
    pthread_t sensor_thread, forwarder_thread;
    bool sensor_started = false, forwarder_started = false;
    int64_t *last = NULL;
    status st;

    /* The instance: a disk budget that deletes the oldest data first, and
     * small segments (also for __consumer_offsets, which the budget counts
     * but never deletes from: small segments let its cleaner compact it). */
    if ((rc = klog_conf_new(&ic)) < 0 || (rc = set_conf_int(ic, "disk.budget.bytes", (int64_t)g->o.budget)) < 0 ||
        (rc = set_conf(ic, "disk.budget.policy", "delete-oldest")) < 0 ||
        (rc = set_conf_int(ic, "segment.bytes", (int64_t)g->o.segment_bytes)) < 0)
        goto out;
    /* A gateway restarted right after a crash, or while `--status` has the
     * directory open for a moment, waits for the lock. */
    for (int tries = 0;; tries++) {
        rc = klog_open(&g->k, g->o.dir, ic, err, sizeof err);
        if (rc != KLOG_ELOCKED || tries == 100)
            break;
        sleep_ms(100);
    }
    if (rc < 0) {
        report_err("klog_open", rc, err);
        goto out;
    }
    if ((rc = klog_conf_new(&tc)) < 0 || (rc = set_conf(tc, "cleanup.policy", "delete")) < 0 ||
        (rc = set_conf_int(tc, "segment.bytes", (int64_t)g->o.segment_bytes)) < 0)
        goto out;
    rc = klog_topic_create(g->k, TOPIC, g->o.partitions, tc, err, sizeof err);
    if (rc < 0 && rc != -EEXIST) {
        report_err("klog_topic_create", rc, err);
        goto out;
    }
    if ((rc = collect(g->k, &st)) < 0) {
        report_err("reading the state of \"" TOPIC "\"", rc, NULL);
        goto out;
    }
    g->nparts = st.nparts;

    /* Sequence numbers go on from the highest each sensor has in the log. */
    g->next_seq = calloc((size_t)g->o.sensors, sizeof *g->next_seq);
    g->acked_seq = calloc((size_t)g->o.sensors, sizeof *g->acked_seq);
    last = malloc((size_t)g->o.sensors * sizeof *last);
    if (!g->next_seq || !g->acked_seq || !last) {
        report_err("start", -ENOMEM, NULL);
        goto out;
    }
    for (int s = 0; s < g->o.sensors; s++)
        last[s] = -1;
    if ((rc = scan_log(g->k, g->nparts, last, g->o.sensors)) < 0) {
        report_err("reading back \"" TOPIC "\"", rc, NULL);
        goto out;
    }
    scan_status_file(g->o.dir, last, g->o.sensors);
    for (int s = 0; s < g->o.sensors; s++) {
        g->next_seq[s] = (uint64_t)(last[s] + 1);
        atomic_store(&g->acked_seq[s], last[s]);
    }

    char used[32], budget[32];
    printf("%s: %s: %d sensor%s at %g readings/s each -> \"" TOPIC "\" (%d partition%s), disk budget %s "
           "(delete-oldest, %s segments); forwarding to the Kafka cluster at %s\n",
           prog, g->o.dir, g->o.sensors, g->o.sensors == 1 ? "" : "s", g->o.rate, g->nparts,
           g->nparts == 1 ? "" : "s", fmt_bytes(budget, sizeof budget, g->o.budget),
           fmt_bytes(used, sizeof used, g->o.segment_bytes), g->o.kafka);
    int64_t stored = 0;
    for (int p = 0; p < st.nparts; p++)
        stored += st.end[p] - st.start[p];
    printf("%s: found %" PRId64 " readings stored (%s on disk), %" PRId64 " not yet forwarded\n", prog, stored,
           fmt_bytes(used, sizeof used, st.used), st.lag);
    fflush(stdout);

    /* Producer: acknowledged once appended; small batches, so that the
     * budget (which sees a partition's sealed batches together) stays well
     * above what one append writes. */
    int64_t batch_size = (int64_t)(g->o.budget / 128);
    if (batch_size < 1024)
        batch_size = 1024;
    if (batch_size > 1 << 20)
        batch_size = 1 << 20;
    if ((rc = klog_conf_new(&pc)) < 0 || (rc = set_conf(pc, "acks", "1")) < 0 ||
        (rc = set_conf(pc, "linger.ms", "20")) < 0 || (rc = set_conf_int(pc, "batch.size", batch_size)) < 0)
        goto out;
    if ((rc = klog_producer_new(g->k, pc, &g->p, err, sizeof err)) < 0) {
        report_err("klog_producer_new", rc, err);
        goto out;
    }
    if ((rc = klog_producer_set_delivery_cb(g->p, on_delivery, g)) < 0) {
        report_err("klog_producer_set_delivery_cb", rc, NULL);
        goto out;
    }

    /* Forwarder: klog's mirror, as a member of GROUP; it commits only what
     * Kafka acknowledged and holds its place while the link is down. */
    if ((rc = mirror_start(g)) < 0)
        goto out;
    if ((rc = -pthread_create(&forwarder_thread, NULL, forwarder_main, g)) < 0) {
        report_err("pthread_create", rc, NULL);
        goto out;
    }
    forwarder_started = true;
    if ((rc = -pthread_create(&sensor_thread, NULL, sensor_main, g)) < 0) {
        report_err("pthread_create", rc, NULL);
        goto out;
    }
    sensor_started = true;

    /* Run: a status file every second, a status line every --interval. */
    uint64_t t0 = now_ms(), last_file = 0, last_line = t0, prev_produced = 0;
    while (!interrupted && (g->o.duration <= 0 || now_ms() - t0 < (uint64_t)(g->o.duration * 1000))) {
        sleep_ms(100);
        uint64_t t = now_ms();
        if (t - last_file >= 1000 || t - last_line >= (uint64_t)(g->o.interval * 1000)) {
            if (collect(g->k, &st) < 0)
                continue;
            write_status_file(g, &st, "running");
            last_file = t;
            if (t - last_line >= (uint64_t)(g->o.interval * 1000)) {
                print_status_line(g, &st, &prev_produced, (double)(t - last_line) / 1000.0);
                last_line = t;
            }
        }
    }

    /* Stop: the sensors, then every reading into the log, then forward what
     * is left while Kafka takes it (up to --drain seconds). */
    printf("%s: stopping: %s\n", prog,
           atomic_load(&g->mirror_err) ? "the mirror stopped" : interrupted ? "signal" : "--duration reached");
    atomic_store(&g->stop_sensors, true);
    pthread_join(sensor_thread, NULL);
    sensor_started = false;
    if ((rc = klog_producer_flush(g->p, 60000)) < 0)
        report_err("klog_producer_flush", rc, NULL);
    uint64_t drain_end = now_ms() + (uint64_t)(g->o.drain * 1000);
    while (!atomic_load(&g->mirror_err) && now_ms() < drain_end) {
        if (collect(g->k, &st) == 0 && st.lag == 0) /* committed up to the end: all acknowledged */
            break;
        sleep_ms(50);
    }
    atomic_store(&g->stop_forwarder, true);
    klog_mirror_wakeup(g->m);
    pthread_join(forwarder_thread, NULL);
    forwarder_started = false;
    status_code = atomic_load(&g->mirror_err) ? 1 : 0;

out:
    atomic_store(&g->stop_sensors, true);
    atomic_store(&g->stop_forwarder, true);
    if (sensor_started)
        pthread_join(sensor_thread, NULL);
    if (forwarder_started) {
        klog_mirror_wakeup(g->m);
        pthread_join(forwarder_thread, NULL);
    }
    klog_mirror_stats ms = { .struct_size = sizeof ms };
    if (g->m)
        klog_mirror_stats_get(g->m, &ms);
    if (atomic_load(&g->mirror_err)) {
        fprintf(stderr, "%s: the mirror could not go on: %s (%s)\n", prog, g->mirror_msg,
                klog_err_name(atomic_load(&g->mirror_err)));
        status_code = 1;
    }
    if (g->p && (rc = klog_producer_close(g->p)) < 0) {
        report_err("klog_producer_close", rc, NULL);
        status_code = 1;
    }
    if (g->k && status_code == 0 && collect(g->k, &st) == 0) {
        write_status_file(g, &st, "stopped");
        char u[32], b[32];
        printf("%s: done: produced %" PRIu64 ", forwarded %" PRIu64 " (acknowledged by Kafka), lost to the "
               "budget %" PRIu64 " in %" PRIu64 " gap%s, %" PRId64 " left to forward; disk %s of %s\n",
               prog, atomic_load(&g->produced), ms.forwarded, ms.gap_records, ms.gaps, ms.gaps == 1 ? "" : "s", st.lag,
               fmt_bytes(u, sizeof u, st.used), fmt_bytes(b, sizeof b, st.budget));
    }
    klog_mirror_free(g->m); /* stopped by the forwarder already (or never started) */
    if (atomic_load(&g->produce_errors)) {
        fprintf(stderr, "%s: %" PRIu64 " readings failed to be written (first: %s)\n", prog,
                atomic_load(&g->produce_errors), klog_strerror(atomic_load(&g->first_produce_err)));
        status_code = 1;
    }
    if (g->k && (rc = klog_close(g->k)) < 0) {
        report_err("klog_close", rc, NULL);
        status_code = 1;
    }
    klog_conf_free(ic);
    klog_conf_free(tc);
    klog_conf_free(pc);
    free(g->next_seq);
    free((void *)g->acked_seq);
    free(last);
    return status_code;
}
