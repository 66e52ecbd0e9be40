/*
 * examples/iot_gateway.c - a store-and-forward IoT gateway on klog's public
 * API.
 *
 * Simulated sensors produce JSON readings, each with its own sequence
 * number, keyed by sensor id, into the topic "readings" of a klog instance
 * whose disk is bounded: disk.budget.bytes with policy delete-oldest, small
 * segments so that each deletion frees a small slice.  A forwarder thread,
 * a member of the consumer group "uplink-forwarder", sends the readings to
 * an uplink over TCP (a line protocol, see examples/uplink.c) and commits
 * the group's offsets, synchronously, only once the uplink has acknowledged
 * them: at least once.  While the uplink is unreachable the forwarder
 * retries with backoff and the readings pile up on disk; when the budget is
 * reached the oldest go first (a ring buffer).  When the link returns,
 * forwarding resumes from the last committed offset, or from the start of
 * the log if the budget deleted that far: the forwarder notices the jump,
 * checks with klog_topic_describe that the skipped offsets are below the
 * log's start, counts them as lost and tells the uplink (a "G" line).
 *
 *   iot_gateway --dir DIR --uplink HOST:PORT [options]   run (until SIGTERM)
 *   iot_gateway --dir DIR --status                       print DIR's state
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
 * Exit status: 0; 1 on an error (or when a reading failed to be written, or
 * a gap was found that the budget does not explain); 2 for a usage error.
 *
 * Only the public API (<klog/klog.h>) is used, as an application would.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>

#define TOPIC "readings"
#define GROUP "uplink-forwarder"
#define STATUS_FILE "gateway.status"
#define MAX_PARTS 64
#define MAX_SENSORS 10000
#define BATCH_RECORDS 256          /* readings per uplink round trip (max.poll.records) */
#define CONNECT_TIMEOUT_MS 2000
#define ACK_TIMEOUT_MS 15000       /* generous: the uplink may be slow under load */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

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
    const char *dir, *uplink;
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
            "usage: %s --dir DIR --uplink HOST:PORT [options]\n"
            "       %s --dir DIR --status\n"
            "A store-and-forward gateway: simulated sensors write readings to the topic\n"
            "\"" TOPIC "\" on a bounded disk; a forwarder sends them to the uplink and commits\n"
            "(consumer group \"" GROUP "\") once the uplink has acknowledged them.\n"
            "\n"
            "  --dir DIR            data directory (created if missing)\n"
            "  --uplink HOST:PORT   where to forward to (e.g. 127.0.0.1:9500)\n"
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
        } else if (!strcmp(a, "--uplink") && val) {
            o->uplink = val;
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
    if (!o->dir || (!o->status && !o->uplink)) {
        fprintf(stderr, "%s: --dir%s is required\n", prog, o->status ? "" : " and --uplink");
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
    klog_consumer *c;
    int nparts;
    char host[256], port[16];

    /* sensors: the sensor thread owns next_seq; the delivery callback
     * raises acked_seq (the highest sequence number the log holds) */
    uint64_t *next_seq;
    _Atomic int64_t *acked_seq;
    _Atomic uint64_t produced, produce_errors;
    _Atomic int first_produce_err;

    /* forwarder */
    int64_t expected[MAX_PARTS];      /* next offset the forwarder expects; -1 = unknown */
    _Atomic uint64_t forwarded, lost, gaps, bad_gaps, commit_errors, link_failures;
    _Atomic bool link_up, idle;       /* idle: nothing read but not yet acknowledged */
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
        fprintf(f, "produced %" PRIu64 "\nforwarded %" PRIu64 "\nlost %" PRIu64 "\ngaps %" PRIu64
                   "\nproduce_errors %" PRIu64 "\nuplink %s\n",
                atomic_load(&g->produced), atomic_load(&g->forwarded), atomic_load(&g->lost),
                atomic_load(&g->gaps), atomic_load(&g->produce_errors), atomic_load(&g->link_up) ? "up" : "down");
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
    printf("%s: produced %" PRIu64 " (%.0f/s), forwarded %" PRIu64 ", lost to the budget %" PRIu64
           ", disk %s of %s (%.0f%%), lag %" PRId64 ", uplink %s\n",
           prog, produced, dt > 0 ? (double)(produced - *prev_produced) / dt : 0.0, atomic_load(&g->forwarded),
           atomic_load(&g->lost), fmt_bytes(u, sizeof u, st->used), fmt_bytes(b, sizeof b, st->budget),
           st->budget ? 100.0 * (double)st->used / (double)st->budget : 0.0, st->lag,
           atomic_load(&g->link_up) ? "up" : "down");
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

/* ---- the uplink link ------------------------------------------------------------------- */

/* A batch read from the log, copied, waiting for the uplink's acknowledgment. */
typedef struct batch {
    char *wire;                   /* the protocol lines, "S <token>" last */
    size_t len, cap;
    uint64_t records, token;
    int64_t next[MAX_PARTS];      /* per partition: offset to commit; -1 = none */
} batch;

static bool batch_append(batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool batch_append(batch *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->wire + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return false;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return true;
        }
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *w = realloc(b->wire, cap);
        if (!w)
            return false;
        b->wire = w;
        b->cap = cap;
    }
}

static void batch_clear(batch *b)
{
    b->len = 0;
    b->records = 0;
    for (int p = 0; p < MAX_PARTS; p++)
        b->next[p] = -1;
}

/*
 * Copy polled records into b (the views die at the next poll), noticing
 * jumps: a record past the offset expected means the records between were
 * deleted before they were forwarded.  klog moved the position to the
 * log's start (auto.offset.reset=earliest); check that the skipped offsets
 * are indeed below the start, count them as lost and tell the uplink.
 */
static bool batch_fill(gateway *g, batch *b, const klog_message *const *m, int n)
{
    klog_partition_info parts[MAX_PARTS] = { [0].struct_size = sizeof(klog_partition_info) };
    bool described = false;
    for (int i = 0; i < n; i++) {
        int32_t p = m[i]->partition;
        if (p < 0 || p >= MAX_PARTS)
            continue;
        int64_t exp = g->expected[p];
        if (exp >= 0 && m[i]->offset > exp) {
            if (!described && klog_topic_describe(g->k, TOPIC, parts, MAX_PARTS, NULL, 0) > p)
                described = true;
            int64_t start = described ? parts[p].start_offset : -1;
            uint64_t skipped = (uint64_t)(m[i]->offset - exp);
            atomic_fetch_add(&g->lost, skipped);
            atomic_fetch_add(&g->gaps, 1);
            if (start < m[i]->offset) {
                atomic_fetch_add(&g->bad_gaps, 1);
                fprintf(stderr,
                        "%s: ERROR: partition %d: offsets %" PRId64 "..%" PRId64
                        " were skipped but the log starts at %" PRId64 "\n",
                        prog, p, exp, m[i]->offset - 1, start);
            } else {
                printf("%s: partition %d: %" PRIu64 " readings (offsets %" PRId64 "..%" PRId64
                       ") were deleted by the disk budget before they could be forwarded\n",
                       prog, p, skipped, exp, m[i]->offset - 1);
            }
            if (!batch_append(b, "G %d %" PRId64 " %" PRId64 " %" PRId64 "\n", p, exp, m[i]->offset, start))
                return false;
        }
        if (m[i]->offset + 1 > g->expected[p])
            g->expected[p] = m[i]->offset + 1;
        if (m[i]->offset + 1 > b->next[p]) /* a record not forwarded is committed too */
            b->next[p] = m[i]->offset + 1;
        if (!m[i]->key || !m[i]->value || memchr(m[i]->value, '\n', m[i]->value_len) ||
            memchr(m[i]->key, ' ', m[i]->key_len))
            continue; /* not a reading of ours: nothing to forward, but committed */
        if (!batch_append(b, "R %d %" PRId64 " %.*s %.*s\n", p, m[i]->offset, (int)m[i]->key_len,
                          (const char *)m[i]->key, (int)m[i]->value_len, (const char *)m[i]->value))
            return false;
        b->records++;
    }
    return batch_append(b, "S %" PRIu64 "\n", ++b->token);
}

/* Connect with a timeout.  Returns the socket or -errno. */
static int link_connect(gateway *g)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
    int grc = getaddrinfo(g->host, g->port, &hints, &ai);
    if (grc != 0)
        return grc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            continue;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        int err = 0;
        socklen_t elen = sizeof err;
        int pr = poll(&pfd, 1, CONNECT_TIMEOUT_MS);
        if (pr <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
            rc = pr == 0 ? -ETIMEDOUT : err ? -err : -errno;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        freeaddrinfo(ai);
        return fd;
    }
    freeaddrinfo(ai);
    return rc;
}

