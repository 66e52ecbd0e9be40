/*
 * lib/producer/producer.c - batching, partitioning, bounded memory,
 * delivery reports, idempotent sequencing.
 *
 * Data flow: klog_producer_send encodes the record straight into the open
 * batch of its partition's accumulator (kp_acc).  A batch is sealed when it
 * is full, when linger.ms has passed (the producer's thread), on flush, or
 * at once with linger.ms=0.  Sealed batches wait in the accumulator's FIFO;
 * a batch to compress is handed at its seal to the producer's compression
 * threads (compress_pool.c, compression.threads), which compress batches
 * of any partition side by side.  One thread at a time (the drainer) takes
 * the FIFO, waits in order for each batch's compression (or compresses it
 * itself without those threads), appends them to the partition
 * (lib/partition) in one call (one fdatasync
 * for all of them with acks=all) and submits each batch's acknowledgement
 * to the partition.  The partition completes it - and the batch's records
 * are reported - when it says they are acknowledged: at once while it is
 * not replicated (inline, on the drainer), or later, in order, on the
 * thread that moves its high watermark (acks=all on a replicated leader).
 * Until then the batch keeps its buffer (charged to buffer.memory) and
 * counts as outstanding.  One drainer per partition keeps the partition's
 * order; sequence numbers are assigned by the drainer,
 * in that same order, and advance only past batches the log accepted, so a
 * batch that fails leaves no gap behind it.
 *
 * Locks, in order: acc->mu, then p->mem_mu or p->q_mu (never held across I/O
 * or a callback); p->mu guards the topic and accumulator tables (writers
 * only: readers walk them lock-free) and the start of the compression
 * threads (under acc->mu, once); the compression queue's lock is taken
 * under acc->mu and never holds another.
 *
 * Memory: every batch buffer is charged to buffer.memory while it exists;
 * released buffers go to a free list (any size up to batch.size; bounded by
 * the same budget), so a steady producer allocates nothing per batch.  The
 * free list shrinks: buffers it did not need for a whole KP_POOL_DECAY_NS
 * are given back (pool_decay).  Buffers above KP_BUF_MAP_MIN are mappings
 * of their own, so that giving one back (or shrinking it) returns its
 * pages to the system at once; a malloc'd one would stay resident in the
 * allocator's free memory, as deep as the worst stall ever made a batch
 * (issue 18's soak).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <xxhash.h>

#include <klog/klog.h>

#include "common/common.h"
#include "producer/compress_pool.h"
#include "producer/producer.h"
#include "topic/topic.h"

#define KP_BUCKETS 64
#define KP_HDR_STACK 16

typedef struct kp_topic kp_topic;

typedef struct kp_batch {
    struct kp_batch *next;
    uint8_t *buf;
    size_t cap;
    kf_builder b;
    uint64_t created_ns;
    int32_t base_seq;
    int codec;         /* KF_CODEC_*: the topic's compression.type or the producer's */
    /* per-record opaque and timestamp, kept only when reports are wanted */
    void **opaque;
    int64_t *ts;
    size_t rcap;       /* capacity of opaque and of ts */
    bool standard;     /* cap <= batch_cap (not one oversized record's):
                        * goes back to the pool */
    /* Finishing (header, compression, checksum; batch_finish) is done by
     * the drainer, or, for a compressed batch, by a compression thread
     * (compression.threads; submitted at the seal as `job`), or without
     * those threads by the sender that sealed it while the drainer was
     * busy with earlier ones.  Either way it is claimed at the seal, under
     * acc->mu, and the drainer waits for it; the compression of one batch
     * overlaps the compression and write of the ones before. */
    _Atomic int fin;   /* KP_FIN_* */
    kp_job job;        /* on the compression threads' queue */
    int fin_rc;        /* 0, or why it could not be finished */
    size_t out_len;    /* finished bytes, at buf */
    /* After the append: the partition completes ack (batch_acked) when
     * the records are acknowledged. */
    kpart_ack ack;
    struct kp_acc *acc;
    int64_t base_offset; /* where the log put it (-1: unknown or failed) */
} kp_batch;

enum { KP_FIN_NONE = 0, KP_FIN_CLAIMED, KP_FIN_DONE };

typedef struct kp_acc {
    pthread_mutex_t mu;
    kp_batch *cur;
    kp_batch *ready, *ready_tail;
    bool draining;
    int32_t next_seq;           /* the log's next expected sequence (drainer only) */
    int32_t seal_seq;           /* sequence for the next sealed batch (under mu) */
    size_t next_cap;            /* buffer size for the next batch (under mu; batch_get) */
    /* For the producer thread's sweep (seal_all), which reads them without
     * mu so as to lock only the accumulators with work: created_ns of the
     * open batch once it holds a record (UINT64_MAX: none), and whether
     * sealed batches wait in ready.  Written under mu. */
    _Atomic uint64_t open_ns;
    _Atomic bool has_ready;
    pthread_cond_t fin_cv;      /* a claimed batch got finished (under mu) */
    int fin_waiters;
    uint64_t sealed;            /* batches sealed so far (under mu) */
    _Atomic uint64_t done;      /* batches reported so far (drainer, in order) */
    kp_topic *t;
    int32_t partition;
    struct kp_acc *all_next; /* producer-wide list, for linger and flush */
    _Atomic uint64_t st_records, st_bytes; /* sent through it (under mu; read by klog_stats) */
    klog_producer *p;   /* last: the fields above keep their cache lines */
} kp_acc;

struct kp_topic {
    struct kp_topic *next;        /* bucket chain */
    kt_topic *kt;                 /* reference held until the producer closes */
    size_t max_record;            /* max.message.bytes */
    bool compacted;               /* cleanup.policy has compact: keys required */
    size_t batch_limit;           /* a batch is sealed before it passes this */
    _Atomic(kp_acc *) *acc;       /* [KT_MAX_PARTITIONS], created lazily */
    _Atomic int32_t sticky;       /* current sticky partition, -1 = none */
    _Atomic uint32_t rr;
    char name[KLOG_TOPIC_NAME_MAX + 1]; /* copy of kt->name, for the hot lookup */
};

struct klog_producer {
    klog *k;
    /* statistics (klog_stats): registered with the instance while open */
    kt_handle sh;
    char client_id[256];
    _Atomic uint64_t st_batches, st_raw, st_out, st_errors; /* records and bytes: per kp_acc */
    /* configuration, read once */
    int acks;
    uint64_t linger_ns;
    size_t batch_size, batch_cap;
    int32_t batch_records;
    int codec;
    int level;
    int64_t buffer_memory;
    int64_t max_block_ms;
    bool idempotent;
    int partitioner;
    bool want_queue;
    int64_t producer_id;
    int16_t epoch;

    klog_delivery_fn dr_fn;
    void *dr_arg;
    klog_partitioner_fn part_fn;
    void *part_arg;
    _Atomic bool started;     /* first send happened: callbacks are fixed */

    pthread_mutex_t mu;       /* table writers */
    _Atomic(kp_topic *) buckets[KP_BUCKETS];
    _Atomic(kp_acc *) accs;   /* all accumulators (push-only list) */
    _Atomic(kp_topic *) last_topic; /* one-entry cache in front of buckets */

    pthread_mutex_t mem_mu;
    pthread_cond_t mem_cv;
    int64_t mem_used;         /* written under mem_mu (mem_add), read by stats */
    kp_batch *pool;           /* free batches (standard: not oversized), most
                               * recently given back first */
    size_t pool_len;          /* batches in pool */
    size_t pool_low;          /* the fewest in pool since pool_tick */
    uint64_t pool_tick;       /* when pool_decay last ran (klog__now_ns) */

    pthread_mutex_t codec_mu;
    kf_codec *codecs[8];
    int ncodecs;

    /* compression threads (compress_pool.c): started at the first
     * compressed batch, so a producer that never compresses has none */
    int cthreads;                 /* compression.threads, resolved: 0 = none */
    _Atomic(kp_pool *) cpool;
    _Atomic bool cpool_failed;    /* could not start them: compress as without */

    pthread_mutex_t q_mu;     /* delivery queue and flush waits */
    pthread_cond_t q_cv;      /* delivery queue: reports and free slots */
    pthread_cond_t flush_cv;
    pthread_cond_t linger_cv; /* the producer thread's sleep (own cv: a report
                               * signal must never be taken by it) */
    klog_delivery *q;
    size_t qcap, qhead, qlen;
    size_t qresv;             /* slots reserved: records sent and not yet
                               * polled (includes qlen); never above qcap */
    _Atomic int64_t outstanding;
    _Atomic int first_err;    /* first delivery error, returned by close */
    _Atomic int flushers;     /* threads waiting in flush: wake them per batch */

    pthread_t thread;
    bool thread_running;
    bool stopping;
    uint64_t kicks;           /* full batches handed to the thread (under q_mu) */
    _Atomic bool closed;
};

static void abs_deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* ---- memory budget and batch buffers ------------------------------------- */

/* Batch buffers above this size are mappings of their own (buf_*): what
 * a stall makes deeper than a steady linger.ms batch (a few KiB) goes back
 * to the system when freed; below it, malloc (no system call, and no page
 * of its own for a producer to thousands of partitions). */
