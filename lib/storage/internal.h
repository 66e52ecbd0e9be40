/*
 * lib/storage/internal.h - what the storage files share among themselves.
 * Not a contract for anything outside lib/storage.
 */
#ifndef KLOG_STORAGE_INTERNAL_H
#define KLOG_STORAGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "storage/storage.h"

#define KS_CKPT_NAME "recovery.ckpt"

/* Offset index entry: the batch starting at `pos` has base offset
 * segment base + rel.  Time index entry: the largest batch max_timestamp seen
 * in the segment up to and including the batch with base offset base + rel. */
typedef struct ks_oentry { uint32_t rel; uint32_t pos; } ks_oentry;
typedef struct ks_tentry { int64_t ts; uint32_t rel; uint32_t pos; } ks_tentry;

/*
 * An index is an array that only grows, by one writer (under the log's
 * append lock).  Its storage is allocated once with room for every entry the
 * segment could ever need (cap), so it never moves: readers load `count`
 * with acquire ordering and may read entries below it without a lock.
 * Truncation lowers count (under the append lock) before the bytes it
 * covered are reused.
 */
typedef struct ks_index {
    void *e;              /* ks_oentry[] or ks_tentry[] */
    _Atomic uint32_t count;
    uint32_t cap;
} ks_index;

struct ks_segment {
    int64_t base;                 /* base offset (the file name) */
    kio *io;
    int h;                        /* kio handle while writable, else -1 */
    uint8_t *map;                 /* PROT_READ MAP_SHARED mapping of map_cap bytes */
    size_t map_cap;
    _Atomic uint64_t size;        /* bytes of whole, written batches (readers' limit) */
    _Atomic int64_t next_offset;  /* offset after the last batch in this segment */
    int64_t first_ts;             /* max_timestamp of the first batch, -1 if empty */
    int64_t max_ts;               /* largest batch max_timestamp, -1 if empty */
    uint64_t since_oidx;          /* bytes appended since the last offset-index entry */
    uint64_t since_tidx;
    ks_index oidx, tidx;
    _Atomic int refs;             /* the log's list holds one; each view one */
    int h_users;                  /* group-commit leaders syncing h (append_mu) */
    bool sealed;                  /* no more appends; index files written */
    char path[4096];              /* the .log file */
};

/* checkpoint.c */
int ks__ckpt_write(kio *io, const char *dir, int64_t recovery_point, int64_t log_start);
int ks__ckpt_read(kio *io, const char *dir, int64_t *recovery_point, int64_t *log_start);

/* segment.c */
int ks__seg_new(ks_segment **out, kio *io, const char *dir, int64_t base,
                size_t map_cap, uint32_t interval, bool create);
void ks__seg_ref(ks_segment *s);
void ks__seg_unref(ks_segment *s);
/* Record a batch of len bytes just written at position pos (appending side). */
void ks__seg_note_batch(ks_segment *s, const kf_batch_info *bi, uint64_t pos,
                        uint64_t len, uint32_t interval);
/* Position of the batch holding offset: index lookup then header scan over
 * the mapping.  Returns 0 with *pos, or KLOG_EOFFSET when offset is past the
 * segment's last batch, KLOG_ECORRUPT on bad framing. */
int ks__seg_find(ks_segment *s, int64_t offset, uint64_t *pos);
/* First batch position whose max_timestamp >= ts; *pos = size if none. */
int ks__seg_find_time(ks_segment *s, int64_t ts, uint64_t *pos);
/* Write .index and .timeindex for the segment (atomic), datasync them. */
int ks__seg_write_indexes(ks_segment *s, const char *dir);
/* Load both index files, checking them against the segment (size, base,
 * monotonic, in range, checksum).  Returns 0, or KLOG_ECORRUPT / -ENOENT when
 * they must be rebuilt. */
int ks__seg_load_indexes(ks_segment *s, const char *dir, uint64_t seg_size);
/* Reset indexes and counters to an empty segment. */
void ks__seg_reset_indexes(ks_segment *s);
/* Truncate the in-memory indexes to entries below pos. */
void ks__seg_truncate_indexes(ks_segment *s, uint64_t pos);

#endif /* KLOG_STORAGE_INTERNAL_H */
