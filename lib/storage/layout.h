/*
 * lib/storage/layout.h - the byte layouts of the small files klog keeps
 * beside its segments (contract): index files, checkpoints, topics.meta and
 * segment file names.  One definition, used by the library that writes and
 * reads them (segment.c, checkpoint.c, lib/topic's metadata) and by the
 * tools that inspect them (`klog dump`, `klog verify`).
 *
 * Pure functions over caller-owned bytes: no I/O, no locks, no globals; any
 * thread may call any of them.  Only kl_meta_parse allocates.  Depends on
 * lib/common's headers and libxxhash, nothing else in lib/storage, so the
 * klog tool links this file (with lib/format) as the static library
 * klog_layout beside libklog.so.  The prefix is kl_, not ks_: the tool
 * carries these symbols and must carry none of storage proper.  Decoding
 * never trusts a length or a count.  All integers are little-endian.
 *
 *   .index / .timeindex   KL_IX_HDR_SIZE-byte header, then count entries
 *       0 magic u32 ("KOIX" offset index, "KTIX" time index)
 *       4 version u16 (1)            6 entry size u16 (8 or 16)
 *       8 base offset i64           16 segment size u64 (bytes it covers)
 *      24 next offset i64           32 first timestamp i64
 *      40 max timestamp i64         48 count u32        52 proven u32
 *      56 XXH3-64 of bytes 0..55 followed by the entries
 *     proven: the bytes of the segment, from its start, whose batches the
 *     process that wrote the file had proven (built or checked them as
 *     they were appended, scanned or verified them); 0 for none, and in
 *     files of versions before it was defined (the field was written 0,
 *     never read).  Read only where recovery trusts the segment unscanned
 *     (wholly below the recovery point: synced).
 *     offset index entry {u32 rel, u32 pos}; time index entry
 *     {i64 ts, u32 rel, u32 pos}: the batch at file position pos has base
 *     offset base + rel (ts: the largest max_timestamp up to that batch).
 *   recovery.ckpt / cleaner.ckpt   KL_CKPT_SIZE bytes: magic u32 ("KCKP" /
 *     "KCCL"), version u32 (1), two non-negative i64 (recovery point and log
 *     start / gap limit and clean point), XXH3-64 of the 24 bytes before it.
 *   recovery.pos   the same form, "KCPS": the recovery point of a periodic
 *     checkpoint and its byte position in the segment holding it (used only
 *     while recovery.ckpt holds that same recovery point).
 *   leader-epoch-checkpoint   Kafka's text file: "0\n" (version), the
 *     entry count and "\n", then per entry "epoch start_offset\n".
 *   topics.meta   text: "klog-topics 1\n", then per topic "topic NAME N\n"
 *     followed by its overrides as "  key=value\n", then "end H\n" where H
 *     is the XXH3-64, 16 lower-case hex digits, of everything before "end".
 *   segment files   20 decimal digits (the base offset) + suffix
 *     (".log", ".index", ".timeindex", ".log.swap", ".log.cleaned").
 */
#ifndef KLOG_STORAGE_LAYOUT_H
#define KLOG_STORAGE_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- index files ---------------------------------------------------------- */

#define KL_IX_HDR_SIZE 64
#define KL_IX_SUM_OFF 56             /* the checksum field; the sum skips it */
#define KL_IX_MAGIC_OFFSET 0x58494f4bu /* "KOIX": NNNN.index */
#define KL_IX_MAGIC_TIME 0x5849544bu   /* "KTIX": NNNN.timeindex */
#define KL_IX_VERSION 1

/* The entries as they sit in the file (and in memory: lib/storage keeps
 * its indexes in this layout and copies them whole). */
typedef struct kl_oentry { uint32_t rel; uint32_t pos; } kl_oentry;
typedef struct kl_tentry { int64_t ts; uint32_t rel; uint32_t pos; } kl_tentry;

typedef struct kl_ix_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t esize;        /* entry size */
    int64_t base;          /* the segment's base offset */
    uint64_t seg_size;     /* segment bytes the index describes */
    int64_t next_offset;   /* offset after the segment's last batch */
    int64_t first_ts;      /* max_timestamp of its first batch, -1 if empty */
    int64_t max_ts;        /* largest batch max_timestamp, -1 if empty */
    uint32_t count;        /* entries */
    uint32_t proven;       /* bytes [0, proven) proven by the writer (see above) */
    uint64_t checksum;     /* as stored */
} kl_ix_hdr;

