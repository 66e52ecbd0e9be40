/*
 * bench/compare/be_rocksdb.c - RocksDB as a log: key = the offset as 8
 * bytes big-endian, value = the envelope (key length, key, value) given to
 * rocksdb_writebatch_putv in parts (no copy on our side).  One WriteBatch
 * per batch; the WAL is on; sync=true for durable produce (the WAL is
 * fdatasync'ed before the write returns), sync=false otherwise.  Options:
 * create_if_missing, increase_parallelism(2) (as RocksDB's own C example),
 * the default 64 MiB memtable, compression none / lz4 / zstd (the codec of
 * the workload, every level).  A produce run ends when the last write
 * returns (its records are in the WAL and the memtable, readable), not when
 * the memtable is flushed; stored bytes are the SST files after an explicit
 * flush.  Reading: an iterator from the first key; the tail reader creates
 * an iterator each time the writer's eventfd is posted and seeks past the
 * last key it saw.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "backend.h"

struct bc_store {
    rocksdb_t *db;
    rocksdb_options_t *opt;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;
    rocksdb_writebatch_t *wb;
    uint64_t next;
    int sig;
};

struct bc_reader {
    bc_store *s;
    uint64_t next;
};

static int fail(const char *what, char *err)
{
    fprintf(stderr, "rocksdb: %s: %s\n", what, err ? err : "failed");
    rocksdb_free(err);
    return -1;
}

static const char *d_check(const bc_env *env)
{
    (void)env;
    return NULL;
}

static void d_close(bc_store *s)
{
    if (!s)
        return;
    if (s->db)
        rocksdb_close(s->db);
    if (s->wb)
        rocksdb_writebatch_destroy(s->wb);
    if (s->ro)
        rocksdb_readoptions_destroy(s->ro);
    if (s->wo)
        rocksdb_writeoptions_destroy(s->wo);
    if (s->opt)
        rocksdb_options_destroy(s->opt);
    if (s->sig >= 0)
        close(s->sig);
    free(s);
}

static int d_open(bc_store **out, const bc_opts *o)
{
    bc_store *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->sig = -1;
    s->opt = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opt, 1);
    rocksdb_options_increase_parallelism(s->opt, 2);
    static const int codec[] = { rocksdb_no_compression, rocksdb_lz4_compression, rocksdb_zstd_compression };
    rocksdb_options_set_compression(s->opt, codec[o->codec]);
    s->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wo, o->durable);
    s->ro = rocksdb_readoptions_create();
    s->wb = rocksdb_writebatch_create();
    char *err = NULL;
    s->db = rocksdb_open(s->opt, o->dir, &err);
    if (err) {
        d_close(s);
        return fail("open", err);
    }
    *out = s;
    return 0;
}

static int d_produce(bc_store *s, const bc_rec *recs, size_t n)
{
    rocksdb_writebatch_clear(s->wb);
    for (size_t i = 0; i < n; i++) {
        char kb[8];
        uint8_t kl[2] = { (uint8_t)recs[i].key_len, (uint8_t)(recs[i].key_len >> 8) };
        bc_put_be64((uint8_t *)kb, s->next++);
        const char *kp[1] = { kb };
        size_t ks[1] = { sizeof kb };
        const char *vp[3] = { (const char *)kl, recs[i].key, recs[i].val };
        size_t vs[3] = { 2, recs[i].key_len, recs[i].val_len };
        rocksdb_writebatch_putv(s->wb, 1, kp, ks, 3, vp, vs);
    }
    char *err = NULL;
    rocksdb_write(s->db, s->wo, s->wb, &err);
    if (err)
        return fail("write", err);
    bc_signal_post(s->sig);
    return 0;
}

static int d_finish(bc_store *s)
{
    (void)s;
    return 0;
}

static int64_t d_stored_bytes(bc_store *s)
{
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    char *err = NULL;
    rocksdb_flush(s->db, fo, &err);
    rocksdb_flushoptions_destroy(fo);
    if (err)
        return fail("flush", err);
    char *v = rocksdb_property_value(s->db, "rocksdb.total-sst-files-size");
    if (!v)
        return fail("rocksdb.total-sst-files-size", NULL);
    int64_t bytes = strtoll(v, NULL, 10);
    rocksdb_free(v);
    return bytes;
}

/* Iterate from offset *next to the end; returns the count delivered. */
static int64_t walk(bc_store *s, uint64_t *next, bc_msg_fn fn, void *arg)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator(s->db, s->ro);
    char kb[8];
    bc_put_be64((uint8_t *)kb, *next);
    int64_t n = 0;
    for (rocksdb_iter_seek(it, kb, sizeof kb); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t vl;
        const char *v = rocksdb_iter_value(it, &vl);
        if (bc_unenvelope(v, vl, fn, arg)) {
            rocksdb_iter_destroy(it);
            return fail("malformed record", NULL);
        }
        n++;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    if (err)
        return fail("iterator", err);
    *next += (uint64_t)n;
    return n;
}

static int64_t d_consume_all(bc_store *s, bc_msg_fn fn, void *arg)
{
    uint64_t next = 0;
    return walk(s, &next, fn, arg);
}

static int d_reader_open(bc_store *s, bc_reader **out)
{
    bc_reader *r = calloc(1, sizeof *r);
    if (!r || (s->sig = bc_signal_new()) < 0) {
        free(r);
        return -1;
    }
    r->s = s;
    *out = r;
    return 0;
}

static int d_reader_wait(bc_reader *r, int timeout_ms, bc_msg_fn fn, void *arg)
{
    int w = bc_signal_wait(r->s->sig, timeout_ms);
    if (w <= 0)
        return w;
    return (int)walk(r->s, &r->next, fn, arg);
}

static void d_reader_close(bc_reader *r)
{
    free(r);
}

const bc_backend bc_rocksdb = {
    .name = "rocksdb",
    .compresses = true,
    .check = d_check,
    .open = d_open,
    .produce = d_produce,
    .finish = d_finish,
    .stored_bytes = d_stored_bytes,
    .consume_all = d_consume_all,
    .reader_open = d_reader_open,
    .reader_wait = d_reader_wait,
    .reader_close = d_reader_close,
    .close = d_close,
};
