/*
 * lib/storage/segment.c - one segment: its file, its read mapping, its
 * reference count, and lookups through its indexes.
 *
 * Lifetime: a segment is created with one reference, held by the log's
 * segment list.  Readers take a reference for as long as they hold a view
 * into the mapping.  The last unref unmaps and frees; a segment removed from
 * the log (retention, truncation) may already be unlinked by then, which is
 * fine: the mapping keeps the pages.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "storage/internal.h"
#include "storage/layout.h"

void ks_segment_name(char *out, size_t cap, int64_t base, const char *suffix)
{
    kl_segment_name(out, cap, base, suffix);
}

KLOG_COLD int ks__seg_new(ks_segment **out, kio *io, const char *dir, int64_t base,
                size_t map_cap, uint32_t interval, bool create)
{
    char name[KS_NAME_MAX];
    ks_segment_name(name, sizeof name, base, ".log");
    size_t plen = strlen(dir) + 1 + strlen(name);
    if (plen >= 4096)
        return -ENAMETOOLONG;
    ks_segment *s = calloc(1, sizeof *s + plen + 1);
    if (!s)
        return -ENOMEM;
    s->base = base;
    s->io = io;
    s->h = -1;
    s->map = MAP_FAILED;
    s->first_ts = -1;
    s->max_ts = -1;
    s->interval = interval;
    s->ix_state = KS_IX_HEAP; /* empty, and grows as batches are noted */
    pthread_mutex_init(&s->ix_mu, NULL);
    atomic_store(&s->refs, 1);
    atomic_store(&s->next_offset, base);
    /* A new file holds only what this process will append; an existing one
     * nothing proven until a scan or a reader checks it. */
    atomic_store(&s->trusted_from, create ? 0 : UINT64_MAX);
    int rc;
    snprintf(s->path, plen + 1, "%s/%s", dir, name);
    s->h = kio_file_open(io, s->path, KIO_O_RDWR | (create ? KIO_O_CREAT | KIO_O_EXCL : 0), 0644);
    if (!create && (s->h == -EACCES || s->h == -EROFS))
        s->h = kio_file_open(io, s->path, KIO_O_RDONLY, 0); /* a reader without write permission */
    if (s->h < 0) {
        rc = s->h;
        goto fail;
    }
    uint64_t fsize = 0;
    if ((rc = kio_size(io, s->h, &fsize)) < 0)
        goto fail;
    /* The mapping covers the most the segment can ever hold.  Pages past the
     * end of the file are never touched: readers stop at `size`. */
    s->map_cap = KLOG_MAX(map_cap, (size_t)fsize);
    s->file_end = fsize;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) == 0)
        s->ino = (uint64_t)st.st_ino;
    s->map = mmap(NULL, s->map_cap, PROT_READ, MAP_SHARED, fd, 0);
    rc = s->map == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc < 0)
        goto fail;
    uint32_t step = KLOG_MAX(interval, (uint32_t)KF_HDR_SIZE);
    s->ix_max = (uint32_t)KLOG_MIN(s->map_cap / step + 2, (size_t)UINT32_MAX);
    *out = s;
    return 0;
fail:
    ks__seg_unref(s);
    return rc;
}

int ks__seg_phantom(ks_segment **out, kio *io, int64_t base)
{
    ks_segment *s = calloc(1, sizeof *s + 1);
    if (!s)
        return -ENOMEM;
    s->base = base;
    s->io = io;
    s->h = -1;
    s->map = MAP_FAILED;
    s->first_ts = -1;
    s->max_ts = -1;
    s->sealed = true; /* nothing is appended to it */
    s->ix_state = KS_IX_HEAP; /* empty, and no files to load */
    pthread_mutex_init(&s->ix_mu, NULL);
    atomic_store(&s->refs, 1);
    atomic_store(&s->next_offset, base);
    *out = s;
    return 0;
}

void ks__seg_attach(ks_log *log, ks_segment *s)
{
    s->cache = log->cfg.cache;
}

static void store_min(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v < cur && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed, memory_order_relaxed))
        ;
}

void ks__seg_proven_scan(ks_segment *s, uint64_t from, uint64_t valid_end)
{
    store_min(&s->trusted_from, from);
    if (from == 0) {
        uint64_t cur = atomic_load_explicit(&s->verified, memory_order_relaxed);
        while (cur < valid_end && !atomic_compare_exchange_weak_explicit(&s->verified, &cur, valid_end,
                                                                         memory_order_relaxed, memory_order_relaxed))
            ;
    }
}

