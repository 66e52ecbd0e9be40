/*
 * klog/conf.h - configuration: an opaque object of Kafka-style string keys.
 *
 * One klog_conf type serves the instance, topics, producers and consumers,
 * as librdkafka's does; each reads the keys that concern it.  Keys and
 * values are Kafka's where Kafka has them ("linger.ms", "batch.size",
 * "compression.type", "acks", "retention.ms", "segment.bytes", ...).  An
 * unknown key or a bad value is an error that names the key: nothing is
 * silently ignored.
 *
 * Keys (default in brackets; ranges are inclusive; klog(7) and the pages of
 * klog_open, klog_topic_create, klog_producer_new and klog_consumer_new
 * describe each one).  Each object reads the keys of its scope: the
 * instance from klog_open's conf, whose topic keys are also the defaults of
 * every topic; a topic from klog_topic_create's; producers and consumers
 * from their own.  klog_topic_create refuses keys of other scopes;
 * klog_producer_new and klog_consumer_new take one client conf holding
 * producer and consumer keys (each reads its own) and refuse instance and
 * topic keys, naming the scope they belong to; klog_open takes every key.
 * Kafka's other spellings of the topic keys are accepted for them:
 * retention.hours and retention.minutes (retention.ms in that unit), and
 * the broker's log.retention.{hours,minutes,ms,bytes}, log.segment.bytes,
 * log.roll.{ms,hours} (segment.ms), log.index.interval.bytes,
 * message.max.bytes, log.cleanup.policy, log.flush.interval.{messages,ms},
 * log.cleaner.delete.retention.ms, log.cleaner.min.cleanable.ratio and
 * log.cleaner.min.compaction.lag.ms (-1 is forever in every unit); reading
 * one reads its key in its unit.  An unknown key close to a known one says
 * "did you mean KEY?".
 *   instance   io.backend [auto] auto|uring|posix;
 *              disk.budget.bytes [0 = no budget]; disk.budget.policy
 *              [delete-oldest] delete-oldest|refuse;
 *              log.retention.check.interval.ms [1000];
 *              log.cleaner.enable [true]; log.cleaner.threads [1] 1..16;
 *              log.cleaner.backoff.ms [1000];
 *              log.cleaner.dedupe.buffer.size [33554432] 65536..2^36;
 *              log.cleaner.io.max.bytes.per.second [0 = no limit];
 *              offsets.topic.num.partitions [1] 1..100 (of __consumer_offsets,
 *              when it is created); group.initial.rebalance.delay.ms [0]
 *              0..600000; statistics.interval.ms [0 = off] 0..86400000;
 *              the Kafka protocol server's (klog/server.h, read by
 *              klog_server_new): socket.request.max.bytes [104857600];
 *              num.network.threads [2] 1..64; auto.create.topics.enable
 *              [true]; connections.max.idle.ms [600000]; node.id [0];
 *              advertised.host [""]; max.connections [10000];
 *              replication to peer processes (klog/replication.h, klog(7)
 *              REPLICATION): replication.peers ["" = one node]
 *              ID@URL,...; replication.leader [-1 = lowest id];
 *              replica.lag.time.max.ms [30000];
 *              replica.fetch.wait.max.ms [500]; replica.fetch.max.bytes
 *              [1048576]; replica.fetch.backoff.ms [1000];
 *              replica.socket.timeout.ms [30000]; replica.heartbeat.ms [2000]
 *   topic      num.partitions [1] 1..10000; segment.bytes [1073741824];
 *              segment.ms [604800000]; index.interval.bytes [4096];
 *              max.message.bytes [1048576];
 *              cleanup.policy [delete] delete|compact|compact,delete
 *              (delete,compact is accepted too);
 *              retention.ms [604800000, -1 = forever]; retention.bytes [-1];
 *              delete.retention.ms [86400000] (tombstones, compacted topics);
 *              min.cleanable.dirty.ratio [0.5] 0..1, a string ("0.25");
 *              min.compaction.lag.ms [0];
 *              flush.messages [0 = off]; flush.ms [0 = off];
 *              compression.type [none] (recorded; the producer's decides);
 *              min.insync.replicas [0 = min(2, replicas)] (replication)
 *   producer   acks [1] 0|1|all|-1; linger.ms [5]; batch.size [1000000];
 *              batch.num.messages [10000]; compression.type [none] none|lz4|zstd;
 *              compression.level [-1 = codec default];
 *              compression.threads [-1 = min(4, CPUs), 0 = none]
 *              (threads compressing batches of 16 KiB and more);
 *              buffer.memory [33554432];
 *              max.block.ms [60000, 0 = fail at once with KLOG_EQUEUEFULL];
 *              enable.idempotence [true]; partitioner [default]
 *              default|hash|sticky|round_robin; delivery.report.queue [false];
 *              client.id [""] (kept, unused)
 *   consumer   auto.offset.reset [latest] earliest|latest|none;
 *              fetch.max.bytes [1048576]; max.poll.records [500];
 *              check.crcs [false]; client.id [""] (starts its group member ids);
 *              poll.spin.us [0] (klog's own: how long a blocking poll spins
 *              on the partitions' end offsets before it sleeps; a spin sees
 *              a record within a microsecond of its append, a sleep needs a
 *              thread wakeup - Disruptor's "busy spin, then block");
 *              consumer groups (klog/group.h): group.id [""];
 *              group.instance.id [""] (static membership);
 *              session.timeout.ms [45000] 1..3600000;
 *              heartbeat.interval.ms [3000] (accepted, unused: heartbeats
 *              ride on klog_consumer_poll); max.poll.interval.ms [300000];
 *              partition.assignment.strategy [range]
 *              range|roundrobin|cooperative-sticky; enable.auto.commit [true];
 *              auto.commit.interval.ms [5000, 0 = every poll]
 *
 * Threading: a klog_conf is not thread-safe; objects created from it copy
 * what they need, so it may be changed or freed right after.
 */
#ifndef KLOG_CONF_H
#define KLOG_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <klog/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klog_conf klog_conf;

/* Create a configuration holding every default.  Returns 0 or -ENOMEM. */
KLOG_API int klog_conf_new(klog_conf **out);

/* Free; NULL-safe. */
KLOG_API void klog_conf_free(klog_conf *conf);

/* Copy conf into a new object.  Returns 0, -EINVAL, -ENOMEM. */
KLOG_API int klog_conf_dup(const klog_conf *conf, klog_conf **out);

/*
 * Set key to a value given as a string ("5", "lz4", "true", "all").
 * Returns 0, or KLOG_ECONF with a one-line message naming the key in errbuf
 * (if errbuf is not NULL; truncated to errsize) when the key is unknown or
 * the value does not parse or is out of range; -EINVAL for NULL arguments.
 */
KLOG_API int klog_conf_set(klog_conf *conf, const char *key, const char *value,
                           char *errbuf, size_t errsize);

/* Typed setter for integer and boolean keys (booleans take 0 or 1). */
KLOG_API int klog_conf_set_int(klog_conf *conf, const char *key, int64_t value,
                               char *errbuf, size_t errsize);

/*
 * Write key's current value (or default) as a string into buf.  Returns the
 * length of the value (excluding the NUL; if >= bufsize the value was
 * truncated), KLOG_ECONF for an unknown key, -EINVAL for NULL arguments.
 */
KLOG_API int klog_conf_get(const klog_conf *conf, const char *key, char *buf, size_t bufsize);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_CONF_H */
