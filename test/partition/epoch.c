/*
 * test/partition/epoch.c - leader epochs through the partition object
 * (lib/partition/partition.h, "leader epochs"; the cache itself is
 * test/storage/epoch.c's).
 *
 *   - a new partition, and a directory written before the file existed,
 *     are in epoch 0 from their log start and write no file, on open or on
 *     becoming leader at epoch 0;
 *   - becoming leader at E records (E, LEO) durably (the file, reloaded) and
 *     every batch appended afterwards carries E in its header (read back
 *     through lib/format); a lower epoch is refused and changes nothing;
 *     the same epoch again does no I/O;
 *   - with appenders running, every batch's header agrees with the cache
 *     (the stamp and the record are switched under the log's append lock);
 *   - epochs persist across close and reopen (and a clean reopen writes
 *     nothing); an epoch that wrote no record is forgotten at reopen;
 *   - OffsetsForLeaderEpoch and epochForOffset over a multi-epoch history
 *     (KIP-101/279), and a follower's truncation exchange against it;
 *   - truncate_to cuts the log and the cache together (whole batches),
 *     leaves the partition in the epoch of its last batch, refuses offsets
 *     out of range; a failed cache write turns the log read-only;
 *   - DeleteRecords and retention moving the log start: the queries answer
 *     as the cache truncated from the start would, at once, with no write;
 *     the file follows at the next epoch write or open;
 *   - a damaged checkpoint fails the open;
 *   - a crash at every I/O op of a become-leader (followed by a synced
 *     append) and of a truncate_to, in every crash mode, with and without
 *     losing un-dirsynced directory entries: the reopened partition is
 *     consistent (every batch's header epoch is its cache epoch, each entry
 *     starts its epoch's first batch) and is the state before or after the
 *     step (after, once the step returned).
 */
#include <pthread.h>

#include "../storage/util.h"

#include "partition/partition.h"
#include "storage/epoch.h"

/* Under /dev/shm when there is one: the crash tests copy and reopen the
 * partition hundreds of times (the crashes are the fault backend's,
 * whatever the file system). */
static char shm_root[TU_PATH];
static char root[TU_PATH];
static char pdir[TU_PATH];

static void ep_setup(void)
{
    tu_setup();
    tu_fast_root(shm_root, root, "pe");
    snprintf(pdir, sizeof pdir, "%s/p-0", root);
}

static void ep_teardown(void)
{
    tu_fast_root_free(shm_root);
    tu_teardown();
}

TestSuite(pepoch, .init = ep_setup, .fini = ep_teardown, .timeout = 300);

/* ---- helpers ------------------------------------------------------------------ */

#define MAXE 64

typedef struct elist {
    size_t n;
    ks_epoch_entry e[MAXE];
} elist;

static const char *elist_str(const elist *l)
{
    static char buf[4][2048];
    static int k;
    char *b = buf[k++ % 4];
    size_t len = (size_t)snprintf(b, 2048, "[");
    for (size_t i = 0; i < l->n && len < 2000; i++)
        len += (size_t)snprintf(b + len, 2048 - len, "%s(%d,%lld)", i ? " " : "", (int)l->e[i].epoch,
                                (long long)l->e[i].start_offset);
    snprintf(b + len, 2048 - len, "]");
    return b;
}

static bool elist_eq(const elist *a, const elist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->e[i].epoch != b->e[i].epoch || a->e[i].start_offset != b->e[i].start_offset)
            return false;
    return true;
}

static elist mk(size_t n, const ks_epoch_entry *e)
{
    elist l = { .n = n };
    memcpy(l.e, e, n * sizeof *e);
    return l;
}
#define L(...) mk(sizeof((ks_epoch_entry[]){ __VA_ARGS__ }) / sizeof(ks_epoch_entry), (ks_epoch_entry[]){ __VA_ARGS__ })
#define EL(e, o) { (e), (o) }

/* The partition's view of its cache. */
static elist view(kpart *p)
{
    elist l;
    l.n = kpart_epoch_entries(p, l.e, MAXE);
    cr_assert_leq(l.n, MAXE);
    return l;
}

/* What the file on disk holds (no file: the empty list). */
static elist on_disk(const char *dir)
{
    ks_epochs *c = NULL;
    int rc = ks_epochs_open(&c, tu_io, dir);
    cr_assert_eq(rc, 0, "ks_epochs_open %s: %s", dir, klog_strerror(rc));
    elist l = { .n = ks_epochs_count(c) };
    cr_assert_leq(l.n, MAXE);
    for (size_t i = 0; i < l.n; i++)
        cr_assert_eq(ks_epochs_entry(c, i, &l.e[i]), 0);
    ks_epochs_close(c);
    return l;
}

static bool file_exists(const char *dir)
{
    char path[TU_PATH];
    tu_path(path, dir, KS_EPOCH_FILE);
    return tu_exists(path);
}

static void expect_view(kpart *p, elist want, const char *what)
{
    elist got = view(p);
    cr_assert(elist_eq(&got, &want), "%s: the partition sees %s, expected %s", what, elist_str(&got),
              elist_str(&want));
}

static void expect_disk(const char *dir, elist want, const char *what)
{
    elist got = on_disk(dir);
    cr_assert(elist_eq(&got, &want), "%s: the file holds %s, expected %s", what, elist_str(&got), elist_str(&want));
}

static ks_log_config small_cfg(void)
{
    return tu_small_cfg(KS_DURABILITY_NONE); /* 4 KiB segments */
}

static kpart *popen_io(kio *io, const char *dir, const ks_log_config *cfg)
{
    kpart *p = NULL;
    int rc = kpart_open(&p, io, dir, cfg);
    cr_assert_eq(rc, 0, "kpart_open %s: %s", dir, klog_strerror(rc));
    return p;
}

