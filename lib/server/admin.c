/*
 * lib/server/admin.c - topic administration for Kafka clients:
 * CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
 * AlterConfigs and IncrementalAlterConfigs (topics: ACL AlterConfigs on
 * the topic; a bad key or value is INVALID_CONFIG with klog's message),
 * through the public topic API (klog/topic.h) of the served instance.
 *
 * A single node keeps one replica of each partition: a replication
 * factor of -1 (the default) or 1 is accepted, more is
 * INVALID_REPLICATION_FACTOR, and a replica assignment must name this node
 * alone for every partition.  A replicated node (lib/replication) takes
 * Kafka's: a replication factor up to the number of data nodes (-1:
 * min(3, nodes)) or a replica assignment of data nodes, and creates the
 * topic through the controller it hosts (krep_mod_create_topic); a node
 * that is not the controller answers NOT_CONTROLLER, and Metadata names
 * the controller, which Kafka's admin clients then ask.  AlterConfigs and
 * IncrementalAlterConfigs, which clients send to any node, are checked
 * here and forwarded to the controller (krep_mod_forward_start: Kafka's
 * KIP-590), the call parked until it answers.  Topic configuration entries are klog's topic
 * keys, which carry Kafka's names (klog/conf.h); a key klog does not have
 * is INVALID_CONFIG, as klog refuses unknown keys everywhere.
 * "num.partitions" is a topic key in klog but not a topic config in Kafka:
 * CreateTopics takes the count from num_partitions only, and
 * DescribeConfigs shows it among the broker's keys, not a topic's.
 *
 * Per-topic errors are answered with Kafka's code and, where the version
 * has the field, a message that says what was wrong.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/klog.h>

#include "common/common.h"
#include "common/conf.h"
#include "replication/module.h"
#include "server/acl.h"
#include "server/internal.h"
#include "topic/topic.h"

#define MSG_MAX 256

/* Kafka's ConfigSource (DescribeConfigs v1+). */
enum {
    SRC_DYNAMIC_TOPIC = 1,
    SRC_STATIC_BROKER = 4,
    SRC_DEFAULT = 5,
};

enum { RES_TOPIC = 2, RES_BROKER = 4 };

/* A Kafka string that is a whole C string (not null, no NUL inside). */
static bool str_ok(const kk_str *s)
{
    return s->p && s->len >= 0 && strlen(s->p) == (size_t)s->len;
}

/* Whether names[i] appears elsewhere in names (Kafka answers every copy of
 * a topic named twice in one request with INVALID_REQUEST). */
static bool named_twice(const kk_str *names, size_t stride, int32_t n, int32_t i)
{
    const kk_str *a = (const kk_str *)((const char *)names + (size_t)i * stride);
    for (int32_t j = 0; j < n; j++) {
        const kk_str *b = (const kk_str *)((const char *)names + (size_t)j * stride);
        if (j != i && a->p && b->p && a->len == b->len && !memcmp(a->p, b->p, (size_t)a->len))
            return true;
    }
    return false;
}

/* A topic name klog accepts, or NULL. */
static const char *topic_name(const kk_str *s)
{
    return str_ok(s) && klog__topic_name_check(s->p) == 0 ? s->p : NULL;
}

/* A replica list that is this node alone. */
static bool this_node_only(const kk_i32_array *ids, int32_t node)
{
    return ids->n == 1 && ids->v[0] == node;
}

static bool in_ids(const int32_t *ids, int n, int32_t id)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* Error messages: msgs[i] is entry i's, "" for none (sent as null). */
static kk_str msg_str(const char *m)
{
    return m && *m ? KK_STR(m) : KK_STR_NULL;
}

/* ---- CreateTopics ----------------------------------------------------------------- */

/* Check one topic of a CreateTopics request and build its configuration
 * (*conf, NULL when it has none).  Returns the Kafka error (msg says why)
 * and *partitions the count to create (0: the instance's num.partitions). */
