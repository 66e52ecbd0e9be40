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
    "--max-messages, until --timeout-ms passes without a record, or with\n"
    "--exit-at-end once every partition read is at its end.\n"
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
    "  -e, --exit-at-end      once every partition read is at its end (kcat -e;\n"
    "                         with --group, every partition assigned)\n"
    "Output:\n"
    "  --format value|kv|json|TEMPLATE\n"
    "                         value: the value (default); kv: key, separator, value;\n"
    "                         json: one object per line with topic, partition,\n"
    "                         offset, timestamp, key, value, headers.  Null keys and\n"
    "                         values print as null.  In json, a key or value that is\n"
    "                         not valid UTF-8 is base64 with \"key_base64\":true\n"
    "                         (\"value_base64\", and the same inside headers).\n"
    "                         TEMPLATE (kcat -f): text with %t topic, %p partition,\n"
    "                         %o offset, %k key, %s value, %T timestamp, %h headers\n"
    "                         (k=v,...), %S value size, %K key size, %% and the\n"
    "                         escapes \\n \\t \\r \\\\ (no newline is added).\n"
    "  --separator SEP        the kv separator (default: a tab)\n"
    "  -X, --property KEY=VALUE\n"
    "                         any consumer key (max.poll.records, ...; repeatable;\n"
    "                         in remote mode librdkafka's consumer properties), or\n"
    "                         Kafka's console consumer properties: print.key,\n"
    "                         print.timestamp, print.offset, print.partition,\n"
    "                         print.headers, print.value=true|false and\n"
    "                         key.separator=SEP (default a tab)\n"
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
    O_SEP, O_TOPIC, O_EXIT_AT_END,
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
    { "exit-at-end", no_argument, NULL, 'e' },
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

/* The headers as kcat's %h and Kafka's print.headers show them:
 * "k1=v1,k2=v2" (kcat) or "k1:v1,k2:v2" (Kafka); Kafka's NO_HEADERS when
 * there are none. */
static void print_headers(FILE *f, const cli_record *m, char kv, const char *none)
{
    if (m->header_count == 0 && none)
        fputs(none, f);
    for (size_t i = 0; i < m->header_count; i++) {
        const char *hk;
        size_t hkl, hvl;
        const void *hv;
        if (m->header(m->src, i, &hk, &hkl, &hv, &hvl) < 0)
            break;
        if (i)
            fputc(',', f);
        fwrite(hk, 1, hkl, f);
        fputc(kv, f);
        print_plain(f, hv, hvl);
    }
}

const char *cli_template_check(const char *t)
{
    for (; *t; t++) {
        if (*t == '%') {
            if (!t[1] || !strchr("tpokshTSK%", t[1]))
                return "unknown %-field (known: %t %p %o %k %s %T %h %S %K %%)";
            t++;
        } else if (*t == '\\') {
            if (!t[1] || !strchr("ntr\\", t[1]))
                return "unknown \\-escape (known: \\n \\t \\r \\\\)";
            t++;
        }
    }
    return NULL;
}

/* A --format template, checked by cli_template_check: null keys and values
 * print as nothing, their sizes (%K, %S) as -1 (kcat's). */
static void print_template(FILE *f, const cli_record *m, const char *t)
{
    for (; *t; t++) {
        if (*t == '\\') {
            t++;
            fputc(*t == 'n' ? '\n' : *t == 't' ? '\t' : *t == 'r' ? '\r' : '\\', f);
            continue;
        }
        if (*t != '%') {
            fputc(*t, f);
            continue;
        }
        switch (*++t) {
        case 't': fputs(m->topic, f); break;
        case 'p': fprintf(f, "%d", (int)m->partition); break;
        case 'o': fprintf(f, "%" PRId64, m->offset); break;
        case 'T': fprintf(f, "%" PRId64, m->timestamp); break;
        case 'k': if (m->key) fwrite(m->key, 1, m->key_len, f); break;
        case 's': if (m->value) fwrite(m->value, 1, m->value_len, f); break;
        case 'K': fprintf(f, "%zd", m->key ? (ssize_t)m->key_len : (ssize_t)-1); break;
        case 'S': fprintf(f, "%zd", m->value ? (ssize_t)m->value_len : (ssize_t)-1); break;
        case 'h': print_headers(f, m, '=', NULL); break;
        default: fputc('%', f); break;
        }
    }
}

