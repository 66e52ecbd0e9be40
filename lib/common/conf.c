/*
 * lib/common/conf.c - klog_conf: Kafka-style keys, parsed and range-checked
 * when set, read by id inside the library.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <klog/conf.h>
#include <klog/error.h>

#include "common/common.h"
#include "common/conf.h"

enum kc_type { KT_INT, KT_BOOL, KT_ENUM, KT_STR, KT_ACKS, KT_RATIO };

struct kc_def {
    const char *name;
    enum kc_type type;
    unsigned scope;
    int64_t def, min, max;
    const char *const *values; /* KT_ENUM: NULL-terminated */
};

static const char *const v_backend[] = { "auto", "uring", "posix", NULL };
static const char *const v_cleanup[] = { "delete", "compact", "compact,delete", NULL };
static const char *const v_compress[] = { "none", "lz4", "zstd", "producer", NULL };
static const char *const v_partitioner[] = { "default", "hash", "sticky", "round_robin", NULL };
static const char *const v_reset[] = { "latest", "earliest", "none", NULL };
static const char *const v_budget[] = { "delete-oldest", "refuse", NULL };
static const char *const v_assign[] = { "range", "roundrobin", "cooperative-sticky", NULL };

#define I(n, sc, d, lo, hi) { n, KT_INT, sc, d, lo, hi, NULL }
#define B(n, sc, d) { n, KT_BOOL, sc, d, 0, 1, NULL }
#define E(n, sc, d, v) { n, KT_ENUM, sc, d, 0, 0, v }
#define S(n, sc) { n, KT_STR, sc, 0, 0, 0, NULL }
enum { SI = KC_SCOPE_INSTANCE, ST = KC_SCOPE_TOPIC, SP = KC_SCOPE_PRODUCER, SC = KC_SCOPE_CONSUMER };