static int16_t create_check(ksrv_call *c, const kk_create_topics_req_topic *t, klog_conf **conf, int *partitions,
                            int *rf, int32_t **assign, char *msg, size_t msize)
{
    int32_t node = ksrv_config(c->srv)->node_id;
    *conf = NULL;
    *partitions = 0;
    *rf = -1;
    *assign = NULL;
    krep_mod *rm = krep_mod_of(ksrv_klog(c->srv));
    int32_t data[KREP_MAX_NODES];
    int nodes = rm ? krep_mod_data_nodes(rm, data) : 1;
    const char *name = topic_name(&t->name);
    if (!name) {
        snprintf(msg, msize, "topic names are 1 to %d characters of [a-zA-Z0-9._-], not \".\" or \"..\"",
                 KLOG_TOPIC_NAME_MAX);
        return KK_ERR_INVALID_TOPIC_EXCEPTION;
    }
    if (t->assignments.n > 0) {
        /* manual assignment: the count is the assignment's */
        if (t->num_partitions != -1 || t->replication_factor != -1) {
            snprintf(msg, msize, "with a replica assignment, num_partitions and replication_factor must be -1");
            return KK_ERR_INVALID_REQUEST;
        }
        if (t->assignments.n > KT_MAX_PARTITIONS) {
            snprintf(msg, msize, "at most %d partitions", KT_MAX_PARTITIONS);
            return KK_ERR_INVALID_PARTITIONS;
        }
        for (int32_t i = 0; i < t->assignments.n; i++) {
            const kk_create_topics_req_assignment *a = &t->assignments.v[i];
            bool index_seen = false;
            for (int32_t j = 0; j < t->assignments.n && !index_seen; j++)
                index_seen = t->assignments.v[j].partition_index == i;
            if (!index_seen) {
                snprintf(msg, msize, "the assignment must name partitions 0..%d once each", t->assignments.n - 1);
                return KK_ERR_INVALID_REPLICA_ASSIGNMENT;
            }
            if (!rm && !this_node_only(&a->broker_ids, node)) {
                snprintf(msg, msize, "partitions 0..%d each on node %" PRId32 " alone (klog keeps one replica)",
                         t->assignments.n - 1, node);
                return KK_ERR_INVALID_REPLICA_ASSIGNMENT;
            }
            if (!rm)
                continue;
            /* every partition the same number of distinct data nodes (Kafka's rule) */
            const kk_i32_array *b = &a->broker_ids;
            if (b->n < 1 || b->n > nodes || (i > 0 && b->n != t->assignments.v[0].broker_ids.n)) {
                snprintf(msg, msize, "each partition needs the same number of replicas, 1 to %d", nodes);
                return KK_ERR_INVALID_REPLICA_ASSIGNMENT;
            }
            for (int32_t j = 0; j < b->n; j++)
                if (!in_ids(data, nodes, b->v[j]) || in_ids(b->v, j, b->v[j])) {
                    snprintf(msg, msize, "partition %d: node %" PRId32 " is not a data node, or named twice",
                             a->partition_index, b->v[j]);
                    return KK_ERR_INVALID_REPLICA_ASSIGNMENT;
                }
        }
        *partitions = t->assignments.n;
        if (rm) {
            int r = t->assignments.v[0].broker_ids.n;
            int32_t *as = ksrv_alloc(c, (size_t)t->assignments.n * (size_t)r * sizeof *as + 1);
            if (!as) {
                snprintf(msg, msize, "out of memory");
                return KK_ERR_UNKNOWN_SERVER_ERROR;
            }
            for (int32_t i = 0; i < t->assignments.n; i++) {
                const kk_create_topics_req_assignment *a = &t->assignments.v[i];
                memcpy(as + (size_t)a->partition_index * (size_t)r, a->broker_ids.v, (size_t)r * sizeof *as);
            }
            *rf = r;
            *assign = as;
        }
    } else {
        if (t->num_partitions == 0 || t->num_partitions < -1 || t->num_partitions > KT_MAX_PARTITIONS) {
            snprintf(msg, msize, "num_partitions must be 1 to %d, or -1 for the default", KT_MAX_PARTITIONS);
            return KK_ERR_INVALID_PARTITIONS;
        }
        /* one replica, or, replicated to peer processes, up to one per
         * data node */
        if (t->replication_factor == 0 || t->replication_factor < -1) {
            snprintf(msg, msize, "replication_factor must be 1 to %d, or -1 for the default", nodes);
            return KK_ERR_INVALID_REPLICATION_FACTOR;
        }
        if (t->replication_factor > nodes) {
            snprintf(msg, msize, "replication factor %d is more than the %d %s", t->replication_factor, nodes,
                     rm ? "data nodes of the cluster" : "node (klog keeps one replica of each partition)");
            return KK_ERR_INVALID_REPLICATION_FACTOR;
        }
        *partitions = t->num_partitions > 0 ? t->num_partitions : 0;
        *rf = t->replication_factor;
    }
    if (t->configs.n > 0) {
        if (klog_conf_new(conf) < 0) {
            snprintf(msg, msize, "out of memory");
            return KK_ERR_UNKNOWN_SERVER_ERROR;
        }
        for (int32_t i = 0; i < t->configs.n; i++) {
            const kk_create_topics_req_config *e = &t->configs.v[i];
            if (!e->value.p)
                continue; /* null: the default */
            const char *key = str_ok(&e->name) ? e->name.p : "";
            int rc;
            if (!strcmp(key, "num.partitions")) {
                snprintf(msg, msize, "num.partitions is not a topic config: use num_partitions");
                rc = KLOG_ECONF;
            } else if (!str_ok(&e->value)) {
                snprintf(msg, msize, "%s: the value holds a NUL byte", key);
                rc = KLOG_ECONF;
            } else {
                rc = klog_conf_set(*conf, key, e->value.p, msg, msize);
            }
            if (rc < 0) {
                klog_conf_free(*conf);
                *conf = NULL;
                return KK_ERR_INVALID_CONFIG;
            }
        }
        if (klog__conf_check_scope(*conf, KC_SCOPE_TOPIC, msg, msize) < 0) {
            klog_conf_free(*conf);
            *conf = NULL;
            return KK_ERR_INVALID_CONFIG;
        }
    }
    kt_topic *kt = klog__topic_get(ksrv_klog(c->srv), name);
    if (kt || (rm && krep_mod_topic_parts(rm, name) > 0)) {
        klog__topic_put(kt);
        snprintf(msg, msize, "topic '%s' already exists", name);
        klog_conf_free(*conf);
        *conf = NULL;
        return KK_ERR_TOPIC_ALREADY_EXISTS;
    }
    return KK_ERR_NONE;
}

static int16_t topic_admin_err(int rc, const char *what, char *msg, size_t msize)
{
    int16_t e = kk_err_from_klog(rc, KK_CTX_TOPIC_ADMIN);
    if (rc == KLOG_EUNKNOWN_TOPIC)
        e = KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (e && !*msg)
        snprintf(msg, msize, "%s: %s", what, klog_strerror(rc));
    return e;
}

