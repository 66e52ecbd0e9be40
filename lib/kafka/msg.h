/*
 * lib/kafka/msg.h - the Kafka messages lib/kafka decodes and encodes, as
 * plain C structs (included by kafka.h; read kafka.h first).
 *
 * One struct per request and response body, named after Kafka's JSON
 * message specs (apache/kafka clients/src/main/resources/common/message/):
 * kk_<api>_req / kk_<api>_resp, nested kk_<api>_req_<part>; fields in
 * snake_case, in wire order.  A field's comment gives the versions it is on
 * the wire in (none: every version); a field not on the wire in the
 * version decoded holds its default (in brackets; strings and arrays: null
 * and empty).  "nullable" says where null is a legal value.
 *
 * Decoded structures live in a kk_arena and point into the frame (bytes and
 * records); see kafka.h for their lifetime.  Structures given to an encoder
 * are the caller's: nothing is kept after the call.
 */
#ifndef KLOG_KAFKA_MSG_H
#define KLOG_KAFKA_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* A string.  Decoded: p is NUL-terminated (a copy in the arena, or a static
 * "" when empty), len its length (a Kafka string may hold a NUL byte; len
 * counts it); null is p == NULL, len == -1.  To encode: p == NULL is null
 * (an empty string where the field is not nullable); len < 0 means
 * strlen(p).  KK_STR("x") makes one from a C string. */
typedef struct kk_str {
    const char *p;
    int32_t len;
} kk_str;
#define KK_STR(s) ((kk_str){ (s), -1 })
#define KK_STR_NULL ((kk_str){ NULL, -1 })

/* Bytes.  Decoded: p points into the frame (never copied); null is
 * p == NULL, len == -1.  To encode: p == NULL is null (empty where the
 * field is not nullable). */
typedef struct kk_bytes {
    const uint8_t *p;
    int32_t len;
} kk_bytes;

/* Records: Kafka record batches, kept opaque (lib/format converts them).
 * Decoded like kk_bytes.  To encode, either p/len as kk_bytes, or, when
 * iovcnt > 0, the concatenation of iov[0..iovcnt) (p ignored), which the
 * encoder references instead of copying when the kk_wbuf allows it (a
 * fetch response served from mmapped segments without a copy). */
typedef struct kk_records {
    const uint8_t *p;
    int32_t len;
    int iovcnt;
    const struct iovec *iov;
} kk_records;

/* An array: v[0..n).  n == -1 is null (v NULL); n == 0 is empty.  Every
 * array type below has this layout, which the codec relies on. */
#define KK_ARRAY(T) struct { T *v; int32_t n; }
typedef KK_ARRAY(int32_t) kk_i32_array;
typedef KK_ARRAY(kk_str) kk_str_array;

/* ---- Produce (0), versions 0-7 ---------------------------------------------- */
typedef struct kk_produce_req_partition {
    int32_t index;
    kk_records records;                 /* nullable */
} kk_produce_req_partition;
typedef struct kk_produce_req_topic {
    kk_str name;
    KK_ARRAY(kk_produce_req_partition) partitions;
} kk_produce_req_topic;
typedef struct kk_produce_req {
    kk_str transactional_id;            /* v3+, nullable */
    int16_t acks;                       /* 0: the client wants no response */
    int32_t timeout_ms;
    KK_ARRAY(kk_produce_req_topic) topics;
} kk_produce_req;

typedef struct kk_produce_resp_partition {
    int32_t index;
    int16_t error_code;
    int64_t base_offset;
    int64_t log_append_time_ms;         /* v2+ [-1] */
    int64_t log_start_offset;           /* v5+ [-1] */
} kk_produce_resp_partition;
typedef struct kk_produce_resp_topic {
    kk_str name;
    KK_ARRAY(kk_produce_resp_partition) partitions;
} kk_produce_resp_topic;
typedef struct kk_produce_resp {
    KK_ARRAY(kk_produce_resp_topic) responses;
    int32_t throttle_time_ms;           /* v1+ */
} kk_produce_resp;

/* ---- Fetch (1), versions 4-11 ------------------------------------------------ */
typedef struct kk_fetch_req_partition {
    int32_t partition;
    int32_t current_leader_epoch;       /* v9+ [-1] */
    int64_t fetch_offset;
    int64_t log_start_offset;           /* v5+ [-1] */
    int32_t partition_max_bytes;
} kk_fetch_req_partition;
typedef struct kk_fetch_req_topic {
    kk_str topic;
    KK_ARRAY(kk_fetch_req_partition) partitions;
} kk_fetch_req_topic;
typedef struct kk_fetch_req_forgotten {
    kk_str topic;
    kk_i32_array partitions;
} kk_fetch_req_forgotten;
typedef struct kk_fetch_req {
    int32_t replica_id;                 /* -1 for consumers */
    int32_t max_wait_ms;
    int32_t min_bytes;
    int32_t max_bytes;                  /* v3+ [0x7fffffff] */
    int8_t isolation_level;             /* v4+ [0] 0 read_uncommitted, 1 read_committed */
    int32_t session_id;                 /* v7+ [0] */
    int32_t session_epoch;              /* v7+ [-1] */
    KK_ARRAY(kk_fetch_req_topic) topics;
    KK_ARRAY(kk_fetch_req_forgotten) forgotten_topics_data; /* v7+ */
    kk_str rack_id;                     /* v11+ */
} kk_fetch_req;

