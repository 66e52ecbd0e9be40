/*
 * examples/compaction.c - log compaction to watch: the README's example.
 * A compacted topic (cleanup.policy=compact) keeps the latest record of each
 * key.  This writes 3 keys 50 times each into small segments, waits for
 * the log cleaner to go over the sealed ones, and reads back what is left:
 * offsets unchanged, with gaps where older records of a key were.
 *
 *   compaction [DIR]     (default ./klog-compaction; re-created each run)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <klog/klog.h>

#define OK(call)                                                                      \
    do {                                                                              \
        int rc_ = (call);                                                             \
        if (rc_ < 0) {                                                                \
            fprintf(stderr, "%s: %s %s\n", #call, klog_strerror(rc_), err);           \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "./klog-compaction";
    char err[256] = "", cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir); /* a fresh directory each run */
    if (system(cmd) != 0)
        return 1;
    klog *k;
    klog_conf *ic, *tc;
    OK(klog_conf_new(&ic));
    OK(klog_conf_set(ic, "log.cleaner.backoff.ms", "50", err, sizeof err)); /* look for work often */
    OK(klog_open(&k, dir, ic, err, sizeof err));

    /* Small segments so that most of the log is sealed (the cleaner never
     * touches the active one), and clean as soon as anything is dirty. */
    OK(klog_conf_new(&tc));
    OK(klog_conf_set(tc, "cleanup.policy", "compact", err, sizeof err));
    OK(klog_conf_set(tc, "segment.bytes", "1024", err, sizeof err));
    OK(klog_conf_set(tc, "min.cleanable.dirty.ratio", "0.01", err, sizeof err));
    OK(klog_topic_create(k, "prices", 1, tc, err, sizeof err));

    klog_producer *p;
    OK(klog_producer_new(k, NULL, &p, err, sizeof err));
    static const char *const fruit[] = { "apple", "pear", "plum" };
    for (int i = 0; i < 150; i++) {
        char value[32];
        snprintf(value, sizeof value, "%d cents", 100 + i);
        klog_record r = KLOG_RECORD_INIT;
        r.key = fruit[i % 3];
        r.key_len = strlen(r.key);
        r.value = value;
        r.value_len = strlen(value);
        OK(klog_producer_send(p, "prices", &r));
        if (i % 10 == 9)
            OK(klog_producer_flush(p, 10000)); /* several batches, several segments */
    }
    OK(klog_producer_close(p));

    /* The cleaner runs on its own thread: wait (10 s at most) for a pass. */
    klog_partition_info pi = { .struct_size = sizeof pi };
    for (int i = 0; i < 1000; i++) {
        OK(klog_topic_describe(k, "prices", &pi, 1, NULL, 0));
        if (pi.clean_offset > 0)
            break;
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    }
    printf("wrote offsets 0..%lld; the cleaner compacted below offset %lld\n", (long long)pi.end_offset - 1,
           (long long)pi.clean_offset);
    if (pi.clean_offset <= 0)
        return 1;

    klog_consumer *c;
    OK(klog_consumer_new(k, NULL, &c, err, sizeof err));
    OK(klog_consumer_assign(c, "prices", 0, KLOG_OFFSET_BEGINNING));
    int kept = 0;
    for (int64_t lag = 1; lag > 0;) {
        const klog_message *const *m;
        int n = klog_consumer_poll(c, 1000, &m);
        OK(n);
        for (int i = 0; i < n; i++, kept++)
            if (m[i]->offset < pi.clean_offset) /* the compacted part: one record per key */
                printf("offset %3lld  %-5.*s %.*s\n", (long long)m[i]->offset, (int)m[i]->key_len,
                       (const char *)m[i]->key, (int)m[i]->value_len, (const char *)m[i]->value);
        OK(klog_consumer_lag(c, "prices", 0, &lag));
    }
    printf("%d of %lld records left\n", kept, (long long)pi.end_offset);
    OK(klog_consumer_close(c));
    klog_conf_free(tc);
    klog_conf_free(ic);
    return klog_close(k) < 0 || kept >= pi.end_offset;
}
