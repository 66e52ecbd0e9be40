/*
 * tools/cmd_verify.c - `klog verify DIR`: check every partition's segments
 * and index files, read-only and without a lock, so that it works while an
 * application has the directory open.
 *
 * What counts as damage (exit 1) is what recovery in lib/storage
 * (recover.c) reports, opening the partition damaged, or repairs without
 * losing a record; the two must agree (test/api/damage.c holds them to
 * it): a batch that fails framing or its checksum in a sealed segment or
 * below the recovery point, offsets that do not increase (or, outside the
 * compacted range recorded in cleaner.ckpt, are not dense), a segment that
 * runs into the next or stops short of it, an index file whose header,
 * checksum or entries disagree with its segment, a damaged checkpoint,
 * leader-epoch-checkpoint or topics.meta (judged by the library's own
 * parsers), a recovery point past the end of the log, a first segment
 * above the log start, a missing partition directory, a missing
 * topics.meta beside partitions that hold records.  Warnings (exit 0) are
 * states a live or crashed writer leaves and the next open tidies: an
 * incomplete or invalid batch in the last segment at or past the recovery
 * point (a write in progress or a torn one: the open cuts it), a missing
 * or stale index, leftover .tmp/.cleaned files, an interrupted cleaning
 * pass, leader epochs starting past the log end (a truncation a crash cut
 * short).
 *
 * --repair then salvages what is damaged through the library (it opens DIR):
 * topics.meta moved aside, every partition the open finds damaged (with
 * log.recovery.verify.all) repaired by klog_topic_repair, which says what
 * it dropped; then DIR is checked again.
 *
 * Live directories: the writer may append, roll, clean or delete segments
 * while we read.  A partition whose pass finds damage, or sees a file
 * vanish, is checked again (up to three passes, 200 ms apart); only what
 * the last pass finds is reported.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "segfile.h"

static const char verify_help[] =
    "Usage: klog verify [OPTIONS] DIR\n"
    "\n"
    "Check a data directory (or a single partition directory): every batch of\n"
    "every segment (framing, checksum, offsets increasing, and dense except\n"
    "where cleaner.ckpt records compaction), segment boundaries, the .index and\n"
    ".timeindex files (header, checksum, every entry within its segment and\n"
    "naming a batch start and that batch's offset), recovery.ckpt,\n"
    "cleaner.ckpt, leader-epoch-checkpoint and topics.meta.  Read-only and\n"
    "lock-free: it works while an application has DIR open.  Problems are\n"
    "printed one per line as \"damage: PATH: ...\" or \"warning: PATH: ...\",\n"
    "then a summary.\n"
    "\n"
    "  --deep                 also decode every record (decompressing batches)\n"
    "  --repair               then salvage what is damaged, through the library\n"
    "                         (it opens DIR, so no one else may have it open):\n"
    "                         a damaged topics.meta is moved aside (the topics\n"
    "                         come back from their directories), and every\n"
    "                         partition the library finds damaged, checking\n"
    "                         every batch, is cut at its last good batch\n"
    "                         (klog_topic_repair); what goes is printed as\n"
    "                         \"repair: PARTITION: ...\"; then DIR is checked\n"
    "                         again.  What goes is gone: copy DIR first to keep it\n"
    "  -v, --verbose          also print one line per partition checked\n"
    "  -q, --quiet            print problems only, no summary\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 no damage (warnings allowed; with --repair: none left), 1\n"
    "damage found or DIR unreadable, 2 usage error, 3 (--repair) DIR locked by\n"
    "another process.\n";

enum { O_DEEP = 256, O_REPAIR };

static const struct option verify_opts[] = {
    { "help", no_argument, NULL, 'h' },
    { "verbose", no_argument, NULL, 'v' },
    { "quiet", no_argument, NULL, 'q' },
    { "deep", no_argument, NULL, O_DEEP },
    { "repair", no_argument, NULL, O_REPAIR },
    { NULL, 0, NULL, 0 },
};

/* ---- findings --------------------------------------------------------------- */

typedef struct report {
    char **lines;
    size_t n, cap;
    int damage, warnings;
    bool vanished;           /* a file went away while we read: retry */
    bool data;               /* the partition holds records or offsets above 0 */
    uint64_t segments, batches, records, bytes;
} report;

#define MAX_LINES 50 /* per partition; the rest are counted */

__attribute__((format(printf, 4, 5)))
static void add(report *r, bool damage, const char *path, const char *fmt, ...)
{
    if (damage)
        r->damage++;
    else
        r->warnings++;
    if (r->n >= MAX_LINES + 1)
        return;
    char msg[1024], *line = NULL;
    if (r->n == MAX_LINES) {
        snprintf(msg, sizeof msg, "... (more problems not shown)");
    } else {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    if (asprintf(&line, "%s: %s: %s", r->n == MAX_LINES ? "note" : damage ? "damage" : "warning", path, msg) < 0)
        return;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        char **nl = realloc(r->lines, nc * sizeof *nl);
        if (!nl) {
            free(line);
            return;
        }
        r->lines = nl;
        r->cap = nc;
    }
    r->lines[r->n++] = line;
}

