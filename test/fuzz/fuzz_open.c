/*
 * test/fuzz/fuzz_open.c - libFuzzer target over klog_open's recovery: the
 * input is a data directory (segments, indexes, checkpoints, topics.meta,
 * leader-epoch-checkpoint, a group's __consumer_offsets), written to a
 * scratch directory; then klog_open, and everything read back through the
 * public API: every topic described, every partition consumed from its
 * start to its end, every group listed and described, and the instance
 * closed.  Errors anywhere are fine (a damaged directory may be refused,
 * or a partition reported damaged); a crash, a hang or a sanitizer report
 * is a finding.
 *
 * Input: a list of files, each
 *     u8 flags | u8 name length | name | u16 data length (LE) | data
 * where name is "FILE" (in the data directory) or "DIR/FILE" (in a
 * partition directory), letters, digits and "._-" only.  Flag bit 0
 * reseals the file's checksum through the library's encoders (a .index or
 * .timeindex header, a recovery.ckpt or cleaner.ckpt, topics.meta, every
 * batch of a .log), so that the fuzzer gets past the checksums into what
 * they guard.  test/fuzz/fuzz_seeds writes seeds of this form from real
 * data directories that the library made.
 *
 * The scratch directory is KLOG_FUZZ_DIR if set (emptied, left in place),
 * else a directory under /tmp made once per process and removed at exit;
 * it is emptied before every input.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <klog/klog.h>

#include "format/format.h"
#include "storage/layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_open: %s:%d: %s\n", __FILE__, __LINE__, #c);     \
            abort();                                                               \
        }                                                                          \
    } while (0)

#define FO_MAX_FILES 32
#define FO_MAX_POLLS 256 /* polls per partition: a bound, far above what an input holds */

static char fo_dir[256];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

