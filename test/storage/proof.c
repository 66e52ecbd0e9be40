/*
 * test/storage/proof.c - the checksum proof a segment's index files carry
 * (layout.h's `proven` field): written by the process that proved the
 * bytes, trusted by a later process only when its reader asks
 * (ks_view_verify's trust_disk: the consumer's check.crcs=false) and only
 * for a segment recovery trusts unscanned, wholly below the recovery point;
 * lowered by a truncation to the cut and by a batch that fails its
 * checksum to that batch.
 */
#include "util.h"
#include "storage/internal.h"
#include "storage/layout.h"

TestSuite(proof, .init = tu_setup, .fini = tu_teardown, .timeout = 60);

#define NB 10      /* batches written */
#define PER 5      /* records per batch */

/* One segment (1 MiB segments) of NB batches of PER records, closed
 * cleanly: its index files written, the recovery point at the end. */
static ks_log_config fill(char dir[TU_PATH])
{
    tu_sub(dir, "log");
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    cfg.segment_bytes = 1 << 20;
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    for (int i = 0; i < NB; i++)
        tu_append_seq(log, PER, 0);
    cr_assert_eq(ks_log_segment_count(log), 1);
    tu_log_close(log);
    return cfg;
}

static void seg_file(char *out, const char *dir, const char *suffix)
{
    char name[64];
    snprintf(name, sizeof name, "00000000000000000000%s", suffix);
    tu_path(out, dir, name);
}

/* The position and length of batch k in the segment file. */
static void batch_at(const char *dir, int k, uint64_t *pos, size_t *len)
{
    char p[TU_PATH];
    seg_file(p, dir, ".log");
    size_t n;
    uint8_t *b = tu_slurp(p, &n);
    uint64_t at = 0;
    for (int i = 0;; i++) {
        kf_batch_info bi;
        ssize_t l = kf_batch_parse(b + at, n - at, &bi);
        cr_assert_gt(l, 0, "batch %d at %llu", i, (unsigned long long)at);
        if (i == k) {
            *pos = at;
            *len = (size_t)l;
            break;
        }
        at += (uint64_t)l;
    }
    free(b);
}

/* Flip a bit of the last byte of batch k: a record's value, under the
 * checksum, not its framing. */
static void damage(const char *dir, int k)
{
    uint64_t pos;
    size_t len;
    batch_at(dir, k, &pos, &len);
    char p[TU_PATH];
    seg_file(p, dir, ".log");
    tu_flip_bit(p, (off_t)(pos + len - 1), 3);
}

static kl_ix_hdr header(const char *dir, const char *suffix, uint32_t magic)
{
    char p[TU_PATH];
    seg_file(p, dir, suffix);
    size_t n;
    uint8_t *b = tu_slurp(p, &n);
    kl_ix_hdr h;
    cr_assert_eq(kl_ix_decode(b, n, magic, &h), KL_IX_OK, "%s", p);
    free(b);
    return h;
}

/* Rewrite an index file with its `proven` field set to v (a file of a
 * version that did not write it: 0). */
static void set_proven(const char *dir, const char *suffix, uint32_t magic, uint32_t v)
{
    char p[TU_PATH];
    seg_file(p, dir, suffix);
    size_t n;
    uint8_t *b = tu_slurp(p, &n);
    kl_ix_hdr h;
    cr_assert_eq(kl_ix_decode(b, n, magic, &h), KL_IX_OK);
    h.proven = v;
    uint8_t *out = malloc(n);
    cr_assert_eq(kl_ix_encode(out, &h, b + KL_IX_HDR_SIZE), n);
    tu_spit(p, out, n);
    free(out);
    free(b);
}

/* ks_view_verify of batch k (offset k * PER), trusting the disk's proof or
 * not. */
