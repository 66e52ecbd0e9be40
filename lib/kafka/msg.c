/*
 * lib/kafka/msg.c - the schemas of every message in msg.h: for each field,
 * in wire order, the versions it is on the wire in, where it may be null,
 * its default when absent.  Written from Kafka's JSON message specs
 * (apache/kafka clients/src/main/resources/common/message/<Name>.json),
 * covering the versions kk_api advertises; test/kafka checks them against
 * kafka-python's own protocol classes.
 *
 * Notation: F(field, type, first, last version), FD(.., default),
 * FN(.., nullable first, last), A/AN(field, first, last, [nullable,] element
 * schema) for arrays of structs.  V is "and later".
 */
#include <stddef.h>

#include "common/common.h"
#include "kafka/internal.h"

#define V KK_VMAX
#define FLD_(f, T, v0, v1, n0, n1, d, sb)                                                     \
    { .name = #f, .off = offsetof(S_, f), .type = KK_T_##T, .vmin = (v0), .vmax = (v1),      \
      .nmin = (n0), .nmax = (n1), .dflt = (d), .sub = (sb) }
#define F(f, T, v0, v1) FLD_(f, T, v0, v1, 1, 0, 0, NULL)
#define FD(f, T, v0, v1, d) FLD_(f, T, v0, v1, 1, 0, d, NULL)
#define FN(f, T, v0, v1, n0, n1) FLD_(f, T, v0, v1, n0, n1, 0, NULL)
#define A(f, v0, v1, sb) FLD_(f, STRUCTS, v0, v1, 1, 0, 0, &(sb))
#define AN(f, v0, v1, n0, n1, sb) FLD_(f, STRUCTS, v0, v1, n0, n1, 0, &(sb))
#define SCHEMA_(storage, var, nm)                                                             \
    storage const kk_schema var = { .name = nm, .size = sizeof(S_),                           \
                                    .nfields = KLOG_ARRAY_LEN(var##_f), .fields = var##_f }
#define SUB(var, nm) SCHEMA_(static, var, nm)
#define TOP(var, nm) SCHEMA_(, var, nm)

/* ---- Produce ------------------------------------------------------------------ */
#define S_ kk_produce_req_partition
static const kk_field produce_req_part_f[] = {
    F(index, I32, 0, V),
    FN(records, RECORDS, 0, V, 0, V),
};
SUB(produce_req_part, "PartitionProduceData");
#undef S_
#define S_ kk_produce_req_topic
static const kk_field produce_req_topic_f[] = {
    F(name, STR, 0, V),
    A(partitions, 0, V, produce_req_part),
};
SUB(produce_req_topic, "TopicProduceData");
#undef S_
#define S_ kk_produce_req
static const kk_field kk_produce_req_schema_f[] = {
    FN(transactional_id, STR, 3, V, 3, V),
    F(acks, I16, 0, V),
    F(timeout_ms, I32, 0, V),
    A(topics, 0, V, produce_req_topic),
};
TOP(kk_produce_req_schema, "ProduceRequest");
#undef S_

#define S_ kk_produce_resp_partition
static const kk_field produce_resp_part_f[] = {
    F(index, I32, 0, V),
    F(error_code, I16, 0, V),
    F(base_offset, I64, 0, V),
    FD(log_append_time_ms, I64, 2, V, -1),
    FD(log_start_offset, I64, 5, V, -1),
};
SUB(produce_resp_part, "PartitionProduceResponse");
#undef S_
#define S_ kk_produce_resp_topic
static const kk_field produce_resp_topic_f[] = {
    F(name, STR, 0, V),
    A(partitions, 0, V, produce_resp_part),
};
SUB(produce_resp_topic, "TopicProduceResponse");
#undef S_
#define S_ kk_produce_resp
static const kk_field kk_produce_resp_schema_f[] = {
    A(responses, 0, V, produce_resp_topic),
    F(throttle_time_ms, I32, 1, V),
};
TOP(kk_produce_resp_schema, "ProduceResponse");
#undef S_

/* ---- Fetch -------------------------------------------------------------------- */
#define S_ kk_fetch_req_partition
static const kk_field fetch_req_part_f[] = {
    F(partition, I32, 0, V),
    FD(current_leader_epoch, I32, 9, V, -1),
    F(fetch_offset, I64, 0, V),
    FD(log_start_offset, I64, 5, V, -1),
    F(partition_max_bytes, I32, 0, V),
};
SUB(fetch_req_part, "FetchPartition");
#undef S_
#define S_ kk_fetch_req_topic
static const kk_field fetch_req_topic_f[] = {
    F(topic, STR, 0, 12),
    A(partitions, 0, V, fetch_req_part),
};
SUB(fetch_req_topic, "FetchTopic");
#undef S_
#define S_ kk_fetch_req_forgotten
static const kk_field fetch_req_forgotten_f[] = {
    F(topic, STR, 7, 12),
    F(partitions, I32S, 7, V),
};
SUB(fetch_req_forgotten, "ForgottenTopic");
#undef S_
#define S_ kk_fetch_req
static const kk_field kk_fetch_req_schema_f[] = {
    FD(replica_id, I32, 0, 14, -1),
    F(max_wait_ms, I32, 0, V),
    F(min_bytes, I32, 0, V),
    FD(max_bytes, I32, 3, V, 0x7fffffff),
    F(isolation_level, I8, 4, V),
    F(session_id, I32, 7, V),
    FD(session_epoch, I32, 7, V, -1),
    A(topics, 0, V, fetch_req_topic),
    A(forgotten_topics_data, 7, V, fetch_req_forgotten),
    F(rack_id, STR, 11, V),
};
TOP(kk_fetch_req_schema, "FetchRequest");
#undef S_

#define S_ kk_fetch_resp_aborted
static const kk_field fetch_resp_aborted_f[] = {
    F(producer_id, I64, 4, V),
    F(first_offset, I64, 4, V),
};
SUB(fetch_resp_aborted, "AbortedTransaction");
#undef S_
#define S_ kk_fetch_resp_partition
static const kk_field fetch_resp_part_f[] = {
    F(partition_index, I32, 0, V),
    F(error_code, I16, 0, V),
    F(high_watermark, I64, 0, V),
    FD(last_stable_offset, I64, 4, V, -1),
    FD(log_start_offset, I64, 5, V, -1),
    AN(aborted_transactions, 4, V, 4, V, fetch_resp_aborted),
    FD(preferred_read_replica, I32, 11, V, -1),
    FN(records, RECORDS, 0, V, 0, V),
};
SUB(fetch_resp_part, "PartitionData");
#undef S_
#define S_ kk_fetch_resp_topic
static const kk_field fetch_resp_topic_f[] = {
    F(topic, STR, 0, 12),
    A(partitions, 0, V, fetch_resp_part),
};
SUB(fetch_resp_topic, "FetchableTopicResponse");
#undef S_
#define S_ kk_fetch_resp
static const kk_field kk_fetch_resp_schema_f[] = {
    F(throttle_time_ms, I32, 1, V),
    F(error_code, I16, 7, V),
    F(session_id, I32, 7, V),
    A(responses, 0, V, fetch_resp_topic),
};
TOP(kk_fetch_resp_schema, "FetchResponse");
#undef S_

/* ---- ListOffsets -------------------------------------------------------------- */
#define S_ kk_list_offsets_req_partition
static const kk_field list_offsets_req_part_f[] = {
    F(partition_index, I32, 0, V),
    FD(current_leader_epoch, I32, 4, V, -1),
    F(timestamp, I64, 0, V),
};
SUB(list_offsets_req_part, "ListOffsetsPartition");
#undef S_
#define S_ kk_list_offsets_req_topic
static const kk_field list_offsets_req_topic_f[] = {
    F(name, STR, 0, V),
    A(partitions, 0, V, list_offsets_req_part),
};
SUB(list_offsets_req_topic, "ListOffsetsTopic");
#undef S_
#define S_ kk_list_offsets_req
static const kk_field kk_list_offsets_req_schema_f[] = {
    F(replica_id, I32, 0, V),
    F(isolation_level, I8, 2, V),
    A(topics, 0, V, list_offsets_req_topic),
};
TOP(kk_list_offsets_req_schema, "ListOffsetsRequest");
#undef S_

#define S_ kk_list_offsets_resp_partition
static const kk_field list_offsets_resp_part_f[] = {
    F(partition_index, I32, 0, V),
    F(error_code, I16, 0, V),
    FD(timestamp, I64, 1, V, -1),
    FD(offset, I64, 1, V, -1),
    FD(leader_epoch, I32, 4, V, -1),
};
SUB(list_offsets_resp_part, "ListOffsetsPartitionResponse");
#undef S_
#define S_ kk_list_offsets_resp_topic
static const kk_field list_offsets_resp_topic_f[] = {
    F(name, STR, 0, V),
    A(partitions, 0, V, list_offsets_resp_part),
};
SUB(list_offsets_resp_topic, "ListOffsetsTopicResponse");
#undef S_
#define S_ kk_list_offsets_resp
static const kk_field kk_list_offsets_resp_schema_f[] = {
    F(throttle_time_ms, I32, 2, V),
    A(topics, 0, V, list_offsets_resp_topic),
};
TOP(kk_list_offsets_resp_schema, "ListOffsetsResponse");
#undef S_

/* ---- Metadata ----------------------------------------------------------------- */
#define S_ kk_metadata_req_topic
static const kk_field metadata_req_topic_f[] = {
    F(name, STR, 0, V),
};
SUB(metadata_req_topic, "MetadataRequestTopic");
#undef S_
#define S_ kk_metadata_req
static const kk_field kk_metadata_req_schema_f[] = {
    AN(topics, 0, V, 1, V, metadata_req_topic),
    FD(allow_auto_topic_creation, BOOL, 4, V, 1),
};
TOP(kk_metadata_req_schema, "MetadataRequest");
#undef S_

#define S_ kk_metadata_resp_broker
static const kk_field metadata_resp_broker_f[] = {
    F(node_id, I32, 0, V),
    F(host, STR, 0, V),
    F(port, I32, 0, V),
    FN(rack, STR, 1, V, 1, V),
};
SUB(metadata_resp_broker, "MetadataResponseBroker");
#undef S_
#define S_ kk_metadata_resp_partition
static const kk_field metadata_resp_part_f[] = {
    F(error_code, I16, 0, V),
    F(partition_index, I32, 0, V),
    F(leader_id, I32, 0, V),
    F(replica_nodes, I32S, 0, V),
    F(isr_nodes, I32S, 0, V),
    F(offline_replicas, I32S, 5, V),
};
SUB(metadata_resp_part, "MetadataResponsePartition");
#undef S_
#define S_ kk_metadata_resp_topic
static const kk_field metadata_resp_topic_f[] = {
    F(error_code, I16, 0, V),
    F(name, STR, 0, V),
    F(is_internal, BOOL, 1, V),
    A(partitions, 0, V, metadata_resp_part),
};
SUB(metadata_resp_topic, "MetadataResponseTopic");
#undef S_
#define S_ kk_metadata_resp
static const kk_field kk_metadata_resp_schema_f[] = {
    F(throttle_time_ms, I32, 3, V),
    A(brokers, 0, V, metadata_resp_broker),
    FN(cluster_id, STR, 2, V, 2, V),
    FD(controller_id, I32, 1, V, -1),
    A(topics, 0, V, metadata_resp_topic),
};
TOP(kk_metadata_resp_schema, "MetadataResponse");
#undef S_

/* ---- OffsetCommit ------------------------------------------------------------- */
#define S_ kk_offset_commit_req_partition
static const kk_field offset_commit_req_part_f[] = {
    F(partition_index, I32, 0, V),
    F(committed_offset, I64, 0, V),
    FD(committed_leader_epoch, I32, 6, V, -1),
    FN(committed_metadata, STR, 0, V, 0, V),
};
SUB(offset_commit_req_part, "OffsetCommitRequestPartition");
#undef S_
#define S_ kk_offset_commit_req_topic
static const kk_field offset_commit_req_topic_f[] = {
    F(name, STR, 0, V),
    A(partitions, 0, V, offset_commit_req_part),
};
SUB(offset_commit_req_topic, "OffsetCommitRequestTopic");
#undef S_
#define S_ kk_offset_commit_req
static const kk_field kk_offset_commit_req_schema_f[] = {
    F(group_id, STR, 0, V),
    FD(generation_id, I32, 1, V, -1),
    F(member_id, STR, 1, V),
    FN(group_instance_id, STR, 7, V, 7, V),
    FD(retention_time_ms, I64, 2, 4, -1),
    A(topics, 0, V, offset_commit_req_topic),
};
TOP(kk_offset_commit_req_schema, "OffsetCommitRequest");
#undef S_

#define S_ kk_offset_commit_resp_partition
static const kk_field offset_commit_resp_part_f[] = {
    F(partition_index, I32, 0, V),
    F(error_code, I16, 0, V),
};
SUB(offset_commit_resp_part, "OffsetCommitResponsePartition");
#undef S_
#define S_ kk_offset_commit_resp_topic
static const kk_field offset_commit_resp_topic_f[] = {
    F(name, STR, 0, V),
    A(partitions, 0, V, offset_commit_resp_part),
};
SUB(offset_commit_resp_topic, "OffsetCommitResponseTopic");
#undef S_
#define S_ kk_offset_commit_resp
static const kk_field kk_offset_commit_resp_schema_f[] = {
    F(throttle_time_ms, I32, 3, V),
    A(topics, 0, V, offset_commit_resp_topic),
};
TOP(kk_offset_commit_resp_schema, "OffsetCommitResponse");
#undef S_

/* ---- OffsetFetch -------------------------------------------------------------- */
#define S_ kk_offset_fetch_req_topic
static const kk_field offset_fetch_req_topic_f[] = {
    F(name, STR, 0, 7),
    F(partition_indexes, I32S, 0, 7),
};
SUB(offset_fetch_req_topic, "OffsetFetchRequestTopic");
#undef S_
#define S_ kk_offset_fetch_req
static const kk_field kk_offset_fetch_req_schema_f[] = {
    F(group_id, STR, 0, 7),
    AN(topics, 0, 7, 2, 7, offset_fetch_req_topic),
};
TOP(kk_offset_fetch_req_schema, "OffsetFetchRequest");
#undef S_

#define S_ kk_offset_fetch_resp_partition
static const kk_field offset_fetch_resp_part_f[] = {
    F(partition_index, I32, 0, 7),
    F(committed_offset, I64, 0, 7),
    FD(committed_leader_epoch, I32, 5, 7, -1),
    FN(metadata, STR, 0, 7, 0, 7),
    F(error_code, I16, 0, 7),
};
SUB(offset_fetch_resp_part, "OffsetFetchResponsePartition");
#undef S_
#define S_ kk_offset_fetch_resp_topic
static const kk_field offset_fetch_resp_topic_f[] = {
    F(name, STR, 0, 7),
    A(partitions, 0, 7, offset_fetch_resp_part),
};
SUB(offset_fetch_resp_topic, "OffsetFetchResponseTopic");
#undef S_
#define S_ kk_offset_fetch_resp
static const kk_field kk_offset_fetch_resp_schema_f[] = {
    F(throttle_time_ms, I32, 3, V),
    A(topics, 0, 7, offset_fetch_resp_topic),
    F(error_code, I16, 2, 7),
};
TOP(kk_offset_fetch_resp_schema, "OffsetFetchResponse");
#undef S_

/* ---- FindCoordinator ---------------------------------------------------------- */
#define S_ kk_find_coordinator_req
static const kk_field kk_find_coordinator_req_schema_f[] = {
    F(key, STR, 0, 3),
    F(key_type, I8, 1, V),
};
TOP(kk_find_coordinator_req_schema, "FindCoordinatorRequest");
#undef S_
#define S_ kk_find_coordinator_resp
static const kk_field kk_find_coordinator_resp_schema_f[] = {
    F(throttle_time_ms, I32, 1, V),
    F(error_code, I16, 0, 3),
    FN(error_message, STR, 1, 3, 1, 3),
    F(node_id, I32, 0, 3),
    F(host, STR, 0, 3),
    F(port, I32, 0, 3),
};
TOP(kk_find_coordinator_resp_schema, "FindCoordinatorResponse");
#undef S_

/* ---- JoinGroup ---------------------------------------------------------------- */
#define S_ kk_join_group_req_protocol
static const kk_field join_group_req_protocol_f[] = {
    F(name, STR, 0, V),
    F(metadata, BYTES, 0, V),
};
SUB(join_group_req_protocol, "JoinGroupRequestProtocol");
#undef S_
#define S_ kk_join_group_req
static const kk_field kk_join_group_req_schema_f[] = {
    F(group_id, STR, 0, V),
    F(session_timeout_ms, I32, 0, V),
    FD(rebalance_timeout_ms, I32, 1, V, -1),
    F(member_id, STR, 0, V),
    FN(group_instance_id, STR, 5, V, 5, V),
    F(protocol_type, STR, 0, V),
    A(protocols, 0, V, join_group_req_protocol),
};
TOP(kk_join_group_req_schema, "JoinGroupRequest");
#undef S_

#define S_ kk_join_group_resp_member
static const kk_field join_group_resp_member_f[] = {
    F(member_id, STR, 0, V),
    FN(group_instance_id, STR, 5, V, 5, V),
    F(metadata, BYTES, 0, V),
};
SUB(join_group_resp_member, "JoinGroupResponseMember");
#undef S_
#define S_ kk_join_group_resp
static const kk_field kk_join_group_resp_schema_f[] = {
    F(throttle_time_ms, I32, 2, V),
    F(error_code, I16, 0, V),
    FD(generation_id, I32, 0, V, -1),
    FN(protocol_name, STR, 0, V, 7, V),
    F(leader, STR, 0, V),
    F(member_id, STR, 0, V),
    A(members, 0, V, join_group_resp_member),
};
TOP(kk_join_group_resp_schema, "JoinGroupResponse");
#undef S_

/* ---- Heartbeat ---------------------------------------------------------------- */
#define S_ kk_heartbeat_req
static const kk_field kk_heartbeat_req_schema_f[] = {
    F(group_id, STR, 0, V),
    F(generation_id, I32, 0, V),
    F(member_id, STR, 0, V),
    FN(group_instance_id, STR, 3, V, 3, V),
};
TOP(kk_heartbeat_req_schema, "HeartbeatRequest");
#undef S_
#define S_ kk_heartbeat_resp
static const kk_field kk_heartbeat_resp_schema_f[] = {
    F(throttle_time_ms, I32, 1, V),
    F(error_code, I16, 0, V),
};
TOP(kk_heartbeat_resp_schema, "HeartbeatResponse");
#undef S_

/* ---- LeaveGroup --------------------------------------------------------------- */
#define S_ kk_leave_group_req
static const kk_field kk_leave_group_req_schema_f[] = {
    F(group_id, STR, 0, V),
    F(member_id, STR, 0, 2),
};
TOP(kk_leave_group_req_schema, "LeaveGroupRequest");
#undef S_
#define S_ kk_leave_group_resp
static const kk_field kk_leave_group_resp_schema_f[] = {
    F(throttle_time_ms, I32, 1, V),
    F(error_code, I16, 0, V),
};
TOP(kk_leave_group_resp_schema, "LeaveGroupResponse");
#undef S_

/* ---- SyncGroup ---------------------------------------------------------------- */
#define S_ kk_sync_group_req_assignment
static const kk_field sync_group_req_assignment_f[] = {
    F(member_id, STR, 0, V),
    F(assignment, BYTES, 0, V),
};
SUB(sync_group_req_assignment, "SyncGroupRequestAssignment");
#undef S_
#define S_ kk_sync_group_req
static const kk_field kk_sync_group_req_schema_f[] = {
    F(group_id, STR, 0, V),
    F(generation_id, I32, 0, V),
    F(member_id, STR, 0, V),
    FN(group_instance_id, STR, 3, V, 3, V),
    A(assignments, 0, V, sync_group_req_assignment),
};
TOP(kk_sync_group_req_schema, "SyncGroupRequest");
#undef S_
#define S_ kk_sync_group_resp
static const kk_field kk_sync_group_resp_schema_f[] = {
    F(throttle_time_ms, I32, 1, V),
    F(error_code, I16, 0, V),
    F(assignment, BYTES, 0, V),
};
TOP(kk_sync_group_resp_schema, "SyncGroupResponse");
#undef S_

/* ---- DescribeGroups ----------------------------------------------------------- */
#define S_ kk_describe_groups_req
static const kk_field kk_describe_groups_req_schema_f[] = {
    F(groups, STRS, 0, V),
    F(include_authorized_operations, BOOL, 3, V),
};
TOP(kk_describe_groups_req_schema, "DescribeGroupsRequest");
#undef S_

#define S_ kk_describe_groups_resp_member
static const kk_field describe_groups_resp_member_f[] = {
    F(member_id, STR, 0, V),
    FN(group_instance_id, STR, 4, V, 4, V),
    F(client_id, STR, 0, V),
    F(client_host, STR, 0, V),
    F(member_metadata, BYTES, 0, V),
    F(member_assignment, BYTES, 0, V),
};
SUB(describe_groups_resp_member, "DescribedGroupMember");
#undef S_
#define S_ kk_describe_groups_resp_group
static const kk_field describe_groups_resp_group_f[] = {
    F(error_code, I16, 0, V),
    F(group_id, STR, 0, V),
    F(group_state, STR, 0, V),
    F(protocol_type, STR, 0, V),
    F(protocol_data, STR, 0, V),
    A(members, 0, V, describe_groups_resp_member),
    FD(authorized_operations, I32, 3, V, INT32_MIN),
};
SUB(describe_groups_resp_group, "DescribedGroup");
#undef S_
#define S_ kk_describe_groups_resp
static const kk_field kk_describe_groups_resp_schema_f[] = {
    F(throttle_time_ms, I32, 1, V),
    A(groups, 0, V, describe_groups_resp_group),
};
TOP(kk_describe_groups_resp_schema, "DescribeGroupsResponse");
#undef S_

/* ---- ListGroups --------------------------------------------------------------- */
#define S_ kk_list_groups_req
/* No fields in versions 0-2. */
const kk_schema kk_list_groups_req_schema = {
    .name = "ListGroupsRequest", .size = sizeof(S_), .nfields = 0, .fields = NULL,
};
#undef S_
#define S_ kk_list_groups_resp_group
static const kk_field list_groups_resp_group_f[] = {
    F(group_id, STR, 0, V),
    F(protocol_type, STR, 0, V),
};
SUB(list_groups_resp_group, "ListedGroup");
#undef S_
#define S_ kk_list_groups_resp
static const kk_field kk_list_groups_resp_schema_f[] = {
    F(throttle_time_ms, I32, 1, V),
    F(error_code, I16, 0, V),
    A(groups, 0, V, list_groups_resp_group),
};
TOP(kk_list_groups_resp_schema, "ListGroupsResponse");
#undef S_

/* ---- SaslHandshake ------------------------------------------------------------ */
#define S_ kk_sasl_handshake_req
static const kk_field kk_sasl_handshake_req_schema_f[] = {
    F(mechanism, STR, 0, V),
};
TOP(kk_sasl_handshake_req_schema, "SaslHandshakeRequest");
#undef S_
#define S_ kk_sasl_handshake_resp
static const kk_field kk_sasl_handshake_resp_schema_f[] = {
    F(error_code, I16, 0, V),
    F(mechanisms, STRS, 0, V),
};
TOP(kk_sasl_handshake_resp_schema, "SaslHandshakeResponse");
#undef S_

/* ---- ApiVersions -------------------------------------------------------------- */
#define S_ kk_api_versions_req
static const kk_field kk_api_versions_req_schema_f[] = {
    F(client_software_name, STR, 3, V),
    F(client_software_version, STR, 3, V),
};
TOP(kk_api_versions_req_schema, "ApiVersionsRequest");
#undef S_
#define S_ kk_api_versions_resp_key
static const kk_field api_versions_resp_key_f[] = {
    F(api_key, I16, 0, V),
    F(min_version, I16, 0, V),
    F(max_version, I16, 0, V),
};
SUB(api_versions_resp_key, "ApiVersion");
#undef S_
#define S_ kk_api_versions_resp
static const kk_field kk_api_versions_resp_schema_f[] = {
    F(error_code, I16, 0, V),
    A(api_keys, 0, V, api_versions_resp_key),
    F(throttle_time_ms, I32, 1, V),
};
TOP(kk_api_versions_resp_schema, "ApiVersionsResponse");
#undef S_

/* ---- CreateTopics ------------------------------------------------------------- */
#define S_ kk_create_topics_req_assignment
static const kk_field create_topics_req_assignment_f[] = {
    F(partition_index, I32, 0, V),
    F(broker_ids, I32S, 0, V),
};
SUB(create_topics_req_assignment, "CreatableReplicaAssignment");
#undef S_
#define S_ kk_create_topics_req_config
static const kk_field create_topics_req_config_f[] = {
    F(name, STR, 0, V),
    FN(value, STR, 0, V, 0, V),
};
SUB(create_topics_req_config, "CreatableTopicConfig");
#undef S_
#define S_ kk_create_topics_req_topic
static const kk_field create_topics_req_topic_f[] = {
    F(name, STR, 0, V),
    F(num_partitions, I32, 0, V),
    F(replication_factor, I16, 0, V),
    A(assignments, 0, V, create_topics_req_assignment),
    A(configs, 0, V, create_topics_req_config),
};
SUB(create_topics_req_topic, "CreatableTopic");
#undef S_
#define S_ kk_create_topics_req
static const kk_field kk_create_topics_req_schema_f[] = {
    A(topics, 0, V, create_topics_req_topic),
    FD(timeout_ms, I32, 0, V, 60000),
    F(validate_only, BOOL, 1, V),
};
TOP(kk_create_topics_req_schema, "CreateTopicsRequest");
#undef S_

#define S_ kk_create_topics_resp_topic
static const kk_field create_topics_resp_topic_f[] = {
    F(name, STR, 0, V),
    F(error_code, I16, 0, V),
    FN(error_message, STR, 1, V, 0, V),
};
SUB(create_topics_resp_topic, "CreatableTopicResult");
#undef S_
#define S_ kk_create_topics_resp
static const kk_field kk_create_topics_resp_schema_f[] = {
    F(throttle_time_ms, I32, 2, V),
    A(topics, 0, V, create_topics_resp_topic),
};
TOP(kk_create_topics_resp_schema, "CreateTopicsResponse");
#undef S_

/* ---- DeleteTopics ------------------------------------------------------------- */
#define S_ kk_delete_topics_req
static const kk_field kk_delete_topics_req_schema_f[] = {
    F(topic_names, STRS, 0, 5),
    F(timeout_ms, I32, 0, V),
};
TOP(kk_delete_topics_req_schema, "DeleteTopicsRequest");
#undef S_
#define S_ kk_delete_topics_resp_topic
static const kk_field delete_topics_resp_topic_f[] = {
    F(name, STR, 0, V),
    F(error_code, I16, 0, V),
};
SUB(delete_topics_resp_topic, "DeletableTopicResult");
#undef S_
#define S_ kk_delete_topics_resp
static const kk_field kk_delete_topics_resp_schema_f[] = {
    F(throttle_time_ms, I32, 1, V),
    A(responses, 0, V, delete_topics_resp_topic),
};
TOP(kk_delete_topics_resp_schema, "DeleteTopicsResponse");
#undef S_

/* ---- DeleteRecords ------------------------------------------------------------ */
#define S_ kk_delete_records_req_partition
static const kk_field delete_records_req_part_f[] = {
    F(partition_index, I32, 0, V),
    F(offset, I64, 0, V),
};
SUB(delete_records_req_part, "DeleteRecordsPartition");
#undef S_
#define S_ kk_delete_records_req_topic
static const kk_field delete_records_req_topic_f[] = {
    F(name, STR, 0, V),
    A(partitions, 0, V, delete_records_req_part),
};
SUB(delete_records_req_topic, "DeleteRecordsTopic");
#undef S_
#define S_ kk_delete_records_req
static const kk_field kk_delete_records_req_schema_f[] = {
    A(topics, 0, V, delete_records_req_topic),
    F(timeout_ms, I32, 0, V),
};
TOP(kk_delete_records_req_schema, "DeleteRecordsRequest");
#undef S_

#define S_ kk_delete_records_resp_partition
static const kk_field delete_records_resp_part_f[] = {
    F(partition_index, I32, 0, V),
    F(low_watermark, I64, 0, V),
    F(error_code, I16, 0, V),
};
SUB(delete_records_resp_part, "DeleteRecordsPartitionResult");
#undef S_
#define S_ kk_delete_records_resp_topic
static const kk_field delete_records_resp_topic_f[] = {
    F(name, STR, 0, V),
    A(partitions, 0, V, delete_records_resp_part),
};
SUB(delete_records_resp_topic, "DeleteRecordsTopicResult");
#undef S_
#define S_ kk_delete_records_resp
static const kk_field kk_delete_records_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    A(topics, 0, V, delete_records_resp_topic),
};
TOP(kk_delete_records_resp_schema, "DeleteRecordsResponse");
#undef S_

/* ---- InitProducerId ----------------------------------------------------------- */
#define S_ kk_init_producer_id_req
static const kk_field kk_init_producer_id_req_schema_f[] = {
    FN(transactional_id, STR, 0, V, 0, V),
    F(transaction_timeout_ms, I32, 0, V),
};
TOP(kk_init_producer_id_req_schema, "InitProducerIdRequest");
#undef S_
#define S_ kk_init_producer_id_resp
static const kk_field kk_init_producer_id_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    F(error_code, I16, 0, V),
    FD(producer_id, I64, 0, V, -1),
    F(producer_epoch, I16, 0, V),
};
TOP(kk_init_producer_id_resp_schema, "InitProducerIdResponse");
#undef S_