typedef struct kk_fetch_resp_aborted {
    int64_t producer_id;
    int64_t first_offset;
} kk_fetch_resp_aborted;
typedef struct kk_fetch_resp_partition {
    int32_t partition_index;
    int16_t error_code;
    int64_t high_watermark;
    int64_t last_stable_offset;         /* v4+ [-1] */
    int64_t log_start_offset;           /* v5+ [-1] */
    KK_ARRAY(kk_fetch_resp_aborted) aborted_transactions; /* v4+, nullable */
    int32_t preferred_read_replica;     /* v11+ [-1] */
    kk_records records;                 /* nullable (send empty, not null) */
} kk_fetch_resp_partition;
typedef struct kk_fetch_resp_topic {
    kk_str topic;
    KK_ARRAY(kk_fetch_resp_partition) partitions;
} kk_fetch_resp_topic;
typedef struct kk_fetch_resp {
    int32_t throttle_time_ms;           /* v1+ */
    int16_t error_code;                 /* v7+ */
    int32_t session_id;                 /* v7+ */
    KK_ARRAY(kk_fetch_resp_topic) responses;
} kk_fetch_resp;

/* ---- ListOffsets (2), versions 1-5 ------------------------------------------- */
typedef struct kk_list_offsets_req_partition {
    int32_t partition_index;
    int32_t current_leader_epoch;       /* v4+ [-1] */
    int64_t timestamp;                  /* -1 latest, -2 earliest, else ms */
} kk_list_offsets_req_partition;
typedef struct kk_list_offsets_req_topic {
    kk_str name;
    KK_ARRAY(kk_list_offsets_req_partition) partitions;
} kk_list_offsets_req_topic;
typedef struct kk_list_offsets_req {
    int32_t replica_id;
    int8_t isolation_level;             /* v2+ [0] */
    KK_ARRAY(kk_list_offsets_req_topic) topics;
} kk_list_offsets_req;

typedef struct kk_list_offsets_resp_partition {
    int32_t partition_index;
    int16_t error_code;
    int64_t timestamp;                  /* [-1] */
    int64_t offset;                     /* [-1] */
    int32_t leader_epoch;               /* v4+ [-1] */
} kk_list_offsets_resp_partition;
typedef struct kk_list_offsets_resp_topic {
    kk_str name;
    KK_ARRAY(kk_list_offsets_resp_partition) partitions;
} kk_list_offsets_resp_topic;
typedef struct kk_list_offsets_resp {
    int32_t throttle_time_ms;           /* v2+ */
    KK_ARRAY(kk_list_offsets_resp_topic) topics;
} kk_list_offsets_resp;

/* ---- Metadata (3), versions 0-5 ---------------------------------------------- */
typedef struct kk_metadata_req_topic {
    kk_str name;
} kk_metadata_req_topic;
typedef struct kk_metadata_req {
    /* nullable from v1: null = every topic; in v0 an empty array means
     * every topic (kafka-python's version probe sends that). */
    KK_ARRAY(kk_metadata_req_topic) topics;
    bool allow_auto_topic_creation;     /* v4+ [true] */
} kk_metadata_req;

typedef struct kk_metadata_resp_broker {
    int32_t node_id;
    kk_str host;
    int32_t port;
    kk_str rack;                        /* v1+, nullable */
} kk_metadata_resp_broker;
typedef struct kk_metadata_resp_partition {
    int16_t error_code;
    int32_t partition_index;
    int32_t leader_id;
    kk_i32_array replica_nodes;
    kk_i32_array isr_nodes;
    kk_i32_array offline_replicas;      /* v5+ */
} kk_metadata_resp_partition;
typedef struct kk_metadata_resp_topic {
    int16_t error_code;
    kk_str name;
    bool is_internal;                   /* v1+ */
    KK_ARRAY(kk_metadata_resp_partition) partitions;
} kk_metadata_resp_topic;
typedef struct kk_metadata_resp {
    int32_t throttle_time_ms;           /* v3+ */
    KK_ARRAY(kk_metadata_resp_broker) brokers;
    kk_str cluster_id;                  /* v2+, nullable */
    int32_t controller_id;              /* v1+ [-1] */
    KK_ARRAY(kk_metadata_resp_topic) topics;
} kk_metadata_resp;

/* ---- OffsetCommit (8), versions 2-7 ------------------------------------------ */
typedef struct kk_offset_commit_req_partition {
    int32_t partition_index;
    int64_t committed_offset;
    int32_t committed_leader_epoch;     /* v6+ [-1] */
    kk_str committed_metadata;          /* nullable */
} kk_offset_commit_req_partition;
typedef struct kk_offset_commit_req_topic {
    kk_str name;
    KK_ARRAY(kk_offset_commit_req_partition) partitions;
} kk_offset_commit_req_topic;
typedef struct kk_offset_commit_req {
    kk_str group_id;
    int32_t generation_id;              /* [-1] */
    kk_str member_id;
    kk_str group_instance_id;           /* v7+, nullable */
    int64_t retention_time_ms;          /* v2-4 [-1] */
    KK_ARRAY(kk_offset_commit_req_topic) topics;
} kk_offset_commit_req;

