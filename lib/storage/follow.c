/*
 * lib/storage/follow.c - a read-only log following the writer of another
 * process (ks_log_refresh; storage.h has the contract).
 *
 * The writer publishes by writing: a batch is in the page cache once its
 * write returned, and a reader of the same file sees it then.  What the
 * writer never does to a byte a reader was handed: rewrite or truncate it
 * (a roll cuts only the zeroed tail past the data; retention unlinks whole
 * files; a cleaning pass renames a new file over an old one).  So a
 * follower maps each file once, as recovery does, and:
 *   - validates what was appended since, through reads (never through the
 *     mapping: a tail cut under a mapping would fault), from its active
 *     segment's size to the file's length, and stops at the first
 *     incomplete batch (framing, CRC, offsets: ks__scan_segment) - a batch
 *     being written is simply not there yet;
 *   - notices a roll by the next segment's file (named by the end offset)
 *     appearing, and then lists the directory again: new segments are
 *     opened, files gone (retention) are dropped, files replaced (a
 *     cleaning pass: another inode under the same name) are opened anew.
 *     Segments dropped or replaced stay mapped while views hold them (the
 *     bytes of an unlinked file stay readable through its mapping).
 * Nothing is written: indexes of new sealed segments are loaded from the
 * writer's files or rebuilt in memory.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common/common.h"
#include "storage/internal.h"
#include "storage/layout.h"

/* The active segment's handle (a follower keeps it open). */
static int active_h(ks_log *log, ks_segment *s)
{
    if (s->h < 0)
        s->h = kio_file_open(log->io, s->path, KIO_O_RDONLY, 0);
    return s->h;
}

/*
 * The writer's segments may be larger than this reader's mapping of the
 * active one (segment.bytes is the writer's to set): map the file again,
 * larger, as a new segment object in its place (append_mu held).  Views
 * keep the old mapping.  Returns the new active segment, or NULL and *rc.
 */
static ks_segment *remap(ks_log *log, ks_segment *s, uint64_t fsize, int *rc)
{
    ks_segment *ns;
    size_t cap = KLOG_MAX(ks__map_cap(log), (size_t)fsize * 2);
    if ((*rc = ks__seg_new(&ns, log->io, log->dir, s->base, cap, log->cfg.index_interval_bytes, false)) < 0)
        return NULL;
    ks__seg_attach(log, ns);
    ns->gaps = s->gaps;
    uint64_t end;
    int64_t next;
    if ((*rc = ks__scan_segment(log, ns, 0, KLOG_MIN(fsize, (uint64_t)ns->map_cap), INT64_MAX, ns->gaps, &end,
                                &next, NULL)) < 0) {
        ks__seg_unref(ns);
        return NULL;
    }
    pthread_mutex_lock(&log->seg_mu);
    for (unsigned i = 0; i < log->nsegs; i++)
        if (log->segs[i] == s)
            log->segs[i] = ns;
    log->active = ns;
    pthread_mutex_unlock(&log->seg_mu);
    ks__seg_unref(s);
    return ns;
}

/* Validate what the writer appended to s since the last look.  Returns 0
 * or an error (-ENOENT: the file is gone). */
static int extend(ks_log *log, ks_segment *s)
{
    int h = active_h(log, s);
    if (h < 0)
        return h;
    uint64_t fsize = 0, size = atomic_load(&s->size);
    int rc = kio_size(log->io, h, &fsize);
    if (rc < 0 || fsize <= size)
        return rc;
    if (fsize > s->map_cap)
        return remap(log, s, fsize, &rc) ? 0 : rc; /* validated whole, as far as the file goes */
    if (s->ix_state != KS_IX_HEAP || s->sealed) {
        /* loaded from the files of a segment closed cleanly, and written
         * to again: growable indexes of its own (nothing is removed) */
        if ((rc = ks__seg_ix_own(log, s)) < 0)
            return rc;
        s->sealed = false;
    }
    uint64_t valid_end;
    int64_t expected;
    enum ks_tail tail = KS_TAIL_END;
    rc = ks__scan_segment(log, s, size, fsize, INT64_MAX, s->gaps, &valid_end, &expected, &tail);
    int64_t gl, cp;
    if (rc == 0 && tail == KS_TAIL_OFFSET && !s->gaps &&
        ks__cleaner_ckpt_read(log->io, log->dir, &gl, &cp) == 0 && s->base < gl) {
        /* a follower writer copied its leader's gap into this segment
         * (cleaner.ckpt said so before the batch was written): go on */
        atomic_store(&log->gap_limit, gl);
        s->gaps = true;
        rc = ks__scan_segment(log, s, atomic_load(&s->size), fsize, INT64_MAX, true, &valid_end, &expected, NULL);
    }
    if (rc == 0 && valid_end > s->file_end)
        s->file_end = valid_end;
    return rc;
}

