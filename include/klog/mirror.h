/*
 * klog/mirror.h - store and forward between klog and a Kafka cluster.
 *
 * A klog_mirror forwards the records of klog topics to an Apache Kafka
 * cluster, or the records of Kafka topics into klog, through librdkafka,
 * the reference C client.  It is not in libklog: it lives in a library of
 * its own, libklog-mirror (pkg-config klog-mirror; in meson
 * dependency('klog-mirror')), built when librdkafka is present (meson
 * option "mirror"), so that libklog itself never links librdkafka.
 *
 *     klog_mirror *m;
 *     klog_mirror_new(&m, k, err, sizeof err);
 *     klog_mirror_set(m, "mirror.to", "kafka1:9092,kafka2:9092", err, sizeof err);
 *     klog_mirror_set(m, "mirror.topics", "^readings.*", err, sizeof err);
 *     klog_mirror_start(m, err, sizeof err);
 *     while (running)
 *         if (klog_mirror_poll(m, 1000, err, sizeof err) < 0)
 *             break;                      (it cannot go on: err says why)
 *     klog_mirror_free(m);                (flush, commit, close)
 *
 * Forwarding to Kafka ("mirror.to").  The mirror is a member of a klog
 * consumer group ("mirror.group.id") subscribed to "mirror.topics", so its
 * position survives kill -9, and several mirrors in one process or on one
 * directory share the partitions.  Each record goes to the Kafka topic of
 * the same name (or the one "mirror.rename" gives) with its key, value,
 * headers and timestamp (as CreateTime), to the partition of the same
 * number when the Kafka topic has at least as many partitions as the klog
 * topic, and otherwise to the partition the key's murmur2 hash picks (the
 * Java client's choice; a null key goes to a random one).  The producer is
 * idempotent (acks=all, librdkafka's enable.idempotence): a batch retried
 * after a lost response is written once and every partition keeps the
 * order of its records.  The mirror commits a klog partition's offset only
 * up to the first record Kafka has not acknowledged, every
 * "mirror.commit.interval.ms" and when it stops: delivery is at least once.
 * Records sent after the last commit are sent again after a crash and may
 * reach Kafka twice (only they, and in order); klog_mirror_stats_get
 * counts the records a mirror sends again itself ("resent").
 *
 * Forwarding into klog ("mirror.from").  The same in the other direction:
 * a member of the Kafka consumer group "mirror.group.id" subscribed to
 * "mirror.topics" (Kafka topics), writing to klog topics through a klog
 * producer (acks=all by default), committing its Kafka offsets only up to
 * the first record klog has not acknowledged.  A gateway receives commands
 * or configuration from the cluster this way and keeps them on disk.
 *
 * While the link is down.  Records wait: in librdkafka's queue (bounded by
 * queue.buffering.max.messages and queue.buffering.max.kbytes), then on the
 * klog disk, where the mirror leaves them unread until the queue has room.
 * librdkafka reconnects with backoff (reconnect.backoff.ms up to
 * reconnect.backoff.max.ms) for ever; records are never timed out
 * (message.timeout.ms 0).  The mirror's place is its committed offset and
 * the records it holds, so nothing is skipped when the link returns.  What
 * a klog topic's retention or the instance's disk budget deletes before the
 * mirror read it is counted as a gap (gap_records, gaps) and logged with its
 * offsets: an operator knows exactly what was lost.  The same holds for
 * Kafka's retention in the other direction.
 *
 * When it cannot go on.  klog_mirror_poll returns a negative code and a
 * message in its errbuf, and the mirror stops forwarding (further polls
 * return the same code), for what no retry mends: the cluster was never
 * reached within "mirror.connect.timeout.ms" (-ETIMEDOUT; a link that
 * worked once and went down is retried for ever instead), authentication
 * failed (-EACCES, also a topic or cluster authorization refused), TLS
 * failed (-EPROTO), a destination topic is missing and neither the cluster
 * nor the mirror creates it (KLOG_EUNKNOWN_TOPIC), a record is larger than
 * the destination takes (KLOG_ETOOBIG), the destination refused a record
 * for another reason (-EREMOTEIO).  The committed offsets stay where they
 * were: below the record that could not be forwarded, never past it.
 *
 * Keys (klog_mirror_set, before klog_mirror_start; default in brackets):
 *   mirror.to                bootstrap servers of the Kafka cluster to
 *                            forward to ("host:port,host:port")
 *   mirror.from              bootstrap servers of the Kafka cluster to
 *                            forward from; exactly one of to and from
 *   mirror.topics            the topics to forward, comma-separated; an
 *                            entry starting with '^' is a POSIX extended
 *                            regular expression (topics created later that
 *                            match it are forwarded too)
 *   mirror.rename [""]       "FROM:TO[,FROM:TO...]": the destination topic
 *                            of source topic FROM is TO (default: the same name)
 *   mirror.group.id [klog-mirror]   the consumer group holding the mirror's
 *                            position (klog's for "to", Kafka's for "from")
 *   mirror.partitioning [same]      same|hash: "same" keeps the partition
 *                            number when the destination has enough
 *                            partitions, "hash" always hashes the key
 *   mirror.create.topics [false]    create a missing destination topic with
 *                            the source's partition count (Kafka's
 *                            CreateTopics, or klog_topic_create); false: a
 *                            missing topic stops the mirror unless the Kafka
 *                            cluster creates topics on first use
 *                            (auto.create.topics.enable)
 *   mirror.replication.factor [-1]  of the topics created on Kafka (-1: the
 *                            cluster's default.replication.factor)
 *   mirror.commit.interval.ms [1000]   1..3600000
 *   mirror.connect.timeout.ms [30000]  how long the first connection may
 *                            take; -1: for ever (a gateway that boots
 *                            without its link)
 *   mirror.close.timeout.ms [10000]    how long klog_mirror_stop waits for
 *                            records in flight (0..3600000)
 *   mirror.source.header [false]    add a header "klog.src" =
 *                            "TOPIC/PARTITION/OFFSET" of the source record,
 *                            for deduplication downstream
 *   kafka.KEY                any librdkafka property (kafka.security.protocol,
 *                            kafka.sasl.username, kafka.compression.codec,
 *                            kafka.linger.ms, ...), checked by librdkafka when
 *                            set.  The mirror sets enable.idempotence=true,
 *                            message.timeout.ms=0,
 *                            partitioner=murmur2_random,
 *                            queue.buffering.max.kbytes=65536 for "to", and
 *                            enable.auto.commit=false,
 *                            auto.offset.reset=earliest for "from", unless
 *                            set here; bootstrap.servers and group.id come
 *                            from the mirror.* keys
 *   klog.KEY                 a klog key for the mirror's klog consumer ("to")
 *                            or producer ("from"): klog.max.poll.records,
 *                            klog.acks, ... (klog_conf_set's keys)
 *
 * Threading: one thread at a time drives a mirror (klog_mirror_start,
 * klog_mirror_poll, klog_mirror_stop, klog_mirror_free), as a consumer is
 * driven; all the mirror's work - reading, sending, delivery reports,
 * commits, rebalances, its log callback - happens inside those calls on
 * that thread.  klog_mirror_stats_get and klog_mirror_wakeup may be called
 * from any thread at any time until klog_mirror_free.  librdkafka runs
 * threads of its own (one per broker and a few more); none of them calls
 * back into the application.
 *
 * Errors: 0 or a count on success, a negative code (klog/error.h) on
 * failure; klog_strerror names it, errbuf says more.
 */
