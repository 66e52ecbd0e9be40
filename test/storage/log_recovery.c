/*
 * test/storage/log_recovery.c - recovery on open (lib/storage/storage.h):
 * torn, zeroed and bit-flipped tails above the recovery point, damage below
 * it, the recovery checkpoint, leftover temporary files, and index files.
 *
 * The damaged logs come from a "crash image": a log of several small
 * segments written with durability NONE, synced, and copied file by file
 * while still open.  In the copy the last segment lies above the recovery
 * point (the checkpoint is the one written at the last roll) and every
 * sealed segment lies below it.  Each case works on a fresh copy of the
 * image.
 */
#include "util.h"
#include "storage/internal.h"
#include "storage/layout.h"

TestSuite(log_recovery, .init = tu_setup, .fini = tu_teardown, .timeout = 120);

#define MAXB 1024

typedef struct batch_loc {
    int64_t base;
    int n;
    int64_t seg;     /* base of the segment holding it */
    uint64_t pos;    /* position in that segment's file */
    size_t len;
} batch_loc;

typedef struct image {
    char dir[TU_PATH];
    batch_loc b[MAXB];
    int nb;
    int64_t end;
    int64_t segs[64];
    int nsegs;
    int first_in_last;   /* index of the first batch of the last segment */
    ks_log_config cfg;
} image;

/* seq == offset throughout, so tu_expect_identity checks content. */
static void make_image(image *im, uint64_t seed)
{
    char live[TU_PATH];
    tu_sub(live, "live");
    tu_sub(im->dir, "image");
    im->cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *log = tu_log_open(tu_io, live, &im->cfg);
    tu_rng rng = { seed };
    im->nb = 0;
    im->nsegs = 1;
    im->segs[0] = 0;
    uint64_t pos = 0;
    int in_last = 0;
    while (im->nsegs < 5 || in_last < 5) {
        unsigned before = ks_log_segment_count(log);
        int64_t end = ks_log_end_offset(log), base;
        int n = (int)tu_range(&rng, 2, 7);
        tu_batch b;
        tu_build(&b, (uint64_t)end, n);
        cr_assert_eq(tu_append1(log, &b, 0, &base), 0);
        cr_assert_eq(base, end);
        if (ks_log_segment_count(log) != before) {
            im->segs[im->nsegs++] = base;
            pos = 0;
            in_last = 0;
        }
        cr_assert_lt(im->nb, MAXB);
        im->b[im->nb++] = (batch_loc){ base, n, im->segs[im->nsegs - 1], pos, b.len };
        pos += b.len;
        in_last++;
        tu_batch_free(&b);
    }
    im->end = ks_log_end_offset(log);
    im->first_in_last = im->nb - in_last;
    cr_assert_eq(ks_log_sync(log), 0);
    tu_copy_dir(live, im->dir); /* while open: the crash image */
    tu_log_close(log);
    tu_rmrf(live);
    /* the image is what we think it is */
    char p[TU_PATH];
    snprintf(p, sizeof p, "%s/%020lld.log", im->dir, (long long)im->segs[im->nsegs - 1]);
    const batch_loc *last = &im->b[im->nb - 1];
    cr_assert_eq((uint64_t)tu_fsize(p), last->pos + last->len);
    snprintf(p, sizeof p, "%s/%020lld.index", im->dir, (long long)im->segs[im->nsegs - 1]);
    cr_assert(!tu_exists(p), "the active segment of the image has an index file");
    snprintf(p, sizeof p, "%s/recovery.ckpt", im->dir);
    cr_assert(tu_exists(p));
}

static void seg_path(char *out, const char *dir, int64_t base, const char *sfx)
{
    snprintf(out, TU_PATH, "%s/%020lld%s", dir, (long long)base, sfx);
}

/* A fresh copy of the image to damage. */
static void fresh_copy(const image *im, char *dir)
{
    tu_sub(dir, "case");
    tu_copy_dir(im->dir, dir);
}

/* Batch of the image at file position pos of segment seg. */
static int batch_at(const image *im, int64_t seg, uint64_t pos)
{
    for (int i = 0; i < im->nb; i++)
        if (im->b[i].seg == seg && pos >= im->b[i].pos && pos < im->b[i].pos + im->b[i].len)
            return i;
    cr_assert_fail("no batch at %llu in segment %lld", (unsigned long long)pos, (long long)seg);
    return -1;
}

/* Open dir; it must hold exactly offsets [0, want) with their content, and
 * accept an append at want.  Closes the log. */
static void expect_recovered(const image *im, const char *dir, int64_t want, const char *what)
{
    ks_log *log = NULL;
    int rc = ks_log_open(&log, tu_io, dir, &im->cfg);
    cr_assert_eq(rc, 0, "%s: open failed: %s", what, klog_strerror(rc));
    cr_assert_eq(ks_log_end_offset(log), want, "%s: recovered end %lld, expected %lld", what,
                 (long long)ks_log_end_offset(log), (long long)want);
    cr_assert_eq(ks_log_start_offset(log), 0);
    tu_content c;
    rc = tu_read_all(log, &c);
    cr_assert_eq(rc, 0, "%s: reading back failed at %lld: %d", what, (long long)c.err_at, rc);
    cr_assert_eq((int64_t)c.n, want, "%s: %zu records", what, c.n);
    for (size_t i = 0; i < c.n; i++)
        cr_assert(c.r[i].ok && c.r[i].seq == (uint64_t)i && c.r[i].offset == (int64_t)i,
                  "%s: bad record at %zu", what, i);
    tu_content_free(&c);
    tu_append_seq(log, 2, 0);
    rc = ks_log_close(log);
    cr_assert_eq(rc, 0, "%s: close: %s", what, klog_strerror(rc));
}

