/*
 * test/storage/cache.c - what a log holds in memory and open while idle:
 * the cap on open files shared by many logs (ks_cache), indexes loaded on
 * demand and dropped under a cap, the active segment's indexes left in
 * their files until needed, and a new or idle log writing nothing it need
 * not (issue 18).
 */
#include <pthread.h>

#include "util.h"

TestSuite(cache, .init = tu_setup, .fini = tu_teardown, .timeout = 240);

#define NLOGS 12

static void log_dir(char out[TU_PATH], int i)
{
    char name[32];
    snprintf(name, sizeof name, "l%d", i);
    tu_sub(out, name);
}

static ks_cache_stats cache_stats(ks_cache *c)
{
    ks_cache_stats st;
    ks_cache_get_stats(c, &st);
    return st;
}

/* Twelve logs sharing a cap of three open files: every one takes appends
 * (durable and not), rolls, syncs, a truncation, and reads back whole,
 * before and after a reopen; between calls no more than three files are
 * open. */
Test(cache, many_logs_under_a_cap_of_three_files)
{
    ks_cache *c;
    cr_assert_eq(ks_cache_new(&c, 3, 0), 0);
    ks_log *logs[NLOGS];
    int64_t n[NLOGS] = { 0 };
    for (int i = 0; i < NLOGS; i++) {
        char d[TU_PATH];
        log_dir(d, i);
        ks_log_config cfg = tu_small_cfg(i % 3 == 0 ? KS_DURABILITY_ALWAYS : KS_DURABILITY_NONE);
        cfg.cache = c;
        logs[i] = tu_log_open(tu_io, d, &cfg);
        cr_assert_leq(cache_stats(c).open_files, 3, "after opening %d logs", i + 1);
    }
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < NLOGS; i++) {
            tu_append_seq(logs[i], 1 + (round + i) % 4, round % 5 == 0 ? KS_APPEND_SYNC : 0);
            n[i] = ks_log_end_offset(logs[i]);
            cr_assert_leq(cache_stats(c).open_files, 3, "round %d, log %d", round, i);
        }
    for (int i = 0; i < NLOGS; i++) {
        cr_assert_eq(ks_log_sync(logs[i]), 0);
        cr_assert_eq(ks_log_durable_offset(logs[i]), n[i]);
        cr_assert_gt(ks_log_segment_count(logs[i]), 1, "log %d never rolled", i);
    }
    cr_assert_gt(cache_stats(c).reopens, 0, "the cap never closed a file");
    /* a truncation reopens the file it cuts */
    int64_t cut_end;
    cr_assert_eq(ks_log_truncate_to(logs[5], n[5] / 2, &cut_end), 0);
    n[5] = cut_end;
    tu_append_seq(logs[5], 3, KS_APPEND_SYNC);
    n[5] += 3;
    for (int i = 0; i < NLOGS; i++)
        tu_expect_identity(logs[i], n[i]);
    for (int i = 0; i < NLOGS; i++)
        tu_log_close(logs[i]);
    cr_assert_eq(cache_stats(c).open_files, 0, "closed logs left files on the list");
    for (int i = 0; i < NLOGS; i++) {
        char d[TU_PATH];
        log_dir(d, i);
        ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
        cfg.cache = c;
        logs[i] = tu_log_open(tu_io, d, &cfg);
    }
    for (int i = 0; i < NLOGS; i++) {
        tu_expect_identity(logs[i], n[i]);
        tu_append_seq(logs[i], 2, 0);
        cr_assert_leq(cache_stats(c).open_files, 3);
    }
    for (int i = 0; i < NLOGS; i++)
        tu_log_close(logs[i]);
    ks_cache_free(c);
}

/* Threads appending durably to logs that share a cap of two files: the
 * cap closes files between appends, never under one or under a
 * group-commit leader's sync (which would fail with EBADF, or sync
 * another file that took the descriptor). */
typedef struct worker { ks_log *log[3]; int64_t n[3]; int err; } worker;

