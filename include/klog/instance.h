/*
 * klog/instance.h - the instance: one open data directory.
 *
 * An instance (klog) owns one data directory: it locks it against a second
 * writer, recovers every partition log in it, keeps the topics' metadata,
 * and runs the background work (retention, compaction, statistics files)
 * of everything opened on it.  Topics (klog/topic.h), producers
 * (klog/producer.h), consumers (klog/consumer.h) and groups (klog/group.h)
 * all hang off an instance; two instances in one process never share
 * state.
 *
 * Threading: a klog handle is thread-safe; every call below may be made from
 * any thread, except that klog_close must be called once, after every
 * producer and consumer of the instance is closed.  klog_open blocks while
 * it recovers the partitions; klog_close while it syncs them.
 */
#ifndef KLOG_INSTANCE_H
#define KLOG_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

#include <klog/conf.h>
#include <klog/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klog klog;

/*
 * Open (creating if needed) the data directory dir.  Only dir itself is
 * created (mode 0755 less the umask), not its missing parents: "a/b/data"
 * needs "a/b" to exist (-ENOENT otherwise; mkdir -p it first).  conf may be NULL
 * (defaults); its topic keys become the defaults of topics created later;
 * "io.backend" picks the I/O backend; "disk.budget.bytes" and
 * "disk.budget.policy" bound the disk the instance uses, and the
 * "log.retention.*" and "log.cleaner.*" keys drive retention and
 * compaction (klog(7), "Retention, compaction and the disk budget").  On failure *out is NULL and, if
 * errbuf is not NULL, a one-line message is written there.
 * Returns 0, KLOG_ELOCKED (another writer has the directory), KLOG_ECORRUPT
 * (a partition or the topic metadata is damaged where data was durable),
 * KLOG_ECONF, -ENOENT, -EACCES, -ENOMEM, other -errno.
 */
KLOG_API int klog_open(klog **out, const char *dir, const klog_conf *conf,
                       char *errbuf, size_t errsize);

/*
 * Sync and close every partition, stop background work, release the
 * directory lock.  NULL-safe.  Returns 0 or the first error met (the handle
 * is freed regardless).
 */
KLOG_API int klog_close(klog *k);

/* The I/O backend in use: "uring" or "posix".  Never NULL for a valid k. */
KLOG_API const char *klog_io_backend(const klog *k);

/*
 * Bytes the instance's partitions hold on disk (segment and index files)
 * and the disk budget ("disk.budget.bytes", 0 = none).  Either pointer may
 * be NULL.  Returns 0 or -EINVAL.
 */
KLOG_API int klog_disk_usage(klog *k, uint64_t *used, uint64_t *budget);

/* Free memory klog allocated for the caller as a plain buffer (the
 * documents of klog_stats and klog_group_describe).  NULL-safe.  Lists and
 * structs have their own free functions (klog_topic_list_free,
 * klog_group_list_free, klog_group_info_free). */
KLOG_API void klog_free(void *p);

enum klog_stats_format {
    KLOG_STATS_JSON = 0,       /* one JSON document */
    KLOG_STATS_PROMETHEUS = 1, /* Prometheus text exposition format 0.0.4 */
};

/*
 * The instance's statistics (*out, NUL-terminated, freed with klog_free):
 * the instance (disk use and budget, cleaner passes and bytes), every
 * partition of every topic (start/end/durable offsets, bytes, segments,
 * disk bytes, clean offset, records/bytes/batches appended since open,
 * fdatasync count, total and longest time), every live producer (records,
 * bytes, batches, compression ratio, delivery errors, queue depth in
 * records and bytes) and consumer (records, bytes, polls, partitions,
 * lag).  Counters count since the instance (or handle) was opened.  With
 * "statistics.interval.ms" set, the instance also writes both formats to
 * DIR/stats.json and DIR/stats.prom at that interval (for `klog stats`
 * while an application holds the directory).  Any thread.
 * Returns 0, -EINVAL, -ENOMEM.
 */
KLOG_API int klog_stats(klog *k, int format, char **out);

/* Severities of klog_log_cb, syslog's numbers (as librdkafka's log_cb). */
enum klog_log_level {
    KLOG_LOG_ERR = 3,     /* background work failed: data may not be durable or retained as configured */
    KLOG_LOG_WARNING = 4, /* something the application should look at; work goes on */
    KLOG_LOG_NOTICE = 5,  /* a normal but significant event (the disk budget deleted a segment) */
};

/*
 * The instance's log: what its background threads meet as it happens,
 * librdkafka's log_cb and error_cb in one.  level is a klog_log_level, err
 * the error code (negative; 0 for a notice), facility one of "fsync" (a
 * partition turned read-only after a failed fsync or checkpoint write),
 * "retention" (a retention pass failed), "cleaner" (a compaction pass
 * failed), "budget" (the disk budget deleted a segment, or could not make
 * room), "stats" (the statistics files could not be written), and msg one
 * line naming the partition or file.  Each failure is told once, when it
 * starts, not at every retry (a read-only partition stays so; klog_stats
 * shows its "error").
 */
typedef void (*klog_log_cb)(void *opaque, int level, int err, const char *facility, const char *msg);

/*
 * Send the instance's log to cb (NULL: nowhere, the default) with opaque.
 * cb runs with no klog lock held but its own, one call at a time, on klog's
 * threads: the background thread (which also delivers what other threads
 * met under a lock, such as a failed fsync, within a tick), a cleaner
 * thread, an appending thread the disk budget refused, or the thread of
 * klog_close (what the last syncs met).  That own lock is one this function
 * also takes: once it returns, the previous callback is not running and
 * will not be called again, so its opaque may be freed.  cb must return
 * soon and must not call klog functions (not even this one).
 * Any thread.  Returns 0 or -EINVAL (k NULL).
 */
KLOG_API int klog_set_log_cb(klog *k, klog_log_cb cb, void *opaque);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_INSTANCE_H */
