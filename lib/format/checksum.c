/*
 * lib/format/checksum.c - the batch checksum: XXH3-64 over a batch from the
 * attributes to the end, seeded with the batch length (klog-format(5)).
 *
 * Every byte produced or consumed goes through this hash once, so its speed
 * is part of the producer's and the consumer's.  Debian's libxxhash is built
 * for baseline x86-64 (SSE2): about 20 GB/s here.  The same function built
 * for AVX2 (checksum_avx2.c, xxhash's own inline code) runs at about 46 GB/s
 * on this machine's CPU, with the same output (XXH3 is defined by its
 * result, not by the vector unit; test/format/checksum.c compares the two).
 * The choice is made per call from the CPU's feature bits (one load, no state
 * of our own), so one binary runs everywhere.
 */
#include "format/internal.h"

#include <xxhash.h>

uint64_t kf__checksum(const void *p, size_t n, uint64_t seed)
{
#if KF_HAVE_XXH3_AVX2
    if (__builtin_cpu_supports("avx2"))
        return kf__checksum_avx2(p, n, seed);
#endif
    return XXH3_64bits_withSeed(p, n, seed);
}