/* ---- DescribeConfigs ---------------------------------------------------------- */
#define S_ kk_describe_configs_req_resource
static const kk_field describe_configs_req_resource_f[] = {
    F(resource_type, I8, 0, V),
    F(resource_name, STR, 0, V),
    FN(configuration_keys, STRS, 0, V, 0, V),
};
SUB(describe_configs_req_resource, "DescribeConfigsResource");
#undef S_
#define S_ kk_describe_configs_req
static const kk_field kk_describe_configs_req_schema_f[] = {
    A(resources, 0, V, describe_configs_req_resource),
    F(include_synonyms, BOOL, 1, V),
};
TOP(kk_describe_configs_req_schema, "DescribeConfigsRequest");
#undef S_

#define S_ kk_describe_configs_resp_synonym
static const kk_field describe_configs_resp_synonym_f[] = {
    F(name, STR, 1, V),
    FN(value, STR, 1, V, 0, V),
    F(source, I8, 1, V),
};
SUB(describe_configs_resp_synonym, "DescribeConfigsSynonym");
#undef S_
#define S_ kk_describe_configs_resp_config
static const kk_field describe_configs_resp_config_f[] = {
    F(name, STR, 0, V),
    FN(value, STR, 0, V, 0, V),
    F(read_only, BOOL, 0, V),
    F(is_default, BOOL, 0, 0),
    FD(config_source, I8, 1, V, -1),
    F(is_sensitive, BOOL, 0, V),
    A(synonyms, 1, V, describe_configs_resp_synonym),
};
SUB(describe_configs_resp_config, "DescribeConfigsResourceResult");
#undef S_
#define S_ kk_describe_configs_resp_result
static const kk_field describe_configs_resp_result_f[] = {
    F(error_code, I16, 0, V),
    FN(error_message, STR, 0, V, 0, V),
    F(resource_type, I8, 0, V),
    F(resource_name, STR, 0, V),
    A(configs, 0, V, describe_configs_resp_config),
};
SUB(describe_configs_resp_result, "DescribeConfigsResult");
#undef S_
#define S_ kk_describe_configs_resp
static const kk_field kk_describe_configs_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    A(results, 0, V, describe_configs_resp_result),
};
TOP(kk_describe_configs_resp_schema, "DescribeConfigsResponse");
#undef S_

