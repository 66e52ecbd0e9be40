/* lib/common/version.c - the runtime version. */
#include <klog/version.h>

#define KLOG_STR2(x) #x
#define KLOG_STR(x) KLOG_STR2(x)

KLOG_API int klog_version(const char **vstr)
{
    if (vstr)
        *vstr = KLOG_STR(KLOG_VERSION_MAJOR) "." KLOG_STR(KLOG_VERSION_MINOR) "." KLOG_STR(KLOG_VERSION_PATCH);
    return KLOG_VERSION_NUM;
}

/* common/klog_build_info.h: generated (lib/common/meson.build). */
#include "common/klog_build_info.h"

KLOG_API const char *klog_build_info(void)
{
    return KLOG_BUILD_INFO;
}
