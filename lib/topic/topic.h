/*
 * lib/topic/topic.h - the instance and its topics (contract for the layers
 * above: producer, consumer, groups).
 *
 * The instance owns the data directory lock, the I/O engine, the topic
 * table and a background thread for periodic work (interval syncs, segment
 * roll by age).  Topics are reference counted: a producer or consumer that
 * looked one up keeps it usable even if it is deleted meanwhile; the
 * deleted topic's partition directories were renamed aside at deletion and
 * are removed when the last reference goes.
 *
 * Topic metadata lives in DIR/topics.meta, rewritten atomically on every
 * change:
 *     klog-topics 1
 *     topic <name> <partitions>
 *       <key>=<value>            (the topic's explicitly set keys)
 *     ...
 *     end <xxh3-64 of everything above, hex>
 */
#ifndef KLOG_TOPIC_INTERNAL_H
#define KLOG_TOPIC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <klog/topic.h>
#include "common/conf.h"
#include "topic/conf_keys.h"
#include "storage/conf_keys.h"
#include "io/io.h"
#include "partition/partition.h"

#define KT_MAX_PARTITIONS 10000

typedef struct kt_topic {
    char name[KLOG_TOPIC_NAME_MAX + 1];
    /* parts has room for KT_MAX_PARTITIONS pointers and never moves, so
     * readers may load nparts (acquire) and index below it without a lock.
     * Each partition object (lib/partition) owns its log, waiters and
     * listeners; the layers above reach storage only through it. */
    kpart **parts;
    _Atomic int nparts;
    /* Instance defaults merged with overrides.  Read without a lock, with
     * klog__conf_int or klog__conf_int_isset (not isset then int: conf.h);
     * klog_topic_alter_config changes it in place (klog__conf_publish,
     * under the instance's mu), so the pointer never changes while the
     * topic lives. */
    klog_conf *conf;
    klog_conf *overrides;     /* what was set for this topic explicitly; under mu */
    _Atomic int refs;
    _Atomic bool deleted;
    char tomb[64];            /* suffix of the renamed-aside dirs once deleted */
    struct klog *k;
} kt_topic;

/* Look a topic up by name and take a reference.  NULL if unknown. */
kt_topic *klog__topic_get(struct klog *k, const char *name);
/* Take another reference on a topic one already holds. */
void klog__topic_ref(kt_topic *t);
void klog__topic_put(kt_topic *t);
/* Snapshot the topic table with a reference on each (caller frees with
 * klog__topics_release).  Returns the count, or -ENOMEM.  Takes and drops
 * the instance's mu. */
ssize_t klog__topics_snapshot(struct klog *k, kt_topic ***out);
void klog__topics_release(kt_topic **snap, size_t n);
/* Kafka's naming rule; 0 or KLOG_EBADNAME. */
int klog__topic_name_check(const char *name);

/*
 * Modules: the instance's subsystems (maintenance, the background thread,
 * consumer groups; later replication, a network front end), started and
 * stopped in a fixed order.  lib/topic knows none of them: the list is
 * composed above every subsystem, in lib/compose.c, which passes it to
 * klog__open.  A new subsystem defines a kt_module and adds it to that
 * list, at the place its dependencies give it.
 *
 * klog__open, with the data directory locked and the I/O engine up:
 *   1. init, in list order: set up state (*state is the module's, NULL by
 *      default); no topic is loaded yet.  Logs opened later may use what it
 *      sets up (the disk budget).
 *   2. the topics are loaded and their partitions opened;
 *   3. start, in list order: threads, and whatever needs the topics (a
 *      module sees the loaded table through klog__topics_snapshot).
 * klog_close (and a failed open, undoing what was done):
 *   4. stop, in reverse order: threads joined; after it no topic event
 *      reaches the module.  Partition logs are still open.
 *   5. the partition logs are closed;
 *   6. fini, in reverse order: free the state.  Its error (if any) is
 *      klog_close's result when the logs closed cleanly.
 * A failing init or start makes klog__open undo exactly the steps that
 * succeeded before it (stop for every started module, fini for every
 * initialised one, in reverse) and return its error; the failing op undoes
 * its own partial work (its own stop or fini is not called).  Every op may
 * be NULL.
 *
 * Topic events: a topic created, deleted, or given partitions, after the
 * change is recorded in topics.meta.  They reach every started module with
 * an event op, in list order, in the order the changes were made (changes
 * are queued under the instance's mu and delivered by one thread at a
 * time), on the thread of an API call that made a change - not
 * necessarily its own: a call that finds another thread delivering leaves
 * its event to that thread.  The handler may look topics up and take
 * references; it must not call topic administration (klog_topic_*), must
 * not block for long, and may run with a caller's locks held, even a
 * higher layer's (the groups' mu and omu, when a commit creates
 * __consumer_offsets): it must take no lock of its own that is ever held
 * across a call into lib/topic.  Topics loaded at open send no event.
 */