/* ---- the tail: above the recovery point -------------------------------------- */

/* Cut the last segment at every byte within its last two batches. */
Test(log_recovery, tail_cut_at_every_byte)
{
    image im;
    make_image(&im, 11);
    const batch_loc *b1 = &im.b[im.nb - 2];
    const batch_loc *b2 = &im.b[im.nb - 1];
    char dir[TU_PATH], seg[TU_PATH];
    fresh_copy(&im, dir);
    seg_path(seg, dir, b2->seg, ".log");
    uint64_t full = b2->pos + b2->len;
    for (uint64_t cut = b1->pos; cut <= full; cut++) {
        tu_copy_dir(im.dir, dir);
        tu_truncate(seg, (off_t)cut);
        int64_t want = cut == full ? im.end : cut >= b1->pos + b1->len ? b2->base : b1->base;
        char what[64];
        snprintf(what, sizeof what, "cut at %llu of %llu", (unsigned long long)cut, (unsigned long long)full);
        expect_recovered(&im, dir, want, what);
    }
}

/* Zero the last N bytes (file size unchanged); also zeros past the end. */
Test(log_recovery, tail_zeroed)
{
    image im;
    make_image(&im, 12);
    char dir[TU_PATH], seg[TU_PATH];
    fresh_copy(&im, dir);
    int64_t lastseg = im.segs[im.nsegs - 1];
    seg_path(seg, dir, lastseg, ".log");
    size_t size;
    uint8_t *orig = tu_slurp(seg, &size);
    const batch_loc *bl = &im.b[im.nb - 1], *bp = &im.b[im.nb - 2];
    size_t ns[64];
    int nn = 0;
    for (size_t n = 1; n <= 24; n++)
        ns[nn++] = n;
    size_t more[] = { bl->len - 1, bl->len, bl->len + 1, bl->len + 12, bl->len + bp->len - 1,
                      bl->len + bp->len, bl->len + bp->len + 1, size / 2, size - 1, size };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        ns[nn++] = more[i];
    uint8_t *z = calloc(1, size);
    for (int k = 0; k < nn; k++) {
        size_t n = ns[k];
        tu_copy_dir(im.dir, dir);
        tu_poke(seg, (off_t)(size - n), z, n);
        /* valid prefix: the batches before the first one whose bytes changed */
        int64_t want = im.end;
        for (int i = im.first_in_last; i < im.nb; i++) {
            const batch_loc *b = &im.b[i];
            bool changed = false;
            for (uint64_t p = b->pos; p < b->pos + b->len && !changed; p++)
                changed = p >= size - n && orig[p] != 0;
            if (changed) {
                want = b->base;
                break;
            }
        }
        char what[64];
        snprintf(what, sizeof what, "last %zu bytes zeroed", n);
        expect_recovered(&im, dir, want, what);
    }
    /* a file extended with zeros (size reached disk, data did not) */
    tu_copy_dir(im.dir, dir);
    tu_poke(seg, (off_t)size, z, size < 4096 ? size : 4096);
    expect_recovered(&im, dir, im.end, "zeros past the end");
    free(z);
    free(orig);
}

/* Which header field a byte of a batch belongs to. */
static const char *field_of(uint64_t rel)
{
    if (rel < 8) return "base_offset";
    if (rel < 12) return "batch_length";
    if (rel < 16) return "leader_epoch";
    if (rel < 17) return "magic";
    if (rel < 25) return "checksum";
    if (rel < KF_HDR_SIZE) return "header (checksummed)";
    return "records";
}

/* Leader epoch is outside the checksum (format.h): a flip there is not
 * detectable and changes nothing a reader of records sees. */
static bool harmless(uint64_t rel) { return rel >= 12 && rel < 16; }

/* Flip one bit anywhere in the last segment: the log ends just before the
 * damaged batch. */
