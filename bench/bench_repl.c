/*
 * bench/bench_repl.c - replication to peer nodes (issue 16), measured
 * through the public API as an application embedding a node runs it:
 * klog_open with node.id and replication.peers, a klog_server per node on
 * a loopback TCP port (the same listener serves clients and peers), the
 * in-process producer writing to the leader.  Three nodes live in this
 * process, each with its own instance, directory, server and threads.
 *
 *   acks-all   acks=all with 3 replicas against acks=all on a single node
 *              (no peers), same run, 100-byte records, rounds of 1,000
 *              records sent then flushed, the two legs alternating round
 *              by round (target: replicated >= 0.5 of the single node)
 *   catch-up   a follower started empty behind a leader holding 1 GiB
 *              (64 MiB with --quick): bytes over the time from its
 *              klog_open to its end offset reaching the leader's, beside
 *              a raw loopback TCP stream of the same bytes into pwrite
 *              (target >= 500 MB/s)
 *   lag        replication lag at 10,000 records/s (acks=1 on the
 *              leader): for every record, the time from its send to the
 *              first moment a follower's end offset passes it; p50, p99,
 *              p99.9
 *
 * KLOG_BENCH_REPL_FETCH_BYTES sets the nodes' replica.fetch.max.bytes (default
 * 1 MiB, Kafka's) to see what catch-up owes to the fetch size.
 * KLOG_BENCH_REPL_FOLLOWER_DIR puts the followers' directories under another
 * directory (e.g. /dev/shm, or a second disk): three replicas in one box
 * share one disk, whose fsyncs queue behind each other, where replicas on
 * separate boxes would not; this shows what acks=all costs without that.
 * The leader and the single node stay on the --dir disk.
 *
 * Ports are picked by the kernel (bind to port 0, then released) because
 * the peers list must name them before the servers start.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>
#include <klog/server.h>

#include "bench_util.h"

#define NNODES 3
#define VAL_LEN 100
#define MAX_REPS 9

static bu_args g_a = { .base = "/tmp/klog-bench-repl" };
static uint8_t g_val[VAL_LEN];

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_repl: %s: %s\n", what, why);
    exit(1);
}

static void die_rc(const char *what, int rc) { die(what, klog_strerror(rc)); }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double secs_since(uint64_t t0) { return (double)(now_ns() - t0) / 1e9; }

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

/* ---- nodes ------------------------------------------------------------------- */

typedef struct node {
    int id;
    char dir[4200];
    char url[64];
    klog *k;
    klog_server *s;
} node;