void ks__seg_proven_from(ks_segment *s, uint64_t pos)
{
    store_min(&s->trusted_from, pos);
}

void ks__seg_proven_cut(ks_segment *s, uint64_t pos)
{
    store_min(&s->verified, pos);
    store_min(&s->trusted_from, pos);
    store_min(&s->disk_proven, pos);
}

void ks__seg_proven_disk(ks_segment *s, uint64_t proven)
{
    atomic_store_explicit(&s->disk_proven, proven, memory_order_relaxed);
}

uint64_t ks__seg_proven_prefix(ks_segment *s, uint64_t size)
{
    uint64_t p = KLOG_MAX(atomic_load_explicit(&s->verified, memory_order_relaxed),
                          atomic_load_explicit(&s->disk_proven, memory_order_relaxed));
    if (atomic_load_explicit(&s->trusted_from, memory_order_relaxed) <= p)
        p = size; /* the rest appended or scanned here */
    return KLOG_MIN(p, size);
}

void ks__seg_ref(ks_segment *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

/* Forget the in-memory indexes (ix_mu held, or the segment unshared):
 * unmap or free them; the state goes back to OUT.  Not the cache's
 * accounting (the caller's). */
static void ix_release(ks_segment *s)
{
    for (int i = 0; i < 2; i++)
        if (s->ix_map[i]) {
            munmap(s->ix_map[i], s->ix_map_len[i]);
            s->ix_map[i] = NULL;
            s->ix_map_len[i] = 0;
        }
    if (s->ix_state == KS_IX_HEAP) {
        free(s->oidx.e);
        free(s->tidx.e);
    }
    s->oidx.e = s->tidx.e = NULL;
    s->oidx.cap = s->tidx.cap = 0;
    atomic_store(&s->oidx.count, 0);
    atomic_store(&s->tidx.count, 0);
    s->ix_state = KS_IX_OUT;
}

void ks__seg_ix_drop_locked(ks_segment *s)
{
    ix_release(s);
}

void ks__seg_unref(ks_segment *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Off the cache's list first, under its lock: a sweep may be dropping
     * its indexes this very moment, and lets go of it (its ix_mu) only
     * before it lets go of that lock. */
    if (s->cache)
        ks__ixc_del(s);
    if (s->map != MAP_FAILED)
        munmap(s->map, s->map_cap);
    if (s->h >= 0)
        kio_file_close(s->io, s->h);
    ix_release(s);
    pthread_mutex_destroy(&s->ix_mu);
    free(s);
}

/* Empty HEAP indexes (ix_mu held, or the segment unshared): what a rescan
 * or a rebuild starts from. */
static void ix_reset_heap(ks_segment *s)
{
    if (s->ix_state != KS_IX_HEAP) {
        if (s->ixc_in)
            ks__ixc_del(s);
        ix_release(s);
        s->ix_state = KS_IX_HEAP;
    }
    atomic_store(&s->oidx.count, 0);
    atomic_store(&s->tidx.count, 0);
}

void ks__seg_reset_indexes(ks_segment *s)
{
    pthread_mutex_lock(&s->ix_mu);
    ix_reset_heap(s);
    s->ix_files = false; /* what follows (a rescan) may cut the segment */
    pthread_mutex_unlock(&s->ix_mu);
    s->since_oidx = 0;
    s->since_tidx = 0;
    s->first_ts = -1;
    s->max_ts = -1;
}

/* Append an entry to a HEAP index, growing it (doubling, up to ix_max) as
 * it fills.  The one writer: entries are published through count; the
 * array moves only under ix_mu (taken here unless have_mu).  A failed
 * growth leaves the index sparser, never wrong. */
static void ix_push(ks_segment *s, ks_index *ix, const void *entry, size_t esize, bool have_mu)
{
    uint32_t n = atomic_load_explicit(&ix->count, memory_order_relaxed);
    if (n >= ix->cap) {
        if (ix->cap >= s->ix_max)
            return;
        uint32_t ncap = ix->cap ? (ix->cap > s->ix_max / 2 ? s->ix_max : ix->cap * 2) : 32;
        if (!have_mu)
            pthread_mutex_lock(&s->ix_mu);
        void *e = realloc(ix->e, (size_t)ncap * esize);
        if (e) {
            ix->e = e;
            ix->cap = ncap;
        }
        if (!have_mu)
            pthread_mutex_unlock(&s->ix_mu);
        if (!e)
            return;
    }
    memcpy((uint8_t *)ix->e + (size_t)n * esize, entry, esize);
    atomic_store_explicit(&ix->count, n + 1, memory_order_release);
}

static void note_batch(ks_segment *s, const kf_batch_info *bi, uint64_t pos, uint64_t len, uint32_t interval,
                       bool have_mu)
{
    uint32_t rel = (uint32_t)(bi->base_offset - s->base);
    if (s->since_oidx >= interval) {
        ks_oentry e = { rel, (uint32_t)pos };
        ix_push(s, &s->oidx, &e, sizeof e, have_mu);
        s->since_oidx = 0;
    }
    s->since_oidx += len;
    if (s->first_ts < 0)
        s->first_ts = bi->max_timestamp;
    if (bi->max_timestamp > s->max_ts) {
        s->max_ts = bi->max_timestamp;
        if (s->since_tidx >= interval) {
            ks_tentry e = { bi->max_timestamp, rel, (uint32_t)pos };
            ix_push(s, &s->tidx, &e, sizeof e, have_mu);
            s->since_tidx = 0;
        }
    }
    s->since_tidx += len;
}

void ks__seg_note_batch(ks_segment *s, const kf_batch_info *bi, uint64_t pos,
                        uint64_t len, uint32_t interval)
{
    note_batch(s, bi, pos, len, interval, false);
}

void ks__seg_truncate_indexes(ks_segment *s, uint64_t pos)
{
    pthread_mutex_lock(&s->ix_mu);
    uint32_t n = atomic_load(&s->oidx.count);
    const ks_oentry *oe = s->oidx.e;
    while (n > 0 && oe[n - 1].pos >= pos)
        n--;
    atomic_store(&s->oidx.count, n);
    n = atomic_load(&s->tidx.count);
    const ks_tentry *te = s->tidx.e;
    while (n > 0 && te[n - 1].pos >= pos)
        n--;
    atomic_store(&s->tidx.count, n);
    pthread_mutex_unlock(&s->ix_mu);
}

static int ix_ensure(ks_segment *s);

/* ks__seg_find scans segments up to this many index intervals
 * (index.interval.bytes, 4 KiB by default: 64 KiB) from their start rather
 * than load their indexes: a few batch headers against two files opened
 * and mapped. */
#define KS_FIND_SCAN_INTERVALS 16u

/* The batch holding offset, or the first one after it when offset falls in
 * a gap left by compaction.  Framing only. */
int ks__seg_find(ks_segment *s, int64_t offset, uint64_t *pos_out)
{
    uint64_t size = atomic_load_explicit(&s->size, memory_order_acquire);
    uint64_t pos = 0;
    int64_t rel = offset - s->base;
    int64_t want = s->base;
    /* The segment's first batch needs no index; nor does a segment whose
     * indexes are not in memory and which is small enough that a scan of
     * its batch headers costs less than loading its index files (two
     * opens, a mapping each): a fresh process's first read of each of
     * thousands of small partitions loaded both files of every one (4,096
     * partitions read from their start: 10 system calls and 25 us each,
     * most of the read's first pass; bench/RESULTS.md, eighth session).
     * Indexes in memory (an active segment's: a tailing reader's every
     * read) are used whatever the size.  Without one the scan starts at 0. */
    bool use_index = rel > 0;
    pthread_mutex_lock(&s->ix_mu);
    if (use_index && s->ix_state == KS_IX_OUT && size <= (uint64_t)KS_FIND_SCAN_INTERVALS * s->interval)
        use_index = false;
    if (use_index && ix_ensure(s) == 0) {
        uint32_t n = atomic_load_explicit(&s->oidx.count, memory_order_acquire);
        const ks_oentry *e = s->oidx.e;
        /* largest entry with e.rel <= rel */
        uint32_t lo = 0, hi = n;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if ((int64_t)e[mid].rel <= rel)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo > 0 && e[lo - 1].pos < size) {
            pos = e[lo - 1].pos;
            want = s->base + e[lo - 1].rel;
        }
    }
    pthread_mutex_unlock(&s->ix_mu);
    while (pos < size) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(s->map + pos, size - pos, &bi);
        if (len <= 0 || bi.base_offset < want || (!s->gaps && bi.base_offset != want))
            return KLOG_ECORRUPT; /* whole batches, offsets dense (or increasing), below size */
        want = kf_batch_last_offset(&bi) + 1;
        if (kf_batch_last_offset(&bi) >= offset) {
            *pos_out = pos;
            return 0;
        }
        pos += (uint64_t)len;
    }
    return KLOG_EOFFSET;
}

