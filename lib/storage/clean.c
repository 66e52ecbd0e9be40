/*
 * lib/storage/clean.c - log compaction: one cleaning pass over a partition
 * log (the contract, with the crash-safety sequence, is in storage.h).
 *
 * A pass, with maint_mu held (retention and truncation wait; appends and
 * reads do not):
 *   plan     the cleanable segments (sealed, below the first uncleanable
 *            offset) and the dirty ones among them (holding offsets at or
 *            after the clean point);
 *   map      the dirty section's keys -> latest offset, in a fixed-size
 *            table; when it fills, the pass ends its map there (map_end);
 *   rewrite  every cleanable segment below map_end, in groups that fit in
 *            segment_bytes, each into one new segment swapped in whole.
 *
 * Memory is bounded: the key map (map_bytes), one output buffer
 * (KC_OUT_BUF), a filter buffer as large as the largest records section
 * met, and one codec.  Input is read through the segments' mappings.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/common.h"
#include "storage/internal.h"

#define KC_OUT_BUF (1u << 20)    /* output buffered per write */
#define KC_THROTTLE_STEP (1u << 20)
#define KC_MAP_MIN (64u * 1024)

void ks_clean_config_init(ks_clean_config *c)
{
    memset(c, 0, sizeof *c);
    c->delete_retention_ms = 86400000;
    c->min_compaction_lag_ms = 0;
    c->min_dirty_ratio = 0.5;
    c->map_bytes = 32u << 20;
    c->bound = INT64_MAX;
}

/* ---- the key map ------------------------------------------------------------
 * Open addressing with linear probing over a power-of-two table of
 * {XXH3-128 of the key, offset + 1}; 0 marks an empty slot, so a fresh
 * calloc'd table is empty without being touched.  Filled to 3/4 at most.
 * Two different keys with the same 128-bit hash would be taken for one key
 * (Kafka's cleaner has the same property with MD5). */
typedef struct kc_slot { uint64_t lo, hi; int64_t off1; } kc_slot;
typedef struct kc_map { kc_slot *s; size_t mask, n, max; } kc_map;

static int map_init(kc_map *m, size_t bytes)
{
    size_t cap = 1;
    while (cap * 2 * sizeof(kc_slot) <= bytes)
        cap *= 2;
    m->s = calloc(cap, sizeof(kc_slot));
    if (!m->s)
        return -ENOMEM;
    m->mask = cap - 1;
    m->n = 0;
    m->max = cap / 4 * 3;
    return 0;
}

static kc_slot *map_find(const kc_map *m, XXH128_hash_t h)
{
    for (size_t i = (size_t)h.low64 & m->mask;; i = (i + 1) & m->mask) {
        kc_slot *s = &m->s[i];
        if (s->off1 == 0 || (s->lo == h.low64 && s->hi == h.high64))
            return s;
    }
}

/* Record off as the latest offset of the key.  Returns false when the key
 * is new and the map is full. */
static bool map_put(kc_map *m, XXH128_hash_t h, int64_t off)
{
    kc_slot *s = map_find(m, h);
    if (s->off1 == 0) {
        if (m->n >= m->max)
            return false;
        m->n++;
        s->lo = h.low64;
        s->hi = h.high64;
    }
    s->off1 = off + 1;
    return true;
}

static int64_t map_get(const kc_map *m, XXH128_hash_t h)
{
    kc_slot *s = map_find(m, h);
    return s->off1 - 1; /* -1 when absent */
}

/* ---- the plan --------------------------------------------------------------- */

typedef struct kc_plan {
    ks_segment **segs;     /* cleanable segments, referenced */
    unsigned n;
    unsigned first_dirty;  /* index of the first dirty one (n if none) */
    int64_t after;         /* base of the segment after the last cleanable one */
    uint64_t total, dirty; /* bytes */
} kc_plan;

static void plan_release(kc_plan *p)
{
    for (unsigned i = 0; i < p->n; i++)
        ks__seg_unref(p->segs[i]);
    free(p->segs);
    memset(p, 0, sizeof *p);
}

/* Cleanable = sealed segments before the active one, stopping at the first
 * that holds a record younger than the compaction lag or at or above
 * cfg->bound. */