/* Open the sealed segment at base (a roll's, or a cleaning pass's new
 * file), indexes from the writer's files or a scan.  *out referenced. */
static int open_sealed(ks_log *log, int64_t base, int64_t limit, ks_segment **out)
{
    ks_segment *s;
    int rc = ks__seg_new(&s, log->io, log->dir, base, ks__map_cap(log), log->cfg.index_interval_bytes, false);
    if (rc < 0)
        return rc;
    ks__seg_attach(log, s);
    s->gaps = base < log->gap_limit;
    uint64_t fsize = 0;
    if ((rc = kio_size(log->io, s->h, &fsize)) == 0 && ks__seg_load_indexes(s, log->dir, fsize, NULL) != 0) {
        uint64_t end;
        int64_t next;
        rc = ks__scan_segment(log, s, 0, fsize, limit, s->gaps, &end, &next, NULL);
    }
    if (rc < 0) {
        ks__seg_unref(s);
        return rc;
    }
    s->sealed = true;
    ks__seg_ix_sealed(s);
    kio_file_close(log->io, s->h);
    s->h = -1;
    *out = s;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The bases of the segment files in the directory, sorted (*out malloc'ed). */
static ssize_t list_bases(ks_log *log, int64_t **out)
{
    DIR *d = opendir(log->dir);
    if (!d)
        return -errno;
    int64_t *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        int64_t b;
        if (kl_segment_name_parse(de->d_name, ".log", &b) && (rc = klog__vec_reserve(&v, &cap, n + 1, sizeof *v)) == 0)
            v[n++] = b;
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_i64);
    *out = v;
    return (ssize_t)n;
}

/* The inode now under base's name, 0 if none. */
static uint64_t ino_of(ks_log *log, int64_t base)
{
    char name[KS_NAME_MAX], path[4200];
    struct stat st;
    ks_segment_name(name, sizeof name, base, ".log");
    snprintf(path, sizeof path, "%s/%s", log->dir, name);
    return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* List the directory again and rebuild the segment list from it (append_mu
 * held).  The active segment was extended to its end before. */
static int rescan(ks_log *log)
{
    int64_t *bases = NULL;
    ssize_t n = list_bases(log, &bases);
    if (n <= 0) {
        free(bases);
        return n < 0 ? (int)n : -ENOENT; /* a writer always leaves one */
    }
    int64_t gl, cp;
    if (ks__cleaner_ckpt_read(log->io, log->dir, &gl, &cp) == 0) {
        log->gap_limit = gl;
        atomic_store(&log->clean_point, cp);
    }
    ks_segment **nv = calloc((size_t)n, sizeof *nv);
    if (!nv) {
        free(bases);
        return -ENOMEM;
    }
    ks_segment *old_active = ks__active(log);
    int rc = 0;
    size_t k = 0;
    for (ssize_t i = 0; i < n && rc == 0; i++) {
        int64_t b = bases[i];
        bool last = i + 1 == n;
        uint64_t ino = ino_of(log, b);
        ks_segment *keep = NULL;
        pthread_mutex_lock(&log->seg_mu);
        for (unsigned j = 0; j < log->nsegs && !keep; j++)
            if (log->segs[j]->base == b && log->segs[j]->ino == ino)
                keep = log->segs[j];
        if (keep)
            ks__seg_ref(keep);
        pthread_mutex_unlock(&log->seg_mu);
        if (keep == old_active && !last) {
            /* the writer rolled: the old active segment is sealed, its
             * index files written before the next segment was made */
            keep->sealed = true;
            keep->ix_files = true;
            ks__seg_ix_sealed(keep);
            if (keep->h >= 0) {
                kio_file_close(log->io, keep->h);
                keep->h = -1;
            }
        }
        if (!keep && !last) {
            if ((rc = open_sealed(log, b, bases[i + 1], &keep)) == -ENOENT) {
                rc = 0; /* gone meanwhile (retention): the next look sees it so */
                continue;
            }
        } else if (!keep) {
            /* the new active segment */
            rc = ks__seg_new(&keep, log->io, log->dir, b, ks__map_cap(log), log->cfg.index_interval_bytes, false);
            if (rc == 0) {
                ks__seg_attach(log, keep);
                uint64_t fsize = 0, end;
                int64_t next;
                if ((rc = kio_size(log->io, keep->h, &fsize)) == 0)
                    rc = ks__scan_segment(log, keep, 0, fsize, INT64_MAX, false, &end, &next, NULL);
                if (rc < 0) {
                    ks__seg_unref(keep);
                    keep = NULL;
                }
            }
        }
        if (rc == 0 && keep)
            nv[k++] = keep;
    }
    free(bases);
    if (rc < 0 || k == 0) {
        for (size_t i = 0; i < k; i++)
            ks__seg_unref(nv[i]);
        free(nv);
        return rc < 0 ? rc : -ENOENT;
    }
    uint64_t disk = 0;
    for (size_t i = 0; i < k; i++)
        disk += ks__seg_disk(nv[i]);
    pthread_mutex_lock(&log->seg_mu);
    ks_segment **old = log->segs;
    unsigned nold = log->nsegs;
    log->segs = nv;
    log->nsegs = (unsigned)k;
    log->segcap = k;
    log->active = nv[k - 1];
    pthread_mutex_unlock(&log->seg_mu);
    for (unsigned i = 0; i < nold; i++)
        ks__seg_unref(old[i]); /* views keep theirs mapped */
    free(old);
    ks__disk_add(log, (int64_t)disk - (int64_t)atomic_load(&log->disk));
    return 0;
}

int ks_log_refresh(ks_log *log, bool rescan_dir)
{
    if (!log)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    if (!log->cfg.read_only)
        return KLOG_ESTATE;
    pthread_mutex_lock(&log->append_mu);
    int64_t end0 = atomic_load(&log->end);
    int rc = extend(log, ks__active(log));
    ks_segment *a = ks__active(log); /* extend may have mapped it anew */
    /* a roll names the next segment after the end offset */
    if (rc == 0 && !rescan_dir)
        rescan_dir = ino_of(log, atomic_load(&a->next_offset)) != 0 && atomic_load(&a->next_offset) != a->base;
    if (rc == -ENOENT)
        rescan_dir = true; /* the file is gone: what is there now? */
    if (rescan_dir) {
        if (rc == 0 || rc == -ENOENT)
            rc = extend(log, a); /* whatever it got before the roll */
        if (rc == 0 || rc == -ENOENT)
            rc = rescan(log);
    }
    int64_t start = log->segs[0]->base, ck_rp, ck_start;
    if (rescan_dir && ks__ckpt_read(log->io, log->dir, &ck_rp, &ck_start) == 0 && ck_start > start)
        start = ck_start; /* DeleteRecords moves the start within a segment */
    int64_t end = atomic_load(&ks__active(log)->next_offset);
    if (start > end)
        start = end;
    if (start > atomic_load(&log->start) || rescan_dir)
        atomic_store(&log->start, start);
    atomic_store_explicit(&log->end, end, memory_order_release);
    atomic_store(&log->durable, end);
    ks_listener_fn fn = log->listener;
    void *arg = log->listener_arg;
    pthread_mutex_unlock(&log->append_mu);
    if (fn && end != end0)
        fn(arg, end);
    return rc;
}
