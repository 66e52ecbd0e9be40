/*
 * lib/format/internal.h - private to lib/format: inline zigzag varints for the
 * hot paths (kf_builder_add, kf_iter_next) and the codec entry points that
 * batch.c calls in codec.c.  Nothing outside lib/format includes this; the
 * contract is format.h.
 */
#ifndef KLOG_FORMAT_INTERNAL_H
#define KLOG_FORMAT_INTERNAL_H

#include "common/common.h"
#include "format/format.h"
#include "format/iter.h" /* the varints and the record step, inline */

/* ---- checksum (checksum.c) ------------------------------------------------
 * XXH3-64 with a seed, identical to libxxhash's XXH3_64bits_withSeed, on
 * the fastest code path the CPU has. */
#if defined(__x86_64__) && defined(__GNUC__)
#define KF_HAVE_XXH3_AVX2 1
uint64_t kf__checksum_avx2(const void *p, size_t n, uint64_t seed);
#else
#define KF_HAVE_XXH3_AVX2 0
#endif
uint64_t kf__checksum(const void *p, size_t n, uint64_t seed);

/* The checksum's seed: batch_length, and for magic 3 also the magic in bits
 * 32-39, so that the magic (which lies before the checksummed bytes) is
 * covered too: a v2 batch read as v3, or the reverse, fails verification.
 * Magic 2 keeps klog 0.1's seed. */
static inline uint64_t kf__seed(uint8_t magic, uint32_t blen)
{
    return (uint64_t)blen | (magic == KF_MAGIC ? 0 : (uint64_t)magic << 32);
}

/* The checksum of the batch at h (len bytes; its length and magic fields
 * already written). */
static inline uint64_t kf__batch_sum(const uint8_t *h, size_t len)
{
    return kf__checksum(h + KF_CHECKSUM_START, len - KF_CHECKSUM_START,
                        kf__seed(h[KF_OFF_MAGIC], klog__ld32(h + KF_OFF_LENGTH)));
}

/* ---- CRC-32C (crc32c.c) -----------------------------------------------------
 * kf_crc32c (format.h) picks one of these from the CPU's feature bits; both
 * are exposed so that the tests can hold them to each other. */
uint32_t kf__crc32c_sw(uint32_t crc, const void *p, size_t n);
#if defined(__x86_64__) && defined(__GNUC__)
#define KF_HAVE_CRC32C_HW 1
uint32_t kf__crc32c_hw(uint32_t crc, const void *p, size_t n); /* SSE4.2 + PCLMUL */
#else
#define KF_HAVE_CRC32C_HW 0
#endif

/* ---- big-endian fields (Kafka's wire form) -------------------------------- */
static inline uint16_t kf__ldbe16(const void *p) { return __builtin_bswap16(klog__ld16(p)); }
static inline uint32_t kf__ldbe32(const void *p) { return __builtin_bswap32(klog__ld32(p)); }
static inline uint64_t kf__ldbe64(const void *p) { return __builtin_bswap64(klog__ld64(p)); }

/* The header checks every batch passes, stored (hdr = KF_HDR_SIZE) or on the
 * wire (KF_WIRE_HDR_SIZE), total its size with the length prefix: counts
 * and deltas agree, kf_batch_last_offset cannot overflow, and uncompressed
 * every record takes at least KF_RECORD_MIN bytes.  0 or KLOG_ECORRUPT. */
static inline int kf__batch_info_check(const kf_batch_info *bi, size_t total, size_t hdr)
{
    if (bi->record_count < 0 || bi->last_offset_delta < 0 || bi->last_offset_delta < bi->record_count - 1)
        return KLOG_ECORRUPT;
    if (bi->base_offset < 0 || bi->base_offset > INT64_MAX - bi->last_offset_delta)
        return KLOG_ECORRUPT;
    if ((bi->attributes & KF_ATTR_CODEC_MASK) == KF_CODEC_NONE &&
        (size_t)bi->record_count > (total - hdr) / KF_RECORD_MIN)
        return KLOG_ECORRUPT;
    return 0;
}
static inline void kf__stbe16(void *p, uint16_t v) { klog__st16(p, __builtin_bswap16(v)); }
static inline void kf__stbe32(void *p, uint32_t v) { klog__st32(p, __builtin_bswap32(v)); }
static inline void kf__stbe64(void *p, uint64_t v) { klog__st64(p, __builtin_bswap64(v)); }

/* ---- codec (codec.c) ---------------------------------------------------- */

/*
 * Compress src (the records section, slen bytes) with codec id (gzip,
 * snappy, lz4 or zstd) into c's compression scratch, in Kafka's framing for
 * that codec (a v3 section), after KF_HDR_SIZE bytes left free for the
 * batch header.  Output is only accepted if it makes the section smaller
 * (clen < slen); otherwise *clen = 0 and the caller stores the section
 * uncompressed.  On success *batch points at the start of the scratch
 * (where the header goes).  The scratch is valid until the next
 * compression on c.
 * Returns 0, -EINVAL (bad level for zstd or gzip), -ENOMEM.
 */
int kf__codec_compress(kf_codec *c, enum kf_codec_id id, int level, const uint8_t *src,
                       size_t slen, uint8_t **batch, size_t *clen);

/* The magic of a batch whose codec bits are codec (as klog writes it). */
static inline uint8_t kf__magic_for(unsigned codec)
{
    return codec == KF_CODEC_NONE ? KF_MAGIC : KF_MAGIC_V3;
}

/*
 * Re-frame the v2 lz4 section of a verified batch (u32 length + lz4 block)
 * as a Kafka LZ4 frame in c's compression scratch: the block wrapped as it
 * is when it decompresses to at most 4 MiB (a frame's largest block),
 * otherwise decompressed and compressed again.  *out, *out_len: the frame,
 * valid until the next compression on c.  Returns 0, KLOG_ECORRUPT, -ENOMEM.
 */
int kf__codec_v2_lz4_to_frame(kf_codec *c, const uint8_t *batch, size_t len, const uint8_t **out,
                              size_t *out_len);

#endif /* KLOG_FORMAT_INTERNAL_H */
