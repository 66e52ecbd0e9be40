/*
 * klog/producer.h - sending records.
 *
 * A producer batches records per partition (linger.ms, batch.size,
 * batch.num.messages), compresses each batch (compression.type), appends it
 * to the partition log and reports each record's fate: its offset, or an
 * error.  Its memory is bounded by buffer.memory: when that is used up,
 * klog_producer_send blocks up to max.block.ms, then fails with
 * KLOG_EQUEUEFULL (at once when max.block.ms is 0).
 *
 * Acknowledgement ("acks"):
 *   0, 1  a record is acknowledged once its batch is appended to the log
 *         (in the page cache; durable per the topic's flush.* settings).
 *   all   acknowledged only once its batch is durable (fdatasync); producers
 *         and threads appending to the same partition share syncs.
 *
 * Partitioning when a record names no partition ("partitioner"):
 *   default      key hash (XXH3-64 of the key, modulo the partition count);
 *                records with a null key stick to one partition until its
 *                batch is sealed, then move on (Kafka's KIP-480).
 *   hash         key hash; a null key goes to partition 0.
 *   sticky       every record sticks, key or not.
 *   round_robin  one partition after the other.
 *   a callback   klog_producer_set_partitioner.
 *
 * Idempotence (enable.idempotence, default true): every batch carries the
 * producer's id, epoch and a per-partition sequence number; the log refuses
 * a batch it already holds, so a retried batch is never written twice.
 * Sequence numbers advance only past batches the log accepted: a batch that
 * fails (its records reported with the error) leaves no gap behind it.
 *
 * Batch size: a batch is sealed at batch.size or before it would pass the
 * topic's max.message.bytes, whichever is smaller.
 *
 * Threading: a producer is thread-safe: any number of threads may call
 * klog_producer_send and klog_producer_flush on one handle.  A linger timer
 * runs on the producer's own thread.  Delivery callbacks run on whichever
 * thread completed the batch's acknowledgement: today the thread that
 * appended it (a sending thread or the producer's thread); for a
 * partition whose high watermark waits on replicas, the thread that moves
 * the watermark past it.  They run with no klog lock held; they must be quick and must not call
 * klog_producer_flush or klog_producer_close on the same producer.
 * Batches to compress are compressed on the producer's compression threads
 * (compression.threads), which never run callbacks.  The
 * delivery queue (delivery.report.queue=true) is for callers that cannot
 * take callbacks from foreign threads (Python): poll it with
 * klog_producer_poll_deliveries.
 */
#ifndef KLOG_PRODUCER_H
#define KLOG_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include <klog/conf.h>
#include <klog/topic.h>
#include <klog/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klog_producer klog_producer;

#define KLOG_PARTITION_ANY (-1)

/* A record header.  value NULL is a null value. */
typedef struct klog_header {
    const char *key;
    size_t key_len;
    const void *value;
    size_t value_len;
} klog_header;

/*
 * A record to send.  Initialise with KLOG_RECORD_INIT (or set struct_size
 * to sizeof(klog_record) and zero the rest): fields added later go at the
 * end and default to zero.
 *   key    NULL = a null key (key_len ignored)
 *   value  NULL = a null value, a tombstone for compacted topics
 *   timestamp  ms since the epoch; 0 = the time of the send, read from the
 *              kernel's coarse clock (CLOCK_REALTIME_COARSE: it may lag the
 *              precise clock by a few ms, typically up to two 4 ms ticks);
 *              pass your own timestamp where that matters
 *   opaque     handed back in the record's delivery report
 */
typedef struct klog_record {
    uint32_t struct_size;
    int32_t partition;          /* KLOG_PARTITION_ANY: the partitioner picks */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    int64_t timestamp;
    const klog_header *headers;
    size_t header_count;
    void *opaque;
} klog_record;

/* Every field named, in order and without designators: the same macro
 * compiles warning-free as C and as C++11..C++20 (-Wextra's
 * missing-field-initializers; designated initializers are C++20 only). */
#define KLOG_RECORD_INIT \
    { (uint32_t)sizeof(klog_record), KLOG_PARTITION_ANY, NULL, 0, NULL, 0, 0, NULL, 0, NULL }

/*
 * A record's fate.  topic points into the producer and stays valid until
 * the producer is closed.
 *
 * Growth (klog/klog.h): the delivery callback gets a pointer to a report
 * the producer owns, whose struct_size is the library's sizeof.
 * klog_producer_poll_deliveries copies reports into the caller's array
 * instead (they must outlive the call, and several threads may poll one
 * producer): that array is walked with the stride the caller sets in
 * out[0].struct_size, as klog_topic_describe walks klog_partition_info, so
 * a library with a longer klog_delivery never writes past the caller's
 * elements.
 */
