/*
 * tools/remote_admin.c - `klog topics` and `klog groups` in remote mode,
 * through librdkafka's admin API (CreateTopics, DeleteTopics,
 * CreatePartitions, DescribeConfigs, AlterConfigs, ListConsumerGroups,
 * DescribeConsumerGroups, ListConsumerGroupOffsets,
 * AlterConsumerGroupOffsets, DeleteGroups), metadata and ListOffsets
 * (watermarks, offsets for times).  The output is the local commands'
 * (cmd_topics.c, cmd_groups.c); what the Kafka protocol does not carry
 * (a partition's durable offset, sizes, segments; a group's generation)
 * prints as "-" (null in json).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "remote_rdk.h"

typedef struct admin {
    const char *ctx;
    const cli_remote *r;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
} admin;

static int admin_open(admin *a, const char *ctx, const cli_remote *r)
{
    static const char *const defaults[] = { "client.id", "klog-admin", NULL };
    rd_kafka_conf_t *conf = NULL;
    *a = (admin){ .ctx = ctx, .r = r };
    int rc = rk_conf(ctx, r, defaults, NULL, &conf);
    if (rc == CLI_OK)
        rc = rk_create(ctx, RD_KAFKA_PRODUCER, conf, &a->rk);
    if (rc == CLI_OK)
        a->q = rd_kafka_queue_new(a->rk);
    return rc;
}

static void admin_close(admin *a)
{
    if (a->q)
        rd_kafka_queue_destroy(a->q);
    if (a->rk)
        rd_kafka_destroy(a->rk);
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static bool is_internal(const char *name)
{
    return strncmp(name, "__", 2) == 0;
}

/* ---- topics ------------------------------------------------------------------------- */

/* DescribeConfigs of one topic: its entries (*es, *ne) and the event that
 * owns them (*ev, for the caller to destroy), or an error printed. */
static int fetch_topic_configs(admin *a, const char *topic, rd_kafka_event_t **ev,
                               const rd_kafka_ConfigEntry_t ***es, size_t *ne)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_AdminOptions_t *opt = rk_admin_options(a->rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_DescribeConfigs(a->rk, &res, 1, opt, a->q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_ConfigResource_destroy(res);
    char what[300];
    snprintf(what, sizeof what, "%s: describing its configuration", topic);
    *ev = rk_admin_wait(a->ctx, a->q, what);
    if (!*ev)
        return CLI_FAIL;
    int rc = CLI_OK;
    size_t nres = 0;
    const rd_kafka_ConfigResource_t **rs =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(*ev), &nres);
    if (nres < 1) {
        rc = cli_err(a->ctx, "%s: no configuration in the answer", topic);
    } else if (rd_kafka_ConfigResource_error(rs[0])) {
        rd_kafka_resp_err_t e = rd_kafka_ConfigResource_error(rs[0]);
        rc = e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? cli_err(a->ctx, "%s: no such topic", topic)
                                                           : rk_fail(a->ctx, what, e, rd_kafka_ConfigResource_error_string(rs[0]));
    } else {
        *es = rd_kafka_ConfigResource_configs(rs[0], ne);
    }
    if (rc != CLI_OK) {
        rd_kafka_event_destroy(*ev);
        *ev = NULL;
    }
    return rc;
}

/* The configs the topic has of its own ("k=v,k=v" into buf), or NULL
 * after printing an error.  With pairs, also the key/value pairs
 * (strdup'ed, *n of them) for alter. */
static int topic_configs(admin *a, const char *topic, char *buf, size_t size, char ***pairs, int *npairs)
{
    rd_kafka_event_t *ev;
    const rd_kafka_ConfigEntry_t **es = NULL;
    size_t ne = 0, used = 0;
    int rc = fetch_topic_configs(a, topic, &ev, &es, &ne);
    if (rc != CLI_OK)
        return rc;
    buf[0] = '\0';
    for (size_t i = 0; i < ne; i++) {
        if (rd_kafka_ConfigEntry_source(es[i]) != RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG)
            continue;
        const char *k = rd_kafka_ConfigEntry_name(es[i]), *v = rd_kafka_ConfigEntry_value(es[i]);
        int n = snprintf(buf + used, size - used, "%s%s=%s", used ? "," : "", k, v ? v : "");
        if (n > 0 && (size_t)n < size - used)
            used += (size_t)n;
        if (pairs) {
            char **np = realloc(*pairs, (size_t)(*npairs + 2) * sizeof *np);
            if (!np) {
                rc = cli_err(a->ctx, "out of memory");
                break;
            }
            *pairs = np;
            np[*npairs] = strdup(k);
            np[*npairs + 1] = strdup(v ? v : "");
            *npairs += 2;
        }
    }
    rd_kafka_event_destroy(ev);
    return rc;
}

/* topics describe-configs: every entry DescribeConfigs returns, with its
 * source. */
static int describe_configs(admin *a, const char *topic)
{
    rd_kafka_event_t *ev;
    const rd_kafka_ConfigEntry_t **es = NULL;
    size_t ne = 0;
    int rc = fetch_topic_configs(a, topic, &ev, &es, &ne);
    if (rc != CLI_OK)
        return rc;
    topics_print_configs_header(topic);
    for (size_t i = 0; i < ne; i++) {
        const char *v = rd_kafka_ConfigEntry_value(es[i]);
        topics_print_config(rd_kafka_ConfigEntry_name(es[i]), v ? v : "",
                            rd_kafka_ConfigSource_name(rd_kafka_ConfigEntry_source(es[i])));
    }
    rd_kafka_event_destroy(ev);
    return rc;
}

