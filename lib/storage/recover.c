/*
 * lib/storage/recover.c - recovery at open, one function per phase:
 * read_checkpoints, list_files (removing leftovers of interrupted writes),
 * finish_swaps (cleaning passes that committed), drop_below_start,
 * load_segments (trust the indexes, or scan and cut a torn tail),
 * create_first_segment, seal_older, settle (offsets and the checkpoint).
 * Runs in ks_log_open, before the log is shared: no lock is taken.
 *
 * Damage (storage.h, ks_log_open) stops recovery with KLOG_ECORRUPT and
 * its reason in log->damage.  Every check comes before every write (tidy,
 * seal_older and settle write), so a damaged log's directory is left as
 * it was; only a cleaning pass that committed (a .swap file, checked
 * whole first) is finished on the way, as it does not bear on damage.
 * With cfg.open_damaged the phases then run again as a view: nothing
 * written, every segment up to the damage loaded, nothing after.
 *
 * Salvage (ks_log_repair) runs the phases with the damage checks turned
 * into repairs, and says what each dropped: the log is cut at its first
 * invalid or missing byte whatever the recovery point, a missing start or
 * end is accepted, a damaged swap file removed.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "storage/internal.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Parse "%020lld.log" etc.  Returns true and *base when name is base+suffix. */
static bool parse_name(const char *name, const char *suffix, int64_t *base)
{
    size_t n = strlen(name), sl = strlen(suffix);
    if (n != 20 + sl || strcmp(name + 20, suffix) != 0)
        return false;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (name[i] - '0');
    }
    *base = v;
    return true;
}

/*
 * Scan and validate a segment from position `from` (0, or the end of what
 * was validated before: a follower, follow.c) through kio reads, rebuilding
 * (from 0) or extending its indexes.  *valid_end receives the position after the last valid batch;
 * *expected_out the offset the first invalid batch would have started at.  Validation: framing, checksum, base offset == the expected next
 * offset (>= where compaction may have left gaps) and last offset < limit
 * (the next segment's base).
 */
int ks__scan_segment(ks_log *log, ks_segment *s, uint64_t from, uint64_t fsize, int64_t limit, bool gaps,
                     uint64_t *valid_end, int64_t *expected_out, enum ks_tail *tail)
{
    static const uint8_t zero_hdr[KF_LOG_OVERHEAD];
    enum ks_tail tail_unused;
    if (!tail)
        tail = &tail_unused;
    *tail = KS_TAIL_END;
    size_t bufcap = fsize - from < (1u << 20) ? 64u << 10 : 1u << 20; /* a follower's steps are small */
    uint8_t *buf = malloc(bufcap);
    if (!buf)
        return -ENOMEM;
    if (from == 0)
        ks__seg_reset_indexes(s);
    uint64_t pos = from;     /* file position of buf[0] */
    size_t have = 0, at = 0; /* bytes in buf, parse cursor */
    int64_t expected = from ? atomic_load(&s->next_offset) : s->base;
    int rc = 0;
    for (;;) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(buf + at, have - at, &bi);
        if (len == 0 && pos + have < fsize) {
            /* need more bytes: slide and refill (grow for a large batch) */
            memmove(buf, buf + at, have - at);
            pos += at;
            have -= at;
            at = 0;
            if (have >= KF_LOG_OVERHEAD) {
                size_t need = KF_LOG_OVERHEAD + (size_t)klog__ld32(buf + KF_OFF_LENGTH);
                if (need <= (size_t)KF_BATCH_MAX && (rc = klog__vec_reserve(&buf, &bufcap, need, 1)) < 0)
                    break;
            }
            size_t want = KLOG_MIN(bufcap - have, (size_t)(fsize - pos - have));
            if (want == 0)
                break; /* batch claims more than the maximum: invalid */
            ssize_t n = kio_pread(log->io, s->h, buf + have, want, pos + have);
            if (n < 0) {
                rc = (int)n;
                break;
            }
            if (n == 0)
                break;
            have += (size_t)n;
            continue;
        }
        if (len <= 0) { /* incomplete at end of file, or insane header */
            if (pos + at < fsize)
                *tail = len == 0 ? KS_TAIL_SHORT
                        : have - at >= KF_LOG_OVERHEAD && !memcmp(buf + at, zero_hdr, KF_LOG_OVERHEAD)
                            ? KS_TAIL_ZEROS
                            : KS_TAIL_HEADER;
            break;
        }
        if (kf_batch_verify(buf + at, (size_t)len) != 0) {
            *tail = KS_TAIL_CHECKSUM;
            break;
        }
        if (bi.base_offset < expected || (!gaps && bi.base_offset != expected) ||
            kf_batch_last_offset(&bi) >= limit) {
            *tail = KS_TAIL_OFFSET;
            break;
        }
        ks_pidundo u;
        int64_t dup;
        (void)ks__pid_check(log, &bi, bi.base_offset, false, &dup, &u); /* rebuild producer state */
        atomic_store(&s->size, pos + at); /* note_batch needs positions only */
        ks__seg_note_batch(s, &bi, pos + at, (uint64_t)len, log->cfg.index_interval_bytes);
        expected = kf_batch_last_offset(&bi) + 1;
        at += (size_t)len;
    }
    free(buf);
    if (rc < 0)
        return rc;
    *valid_end = pos + at;
    ks__seg_proven_scan(s, from, pos + at);
    *expected_out = expected;
    atomic_store(&s->size, pos + at);
    atomic_store(&s->next_offset, expected);
    return 0;
}

