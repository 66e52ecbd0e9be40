/*
 * lib/topic/stats.c - klog_stats: the instance's counters as JSON or as
 * Prometheus text, and the periodic stats files.
 *
 * A snapshot is taken first (partitions under the topic references,
 * producers and consumers through their registered callbacks under
 * stats_mu), then rendered; the two renderers walk the same snapshot.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <klog/klog.h>

#include "common/common.h"
#include "common/sbuf.h"
#include "topic/internal.h"

void klog__handle_add(klog *k, kt_handle *e)
{
    pthread_mutex_lock(&k->stats_mu);
    e->next = k->handles;
    k->handles = e;
    pthread_mutex_unlock(&k->stats_mu);
}

void klog__handle_remove(klog *k, kt_handle *e)
{
    pthread_mutex_lock(&k->stats_mu);
    for (kt_handle **pp = &k->handles; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    pthread_mutex_unlock(&k->stats_mu);
}

/* ---- snapshot ------------------------------------------------------------------- */

typedef struct pstat {
    int32_t partition;
    int64_t start, end, durable, clean;
    uint64_t size, disk;
    uint32_t segments;
    int error;
    uint32_t damaged;           /* 1: opened damaged (ks_log_damage) */
    ks_log_stats ls;
    char damage[512];           /* why, when damaged */
} pstat;

typedef struct tstat {
    char name[KLOG_TOPIC_NAME_MAX + 1];
    pstat *p;
    int np;
} tstat;

typedef struct hstat {
    int kind;
    kt_handle_stats s;
} hstat;

typedef struct snap {
    uint64_t used, budget, passes, cread, cwritten;
    tstat *t;
    size_t nt;
    hstat *h;
    size_t nh;
} snap;

static void snap_free(snap *s)
{
    for (size_t i = 0; i < s->nt; i++)
        free(s->t[i].p);
    free(s->t);
    free(s->h);
}

static int snap_take(klog *k, snap *s)
{
    memset(s, 0, sizeof *s);
    s->used = atomic_load(&k->space.used);
    s->budget = k->space.limit;
    s->passes = atomic_load(&k->cleaner_passes);
    s->cread = atomic_load(&k->cleaner_bytes_read);
    s->cwritten = atomic_load(&k->cleaner_bytes_written);
    kt_topic **tv;
    ssize_t n = klog__topics_snapshot(k, &tv);
    if (n < 0)
        return (int)n;
    int rc = 0;
    if (!(s->t = calloc((size_t)n + 1, sizeof *s->t)))
        rc = -ENOMEM;
    for (ssize_t i = 0; rc == 0 && i < n; i++) {
        kt_topic *t = tv[i];
        tstat *ts = &s->t[s->nt++];
        snprintf(ts->name, sizeof ts->name, "%s", t->name);
        int np = atomic_load_explicit(&t->nparts, memory_order_acquire);
        if (!(ts->p = calloc((size_t)np + 1, sizeof *ts->p))) {
            rc = -ENOMEM;
            break;
        }
        for (int p = 0; p < np; p++) {
            ks_log *l = kpart_log(t->parts[p]);
            pstat *ps = &ts->p[ts->np++];
            ps->partition = p;
            ps->start = ks_log_start_offset(l);
            ps->end = ks_log_end_offset(l);
            ps->durable = ks_log_durable_offset(l);
            ps->clean = ks_log_clean_point(l);
            ps->size = ks_log_size_bytes(l);
            ps->disk = ks_log_disk_bytes(l);
            ps->segments = ks_log_segment_count(l);
            ps->error = ks_log_error(l);
            const char *why = ks_log_damage(l);
            if (why) {
                ps->damaged = 1;
                snprintf(ps->damage, sizeof ps->damage, "%s", why);
            }
            ks_log_get_stats(l, &ps->ls);
        }
    }
    klog__topics_release(tv, (size_t)n);
    pthread_mutex_lock(&k->stats_mu);
    size_t nh = 0;
    for (kt_handle *e = k->handles; e; e = e->next)
        nh++;
    if (rc == 0 && !(s->h = calloc(nh + 1, sizeof *s->h)))
        rc = -ENOMEM;
    for (kt_handle *e = k->handles; rc == 0 && e; e = e->next) {
        hstat *h = &s->h[s->nh++];
        h->kind = e->kind;
        e->fn(e->h, &h->s);
    }
    pthread_mutex_unlock(&k->stats_mu);
    if (rc < 0)
        snap_free(s);
    return rc;
}

