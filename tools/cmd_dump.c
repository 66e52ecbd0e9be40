/*
 * tools/cmd_dump.c - `klog dump FILE...`: print segment, index,
 * checkpoint and leader-epoch files entry by entry, as kafka-dump-log.sh does.  Read-only,
 * no lock: works while another process has the data directory open.
 * Batches are decoded with lib/format; see segfile.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "segfile.h"

static const char dump_help[] =
    "Usage: klog dump [OPTIONS] FILE...\n"
    "\n"
    "Print klog files, read-only and without taking any lock (it works while\n"
    "an application has the data directory open).  The kind of file is taken\n"
    "from its name:\n"
    "\n"
    "  NNNN.log (also .log.swap, .log.cleaned)\n"
    "      batch by batch: position, base and last offset, record count, size,\n"
    "      base and max timestamp, producer id/epoch/base sequence, codec,\n"
    "      attributes, leader epoch, checksum OK or BAD\n"
    "  NNNN.index, NNNN.timeindex\n"
    "      the header, then entry by entry; when the segment NNNN.log is beside\n"
    "      it, each entry is checked against it (it must name a batch start and\n"
    "      that batch's offset)\n"
    "  recovery.ckpt, cleaner.ckpt, topics.meta\n"
    "      their fields and checksum\n"
    "  leader-epoch-checkpoint\n"
    "      the partition's leader epochs, each with its start offset (Kafka's\n"
    "      file), checked as the library reads it\n"
    "\n"
    "  --records              also print every record of a segment (offset,\n"
    "                         timestamp, key, value, headers); bytes that are not\n"
    "                         printable ASCII are shown as \\xNN\n"
    "  --max-batches N        stop each segment after N batches\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0, or 1 when a file cannot be read or shows damage.\n";

enum { O_RECORDS = 256, O_MAXB };

static const struct option dump_opts[] = {
    { "help", no_argument, NULL, 'h' },
    { "records", no_argument, NULL, O_RECORDS },
    { "print-data-log", no_argument, NULL, O_RECORDS },
    { "max-batches", required_argument, NULL, O_MAXB },
    { NULL, 0, NULL, 0 },
};

static const char *codec_name(unsigned c)
{
    static const char *const names[] = { "none", "gzip", "snappy", "lz4", "zstd", "5?", "6?", "7?" };
    return names[c & 7];
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void print_records(const uint8_t *batch, size_t len, const kf_batch_info *bi, kf_codec *codec, int *bad)
{
    const uint8_t *recs;
    size_t rlen;
    int r = kf_batch_records(batch, len, codec, &recs, &rlen);
    if (r < 0) {
        printf("| records not readable: %s\n", klog_strerror(r));
        (*bad)++;
        return;
    }
    kf_iter it;
    kf_iter_init(&it, bi, recs, rlen);
    kf_record_view v;
    while ((r = kf_iter_next(&it, &v)) == 1) {
        printf("| offset: %" PRId64 " timestamp: %" PRId64 " keySize: %d valueSize: %d headerCount: %u key: ", v.offset,
               v.timestamp, (int)v.key_len, (int)v.value_len, v.header_count);
        if (v.key_len < 0)
            fputs("null", stdout);
        else
            cli_escaped(stdout, v.key, (size_t)v.key_len);
        fputs(" value: ", stdout);
        if (v.value_len < 0)
            fputs("null", stdout);
        else
            cli_escaped(stdout, v.value, (size_t)v.value_len);
        if (v.header_count) {
            fputs(" headers: ", stdout);
            size_t hp = 0;
            kf_header h;
            int hr, i = 0;
            while ((hr = kf_header_next(&v, &hp, &h)) == 1) {
                if (i++)
                    fputc(',', stdout);
                cli_escaped(stdout, h.key, (size_t)h.key_len);
                fputc('=', stdout);
                if (h.value_len < 0)
                    fputs("null", stdout);
                else
                    cli_escaped(stdout, h.value, (size_t)h.value_len);
            }
            if (hr < 0) {
                fputs(" [malformed headers]", stdout);
                (*bad)++;
            }
        }
        fputc('\n', stdout);
    }
    if (r < 0) {
        printf("| malformed records: %s\n", klog_strerror(r));
        (*bad)++;
    }
}

static int dump_log(const char *path, bool records, int64_t max_batches)
{
    segrd rd;
    int r = segrd_open(&rd, path);
    if (r < 0)
        return cli_err("dump", "%s: %s", path, strerror(-r));
    kf_codec *codec = NULL;
    if (records && kf_codec_new(&codec) < 0) {
        segrd_close(&rd);
        return cli_err("dump", "out of memory");
    }
    int64_t base = -1;
    if (!kl_segment_name_parse(base_name(path), ".log", &base) && !kl_segment_name_parse(base_name(path), ".log.swap", &base) &&
        !kl_segment_name_parse(base_name(path), ".log.cleaned", &base))
        base = -1;
    printf("Dumping %s\n", path);
    if (base >= 0)
        printf("Starting offset: %" PRId64 "\n", base);
    printf("Size: %" PRIu64 " bytes\n", rd.size);
    uint64_t pos = 0;
    int64_t batches = 0, nrecords = 0;
    int bad = 0, err;
    for (;;) {
        if (max_batches >= 0 && batches >= max_batches) {
            printf("(stopped after %" PRId64 " batches)\n", batches);
            break;
        }
        const uint8_t *b;
        size_t len;
        kf_batch_info bi;
        enum seg_status s = segrd_batch(&rd, pos, &b, &len, &bi, &err);
        if (s == SEG_END)
            break;
        if (s == SEG_INCOMPLETE) {
            printf("position: %" PRIu64 " incomplete batch: %" PRIu64 " bytes to the end of the file "
                   "(a write in progress, or a torn write)\n", pos, rd.size - pos);
            break;
        }
        if (s == SEG_BADHDR && segrd_zero_tail(&rd, pos)) {
            printf("position: %" PRIu64 " zeroed tail: %" PRIu64 " bytes of zeros to the end of the file "
                   "(written ahead of durable appends; klog cuts it at the next open)\n", pos, rd.size - pos);
            break;
        }
        if (s == SEG_BADHDR) {
            printf("position: %" PRIu64 " invalid batch header: %s; cannot read further\n", pos, klog_strerror(err));
            bad++;
            break;
        }
        if (s == SEG_IOERR) {
            cli_err("dump", "%s: read at %" PRIu64 ": %s", path, pos, strerror(-err));
            bad++;
            break;
        }
        bool ok = kf_batch_verify(b, len) == 0;
        if (!ok)
            bad++;
        printf("baseOffset: %" PRId64 " lastOffset: %" PRId64 " count: %d position: %" PRIu64 " size: %zu "
               "baseTimestamp: %" PRId64 " maxTimestamp: %" PRId64 " producerId: %" PRId64 " producerEpoch: %d "
               "baseSequence: %d codec: %s timestampType: %s isTransactional: %s isControl: %s leaderEpoch: %d "
               "magic: %u checksum: 0x%016" PRIx64 " %s\n",
               bi.base_offset, kf_batch_last_offset(&bi), (int)bi.record_count, pos, len, bi.base_timestamp,
               bi.max_timestamp, bi.producer_id, (int)bi.producer_epoch, (int)bi.base_sequence,
               codec_name(bi.attributes & KF_ATTR_CODEC_MASK),
               bi.attributes & KF_ATTR_LOG_APPEND_TIME ? "LogAppendTime" : "CreateTime",
               bi.attributes & KF_ATTR_TRANSACTIONAL ? "true" : "false",
               bi.attributes & KF_ATTR_CONTROL ? "true" : "false", (int)bi.leader_epoch, bi.magic, bi.checksum,
               ok ? "OK" : "BAD");
        if (records) {
            if (ok)
                print_records(b, len, &bi, codec, &bad);
            else
                printf("| records not shown: the checksum does not match\n");
        }
        batches++;
        nrecords += bi.record_count;
        pos += len;
    }
    printf("Batches: %" PRId64 " Records: %" PRId64 " Bytes: %" PRIu64 "%s\n", batches, nrecords, pos,
           bad ? " (damage found)" : "");
    kf_codec_free(codec);
    segrd_close(&rd);
    return bad ? CLI_FAIL : CLI_OK;
}

/* Index dump, with the entries checked against the segment beside it. */
static int dump_index(const char *path, bool time)
{
    ixfile ix;
    int r = ix_load(path, time, &ix);
    if (r < 0)
        return cli_err("dump", "%s: %s", path, strerror(-r));
    int bad = 0;
    printf("Dumping %s\n", path);
    if (!ix.framing_ok) {
        printf("Damaged: %s\n", ix.problem);
        bad++;
    }
    printf("magic: 0x%08x version: %u entrySize: %u baseOffset: %" PRId64 " segmentSize: %" PRIu64
           " nextOffset: %" PRId64 " firstTimestamp: %" PRId64 " maxTimestamp: %" PRId64 " count: %u"
           " proven: %u checksum: 0x%016" PRIx64 " %s\n",
           ix.h.magic, ix.h.version, ix.h.esize, ix.h.base, ix.h.seg_size, ix.h.next_offset, ix.h.first_ts,
           ix.h.max_ts, ix.h.count, ix.h.proven, ix.h.checksum, ix.checksum_ok ? "OK" : "BAD");
    if (ix.framing_ok && !ix.checksum_ok)
        bad++;
    /* The segment beside it, to check the entries against. */
    char logpath[4200];
    size_t pl = strlen(path) - strlen(time ? ".timeindex" : ".index");
    snprintf(logpath, sizeof logpath, "%.*s.log", (int)pl, path);
    segrd rd;
    bool have_log = segrd_open(&rd, logpath) == 0;
    if (have_log && rd.size != ix.h.seg_size)
        printf("note: %s has %" PRIu64 " bytes, the index was written for %" PRIu64
               " (stale: the index is rebuilt when the log is opened)\n",
               logpath, rd.size, ix.h.seg_size);
    for (size_t i = 0; i < ix.n; i++) {
        const kl_tentry *e = &ix.e[i];
        int64_t off = ix.h.base + e->rel;
        if (time)
            printf("timestamp: %" PRId64 " offset: %" PRId64 " position: %u", e->ts, off, e->pos);
        else
            printf("offset: %" PRId64 " position: %u", off, e->pos);
        if (have_log) {
            const uint8_t *b;
            size_t len;
            kf_batch_info bi;
            int err;
            enum seg_status s = segrd_batch(&rd, e->pos, &b, &len, &bi, &err);
            if (s != SEG_OK)
                printf("  MISMATCH: no batch starts at position %u", e->pos), bad++;
            else if (bi.base_offset != off)
                printf("  MISMATCH: the batch at position %u has base offset %" PRId64, e->pos, bi.base_offset),
                    bad++;
        }
        fputc('\n', stdout);
    }
    if (have_log)
        segrd_close(&rd);
    ix_free(&ix);
    return bad ? CLI_FAIL : CLI_OK;
}

