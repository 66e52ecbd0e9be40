/* lib/common/error.c - klog_strerror and klog_err_name for the whole code space. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <klog/error.h>
#include <klog/testing.h> /* KLOG_TESTING_ECRASHED */

#include "common.h"

struct errdesc { int code; const char *name; const char *msg; };

static const struct errdesc klog_errs[] = {
    { KLOG_ECORRUPT, "KLOG_ECORRUPT", "data failed validation (checksum, framing or index)" },
    { KLOG_EFORMAT, "KLOG_EFORMAT", "unknown or unsupported format version or codec" },
    { KLOG_ETOOBIG, "KLOG_ETOOBIG", "record or batch larger than the configured maximum" },
    { KLOG_EREADONLY, "KLOG_EREADONLY", "read-only: the instance was opened with read.only, or the partition failed an fsync" },
    { KLOG_ELOCKED, "KLOG_ELOCKED", "data directory is locked by another writer" },
    { KLOG_EOFFSET, "KLOG_EOFFSET", "offset out of range" },
    { KLOG_EBADNAME, "KLOG_EBADNAME", "invalid name" },
    { KLOG_ECONF, "KLOG_ECONF", "unknown configuration key or bad value" },
    { KLOG_ECLOSED, "KLOG_ECLOSED", "handle is closed" },
    { KLOG_EQUEUEFULL, "KLOG_EQUEUEFULL", "producer queue is full" },
    { KLOG_EFENCED, "KLOG_EFENCED", "fenced: stale generation or producer epoch" },
    { KLOG_EDUPLICATE, "KLOG_EDUPLICATE", "duplicate batch from an idempotent producer" },
    { KLOG_ESEQUENCE, "KLOG_ESEQUENCE", "out-of-order sequence from an idempotent producer" },
    { KLOG_EUNKNOWN_TOPIC, "KLOG_EUNKNOWN_TOPIC", "unknown topic" },
    { KLOG_EUNKNOWN_PARTITION, "KLOG_EUNKNOWN_PARTITION", "unknown partition" },
    { KLOG_ESTATE, "KLOG_ESTATE", "operation not valid in the current state" },
    { KLOG_EDISKFULL, "KLOG_EDISKFULL", "disk budget exhausted (disk.budget.bytes; see disk.budget.policy)" },
    { KLOG_EUNKNOWN_MEMBER, "KLOG_EUNKNOWN_MEMBER", "not a member of the group (left, or its session expired)" },
    { KLOG_EREBALANCE, "KLOG_EREBALANCE", "the group is rebalancing" },
    { KLOG_EUNKNOWN_GROUP, "KLOG_EUNKNOWN_GROUP", "unknown consumer group" },
    { KLOG_ENOTLEADER, "KLOG_ENOTLEADER", "this node is not the partition's leader" },
    { KLOG_ENOTENOUGH, "KLOG_ENOTENOUGH", "fewer in-sync replicas than min.insync.replicas" },
    /* not in the public band: the testing library's (klog/testing.h), which
     * an instance on its fault backend returns through every call */
    { KLOG_TESTING_ECRASHED, "KLOG_TESTING_ECRASHED", "simulated power cut (klog-testing): the disk is off until reboot" },
};

static const struct errdesc *find(int err)
{
    for (size_t i = 0; i < KLOG_ARRAY_LEN(klog_errs); i++)
        if (klog_errs[i].code == err)
            return &klog_errs[i];
    return NULL;
}

KLOG_API const char *klog_strerror(int err)
{
    if (err >= 0)
        return "success";
    const struct errdesc *d = find(err);
    if (d)
        return d->msg;
    if (err > -4096) {
        /* strerrordesc_np is thread-safe and returns static strings. */
        const char *s = strerrordesc_np(-err);
        if (s)
            return s;
    }
    return "unknown error";
}

KLOG_API const char *klog_err_name(int err)
{
    if (err >= 0)
        return "OK";
    const struct errdesc *d = find(err);
    if (d)
        return d->name;
    if (err > -4096) {
        const char *s = strerrorname_np(-err);
        if (s)
            return s;
    }
    return "KLOG_E?";
}

int klog__errf(char *errbuf, size_t errsize, int rc, const char *fmt, ...)
{
    if (errbuf && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errsize, fmt, ap);
        va_end(ap);
    }
    return rc;
}
