/*
 * tools/cmd_perf.c - `klog perf produce|consume`, after Kafka's
 * kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh.  Public API
 * only.  While klog serve holds DIR (or with --bootstrap-server) the
 * records go over the Kafka protocol through librdkafka (remote_perf.c), as
 * Kafka's tools measure a broker; the reports are the same lines.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "remote.h"

static const char perf_help[] =
    "Usage: klog [-d DIR] perf produce|consume TOPIC [OPTIONS]\n"
    "\n"
    "  produce   send --records records of --record-size bytes as fast as\n"
    "            possible or at --throughput records/s; report records/s, MB/s\n"
    "            and the delivery latency (avg, max, p50, p95, p99, p99.9)\n"
    "  consume   read --records records from the start of every partition;\n"
    "            report MB/s and records/s\n"
    "\n"
    "A progress line is printed every 5 s on long runs.  'klog perf produce\n"
    "--help' and 'klog perf consume --help' list the options.  Both open DIR as\n"
    "its writer; while klog serve holds it, or with --bootstrap-server, they\n"
    "measure the server over the Kafka protocol (librdkafka, remote mode): -X\n"
    "then takes librdkafka's properties.  They exit 3 while another process\n"
    "that serves nothing has DIR open.\n";

static const char produce_help[] =
    "Usage: klog [-d DIR] perf produce TOPIC --records N [OPTIONS]\n"
    "\n"
    "  --topic TOPIC          the topic (instead of the positional argument)\n"
    "  --records N            records to send (required; --num-records too)\n"
    "  --record-size B        value bytes per record (default 100)\n"
    "  --throughput R         records/s to aim at; -1 = as fast as possible (default)\n"
    "  --acks 0|1|all         acknowledgement (default 1)\n"
    "  --compression none|gzip|snappy|lz4|zstd\n"
    "                         batch compression (default none)\n"
    "  --partition N          send every record to partition N (default: the\n"
    "                         partitioner; records have no key)\n"
    "  --reporting-interval MS\n"
    "                         progress line interval (default 5000)\n"
    "  -X, --property KEY=VALUE\n"
    "                         any producer key (linger.ms, batch.size, ...; in\n"
    "                         remote mode librdkafka's producer properties)\n"
    CLI_REMOTE_HELP
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    "  -h, --help             this help\n"
    "\n"
    "Latency is from klog_producer_send to the record's delivery report.\n"
    "Exit status 1 if any record was not delivered.\n";

static const char consume_help[] =
    "Usage: klog [-d DIR] perf consume TOPIC [OPTIONS]\n"
    "\n"
    "  --topic TOPIC          the topic (instead of the positional argument)\n"
    "  --records N            records to read (--messages too; default: every\n"
    "                         record in the topic when the test starts)\n"
    "  --timeout-ms T         give up after T ms without a record (default 10000)\n"
    "  --reporting-interval MS\n"
    "                         progress line interval (default 5000)\n"
    "  -X, --property KEY=VALUE\n"
    "                         any consumer key (max.poll.records, fetch.max.bytes, ...;\n"
    "                         in remote mode librdkafka's consumer properties)\n"
    CLI_REMOTE_HELP
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status 1 if fewer than N records arrived before the timeout.\n";

enum { O_RECORDS = 256, O_SIZE, O_TPUT, O_ACKS, O_COMPRESSION, O_PARTITION, O_INTERVAL, O_TIMEOUT, O_TOPIC };

static const struct option perf_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "property", required_argument, NULL, 'X' },
    { "records", required_argument, NULL, O_RECORDS },
    { "num-records", required_argument, NULL, O_RECORDS },
    { "messages", required_argument, NULL, O_RECORDS },
    { "record-size", required_argument, NULL, O_SIZE },
    { "throughput", required_argument, NULL, O_TPUT },
    { "acks", required_argument, NULL, O_ACKS },
    { "compression", required_argument, NULL, O_COMPRESSION },
    { "partition", required_argument, NULL, O_PARTITION },
    { "reporting-interval", required_argument, NULL, O_INTERVAL },
    { "timeout-ms", required_argument, NULL, O_TIMEOUT },
    { "timeout", required_argument, NULL, O_TIMEOUT },
    { "topic", required_argument, NULL, O_TOPIC },
    CLI_REMOTE_OPTIONS,
    { NULL, 0, NULL, 0 },
};

/* ---- latency histogram (microseconds, log-linear, ~0.1% resolution) ------------ */

