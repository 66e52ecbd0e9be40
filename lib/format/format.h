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
 *   17  8   checksum           XXH3-64 over bytes 25..end, seed = batch_length
 *                              (magic 3: + magic << 32, so the magic is covered)
 *   25  2   attributes         bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
 *   27  4   last_offset_delta
 *   31  8   base_timestamp     ms
 *   39  8   max_timestamp      ms
 *   47  8   producer_id        -1 when not idempotent
 *   55  2   producer_epoch
 *   57  4   base_sequence
 *   61  4   record_count
 *   65  ... records section: the records, or when the codec bits say so,
 *           the compressed records (below)
 *
 * The magic says how a compressed records section is framed:
 *   3 (KF_MAGIC_V3): exactly the bytes Kafka carries for that codec - a
 *     gzip stream, snappy (snappy-java's framing or raw), an LZ4 frame
 *     (Kafka's: independent blocks) or zstd frames - so that a batch taken
 *     from a Kafka client is stored as sent and served back as stored.
 *     Every compressed batch klog writes is v3.
 *   2 (KF_MAGIC, klog 0.1): u32 uncompressed length, then an lz4 block or
 *     a zstd frame.  Still read; no longer written for compressed batches.
 * An uncompressed section is the same in both; klog writes it with magic 2,
 * so that a log that never used compression stays readable by klog 0.1.
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

#define KF_MAGIC 2      /* uncompressed, or compressed in klog 0.1's framing */
#define KF_MAGIC_V3 3   /* compressed section exactly as Kafka carries it */
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
    KF_CODEC_GZIP = 1,   /* a gzip stream (zlib) */
    KF_CODEC_SNAPPY = 2, /* snappy-java framing on write; that or raw snappy on read */
    KF_CODEC_LZ4 = 3,    /* v3: an LZ4 frame, independent blocks (KIP-57); v2: u32 + lz4 block */
    KF_CODEC_ZSTD = 4,   /* v3: zstd frame(s); v2: u32 + one zstd frame */
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
    int level;               /* zstd: its level (0 = klog's default, 1); gzip: 1..9 (0 =
                              * zlib's default, 6); ignored by lz4 and snappy */
} kf_batch_meta;

/*
 * Seal the batch: compress the records section if meta->codec asks (the
 * result goes to the codec's scratch buffer, in Kafka's framing for the
 * codec, magic KF_MAGIC_V3; if compression does not make the section
 * smaller, the batch is stored uncompressed, magic KF_MAGIC), fill the
 * header (base_offset 0, leader_epoch 0) and the checksum.  *out and
 * *out_len receive the finished batch, which is either b->buf or inside c's
 * scratch (valid until the next call on c), and never longer than b->len.
 * c may be NULL when meta->codec is KF_CODEC_NONE.
 * Returns 0, -EINVAL (empty builder, bad level), KLOG_EFORMAT (codec bits
 * 5-7: not a codec), -ENOMEM.
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
 * last_offset_delta < record_count - 1, ...); KLOG_EFORMAT for a magic
 * other than KF_MAGIC and KF_MAGIC_V3.  Does NOT verify the checksum.  out
 * may be NULL.
 */
ssize_t kf_batch_parse(const void *buf, size_t avail, kf_batch_info *out);

/* Verify the checksum of a whole batch of len bytes (as kf_batch_parse
 * returned).  Returns 0 or KLOG_ECORRUPT. */
int kf_batch_verify(const void *batch, size_t len);

/*
 * The uncompressed records section of a verified batch.  For an uncompressed
 * batch *recs points into batch (zero-copy); otherwise it is decompressed
 * into c's scratch (valid until the next call on c), capped at KF_BATCH_MAX
 * - KF_HDR_SIZE bytes and at any length the section declares (v2's u32, a
 * zstd or LZ4 frame's content size, snappy's lengths): the scratch grows
 * with the output actually produced, never to a size merely claimed.
 * v3 sections are checked as a Kafka broker would check them, so that what
 * passes here is what Kafka's own consumers read: an LZ4 frame must have
 * independent blocks and a correct header checksum, and must end exactly at
 * the end of the section (as must a gzip stream, of one or more members,
 * and zstd frames).  Returns 0, KLOG_ECORRUPT (decompression failed, sizes
 * disagree, too large), KLOG_EFORMAT (codec bits 5-7, or gzip or snappy
 * under magic 2, which klog 0.1 never wrote), -EINVAL (c NULL for a
 * compressed batch), -ENOMEM.
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
 * A compressed batch is compressed again with the same codec (default level),
 * in v3's framing whatever the input's (magic 3 out), unless that no longer
 * shrinks it, when it is stored uncompressed (magic 2).
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

/* ---- Kafka's wire form ----------------------------------------------------
 *
 * On the wire (Kafka's record batch v2, big-endian):
 *   0 base_offset i64 | 8 batch_length i32 | 12 partition_leader_epoch i32 |
 *   16 magic i8 (2) | 17 crc u32 | 21 attributes i16 | 23 last_offset_delta |
 *   27 base_timestamp | 35 max_timestamp | 43 producer_id | 51 producer_epoch |
 *   53 base_sequence | 57 record_count | 61 records
 * crc is CRC-32C (Castagnoli) over bytes 21 to the end.  The records
 * section is the same bytes in both forms (klog stores a v3 compressed
 * section as Kafka sent it), so converting is a header rewrite: 61 bytes in,
 * 65 out, and the other way.  Pure functions over caller-owned memory. */

#define KF_WIRE_HDR_SIZE 61
#define KF_WIRE_MAGIC 2
#define KF_WIRE_OFF_CRC 17
#define KF_WIRE_CRC_START 21

/* CRC-32C as Kafka computes it: kf_crc32c(0, p, n) is the CRC of p[0..n);
 * pass a previous result to go on, kf_crc32c(kf_crc32c(0, a, na), b, nb)
 * being the CRC of a followed by b.  Runs on the SSE4.2 crc32 instruction
 * (three streams, merged with a carry-less multiply) when the CPU has it,
 * else on slicing-by-8 tables; both give the same result. */
uint32_t kf_crc32c(uint32_t crc, const void *p, size_t n);

/*
 * Parse the header of the Kafka wire batch at buf (avail bytes readable):
 * as kf_batch_parse, with Kafka's layout.  Returns the batch's total size,
 * 0 when incomplete, KLOG_ECORRUPT (insane length or counts), KLOG_ETOOBIG
 * (longer than KF_BATCH_MAX - 4: too long to store), KLOG_EFORMAT (magic
 * other than 2: a v0/v1 message set; checked first, from 17 bytes on).  out->checksum is the crc
 * field; the CRC itself is not checked.  out may be NULL.
 */
ssize_t kf_wire_parse(const void *buf, size_t avail, kf_batch_info *out);

/* What a converter accepts from the wire. */
typedef struct kf_wire_caps {
    /* Largest wire batch taken, in bytes (a topic's max.message.bytes, say);
     * 0 = the largest that fits KF_BATCH_MAX once converted. */
    size_t max_batch;
    /* Nonzero for a producer's batch (Produce): at least one record and
     * last_offset_delta == record_count - 1, as a Kafka broker requires. */
    int producer;
} kf_wire_caps;

/*
 * Kafka wire batch (exactly len bytes: one batch) -> klog stored batch in
 * buf (cap bytes; len + 4 are needed): the CRC-32C is verified first, then
 * the 65-byte header is written, little-endian, magic 3 for a compressed
 * batch (its section is Kafka's framing) and 2 for an uncompressed one, with
 * its XXH3 checksum; the records section is moved over unchanged.  buf may
 * overlap wire; buf == wire - 4 leaves the records where they are (a
 * request buffer converted in place, over the 4 bytes before the batch).
 * caps may be NULL (no limit but KF_BATCH_MAX, not a producer's batch).
 * The section is not decompressed: kf_batch_records on the result checks
 * it (as a Kafka broker decompresses a produced batch to validate it).
 * Returns 0 with *out_len; KLOG_ECORRUPT (bad CRC, insane header, record
 * count and offsets disagree, len is not one batch); KLOG_EFORMAT (magic
 * other than 2, codec bits 5-7); KLOG_ETOOBIG (over caps->max_batch);
 * -ENOBUFS (cap too small; *out_len says how much is needed); -EINVAL.
 */
int kf_wire_to_batch(const void *wire, size_t len, const kf_wire_caps *caps, void *buf, size_t cap,
                     size_t *out_len);

/* kf_batch_to_wire flags */
#define KF_WIRE_VERIFY 0x1 /* check the stored XXH3 first: a CRC computed over
                            * damaged bytes would pass them off as good */

/*
 * klog stored batch (len bytes, as kf_batch_parse framed it) -> Kafka wire
 * batch, without copying its records: hdr receives the 61-byte big-endian
 * header (magic 2, CRC-32C over hdr[21..61) and the records), and *recs,
 * *recs_len the records section to send after it (writev(hdr, recs)).  For
 * an uncompressed or v3 batch, and a v2 zstd batch (the frame after its
 * u32), *recs points into batch.  A v2 lz4 batch is re-framed as an LZ4
 * frame in c's scratch (its block wrapped as is up to 4 MiB decompressed,
 * recompressed above), *recs valid until the next call on c; c may be NULL
 * otherwise.  Returns 0; KLOG_ECORRUPT (framing, or with KF_WIRE_VERIFY the
 * checksum); KLOG_EFORMAT; -EINVAL (c NULL for a v2 lz4 batch); -ENOMEM.
 */
int kf_batch_to_wire(const void *batch, size_t len, unsigned flags, kf_codec *c,
                     uint8_t hdr[KF_WIRE_HDR_SIZE], const uint8_t **recs, size_t *recs_len);

/* ---- varints (exposed for tests and for the index files) ---------------- */
size_t kf_varint_put(uint8_t *p, int64_t v);   /* zigzag; returns bytes (<= 10) */
/* Returns bytes consumed, 0 if malformed or truncated. */
size_t kf_varint_get(const uint8_t *p, const uint8_t *end, int64_t *v);

#endif /* KLOG_FORMAT_H */