/* Wait for fd to be ready, in slices, giving up at the deadline or when
 * the forwarder is told to stop.  Returns 0 or -errno. */
static int wait_fd(gateway *g, int fd, short events, uint64_t deadline)
{
    for (;;) {
        if (atomic_load(&g->stop_forwarder))
            return -ECANCELED;
        uint64_t t = now_ms();
        if (t >= deadline)
            return -ETIMEDOUT;
        struct pollfd pfd = { .fd = fd, .events = events };
        int r = poll(&pfd, 1, (int)(deadline - t < 100 ? deadline - t : 100));
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r > 0)
            return 0;
    }
}

/* Send the batch and wait for its acknowledgment.  Returns 0 or -errno. */
static int link_exchange(gateway *g, int fd, const batch *b)
{
    uint64_t deadline = now_ms() + ACK_TIMEOUT_MS;
    size_t off = 0;
    int rc;
    while (off < b->len) {
        if ((rc = wait_fd(g, fd, POLLOUT, deadline)) < 0)
            return rc;
        ssize_t w = send(fd, b->wire + off, b->len - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w < 0)
            return -errno;
        off += (size_t)w;
    }
    char want[32], buf[64];
    int wl = snprintf(want, sizeof want, "A %" PRIu64 "\n", b->token);
    size_t got = 0;
    for (;;) {
        if ((rc = wait_fd(g, fd, POLLIN, deadline)) < 0)
            return rc;
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return r == 0 ? -ECONNRESET : -errno;
        got += (size_t)r;
        buf[got] = '\0';
        /* Only one batch is ever in flight: the reply is exactly "A <token>". */
        if (got >= (size_t)wl)
            return memcmp(buf, want, (size_t)wl) == 0 ? 0 : -EPROTO;
    }
}

