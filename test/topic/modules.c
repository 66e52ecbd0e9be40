/*
 * The instance's module lifecycle (lib/topic/topic.h): init and start in
 * list order around the loading of the topics, stop and fini in reverse
 * around the closing of the logs, a failing init or start undoing exactly
 * what succeeded, topic events delivered in order to started modules; and
 * a topic's conf changed in place by klog_topic_alter_config.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "../api/util.h"
#include "group/group.h"
#include "partition/partition.h"
#include "topic/internal.h"
#include "topic/topic.h"

TestSuite(modules, .init = ut_mkdir, .fini = ut_rmdir);

/* ---- a recording module --------------------------------------------------------- */

/* What the modules did, as "A.init B.init ...". */
static char trail[4096];
static pthread_mutex_t trail_mu = PTHREAD_MUTEX_INITIALIZER;

static void note(const char *fmt, ...)
{
    char s[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&trail_mu);
    size_t n = strlen(trail);
    snprintf(trail + n, sizeof trail - n, "%s%s", n ? " " : "", s);
    pthread_mutex_unlock(&trail_mu);
}

typedef struct rec {
    const char *name;
    int fail_init, fail_start, fail_fini; /* error to return, 0 = succeed */
    /* what the module saw */
    int topics_at_init, topics_at_start;
    int parts_at_stop, parts_at_fini;  /* partitions of topic "seen" */
    kt_topic *seen;                    /* referenced at start */
} rec;

static rec recs[4];

static int ntopics(klog *k)
{
    kt_topic **snap;
    ssize_t n = klog__topics_snapshot(k, &snap);
    if (n >= 0)
        klog__topics_release(snap, (size_t)n);
    return (int)n;
}

static int r_init(klog *k, void **state, char *errbuf, size_t errsize, rec *r)
{
    note("%s.init", r->name);
    r->topics_at_init = ntopics(k);
    if (r->fail_init) {
        snprintf(errbuf, errsize, "%s refuses", r->name);
        return r->fail_init;
    }
    *state = r;
    return 0;
}

static int r_start(klog *k, void *state, char *errbuf, size_t errsize)
{
    rec *r = state;
    note("%s.start", r->name);
    r->topics_at_start = ntopics(k);
    r->seen = klog__topic_get(k, "seen");
    if (r->fail_start) {
        klog__topic_put(r->seen);
        r->seen = NULL;
        snprintf(errbuf, errsize, "%s will not start", r->name);
        return r->fail_start;
    }
    return 0;
}

static void r_stop(klog *k, void *state)
{
    (void)k;
    rec *r = state;
    note("%s.stop", r->name);
    r->parts_at_stop = r->seen ? atomic_load(&r->seen->nparts) : -1;
}

static int r_fini(klog *k, void *state)
{
    (void)k;
    rec *r = state;
    note("%s.fini", r->name);
    r->parts_at_fini = r->seen ? atomic_load(&r->seen->nparts) : -1;
    klog__topic_put(r->seen);
    r->seen = NULL;
    return r->fail_fini;
}

static const char *kind_name(enum kt_event_kind kind)
{
    return kind == KT_EV_TOPIC_CREATED ? "created" : kind == KT_EV_TOPIC_DELETED ? "deleted" : "added";
}

static void r_event(klog *k, void *state, const kt_event *ev)
{
    (void)k;
    rec *r = state;
    note("%s.%s(%s,%d,%d)", r->name, kind_name(ev->kind), ev->topic->name, ev->from, ev->to);
}

/* init cannot tell which rec it serves from its arguments: one per slot. */
#define REC_INIT(i) \
    static int r_init##i(klog *k, void **st, char *e, size_t es) { return r_init(k, st, e, es, &recs[i]); }
REC_INIT(0)
REC_INIT(1)
REC_INIT(2)