#define KP_BUF_MAP_MIN (16u << 10)

static size_t buf_pages(size_t cap)
{
    return (cap + 4095u) & ~(size_t)4095u; /* mappings are whole pages (4 KiB or a multiple) */
}

/* A batch buffer of cap bytes: malloc'd up to KP_BUF_MAP_MIN, a private
 * anonymous mapping above.  NULL when memory is short. */
static uint8_t *buf_alloc(size_t cap)
{
    if (cap <= KP_BUF_MAP_MIN)
        return malloc(cap);
    void *m = mmap(NULL, buf_pages(cap), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

static void buf_free(uint8_t *buf, size_t cap)
{
    if (!buf)
        return;
    if (cap <= KP_BUF_MAP_MIN)
        free(buf);
    else
        munmap(buf, buf_pages(cap));
}

/* ThreadSanitizer intercepts munmap but not mremap: the pages a moved or
 * shrunk mapping leaves keep their shadow, and another thread's buffer
 * mapped there later was reported as racing with the old writes
 * (bench_compress_quick under TSan in a CI rehearsal).  Under TSan a
 * resize is a new mapping, a copy and an munmap. */
#if defined(__SANITIZE_THREAD__)
#define KP_NO_MREMAP 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KP_NO_MREMAP 1
#endif
#endif

/* buf (of cap bytes) resized to ncap, its first `keep` bytes kept (keep
 * <= both): the buffer, moved or not, or NULL with buf untouched when
 * memory is short.  A shrinking mapping gives its tail pages back. */
static uint8_t *buf_resize(uint8_t *buf, size_t cap, size_t ncap, size_t keep)
{
    bool mapped = cap > KP_BUF_MAP_MIN, nmapped = ncap > KP_BUF_MAP_MIN;
    if (!mapped && !nmapped)
        return realloc(buf, ncap);
    if (mapped && nmapped) {
        if (buf_pages(cap) == buf_pages(ncap))
            return buf;
#ifndef KP_NO_MREMAP
        void *m = mremap(buf, buf_pages(cap), buf_pages(ncap), MREMAP_MAYMOVE);
        return m == MAP_FAILED ? NULL : m;
#endif
    }
    uint8_t *nb = buf_alloc(ncap);
    if (nb) {
        memcpy(nb, buf, keep);
        buf_free(buf, cap);
    }
    return nb;
}

static void batch_free(kp_batch *b)
{
    if (b) {
        buf_free(b->buf, b->cap);
        free(b->opaque);
        free(b->ts);
        free(b);
    }
}

/* mem_used += delta (mem_mu held): an atomic store, as producer_stats
 * reads it without the lock. */
static inline void mem_add(klog_producer *p, int64_t delta)
{
    __atomic_store_n(&p->mem_used, p->mem_used + delta, __ATOMIC_RELAXED);
}

/* Pool bookkeeping (mem_mu held): the batch at *link taken out. */
static kp_batch *pool_take(klog_producer *p, kp_batch **link)
{
    kp_batch *b = *link;
    *link = b->next;
    b->next = NULL;
    if (--p->pool_len < p->pool_low)
        p->pool_low = p->pool_len;
    return b;
}

static kp_batch *pool_pop(klog_producer *p)
{
    return pool_take(p, &p->pool);
}

/* How many pooled batches batch_get looks at for one that fits. */
#define KP_POOL_SCAN 8

/* A pooled batch for a buffer of cap bytes (mem_mu held, pool not empty):
 * among the first few, one that holds cap without being twice as big,
 * else the most recent.  Partitions at different rates want different
 * sizes; taking the head for each would resize a buffer at nearly every
 * batch (and across KP_BUF_MAP_MIN, map and unmap one). */
static kp_batch *pool_fit(klog_producer *p, size_t cap)
{
    kp_batch **link = &p->pool;
    for (int i = 0; *link && i < KP_POOL_SCAN; i++, link = &(*link)->next)
        if ((*link)->cap >= cap && (*link)->cap / 2 < cap)
            return pool_take(p, link);
    return pool_pop(p);
}

static void pool_push(klog_producer *p, kp_batch *b)
{
    b->next = p->pool;
    p->pool = b;
    p->pool_len++;
}

/* How long a pooled batch may go unneeded before it is given back. */
#define KP_POOL_DECAY_NS 1000000000ull

/* Give back the pooled batches the producer did not need since the last
 * time (the pool's low-water mark: that many sat there unused all along),
 * once KP_POOL_DECAY_NS has passed; they are the ones at the pool's tail,
 * the least recently given back.  A steady producer keeps the few it
 * cycles through; what a stall or a burst added goes back within two
 * periods.  Run by the producer thread (or, without one, on each
 * release).  mem_mu held; returns the list to free (batch_free_list)
 * once it is let go, the unmaps being system calls. */
static kp_batch *pool_decay_locked(klog_producer *p, uint64_t now)
{
    if (now - p->pool_tick < KP_POOL_DECAY_NS)
        return NULL;
    kp_batch *drop = NULL;
    size_t n = KLOG_MIN(p->pool_low, p->pool_len);
    if (n > 0) {
        kp_batch **link = &p->pool;
        for (size_t i = p->pool_len - n; i > 0; i--)
            link = &(*link)->next;
        drop = *link;
        *link = NULL;
        p->pool_len -= n;
        for (kp_batch *b = drop; b; b = b->next)
            mem_add(p, -(int64_t)b->cap);
        pthread_cond_broadcast(&p->mem_cv);
    }
    p->pool_low = p->pool_len;
    p->pool_tick = now;
    return drop;
}

static void batch_free_list(kp_batch *b)
{
    for (kp_batch *next; b; b = next) {
        next = b->next;
        batch_free(b);
    }
}

/* The smallest batch buffer.  A partition's first batch starts this small
 * and doubles as records come (batch_grow), up to batch.size + header;
 * each later batch starts at the size its predecessor needed
 * (kp_acc.next_cap).  So a producer to thousands of partitions, each of
 * which gets a few records per linger.ms, holds a few KiB per partition
 * rather than batch.size each: 4,096 partitions x 1 MB would be
 * buffer.memory (32 MiB) 128 times over, and every send would wait for a
 * batch to be written (bench_compare's scale workload, issue 21). */
#define KP_BATCH_MIN 2048u

/* Charge delta bytes of batch buffer to buffer.memory, giving idle pooled
 * buffers back first if that makes room; false if it does not (a lone
 * oversized record is let through when nothing else is charged, so a
 * record up to max.message.bytes can always be sent).  mem_mu held. */
static bool mem_charge(klog_producer *p, size_t delta)
{
    /* Idle pooled buffers are only a cache: give them back before saying
     * no, so that a record bigger than a standard batch is not refused for
     * ever because the pool holds the budget. */
    while (p->mem_used + (int64_t)delta > p->buffer_memory && p->pool) {
        kp_batch *idle = pool_pop(p);
        mem_add(p, -(int64_t)idle->cap);
        batch_free(idle);
    }
    if (p->mem_used + (int64_t)delta > p->buffer_memory && p->mem_used > 0)
        return false;
    mem_add(p, (int64_t)delta);
    return true;
}

/* Take a batch able to hold at least `need` bytes, its buffer of about
 * `want` bytes (a hint, within KP_BATCH_MIN..batch_cap): a released one
 * from the pool, its buffer grown to that, or shrunk to it when more than
 * twice as big (so that a pool of buffers once grown does not hold much
 * more than the partitions now need, and a want that moves by one step
 * does not resize every time), or a new one.  Returns NULL when the
 * budget is used up (the caller waits or fails).  mem_mu not held. */
static kp_batch *batch_get(klog_producer *p, size_t need, size_t want)
{
    size_t cap = p->batch_cap;
    if (need > cap)
        cap = need; /* one oversized record */
    else if (want < cap)
        cap = KLOG_MAX(KLOG_MAX(want, (size_t)KP_BATCH_MIN), need);
    pthread_mutex_lock(&p->mem_mu);
    if (cap <= p->batch_cap && p->pool) {
        kp_batch *b = pool_fit(p, cap);
        if (cap > b->cap && !mem_charge(p, cap - b->cap)) {
            if (b->cap < need) { /* no room to grow it enough */
                pool_push(p, b);
                pthread_mutex_unlock(&p->mem_mu);
                return NULL;
            }
            cap = b->cap; /* as it is: it grows later if there is room */
        } else if (cap < b->cap && b->cap / 2 >= cap) {
            mem_add(p, -(int64_t)(b->cap - cap));
        } else if (cap < b->cap) {
            cap = b->cap; /* within twice what is wanted: as it is */
        }
        pthread_mutex_unlock(&p->mem_mu);
        if (cap != b->cap) {
            uint8_t *nb = buf_resize(b->buf, b->cap, cap, 0);
            if (nb) {
                b->buf = nb;
                b->cap = cap;
                /* report arrays bigger than the buffer they describe (a
                 * record takes more than 16 bytes): from a deeper batch */
                if (b->rcap > 256 && b->rcap * (sizeof *b->opaque + sizeof *b->ts) > cap) {
                    free(b->opaque);
                    free(b->ts);
                    b->opaque = NULL;
                    b->ts = NULL;
                    b->rcap = 0;
                }
            } else { /* the old buffer stays: so does its charge */
                pthread_mutex_lock(&p->mem_mu);
                mem_add(p, (int64_t)b->cap - (int64_t)cap);
                if (b->cap < need) {
                    pool_push(p, b);
                    b = NULL;
                }
                pthread_mutex_unlock(&p->mem_mu);
            }
        }
        return b;
    }
    bool ok = mem_charge(p, cap);
    pthread_mutex_unlock(&p->mem_mu);
    if (!ok)
        return NULL;
    kp_batch *b = calloc(1, sizeof *b);
    if (b && !(b->buf = buf_alloc(cap))) {
        free(b);
        b = NULL;
    }
    if (!b) {
        pthread_mutex_lock(&p->mem_mu);
        mem_add(p, -(int64_t)cap);
        pthread_mutex_unlock(&p->mem_mu);
        return NULL;
    }
    b->cap = cap;
    b->standard = cap <= p->batch_cap;
    return b;
}

/* Make the open batch b room for `more` bytes past its length by growing
 * its buffer (doubling, up to batch_cap).  0, or -ENOBUFS when it is at
 * batch_cap already, the budget has no room or memory is short: the
 * caller seals it instead.  acc->mu held (b is the open batch). */
static int batch_grow(klog_producer *p, kp_batch *b, size_t more)
{
    size_t cap = KLOG_MIN(KLOG_MAX(b->cap * 2, b->b.len + more), p->batch_cap);
    if (b->cap >= p->batch_cap || cap <= b->cap)
        return -ENOBUFS;
    size_t delta = cap - b->cap;
    pthread_mutex_lock(&p->mem_mu);
    bool ok = mem_charge(p, delta);
    pthread_mutex_unlock(&p->mem_mu);
    if (!ok)
        return -ENOBUFS;
    uint8_t *nb = buf_resize(b->buf, b->cap, cap, b->b.len);
    if (!nb) {
        pthread_mutex_lock(&p->mem_mu);
        mem_add(p, -(int64_t)delta);
        pthread_cond_broadcast(&p->mem_cv);
        pthread_mutex_unlock(&p->mem_mu);
        return -ENOBUFS;
    }
    b->buf = b->b.buf = nb;
    b->cap = b->b.cap = cap;
    return 0;
}

static void batch_put(klog_producer *p, kp_batch *b)
{
    kp_batch *drop = NULL;
    pthread_mutex_lock(&p->mem_mu);
    if (b->standard && !atomic_load(&p->closed)) {
        pool_push(p, b);
        b = NULL;
    } else {
        mem_add(p, -(int64_t)b->cap);
    }
    if (!p->thread_running) /* else the producer thread does it */
        drop = pool_decay_locked(p, klog__now_ns());
    pthread_cond_broadcast(&p->mem_cv);
    pthread_mutex_unlock(&p->mem_mu);
    batch_free(b);
    batch_free_list(drop);
}

/* The batch codec (KF_CODEC_*) a compression.type value (KC_COMPRESSION_*)
 * names; other (the topic value "producer"): other_codec. */
static int codec_of(int64_t ctype, int other_codec)
{
    switch (ctype) {
    case KC_COMPRESSION_NONE: return KF_CODEC_NONE;
    case KC_COMPRESSION_LZ4: return KF_CODEC_LZ4;
    case KC_COMPRESSION_ZSTD: return KF_CODEC_ZSTD;
    case KC_COMPRESSION_GZIP: return KF_CODEC_GZIP;
    case KC_COMPRESSION_SNAPPY: return KF_CODEC_SNAPPY;
    default: return other_codec;
    }
}

/* The codec for a new batch of topic t: the topic's compression.type when
 * it names one (set at creation, by klog_topic_alter_config, or as an
 * instance default), as a Kafka broker recompresses to the topic's codec;
 * else ("producer", or not set) the producer's own.  Read at every batch
 * start, so an alter applies from the next batch on. */
static int topic_codec(const klog_producer *p, const kp_topic *t)
{
    int64_t ctype; /* one read: the topic's conf may change meanwhile (klog__conf_publish) */
    if (!klog__conf_int_isset(t->kt->conf, KC_COMPRESSION_TYPE, &ctype))
        return p->codec;
    return codec_of(ctype, p->codec);
}

static void batch_start(klog_producer *p, kp_batch *b, const kp_topic *t)
{
    kf_builder_init(&b->b, b->buf, b->cap, t->max_record);
    b->codec = topic_codec(p, t);
    b->created_ns = klog__now_ns();
    b->next = NULL;
    b->base_seq = -1;
    atomic_store_explicit(&b->fin, KP_FIN_NONE, memory_order_relaxed);
}

/* Remember a record's opaque and timestamp for its report. */
static int batch_note(kp_batch *b, void *opaque, int64_t ts)
{
    uint32_t i = (uint32_t)b->b.count - 1;
    if (i >= b->rcap) {
        /* Both arrays grow from rcap to the same capacity; when the second
         * fails, the first is merely larger than rcap says. */
        size_t need = KLOG_MAX((size_t)i + 1, (size_t)256), oc = b->rcap, tc = b->rcap;
        int rc = klog__vec_reserve(&b->opaque, &oc, need, sizeof *b->opaque);
        if (rc == 0)
            rc = klog__vec_reserve(&b->ts, &tc, need, sizeof *b->ts);
        if (rc < 0)
            return rc;
        b->rcap = tc;
    }
    b->opaque[i] = opaque;
    b->ts[i] = ts;
    return 0;
}

/* ---- codecs ---------------------------------------------------------------- */

static kf_codec *codec_get(klog_producer *p)
{
    kf_codec *c = NULL;
    pthread_mutex_lock(&p->codec_mu);
    if (p->ncodecs > 0)
        c = p->codecs[--p->ncodecs];
    pthread_mutex_unlock(&p->codec_mu);
    if (!c && kf_codec_new(&c) < 0)
        return NULL;
    return c;
}

static void codec_put(klog_producer *p, kf_codec *c)
{
    pthread_mutex_lock(&p->codec_mu);
    if (p->ncodecs < (int)KLOG_ARRAY_LEN(p->codecs)) {
        p->codecs[p->ncodecs++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&p->codec_mu);
    kf_codec_free(c);
}

/* ---- reports ---------------------------------------------------------------- */

static void report(klog_producer *p, const klog_delivery *d)
{
    if (p->dr_fn)
        p->dr_fn(p->dr_arg, d);
    if (p->want_queue) {
        pthread_mutex_lock(&p->q_mu);
        /* the slot was reserved at send: there is room */
        p->q[(p->qhead + p->qlen) % p->qcap] = *d;
        p->qlen++;
        /* broadcast: senders waiting for a free slot share this condvar and
         * must not take a poller's wakeup */
        pthread_cond_broadcast(&p->q_cv);
        pthread_mutex_unlock(&p->q_mu);
    }
}

static void batch_done(klog_producer *p, kp_acc *a, kp_batch *b, int64_t base, int err)
{
    int32_t n = b->b.count;
    if (err) {
        int zero = 0;
        atomic_compare_exchange_strong(&p->first_err, &zero, err);
        atomic_fetch_add_explicit(&p->st_errors, (uint64_t)n, memory_order_relaxed);
    }
    if (p->dr_fn || p->want_queue) {
        for (int32_t i = 0; i < n; i++) {
            klog_delivery d = {
                .struct_size = sizeof d,
                .topic = a->t->kt->name,
                .partition = a->partition,
                .offset = err || base < 0 ? -1 : base + i,
                .timestamp = b->ts[i],
                .err = err,
                .opaque = b->opaque[i],
            };
            report(p, &d);
        }
    }
    batch_put(p, b);
    /* outstanding first: a flush that sees `done` move must also see the
     * records gone from outstanding.  Completions come in the partition's
     * order, so `done` counts this accumulator's batches in seal order. */
    int64_t left = atomic_fetch_sub(&p->outstanding, n) - n;
    atomic_fetch_add_explicit(&a->done, 1, memory_order_release);
    if (left == 0 || atomic_load(&p->flushers) > 0) {
        pthread_mutex_lock(&p->q_mu);
        pthread_cond_broadcast(&p->flush_cv);
        pthread_mutex_unlock(&p->q_mu);
    }
}

/* The partition acknowledged a batch (or failed it): report its records.
 * Runs on the drainer (inline) or on the thread that moved the partition's
 * high watermark, with no lock held. */
static void batch_acked(kpart_ack *ack, int err)
{
    kp_batch *b = (kp_batch *)((char *)ack - offsetof(kp_batch, ack));
    kp_acc *a = b->acc;
    batch_done(a->p, a, b, b->base_offset, err);
}

/* ---- sealing and draining ------------------------------------------------------ */

/* A producer sequence number n records on (31 bits, wrapping to 0). */
static inline int32_t seq_after(int32_t seq, int32_t n)
{
    return (int32_t)(((uint32_t)seq + (uint32_t)n) & 0x7fffffffu);
}

static void kick(klog_producer *p);
static void batch_job(kp_job *j, kf_codec **codec);

/* The compression threads, started at the first batch that needs them;
 * NULL when there are none (compression.threads 0, or they could not be
 * started: batches are then compressed as without them).  Takes p->mu
 * (after acc->mu: the only place the two nest) the first time. */
static kp_pool *cpool_get(klog_producer *p)
{
    kp_pool *pool = atomic_load_explicit(&p->cpool, memory_order_acquire);
    if (KLOG_LIKELY(pool != NULL) || p->cthreads == 0 || atomic_load_explicit(&p->cpool_failed, memory_order_relaxed))
        return pool;
    pthread_mutex_lock(&p->mu);
    pool = atomic_load_explicit(&p->cpool, memory_order_relaxed);
    if (!pool && !atomic_load_explicit(&p->cpool_failed, memory_order_relaxed)) {
        if (kp_pool_new(&pool, p->cthreads, "klog-compress") == 0)
            atomic_store_explicit(&p->cpool, pool, memory_order_release);
        else
            atomic_store_explicit(&p->cpool_failed, true, memory_order_relaxed);
    }
    pthread_mutex_unlock(&p->mu);
    return pool;
}

/* A batch smaller than this is compressed by its drainer, not handed to the
 * compression threads: zstd compresses 16 KiB of JSON in about 25 us
 * (620 MB per CPU-second, bench/RESULTS.md), and a hand-off costs a wakeup
 * on each side. */
#define KP_POOL_MIN_BYTES 16384

/* Move the open batch to the ready FIFO (acc->mu held).  A batch to
 * compress (KP_POOL_MIN_BYTES or more) is also handed to the compression
 * threads, claimed, when another thread will write it (linger.ms > 0: the
 * producer's thread or a flush): true then.  With linger.ms 0 the sender
 * writes its batch at once itself, and a hand-off would only add two
 * thread switches to its wait. */
static bool seal_locked(klog_producer *p, kp_acc *a)
{
    kp_batch *b = a->cur;
    if (!b)
        return false;
    a->cur = NULL;
    atomic_store_explicit(&a->open_ns, UINT64_MAX, memory_order_relaxed);
    if (b->b.count == 0) {
        batch_put(p, b);
        return false;
    }
    a->sealed++;
    /* The next batch starts at about the size this one needed (half as
     * much again, a power of two): full size while batches fill up, a few
     * KiB where linger.ms seals them with a few records each. */
    size_t want = KP_BATCH_MIN;
    while (want < b->b.len + b->b.len / 2 && want < p->batch_cap)
        want *= 2;
    a->next_cap = want;
    if (p->idempotent) {
        /* the sequence the log will expect if every batch before this one
         * is written; the drainer restamps it if one was not */
        b->base_seq = a->seal_seq;
        a->seal_seq = seq_after(a->seal_seq, b->b.count);
    }
    /* Records count in p->outstanding from here (one locked add per batch,
     * not per send); until now, in the open batch's count. */
    atomic_fetch_add_explicit(&p->outstanding, b->b.count, memory_order_relaxed);
    if (a->ready_tail)
        a->ready_tail->next = b;
    else
        a->ready = b;
    a->ready_tail = b;
    atomic_store_explicit(&a->has_ready, true, memory_order_relaxed);
    /* KIP-480: a sealed batch moves the sticky partition on */
    if (atomic_load_explicit(&a->t->sticky, memory_order_relaxed) == a->partition)
        atomic_store_explicit(&a->t->sticky, -1, memory_order_relaxed);
    kp_pool *pool;
    if (b->codec == KF_CODEC_NONE || p->linger_ns == 0 || b->b.len < KP_POOL_MIN_BYTES || !(pool = cpool_get(p)))
        return false;
    /* base_seq is set: the drainer restamps the finished bytes if the log
     * expects another sequence by then, as for a sender's claim */
    atomic_store_explicit(&b->fin, KP_FIN_CLAIMED, memory_order_relaxed);
    b->acc = a;
    b->job.run = batch_job;
    kp_pool_submit(pool, &b->job);
    return true;
}

/* Header, compression and checksum of a sealed batch, with b->base_seq as
 * its base_sequence; the result (at b->buf) in b->out_len, or the error in
 * b->fin_rc. */
static void batch_finish(klog_producer *p, kp_batch *b, kf_codec **codec)
{
    kf_batch_meta meta = {
        .producer_id = p->idempotent ? p->producer_id : -1,
        .producer_epoch = p->idempotent ? p->epoch : -1,
        .base_sequence = p->idempotent ? b->base_seq : -1,
        .attributes = 0,
        .codec = (enum kf_codec_id)b->codec,
        /* the producer's level is for its own codec; a topic's codec
         * (another one) compresses at its default */
        .level = b->codec == p->codec ? p->level : 0,
    };
    const uint8_t *out = NULL;
    size_t len = 0;
    int rc = 0;
    if (b->codec != KF_CODEC_NONE && !*codec && !(*codec = codec_get(p)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = kf_builder_finish(&b->b, &meta, *codec, &out, &len);
    if (rc == 0) {
        atomic_fetch_add_explicit(&p->st_batches, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->st_raw, b->b.len, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->st_out, len, memory_order_relaxed);
        /* compressed into the codec's scratch: it is reused by the next
         * batch, so keep the result in the batch's own buffer (smaller
         * than what it replaces) */
        if (out != b->buf)
            memcpy(b->buf, out, len);
    }
    b->fin_rc = rc;
    b->out_len = rc == 0 ? len : 0;
}

/* A claimed batch is finished: let a drainer waiting for it go on.  b may
 * be written, reported and reused as soon as fin says DONE: not touched
 * after that (a lives until the producer is closed, which joins the
 * compression threads first). */
static void fin_done(kp_acc *a, kp_batch *b)
{
    atomic_store_explicit(&b->fin, KP_FIN_DONE, memory_order_release);
    pthread_mutex_lock(&a->mu);
    if (a->fin_waiters)
        pthread_cond_broadcast(&a->fin_cv);
    pthread_mutex_unlock(&a->mu);
}

/* Finish a batch claimed at its seal by the sender that sealed it. */
static void claimed_finish(klog_producer *p, kp_acc *a, kp_batch *b)
{
    kf_codec *codec = NULL;
    batch_finish(p, b, &codec);
    if (codec)
        codec_put(p, codec);
    fin_done(a, b);
}

/* A compression thread's job: finish a batch handed over at its seal,
 * with that thread's own codec (kept for its life: one zstd context per
 * thread, made once). */
static void batch_job(kp_job *j, kf_codec **codec)
{
    kp_batch *b = (kp_batch *)((char *)j - offsetof(kp_batch, job));
    kp_acc *a = b->acc;
    batch_finish(a->p, b, codec);
    fin_done(a, b);
}

/* The drainer's side: wait until a claimed batch is finished (its finisher
 * is running, not waiting for anything, so this is short). */
static void wait_finished(kp_acc *a, kp_batch *b)
{
    for (int i = 0; i < 256; i++) {
        if (atomic_load_explicit(&b->fin, memory_order_acquire) == KP_FIN_DONE)
            return;
        klog__cpu_relax();
    }
    pthread_mutex_lock(&a->mu);
    a->fin_waiters++;
    while (atomic_load_explicit(&b->fin, memory_order_acquire) != KP_FIN_DONE)
        pthread_cond_wait(&a->fin_cv, &a->mu);
    a->fin_waiters--;
    pthread_mutex_unlock(&a->mu);
}

#define KP_DRAIN_MAX 64

/*
 * Append everything in the FIFO, in order, one thread at a time.  Returns
 * with acc->mu not held.  Called with acc->mu held.
 */
static void drain_locked(klog_producer *p, kp_acc *a)
{
    if (a->draining || !a->ready) {
        pthread_mutex_unlock(&a->mu);
        return;
    }
    a->draining = true;
    kf_codec *codec = NULL;
    while (a->ready) {
        kp_batch *list = a->ready;
        a->ready = a->ready_tail = NULL;
        atomic_store_explicit(&a->has_ready, false, memory_order_relaxed);
        pthread_mutex_unlock(&a->mu);

        kt_topic *kt = a->t->kt;
        kpart *part = kt->parts[a->partition];
        while (list) {
            kp_batch *bs[KP_DRAIN_MAX];
            ks_batch kb[KP_DRAIN_MAX];
            int err[KP_DRAIN_MAX];
            int32_t epoch[KP_DRAIN_MAX]; /* the leader epoch each was appended in */
            unsigned n = 0;
            int32_t seq = a->next_seq; /* only the drainer touches it */
            for (; list && n < KP_DRAIN_MAX; list = list->next, n++) {
                kp_batch *b = bs[n] = list;
                int fin = atomic_load_explicit(&b->fin, memory_order_acquire);
                if (fin == KP_FIN_CLAIMED)
                    wait_finished(a, b);
                /* base_seq was set at the seal, assuming every batch before
                 * this one would be written: if one was not, the log now
                 * expects seq (restamp what is already finished) */
                if (fin == KP_FIN_NONE) {
                    b->base_seq = seq;
                    batch_finish(p, b, &codec);
                } else if (p->idempotent && b->base_seq != seq) {
                    b->base_seq = seq;
                    if (b->fin_rc == 0)
                        kf_batch_set_sequence(b->buf, b->out_len, seq);
                }
                seq = seq_after(seq, b->b.count);
                err[n] = b->fin_rc;
                epoch[n] = -1;
                kb[n] = (ks_batch){ b->buf, b->out_len, -1, b->fin_rc };
            }
            /* Append the well-formed ones as one call (one sync with acks=all). */
            ks_batch ok[KP_DRAIN_MAX];
            unsigned map[KP_DRAIN_MAX], m = 0;
            for (unsigned i = 0; i < n; i++)
                if (err[i] == 0) {
                    ok[m] = kb[i];
                    map[m++] = i;
                }
            if (m > 0) {
                int rc = atomic_load(&kt->deleted) ? KLOG_EUNKNOWN_TOPIC
                         : kpart_append(part, ok, m, p->acks < 0 ? KS_APPEND_SYNC | KPART_APPEND_ALL : 0);
                for (unsigned j = 0; j < m; j++) {
                    int r = ok[j].result;
                    if (r == KLOG_EDUPLICATE)
                        r = 0; /* a retry of a batch already written: it is there */
                    if (rc == KLOG_EUNKNOWN_TOPIC)
                        r = rc;
                    else if (r == KLOG_ESTATE)
                        r = rc ? rc : KLOG_ESTATE; /* not attempted after a failure */
                    err[map[j]] = r;
                    epoch[map[j]] = kpart_batch_epoch(&ok[j]);
                    kb[map[j]].base_offset = ok[j].base_offset;
                }
            }
            /* The sequence moves past the batches the log holds now; the
             * first failure ends that run (the log appends a prefix), and
             * the batches sealed after it carry sequences that are now
             * ahead: they get restamped as they come. */
            for (unsigned i = 0; i < n && p->idempotent && err[i] == 0; i++)
                a->next_seq = seq_after(bs[i]->base_seq, bs[i]->b.count);
            /* Each batch is reported when the partition acknowledges it:
             * with one replica at once, here; errors in their turn. */
            int level = p->acks < 0 ? KPART_ACK_ALL : KPART_ACK_LEADER;
            for (unsigned i = 0; i < n; i++) {
                kp_batch *b = bs[i];
                b->acc = a;
                b->base_offset = kb[i].base_offset;
                b->ack.done = batch_acked;
                /* a duplicate too old to place (-1) lies long below the HW */
                int64_t end = b->base_offset >= 0 ? b->base_offset + b->b.count : 0;
                kpart_ack_submit_epoch(part, &b->ack, end, level, err[i], epoch[i]);
            }
        }
        pthread_mutex_lock(&a->mu);
    }
    /* Nothing sealed is left anywhere: seals continue from the sequence the
     * log expects (the same one, unless a batch failed). */
    a->seal_seq = a->next_seq;
    a->draining = false;
    pthread_mutex_unlock(&a->mu);
    if (codec)
        codec_put(p, codec);
}

/*
 * Seal the open batch because it is full (acc->mu held on entry and on
 * return).  A compressed batch goes to the compression threads
 * (seal_locked).  Without them, if a drainer is busy writing earlier
 * batches, this thread finishes (compresses, checksums) the compressed
 * batch it sealed, with the lock dropped, before it goes on: that work then
 * overlaps the write instead of queueing behind it on the drainer.  The
 * batch is claimed at the seal, so the drainer waits for it rather than
 * finishing it too.
 */
static void seal_for_room(klog_producer *p, kp_acc *a)
{
    kp_batch *b = a->cur;
    /* Only a batch to compress: the header and checksum of an
     * uncompressed one (XXH3 over a megabyte, 13 ns a 100-byte record)
     * cost the sender 7% of its time (perf, produce-100), while the
     * drainer, which only writes, has room for them. */
    bool claim = b && b->b.count > 0 && a->draining && b->codec != KF_CODEC_NONE;
    if (seal_locked(p, a))
        claim = false; /* the compression threads have it */
    if (claim) {
        /* still under acc->mu: no drainer has seen it unclaimed */
        atomic_store_explicit(&b->fin, KP_FIN_CLAIMED, memory_order_relaxed);
        pthread_mutex_unlock(&a->mu);
        claimed_finish(p, a, b);
        pthread_mutex_lock(&a->mu);
    }
}

/* ---- topics and accumulators --------------------------------------------------- */

/* A deleted topic's entry stays in its chain (its accumulators may still
 * be draining) but is skipped: a topic re-created under the same name gets
 * an entry of its own, in front. */
static kp_topic *topic_lookup(klog_producer *p, const char *name, size_t nlen, uint64_t h)
{
    for (kp_topic *t = atomic_load_explicit(&p->buckets[h % KP_BUCKETS], memory_order_acquire); t; t = t->next)
        if (!memcmp(t->kt->name, name, nlen + 1) && !atomic_load_explicit(&t->kt->deleted, memory_order_relaxed))
            return t;
    return NULL;
}

/* Inline: names are short, and libc's vector strcmp spends more on its
 * set-up than on the bytes (4% of a 100-byte send, perf). */
static inline bool name_eq(const char *a, const char *b)
{
    for (;; a++, b++) {
        if (*a != *b)
            return false;
        if (!*a)
            return true;
    }
}

static int topic_get(klog_producer *p, const char *name, kp_topic **out)
{
    /* Most senders send to one topic: check the last one found first. */
    kp_topic *last = atomic_load_explicit(&p->last_topic, memory_order_acquire);
    if (KLOG_LIKELY(last != NULL) && name_eq(last->name, name) &&
        !atomic_load_explicit(&last->kt->deleted, memory_order_relaxed)) {
        *out = last;
        return 0;
    }
    size_t nlen = strlen(name);
    uint64_t h = XXH3_64bits(name, nlen);
    kp_topic *t = topic_lookup(p, name, nlen, h);
    if (KLOG_LIKELY(t != NULL)) {
        atomic_store_explicit(&p->last_topic, t, memory_order_release);
        *out = t;
        return 0;
    }
    kt_topic *kt = klog__topic_get(p->k, name);
    if (!kt)
        return klog__topic_name_check(name) < 0 ? KLOG_EBADNAME : KLOG_EUNKNOWN_TOPIC;
    pthread_mutex_lock(&p->mu);
    t = topic_lookup(p, name, nlen, h);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (t && !(t->acc = calloc(KT_MAX_PARTITIONS, sizeof *t->acc))) {
            free(t);
            t = NULL;
        }
        if (t) {
            t->kt = kt;
            memcpy(t->name, kt->name, sizeof t->name);
            kt = NULL;
            t->max_record = (size_t)klog__conf_int(t->kt->conf, KC_MAX_MESSAGE_BYTES);
            t->compacted = klog__conf_int(t->kt->conf, KC_CLEANUP_POLICY) != KC_CLEANUP_DELETE;
            /* The log takes batches up to max.message.bytes (+ header and
             * one record's framing): never build a bigger one, whatever
             * batch.size says. */
            t->batch_limit = KLOG_MIN(p->batch_size, t->max_record + KF_HDR_SIZE);
            atomic_store(&t->sticky, -1);
            t->next = atomic_load(&p->buckets[h % KP_BUCKETS]);
            atomic_store_explicit(&p->buckets[h % KP_BUCKETS], t, memory_order_release);
        }
    }
    pthread_mutex_unlock(&p->mu);
    klog__topic_put(kt); /* NULL-safe: only when someone else won the race */
    if (!t)
        return -ENOMEM;
    *out = t;
    return 0;
}

static kp_acc *acc_get(klog_producer *p, kp_topic *t, int32_t part)
{
    kp_acc *a = atomic_load_explicit(&t->acc[part], memory_order_acquire);
    if (KLOG_LIKELY(a != NULL))
        return a;
    pthread_mutex_lock(&p->mu);
    a = atomic_load(&t->acc[part]);
    if (!a && (a = calloc(1, sizeof *a)) != NULL) {
        pthread_mutex_init(&a->mu, NULL);
        pthread_cond_init(&a->fin_cv, NULL);
        a->t = t;
        a->partition = part;
        a->p = p;
        atomic_store(&a->open_ns, UINT64_MAX);
        a->all_next = atomic_load(&p->accs);
        atomic_store(&p->accs, a);
        atomic_store_explicit(&t->acc[part], a, memory_order_release);
    }
    pthread_mutex_unlock(&p->mu);
    return a;
}

static int32_t choose_partition(klog_producer *p, kp_topic *t, const klog_record *r, int32_t n)
{
    if (p->part_fn)
        return p->part_fn(p->part_arg, t->kt->name, r->key, r->key ? r->key_len : 0, n);
    if (n == 1)
        return 0; /* nothing to choose: no key hash, no shared counter */
    int mode = p->partitioner;
    if (r->key && mode != KC_PARTITIONER_STICKY && mode != KC_PARTITIONER_ROUND_ROBIN)
        return (int32_t)(XXH3_64bits(r->key, r->key_len) % (uint64_t)n);
    if (mode == KC_PARTITIONER_HASH)
        return 0;
    if (mode == KC_PARTITIONER_ROUND_ROBIN)
        return (int32_t)(atomic_fetch_add_explicit(&t->rr, 1, memory_order_relaxed) % (uint32_t)n);
    /* sticky (default for null keys, or everything) */
    int32_t s = atomic_load_explicit(&t->sticky, memory_order_relaxed);
    if (s >= 0 && s < n)
        return s;
    uint32_t pick = atomic_fetch_add_explicit(&t->rr, 1, memory_order_relaxed) % (uint32_t)n;
    atomic_store_explicit(&t->sticky, (int32_t)pick, memory_order_relaxed);
    return (int32_t)pick;
}

/* ---- public ------------------------------------------------------------------------ */

static void *producer_thread(void *arg);

/* klog_stats, on another thread: atomics only. */
static void producer_stats(void *h, kt_handle_stats *o)
{
    klog_producer *p = h;
    snprintf(o->client_id, sizeof o->client_id, "%s", p->client_id);
    for (kp_acc *a = atomic_load(&p->accs); a; a = a->all_next) {
        o->records += atomic_load_explicit(&a->st_records, memory_order_relaxed);
        o->bytes += atomic_load_explicit(&a->st_bytes, memory_order_relaxed);
    }
    o->batches = atomic_load_explicit(&p->st_batches, memory_order_relaxed);
    o->raw_bytes = atomic_load_explicit(&p->st_raw, memory_order_relaxed);
    o->out_bytes = atomic_load_explicit(&p->st_out, memory_order_relaxed);
    o->errors = atomic_load_explicit(&p->st_errors, memory_order_relaxed);
    int64_t q = atomic_load_explicit(&p->outstanding, memory_order_relaxed);
    o->queue_records = q > 0 ? (uint64_t)q : 0;
    int64_t m = __atomic_load_n(&p->mem_used, __ATOMIC_RELAXED);
    o->queue_bytes = m > 0 ? (uint64_t)m : 0;
}

KLOG_API KLOG_COLD int klog_producer_new(klog *k, const klog_conf *conf, klog_producer **out, char *errbuf, size_t errsize)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!k)
        return klog__errf(errbuf, errsize, -EINVAL, "no klog instance");
    if (klog__read_only(k))
        return klog__errf(errbuf, errsize, KLOG_EREADONLY, "the instance is read-only (read.only)");
    /* A client conf may be shared by producers and consumers (as
     * librdkafka's is), but an instance or topic key in it would be
     * silently ignored here: refused, naming the scope it belongs to. */
    int src = klog__conf_check_scope(conf, KC_SCOPE_PRODUCER | KC_SCOPE_CONSUMER, errbuf, errsize);
    if (src < 0)
        return src;
    klog_producer *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->k = k;
    p->acks = (int)klog__conf_int(conf, KC_ACKS);
    p->linger_ns = (uint64_t)klog__conf_int(conf, KC_LINGER_MS) * 1000000u;
    p->batch_size = (size_t)klog__conf_int(conf, KC_BATCH_SIZE);
    /* room for the header and one more record's framing past batch.size:
     * a batch is sealed once it reaches batch.size */
    p->batch_cap = p->batch_size + KF_HDR_SIZE;
    p->batch_records = (int32_t)klog__conf_int(conf, KC_BATCH_NUM_MESSAGES);
    int64_t ctype = klog__conf_int(conf, KC_COMPRESSION_TYPE);
    p->codec = codec_of(ctype, KF_CODEC_NONE); /* "producer" is refused below */
    p->level = (int)klog__conf_int(conf, KC_COMPRESSION_LEVEL);
    if (p->level < 0)
        p->level = 0;
    p->buffer_memory = klog__conf_int(conf, KC_BUFFER_MEMORY);
    p->max_block_ms = klog__conf_int(conf, KC_MAX_BLOCK_MS);
    p->idempotent = klog__conf_int(conf, KC_ENABLE_IDEMPOTENCE) != 0;
    p->partitioner = (int)klog__conf_int(conf, KC_PARTITIONER);
    p->want_queue = klog__conf_int(conf, KC_DELIVERY_REPORT_QUEUE) != 0;
    p->cthreads = (int)klog__conf_int(conf, KC_COMPRESSION_THREADS);
    if (p->cthreads < 0)
        p->cthreads = kp_pool_auto_size();
    if (ctype == KC_COMPRESSION_PRODUCER) {
        free(p);
        return klog__errf(errbuf, errsize, KLOG_ECONF,
                          "compression.type: \"producer\" is a topic's value (keep the producer's codec); "
                          "a producer takes none, gzip, snappy, lz4 or zstd");
    }
    if ((p->codec == KF_CODEC_LZ4 || p->codec == KF_CODEC_SNAPPY) && klog__conf_isset(conf, KC_COMPRESSION_LEVEL)) {
        const char *name = p->codec == KF_CODEC_LZ4 ? "lz4" : "snappy";
        free(p);
        return klog__errf(errbuf, errsize, KLOG_ECONF, "compression.level: %s takes no level", name);
    }
    if (p->codec == KF_CODEC_GZIP && p->level > 9) {
        int level = p->level;
        free(p);
        return klog__errf(errbuf, errsize, KLOG_ECONF, "compression.level: gzip takes 1 to 9, not %d", level);
    }
    if ((int64_t)p->batch_cap > p->buffer_memory) {
        size_t bs = p->batch_size;
        int64_t bm = p->buffer_memory;
        free(p);
        return klog__errf(errbuf, errsize, KLOG_ECONF, "batch.size: %zu is larger than buffer.memory (%" PRId64 ")", bs,
                    bm);
    }
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != sizeof id)
        id = klog__now_ns() ^ (uint64_t)(uintptr_t)p;
    p->producer_id = (int64_t)(id & 0x7fffffffffffffffull);
    p->epoch = 0;
    p->pool_tick = klog__now_ns();
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->mem_mu, NULL);
    pthread_mutex_init(&p->codec_mu, NULL);
    pthread_mutex_init(&p->q_mu, NULL);
    cond_init_mono(&p->mem_cv);
    cond_init_mono(&p->q_cv);
    cond_init_mono(&p->flush_cv);
    cond_init_mono(&p->linger_cv);
    if (p->want_queue) {
        /* one slot per record that can be outstanding: bounded by memory */
        p->qcap = (size_t)KLOG_MAX(p->buffer_memory / 64, 1024);
        p->q = calloc(p->qcap, sizeof *p->q);
        if (!p->q) {
            klog_producer_close(p);
            return -ENOMEM;
        }
    }
    if (p->linger_ns > 0) {
        if (pthread_create(&p->thread, NULL, producer_thread, p) != 0) {
            klog_producer_close(p);
            return -EAGAIN;
        }
        p->thread_running = true;
    }
    snprintf(p->client_id, sizeof p->client_id, "%s", klog__conf_str(conf, KC_CLIENT_ID));
    p->sh = (kt_handle){ .kind = KT_HANDLE_PRODUCER, .h = p, .fn = producer_stats };
    klog__handle_add(k, &p->sh);
    *out = p;
    return 0;
}

