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
 *     them.  Its state is klog__module_state(k, &module).
 *   - Replication lives in libklog-server, above libklog: its place in the
 *     order (after "background", before "groups": started with the
 *     partitions open, stopped after the groups, whose commits it
 *     replicates) holds the placeholder below, which fences the
 *     partitions of an instance opened with replication.peers until
 *     klog_server_new (or klog_replication_promote) binds the real module
 *     there (klog__module_bind).  Nothing here refers to that library.
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
#include "common/conf.h"
#include "partition/partition.h"
#include "replication/conf_keys.h"
#include "replication/replication.h" /* krep_topic_replicated: inline, nothing linked */
#include "server/conf_keys.h"
#include "storage/conf_keys.h"
#include "topic/topic.h"
#include "transport/conf_keys.h"

/* The placeholder's state: non-NULL (any address) when the instance is
 * replicated, so that klog__module_bind binds replication here. */
static int replicated_mark;

static int repl_place_init(struct klog *k, void **state, char *errbuf, size_t errsize)
{
    const char *peers = klog__conf_str(klog__conf(k), KC_REPLICATION_PEERS);
    *state = peers && *peers ? &replicated_mark : NULL;
    return 0;
}

/* Until replication is bound, a replicated node's partition takes no
 * producer's write and shows nothing it does not know committed: fenced
 * as replication's own part_open fences it (its controller names the
 * leader once bound).  The topics replication leaves local
 * (krep_topic_replicated: internal ones but __consumer_offsets) are not
 * fenced. */
static void repl_place_part_open(struct klog *k, void *state, const char *topic, int index, kpart *p)
{
    if (!state || !krep_topic_replicated(topic))
        return;
    kpart_set_replicated_at(p, kpart_start_offset(p));
    kpart_become_follower(p, -1);
}

static const kt_module repl_place = {
    .name = "replication", .init = repl_place_init, .part_open = repl_place_part_open,
};

static const kt_module *const modules[] = {
    &klog__maint_module,      /* disk budget (before any log opens), retention, cleaner threads */
    &klog__background_module, /* interval syncs, rolls by age, prefills, retention and stats ticks */
    &repl_place,              /* replication to peer processes (replication.peers set): libklog-server's */
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