typedef struct kk_offset_commit_resp_partition {
    int32_t partition_index;
    int16_t error_code;
} kk_offset_commit_resp_partition;
typedef struct kk_offset_commit_resp_topic {
    kk_str name;
    KK_ARRAY(kk_offset_commit_resp_partition) partitions;
} kk_offset_commit_resp_topic;
typedef struct kk_offset_commit_resp {
    int32_t throttle_time_ms;           /* v3+ */
    KK_ARRAY(kk_offset_commit_resp_topic) topics;
} kk_offset_commit_resp;

/* ---- OffsetFetch (9), versions 1-5 ------------------------------------------- */
typedef struct kk_offset_fetch_req_topic {
    kk_str name;
    kk_i32_array partition_indexes;
} kk_offset_fetch_req_topic;
typedef struct kk_offset_fetch_req {
    kk_str group_id;
    KK_ARRAY(kk_offset_fetch_req_topic) topics; /* nullable from v2: null = all */
} kk_offset_fetch_req;

typedef struct kk_offset_fetch_resp_partition {
    int32_t partition_index;
    int64_t committed_offset;
    int32_t committed_leader_epoch;     /* v5+ [-1] */
    kk_str metadata;                    /* nullable */
    int16_t error_code;
} kk_offset_fetch_resp_partition;
typedef struct kk_offset_fetch_resp_topic {
    kk_str name;
    KK_ARRAY(kk_offset_fetch_resp_partition) partitions;
} kk_offset_fetch_resp_topic;
typedef struct kk_offset_fetch_resp {
    int32_t throttle_time_ms;           /* v3+ */
    KK_ARRAY(kk_offset_fetch_resp_topic) topics;
    int16_t error_code;                 /* v2+ */
} kk_offset_fetch_resp;

/* ---- FindCoordinator (10), versions 0-2 -------------------------------------- */
typedef struct kk_find_coordinator_req {
    kk_str key;
    int8_t key_type;                    /* v1+ [0] 0 group, 1 transaction */
} kk_find_coordinator_req;
typedef struct kk_find_coordinator_resp {
    int32_t throttle_time_ms;           /* v1+ */
    int16_t error_code;
    kk_str error_message;               /* v1+, nullable */
    int32_t node_id;
    kk_str host;
    int32_t port;
} kk_find_coordinator_resp;

/* ---- JoinGroup (11), versions 0-5 -------------------------------------------- */
typedef struct kk_join_group_req_protocol {
    kk_str name;
    kk_bytes metadata;
} kk_join_group_req_protocol;
typedef struct kk_join_group_req {
    kk_str group_id;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;       /* v1+ [-1] */
    kk_str member_id;
    kk_str group_instance_id;           /* v5+, nullable */
    kk_str protocol_type;
    KK_ARRAY(kk_join_group_req_protocol) protocols;
} kk_join_group_req;

typedef struct kk_join_group_resp_member {
    kk_str member_id;
    kk_str group_instance_id;           /* v5+, nullable */
    kk_bytes metadata;
} kk_join_group_resp_member;
typedef struct kk_join_group_resp {
    int32_t throttle_time_ms;           /* v2+ */
    int16_t error_code;
    int32_t generation_id;
    kk_str protocol_name;
    kk_str leader;
    kk_str member_id;
    KK_ARRAY(kk_join_group_resp_member) members;
} kk_join_group_resp;

/* ---- Heartbeat (12), versions 0-3 -------------------------------------------- */
typedef struct kk_heartbeat_req {
    kk_str group_id;
    int32_t generation_id;
    kk_str member_id;
    kk_str group_instance_id;           /* v3+, nullable */
} kk_heartbeat_req;
typedef struct kk_heartbeat_resp {
    int32_t throttle_time_ms;           /* v1+ */
    int16_t error_code;
} kk_heartbeat_resp;

/* ---- LeaveGroup (13), versions 0-1 ------------------------------------------- */
typedef struct kk_leave_group_req {
    kk_str group_id;
    kk_str member_id;
} kk_leave_group_req;
typedef struct kk_leave_group_resp {
    int32_t throttle_time_ms;           /* v1+ */
    int16_t error_code;
} kk_leave_group_resp;

/* ---- SyncGroup (14), versions 0-3 -------------------------------------------- */
typedef struct kk_sync_group_req_assignment {
    kk_str member_id;
    kk_bytes assignment;
} kk_sync_group_req_assignment;
typedef struct kk_sync_group_req {
    kk_str group_id;
    int32_t generation_id;
    kk_str member_id;
    kk_str group_instance_id;           /* v3+, nullable */
    KK_ARRAY(kk_sync_group_req_assignment) assignments;
} kk_sync_group_req;
typedef struct kk_sync_group_resp {
    int32_t throttle_time_ms;           /* v1+ */
    int16_t error_code;
    kk_bytes assignment;
} kk_sync_group_resp;

