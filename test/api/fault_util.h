/*
 * test/api/fault_util.h - helpers of the tests that run the public API on
 * libklog-testing's simulated disk (klog/testing.h).
 *
 * Public API only: these tests link libklog.so and libklog-testing.so and
 * nothing under lib/.  Built on util.h (its scratch directory, confs,
 * delivery collector and reader); the scratch directory goes on /dev/shm
 * where there is one, since the power-cut tests open, sync and recover an
 * instance hundreds of times.  Assertions on the test's main thread only.
 */
#ifndef KLOG_TEST_API_FAULT_UTIL_H
#define KLOG_TEST_API_FAULT_UTIL_H

#include <sys/stat.h>

#include "util.h"

#include <klog/testing.h>

/* util.h's scratch directory, on tmpfs when there is one. */
static inline void fu_setup(void)
{
    struct stat sb;
    bool shm = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0;
    snprintf(ut_dir, sizeof ut_dir, "%s/klog-fault-XXXXXX", shm ? "/dev/shm" : "/tmp");
    cr_assert_not_null(mkdtemp(ut_dir), "mkdtemp %s: %s", ut_dir, strerror(errno));
}

/* out = ut_dir/name, emptied. */
static inline void fu_sub(char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/%s", ut_dir, name);
    cr_assert(n > 0 && (size_t)n < size);
    struct stat sb;
    if (stat(out, &sb) == 0)
        cr_assert_eq(nftw(out, ut_rm_one, 16, FTW_DEPTH | FTW_PHYS), 0, "removing %s", out);
}

static inline klog_testing_fault *fu_fault(void)
{
    klog_testing_fault *f = NULL;
    cr_assert_eq(klog_testing_fault_new(&f), 0);
    cr_assert_not_null(f);
    return f;
}

/* klog_open of dir on f (f NULL: the shipped backends); returns the code,
 * *out NULL on failure.  Instance keys: pairs, NULL-terminated. */
static inline int fu_open(klog **out, const char *dir, klog_testing_fault *f, char *err, size_t errsize, ...)
{
    va_list ap;
    va_start(ap, errsize);
    klog_conf *c = ut_vconf(ap);
    va_end(ap);
    cr_assert_eq(klog_testing_conf_set_fault(c, f), 0);
    int rc = klog_open(out, dir, c, err, errsize);
    klog_conf_free(c);
    return rc;
}

/* As fu_open, asserting success. */
static inline klog *fu_open_ok(const char *dir, klog_testing_fault *f)
{
    klog *k = NULL;
    char err[256] = "";
    int rc = fu_open(&k, dir, f, err, sizeof err, NULL);
    cr_assert_eq(rc, 0, "klog_open %s: %s (%s)", dir, klog_err_name(rc), err);
    return k;
}

/* Every record of topic/partition from its start offset to its end, in
 * order (none if the topic does not exist: *exists false). */
static inline ut_msg *fu_read_all(klog *k, const char *topic, int32_t part, size_t *n, bool *exists)
{
    klog_partition_info pi[16];
    for (size_t i = 0; i < 16; i++)
        pi[i].struct_size = sizeof pi[i];
    int np = klog_topic_describe(k, topic, pi, 16, NULL, 0);
    *n = 0;
    *exists = np != KLOG_EUNKNOWN_TOPIC;
    if (!*exists)
        return NULL;
    cr_assert_gt(np, part, "describe %s: %s", topic, klog_err_name(np));
    int64_t want = pi[part].end_offset - pi[part].start_offset;
    cr_assert_geq(want, 0);
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", NULL);
    cr_assert_eq(klog_consumer_assign(c, topic, part, KLOG_OFFSET_BEGINNING), 0);
    ut_msg *m = ut_consume(c, (size_t)want, n);
    cr_assert_eq(klog_consumer_close(c), 0);
    cr_assert_eq((int64_t)*n, want, "%s-%d: read %zu records, start %lld end %lld", topic, part, *n,
                 (long long)pi[part].start_offset, (long long)pi[part].end_offset);
    return m;
}

#endif /* KLOG_TEST_API_FAULT_UTIL_H */
