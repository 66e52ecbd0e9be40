/*
 * test/format/helpers.h - shared by the lib/format tests: a fixed PRNG, a
 * batch re-sealer (for corruptions that keep the checksum valid) and a
 * decoder that walks a buffer the way a consumer does and checks that every
 * view it hands out lies inside the records section.
 */
#ifndef KLOG_TEST_FORMAT_HELPERS_H
#define KLOG_TEST_FORMAT_HELPERS_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/common.h"
#include "format/format.h"

/* splitmix64: fixed, seedable, the same on every machine. */
static inline uint64_t t_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void t_fill_random(uint8_t *p, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)t_rand(s);
}

/* The checksum's seed (klog-format(5)): batch_length, and for magic 3 the
 * magic in bits 32-39 as well. */
static inline uint64_t t_seed(const uint8_t *b)
{
    uint64_t blen = klog__ld32(b + KF_OFF_LENGTH);
    return b[KF_OFF_MAGIC] == KF_MAGIC ? blen : blen | (uint64_t)b[KF_OFF_MAGIC] << 32;
}

/* Rewrite batch_length for len bytes and recompute the checksum. */
static inline void t_reseal(uint8_t *b, size_t len)
{
    uint32_t blen = (uint32_t)(len - KF_LOG_OVERHEAD);
    klog__st32(b + KF_OFF_LENGTH, blen);
    klog__st64(b + KF_OFF_CHECKSUM,
               XXH3_64bits_withSeed(b + KF_CHECKSUM_START, len - KF_CHECKSUM_START, t_seed(b)));
}

/* A compressed batch as klog writes it: magic 3 and a records section in
 * Kafka's framing for its codec (the stream's own magic number first:
 * gzip's, snappy-java's, the LZ4 frame's, zstd's); an uncompressed one has
 * magic 2. */
static inline void t_expect_kafka_framing(const uint8_t *b, size_t len)
{
    static const uint8_t gz[] = { 0x1f, 0x8b, 8 }, sn[] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1 },
                         l4[] = { 0x04, 0x22, 0x4d, 0x18 }, zs[] = { 0x28, 0xb5, 0x2f, 0xfd };
    static const struct { const uint8_t *m; size_t n; } magic[] = {
        { NULL, 0 }, { gz, sizeof gz }, { sn, sizeof sn }, { l4, sizeof l4 }, { zs, sizeof zs },
    };
    unsigned codec = klog__ld16(b + KF_OFF_ATTRIBUTES) & KF_ATTR_CODEC_MASK;
    cr_assert_leq(codec, KF_CODEC_ZSTD);
    cr_assert_eq(b[KF_OFF_MAGIC], codec == KF_CODEC_NONE ? KF_MAGIC : KF_MAGIC_V3, "codec %u: magic %u", codec,
                 b[KF_OFF_MAGIC]);
    if (codec == KF_CODEC_NONE)
        return;
    cr_assert_gt(len, KF_HDR_SIZE + magic[codec].n);
    cr_assert(memcmp(b + KF_HDR_SIZE, magic[codec].m, magic[codec].n) == 0, "codec %u: not Kafka's framing", codec);
}

static inline int t_in(const uint8_t *p, size_t n, const uint8_t *lo, size_t len)
{
    return p >= lo && n <= len && (size_t)(p - lo) <= len - n;
}

/*
 * Decode one batch at buf completely: parse, verify, records, iterate every
 * record and walk every header.  Returns the record count, or the first
 * negative code (or 0 from parse as -1000: incomplete).  Any view outside
 * the records section fails the test.
 */
#define T_INCOMPLETE (-1000)
static inline long t_decode_all(const uint8_t *buf, size_t len, kf_codec *c)
{
    kf_batch_info bi;
    ssize_t n = kf_batch_parse(buf, len, &bi);
    if (n == 0)
        return T_INCOMPLETE;
    if (n < 0)
        return n;
    cr_assert_leq((size_t)n, len);
    cr_assert_eq((size_t)n, kf_batch_size(&bi));
    int rc = kf_batch_verify(buf, (size_t)n);
    if (rc < 0)
        return rc;
    const uint8_t *recs;
    size_t rlen;
    if ((rc = kf_batch_records(buf, (size_t)n, c, &recs, &rlen)) < 0)
        return rc;
    kf_iter it;
    kf_record_view r;
    kf_iter_init(&it, &bi, recs, rlen);
    long count = 0;
    while ((rc = kf_iter_next(&it, &r)) == 1) {
        count++;
        cr_assert_leq(count, bi.record_count);
        if (r.key_len >= 0)
            cr_assert(t_in(r.key, (size_t)r.key_len, recs, rlen));
        else
            cr_assert_null(r.key);
        if (r.value_len >= 0)
            cr_assert(t_in(r.value, (size_t)r.value_len, recs, rlen));
        else
            cr_assert_null(r.value);
        cr_assert(t_in(r.headers, r.headers_len, recs, rlen));
        cr_assert_geq(r.offset, bi.base_offset);
        cr_assert_leq(r.offset, kf_batch_last_offset(&bi));
        size_t pos = 0;
        kf_header h;
        uint32_t nh = 0;
        int hr;
        while ((hr = kf_header_next(&r, &pos, &h)) == 1) {
            nh++;
            cr_assert(t_in(h.key, (size_t)h.key_len, r.headers, r.headers_len));
            if (h.value_len >= 0)
                cr_assert(t_in(h.value, (size_t)h.value_len, r.headers, r.headers_len));
        }
        cr_assert_eq(hr, 0, "headers of an accepted record must walk cleanly");
        cr_assert_eq(nh, r.header_count);
    }
    if (rc < 0)
        return rc;
    cr_assert_eq(count, bi.record_count);
    return count;
}

#endif /* KLOG_TEST_FORMAT_HELPERS_H */
