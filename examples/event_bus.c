/*
 * examples/event_bus.c - the README's first command: an in-process event bus
 * on klog's public API.
 *
 * Producer threads publish keyed events ("user-<n>", about 1000 keys) to the
 * topic "events" through one shared klog_producer (a producer is
 * thread-safe); consumer threads, members of one consumer group
 * ("event-bus") that share the topic's partitions among themselves, check
 * every event end to end and time it.  What is checked:
 *   - nothing lost: every record whose delivery was acknowledged is read back;
 *   - no duplicates: a bit per (producer, sequence number) is set once only;
 *   - where: each record is read at the partition and offset its delivery
 *     report named, and a key always lives in one partition;
 *   - order: offsets rise within a partition, and for each key the sequence
 *     numbers of each producer strictly increase;
 *   - latency: poll-time minus the CLOCK_MONOTONIC send time carried in the
 *     value, into a log-linear histogram.
 * Consumers start at the end offsets read before producing, so only this
 * run's records are checked; records from earlier runs stay in the topic and
 * are counted at start-up (they survived the restart).
 *
 *   event_bus [options] [DATA_DIR]      (default ./klog-data; --help)
 *
 * Exit status: 0 when every record was delivered exactly once in order,
 * 1 otherwise (or on any error), 2 for a usage error.
 *
 * Only the public API (<klog/klog.h>) is used, as an application would.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <klog/klog.h>

#define TOPIC "events"
#define GROUP "event-bus"
#define NKEYS 1000
#define MAX_THREADS 64
#define FLUSH_TIMEOUT_MS 120000
#define STALL_SECONDS 30 /* give up when nothing new arrives for this long */

static const char *prog = "event_bus";

/* ---- small helpers --------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Print a failed klog call: what, then the one-line message klog wrote
 * into errbuf if there is one, else klog_strerror; then the code's name. */
static int report_err(const char *what, int rc, const char *errbuf)
{
    fprintf(stderr, "%s: %s: %s (%s)\n", prog, what, errbuf && *errbuf ? errbuf : klog_strerror(rc),
            klog_err_name(rc));
    return rc;
}

static const char *fmt_ns(char *buf, size_t cap, uint64_t ns)
{
    if (ns < 1000)
        snprintf(buf, cap, "%" PRIu64 " ns", ns);
    else if (ns < 1000000)
        snprintf(buf, cap, "%.1f us", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, cap, "%.2f ms", (double)ns / 1e6);
    else
        snprintf(buf, cap, "%.2f s", (double)ns / 1e9);
    return buf;
}

static const char *fmt_rate(char *buf, size_t cap, double per_s)
{
    if (per_s >= 1e6)
        snprintf(buf, cap, "%.2f M ", per_s / 1e6);
    else if (per_s >= 1e3)
        snprintf(buf, cap, "%.1f k ", per_s / 1e3);
    else
        snprintf(buf, cap, "%.0f ", per_s);
    return buf;
}

/* "s" for a plural, "" for one. */
static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---- latency histogram: log-linear, 64 sub-buckets per power of two (< 1.6 %) ---- */

#define H_SUB 6
#define H_N ((64 - H_SUB + 1) << H_SUB)

typedef struct hist {
    uint64_t count, max;
    uint64_t b[H_N];
} hist;

static unsigned h_index(uint64_t v)
{
    if (v < (1u << H_SUB))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned group = msb - H_SUB + 1;
    return (group << H_SUB) + (unsigned)((v >> (msb - H_SUB)) - (1u << H_SUB));
}

/* The upper bound of bucket i (a percentile is never under-reported). */
static uint64_t h_upper(unsigned i)
{
    unsigned group = i >> H_SUB, r = i & ((1u << H_SUB) - 1);
    if (group == 0)
        return r;
    unsigned shift = group - 1;
    return ((((uint64_t)1 << H_SUB) + r + 1) << shift) - 1;
}

static void h_add(hist *h, uint64_t v)
{
    h->b[h_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

static uint64_t h_quantile(const hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < H_N; i++) {
        seen += h->b[i];
        if (seen >= rank)
            return h_upper(i) < h->max ? h_upper(i) : h->max;
    }
    return h->max;
}

/* ---- options ------------------------------------------------------------------------ */

typedef struct options {
    const char *dir;
    uint64_t records;
    bool records_set;
    int producers, consumers, partitions;
    bool partitions_set;
    const char *acks, *compression;
    bool quick, fresh;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [options] [DATA_DIR]\n"
            "An in-process event bus on klog: producer threads publish keyed events to the\n"
            "topic \"" TOPIC "\", consumer threads read them back and verify every one.\n"
            "\n"
            "  DATA_DIR            data directory, created if missing (default ./klog-data)\n"
            "  --records N         events to publish (default 2000000)\n"
            "  --quick             100000 events (what the test suite runs)\n"
            "  --producers N       producer threads sharing one producer (default 4)\n"
            "  --consumers N       consumer threads, each with its own partitions (default 4)\n"
            "  --partitions N      partitions when the topic is created (default 8)\n"
            "  --acks 1|all        acknowledge on append (1), or once on disk (all)\n"
            "  --compression none|lz4|zstd\n"
            "  --fresh             delete and re-create the topic \"" TOPIC "\" first\n"
            "                      (nothing else in DATA_DIR is touched)\n",
            prog);
}

