/*
 * lib/mirror/mirror.c - the klog_mirror handle: keys, logging, statistics,
 * the rings of records in flight, and what both directions share of
 * librdkafka (configuration, error and log callbacks, the link state).
 * internal.h is the contract; to_kafka.c and from_kafka.c are the two
 * directions.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "internal.h"

uint64_t mir_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_err(char *errbuf, size_t errsize, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *errbuf, size_t errsize, const char *fmt, ...)
{
    if (!errbuf || !errsize)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errsize, fmt, ap);
    va_end(ap);
}

/* ---- logging ------------------------------------------------------------- */

static void emit(klog_mirror *m, const char *line)
{
    if (m->log_cb)
        m->log_cb(m->log_opaque, line);
    else
        fprintf(stderr, "klog mirror: %s\n", line);
}

void mir_log(klog_mirror *m, const char *fmt, ...)
{
    char line[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    emit(m, line);
}

/* A line from librdkafka: the same line twice in a row is said once; while
 * the link is down (the "link down" line said it) none; before the first
 * connection (a gateway may boot without its link, and librdkafka says
 * something at every reconnect) one every 30 s. */
static void kafka_line(klog_mirror *m, const char *line)
{
    if (m->ever_up && !m->link_up)
        return;
    uint64_t now = mir_now_ms();
    if (!m->ever_up && m->last_klog_ms && now - m->last_klog_ms < 30000)
        return;
    if (!strcmp(line, m->last_klog_line))
        return;
    snprintf(m->last_klog_line, sizeof m->last_klog_line, "%s", line);
    m->last_klog_ms = now;
    emit(m, line);
}

int mir_fail(klog_mirror *m, int err, const char *fmt, ...)
{
    if (m->state == MST_FAILED)
        return m->err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->errmsg, sizeof m->errmsg, fmt, ap);
    va_end(ap);
    m->err = err;
    m->st.error = err;
    if (m->state == MST_RUNNING)
        m->state = MST_FAILED;
    return err; /* not logged: klog_mirror_poll hands the message to the caller */
}

void mir_errbuf(klog_mirror *m, char *errbuf, size_t errsize)
{
    set_err(errbuf, errsize, "%s", m->errmsg[0] ? m->errmsg : klog_strerror(m->err));
}

void mir_publish(klog_mirror *m)
{
    int32_t live = 0;
    for (size_t i = 0; i < m->ntr; i++)
        live += m->tr[i] && m->tr[i]->live;
    m->st.partitions = live;
    m->st.link_up = m->link_up;
    pthread_mutex_lock(&m->mu);
    m->pub = m->st;
    pthread_mutex_unlock(&m->mu);
}

/* ---- keys ---------------------------------------------------------------- */

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1")) {
        *out = true;
        return true;
    }
    if (!strcmp(v, "false") || !strcmp(v, "0")) {
        *out = false;
        return true;
    }
    return false;
}

static bool parse_i64(const char *v, int64_t min, int64_t max, int64_t *out)
{
    if (!*v)
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < min || x > max)
        return false;
    *out = x;
    return true;
}

static int set_str(char **slot, const char *v)
{
    char *s = strdup(v);
    if (!s)
        return -ENOMEM;
    free(*slot);
    *slot = s;
    return 0;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

/* Split a comma-separated list (entries trimmed of blanks; empty entries
 * refused).  Returns 0, KLOG_ECONF, -ENOMEM. */
static int split(const char *v, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = v; *p; p++)
        cap += *p == ',';
    char **l = calloc(cap, sizeof *l);
    if (!l)
        return -ENOMEM;
    size_t k = 0;
    const char *p = v;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (!len) {
            free_list(l, k);
            return KLOG_ECONF;
        }
        if (!(l[k] = strndup(p, len))) {
            free_list(l, k);
            return -ENOMEM;
        }
        k++;
        if (!e)
            break;
        p = e + 1;
    }
    *out = l;
    *n = k;
    return 0;
}