int ks__seg_find_time(ks_segment *s, int64_t ts, uint64_t *pos_out)
{
    uint64_t size = atomic_load_explicit(&s->size, memory_order_acquire);
    uint64_t pos = 0;
    pthread_mutex_lock(&s->ix_mu);
    if (ix_ensure(s) == 0) {
        uint32_t n = atomic_load_explicit(&s->tidx.count, memory_order_acquire);
        const ks_tentry *e = s->tidx.e;
        /* Last entry whose running max timestamp is still below ts: no
         * record in or before that batch can qualify, so the scan may
         * start there. */
        uint32_t lo = 0, hi = n;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (e[mid].ts < ts)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo > 0 && e[lo - 1].pos < size)
            pos = e[lo - 1].pos;
    }
    pthread_mutex_unlock(&s->ix_mu);
    while (pos < size) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(s->map + pos, size - pos, &bi);
        if (len <= 0)
            return KLOG_ECORRUPT;
        if (bi.max_timestamp >= ts)
            break;
        pos += (uint64_t)len;
    }
    *pos_out = pos;
    return 0;
}

/*
 * Index files (layout.h has the layout).  The header records the segment's
 * size and next offset, so a sealed segment whose indexes load needs no scan
 * at open.  The in-memory entries are the file's: they are copied whole.
 */