static bool parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Returns 0, or 2 after printing a usage error. */
static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){ .dir = "./klog-data", .records = 2000000, .producers = 4, .consumers = 4,
                    .partitions = 8, .acks = "1", .compression = "none" };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--quick")) {
            o->quick = true;
        } else if (!strcmp(a, "--fresh")) {
            o->fresh = true;
        } else if (!strcmp(a, "--records")) {
            if (!parse_count(val, 1, (uint64_t)1 << 36, &n))
                goto bad;
            o->records = n;
            o->records_set = true;
            i++;
        } else if (!strcmp(a, "--producers") || !strcmp(a, "--consumers")) {
            if (!parse_count(val, 1, MAX_THREADS, &n))
                goto bad;
            *(a[2] == 'p' ? &o->producers : &o->consumers) = (int)n;
            i++;
        } else if (!strcmp(a, "--partitions")) {
            if (!parse_count(val, 1, 10000, &n))
                goto bad;
            o->partitions = (int)n;
            o->partitions_set = true;
            i++;
        } else if (!strcmp(a, "--acks")) {
            if (!val || (strcmp(val, "1") && strcmp(val, "all")))
                goto bad;
            o->acks = val;
            i++;
        } else if (!strcmp(a, "--compression")) {
            if (!val || (strcmp(val, "none") && strcmp(val, "lz4") && strcmp(val, "zstd")))
                goto bad;
            o->compression = val;
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "%s: unknown option %s\n", prog, a);
            usage(stderr);
            return 2;
        } else {
            o->dir = a;
        }
        continue;
    bad:
        fprintf(stderr, "%s: %s needs %s\n", prog, a,
                !strcmp(a, "--acks")          ? "1 or all"
                : !strcmp(a, "--compression") ? "none, lz4 or zstd"
                : !strcmp(a, "--partitions")  ? "a count from 1 to 10000"
                : !strcmp(a, "--records")     ? "a count from 1 to 2^36"
                                              : "a count from 1 to 64");
        return 2;
    }
    if (o->quick && !o->records_set)
        o->records = 100000;
    if ((uint64_t)o->producers > o->records)
        o->producers = (int)o->records;
    return 0;
}

/* ---- the shared state of one run ------------------------------------------------------ */

/*
 * Every record has a global index: base[producer] + sequence number.  The
 * delivery callback and the consumers meet in three arrays indexed by it:
 * `acked` and `seen` bitmaps, and `where`, the (partition, offset) of the
 * record as first reported by either side (the other side must agree).
 */
typedef struct bus {
    int nproducers, nconsumers, nparts;
    uint64_t total;
    uint64_t base[MAX_THREADS + 1];
    int64_t *start_off;              /* per partition: end offset before this run */

    _Atomic uint64_t *acked, *seen;  /* bitmaps over the global index */
    _Atomic uint64_t *where;         /* (partition + 1) << 48 | offset; 0 = not yet */
    _Atomic int32_t key_part[NKEYS]; /* partition of each key, -1 = not seen */

    /* delivery callback */
    _Atomic uint64_t delivered, delivery_errors, double_reports;
    _Atomic int first_delivery_err;
    /* consumers */
    _Atomic uint64_t consumed;       /* distinct records read */
    _Atomic uint64_t target;         /* records to wait for; UINT64_MAX until known */
    _Atomic uint64_t where_mismatch, key_moved;
    _Atomic bool stop, consumer_failed;
    /* the group: per partition the next offset to check (whoever owns it),
     * and how many partitions are assigned across the members */
    _Atomic int64_t *next_off;
    _Atomic int assigned;
    _Atomic uint64_t rebalances;

    pthread_mutex_t mu;              /* progress: consumers wake the main thread */
    pthread_cond_t cv;
} bus;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static bool bit_set(_Atomic uint64_t *bm, uint64_t i)
{
    uint64_t m = (uint64_t)1 << (i & 63);
    return (atomic_fetch_or_explicit(&bm[i >> 6], m, memory_order_relaxed) & m) != 0;
}

static bool bit_get(_Atomic uint64_t *bm, uint64_t i)
{
    return (atomic_load_explicit(&bm[i >> 6], memory_order_relaxed) >> (i & 63)) & 1;
}

/* Record where a record is; false if the other side saw it elsewhere. */
static bool note_where(bus *b, uint64_t idx, int32_t part, int64_t off)
{
    uint64_t v = ((uint64_t)(part + 1) << 48) | ((uint64_t)off & (((uint64_t)1 << 48) - 1));
    uint64_t old = 0;
    if (atomic_compare_exchange_strong(&b->where[idx], &old, v) || old == v)
        return true;
    atomic_fetch_add(&b->where_mismatch, 1);
    return false;
}

/* Delivery callback: runs on a sending thread or the producer's own thread,
 * with no klog lock held.  Quick: atomics only, no klog calls. */
static void on_delivery(void *arg, const klog_delivery *d)
{
    bus *b = arg;
    uint64_t idx = (uint64_t)(uintptr_t)d->opaque;
    if (d->err) {
        int zero = 0;
        atomic_compare_exchange_strong(&b->first_delivery_err, &zero, d->err);
        atomic_fetch_add(&b->delivery_errors, 1);
        return;
    }
    if (idx >= b->total || bit_set(b->acked, idx)) {
        atomic_fetch_add(&b->double_reports, 1);
        return;
    }
    note_where(b, idx, d->partition, d->offset);
    atomic_fetch_add_explicit(&b->delivered, 1, memory_order_relaxed);
}

/* ---- producers ----------------------------------------------------------------------- */

typedef struct producer_ctx {
    bus *b;
    klog_producer *p;
    int id;
    pthread_t thread;
    uint64_t sent, bytes;
    int err;                 /* first klog_producer_send failure */
} producer_ctx;

static const char *const event_types[] = { "page_view", "click", "add_to_cart", "search", "purchase" };

/* One event: a small JSON object naming the producer, its sequence number
 * and the send time, so a consumer can check and time it. */
static int make_value(char *buf, size_t cap, unsigned user, int producer, uint64_t seq, uint64_t sent_ns)
{
    return snprintf(buf, cap,
                    "{\"user\":\"user-%u\",\"producer\":%d,\"seq\":%" PRIu64 ",\"sent_ns\":%" PRIu64
                    ",\"type\":\"%s\",\"item\":%u}",
                    user, producer, seq, sent_ns, event_types[seq % 5], (unsigned)((seq * 7919u) % 100000u));
}

