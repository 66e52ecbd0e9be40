/*
 * lib/compose.c - what a klog instance is made of: the modules klog_open
 * runs, in order, and the configuration key tables klog_conf knows.  This
 * is the only file that sees every subsystem; lib/topic, which runs the
 * modules, and lib/common, which runs the tables, know none of them.
 *
 * Adding a subsystem:
 *   - with a lifecycle (threads, per-instance state, topic events): define
 *     a kt_module (lib/topic/topic.h says when each op runs) and list it
 *     below where its dependencies put it.  init runs in this order before
 *     the topics load, start in this order after; stop and fini run in
 *     reverse.  So a module starts after those it uses and stops before
 *     them.  Replication goes after "background" and before "groups":
 *     started with the partitions open, stopped after the groups (whose
 *     commits it replicates).  Its state is klog__module_state(k, &module).
 *   - with configuration keys: lib/<subsystem>/conf_keys.{h,c} (an enum
 *     from KC_KEY_BASE(its id), a table), an id in lib/compose.h, and the
 *     table below at that id.  Nothing in lib/common changes.
 */
#include <klog/klog.h>

#include "common/common.h"
#include "compose.h"
#include "consumer/conf_keys.h"
#include "group/group.h"
#include "producer/conf_keys.h"
#include "replication/conf_keys.h"
#include "replication/module.h"
#include "server/conf_keys.h"
#include "storage/conf_keys.h"
#include "topic/topic.h"
#include "transport/conf_keys.h"

static const kt_module *const modules[] = {
    &klog__maint_module,      /* disk budget (before any log opens), retention, cleaner threads */
    &klog__background_module, /* interval syncs, rolls by age, prefills, retention and stats ticks */
    &krep_module,             /* replication to peer processes (replication.peers set) */
    &kg_groups_module,        /* consumer group coordinators, committed offsets */
};

KLOG_API int klog_open(klog **out, const char *dir, const klog_conf *conf, char *errbuf, size_t errsize)
{
    return klog__open(out, dir, conf, modules, KLOG_ARRAY_LEN(modules), errbuf, errsize);
}

const kc_table *const klog__conf_tables[KC_TABLE__COUNT] = {
    [KC_TABLE_INSTANCE] = &klog__instance_conf_table,
    [KC_TABLE_LOG] = &klog__log_conf_table,
    [KC_TABLE_PRODUCER] = &klog__producer_conf_table,
    [KC_TABLE_CONSUMER] = &klog__consumer_conf_table,
    [KC_TABLE_GROUP] = &klog__group_conf_table,
    [KC_TABLE_SERVER] = &klog__server_conf_table,
    [KC_TABLE_REPLICATION] = &klog__replication_conf_table,
    [KC_TABLE_TRANSPORT] = &klog__transport_conf_table,
};
const unsigned klog__conf_ntables = KC_TABLE__COUNT;

/* Other spellings of keys (kc_alias), by subsystem; NULL-terminated. */
const kc_alias *const klog__conf_aliases[] = { klog__log_conf_aliases, NULL };