/* Growable array of base offsets. */
typedef struct base_list { int64_t *v; size_t n, cap; } base_list;

static int base_push(base_list *l, int64_t b)
{
    int rc = klog__vec_reserve(&l->v, &l->cap, l->n + 1, sizeof *l->v);
    if (rc == 0)
        l->v[l->n++] = b;
    return rc;
}

/* The offset after the last batch of a finished swap file (its base if it
 * is empty), checking every batch: the file was made durable before it was
 * renamed to .swap, so anything invalid in it is damage, not a torn write. */
static int swap_next_offset(ks_log *log, const char *path, int64_t base, int64_t *next)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *next = base;
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -errno;
    int rc = 0;
    int64_t expected = base;
    for (uint64_t p = 0; p < (uint64_t)st.st_size;) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(m + p, (size_t)st.st_size - p, &bi);
        if (len <= 0 || kf_batch_verify(m + p, (size_t)len) != 0 || bi.base_offset < expected) {
            rc = ks__damage(log, "%020lld.log.swap (a finished cleaning pass): invalid batch at position %llu",
                            (long long)base, (unsigned long long)p);
            break;
        }
        expected = kf_batch_last_offset(&bi) + 1;
        p += (uint64_t)len;
    }
    munmap(m, (size_t)st.st_size);
    *next = expected;
    return rc;
}

/*
 * Finish a cleaning pass that committed (B.log.swap exists) but did not
 * complete: delete the group's other segments (bases in (B, swap end)) and
 * B's index files, then rename the swap over B.log.  bases is updated.
 */
static int finish_swap(ks_log *log, int64_t b, base_list *bases)
{
    char name[KS_NAME_MAX], from[4200], to[4200];
    ks_segment_name(name, sizeof name, b, ".log.swap");
    snprintf(from, sizeof from, "%s/%s", log->dir, name);
    ks_segment_name(name, sizeof name, b, ".log");
    snprintf(to, sizeof to, "%s/%s", log->dir, name);
    int64_t next = b;
    int rc = swap_next_offset(log, from, b, &next);
    if (rc < 0)
        return rc;
    size_t w = 0;
    bool have_b = false;
    for (size_t i = 0; i < bases->n; i++) {
        int64_t x = bases->v[i];
        if (x > b && x < next) {
            if ((rc = ks__unlink_segment_files(log, x)) < 0)
                return rc;
            continue;
        }
        have_b = have_b || x == b;
        bases->v[w++] = x;
    }
    bases->n = w;
    ks_segment_name(name, sizeof name, b, ".index");
    if ((rc = ks__unlink_in(log, name)) < 0)
        return rc;
    ks_segment_name(name, sizeof name, b, ".timeindex");
    if ((rc = ks__unlink_in(log, name)) < 0)
        return rc;
    if ((rc = kio_rename(log->io, from, to)) < 0 || (rc = kio_dirsync(log->io, log->dir)) < 0)
        return rc;
    if (!have_b && (rc = base_push(bases, b)) < 0)
        return rc;
    return 0;
}