Test(log_recovery, tail_bit_flips)
{
    image im;
    make_image(&im, 13);
    char dir[TU_PATH], seg[TU_PATH];
    fresh_copy(&im, dir);
    int64_t lastseg = im.segs[im.nsegs - 1];
    seg_path(seg, dir, lastseg, ".log");
    off_t size = tu_fsize(seg);
    int failures = 0;
    for (uint64_t seed = 0; seed < 300; seed++) {
        tu_rng rng = { 0xb17f11 + seed };
        uint64_t pos = tu_range(&rng, 0, (uint64_t)size - 1);
        unsigned bit = (unsigned)tu_range(&rng, 0, 7);
        tu_copy_dir(im.dir, dir);
        tu_flip_bit(seg, (off_t)pos, bit);
        int d = batch_at(&im, lastseg, pos);
        uint64_t rel = pos - im.b[d].pos;
        int64_t want = harmless(rel) ? im.end : im.b[d].base;
        ks_log *log = NULL;
        int rc = ks_log_open(&log, tu_io, dir, &im.cfg);
        cr_assert_eq(rc, 0, "seed %llu: open failed: %s", (unsigned long long)seed, klog_strerror(rc));
        tu_content c;
        int rr = tu_read_all(log, &c);
        bool ok = rr == 0 && ks_log_end_offset(log) == want && (int64_t)c.n == want;
        for (size_t i = 0; ok && i < c.n; i++)
            ok = c.r[i].ok && c.r[i].seq == (uint64_t)i;
        if (!ok && failures++ < 10)
            cr_log_error("seed %llu: bit %u of byte %llu (%s of the batch at %lld): recovered end %lld, "
                         "expected %lld; read back: %d",
                         (unsigned long long)seed, bit, (unsigned long long)rel, field_of(rel),
                         (long long)im.b[d].base, (long long)ks_log_end_offset(log), (long long)want, rr);
        tu_content_free(&c);
        if (ok)
            tu_append_seq(log, 2, 0);
        ks_log_close(log);
    }
    cr_assert_eq(failures, 0, "%d of 300 tail bit flips were not recovered to the valid prefix", failures);
}

/* Regression: a batch in the tail whose base offset field was raised (it
 * is outside the checksum) is accepted as valid, so recovery keeps it with
 * the wrong offsets instead of truncating before it. */
Test(log_recovery, tail_batch_with_raised_base_offset_is_cut)
{
    image im;
    make_image(&im, 14);
    char dir[TU_PATH], seg[TU_PATH];
    fresh_copy(&im, dir);
    const batch_loc *b = &im.b[im.nb - 2];
    seg_path(seg, dir, b->seg, ".log");
    tu_flip_bit(seg, (off_t)(b->pos + 2), 3); /* base_offset += 2^19 */
    expect_recovered(&im, dir, b->base, "base offset of the last-but-one batch raised by 2^19");
}

/* ---- below the recovery point --------------------------------------------------- */

/* Outcome of reading the damaged batch at base (n records). */
static const char *probe_damaged(ks_log *log, const batch_loc *b)
{
    ks_view v;
    int rc = ks_log_read(log, b->base, 1, &v);
    if (rc == KLOG_ECORRUPT)
        return NULL; /* reported */
    if (rc != 0)
        return "read failed with an unexpected error";
    const char *bad = NULL;
    if (v.len == 0)
        bad = "read returned nothing";
    else if (v.first_offset != b->base)
        bad = "read returned a batch that does not start at the damaged batch's offset";
    if (!bad) {
        tu_content c = { 0 };
        int64_t next = b->base;
        int dr = tu_decode_view(&v, &next, &c);
        if (dr == KLOG_ECORRUPT || dr == KLOG_EFORMAT)
            bad = NULL; /* reported by kf_batch_verify / kf_batch_records / kf_iter_next */
        else if (dr != 0)
            bad = "the batch decodes to offsets other than its own";
        else if ((int)c.n != b->n)
            bad = "the batch verifies but holds a different number of records";
        else {
            bad = "UNDETECTED";
            for (size_t i = 0; i < c.n && bad; i++)
                if (!c.r[i].ok || c.r[i].seq != (uint64_t)(b->base + (int64_t)i))
                    bad = "the batch verifies but its records differ";
        }
        tu_content_free(&c);
    }
    ks_view_release(&v);
    return bad;
}

/* Flip one bit in a sealed segment: the open fails with KLOG_ECORRUPT, or
 * it succeeds, nothing is dropped, and reading the damaged batch reports
 * KLOG_ECORRUPT.  With the segment's indexes intact (trusted, no scan) and
 * with them deleted (rebuilt by a scan at open). */