static void report_free(report *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->lines[i]);
    free(r->lines);
    memset(r, 0, sizeof *r);
}

/* ---- one segment -------------------------------------------------------------- */

typedef struct segcheck {
    const char *pdir;   /* partition directory */
    const char *label;  /* its name for messages (relative to DIR) */
    int64_t base;
    bool is_last;
    int64_t limit;      /* next segment's base, or INT64_MAX */
    bool gaps;          /* offsets may have gaps (compacted range) */
    int64_t rp;         /* the recovery point (recovery.ckpt; 0 when unknown) */
    bool deep;
    kf_codec *codec;
    int64_t next;       /* out: offset after the last valid batch */
} segcheck;

/* Check one index file's entries against the batch starts found by the
 * scan, and its header against the segment. */
typedef struct ixcheck {
    ixfile ix;
    bool loaded, usable;   /* usable: framing and checksum right */
    size_t cur;            /* cursor: next entry to match */
    const char *suffix;
    char name[512];
} ixcheck;

static void ix_open(ixcheck *c, const segcheck *s, const char *suffix, bool time, report *r)
{
    memset(c, 0, sizeof *c);
    c->suffix = suffix;
    char path[4400];
    snprintf(c->name, sizeof c->name, "%s/%020" PRId64 "%s", s->label, s->base, suffix);
    snprintf(path, sizeof path, "%s/%020" PRId64 "%s", s->pdir, s->base, suffix);
    int rc = ix_load(path, time, &c->ix);
    if (rc == -ENOENT)
        return;
    c->loaded = true;
    if (rc < 0) {
        add(r, true, c->name, "cannot read: %s", strerror(-rc));
        c->loaded = false;
        return;
    }
    if (!c->ix.framing_ok) {
        add(r, true, c->name, "damaged: %s", c->ix.problem);
        return;
    }
    if (!c->ix.checksum_ok) {
        add(r, true, c->name, "checksum mismatch");
        return;
    }
    if (c->ix.h.base != s->base) {
        add(r, true, c->name, "header names base offset %" PRId64 ", the segment's is %" PRId64, c->ix.h.base,
            s->base);
        return;
    }
    c->usable = true;
    for (size_t i = 1; i < c->ix.n; i++) {
        const kl_tentry *a = &c->ix.e[i - 1], *b = &c->ix.e[i];
        if (b->pos <= a->pos || b->rel < a->rel || (!time && b->rel == a->rel) || (time && b->ts <= a->ts)) {
            add(r, true, c->name, "entry %zu does not increase over entry %zu", i, i - 1);
            c->usable = false;
            return;
        }
    }
}

/* Match the entries at or before position pos (a batch start). */
static void ix_step(ixcheck *c, uint64_t pos, const kf_batch_info *bi, int64_t running_max, bool time, report *r)
{
    if (!c->usable)
        return;
    while (c->cur < c->ix.n && c->ix.e[c->cur].pos < pos) {
        add(r, true, c->name, "entry %zu (offset %" PRId64 ", position %u) does not point at a batch start", c->cur,
            c->ix.h.base + c->ix.e[c->cur].rel, c->ix.e[c->cur].pos);
        c->cur++;
    }
    if (c->cur < c->ix.n && c->ix.e[c->cur].pos == pos) {
        const kl_tentry *e = &c->ix.e[c->cur];
        if (c->ix.h.base + e->rel != bi->base_offset)
            add(r, true, c->name, "entry %zu names offset %" PRId64 ", the batch at position %u starts at %" PRId64,
                c->cur, c->ix.h.base + e->rel, e->pos, bi->base_offset);
        else if (time && e->ts != running_max)
            add(r, true, c->name,
                "entry %zu has timestamp %" PRId64 ", the largest timestamp up to its batch is %" PRId64, c->cur,
                e->ts, running_max);
        c->cur++;
    }
}