/* ---- rendering --------------------------------------------------------------------- */

static double ratio(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 1.0; }

static void render_json(klog_sbuf *b, const snap *s)
{
    klog__sbuf_printf(b, "{\"instance\":{\"disk_used_bytes\":%" PRIu64 ",\"disk_budget_bytes\":%" PRIu64
          ",\"cleaner_passes\":%" PRIu64 ",\"cleaner_read_bytes\":%" PRIu64 ",\"cleaner_written_bytes\":%" PRIu64
          ",\"time_ms\":%" PRId64 "},\"topics\":[",
       s->used, s->budget, s->passes, s->cread, s->cwritten, klog__wall_ms());
    for (size_t i = 0; i < s->nt; i++) {
        const tstat *t = &s->t[i];
        klog__sbuf_printf(b, "%s{\"topic\":", i ? "," : "");
        klog__sbuf_quote(b, t->name, true);
        klog__sbuf_printf(b, ",\"partitions\":[");
        for (int j = 0; j < t->np; j++) {
            const pstat *p = &t->p[j];
            klog__sbuf_printf(b, "%s{\"partition\":%d,\"start_offset\":%" PRId64 ",\"end_offset\":%" PRId64
                  ",\"durable_offset\":%" PRId64 ",\"clean_offset\":%" PRId64 ",\"size_bytes\":%" PRIu64
                  ",\"disk_bytes\":%" PRIu64 ",\"segments\":%u,\"error\":%d,\"appended_records\":%" PRIu64
                  ",\"appended_bytes\":%" PRIu64 ",\"appended_batches\":%" PRIu64 ",\"fsyncs\":%" PRIu64
                  ",\"fsync_avg_us\":%.1f,\"fsync_max_us\":%.1f,\"rolls\":%" PRIu64,
               j ? "," : "", p->partition, p->start, p->end, p->durable, p->clean, p->size, p->disk, p->segments,
               p->error, p->ls.records, p->ls.bytes, p->ls.batches, p->ls.syncs,
               p->ls.syncs ? (double)p->ls.sync_ns / (double)p->ls.syncs / 1e3 : 0.0, (double)p->ls.sync_ns_max / 1e3,
               p->ls.rolls);
            if (p->damaged) {
                klog__sbuf_printf(b, ",\"damage\":");
                klog__sbuf_quote(b, p->damage, true);
            }
            klog__sbuf_printf(b, "}");
        }
        klog__sbuf_printf(b, "]}");
    }
    klog__sbuf_printf(b, "],\"producers\":[");
    bool first = true;
    for (size_t i = 0; i < s->nh; i++) {
        const hstat *h = &s->h[i];
        if (h->kind != KT_HANDLE_PRODUCER)
            continue;
        klog__sbuf_printf(b, "%s{\"client_id\":", first ? "" : ",");
        first = false;
        klog__sbuf_quote(b, h->s.client_id, true);
        klog__sbuf_printf(b, ",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"batch_bytes_raw\":%" PRIu64
              ",\"batch_bytes_written\":%" PRIu64 ",\"compression_ratio\":%.3f,\"delivery_errors\":%" PRIu64
              ",\"queue_records\":%" PRIu64 ",\"queue_bytes\":%" PRIu64 "}",
           h->s.records, h->s.bytes, h->s.batches, h->s.raw_bytes, h->s.out_bytes, ratio(h->s.raw_bytes, h->s.out_bytes),
           h->s.errors, h->s.queue_records, h->s.queue_bytes);
    }
    klog__sbuf_printf(b, "],\"consumers\":[");
    first = true;
    for (size_t i = 0; i < s->nh; i++) {
        const hstat *h = &s->h[i];
        if (h->kind != KT_HANDLE_CONSUMER)
            continue;
        klog__sbuf_printf(b, "%s{\"client_id\":", first ? "" : ",");
        first = false;
        klog__sbuf_quote(b, h->s.client_id, true);
        klog__sbuf_printf(b, ",\"group\":");
        klog__sbuf_quote(b, h->s.group, true);
        klog__sbuf_printf(b, ",\"member_id\":");
        klog__sbuf_quote(b, h->s.member_id, true);
        klog__sbuf_printf(b, ",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"polls\":%" PRIu64 ",\"partitions\":%" PRIu64
              ",\"lag\":%" PRIu64 "}",
           h->s.records, h->s.bytes, h->s.polls, h->s.assigned, h->s.lag);
    }
    klog__sbuf_printf(b, "]}\n");
}

