/*
 * lib/format/batch.c - building, parsing, verifying and iterating record
 * batches (layout: format.h and man/klog-format.5).
 *
 * Hot paths: kf_builder_add (the producer, ~10^7 records/s on one thread) and
 * kf_iter_next (the consumer, a few 10^7 records/s).  Neither allocates nor
 * calls through a pointer; varints are inline (internal.h); headers, which
 * most records do not have, are handled out of line.
 *
 * Every decoder here treats its input as hostile: a length is compared with
 * the bytes that remain before anything is read, counts are bounded by what
 * the remaining bytes could hold, and arithmetic on fields read from a batch
 * is done in a type where it cannot overflow (or unsigned, where wrapping is
 * the defined meaning, as for timestamp deltas).
 */

#include "format/internal.h"

/* ---- building ----------------------------------------------------------- */

void kf_builder_init(kf_builder *b, void *buf, size_t cap, size_t max_record)
{
    b->buf = buf;
    b->cap = cap;
    b->max_record = max_record;
    kf_builder_reset(b);
}

void kf_builder_reset(kf_builder *b)
{
    b->len = KF_HDR_SIZE;
    b->count = 0;
    b->base_timestamp = 0;
    b->max_timestamp = 0;
}

/* Validate a record's headers and measure them: *payload grows by their key
 * and value bytes, *bytes receives their encoded size (header count excluded).
 * Out of line: most records have no headers. */
static __attribute__((noinline)) int headers_measure(const kf_record *r, size_t *payload,
                                                     size_t *bytes)
{
    uint32_t hc = r->header_count;
    if (!r->headers)
        return -EINVAL;
    /* Each header takes at least two bytes: a count this large can never fit
     * a batch, and stopping here bounds the loop below. */
    if (hc > (KF_BATCH_MAX - KF_HDR_SIZE) / KF_HEADER_MIN)
        return KLOG_ETOOBIG;
    size_t pl = 0, n = 0;
    for (uint32_t i = 0; i < hc; i++) {
        const kf_header *h = &r->headers[i];
        if (h->key_len < 0 || h->value_len < -1 || (h->key_len > 0 && !h->key) ||
            (h->value_len > 0 && !h->value))
            return -EINVAL;
        size_t k = (size_t)h->key_len, v = kf__pos_len(h->value_len);
        pl += k + v;
        n += kf__usize(kf__zz(h->key_len)) + k + kf__usize(kf__zz(h->value_len)) + v;
    }
    *payload += pl;
    *bytes = n;
    return 0;
}

static __attribute__((noinline)) uint8_t *headers_put(uint8_t *p, const kf_record *r)
{
    for (uint32_t i = 0; i < r->header_count; i++) {
        const kf_header *h = &r->headers[i];
        p = kf__uput(p, kf__zz(h->key_len));
        if (h->key_len > 0) {
            memcpy(p, h->key, (size_t)h->key_len);
            p += h->key_len;
        }
        p = kf__uput(p, kf__zz(h->value_len));
        if (h->value_len > 0) {
            memcpy(p, h->value, (size_t)h->value_len);
            p += h->value_len;
        }
    }
    return p;
}

int kf_builder_add(kf_builder *b, const kf_record *r)
{
    const int32_t kl = r->key_len, vl = r->value_len;
    const uint32_t hc = r->header_count;
    if (KLOG_UNLIKELY(kl < -1 || vl < -1 || (kl > 0 && !r->key) || (vl > 0 && !r->value)))
        return -EINVAL;
    const size_t kn = kf__pos_len(kl), vn = kf__pos_len(vl);
    size_t payload = kn + vn, hbytes = 0;
    if (KLOG_UNLIKELY(hc != 0)) {
        int rc = headers_measure(r, &payload, &hbytes);
        if (rc)
            return rc;
    }
    if (KLOG_UNLIKELY(payload > b->max_record))
        return KLOG_ETOOBIG;

    /* Deltas are taken modulo 2^64 so that any pair of timestamps round-trips
     * (the reader adds the delta back the same way). */
    const int64_t base = b->count ? b->base_timestamp : r->timestamp;
    const uint64_t zts = kf__zz((int64_t)((uint64_t)r->timestamp - (uint64_t)base));
    const uint64_t zod = kf__zz(b->count), zkl = kf__zz(kl), zvl = kf__zz(vl);
    const uint64_t zhc = (uint64_t)hc << 1;
    const size_t body = 1 + kf__usize(zts) + kf__usize(zod) + kf__usize(zkl) + kn +
                        kf__usize(zvl) + vn + kf__usize(zhc) + hbytes;
    const size_t total = kf__usize((uint64_t)body << 1) + body;
    if (KLOG_UNLIKELY(total > KF_BATCH_MAX - KF_HDR_SIZE))
        return KLOG_ETOOBIG;
    const size_t cap = b->cap < KF_BATCH_MAX ? b->cap : KF_BATCH_MAX;
    if (KLOG_UNLIKELY(b->len > cap || total > cap - b->len))
        return -ENOBUFS;

    uint8_t *p = b->buf + b->len;
    p = kf__uput(p, (uint64_t)body << 1);
    *p++ = 0; /* record attributes: unused in v2 */
    p = kf__uput(p, zts);
    p = kf__uput(p, zod);
    p = kf__uput(p, zkl);
    if (kn) {
        memcpy(p, r->key, kn);
        p += kn;
    }
    p = kf__uput(p, zvl);
    if (vn) {
        memcpy(p, r->value, vn);
        p += vn;
    }
    p = kf__uput(p, zhc);
    if (KLOG_UNLIKELY(hc != 0))
        p = headers_put(p, r);

    b->len += total;
    if (b->count == 0)
        b->base_timestamp = b->max_timestamp = r->timestamp;
    else if (r->timestamp > b->max_timestamp)
        b->max_timestamp = r->timestamp;
    b->count++;
    return 0;
}

