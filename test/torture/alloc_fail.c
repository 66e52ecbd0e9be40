/*
 * alloc_fail - fail the Nth allocation over the public API, as SQLite's
 * malloc tests do (issue 19).
 *
 *   alloc_fail --dir D [--from N] [--to N] [--step S] [--codec C] [-v] [-t]
 *
 * --codec C: the producer compresses with C and 2 compression threads,
 * and values are 4 KB, so that its batches go to those threads (the
 * threads' start, their codecs and the batches they finish fail too).
 * -v says where each run stopped; -t prints a backtrace of each failed
 * allocation (link with -rdynamic for names, or use addr2line).
 *
 * Linked against the static klog_core with -Wl,--wrap for malloc, calloc,
 * realloc, strdup and strndup (meson.build): every allocation klog's own code makes
 * goes through the counter below, which fails one of them, the Nth after
 * arming, once (the allocations of libc itself, liburing, zstd and lz4
 * are not counted).
 * For N = from, from+step, ... the scenario runs on a fresh directory:
 * klog_open, create a topic, produce 40 keyed records with acks=all,
 * consume them, commit a group offset as a standalone consumer, then join
 * the group as a member and commit its positions, close everything.  Each step must
 * succeed or fail cleanly with -ENOMEM (a delivery report with -ENOMEM
 * counts as clean: the record was not acknowledged); nothing may crash or
 * hang (a 60 s alarm per run).  Then, with allocations no longer failing,
 * the directory is opened again and must hold every record whose delivery
 * report said ok, at its offset with its value, and the group's committed
 * offset must be at least the one a successful commit returned.  The loop
 * stops at the first N whose run met no failure (the scenario completed),
 * or at --to.  Leaks show under AddressSanitizer (LeakSanitizer, at exit):
 * the suite runs this in the ASan tree too.
 * Exit 0 when every run was clean, 1 otherwise.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <execinfo.h>
#include <ftw.h>
#include <signal.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <klog/klog.h>

/* ---- the counting allocator ----------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static atomic_long countdown = -1; /* < 0: not armed; hits 0: that call fails */
static atomic_long calls;          /* allocations since arming */
static atomic_int failed;          /* the armed failure happened */
static int trace;                  /* -t: a backtrace of each failed allocation */

