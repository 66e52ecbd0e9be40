/*
 * lib/mirror/internal.h - the contract between the files of libklog-mirror.
 *
 *   mirror.c     the handle: keys, logging, stats, the in-flight rings,
 *                librdkafka callbacks shared by both directions, the
 *                dispatch of klog_mirror_* to a direction
 *   to_kafka.c   klog group member -> librdkafka idempotent producer
 *   from_kafka.c librdkafka group member -> klog producer
 *
 * The mirror sits on libklog's public API only (include/klog/) and on
 * librdkafka; it reaches nothing under lib/ but this folder.
 *
 * Threading.  Everything here runs on the thread that drives the mirror
 * (klog_mirror_start/poll/stop/free): klog's rebalance callbacks fire
 * inside klog_consumer_poll, librdkafka's delivery reports, error and log
 * callbacks inside rd_kafka_poll / rd_kafka_consumer_poll / rd_kafka_flush
 * (log.queue=true forwards logs to the polled queue), klog's delivery
 * reports are polled (delivery.report.queue=true).  So the state below has
 * no lock, except `pub`, the stats snapshot other threads read, and
 * `wake`.
 *
 * Accounting of records in flight.  Each source partition the mirror holds
 * has a track: a ring of the source offsets sent and not yet acknowledged
 * (in send order, so increasing), each with an acked flag.  A record's
 * opaque, handed to the destination's producer, names its track slot,
 * the slot's generation and its ring sequence number (mir_opaque); a
 * report for a slot of another generation (the partition was revoked or
 * rewound since) is ignored.  The commit point of a partition is the
 * offset of the oldest unacknowledged record, or, when none is in flight,
 * the next offset to read: never past a record the destination has not
 * taken.
 */
#ifndef KLOG_MIRROR_INTERNAL_H
#define KLOG_MIRROR_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <klog/klog.h>
#include <klog/mirror.h>

enum { MIR_NONE = 0, MIR_TO = 1, MIR_FROM = 2 };
enum { MST_NEW = 0, MST_RUNNING, MST_FAILED, MST_STOPPED };

/* Opaque layout: slot (14 bits) | generation (10 bits) | sequence (40 bits). */
#define MIR_SLOT_BITS 14
#define MIR_GEN_BITS 10
#define MIR_SEQ_BITS 40
#define MIR_MAX_SLOTS (1u << MIR_SLOT_BITS)
#define MIR_GEN_MASK ((1u << MIR_GEN_BITS) - 1)
#define MIR_SEQ_MASK ((UINT64_C(1) << MIR_SEQ_BITS) - 1)
/* A ring never holds more (librdkafka's queue.buffering.max.messages is
 * the real bound; this only keeps a runaway from eating memory). */
#define MIR_RING_MAX (1u << 24)

/* A destination topic as the mirror knows it. */
typedef struct mir_topic {
    char *src, *dst;
    int32_t src_partitions;     /* source partition count when resolved */
    int32_t dst_partitions;     /* -1 until resolved */
    bool ready;                 /* resolved: records may go */
    bool create_tried;
    int unknown_tries;          /* metadata said "unknown" this many times in a row */
    uint64_t next_try_ms, backoff_ms;
    rd_kafka_topic_t *rkt;      /* to: librdkafka's handle (NULL after a rewind) */
} mir_topic;

/* Records the destination refused for good (to Kafka), for the message. */
typedef struct mir_refused {
    struct mir_track *t;
    int err;                    /* rd_kafka_resp_err_t */
    uint64_t count;
    int64_t first, last, max_off;
    size_t max_size;
    char dst[256];
    int32_t dst_partition;
} mir_refused;

/* A source partition held by the mirror. */
typedef struct mir_track {
    bool live;
    uint32_t slot;              /* index in klog_mirror.tr */
    uint32_t gen;               /* 1..MIR_GEN_MASK, bumped by every reuse and reset */
    char *topic;                /* source topic name (owned) */
    int32_t partition;
    mir_topic *mt;
    int64_t expected;           /* next source offset expected; -1 unknown */
    int64_t committed;          /* last commit that succeeded, or found at assignment; when the
                                   group had none: the first position (nothing to commit below it) */
    int64_t sent_max;           /* highest offset sent in this generation + 1; -1 none */
    /* ring of offsets in flight: entries [head, tail) by sequence number */
    int64_t *off;
    uint8_t *acked;
    uint32_t cap;               /* power of two, or 0 */
    uint64_t head, tail;
    int64_t hold;               /* >= 0: re-read from here (a seek is due) */
    const char *topic_ptr;      /* the topic pointer the consumer's messages carry */
} mir_track;

struct klog_mirror {
    klog *k;
    int dir;                    /* MIR_TO, MIR_FROM, or MIR_NONE until set */
    int state;

    /* keys */
    char *bootstrap, *topics, *rename, *group;
    bool part_hash, create_topics, source_header;
    int replication_factor;
    int64_t commit_interval_ms, connect_timeout_ms, close_timeout_ms;
    char **kafka_kv;            /* "key", "value" pairs, in the order set */
    size_t nkafka;
    bool kafka_debug;           /* kafka.debug set: librdkafka's debug lines are logged too */
    klog_conf *lconf;           /* klog.* keys */
    bool lconf_set[8];          /* which of the mirror's own klog defaults the user overrode */

