/*
 * examples/quickstart.c - the README's code example, built and run by the
 * test suite: open a data directory, create a topic, produce a few records
 * with keys and headers, read them back.
 *
 *   quickstart [DIR]     (default ./klog-quickstart)
 */
#include <stdio.h>
#include <string.h>

#include <klog/klog.h>

#define CHECK(call)                                                                  \
    do {                                                                             \
        int rc_ = (call);                                                            \
        if (rc_ < 0) {                                                               \
            fprintf(stderr, "%s: %s (%s)\n", #call, klog_strerror(rc_), klog_err_name(rc_)); \
            return 1;                                                                \
        }                                                                            \
    } while (0)

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "./klog-quickstart";
    char err[256];
    klog *k;
    if (klog_open(&k, dir, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "klog_open: %s\n", err);
        return 1;
    }
    int rc = klog_topic_create(k, "greetings", 2, NULL, err, sizeof err);
    if (rc < 0 && rc != -EEXIST) {
        fprintf(stderr, "klog_topic_create: %s\n", err);
        return 1;
    }

    /* Produce: acks=all means each record is acknowledged once on disk. */
    klog_conf *conf;
    CHECK(klog_conf_new(&conf));
    CHECK(klog_conf_set(conf, "acks", "all", err, sizeof err));
    CHECK(klog_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err));
    klog_producer *p;
    CHECK(klog_producer_new(k, conf, &p, err, sizeof err));
    const char *names[] = { "ada", "grace", "edsger" };
    int64_t before[2];
    klog_partition_info pi[2] = { { .struct_size = sizeof pi[0] }, { .struct_size = sizeof pi[1] } };
    CHECK(klog_topic_describe(k, "greetings", pi, 2, NULL, 0));
    before[0] = pi[0].end_offset;
    before[1] = pi[1].end_offset;
    for (int i = 0; i < 3; i++) {
        char value[64];
        int n = snprintf(value, sizeof value, "hello, %s", names[i]);
        klog_header h = { "lang", 4, "en", 2 };
        klog_record r = KLOG_RECORD_INIT;
        r.key = names[i];
        r.key_len = strlen(names[i]);
        r.value = value;
        r.value_len = (size_t)n;
        r.headers = &h;
        r.header_count = 1;
        CHECK(klog_producer_send(p, "greetings", &r));
    }
    CHECK(klog_producer_flush(p, 10000));
    CHECK(klog_producer_close(p));

    /* Consume this run's records from both partitions. */
    klog_consumer *c;
    CHECK(klog_consumer_new(k, conf, &c, err, sizeof err));
    CHECK(klog_consumer_assign(c, "greetings", 0, before[0]));
    CHECK(klog_consumer_assign(c, "greetings", 1, before[1]));
    int seen = 0;
    while (seen < 3) {
        const klog_message *const *msgs; /* pointers to views, valid until the next poll */
        int n = klog_consumer_poll(c, 1000, &msgs);
        CHECK(n);
        if (n == 0)
            break;
        for (int i = 0; i < n; i++, seen++) {
            const klog_message *m = msgs[i];
            const char *hk;
            const void *hv;
            size_t hkl, hvl;
            CHECK(klog_message_header(m, 0, &hk, &hkl, &hv, &hvl));
            printf("%s[%d]@%lld  key=%.*s  value=%.*s  %.*s=%.*s\n", m->topic, m->partition,
                   (long long)m->offset, (int)m->key_len, (const char *)m->key, (int)m->value_len,
                   (const char *)m->value, (int)hkl, hk, (int)hvl, (const char *)hv);
        }
    }
    CHECK(klog_consumer_close(c));
    klog_conf_free(conf);
    CHECK(klog_close(k));
    if (seen != 3) {
        fprintf(stderr, "quickstart: read %d of 3 records\n", seen);
        return 1;
    }
    return 0;
}