static void *producer_main(void *arg)
{
    producer_ctx *pc = arg;
    bus *b = pc->b;
    uint64_t n = b->base[pc->id + 1] - b->base[pc->id];
    uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(pc->id + 1);
    char key[32], value[256];
    for (uint64_t seq = 0; seq < n && !interrupted && !atomic_load_explicit(&b->stop, memory_order_relaxed); seq++) {
        unsigned user = (unsigned)(xorshift(&rng) % NKEYS);
        int klen = snprintf(key, sizeof key, "user-%u", user);
        int vlen = make_value(value, sizeof value, user, pc->id, seq, now_ns());
        klog_record rec = KLOG_RECORD_INIT;
        rec.key = key;
        rec.key_len = (size_t)klen;
        rec.value = value;
        rec.value_len = (size_t)vlen;
        rec.opaque = (void *)(uintptr_t)(b->base[pc->id] + seq);
        int rc = klog_producer_send(pc->p, TOPIC, &rec);
        if (rc < 0) {
            char what[64];
            snprintf(what, sizeof what, "producer thread %d: klog_producer_send", pc->id);
            report_err(what, rc, NULL);
            pc->err = rc;
            break;
        }
        pc->sent++;
        pc->bytes += (uint64_t)klen + (uint64_t)vlen;
    }
    return NULL;
}

/* ---- consumers ----------------------------------------------------------------------- */

typedef struct consumer_ctx {
    bus *b;
    klog_consumer *c;
    int id;
    pthread_t thread;
    int64_t *last_off;       /* per partition of the topic (only ours used) */
    bool *owned;             /* per partition: assigned to this member now */
    _Atomic int nowned;
    int64_t *last_seq;       /* [key][producer]: last sequence number seen */
    hist lat;
    uint64_t read, dups, order_errors, malformed, foreign_part, last_ns;
    int err;                 /* first klog_consumer_poll failure */
} consumer_ctx;

/* The unsigned number after `pat` (e.g. "\"seq\":") in v; false if absent. */
static bool json_u64(const char *v, size_t len, const char *pat, size_t plen, uint64_t *out)
{
    const char *p = memmem(v, len, pat, plen);
    if (!p)
        return false;
    p += plen;
    const char *end = v + len;
    uint64_t x = 0;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9' && digits < 20; p++, digits++)
        x = x * 10 + (uint64_t)(*p - '0');
    *out = x;
    return digits > 0 && digits < 20;
}

#define JSON_U64(v, len, name, out) json_u64(v, len, "\"" name "\":", sizeof("\"" name "\":") - 1, out)

/* The n of a "user-<n>" key; -1 if it is not one of ours. */
static int parse_user(const void *key, size_t len)
{
    const char *k = key;
    if (!k || len < 6 || len > 9 || memcmp(k, "user-", 5))
        return -1;
    int n = 0;
    for (size_t i = 5; i < len; i++) {
        if (k[i] < '0' || k[i] > '9')
            return -1;
        n = n * 10 + (k[i] - '0');
    }
    return n < NKEYS ? n : -1;
}

static void bad_record(consumer_ctx *cc, const klog_message *m, const char *why)
{
    if (cc->malformed++ == 0)
        fprintf(stderr, "%s: consumer %d: %s at %s-%d offset %" PRId64 ": %.*s\n", prog, cc->id, why, m->topic,
                m->partition, m->offset, m->value ? (int)(m->value_len < 200 ? m->value_len : 200) : 6,
                m->value ? (const char *)m->value : "(null)");
}

/* Check one record; returns true if it is new (counted as consumed). */
static bool check_record(consumer_ctx *cc, const klog_message *m, uint64_t now)
{
    bus *b = cc->b;
    int32_t part = m->partition;
    if (part < 0 || part >= b->nparts || !cc->owned[part]) {
        cc->foreign_part++;
        return false;
    }
    atomic_store_explicit(&b->next_off[part], m->offset + 1, memory_order_relaxed);
    if (m->offset <= cc->last_off[part])
        cc->order_errors++; /* offsets must rise within a partition */
    cc->last_off[part] = m->offset;

    int user = parse_user(m->key, m->key_len);
    const char *v = m->value;
    size_t vlen = m->value_len;
    uint64_t producer, seq, sent;
    if (user < 0 || !v) {
        bad_record(cc, m, "not an event of this program (key)");
        return false;
    }
    if (!JSON_U64(v, vlen, "producer", &producer) || !JSON_U64(v, vlen, "seq", &seq) ||
        !JSON_U64(v, vlen, "sent_ns", &sent) || producer >= (uint64_t)b->nproducers ||
        seq >= b->base[producer + 1] - b->base[producer]) {
        bad_record(cc, m, "not an event of this program (value)");
        return false;
    }
    /* the key inside the value must be the record's key */
    const char *u = memmem(v, vlen, "\"user\":\"", 8);
    if (!u || (size_t)(v + vlen - (u + 8)) < m->key_len + 1 || memcmp(u + 8, m->key, m->key_len) ||
        u[8 + m->key_len] != '"') {
        bad_record(cc, m, "key and value disagree");
        return false;
    }

    uint64_t idx = b->base[producer] + seq;
    if (bit_set(b->seen, idx)) {
        cc->dups++;
        return false;
    }
    note_where(b, idx, part, m->offset);
    int32_t expect = -1;
    if (!atomic_compare_exchange_strong(&b->key_part[user], &expect, part) && expect != part)
        atomic_fetch_add(&b->key_moved, 1);
    int64_t *last = &cc->last_seq[(size_t)user * (size_t)b->nproducers + producer];
    if ((int64_t)seq <= *last)
        cc->order_errors++;
    *last = (int64_t)seq;
    h_add(&cc->lat, now > sent ? now - sent : 0);
    return true;
}