static int verify_batch(ks_log *log, int k, bool trust)
{
    ks_view v;
    int rc = ks_log_read(log, (int64_t)k * PER, 1, &v);
    cr_assert_eq(rc, 0, "read batch %d: %s", k, klog_strerror(rc));
    cr_assert_eq(v.first_offset, (int64_t)k * PER);
    kf_batch_info bi;
    ssize_t len = kf_batch_parse(v.data, v.len, &bi);
    cr_assert_gt(len, 0);
    rc = ks_view_verify(&v, 0, (size_t)len, trust);
    ks_view_release(&v);
    return rc;
}

static ks_segment *seg0(ks_log *log)
{
    cr_assert_geq(log->nsegs, 1);
    return log->segs[0];
}

/* A clean close leaves the proof of the whole segment in both index files;
 * a later process that trusts it does not see a bit flipped after it was
 * written (as a Kafka consumer without check.crcs does not), one that does
 * not trust it does; once a batch has failed, the proof no longer covers
 * it, for either. */
Test(proof, a_clean_close_leaves_a_proof_that_only_trusting_readers_use)
{
    char dir[TU_PATH];
    ks_log_config cfg = fill(dir);
    kl_ix_hdr ho = header(dir, ".index", KL_IX_MAGIC_OFFSET), ht = header(dir, ".timeindex", KL_IX_MAGIC_TIME);
    cr_assert_gt(ho.seg_size, 0);
    cr_assert_eq(ho.proven, ho.seg_size, "proven %u of %llu bytes", ho.proven, (unsigned long long)ho.seg_size);
    cr_assert_eq(ht.proven, ht.seg_size);

    damage(dir, 5);
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    cr_assert_eq(atomic_load(&seg0(log)->disk_proven), ho.seg_size);
    cr_assert_eq(verify_batch(log, 5, true), 0, "the writer's proof is trusted");
    cr_assert_eq(verify_batch(log, 5, false), KLOG_ECORRUPT, "without trusting it, the flip is caught");
    cr_assert_eq(verify_batch(log, 5, true), KLOG_ECORRUPT, "a failed batch is no longer covered");
    cr_assert_eq(verify_batch(log, 5, false), KLOG_ECORRUPT, "and is never marked verified");
    cr_assert_eq(verify_batch(log, 4, true), 0, "the proof below it holds");
    uint64_t pos;
    size_t len;
    batch_at(dir, 5, &pos, &len);
    cr_assert_eq(atomic_load(&seg0(log)->disk_proven), pos);
    tu_log_close(log);
}

/* A segment whose index files carry no proof (0: a version that did not
 * write it) is checked even by a trusting reader. */
Test(proof, index_files_without_a_proof_prove_nothing)
{
    char dir[TU_PATH];
    ks_log_config cfg = fill(dir);
    set_proven(dir, ".index", KL_IX_MAGIC_OFFSET, 0);
    set_proven(dir, ".timeindex", KL_IX_MAGIC_TIME, 0);
    damage(dir, 3);
    /* the open trusts the segment unscanned (a scan would refuse the flip
     * below the recovery point) */
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    cr_assert_eq(atomic_load(&seg0(log)->disk_proven), 0);
    cr_assert_eq(verify_batch(log, 2, true), 0);
    cr_assert_eq(verify_batch(log, 3, true), KLOG_ECORRUPT);
    tu_log_close(log);
}

/* The two files claim different proofs: the smaller one holds. */
Test(proof, the_smaller_of_two_claims_holds)
{
    char dir[TU_PATH];
    ks_log_config cfg = fill(dir);
    uint64_t pos;
    size_t len;
    batch_at(dir, 3, &pos, &len);
    set_proven(dir, ".timeindex", KL_IX_MAGIC_TIME, (uint32_t)pos);
    damage(dir, 3);
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    cr_assert_eq(atomic_load(&seg0(log)->disk_proven), pos);
    cr_assert_eq(verify_batch(log, 3, true), KLOG_ECORRUPT);
    tu_log_close(log);
}

/* A segment recovery scans (here: the recovery point below it, as after a
 * crash) takes no proof from its index files, whatever they claim: what
 * it holds is proven by the scan, in this process only. */