static void verify_segment(segcheck *s, report *r)
{
    char path[4400], name[512];
    snprintf(path, sizeof path, "%s/%020" PRId64 ".log", s->pdir, s->base);
    snprintf(name, sizeof name, "%s/%020" PRId64 ".log", s->label, s->base);
    s->next = s->base;
    segrd rd;
    int rc = segrd_open(&rd, path);
    if (rc == -ENOENT) {
        r->vanished = true;
        add(r, false, name, "removed while being checked (retention or cleaning at work)");
        return;
    }
    if (rc < 0) {
        add(r, true, name, "cannot read: %s", strerror(-rc));
        return;
    }
    r->segments++;
    ixcheck oi, ti;
    ix_open(&oi, s, ".index", false, r);
    ix_open(&ti, s, ".timeindex", true, r);
    if (oi.loaded != ti.loaded && !s->is_last)
        add(r, false, oi.loaded ? ti.name : oi.name, "missing while its companion exists (rebuilt at next open)");
    else if (!oi.loaded && !ti.loaded && !s->is_last)
        add(r, false, name, "sealed segment without index files (rebuilt at next open)");

    uint64_t pos = 0;
    int64_t expected = s->base, running_max = -1, first_ts = -1;
    bool complete = false;
    for (;;) {
        const uint8_t *b;
        size_t len;
        kf_batch_info bi;
        int err;
        enum seg_status st = segrd_batch(&rd, pos, &b, &len, &bi, &err);
        if (st == SEG_END) {
            complete = true;
            break;
        }
        /* In the last segment, from the recovery point on, recovery takes
         * the first invalid batch for a torn write (or a write in
         * progress) and cuts the log there (lib/storage/recover.c): a
         * warning, as the open agrees.  Anywhere else it is damage. */
        bool torn = s->is_last && expected >= s->rp;
        if (st == SEG_INCOMPLETE) {
            if (torn)
                add(r, false, name,
                    "incomplete batch at position %" PRIu64 " (%" PRIu64 " bytes to the end): a write in progress, "
                    "or a torn write the next open truncates",
                    pos, rd.size - pos);
            else
                add(r, true, name, "incomplete batch at position %" PRIu64 " (%" PRIu64 " bytes to the end)%s", pos,
                    rd.size - pos, s->is_last ? ", below the recovery point" : "");
            break;
        }
        if (st == SEG_BADHDR && s->is_last && segrd_zero_tail(&rd, pos)) {
            if (torn)
                add(r, false, name,
                    "zeroed tail of %" PRIu64 " bytes from position %" PRIu64 ": written ahead of durable appends "
                    "and left by a crash; the next open cuts it",
                    rd.size - pos, pos);
            else
                add(r, true, name,
                    "zeros from position %" PRIu64 " (offset %" PRId64 "), below the recovery point %" PRId64
                    " (acknowledged records missing)",
                    pos, expected, s->rp);
            complete = true;
            break;
        }
        if (st == SEG_BADHDR) {
            if (torn)
                add(r, false, name,
                    "position %" PRIu64 ": invalid batch header (%s) at offset %" PRId64 ", past the recovery point "
                    "%" PRId64 ": a torn write; the next open cuts the log there (%" PRIu64 " bytes)",
                    pos, klog_err_name(err), expected, s->rp, rd.size - pos);
            else
                add(r, true, name, "position %" PRIu64 ": invalid batch header (%s); %" PRIu64 " bytes after it unchecked",
                    pos, klog_err_name(err), rd.size - pos);
            break;
        }
        if (st == SEG_IOERR) {
            add(r, true, name, "read at position %" PRIu64 " failed: %s", pos, strerror(-err));
            break;
        }
        int64_t last = kf_batch_last_offset(&bi);
        bool sum_ok = kf_batch_verify(b, len) == 0;
        if (torn && (!sum_ok || bi.base_offset < expected || (!s->gaps && bi.base_offset != expected))) {
            add(r, false, name,
                "position %" PRIu64 ": invalid batch (%s) at offset %" PRId64 ", past the recovery point %" PRId64
                ": a torn write; the next open cuts the log there (%" PRIu64 " bytes)",
                pos, !sum_ok ? "checksum mismatch" : "offsets out of order", expected, s->rp, rd.size - pos);
            break;
        }
        if (!sum_ok)
            add(r, true, name, "position %" PRIu64 ": batch of offsets %" PRId64 "..%" PRId64 ": checksum mismatch", pos,
                bi.base_offset, last);
        if (bi.base_offset < expected)
            add(r, true, name,
                "position %" PRIu64 ": batch starts at offset %" PRId64 ", below the expected %" PRId64
                " (offsets must increase)",
                pos, bi.base_offset, expected);
        else if (!s->gaps && bi.base_offset != expected)
            add(r, true, name,
                "position %" PRIu64 ": offsets %" PRId64 "..%" PRId64 " missing before this batch (no compaction "
                "recorded below offset %" PRId64 ")",
                pos, expected, bi.base_offset - 1, bi.base_offset);
        if (last >= s->limit)
            add(r, true, name,
                "position %" PRIu64 ": batch of offsets %" PRId64 "..%" PRId64 " runs into the next segment (base %" PRId64
                ")",
                pos, bi.base_offset, last, s->limit);
        if (s->deep && sum_ok) {
            const uint8_t *recs;
            size_t rlen;
            int dr = kf_batch_records(b, len, s->codec, &recs, &rlen);
            if (dr == 0) {
                kf_iter it;
                kf_record_view v;
                kf_iter_init(&it, &bi, recs, rlen);
                while ((dr = kf_iter_next(&it, &v)) == 1) {
                    size_t hp = 0;
                    kf_header h;
                    int hr;
                    while ((hr = kf_header_next(&v, &hp, &h)) == 1)
                        ;
                    if (hr < 0) {
                        dr = hr;
                        break;
                    }
                }
            }
            if (dr < 0)
                add(r, true, name, "position %" PRIu64 ": batch of offsets %" PRId64 "..%" PRId64 ": records: %s", pos,
                    bi.base_offset, last, klog_strerror(dr));
        }
        if (first_ts < 0)
            first_ts = bi.max_timestamp;
        if (bi.max_timestamp > running_max)
            running_max = bi.max_timestamp;
        ix_step(&oi, pos, &bi, running_max, false, r);
        ix_step(&ti, pos, &bi, running_max, true, r);
        if (last + 1 > expected)
            expected = last + 1;
        r->batches++;
        r->records += (uint64_t)bi.record_count;
        pos += len;
    }
    r->bytes += rd.size;
    s->next = expected;

    /* Entries past the last batch start, and the headers. */
    ixcheck *both[2] = { &oi, &ti };
    for (int k = 0; k < 2; k++) {
        ixcheck *c = both[k];
        if (!c->usable)
            continue;
        if (complete)
            for (; c->cur < c->ix.n; c->cur++)
                add(r, true, c->name, "entry %zu (offset %" PRId64 ", position %u) %s", c->cur,
                    c->ix.h.base + c->ix.e[c->cur].rel, c->ix.e[c->cur].pos,
                    c->ix.e[c->cur].pos >= rd.size ? "points past the end of the segment"
                                                   : "does not point at a batch start");
        if (c->ix.h.seg_size != rd.size) {
            if (s->is_last && c->ix.h.seg_size < rd.size)
                add(r, false, c->name,
                    "written for %" PRIu64 " bytes of the segment, which has %" PRIu64 " (stale: rebuilt at open)",
                    c->ix.h.seg_size, rd.size);
            else
                add(r, true, c->name, "written for %" PRIu64 " bytes of the segment, which has %" PRIu64,
                    c->ix.h.seg_size, rd.size);
        } else if (complete) {
            if (c->ix.h.next_offset != expected)
                add(r, true, c->name, "header says the next offset is %" PRId64 ", the segment's is %" PRId64,
                    c->ix.h.next_offset, expected);
            if (c->ix.h.first_ts != first_ts || c->ix.h.max_ts != running_max)
                add(r, true, c->name,
                    "header timestamps (first %" PRId64 ", max %" PRId64 ") differ from the segment's (%" PRId64
                    ", %" PRId64 ")",
                    c->ix.h.first_ts, c->ix.h.max_ts, first_ts, running_max);
        }
    }
    if (oi.usable && ti.usable && !kl_ix_same_state(&oi.ix.h, &ti.ix.h))
        add(r, true, name, "its .index and .timeindex headers describe different states");
    ix_free(&oi.ix);
    ix_free(&ti.ix);
    segrd_close(&rd);
}