static int dump_ckpt(const char *path, bool cleaner)
{
    ckpt c;
    int r = ckpt_load(path, cleaner ? KL_CKPT_MAGIC_CLEANER : KL_CKPT_MAGIC_RECOVERY, &c);
    if (r < 0)
        return cli_err("dump", "%s: %s", path, strerror(-r));
    printf("Dumping %s\n", path);
    if (cleaner)
        printf("magic: 0x%08x version: %u gapLimit: %" PRId64 " cleanPoint: %" PRId64 " %s\n", c.v.magic,
               c.v.version, c.v.a, c.v.b, c.ok ? "OK" : "BAD");
    else
        printf("magic: 0x%08x version: %u recoveryPoint: %" PRId64 " logStartOffset: %" PRId64 " %s\n", c.v.magic,
               c.v.version, c.v.a, c.v.b, c.ok ? "OK" : "BAD");
    return c.ok ? CLI_OK : CLI_FAIL;
}

/* leader-epoch-checkpoint: its entries, parsed by the library's reader. */
static int dump_epochs(const char *path)
{
    char *buf;
    size_t n;
    int r = file_load(path, &buf, &n);
    if (r < 0)
        return cli_err("dump", "%s: %s", path, strerror(-r));
    kl_epoch_entry *e = NULL;
    size_t ne = 0;
    char why[256];
    r = kl_epochs_parse(buf, n, &e, &ne, why, sizeof why);
    free(buf);
    printf("Dumping %s\n", path);
    if (r == -ENOMEM)
        return cli_err("dump", "out of memory");
    if (r < 0) {
        printf("Damaged: %s\n", why);
        return CLI_FAIL;
    }
    printf("version: %d entries: %zu%s\n", KL_EPOCH_VERSION, ne, n == 0 ? " (empty file)" : "");
    for (size_t i = 0; i < ne; i++)
        printf("epoch: %d startOffset: %" PRId64 "\n", (int)e[i].epoch, e[i].start_offset);
    free(e);
    return CLI_OK;
}

