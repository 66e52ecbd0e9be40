/*
 * test/api/log_cb.c - klog_set_log_cb, klog_build_info and the statistics
 * files' stamp, through the public API (and libklog-testing's simulated
 * disk for the background fsync failure).
 *
 * The log callback: a failed background fsync (the interval sync of
 * flush.ms, on the fault backend) reaches it as it happens, once, with the
 * partition named; a statistics file that cannot be written reaches it
 * once; after klog_set_log_cb(k, NULL, NULL) nothing does.  The statistics
 * files carry their writer's pid, and klog_close removes them.
 */
#include "fault_util.h"

TestSuite(log_cb, .init = fu_setup, .fini = ut_rmdir, .timeout = 120);

typedef struct seen {
    pthread_mutex_t mu;
    int calls;
    int level, err;
    char facility[32], msg[1024];
} seen;

static void on_log(void *opaque, int level, int err, const char *facility, const char *msg)
{
    seen *s = opaque;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->level = level;
    s->err = err;
    snprintf(s->facility, sizeof s->facility, "%s", facility);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    pthread_mutex_unlock(&s->mu);
}

static int calls(seen *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->calls;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Wait (10 s at most) until s has n calls; returns the count. */
static int wait_calls(seen *s, int n)
{
    for (int i = 0; i < 1000 && calls(s) < n; i++)
        ut_sleep_ms(10);
    return calls(s);
}

Test(log_cb, arguments)
{
    cr_assert_eq(klog_set_log_cb(NULL, on_log, NULL), -EINVAL);
    cr_assert_eq(klog_set_log_cb(NULL, NULL, NULL), -EINVAL);
}

/* The interval sync (topic flush.ms) runs on the background thread; the
 * disk fails every fdatasync from now on: the partition turns read-only,
 * and the application hears it from the callback, without any call of its
 * own meeting the error. */
Test(log_cb, background_fsync_failure_reaches_the_callback_once)
{
    char dir[256];
    fu_sub(dir, sizeof dir, "fsync");
    klog_testing_fault *f = fu_fault();
    klog *k = fu_open_ok(dir, f);
    seen s = { .mu = PTHREAD_MUTEX_INITIALIZER };
    cr_assert_eq(klog_set_log_cb(k, on_log, &s), 0);
    ut_topic(k, "t", 1, "flush.ms", "20", NULL);
    klog_producer *p = ut_producer(k, "acks", "1", NULL);

    cr_assert_eq(klog_testing_fault_fail(f, KLOG_TESTING_OP_SYNC, 1, -EIO, KLOG_TESTING_FAIL_STICKY), 0);
    cr_assert_eq(ut_send(p, "t", 0, "k", "v"), 0); /* acks=1: acknowledged before any sync */
    cr_assert_eq(wait_calls(&s, 1), 1, "no callback after a failed background fsync");
    cr_assert_eq(s.level, KLOG_LOG_ERR);
    cr_assert_eq(s.err, -EIO, "err %s", klog_err_name(s.err));
    cr_assert_str_eq(s.facility, "fsync");
    cr_assert(strstr(s.msg, "t-0") && strstr(s.msg, "read-only"), "msg: %s", s.msg);

    /* Later ticks meet the same read-only log: not told again. */
    cr_assert_eq(ut_send(p, "t", 0, "k", "v2"), KLOG_EREADONLY);
    ut_sleep_ms(200);
    cr_assert_eq(calls(&s), 1, "told %d times; last: %s", calls(&s), s.msg);

    klog_producer_close(p);
    klog_testing_fault_clear(f);
    klog_close(k);
    klog_testing_fault_free(f);
}

/* acks=all: the appending thread's own fsync fails, under the log's append
 * lock; the line is handed to the background thread, which tells it with
 * no klog lock held.  The send's delivery report has the error too. */
Test(log_cb, appender_fsync_failure_is_told_from_the_background_thread)
{
    char dir[256];
    fu_sub(dir, sizeof dir, "appender");
    klog_testing_fault *f = fu_fault();
    klog *k = fu_open_ok(dir, f);
    seen s = { .mu = PTHREAD_MUTEX_INITIALIZER };
    cr_assert_eq(klog_set_log_cb(k, on_log, &s), 0);
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    cr_assert_eq(klog_testing_fault_fail(f, KLOG_TESTING_OP_SYNC, 1, -EIO, KLOG_TESTING_FAIL_STICKY), 0);
    cr_assert_eq(ut_send(p, "t", 0, "k", "v"), 0);
    int rc = klog_producer_flush(p, 10000);
    cr_assert_eq(rc, 0, "flush: %s", klog_err_name(rc));
    cr_assert_eq(wait_calls(&s, 1), 1, "no callback after an appender's failed fsync");
    cr_assert_str_eq(s.facility, "fsync");
    cr_assert_eq(s.err, -EIO, "err %s", klog_err_name(s.err));
    cr_assert(strstr(s.msg, "t-0"), "msg: %s", s.msg);
    klog_producer_close(p);
    klog_testing_fault_clear(f);
    klog_close(k);
    cr_assert_eq(calls(&s), 1, "told %d times", calls(&s));
    klog_testing_fault_free(f);
}

/* stats.json cannot be written (its temporary name is a directory): the
 * callback hears it once; stats.prom is still written, stamped with this
 * process's pid, and klog_close removes it.  A callback set to NULL hears
 * nothing more. */
Test(log_cb, stats_files_stamped_removed_and_failure_told)
{
    char dir[256], path[400];
    fu_sub(dir, sizeof dir, "stats");
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/stats.json.tmp", dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    klog *k = NULL;
    char err[256] = "";
    klog_conf *c = ut_conf("statistics.interval.ms", "20", NULL);
    int rc = klog_open(&k, dir, c, err, sizeof err);
    klog_conf_free(c);
    cr_assert_eq(rc, 0, "klog_open: %s", err);
    seen s = { .mu = PTHREAD_MUTEX_INITIALIZER };
    cr_assert_eq(klog_set_log_cb(k, on_log, &s), 0);

    cr_assert_eq(wait_calls(&s, 1), 1);
    cr_assert_str_eq(s.facility, "stats");
    cr_assert_eq(s.level, KLOG_LOG_WARNING);
    cr_assert_eq(s.err, -EISDIR, "err %s", klog_err_name(s.err));
    cr_assert(strstr(s.msg, "stats.json"), "msg: %s", s.msg);

    snprintf(path, sizeof path, "%s/stats.prom", dir);
    char *text = NULL;
    for (int i = 0; i < 1000 && !text; i++) {
        FILE *fp = fopen(path, "r");
        if (fp) {
            text = calloc(1, 1 << 16);
            cr_assert_not_null(text);
            size_t n = fread(text, 1, (1 << 16) - 1, fp);
            fclose(fp);
            if (n == 0) {
                free(text);
                text = NULL;
            }
        }
        if (!text)
            ut_sleep_ms(10);
    }
    cr_assert_not_null(text, "no %s", path);
    char want[64];
    snprintf(want, sizeof want, "\nklog_stats_file_writer_pid %lld\n", (long long)getpid());
    cr_assert(strstr(text, want), "%s has no %s", path, want + 1);
    cr_assert(strstr(text, "\nklog_stats_file_timestamp_seconds "), "no timestamp in %s", path);
    cr_assert(strstr(text, "\nklog_stats_file_interval_seconds 0.020\n"), "no interval in %s", path);
    free(text);

    ut_sleep_ms(200);
    cr_assert_eq(calls(&s), 1, "the same failure told %d times", calls(&s));
    cr_assert_eq(klog_set_log_cb(k, NULL, NULL), 0);
    int before = calls(&s);
    snprintf(path, sizeof path, "%s/stats.json.tmp", dir);
    cr_assert_eq(rmdir(path), 0);
    cr_assert_eq(mkdir(path, 0755), 0);
    ut_sleep_ms(100);
    cr_assert_eq(calls(&s), before, "a callback set to NULL was called");

    cr_assert_eq(klog_close(k), 0);
    snprintf(path, sizeof path, "%s/stats.prom", dir);
    cr_assert_neq(access(path, F_OK), 0, "%s left behind by klog_close", path);
}

/* A stats.json written normally carries its writer first. */
Test(log_cb, stats_json_stamp)
{
    char dir[256], path[400];
    fu_sub(dir, sizeof dir, "json");
    klog *k = NULL;
    char err[256] = "";
    klog_conf *c = ut_conf("statistics.interval.ms", "20", NULL);
    int rc = klog_open(&k, dir, c, err, sizeof err);
    klog_conf_free(c);
    cr_assert_eq(rc, 0, "klog_open: %s", err);
    snprintf(path, sizeof path, "%s/stats.json", dir);
    char head[256] = "";
    for (int i = 0; i < 1000 && !*head; i++) {
        FILE *fp = fopen(path, "r");
        if (fp) {
            size_t n = fread(head, 1, sizeof head - 1, fp);
            head[n] = '\0';
            fclose(fp);
        }
        if (!*head)
            ut_sleep_ms(10);
    }
    char want[64];
    snprintf(want, sizeof want, "{\"file\":{\"writer_pid\":%lld,\"written_ms\":", (long long)getpid());
    cr_assert(!strncmp(head, want, strlen(want)), "%s starts: %.80s", path, head);
    cr_assert_eq(klog_close(k), 0);
    cr_assert_neq(access(path, F_OK), 0, "%s left behind by klog_close", path);
}

Test(log_cb, build_info)
{
    const char *v = NULL, *bi = klog_build_info();
    klog_version(&v);
    cr_assert_not_null(bi);
    char want[64];
    snprintf(want, sizeof want, "version=%s git=", v);
    cr_assert(!strncmp(bi, want, strlen(want)), "klog_build_info: %s", bi);
    const char *keys[] = { " compiler=", " buildtype=", " uring=", " tls=yes", " mirror=", " rdkafka=" };
    const char *at = bi;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *h = strstr(at, keys[i]);
        cr_assert_not_null(h, "klog_build_info has no %s (in order): %s", keys[i], bi);
        at = h + 1;
    }
    cr_assert(strstr(bi, " uring=yes") || strstr(bi, " uring=no"), "%s", bi);
    cr_assert_null(strchr(bi, '@'), "an unsubstituted placeholder: %s", bi);
}
