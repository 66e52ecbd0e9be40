/*
 * tools/cmd_groups.c - `klog groups list|describe|reset|delete`,
 * kafka-consumer-groups.sh for a klog data directory.  Public API only.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

static const char groups_help[] =
    "Usage: klog [-d DIR] groups ACTION [OPTIONS]\n"
    "\n"
    "Actions:\n"
    "  list\n"
    "  describe GROUP [--format text|json]\n"
    "  reset GROUP --topic T|--all-topics [--partition P] --to-earliest|\n"
    "        --to-latest|--to-datetime ISO8601|--to-timestamp MS|--to-offset N|\n"
    "        --shift-by N [--dry-run|--execute]\n"
    "  delete GROUP\n"
    "\n"
    "'klog groups ACTION --help' describes each action.  These commands open DIR\n"
    "as its writer.  While 'klog serve' holds DIR (or with --bootstrap-server\n"
    "HOST:PORT), they ask the server over the Kafka protocol (remote mode); while\n"
    "another process holds it, they exit 3.\n";

static const char list_help[] =
    "Usage: klog [-d DIR] groups list\n"
    "\n"
    "Print the consumer groups that have members or committed offsets, sorted.\n"
    "\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n";

static const char describe_help[] =
    "Usage: klog [-d DIR] groups describe GROUP [--format text|json]\n"
    "\n"
    "Print a group's state, generation and protocol; per partition its committed\n"
    "offset, the log end offset, the lag and the member that owns it; and its\n"
    "members with their assignments.  json prints klog_group_describe's document.\n"
    "\n"
    "  --format text|json     output format (default text)\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n";

static const char reset_help[] =
    "Usage: klog [-d DIR] groups reset GROUP --topic T|--all-topics [--partition P]\n"
    "                                  WHERE [--dry-run|--execute]\n"
    "\n"
    "Plan, or make, a reset of a group's committed offsets for every partition of\n"
    "topic T (or only partition P), or of every partition the group has\n"
    "committed offsets for (--all-topics), and print the new offsets: GROUP, TOPIC,\n"
    "PARTITION, NEW-OFFSET.  As Kafka's kafka-consumer-groups, the default is a\n"
    "dry run that changes nothing; --execute makes the reset.  The group must\n"
    "have no active member (stop its consumers first).  WHERE is exactly one of:\n"
    "\n"
    "  --to-earliest          the partition's start\n"
    "  --to-latest            the partition's end\n"
    "  --to-datetime TIME     the first record with timestamp >= TIME, Kafka's\n"
    "                         YYYY-MM-DDTHH:mm:SS[.sss][Z|+HH:MM|-HH:MM] (local\n"
    "                         time without a zone)\n"
    "  --to-timestamp MS      the first record with timestamp >= MS (ms since the\n"
    "                         epoch)\n"
    "  --to-offset N          offset N (clamped to the partition's range)\n"
    "  --shift-by N           the committed offset plus N (may be negative; clamped)\n"
    "\n"
    "  --dry-run              print the plan only (the default)\n"
    "  --execute              reset the offsets, then print them\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n";

static const char delete_help[] =
    "Usage: klog [-d DIR] groups delete GROUP\n"
    "\n"
    "Delete a group's committed offsets.  The group must have no active member.\n"
    "\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n";

enum {
    O_FORMAT = 256, O_TOPIC, O_PARTITION, O_EARLIEST, O_LATEST, O_TS, O_OFFSET, O_SHIFT, O_GROUP, O_DATETIME,
    O_DRY_RUN, O_EXECUTE, O_ALL_TOPICS,
};

static const struct option group_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "format", required_argument, NULL, O_FORMAT },
    { "topic", required_argument, NULL, O_TOPIC },
    { "partition", required_argument, NULL, O_PARTITION },
    { "to-earliest", no_argument, NULL, O_EARLIEST },
    { "to-latest", no_argument, NULL, O_LATEST },
    { "to-timestamp", required_argument, NULL, O_TS },
    { "to-offset", required_argument, NULL, O_OFFSET },
    { "shift-by", required_argument, NULL, O_SHIFT },
    { "group", required_argument, NULL, O_GROUP },
    { "to-datetime", required_argument, NULL, O_DATETIME },
    { "dry-run", no_argument, NULL, O_DRY_RUN },
    { "execute", no_argument, NULL, O_EXECUTE },
    { "all-topics", no_argument, NULL, O_ALL_TOPICS },
    CLI_REMOTE_OPTIONS,
    { NULL, 0, NULL, 0 },
};

/* The member owning topic/partition, or NULL. */
static const klog_group_member *owner(const klog_group_info *gi, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < gi->member_count; i++) {
        const klog_partition_list *as = gi->members[i]->assignment;
        for (size_t j = 0; j < klog_partition_list_count(as); j++) {
            const char *t;
            int32_t p;
            if (klog_partition_list_get(as, j, &t, &p, NULL, NULL, NULL) == 0 && !strcmp(t, topic) &&
                p == partition)
                return gi->members[i];
        }
    }
    return NULL;
}

