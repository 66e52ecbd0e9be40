/*
 * Damaged and incomplete data directories, through the public API: what
 * klog_open keeps, recovers, refuses or reports.  Each regression test is
 * named after the defect it caught (issue 19, "Defects found").
 */
#include "util.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

TestSuite(damage, .init = ut_mkdir, .fini = ut_rmdir);

/* ---- helpers ------------------------------------------------------------------ */

/* Record values: "topic/part/offset/" and some padding, so that a
 * segment.bytes of 1 KiB holds a batch of ten or so. */
#define PAD "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"

/* Append n records "topic/part/i" to one partition with acks=all and wait
 * for them, ten at a time (batches of ten: small segments fill up). */
static void fill(klog *k, const char *topic, int part, int n)
{
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    char v[300];
    for (int i = 0; i < n; i++) {
        snprintf(v, sizeof v, "%s/%d/%d/" PAD, topic, part, i);
        int rc = ut_send(p, topic, part, NULL, v);
        cr_assert_eq(rc, 0, "send %s: %s", v, klog_err_name(rc));
        if (i % 10 == 9)
            cr_assert_eq(klog_producer_flush(p, 30000), 0);
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
        snprintf(v, sizeof v, "%s/%d/%" PRId64 "/" PAD, topic, part, from + (int64_t)i);
        cr_assert_eq(m[i].offset, from + (int64_t)i);
        cr_assert(m[i].value && !strcmp(m[i].value, v), "offset %" PRId64 ": %s, expected %s", m[i].offset,
                  m[i].value ? m[i].value : "(null)", v);
    }
    ut_msgs_free(m, n);
    cr_assert_eq(klog_consumer_close(c), 0);
}

/* Reading the partition from its start fails with KLOG_ECORRUPT before
 * its end: damage is reported, not skipped. */
static void expect_read_fails(klog *k, const char *topic, int part, const char *what)
{
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, topic, part, KLOG_OFFSET_BEGINNING), 0);
    int64_t give_up = ut_mono_ms() + 30000, last = -1;
    int rc = 0;
    while (ut_mono_ms() < give_up) {
        const klog_message *const *m = NULL;
        rc = klog_consumer_poll(c, 0, &m);
        if (rc < 0)
            break;
        for (int i = 0; i < rc; i++)
            last = m[i]->offset;
        if (rc == 0)
            ut_sleep_ms(1);
    }
    cr_assert_eq(rc, KLOG_ECORRUPT, "%s: reading %s-%d: %s after offset %" PRId64, what, topic, part,
                 klog_err_name(rc), last);
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

/* The first klog_topic_create in a new directory, killed after its first
 * partition directory and before topics.meta (the torture harness found
 * it: test/torture, compact mode): no topics.meta then meant "recover the
 * topics from their directories", and the topic came back with one of its
 * three partitions and without its configuration (cleanup.policy=compact
 * lost, retention.ms=-1), the retried create failing with -EEXIST.  A new
 * directory gets an empty topics.meta at its first open, so the leftover
 * empty directory is an unrecorded creation and goes. */
