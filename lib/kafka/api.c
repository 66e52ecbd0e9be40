/*
 * lib/kafka/api.c - the API table: every API key klog implements, the
 * versions it implements (which is exactly what ApiVersions advertises),
 * Kafka's first flexible version of each, and the schemas.
 *
 * The ranges are those of the design note (replication-and-wire.md 3.2):
 * what kcat/librdkafka 2.0, kafka-python 2.0, confluent-kafka 1.7 and
 * kafkajs send, all non-flexible except ApiVersions v3.  kafka-python
 * infers the broker's version from this table (Fetch v11 => 2.3), so Fetch
 * must reach 11 and Metadata must keep v0 (its version probe).  Produce
 * starts at v0 although every client klog serves sends v3+: librdkafka 2.0
 * (rd_kafka_msgset_writer_select_MsgVersion) uses gzip, snappy and lz4
 * only with a broker that has Produce v0, and sends those batches
 * uncompressed otherwise; v0-v2 requests carrying a v0/v1 message set are
 * answered UNSUPPORTED_FOR_MESSAGE_FORMAT per partition.  Raising a
 * max into a flexible version needs nothing here but the number: the codec
 * handles compact encodings and tagged fields generically.
 *
 * Replication adds the three requests replicas exchange (lib/replication):
 * LeaderAndIsr (a controller telling a replica its partitions' leader,
 * epoch and in-sync replicas), OffsetForLeaderEpoch (where a leader's log
 * parts from a follower's, KIP-101/279; clients use it too, KIP-320) and
 * AlterPartition v0 (a leader asking the controller to change the ISR;
 * flexible in every version, and peers-only: the server advertises it, and
 * LeaderAndIsr, only on a replicated node); and ElectLeaders, which klog
 * promote sends to the node that is to lead.
 *
 * The ACL APIs stop at v1, what librdkafka 2.0 and kafka-python 2.0's
 * admin clients send: kafka-python takes DescribeAcls v2 for a 2.5 broker,
 * and would then send Produce v8, which klog does not implement.
 */
#include <errno.h>
#include <stdint.h>

#include "common/common.h"
#include "kafka/internal.h"