/* Entry size for an index magic: 8 (offset), 16 (time), 0 (neither). */
size_t kl_ix_esize(uint32_t magic);

/* Encode an index file into out, which has room for KL_IX_HDR_SIZE +
 * h->count * kl_ix_esize(h->magic) bytes: the header from h (its version,
 * esize and checksum fields are ignored: written as KL_IX_VERSION, the
 * magic's entry size and the computed sum), then the entries copied from
 * `entries`.  Returns the bytes written. */
size_t kl_ix_encode(uint8_t *out, const kl_ix_hdr *h, const void *entries);

/* What is wrong with an index file, first problem found, in this order. */
enum kl_ix_status {
    KL_IX_OK = 0,
    KL_IX_SHORT,        /* shorter than the header; *h is zeroed */
    KL_IX_BAD_MAGIC,    /* not `magic` */
    KL_IX_BAD_VERSION,
    KL_IX_BAD_ESIZE,    /* not the magic's entry size */
    KL_IX_BAD_LENGTH,   /* length != header + count * entry size */
    KL_IX_BAD_CHECKSUM,
};

/* Decode the header of the index file file[0..len) into *h and check it
 * against `magic` (KL_IX_MAGIC_OFFSET or KL_IX_MAGIC_TIME), its length and
 * its checksum.  KL_IX_OK means the file is whole and its entries,
 * h->count of them at file + KL_IX_HDR_SIZE, may be used; whether they fit
 * the segment is the caller's question.  Past KL_IX_SHORT, *h holds the
 * stored fields whatever the status, for a tool to print. */
enum kl_ix_status kl_ix_decode(const uint8_t *file, size_t len, uint32_t magic, kl_ix_hdr *h);

/* True when the headers of a segment's .index and .timeindex describe the
 * same state of it (base, segment size, next offset, timestamps): written
 * together, they must, or one of them is stale or damaged. */
bool kl_ix_same_state(const kl_ix_hdr *a, const kl_ix_hdr *b);

/* Entry i of an index file, decoded into *e (ts 0 for the offset index).
 * The caller checks that KL_IX_HDR_SIZE + (i + 1) * esize <= the file's
 * length. */
void kl_ix_entry(const uint8_t *file, uint32_t magic, size_t i, kl_tentry *e);

/* ---- checkpoints ------------------------------------------------------------- */

#define KL_CKPT_SIZE 32
#define KL_CKPT_VERSION 1u
#define KL_CKPT_MAGIC_RECOVERY 0x504b434bu /* "KCKP": recovery point, log start */
#define KL_CKPT_MAGIC_CLEANER 0x4c43434bu  /* "KCCL": gap limit, clean point */
#define KL_CKPT_MAGIC_POSITION 0x5350434bu /* "KCPS": recovery point, its byte position in its segment */
#define KL_CKPT_RECOVERY_NAME "recovery.ckpt"
#define KL_CKPT_POSITION_NAME "recovery.pos"
#define KL_CKPT_CLEANER_NAME "cleaner.ckpt"

typedef struct kl_ckpt {
    uint32_t magic, version;
    int64_t a, b;          /* the two values, in the order above */
} kl_ckpt;

/* Encode a checkpoint holding a and b into out. */
void kl_ckpt_encode(uint8_t out[KL_CKPT_SIZE], uint32_t magic, int64_t a, int64_t b);

/* Decode buf[0..len).  Returns 0 when it is a whole checkpoint of `magic`
 * (length, magic, version and checksum right, both values >= 0), else
 * KLOG_ECORRUPT.  Either way *c holds the stored fields when len >= 24
 * (zeros otherwise), for a tool to print. */
int kl_ckpt_decode(const void *buf, size_t len, uint32_t magic, kl_ckpt *c);

/* ---- leader-epoch-checkpoint --------------------------------------------------
 * The partition's leader epochs, each with the first offset written in it,
 * in Kafka's file and format (lib/storage/epoch.h keeps the cache; man
 * klog-format(5), "LEADER EPOCH CHECKPOINT", is the byte-level text):
 *
 *     0            version (only 0 exists)
 *     2            number of entries
 *     0 0          "epoch start_offset", one entry a line
 *     3 120
 */

#define KL_EPOCH_NAME "leader-epoch-checkpoint"
#define KL_EPOCH_VERSION 0
/* Most entries a file may hold (one per leader change that wrote data). */
#define KL_EPOCH_MAX_ENTRIES (1u << 20)
/* Largest file accepted: the two head lines, then each entry with room for
 * generous blanks.  A larger file is not one of ours. */
