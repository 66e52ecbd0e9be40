/*
 * test/partition/replica.c - the partition as a replica (lib/partition):
 * becoming follower (producers refused, epochs kept, the cache fed at
 * each new epoch), becoming leader again, acks=all acknowledgements tied
 * to the epoch they were appended in, min.insync.replicas
 * (KPART_APPEND_ALL), the HW a restarted replica starts at, truncation
 * below the HW, a follower that copies its leader's compaction gaps and
 * one that starts again at its leader's log start (kpart_truncate_fully).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/error.h>
#include "format/format.h"
#include "io/io.h"
#include "partition/partition.h"

static char dir[64];
static kio *io;
static kpart *P;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/klog-prep-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_AUTO }), 0);
    int rc = kpart_open(&P, io, dir, NULL);
    cr_assert_eq(rc, 0, "kpart_open: %s", klog_strerror(rc));
}

static void teardown(void)
{
    cr_assert_eq(kpart_close(P), 0);
    kio_close(io);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(replica, .init = setup, .fini = teardown);

typedef struct {
    uint8_t buf[4096];
    size_t len;
} batch;

/* A batch of n records, as a leader would send it: base offset and leader
 * epoch set in its header. */
static void build(batch *b, int n, int64_t base, int32_t epoch)
{
    kf_builder kb;
    kf_builder_init(&kb, b->buf, sizeof b->buf, 1024);
    for (int i = 0; i < n; i++) {
        char v[32];
        int vl = snprintf(v, sizeof v, "v-%lld", (long long)(base + i));
        kf_record r = { NULL, -1, v, vl, 1700000000000LL + i, NULL, 0 };
        cr_assert_eq(kf_builder_add(&kb, &r), 0);
    }
    const uint8_t *out;
    cr_assert_eq(kf_builder_finish(&kb, NULL, NULL, &out, &b->len), 0);
    kf_batch_set_base_offset(b->buf, base);
    kf_batch_set_leader_epoch(b->buf, epoch);
}

static int append(int n, unsigned flags, int64_t *base)
{
    batch b;
    build(&b, n, 0, 0);
    ks_batch kb = { b.buf, b.len, -1, 0 };
    int rc = kpart_append(P, &kb, 1, flags);
    if (base)
        *base = kb.base_offset;
    return rc;
}

static int replica_append(int n, int64_t base, int32_t epoch)
{
    batch b;
    build(&b, n, base, epoch);
    ks_batch kb = { b.buf, b.len, -1, 0 };
    return kpart_append_replica(P, &kb, 1, KS_APPEND_SYNC);
}

static size_t entries(ks_epoch_entry *e, size_t cap) { return kpart_epoch_entries(P, e, cap); }

/* The epoch in the header of the batch at offset. */
static int32_t stored_epoch(int64_t offset)
{
    ks_view v;
    cr_assert_eq(kpart_read_log(P, offset, 1, &v), 0);
    kf_batch_info bi;
    cr_assert_gt(kf_batch_parse(v.data, v.len, &bi), 0);
    ks_view_release(&v);
    return bi.leader_epoch;
}

Test(replica, a_follower_refuses_producers_and_keeps_its_leaders_offsets_and_epochs)
{
    cr_assert_eq(kpart_become_leader(P, 1), 0);
    cr_assert_eq(append(3, 0, NULL), 0); /* 0..2, epoch 1 */
    cr_assert_eq(kpart_become_follower(P, 4), 0);
    cr_assert_eq(kpart_role(P), KPART_FOLLOWER);
    cr_assert_eq(kpart_leader_epoch(P), 4, "a follower answers its leader's epoch");
    cr_assert(kpart_replicated(P));
    int64_t base = -7;
    cr_assert_eq(append(1, 0, &base), KLOG_ENOTLEADER);
    cr_assert_eq(base, -1);
    cr_assert_eq(kpart_end_offset(P), 3);

    /* the leader's batches: same offsets, same epochs, new epochs recorded */
    cr_assert_eq(replica_append(2, 3, 1), 0); /* 3..4, still epoch 1 */
    cr_assert_eq(replica_append(2, 5, 3), 0); /* 5..6, epoch 3 starts at 5 */
    cr_assert_eq(stored_epoch(5), 3, "kept, not stamped");
    cr_assert_eq(stored_epoch(3), 1);
    ks_epoch_entry e[8];
    size_t n = entries(e, 8);
    cr_assert_eq(n, 2, "(1, 0) (3, 5)");
    cr_assert_eq(e[0].epoch, 1);
    cr_assert_eq(e[1].epoch, 3);
    cr_assert_eq(e[1].start_offset, 5);

    /* below the end, or from an older epoch: refused (past the end: the
     * leader's compaction gap, copied_gaps_survive_a_reopen) */
    cr_assert_eq(replica_append(1, 6, 3), KLOG_EOFFSET);
    cr_assert_eq(replica_append(1, 7, 2), KLOG_EFENCED);
    cr_assert_eq(kpart_end_offset(P), 7);

    /* leading again: producers' batches are stamped with the new epoch */
    cr_assert_eq(kpart_become_leader(P, 5), 0);
    cr_assert_eq(append(1, 0, &base), 0);
    cr_assert_eq(base, 7);
    cr_assert_eq(stored_epoch(7), 5);
    cr_assert_eq(replica_append(1, 8, 5), KLOG_ESTATE, "a leader takes no replica appends");
}