#ifndef KLOG_MIRROR_H
#define KLOG_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include <klog/version.h>
#include <klog/error.h>
#include <klog/instance.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klog_mirror klog_mirror;

/*
 * Create a mirror on the open instance k (which must outlive it).  Nothing
 * is connected until klog_mirror_start.  Returns 0, -EINVAL, -ENOMEM; on
 * failure *out is NULL.
 */
KLOG_API int klog_mirror_new(klog_mirror **out, klog *k, char *errbuf, size_t errsize);

/*
 * Set a key (above) to a value.  Before klog_mirror_start only (KLOG_ESTATE
 * after).  Returns 0, KLOG_ECONF (unknown key or bad value: errbuf says
 * which), KLOG_ESTATE, -EINVAL, -ENOMEM.
 */
KLOG_API int klog_mirror_set(klog_mirror *m, const char *key, const char *value, char *errbuf,
                             size_t errsize);

/*
 * Where the mirror's log lines go: what it forwards from where (a
 * partition's starting offset, committed or not), the link going down and
 * coming back, gaps (records deleted before they were forwarded, with
 * their offsets), rewinds, and librdkafka's warnings and errors.  cb runs
 * on the thread that drives the mirror, inside its calls, and must not
 * call back into the mirror.  NULL (the default): lines go to stderr,
 * prefixed "klog mirror: ".  Returns 0 or -EINVAL.
 */