static void *append_worker(void *arg)
{
    worker *w = arg;
    for (int round = 0; round < 60 && !w->err; round++)
        for (int i = 0; i < 3 && !w->err; i++) {
            tu_batch b;
            int64_t base;
            tu_build(&b, 0, 1 + round % 3);
            int rc = tu_append1(w->log[i], &b, round % 2 ? KS_APPEND_SYNC : 0, &base);
            tu_batch_free(&b);
            if (rc == 0 && round % 7 == 0)
                rc = ks_log_sync(w->log[i]);
            if (rc != 0)
                w->err = rc;
            w->n[i] = ks_log_end_offset(w->log[i]);
        }
    return NULL;
}

Test(cache, threads_appending_under_a_cap_of_two_files)
{
    ks_cache *c;
    cr_assert_eq(ks_cache_new(&c, 2, 0), 0);
    worker w[4];
    pthread_t th[4];
    memset(w, 0, sizeof w);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 3; i++) {
            char d[TU_PATH];
            log_dir(d, t * 3 + i);
            ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
            cfg.cache = c;
            w[t].log[i] = tu_log_open(tu_io, d, &cfg);
        }
    for (int t = 0; t < 4; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, append_worker, &w[t]), 0);
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++) {
        cr_assert_eq(w[t].err, 0, "worker %d: %s", t, klog_strerror(w[t].err));
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(ks_log_error(w[t].log[i]), 0);
            cr_assert_eq(ks_log_durable_offset(w[t].log[i]) <= w[t].n[i], true);
            tu_content ct;
            cr_assert_eq(tu_read_all(w[t].log[i], &ct), 0);
            cr_assert_eq((int64_t)ct.n, w[t].n[i]);
            tu_content_free(&ct);
            tu_log_close(w[t].log[i]);
        }
    }
    cr_assert_leq(cache_stats(c).open_files, 0);
    cr_assert_gt(cache_stats(c).reopens, 0, "the cap never closed a file");
    ks_cache_free(c);
}

/* Bytes of the largest pair of index files in dir. */
static uint64_t largest_index_pair(const char *dir, int *segments)
{
    static tu_name names[512];
    size_t n = tu_list(dir, ".index", names, 512);
    uint64_t most = 0;
    for (size_t i = 0; i < n; i++) {
        char p[TU_PATH], q[TU_PATH];
        tu_path(p, dir, names[i]);
        snprintf(q, sizeof q, "%.*s.timeindex", (int)(strlen(p) - strlen(".index")), p);
        uint64_t b = (uint64_t)tu_fsize(p) + (uint64_t)tu_fsize(q);
        if (b > most)
            most = b;
    }
    *segments = (int)n;
    return most;
}

/* A log of many segments, reopened: no index is in memory until a read
 * needs one; reads all over it load them and the cap drops them again,
 * and every read still finds its offset. */
Test(cache, sealed_indexes_load_on_demand_under_a_cap)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    cfg.index_interval_bytes = 128;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    for (int i = 0; i < 300; i++)
        tu_append_seq(log, 1 + i % 4, 0);
    int64_t end = ks_log_end_offset(log);
    tu_log_close(log);
    int nseg;
    uint64_t pair = largest_index_pair(tu_dir, &nseg);
    cr_assert_gt(nseg, 10, "only %d sealed segments", nseg);
    cr_assert_gt(pair, 2 * 64, "indexes without entries");

    ks_cache *c;
    uint64_t cap = 3 * pair;
    cr_assert_eq(ks_cache_new(&c, 0, cap), 0);
    cfg.cache = c;
    log = tu_log_open(tu_io, tu_dir, &cfg);
    cr_assert_eq(cache_stats(c).index_bytes, 0, "indexes loaded by the open");
    tu_rng r = { 42 };
    for (int i = 0; i < 2000; i++) {
        int64_t off = (int64_t)tu_range(&r, 0, (uint64_t)end - 1);
        ks_view v;
        cr_assert_eq(ks_log_read(log, off, 1, &v), 0, "read at %lld", (long long)off);
        cr_assert_leq(v.first_offset, off);
        cr_assert_gt(v.next_offset, off, "view [%lld, %lld) misses %lld", (long long)v.first_offset,
                     (long long)v.next_offset, (long long)off);
        ks_view_release(&v);
        cr_assert_leq(cache_stats(c).index_bytes, cap, "read %d: %llu bytes of indexes in memory", i,
                      (unsigned long long)cache_stats(c).index_bytes);
    }
    ks_cache_stats st = cache_stats(c);
    cr_assert_gt(st.index_loads, (uint64_t)nseg, "no index was ever dropped and loaded again");
    /* lookups by time load the time indexes the same way */
    int64_t o;
    cr_assert_eq(ks_log_offset_for_time(log, tu_ts((uint64_t)end / 2), &o), 0);
    cr_assert_eq(o, end / 2);
    tu_expect_identity(log, end);
    tu_log_close(log);
    cr_assert_eq(cache_stats(c).index_bytes, 0, "a closed log's indexes still counted");
    ks_cache_free(c);
}

