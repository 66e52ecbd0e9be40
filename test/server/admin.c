/*
 * test/server/admin.c - CreateTopics, DeleteTopics, CreatePartitions and
 * DescribeConfigs in-process with klog's own encoder: each error a Kafka
 * broker gives (and klog's one-replica rules), validate_only, and what the
 * public topic API sees afterwards.  Real clients: test_groups_clients.py.
 */
#include "util.h"

/* ---- requests --------------------------------------------------------------------- */

typedef struct ct {
    kk_create_topics_req_topic t;
    kk_create_topics_req_assignment as[4];
    kk_create_topics_req_config cf[4];
    int32_t ids[4][2];
} ct;

static kk_create_topics_req_topic topic(const char *name, int32_t parts, int16_t rf)
{
    return (kk_create_topics_req_topic){ .name = KK_STR(name), .num_partitions = parts, .replication_factor = rf };
}

static void with_config(ct *x, const char *key, const char *value)
{
    int i = x->t.configs.n++;
    x->cf[i] = (kk_create_topics_req_config){ KK_STR(key), value ? KK_STR(value) : KK_STR_NULL };
    x->t.configs.v = x->cf;
}

/* A replica assignment: partition i on broker ids[i] (one each). */
static void with_assignment(ct *x, int n, const int32_t *brokers)
{
    for (int i = 0; i < n; i++) {
        x->ids[i][0] = brokers[i];
        x->as[i] = (kk_create_topics_req_assignment){ i, { x->ids[i], 1 } };
    }
    x->t.assignments.v = x->as;
    x->t.assignments.n = n;
}

/* CreateTopics v4 of ts[0..n); the answers in r (its arena a). */
static const kk_create_topics_resp *create(klog_conn *c, const kk_create_topics_req_topic *ts, int n,
                                           bool validate_only, kk_arena *a, kk_response *r)
{
    kk_create_topics_req q = { .timeout_ms = 5000, .validate_only = validate_only };
    q.topics.v = (kk_create_topics_req_topic *)ts;
    q.topics.n = n;
    su_call(c, KK_API_CREATE_TOPICS, 4, &q, a, r);
    cr_assert_eq(r->body.create_topics.topics.n, n);
    return &r->body.create_topics;
}

static int16_t create_one(klog_conn *c, const kk_create_topics_req_topic *t, bool validate_only, char *msg,
                          size_t msize)
{
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    const kk_create_topics_resp *cr = create(c, t, 1, validate_only, &a, &r);
    int16_t err = cr->topics.v[0].error_code;
    if (msg)
        snprintf(msg, msize, "%s", cr->topics.v[0].error_message.p ? cr->topics.v[0].error_message.p : "(null)");
    cr_assert(err ? cr->topics.v[0].error_message.p != NULL : cr->topics.v[0].error_message.p == NULL,
              "error %d with message %s", err, cr->topics.v[0].error_message.p);
    kk_arena_reset(&a);
    return err;
}

static int partitions_of(klog *k, const char *name)
{
    return klog_topic_describe(k, name, NULL, 0, NULL, 0);
}

static int16_t grow(klog_conn *c, const char *name, int32_t count, int nassign, bool validate_only)
{
    int32_t ids[4][1] = { { 0 }, { 0 }, { 0 }, { 0 } };
    kk_create_partitions_req_assignment as[4];
    for (int i = 0; i < 4; i++)
        as[i].broker_ids = (kk_i32_array){ ids[i], 1 };
    kk_create_partitions_req_topic t = { .name = KK_STR(name), .count = count };
    t.assignments.v = nassign >= 0 ? as : NULL;
    t.assignments.n = nassign;
    kk_create_partitions_req q = { .timeout_ms = 5000, .validate_only = validate_only };
    q.topics.v = &t;
    q.topics.n = 1;
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    su_call(c, KK_API_CREATE_PARTITIONS, 1, &q, &a, &r);
    cr_assert_eq(r.body.create_partitions.results.n, 1);
    int16_t err = r.body.create_partitions.results.v[0].error_code;
    kk_arena_reset(&a);
    return err;
}

/* DescribeConfigs of one resource at version v; keys NULL: all. */
static const kk_describe_configs_resp_result *describe(klog_conn *c, int16_t v, int8_t type, const char *name,
                                                       const char *const *keys, int nkeys, bool synonyms,
                                                       kk_arena *a, kk_response *r)
{
    kk_str k[8];
    for (int i = 0; i < nkeys; i++)
        k[i] = KK_STR(keys[i]);
    kk_describe_configs_req_resource res = { type, KK_STR(name), { keys ? k : NULL, keys ? nkeys : -1 } };
    kk_describe_configs_req q = { .include_synonyms = synonyms };
    q.resources.v = &res;
    q.resources.n = 1;
    su_call(c, KK_API_DESCRIBE_CONFIGS, v, &q, a, r);
    cr_assert_eq(r->body.describe_configs.results.n, 1);
    return &r->body.describe_configs.results.v[0];
}