static void below_rp_flips(bool drop_index, uint64_t seed0)
{
    image im;
    make_image(&im, 15);
    char dir[TU_PATH];
    fresh_copy(&im, dir);
    int failures = 0, opened = 0, refused = 0;
    const int runs = 150;
    for (int k = 0; k < runs; k++) {
        tu_rng rng = { seed0 + (uint64_t)k };
        int si = (int)tu_range(&rng, 0, (uint64_t)im.nsegs - 2); /* a sealed segment */
        char seg[TU_PATH];
        seg_path(seg, dir, im.segs[si], ".log");
        tu_copy_dir(im.dir, dir);
        off_t size = tu_fsize(seg);
        uint64_t pos = tu_range(&rng, 0, (uint64_t)size - 1);
        unsigned bit = (unsigned)tu_range(&rng, 0, 7);
        tu_flip_bit(seg, (off_t)pos, bit);
        if (drop_index) {
            char ix[TU_PATH];
            seg_path(ix, dir, im.segs[si], ".index");
            unlink(ix);
            seg_path(ix, dir, im.segs[si], ".timeindex");
            unlink(ix);
        }
        int d = batch_at(&im, im.segs[si], pos);
        uint64_t rel = pos - im.b[d].pos;
        ks_log *log = NULL;
        int rc = ks_log_open(&log, tu_io, dir, &im.cfg);
        const char *bad = NULL;
        if (rc == KLOG_ECORRUPT) {
            refused++; /* allowed, even for a harmless leader-epoch flip */
        } else if (rc != 0) {
            bad = "open failed with an unexpected error";
        } else {
            opened++;
            if (ks_log_end_offset(log) != im.end)
                bad = "the log silently lost records";
            else {
                bad = probe_damaged(log, &im.b[d]);
                if (bad && strcmp(bad, "UNDETECTED") == 0)
                    bad = harmless(rel) ? NULL : "the damage went unnoticed";
            }
            /* everything else still reads; nothing else is silently missing */
            if (!bad) {
                tu_content c;
                int rr = tu_read_all(log, &c);
                if (rr == TU_EGAP || rr == TU_EVIEW)
                    bad = "reading the whole log skips offsets";
                else if (rr == 0 && !harmless(rel))
                    bad = "the whole log reads back without an error";
                tu_content_free(&c);
            }
            ks_log_close(log);
        }
        if (bad && failures++ < 10)
            cr_log_error("run %d: bit %u of byte %llu (%s) of the batch at %lld in segment %lld%s: %s", k,
                         bit, (unsigned long long)rel, field_of(rel), (long long)im.b[d].base,
                         (long long)im.segs[si], drop_index ? " (indexes deleted)" : "", bad);
    }
    cr_log_info("%d opened, %d refused with KLOG_ECORRUPT", opened, refused);
    cr_assert_eq(failures, 0, "%d of %d bit flips below the recovery point were mishandled", failures, runs);
}

Test(log_recovery, sealed_bit_flips_trusted_indexes) { below_rp_flips(false, 0x5ea1ed); }
Test(log_recovery, sealed_bit_flips_rebuilt_indexes) { below_rp_flips(true, 0xdeadbeef); }

/* Regression: a raised base offset in a sealed segment (outside the
 * checksum) must not make recovery drop acknowledged data. */
Test(log_recovery, sealed_batch_with_raised_base_offset)
{
    image im;
    make_image(&im, 16);
    char dir[TU_PATH], seg[TU_PATH], ix[TU_PATH];
    fresh_copy(&im, dir);
    /* the last batch of the last sealed segment */
    const batch_loc *b = &im.b[im.first_in_last - 1];
    seg_path(seg, dir, b->seg, ".log");
    tu_flip_bit(seg, (off_t)(b->pos + 2), 3);
    seg_path(ix, dir, b->seg, ".index");
    unlink(ix); /* force the scan */
    ks_log *log = NULL;
    int rc = ks_log_open(&log, tu_io, dir, &im.cfg);
    if (rc == 0) {
        int64_t end = ks_log_end_offset(log);
        const char *bad = probe_damaged(log, b);
        ks_log_close(log);
        cr_assert_eq(end, im.end, "recovery dropped acknowledged data below the recovery point: end %lld, was %lld",
                     (long long)end, (long long)im.end);
        cr_assert_null(bad, "damaged batch: %s", bad);
    } else {
        cr_assert_eq(rc, KLOG_ECORRUPT, "open: %s", klog_strerror(rc));
    }
}

/* Regression: a sealed segment that lost whole batches at its end (cut on a
 * batch boundary) is structural damage below the recovery point; it must
 * not be served as a log with a hole. */
Test(log_recovery, sealed_segment_cut_at_batch_boundary)
{
    image im;
    make_image(&im, 17);
    char dir[TU_PATH], seg[TU_PATH];
    fresh_copy(&im, dir);
    const batch_loc *b = &im.b[im.first_in_last - 2];
    seg_path(seg, dir, b->seg, ".log");
    tu_truncate(seg, (off_t)b->pos);
    ks_log *log = NULL;
    int rc = ks_log_open(&log, tu_io, dir, &im.cfg);
    if (rc == KLOG_ECORRUPT)
        return;
    cr_assert_eq(rc, 0, "open: %s", klog_strerror(rc));
    tu_content c;
    int rr = tu_read_all(log, &c);
    int64_t end = ks_log_end_offset(log);
    ks_view v;
    int r1 = ks_log_read(log, b->base, 1, &v);
    int64_t got = v.first_offset;
    ks_view_release(&v);
    tu_content_free(&c);
    ks_log_close(log);
    cr_assert(rr < 0, "sealed segment lost 2 batches at %lld, yet the log (end %lld) reads back %s; "
              "read(%lld) returned the batch at %lld (rc %d)",
              (long long)b->base, (long long)end, rr == 0 ? "cleanly" : "with a hole",
              (long long)b->base, (long long)got, r1);
}

