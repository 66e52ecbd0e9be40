/*
 * tools/cmd_consume.c - `klog consume TOPIC`: print records,
 * kafka-console-consumer.sh for a klog data directory.  Public API only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

static const char consume_help[] =
    "Usage: klog [-d DIR] consume TOPIC [OPTIONS]\n"
    "\n"
    "Print the records of a topic, one per line, until interrupted, until\n"
    "--max-messages, or until --timeout-ms passes without a record.\n"
    "\n"
    "Where to start (default: the end, i.e. only new records):\n"
    "  --from-beginning       from the start of each partition (with --group:\n"
    "                         where the group has no committed offset)\n"
    "  --offset N|earliest|latest\n"
    "                         from offset N of each partition read\n"
    "  --timestamp MS         from the first record with timestamp >= MS (ms since\n"
    "                         the epoch)\n"
    "What to read:\n"
    "  --topic TOPIC          the topic (instead of the positional argument)\n"
    "  --partition N          only partition N (default: all)\n"
    "  --group G              consume as a member of consumer group G: the group\n"
    "                         assigns partitions, reading starts at its committed\n"
    "                         offsets, and the group's offsets are committed past\n"
    "                         the records printed (every 5 s and at exit; a\n"
    "                         partition with none printed commits its position).\n"
    "                         Not with --partition, --offset or --timestamp.\n"
    "When to stop:\n"
    "  --max-messages N       after N records\n"
    "  --timeout-ms T         after T ms without a record (default: never)\n"
    "Output:\n"
    "  --format value|kv|json value: the value (default); kv: key, separator, value;\n"
    "                         json: one object per line with topic, partition,\n"
    "                         offset, timestamp, key, value, headers.  Null keys and\n"
    "                         values print as null.  In json, a key or value that is\n"
    "                         not valid UTF-8 is base64 with \"key_base64\":true\n"
    "                         (\"value_base64\", and the same inside headers).\n"
    "  --separator SEP        the kv separator (default: a tab)\n"
    "  -X, --property KEY=VALUE\n"
    "                         any consumer key (max.poll.records, ...; repeatable;\n"
    "                         in remote mode librdkafka's consumer properties)\n"
    "  -q, --quiet            no \"Processed a total of N messages\" line\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n"
    "\n"
    "Opens DIR as its writer (and holds it while running).  While 'klog serve'\n"
    "holds DIR, reads through it over the Kafka protocol (remote mode), so that\n"
    "several consumers, in one group or not, can run at once; while another\n"
    "process holds it, exits 3.\n";

enum {
    O_FROM_BEGINNING = 256, O_OFFSET, O_TIMESTAMP, O_PARTITION, O_GROUP, O_MAX, O_TIMEOUT, O_FORMAT,
    O_SEP, O_TOPIC,
};

static const struct option consume_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "quiet", no_argument, NULL, 'q' },
    { "property", required_argument, NULL, 'X' },
    { "from-beginning", no_argument, NULL, O_FROM_BEGINNING },
    { "offset", required_argument, NULL, O_OFFSET },
    { "timestamp", required_argument, NULL, O_TIMESTAMP },
    { "partition", required_argument, NULL, O_PARTITION },
    { "group", required_argument, NULL, O_GROUP },
    { "max-messages", required_argument, NULL, O_MAX },
    { "timeout-ms", required_argument, NULL, O_TIMEOUT },
    { "format", required_argument, NULL, O_FORMAT },
    { "separator", required_argument, NULL, O_SEP },
    { "topic", required_argument, NULL, O_TOPIC },
    CLI_REMOTE_OPTIONS,
    { NULL, 0, NULL, 0 },
};

static void print_plain(FILE *f, const void *p, size_t n)
{
    if (p)
        fwrite(p, 1, n, f);
    else
        fputs("null", f);
}

void cli_print_record(FILE *f, const cli_record *m, enum cli_fmt fmt, const char *sep)
{
    if (fmt == CLI_FMT_VALUE) {
        print_plain(f, m->value, m->value_len);
        fputc('\n', f);
        return;
    }
    if (fmt == CLI_FMT_KV) {
        print_plain(f, m->key, m->key_len);
        fputs(sep, f);
        print_plain(f, m->value, m->value_len);
        fputc('\n', f);
        return;
    }
    fputs("{\"topic\":", f);
    cli_json_str(f, m->topic);
    fprintf(f, ",\"partition\":%d,\"offset\":%" PRId64 ",\"timestamp\":%" PRId64 ",\"key\":", (int)m->partition,
            m->offset, m->timestamp);
    if (cli_json_bytes(f, m->key, m->key_len))
        fputs(",\"key_base64\":true", f);
    fputs(",\"value\":", f);
    if (cli_json_bytes(f, m->value, m->value_len))
        fputs(",\"value_base64\":true", f);
    fputs(",\"headers\":[", f);
    for (size_t i = 0; i < m->header_count; i++) {
        const char *hk;
        size_t hkl, hvl;
        const void *hv;
        if (m->header(m->src, i, &hk, &hkl, &hv, &hvl) < 0)
            break;
        fputs(i ? ",{\"key\":" : "{\"key\":", f);
        if (cli_json_bytes(f, hk, hkl))
            fputs(",\"key_base64\":true", f);
        fputs(",\"value\":", f);
        if (cli_json_bytes(f, hv, hvl))
            fputs(",\"value_base64\":true", f);
        fputc('}', f);
    }
    fputs("]}\n", f);
}

static int klog_header_at(const void *src, size_t i, const char **k, size_t *kl, const void **v, size_t *vl)
{
    return klog_message_header((const klog_message *)src, i, k, kl, v, vl);
}

static void print_msg(FILE *f, const klog_message *m, enum cli_fmt fmt, const char *sep)
{
    cli_record r = {
        .topic = m->topic, .partition = m->partition, .offset = m->offset, .timestamp = m->timestamp,
        .key = m->key, .key_len = m->key_len, .value = m->value, .value_len = m->value_len,
        .header_count = m->header_count, .header = klog_header_at, .src = m,
    };
    cli_print_record(f, &r, fmt, sep);
}

/*
 * Commit, for every partition assigned: the offset after the last record
 * printed from it; or, when none was printed, the offset of the first
 * record polled but not printed (--max-messages stopped in the middle of a
 * poll); or else the consumer's position (where a new member would start,
 * as Kafka's consumer commits it).
 */