typedef struct cluster {
    node n[NNODES];
    char peers[512];
    unsigned seq;
} cluster;

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l))
        die("free port", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static void conf_set(klog_conf *c, const char *k, const char *v)
{
    char err[256] = "";
    int rc = klog_conf_set(c, k, v, err, sizeof err);
    if (rc)
        die(k, err[0] ? err : klog_strerror(rc));
}

static void cluster_init(cluster *cl, const char *name)
{
    memset(cl, 0, sizeof *cl);
    size_t off = 0;
    for (int i = 0; i < NNODES; i++) {
        node *nd = &cl->n[i];
        nd->id = i + 1;
        const char *fd = getenv("KLOG_BENCH_REPL_FOLLOWER_DIR");
        if (i > 0 && fd && *fd)
            snprintf(nd->dir, sizeof nd->dir, "%s/klog-bench-repl-%d/%s-n%d", fd, (int)getpid(), name, nd->id);
        else
            snprintf(nd->dir, sizeof nd->dir, "%s/%s-n%d", g_a.dir, name, nd->id);
        snprintf(nd->url, sizeof nd->url, "tcp://127.0.0.1:%u", (unsigned)free_port());
        off += (size_t)snprintf(cl->peers + off, sizeof cl->peers - off, "%s%d@%s", i ? "," : "", nd->id, nd->url);
    }
}

static void node_start(cluster *cl, node *nd)
{
    klog_conf *c;
    int rc = klog_conf_new(&c);
    if (rc)
        die_rc("klog_conf_new", rc);
    char id[12];
    snprintf(id, sizeof id, "%d", nd->id);
    conf_set(c, "node.id", id);
    conf_set(c, "replication.peers", cl->peers);
    conf_set(c, "replication.controller", "static"); /* node 1 leads, as measured */
    conf_set(c, "replica.fetch.wait.max.ms", "100");
    conf_set(c, "replica.heartbeat.ms", "200");
    if (getenv("KLOG_BENCH_REPL_FETCH_BYTES"))
        conf_set(c, "replica.fetch.max.bytes", getenv("KLOG_BENCH_REPL_FETCH_BYTES"));
    char err[256] = "";
    if ((rc = klog_open(&nd->k, nd->dir, c, err, sizeof err)))
        die("klog_open", err[0] ? err : klog_strerror(rc));
    if ((rc = klog_server_new(&nd->s, nd->k, c, err, sizeof err)))
        die("klog_server_new", err[0] ? err : klog_strerror(rc));
    klog_conf_free(c);
    if ((rc = klog_server_listen(nd->s, nd->url)))
        die_rc(nd->url, rc);
    if ((rc = klog_server_start(nd->s)))
        die_rc("klog_server_start", rc);
}

static void node_stop(node *nd)
{
    if (!nd->k)
        return;
    klog_server_free(nd->s);
    nd->s = NULL;
    int rc = klog_close(nd->k);
    if (rc)
        die_rc("klog_close", rc);
    nd->k = NULL;
}

static int64_t end_offset(klog *k, const char *topic)
{
    klog_partition_info pi = { .struct_size = sizeof pi };
    return klog_topic_describe(k, topic, &pi, 1, NULL, 0) >= 1 ? pi.end_offset : -1;
}

static klog_producer *producer(klog *k, const char *acks, const char *linger)
{
    klog_conf *c;
    int rc = klog_conf_new(&c);
    if (rc)
        die_rc("klog_conf_new", rc);
    conf_set(c, "acks", acks);
    conf_set(c, "linger.ms", linger);
    conf_set(c, "batch.size", "1000000");
    klog_producer *p;
    char err[256] = "";
    if ((rc = klog_producer_new(k, c, &p, err, sizeof err)))
        die("klog_producer_new", err[0] ? err : klog_strerror(rc));
    klog_conf_free(c);
    return p;
}

static int send_one(klog_producer *p, const char *topic)
{
    klog_record rec = KLOG_RECORD_INIT;
    rec.partition = 0;
    rec.value = g_val;
    rec.value_len = VAL_LEN;
    return klog_producer_send(p, topic, &rec);
}

typedef struct dr_count {
    _Atomic uint64_t ok, failed;
    _Atomic int first_err;
} dr_count;

static void dr_cb(void *opaque, const klog_delivery *d)
{
    dr_count *dc = opaque;
    if (d->err == 0) {
        atomic_fetch_add(&dc->ok, 1);
    } else {
        int z = 0;
        atomic_compare_exchange_strong(&dc->first_err, &z, d->err);
        atomic_fetch_add(&dc->failed, 1);
    }
}

/* A round: per records sent, then flushed; every one must be acknowledged. */
static void round_of(klog_producer *p, const char *topic, uint64_t per, dr_count *dc)
{
    uint64_t before = atomic_load(&dc->ok);
    for (uint64_t i = 0; i < per; i++) {
        int rc = send_one(p, topic);
        if (rc)
            die_rc("klog_producer_send", rc);
    }
    int rc = klog_producer_flush(p, 60000);
    if (rc)
        die_rc("klog_producer_flush", rc);
    if (atomic_load(&dc->ok) - before != per)
        die("round", atomic_load(&dc->first_err) ? klog_strerror(atomic_load(&dc->first_err)) : "records missing");
}

/* Start the three nodes, create topic on the leader (node 1) and wait
 * (bounded) until acks=all goes through and every follower holds it. */
static klog_producer *cluster_up(cluster *cl, const char *topic, dr_count *dc)
{
    for (int i = 0; i < NNODES; i++)
        node_start(cl, &cl->n[i]);
    char err[256] = "";
    int rc = klog_topic_create(cl->n[0].k, topic, 1, NULL, err, sizeof err);
    if (rc)
        die("klog_topic_create", err);
    klog_producer *p = producer(cl->n[0].k, "all", "5");
    klog_producer_set_delivery_cb(p, dr_cb, dc);
    uint64_t until = now_ns() + 30 * 1000000000ull;
    for (;;) {
        uint64_t ok = atomic_load(&dc->ok);
        send_one(p, topic);
        klog_producer_flush(p, 5000);
        if (atomic_load(&dc->ok) > ok) {
            int64_t e = end_offset(cl->n[0].k, topic);
            bool all = true;
            for (int i = 1; i < NNODES; i++)
                all &= end_offset(cl->n[i].k, topic) == e;
            if (all)
                break;
        }
        if (now_ns() > until)
            die("cluster", "the followers never caught up in 30 s");
        sleep_us(20000);
    }
    atomic_store(&dc->failed, 0);
    atomic_store(&dc->first_err, 0);
    return p;
}

/* ---- 1: acks=all, 3 replicas against 1 -------------------------------------- */

static void section_acks_all(void)
{
    const uint64_t per = 1000, rounds = g_a.quick ? 10 : 300;
    double rep[MAX_REPS], one[MAX_REPS];
    for (int r = 0; r < g_a.reps; r++) {
        cluster cl;
        char name[32];
        snprintf(name, sizeof name, "acks%d", r);
        cluster_init(&cl, name);
        dr_count dcr = { 0 }, dc1 = { 0 };
        klog_producer *pr = cluster_up(&cl, "t", &dcr);
        /* the single node: no peers */
        char dir[4300], err[256] = "";
        snprintf(dir, sizeof dir, "%s/single%d", g_a.dir, r);
        klog *k1;
        int rc = klog_open(&k1, dir, NULL, err, sizeof err);
        if (rc)
            die("klog_open", err);
        if ((rc = klog_topic_create(k1, "t", 1, NULL, err, sizeof err)))
            die("klog_topic_create", err);
        klog_producer *p1 = producer(k1, "all", "5");
        klog_producer_set_delivery_cb(p1, dr_cb, &dc1);
        round_of(p1, "t", per, &dc1);
        round_of(pr, "t", per, &dcr);
        double tr = 0, t1 = 0;
        for (uint64_t b = 0; b < rounds; b++) {
            for (int leg = 0; leg < 2; leg++) {
                uint64_t t0 = now_ns();
                if ((leg + (int)(b % 2)) % 2 == 0) {
                    round_of(pr, "t", per, &dcr);
                    tr += secs_since(t0);
                } else {
                    round_of(p1, "t", per, &dc1);
                    t1 += secs_since(t0);
                }
            }
        }
        rep[r] = tr;
        one[r] = t1;
        klog_producer_close(p1);
        klog_close(k1);
        klog_producer_close(pr);
        for (int i = NNODES - 1; i >= 0; i--)
            node_stop(&cl.n[i]);
    }
    double tr = bu_median(rep, g_a.reps), t1 = bu_median(one, g_a.reps);
    double recs = (double)(rounds * per);
    printf("acks-all: %" PRIu64 " rounds of (send %" PRIu64 " records of %d bytes, flush), acks=all, linger.ms=5,\n"
           "  the legs alternating round by round; median of %d\n",
           rounds, per, VAL_LEN, g_a.reps);
    printf("  single node, acks=all              %9.0f rec/s %8.1f us/round\n", recs / t1, t1 / (double)rounds * 1e6);
    printf("  3 replicas on loopback, acks=all   %9.0f rec/s %8.1f us/round   ratio %.2f (target >= 0.5)\n\n",
           recs / tr, tr / (double)rounds * 1e6, t1 / tr);
}

/* ---- 2: catch-up ---------------------------------------------------------------- */

typedef struct raw_sink {
    int lfd;
    int fd;
    uint64_t bytes;
} raw_sink;

static void *raw_sink_run(void *arg)
{
    raw_sink *rs = arg;
    int c = accept(rs->lfd, NULL, NULL);
    if (c < 0)
        return NULL;
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    uint64_t off = 0;
    ssize_t n;
    while (buf && off < rs->bytes && (n = read(c, buf, cap)) > 0) {
        if (pwrite(rs->fd, buf, (size_t)n, (off_t)off) != n)
            break;
        off += (uint64_t)n;
    }
    fdatasync(rs->fd);
    free(buf);
    close(c);
    return NULL;
}

/* Baseline: the same bytes over one loopback TCP stream into pwrite and a
 * final fdatasync, in seconds. */
static double raw_stream_to_disk(uint64_t bytes)
{
    raw_sink rs = { .bytes = bytes };
    char path[4300];
    snprintf(path, sizeof path, "%s/raw.dat", g_a.dir);
    rs.fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    rs.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    if (rs.fd < 0 || rs.lfd < 0 || bind(rs.lfd, (struct sockaddr *)&a, sizeof a) || listen(rs.lfd, 1) ||
        getsockname(rs.lfd, (struct sockaddr *)&a, &l))
        die("raw stream", strerror(errno));
    pthread_t th;
    pthread_create(&th, NULL, raw_sink_run, &rs);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a))
        die("raw connect", strerror(errno));
    size_t cap = 1 << 20;
    uint8_t *buf = calloc(1, cap);
    uint64_t t0 = now_ns();
    for (uint64_t sent = 0; sent < bytes;) {
        size_t n = bytes - sent < cap ? (size_t)(bytes - sent) : cap;
        ssize_t w = write(c, buf, n);
        if (w <= 0)
            die("raw write", strerror(errno));
        sent += (uint64_t)w;
    }
    shutdown(c, SHUT_WR);
    pthread_join(th, NULL);
    double t = secs_since(t0);
    free(buf);
    close(c);
    close(rs.lfd);
    close(rs.fd);
    unlink(path);
    return t;
}

