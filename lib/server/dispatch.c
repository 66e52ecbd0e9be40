/*
 * lib/server/dispatch.c - which handler serves which API key, what
 * ApiVersions advertises (exactly what is handled, from kk_api's one
 * table), and the ApiVersions handler itself.
 */
#include <stddef.h>

#include "common/common.h"
#include "server/internal.h"

static const ksrv_handler handlers[] = {
    [KK_API_PRODUCE] = ksrv_produce,
    [KK_API_FETCH] = ksrv_fetch,
    [KK_API_LIST_OFFSETS] = ksrv_list_offsets,
    [KK_API_METADATA] = ksrv_metadata,
    [KK_API_OFFSET_COMMIT] = ksrv_offset_commit,
    [KK_API_OFFSET_FETCH] = ksrv_offset_fetch,
    [KK_API_FIND_COORDINATOR] = ksrv_find_coordinator,
    [KK_API_JOIN_GROUP] = ksrv_join_group,
    [KK_API_HEARTBEAT] = ksrv_heartbeat,
    [KK_API_LEAVE_GROUP] = ksrv_leave_group,
    [KK_API_SYNC_GROUP] = ksrv_sync_group,
    [KK_API_DESCRIBE_GROUPS] = ksrv_describe_groups,
    [KK_API_LIST_GROUPS] = ksrv_list_groups,
    [KK_API_API_VERSIONS] = ksrv_api_versions,
    [KK_API_CREATE_TOPICS] = ksrv_create_topics,
    [KK_API_DELETE_TOPICS] = ksrv_delete_topics,
    [KK_API_DELETE_RECORDS] = ksrv_delete_records,
    [KK_API_INIT_PRODUCER_ID] = ksrv_init_producer_id,
    [KK_API_DESCRIBE_ACLS] = ksrv_describe_acls,
    [KK_API_CREATE_ACLS] = ksrv_create_acls,
    [KK_API_DELETE_ACLS] = ksrv_delete_acls,
    [KK_API_DESCRIBE_CONFIGS] = ksrv_describe_configs,
    [KK_API_ALTER_CONFIGS] = ksrv_alter_configs,
    [KK_API_INCREMENTAL_ALTER_CONFIGS] = ksrv_incremental_alter_configs,
    [KK_API_SASL_HANDSHAKE] = ksrv_sasl_handshake,
    [KK_API_SASL_AUTHENTICATE] = ksrv_sasl_authenticate,
    [KK_API_CREATE_PARTITIONS] = ksrv_create_partitions,
    [KK_API_DELETE_GROUPS] = ksrv_delete_groups,
    [KK_API_LEADER_AND_ISR] = ksrv_leader_and_isr,
    [KK_API_OFFSET_FOR_LEADER_EPOCH] = ksrv_offset_for_leader_epoch,
    [KK_API_ELECT_LEADERS] = ksrv_elect_leaders,
    [KK_API_ALTER_PARTITION] = ksrv_alter_partition,
};

ksrv_handler ksrv_handler_for(int16_t key)
{
    if (key < 0 || (size_t)key >= KLOG_ARRAY_LEN(handlers))
        return NULL;
    return handlers[key];
}

bool ksrv_advertised(const struct klog_server *s, int16_t key)
{
    /* SASL (SaslHandshake, SaslAuthenticate) only with SASL on (a client
     * that sees them may think it has to authenticate); what only
     * replicas send, with replication */
    if ((key == KK_API_LEADER_AND_ISR || key == KK_API_ALTER_PARTITION || key == KK_API_ELECT_LEADERS) &&
        !ksrv_replicated(s))
        return false;
    if ((key == KK_API_SASL_HANDSHAKE || key == KK_API_SASL_AUTHENTICATE) && !ksrv_sec_sasl(ksrv_sec_of(s)))
        return false;
    return ksrv_handler_for(key) != NULL && kk_api_find(key) != NULL;
}

int ksrv_api_versions(ksrv_call *c)
{
    kk_api_versions_resp_key all[64], keys[64];
    int n = kk_api_versions_list(all, (int)KLOG_ARRAY_LEN(all)), m = 0;
    for (int i = 0; i < n && i < (int)KLOG_ARRAY_LEN(all); i++)
        if (ksrv_advertised(c->srv, all[i].api_key))
            keys[m++] = all[i];
    kk_api_versions_resp r = { .error_code = KK_ERR_NONE };
    r.api_keys.v = keys;
    r.api_keys.n = m;
    int16_t v = c->req.hdr.api_version;
    if (kk_api_check(KK_API_API_VERSIONS, v) < 0) {
        /* As Kafka: version 0, UNSUPPORTED_VERSION and the list, so that
         * the client retries with a version both know. */
        r.error_code = KK_ERR_UNSUPPORTED_VERSION;
        c->req.hdr.api_version = 0;
    }
    return ksrv_respond(c, &r);
}