/* ---- AlterConfigs and IncrementalAlterConfigs -------------------------------------- */
#define S_ kk_alter_configs_req_config
static const kk_field alter_configs_req_config_f[] = {
    F(name, STR, 0, V),
    FN(value, STR, 0, V, 0, V),
};
SUB(alter_configs_req_config, "AlterableConfig");
static const kk_field incremental_alter_configs_req_config_f[] = {
    F(name, STR, 0, V),
    F(config_operation, I8, 0, V),
    FN(value, STR, 0, V, 0, V),
};
SUB(incremental_alter_configs_req_config, "AlterableConfig");
#undef S_
#define S_ kk_alter_configs_req_resource
static const kk_field alter_configs_req_resource_f[] = {
    F(resource_type, I8, 0, V),
    F(resource_name, STR, 0, V),
    A(configs, 0, V, alter_configs_req_config),
};
SUB(alter_configs_req_resource, "AlterConfigsResource");
static const kk_field incremental_alter_configs_req_resource_f[] = {
    F(resource_type, I8, 0, V),
    F(resource_name, STR, 0, V),
    A(configs, 0, V, incremental_alter_configs_req_config),
};
SUB(incremental_alter_configs_req_resource, "AlterConfigsResource");
#undef S_
#define S_ kk_alter_configs_req
static const kk_field kk_alter_configs_req_schema_f[] = {
    A(resources, 0, V, alter_configs_req_resource),
    F(validate_only, BOOL, 0, V),
};
TOP(kk_alter_configs_req_schema, "AlterConfigsRequest");
static const kk_field kk_incremental_alter_configs_req_schema_f[] = {
    A(resources, 0, V, incremental_alter_configs_req_resource),
    F(validate_only, BOOL, 0, V),
};
TOP(kk_incremental_alter_configs_req_schema, "IncrementalAlterConfigsRequest");
#undef S_
#define S_ kk_alter_configs_resp_result
static const kk_field alter_configs_resp_result_f[] = {
    F(error_code, I16, 0, V),
    FN(error_message, STR, 0, V, 0, V),
    F(resource_type, I8, 0, V),
    F(resource_name, STR, 0, V),
};
SUB(alter_configs_resp_result, "AlterConfigsResourceResponse");
#undef S_
#define S_ kk_alter_configs_resp
static const kk_field kk_alter_configs_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    A(responses, 0, V, alter_configs_resp_result),
};
TOP(kk_alter_configs_resp_schema, "AlterConfigsResponse");
static const kk_field kk_incremental_alter_configs_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    A(responses, 0, V, alter_configs_resp_result),
};
TOP(kk_incremental_alter_configs_resp_schema, "IncrementalAlterConfigsResponse");
#undef S_

