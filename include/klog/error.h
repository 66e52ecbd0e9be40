/*
 * klog/error.h - the error code space of klog.
 *
 * Every klog function that can fail returns 0 (or a non-negative count) on
 * success and a negative code on failure.  Codes from -1 to -4095 are negated
 * errno values passed straight through from the system and from io_uring
 * completions (-EIO, -ENOSPC, -EINVAL, ...).  klog's own codes live in the
 * reserved band KLOG_ERR_FIRST .. KLOG_ERR_LAST below; their values are pinned
 * and never reused.  There is no errno and no thread-local "last error":
 * the return value is the whole story.
 *
 * This header is part of the public API.  What is not in include/klog/ is
 * not API.
 */
#ifndef KLOG_ERROR_H
#define KLOG_ERROR_H

#include <errno.h> /* the -errno values klog passes through */

#include <klog/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* klog's own error band (LMDB reserves one the same way). */
#define KLOG_ERR_FIRST     (-30999)
#define KLOG_ERR_LAST      (-30900)

#define KLOG_ECORRUPT      (-30900) /* data failed validation: checksum, framing, index */
#define KLOG_EFORMAT       (-30901) /* unknown or unsupported format version or codec */
#define KLOG_ETOOBIG       (-30902) /* record or batch larger than the configured maximum */
#define KLOG_EREADONLY     (-30903) /* read.only instance, or partition read-only after a failed fsync */
#define KLOG_ELOCKED       (-30904) /* data directory is locked by another writer */
#define KLOG_EOFFSET       (-30905) /* offset out of range */
#define KLOG_EBADNAME      (-30906) /* invalid topic or group name */
#define KLOG_ECONF         (-30907) /* unknown configuration key or bad value */
#define KLOG_ECLOSED       (-30908) /* handle already closed */
#define KLOG_EQUEUEFULL    (-30909) /* producer buffer full */
#define KLOG_EFENCED       (-30910) /* stale generation or producer epoch */
#define KLOG_EDUPLICATE    (-30911) /* idempotent producer: batch already written */
#define KLOG_ESEQUENCE     (-30912) /* idempotent producer: sequence gap */
/*      (-30913)  retired: was KLOG_ECRASHED, test-only; now KLOG_TESTING_ECRASHED in
 *                klog/testing.h, outside this band.  Never reused. */
#define KLOG_EUNKNOWN_TOPIC (-30914) /* no such topic */
#define KLOG_EUNKNOWN_PARTITION (-30915) /* no such partition */
#define KLOG_ESTATE        (-30916) /* call not valid in the handle's current state */
#define KLOG_EDISKFULL     (-30917) /* instance disk budget exhausted (refuse policy, or nothing left to delete) */
#define KLOG_EUNKNOWN_MEMBER (-30918) /* not (or no longer) a member of the group */
#define KLOG_EREBALANCE    (-30919) /* the group is rebalancing: rejoin first */
#define KLOG_EUNKNOWN_GROUP (-30920) /* no such consumer group */
#define KLOG_ENOTLEADER    (-30921) /* this node does not lead the partition (replication) */
#define KLOG_ENOTENOUGH    (-30922) /* fewer in-sync replicas than min.insync.replicas */

/*
 * klog_strerror - a human-readable message for any klog return code
 * (klog's own band and negated errno values).  Never returns NULL; the
 * string is static and must not be freed.  Thread-safe.
 */
KLOG_API const char *klog_strerror(int err);

/*
 * klog_err_name - the symbolic name of a code ("KLOG_ECORRUPT", "ENOSPC").
 * Never returns NULL ("KLOG_E?" for unknown codes).  Thread-safe.
 */
KLOG_API const char *klog_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_ERROR_H */
