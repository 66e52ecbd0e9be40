/*
 * test/io/crash.c - the simulated crash of the fault backend.  Every check
 * reopens the files with a fresh posix engine (or plain syscalls), as
 * recovery after a real crash would.
 */
#include "io_test.h"

TestSuite(crash, .init = t_setup, .fini = t_teardown, .timeout = 240);

enum { SYNCED = 3000, UNSYNCED = 5000 };

static kio *open_fault(bool uring)
{
    return t_open(uring ? TB_FAULT_URING : TB_FAULT_POSIX);
}

/* Read the whole file through a fresh posix engine. */
static uint8_t *reread(const char *p, size_t *len)
{
    kio *io = NULL;
    cr_assert_eq(kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_POSIX }), 0);
    int h = kio_file_open(io, p, KIO_O_RDONLY, 0);
    if (h < 0) {
        kio_close(io);
        return NULL;
    }
    uint64_t sz;
    cr_assert_eq(kio_size(io, h, &sz), 0);
    uint8_t *b = malloc(sz ? sz : 1);
    cr_assert_eq(kio_pread(io, h, b, sz, 0), (ssize_t)sz);
    kio_file_close(io, h);
    kio_close(io);
    *len = sz;
    return b;
}

/* write+sync SYNCED bytes, write UNSYNCED more (in two writes, the second
 * through a batch), crash; returns the file afterwards */
static uint8_t *crash_one(bool uring, const char *name, enum kio_crash_mode mode, uint64_t seed,
                          size_t *len)
{
    kio *io = open_fault(uring);
    const char *p = t_path(g_dir, name);
    int h = kio_file_open(io, p, KIO_O_RDWR | KIO_O_CREAT | KIO_O_EXCL, 0644);
    cr_assert_geq(h, 0);
    cr_assert_eq(kio_dirsync(io, g_dir), 0);
    uint8_t w[SYNCED + UNSYNCED];
    t_fill(w, sizeof w, 21, 0);
    struct iovec v = { w, SYNCED };
    kio_wreq r = { h, &v, 1, 0 };
    cr_assert_eq(kio_pwritev_many(io, &r, 1, KIO_W_DSYNC, NULL), 0);
    t_put(io, h, w + SYNCED, 2000, SYNCED);
    struct iovec v2 = { w + SYNCED + 2000, UNSYNCED - 2000 };
    kio_wreq r2 = { h, &v2, 1, SYNCED + 2000 };
    cr_assert_eq(kio_pwritev_many(io, &r2, 1, 0, NULL), 0);
    cr_assert_eq(kio_fault_crash(io, mode, 0, seed), 0);
    kio_close(io); /* without closing h: the engine releases it */
    char path[4200];
    snprintf(path, sizeof path, "%s", p);
    uint8_t *b = reread(path, len);
    cr_assert_not_null(b, "file vanished although its create was dir-synced");
    return b;
}

/* Check one post-crash image against what its mode allows. */
static void check_image(const uint8_t *b, size_t n, enum kio_crash_mode mode, uint64_t seed)
{
    uint8_t w[SYNCED + UNSYNCED];
    t_fill(w, sizeof w, 21, 0);
    cr_assert_geq(n, SYNCED, "mode %d seed %llu: synced data lost (size %zu)", mode,
                  (unsigned long long)seed, n);
    cr_assert_arr_eq(b, w, SYNCED, "mode %d seed %llu: synced bytes changed", mode, (unsigned long long)seed);
    const uint8_t *tail = b + SYNCED;
    size_t tn = n - SYNCED;
    cr_assert_leq(tn, UNSYNCED);
    bool zeros = true;
    for (size_t i = 0; i < tn; i++)
        zeros = zeros && tail[i] == 0;
    bool prefix = memcmp(tail, w + SYNCED, tn) == 0;
    switch (mode) {
    case KIO_CRASH_DROP:
        cr_assert_eq(tn, 0, "DROP kept %zu bytes", tn);
        break;
    case KIO_CRASH_ZERO:
        cr_assert(tn == 0 || (tn == UNSYNCED && zeros), "ZERO: %zu bytes, zeros=%d", tn, zeros);
        break;
    case KIO_CRASH_PREFIX:
        cr_assert(prefix, "PREFIX: the %zu surviving bytes are not what was written", tn);
        break;
    case KIO_CRASH_GARBAGE:
        cr_assert_eq(tn, UNSYNCED, "GARBAGE changed the length");
        cr_assert(!prefix && !zeros, "GARBAGE left the bytes as written (or zero)");
        break;
    default: /* RANDOM: any of the above */
        cr_assert(tn == 0 || prefix || zeros || tn == UNSYNCED, "RANDOM: no mode explains this");
        break;
    }
}