/* ---- DescribeAcls ---------------------------------------------------------------- */
#define S_ kk_describe_acls_req
static const kk_field kk_describe_acls_req_schema_f[] = {
    F(resource_type_filter, I8, 0, V),
    FN(resource_name_filter, STR, 0, V, 0, V),
    FD(pattern_type_filter, I8, 1, V, 3),
    FN(principal_filter, STR, 0, V, 0, V),
    FN(host_filter, STR, 0, V, 0, V),
    F(operation, I8, 0, V),
    F(permission_type, I8, 0, V),
};
TOP(kk_describe_acls_req_schema, "DescribeAclsRequest");
#undef S_
#define S_ kk_acl_description
static const kk_field acl_description_f[] = {
    F(principal, STR, 0, V),
    F(host, STR, 0, V),
    F(operation, I8, 0, V),
    F(permission_type, I8, 0, V),
};
SUB(acl_description, "AclDescription");
#undef S_
#define S_ kk_describe_acls_resp_resource
static const kk_field describe_acls_resp_resource_f[] = {
    F(resource_type, I8, 0, V),
    F(resource_name, STR, 0, V),
    FD(pattern_type, I8, 1, V, 3),
    A(acls, 0, V, acl_description),
};
SUB(describe_acls_resp_resource, "DescribeAclsResource");
#undef S_
#define S_ kk_describe_acls_resp
static const kk_field kk_describe_acls_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    F(error_code, I16, 0, V),
    FN(error_message, STR, 0, V, 0, V),
    A(resources, 0, V, describe_acls_resp_resource),
};
TOP(kk_describe_acls_resp_schema, "DescribeAclsResponse");
#undef S_

