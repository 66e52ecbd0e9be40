/*
 * The configuration key registry (lib/common/conf.h): every subsystem's
 * table passes the registry check (no name twice across tables, no hole,
 * defaults in range, a doc line each), every key is reachable by name and
 * by id, the error messages that used to be special cases in conf.c come
 * out of the tables unchanged, and klog__conf_publish changes a conf that
 * other threads are reading without ever showing them a mix.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <klog/klog.h>

#include "common/conf.h"
#include "compose.h"
#include "consumer/conf_keys.h"
#include "group/conf_keys.h"
#include "producer/conf_keys.h"
#include "storage/conf_keys.h"
#include "topic/conf_keys.h"

/* ---- the library's tables ------------------------------------------------------- */

Test(registry, the_library_tables_pass_the_check)
{
    char e[256] = "";
    cr_assert_eq(klog__conf_ntables, KC_TABLE__COUNT);
    cr_assert_eq(klog__conf_tables_check(klog__conf_tables, klog__conf_ntables, e, sizeof e), 0, "%s", e);
}

/* Every key of every table: found by name, its id leads back to it, and
 * its default reads back through klog_conf_get and sets again. */
Test(registry, every_key_is_reachable_by_name_and_id)
{
    klog_conf *c;
    cr_assert_eq(klog_conf_new(&c), 0);
    unsigned keys = 0;
    for (unsigned t = 0; t < klog__conf_ntables; t++)
        for (unsigned i = 0; i < klog__conf_tables[t]->n; i++) {
            const kc_def *d = &klog__conf_tables[t]->defs[i];
            cr_assert_eq(klog__conf_def(KC_KEY_BASE(t) + i), d, "%s: its id", d->name);
            char v[300];
            int n = klog_conf_get(c, d->name, v, sizeof v);
            cr_assert_geq(n, 0, "%s: %s", d->name, klog_err_name(n));
            char e[256] = "";
            cr_assert_eq(klog_conf_set(c, d->name, v, e, sizeof e), 0, "%s=%s: %s", d->name, v, e);
            cr_assert(klog__conf_isset(c, KC_KEY_BASE(t) + i), "%s", d->name);
            if (d->type != KC_TYPE_STR)
                cr_assert_eq(klog__conf_int(c, KC_KEY_BASE(t) + i), d->def, "%s: the default set again", d->name);
            keys++;
        }
    /* 50 keys of klog 0.1, the server's 17 (lib/server/conf_keys.c: 7,
     * then 8 for security and 2 for quotas), log.recovery.verify.all
     * (issue 19), log.max.open.files and log.index.cache.max.bytes (issue
     * 18), replication's 9 (lib/replication/conf_keys.c, issue 16) and the
     * TLS transport's 10 (lib/transport/conf_keys.c), read.only and
     * log.flush.offset.checkpoint.interval.ms (issue 18), the quorum
     * controller's 4 (replication.controller, replication.witnesses,
     * replica.session.timeout.ms, controller.quorum.election.timeout.ms),
     * replication.sasl.* (3, issue 15) and log.recovery.unchecked.max.bytes
     * (issue 18), compression.threads (issue 21), the quorum's leader
     * rebalance (3: auto.leader.rebalance.enable,
     * leader.imbalance.check.interval.seconds,
     * leader.imbalance.per.broker.percentage). */
    cr_assert_eq(keys, 103, "the 103 keys: none lost, none added by accident");
    /* and Kafka's other spellings of the log keys (issue 20), which are
     * not keys of their own: each reads and sets its key */
    unsigned aliases = 0;
    for (unsigned l = 0; klog__conf_aliases[l]; l++)
        for (const kc_alias *a = klog__conf_aliases[l]; a->name; a++) {
            char v[300];
            cr_assert_geq(klog_conf_get(c, a->name, v, sizeof v), 0, "%s", a->name);
            char e[256] = "";
            cr_assert_eq(klog_conf_set(c, a->name, v, e, sizeof e), 0, "%s=%s: %s", a->name, v, e);
            aliases++;
        }
    cr_assert_eq(aliases, 17, "the 17 aliases: none lost, none added by accident");
    klog_conf_free(c);
}

