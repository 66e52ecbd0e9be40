/*
 * lib/format/filter.c - kf_batch_filter: drop records from a batch without
 * renumbering the rest (log compaction's rewrite step).
 *
 * A v2 record stores its offset and timestamp as deltas from the batch's
 * base offset and base timestamp.  Keeping those two header fields, and
 * last_offset_delta, keeps every surviving record's offset and timestamp
 * exactly; the records are therefore copied as the bytes they were, length
 * varint included.  Only record_count, the length and the checksum change.
 */

#include "format/internal.h"

/* Copy the header of src into h with a new length and record count, and
 * seal it (checksum over everything after the checksum field). */
static void refill_header(uint8_t *h, const uint8_t *src, size_t total, uint16_t attributes,
                          int32_t count)
{
    const uint32_t blen = (uint32_t)(total - KF_LOG_OVERHEAD);
    memcpy(h, src, KF_HDR_SIZE);
    klog__st32(h + KF_OFF_LENGTH, blen);
    h[KF_OFF_MAGIC] = kf__magic_for(attributes & KF_ATTR_CODEC_MASK); /* a v2 input comes out v3 */
    klog__st16(h + KF_OFF_ATTRIBUTES, attributes);
    klog__st32(h + KF_OFF_RECORD_COUNT, (uint32_t)count);
    klog__st64(h + KF_OFF_CHECKSUM, kf__batch_sum(h, total));
}

int kf_batch_filter(const void *batch, size_t len, const uint8_t *keep, kf_codec *c,
                    void *buf, size_t cap, const uint8_t **out, size_t *out_len)
{
    if (!batch || !keep || !out || !out_len || (!buf && cap))
        return -EINVAL;
    kf_batch_info bi;
    ssize_t n = kf_batch_parse(batch, len, &bi);
    if (n <= 0 || (size_t)n != len)
        return n < 0 ? (int)n : KLOG_ECORRUPT;
    const enum kf_codec_id codec = (enum kf_codec_id)(bi.attributes & KF_ATTR_CODEC_MASK);
    if (codec != KF_CODEC_NONE && !c)
        return -EINVAL;
    const uint8_t *recs;
    size_t rlen;
    int rc = kf_batch_records(batch, len, c, &recs, &rlen);
    if (rc < 0)
        return rc;
    if (cap < KF_HDR_SIZE + rlen) {
        *out_len = KF_HDR_SIZE + rlen;
        return -ENOBUFS;
    }
    /* Walk the records with the iterator (it validates every one) and copy
     * the kept ones' bytes, from their length varint to their end. */
    uint8_t *dst = (uint8_t *)buf + KF_HDR_SIZE;
    size_t used = 0;
    int32_t kept = 0, i = 0;
    kf_iter it;
    kf_record_view r;
    kf_iter_init(&it, &bi, recs, rlen);
    for (;;) {
        const uint8_t *from = it.p;
        rc = kf_iter_next(&it, &r);
        if (rc <= 0)
            break;
        if (keep[i++]) {
            size_t rl = (size_t)(it.p - from);
            memcpy(dst + used, from, rl);
            used += rl;
            kept++;
        }
    }
    if (rc < 0)
        return rc;
    if (kept == 0)
        return -EINVAL;
    uint16_t attributes = (uint16_t)(bi.attributes & ~KF_ATTR_CODEC_MASK);
    if (codec != KF_CODEC_NONE) {
        uint8_t *cb;
        size_t clen;
        if ((rc = kf__codec_compress(c, codec, 0, dst, used, &cb, &clen)) < 0)
            return rc;
        if (clen > 0) {
            size_t total = KF_HDR_SIZE + clen;
            refill_header(cb, batch, total, (uint16_t)(attributes | codec), kept);
            *out = cb;
            *out_len = total;
            return 0;
        }
        /* no longer shrinks: stored uncompressed, codec bits cleared */
    }
    refill_header(buf, batch, KF_HDR_SIZE + used, attributes, kept);
    *out = buf;
    *out_len = KF_HDR_SIZE + used;
    return 0;
}