Test(damage, first_topic_create_killed_left_a_partial_topic)
{
    klog *k = ut_open();
    cr_assert_eq(klog_close(k), 0);
    cr_assert(exists("topics.meta"), "a new directory has no topics.meta");
    char path[256];
    snprintf(path, sizeof path, "%s/c-0", ut_dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/c-0/00000000000000000000.log", ut_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    k = ut_open();
    cr_assert_eq(describe(k, "c", NULL, NULL, NULL, NULL, 0), KLOG_EUNKNOWN_TOPIC);
    cr_assert(!exists("c-0"));
    ut_topic(k, "c", 3, "cleanup.policy", "compact", NULL);
    char config[512];
    cr_assert_eq(describe(k, "c", NULL, NULL, NULL, config, sizeof config), 3);
    cr_assert(strstr(config, "cleanup.policy=compact"), "%s", config);
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

/* ---- klog verify and klog_open agree ------------------------------------------- */

/* Run `klog verify DIR` (the tool's path in KLOG_CLI); returns its exit
 * status, its output in out. */
static int verify(const char *dir, char *out, size_t size)
{
    const char *cli = getenv("KLOG_CLI");
    cr_assert(cli && *cli, "KLOG_CLI (the klog tool) not set");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' verify '%s' 2>&1", cli, dir);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    cr_assert(WIFEXITED(st), "%s", cmd);
    return WEXITSTATUS(st);
}

static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* The n-th segment file of dir/t-0 in offset order (n < 0: from the end),
 * as a path into path; returns how many there are. */
static int segment(const char *dir, int n, char *path, size_t size)
{
    char pdir[600];
    snprintf(pdir, sizeof pdir, "%s/t-0", dir);
    DIR *d = opendir(pdir);
    cr_assert_not_null(d);
    char names[256][32];
    int k = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && k < 256) {
        size_t l = strlen(de->d_name);
        if (l == 24 && !strcmp(de->d_name + 20, ".log"))
            snprintf(names[k++], sizeof names[0], "%s", de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)k, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    if (n < 0)
        n += k;
    cr_assert(n >= 0 && n < k, "segment %d of %d", n, k);
    snprintf(path, size, "%s/%s", pdir, names[n]);
    return k;
}

/* A digest of every file under dir/sub (names, sizes, bytes), but .lock. */
static void digest(const char *dir, const char *sub, char *out, size_t size)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "cd '%s' 2>/dev/null && [ -d '%s' ] && find '%s' -type f ! -name .lock | sort | xargs -r md5sum",
             dir, sub, sub);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    pclose(f);
}

enum outcome {
    INTACT,    /* opens; t's partition whole and writable */
    REPAIRED,  /* opens, repairs the damage without losing a record; verify is clean afterwards */
    DAMAGED,   /* opens; t's partition damaged (KLOG_ECORRUPT, read-only), nothing changed on disk */
    ON_READ,   /* opens, t's partition writable: the damage lies in a synced segment the open trusts
                * (checksums are verify's and the reader's to check); a read reaches it and fails
                * with KLOG_ECORRUPT, never skips it */
    REFUSED,   /* klog_open fails with KLOG_ECORRUPT, nothing changed */
};

typedef struct dcase {
    const char *name;
    int verify;            /* exit status of klog verify before the open: 0 clean (or warnings), 1 damage */
    const char *says;      /* in verify's output */
    enum outcome open;
} dcase;

/* Damage the copy dir as case c says. */
static void inflict(const char *dir, const char *c)
{
    char p[900];
    if (!strcmp(c, "intact")) {
    } else if (!strcmp(c, "garbage after the end (above the recovery point)")) {
        segment(dir, -1, p, sizeof p);
        sh("head -c 300 /dev/urandom >> '%s'", p);
    } else if (!strcmp(c, "zeros after the end")) {
        segment(dir, -1, p, sizeof p);
        sh("truncate -s +4096 '%s'", p);
    } else if (!strcmp(c, "first segment deleted")) {
        segment(dir, 0, p, sizeof p);
        sh("rm '%s'", p);
    } else if (!strcmp(c, "all segments deleted, recovery.ckpt kept")) {
        sh("rm %s/t-0/*.log %s/t-0/*.index %s/t-0/*.timeindex", dir, dir, dir);
    } else if (!strcmp(c, "partition directory deleted")) {
        sh("rm -r '%s/t-0'", dir);
    } else if (!strcmp(c, "middle segment deleted")) {
        segment(dir, 2, p, sizeof p);
        sh("rm '%s'", p);
    } else if (!strcmp(c, "last segment deleted")) {
        segment(dir, -1, p, sizeof p);
        sh("rm '%s'", p);
    } else if (!strcmp(c, "sealed segment bit flip")) {
        segment(dir, 1, p, sizeof p);
        sh("printf '\\377' | dd of='%s' bs=1 seek=70 conv=notrunc 2>/dev/null", p);
    } else if (!strcmp(c, "tail cut below the recovery point")) {
        segment(dir, -1, p, sizeof p);
        sh("truncate -s -5 '%s'", p);
    } else if (!strcmp(c, "recovery.ckpt damaged")) {
        sh("printf Z | dd of='%s/t-0/recovery.ckpt' bs=1 seek=9 conv=notrunc 2>/dev/null", dir);
    } else if (!strcmp(c, "recovery.ckpt missing")) {
        sh("rm '%s/t-0/recovery.ckpt'", dir);
    } else if (!strcmp(c, "cleaner.ckpt damaged")) {
        sh("printf 'not a checkpoint' > '%s/t-0/cleaner.ckpt'", dir);
    } else if (!strcmp(c, "sealed index damaged")) {
        segment(dir, 1, p, sizeof p);
        sh("truncate -s 30 '%.*s.index'", (int)(strlen(p) - 4), p);
    } else if (!strcmp(c, "cleaning swap file damaged")) {
        segment(dir, 1, p, sizeof p);
        sh("head -c 500 /dev/urandom > '%s.swap'", p);
    } else if (!strcmp(c, "leader-epoch-checkpoint malformed")) {
        sh("printf '0\\n2\\n3 0\\n1 1\\n' > '%s/t-0/leader-epoch-checkpoint'", dir);
    } else if (!strcmp(c, "leftover .tmp file")) {
        sh("echo x > '%s/t-0/recovery.ckpt.tmp'", dir);
    } else if (!strcmp(c, "topics.meta missing")) {
        sh("rm '%s/topics.meta'", dir);
    } else if (!strcmp(c, "topics.meta damaged")) {
        sh("printf Z | dd of='%s/topics.meta' bs=1 seek=20 conv=notrunc 2>/dev/null", dir);
    } else {
        cr_assert_fail("no such case: %s", c);
    }
}