Test(replica, becoming_follower_forgets_an_epoch_led_without_a_record)
{
    cr_assert_eq(kpart_become_leader(P, 1), 0);
    cr_assert_eq(append(2, 0, NULL), 0);
    cr_assert_eq(kpart_become_leader(P, 2), 0); /* (2, 2): nothing written in it */
    ks_epoch_entry e[8];
    cr_assert_eq(entries(e, 8), 2);
    cr_assert_eq(kpart_become_follower(P, 3), 0);
    cr_assert_eq(entries(e, 8), 1, "epoch 2 held no record");
    cr_assert_eq(e[0].epoch, 1);
    /* the new leader's next batch may be of epoch 1 still */
    cr_assert_eq(replica_append(1, 2, 1), 0);
}

typedef struct {
    kpart_ack a;
    int calls, err;
} ack;

static void ack_done(kpart_ack *a, int err)
{
    ack *x = (ack *)a;
    x->calls++;
    x->err = err;
}

Test(replica, acks_all_complete_only_in_the_term_they_were_appended_in)
{
    cr_assert_eq(kpart_become_leader(P, 1), 0);
    kpart_set_replicated(P, true);
    int64_t base;
    cr_assert_eq(append(2, KS_APPEND_SYNC, &base), 0);
    ack a = { .a.done = ack_done }, b = { .a.done = ack_done };
    kpart_ack_submit_epoch(P, &a.a, base + 2, KPART_ACK_ALL, 0, 1);
    cr_assert_eq(a.calls, 0, "waits for the HW");
    cr_assert_eq(kpart_advance_hw(P, 2), 2);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, 0);

    cr_assert_eq(append(2, KS_APPEND_SYNC, &base), 0);
    kpart_ack_submit_epoch(P, &b.a, base + 2, KPART_ACK_ALL, 0, 1);
    cr_assert_eq(kpart_become_follower(P, 2), 0);
    cr_assert_eq(b.calls, 0, "completions wait for the flush");
    kpart_ack_flush(P);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.err, KLOG_ENOTLEADER, "%s", klog_err_name(b.err));

    /* leading a later epoch: an acknowledgement of the earlier one fails
     * even though the HW passes it (its records may be others now) */
    cr_assert_eq(kpart_become_leader(P, 3), 0);
    ack c = { .a.done = ack_done };
    kpart_ack_submit_epoch(P, &c.a, 3, KPART_ACK_ALL, 0, 1);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(c.err, KLOG_ENOTLEADER);
    /* an acks=1 acknowledgement is the leader's own: at once */
    ack d = { .a.done = ack_done };
    kpart_ack_submit_epoch(P, &d.a, 4, KPART_ACK_LEADER, 0, 1);
    cr_assert_eq(d.calls, 1);
    cr_assert_eq(d.err, 0);
}

Test(replica, acks_all_below_min_insync_replicas_are_refused)
{
    cr_assert_eq(append(1, KS_APPEND_SYNC | KPART_APPEND_ALL, NULL), 0, "not replicated: no check");
    kpart_set_replicated(P, true);
    kpart_set_isr(P, 1, 2);
    int64_t base = -7;
    cr_assert_eq(append(1, KS_APPEND_SYNC | KPART_APPEND_ALL, &base), KLOG_ENOTENOUGH);
    cr_assert_eq(base, -1);
    cr_assert_eq(append(1, 0, NULL), 0, "acks=1 is not refused");
    kpart_set_isr(P, 2, 2);
    cr_assert_eq(append(1, KS_APPEND_SYNC | KPART_APPEND_ALL, NULL), 0);
}

Test(replica, a_restarted_replica_starts_its_hw_where_it_is_told)
{
    cr_assert_eq(append(5, 0, NULL), 0);
    kpart_set_replicated_at(P, 2);
    cr_assert_eq(kpart_high_watermark(P), 2);
    kpart_set_replicated_at(P, 4);
    cr_assert_eq(kpart_high_watermark(P), 2, "already replicated: no change");
    ks_view v;
    cr_assert_eq(kpart_read(P, 2, 1 << 20, &v), 0);
    cr_assert_eq(v.len, 0, "nothing shown at or above the HW");
}

