/*
 * lib/compose.h - the ids of the configuration key tables, one per
 * subsystem that owns keys.  A table's id is its index in
 * klog__conf_tables (lib/compose.c) and the high part of its keys' ids
 * (common/conf.h), so it must be a compile-time constant its keys' enum can
 * use; this header is that constant's only home.
 *
 * A new subsystem with keys: add its id here (before KC_TABLE__COUNT), its
 * table in lib/compose.c, and its keys in lib/<subsystem>/conf_keys.{h,c}.
 * The order here is the order klog__conf_dump writes keys in (topics.meta,
 * klog_topic_describe), so append rather than insert.
 */
#ifndef KLOG_COMPOSE_H
#define KLOG_COMPOSE_H

enum kc_table_id {
    KC_TABLE_INSTANCE,   /* lib/topic/conf_keys.c: the instance, its maintenance, handles */
    KC_TABLE_LOG,        /* lib/storage/conf_keys.c: a topic's partition logs */
    KC_TABLE_PRODUCER,   /* lib/producer/conf_keys.c */
    KC_TABLE_CONSUMER,   /* lib/consumer/conf_keys.c */
    KC_TABLE_GROUP,      /* lib/group/conf_keys.c: coordinators and members */
    KC_TABLE_SERVER,     /* lib/server/conf_keys.c: the Kafka protocol server */
    KC_TABLE_REPLICATION,/* lib/replication/conf_keys.c: replication to peer processes */
    KC_TABLE_TRANSPORT,  /* lib/transport/conf_keys.c: the TLS transport */
    KC_TABLE__COUNT
};

#endif
