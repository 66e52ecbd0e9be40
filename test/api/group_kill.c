/*
 * Committed offsets survive kill -9 (include/klog/group.h: "stores committed
 * offsets durably ... so they survive kill -9 and reopen"; an asynchronous
 * commit "survives the process dying").
 *
 * A child process opens the instance, consumes and commits, tells the
 * parent through a pipe what it committed once each commit call returned,
 * and is killed with SIGKILL while it still holds the instance open.  The
 * parent reopens the directory and finds those offsets; a new member of
 * the group resumes from them.  The child reports errors through the pipe:
 * assertions are for the parent only.
 */
#include "util.h"

#include <signal.h>
#include <sys/wait.h>

TestSuite(group_kill, .init = ut_mkdir, .fini = ut_rmdir, .timeout = 120);

#define NP 4
#define PER_PART 25

typedef struct report {
    int rc;              /* 0, or the first error in the child */
    int line;            /* where it happened */
    int64_t sync_off[NP];  /* group "gs": committed synchronously (positions) */
    int64_t async_off[NP]; /* group "ga": committed asynchronously (explicit) */
} report;

static void write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(3);
        b += w;
        n -= (size_t)w;
    }
}

/* Read exactly n bytes; false on end of file first. */
static bool read_all(int fd, void *p, size_t n)
{
    char *b = p;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

static klog_consumer *child_consumer(klog *k, const char *group, const char *max_poll)
{
    klog_conf *conf = NULL;
    if (klog_conf_new(&conf) != 0)
        return NULL;
    klog_conf_set(conf, "group.id", group, NULL, 0);
    klog_conf_set(conf, "auto.offset.reset", "earliest", NULL, 0);
    klog_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    klog_conf_set(conf, "max.poll.records", max_poll, NULL, 0);
    klog_consumer *c = NULL;
    int rc = klog_consumer_new(k, conf, &c, NULL, 0);
    klog_conf_free(conf);
    if (rc != 0)
        return NULL;
    const char *t = "t";
    if (klog_consumer_subscribe(c, &t, 1) != 0) {
        klog_consumer_close(c);
        return NULL;
    }
    return c;
}

static int assigned_count(klog_consumer *c)
{
    klog_partition_list *l = NULL;
    if (klog_consumer_assignment(c, &l) != 0)
        return -1;
    int n = (int)klog_partition_list_count(l);
    klog_partition_list_free(l);
    return n;
}

#define CHILD_CHECK(cond)                                                                                          \
    do {                                                                                                           \
        if (!(cond)) {                                                                                             \
            rep.rc = rep.rc ? rep.rc : -1;                                                                         \
            rep.line = __LINE__;                                                                                   \
            write_all(wfd, &rep, sizeof rep);                                                                      \
            _exit(2);                                                                                              \
        }                                                                                                          \
    } while (0)

/* The child: consume some of "t" in group "gs" and commit the positions
 * synchronously; join group "ga" and commit explicit offsets
 * asynchronously; report; wait to be killed. */
static void child_commits(int wfd)
{
    report rep;
    memset(&rep, 0, sizeof rep);
    /* the offsets topic gets several partitions: the parent, reopening
     * with the default (1), must read them all back */
    klog *k = NULL;
    klog_conf *conf = NULL;
    CHILD_CHECK(klog_conf_new(&conf) == 0);
    CHILD_CHECK(klog_conf_set(conf, "offsets.topic.num.partitions", "4", NULL, 0) == 0);
    rep.rc = klog_open(&k, ut_dir, conf, NULL, 0);
    klog_conf_free(conf);
    CHILD_CHECK(rep.rc == 0);
    klog_consumer *c = child_consumer(k, "gs", "7");
    CHILD_CHECK(c != NULL);
    int got = 0;
    int64_t give_up = ut_mono_ms() + 30000;
    while (got < 40 && ut_mono_ms() < give_up) {
        const klog_message *const *m;
        int n = klog_consumer_poll(c, 20, &m);
        rep.rc = n < 0 ? n : 0;
        CHILD_CHECK(n >= 0);
        got += n;
    }
    CHILD_CHECK(got >= 40 && assigned_count(c) == NP);
    rep.rc = klog_consumer_commit(c, NULL, 0); /* positions, fdatasync */
    CHILD_CHECK(rep.rc == 0);
    for (int p = 0; p < NP; p++) {
        rep.rc = klog_consumer_position(c, "t", p, &rep.sync_off[p]);
        CHILD_CHECK(rep.rc == 0);
    }

    klog_consumer *a = child_consumer(k, "ga", "500");
    CHILD_CHECK(a != NULL);
    give_up = ut_mono_ms() + 30000;
    while (assigned_count(a) < NP && ut_mono_ms() < give_up) {
        const klog_message *const *m;
        rep.rc = klog_consumer_poll(a, 20, &m);
        CHILD_CHECK(rep.rc >= 0);
        rep.rc = 0;
    }
    CHILD_CHECK(assigned_count(a) == NP);
    klog_partition_list *l = NULL;
    CHILD_CHECK(klog_partition_list_new(&l) == 0);
    for (int p = 0; p < NP; p++) {
        rep.async_off[p] = 3 + 5 * p;
        char meta[16];
        snprintf(meta, sizeof meta, "async-%d", p);
        CHILD_CHECK(klog_partition_list_add(l, "t", p, rep.async_off[p], meta) == 0);
    }
    rep.rc = klog_consumer_commit(a, l, 1);
    CHILD_CHECK(rep.rc == 0);
    write_all(wfd, &rep, sizeof rep);
    for (;;)
        pause(); /* killed here, the instance still open */
}

/* The child: commit offsets 1, 2, 3, ... of "t"/0 asynchronously as fast as
 * it can, writing each to the pipe once its commit returned. */
static void child_commit_loop(int wfd)
{
    report rep;
    memset(&rep, 0, sizeof rep);
    klog *k = NULL;
    rep.rc = klog_open(&k, ut_dir, NULL, NULL, 0);
    CHILD_CHECK(rep.rc == 0);
    klog_consumer *c = child_consumer(k, "gl", "500");
    CHILD_CHECK(c != NULL);
    int64_t give_up = ut_mono_ms() + 30000;
    while (assigned_count(c) < NP && ut_mono_ms() < give_up) {
        const klog_message *const *m;
        rep.rc = klog_consumer_poll(c, 20, &m);
        CHILD_CHECK(rep.rc >= 0);
        rep.rc = 0;
    }
    CHILD_CHECK(assigned_count(c) == NP);
    write_all(wfd, &rep, sizeof rep); /* ready */
    klog_partition_list *l = NULL;
    for (int64_t off = 1; off <= PER_PART; off++) {
        klog_partition_list_free(l);
        CHILD_CHECK(klog_partition_list_new(&l) == 0);
        CHILD_CHECK(klog_partition_list_add(l, "t", 0, off, NULL) == 0);
        rep.rc = klog_consumer_commit(c, l, 1);
        CHILD_CHECK(rep.rc == 0);
        write_all(wfd, &off, sizeof off);
    }
    for (;;)
        pause();
}

static void produce_all(void)
{
    klog *k = ut_open();
    ut_topic(k, "t", NP, NULL);
    klog_producer *p = ut_producer(k, NULL);
    for (int part = 0; part < NP; part++)
        for (int i = 0; i < PER_PART; i++) {
            char v[16];
            snprintf(v, sizeof v, "%d-%d", part, i);
            cr_assert_eq(ut_send(p, "t", part, NULL, v), 0);
        }
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(klog_close(k), 0); /* the child takes the directory's lock */
}

static pid_t spawn(void (*fn)(int), int *rfd)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        fn(fds[1]);
        _exit(4);
    }
    close(fds[1]);
    *rfd = fds[0];
    return pid;
}

