/*
 * lib/server/stubs.c - TEMPORARY: weak stand-ins for the group and topic
 * admin handlers (groups.c, admin.c) until they land; each answers that
 * the request cannot be served.  Removed with them.
 */
#include "server/internal.h"

#define CLOSE_(fn) \
    __attribute__((weak)) int fn(ksrv_call *c) \
    { \
        ksrv_log(c->srv, "%s is not served yet", c->req.api ? c->req.api->name : "?"); \
        return KLOG_EFORMAT; \
    }
CLOSE_(ksrv_find_coordinator)
CLOSE_(ksrv_join_group)
CLOSE_(ksrv_sync_group)
CLOSE_(ksrv_heartbeat)
CLOSE_(ksrv_leave_group)
CLOSE_(ksrv_offset_commit)
CLOSE_(ksrv_offset_fetch)
CLOSE_(ksrv_describe_groups)
CLOSE_(ksrv_list_groups)
CLOSE_(ksrv_delete_groups)
CLOSE_(ksrv_create_topics)
CLOSE_(ksrv_delete_topics)
CLOSE_(ksrv_create_partitions)
CLOSE_(ksrv_describe_configs)

__attribute__((weak)) int ksrv_groups_new(struct klog_server *s, ksrv_groups **out)
{
    (void)s;
    *out = NULL;
    return 0;
}
__attribute__((weak)) void ksrv_groups_stop(ksrv_groups *g) { (void)g; }
__attribute__((weak)) void ksrv_groups_free(ksrv_groups *g) { (void)g; }