static kpart *popen_dir(const char *dir)
{
    ks_log_config c = small_cfg();
    return popen_io(tu_io, dir, &c);
}

static void pclose_ok(kpart *p)
{
    int rc = kpart_close(p);
    cr_assert_eq(rc, 0, "kpart_close: %s", klog_strerror(rc));
}

/* Append one batch of n records (sequence numbers = their offsets). */
static int append_n(kpart *p, int n, unsigned flags, int64_t *base)
{
    tu_batch b;
    tu_build(&b, (uint64_t)kpart_end_offset(p), n);
    ks_batch kb = { .batch = b.buf, .len = b.len };
    int rc = kpart_append(p, &kb, 1, flags);
    if (rc == 0 && kb.result != 0)
        rc = kb.result;
    if (base)
        *base = kb.base_offset;
    tu_batch_free(&b);
    return rc;
}

static void append_ok(kpart *p, int n)
{
    int64_t end = kpart_end_offset(p), base = -1;
    int rc = append_n(p, n, 0, &base);
    cr_assert_eq(rc, 0, "append: %s", klog_strerror(rc));
    cr_assert_eq(base, end);
}

static void lead(kpart *p, int32_t e)
{
    int rc = kpart_become_leader(p, e);
    cr_assert_eq(rc, 0, "become leader at %d: %s", (int)e, klog_strerror(rc));
    cr_assert_eq(kpart_leader_epoch(p), e);
}

/* The batches of the log from its start: base offset and header epoch. */
typedef struct bhdr {
    int64_t base, last;
    int32_t epoch;
} bhdr;

static size_t batches(kpart *p, bhdr *out, size_t cap)
{
    size_t n = 0;
    int64_t off = kpart_start_offset(p), end = kpart_end_offset(p);
    while (off < end) {
        ks_view v;
        int rc = kpart_read_log(p, off, 1u << 20, &v);
        cr_assert_eq(rc, 0, "read at %lld: %s", (long long)off, klog_strerror(rc));
        cr_assert_gt(v.len, 0, "nothing at %lld below the end %lld", (long long)off, (long long)end);
        size_t pos = 0;
        while (pos < v.len) {
            kf_batch_info bi;
            ssize_t len = kf_batch_parse(v.data + pos, v.len - pos, &bi);
            cr_assert_gt(len, 0);
            cr_assert_eq(kf_batch_verify(v.data + pos, (size_t)len), 0, "the epoch is outside the checksum");
            cr_assert_lt(n, cap);
            out[n++] = (bhdr){ bi.base_offset, kf_batch_last_offset(&bi), bi.leader_epoch };
            pos += (size_t)len;
        }
        off = v.next_offset;
        ks_view_release(&v);
    }
    return n;
}

#define MAXB 16384

/* The partition is consistent: every batch's header epoch is what the
 * cache says for its base offset, and the cache is exactly the list the
 * batch headers make (an entry where the epoch changes, the first at the
 * log start).  An empty log: one entry, at the start. */
static void expect_consistent(kpart *p, const char *what)
{
    static bhdr b[MAXB];
    size_t nb = batches(p, b, MAXB);
    elist got = view(p), want = { 0 };
    int64_t start = kpart_start_offset(p);
    for (size_t i = 0; i < nb; i++) {
        int32_t e = kpart_epoch_for_offset(p, b[i].base > start ? b[i].base : start);
        cr_assert_eq(b[i].epoch, e, "%s: the batch at %lld carries epoch %d, the cache says %d (%s)", what,
                     (long long)b[i].base, (int)b[i].epoch, (int)e, elist_str(&got));
        if (want.n == 0 || want.e[want.n - 1].epoch != b[i].epoch) {
            cr_assert_lt(want.n, MAXE);
            cr_assert(want.n == 0 || b[i].epoch > want.e[want.n - 1].epoch, "%s: epochs go down at %lld", what,
                      (long long)b[i].base);
            want.e[want.n] = (ks_epoch_entry){ b[i].epoch, want.n == 0 ? start : b[i].base };
            want.n++;
        }
    }
    if (nb == 0) {
        cr_assert_eq(got.n, 1, "%s: an empty log, cache %s", what, elist_str(&got));
        cr_assert_eq(got.e[0].start_offset, start, "%s: an empty log, cache %s", what, elist_str(&got));
        return;
    }
    cr_assert(elist_eq(&got, &want), "%s: cache %s, the batches say %s", what, elist_str(&got), elist_str(&want));
    /* a leader stamps its latest epoch; a follower's is its leader's */
    if (kpart_role(p) == KPART_LEADER)
        cr_assert_eq(kpart_leader_epoch(p), got.e[got.n - 1].epoch, "%s: stamps %d, latest %d", what,
                     (int)kpart_leader_epoch(p), (int)got.e[got.n - 1].epoch);
}

/* inode and mtime: to see that a file was not rewritten */
typedef struct fid {
    ino_t ino;
    struct timespec mt;
} fid;

static fid file_id(const char *dir)
{
    char path[TU_PATH];
    tu_path(path, dir, KS_EPOCH_FILE);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return (fid){ st.st_ino, st.st_mtim };
}

static bool fid_eq(fid a, fid b)
{
    return a.ino == b.ino && a.mt.tv_sec == b.mt.tv_sec && a.mt.tv_nsec == b.mt.tv_nsec;
}

/* ---- epoch 0, lazily ------------------------------------------------------------- */