/* ---- DescribeGroups (15), versions 0-4 --------------------------------------- */
typedef struct kk_describe_groups_req {
    kk_str_array groups;
    bool include_authorized_operations; /* v3+ [false] */
} kk_describe_groups_req;
typedef struct kk_describe_groups_resp_member {
    kk_str member_id;
    kk_str group_instance_id;           /* v4+, nullable */
    kk_str client_id;
    kk_str client_host;
    kk_bytes member_metadata;
    kk_bytes member_assignment;
} kk_describe_groups_resp_member;
typedef struct kk_describe_groups_resp_group {
    int16_t error_code;
    kk_str group_id;
    kk_str group_state;
    kk_str protocol_type;
    kk_str protocol_data;
    KK_ARRAY(kk_describe_groups_resp_member) members;
    int32_t authorized_operations;      /* v3+ [INT32_MIN] */
} kk_describe_groups_resp_group;
typedef struct kk_describe_groups_resp {
    int32_t throttle_time_ms;           /* v1+ */
    KK_ARRAY(kk_describe_groups_resp_group) groups;
} kk_describe_groups_resp;

/* ---- ListGroups (16), versions 0-2 ------------------------------------------- */
typedef struct kk_list_groups_req {
    char unused_;                       /* no fields in versions 0-2 */
} kk_list_groups_req;
typedef struct kk_list_groups_resp_group {
    kk_str group_id;
    kk_str protocol_type;
} kk_list_groups_resp_group;
typedef struct kk_list_groups_resp {
    int32_t throttle_time_ms;           /* v1+ */
    int16_t error_code;
    KK_ARRAY(kk_list_groups_resp_group) groups;
} kk_list_groups_resp;

/* ---- SaslHandshake (17), versions 0-1 ---------------------------------------- */
typedef struct kk_sasl_handshake_req {
    kk_str mechanism;
} kk_sasl_handshake_req;
typedef struct kk_sasl_handshake_resp {
    int16_t error_code;
    kk_str_array mechanisms;
} kk_sasl_handshake_resp;

/* ---- ApiVersions (18), versions 0-3 (v3 flexible) ---------------------------- */
typedef struct kk_api_versions_req {
    kk_str client_software_name;        /* v3+ */
    kk_str client_software_version;     /* v3+ */
} kk_api_versions_req;
typedef struct kk_api_versions_resp_key {
    int16_t api_key;
    int16_t min_version;
    int16_t max_version;
} kk_api_versions_resp_key;
typedef struct kk_api_versions_resp {
    int16_t error_code;
    KK_ARRAY(kk_api_versions_resp_key) api_keys;
    int32_t throttle_time_ms;           /* v1+ */
} kk_api_versions_resp;

/* ---- CreateTopics (19), versions 0-4 ----------------------------------------- */
typedef struct kk_create_topics_req_assignment {
    int32_t partition_index;
    kk_i32_array broker_ids;
} kk_create_topics_req_assignment;
typedef struct kk_create_topics_req_config {
    kk_str name;
    kk_str value;                       /* nullable */
} kk_create_topics_req_config;
typedef struct kk_create_topics_req_topic {
    kk_str name;
    int32_t num_partitions;             /* -1: the broker's default (v4+ clients) */
    int16_t replication_factor;         /* -1: the broker's default */
    KK_ARRAY(kk_create_topics_req_assignment) assignments;
    KK_ARRAY(kk_create_topics_req_config) configs;
} kk_create_topics_req_topic;
typedef struct kk_create_topics_req {
    KK_ARRAY(kk_create_topics_req_topic) topics;
    int32_t timeout_ms;
    bool validate_only;                 /* v1+ [false] */
} kk_create_topics_req;

typedef struct kk_create_topics_resp_topic {
    kk_str name;
    int16_t error_code;
    kk_str error_message;               /* v1+, nullable */
} kk_create_topics_resp_topic;
typedef struct kk_create_topics_resp {
    int32_t throttle_time_ms;           /* v2+ */
    KK_ARRAY(kk_create_topics_resp_topic) topics;
} kk_create_topics_resp;

/* ---- DeleteTopics (20), versions 0-3 ----------------------------------------- */
typedef struct kk_delete_topics_req {
    kk_str_array topic_names;
    int32_t timeout_ms;
} kk_delete_topics_req;
typedef struct kk_delete_topics_resp_topic {
    kk_str name;
    int16_t error_code;
} kk_delete_topics_resp_topic;
typedef struct kk_delete_topics_resp {
    int32_t throttle_time_ms;           /* v1+ */
    KK_ARRAY(kk_delete_topics_resp_topic) responses;
} kk_delete_topics_resp;

/* ---- DeleteRecords (21), versions 0-1 ---------------------------------------- */
typedef struct kk_delete_records_req_partition {
    int32_t partition_index;
    int64_t offset;                     /* delete below; -1 = the high watermark */
} kk_delete_records_req_partition;
typedef struct kk_delete_records_req_topic {
    kk_str name;
    KK_ARRAY(kk_delete_records_req_partition) partitions;
} kk_delete_records_req_topic;
typedef struct kk_delete_records_req {
    KK_ARRAY(kk_delete_records_req_topic) topics;
    int32_t timeout_ms;
} kk_delete_records_req;