_Static_assert(sizeof(ks_oentry) == sizeof(kl_oentry) && offsetof(ks_oentry, rel) == offsetof(kl_oentry, rel) &&
               offsetof(ks_oentry, pos) == offsetof(kl_oentry, pos), "ks_oentry is the file's entry");
_Static_assert(sizeof(ks_tentry) == sizeof(kl_tentry) && offsetof(ks_tentry, ts) == offsetof(kl_tentry, ts) &&
               offsetof(ks_tentry, rel) == offsetof(kl_tentry, rel) &&
               offsetof(ks_tentry, pos) == offsetof(kl_tentry, pos), "ks_tentry is the file's entry");

/* Scratch buffers for whole index files: a large one is mapped, so that
 * freeing it gives the memory back at once (a freed multi-megabyte heap
 * block would raise malloc's mmap threshold and stay resident). */
#define KS_SCRATCH_MAP (64u << 10)

static void *scratch_alloc(size_t len)
{
    if (len < KS_SCRATCH_MAP)
        return malloc(len ? len : 1);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void scratch_free(void *p, size_t len)
{
    if (len < KS_SCRATCH_MAP)
        free(p);
    else if (p)
        munmap(p, len);
}

KLOG_COLD static int write_index(ks_segment *s, const char *dir, const char *suffix, uint32_t magic,
                       const void *entries, uint32_t count, size_t esize, bool durable)
{
    size_t len = KL_IX_HDR_SIZE + (size_t)count * esize;
    uint8_t *b = scratch_alloc(len);
    if (!b)
        return -ENOMEM;
    uint64_t size = atomic_load(&s->size), proven = ks__seg_proven_prefix(s, size);
    kl_ix_hdr h = { .magic = magic, .base = s->base, .seg_size = size,
                    .next_offset = atomic_load(&s->next_offset), .first_ts = s->first_ts,
                    .max_ts = s->max_ts, .count = count,
                    .proven = proven <= UINT32_MAX ? (uint32_t)proven : 0 };
    kl_ix_encode(b, &h, entries);
    char name[KS_NAME_MAX];
    ks_segment_name(name, sizeof name, s->base, suffix);
    int rc = durable ? ks_write_atomic(s->io, dir, name, b, len) : ks_write_replace(s->io, dir, name, b, len);
    scratch_free(b, len);
    return rc;
}

static uint64_t index_bytes(uint32_t no, uint32_t nt)
{
    return 2 * KL_IX_HDR_SIZE + (uint64_t)no * sizeof(ks_oentry) + (uint64_t)nt * sizeof(ks_tentry);
}

static int write_indexes(ks_segment *s, const char *dir, bool durable)
{
    if (s->ix_files)
        return 0; /* they are on disk already, and describe it as it is */
    /* The writer's own entries: nobody else changes them meanwhile. */
    pthread_mutex_lock(&s->ix_mu);
    int rc = ix_ensure(s);
    pthread_mutex_unlock(&s->ix_mu);
    if (rc < 0)
        return rc;
    uint32_t no = atomic_load(&s->oidx.count), nt = atomic_load(&s->tidx.count);
    rc = write_index(s, dir, ".index", KL_IX_MAGIC_OFFSET, s->oidx.e, no, sizeof(ks_oentry), durable);
    if (rc == 0)
        rc = write_index(s, dir, ".timeindex", KL_IX_MAGIC_TIME, s->tidx.e, nt, sizeof(ks_tentry), durable);
    if (rc == 0) {
        s->ix_bytes = index_bytes(no, nt);
        s->ix_files = true;
    }
    return rc;
}

int ks__seg_write_indexes(ks_segment *s, const char *dir)
{
    return write_indexes(s, dir, true);
}

int ks__seg_write_indexes_nosync(ks_segment *s, const char *dir)
{
    return write_indexes(s, dir, false);
}

void ks__seg_ix_sealed(ks_segment *s)
{
    if (!s->ix_files)
        return; /* not written: the memory is all there is */
    pthread_mutex_lock(&s->ix_mu);
    if (s->ix_state == KS_IX_HEAP)
        ix_release(s);
    pthread_mutex_unlock(&s->ix_mu);
}

/* Scan the mapping's batch headers up to size, noting each (a rebuild:
 * the bytes were verified when written or at open).  ix_mu held or the
 * segment unshared. */
static int index_scan(ks_segment *s, uint64_t size, uint32_t interval, int64_t *next_out, bool have_mu)
{
    ix_reset_heap(s);
    s->since_oidx = s->since_tidx = 0;
    s->first_ts = s->max_ts = -1;
    int64_t next = s->base;
    for (uint64_t p = 0; p < size;) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(s->map + p, size - p, &bi);
        if (len <= 0 || bi.base_offset < next)
            return KLOG_ECORRUPT;
        note_batch(s, &bi, p, (uint64_t)len, interval, have_mu);
        next = kf_batch_last_offset(&bi) + 1;
        p += (uint64_t)len;
    }
    *next_out = next;
    return 0;
}