Test(pepoch, a_new_partition_is_in_epoch_0_and_writes_no_file)
{
    kio *io = tu_fault_open(); /* to count I/O */
    ks_log_config c = small_cfg();
    kpart *p = popen_io(io, pdir, &c);
    cr_assert_eq(kpart_leader_epoch(p), 0);
    expect_view(p, L(EL(0, 0)), "new");
    cr_assert_not(file_exists(pdir), "created at open");
    append_ok(p, 5);
    append_ok(p, 5);
    expect_consistent(p, "appended");
    int32_t oe;
    int64_t oend;
    kpart_end_offset_for_epoch(p, 0, &oe, &oend);
    cr_assert(oe == 0 && oend == 10, "(%d, %lld)", (int)oe, (long long)oend);
    kpart_end_offset_for_epoch(p, 1, &oe, &oend);
    cr_assert(oe == -1 && oend == -1, "(%d, %lld)", (int)oe, (long long)oend);
    kpart_end_offset_for_epoch(p, -1, &oe, &oend);
    cr_assert(oe == -1 && oend == -1);
    cr_assert_eq(kpart_epoch_for_offset(p, 0), 0);
    cr_assert_eq(kpart_epoch_for_offset(p, 9), 0);
    /* becoming leader at epoch 0: already so, nothing written */
    uint64_t ops = kio_fault_ops(io, KIO_OP_ALL);
    lead(p, 0);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_ALL), ops, "become leader at 0 did I/O");
    cr_assert_not(file_exists(pdir));
    cr_assert_eq(kpart_become_leader(p, -1), -EINVAL);
    pclose_ok(p);
    p = popen_io(io, pdir, &c);
    cr_assert_not(file_exists(pdir), "created at reopen");
    expect_view(p, L(EL(0, 0)), "reopened");
    pclose_ok(p);
    kio_close(io);
}

/* A directory written by a release before the partition kept the file:
 * its batches all carry epoch 0.  The first epoch above 0 records (0,
 * start) for them first. */
Test(pepoch, a_directory_without_the_file_starts_its_history_at_epoch_0)
{
    ks_log_config c = small_cfg();
    ks_log *log = tu_log_open(tu_io, pdir, &c);
    for (int i = 0; i < 6; i++)
        tu_append_seq(log, 5, 0);
    tu_log_close(log);
    kpart *p = popen_dir(pdir);
    cr_assert_eq(kpart_leader_epoch(p), 0);
    expect_view(p, L(EL(0, 0)), "old directory");
    expect_consistent(p, "old directory");
    cr_assert_not(file_exists(pdir));
    lead(p, 3);
    expect_disk(pdir, L(EL(0, 0), EL(3, 30)), "first epoch");
    append_ok(p, 2);
    expect_consistent(p, "epoch 3 appended");
    pclose_ok(p);
}

/* ---- becoming leader ------------------------------------------------------------ */

Test(pepoch, becoming_leader_records_the_epoch_at_the_log_end_and_stamps_it)
{
    kio *io = tu_fault_open();
    ks_log_config c = small_cfg();
    kpart *p = popen_io(io, pdir, &c);
    append_ok(p, 5);
    lead(p, 2);
    expect_disk(pdir, L(EL(0, 0), EL(2, 5)), "leader at 2");
    expect_view(p, L(EL(0, 0), EL(2, 5)), "leader at 2");
    cr_assert_eq(kpart_role(p), KPART_LEADER);
    append_ok(p, 3);
    append_ok(p, 4);
    static bhdr b[8];
    cr_assert_eq(batches(p, b, 8), 3);
    cr_assert_eq(b[0].epoch, 0);
    cr_assert_eq(b[1].epoch, 2);
    cr_assert_eq(b[2].epoch, 2);

    /* a lower epoch is fenced: nothing changes */
    uint64_t ops = kio_fault_ops(io, KIO_OP_ALL);
    cr_assert_eq(kpart_become_leader(p, 1), KLOG_EFENCED);
    cr_assert_eq(kpart_become_leader(p, 0), KLOG_EFENCED);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_ALL), ops, "a refused epoch did I/O");
    cr_assert_eq(kpart_leader_epoch(p), 2);
    append_ok(p, 1);
    cr_assert_eq(batches(p, b, 8), 4);
    cr_assert_eq(b[3].epoch, 2, "still stamping 2");
    /* the same epoch again: nothing to write */
    ops = kio_fault_ops(io, KIO_OP_ALL);
    lead(p, 2);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_ALL), ops, "the same epoch again did I/O");
    expect_disk(pdir, L(EL(0, 0), EL(2, 5)), "same epoch");

    /* a new epoch that writes nothing is replaced by the next one */
    lead(p, 4);
    lead(p, 7);
    expect_disk(pdir, L(EL(0, 0), EL(2, 5), EL(7, 13)), "4 wrote nothing");
    append_ok(p, 2);
    expect_consistent(p, "after 7");

    /* a failed write changes nothing: the old epoch is still stamped */
    cr_assert_eq(kio_fault_arm(io, KIO_OP_SYNC, 1, -EIO, 0), 0);
    cr_assert_eq(kpart_become_leader(p, 9), -EIO);
    cr_assert_eq(kio_fault_clear(io), 0);
    cr_assert_eq(kpart_leader_epoch(p), 7);
    expect_view(p, L(EL(0, 0), EL(2, 5), EL(7, 13)), "failed write");
    append_ok(p, 1);
    expect_consistent(p, "after a failed change");
    cr_assert_eq(kpart_error(p), 0, "a failed epoch record does not fail the log");
    pclose_ok(p);
    kio_close(io);
}

/* Appenders run while the epoch changes under them: no batch may carry an
 * epoch other than the one the cache gives its offset (a stamp taken before
 * the change but written after its record would). */
