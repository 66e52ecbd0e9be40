/*
 * test/race/cleaner_start.c - regression (issue 19): klog__maint_start
 * counted the cleaner threads (ncleaners++) without maint_mu while the
 * cleaners it had already started read the count (being_cleaned), so two
 * cleaners could pick the same log with log.cleaner.threads > 1.  Now no
 * cleaner reads the count.
 *
 * A plain program on the public API, meant for ThreadSanitizer
 * (test/race/README), under which the old code fails (TSan exits 66): open
 * an instance with compacted partitions and sixteen cleaners, again and
 * again, so that the first cleaners look at the logs while the later ones
 * are still being started.  In every build it checks that the instance
 * opens and closes and keeps its records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/klog.h>

#define ROUNDS 20
#define RECORDS 200

static int fail(const char *what, int rc, const char *err)
{
    fprintf(stderr, "cleaner_start: %s: %s %s\n", what, klog_strerror(rc), err ? err : "");
    return 1;
}

int main(void)
{
    char dir[] = "/tmp/klog-race-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char err[256] = "";
    klog_conf *conf = NULL, *tc = NULL;
    klog *k = NULL;
    int rc = klog_conf_new(&conf);
    if (rc == 0)
        rc = klog_conf_set(conf, "log.cleaner.threads", "16", err, sizeof err);
    if (rc == 0)
        rc = klog_conf_set(conf, "log.cleaner.backoff.ms", "1", err, sizeof err);
    if (rc == 0)
        rc = klog_conf_set(conf, "io.backend", "posix", err, sizeof err); /* TSan does not see ring writes */
    if (rc == 0)
        rc = klog_conf_new(&tc);
    if (rc == 0)
        rc = klog_conf_set(tc, "cleanup.policy", "compact", err, sizeof err);
    if (rc == 0)
        rc = klog_conf_set(tc, "segment.bytes", "1024", err, sizeof err);
    if (rc == 0)
        rc = klog_open(&k, dir, conf, err, sizeof err);
    if (rc == 0)
        rc = klog_topic_create(k, "c", 4, tc, err, sizeof err);
    if (rc != 0)
        return fail("set-up", rc, err);
    klog_producer *p = NULL;
    if ((rc = klog_producer_new(k, NULL, &p, err, sizeof err)) != 0)
        return fail("producer", rc, err);
    for (int i = 0; i < RECORDS; i++) {
        char key[16], val[64];
        snprintf(key, sizeof key, "k%d", i % 10);
        snprintf(val, sizeof val, "value %d", i);
        klog_record r = KLOG_RECORD_INIT;
        r.partition = i % 4;
        r.key = key;
        r.key_len = strlen(key);
        r.value = val;
        r.value_len = strlen(val);
        if ((rc = klog_producer_send(p, "c", &r)) != 0)
            return fail("send", rc, NULL);
    }
    if ((rc = klog_producer_flush(p, 30000)) != 0 || (rc = klog_producer_close(p)) != 0 ||
        (rc = klog_close(k)) != 0)
        return fail("fill", rc, NULL);
    for (int round = 0; round < ROUNDS; round++) {
        if ((rc = klog_open(&k, dir, conf, err, sizeof err)) != 0)
            return fail("open", rc, err);
        klog_partition_info pi[4];
        for (int i = 0; i < 4; i++)
            pi[i].struct_size = sizeof pi[i];
        int n = klog_topic_describe(k, "c", pi, 4, NULL, 0);
        if (n != 4 || pi[0].end_offset != RECORDS / 4)
            return fail("describe", n < 0 ? n : 0, "partitions or offsets changed");
        if ((rc = klog_close(k)) != 0)
            return fail("close", rc, NULL);
    }
    klog_conf_free(conf);
    klog_conf_free(tc);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    printf("cleaner_start: %d opens with 16 cleaners: ok\n", ROUNDS);
    return 0;
}