typedef struct kk_delete_records_resp_partition {
    int32_t partition_index;
    int64_t low_watermark;
    int16_t error_code;
} kk_delete_records_resp_partition;
typedef struct kk_delete_records_resp_topic {
    kk_str name;
    KK_ARRAY(kk_delete_records_resp_partition) partitions;
} kk_delete_records_resp_topic;
typedef struct kk_delete_records_resp {
    int32_t throttle_time_ms;
    KK_ARRAY(kk_delete_records_resp_topic) topics;
} kk_delete_records_resp;

/* ---- InitProducerId (22), versions 0-1 --------------------------------------- */
typedef struct kk_init_producer_id_req {
    kk_str transactional_id;            /* nullable */
    int32_t transaction_timeout_ms;
} kk_init_producer_id_req;
typedef struct kk_init_producer_id_resp {
    int32_t throttle_time_ms;
    int16_t error_code;
    int64_t producer_id;
    int16_t producer_epoch;
} kk_init_producer_id_resp;

/* ---- DescribeAcls (29), versions 0-1 ----------------------------------------- */
/* Codes: resource type 1 any, 2 topic, 3 group, 4 cluster; pattern type
 * 1 any, 2 match, 3 literal, 4 prefixed; operation 1 any, 2 all, 3 read,
 * ... 12 idempotent write; permission 1 any, 2 deny, 3 allow. */
typedef struct kk_describe_acls_req {
    int8_t resource_type_filter;
    kk_str resource_name_filter;        /* nullable */
    int8_t pattern_type_filter;         /* v1+ [3] */
    kk_str principal_filter;            /* nullable */
    kk_str host_filter;                 /* nullable */
    int8_t operation;
    int8_t permission_type;
} kk_describe_acls_req;
typedef struct kk_acl_description {
    kk_str principal;
    kk_str host;
    int8_t operation;
    int8_t permission_type;
} kk_acl_description;
typedef struct kk_describe_acls_resp_resource {
    int8_t resource_type;
    kk_str resource_name;
    int8_t pattern_type;                /* v1+ [3] */
    KK_ARRAY(kk_acl_description) acls;
} kk_describe_acls_resp_resource;
typedef struct kk_describe_acls_resp {
    int32_t throttle_time_ms;
    int16_t error_code;
    kk_str error_message;               /* nullable */
    KK_ARRAY(kk_describe_acls_resp_resource) resources;
} kk_describe_acls_resp;

/* ---- CreateAcls (30), versions 0-1 ------------------------------------------- */
typedef struct kk_create_acls_req_creation {
    int8_t resource_type;
    kk_str resource_name;
    int8_t resource_pattern_type;       /* v1+ [3] */
    kk_str principal;
    kk_str host;
    int8_t operation;
    int8_t permission_type;
} kk_create_acls_req_creation;
typedef struct kk_create_acls_req {
    KK_ARRAY(kk_create_acls_req_creation) creations;
} kk_create_acls_req;
typedef struct kk_create_acls_resp_result {
    int16_t error_code;
    kk_str error_message;               /* nullable */
} kk_create_acls_resp_result;
typedef struct kk_create_acls_resp {
    int32_t throttle_time_ms;
    KK_ARRAY(kk_create_acls_resp_result) results;
} kk_create_acls_resp;

/* ---- DeleteAcls (31), versions 0-1 ------------------------------------------- */
typedef struct kk_delete_acls_req_filter {
    int8_t resource_type_filter;
    kk_str resource_name_filter;        /* nullable */
    int8_t pattern_type_filter;         /* v1+ [3] */
    kk_str principal_filter;            /* nullable */
    kk_str host_filter;                 /* nullable */
    int8_t operation;
    int8_t permission_type;
} kk_delete_acls_req_filter;
typedef struct kk_delete_acls_req {
    KK_ARRAY(kk_delete_acls_req_filter) filters;
} kk_delete_acls_req;
typedef struct kk_delete_acls_resp_match {
    int16_t error_code;
    kk_str error_message;               /* nullable */
    int8_t resource_type;
    kk_str resource_name;
    int8_t pattern_type;                /* v1+ [3] */
    kk_str principal;
    kk_str host;
    int8_t operation;
    int8_t permission_type;
} kk_delete_acls_resp_match;
typedef struct kk_delete_acls_resp_result {
    int16_t error_code;
    kk_str error_message;               /* nullable */
    KK_ARRAY(kk_delete_acls_resp_match) matching_acls;
} kk_delete_acls_resp_result;
typedef struct kk_delete_acls_resp {
    int32_t throttle_time_ms;
    KK_ARRAY(kk_delete_acls_resp_result) filter_results;
} kk_delete_acls_resp;