/* The salvage path (klog_topic_repair), on a partition that stays damaged
 * across opens: an open that checks every batch (log.recovery.verify.all,
 * as klog verify --repair opens) finds it damaged, the repair makes it
 * writable, keeping every record before the damage at its offset, and
 * afterwards klog verify finds the directory clean. */
static void salvage(const char *dir, const char *what)
{
    klog_conf *conf = ut_conf("log.recovery.verify.all", "true", NULL);
    klog *k = NULL;
    char err[512] = "", report[2048];
    int rc = klog_open(&k, dir, conf, err, sizeof err);
    klog_conf_free(conf);
    cr_assert_eq(rc, 0, "%s: salvage: klog_open: %s (%s)", what, klog_err_name(rc), err);
    int64_t start[16], end[16];
    int32_t perr[16];
    cr_assert_eq(describe(k, "t", start, end, perr, NULL, 0), 1);
    cr_assert_eq(perr[0], KLOG_ECORRUPT, "%s: with every batch checked, the partition is not damaged", what);
    cr_assert_eq(klog_topic_repair(k, "u", 0, report, sizeof report), KLOG_ESTATE, "%s: repaired u", what);
    rc = klog_topic_repair(k, "t", 0, report, sizeof report);
    cr_assert_eq(rc, 0, "%s: klog_topic_repair: %s", what, klog_err_name(rc));
    cr_assert_eq(klog_topic_repair(k, "t", 0, NULL, 0), KLOG_ESTATE, "%s: repaired twice", what);
    cr_assert_eq(describe(k, "t", start, end, perr, NULL, 0), 1);
    cr_assert_eq(perr[0], 0, "%s: after the repair: %s", what, klog_err_name(perr[0]));
    cr_assert_leq(end[0], 120, "%s", what);
    /* the records kept are the ones before the damage, at their offsets;
     * the partition takes new ones after them */
    if (end[0] > start[0])
        expect_records(k, "t", 0, start[0], end[0]);
    klog_producer *pr = ut_producer(k, NULL);
    char v[300];
    snprintf(v, sizeof v, "t/0/%" PRId64 "/" PAD, end[0]);
    cr_assert_eq(ut_send(pr, "t", 0, NULL, v), 0, "%s: send after the repair", what);
    cr_assert_eq(klog_producer_flush(pr, 30000), 0);
    cr_assert_eq(klog_producer_close(pr), 0);
    expect_records(k, "t", 0, end[0], end[0] + 1);
    cr_assert_eq(klog_close(k), 0);
    char out[16384];
    int vr = verify(dir, out, sizeof out);
    cr_assert_eq(vr, 0, "%s: klog verify after the repair (%s) exits %d:\n%s", what, report, vr, out);
    cr_assert(!strstr(out, "warning:"), "%s: klog verify after the repair warns:\n%s", what, out);
}