/* What recovery learns as it goes, phase to phase. */
typedef struct ks_recovery {
    ks_log *log;
    int64_t rp;          /* recovery point (recovery.ckpt): offsets below are synced */
    int64_t start;       /* log start offset (recovery.ckpt) */
    base_list bases;     /* segment base offsets, sorted once swaps are finished */
    base_list swaps;     /* bases of committed cleaning swaps */
    base_list ixs;       /* bases of index files (.index, .timeindex) */
    size_t skip;         /* bases wholly below the start, to remove */
    bool changed;        /* truncated, removed or created something: sync + checkpoint */
    bool scanned;        /* scanned a segment: its bytes may sit in the page cache only */
    bool view;           /* a damaged log's view: write nothing, stop at the damage */
    bool salvage;        /* repair: cut at the first damage, say what went */
    char *report;        /* salvage: what went ("; "-separated), may be NULL */
    size_t report_size;
    /* Writes decided on the way, made by tidy once every check passed: */
    char (*left)[256];   /* leftovers of interrupted writes, to remove */
    size_t nleft, capleft;
    bool cleaner_bad;    /* cleaner.ckpt damaged: write it again */
    ks_segment *ix_stale; /* the last segment, whose index files must go */
    ks_segment *cut;     /* the last segment, to cut at cut_at (a torn tail) */
    uint64_t cut_at;
    size_t drop_from;    /* salvage: bases.v[drop_from..] follow the cut, to remove */
} ks_recovery;

/* May recovery change files?  Not in a read-only open, nor in a view. */
static bool writes(const ks_recovery *r) { return !r->log->cfg.read_only && !r->view; }

/* Salvage: add to the report of what went. */
__attribute__((format(printf, 2, 3))) static void report(ks_recovery *r, const char *fmt, ...)
{
    if (!r->report || !r->report_size)
        return;
    size_t len = strlen(r->report);
    if (len && len + 2 < r->report_size) {
        memcpy(r->report + len, "; ", 3);
        len += 2;
    }
    if (len + 1 >= r->report_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->report + len, r->report_size - len, fmt, ap);
    va_end(ap);
}

/* Bytes in dir/name, 0 when it cannot be told. */
static uint64_t file_bytes(const ks_log *log, int64_t base, const char *sfx)
{
    char name[KS_NAME_MAX], path[4200];
    struct stat st;
    ks_segment_name(name, sizeof name, base, sfx);
    snprintf(path, sizeof path, "%s/%s", log->dir, name);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Salvage: the log ends in segment i of the loaded ones (bv = bases.v +
 * skip, nb of them), at position `at` of its fsize bytes, offset `offset`;
 * everything after goes (tidy cuts and removes).  The segment becomes the
 * active one: index files it had are stale from now on. */
static void salvage_cut(ks_recovery *r, ks_segment *s, uint64_t fsize, uint64_t at, int64_t offset, size_t i,
                        size_t nb)
{
    const int64_t *bv = r->bases.v + r->skip;
    uint64_t bytes = fsize - at;
    for (size_t j = i + 1; j < nb; j++)
        bytes += file_bytes(r->log, bv[j], ".log");
    char vouched[128] = "";
    if (offset < r->rp)
        snprintf(vouched, sizeof vouched, " (records below offset %lld among them, which recovery.ckpt vouched for)",
                 (long long)r->rp);
    report(r, "cut at offset %lld (%020lld.log, position %llu): %llu bytes dropped%s, %zu later segment file%s removed",
           (long long)offset, (long long)s->base, (unsigned long long)at, (unsigned long long)bytes, vouched,
           nb - i - 1, nb - i - 1 == 1 ? "" : "s");
    r->cut = s;
    r->cut_at = at;
    r->drop_from = r->skip + i + 1;
    s->file_end = at;
    atomic_store(&s->size, at);
    atomic_store(&s->next_offset, offset);
    r->ix_stale = s; /* index files it has are stale (none: nothing to remove) */
    s->sealed = false;
    s->ix_bytes = 0;
    r->changed = true;
}

/* Phase 1: the checkpoints.  A missing or corrupt recovery.ckpt means
 * re-validating everything; a corrupt cleaner.ckpt, accepting gaps
 * anywhere. */
static int read_checkpoints(ks_recovery *r)
{
    ks_log *log = r->log;
    int rc = ks__ckpt_read(log->io, log->dir, &r->rp, &r->start);
    if (rc == -ENOENT || rc == KLOG_ECORRUPT) {
        /* No trustworthy checkpoint: re-validate everything (safe, slower). */
        r->rp = 0;
        r->start = 0;
    } else if (rc < 0) {
        return rc;
    }
    int64_t cpt = 0, gl = 0;
    rc = ks__cleaner_ckpt_read(log->io, log->dir, &gl, &cpt);
    atomic_store(&log->gap_limit, gl);
    atomic_store(&log->clean_point, cpt);
    if (rc == -ENOENT) {
        log->gap_limit = 0;
        atomic_store(&log->clean_point, 0);
    } else if (rc == KLOG_ECORRUPT) {
        /* Compaction may have left gaps anywhere: accept them rather than
         * refuse a log that is fine; clean everything again.  And say so
         * on disk (nothing is lost by it), so that the file is whole
         * again. */
        log->gap_limit = INT64_MAX;
        atomic_store(&log->clean_point, 0);
        r->cleaner_bad = true;
    } else if (rc < 0) {
        return rc;
    }
    return 0;
}

/* Phase 2: list segment files; remove leftovers of interrupted atomic
 * writes and of cleaning passes that did not commit; note committed
 * swaps. */
static int list_files(ks_recovery *r)
{
    ks_log *log = r->log;
    DIR *d = opendir(log->dir);
    if (!d)
        return -errno;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL && rc == 0) {
        int64_t b;
        size_t l = strlen(de->d_name);
        if ((l > 4 && strcmp(de->d_name + l - 4, ".tmp") == 0) ||
            parse_name(de->d_name, ".log.cleaned", &b)) {
            if (l < sizeof *r->left &&
                (rc = klog__vec_reserve(&r->left, &r->capleft, r->nleft + 1, sizeof *r->left)) == 0)
                memcpy(r->left[r->nleft++], de->d_name, l + 1);
            continue;
        }
        if (parse_name(de->d_name, ".log.swap", &b)) {
            rc = base_push(&r->swaps, b);
            continue;
        }
        if (parse_name(de->d_name, ".log", &b))
            rc = base_push(&r->bases, b);
        else if (parse_name(de->d_name, ".index", &b) || parse_name(de->d_name, ".timeindex", &b))
            rc = base_push(&r->ixs, b);
    }
    closedir(d);
    return rc;
}