/* topics.meta: print it with its checksum checked. */
static int dump_meta(const char *path)
{
    char *buf;
    size_t n, body;
    int r = file_load(path, &buf, &n);
    if (r < 0)
        return cli_err("dump", "%s: %s", path, strerror(-r));
    bool ok = kl_meta_check(buf, n, &body) == 0;
    printf("Dumping %s\n", path);
    fwrite(buf, 1, n, stdout);
    if (n && buf[n - 1] != '\n')
        fputc('\n', stdout);
    printf("checksum: %s\n", ok ? "OK" : "BAD");
    free(buf);
    return ok ? CLI_OK : CLI_FAIL;
}

int cmd_dump(int argc, char **argv)
{
    const char *ctx = "dump";
    bool records = false;
    int64_t max_batches = -1;
    int c;
    optind = 0;
    while ((c = cli_getopt(argc, argv, "h", dump_opts, ctx, ctx)) != -1) {
        switch (c) {
        case 'h': fputs(dump_help, stdout); return CLI_OK;
        case O_RECORDS: records = true; break;
        case O_MAXB:
            if (!cli_i64(optarg, &max_batches) || max_batches < 0)
                return cli_usage(ctx, ctx, "--max-batches: '%s' is not a number", optarg);
            break;
        default: return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage(ctx, ctx, "no file given");
    int rc = CLI_OK;
    for (int i = optind; i < argc; i++) {
        const char *p = argv[i], *b = base_name(p);
        int r;
        if (i > optind)
            fputc('\n', stdout);
        if (ends_with(p, ".log") || ends_with(p, ".log.swap") || ends_with(p, ".log.cleaned"))
            r = dump_log(p, records, max_batches);
        else if (ends_with(p, ".timeindex"))
            r = dump_index(p, true);
        else if (ends_with(p, ".index"))
            r = dump_index(p, false);
        else if (!strcmp(b, KL_CKPT_RECOVERY_NAME))
            r = dump_ckpt(p, false);
        else if (!strcmp(b, KL_CKPT_CLEANER_NAME))
            r = dump_ckpt(p, true);
        else if (!strcmp(b, KL_META_NAME))
            r = dump_meta(p);
        else if (!strcmp(b, KL_EPOCH_NAME))
            r = dump_epochs(p);
        else
            r = cli_usage(ctx, ctx, "%s: not a klog file (.log, .index, .timeindex, recovery.ckpt, "
                                    "cleaner.ckpt, leader-epoch-checkpoint or topics.meta)", p);
        if (r != CLI_OK && (rc == CLI_OK || r == CLI_USAGE))
            rc = r;
        fflush(stdout);
    }
    return rc;
}