/* ---- one partition ------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct i64s {
    int64_t *v;
    size_t n, cap;
} i64s;

static int push(i64s *l, int64_t x)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        int64_t *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = x;
    return 0;
}

typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static void strs_push(strs *l, const char *s)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        char **nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return;
        l->v = nv;
        l->cap = nc;
    }
    if ((l->v[l->n] = strdup(s)) != NULL)
        l->n++;
}

static bool has(const i64s *l, int64_t x)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == x)
            return true;
    return false;
}

static void verify_partition_once(const char *pdir, const char *label, bool deep, kf_codec *codec, report *r)
{
    DIR *d = opendir(pdir);
    if (!d) {
        if (errno == ENOENT)
            r->vanished = true;
        add(r, true, label, "cannot open: %s", strerror(errno));
        return;
    }
    i64s logs = { 0 }, ixs = { 0 }, tixs = { 0 }, swaps = { 0 };
    strs tmps = { 0 };
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        int64_t b;
        size_t l = strlen(n);
        if (kl_segment_name_parse(n, ".log", &b))
            push(&logs, b);
        else if (kl_segment_name_parse(n, ".index", &b))
            push(&ixs, b);
        else if (kl_segment_name_parse(n, ".timeindex", &b))
            push(&tixs, b);
        else if (kl_segment_name_parse(n, ".log.swap", &b))
            push(&swaps, b);
        else if (kl_segment_name_parse(n, ".log.cleaned", &b) || (l > 4 && !strcmp(n + l - 4, ".tmp")))
            strs_push(&tmps, n);
    }
    closedir(d);
    if (logs.n > 1)
        qsort(logs.v, logs.n, sizeof *logs.v, cmp_i64);

    char path[4400], name[600];
    int64_t rp = 0, start = 0, gap_limit = 0;
    ckpt ck;
    snprintf(path, sizeof path, "%s/" KL_CKPT_RECOVERY_NAME, pdir);
    snprintf(name, sizeof name, "%s/" KL_CKPT_RECOVERY_NAME, label);
    int rc = ckpt_load(path, KL_CKPT_MAGIC_RECOVERY, &ck);
    if (rc == -ENOENT)
        add(r, false, name, "missing (the next open re-validates the whole log)");
    else if (rc < 0)
        add(r, true, name, "cannot read: %s", strerror(-rc));
    else if (!ck.ok)
        add(r, true, name, "damaged (size, magic, version or checksum wrong)");
    else
        rp = ck.v.a, start = ck.v.b;
    snprintf(path, sizeof path, "%s/" KL_CKPT_CLEANER_NAME, pdir);
    snprintf(name, sizeof name, "%s/" KL_CKPT_CLEANER_NAME, label);
    rc = ckpt_load(path, KL_CKPT_MAGIC_CLEANER, &ck);
    if (rc == -ENOENT) {
        gap_limit = 0;
    } else if (rc < 0 || !ck.ok) {
        add(r, true, name, rc < 0 ? "cannot read" : "damaged (size, magic, version or checksum wrong)");
        gap_limit = INT64_MAX; /* as recovery does: gaps accepted anywhere */
    } else {
        gap_limit = ck.v.a;
    }
    /* leader-epoch-checkpoint: malformed is damage (the partition does not
     * open); entries are checked against the log end below. */
    kl_epoch_entry *ep = NULL;
    size_t nep = 0;
    snprintf(path, sizeof path, "%s/" KL_EPOCH_NAME, pdir);
    snprintf(name, sizeof name, "%s/" KL_EPOCH_NAME, label);
    {
        char *buf;
        size_t len;
        char why[256];
        rc = file_load(path, &buf, &len);
        if (rc < 0 && rc != -ENOENT) {
            add(r, true, name, "cannot read: %s", strerror(-rc));
        } else if (rc == 0) {
            rc = kl_epochs_parse(buf, len, &ep, &nep, why, sizeof why);
            if (rc == -ENOMEM)
                add(r, true, name, "cannot check: out of memory");
            else if (rc < 0)
                add(r, true, name, "damaged: %s (the partition opens damaged)", why);
            free(buf);
        }
    }
    r->data = rp > 0 || start > 0 || logs.n > 1 || (logs.n == 1 && logs.v[0] > 0);
    bool loose = swaps.n > 0;
    if (loose)
        r->vanished = true; /* a cleaning pass between its steps: look again */
    for (size_t i = 0; i < swaps.n; i++) {
        snprintf(name, sizeof name, "%s/%020" PRId64 ".log.swap", label, swaps.v[i]);
        add(r, false, name, "an interrupted cleaning pass (the next open finishes it); segment boundaries not checked");
    }
    for (size_t i = 0; i < ixs.n; i++)
        if (!has(&logs, ixs.v[i])) {
            snprintf(name, sizeof name, "%s/%020" PRId64 ".index", label, ixs.v[i]);
            add(r, false, name, "no segment for this index (removed at the next open)");
        }
    for (size_t i = 0; i < tixs.n; i++)
        if (!has(&logs, tixs.v[i])) {
            snprintf(name, sizeof name, "%s/%020" PRId64 ".timeindex", label, tixs.v[i]);
            add(r, false, name, "no segment for this index (removed at the next open)");
        }

    size_t skip = 0;
    while (skip + 1 < logs.n && logs.v[skip + 1] <= start) {
        snprintf(name, sizeof name, "%s/%020" PRId64 ".log", label, logs.v[skip]);
        add(r, false, name, "wholly below the log start offset %" PRId64 " (removed at next open)", start);
        skip++;
    }
    if (logs.n == 0) {
        if (rp > 0)
            add(r, true, label, "no segments, but recovery.ckpt vouches for offsets below %" PRId64, rp);
    } else {
        int64_t end = logs.v[skip];
        if (logs.v[skip] > start && logs.v[skip] >= gap_limit && !loose)
            add(r, true, label, "the log starts at offset %" PRId64 " but its first segment at %" PRId64
                " (segments missing)", start, logs.v[skip]);
        for (size_t i = skip; i < logs.n; i++) {
            segcheck s = {
                .pdir = pdir, .label = label, .base = logs.v[i], .is_last = i + 1 == logs.n,
                .limit = i + 1 < logs.n ? logs.v[i + 1] : INT64_MAX,
                .gaps = loose || logs.v[i] < gap_limit, .deep = deep, .codec = codec, .rp = rp,
            };
            if (loose)
                s.limit = INT64_MAX;
            verify_segment(&s, r);
            r->data = r->data || r->batches > 0;
            end = s.next;
            if (!s.is_last && !s.gaps && s.next < s.limit) {
                snprintf(name, sizeof name, "%s/%020" PRId64 ".log", label, s.base);
                add(r, true, name, "ends at offset %" PRId64 ", but the next segment starts at %" PRId64
                    " (offsets missing)", s.next, s.limit);
            }
        }
        if (rp > end && !r->vanished)
            add(r, true, label,
                "recovery.ckpt vouches for offsets below %" PRId64 ", but the log ends at %" PRId64
                " (acknowledged records missing)",
                rp, end);
        /* An entry may start at the end (a leader that has not written
         * yet), not past it. */
        if (nep > 0 && ep[nep - 1].start_offset > end && !loose) {
            snprintf(name, sizeof name, "%s/" KL_EPOCH_NAME, label);
            add(r, false, name, "epoch %d starts at %" PRId64 ", past the log end %" PRId64
                " (a truncation cut short; the next open drops it)", (int)ep[nep - 1].epoch,
                ep[nep - 1].start_offset, end);
        }
    }
    free(ep);
    /* The swap files themselves: whole, checksummed batches. */
    for (size_t i = 0; i < swaps.n; i++) {
        snprintf(path, sizeof path, "%s/%020" PRId64 ".log.swap", pdir, swaps.v[i]);
        snprintf(name, sizeof name, "%s/%020" PRId64 ".log.swap", label, swaps.v[i]);
        segrd rd;
        if (segrd_open(&rd, path) < 0)
            continue;
        uint64_t pos = 0;
        for (;;) {
            const uint8_t *b;
            size_t len;
            kf_batch_info bi;
            int err;
            enum seg_status st = segrd_batch(&rd, pos, &b, &len, &bi, &err);
            if (st == SEG_END)
                break;
            if (st != SEG_OK || kf_batch_verify(b, len) != 0) {
                add(r, true, name, "position %" PRIu64 ": invalid batch (the partition opens damaged)", pos);
                break;
            }
            pos += len;
        }
        segrd_close(&rd);
    }
    /* Temporary files still there after the pass are leftovers (a live
     * writer's atomic writes take milliseconds). */
    for (size_t i = 0; i < tmps.n; i++) {
        snprintf(path, sizeof path, "%s/%s", pdir, tmps.v[i]);
        snprintf(name, sizeof name, "%s/%s", label, tmps.v[i]);
        struct stat st;
        if (stat(path, &st) == 0)
            add(r, false, name, "leftover of an interrupted write, or a write in progress (removed at next open)");
        free(tmps.v[i]);
    }
    free(tmps.v);
    free(logs.v);
    free(ixs.v);
    free(tixs.v);
    free(swaps.v);
}