int ks__seg_index_map(ks_segment *s, uint64_t size, uint32_t interval)
{
    int64_t next;
    pthread_mutex_lock(&s->ix_mu);
    int rc = index_scan(s, size, interval, &next, true);
    pthread_mutex_unlock(&s->ix_mu);
    if (rc < 0)
        return rc;
    atomic_store(&s->size, size);
    atomic_store(&s->next_offset, next);
    return 0;
}

/* The checks an index file's entries pass before they are used: in range
 * and strictly increasing. */
static bool oentries_ok(const ks_segment *s, const ks_oentry *oe, uint32_t n, uint64_t seg_size, int64_t next)
{
    for (uint32_t i = 0; i < n; i++)
        if (oe[i].pos >= seg_size || s->base + oe[i].rel >= next ||
            (i > 0 && (oe[i].pos <= oe[i - 1].pos || oe[i].rel <= oe[i - 1].rel)))
            return false;
    return true;
}

static bool tentries_ok(const ks_tentry *te, uint32_t n, uint64_t seg_size)
{
    for (uint32_t i = 0; i < n; i++)
        if (te[i].pos >= seg_size || (i > 0 && (te[i].pos <= te[i - 1].pos || te[i].ts <= te[i - 1].ts)))
            return false;
    return true;
}

/* Decode a whole index file in b[0..n) and check it against the segment. */
static int check_index(const ks_segment *s, const uint8_t *b, size_t n, uint32_t magic, uint64_t seg_size,
                       kl_ix_hdr *h)
{
    if (kl_ix_decode(b, n, magic, h) != KL_IX_OK || h->base != s->base || h->seg_size != seg_size ||
        h->count > s->ix_max)
        return KLOG_ECORRUPT;
    return 0;
}

/* The path of one of s's index files. */
static int ix_path(const ks_segment *s, const char *suffix, char *path, size_t cap)
{
    size_t n = strlen(s->path); /* dir/NNNN.log */
    if (n < 4 || n - 4 + strlen(suffix) + 1 > cap)
        return -ENAMETOOLONG;
    memcpy(path, s->path, n - 4);
    strcpy(path + n - 4, suffix);
    return 0;
}

/* Read one index file whole into a scratch buffer (through the I/O engine,
 * as recovery reads everything).  *len receives its length. */