/* One Prometheus family: HELP, TYPE, then samples added by the caller. */
static void fam(klog_sbuf *b, const char *name, const char *type, const char *help)
{
    klog__sbuf_printf(b, "# HELP klog_%s %s\n# TYPE klog_%s %s\n", name, help, name, type);
}

typedef struct pmetric {
    const char *name, *type, *help;
    size_t off;       /* in pstat */
    bool is_signed, is_u32, is_ns;
} pmetric;

#define PM(n, t, h, f, sgn, u32, ns) { n, t, h, offsetof(pstat, f), sgn, u32, ns }

static const pmetric pmetrics[] = {
    PM("partition_start_offset", "gauge", "First readable offset.", start, true, false, false),
    PM("partition_end_offset", "gauge", "Next offset to be written.", end, true, false, false),
    PM("partition_durable_offset", "gauge", "Offsets below are on disk.", durable, true, false, false),
    PM("partition_clean_offset", "gauge", "Compacted topics: offsets below were cleaned.", clean, true, false, false),
    PM("partition_size_bytes", "gauge", "Bytes in segments.", size, false, false, false),
    PM("partition_disk_bytes", "gauge", "Segment and index file bytes.", disk, false, false, false),
    PM("partition_segments", "gauge", "Segments.", segments, false, true, false),
    PM("partition_damaged", "gauge", "1: damaged at open, read-only (klog verify says where).", damaged, false, true,
       false),
    PM("partition_appended_records_total", "counter", "Records appended since open.", ls.records, false, false, false),
    PM("partition_appended_bytes_total", "counter", "Bytes appended since open.", ls.bytes, false, false, false),
    PM("partition_appended_batches_total", "counter", "Batches appended since open.", ls.batches, false, false, false),
    PM("partition_fsyncs_total", "counter", "fdatasyncs of segment data since open.", ls.syncs, false, false, false),
    PM("partition_fsync_seconds_total", "counter", "Time spent in those fdatasyncs.", ls.sync_ns, false, false, true),
    PM("partition_fsync_max_seconds", "gauge", "Longest of those fdatasyncs.", ls.sync_ns_max, false, false, true),
};

typedef struct hmetric {
    const char *name, *type, *help;
    size_t off;
    int kind;
} hmetric;

#define HM(n, t, h, f, k) { n, t, h, offsetof(kt_handle_stats, f), k }

static const hmetric hmetrics[] = {
    HM("producer_records_total", "counter", "Records sent.", records, KT_HANDLE_PRODUCER),
    HM("producer_bytes_total", "counter", "Key and value bytes sent.", bytes, KT_HANDLE_PRODUCER),
    HM("producer_batches_total", "counter", "Batches sealed.", batches, KT_HANDLE_PRODUCER),
    HM("producer_batch_raw_bytes_total", "counter", "Batch bytes before compression.", raw_bytes, KT_HANDLE_PRODUCER),
    HM("producer_batch_written_bytes_total", "counter", "Batch bytes after compression.", out_bytes,
       KT_HANDLE_PRODUCER),
    HM("producer_delivery_errors_total", "counter", "Records whose delivery failed.", errors, KT_HANDLE_PRODUCER),
    HM("producer_queue_records", "gauge", "Records sent and not yet reported.", queue_records, KT_HANDLE_PRODUCER),
    HM("producer_queue_bytes", "gauge", "buffer.memory in use.", queue_bytes, KT_HANDLE_PRODUCER),
    HM("consumer_records_total", "counter", "Records returned by poll.", records, KT_HANDLE_CONSUMER),
    HM("consumer_bytes_total", "counter", "Key and value bytes returned by poll.", bytes, KT_HANDLE_CONSUMER),
    HM("consumer_polls_total", "counter", "Polls.", polls, KT_HANDLE_CONSUMER),
    HM("consumer_partitions", "gauge", "Partitions assigned.", assigned, KT_HANDLE_CONSUMER),
    HM("consumer_lag", "gauge", "Records behind the partitions' ends at the last poll.", lag, KT_HANDLE_CONSUMER),
};

