/*
 * lib/format/iter.h - the record iterator's step and the zigzag varints it
 * reads, inline, for the loops that decode every record: kf_iter_next
 * (batch.c) and the consumer's poll (lib/consumer), which inlines
 * kf__iter_step so that a record goes from the mapping into a klog_message
 * without a call or a copy through a kf_record_view in memory.
 * The contract is format.h's kf_iter_next: kf__iter_step is that function.
 * Nothing but lib/format and the consumer includes this.
 */
#ifndef KLOG_FORMAT_ITER_H
#define KLOG_FORMAT_ITER_H

#include "common/common.h"
#include "format/format.h"

/* ---- zigzag varints ------------------------------------------------------
 * Kafka's encoding: zigzag (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...), then 7 bits
 * per byte, least significant group first, high bit = "more follows".  A
 * 64-bit value takes at most 10 bytes; the 10th byte may only carry bit 63,
 * so anything longer, or a 10th byte above 1, is malformed.  Non-minimal
 * encodings (0x80 0x00) are accepted, as Kafka accepts them. */

#define KF_VARINT_MAX 10

static inline uint64_t kf__zz(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t kf__unzz(uint64_t u)
{
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* Bytes needed for an unsigned (already zigzagged) value: 1..10. */
static inline size_t kf__usize(uint64_t u)
{
    return (size_t)(((unsigned)(63 - __builtin_clzll(u | 1)) * 9 + 73) / 64);
}

/* Write u; p must have kf__usize(u) bytes.  Returns the byte after it. */
static inline uint8_t *kf__uput(uint8_t *p, uint64_t u)
{
    while (u >= 0x80) {
        *p++ = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    *p++ = (uint8_t)u;
    return p;
}

/* Out of line: varints of three bytes or more, truncation, overlong forms. */
const uint8_t *kf__uget_slow(const uint8_t *p, const uint8_t *end, uint64_t *out);

/* Read an unsigned varint from [p, end).  Returns the byte after it, or NULL
 * when it is truncated or malformed (*out is then unspecified).  One- and
 * two-byte values, the common case for lengths and deltas, stay inline. */
static inline const uint8_t *kf__uget(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    if (KLOG_LIKELY(p < end && p[0] < 0x80)) {
        *out = p[0];
        return p + 1;
    }
    if (KLOG_LIKELY(end - p >= 2 && p[1] < 0x80)) {
        *out = (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
        return p + 2;
    }
    return kf__uget_slow(p, end, out);
}

/* A zigzag varint that must fit an int32 (Kafka "varint", as opposed to
 * "varlong").  Zigzag maps exactly the int32 range onto 0..UINT32_MAX. */
static inline const uint8_t *kf__get32(const uint8_t *p, const uint8_t *end, int32_t *out)
{
    uint64_t u;
    p = kf__uget(p, end, &u);
    if (KLOG_UNLIKELY(!p || u > UINT32_MAX))
        return NULL;
    *out = (int32_t)kf__unzz(u);
    return p;
}

static inline const uint8_t *kf__get64(const uint8_t *p, const uint8_t *end, int64_t *out)
{
    uint64_t u;
    p = kf__uget(p, end, &u);
    if (KLOG_UNLIKELY(!p))
        return NULL;
    *out = kf__unzz(u);
    return p;
}

/* Smallest encoded record body (after its length varint): attributes,
 * timestamp delta, offset delta, key length, value length, header count, one
 * byte each; the smallest record adds a one-byte length. */
#define KF_RECORD_BODY_MIN 6
#define KF_RECORD_MIN (1 + KF_RECORD_BODY_MIN)

/* Smallest encoded header: key length and value length. */
#define KF_HEADER_MIN 2

/* Walk n headers from p; they must end exactly at end (batch.c). */
int kf__headers_check(const uint8_t *p, const uint8_t *end, uint32_t n);

/* kf_iter_next (format.h), every case: out of line (batch.c). */
int kf__iter_step_slow(kf_iter *it, kf_record_view *out);

/* The fast path's varint, one or two bytes, decoded from the two bytes at
 * *pp (both readable); *bad gets a bit when it is longer (the slow path
 * then decides).  Returns the value, zigzag still on.  A branch on the
 * first byte: a field's width rarely changes from record to record. */
static inline __attribute__((always_inline)) uint32_t kf__v2(const uint8_t **pp, uint32_t *bad)
{
    const uint8_t *p = *pp;
    uint32_t b0 = p[0];
    if (KLOG_LIKELY(b0 < 0x80)) {
        *pp = p + 1;
        return b0;
    }
    uint32_t b1 = p[1];
    *bad |= b1 >> 7;
    *pp = p + 2;
    return (b0 & 0x7f) | b1 << 7;
}

static inline int32_t kf__unzz32(uint32_t u)
{
    return (int32_t)((u >> 1) ^ (0u - (u & 1)));
}

/*
 * The common record at p (before end): no headers, every varint one or two
 * bytes, at least 16 bytes left in the section.  Decoded with the same
 * checks as the slow path, a few branches and no bounds check per byte
 * (the 16 bytes hold the fields before the key): returns 1 with *out and
 * *next (the record's end) filled; 0 for anything else, malformed records
 * included: kf__iter_step_slow then decides.  Pure: nothing escapes, so
 * that a caller's loop keeps its cursor and *out in registers.
 */
static inline __attribute__((always_inline)) int kf__rec_fast(const uint8_t *p, const uint8_t *end,
                                                              const kf_batch_info *bi, kf_record_view *out,
                                                              const uint8_t **next)
{
    if (KLOG_UNLIKELY(end - p < 16))
        return 0;
    uint32_t bad = 0;
    const uint8_t *q = p;
    /* length, attributes, timestamp delta, offset delta, key length: at
     * most 9 bytes, inside the 16.  A length or offset delta that is
     * negative (odd zigzag) is the slow path's to reject; a key or value
     * length may be -1 (zigzag 1) */
    const uint32_t zlen = kf__v2(&q, &bad);
    const uint8_t *body = q;
    q++; /* record attributes */
    const int32_t tsd = kf__unzz32(kf__v2(&q, &bad));
    const uint32_t zod = kf__v2(&q, &bad);
    const uint32_t zkl = kf__v2(&q, &bad);
    const uint32_t len = zlen >> 1, od = zod >> 1;
    /* len in KF_RECORD_BODY_MIN..end - body (at least 14 here) */
    bad |= ((zlen | zod) & 1) | (uint32_t)((size_t)len - KF_RECORD_BODY_MIN > (size_t)(end - body) - KF_RECORD_BODY_MIN) |
           (uint32_t)(od > (uint32_t)bi->last_offset_delta);
    const uint8_t *rend = body + len;
    /* a null key (zigzag 1) or a key, then 2 bytes at least: value length, header count */
    const int32_t kl = zkl == 1 ? -1 : (int32_t)(zkl >> 1);
    const size_t kn = zkl >> 1;
    bad |= ((zkl & 1) & (uint32_t)(zkl != 1)) | (uint32_t)(q > rend);
    if (KLOG_UNLIKELY(bad) || KLOG_UNLIKELY(kn + 2 > (size_t)(rend - q)))
        return 0;
    const uint8_t *key = kl >= 0 ? q : NULL;
    q += kn;
    const uint32_t zvl = kf__v2(&q, &bad);
    const int32_t vl = zvl == 1 ? -1 : (int32_t)(zvl >> 1);
    const size_t vn = zvl >> 1;
    /* then the header count, 0, ends the record */
    if (KLOG_UNLIKELY(bad | ((zvl & 1) & (uint32_t)(zvl != 1))) || KLOG_UNLIKELY(vn + 1 != (size_t)(rend - q)) ||
        KLOG_UNLIKELY(q[vn] != 0))
        return 0; /* headers (or a malformed record) */
    const uint8_t *value = vl >= 0 ? q : NULL;
    out->offset = (int64_t)((uint64_t)bi->base_offset + (uint64_t)(int64_t)od);
    out->timestamp = (bi->attributes & KF_ATTR_LOG_APPEND_TIME)
                         ? bi->max_timestamp
                         : (int64_t)((uint64_t)bi->base_timestamp + (uint64_t)(int64_t)tsd);
    out->key = key;
    out->key_len = kl;
    out->value = value;
    out->value_len = vl;
    out->header_count = 0;
    out->headers = rend;
    out->headers_len = 0;
    *next = rend;
    return 1;
}

/* kf_iter_next (format.h): the common record inline, the rest out of line. */
static inline __attribute__((always_inline)) int kf__iter_step(kf_iter *it, kf_record_view *out)
{
    const uint8_t *next;
    if (KLOG_LIKELY(it->left > 0 && kf__rec_fast(it->p, it->end, it->bi, out, &next))) {
        it->p = next;
        it->left--;
        return 1;
    }
    return kf__iter_step_slow(it, out);
}

#endif /* KLOG_FORMAT_ITER_H */