/* Fill the header of a batch of total bytes at h and seal it with the
 * checksum.  The records section must already be in place. */
static void put_header(uint8_t *h, size_t total, uint16_t attributes, const kf_builder *b,
                       const kf_batch_meta *m)
{
    const uint32_t blen = (uint32_t)(total - KF_LOG_OVERHEAD);
    klog__st64(h + KF_OFF_BASE_OFFSET, 0);
    klog__st32(h + KF_OFF_LENGTH, blen);
    klog__st32(h + KF_OFF_LEADER_EPOCH, 0);
    h[KF_OFF_MAGIC] = kf__magic_for(attributes & KF_ATTR_CODEC_MASK);
    klog__st16(h + KF_OFF_ATTRIBUTES, attributes);
    klog__st32(h + KF_OFF_LAST_OFFSET_DELTA, (uint32_t)(b->count - 1));
    klog__st64(h + KF_OFF_BASE_TIMESTAMP, (uint64_t)b->base_timestamp);
    klog__st64(h + KF_OFF_MAX_TIMESTAMP, (uint64_t)b->max_timestamp);
    klog__st64(h + KF_OFF_PRODUCER_ID, (uint64_t)m->producer_id);
    klog__st16(h + KF_OFF_PRODUCER_EPOCH, (uint16_t)m->producer_epoch);
    klog__st32(h + KF_OFF_BASE_SEQUENCE, (uint32_t)m->base_sequence);
    klog__st32(h + KF_OFF_RECORD_COUNT, (uint32_t)b->count);
    klog__st64(h + KF_OFF_CHECKSUM, kf__batch_sum(h, total));
}

/*
 * Beyond format.h: meta may be NULL (no producer id, epoch or sequence, no
 * codec); -EINVAL also for a compressing codec with c NULL and for a zstd
 * level outside ZSTD_minCLevel()..ZSTD_maxCLevel().  Sealing is idempotent:
 * finishing the same builder again rewrites the same header.
 */
int kf_builder_finish(kf_builder *b, const kf_batch_meta *meta, kf_codec *c,
                      const uint8_t **out, size_t *out_len)
{
    static const kf_batch_meta defaults = { -1, -1, -1, 0, KF_CODEC_NONE, 0 };
    const kf_batch_meta *m = meta ? meta : &defaults;
    if (b->count <= 0 || b->len < KF_HDR_SIZE)
        return -EINVAL;
    uint16_t attributes = (uint16_t)(m->attributes & ~KF_ATTR_CODEC_MASK);
    const uint8_t *src = b->buf + KF_HDR_SIZE;
    const size_t slen = b->len - KF_HDR_SIZE;

    switch (m->codec) {
    case KF_CODEC_NONE:
        break;
    case KF_CODEC_GZIP:
    case KF_CODEC_SNAPPY:
    case KF_CODEC_LZ4:
    case KF_CODEC_ZSTD: {
        if (!c)
            return -EINVAL;
        uint8_t *batch;
        size_t clen;
        int rc = kf__codec_compress(c, m->codec, m->level, src, slen, &batch, &clen);
        if (rc < 0)
            return rc;
        if (clen == 0)
            break; /* did not shrink: store uncompressed, codec bits 0 */
        size_t total = KF_HDR_SIZE + clen;
        put_header(batch, total, (uint16_t)(attributes | m->codec), b, m);
        *out = batch;
        *out_len = total;
        return 0;
    }
    default:
        return KLOG_EFORMAT; /* not a codec */
    }
    put_header(b->buf, b->len, attributes, b, m);
    *out = b->buf;
    *out_len = b->len;
    return 0;
}