/* Commit, synchronously, the offsets after what the uplink acknowledged. */
static int commit_batch(gateway *g, const batch *b)
{
    klog_partition_list *l = NULL;
    int rc = klog_partition_list_new(&l);
    for (int p = 0; rc == 0 && p < MAX_PARTS; p++)
        if (b->next[p] >= 0)
            rc = klog_partition_list_add(l, TOPIC, p, b->next[p], NULL);
    if (rc == 0 && klog_partition_list_count(l) > 0)
        rc = klog_consumer_commit(g->c, l, 0);
    klog_partition_list_free(l);
    return rc;
}

/* Rebalance callback, on the forwarder's thread inside its poll: a
 * partition assigned is read from the group's committed offset, which is
 * therefore where the forwarder expects to resume. */
static void on_rebalance(klog_consumer *c, int event, klog_partition_list *parts, void *opaque)
{
    gateway *g = opaque;
    size_t n = klog_partition_list_count(parts);
    for (size_t i = 0; i < n; i++) {
        const char *topic;
        int32_t p;
        int64_t off = -1;
        if (klog_partition_list_get(parts, i, &topic, &p, NULL, NULL, NULL) < 0 || strcmp(topic, TOPIC) || p < 0 ||
            p >= MAX_PARTS)
            continue;
        if (event == KLOG_REBALANCE_ASSIGNED) {
            if (klog_consumer_committed(c, TOPIC, p, &off, NULL, 0) < 0)
                off = -1;
            g->expected[p] = off >= 0 ? off : 0; /* nothing committed: from the first offset ever */
            printf("%s: forwarding partition %d from offset %" PRId64 "%s\n", prog, p, g->expected[p],
                   off >= 0 ? " (committed)" : " (nothing committed yet)");
        } else {
            g->expected[p] = -1;
        }
    }
    fflush(stdout);
}

