/*
 * test/api/compat.c - a data directory written by an older klog opens in
 * this one (klog(7), STABILITY).
 *
 * test/data/v0.1/ was written by klog 0.1.0, the first release
 * (test/data/gen_v0_1.c), and test/data/v0.1.manifest holds every record
 * 0.1.0 read back from it and the group's committed offsets.  A copy of the
 * directory (opening writes: recovery, locks) is opened here and checked
 * against the manifest: each partition's start and end offsets, every
 * record (offset, timestamp, key, value, headers; null and empty kept
 * apart) in order, a compacted topic's gaps, the committed offsets of
 * group g1.  Then the directory takes new records and opens again.
 *   KLOG_TEST_DATA   the test/data directory (meson sets it)
 */
#include "util.h"

TestSuite(compat, .init = ut_mkdir, .fini = ut_rmdir, .timeout = 120);

/* A manifest field: NULL for "-", "" for "=", else hex-decoded (freed by
 * the caller); *len its length. */
static char *unhex(const char *s, size_t *len)
{
    *len = 0;
    if (!strcmp(s, "-"))
        return NULL;
    size_t n = strcmp(s, "=") ? strlen(s) / 2 : 0;
    char *out = calloc(1, n + 1);
    cr_assert_not_null(out);
    for (size_t i = 0; i < n; i++) {
        unsigned b;
        cr_assert_eq(sscanf(s + 2 * i, "%2x", &b), 1, "bad hex %s", s);
        out[i] = (char)b;
    }
    *len = n;
    return out;
}

static void same_bytes(const char *what, const void *got, size_t got_len, const char *want, size_t want_len)
{
    if (!want) {
        cr_assert_null(got, "%s: null in 0.1.0, not here", what);
        return;
    }
    cr_assert_not_null(got, "%s: null here, not in 0.1.0", what);
    cr_assert_eq(got_len, want_len, "%s: %zu bytes, 0.1.0 read %zu", what, got_len, want_len);
    cr_assert(!memcmp(got, want, want_len), "%s: other bytes than 0.1.0 read", what);
}

#define MAXTOK 16

static int split(char *line, char **tok)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(line, " \n", &save); t && n < MAXTOK; t = strtok_r(NULL, " \n", &save))
        tok[n++] = t;
    return n;
}

/* Check one partition: the P line's offsets, then its R lines against a
 * consumer reading from the start.  Leaves f after the partition's last R
 * line (next holds the line that follows).  Returns the records checked. */
static int check_partition(klog *k, char **p, FILE *f, char *next, size_t next_size)
{
    const char *topic = p[1];
    int32_t part = (int32_t)atoi(p[2]);
    int64_t start = atoll(p[3]), end = atoll(p[4]);
    klog_partition_info pi[4];
    memset(pi, 0, sizeof pi);
    pi[0].struct_size = sizeof pi[0];
    int np = klog_topic_describe(k, topic, pi, 4, NULL, 0);
    cr_assert_gt(np, part, "topic %s: %d partitions", topic, np);
    cr_assert_eq(pi[part].start_offset, start, "%s-%d: start %lld, 0.1.0 had %lld", topic, (int)part,
                 (long long)pi[part].start_offset, (long long)start);
    cr_assert_eq(pi[part].end_offset, end, "%s-%d: end %lld, 0.1.0 had %lld", topic, (int)part,
                 (long long)pi[part].end_offset, (long long)end);
    cr_assert_eq(pi[part].error, 0, "%s-%d: %s", topic, (int)part, klog_err_name(pi[part].error));

    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", NULL);
    cr_assert_eq(klog_consumer_assign(c, topic, part, KLOG_OFFSET_BEGINNING), 0);
    const klog_message *const *m = NULL;
    int n = 0, i = 0, checked = 0;
    char line[4096], *t[MAXTOK];
    next[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", line);
        int nt = split(copy, t);
        if (nt < 7 || strcmp(t[0], "R") || strcmp(t[1], topic) || atoi(t[2]) != part) {
            snprintf(next, next_size, "%s", line);
            break;
        }
        for (int tries = 0; i == n && tries < 100; tries++) {
            n = klog_consumer_poll(c, 100, &m);
            cr_assert_geq(n, 0, "poll %s-%d: %s", topic, (int)part, klog_err_name(n));
            i = 0;
        }
        cr_assert_lt(i, n, "%s-%d: nothing at the manifest's offset %s", topic, (int)part, t[3]);
        const klog_message *r = m[i++];
        char what[128];
        snprintf(what, sizeof what, "%s-%d offset %s", topic, (int)part, t[3]);
        cr_assert_eq(r->offset, atoll(t[3]), "%s: read offset %lld (a compacted gap moved?)", what,
                     (long long)r->offset);
        cr_assert_eq(r->timestamp, atoll(t[4]), "%s: timestamp %lld", what, (long long)r->timestamp);
        size_t kl, vl;
        char *key = unhex(t[5], &kl), *value = unhex(t[6], &vl);
        same_bytes(what, r->key, r->key_len, key, kl);
        same_bytes(what, r->value, r->value_len, value, vl);
        free(key);
        free(value);
        size_t nh = (size_t)atoi(t[7]);
        cr_assert_eq(r->header_count, nh, "%s: %zu headers, 0.1.0 read %zu", what, r->header_count, nh);
        for (size_t h = 0; h < nh; h++) {
            cr_assert_lt(8 + 2 * (int)h + 1, nt);
            const char *hk;
            const void *hv;
            size_t hkl, hvl, wkl, wvl;
            cr_assert_eq(klog_message_header(r, h, &hk, &hkl, &hv, &hvl), 0);
            char *wk = unhex(t[8 + 2 * h], &wkl), *wv = unhex(t[9 + 2 * h], &wvl);
            same_bytes(what, hk, hkl, wk, wkl);
            same_bytes(what, hv, hvl, wv, wvl);
            free(wk);
            free(wv);
        }
        checked++;
    }
    cr_assert_eq(i, n, "%s-%d: records after the manifest's last", topic, (int)part);
    int64_t lag = -1;
    cr_assert_eq(klog_consumer_lag(c, topic, part, &lag), 0);
    cr_assert_eq(lag, 0, "%s-%d: records after the manifest's last (lag %lld)", topic, (int)part, (long long)lag);
    cr_assert_eq(klog_consumer_close(c), 0);
    return checked;
}