/* Keys a user may not pass through to librdkafka: the mirror sets them. */
static const char *const reserved_kafka[] = { "bootstrap.servers", "metadata.broker.list", "group.id",
                                              "log.queue", "opaque", NULL };

static int set_kafka(klog_mirror *m, const char *key, const char *value, char *errbuf, size_t errsize)
{
    for (int i = 0; reserved_kafka[i]; i++)
        if (!strcmp(key, reserved_kafka[i])) {
            set_err(errbuf, errsize, "kafka.%s: set by the mirror (use mirror.to, mirror.from, mirror.group.id)",
                    key);
            return KLOG_ECONF;
        }
    /* librdkafka checks it now, on a scratch configuration. */
    rd_kafka_conf_t *scratch = rd_kafka_conf_new();
    if (!scratch)
        return -ENOMEM;
    char kerr[512] = "";
    rd_kafka_conf_res_t r = rd_kafka_conf_set(scratch, key, value, kerr, sizeof kerr);
    rd_kafka_conf_destroy(scratch);
    if (r != RD_KAFKA_CONF_OK) {
        set_err(errbuf, errsize, "kafka.%s: %s", key, kerr[0] ? kerr : "refused by librdkafka");
        return KLOG_ECONF;
    }
    char **kv = realloc(m->kafka_kv, (m->nkafka + 1) * 2 * sizeof *kv);
    if (!kv)
        return -ENOMEM;
    m->kafka_kv = kv;
    kv[m->nkafka * 2] = strdup(key);
    kv[m->nkafka * 2 + 1] = strdup(value);
    if (!kv[m->nkafka * 2] || !kv[m->nkafka * 2 + 1]) {
        free(kv[m->nkafka * 2]);
        free(kv[m->nkafka * 2 + 1]);
        return -ENOMEM;
    }
    m->nkafka++;
    if (!strcmp(key, "debug"))
        m->kafka_debug = *value != '\0';
    return 0;
}

/* "FROM:TO[,FROM:TO...]" into m->ren. */
static int set_rename(klog_mirror *m, const char *v, char *errbuf, size_t errsize)
{
    char **l = NULL;
    size_t n = 0;
    int rc = *v ? split(v, &l, &n) : 0;
    if (rc == KLOG_ECONF) {
        set_err(errbuf, errsize, "mirror.rename: an empty entry in \"%s\"", v);
        return rc;
    }
    if (rc < 0)
        return rc;
    char **ren = calloc(n * 2 + 1, sizeof *ren);
    if (!ren) {
        free_list(l, n);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        char *colon = strchr(l[i], ':');
        if (!colon || colon == l[i] || !colon[1] || strchr(colon + 1, ':')) {
            set_err(errbuf, errsize, "mirror.rename: \"%s\" is not FROM:TO", l[i]);
            free_list(ren, i * 2);
            free_list(l, n);
            return KLOG_ECONF;
        }
        ren[i * 2] = strndup(l[i], (size_t)(colon - l[i]));
        ren[i * 2 + 1] = strdup(colon + 1);
        if (!ren[i * 2] || !ren[i * 2 + 1]) {
            free_list(ren, i * 2 + 2);
            free_list(l, n);
            return -ENOMEM;
        }
    }
    free_list(l, n);
    free_list(m->ren, m->nren * 2);
    m->ren = ren;
    m->nren = n;
    return set_str(&m->rename, v);
}

KLOG_API int klog_mirror_new(klog_mirror **out, klog *k, char *errbuf, size_t errsize)
{
    if (out)
        *out = NULL;
    if (!out || !k) {
        set_err(errbuf, errsize, "klog_mirror_new: NULL argument");
        return -EINVAL;
    }
    klog_mirror *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->k = k;
    m->commit_interval_ms = 1000;
    m->connect_timeout_ms = 30000;
    m->close_timeout_ms = 10000;
    m->replication_factor = -1;
    m->st.struct_size = sizeof m->st;
    pthread_mutex_init(&m->mu, NULL);
    int rc;
    if (!(m->group = strdup("klog-mirror")) || (rc = klog_conf_new(&m->lconf)) < 0) {
        klog_mirror_free(m);
        return -ENOMEM;
    }
    *out = m;
    return 0;
}

