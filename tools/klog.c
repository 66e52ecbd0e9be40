/*
 * tools/klog.c - the klog command-line tool: Kafka-shaped subcommands over
 * a klog data directory.  This file holds main() and the top-level help;
 * each subcommand lives in its own cmd_*.c.  man klog(1) is the manual.
 */
#include <stdlib.h>
#include <string.h>

#include "remote.h"

static const char usage_text[] =
    "Usage: klog [-d DIR | --bootstrap-server HOST:PORT] COMMAND [ARGS...]\n"
    "\n"
    "Administer and use a klog data directory from the shell.\n"
    "\n"
    "Commands:\n"
    "  topics create|list|describe|delete|alter   topic administration\n"
    "  produce TOPIC            send lines of stdin as records\n"
    "  consume TOPIC            print records (optionally as a consumer group member)\n"
    "  groups list|describe|reset|delete          consumer group administration\n"
    "  delete-records TOPIC     delete the records below an offset (DeleteRecords)\n"
    "  dump FILE...             print segment, index and checkpoint files (read-only)\n"
    "  verify DIR               check every segment and index (read-only)\n"
    "  perf produce|consume     throughput and latency tests\n"
    "  stats                    sizes, disk use and group lag\n"
    "  serve                    serve DIR to Kafka clients (the Kafka protocol)\n"
    "  mirror --to|--from BOOTSTRAP   store and forward to or from a Kafka cluster\n"
    "  promote                  make a replicated node (serve --peers) the leader\n"
    "  users add|delete|list    SASL users of klog serve (SCRAM credentials)\n"
    "  acls add|list|remove     ACLs klog serve enforces\n"
    "\n"
    "Options:\n"
    "  -d, --dir DIR   data directory (default: $KLOG_DIR); also accepted after COMMAND\n"
    "  --bootstrap-server HOST:PORT\n"
    "                  produce, consume, topics, groups: talk to a Kafka server\n"
    "                  (klog serve) instead of opening DIR; they also do while\n"
    "                  klog serve holds DIR (remote mode)\n"
    "  --command-config FILE\n"
    "                  client properties for remote mode (TLS, SASL)\n"
    "  -h, --help      this help; 'klog COMMAND --help' for a command's own\n"
    "  -V, --version   print the library version (and the Kafka client's, for\n"
    "                  remote mode)\n"
    "\n"
    "Exit status: 0 success, 1 failure or damage found, 2 usage error,\n"
    "3 data directory locked by another process (dump and verify never need the lock).\n"
    "See klog(1).\n";

int main(int argc, char **argv)
{
    int i = 1;
    /* Options before the command: -d DIR, --dir DIR, --dir=DIR, -h, -V. */
    while (i < argc && argv[i][0] == '-') {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            const char *v;
            klog_version(&v);
            const char *rv = remote_client_version();
            printf("klog %s (remote mode: %s)\n", v, rv ? rv : "not built");
            return CLI_OK;
        }
        if (!strcmp(a, "-d") || !strcmp(a, "--dir")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "klog: option %s needs a value (see 'klog --help')\n", a);
                return CLI_USAGE;
            }
            cli_global_dir = argv[i + 1];
            i += 2;
            continue;
        }
        if (!strcmp(a, "--bootstrap-server") || !strcmp(a, "--command-config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "klog: option %s needs a value (see 'klog --help')\n", a);
                return CLI_USAGE;
            }
            cli_remote_option(a[2] == 'b' ? O_BOOTSTRAP : O_CMDCONFIG, argv[i + 1]);
            i += 2;
            continue;
        }
        if (!strncmp(a, "--bootstrap-server=", 19)) {
            cli_remote_option(O_BOOTSTRAP, a + 19);
            i++;
            continue;
        }
        if (!strncmp(a, "--command-config=", 17)) {
            cli_remote_option(O_CMDCONFIG, a + 17);
            i++;
            continue;
        }
        if (!strncmp(a, "--dir=", 6)) {
            cli_global_dir = a + 6;
            i++;
            continue;
        }
        if (!strncmp(a, "-d", 2)) {
            cli_global_dir = a + 2;
            i++;
            continue;
        }
        fprintf(stderr, "klog: unknown option %s (see 'klog --help')\n", a);
        return CLI_USAGE;
    }
    if (i >= argc) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        { "topics", cmd_topics }, { "produce", cmd_produce }, { "consume", cmd_consume },
        { "groups", cmd_groups }, { "dump", cmd_dump },
        { "delete-records", cmd_delete_records },       { "verify", cmd_verify },
        { "perf", cmd_perf },     { "stats", cmd_stats },       { "serve", cmd_serve },
        { "mirror", cmd_mirror },
        { "promote", cmd_promote },
        { "users", cmd_users },   { "acls", cmd_acls },
    };
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++)
        if (!strcmp(argv[i], cmds[c].name))
            return cmds[c].fn(argc - i, argv + i);
    if (!strcmp(argv[i], "help")) {
        fputs(usage_text, stdout);
        return CLI_OK;
    }
    fprintf(stderr, "klog: unknown command '%s' (see 'klog --help')\n", argv[i]);
    return CLI_USAGE;
}