static void section_catch_up(void)
{
    const uint64_t bytes = g_a.quick ? (64ull << 20) : (1ull << 30);
    const uint64_t records = bytes / VAL_LEN;
    double rate[MAX_REPS], raw[MAX_REPS];
    uint64_t disk_bytes = 0;
    for (int r = 0; r < g_a.reps; r++) {
        cluster cl;
        char name[32];
        snprintf(name, sizeof name, "catch%d", r);
        cluster_init(&cl, name);
        dr_count dc = { 0 };
        klog_producer *p = cluster_up(&cl, "t", &dc);
        klog_producer_close(p);
        /* node 3 goes; the leader takes 1 GiB at acks=1 meanwhile (node 2
         * keeps the ISR at min.insync.replicas) */
        node_stop(&cl.n[2]);
        p = producer(cl.n[0].k, "1", "5");
        for (uint64_t i = 0; i < records; i++) {
            int rc;
            while ((rc = send_one(p, "t")) == KLOG_EQUEUEFULL)
                klog_producer_flush(p, 1000);
            if (rc)
                die_rc("klog_producer_send", rc);
        }
        klog_producer_flush(p, 120000);
        klog_producer_close(p);
        int64_t end = end_offset(cl.n[0].k, "t");
        klog_partition_info pi = { .struct_size = sizeof pi };
        klog_topic_describe(cl.n[0].k, "t", &pi, 1, NULL, 0);
        disk_bytes = pi.size_bytes;
        /* node 3 comes back with an empty directory */
        bu_rm_rf("bench_repl", cl.n[2].dir);
        bu_warm_page_cache(g_a.dir, disk_bytes);
        uint64_t t0 = now_ns();
        node_start(&cl, &cl.n[2]);
        uint64_t until = t0 + 600 * 1000000000ull;
        while (end_offset(cl.n[2].k, "t") < end) {
            if (now_ns() > until)
                die("catch-up", "not done in 600 s");
            sleep_us(1000);
        }
        double t = secs_since(t0);
        rate[r] = (double)disk_bytes / t;
        raw[r] = (double)disk_bytes / raw_stream_to_disk(disk_bytes);
        for (int i = NNODES - 1; i >= 0; i--)
            node_stop(&cl.n[i]);
        bu_rm_rf("bench_repl", cl.n[0].dir);
        bu_rm_rf("bench_repl", cl.n[1].dir);
        bu_rm_rf("bench_repl", cl.n[2].dir);
    }
    double m = bu_median(rate, g_a.reps), mr = bu_median(raw, g_a.reps);
    printf("catch-up: a follower started empty behind %.0f MiB of %d-byte records (median of %d)\n",
           (double)disk_bytes / 1048576.0, VAL_LEN, g_a.reps);
    printf("  follower catch-up                  %8.0f MB/s   (target >= 500 MB/s)\n", m / 1e6);
    printf("  raw loopback TCP -> pwrite+fsync   %8.0f MB/s   ratio %.2f\n\n", mr / 1e6, m / mr);
}