static const kk_describe_configs_resp_config *entry(const kk_describe_configs_resp_result *res, const char *key)
{
    for (int i = 0; i < res->configs.n; i++)
        if (!strcmp(res->configs.v[i].name.p, key))
            return &res->configs.v[i];
    return NULL;
}

/* ---- tests ----------------------------------------------------------------------------- */

Test(server_admin, create_topics)
{
    su_env e;
    su_up(&e, NULL);
    klog_conn *c = su_dial(&e);
    char msg[256];
    ct x = { .t = topic("a", 3, 1) };
    with_config(&x, "retention.ms", "1000");
    with_config(&x, "cleanup.policy", NULL); /* null: the default */
    cr_assert_eq(create_one(c, &x.t, false, NULL, 0), 0);
    cr_assert_eq(partitions_of(e.k, "a"), 3);
    char cfg[512];
    cr_assert_eq(klog_topic_describe(e.k, "a", NULL, 0, cfg, sizeof cfg), 3);
    cr_assert(strstr(cfg, "retention.ms=1000"), "%s", cfg);
    cr_assert_eq(create_one(c, &x.t, false, msg, sizeof msg), KK_ERR_TOPIC_ALREADY_EXISTS);
    cr_assert(strstr(msg, "already exists"), "%s", msg);

    /* defaults: num_partitions -1 takes num.partitions, replication -1 */
    x = (ct){ .t = topic("b", -1, -1) };
    cr_assert_eq(create_one(c, &x.t, false, NULL, 0), 0);
    cr_assert_eq(partitions_of(e.k, "b"), 1);

    /* validate_only: checked, not created */
    x = (ct){ .t = topic("v", 2, 1) };
    cr_assert_eq(create_one(c, &x.t, true, NULL, 0), 0);
    cr_assert_eq(partitions_of(e.k, "v"), KLOG_EUNKNOWN_TOPIC);
    x = (ct){ .t = topic("a", 2, 1) };
    cr_assert_eq(create_one(c, &x.t, true, NULL, 0), KK_ERR_TOPIC_ALREADY_EXISTS);

    /* names, counts, replication */
    x = (ct){ .t = topic("bad name", 1, 1) };
    cr_assert_eq(create_one(c, &x.t, false, NULL, 0), KK_ERR_INVALID_TOPIC_EXCEPTION);
    x = (ct){ .t = topic("c", 0, 1) };
    cr_assert_eq(create_one(c, &x.t, false, NULL, 0), KK_ERR_INVALID_PARTITIONS);
    x = (ct){ .t = topic("c", -5, 1) };
    cr_assert_eq(create_one(c, &x.t, false, NULL, 0), KK_ERR_INVALID_PARTITIONS);
    x = (ct){ .t = topic("c", 1000000, 1) };
    cr_assert_eq(create_one(c, &x.t, false, NULL, 0), KK_ERR_INVALID_PARTITIONS);
    x = (ct){ .t = topic("c", 1, 0) };
    cr_assert_eq(create_one(c, &x.t, false, NULL, 0), KK_ERR_INVALID_REPLICATION_FACTOR);
    x = (ct){ .t = topic("c", 1, 3) };
    cr_assert_eq(create_one(c, &x.t, false, msg, sizeof msg), KK_ERR_INVALID_REPLICATION_FACTOR);
    cr_assert(strstr(msg, "one replica"), "%s", msg);
    cr_assert_eq(partitions_of(e.k, "c"), KLOG_EUNKNOWN_TOPIC);

    /* configs: unknown keys, keys of other scopes, num.partitions, bad values */
    const char *bad[][2] = { { "no.such.key", "1" }, { "acks", "all" }, { "num.partitions", "4" },
                             { "retention.ms", "soon" }, { "cleanup.policy", "sometimes" } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        x = (ct){ .t = topic("c", 1, 1) };
        with_config(&x, bad[i][0], bad[i][1]);
        cr_assert_eq(create_one(c, &x.t, false, msg, sizeof msg), KK_ERR_INVALID_CONFIG, "%s", bad[i][0]);
        cr_assert(strstr(msg, bad[i][0]), "%s: %s", bad[i][0], msg);
    }
    cr_assert_eq(partitions_of(e.k, "c"), KLOG_EUNKNOWN_TOPIC);

    /* replica assignments: each partition on this node alone */
    int32_t here[3] = { 0, 0, 0 }, there[2] = { 0, 1 };
    x = (ct){ .t = topic("d", -1, -1) };
    with_assignment(&x, 3, here);
    cr_assert_eq(create_one(c, &x.t, false, NULL, 0), 0);
    cr_assert_eq(partitions_of(e.k, "d"), 3);
    x = (ct){ .t = topic("c", -1, -1) };
    with_assignment(&x, 2, there);
    cr_assert_eq(create_one(c, &x.t, false, NULL, 0), KK_ERR_INVALID_REPLICA_ASSIGNMENT);
    x = (ct){ .t = topic("c", 2, -1) };
    with_assignment(&x, 2, here);
    cr_assert_eq(create_one(c, &x.t, false, NULL, 0), KK_ERR_INVALID_REQUEST);

    /* a topic named twice: both refused; the others of the request go on */
    kk_create_topics_req_topic ts[3] = { topic("e", 1, 1), topic("f", 1, 1), topic("e", 2, 1) };
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    const kk_create_topics_resp *cr = create(c, ts, 3, false, &a, &r);
    cr_assert_eq(cr->topics.v[0].error_code, KK_ERR_INVALID_REQUEST);
    cr_assert_eq(cr->topics.v[1].error_code, 0);
    cr_assert_eq(cr->topics.v[2].error_code, KK_ERR_INVALID_REQUEST);
    kk_arena_reset(&a);
    cr_assert_eq(partitions_of(e.k, "e"), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(partitions_of(e.k, "f"), 1);

    /* v0 has no error_message: still answered */
    kk_create_topics_req q0 = { .timeout_ms = 1000 };
    x = (ct){ .t = topic("a", 1, 1) };
    q0.topics.v = &x.t;
    q0.topics.n = 1;
    su_call(c, KK_API_CREATE_TOPICS, 0, &q0, &a, &r);
    cr_assert_eq(r.body.create_topics.topics.v[0].error_code, KK_ERR_TOPIC_ALREADY_EXISTS);
    kk_arena_reset(&a);
    klog_conn_close(c);
    su_down(&e);
}

Test(server_admin, delete_topics_and_create_partitions)
{
    su_env e;
    su_up(&e, NULL);
    cr_assert_eq(klog_topic_create(e.k, "a", 2, NULL, NULL, 0), 0);
    cr_assert_eq(klog_topic_create(e.k, "b", 1, NULL, NULL, 0), 0);
    klog_conn *c = su_dial(&e);

    /* CreatePartitions: grow; not shrink, not stay; this node only */
    cr_assert_eq(grow(c, "a", 4, -1, true), 0);
    cr_assert_eq(partitions_of(e.k, "a"), 2, "validate_only changed the topic");
    cr_assert_eq(grow(c, "a", 4, -1, false), 0);
    cr_assert_eq(partitions_of(e.k, "a"), 4);
    cr_assert_eq(grow(c, "a", 4, -1, false), KK_ERR_INVALID_PARTITIONS);
    cr_assert_eq(grow(c, "a", 3, -1, false), KK_ERR_INVALID_PARTITIONS);
    cr_assert_eq(grow(c, "a", 1000000, -1, false), KK_ERR_INVALID_PARTITIONS);
    cr_assert_eq(grow(c, "a", 6, 2, false), 0);
    cr_assert_eq(grow(c, "a", 8, 1, false), KK_ERR_INVALID_REPLICA_ASSIGNMENT);
    cr_assert_eq(partitions_of(e.k, "a"), 6);
    cr_assert_eq(grow(c, "nosuch", 2, -1, false), KK_ERR_UNKNOWN_TOPIC_OR_PARTITION);

    /* DeleteTopics */
    kk_str names[4] = { KK_STR("b"), KK_STR("nosuch"), KK_STR("a"), KK_STR("a") };
    kk_delete_topics_req q = { .timeout_ms = 5000 };
    q.topic_names.v = names;
    q.topic_names.n = 4;
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    su_call(c, KK_API_DELETE_TOPICS, 3, &q, &a, &r);
    const kk_delete_topics_resp *d = &r.body.delete_topics;
    cr_assert_eq(d->responses.n, 4);
    cr_assert_eq(d->responses.v[0].error_code, 0);
    cr_assert_eq(d->responses.v[1].error_code, KK_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(d->responses.v[2].error_code, KK_ERR_INVALID_REQUEST);
    cr_assert_eq(d->responses.v[3].error_code, KK_ERR_INVALID_REQUEST);
    kk_arena_reset(&a);
    cr_assert_eq(partitions_of(e.k, "b"), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(partitions_of(e.k, "a"), 6);
    klog_conn_close(c);
    su_down(&e);
}

Test(server_admin, describe_configs)
{
    klog_conf *conf;
    cr_assert_eq(klog_conf_new(&conf), 0);
    cr_assert_eq(klog_conf_set(conf, "segment.ms", "3600000", NULL, 0), 0);
    su_env e;
    su_up(&e, conf);
    klog_conf_free(conf);
    cr_assert_eq(klog_conf_new(&conf), 0);
    cr_assert_eq(klog_conf_set(conf, "retention.ms", "1234", NULL, 0), 0);
    cr_assert_eq(klog_topic_create(e.k, "t", 1, conf, NULL, 0), 0);
    klog_conf_free(conf);
    klog_conn *c = su_dial(&e);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;

    /* v2: every topic key with its value and where it comes from */
    const kk_describe_configs_resp_result *res = describe(c, 2, 2, "t", NULL, 0, false, &a, &r);
    cr_assert_eq(res->error_code, 0);
    cr_assert_null(res->error_message.p);
    cr_assert_eq(res->resource_type, 2);
    cr_assert_str_eq(res->resource_name.p, "t");
    const kk_describe_configs_resp_config *k = entry(res, "retention.ms");
    cr_assert_not_null(k);
    cr_assert_str_eq(k->value.p, "1234");
    cr_assert_eq(k->config_source, 1); /* DYNAMIC_TOPIC_CONFIG */
    cr_assert(!k->read_only);
    cr_assert(!k->is_sensitive);
    cr_assert_not_null(k = entry(res, "segment.ms"));
    cr_assert_str_eq(k->value.p, "3600000");
    cr_assert_eq(k->config_source, 4); /* STATIC_BROKER_CONFIG: the instance's */
    cr_assert_not_null(k = entry(res, "cleanup.policy"));
    cr_assert_str_eq(k->value.p, "delete");
    cr_assert_eq(k->config_source, 5); /* DEFAULT_CONFIG */
    cr_assert_null(entry(res, "num.partitions"), "not a topic config in Kafka");
    cr_assert_null(entry(res, "io.backend"), "an instance key among a topic's");
    cr_assert_gt(res->configs.n, 8);
    kk_arena_reset(&a);

    /* v0: is_default instead of the source; a key filter */
    const char *keys[2] = { "retention.ms", "cleanup.policy" };
    res = describe(c, 0, 2, "t", keys, 2, false, &a, &r);
    cr_assert_eq(res->configs.n, 2);
    cr_assert(!entry(res, "retention.ms")->is_default);
    cr_assert(entry(res, "cleanup.policy")->is_default);
    kk_arena_reset(&a);

    /* v1 with synonyms: the topic's, the instance's, the default, in that order */
    const char *key1[1] = { "segment.ms" };
    res = describe(c, 1, 2, "t", key1, 1, true, &a, &r);
    cr_assert_eq(res->configs.n, 1);
    k = &res->configs.v[0];
    cr_assert_eq(k->synonyms.n, 2);
    cr_assert_eq(k->synonyms.v[0].source, 4);
    cr_assert_str_eq(k->synonyms.v[0].value.p, "3600000");
    cr_assert_eq(k->synonyms.v[1].source, 5);
    cr_assert_str_eq(k->synonyms.v[1].value.p, "604800000");
    kk_arena_reset(&a);

    /* errors: no such topic, a bad name, a resource type klog does not have */
    res = describe(c, 2, 2, "nosuch", NULL, 0, false, &a, &r);
    cr_assert_eq(res->error_code, KK_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_not_null(res->error_message.p);
    kk_arena_reset(&a);
    res = describe(c, 2, 2, "bad name", NULL, 0, false, &a, &r);
    cr_assert_eq(res->error_code, KK_ERR_INVALID_TOPIC_EXCEPTION);
    kk_arena_reset(&a);
    res = describe(c, 2, 8, "x", NULL, 0, false, &a, &r);
    cr_assert_eq(res->error_code, KK_ERR_INVALID_REQUEST);
    kk_arena_reset(&a);

    /* the broker: this node's id or "" (the default), read-only keys */
    for (int i = 0; i < 2; i++) {
        res = describe(c, 2, 4, i ? "" : "0", NULL, 0, false, &a, &r);
        cr_assert_eq(res->error_code, 0);
        cr_assert_not_null(k = entry(res, "segment.ms"));
        cr_assert_str_eq(k->value.p, "3600000");
        cr_assert_eq(k->config_source, 4);
        cr_assert(k->read_only);
        cr_assert_not_null(k = entry(res, "num.partitions"));
        cr_assert_eq(k->config_source, 5);
        cr_assert_not_null(entry(res, "node.id"));
        kk_arena_reset(&a);
    }
    res = describe(c, 2, 4, "7", NULL, 0, false, &a, &r);
    cr_assert_eq(res->error_code, KK_ERR_INVALID_REQUEST);
    kk_arena_reset(&a);
    klog_conn_close(c);
    su_down(&e);
}
