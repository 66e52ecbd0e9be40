/*
 * tools/cmd_topics.c - `klog topics create|list|describe|delete|alter`,
 * kafka-topics.sh (and kafka-configs.sh --alter for topics) for a klog data
 * directory.  Public API only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

static const char topics_help[] =
    "Usage: klog [-d DIR] topics ACTION [OPTIONS]\n"
    "\n"
    "Actions:\n"
    "  create TOPIC [--partitions N] [--replication-factor R] [--config KEY=VALUE]...\n"
    "         [--if-not-exists]\n"
    "  list [--exclude-internal]\n"
    "  describe [TOPIC...] [--exclude-internal]\n"
    "  describe-configs [TOPIC...] [--exclude-internal]\n"
    "  delete TOPIC... [--if-exists]\n"
    "  alter TOPIC [--partitions N] [--config KEY=VALUE]... [--delete-config KEY]...\n"
    "\n"
    "The topic may also be given as --topic TOPIC.  'klog topics ACTION --help'\n"
    "describes each action.  These commands open DIR as its writer.  While\n"
    "'klog serve' holds DIR (or with --bootstrap-server HOST:PORT), they ask the\n"
    "server over the Kafka protocol (remote mode); while another process holds\n"
    "it, they exit 3.\n";

static const char create_help[] =
    "Usage: klog [-d DIR] topics create TOPIC [OPTIONS]\n"
    "\n"
    "Create a topic (and the data directory if it does not exist yet).\n"
    "\n"
    "  --topic TOPIC          the topic (instead of the positional argument)\n"
    "  --partitions N         number of partitions (default: num.partitions, 1)\n"
    "  --replication-factor R replicas of each partition, through a replicated\n"
    "                         server (default: the smaller of 3 and its nodes)\n"
    "  --config KEY=VALUE     a topic key (repeatable): cleanup.policy, retention.ms,\n"
    "                         retention.bytes, segment.bytes, segment.ms,\n"
    "                         max.message.bytes, compression.type, flush.messages,\n"
    "                         flush.ms, delete.retention.ms, min.compaction.lag.ms,\n"
    "                         min.cleanable.dirty.ratio, index.interval.bytes\n"
    "  --if-not-exists        succeed when the topic already exists\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n";

static const char list_help[] =
    "Usage: klog [-d DIR] topics list [--exclude-internal]\n"
    "\n"
    "Print the topic names, one per line, sorted.\n"
    "\n"
    "  --exclude-internal     leave out internal topics (__consumer_offsets)\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n";

static const char describe_help[] =
    "Usage: klog [-d DIR] topics describe [TOPIC...] [OPTIONS]\n"
    "\n"
    "Describe the given topics (default: all): partition count, the keys set\n"
    "for the topic (at creation or by alter), and per partition its start,\n"
    "end and durable offsets, bytes in segments, segment count, bytes on disk,\n"
    "clean offset and error.\n"
    "\n"
    "  --topic TOPIC          a topic (repeatable)\n"
    "  --exclude-internal     leave out internal topics when describing all\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n";

static const char describe_configs_help[] =
    "Usage: klog [-d DIR] topics describe-configs [TOPIC...] [OPTIONS]\n"
    "\n"
    "Print every topic key of the given topics (default: all) with its value and\n"
    "where the value comes from, as Kafka's kafka-configs --describe --all:\n"
    "source=DYNAMIC_TOPIC_CONFIG for a key set for the topic (at creation or by\n"
    "alter), source=DEFAULT_CONFIG for a key at its default.\n"
    "\n"
    "  --topic TOPIC          a topic (repeatable)\n"
    "  --exclude-internal     leave out internal topics when describing all\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n";

static const char delete_help[] =
    "Usage: klog [-d DIR] topics delete TOPIC... [--if-exists]\n"
    "\n"
    "Delete topics and all their data.\n"
    "\n"
    "  --topic TOPIC          a topic (repeatable)\n"
    "  --if-exists            succeed when a topic does not exist\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n";

static const char alter_help[] =
    "Usage: klog [-d DIR] topics alter TOPIC [OPTIONS]\n"
    "\n"
    "Grow a topic to N partitions (a topic never shrinks), and/or change its\n"
    "configuration, as kafka-configs.sh --alter --add-config/--delete-config:\n"
    "--config sets a topic key for this topic, --delete-config makes it follow\n"
    "the instance's value again; the other keys stay as they are.  The change\n"
    "is recorded in the topic metadata before it takes effect.  Retention,\n"
    "cleanup and compaction keys apply from the next retention check or\n"
    "cleaning pass; segment.*, index.interval.bytes and flush.* at once (a\n"
    "larger segment.bytes from the next segment); max.message.bytes to\n"
    "producers that start sending to the topic afterwards.  A key that is not\n"
    "a topic key, or a bad value, exits with status 1 and changes nothing.\n"
    "\n"
    "  --topic TOPIC          the topic (instead of the positional argument)\n"
    "  --partitions N         the new total number of partitions\n"
    "  --config KEY=VALUE     set a topic key (repeatable): cleanup.policy,\n"
    "                         retention.ms, retention.bytes, segment.bytes,\n"
    "                         segment.ms, max.message.bytes, compression.type,\n"
    "                         flush.messages, flush.ms, delete.retention.ms,\n"
    "                         min.compaction.lag.ms, min.cleanable.dirty.ratio,\n"
    "                         index.interval.bytes\n"
    "  --delete-config KEY    remove the topic's own value of KEY (repeatable)\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n";

enum { O_PARTS = 256, O_RF, O_CONFIG, O_IFNX, O_IFX, O_EXCL, O_TOPIC, O_DELCONF };

static const struct option topic_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "partitions", required_argument, NULL, O_PARTS },
    { "replication-factor", required_argument, NULL, O_RF },
    { "config", required_argument, NULL, O_CONFIG },
    { "delete-config", required_argument, NULL, O_DELCONF },
    { "if-not-exists", no_argument, NULL, O_IFNX },
    { "if-exists", no_argument, NULL, O_IFX },
    { "exclude-internal", no_argument, NULL, O_EXCL },
    { "topic", required_argument, NULL, O_TOPIC },
    CLI_REMOTE_OPTIONS,
    { NULL, 0, NULL, 0 },
};

static bool is_internal(const char *name)
{
    return strncmp(name, "__", 2) == 0;
}

void topics_print_topic(const char *name, int partitions, const char *configs)
{
    printf("Topic: %s\tPartitionCount: %d\tConfigs: %s\n", name, partitions, configs);
}

void topics_print_configs_header(const char *name)
{
    printf("All configs for topic %s are:\n", name);
}

void topics_print_config(const char *key, const char *value, const char *source)
{
    printf("  %s=%s\tsource=%s\n", key, value, source);
}

/* The topic keys, as klog/conf.h lists them (sorted). */
static const char *const topic_keys[] = {
    "cleanup.policy", "compression.type", "delete.retention.ms", "flush.messages", "flush.ms",
    "index.interval.bytes", "max.message.bytes", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
    "min.insync.replicas", "retention.bytes", "retention.ms", "segment.bytes", "segment.ms", NULL,
};