KLOG_API int klog_mirror_set(klog_mirror *m, const char *key, const char *value, char *errbuf, size_t errsize)
{
    if (!m || !key || !value) {
        set_err(errbuf, errsize, "klog_mirror_set: NULL argument");
        return -EINVAL;
    }
    if (m->state != MST_NEW) {
        set_err(errbuf, errsize, "%s: the mirror is started: set keys before klog_mirror_start", key);
        return KLOG_ESTATE;
    }
    int64_t x;
    bool b;
    if (!strncmp(key, "kafka.", 6) && key[6])
        return set_kafka(m, key + 6, value, errbuf, errsize);
    if (!strncmp(key, "klog.", 5) && key[5]) {
        char kerr[256] = "";
        int rc = klog_conf_set(m->lconf, key + 5, value, kerr, sizeof kerr);
        if (rc < 0)
            set_err(errbuf, errsize, "%s: %s", key, kerr[0] ? kerr : klog_strerror(rc));
        static const char *const own[] = { "group.id", "enable.auto.commit", "auto.offset.reset",
                                           "max.poll.records", "fetch.max.bytes", "acks",
                                           "delivery.report.queue", "client.id" };
        for (size_t i = 0; rc == 0 && i < sizeof own / sizeof own[0]; i++)
            if (!strcmp(key + 5, own[i]))
                m->lconf_set[i] = true;
        return rc;
    }
    if (!strcmp(key, "mirror.to") || !strcmp(key, "mirror.from")) {
        int dir = key[7] == 't' ? MIR_TO : MIR_FROM;
        if (!*value) {
            if (m->dir == dir) {
                m->dir = MIR_NONE;
                free(m->bootstrap);
                m->bootstrap = NULL;
            }
            return 0;
        }
        if (m->dir != MIR_NONE && m->dir != dir) {
            set_err(errbuf, errsize, "%s: mirror.%s is set already; a mirror goes one way", key,
                    dir == MIR_TO ? "from" : "to");
            return KLOG_ECONF;
        }
        int rc = set_str(&m->bootstrap, value);
        if (rc == 0)
            m->dir = dir;
        return rc;
    }
    if (!strcmp(key, "mirror.topics")) {
        char **l;
        size_t n;
        int rc = split(value, &l, &n);
        if (rc == KLOG_ECONF)
            set_err(errbuf, errsize, "mirror.topics: an empty entry in \"%s\"", value);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < n; i++) {
            if (l[i][0] != '^')
                continue;
            regex_t re;
            int e = regcomp(&re, l[i], REG_EXTENDED | REG_NOSUB);
            if (e) {
                char why[128];
                regerror(e, &re, why, sizeof why);
                set_err(errbuf, errsize, "mirror.topics: \"%s\": %s", l[i], why);
                free_list(l, n);
                return KLOG_ECONF;
            }
            regfree(&re);
        }
        free_list(m->subs, m->nsubs);
        m->subs = l;
        m->nsubs = n;
        return set_str(&m->topics, value);
    }
    if (!strcmp(key, "mirror.rename"))
        return set_rename(m, value, errbuf, errsize);
    if (!strcmp(key, "mirror.group.id")) {
        if (!*value) {
            set_err(errbuf, errsize, "mirror.group.id: empty");
            return KLOG_ECONF;
        }
        return set_str(&m->group, value);
    }
    if (!strcmp(key, "mirror.partitioning")) {
        if (strcmp(value, "same") && strcmp(value, "hash")) {
            set_err(errbuf, errsize, "mirror.partitioning: \"%s\": same or hash", value);
            return KLOG_ECONF;
        }
        m->part_hash = value[0] == 'h';
        return 0;
    }
    if (!strcmp(key, "mirror.create.topics") || !strcmp(key, "mirror.source.header")) {
        if (!parse_bool(value, &b)) {
            set_err(errbuf, errsize, "%s: \"%s\": true or false", key, value);
            return KLOG_ECONF;
        }
        if (key[7] == 'c')
            m->create_topics = b;
        else
            m->source_header = b;
        return 0;
    }
    if (!strcmp(key, "mirror.replication.factor")) {
        if (!parse_i64(value, -1, 32767, &x) || x == 0) {
            set_err(errbuf, errsize, "mirror.replication.factor: \"%s\": -1 or 1..32767", value);
            return KLOG_ECONF;
        }
        m->replication_factor = (int)x;
        return 0;
    }
    if (!strcmp(key, "mirror.commit.interval.ms")) {
        if (!parse_i64(value, 1, 3600000, &x)) {
            set_err(errbuf, errsize, "mirror.commit.interval.ms: \"%s\": 1..3600000", value);
            return KLOG_ECONF;
        }
        m->commit_interval_ms = x;
        return 0;
    }
    if (!strcmp(key, "mirror.connect.timeout.ms")) {
        if (!parse_i64(value, -1, INT_MAX, &x)) {
            set_err(errbuf, errsize, "mirror.connect.timeout.ms: \"%s\": -1 (for ever) or 0..%d", value, INT_MAX);
            return KLOG_ECONF;
        }
        m->connect_timeout_ms = x;
        return 0;
    }
    if (!strcmp(key, "mirror.close.timeout.ms")) {
        if (!parse_i64(value, 0, 3600000, &x)) {
            set_err(errbuf, errsize, "mirror.close.timeout.ms: \"%s\": 0..3600000", value);
            return KLOG_ECONF;
        }
        m->close_timeout_ms = x;
        return 0;
    }
    set_err(errbuf, errsize, "%s: unknown key (mirror.*, kafka.* or klog.*)", key);
    return KLOG_ECONF;
}

