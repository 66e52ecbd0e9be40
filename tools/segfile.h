/*
 * tools/segfile.h - read-only readers of a partition directory's files, for
 * `klog dump` and `klog verify`.
 *
 * These read the files with plain open/pread (never mmap: a file truncated
 * under us must not SIGBUS the tool) and never take a lock, so they work
 * while another process has the data directory open.  Batches are framed,
 * checked and decoded with lib/format (kf_batch_parse, kf_batch_verify,
 * kf_batch_records, kf_iter_next); the index, checkpoint and topics.meta
 * files with lib/storage/layout.h, the library's own definition of them.
 * Both come from the static library klog_layout; everything else the tool
 * does goes through libklog.so's public API.
 */
#ifndef KLOG_TOOLS_SEGFILE_H
#define KLOG_TOOLS_SEGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "format/format.h"
#include "storage/layout.h"

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

typedef struct ixfile {
    kl_ix_hdr h;          /* as stored (zeros when the file is shorter than a header) */
    enum kl_ix_status status;
    bool checksum_ok;     /* status == KL_IX_OK */
    bool framing_ok;      /* header readable, file length = header + count * esize */
    kl_tentry *e;         /* decoded entries (as many as the file holds; ts 0 in .index) */
    size_t n;
    char problem[256];    /* framing problem, when !framing_ok */
} ixfile;

/* Load an index file (time index when `time`).  Returns 0 (see framing_ok
 * and checksum_ok), or -errno when it cannot be read. */
int ix_load(const char *path, bool time, ixfile *ix);
void ix_free(ixfile *ix);

/* ---- checkpoints ------------------------------------------------------------- */

typedef struct ckpt {
    kl_ckpt v;            /* as stored: recovery point, log start / gap limit, clean point */
    bool ok;              /* size, magic, version and checksum right */
} ckpt;

/* Returns 0 (see ok), or -errno. */
int ckpt_load(const char *path, uint32_t magic, ckpt *c);

/* ---- whole small files (topics.meta) ------------------------------------------ */

/* Read the file whole into *buf (malloc'ed, NUL-terminated) and *len.
 * Returns 0 or -errno. */
int file_load(const char *path, char **buf, size_t *len);

#endif /* KLOG_TOOLS_SEGFILE_H */