/* topics describe-configs: every topic key, set or default.  0 or a klog
 * error. */
static int describe_configs_one(klog *k, const char *name)
{
    char config[8192] = "";
    int n = klog_topic_describe(k, name, NULL, 0, config, sizeof config);
    if (n < 0)
        return n;
    klog_conf *defaults = NULL;
    if (klog_conf_new(&defaults) < 0)
        return -ENOMEM;
    topics_print_configs_header(name);
    for (int i = 0; topic_keys[i]; i++) {
        size_t kl = strlen(topic_keys[i]);
        const char *set = NULL;
        for (const char *l = config; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
            if (!strncmp(l, topic_keys[i], kl) && l[kl] == '=') {
                set = l + kl + 1;
                break;
            }
        char v[300];
        if (set) {
            snprintf(v, sizeof v, "%.*s", (int)strcspn(set, "\n"), set);
            topics_print_config(topic_keys[i], v, "DYNAMIC_TOPIC_CONFIG");
        } else if (klog_conf_get(defaults, topic_keys[i], v, sizeof v) >= 0) {
            topics_print_config(topic_keys[i], v, "DEFAULT_CONFIG");
        }
    }
    klog_conf_free(defaults);
    return 0;
}

/* Print one topic's description.  Returns 0 or a klog error. */
static int describe_one(klog *k, const char *name)
{
    int n = klog_topic_describe(k, name, NULL, 0, NULL, 0);
    if (n < 0)
        return n;
    klog_partition_info *parts = calloc((size_t)n ? (size_t)n : 1, sizeof *parts);
    char config[4096] = "";
    if (!parts)
        return -ENOMEM;
    parts[0].struct_size = sizeof *parts;
    int m = klog_topic_describe(k, name, parts, (size_t)n, config, sizeof config);
    if (m < 0) {
        free(parts);
        return m;
    }
    if (m < n)
        n = m;
    /* "k=v\n" lines to "k=v,k=v" */
    size_t cl = strlen(config);
    while (cl > 0 && config[cl - 1] == '\n')
        config[--cl] = '\0';
    for (char *p = config; *p; p++)
        if (*p == '\n')
            *p = ',';
    topics_print_topic(name, n, config);
    for (int i = 0; i < n; i++) {
        const klog_partition_info *pi = &parts[i];
        printf("\tTopic: %s\tPartition: %d\tStart: %" PRId64 "\tEnd: %" PRId64 "\tDurable: %" PRId64
               "\tSize: %" PRIu64 "\tSegments: %u\tDiskBytes: %" PRIu64 "\tCleanOffset: %" PRId64
               "\tError: %s\n",
               name, pi->partition, pi->start_offset, pi->end_offset, pi->durable_offset, pi->size_bytes,
               pi->segments, pi->disk_bytes, pi->clean_offset, pi->error ? klog_err_name(pi->error) : "none");
    }
    free(parts);
    return 0;
}

/* A key or value `topics alter` cannot apply: one line, exit 1.  The
 * library's message names the key and, for a key of another scope, the
 * scope it belongs to. */
static int conf_error(const char *ctx, const char *topic, int r, const char *err)
{
    const char *why = err && *err ? err : klog_strerror(r);
    fprintf(stderr, "klog: %s: %s: %s (see 'klog %s --help')\n", ctx, topic, why, ctx);
    return CLI_FAIL;
}

int cmd_topics(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(topics_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *action = argv[1];
    const char *help;
    char ctx[64];
    snprintf(ctx, sizeof ctx, "topics %s", action);
    if (!strcmp(action, "create"))
        help = create_help;
    else if (!strcmp(action, "list"))
        help = list_help;
    else if (!strcmp(action, "describe"))
        help = describe_help;
    else if (!strcmp(action, "describe-configs"))
        help = describe_configs_help;
    else if (!strcmp(action, "delete"))
        help = delete_help;
    else if (!strcmp(action, "alter"))
        help = alter_help;
    else
        return cli_usage("topics", "topics", "unknown action '%s'", action);

    argc--, argv++;
    const char *dir = NULL;
    int partitions = 0, rf = 0;
    bool if_not_exists = false, if_exists = false, exclude_internal = false;
    const char *topics[256], *sets[256], *unsets[256];
    int ntopics = 0, nsets = 0, nunsets = 0, rc = CLI_OK;
    klog_conf *conf = NULL;
    if (klog_conf_new(&conf) < 0)
        return cli_err(ctx, "out of memory");
    optind = 0;
    int c;
    while ((c = cli_getopt(argc, argv, "d:h", topic_opts, ctx, ctx)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h':
            fputs(help, stdout);
            klog_conf_free(conf);
            return CLI_OK;
        case O_PARTS:
            if (!cli_int(optarg, 1, 1000000, &partitions)) {
                rc = cli_usage(ctx, ctx, "--partitions: '%s' is not a positive number", optarg);
                goto out;
            }
            break;
        case O_RF:
            if (!cli_int(optarg, 1, 16, &rf)) {
                rc = cli_usage(ctx, ctx, "--replication-factor: '%s' is not a number from 1 to 16", optarg);
                goto out;
            }
            break;
        case O_CONFIG:
            if (nsets == 256) {
                rc = cli_usage(ctx, ctx, "too many --config options");
                goto out;
            }
            sets[nsets++] = optarg;
            break;
        case O_DELCONF:
            if (nunsets == 256) {
                rc = cli_usage(ctx, ctx, "too many --delete-config options");
                goto out;
            }
            unsets[nunsets++] = optarg;
            break;
        case O_IFNX: if_not_exists = true; break;
        case O_IFX: if_exists = true; break;
        case O_EXCL: exclude_internal = true; break;
        case O_BOOTSTRAP:
        case O_CMDCONFIG: cli_remote_option(c, optarg); break;
        case O_TOPIC:
            if (ntopics == 256) {
                rc = cli_usage(ctx, ctx, "too many topics");
                goto out;
            }
            topics[ntopics++] = optarg;
            break;
        default:
            rc = CLI_USAGE;
            goto out;
        }
    }
    for (; optind < argc; optind++) {
        if (ntopics == 256) {
            rc = cli_usage(ctx, ctx, "too many topics");
            goto out;
        }
        topics[ntopics++] = argv[optind];
    }

    bool create = !strcmp(action, "create"), list = !strcmp(action, "list"),
         describe = !strcmp(action, "describe") || !strcmp(action, "describe-configs"),
         configs = !strcmp(action, "describe-configs"), del = !strcmp(action, "delete"), alter = !strcmp(action, "alter");
    /* Check the request before touching the directory. */
    if (nsets && !create && !alter) {
        rc = cli_usage(ctx, ctx, "--config applies to create and alter only");
        goto out;
    }
    if (nunsets && !alter) {
        rc = cli_usage(ctx, ctx, "--delete-config applies to alter only");
        goto out;
    }
    if ((create || alter) && ntopics != 1) {
        rc = cli_usage(ctx, ctx, ntopics ? "give exactly one topic" : "no topic given");
        goto out;
    }
    if (del && ntopics == 0) {
        rc = cli_usage(ctx, ctx, "no topic given");
        goto out;
    }
    if (list && ntopics) {
        rc = cli_usage(ctx, ctx, "unexpected argument '%s'", topics[0]);
        goto out;
    }
    if (alter && partitions == 0 && nsets == 0 && nunsets == 0) {
        rc = cli_usage(ctx, ctx,
                       "nothing to alter: give --partitions N, --config KEY=VALUE or --delete-config KEY");
        goto out;
    }
    for (int i = 0; i < nsets; i++) {
        const char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i]) {
            rc = cli_usage(ctx, ctx, "--config '%s': expected KEY=VALUE", sets[i]);
            goto out;
        }
        size_t kl = (size_t)(eq - sets[i]);
        for (int j = 0; j < nunsets; j++)
            if (strlen(unsets[j]) == kl && !strncmp(unsets[j], sets[i], kl)) {
                rc = cli_usage(ctx, ctx, "%s: both set (--config) and deleted (--delete-config)", unsets[j]);
                goto out;
            }
    }
    for (int i = 0; i < nsets; i++) {
        if (create) {
            if ((rc = cli_conf_kv(ctx, conf, sets[i])) != CLI_OK)
                goto out;
            continue;
        }
        /* alter: a bad key or value is refused like the library refuses it
         * (exit 1, as for a key that is not a topic key) */
        char key[256], err[512] = "";
        size_t n = strcspn(sets[i], "=");
        snprintf(key, sizeof key, "%.*s", (int)n, sets[i]);
        int r = klog_conf_set(conf, key, sets[i] + n + 1, err, sizeof err);
        if (r < 0) {
            rc = conf_error(ctx, topics[0], r, err);
            goto out;
        }
    }
    if (!create && partitions && !alter) {
        rc = cli_usage(ctx, ctx, "--partitions applies to create and alter only");
        goto out;
    }
    if (!create && rf) {
        rc = cli_usage(ctx, ctx, "--replication-factor applies to create only");
        goto out;
    }
    klog *k = NULL;
    cli_remote *rem = NULL;
    cli_target_read_only = list || describe;
    if ((rc = cli_target(ctx, ctx, dir, create, NULL, &k, &rem)) != CLI_OK)
        goto out;
    if (rem) {
        remote_topics_opts ro = {
            .ctx = ctx, .action = action, .topics = topics, .ntopics = ntopics, .partitions = partitions,
            .replication_factor = rf,
            .sets = sets, .nsets = nsets, .unsets = unsets, .nunsets = nunsets, .if_not_exists = if_not_exists,
            .if_exists = if_exists, .exclude_internal = exclude_internal,
        };
        rc = remote_topics(rem, &ro);
        cli_remote_free(rem);
        goto out;
    }

    char err[512] = "";
    int r;
    if (create && rf > 1) {
        rc = cli_usage(ctx, ctx, "--replication-factor %d: a data directory keeps one replica (ask a replicated "
                       "server with --bootstrap-server)", rf);
        klog_close(k);
        goto out;
    }
    if (create) {
        r = klog_topic_create(k, topics[0], partitions, conf, err, sizeof err);
        if (r == -EEXIST && if_not_exists)
            r = 0;
        if (r < 0) {
            rc = cli_fail(ctx, topics[0], r,
                          r == KLOG_EBADNAME ? "invalid topic name: 1..249 characters of [a-zA-Z0-9._-], not '.' or '..'"
                          : r == -EEXIST     ? "topic already exists"
                                             : err);
            if (r == KLOG_ECONF)
                rc = CLI_USAGE; /* a key that is not a topic key: bad input */
        } else
            printf("Created topic %s.\n", topics[0]);
    } else if (list) {
        char **names = NULL;
        size_t n = 0;
        if ((r = klog_topic_list(k, &names, &n)) < 0) {
            rc = cli_fail(ctx, NULL, r, NULL);
        } else {
            for (size_t i = 0; i < n; i++)
                if (!exclude_internal || !is_internal(names[i]))
                    printf("%s\n", names[i]);
            klog_topic_list_free(names, n);
        }
    } else if (describe) {
        int (*one)(klog *, const char *) = configs ? describe_configs_one : describe_one;
        if (ntopics) {
            for (int i = 0; i < ntopics; i++)
                if ((r = one(k, topics[i])) < 0)
                    rc = cli_fail(ctx, topics[i], r, r == KLOG_EUNKNOWN_TOPIC ? "no such topic" : NULL);
        } else {
            char **names = NULL;
            size_t n = 0;
            if ((r = klog_topic_list(k, &names, &n)) < 0) {
                rc = cli_fail(ctx, NULL, r, NULL);
            } else {
                for (size_t i = 0; i < n; i++)
                    if ((!exclude_internal || !is_internal(names[i])) && (r = one(k, names[i])) < 0)
                        rc = cli_fail(ctx, names[i], r, NULL);
                klog_topic_list_free(names, n);
            }
        }
    } else if (del) {
        for (int i = 0; i < ntopics; i++) {
            r = klog_topic_delete(k, topics[i]);
            if (r == KLOG_EUNKNOWN_TOPIC && if_exists)
                continue;
            if (r < 0)
                rc = cli_fail(ctx, topics[i], r, r == KLOG_EUNKNOWN_TOPIC ? "no such topic" :
                              r == -EPERM ? "internal topic: it holds the consumer groups' offsets" : NULL);
            else
                printf("Deleted topic %s.\n", topics[i]);
        }
    } else if (alter) {
        /* Refuse a partition count that is not an increase before changing
         * the configuration: nothing changes when the request is wrong. */
        int cur = klog_topic_describe(k, topics[0], NULL, 0, NULL, 0);
        if (cur < 0) {
            rc = cli_fail(ctx, topics[0], cur, cur == KLOG_EUNKNOWN_TOPIC ? "no such topic" : NULL);
        } else if (partitions && partitions <= cur) {
            fprintf(stderr, "klog: %s: %s: the topic has %d partitions; --partitions must be more "
                    "(a topic never shrinks)\n", ctx, topics[0], cur);
            rc = CLI_FAIL;
        }
        if (rc == CLI_OK && (nsets || nunsets)) {
            r = klog_topic_alter_config(k, topics[0], conf, unsets, (size_t)nunsets, err, sizeof err);
            if (r == KLOG_ECONF) {
                rc = conf_error(ctx, topics[0], r, err);
            } else if (r < 0) {
                rc = cli_fail(ctx, topics[0], r, r == KLOG_EUNKNOWN_TOPIC ? "no such topic" : err);
            } else {
                printf("Updated config for topic %s.\n", topics[0]);
            }
        }
        if (rc == CLI_OK && partitions) {
            r = klog_topic_add_partitions(k, topics[0], partitions);
            if (r < 0)
                rc = cli_fail(ctx, topics[0], r, r == KLOG_EUNKNOWN_TOPIC ? "no such topic" : NULL);
            else
                printf("Topic %s now has %d partitions.\n", topics[0], partitions);
        }
    }
    int cr = klog_close(k);
    if (cr < 0 && rc == CLI_OK)
        rc = cli_fail(ctx, "closing the data directory", cr, NULL);
out:
    klog_conf_free(conf);
    return rc;
}
