/*
 * tools/segfile.h - read-only readers of a partition directory's files, for
 * `klog dump` and `klog verify`.
 *
 * These read the files with plain open/pread (never mmap: a file truncated
 * under us must not SIGBUS the tool) and never take a lock, so they work
 * while another process has the data directory open.  Batches are framed,
 * checked and decoded with lib/format (kf_batch_parse, kf_batch_verify,
 * kf_batch_records, kf_iter_next); the index and checkpoint layouts, which
 * lib/storage keeps private, are read here from their documented layout
 * (lib/storage/segment.c and checkpoint.c):
 *
 *   .index / .timeindex   64-byte header, little-endian:
 *       0 magic u32 ("KOIX" / "KTIX")  4 version u16 (1)  6 entry size u16
 *       8 base i64  16 segment size u64  24 next offset i64  32 first ts i64
 *      40 max ts i64  48 count u32  52 interval u32
 *      56 XXH3-64 of bytes 0..55 followed by the entries
 *     then count entries: offset index {u32 rel, u32 pos},
 *     time index {i64 ts, u32 rel, u32 pos}
 *   recovery.ckpt / cleaner.ckpt   32 bytes: magic u32 ("KCKP" / "KCCL"),
 *     version u32 (1), two i64 (recovery point and log start / gap limit
 *     and clean point), XXH3-64 of the 24 bytes before it
 *   topics.meta   text, "klog-topics 1\n", "topic NAME N\n" lines each
 *     followed by "  key=value\n" lines, then "end <XXH3-64 hex>\n" over
 *     everything before "end".
 */
#ifndef KLOG_TOOLS_SEGFILE_H
#define KLOG_TOOLS_SEGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "format/format.h"

/* ---- segment (.log) reader ---------------------------------------------- */

typedef struct segrd {
    int fd;
    uint64_t size;        /* file size when opened: the reader stops there */
    uint8_t *buf;
    size_t cap;
    uint64_t bpos;        /* file position of buf[0] */
    size_t have;          /* bytes in buf */
} segrd;

/* Returns 0 or -errno. */
int segrd_open(segrd *r, const char *path);
/* True when every byte from pos to the end of the file is zero: the zeroed
 * tail klog writes ahead of durable appends, which a crash can leave in the
 * last segment (the next open cuts it). */
bool segrd_zero_tail(segrd *r, uint64_t pos);
void segrd_close(segrd *r);

enum seg_status {
    SEG_OK = 1,         /* a framed batch (checksum not yet checked) */
    SEG_END = 0,        /* pos == size */
    SEG_INCOMPLETE = -1,/* fewer bytes left than a batch: torn or in-progress tail */
    SEG_BADHDR = -2,    /* insane header (*err: KLOG_ECORRUPT or KLOG_EFORMAT) */
    SEG_IOERR = -3,     /* read failed (*err: -errno) */
};

/* The batch at file position pos: *batch (valid until the next call) and
 * its length, with its header in *bi. */
enum seg_status segrd_batch(segrd *r, uint64_t pos, const uint8_t **batch, size_t *len, kf_batch_info *bi,
                            int *err);

/* ---- index files ----------------------------------------------------------- */

#define IX_HDR 64
#define IX_MAGIC_O 0x58494f4bu
#define IX_MAGIC_T 0x5849544bu

typedef struct ix_entry {
    int64_t ts;     /* time index only */
    uint32_t rel;
    uint32_t pos;
} ix_entry;

typedef struct ixfile {
    uint32_t magic;
    uint16_t version, esize;
    int64_t base;
    uint64_t seg_size;
    int64_t next_offset, first_ts, max_ts;
    uint32_t count, interval;
    uint64_t checksum;
    bool checksum_ok;
    bool framing_ok;      /* header readable, file length = 64 + count * esize */
    uint8_t raw_hdr[IX_HDR];
    ix_entry *e;          /* decoded entries (as many as the file holds) */
    size_t n;
    char problem[256];    /* framing problem, when !framing_ok */
} ixfile;

/* Load an index file (time index when `time`).  Returns 0 (see framing_ok
 * and checksum_ok), or -errno when it cannot be read. */
int ix_load(const char *path, bool time, ixfile *ix);
void ix_free(ixfile *ix);

/* ---- checkpoints ------------------------------------------------------------- */

typedef struct ckpt {
    uint32_t magic, version;
    int64_t a, b;         /* recovery point, log start / gap limit, clean point */
    bool ok;              /* size, magic, version and checksum right */
} ckpt;

#define CKPT_MAGIC_RECOVERY 0x504b434bu
#define CKPT_MAGIC_CLEANER 0x4c43434bu

/* Returns 0 (see ok), or -errno. */
int ckpt_load(const char *path, uint32_t magic, ckpt *c);

/* Parse a segment-family file name: 20 digits then suffix. */
bool seg_name(const char *name, const char *suffix, int64_t *base);

#endif /* KLOG_TOOLS_SEGFILE_H */