/* ---- CreateAcls ------------------------------------------------------------------ */
#define S_ kk_create_acls_req_creation
static const kk_field create_acls_req_creation_f[] = {
    F(resource_type, I8, 0, V),
    F(resource_name, STR, 0, V),
    FD(resource_pattern_type, I8, 1, V, 3),
    F(principal, STR, 0, V),
    F(host, STR, 0, V),
    F(operation, I8, 0, V),
    F(permission_type, I8, 0, V),
};
SUB(create_acls_req_creation, "AclCreation");
#undef S_
#define S_ kk_create_acls_req
static const kk_field kk_create_acls_req_schema_f[] = {
    A(creations, 0, V, create_acls_req_creation),
};
TOP(kk_create_acls_req_schema, "CreateAclsRequest");
#undef S_
#define S_ kk_create_acls_resp_result
static const kk_field create_acls_resp_result_f[] = {
    F(error_code, I16, 0, V),
    FN(error_message, STR, 0, V, 0, V),
};
SUB(create_acls_resp_result, "AclCreationResult");
#undef S_
#define S_ kk_create_acls_resp
static const kk_field kk_create_acls_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    A(results, 0, V, create_acls_resp_result),
};
TOP(kk_create_acls_resp_schema, "CreateAclsResponse");
#undef S_