static int describe_topic(admin *a, const rd_kafka_metadata_topic_t *t)
{
    char config[4096];
    int rc = topic_configs(a, t->topic, config, sizeof config, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    topics_print_topic(t->topic, t->partition_cnt, config);
    /* metadata lists partitions in any order: by number here */
    for (int32_t p = 0; p < t->partition_cnt; p++) {
        const rd_kafka_metadata_partition_t *mp = NULL;
        for (int i = 0; i < t->partition_cnt; i++)
            if (t->partitions[i].id == p)
                mp = &t->partitions[i];
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t err = mp ? mp->err : RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
        if (!err)
            err = rd_kafka_query_watermark_offsets(a->rk, t->topic, p, &lo, &hi, REMOTE_REQUEST_MS);
        char slo[32] = "-", shi[32] = "-";
        if (!err) {
            snprintf(slo, sizeof slo, "%" PRId64, lo);
            snprintf(shi, sizeof shi, "%" PRId64, hi);
        }
        /* Leader, Replicas, Isr: as kafka-topics --describe shows them (a
         * replicated klog serve's; one node's own id otherwise) */
        char reps[256] = "-", isr[256] = "-";
        for (int i = 0, o = 0; mp && i < mp->replica_cnt && o < (int)sizeof reps - 12; i++)
            o += snprintf(reps + o, sizeof reps - (size_t)o, "%s%d", i ? "," : "", (int)mp->replicas[i]);
        for (int i = 0, o = 0; mp && i < mp->isr_cnt && o < (int)sizeof isr - 12; i++)
            o += snprintf(isr + o, sizeof isr - (size_t)o, "%s%d", i ? "," : "", (int)mp->isrs[i]);
        printf("\tTopic: %s\tPartition: %d\tStart: %s\tEnd: %s\tDurable: -\tSize: -\tSegments: -\tDiskBytes: -"
               "\tCleanOffset: -\tError: %s\tLeader: %d\tReplicas: %s\tIsr: %s\n",
               t->topic, (int)p, slo, shi, err ? rd_kafka_err2name(err) : "none", mp ? (int)mp->leader : -1, reps,
               isr);
    }
    return CLI_OK;
}

/* Sorted names of the topics in md (pointers into md). */
static const char **topic_names(const struct rd_kafka_metadata *md, bool exclude_internal, int *n)
{
    const char **names = calloc((size_t)md->topic_cnt + 1, sizeof *names);
    *n = 0;
    if (!names)
        return NULL;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!md->topics[i].err && (!exclude_internal || !is_internal(md->topics[i].topic)))
            names[(*n)++] = md->topics[i].topic;
    qsort(names, (size_t)*n, sizeof *names, cmp_str);
    return names;
}

static int topics_create(admin *a, const remote_topics_opts *o)
{
    char err[512] = "";
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(o->topics[0], o->partitions ? o->partitions : -1,
                                                    o->replication_factor ? o->replication_factor : -1, err,
                                                    sizeof err);
    if (!nt)
        return cli_usage(a->ctx, a->ctx, "%s: %s", o->topics[0], err);
    for (int i = 0; i < o->nsets; i++) {
        char key[256];
        size_t kl = strcspn(o->sets[i], "=");
        snprintf(key, sizeof key, "%.*s", (int)kl, o->sets[i]);
        rd_kafka_NewTopic_set_config(nt, key, o->sets[i] + kl + 1);
    }
    rd_kafka_AdminOptions_t *opt = rk_admin_options(a->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_CreateTopics(a->rk, &nt, 1, opt, a->q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_event_t *ev = rk_admin_wait(a->ctx, a->q, o->topics[0]);
    if (!ev)
        return CLI_FAIL;
    size_t n = 0;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    int rc = CLI_OK;
    rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__BAD_MSG;
    const char *es = n ? rd_kafka_topic_result_error_string(tr[0]) : NULL;
    if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && o->if_not_exists)
        e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!e) {
        printf("Created topic %s.\n", o->topics[0]);
    } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        rc = cli_err(a->ctx, "%s: topic already exists", o->topics[0]);
    } else if (e == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION) {
        rc = cli_err(a->ctx, "%s: invalid topic name: 1..249 characters of [a-zA-Z0-9._-], not '.' or '..'",
                     o->topics[0]);
    } else {
        rc = rk_fail(a->ctx, o->topics[0], e, es);
        if (e == RD_KAFKA_RESP_ERR_INVALID_CONFIG)
            rc = CLI_USAGE; /* a key that is not a topic key: bad input, as locally */
    }
    rd_kafka_event_destroy(ev);
    return rc;
}