static bool fail_now(void)
{
    long c = atomic_load_explicit(&countdown, memory_order_relaxed);
    if (c < 0)
        return false;
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    if (atomic_fetch_sub(&countdown, 1) == 1) {
        atomic_store(&failed, 1);
        if (trace) {
            void *bt[16];
            int depth = backtrace(bt, 16); /* its own allocation happens once, first */
            backtrace_symbols_fd(bt, depth, 2);
        }
        errno = ENOMEM;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t a, size_t b)
{
    return fail_now() ? NULL : __real_calloc(a, b);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fail_now() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return fail_now() ? NULL : __real_strndup(s, n);
}

static void arm(long n)
{
    atomic_store(&calls, 0);
    atomic_store(&failed, 0);
    atomic_store(&countdown, n);
}

static void disarm(void)
{
    atomic_store(&countdown, -1);
}

/* ---- the scenario ---------------------------------------------------- */

#define TOPIC "t"
#define GROUP "g"
#define NREC 40

static int verbose;
static const char *cur_step = "", *stopped_at = "";

struct acks {
    int64_t offset[NREC]; /* -1: not acknowledged */
    int32_t partition[NREC];
};

static void on_delivery(void *arg, const klog_delivery *d)
{
    struct acks *a = arg;
    intptr_t i = (intptr_t)d->opaque;
    if (i < 0 || i >= NREC)
        return;
    if (d->err == 0) {
        a->offset[i] = d->offset;
        a->partition[i] = d->partition;
    }
}

/* --codec: the producer compresses, and values are long enough (4 KB) that
 * a flush's batch is handed to its compression threads (16 KiB and more). */
static const char *codec;
#define VAL_MAX 4200

static void value_of(int i, char *buf, size_t n)
{
    snprintf(buf, n, "value-%d-%0*d", i, codec ? 4000 + i % 50 : 20 + i % 50, i);
}

/* A step's result: 0 goes on, -ENOMEM stops the scenario cleanly,
 * anything else is a finding. */
static int step(const char *what, int rc, long n, int *bad)
{
    cur_step = what;
    if (rc == 0 || rc == -ENOMEM)
        return rc;
    fprintf(stderr, "alloc_fail N=%ld: %s: %s (%s), not -ENOMEM%s\n", n, what, klog_err_name(rc),
            klog_strerror(rc), atomic_load(&failed) ? "" : ", and no allocation failed");
    (*bad)++;
    return rc;
}

/* Run the scenario with the Nth allocation failing.  Fills *a and
 * *committed (-1: no commit returned 0).  Returns the number of findings. */
static int scenario(const char *dir, long n, struct acks *a, int64_t *committed)
{
    int bad = 0, rc;
    klog *k = NULL;
    klog_conf *conf = NULL;
    klog_producer *p = NULL;
    klog_consumer *c = NULL;
    klog_partition_list *pl = NULL;
    for (int i = 0; i < NREC; i++)
        a->offset[i] = -1;
    *committed = -1;
    arm(n);
    if (step("klog_conf_new", klog_conf_new(&conf), n, &bad))
        goto out;
    if (step("klog_open", klog_open(&k, dir, conf, NULL, 0), n, &bad))
        goto out;
    if (step("klog_topic_create", klog_topic_create(k, TOPIC, 2, NULL, NULL, 0), n, &bad))
        goto out;
    klog_conf_free(conf);
    conf = NULL;
    if (step("klog_conf_new", klog_conf_new(&conf), n, &bad) ||
        step("klog_conf_set", klog_conf_set(conf, "acks", "all", NULL, 0), n, &bad) ||
        step("klog_conf_set", klog_conf_set(conf, "linger.ms", "1", NULL, 0), n, &bad) ||
        (codec && step("klog_conf_set", klog_conf_set(conf, "compression.type", codec, NULL, 0), n, &bad)) ||
        (codec && step("klog_conf_set", klog_conf_set(conf, "compression.threads", "2", NULL, 0), n, &bad)) ||
        step("klog_producer_new", klog_producer_new(k, conf, &p, NULL, 0), n, &bad) ||
        step("klog_producer_set_delivery_cb", klog_producer_set_delivery_cb(p, on_delivery, a), n,
             &bad))
        goto out;
    for (int i = 0; i < NREC; i++) {
        char key[16], val[VAL_MAX];
        snprintf(key, sizeof key, "k%d", i);
        value_of(i, val, sizeof val);
        klog_record r = KLOG_RECORD_INIT;
        r.key = key;
        r.key_len = strlen(key);
        r.value = val;
        r.value_len = strlen(val);
        r.opaque = (void *)(intptr_t)i;
        if (step("klog_producer_send", klog_producer_send(p, TOPIC, &r), n, &bad))
            goto out;
        if (i % 10 == 9 && step("klog_producer_flush", klog_producer_flush(p, 20000), n, &bad))
            goto out;
    }
    klog_conf_free(conf);
    conf = NULL;
    if (step("klog_conf_new", klog_conf_new(&conf), n, &bad) ||
        step("klog_conf_set", klog_conf_set(conf, "group.id", GROUP, NULL, 0), n, &bad) ||
        step("klog_consumer_new", klog_consumer_new(k, conf, &c, NULL, 0), n, &bad))
        goto out;
    int got = 0;
    for (int part = 0; part < 2; part++) {
        if (step("klog_consumer_assign", klog_consumer_assign(c, TOPIC, part, KLOG_OFFSET_BEGINNING),
                 n, &bad))
            goto out;
    }
    for (int tries = 0; tries < 200 && got < NREC; tries++) {
        const klog_message *const *msgs;
        rc = klog_consumer_poll(c, 10, &msgs);
        if (rc < 0) {
            step("klog_consumer_poll", rc, n, &bad);
            goto out;
        }
        for (int i = 0; i < rc; i++) {
            int idx = -1;
            char val[VAL_MAX], kb[8];
            if (msgs[i]->key && msgs[i]->key_len < sizeof kb && msgs[i]->key_len > 1) {
                memcpy(kb, msgs[i]->key, msgs[i]->key_len);
                kb[msgs[i]->key_len] = '\0';
                idx = atoi(kb + 1);
            }
            if (idx < 0 || idx >= NREC) {
                fprintf(stderr, "alloc_fail N=%ld: poll: a record with a foreign key\n", n);
                bad++;
                continue;
            }
            value_of(idx, val, sizeof val);
            if (msgs[i]->value_len != strlen(val) || memcmp(msgs[i]->value, val, strlen(val))) {
                fprintf(stderr, "alloc_fail N=%ld: poll: record %d has a wrong value: %.*s\n", n, idx,
                        (int)msgs[i]->value_len, msgs[i]->value ? (const char *)msgs[i]->value : "");
                bad++;
            }
            got++;
        }
    }
    /* every acknowledged record was among those read: the count is enough
     * here, the reopen below checks offsets */
    if (step("klog_partition_list_new", klog_partition_list_new(&pl), n, &bad) ||
        step("klog_partition_list_add", klog_partition_list_add(pl, TOPIC, 0, 1, NULL), n, &bad))
        goto out;
    rc = klog_consumer_commit(c, pl, 0);
    if (step("klog_consumer_commit", rc, n, &bad))
        goto out;
    *committed = 1;
    /* A member of the group: join, read, commit its positions. */
    klog_consumer_close(c);
    c = NULL;
    if (step("klog_consumer_new", klog_consumer_new(k, conf, &c, NULL, 0), n, &bad))
        goto out;
    const char *topics[] = {TOPIC};
    if (step("klog_consumer_subscribe", klog_consumer_subscribe(c, topics, 1), n, &bad))
        goto out;
    int joined = 0;
    for (int tries = 0; tries < 300 && joined < 2; tries++) {
        const klog_message *const *msgs;
        rc = klog_consumer_poll(c, 10, &msgs);
        if (rc < 0) {
            step("klog_consumer_poll (member)", rc, n, &bad);
            goto out;
        }
        int32_t gen = -1;
        klog_consumer_member_id(c, NULL, 0, &gen);
        joined += gen >= 0 && rc == 0; /* joined, and caught up once */
    }
    if (!joined) {
        fprintf(stderr, "alloc_fail N=%ld: the member never joined\n", n);
        bad++;
        goto out;
    }
    for (int tries = 0; tries < 5; tries++) {
        rc = klog_consumer_commit(c, NULL, 0);
        if (rc != KLOG_EREBALANCE)
            break;
        const klog_message *const *msgs;
        klog_consumer_poll(c, 10, &msgs);
    }
    if (step("klog_consumer_commit (member)", rc, n, &bad))
        goto out;
    cur_step = "the end (the failure was absorbed, or comes in a close)";
out:
    stopped_at = cur_step;
    cur_step = "close";
    klog_partition_list_free(pl);
    klog_consumer_close(c);
    rc = klog_producer_close(p);
    if (rc != 0 && rc != -ENOMEM) {
        fprintf(stderr, "alloc_fail N=%ld: klog_producer_close: %s\n", n, klog_err_name(rc));
        bad++;
    }
    rc = klog_close(k);
    if (rc != 0 && rc != -ENOMEM) {
        fprintf(stderr, "alloc_fail N=%ld: klog_close: %s\n", n, klog_err_name(rc));
        bad++;
    }
    klog_conf_free(conf);
    disarm();
    return bad;
}

/* With allocations working again: every acknowledged record is there. */
static int verify(const char *dir, long n, const struct acks *a, int64_t committed)
{
    int bad = 0;
    klog *k = NULL;
    char err[256] = "";
    int rc = klog_open(&k, dir, NULL, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "alloc_fail N=%ld: reopen: %s %s\n", n, klog_err_name(rc), err);
        return 1;
    }
    int nacked = 0;
    for (int i = 0; i < NREC; i++)
        nacked += a->offset[i] >= 0;
    if (nacked > 0) {
        klog_consumer *c = NULL;
        rc = klog_consumer_new(k, NULL, &c, NULL, 0);
        if (rc != 0) {
            fprintf(stderr, "alloc_fail N=%ld: reopen consumer: %s\n", n, klog_err_name(rc));
            klog_close(k);
            return 1;
        }
        for (int i = 0; i < NREC; i++) {
            if (a->offset[i] < 0)
                continue;
            const klog_message *const *msgs;
            char val[VAL_MAX];
            value_of(i, val, sizeof val);
            rc = klog_consumer_assign(c, TOPIC, a->partition[i], a->offset[i]);
            int got = rc == 0 ? klog_consumer_poll(c, 1000, &msgs) : rc;
            if (got <= 0 || msgs[0]->offset != a->offset[i] || msgs[0]->value_len != strlen(val) ||
                memcmp(msgs[0]->value, val, strlen(val)) != 0) {
                fprintf(stderr, "alloc_fail N=%ld: LOSS: record %d acknowledged at %d/%" PRId64
                                " is not there (%s)\n",
                        n, i, a->partition[i], a->offset[i], got < 0 ? klog_err_name(got) : "");
                bad++;
            }
            klog_consumer_unassign(c, TOPIC, a->partition[i]);
        }
        klog_consumer_close(c);
    }
    if (committed >= 0) {
        int64_t off = -1;
        rc = klog_group_committed(k, GROUP, TOPIC, 0, &off);
        if (rc != 0 || off < committed) {
            fprintf(stderr, "alloc_fail N=%ld: LOSS: committed offset %" PRId64 " (%s), %" PRId64
                            " acknowledged\n",
                    n, off, klog_err_name(rc), committed);
            bad++;
        }
    }
    klog_close(k);
    return bad;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "alloc_fail: a run hung for 60 s (step printed below)\n";
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(3);
    if (write(2, cur_step, strlen(cur_step)) < 0 || write(2, "\n", 1) < 0)
        _exit(3);
    abort();
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    long from = 1, to = 100000, stride = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v"))
            verbose++;
        else if (!strcmp(argv[i], "-t"))
            trace = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--dir"))
            dir = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--from"))
            from = strtol(argv[++i], NULL, 10);
        else if (i + 1 < argc && !strcmp(argv[i], "--to"))
            to = strtol(argv[++i], NULL, 10);
        else if (i + 1 < argc && !strcmp(argv[i], "--step"))
            stride = strtol(argv[++i], NULL, 10);
        else if (i + 1 < argc && !strcmp(argv[i], "--codec"))
            codec = argv[++i];
        else {
            fprintf(stderr, "usage: alloc_fail --dir D [--from N] [--to N] [--step S] [--codec C] [-v] [-t]\n");
            return 2;
        }
    }
    if (!dir || from < 1 || to < from || stride < 1) {
        fprintf(stderr, "alloc_fail: --dir is required; 1 <= from <= to, step >= 1\n");
        return 2;
    }
    signal(SIGALRM, on_alarm);
    long runs = 0, findings = 0, clean_enomem = 0, acked = 0;
    long n;
    bool completed = false;
    for (n = from; n <= to; n += stride) {
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        struct acks a;
        int64_t committed;
        alarm(60);
        int bad = scenario(dir, n, &a, &committed);
        bad += verify(dir, n, &a, committed);
        alarm(0);
        runs++;
        findings += bad;
        for (int i = 0; i < NREC; i++)
            acked += a.offset[i] >= 0;
        if (verbose > 1 || (verbose && !atomic_load(&failed)))
            printf("N=%ld: %s, %ld allocations\n", n, atomic_load(&failed) ? "failed" : "no failure",
                   atomic_load(&calls));
        if (!atomic_load(&failed)) {
            completed = true; /* the scenario met no failure: every N is covered */
            break;
        }
        clean_enomem++;
        if (verbose)
            printf("N=%ld: stopped at %s\n", n, stopped_at);
    }
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    printf("alloc_fail: %ld runs (N %ld..%ld step %ld), %ld with an injected failure, %ld records "
           "acknowledged and checked, %ld findings, %s\n",
           runs, from, n < to ? n : to, stride, clean_enomem, acked, findings,
           completed ? "the scenario completed without a failure at the end"
                     : "stopped at --to before the scenario completed");
    return findings ? 1 : 0;
}