/* Phase 3: finish the cleaning passes that committed, in offset order;
 * then sort the segment bases. */
static int finish_swaps(ks_recovery *r)
{
    /* A read-only log (a reader beside a writer, who finishes its
     * cleaning passes itself) shows the segments as they are, as a view
     * does. */
    if (r->view || r->log->cfg.read_only)
        r->swaps.n = 0; /* the view shows the segments as they are */
    if (r->swaps.n > 1)
        qsort(r->swaps.v, r->swaps.n, sizeof *r->swaps.v, cmp_i64);
    /* Every swap file whole before any is finished: a damaged one leaves
     * the directory as it was. */
    size_t w = 0;
    for (size_t i = 0; i < r->swaps.n; i++) {
        char name[KS_NAME_MAX], path[4200];
        int64_t next;
        ks_segment_name(name, sizeof name, r->swaps.v[i], ".log.swap");
        snprintf(path, sizeof path, "%s/%s", r->log->dir, name);
        int rc = swap_next_offset(r->log, path, r->swaps.v[i], &next);
        if (rc == KLOG_ECORRUPT && r->salvage) {
            /* the segments it was to replace stay (a gap, if a crash had
             * removed some, is cut below like any other) */
            if ((rc = ks__unlink_in(r->log, name)) < 0)
                return rc;
            report(r, "%s removed (a cleaning pass's output that fails its checksums)", name);
            continue;
        }
        if (rc < 0)
            return rc;
        r->swaps.v[w++] = r->swaps.v[i];
    }
    r->swaps.n = w;
    for (size_t i = 0; i < r->swaps.n; i++) {
        int rc = finish_swap(r->log, r->swaps.v[i], &r->bases);
        if (rc < 0)
            return rc;
    }
    if (r->bases.n > 1)
        qsort(r->bases.v, r->bases.n, sizeof *r->bases.v, cmp_i64);
    return 0;
}

/* Phase 4: segments wholly below the log start (retention or
 * DeleteRecords checkpointed the start, then stopped before unlinking
 * them) go (tidy removes them). */
static int drop_below_start(ks_recovery *r)
{
    while (r->skip + 1 < r->bases.n && r->bases.v[r->skip + 1] <= r->start)
        r->skip++;
    return 0;
}

/* Phase 4b: segments missing where nothing may be missing.  No segment at
 * all while recovery.ckpt vouches for offsets (a new one would hand them
 * out again), or a first segment above the log start (outside the range
 * compaction rewrote, where the first batches may be gone for good). */
