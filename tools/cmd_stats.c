/*
 * tools/cmd_stats.c - `klog stats`: the instance's statistics.
 *
 * json and prometheus are klog_stats()'s documents, with the consumer
 * groups' committed offsets and lag added (klog_group_info_get): a
 * "groups" member in the JSON object, klog_group_* families in the
 * Prometheus text.  text is a summary from klog_topic_describe,
 * klog_disk_usage and klog_group_info_get.  While another process holds
 * the directory, the stats files it writes (statistics.interval.ms) are
 * shown instead.  Public API only.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char stats_help[] =
    "Usage: klog [-d DIR] stats [--format text|json|prometheus] [OPTIONS]\n"
    "\n"
    "Print the statistics of a data directory.\n"
    "\n"
    "  text        a summary: disk use against the budget; per topic and partition\n"
    "              the start and end offsets, records (end - start, an upper bound\n"
    "              on compacted topics), bytes in segments, segment count, bytes on\n"
    "              disk, clean offset; per consumer group its state, members, and\n"
    "              per partition the committed offset, end offset and lag\n"
    "  json        klog_stats()'s JSON document (instance, partitions with counters\n"
    "              since open) plus \"groups\": committed offsets and lag\n"
    "  prometheus  klog_stats()'s Prometheus text plus klog_group_members,\n"
    "              klog_group_committed_offset and klog_group_lag\n"
    "\n"
    "The budget shown is the one this command opens the directory with (none):\n"
    "disk.budget.bytes is set by the application that opens a directory and is\n"
    "not stored in it.  While an application holds DIR, 'klog stats' shows the\n"
    "DIR/stats.json or DIR/stats.prom that the application writes when its\n"
    "statistics.interval.ms is set (text from stats.json, without groups); if it\n"
    "writes none, the exit status is 3.  The files carry their writer's pid, the\n"
    "time and the interval; a file whose writer is gone, or that is older than\n"
    "three intervals, is shown with a warning that it is stale (klog_close\n"
    "removes the files; klog_open removes those a dead writer left).  klog\n"
    "serve writes them every 5 s unless told otherwise; its live metrics, the\n"
    "server's and the groups' lag included, are on its --metrics address.\n"
    "\n"
    "  --format text|json|prometheus\n"
    "                         output format (default text)\n"
    "  --exclude-internal     text: leave out internal topics (__consumer_offsets)\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    "  -h, --help             this help\n";

enum { O_FORMAT = 256, O_EXCL };

static const struct option stats_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "format", required_argument, NULL, O_FORMAT },
    { "exclude-internal", no_argument, NULL, O_EXCL },
    { NULL, 0, NULL, 0 },
};

enum sfmt { S_TEXT, S_JSON, S_PROM };

typedef struct tstat {
    const char *name;
    int n;
    klog_partition_info *p;
} tstat;

typedef struct gstat {
    const char *name;
    klog_group_info *gi;    /* NULL if unavailable (deleted meanwhile) */
} gstat;