static void modes_and_seeds(bool uring)
{
    const int seeds = 12;
    for (int mode = KIO_CRASH_DROP; mode <= KIO_CRASH_RANDOM; mode++) {
        size_t prefix_lens[64];
        for (int s = 0; s < seeds; s++) {
            char name[32];
            snprintf(name, sizeof name, "f-%d-%d", mode, s);
            size_t n;
            uint8_t *b = crash_one(uring, name, (enum kio_crash_mode)mode, (uint64_t)s * 7919, &n);
            check_image(b, n, (enum kio_crash_mode)mode, (uint64_t)s);
            prefix_lens[s] = n;
            free(b);
        }
        if (mode == KIO_CRASH_PREFIX) {
            /* the seed matters: not every seed gives the same length */
            bool differ = false;
            for (int s = 1; s < seeds; s++)
                differ = differ || prefix_lens[s] != prefix_lens[0];
            cr_assert(differ, "PREFIX cut every file at the same length");
        }
    }
}

Test(crash, modes_and_seeds_posix) { modes_and_seeds(false); }
Test(crash, modes_and_seeds_uring) { modes_and_seeds(true); }

Test(crash, deterministic_from_seed)
{
    for (int mode = KIO_CRASH_PREFIX; mode <= KIO_CRASH_RANDOM; mode++) {
        size_t n1, n2, n3;
        uint8_t *a = crash_one(false, "d1", (enum kio_crash_mode)mode, 42, &n1);
        uint8_t *b = crash_one(false, "d2", (enum kio_crash_mode)mode, 42, &n2);
        cr_assert_eq(n1, n2, "mode %d: same seed, different length", mode);
        cr_assert_arr_eq(a, b, n1, "mode %d: same seed, different bytes", mode);
        free(a);
        free(b);
        unlink(t_path(g_dir, "d1"));
        unlink(t_path(g_dir, "d2"));
        if (mode == KIO_CRASH_GARBAGE) {
            uint8_t *c = crash_one(false, "d3", (enum kio_crash_mode)mode, 43, &n3);
            uint8_t *d = crash_one(false, "d4", (enum kio_crash_mode)mode, 42, &n1);
            cr_assert(memcmp(c, d, n3) != 0, "GARBAGE ignores the seed");
            free(c);
            free(d);
        }
    }
}

/* Overwrites and truncations of durable bytes are undone; unsynced data
 * written through a handle that was then closed is lost anyway. */