int ksrv_create_topics(ksrv_call *c)
{
    const kk_create_topics_req *q = &c->req.body.create_topics;
    int32_t n = q->topics.n > 0 ? q->topics.n : 0;
    kk_create_topics_resp r = { .throttle_time_ms = 0 };
    kk_create_topics_resp_topic *rt = n ? calloc((size_t)n, sizeof *rt) : NULL;
    char (*msg)[MSG_MAX] = n ? calloc((size_t)n, sizeof *msg) : NULL;
    if (n && (!rt || !msg)) {
        free(rt);
        free(msg);
        return -ENOMEM;
    }
    for (int32_t i = 0; i < n; i++) {
        const kk_create_topics_req_topic *t = &q->topics.v[i];
        rt[i].name = t->name;
        if (named_twice(&q->topics.v[0].name, sizeof *q->topics.v, n, i)) {
            snprintf(msg[i], MSG_MAX, "topic named more than once in the request");
            rt[i].error_code = KK_ERR_INVALID_REQUEST;
        } else if (!ksrv_allowed(c, KACL_OP_CREATE, KACL_RES_CLUSTER, KACL_CLUSTER_NAME) &&
                   !ksrv_allowed(c, KACL_OP_CREATE, KACL_RES_TOPIC, str_ok(&t->name) ? t->name.p : "")) {
            snprintf(msg[i], MSG_MAX, "not authorized to create topics");
            rt[i].error_code = KK_ERR_TOPIC_AUTHORIZATION_FAILED;
        } else {
            klog_conf *conf;
            int parts, rf;
            int32_t *assign;
            krep_mod *rm = krep_mod_of(ksrv_klog(c->srv));
            rt[i].error_code = create_check(c, t, &conf, &parts, &rf, &assign, msg[i], MSG_MAX);
            if (rt[i].error_code == KK_ERR_NONE && rm && !krep_mod_is_controller(rm)) {
                /* Kafka's admin clients send CreateTopics to the
                 * controller Metadata names, and ask again on this */
                int32_t cid, cep;
                krep_mod_controller(rm, &cid, &cep);
                snprintf(msg[i], MSG_MAX, "topics are created by the controller (node %d)", (int)cid);
                rt[i].error_code = KK_ERR_NOT_CONTROLLER;
            } else if (rt[i].error_code == KK_ERR_NONE && !q->validate_only) {
                int rc = rm ? krep_mod_create_topic(rm, t->name.p, parts, conf, rf, assign, q->timeout_ms, msg[i],
                                                    MSG_MAX)
                            : klog_topic_create(ksrv_klog(c->srv), t->name.p, parts, conf, msg[i], MSG_MAX);
                if (rc == KLOG_ENOTLEADER)
                    rt[i].error_code = KK_ERR_NOT_CONTROLLER;
                else if (rc == -EINVAL && rm)
                    rt[i].error_code = assign ? KK_ERR_INVALID_REPLICA_ASSIGNMENT : KK_ERR_INVALID_REPLICATION_FACTOR;
                else if (rc == -ETIMEDOUT)
                    rt[i].error_code = KK_ERR_REQUEST_TIMED_OUT;
                else
                    rt[i].error_code = topic_admin_err(rc, "create", msg[i], MSG_MAX);
            }
            klog_conf_free(conf);
        }
        if (rt[i].error_code == KK_ERR_NONE)
            msg[i][0] = '\0';
        rt[i].error_message = msg_str(msg[i]);
    }
    r.topics.v = rt;
    r.topics.n = n;
    int rc = ksrv_respond(c, &r);
    free(rt);
    free(msg);
    return rc;
}

/* ---- DeleteTopics ------------------------------------------------------------------ */

int ksrv_delete_topics(ksrv_call *c)
{
    const kk_delete_topics_req *q = &c->req.body.delete_topics;
    int32_t n = q->topic_names.n > 0 ? q->topic_names.n : 0;
    kk_delete_topics_resp r = { .throttle_time_ms = 0 };
    kk_delete_topics_resp_topic *rt = n ? calloc((size_t)n, sizeof *rt) : NULL;
    if (n && !rt)
        return -ENOMEM;
    /* replicated: through the controller, which every replica hears from */
    krep_mod *rm = krep_mod_of(ksrv_klog(c->srv));
    for (int32_t i = 0; i < n; i++) {
        const kk_str *name = &q->topic_names.v[i];
        rt[i].name = *name;
        if (named_twice(q->topic_names.v, sizeof *q->topic_names.v, n, i)) {
            rt[i].error_code = KK_ERR_INVALID_REQUEST;
        } else if (!str_ok(name)) {
            rt[i].error_code = KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        } else if (!ksrv_allowed(c, KACL_OP_DELETE, KACL_RES_TOPIC, name->p)) {
            rt[i].error_code = KK_ERR_TOPIC_AUTHORIZATION_FAILED;
        } else if (rm && krep_topic_replicated(name->p) && !krep_mod_is_controller(rm)) {
            rt[i].error_code = KK_ERR_NOT_CONTROLLER; /* the admin client asks the one Metadata names */
        } else {
            char msg[MSG_MAX] = "";
            int rc = rm && krep_topic_replicated(name->p)
                         ? krep_mod_delete_topic(rm, name->p, q->timeout_ms, msg, sizeof msg)
                         : klog_topic_delete(ksrv_klog(c->srv), name->p);
            /* -EPERM: __consumer_offsets (groups are deleted with DeleteGroups) */
            rt[i].error_code = rc == KLOG_EUNKNOWN_TOPIC || rc == KLOG_EBADNAME ? KK_ERR_UNKNOWN_TOPIC_OR_PARTITION
                               : rc == KLOG_ENOTLEADER                       ? KK_ERR_NOT_CONTROLLER
                               : rc == -ETIMEDOUT                            ? KK_ERR_REQUEST_TIMED_OUT
                                                                             : kk_err_from_klog(rc, KK_CTX_TOPIC_ADMIN);
            if (rc < 0 && rm)
                ksrv_log(c->srv, "%s: DeleteTopics %s: %s", ksrv_conn_peer(c->conn), name->p, msg);
        }
    }
    r.responses.v = rt;
    r.responses.n = n;
    int rc = ksrv_respond(c, &r);
    free(rt);
    return rc;
}

/* ---- CreatePartitions ------------------------------------------------------------ */

