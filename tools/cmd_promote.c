/*
 * tools/cmd_promote.c - `klog promote`: make a replicated node (klog serve
 * --peers) the leader of its cluster, in new epochs that fence the old
 * leader.  Public API only (klog/replication.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <klog/conf.h>
#include <klog/replication.h>

#include "cli.h"
#include "remote.h"

static const char promote_help[] =
    "Usage: klog promote --bootstrap-server HOST:PORT [--unclean] [--timeout-ms MS]\n"
    "                    [--command-config FILE] [-X KEY=VALUE]...\n"
    "\n"
    "Make the replicated node at HOST:PORT (klog serve --node-id N --peers ...)\n"
    "the leader of every partition and the cluster's controller, in new epochs:\n"
    "the other nodes follow it as soon as it reaches them, and an old leader that\n"
    "comes back becomes a follower and gives up what only it had written.\n"
    "It prints, per partition, the offset the node leads from (its log's end)\n"
    "and, after an unclean promote, what is lost: the old leader's records from\n"
    "there on, of which those below the high watermark the node last knew were\n"
    "committed (acknowledged acks=all writes among them).\n"
    "\n"
    "No acknowledged (acks=all) record is lost when the node is an in-sync\n"
    "replica of every partition and the old leader is down, or cut off from every\n"
    "other node; the node refuses otherwise (exit 1), unless --unclean.\n"
    "\n"
    "  --bootstrap-server HOST:PORT   the node to promote (tcp://HOST:PORT,\n"
    "                                 tls://HOST:PORT, unix:///PATH)\n"
    "  --command-config FILE  client properties (key=value lines), as the other\n"
    "                         remote commands take: security.protocol=SSL (or\n"
    "                         SASL_SSL) dials HOST:PORT over TLS with ssl.ca.location,\n"
    "                         ssl.certificate.location, ssl.key.location,\n"
    "                         ssl.endpoint.identification.algorithm; sasl.mechanism=PLAIN\n"
    "                         with sasl.username, sasl.password; others are ignored\n"
    "  -X KEY=VALUE           one such property (after the file's)\n"
    "  --unclean              promote even a node that is not in sync: records\n"
    "                         only the others held are lost\n"
    "  --timeout-ms MS        for the connection and the answer (default 10000)\n"
    "  -h, --help             this help\n";

enum { O_BOOT = 300, O_UNCLEAN, O_TIMEOUT };

/* Client properties into the library's conf: what promote uses of them. */
typedef struct prop_arg {
    const char *ctx;
    klog_conf *conf;
    bool tls;
} prop_arg;

static int prop_set(void *arg, const char *key, const char *value)
{
    prop_arg *a = arg;
    const char *k = NULL;
    if (!strcmp(key, "security.protocol")) {
        if (!strcasecmp(value, "ssl") || !strcasecmp(value, "sasl_ssl"))
            a->tls = true;
        else if (strcasecmp(value, "plaintext") && strcasecmp(value, "sasl_plaintext"))
            return cli_err(a->ctx, "security.protocol=%s: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", value);
        return CLI_OK;
    }
    if (!strcmp(key, "sasl.mechanism") || !strcmp(key, "sasl.mechanisms")) {
        if (strcasecmp(value, "PLAIN"))
            return cli_err(a->ctx, "%s=%s: promote authenticates with PLAIN only", key, value);
        k = "replication.sasl.mechanism";
        value = "PLAIN";
    } else if (!strcmp(key, "sasl.username")) {
        k = "replication.sasl.username";
    } else if (!strcmp(key, "sasl.password")) {
        k = "replication.sasl.password";
    } else if (!strncmp(key, "ssl.", 4)) {
        k = key;
    } else {
        return CLI_OK; /* a client property promote has no use for */
    }
    char err[512] = "";
    int rc = klog_conf_set(a->conf, k, value, err, sizeof err);
    if (rc < 0)
        return cli_err(a->ctx, "%s: %s", key, err[0] ? err : klog_strerror(rc));
    return CLI_OK;
}

static const struct option promote_opts[] = {
    { "help", no_argument, NULL, 'h' },
    { "bootstrap-server", required_argument, NULL, O_BOOT },
    { "unclean", no_argument, NULL, O_UNCLEAN },
    { "timeout-ms", required_argument, NULL, O_TIMEOUT },
    { "command-config", required_argument, NULL, O_CMDCONFIG },
    { NULL, 0, NULL, 0 },
};

extern const char *cli_global_bootstrap;

typedef struct promote_out {
    int n, unclean;
    int64_t committed_lost;       /* offsets below an old HW the node lacks */
} promote_out;