static void *forwarder_main(void *arg)
{
    gateway *g = arg;
    batch b = { 0 };
    batch_clear(&b);
    int fd = -1;
    unsigned backoff = 0;
    uint64_t next_try = 0, down_since = 0;
    bool pending = false;
    int last_err = 0;
    while (!atomic_load(&g->stop_forwarder)) {
        if (!pending) {
            atomic_store(&g->idle, true);
            const klog_message *const *m;
            int n = klog_consumer_poll(g->c, 200, &m);
            if (n < 0) {
                report_err("klog_consumer_poll", n, NULL);
                sleep_ms(200);
                continue;
            }
            if (n == 0)
                continue;
            atomic_store(&g->idle, false);
            if (!batch_fill(g, &b, m, n)) {
                report_err("forwarder", -ENOMEM, NULL);
                break;
            }
            pending = true;
        }
        if (fd < 0) {
            uint64_t t = now_ms();
            if (t < next_try) {
                sleep_ms((unsigned)(next_try - t < 50 ? next_try - t : 50));
                continue;
            }
            fd = link_connect(g);
            if (fd < 0) {
                backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2) : BACKOFF_MIN_MS;
                next_try = now_ms() + backoff;
                if (atomic_exchange(&g->link_up, false) || fd != last_err) {
                    if (!down_since)
                        down_since = now_ms();
                    printf("%s: uplink %s:%s unreachable (%s); buffering on disk, retrying with backoff\n", prog,
                           g->host, g->port, strerror(-fd));
                    fflush(stdout);
                }
                last_err = fd;
                continue;
            }
            backoff = 0;
            last_err = 0;
            atomic_store(&g->link_up, true);
            printf("%s: uplink %s:%s connected", prog, g->host, g->port);
            if (down_since)
                printf(" after %.1f s down", (double)(now_ms() - down_since) / 1000.0);
            printf("\n");
            fflush(stdout);
            down_since = 0;
        }
        int rc = link_exchange(g, fd, &b);
        if (rc < 0) {
            close(fd);
            fd = -1;
            if (rc == -ECANCELED)
                break;
            atomic_fetch_add(&g->link_failures, 1);
            atomic_store(&g->link_up, false);
            down_since = now_ms();
            printf("%s: uplink lost (%s); the batch will be sent again\n", prog, strerror(-rc));
            fflush(stdout);
            backoff = BACKOFF_MIN_MS;
            next_try = now_ms() + backoff;
            continue;
        }
        /* Acknowledged: now, and only now, commit. */
        if ((rc = commit_batch(g, &b)) < 0) {
            /* Fenced or rebalancing: the records come again from the last
             * commit after the next poll - duplicates, never a loss. */
            atomic_fetch_add(&g->commit_errors, 1);
            report_err("klog_consumer_commit", rc, NULL);
        }
        atomic_fetch_add(&g->forwarded, b.records);
        batch_clear(&b);
        pending = false;
    }
    if (fd >= 0)
        close(fd);
    free(b.wire);
    return NULL;
}

/* ---- main ------------------------------------------------------------------------------- */

