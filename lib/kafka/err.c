/*
 * lib/kafka/err.c - Kafka's error codes: names, and klog's return codes
 * mapped onto them (design note 3.2's list).
 */
#include <errno.h>

#include "common/common.h"
#include "kafka/kafka.h"

const char *kk_err_name(int code)
{
    switch (code) {
#define KK_ERR_CASE_(c, name) case (c): return #name;
        KK_ERRORS(KK_ERR_CASE_)
#undef KK_ERR_CASE_
    default: return "UNKNOWN_ERROR_CODE";
    }
}

int16_t kk_err_from_klog(int rc, kk_errctx ctx)
{
    if (rc >= 0)
        return KK_ERR_NONE;
    bool group = ctx == KK_CTX_GROUP;
    switch (rc) {
    case KLOG_EOFFSET: return KK_ERR_OFFSET_OUT_OF_RANGE;
    case KLOG_ECORRUPT: return KK_ERR_CORRUPT_MESSAGE;
    case KLOG_EUNKNOWN_TOPIC:
    case KLOG_EUNKNOWN_PARTITION: return KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    case KLOG_ETOOBIG: return KK_ERR_MESSAGE_TOO_LARGE;
    case KLOG_EFORMAT:
        /* A batch klog cannot take: an unknown codec, or magic < 2. */
        return ctx == KK_CTX_PARTITION ? KK_ERR_UNSUPPORTED_COMPRESSION_TYPE
                                       : KK_ERR_UNSUPPORTED_VERSION;
    case KLOG_EFENCED: return group ? KK_ERR_ILLEGAL_GENERATION : KK_ERR_INVALID_PRODUCER_EPOCH;
    case KLOG_EDUPLICATE: return KK_ERR_DUPLICATE_SEQUENCE_NUMBER;
    case KLOG_ESEQUENCE: return KK_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    case KLOG_EUNKNOWN_MEMBER: return KK_ERR_UNKNOWN_MEMBER_ID;
    case KLOG_EREBALANCE: return KK_ERR_REBALANCE_IN_PROGRESS;
    case KLOG_EUNKNOWN_GROUP: return KK_ERR_GROUP_ID_NOT_FOUND;
    case KLOG_ENOTLEADER: return KK_ERR_NOT_LEADER_OR_FOLLOWER;
    case KLOG_ENOTENOUGH: return KK_ERR_NOT_ENOUGH_REPLICAS;
    case KLOG_EBADNAME: return group ? KK_ERR_INVALID_GROUP_ID : KK_ERR_INVALID_TOPIC_EXCEPTION;
    case KLOG_ECONF:
        /* In a group: no protocol in common with the group's (group.h) */
        return group ? KK_ERR_INCONSISTENT_GROUP_PROTOCOL : KK_ERR_INVALID_CONFIG;
    case KLOG_EREADONLY:
    case KLOG_EDISKFULL: return KK_ERR_KAFKA_STORAGE_ERROR;
    case KLOG_ECLOSED:
        /* Shutting down: send the client elsewhere (it refreshes metadata,
         * or looks for the coordinator again). */
        return group ? KK_ERR_NOT_COORDINATOR : KK_ERR_NOT_LEADER_OR_FOLLOWER;
    case KLOG_ESTATE: return group ? KK_ERR_NON_EMPTY_GROUP : KK_ERR_INVALID_REQUEST;
    case -ETIMEDOUT: return KK_ERR_REQUEST_TIMED_OUT;
    case -EEXIST: return ctx == KK_CTX_TOPIC_ADMIN ? KK_ERR_TOPIC_ALREADY_EXISTS : KK_ERR_UNKNOWN_SERVER_ERROR;
    case -EINVAL: return ctx == KK_CTX_TOPIC_ADMIN ? KK_ERR_INVALID_PARTITIONS : KK_ERR_INVALID_REQUEST;
    case -EPERM:
    case -EACCES: return group ? KK_ERR_GROUP_AUTHORIZATION_FAILED : KK_ERR_TOPIC_AUTHORIZATION_FAILED;
    case -EIO:
    case -ENOSPC:
    case -EROFS: return KK_ERR_KAFKA_STORAGE_ERROR;
    default: return KK_ERR_UNKNOWN_SERVER_ERROR;
    }
}
