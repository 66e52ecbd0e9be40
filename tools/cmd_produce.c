/*
 * tools/cmd_produce.c - `klog produce TOPIC`: one record per line of stdin,
 * kafka-console-producer.sh for a klog data directory.  Public API only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

static const char produce_help[] =
    "Usage: klog [-d DIR] produce TOPIC [OPTIONS] < lines\n"
    "\n"
    "Send each line of standard input (without its newline) as one record.\n"
    "A summary goes to standard error; the exit status is 1 if any record was\n"
    "not delivered.\n"
    "\n"
    "  --topic TOPIC          the topic (instead of the positional argument)\n"
    "  --key-separator SEP    split each line at the first SEP into key and value;\n"
    "                         a line without SEP is refused (counted as failed)\n"
    "  --header KEY=VALUE     add this header to every record (repeatable)\n"
    "  --acks 0|1|all         acknowledgement (default 1; all = after fdatasync)\n"
    "  --compression none|gzip|snappy|lz4|zstd\n"
    "                         batch compression (default none)\n"
    "  --partition N          send every record to partition N (default: the\n"
    "                         partitioner: key hash, or sticky for null keys)\n"
    "  --json                 each line is a JSON object: {\"key\":K,\"value\":V,\n"
    "                         \"headers\":{\"h\":\"v\",...},\"partition\":N,\"timestamp\":MS}\n"
    "                         (every member optional; key and value strings or\n"
    "                         null; consume --format json's output is taken too).\n"
    "                         The input is read whole (1 GiB at most) and checked\n"
    "                         before anything is sent: a bad line is reported with\n"
    "                         its number and nothing is sent\n"
    "  -X, --property KEY=VALUE\n"
    "                         any producer key (linger.ms, batch.size, ...; repeatable;\n"
    "                         in remote mode librdkafka's producer properties), or\n"
    "                         Kafka's console producer properties parse.key=true\n"
    "                         (split lines at key.separator) and key.separator=SEP\n"
    "                         (default a tab)\n"
    "  -q, --quiet            no summary\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n"
    "\n"
    "Opens DIR as its writer.  While 'klog serve' holds DIR, sends through it\n"
    "over the Kafka protocol (remote mode); while another process holds it,\n"
    "exits 3.\n";

enum { O_KEYSEP = 256, O_HEADER, O_ACKS, O_COMPRESSION, O_PARTITION, O_TOPIC, O_JSON };

static const struct option produce_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "quiet", no_argument, NULL, 'q' },
    { "property", required_argument, NULL, 'X' },
    { "key-separator", required_argument, NULL, O_KEYSEP },
    { "header", required_argument, NULL, O_HEADER },
    { "acks", required_argument, NULL, O_ACKS },
    { "compression", required_argument, NULL, O_COMPRESSION },
    { "partition", required_argument, NULL, O_PARTITION },
    { "topic", required_argument, NULL, O_TOPIC },
    { "json", no_argument, NULL, O_JSON },
    CLI_REMOTE_OPTIONS,
    { NULL, 0, NULL, 0 },
};

typedef struct tally {
    _Atomic int64_t delivered, failed;
    _Atomic int first_err;
} tally;

static void on_delivery(void *arg, const klog_delivery *d)
{
    tally *t = arg;
    if (d->err == 0) {
        atomic_fetch_add_explicit(&t->delivered, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&t->failed, 1, memory_order_relaxed);
        int zero = 0;
        atomic_compare_exchange_strong(&t->first_err, &zero, d->err);
    }
}

#define MAX_HEADERS 64

/* produce --json: send each record of cli_jsonl_each. */
typedef struct json_send {
    const char *ctx, *topic;
    klog_producer *p;
    int32_t partition;    /* --partition, or KLOG_PARTITION_ANY */
    int64_t lines, refused;
} json_send;

static int json_one(void *arg, int64_t lineno, const cli_jrec *j)
{
    json_send *s = arg;
    klog_record rec = KLOG_RECORD_INIT;
    rec.partition = j->partition != KLOG_PARTITION_ANY ? j->partition : s->partition;
    rec.key = j->key;
    rec.key_len = j->key_len;
    rec.value = j->value;
    rec.value_len = j->value_len;
    rec.timestamp = j->timestamp;
    rec.headers = j->nheaders ? j->headers : NULL;
    rec.header_count = j->nheaders;
    s->lines++;
    int r = klog_producer_send(s->p, s->topic, &rec);
    if (r < 0) {
        char what[64];
        snprintf(what, sizeof what, "line %" PRId64, lineno);
        if (s->refused++ == 0)
            cli_fail(s->ctx, what, r, NULL);
        if (r == KLOG_EUNKNOWN_TOPIC || r == KLOG_ECLOSED || r == KLOG_EREADONLY)
            return CLI_FAIL;
    }
    return cli_stop ? CLI_FAIL : CLI_OK;
}

