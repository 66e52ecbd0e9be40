/*
 * test/api/readonly.c - read.only: a reader beside the writer of another
 * process (issue 18).  Public API only.
 *
 *   - refusals: producing, committing, creating, deleting, altering on a
 *     read-only instance fail with KLOG_EREADONLY, and nothing in the
 *     directory changes (names, sizes, modification times);
 *   - tailing: a writer process appends with acks=1 to a topic with small
 *     segments and retention.bytes (rolls and deletions all along) and to
 *     a compacted one (cleaning passes swap its segments); a reader process
 *     tails both and must read every record of the first once, in order,
 *     and the second's in order up to the last.  KLOG_TEST_FOLLOW_SECONDS
 *     sets how long the writer writes (default 5; the run is 60).
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "util.h"

static void setup(void) { ut_mkdir(); }
static void teardown(void) { ut_rmdir(); }

TestSuite(readonly, .init = setup, .fini = teardown, .timeout = 240);

static klog *open_ro(const char *dir)
{
    klog_conf *c = ut_conf("read.only", "true", NULL);
    klog *k = NULL;
    char err[256] = "";
    int rc = klog_open(&k, dir, c, err, sizeof err);
    klog_conf_free(c);
    cr_assert_eq(rc, 0, "read-only open: %s (%s)", klog_err_name(rc), err);
    return k;
}

/* Every entry under dir with its size and modification time, one a line. */
static void dir_state(const char *dir, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[512];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        cr_assert_eq(lstat(p, &st), 0);
        len += (size_t)snprintf(out + len, cap - len, "%s %lld %lld.%09ld\n", p, (long long)st.st_size,
                                (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        cr_assert_lt(len, cap);
        if (S_ISDIR(st.st_mode)) {
            dir_state(p, out + len, cap - len);
            len += strlen(out + len);
        }
    }
    closedir(d);
}

Test(readonly, refuses_every_change_and_writes_nothing)
{
    klog *w = ut_open();
    ut_topic(w, "t", 2, NULL);
    klog_producer *p = ut_producer(w, NULL);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(ut_send(p, "t", i % 2, NULL, "v"), 0);
    cr_assert_eq(klog_producer_flush(p, 10000), 0);
    klog_producer_close(p);
    cr_assert_eq(klog_close(w), 0);

    static char before[1 << 16], after[1 << 16];
    dir_state(ut_dir, before, sizeof before);
    klog *k = open_ro(ut_dir);
    /* it reads */
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    size_t n = 0;
    ut_msg *m = ut_consume(c, 5, &n);
    cr_assert_eq(n, 5);
    ut_msgs_free(m, n);
    /* it changes nothing */
    char err[256] = "";
    klog_producer *rp = NULL;
    cr_assert_eq(klog_producer_new(k, NULL, &rp, err, sizeof err), KLOG_EREADONLY, "%s", err);
    cr_assert_null(rp);
    cr_assert_eq(klog_topic_create(k, "u", 1, NULL, err, sizeof err), KLOG_EREADONLY);
    cr_assert_eq(klog_topic_delete(k, "t"), KLOG_EREADONLY);
    cr_assert_eq(klog_topic_add_partitions(k, "t", 3), KLOG_EREADONLY);
    klog_conf *tc = ut_conf("retention.ms", "1000", NULL);
    cr_assert_eq(klog_topic_alter_config(k, "t", tc, NULL, 0, err, sizeof err), KLOG_EREADONLY);
    klog_conf_free(tc);
    int64_t low = 0;
    cr_assert_eq(klog_topic_delete_records(k, "t", 0, 2, &low), KLOG_EREADONLY);
    /* a group's commit would write __consumer_offsets */
    klog_consumer *gc = ut_consumer(k, "group.id", "g", NULL);
    cr_assert_eq(klog_consumer_assign(gc, "t", 1, KLOG_OFFSET_BEGINNING), 0);
    m = ut_consume(gc, 5, &n);
    ut_msgs_free(m, n);
    int rc = klog_consumer_commit(gc, NULL, 0);
    cr_assert(rc == KLOG_EREADONLY, "commit on a read-only instance: %s", klog_err_name(rc));
    klog_consumer_close(gc);
    klog_consumer_close(c);
    cr_assert_eq(klog_close(k), 0);
    dir_state(ut_dir, after, sizeof after);
    cr_assert_str_eq(before, after, "the directory changed under a read-only instance");

    /* a directory that is not there is not made */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none", ut_dir);
    klog_conf *roc = ut_conf("read.only", "true", NULL);
    klog *k2 = NULL;
    cr_assert_eq(klog_open(&k2, missing, roc, err, sizeof err), -ENOENT);
    klog_conf_free(roc);
    struct stat st;
    cr_assert_neq(stat(missing, &st), 0);
}

Test(readonly, opens_beside_a_writer_in_this_process)
{
    klog *w = ut_open();
    ut_topic(w, "t", 1, NULL);
    klog *k = open_ro(ut_dir); /* no lock taken: the writer keeps its own */
    klog_producer *p = ut_producer(w, NULL);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    for (int i = 0; i < 20; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        cr_assert_eq(ut_send(p, "t", 0, NULL, v), 0);
        cr_assert_eq(klog_producer_flush(p, 10000), 0);
        size_t n = 0;
        ut_msg *m = ut_consume(c, 1, &n); /* woken by the writer's append */
        cr_assert_eq(n, 1, "record %d not seen", i);
        cr_assert_eq(m[0].offset, i);
        ut_msgs_free(m, n);
    }
    klog_consumer_close(c);
    klog_producer_close(p);
    cr_assert_eq(klog_close(k), 0);
    cr_assert_eq(klog_close(w), 0);
}

/* ---- a writer process and a reader process ------------------------------------ */

typedef struct wr_result {
    int64_t n;          /* records written to each topic */
    int64_t d_start;    /* "d"'s start offset at the end: retention deleted below */
    int64_t c_clean;    /* "c"'s clean offset: a cleaning pass swapped segments */
    int64_t d_segments;
} wr_result;

/* The writer's side (a child process): exits 0 after writing its result. */
static void writer(const char *dir, int seconds, int fd)
{
    klog_conf *c = ut_conf("log.cleaner.backoff.ms", "20", "log.retention.check.interval.ms", "20", NULL);
    klog *k = NULL;
    char err[256] = "";
    if (klog_open(&k, dir, c, err, sizeof err) < 0)
        _exit(10);
    klog_conf_free(c);
    klog_conf *dc = ut_conf("segment.bytes", "32768", "retention.bytes", "262144", NULL);
    klog_conf *cc = ut_conf("segment.bytes", "32768", "cleanup.policy", "compact", "min.cleanable.dirty.ratio", "0.01",
                            NULL);
    if (klog_topic_create(k, "d", 1, dc, err, sizeof err) < 0 || klog_topic_create(k, "c", 1, cc, err, sizeof err) < 0)
        _exit(11);
    klog_conf_free(dc);
    klog_conf_free(cc);
    char ready = 'r';
    if (write(fd, &ready, 1) != 1)
        _exit(12);
    klog_conf *pc = ut_conf("acks", "1", "linger.ms", "1", NULL);
    klog_producer *p = NULL;
    if (klog_producer_new(k, pc, &p, err, sizeof err) < 0)
        _exit(13);
    klog_conf_free(pc);
    int64_t t_end = ut_mono_ms() + (int64_t)seconds * 1000, i = 0;
    char pad[64];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    while (ut_mono_ms() < t_end) {
        for (int j = 0; j < 50; j++, i++) {
            char v[128], key[16];
            snprintf(v, sizeof v, "%012" PRId64 " %s", i, pad);
            snprintf(key, sizeof key, "k%d", (int)(i % 32));
            klog_record r = KLOG_RECORD_INIT;
            r.value = v;
            r.value_len = strlen(v);
            r.key = key;
            r.key_len = strlen(key);
            if (klog_producer_send(p, "d", &r) < 0 || klog_producer_send(p, "c", &r) < 0)
                _exit(14);
        }
        if (klog_producer_flush(p, 30000) < 0)
            _exit(15);
        ut_sleep_ms(5);
    }
    if (klog_producer_close(p) < 0)
        _exit(16);
    /* let a last cleaning pass and retention run */
    klog_partition_info pi = { .struct_size = sizeof pi };
    int64_t clean = 0;
    for (int t = 0; t < 200 && clean == 0; t++) {
        if (klog_topic_describe(k, "c", &pi, 1, NULL, 0) == 1)
            clean = pi.clean_offset;
        ut_sleep_ms(10);
    }
    wr_result res = { .n = i, .c_clean = clean };
    if (klog_topic_describe(k, "d", &pi, 1, NULL, 0) != 1)
        _exit(17);
    res.d_start = pi.start_offset;
    res.d_segments = pi.segments;
    if (write(fd, &res, sizeof res) != (ssize_t)sizeof res)
        _exit(18);
    _exit(klog_close(k) < 0 ? 19 : 0);
}

static int64_t value_seq(const klog_message *m)
{
    char v[16];
    size_t n = m->value_len < sizeof v - 1 ? m->value_len : sizeof v - 1;
    memcpy(v, m->value, n);
    v[n] = '\0';
    return strtoll(v, NULL, 10);
}

Test(readonly, tails_a_writer_process_across_rolls_retention_and_compaction)
{
    const char *env = getenv("KLOG_TEST_FOLLOW_SECONDS");
    int seconds = env && atoi(env) > 0 ? atoi(env) : 5;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        writer(ut_dir, seconds, fds[1]);
    }
    close(fds[1]);
    struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
    cr_assert_eq(poll(&pfd, 1, 60000), 1, "the writer never got ready");
    char ready;
    cr_assert_eq(read(fds[0], &ready, 1), 1);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);

    klog *k = open_ro(ut_dir);
    klog_consumer *c = ut_consumer(k, "fetch.max.bytes", "65536", NULL);
    cr_assert_eq(klog_consumer_assign(c, "d", 0, KLOG_OFFSET_BEGINNING), 0);
    cr_assert_eq(klog_consumer_assign(c, "c", 0, KLOG_OFFSET_BEGINNING), 0);
    wr_result res = { .n = -1 }, in;
    size_t got = 0;
    int64_t next_d = 0, last_c = -1, c_read = 0;
    int64_t deadline = ut_mono_ms() + (int64_t)seconds * 1000 + 120000;
    while (ut_mono_ms() < deadline && (res.n < 0 || next_d < res.n || last_c < res.n - 1)) {
        if (res.n < 0) {
            ssize_t r = read(fds[0], (char *)&in + got, sizeof in - got);
            if (r > 0 && (got += (size_t)r) == sizeof in)
                res = in;
            else if (r == 0)
                break; /* the writer died */
        }
        const klog_message *const *m;
        int n = klog_consumer_poll(c, 100, &m);
        cr_assert_geq(n, 0, "poll: %s", klog_err_name(n));
        for (int i = 0; i < n; i++) {
            int64_t v = value_seq(m[i]);
            if (!strcmp(m[i]->topic, "d")) {
                cr_assert_eq(v, next_d, "d: record %" PRId64 " where %" PRId64 " was due (offset %" PRId64 ")", v,
                             next_d, m[i]->offset);
                next_d++;
            } else {
                cr_assert_gt(v, last_c, "c: record %" PRId64 " (offset %" PRId64 ") after %" PRId64, v, m[i]->offset,
                             last_c);
                last_c = v;
                c_read++;
            }
        }
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the writer failed (status %d)", st);
    cr_assert_gt(res.n, 0, "no result from the writer");
    cr_assert_eq(next_d, res.n, "d: %" PRId64 " of %" PRId64 " records read", next_d, res.n);
    cr_assert_eq(last_c, res.n - 1, "c: the last record read is %" PRId64 " of %" PRId64, last_c, res.n);
    /* what the run was to go through did happen */
    cr_assert_gt(res.d_start, 0, "retention never deleted a segment of d");
    cr_assert_gt(res.c_clean, 0, "no cleaning pass swapped a segment of c");
    cr_log_info("%" PRId64 " records each; d starts at %" PRId64 " (%" PRId64 " segments); c cleaned below %" PRId64
                "; %" PRId64 " of c's records read", res.n, res.d_start, res.d_segments, res.c_clean, c_read);
    klog_consumer_close(c);
    cr_assert_eq(klog_close(k), 0);
    close(fds[0]);
}