/* Issue 19: klog_open accepted vanished acknowledged segments in silence
 * (the start offset moved; the log restarted empty at the checkpoint; a
 * deleted partition directory came back empty at offset 0, reusing
 * offsets), and klog verify then called the directory clean because the
 * open had rewritten the checkpoint.  For every kind of damage: what
 * verify says, what the open does about it, and what verify says after
 * the open must agree.  Verify's damage is never opened in silence: the
 * open either marks the partition damaged (read-only, KLOG_ECORRUPT,
 * nothing on disk changed, verify still says so after), refuses the
 * instance, or repairs it without losing a record (and verify is clean
 * after).  Warnings are states a crash leaves, which the open tidies. */
Test(damage, verify_and_open_agree_on_every_kind_of_damage, .timeout = 300)
{
    static const dcase cases[] = {
        { "intact", 0, "clean", INTACT },
        { "garbage after the end (above the recovery point)", 0, "a torn write", REPAIRED },
        { "zeros after the end", 0, "zeroed tail", REPAIRED },
        { "first segment deleted", 1, "(segments missing)", DAMAGED },
        { "all segments deleted, recovery.ckpt kept", 1, "no segments, but recovery.ckpt vouches", DAMAGED },
        { "partition directory deleted", 1, "t-0: missing", DAMAGED },
        { "middle segment deleted", 1, "(offsets missing)", DAMAGED },
        { "last segment deleted", 1, "acknowledged records missing", DAMAGED },
        { "sealed segment bit flip", 1, "checksum mismatch", ON_READ },
        { "tail cut below the recovery point", 1, "incomplete batch", DAMAGED },
        { "recovery.ckpt damaged", 1, "recovery.ckpt: damaged", REPAIRED },
        { "recovery.ckpt missing", 0, "recovery.ckpt: missing", REPAIRED },
        { "cleaner.ckpt damaged", 1, "cleaner.ckpt: damaged", REPAIRED },
        { "sealed index damaged", 1, ".index: damaged", REPAIRED },
        { "cleaning swap file damaged", 1, ".log.swap: position 0: invalid batch", DAMAGED },
        { "leader-epoch-checkpoint malformed", 1, "leader-epoch-checkpoint: damaged: line 4", DAMAGED },
        { "leftover .tmp file", 0, "leftover of an interrupted write", REPAIRED },
        { "topics.meta missing", 1, "topics.meta: missing, but partition directories hold records", REPAIRED },
        { "topics.meta damaged", 1, "topics.meta: damaged topic metadata", REFUSED },
    };
    /* the image: t-0 in many small segments, u-0 beside it */
    char image[300], dir[300], out[16384], before[16384], after[16384];
    snprintf(image, sizeof image, "%s/image", ut_dir);
    klog *k = NULL;
    char err[512] = "";
    cr_assert_eq(klog_open(&k, image, NULL, err, sizeof err), 0, "%s", err);
    klog_conf *tc = ut_conf("segment.bytes", "1024", NULL);
    cr_assert_eq(klog_topic_create(k, "t", 1, tc, err, sizeof err), 0, "%s", err);
    klog_conf_free(tc);
    ut_topic(k, "u", 1, NULL);
    fill(k, "t", 0, 120);
    fill(k, "u", 0, 10);
    cr_assert_eq(klog_close(k), 0);
    char p[900];
    cr_assert_geq(segment(image, 0, p, sizeof p), 5, "the image needs several segments");

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const dcase *c = &cases[i];
        snprintf(dir, sizeof dir, "%s/case", ut_dir);
        sh("rm -rf '%s' && cp -a '%s' '%s'", dir, image, dir);
        inflict(dir, c->name);
        int vr = verify(dir, out, sizeof out);
        cr_assert_eq(vr, c->verify, "%s: klog verify exits %d, expected %d:\n%s", c->name, vr, c->verify, out);
        cr_assert(strstr(out, c->says), "%s: klog verify does not say \"%s\":\n%s", c->name, c->says, out);
        digest(dir, "t-0", before, sizeof before);

        err[0] = '\0';
        int rc = klog_open(&k, dir, NULL, err, sizeof err);
        if (c->open == REFUSED) {
            cr_assert_eq(rc, KLOG_ECORRUPT, "%s: klog_open: %s", c->name, klog_err_name(rc));
            cr_assert(err[0], "%s: no reason given", c->name);
        } else {
            cr_assert_eq(rc, 0, "%s: klog_open: %s (%s)", c->name, klog_err_name(rc), err);
            int64_t start[16], end[16];
            int32_t perr[16];
            cr_assert_eq(describe(k, "t", start, end, perr, NULL, 0), 1, "%s", c->name);
            klog_producer *pr = ut_producer(k, NULL);
            int sr = ut_send(pr, "t", 0, NULL, "t/0/120/" PAD);
            if (c->open == DAMAGED) {
                cr_assert_eq(perr[0], KLOG_ECORRUPT, "%s: partition error %s", c->name, klog_err_name(perr[0]));
                cr_assert_eq(sr, KLOG_ECORRUPT, "%s: send to a damaged partition: %s", c->name, klog_err_name(sr));
                cr_assert_eq(klog_topic_delete_records(k, "t", 0, KLOG_OFFSET_END, NULL), KLOG_ECORRUPT);
            } else {
                cr_assert_eq(perr[0], 0, "%s: partition error %s", c->name, klog_err_name(perr[0]));
                cr_assert_eq(sr, 0, "%s: send: %s", c->name, klog_err_name(sr));
                cr_assert_eq(end[0], 120, "%s: end offset %" PRId64, c->name, end[0]);
            }
            /* the intact partition beside it stays usable */
            cr_assert_eq(ut_send(pr, "u", 0, NULL, "u/0/10/" PAD), 0, "%s", c->name);
            cr_assert_eq(klog_producer_flush(pr, 30000), 0);
            cr_assert_eq(klog_producer_close(pr), 0);
            expect_records(k, "u", 0, 0, 11);
            if (c->open == ON_READ)
                expect_read_fails(k, "t", 0, c->name);
            else if (c->open != DAMAGED)
                expect_records(k, "t", 0, 0, 121);
            cr_assert_eq(klog_close(k), 0, "%s", c->name);
        }

        vr = verify(dir, out, sizeof out);
        if (c->open == DAMAGED || c->open == REFUSED || c->open == ON_READ) {
            if (c->open == ON_READ)
                digest(dir, "t-0", before, sizeof before); /* it took an append */
            digest(dir, "t-0", after, sizeof after);
            cr_assert_str_eq(after, before, "%s: the open changed the damaged partition", c->name);
            cr_assert_eq(vr, 1, "%s: klog verify after the open exits %d:\n%s", c->name, vr, out);
            cr_assert(strstr(out, c->says), "%s: klog verify after the open does not say \"%s\":\n%s", c->name,
                      c->says, out);
            if (c->open != REFUSED)
                salvage(dir, c->name);
        } else {
            cr_assert_eq(vr, 0, "%s: klog verify after the open exits %d:\n%s", c->name, vr, out);
            cr_assert(!strstr(out, "warning:"), "%s: klog verify after the open warns:\n%s", c->name, out);
        }
    }
}

