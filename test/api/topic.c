/* The instance and topic administration, through the public API only. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <klog/klog.h>

static char dir[256];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof dir, "/tmp/klog-topic-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(topic, .init = mkdir_tmp, .fini = rm_tmp);

static klog *open_ok(void)
{
    klog *k = NULL;
    char err[256] = "";
    int rc = klog_open(&k, dir, NULL, err, sizeof err);
    cr_assert_eq(rc, 0, "klog_open: %s (%s)", klog_strerror(rc), err);
    cr_assert_not_null(k);
    return k;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int count_topics(klog *k)
{
    char **names;
    size_t n;
    cr_assert_eq(klog_topic_list(k, &names, &n), 0);
    klog_topic_list_free(names, n);
    return (int)n;
}

Test(topic, create_list_describe_delete)
{
    klog *k = open_ok();
    cr_assert(strcmp(klog_io_backend(k), "uring") == 0 || strcmp(klog_io_backend(k), "posix") == 0);
    cr_assert_eq(klog_topic_create(k, "orders", 3, NULL, NULL, 0), 0);
    cr_assert_eq(klog_topic_create(k, "audit.log_v2", 1, NULL, NULL, 0), 0);
    char **names;
    size_t n;
    cr_assert_eq(klog_topic_list(k, &names, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "audit.log_v2"); /* sorted */
    cr_assert_str_eq(names[1], "orders");
    klog_topic_list_free(names, n);

    cr_assert_eq(klog_topic_describe(k, "orders", NULL, 0, NULL, 0), 3);
    klog_partition_info pi[3];
    for (int i = 0; i < 3; i++)
        pi[i].struct_size = sizeof pi[i];
    cr_assert_eq(klog_topic_describe(k, "orders", pi, 3, NULL, 0), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pi[i].partition, i);
        cr_assert_eq(pi[i].start_offset, 0);
        cr_assert_eq(pi[i].end_offset, 0);
        cr_assert_eq(pi[i].segments, 1);
        cr_assert_eq(pi[i].error, 0);
    }
    cr_assert_eq(klog_topic_create(k, "orders", 1, NULL, NULL, 0), -EEXIST);
    cr_assert_eq(klog_topic_delete(k, "orders"), 0);
    cr_assert_eq(klog_topic_describe(k, "orders", NULL, 0, NULL, 0), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(klog_topic_delete(k, "orders"), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(count_topics(k), 1);
    /* the name is free again at once */
    cr_assert_eq(klog_topic_create(k, "orders", 2, NULL, NULL, 0), 0);
    cr_assert_eq(klog_topic_describe(k, "orders", NULL, 0, NULL, 0), 2);
    cr_assert_eq(klog_close(k), 0);
}

/* The instance's topic table grows past its first allocation (8) and twice
 * more, and stays sorted by name, when topics are created out of order and
 * when they are read back at open. */
Test(topic, many_topics_grow_the_table_and_stay_sorted)
{
    enum { NT = 40 };
    klog *k = open_ok();
    for (int i = 0; i < NT; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%02d", (i * 17) % NT); /* a permutation of 0..NT-1 */
        cr_assert_eq(klog_topic_create(k, name, 1, NULL, NULL, 0), 0, "%s", name);
    }
    for (int round = 0; round < 2; round++) {
        char **names;
        size_t n;
        cr_assert_eq(klog_topic_list(k, &names, &n), 0);
        cr_assert_eq(n, NT, "round %d", round);
        for (int i = 0; i < NT; i++) {
            char want[16];
            snprintf(want, sizeof want, "t%02d", i);
            cr_assert_str_eq(names[i], want, "round %d", round);
            cr_assert_eq(klog_topic_describe(k, want, NULL, 0, NULL, 0), 1, "%s", want);
        }
        klog_topic_list_free(names, n);
        cr_assert_eq(klog_close(k), 0);
        if (round == 0)
            k = open_ok();
    }
}

Test(topic, metadata_and_config_survive_reopen)
{
    klog *k = open_ok();
    klog_conf *tc;
    cr_assert_eq(klog_conf_new(&tc), 0);
    cr_assert_eq(klog_conf_set(tc, "segment.bytes", "1048576", NULL, 0), 0);
    cr_assert_eq(klog_conf_set(tc, "cleanup.policy", "compact", NULL, 0), 0);
    cr_assert_eq(klog_topic_create(k, "sensors", 4, tc, NULL, 0), 0);
    klog_conf_free(tc);
    cr_assert_eq(klog_topic_create(k, "gone", 2, NULL, NULL, 0), 0);
    cr_assert_eq(klog_topic_delete(k, "gone"), 0);
    cr_assert_eq(klog_topic_add_partitions(k, "sensors", 6), 0);
    cr_assert_eq(klog_close(k), 0);

    k = open_ok();
    cr_assert_eq(count_topics(k), 1);
    char cfg[512];
    cr_assert_eq(klog_topic_describe(k, "sensors", NULL, 0, cfg, sizeof cfg), 6);
    cr_assert(strstr(cfg, "segment.bytes=1048576\n") != NULL, "%s", cfg);
    cr_assert(strstr(cfg, "cleanup.policy=compact\n") != NULL, "%s", cfg);
    cr_assert_eq(klog_topic_describe(k, "gone", NULL, 0, NULL, 0), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(klog_close(k), 0);
    /* the deleted topic's directories are gone from disk */
    char p[400];
    struct stat st;
    snprintf(p, sizeof p, "%s/gone-0", dir);
    cr_assert_neq(stat(p, &st), 0);
    snprintf(p, sizeof p, "%s/sensors-5", dir);
    cr_assert_eq(stat(p, &st), 0);
}

Test(topic, bad_names_are_rejected)
{
    klog *k = open_ok();
    char longname[300];
    memset(longname, 'a', 250);
    longname[250] = '\0';
    const char *bad[] = { "", ".", "..", "a/b", "with space", "tab\t", "uni\xc3\xa9", longname, "a:b", "star*" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[300] = "";
        cr_assert_eq(klog_topic_create(k, bad[i], 1, NULL, err, sizeof err), KLOG_EBADNAME, "%s", bad[i]);
        cr_assert(strstr(err, "invalid topic name") != NULL);
        cr_assert_eq(klog_topic_delete(k, bad[i]), KLOG_EBADNAME);
    }
    cr_assert_eq(klog_topic_create(k, NULL, 1, NULL, NULL, 0), KLOG_EBADNAME);
    longname[249] = '\0';
    cr_assert_eq(klog_topic_create(k, longname, 1, NULL, NULL, 0), 0, "249 characters are allowed");
    cr_assert_eq(count_topics(k), 1);
    klog_close(k);
}

Test(topic, bad_arguments_and_config)
{
    klog *k = open_ok();
    cr_assert_eq(klog_topic_create(k, "t", -1, NULL, NULL, 0), -EINVAL);
    cr_assert_eq(klog_topic_create(k, "t", 10001, NULL, NULL, 0), -EINVAL);
    klog_conf *pc;
    klog_conf_new(&pc);
    cr_assert_eq(klog_conf_set(pc, "linger.ms", "1", NULL, 0), 0);
    char err[256] = "";
    cr_assert_eq(klog_topic_create(k, "t", 1, pc, err, sizeof err), KLOG_ECONF);
    cr_assert(strstr(err, "linger.ms") != NULL, "%s", err);
    klog_conf_free(pc);
    cr_assert_eq(klog_topic_create(NULL, "t", 1, NULL, NULL, 0), -EINVAL);
    cr_assert_eq(klog_topic_create(k, "t", 0, NULL, NULL, 0), 0); /* 0 = num.partitions */
    cr_assert_eq(klog_topic_describe(k, "t", NULL, 0, NULL, 0), 1);
    cr_assert_eq(klog_topic_add_partitions(k, "t", 1), -EINVAL);
    cr_assert_eq(klog_topic_add_partitions(k, "nope", 3), KLOG_EUNKNOWN_TOPIC);
    klog_partition_info pi = { .struct_size = 4 };
    cr_assert_eq(klog_topic_describe(k, "t", &pi, 1, NULL, 0), -EINVAL);
    cr_assert_eq(klog_topic_list(k, NULL, NULL), -EINVAL);
    cr_assert_eq(klog_close(NULL), 0);
    klog_close(k);
    klog *k2 = (klog *)1;
    cr_assert_eq(klog_open(&k2, "", NULL, NULL, 0), -EINVAL);
    cr_assert_null(k2);
    cr_assert_eq(klog_open(NULL, dir, NULL, NULL, 0), -EINVAL);
}

Test(topic, second_writer_is_refused)
{
    klog *k = open_ok();
    klog *k2 = NULL;
    char err[256] = "";
    cr_assert_eq(klog_open(&k2, dir, NULL, err, sizeof err), KLOG_ELOCKED);
    cr_assert_null(k2);
    cr_assert(strstr(err, "locked") != NULL, "%s", err);
    klog_close(k);
    k2 = open_ok(); /* free again once closed */
    klog_close(k2);
}

Test(topic, two_instances_do_not_interfere)
{
    char dir2[300];
    snprintf(dir2, sizeof dir2, "%s/second", dir);
    klog *a = open_ok(), *b = NULL;
    cr_assert_eq(klog_open(&b, dir2, NULL, NULL, 0), 0);
    cr_assert_eq(klog_topic_create(a, "x", 2, NULL, NULL, 0), 0);
    cr_assert_eq(klog_topic_create(b, "x", 5, NULL, NULL, 0), 0);
    cr_assert_eq(klog_topic_describe(a, "x", NULL, 0, NULL, 0), 2);
    cr_assert_eq(klog_topic_describe(b, "x", NULL, 0, NULL, 0), 5);
    cr_assert_eq(klog_topic_delete(b, "x"), 0);
    cr_assert_eq(klog_topic_describe(a, "x", NULL, 0, NULL, 0), 2);
    cr_assert_eq(klog_close(b), 0);
    cr_assert_eq(klog_close(a), 0);
}

Test(topic, io_backend_can_be_forced)
{
    klog_conf *c;
    klog_conf_new(&c);
    cr_assert_eq(klog_conf_set(c, "io.backend", "posix", NULL, 0), 0);
    klog *k;
    cr_assert_eq(klog_open(&k, dir, c, NULL, 0), 0);
    cr_assert_str_eq(klog_io_backend(k), "posix");
    klog_close(k);
    klog_conf_free(c);
}

Test(topic, damaged_metadata_is_reported_not_ignored)
{
    klog *k = open_ok();
    cr_assert_eq(klog_topic_create(k, "t", 1, NULL, NULL, 0), 0);
    klog_close(k);
    char p[400];
    snprintf(p, sizeof p, "%s/topics.meta", dir);
    FILE *f = fopen(p, "r+");
    cr_assert_not_null(f);
    fseek(f, 20, SEEK_SET);
    fputc('Z', f);
    fclose(f);
    k = NULL;
    char err[256] = "";
    cr_assert_eq(klog_open(&k, dir, NULL, err, sizeof err), KLOG_ECORRUPT);
    cr_assert(strstr(err, "topics.meta") != NULL, "%s", err);
    cr_assert_null(k);
}

/* klog_topic_alter_config: set and unset keys, recorded in the metadata,
 * applied to live partitions (segment.bytes here: new segments are
 * smaller), refused for bad keys without changing anything. */
Test(topic, alter_config)
{
    klog *k = open_ok();
    klog_conf *tc;
    cr_assert_eq(klog_conf_new(&tc), 0);
    cr_assert_eq(klog_conf_set(tc, "retention.ms", "86400000", NULL, 0), 0);
    cr_assert_eq(klog_topic_create(k, "alt", 1, tc, NULL, 0), 0);
    klog_conf_free(tc);

    /* set segment.bytes small, unset retention.ms */
    cr_assert_eq(klog_conf_new(&tc), 0);
    cr_assert_eq(klog_conf_set(tc, "segment.bytes", "4096", NULL, 0), 0);
    const char *unset[] = { "retention.ms" };
    char err[256] = "";
    cr_assert_eq(klog_topic_alter_config(k, "alt", tc, unset, 1, err, sizeof err), 0, "%s", err);
    klog_conf_free(tc);
    char cfg[512];
    cr_assert_eq(klog_topic_describe(k, "alt", NULL, 0, cfg, sizeof cfg), 1);
    cr_assert(strstr(cfg, "segment.bytes=4096\n") && !strstr(cfg, "retention.ms"), "%s", cfg);

    /* the live partition rolls at the new size */
    klog_producer *p = NULL;
    cr_assert_eq(klog_producer_new(k, NULL, &p, NULL, 0), 0);
    char v[200];
    memset(v, 'v', sizeof v);
    for (int i = 0; i < 200; i++) {
        klog_record r = { .struct_size = sizeof r, .partition = 0, .value = v, .value_len = sizeof v };
        cr_assert_eq(klog_producer_send(p, "alt", &r), 0);
        cr_assert_eq(klog_producer_flush(p, -1), 0); /* one batch per record */
    }
    cr_assert_eq(klog_producer_close(p), 0);
    klog_partition_info pi = { .struct_size = sizeof pi };
    cr_assert_eq(klog_topic_describe(k, "alt", &pi, 1, NULL, 0), 1);
    cr_assert_gt(pi.segments, 5, "segments: %u", pi.segments);

    /* a bad key, a key of another object, an unknown topic: nothing changes */
    cr_assert_eq(klog_conf_new(&tc), 0);
    cr_assert_eq(klog_conf_set(tc, "linger.ms", "7", NULL, 0), 0);
    err[0] = '\0';
    cr_assert_eq(klog_topic_alter_config(k, "alt", tc, NULL, 0, err, sizeof err), KLOG_ECONF);
    cr_assert(strstr(err, "linger.ms"), "%s", err);
    klog_conf_free(tc);
    const char *bad[] = { "no.such.key" };
    cr_assert_eq(klog_topic_alter_config(k, "alt", NULL, bad, 1, err, sizeof err), KLOG_ECONF);
    cr_assert(strstr(err, "no.such.key"), "%s", err);
    cr_assert_eq(klog_topic_alter_config(k, "nope", NULL, NULL, 0, NULL, 0), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(klog_topic_alter_config(k, "bad name", NULL, NULL, 0, NULL, 0), KLOG_EBADNAME);
    cr_assert_eq(klog_topic_alter_config(NULL, "alt", NULL, NULL, 0, NULL, 0), -EINVAL);
    cr_assert_eq(klog_close(k), 0);

    /* recorded: survives reopen */
    k = open_ok();
    cr_assert_eq(klog_topic_describe(k, "alt", NULL, 0, cfg, sizeof cfg), 1);
    cr_assert(strstr(cfg, "segment.bytes=4096\n") && !strstr(cfg, "retention.ms"), "%s", cfg);
    cr_assert_eq(klog_close(k), 0);
}

/* Raising max.message.bytes on a live topic: the partitions take the larger
 * batches at once (their active segment is mapped for them). */
Test(topic, alter_max_message_bytes_up)
{
    klog *k = open_ok();
    klog_conf *tc;
    cr_assert_eq(klog_conf_new(&tc), 0);
    cr_assert_eq(klog_conf_set(tc, "max.message.bytes", "2000", NULL, 0), 0);
    cr_assert_eq(klog_conf_set(tc, "segment.bytes", "65536", NULL, 0), 0);
    cr_assert_eq(klog_topic_create(k, "big", 1, tc, NULL, 0), 0);
    klog_conf_free(tc);
    static char v[150000];
    memset(v, 'x', sizeof v);
    klog_producer *p = NULL;
    cr_assert_eq(klog_producer_new(k, NULL, &p, NULL, 0), 0);
    klog_record r = { .struct_size = sizeof r, .partition = 0, .value = v, .value_len = 1000 };
    cr_assert_eq(klog_producer_send(p, "big", &r), 0); /* a small one: the segment is not empty */
    r.value_len = sizeof v;
    cr_assert_eq(klog_producer_send(p, "big", &r), KLOG_ETOOBIG);
    cr_assert_eq(klog_producer_close(p), 0);

    cr_assert_eq(klog_conf_new(&tc), 0);
    cr_assert_eq(klog_conf_set(tc, "max.message.bytes", "200000", NULL, 0), 0);
    cr_assert_eq(klog_topic_alter_config(k, "big", tc, NULL, 0, NULL, 0), 0);
    klog_conf_free(tc);
    cr_assert_eq(klog_producer_new(k, NULL, &p, NULL, 0), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(klog_producer_send(p, "big", &r), 0);
    cr_assert_eq(klog_producer_close(p), 0, "the partitions take the larger records");

    klog_consumer *c = NULL;
    cr_assert_eq(klog_consumer_new(k, NULL, &c, NULL, 0), 0);
    cr_assert_eq(klog_consumer_assign(c, "big", 0, KLOG_OFFSET_BEGINNING), 0);
    size_t got = 0, big = 0;
    for (int i = 0; i < 200 && got < 4; i++) {
        const klog_message *const *m;
        int n = klog_consumer_poll(c, 50, &m);
        cr_assert_geq(n, 0, "%s", klog_strerror(n));
        for (int j = 0; j < n; j++, got++)
            big += m[j]->value_len == sizeof v && m[j]->value && ((const char *)m[j]->value)[sizeof v - 1] == 'x';
    }
    cr_assert_eq(got, 4);
    cr_assert_eq(big, 3);
    klog_consumer_close(c);
    cr_assert_eq(klog_close(k), 0);
}

/* ---- compression.type of a topic ------------------------------------------------ */

/* The codec bits of every batch in topic-0's segment files, in file order
 * (klog-format(5): a 65-byte header, little-endian; length at 8 counting
 * from byte 12, attributes at 25, codec in bits 0-2); returns how many. */
static size_t batch_codecs(const char *topic, int *codecs, size_t max)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s-0", dir, topic);
    DIR *d = opendir(path);
    cr_assert_not_null(d, "opendir %s: %s", path, strerror(errno));
    char *names[64];
    size_t nn = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".log") && nn < 64)
            names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);
    size_t n = 0;
    for (size_t i = 0; i < nn; i++) {
        char f[1100];
        snprintf(f, sizeof f, "%s/%s", path, names[i]);
        free(names[i]);
        FILE *fp = fopen(f, "rb");
        cr_assert_not_null(fp, "%s: %s", f, strerror(errno));
        uint8_t h[65];
        for (long at = 0; fseek(fp, at, SEEK_SET) == 0 && fread(h, 1, sizeof h, fp) == sizeof h;) {
            uint32_t len = (uint32_t)h[11] << 24 | (uint32_t)h[10] << 16 | (uint32_t)h[9] << 8 | h[8];
            if (len == 0)
                break; /* a zeroed tail, not a batch */
            if (n < max)
                codecs[n++] = h[25] & 7;
            at += 12 + (long)len;
        }
        fclose(fp);
    }
    return n;
}