int cmd_produce(int argc, char **argv)
{
    const char *ctx = "produce";
    const char *dir = NULL, *topic = NULL, *keysep = NULL;
    const char *acks = NULL, *compression = NULL;
    int32_t partition = KLOG_PARTITION_ANY;
    bool quiet = false, json = false, parse_key = false;
    const char *prop_sep = NULL;
    cli_props props = { .n = 0 };
    cli_remote *rem = NULL;
    klog_header headers[MAX_HEADERS];
    size_t nheaders = 0;
    int rc = CLI_OK, c;
    klog_conf *conf = NULL;
    klog *k = NULL;
    klog_producer *p = NULL;
    char *line = NULL;
    if (klog_conf_new(&conf) < 0)
        return cli_err(ctx, "out of memory");

    optind = 0;
    while ((c = cli_getopt(argc, argv, "d:hqX:", produce_opts, ctx, ctx)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h':
            fputs(produce_help, stdout);
            goto out;
        case 'q': quiet = true; break;
        case 'X':
            /* Kafka's console producer properties are this command's */
            if (!strncmp(optarg, "parse.key=", 10)) {
                if (strcmp(optarg + 10, "true") && strcmp(optarg + 10, "false")) {
                    rc = cli_usage(ctx, ctx, "--property parse.key: '%s' is not true or false", optarg + 10);
                    goto out;
                }
                parse_key = !strcmp(optarg + 10, "true");
                break;
            }
            if (!strncmp(optarg, "key.separator=", 14)) {
                if (!optarg[14]) {
                    rc = cli_usage(ctx, ctx, "--property key.separator must not be empty");
                    goto out;
                }
                prop_sep = optarg + 14;
                break;
            }
            /* the rest: applied once the mode is known, klog keys or librdkafka's */
            if ((rc = cli_props_add(ctx, &props, optarg)) != CLI_OK)
                goto out;
            break;
        case O_JSON: json = true; break;
        case O_BOOTSTRAP:
        case O_CMDCONFIG: cli_remote_option(c, optarg); break;
        case O_KEYSEP:
            if (!*optarg) {
                rc = cli_usage(ctx, ctx, "--key-separator must not be empty");
                goto out;
            }
            keysep = optarg;
            break;
        case O_HEADER: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                rc = cli_usage(ctx, ctx, "--header '%s': expected KEY=VALUE", optarg);
                goto out;
            }
            if (nheaders == MAX_HEADERS) {
                rc = cli_usage(ctx, ctx, "more than %d headers", MAX_HEADERS);
                goto out;
            }
            headers[nheaders] = (klog_header){ optarg, (size_t)(eq - optarg), eq + 1, strlen(eq + 1) };
            nheaders++;
            break;
        }
        case O_ACKS:
            if (strcmp(optarg, "0") && strcmp(optarg, "1") && strcmp(optarg, "all") && strcmp(optarg, "-1")) {
                rc = cli_usage(ctx, ctx, "--acks must be 0, 1 or all, not '%s'", optarg);
                goto out;
            }
            acks = optarg;
            if ((rc = cli_conf_set(ctx, conf, "acks", optarg)) != CLI_OK)
                goto out;
            break;
        case O_COMPRESSION:
            if (strcmp(optarg, "none") && strcmp(optarg, "gzip") && strcmp(optarg, "snappy") &&
                strcmp(optarg, "lz4") && strcmp(optarg, "zstd")) {
                rc = cli_usage(ctx, ctx, "--compression must be none, gzip, snappy, lz4 or zstd, not '%s'", optarg);
                goto out;
            }
            compression = optarg;
            if ((rc = cli_conf_set(ctx, conf, "compression.type", optarg)) != CLI_OK)
                goto out;
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
        case O_TOPIC: topic = optarg; break;
        default:
            rc = CLI_USAGE;
            goto out;
        }
    }
    if ((rc = cli_topic_operand(ctx, argc, argv, optind, &topic)) != CLI_OK)
        goto out;
    if (parse_key && !keysep)
        keysep = prop_sep ? prop_sep : "\t";
    if (json && (keysep || nheaders)) {
        rc = cli_usage(ctx, ctx, "--json takes keys and headers from each line: not with --key-separator, "
                                 "parse.key or --header");
        goto out;
    }
    if ((rc = cli_target(ctx, ctx, dir, false, NULL, &k, &rem)) != CLI_OK)
        goto out;
    if (rem) {
        remote_produce_opts ro = { .topic = topic, .keysep = keysep, .acks = acks, .compression = compression,
                                   .headers = headers, .nheaders = nheaders, .partition = partition,
                                   .quiet = quiet, .json = json, .props = &props };
        rc = remote_produce(rem, &ro);
        goto out;
    }
    for (int i = 0; i < props.n; i++)
        if ((rc = cli_conf_kv(ctx, conf, props.kv[i])) != CLI_OK)
            goto out;
    int np = 0;
    if ((rc = cli_check_topic(ctx, k, topic, partition, &np)) != CLI_OK)
        goto out;
    char err[512] = "";
    int r = klog_producer_new(k, conf, &p, err, sizeof err);
    if (r < 0) {
        rc = cli_fail(ctx, topic, r, err);
        if (r == KLOG_ECONF)
            rc = CLI_USAGE; /* a key of another scope: bad input */
        goto out;
    }
    tally t = { 0 };
    klog_producer_set_delivery_cb(p, on_delivery, &t);
    cli_signals();

    size_t cap = 0, seplen = keysep ? strlen(keysep) : 0;
    ssize_t len;
    int64_t lines = 0, refused = 0;
    int first_send_err = 0;
    if (json) {
        size_t n = 0;
        int e = cli_read_all(stdin, CLI_JSON_INPUT_MAX, &line, &n);
        if (e < 0) {
            rc = e == -EFBIG ? cli_err(ctx, "--json: standard input is over %zu bytes", CLI_JSON_INPUT_MAX)
                             : cli_fail(ctx, "reading standard input", e, NULL);
        } else {
            json_send js = { .ctx = ctx, .p = p, .topic = topic, .partition = partition };
            rc = cli_jsonl_each(ctx, line, n, np, json_one, &js);
            lines = js.lines;
            refused = js.refused;
        }
        if (rc != CLI_OK && lines == 0)
            goto out; /* nothing sent */
    }
    while (!json && !cli_stop && (len = getline(&line, &cap, stdin)) >= 0) {
        lines++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        klog_record rec = KLOG_RECORD_INIT;
        rec.partition = partition;
        rec.headers = nheaders ? headers : NULL;
        rec.header_count = nheaders;
        rec.value = line;
        rec.value_len = (size_t)len;
        if (keysep) {
            char *sep = memmem(line, (size_t)len, keysep, seplen);
            if (!sep) {
                if (refused++ == 0)
                    fprintf(stderr, "klog: produce: line %" PRId64 ": no key separator '%s' (line not sent)\n",
                            lines, keysep);
                continue;
            }
            rec.key = line;
            rec.key_len = (size_t)(sep - line);
            rec.value = sep + seplen;
            rec.value_len = (size_t)(line + len - (sep + seplen));
        }
        r = klog_producer_send(p, topic, &rec);
        if (r < 0) {
            refused++;
            if (first_send_err == 0) {
                first_send_err = r;
                char what[64];
                snprintf(what, sizeof what, "line %" PRId64, lines);
                cli_fail(ctx, what, r, NULL);
            }
            if (r == KLOG_EUNKNOWN_TOPIC || r == KLOG_ECLOSED || r == KLOG_EREADONLY)
                break; /* every later line would fail the same way */
        }
    }
    if (ferror(stdin)) {
        cli_err(ctx, "reading standard input failed");
        rc = CLI_FAIL;
    }
    r = klog_producer_close(p);
    p = NULL;
    int64_t ok = atomic_load(&t.delivered), failed = atomic_load(&t.failed) + refused;
    int ferr = atomic_load(&t.first_err);
    if (!quiet || failed)
        fprintf(stderr, "klog produce: %s: %" PRId64 " lines read, %" PRId64 " records delivered, %" PRId64
                " failed%s%s%s\n", topic, lines, ok, failed, ferr ? " (first delivery error: " : "",
                ferr ? klog_strerror(ferr) : "", ferr ? ")" : "");
    if (failed || r < 0)
        rc = CLI_FAIL;
out:
    free(line);
    cli_remote_free(rem);
    klog_producer_close(p);
    if (k) {
        int cr = klog_close(k);
        if (cr < 0 && rc == CLI_OK)
            rc = cli_fail(ctx, "closing the data directory", cr, NULL);
    }
    klog_conf_free(conf);
    return rc;
}
