/*
 * lib/format/checksum_avx2.c - XXH3-64 compiled for AVX2, from xxhash's own
 * header (XXH_INLINE_ALL: the implementation, not ours).  Only called after
 * the CPU was found to have AVX2 (checksum.c).
 */
#include "format/internal.h"

#if KF_HAVE_XXH3_AVX2

#pragma GCC push_options
#pragma GCC target("avx2")
#define XXH_INLINE_ALL
#include <xxhash.h>
#if XXH_VECTOR != XXH_AVX2
#error "xxhash did not select its AVX2 code path"
#endif

uint64_t kf__checksum_avx2(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}
#pragma GCC pop_options

#endif