KLOG_API int klog_mirror_set_log_cb(klog_mirror *m, klog_mirror_log_cb cb, void *opaque)
{
    if (!m)
        return -EINVAL;
    m->log_cb = cb;
    m->log_opaque = opaque;
    return 0;
}

char *mir_dst_name(klog_mirror *m, const char *src)
{
    for (size_t i = 0; i < m->nren; i++)
        if (!strcmp(m->ren[i * 2], src))
            return strdup(m->ren[i * 2 + 1]);
    return strdup(src);
}

mir_topic *mir_topic_get(klog_mirror *m, const char *src)
{
    for (size_t i = 0; i < m->ntp; i++)
        if (!strcmp(m->tp[i]->src, src))
            return m->tp[i];
    if (m->ntp == m->tpcap) {
        size_t cap = m->tpcap ? m->tpcap * 2 : 8;
        mir_topic **tp = realloc(m->tp, cap * sizeof *tp);
        if (!tp)
            return NULL;
        m->tp = tp;
        m->tpcap = cap;
    }
    mir_topic *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->src = strdup(src);
    t->dst = mir_dst_name(m, src);
    t->dst_partitions = -1;
    t->backoff_ms = 100;
    if (!t->src || !t->dst) {
        free(t->src);
        free(t->dst);
        free(t);
        return NULL;
    }
    m->tp[m->ntp++] = t;
    return t;
}

/* ---- librdkafka: configuration and callbacks ------------------------------ */

bool mir_kafka_err_permanent(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return true;
    default:
        return false;
    }
}

int mir_kafka_err_code(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return KLOG_ETOOBIG;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        return -EACCES;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return KLOG_EUNKNOWN_TOPIC;
    case RD_KAFKA_RESP_ERR__SSL:
        return -EPROTO;
    default:
        return -EREMOTEIO;
    }
}