Test(replica, truncation_below_the_hw_lowers_it)
{
    cr_assert_eq(append(3, 0, NULL), 0);
    cr_assert_eq(append(3, 0, NULL), 0);
    kpart_set_replicated(P, true);
    cr_assert_eq(kpart_high_watermark(P), 6);
    cr_assert_eq(kpart_become_follower(P, 1), 0);
    int64_t ne;
    cr_assert_eq(kpart_truncate_to(P, 3, &ne), 0);
    cr_assert_eq(ne, 3);
    cr_assert_eq(kpart_high_watermark(P), 3);
}

/* The records' values "v-<offset>" from `from` on: out[o] = 1 where the
 * log holds offset o (as the leader wrote it); returns the next offset. */
static int64_t held(int64_t from, int64_t to, char *out)
{
    memset(out, 0, (size_t)to);
    int64_t off = from;
    while (off < to) {
        ks_view v;
        cr_assert_eq(kpart_read_log(P, off, 1 << 20, &v), 0);
        if (v.len == 0)
            break;
        for (size_t at = 0; at < v.len;) {
            kf_batch_info bi;
            ssize_t sz = kf_batch_parse(v.data + at, v.len - at, &bi);
            cr_assert_gt(sz, 0);
            const uint8_t *recs;
            size_t rl;
            cr_assert_eq(kf_batch_records(v.data + at, (size_t)sz, NULL, &recs, &rl), 0);
            kf_iter it;
            kf_record_view rv;
            kf_iter_init(&it, &bi, recs, rl);
            while (kf_iter_next(&it, &rv) == 1) {
                char want[32];
                int wl = snprintf(want, sizeof want, "v-%lld", (long long)rv.offset);
                cr_assert(rv.value_len == wl && memcmp(rv.value, want, (size_t)wl) == 0, "offset %lld",
                          (long long)rv.offset);
                if (rv.offset < to)
                    out[rv.offset] = 1;
            }
            at += (size_t)sz;
        }
        off = v.next_offset;
        ks_view_release(&v);
    }
    return off;
}

static void reopen(size_t segment_bytes)
{
    cr_assert_eq(kpart_close(P), 0);
    ks_log_config c;
    ks_log_config_init(&c);
    if (segment_bytes)
        c.segment_bytes = segment_bytes;
    int rc = kpart_open(&P, io, dir, &c);
    cr_assert_eq(rc, 0, "kpart_open: %s", klog_strerror(rc));
}

/* A compacted leader's batches have offset gaps between them: a follower
 * keeps the leader's offsets (Kafka's), in the active segment and across
 * rolls, and recovery accepts the gaps when the log is opened again. */
Test(replica, copied_gaps_survive_a_reopen)
{
    reopen(1024); /* small segments: the gaps fall in sealed ones too */
    cr_assert_eq(kpart_become_follower(P, 2), 0);
    char have[4096];
    int64_t base = 0;
    for (int i = 0; i < 60; i++) {
        int32_t epoch = i < 30 ? 1 : 2;
        int n = 1 + i % 3;
        int rc = replica_append(n, base, epoch);
        cr_assert_eq(rc, 0, "batch %d at %lld: %s", i, (long long)base, klog_strerror(rc));
        base += n + (i % 4 == 0 ? 0 : 1 + i % 7); /* a gap after most batches */
    }
    int64_t end = kpart_end_offset(P);
    cr_assert_gt(end, 60 * 3);
    cr_assert_eq(replica_append(1, end - 1, 2), KLOG_EOFFSET, "below the end");
    ks_epoch_entry e[8];
    cr_assert_eq(entries(e, 8), 2);
    int64_t e2 = e[1].start_offset;
    /* a read at an offset inside a gap starts at the next batch */
    int64_t n1 = held(0, end, have);
    cr_assert_eq(n1, end);
    int64_t gap = -1;
    for (int64_t o = 0; o < end && gap < 0; o++)
        if (!have[o])
            gap = o;
    cr_assert_geq(gap, 0);
    ks_view v;
    cr_assert_eq(kpart_read_log(P, gap, 1, &v), 0);
    cr_assert_gt(v.first_offset, gap);
    cr_assert(have[v.first_offset]);
    ks_view_release(&v);
    char before[4096];
    memcpy(before, have, (size_t)end);

    reopen(1024);
    cr_assert_eq(kpart_end_offset(P), end);
    cr_assert_eq(held(0, end, have), end);
    cr_assert_eq(memcmp(before, have, (size_t)end), 0, "the same records at the same offsets");
    cr_assert_eq(entries(e, 8), 2);
    cr_assert_eq(e[1].epoch, 2);
    cr_assert_eq(e[1].start_offset, e2);
    /* and it goes on from there */
    cr_assert_eq(kpart_become_follower(P, 2), 0);
    cr_assert_eq(replica_append(2, end + 5, 2), 0);
    cr_assert_eq(kpart_end_offset(P), end + 7);
}