/* ---- DescribeConfigs (32), versions 0-2 -------------------------------------- */
typedef struct kk_describe_configs_req_resource {
    int8_t resource_type;               /* 2 topic, 4 broker */
    kk_str resource_name;
    kk_str_array configuration_keys;    /* nullable: null = all */
} kk_describe_configs_req_resource;
typedef struct kk_describe_configs_req {
    KK_ARRAY(kk_describe_configs_req_resource) resources;
    bool include_synonyms;              /* v1+ [false] */
} kk_describe_configs_req;

typedef struct kk_describe_configs_resp_synonym {
    kk_str name;
    kk_str value;                       /* nullable */
    int8_t source;
} kk_describe_configs_resp_synonym;
typedef struct kk_describe_configs_resp_config {
    kk_str name;
    kk_str value;                       /* nullable */
    bool read_only;
    bool is_default;                    /* v0 only */
    int8_t config_source;               /* v1+ [-1] */
    bool is_sensitive;
    KK_ARRAY(kk_describe_configs_resp_synonym) synonyms; /* v1+ */
} kk_describe_configs_resp_config;
typedef struct kk_describe_configs_resp_result {
    int16_t error_code;
    kk_str error_message;               /* nullable */
    int8_t resource_type;
    kk_str resource_name;
    KK_ARRAY(kk_describe_configs_resp_config) configs;
} kk_describe_configs_resp_result;
typedef struct kk_describe_configs_resp {
    int32_t throttle_time_ms;
    KK_ARRAY(kk_describe_configs_resp_result) results;
} kk_describe_configs_resp;

/* ---- AlterConfigs (33), versions 0-1, and IncrementalAlterConfigs (44),
 * version 0: the same request (config_operation in the incremental one
 * only: 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT) and the same response ---- */
typedef struct kk_alter_configs_req_config {
    kk_str name;
    int8_t config_operation;            /* IncrementalAlterConfigs only */
    kk_str value;                       /* nullable */
} kk_alter_configs_req_config;
typedef struct kk_alter_configs_req_resource {
    int8_t resource_type;               /* 2 topic, 4 broker */
    kk_str resource_name;
    KK_ARRAY(kk_alter_configs_req_config) configs;
} kk_alter_configs_req_resource;
typedef struct kk_alter_configs_req {
    KK_ARRAY(kk_alter_configs_req_resource) resources;
    bool validate_only;
} kk_alter_configs_req;
typedef kk_alter_configs_req kk_incremental_alter_configs_req;

typedef struct kk_alter_configs_resp_result {
    int16_t error_code;
    kk_str error_message;               /* nullable */
    int8_t resource_type;
    kk_str resource_name;
} kk_alter_configs_resp_result;
typedef struct kk_alter_configs_resp {
    int32_t throttle_time_ms;
    KK_ARRAY(kk_alter_configs_resp_result) responses;
} kk_alter_configs_resp;
typedef kk_alter_configs_resp kk_incremental_alter_configs_resp;

/* ---- SaslAuthenticate (36), versions 0-1 ------------------------------------- */
typedef struct kk_sasl_authenticate_req {
    kk_bytes auth_bytes;
} kk_sasl_authenticate_req;
typedef struct kk_sasl_authenticate_resp {
    int16_t error_code;
    kk_str error_message;               /* nullable */
    kk_bytes auth_bytes;
    int64_t session_lifetime_ms;        /* v1+ [0] */
} kk_sasl_authenticate_resp;

/* ---- CreatePartitions (37), versions 0-1 ------------------------------------- */
typedef struct kk_create_partitions_req_assignment {
    kk_i32_array broker_ids;
} kk_create_partitions_req_assignment;
typedef struct kk_create_partitions_req_topic {
    kk_str name;
    int32_t count;                      /* the new total */
    KK_ARRAY(kk_create_partitions_req_assignment) assignments; /* nullable */
} kk_create_partitions_req_topic;
typedef struct kk_create_partitions_req {
    KK_ARRAY(kk_create_partitions_req_topic) topics;
    int32_t timeout_ms;
    bool validate_only;
} kk_create_partitions_req;

typedef struct kk_create_partitions_resp_result {
    kk_str name;
    int16_t error_code;
    kk_str error_message;               /* nullable */
} kk_create_partitions_resp_result;
typedef struct kk_create_partitions_resp {
    int32_t throttle_time_ms;
    KK_ARRAY(kk_create_partitions_resp_result) results;
} kk_create_partitions_resp;

/* ---- DeleteGroups (42), versions 0-1 ----------------------------------------- */
typedef struct kk_delete_groups_req {
    kk_str_array groups_names;
} kk_delete_groups_req;
typedef struct kk_delete_groups_resp_result {
    kk_str group_id;
    int16_t error_code;
} kk_delete_groups_resp_result;
typedef struct kk_delete_groups_resp {
    int32_t throttle_time_ms;
    KK_ARRAY(kk_delete_groups_resp_result) results;
} kk_delete_groups_resp;