static int16_t grow_check(ksrv_call *c, const kk_create_partitions_req_topic *t, char *msg, size_t msize)
{
    int32_t node = ksrv_config(c->srv)->node_id;
    const char *name = topic_name(&t->name);
    krep_mod *rm = krep_mod_of(ksrv_klog(c->srv));
    bool replicated = rm && name && krep_topic_replicated(name);
    /* replicated: the count the metadata holds (the controller may hold
     * no replica of the topic) */
    int now = !name ? KLOG_EUNKNOWN_TOPIC
              : replicated ? krep_mod_topic_parts(rm, name)
                           : klog_topic_describe(ksrv_klog(c->srv), name, NULL, 0, NULL, 0);
    if (replicated && now <= 0)
        now = KLOG_EUNKNOWN_TOPIC;
    if (now < 0) {
        snprintf(msg, msize, "topic '%s' does not exist", str_ok(&t->name) ? t->name.p : "");
        return KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    if (t->count == now) {
        snprintf(msg, msize, "topic already has %d partitions", now);
        return KK_ERR_INVALID_PARTITIONS;
    }
    if (t->count < now) {
        snprintf(msg, msize, "topic currently has %d partitions, which is higher than the requested %" PRId32, now,
                 t->count);
        return KK_ERR_INVALID_PARTITIONS;
    }
    if (t->count > KT_MAX_PARTITIONS) {
        snprintf(msg, msize, "at most %d partitions", KT_MAX_PARTITIONS);
        return KK_ERR_INVALID_PARTITIONS;
    }
    if (replicated && t->assignments.n >= 0) {
        snprintf(msg, msize, "new partitions of a replicated topic are placed by the controller (no assignment)");
        return KK_ERR_INVALID_REPLICA_ASSIGNMENT;
    }
    if (replicated && !krep_mod_is_controller(rm)) {
        int32_t cid, cep;
        krep_mod_controller(rm, &cid, &cep);
        snprintf(msg, msize, "partitions are created by the controller (node %d)", (int)cid);
        return KK_ERR_NOT_CONTROLLER;
    }
    if (t->assignments.n >= 0) {
        bool ok = t->assignments.n == t->count - now;
        for (int32_t i = 0; ok && i < t->assignments.n; i++)
            ok = this_node_only(&t->assignments.v[i].broker_ids, node);
        if (!ok) {
            snprintf(msg, msize, "%" PRId32 " new partitions, each on node %" PRId32 " alone (klog keeps one replica)",
                     t->count - now, node);
            return KK_ERR_INVALID_REPLICA_ASSIGNMENT;
        }
    }
    return KK_ERR_NONE;
}

int ksrv_create_partitions(ksrv_call *c)
{
    const kk_create_partitions_req *q = &c->req.body.create_partitions;
    int32_t n = q->topics.n > 0 ? q->topics.n : 0;
    kk_create_partitions_resp r = { .throttle_time_ms = 0 };
    kk_create_partitions_resp_result *rr = n ? calloc((size_t)n, sizeof *rr) : NULL;
    char (*msg)[MSG_MAX] = n ? calloc((size_t)n, sizeof *msg) : NULL;
    if (n && (!rr || !msg)) {
        free(rr);
        free(msg);
        return -ENOMEM;
    }
    for (int32_t i = 0; i < n; i++) {
        const kk_create_partitions_req_topic *t = &q->topics.v[i];
        rr[i].name = t->name;
        if (named_twice(&q->topics.v[0].name, sizeof *q->topics.v, n, i)) {
            snprintf(msg[i], MSG_MAX, "topic named more than once in the request");
            rr[i].error_code = KK_ERR_INVALID_REQUEST;
        } else if (!ksrv_allowed(c, KACL_OP_ALTER, KACL_RES_TOPIC, str_ok(&t->name) ? t->name.p : "")) {
            snprintf(msg[i], MSG_MAX, "not authorized to alter the topic");
            rr[i].error_code = KK_ERR_TOPIC_AUTHORIZATION_FAILED;
        } else {
            rr[i].error_code = grow_check(c, t, msg[i], MSG_MAX);
            if (rr[i].error_code == KK_ERR_NONE && !q->validate_only) {
                krep_mod *rm = krep_mod_of(ksrv_klog(c->srv));
                int rc = rm && krep_topic_replicated(t->name.p)
                             ? krep_mod_add_partitions(rm, t->name.p, t->count, q->timeout_ms, msg[i], MSG_MAX)
                             : klog_topic_add_partitions(ksrv_klog(c->srv), t->name.p, t->count);
                rr[i].error_code = rc == KLOG_ENOTLEADER ? KK_ERR_NOT_CONTROLLER
                                   : rc == -ETIMEDOUT    ? KK_ERR_REQUEST_TIMED_OUT
                                                         : topic_admin_err(rc, "create partitions", msg[i], MSG_MAX);
            }
        }
        if (rr[i].error_code == KK_ERR_NONE)
            msg[i][0] = '\0';
        rr[i].error_message = msg_str(msg[i]);
    }
    r.results.v = rr;
    r.results.n = n;
    int rc = ksrv_respond(c, &r);
    free(rr);
    free(msg);
    return rc;
}

/* ---- DescribeConfigs --------------------------------------------------------------- */

/* Strings that live until the response is encoded; the first allocation
 * failure sticks in err. */
typedef struct strpool {
    char **v;
    size_t n, cap;
    int err;
} strpool;

static const char *pool_dup(strpool *p, const char *s)
{
    if (p->err)
        return "";
    char *d = strdup(s);
    if (!d || klog__vec_reserve(&p->v, &p->cap, p->n + 1, sizeof *p->v) < 0) {
        free(d);
        p->err = -ENOMEM;
        return "";
    }
    return p->v[p->n++] = d;
}

static void pool_free(strpool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
}

/* The value of key in "key=value\n" lines, copied to buf; false if absent. */
static bool line_value(const char *lines, const char *key, char *buf, size_t size)
{
    size_t kl = strlen(key);
    for (const char *p = lines; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > kl && p[kl] == '=' && !memcmp(p, key, kl)) {
            snprintf(buf, size, "%.*s", (int)(len - kl - 1), p + kl + 1);
            return true;
        }
        p = nl ? nl + 1 : NULL;
    }
    return false;
}

/* Whether the request asked for key (keys null: every key). */
static bool wanted(const kk_str_array *keys, const char *key)
{
    if (keys->n < 0)
        return true;
    for (int32_t i = 0; i < keys->n; i++)
        if (keys->v[i].p && !strcmp(keys->v[i].p, key))
            return true;
    return false;
}

/* Keys that hold secrets are shown without their value. */
static bool sensitive(const char *key)
{
    return strstr(key, "password") || strstr(key, "secret") || strstr(key, ".jaas.") || strstr(key, "psk.key");
}

typedef struct cfg_list {
    kk_describe_configs_resp_config *v;
    int32_t n;
    size_t cap;
    kk_describe_configs_resp_synonym *syn; /* 3 per entry */
    size_t syncap;
} cfg_list;

/* Append one entry (strings pooled).  value: NULL hides it (a secret).
 * syn: up to 3 synonyms (v1+ with include_synonyms; the most specific
 * first). */