/* The whole manifest against k; returns the records checked. */
static int check_manifest(klog *k, const char *manifest)
{
    FILE *f = fopen(manifest, "r");
    cr_assert_not_null(f, "%s: %s", manifest, strerror(errno));
    char line[4096], next[4096] = "", *t[MAXTOK];
    int records = 0, partitions = 0, commits = 0;
    for (;;) {
        if (!next[0] && !fgets(next, sizeof next, f))
            break;
        snprintf(line, sizeof line, "%s", next);
        next[0] = '\0';
        int nt = split(line, t);
        if (nt == 0 || t[0][0] == '#')
            continue;
        if (!strcmp(t[0], "P")) {
            cr_assert_eq(nt, 5, "manifest: %s", next);
            records += check_partition(k, t, f, next, sizeof next);
            partitions++;
        } else if (!strcmp(t[0], "C")) {
            cr_assert_eq(nt, 5);
            int64_t off = -2;
            cr_assert_eq(klog_group_committed(k, t[1], t[2], atoi(t[3]), &off), 0);
            cr_assert_eq(off, atoll(t[4]), "group %s %s-%s: committed %lld, 0.1.0 had %s", t[1], t[2], t[3],
                         (long long)off, t[4]);
            commits++;
        } else {
            cr_assert_fail("manifest: unknown line %s", t[0]);
        }
    }
    fclose(f);
    cr_assert_eq(partitions, 3, "the manifest lists %d partitions", partitions);
    cr_assert_eq(commits, 2);
    return records;
}

Test(compat, v0_1_directory_opens_and_reads_back)
{
    const char *data = getenv("KLOG_TEST_DATA");
    cr_assert_not_null(data, "KLOG_TEST_DATA is not set");
    char src[512], manifest[512], cmd[1400], dir[600];
    snprintf(src, sizeof src, "%s/v0.1", data);
    snprintf(manifest, sizeof manifest, "%s/v0.1.manifest", data);
    snprintf(dir, sizeof dir, "%s/v0.1", ut_dir);
    snprintf(cmd, sizeof cmd, "cp -R '%s' '%s'", src, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);

    klog *k = NULL;
    char err[256] = "";
    int rc = klog_open(&k, dir, NULL, err, sizeof err);
    cr_assert_eq(rc, 0, "a klog 0.1.0 directory does not open: %s (%s)", klog_err_name(rc), err);
    int records = check_manifest(k, manifest);
    cr_assert_geq(records, 40, "only %d records checked", records);

    /* It takes new records, compacted topic included, and opens again. */
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    cr_assert_eq(ut_send(p, "events", 0, "k", "after the upgrade"), 0);
    cr_assert_eq(ut_send(p, "state", 0, "device-0", "after the upgrade"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(ut_end_offset(k, "events", 0), 21);
    cr_assert_eq(klog_close(k), 0);
    rc = klog_open(&k, dir, NULL, err, sizeof err);
    cr_assert_eq(rc, 0, "reopen: %s (%s)", klog_err_name(rc), err);
    cr_assert_eq(ut_end_offset(k, "events", 0), 21);
    cr_assert_eq(ut_end_offset(k, "state", 0), 67);
    cr_assert_eq(klog_close(k), 0);
}