/* 50 records of a compressible 400-byte value, then flush: one batch. */
static void send_batch(klog_producer *p, const char *topic)
{
    char v[400];
    for (size_t i = 0; i < sizeof v; i++)
        v[i] = "compressible "[i % 13];
    for (int i = 0; i < 50; i++) {
        klog_record r = { .struct_size = sizeof r, .partition = 0, .value = v, .value_len = sizeof v };
        cr_assert_eq(klog_producer_send(p, topic, &r), 0);
    }
    cr_assert_eq(klog_producer_flush(p, -1), 0);
}

static klog_conf *conf_of(const char *key, const char *value)
{
    klog_conf *c = NULL;
    char err[256] = "";
    cr_assert_eq(klog_conf_new(&c), 0);
    cr_assert_eq(klog_conf_set(c, key, value, err, sizeof err), 0, "%s=%s: %s", key, value, err);
    return c;
}

/* As on a Kafka broker: a topic that names a codec gets its batches in that
 * codec whatever the producer asked for; "producer" (or nothing) keeps the
 * producer's; an alter applies from the next batch; a producer refuses
 * "producer". */
Test(topic, compression_type_of_the_topic_decides_over_the_producers)
{
    klog *k = open_ok();
    static const struct {
        const char *topic, *value; /* value NULL: not set */
        int want;                  /* codec bits with an lz4 producer */
    } cases[] = {
        { "tz", "zstd", 4 }, { "tl", "lz4", 3 }, { "tn", "uncompressed", 0 }, { "tnone", "none", 0 },
        { "tp", "producer", 3 }, { "tdefault", NULL, 3 }, { "tg", "gzip", 1 }, { "ts", "snappy", 2 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        klog_conf *tc = cases[i].value ? conf_of("compression.type", cases[i].value) : NULL;
        char err[256] = "";
        cr_assert_eq(klog_topic_create(k, cases[i].topic, 1, tc, err, sizeof err), 0, "%s", err);
        klog_conf_free(tc);
    }
    klog_conf *pc = conf_of("compression.type", "lz4");
    cr_assert_eq(klog_conf_set(pc, "linger.ms", "900000", NULL, 0), 0);
    klog_producer *p = NULL;
    cr_assert_eq(klog_producer_new(k, pc, &p, NULL, 0), 0);
    klog_conf_free(pc);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        send_batch(p, cases[i].topic);

    /* alter: zstd from the next batch on; unset: the producer's again */
    klog_conf *ac = conf_of("compression.type", "zstd");
    char err[256] = "";
    cr_assert_eq(klog_topic_alter_config(k, "tdefault", ac, NULL, 0, err, sizeof err), 0, "%s", err);
    klog_conf_free(ac);
    send_batch(p, "tdefault");
    const char *unset[] = { "compression.type" };
    cr_assert_eq(klog_topic_alter_config(k, "tdefault", NULL, unset, 1, err, sizeof err), 0, "%s", err);
    send_batch(p, "tdefault");
    cr_assert_eq(klog_producer_close(p), 0);

    int codecs[8];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = batch_codecs(cases[i].topic, codecs, 8);
        cr_assert_geq(n, 1, "%s: no batch", cases[i].topic);
        cr_assert_eq(codecs[0], cases[i].want, "%s (%s): codec %d, want %d", cases[i].topic,
                     cases[i].value ? cases[i].value : "unset", codecs[0], cases[i].want);
    }
    cr_assert_eq(batch_codecs("tdefault", codecs, 8), 3);
    cr_assert(codecs[0] == 3 && codecs[1] == 4 && codecs[2] == 3, "tdefault codecs %d %d %d", codecs[0], codecs[1],
              codecs[2]);

    /* every record reads back whole, whatever the codec */
    klog_consumer *c = NULL;
    cr_assert_eq(klog_consumer_new(k, NULL, &c, NULL, 0), 0);
    cr_assert_eq(klog_consumer_assign(c, "tz", 0, KLOG_OFFSET_BEGINNING), 0);
    cr_assert_eq(klog_consumer_assign(c, "tg", 0, KLOG_OFFSET_BEGINNING), 0);
    cr_assert_eq(klog_consumer_assign(c, "ts", 0, KLOG_OFFSET_BEGINNING), 0);
    size_t got = 0;
    for (int tries = 0; got < 150 && tries < 100; tries++) {
        const klog_message *const *m;
        int n = klog_consumer_poll(c, 100, &m);
        cr_assert_geq(n, 0);
        for (int i = 0; i < n; i++, got++)
            cr_assert(m[i]->value_len == 400 && !memcmp(m[i]->value, "compressible comp", 17));
    }
    cr_assert_eq(got, 150);
    cr_assert_eq(klog_consumer_close(c), 0);

    /* "producer" is a topic's value only */
    klog_conf *bad = conf_of("compression.type", "producer");
    err[0] = '\0';
    cr_assert_eq(klog_producer_new(k, bad, &p, err, sizeof err), KLOG_ECONF);
    cr_assert(strstr(err, "compression.type"), "%s", err);
    klog_conf_free(bad);
    cr_assert_eq(klog_close(k), 0);
}