#define KL_EPOCH_FILE_MAX (64 + (size_t)KL_EPOCH_MAX_ENTRIES * 64)

typedef struct kl_epoch_entry {
    int32_t epoch;
    int64_t start_offset; /* first offset written in this epoch */
} kl_epoch_entry;

/*
 * Parse a leader-epoch-checkpoint, buf[0..len), whole: version line, count
 * line, exactly count entry lines of two decimal integers (an optional
 * sign, as Java's parseInt) separated by blanks (space, tab, vertical tab,
 * form feed: Java's \s; trailing blanks are allowed, leading ones are
 * not), each line ending in "\n" or "\r\n", nothing after the last.
 * Epochs must strictly increase and start offsets must not decrease, all
 * >= 0; two entries with the same start offset (older Kafka versions wrote
 * them for an epoch that wrote no data) keep only the later epoch, as
 * Kafka's load does.  An empty buffer (Kafka creates the file empty) is no
 * entries.  The count is checked against KL_EPOCH_MAX_ENTRIES and against
 * what len could hold before any memory is set aside.
 *
 * Returns 0 with *out (malloc'ed, NULL when none; free it) and *n, the
 * entries in order, strictly increasing in both fields; or, with *out NULL
 * and *n 0, and the problem in errbuf (may be NULL) as `line N: ...`:
 *   KLOG_ECORRUPT  malformed (bad number, missing or extra lines, a bad
 *                  count, negative values, order), or len > KL_EPOCH_FILE_MAX
 *   KLOG_EFORMAT   a well-formed version other than 0
 *   -ENOMEM
 */
int kl_epochs_parse(const char *buf, size_t len, kl_epoch_entry **out, size_t *n, char *errbuf, size_t errsize);

/* ---- topics.meta ------------------------------------------------------------- */

#define KL_META_NAME "topics.meta"
#define KL_META_HEAD "klog-topics 1\n"

typedef struct kl_meta_kv {
    const char *key, *value;
} kl_meta_kv;

typedef struct kl_meta_topic {
    const char *name;      /* a token without spaces; the name rules are lib/topic's */
    int partitions;        /* >= 1; the upper bound is lib/topic's */
    const kl_meta_kv *kv;  /* its overrides, in file order */
    size_t nkv;
} kl_meta_topic;

/* A parsed topics.meta: every string points into `text`, owned here. */
typedef struct kl_meta {
    kl_meta_topic *topics; /* in file order */
    size_t ntopics;
    kl_meta_kv *kvs;
    char *text;
} kl_meta;

/* Check the head line and the checksum of buf[0..len).  Returns 0 and
 * *body_len (the bytes the checksum covers, up to and excluding "end"), or
 * KLOG_ECORRUPT. */
int kl_meta_check(const char *buf, size_t len, size_t *body_len);

/* Parse buf[0..len) (need not be NUL-terminated; the bytes after the end
 * line are ignored).  Empty lines are skipped; every other line must be a
 * topic line or, after one, an override line with a non-empty key.  Returns
 * 0 with *m filled (free it with kl_meta_free), KLOG_ECORRUPT with the
 * problem in errbuf (the checksum, a NUL byte, or `bad line "..."`), or -ENOMEM.  On
 * failure *m is empty and kl_meta_free on it is a no-op. */
int kl_meta_parse(const char *buf, size_t len, kl_meta *m, char *errbuf, size_t errsize);

void kl_meta_free(kl_meta *m);

/* Append the end line for buf[0..len) at buf + len.  Returns the length the
 * sealed file needs; when that is >= cap nothing usable was written (as
 * snprintf).  The writer writes KL_META_HEAD, the topic and override lines,
 * then seals. */
size_t kl_meta_seal(char *buf, size_t len, size_t cap);

/* ---- segment file names --------------------------------------------------- */

#define KL_NAME_MAX 64

/* "%020lld" + suffix into out (truncated to cap, as snprintf). */
void kl_segment_name(char *out, size_t cap, int64_t base, const char *suffix);

/* True, with *base, when name is exactly 20 digits (a value that fits
 * int64_t) followed by suffix. */
bool kl_segment_name_parse(const char *name, const char *suffix, int64_t *base);

#endif /* KLOG_STORAGE_LAYOUT_H */