static void render_prom(klog_sbuf *b, const snap *s)
{
    fam(b, "disk_used_bytes", "gauge", "Segment and index bytes of the instance.");
    klog__sbuf_printf(b, "klog_disk_used_bytes %" PRIu64 "\n", s->used);
    fam(b, "disk_budget_bytes", "gauge", "disk.budget.bytes (0: none).");
    klog__sbuf_printf(b, "klog_disk_budget_bytes %" PRIu64 "\n", s->budget);
    fam(b, "cleaner_passes_total", "counter", "Cleaning passes that compacted something.");
    klog__sbuf_printf(b, "klog_cleaner_passes_total %" PRIu64 "\n", s->passes);
    fam(b, "cleaner_read_bytes_total", "counter", "Bytes the cleaner read.");
    klog__sbuf_printf(b, "klog_cleaner_read_bytes_total %" PRIu64 "\n", s->cread);
    fam(b, "cleaner_written_bytes_total", "counter", "Bytes the cleaner wrote.");
    klog__sbuf_printf(b, "klog_cleaner_written_bytes_total %" PRIu64 "\n", s->cwritten);
    for (size_t m = 0; m < KLOG_ARRAY_LEN(pmetrics); m++) {
        const pmetric *pm = &pmetrics[m];
        fam(b, pm->name, pm->type, pm->help);
        for (size_t i = 0; i < s->nt; i++)
            for (int j = 0; j < s->t[i].np; j++) {
                const char *f = (const char *)&s->t[i].p[j] + pm->off;
                klog__sbuf_printf(b, "klog_%s{topic=", pm->name);
                klog__sbuf_quote(b, s->t[i].name, false);
                klog__sbuf_printf(b, ",partition=\"%d\"} ", s->t[i].p[j].partition);
                if (pm->is_ns)
                    klog__sbuf_printf(b, "%.9f\n", (double)*(const uint64_t *)f / 1e9);
                else if (pm->is_u32)
                    klog__sbuf_printf(b, "%u\n", *(const uint32_t *)f);
                else if (pm->is_signed)
                    klog__sbuf_printf(b, "%" PRId64 "\n", *(const int64_t *)f);
                else
                    klog__sbuf_printf(b, "%" PRIu64 "\n", *(const uint64_t *)f);
            }
    }
    for (size_t m = 0; m < KLOG_ARRAY_LEN(hmetrics); m++) {
        const hmetric *hm = &hmetrics[m];
        fam(b, hm->name, hm->type, hm->help);
        unsigned idx = 0;
        for (size_t i = 0; i < s->nh; i++) {
            if (s->h[i].kind != hm->kind)
                continue;
            klog__sbuf_printf(b, "klog_%s{client_id=", hm->name);
            klog__sbuf_quote(b, s->h[i].s.client_id, false);
            if (hm->kind == KT_HANDLE_CONSUMER) {
                klog__sbuf_printf(b, ",group=");
                klog__sbuf_quote(b, s->h[i].s.group, false);
            }
            klog__sbuf_printf(b, ",handle=\"%u\"} %" PRIu64 "\n", idx++, *(const uint64_t *)((const char *)&s->h[i].s + hm->off));
        }
    }
}

KLOG_API int klog_stats(klog *k, int format, char **out)
{
    if (!k || !out || (format != KLOG_STATS_JSON && format != KLOG_STATS_PROMETHEUS))
        return -EINVAL;
    *out = NULL;
    snap s;
    int rc = snap_take(k, &s);
    if (rc < 0)
        return rc;
    klog_sbuf b = { 0 };
    if (format == KLOG_STATS_JSON)
        render_json(&b, &s);
    else
        render_prom(&b, &s);
    snap_free(&s);
    if (b.err || !b.p) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    return 0;
}