KLOG_API int klog_producer_set_delivery_cb(klog_producer *p, klog_delivery_fn fn, void *arg)
{
    if (!p)
        return -EINVAL;
    if (atomic_load(&p->started))
        return KLOG_ESTATE;
    p->dr_fn = fn;
    p->dr_arg = arg;
    return 0;
}

KLOG_API int klog_producer_set_partitioner(klog_producer *p, klog_partitioner_fn fn, void *arg)
{
    if (!p)
        return -EINVAL;
    if (atomic_load(&p->started))
        return KLOG_ESTATE;
    p->part_fn = fn;
    p->part_arg = arg;
    return 0;
}

/* Reserve a delivery-queue slot for one record, waiting per max.block.ms. */
static int reserve_report(klog_producer *p)
{
    pthread_mutex_lock(&p->q_mu);
    struct timespec dl;
    abs_deadline(&dl, p->max_block_ms);
    int rc = 0;
    /* Checked and taken under one lock: every record that will report has
     * its slot before it is sent, so the ring can never overflow. */
    while (p->qresv >= p->qcap) {
        if (p->max_block_ms == 0 || pthread_cond_timedwait(&p->q_cv, &p->q_mu, &dl) == ETIMEDOUT) {
            rc = KLOG_EQUEUEFULL;
            break;
        }
    }
    if (rc == 0)
        p->qresv++;
    pthread_mutex_unlock(&p->q_mu);
    return rc;
}