/* ---- DeleteAcls ------------------------------------------------------------------ */
#define S_ kk_delete_acls_req_filter
static const kk_field delete_acls_req_filter_f[] = {
    F(resource_type_filter, I8, 0, V),
    FN(resource_name_filter, STR, 0, V, 0, V),
    FD(pattern_type_filter, I8, 1, V, 3),
    FN(principal_filter, STR, 0, V, 0, V),
    FN(host_filter, STR, 0, V, 0, V),
    F(operation, I8, 0, V),
    F(permission_type, I8, 0, V),
};
SUB(delete_acls_req_filter, "DeleteAclsFilter");
#undef S_
#define S_ kk_delete_acls_req
static const kk_field kk_delete_acls_req_schema_f[] = {
    A(filters, 0, V, delete_acls_req_filter),
};
TOP(kk_delete_acls_req_schema, "DeleteAclsRequest");
#undef S_
#define S_ kk_delete_acls_resp_match
static const kk_field delete_acls_resp_match_f[] = {
    F(error_code, I16, 0, V),
    FN(error_message, STR, 0, V, 0, V),
    F(resource_type, I8, 0, V),
    F(resource_name, STR, 0, V),
    FD(pattern_type, I8, 1, V, 3),
    F(principal, STR, 0, V),
    F(host, STR, 0, V),
    F(operation, I8, 0, V),
    F(permission_type, I8, 0, V),
};
SUB(delete_acls_resp_match, "DeleteAclsMatchingAcl");
#undef S_
#define S_ kk_delete_acls_resp_result
static const kk_field delete_acls_resp_result_f[] = {
    F(error_code, I16, 0, V),
    FN(error_message, STR, 0, V, 0, V),
    A(matching_acls, 0, V, delete_acls_resp_match),
};
SUB(delete_acls_resp_result, "DeleteAclsFilterResult");
#undef S_
#define S_ kk_delete_acls_resp
static const kk_field kk_delete_acls_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    A(filter_results, 0, V, delete_acls_resp_result),
};
TOP(kk_delete_acls_resp_schema, "DeleteAclsResponse");
#undef S_

