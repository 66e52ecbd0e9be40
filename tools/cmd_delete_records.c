/*
 * tools/cmd_delete_records.c - `klog delete-records TOPIC`: Kafka's
 * kafka-delete-records.sh (DeleteRecords) for a klog data directory,
 * through klog_topic_delete_records; in remote mode through librdkafka's
 * DeleteRecords (remote_admin.c).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

static const char delete_records_help[] =
    "Usage: klog [-d DIR] delete-records TOPIC [--partition P] --offset N|latest\n"
    "\n"
    "Make every record below offset N of partition P (or of every partition)\n"
    "unreadable and free the segments that hold only such records, as Kafka's\n"
    "kafka-delete-records: the partition's start (low watermark) moves to N.\n"
    "Prints each partition's new low watermark.\n"
    "\n"
    "  --topic TOPIC          the topic (instead of the positional argument)\n"
    "  --partition P          only partition P (default: every partition)\n"
    "  --offset N|latest      the new start: N (at most the partition's end), or\n"
    "                         latest (-1): the end, deleting every record\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    CLI_REMOTE_HELP
    "  -h, --help             this help\n"
    "\n"
    "Opens DIR as its writer.  While 'klog serve' holds DIR, asks it over the\n"
    "Kafka protocol (remote mode); while another process holds it, exits 3.\n";

enum { O_TOPIC = 256, O_PARTITION, O_OFFSET };

static const struct option dr_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "topic", required_argument, NULL, O_TOPIC },
    { "partition", required_argument, NULL, O_PARTITION },
    { "offset", required_argument, NULL, O_OFFSET },
    CLI_REMOTE_OPTIONS,
    { NULL, 0, NULL, 0 },
};

void delete_records_print(const char *topic, int32_t partition, int64_t low_watermark)
{
    printf("partition: %s-%d\tlow_watermark: %" PRId64 "\n", topic, (int)partition, low_watermark);
}

int cmd_delete_records(int argc, char **argv)
{
    const char *ctx = "delete-records";
    const char *dir = NULL, *topic = NULL;
    int32_t partition = -1;
    int64_t offset = 0;
    bool have_offset = false;
    int c;
    optind = 0;
    while ((c = cli_getopt(argc, argv, "d:h", dr_opts, ctx, ctx)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h': fputs(delete_records_help, stdout); return CLI_OK;
        case O_TOPIC: topic = optarg; break;
        case O_BOOTSTRAP:
        case O_CMDCONFIG: cli_remote_option(c, optarg); break;
        case O_PARTITION: {
            int v;
            if (!cli_int(optarg, 0, INT32_MAX, &v))
                return cli_usage(ctx, ctx, "--partition: '%s' is not a partition number", optarg);
            partition = v;
            break;
        }
        case O_OFFSET:
            have_offset = true;
            if (!strcmp(optarg, "latest"))
                offset = KLOG_OFFSET_END;
            else if (!cli_i64(optarg, &offset) || offset < -1)
                return cli_usage(ctx, ctx, "--offset: '%s' is not an offset or latest", optarg);
            break;
        default: return CLI_USAGE;
        }
    }
    int rc = cli_topic_operand(ctx, argc, argv, optind, &topic);
    if (rc != CLI_OK)
        return rc;
    if (!have_offset)
        return cli_usage(ctx, ctx, "no offset given: --offset N or --offset latest");
    klog *k = NULL;
    cli_remote *rem = NULL;
    rc = cli_target(ctx, ctx, dir, false, NULL, &k, &rem);
    if (rc != CLI_OK)
        return rc;
    if (rem) {
        rc = remote_delete_records(rem, topic, partition, offset);
        cli_remote_free(rem);
        return rc;
    }
    int np = 0;
    if ((rc = cli_check_topic(ctx, k, topic, partition, &np)) == CLI_OK) {
        for (int32_t p = partition >= 0 ? partition : 0; p < (partition >= 0 ? partition + 1 : np); p++) {
            int64_t low = -1;
            int r = klog_topic_delete_records(k, topic, p, offset, &low);
            if (r < 0) {
                char what[300];
                snprintf(what, sizeof what, "%s/%d", topic, (int)p);
                rc = cli_fail(ctx, what, r, r == KLOG_EOFFSET ? "the offset is past the partition's end" : NULL);
                break;
            }
            delete_records_print(topic, p, low);
        }
    }
    int cr = klog_close(k);
    if (cr < 0 && rc == CLI_OK)
        rc = cli_fail(ctx, "closing the data directory", cr, NULL);
    return rc;
}