static const struct kc_def defs[KC__COUNT] = {
    [KC_IO_BACKEND] = E("io.backend", SI, KC_BACKEND_AUTO, v_backend),
    [KC_NUM_PARTITIONS] = I("num.partitions", ST, 1, 1, 10000),
    [KC_SEGMENT_BYTES] = I("segment.bytes", ST, 1073741824, 1024, 2147483647),
    [KC_SEGMENT_MS] = I("segment.ms", ST, 604800000, 1, INT64_MAX / 2),
    [KC_INDEX_INTERVAL_BYTES] = I("index.interval.bytes", ST, 4096, 1, 2147483647),
    [KC_MAX_MESSAGE_BYTES] = I("max.message.bytes", ST, 1048576, 1, 64 * 1024 * 1024 - 65536),
    [KC_RETENTION_MS] = I("retention.ms", ST, 604800000, -1, INT64_MAX / 2),
    [KC_RETENTION_BYTES] = I("retention.bytes", ST, -1, -1, INT64_MAX / 2),
    [KC_CLEANUP_POLICY] = E("cleanup.policy", ST, KC_CLEANUP_DELETE, v_cleanup),
    [KC_FLUSH_MESSAGES] = I("flush.messages", ST, 0, 0, INT64_MAX / 2),
    [KC_FLUSH_MS] = I("flush.ms", ST, 0, 0, INT64_MAX / 2),
    [KC_ACKS] = { "acks", KT_ACKS, SP, 1, -1, 1, NULL },
    [KC_LINGER_MS] = I("linger.ms", SP, 5, 0, 900000),
    [KC_BATCH_SIZE] = I("batch.size", SP, 1000000, 128, 64 * 1024 * 1024 - 65536),
    [KC_BATCH_NUM_MESSAGES] = I("batch.num.messages", SP, 10000, 1, 1000000),
    [KC_COMPRESSION_TYPE] = E("compression.type", SP | ST, KC_COMPRESSION_NONE, v_compress),
    [KC_COMPRESSION_LEVEL] = I("compression.level", SP, -1, -1, 22),
    [KC_BUFFER_MEMORY] = I("buffer.memory", SP, 33554432, 65536, INT64_MAX / 2),
    [KC_MAX_BLOCK_MS] = I("max.block.ms", SP, 60000, 0, INT64_MAX / 2),
    [KC_ENABLE_IDEMPOTENCE] = B("enable.idempotence", SP, 1),
    [KC_PARTITIONER] = E("partitioner", SP, KC_PARTITIONER_DEFAULT, v_partitioner),
    [KC_DELIVERY_REPORT_QUEUE] = B("delivery.report.queue", SP, 0),
    [KC_AUTO_OFFSET_RESET] = E("auto.offset.reset", SC, KC_RESET_LATEST, v_reset),
    [KC_FETCH_MAX_BYTES] = I("fetch.max.bytes", SC, 1048576, 1024, 64 * 1024 * 1024),
    [KC_MAX_POLL_RECORDS] = I("max.poll.records", SC, 500, 1, 1000000),
    [KC_CHECK_CRCS] = B("check.crcs", SC, 1),
    [KC_POLL_SPIN_US] = I("poll.spin.us", SC, 0, 0, 1000000),
    [KC_GROUP_ID] = S("group.id", SC),
    [KC_CLIENT_ID] = S("client.id", SP | SC),
    [KC_DELETE_RETENTION_MS] = I("delete.retention.ms", ST, 86400000, 0, INT64_MAX / 2),
    [KC_MIN_CLEANABLE_DIRTY_RATIO] = { "min.cleanable.dirty.ratio", KT_RATIO, ST, KC_RATIO_ONE / 2, 0,
                                       KC_RATIO_ONE, NULL },
    [KC_MIN_COMPACTION_LAG_MS] = I("min.compaction.lag.ms", ST, 0, 0, INT64_MAX / 2),
    [KC_DISK_BUDGET_BYTES] = I("disk.budget.bytes", SI, 0, 0, INT64_MAX / 2),
    [KC_DISK_BUDGET_POLICY] = E("disk.budget.policy", SI, KC_BUDGET_DELETE_OLDEST, v_budget),
    [KC_RETENTION_CHECK_MS] = I("log.retention.check.interval.ms", SI, 1000, 1, INT64_MAX / 2),
    [KC_CLEANER_ENABLE] = B("log.cleaner.enable", SI, 1),
    [KC_CLEANER_THREADS] = I("log.cleaner.threads", SI, 1, 1, 16),
    [KC_CLEANER_BACKOFF_MS] = I("log.cleaner.backoff.ms", SI, 1000, 1, INT64_MAX / 2),
    [KC_CLEANER_DEDUPE_BYTES] = I("log.cleaner.dedupe.buffer.size", SI, 32 << 20, 65536, 1ll << 36),
    [KC_CLEANER_IO_RATE] = I("log.cleaner.io.max.bytes.per.second", SI, 0, 0, INT64_MAX / 2),
    [KC_GROUP_INSTANCE_ID] = S("group.instance.id", SC),
    [KC_SESSION_TIMEOUT_MS] = I("session.timeout.ms", SC, 45000, 1, 3600000),
    [KC_HEARTBEAT_INTERVAL_MS] = I("heartbeat.interval.ms", SC, 3000, 1, 3600000),
    [KC_MAX_POLL_INTERVAL_MS] = I("max.poll.interval.ms", SC, 300000, 1, INT32_MAX),
    [KC_ASSIGNMENT_STRATEGY] = E("partition.assignment.strategy", SC, KC_ASSIGN_RANGE, v_assign),
    [KC_ENABLE_AUTO_COMMIT] = B("enable.auto.commit", SC, 1),
    [KC_AUTO_COMMIT_INTERVAL_MS] = I("auto.commit.interval.ms", SC, 5000, 0, INT32_MAX),
    [KC_OFFSETS_PARTITIONS] = I("offsets.topic.num.partitions", SI, 1, 1, 100),
    [KC_INITIAL_REBALANCE_DELAY_MS] = I("group.initial.rebalance.delay.ms", SI, 0, 0, 600000),
    [KC_STATISTICS_INTERVAL_MS] = I("statistics.interval.ms", SI, 0, 0, 86400000),
};

#define KC_STR_MAX 256

struct klog_conf {
    bool set[KC__COUNT];
    int64_t ival[KC__COUNT];
    char sval[KC__COUNT][KC_STR_MAX]; /* string keys only; bounded */
};