    klog_mirror_log_cb log_cb;
    void *log_opaque;

    /* failure */
    int err;
    char errmsg[1024];
    mir_refused refused;

    /* runtime */
    rd_kafka_t *rk;
    klog_consumer *c;           /* to */
    klog_producer *p;           /* from */
    mir_track **tr;             /* by slot; tracks never move */
    size_t ntr;
    mir_topic **tp;
    size_t ntp, tpcap;
    mir_track *last_tr;         /* lookup cache */
    char **subs;                /* the subscription, split */
    size_t nsubs;
    char **ren;                 /* rename pairs: from, to, from, to... */
    size_t nren;
    uint64_t next_lag_ms;

    uint64_t start_ms;
    bool ever_up, link_up;
    uint64_t down_since_ms, next_probe_ms, probe_backoff_ms;
    char kerr[512];             /* librdkafka's last error text */
    char last_klog_line[512];
    uint64_t last_klog_ms;      /* when the last librdkafka line was logged */
    uint64_t next_commit_ms;
    bool backpressure;
    uint64_t bp_inflight;       /* records in flight when the queue was found full */
    uint64_t read_after_ms;     /* do not read the source before this */
    bool need_rewind;
    char rewind_reason[512];
    int32_t revoke_pending;     /* from: partitions revoked while their records are in flight */

    /* counters, owned by the driving thread; published into pub */
    klog_mirror_stats st;
    pthread_mutex_t mu;
    klog_mirror_stats pub;
    _Atomic bool wake;
};

/* ---- mirror.c ------------------------------------------------------------ */

uint64_t mir_now_ms(void);
__attribute__((format(printf, 2, 3))) void mir_log(klog_mirror *m, const char *fmt, ...);
/* Stop the mirror with err; the message goes to the log too.  Only the
 * first failure is kept.  Returns err. */
__attribute__((format(printf, 3, 4))) int mir_fail(klog_mirror *m, int err, const char *fmt, ...);
/* Write the error message into errbuf. */
void mir_errbuf(klog_mirror *m, char *errbuf, size_t errsize);
void mir_publish(klog_mirror *m);

/* librdkafka configuration: defaults of the direction, then the user's
 * kafka.* keys, then the callbacks.  Returns NULL after mir_fail-style
 * message in errbuf. */
rd_kafka_conf_t *mir_kafka_conf(klog_mirror *m, const char *const *defaults, char *errbuf, size_t errsize);
/* After rd_kafka_new: logs to the polled queue. */
void mir_kafka_started(klog_mirror *m);
/* The destination name of a source topic (the rename map), malloc'ed. */
char *mir_dst_name(klog_mirror *m, const char *src);
/* The destination topic record for a source topic, made on first use. */
mir_topic *mir_topic_get(klog_mirror *m, const char *src);

/* Link state. */
void mir_link_up(klog_mirror *m);
void mir_link_down(klog_mirror *m, const char *why);
/* A Metadata round trip when due (the first connection, or the link is
 * down).  Fails the mirror when it was never connected within
 * mirror.connect.timeout.ms.  Returns true when the link is up. */
bool mir_probe(klog_mirror *m, int max_wait_ms);

/* Tracks. */
mir_track *mir_track_add(klog_mirror *m, const char *topic, int32_t partition);
mir_track *mir_track_find(klog_mirror *m, const char *topic, int32_t partition);
void mir_track_drop(klog_mirror *m, mir_track *t);
static inline uint64_t mir_track_inflight(const mir_track *t) { return t->tail - t->head; }
/* Push a source offset; returns the record's opaque, or 0 when the ring is
 * full (hold the record). */
uint64_t mir_track_push(klog_mirror *m, mir_track *t, int64_t offset);
/* A delivery report: the track and the ring entry of an opaque, or NULL
 * when it belongs to an old generation. */
mir_track *mir_track_of(klog_mirror *m, uint64_t opaque, uint64_t *seq);
void mir_track_ack(klog_mirror *m, mir_track *t, uint64_t seq);
/* Where the partition's commit may go: the first unacknowledged offset, or
 * `expected` when nothing is in flight; -1 when unknown. */
int64_t mir_track_commit_point(const mir_track *t);
/* Forget the ring (a rewind or revocation): later reports are ignored. */
void mir_track_reset(klog_mirror *m, mir_track *t);
/* Count the records [t->expected, upto) as a gap when they are below the
 * log's start `start` (the caller read it). */
void mir_gap(klog_mirror *m, mir_track *t, int64_t upto, int64_t start, const char *where);

/* Permanent per-record errors: the destination will never take the record. */
bool mir_kafka_err_permanent(rd_kafka_resp_err_t e);
int mir_kafka_err_code(rd_kafka_resp_err_t e);

/* ---- to_kafka.c / from_kafka.c -------------------------------------------- */

int mir_to_start(klog_mirror *m, char *errbuf, size_t errsize);
int mir_to_poll(klog_mirror *m, int timeout_ms);
int mir_to_stop(klog_mirror *m);
int mir_from_start(klog_mirror *m, char *errbuf, size_t errsize);
int mir_from_poll(klog_mirror *m, int timeout_ms);
int mir_from_stop(klog_mirror *m);

#endif /* KLOG_MIRROR_INTERNAL_H */