/* ---- LeaderAndIsr (4), versions 0-2: controller -> replica (peers only) ------ */
typedef struct kk_leader_and_isr_partition {
    kk_str topic_name;                  /* v0-1 (v2+: in the topic state) */
    int32_t partition_index;
    int32_t controller_epoch;
    int32_t leader;
    int32_t leader_epoch;
    kk_i32_array isr;
    int32_t partition_epoch;            /* Kafka's ZkVersion */
    kk_i32_array replicas;
    bool is_new;                        /* v1+ [false] */
} kk_leader_and_isr_partition;
typedef struct kk_leader_and_isr_topic {
    kk_str topic_name;
    KK_ARRAY(kk_leader_and_isr_partition) partition_states;
} kk_leader_and_isr_topic;
typedef struct kk_leader_and_isr_live_leader {
    int32_t broker_id;
    kk_str host_name;
    int32_t port;
} kk_leader_and_isr_live_leader;
typedef struct kk_leader_and_isr_req {
    int32_t controller_id;
    int32_t controller_epoch;
    int64_t broker_epoch;               /* v2 [-1]: the receiver's, as the controller knows it */
    KK_ARRAY(kk_leader_and_isr_partition) ungrouped_partition_states; /* v0-1 */
    KK_ARRAY(kk_leader_and_isr_topic) topic_states;                   /* v2+ */
    KK_ARRAY(kk_leader_and_isr_live_leader) live_leaders;
} kk_leader_and_isr_req;

typedef struct kk_leader_and_isr_resp_partition {
    kk_str topic_name;
    int32_t partition_index;
    int16_t error_code;
} kk_leader_and_isr_resp_partition;
typedef struct kk_leader_and_isr_resp {
    int16_t error_code;
    KK_ARRAY(kk_leader_and_isr_resp_partition) partition_errors;
} kk_leader_and_isr_resp;

/* ---- OffsetForLeaderEpoch (23), versions 0-3 --------------------------------- */
typedef struct kk_offset_for_leader_epoch_req_partition {
    int32_t partition;
    int32_t current_leader_epoch;       /* v2+ [-1] */
    int32_t leader_epoch;               /* the epoch to find the end of */
} kk_offset_for_leader_epoch_req_partition;
typedef struct kk_offset_for_leader_epoch_req_topic {
    kk_str topic;
    KK_ARRAY(kk_offset_for_leader_epoch_req_partition) partitions;
} kk_offset_for_leader_epoch_req_topic;
typedef struct kk_offset_for_leader_epoch_req {
    int32_t replica_id;                 /* v3+ [-2]: a follower's id, -1 a consumer */
    KK_ARRAY(kk_offset_for_leader_epoch_req_topic) topics;
} kk_offset_for_leader_epoch_req;

typedef struct kk_offset_for_leader_epoch_resp_partition {
    int16_t error_code;
    int32_t partition;
    int32_t leader_epoch;               /* v1+ [-1] */
    int64_t end_offset;
} kk_offset_for_leader_epoch_resp_partition;
typedef struct kk_offset_for_leader_epoch_resp_topic {
    kk_str topic;
    KK_ARRAY(kk_offset_for_leader_epoch_resp_partition) partitions;
} kk_offset_for_leader_epoch_resp_topic;
typedef struct kk_offset_for_leader_epoch_resp {
    int32_t throttle_time_ms;           /* v2+ */
    KK_ARRAY(kk_offset_for_leader_epoch_resp_topic) topics;
} kk_offset_for_leader_epoch_resp;

/* ---- AlterPartition (56), version 0 (flexible; Kafka 2.7's AlterIsr):
 * a partition's leader -> the controller (peers only) ------------------------- */
typedef struct kk_alter_partition_req_partition {
    int32_t partition_index;
    int32_t leader_epoch;
    kk_i32_array new_isr;
    int32_t partition_epoch;            /* the state the proposal is based on */
} kk_alter_partition_req_partition;
typedef struct kk_alter_partition_req_topic {
    kk_str name;
    KK_ARRAY(kk_alter_partition_req_partition) partitions;
} kk_alter_partition_req_topic;
typedef struct kk_alter_partition_req {
    int32_t broker_id;
    int64_t broker_epoch;               /* [-1] */
    KK_ARRAY(kk_alter_partition_req_topic) topics;
} kk_alter_partition_req;

typedef struct kk_alter_partition_resp_partition {
    int32_t partition_index;
    int16_t error_code;
    int32_t leader_id;
    int32_t leader_epoch;
    kk_i32_array isr;
    int32_t partition_epoch;
} kk_alter_partition_resp_partition;
typedef struct kk_alter_partition_resp_topic {
    kk_str name;
    KK_ARRAY(kk_alter_partition_resp_partition) partitions;
} kk_alter_partition_resp_topic;
typedef struct kk_alter_partition_resp {
    int32_t throttle_time_ms;
    int16_t error_code;
    KK_ARRAY(kk_alter_partition_resp_topic) topics;
} kk_alter_partition_resp;

/* ---- ElectLeaders (43), versions 0-1: `klog promote` asks a node to lead -------- */
typedef struct kk_elect_leaders_req_topic {
    kk_str topic;
    kk_i32_array partitions;
} kk_elect_leaders_req_topic;
typedef struct kk_elect_leaders_req {
    int8_t election_type;               /* v1+ [0]: 0 preferred (clean), 1 unclean */
    KK_ARRAY(kk_elect_leaders_req_topic) topic_partitions; /* nullable: null = all */
    int32_t timeout_ms;
} kk_elect_leaders_req;