/* Same for a whole middle segment gone. */
Test(log_recovery, middle_segment_missing)
{
    image im;
    make_image(&im, 18);
    char dir[TU_PATH], p[TU_PATH];
    fresh_copy(&im, dir);
    int64_t victim = im.segs[2];
    seg_path(p, dir, victim, ".log");
    cr_assert_eq(unlink(p), 0);
    seg_path(p, dir, victim, ".index");
    unlink(p);
    seg_path(p, dir, victim, ".timeindex");
    unlink(p);
    ks_log *log = NULL;
    int rc = ks_log_open(&log, tu_io, dir, &im.cfg);
    if (rc == KLOG_ECORRUPT)
        return;
    cr_assert_eq(rc, 0, "open: %s", klog_strerror(rc));
    tu_content c;
    int rr = tu_read_all(log, &c);
    tu_content_free(&c);
    ks_log_close(log);
    cr_assert(rr < 0, "segment %lld is gone, yet the log reads back %s (rc %d)", (long long)victim,
              rr == 0 ? "cleanly" : "with a hole", rr);
}

/* ---- the checkpoint, temporary files, indexes -------------------------------- */

static void ckpt_case(int mode)
{
    image im;
    make_image(&im, 20 + (uint64_t)mode);
    char dir[TU_PATH], ck[TU_PATH], seg[TU_PATH];
    fresh_copy(&im, dir);
    tu_path(ck, dir, "recovery.ckpt");
    size_t len;
    uint8_t *b = tu_slurp(ck, &len);
    tu_rng rng = { 99 };
    switch (mode) {
    case 0: cr_assert_eq(unlink(ck), 0); break;
    case 1: for (size_t i = 0; i < len; i++) b[i] = (uint8_t)tu_rand(&rng); tu_spit(ck, b, len); break;
    case 2: tu_truncate(ck, (off_t)len / 2); break;
    case 3: memset(b, 0, len); tu_spit(ck, b, len); break;
    case 4: tu_truncate(ck, 0); break;
    case 5: b[9] ^= 0x01; tu_spit(ck, b, len); break; /* recovery point changed, checksum not */
    default: { uint8_t pad[8] = { 0 }; tu_poke(ck, (off_t)len, pad, sizeof pad); break; }
    }
    free(b);
    expect_recovered(&im, dir, im.end, "checkpoint damaged");
    cr_assert(tu_exists(ck), "recovery.ckpt was not rewritten");
    /* full revalidation still cuts a torn tail */
    tu_copy_dir(im.dir, dir);
    if (mode == 0)
        unlink(ck);
    else
        tu_truncate(ck, 3);
    const batch_loc *last = &im.b[im.nb - 1];
    seg_path(seg, dir, last->seg, ".log");
    tu_truncate(seg, (off_t)(last->pos + last->len / 2));
    expect_recovered(&im, dir, last->base, "checkpoint damaged, tail torn");
}

Test(log_recovery, checkpoint_missing) { ckpt_case(0); }
Test(log_recovery, checkpoint_random) { ckpt_case(1); }
Test(log_recovery, checkpoint_truncated) { ckpt_case(2); }
Test(log_recovery, checkpoint_zeroed) { ckpt_case(3); }
Test(log_recovery, checkpoint_empty) { ckpt_case(4); }
Test(log_recovery, checkpoint_bad_checksum) { ckpt_case(5); }
Test(log_recovery, checkpoint_too_long) { ckpt_case(6); }

Test(log_recovery, leftover_tmp_files_removed)
{
    image im;
    make_image(&im, 30);
    char dir[TU_PATH];
    fresh_copy(&im, dir);
    const char *names[] = { "recovery.ckpt.tmp", "00000000000000000000.index.tmp",
                            "00000000000000000000.timeindex.tmp", "00000000000000999999.log.tmp", "x.tmp" };
    char p[TU_PATH];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        tu_path(p, dir, names[i]);
        tu_spit(p, "half-written", 12);
    }
    /* a read-only open must not touch them */
    ks_log_config ro = im.cfg;
    ro.read_only = true;
    ks_log *log = tu_log_open(tu_io, dir, &ro);
    tu_expect_identity(log, im.end);
    tu_log_close(log);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        tu_path(p, dir, names[i]);
        cr_assert(tu_exists(p), "read-only open removed %s", names[i]);
    }
    expect_recovered(&im, dir, im.end, "leftover .tmp files");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        tu_path(p, dir, names[i]);
        cr_assert(!tu_exists(p), "%s survived the open", names[i]);
    }
}

/* A sealed segment's index (or time index) gone: rebuilt, and every lookup
 * answers as before. */
static void check_lookups(ks_log *log, const image *im)
{
    for (int i = 0; i < im->nb; i++) {
        const batch_loc *b = &im->b[i];
        for (int64_t o = b->base; o < b->base + b->n; o++) {
            ks_view v;
            cr_assert_eq(ks_log_read(log, o, 1, &v), 0);
            cr_assert(v.first_offset == b->base && v.next_offset == b->base + b->n && v.len == b->len,
                      "read(%lld): [%lld,%lld) %zu bytes, expected [%lld,%lld) %zu", (long long)o,
                      (long long)v.first_offset, (long long)v.next_offset, v.len, (long long)b->base,
                      (long long)(b->base + b->n), b->len);
            ks_view_release(&v);
        }
    }
    /* default timestamps grow with the offset: time lookups are exact */
    for (int64_t o = 0; o < im->end; o++) {
        int64_t got;
        cr_assert_eq(ks_log_offset_for_time(log, tu_ts((uint64_t)o), &got), 0);
        cr_assert_eq(got, o, "offset_for_time(ts of %lld) = %lld", (long long)o, (long long)got);
    }
}