static int check_missing(ks_recovery *r)
{
    if (r->view)
        return 0;
    size_t nb = r->bases.n - r->skip;
    int64_t go_on = r->start > r->rp ? r->start : r->rp;
    if (nb == 0 && r->rp > 0 && r->salvage) {
        report(r, "no segment file: offsets %lld..%lld are gone; the log goes on, empty, from offset %lld",
               (long long)r->start, (long long)go_on - 1, (long long)go_on);
        return 0; /* create_first_segment starts it there */
    }
    if (nb == 0)
        return r->rp > 0 ? ks__damage(r->log,
                                      "no segment file, but recovery.ckpt vouches for offsets below %lld "
                                      "(acknowledged records missing)",
                                      (long long)r->rp)
                         : 0;
    int64_t first = r->bases.v[r->skip];
    if (first > r->start && first >= r->log->gap_limit && r->salvage) {
        report(r, "offsets %lld..%lld are gone (their segments are missing); the log now starts at %lld",
               (long long)r->start, (long long)first - 1, (long long)first);
        r->changed = true; /* settle checkpoints the new start */
        return 0;
    }
    if (first > r->start && first >= r->log->gap_limit)
        return ks__damage(r->log,
                          "the log starts at offset %lld but its first segment at %lld (offsets %lld..%lld "
                          "missing)",
                          (long long)r->start, (long long)first, (long long)r->start, (long long)first - 1);
    return 0;
}

/* Phase 5a: a segment that may be trusted (wholly below the recovery
 * point, or a cleanly closed last one) loads its indexes.  Returns 1 when
 * they are good (no scan needed), 0 when it must be scanned (a missing or
 * corrupt index is rebuilt by the scan), KLOG_ECORRUPT when the segment
 * does not end where the next one starts. */
static int load_trusted(ks_recovery *r, ks_segment *s, uint64_t fsize, int64_t limit, bool is_last)
{
    ks_log *log = r->log;
    bool below_rp = limit <= r->rp; /* wholly below the recovery point */
    if ((!below_rp && !is_last) || r->salvage || log->cfg.verify_all)
        return 0; /* scan it (a salvage checks every batch) */
    uint64_t proven;
    int lr = ks__seg_load_indexes(s, log->dir, fsize, &proven);
    if (lr != 0 || (!below_rp && atomic_load(&s->next_offset) > r->rp))
        return 0;
    int64_t nx = atomic_load(&s->next_offset);
    if (!is_last && nx > limit)
        return 0; /* runs into the next one: the scan says where */
    if (!is_last && !s->gaps && nx != limit)
        return ks__damage(log, "%020lld.log ends at offset %lld, but the next segment starts at %lld (offsets "
                               "missing)", (long long)s->base, (long long)nx, (long long)limit);
    s->sealed = true; /* indexes on disk are good */
    /* and so is the proof they carry: wholly below the recovery point,
     * the bytes are the synced ones their writer had proven */
    ks__seg_proven_disk(s, proven);
    if (is_last && writes(r)) {
        /* The active segment's indexes stay in their files until a lookup
         * or the first append needs them (ks__seg_ix_own removes the files
         * before that append: they must not outlive it); they count on
         * disk until then. */
        s->sealed = false;
    }
    return 1;
}

/*
 * The last segment's prefix that a periodic checkpoint vouched for
 * (recovery.pos, with the recovery point recovery.ckpt holds): its batch
 * headers are walked through the mapping, rebuilding the indexes and the
 * producer state, without reading or checking its bytes (as a segment
 * wholly below the recovery point is trusted).  Returns the position to
 * scan from: the prefix's end, or 0 when there is none or it does not
 * match the segment (then everything is scanned, as before).
 */
static uint64_t trusted_prefix(ks_recovery *r, ks_segment *s, uint64_t fsize)
{
    ks_log *log = r->log;
    int64_t rp, pos;
    if (r->salvage || r->view || log->cfg.verify_all || ks__pos_read(log->io, log->dir, &rp, &pos) != 0 ||
        rp != r->rp || rp <= s->base || pos <= 0 || (uint64_t)pos > fsize || s->map == MAP_FAILED)
        return 0;
    ks__seg_reset_indexes(s);
    int64_t next = s->base;
    uint64_t p = 0;
    while (p < (uint64_t)pos) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(s->map + p, (uint64_t)pos - p, &bi);
        if (len <= 0 || bi.base_offset < next || (!s->gaps && bi.base_offset != next))
            break;
        ks_pidundo u;
        int64_t dup;
        (void)ks__pid_check(log, &bi, bi.base_offset, false, &dup, &u);
        atomic_store(&s->size, p);
        ks__seg_note_batch(s, &bi, p, (uint64_t)len, log->cfg.index_interval_bytes);
        next = kf_batch_last_offset(&bi) + 1;
        p += (uint64_t)len;
    }
    if (p != (uint64_t)pos || next != rp) {
        ks__seg_reset_indexes(s);
        atomic_store(&s->size, 0);
        atomic_store(&s->next_offset, s->base);
        return 0;
    }
    atomic_store(&s->size, p);
    atomic_store(&s->next_offset, next);
    return p;
}

