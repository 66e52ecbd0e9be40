/*
 * The public API on libklog-testing's simulated disk (klog/testing.h):
 * the testing library itself (arguments, lifetime, one instance at a time,
 * the hook in libklog refusing a vtable it cannot use, the error code that
 * left the public band), then producers, consumers and group commits while
 * the disk fails writes and syncs with ENOSPC and EIO.
 *
 * What every fault case checks: the failure is reported to the call or the
 * delivery report that met it, with the injected code (or KLOG_EREADONLY
 * for a partition that failed an fsync); nothing acknowledged before,
 * around or after it is lost or moved; and the instance closes and opens
 * again, on the same fault after a reboot and on the plain backends.
 * Power cuts are in fault_crash.c.
 */
#include "fault_util.h"

TestSuite(fault, .init = fu_setup, .fini = ut_rmdir, .timeout = 120);

/* ---- the testing library ------------------------------------------------------------ */

Test(fault, error_code_left_the_public_band)
{
    cr_assert(KLOG_TESTING_ECRASHED < KLOG_ERR_FIRST || KLOG_TESTING_ECRASHED > KLOG_ERR_LAST);
    cr_assert_str_eq(klog_err_name(KLOG_TESTING_ECRASHED), "KLOG_TESTING_ECRASHED");
    cr_assert(strstr(klog_strerror(KLOG_TESTING_ECRASHED), "power cut") != NULL);
    /* its old value in the band is retired, not reused */
    cr_assert_str_eq(klog_err_name(-30913), "KLOG_E?");
    cr_assert_str_eq(klog_strerror(-30913), "unknown error");
}