void mir_link_up(klog_mirror *m)
{
    if (m->link_up)
        return;
    uint64_t now = mir_now_ms();
    m->link_up = true;
    m->probe_backoff_ms = 0;
    m->last_klog_line[0] = '\0';
    if (!m->ever_up)
        mir_log(m, "connected to the Kafka cluster at %s", m->bootstrap);
    else
        mir_log(m, "link up again after %.1f s", (double)(now - m->down_since_ms) / 1000.0);
    m->ever_up = true;
}

void mir_link_down(klog_mirror *m, const char *why)
{
    if (!m->link_up)
        return;
    m->link_up = false;
    m->down_since_ms = mir_now_ms();
    m->next_probe_ms = m->down_since_ms + 100;
    m->probe_backoff_ms = 100;
    m->st.link_downs++;
    mir_log(m, "link down (%s): records wait on disk; retrying until the cluster answers", why);
}

bool mir_probe(klog_mirror *m, int max_wait_ms)
{
    if (m->link_up)
        return true;
    uint64_t now = mir_now_ms();
    int64_t left = -1;
    if (!m->ever_up && m->connect_timeout_ms >= 0) {
        left = m->connect_timeout_ms - (int64_t)(now - m->start_ms);
        if (left <= 0) {
            mir_fail(m, -ETIMEDOUT, "cannot reach the Kafka cluster at %s within %" PRId64 " ms (%s)", m->bootstrap,
                     m->connect_timeout_ms, m->kerr[0] ? m->kerr : "no answer");
            return false;
        }
    }
    if (now < m->next_probe_ms)
        return false;
    int wait = max_wait_ms < 100 ? 100 : max_wait_ms > 1000 ? 1000 : max_wait_ms;
    if (left >= 0 && wait > left)
        wait = (int)left;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(m->rk, 0, NULL, &md, wait);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (!e) {
        mir_link_up(m);
        return true;
    }
    if (!m->kerr[0])
        snprintf(m->kerr, sizeof m->kerr, "%s", rd_kafka_err2str(e));
    m->probe_backoff_ms = m->probe_backoff_ms ? m->probe_backoff_ms * 2 : 100;
    if (m->probe_backoff_ms > 2000)
        m->probe_backoff_ms = 2000;
    m->next_probe_ms = mir_now_ms() + m->probe_backoff_ms;
    if (!m->ever_up && m->connect_timeout_ms >= 0 &&
        (int64_t)(mir_now_ms() - m->start_ms) >= m->connect_timeout_ms)
        mir_fail(m, -ETIMEDOUT, "cannot reach the Kafka cluster at %s within %" PRId64 " ms (%s)", m->bootstrap,
                 m->connect_timeout_ms, m->kerr[0] ? m->kerr : "no answer");
    return false;
}

/* librdkafka's error callback, served on the driving thread. */
static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    klog_mirror *m = opaque;
    snprintf(m->kerr, sizeof m->kerr, "%s", reason);
    switch (err) {
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        if (m->ever_up)
            mir_link_down(m, reason);
        return;
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        mir_fail(m, -EACCES, "authentication with the Kafka cluster at %s failed: %s", m->bootstrap, reason);
        return;
    case RD_KAFKA_RESP_ERR__SSL:
        mir_fail(m, -EPROTO, "TLS with the Kafka cluster at %s failed: %s", m->bootstrap, reason);
        return;
    case RD_KAFKA_RESP_ERR__FATAL:
        return; /* the direction reads rd_kafka_fatal_error() */
    default: {
        char line[700];
        snprintf(line, sizeof line, "kafka: %s", reason);
        kafka_line(m, line);
    }
    }
}

static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    klog_mirror *m = rd_kafka_opaque(rk);
    if (!m || (level > LOG_WARNING && !m->kafka_debug))
        return; /* with kafka.debug set, the user asked for everything */
    char line[700];
    snprintf(line, sizeof line, "kafka: %s: %s", fac, buf);
    if (m->kafka_debug)
        emit(m, line);
    else
        kafka_line(m, line);
}