/* The ids the code reads with name the keys the docs name. */
Test(registry, key_ids_name_their_keys)
{
    static const struct { kc_key id; const char *name; } ids[] = {
        { KC_IO_BACKEND, "io.backend" }, { KC_NUM_PARTITIONS, "num.partitions" },
        { KC_DISK_BUDGET_BYTES, "disk.budget.bytes" }, { KC_DISK_BUDGET_POLICY, "disk.budget.policy" },
        { KC_RETENTION_CHECK_MS, "log.retention.check.interval.ms" }, { KC_CLEANER_ENABLE, "log.cleaner.enable" },
        { KC_CLEANER_THREADS, "log.cleaner.threads" }, { KC_CLEANER_BACKOFF_MS, "log.cleaner.backoff.ms" },
        { KC_CLEANER_DEDUPE_BYTES, "log.cleaner.dedupe.buffer.size" },
        { KC_CLEANER_IO_RATE, "log.cleaner.io.max.bytes.per.second" },
        { KC_STATISTICS_INTERVAL_MS, "statistics.interval.ms" }, { KC_CLIENT_ID, "client.id" },
        { KC_MAX_OPEN_FILES, "log.max.open.files" }, { KC_INDEX_CACHE_BYTES, "log.index.cache.max.bytes" },
        { KC_READ_ONLY, "read.only" }, { KC_CKPT_INTERVAL_MS, "log.flush.offset.checkpoint.interval.ms" },
        { KC_CKPT_UNCHECKED_MAX, "log.recovery.unchecked.max.bytes" },
        { KC_SEGMENT_BYTES, "segment.bytes" }, { KC_SEGMENT_MS, "segment.ms" },
        { KC_INDEX_INTERVAL_BYTES, "index.interval.bytes" }, { KC_MAX_MESSAGE_BYTES, "max.message.bytes" },
        { KC_RETENTION_MS, "retention.ms" }, { KC_RETENTION_BYTES, "retention.bytes" },
        { KC_CLEANUP_POLICY, "cleanup.policy" }, { KC_FLUSH_MESSAGES, "flush.messages" },
        { KC_FLUSH_MS, "flush.ms" }, { KC_COMPRESSION_TYPE, "compression.type" },
        { KC_DELETE_RETENTION_MS, "delete.retention.ms" },
        { KC_MIN_CLEANABLE_DIRTY_RATIO, "min.cleanable.dirty.ratio" },
        { KC_MIN_COMPACTION_LAG_MS, "min.compaction.lag.ms" }, { KC_ACKS, "acks" }, { KC_LINGER_MS, "linger.ms" },
        { KC_BATCH_SIZE, "batch.size" }, { KC_BATCH_NUM_MESSAGES, "batch.num.messages" },
        { KC_COMPRESSION_LEVEL, "compression.level" }, { KC_BUFFER_MEMORY, "buffer.memory" },
        { KC_MAX_BLOCK_MS, "max.block.ms" }, { KC_ENABLE_IDEMPOTENCE, "enable.idempotence" },
        { KC_PARTITIONER, "partitioner" }, { KC_DELIVERY_REPORT_QUEUE, "delivery.report.queue" },
        { KC_COMPRESSION_THREADS, "compression.threads" },
        { KC_AUTO_OFFSET_RESET, "auto.offset.reset" }, { KC_FETCH_MAX_BYTES, "fetch.max.bytes" },
        { KC_MAX_POLL_RECORDS, "max.poll.records" }, { KC_CHECK_CRCS, "check.crcs" },
        { KC_POLL_SPIN_US, "poll.spin.us" }, { KC_GROUP_ID, "group.id" },
        { KC_GROUP_INSTANCE_ID, "group.instance.id" }, { KC_SESSION_TIMEOUT_MS, "session.timeout.ms" },
        { KC_HEARTBEAT_INTERVAL_MS, "heartbeat.interval.ms" }, { KC_MAX_POLL_INTERVAL_MS, "max.poll.interval.ms" },
        { KC_ASSIGNMENT_STRATEGY, "partition.assignment.strategy" },
        { KC_ENABLE_AUTO_COMMIT, "enable.auto.commit" }, { KC_AUTO_COMMIT_INTERVAL_MS, "auto.commit.interval.ms" },
        { KC_OFFSETS_PARTITIONS, "offsets.topic.num.partitions" },
        { KC_INITIAL_REBALANCE_DELAY_MS, "group.initial.rebalance.delay.ms" },
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        const kc_def *d = klog__conf_def(ids[i].id);
        cr_assert_not_null(d, "%s: no key at its id", ids[i].name);
        cr_assert_str_eq(d->name, ids[i].name);
    }
}

