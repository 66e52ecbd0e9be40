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
#include <unistd.h>

#include "common/common.h"
#include "storage/internal.h"
#include "storage/layout.h"

void ks_segment_name(char *out, size_t cap, int64_t base, const char *suffix)
{
    kl_segment_name(out, cap, base, suffix);
}

static int index_alloc(ks_index *ix, uint32_t cap, size_t esize)
{
    /* calloc of a large block is an untouched anonymous mapping: pages that
     * are never indexed into cost nothing. */
    ix->e = calloc(cap, esize);
    if (!ix->e)
        return -ENOMEM;
    ix->cap = cap;
    atomic_store(&ix->count, 0);
    return 0;
}

int ks__seg_new(ks_segment **out, kio *io, const char *dir, int64_t base,
                size_t map_cap, uint32_t interval, bool create)
{
    ks_segment *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->base = base;
    s->io = io;
    s->h = -1;
    s->map = MAP_FAILED;
    s->first_ts = -1;
    s->max_ts = -1;
    atomic_store(&s->refs, 1);
    atomic_store(&s->next_offset, base);
    char name[KS_NAME_MAX];
    ks_segment_name(name, sizeof name, base, ".log");
    int rc;
    if (snprintf(s->path, sizeof s->path, "%s/%s", dir, name) >= (int)sizeof s->path) {
        rc = -ENAMETOOLONG;
        goto fail;
    }
    s->h = kio_file_open(io, s->path, KIO_O_RDWR | (create ? KIO_O_CREAT | KIO_O_EXCL : 0), 0644);
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
    s->map = mmap(NULL, s->map_cap, PROT_READ, MAP_SHARED, fd, 0);
    rc = s->map == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc < 0)
        goto fail;
    uint32_t step = KLOG_MAX(interval, (uint32_t)KF_HDR_SIZE);
    uint32_t cap = (uint32_t)KLOG_MIN(s->map_cap / step + 2, (size_t)UINT32_MAX);
    if ((rc = index_alloc(&s->oidx, cap, sizeof(ks_oentry))) < 0 ||
        (rc = index_alloc(&s->tidx, cap, sizeof(ks_tentry))) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    ks__seg_unref(s);
    return rc;
}

int ks__seg_phantom(ks_segment **out, kio *io, int64_t base)
{
    ks_segment *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->base = base;
    s->io = io;
    s->h = -1;
    s->map = MAP_FAILED;
    s->first_ts = -1;
    s->max_ts = -1;
    s->sealed = true; /* nothing is appended to it */
    atomic_store(&s->refs, 1);
    atomic_store(&s->next_offset, base);
    *out = s;
    return 0;
}

