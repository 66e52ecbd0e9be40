/*
 * lib/format/crc32c.c - CRC-32C (Castagnoli, reflected polynomial
 * 0x82f63b78), the checksum of Kafka's record batch v2.
 *
 * A fetch served to a Kafka client computes it over every byte it sends
 * (klog's own batches carry XXH3, not CRC-32C), so its speed bounds the
 * fetch path.  Two implementations with the same result:
 *
 *  - kf__crc32c_hw: the SSE4.2 crc32 instruction.  One crc32 on 8 bytes has a
 *    latency of 3 cycles and a throughput of 1, so one dependent chain runs
 *    at a third of the unit's speed; three chains over three adjacent blocks
 *    keep it busy.  The three partial CRCs are merged by "shifting" the first
 *    two past the blocks that follow them: the CRC state c advanced over L
 *    zero bytes is crc32_u64(0, clmul(c, K(L))) with K(L) the bit-reflected
 *    x^(8L-33) mod P (a carry-less multiply, PCLMULQDQ, then one crc32 to
 *    reduce it), and CRC is linear, so crc(A B) = shift(crc(A), |B|) ^
 *    crc(0-state, B).  The blocks are 256 bytes, then 8 bytes at a time are
 *    left: three adjacent 256-byte blocks are read as one sequential stream
 *    by the prefetcher, and ran at 25 GB/s here from memory (bench_wire),
 *    where three 4 KiB (or 1 KiB) blocks, three streams apart, ran at 12.
 *  - kf__crc32c_sw: slicing-by-8 tables (crc32c_table.h), for CPUs without
 *    SSE4.2 and PCLMUL and for other architectures.
 *
 * kf_crc32c picks one per call from the CPU's feature bits (one load, no
 * state of our own), as checksum.c does for XXH3.  The instruction set is
 * given per function with __attribute__((target)), which gcc and clang
 * both honour (a "#pragma GCC target" is ignored by clang).
 */
#include "format/internal.h"

#include "format/crc32c_table.h"

uint32_t kf__crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    const uint32_t(*t)[256] = kf__crc32c_table;
    crc = ~crc;
    while (n && ((uintptr_t)b & 7)) {
        crc = (crc >> 8) ^ t[0][(crc ^ *b++) & 0xff];
        n--;
    }
    while (n >= 8) {
        uint64_t w = klog__ld64(b) ^ crc; /* little-endian host (common.h) */
        crc = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
              t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
        b += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ t[0][(crc ^ *b++) & 0xff];
    return ~crc;
}

#if KF_HAVE_CRC32C_HW

#include <immintrin.h>

/* The block size of the three-way loop and its shift constants:
 * K(L) = reflect32(x^(8L-33) mod P), for a shift by L and by 2L bytes
 * (test/format/crc32c.c holds this path to the tables on every length to
 * 4 KiB and on long inputs). */
#define KF_CRC_BLOCK 256
#define KF_CRC_K1 0xb9e02b86u /* K(256) */
#define KF_CRC_K2 0xdd7e3b0cu /* K(512) */

/* The CRC states c0 (after block 0) and c1 (after block 1, from state 0)
 * advanced past the blocks after them, merged: shift(c0, 2L) ^ shift(c1, L). */
__attribute__((target("sse4.2,pclmul"))) static inline uint64_t merge2(uint64_t c0, uint64_t k2,
                                                                       uint64_t c1, uint64_t k1)
{
    __m128i a = _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)c0), _mm_cvtsi64_si128((long long)k2), 0);
    __m128i b = _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)c1), _mm_cvtsi64_si128((long long)k1), 0);
    return _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(a, b)));
}

/* CRC state c over 3 * len bytes at b (len a multiple of 8), three chains. */
__attribute__((target("sse4.2,pclmul"))) static inline uint64_t three_way(uint64_t c, const uint8_t *b,
                                                                          size_t len, uint64_t k1,
                                                                          uint64_t k2)
{
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < len; i += 8) {
        c = _mm_crc32_u64(c, klog__ld64(b + i));
        c1 = _mm_crc32_u64(c1, klog__ld64(b + len + i));
        c2 = _mm_crc32_u64(c2, klog__ld64(b + 2 * len + i));
    }
    return merge2(c, k2, c1, k1) ^ c2;
}

__attribute__((target("sse4.2,pclmul"))) uint32_t kf__crc32c_hw(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t c = (uint32_t)~crc;
    while (n && ((uintptr_t)b & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *b++);
        n--;
    }
    while (n >= 3 * KF_CRC_BLOCK) {
        c = three_way(c, b, KF_CRC_BLOCK, KF_CRC_K1, KF_CRC_K2);
        b += 3 * KF_CRC_BLOCK;
        n -= 3 * KF_CRC_BLOCK;
    }
    while (n >= 8) {
        c = _mm_crc32_u64(c, klog__ld64(b));
        b += 8;
        n -= 8;
    }
    while (n--)
        c = _mm_crc32_u8((uint32_t)c, *b++);
    return ~(uint32_t)c;
}

#endif /* KF_HAVE_CRC32C_HW */

uint32_t kf_crc32c(uint32_t crc, const void *p, size_t n)
{
#if KF_HAVE_CRC32C_HW
    if (__builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul"))
        return kf__crc32c_hw(crc, p, n);
#endif
    return kf__crc32c_sw(crc, p, n);
}