static int plan_make(ks_log *log, const ks_clean_config *cfg, int64_t now, kc_plan *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_lock(&log->seg_mu);
    unsigned m = log->nsegs - 1;
    for (unsigned i = 0; i < m; i++)
        if ((cfg->min_compaction_lag_ms > 0 && log->segs[i]->max_ts > now - cfg->min_compaction_lag_ms) ||
            log->segs[i + 1]->base > cfg->bound) {
            m = i;
            break;
        }
    p->segs = m ? malloc(m * sizeof *p->segs) : NULL;
    if (m && !p->segs) {
        pthread_mutex_unlock(&log->seg_mu);
        return -ENOMEM;
    }
    p->first_dirty = m;
    for (unsigned i = 0; i < m; i++) {
        ks_segment *s = log->segs[i];
        ks__seg_ref(s);
        p->segs[i] = s;
        uint64_t sz = atomic_load(&s->size);
        p->total += sz;
        if (atomic_load(&s->next_offset) > log->clean_point) {
            if (p->first_dirty == m)
                p->first_dirty = i;
            p->dirty += sz;
        }
    }
    p->n = m;
    p->after = log->segs[m]->base;
    pthread_mutex_unlock(&log->seg_mu);
    return 0;
}

double ks_log_dirty_ratio(ks_log *log, const ks_clean_config *cfg)
{
    if (ks__writable(log) < 0)
        return 0; /* nothing a pass could change */
    ks_clean_config def;
    if (!cfg) {
        ks_clean_config_init(&def);
        cfg = &def;
    }
    pthread_mutex_lock(&log->maint_mu);
    kc_plan p;
    double r = 0;
    if (plan_make(log, cfg, ks__now(log), &p) == 0 && p.total > 0)
        r = (double)p.dirty / (double)p.total;
    plan_release(&p);
    pthread_mutex_unlock(&log->maint_mu);
    return r;
}

int64_t ks_log_clean_point(ks_log *log) { return atomic_load(&log->clean_point); }

/* ---- a pass ----------------------------------------------------------------- */

typedef struct kc_pass {
    ks_log *log;
    const ks_clean_config *cfg;
    ks_clean_stats *st;
    kf_codec *codec;
    kc_map map;
    int64_t map_end;       /* records at or after this are not in the map */
    int64_t now;
    int64_t start;         /* the log start: records below it go */
    uint64_t unthrottled;  /* bytes since the last throttle call */
    uint8_t *keep;         /* per-record flags of one batch */
    size_t keep_cap;
    struct kc_rec *recs;   /* one batch's records, hashed (stage_batch) */
    size_t recs_cap;
    uint8_t *fbuf;         /* kf_batch_filter's buffer */
    size_t fcap;
    uint8_t *out;          /* output buffer */
    size_t out_len;
    uint64_t out_pos;      /* file position of out[0] */
    int h;                 /* the .cleaned file */
} kc_pass;

static int throttle(kc_pass *x, uint64_t bytes, bool force)
{
    x->unthrottled += bytes;
    if (!x->cfg->throttle || (!force && x->unthrottled < KC_THROTTLE_STEP))
        return 0;
    uint64_t b = x->unthrottled;
    x->unthrottled = 0;
    return x->cfg->throttle(x->cfg->throttle_arg, b) ? -ECANCELED : 0;
}

/* Verify a batch and open its records (recs and rlen stay valid until the next
 * call on the codec). */
static int open_batch(kc_pass *x, const uint8_t *b, uint64_t avail, kf_batch_info *bi, size_t *len,
                      const uint8_t **recs, size_t *rlen)
{
    ssize_t l = kf_batch_parse(b, avail, bi);
    if (l <= 0 || kf_batch_verify(b, (size_t)l) != 0)
        return KLOG_ECORRUPT;
    *len = (size_t)l;
    return kf_batch_records(b, (size_t)l, x->codec, recs, rlen);
}

/* A record of the batch being worked on: its key's hash (whose map slot
 * was prefetched), offset, timestamp, and whether it is a tombstone or has
 * no key. */
typedef struct kc_rec {
    XXH128_hash_t h;
    int64_t off, ts;
    bool tomb, nokey;
} kc_rec;

/*
 * Decode a batch's records into x->recs, hashing each key and prefetching
 * its map slot: the probes that follow then find their slots in cache
 * instead of paying a memory miss each, which is what the cleaner's time
 * went to (one random access per record into a map of tens of MiB).
 * Returns the record count or an error.
 */
