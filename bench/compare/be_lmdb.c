/*
 * bench/compare/be_lmdb.c - LMDB as a log: key = the offset as 8 bytes
 * big-endian (so keys only grow and MDB_APPEND applies), value = the
 * envelope (key length, key, value) written straight into the page with
 * MDB_RESERVE.  One write transaction per batch.  Page-cache produce opens
 * the environment with MDB_NOSYNC (commits are written, not synced);
 * durable produce with the default flags (every commit syncs the data and
 * then the meta page).  Map size 64 GiB (address space only).  Reading:
 * a read-only transaction and a cursor from the first key; the tail reader
 * renews a read transaction each time the writer's eventfd is posted and
 * walks on from the last key it saw.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "backend.h"

struct bc_store {
    MDB_env *env;
    MDB_dbi dbi;
    uint64_t next;
    int sig;
};

struct bc_reader {
    bc_store *s;
    MDB_txn *txn;   /* reset between waits */
    uint64_t next;  /* first offset not yet delivered */
};

static int fail(const char *what, int rc)
{
    fprintf(stderr, "lmdb: %s: %s\n", what, mdb_strerror(rc));
    return -1;
}

static const char *l_check(const bc_env *env)
{
    (void)env;
    return NULL;
}

static void l_close(bc_store *s)
{
    if (!s)
        return;
    if (s->env)
        mdb_env_close(s->env);
    if (s->sig >= 0)
        close(s->sig);
    free(s);
}

static int l_open(bc_store **out, const bc_opts *o)
{
    bc_store *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->sig = -1;
    int rc;
    MDB_txn *txn;
    if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_mapsize(s->env, (size_t)64 << 30)) != 0 ||
        (rc = mdb_env_open(s->env, o->dir, o->durable ? 0 : MDB_NOSYNC, 0644)) != 0 ||
        (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        l_close(s);
        return fail("open", rc);
    }
    if ((rc = mdb_dbi_open(txn, NULL, 0, &s->dbi)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
        l_close(s);
        return fail("dbi", rc);
    }
    *out = s;
    return 0;
}

static int l_produce(bc_store *s, const bc_rec *recs, size_t n)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return fail("mdb_txn_begin", rc);
    for (size_t i = 0; i < n; i++) {
        uint8_t kb[8];
        bc_put_be64(kb, s->next++);
        MDB_val k = { sizeof kb, kb }, v = { 2 + recs[i].key_len + recs[i].val_len, NULL };
        if ((rc = mdb_put(txn, s->dbi, &k, &v, MDB_APPEND | MDB_RESERVE)) != 0) {
            mdb_txn_abort(txn);
            return fail("mdb_put", rc);
        }
        bc_envelope(v.mv_data, &recs[i]);
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return fail("mdb_txn_commit", rc);
    bc_signal_post(s->sig);
    return 0;
}

static int l_finish(bc_store *s)
{
    (void)s;
    return 0;
}

static int64_t l_stored_bytes(bc_store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    int rc = mdb_env_info(s->env, &info);
    if (rc == 0)
        rc = mdb_env_stat(s->env, &st);
    if (rc)
        return fail("mdb_env_info", rc);
    return (int64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

/* Walk from offset *next to the end; returns the count delivered. */
static int64_t walk(MDB_txn *txn, MDB_dbi dbi, uint64_t *next, bc_msg_fn fn, void *arg)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc)
        return fail("mdb_cursor_open", rc);
    uint8_t kb[8];
    bc_put_be64(kb, *next);
    MDB_val k = { sizeof kb, kb }, v;
    int64_t n = 0;
    for (rc = mdb_cursor_get(c, &k, &v, *next ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (bc_unenvelope(v.mv_data, v.mv_size, fn, arg)) {
            mdb_cursor_close(c);
            fprintf(stderr, "lmdb: malformed record\n");
            return -1;
        }
        n++;
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return fail("mdb_cursor_get", rc);
    *next += (uint64_t)n;
    return n;
}

static int64_t l_consume_all(bc_store *s, bc_msg_fn fn, void *arg)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return fail("mdb_txn_begin", rc);
    uint64_t next = 0;
    int64_t n = walk(txn, s->dbi, &next, fn, arg);
    mdb_txn_abort(txn);
    return n;
}

static int l_reader_open(bc_store *s, bc_reader **out)
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

static int l_reader_wait(bc_reader *r, int timeout_ms, bc_msg_fn fn, void *arg)
{
    int w = bc_signal_wait(r->s->sig, timeout_ms);
    if (w <= 0)
        return w;
    int rc = r->txn ? mdb_txn_renew(r->txn) : mdb_txn_begin(r->s->env, NULL, MDB_RDONLY, &r->txn);
    if (rc)
        return fail("read txn", rc);
    int64_t n = walk(r->txn, r->s->dbi, &r->next, fn, arg);
    mdb_txn_reset(r->txn);
    return (int)n;
}

static void l_reader_close(bc_reader *r)
{
    if (r) {
        if (r->txn)
            mdb_txn_abort(r->txn);
        free(r);
    }
}

const bc_backend bc_lmdb = {
    .name = "lmdb",
    .reopens = true,
    .check = l_check,
    .open = l_open,
    .produce = l_produce,
    .finish = l_finish,
    .stored_bytes = l_stored_bytes,
    .consume_all = l_consume_all,
    .reader_open = l_reader_open,
    .reader_wait = l_reader_wait,
    .reader_close = l_reader_close,
    .close = l_close,
};