/* ---- SaslAuthenticate --------------------------------------------------------- */
#define S_ kk_sasl_authenticate_req
static const kk_field kk_sasl_authenticate_req_schema_f[] = {
    F(auth_bytes, BYTES, 0, V),
};
TOP(kk_sasl_authenticate_req_schema, "SaslAuthenticateRequest");
#undef S_
#define S_ kk_sasl_authenticate_resp
static const kk_field kk_sasl_authenticate_resp_schema_f[] = {
    F(error_code, I16, 0, V),
    FN(error_message, STR, 0, V, 0, V),
    F(auth_bytes, BYTES, 0, V),
    F(session_lifetime_ms, I64, 1, V),
};
TOP(kk_sasl_authenticate_resp_schema, "SaslAuthenticateResponse");
#undef S_

/* ---- CreatePartitions --------------------------------------------------------- */
#define S_ kk_create_partitions_req_assignment
static const kk_field create_partitions_req_assignment_f[] = {
    F(broker_ids, I32S, 0, V),
};
SUB(create_partitions_req_assignment, "CreatePartitionsAssignment");
#undef S_
#define S_ kk_create_partitions_req_topic
static const kk_field create_partitions_req_topic_f[] = {
    F(name, STR, 0, V),
    F(count, I32, 0, V),
    AN(assignments, 0, V, 0, V, create_partitions_req_assignment),
};
SUB(create_partitions_req_topic, "CreatePartitionsTopic");
#undef S_
#define S_ kk_create_partitions_req
static const kk_field kk_create_partitions_req_schema_f[] = {
    A(topics, 0, V, create_partitions_req_topic),
    F(timeout_ms, I32, 0, V),
    F(validate_only, BOOL, 0, V),
};
TOP(kk_create_partitions_req_schema, "CreatePartitionsRequest");
#undef S_

#define S_ kk_create_partitions_resp_result
static const kk_field create_partitions_resp_result_f[] = {
    F(name, STR, 0, V),
    F(error_code, I16, 0, V),
    FN(error_message, STR, 0, V, 0, V),
};
SUB(create_partitions_resp_result, "CreatePartitionsTopicResult");
#undef S_
#define S_ kk_create_partitions_resp
static const kk_field kk_create_partitions_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    A(results, 0, V, create_partitions_resp_result),
};
TOP(kk_create_partitions_resp_schema, "CreatePartitionsResponse");
#undef S_

/* ---- DeleteGroups ------------------------------------------------------------- */
#define S_ kk_delete_groups_req
static const kk_field kk_delete_groups_req_schema_f[] = {
    F(groups_names, STRS, 0, V),
};
TOP(kk_delete_groups_req_schema, "DeleteGroupsRequest");
#undef S_
#define S_ kk_delete_groups_resp_result
static const kk_field delete_groups_resp_result_f[] = {
    F(group_id, STR, 0, V),
    F(error_code, I16, 0, V),
};
SUB(delete_groups_resp_result, "DeletableGroupResult");
#undef S_
#define S_ kk_delete_groups_resp
static const kk_field kk_delete_groups_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    A(results, 0, V, delete_groups_resp_result),
};
TOP(kk_delete_groups_resp_schema, "DeleteGroupsResponse");
#undef S_

/* ---- The consumer protocol ---------------------------------------------------- */
#define S_ kk_consumer_topic_partitions
static const kk_field consumer_topic_partitions_f[] = {
    F(topic, STR, 0, V),
    F(partitions, I32S, 0, V),
};
SUB(consumer_topic_partitions, "TopicPartition");
#undef S_
#define S_ kk_consumer_subscription
static const kk_field kk_consumer_subscription_schema_f[] = {
    F(topics, STRS, 0, V),
    FN(user_data, BYTES, 0, V, 0, V),
    A(owned_partitions, 1, V, consumer_topic_partitions),
    FD(generation_id, I32, 2, V, -1),
    FN(rack_id, STR, 3, V, 3, V),
};
TOP(kk_consumer_subscription_schema, "ConsumerProtocolSubscription");
#undef S_
#define S_ kk_consumer_assignment
static const kk_field kk_consumer_assignment_schema_f[] = {
    A(assigned_partitions, 0, V, consumer_topic_partitions),
    FN(user_data, BYTES, 0, V, 0, V),
};
TOP(kk_consumer_assignment_schema, "ConsumerProtocolAssignment");
#undef S_

/* ---- LeaderAndIsr ------------------------------------------------------------- */
#define S_ kk_leader_and_isr_partition
static const kk_field leader_and_isr_part_f[] = {
    F(topic_name, STR, 0, 1),
    F(partition_index, I32, 0, V),
    F(controller_epoch, I32, 0, V),
    F(leader, I32, 0, V),
    F(leader_epoch, I32, 0, V),
    F(isr, I32S, 0, V),
    F(partition_epoch, I32, 0, V),
    F(replicas, I32S, 0, V),
    F(is_new, BOOL, 1, V),
};
SUB(leader_and_isr_part, "LeaderAndIsrPartitionState");
#undef S_
#define S_ kk_leader_and_isr_topic
static const kk_field leader_and_isr_topic_f[] = {
    F(topic_name, STR, 2, V),
    A(partition_states, 2, V, leader_and_isr_part),
};
SUB(leader_and_isr_topic, "LeaderAndIsrTopicState");
#undef S_
#define S_ kk_leader_and_isr_live_leader
static const kk_field leader_and_isr_live_leader_f[] = {
    F(broker_id, I32, 0, V),
    F(host_name, STR, 0, V),
    F(port, I32, 0, V),
};
SUB(leader_and_isr_live_leader, "LeaderAndIsrLiveLeader");
#undef S_
#define S_ kk_leader_and_isr_req
static const kk_field kk_leader_and_isr_req_schema_f[] = {
    F(controller_id, I32, 0, V),
    F(controller_epoch, I32, 0, V),
    FD(broker_epoch, I64, 2, 2, -1),
    A(ungrouped_partition_states, 0, 1, leader_and_isr_part),
    A(topic_states, 2, V, leader_and_isr_topic),
    A(live_leaders, 0, V, leader_and_isr_live_leader),
};
TOP(kk_leader_and_isr_req_schema, "LeaderAndIsrRequest");
#undef S_

