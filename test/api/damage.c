/*
 * Damaged and incomplete data directories, through the public API: what
 * klog_open keeps, recovers, refuses or reports.  Each regression test is
 * named after the defect it caught (issue 19, "Defects found").
 */
#include "util.h"

#include <sys/stat.h>

TestSuite(damage, .init = ut_mkdir, .fini = ut_rmdir);

/* ---- helpers ------------------------------------------------------------------ */

/* Append n records "topic/part/i" to one partition with acks=all and wait
 * for them. */
static void fill(klog *k, const char *topic, int part, int n)
{
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    char v[300];
    for (int i = 0; i < n; i++) {
        snprintf(v, sizeof v, "%s/%d/%d", topic, part, i);
        int rc = ut_send(p, topic, part, NULL, v);
        cr_assert_eq(rc, 0, "send %s: %s", v, klog_err_name(rc));
    }
    cr_assert_eq(klog_producer_flush(p, 30000), 0);
    cr_assert_eq(klog_producer_close(p), 0);
}

/* The records [from, to) of one partition are there, each at its offset
 * with the value fill gave it. */
static void expect_records(klog *k, const char *topic, int part, int64_t from, int64_t to)
{
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, topic, part, from), 0);
    size_t n = 0;
    ut_msg *m = ut_consume(c, (size_t)(to - from), &n);
    cr_assert_eq(n, (size_t)(to - from), "%s-%d: %zu records from %" PRId64 ", expected %" PRId64, topic, part, n,
                 from, to - from);
    for (size_t i = 0; i < n; i++) {
        char v[300];
        snprintf(v, sizeof v, "%s/%d/%" PRId64, topic, part, from + (int64_t)i);
        cr_assert_eq(m[i].offset, from + (int64_t)i);
        cr_assert(m[i].value && !strcmp(m[i].value, v), "offset %" PRId64 ": %s, expected %s", m[i].offset,
                  m[i].value ? m[i].value : "(null)", v);
    }
    ut_msgs_free(m, n);
    cr_assert_eq(klog_consumer_close(c), 0);
}

/* The topic's partition count (klog_topic_describe), its start and end
 * offsets into start/end (may be NULL), its keys into config. */
static int describe(klog *k, const char *topic, int64_t *start, int64_t *end, int32_t *err, char *config,
                    size_t config_size)
{
    klog_partition_info pi[16];
    for (size_t i = 0; i < 16; i++)
        pi[i].struct_size = sizeof pi[i];
    int n = klog_topic_describe(k, topic, pi, 16, config, config_size);
    for (int i = 0; i < n && i < 16; i++) {
        if (start)
            start[i] = pi[i].start_offset;
        if (end)
            end[i] = pi[i].end_offset;
        if (err)
            err[i] = pi[i].error;
    }
    return n;
}

static bool exists(const char *rel)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", ut_dir, rel);
    return stat(p, &st) == 0;
}

static void ren(const char *from, const char *to)
{
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/%s", ut_dir, from);
    snprintf(b, sizeof b, "%s/%s", ut_dir, to);
    cr_assert_eq(rename(a, b), 0, "rename %s %s: %s", a, b, strerror(errno));
}

static void rm(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", ut_dir, rel);
    cr_assert_eq(unlink(p), 0, "unlink %s: %s", p, strerror(errno));
}

static void copy(const char *from, const char *to)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -p '%s/%s' '%s/%s'", ut_dir, from, ut_dir, to);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* ---- topics.meta and the partition directories ---------------------------------- */

/* A missing topics.meta made klog_open delete every partition directory as
 * an orphan.  Now the topics come back from their directories, with every
 * record at its offset, their partition counts from the highest directory,
 * retention.ms=-1 (nothing deleted by a guessed configuration) and
 * __consumer_offsets compacted; topics.meta is written again. */