rd_kafka_conf_t *mir_kafka_conf(klog_mirror *m, const char *const *defaults, char *errbuf, size_t errsize)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        set_err(errbuf, errsize, "out of memory");
        return NULL;
    }
    char kerr[512];
    for (const char *const *d = defaults; d && d[0]; d += 2)
        if (rd_kafka_conf_set(conf, d[0], d[1], kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
            set_err(errbuf, errsize, "librdkafka refused %s=%s: %s", d[0], d[1], kerr);
            goto fail;
        }
    for (size_t i = 0; i < m->nkafka; i++)
        if (rd_kafka_conf_set(conf, m->kafka_kv[i * 2], m->kafka_kv[i * 2 + 1], kerr, sizeof kerr) !=
            RD_KAFKA_CONF_OK) {
            set_err(errbuf, errsize, "kafka.%s: %s", m->kafka_kv[i * 2], kerr);
            goto fail;
        }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", m->bootstrap, kerr, sizeof kerr) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log.queue", "true", kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
        set_err(errbuf, errsize, "%s", kerr);
        goto fail;
    }
    rd_kafka_conf_set_opaque(conf, m);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_log_cb(conf, on_kafka_log);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

void mir_kafka_started(klog_mirror *m)
{
    rd_kafka_set_log_queue(m->rk, NULL); /* the main queue, which the mirror polls */
}

/* ---- tracks --------------------------------------------------------------- */

mir_track *mir_track_find(klog_mirror *m, const char *topic, int32_t partition)
{
    mir_track *t = m->last_tr;
    if (t && t->live && t->partition == partition && (t->topic_ptr == topic || !strcmp(t->topic, topic))) {
        t->topic_ptr = topic;
        return t;
    }
    for (size_t i = 0; i < m->ntr; i++) {
        t = m->tr[i];
        if (t && t->live && t->partition == partition && !strcmp(t->topic, topic)) {
            t->topic_ptr = topic;
            m->last_tr = t;
            return t;
        }
    }
    return NULL;
}

static uint32_t next_gen(uint32_t g)
{
    g = (g + 1) & MIR_GEN_MASK;
    return g ? g : 1;
}

mir_track *mir_track_add(klog_mirror *m, const char *topic, int32_t partition)
{
    mir_track *t = mir_track_find(m, topic, partition);
    if (t)
        return t;
    size_t slot = m->ntr;
    for (size_t i = 0; i < m->ntr; i++)
        if (m->tr[i] && !m->tr[i]->live) {
            slot = i;
            break;
        }
    if (slot == m->ntr) {
        if (m->ntr == MIR_MAX_SLOTS)
            return NULL;
        mir_track **tr = realloc(m->tr, (m->ntr + 1) * sizeof *tr);
        if (!tr)
            return NULL;
        m->tr = tr;
        if (!(tr[slot] = calloc(1, sizeof **tr)))
            return NULL;
        m->ntr++;
    }
    t = m->tr[slot];
    char *name = strdup(topic);
    mir_topic *mt = mir_topic_get(m, topic);
    if (!name || !mt) {
        free(name);
        return NULL;
    }
    free(t->topic);
    t->topic = name;
    t->topic_ptr = NULL;
    t->slot = (uint32_t)slot;
    t->gen = next_gen(t->gen);
    t->partition = partition;
    t->mt = mt;
    t->expected = t->committed = t->sent_max = -1;
    t->head = t->tail = 0;
    t->hold = -1;
    t->live = true;
    return t;
}

void mir_track_reset(klog_mirror *m, mir_track *t)
{
    for (uint64_t s = t->head; s < t->tail; s++)
        if (!t->acked[s & (t->cap - 1)])
            m->st.in_flight--;
    t->head = t->tail = 0;
    t->gen = next_gen(t->gen);
}

void mir_track_drop(klog_mirror *m, mir_track *t)
{
    mir_track_reset(m, t);
    t->live = false;
    if (m->last_tr == t)
        m->last_tr = NULL;
}