static void overwrite_and_truncate(bool uring, enum kio_crash_mode mode)
{
    kio *io = open_fault(uring);
    uint8_t w[8192], x[8192];
    t_fill(w, sizeof w, 31, 0);
    memset(x, 0xee, sizeof x);
    t_write_file(t_path(g_dir, "pre"), w, 4096); /* existed before: durable */

    int h1 = kio_file_open(io, t_path(g_dir, "pre"), KIO_O_RDWR, 0);
    cr_assert_geq(h1, 0);
    t_put(io, h1, x, 1000, 1000);          /* overwrite durable bytes */
    t_put(io, h1, x, 1000, 1500);          /* and again, overlapping */
    cr_assert_eq(kio_truncate(io, h1, 500), 0);
    t_put(io, h1, x, 100, 500);            /* then write into the cut */
    cr_assert_eq(kio_file_close(io, h1), 0);

    int h2 = kio_file_open(io, t_path(g_dir, "new"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h2, 0);
    t_put(io, h2, w, 8192, 0);
    cr_assert_eq(kio_datasync(io, h2), 0);
    t_put(io, h2, x, 2000, 100);           /* overwrite after the sync */
    cr_assert_eq(kio_truncate(io, h2, 3000), 0);
    cr_assert_eq(kio_file_close(io, h2), 0);
    /* reopen with O_TRUNC: the durable bytes are still due back */
    h2 = kio_file_open(io, t_path(g_dir, "new"), KIO_O_RDWR | KIO_O_TRUNC, 0);
    cr_assert_geq(h2, 0);
    t_put(io, h2, x, 50, 0);
    cr_assert_eq(kio_dirsync(io, g_dir), 0);

    int h3 = kio_file_open(io, t_path(g_dir, "unsynced"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    t_put(io, h3, w, 1000, 0);
    cr_assert_eq(kio_file_close(io, h3), 0); /* closing is not syncing */
    cr_assert_eq(kio_dirsync(io, g_dir), 0);

    cr_assert_eq(kio_fault_crash(io, mode, 0, 5), 0);
    kio_close(io);

    size_t n;
    uint8_t *b = reread(t_path(g_dir, "pre"), &n);
    cr_assert_eq(n, 4096, "mode %d: pre size %zu", mode, n);
    cr_assert_arr_eq(b, w, 4096, "mode %d: durable bytes of pre not restored", mode);
    free(b);
    b = reread(t_path(g_dir, "new"), &n);
    cr_assert_eq(n, 8192, "mode %d: new size %zu", mode, n);
    cr_assert_arr_eq(b, w, 8192, "mode %d: durable bytes of new not restored", mode);
    free(b);
    b = reread(t_path(g_dir, "unsynced"), &n);
    cr_assert_not_null(b);
    if (mode == KIO_CRASH_DROP)
        cr_assert_eq(n, 0);
    else
        cr_assert_leq(n, 1000);
    free(b);
}

Test(crash, overwrite_truncate_drop_posix) { overwrite_and_truncate(false, KIO_CRASH_DROP); }
Test(crash, overwrite_truncate_garbage_posix) { overwrite_and_truncate(false, KIO_CRASH_GARBAGE); }
Test(crash, overwrite_truncate_zero_uring) { overwrite_and_truncate(true, KIO_CRASH_ZERO); }
Test(crash, overwrite_truncate_prefix_uring) { overwrite_and_truncate(true, KIO_CRASH_PREFIX); }

/* Directory entries: what a dirsync covered stays, the rest is undone. */
static void dirents(bool uring, bool lose)
{
    kio *io = open_fault(uring);
    uint8_t w[1000];
    t_fill(w, sizeof w, 41, 0);
    const char *d = g_dir;
    /* before the engine: durable by assumption */
    t_write_file(t_path(d, "old-target"), "OLD", 3);
    t_write_file(t_path(d, "to-unlink"), "UNL", 3);
    t_write_file(t_path(d, "to-unlink-synced"), "UNS", 3);

    /* created and dir-synced: survives */
    int h = kio_file_open(io, t_path(d, "kept"), KIO_O_RDWR | KIO_O_CREAT | KIO_O_EXCL, 0644);
    t_put(io, h, w, 100, 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    kio_file_close(io, h);
    /* renamed and dir-synced: the new name survives */
    h = kio_file_open(io, t_path(d, "e"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    t_put(io, h, w, 200, 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    kio_file_close(io, h);
    cr_assert_eq(kio_rename(io, t_path(d, "e"), t_path(d, "f")), 0);
    cr_assert_eq(kio_unlink(io, t_path(d, "to-unlink-synced")), 0);
    cr_assert_eq(kio_dirsync(io, d), 0);

    /* from here on nothing is dir-synced */
    h = kio_file_open(io, t_path(d, "lost"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    t_put(io, h, w, 300, 0);
    cr_assert_eq(kio_datasync(io, h), 0); /* data durable, name is not */
    kio_file_close(io, h);
    cr_assert_eq(kio_rename(io, t_path(d, "f"), t_path(d, "g")), 0);
    /* write-tmp-then-rename over an existing file (checkpoint pattern) */
    h = kio_file_open(io, t_path(d, "tmp"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    t_put(io, h, "NEW", 3, 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    kio_file_close(io, h);
    cr_assert_eq(kio_rename(io, t_path(d, "tmp"), t_path(d, "old-target")), 0);
    cr_assert_eq(kio_unlink(io, t_path(d, "to-unlink")), 0);
    cr_assert_eq(kio_mkdir(io, t_path(d, "sub"), 0755), 0);
    char in_sub[4200];
    snprintf(in_sub, sizeof in_sub, "%s/sub/x", d);
    h = kio_file_open(io, in_sub, KIO_O_RDWR | KIO_O_CREAT, 0644);
    t_put(io, h, w, 10, 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    kio_file_close(io, h);
    cr_assert_eq(kio_dirsync(io, t_path(d, "sub")), 0); /* sub itself is not durable */

    /* nothing of the engine's is visible in the directory */
    cr_assert_eq(t_count_entries(d), 5, "expected kept g lost old-target sub");

    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, lose ? KIO_CRASH_LOSE_DIRENTS : 0, 1), 0);
    kio_close(io);

    size_t n;
    uint8_t *b;
    cr_assert(t_exists(t_path(d, "kept")));
    b = reread(t_path(d, "kept"), &n);
    cr_assert_eq(n, 100);
    cr_assert_arr_eq(b, w, 100);
    free(b);
    cr_assert(!t_exists(t_path(d, "e")));
    cr_assert(!t_exists(t_path(d, "to-unlink-synced")));
    if (lose) {
        cr_assert(!t_exists(t_path(d, "lost")), "un-dirsynced create kept");
        cr_assert(!t_exists(t_path(d, "g")), "un-dirsynced rename kept");
        cr_assert(t_exists(t_path(d, "f")), "un-dirsynced rename not undone");
        b = reread(t_path(d, "f"), &n);
        cr_assert_eq(n, 200);
        cr_assert_arr_eq(b, w, 200);
        free(b);
        b = reread(t_path(d, "old-target"), &n);
        cr_assert_eq(n, 3);
        cr_assert_arr_eq(b, "OLD", 3, "replaced target not restored");
        free(b);
        cr_assert(!t_exists(t_path(d, "tmp")), "tmp was created un-dirsynced");
        b = reread(t_path(d, "to-unlink"), &n);
        cr_assert_not_null(b, "un-dirsynced unlink not undone");
        cr_assert_eq(n, 3);
        cr_assert_arr_eq(b, "UNL", 3);
        free(b);
        cr_assert(!t_exists(t_path(d, "sub")), "un-dirsynced mkdir kept");
        cr_assert_eq(t_count_entries(d), 4, "kept f old-target to-unlink");
    } else {
        cr_assert(t_exists(t_path(d, "lost")));
        b = reread(t_path(d, "g"), &n);
        cr_assert_eq(n, 200);
        free(b);
        b = reread(t_path(d, "old-target"), &n);
        cr_assert_eq(n, 3);
        cr_assert_arr_eq(b, "NEW", 3);
        free(b);
        cr_assert(!t_exists(t_path(d, "to-unlink")));
        cr_assert(t_exists(in_sub));
        cr_assert_eq(t_count_entries(d), 5);
    }
}

Test(crash, dirents_lost_posix) { dirents(false, true); }
Test(crash, dirents_kept_posix) { dirents(false, false); }
Test(crash, dirents_lost_uring) { dirents(true, true); }

/* Data written to a file after its unlink (open handle) and its rename
 * follows the file back when the change is undone. */
Test(crash, data_follows_undone_rename)
{
    kio *io = open_fault(false);
    uint8_t w[2000];
    t_fill(w, sizeof w, 51, 0);
    int h = kio_file_open(io, t_path(g_dir, "a"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    t_put(io, h, w, 1000, 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    cr_assert_eq(kio_dirsync(io, g_dir), 0);
    cr_assert_eq(kio_rename(io, t_path(g_dir, "a"), t_path(g_dir, "b")), 0);
    t_put(io, h, w + 1000, 1000, 1000); /* unsynced, through the open handle */
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, KIO_CRASH_LOSE_DIRENTS, 3), 0);
    kio_close(io);
    size_t n;
    uint8_t *b = reread(t_path(g_dir, "a"), &n);
    cr_assert_not_null(b);
    cr_assert_eq(n, 1000, "unsynced append survived DROP after the rename was undone");
    cr_assert_arr_eq(b, w, 1000);
    free(b);
    cr_assert(!t_exists(t_path(g_dir, "b")));
}

/* The crash finds a file under the name it has now, not the one it was
 * created under. */
Test(crash, data_follows_rename)
{
    kio *io = open_fault(false);
    uint8_t w[2000];
    t_fill(w, sizeof w, 52, 0);
    int h = kio_file_open(io, t_path(g_dir, "a"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    t_put(io, h, w, 1000, 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    cr_assert_eq(kio_rename(io, t_path(g_dir, "a"), t_path(g_dir, "b")), 0);
    cr_assert_eq(kio_dirsync(io, g_dir), 0);
    t_put(io, h, w + 1000, 1000, 1000);
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, KIO_CRASH_LOSE_DIRENTS, 3), 0);
    kio_close(io);
    size_t n;
    uint8_t *b = reread(t_path(g_dir, "b"), &n);
    cr_assert_not_null(b);
    cr_assert_eq(n, 1000, "unsynced append to a renamed file survived DROP");
    cr_assert_arr_eq(b, w, 1000);
    free(b);
    cr_assert(!t_exists(t_path(g_dir, "a")));
}

/* A file replaced behind the engine's back is a new file, durable as found
 * (its old record must not be applied to it). */
Test(crash, file_replaced_outside_engine)
{
    kio *io = open_fault(false);
    uint8_t w[1000];
    t_fill(w, sizeof w, 53, 0);
    int h = kio_file_open(io, t_path(g_dir, "a"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    t_put(io, h, w, 1000, 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    kio_file_close(io, h);
    t_write_file(t_path(g_dir, "other"), "fresh", 5);
    cr_assert_eq(rename(t_path(g_dir, "other"), t_path(g_dir, "a")), 0);
    h = kio_file_open(io, t_path(g_dir, "a"), KIO_O_RDWR, 0);
    cr_assert_geq(h, 0);
    t_put(io, h, "++", 2, 5);
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, 0, 0), 0);
    kio_close(io);
    size_t n;
    uint8_t *b = reread(t_path(g_dir, "a"), &n);
    cr_assert_eq(n, 5);
    cr_assert_arr_eq(b, "fresh", 5);
    free(b);
}

/* A rename between directories is durable once both are dir-synced. */
static void cross_dir(int synced_dirs)
{
    kio *io = open_fault(false);
    char d1[4200], d2[4200], a[4300], b[4300];
    snprintf(d1, sizeof d1, "%s/d1", g_dir);
    snprintf(d2, sizeof d2, "%s/d2", g_dir);
    snprintf(a, sizeof a, "%s/x", d1);
    snprintf(b, sizeof b, "%s/x", d2);
    cr_assert_eq(kio_mkdir(io, d1, 0755), 0);
    cr_assert_eq(kio_mkdir(io, d2, 0755), 0);
    cr_assert_eq(kio_dirsync(io, g_dir), 0);
    int h = kio_file_open(io, a, KIO_O_RDWR | KIO_O_CREAT, 0644);
    t_put(io, h, "data", 4, 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    kio_file_close(io, h);
    cr_assert_eq(kio_dirsync(io, d1), 0);
    cr_assert_eq(kio_rename(io, a, b), 0);
    if (synced_dirs & 1)
        cr_assert_eq(kio_dirsync(io, d1), 0);
    if (synced_dirs & 2)
        cr_assert_eq(kio_dirsync(io, d2), 0);
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, KIO_CRASH_LOSE_DIRENTS, 0), 0);
    kio_close(io);
    bool moved = synced_dirs == 3;
    cr_assert_eq(t_exists(b), moved, "dirs synced %d: new name %s", synced_dirs,
                 moved ? "lost" : "kept");
    cr_assert_eq(t_exists(a), !moved, "dirs synced %d: old name wrong", synced_dirs);
    size_t n;
    uint8_t *f = reread(moved ? b : a, &n);
    cr_assert_eq(n, 4);
    cr_assert_arr_eq(f, "data", 4);
    free(f);
}

Test(crash, cross_dir_rename_source_only) { cross_dir(1); }
Test(crash, cross_dir_rename_target_only) { cross_dir(2); }
Test(crash, cross_dir_rename_both) { cross_dir(3); }

Test(crash, ops_after_crash_fail)
{
    kio *io = open_fault(false);
    int h = kio_file_open(io, t_path(g_dir, "a"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h, 0);
    uint8_t b[10] = { 0 };
    struct iovec v = { b, sizeof b };
    kio_wreq r = { h, &v, 1, 0 };
    uint64_t sz;
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, 0, 0), 0);
    cr_assert_eq(kio_file_open(io, t_path(g_dir, "b"), KIO_O_RDWR | KIO_O_CREAT, 0644), KLOG_TESTING_ECRASHED);
    cr_assert(!t_exists(t_path(g_dir, "b")));
    cr_assert_eq(kio_pwritev(io, h, &v, 1, 0), KLOG_TESTING_ECRASHED);
    cr_assert_eq(kio_pwritev_many(io, &r, 1, KIO_W_DSYNC, NULL), KLOG_TESTING_ECRASHED);
    cr_assert_eq(kio_pread(io, h, b, sizeof b, 0), KLOG_TESTING_ECRASHED);
    cr_assert_eq(kio_datasync(io, h), KLOG_TESTING_ECRASHED);
    cr_assert_eq(kio_truncate(io, h, 0), KLOG_TESTING_ECRASHED);
    cr_assert_eq(kio_size(io, h, &sz), KLOG_TESTING_ECRASHED);
    cr_assert_eq(kio_rename(io, t_path(g_dir, "a"), t_path(g_dir, "c")), KLOG_TESTING_ECRASHED);
    cr_assert_eq(kio_unlink(io, t_path(g_dir, "a")), KLOG_TESTING_ECRASHED);
    cr_assert_eq(kio_dirsync(io, g_dir), KLOG_TESTING_ECRASHED);
    cr_assert_eq(kio_mkdir(io, t_path(g_dir, "d"), 0755), KLOG_TESTING_ECRASHED);
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, 0, 0), KLOG_TESTING_ECRASHED);
    cr_assert(t_exists(t_path(g_dir, "a")));
    cr_assert_eq(kio_file_close(io, h), 0);
    cr_assert(t_exists(t_path(g_dir, "a")), "close after crash touched the disk");
    cr_assert_eq(kio_fault_crash(io, 99, 0, 0), KLOG_TESTING_ECRASHED);
    kio_close(io);

    /* a bad mode is refused before anything happens */
    io = open_fault(false);
    cr_assert_eq(kio_fault_crash(io, 0, 0, 0), -EINVAL);
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, 1u << 5, 0), -EINVAL);
    cr_assert_eq(kio_mkdir(io, t_path(g_dir, "d"), 0755), 0, "engine unusable after a refused crash");
    kio_close(io);
}

/* Backups are descriptors, not files; they go when no longer needed. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

Test(crash, backups_released)
{
    int fds0 = count_fds();
    kio *io = open_fault(false);
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "u%d", i);
        t_write_file(t_path(g_dir, name), "x", 1);
        cr_assert_eq(kio_unlink(io, t_path(g_dir, name)), 0);
    }
    cr_assert_geq(count_fds(), fds0 + 20, "unlink backups are expected to be held");
    cr_assert_eq(t_count_entries(g_dir), 0, "a backup is visible in the directory");
    cr_assert_eq(kio_dirsync(io, g_dir), 0);
    cr_assert_eq(count_fds(), fds0, "backups kept after the dirsync made the unlinks durable");
    for (int i = 0; i < 5; i++) {
        t_write_file(t_path(g_dir, "target"), "t", 1);
        t_write_file(t_path(g_dir, "src"), "s", 1);
        cr_assert_eq(kio_rename(io, t_path(g_dir, "src"), t_path(g_dir, "target")), 0);
    }
    cr_assert_eq(t_count_entries(g_dir), 1);
    kio_close(io);
    cr_assert_eq(count_fds(), fds0, "kio_close left backups open");
}

/* ---- the finer crash model (issue 19) ------------------------------------------
 * Each mode shows that it fires (the outcomes it may produce are all seen
 * over a run of seeds) and that durable bytes survive it. */

/* Torn overwrites: 8 KiB synced (old), overwritten whole (new), crash.
 * Without KIO_CRASH_TORN the old bytes come back whole; with it each
 * 512-byte sector is all old or all new, and over the seeds both kinds and
 * mixed files occur. */
static void torn_one(bool uring, unsigned flags, uint64_t seed, unsigned *olds, unsigned *news)
{
    enum { N = 8192, SECT = 512 };
    kio *io = open_fault(uring);
    const char *p = t_path(g_dir, "torn");
    uint8_t oldb[N], newb[N];
    t_fill(oldb, N, 41, 0);
    t_fill(newb, N, 42, 0);
    t_write_file(p, oldb, N); /* existed before: durable */
    int h = kio_file_open(io, p, KIO_O_RDWR, 0);
    cr_assert_geq(h, 0);
    t_put(io, h, newb, N, 0);
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, flags, seed), 0);
    kio_close(io);
    size_t n;
    uint8_t *b = reread(p, &n);
    cr_assert_eq(n, N);
    *olds = *news = 0;
    for (size_t s = 0; s < N; s += SECT) {
        bool o = memcmp(b + s, oldb + s, SECT) == 0, w = memcmp(b + s, newb + s, SECT) == 0;
        cr_assert(o || w, "seed %llu: sector at %zu is neither old nor new", (unsigned long long)seed, s);
        *olds += o;
        *news += w;
    }
    free(b);
    remove(p);
}

static void torn_overwrites(bool uring)
{
    unsigned mixed = 0, all_old = 0, all_new = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        unsigned o, w;
        torn_one(uring, 0, seed, &o, &w);
        cr_assert_eq(w, 0, "without KIO_CRASH_TORN the overwrite is undone whole");
        torn_one(uring, KIO_CRASH_TORN, seed, &o, &w);
        mixed += o > 0 && w > 0;
        all_old += w == 0;
        all_new += o == 0;
    }
    cr_log_info("torn overwrites: %u of 40 files mixed, %u all old, %u all new", mixed, all_old, all_new);
    cr_assert_gt(mixed, 30, "torn overwrites mix old and new sectors: %u", mixed);
}

Test(crash, torn_overwrites_posix) { torn_overwrites(false); }
Test(crash, torn_overwrites_uring) { torn_overwrites(true); }

/* Holes: 4 KiB synced, 8 pages more unsynced, crash in HOLES mode.  Each
 * page after the synced ones is its data or zeros; the file ends at the
 * last page kept; over the seeds a zero page is seen before a kept one
 * (a hole, then data) and the synced page is always there. */
Test(crash, holes_out_of_order)
{
    enum { PG = 4096, NP = 8 };
    unsigned holes = 0, dropped_all = 0, kept_all = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        kio *io = open_fault(false);
        const char *p = t_path(g_dir, "holes");
        static uint8_t w[PG * (NP + 1)];
        t_fill(w, sizeof w, 51, 0);
        int h = kio_file_open(io, p, KIO_O_RDWR | KIO_O_CREAT, 0644);
        cr_assert_geq(h, 0);
        cr_assert_eq(kio_dirsync(io, g_dir), 0);
        t_put(io, h, w, PG, 0);
        cr_assert_eq(kio_datasync(io, h), 0);
        t_put(io, h, w + PG, PG * NP, PG);
        cr_assert_eq(kio_fault_crash(io, KIO_CRASH_HOLES, 0, seed), 0);
        kio_close(io);
        size_t n;
        uint8_t *b = reread(p, &n);
        cr_assert_not_null(b);
        cr_assert(n >= PG && n % PG == 0 && n <= sizeof w, "seed %llu: size %zu", (unsigned long long)seed, n);
        cr_assert_arr_eq(b, w, PG, "the synced page survives");
        static const uint8_t zero[PG];
        bool seen_zero = false, hole = false;
        for (size_t off = PG; off < n; off += PG) {
            bool data = memcmp(b + off, w + off, PG) == 0, z = memcmp(b + off, zero, PG) == 0;
            cr_assert(data || z, "seed %llu: page at %zu is neither its data nor zeros", (unsigned long long)seed, off);
            if (z)
                seen_zero = true;
            else if (seen_zero)
                hole = true;
        }
        cr_assert(n == PG || memcmp(b + n - PG, w + n - PG, PG) == 0, "the file ends with a page kept");
        holes += hole;
        dropped_all += n == PG;
        kept_all += n == sizeof w && !seen_zero;
        free(b);
        remove(p);
    }
    cr_log_info("holes: %u of 40 files with a hole then data, %u lost all, %u kept all", holes, dropped_all, kept_all);
    cr_assert_gt(holes, 10, "pages out of order: %u", holes);
}

/* fsyncgate: after a failed datasync the pages it dropped stay lost at a
 * crash although the next datasync succeeds; bytes written again after
 * the failure (their page dirtied again) are durable after that sync; the
 * bytes synced before the failure survive. */
Test(crash, fsyncgate_failed_sync_loses_pages)
{
    enum { PG = 4096 };
    kio *io = open_fault(false);
    const char *p = t_path(g_dir, "gate");
    static uint8_t w[PG * 4];
    t_fill(w, sizeof w, 61, 0);
    int h = kio_file_open(io, p, KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h, 0);
    cr_assert_eq(kio_dirsync(io, g_dir), 0);
    t_put(io, h, w, PG, 0);
    cr_assert_eq(kio_datasync(io, h), 0);           /* page 0: durable */
    t_put(io, h, w + PG, 2 * PG, PG);                /* pages 1-2 dirty */
    cr_assert_eq(kio_fault_arm(io, KIO_OP_SYNC, 1, -EIO, 0), 0);
    cr_assert_eq(kio_datasync(io, h), -EIO);         /* dropped, marked clean */
    t_put(io, h, w + 2 * PG, PG, 2 * PG);            /* page 2 dirtied again */
    t_put(io, h, w + 3 * PG, PG, 3 * PG);            /* page 3 new */
    cr_assert_eq(kio_datasync(io, h), 0);            /* "succeeds" */
    uint8_t r[PG];
    cr_assert_eq(kio_pread(io, h, r, PG, PG), PG);   /* the page cache still has page 1 */
    cr_assert_arr_eq(r, w + PG, PG);
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, 0, 1), 0);
    kio_close(io);
    size_t n;
    uint8_t *b = reread(p, &n);
    cr_assert_eq(n, 4 * PG);
    static const uint8_t zero[PG];
    cr_assert_arr_eq(b, w, PG, "page 0, synced before the failure, survives");
    cr_assert_arr_eq(b + PG, zero, PG, "page 1, dropped by the failed sync, is lost");
    cr_assert_arr_eq(b + 2 * PG, w + 2 * PG, PG, "page 2, written again, is durable");
    cr_assert_arr_eq(b + 3 * PG, w + 3 * PG, PG, "page 3 is durable");
    free(b);
}

/* An overwrite of durable bytes dropped by a failed sync comes back old. */
Test(crash, fsyncgate_overwrite_comes_back)
{
    enum { N = 4096 };
    kio *io = open_fault(false);
    const char *p = t_path(g_dir, "gate2");
    uint8_t oldb[N], newb[N];
    t_fill(oldb, N, 71, 0);
    t_fill(newb, N, 72, 0);
    t_write_file(p, oldb, N);
    int h = kio_file_open(io, p, KIO_O_RDWR, 0);
    cr_assert_geq(h, 0);
    t_put(io, h, newb, N, 0);
    cr_assert_eq(kio_fault_arm(io, KIO_OP_SYNC, 1, -EIO, 0), 0);
    cr_assert_eq(kio_datasync(io, h), -EIO);
    cr_assert_eq(kio_datasync(io, h), 0);
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, 0, 1), 0);
    kio_close(io);
    size_t n;
    uint8_t *b = reread(p, &n);
    cr_assert_eq(n, N);
    cr_assert_arr_eq(b, oldb, N, "the dropped overwrite never reached the disk");
    free(b);
}