/* Kafka's DefaultMessageFormatter: CreateTime:T, Partition:P, Offset:O,
 * headers, key, value, in that order, as print.* asks, sep between. */
static void print_kafka(FILE *f, const cli_record *m, unsigned what, const char *sep)
{
    bool first = true;
#define FIELD() (first ? (void)(first = false) : (void)fputs(sep, f))
    if (what & CLI_PRINT_TIMESTAMP) {
        FIELD();
        fprintf(f, "CreateTime:%" PRId64, m->timestamp);
    }
    if (what & CLI_PRINT_PARTITION) {
        FIELD();
        fprintf(f, "Partition:%d", (int)m->partition);
    }
    if (what & CLI_PRINT_OFFSET) {
        FIELD();
        fprintf(f, "Offset:%" PRId64, m->offset);
    }
    if (what & CLI_PRINT_HEADERS) {
        FIELD();
        print_headers(f, m, ':', "NO_HEADERS");
    }
    if (what & CLI_PRINT_KEY) {
        FIELD();
        print_plain(f, m->key, m->key_len);
    }
    if (what & CLI_PRINT_VALUE) {
        FIELD();
        print_plain(f, m->value, m->value_len);
    }
#undef FIELD
    fputc('\n', f);
}

void cli_print_record(FILE *f, const cli_record *m, const cli_out *out)
{
    switch (out->fmt) {
    case CLI_FMT_VALUE:
        print_plain(f, m->value, m->value_len);
        fputc('\n', f);
        return;
    case CLI_FMT_KV:
        print_plain(f, m->key, m->key_len);
        fputs(out->sep, f);
        print_plain(f, m->value, m->value_len);
        fputc('\n', f);
        return;
    case CLI_FMT_TEMPLATE:
        print_template(f, m, out->tmpl);
        return;
    case CLI_FMT_KAFKA:
        print_kafka(f, m, out->print, out->sep);
        return;
    case CLI_FMT_JSON:
        break;
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

static void print_msg(FILE *f, const klog_message *m, const cli_out *out)
{
    cli_record r = {
        .topic = m->topic, .partition = m->partition, .offset = m->offset, .timestamp = m->timestamp,
        .key = m->key, .key_len = m->key_len, .value = m->value, .value_len = m->value_len,
        .header_count = m->header_count, .header = klog_header_at, .src = m,
    };
    cli_print_record(f, &r, out);
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

/* --exit-at-end: every partition assigned (at least one) has nothing left
 * to read past the records already returned. */
static bool at_end(klog_consumer *c)
{
    klog_partition_list *l = NULL;
    if (klog_consumer_assignment(c, &l) < 0)
        return false;
    size_t n = klog_partition_list_count(l);
    bool end = n > 0;
    for (size_t i = 0; end && i < n; i++) {
        const char *t;
        int32_t p;
        int64_t lag = 1;
        end = klog_partition_list_get(l, i, &t, &p, NULL, NULL, NULL) == 0 &&
              klog_consumer_lag(c, t, p, &lag) == 0 && lag == 0;
    }
    klog_partition_list_free(l);
    return end;
}

int cmd_consume(int argc, char **argv)
{
    const char *ctx = "consume";
    const char *dir = NULL, *topic = NULL, *group = NULL, *sep = "\t";
    bool from_beginning = false, quiet = false, have_offset = false, have_ts = false, exit_at_end = false;
    unsigned print = CLI_PRINT_VALUE, print_set = 0;
    const char *tmpl = NULL;
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
    while ((c = cli_getopt(argc, argv, "d:hqX:e", consume_opts, ctx, ctx)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h':
            fputs(consume_help, stdout);
            goto out;
        case 'q': quiet = true; break;
        case 'e': exit_at_end = true; break;
        case 'X': {
            /* Kafka's console consumer properties are the printer's */
            static const struct { const char *name; unsigned bit; } pp[] = {
                { "print.timestamp=", CLI_PRINT_TIMESTAMP }, { "print.partition=", CLI_PRINT_PARTITION },
                { "print.offset=", CLI_PRINT_OFFSET }, { "print.headers=", CLI_PRINT_HEADERS },
                { "print.key=", CLI_PRINT_KEY }, { "print.value=", CLI_PRINT_VALUE },
            };
            bool mine = false;
            for (size_t i = 0; i < sizeof pp / sizeof pp[0] && !mine; i++) {
                size_t n = strlen(pp[i].name);
                if (strncmp(optarg, pp[i].name, n))
                    continue;
                mine = true;
                if (!strcmp(optarg + n, "true"))
                    print |= pp[i].bit;
                else if (!strcmp(optarg + n, "false"))
                    print &= ~pp[i].bit;
                else {
                    rc = cli_usage(ctx, ctx, "--property %.*s: '%s' is not true or false", (int)n - 1, optarg,
                                   optarg + n);
                    goto out;
                }
                print_set |= pp[i].bit;
            }
            if (!mine && !strncmp(optarg, "key.separator=", 14)) {
                mine = true;
                sep = optarg + 14;
            }
            /* the rest: applied once the mode is known, klog keys or librdkafka's */
            if (!mine && (rc = cli_props_add(ctx, &props, optarg)) != CLI_OK)
                goto out;
            break;
        }
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
            else if (strchr(optarg, '%') || strchr(optarg, '\\')) {
                const char *why = cli_template_check(optarg);
                if (why) {
                    rc = cli_usage(ctx, ctx, "--format '%s': %s", optarg, why);
                    goto out;
                }
                fmt = CLI_FMT_TEMPLATE;
                tmpl = optarg;
            } else {
                rc = cli_usage(ctx, ctx, "--format must be value, kv, json or a template with %%-fields, not '%s'",
                               optarg);
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
    if ((rc = cli_topic_operand(ctx, argc, argv, optind, &topic)) != CLI_OK)
        goto out;
    if (print_set) {
        /* Kafka's console consumer's output: from value or kv */
        if (fmt != CLI_FMT_VALUE && fmt != CLI_FMT_KV) {
            rc = cli_usage(ctx, ctx, "print.* properties shape the text output: not with --format json or a "
                                     "template");
            goto out;
        }
        if (fmt == CLI_FMT_KV && !(print_set & CLI_PRINT_KEY))
            print |= CLI_PRINT_KEY;
        fmt = CLI_FMT_KAFKA;
    }
    cli_out outf = { .fmt = fmt, .sep = sep, .tmpl = tmpl, .print = print };
    if ((int)from_beginning + (int)have_offset + (int)have_ts > 1) {
        rc = cli_usage(ctx, ctx, "give only one of --from-beginning, --offset and --timestamp");
        goto out;
    }
    if (group && (partition >= 0 || have_offset || have_ts)) {
        rc = cli_usage(ctx, ctx, "--group takes its partitions and offsets from the group: "
                                 "not with --partition, --offset or --timestamp");
        goto out;
    }
    cli_target_read_only = group == NULL; /* a group commits: that needs the writer */
    if ((rc = cli_target(ctx, ctx, dir, false, NULL, &k, &rem)) != CLI_OK)
        goto out;
    if (rem) {
        remote_consume_opts ro = {
            .topic = topic, .group = group, .partition = partition, .exit_at_end = exit_at_end,
            .from_beginning = from_beginning, .have_offset = have_offset, .have_ts = have_ts, .quiet = quiet,
            .offset = offset, .ts = ts, .max_messages = max_messages, .timeout_ms = timeout_ms, .out = &outf,
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
        if (r == KLOG_ECONF)
            rc = CLI_USAGE; /* a key of another scope: bad input */
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
            print_msg(stdout, msgs[i], &outf);
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
        if (exit_at_end && !done && at_end(cons))
            break;
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