static int read_index(ks_segment *s, const char *dir, const char *suffix, uint8_t **out, size_t *len)
{
    char name[KS_NAME_MAX], path[4096];
    ks_segment_name(name, sizeof name, s->base, suffix);
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return -ENAMETOOLONG;
    int h = kio_file_open(s->io, path, KIO_O_RDONLY, 0);
    if (h < 0)
        return h;
    uint64_t sz = 0;
    int rc = kio_size(s->io, h, &sz);
    if (rc == 0 && sz > KL_IX_HDR_SIZE + (uint64_t)s->ix_max * sizeof(ks_tentry))
        rc = KLOG_ECORRUPT; /* more entries than the segment can need */
    uint8_t *b = NULL;
    if (rc == 0 && !(b = scratch_alloc((size_t)sz)))
        rc = -ENOMEM;
    if (rc == 0) {
        ssize_t got = kio_pread(s->io, h, b, (size_t)sz, 0);
        if (got < 0)
            rc = (int)got;
        else if ((uint64_t)got != sz)
            rc = KLOG_ECORRUPT; /* shrank under us */
    }
    kio_file_close(s->io, h);
    if (rc < 0) {
        scratch_free(b, (size_t)sz);
        return rc;
    }
    *out = b;
    *len = (size_t)sz;
    return 0;
}

KLOG_COLD int ks__seg_load_indexes(ks_segment *s, const char *dir, uint64_t seg_size, uint64_t *proven)
{
    if (proven)
        *proven = 0;
    uint8_t *bo = NULL, *bt = NULL;
    size_t lo = 0, lt = 0;
    kl_ix_hdr ho, ht;
    int rc = read_index(s, dir, ".index", &bo, &lo);
    if (rc == 0)
        rc = read_index(s, dir, ".timeindex", &bt, &lt);
    if (rc == 0 && (check_index(s, bo, lo, KL_IX_MAGIC_OFFSET, seg_size, &ho) < 0 ||
                    check_index(s, bt, lt, KL_IX_MAGIC_TIME, seg_size, &ht) < 0 || !kl_ix_same_state(&ho, &ht)))
        rc = KLOG_ECORRUPT; /* damaged, or the two files describe different states */
    int64_t next = rc == 0 ? ho.next_offset : 0;
    if (rc == 0 && (!oentries_ok(s, (const ks_oentry *)(bo + KL_IX_HDR_SIZE), ho.count, seg_size, next) ||
                    !tentries_ok((const ks_tentry *)(bt + KL_IX_HDR_SIZE), ht.count, seg_size)))
        rc = KLOG_ECORRUPT;
    if (rc == 0 && (next < s->base || (seg_size == 0) != (next == s->base)))
        rc = KLOG_ECORRUPT;
    scratch_free(bo, lo);
    scratch_free(bt, lt);
    if (rc < 0) {
        ks__seg_reset_indexes(s);
        return rc;
    }
    /* The entries stay on disk until a lookup needs them (ix_ensure). */
    pthread_mutex_lock(&s->ix_mu);
    if (s->ixc_in)
        ks__ixc_del(s);
    ix_release(s);
    s->ix_files = true;
    pthread_mutex_unlock(&s->ix_mu);
    atomic_store(&s->size, seg_size);
    atomic_store(&s->next_offset, next);
    s->first_ts = ho.first_ts;
    s->max_ts = ho.max_ts;
    /* The counters that decide the next entries are not stored; a segment
     * whose indexes load is sealed or about to be rescanned, so start them
     * where a rebuild would leave them only approximately: force an entry
     * at the next append. */
    s->since_oidx = s->since_tidx = UINT32_MAX;
    s->ix_bytes = index_bytes(ho.count, ht.count);
    if (proven) /* the two files were written together: the smaller claim */
        *proven = KLOG_MIN(KLOG_MIN((uint64_t)ho.proven, (uint64_t)ht.proven), seg_size);
    return 0;
}

/* Map one index file of s read-only.  Returns 0 with the mapping (NULL for
 * an empty file... which no index file is: the header) or -errno. */