#define H_LINEAR 2048
#define H_SUB 1024
#define H_BUCKETS (H_LINEAR + 54 * H_SUB)

static size_t h_index(uint64_t us)
{
    if (us < H_LINEAR)
        return (size_t)us;
    int msb = 63 - __builtin_clzll(us);
    int shift = msb - 10;
    size_t idx = H_LINEAR + (size_t)(shift - 1) * H_SUB + (size_t)((us >> shift) - H_SUB);
    return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

static uint64_t h_value(size_t idx)
{
    if (idx < H_LINEAR)
        return idx;
    size_t shift = (idx - H_LINEAR) / H_SUB + 1;
    uint64_t sub = (idx - H_LINEAR) % H_SUB + H_SUB;
    return sub << shift;
}

typedef struct pstats {
    _Atomic uint64_t *hist;
    _Atomic uint64_t count, failed, lat_sum, lat_max;
    _Atomic uint64_t w_count, w_lat_sum, w_lat_max; /* current window */
    _Atomic int first_err;
    char first_errstr[128];          /* remote mode: librdkafka's text of the first failure */
} pstats;

static void atomic_max(_Atomic uint64_t *m, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(m, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(m, &cur, v, memory_order_relaxed, memory_order_relaxed))
        ;
}

static void lat_add(pstats *s, uint64_t us);

static void on_delivery(void *arg, const klog_delivery *d)
{
    pstats *s = arg;
    if (d->err) {
        atomic_fetch_add_explicit(&s->failed, 1, memory_order_relaxed);
        int zero = 0;
        atomic_compare_exchange_strong(&s->first_err, &zero, d->err);
        return;
    }
    lat_add(s, (cli_now_ns() - (uint64_t)(uintptr_t)d->opaque) / 1000);
}

static void lat_add(pstats *s, uint64_t us)
{
    atomic_fetch_add_explicit(&s->hist[h_index(us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->lat_sum, us, memory_order_relaxed);
    atomic_max(&s->lat_max, us);
    atomic_fetch_add_explicit(&s->w_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->w_lat_sum, us, memory_order_relaxed);
    atomic_max(&s->w_lat_max, us);
}

static double percentile(const pstats *s, uint64_t total, double q)
{
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    if (want >= total && total)
        want = total - 1;
    for (size_t i = 0; i < H_BUCKETS; i++) {
        seen += atomic_load_explicit(&s->hist[i], memory_order_relaxed);
        if (seen > want)
            return (double)h_value(i) / 1000.0;
    }
    return 0;
}

static void window_report(pstats *s, uint64_t *w_start, size_t record_size)
{
    uint64_t now = cli_now_ns();
    double secs = (double)(now - *w_start) / 1e9;
    uint64_t n = atomic_exchange(&s->w_count, 0), sum = atomic_exchange(&s->w_lat_sum, 0),
             mx = atomic_exchange(&s->w_lat_max, 0);
    double rate = secs > 0 ? (double)n / secs : 0;
    fprintf(stderr, "%" PRIu64 " records sent, %.1f records/sec (%.2f MB/sec), %.3f ms avg latency, %.3f ms max latency.\n",
            n, rate, rate * (double)record_size / (1024.0 * 1024.0), n ? (double)sum / (double)n / 1000.0 : 0.0,
            (double)mx / 1000.0);
    *w_start = now;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
    nanosleep(&ts, NULL);
}

typedef struct perf_args {
    const char *dir, *topic;
    int64_t records, record_size, throughput, interval_ms, timeout_ms;
    int32_t partition;
    klog_conf *conf;
    const char *acks, *compression;  /* as given, for remote mode */
    cli_props props;                 /* -X */
    cli_remote *remote;              /* remote mode, else k */
    klog *k;
} perf_args;

/* ---- remote mode: remote_perf.c's callbacks ---------------------------------------- */

typedef struct rstate {
    const perf_args *a;
    pstats *s;
    uint64_t start, w_start, interval, last;
    int64_t n, w_n;
    uint64_t bytes, w_bytes;
} rstate;

static void r_begin(void *arg)
{
    rstate *st = arg;
    st->start = st->w_start = st->last = cli_now_ns();
}

static void r_delivered(void *arg, uint64_t sent_ns, int err, const char *errstr)
{
    rstate *st = arg;
    if (!err) {
        lat_add(st->s, (cli_now_ns() - sent_ns) / 1000);
        return;
    }
    if (atomic_fetch_add_explicit(&st->s->failed, 1, memory_order_relaxed) == 0)
        snprintf(st->s->first_errstr, sizeof st->s->first_errstr, "%s", errstr ? errstr : "?");
}

static void r_produce_tick(void *arg)
{
    rstate *st = arg;
    if (cli_now_ns() - st->w_start >= st->interval)
        window_report(st->s, &st->w_start, (size_t)st->a->record_size);
}

static void r_consumed(void *arg, uint64_t bytes, uint64_t now)
{
    rstate *st = arg;
    st->n++, st->w_n++;
    st->bytes += bytes, st->w_bytes += bytes;
    st->last = now;
}

static void consume_window(uint64_t now, uint64_t *w_start, int64_t *w_n, uint64_t *w_bytes)
{
    double secs = (double)(now - *w_start) / 1e9;
    fprintf(stderr, "%" PRId64 " records read, %.1f records/sec (%.2f MB/sec)\n", *w_n, (double)*w_n / secs,
            (double)*w_bytes / (1024.0 * 1024.0) / secs);
    *w_start = now, *w_n = 0, *w_bytes = 0;
}

static void r_consume_tick(void *arg)
{
    rstate *st = arg;
    uint64_t now = cli_now_ns();
    if (now - st->w_start >= st->interval)
        consume_window(now, &st->w_start, &st->w_n, &st->w_bytes);
}

static int perf_produce(const char *ctx, perf_args *a)
{
    int rc = CLI_OK, r;
    klog *k = a->k;
    klog_producer *p = NULL;
    pstats s;
    memset(&s, 0, sizeof s);
    char *payload = malloc((size_t)a->record_size + 1);
    s.hist = calloc(H_BUCKETS, sizeof *s.hist);
    if (!payload || !s.hist) {
        rc = cli_err(ctx, "out of memory");
        goto out;
    }
    /* Random printable bytes, made once (as Kafka's tool does). */
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)cli_wall_ms();
    for (int64_t i = 0; i < a->record_size; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        payload[i] = (char)('A' + x % 26);
    }
    uint64_t start, end, w_start, interval = (uint64_t)a->interval_ms * 1000000ull;
    int64_t sent = 0;
    int send_err = 0;
    if (a->remote) {
        rstate st = { .a = a, .s = &s, .interval = interval };
        remote_perf_opts ro = { .ctx = ctx, .topic = a->topic, .records = a->records,
                                .record_size = a->record_size, .throughput = a->throughput,
                                .timeout_ms = a->timeout_ms, .partition = a->partition, .acks = a->acks,
                                .compression = a->compression, .props = &a->props, .payload = payload,
                                .arg = &st, .begin = r_begin, .tick = r_produce_tick, .delivered = r_delivered };
        if ((rc = remote_perf_produce(a->remote, &ro, &sent)) != CLI_OK && sent == 0)
            goto out;
        start = st.start;
        end = cli_now_ns();
        goto report;
    }
    int np = klog_topic_describe(k, a->topic, NULL, 0, NULL, 0);
    if (np < 0) {
        rc = cli_fail(ctx, a->topic, np, np == KLOG_EUNKNOWN_TOPIC ? "no such topic" : NULL);
        goto out;
    }
    if (a->partition >= np) {
        rc = cli_err(ctx, "%s: no partition %d (the topic has %d)", a->topic, (int)a->partition, np);
        goto out;
    }
    char err[512] = "";
    if ((r = klog_producer_new(k, a->conf, &p, err, sizeof err)) < 0) {
        rc = cli_fail(ctx, a->topic, r, err);
        goto out;
    }
    klog_producer_set_delivery_cb(p, on_delivery, &s);
    cli_signals();
    start = cli_now_ns(), w_start = start;
    for (; sent < a->records && !cli_stop; sent++) {
        if (a->throughput > 0) {
            uint64_t due = start + (uint64_t)((double)sent * 1e9 / (double)a->throughput);
            uint64_t now = cli_now_ns();
            if (due > now)
                sleep_ns(due - now);
        }
        klog_record rec = KLOG_RECORD_INIT;
        rec.partition = a->partition;
        rec.value = payload;
        rec.value_len = (size_t)a->record_size;
        rec.opaque = (void *)(uintptr_t)cli_now_ns();
        if ((r = klog_producer_send(p, a->topic, &rec)) < 0) {
            send_err = r;
            break;
        }
        if ((sent & 1023) == 0 || a->throughput > 0) {
            uint64_t now = cli_now_ns();
            if (now - w_start >= interval)
                window_report(&s, &w_start, (size_t)a->record_size);
        }
    }
    /* Wait for the last deliveries, still reporting progress. */
    while ((r = klog_producer_flush(p, 500)) == -ETIMEDOUT && !cli_stop)
        if (cli_now_ns() - w_start >= interval)
            window_report(&s, &w_start, (size_t)a->record_size);
    klog_producer_close(p);
    p = NULL;
    end = cli_now_ns();
    if (send_err)
        cli_fail(ctx, a->topic, send_err, NULL);
report:;
    uint64_t n = atomic_load(&s.count), failed = atomic_load(&s.failed);
    double secs = (double)(end - start) / 1e9;
    double rate = secs > 0 ? (double)n / secs : 0;
    printf("%" PRIu64 " records sent, %.1f records/sec (%.2f MB/sec), %.3f ms avg latency, %.3f ms max latency, "
           "%.3f ms 50th, %.3f ms 95th, %.3f ms 99th, %.3f ms 99.9th.\n",
           n, rate, rate * (double)a->record_size / (1024.0 * 1024.0),
           n ? (double)atomic_load(&s.lat_sum) / (double)n / 1000.0 : 0.0, (double)atomic_load(&s.lat_max) / 1000.0,
           percentile(&s, n, 0.50), percentile(&s, n, 0.95), percentile(&s, n, 0.99), percentile(&s, n, 0.999));
    if (failed) {
        int fe = atomic_load(&s.first_err);
        cli_err(ctx, "%s: %" PRIu64 " records not delivered (first error: %s)", a->topic, failed,
                s.first_errstr[0] ? s.first_errstr : klog_strerror(fe));
    }
    if (failed || send_err || (int64_t)n < a->records)
        rc = CLI_FAIL;
out:
    klog_producer_close(p);
    free(payload);
    free((void *)s.hist);
    return rc;
}

static int perf_consume(const char *ctx, perf_args *a)
{
    int rc = CLI_OK, r;
    klog *k = a->k;
    klog_consumer *c = NULL;
    klog_partition_info *parts = NULL;
    int64_t start_wall, n = 0, w_n = 0, want = 0;
    uint64_t start, last, w_start, interval = (uint64_t)a->interval_ms * 1000000ull, bytes = 0, w_bytes = 0;
    bool timed_out = false;
    if (a->remote) {
        rstate st = { .a = a, .interval = interval };
        remote_perf_opts ro = { .ctx = ctx, .topic = a->topic, .records = a->records, .timeout_ms = a->timeout_ms,
                                .partition = -1, .props = &a->props, .arg = &st, .begin = r_begin,
                                .tick = r_consume_tick, .consumed = r_consumed };
        if ((rc = remote_perf_consume(a->remote, &ro, &want)) != CLI_OK && st.n == 0)
            goto out;
        start_wall = cli_wall_ms() - (int64_t)((cli_now_ns() - st.start) / 1000000);
        start = st.start, last = st.last, n = st.n, bytes = st.bytes;
        timed_out = n < want && !cli_stop;
        goto report;
    }
    int np = klog_topic_describe(k, a->topic, NULL, 0, NULL, 0);
    if (np < 0) {
        rc = cli_fail(ctx, a->topic, np, np == KLOG_EUNKNOWN_TOPIC ? "no such topic" : NULL);
        goto out;
    }
    parts = calloc((size_t)np, sizeof *parts);
    if (!parts) {
        rc = cli_err(ctx, "out of memory");
        goto out;
    }
    parts[0].struct_size = sizeof *parts;
    np = klog_topic_describe(k, a->topic, parts, (size_t)np, NULL, 0);
    int64_t avail = 0;
    for (int i = 0; i < np; i++)
        avail += parts[i].end_offset - parts[i].start_offset;
    want = a->records > 0 ? a->records : avail;
    char err[512] = "";
    klog_conf_set(a->conf, "auto.offset.reset", "earliest", NULL, 0);
    if ((r = klog_consumer_new(k, a->conf, &c, err, sizeof err)) < 0) {
        rc = cli_fail(ctx, a->topic, r, err);
        goto out;
    }
    for (int i = 0; i < np; i++)
        if ((r = klog_consumer_assign(c, a->topic, i, KLOG_OFFSET_BEGINNING)) < 0) {
            rc = cli_fail(ctx, a->topic, r, NULL);
            goto out;
        }
    cli_signals();
    start_wall = cli_wall_ms();
    start = cli_now_ns(), last = start, w_start = start;
    while (n < want && !cli_stop) {
        const klog_message *const *m;
        int got = klog_consumer_poll(c, 100, &m);
        uint64_t now = cli_now_ns();
        if (got < 0) {
            rc = cli_fail(ctx, a->topic, got, NULL);
            break;
        }
        for (int i = 0; i < got && n < want; i++) {
            uint64_t b = m[i]->key_len + m[i]->value_len;
            bytes += b, w_bytes += b;
            n++, w_n++;
        }
        if (got > 0)
            last = now;
        else if ((int64_t)((now - last) / 1000000) >= a->timeout_ms) {
            timed_out = true;
            break;
        }
        if (now - w_start >= interval)
            consume_window(now, &w_start, &w_n, &w_bytes);
    }
report:;
    uint64_t end = timed_out ? last : cli_now_ns();
    int64_t end_wall = start_wall + (int64_t)((end - start) / 1000000);
    double secs = (double)(end - start) / 1e9, mb = (double)bytes / (1024.0 * 1024.0);
    if (secs <= 0)
        secs = 1e-9;
    char t0[64], t1[64];
    time_t s0 = (time_t)(start_wall / 1000), s1 = (time_t)(end_wall / 1000);
    struct tm tm0, tm1;
    strftime(t0, sizeof t0, "%Y-%m-%d %H:%M:%S", localtime_r(&s0, &tm0));
    strftime(t1, sizeof t1, "%Y-%m-%d %H:%M:%S", localtime_r(&s1, &tm1));
    printf("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec\n");
    printf("%s:%03d, %s:%03d, %.4f, %.4f, %" PRId64 ", %.4f\n", t0, (int)(start_wall % 1000), t1,
           (int)(end_wall % 1000), mb, mb / secs, n, (double)n / secs);
    if (n < want && rc == CLI_OK) {
        cli_err(ctx, "%s: %" PRId64 " of %" PRId64 " records read before %s", a->topic, n, want,
                timed_out ? "the timeout" : "the interruption");
        rc = CLI_FAIL;
    }
out:
    klog_consumer_close(c);
    free(parts);
    return rc;
}

int cmd_perf(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(perf_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    bool produce = !strcmp(argv[1], "produce");
    if (!produce && strcmp(argv[1], "consume"))
        return cli_usage("perf", "perf", "unknown action '%s'", argv[1]);
    const char *ctx = produce ? "perf produce" : "perf consume";
    argc--, argv++;
    perf_args a = { .records = -1, .record_size = 100, .throughput = -1, .interval_ms = 5000,
                    .timeout_ms = 10000, .partition = KLOG_PARTITION_ANY };
    if (klog_conf_new(&a.conf) < 0)
        return cli_err(ctx, "out of memory");
    int rc = CLI_OK, c;
    optind = 0;
    while ((c = cli_getopt(argc, argv, "d:hX:", perf_opts, ctx, ctx)) != -1) {
        int64_t v = 0;
        bool num = c >= O_RECORDS && c != O_ACKS && c != O_COMPRESSION && c != O_TOPIC && c != O_BOOTSTRAP &&
                   c != O_CMDCONFIG;
        if (num && !cli_i64(optarg, &v)) {
            rc = cli_usage(ctx, ctx, "'%s' is not a number", optarg);
            goto out;
        }
        switch (c) {
        case 'd': a.dir = optarg; break;
        case 'h':
            fputs(produce ? produce_help : consume_help, stdout);
            goto out;
        case 'X':
            if ((rc = cli_props_add(ctx, &a.props, optarg)) != CLI_OK)
                goto out;
            break;
        case O_BOOTSTRAP:
        case O_CMDCONFIG: cli_remote_option(c, optarg); break;
        case O_RECORDS:
            if (v < 1) {
                rc = cli_usage(ctx, ctx, "--records must be at least 1");
                goto out;
            }
            a.records = v;
            break;
        case O_SIZE:
            if (v < 0 || v > 64 * 1024 * 1024) {
                rc = cli_usage(ctx, ctx, "--record-size must be 0..67108864");
                goto out;
            }
            a.record_size = v;
            break;
        case O_TPUT:
            if (v == 0 || v < -1) {
                rc = cli_usage(ctx, ctx, "--throughput must be positive, or -1 for unlimited");
                goto out;
            }
            a.throughput = v;
            break;
        case O_INTERVAL:
            if (v < 1) {
                rc = cli_usage(ctx, ctx, "--reporting-interval must be positive");
                goto out;
            }
            a.interval_ms = v;
            break;
        case O_TIMEOUT:
            if (v < 0) {
                rc = cli_usage(ctx, ctx, "--timeout-ms must not be negative");
                goto out;
            }
            a.timeout_ms = v;
            break;
        case O_PARTITION:
            if (v < 0 || v > INT32_MAX) {
                rc = cli_usage(ctx, ctx, "--partition: '%s' is not a partition number", optarg);
                goto out;
            }
            a.partition = (int32_t)v;
            break;
        case O_ACKS:
            if (strcmp(optarg, "0") && strcmp(optarg, "1") && strcmp(optarg, "all") && strcmp(optarg, "-1")) {
                rc = cli_usage(ctx, ctx, "--acks must be 0, 1 or all, not '%s'", optarg);
                goto out;
            }
            if ((rc = cli_conf_set(ctx, a.conf, "acks", optarg)) != CLI_OK)
                goto out;
            a.acks = optarg;
            break;
        case O_COMPRESSION:
            if (strcmp(optarg, "none") && strcmp(optarg, "gzip") && strcmp(optarg, "snappy") &&
                strcmp(optarg, "lz4") && strcmp(optarg, "zstd")) {
                rc = cli_usage(ctx, ctx, "--compression must be none, gzip, snappy, lz4 or zstd, not '%s'", optarg);
                goto out;
            }
            if ((rc = cli_conf_set(ctx, a.conf, "compression.type", optarg)) != CLI_OK)
                goto out;
            a.compression = optarg;
            break;
        case O_TOPIC: a.topic = optarg; break;
        default:
            rc = CLI_USAGE;
            goto out;
        }
    }
    if (optind < argc) {
        if (a.topic || optind + 1 < argc) {
            rc = cli_usage(ctx, ctx, "unexpected argument '%s'", argv[a.topic ? optind : optind + 1]);
            goto out;
        }
        a.topic = argv[optind];
    }
    if (!a.topic) {
        rc = cli_usage(ctx, ctx, "no topic given");
        goto out;
    }
    if (produce && a.records < 1) {
        rc = cli_usage(ctx, ctx, "--records N is required");
        goto out;
    }
    if (!produce && (a.throughput != -1 || a.partition != KLOG_PARTITION_ANY)) {
        rc = cli_usage(ctx, ctx, "--throughput and --partition apply to perf produce only");
        goto out;
    }
    if ((rc = cli_target(ctx, ctx, a.dir, false, NULL, &a.k, &a.remote)) != CLI_OK)
        goto out;
    for (int i = 0; !a.remote && i < a.props.n; i++)
        if ((rc = cli_conf_kv(ctx, a.conf, a.props.kv[i])) != CLI_OK)
            goto out;
    rc = produce ? perf_produce(ctx, &a) : perf_consume(ctx, &a);
out:
    if (a.k)
        klog_close(a.k);
    cli_remote_free(a.remote);
    klog_conf_free(a.conf);
    return rc;
}