void ks__seg_ref(ks_segment *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void ks__seg_unref(ks_segment *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (s->map != MAP_FAILED)
        munmap(s->map, s->map_cap);
    if (s->h >= 0)
        kio_file_close(s->io, s->h);
    free(s->oidx.e);
    free(s->tidx.e);
    free(s);
}

void ks__seg_reset_indexes(ks_segment *s)
{
    atomic_store(&s->oidx.count, 0);
    atomic_store(&s->tidx.count, 0);
    s->since_oidx = 0;
    s->since_tidx = 0;
    s->first_ts = -1;
    s->max_ts = -1;
}

void ks__seg_note_batch(ks_segment *s, const kf_batch_info *bi, uint64_t pos,
                        uint64_t len, uint32_t interval)
{
    uint32_t rel = (uint32_t)(bi->base_offset - s->base);
    uint32_t n = atomic_load_explicit(&s->oidx.count, memory_order_relaxed);
    if (s->since_oidx >= interval && n < s->oidx.cap) {
        ((ks_oentry *)s->oidx.e)[n] = (ks_oentry){ rel, (uint32_t)pos };
        atomic_store_explicit(&s->oidx.count, n + 1, memory_order_release);
        s->since_oidx = 0;
    }
    s->since_oidx += len;
    if (s->first_ts < 0)
        s->first_ts = bi->max_timestamp;
    if (bi->max_timestamp > s->max_ts) {
        s->max_ts = bi->max_timestamp;
        n = atomic_load_explicit(&s->tidx.count, memory_order_relaxed);
        if (s->since_tidx >= interval && n < s->tidx.cap) {
            ((ks_tentry *)s->tidx.e)[n] = (ks_tentry){ bi->max_timestamp, rel, (uint32_t)pos };
            atomic_store_explicit(&s->tidx.count, n + 1, memory_order_release);
            s->since_tidx = 0;
        }
    }
    s->since_tidx += len;
}

void ks__seg_truncate_indexes(ks_segment *s, uint64_t pos)
{
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
}

/* The batch holding offset, or the first one after it when offset falls in
 * a gap left by compaction.  Framing only. */
int ks__seg_find(ks_segment *s, int64_t offset, uint64_t *pos_out)
{
    uint64_t size = atomic_load_explicit(&s->size, memory_order_acquire);
    uint32_t n = atomic_load_explicit(&s->oidx.count, memory_order_acquire);
    const ks_oentry *e = s->oidx.e;
    uint64_t pos = 0;
    int64_t rel = offset - s->base;
    /* largest entry with e.rel <= rel */
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((int64_t)e[mid].rel <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t want = s->base;
    if (lo > 0) {
        pos = e[lo - 1].pos;
        want = s->base + e[lo - 1].rel;
    }
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
    uint32_t n = atomic_load_explicit(&s->tidx.count, memory_order_acquire);
    const ks_tentry *e = s->tidx.e;
    /* Last entry whose running max timestamp is still below ts: no record in
     * or before that batch can qualify, so the scan may start there. */
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e[mid].ts < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t pos = lo > 0 ? e[lo - 1].pos : 0;
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

static int write_index(ks_segment *s, const char *dir, const char *suffix, uint32_t magic,
                       const void *entries, uint32_t count, size_t esize)
{
    size_t len = KL_IX_HDR_SIZE + (size_t)count * esize;
    uint8_t *b = malloc(len);
    if (!b)
        return -ENOMEM;
    kl_ix_hdr h = { .magic = magic, .base = s->base, .seg_size = atomic_load(&s->size),
                    .next_offset = atomic_load(&s->next_offset), .first_ts = s->first_ts,
                    .max_ts = s->max_ts, .count = count };
    kl_ix_encode(b, &h, entries);
    char name[KS_NAME_MAX];
    ks_segment_name(name, sizeof name, s->base, suffix);
    int rc = ks_write_atomic(s->io, dir, name, b, len);
    free(b);
    return rc;
}

static uint64_t index_bytes(const ks_segment *s)
{
    return 2 * KL_IX_HDR_SIZE + (uint64_t)atomic_load(&s->oidx.count) * sizeof(ks_oentry) +
           (uint64_t)atomic_load(&s->tidx.count) * sizeof(ks_tentry);
}

int ks__seg_write_indexes(ks_segment *s, const char *dir)
{
    int rc = write_index(s, dir, ".index", KL_IX_MAGIC_OFFSET, s->oidx.e, atomic_load(&s->oidx.count),
                         sizeof(ks_oentry));
    if (rc == 0)
        rc = write_index(s, dir, ".timeindex", KL_IX_MAGIC_TIME, s->tidx.e, atomic_load(&s->tidx.count),
                         sizeof(ks_tentry));
    if (rc == 0)
        s->ix_bytes = index_bytes(s);
    return rc;
}

int ks__seg_index_map(ks_segment *s, uint64_t size, uint32_t interval)
{
    ks__seg_reset_indexes(s);
    int64_t next = s->base;
    for (uint64_t p = 0; p < size;) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(s->map + p, size - p, &bi);
        if (len <= 0 || bi.base_offset < next)
            return KLOG_ECORRUPT;
        ks__seg_note_batch(s, &bi, p, (uint64_t)len, interval);
        next = kf_batch_last_offset(&bi) + 1;
        p += (uint64_t)len;
    }
    atomic_store(&s->size, size);
    atomic_store(&s->next_offset, next);
    return 0;
}

/* Read one index file into ix (which already has cap entries of room). */
static int load_index(ks_segment *s, const char *dir, const char *suffix, uint32_t magic,
                      ks_index *ix, size_t esize, uint64_t seg_size, kl_ix_hdr *hdr_out)
{
    char name[KS_NAME_MAX], path[4096];
    ks_segment_name(name, sizeof name, s->base, suffix);
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return -ENAMETOOLONG;
    size_t cap = KL_IX_HDR_SIZE + (size_t)ix->cap * esize;
    uint8_t *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    ssize_t n = ks_read_small(s->io, path, b, cap);
    int rc = 0;
    if (n < 0) {
        rc = n == -EFBIG ? KLOG_ECORRUPT : (int)n;
        goto out;
    }
    if (kl_ix_decode(b, (size_t)n, magic, hdr_out) != KL_IX_OK || hdr_out->base != s->base ||
        hdr_out->seg_size != seg_size || hdr_out->count > ix->cap) {
        rc = KLOG_ECORRUPT;
        goto out;
    }
    memcpy(ix->e, b + KL_IX_HDR_SIZE, (size_t)hdr_out->count * esize);
    atomic_store(&ix->count, hdr_out->count);
out:
    free(b);
    return rc;
}

int ks__seg_load_indexes(ks_segment *s, const char *dir, uint64_t seg_size)
{
    kl_ix_hdr ho, ht;
    int rc = load_index(s, dir, ".index", KL_IX_MAGIC_OFFSET, &s->oidx, sizeof(ks_oentry), seg_size, &ho);
    if (rc == 0)
        rc = load_index(s, dir, ".timeindex", KL_IX_MAGIC_TIME, &s->tidx, sizeof(ks_tentry), seg_size, &ht);
    if (rc == 0 && !kl_ix_same_state(&ho, &ht))
        rc = KLOG_ECORRUPT; /* the two files describe different states */
    /* Entries must be in range and strictly increasing. */
    const ks_oentry *oe = s->oidx.e;
    int64_t next = rc == 0 ? ho.next_offset : 0;
    for (uint32_t i = 0; rc == 0 && i < atomic_load(&s->oidx.count); i++)
        if (oe[i].pos >= seg_size || s->base + oe[i].rel >= next ||
            (i > 0 && (oe[i].pos <= oe[i - 1].pos || oe[i].rel <= oe[i - 1].rel)))
            rc = KLOG_ECORRUPT;
    const ks_tentry *te = s->tidx.e;
    for (uint32_t i = 0; rc == 0 && i < atomic_load(&s->tidx.count); i++)
        if (te[i].pos >= seg_size || (i > 0 && (te[i].pos <= te[i - 1].pos || te[i].ts <= te[i - 1].ts)))
            rc = KLOG_ECORRUPT;
    if (rc == 0 && (next < s->base || (seg_size == 0) != (next == s->base)))
        rc = KLOG_ECORRUPT;
    if (rc < 0) {
        ks__seg_reset_indexes(s);
        return rc;
    }
    atomic_store(&s->size, seg_size);
    atomic_store(&s->next_offset, next);
    s->first_ts = ho.first_ts;
    s->max_ts = ho.max_ts;
    /* The counters that decide the next entries are not stored; a segment
     * whose indexes load is sealed or about to be rescanned, so start them
     * where a rebuild would leave them only approximately: force an entry
     * at the next append. */
    s->since_oidx = s->since_tidx = UINT32_MAX;
    s->ix_bytes = index_bytes(s);
    return 0;
}
