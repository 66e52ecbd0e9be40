/*
 * klog/version.h - version macros, the runtime version, and the KLOG_API
 * visibility macro used by every public declaration.
 */
#ifndef KLOG_VERSION_H
#define KLOG_VERSION_H

#define KLOG_VERSION_MAJOR 0
#define KLOG_VERSION_MINOR 1
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
 * KLOG_VERSION_NUM computes it (major*10000 + minor*100 + patch).
 * If vstr is not NULL, *vstr receives the static "MAJOR.MINOR.PATCH"
 * string.  Thread-safe, never fails.
 */
KLOG_API int klog_version(const char **vstr);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_VERSION_H */