KLOG_API int klog_producer_send(klog_producer *p, const char *topic, const klog_record *r)
{
    if (!p || !topic || !r || r->struct_size < sizeof(klog_record) || (r->header_count && !r->headers))
        return -EINVAL;
    if (atomic_load_explicit(&p->closed, memory_order_relaxed))
        return KLOG_ECLOSED;
    if (KLOG_UNLIKELY(!atomic_load_explicit(&p->started, memory_order_relaxed)))
        atomic_store(&p->started, true);
    if ((r->key && r->key_len > INT32_MAX) || (r->value && r->value_len > INT32_MAX) ||
        r->header_count > 100000)
        return KLOG_ETOOBIG;
    kp_topic *t;
    int rc = topic_get(p, topic, &t);
    if (rc < 0)
        return rc;
    if (atomic_load_explicit(&t->kt->deleted, memory_order_relaxed))
        return KLOG_EUNKNOWN_TOPIC;
    if (t->compacted && !r->key)
        return -EINVAL; /* compaction keeps the latest record per key: Kafka refuses these too */
    int32_t n = atomic_load_explicit(&t->kt->nparts, memory_order_acquire);
    int32_t part = r->partition;
    if (part == KLOG_PARTITION_ANY)
        part = choose_partition(p, t, r, n);
    if (part < 0 || part >= n)
        return KLOG_EUNKNOWN_PARTITION;
    int perr = kpart_error(t->kt->parts[part]);
    if (KLOG_UNLIKELY(perr != 0))
        return perr == KLOG_ECORRUPT ? KLOG_ECORRUPT : KLOG_EREADONLY; /* damaged, or a failed sync */

    kf_header hstack[KP_HDR_STACK], *hs = hstack;
    if (r->header_count > KP_HDR_STACK && !(hs = malloc(r->header_count * sizeof *hs)))
        return -ENOMEM;
    for (size_t i = 0; i < r->header_count; i++) {
        const klog_header *h = &r->headers[i];
        if ((h->key_len && !h->key) || h->key_len > INT32_MAX || (h->value && h->value_len > INT32_MAX)) {
            rc = h->key_len > INT32_MAX || h->value_len > INT32_MAX ? KLOG_ETOOBIG : -EINVAL;
            goto out;
        }
        hs[i] = (kf_header){ h->key, (int32_t)h->key_len, h->value, h->value ? (int32_t)h->value_len : -1 };
    }
    kf_record rec = {
        .key = r->key,
        .key_len = r->key ? (int32_t)r->key_len : -1,
        .value = r->value,
        .value_len = r->value ? (int32_t)r->value_len : -1,
        /* The kernel's coarse clock: 5 ns instead of 25-50 ns on this kind
         * of VM, exact to the clock tick (1-4 ms), which is all a ms
         * timestamp taken "at send" can promise anyway. */
        .timestamp = r->timestamp ? r->timestamp : klog__wall_ms_coarse(),
        .headers = hs,
        .header_count = (uint32_t)r->header_count,
    };
    if (kf_record_payload(&rec) > t->max_record) {
        rc = KLOG_ETOOBIG;
        goto out;
    }
    const size_t bound = kf_record_size_bound(&rec); /* encoded size, at most */
    bool reports = p->dr_fn || p->want_queue;
    kp_acc *a = acc_get(p, t, part);
    if (!a) {
        rc = -ENOMEM;
        goto out;
    }
    if (p->want_queue && (rc = reserve_report(p)) < 0)
        goto out;
    bool sealed_full = false; /* a full batch was sealed to make room */
    uint64_t deadline = 0; /* set when the buffer is first found full */
    pthread_mutex_lock(&a->mu);
    for (;;) {
        if (!a->cur) {
            size_t need = bound + KF_HDR_SIZE;
            kp_batch *b = batch_get(p, need, a->next_cap);
            if (!b) {
                /* Budget used up: push out what we have and wait for a
                 * batch to be written and given back. */
                seal_locked(p, a);
                drain_locked(p, a); /* unlocks */
                pthread_mutex_lock(&p->mem_mu);
                uint64_t now = klog__now_ns();
                if (deadline == 0)
                    deadline = now + (uint64_t)p->max_block_ms * 1000000u;
                if (p->max_block_ms == 0 || now >= deadline) {
                    pthread_mutex_unlock(&p->mem_mu);
                    rc = KLOG_EQUEUEFULL;
                    goto undo;
                }
                struct timespec dl;
                abs_deadline(&dl, (int64_t)KLOG_MIN((deadline - now) / 1000000u + 1, 100u));
                pthread_cond_timedwait(&p->mem_cv, &p->mem_mu, &dl);
                pthread_mutex_unlock(&p->mem_mu);
                pthread_mutex_lock(&a->mu);
                continue;
            }
            batch_start(p, b, t);
            a->cur = b;
        }
        if (reports && (uint32_t)a->cur->b.count >= a->cur->rcap) {
            /* room for this record's report, before it is encoded */
            a->cur->b.count++;
            rc = batch_note(a->cur, NULL, 0);
            a->cur->b.count--;
            if (rc < 0) {
                pthread_mutex_unlock(&a->mu);
                goto undo;
            }
        }
        if (KLOG_UNLIKELY(a->cur->b.count > 0 && a->cur->b.len + bound > t->batch_limit)) {
            seal_for_room(p, a); /* the topic would refuse the bigger batch */
            sealed_full = true;
            continue;
        }
        rc = kf_builder_add(&a->cur->b, &rec);
        if (KLOG_LIKELY(rc == 0)) {
            if (a->cur->b.count == 1) /* the batch's linger starts: the sweep looks at it from now */
                atomic_store_explicit(&a->open_ns, a->cur->created_ns, memory_order_relaxed);
            /* statistics: a->mu is held, so a plain add (no locked RMW on
             * the send path); klog_stats reads them with relaxed loads */
            atomic_store_explicit(&a->st_records, atomic_load_explicit(&a->st_records, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            atomic_store_explicit(&a->st_bytes,
                                  atomic_load_explicit(&a->st_bytes, memory_order_relaxed) +
                                      (r->key ? r->key_len : 0) + (r->value ? r->value_len : 0),
                                  memory_order_relaxed);
            break;
        }
        if (rc == -ENOBUFS && a->cur->cap < p->batch_cap && batch_grow(p, a->cur, bound) == 0)
            continue; /* room made: add it again */
        if (rc == -ENOBUFS && a->cur->b.count > 0) {
            seal_for_room(p, a); /* full: start another */
            sealed_full = true;
            continue;
        }
        /* empty batch and still no room: the record needs a bigger one */
        if (rc == -ENOBUFS) {
            kp_batch *b = a->cur;
            a->cur = NULL;
            batch_put(p, b);
            size_t need = bound + KF_HDR_SIZE;
            kp_batch *big = batch_get(p, need, p->batch_cap);
            if (!big) {
                pthread_mutex_unlock(&a->mu);
                rc = KLOG_EQUEUEFULL;
                goto undo;
            }
            batch_start(p, big, t);
            a->cur = big;
            continue;
        }
        pthread_mutex_unlock(&a->mu);
        goto undo;
    }
    if (reports)
        batch_note(a->cur, r->opaque, rec.timestamp); /* room made above: cannot fail */
    if (p->linger_ns == 0) {
        seal_locked(p, a);
        drain_locked(p, a); /* unlocks: written on this thread, for latency */
    } else if (a->cur->b.len >= t->batch_limit || a->cur->b.count >= p->batch_records) {
        /* Full: the producer thread writes it (Kafka's sender thread), so
         * encoding the next batch overlaps writing this one. */
        seal_for_room(p, a);
        pthread_mutex_unlock(&a->mu);
        kick(p);
    } else if (sealed_full) {
        if (p->thread_running) {
            pthread_mutex_unlock(&a->mu);
            kick(p); /* the producer thread writes it while we encode on */
        } else {
            drain_locked(p, a); /* unlocks */
        }
    } else {
        pthread_mutex_unlock(&a->mu);
    }
    goto out;
undo:
    if (p->want_queue) { /* give the reserved report slot back */
        pthread_mutex_lock(&p->q_mu);
        p->qresv--;
        pthread_cond_broadcast(&p->q_cv);
        pthread_mutex_unlock(&p->q_mu);
    }
out:
    if (hs != hstack)
        free(hs);
    return rc;
}

/* Seal and drain every accumulator whose open batch is at least min_age
 * old (0 = all). */
static void seal_all(klog_producer *p, uint64_t min_age_ns)
{
    uint64_t now = klog__now_ns();
    /* With compression threads, seal everything due first and drain after:
     * the batches of all partitions then compress side by side while the
     * drain writes them in turn (sealing and draining one partition after
     * the other would wait for each batch's compression in turn). */
    bool seal_first = atomic_load_explicit(&p->cpool, memory_order_relaxed) != NULL;
    for (kp_acc *a = atomic_load(&p->accs); a; a = a->all_next) {
        /* Lock only where there is work: with thousands of partitions the
         * sweep (every linger.ms / 4) locking each one took 12% of a
         * producer's time (perf, 4,096 partitions), and kept an idle
         * producer busy.  A batch sealed after these loads is kicked to
         * this thread by its sealer; flush drains every accumulator
         * itself. */
        uint64_t open = atomic_load_explicit(&a->open_ns, memory_order_relaxed);
        if (!atomic_load_explicit(&a->has_ready, memory_order_relaxed) &&
            (open == UINT64_MAX || (min_age_ns > 0 && open + min_age_ns > now)))
            continue;
        pthread_mutex_lock(&a->mu);
        /* created_ns may be after now (a sender raced us): no underflow */
        if (a->cur && a->cur->b.count > 0 && a->cur->created_ns + min_age_ns <= now)
            seal_locked(p, a);
        if (seal_first)
            pthread_mutex_unlock(&a->mu);
        else
            drain_locked(p, a); /* unlocks */
    }
    for (kp_acc *a = atomic_load(&p->accs); a && seal_first; a = a->all_next) {
        if (!atomic_load_explicit(&a->has_ready, memory_order_relaxed))
            continue;
        pthread_mutex_lock(&a->mu);
        drain_locked(p, a); /* unlocks */
    }
}

/* Wake the producer thread to write sealed batches now. */
static void kick(klog_producer *p)
{
    pthread_mutex_lock(&p->q_mu);
    p->kicks++;
    pthread_cond_signal(&p->linger_cv);
    pthread_mutex_unlock(&p->q_mu);
}

static void *producer_thread(void *arg)
{
    klog_producer *p = arg;
    pthread_setname_np(pthread_self(), "klog-producer"); /* for top -H, perf */
    /* Wake at a quarter of linger.ms (at least every 1 ms, at most every
     * 100 ms): a batch goes out between linger and 1.25 x linger. */
    int64_t step_ms = KLOG_MAX((int64_t)(p->linger_ns / 4000000u), 1);
    step_ms = KLOG_MIN(step_ms, 100);
    uint64_t next_decay = klog__now_ns() + KP_POOL_DECAY_NS;
    pthread_mutex_lock(&p->q_mu);
    uint64_t seen = p->kicks;
    while (!p->stopping) {
        struct timespec dl;
        abs_deadline(&dl, step_ms);
        bool kicked = p->kicks != seen;
        while (!kicked && !p->stopping)
            if (pthread_cond_timedwait(&p->linger_cv, &p->q_mu, &dl) == ETIMEDOUT || (kicked = p->kicks != seen))
                break;
        if (p->stopping)
            break;
        seen = p->kicks;
        pthread_mutex_unlock(&p->q_mu);
        /* Sealed batches go out on a kick; open ones once linger.ms old. */
        seal_all(p, p->linger_ns);
        uint64_t now = klog__now_ns();
        if (now >= next_decay) { /* here, so that an idle producer's pool shrinks too */
            pthread_mutex_lock(&p->mem_mu);
            kp_batch *drop = pool_decay_locked(p, now);
            pthread_mutex_unlock(&p->mem_mu);
            batch_free_list(drop);
            next_decay = now + KP_POOL_DECAY_NS;
        }
        pthread_mutex_lock(&p->q_mu);
    }
    pthread_mutex_unlock(&p->q_mu);
    return NULL;
}

KLOG_API KLOG_COLD int klog_producer_flush(klog_producer *p, int timeout_ms)
{
    if (!p)
        return -EINVAL;
    atomic_fetch_add(&p->flushers, 1);
    seal_all(p, 0);
    /* Wait for what was sealed by now - not for records other threads send
     * while we wait, which would starve a flusher among busy senders.  The
     * accumulator list only grows at its head, so walking it from the head
     * we snapshot now gives the same accumulators in the same order later. */
    size_t n = 0;
    kp_acc *head = atomic_load(&p->accs);
    for (kp_acc *a = head; a; a = a->all_next)
        n++;
    uint64_t stack[64], *target = n <= 64 ? stack : malloc(n * sizeof *target);
    int rc = 0;
    if (!target) {
        atomic_fetch_sub(&p->flushers, 1);
        return -ENOMEM;
    }
    size_t i = 0;
    for (kp_acc *a = head; a; a = a->all_next, i++) {
        pthread_mutex_lock(&a->mu);
        target[i] = a->sealed;
        pthread_mutex_unlock(&a->mu);
    }
    struct timespec dl;
    if (timeout_ms >= 0)
        abs_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&p->q_mu);
    for (;;) {
        /* walk from the snapshot's head, not the current one */
        size_t k = 0;
        bool ok = true;
        for (kp_acc *a = head; a && k < n; a = a->all_next, k++)
            if (atomic_load_explicit(&a->done, memory_order_acquire) < target[k]) {
                ok = false;
                break;
            }
        if (ok)
            break;
        if (timeout_ms < 0) {
            pthread_cond_wait(&p->flush_cv, &p->q_mu);
        } else if (pthread_cond_timedwait(&p->flush_cv, &p->q_mu, &dl) == ETIMEDOUT) {
            rc = -ETIMEDOUT;
            break;
        }
        /* a drainer may have left sealed batches for the linger thread:
         * push them out ourselves rather than wait for its tick */
        pthread_mutex_unlock(&p->q_mu);
        for (kp_acc *a = head; a; a = a->all_next) {
            pthread_mutex_lock(&a->mu);
            drain_locked(p, a); /* unlocks */
        }
        pthread_mutex_lock(&p->q_mu);
    }
    pthread_mutex_unlock(&p->q_mu);
    if (target != stack)
        free(target);
    atomic_fetch_sub(&p->flushers, 1);
    return rc;
}

KLOG_API int klog_producer_poll_deliveries(klog_producer *p, klog_delivery *out, size_t max, int timeout_ms)
{
    if (!p || (!out && max))
        return -EINVAL;
    /* The caller's klog_delivery may be older (smaller, down to the first
     * one with struct_size: this one) or newer than ours: step through its
     * array by its size and copy what both know. */
    size_t stride = max ? out[0].struct_size : sizeof(klog_delivery);
    if (stride < sizeof(klog_delivery) || stride % _Alignof(klog_delivery))
        return -EINVAL;
    if (!p->want_queue)
        return KLOG_ESTATE;
    struct timespec dl;
    if (timeout_ms > 0)
        abs_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&p->q_mu);
    while (p->qlen == 0 && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&p->q_cv, &p->q_mu);
        else if (pthread_cond_timedwait(&p->q_cv, &p->q_mu, &dl) == ETIMEDOUT)
            break;
    }
    size_t n = KLOG_MIN(max, p->qlen);
    for (size_t i = 0; i < n; i++) {
        klog_delivery *d = (klog_delivery *)((uint8_t *)out + i * stride);
        *d = p->q[p->qhead];
        if (stride > sizeof *d)
            memset((uint8_t *)d + sizeof *d, 0, stride - sizeof *d);
        d->struct_size = (uint32_t)stride;
        p->qhead = (p->qhead + 1) % p->qcap;
    }
    p->qlen -= n;
    p->qresv -= n;
    if (n)
        pthread_cond_broadcast(&p->q_cv); /* room for reservations */
    pthread_mutex_unlock(&p->q_mu);
    return (int)n;
}