typedef struct appender {
    kpart *p;
    _Atomic bool *stop;
    _Atomic int *left;   /* batches still to append, all threads */
    int err;
} appender;

static void *append_loop(void *arg)
{
    appender *a = arg;
    tu_batch b;
    if (tu_build_ex(&b, 0, 3, NULL, 0) != 0) {
        a->err = -ENOMEM;
        return NULL;
    }
    for (unsigned i = 0; !atomic_load(a->stop) && atomic_fetch_sub(a->left, 1) > 0; i++) {
        if (i % 16 == 15)
            usleep(20); /* spread the batches over the epochs */
        ks_batch kb = { .batch = b.buf, .len = b.len };
        int rc = kpart_append(a->p, &kb, 1, 0);
        if (rc != 0) {
            a->err = rc;
            break;
        }
    }
    tu_batch_free(&b);
    return NULL;
}

Test(pepoch, appenders_never_write_an_epoch_the_cache_does_not_give)
{
    ks_log_config c;
    ks_log_config_init(&c);
    kpart *p = popen_io(tu_io, pdir, &c);
    _Atomic bool stop = false;
    _Atomic int left = MAXB - 16;
    appender a[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (appender){ p, &stop, &left, 0 };
        cr_assert_eq(pthread_create(&t[i], NULL, append_loop, &a[i]), 0);
    }
    for (int32_t e = 1; e <= 40; e++) {
        lead(p, e);
        /* let a few batches of this epoch in (unless the budget is spent) */
        int64_t end0 = kpart_end_offset(p);
        for (int w = 0; w < 10000 && kpart_end_offset(p) < end0 + 30 && atomic_load(&left) > 0; w++)
            usleep(10);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(a[i].err, 0, "appender %d: %s", i, klog_strerror(a[i].err));
    }
    append_ok(p, 1); /* the last epoch holds a record too */
    expect_consistent(p, "concurrent");
    elist v = view(p);
    cr_assert_gt(v.n, 10, "only %zu epochs wrote records", v.n);
    cr_log_info("%zu epochs hold records: %s", v.n, elist_str(&v));
    pclose_ok(p);
}

/* ---- reopening ------------------------------------------------------------------ */

Test(pepoch, epochs_persist_across_reopen)
{
    kpart *p = popen_dir(pdir);
    append_ok(p, 4);
    lead(p, 3);
    append_ok(p, 4);
    lead(p, 5);
    append_ok(p, 4);
    elist before = view(p);
    elist want = L(EL(0, 0), EL(3, 4), EL(5, 8));
    cr_assert(elist_eq(&before, &want), "%s", elist_str(&before));
    pclose_ok(p);

    fid f = file_id(pdir);
    p = popen_dir(pdir);
    cr_assert_eq(kpart_leader_epoch(p), 5, "the latest epoch after reopen");
    expect_view(p, before, "reopened");
    cr_assert(fid_eq(file_id(pdir), f), "a clean reopen rewrote the file");
    append_ok(p, 2);
    expect_consistent(p, "reopened, appended");

    /* an epoch that wrote nothing is forgotten at reopen (Kafka's load) */
    lead(p, 6);
    expect_disk(pdir, L(EL(0, 0), EL(3, 4), EL(5, 8), EL(6, 14)), "leader at 6");
    pclose_ok(p);
    p = popen_dir(pdir);
    cr_assert_eq(kpart_leader_epoch(p), 5);
    expect_disk(pdir, L(EL(0, 0), EL(3, 4), EL(5, 8)), "6 forgotten");
    expect_consistent(p, "6 forgotten");
    lead(p, 6); /* given again */
    append_ok(p, 1);
    pclose_ok(p);
    f = file_id(pdir);
    p = popen_dir(pdir);
    cr_assert_eq(kpart_leader_epoch(p), 6);
    cr_assert(fid_eq(file_id(pdir), f));
    pclose_ok(p);
}

Test(pepoch, a_damaged_checkpoint_fails_the_open)
{
    kpart *p = popen_dir(pdir);
    append_ok(p, 4);
    lead(p, 3);
    pclose_ok(p);
    char path[TU_PATH];
    tu_path(path, pdir, KS_EPOCH_FILE);
    tu_spit(path, "0\n2\n0 0\n", 8); /* one line short */
    ks_log_config c = small_cfg();
    cr_assert_eq(kpart_open(&p, tu_io, pdir, &c), KLOG_ECORRUPT);
    cr_assert_null(p);
    tu_spit(path, "1\n0\n", 4);
    cr_assert_eq(kpart_open(&p, tu_io, pdir, &c), KLOG_EFORMAT);
    /* the directory lock was released: the log opens again once repaired */
    tu_spit(path, "0\n1\n0 0\n", 8);
    p = popen_dir(pdir);
    cr_assert_eq(kpart_leader_epoch(p), 0);
    pclose_ok(p);
}

/* With open_damaged (what the instance opens its partitions with), a
 * malformed checkpoint opens the partition damaged instead: read-only with
 * KLOG_ECORRUPT, the file as it was, the log unchanged, the epoch 0; and
 * kpart_repair rebuilds the file from the epochs the batches carry
 * (issue 19: one such file made the whole instance unopenable). */