Test(proof, a_scanned_segment_takes_no_proof_from_its_files)
{
    char dir[TU_PATH];
    ks_log_config cfg = fill(dir);
    uint8_t buf[KL_CKPT_SIZE];
    char p[TU_PATH];
    kl_ckpt_encode(buf, KL_CKPT_MAGIC_RECOVERY, 0, 0); /* recovery point 0 */
    tu_path(p, dir, KL_CKPT_RECOVERY_NAME);
    tu_spit(p, buf, sizeof buf);
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    cr_assert_eq(ks_log_end_offset(log), NB * PER);
    cr_assert_eq(atomic_load(&seg0(log)->disk_proven), 0, "the proof of files recovery did not trust");
    cr_assert_eq(atomic_load(&seg0(log)->trusted_from), 0, "the scan proved it");
    tu_log_close(log);
}

/* A truncation lowers the proof to the cut: in place, and when a view
 * holds the segment (a copy of the kept prefix replaces it).  What is
 * appended after the cut is this process's own, and the index files it
 * writes at close prove the whole segment again. */
static void truncation_case(bool hold_view)
{
    char dir[TU_PATH];
    ks_log_config cfg = fill(dir);
    uint64_t cut;
    size_t len;
    batch_at(dir, 6, &cut, &len);
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    ks_view v = { 0 };
    if (hold_view)
        cr_assert_eq(ks_log_read(log, 0, 1, &v), 0);
    int64_t new_end;
    cr_assert_eq(ks_log_truncate_to(log, 6 * PER, &new_end), 0);
    cr_assert_eq(new_end, 6 * PER);
    ks_segment *s = seg0(log);
    cr_assert_eq(atomic_load(&s->size), cut);
    cr_assert_leq(atomic_load(&s->disk_proven), cut, "proof %llu past the cut %llu",
                  (unsigned long long)atomic_load(&s->disk_proven), (unsigned long long)cut);
    ks_view_release(&v);
    tu_append_seq(log, PER, 0);
    tu_log_close(log);
    kl_ix_hdr h = header(dir, ".index", KL_IX_MAGIC_OFFSET);
    cr_assert_eq(h.proven, h.seg_size);
    log = tu_log_open(tu_io, dir, &cfg);
    for (int k = 0; k < 7; k++)
        cr_assert_eq(verify_batch(log, k, false), 0, "batch %d", k);
    tu_log_close(log);
}

Test(proof, truncation_in_place_drops_the_proof_past_the_cut) { truncation_case(false); }
Test(proof, truncation_under_a_view_drops_the_proof_past_the_cut) { truncation_case(true); }

/* Every segment rolled proves itself whole (its index files are written
 * after its sync), and the next instance takes each proof. */
Test(proof, rolled_segments_prove_themselves)
{
    char dir[TU_PATH];
    tu_sub(dir, "log");
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE); /* 4 KiB segments */
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    for (int i = 0; i < 40; i++)
        tu_append_seq(log, PER, 0);
    unsigned nsegs = ks_log_segment_count(log);
    cr_assert_geq(nsegs, 4);
    tu_log_close(log);

    tu_name names[64];
    size_t n = tu_list(dir, ".index", names, 64);
    cr_assert_eq(n, nsegs, "every segment has its index files");
    for (size_t i = 0; i < n; i++) {
        char p[TU_PATH];
        tu_path(p, dir, names[i]);
        size_t len;
        uint8_t *b = tu_slurp(p, &len);
        kl_ix_hdr h;
        cr_assert_eq(kl_ix_decode(b, len, KL_IX_MAGIC_OFFSET, &h), KL_IX_OK, "%s", p);
        cr_assert_eq(h.proven, h.seg_size, "%s: proven %u of %llu", names[i], h.proven,
                     (unsigned long long)h.seg_size);
        free(b);
    }
    log = tu_log_open(tu_io, dir, &cfg);
    for (unsigned i = 0; i < log->nsegs; i++)
        cr_assert_eq(atomic_load(&log->segs[i]->disk_proven), atomic_load(&log->segs[i]->size), "segment %u", i);
    tu_log_close(log);
}