/* A sealed segment's index file damaged after the open validated it: the
 * lookup that loads it rebuilds it from the segment instead. */
Test(cache, index_damaged_after_open_is_rebuilt_by_the_lookup)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    cfg.index_interval_bytes = 128;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    for (int i = 0; i < 60; i++)
        tu_append_seq(log, 3, 0);
    int64_t end = ks_log_end_offset(log);
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    static tu_name names[256];
    size_t n = tu_list(tu_dir, ".index", names, 256);
    cr_assert_gt(n, 3);
    for (size_t i = 0; i + 1 < n; i += 2) {
        char p[TU_PATH];
        tu_path(p, tu_dir, names[i]);
        tu_flip_bit(p, tu_fsize(p) - 3, 5); /* an entry: the checksum catches it */
    }
    for (int64_t off = 0; off < end; off++) {
        ks_view v;
        cr_assert_eq(ks_log_read(log, off, 1, &v), 0);
        cr_assert(v.first_offset <= off && off < v.next_offset, "offset %lld", (long long)off);
        ks_view_release(&v);
    }
    tu_expect_identity(log, end);
    tu_log_close(log);
}

static bool ix_files_of(const char *dir, int64_t base)
{
    char name[KS_NAME_MAX], p[TU_PATH], q[TU_PATH];
    ks_segment_name(name, sizeof name, base, ".index");
    tu_path(p, dir, name);
    ks_segment_name(name, sizeof name, base, ".timeindex");
    tu_path(q, dir, name);
    cr_assert_eq(tu_exists(p), tu_exists(q), "one index file of %lld without the other", (long long)base);
    return tu_exists(p);
}

/* After a clean reopen the active segment's indexes stay in their files:
 * reads load them; the first append removes the files (they would be
 * stale); close writes them again. */
Test(cache, active_indexes_stay_in_their_files_until_an_append)
{
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.index_interval_bytes = 128;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    for (int i = 0; i < 50; i++)
        tu_append_seq(log, 2, 0);
    cr_assert_eq(ks_log_segment_count(log), 1);
    tu_log_close(log);
    cr_assert(ix_files_of(tu_dir, 0), "close wrote no index files");
    log = tu_log_open(tu_io, tu_dir, &cfg);
    cr_assert(ix_files_of(tu_dir, 0), "the open removed the active segment's index files");
    for (int64_t off = 0; off < 100; off += 7) {
        ks_view v;
        cr_assert_eq(ks_log_read(log, off, 1, &v), 0);
        cr_assert(v.first_offset <= off && off < v.next_offset);
        ks_view_release(&v);
    }
    cr_assert(ix_files_of(tu_dir, 0), "a read removed the index files");
    tu_append_seq(log, 2, 0);
    cr_assert(!ix_files_of(tu_dir, 0), "index files outlived an append");
    tu_expect_identity(log, 102);
    tu_log_close(log);
    cr_assert(ix_files_of(tu_dir, 0));
    log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_expect_identity(log, 102);
    /* a truncation makes them stale too */
    cr_assert_eq(ks_log_truncate_to(log, 51, NULL), 0);
    cr_assert(!ix_files_of(tu_dir, 0));
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_expect_identity(log, 50);
    tu_log_close(log);
}

/* Counts the operations of a wrapped engine. */
typedef struct op_count { _Atomic unsigned n[10]; } op_count;

static void count_hook(void *ctx, void *st, unsigned op)
{
    (void)st;
    op_count *c = ctx;
    for (unsigned i = 0; i < 10; i++)
        if (op & (1u << i))
            atomic_fetch_add(&c->n[i], 1);
}