static void verify_partition(const char *pdir, const char *label, bool deep, kf_codec *codec, report *out)
{
    for (int attempt = 0;; attempt++) {
        report r = { 0 };
        verify_partition_once(pdir, label, deep, codec, &r);
        if ((r.damage == 0 && !r.vanished) || attempt == 2) {
            *out = r;
            return;
        }
        report_free(&r);
        struct timespec ts = { 0, 200 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* ---- the data directory -------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strverscmp(*(char *const *)a, *(char *const *)b);
}

/* "name-N" with N digits: a partition directory's name. */
static bool part_name(const char *n)
{
    if (n[0] == '.' || strstr(n, ".deleted-"))
        return false;
    const char *dash = strrchr(n, '-');
    if (!dash || dash == n || !dash[1])
        return false;
    for (const char *p = dash + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* Parse topics.meta with the library's parser.  Returns 1 (ok: *m
 * filled), 0 (absent), -1 (damaged or unreadable: *why). */
static int meta_read(const char *dir, kl_meta *m, char *why, size_t whysize)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/" KL_META_NAME, dir);
    memset(m, 0, sizeof *m);
    char *buf;
    size_t len;
    int rc = file_load(path, &buf, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        snprintf(why, whysize, "cannot read: %s", strerror(-rc));
        return -1;
    }
    rc = kl_meta_parse(buf, len, m, why, whysize);
    free(buf);
    if (rc == -ENOMEM)
        snprintf(why, whysize, "out of memory");
    return rc < 0 ? -1 : 1;
}

/* ---- --repair ------------------------------------------------------------------ */

/*
 * What verify called damage, the library salvages: a damaged topics.meta
 * is moved aside, so that the open recovers the topics from their
 * directories; the instance is opened with log.recovery.verify.all, so
 * that it finds every damaged batch (the open does not read the checksums
 * below a recovery point otherwise), and every partition it opens damaged
 * is repaired (klog_topic_repair), its report printed.
 */
static int repair_dir(const char *ctx, const char *dir, bool meta_damaged)
{
    if (meta_damaged) {
        char from[4400], to[4500];
        snprintf(from, sizeof from, "%s/" KL_META_NAME, dir);
        struct stat st;
        for (int i = 0; i < 1000; i++) {
            if (i == 0)
                snprintf(to, sizeof to, "%s.damaged", from);
            else
                snprintf(to, sizeof to, "%s.damaged.%d", from, i);
            if (stat(to, &st) != 0)
                break;
        }
        if (rename(from, to) != 0)
            return cli_err(ctx, "%s: %s", from, strerror(errno));
        printf("repair: " KL_META_NAME ": moved aside to %s; the topics come back from their partition "
               "directories, with the default configuration and retention.ms=-1 (set their keys again)\n",
               strrchr(to, '/') + 1);
    }
    klog_conf *conf = NULL;
    if (klog_conf_new(&conf) < 0)
        return cli_err(ctx, "out of memory");
    int st = cli_conf_set(ctx, conf, "log.recovery.verify.all", "true");
    klog *k = NULL;
    if (st == CLI_OK)
        st = cli_open(ctx, dir, false, conf, &k);
    klog_conf_free(conf);
    if (st != CLI_OK)
        return st;
    char **names = NULL;
    size_t n = 0;
    int rc = klog_topic_list(k, &names, &n);
    if (rc < 0) {
        klog_close(k);
        return cli_fail(ctx, "topics", rc, NULL);
    }
    int repaired = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        int np = klog_topic_describe(k, names[i], NULL, 0, NULL, 0);
        klog_partition_info *pi = np > 0 ? calloc((size_t)np, sizeof *pi) : NULL;
        if (np > 0 && !pi) {
            failed++;
            continue;
        }
        if (np > 0) {
            pi[0].struct_size = sizeof *pi;
            np = klog_topic_describe(k, names[i], pi, (size_t)np, NULL, 0);
        }
        for (int p = 0; p < np; p++) {
            if (pi[p].error != KLOG_ECORRUPT)
                continue;
            char rep[4096];
            rc = klog_topic_repair(k, names[i], p, rep, sizeof rep);
            if (rc == 0) {
                printf("repair: %s-%d: %s\n", names[i], p, rep[0] ? rep : "nothing dropped");
                repaired++;
            } else {
                printf("repair: %s-%d: failed: %s\n", names[i], p, klog_strerror(rc));
                failed++;
            }
        }
        free(pi);
    }
    klog_topic_list_free(names, n);
    rc = klog_close(k);
    printf("klog verify: %s: %d partition%s repaired, %d failed\n", dir, repaired, repaired == 1 ? "" : "s",
           failed);
    if (rc < 0)
        return cli_fail(ctx, "close", rc, NULL);
    return failed ? CLI_FAIL : CLI_OK;
}

/* Verify dir (a data directory, or one partition's: *single), printing
 * what is found; *meta_damaged when topics.meta is.  Returns CLI_OK (no
 * damage) or CLI_FAIL. */
static int verify_run(const char *ctx, const char *dir, bool deep, bool verbose, bool quiet, kf_codec *codec,
                      bool *single_out, bool *meta_damaged)
{
    report total = { 0 };
    int partitions = 0;
    /* A single partition directory? */
    bool single = false;
    *meta_damaged = false;
    DIR *d = opendir(dir);
    if (!d)
        return cli_err(ctx, "%s: %s", dir, strerror(errno));
    struct stat st;
    char **subs = NULL;
    size_t nsubs = 0, capsubs = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int64_t b;
        if (kl_segment_name_parse(de->d_name, ".log", &b) || !strcmp(de->d_name, KL_CKPT_RECOVERY_NAME))
            single = true;
        if (!part_name(de->d_name))
            continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (nsubs == capsubs) {
            capsubs = capsubs ? capsubs * 2 : 32;
            char **ns = realloc(subs, capsubs * sizeof *ns);
            if (!ns)
                break;
            subs = ns;
        }
        subs[nsubs++] = strdup(de->d_name);
    }
    closedir(d);
    if (nsubs > 1)
        qsort(subs, nsubs, sizeof *subs, cmp_str);

    if (single) {
        report r;
        verify_partition(dir, dir, deep, codec, &r);
        partitions = 1;
        for (size_t i = 0; i < r.n; i++)
            printf("%s\n", r.lines[i]);
        if (verbose)
            printf("%s: %s (%" PRIu64 " segments, %" PRIu64 " batches)\n", r.damage ? "DAMAGED" : "ok", dir,
                   r.segments, r.batches);
        total = r;
    } else {
        kl_meta meta;
        char why[300];
        int mr = meta_read(dir, &meta, why, sizeof why);
        const kl_meta_topic *mt = meta.topics;
        size_t nmt = meta.ntopics;
        if (mr < 0) {
            printf("damage: topics.meta: %s\n", why);
            total.damage++;
            *meta_damaged = true;
        }
        bool any_data = false;
        /* Every partition the metadata lists must have its directory. */
        for (size_t t = 0; t < nmt; t++)
            for (int p = 0; p < mt[t].partitions; p++) {
                char pn[300];
                snprintf(pn, sizeof pn, "%s-%d", mt[t].name, p);
                bool found = false;
                for (size_t i = 0; i < nsubs && !found; i++)
                    found = !strcmp(subs[i], pn);
                if (!found) {
                    printf("damage: %s: missing (topics.meta lists topic %s with %d partitions)\n", pn, mt[t].name,
                           mt[t].partitions);
                    total.damage++;
                }
            }
        for (size_t i = 0; i < nsubs; i++) {
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
            bool listed = mr <= 0;
            for (size_t t = 0; t < nmt && !listed; t++) {
                size_t tl = strlen(mt[t].name);
                int pn;
                listed = !strncmp(subs[i], mt[t].name, tl) && subs[i][tl] == '-' &&
                         cli_int(subs[i] + tl + 1, 0, mt[t].partitions - 1, &pn);
            }
            report r;
            verify_partition(p, subs[i], deep, codec, &r);
            if (!listed && mr > 0)
                add(&r, false, subs[i], r.data ? "not listed in topics.meta: the next open adopts it (it holds records)"
                                               : "not listed in topics.meta (a topic being created, or a creation that "
                                                 "crashed: the next open removes it)");
            any_data = any_data || r.data;
            partitions++;
            for (size_t j = 0; j < r.n; j++)
                printf("%s\n", r.lines[j]);
            if (verbose)
                printf("%s: %s (%" PRIu64 " segments, %" PRIu64 " batches)\n", r.damage ? "DAMAGED" : "ok", subs[i],
                       r.segments, r.batches);
            total.damage += r.damage;
            total.warnings += r.warnings;
            total.segments += r.segments;
            total.batches += r.batches;
            total.records += r.records;
            total.bytes += r.bytes;
            report_free(&r);
        }
        if (mr == 0 && any_data) {
            printf("damage: topics.meta: missing, but partition directories hold records (the next open "
                   "recovers their topics from them, with default configuration and retention.ms=-1)\n");
            total.damage++;
        } else if (mr == 0 && nsubs > 0) {
            printf("warning: topics.meta: missing, and no partition directory holds a record (a first topic "
                   "being created?)\n");
            total.warnings++;
        }
        kl_meta_free(&meta);
    }
    if (!quiet)
        printf("klog verify: %s: %d partitions, %" PRIu64 " segments, %" PRIu64 " batches, %" PRIu64
               " records, %" PRIu64 " bytes checked: %s (%d problems, %d warnings)\n",
               dir, partitions, total.segments, total.batches, total.records, total.bytes,
               total.damage ? "DAMAGED" : "clean", total.damage, total.warnings);
    int rc = total.damage ? CLI_FAIL : CLI_OK;
    *single_out = single;
    if (single)
        report_free(&total);
    for (size_t i = 0; i < nsubs; i++)
        free(subs[i]);
    free(subs);
    return rc;
}