/* ---- the check rejects bad tables ---------------------------------------------------- */

static const kc_def defs_a[] = {
    KC_INT("a.one", KC_SCOPE_PRODUCER, 1, 0, 10, "first"),
    KC_INT("shared.key", KC_SCOPE_PRODUCER, 1, 0, 10, "in both"),
};
static const kc_def defs_b[] = {
    KC_BOOL("b.one", KC_SCOPE_CONSUMER, 0, "first"),
    KC_INT("shared.key", KC_SCOPE_CONSUMER, 2, 0, 10, "in both"),
};
static const kc_table tab_a = { "alpha", 0, defs_a, 2 };
static const kc_table tab_b = { "beta", 1, defs_b, 2 };

Test(registry, a_name_in_two_tables_is_rejected)
{
    const kc_table *const two[] = { &tab_a, &tab_b };
    char e[256] = "";
    cr_assert_eq(klog__conf_tables_check(two, 2, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "shared.key: defined twice (tables alpha and beta)");
    /* each alone is fine */
    cr_assert_eq(klog__conf_tables_check(two, 1, e, sizeof e), 0, "%s", e);
    /* ... and so is a library table next to a test one, unless names meet */
    const kc_table *const lib_and_dup[] = { klog__conf_tables[0], &(kc_table){ "dup", 1, defs_a, 2 } };
    cr_assert_eq(klog__conf_tables_check(lib_and_dup, 2, e, sizeof e), 0, "%s", e);
    static const kc_def clash[] = { KC_INT("linger.ms", KC_SCOPE_PRODUCER, 5, 0, 9, "again") };
    const kc_table *const lib_clash[] = { klog__conf_tables[0], klog__conf_tables[1], klog__conf_tables[2],
                                          &(kc_table){ "mine", 3, clash, 1 } };
    cr_assert_eq(klog__conf_tables_check(lib_clash, 4, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "linger.ms: defined twice (tables producer and mine)");
}

Test(registry, holes_bad_defaults_missing_docs_and_wrong_ids_are_rejected)
{
    char e[256] = "";
    static const kc_def hole[3] = { [0] = KC_INT("h.zero", 1, 0, 0, 1, "x"), [2] = KC_INT("h.two", 1, 0, 0, 1, "x") };
    const kc_table *const t1[] = { &(kc_table){ "holey", 0, hole, 3 } };
    cr_assert_eq(klog__conf_tables_check(t1, 1, e, sizeof e), KLOG_ECONF);
    cr_assert(strstr(e, "hole") != NULL, "%s", e);

    static const kc_def range[] = { KC_INT("r.key", 1, 11, 0, 10, "x") };
    const kc_table *const t2[] = { &(kc_table){ "range", 0, range, 1 } };
    cr_assert_eq(klog__conf_tables_check(t2, 1, e, sizeof e), KLOG_ECONF);
    cr_assert(strstr(e, "r.key") && strstr(e, "default 11"), "%s", e);

    static const kc_def nodoc[] = { KC_INT("d.key", 1, 0, 0, 10, "") };
    const kc_table *const t3[] = { &(kc_table){ "nodoc", 0, nodoc, 1 } };
    cr_assert_eq(klog__conf_tables_check(t3, 1, e, sizeof e), KLOG_ECONF);
    cr_assert(strstr(e, "no doc") != NULL, "%s", e);

    static const char *const vals[] = { "x", "y", NULL };
    static const kc_def badenum[] = { KC_ENUM("e.key", 1, 2, vals, "x") };
    const kc_table *const t4[] = { &(kc_table){ "enum", 0, badenum, 1 } };
    cr_assert_eq(klog__conf_tables_check(t4, 1, e, sizeof e), KLOG_ECONF);
    cr_assert(strstr(e, "e.key") != NULL, "%s", e);

    const kc_table *const t5[] = { &tab_b }; /* id 1 listed at 0 */
    cr_assert_eq(klog__conf_tables_check(t5, 1, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "table beta has id 1 but is listed at 0");
}

static void expect_err(klog_conf *c, const char *key, const char *value, const char *msg)
{
    char e[256] = "";
    cr_assert_eq(klog_conf_set(c, key, value, e, sizeof e), KLOG_ECONF, "%s=%s", key, value);
    cr_assert_str_eq(e, msg);
}

/* ---- Kafka's other spellings (issue 20) ------------------------------------------------ */

Test(aliases, the_library_aliases_pass_the_check)
{
    char e[256] = "";
    cr_assert_eq(klog__conf_aliases_check(klog__conf_aliases, e, sizeof e), 0, "%s", e);
}

Test(aliases, bad_alias_lists_are_rejected)
{
    char e[256] = "";
    static const kc_alias to_nothing[] = { { "no.key", KC_KEY_BASE(KC_TABLE_LOG) + 31, 1 }, { NULL, 0, 0 } };
    static const kc_alias unit_on_enum[] = { { "x.policy", KC_CLEANUP_POLICY, 60 }, { NULL, 0, 0 } };
    static const kc_alias is_a_key[] = { { "linger.ms", KC_LINGER_MS, 1 }, { NULL, 0, 0 } };
    static const kc_alias twice[] = { { "retention.hours", KC_RETENTION_MS, 3600000 }, { NULL, 0, 0 } };
    const kc_alias *const l1[] = { to_nothing, NULL }, *const l2[] = { unit_on_enum, NULL },
                          *const l3[] = { is_a_key, NULL }, *const l4[] = { klog__log_conf_aliases, twice, NULL };
    cr_assert_eq(klog__conf_aliases_check(l1, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "alias no.key: names no key");
    cr_assert_eq(klog__conf_aliases_check(l2, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "alias x.policy: a unit on cleanup.policy, which is not an integer key");
    cr_assert_eq(klog__conf_aliases_check(l3, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "linger.ms: both a key and an alias");
    cr_assert_eq(klog__conf_aliases_check(l4, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "retention.hours: an alias twice");
}

Test(aliases, set_the_key_in_its_unit)
{
    klog_conf *c;
    char e[256] = "", v[64];
    cr_assert_eq(klog_conf_new(&c), 0);
    cr_assert_eq(klog_conf_set(c, "retention.hours", "2", e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog__conf_int(c, KC_RETENTION_MS), 7200000);
    cr_assert_eq(klog_conf_get(c, "retention.ms", v, sizeof v), 7);
    cr_assert_str_eq(v, "7200000");
    cr_assert_eq(klog_conf_get(c, "retention.hours", v, sizeof v), 1);
    cr_assert_str_eq(v, "2");
    cr_assert_eq(klog_conf_set(c, "retention.minutes", "90", e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog__conf_int(c, KC_RETENTION_MS), 5400000);
    cr_assert_eq(klog_conf_set_int(c, "log.retention.hours", 1, e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog__conf_int(c, KC_RETENTION_MS), 3600000);
    /* -1 is forever in every unit, as in Kafka */
    cr_assert_eq(klog_conf_set(c, "log.retention.hours", "-1", e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog__conf_int(c, KC_RETENTION_MS), -1);
    cr_assert_eq(klog_conf_get(c, "retention.hours", v, sizeof v), 2);
    cr_assert_str_eq(v, "-1");
    cr_assert_eq(klog_conf_set(c, "retention.hours", "-2", e, sizeof e), KLOG_ECONF);
    cr_assert_eq(klog_conf_set(c, "retention.hours", "9223372036854775807", e, sizeof e), KLOG_ECONF);
    cr_assert(strstr(e, "retention.hours: 9223372036854775807 is out of range"), "%s", e);
    cr_assert_eq(klog__conf_int(c, KC_RETENTION_MS), -1, "a refused value changes nothing");
    /* same-unit broker spellings, of every type */
    cr_assert_eq(klog_conf_set(c, "log.segment.bytes", "1048576", e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog__conf_int(c, KC_SEGMENT_BYTES), 1048576);
    cr_assert_eq(klog_conf_set(c, "log.cleanup.policy", "compact", e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog__conf_int(c, KC_CLEANUP_POLICY), KC_CLEANUP_COMPACT);
    cr_assert_eq(klog_conf_set(c, "log.cleaner.min.cleanable.ratio", "0.25", e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog__conf_int(c, KC_MIN_CLEANABLE_DIRTY_RATIO), KC_RATIO_ONE / 4);
    cr_assert_eq(klog_conf_set(c, "log.roll.hours", "1", e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog__conf_int(c, KC_SEGMENT_MS), 3600000);
    /* errors name the spelling used */
    expect_err(c, "log.segment.bytes", "12", "log.segment.bytes: 12 is out of range [1024, 2147483647]");
    /* dumped (topic metadata, describe) under the key's own name */
    char dump[512];
    cr_assert_gt(klog__conf_dump(c, KC_SCOPE_TOPIC, dump, sizeof dump), 0);
    cr_assert(strstr(dump, "retention.ms=-1\n"), "%s", dump);
    cr_assert(strstr(dump, "segment.bytes=1048576\n"), "%s", dump);
    cr_assert_null(strstr(dump, "log."), "%s", dump);
    /* unset through an alias (topics alter --delete-config) */
    cr_assert_eq(klog__conf_unset(c, "log.retention.minutes", KC_SCOPE_TOPIC, e, sizeof e), 0, "%s", e);
    cr_assert_not(klog__conf_isset(c, KC_RETENTION_MS));
    klog_conf_free(c);
}

Test(aliases, did_you_mean)
{
    static const struct { const char *typo, *near; } cases[] = {
        { "retention.msx", "retention.ms" }, { "log.retension.hours", "log.retention.hours" },
        { "lnger.ms", "linger.ms" }, { "auto.offset.rest", "auto.offset.reset" },
        { "Acks", "acks" }, { "segment.byte", "segment.bytes" },
        { "zzz", NULL }, { "completely.unrelated.key", NULL }, { "", NULL },
        { "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = klog__conf_suggest(cases[i].typo);
        if (cases[i].near)
            cr_assert(got && !strcmp(got, cases[i].near), "%s: %s, not %s", cases[i].typo, got ? got : "none",
                      cases[i].near);
        else
            cr_assert_null(got, "%s: %s", cases[i].typo, got);
    }
    klog_conf *c;
    char e[256] = "";
    cr_assert_eq(klog_conf_new(&c), 0);
    cr_assert_eq(klog_conf_set_int(c, "retention.msx", 5, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "retention.msx: unknown configuration key (did you mean retention.ms?)");
    cr_assert_eq(klog__conf_unset(c, "log.segment.byte", KC_SCOPE_TOPIC, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "log.segment.byte: unknown configuration key (did you mean log.segment.bytes?)");
    klog_conf_free(c);
}

/* A key of another scope is named with the scope it belongs to (issue 20). */
Test(aliases, a_key_of_another_scope_names_its_scope)
{
    klog_conf *c;
    char e[256] = "";
    cr_assert_eq(klog_conf_new(&c), 0);
    cr_assert_eq(klog_conf_set(c, "retention.ms", "1000", e, sizeof e), 0);
    cr_assert_eq(klog__conf_check_scope(c, KC_SCOPE_PRODUCER | KC_SCOPE_CONSUMER, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "retention.ms: a topic key, not a producer or consumer key");
    cr_assert_eq(klog__conf_unset(c, "io.backend", KC_SCOPE_TOPIC, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "io.backend: an instance key, not a topic key");
    cr_assert_eq(klog__conf_unset(c, "compression.level", KC_SCOPE_TOPIC, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "compression.level: a producer key, not a topic key");
    klog_conf_free(c);
}

/* ---- messages that were special cases --------------------------------------------------- */

Test(registry, messages_are_unchanged)
{
    klog_conf *c;
    cr_assert_eq(klog_conf_new(&c), 0);
    char e[256] = "";
    expect_err(c, "frobnicate.level", "5", "frobnicate.level: unknown configuration key");
    cr_assert_eq(klog_conf_set_int(c, "frobnicate.level", 5, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "frobnicate.level: unknown configuration key");
    /* close to a key: the "did you mean" of issue 20 */
    expect_err(c, "linger.msec", "5", "linger.msec: unknown configuration key (did you mean linger.ms?)");
    expect_err(c, "acks", "2", "acks: \"2\" is not 0, 1, all or -1");
    cr_assert_eq(klog_conf_set_int(c, "acks", 2, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "acks: 2 is not 0, 1 or -1");
    expect_err(c, "compression.type", "brotli", "compression.type: \"brotli\" is not one of the accepted values");
    expect_err(c, "linger.ms", "1000000", "linger.ms: 1000000 is out of range [0, 900000]");
    expect_err(c, "linger.ms", "soon", "linger.ms: \"soon\" is not an integer");
    expect_err(c, "check.crcs", "maybe", "check.crcs: \"maybe\" is not true or false");
    expect_err(c, "min.cleanable.dirty.ratio", "2", "min.cleanable.dirty.ratio: \"2\" is not a number from 0 to 1");
    char longv[300];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    expect_err(c, "group.id", longv, "group.id: value longer than 255 bytes");
    cr_assert_eq(klog_conf_set_int(c, "cleanup.policy", 1, e, sizeof e), KLOG_ECONF);
    cr_assert_str_eq(e, "cleanup.policy: takes a string value, not an integer");

    /* other spellings, stored as their value and shown canonically */
    char v[64];
    cr_assert_eq(klog_conf_set(c, "cleanup.policy", "delete,compact", e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog_conf_get(c, "cleanup.policy", v, sizeof v), 14);
    cr_assert_str_eq(v, "compact,delete");
    cr_assert_eq(klog__conf_int(c, KC_CLEANUP_POLICY), KC_CLEANUP_COMPACT_DELETE);
    cr_assert_eq(klog_conf_set(c, "compression.type", "uncompressed", e, sizeof e), 0, "%s", e);
    klog_conf_get(c, "compression.type", v, sizeof v);
    cr_assert_str_eq(v, "none");
    /* gzip and snappy, refused before klog had them, are values like the others */
    cr_assert_eq(klog_conf_set(c, "compression.type", "gzip", e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog__conf_int(c, KC_COMPRESSION_TYPE), KC_COMPRESSION_GZIP);
    cr_assert_eq(klog_conf_set(c, "compression.type", "snappy", e, sizeof e), 0, "%s", e);
    klog_conf_get(c, "compression.type", v, sizeof v);
    cr_assert_str_eq(v, "snappy");
    cr_assert_eq(klog_conf_set_int(c, "acks", -1, e, sizeof e), 0, "%s", e);
    klog_conf_get(c, "acks", v, sizeof v);
    cr_assert_str_eq(v, "all");
    klog_conf_free(c);
}

/* topics.meta and klog_topic_describe list a topic's keys in the order
 * klog has always written them. */
Test(registry, topic_keys_dump_in_the_old_order)
{
    klog_conf *c;
    cr_assert_eq(klog_conf_new(&c), 0);
    static const char *const order[] = {
        "num.partitions", "segment.bytes", "segment.ms", "index.interval.bytes", "max.message.bytes",
        "retention.ms", "retention.bytes", "cleanup.policy", "flush.messages", "flush.ms", "compression.type",
        "delete.retention.ms", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
    };
    char want[1024] = "";
    /* set in reverse, to see that the order is the registry's */
    for (size_t i = sizeof order / sizeof order[0]; i-- > 0;) {
        char v[64];
        klog_conf_get(c, order[i], v, sizeof v);
        cr_assert_eq(klog_conf_set(c, order[i], v, NULL, 0), 0, "%s", order[i]);
    }
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        char v[64];
        klog_conf_get(c, order[i], v, sizeof v);
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s=%s\n", order[i], v);
    }
    cr_assert_eq(klog_conf_set(c, "linger.ms", "7", NULL, 0), 0); /* not a topic key: left out */
    char got[1024];
    cr_assert_eq(klog__conf_dump(c, KC_SCOPE_TOPIC, got, sizeof got), (int)strlen(want));
    cr_assert_str_eq(got, want);
    klog_conf_free(c);
}

/* ---- publishing into a conf being read ------------------------------------------------ */

static klog_conf *live;
static atomic_bool stop_readers;
static atomic_long mixed, reads;

/* What each published conf says: retention.ms 1000 with compression.type
 * unset, or retention.ms 2000 with compression.type lz4.  A reader must
 * see one of them per key: for compression.type, set means lz4. */
static void *reader(void *arg)
{
    (void)arg;
    long bad = 0, n = 0;
    while (!atomic_load(&stop_readers)) {
        int64_t r = klog__conf_int(live, KC_RETENTION_MS);
        if (r != 1000 && r != 2000)
            bad++;
        int64_t ct;
        if (klog__conf_int_isset(live, KC_COMPRESSION_TYPE, &ct) && ct != KC_COMPRESSION_LZ4)
            bad++;
        n++;
    }
    atomic_fetch_add(&mixed, bad);
    atomic_fetch_add(&reads, n);
    return NULL;
}

Test(registry, publish_shows_readers_old_or_new_values_only)
{
    klog_conf *one, *two;
    cr_assert_eq(klog_conf_new(&one), 0);
    cr_assert_eq(klog_conf_set(one, "retention.ms", "1000", NULL, 0), 0);
    cr_assert_eq(klog_conf_set(one, "client.id", "kept", NULL, 0), 0);
    cr_assert_eq(klog_conf_dup(one, &two), 0);
    cr_assert_eq(klog_conf_set(two, "retention.ms", "2000", NULL, 0), 0);
    cr_assert_eq(klog_conf_set(two, "compression.type", "lz4", NULL, 0), 0);
    cr_assert_eq(klog_conf_dup(one, &live), 0);

    /* single-threaded: live reads as next after each publish */
    klog__conf_publish(live, two);
    cr_assert_eq(klog__conf_int(live, KC_RETENTION_MS), 2000);
    cr_assert_eq(klog__conf_int(live, KC_COMPRESSION_TYPE), KC_COMPRESSION_LZ4);
    klog__conf_publish(live, one);
    cr_assert_eq(klog__conf_int(live, KC_RETENTION_MS), 1000);
    cr_assert(!klog__conf_isset(live, KC_COMPRESSION_TYPE));
    cr_assert_eq(klog__conf_int(live, KC_COMPRESSION_TYPE), KC_COMPRESSION_NONE, "unset reads the default");
    cr_assert_str_eq(klog__conf_str(live, KC_CLIENT_ID), "kept", "strings are left as they are");

    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, reader, NULL), 0);
    for (int i = 0; i < 200000; i++)
        klog__conf_publish(live, i % 2 ? one : two);
    atomic_store(&stop_readers, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&mixed), 0, "%ld of %ld reads saw a value no conf had", atomic_load(&mixed),
                 atomic_load(&reads));
    klog_conf_free(live);
    klog_conf_free(one);
    klog_conf_free(two);
}