/* Phase 5b: scan segment i of bv[0..nb) and, in the last segment, cut what
 * follows its first invalid byte.  Returns 1 when it cut (or, in a view,
 * stopped: the caller stops there), 0 when the segment is whole, or
 * KLOG_ECORRUPT for damage (a sealed segment invalid or short, invalid
 * bytes below the recovery point). */
static int scan_and_cut(ks_recovery *r, ks_segment *s, uint64_t fsize, const int64_t *bv, size_t i, size_t nb)
{
    ks_log *log = r->log;
    bool is_last = i + 1 == nb;
    if (is_last && fsize == 0)
        return 0; /* nothing to validate, nothing to make durable */
    int64_t limit = is_last ? INT64_MAX : bv[i + 1];
    uint64_t valid_end;
    int64_t expected;
    enum ks_tail tail;
    uint64_t from = is_last ? trusted_prefix(r, s, fsize) : 0;
    int rc = ks__scan_segment(log, s, from, fsize, limit, s->gaps, &valid_end, &expected, &tail);
    if (rc < 0)
        return rc;
    if (is_last)
        log->recovered_tail = tail;
    r->scanned = true;
    bool short_of_next = !is_last && !s->gaps && expected != limit;
    if (valid_end == fsize && !short_of_next)
        return 0;
    if (r->view)
        return 1; /* the view ends here: nothing cut, nothing after */
    /* A sealed segment was synced whole when it rolled (cleaning and
     * truncation sync what they write before it replaces anything), so
     * anything invalid or missing in one is damage.  In the last segment,
     * invalid bytes below the recovery point are acknowledged, synced data
     * gone bad: damage too.  Above it they are a torn write, cut. */
    if ((!is_last || expected < r->rp) && r->salvage) {
        salvage_cut(r, s, fsize, valid_end, expected, i, nb);
        return 1;
    }
    if (!is_last)
        return ks__damage(log, "%020lld.log: %s at position %llu (offset %lld) of a sealed segment%s",
                          (long long)s->base,
                          valid_end == fsize ? "ends short of the next segment" : "invalid batch",
                          (unsigned long long)valid_end, (long long)expected,
                          valid_end == fsize ? " (offsets missing)" : "");
    if (expected < r->rp)
        return ks__damage(log, "%020lld.log: invalid batch at position %llu (offset %lld), below the recovery "
                               "point %lld (acknowledged records would be dropped)",
                          (long long)s->base, (unsigned long long)valid_end, (long long)expected, (long long)r->rp);
    r->cut = s; /* tidy cuts the file */
    r->cut_at = valid_end;
    s->file_end = valid_end;
    r->changed = true;
    return 1;
}

/* Phase 5: open the segments above the start in offset order, into the
 * log's list; trust or scan each, up to the first invalid byte. */
static int load_segments(ks_recovery *r)
{
    ks_log *log = r->log;
    size_t nb = r->bases.n - r->skip;
    if (nb == 0)
        return 0; /* and bases.v may be NULL: NULL + 0 is undefined behaviour */
    const int64_t *bv = r->bases.v + r->skip;
    for (size_t i = 0; i < nb; i++) {
        ks_segment *s;
        int rc = ks__seg_new(&s, log->io, log->dir, bv[i], ks__map_cap(log), log->cfg.index_interval_bytes, false);
        if (rc < 0)
            return rc;
        uint64_t fsize = 0;
        if ((rc = kio_size(log->io, s->h, &fsize)) < 0 || (rc = ks__list_push(log, s)) < 0) {
            ks__seg_unref(s);
            return rc;
        }
        s->gaps = bv[i] < log->gap_limit; /* compaction may have thinned it */
        bool is_last = i + 1 == nb;
        rc = load_trusted(r, s, fsize, is_last ? INT64_MAX : bv[i + 1], is_last);
        if (rc == KLOG_ECORRUPT && r->view)
            return 0; /* the view ends with this segment */
        if (rc == 1)
            continue;
        if (rc == 0)
            rc = scan_and_cut(r, s, fsize, bv, i, nb);
        if (rc != 0)
            return rc < 0 ? rc : 0; /* 1: cut here, nothing follows */
    }
    return 0;
}

