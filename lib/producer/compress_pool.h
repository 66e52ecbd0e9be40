/*
 * lib/producer/compress_pool.h - a producer's compression threads.
 *
 * A small pool of threads, owned by one producer, that runs jobs in the
 * order they were submitted (one FIFO; with more than one thread they
 * overlap, so they may finish out of order: the submitter puts order back
 * where it matters).  Each thread keeps one kf_codec for its life, handed
 * to every job it runs, so that compression contexts (zstd's CCtx, zlib's
 * streams) and scratches are made once per thread, never per batch.
 *
 * The pool allocates nothing per job: a job is embedded in what it works on
 * (the producer's batch) and linked through its own `next`.  Jobs never
 * block on the submitter; the submitter may wait for a job.
 */
#ifndef KLOG_PRODUCER_COMPRESS_POOL_H
#define KLOG_PRODUCER_COMPRESS_POOL_H

#include "format/format.h"

typedef struct kp_job {
    struct kp_job *next;
    /* Runs on a pool thread with no pool lock held.  *codec is that
     * thread's codec: NULL until a job makes one (kf_codec_new), then kept
     * and freed when the thread ends. */
    void (*run)(struct kp_job *job, kf_codec **codec);
} kp_job;

typedef struct kp_pool kp_pool;

/* Start n threads (1..KP_POOL_MAX), named `name` (up to 15 characters).
 * 0, -ENOMEM, or -EAGAIN when a thread cannot be started (none is left
 * running). */
#define KP_POOL_MAX 64
int kp_pool_new(kp_pool **out, int n, const char *name);

/* Queue a job; it runs on the first free thread.  Never fails, never
 * blocks for longer than the queue's lock.  Not after kp_pool_free. */
void kp_pool_submit(kp_pool *pool, kp_job *job);

/* Run what is queued, stop the threads and join them: when it returns, no
 * job runs or will run.  NULL-safe. */
void kp_pool_free(kp_pool *pool);

/* The pool's size when the producer's compression.threads is -1 (auto):
 * min(4, online CPUs), 0 on one CPU (where threads would only take turns
 * with the sender).  Measured (bench_compress, bench/RESULTS.md): zstd at
 * level 1 takes 4 threads to keep up with half the rate of an uncompressed
 * producer; on 2 CPUs, 2 or more split the work as the sender and the
 * writer did, 1 alone would serialise it. */
int kp_pool_auto_size(void);

#endif
