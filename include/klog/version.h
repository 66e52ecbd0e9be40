/*
 * klog/version.h - version macros, the runtime version, and the KLOG_API
 * visibility macro used by every public declaration.
 */
#ifndef KLOG_VERSION_H
#define KLOG_VERSION_H

#define KLOG_VERSION_MAJOR 0
#define KLOG_VERSION_MINOR 2
#define KLOG_VERSION_PATCH 0
#define KLOG_VERSION_NUM \
    (KLOG_VERSION_MAJOR * 10000 + KLOG_VERSION_MINOR * 100 + KLOG_VERSION_PATCH)

#if defined(KLOG_BUILDING) && defined(__GNUC__)
#define KLOG_API __attribute__((visibility("default")))
#else
#define KLOG_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * klog_version - the version of the library actually linked, as
 * KLOG_VERSION_NUM computes it (major*10000 + minor*100 + patch): compare it
 * with KLOG_VERSION_NUM, the headers' version, to catch a program running
 * on another library than the one it was built with.  vstr is an optional
 * out-parameter: pass NULL to get the number only, or the address of a
 * const char * that receives the version as a string ("0.2.0", static:
 * never freed, valid for the life of the process).  Thread-safe, never
 * fails.
 */
KLOG_API int klog_version(const char **vstr);

/*
 * klog_build_info - how the linked library was built, for bug reports and
 * `klog --version`: one static line of "key=value" words separated by
 * spaces, in this order:
 *   version=0.2.0 git=v0.2.0-3-gabc1234 compiler=gcc-12.2.0 buildtype=debugoptimized
 *   uring=yes tls=yes mirror=yes rdkafka=yes
 * (git is "unknown" outside a git checkout; uring: the io_uring backend
 * was built; tls: the tls:// transport (OpenSSL); mirror: libklog-mirror
 * was built beside it; rdkafka: the klog tool's remote mode).  Keys are only
 * ever added at the end.  Thread-safe, never fails, never NULL.
 */
KLOG_API const char *klog_build_info(void);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_VERSION_H */