static int stage_batch(kc_pass *x, const kf_batch_info *bi, const uint8_t *recs, size_t rlen)
{
    size_t want = (size_t)(bi->record_count > 0 ? bi->record_count : 0) + 1;
    int grc = klog__vec_reserve(&x->recs, &x->recs_cap, want, sizeof *x->recs);
    if (grc < 0)
        return grc;
    kf_iter it;
    kf_record_view r;
    kf_iter_init(&it, bi, recs, rlen);
    int n = 0, rc;
    while ((rc = kf_iter_next(&it, &r)) == 1) {
        kc_rec *e = &x->recs[n++];
        e->off = r.offset;
        e->ts = r.timestamp;
        e->tomb = r.value_len < 0;
        e->nokey = r.key_len < 0;
        if (!e->nokey) {
            e->h = XXH3_128bits(r.key, (size_t)r.key_len);
            __builtin_prefetch(&x->map.s[(size_t)e->h.low64 & x->map.mask]);
        }
    }
    return rc < 0 ? rc : n;
}

/* Read the dirty section into the map, from the clean point on. */
static int build_map(kc_pass *x, kc_plan *p)
{
    ks_log *log = x->log;
    int64_t from = log->clean_point;
    x->map_end = p->after;
    for (unsigned i = p->first_dirty; i < p->n; i++) {
        ks_segment *s = p->segs[i];
        uint64_t size = atomic_load(&s->size);
        for (uint64_t pos = 0; pos < size;) {
            kf_batch_info bi;
            size_t len, rlen;
            const uint8_t *recs;
            int rc = open_batch(x, s->map + pos, size - pos, &bi, &len, &recs, &rlen);
            if (rc < 0)
                return rc;
            if (kf_batch_last_offset(&bi) >= from) {
                int n = stage_batch(x, &bi, recs, rlen);
                if (n < 0)
                    return n;
                for (int j = 0; j < n; j++) {
                    const kc_rec *e = &x->recs[j];
                    if (e->off < from || e->nokey)
                        continue;
                    if (!map_put(&x->map, e->h, e->off)) {
                        x->map_end = e->off; /* full: the pass stops here */
                        return 0;
                    }
                }
            }
            x->st->bytes_read += len;
            if ((rc = throttle(x, len, false)) < 0)
                return rc;
            pos += len;
        }
    }
    return 0;
}

static int out_flush(kc_pass *x)
{
    if (x->out_len == 0)
        return 0;
    struct iovec iov = { x->out, x->out_len };
    int rc = kio_pwritev(x->log->io, x->h, &iov, 1, x->out_pos);
    if (rc < 0)
        return rc;
    ks__disk_add(x->log, (int64_t)x->out_len); /* the temporary file counts while it is there */
    x->out_pos += x->out_len;
    x->st->bytes_written += x->out_len;
    rc = throttle(x, x->out_len, false);
    x->out_len = 0;
    return rc;
}

static int out_put(kc_pass *x, const uint8_t *b, size_t len)
{
    int rc;
    if (x->out_len + len > KC_OUT_BUF && (rc = out_flush(x)) < 0)
        return rc;
    if (len > KC_OUT_BUF) {
        struct iovec iov = { (void *)b, len };
        if ((rc = kio_pwritev(x->log->io, x->h, &iov, 1, x->out_pos)) < 0)
            return rc;
        ks__disk_add(x->log, (int64_t)len);
        x->out_pos += len;
        x->st->bytes_written += len;
        return throttle(x, len, false);
    }
    memcpy(x->out + x->out_len, b, len);
    x->out_len += len;
    return 0;
}

/* A byte buffer holding at least need bytes (a page at least, once it
 * grows). */
static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    return need <= *cap ? 0 : klog__vec_reserve(buf, cap, KLOG_MAX(need, (size_t)4096), 1);
}

/* Filter one segment's batches into the output. */
static int rewrite_segment(kc_pass *x, ks_segment *s)
{
    const int64_t horizon = x->now - x->cfg->delete_retention_ms;
    uint64_t size = atomic_load(&s->size);
    for (uint64_t pos = 0; pos < size;) {
        const uint8_t *b = s->map + pos;
        kf_batch_info bi;
        size_t len, rlen;
        const uint8_t *recs;
        int rc = open_batch(x, b, size - pos, &bi, &len, &recs, &rlen);
        if (rc < 0)
            return rc;
        x->st->bytes_read += len;
        if ((rc = grow(&x->keep, &x->keep_cap, (size_t)bi.record_count + 1)) < 0)
            return rc;
        int n = stage_batch(x, &bi, recs, rlen);
        if (n < 0)
            return n;
        int32_t kept = 0;
        for (int j = 0; j < n; j++) {
            const kc_rec *e = &x->recs[j];
            bool keep = !e->nokey && e->off >= x->start;
            if (keep) {
                int64_t latest = map_get(&x->map, e->h);
                if (latest > e->off)
                    keep = false; /* superseded */
                else if (e->tomb && e->off < x->map_end && e->ts < horizon)
                    keep = false; /* a tombstone past delete.retention.ms */
            }
            x->keep[j] = keep;
            kept += keep;
        }
        x->st->records_read += (uint64_t)n;
        x->st->records_kept += (uint64_t)kept;
        if (kept == n) {
            rc = out_put(x, b, len);
        } else if (kept > 0) {
            const uint8_t *nb;
            size_t nlen;
            rc = kf_batch_filter(b, len, x->keep, x->codec, x->fbuf, x->fcap, &nb, &nlen);
            if (rc == -ENOBUFS) {
                if ((rc = grow(&x->fbuf, &x->fcap, nlen)) < 0)
                    return rc;
                rc = kf_batch_filter(b, len, x->keep, x->codec, x->fbuf, x->fcap, &nb, &nlen);
            }
            if (rc == 0)
                rc = out_put(x, nb, nlen);
        }
        if (rc < 0)
            return rc;
        pos += len;
    }
    return 0;
}