static void prom_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f), fputc(*s, f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static int members_of(const gstat *g) { return g->gi ? (int)g->gi->member_count : 0; }

static size_t offsets_of(const gstat *g) { return g->gi ? g->gi->offset_count : 0; }

static void print_text(const char *dir, const tstat *t, size_t nt, const gstat *g, size_t ng, uint64_t used,
                       uint64_t budget, bool have_disk)
{
    printf("Data directory: %s\n", dir);
    if (have_disk && budget)
        printf("Disk: %" PRIu64 " bytes used of a %" PRIu64 " byte budget (%.1f%%)\n", used, budget,
               100.0 * (double)used / (double)budget);
    else if (have_disk)
        printf("Disk: %" PRIu64 " bytes used (no budget)\n", used);
    printf("Topics: %zu  Groups: %zu\n\n", nt, ng);
    printf("%-24s %9s %12s %12s %12s %14s %8s %14s %12s %s\n", "TOPIC", "PARTITION", "START", "END", "RECORDS",
           "SIZE", "SEGMENTS", "DISK-BYTES", "CLEAN", "ERROR");
    for (size_t i = 0; i < nt; i++)
        for (int p = 0; p < t[i].n; p++) {
            const klog_partition_info *pi = &t[i].p[p];
            printf("%-24s %9d %12" PRId64 " %12" PRId64 " %12" PRId64 " %14" PRIu64 " %8u %14" PRIu64 " %12" PRId64
                   " %s\n",
                   t[i].name, (int)pi->partition, pi->start_offset, pi->end_offset, pi->end_offset - pi->start_offset,
                   pi->size_bytes, pi->segments, pi->disk_bytes, pi->clean_offset,
                   pi->error ? klog_err_name(pi->error) : "-");
        }
    if (!ng)
        return;
    printf("\n%-20s %-20s %8s %-24s %9s %12s %12s %10s\n", "GROUP", "STATE", "MEMBERS", "TOPIC", "PARTITION",
           "COMMITTED", "END", "LAG");
    for (size_t i = 0; i < ng; i++) {
        const char *state = g[i].gi ? g[i].gi->state : "?";
        int nm = members_of(&g[i]);
        if (!offsets_of(&g[i]))
            printf("%-20s %-20s %8d\n", g[i].name, state, nm);
        for (size_t j = 0; j < offsets_of(&g[i]); j++) {
            const klog_group_offset *o = g[i].gi->offsets[j];
            printf("%-20s %-20s %8d %-24s %9d %12" PRId64 " %12" PRId64 " %10" PRId64 "\n", g[i].name, state, nm,
                   o->topic, (int)o->partition, o->committed, o->end, o->lag);
        }
    }
}

static void print_groups_json(const gstat *g, size_t ng)
{
    printf("\"groups\":[");
    for (size_t i = 0; i < ng; i++) {
        int64_t lag = 0;
        printf("%s{\"group\":", i ? "," : "");
        cli_json_str(stdout, g[i].name);
        printf(",\"state\":");
        cli_json_str(stdout, g[i].gi ? g[i].gi->state : NULL);
        printf(",\"members\":%d,\"offsets\":[", members_of(&g[i]));
        for (size_t j = 0; j < offsets_of(&g[i]); j++) {
            const klog_group_offset *o = g[i].gi->offsets[j];
            if (o->lag > 0)
                lag += o->lag;
            printf("%s{\"topic\":", j ? "," : "");
            cli_json_str(stdout, o->topic);
            printf(",\"partition\":%d,\"committed\":%" PRId64 ",\"end\":%" PRId64 ",\"lag\":%" PRId64 "}",
                   (int)o->partition, o->committed, o->end, o->lag);
        }
        printf("],\"lag\":%" PRId64 "}", lag);
    }
    printf("]");
}

static void print_groups_prom(FILE *f, const gstat *g, size_t ng)
{
    fprintf(f, "# HELP klog_group_members Active members of a consumer group.\n# TYPE klog_group_members gauge\n");
    for (size_t i = 0; i < ng; i++) {
        fputs("klog_group_members{group=\"", f);
        prom_label(f, g[i].name);
        fprintf(f, "\"} %d\n", members_of(&g[i]));
    }
    static const char *const gm[] = { "klog_group_committed_offset", "klog_group_lag" };
    static const char *const gh[] = { "The group's committed offset.",
                                      "Records between the group's committed offset and the partition's end." };
    for (int w = 0; w < 2; w++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", gm[w], gh[w], gm[w]);
        for (size_t i = 0; i < ng; i++) {
            for (size_t j = 0; j < offsets_of(&g[i]); j++) {
                const klog_group_offset *o = g[i].gi->offsets[j];
                fprintf(f, "%s{group=\"", gm[w]);
                prom_label(f, g[i].name);
                fputs("\",topic=\"", f);
                prom_label(f, o->topic);
                fprintf(f, "\",partition=\"%d\"} %" PRId64 "\n", (int)o->partition, w ? o->lag : o->committed);
            }
        }
    }
}

/* The same under kafka_exporter's names (danielqsj/kafka_exporter), so
 * that Kafka's Grafana dashboards read klog serve's /metrics. */
static void print_exporter_prom(FILE *f, const gstat *g, size_t ng)
{
    fprintf(f, "# HELP kafka_consumergroup_members Amount of members in a consumer group\n"
               "# TYPE kafka_consumergroup_members gauge\n");
    for (size_t i = 0; i < ng; i++) {
        fputs("kafka_consumergroup_members{consumergroup=\"", f);
        prom_label(f, g[i].name);
        fprintf(f, "\"} %d\n", members_of(&g[i]));
    }
    static const char *const gm[] = { "kafka_consumergroup_current_offset", "kafka_consumergroup_lag" };
    static const char *const gh[] = { "Current Offset of a ConsumerGroup at Topic/Partition",
                                      "Current Approximate Lag of a ConsumerGroup at Topic/Partition" };
    for (int w = 0; w < 2; w++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", gm[w], gh[w], gm[w]);
        for (size_t i = 0; i < ng; i++)
            for (size_t j = 0; j < offsets_of(&g[i]); j++) {
                const klog_group_offset *o = g[i].gi->offsets[j];
                fprintf(f, "%s{consumergroup=\"", gm[w]);
                prom_label(f, g[i].name);
                fputs("\",partition=\"", f);
                fprintf(f, "%d\",topic=\"", (int)o->partition);
                prom_label(f, o->topic);
                fprintf(f, "\"} %" PRId64 "\n", w ? o->lag : o->committed);
            }
    }
}

int cli_prom_groups(FILE *f, klog *k, bool exporter_names)
{
    char **names = NULL;
    size_t n = 0;
    int rc = klog_group_list(k, &names, &n);
    if (rc < 0)
        return rc;
    gstat *g = calloc(n ? n : 1, sizeof *g);
    if (!g) {
        klog_group_list_free(names, n);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        g[i].name = names[i];
        if (klog_group_info_get(k, names[i], &g[i].gi) < 0)
            g[i].gi = NULL;
    }
    print_groups_prom(f, g, n);
    if (exporter_names)
        print_exporter_prom(f, g, n);
    for (size_t i = 0; i < n; i++)
        klog_group_info_free(g[i].gi);
    free(g);
    klog_group_list_free(names, n);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* The value of the Prometheus sample NAME (at the start of a line), or NULL. */
static const char *prom_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (!strncmp(l, name, n) && l[n] == ' ')
            return l + n + 1;
    return NULL;
}

/* The stamp klog writes into its statistics files (lib/topic/stats.c):
 * stats.json's "file" member, stats.prom's klog_stats_file_* gauges.
 * Returns false when the file has none (written by a klog before 0.2). */
static bool file_stamp(const char *text, bool prom, long long *pid, long long *written_ms, long long *interval_ms)
{
    if (!prom) {
        cj *doc = cj_parse(text);
        const cj *f = doc ? cj_get(doc, "file") : NULL;
        bool ok = f != NULL;
        if (ok) {
            *pid = cj_int(f, "writer_pid", 0);
            *written_ms = cj_int(f, "written_ms", 0);
            *interval_ms = cj_int(f, "interval_ms", 0);
        }
        cj_free(doc);
        return ok && *pid > 0;
    }
    const char *p = prom_value(text, "klog_stats_file_writer_pid");
    const char *t = prom_value(text, "klog_stats_file_timestamp_seconds");
    const char *i = prom_value(text, "klog_stats_file_interval_seconds");
    if (!p || !t || !i)
        return false;
    double ts = strtod(t, NULL), iv = strtod(i, NULL);
    *pid = strtoll(p, NULL, 10);
    *written_ms = (long long)(ts * 1000.0);
    *interval_ms = (long long)(iv * 1000.0 + 0.5);
    return *pid > 0;
}

/* The directory is held by another process: show the stats file it writes. */
static int from_files(const char *ctx, const char *dir, enum sfmt fmt, bool exclude_internal)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, fmt == S_PROM ? "stats.prom" : "stats.json");
    struct stat st;
    char *text = stat(path, &st) == 0 ? slurp(path) : NULL;
    if (!text) {
        fprintf(stderr, "klog: %s: %s: data directory is locked by another process, which writes no %s "
                "(set statistics.interval.ms in its configuration)\n", ctx, dir, path);
        return CLI_LOCKED;
    }
    long long pid, written_ms, interval_ms;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long now_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    if (!file_stamp(text, fmt == S_PROM, &pid, &written_ms, &interval_ms)) {
        fprintf(stderr, "klog stats: %s is open in another process: showing its %s of %lld s ago\n", dir, path,
                (long long)(time(NULL) - st.st_mtime));
    } else if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
        fprintf(stderr, "klog stats: warning: %s is stale: its writer, pid %lld, is gone (written %.1f s ago)\n",
                path, pid, (double)(now_ms - written_ms) / 1000.0);
    } else if (now_ms - written_ms > 3 * interval_ms + 1000) {
        fprintf(stderr, "klog stats: warning: %s is stale: written %.1f s ago by pid %lld, which rewrites it "
                "every %lld ms\n", path, (double)(now_ms - written_ms) / 1000.0, pid, interval_ms);
    } else {
        fprintf(stderr, "klog stats: %s is open in another process (pid %lld): showing its %s of %.1f s ago\n",
                dir, pid, path, (double)(now_ms - written_ms) / 1000.0);
    }
    if (fmt != S_TEXT) {
        fputs(text, stdout);
        free(text);
        return CLI_OK;
    }
    cj *doc = cj_parse(text);
    free(text);
    if (!doc)
        return cli_err(ctx, "%s: not a JSON document", path);
    const cj *topics = cj_get(doc, "topics"), *inst = cj_get(doc, "instance");
    size_t nt = 0;
    for (const cj *x = topics ? topics->child : NULL; x; x = x->next)
        nt++;
    tstat *t = calloc(nt ? nt : 1, sizeof *t);
    size_t k = 0;
    for (const cj *x = topics ? topics->child : NULL; t && x; x = x->next) {
        const char *name = cj_str(x, "topic");
        if (!name || (exclude_internal && !strncmp(name, "__", 2)))
            continue;
        const cj *parts = cj_get(x, "partitions");
        int np = 0;
        for (const cj *y = parts ? parts->child : NULL; y; y = y->next)
            np++;
        t[k].name = name;
        t[k].p = calloc(np ? (size_t)np : 1, sizeof *t[k].p);
        int i = 0;
        for (const cj *y = parts ? parts->child : NULL; t[k].p && y; y = y->next, i++) {
            klog_partition_info *pi = &t[k].p[i];
            pi->partition = (int32_t)cj_int(y, "partition", i);
            pi->start_offset = cj_int(y, "start_offset", -1);
            pi->end_offset = cj_int(y, "end_offset", -1);
            pi->durable_offset = cj_int(y, "durable_offset", -1);
            pi->clean_offset = cj_int(y, "clean_offset", -1);
            pi->size_bytes = (uint64_t)cj_int(y, "size_bytes", 0);
            pi->disk_bytes = (uint64_t)cj_int(y, "disk_bytes", 0);
            pi->segments = (uint32_t)cj_int(y, "segments", 0);
            pi->error = (int32_t)cj_int(y, "error", 0);
        }
        t[k].n = t[k].p ? np : 0;
        k++;
    }
    print_text(dir, t, k, NULL, 0, (uint64_t)cj_int(inst, "disk_used_bytes", 0),
               (uint64_t)cj_int(inst, "disk_budget_bytes", 0), inst != NULL);
    for (size_t i = 0; t && i < k; i++)
        free(t[i].p);
    free(t);
    cj_free(doc);
    return CLI_OK;
}