void kf_batch_set_base_offset(void *batch, int64_t base_offset)
{
    klog__st64((uint8_t *)batch + KF_OFF_BASE_OFFSET, (uint64_t)base_offset);
}

void kf_batch_set_leader_epoch(void *batch, int32_t epoch)
{
    klog__st32((uint8_t *)batch + KF_OFF_LEADER_EPOCH, (uint32_t)epoch);
}

void kf_batch_set_sequence(void *batch, size_t len, int32_t base_sequence)
{
    uint8_t *h = batch;
    klog__st32(h + KF_OFF_BASE_SEQUENCE, (uint32_t)base_sequence);
    klog__st64(h + KF_OFF_CHECKSUM, kf__batch_sum(h, len));
}

/* ---- parsing and verifying ---------------------------------------------- */

ssize_t kf_batch_parse(const void *buf, size_t avail, kf_batch_info *out)
{
    const uint8_t *p = buf;
    if (avail < KF_LOG_OVERHEAD)
        return 0;
    const uint32_t blen = klog__ld32(p + KF_OFF_LENGTH);
    /* An insane length is corruption even when the bytes it claims are not
     * all there: the storage layer must not wait for 4 GiB that never come. */
    if (blen < KF_HDR_SIZE - KF_LOG_OVERHEAD || blen > KF_BATCH_MAX - KF_LOG_OVERHEAD)
        return KLOG_ECORRUPT;
    const size_t total = KF_LOG_OVERHEAD + (size_t)blen;
    if (avail < total)
        return 0;
    if (p[KF_OFF_MAGIC] != KF_MAGIC && p[KF_OFF_MAGIC] != KF_MAGIC_V3)
        return KLOG_EFORMAT;

    kf_batch_info bi;
    bi.base_offset = (int64_t)klog__ld64(p + KF_OFF_BASE_OFFSET);
    bi.batch_length = blen;
    bi.leader_epoch = (int32_t)klog__ld32(p + KF_OFF_LEADER_EPOCH);
    bi.magic = p[KF_OFF_MAGIC];
    bi.checksum = klog__ld64(p + KF_OFF_CHECKSUM);
    bi.attributes = klog__ld16(p + KF_OFF_ATTRIBUTES);
    bi.last_offset_delta = (int32_t)klog__ld32(p + KF_OFF_LAST_OFFSET_DELTA);
    bi.base_timestamp = (int64_t)klog__ld64(p + KF_OFF_BASE_TIMESTAMP);
    bi.max_timestamp = (int64_t)klog__ld64(p + KF_OFF_MAX_TIMESTAMP);
    bi.producer_id = (int64_t)klog__ld64(p + KF_OFF_PRODUCER_ID);
    bi.producer_epoch = (int16_t)klog__ld16(p + KF_OFF_PRODUCER_EPOCH);
    bi.base_sequence = (int32_t)klog__ld32(p + KF_OFF_BASE_SEQUENCE);
    bi.record_count = (int32_t)klog__ld32(p + KF_OFF_RECORD_COUNT);

    int rc = kf__batch_info_check(&bi, total, KF_HDR_SIZE);
    if (rc < 0)
        return rc;
    if (out)
        *out = bi;
    return (ssize_t)total;
}

int kf_batch_verify(const void *batch, size_t len)
{
    const uint8_t *p = batch;
    if (len < KF_HDR_SIZE || len > KF_BATCH_MAX)
        return KLOG_ECORRUPT;
    const uint32_t blen = klog__ld32(p + KF_OFF_LENGTH);
    if ((size_t)blen != len - KF_LOG_OVERHEAD)
        return KLOG_ECORRUPT;
    return kf__batch_sum(p, len) == klog__ld64(p + KF_OFF_CHECKSUM) ? 0 : KLOG_ECORRUPT;
}

/* ---- iterating ------------------------------------------------------------ */

/* Decode one header from [p, end) into *h.  Returns the byte after it or
 * NULL when malformed. */