static void middle_index_case(const char *sfx)
{
    image im;
    make_image(&im, 40);
    char dir[TU_PATH], p[TU_PATH];
    fresh_copy(&im, dir);
    int64_t victim = im.segs[2];
    seg_path(p, dir, victim, sfx);
    cr_assert_eq(unlink(p), 0);
    ks_log *log = tu_log_open(tu_io, dir, &im.cfg);
    cr_assert_eq(ks_log_end_offset(log), im.end);
    check_lookups(log, &im);
    tu_expect_identity(log, im.end);
    cr_assert(tu_exists(p), "%s of segment %lld was not rebuilt", sfx, (long long)victim);
    tu_log_close(log);
    log = tu_log_open(tu_io, dir, &im.cfg);
    check_lookups(log, &im);
    tu_log_close(log);
}

Test(log_recovery, middle_index_deleted_is_rebuilt) { middle_index_case(".index"); }
Test(log_recovery, middle_timeindex_deleted_is_rebuilt) { middle_index_case(".timeindex"); }

/* The image itself recovers to everything (the baseline of every case). */
Test(log_recovery, crash_image_recovers_whole)
{
    image im;
    make_image(&im, 50);
    char dir[TU_PATH];
    fresh_copy(&im, dir);
    expect_recovered(&im, dir, im.end, "untouched crash image");
    fresh_copy(&im, dir);
    ks_log *log = tu_log_open(tu_io, dir, &im.cfg);
    check_lookups(log, &im);
    tu_log_close(log);
}

/* ---- damaged metadata files: no undefined behaviour ---------------------------- */

/*
 * Checkpoints and index files that decode (right magic, version, length and
 * checksum) but hold any values, beside no segment, an empty one, or real
 * ones.  Fuzzing these files under UBSan found the open path adding 0 to a
 * NULL pointer (the segment list of a directory without segments, in
 * load_segments): undefined behaviour that gcc's UBSan does not report and
 * clang's does ("applying zero offset to null pointer"), so this test
 * fails only in a clang UBSan build:
 *     CC=clang meson setup build-cubsan -Db_sanitize=address,undefined -Db_lundef=false
 *     meson test -C build-cubsan log_recovery
 * Everywhere it checks that every input opens (or is refused with
 * KLOG_ECORRUPT), reads back as far as the log says, and closes.
 */
static void write_ckpt(const char *dir, const char *name, uint32_t magic, int64_t a, int64_t b)
{
    uint8_t buf[KL_CKPT_SIZE];
    char p[TU_PATH];
    kl_ckpt_encode(buf, magic, a, b);
    tu_path(p, dir, name);
    tu_spit(p, buf, sizeof buf);
}

/* An index file for segment `base` with the header values given and
 * `count` entries (rel, pos) = (i * step_rel, i * step_pos). */
static void write_index(const char *dir, int64_t base, uint32_t magic, uint64_t seg_size, int64_t next,
                        uint32_t count, uint32_t step_rel, uint32_t step_pos)
{
    size_t es = kl_ix_esize(magic);
    uint8_t *buf = calloc(1, KL_IX_HDR_SIZE + (size_t)count * es);
    kl_tentry *te = calloc(count ? count : 1, sizeof *te);
    kl_oentry *oe = calloc(count ? count : 1, sizeof *oe);
    cr_assert(buf && te && oe);
    for (uint32_t i = 0; i < count; i++) {
        oe[i] = (kl_oentry){ i * step_rel, i * step_pos };
        te[i] = (kl_tentry){ TU_TS0 + i, i * step_rel, i * step_pos };
    }
    kl_ix_hdr h = { .magic = magic, .base = base, .seg_size = seg_size, .next_offset = next,
                    .first_ts = TU_TS0, .max_ts = TU_TS0 + count, .count = count };
    size_t len = kl_ix_encode(buf, &h, magic == KL_IX_MAGIC_TIME ? (void *)te : (void *)oe);
    char p[TU_PATH];
    seg_path(p, dir, base, magic == KL_IX_MAGIC_TIME ? ".timeindex" : ".index");
    tu_spit(p, buf, len);
    free(buf);
    free(te);
    free(oe);
}