static const kt_module mod_a = { "A", r_init0, r_start, r_stop, r_fini, r_event, NULL };
static const kt_module mod_b = { "B", r_init1, r_start, r_stop, r_fini, r_event, NULL };
static const kt_module mod_c = { "C", r_init2, r_start, r_stop, r_fini, NULL, NULL }; /* hears no events */
static const kt_module *const abc[] = { &mod_a, &mod_b, &mod_c };

static void reset(void)
{
    trail[0] = '\0';
    memset(recs, 0, sizeof recs);
    recs[0].name = "A";
    recs[1].name = "B";
    recs[2].name = "C";
}

static int open_abc(klog **k, char *err, size_t errsize)
{
    return klog__open(k, ut_dir, NULL, abc, 3, err, errsize);
}

/* A topic "seen" from an earlier run, so that the order against loading
 * shows. */
static void make_seen_topic(void)
{
    klog *k = ut_open();
    ut_topic(k, "seen", 2, NULL);
    cr_assert_eq(klog_close(k), 0);
}

/* ---- order ------------------------------------------------------------------------ */

Test(modules, init_and_start_in_order_stop_and_fini_in_reverse)
{
    make_seen_topic();
    reset();
    klog *k = NULL;
    char err[256] = "";
    cr_assert_eq(open_abc(&k, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(trail, "A.init B.init C.init A.start B.start C.start");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(recs[i].topics_at_init, 0, "%s: init runs before the topics load", recs[i].name);
        cr_assert_eq(recs[i].topics_at_start, 1, "%s: start runs after the topics load", recs[i].name);
        cr_assert_not_null(recs[i].seen);
    }
    cr_assert_eq(klog__module_state(k, &mod_b), &recs[1], "a module's state is what its init stored");
    cr_assert_null(klog__module_state(k, &klog__maint_module), "a module not in the list has no state");
    trail[0] = '\0';
    cr_assert_eq(klog_close(k), 0);
    cr_assert_str_eq(trail, "C.stop B.stop A.stop C.fini B.fini A.fini");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(recs[i].parts_at_stop, 2, "%s: stop runs while the logs are open", recs[i].name);
        cr_assert_eq(recs[i].parts_at_fini, 0, "%s: fini runs after the logs closed", recs[i].name);
    }
}

/* ---- a module bound after open (klog__module_bind) ---------------------------------- */

/* The placeholder "B": wants the bound module when recs[3].fail_init is 0
 * (its state non-NULL), notes its part_open. */
static int p_init(klog *k, void **state, char *errbuf, size_t errsize)
{
    (void)k, (void)errbuf, (void)errsize;
    note("P.init");
    *state = recs[3].fail_init ? NULL : &recs[3];
    return 0;
}
static void p_part_open(klog *k, void *state, const char *topic, int index, kpart *p)
{
    (void)k, (void)p;
    if (state)
        note("P.part_open(%s,%d)", topic, index);
}
static void b_part_open(klog *k, void *state, const char *topic, int index, kpart *p)
{
    (void)k, (void)p;
    note("%s.part_open(%s,%d)", ((rec *)state)->name, topic, index);
}
static const kt_module place_b = { .name = "B", .init = p_init, .part_open = p_part_open };
static const kt_module bound_b = { "B", r_init1, r_start, r_stop, r_fini, r_event, b_part_open };
static const kt_module other_b = { "B", r_init2, r_start, r_stop, r_fini, NULL, NULL };
static const kt_module *const a_place_c[] = { &mod_a, &place_b, &mod_c };