#define NOFLEX INT16_MAX
#define API_(k, nm, lo, hi, fl, s) \
    { .key = (k), .name = (nm), .min = (lo), .max = (hi), .flex_from = (fl), \
      .req = &kk_##s##_req_schema, .resp = &kk_##s##_resp_schema }

/* In key order. */
static const kk_api apis[] = {
    API_(KK_API_PRODUCE, "Produce", 0, 7, 9, produce),
    API_(KK_API_FETCH, "Fetch", 4, 11, 12, fetch),
    API_(KK_API_LIST_OFFSETS, "ListOffsets", 1, 5, 6, list_offsets),
    API_(KK_API_METADATA, "Metadata", 0, 5, 9, metadata),
    API_(KK_API_LEADER_AND_ISR, "LeaderAndIsr", 0, 2, 5, leader_and_isr),
    API_(KK_API_OFFSET_COMMIT, "OffsetCommit", 2, 7, 8, offset_commit),
    API_(KK_API_OFFSET_FETCH, "OffsetFetch", 1, 5, 6, offset_fetch),
    API_(KK_API_FIND_COORDINATOR, "FindCoordinator", 0, 2, 3, find_coordinator),
    API_(KK_API_JOIN_GROUP, "JoinGroup", 0, 5, 6, join_group),
    API_(KK_API_HEARTBEAT, "Heartbeat", 0, 3, 4, heartbeat),
    API_(KK_API_LEAVE_GROUP, "LeaveGroup", 0, 1, 4, leave_group),
    API_(KK_API_SYNC_GROUP, "SyncGroup", 0, 3, 4, sync_group),
    API_(KK_API_DESCRIBE_GROUPS, "DescribeGroups", 0, 4, 5, describe_groups),
    API_(KK_API_LIST_GROUPS, "ListGroups", 0, 2, 3, list_groups),
    API_(KK_API_SASL_HANDSHAKE, "SaslHandshake", 0, 1, NOFLEX, sasl_handshake),
    API_(KK_API_API_VERSIONS, "ApiVersions", 0, 3, 3, api_versions),
    API_(KK_API_CREATE_TOPICS, "CreateTopics", 0, 4, 5, create_topics),
    API_(KK_API_DELETE_TOPICS, "DeleteTopics", 0, 3, 4, delete_topics),
    API_(KK_API_DELETE_RECORDS, "DeleteRecords", 0, 1, 2, delete_records),
    API_(KK_API_INIT_PRODUCER_ID, "InitProducerId", 0, 1, 2, init_producer_id),
    API_(KK_API_OFFSET_FOR_LEADER_EPOCH, "OffsetForLeaderEpoch", 0, 3, 4, offset_for_leader_epoch),
    API_(KK_API_DESCRIBE_ACLS, "DescribeAcls", 0, 1, 2, describe_acls),
    API_(KK_API_CREATE_ACLS, "CreateAcls", 0, 1, 2, create_acls),
    API_(KK_API_DELETE_ACLS, "DeleteAcls", 0, 1, 2, delete_acls),
    API_(KK_API_DESCRIBE_CONFIGS, "DescribeConfigs", 0, 2, 4, describe_configs),
    API_(KK_API_ALTER_CONFIGS, "AlterConfigs", 0, 1, 2, alter_configs),
    API_(KK_API_SASL_AUTHENTICATE, "SaslAuthenticate", 0, 1, 2, sasl_authenticate),
    API_(KK_API_CREATE_PARTITIONS, "CreatePartitions", 0, 1, 2, create_partitions),
    API_(KK_API_DELETE_GROUPS, "DeleteGroups", 0, 1, 2, delete_groups),
    API_(KK_API_ELECT_LEADERS, "ElectLeaders", 0, 1, 2, elect_leaders),
    API_(KK_API_INCREMENTAL_ALTER_CONFIGS, "IncrementalAlterConfigs", 0, 0, 1, incremental_alter_configs),
    API_(KK_API_ALTER_PARTITION, "AlterPartition", 0, 0, 0, alter_partition),
};

const kk_api *kk_api_find(int16_t key)
{
    for (size_t i = 0; i < KLOG_ARRAY_LEN(apis); i++)
        if (apis[i].key == key)
            return &apis[i];
    return NULL;
}

int kk_api_count(void) { return (int)KLOG_ARRAY_LEN(apis); }

const kk_api *kk_api_at(int i)
{
    return i >= 0 && i < kk_api_count() ? &apis[i] : NULL;
}

int kk_api_check(int16_t key, int16_t version)
{
    const kk_api *a = kk_api_find(key);
    return a && version >= a->min && version <= a->max ? 0 : KLOG_EFORMAT;
}

bool kk_api_flexible(int16_t key, int16_t version)
{
    const kk_api *a = kk_api_find(key);
    return a && version >= a->flex_from;
}

int kk_api_versions_answer(kk_wbuf *w, const kk_req_header *h, int32_t throttle_time_ms)
{
    if (h->api_key != KK_API_API_VERSIONS)
        return -EINVAL;
    kk_api_versions_resp_key keys[KLOG_ARRAY_LEN(apis)];
    kk_api_versions_resp r = { .error_code = KK_ERR_NONE, .throttle_time_ms = throttle_time_ms };
    r.api_keys.v = keys;
    r.api_keys.n = kk_api_versions_list(keys, (int)KLOG_ARRAY_LEN(keys));
    int16_t v = h->api_version;
    if (kk_api_check(KK_API_API_VERSIONS, v) < 0) {
        r.error_code = KK_ERR_UNSUPPORTED_VERSION;
        v = 0;
    }
    return kk_response_encode(w, KK_API_API_VERSIONS, v, h->correlation_id, &r);
}

int kk_api_versions_list(kk_api_versions_resp_key *out, int max)
{
    for (int i = 0; i < kk_api_count() && i < max; i++)
        out[i] = (kk_api_versions_resp_key){ apis[i].key, apis[i].min, apis[i].max };
    return kk_api_count();
}