/* ---- 3: replication lag ---------------------------------------------------- */

typedef struct lagrun {
    klog *follower;
    uint64_t *sent;      /* send time of offset base+i */
    uint64_t *seen;      /* first time the follower held it */
    uint64_t n;
    int64_t base;
    _Atomic uint64_t produced;
    _Atomic bool stop;
} lagrun;

static void *lag_watch(void *arg)
{
    lagrun *L = arg;
    int64_t have = L->base;
    while (!atomic_load(&L->stop) && (uint64_t)(have - L->base) < L->n) {
        int64_t e = end_offset(L->follower, "t");
        uint64_t t = now_ns();
        for (; have < e && (uint64_t)(have - L->base) < L->n; have++)
            L->seen[have - L->base] = t;
        sleep_us(20);
    }
    return NULL;
}

static void section_lag(void)
{
    const uint64_t rate = 10000, n = g_a.quick ? 5000 : 100000;
    cluster cl;
    cluster_init(&cl, "lag");
    dr_count dc = { 0 };
    klog_producer *pw = cluster_up(&cl, "t", &dc);
    klog_producer_close(pw);
    lagrun L = { .follower = cl.n[1].k, .n = n };
    L.sent = calloc(n, sizeof *L.sent);
    L.seen = calloc(n, sizeof *L.seen);
    if (!L.sent || !L.seen)
        die("lag", "out of memory");
    L.base = end_offset(cl.n[0].k, "t");
    klog_producer *p = producer(cl.n[0].k, "1", "0");
    pthread_t th;
    pthread_create(&th, NULL, lag_watch, &L);
    uint64_t t0 = now_ns(), period = 1000000000ull / rate;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t due = t0 + i * period;
        while (now_ns() < due)
            ;
        L.sent[i] = now_ns();
        int rc = send_one(p, "t");
        if (rc)
            die_rc("klog_producer_send", rc);
    }
    klog_producer_flush(p, 60000);
    uint64_t until = now_ns() + 30 * 1000000000ull;
    while (end_offset(cl.n[1].k, "t") < L.base + (int64_t)n && now_ns() < until)
        sleep_us(1000);
    atomic_store(&L.stop, true);
    pthread_join(th, NULL);
    klog_producer_close(p);
    double *lat = malloc(n * sizeof *lat);
    uint64_t m = 0;
    for (uint64_t i = 0; i < n; i++)
        if (L.seen[i])
            lat[m++] = (double)(L.seen[i] - L.sent[i]) / 1e3;
    qsort(lat, m, sizeof *lat, bu_cmp_d);
    printf("lag: acks=1 at %" PRIu64 " records/s for %" PRIu64 " records on the leader; time from send to the\n"
           "  follower's end offset passing the record (polled every 20 us)\n", rate, n);
    if (m)
        printf("  p50 %.0f us   p99 %.0f us   p99.9 %.0f us   max %.0f us   (%" PRIu64 " of %" PRIu64 " seen)\n\n",
               lat[m / 2], lat[m * 99 / 100], lat[m * 999 / 1000], lat[m - 1], m, n);
    free(lat);
    free(L.sent);
    free(L.seen);
    for (int i = NNODES - 1; i >= 0; i--)
        node_stop(&cl.n[i]);
}