uint64_t mir_track_push(klog_mirror *m, mir_track *t, int64_t offset)
{
    (void)m;
    if (t->tail - t->head == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 1024;
        if (cap > MIR_RING_MAX)
            return 0;
        int64_t *off = malloc(cap * sizeof *off);
        uint8_t *acked = malloc(cap);
        if (!off || !acked) {
            free(off);
            free(acked);
            return 0;
        }
        for (uint64_t s = t->head; s < t->tail; s++) {
            off[s & (cap - 1)] = t->off[s & (t->cap - 1)];
            acked[s & (cap - 1)] = t->acked[s & (t->cap - 1)];
        }
        free(t->off);
        free(t->acked);
        t->off = off;
        t->acked = acked;
        t->cap = cap;
    }
    uint64_t seq = t->tail++;
    t->off[seq & (t->cap - 1)] = offset;
    t->acked[seq & (t->cap - 1)] = 0;
    t->sent_max = offset + 1;
    m->st.in_flight++;
    return (uint64_t)t->slot << (MIR_GEN_BITS + MIR_SEQ_BITS) | (uint64_t)t->gen << MIR_SEQ_BITS | (seq & MIR_SEQ_MASK);
}

mir_track *mir_track_of(klog_mirror *m, uint64_t opaque, uint64_t *seq)
{
    uint64_t slot = opaque >> (MIR_GEN_BITS + MIR_SEQ_BITS);
    uint32_t gen = (uint32_t)(opaque >> MIR_SEQ_BITS) & MIR_GEN_MASK;
    if (slot >= m->ntr)
        return NULL;
    mir_track *t = m->tr[slot];
    if (!t || !t->live || t->gen != gen || t->head == t->tail)
        return NULL;
    uint64_t low = opaque & MIR_SEQ_MASK;
    uint64_t s = (t->head & ~MIR_SEQ_MASK) | low;
    if (s < t->head)
        s += MIR_SEQ_MASK + 1;
    if (s >= t->tail)
        return NULL;
    *seq = s;
    return t;
}

void mir_track_ack(klog_mirror *m, mir_track *t, uint64_t seq)
{
    uint8_t *a = &t->acked[seq & (t->cap - 1)];
    if (*a)
        return;
    *a = 1;
    m->st.in_flight--;
    while (t->head < t->tail && t->acked[t->head & (t->cap - 1)])
        t->head++;
}

int64_t mir_track_commit_point(const mir_track *t)
{
    if (t->head < t->tail)
        return t->off[t->head & (t->cap - 1)];
    return t->expected;
}

void mir_gap(klog_mirror *m, mir_track *t, int64_t upto, int64_t start, const char *where)
{
    int64_t lost_to = upto < start ? upto : start;
    if (t->expected < 0 || lost_to <= t->expected)
        return;
    int64_t n = lost_to - t->expected;
    m->st.gap_records += (uint64_t)n;
    m->st.gaps++;
    mir_log(m, "gap: %s[%d]: %" PRId64 " record%s (offsets %" PRId64 "..%" PRId64 ") deleted by %s before they could "
               "be forwarded",
            t->topic, t->partition, n, n == 1 ? "" : "s", t->expected, lost_to - 1, where);
}

/* ---- the handle ----------------------------------------------------------- */

KLOG_API int klog_mirror_start(klog_mirror *m, char *errbuf, size_t errsize)
{
    if (!m) {
        set_err(errbuf, errsize, "klog_mirror_start: NULL mirror");
        return -EINVAL;
    }
    if (m->state != MST_NEW) {
        set_err(errbuf, errsize, "the mirror was started already");
        return KLOG_ESTATE;
    }
    if (m->dir == MIR_NONE) {
        set_err(errbuf, errsize, "mirror.to or mirror.from: where to forward to or from is not set");
        return KLOG_ECONF;
    }
    if (!m->topics) {
        set_err(errbuf, errsize, "mirror.topics: which topics to forward is not set");
        return KLOG_ECONF;
    }
    m->start_ms = mir_now_ms();
    m->next_commit_ms = m->start_ms + (uint64_t)m->commit_interval_ms;
    int rc = m->dir == MIR_TO ? mir_to_start(m, errbuf, errsize) : mir_from_start(m, errbuf, errsize);
    if (rc < 0)
        return rc;
    m->state = MST_RUNNING;
    mir_publish(m);
    return 0;
}