/* At exit: remove the scratch directory if this process made it. */
static void fo_cleanup(void)
{
    if (fo_dir[0]) {
        nftw(fo_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        rmdir(fo_dir);
    }
}

static void fo_setup(void)
{
    if (fo_dir[0]) {
        nftw(fo_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return;
    }
    const char *e = getenv("KLOG_FUZZ_DIR");
    if (e && *e) {
        snprintf(fo_dir, sizeof fo_dir, "%s", e);
        mkdir(fo_dir, 0700);
        nftw(fo_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    } else {
        snprintf(fo_dir, sizeof fo_dir, "/tmp/klog-fuzz-open-XXXXXX");
        CHECK(mkdtemp(fo_dir));
        atexit(fo_cleanup);
    }
}

/* A name is FILE or DIR/FILE of [A-Za-z0-9._-], neither "." nor "..". */
static bool name_ok(const char *s)
{
    int slashes = 0;
    const char *part = s;
    for (const char *p = s;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - part);
            if (n == 0 || (n == 1 && part[0] == '.') || (n == 2 && part[0] == '.' && part[1] == '.'))
                return false;
            if (*p == '\0')
                return true;
            if (++slashes > 1)
                return false;
            part = p + 1;
            continue;
        }
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
}

static bool ends_with(const char *s, const char *sfx)
{
    size_t n = strlen(s), m = strlen(sfx);
    return n >= m && strcmp(s + n - m, sfx) == 0;
}

/* Reseal d[0..*len) for the file called name; may replace *d with a
 * malloc'ed buffer (returned, for the caller to free). */
static uint8_t *reseal(const char *name, uint8_t *d, size_t *len)
{
    if (ends_with(name, ".index") || ends_with(name, ".timeindex")) {
        uint32_t magic = ends_with(name, ".index") ? KL_IX_MAGIC_OFFSET : KL_IX_MAGIC_TIME;
        size_t es = kl_ix_esize(magic);
        if (*len < KL_IX_HDR_SIZE)
            return NULL;
        kl_ix_hdr h;
        (void)kl_ix_decode(d, *len, magic, &h);
        h.magic = magic;
        h.count = (uint32_t)((*len - KL_IX_HDR_SIZE) / es);
        *len = kl_ix_encode(d, &h, d + KL_IX_HDR_SIZE); /* in place: the entries stay */
    } else if (ends_with(name, KL_CKPT_RECOVERY_NAME) || ends_with(name, KL_CKPT_CLEANER_NAME)) {
        uint32_t magic = ends_with(name, KL_CKPT_RECOVERY_NAME) ? KL_CKPT_MAGIC_RECOVERY : KL_CKPT_MAGIC_CLEANER;
        if (*len < KL_CKPT_SIZE)
            return NULL;
        kl_ckpt c;
        (void)kl_ckpt_decode(d, *len, magic, &c);
        kl_ckpt_encode(d, magic, c.a, c.b);
        *len = KL_CKPT_SIZE;
    } else if (strcmp(name, KL_META_NAME) == 0) {
        /* Everything before the first "\nend " (or all of it) as the body. */
        size_t body = *len;
        for (size_t i = 0; i + 5 <= *len; i++)
            if (d[i] == '\n' && !memcmp(d + i + 1, "end ", 4)) {
                body = i + 1;
                break;
            }
        uint8_t *n = malloc(body + 32);
        CHECK(n);
        memcpy(n, d, body);
        *len = kl_meta_seal((char *)n, body, body + 32);
        return n;
    } else if (ends_with(name, ".log")) {
        size_t at = 0;
        kf_batch_info bi;
        ssize_t n;
        while (at < *len && (n = kf_batch_parse(d + at, *len - at, &bi)) > 0) {
            kf_batch_set_sequence(d + at, (size_t)n, bi.base_sequence);
            at += (size_t)n;
        }
    }
    return NULL;
}

static void write_file(const char *name, const uint8_t *d, size_t len)
{
    char path[512];
    const char *slash = strchr(name, '/');
    if (slash) {
        snprintf(path, sizeof path, "%s/%.*s", fo_dir, (int)(slash - name), name);
        mkdir(path, 0700);
    }
    snprintf(path, sizeof path, "%s/%s", fo_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return; /* a directory of the same name, say */
    while (len > 0) {
        ssize_t w = write(fd, d, len);
        if (w <= 0)
            break;
        d += w;
        len -= (size_t)w;
    }
    close(fd);
}

/* Unpack the input into fo_dir.  Returns the files written. */
static int unpack(const uint8_t *data, size_t size)
{
    size_t at = 0;
    int files = 0;
    while (files < FO_MAX_FILES && at + 2 <= size) {
        unsigned flags = data[at], nl = data[at + 1];
        at += 2;
        if (nl == 0 || at + nl + 2 > size)
            break;
        char name[256];
        memcpy(name, data + at, nl);
        name[nl] = '\0';
        at += nl;
        size_t len = (size_t)data[at] | (size_t)data[at + 1] << 8;
        at += 2;
        if (len > size - at)
            len = size - at;
        if (name_ok(name) && strlen(name) == nl) {
            uint8_t *d = malloc(len ? len : 1);
            CHECK(d);
            memcpy(d, data + at, len);
            size_t dl = len;
            uint8_t *other = (flags & 1) ? reseal(name, d, &dl) : NULL;
            write_file(name, other ? other : d, dl);
            free(other);
            free(d);
            files++;
        }
        at += len;
    }
    return files;
}

/* Read partition part of topic from its start to its end. */
static void consume(klog *k, const char *topic, int32_t part, int64_t start, int64_t end)
{
    klog_consumer *c = NULL;
    if (klog_consumer_new(k, NULL, &c, NULL, 0) < 0)
        return;
    if (klog_consumer_assign(c, topic, part, KLOG_OFFSET_BEGINNING) == 0) {
        int64_t last = -1;
        for (int i = 0; i < FO_MAX_POLLS; i++) {
            const klog_message *const *msgs = NULL;
            int n = klog_consumer_poll(c, 0, &msgs);
            if (n <= 0)
                break;
            for (int j = 0; j < n; j++) {
                const klog_message *m = msgs[j];
                /* Offsets a consumer sees only go up, and stay in the log. */
                CHECK(m->offset > last);
                CHECK(m->offset >= start && m->offset < end);
                last = m->offset;
                for (size_t h = 0; h < m->header_count; h++) {
                    const char *hk;
                    size_t hkl;
                    const void *hv;
                    size_t hvl;
                    if (klog_message_header(m, h, &hk, &hkl, &hv, &hvl) < 0)
                        break;
                }
            }
            if (last >= end - 1)
                break;
        }
    }
    klog_consumer_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fo_setup();
    if (unpack(data, size) == 0)
        return 0;
    klog_conf *conf = NULL;
    CHECK(klog_conf_new(&conf) == 0);
    /* posix: io_uring rings per open would dominate the run. */
    CHECK(klog_conf_set(conf, "io.backend", "posix", NULL, 0) == 0);
    /* No background passes: an input must give the same run every time
     * (the seeds' timestamps are old enough for retention to act on). */
    CHECK(klog_conf_set(conf, "log.cleaner.enable", "false", NULL, 0) == 0);
    CHECK(klog_conf_set(conf, "log.retention.check.interval.ms", "1000000000", NULL, 0) == 0);
    klog *k = NULL;
    char err[256];
    int rc = klog_open(&k, fo_dir, conf, err, sizeof err);
    klog_conf_free(conf);
    if (rc < 0) {
        CHECK(k == NULL);
        return 0;
    }
    char **names = NULL;
    size_t nn = 0;
    if (klog_topic_list(k, &names, &nn) == 0) {
        for (size_t i = 0; i < nn; i++) {
            klog_partition_info pi[16];
            for (size_t j = 0; j < 16; j++)
                pi[j].struct_size = sizeof pi[j];
            int np = klog_topic_describe(k, names[i], pi, 16, NULL, 0);
            for (int p = 0; p < np && p < 16; p++) {
                CHECK(pi[p].start_offset <= pi[p].end_offset);
                consume(k, names[i], p, pi[p].start_offset, pi[p].end_offset);
            }
        }
        klog_topic_list_free(names, nn);
    }
    char **groups = NULL;
    size_t ng = 0;
    if (klog_group_list(k, &groups, &ng) == 0) {
        for (size_t i = 0; i < ng; i++) {
            char *json = NULL;
            if (klog_group_describe(k, groups[i], &json) == 0)
                klog_free(json);
        }
        klog_group_list_free(groups, ng);
    }
    klog_close(k);
    return 0;
}