/* Phase 6: an empty directory (or nothing left above the start) gets its
 * first segment, at the start or the recovery point. */
static int create_first_segment(ks_recovery *r)
{
    ks_log *log = r->log;
    if (log->cfg.read_only)
        return -ENOENT;
    ks_segment *s;
    int64_t base = r->start > r->rp ? r->start : r->rp;
    if (r->view) { /* nothing to show: an empty log where the offsets stop */
        int rc = ks__seg_phantom(&s, log->io, base);
        if (rc == 0 && (rc = ks__list_push(log, s)) < 0)
            ks__seg_unref(s);
        return rc;
    }
    int rc = ks__seg_new(&s, log->io, log->dir, base, ks__map_cap(log), log->cfg.index_interval_bytes, true);
    if (rc < 0)
        return rc;
    if ((rc = ks__list_push(log, s)) < 0) {
        ks__seg_unref(s);
        return rc;
    }
    if ((rc = kio_dirsync(log->io, log->dir)) < 0)
        return rc;
    r->changed = true;
    return 0;
}

/* Phase 6b: the last check: the log must reach the recovery point. */
static int check_end(ks_recovery *r)
{
    int64_t end = atomic_load(&ks__active(r->log)->next_offset);
    if (end < r->rp && r->salvage) {
        if (!r->cut) /* a cut says so itself */
            report(r, "offsets %lld..%lld are gone (the log ends at %lld; recovery.ckpt vouched for them)",
                   (long long)end, (long long)r->rp - 1, (long long)end);
        return 0;
    }
    if (end < r->rp && !r->view)
        return ks__damage(r->log,
                          "recovery.ckpt vouches for offsets below %lld, but the log ends at %lld (acknowledged "
                          "records missing)",
                          (long long)r->rp, (long long)end);
    return 0;
}

/* Phase 6c: every check passed: the writes decided on the way. */
static int tidy(ks_recovery *r)
{
    ks_log *log = r->log;
    int rc = 0;
    if (!writes(r))
        return 0;
    for (size_t i = 0; i < r->nleft; i++)
        ks__unlink_in(log, r->left[i]); /* a leftover that stays is removed next time */
    for (size_t i = 0; i < r->ixs.n; i++) {
        /* index files of no segment (a crash between a segment's unlink and
         * its indexes', or a segment removed by hand) */
        if (r->bases.n > 0 && /* no segment at all: bases.v is NULL, which bsearch must not get */
            bsearch(&r->ixs.v[i], r->bases.v, r->bases.n, sizeof *r->bases.v, cmp_i64))
            continue;
        char name[KS_NAME_MAX];
        ks_segment_name(name, sizeof name, r->ixs.v[i], ".index");
        ks__unlink_in(log, name);
        ks_segment_name(name, sizeof name, r->ixs.v[i], ".timeindex");
        ks__unlink_in(log, name);
    }
    for (size_t i = 0; i < r->skip && rc == 0; i++)
        rc = ks__unlink_segment_files(log, r->bases.v[i]);
    if (rc == 0 && r->ix_stale) {
        char name[KS_NAME_MAX];
        ks_segment_name(name, sizeof name, r->ix_stale->base, ".index");
        rc = ks__unlink_in(log, name);
        ks_segment_name(name, sizeof name, r->ix_stale->base, ".timeindex");
        if (rc == 0)
            rc = ks__unlink_in(log, name);
    }
    if (rc == 0 && r->cut)
        rc = kio_truncate(log->io, r->cut->h, r->cut_at);
    for (size_t i = r->drop_from; rc == 0 && r->drop_from && i < r->bases.n; i++)
        rc = ks__unlink_segment_files(log, r->bases.v[i]);
    if (rc == 0 && r->cleaner_bad)
        rc = ks__cleaner_ckpt_write(log->io, log->dir, INT64_MAX, 0);
    return rc;
}

/* Phase 7: every segment but the last is sealed.  Indexes that were
 * rebuilt are rewritten so the next open does not scan them again. */
static int seal_older(ks_recovery *r)
{
    ks_log *log = r->log;
    for (unsigned i = 0; i + 1 < log->nsegs; i++) {
        ks_segment *s = log->segs[i];
        int rc;
        if (!s->sealed && writes(r) && (rc = ks__seg_write_indexes(s, log->dir)) < 0)
            return rc;
        s->sealed = true;
        ks__seg_ix_sealed(s); /* loaded again when a lookup needs them */
        kio_file_close(log->io, s->h);
        s->h = -1;
    }
    return 0;
}