/* One damaged partition (a tail cut below its checkpoint; a malformed
 * leader-epoch-checkpoint) made klog_open fail for the whole instance.
 * Now the instance opens: the intact partitions work, the damaged ones
 * report KLOG_ECORRUPT on use and say why in klog_stats, serve what
 * precedes the damage, and klog_topic_repair salvages them, saying what it
 * dropped. */
Test(damage, one_damaged_partition_made_the_instance_unopenable)
{
    klog *k = ut_open();
    klog_conf *tc = ut_conf("segment.bytes", "1024", NULL);
    char err[512] = "", seg[900], report[2048];
    cr_assert_eq(klog_topic_create(k, "t", 2, tc, err, sizeof err), 0, "%s", err);
    klog_conf_free(tc);
    ut_topic(k, "u", 1, NULL);
    fill(k, "t", 0, 60);
    fill(k, "t", 1, 30);
    fill(k, "u", 0, 10);
    cr_assert_eq(klog_close(k), 0);
    /* t-0: its last batch cut short; t-1: epochs out of order */
    snprintf(seg, sizeof seg, "%s/t-0", ut_dir);
    sh("f=$(ls '%s'/*.log | tail -1) && truncate -s -5 \"$f\"", seg);
    sh("printf '0\\n2\\n3 0\\n1 1\\n' > '%s/t-1/leader-epoch-checkpoint'", ut_dir);

    k = ut_open();
    int64_t start[16], end[16];
    int32_t perr[16];
    cr_assert_eq(describe(k, "t", start, end, perr, NULL, 0), 2);
    cr_assert_eq(perr[0], KLOG_ECORRUPT);
    cr_assert_eq(perr[1], KLOG_ECORRUPT);
    cr_assert_lt(end[0], 60, "the view of t-0 ends before its damaged batch");
    cr_assert_eq(end[1], 30);
    /* the others work; the damaged ones refuse sends, serve their records */
    klog_producer *pr = ut_producer(k, NULL);
    cr_assert_eq(ut_send(pr, "u", 0, NULL, "u/0/10/" PAD), 0);
    cr_assert_eq(ut_send(pr, "t", 0, NULL, "x"), KLOG_ECORRUPT);
    cr_assert_eq(ut_send(pr, "t", 1, NULL, "x"), KLOG_ECORRUPT);
    cr_assert_eq(klog_producer_flush(pr, 30000), 0);
    cr_assert_eq(klog_producer_close(pr), 0);
    expect_records(k, "u", 0, 0, 11);
    expect_records(k, "t", 0, 0, end[0]);
    expect_records(k, "t", 1, 0, 30);
    char *doc = NULL;
    cr_assert_eq(klog_stats(k, KLOG_STATS_JSON, &doc), 0);
    cr_assert(strstr(doc, "\"damage\":\"00000000000000000") && strstr(doc, "below the recovery point"), "%s", doc);
    cr_assert(strstr(doc, "\"damage\":\"leader-epoch-checkpoint: line 4"), "%s", doc);
    klog_free(doc);
    cr_assert_eq(klog_stats(k, KLOG_STATS_PROMETHEUS, &doc), 0);
    cr_assert(strstr(doc, "klog_partition_damaged{topic=\"t\",partition=\"0\"} 1"), "%s", doc);
    cr_assert(strstr(doc, "klog_partition_damaged{topic=\"u\",partition=\"0\"} 0"), "%s", doc);
    klog_free(doc);

    /* the salvage */
    cr_assert_eq(klog_topic_repair(k, "t", 0, report, sizeof report), 0);
    cr_assert(strstr(report, "cut at offset") && strstr(report, "bytes dropped"), "%s", report);
    cr_assert_eq(klog_topic_repair(k, "t", 1, report, sizeof report), 0);
    cr_assert(strstr(report, "leader-epoch-checkpoint removed"), "%s", report);
    cr_assert_eq(klog_topic_repair(k, "u", 0, report, sizeof report), KLOG_ESTATE);
    cr_assert_eq(klog_topic_repair(k, "t", 2, report, sizeof report), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(klog_topic_repair(k, "nope", 0, report, sizeof report), KLOG_EUNKNOWN_TOPIC);
    int64_t cut = end[0];
    cr_assert_eq(describe(k, "t", start, end, perr, NULL, 0), 2);
    cr_assert_eq(perr[0], 0);
    cr_assert_eq(perr[1], 0);
    cr_assert_eq(end[0], cut, "the salvage kept what the damaged view showed");
    fill(k, "t", 1, 31); /* writable again: 31 more from offset 30 */
    cr_assert_eq(klog_close(k), 0);
    k = ut_open();
    cr_assert_eq(describe(k, "t", start, end, perr, NULL, 0), 2);
    cr_assert_eq(perr[0], 0);
    cr_assert_eq(perr[1], 0);
    cr_assert_eq(end[1], 61);
    cr_assert_eq(klog_close(k), 0);
}
