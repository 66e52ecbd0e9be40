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
    "  reset GROUP --topic T [--partition P] --to-earliest|--to-latest|\n"
    "        --to-timestamp MS|--to-offset N|--shift-by N\n"
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
    "Usage: klog [-d DIR] groups reset GROUP --topic T [--partition P] WHERE\n"
    "\n"
    "Reset a group's committed offsets for every partition of topic T (or only\n"
    "partition P), then print the new offsets.  The group must have no active\n"
    "member (stop its consumers first).  WHERE is exactly one of:\n"
    "\n"
    "  --to-earliest          the partition's start\n"
    "  --to-latest            the partition's end\n"
    "  --to-timestamp MS      the first record with timestamp >= MS\n"
    "  --to-offset N          offset N (clamped to the partition's range)\n"
    "  --shift-by N           the committed offset plus N (may be negative; clamped)\n"
    "\n"
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

enum { O_FORMAT = 256, O_TOPIC, O_PARTITION, O_EARLIEST, O_LATEST, O_TS, O_OFFSET, O_SHIFT, O_GROUP };

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
    for (size_t i = 0; i < gi->offset_count; i++) {
        const klog_group_offset *o = gi->offsets[i];
        const klog_group_member *m = owner(gi, o->topic, o->partition);
        groups_print_offset(group, o->topic, o->partition, o->committed, o->end, o->lag, m ? m->member_id : NULL,
                            m ? m->client_id : NULL);
    }
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
    bool json = false;
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
        if (!topic)
            return cli_usage(ctx, ctx, "no topic given: --topic T");
        if (nkinds != 1)
            return cli_usage(ctx, ctx, "give exactly one of --to-earliest, --to-latest, --to-timestamp, "
                                       "--to-offset and --shift-by");
    } else if (topic || nkinds || partition >= 0) {
        return cli_usage(ctx, ctx, "--topic, --partition and --to-* apply to reset only");
    }
    if (json && !desc)
        return cli_usage(ctx, ctx, "--format applies to describe only");
    klog *k = NULL;
    cli_remote *rem = NULL;
    int rc = cli_target(ctx, ctx, dir, false, NULL, &k, &rem);
    if (rc != CLI_OK)
        return rc;
    if (rem) {
        remote_groups_opts ro = { .ctx = ctx, .action = action, .group = group, .topic = topic, .json = json,
                                  .partition = partition, .kind = kind, .value = value };
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
        r = klog_group_reset_offsets(k, group, topic, partition, kind, value);
        if (r < 0) {
            rc = cli_fail(ctx, group, r,
                          r == KLOG_ESTATE ? "the group has active members: stop its consumers first" :
                          r == KLOG_EUNKNOWN_TOPIC ? "no such topic" :
                          r == KLOG_EUNKNOWN_PARTITION ? "no such partition" : NULL);
        } else {
            int np = klog_topic_describe(k, topic, NULL, 0, NULL, 0);
            groups_print_reset_header();
            for (int32_t p = partition >= 0 ? partition : 0; p < (partition >= 0 ? partition + 1 : np); p++) {
                int64_t off = -1;
                klog_group_committed(k, group, topic, p, &off);
                groups_print_reset(group, topic, p, off);
            }
        }
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