static int cfg_add(cfg_list *l, strpool *p, const char *name, const char *value, int8_t source, bool read_only,
                   const kk_describe_configs_resp_synonym *syn, int nsyn)
{
    if (klog__vec_reserve(&l->v, &l->cap, (size_t)l->n + 1, sizeof *l->v) < 0 ||
        klog__vec_reserve(&l->syn, &l->syncap, 3 * ((size_t)l->n + 1), sizeof *l->syn) < 0)
        return -ENOMEM;
    kk_describe_configs_resp_synonym *s = &l->syn[3 * (size_t)l->n];
    for (int i = 0; i < nsyn; i++) {
        s[i] = syn[i];
        s[i].name = KK_STR(pool_dup(p, syn[i].name.p));
        s[i].value = syn[i].value.p ? KK_STR(pool_dup(p, syn[i].value.p)) : KK_STR_NULL;
    }
    l->v[l->n++] = (kk_describe_configs_resp_config){
        .name = KK_STR(pool_dup(p, name)),
        .value = value ? KK_STR(pool_dup(p, value)) : KK_STR_NULL,
        .read_only = read_only,
        .is_default = source == SRC_DEFAULT,
        .config_source = source,
        .is_sensitive = value == NULL,
        .synonyms = { NULL, nsyn }, /* pointed at l->syn once the list stops growing */
    };
    return p->err;
}

/* Point every entry's synonyms into l->syn (which moved while growing). */
static void cfg_fix_synonyms(cfg_list *l)
{
    for (int32_t i = 0; i < l->n; i++)
        l->v[i].synonyms.v = l->v[i].synonyms.n ? &l->syn[3 * (size_t)i] : NULL;
}

/* A topic's keys: its own value, else the instance's, else the default. */
static int describe_topic(ksrv_call *c, const kk_describe_configs_req_resource *res, const klog_conf *defaults,
                          cfg_list *l, strpool *p, int16_t *err, char *msg, size_t msize)
{
    struct klog *k = ksrv_klog(c->srv);
    const klog_conf *inst = klog__conf(k);
    const char *name = topic_name(&res->resource_name);
    char lines[8192];
    int rc = name ? klog_topic_describe(k, name, NULL, 0, lines, sizeof lines) : KLOG_EBADNAME;
    krep_mod *rm = krep_mod_of(k);
    if (rc == KLOG_EUNKNOWN_TOPIC && rm && krep_topic_replicated(name))
        rc = krep_mod_told_config(rm, name, lines, sizeof lines); /* a node with no replica of it */
    if (rc < 0) {
        *err = rc == KLOG_EBADNAME ? KK_ERR_INVALID_TOPIC_EXCEPTION : KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        snprintf(msg, msize, "topic '%s': %s", str_ok(&res->resource_name) ? res->resource_name.p : "",
                 klog_strerror(rc));
        return 0;
    }
    for (unsigned t = 0; t < klog__conf_ntables; t++) {
        const kc_table *tab = klog__conf_tables[t];
        for (unsigned i = 0; tab && i < tab->n; i++) {
            const kc_def *d = &tab->defs[i];
            if (!d->name || !(d->scope & KC_SCOPE_TOPIC) || !strcmp(d->name, "num.partitions") ||
                !wanted(&res->configuration_keys, d->name))
                continue;
            char own[KC_STR_MAX], broker[KC_STR_MAX], def[KC_STR_MAX];
            bool has_own = line_value(lines, d->name, own, sizeof own);
            bool has_broker = klog__conf_isset(inst, KC_KEY_BASE(tab->id) + i);
            if (klog_conf_get(inst, d->name, broker, sizeof broker) < 0)
                continue;
            int8_t src = has_own ? SRC_DYNAMIC_TOPIC : has_broker ? SRC_STATIC_BROKER : SRC_DEFAULT;
            const char *value = has_own ? own : broker;
            kk_describe_configs_resp_synonym syn[3];
            int ns = 0;
            if (defaults) {
                if (has_own)
                    syn[ns++] = (kk_describe_configs_resp_synonym){ KK_STR(d->name), KK_STR(own), SRC_DYNAMIC_TOPIC };
                if (has_broker)
                    syn[ns++] = (kk_describe_configs_resp_synonym){ KK_STR(d->name), KK_STR(broker), SRC_STATIC_BROKER };
                if (klog_conf_get(defaults, d->name, def, sizeof def) >= 0)
                    syn[ns++] = (kk_describe_configs_resp_synonym){ KK_STR(d->name), KK_STR(def), SRC_DEFAULT };
            }
            if ((rc = cfg_add(l, p, d->name, sensitive(d->name) ? NULL : value, src, false, syn, ns)) < 0)
                return rc;
        }
    }
    return 0;
}

/* The broker's (the instance's) keys: instance and topic scope (the topic
 * defaults), as set at klog_open or by default.  Fixed while it runs. */
