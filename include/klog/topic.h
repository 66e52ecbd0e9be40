/*
 * klog/topic.h - topic administration.
 *
 * A topic is a named set of partitions of an instance (klog/instance.h);
 * each partition is an ordered, durable log of records numbered by offset.
 *
 * Threading: every call below may be made from any thread.  Topic
 * administration calls block while they do file I/O (creating or removing
 * partition directories).
 */
#ifndef KLOG_TOPIC_H
#define KLOG_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include <klog/conf.h>
#include <klog/instance.h>
#include <klog/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest topic name, as Kafka allows. */
#define KLOG_TOPIC_NAME_MAX 249

/*
 * Offsets.  A partition numbers its records from 0 up; negative values
 * stand for positions that move, and for "no offset":
 *   KLOG_OFFSET_BEGINNING  the first record still stored (assign, seek)
 *   KLOG_OFFSET_END        the end: the offset the next record appended
 *                          gets (assign, seek, klog_topic_delete_records)
 *   KLOG_OFFSET_DEFAULT    where auto.offset.reset says (assign)
 *   KLOG_OFFSET_NONE       no offset at all: a partition-list entry that
 *                          carries none, a partition the group has no
 *                          committed offset for, the delivery report of a
 *                          record that was not written, an end or lag that
 *                          could not be read.
 * KLOG_OFFSET_NONE is a result, not a position: it has the value of
 * KLOG_OFFSET_END (-1, as before it had a name), so test for it before an
 * offset read from klog goes to klog_consumer_assign or klog_consumer_seek,
 * which would take it for the end.
 */
#define KLOG_OFFSET_BEGINNING (-2)
#define KLOG_OFFSET_END (-1)
#define KLOG_OFFSET_NONE (-1)
#define KLOG_OFFSET_DEFAULT (-1000)

/*
 * Create a topic with `partitions` partitions (>= 1; 0 takes
 * "num.partitions" from topic_conf or the instance).  topic_conf (may be
 * NULL) overrides the instance's topic keys for this topic.  Names follow
 * Kafka's rules: 1..249 characters of [a-zA-Z0-9._-], not "." or "..".
 * Returns 0, KLOG_EBADNAME, -EEXIST, KLOG_ECONF (a key that is not a topic
 * key, message in errbuf), -EINVAL, -errno from the file system.
 */
KLOG_API int klog_topic_create(klog *k, const char *name, int partitions,
                               const klog_conf *topic_conf, char *errbuf, size_t errsize);

/*
 * Delete a topic and all its data.  Producers get KLOG_EUNKNOWN_TOPIC from
 * then on; consumers already assigned to it may read what was there until
 * they unassign it (the files go when the last of them lets go).  The
 * internal topic __consumer_offsets cannot be deleted (-EPERM; delete
 * groups with klog_group_delete).  Returns 0, KLOG_EUNKNOWN_TOPIC,
 * KLOG_EBADNAME, -EPERM, -errno.
 */
KLOG_API int klog_topic_delete(klog *k, const char *name);

/*
 * Grow a topic to `total` partitions (Kafka never shrinks a topic).
 * Returns 0, KLOG_EUNKNOWN_TOPIC, KLOG_EBADNAME, -EINVAL (total not above
 * the current count), -errno (the new partitions are undone if the topic
 * metadata could not be rewritten).
 */
KLOG_API int klog_topic_add_partitions(klog *k, const char *name, int total);

/*
 * Change a topic's configuration (Kafka's incremental alter-configs): the
 * topic keys set in `set` (may be NULL) override the topic's, and the keys
 * named in unset[0..nunset) go back to the instance's value.  Recorded in
 * the topic metadata before it takes effect.  Retention, cleanup and
 * compaction keys apply from the next retention check or cleaning pass;
 * segment.bytes, segment.ms, index.interval.bytes, flush.* apply to the
 * partitions at once (a larger segment.bytes from their next segment);
 * max.message.bytes applies to the partitions at once and to producers
 * that start sending to the topic afterwards (a producer keeps the limit
 * it saw first); compression.type is recorded but klog producers compress
 * with their own compression.type.  Returns 0, KLOG_EUNKNOWN_TOPIC,
 * KLOG_EBADNAME, KLOG_ECONF (a key that is not a topic key, message in
 * errbuf), -EINVAL, -ENOMEM, -errno (the metadata could not be written:
 * nothing changed).
 */