Test(pepoch, a_damaged_checkpoint_opens_the_partition_damaged_and_repair_rebuilds_it)
{
    kpart *p = popen_dir(pdir);
    append_ok(p, 4);
    lead(p, 3);
    append_ok(p, 4);
    lead(p, 5);
    append_ok(p, 4);
    elist before = view(p);
    pclose_ok(p);
    char path[TU_PATH];
    tu_path(path, pdir, KS_EPOCH_FILE);
    tu_spit(path, "0\n3\n0 0\n5 8\n3 4\n", 17); /* out of order */
    ks_log_config c = small_cfg();
    c.open_damaged = true;
    cr_assert_eq(kpart_open(&p, tu_io, pdir, &c), 0);
    cr_assert_eq(kpart_error(p), KLOG_ECORRUPT);
    const char *why = ks_log_damage(kpart_log(p));
    cr_assert(why && strstr(why, KS_EPOCH_FILE ": line 5"), "%s", why ? why : "(none)");
    cr_assert_eq(kpart_end_offset(p), 12, "the log is whole");
    cr_assert_eq(kpart_become_leader(p, 7), KLOG_ECORRUPT);
    int64_t base;
    cr_assert_eq(append_n(p, 1, 0, &base), KLOG_ECORRUPT);
    size_t len;
    uint8_t *b = tu_slurp(path, &len);
    cr_assert(len == 17 && !memcmp(b, "0\n3\n0 0\n5 8\n3 4\n", 17), "the open changed the file");
    free(b);
    char report[512];
    cr_assert_eq(kpart_repair(p, report, sizeof report), 0);
    cr_assert(strstr(report, "rebuilt from the log's batches: 3 epochs, the latest 5 from offset 8"), "%s", report);
    cr_assert_eq(kpart_error(p), 0);
    cr_assert_eq(kpart_leader_epoch(p), 5);
    expect_view(p, before, "rebuilt");
    expect_disk(pdir, before, "rebuilt");
    append_ok(p, 2);
    expect_consistent(p, "repaired, appended");
    cr_assert_eq(kpart_repair(p, report, sizeof report), KLOG_ESTATE);
    pclose_ok(p);
}

/* ---- OffsetsForLeaderEpoch -------------------------------------------------------- */

/* Epochs 0 (offsets 0..9), 2 (10..19), 5 (20..29), in batches of 5. */
static kpart *history(const char *dir)
{
    kpart *p = popen_dir(dir);
    append_ok(p, 5);
    append_ok(p, 5);
    lead(p, 2);
    append_ok(p, 5);
    append_ok(p, 5);
    lead(p, 5);
    append_ok(p, 5);
    append_ok(p, 5);
    expect_view(p, L(EL(0, 0), EL(2, 10), EL(5, 20)), "history");
    return p;
}

typedef struct ecase {
    int32_t asked, epoch;
    int64_t end;
} ecase;

static void expect_ends(kpart *p, const ecase *t, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        int32_t e;
        int64_t end;
        kpart_end_offset_for_epoch(p, t[i].asked, &e, &end);
        cr_assert(e == t[i].epoch && end == t[i].end, "%s: epoch %d ends at (%d, %lld), expected (%d, %lld)", what,
                  (int)t[i].asked, (int)e, (long long)end, (int)t[i].epoch, (long long)t[i].end);
    }
}