Test(modules, a_module_bound_after_open_runs_in_its_place)
{
    make_seen_topic();
    reset();
    recs[3].name = "P";
    klog *k = NULL;
    char err[256] = "";
    cr_assert_eq(klog__open(&k, ut_dir, NULL, a_place_c, 3, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(trail, "A.init P.init C.init P.part_open(seen,0) P.part_open(seen,1) A.start C.start");
    cr_assert_null(klog__module_state(k, &bound_b), "nothing bound yet");
    trail[0] = '\0';
    cr_assert_eq(klog__module_bind(k, &bound_b, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(trail, "B.init B.start");
    cr_assert_eq(recs[1].topics_at_start, 1, "the bound module sees the loaded topics");
    cr_assert_eq(klog__module_state(k, &bound_b), &recs[1], "its state is found by the module");
    cr_assert_eq(klog__module_bind(k, &bound_b, err, sizeof err), 0, "binding it again: nothing");
    cr_assert_eq(klog__module_bind(k, &other_b, err, sizeof err), KLOG_ESTATE, "another module in its place");
    cr_assert_str_eq(trail, "B.init B.start");
    trail[0] = '\0';
    ut_topic(k, "late", 1, NULL);
    cr_assert_str_eq(trail, "P.part_open(late,0) B.part_open(late,0) A.created(late,0,1) B.created(late,0,1)",
                     "part_open after the placeholder's, events in the list's order");
    trail[0] = '\0';
    cr_assert_eq(klog_close(k), 0);
    cr_assert_str_eq(trail, "C.stop B.stop A.stop C.fini B.fini A.fini", "stopped and finished in its place");

    /* a placeholder that does not want it: nothing is bound, and no error */
    reset();
    recs[3].name = "P";
    recs[3].fail_init = 1;
    cr_assert_eq(klog__open(&k, ut_dir, NULL, a_place_c, 3, err, sizeof err), 0, "%s", err);
    trail[0] = '\0';
    cr_assert_eq(klog__module_bind(k, &bound_b, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(trail, "", "not bound");
    cr_assert_null(klog__module_state(k, &bound_b));
    cr_assert_eq(klog__module_bind(k, &mod_a, err, sizeof err), 0, "A is in the list itself: nothing");
    cr_assert_str_eq(trail, "");
    cr_assert_eq(klog_close(k), 0);
}

Test(modules, a_bound_module_that_fails_to_start_is_finished_at_close)
{
    reset();
    recs[3].name = "P";
    recs[1].fail_start = -EAGAIN;
    klog *k = NULL;
    char err[256] = "";
    cr_assert_eq(klog__open(&k, ut_dir, NULL, a_place_c, 3, err, sizeof err), 0, "%s", err);
    trail[0] = '\0';
    cr_assert_eq(klog__module_bind(k, &bound_b, err, sizeof err), -EAGAIN);
    cr_assert_str_eq(err, "B will not start");
    cr_assert_eq(klog__module_bind(k, &bound_b, err, sizeof err), KLOG_ESTATE, "and says so again");
    trail[0] = '\0';
    cr_assert_eq(klog_close(k), 0);
    cr_assert_str_eq(trail, "C.stop A.stop C.fini B.fini A.fini", "never started: not stopped; finished");
}

Test(modules, a_failing_init_unwinds_the_modules_before_it)
{
    reset();
    recs[1].fail_init = -EIO;
    klog *k = (klog *)&k;
    char err[256] = "";
    cr_assert_eq(open_abc(&k, err, sizeof err), -EIO);
    cr_assert_null(k);
    cr_assert_str_eq(err, "B refuses");
    cr_assert_str_eq(trail, "A.init B.init A.fini", "only A was initialised: only A is finished");
    /* and the directory is free again */
    reset();
    cr_assert_eq(open_abc(&k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(klog_close(k), 0);
}

Test(modules, a_failing_start_unwinds_what_started_and_every_init)
{
    make_seen_topic();
    reset();
    recs[1].fail_start = -EAGAIN;
    klog *k = NULL;
    char err[256] = "";
    cr_assert_eq(open_abc(&k, err, sizeof err), -EAGAIN);
    cr_assert_null(k);
    cr_assert_str_eq(err, "B will not start");
    cr_assert_str_eq(trail, "A.init B.init C.init A.start B.start A.stop C.fini B.fini A.fini");
    cr_assert_eq(recs[0].parts_at_stop, 2, "A stopped before the logs closed");
    cr_assert_eq(recs[0].parts_at_fini, 0, "A finished after the logs closed");
}

Test(modules, a_failing_fini_is_what_close_returns)
{
    reset();
    recs[2].fail_fini = -EIO;
    klog *k = NULL;
    char err[256] = "";
    cr_assert_eq(open_abc(&k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(klog_close(k), -EIO);
    cr_assert_str_eq(trail, "A.init B.init C.init A.start B.start C.start C.stop B.stop A.stop C.fini B.fini A.fini");
}

/* ---- the groups module --------------------------------------------------------------- */

/* The registry is created at open; its first use (reading the committed
 * offsets back, starting the timer) stays where the API documents it. */
Test(modules, the_group_registry_exists_from_open_and_is_set_up_at_first_use)
{
    klog *k = ut_open();
    kg_registry *r = klog__module_state(k, &kg_groups_module);
    cr_assert_not_null(r, "the group registry exists from open on");
    kg_registry *got = (kg_registry *)&got;
    cr_assert_eq(kg_registry_get(k, false, &got), 0);
    cr_assert_null(got, "not in use before the first group call");
    char **names;
    size_t n;
    cr_assert_eq(klog_group_list(k, &names, &n), 0);
    klog_group_list_free(names, n);
    cr_assert_eq(kg_registry_get(k, false, &got), 0);
    cr_assert_eq(got, r, "in use after it");
    cr_assert_eq(klog_close(k), 0);
}

/* A damaged __consumer_offsets does not stop klog_open: the first group
 * call reports it (KLOG_ECORRUPT, as klog/group.h says), and so does the
 * next one, which tries again. */
Test(modules, a_damaged_offsets_topic_fails_the_first_group_call_not_open)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    cr_assert_eq(klog_group_reset_offsets(k, "g", "t", 0, KLOG_RESET_OFFSET, 0), 1);
    cr_assert_eq(klog_close(k), 0);

    char path[512];
    snprintf(path, sizeof path, "%s/__consumer_offsets-0/00000000000000000000.log", ut_dir);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fseek(f, 80, SEEK_SET), 0); /* past the batch header, in its record */
    int c = fgetc(f);
    cr_assert_neq(c, EOF);
    cr_assert_eq(fseek(f, 80, SEEK_SET), 0);
    fputc(c ^ 0x5a, f);
    cr_assert_eq(fclose(f), 0);

    k = ut_open();
    char **names;
    size_t n;
    cr_assert_eq(klog_group_list(k, &names, &n), KLOG_ECORRUPT);
    int64_t off;
    cr_assert_eq(klog_group_committed(k, "g", "t", 0, &off), KLOG_ECORRUPT);
    kg_registry *got = (kg_registry *)&got;
    cr_assert_eq(kg_registry_get(k, false, &got), 0);
    cr_assert_null(got, "a failed first use leaves the registry unused");
    cr_assert_eq(klog_close(k), 0);
}

/* ---- events ------------------------------------------------------------------------- */

Test(modules, topic_events_reach_started_modules_in_order)
{
    reset();
    klog *k = NULL;
    char err[256] = "";
    cr_assert_eq(open_abc(&k, err, sizeof err), 0, "%s", err);
    trail[0] = '\0';
    ut_topic(k, "t", 2, NULL);
    cr_assert_str_eq(trail, "A.created(t,0,2) B.created(t,0,2)", "list order; C has no event op");
    trail[0] = '\0';
    cr_assert_eq(klog_topic_add_partitions(k, "t", 5), 0);
    cr_assert_str_eq(trail, "A.added(t,2,5) B.added(t,2,5)");
    trail[0] = '\0';
    cr_assert_eq(klog_topic_delete(k, "t"), 0);
    cr_assert_str_eq(trail, "A.deleted(t,0,5) B.deleted(t,0,5)");

    /* what fails sends nothing */
    trail[0] = '\0';
    ut_topic(k, "u", 1, NULL);
    trail[0] = '\0';
    cr_assert_eq(klog_topic_create(k, "u", 1, NULL, NULL, 0), -EEXIST);
    cr_assert_eq(klog_topic_add_partitions(k, "u", 1), -EINVAL);
    cr_assert_eq(klog_topic_add_partitions(k, "nope", 3), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(klog_topic_delete(k, "nope"), KLOG_EUNKNOWN_TOPIC);
    cr_assert_str_eq(trail, "");
    cr_assert_eq(klog_close(k), 0);

    /* topics loaded at open send none */
    reset();
    cr_assert_eq(open_abc(&k, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(trail, "A.init B.init C.init A.start B.start C.start");
    cr_assert_eq(klog_close(k), 0);
}

/* Concurrent creates and deletes of the same names: every module hears
 * each name's events alternate created/deleted, starting with created -
 * the order the changes were made in, whichever thread delivers. */
#define EV_THREADS 4
#define EV_ROUNDS 20

typedef struct ev_log {
    pthread_mutex_t mu;
    int last[EV_THREADS];   /* per name: 0 none, 1 created, 2 deleted */
    int events, bad;
} ev_log;

static ev_log evl = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void order_event(klog *k, void *state, const kt_event *ev)
{
    (void)k, (void)state;
    int i = ev->topic->name[1] - '0';
    pthread_mutex_lock(&evl.mu);
    int want = evl.last[i] == 1 ? KT_EV_TOPIC_DELETED : KT_EV_TOPIC_CREATED;
    if ((int)ev->kind != want)
        evl.bad++;
    evl.last[i] = ev->kind == KT_EV_TOPIC_CREATED ? 1 : 2;
    evl.events++;
    pthread_mutex_unlock(&evl.mu);
}

static const kt_module mod_order = { .name = "order", .event = order_event };

typedef struct churn_arg { klog *k; int i; int rc; } churn_arg;

static void *churn(void *arg)
{
    churn_arg *a = arg;
    char name[8];
    snprintf(name, sizeof name, "n%d", a->i % EV_THREADS);
    for (int r = 0; r < EV_ROUNDS && a->rc == 0; r++) {
        /* two threads per name: creates and deletes race */
        int rc = klog_topic_create(a->k, name, 1, NULL, NULL, 0);
        if (rc < 0 && rc != -EEXIST)
            a->rc = rc;
        rc = klog_topic_delete(a->k, name);
        if (rc < 0 && rc != KLOG_EUNKNOWN_TOPIC)
            a->rc = rc;
    }
    return NULL;
}

Test(modules, events_keep_the_order_of_concurrent_changes)
{
    const kt_module *const mods[] = { &mod_order };
    klog *k = NULL;
    char err[256] = "";
    cr_assert_eq(klog__open(&k, ut_dir, NULL, mods, 1, err, sizeof err), 0, "%s", err);
    pthread_t th[2 * EV_THREADS];
    churn_arg args[2 * EV_THREADS];
    for (int i = 0; i < 2 * EV_THREADS; i++) {
        args[i] = (churn_arg){ k, i, 0 };
        cr_assert_eq(pthread_create(&th[i], NULL, churn, &args[i]), 0);
    }
    for (int i = 0; i < 2 * EV_THREADS; i++) {
        cr_assert_eq(ut_join_within(th[i], 120), 0);
        cr_assert_eq(args[i].rc, 0, "thread %d: %s", i, klog_err_name(args[i].rc));
    }
    cr_assert_eq(evl.bad, 0, "%d of %d events out of order", evl.bad, evl.events);
    cr_assert_geq(evl.events, 2 * EV_THREADS, "every name was created and deleted at least once");
    for (int i = 0; i < EV_THREADS; i++)
        cr_assert_eq(evl.last[i], 2, "n%d: its last event is its deletion", i);
    cr_assert_eq(klog_close(k), 0);
}

/* ---- a topic's conf ------------------------------------------------------------------ */

/* klog_topic_alter_config changes the topic's conf in place: readers hold
 * its pointer without a lock, so it must stay valid (nothing retired to
 * keep until the topic goes) and read the new values at once. */
Test(modules, alter_config_changes_the_topic_conf_in_place)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, "retention.ms", "1000", NULL);
    kt_topic *t = klog__topic_get(k, "t");
    cr_assert_not_null(t);
    const klog_conf *before = t->conf;
    cr_assert_eq(klog__conf_int(t->conf, KC_RETENTION_MS), 1000);
    cr_assert(!klog__conf_isset(t->conf, KC_COMPRESSION_TYPE));
    char err[256] = "";
    for (int i = 0; i < 100; i++) {
        klog_conf *set = ut_conf("retention.ms", i % 2 ? "3000" : "2000", "compression.type", "lz4", NULL);
        const char *unset[] = { "compression.type" };
        int rc = klog_topic_alter_config(k, "t", set, i % 2 ? unset : NULL, i % 2 ? 1 : 0, err, sizeof err);
        klog_conf_free(set);
        cr_assert_eq(rc, 0, "%s", err);
        cr_assert_eq(t->conf, before, "the topic's conf never moves");
        cr_assert_eq(klog__conf_int(t->conf, KC_RETENTION_MS), i % 2 ? 3000 : 2000);
        /* set and unset in the same call: the unset wins, as before */
        cr_assert_eq(klog__conf_isset(t->conf, KC_COMPRESSION_TYPE), i % 2 ? 0 : 1);
    }
    klog__topic_put(t);
    cr_assert_eq(klog_close(k), 0);
}

/* The background thread's retention of a replicated partition stops at its
 * high watermark (Kafka's replicas delete no segment above it): records
 * not committed yet stay however small retention.bytes is, and go once
 * the HW passes them. */
Test(modules, retention_of_a_replicated_partition_stops_at_its_high_watermark)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, "segment.bytes", "1024", "retention.bytes", "1", NULL);
    kt_topic *t = klog__topic_get(k, "t");
    cr_assert_not_null(t);
    kpart *p = t->parts[0];
    kpart_set_replicated(p, true); /* the HW holds where the log ends: 0 */
    klog_producer *pr = ut_producer(k, "linger.ms", "0", NULL);
    char v[200];
    memset(v, 'v', sizeof v - 1);
    v[sizeof v - 1] = 0;
    for (int i = 0; i < 40; i++)
        cr_assert_eq(ut_send(pr, "t", 0, NULL, v), 0);
    cr_assert_eq(klog_producer_flush(pr, 10000), 0);
    cr_assert_eq(kpart_end_offset(p), 40);
    cr_assert_gt(ks_log_segment_count(kpart_log(p)), 4, "several segments");
    klog__maint_retention(k, true);
    cr_assert_eq(kpart_start_offset(p), 0, "retention deleted records above the high watermark (0)");
    /* the HW moves to 20: the segments wholly below it go, no more */
    cr_assert_eq(kpart_advance_hw(p, 20), 20);
    klog__maint_retention(k, true);
    int64_t start = kpart_start_offset(p);
    cr_assert(start > 0 && start <= 20, "start %lld with the HW at 20", (long long)start);
    /* one replica again: retention.bytes applies to all of it */
    kpart_set_replicated(p, false);
    klog__maint_retention(k, true);
    cr_assert_gt(kpart_start_offset(p), 20, "start %lld unbounded", (long long)kpart_start_offset(p));
    cr_assert_eq(klog_producer_close(pr), 0);
    klog__topic_put(t);
    cr_assert_eq(klog_close(k), 0);
}
