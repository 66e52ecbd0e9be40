/*
 * klog/consumer.h - reading records.
 *
 * A consumer reads the partitions assigned to it, each from its own
 * position, in offset order.  Records come back from klog_consumer_poll as
 * zero-copy views: uncompressed batches straight from the mapped segment,
 * compressed ones decompressed into a buffer the consumer owns.  A view is
 * valid until the next klog_consumer_poll or klog_consumer_close on that
 * consumer (LMDB's MDB_val rule) - copy what must live longer.
 *
 * Positions: klog_consumer_assign takes an offset, or KLOG_OFFSET_BEGINNING,
 * KLOG_OFFSET_END, or KLOG_OFFSET_DEFAULT (auto.offset.reset decides).  A
 * position that falls outside the log (below its start after retention, or
 * past its end) is reset per auto.offset.reset (earliest, latest) or, with
 * "none", reported by klog_consumer_poll as KLOG_EOFFSET.
 * Falling off the head is seen when the consumer next reads from the log,
 * not when retention (or DeleteRecords, or the disk budget) deletes the
 * segment: records the consumer had already read into its current view of
 * a partition (up to fetch.max.bytes, mapped before the deletion) are still
 * returned, with their offsets below the new start, and the reset (or
 * KLOG_EOFFSET) comes at the poll that needs more.  The mapping keeps them
 * valid; no record is returned that the log did not hold when it was read.
 *
 * Waiting: klog_consumer_poll blocks up to timeout_ms and returns as soon as
 * a record is appended to an assigned partition; klog_consumer_wakeup makes
 * a blocked (or the next) poll return at once from any thread; and
 * klog_consumer_fd gives a file descriptor that turns readable when records
 * arrive after a poll that returned none, for epoll, libuv or asyncio.
 *
 * Threading: one thread at a time uses a consumer (as Kafka's consumer),
 * except klog_consumer_wakeup and klog_consumer_fd, which any thread may
 * call.  Several consumers may read the same partitions independently.
 * A consumer is either assigned partitions explicitly (below) or, with
 * "group.id", subscribes and lets its group assign them (klog/group.h);
 * group work (heartbeats, rebalances and their callbacks, auto-commits)
 * then runs inside klog_consumer_poll on the calling thread.
 */
#ifndef KLOG_CONSUMER_H
#define KLOG_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include <klog/conf.h>
#include <klog/topic.h>
#include <klog/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klog_consumer klog_consumer;

/* KLOG_OFFSET_BEGINNING, KLOG_OFFSET_END, KLOG_OFFSET_DEFAULT and
 * KLOG_OFFSET_NONE: klog/topic.h. */

/*
 * A record read back.  All pointers are views valid until the next poll.
 * key NULL = null key; value NULL = null value.  Headers: klog_message_header.
 *
 * Growth: a poll hands out an array of pointers to messages, not an array
 * of messages (librdkafka's rule for rd_kafka_consume_batch), so that a
 * field added at the end in a later version changes nothing for programs
 * built against this header: msgs[i]->value is found the same way
 * whatever sizeof(klog_message) the library has.  A stride-walked array
 * (as klog_partition_info) would need an accessor call for every record
 * and would let msgs[i] compile and silently read the wrong bytes; the
 * pointers cost nothing per poll (the consumer sets them up once, when it
 * is created).  struct_size is the library's sizeof(klog_message).
 */
typedef struct klog_message {
    uint32_t struct_size;
    int32_t partition;
    const char *topic;
    int64_t offset;
    int64_t timestamp;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    size_t header_count;
    const void *headers_raw;   /* encoded headers, for klog_message_header */
    size_t headers_raw_len;
} klog_message;

/* Create a consumer on instance k (consumer keys from conf, may be NULL;
 * keys of other objects in it are ignored).  Returns 0, KLOG_EBADNAME
 * (group.id is not a valid group name), -EINVAL, -ENOMEM, -EMFILE (no
 * eventfd). */
KLOG_API int klog_consumer_new(klog *k, const klog_conf *conf, klog_consumer **out,
                               char *errbuf, size_t errsize);