Test(log_recovery, null_plus_zero_in_open_from_damaged_metadata)
{
    static const int64_t vals[] = { 0, 1, 7, 1800, INT64_MAX / 2, INT64_MAX - 1, INT64_MAX };
    enum { NV = sizeof vals / sizeof vals[0] };
    char live[TU_PATH], dir[TU_PATH], p[TU_PATH];
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    /* a small real log: a few segments of records */
    tu_sub(live, "live");
    ks_log *log = tu_log_open(tu_io, live, &cfg);
    while (ks_log_segment_count(log) < 3)
        tu_append_seq(log, 5, 0);
    tu_log_close(log);
    tu_rng rng = { 0x0b5 };
    int opened = 0, refused = 0;
    for (int segs = 0; segs < 3; segs++) {       /* none, one empty, the real log */
        for (int c = 0; c < 40; c++) {
            tu_sub(dir, "case");
            tu_rmrf(dir);
            if (segs == 2) {
                tu_copy_dir(live, dir);
            } else {
                cr_assert_eq(mkdir(dir, 0755), 0);
                if (segs == 1) {
                    seg_path(p, dir, vals[tu_range(&rng, 0, 3)], ".log");
                    tu_spit(p, "", 0);
                }
            }
            write_ckpt(dir, "recovery.ckpt", KL_CKPT_MAGIC_RECOVERY, vals[tu_range(&rng, 0, NV - 1)],
                       vals[tu_range(&rng, 0, NV - 1)]);
            if (tu_range(&rng, 0, 1))
                write_ckpt(dir, "cleaner.ckpt", KL_CKPT_MAGIC_CLEANER, vals[tu_range(&rng, 0, NV - 1)],
                           vals[tu_range(&rng, 0, NV - 1)]);
            if (segs > 0 && tu_range(&rng, 0, 1)) {
                tu_name names[8];
                size_t nn = tu_list(dir, ".log", names, 8);
                int64_t base = nn ? atoll(names[tu_range(&rng, 0, nn - 1)]) : 0;
                uint32_t count = (uint32_t)tu_range(&rng, 0, 4);
                for (int t = 0; t < 2; t++)
                    write_index(dir, base, t ? KL_IX_MAGIC_TIME : KL_IX_MAGIC_OFFSET,
                                (uint64_t)vals[tu_range(&rng, 0, NV - 1)], vals[tu_range(&rng, 0, NV - 1)], count,
                                (uint32_t)tu_range(&rng, 0, 100), (uint32_t)tu_range(&rng, 0, 5000));
            }
            int rc = ks_log_open(&log, tu_io, dir, &cfg);
            cr_assert(rc == 0 || rc == KLOG_ECORRUPT, "segs %d case %d: open: %s", segs, c, klog_strerror(rc));
            if (rc < 0) {
                refused++;
                continue;
            }
            opened++;
            /* read everything the log claims: views, or a clean error */
            int64_t at = ks_log_start_offset(log), end = ks_log_end_offset(log);
            for (int guard = 0; at < end && guard < 100000; guard++) {
                ks_view v;
                int rr = ks_log_read(log, at, 1u << 20, &v);
                cr_assert(rr == 0 || rr == KLOG_ECORRUPT, "segs %d case %d: read at %lld: %s", segs, c,
                          (long long)at, klog_strerror(rr));
                bool progress = rr == 0 && v.next_offset > at;
                at = v.next_offset;
                ks_view_release(&v);
                if (!progress)
                    break;
            }
            ks_log_close(log);
        }
    }
    cr_assert_gt(opened, 0);
    (void)refused;
}

/* ---- the periodic checkpoint (ckpt_interval_ms, recovery.pos) ------------------------ */

static int64_t ck_clock_ms;
static int64_t ck_clock(void *arg)
{
    (void)arg;
    return ck_clock_ms;
}

/* A log with one big active segment: `before` batches, a periodic
 * checkpoint, `after` more batches, then dropped as a kill -9 leaves it
 * (ks_log_abandon: nothing synced or written).  *pos_mid receives a
 * position inside the third batch (its last byte: a record's payload). */
static void periodic_image(const char *dir, int before, int after, int64_t *end, int64_t *rp, uint64_t *pos_mid,
                           uint64_t *pos_after)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    cfg.segment_bytes = 1 << 20;
    cfg.ckpt_interval_ms = 1000;
    cfg.clock_ms = ck_clock;
    ck_clock_ms = 1000000;
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    uint64_t pos = 0;
    for (int i = 0; i < before + after; i++) {
        if (i == before) {
            ck_clock_ms += 999;
            cr_assert_eq(ks_log_tick(log), 0);
            char p[TU_PATH];
            tu_path(p, dir, KL_CKPT_POSITION_NAME);
            cr_assert(!tu_exists(p), "a checkpoint before the interval passed");
            ck_clock_ms += 1;
            cr_assert_eq(ks_log_tick(log), 0);
            cr_assert(tu_exists(p), "no recovery.pos after the interval");
            *rp = ks_log_end_offset(log);
            *pos_after = pos;
        }
        tu_batch b;
        int64_t base;
        tu_build(&b, (uint64_t)ks_log_end_offset(log), 3);
        cr_assert_eq(tu_append1(log, &b, 0, &base), 0);
        pos += b.len;
        if (i == 2)
            *pos_mid = pos - 1;
        tu_batch_free(&b);
    }
    cr_assert_eq(ks_log_segment_count(log), 1);
    *end = ks_log_end_offset(log);
    ks_log_abandon(log);
}

/* ckpt_unchecked_max: an append that leaves more than that past the last
 * checkpoint checkpoints before it returns, no tick needed (a writer
 * faster than the background thread's syncs); 0, or checkpoints off: it
 * does not. */