KLOG_API int64_t klog_producer_outstanding(klog_producer *p)
{
    if (!p)
        return 0;
    /* Sealed and unreported (p->outstanding) plus what sits in open batches.
     * A seal moves records from one count to the other under the
     * accumulator's lock: hold them all (always taken one at a time
     * elsewhere, so no order to break) for a sum that never counts a record
     * twice or not at all. */
    for (kp_acc *a = atomic_load(&p->accs); a; a = a->all_next)
        pthread_mutex_lock(&a->mu);
    int64_t n = atomic_load(&p->outstanding);
    for (kp_acc *a = atomic_load(&p->accs); a; a = a->all_next)
        n += a->cur ? a->cur->b.count : 0;
    for (kp_acc *a = atomic_load(&p->accs); a; a = a->all_next)
        pthread_mutex_unlock(&a->mu);
    return n;
}

KLOG_API KLOG_COLD int klog_producer_close(klog_producer *p)
{
    if (!p)
        return 0;
    int rc = 0;
    if (!atomic_load(&p->closed))
        rc = klog_producer_flush(p, -1);
    if (p->sh.fn)
        klog__handle_remove(p->k, &p->sh);
    if (rc == 0)
        rc = atomic_load(&p->first_err);
    atomic_store(&p->closed, true);
    if (p->thread_running) {
        pthread_mutex_lock(&p->q_mu);
        p->stopping = true;
        pthread_cond_broadcast(&p->linger_cv);
        pthread_mutex_unlock(&p->q_mu);
        pthread_join(p->thread, NULL);
    }
    /* after the flush nothing is queued; a compression thread may still be
     * in fin_done on an accumulator: joined before those are freed */
    kp_pool_free(atomic_load(&p->cpool));
    for (kp_acc *a = atomic_load(&p->accs), *next; a; a = next) {
        next = a->all_next;
        batch_free(a->cur);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->fin_cv);
        free(a);
    }
    for (int i = 0; i < KP_BUCKETS; i++)
        for (kp_topic *t = atomic_load(&p->buckets[i]), *next; t; t = next) {
            next = t->next;
            klog__topic_put(t->kt);
            free(t->acc);
            free(t);
        }
    batch_free_list(p->pool);
    for (int i = 0; i < p->ncodecs; i++)
        kf_codec_free(p->codecs[i]);
    free(p->q);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->mem_mu);
    pthread_mutex_destroy(&p->codec_mu);
    pthread_mutex_destroy(&p->q_mu);
    pthread_cond_destroy(&p->mem_cv);
    pthread_cond_destroy(&p->q_cv);
    pthread_cond_destroy(&p->flush_cv);
    pthread_cond_destroy(&p->linger_cv);
    free(p);
    return rc;
}