static int split_host_port(gateway *g)
{
    const char *colon = strrchr(g->o.uplink, ':');
    if (!colon || colon == g->o.uplink || !colon[1] || (size_t)(colon - g->o.uplink) >= sizeof g->host ||
        strlen(colon + 1) >= sizeof g->port) {
        fprintf(stderr, "%s: --uplink wants HOST:PORT, not %s\n", prog, g->o.uplink);
        return -1;
    }
    memcpy(g->host, g->o.uplink, (size_t)(colon - g->o.uplink));
    g->host[colon - g->o.uplink] = '\0';
    snprintf(g->port, sizeof g->port, "%s", colon + 1);
    return 0;
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
    if (split_host_port(g) < 0)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0); /* a log: one line at a time */

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status_code = 1;
    char err[256] = "";
    klog_conf *ic = NULL, *tc = NULL, *pc = NULL, *cc = NULL;
    pthread_t sensor_thread, forwarder_thread;
    bool sensor_started = false, forwarder_started = false;
    int64_t *last = NULL;
    status st;
    for (int p = 0; p < MAX_PARTS; p++)
        g->expected[p] = -1;

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
           "(delete-oldest, %s segments); forwarding to %s:%s\n",
           prog, g->o.dir, g->o.sensors, g->o.sensors == 1 ? "" : "s", g->o.rate, g->nparts,
           g->nparts == 1 ? "" : "s", fmt_bytes(budget, sizeof budget, g->o.budget),
           fmt_bytes(used, sizeof used, g->o.segment_bytes), g->host, g->port);
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

    /* Forwarder: commits by hand after the uplink's acknowledgment; resumes
     * at the log's start when its offset was deleted; a long session, since
     * it stops polling while the uplink is down (it is the only member). */
    if ((rc = klog_conf_new(&cc)) < 0 || (rc = set_conf(cc, "group.id", GROUP)) < 0 ||
        (rc = set_conf(cc, "client.id", "iot-gateway")) < 0 ||
        (rc = set_conf(cc, "enable.auto.commit", "false")) < 0 ||
        (rc = set_conf(cc, "auto.offset.reset", "earliest")) < 0 ||
        (rc = set_conf_int(cc, "max.poll.records", BATCH_RECORDS)) < 0 ||
        (rc = set_conf(cc, "session.timeout.ms", "3600000")) < 0 ||
        (rc = set_conf(cc, "max.poll.interval.ms", "3600000")) < 0)
        goto out;
    if ((rc = klog_consumer_new(g->k, cc, &g->c, err, sizeof err)) < 0) {
        report_err("klog_consumer_new", rc, err);
        goto out;
    }
    const char *topics[] = { TOPIC };
    if ((rc = klog_consumer_set_rebalance_cb(g->c, on_rebalance, g)) < 0 ||
        (rc = klog_consumer_subscribe(g->c, topics, 1)) < 0) {
        report_err("klog_consumer_subscribe", rc, NULL);
        goto out;
    }

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
     * is left while the uplink takes it (up to --drain seconds). */
    printf("%s: stopping: %s\n", prog, interrupted ? "signal" : "--duration reached");
    atomic_store(&g->stop_sensors, true);
    pthread_join(sensor_thread, NULL);
    sensor_started = false;
    if ((rc = klog_producer_flush(g->p, 60000)) < 0)
        report_err("klog_producer_flush", rc, NULL);
    uint64_t drain_end = now_ms() + (uint64_t)(g->o.drain * 1000);
    while (now_ms() < drain_end) {
        if (collect(g->k, &st) == 0 && st.lag == 0 && atomic_load(&g->idle))
            break;
        sleep_ms(50);
    }
    atomic_store(&g->stop_forwarder, true);
    klog_consumer_wakeup(g->c);
    pthread_join(forwarder_thread, NULL);
    forwarder_started = false;
    status_code = 0;

out:
    atomic_store(&g->stop_sensors, true);
    atomic_store(&g->stop_forwarder, true);
    if (sensor_started)
        pthread_join(sensor_thread, NULL);
    if (forwarder_started) {
        klog_consumer_wakeup(g->c);
        pthread_join(forwarder_thread, NULL);
    }
    klog_consumer_close(g->c);
    if (g->p && (rc = klog_producer_close(g->p)) < 0) {
        report_err("klog_producer_close", rc, NULL);
        status_code = 1;
    }
    if (g->k && status_code == 0 && collect(g->k, &st) == 0) {
        write_status_file(g, &st, "stopped");
        char u[32], b[32];
        printf("%s: done: produced %" PRIu64 ", forwarded %" PRIu64 " (acknowledged by the uplink), lost to the "
               "budget %" PRIu64 " in %" PRIu64 " gap%s, %" PRId64 " left to forward; disk %s of %s\n",
               prog, atomic_load(&g->produced), atomic_load(&g->forwarded), atomic_load(&g->lost),
               atomic_load(&g->gaps), atomic_load(&g->gaps) == 1 ? "" : "s", st.lag, fmt_bytes(u, sizeof u, st.used),
               fmt_bytes(b, sizeof b, st.budget));
    }
    if (atomic_load(&g->produce_errors)) {
        fprintf(stderr, "%s: %" PRIu64 " readings failed to be written (first: %s)\n", prog,
                atomic_load(&g->produce_errors), klog_strerror(atomic_load(&g->first_produce_err)));
        status_code = 1;
    }
    if (atomic_load(&g->bad_gaps)) {
        fprintf(stderr, "%s: %" PRIu64 " gaps not explained by the disk budget\n", prog, atomic_load(&g->bad_gaps));
        status_code = 1;
    }
    if (g->k && (rc = klog_close(g->k)) < 0) {
        report_err("klog_close", rc, NULL);
        status_code = 1;
    }
    klog_conf_free(ic);
    klog_conf_free(tc);
    klog_conf_free(pc);
    klog_conf_free(cc);
    free(g->next_seq);
    free((void *)g->acked_seq);
    free(last);
    return status_code;
}