Test(damage, missing_topics_meta_wiped_the_data)
{
    klog *k = ut_open();
    ut_topic(k, "events", 3, "retention.ms", "1000", NULL);
    ut_topic(k, "quiet", 2, NULL);
    ut_topic(k, "__consumer_offsets", 1, "cleanup.policy", "compact", NULL);
    fill(k, "events", 0, 50);
    fill(k, "events", 2, 30);
    cr_assert_eq(klog_close(k), 0);
    rm("topics.meta");

    for (int round = 0; round < 2; round++) { /* the second open finds what the first wrote */
        k = ut_open();
        cr_assert(exists("topics.meta"));
        int64_t end[16];
        char config[512];
        cr_assert_eq(describe(k, "events", NULL, end, NULL, config, sizeof config), 3);
        cr_assert_eq(end[0], 50);
        cr_assert_eq(end[1], 0);
        cr_assert_eq(end[2], 30);
        cr_assert(strstr(config, "retention.ms=-1"), "%s", config);
        cr_assert_eq(describe(k, "quiet", NULL, NULL, NULL, NULL, 0), 2);
        cr_assert_eq(describe(k, "__consumer_offsets", NULL, NULL, NULL, config, sizeof config), 1);
        cr_assert(strstr(config, "cleanup.policy=compact"), "%s", config);
        expect_records(k, "events", 0, 0, 50);
        expect_records(k, "events", 2, 0, 30);
        cr_assert_eq(klog_close(k), 0);
    }
}

/* With topics.meta present, a directory holding records that it does not
 * list (a topic, or partitions past a topic's count: a topics.meta older
 * than the data) is adopted, never removed; a partition directory never
 * written and not listed (a creation that crashed before it was recorded)
 * is removed. */
Test(damage, unlisted_partition_directories_kept_when_they_hold_records)
{
    klog *k = ut_open();
    ut_topic(k, "a", 1, NULL);
    fill(k, "a", 0, 5);
    cr_assert_eq(klog_close(k), 0);
    copy("topics.meta", "meta.old");
    k = ut_open();
    cr_assert_eq(klog_topic_add_partitions(k, "a", 2), 0);
    fill(k, "a", 1, 3);
    ut_topic(k, "b", 2, NULL);
    fill(k, "b", 1, 7);
    ut_topic(k, "c", 1, NULL);
    cr_assert_eq(klog_close(k), 0);
    ren("meta.old", "topics.meta"); /* lists a with one partition only */

    k = ut_open();
    int64_t end[16];
    char config[512];
    cr_assert_eq(describe(k, "a", NULL, end, NULL, NULL, 0), 2);
    cr_assert_eq(end[1], 3);
    cr_assert_eq(describe(k, "b", NULL, end, NULL, config, sizeof config), 2);
    cr_assert_eq(end[1], 7);
    cr_assert(strstr(config, "retention.ms=-1"), "%s", config);
    cr_assert_eq(describe(k, "c", NULL, NULL, NULL, NULL, 0), KLOG_EUNKNOWN_TOPIC);
    cr_assert(!exists("c-0"), "a never-written, unrecorded partition directory stays");
    expect_records(k, "a", 1, 0, 3);
    expect_records(k, "b", 1, 0, 7);
    cr_assert_eq(klog_close(k), 0);
}

/* A deletion renames the directories aside before topics.meta records it:
 * one that crashed in between left the topic listed and its directory
 * renamed.  The directory comes back. */
Test(damage, interrupted_delete_gives_the_directory_back)
{
    klog *k = ut_open();
    ut_topic(k, "a", 2, NULL);
    fill(k, "a", 0, 4);
    fill(k, "a", 1, 6);
    cr_assert_eq(klog_close(k), 0);
    ren("a-0", "a-0.deleted-1");
    k = ut_open();
    int64_t end[16];
    cr_assert_eq(describe(k, "a", NULL, end, NULL, NULL, 0), 2);
    cr_assert_eq(end[0], 4);
    cr_assert(!exists("a-0.deleted-1"));
    expect_records(k, "a", 0, 0, 4);
    cr_assert_eq(klog_close(k), 0);
}
