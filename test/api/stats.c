/*
 * test/api/stats.c - klog_stats: the JSON document and the Prometheus text
 * count what was produced and consumed, and statistics.interval.ms writes
 * both to the data directory.
 */
#include <sys/stat.h>

#include "util.h"

TestSuite(stats, .init = ut_mkdir, .fini = ut_rmdir);

/* The unsigned number after "key": in the first occurrence after `from`. */
static uint64_t json_num(const char *doc, const char *from, const char *key)
{
    const char *p = from ? strstr(doc, from) : doc;
    cr_assert_not_null(p, "no %s in %s", from, doc);
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(p, pat);
    cr_assert_not_null(p, "no %s after %s", key, from ? from : "start");
    return strtoull(p + strlen(pat), NULL, 10);
}

Test(stats, counts_production_and_consumption)
{
    klog *k = ut_open();
    ut_topic(k, "s", 2, NULL);
    klog_producer *p = ut_producer(k, "client.id", "prod-1", "compression.type", "zstd", NULL);
    for (int i = 0; i < 300; i++)
        cr_assert_eq(ut_send(p, "s", i % 2, "key", "value-value-value-value"), 0);
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    klog_consumer *c = ut_consumer(k, "client.id", "cons-1", NULL);
    cr_assert_eq(klog_consumer_assign(c, "s", 0, KLOG_OFFSET_BEGINNING), 0);
    cr_assert_eq(klog_consumer_assign(c, "s", 1, KLOG_OFFSET_BEGINNING), 0);
    size_t n;
    ut_msg *got = ut_consume(c, 300, &n);
    cr_assert_eq(n, 300);
    ut_msgs_free(got, n);

    char *doc = NULL;
    cr_assert_eq(klog_stats(k, KLOG_STATS_JSON, &doc), 0);
    cr_assert_not_null(doc);
    cr_assert_eq(json_num(doc, "\"topic\":\"s\"", "end_offset"), 150);
    cr_assert_eq(json_num(doc, "\"topic\":\"s\"", "appended_records"), 150);
    cr_assert_eq(json_num(doc, "\"client_id\":\"prod-1\"", "records"), 300);
    cr_assert_eq(json_num(doc, "\"client_id\":\"prod-1\"", "bytes"), 300 * (3 + 23));
    cr_assert_eq(json_num(doc, "\"client_id\":\"prod-1\"", "delivery_errors"), 0);
    cr_assert_eq(json_num(doc, "\"client_id\":\"prod-1\"", "queue_records"), 0);
    cr_assert_geq(json_num(doc, "\"client_id\":\"prod-1\"", "batch_bytes_raw"),
                  json_num(doc, "\"client_id\":\"prod-1\"", "batch_bytes_written"), "zstd on repetitive values");
    cr_assert_eq(json_num(doc, "\"client_id\":\"cons-1\"", "records"), 300);
    cr_assert_eq(json_num(doc, "\"client_id\":\"cons-1\"", "partitions"), 2);
    cr_assert_eq(json_num(doc, "\"client_id\":\"cons-1\"", "lag"), 0);
    uint64_t used = 0;
    cr_assert_eq(klog_disk_usage(k, &used, NULL), 0);
    cr_assert_eq(json_num(doc, NULL, "disk_used_bytes"), used);
    klog_free(doc);

    cr_assert_eq(klog_stats(k, KLOG_STATS_PROMETHEUS, &doc), 0);
    cr_assert(strstr(doc, "# TYPE klog_partition_end_offset gauge\n"), "%s", doc);
    cr_assert(strstr(doc, "klog_partition_end_offset{topic=\"s\",partition=\"1\"} 150\n"), "%s", doc);
    cr_assert(strstr(doc, "klog_producer_records_total{client_id=\"prod-1\",handle=\"0\"} 300\n"), "%s", doc);
    cr_assert(strstr(doc, "klog_consumer_records_total{client_id=\"cons-1\",group=\"\",handle=\"0\"} 300\n"), "%s",
              doc);
    /* every sample line is "name{labels} value" or "name value" */
    for (char *line = doc; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "unterminated line");
        if (line[0] != '#')
            cr_assert(strncmp(line, "klog_", 5) == 0 && memchr(line, ' ', (size_t)(nl - line)), "line: %.*s",
                      (int)(nl - line), line);
        line = nl + 1;
    }
    klog_free(doc);

    /* closed handles leave the document */
    klog_consumer_close(c);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(klog_stats(k, KLOG_STATS_JSON, &doc), 0);
    cr_assert(strstr(doc, "\"producers\":[]") && strstr(doc, "\"consumers\":[]"), "%s", doc);
    klog_free(doc);
    cr_assert_eq(klog_stats(k, 7, &doc), -EINVAL);
    cr_assert_eq(klog_stats(NULL, KLOG_STATS_JSON, &doc), -EINVAL);
    cr_assert_eq(klog_close(k), 0);
}

Test(stats, interval_writes_files)
{
    klog_conf *ic = ut_conf("statistics.interval.ms", "20", NULL);
    klog *k = NULL;
    cr_assert_eq(klog_open(&k, ut_dir, ic, NULL, 0), 0);
    klog_conf_free(ic);
    ut_topic(k, "f", 1, NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/stats.prom", ut_dir);
    struct stat st;
    bool seen = false;
    for (int i = 0; i < 1000 && !seen; i++) {
        seen = stat(path, &st) == 0 && st.st_size > 0;
        if (!seen)
            ut_sleep_ms(10);
    }
    cr_assert(seen, "no %s", path);
    snprintf(path, sizeof path, "%s/stats.json", ut_dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(klog_close(k), 0);
}
