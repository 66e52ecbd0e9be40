/*
 * test/race/tick_drop_head.c - regression (issue 19): ks_log_tick read the
 * segment list (ks__active: segs[nsegs - 1]) holding append_mu only, while
 * drop_head (retention, DeleteRecords, the disk budget's make_room) moved
 * the list under seg_mu: a data race.  Now the active segment is a field
 * of its own, changed under both locks.
 *
 * A plain program, not a Criterion test: Criterion's runner does not start
 * under ThreadSanitizer, and this is meant to run under it (test/race/README),
 * where the old code fails (TSan reports the race and exits 66).  In every
 * build it checks what the threads did: every append landed at the offset
 * after the one before, the start only moved forward, and the log reads back
 * from its start to its end.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <klog/error.h>

#include "format/format.h"
#include "io/io.h"
#include "storage/storage.h"

#define APPENDS 1000

static ks_log *log_;
static atomic_bool done;
static int failures;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "tick_drop_head: " __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                                             \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

/* One record of 200 bytes in a batch of its own. */
static size_t build(uint8_t *buf, size_t cap, int64_t i)
{
    char key[32];
    uint8_t val[200];
    snprintf(key, sizeof key, "k%lld", (long long)i);
    memset(val, (int)(i & 0xff), sizeof val);
    kf_record r = { .key = key, .key_len = (int32_t)strlen(key), .value = val, .value_len = sizeof val,
                    .timestamp = 1700000000000 + i };
    kf_builder b;
    kf_builder_init(&b, buf, cap, KF_BATCH_MAX);
    kf_batch_meta m = { .producer_id = -1, .producer_epoch = -1, .base_sequence = -1, .codec = KF_CODEC_NONE };
    const uint8_t *out = NULL;
    size_t len = 0;
    if (kf_builder_add(&b, &r) != 0 || kf_builder_finish(&b, &m, NULL, &out, &len) != 0)
        return 0;
    if (out != buf)
        memmove(buf, out, len);
    return len;
}

static void *appender(void *arg)
{
    (void)arg;
    uint8_t buf[1024];
    for (int64_t i = 0; i < APPENDS; i++) {
        ks_batch kb = { .batch = buf, .len = build(buf, sizeof buf, i) };
        int rc = ks_log_append(log_, &kb, 1, 0);
        if (rc == 0)
            rc = kb.result;
        if (rc != 0 || kb.base_offset != i) {
            fprintf(stderr, "tick_drop_head: append %lld: %s at %lld\n", (long long)i, klog_strerror(rc),
                    (long long)kb.base_offset);
            failures++;
            break;
        }
    }
    atomic_store(&done, true);
    return NULL;
}

static void *ticker(void *arg)
{
    (void)arg;
    for (unsigned n = 0; !atomic_load(&done) && n < 10u * APPENDS; n++)
        (void)ks_log_tick(log_);
    return NULL;
}

static void *dropper(void *arg)
{
    (void)arg;
    int64_t last = 0;
    for (unsigned n = 0; !atomic_load(&done) && n < 10u * APPENDS; n++) {
        int64_t end = ks_log_end_offset(log_), start = 0;
        if (end > 20 && ks_log_delete_records(log_, end - 20, &start) == 0) {
            if (start < last) {
                fprintf(stderr, "tick_drop_head: start went back from %lld to %lld\n", (long long)last,
                        (long long)start);
                failures++;
            }
            last = start;
        }
    }
    return NULL;
}

int main(void)
{
    char dir[] = "/dev/shm/klog-race-XXXXXX"; /* tmpfs: syncs cost nothing */
    if (!mkdtemp(dir)) {
        memcpy(dir, "/tmp/klog-race-XXXXXX", sizeof "/tmp/klog-race-XXXXXX");
        if (!mkdtemp(dir))
            return 1;
    }
    kio *io = NULL;
    kio_options o = { .backend = KIO_BACKEND_POSIX }; /* TSan does not see the kernel's ring writes */
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.segment_bytes = 2048; /* a roll every few appends */
    cfg.segment_ms = 1;       /* and the tick looks at the active segment's age */
    int rc = kio_open(&io, &o);
    if (rc == 0)
        rc = ks_log_open(&log_, io, dir, &cfg);
    if (rc != 0) {
        fprintf(stderr, "tick_drop_head: open %s: %s\n", dir, klog_strerror(rc));
        return 1;
    }
    pthread_t th[3];
    pthread_create(&th[0], NULL, appender, NULL);
    pthread_create(&th[1], NULL, ticker, NULL);
    pthread_create(&th[2], NULL, dropper, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    /* the log reads back from its start to its end, offsets dense */
    int64_t at = ks_log_start_offset(log_), end = ks_log_end_offset(log_);
    CHECK(end == APPENDS, "end %lld, expected %d", (long long)end, APPENDS);
    while (at < end) {
        ks_view v;
        rc = ks_log_read(log_, at, 1u << 20, &v);
        bool ok = rc == 0 && v.len > 0 && v.first_offset <= at && v.next_offset > at;
        CHECK(ok, "read at %lld: %s", (long long)at, klog_strerror(rc));
        at = ok ? v.next_offset : end;
        ks_view_release(&v);
    }
    CHECK(ks_log_close(log_) == 0, "close");
    kio_close(io);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        failures++;
    if (failures == 0)
        printf("tick_drop_head: %d appends beside ticks and head drops: ok\n", APPENDS);
    return failures ? 1 : 0;
}