/* One partition the node now leads: where from, and, unclean, what is lost. */
static void promoted(void *opaque, const char *topic, int32_t partition, int32_t old_leader, int64_t end,
                     int64_t old_hw, int unclean)
{
    promote_out *o = opaque;
    o->n++;
    char old[32] = "none", hw[32] = "unknown";
    if (old_leader >= 0)
        snprintf(old, sizeof old, "%" PRId32, old_leader);
    if (old_hw >= 0)
        snprintf(hw, sizeof hw, "%" PRId64, old_hw);
    if (!unclean) {
        printf("%s\tPartition: %" PRId32 "\tLeads from: %" PRId64 "\tOld leader: %s\tOld HW: %s\tLost: none\n",
               topic, partition, end, old, hw);
        return;
    }
    o->unclean++;
    if (old_hw > end) {
        o->committed_lost += old_hw - end;
        printf("%s\tPartition: %" PRId32 "\tLeads from: %" PRId64 "\tOld leader: %s\tOld HW: %s\t"
               "Lost: committed offsets %" PRId64 "-%" PRId64 " (%" PRId64 ") and whatever leader %s wrote after\n",
               topic, partition, end, old, hw, end, old_hw - 1, old_hw - end, old);
    } else {
        printf("%s\tPartition: %" PRId32 "\tLeads from: %" PRId64 "\tOld leader: %s\tOld HW: %s\t"
               "Lost: whatever leader %s held from offset %" PRId64 " on (no commit above it known here)\n",
               topic, partition, end, old, hw, old, end);
    }
}

int cmd_promote(int argc, char **argv)
{
    const char *ctx = "promote", *url = cli_global_bootstrap;
    unsigned flags = 0;
    int64_t timeout = 10000;
    cli_props props = { .n = 0 };
    int c, rc;
    while ((c = cli_getopt(argc, argv, "hX:", promote_opts, ctx, promote_help)) != -1) {
        switch (c) {
        case 'h': fputs(promote_help, stdout); return CLI_OK;
        case 'X':
            if ((rc = cli_props_add(ctx, &props, optarg)) != CLI_OK)
                return rc;
            break;
        case O_CMDCONFIG: cli_remote_option(c, optarg); break;
        case O_BOOT: url = optarg; break;
        case O_UNCLEAN: flags |= KLOG_PROMOTE_UNCLEAN; break;
        case O_TIMEOUT:
            if (!cli_i64(optarg, &timeout) || timeout < 1 || timeout > 3600000)
                return cli_usage(ctx, "promote", "--timeout-ms: a number of milliseconds, 1 to 3600000");
            break;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage(ctx, "promote", "unexpected argument '%s'", argv[optind]);
    if (!url)
        return cli_usage(ctx, "promote", "--bootstrap-server HOST:PORT names the node to promote");
    if (strchr(url, ','))
        return cli_usage(ctx, "promote", "one node only: --bootstrap-server HOST:PORT");
    klog_conf *conf = NULL;
    if ((rc = klog_conf_new(&conf)) < 0)
        return cli_fail(ctx, "promoting", rc, NULL);
    prop_arg pa = { ctx, conf, !strncmp(url, "tls://", 6) };
    rc = CLI_OK;
    if (cli_global_command_config)
        rc = cli_props_file(ctx, cli_global_command_config, prop_set, &pa);
    for (int i = 0; rc == CLI_OK && i < props.n; i++) {
        const char *kv = props.kv[i], *eq = strchr(kv, '=');
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
        rc = prop_set(&pa, key, eq + 1);
    }
    if (rc != CLI_OK) {
        klog_conf_free(conf);
        return rc;
    }
    /* security.protocol=SSL: HOST:PORT is a TLS listener */
    char u[600];
    snprintf(u, sizeof u, "%s%s", pa.tls && !strstr(url, "://") ? "tls://" : "", url);
    char eb[512] = "";
    promote_out o = { 0 };
    rc = klog_replication_promote_node_report(u, conf, flags, (int)timeout, promoted, &o, eb, sizeof eb);
    klog_conf_free(conf);
    if (rc < 0)
        return cli_fail(ctx, "promoting", rc, eb);
    printf("klog promote: %s leads", url);
    if (o.unclean)
        printf(" (unclean: in %d partition%s the old leader's records above the offset it leads from are lost,"
               " %" PRId64 " of them known committed)",
               o.unclean, o.unclean == 1 ? "" : "s", o.committed_lost);
    printf("\n");
    return CLI_OK;
}
