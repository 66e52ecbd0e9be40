/*
 * bench/compare/backend.h - the back end vtable of bench_compare.
 *
 * bench_compare runs the same workloads on klog and on the stores people
 * would otherwise embed or run beside their program (SQLite, LMDB, RocksDB,
 * Redis Streams, NATS JetStream) and on a raw floor (length-prefixed frames,
 * one pwrite per batch).  Each of them is one bc_backend: a small table of
 * operations the driver (main.c) calls, so that every workload is written
 * once and every store is driven the same way.
 *
 * A store is "a log": records (key, value) appended in batches, read back
 * from the start in order, and tailed by a reader in another thread.
 *
 * Conventions of every operation:
 *   - return 0 (or a count) on success; on failure print one line naming
 *     the back end and the cause to stderr and return a negative value (the
 *     driver then stops: a benchmark that half-worked proves nothing);
 *   - nothing allocates per record where the store's own API lets us avoid
 *     it (buffers sized once at open from bc_opts.max_batch_bytes and
 *     prefaulted there, outside any timed region);
 *   - no operation is called from two threads at once, except that one
 *     thread may call produce on a store while another calls the reader_*
 *     operations of a reader of that store (the latency workload).
 */
#ifndef BENCH_COMPARE_BACKEND_H
#define BENCH_COMPARE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One record as the driver hands it over: pointers into the driver's
 * prefaulted pools, valid for the duration of the call only. */
typedef struct bc_rec {
    const void *key;
    size_t key_len;
    const void *val;
    size_t val_len;
} bc_rec;

typedef enum { BC_CODEC_NONE = 0, BC_CODEC_LZ4, BC_CODEC_ZSTD } bc_codec;

/* Where the servers run (from the command line; NULL: back end skipped). */
typedef struct bc_env {
    const char *redis_host;
    int redis_port;
    const char *nats_url;
} bc_env;

typedef struct bc_opts {
    const char *dir;         /* a fresh, empty directory for this store's files */
    const bc_env *env;
    unsigned seq;            /* unique per store in this run: stream and key names */
    bool durable;            /* produce returns only once its batch is on disk */
    bool latency;            /* tuned for single records at a fixed rate */
    bc_codec codec;          /* honoured by back ends with .compresses */
    size_t max_batch_bytes;  /* sum of key_len + val_len of the largest batch */
    unsigned partitions;     /* > 1: that many partitions (back ends with .partitioned),
                              * batch i going to partition i % partitions; consume_all
                              * reads them all, as one consumer over them does */
    bool reopen;             /* dir holds a store another process wrote and closed:
                              * open it as it is, for consume_all (.reopens) */
} bc_opts;

typedef struct bc_store bc_store;   /* defined by each back end */
typedef struct bc_reader bc_reader; /* likewise */

/* Called for every record read, in order.  Pointers valid during the call. */
typedef void (*bc_msg_fn)(void *arg, const void *key, size_t key_len, const void *val, size_t val_len);

typedef struct bc_backend {
    const char *name;
    bool compresses;          /* stores lz4/zstd-compressed when asked */
    bool server;              /* runs out of process (driver skips without address) */
    bool partitioned;         /* honours bc_opts.partitions */
    bool reopens;             /* honours bc_opts.reopen (the cold consume runs) */
    /* NULL when the back end can run with env, else why it cannot. */
    const char *(*check)(const bc_env *env);
    int (*open)(bc_store **out, const bc_opts *o);
    /* Append one batch (one transaction, one pipeline, one write).  With
     * o->durable, returns only once the batch is on disk (or, for a store
     * that cannot promise that, as late as it can: see .durable_note). */
    int (*produce)(bc_store *s, const bc_rec *recs, size_t n);
    /* Wait until everything produced so far is acknowledged by the store. */
    int (*finish)(bc_store *s);
    /* Bytes the store holds for the records (on disk, or as said in notes);
     * may flush or checkpoint: never timed. */
    int64_t (*stored_bytes)(bc_store *s);
    /* Read every record from the start, in order; returns the count. */
    int64_t (*consume_all)(bc_store *s, bc_msg_fn fn, void *arg);
    /* A reader tailing the store from the start, for another thread. */
    int (*reader_open)(bc_store *s, bc_reader **out);
    /* Block up to timeout_ms for new records; deliver every record already
     * there.  Returns the number delivered (0 on timeout). */
    int (*reader_wait)(bc_reader *r, int timeout_ms, bc_msg_fn fn, void *arg);
    void (*reader_close)(bc_reader *r);
    void (*close)(bc_store *s);   /* NULL-safe; also drops server-side data */
    const char *durable_note;     /* non-NULL: what "durable" means here, if weaker */
} bc_backend;

extern const bc_backend bc_klog, bc_raw, bc_sqlite, bc_lmdb, bc_rocksdb, bc_redis, bc_nats;

/* ---- helpers shared by the back ends (main.c) --------------------------- */

uint64_t bc_now_ns(void);
/* malloc that touches every page (so no fault lands in a timed region);
 * exits on failure. */
void *bc_alloc_prefaulted(size_t len);
/* Big-endian 64-bit, the key order of LMDB and RocksDB (memcmp). */
static inline void bc_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}
static inline uint64_t bc_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * The envelope used where a store keeps a record as one opaque value
 * (LMDB, RocksDB, NATS): a 2-byte little-endian key length, the key, the
 * value.  Returns the bytes written to out (which holds 2 + klen + vlen).
 */
static inline size_t bc_envelope(uint8_t *out, const bc_rec *r)
{
    out[0] = (uint8_t)r->key_len;
    out[1] = (uint8_t)(r->key_len >> 8);
    __builtin_memcpy(out + 2, r->key, r->key_len);
    __builtin_memcpy(out + 2 + r->key_len, r->val, r->val_len);
    return 2 + r->key_len + r->val_len;
}
/* Split an envelope and call fn; returns -1 if it is malformed. */
static inline int bc_unenvelope(const void *p, size_t len, bc_msg_fn fn, void *arg)
{
    const uint8_t *b = p;
    if (len < 2)
        return -1;
    size_t kl = (size_t)b[0] | (size_t)b[1] << 8;
    if (kl > len - 2)
        return -1;
    fn(arg, b + 2, kl, b + 2 + kl, len - 2 - kl);
    return 0;
}

/* An eventfd-based "new data" signal for the in-process stores that have no
 * notification of their own: the writer posts after each commit, a reader
 * waits on it.  What an embedder of such a store writes by hand. */
int bc_signal_new(void);                 /* an eventfd, or -1 (message printed) */
void bc_signal_post(int fd);             /* no-op when fd < 0 */
int bc_signal_wait(int fd, int timeout_ms); /* 1 posted, 0 timed out, -1 error */

#endif