KLOG_API int klog_conf_new(klog_conf **out)
{
    if (!out)
        return -EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

KLOG_API void klog_conf_free(klog_conf *conf) { free(conf); }

KLOG_API int klog_conf_dup(const klog_conf *conf, klog_conf **out)
{
    if (!conf || !out)
        return -EINVAL;
    *out = malloc(sizeof **out);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, conf, sizeof **out);
    return 0;
}

static int find(const char *key)
{
    for (int i = 0; i < KC__COUNT; i++)
        if (strcmp(defs[i].name, key) == 0)
            return i;
    return -1;
}

#define err(errbuf, errsize, ...) klog__errf(errbuf, errsize, KLOG_ECONF, __VA_ARGS__)

static int set_int_checked(klog_conf *c, int k, int64_t v, char *errbuf, size_t errsize)
{
    const struct kc_def *d = &defs[k];
    if (v < d->min || v > d->max)
        return err(errbuf, errsize, "%s: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", d->name, v,
                   d->min, d->max);
    c->ival[k] = v;
    c->set[k] = true;
    return 0;
}

KLOG_API int klog_conf_set(klog_conf *conf, const char *key, const char *value, char *errbuf, size_t errsize)
{
    if (!conf || !key || !value)
        return -EINVAL;
    int k = find(key);
    if (k < 0)
        return err(errbuf, errsize, "%s: unknown configuration key", key);
    const struct kc_def *d = &defs[k];
    switch (d->type) {
    case KT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0')
            return err(errbuf, errsize, "%s: \"%s\" is not an integer", key, value);
        return set_int_checked(conf, k, v, errbuf, errsize);
    }
    case KT_BOOL:
        if (!strcasecmp(value, "true") || !strcmp(value, "1"))
            return set_int_checked(conf, k, 1, errbuf, errsize);
        if (!strcasecmp(value, "false") || !strcmp(value, "0"))
            return set_int_checked(conf, k, 0, errbuf, errsize);
        return err(errbuf, errsize, "%s: \"%s\" is not true or false", key, value);
    case KT_ENUM:
        for (int i = 0; d->values[i]; i++)
            if (!strcmp(value, d->values[i])) {
                conf->ival[k] = i;
                conf->set[k] = true;
                return 0;
            }
        if (k == KC_CLEANUP_POLICY && !strcmp(value, "delete,compact")) {
            conf->ival[k] = KC_CLEANUP_COMPACT_DELETE; /* Kafka takes either order */
            conf->set[k] = true;
            return 0;
        }
        if (k == KC_COMPRESSION_TYPE && !strcmp(value, "uncompressed")) {
            conf->ival[k] = KC_COMPRESSION_NONE; /* Kafka's topic-level name for none */
            conf->set[k] = true;
            return 0;
        }
        if (k == KC_COMPRESSION_TYPE && (!strcmp(value, "gzip") || !strcmp(value, "snappy")))
            return err(errbuf, errsize, "%s: \"%s\" is not supported (none, lz4, zstd; producer for a topic)",
                       key, value);
        return err(errbuf, errsize, "%s: \"%s\" is not one of the accepted values", key, value);
    case KT_ACKS:
        if (!strcmp(value, "all") || !strcmp(value, "-1"))
            return set_int_checked(conf, k, -1, errbuf, errsize);
        if (!strcmp(value, "0") || !strcmp(value, "1"))
            return set_int_checked(conf, k, value[0] - '0', errbuf, errsize);
        return err(errbuf, errsize, "%s: \"%s\" is not 0, 1, all or -1", key, value);
    case KT_RATIO: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end != '\0' || !(v >= 0.0 && v <= 1.0))
            return err(errbuf, errsize, "%s: \"%s\" is not a number from 0 to 1", key, value);
        return set_int_checked(conf, k, (int64_t)(v * KC_RATIO_ONE + 0.5), errbuf, errsize);
    }
    case KT_STR:
        if (strlen(value) >= KC_STR_MAX)
            return err(errbuf, errsize, "%s: value longer than %d bytes", key, KC_STR_MAX - 1);
        strcpy(conf->sval[k], value);
        conf->set[k] = true;
        return 0;
    }
    return -EINVAL;
}

