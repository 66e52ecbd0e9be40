/*
 * lib/format/wire.c - Kafka's wire form of a record batch (v2: 61-byte
 * big-endian header, CRC-32C) to klog's stored form (65-byte little-endian
 * header, XXH3) and back (format.h).
 *
 * Only the header is converted.  The records section is the same bytes in
 * both: uncompressed records are Kafka v2's own encoding, and a compressed
 * section is stored in Kafka's framing (magic 3), so a batch from a client
 * is stored as sent and a fetch sends the stored bytes after a rebuilt
 * 61-byte header, without decompressing or copying them.  Sections written
 * by klog 0.1 (magic 2) are the exception: a zstd one is served from after
 * its u32 length (still no copy), an lz4 one is re-framed in the codec's
 * scratch.
 *
 * A wire batch is untrusted: its length and counts are checked before
 * anything is read past them, and its CRC before anything is written.
 */
#include "format/internal.h"

/* Kafka's header, big-endian. */
#define KW_OFF_BASE_OFFSET 0
#define KW_OFF_LENGTH 8
#define KW_OFF_LEADER_EPOCH 12
#define KW_OFF_MAGIC 16
#define KW_OFF_ATTRIBUTES 21
#define KW_OFF_LAST_OFFSET_DELTA 23
#define KW_OFF_BASE_TIMESTAMP 27
#define KW_OFF_MAX_TIMESTAMP 35
#define KW_OFF_PRODUCER_ID 43
#define KW_OFF_PRODUCER_EPOCH 51
#define KW_OFF_BASE_SEQUENCE 53
#define KW_OFF_RECORD_COUNT 57

_Static_assert(KF_WIRE_HDR_SIZE + 4 == KF_HDR_SIZE, "klog's header is Kafka's plus 4 checksum bytes");

/* Largest wire batch: it must fit KF_BATCH_MAX once 4 bytes longer. */
#define KW_BATCH_MAX ((size_t)KF_BATCH_MAX - 4)

ssize_t kf_wire_parse(const void *buf, size_t avail, kf_batch_info *out)
{
    const uint8_t *p = buf;
    /* A v0/v1 message set has its magic at the same place: say so rather
     * than calling its (smaller) length corrupt. */
    if (avail > KW_OFF_MAGIC && p[KW_OFF_MAGIC] != KF_WIRE_MAGIC)
        return KLOG_EFORMAT;
    if (avail < KF_LOG_OVERHEAD)
        return 0;
    const int32_t blen = (int32_t)kf__ldbe32(p + KW_OFF_LENGTH);
    if (blen < KF_WIRE_HDR_SIZE - KF_LOG_OVERHEAD)
        return KLOG_ECORRUPT;
    if ((size_t)blen > KW_BATCH_MAX - KF_LOG_OVERHEAD)
        return KLOG_ETOOBIG;
    const size_t total = KF_LOG_OVERHEAD + (size_t)blen;
    if (avail < total)
        return 0;

    kf_batch_info bi;
    bi.base_offset = (int64_t)kf__ldbe64(p + KW_OFF_BASE_OFFSET);
    bi.batch_length = (uint32_t)blen;
    bi.leader_epoch = (int32_t)kf__ldbe32(p + KW_OFF_LEADER_EPOCH);
    bi.magic = p[KW_OFF_MAGIC];
    bi.checksum = kf__ldbe32(p + KF_WIRE_OFF_CRC);
    bi.attributes = kf__ldbe16(p + KW_OFF_ATTRIBUTES);
    bi.last_offset_delta = (int32_t)kf__ldbe32(p + KW_OFF_LAST_OFFSET_DELTA);
    bi.base_timestamp = (int64_t)kf__ldbe64(p + KW_OFF_BASE_TIMESTAMP);
    bi.max_timestamp = (int64_t)kf__ldbe64(p + KW_OFF_MAX_TIMESTAMP);
    bi.producer_id = (int64_t)kf__ldbe64(p + KW_OFF_PRODUCER_ID);
    bi.producer_epoch = (int16_t)kf__ldbe16(p + KW_OFF_PRODUCER_EPOCH);
    bi.base_sequence = (int32_t)kf__ldbe32(p + KW_OFF_BASE_SEQUENCE);
    bi.record_count = (int32_t)kf__ldbe32(p + KW_OFF_RECORD_COUNT);

    /* The checks kf_batch_parse makes of a stored batch. */
    int rc = kf__batch_info_check(&bi, total, KF_WIRE_HDR_SIZE);
    if (rc < 0)
        return rc;
    if (out)
        *out = bi;
    return (ssize_t)total;
}