/* Rebalance callback: runs on the member's own thread inside its poll.  A
 * partition that arrives is read from where this run's checking of it
 * stands (its start, or where its previous owner stopped). */
static void on_rebalance(klog_consumer *c, int event, klog_partition_list *parts, void *opaque)
{
    consumer_ctx *cc = opaque;
    bus *b = cc->b;
    size_t n = klog_partition_list_count(parts);
    for (size_t i = 0; i < n; i++) {
        const char *topic;
        int32_t p;
        if (klog_partition_list_get(parts, i, &topic, &p, NULL, NULL, NULL) < 0 || strcmp(topic, TOPIC) ||
            p < 0 || p >= b->nparts)
            continue;
        if (event == KLOG_REBALANCE_ASSIGNED) {
            int64_t next = atomic_load(&b->next_off[p]);
            klog_consumer_seek(c, TOPIC, p, next);
            cc->last_off[p] = next - 1;
            cc->owned[p] = true;
            atomic_fetch_add(&b->assigned, 1);
            atomic_fetch_add(&cc->nowned, 1);
        } else if (cc->owned[p]) {
            cc->owned[p] = false;
            atomic_fetch_sub(&b->assigned, 1);
            atomic_fetch_sub(&cc->nowned, 1);
        }
    }
    atomic_fetch_add(&b->rebalances, 1);
}

