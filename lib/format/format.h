/*
 * lib/format/format.h - the record batch format (contract).
 *
 * A batch carries Kafka record batch v2's field set; fixed header fields are
 * little-endian; records are encoded exactly as Kafka v2 encodes them (zigzag
 * varints), so a later Kafka-protocol front end can serve the records
 * section without re-encoding it.  man/klog-format.5 documents every byte.
 *
 *  off size field
 *    0  8   base_offset        first offset in the batch (set at append)
 *    8  4   batch_length       bytes that follow this field (total - 12)
 *   12  4   leader_epoch       (set at append)
 *   16  1   magic              KF_MAGIC
 *   17  8   checksum           XXH3-64, seed = batch_length, over bytes 25..end
 *   25  2   attributes         bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
 *   27  4   last_offset_delta
 *   31  8   base_timestamp     ms
 *   39  8   max_timestamp      ms
 *   47  8   producer_id        -1 when not idempotent
 *   55  2   producer_epoch
 *   57  4   base_sequence
 *   61  4   record_count
 *   65  ... records section; when compressed: u32 uncompressed length, then
 *           the compressed bytes (lz4 block or zstd frame)
 *
 * Base offset and leader epoch are outside the checksum (they are assigned
 * at append, as in Kafka); the storage layer checks offset continuity.
 * Because the checksum is seeded with batch_length and covers everything
 * after it, a torn, cut or zeroed tail never passes as valid.
 *
 * Record (inside the records section, Kafka v2):
 *   length varint | attributes int8 | timestamp_delta varlong |
 *   offset_delta varint | key_len varint (-1 = null) | key |
 *   value_len varint (-1 = null) | value | header_count varint |
 *   header_count x (hkey_len varint | hkey | hvalue_len varint (-1 null) | hvalue)
 *
 * Pure functions over caller-owned memory: no I/O, no locks, no globals.
 * A kf_codec is single-threaded (one per thread or per owner).
 * Decoding never trusts a length: every length and count is checked against
 * the bytes that remain and for overflow; decompressed output is capped.
 */
#ifndef KLOG_FORMAT_H
#define KLOG_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KF_MAGIC 2
#define KF_HDR_SIZE 65
#define KF_LOG_OVERHEAD 12          /* base_offset + batch_length */
#define KF_OFF_BASE_OFFSET 0
#define KF_OFF_LENGTH 8
#define KF_OFF_LEADER_EPOCH 12
#define KF_OFF_MAGIC 16
#define KF_OFF_CHECKSUM 17
#define KF_OFF_ATTRIBUTES 25
#define KF_OFF_LAST_OFFSET_DELTA 27
#define KF_OFF_BASE_TIMESTAMP 31
#define KF_OFF_MAX_TIMESTAMP 39
#define KF_OFF_PRODUCER_ID 47
#define KF_OFF_PRODUCER_EPOCH 55
#define KF_OFF_BASE_SEQUENCE 57
#define KF_OFF_RECORD_COUNT 61
#define KF_CHECKSUM_START 25

/* Hard ceiling on one batch (header included); configurable maxima sit below. */
#define KF_BATCH_MAX (64u * 1024 * 1024)
/* Default maximum record size: key + value + all header keys and values. */
#define KF_RECORD_MAX_DEFAULT (1024u * 1024)

enum kf_codec_id {
    KF_CODEC_NONE = 0,
    KF_CODEC_GZIP = 1,   /* Kafka's number; not supported: KLOG_EFORMAT */
    KF_CODEC_SNAPPY = 2, /* Kafka's number; not supported: KLOG_EFORMAT */
    KF_CODEC_LZ4 = 3,
    KF_CODEC_ZSTD = 4,
};

#define KF_ATTR_CODEC_MASK 0x07
#define KF_ATTR_LOG_APPEND_TIME 0x08
#define KF_ATTR_TRANSACTIONAL 0x10
#define KF_ATTR_CONTROL 0x20

typedef struct kf_header {
    const void *key;
    int32_t key_len;     /* >= 0 (Kafka header keys are never null) */
    const void *value;
    int32_t value_len;   /* -1 = null */
} kf_header;

/* A record to encode. */
typedef struct kf_record {
    const void *key;
    int32_t key_len;     /* -1 = null key */
    const void *value;
    int32_t value_len;   /* -1 = null value (a tombstone) */
    int64_t timestamp;   /* ms since the epoch */
    const kf_header *headers;
    uint32_t header_count;
} kf_record;

/* Header fields of a batch, decoded. */
typedef struct kf_batch_info {
    int64_t base_offset;
    uint32_t batch_length;
    int32_t leader_epoch;
    uint8_t magic;
    uint64_t checksum;
    uint16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
} kf_batch_info;