int cmd_verify(int argc, char **argv)
{
    const char *ctx = "verify";
    bool deep = false, verbose = false, quiet = false, repair = false;
    int c;
    optind = 0;
    while ((c = cli_getopt(argc, argv, "hvq", verify_opts, ctx, ctx)) != -1) {
        switch (c) {
        case 'h': fputs(verify_help, stdout); return CLI_OK;
        case 'v': verbose = true; break;
        case 'q': quiet = true; break;
        case O_DEEP: deep = true; break;
        case O_REPAIR: repair = true; break;
        default: return CLI_USAGE;
        }
    }
    const char *dir = NULL;
    if (optind < argc) {
        if (optind + 1 < argc)
            return cli_usage(ctx, ctx, "unexpected argument '%s' (one directory at a time)", argv[optind + 1]);
        dir = argv[optind];
    } else {
        dir = cli_global_dir ? cli_global_dir : getenv("KLOG_DIR");
        if (!dir || !*dir)
            return cli_usage(ctx, ctx, "no directory given");
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return cli_err(ctx, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_err(ctx, "%s: not a directory", dir);
    kf_codec *codec = NULL;
    if (deep && kf_codec_new(&codec) < 0)
        return cli_err(ctx, "out of memory");
    bool single = false, meta_damaged = false;
    int rc = verify_run(ctx, dir, deep, verbose, quiet, codec, &single, &meta_damaged);
    if (repair && rc == CLI_FAIL && single) {
        printf("klog verify: --repair works on a data directory (the instance repairs its partitions), not on "
               "one partition's directory\n");
    } else if (repair && rc == CLI_FAIL) {
        int rr = repair_dir(ctx, dir, meta_damaged);
        if (rr != CLI_OK) {
            rc = rr;
        } else {
            printf("klog verify: after the repair:\n");
            rc = verify_run(ctx, dir, deep, verbose, quiet, codec, &single, &meta_damaged);
        }
    } else if (repair && !quiet) {
        printf("klog verify: no damage: nothing to repair\n");
    }
    kf_codec_free(codec);
    return rc;
}
