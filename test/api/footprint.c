/*
 * What an instance holds open, through the public API (issue 18): with
 * log.max.open.files=16, 200 partitions all take records (acks=all and
 * acks=1) and read them back, before and after a reopen, while the
 * process's descriptors stay within the cap and a small fixed number (the
 * directory lock, the I/O engine's rings).  No timing: counts and records.
 */
#include "util.h"

#include <dirent.h>

TestSuite(footprint, .init = ut_mkdir, .fini = ut_rmdir, .timeout = 240);

#define PARTS 200
#define CAP 16
#define SLACK 12 /* the directory lock, io_uring rings, the background thread's */

static int fds_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* opendir's own */
}

static klog *open_capped(void)
{
    klog_conf *c = ut_conf("log.max.open.files", "16", NULL);
    klog *k = NULL;
    char err[256] = "";
    int rc = klog_open(&k, ut_dir, c, err, sizeof err);
    klog_conf_free(c);
    cr_assert_eq(rc, 0, "klog_open: %s (%s)", klog_err_name(rc), err);
    return k;
}

/* Send `n` records "p<part>-<i>" (i from `from`) to every partition. */
static void send_all(klog *k, const char *acks, int from, int n)
{
    klog_producer *p = ut_producer(k, "acks", acks, "linger.ms", "1", "batch.size", "16384", NULL);
    for (int i = from; i < from + n; i++)
        for (int q = 0; q < PARTS; q++) {
            char v[32];
            snprintf(v, sizeof v, "p%d-%d", q, i);
            cr_assert_eq(ut_send(p, "many", q, NULL, v), 0);
        }
    cr_assert_eq(klog_producer_flush(p, 60000), 0);
    cr_assert_eq(klog_producer_close(p), 0);
}

/* Every partition holds exactly "p<part>-0" .. "p<part>-<n-1>", in order. */
static void expect_all(klog *k, int n)
{
    klog_consumer *c = ut_consumer(k, NULL);
    for (int q = 0; q < PARTS; q++) {
        cr_assert_eq(klog_consumer_assign(c, "many", q, KLOG_OFFSET_BEGINNING), 0);
        int got = 0;
        for (int tries = 0; got < n && tries < 200; tries++) {
            const klog_message *const *m;
            int r = klog_consumer_poll(c, 50, &m);
            cr_assert_geq(r, 0, "poll: %s", klog_err_name(r));
            for (int i = 0; i < r; i++, got++) {
                char want[32];
                int wl = snprintf(want, sizeof want, "p%d-%d", q, got);
                cr_assert_eq(m[i]->partition, q);
                cr_assert_eq(m[i]->offset, got);
                cr_assert(m[i]->value_len == (size_t)wl && !memcmp(m[i]->value, want, (size_t)wl),
                          "partition %d offset %d: %.*s, expected %s", q, got, (int)m[i]->value_len,
                          (const char *)m[i]->value, want);
            }
        }
        cr_assert_eq(got, n, "partition %d: %d records read back, expected %d", q, got, n);
        cr_assert_eq(klog_consumer_unassign(c, "many", q), 0);
    }
    cr_assert_eq(klog_consumer_close(c), 0);
}

Test(footprint, two_hundred_partitions_under_a_cap_of_16_open_files)
{
    int base = fds_open();
    klog *k = open_capped();
    ut_topic(k, "many", PARTS, NULL);
    cr_assert_leq(fds_open() - base, CAP + SLACK, "after creating %d partitions: %d descriptors", PARTS,
                  fds_open() - base);
    send_all(k, "all", 0, 2);
    send_all(k, "1", 2, 1);
    cr_assert_leq(fds_open() - base, CAP + SLACK, "after writing every partition: %d descriptors",
                  fds_open() - base);
    expect_all(k, 3);
    cr_assert_eq(klog_close(k), 0);
    cr_assert_eq(fds_open(), base, "descriptors left open by klog_close");

    k = open_capped();
    cr_assert_leq(fds_open() - base, CAP + SLACK, "after the reopen: %d descriptors", fds_open() - base);
    expect_all(k, 3);
    send_all(k, "all", 3, 1);
    expect_all(k, 4);
    cr_assert_leq(fds_open() - base, CAP + SLACK);
    cr_assert_eq(klog_close(k), 0);

    /* and without the cap the same instance opens (the default, 1024) */
    k = ut_open();
    expect_all(k, 4);
    cr_assert_eq(klog_close(k), 0);
}

Test(footprint, the_caps_are_checked_keys)
{
    klog_conf *c = NULL;
    cr_assert_eq(klog_conf_new(&c), 0);
    char err[256] = "";
    cr_assert_eq(klog_conf_set(c, "log.max.open.files", "0", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_conf_set(c, "log.index.cache.max.bytes", "-1", err, sizeof err), KLOG_ECONF);
    cr_assert_eq(klog_conf_set(c, "log.index.cache.max.bytes", "0", err, sizeof err), 0);
    char v[64];
    cr_assert_geq(klog_conf_get(c, "log.max.open.files", v, sizeof v), 0);
    cr_assert_str_eq(v, "1024");
    klog_conf_free(c);
}

/* What the disk budget counts in one partition directory: segments and
 * index files by their length, the small files by the blocks they take. */
static uint64_t dir_counted(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    uint64_t sum = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *f = de->d_name;
        size_t l = strlen(f);
        char p[600];
        struct stat st;
        if (f[0] == '.' && strcmp(f, ".lock") != 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, f);
        cr_assert_eq(stat(p, &st), 0);
        bool seg = (l > 4 && !strcmp(f + l - 4, ".log")) || (l > 6 && !strcmp(f + l - 6, ".index")) ||
                   (l > 10 && !strcmp(f + l - 10, ".timeindex"));
        sum += seg ? (uint64_t)st.st_size : (uint64_t)st.st_blocks * 512;
    }
    closedir(d);
    return sum;
}

/* Issue 18: checkpoints, leader epochs and topics.meta count in the disk
 * budget (the cleaner's temporary file: test/storage/compaction.c). */
Test(footprint, the_disk_budget_counts_checkpoints_and_metadata)
{
    klog *k = ut_open();
    ut_topic(k, "b", 2, "segment.bytes", "4096", NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "0", NULL);
    char v[300];
    memset(v, 'v', sizeof v - 1);
    v[sizeof v - 1] = '\0';
    for (int i = 0; i < 40; i++)
        cr_assert_eq(ut_send(p, "b", i % 2, NULL, v), 0);
    cr_assert_eq(klog_producer_flush(p, 10000), 0);
    klog_producer_close(p);
    cr_assert_eq(klog_close(k), 0);
    k = ut_open();
    uint64_t used = 0, budget = 0;
    cr_assert_eq(klog_disk_usage(k, &used, &budget), 0);
    char d0[200], d1[200], meta[200];
    snprintf(d0, sizeof d0, "%s/b-0", ut_dir);
    snprintf(d1, sizeof d1, "%s/b-1", ut_dir);
    snprintf(meta, sizeof meta, "%s/topics.meta", ut_dir);
    struct stat st;
    cr_assert_eq(stat(meta, &st), 0);
    uint64_t want = dir_counted(d0) + dir_counted(d1) + (uint64_t)st.st_blocks * 512;
    cr_assert_eq(used, want, "klog_disk_usage says %" PRIu64 ", the files hold %" PRIu64, used, want);
    /* the small files are in it: more than the segments and indexes alone */
    cr_assert_gt((uint64_t)st.st_blocks, 0);
    cr_assert_eq(klog_close(k), 0);
}