/* ---- text output, shared with remote mode (remote.h) ---------------------------------- */

void groups_print_group(const char *group, const char *state, int32_t generation, const char *protocol,
                        size_t members)
{
    char gen[16] = "-";
    if (generation >= 0)
        snprintf(gen, sizeof gen, "%d", (int)generation);
    printf("Group: %s\tState: %s\tGeneration: %s\tProtocol: %s\tMembers: %zu\n", group, state, gen, protocol,
           members);
}

void groups_print_offsets_header(void)
{
    printf("\n%-20s %-24s %9s %15s %15s %10s  %-36s %s\n", "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET",
           "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "CLIENT-ID");
}

void groups_print_offset(const char *group, const char *topic, int32_t partition, int64_t committed,
                         int64_t end, int64_t lag, const char *member_id, const char *client_id)
{
    char cur[32] = "-", e[32] = "-", l[32] = "-";
    if (committed >= 0)
        snprintf(cur, sizeof cur, "%" PRId64, committed);
    if (end >= 0) {
        snprintf(e, sizeof e, "%" PRId64, end);
        snprintf(l, sizeof l, "%" PRId64, lag);
    }
    printf("%-20s %-24s %9d %15s %15s %10s  %-36s %s\n", group, topic, (int)partition, cur, e, l,
           member_id && *member_id ? member_id : "-", client_id && *client_id ? client_id : "-");
}

void groups_print_members_header(void)
{
    printf("\n%-36s %-20s %-20s %s\n", "MEMBER-ID", "CLIENT-ID", "INSTANCE-ID", "ASSIGNMENT");
}

void groups_print_member(const char *member_id, const char *client_id, const char *instance_id,
                         const char *assignment)
{
    printf("%-36s %-20s %-20s %s\n", member_id, client_id && *client_id ? client_id : "-",
           instance_id && *instance_id ? instance_id : "-", assignment && *assignment ? assignment : "-");
}

void groups_print_reset_header(void)
{
    printf("%-20s %-24s %9s %15s\n", "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET");
}

void groups_print_reset(const char *group, const char *topic, int32_t partition, int64_t offset)
{
    printf("%-20s %-24s %9d %15" PRId64 "\n", group, topic, (int)partition, offset);
}

static int describe_json(const char *ctx, klog *k, const char *group)
{
    char *doc = NULL;
    int r = klog_group_describe(k, group, &doc);
    if (r < 0)
        return cli_fail(ctx, group, r, r == KLOG_EUNKNOWN_GROUP ? "no such group" : NULL);
    printf("%s\n", doc);
    klog_free(doc);
    return CLI_OK;
}

static int cmp_offset(const void *x, const void *y)
{
    const klog_group_offset *a = *(const klog_group_offset *const *)x, *b = *(const klog_group_offset *const *)y;
    int c = strcmp(a->topic, b->topic);
    return c ? c : (a->partition > b->partition) - (a->partition < b->partition);
}

static int describe(const char *ctx, klog *k, const char *group, bool json)
{
    if (json)
        return describe_json(ctx, k, group);
    klog_group_info *gi = NULL;
    int r = klog_group_info_get(k, group, &gi);
    if (r < 0)
        return cli_fail(ctx, group, r, r == KLOG_EUNKNOWN_GROUP ? "no such group" : NULL);
    groups_print_group(group, gi->state, gi->generation, *gi->protocol ? gi->protocol : "-", gi->member_count);
    groups_print_offsets_header();
    /* rows by topic, then partition (as remote mode and Kafka's tool) */
    const klog_group_offset **sorted = calloc(gi->offset_count + 1, sizeof *sorted);
    if (!sorted) {
        klog_group_info_free(gi);
        return cli_err(ctx, "out of memory");
    }
    for (size_t i = 0; i < gi->offset_count; i++)
        sorted[i] = gi->offsets[i];
    qsort(sorted, gi->offset_count, sizeof *sorted, cmp_offset);
    for (size_t i = 0; i < gi->offset_count; i++) {
        const klog_group_offset *o = sorted[i];
        const klog_group_member *m = owner(gi, o->topic, o->partition);
        groups_print_offset(group, o->topic, o->partition, o->committed, o->end, o->lag, m ? m->member_id : NULL,
                            m ? m->client_id : NULL);
    }
    free(sorted);
    if (gi->member_count) {
        groups_print_members_header();
        for (size_t i = 0; i < gi->member_count; i++) {
            const klog_group_member *m = gi->members[i];
            char assignment[4096] = "";
            size_t n = klog_partition_list_count(m->assignment), used = 0;
            for (size_t j = 0; j < n && used < sizeof assignment; j++) {
                const char *t;
                int32_t p;
                klog_partition_list_get(m->assignment, j, &t, &p, NULL, NULL, NULL);
                int w = snprintf(assignment + used, sizeof assignment - used, "%s%s-%d", j ? "," : "", t, (int)p);
                if (w > 0)
                    used += (size_t)w;
            }
            groups_print_member(m->member_id, m->client_id, m->instance_id, assignment);
        }
    }
    klog_group_info_free(gi);
    return CLI_OK;
}

/* A partition to reset. */
typedef struct target {
    char *topic;
    int32_t partition;
} target;

static int cmp_target(const void *x, const void *y)
{
    const target *a = x, *b = y;
    int c = strcmp(a->topic, b->topic);
    return c ? c : (a->partition > b->partition) - (a->partition < b->partition);
}

static void free_targets(target *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        free(t[i].topic);
    free(t);
}

/* --all-topics: the partitions the group has committed offsets for, by
 * topic then partition (Kafka's: what the group committed).  *n 0 for a
 * group that has none. */
static int group_targets(const char *ctx, klog *k, const char *group, target **out, size_t *n)
{
    klog_group_info *gi = NULL;
    *out = NULL;
    *n = 0;
    int r = klog_group_info_get(k, group, &gi);
    if (r == KLOG_EUNKNOWN_GROUP)
        return CLI_OK;
    if (r < 0)
        return cli_fail(ctx, group, r, NULL);
    target *t = calloc(gi->offset_count + 1, sizeof *t);
    size_t nt = 0;
    for (size_t i = 0; t && i < gi->offset_count; i++) {
        t[nt].partition = gi->offsets[i]->partition;
        if (!(t[nt++].topic = strdup(gi->offsets[i]->topic))) {
            free_targets(t, nt - 1);
            t = NULL;
        }
    }
    klog_group_info_free(gi);
    if (!t)
        return cli_err(ctx, "out of memory");
    qsort(t, nt, sizeof *t, cmp_target);
    *out = t;
    *n = nt;
    return CLI_OK;
}

/*
 * The new offset of each partition from..to-1 of topic, computed as
 * klog_group_reset_offsets computes it (clamped to start..end), changing
 * nothing: the dry run.  offs[p - from].
 */
static int reset_plan(const char *ctx, klog *k, const char *group, const char *topic, int32_t from, int32_t to,
                      int kind, int64_t value, int64_t *offs)
{
    int np = to;
    klog_partition_info *pi = calloc((size_t)np, sizeof *pi);
    if (!pi)
        return cli_err(ctx, "out of memory");
    pi[0].struct_size = sizeof *pi;
    int r = klog_topic_describe(k, topic, pi, (size_t)np, NULL, 0);
    klog_consumer *c = NULL;
    char err[256] = "";
    if (r >= 0 && kind == KLOG_RESET_TIMESTAMP)
        r = klog_consumer_new(k, NULL, &c, err, sizeof err);
    for (int32_t p = from; r >= 0 && p < to; p++) {
        int64_t start = pi[p].start_offset, end = pi[p].end_offset, off = start, committed = KLOG_OFFSET_NONE;
        switch (kind) {
        case KLOG_RESET_EARLIEST: off = start; break;
        case KLOG_RESET_LATEST: off = end; break;
        case KLOG_RESET_TIMESTAMP:
            if ((r = klog_consumer_assign(c, topic, p, KLOG_OFFSET_BEGINNING)) >= 0 &&
                (r = klog_consumer_seek_time(c, topic, p, value)) >= 0)
                r = klog_consumer_position(c, topic, p, &off);
            break;
        case KLOG_RESET_OFFSET: off = value; break;
        default:
            r = klog_group_committed(k, group, topic, p, &committed);
            off = (committed >= 0 ? committed : start) + value;
            break;
        }
        offs[p - from] = off < start ? start : off > end ? end : off;
    }
    klog_consumer_close(c);
    free(pi);
    if (r < 0)
        return cli_fail(ctx, topic, r, *err ? err : NULL);
    return CLI_OK;
}

/* groups reset: the plan (dry run) or the reset, for every partition of
 * topic (or only `partition`), or (topic NULL) every partition the group
 * has committed offsets for. */
static int reset_offsets(const char *ctx, klog *k, const char *group, const char *topic, int32_t partition,
                         int kind, int64_t value, bool execute)
{
    target *tg = NULL;
    size_t ntg = 0;
    int rc = CLI_OK;
    if (topic) {
        int np = klog_topic_describe(k, topic, NULL, 0, NULL, 0);
        if (np < 0)
            return cli_fail(ctx, topic, np, np == KLOG_EUNKNOWN_TOPIC ? "no such topic" :
                                            np == KLOG_EBADNAME ? "invalid topic name" : NULL);
        if (partition >= np)
            return cli_err(ctx, "%s: no partition %d (the topic has %d)", topic, (int)partition, np);
        int32_t from = partition >= 0 ? partition : 0, to = partition >= 0 ? partition + 1 : np;
        if (!(tg = calloc((size_t)(to - from), sizeof *tg)))
            return cli_err(ctx, "out of memory");
        for (int32_t p = from; p < to; p++, ntg++)
            tg[ntg] = (target){ (char *)topic, p };
    } else {
        if ((rc = group_targets(ctx, k, group, &tg, &ntg)) != CLI_OK)
            return rc;
        if (ntg == 0) {
            free(tg);
            return cli_err(ctx, "%s: the group has no committed offsets (--all-topics resets those)", group);
        }
    }
    /* the group must be inactive, for a plan too (Kafka's rule) */
    klog_group_info *gi = NULL;
    int r = klog_group_info_get(k, group, &gi);
    if (r == 0 && gi->member_count > 0)
        rc = cli_err(ctx, "%s: the group has active members: stop its consumers first", group);
    else if (r < 0 && r != KLOG_EUNKNOWN_GROUP)
        rc = cli_fail(ctx, group, r, r == KLOG_EBADNAME ? "invalid group name" : NULL);
    klog_group_info_free(gi);
    /* the topics of --all-topics still exist */
    for (size_t i = 0; rc == CLI_OK && !topic && i < ntg; i++) {
        int np = klog_topic_describe(k, tg[i].topic, NULL, 0, NULL, 0);
        if (np < 0)
            rc = cli_fail(ctx, tg[i].topic, np, np == KLOG_EUNKNOWN_TOPIC ? "no such topic" : NULL);
        else if (tg[i].partition >= np)
            rc = cli_err(ctx, "%s: no partition %d (the topic has %d)", tg[i].topic, (int)tg[i].partition, np);
    }
    int64_t *offs = rc == CLI_OK ? calloc(ntg, sizeof *offs) : NULL;
    if (rc == CLI_OK && !offs)
        rc = cli_err(ctx, "out of memory");
    if (rc == CLI_OK && !execute) {
        /* the whole plan first: an error prints no half of it */
        for (size_t i = 0; rc == CLI_OK && i < ntg; i++)
            rc = reset_plan(ctx, k, group, tg[i].topic, tg[i].partition, tg[i].partition + 1, kind, value, &offs[i]);
        if (rc == CLI_OK)
            fprintf(stderr, "klog: %s: dry run: nothing changed (add --execute to reset the offsets)\n", ctx);
    } else if (rc == CLI_OK) {
        /* one call for a whole topic (--topic), else one per partition */
        for (size_t i = 0; rc == CLI_OK && i < ntg; i++) {
            if (topic && i > 0)
                break;
            r = klog_group_reset_offsets(k, group, tg[i].topic, topic ? partition : tg[i].partition, kind, value);
            if (r < 0)
                rc = cli_fail(ctx, r == KLOG_ESTATE || r == KLOG_EBADNAME ? group : tg[i].topic, r,
                              r == KLOG_ESTATE ? "the group has active members: stop its consumers first" :
                              r == KLOG_EUNKNOWN_TOPIC ? "no such topic" :
                              r == KLOG_EUNKNOWN_PARTITION ? "no such partition" : NULL);
        }
        for (size_t i = 0; rc == CLI_OK && i < ntg; i++) {
            offs[i] = -1;
            klog_group_committed(k, group, tg[i].topic, tg[i].partition, &offs[i]);
        }
    }
    if (rc == CLI_OK) {
        groups_print_reset_header();
        for (size_t i = 0; i < ntg; i++)
            groups_print_reset(group, tg[i].topic, tg[i].partition, offs[i]);
    }
    free(offs);
    if (topic)
        free(tg);
    else
        free_targets(tg, ntg);
    return rc;
}

int cmd_groups(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(groups_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *action = argv[1], *help;
    char ctx[64];
    snprintf(ctx, sizeof ctx, "groups %s", action);
    if (!strcmp(action, "list"))
        help = list_help;
    else if (!strcmp(action, "describe"))
        help = describe_help;
    else if (!strcmp(action, "reset"))
        help = reset_help;
    else if (!strcmp(action, "delete"))
        help = delete_help;
    else
        return cli_usage("groups", "groups", "unknown action '%s'", action);
    argc--, argv++;

    const char *dir = NULL, *group = NULL, *topic = NULL;
    bool json = false, dry_run = false, execute = false, all_topics = false;
    int32_t partition = -1;
    int kind = 0, nkinds = 0, c;
    int64_t value = 0;
    optind = 0;
    while ((c = cli_getopt(argc, argv, "d:h", group_opts, ctx, ctx)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h': fputs(help, stdout); return CLI_OK;
        case O_FORMAT:
            if (strcmp(optarg, "text") && strcmp(optarg, "json"))
                return cli_usage(ctx, ctx, "--format must be text or json, not '%s'", optarg);
            json = !strcmp(optarg, "json");
            break;
        case O_TOPIC: topic = optarg; break;
        case O_GROUP: group = optarg; break;
        case O_BOOTSTRAP:
        case O_CMDCONFIG: cli_remote_option(c, optarg); break;
        case O_PARTITION: {
            int v;
            if (!cli_int(optarg, 0, INT32_MAX, &v))
                return cli_usage(ctx, ctx, "--partition: '%s' is not a partition number", optarg);
            partition = v;
            break;
        }
        case O_DRY_RUN: dry_run = true; break;
        case O_EXECUTE: execute = true; break;
        case O_ALL_TOPICS: all_topics = true; break;
        case O_DATETIME:
            kind = KLOG_RESET_TIMESTAMP, nkinds++;
            if (!cli_datetime_ms(optarg, &value))
                return cli_usage(ctx, ctx, "--to-datetime: '%s' is not a time as YYYY-MM-DDTHH:mm:SS.sss "
                                           "(optionally followed by Z or +HH:MM)", optarg);
            break;
        case O_EARLIEST: kind = KLOG_RESET_EARLIEST, nkinds++; break;
        case O_LATEST: kind = KLOG_RESET_LATEST, nkinds++; break;
        case O_TS:
        case O_OFFSET:
        case O_SHIFT:
            kind = c == O_TS ? KLOG_RESET_TIMESTAMP : c == O_OFFSET ? KLOG_RESET_OFFSET : KLOG_RESET_SHIFT;
            nkinds++;
            if (!cli_i64(optarg, &value) || (c == O_OFFSET && value < 0))
                return cli_usage(ctx, ctx, "'%s' is not a valid %s", optarg,
                                 c == O_TS ? "timestamp (ms)" : c == O_OFFSET ? "offset" : "shift");
            break;
        default: return CLI_USAGE;
        }
    }
    bool list = !strcmp(action, "list"), desc = !strcmp(action, "describe"), reset = !strcmp(action, "reset");
    if (optind < argc) {
        if (list || group || optind + 1 < argc)
            return cli_usage(ctx, ctx, "unexpected argument '%s'", argv[list || group ? optind : optind + 1]);
        group = argv[optind];
    }
    if (!list && !group)
        return cli_usage(ctx, ctx, "no group given");
    if (reset) {
        if (!topic && !all_topics)
            return cli_usage(ctx, ctx, "no topic given: --topic T or --all-topics");
        if (topic && all_topics)
            return cli_usage(ctx, ctx, "give --topic T or --all-topics, not both");
        if (all_topics && partition >= 0)
            return cli_usage(ctx, ctx, "--partition needs --topic, not --all-topics");
        if (nkinds != 1)
            return cli_usage(ctx, ctx, "give exactly one of --to-earliest, --to-latest, --to-datetime, "
                                       "--to-timestamp, --to-offset and --shift-by");
        if (dry_run && execute)
            return cli_usage(ctx, ctx, "give --dry-run or --execute, not both");
    } else if (topic || nkinds || partition >= 0 || dry_run || execute || all_topics) {
        return cli_usage(ctx, ctx, "--topic, --all-topics, --partition, --to-*, --dry-run and --execute "
                                   "apply to reset only");
    }
    if (json && !desc)
        return cli_usage(ctx, ctx, "--format applies to describe only");
    klog *k = NULL;
    cli_remote *rem = NULL;
    cli_target_read_only = list || desc;
    int rc = cli_target(ctx, ctx, dir, false, NULL, &k, &rem);
    if (rc != CLI_OK)
        return rc;
    if (rem) {
        remote_groups_opts ro = { .ctx = ctx, .action = action, .group = group, .topic = topic, .json = json,
                                  .partition = partition, .kind = kind, .value = value, .execute = execute,
                                  .all_topics = all_topics };
        rc = remote_groups(rem, &ro);
        cli_remote_free(rem);
        return rc;
    }
    int r;
    if (list) {
        char **names = NULL;
        size_t n = 0;
        if ((r = klog_group_list(k, &names, &n)) < 0) {
            rc = cli_fail(ctx, NULL, r, NULL);
        } else {
            for (size_t i = 0; i < n; i++)
                printf("%s\n", names[i]);
            klog_group_list_free(names, n);
        }
    } else if (desc) {
        rc = describe(ctx, k, group, json);
    } else if (reset) {
        rc = reset_offsets(ctx, k, group, topic, partition, kind, value, execute);
    } else {
        r = klog_group_delete(k, group);
        if (r < 0)
            rc = cli_fail(ctx, group, r,
                          r == KLOG_ESTATE ? "the group has active members: stop its consumers first" :
                          r == KLOG_EUNKNOWN_GROUP ? "no such group" : NULL);
        else
            printf("Deleted group %s.\n", group);
    }
    int cr = klog_close(k);
    if (cr < 0 && rc == CLI_OK)
        rc = cli_fail(ctx, "closing the data directory", cr, NULL);
    return rc;
}
