/*
 * bench/compare/be_sqlite.c - SQLite as a log: one table
 *   log(offset INTEGER PRIMARY KEY, key BLOB, value BLOB)
 * in WAL mode, one transaction per batch through one prepared INSERT with
 * static blob bindings (no copies on our side).  synchronous=NORMAL for
 * page-cache produce (WAL appended, synced at checkpoints), FULL for
 * durable (the WAL is synced at every commit).  Automatic checkpoints at
 * the default 1000 pages.  Reading: SELECT ... ORDER BY offset on the same
 * connection; the tail reader is a second connection that re-runs
 * SELECT ... WHERE offset > ? each time the writer's eventfd is posted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "backend.h"

struct bc_store {
    sqlite3 *db;
    sqlite3_stmt *ins, *begin, *commit;
    int64_t next;
    int sig;
    char path[4200];
};

struct bc_reader {
    bc_store *s;
    sqlite3 *db;
    sqlite3_stmt *sel;
    int64_t last;
};

static int fail(sqlite3 *db, const char *what)
{
    fprintf(stderr, "sqlite: %s: %s\n", what, db ? sqlite3_errmsg(db) : "out of memory");
    return -1;
}

static const char *q_check(const bc_env *env)
{
    (void)env;
    return NULL;
}

static void q_close(bc_store *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_close(s->db);
    if (s->sig >= 0)
        close(s->sig);
    free(s);
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail(db, what);
}

static int q_open(bc_store **out, const bc_opts *o)
{
    bc_store *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->sig = -1;
    snprintf(s->path, sizeof s->path, "%s/log.db", o->dir);
    if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL)) {
        fail(s->db, "open");
        q_close(s);
        return -1;
    }
    /* the tailing reader's connection shares the file: a lock it holds
     * for a moment (WAL) is waited for, not an error */
    sqlite3_busy_timeout(s->db, 10000);
    char sql[512];
    snprintf(sql, sizeof sql,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
             "CREATE TABLE log(offset INTEGER PRIMARY KEY, key BLOB, value BLOB);",
             o->durable ? "FULL" : "NORMAL");
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) ||
        sqlite3_prepare_v2(s->db, "INSERT INTO log(offset, key, value) VALUES (?1, ?2, ?3)", -1, &s->ins, NULL) ||
        sqlite3_prepare_v2(s->db, "BEGIN", -1, &s->begin, NULL) ||
        sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->commit, NULL)) {
        fail(s->db, "set-up");
        q_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int q_produce(bc_store *s, const bc_rec *recs, size_t n)
{
    if (step_done(s->db, s->begin, "BEGIN"))
        return -1;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(s->ins, 1, s->next++);
        sqlite3_bind_blob(s->ins, 2, recs[i].key, (int)recs[i].key_len, SQLITE_STATIC);
        sqlite3_bind_blob(s->ins, 3, recs[i].val, (int)recs[i].val_len, SQLITE_STATIC);
        if (step_done(s->db, s->ins, "INSERT"))
            return -1;
    }
    if (step_done(s->db, s->commit, "COMMIT"))
        return -1;
    bc_signal_post(s->sig);
    return 0;
}

static int q_finish(bc_store *s)
{
    (void)s;
    return 0;
}

static int64_t q_stored_bytes(bc_store *s)
{
    /* the table's pages once the WAL is checkpointed into the database */
    if (sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL))
        return fail(s->db, "checkpoint");
    sqlite3_stmt *st;
    int64_t v[2] = { 0, 0 };
    const char *q[2] = { "PRAGMA page_count", "PRAGMA page_size" };
    for (int i = 0; i < 2; i++) {
        if (sqlite3_prepare_v2(s->db, q[i], -1, &st, NULL))
            return fail(s->db, q[i]);
        if (sqlite3_step(st) == SQLITE_ROW)
            v[i] = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return v[0] * v[1];
}

/* Run sel to the end, delivering rows; returns rows, -1 on error. */
static int64_t drain(sqlite3 *db, sqlite3_stmt *sel, int64_t *last, bc_msg_fn fn, void *arg)
{
    int64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        *last = sqlite3_column_int64(sel, 0);
        const void *k = sqlite3_column_blob(sel, 1);
        size_t kl = (size_t)sqlite3_column_bytes(sel, 1);
        const void *v = sqlite3_column_blob(sel, 2);
        size_t vl = (size_t)sqlite3_column_bytes(sel, 2);
        fn(arg, k, kl, v, vl);
        n++;
    }
    sqlite3_reset(sel);
    return rc == SQLITE_DONE ? n : fail(db, "SELECT");
}

static int64_t q_consume_all(bc_store *s, bc_msg_fn fn, void *arg)
{
    sqlite3_stmt *sel;
    if (sqlite3_prepare_v2(s->db, "SELECT offset, key, value FROM log ORDER BY offset", -1, &sel, NULL))
        return fail(s->db, "prepare SELECT");
    int64_t last = -1, n = drain(s->db, sel, &last, fn, arg);
    sqlite3_finalize(sel);
    return n;
}

static int q_reader_open(bc_store *s, bc_reader **out)
{
    bc_reader *r = calloc(1, sizeof *r);
    if (!r || (s->sig = bc_signal_new()) < 0) {
        free(r);
        return -1;
    }
    r->s = s;
    r->last = -1;
    if (sqlite3_open_v2(s->path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) ||
        sqlite3_busy_timeout(r->db, 10000) ||
        sqlite3_prepare_v2(r->db, "SELECT offset, key, value FROM log WHERE offset > ?1 ORDER BY offset", -1,
                           &r->sel, NULL)) {
        fail(r->db, "reader");
        sqlite3_close(r->db);
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

static int q_reader_wait(bc_reader *r, int timeout_ms, bc_msg_fn fn, void *arg)
{
    int w = bc_signal_wait(r->s->sig, timeout_ms);
    if (w <= 0)
        return w;
    sqlite3_bind_int64(r->sel, 1, r->last);
    return (int)drain(r->db, r->sel, &r->last, fn, arg);
}

static void q_reader_close(bc_reader *r)
{
    if (r) {
        sqlite3_finalize(r->sel);
        sqlite3_close(r->db);
        free(r);
    }
}

const bc_backend bc_sqlite = {
    .name = "sqlite",
    .check = q_check,
    .open = q_open,
    .produce = q_produce,
    .finish = q_finish,
    .stored_bytes = q_stored_bytes,
    .consume_all = q_consume_all,
    .reader_open = q_reader_open,
    .reader_wait = q_reader_wait,
    .reader_close = q_reader_close,
    .close = q_close,
};