typedef struct klog_delivery {
    uint32_t struct_size;
    int32_t partition;
    const char *topic;
    int64_t offset;     /* KLOG_OFFSET_NONE (-1) on error */
    int64_t timestamp;
    int err;            /* 0, or why the record was not written */
    void *opaque;
} klog_delivery;

typedef void (*klog_delivery_fn)(void *arg, const klog_delivery *report);
typedef int32_t (*klog_partitioner_fn)(void *arg, const char *topic, const void *key, size_t key_len,
                                       int32_t partition_count);

/*
 * Create a producer on instance k.  conf (may be NULL) supplies the
 * producer keys; a topic-only key is ignored, an unknown one cannot be set.
 * Returns 0, KLOG_ECONF (a value the producer cannot use: message in errbuf),
 * -EINVAL, -ENOMEM, -EAGAIN (no thread).
 */
KLOG_API int klog_producer_new(klog *k, const klog_conf *conf, klog_producer **out,
                               char *errbuf, size_t errsize);

/*
 * Set the delivery callback (NULL removes it).  Must be called before the
 * first klog_producer_send on p: once a send has been attempted, even one
 * that failed and was never accepted (an unknown topic, a full queue), the
 * callback is fixed and this returns KLOG_ESTATE; create another producer
 * to change it.  Returns 0, -EINVAL, KLOG_ESTATE.
 */
KLOG_API int klog_producer_set_delivery_cb(klog_producer *p, klog_delivery_fn fn, void *arg);

/*
 * Set a partitioner callback, used for records that name no partition
 * (replaces the "partitioner" key).  It must return a partition in
 * [0, partition_count); anything else fails the send with
 * KLOG_EUNKNOWN_PARTITION.  Must be called before the first send.
 */
KLOG_API int klog_producer_set_partitioner(klog_producer *p, klog_partitioner_fn fn, void *arg);

/*
 * Queue a record for topic.  Key, value and headers are copied: the caller's
 * buffers may be reused as soon as this returns.  A successful return means
 * queued, not written: the delivery report says what became of it.  If this
 * returns an error, no report will come for the record.
 * Returns 0; KLOG_EUNKNOWN_TOPIC; KLOG_EBADNAME (not a valid topic name);
 * KLOG_EUNKNOWN_PARTITION; KLOG_ETOOBIG (key
 * + value + headers over the topic's max.message.bytes); KLOG_EQUEUEFULL
 * (buffer.memory used up for max.block.ms); KLOG_EREADONLY (the partition
 * failed an fsync); KLOG_ECLOSED; -EINVAL (NULL or a bad struct_size,
 * or a record without a key for a topic whose cleanup.policy compacts);
 * -ENOMEM.  The delivery report of an appended record may carry
 * KLOG_EDISKFULL (the instance's disk budget is used up and its policy
 * refuses, or nothing more can be deleted) or -ENOSPC.
 */
KLOG_API int klog_producer_send(klog_producer *p, const char *topic, const klog_record *rec);

/*
 * Seal every open batch and wait until every record sent before the call
 * has its delivery report (callbacks called or reports queued).  Records
 * other threads send while it waits are not waited for.
 * timeout_ms < 0 waits for ever.  Returns 0, -ETIMEDOUT, -EINVAL.
 */
KLOG_API int klog_producer_flush(klog_producer *p, int timeout_ms);

/*
 * Move up to max queued delivery reports into out (delivery.report.queue
 * must be true), waiting up to timeout_ms (0 = do not wait, < 0 = for ever)
 * for the first.  Set out[0].struct_size = sizeof(klog_delivery) first:
 * the array is walked with that stride, and each report copied keeps it as
 * its struct_size (so the array can be passed again as it is).
 * Returns the number moved (0 on timeout), KLOG_ESTATE (the queue is off),
 * -EINVAL (p NULL, out NULL with max > 0, or out[0].struct_size below
 * the sizeof(klog_delivery) of klog 0.1 or not a multiple of its
 * alignment).
 */
KLOG_API int klog_producer_poll_deliveries(klog_producer *p, klog_delivery *out, size_t max,
                                           int timeout_ms);

/* Records queued or in flight, not yet reported (a gauge). */
KLOG_API int64_t klog_producer_outstanding(klog_producer *p);

/*
 * Flush everything (waiting as long as it takes), stop the producer's
 * thread, free.  Queued reports not yet polled are dropped.  NULL-safe.
 * Returns 0, or the first error any delivery report of this producer
 * carried (so a caller that ignores reports still learns that something
 * was not written).
 */
KLOG_API int klog_producer_close(klog_producer *p);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_PRODUCER_H */
