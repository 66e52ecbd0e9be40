/*
 * lib/common/common.h - internal helpers shared by every subsystem.
 *
 * Contract: header-only helpers (byte order, clocks, branch hints) plus the
 * error table in error.c and the growable-array helper in vec.c (the one
 * helper here that allocates).  No state.  Everything here is internal;
 * nothing is exported from the shared library.
 */
#ifndef KLOG_COMMON_H
#define KLOG_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <klog/error.h>

#define KLOG_LIKELY(x)   __builtin_expect(!!(x), 1)
#define KLOG_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define KLOG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KLOG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KLOG_MAX(a, b) ((a) > (b) ? (a) : (b))
/* A function that runs per administrative call (open, close, repair,
 * truncation), never per record, in a file that is otherwise hot:
 * optimized for size and kept apart from the hot code. */
#define KLOG_COLD __attribute__((cold))

/* The pause a spin-wait loop makes between two looks. */
static inline void klog__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Little-endian fixed-width loads and stores on unaligned memory.  The
 * on-disk format is little-endian; on x86-64 these compile to plain moves. */
static inline void klog__st16(void *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void klog__st32(void *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void klog__st64(void *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint16_t klog__ld16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t klog__ld32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t klog__ld64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "klog's on-disk format helpers assume a little-endian host"
#endif

/* Write a one-line message into a caller's error buffer (if any) and
 * return rc: the errbuf convention of klog_open, klog_conf_set, ... */
__attribute__((format(printf, 4, 5))) int klog__errf(char *errbuf, size_t errsize, int rc, const char *fmt, ...);

/*
 * Growable arrays: make room for at least `need` elements of `elem` bytes in
 * the array whose pointer is at arrp (a T ** for an array of T, passed as
 * &arr) and whose capacity, in elements, is *cap.  The capacity doubles
 * (from 8 when the array is empty) until it holds need; it never shrinks.
 * Use it as:
 *     if (n == cap && (rc = klog__vec_reserve(&arr, &cap, n + 1, sizeof *arr)) < 0)
 *         return rc;
 *     arr[n++] = x;
 * Returns 0 (nothing done when *cap >= need), -ENOMEM when the allocation
 * fails or need * elem would not fit an object (overflow), -EINVAL when elem
 * is 0.  On failure *arrp and *cap are untouched: the array is still valid
 * and still the caller's.  On success the array may have moved: pointers into
 * it are stale.  New elements are uninitialised.  Not thread-safe: the
 * caller serialises access to the array.
 */
int klog__vec_reserve(void *arrp, size_t *cap, size_t need, size_t elem);

/* Monotonic clock in nanoseconds (for timeouts and latency figures). */
static inline uint64_t klog__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wall clock in milliseconds since the epoch (record timestamps). */
static inline int64_t klog__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Coarse wall clock in ms: the kernel's last clock tick (1-4 ms old), about
 * five times cheaper than klog__wall_ms.  For timestamps, not timeouts. */
static inline int64_t klog__wall_ms_coarse(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif /* KLOG_COMMON_H */