Test(log_recovery, an_append_past_the_unchecked_bound_checkpoints)
{
    for (int c = 0; c < 3; c++) {
        char dir[TU_PATH], p[TU_PATH];
        tu_sub(dir, c == 0 ? "ub" : c == 1 ? "ub0" : "uboff");
        ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
        cfg.segment_bytes = 1 << 20;
        cfg.ckpt_interval_ms = c == 2 ? 0 : 1000;
        cfg.ckpt_unchecked_max = c == 1 ? 0 : 4096;
        cfg.clock_ms = ck_clock; /* frozen: no checkpoint falls due by time */
        ck_clock_ms = 1000000;
        ks_log *log = tu_log_open(tu_io, dir, &cfg);
        tu_path(p, dir, KL_CKPT_POSITION_NAME);
        uint64_t pos = 0, maxlen = 0;
        int64_t rp_seen = -1;
        for (int i = 0; i < 200 && pos <= 3 * 4096; i++) {
            tu_batch b;
            int64_t base;
            tu_build(&b, (uint64_t)ks_log_end_offset(log), 3);
            cr_assert_eq(tu_append1(log, &b, 0, &base), 0);
            pos += b.len;
            maxlen = b.len > maxlen ? b.len : maxlen;
            tu_batch_free(&b);
            if (pos <= 4096)
                cr_assert(!tu_exists(p), "case %d: a checkpoint below the bound", c);
            else if (c == 0 && rp_seen < 0) {
                cr_assert(tu_exists(p), "no recovery.pos once an append left %llu bytes unchecked",
                          (unsigned long long)pos);
                rp_seen = ks_log_end_offset(log);
            }
        }
        cr_assert_gt(pos, 3 * 4096);
        if (c == 0) {
            /* the last checkpoint is at most a bound (plus a batch) behind */
            int64_t rp, at;
            cr_assert_eq(ks__pos_read(tu_io, dir, &rp, &at), 0);
            cr_assert_geq(rp, rp_seen, "the checkpoint moved on with the appends");
            cr_assert_leq(pos - (uint64_t)at, 4096 + maxlen, "%llu bytes past the checkpoint",
                          (unsigned long long)(pos - (uint64_t)at));
        } else {
            cr_assert(!tu_exists(p), "case %d: no bound, no checkpoint before a tick", c);
        }
        ks_log_abandon(log);
        tu_rmrf(dir);
    }
}

Test(log_recovery, periodic_checkpoint_trusts_its_prefix_and_checks_the_rest)
{
    char dir[TU_PATH], seg[TU_PATH], p[TU_PATH];
    int64_t end, rp;
    uint64_t mid, after;
    tu_sub(dir, "pc");
    periodic_image(dir, 40, 10, &end, &rp, &mid, &after);
    cr_assert_gt(rp, 0);
    seg_path(seg, dir, 0, ".log");
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    cfg.segment_bytes = 1 << 20;

    /* whole: everything back, end where it was */
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    cr_assert_eq(ks_log_end_offset(log), end);
    tu_expect_identity(log, end);
    tu_log_close(log);

    /* again, with a payload byte flipped below the recovery point: the
     * prefix is trusted (its headers walked, its bytes not read), so the
     * open succeeds... */
    tu_rmrf(dir);
    periodic_image(dir, 40, 10, &end, &rp, &mid, &after);
    tu_flip_bit(seg, (off_t)mid, 0);
    log = tu_log_open(tu_io, dir, &cfg);
    cr_assert_eq(ks_log_end_offset(log), end, "the prefix was scanned after all");
    ks_log_abandon(log);
    /* ...which it would not without recovery.pos: every byte is checked
     * and the flip is damage below the recovery point */
    tu_path(p, dir, KL_CKPT_POSITION_NAME);
    cr_assert_eq(unlink(p), 0);
    ks_log *bad = NULL;
    cr_assert_eq(ks_log_open(&bad, tu_io, dir, &cfg), KLOG_ECORRUPT);

    /* a torn write above the recovery point is cut there, as before */
    tu_rmrf(dir);
    periodic_image(dir, 40, 10, &end, &rp, &mid, &after);
    tu_truncate(seg, (off_t)tu_fsize(seg) - 5);
    log = tu_log_open(tu_io, dir, &cfg);
    cr_assert_lt(ks_log_end_offset(log), end);
    cr_assert_geq(ks_log_end_offset(log), rp);
    tu_log_close(log);

    /* recovery.pos that disagrees with recovery.ckpt is not used */
    tu_rmrf(dir);
    periodic_image(dir, 40, 10, &end, &rp, &mid, &after);
    write_ckpt(dir, KL_CKPT_POSITION_NAME, KL_CKPT_MAGIC_POSITION, rp + 3, (int64_t)after);
    tu_flip_bit(seg, (off_t)mid, 0);
    bad = NULL;
    cr_assert_eq(ks_log_open(&bad, tu_io, dir, &cfg), KLOG_ECORRUPT);
    /* nor one whose position is not a batch boundary */
    write_ckpt(dir, KL_CKPT_POSITION_NAME, KL_CKPT_MAGIC_POSITION, rp, (int64_t)after - 1);
    bad = NULL;
    cr_assert_eq(ks_log_open(&bad, tu_io, dir, &cfg), KLOG_ECORRUPT);
}