KLOG_API int klog_conf_set_int(klog_conf *conf, const char *key, int64_t value, char *errbuf, size_t errsize)
{
    if (!conf || !key)
        return -EINVAL;
    int k = find(key);
    if (k < 0)
        return err(errbuf, errsize, "%s: unknown configuration key", key);
    if (defs[k].type == KT_ENUM || defs[k].type == KT_STR || defs[k].type == KT_RATIO)
        return err(errbuf, errsize, "%s: takes a string value, not an integer", key);
    if (defs[k].type == KT_ACKS && value != 0 && value != 1 && value != -1)
        return err(errbuf, errsize, "%s: %" PRId64 " is not 0, 1 or -1", key, value);
    return set_int_checked(conf, k, value, errbuf, errsize);
}

static int format_value(const klog_conf *conf, int k, char *buf, size_t bufsize)
{
    const struct kc_def *d = &defs[k];
    int64_t v = conf && conf->set[k] ? conf->ival[k] : d->def;
    switch (d->type) {
    case KT_INT:
        return snprintf(buf, bufsize, "%" PRId64, v);
    case KT_BOOL:
        return snprintf(buf, bufsize, "%s", v ? "true" : "false");
    case KT_ENUM:
        return snprintf(buf, bufsize, "%s", d->values[v]);
    case KT_ACKS:
        return snprintf(buf, bufsize, "%s", v < 0 ? "all" : v ? "1" : "0");
    case KT_STR:
        return snprintf(buf, bufsize, "%s", conf && conf->set[k] ? conf->sval[k] : "");
    case KT_RATIO:
        return snprintf(buf, bufsize, "%g", (double)v / KC_RATIO_ONE);
    }
    return -EINVAL;
}

KLOG_API int klog_conf_get(const klog_conf *conf, const char *key, char *buf, size_t bufsize)
{
    if (!conf || !key || (!buf && bufsize))
        return -EINVAL;
    int k = find(key);
    if (k < 0)
        return KLOG_ECONF;
    return format_value(conf, k, buf, bufsize);
}

int64_t klog__conf_int(const klog_conf *conf, enum kc_key key)
{
    return conf && conf->set[key] ? conf->ival[key] : defs[key].def;
}

const char *klog__conf_str(const klog_conf *conf, enum kc_key key)
{
    return conf && conf->set[key] ? conf->sval[key] : "";
}

int klog__conf_isset(const klog_conf *conf, enum kc_key key)
{
    return conf && conf->set[key];
}

int klog__conf_merge(klog_conf *dst, const klog_conf *src)
{
    if (!dst)
        return -EINVAL;
    for (int k = 0; src && k < KC__COUNT; k++) {
        if (!src->set[k])
            continue;
        dst->set[k] = true;
        dst->ival[k] = src->ival[k];
        memcpy(dst->sval[k], src->sval[k], KC_STR_MAX);
    }
    return 0;
}

int klog__conf_dump(const klog_conf *conf, unsigned scope_mask, char *buf, size_t cap)
{
    size_t len = 0;
    for (int k = 0; conf && k < KC__COUNT; k++) {
        if (!conf->set[k] || !(defs[k].scope & scope_mask))
            continue;
        char v[KC_STR_MAX + 32];
        format_value(conf, k, v, sizeof v);
        int n = snprintf(buf + len, cap - len, "%s=%s\n", defs[k].name, v);
        if (n < 0 || (size_t)n >= cap - len)
            return -ENOSPC;
        len += (size_t)n;
    }
    return (int)len;
}

int klog__conf_unset(klog_conf *conf, const char *key, unsigned scope_mask, char *errbuf, size_t errsize)
{
    int k = key ? find(key) : -1;
    if (k < 0)
        return err(errbuf, errsize, "%s: unknown configuration key", key ? key : "(null)");
    if (!(defs[k].scope & scope_mask))
        return err(errbuf, errsize, "%s: not a key that applies here", key);
    conf->set[k] = false;
    conf->ival[k] = 0;
    conf->sval[k][0] = '\0';
    return 0;
}

int klog__conf_check_scope(const klog_conf *conf, unsigned scope_mask, char *errbuf, size_t errsize)
{
    for (int k = 0; conf && k < KC__COUNT; k++)
        if (conf->set[k] && !(defs[k].scope & scope_mask))
            return err(errbuf, errsize, "%s: not a key that applies here", defs[k].name);
    return 0;
}