KLOG_API int klog_topic_alter_config(klog *k, const char *name, const klog_conf *set,
                                     const char *const *unset, size_t nunset, char *errbuf,
                                     size_t errsize);

/*
 * List topic names, sorted.  *names receives an array of *count strings,
 * freed with klog_topic_list_free.  Returns 0, -EINVAL or -ENOMEM.
 */
KLOG_API int klog_topic_list(klog *k, char ***names, size_t *count);
KLOG_API void klog_topic_list_free(char **names, size_t count);

/* What klog_topic_describe reports per partition.  The caller sets
 * parts[0].struct_size = sizeof(klog_partition_info); the array is walked
 * with that stride, fields added later go at the end and are filled only
 * when struct_size covers them. */
typedef struct klog_partition_info {
    uint32_t struct_size;
    int32_t partition;
    int64_t start_offset;   /* first offset still stored */
    int64_t end_offset;     /* next offset to be written */
    int64_t durable_offset; /* offsets below are on disk */
    uint64_t size_bytes;    /* bytes in segments */
    uint32_t segments;
    int32_t error;          /* 0, or why the partition is read-only */
    uint64_t disk_bytes;    /* segment and index files: what the disk budget counts */
    int64_t clean_offset;   /* compacted topics: offsets below were cleaned at least once */
} klog_partition_info;

/*
 * Kafka's DeleteRecords: make every record of partition `partition` below
 * before_offset unreadable and free the segments that hold only such
 * records (at once; the start offset is durable before this returns).
 * before_offset KLOG_OFFSET_END (-1) means the partition's end.  Consumers
 * positioned below the new start get KLOG_EOFFSET or are reset by
 * auto.offset.reset.
 * *low_watermark (may be NULL) receives the partition's new start offset.
 * Returns 0, KLOG_EUNKNOWN_TOPIC, KLOG_EUNKNOWN_PARTITION, KLOG_EBADNAME,
 * KLOG_EOFFSET (before_offset above the end, or below -1), KLOG_EREADONLY,
 * -errno.
 */
KLOG_API int klog_topic_delete_records(klog *k, const char *name, int32_t partition,
                                       int64_t before_offset, int64_t *low_watermark);

/*
 * Repair a partition that klog_open found damaged (its error is
 * KLOG_ECORRUPT): truncate its log to the last good batch, whatever its
 * recovery point vouched for, accept segments missing at its start or end
 * as they are, make a missing partition directory again (empty: its offsets
 * start again at 0), rebuild a malformed leader-epoch-checkpoint from the
 * batches.  What was dropped is written to report (NUL-terminated, cut to
 * report_size; may be NULL).  The partition is then writable.  Records
 * dropped are gone for good: copy the directory first to keep them.
 * Returns 0, KLOG_ESTATE (the partition is not damaged: nothing done),
 * KLOG_EUNKNOWN_TOPIC, KLOG_EUNKNOWN_PARTITION, KLOG_EBADNAME, -EINVAL,
 * -errno (still damaged).
 */
KLOG_API int klog_topic_repair(klog *k, const char *name, int32_t partition, char *report,
                               size_t report_size);

/*
 * Describe a topic: fills up to max elements of parts (may be NULL when max
 * is 0) and, if config is not NULL, the topic's explicitly set keys as
 * "key=value\n" lines (truncated to config_size).  Returns the topic's
 * partition count (call with max 0 to size the array), KLOG_EUNKNOWN_TOPIC,
 * -EINVAL (struct_size of parts[0] too small).
 */
KLOG_API int klog_topic_describe(klog *k, const char *name, klog_partition_info *parts,
                                 size_t max, char *config, size_t config_size);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_TOPIC_H */