Test(pepoch, end_offset_for_epoch_over_a_history)
{
    kpart *p = history(pdir);
    static const ecase t[] = {
        { 0, 0, 10 }, { 1, 0, 10 }, { 2, 2, 20 }, { 3, 2, 20 }, { 4, 2, 20 },
        { 5, 5, 30 }, { 6, -1, -1 }, { 100, -1, -1 }, { -1, -1, -1 },
    };
    expect_ends(p, t, sizeof t / sizeof t[0], "history");
    static const struct { int64_t off; int32_t e; } f[] = {
        { 0, 0 }, { 9, 0 }, { 10, 2 }, { 19, 2 }, { 20, 5 }, { 29, 5 }, { 30, 5 },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        cr_assert_eq(kpart_epoch_for_offset(p, f[i].off), f[i].e, "offset %lld", (long long)f[i].off);
    expect_consistent(p, "history");
    pclose_ok(p);
}

/* KIP-279 through two partitions: a follower that took epoch 3 from a
 * leader that was then lost, its tail at 3 never replicated; the new leader
 * (this history) went from 2 to 5.  The follower asks for its latest epoch,
 * truncates to min(answer, its own end for the answered epoch), and asks
 * again until the answers agree; it ends where the lineages part. */
Test(pepoch, a_follower_truncates_to_where_it_parts_from_the_leader)
{
    kpart *leader = history(pdir);
    char fdir[TU_PATH];
    snprintf(fdir, sizeof fdir, "%s/f-0", root);
    kpart *f = popen_dir(fdir);
    append_ok(f, 5);
    append_ok(f, 5);
    lead(f, 2);
    append_ok(f, 5); /* 10..14: epoch 2, as the leader */
    lead(f, 3);
    append_ok(f, 5); /* 15..19: epoch 3, diverged */
    append_ok(f, 5);
    cr_assert_eq(kpart_become_follower(f, 5), 0);
    cr_assert_eq(kpart_leader_epoch(f), 5, "a follower answers its leader's epoch");
    for (int round = 0;; round++) {
        cr_assert_lt(round, 8, "no agreement");
        /* the follower asks about the latest epoch its log holds */
        int32_t fe = kpart_epoch_for_offset(f, kpart_end_offset(f)), le, fe2;
        int64_t lend, fend;
        kpart_end_offset_for_epoch(leader, fe, &le, &lend);
        cr_assert_geq(le, 0);
        kpart_end_offset_for_epoch(f, le, &fe2, &fend);
        int64_t to = lend < fend ? lend : fend;
        if (to >= kpart_end_offset(f))
            break;
        int64_t ne = -1;
        cr_assert_eq(kpart_truncate_to(f, to, &ne), 0);
        cr_assert_eq(ne, to);
        expect_consistent(f, "follower truncated");
    }
    cr_assert_eq(kpart_end_offset(f), 15, "the follower kept %lld", (long long)kpart_end_offset(f));
    expect_view(f, L(EL(0, 0), EL(2, 10)), "follower");
    pclose_ok(f);
    pclose_ok(leader);
}

/* ---- truncation ------------------------------------------------------------------- */

Test(pepoch, truncate_to_cuts_the_log_and_the_cache)
{
    kpart *p = history(pdir);
    int64_t ne = -1;
    cr_assert_eq(kpart_truncate_to(p, 31, &ne), KLOG_EOFFSET);
    cr_assert_eq(kpart_truncate_to(p, 30, &ne), 0, "at the end: nothing to do");
    cr_assert_eq(ne, 30);
    expect_disk(pdir, L(EL(0, 0), EL(2, 10), EL(5, 20)), "no-op");
    /* a leader that has not written yet keeps its epoch through a no-op */
    lead(p, 6);
    cr_assert_eq(kpart_truncate_to(p, 30, &ne), 0);
    cr_assert_eq(kpart_leader_epoch(p), 6);
    expect_disk(pdir, L(EL(0, 0), EL(2, 10), EL(5, 20), EL(6, 30)), "no-op, epoch 6");

    /* inside epoch 5: its entry stays, epoch 6 goes (it wrote nothing) */
    cr_assert_eq(kpart_truncate_to(p, 25, &ne), 0);
    cr_assert_eq(ne, 25);
    expect_disk(pdir, L(EL(0, 0), EL(2, 10), EL(5, 20)), "inside 5");
    cr_assert_eq(kpart_leader_epoch(p), 5);
    expect_consistent(p, "inside 5");

    /* mid-batch (batch 10..14): whole batches go, so the end is 10 and
     * epochs 2 and 5 go with their records; the partition is in the epoch
     * of its last batch, until it leads again */
    cr_assert_eq(kpart_truncate_to(p, 12, &ne), 0);
    cr_assert_eq(ne, 10);
    cr_assert_eq(kpart_end_offset(p), 10);
    cr_assert_eq(kpart_leader_epoch(p), 0);
    expect_disk(pdir, L(EL(0, 0)), "mid batch");
    append_ok(p, 2);
    expect_consistent(p, "appended after the cut");
    lead(p, 5);
    expect_disk(pdir, L(EL(0, 0), EL(5, 12)), "leading again");
    append_ok(p, 1);
    expect_consistent(p, "leading again");
    int32_t e;
    int64_t end;
    kpart_end_offset_for_epoch(p, 2, &e, &end);
    cr_assert(e == 0 && end == 12, "(%d, %lld)", (int)e, (long long)end);
    pclose_ok(p);
    p = popen_dir(pdir);
    expect_view(p, L(EL(0, 0), EL(5, 12)), "reopened");
    expect_consistent(p, "reopened");

    /* truncated to 0: nothing left, epoch 0 */
    cr_assert_eq(kpart_truncate_to(p, 0, &ne), 0);
    cr_assert_eq(ne, 0);
    cr_assert_eq(kpart_end_offset(p), 0);
    cr_assert_eq(kpart_leader_epoch(p), 0);
    expect_view(p, L(EL(0, 0)), "emptied");
    expect_disk(pdir, (elist){ 0 }, "emptied");
    pclose_ok(p);
    p = popen_dir(pdir);
    expect_view(p, L(EL(0, 0)), "emptied, reopened");
    cr_assert_eq(kpart_leader_epoch(p), 0);
    pclose_ok(p);
}

/* The cache cannot follow a truncation: the log turns read-only (entries
 * past its end would describe the next appends wrongly); the next open
 * repairs the file. */
Test(pepoch, a_truncation_the_cache_cannot_follow_fails_the_log)
{
    kpart *p = history(pdir);
    char tmp[TU_PATH];
    tu_path(tmp, pdir, KS_EPOCH_FILE ".tmp");
    cr_assert_eq(mkdir(tmp, 0755), 0); /* the atomic write cannot create its file */
    int64_t ne = -1;
    int rc = kpart_truncate_to(p, 12, &ne);
    cr_assert_lt(rc, 0);
    cr_assert_neq(rc, KLOG_EOFFSET);
    cr_assert_eq(ne, 10, "the log was truncated");
    cr_assert_eq(kpart_end_offset(p), 10);
    cr_assert_eq(kpart_error(p), rc, "the log did not turn read-only");
    cr_assert_eq(append_n(p, 1, 0, NULL), KLOG_EREADONLY);
    expect_disk(pdir, L(EL(0, 0), EL(2, 10), EL(5, 20)), "the file is stale");
    (void)kpart_close(p);
    cr_assert_eq(rmdir(tmp), 0);
    p = popen_dir(pdir);
    expect_disk(pdir, L(EL(0, 0)), "repaired at open");
    expect_consistent(p, "reopened");
    pclose_ok(p);
}

/* ---- the log start moving ---------------------------------------------------------- */

Test(pepoch, delete_records_truncates_the_cache_from_the_start)
{
    kpart *p = history(pdir);
    fid f = file_id(pdir);
    int64_t start = -1;
    cr_assert_eq(kpart_delete_records(p, 12, &start), 0);
    cr_assert_eq(start, 12);
    /* at once, as the truncated cache: no write on the way */
    expect_view(p, L(EL(2, 12), EL(5, 20)), "start 12");
    cr_assert(fid_eq(file_id(pdir), f), "DeleteRecords wrote the epoch file");
    static const ecase t[] = {
        { 0, 0, 12 }, { 1, 1, 12 }, { 2, 2, 20 }, { 4, 2, 20 }, { 5, 5, 30 }, { 7, -1, -1 },
    };
    expect_ends(p, t, sizeof t / sizeof t[0], "start 12");
    cr_assert_eq(kpart_epoch_for_offset(p, 11), -1, "below the start");
    cr_assert_eq(kpart_epoch_for_offset(p, 12), 2);
    expect_consistent(p, "start 12");

    /* past the start of epoch 5 */
    cr_assert_eq(kpart_delete_records(p, 22, &start), 0);
    expect_view(p, L(EL(5, 22)), "start 22");
    static const ecase t2[] = { { 2, 2, 22 }, { 4, 4, 22 }, { 5, 5, 30 } };
    expect_ends(p, t2, sizeof t2 / sizeof t2[0], "start 22");
    expect_disk(pdir, L(EL(0, 0), EL(2, 10), EL(5, 20)), "the file waits");
    /* the next epoch write carries the truncation */
    lead(p, 6);
    expect_disk(pdir, L(EL(5, 22), EL(6, 30)), "written with epoch 6");
    append_ok(p, 1);
    expect_consistent(p, "epoch 6");
    pclose_ok(p);
}

Test(pepoch, retention_truncates_the_cache_from_the_start_by_the_next_open)
{
    kpart *p = popen_dir(pdir);
    for (int e = 1; e <= 4; e++) {
        lead(p, e);
        for (int i = 0; i < 12; i++)
            append_ok(p, 4); /* about 2 KiB an epoch: two 4 KiB segments hold ~4 epochs */
    }
    expect_consistent(p, "before retention");
    elist before = view(p);
    cr_assert_eq(before.n, 4);
    fid f = file_id(pdir);
    ks_retention r = { .retention_ms = -1, .retention_bytes = 4096 };
    cr_assert_eq(ks_log_retain(kpart_log(p), &r, NULL), 0);
    int64_t start = kpart_start_offset(p);
    cr_assert_gt(start, before.e[1].start_offset, "retention kept too much to test (start %lld)", (long long)start);
    cr_assert(fid_eq(file_id(pdir), f), "retention wrote the epoch file");
    elist v = view(p);
    cr_assert_eq(v.e[0].start_offset, start);
    cr_assert_lt(v.n, before.n);
    expect_consistent(p, "after retention");
    pclose_ok(p);

    /* the open writes the truncation, once */
    p = popen_dir(pdir);
    expect_disk(pdir, v, "reopened");
    expect_view(p, v, "reopened");
    pclose_ok(p);
    f = file_id(pdir);
    p = popen_dir(pdir);
    cr_assert(fid_eq(file_id(pdir), f), "a second open rewrote the file");
    pclose_ok(p);
}

/* ---- crashes ------------------------------------------------------------------------ */

static const enum kio_crash_mode modes[] = { KIO_CRASH_DROP, KIO_CRASH_PREFIX, KIO_CRASH_GARBAGE,
                                             KIO_CRASH_ZERO, KIO_CRASH_RANDOM };

typedef struct pstate {
    elist e;
    int64_t start, end;
    int32_t epoch;
} pstate;

static pstate pstate_of(kpart *p)
{
    return (pstate){ view(p), kpart_start_offset(p), kpart_end_offset(p), kpart_leader_epoch(p) };
}

static bool pstate_eq(const pstate *a, const pstate *b)
{
    return elist_eq(&a->e, &b->e) && a->start == b->start && a->end == b->end && a->epoch == b->epoch;
}

static const char *pstate_str(const pstate *s)
{
    static char buf[4][600];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 600, "%s [%lld, %lld) epoch %d", elist_str(&s->e), (long long)s->start, (long long)s->end,
             (int)s->epoch);
    return b;
}