static kio *counting_io(op_count *c)
{
    const void *arg;
    const struct kio_methods *base = tu_base_methods(&arg);
    tu_wrap_init wi = { .base = base, .base_arg = arg, .hook = count_hook, .ctx = c };
    kio *io = NULL;
    cr_assert_eq(kio_open_methods(&io, tu_wrap_methods(base), &wi), 0);
    return io;
}

static unsigned ops(op_count *c, unsigned op)
{
    unsigned n = 0;
    for (unsigned i = 0; i < 10; i++)
        if (op & (1u << i))
            n += atomic_load(&c->n[i]);
    return n;
}

/* A log made in a new directory syncs nothing, and an idle log (opened,
 * read, closed) writes nothing: thousands of partitions must open and
 * close in a second.  The first append and close then write what they
 * must. */
Test(cache, new_and_idle_logs_write_nothing)
{
    op_count oc;
    memset(&oc, 0, sizeof oc);
    kio *io = counting_io(&oc);
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    cfg.dir_locked = true;
    ks_log *log = tu_log_open(io, tu_dir, &cfg);
    tu_log_close(log);
    cr_assert_eq(ops(&oc, KIO_OP_SYNC | KIO_OP_DIRSYNC | KIO_OP_WRITE | KIO_OP_RENAME), 0,
                 "a new log synced or wrote: %u syncs, %u dirsyncs, %u writes", ops(&oc, KIO_OP_SYNC),
                 ops(&oc, KIO_OP_DIRSYNC), ops(&oc, KIO_OP_WRITE));
    char p[TU_PATH];
    tu_path(p, tu_dir, ".lock");
    cr_assert(!tu_exists(p), "a lock file where the caller holds the lock");
    tu_path(p, tu_dir, "recovery.ckpt");
    cr_assert(!tu_exists(p), "a checkpoint of nothing");

    log = tu_log_open(io, tu_dir, &cfg);
    for (int i = 0; i < 30; i++)
        tu_append_seq(log, 2, 0);
    tu_log_close(log);
    cr_assert(tu_exists(p), "no checkpoint after appends");

    memset(&oc, 0, sizeof oc);
    log = tu_log_open(io, tu_dir, &cfg);
    tu_expect_identity(log, 60);
    tu_log_close(log);
    cr_assert_eq(ops(&oc, KIO_OP_SYNC | KIO_OP_DIRSYNC | KIO_OP_WRITE | KIO_OP_RENAME | KIO_OP_UNLINK), 0,
                 "an idle log wrote: %u syncs, %u dirsyncs, %u writes, %u renames, %u unlinks",
                 ops(&oc, KIO_OP_SYNC), ops(&oc, KIO_OP_DIRSYNC), ops(&oc, KIO_OP_WRITE),
                 ops(&oc, KIO_OP_RENAME), ops(&oc, KIO_OP_UNLINK));
    kio_close(io);
}

/* What a new log defers is made durable before anything vouches for
 * data: a durable append into a new directory survives a crash that loses
 * every directory entry no sync covered. */
Test(cache, new_log_durable_append_survives_losing_directory_entries)
{
    for (int way = 0; way < 3; way++) {
        char dir[TU_PATH], parent[TU_PATH];
        tu_sub(parent, "p");
        tu_rmrf(parent);
        cr_assert_eq(mkdir(parent, 0755), 0);
        kio *io = tu_fault_open();
        /* the parent itself must survive: make it durable */
        cr_assert_eq(kio_dirsync(io, tu_root), 0);
        snprintf(dir, sizeof dir, "%s/log", parent);
        ks_log_config cfg = tu_small_cfg(way == 0 ? KS_DURABILITY_ALWAYS : KS_DURABILITY_NONE);
        ks_log *log = tu_log_open(io, dir, &cfg);
        tu_append_seq(log, 3, way == 1 ? KS_APPEND_SYNC : 0);
        if (way == 2)
            cr_assert_eq(ks_log_sync(log), 0);
        cr_assert_eq(ks_log_durable_offset(log), 3);
        cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, KIO_CRASH_LOSE_DIRENTS, 7), 0);
        ks_log_close(log);
        kio_close(io);
        log = tu_log_open(tu_io, dir, &cfg);
        tu_expect_identity(log, 3);
        tu_log_close(log);
    }
}