static int map_index(ks_segment *s, const char *suffix, void **map, size_t *len)
{
    char path[4096];
    int rc = ix_path(s, suffix, path, sizeof path);
    if (rc < 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (st.st_size < KL_IX_HDR_SIZE || (uint64_t)st.st_size > KL_IX_HDR_SIZE + (uint64_t)s->ix_max * sizeof(ks_tentry)) {
        close(fd);
        return KLOG_ECORRUPT;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    rc = m == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc < 0)
        return rc;
    *map = m;
    *len = (size_t)st.st_size;
    return 0;
}

/* Load the index files (ix_mu held, state OUT, ix_files): mapped for a
 * sealed segment (and counted in the cache), copied into growable arrays
 * for the active one.  Every check recovery makes is made again: the files
 * may have changed since.  Returns 0 or an error (the state stays OUT). */
static int ix_load_files(ks_segment *s)
{
    uint64_t size = atomic_load(&s->size);
    int64_t next = atomic_load(&s->next_offset);
    void *m[2] = { NULL, NULL };
    size_t len[2] = { 0, 0 };
    kl_ix_hdr ho, ht;
    int rc = map_index(s, ".index", &m[0], &len[0]);
    if (rc == 0)
        rc = map_index(s, ".timeindex", &m[1], &len[1]);
    if (rc == 0 && (check_index(s, m[0], len[0], KL_IX_MAGIC_OFFSET, size, &ho) < 0 ||
                    check_index(s, m[1], len[1], KL_IX_MAGIC_TIME, size, &ht) < 0 ||
                    !kl_ix_same_state(&ho, &ht) || ho.next_offset != next))
        rc = KLOG_ECORRUPT;
    const ks_oentry *oe = rc == 0 ? (const void *)((uint8_t *)m[0] + KL_IX_HDR_SIZE) : NULL;
    const ks_tentry *te = rc == 0 ? (const void *)((uint8_t *)m[1] + KL_IX_HDR_SIZE) : NULL;
    if (rc == 0 && (!oentries_ok(s, oe, ho.count, size, next) || !tentries_ok(te, ht.count, size)))
        rc = KLOG_ECORRUPT;
    if (rc == 0 && !s->sealed) {
        /* the active segment's: into arrays that grow with it */
        uint32_t co = KLOG_MAX(ho.count, 32u), ct = KLOG_MAX(ht.count, 32u);
        void *eo = malloc((size_t)co * sizeof *oe), *et = malloc((size_t)ct * sizeof *te);
        if (!eo || !et) {
            free(eo);
            free(et);
            rc = -ENOMEM;
        } else {
            memcpy(eo, oe, (size_t)ho.count * sizeof *oe);
            memcpy(et, te, (size_t)ht.count * sizeof *te);
            s->oidx = (ks_index){ .e = eo, .cap = co };
            s->tidx = (ks_index){ .e = et, .cap = ct };
            atomic_store(&s->oidx.count, ho.count);
            atomic_store(&s->tidx.count, ht.count);
            s->ix_state = KS_IX_HEAP;
        }
    } else if (rc == 0) {
        s->oidx = (ks_index){ .e = (void *)oe, .cap = ho.count };
        s->tidx = (ks_index){ .e = (void *)te, .cap = ht.count };
        atomic_store(&s->oidx.count, ho.count);
        atomic_store(&s->tidx.count, ht.count);
        s->ix_map[0] = m[0];
        s->ix_map[1] = m[1];
        s->ix_map_len[0] = len[0];
        s->ix_map_len[1] = len[1];
        m[0] = m[1] = NULL; /* kept */
        s->ix_state = KS_IX_MAPPED;
    }
    for (int i = 0; i < 2; i++)
        if (m[i])
            munmap(m[i], len[i]);
    return rc;
}

/* Make the indexes usable (ix_mu held): load them if they are OUT, from
 * the files, or, when those are missing or damaged, by a scan of the
 * segment's batch headers.  A sealed segment's are counted in the cache
 * (which may drop others').  Returns 0, or an error with the state still
 * OUT (a lookup then scans from the segment's start). */
static int ix_ensure(ks_segment *s)
{
    if (KLOG_LIKELY(s->ix_state != KS_IX_OUT)) {
        if (s->ixc_in && !atomic_load_explicit(&s->ixc_hot, memory_order_relaxed))
            atomic_store_explicit(&s->ixc_hot, true, memory_order_relaxed);
        return 0;
    }
    int rc = s->ix_files ? ix_load_files(s) : KLOG_ECORRUPT;
    if (rc < 0) {
        /* A rebuild from the data.  The counters that decide where the next
         * entries go come out as they would after appending these batches,
         * so the active segment goes on as before. */
        int64_t next;
        uint64_t since_o = s->since_oidx, since_t = s->since_tidx;
        int64_t first_ts = s->first_ts, max_ts = s->max_ts;
        rc = index_scan(s, atomic_load(&s->size), s->interval, &next, true);
        if (rc < 0 || s->sealed) {
            /* a sealed segment's counters and bounds are its files' */
            s->since_oidx = since_o;
            s->since_tidx = since_t;
            s->first_ts = first_ts;
            s->max_ts = max_ts;
        }
        if (rc < 0) {
            ix_release(s);
            return rc;
        }
    }
    if (s->sealed)
        ks__ixc_add(s, s->ix_state == KS_IX_MAPPED
                           ? s->ix_map_len[0] + s->ix_map_len[1]
                           : (uint64_t)s->oidx.cap * sizeof(ks_oentry) + (uint64_t)s->tidx.cap * sizeof(ks_tentry));
    return 0;
}

int ks__seg_ix_own(ks_log *log, ks_segment *s)
{
    pthread_mutex_lock(&s->ix_mu);
    int rc = ix_ensure(s);
    if (rc == 0 && s->ix_state == KS_IX_MAPPED) {
        /* growable arrays of its own from now on */
        uint32_t no = atomic_load(&s->oidx.count), nt = atomic_load(&s->tidx.count);
        uint32_t co = KLOG_MAX(no, 32u), ct = KLOG_MAX(nt, 32u);
        void *eo = malloc((size_t)co * sizeof(ks_oentry)), *et = malloc((size_t)ct * sizeof(ks_tentry));
        if (!eo || !et) {
            free(eo);
            free(et);
            rc = -ENOMEM;
        } else {
            memcpy(eo, s->oidx.e, (size_t)no * sizeof(ks_oentry));
            memcpy(et, s->tidx.e, (size_t)nt * sizeof(ks_tentry));
            if (s->ixc_in)
                ks__ixc_del(s);
            ix_release(s);
            s->oidx = (ks_index){ .e = eo, .cap = co };
            s->tidx = (ks_index){ .e = et, .cap = ct };
            atomic_store(&s->oidx.count, no);
            atomic_store(&s->tidx.count, nt);
            s->ix_state = KS_IX_HEAP;
        }
    } else if (rc == 0 && s->ixc_in) {
        ks__ixc_del(s); /* a rebuild, counted while the segment was sealed */
    }
    pthread_mutex_unlock(&s->ix_mu);
    if (rc < 0)
        return rc;
    if (s->ix_files && !log->cfg.read_only) {
        /* Later appends make the files stale: they go before the first. */
        char name[KS_NAME_MAX];
        ks_segment_name(name, sizeof name, s->base, ".index");
        ks__unlink_in(log, name);
        ks_segment_name(name, sizeof name, s->base, ".timeindex");
        ks__unlink_in(log, name);
        ks__disk_add(log, -(int64_t)s->ix_bytes);
        s->ix_bytes = 0;
    }
    s->ix_files = false;
    return 0;
}

int ks__seg_ix_copy(ks_segment *dst, ks_segment *src, uint64_t cut)
{
    /* src is the writer's (append_mu held): its entries do not change */
    uint32_t no = atomic_load(&src->oidx.count), nt = atomic_load(&src->tidx.count);
    const ks_oentry *oe = src->oidx.e;
    const ks_tentry *te = src->tidx.e;
    while (no > 0 && oe[no - 1].pos >= cut)
        no--;
    while (nt > 0 && te[nt - 1].pos >= cut)
        nt--;
    uint32_t co = KLOG_MAX(no, 32u), ct = KLOG_MAX(nt, 32u);
    void *eo = malloc((size_t)co * sizeof *oe), *et = malloc((size_t)ct * sizeof *te);
    if (!eo || !et) {
        free(eo);
        free(et);
        return -ENOMEM;
    }
    memcpy(eo, oe, (size_t)no * sizeof *oe);
    memcpy(et, te, (size_t)nt * sizeof *te);
    pthread_mutex_lock(&dst->ix_mu);
    ix_reset_heap(dst);
    free(dst->oidx.e);
    free(dst->tidx.e);
    dst->oidx = (ks_index){ .e = eo, .cap = co };
    dst->tidx = (ks_index){ .e = et, .cap = ct };
    atomic_store(&dst->oidx.count, no);
    atomic_store(&dst->tidx.count, nt);
    dst->ix_files = false;
    pthread_mutex_unlock(&dst->ix_mu);
    return 0;
}