static inline const uint8_t *header_get(const uint8_t *p, const uint8_t *end, kf_header *h)
{
    int32_t kl, vl;
    p = kf__get32(p, end, &kl);
    if (KLOG_UNLIKELY(!p || kl < 0 || kl > end - p))
        return NULL;
    h->key = p;
    h->key_len = kl;
    p += kl;
    p = kf__get32(p, end, &vl);
    if (KLOG_UNLIKELY(!p || vl < -1 || vl > end - p))
        return NULL;
    h->value = vl >= 0 ? p : NULL;
    h->value_len = vl;
    return p + kf__pos_len(vl);
}

int kf__headers_check(const uint8_t *p, const uint8_t *end, uint32_t n)
{
    kf_header h;
    for (uint32_t i = 0; i < n; i++)
        if (!(p = header_get(p, end, &h)))
            return KLOG_ECORRUPT;
    return p == end ? 0 : KLOG_ECORRUPT;
}

void kf_iter_init(kf_iter *it, const kf_batch_info *bi, const uint8_t *recs, size_t recs_len)
{
    it->p = recs;
    it->end = recs + recs_len;
    it->bi = bi;
    it->left = bi->record_count > 0 ? bi->record_count : 0;
}

/*
 * Every record, checked field by field (kf__iter_step in iter.h takes the
 * common ones first).  On KLOG_ECORRUPT the iterator does not move: calling
 * again fails again.  Offset deltas are checked to lie within
 * 0..last_offset_delta, not to be dense (Kafka leaves gaps after
 * compaction); klog's builder writes them densely.
 */
KLOG_COLD int kf__iter_step_slow(kf_iter *it, kf_record_view *out)
{
    const uint8_t *p = it->p, *end = it->end;
    if (KLOG_UNLIKELY(it->left <= 0))
        return p == end ? 0 : KLOG_ECORRUPT; /* trailing bytes */
    const kf_batch_info *bi = it->bi;
    int32_t len, od, kl, vl, hc;
    int64_t tsd;

    p = kf__get32(p, end, &len);
    if (KLOG_UNLIKELY(!p || len < KF_RECORD_BODY_MIN || len > end - p))
        return KLOG_ECORRUPT; /* also: fewer records than record_count */
    const uint8_t *rend = p + len;
    p++; /* record attributes */
    if (KLOG_UNLIKELY(!(p = kf__get64(p, rend, &tsd))))
        return KLOG_ECORRUPT;
    p = kf__get32(p, rend, &od);
    if (KLOG_UNLIKELY(!p || od < 0 || od > bi->last_offset_delta))
        return KLOG_ECORRUPT;
    p = kf__get32(p, rend, &kl);
    if (KLOG_UNLIKELY(!p || kl < -1 || kl > rend - p))
        return KLOG_ECORRUPT;
    const uint8_t *key = kl >= 0 ? p : NULL;
    p += kf__pos_len(kl);
    p = kf__get32(p, rend, &vl);
    if (KLOG_UNLIKELY(!p || vl < -1 || vl > rend - p))
        return KLOG_ECORRUPT;
    const uint8_t *value = vl >= 0 ? p : NULL;
    p += kf__pos_len(vl);
    p = kf__get32(p, rend, &hc);
    if (KLOG_UNLIKELY(!p || hc < 0))
        return KLOG_ECORRUPT;
    if (KLOG_LIKELY(hc == 0)) {
        if (KLOG_UNLIKELY(p != rend))
            return KLOG_ECORRUPT;
    } else if (hc > (rend - p) / KF_HEADER_MIN || kf__headers_check(p, rend, (uint32_t)hc) < 0) {
        return KLOG_ECORRUPT;
    }

    out->offset = (int64_t)((uint64_t)bi->base_offset + (uint64_t)od);
    out->timestamp = (bi->attributes & KF_ATTR_LOG_APPEND_TIME)
                         ? bi->max_timestamp
                         : (int64_t)((uint64_t)bi->base_timestamp + (uint64_t)tsd);
    out->key = key;
    out->key_len = kl;
    out->value = value;
    out->value_len = vl;
    out->header_count = (uint32_t)hc;
    out->headers = p;
    out->headers_len = (size_t)(rend - p);
    it->p = rend;
    it->left--;
    return 1;
}

int kf_iter_next(kf_iter *it, kf_record_view *out)
{
    return kf__iter_step(it, out);
}

int kf_header_next(const kf_record_view *r, size_t *pos, kf_header *h)
{
    if (*pos >= r->headers_len)
        return *pos == r->headers_len ? 0 : KLOG_ECORRUPT;
    const uint8_t *p = r->headers + *pos, *end = r->headers + r->headers_len;
    if (!(p = header_get(p, end, h)))
        return KLOG_ECORRUPT;
    *pos = (size_t)(p - r->headers);
    return 1;
}
