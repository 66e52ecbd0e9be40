/*
 * tools/cmd_mirror.c - `klog mirror`: store and forward between a klog
 * data directory and a Kafka cluster (klog/mirror.h, libklog-mirror),
 * until SIGINT or SIGTERM, with progress and lag on the terminal.
 * Without libklog-mirror (klog built without librdkafka) the command says
 * so and exits 2.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "klog_config.h"
#include "cli.h"

#if KLOG_HAVE_MIRROR
#include <klog/mirror.h>
#endif

static const char mirror_help[] =
    "Usage: klog [-d DIR] mirror --to BOOTSTRAP[,...] --topics PATTERN [options]\n"
    "       klog [-d DIR] mirror --from BOOTSTRAP[,...] --topics PATTERN [options]\n"
    "\n"
    "Store and forward between DIR and an Apache Kafka cluster, through\n"
    "librdkafka, until SIGINT (Ctrl-C) or SIGTERM:\n"
    "  --to    forwards the klog topics to the cluster: each record with its key,\n"
    "          value, headers and timestamp, to the partition of the same number\n"
    "          (by key hash when the Kafka topic has fewer partitions), with an\n"
    "          idempotent producer; the klog offsets (consumer group, see --group)\n"
    "          are committed only once Kafka acknowledged the records.\n"
    "  --from  forwards the Kafka topics into klog topics of DIR, committing the\n"
    "          Kafka offsets once klog acknowledged.\n"
    "While the cluster is unreachable the mirror retries for ever and records wait\n"
    "on disk; records the disk budget or retention deleted before they could be\n"
    "forwarded are counted as a gap and logged with their offsets.  Stops with\n"
    "exit status 1 and a message when it cannot go on (the cluster never reached,\n"
    "authentication refused, a topic missing, a record too large); the committed\n"
    "offsets then stay below what was not forwarded.\n"
    "\n"
    "  --to BOOTSTRAP         Kafka bootstrap servers to forward to (host:port,...)\n"
    "  --from BOOTSTRAP       Kafka bootstrap servers to forward from\n"
    "  -t, --topics PATTERN   topics to forward, comma-separated; an entry starting\n"
    "                         with '^' is a regular expression (later topics too)\n"
    "  --rename FROM:TO       forward topic FROM to topic TO (repeatable)\n"
    "  -g, --group ID         consumer group holding the mirror's place\n"
    "                         (default klog-mirror)\n"
    "  --create-topics        create missing destination topics with the source's\n"
    "                         partition count\n"
    "  --connect-timeout S    give up when the cluster was never reached within S\n"
    "                         seconds (default 30; 0: retry for ever)\n"
    "  --exit-idle            exit once everything stored is forwarded and committed\n"
    "  --interval S           progress line every S seconds (default 1; 0: none)\n"
    "  -X, --set KEY=VALUE    mirror.* keys, kafka.KEY (any librdkafka property:\n"
    "                         kafka.security.protocol, kafka.sasl.username, ...),\n"
    "                         klog.KEY (the mirror's klog consumer or producer),\n"
    "                         or an instance key for DIR (disk.budget.bytes, ...)\n"
    "  -q, --quiet            no log lines and no progress\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    "  -h, --help             this help\n"
    "\n"
    "Progress (stderr): forwarded (rate), in flight, lag (records stored and not yet\n"
    "acknowledged), gaps, the link.  Exit status: 0 stopped by a signal (or idle\n"
    "with --exit-idle), 1 the mirror could not go on, 2 usage, 3 DIR locked.\n"
    "See klog(1) and klog_mirror_new(3).\n";

#if !KLOG_HAVE_MIRROR

int cmd_mirror(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(mirror_help, stdout);
            return CLI_OK;
        }
    fprintf(stderr, "klog: mirror: this klog was built without the mirror (librdkafka was not found; "
                    "meson -Dmirror=enabled with librdkafka-dev installed)\n");
    return CLI_USAGE;
}

#else

enum { O_TO = 256, O_FROM, O_RENAME, O_CREATE, O_CONNECT, O_IDLE, O_INTERVAL };

static const struct option mirror_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "to", required_argument, NULL, O_TO },
    { "from", required_argument, NULL, O_FROM },
    { "topics", required_argument, NULL, 't' },
    { "rename", required_argument, NULL, O_RENAME },
    { "group", required_argument, NULL, 'g' },
    { "create-topics", no_argument, NULL, O_CREATE },
    { "connect-timeout", required_argument, NULL, O_CONNECT },
    { "exit-idle", no_argument, NULL, O_IDLE },
    { "interval", required_argument, NULL, O_INTERVAL },
    { "set", required_argument, NULL, 'X' },
    { "quiet", no_argument, NULL, 'q' },
    { NULL, 0, NULL, 0 },
};

#define MAX_SETS 256

typedef struct progress {
    bool tty, shown; /* a progress line is on the terminal, without its newline */
    bool quiet;
} progress;

