/*
 * lib/group/internal.h - shared by coordinator.c and offsets.c (and the
 * coordinator's tests) only.
 */
#ifndef KLOG_GROUP_PRIVATE_H
#define KLOG_GROUP_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "group/group.h"
#include "format/format.h"
#include "topic/topic.h"

#define KG_STORE_PARTS_MAX 128       /* offsets.topic.num.partitions is at most 100 */

/* A committed offset in memory. */
typedef struct kg_committed {
    struct kg_committed *next;   /* hash chain */
    char *group, *topic;
    int32_t partition;
    int64_t offset;
    int64_t ts;
    char *meta;
} kg_committed_t;

/* A group's latest generation as stored (offsets.c: why). */
typedef struct kg_gen {
    struct kg_gen *next;         /* hash chain */
    int32_t generation;
    char group[];
} kg_gen_t;

/* The offsets store: a hash table over (group, topic, partition), and one
 * over group for the generations, mirrored by records in
 * __consumer_offsets.  Guarded by kg_registry.omu. */
typedef struct kg_store {
    kg_committed_t **tab;
    size_t mask, n;
    kg_gen_t **gtab;
    size_t gmask, gn;
    kt_topic *t;                 /* __consumer_offsets, referenced; NULL until created */
    _Atomic(kt_topic *) at;      /* t, for the lock-free staleness check (kg__store_stale) */
    /* Per partition: the leader epoch its tables were loaded or last
     * reloaded at as the partition's replicated leader (INT32_MIN: not as
     * leader).  A replicated partition's tables are current only while this
     * node leads it in that epoch: a node promoted to lead it reloads them
     * from the log it replicated (kg__store_refresh). */
    _Atomic int32_t seen[KG_STORE_PARTS_MAX];
    kf_codec *codec;
    uint8_t *buf;                /* batch builder buffer */
    size_t cap;
} kg_store;

/* An interned topic name (lives as long as the registry). */
typedef struct kg_name { struct kg_name *next; char s[]; } kg_name;

struct kg_member_s;
struct kg_group_s;

struct kg_registry {
    struct klog *k;
    pthread_mutex_t mu;          /* groups and members */
    struct kg_group_s **groups;
    size_t ngroups, gcap;
    kg_name *names;              /* interned topic names */
    uint64_t next_member;        /* member id counter */
    uint64_t id_base;            /* random, drawn at start: ids differ across restarts */
    int64_t (*clock_ms)(void *arg);  /* tests: the coordinator's clock; NULL = monotonic */
    void *clock_arg;

    pthread_mutex_t omu;         /* the offsets store; after mu */
    kg_store st;

    _Atomic bool active;         /* first use done: offsets read, timer running (kg_registry_get) */
    pthread_t timer;
    bool timer_running;
    pthread_mutex_t tmu;
    pthread_cond_t tcv;
    bool stopping;
};

/* offsets.c */
int kg__store_open(kg_registry *r, bool create);    /* omu held */
void kg__store_close(kg_store *st);
/* Whether a partition of the store is led here in an epoch other than the
 * one its tables were loaded at (lock-free; a hint: refresh under omu). */
bool kg__store_stale(kg_store *st);
/* Reload the tables of every stale partition; open the store if the topic
 * appeared since (a replica of it created by replication).  omu held. */
int kg__store_refresh(kg_registry *r);
/* The partition of the store (st->t set) a group's records go to. */
int32_t kg__store_partition(kg_store *st, const char *group);
kg_committed_t *kg__store_find(kg_store *st, const char *group, const char *topic, int32_t partition);
/* Write records (tombstone when offset < 0) for the entries and update the
 * table.  omu held. */
int kg__store_put(kg_registry *r, const char *group, kg_offset *o, unsigned n, bool sync);
/* The group's stored generation: the latest one written (or read back
 * from an earlier run), 0 if none.  omu held. */
int32_t kg__store_generation(kg_store *st, const char *group);
/* Record a group's new generation: in the table, then as a record in
 * __consumer_offsets (appended, not synced; created if need be).  Returns
 * 0 or the append's error (the table has the generation either way, unless
 * -ENOMEM).  omu held. */
int kg__store_put_generation(kg_registry *r, const char *group, int32_t generation);
/* Calls fn for each committed entry of group (or all when group NULL). */
void kg__store_each(kg_store *st, const char *group, void (*fn)(void *arg, kg_committed_t *c), void *arg);
const char *kg__intern(kg_registry *r, const char *s);  /* mu held */

/* coordinator.c, for tests (not API): the clock the coordinator reads
 * (milliseconds, any origin; NULL = the monotonic clock), and one run of
 * the timer's work (expiry, timed-out rebalances) now. */
void kg__set_clock(kg_registry *r, int64_t (*clock_ms)(void *), void *arg);
void kg__tick(kg_registry *r);

#endif