/* Plain write + rename: statistics are not data, no sync.  head goes
 * before text.  Returns 0 or -errno. */
static int write_file(const char *dir, const char *name, const char *head, const char *text)
{
    char tmp[4200], dst[4200];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    bool ok = fputs(head, f) >= 0 && fputs(text, f) >= 0;
    int err = ok ? 0 : errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, dst) == 0)
        return 0;
    if (ok)
        err = errno;
    remove(tmp);
    return err ? -err : -EIO;
}

/* The files' stamp: who writes them, when, how often, so that a reader
 * (`klog stats`, a Prometheus textfile collector) can tell a stale file
 * from a live one.  JSON: a "file" member first in the document;
 * Prometheus: three gauges ahead of the rest. */
static void stamp(int64_t iv, bool json, char *out, size_t size)
{
    long long pid = (long long)getpid(), now = (long long)klog__wall_ms();
    if (json)
        snprintf(out, size, "\"file\":{\"writer_pid\":%lld,\"written_ms\":%lld,\"interval_ms\":%lld},", pid, now,
                 (long long)iv);
    else
        snprintf(out, size,
                 "# HELP klog_stats_file_writer_pid The process that writes this file (statistics.interval.ms); "
                 "it removes the file when it closes the directory.\n"
                 "# TYPE klog_stats_file_writer_pid gauge\nklog_stats_file_writer_pid %lld\n"
                 "# HELP klog_stats_file_timestamp_seconds When this file was written.\n"
                 "# TYPE klog_stats_file_timestamp_seconds gauge\nklog_stats_file_timestamp_seconds %lld.%03lld\n"
                 "# HELP klog_stats_file_interval_seconds How often the writer rewrites this file.\n"
                 "# TYPE klog_stats_file_interval_seconds gauge\nklog_stats_file_interval_seconds %lld.%03lld\n",
                 pid, now / 1000, now % 1000, (long long)iv / 1000, (long long)iv % 1000);
}

static void write_stats(klog *k, int64_t iv, int format, const char *name, int *fail)
{
    char *t, head[1024];
    int rc = klog_stats(k, format, &t);
    if (rc == 0) {
        bool json = format == KLOG_STATS_JSON;
        stamp(iv, json, head, sizeof head);
        if (json && t[0] == '{') {
            /* "{" + the stamp + the rest ("{}": the stamp's comma dropped) */
            size_t hl = strlen(head);
            memmove(head + 1, head, hl + 1);
            head[0] = '{';
            if (t[1] == '}')
                head[hl] = '\0';
            rc = write_file(k->dir, name, head, t + 1);
        } else {
            rc = write_file(k->dir, name, head, t);
        }
        free(t);
        if (rc == 0)
            k->stats_written = true;
    }
    if (rc < 0 && !*fail) {
        *fail = rc;
        if (rc != atomic_exchange(&k->stats_err, rc))
            klog__log(k, KLOG_LOG_WARNING, rc, "stats", "%s/%s: statistics file not written: %s", k->dir, name,
                      klog_strerror(rc));
    }
}

void klog__stats_tick(klog *k)
{
    int64_t iv = klog__conf_int(k->conf, KC_STATISTICS_INTERVAL_MS);
    if (iv <= 0)
        return;
    int64_t now = klog__wall_ms();
    if (now < k->next_stats_ms)
        return;
    k->next_stats_ms = now + iv;
    int fail = 0;
    write_stats(k, iv, KLOG_STATS_JSON, "stats.json", &fail);
    write_stats(k, iv, KLOG_STATS_PROMETHEUS, "stats.prom", &fail);
    if (!fail)
        atomic_store(&k->stats_err, 0);
}

void klog__stats_remove(klog *k)
{
    if (!k->stats_written)
        return;
    /* the instance's directory is at most 4095 bytes (klog_open) */
    char p[4200];
    snprintf(p, sizeof p, "%s/stats.json", k->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/stats.prom", k->dir);
    unlink(p);
    k->stats_written = false;
}