typedef int (*step_fn)(kpart *p);

/* Open dir on a healthy engine, check it, take its state, close. */
static pstate reopened(const char *dir, const char *what)
{
    kpart *p = NULL;
    ks_log_config c = small_cfg();
    int rc = kpart_open(&p, tu_io, dir, &c);
    cr_assert_eq(rc, 0, "%s: reopen: %s", what, klog_strerror(rc));
    expect_consistent(p, what);
    pstate s = pstate_of(p);
    pclose_ok(p);
    return s;
}

/* got's batches are the first ones of pre's (same bases, same epochs). */
static void expect_prefix(const bhdr *pre, size_t npre, kpart *p, const char *what)
{
    static bhdr b[MAXB];
    size_t n = batches(p, b, MAXB);
    cr_assert_leq(n, npre, "%s: more batches than before", what);
    for (size_t i = 0; i < n; i++)
        cr_assert(b[i].base == pre[i].base && b[i].last == pre[i].last && b[i].epoch == pre[i].epoch,
                  "%s: batch %zu differs from before", what, i);
}

/*
 * The template in tmpl; the step's state before (reopened) and after
 * (the step on a copy, then reopened).  Then for every op n of the step
 * (and once past it), every mode, with and without losing directory
 * entries: run it on a copy with a crash at op n, reopen on a healthy
 * engine; consistent, and the state before or after (after if it returned).
 * With `cut` (a truncation, whose segments go one at a time) the state may
 * also be the log before cut anywhere between the two ends, with the cache
 * that fits it (consistency says which).  With `new_inside`, some crash
 * inside the step must already give the state after (a crash after the
 * step's durable point).
 */