typedef void (*klog_mirror_log_cb)(void *opaque, const char *line);
KLOG_API int klog_mirror_set_log_cb(klog_mirror *m, klog_mirror_log_cb cb, void *opaque);

/*
 * Check the configuration, create the librdkafka client and the klog
 * consumer or producer, and subscribe.  Does not wait for the network:
 * the first klog_mirror_poll connects.  Returns 0, KLOG_ECONF (a key
 * missing, both or neither of mirror.to and mirror.from, a bad regular
 * expression, a property librdkafka refused: errbuf says which),
 * KLOG_ESTATE (started already), KLOG_EBADNAME, -ENOMEM, -EAGAIN, and the
 * errors of klog_consumer_new, klog_producer_new and
 * klog_consumer_subscribe.
 */
KLOG_API int klog_mirror_start(klog_mirror *m, char *errbuf, size_t errsize);

/*
 * Do the mirror's work for up to timeout_ms (0: what can be done without
 * waiting): read, send, serve delivery reports, commit, follow rebalances.
 * Returns early after klog_mirror_wakeup.  Returns the number of records
 * the destination acknowledged during the call (0 or more), or, when the
 * mirror cannot go on, a negative code with a message in errbuf (see "When
 * it cannot go on" above; the same code from every later poll):
 * -ETIMEDOUT, -EACCES, -EPROTO, KLOG_EUNKNOWN_TOPIC, KLOG_ETOOBIG,
 * -EREMOTEIO, -ENOMEM, and errors from the klog side (KLOG_ECORRUPT,
 * KLOG_EDISKFULL, -errno).  KLOG_ESTATE: not started, or stopped.
 */
KLOG_API int klog_mirror_poll(klog_mirror *m, int timeout_ms, char *errbuf, size_t errsize);

/* Make a klog_mirror_poll that waits (or the next one) return at once.
 * Any thread.  Returns 0 or -EINVAL. */
KLOG_API int klog_mirror_wakeup(klog_mirror *m);

/*
 * What a mirror has done since klog_mirror_start.  The caller sets
 * struct_size = sizeof(klog_mirror_stats); klog_mirror_stats_get fills
 * that many bytes (fields added later go at the end).
 */
typedef struct klog_mirror_stats {
    uint32_t struct_size;
    int32_t link_up;            /* 1: the destination answered last time; 0: down, or
                                   not reached yet */
    int32_t partitions;         /* source partitions the mirror holds now */
    int32_t error;              /* the code that stopped it, or 0 */
    uint64_t read;              /* records read from the source */
    uint64_t forwarded;         /* records the destination acknowledged */
    uint64_t forwarded_bytes;   /* their keys and values */
    uint64_t in_flight;         /* records sent, not acknowledged yet */
    int64_t lag;                /* records of the held source partitions not
                                   acknowledged yet (in flight, or not read);
                                   -1 while not known (from Kafka: until a
                                   fetch answered for every partition) */
    uint64_t gap_records;       /* records deleted (retention, disk budget)
                                   before the mirror could read them */
    uint64_t gaps;              /* runs of such records */
    uint64_t resent;            /* records sent again after a rewind */
    uint64_t rewinds;           /* times the producer was recreated and the
                                   source rewound to its first unacknowledged
                                   record (a fatal idempotence error, a failed
                                   delivery) */
    uint64_t link_downs;        /* times the link went down */
    uint64_t commits;           /* offset commits that succeeded */
    uint64_t commit_errors;     /* and that failed (retried at the next one) */
} klog_mirror_stats;

/* Fill *out (out->struct_size set by the caller).  Any thread.  Returns 0,
 * -EINVAL (NULL, or struct_size below 8). */
KLOG_API int klog_mirror_stats_get(klog_mirror *m, klog_mirror_stats *out);

/*
 * Stop: wait up to mirror.close.timeout.ms for the records in flight,
 * commit what the destination acknowledged, leave the group and close the
 * clients.  Records still unacknowledged are sent again by the next mirror
 * of the group (logged).  A mirror that had failed is stopped the same way
 * (its commits stay below what could not be forwarded).  Afterwards only
 * klog_mirror_stats_get and klog_mirror_free may be called.  Returns 0, or
 * the error of the last commit when it failed for another reason than a
 * rebalance (-errno, KLOG_E...); KLOG_ESTATE: not started, or stopped
 * already.
 */
KLOG_API int klog_mirror_stop(klog_mirror *m);

/* Stop (if started and not stopped) and free.  NULL-safe. */
KLOG_API void klog_mirror_free(klog_mirror *m);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_MIRROR_H */