typedef struct kk_elect_leaders_resp_partition {
    int32_t partition_id;
    int16_t error_code;
    kk_str error_message;               /* nullable */
} kk_elect_leaders_resp_partition;
typedef struct kk_elect_leaders_resp_topic {
    kk_str topic;
    KK_ARRAY(kk_elect_leaders_resp_partition) partition_result;
} kk_elect_leaders_resp_topic;
typedef struct kk_elect_leaders_resp {
    int32_t throttle_time_ms;
    int16_t error_code;                 /* v1+ */
    KK_ARRAY(kk_elect_leaders_resp_topic) replica_election_results;
} kk_elect_leaders_resp;

/* ---- The consumer protocol (inside JoinGroup/SyncGroup bytes), versions 0-3 -- */
/* Not requests: a leading int16 version, then the body (see
 * kk_consumer_protocol_decode in kafka.h). */
typedef struct kk_consumer_topic_partitions {
    kk_str topic;
    kk_i32_array partitions;
} kk_consumer_topic_partitions;
typedef struct kk_consumer_subscription {
    kk_str_array topics;
    kk_bytes user_data;                 /* nullable */
    KK_ARRAY(kk_consumer_topic_partitions) owned_partitions; /* v1+ */
    int32_t generation_id;              /* v2+ [-1] */
    kk_str rack_id;                     /* v3+, nullable */
} kk_consumer_subscription;
typedef struct kk_consumer_assignment {
    KK_ARRAY(kk_consumer_topic_partitions) assigned_partitions;
    kk_bytes user_data;                 /* nullable */
} kk_consumer_assignment;

/* ---- Every request and response body, for kk_request / kk_response ------------ */
typedef union kk_req_body {
    kk_produce_req produce;
    kk_fetch_req fetch;
    kk_list_offsets_req list_offsets;
    kk_metadata_req metadata;
    kk_offset_commit_req offset_commit;
    kk_offset_fetch_req offset_fetch;
    kk_find_coordinator_req find_coordinator;
    kk_join_group_req join_group;
    kk_heartbeat_req heartbeat;
    kk_leave_group_req leave_group;
    kk_sync_group_req sync_group;
    kk_describe_groups_req describe_groups;
    kk_list_groups_req list_groups;
    kk_sasl_handshake_req sasl_handshake;
    kk_api_versions_req api_versions;
    kk_create_topics_req create_topics;
    kk_delete_topics_req delete_topics;
    kk_delete_records_req delete_records;
    kk_init_producer_id_req init_producer_id;
    kk_describe_acls_req describe_acls;
    kk_create_acls_req create_acls;
    kk_delete_acls_req delete_acls;
    kk_describe_configs_req describe_configs;
    kk_alter_configs_req alter_configs;
    kk_incremental_alter_configs_req incremental_alter_configs;
    kk_sasl_authenticate_req sasl_authenticate;
    kk_create_partitions_req create_partitions;
    kk_delete_groups_req delete_groups;
    kk_leader_and_isr_req leader_and_isr;
    kk_offset_for_leader_epoch_req offset_for_leader_epoch;
    kk_alter_partition_req alter_partition;
    kk_elect_leaders_req elect_leaders;
} kk_req_body;

typedef union kk_resp_body {
    kk_produce_resp produce;
    kk_fetch_resp fetch;
    kk_list_offsets_resp list_offsets;
    kk_metadata_resp metadata;
    kk_offset_commit_resp offset_commit;
    kk_offset_fetch_resp offset_fetch;
    kk_find_coordinator_resp find_coordinator;
    kk_join_group_resp join_group;
    kk_heartbeat_resp heartbeat;
    kk_leave_group_resp leave_group;
    kk_sync_group_resp sync_group;
    kk_describe_groups_resp describe_groups;
    kk_list_groups_resp list_groups;
    kk_sasl_handshake_resp sasl_handshake;
    kk_api_versions_resp api_versions;
    kk_create_topics_resp create_topics;
    kk_delete_topics_resp delete_topics;
    kk_delete_records_resp delete_records;
    kk_init_producer_id_resp init_producer_id;
    kk_describe_acls_resp describe_acls;
    kk_create_acls_resp create_acls;
    kk_delete_acls_resp delete_acls;
    kk_describe_configs_resp describe_configs;
    kk_alter_configs_resp alter_configs;
    kk_incremental_alter_configs_resp incremental_alter_configs;
    kk_sasl_authenticate_resp sasl_authenticate;
    kk_create_partitions_resp create_partitions;
    kk_delete_groups_resp delete_groups;
    kk_leader_and_isr_resp leader_and_isr;
    kk_offset_for_leader_epoch_resp offset_for_leader_epoch;
    kk_alter_partition_resp alter_partition;
    kk_elect_leaders_resp elect_leaders;
} kk_resp_body;

#endif /* KLOG_KAFKA_MSG_H */