enum kt_event_kind { KT_EV_TOPIC_CREATED = 1, KT_EV_TOPIC_DELETED, KT_EV_PARTITIONS_ADDED };
typedef struct kt_event {
    enum kt_event_kind kind;
    kt_topic *topic;  /* referenced for the call (klog__topic_ref to keep it) */
    int from, to;     /* partitions [from, to): created/deleted: all of them; added: the new ones */
} kt_event;

typedef struct kt_module {
    const char *name;
    int (*init)(struct klog *k, void **state, char *errbuf, size_t errsize);
    int (*start)(struct klog *k, void *state, char *errbuf, size_t errsize);
    void (*stop)(struct klog *k, void *state);
    int (*fini)(struct klog *k, void *state);
    void (*event)(struct klog *k, void *state, const kt_event *ev);
    /* A partition was opened (at open, by a topic's creation, by added
     * partitions), before anyone can look it up: a module that must set it
     * up before its first append (replication fences it) does it here.
     * Runs after init, on the opening thread, with the instance's mu held
     * (topic admin) or during klog__open: only the partition may be
     * touched. */
    void (*part_open)(struct klog *k, void *state, const char *topic, int index, struct kpart *p);
} kt_module;

#define KT_MODULES_MAX 16

/* klog_open with an explicit module list (at most KT_MODULES_MAX; the
 * list must outlive the instance).  Same results and errors as klog_open,
 * which calls it with the library's list (lib/compose.c). */
int klog__open(struct klog **out, const char *dir, const klog_conf *conf, const kt_module *const *mods,
               unsigned nmods, char *errbuf, size_t errsize);
/* A module's state (what its init stored), or NULL when the instance does
 * not run it.  Lock-free: fixed from the module's init to its fini. */
void *klog__module_state(struct klog *k, const kt_module *m);
/*
 * Bind module m, from a library above libklog (libklog-server's
 * replication), in the place of the module of the same name in the
 * instance's list: a placeholder whose init set a state when the
 * instance wants it (its keys set) and whose part_open does what must
 * happen before m is bound (replication: fence every partition).  Runs
 * m's init and start on the open instance; from its init on, m also hears
 * part_open and the topic events (the placeholder still does), and it is
 * stopped and finished just before the placeholder at klog_close.  m must
 * cope with topics loaded before it (klog__topics_snapshot in its start).
 * Binding the same module again is a no-op; 0 too when the instance has
 * no such place or does not want it.  Returns m's init or start error
 * (a module that failed to start stays bound, unstarted, and every later
 * bind says KLOG_ESTATE), KLOG_ESTATE, -EINVAL.  Not with klog_close.
 */
int klog__module_bind(struct klog *k, const kt_module *m, char *errbuf, size_t errsize);

/* The modules lib/topic provides (internal.h says what they do). */
extern const kt_module klog__maint_module;      /* disk budget, retention, cleaner threads */
extern const kt_module klog__background_module; /* the background thread */

/*
 * Statistics of the handles above this layer: a producer or consumer
 * registers a kt_handle for as long as it lives; klog_stats calls fn under
 * the instance's stats lock, so fn must only read atomics (it runs on
 * another thread than the handle's user) and must not call klog.
 */
enum { KT_HANDLE_PRODUCER = 1, KT_HANDLE_CONSUMER = 2 };
typedef struct kt_handle_stats {
    char client_id[256];
    char group[256];          /* consumers: group.id or "" */
    char member_id[160];
    uint64_t records, bytes;  /* sent / returned by poll (key + value bytes) */
    uint64_t batches;         /* producers: batches sealed */
    uint64_t raw_bytes, out_bytes; /* producers: batch bytes before and after compression */
    uint64_t errors;          /* producers: records whose delivery failed */
    uint64_t queue_records;   /* producers: records sent, not yet reported */
    uint64_t queue_bytes;     /* producers: buffer.memory in use */
    uint64_t polls;           /* consumers */
    uint64_t assigned;        /* consumers: partitions */
    uint64_t lag;             /* consumers: records behind the ends, at the last poll */
} kt_handle_stats;
typedef struct kt_handle {
    struct kt_handle *next;
    int kind;
    void *h;
    void (*fn)(void *h, kt_handle_stats *out);
} kt_handle;
void klog__handle_add(struct klog *k, kt_handle *e);
void klog__handle_remove(struct klog *k, kt_handle *e);

/* The instance's I/O engine and defaults. */
kio *klog__io(struct klog *k);
/* Opened read.only (follow.c): every change is refused with KLOG_EREADONLY. */
bool klog__read_only(const struct klog *k);
const klog_conf *klog__conf(struct klog *k);
/* The data directory (for a module's own files beside topics.meta). */
const char *klog__dir(struct klog *k);
/* A line for klog_set_log_cb's callback, from a module (internal.h says
 * how): klog__log where no klog lock is held, klog__log_defer under one. */
void klog__log(struct klog *k, int level, int err, const char *facility, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void klog__log_defer(struct klog *k, int level, int err, const char *facility, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