#define S_ kk_leader_and_isr_resp_partition
static const kk_field leader_and_isr_resp_part_f[] = {
    F(topic_name, STR, 0, V),
    F(partition_index, I32, 0, V),
    F(error_code, I16, 0, V),
};
SUB(leader_and_isr_resp_part, "LeaderAndIsrPartitionError");
#undef S_
#define S_ kk_leader_and_isr_resp
static const kk_field kk_leader_and_isr_resp_schema_f[] = {
    F(error_code, I16, 0, V),
    A(partition_errors, 0, V, leader_and_isr_resp_part),
};
TOP(kk_leader_and_isr_resp_schema, "LeaderAndIsrResponse");
#undef S_

/* ---- OffsetForLeaderEpoch ----------------------------------------------------- */
#define S_ kk_offset_for_leader_epoch_req_partition
static const kk_field offset_for_leader_epoch_req_part_f[] = {
    F(partition, I32, 0, V),
    FD(current_leader_epoch, I32, 2, V, -1),
    F(leader_epoch, I32, 0, V),
};
SUB(offset_for_leader_epoch_req_part, "OffsetForLeaderPartition");
#undef S_
#define S_ kk_offset_for_leader_epoch_req_topic
static const kk_field offset_for_leader_epoch_req_topic_f[] = {
    F(topic, STR, 0, V),
    A(partitions, 0, V, offset_for_leader_epoch_req_part),
};
SUB(offset_for_leader_epoch_req_topic, "OffsetForLeaderTopic");
#undef S_
#define S_ kk_offset_for_leader_epoch_req
static const kk_field kk_offset_for_leader_epoch_req_schema_f[] = {
    FD(replica_id, I32, 3, V, -2),
    A(topics, 0, V, offset_for_leader_epoch_req_topic),
};
TOP(kk_offset_for_leader_epoch_req_schema, "OffsetForLeaderEpochRequest");
#undef S_

#define S_ kk_offset_for_leader_epoch_resp_partition
static const kk_field offset_for_leader_epoch_resp_part_f[] = {
    F(error_code, I16, 0, V),
    F(partition, I32, 0, V),
    FD(leader_epoch, I32, 1, V, -1),
    F(end_offset, I64, 0, V),
};
SUB(offset_for_leader_epoch_resp_part, "OffsetForLeaderPartitionResult");
#undef S_
#define S_ kk_offset_for_leader_epoch_resp_topic
static const kk_field offset_for_leader_epoch_resp_topic_f[] = {
    F(topic, STR, 0, V),
    A(partitions, 0, V, offset_for_leader_epoch_resp_part),
};
SUB(offset_for_leader_epoch_resp_topic, "OffsetForLeaderTopicResult");
#undef S_
#define S_ kk_offset_for_leader_epoch_resp
static const kk_field kk_offset_for_leader_epoch_resp_schema_f[] = {
    F(throttle_time_ms, I32, 2, V),
    A(topics, 0, V, offset_for_leader_epoch_resp_topic),
};
TOP(kk_offset_for_leader_epoch_resp_schema, "OffsetForLeaderEpochResponse");
#undef S_

/* ---- AlterPartition (v0: Kafka 2.7's AlterIsr, flexible) ------------------------ */
#define S_ kk_alter_partition_req_partition
static const kk_field alter_partition_req_part_f[] = {
    F(partition_index, I32, 0, V),
    F(leader_epoch, I32, 0, V),
    F(new_isr, I32S, 0, 2),
    F(partition_epoch, I32, 0, V),
};
SUB(alter_partition_req_part, "PartitionData");
#undef S_
#define S_ kk_alter_partition_req_topic
static const kk_field alter_partition_req_topic_f[] = {
    F(name, STR, 0, 1),
    A(partitions, 0, V, alter_partition_req_part),
};
SUB(alter_partition_req_topic, "TopicData");
#undef S_
#define S_ kk_alter_partition_req
static const kk_field kk_alter_partition_req_schema_f[] = {
    F(broker_id, I32, 0, V),
    FD(broker_epoch, I64, 0, V, -1),
    A(topics, 0, V, alter_partition_req_topic),
};
TOP(kk_alter_partition_req_schema, "AlterPartitionRequest");
#undef S_

#define S_ kk_alter_partition_resp_partition
static const kk_field alter_partition_resp_part_f[] = {
    F(partition_index, I32, 0, V),
    F(error_code, I16, 0, V),
    F(leader_id, I32, 0, V),
    F(leader_epoch, I32, 0, V),
    F(isr, I32S, 0, V),
    F(partition_epoch, I32, 0, V),
};
SUB(alter_partition_resp_part, "PartitionData");
#undef S_
#define S_ kk_alter_partition_resp_topic
static const kk_field alter_partition_resp_topic_f[] = {
    F(name, STR, 0, 1),
    A(partitions, 0, V, alter_partition_resp_part),
};
SUB(alter_partition_resp_topic, "TopicData");
#undef S_
#define S_ kk_alter_partition_resp
static const kk_field kk_alter_partition_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    F(error_code, I16, 0, V),
    A(topics, 0, V, alter_partition_resp_topic),
};
TOP(kk_alter_partition_resp_schema, "AlterPartitionResponse");
#undef S_

/* ---- ElectLeaders ----------------------------------------------------------------- */
#define S_ kk_elect_leaders_req_topic
static const kk_field elect_leaders_req_topic_f[] = {
    F(topic, STR, 0, V),
    F(partitions, I32S, 0, V),
};
SUB(elect_leaders_req_topic, "TopicPartitions");
#undef S_
#define S_ kk_elect_leaders_req
static const kk_field kk_elect_leaders_req_schema_f[] = {
    F(election_type, I8, 1, V),
    AN(topic_partitions, 0, V, 0, V, elect_leaders_req_topic),
    F(timeout_ms, I32, 0, V),
};
TOP(kk_elect_leaders_req_schema, "ElectLeadersRequest");
#undef S_

#define S_ kk_elect_leaders_resp_partition
static const kk_field elect_leaders_resp_part_f[] = {
    F(partition_id, I32, 0, V),
    F(error_code, I16, 0, V),
    FN(error_message, STR, 0, V, 0, V),
};
SUB(elect_leaders_resp_part, "PartitionResult");
#undef S_
#define S_ kk_elect_leaders_resp_topic
static const kk_field elect_leaders_resp_topic_f[] = {
    F(topic, STR, 0, V),
    A(partition_result, 0, V, elect_leaders_resp_part),
};
SUB(elect_leaders_resp_topic, "ReplicaElectionResult");
#undef S_
#define S_ kk_elect_leaders_resp
static const kk_field kk_elect_leaders_resp_schema_f[] = {
    F(throttle_time_ms, I32, 0, V),
    F(error_code, I16, 1, V),
    A(replica_election_results, 0, V, elect_leaders_resp_topic),
};
TOP(kk_elect_leaders_resp_schema, "ElectLeadersResponse");
#undef S_