/* Rewrite segs[a..b) of the plan into one segment and swap it in. */
static int clean_group(kc_pass *x, kc_plan *p, unsigned a, unsigned b, bool *gaps_noted)
{
    ks_log *log = x->log;
    kio *io = log->io;
    const int64_t base = p->segs[a]->base;
    char name[KS_NAME_MAX], cleaned[4200], swap[4200], final[4200];
    ks_segment_name(name, sizeof name, base, ".log.cleaned");
    snprintf(cleaned, sizeof cleaned, "%s/%s", log->dir, name);
    ks_segment_name(name, sizeof name, base, ".log.swap");
    snprintf(swap, sizeof swap, "%s/%s", log->dir, name);
    ks_segment_name(name, sizeof name, base, ".log");
    snprintf(final, sizeof final, "%s/%s", log->dir, name);

    /* 1. the cleaned file, durable */
    x->h = kio_file_open(io, cleaned, KIO_O_RDWR | KIO_O_CREAT | KIO_O_TRUNC, 0644);
    if (x->h < 0)
        return x->h;
    x->out_len = 0;
    x->out_pos = 0;
    int rc = 0;
    for (unsigned i = a; i < b && rc == 0; i++)
        rc = rewrite_segment(x, p->segs[i]);
    if (rc == 0)
        rc = out_flush(x);
    if (rc == 0)
        rc = kio_datasync(io, x->h);
    int cr = kio_file_close(io, x->h);
    x->h = -1;
    if (rc == 0)
        rc = cr;
    if (rc < 0) {
        kio_unlink(io, cleaned);
        ks__disk_add(log, -(int64_t)x->out_pos);
        return rc;
    }
    /* 2. offsets below the rewritten range may have gaps from now on */
    if (!*gaps_noted) {
        if ((rc = ks__cleaner_state_set(log, p->after, -1)) < 0) {
            kio_unlink(io, cleaned);
            ks__disk_add(log, -(int64_t)x->out_pos);
            return rc;
        }
        *gaps_noted = true;
    }
    /* 3. commit */
    if ((rc = kio_rename(io, cleaned, swap)) < 0) {
        kio_unlink(io, cleaned);
        ks__disk_add(log, -(int64_t)x->out_pos);
        return rc;
    }
    if ((rc = kio_dirsync(io, log->dir)) < 0)
        return ks__fail_sync(log, rc); /* unsure what the directory holds: stop writing */
    /* From here the pass is committed: a failure leaves the rest to the next
     * open, which finishes the swap; the log stops taking writes meanwhile
     * rather than run on a directory it cannot describe. */
    /* 5. the group's other segments and B's index files go */
    for (unsigned i = a + 1; i < b && rc == 0; i++)
        rc = ks__unlink_segment_files(log, p->segs[i]->base);
    if (rc == 0) {
        ks_segment_name(name, sizeof name, base, ".index");
        rc = ks__unlink_in(log, name);
    }
    if (rc == 0) {
        ks_segment_name(name, sizeof name, base, ".timeindex");
        rc = ks__unlink_in(log, name);
    }
    /* 6. the swap becomes B.log */
    if (rc == 0 && (rc = kio_rename(io, swap, final)) == 0)
        rc = kio_dirsync(io, log->dir);
    ks_segment *ns = NULL;
    if (rc == 0)
        rc = ks__seg_new(&ns, io, log->dir, base, ks__map_cap(log), log->cfg.index_interval_bytes, false);
    if (rc == 0) {
        kio_file_close(io, ns->h);
        ns->h = -1;
        ns->sealed = true;
        ns->gaps = true;
        ks__seg_attach(log, ns);
        rc = ks__seg_index_map(ns, x->out_pos, log->cfg.index_interval_bytes);
    }
    if (rc < 0) {
        if (ns)
            ks__seg_unref(ns);
        return ks__fail_sync(log, rc);
    }
    if (ks__seg_write_indexes(ns, log->dir) == 0) /* rebuilt at open if this fails */
        ks__seg_ix_sealed(ns);                     /* loaded again on demand */
    /* 7. readers switch to the new segment; views keep the old mappings
     * (the old files are gone, their pages stay while mapped) */
    uint64_t old_bytes = 0;
    pthread_mutex_lock(&log->seg_mu);
    unsigned at = 0;
    while (at < log->nsegs && log->segs[at] != p->segs[a])
        at++;
    if (at + (b - a) > log->nsegs - 1) {
        /* cannot happen: maint_mu keeps every change but appends away */
        pthread_mutex_unlock(&log->seg_mu);
        ks__seg_unref(ns);
        return ks__fail_sync(log, KLOG_ESTATE);
    }
    for (unsigned i = a; i < b; i++) {
        old_bytes += ks__seg_disk(log->segs[at + (i - a)]);
        ks__seg_unref(log->segs[at + (i - a)]);
    }
    log->segs[at] = ns;
    memmove(log->segs + at + 1, log->segs + at + (b - a), (log->nsegs - at - (b - a)) * sizeof *log->segs);
    log->nsegs -= b - a - 1;
    pthread_mutex_unlock(&log->seg_mu);
    /* the temporary file, counted as it was written, is the segment now */
    ks__disk_add(log, (int64_t)ks__seg_disk(ns) - (int64_t)old_bytes - (int64_t)x->out_pos);
    x->st->segments_in += b - a;
    x->st->segments_out++;
    return 0;
}