static void *consumer_main(void *arg)
{
    consumer_ctx *cc = arg;
    bus *b = cc->b;
    while (!atomic_load(&b->stop)) {
        const klog_message *const *msgs;
        int n = klog_consumer_poll(cc->c, 250, &msgs); /* blocks until records or 250 ms */
        if (n < 0) {
            char what[64];
            snprintf(what, sizeof what, "consumer thread %d: klog_consumer_poll", cc->id);
            report_err(what, n, NULL);
            cc->err = n;
            atomic_store(&b->consumer_failed, true);
            break;
        }
        if (n == 0)
            continue;
        uint64_t now = now_ns();
        uint64_t fresh = 0;
        for (int i = 0; i < n; i++)
            fresh += check_record(cc, msgs[i], now);
        cc->read += (uint64_t)n;
        cc->last_ns = now;
        uint64_t total = atomic_fetch_add(&b->consumed, fresh) + fresh;
        if (total >= atomic_load(&b->target)) {
            pthread_mutex_lock(&b->mu);
            pthread_cond_broadcast(&b->cv);
            pthread_mutex_unlock(&b->mu);
        }
    }
    pthread_mutex_lock(&b->mu);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* ---- topic ---------------------------------------------------------------------------- */

typedef struct topic_state {
    int nparts;              /* KLOG_EUNKNOWN_TOPIC or < 0 on error */
    int64_t records;         /* stored: sum of end - start */
    uint64_t bytes;
    uint32_t segments;
    klog_partition_info *parts;
} topic_state;

/* Describe TOPIC into ts (ts->parts allocated; free it).  Returns the
 * partition count or a klog error. */
static int describe(klog *k, topic_state *ts)
{
    *ts = (topic_state){ 0 };
    int n = klog_topic_describe(k, TOPIC, NULL, 0, NULL, 0);
    if (n < 0)
        return ts->nparts = n;
    ts->parts = calloc((size_t)n, sizeof *ts->parts);
    if (!ts->parts)
        return ts->nparts = -ENOMEM;
    for (int i = 0; i < n; i++)
        ts->parts[i].struct_size = sizeof(klog_partition_info);
    int m = klog_topic_describe(k, TOPIC, ts->parts, (size_t)n, NULL, 0);
    if (m < 0)
        return ts->nparts = m;
    if (m < n)
        n = m; /* cannot shrink, but stay within what was filled */
    for (int i = 0; i < n; i++) {
        ts->records += ts->parts[i].end_offset - ts->parts[i].start_offset;
        ts->bytes += ts->parts[i].size_bytes;
        ts->segments += ts->parts[i].segments;
        if (ts->parts[i].error)
            fprintf(stderr, "%s: warning: partition %d is read-only: %s\n", prog, i,
                    klog_strerror(ts->parts[i].error));
    }
    return ts->nparts = n;
}

static int create_topic(klog *k, int partitions)
{
    char err[256] = "";
    int rc = klog_topic_create(k, TOPIC, partitions, NULL, err, sizeof err);
    if (rc < 0)
        report_err("klog_topic_create", rc, err);
    return rc;
}

/* ---- main ----------------------------------------------------------------------------- */

static int set_conf(klog_conf *conf, const char *key, const char *value)
{
    char err[256] = "";
    int rc = klog_conf_set(conf, key, value, err, sizeof err);
    if (rc < 0) {
        char what[96];
        snprintf(what, sizeof what, "klog_conf_set(%s=%s)", key, value);
        report_err(what, rc, err);
    }
    return rc;
}

/* Everything one run holds, so that each phase below is a function and one
 * cleanup frees whatever was made. */
typedef struct run {
    options o;
    klog *k;
    klog_conf *pconf, *cconf;
    klog_producer *producer;
    bus *b;
    producer_ctx pcs[MAX_THREADS];
    consumer_ctx *ccs;
    int pstarted, cstarted, cmade;   /* threads started, consumers made */
    char backend[32];
    topic_state ts, after;
    char linger[32], batch[32];
} run;

/* What the producing and consuming phases measured, and the checks. */
typedef struct tally {
    uint64_t t0, t_acked, t_last;
    uint64_t sent, bytes, delivered, consumed, read;
    int send_failures, poll_failures, flush_rc;
    bool stalled;
    hist *lat;
    uint64_t dups, order_errors, malformed, foreign;
    uint64_t lost, first_lost, unacked_seen, not_acked;
    uint64_t delivery_errors, where_mismatch, key_moved, double_reports;
} tally;

/* Open the instance and find the topic (or create it, or re-create it with
 * --fresh); then read its end offsets into r->ts: the consumers start there. */
static int open_topic(run *r)
{
    const char *ver;
    klog_version(&ver);
    char err[512] = "";
    uint64_t t_open = now_ns();
    int rc = klog_open(&r->k, r->o.dir, NULL, err, sizeof err);
    if (rc < 0)
        return report_err("klog_open", rc, err);
    double open_ms = (double)(now_ns() - t_open) / 1e6;
    snprintf(r->backend, sizeof r->backend, "%s", klog_io_backend(r->k));
    printf("klog %s event bus: topic \"%s\" in %s (I/O backend: %s)\n", ver, TOPIC, r->o.dir, r->backend);

    topic_state *ts = &r->ts;
    rc = describe(r->k, ts);
    if (rc == KLOG_EUNKNOWN_TOPIC) {
        if ((rc = create_topic(r->k, r->o.partitions)) < 0)
            return rc;
        printf("  opened in %.1f ms; created topic \"%s\" with %d partition%s\n", open_ms, TOPIC, r->o.partitions,
               plural((uint64_t)r->o.partitions));
    } else if (rc < 0) {
        return report_err("klog_topic_describe(\"" TOPIC "\")", rc, NULL);
    } else if (r->o.fresh) {
        if ((rc = klog_topic_delete(r->k, TOPIC)) < 0)
            return report_err("klog_topic_delete(\"" TOPIC "\")", rc, NULL);
        int np = r->o.partitions_set ? r->o.partitions : ts->nparts;
        if ((rc = create_topic(r->k, np)) < 0)
            return rc;
        printf("  opened in %.1f ms; --fresh: deleted topic \"%s\" (%" PRId64
               " records) and created it again with %d partition%s\n",
               open_ms, TOPIC, ts->records, np, plural((uint64_t)np));
    } else {
        printf("  opened in %.1f ms; found %" PRId64 " records from earlier runs; they are still there after restart\n",
               open_ms, ts->records);
        printf("  (topic \"%s\": %d partition%s, %u segment%s, %.1f MB on disk)\n", TOPIC, ts->nparts,
               plural((uint64_t)ts->nparts), ts->segments, plural(ts->segments), (double)ts->bytes / 1e6);
        if (r->o.partitions_set && r->o.partitions != ts->nparts)
            printf("  note: the topic already exists with %d partitions; --partitions %d applies only when it is "
                   "created (use --fresh)\n",
                   ts->nparts, r->o.partitions);
    }
    free(ts->parts);
    if ((rc = describe(r->k, ts)) < 0)
        return report_err("klog_topic_describe(\"" TOPIC "\")", rc, NULL);
    return 0;
}

/* The shared state: bitmaps over every record of the run, per-partition
 * start offsets, and each producer's range of global indexes. */
static int bus_new(run *r)
{
    const options *o = &r->o;
    const topic_state *ts = &r->ts;
    bus *b = r->b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    b->nparts = ts->nparts;
    b->nproducers = o->producers;
    b->nconsumers = o->consumers < ts->nparts ? o->consumers : ts->nparts;
    if (b->nconsumers < o->consumers)
        printf("  note: %d consumer thread%s for %d partition%s (a partition is read by one thread only)\n",
               b->nconsumers, plural((uint64_t)b->nconsumers), ts->nparts, plural((uint64_t)ts->nparts));
    b->total = o->records;
    for (int i = 0; i < b->nproducers; i++)
        b->base[i + 1] = b->base[i] + o->records / (uint64_t)b->nproducers +
                         ((uint64_t)i < o->records % (uint64_t)b->nproducers);
    size_t words = (size_t)((b->total + 63) / 64);
    b->acked = calloc(words, sizeof *b->acked);
    b->seen = calloc(words, sizeof *b->seen);
    b->where = calloc((size_t)b->total, sizeof *b->where);
    b->start_off = calloc((size_t)b->nparts, sizeof *b->start_off);
    b->next_off = calloc((size_t)b->nparts, sizeof *b->next_off);
    r->ccs = calloc((size_t)b->nconsumers, sizeof *r->ccs);
    if (!b->acked || !b->seen || !b->where || !b->start_off || !b->next_off || !r->ccs)
        return -ENOMEM;
    for (int i = 0; i < b->nparts; i++) {
        b->start_off[i] = ts->parts[i].end_offset;
        atomic_init(&b->next_off[i], ts->parts[i].end_offset);
    }
    for (int i = 0; i < NKEYS; i++)
        atomic_init(&b->key_part[i], -1);
    atomic_init(&b->target, UINT64_MAX);
    return 0;
}

/* One producer, shared by every producer thread. */
static int make_producer(run *r)
{
    char err[512] = "";
    int rc;
    if ((rc = klog_conf_new(&r->pconf)) < 0)
        return report_err("klog_conf_new", rc, NULL);
    if ((rc = set_conf(r->pconf, "acks", r->o.acks)) < 0 ||
        (rc = set_conf(r->pconf, "compression.type", r->o.compression)) < 0)
        return rc;
    if ((rc = klog_producer_new(r->k, r->pconf, &r->producer, err, sizeof err)) < 0)
        return report_err("klog_producer_new", rc, err);
    if ((rc = klog_producer_set_delivery_cb(r->producer, on_delivery, r->b)) < 0)
        return report_err("klog_producer_set_delivery_cb", rc, NULL);
    if ((rc = klog_conf_get(r->pconf, "linger.ms", r->linger, sizeof r->linger)) < 0 ||
        (rc = klog_conf_get(r->pconf, "batch.size", r->batch, sizeof r->batch)) < 0)
        return report_err("klog_conf_get", rc, NULL);
    return 0;
}

/* Consumers: the members of one group; the group shares the partitions out
 * (cooperative-sticky: a rebalance moves only what it must).  An offset out
 * of range is an error here, not a silent reset. */
static int make_consumers(run *r)
{
    bus *b = r->b;
    char err[512] = "";
    int rc;
    if ((rc = klog_conf_new(&r->cconf)) < 0)
        return report_err("klog_conf_new", rc, NULL);
    if ((rc = set_conf(r->cconf, "auto.offset.reset", "none")) < 0 || (rc = set_conf(r->cconf, "group.id", GROUP)) < 0 ||
        (rc = set_conf(r->cconf, "partition.assignment.strategy", "cooperative-sticky")) < 0)
        return rc;
    for (int i = 0; i < b->nconsumers; i++, r->cmade++) {
        consumer_ctx *cc = &r->ccs[i];
        cc->b = b;
        cc->id = i;
        cc->last_off = malloc((size_t)b->nparts * sizeof *cc->last_off);
        cc->owned = calloc((size_t)b->nparts, sizeof *cc->owned);
        cc->last_seq = malloc((size_t)NKEYS * (size_t)b->nproducers * sizeof *cc->last_seq);
        if (!cc->last_off || !cc->last_seq || !cc->owned)
            return -ENOMEM;
        for (int p = 0; p < b->nparts; p++)
            cc->last_off[p] = b->start_off[p] - 1;
        for (size_t j = 0; j < (size_t)NKEYS * (size_t)b->nproducers; j++)
            cc->last_seq[j] = -1;
        if ((rc = klog_consumer_new(r->k, r->cconf, &cc->c, err, sizeof err)) < 0)
            return report_err("klog_consumer_new", rc, err);
        const char *topics[] = { TOPIC };
        if ((rc = klog_consumer_set_rebalance_cb(cc->c, on_rebalance, cc)) < 0 ||
            (rc = klog_consumer_subscribe(cc->c, topics, 1)) < 0)
            return report_err("klog_consumer_subscribe", rc, NULL);
    }
    return 0;
}

/* Start the consumer threads and wait until the group has settled: every
 * partition has an owner and every member has a share (a member that joins
 * later would only move partitions mid-run, which the checks also survive). */
static int start_consumers(run *r)
{
    bus *b = r->b;
    int rc;
    for (; r->cstarted < b->nconsumers; r->cstarted++)
        if ((rc = -pthread_create(&r->ccs[r->cstarted].thread, NULL, consumer_main, &r->ccs[r->cstarted])) < 0)
            return report_err("pthread_create", rc, NULL);
    uint64_t settle0 = now_ns();
    for (;;) {
        bool all = atomic_load(&b->assigned) == b->nparts;
        for (int i = 0; all && i < b->nconsumers; i++)
            all = atomic_load(&r->ccs[i].nowned) > 0;
        if (all || atomic_load(&b->consumer_failed) || interrupted ||
            now_ns() - settle0 >= (uint64_t)STALL_SECONDS * 1000000000u)
            break;
        struct timespec ts1 = { 0, 1000000 };
        nanosleep(&ts1, NULL);
    }
    printf("  group settled in %.1f ms: %d of %d partitions assigned, %" PRIu64 " rebalance callback%s\n",
           (double)(now_ns() - settle0) / 1e6, atomic_load(&b->assigned), b->nparts,
           atomic_load(&b->rebalances), plural(atomic_load(&b->rebalances)));
    return 0;
}

/* Produce: start the producer threads, wait for them, then for every
 * delivery report. */
static int produce(run *r, tally *t)
{
    bus *b = r->b;
    int rc;
    t->t0 = now_ns();
    for (; r->pstarted < b->nproducers; r->pstarted++) {
        r->pcs[r->pstarted] = (producer_ctx){ .b = b, .p = r->producer, .id = r->pstarted };
        if ((rc = -pthread_create(&r->pcs[r->pstarted].thread, NULL, producer_main, &r->pcs[r->pstarted])) < 0)
            return report_err("pthread_create", rc, NULL);
    }
    for (int i = 0; i < r->pstarted; i++) {
        pthread_join(r->pcs[i].thread, NULL);
        t->sent += r->pcs[i].sent;
        t->bytes += r->pcs[i].bytes;
        t->send_failures += r->pcs[i].err != 0;
    }
    r->pstarted = 0;
    t->flush_rc = klog_producer_flush(r->producer, FLUSH_TIMEOUT_MS);
    if (t->flush_rc < 0)
        report_err("klog_producer_flush", t->flush_rc, NULL);
    t->t_acked = now_ns();
    t->delivered = atomic_load(&b->delivered);
    return 0;
}

/* Consume: wait until every acknowledged record was read, a consumer
 * failed, or nothing new arrived for STALL_SECONDS; then stop the
 * consumer threads. */
static void wait_consumed(run *r, tally *t)
{
    bus *b = r->b;
    atomic_store(&b->target, t->delivered);
    pthread_mutex_lock(&b->mu);
    uint64_t progress = atomic_load(&b->consumed), stall_since = now_ns();
    while (atomic_load(&b->consumed) < t->delivered && !atomic_load(&b->consumer_failed) && !interrupted) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_nsec += 100 * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&b->cv, &b->mu, &dl);
        uint64_t c = atomic_load(&b->consumed), now = now_ns();
        if (c != progress) {
            progress = c;
            stall_since = now;
        } else if (now - stall_since > (uint64_t)STALL_SECONDS * 1000000000u) {
            t->stalled = true;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    atomic_store(&b->stop, true);
    int rc;
    for (int i = 0; i < r->cmade; i++)
        if ((rc = klog_consumer_wakeup(r->ccs[i].c)) < 0)
            report_err("klog_consumer_wakeup", rc, NULL);
    for (int i = 0; i < r->cstarted; i++)
        pthread_join(r->ccs[i].thread, NULL);
    r->cstarted = 0;
}

/* Add up what the consumers saw and hold it against the bitmaps. */
static int count_up(run *r, tally *t)
{
    bus *b = r->b;
    if (!(t->lat = calloc(1, sizeof *t->lat)))
        return -ENOMEM;
    t->t_last = t->t0;
    for (int i = 0; i < b->nconsumers; i++) {
        consumer_ctx *cc = &r->ccs[i];
        t->read += cc->read;
        t->dups += cc->dups;
        t->order_errors += cc->order_errors;
        t->malformed += cc->malformed;
        t->foreign += cc->foreign_part;
        t->poll_failures += cc->err != 0;
        if (cc->last_ns > t->t_last)
            t->t_last = cc->last_ns;
        for (unsigned j = 0; j < H_N; j++)
            t->lat->b[j] += cc->lat.b[j];
        t->lat->count += cc->lat.count;
        if (cc->lat.max > t->lat->max)
            t->lat->max = cc->lat.max;
    }
    t->consumed = atomic_load(&b->consumed);
    t->first_lost = UINT64_MAX;
    for (uint64_t i = 0; i < b->total; i++) {
        bool a = bit_get(b->acked, i), s = bit_get(b->seen, i);
        t->not_acked += !a;
        if (a && !s) {
            if (t->first_lost == UINT64_MAX)
                t->first_lost = i;
            t->lost++;
        }
        t->unacked_seen += s && !a;
    }
    t->delivery_errors = atomic_load(&b->delivery_errors);
    t->where_mismatch = atomic_load(&b->where_mismatch);
    t->key_moved = atomic_load(&b->key_moved);
    t->double_reports = atomic_load(&b->double_reports);
    return 0;
}

/* Close in order: consumers, the producer (flushes), then the instance.
 * Returns whether everything reached the disk cleanly. */
static bool close_all(run *r, const tally *t)
{
    int rc;
    for (int i = 0; i < r->cmade; i++) {
        if ((rc = klog_consumer_close(r->ccs[i].c)) < 0)
            report_err("klog_consumer_close", rc, NULL);
        r->ccs[i].c = NULL;
    }
    int close_rc = klog_producer_close(r->producer);
    r->producer = NULL;
    if (close_rc < 0)
        report_err("klog_producer_close", close_rc, NULL);
    if ((rc = describe(r->k, &r->after)) < 0)
        report_err("klog_topic_describe(\"" TOPIC "\")", rc, NULL);
    int kclose_rc = klog_close(r->k);
    r->k = NULL;
    if (kclose_rc < 0)
        report_err("klog_close", kclose_rc, NULL);
    return t->flush_rc == 0 && close_rc == 0 && kclose_rc == 0 && r->after.nparts > 0;
}

static void print_figures(const run *r, const tally *t)
{
    char r1[32], r2[32], d1[32], d2[32], d3[32], d4[32];
    double prod_s = (double)(t->t_acked - t->t0) / 1e9, cons_s = (double)(t->t_last - t->t0) / 1e9;
    printf("\n");
    printf("  produced  %" PRIu64 " records in %.2f s: %srecords/s, %.1f MB/s (keys + values)", t->sent, prod_s,
           fmt_rate(r1, sizeof r1, prod_s > 0 ? (double)t->sent / prod_s : 0),
           prod_s > 0 ? (double)t->bytes / prod_s / 1e6 : 0.0);
    if (t->delivered == t->sent)
        printf(", all acknowledged\n");
    else
        printf(", %" PRIu64 " acknowledged\n", t->delivered);
    printf("  consumed  %" PRIu64 " records in %.2f s: %srecords/s, %.1f MB/s, by %d thread%s alongside the producers\n",
           t->consumed, cons_s, fmt_rate(r2, sizeof r2, cons_s > 0 ? (double)t->consumed / cons_s : 0),
           cons_s > 0 && t->sent ? (double)t->bytes * ((double)t->consumed / (double)t->sent) / cons_s / 1e6 : 0.0,
           r->b->nconsumers, plural((uint64_t)r->b->nconsumers));
    printf("  latency   end to end (send -> returned by poll) of %" PRIu64 " records, measured under full load\n"
           "            (producers sending flat out, not at a fixed rate): p50 %s, p99 %s, p99.9 %s, max %s\n",
           t->lat->count, fmt_ns(d1, sizeof d1, h_quantile(t->lat, 0.50)),
           fmt_ns(d2, sizeof d2, h_quantile(t->lat, 0.99)), fmt_ns(d3, sizeof d3, h_quantile(t->lat, 0.999)),
           fmt_ns(d4, sizeof d4, t->lat->max));
    printf("  delivery  %" PRIu64 " acknowledged, %" PRIu64 " delivery errors", t->delivered, t->delivery_errors);
    if (t->delivery_errors)
        printf(" (first: %s)", klog_strerror(atomic_load(&r->b->first_delivery_err)));
    if (t->send_failures)
        printf(", %d producer threads stopped by a send error", t->send_failures);
    printf("\n");
}

/* Every check of the run; prints the verdict and returns whether it passed. */
static bool print_verdict(const run *r, const tally *t)
{
    const bus *b = r->b;
    bool passed = !interrupted && !t->stalled && t->flush_rc == 0 && t->send_failures == 0 &&
                  t->poll_failures == 0 && t->sent == b->total && t->delivered == b->total && t->not_acked == 0 &&
                  t->delivery_errors == 0 && t->consumed == b->total && t->lost == 0 && t->dups == 0 &&
                  t->unacked_seen == 0 && t->order_errors == 0 && t->where_mismatch == 0 && t->key_moved == 0 &&
                  t->malformed == 0 && t->foreign == 0 && t->double_reports == 0;
    if (passed) {
        printf("  verified  all %" PRIu64 " records delivered exactly once, per-key order kept\n", b->total);
        printf("            (each read back at the partition and offset its delivery report named)\n");
        return true;
    }
    if (interrupted) {
        /* Stopped early: records not sent or not yet read are expected;
         * anything else would still be a fault. */
        printf("  stopped   interrupted after %" PRIu64 " of %" PRIu64 " records; not verified to the end", t->sent,
               b->total);
        if (t->dups || t->unacked_seen || t->order_errors || t->where_mismatch || t->key_moved || t->malformed ||
            t->foreign)
            printf(" (but faults were seen: %" PRIu64 " duplicates, %" PRIu64 " out of order, %" PRIu64
                   " misplaced, %" PRIu64 " unexpected)",
                   t->dups, t->order_errors, t->where_mismatch + t->key_moved,
                   t->unacked_seen + t->malformed + t->foreign);
        printf("\n");
        return false;
    }
    printf("  FAILED    verification:");
    if (t->stalled)
        printf(" gave up after %d s without progress;", STALL_SECONDS);
    if (t->lost) {
        uint64_t p = 0;
        while (b->base[p + 1] <= t->first_lost)
            p++;
        printf(" %" PRIu64 " acknowledged records never read (first: producer %" PRIu64 " seq %" PRIu64 ");",
               t->lost, p, t->first_lost - b->base[p]);
    }
    static const struct { size_t off; const char *what; } counts[] = {
        { offsetof(tally, not_acked), "records not acknowledged" },
        { offsetof(tally, dups), "duplicates" },
        { offsetof(tally, unacked_seen), "records read whose delivery failed" },
        { offsetof(tally, order_errors), "out of order" },
        { offsetof(tally, where_mismatch), "read at another partition/offset than reported" },
        { offsetof(tally, key_moved), "keys seen in two partitions" },
        { offsetof(tally, malformed), "records not of this run" },
        { offsetof(tally, foreign), "records from partitions not assigned" },
        { offsetof(tally, double_reports), "records reported twice" },
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        uint64_t v = *(const uint64_t *)((const char *)t + counts[i].off);
        if (v)
            printf(" %" PRIu64 " %s;", v, counts[i].what);
    }
    if (t->poll_failures)
        printf(" %d consumers stopped by a poll error;", t->poll_failures);
    if (t->flush_rc)
        printf(" flush: %s;", klog_strerror(t->flush_rc));
    printf(" (%" PRIu64 " reads in all)\n", t->read);
    return false;
}

/* Stop whatever still runs and free everything; NULL-safe throughout. */
static void cleanup(run *r)
{
    int rc;
    bus *b = r->b;
    if (b)
        atomic_store(&b->stop, true);
    for (int i = 0; i < r->pstarted; i++)
        pthread_join(r->pcs[i].thread, NULL);
    for (int i = 0; i < r->cstarted; i++) {
        klog_consumer_wakeup(r->ccs[i].c);
        pthread_join(r->ccs[i].thread, NULL);
    }
    for (int i = 0; r->ccs && i < b->nconsumers; i++) { /* closed ones are NULL */
        klog_consumer_close(r->ccs[i].c);
        free(r->ccs[i].last_off);
        free(r->ccs[i].last_seq);
        free(r->ccs[i].owned);
    }
    if (r->producer && (rc = klog_producer_close(r->producer)) < 0)
        report_err("klog_producer_close", rc, NULL);
    if (r->k && (rc = klog_close(r->k)) < 0)
        report_err("klog_close", rc, NULL);
    klog_conf_free(r->pconf);
    klog_conf_free(r->cconf);
    free(r->ts.parts);
    free(r->after.parts);
    free(r->ccs);
    if (b) {
        free(b->acked);
        free(b->seen);
        free(b->where);
        free(b->start_off);
        free((void *)b->next_off);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free(b);
    }
}

/* Set up, produce and consume at once, check, report.  0 when verified. */
static int run_bus(run *r)
{
    int rc;
    if ((rc = open_topic(r)) < 0)
        return 1;
    if ((rc = bus_new(r)) < 0 || (rc = make_producer(r)) < 0 || (rc = make_consumers(r)) < 0) {
        if (rc == -ENOMEM)
            report_err("out of memory", rc, NULL);
        return 1;
    }
    bus *b = r->b;
    printf("  %d producer thread%s sharing one producer (acks=%s, compression=%s, linger.ms=%s, batch.size=%s)\n",
           b->nproducers, plural((uint64_t)b->nproducers), r->o.acks, r->o.compression, r->linger, r->batch);
    printf("  %d consumer thread%s in group \"" GROUP "\" (cooperative-sticky), sharing the %d partition%s,\n"
           "  reading from where this run starts\n",
           b->nconsumers, plural((uint64_t)b->nconsumers), b->nparts, plural((uint64_t)b->nparts));
    printf("  publishing %" PRIu64 " events: keys user-0..user-%d, ~100-byte JSON values ...\n", b->total,
           NKEYS - 1);

    tally t = { 0 };
    if (start_consumers(r) < 0 || produce(r, &t) < 0)
        return 1;
    wait_consumed(r, &t);
    if (count_up(r, &t) < 0) {
        report_err("out of memory", -ENOMEM, NULL);
        return 1;
    }
    bool sync_ok = close_all(r, &t);
    print_figures(r, &t);
    bool passed = print_verdict(r, &t);
    free(t.lat);
    printf("  I/O backend %s; data directory %s", r->backend, r->o.dir);
    if (r->after.nparts > 0)
        printf(": topic \"%s\" holds %" PRId64 " records (%.1f MB on disk)", TOPIC, r->after.records,
               (double)r->after.bytes / 1e6);
    printf("\n");
    if (sync_ok)
        printf("  run it again: these records will still be there, recovered from disk (--fresh starts over)\n");
    return passed && sync_ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    static run r; /* large (per-thread contexts): not on the stack */
    int rc = parse_options(argc, argv, &r.o);
    if (rc)
        return rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    snprintf(r.backend, sizeof r.backend, "?");
    int status = run_bus(&r);
    cleanup(&r);
    return status;
}
