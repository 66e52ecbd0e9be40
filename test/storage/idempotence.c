/*
 * Idempotent appends: a batch the log already holds (same producer id,
 * epoch and sequence range) is not written twice; sequence gaps and stale
 * epochs are refused.  The producer's retry path relies on this.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/error.h>
#include "format/format.h"
#include "io/io.h"
#include "storage/storage.h"

static char dir[64];
static kio *io;
static ks_log *log_;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/klog-idem-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_AUTO }), 0);
    cr_assert_eq(ks_log_open(&log_, io, dir, NULL), 0);
}

static void teardown(void)
{
    ks_log_close(log_);
    kio_close(io);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(idempotence, .init = setup, .fini = teardown);

typedef struct { uint8_t buf[4096]; size_t len; } batch;

/* n records from producer pid/epoch starting at sequence seq. */
static void build(batch *b, int64_t pid, int16_t epoch, int32_t seq, int n)
{
    kf_builder kb;
    kf_builder_init(&kb, b->buf, sizeof b->buf, KF_RECORD_MAX_DEFAULT);
    for (int i = 0; i < n; i++) {
        char v[32];
        int vl = snprintf(v, sizeof v, "pid%lld-seq%d", (long long)pid, seq + i);
        kf_record r = { NULL, -1, v, vl, 1700000000000 + i, NULL, 0 };
        cr_assert_eq(kf_builder_add(&kb, &r), 0);
    }
    kf_batch_meta m = { pid, epoch, seq, 0, KF_CODEC_NONE, 0 };
    const uint8_t *out;
    cr_assert_eq(kf_builder_finish(&kb, &m, NULL, &out, &b->len), 0);
    cr_assert_eq(out, b->buf);
}

static int append(batch *b, int64_t *base)
{
    ks_batch kb = { b->buf, b->len, -1, 0 };
    int rc = ks_log_append(log_, &kb, 1, 0);
    *base = kb.base_offset;
    return rc < 0 ? rc : kb.result;
}

Test(idempotence, retried_batch_is_not_written_twice)
{
    batch a, b, a_again;
    int64_t base;
    build(&a, 42, 0, 0, 3);
    build(&b, 42, 0, 3, 2);
    cr_assert_eq(append(&a, &base), 0);
    cr_assert_eq(base, 0);
    cr_assert_eq(append(&b, &base), 0);
    cr_assert_eq(base, 3);
    /* the retry of a (a fresh copy of the same batch) */
    build(&a_again, 42, 0, 0, 3);
    cr_assert_eq(append(&a_again, &base), KLOG_EDUPLICATE);
    cr_assert_eq(base, 0, "the duplicate reports where the original is");
    cr_assert_eq(ks_log_end_offset(log_), 5, "nothing was written again");
    /* the next batch in sequence still goes in */
    batch c;
    build(&c, 42, 0, 5, 1);
    cr_assert_eq(append(&c, &base), 0);
    cr_assert_eq(base, 5);
}

Test(idempotence, gaps_and_stale_epochs_are_refused)
{
    batch a, gap, old_epoch, new_epoch;
    int64_t base;
    build(&a, 7, 3, 0, 2);
    cr_assert_eq(append(&a, &base), 0);
    build(&gap, 7, 3, 5, 1); /* expected 2 */
    cr_assert_eq(append(&gap, &base), KLOG_ESEQUENCE);
    build(&old_epoch, 7, 2, 2, 1);
    cr_assert_eq(append(&old_epoch, &base), KLOG_EFENCED);
    cr_assert_eq(ks_log_end_offset(log_), 2);
    build(&new_epoch, 7, 4, 0, 1); /* a new epoch starts afresh */
    cr_assert_eq(append(&new_epoch, &base), 0);
    cr_assert_eq(ks_log_end_offset(log_), 3);
}

Test(idempotence, producers_are_independent_and_nonidempotent_batches_pass)
{
    batch a, b, plain;
    int64_t base;
    build(&a, 1, 0, 0, 1);
    build(&b, 2, 0, 0, 1);
    cr_assert_eq(append(&a, &base), 0);
    cr_assert_eq(append(&b, &base), 0);
    build(&plain, -1, -1, -1, 1);
    cr_assert_eq(append(&plain, &base), 0);
    build(&plain, -1, -1, -1, 1);
    cr_assert_eq(append(&plain, &base), 0, "no producer id: no deduplication");
    cr_assert_eq(ks_log_end_offset(log_), 4);
}

Test(idempotence, a_duplicate_inside_a_multi_batch_append_is_skipped)
{
    batch a, b, c;
    build(&a, 9, 0, 0, 2);
    build(&b, 9, 0, 2, 2);
    build(&c, 9, 0, 0, 2); /* retry of a, queued behind b */
    ks_batch kb[3] = { { a.buf, a.len, -1, 0 }, { b.buf, b.len, -1, 0 }, { c.buf, c.len, -1, 0 } };
    cr_assert_eq(ks_log_append(log_, kb, 3, 0), 0);
    cr_assert_eq(kb[0].result, 0);
    cr_assert_eq(kb[1].result, 0);
    cr_assert_eq(kb[2].result, KLOG_EDUPLICATE);
    cr_assert_eq(kb[2].base_offset, 0);
    cr_assert_eq(ks_log_end_offset(log_), 4);
}

Test(idempotence, state_is_rebuilt_from_the_log_tail_on_reopen)
{
    batch a, again;
    int64_t base;
    build(&a, 77, 1, 0, 4);
    cr_assert_eq(append(&a, &base), 0);
    /* reopen without a clean close: recovery rescans the tail */
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -f '%s/recovery.ckpt'", dir);
    cr_assert_eq(system(cmd), 0);
    ks_log_abandon(log_);
    cr_assert_eq(ks_log_open(&log_, io, dir, NULL), 0);
    build(&again, 77, 1, 0, 4);
    cr_assert_eq(append(&again, &base), KLOG_EDUPLICATE);
    cr_assert_eq(base, 0);
    cr_assert_eq(ks_log_end_offset(log_), 4);
}