/* The mirror's log lines: on stderr, after clearing a progress line. */
static void log_line(void *opaque, const char *line)
{
    progress *pr = opaque;
    if (pr->quiet)
        return;
    if (pr->shown) {
        fputs("\r\033[K", stderr);
        pr->shown = false;
    }
    fprintf(stderr, "klog mirror: %s\n", line);
}

static void show(progress *pr, const klog_mirror_stats *s, double rate, bool to)
{
    char line[512];
    snprintf(line, sizeof line,
             "klog mirror: forwarded %" PRIu64 " (%.0f/s), in flight %" PRIu64 ", lag %" PRId64 ", gaps %" PRIu64
             " (%" PRIu64 " records), resent %" PRIu64 ", commits %" PRIu64 ", %d partition%s, link %s",
             s->forwarded, rate, s->in_flight, s->lag, s->gaps, s->gap_records, s->resent, s->commits, s->partitions,
             s->partitions == 1 ? "" : "s", s->link_up ? "up" : to ? "down (records wait on disk)" : "down");
    if (pr->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        pr->shown = true;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

static int set_kv(klog_mirror *m, const char *key, const char *value)
{
    char err[512] = "";
    int rc = klog_mirror_set(m, key, value, err, sizeof err);
    if (rc < 0)
        return cli_usage("mirror", "mirror", "%s", err[0] ? err : klog_strerror(rc));
    return CLI_OK;
}

int cmd_mirror(int argc, char **argv)
{
    const char *ctx = "mirror", *dir_opt = NULL, *to = NULL, *from = NULL, *topics = NULL, *group = NULL;
    const char *sets[MAX_SETS];
    int nsets = 0, st = CLI_OK, c, interval_ms = 1000;
    int64_t connect_ms = 30000;
    bool create = false, exit_idle = false, quiet = false;
    char *rename = NULL;
    klog_conf *conf = NULL;
    klog *k = NULL;
    klog_mirror *m = NULL;
    progress pr = { .tty = isatty(2) };
    if (klog_conf_new(&conf) < 0)
        return cli_err(ctx, "out of memory");
    while ((c = cli_getopt(argc, argv, "hd:t:g:X:q", mirror_opts, ctx, "mirror")) != -1) {
        switch (c) {
        case 'h':
            fputs(mirror_help, stdout);
            goto out;
        case 'd': dir_opt = optarg; break;
        case O_TO: to = optarg; break;
        case O_FROM: from = optarg; break;
        case 't': topics = optarg; break;
        case 'g': group = optarg; break;
        case O_CREATE: create = true; break;
        case O_IDLE: exit_idle = true; break;
        case 'q': quiet = true; break;
        case O_RENAME: {
            if (!strchr(optarg, ':')) {
                st = cli_usage(ctx, "mirror", "--rename %s: FROM:TO", optarg);
                goto out;
            }
            size_t n = (rename ? strlen(rename) + 1 : 0) + strlen(optarg) + 1;
            char *r = malloc(n);
            if (!r) {
                st = cli_err(ctx, "out of memory");
                goto out;
            }
            snprintf(r, n, "%s%s%s", rename ? rename : "", rename ? "," : "", optarg);
            free(rename);
            rename = r;
            break;
        }
        case O_CONNECT: {
            int v;
            if (!cli_int(optarg, 0, 86400, &v)) {
                st = cli_usage(ctx, "mirror", "--connect-timeout %s: seconds, 0..86400", optarg);
                goto out;
            }
            connect_ms = v ? (int64_t)v * 1000 : -1;
            break;
        }
        case O_INTERVAL: {
            char *end;
            double v = strtod(optarg, &end);
            if (*end || !(v >= 0 && v <= 3600)) {
                st = cli_usage(ctx, "mirror", "--interval %s: seconds, 0..3600", optarg);
                goto out;
            }
            interval_ms = (int)(v * 1000);
            break;
        }
        case 'X':
            if (!strchr(optarg, '=')) {
                st = cli_usage(ctx, "mirror", "-X %s: KEY=VALUE", optarg);
                goto out;
            }
            if (!strncmp(optarg, "mirror.", 7) || !strncmp(optarg, "kafka.", 6) || !strncmp(optarg, "klog.", 5)) {
                if (nsets == MAX_SETS) {
                    st = cli_usage(ctx, "mirror", "at most %d -X of the mirror", MAX_SETS);
                    goto out;
                }
                sets[nsets++] = optarg;
            } else if ((st = cli_conf_kv(ctx, conf, optarg)) != CLI_OK) {
                goto out;
            }
            break;
        default:
            st = CLI_USAGE;
            goto out;
        }
    }
    if (optind < argc) {
        st = cli_usage(ctx, "mirror", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!to == !from) {
        st = cli_usage(ctx, "mirror", "one of --to and --from is needed");
        goto out;
    }
    if (!topics) {
        st = cli_usage(ctx, "mirror", "--topics is needed");
        goto out;
    }
    pr.quiet = quiet;
    const char *dir = cli_dir(ctx, "mirror", dir_opt);
    if (!dir) {
        st = CLI_USAGE;
        goto out;
    }
    /* --from may create the directory; --to reads one that must exist. */
    if ((st = cli_open(ctx, dir, from != NULL, conf, &k)) != CLI_OK)
        goto out;
    char err[1024] = "";
    int rc = klog_mirror_new(&m, k, err, sizeof err);
    if (rc < 0) {
        st = cli_fail(ctx, NULL, rc, err);
        goto out;
    }
    klog_mirror_set_log_cb(m, log_line, &pr);
    char cto[32];
    snprintf(cto, sizeof cto, "%" PRId64, connect_ms);
    if ((st = set_kv(m, to ? "mirror.to" : "mirror.from", to ? to : from)) != CLI_OK ||
        (st = set_kv(m, "mirror.topics", topics)) != CLI_OK ||
        (rename && (st = set_kv(m, "mirror.rename", rename)) != CLI_OK) ||
        (group && (st = set_kv(m, "mirror.group.id", group)) != CLI_OK) ||
        (create && (st = set_kv(m, "mirror.create.topics", "true")) != CLI_OK) ||
        (st = set_kv(m, "mirror.connect.timeout.ms", cto)) != CLI_OK)
        goto out;
    for (int i = 0; i < nsets; i++) {
        char key[256];
        const char *eq = strchr(sets[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        if ((st = set_kv(m, key, eq + 1)) != CLI_OK)
            goto out;
    }
    cli_signals();
    if ((rc = klog_mirror_start(m, err, sizeof err)) < 0) {
        st = rc == KLOG_ECONF ? cli_usage(ctx, "mirror", "%s", err) : cli_fail(ctx, "starting", rc, err);
        goto out;
    }
    uint64_t t0 = cli_now_ns(), last_show = t0;
    uint64_t last_fwd = 0;
    bool seen_parts = false;
    while (!cli_stop) {
        rc = klog_mirror_poll(m, 200, err, sizeof err);
        if (rc < 0)
            break;
        klog_mirror_stats s = { .struct_size = sizeof s };
        klog_mirror_stats_get(m, &s);
        seen_parts |= s.partitions > 0;
        uint64_t now = cli_now_ns();
        if (!quiet && interval_ms > 0 && now - last_show >= (uint64_t)interval_ms * 1000000u) {
            double dt = (double)(now - last_show) / 1e9;
            show(&pr, &s, dt > 0 ? (double)(s.forwarded - last_fwd) / dt : 0, to != NULL);
            last_fwd = s.forwarded;
            last_show = now;
        }
        if (exit_idle && seen_parts && s.link_up && s.lag == 0 && s.in_flight == 0 && s.partitions > 0)
            break;
    }
    if (pr.shown)
        fputs("\n", stderr), pr.shown = false;
    if (rc < 0) {
        cli_err(ctx, "%s", err[0] ? err : klog_strerror(rc));
        st = CLI_FAIL;
    }
    int src = klog_mirror_stop(m);
    if (src < 0 && st == CLI_OK)
        st = cli_fail(ctx, "stopping", src, NULL);
    klog_mirror_stats s = { .struct_size = sizeof s };
    klog_mirror_stats_get(m, &s);
    if (!quiet)
        fprintf(stderr,
                "klog mirror: stopped after %.1f s: forwarded %" PRIu64 ", %" PRIu64 " record%s lost to the disk "
                "budget or retention in %" PRIu64 " gap%s, %" PRIu64 " resent\n",
                (double)(cli_now_ns() - t0) / 1e9, s.forwarded, s.gap_records, s.gap_records == 1 ? "" : "s", s.gaps,
                s.gaps == 1 ? "" : "s", s.resent);
out:
    klog_mirror_free(m);
    if (k && (rc = klog_close(k)) < 0 && st == CLI_OK)
        st = cli_fail(ctx, "closing the data directory", rc, NULL);
    klog_conf_free(conf);
    free(rename);
    return st;
}

#endif /* KLOG_HAVE_MIRROR */
