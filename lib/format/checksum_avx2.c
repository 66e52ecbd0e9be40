/*
 * lib/format/checksum_avx2.c - XXH3-64 compiled for AVX2, from xxhash's own
 * header (XXH_INLINE_ALL: the implementation, not ours).  Only called after
 * the CPU was found to have AVX2 (checksum.c).
 *
 * Every function of this file, xxhash's included, is compiled for AVX2:
 * gcc through "#pragma GCC target", which also defines __AVX2__ so that
 * xxhash picks its AVX2 code path by itself; clang ignores that pragma, and
 * takes "#pragma clang attribute" instead, which gives each function
 * __attribute__((target("avx2"))) but defines nothing, so xxhash is told
 * its vector unit (XXH_VECTOR), and given the intrinsics' header (which it
 * includes itself only under __AVX2__) - the result checked below.
 */
#include "format/internal.h"

#if KF_HAVE_XXH3_AVX2

#if defined(__clang__)
#include <immintrin.h> /* xxhash includes it only under __AVX2__; before the push: */
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#define XXH_VECTOR 2 /* XXH_AVX2 */
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>
#if XXH_VECTOR != XXH_AVX2
#error "xxhash did not select its AVX2 code path"
#endif

uint64_t kf__checksum_avx2(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif
