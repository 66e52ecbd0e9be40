/*
 * test/replication/cluster.c - replicated nodes as an application runs
 * them: klog_open with node.id and replication.peers, a klog_server per
 * node listening on a Unix socket (the same listener serves clients and
 * peers), the module's threads over the real transport.  Producers write
 * with acks=all on the leader; the followers must hold every
 * acknowledged record; klog_replication_promote moves leadership (with
 * the old leader running, or stopped and restarted: it must come back as
 * a follower and give up what it wrote that the new leader lacks);
 * min.insync.replicas refuses acks=all writes when the ISR is too small.
 *
 * Every wait is bounded (WAIT_MS) so that a hang fails instead of
 * blocking; no assertion depends on how long anything took.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include <klog/replication.h>
#include <klog/server.h>

#include "../api/util.h"
#include "partition/partition.h"
#include "topic/topic.h"

#define N 3
#define WAIT_MS 20000

typedef struct node {
    int id;
    char dir[128];
    char url[160];
    klog *k;
    klog_server *s;
} node;

static node nodes[N];
static char peers[1024];

/* The log lines of the nodes (klog_set_log_cb), set before their servers
 * start: what a truncation or an unclean promote reports. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[N][8192];

static void log_cb(void *opaque, int level, int err, const char *facility, const char *msg)
{
    (void)level, (void)err;
    node *nd = opaque;
    pthread_mutex_lock(&log_mu);
    char *b = log_lines[nd->id - 1];
    size_t len = strlen(b);
    snprintf(b + len, sizeof log_lines[0] - len, "%s: %s\n", facility, msg);
    pthread_mutex_unlock(&log_mu);
}

/* Wait (bounded) until node nd has logged a line holding `what`. */
static bool logged(node *nd, const char *what)
{
    int64_t until = ut_mono_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&log_mu);
        bool got = strstr(log_lines[nd->id - 1], what) != NULL;
        pthread_mutex_unlock(&log_mu);
        if (got || ut_mono_ms() > until) {
            if (!got)
                cr_log_error("node %d logged:\n%s", nd->id, log_lines[nd->id - 1]);
            return got;
        }
        ut_sleep_ms(10);
    }
}

static void node_start_with(node *nd, const char *leader)
{
    klog_conf *c = ut_conf(NULL);
    char id[12];
    snprintf(id, sizeof id, "%d", nd->id);
    cr_assert_eq(klog_conf_set(c, "node.id", id, NULL, 0), 0);
    char err[256] = "";
    cr_assert_eq(klog_conf_set(c, "replication.peers", peers, err, sizeof err), 0, "%s", err);
    /* the operator's controller (promote): three nodes would get the quorum one */
    cr_assert_eq(klog_conf_set(c, "replication.controller", "static", err, sizeof err), 0, "%s", err);
    if (leader)
        cr_assert_eq(klog_conf_set(c, "replication.leader", leader, NULL, 0), 0);
    klog_conf_set(c, "replica.lag.time.max.ms", "1500", NULL, 0);
    klog_conf_set(c, "replica.fetch.wait.max.ms", "100", NULL, 0);
    klog_conf_set(c, "replica.fetch.backoff.ms", "50", NULL, 0);
    klog_conf_set(c, "replica.heartbeat.ms", "100", NULL, 0);
    klog_conf_set(c, "replica.socket.timeout.ms", "2000", NULL, 0);
    int rc = klog_open(&nd->k, nd->dir, c, err, sizeof err);
    cr_assert_eq(rc, 0, "node %d: klog_open: %s (%s)", nd->id, klog_err_name(rc), err);
    pthread_mutex_lock(&log_mu);
    log_lines[nd->id - 1][0] = 0;
    pthread_mutex_unlock(&log_mu);
    cr_assert_eq(klog_set_log_cb(nd->k, log_cb, nd), 0);
    rc = klog_server_new(&nd->s, nd->k, c, err, sizeof err);
    cr_assert_eq(rc, 0, "node %d: klog_server_new: %s (%s)", nd->id, klog_err_name(rc), err);
    klog_conf_free(c);
    cr_assert_eq(klog_server_listen(nd->s, nd->url), 0);
    cr_assert_eq(klog_server_start(nd->s), 0);
}

static void node_start(node *nd) { node_start_with(nd, NULL); }

static void node_stop(node *nd)
{
    klog_server_free(nd->s);
    nd->s = NULL;
    cr_assert_eq(klog_close(nd->k), 0);
    nd->k = NULL;
}

static void setup(void)
{
    ut_mkdir();
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        node *nd = &nodes[i];
        nd->id = i + 1;
        snprintf(nd->dir, sizeof nd->dir, "%s/n%d", ut_dir, nd->id);
        snprintf(nd->url, sizeof nd->url, "unix://%s/n%d.sock", ut_dir, nd->id);
        off += (size_t)snprintf(peers + off, sizeof peers - off, "%s%d@%s", i ? "," : "", nd->id, nd->url);
    }
}

static void teardown(void)
{
    for (int i = 0; i < N; i++)
        if (nodes[i].k)
            node_stop(&nodes[i]);
    ut_rmdir();
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 120);

static kpart *part0(node *nd, const char *topic)
{
    kt_topic *t = klog__topic_get(nd->k, topic);
    if (!t)
        return NULL;
    kpart *p = atomic_load(&t->nparts) > 0 ? t->parts[0] : NULL;
    klog__topic_put(t); /* the partition lives while the instance does (no topic is deleted here) */
    return p;
}

/* Wait (bounded) until every running node holds `end` records of topic
 * partition 0 below its HW. */
static void wait_replicated(const char *topic, int64_t end)
{
    int64_t until = ut_mono_ms() + WAIT_MS;
    for (;;) {
        bool all = true;
        for (int i = 0; i < N; i++) {
            if (!nodes[i].k)
                continue;
            kpart *p = part0(&nodes[i], topic);
            all &= p && kpart_end_offset(p) == end && kpart_high_watermark(p) == end;
        }
        if (all)
            return;
        if (ut_mono_ms() > until) {
            for (int i = 0; i < N; i++) {
                kpart *p = nodes[i].k ? part0(&nodes[i], topic) : NULL;
                cr_log_error("node %d: leo %lld hw %lld", nodes[i].id, p ? (long long)kpart_end_offset(p) : -1LL,
                             p ? (long long)kpart_high_watermark(p) : -1LL);
            }
            cr_assert_fail("the cluster did not hold %lld records of %s within %d ms", (long long)end, topic, WAIT_MS);
        }
        ut_sleep_ms(10);
    }
}

/* Write n values "tag-i" with acks=all through node nd; returns how many
 * were acknowledged and, in *first_err, the first error seen. */
static size_t write_all(node *nd, const char *topic, const char *tag, int n, int *first_err)
{
    klog_producer *p = ut_producer(nd->k, "acks", "all", "linger.ms", "0", NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    klog_producer_set_delivery_cb(p, ut_dr_cb, &dr);
    for (int i = 0; i < n; i++) {
        char v[64];
        snprintf(v, sizeof v, "%s-%d", tag, i);
        cr_assert_eq(ut_send(p, topic, 0, NULL, v), 0);
    }
    cr_assert_eq(ut_dr_wait(&dr, (size_t)n, WAIT_MS), (size_t)n, "every write reported");
    size_t ok = 0;
    *first_err = 0;
    for (size_t i = 0; i < dr.n; i++) {
        if (dr.d[i].err == 0)
            ok++;
        else if (!*first_err)
            *first_err = dr.d[i].err;
    }
    klog_producer_close(p);
    ut_dr_fini(&dr);
    return ok;
}

/* The leader of topic partition 0 as node nd knows it (-1: none yet). */
static int leader_seen_by(node *nd, const char *topic)
{
    kpart *p = part0(nd, topic);
    return p && kpart_role(p) == KPART_LEADER ? nd->id : -1;
}

static void wait_leader(node *nd, const char *topic)
{
    int64_t until = ut_mono_ms() + WAIT_MS;
    while (leader_seen_by(nd, topic) != nd->id) {
        cr_assert_lt(ut_mono_ms(), until, "node %d never led %s", nd->id, topic);
        ut_sleep_ms(10);
    }
}

Test(cluster, followers_hold_every_acknowledged_record)
{
    for (int i = 0; i < N; i++)
        node_start(&nodes[i]);
    /* the topic is created on the leader only: the followers get it with
     * the first LeaderAndIsr that names it */
    ut_topic(nodes[0].k, "t", 1, NULL);
    wait_leader(&nodes[0], "t");
    int err;
    cr_assert_eq(write_all(&nodes[0], "t", "a", 200, &err), 200, "acks=all on the leader: %s", klog_err_name(err));
    wait_replicated("t", 200);
    /* a follower takes no producer's write */
    cr_assert_eq(write_all(&nodes[1], "t", "x", 1, &err), 0);
    cr_assert_eq(err, KLOG_ENOTLEADER, "%s", klog_err_name(err));
    /* the same records, in the same order, on every node */
    for (int i = 1; i < N; i++) {
        klog_consumer *c = ut_consumer(nodes[i].k, "auto.offset.reset", "earliest", NULL);
        cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
        size_t got;
        ut_msg *m = ut_consume(c, 200, &got);
        cr_assert_eq(got, 200, "node %d", nodes[i].id);
        for (size_t j = 0; j < got; j++) {
            char v[64];
            snprintf(v, sizeof v, "a-%zu", j);
            cr_assert_eq(m[j].value_len, strlen(v));
            cr_assert_eq(memcmp(m[j].value, v, m[j].value_len), 0, "node %d offset %zu", nodes[i].id, j);
        }
        ut_msgs_free(m, got);
        klog_consumer_close(c);
    }
}

/* What a promote says it did (klog_promote_cb): the partitions, in order. */
typedef struct promoted {
    int n;
    char topic[8][32];
    int32_t partition[8], old_leader[8];
    int64_t end[8], old_hw[8];
    int unclean[8];
} promoted;

static void on_promoted(void *opaque, const char *topic, int32_t partition, int32_t old_leader, int64_t end,
                        int64_t old_hw, int unclean)
{
    promoted *o = opaque;
    if (o->n < 8) {
        snprintf(o->topic[o->n], sizeof o->topic[o->n], "%s", topic);
        o->partition[o->n] = partition;
        o->old_leader[o->n] = old_leader;
        o->end[o->n] = end;
        o->old_hw[o->n] = old_hw;
        o->unclean[o->n] = unclean;
    }
    o->n++;
}

/* A topic's configuration is part of the cluster's metadata: one made on
 * the (static) controller reaches the followers' copies with its record,
 * before the first LeaderAndIsr makes them create it. */
Test(cluster, followers_create_a_topic_with_its_configuration)
{
    for (int i = 0; i < N; i++)
        node_start(&nodes[i]);
    ut_topic(nodes[0].k, "c", 1, "retention.ms", "4242000", "segment.bytes", "1048576", NULL);
    wait_leader(&nodes[0], "c");
    for (int i = 1; i < N; i++) {
        char own[1024] = "";
        int64_t until = ut_mono_ms() + 20000;
        while (ut_mono_ms() < until &&
               (klog_topic_describe(nodes[i].k, "c", NULL, 0, own, sizeof own) < 0 || !strstr(own, "segment.bytes")))
            ut_sleep_ms(10);
        cr_assert(strstr(own, "retention.ms=4242000\n") && strstr(own, "segment.bytes=1048576\n"),
                  "node %d: \"%s\"", nodes[i].id, own);
    }
}

Test(cluster, a_promoted_follower_leads_and_the_old_leader_follows_it)
{
    for (int i = 0; i < N; i++)
        node_start(&nodes[i]);
    ut_topic(nodes[0].k, "t", 1, NULL);
    wait_leader(&nodes[0], "t");
    int err;
    cr_assert_eq(write_all(&nodes[0], "t", "a", 50, &err), 50, "%s", klog_err_name(err));
    wait_replicated("t", 50);
    char eb[256] = "";
    promoted o = { 0 };
    int rc = klog_replication_promote_report(nodes[1].k, 0, on_promoted, &o, eb, sizeof eb);
    cr_assert_eq(rc, 0, "promote: %s (%s)", klog_err_name(rc), eb);
    /* it says where it leads from: all 50, clean; the HW node 1 last told
     * it is at most that (the follower is told it a fetch later) */
    cr_assert_eq(o.n, 1);
    cr_assert_str_eq(o.topic[0], "t");
    cr_assert_eq(o.partition[0], 0);
    cr_assert_eq(o.old_leader[0], 1);
    cr_assert_eq(o.end[0], 50);
    cr_assert(o.old_hw[0] >= 0 && o.old_hw[0] <= 50, "old HW %" PRId64, o.old_hw[0]);
    cr_assert_eq(o.unclean[0], 0);
    wait_leader(&nodes[1], "t");
    /* the old leader is fenced: it follows, and takes no write */
    int64_t until = ut_mono_ms() + WAIT_MS;
    while (kpart_role(part0(&nodes[0], "t")) != KPART_FOLLOWER) {
        cr_assert_lt(ut_mono_ms(), until, "the old leader never stepped down");
        ut_sleep_ms(10);
    }
    cr_assert_eq(write_all(&nodes[0], "t", "x", 1, &err), 0);
    cr_assert_eq(err, KLOG_ENOTLEADER);
    cr_assert_eq(write_all(&nodes[1], "t", "b", 50, &err), 50, "%s", klog_err_name(err));
    wait_replicated("t", 100);
}

Test(cluster, the_old_leader_comes_back_as_a_follower_and_truncates)
{
    for (int i = 0; i < N; i++)
        node_start(&nodes[i]);
    ut_topic(nodes[0].k, "t", 1, NULL);
    wait_leader(&nodes[0], "t");
    int err;
    cr_assert_eq(write_all(&nodes[0], "t", "a", 30, &err), 30, "%s", klog_err_name(err));
    wait_replicated("t", 30);
    /* The leader is cut off from the others (their servers stop), takes
     * acks=1 writes nobody copies, and is stopped. */
    node_stop(&nodes[1]);
    node_stop(&nodes[2]);
    klog_producer *p = ut_producer(nodes[0].k, "acks", "1", "linger.ms", "0", NULL);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ut_send(p, "t", 0, NULL, "lost"), 0);
    cr_assert_eq(klog_producer_flush(p, WAIT_MS), 0);
    klog_producer_close(p);
    cr_assert_eq(kpart_end_offset(part0(&nodes[0], "t")), 35);
    node_stop(&nodes[0]);
    /* Node 2 comes back and is promoted (remotely, as klog promote does). */
    node_start(&nodes[1]);
    node_start(&nodes[2]);
    char eb[256] = "";
    promoted o = { 0 };
    int rc = klog_replication_promote_node_report(nodes[1].url, NULL, 0, 5000, on_promoted, &o, eb, sizeof eb);
    cr_assert_eq(rc, 0, "promote: %s (%s)", klog_err_name(rc), eb);
    /* through the ElectLeaders answer: it leads t-0 from its end, 30 */
    cr_assert_eq(o.n, 1);
    cr_assert_str_eq(o.topic[0], "t");
    cr_assert_eq(o.partition[0], 0);
    cr_assert_eq(o.old_leader[0], 1);
    cr_assert_eq(o.end[0], 30);
    cr_assert(o.old_hw[0] <= 30, "old HW %" PRId64, o.old_hw[0]);
    cr_assert_eq(o.unclean[0], 0);
    wait_leader(&nodes[1], "t");
    cr_assert_eq(write_all(&nodes[1], "t", "b", 10, &err), 10, "%s", klog_err_name(err));
    /* The old leader returns: it follows, and its 5 unreplicated records
     * give way to the new leader's. */
    node_start(&nodes[0]);
    wait_replicated("t", 40);
    cr_assert_eq(kpart_role(part0(&nodes[0], "t")), KPART_FOLLOWER);
    /* and says what it gave up */
    cr_assert(logged(&nodes[0], "t-0: truncated offsets 30-34 (5 offsets) to follow leader 2"));
}

Test(cluster, acks_all_is_refused_below_min_insync_replicas)
{
    for (int i = 0; i < N; i++)
        node_start(&nodes[i]);
    ut_topic(nodes[0].k, "t", 1, "min.insync.replicas", "3", NULL);
    wait_leader(&nodes[0], "t");
    int err;
    cr_assert_eq(write_all(&nodes[0], "t", "a", 10, &err), 10, "%s", klog_err_name(err));
    /* A follower goes: once it lags past replica.lag.time.max.ms the ISR
     * shrinks to two and acks=all writes are refused. */
    node_stop(&nodes[2]);
    int64_t until = ut_mono_ms() + WAIT_MS;
    for (;;) {
        size_t ok = write_all(&nodes[0], "t", "b", 1, &err);
        if (ok == 0 && err == KLOG_ENOTENOUGH)
            break;
        cr_assert_lt(ut_mono_ms(), until, "acks=all never refused (last: %s)", klog_err_name(err));
        ut_sleep_ms(50);
    }
    /* It comes back, catches up, rejoins: acks=all writes go through again. */
    node_start(&nodes[2]);
    until = ut_mono_ms() + WAIT_MS;
    for (;;) {
        if (write_all(&nodes[0], "t", "c", 1, &err) == 1)
            break;
        cr_assert_lt(ut_mono_ms(), until, "acks=all never accepted again (last: %s)", klog_err_name(err));
        ut_sleep_ms(50);
    }
}