/* Writes in flight together: a batch of 6 appends, a page each, the power
 * cut on the 3rd; HOLES keeps each issued page or not.  Without
 * KIO_CRASH_INFLIGHT nothing after the cut was issued; with it any request
 * but the 3rd may have been, and over the seeds a page after the cut is
 * seen on disk. */
static unsigned inflight_one(bool uring, unsigned flags, uint64_t seed)
{
    enum { PG = 4096, NR = 6, CUT = 3 };
    kio *io = open_fault(uring);
    const char *p = t_path(g_dir, "inflight");
    static uint8_t w[PG * NR];
    t_fill(w, sizeof w, 81, 0);
    int h = kio_file_open(io, p, KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h, 0);
    cr_assert_eq(kio_dirsync(io, g_dir), 0);
    struct iovec v[NR];
    kio_wreq r[NR];
    for (int i = 0; i < NR; i++) {
        v[i] = (struct iovec){ w + i * PG, PG };
        r[i] = (kio_wreq){ h, &v[i], 1, (uint64_t)i * PG };
    }
    cr_assert_eq(kio_fault_crash_at(io, KIO_OP_WRITE, CUT, KIO_CRASH_HOLES, flags, seed), 0);
    cr_assert_lt(kio_pwritev_many(io, r, NR, 0, NULL), 0);
    kio_close(io);
    size_t n;
    uint8_t *b = reread(p, &n);
    cr_assert_not_null(b);
    cr_assert(n % PG == 0 && n <= sizeof w, "size %zu", n);
    static const uint8_t zero[PG];
    unsigned kept = 0;
    for (size_t i = 0; i < n / PG; i++) {
        bool data = memcmp(b + i * PG, w + i * PG, PG) == 0, z = memcmp(b + i * PG, zero, PG) == 0;
        cr_assert(data || z, "page %zu is neither its data nor zeros", i);
        if (data)
            kept |= 1u << i;
    }
    cr_assert_eq(kept & (1u << (CUT - 1)), 0, "the request the power cut fell on never happened");
    free(b);
    remove(p);
    return kept;
}

