/*
 * The instance calls (klog_open, klog_close, klog_io_backend,
 * klog_disk_usage, klog_stats, klog_free) live in klog/instance.h, which
 * stands on its own: this file includes nothing else of klog's.
 */
#include <klog/instance.h>

#if defined(KLOG_TOPIC_H) || defined(KLOG_PRODUCER_H) || defined(KLOG_CONSUMER_H) || defined(KLOG_GROUP_H)
#error "klog/instance.h pulls in the topic, producer, consumer or group headers"
#endif

#include <criterion/criterion.h>
#include <sys/stat.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

Test(instance, calls_of_instance_h_alone)
{
    char dir[] = "/tmp/klog-instance-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char data[sizeof dir + 8];
    snprintf(data, sizeof data, "%s/data", dir);
    char err[256] = "";
    klog *k = NULL;
    cr_assert_eq(klog_open(&k, data, NULL, err, sizeof err), 0, "%s", err);
    const char *be = klog_io_backend(k);
    cr_assert(be && (!strcmp(be, "uring") || !strcmp(be, "posix")), "%s", be ? be : "(null)");
    uint64_t used = 1, budget = 1;
    cr_assert_eq(klog_disk_usage(k, &used, &budget), 0);
    /* no segment; the budget counts metadata too: the empty topics.meta a
     * new directory gets at its first open, by the blocks it takes */
    char meta[sizeof data + 16];
    snprintf(meta, sizeof meta, "%s/topics.meta", data);
    struct stat st;
    cr_assert_eq(stat(meta, &st), 0);
    cr_assert_eq(used, (uint64_t)st.st_blocks * 512, "an empty instance holds only its topics.meta (%llu bytes used)",
                 (unsigned long long)used);
    cr_assert_eq(budget, 0, "no disk.budget.bytes: no budget");
    char *doc = NULL;
    cr_assert_eq(klog_stats(k, KLOG_STATS_JSON, &doc), 0);
    cr_assert(doc && doc[0] == '{', "%s", doc ? doc : "(null)");
    klog_free(doc);
    klog_free(NULL);
    cr_assert_eq(klog_close(k), 0);
    cr_assert_eq(klog_close(NULL), 0);
    cr_assert_eq(nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS), 0);
}