KLOG_API int klog_mirror_poll(klog_mirror *m, int timeout_ms, char *errbuf, size_t errsize)
{
    if (!m) {
        set_err(errbuf, errsize, "klog_mirror_poll: NULL mirror");
        return -EINVAL;
    }
    if (m->state == MST_FAILED) {
        mir_errbuf(m, errbuf, errsize);
        return m->err;
    }
    if (m->state != MST_RUNNING) {
        set_err(errbuf, errsize, "the mirror is %s", m->state == MST_NEW ? "not started" : "stopped");
        return KLOG_ESTATE;
    }
    if (timeout_ms < 0)
        timeout_ms = INT_MAX;
    uint64_t before = m->st.forwarded;
    int rc = m->dir == MIR_TO ? mir_to_poll(m, timeout_ms) : mir_from_poll(m, timeout_ms);
    mir_publish(m);
    if (m->state == MST_FAILED) {
        mir_errbuf(m, errbuf, errsize);
        return m->err;
    }
    if (rc < 0)
        return rc;
    uint64_t n = m->st.forwarded - before;
    return n > INT_MAX ? INT_MAX : (int)n;
}

KLOG_API int klog_mirror_wakeup(klog_mirror *m)
{
    if (!m)
        return -EINVAL;
    atomic_store(&m->wake, true);
    /* klog_consumer_wakeup is any-thread; klog_mirror_stop clears m->c
     * under the lock before it closes the consumer. */
    pthread_mutex_lock(&m->mu);
    if (m->c)
        klog_consumer_wakeup(m->c);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

KLOG_API int klog_mirror_stats_get(klog_mirror *m, klog_mirror_stats *out)
{
    if (!m || !out || out->struct_size < 8)
        return -EINVAL;
    uint32_t size = out->struct_size;
    pthread_mutex_lock(&m->mu);
    klog_mirror_stats s = m->pub;
    pthread_mutex_unlock(&m->mu);
    s.struct_size = size;
    if (size > sizeof s) {
        memset((char *)out + sizeof s, 0, size - sizeof s);
        size = sizeof s;
    }
    memcpy(out, &s, size);
    return 0;
}

KLOG_API int klog_mirror_stop(klog_mirror *m)
{
    if (!m)
        return -EINVAL;
    if (m->state != MST_RUNNING && m->state != MST_FAILED)
        return KLOG_ESTATE;
    int rc = m->dir == MIR_TO ? mir_to_stop(m) : mir_from_stop(m);
    m->state = MST_STOPPED;
    mir_publish(m);
    return rc;
}

KLOG_API void klog_mirror_free(klog_mirror *m)
{
    if (!m)
        return;
    if (m->state == MST_RUNNING || m->state == MST_FAILED)
        klog_mirror_stop(m);
    for (size_t i = 0; i < m->ntr; i++) {
        if (!m->tr[i])
            continue;
        free(m->tr[i]->topic);
        free(m->tr[i]->off);
        free(m->tr[i]->acked);
        free(m->tr[i]);
    }
    free(m->tr);
    for (size_t i = 0; i < m->ntp; i++) {
        free(m->tp[i]->src);
        free(m->tp[i]->dst);
        free(m->tp[i]);
    }
    free(m->tp);
    free_list(m->subs, m->nsubs);
    free_list(m->ren, m->nren * 2);
    free_list(m->kafka_kv, m->nkafka * 2);
    free(m->bootstrap);
    free(m->topics);
    free(m->rename);
    free(m->group);
    klog_conf_free(m->lconf);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