static int topics_delete(admin *a, const remote_topics_opts *o)
{
    rd_kafka_DeleteTopic_t **dt = calloc((size_t)o->ntopics, sizeof *dt);
    if (!dt)
        return cli_err(a->ctx, "out of memory");
    for (int i = 0; i < o->ntopics; i++)
        dt[i] = rd_kafka_DeleteTopic_new(o->topics[i]);
    rd_kafka_AdminOptions_t *opt = rk_admin_options(a->rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_DeleteTopics(a->rk, dt, (size_t)o->ntopics, opt, a->q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_DeleteTopic_destroy_array(dt, (size_t)o->ntopics);
    free(dt);
    rd_kafka_event_t *ev = rk_admin_wait(a->ctx, a->q, "deleting topics");
    if (!ev)
        return CLI_FAIL;
    size_t n = 0;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    int rc = CLI_OK;
    /* in the order asked */
    for (int i = 0; i < o->ntopics; i++) {
        const rd_kafka_topic_result_t *r = NULL;
        for (size_t j = 0; j < n && !r; j++)
            if (!strcmp(rd_kafka_topic_result_name(tr[j]), o->topics[i]))
                r = tr[j];
        rd_kafka_resp_err_t e = r ? rd_kafka_topic_result_error(r) : RD_KAFKA_RESP_ERR__BAD_MSG;
        if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && o->if_exists)
            continue;
        if (!e)
            printf("Deleted topic %s.\n", o->topics[i]);
        else if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            rc = cli_err(a->ctx, "%s: no such topic", o->topics[i]);
        else
            rc = rk_fail(a->ctx, o->topics[i], e, r ? rd_kafka_topic_result_error_string(r) : NULL);
    }
    rd_kafka_event_destroy(ev);
    return rc;
}

/* AlterConfigs replaces the whole set of a topic's own keys (librdkafka 2.0
 * has no IncrementalAlterConfigs): the current keys, then --config, less
 * --delete-config. */
static int topics_alter_config(admin *a, const remote_topics_opts *o)
{
    char cur[4096], **pairs = NULL;
    int npairs = 0;
    int rc = topic_configs(a, o->topics[0], cur, sizeof cur, &pairs, &npairs);
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, o->topics[0]);
    for (int i = 0; rc == CLI_OK && i < npairs; i += 2) {
        bool drop = false;
        for (int j = 0; j < o->nunsets; j++)
            drop = drop || !strcmp(o->unsets[j], pairs[i]);
        for (int j = 0; j < o->nsets; j++) {
            size_t kl = strcspn(o->sets[j], "=");
            drop = drop || (strlen(pairs[i]) == kl && !strncmp(o->sets[j], pairs[i], kl));
        }
        if (!drop)
            rd_kafka_ConfigResource_set_config(res, pairs[i], pairs[i + 1]);
    }
    for (int j = 0; rc == CLI_OK && j < o->nsets; j++) {
        char key[256];
        size_t kl = strcspn(o->sets[j], "=");
        snprintf(key, sizeof key, "%.*s", (int)kl, o->sets[j]);
        rd_kafka_ConfigResource_set_config(res, key, o->sets[j] + kl + 1);
    }
    for (int i = 0; i < npairs; i++)
        free(pairs[i]);
    free(pairs);
    if (rc != CLI_OK) {
        rd_kafka_ConfigResource_destroy(res);
        return rc;
    }
    rd_kafka_AdminOptions_t *opt = rk_admin_options(a->rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
    rd_kafka_AlterConfigs(a->rk, &res, 1, opt, a->q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_ConfigResource_destroy(res);
    char what[300];
    snprintf(what, sizeof what, "%s: altering its configuration", o->topics[0]);
    rd_kafka_event_t *ev = rk_admin_wait(a->ctx, a->q, what);
    if (!ev)
        return CLI_FAIL;
    size_t n = 0;
    const rd_kafka_ConfigResource_t **rs =
        rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
    rd_kafka_resp_err_t e = n ? rd_kafka_ConfigResource_error(rs[0]) : RD_KAFKA_RESP_ERR__BAD_MSG;
    if (!e)
        printf("Updated config for topic %s.\n", o->topics[0]);
    else
        rc = rk_fail(a->ctx, what, e, n ? rd_kafka_ConfigResource_error_string(rs[0]) : NULL);
    rd_kafka_event_destroy(ev);
    return rc;
}

static int topics_alter(admin *a, const remote_topics_opts *o)
{
    const struct rd_kafka_metadata *md = NULL;
    int rc = rk_metadata(a->ctx, a->r, a->rk, &md);
    if (rc != CLI_OK)
        return rc;
    const rd_kafka_metadata_topic_t *t = rk_find_topic(md, o->topics[0]);
    int cur = t && !t->err ? t->partition_cnt : -1;
    rd_kafka_metadata_destroy(md);
    if (cur < 0)
        return cli_err(a->ctx, "%s: no such topic", o->topics[0]);
    if (o->partitions && o->partitions <= cur) {
        fprintf(stderr, "klog: %s: %s: the topic has %d partitions; --partitions must be more "
                "(a topic never shrinks)\n", a->ctx, o->topics[0], cur);
        return CLI_FAIL;
    }
    if ((o->nsets || o->nunsets) && (rc = topics_alter_config(a, o)) != CLI_OK)
        return rc;
    if (!o->partitions)
        return CLI_OK;
    char err[512] = "";
    rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(o->topics[0], (size_t)o->partitions, err, sizeof err);
    if (!np)
        return cli_usage(a->ctx, a->ctx, "%s: %s", o->topics[0], err);
    rd_kafka_AdminOptions_t *opt = rk_admin_options(a->rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS);
    rd_kafka_CreatePartitions(a->rk, &np, 1, opt, a->q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_NewPartitions_destroy(np);
    rd_kafka_event_t *ev = rk_admin_wait(a->ctx, a->q, o->topics[0]);
    if (!ev)
        return CLI_FAIL;
    size_t n = 0;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &n);
    rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__BAD_MSG;
    if (!e)
        printf("Topic %s now has %d partitions.\n", o->topics[0], o->partitions);
    else
        rc = rk_fail(a->ctx, o->topics[0], e, n ? rd_kafka_topic_result_error_string(tr[0]) : NULL);
    rd_kafka_event_destroy(ev);
    return rc;
}

int remote_topics(const cli_remote *r, const remote_topics_opts *o)
{
    admin a;
    int rc = admin_open(&a, o->ctx, r);
    if (rc != CLI_OK) {
        admin_close(&a);
        return rc;
    }
    const char *act = o->action;
    if (!strcmp(act, "create")) {
        rc = topics_create(&a, o);
    } else if (!strcmp(act, "delete")) {
        rc = topics_delete(&a, o);
    } else if (!strcmp(act, "alter")) {
        rc = topics_alter(&a, o);
    } else { /* list, describe, describe-configs */
        bool configs = !strcmp(act, "describe-configs");
        const struct rd_kafka_metadata *md = NULL;
        if ((rc = rk_metadata(a.ctx, r, a.rk, &md)) == CLI_OK) {
            int n = 0;
            const char **names = topic_names(md, o->exclude_internal, &n);
            if (!names) {
                rc = cli_err(a.ctx, "out of memory");
            } else if (!strcmp(act, "list")) {
                for (int i = 0; i < n; i++)
                    printf("%s\n", names[i]);
            } else if (o->ntopics) {
                for (int i = 0; i < o->ntopics; i++) {
                    const rd_kafka_metadata_topic_t *t = rk_find_topic(md, o->topics[i]);
                    int r1 = !t || t->err ? cli_err(a.ctx, "%s: no such topic", o->topics[i])
                             : configs    ? describe_configs(&a, t->topic)
                                          : describe_topic(&a, t);
                    if (r1 != CLI_OK)
                        rc = r1;
                }
            } else {
                for (int i = 0; i < n; i++) {
                    int r1 = configs ? describe_configs(&a, names[i]) : describe_topic(&a, rk_find_topic(md, names[i]));
                    if (r1 != CLI_OK)
                        rc = r1;
                }
            }
            free(names);
            rd_kafka_metadata_destroy(md);
        }
    }
    admin_close(&a);
    return rc;
}

/* ---- groups ------------------------------------------------------------------------- */

/* Describe one group: *out (destroy the event with *ev) or an error. */
static int describe_group(admin *a, const char *group, rd_kafka_event_t **ev,
                          const rd_kafka_ConsumerGroupDescription_t **out)
{
    const char *groups[1] = { group };
    rd_kafka_AdminOptions_t *opt = rk_admin_options(a->rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    rd_kafka_DescribeConsumerGroups(a->rk, groups, 1, opt, a->q);
    rd_kafka_AdminOptions_destroy(opt);
    if (!(*ev = rk_admin_wait(a->ctx, a->q, group)))
        return CLI_FAIL;
    size_t n = 0;
    const rd_kafka_ConsumerGroupDescription_t **gs =
        rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(*ev), &n);
    if (n < 1)
        return cli_err(a->ctx, "%s: no description in the answer", group);
    const rd_kafka_error_t *e = rd_kafka_ConsumerGroupDescription_error(gs[0]);
    if (e)
        return rk_fail(a->ctx, group, rd_kafka_error_code(e), rd_kafka_error_string(e));
    *out = gs[0];
    return CLI_OK;
}

/* The committed offsets of a group for parts (NULL: every partition of
 * every topic; those without one come back with offset -1).  *out is a
 * copy to destroy.  librdkafka 2.0 sends "no partitions" as an empty
 * topic array rather than null (Kafka's "all"), so all is asked for by
 * name. */
static int group_offsets(admin *a, const char *group, const rd_kafka_topic_partition_list_t *parts,
                         rd_kafka_topic_partition_list_t **out)
{
    rd_kafka_topic_partition_list_t *all = NULL;
    if (!parts) {
        const struct rd_kafka_metadata *md = NULL;
        int rc = rk_metadata(a->ctx, a->r, a->rk, &md);
        if (rc != CLI_OK)
            return rc;
        all = rd_kafka_topic_partition_list_new(md->topic_cnt > 0 ? md->topic_cnt : 1);
        for (int i = 0; i < md->topic_cnt; i++)
            for (int p = 0; !md->topics[i].err && p < md->topics[i].partition_cnt; p++)
                rd_kafka_topic_partition_list_add(all, md->topics[i].topic, md->topics[i].partitions[p].id);
        rd_kafka_metadata_destroy(md);
        parts = all;
    }
    if (parts->cnt == 0) { /* no topic at all: nothing committed */
        *out = all;
        return CLI_OK;
    }
    rd_kafka_ListConsumerGroupOffsets_t *l = rd_kafka_ListConsumerGroupOffsets_new(group, parts);
    if (all)
        rd_kafka_topic_partition_list_destroy(all);
    rd_kafka_AdminOptions_t *opt = rk_admin_options(a->rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_ListConsumerGroupOffsets(a->rk, &l, 1, opt, a->q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_ListConsumerGroupOffsets_destroy(l);
    char what[300];
    snprintf(what, sizeof what, "%s: committed offsets", group);
    rd_kafka_event_t *ev = rk_admin_wait(a->ctx, a->q, what);
    if (!ev)
        return CLI_FAIL;
    size_t n = 0;
    const rd_kafka_group_result_t **gr =
        rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
    int rc = CLI_OK;
    const rd_kafka_error_t *e = n ? rd_kafka_group_result_error(gr[0]) : NULL;
    if (n < 1)
        rc = cli_err(a->ctx, "%s: no answer", what);
    else if (e)
        rc = rk_fail(a->ctx, what, rd_kafka_error_code(e), rd_kafka_error_string(e));
    else
        *out = rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(gr[0]));
    rd_kafka_event_destroy(ev);
    return rc;
}

static const char *state_name(rd_kafka_consumer_group_state_t s)
{
    return rd_kafka_consumer_group_state_name(s);
}

/* The member that owns topic/partition, or NULL. */
static const rd_kafka_MemberDescription_t *owner(const rd_kafka_ConsumerGroupDescription_t *g, const char *topic,
                                                 int32_t partition)
{
    size_t n = rd_kafka_ConsumerGroupDescription_member_count(g);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(g, i);
        const rd_kafka_topic_partition_list_t *as =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
        for (int j = 0; as && j < as->cnt; j++)
            if (as->elems[j].partition == partition && !strcmp(as->elems[j].topic, topic))
                return m;
    }
    return NULL;
}

static int cmp_tp(const void *x, const void *y, void *opaque)
{
    (void)opaque;
    const rd_kafka_topic_partition_t *a = x, *b = y;
    int c = strcmp(a->topic, b->topic);
    return c ? c : (a->partition > b->partition) - (a->partition < b->partition);
}

static int groups_describe(admin *a, const remote_groups_opts *o)
{
    rd_kafka_event_t *ev = NULL;
    const rd_kafka_ConsumerGroupDescription_t *g = NULL;
    rd_kafka_topic_partition_list_t *offs = NULL;
    int rc = describe_group(a, o->group, &ev, &g);
    if (rc == CLI_OK)
        rc = group_offsets(a, o->group, NULL, &offs);
    if (rc != CLI_OK)
        goto out;
    rd_kafka_consumer_group_state_t st = rd_kafka_ConsumerGroupDescription_state(g);
    size_t nm = rd_kafka_ConsumerGroupDescription_member_count(g);
    int noff = 0;
    for (int i = 0; i < offs->cnt; i++)
        noff += offs->elems[i].offset >= 0 && !offs->elems[i].err;
    if ((st == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD || st == RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY) && nm == 0 &&
        noff == 0) {
        rc = cli_err(a->ctx, "%s: no such group", o->group);
        goto out;
    }
    rd_kafka_topic_partition_list_sort(offs, cmp_tp, NULL);
    const char *proto = rd_kafka_ConsumerGroupDescription_partition_assignor(g);
    if (o->json) {
        printf("{\"group\":");
        cli_json_str(stdout, o->group);
        printf(",\"state\":");
        cli_json_str(stdout, state_name(st));
        printf(",\"generation\":null,\"protocol\":");
        cli_json_str(stdout, proto ? proto : "");
        printf(",\"members\":[");
    } else {
        groups_print_group(o->group, state_name(st), -1, proto && *proto ? proto : "-", nm);
        groups_print_offsets_header();
    }
    if (o->json) {
        for (size_t i = 0; i < nm; i++) {
            const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(g, i);
            const char *iid = rd_kafka_MemberDescription_group_instance_id(m);
            printf("%s{\"member_id\":", i ? "," : "");
            cli_json_str(stdout, rd_kafka_MemberDescription_consumer_id(m));
            printf(",\"instance_id\":");
            cli_json_str(stdout, iid && *iid ? iid : NULL);
            printf(",\"client_id\":");
            cli_json_str(stdout, rd_kafka_MemberDescription_client_id(m));
            printf(",\"assignment\":[");
            const rd_kafka_topic_partition_list_t *as =
                rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
            for (int j = 0; as && j < as->cnt; j++) {
                printf("%s{\"topic\":", j ? "," : "");
                cli_json_str(stdout, as->elems[j].topic);
                printf(",\"partition\":%d}", (int)as->elems[j].partition);
            }
            printf("]}");
        }
        printf("],\"offsets\":[");
    }
    int printed = 0;
    for (int i = 0; i < offs->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &offs->elems[i];
        if (tp->err || tp->offset < 0)
            continue;
        int64_t lo = -1, hi = -1, lag = -1;
        if (rd_kafka_query_watermark_offsets(a->rk, tp->topic, tp->partition, &lo, &hi, REMOTE_REQUEST_MS))
            hi = -1;
        if (hi >= 0)
            lag = hi > tp->offset ? hi - tp->offset : 0;
        if (o->json) {
            printf("%s{\"topic\":", printed++ ? "," : "");
            cli_json_str(stdout, tp->topic);
            printf(",\"partition\":%d,\"committed\":%" PRId64 ",\"end\":", (int)tp->partition, tp->offset);
            if (hi >= 0)
                printf("%" PRId64 ",\"lag\":%" PRId64, hi, lag);
            else
                printf("null,\"lag\":null");
            printf(",\"metadata\":");
            if (tp->metadata && tp->metadata_size)
                cli_json_bytes(stdout, tp->metadata, tp->metadata_size);
            else
                printf("\"\"");
            printf("}");
        } else {
            const rd_kafka_MemberDescription_t *m = owner(g, tp->topic, tp->partition);
            groups_print_offset(o->group, tp->topic, tp->partition, tp->offset, hi, lag,
                                m ? rd_kafka_MemberDescription_consumer_id(m) : NULL,
                                m ? rd_kafka_MemberDescription_client_id(m) : NULL);
        }
    }
    if (o->json) {
        printf("]}\n");
    } else if (nm) {
        groups_print_members_header();
        for (size_t i = 0; i < nm; i++) {
            const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(g, i);
            const rd_kafka_topic_partition_list_t *as =
                rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
            char assignment[4096] = "";
            size_t used = 0;
            for (int j = 0; as && j < as->cnt && used < sizeof assignment; j++) {
                int w = snprintf(assignment + used, sizeof assignment - used, "%s%s-%d", j ? "," : "",
                                 as->elems[j].topic, (int)as->elems[j].partition);
                if (w > 0)
                    used += (size_t)w;
            }
            groups_print_member(rd_kafka_MemberDescription_consumer_id(m), rd_kafka_MemberDescription_client_id(m),
                                rd_kafka_MemberDescription_group_instance_id(m), assignment);
        }
    }
out:
    if (offs)
        rd_kafka_topic_partition_list_destroy(offs);
    if (ev)
        rd_kafka_event_destroy(ev);
    return rc;
}

/* The group must have no member (as klog_group_reset_offsets and
 * klog_group_delete require, and Kafka). */
static int group_inactive(admin *a, const char *group)
{
    rd_kafka_event_t *ev = NULL;
    const rd_kafka_ConsumerGroupDescription_t *g = NULL;
    int rc = describe_group(a, group, &ev, &g);
    if (rc == CLI_OK && rd_kafka_ConsumerGroupDescription_member_count(g) > 0)
        rc = cli_err(a->ctx, "%s: the group has active members: stop its consumers first", group);
    if (ev)
        rd_kafka_event_destroy(ev);
    return rc;
}

/* The partitions of topic in the metadata md: -1 (and the error printed)
 * when it has no such topic, or not o->partition. */
static int topic_partitions(admin *a, const struct rd_kafka_metadata *md, const char *topic, int32_t partition)
{
    const rd_kafka_metadata_topic_t *t = rk_find_topic(md, topic);
    int np = t && !t->err ? t->partition_cnt : -1;
    if (np < 0)
        cli_err(a->ctx, "%s: no such topic", topic);
    else if (partition >= np)
        cli_err(a->ctx, "%s: no partition %d (the topic has %d)", topic, (int)partition, np);
    return np < 0 || partition >= np ? -1 : np;
}

/* Reset (o->execute) or plan the reset of partitions parts[0..nparts) of
 * one topic. */
static int reset_topic(admin *a, const remote_groups_opts *o, const char *topic, const int32_t *parts, int nparts,
                       bool *header)
{
    int rc = CLI_OK;
    rd_kafka_topic_partition_list_t *want = rd_kafka_topic_partition_list_new(nparts), *cur = NULL;
    for (int i = 0; i < nparts; i++)
        rd_kafka_topic_partition_list_add(want, topic, parts[i]);
    if ((rc = group_offsets(a, o->group, want, &cur)) != CLI_OK) {
        rd_kafka_topic_partition_list_destroy(want);
        return rc;
    }
    rd_kafka_topic_partition_list_t *times = NULL;
    if (o->kind == KLOG_RESET_TIMESTAMP) {
        times = rd_kafka_topic_partition_list_copy(want);
        for (int i = 0; i < times->cnt; i++)
            times->elems[i].offset = o->value;
        rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(a->rk, times, REMOTE_REQUEST_MS);
        if (e)
            rc = rk_fail(a->ctx, "looking up --to-timestamp", e, NULL);
    }
    /* the new offset of each partition, clamped to start..end as the
     * library clamps it */
    for (int i = 0; rc == CLI_OK && i < want->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &want->elems[i];
        int64_t lo, hi, off;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(a->rk, topic, tp->partition, &lo, &hi,
                                                                 REMOTE_REQUEST_MS);
        if (e) {
            char what[300];
            snprintf(what, sizeof what, "%s/%d", topic, (int)tp->partition);
            rc = rk_fail(a->ctx, what, e, NULL);
            break;
        }
        rd_kafka_topic_partition_t *c = rd_kafka_topic_partition_list_find(cur, topic, tp->partition);
        int64_t committed = c && !c->err && c->offset >= 0 ? c->offset : -1;
        switch (o->kind) {
        case KLOG_RESET_EARLIEST: off = lo; break;
        case KLOG_RESET_LATEST: off = hi; break;
        case KLOG_RESET_TIMESTAMP: {
            rd_kafka_topic_partition_t *x = rd_kafka_topic_partition_list_find(times, topic, tp->partition);
            off = x && !x->err && x->offset >= 0 ? x->offset : hi;
            break;
        }
        case KLOG_RESET_OFFSET: off = o->value; break;
        default: off = (committed >= 0 ? committed : lo) + o->value; break;
        }
        tp->offset = off < lo ? lo : off > hi ? hi : off;
    }
    if (times)
        rd_kafka_topic_partition_list_destroy(times);
    rd_kafka_topic_partition_list_destroy(cur);
    if (rc != CLI_OK) {
        rd_kafka_topic_partition_list_destroy(want);
        return rc;
    }
    if (!o->execute) {
        if (!*header)
            groups_print_reset_header();
        *header = true;
        for (int i = 0; i < want->cnt; i++)
            groups_print_reset(o->group, topic, want->elems[i].partition, want->elems[i].offset);
        rd_kafka_topic_partition_list_destroy(want);
        return CLI_OK;
    }
    rd_kafka_AlterConsumerGroupOffsets_t *al = rd_kafka_AlterConsumerGroupOffsets_new(o->group, want);
    rd_kafka_AdminOptions_t *opt = rk_admin_options(a->rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
    rd_kafka_AlterConsumerGroupOffsets(a->rk, &al, 1, opt, a->q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_AlterConsumerGroupOffsets_destroy(al);
    rd_kafka_event_t *ev = rk_admin_wait(a->ctx, a->q, o->group);
    if (!ev) {
        rd_kafka_topic_partition_list_destroy(want);
        return CLI_FAIL;
    }
    size_t n = 0;
    const rd_kafka_group_result_t **gr =
        rd_kafka_AlterConsumerGroupOffsets_result_groups(rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
    const rd_kafka_error_t *e = n ? rd_kafka_group_result_error(gr[0]) : NULL;
    const rd_kafka_topic_partition_list_t *done = n ? rd_kafka_group_result_partitions(gr[0]) : NULL;
    if (n < 1) {
        rc = cli_err(a->ctx, "%s: no answer", o->group);
    } else if (e) {
        rc = rk_fail(a->ctx, o->group, rd_kafka_error_code(e), rd_kafka_error_string(e));
    } else {
        for (int i = 0; done && i < done->cnt; i++)
            if (done->elems[i].err) {
                rd_kafka_resp_err_t pe = done->elems[i].err;
                rc = rk_fail(a->ctx, o->group, pe,
                             pe == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || pe == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS
                                 ? "the group has active members: stop its consumers first" : NULL);
                break;
            }
    }
    if (rc == CLI_OK) {
        if (!*header)
            groups_print_reset_header();
        *header = true;
        for (int i = 0; i < want->cnt; i++)
            groups_print_reset(o->group, topic, want->elems[i].partition, want->elems[i].offset);
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_topic_partition_list_destroy(want);
    return rc;
}

static int groups_reset(admin *a, const remote_groups_opts *o)
{
    int rc = group_inactive(a, o->group);
    if (rc != CLI_OK)
        return rc;
    const struct rd_kafka_metadata *md = NULL;
    if ((rc = rk_metadata(a->ctx, a->r, a->rk, &md)) != CLI_OK)
        return rc;
    /* the partitions: those of o->topic (or o->partition), or (--all-topics)
     * those with a committed offset, by topic then partition */
    rd_kafka_topic_partition_list_t *all = NULL, *offs = NULL;
    int32_t *parts = NULL;
    int n = 0;
    if (o->topic) {
        int np = topic_partitions(a, md, o->topic, o->partition);
        if (np < 0)
            rc = CLI_FAIL;
        else if (!(parts = calloc((size_t)np + 1, sizeof *parts)))
            rc = cli_err(a->ctx, "out of memory");
        for (int32_t p = o->partition >= 0 ? o->partition : 0; rc == CLI_OK && p < (o->partition >= 0 ? o->partition + 1 : np); p++)
            parts[n++] = p;
    } else if ((rc = group_offsets(a, o->group, NULL, &all)) == CLI_OK) {
        offs = rd_kafka_topic_partition_list_new(all->cnt > 0 ? all->cnt : 1);
        for (int i = 0; i < all->cnt; i++)
            if (!all->elems[i].err && all->elems[i].offset >= 0)
                rd_kafka_topic_partition_list_add(offs, all->elems[i].topic, all->elems[i].partition);
        rd_kafka_topic_partition_list_sort(offs, cmp_tp, NULL);
        n = offs->cnt;
        if (n == 0)
            rc = cli_err(a->ctx, "%s: the group has no committed offsets (--all-topics resets those)", o->group);
    }
    if (rc == CLI_OK && !o->execute)
        fprintf(stderr, "klog: %s: dry run: nothing changed (add --execute to reset the offsets)\n", a->ctx);
    bool header = false;
    if (rc == CLI_OK && o->topic) {
        rc = reset_topic(a, o, o->topic, parts, n, &header);
    } else if (rc == CLI_OK) {
        int32_t *ps = calloc((size_t)n, sizeof *ps);
        if (!ps)
            rc = cli_err(a->ctx, "out of memory");
        for (int i = 0; rc == CLI_OK && i < n;) {
            const char *t = offs->elems[i].topic;
            int m = 0;
            for (; i < n && !strcmp(offs->elems[i].topic, t); i++)
                ps[m++] = offs->elems[i].partition;
            rc = reset_topic(a, o, t, ps, m, &header);
        }
        free(ps);
    }
    if (offs)
        rd_kafka_topic_partition_list_destroy(offs);
    if (all)
        rd_kafka_topic_partition_list_destroy(all);
    free(parts);
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int groups_delete(admin *a, const remote_groups_opts *o)
{
    rd_kafka_DeleteGroup_t *dg = rd_kafka_DeleteGroup_new(o->group);
    rd_kafka_AdminOptions_t *opt = rk_admin_options(a->rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS);
    rd_kafka_DeleteGroups(a->rk, &dg, 1, opt, a->q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_DeleteGroup_destroy(dg);
    rd_kafka_event_t *ev = rk_admin_wait(a->ctx, a->q, o->group);
    if (!ev)
        return CLI_FAIL;
    size_t n = 0;
    const rd_kafka_group_result_t **gr = rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
    const rd_kafka_error_t *e = n ? rd_kafka_group_result_error(gr[0]) : NULL;
    int rc = CLI_OK;
    if (n < 1) {
        rc = cli_err(a->ctx, "%s: no answer", o->group);
    } else if (e) {
        rd_kafka_resp_err_t c = rd_kafka_error_code(e);
        rc = rk_fail(a->ctx, o->group, c,
                     c == RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP     ? "the group has active members: stop its consumers first"
                     : c == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND ? "no such group"
                                                                 : rd_kafka_error_string(e));
    } else {
        printf("Deleted group %s.\n", o->group);
    }
    rd_kafka_event_destroy(ev);
    return rc;
}

int remote_groups(const cli_remote *r, const remote_groups_opts *o)
{
    admin a;
    int rc = admin_open(&a, o->ctx, r);
    if (rc != CLI_OK) {
        admin_close(&a);
        return rc;
    }
    if (!strcmp(o->action, "list")) {
        rd_kafka_AdminOptions_t *opt = rk_admin_options(a.rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
        rd_kafka_ListConsumerGroups(a.rk, opt, a.q);
        rd_kafka_AdminOptions_destroy(opt);
        rd_kafka_event_t *ev = rk_admin_wait(a.ctx, a.q, "listing groups");
        if (!ev) {
            rc = CLI_FAIL;
        } else {
            const rd_kafka_ListConsumerGroups_result_t *res = rd_kafka_event_ListConsumerGroups_result(ev);
            size_t n = 0, ne = 0;
            const rd_kafka_ConsumerGroupListing_t **gl = rd_kafka_ListConsumerGroups_result_valid(res, &n);
            const rd_kafka_error_t **errs = rd_kafka_ListConsumerGroups_result_errors(res, &ne);
            const char **names = calloc(n + 1, sizeof *names);
            if (!names) {
                rc = cli_err(a.ctx, "out of memory");
            } else {
                for (size_t i = 0; i < n; i++)
                    names[i] = rd_kafka_ConsumerGroupListing_group_id(gl[i]);
                qsort(names, n, sizeof *names, cmp_str);
                for (size_t i = 0; i < n; i++)
                    printf("%s\n", names[i]);
                free(names);
            }
            for (size_t i = 0; i < ne; i++)
                rc = rk_fail(a.ctx, "listing groups", rd_kafka_error_code(errs[i]), rd_kafka_error_string(errs[i]));
            rd_kafka_event_destroy(ev);
        }
    } else if (!strcmp(o->action, "describe")) {
        rc = groups_describe(&a, o);
    } else if (!strcmp(o->action, "reset")) {
        rc = groups_reset(&a, o);
    } else {
        rc = groups_delete(&a, o);
    }
    admin_close(&a);
    return rc;
}

/* ---- delete-records ----------------------------------------------------------------- */

int remote_delete_records(const cli_remote *r, const char *topic, int32_t partition, int64_t offset)
{
    admin a;
    const char *ctx = "delete-records";
    int rc = admin_open(&a, ctx, r);
    const struct rd_kafka_metadata *md = NULL;
    int np = -1;
    if (rc == CLI_OK && (rc = rk_metadata(ctx, r, a.rk, &md)) == CLI_OK) {
        np = topic_partitions(&a, md, topic, partition);
        rd_kafka_metadata_destroy(md);
        if (np < 0)
            rc = CLI_FAIL;
    }
    if (rc != CLI_OK) {
        admin_close(&a);
        return rc;
    }
    int32_t from = partition >= 0 ? partition : 0, to = partition >= 0 ? partition + 1 : np;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(to - from);
    for (int32_t p = from; p < to; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = offset < 0 ? RD_KAFKA_OFFSET_END : offset;
    rd_kafka_DeleteRecords_t *dr = rd_kafka_DeleteRecords_new(l);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_AdminOptions_t *opt = rk_admin_options(a.rk, RD_KAFKA_ADMIN_OP_DELETERECORDS);
    rd_kafka_DeleteRecords(a.rk, &dr, 1, opt, a.q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_DeleteRecords_destroy(dr);
    rd_kafka_event_t *ev = rk_admin_wait(ctx, a.q, topic);
    if (!ev) {
        admin_close(&a);
        return CLI_FAIL;
    }
    const rd_kafka_topic_partition_list_t *res =
        rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
    for (int i = 0; res && i < res->cnt && rc == CLI_OK; i++) {
        const rd_kafka_topic_partition_t *tp = &res->elems[i];
        if (tp->err) {
            char what[300];
            snprintf(what, sizeof what, "%s/%d", tp->topic, (int)tp->partition);
            rc = rk_fail(ctx, what, tp->err,
                         tp->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ? "the offset is past the partition's end"
                                                                          : NULL);
        } else {
            delete_records_print(tp->topic, tp->partition, tp->offset);
        }
    }
    if (!res)
        rc = cli_err(ctx, "%s: no answer", topic);
    rd_kafka_event_destroy(ev);
    admin_close(&a);
    return rc;
}