static inline size_t kf_batch_size(const kf_batch_info *bi) { return KF_LOG_OVERHEAD + (size_t)bi->batch_length; }
static inline int64_t kf_batch_last_offset(const kf_batch_info *bi) { return bi->base_offset + bi->last_offset_delta; }

/* ---- codec context ----------------------------------------------------- */

/* Owns compression contexts and a bounded scratch buffer (grown on demand up
 * to KF_BATCH_MAX).  One per thread/owner; not thread-safe. */
typedef struct kf_codec kf_codec;
int kf_codec_new(kf_codec **out);
void kf_codec_free(kf_codec *c); /* NULL-safe */

/* ---- encoding ---------------------------------------------------------- */

/* Inline: the producer calls both on every send. */
static inline size_t kf__pos_len(int32_t n) { return n > 0 ? (size_t)n : 0; }

/* key + value + header keys and values: what max_record_bytes limits. */
static inline size_t kf_record_payload(const kf_record *r)
{
    size_t n = kf__pos_len(r->key_len) + kf__pos_len(r->value_len);
    for (uint32_t i = 0; r->headers && i < r->header_count; i++)
        n += kf__pos_len(r->headers[i].key_len) + kf__pos_len(r->headers[i].value_len);
    return n;
}

/* Bound on the encoded size of one record (its length varint included):
 * length (5) + attributes (1) + timestamp delta (10) + offset delta (5) +
 * key length (5) + value length (5) + header count (5); each header adds two
 * 5-byte lengths.  Exact sizes depend on the batch's base timestamp, which
 * the caller may not know yet, so this is a bound, not the size. */
#define KF_RECORD_FIXED_BOUND 36
#define KF_HEADER_FIXED_BOUND 10
static inline size_t kf_record_size_bound(const kf_record *r)
{
    size_t n = KF_RECORD_FIXED_BOUND + kf__pos_len(r->key_len) + kf__pos_len(r->value_len);
    for (uint32_t i = 0; r->headers && i < r->header_count; i++)
        n += KF_HEADER_FIXED_BOUND + kf__pos_len(r->headers[i].key_len) + kf__pos_len(r->headers[i].value_len);
    return n;
}

/*
 * A builder encodes records, uncompressed, into a caller-owned buffer,
 * leaving KF_HDR_SIZE bytes for the header.  Fields are public so that a
 * producer can inspect count and size; treat them as read-only.
 */
typedef struct kf_builder {
    uint8_t *buf;
    size_t cap;
    size_t len;             /* bytes used, header included */
    size_t max_record;      /* max kf_record_payload of one record */
    int32_t count;
    int64_t base_timestamp;
    int64_t max_timestamp;
} kf_builder;

/* cap must be at least KF_HDR_SIZE. */
void kf_builder_init(kf_builder *b, void *buf, size_t cap, size_t max_record);
void kf_builder_reset(kf_builder *b);
/* Append one record.  Returns 0; KLOG_ETOOBIG if the record's payload is over
 * max_record (or could never fit in KF_BATCH_MAX); -ENOBUFS if it does not
 * fit in the remaining capacity (the builder is unchanged);
 * -EINVAL for bad lengths (negative other than -1, NULL pointer with len > 0). */
int kf_builder_add(kf_builder *b, const kf_record *r);

/* Batch-level fields the builder cannot know. */
typedef struct kf_batch_meta {
    int64_t producer_id;     /* -1 if none */
    int16_t producer_epoch;  /* -1 if none */
    int32_t base_sequence;   /* -1 if none */
    uint16_t attributes;     /* flags other than the codec (e.g. KF_ATTR_CONTROL) */
    enum kf_codec_id codec;
    int level;               /* zstd level (0 = default 3); ignored otherwise */
} kf_batch_meta;

/*
 * Seal the batch: compress the records section if meta->codec asks (the
 * result goes to the codec's scratch buffer; if compression does not make it
 * smaller, the batch is stored uncompressed), fill the header (base_offset 0,
 * leader_epoch 0) and the checksum.  *out and *out_len receive the finished
 * batch, which is either b->buf or inside c's scratch (valid until the next
 * call on c).  c may be NULL when meta->codec is KF_CODEC_NONE.
 * Returns 0, -EINVAL (empty builder), KLOG_EFORMAT (unsupported codec),
 * -ENOMEM.
 */
int kf_builder_finish(kf_builder *b, const kf_batch_meta *meta, kf_codec *c,
                      const uint8_t **out, size_t *out_len);

/* Rewrite base_offset / leader_epoch in place (outside the checksum). */
void kf_batch_set_base_offset(void *batch, int64_t base_offset);
void kf_batch_set_leader_epoch(void *batch, int32_t epoch);
/* Rewrite base_sequence in a finished batch of len bytes and seal it again
 * (the sequence is inside the checksum): a producer that stamped a batch
 * ahead of a failed one gives it the sequence the log now expects. */