static void inflight(bool uring)
{
    unsigned after = 0;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        unsigned got = inflight_one(uring, 0, seed);
        cr_assert_eq(got & ~3u, 0, "without INFLIGHT nothing after the cut is issued (seed %llu: %#x)",
                     (unsigned long long)seed, got);
        got = inflight_one(uring, KIO_CRASH_INFLIGHT, seed);
        after += (got & 0x38u) != 0;
    }
    cr_log_info("in flight: %u of 30 batches kept a page after the cut", after);
    cr_assert_gt(after, 10);
}

Test(crash, inflight_batch_posix) { inflight(false); }
Test(crash, inflight_batch_uring) { inflight(true); }

/* A page that a failed sync dropped and a write dirtied again, with no
 * sync since: the crash leaves it as it was durable, the dropped bytes
 * around the new ones included. */
Test(crash, fsyncgate_rewritten_page_unsynced)
{
    enum { N = 4096 };
    kio *io = open_fault(false);
    const char *p = t_path(g_dir, "gate3");
    uint8_t oldb[N], newb[N], x[100];
    t_fill(oldb, N, 91, 0);
    t_fill(newb, N, 92, 0);
    memset(x, 0xab, sizeof x);
    t_write_file(p, oldb, N);
    int h = kio_file_open(io, p, KIO_O_RDWR, 0);
    cr_assert_geq(h, 0);
    t_put(io, h, newb, N, 0);
    cr_assert_eq(kio_fault_arm(io, KIO_OP_SYNC, 1, -EIO, 0), 0);
    cr_assert_eq(kio_datasync(io, h), -EIO);
    t_put(io, h, x, sizeof x, 1000); /* dirties the page again; no sync */
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, 0, 1), 0);
    kio_close(io);
    size_t n;
    uint8_t *b = reread(p, &n);
    cr_assert_eq(n, N);
    cr_assert_arr_eq(b, oldb, N, "nothing of the page was durable but its old content");
    free(b);
}