int cmd_stats(int argc, char **argv)
{
    const char *ctx = "stats", *dir = NULL;
    enum sfmt fmt = S_TEXT;
    bool exclude_internal = false;
    int c;
    optind = 0;
    while ((c = cli_getopt(argc, argv, "d:h", stats_opts, ctx, ctx)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h': fputs(stats_help, stdout); return CLI_OK;
        case O_FORMAT:
            if (!strcmp(optarg, "text"))
                fmt = S_TEXT;
            else if (!strcmp(optarg, "json"))
                fmt = S_JSON;
            else if (!strcmp(optarg, "prometheus"))
                fmt = S_PROM;
            else
                return cli_usage(ctx, ctx, "--format must be text, json or prometheus, not '%s'", optarg);
            break;
        case O_EXCL: exclude_internal = true; break;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage(ctx, ctx, "unexpected argument '%s'", argv[optind]);
    if ((dir = cli_dir(ctx, ctx, dir)) == NULL)
        return CLI_USAGE;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_err(ctx, "%s: %s", dir, stat(dir, &st) != 0 ? strerror(errno) : "not a directory");
    klog *k = NULL;
    char err[512] = "";
    int r = klog_open(&k, dir, NULL, err, sizeof err);
    char sf[4200];
    snprintf(sf, sizeof sf, "%s/%s", dir, fmt == S_PROM ? "stats.prom" : "stats.json");
    if (r == KLOG_ELOCKED && access(sf, F_OK) == 0)
        return from_files(ctx, dir, fmt, exclude_internal); /* the holder's own, with its clients */
    if (r == KLOG_ELOCKED) {
        /* no statistics file: the logs' figures, read beside the holder */
        klog_conf *ro = NULL;
        if ((r = klog_conf_new(&ro)) == 0 && (r = klog_conf_set(ro, "read.only", "true", err, sizeof err)) == 0)
            r = klog_open(&k, dir, ro, err, sizeof err);
        klog_conf_free(ro);
        if (r == 0)
            fprintf(stderr, "klog: %s: %s is held by another process, which writes no %s: its logs read "
                    "read-only\n", ctx, dir, sf);
    }
    if (r < 0)
        return cli_fail(ctx, dir, r, err);

    int rc = CLI_OK;
    char **names = NULL, **gnames = NULL, *doc = NULL;
    size_t nnames = 0, ngnames = 0, nt = 0;
    tstat *t = NULL;
    gstat *g = NULL;
    if ((r = klog_group_list(k, &gnames, &ngnames)) < 0 ||
        (fmt == S_TEXT && (r = klog_topic_list(k, &names, &nnames)) < 0) ||
        (fmt != S_TEXT && (r = klog_stats(k, fmt == S_JSON ? KLOG_STATS_JSON : KLOG_STATS_PROMETHEUS, &doc)) < 0)) {
        rc = cli_fail(ctx, NULL, r, NULL);
        goto out;
    }
    t = calloc(nnames ? nnames : 1, sizeof *t);
    g = calloc(ngnames ? ngnames : 1, sizeof *g);
    if (!t || !g) {
        rc = cli_err(ctx, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nnames; i++) {
        if (exclude_internal && !strncmp(names[i], "__", 2))
            continue;
        int n = klog_topic_describe(k, names[i], NULL, 0, NULL, 0);
        if (n < 0)
            continue; /* deleted meanwhile */
        tstat *ts = &t[nt];
        ts->name = names[i];
        ts->p = calloc((size_t)n ? (size_t)n : 1, sizeof *ts->p);
        if (!ts->p) {
            rc = cli_err(ctx, "out of memory");
            goto out;
        }
        ts->p[0].struct_size = sizeof *ts->p;
        n = klog_topic_describe(k, names[i], ts->p, (size_t)n, NULL, 0);
        if (n < 0) {
            free(ts->p);
            continue;
        }
        ts->n = n;
        nt++;
    }
    for (size_t i = 0; i < ngnames; i++) {
        g[i].name = gnames[i];
        if (klog_group_info_get(k, gnames[i], &g[i].gi) < 0)
            g[i].gi = NULL;
    }
    if (fmt == S_TEXT) {
        uint64_t used = 0, budget = 0;
        klog_disk_usage(k, &used, &budget);
        print_text(dir, t, nt, g, ngnames, used, budget, true);
    } else if (fmt == S_JSON) {
        /* klog_stats's object, with a "groups" member added at its end */
        size_t n = strlen(doc);
        while (n > 0 && (doc[n - 1] == '\n' || doc[n - 1] == ' '))
            n--;
        if (n > 0 && doc[n - 1] == '}') {
            fwrite(doc, 1, n - 1, stdout);
            fputc(',', stdout);
            print_groups_json(g, ngnames);
            fputs("}\n", stdout);
        } else {
            fputs(doc, stdout);
        }
    } else {
        fputs(doc, stdout);
        print_groups_prom(stdout, g, ngnames);
    }
out:
    if (t)
        for (size_t i = 0; i < nt; i++)
            free(t[i].p);
    if (g)
        for (size_t i = 0; i < ngnames; i++)
            klog_group_info_free(g[i].gi);
    free(t);
    free(g);
    klog_free(doc);
    klog_topic_list_free(names, nnames);
    klog_group_list_free(gnames, ngnames);
    int cr = klog_close(k);
    if (cr < 0 && rc == CLI_OK)
        rc = cli_fail(ctx, dir, cr, NULL);
    return rc;
}