/*
 * Start reading topic/partition at offset (see the position rules above).
 * Assigning a partition already assigned moves its position.  Returns 0,
 * KLOG_EUNKNOWN_TOPIC, KLOG_EUNKNOWN_PARTITION, KLOG_EOFFSET (an explicit
 * offset outside the log with auto.offset.reset=none), KLOG_ESTATE (the
 * consumer is subscribed to a group), -EINVAL, -ENOMEM.
 */
KLOG_API int klog_consumer_assign(klog_consumer *c, const char *topic, int32_t partition, int64_t offset);

/* Stop reading a partition.  Returns 0, -ENOENT (not assigned),
 * KLOG_ESTATE (subscribed to a group), -EINVAL. */
KLOG_API int klog_consumer_unassign(klog_consumer *c, const char *topic, int32_t partition);

/*
 * Return up to max.poll.records records across the assigned partitions.
 * *msgs receives an array of that many pointers to records, owned by the
 * consumer and valid (array and records) until the next poll:
 *     const klog_message *const *msgs;
 *     int n = klog_consumer_poll(c, 100, &msgs);
 *     for (int i = 0; i < n; i++) use(msgs[i]->value, msgs[i]->value_len);
 * Waits up to timeout_ms (0 = do not wait, < 0 = for ever) when nothing is
 * available.  Returns the number of records (0 on timeout or wakeup),
 * KLOG_EOFFSET (a position out of range with auto.offset.reset=none: the
 * first poll after it happened returns it, before any record; the partition
 * is then skipped until seeked), KLOG_ECORRUPT (a batch failed its
 * checksum, check.crcs; the position stays on it), KLOG_EFORMAT (a
 * batch of an unknown format or codec), -ENOMEM, -EINVAL, or -errno from
 * poll(2).  A subscribed consumer may also get, from its group work:
 * KLOG_ECONF (its partition.assignment.strategy differs from the group's),
 * KLOG_EBADNAME, and errors from setting up the group registry on first use
 * (KLOG_ECORRUPT: the offsets topic is damaged, -EAGAIN, -errno).
 */
KLOG_API int klog_consumer_poll(klog_consumer *c, int timeout_ms, const klog_message *const **msgs);

/* The i-th header of m.  Returns 0, -ENOENT (no such header),
 * KLOG_ECORRUPT.  value NULL = null value. */
KLOG_API int klog_message_header(const klog_message *m, size_t i, const char **key, size_t *key_len,
                                 const void **value, size_t *value_len);

/*
 * Move an assigned partition's position: an offset, KLOG_OFFSET_BEGINNING
 * or KLOG_OFFSET_END.  Returns 0, -ENOENT (not assigned), KLOG_EOFFSET (out
 * of range and auto.offset.reset=none), -EINVAL.
 */
KLOG_API int klog_consumer_seek(klog_consumer *c, const char *topic, int32_t partition, int64_t offset);

/* Seek to the first record whose timestamp is >= ts_ms (the end if none). */
KLOG_API int klog_consumer_seek_time(klog_consumer *c, const char *topic, int32_t partition, int64_t ts_ms);

/* The next offset poll will return for the partition.  Returns 0, -ENOENT. */
KLOG_API int klog_consumer_position(klog_consumer *c, const char *topic, int32_t partition, int64_t *offset);

/* Records between the position and the partition's end.  Returns 0, -ENOENT. */
KLOG_API int klog_consumer_lag(klog_consumer *c, const char *topic, int32_t partition, int64_t *lag);

/* Make a blocked poll (or the next one) return 0 at once.  Any thread. */
KLOG_API int klog_consumer_wakeup(klog_consumer *c);

/* An eventfd that turns readable when records arrive after a poll returned
 * none (or on wakeup); every poll clears it.  Owned by the consumer; do not
 * close it.  Any thread. */
KLOG_API int klog_consumer_fd(klog_consumer *c);

/* Release views, close the fd, free.  NULL-safe.  Returns 0. */
KLOG_API int klog_consumer_close(klog_consumer *c);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_CONSUMER_H */