static void crash_every_op(const char *tmpl, step_fn step, const char *name, bool cut, bool new_inside)
{
    static bhdr preb[MAXB];
    size_t npreb;
    char dir[TU_PATH];
    snprintf(dir, sizeof dir, "%s/run-0", root);
    tu_copy_dir(tmpl, dir);
    pstate pre = reopened(dir, "template");
    {
        kpart *q = popen_dir(dir);
        npreb = batches(q, preb, MAXB);
        pclose_ok(q);
    }

    tu_crash cnt = { .at = 0 };
    tu_copy_dir(tmpl, dir);
    kio *io = tu_crash_io(&cnt);
    ks_log_config c = small_cfg();
    kpart *p = popen_io(io, dir, &c);
    uint64_t before = atomic_load(&cnt.ops);
    int rc = step(p);
    cr_assert_eq(rc, 0, "%s: %s", name, klog_strerror(rc));
    uint64_t nops = atomic_load(&cnt.ops) - before;
    pclose_ok(p);
    kio_close(io);
    pstate post = reopened(dir, "after the step");
    cr_assert(!pstate_eq(&pre, &post), "%s changes nothing", name);
    cr_assert_gt(nops, 0);

    unsigned runs = 0, mid = 0, old_seen = 0, new_seen = 0;
    for (uint64_t n = 1; n <= nops + 1; n++)
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
            for (unsigned fl = 0; fl < 2; fl++) {
                unsigned cflags = fl ? KIO_CRASH_LOSE_DIRENTS : 0;
                char what[200];
                snprintf(what, sizeof what, "%s: crash at op %llu of %llu, mode %d flags %u", name,
                         (unsigned long long)n, (unsigned long long)nops, modes[m], cflags);
                tu_copy_dir(tmpl, dir);
                tu_crash cx = { .at = 0, .crash = { modes[m], cflags, n * 10 + m } };
                io = tu_crash_io(&cx);
                p = popen_io(io, dir, &c);
                atomic_store(&cx.at, atomic_load(&cx.ops) + n);
                rc = step(p);
                bool crashed = atomic_load(&cx.crashed);
                if (!crashed) {
                    cr_assert_eq(rc, 0, "%s: %s without a crash", what, klog_strerror(rc));
                    cr_assert_eq(kio_fault_crash(io, modes[m], cflags, n), 0);
                } else {
                    mid++;
                }
                (void)kpart_close(p); /* fails after the crash: the files stay as it left them */
                kio_close(io);
                runs++;
                pstate got = reopened(dir, what);
                bool is_pre = pstate_eq(&got, &pre), is_post = pstate_eq(&got, &post);
                bool is_cut = cut && got.start == pre.start && got.end > post.end && got.end < pre.end;
                if (is_cut) {
                    kpart *q = popen_dir(dir);
                    expect_prefix(preb, npreb, q, what);
                    pclose_ok(q);
                }
                cr_assert(is_pre || is_post || is_cut, "%s: reopened %s; before %s, after %s", what,
                          pstate_str(&got), pstate_str(&pre), pstate_str(&post));
                if (!crashed)
                    cr_assert(is_post, "%s: the step returned, yet the crash undid it", what);
                else {
                    old_seen += is_pre;
                    new_seen += is_post;
                }
            }
    cr_log_info("%s: %u runs, %u crashed inside the step (%u reopened as before, %u as after)", name, runs, mid,
                old_seen, new_seen);
    cr_assert_gt(mid, 0);
    cr_assert_gt(old_seen, 0);
    if (new_inside)
        cr_assert_gt(new_seen, 0);
}

static int step_lead(kpart *p)
{
    int rc = kpart_become_leader(p, 7);
    if (rc == 0)
        rc = append_n(p, 3, KS_APPEND_SYNC, NULL);
    return rc;
}

Test(pepoch, crash_at_every_op_of_becoming_leader)
{
    char tmpl[TU_PATH];
    snprintf(tmpl, sizeof tmpl, "%s/tmpl-0", root);
    kpart *p = history(tmpl);
    int64_t start;
    cr_assert_eq(kpart_delete_records(p, 12, &start), 0); /* the open writes it, before the step */
    pclose_ok(p);
    crash_every_op(tmpl, step_lead, "become leader at 7, append", false, false);
}

/* The first epoch above 0 of a partition without a file: two writes. */
Test(pepoch, crash_at_every_op_of_the_first_epoch)
{
    char tmpl[TU_PATH];
    snprintf(tmpl, sizeof tmpl, "%s/tmpl-0", root);
    kpart *p = popen_dir(tmpl);
    append_ok(p, 5);
    append_ok(p, 5);
    pclose_ok(p);
    crash_every_op(tmpl, step_lead, "first epoch 7, append", false, false);
}

static int step_truncate(kpart *p)
{
    int64_t ne;
    return kpart_truncate_to(p, 22, &ne);
}

Test(pepoch, crash_at_every_op_of_truncate_to)
{
    char tmpl[TU_PATH];
    snprintf(tmpl, sizeof tmpl, "%s/tmpl-0", root);
    /* epochs 0 (0..14), 2 (15..29), 5, 6, in 4 KiB segments: truncating
     * to 22 (inside the batch 20..24) drops whole segments, cuts one back
     * to 20 and removes the entries of 5 and 6 */
    kpart *p = popen_dir(tmpl);
    for (int i = 0; i < 3; i++)
        append_ok(p, 5);
    lead(p, 2);
    for (int i = 0; i < 3; i++)
        append_ok(p, 5);
    lead(p, 5);
    for (int i = 0; i < 12; i++)
        append_ok(p, 5);
    lead(p, 6);
    for (int i = 0; i < 12; i++)
        append_ok(p, 5);
    cr_assert_gt(ks_log_segment_count(kpart_log(p)), 2);
    pclose_ok(p);
    crash_every_op(tmpl, step_truncate, "truncate to 22", true, true);
}