/* A reader in another process (a read-only log following the directory)
 * reads on past a gap the follower copied into the active segment. */
Test(replica, a_reader_follows_a_copied_gap)
{
    cr_assert_eq(kpart_become_follower(P, 1), 0);
    cr_assert_eq(replica_append(2, 0, 1), 0);
    ks_log_config rc_;
    ks_log_config_init(&rc_);
    rc_.read_only = true;
    ks_log *r;
    int rc = ks_log_open(&r, io, dir, &rc_);
    cr_assert_eq(rc, 0, "%s", klog_strerror(rc));
    cr_assert_eq(ks_log_end_offset(r), 2);
    cr_assert_eq(replica_append(3, 10, 1), 0); /* 10..12, after a gap */
    cr_assert_eq(ks_log_refresh(r, false), 0);
    cr_assert_eq(ks_log_end_offset(r), 13);
    ks_view v;
    cr_assert_eq(ks_log_read(r, 5, 1 << 20, &v), 0);
    cr_assert_eq(v.first_offset, 10);
    cr_assert_eq(v.next_offset, 13);
    ks_view_release(&v);
    ks_log_close(r);
}

/* A follower whose log ends below its leader's log start starts again
 * there (Kafka's truncateFullyAndStartAt): its records and leader epochs
 * go, its HW is the new start; the next batch records its epoch. */
Test(replica, truncate_fully_starts_again_at_the_leaders_log_start)
{
    cr_assert_eq(kpart_become_leader(P, 1), 0);
    cr_assert_eq(append(3, 0, NULL), 0);
    kpart_set_replicated(P, true);
    cr_assert_eq(kpart_truncate_fully(P, 100), KLOG_ESTATE, "a leader's log is its own");
    cr_assert_eq(kpart_become_follower(P, 3), 0);
    cr_assert_eq(replica_append(2, 3, 2), 0); /* 3..4, epoch 2 */
    cr_assert_eq(kpart_truncate_fully(P, 4), KLOG_EOFFSET, "below the end of a log with records");
    cr_assert_eq(kpart_truncate_fully(P, 100), 0);
    cr_assert_eq(kpart_start_offset(P), 100);
    cr_assert_eq(kpart_end_offset(P), 100);
    cr_assert_eq(kpart_high_watermark(P), 100);
    ks_epoch_entry e[8];
    cr_assert_eq(entries(e, 8), 1, "no entry: the lazy one at the start");
    cr_assert_eq(e[0].start_offset, 100);
    ks_view v;
    cr_assert_eq(kpart_read_log(P, 4, 1, &v), KLOG_EOFFSET, "below the start");

    cr_assert_eq(replica_append(2, 100, 3), 0);
    cr_assert_eq(entries(e, 8), 1);
    cr_assert_eq(e[0].epoch, 3);
    cr_assert_eq(e[0].start_offset, 100);
    reopen(0);
    cr_assert_eq(kpart_start_offset(P), 100);
    cr_assert_eq(kpart_end_offset(P), 102);
    char have[512];
    cr_assert_eq(held(100, 102, have), 102);
    cr_assert(have[100] && have[101]);

    /* The leader's start inside a batch: the empty log starts again at
     * that batch's base, and the HW stays where it was. */
    cr_assert_eq(kpart_become_follower(P, 4), 0);
    kpart_set_replicated_at(P, 102);
    cr_assert_eq(kpart_truncate_fully(P, 205), 0);
    cr_assert_eq(kpart_high_watermark(P), 205);
    cr_assert_eq(replica_append(5, 203, 4), 0); /* 203..207 across 205 */
    cr_assert_eq(kpart_start_offset(P), 203);
    cr_assert_eq(kpart_end_offset(P), 208);
    cr_assert_eq(kpart_high_watermark(P), 205, "the HW stays");
    cr_assert_eq(entries(e, 8), 1);
    cr_assert_eq(e[0].epoch, 4);
    cr_assert_eq(e[0].start_offset, 203);
    cr_assert_eq(replica_append(3, 206, 4), KLOG_EOFFSET, "across the end of a log with records");
    reopen(0);
    cr_assert_eq(kpart_start_offset(P), 203);
    cr_assert_eq(kpart_end_offset(P), 208);
    cr_assert_eq(held(203, 208, have), 208);
}