static int describe_broker(ksrv_call *c, const kk_describe_configs_req_resource *res, const klog_conf *defaults,
                           cfg_list *l, strpool *p, int16_t *err, char *msg, size_t msize)
{
    const klog_conf *inst = klog__conf(ksrv_klog(c->srv));
    char id[16];
    snprintf(id, sizeof id, "%" PRId32, ksrv_config(c->srv)->node_id);
    if (!str_ok(&res->resource_name) || (res->resource_name.len && strcmp(res->resource_name.p, id))) {
        *err = KK_ERR_INVALID_REQUEST;
        snprintf(msg, msize, "this is broker %s", id);
        return 0;
    }
    for (unsigned t = 0; t < klog__conf_ntables; t++) {
        const kc_table *tab = klog__conf_tables[t];
        for (unsigned i = 0; tab && i < tab->n; i++) {
            const kc_def *d = &tab->defs[i];
            if (!d->name || !(d->scope & (KC_SCOPE_INSTANCE | KC_SCOPE_TOPIC)) ||
                !wanted(&res->configuration_keys, d->name))
                continue;
            char value[KC_STR_MAX], def[KC_STR_MAX];
            if (klog_conf_get(inst, d->name, value, sizeof value) < 0)
                continue;
            bool set = klog__conf_isset(inst, KC_KEY_BASE(tab->id) + i);
            bool secret = sensitive(d->name);
            kk_describe_configs_resp_synonym syn[2];
            int ns = 0;
            if (defaults && !secret) {
                if (set)
                    syn[ns++] = (kk_describe_configs_resp_synonym){ KK_STR(d->name), KK_STR(value), SRC_STATIC_BROKER };
                if (klog_conf_get(defaults, d->name, def, sizeof def) >= 0)
                    syn[ns++] = (kk_describe_configs_resp_synonym){ KK_STR(d->name), KK_STR(def), SRC_DEFAULT };
            }
            int rc = cfg_add(l, p, d->name, secret ? NULL : value, set ? SRC_STATIC_BROKER : SRC_DEFAULT, true, syn, ns);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int ksrv_describe_configs(ksrv_call *c)
{
    const kk_describe_configs_req *q = &c->req.body.describe_configs;
    int32_t n = q->resources.n > 0 ? q->resources.n : 0;
    kk_describe_configs_resp r = { .throttle_time_ms = 0 };
    kk_describe_configs_resp_result *rr = n ? calloc((size_t)n, sizeof *rr) : NULL;
    cfg_list *lists = n ? calloc((size_t)n, sizeof *lists) : NULL;
    char (*msg)[MSG_MAX] = n ? calloc((size_t)n, sizeof *msg) : NULL;
    strpool pool = { 0 };
    int rc = n && (!rr || !lists || !msg) ? -ENOMEM : 0;
    /* synonyms (v1+ when asked for) end with the default: a conf with every default */
    klog_conf *defaults = NULL;
    if (rc == 0 && q->include_synonyms && c->req.hdr.api_version >= 1)
        rc = klog_conf_new(&defaults);
    for (int32_t i = 0; rc == 0 && i < n; i++) {
        const kk_describe_configs_req_resource *res = &q->resources.v[i];
        int16_t err = KK_ERR_NONE;
        const char *rname = str_ok(&res->resource_name) ? res->resource_name.p : "";
        if (res->resource_type == RES_TOPIC &&
            !ksrv_allowed(c, KACL_OP_DESCRIBE_CONFIGS, KACL_RES_TOPIC, rname)) {
            err = KK_ERR_TOPIC_AUTHORIZATION_FAILED;
            snprintf(msg[i], MSG_MAX, "not authorized to describe the topic's configuration");
        } else if (res->resource_type == RES_BROKER &&
                   !ksrv_allowed(c, KACL_OP_DESCRIBE_CONFIGS, KACL_RES_CLUSTER, KACL_CLUSTER_NAME)) {
            err = KK_ERR_CLUSTER_AUTHORIZATION_FAILED;
            snprintf(msg[i], MSG_MAX, "not authorized to describe the broker's configuration");
        } else if (res->resource_type == RES_TOPIC)
            rc = describe_topic(c, res, defaults, &lists[i], &pool, &err, msg[i], MSG_MAX);
        else if (res->resource_type == RES_BROKER)
            rc = describe_broker(c, res, defaults, &lists[i], &pool, &err, msg[i], MSG_MAX);
        else {
            err = KK_ERR_INVALID_REQUEST;
            snprintf(msg[i], MSG_MAX, "resource type %d: klog describes topics (2) and brokers (4)",
                     res->resource_type);
        }
        cfg_fix_synonyms(&lists[i]);
        rr[i] = (kk_describe_configs_resp_result){
            .error_code = err,
            .error_message = err ? msg_str(msg[i]) : KK_STR_NULL,
            .resource_type = res->resource_type,
            .resource_name = res->resource_name,
        };
        rr[i].configs.v = err ? NULL : lists[i].v;
        rr[i].configs.n = err ? 0 : lists[i].n;
    }
    if (rc == 0) {
        r.results.v = rr;
        r.results.n = n;
        rc = ksrv_respond(c, &r);
    }
    for (int32_t i = 0; lists && i < n; i++) {
        free(lists[i].v);
        free(lists[i].syn);
    }
    pool_free(&pool);
    klog_conf_free(defaults);
    free(lists);
    free(rr);
    free(msg);
    return rc;
}

/* ---- AlterConfigs and IncrementalAlterConfigs --------------------------------------- */

enum { OP_SET = 0, OP_DELETE = 1, OP_APPEND = 2, OP_SUBTRACT = 3 };

/* Check one topic resource and, unless validate_only, apply it through
 * klog_topic_alter_config.  AlterConfigs (incremental false) replaces the
 * topic's own keys with the request's (a null value, and every own key
 * the request leaves out, goes back to the broker's value), as Kafka's
 * does; IncrementalAlterConfigs sets (SET) and removes (DELETE) the keys
 * named.  klog's topic keys hold one value each: APPEND and SUBTRACT,
 * which Kafka keeps for list keys, are INVALID_CONFIG. */
static int16_t alter_topic(ksrv_call *c, const kk_alter_configs_req_resource *res, bool incremental,
                           bool validate_only, char *msg, size_t msize, krep_fwd **fwd)
{
    struct klog *k = ksrv_klog(c->srv);
    const char *name = topic_name(&res->resource_name);
    if (!name) {
        snprintf(msg, msize, "invalid topic name");
        return KK_ERR_INVALID_TOPIC_EXCEPTION;
    }
    /* Replicated: a topic's configuration is part of the cluster's
     * metadata, changed by the controller and applied by every replica;
     * another node checks the request and forwards the change to it
     * (KIP-590: kafka-python sends AlterConfigs to any node). */
    krep_mod *rm = krep_mod_of(k);
    bool replicated = rm && krep_topic_replicated(name);
    bool forward = replicated && !krep_mod_is_controller(rm);
    char *lines = malloc(KREP_TOPIC_CONFIG_MAX + 1);
    if (!lines) {
        snprintf(msg, msize, "out of memory");
        return KK_ERR_UNKNOWN_SERVER_ERROR;
    }
    /* (forwarded: whether the topic exists, and its keys, are the
     * controller's to say) */
    int rc = 0;
    lines[0] = 0;
    if (!forward) {
        rc = replicated ? krep_mod_topic_config(rm, name, lines, KREP_TOPIC_CONFIG_MAX + 1)
                        : klog_topic_describe(k, name, NULL, 0, lines, KREP_TOPIC_CONFIG_MAX + 1);
        if (replicated)
            rc = rc == KREP_TOPIC_LIVE ? 0 : KLOG_EUNKNOWN_TOPIC;
    }
    if (rc < 0) {
        free(lines);
        snprintf(msg, msize, "topic '%s': %s", name, klog_strerror(rc));
        return rc == KLOG_EUNKNOWN_TOPIC ? KK_ERR_UNKNOWN_TOPIC_OR_PARTITION : kk_err_from_klog(rc, KK_CTX_TOPIC_ADMIN);
    }
    int32_t n = res->configs.n > 0 ? res->configs.n : 0;
    klog_conf *set = NULL, *scratch = NULL;
    const char **unset = calloc((size_t)n + 1 + 64, sizeof *unset);
    char(*own)[KC_STR_MAX] = NULL;
    size_t nunset = 0;
    int16_t err = KK_ERR_NONE;
    if (!unset || klog_conf_new(&set) < 0 || klog_conf_new(&scratch) < 0) {
        snprintf(msg, msize, "out of memory");
        err = KK_ERR_UNKNOWN_SERVER_ERROR;
    }
    for (int32_t i = 0; err == KK_ERR_NONE && i < n; i++) {
        const kk_alter_configs_req_config *e = &res->configs.v[i];
        const char *key = str_ok(&e->name) ? e->name.p : NULL;
        int8_t op = incremental ? e->config_operation : (e->value.p ? OP_SET : OP_DELETE);
        if (!key) {
            snprintf(msg, msize, "a config name that is null or holds a NUL byte");
            err = KK_ERR_INVALID_REQUEST;
        } else if (named_twice(&res->configs.v[0].name, sizeof *res->configs.v, n, i)) {
            snprintf(msg, msize, "%s: named more than once in the request", key);
            err = KK_ERR_INVALID_REQUEST;
        } else if (!strcmp(key, "num.partitions")) {
            snprintf(msg, msize, "num.partitions is not a topic config: use CreatePartitions");
            err = KK_ERR_INVALID_CONFIG;
        } else if (op == OP_APPEND || op == OP_SUBTRACT) {
            snprintf(msg, msize, "%s: klog's topic keys hold one value: APPEND and SUBTRACT are for list keys, use SET",
                     key);
            err = KK_ERR_INVALID_CONFIG;
        } else if (op == OP_DELETE) {
            if (klog__conf_unset(scratch, key, KC_SCOPE_TOPIC, msg, msize) < 0)
                err = KK_ERR_INVALID_CONFIG;
            else
                unset[nunset++] = key;
        } else if (op != OP_SET) {
            snprintf(msg, msize, "%s: unknown config operation %d", key, op);
            err = KK_ERR_INVALID_REQUEST;
        } else if (!e->value.p || !str_ok(&e->value)) {
            snprintf(msg, msize, "%s: %s", key, e->value.p ? "the value holds a NUL byte" : "SET without a value");
            err = KK_ERR_INVALID_CONFIG;
        } else if (klog_conf_set(set, key, e->value.p, msg, msize) < 0 ||
                   klog__conf_check_scope(set, KC_SCOPE_TOPIC, msg, msize) < 0) {
            err = KK_ERR_INVALID_CONFIG;
        }
    }
    /* AlterConfigs: the topic's own keys the request leaves out go (the
     * controller's to find when forwarded) */
    if (err == KK_ERR_NONE && !incremental && !forward) {
        size_t nown = 0;
        for (const char *p = lines; *p && nown < 64;) {
            const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            if (eq && (size_t)(eq - p) < len)
                nown++;
            p = nl ? nl + 1 : p + len;
        }
        if (nown && !(own = calloc(nown, sizeof *own))) {
            snprintf(msg, msize, "out of memory");
            err = KK_ERR_UNKNOWN_SERVER_ERROR;
        }
        size_t j = 0;
        for (const char *p = lines; err == KK_ERR_NONE && *p && j < nown;) {
            const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            if (eq && (size_t)(eq - p) < len && (size_t)(eq - p) < KC_STR_MAX) {
                snprintf(own[j], KC_STR_MAX, "%.*s", (int)(eq - p), p);
                bool named = false;
                for (int32_t i = 0; i < n && !named; i++)
                    named = res->configs.v[i].name.p && !strcmp(res->configs.v[i].name.p, own[j]);
                if (!named)
                    unset[nunset++] = own[j];
                j++;
            }
            p = nl ? nl + 1 : p + len;
        }
    }
    if (err == KK_ERR_NONE && forward) {
        /* answered once the controller has (alter_configs parks) */
        rc = krep_mod_forward_start(rm, name, incremental, set, unset, nunset, validate_only, fwd);
        if (rc == -EAGAIN) {
            snprintf(msg, msize, "too many configuration changes on their way to the controller: try again");
            err = KK_ERR_REQUEST_TIMED_OUT;
        } else if (rc < 0) {
            err = topic_admin_err(rc, "alter", msg, msize);
        }
    } else if (err == KK_ERR_NONE && !validate_only) {
        rc = replicated ? krep_mod_alter_topic(rm, name, set, unset, nunset, 30000, msg, msize)
                        : klog_topic_alter_config(k, name, set, unset, nunset, msg, msize);
        if (rc == KLOG_ECONF)
            err = KK_ERR_INVALID_CONFIG;
        else if (rc == KLOG_ENOTLEADER)
            err = KK_ERR_NOT_CONTROLLER;
        else if (rc == -ETIMEDOUT)
            err = KK_ERR_REQUEST_TIMED_OUT;
        else if (rc < 0)
            err = topic_admin_err(rc, "alter", msg, msize);
        else
            ksrv_log(c->srv, "%s: %s: topic %s reconfigured", ksrv_conn_peer(c->conn),
                     incremental ? "IncrementalAlterConfigs" : "AlterConfigs", name);
    }
    klog_conf_free(set);
    klog_conf_free(scratch);
    free(unset);
    free(own);
    free(lines);
    return err;
}

/* An AlterConfigs whose forwarded changes are on their way: the answers,
 * kept between runs. */
typedef struct alter_state {
    int32_t n;
    kk_alter_configs_resp_result *rr;
    char (*msg)[MSG_MAX];
    krep_fwd **fwd;               /* per resource: forwarded, not answered yet */
    int64_t until;                /* monotonic ns: answered REQUEST_TIMED_OUT then */
} alter_state;

static void alter_state_free(ksrv_call *c)
{
    alter_state *st = c->state;
    for (int32_t i = 0; st && st->fwd && i < st->n; i++)
        krep_mod_forward_release(st->fwd[i]);
    if (st) {
        free(st->fwd);
        free(st->rr);
        free(st->msg);
        free(st);
    }
    c->state = NULL;
}

/* How often a parked AlterConfigs looks at its forwarded changes. */
#define FWD_POLL_NS 5000000
/* The longest it waits for them (the forwarding asks for 10 s, plus 5 s
 * for this node's copy, plus a peer call's timeout). */
#define FWD_WAIT_NS 50000000000LL

static int alter_configs(ksrv_call *c, const kk_alter_configs_req *q, bool incremental)
{
    alter_state *st = c->state;
    if (!st) {
        int32_t n = q->resources.n > 0 ? q->resources.n : 0;
        if (!(st = calloc(1, sizeof *st)))
            return -ENOMEM;
        st->n = n;
        c->state = st;
        c->state_free = alter_state_free;
        if (n && (!(st->rr = calloc((size_t)n, sizeof *st->rr)) || !(st->msg = calloc((size_t)n, sizeof *st->msg)) ||
                  !(st->fwd = calloc((size_t)n, sizeof *st->fwd))))
            return -ENOMEM;
        st->until = (int64_t)klog__now_ns() + FWD_WAIT_NS;
        for (int32_t i = 0; i < n; i++) {
            const kk_alter_configs_req_resource *res = &q->resources.v[i];
            const char *rname = str_ok(&res->resource_name) ? res->resource_name.p : "";
            char *msg = st->msg[i];
            int16_t err = KK_ERR_NONE;
            bool twice = false;
            for (int32_t j = 0; j < n && !twice; j++)
                twice = j != i && q->resources.v[j].resource_type == res->resource_type &&
                        q->resources.v[j].resource_name.p && !strcmp(q->resources.v[j].resource_name.p, rname);
            if (twice) {
                snprintf(msg, MSG_MAX, "resource named more than once in the request");
                err = KK_ERR_INVALID_REQUEST;
            } else if (res->resource_type == RES_TOPIC) {
                if (!ksrv_allowed(c, KACL_OP_ALTER_CONFIGS, KACL_RES_TOPIC, rname)) {
                    snprintf(msg, MSG_MAX, "not authorized to alter the topic's configuration");
                    err = KK_ERR_TOPIC_AUTHORIZATION_FAILED;
                } else {
                    err = alter_topic(c, res, incremental, q->validate_only, msg, MSG_MAX, &st->fwd[i]);
                }
            } else if (res->resource_type == RES_BROKER) {
                if (!ksrv_allowed(c, KACL_OP_ALTER_CONFIGS, KACL_RES_CLUSTER, KACL_CLUSTER_NAME)) {
                    snprintf(msg, MSG_MAX, "not authorized to alter the broker's configuration");
                    err = KK_ERR_CLUSTER_AUTHORIZATION_FAILED;
                } else {
                    snprintf(msg, MSG_MAX, "klog's broker keys are fixed while it runs: change the server's "
                                           "configuration and restart it");
                    err = KK_ERR_INVALID_REQUEST;
                }
            } else {
                snprintf(msg, MSG_MAX, "resource type %d: klog alters topics (2)", res->resource_type);
                err = KK_ERR_INVALID_REQUEST;
            }
            st->rr[i] = (kk_alter_configs_resp_result){
                .error_code = err,
                .resource_type = res->resource_type,
                .resource_name = res->resource_name,
            };
        }
    }
    /* the forwarded ones: answered by the controller yet? */
    bool waiting = false;
    int64_t now = (int64_t)klog__now_ns();
    for (int32_t i = 0; i < st->n; i++) {
        if (!st->fwd[i])
            continue;
        int rc = 0;
        int16_t kerr = KK_ERR_NONE;
        if (!krep_mod_forward_done(st->fwd[i], &rc, &kerr, st->msg[i], MSG_MAX)) {
            if (now < st->until) {
                waiting = true;
                continue;
            }
            snprintf(st->msg[i], MSG_MAX, "the controller did not answer in time");
            rc = -ETIMEDOUT;
        }
        krep_mod_forward_release(st->fwd[i]);
        st->fwd[i] = NULL;
        const char *name = st->rr[i].resource_name.p;
        int16_t err = kerr;
        if (rc == KLOG_ENOTLEADER || rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -EPIPE ||
            rc == -EHOSTUNREACH)
            err = KK_ERR_NOT_CONTROLLER; /* none known, or it died: the client asks again */
        else if (rc == -ETIMEDOUT)
            err = KK_ERR_REQUEST_TIMED_OUT;
        else if (rc < 0)
            err = topic_admin_err(rc, "alter", st->msg[i], MSG_MAX);
        else if (err == KK_ERR_NONE && !q->validate_only)
            ksrv_log(c->srv, "%s: %s: topic %s reconfigured through the controller", ksrv_conn_peer(c->conn),
                     incremental ? "IncrementalAlterConfigs" : "AlterConfigs", name);
        st->rr[i].error_code = err;
    }
    if (waiting) {
        c->deadline = now + FWD_POLL_NS;
        return KSRV_PARK;
    }
    for (int32_t i = 0; i < st->n; i++)
        st->rr[i].error_message = st->rr[i].error_code ? msg_str(st->msg[i]) : KK_STR_NULL;
    kk_alter_configs_resp r = { .throttle_time_ms = 0 };
    r.responses.v = st->rr;
    r.responses.n = st->n;
    return ksrv_respond(c, &r);
}

int ksrv_alter_configs(ksrv_call *c)
{
    return alter_configs(c, &c->req.body.alter_configs, false);
}

int ksrv_incremental_alter_configs(ksrv_call *c)
{
    return alter_configs(c, &c->req.body.incremental_alter_configs, true);
}