int ks_log_clean(ks_log *log, const ks_clean_config *cfg, ks_clean_stats *st_out)
{
    ks_clean_stats st_local;
    ks_clean_stats *st = st_out ? st_out : &st_local;
    memset(st, 0, sizeof *st);
    int rc = ks__writable(log);
    if (rc < 0)
        return rc;
    ks_clean_config def;
    if (!cfg) {
        ks_clean_config_init(&def);
        cfg = &def;
    }
    if (cfg->delete_retention_ms < 0 || cfg->min_compaction_lag_ms < 0 || cfg->min_dirty_ratio < 0 ||
        cfg->map_bytes < KC_MAP_MIN)
        return KLOG_ECONF;
    pthread_mutex_lock(&log->maint_mu);
    st->clean_point = log->clean_point;
    kc_pass x = { .log = log, .cfg = cfg, .st = st, .h = -1 };
    x.now = ks__now(log);
    x.start = atomic_load(&log->start);
    kc_plan p;
    rc = plan_make(log, cfg, x.now, &p);
    if (rc < 0 || p.first_dirty >= p.n || p.total == 0 ||
        (double)p.dirty / (double)p.total < cfg->min_dirty_ratio)
        goto out; /* nothing to do */
    if ((rc = kf_codec_new(&x.codec)) < 0 || (rc = map_init(&x.map, cfg->map_bytes)) < 0)
        goto out;
    if (!(x.out = malloc(KC_OUT_BUF))) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = build_map(&x, &p)) < 0)
        goto out;
    /* Rewrite every cleanable segment that starts below map_end, in groups
     * whose input fits in one segment. */
    unsigned r = 0;
    while (r < p.n && p.segs[r]->base < x.map_end)
        r++;
    bool gaps_noted = false;
    for (unsigned a = 0; a < r && rc == 0;) {
        unsigned b = a + 1;
        uint64_t sum = atomic_load(&p.segs[a]->size);
        while (b < r && sum + atomic_load(&p.segs[b]->size) <= log->cfg.segment_bytes)
            sum += atomic_load(&p.segs[b++]->size);
        rc = clean_group(&x, &p, a, b, &gaps_noted);
        a = b;
    }
    if (rc == 0)
        rc = throttle(&x, 0, true);
    if (rc == 0 && r > 0) {
        rc = ks__cleaner_state_set(log, 0, KLOG_MAX(atomic_load(&log->clean_point), x.map_end));
    }
    st->cleaned = rc == 0 && r > 0;
    st->clean_point = log->clean_point;
out:
    plan_release(&p);
    free(x.map.s);
    free(x.out);
    free(x.keep);
    free(x.recs);
    free(x.fbuf);
    kf_codec_free(x.codec);
    pthread_mutex_unlock(&log->maint_mu);
    return rc;
}