/* Phase 8: set the offsets; if recovery changed or scanned anything, make
 * it durable and checkpoint the end; count the disk usage. */
static int settle(ks_recovery *r)
{
    ks_log *log = r->log;
    int64_t start = r->start;
    int64_t end = atomic_load(&ks__active(log)->next_offset);
    if (start < log->segs[0]->base)
        start = log->segs[0]->base;
    if (start > end)
        start = end;
    atomic_store(&log->end, end);
    atomic_store(&log->start, start);
    log->ckpt_start = r->start; /* what recovery.ckpt holds (0 when there is none) */
    if (writes(r) && (r->changed || r->scanned || r->rp != end || r->skip > 0)) {
        /* What survived may sit only in the page cache (a process crash):
         * make it durable before the checkpoint vouches for it. */
        int rc;
        if ((rc = kio_datasync(log->io, ks__active(log)->h)) < 0)
            return rc;
        if ((r->changed || r->skip > 0) && (rc = kio_dirsync(log->io, log->dir)) < 0)
            return rc;
        if ((rc = ks__ckpt_write(log->io, log->dir, end, start)) < 0)
            return rc;
        log->ckpt_start = start;
    }
    log->recovery_point = end;
    atomic_store(&log->durable, end);
    uint64_t disk = 0;
    for (unsigned i = 0; i < log->nsegs; i++)
        disk += ks__seg_disk(log->segs[i]);
    ks__disk_add(log, (int64_t)disk);
    return 0;
}

static int recover_pass(ks_log *log, bool view, char *rep, size_t rep_size)
{
    ks_recovery r = { .log = log, .view = view, .salvage = rep != NULL, .report = rep, .report_size = rep_size };
    int rc;
    if ((rc = read_checkpoints(&r)) < 0)
        return rc;
    if ((rc = list_files(&r)) == 0 && (rc = finish_swaps(&r)) == 0 && (rc = drop_below_start(&r)) == 0 &&
        (rc = check_missing(&r)) == 0 && (rc = load_segments(&r)) == 0 &&
        (log->nsegs > 0 || (rc = create_first_segment(&r)) == 0) && (rc = check_end(&r)) == 0 &&
        (rc = tidy(&r)) == 0 && (rc = seal_older(&r)) == 0)
        rc = settle(&r);
    free(r.bases.v);
    free(r.swaps.v);
    free(r.ixs.v);
    free(r.left);
    return rc;
}

/* Forget what a pass loaded (nothing was shared, nothing counted yet). */
static void forget(ks_log *log)
{
    for (unsigned i = 0; i < log->nsegs; i++)
        ks__seg_unref(log->segs[i]);
    log->nsegs = 0;
    log->active = NULL;
    log->npids = 0;
}

int ks__recover(ks_log *log)
{
    /* damaged by the layer above (log->damage set at open): a view at once */
    bool from_above = log->damage[0] != '\0';
    int rc = from_above && log->cfg.open_damaged ? KLOG_ECORRUPT : recover_pass(log, false, NULL, 0);
    /* A reader beside a live writer may list a file that retention or a
     * cleaning pass removes before it is opened, or catch a swap half
     * done: look again, a few times, before calling it missing or
     * damage. */
    for (int tries = 0; log->cfg.read_only && !from_above && (rc == -ENOENT || rc == KLOG_ECORRUPT) && tries < 5;
         tries++) {
        forget(log);
        log->damage[0] = '\0';
        nanosleep(&(struct timespec){ 0, 10 * 1000000L }, NULL);
        rc = recover_pass(log, false, NULL, 0);
    }
    if (rc != KLOG_ECORRUPT || !log->cfg.open_damaged || log->cfg.read_only)
        return rc;
    ks__damage(log, "invalid data"); /* every damage names itself; this is a backstop */
    forget(log);
    if ((rc = recover_pass(log, true, NULL, 0)) < 0)
        return rc;
    log->damaged = true;
    atomic_store(&log->failed, KLOG_ECORRUPT);
    return 0;
}

int ks__recover_salvage(ks_log *log, char *report, size_t report_size)
{
    static char none[1];
    if (!report || !report_size) {
        report = none;
        report_size = sizeof none;
    }
    report[0] = '\0';
    return recover_pass(log, false, report, report_size);
}