int kf_wire_to_batch(const void *wire, size_t len, const kf_wire_caps *caps, void *buf, size_t cap,
                     size_t *out_len)
{
    if (!wire || !out_len || (!buf && cap))
        return -EINVAL;
    const uint8_t *w = wire;
    kf_batch_info bi;
    ssize_t n = kf_wire_parse(w, len, &bi);
    if (n < 0)
        return (int)n;
    if (n == 0 || (size_t)n != len)
        return KLOG_ECORRUPT; /* not exactly one batch */
    if (caps && caps->max_batch && len > caps->max_batch)
        return KLOG_ETOOBIG;
    /* The CRC before any field it covers is believed: damage is damage,
     * not an unknown codec. */
    if (kf_crc32c(0, w + KF_WIRE_CRC_START, len - KF_WIRE_CRC_START) != (uint32_t)bi.checksum)
        return KLOG_ECORRUPT;
    const unsigned codec = bi.attributes & KF_ATTR_CODEC_MASK;
    if (codec > KF_CODEC_ZSTD)
        return KLOG_EFORMAT;
    if (caps && caps->producer && (bi.record_count < 1 || bi.last_offset_delta != bi.record_count - 1))
        return KLOG_ECORRUPT;
    const size_t total = len + (KF_HDR_SIZE - KF_WIRE_HDR_SIZE);
    *out_len = total;
    if (cap < total)
        return -ENOBUFS;

    /* Records first (memmove: buf may overlap wire; not at all in place,
     * where a memmove onto itself can cost more than a copy), then the
     * header, from the fields read above. */
    uint8_t *h = buf;
    if (h + KF_HDR_SIZE != w + KF_WIRE_HDR_SIZE)
        memmove(h + KF_HDR_SIZE, w + KF_WIRE_HDR_SIZE, len - KF_WIRE_HDR_SIZE);
    const uint32_t blen = (uint32_t)(total - KF_LOG_OVERHEAD);
    klog__st64(h + KF_OFF_BASE_OFFSET, (uint64_t)bi.base_offset);
    klog__st32(h + KF_OFF_LENGTH, blen);
    klog__st32(h + KF_OFF_LEADER_EPOCH, (uint32_t)bi.leader_epoch);
    h[KF_OFF_MAGIC] = kf__magic_for(codec);
    klog__st16(h + KF_OFF_ATTRIBUTES, bi.attributes);
    klog__st32(h + KF_OFF_LAST_OFFSET_DELTA, (uint32_t)bi.last_offset_delta);
    klog__st64(h + KF_OFF_BASE_TIMESTAMP, (uint64_t)bi.base_timestamp);
    klog__st64(h + KF_OFF_MAX_TIMESTAMP, (uint64_t)bi.max_timestamp);
    klog__st64(h + KF_OFF_PRODUCER_ID, (uint64_t)bi.producer_id);
    klog__st16(h + KF_OFF_PRODUCER_EPOCH, (uint16_t)bi.producer_epoch);
    klog__st32(h + KF_OFF_BASE_SEQUENCE, (uint32_t)bi.base_sequence);
    klog__st32(h + KF_OFF_RECORD_COUNT, (uint32_t)bi.record_count);
    klog__st64(h + KF_OFF_CHECKSUM, kf__batch_sum(h, total));
    return 0;
}

int kf_batch_to_wire(const void *batch, size_t len, unsigned flags, kf_codec *c,
                     uint8_t hdr[KF_WIRE_HDR_SIZE], const uint8_t **recs, size_t *recs_len)
{
    if (!batch || !hdr || !recs || !recs_len || (flags & ~(unsigned)KF_WIRE_VERIFY))
        return -EINVAL;
    const uint8_t *b = batch;
    kf_batch_info bi;
    ssize_t n = kf_batch_parse(b, len, &bi);
    if (n < 0)
        return (int)n;
    if (n == 0 || (size_t)n != len)
        return KLOG_ECORRUPT;
    if ((flags & KF_WIRE_VERIFY) && kf_batch_verify(b, len) != 0)
        return KLOG_ECORRUPT;
    const unsigned codec = bi.attributes & KF_ATTR_CODEC_MASK;
    if (codec > KF_CODEC_ZSTD)
        return KLOG_EFORMAT;
    const uint8_t *sec = b + KF_HDR_SIZE;
    size_t slen = len - KF_HDR_SIZE;
    if (codec != KF_CODEC_NONE && bi.magic == KF_MAGIC) {
        /* klog 0.1's framing */
        if (codec == KF_CODEC_ZSTD) {
            if (slen <= 4)
                return KLOG_ECORRUPT;
            sec += 4; /* the frame declares its own size */
            slen -= 4;
        } else if (codec == KF_CODEC_LZ4) {
            if (!c)
                return -EINVAL;
            int rc = kf__codec_v2_lz4_to_frame(c, b, len, &sec, &slen);
            if (rc < 0)
                return rc;
        } else {
            return KLOG_EFORMAT;
        }
    }
    const size_t total = KF_WIRE_HDR_SIZE + slen;
    if (total > (size_t)INT32_MAX)
        return KLOG_ECORRUPT;
    kf__stbe64(hdr + KW_OFF_BASE_OFFSET, (uint64_t)bi.base_offset);
    kf__stbe32(hdr + KW_OFF_LENGTH, (uint32_t)(total - KF_LOG_OVERHEAD));
    kf__stbe32(hdr + KW_OFF_LEADER_EPOCH, (uint32_t)bi.leader_epoch);
    hdr[KW_OFF_MAGIC] = KF_WIRE_MAGIC;
    kf__stbe16(hdr + KW_OFF_ATTRIBUTES, bi.attributes);
    kf__stbe32(hdr + KW_OFF_LAST_OFFSET_DELTA, (uint32_t)bi.last_offset_delta);
    kf__stbe64(hdr + KW_OFF_BASE_TIMESTAMP, (uint64_t)bi.base_timestamp);
    kf__stbe64(hdr + KW_OFF_MAX_TIMESTAMP, (uint64_t)bi.max_timestamp);
    kf__stbe64(hdr + KW_OFF_PRODUCER_ID, (uint64_t)bi.producer_id);
    kf__stbe16(hdr + KW_OFF_PRODUCER_EPOCH, (uint16_t)bi.producer_epoch);
    kf__stbe32(hdr + KW_OFF_BASE_SEQUENCE, (uint32_t)bi.base_sequence);
    kf__stbe32(hdr + KW_OFF_RECORD_COUNT, (uint32_t)bi.record_count);
    uint32_t crc = kf_crc32c(0, hdr + KF_WIRE_CRC_START, KF_WIRE_HDR_SIZE - KF_WIRE_CRC_START);
    kf__stbe32(hdr + KF_WIRE_OFF_CRC, kf_crc32c(crc, sec, slen));
    *recs = sec;
    *recs_len = slen;
    return 0;
}