static void kill9(pid_t pid)
{
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child ended on its own (status %#x)", st);
}

static void check_report(const report *rep)
{
    cr_assert_eq(rep->rc, 0, "child failed at line %d: %s", rep->line, klog_err_name(rep->rc));
}

Test(group_kill, commits_survive_kill9)
{
    produce_all();
    int rfd;
    pid_t pid = spawn(child_commits, &rfd);
    report rep;
    bool ok = read_all(rfd, &rep, sizeof rep);
    if (!ok)
        kill(pid, SIGKILL);
    cr_assert(ok, "the child died before reporting");
    close(rfd);
    kill9(pid);
    check_report(&rep);

    klog *k = ut_open();
    klog_partition_info pi[8];
    pi[0].struct_size = sizeof pi[0];
    cr_assert_eq(klog_topic_describe(k, "__consumer_offsets", pi, 8, NULL, 0), 4);
    int64_t sum = 0;
    for (int p = 0; p < NP; p++) {
        int64_t off = -5;
        cr_assert_eq(klog_group_committed(k, "gs", "t", p, &off), 0);
        cr_assert_eq(off, rep.sync_off[p], "gs partition %d: %" PRId64 " after kill -9, %" PRId64 " committed", p,
                     off, rep.sync_off[p]);
        sum += off;
        cr_assert_eq(klog_group_committed(k, "ga", "t", p, &off), 0);
        cr_assert_eq(off, rep.async_off[p], "ga partition %d: %" PRId64 " after kill -9, %" PRId64 " committed", p,
                     off, rep.async_off[p]);
    }
    cr_assert_geq(sum, 40);

    /* a new member of gs resumes from the committed offsets */
    klog_consumer *c = ut_consumer(k, "group.id", "gs", "auto.offset.reset", "earliest", NULL);
    const char *t = "t";
    cr_assert_eq(klog_consumer_subscribe(c, &t, 1), 0);
    size_t want = (size_t)(NP * PER_PART - sum), n = 0;
    ut_msg *got = ut_consume(c, want, &n);
    cr_assert_eq(n, want, "%zu records after the restart, %zu left", n, want);
    int64_t next[NP];
    for (int p = 0; p < NP; p++)
        next[p] = rep.sync_off[p];
    for (size_t i = 0; i < n; i++) {
        int p = got[i].partition;
        cr_assert_eq(got[i].offset, next[p], "partition %d: offset %" PRId64 ", expected %" PRId64, p,
                     got[i].offset, next[p]);
        next[p]++;
    }
    ut_msgs_free(got, n);
    /* the metadata of the asynchronous commit came through too */
    klog_consumer *a = ut_consumer(k, "group.id", "ga", NULL);
    char meta[32];
    int64_t off;
    cr_assert_eq(klog_consumer_committed(a, "t", 2, &off, meta, sizeof meta), 0);
    cr_assert_eq(off, rep.async_off[2]);
    cr_assert_str_eq(meta, "async-2");
    klog_consumer_close(a);
    klog_consumer_close(c);
    cr_assert_eq(klog_close(k), 0);
}

Test(group_kill, async_commit_stream_killed)
{
    produce_all();
    int rfd;
    pid_t pid = spawn(child_commit_loop, &rfd);
    report rep;
    bool ok = read_all(rfd, &rep, sizeof rep);
    if (!ok)
        kill(pid, SIGKILL);
    cr_assert(ok, "the child died before it was ready");
    check_report(&rep);
    /* kill it in the middle of its commits (or after, if it was quick) */
    int64_t last = 0, v;
    while (last < 5 && read_all(rfd, &v, sizeof v))
        last = v;
    kill9(pid);
    while (read_all(rfd, &v, sizeof v)) /* reports written before it died */
        last = v;
    close(rfd);
    cr_assert_geq(last, 5);
    klog *k = ut_open();
    int64_t off = -5;
    cr_assert_eq(klog_group_committed(k, "gl", "t", 0, &off), 0);
    /* everything reported is there; at most one more got in unreported */
    cr_assert(off == last || off == last + 1, "committed %" PRId64 " after kill -9, last reported %" PRId64, off,
              last);
    cr_assert_eq(klog_close(k), 0);
}