static int commit_printed(klog_consumer *c, const char *topic, const int64_t *next, int32_t n, int async)
{
    klog_partition_list *assigned = NULL, *l = NULL;
    int rc = klog_consumer_assignment(c, &assigned);
    if (rc == 0)
        rc = klog_partition_list_new(&l);
    size_t count = klog_partition_list_count(assigned), added = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const char *t;
        int32_t p;
        int64_t pos;
        if (klog_partition_list_get(assigned, i, &t, &p, &pos, NULL, NULL) < 0 || strcmp(t, topic))
            continue;
        int64_t off = p >= 0 && p < n && next[p] >= 0 ? next[p] : pos;
        if (off >= 0) {
            rc = klog_partition_list_add(l, topic, p, off, NULL);
            added++;
        }
    }
    if (rc == 0 && added)
        rc = klog_consumer_commit(c, l, async);
    klog_partition_list_free(l);
    klog_partition_list_free(assigned);
    return rc;
}

int cmd_consume(int argc, char **argv)
{
    const char *ctx = "consume";
    const char *dir = NULL, *topic = NULL, *group = NULL, *sep = "\t";
    bool from_beginning = false, quiet = false, have_offset = false, have_ts = false;
    int64_t offset = 0, ts = 0, max_messages = -1, timeout_ms = -1;
    int32_t partition = -1;
    enum cli_fmt fmt = CLI_FMT_VALUE;
    int rc = CLI_OK, c;
    klog_conf *conf = NULL;
    klog *k = NULL;
    klog_consumer *cons = NULL;
    int64_t *next = NULL; /* per partition: the offset to commit (-1: none yet) */
    cli_props props = { .n = 0 };
    cli_remote *rem = NULL;
    if (klog_conf_new(&conf) < 0)
        return cli_err(ctx, "out of memory");

    optind = 0;
    while ((c = cli_getopt(argc, argv, "d:hqX:", consume_opts, ctx, ctx)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h':
            fputs(consume_help, stdout);
            goto out;
        case 'q': quiet = true; break;
        case 'X':
            /* applied once the mode is known: klog keys, or librdkafka's */
            if ((rc = cli_props_add(ctx, &props, optarg)) != CLI_OK)
                goto out;
            break;
        case O_BOOTSTRAP:
        case O_CMDCONFIG: cli_remote_option(c, optarg); break;
        case O_FROM_BEGINNING: from_beginning = true; break;
        case O_OFFSET:
            have_offset = true;
            if (!strcmp(optarg, "earliest"))
                offset = KLOG_OFFSET_BEGINNING;
            else if (!strcmp(optarg, "latest"))
                offset = KLOG_OFFSET_END;
            else if (!cli_i64(optarg, &offset) || offset < 0) {
                rc = cli_usage(ctx, ctx, "--offset: '%s' is not an offset, earliest or latest", optarg);
                goto out;
            }
            break;
        case O_TIMESTAMP:
            have_ts = true;
            if (!cli_i64(optarg, &ts)) {
                rc = cli_usage(ctx, ctx, "--timestamp: '%s' is not a time in ms since the epoch", optarg);
                goto out;
            }
            break;
        case O_PARTITION: {
            int v;
            if (!cli_int(optarg, 0, INT32_MAX, &v)) {
                rc = cli_usage(ctx, ctx, "--partition: '%s' is not a partition number", optarg);
                goto out;
            }
            partition = v;
            break;
        }
        case O_GROUP: group = optarg; break;
        case O_MAX:
            if (!cli_i64(optarg, &max_messages) || max_messages < 1) {
                rc = cli_usage(ctx, ctx, "--max-messages: '%s' is not a positive number", optarg);
                goto out;
            }
            break;
        case O_TIMEOUT:
            if (!cli_i64(optarg, &timeout_ms) || timeout_ms < 0) {
                rc = cli_usage(ctx, ctx, "--timeout-ms: '%s' is not a number of ms", optarg);
                goto out;
            }
            break;
        case O_FORMAT:
            if (!strcmp(optarg, "value"))
                fmt = CLI_FMT_VALUE;
            else if (!strcmp(optarg, "kv"))
                fmt = CLI_FMT_KV;
            else if (!strcmp(optarg, "json"))
                fmt = CLI_FMT_JSON;
            else {
                rc = cli_usage(ctx, ctx, "--format must be value, kv or json, not '%s'", optarg);
                goto out;
            }
            break;
        case O_SEP: sep = optarg; break;
        case O_TOPIC: topic = optarg; break;
        default:
            rc = CLI_USAGE;
            goto out;
        }
    }
    if (optind < argc) {
        if (topic || optind + 1 < argc) {
            rc = cli_usage(ctx, ctx, "unexpected argument '%s'", argv[topic ? optind : optind + 1]);
            goto out;
        }
        topic = argv[optind];
    }
    if (!topic) {
        rc = cli_usage(ctx, ctx, "no topic given");
        goto out;
    }
    if ((int)from_beginning + (int)have_offset + (int)have_ts > 1) {
        rc = cli_usage(ctx, ctx, "give only one of --from-beginning, --offset and --timestamp");
        goto out;
    }
    if (group && (partition >= 0 || have_offset || have_ts)) {
        rc = cli_usage(ctx, ctx, "--group takes its partitions and offsets from the group: "
                                 "not with --partition, --offset or --timestamp");
        goto out;
    }
    if ((rc = cli_target(ctx, ctx, dir, false, NULL, &k, &rem)) != CLI_OK)
        goto out;
    if (rem) {
        remote_consume_opts ro = {
            .topic = topic, .group = group, .sep = sep, .partition = partition,
            .from_beginning = from_beginning, .have_offset = have_offset, .have_ts = have_ts, .quiet = quiet,
            .offset = offset, .ts = ts, .max_messages = max_messages, .timeout_ms = timeout_ms, .fmt = fmt,
            .props = &props,
        };
        rc = remote_consume(rem, &ro);
        goto out;
    }
    if ((rc = cli_conf_set(ctx, conf, "auto.offset.reset", from_beginning ? "earliest" : "latest")) != CLI_OK)
        goto out;
    if (group && ((rc = cli_conf_set(ctx, conf, "group.id", group)) != CLI_OK ||
                  (rc = cli_conf_set(ctx, conf, "enable.auto.commit", "false")) != CLI_OK))
        goto out;
    if (group && (rc = cli_conf_set(ctx, conf, "client.id", "klog-consume")) != CLI_OK)
        goto out;
    if (max_messages > 0 && max_messages < 500) {
        char v[32];
        snprintf(v, sizeof v, "%" PRId64, max_messages);
        klog_conf_set(conf, "max.poll.records", v, NULL, 0);
    }
    for (int i = 0; i < props.n; i++)
        if ((rc = cli_conf_kv(ctx, conf, props.kv[i])) != CLI_OK)
            goto out;
    int np = 0;
    if ((rc = cli_check_topic(ctx, k, topic, partition, &np)) != CLI_OK)
        goto out;
    char err[512] = "";
    int r = klog_consumer_new(k, conf, &cons, err, sizeof err);
    if (r < 0) {
        rc = cli_fail(ctx, topic, r, err);
        goto out;
    }
    int32_t ntrack = np + 64; /* partitions may be added while we run */
    next = malloc((size_t)ntrack * sizeof *next);
    if (!next) {
        rc = cli_err(ctx, "out of memory");
        goto out;
    }
    for (int32_t p = 0; p < ntrack; p++)
        next[p] = -1;
    if (group) {
        const char *const topics[1] = { topic };
        if ((r = klog_consumer_subscribe(cons, topics, 1)) < 0) {
            rc = cli_fail(ctx, group, r, NULL);
            goto out;
        }
    } else {
        for (int32_t p = partition >= 0 ? partition : 0; p < (partition >= 0 ? partition + 1 : np); p++) {
            int64_t at = from_beginning || have_ts ? KLOG_OFFSET_BEGINNING : have_offset ? offset : KLOG_OFFSET_END;
            if ((r = klog_consumer_assign(cons, topic, p, at)) < 0 ||
                (have_ts && (r = klog_consumer_seek_time(cons, topic, p, ts)) < 0)) {
                char what[300];
                snprintf(what, sizeof what, "%s/%d", topic, (int)p);
                rc = cli_fail(ctx, what, r, NULL);
                goto out;
            }
        }
    }

    cli_signals();
    int64_t count = 0;
    uint64_t last = cli_now_ns(), last_commit = last;
    bool done = false;
    while (!done && !cli_stop) {
        int wait = 200;
        if (timeout_ms >= 0) {
            uint64_t now = cli_now_ns();
            int64_t left = timeout_ms - (int64_t)((now - last) / 1000000);
            if (left <= 0)
                break;
            if (left < wait)
                wait = (int)left;
        }
        const klog_message *const *msgs;
        int n = klog_consumer_poll(cons, wait, &msgs);
        if (n < 0) {
            rc = cli_fail(ctx, topic, n, NULL);
            break;
        }
        for (int i = 0; i < n; i++) {
            print_msg(stdout, msgs[i], fmt, sep);
            int32_t p = msgs[i]->partition;
            if (p >= 0 && p < ntrack)
                next[p] = msgs[i]->offset + 1;
            if (++count == max_messages) {
                done = true;
                /* the rest of this poll stays unread: commit up to it */
                for (int j = i + 1; j < n; j++) {
                    int32_t q = msgs[j]->partition;
                    if (q >= 0 && q < ntrack && next[q] < 0)
                        next[q] = msgs[j]->offset;
                }
                break;
            }
        }
        if (n > 0) {
            last = cli_now_ns();
            if (fflush(stdout) != 0) {
                if (errno != EPIPE)
                    cli_err(ctx, "writing standard output: %s", strerror(errno));
                rc = CLI_FAIL;
                break;
            }
        }
        if (group && cli_now_ns() - last_commit > 5000000000ull) {
            last_commit = cli_now_ns();
            if ((r = commit_printed(cons, topic, next, ntrack, 1)) < 0 && r != KLOG_EREBALANCE)
                cli_fail(ctx, "commit", r, NULL);
        }
    }
    fflush(stdout);
    if (group && (r = commit_printed(cons, topic, next, ntrack, 0)) < 0) {
        /* a rebalance completing: the next poll finishes it, then commit again */
        if (r == KLOG_EREBALANCE) {
            const klog_message *const *msgs;
            (void)klog_consumer_poll(cons, 0, &msgs);
            r = commit_printed(cons, topic, next, ntrack, 0);
        }
        if (r < 0)
            rc = cli_fail(ctx, "commit", r, NULL);
    }
    if (!quiet)
        fprintf(stderr, "Processed a total of %" PRId64 " messages\n", count);
out:
    cli_remote_free(rem);
    klog_consumer_close(cons);
    free(next);
    if (k) {
        int cr = klog_close(k);
        if (cr < 0 && rc == CLI_OK)
            rc = cli_fail(ctx, "closing the data directory", cr, NULL);
    }
    klog_conf_free(conf);
    return rc;
}