static const bu_section k_sections[] = {
    { "acks-all", section_acks_all },
    { "catch-up", section_catch_up },
    { "lag", section_lag },
};

int main(int argc, char **argv)
{
    int rc = bu_parse(argc, argv, "bench_repl", k_sections, sizeof k_sections / sizeof *k_sections, false, 3,
                      MAX_REPS, &g_a);
    if (rc)
        return rc;
    for (int i = 0; i < VAL_LEN; i++)
        g_val[i] = (uint8_t)('a' + i % 26);
    printf("bench_repl: %d nodes in one process over loopback TCP, %d-byte records\n\n", NNODES, VAL_LEN);
    const char *fd = getenv("KLOG_BENCH_REPL_FOLLOWER_DIR");
    if (fd && *fd) {
        char d[4200];
        snprintf(d, sizeof d, "%s/klog-bench-repl-%d", fd, (int)getpid());
        if (mkdir(d, 0755) && errno != EEXIST)
            die(d, strerror(errno));
    }
    if (fd && *fd)
        printf("followers' directories under %s (KLOG_BENCH_REPL_FOLLOWER_DIR), the leader's under %s\n\n", fd, g_a.dir);
    bu_run(k_sections, sizeof k_sections / sizeof *k_sections, &g_a);
    bu_cleanup("bench_repl", &g_a);
    if (fd && *fd) {
        char d[4200];
        snprintf(d, sizeof d, "%s/klog-bench-repl-%d", fd, (int)getpid());
        bu_rm_rf("bench_repl", d);
    }
    return 0;
}