Test(fault, arguments)
{
    cr_assert_eq(klog_testing_fault_new(NULL), -EINVAL);
    klog_testing_fault_free(NULL);
    klog_conf *c = ut_conf(NULL);
    cr_assert_eq(klog_testing_conf_set_fault(NULL, NULL), -EINVAL);
    cr_assert_eq(klog_conf_set_io_methods(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(klog_testing_fault_fail(NULL, KLOG_TESTING_OP_WRITE, 1, -EIO, 0), -EINVAL);
    cr_assert_eq(klog_testing_fault_clear(NULL), -EINVAL);
    cr_assert_eq(klog_testing_fault_crash(NULL, KLOG_TESTING_CRASH_DROP, 0, 0), -EINVAL);
    cr_assert_eq(klog_testing_fault_crash_at(NULL, KLOG_TESTING_OP_ALL, 1, KLOG_TESTING_CRASH_DROP, 0, 0),
                 -EINVAL);
    cr_assert_eq(klog_testing_fault_crashed(NULL), -EINVAL);
    cr_assert_eq(klog_testing_fault_reboot(NULL), -EINVAL);
    cr_assert_eq(klog_testing_fault_ops(NULL, KLOG_TESTING_OP_ALL), 0);

    klog_testing_fault *f = fu_fault();
    cr_assert_eq(klog_testing_fault_fail(f, 0, 1, -EIO, 0), -EINVAL, "no class");
    cr_assert_eq(klog_testing_fault_fail(f, 1u << 12, 1, -EIO, 0), -EINVAL, "unknown class");
    cr_assert_eq(klog_testing_fault_fail(f, KLOG_TESTING_OP_WRITE, 0, -EIO, 0), -EINVAL, "nth is 1-based");
    cr_assert_eq(klog_testing_fault_fail(f, KLOG_TESTING_OP_WRITE, 1, EIO, 0), -EINVAL, "positive errno");
    cr_assert_eq(klog_testing_fault_fail(f, KLOG_TESTING_OP_WRITE, 1, -EIO, 1u << 7), -EINVAL, "flags");
    for (int i = 0; i < 16; i++)
        cr_assert_eq(klog_testing_fault_fail(f, KLOG_TESTING_OP_READ, 1000 + i, -EIO, 0), 0);
    cr_assert_eq(klog_testing_fault_fail(f, KLOG_TESTING_OP_READ, 1, -EIO, 0), -ENOSPC, "17th rule");
    cr_assert_eq(klog_testing_fault_clear(f), 0);
    cr_assert_eq(klog_testing_fault_fail(f, KLOG_TESTING_OP_READ, 1, -EIO, 0), 0, "cleared");
    cr_assert_eq(klog_testing_fault_crash_at(f, KLOG_TESTING_OP_ALL, 0, KLOG_TESTING_CRASH_DROP, 0, 0), -EINVAL);
    cr_assert_eq(klog_testing_fault_crash_at(f, KLOG_TESTING_OP_ALL, 1, (enum klog_testing_crash_mode)9, 0, 0),
                 -EINVAL);
    cr_assert_eq(klog_testing_fault_crash(f, KLOG_TESTING_CRASH_DROP, 1u << 5, 0), -EINVAL);
    cr_assert_eq(klog_testing_fault_crashed(f), 0);
    cr_assert_eq(klog_testing_fault_crash(f, KLOG_TESTING_CRASH_ZERO, 0, 1), 0);
    cr_assert_eq(klog_testing_fault_crashed(f), 1);
    cr_assert_eq(klog_testing_fault_crash(f, KLOG_TESTING_CRASH_ZERO, 0, 1), KLOG_TESTING_ECRASHED);
    cr_assert_eq(klog_testing_fault_crash_at(f, KLOG_TESTING_OP_ALL, 1, KLOG_TESTING_CRASH_DROP, 0, 0),
                 KLOG_TESTING_ECRASHED);
    cr_assert_eq(klog_testing_fault_reboot(f), 0);
    cr_assert_eq(klog_testing_fault_crashed(f), 0);
    cr_assert_eq(klog_testing_conf_set_fault(c, f), 0);
    cr_assert_eq(klog_testing_conf_set_fault(c, NULL), 0);
    klog_conf_free(c);
    klog_testing_fault_free(f);
}

/* The instance runs on the fault: its I/O is counted there, the backend is
 * named "fault", and a conf without it opens on the shipped backends. */
Test(fault, instance_runs_on_the_fault)
{
    char dir[256];
    fu_sub(dir, sizeof dir, "d");
    klog_testing_fault *f = fu_fault();
    cr_assert_eq(klog_testing_fault_ops(f, KLOG_TESTING_OP_ALL), 0);
    klog *k = fu_open_ok(dir, f);
    cr_assert_str_eq(klog_io_backend(k), "fault");
    ut_topic(k, "t", 1, NULL);
    uint64_t syncs = klog_testing_fault_ops(f, KLOG_TESTING_OP_SYNC);
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "v"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_gt(klog_testing_fault_ops(f, KLOG_TESTING_OP_SYNC), syncs, "acks=all synced through the fault");
    cr_assert_gt(klog_testing_fault_ops(f, KLOG_TESTING_OP_WRITE), 0);
    cr_assert_eq(klog_testing_fault_ops(f, KLOG_TESTING_OP_ALL),
                 klog_testing_fault_ops(f, KLOG_TESTING_OP_ALL & ~KLOG_TESTING_OP_READ) +
                     klog_testing_fault_ops(f, KLOG_TESTING_OP_READ));
    cr_assert_eq(klog_close(k), 0);
    cr_assert_eq(klog_testing_fault_reboot(f), 0);

    klog *k2 = fu_open_ok(dir, NULL);
    cr_assert_str_neq(klog_io_backend(k2), "fault");
    cr_assert_eq(ut_end_offset(k2, "t", 0), 1);
    cr_assert_eq(klog_close(k2), 0);
    klog_testing_fault_free(f);
}

/* One instance at a time per fault; no reboot under a live instance; the
 * instance keeps the fault alive after klog_testing_fault_free. */
Test(fault, one_instance_at_a_time_and_lifetime)
{
    char d1[256], d2[256], err[256] = "";
    fu_sub(d1, sizeof d1, "a");
    fu_sub(d2, sizeof d2, "b");
    klog_testing_fault *f = fu_fault();
    klog *k = fu_open_ok(d1, f), *k2 = NULL;
    int rc = fu_open(&k2, d2, f, err, sizeof err, NULL);
    cr_assert_eq(rc, -EBUSY, "second instance on one fault: %s (%s)", klog_err_name(rc), err);
    cr_assert_null(k2);
    cr_assert_eq(klog_testing_fault_reboot(f), -EBUSY);

    /* the instance holds its own reference: free, then use and close */
    klog_testing_fault_free(f);
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ut_send(p, "t", 0, NULL, "v"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(klog_close(k), 0);

    /* a fresh fault, and after the first instance closed, the next opens */
    f = fu_fault();
    k = fu_open_ok(d1, f);
    cr_assert_eq(ut_end_offset(k, "t", 0), 5);
    cr_assert_eq(klog_close(k), 0);
    k = fu_open_ok(d2, f);
    cr_assert_eq(klog_close(k), 0);
    klog_testing_fault_free(f);
}

/* libklog's hook checks the vtable it is handed (magic, version, size)
 * before it calls anything in it: a stale or foreign one fails the open. */
Test(fault, hook_refuses_a_vtable_it_cannot_use)
{
    char dir[256], err[256] = "";
    fu_sub(dir, sizeof dir, "d");
    static const struct { uint32_t version, size; const char *name; } bogus = { 0x12345678u, 8, "bogus" };
    klog_conf *c = ut_conf(NULL);
    cr_assert_eq(klog_conf_set_io_methods(c, &bogus, NULL), 0);
    klog *k = NULL;
    int rc = klog_open(&k, dir, c, err, sizeof err);
    cr_assert_eq(rc, -EINVAL, "%s (%s)", klog_err_name(rc), err);
    cr_assert_null(k);
    /* NULL puts the shipped backends back */
    cr_assert_eq(klog_conf_set_io_methods(c, NULL, NULL), 0);
    rc = klog_open(&k, dir, c, err, sizeof err);
    cr_assert_eq(rc, 0, "%s (%s)", klog_err_name(rc), err);
    cr_assert_str_neq(klog_io_backend(k), "fault");
    cr_assert_eq(klog_close(k), 0);
    klog_conf_free(c);
}

/* A power cut with the instance closed: the next open on the fault fails
 * until the reboot, after which both the fault and the plain backends
 * open it; what was acknowledged is there. */
Test(fault, no_open_while_the_power_is_off)
{
    char dir[256], err[256] = "";
    fu_sub(dir, sizeof dir, "d");
    klog_testing_fault *f = fu_fault();
    klog *k = fu_open_ok(dir, f);
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "durable"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(klog_close(k), 0);
    cr_assert_eq(klog_testing_fault_crash(f, KLOG_TESTING_CRASH_GARBAGE, KLOG_TESTING_CRASH_LOSE_DIRENTS, 7), 0);
    k = NULL;
    int rc = fu_open(&k, dir, f, err, sizeof err, NULL);
    cr_assert_eq(rc, KLOG_TESTING_ECRASHED, "%s (%s)", klog_err_name(rc), err);
    cr_assert_eq(klog_testing_fault_reboot(f), 0);
    k = fu_open_ok(dir, f);
    size_t n;
    bool exists;
    ut_msg *m = fu_read_all(k, "t", 0, &n, &exists);
    cr_assert(exists);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(m[0].value, "durable");
    ut_msgs_free(m, n);
    cr_assert_eq(klog_close(k), 0);
    klog_testing_fault_free(f);
}

/* ---- producers under ENOSPC and EIO ------------------------------------------------------- */

#define PF_RECORDS 30

typedef struct pf_run {
    ut_dr dr;
    int send_rc[PF_RECORDS]; /* klog_producer_send's code per record */
} pf_run;

/* The reports of dr by record (opaque = index + 1); each record at most
 * one report, and exactly one if its send returned 0. */
static void pf_reports(pf_run *r, const klog_delivery **by)
{
    for (int i = 0; i < PF_RECORDS; i++)
        by[i] = NULL;
    for (size_t j = 0; j < r->dr.n; j++) {
        uintptr_t id = (uintptr_t)r->dr.d[j].opaque;
        cr_assert(id >= 1 && id <= PF_RECORDS, "report for an unknown record %zu", (size_t)id);
        cr_assert_null(by[id - 1], "two reports for record %zu", (size_t)id - 1);
        by[id - 1] = &r->dr.d[j];
    }
    for (int i = 0; i < PF_RECORDS; i++)
        cr_assert_eq(by[i] != NULL, r->send_rc[i] == 0, "record %d: send %s, %s", i, klog_err_name(r->send_rc[i]),
                     by[i] ? "reported" : "no report");
}

/* Send record i (value "r<i>") and flush, one batch per record, so that a
 * fault on the nth write or sync meets one known record. */
static void pf_send(klog_producer *p, pf_run *r, int i)
{
    char v[32];
    snprintf(v, sizeof v, "r%02d", i);
    klog_record rec = KLOG_RECORD_INIT;
    rec.partition = 0;
    rec.value = v;
    rec.value_len = strlen(v);
    rec.opaque = (void *)(uintptr_t)(i + 1);
    r->send_rc[i] = klog_producer_send(p, "t", &rec);
    cr_assert_eq(klog_producer_flush(p, 30000), 0);
}

/* After a reopen: every acknowledged record is at its reported offset with
 * its value; offsets dense from 0; no record twice; only records that were
 * sent.  Returns the end offset. */
static int64_t pf_check(klog *k, pf_run *r, const char *what)
{
    const klog_delivery *by[PF_RECORDS];
    pf_reports(r, by);
    size_t n;
    bool exists;
    ut_msg *m = fu_read_all(k, "t", 0, &n, &exists);
    cr_assert(exists, "%s: topic lost", what);
    bool seen[PF_RECORDS] = { false };
    for (size_t j = 0; j < n; j++) {
        cr_assert_eq(m[j].offset, (int64_t)j, "%s: offsets not dense at %zu", what, j);
        int id = -1;
        cr_assert(m[j].value && sscanf(m[j].value, "r%d", &id) == 1 && id >= 0 && id < PF_RECORDS,
                  "%s: offset %zu holds a record never sent", what, j);
        cr_assert(!seen[id], "%s: record %d twice", what, id);
        seen[id] = true;
    }
    for (int i = 0; i < PF_RECORDS; i++) {
        if (!by[i] || by[i]->err != 0)
            continue;
        int64_t off = by[i]->offset;
        cr_assert(off >= 0 && (size_t)off < n, "%s: acknowledged record %d (offset %lld) lost", what, i,
                  (long long)off);
        char v[32];
        snprintf(v, sizeof v, "r%02d", i);
        cr_assert_str_eq(m[off].value, v, "%s: offset %lld", what, (long long)off);
    }
    ut_msgs_free(m, n);
    return (int64_t)n;
}

/*
 * One producer run: 10 records, then the rule armed, 10 records meeting
 * it, the rule cleared, 10 more.  want_err is the code the report (or the
 * send) of the record that met the fault must carry.  Then close, reboot,
 * reopen on the fault and on the plain backends, check.
 */
static void pf_case(const char *acks, unsigned ops, uint64_t nth, int err, unsigned flags, int want_err)
{
    char dir[256], what[160];
    snprintf(what, sizeof what, "acks=%s, %s on op %llu of 0x%x%s", acks, klog_err_name(err),
             (unsigned long long)nth, ops, (flags & KLOG_TESTING_FAIL_STICKY) ? " (sticky)" : "");
    fu_sub(dir, sizeof dir, "p");
    klog_testing_fault *f = fu_fault();
    klog *k = fu_open_ok(dir, f);
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "acks", acks, "linger.ms", "0", NULL);
    pf_run r;
    memset(&r, 0, sizeof r);
    ut_dr_init(&r.dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &r.dr), 0);
    for (int i = 0; i < 10; i++)
        pf_send(p, &r, i);
    cr_assert_eq(r.dr.errors, 0, "%s: failed before the fault", what);
    cr_assert_eq(klog_testing_fault_fail(f, ops, nth, err, flags), 0);
    for (int i = 10; i < 20; i++)
        pf_send(p, &r, i);
    cr_assert_eq(klog_testing_fault_clear(f), 0);
    for (int i = 20; i < PF_RECORDS; i++)
        pf_send(p, &r, i);

    /* the fault was reported, with the right code, on the record it met */
    const klog_delivery *by[PF_RECORDS];
    pf_reports(&r, by);
    int first_bad = -1;
    for (int i = 0; i < PF_RECORDS && first_bad < 0; i++)
        if (r.send_rc[i] != 0 || by[i]->err != 0)
            first_bad = i;
    cr_assert_geq(first_bad, 10, "%s: no record failed", what);
    cr_assert_lt(first_bad, 20, "%s: no record failed while the rule was armed", what);
    int got = r.send_rc[first_bad] ? r.send_rc[first_bad] : by[first_bad]->err;
    cr_assert_eq(got, want_err, "%s: record %d failed with %s", what, first_bad, klog_err_name(got));
    /* a partition that failed an fsync takes nothing more until reopened;
     * after an ENOSPC or EIO on a write the next records go through */
    for (int i = 20; i < PF_RECORDS; i++) {
        int rc = r.send_rc[i] ? r.send_rc[i] : by[i]->err;
        if (ops == KLOG_TESTING_OP_SYNC)
            cr_assert_eq(rc, KLOG_EREADONLY, "%s: record %d after a failed fsync: %s", what, i, klog_err_name(rc));
        else
            cr_assert_eq(rc, 0, "%s: record %d after the rule was cleared: %s", what, i, klog_err_name(rc));
    }
    klog_producer_close(p); /* returns the first report's error */
    int crc = klog_close(k);
    cr_assert(crc == 0 || crc == want_err || crc == KLOG_EREADONLY, "%s: close: %s", what, klog_err_name(crc));

    /* reopen on the same fault after a (clean) reboot, then on the plain
     * backends: everything acknowledged is there */
    cr_assert_eq(klog_testing_fault_reboot(f), 0);
    k = fu_open_ok(dir, f);
    int64_t end = pf_check(k, &r, what);
    cr_assert_eq(klog_close(k), 0);
    klog_testing_fault_free(f);
    k = fu_open_ok(dir, NULL);
    cr_assert_eq(pf_check(k, &r, what), end);
    /* and it takes records again */
    klog_producer *p2 = ut_producer(k, "acks", "all", NULL);
    cr_assert_eq(ut_send(p2, "t", 0, NULL, "after"), 0);
    cr_assert_eq(klog_producer_close(p2), 0);
    cr_assert_eq(ut_end_offset(k, "t", 0), end + 1);
    cr_assert_eq(klog_close(k), 0);
    ut_dr_fini(&r.dr);
}

Test(fault, producer_enospc_on_a_write)
{
    pf_case("all", KLOG_TESTING_OP_WRITE, 3, -ENOSPC, 0, -ENOSPC);
    pf_case("1", KLOG_TESTING_OP_WRITE, 3, -ENOSPC, 0, -ENOSPC);
}

Test(fault, producer_enospc_sticky_until_cleared)
{
    pf_case("all", KLOG_TESTING_OP_WRITE, 2, -ENOSPC, KLOG_TESTING_FAIL_STICKY, -ENOSPC);
    pf_case("1", KLOG_TESTING_OP_WRITE, 1, -ENOSPC, KLOG_TESTING_FAIL_STICKY, -ENOSPC);
}

Test(fault, producer_eio_on_a_write)
{
    pf_case("all", KLOG_TESTING_OP_WRITE, 4, -EIO, 0, -EIO);
    pf_case("1", KLOG_TESTING_OP_WRITE, 4, -EIO, 0, -EIO);
}

Test(fault, producer_eio_on_fsync_turns_the_partition_read_only)
{
    pf_case("all", KLOG_TESTING_OP_SYNC, 2, -EIO, 0, -EIO);
}

/* ---- consumers and group commits under ENOSPC and EIO ---------------------------------------- */

/* 20 records (acks=all) in topic t; a consumer of group g on t-0. */
static klog_consumer *cf_setup(klog *k)
{
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    for (int i = 0; i < 20; i++) {
        char v[32];
        snprintf(v, sizeof v, "r%02d", i);
        cr_assert_eq(ut_send(p, "t", 0, NULL, v), 0);
    }
    cr_assert_eq(klog_producer_close(p), 0);
    return ut_consumer(k, "group.id", "g", "enable.auto.commit", "false", "auto.offset.reset", "earliest", NULL);
}

static int64_t committed(klog *k)
{
    int64_t off = -2;
    int rc = klog_group_committed(k, "g", "t", 0, &off);
    cr_assert_eq(rc, 0, "klog_group_committed: %s", klog_err_name(rc));
    return off;
}

/*
 * A disk that fails every write and sync from some point on (sticky): the
 * consumer still reads every acknowledged record; a synchronous commit
 * fails with the injected code and leaves the committed offset where it
 * was; once the disk heals a commit succeeds (or, after a failed fsync of
 * the offsets log, is refused with KLOG_EREADONLY until a reopen); after a
 * reopen the committed offset is the last one a commit acknowledged (or
 * the one whose fsync failed: written, its fate unknown).
 */
static void cf_case(unsigned ops, int err)
{
    char dir[256], what[96];
    snprintf(what, sizeof what, "%s on every op of 0x%x", klog_err_name(err), ops);
    fu_sub(dir, sizeof dir, "c");
    klog_testing_fault *f = fu_fault();
    klog *k = fu_open_ok(dir, f);
    klog_consumer *c = cf_setup(k);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 5), 0);
    cr_assert_eq(klog_consumer_commit(c, NULL, 0), 0, "%s: first commit", what);
    cr_assert_eq(committed(k), 5);

    cr_assert_eq(klog_testing_fault_fail(f, ops, 1, err, KLOG_TESTING_FAIL_STICKY), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 15, &n);
    cr_assert_eq(n, 15, "%s: the consumer reads on a failing disk", what);
    for (size_t i = 0; i < n; i++) {
        char v[32];
        snprintf(v, sizeof v, "r%02zu", i + 5);
        cr_assert_eq(m[i].offset, (int64_t)i + 5);
        cr_assert_str_eq(m[i].value, v);
    }
    ut_msgs_free(m, n);
    int rc = klog_consumer_commit(c, NULL, 0);
    cr_assert_eq(rc, err, "%s: commit returned %s", what, klog_err_name(rc));
    cr_assert_eq(committed(k), 5, "%s: a failed commit moved the committed offset", what);
    int64_t pos = -1;
    cr_assert_eq(klog_consumer_position(c, "t", 0, &pos), 0);
    cr_assert_eq(pos, 20, "%s: the position is the consumer's, not the commit's", what);

    cr_assert_eq(klog_testing_fault_clear(f), 0);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, 12), 0);
    rc = klog_consumer_commit(c, NULL, 0);
    int64_t acked = 5;
    if (ops & KLOG_TESTING_OP_SYNC) {
        cr_assert_eq(rc, KLOG_EREADONLY, "%s: commit after a failed fsync: %s", what, klog_err_name(rc));
    } else {
        cr_assert_eq(rc, 0, "%s: commit on a healed disk: %s", what, klog_err_name(rc));
        acked = 12;
    }
    cr_assert_eq(committed(k), acked);
    cr_assert_eq(klog_consumer_close(c), 0);
    int crc = klog_close(k);
    cr_assert(crc == 0 || crc == err || crc == KLOG_EREADONLY, "%s: close: %s", what, klog_err_name(crc));
    cr_assert_eq(klog_testing_fault_reboot(f), 0);
    klog_testing_fault_free(f);

    k = fu_open_ok(dir, NULL);
    /* a commit whose fsync failed was written all the same: its outcome is
     * unknown (as after any failed fsync), so it may show up now; one whose
     * write failed never reached the disk */
    int64_t now = committed(k);
    if (ops & KLOG_TESTING_OP_SYNC)
        cr_assert(now == acked || now == 20, "%s: after reopening: %lld", what, (long long)now);
    else
        cr_assert_eq(now, acked, "%s: after reopening", what);
    bool exists;
    m = fu_read_all(k, "t", 0, &n, &exists);
    cr_assert_eq(n, 20);
    ut_msgs_free(m, n);
    /* commits work again */
    c = ut_consumer(k, "group.id", "g", "enable.auto.commit", "false", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 17), 0);
    cr_assert_eq(klog_consumer_commit(c, NULL, 0), 0);
    cr_assert_eq(klog_consumer_close(c), 0);
    cr_assert_eq(committed(k), 17);
    cr_assert_eq(klog_close(k), 0);
}

Test(fault, consumer_and_commit_enospc_on_writes)
{
    cf_case(KLOG_TESTING_OP_WRITE, -ENOSPC);
}

Test(fault, consumer_and_commit_eio_on_writes)
{
    cf_case(KLOG_TESTING_OP_WRITE, -EIO);
}

Test(fault, consumer_and_commit_eio_on_syncs)
{
    cf_case(KLOG_TESTING_OP_SYNC, -EIO);
}