void kf_batch_set_sequence(void *batch, size_t len, int32_t base_sequence);

/* ---- decoding ---------------------------------------------------------- */

/*
 * Parse the header of the batch at buf (avail bytes readable).
 * Returns the batch's total size (> 0) when the header is sane and the whole
 * batch is within avail; 0 when avail holds fewer than KF_LOG_OVERHEAD bytes
 * or fewer than the total the length field claims (incomplete: a torn tail or
 * a short read); KLOG_ECORRUPT when the header is insane (length below
 * KF_HDR_SIZE - KF_LOG_OVERHEAD or above KF_BATCH_MAX, negative counts,
 * last_offset_delta < record_count - 1, ...); KLOG_EFORMAT for an unknown
 * magic.  Does NOT verify the checksum.  out may be NULL.
 */
ssize_t kf_batch_parse(const void *buf, size_t avail, kf_batch_info *out);

/* Verify the checksum of a whole batch of len bytes (as kf_batch_parse
 * returned).  Returns 0 or KLOG_ECORRUPT. */
int kf_batch_verify(const void *batch, size_t len);

/*
 * The uncompressed records section of a verified batch.  For an uncompressed
 * batch *recs points into batch (zero-copy); otherwise it is decompressed
 * into c's scratch (valid until the next call on c), capped at KF_BATCH_MAX
 * and at the length the batch declares.  Returns 0, KLOG_ECORRUPT
 * (decompression failed or sizes disagree), KLOG_EFORMAT (unsupported codec),
 * -ENOMEM.
 */
int kf_batch_records(const void *batch, size_t len, kf_codec *c,
                     const uint8_t **recs, size_t *recs_len);

/* A decoded record: views into the records section. */
typedef struct kf_record_view {
    int64_t offset;          /* base_offset + offset_delta */
    int64_t timestamp;       /* base_timestamp + delta (or max_timestamp for LOG_APPEND_TIME) */
    const uint8_t *key;
    int32_t key_len;         /* -1 = null */
    const uint8_t *value;
    int32_t value_len;       /* -1 = null */
    uint32_t header_count;
    const uint8_t *headers;  /* encoded headers; walk them with kf_header_next */
    size_t headers_len;
} kf_record_view;

typedef struct kf_iter {
    const uint8_t *p, *end;
    const kf_batch_info *bi;
    int32_t left;            /* records not yet returned */
} kf_iter;

void kf_iter_init(kf_iter *it, const kf_batch_info *bi, const uint8_t *recs, size_t recs_len);
/* Returns 1 and fills *out, 0 at the end (all record_count records read and
 * no bytes left), KLOG_ECORRUPT on any malformed record, count mismatch,
 * or trailing bytes. */
int kf_iter_next(kf_iter *it, kf_record_view *out);

/*
 * Rewrite a verified batch keeping only the records whose index i (0 ..
 * record_count-1, in batch order) has keep[i] != 0: what log compaction
 * does to a batch.  Every header field stays as it was (base offset, leader
 * epoch, last_offset_delta, base and max timestamp, producer id, epoch and
 * base sequence, attributes) except record_count, the length and the
 * checksum; kept records are copied byte for byte, so their offsets and
 * timestamps are unchanged and dropped records leave gaps in the offsets.
 * A compressed batch is compressed again with the same codec (default level)
 * unless that no longer shrinks it, when it is stored uncompressed.
 * The kept records are assembled in buf (cap bytes); *out is buf, or for a
 * compressed result c's compression scratch (valid until the next call on
 * c).  Returns 0; -ENOBUFS when cap is below KF_HDR_SIZE plus the records
 * section (*out_len then says how much is needed); -EINVAL when no record
 * is kept (drop the batch instead) or on NULL arguments; KLOG_ECORRUPT,
 * KLOG_EFORMAT, -ENOMEM.  c may be NULL for an uncompressed batch.
 */
int kf_batch_filter(const void *batch, size_t len, const uint8_t *keep, kf_codec *c,
                    void *buf, size_t cap, const uint8_t **out, size_t *out_len);

/* Walk the encoded headers of a record: *pos starts at 0.  Returns 1 with
 * *h filled, 0 at the end, KLOG_ECORRUPT on malformed input. */
int kf_header_next(const kf_record_view *r, size_t *pos, kf_header *h);

/* ---- varints (exposed for tests and for the index files) ---------------- */
size_t kf_varint_put(uint8_t *p, int64_t v);   /* zigzag; returns bytes (<= 10) */
/* Returns bytes consumed, 0 if malformed or truncated. */
size_t kf_varint_get(const uint8_t *p, const uint8_t *end, int64_t *v);

#endif /* KLOG_FORMAT_H */
