/*
 * test/storage/epoch.c - the leader epoch cache and leader-epoch-checkpoint
 * (lib/storage/epoch.h).
 *
 *   - Kafka's rules, table-driven: assign (new epochs, an epoch already
 *     implied, an equal epoch at a lower offset, a lower epoch, an offset
 *     below the tail), truncate_from_end, truncate_from_start; after every
 *     step the file holds exactly Kafka's text for the cache, a reload gives
 *     the same cache, and a step that changes nothing does no I/O at all;
 *   - end_offset_for (OffsetsForLeaderEpoch) and epoch_for_offset, tables;
 *   - the follower truncation exchange of KIP-101 (its two scenarios) and
 *     KIP-279 (iterating over epochs the leader never saw), and random
 *     divergent histories: the exchange always stops at the first offset
 *     where the two lineages differ, and replicating from there makes the
 *     follower's cache the leader's;
 *   - loading: Kafka's own file text, a missing and an empty file, CRLF and
 *     extra blanks; malformed files (bad version, bad and huge counts,
 *     every proper prefix of a valid file, non-numeric, out of range,
 *     negative, decreasing or equal epochs, decreasing offsets, extra
 *     lines, a file too big to be one) fail with KLOG_ECORRUPT or
 *     KLOG_EFORMAT; the count and size caps are checked before memory is
 *     set aside (under a data-segment limit); random mutations never crash
 *     and never load a cache that breaks the invariant;
 *   - an I/O error at each op of a write leaves the cache as it was, the
 *     file old or new, and the next change repairs the file;
 *   - a crash injected at every I/O op of each step of a sequence of
 *     changes, in every crash mode of the fault backend, with and without
 *     losing un-dirsynced directory entries: the reloaded file is the cache
 *     before or after the step (after, once the step returned), never an
 *     error.
 */
#include <sys/resource.h>

#include "util.h"

#include "storage/epoch.h"

/* Every test works under /dev/shm when there is one: the crash test reruns
 * each step hundreds of times and the history tests write thousands of
 * files, each write syncing twice (the crashes are simulated by the fault
 * backend whatever the file system).  ep_root is that root, ep_dir a
 * directory in it for tests that need one. */
static char shm_root[TU_PATH];
static char ep_root[TU_PATH];
static char ep_dir[TU_PATH];

static void ep_setup(void)
{
    tu_setup();
    tu_fast_root(shm_root, ep_root, "ep");
    snprintf(ep_dir, sizeof ep_dir, "%s/p", ep_root);
    cr_assert_eq(mkdir(ep_dir, 0755), 0);
}

static void ep_teardown(void)
{
    tu_fast_root_free(shm_root);
    tu_teardown();
}

/* path = ep_root/name */
static void ep_sub(char *out, const char *name)
{
    snprintf(out, TU_PATH, "%s/%s", ep_root, name);
}

TestSuite(epoch, .init = ep_setup, .fini = ep_teardown, .timeout = 240);

/* ---- helpers ------------------------------------------------------------------ */

#define MAXE 32

typedef struct state {
    size_t n;
    ks_epoch_entry e[MAXE];
} state;

static void snap(const ks_epochs *c, state *s)
{
    s->n = ks_epochs_count(c);
    cr_assert_leq(s->n, MAXE);
    for (size_t i = 0; i < s->n; i++)
        cr_assert_eq(ks_epochs_entry(c, i, &s->e[i]), 0);
    ks_epoch_entry x;
    cr_assert_eq(ks_epochs_entry(c, s->n, &x), -ERANGE);
}

static bool state_eq(const state *a, const state *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->e[i].epoch != b->e[i].epoch || a->e[i].start_offset != b->e[i].start_offset)
            return false;
    return true;
}

static const char *state_str(const state *s)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ % 4];
    size_t len = 0;
    len += (size_t)snprintf(b + len, 1024 - len, "[");
    for (size_t i = 0; i < s->n && len < 1000; i++)
        len += (size_t)snprintf(b + len, 1024 - len, "%s(%d,%lld)", i ? " " : "", (int)s->e[i].epoch,
                                (long long)s->e[i].start_offset);
    snprintf(b + len, 1024 - len, "]");
    return b;
}

static ks_epochs *ep_open(kio *io, const char *dir)
{
    ks_epochs *c = NULL;
    int rc = ks_epochs_open(&c, io, dir);
    cr_assert_eq(rc, 0, "ks_epochs_open %s: %s", dir, klog_strerror(rc));
    cr_assert_not_null(c);
    return c;
}

/* Reload dir's file into a state (asserting the load succeeds). */
static void reload(const char *dir, state *s)
{
    ks_epochs *c = ep_open(tu_io, dir);
    snap(c, s);
    ks_epochs_close(c);
}

/* Kafka's text for a state. */
static size_t kafka_text(const state *s, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "0\n%zu\n", s->n);
    for (size_t i = 0; i < s->n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%d %lld\n", (int)s->e[i].epoch,
                                (long long)s->e[i].start_offset);
    cr_assert_lt(len, cap);
    return len;
}

static void file_path(char *out, const char *dir)
{
    tu_path(out, dir, KS_EPOCH_FILE);
}

/* The file in dir holds exactly Kafka's text for s. */
static void expect_file(const char *dir, const state *s, const char *what)
{
    char path[TU_PATH], want[4096];
    file_path(path, dir);
    size_t wlen = kafka_text(s, want, sizeof want);
    size_t len;
    uint8_t *got = tu_slurp(path, &len);
    got[len] = 0;
    cr_assert(len == wlen && memcmp(got, want, len) == 0, "%s: file holds\n%s\nexpected\n%s", what, got, want);
    free(got);
}

/* ---- Kafka's rules, table-driven ---------------------------------------------------- */

enum opk { OP_END = 0, OP_ASSIGN, OP_TRUNC_END, OP_TRUNC_START };

typedef struct op {
    enum opk k;
    int32_t epoch;  /* assign */
    int64_t off;    /* assign: start offset; truncations: the offset */
    int ret;        /* expected return */
} op;

#define A(e, o, r) { OP_ASSIGN, (e), (o), (r) }
#define TE(o, r) { OP_TRUNC_END, 0, (o), (r) }
#define TS(o, r) { OP_TRUNC_START, 0, (o), (r) }
#define E(e, o) { (e), (o) }

typedef struct rule_case {
    const char *name;
    op ops[12];
    ks_epoch_entry want[8];
    size_t nwant;
} rule_case;

static const rule_case rule_cases[] = {
    { "new epochs append", { A(0, 0, 1), A(1, 5, 1), A(3, 9, 1) }, { E(0, 0), E(1, 5), E(3, 9) }, 3 },
    { "an epoch starting at 0 can be the first", { A(7, 0, 1) }, { E(7, 0) }, 1 },
    { "the first epoch may start anywhere", { A(4, 100, 1) }, { E(4, 100) }, 1 },
    { "same epoch at a higher offset is implied", { A(2, 10, 1), A(2, 15, 0) }, { E(2, 10) }, 1 },
    { "same epoch at the same offset is implied", { A(2, 10, 1), A(2, 10, 0) }, { E(2, 10) }, 1 },
    { "same epoch at a lower offset moves its start", { A(0, 0, 1), A(2, 10, 1), A(2, 7, 1) },
      { E(0, 0), E(2, 7) }, 2 },
    { "same epoch at a lower offset drops earlier entries at or after it",
      { A(0, 0, 1), A(1, 5, 1), A(2, 8, 1), A(2, 3, 1) }, { E(0, 0), E(2, 3) }, 2 },
    { "a lower epoch overrides the tail (follower takes the leader's lineage)",
      { A(0, 0, 1), A(2, 8, 1), A(1, 10, 1) }, { E(0, 0), E(1, 10) }, 2 },
    { "a new epoch at a lower offset drops what it conflicts with",
      { A(0, 0, 1), A(1, 5, 1), A(2, 9, 1), A(3, 6, 1) }, { E(0, 0), E(1, 5), E(3, 6) }, 3 },
    { "an epoch that wrote nothing is replaced", { A(1, 5, 1), A(2, 5, 1) }, { E(2, 5) }, 1 },
    { "a lower epoch at a lower offset can empty the rest", { A(3, 5, 1), A(4, 9, 1), A(1, 2, 1) },
      { E(1, 2) }, 1 },
    { "negative epoch or offset is refused, nothing changes",
      { A(0, 0, 1), A(-1, 5, -EINVAL), A(1, -1, -EINVAL), A(INT32_MIN, 0, -EINVAL) }, { E(0, 0) }, 1 },
    { "largest values", { A(0, 0, 1), A(INT32_MAX, INT64_MAX, 1) }, { E(0, 0), E(INT32_MAX, INT64_MAX) }, 2 },
    { "truncate_from_end removes entries starting at or after the end",
      { A(0, 0, 1), A(1, 5, 1), A(2, 9, 1), TE(9, 1), TE(6, 0), TE(5, 1) }, { E(0, 0) }, 1 },
    { "truncate_from_end past every start does nothing",
      { A(0, 0, 1), A(1, 5, 1), TE(6, 0), TE(INT64_MAX, 0) }, { E(0, 0), E(1, 5) }, 2 },
    { "truncate_from_end to 0 empties", { A(0, 0, 1), A(1, 5, 1), TE(0, 1), TE(0, 0) }, { E(0, 0) }, 0 },
    { "truncate_from_end negative does nothing", { A(0, 0, 1), TE(-1, 0), TE(INT64_MIN, 0) }, { E(0, 0) }, 1 },
    { "truncate_from_end on an empty cache", { TE(0, 0), TE(5, 0) }, { E(0, 0) }, 0 },
    { "truncate_from_end then a new epoch", { A(0, 0, 1), A(1, 5, 1), TE(4, 1), A(2, 4, 1) },
      { E(0, 0), E(2, 4) }, 2 },
    { "truncate_from_start mid epoch raises that epoch's start",
      { A(0, 0, 1), A(1, 5, 1), A(2, 9, 1), TS(6, 1) }, { E(1, 6), E(2, 9) }, 2 },
    { "truncate_from_start at a boundary keeps that entry",
      { A(0, 0, 1), A(1, 5, 1), A(2, 9, 1), TS(5, 1), TS(5, 0) }, { E(1, 5), E(2, 9) }, 2 },
    { "truncate_from_start below the first start does nothing", { A(2, 5, 1), TS(3, 0), TS(5, 0), TS(-1, 0) },
      { E(2, 5) }, 1 },
    { "truncate_from_start inside the first epoch", { A(2, 5, 1), A(3, 9, 1), TS(7, 1) }, { E(2, 7), E(3, 9) }, 2 },
    { "truncate_from_start past every start keeps the latest epoch",
      { A(0, 0, 1), A(1, 5, 1), TS(20, 1), TS(20, 0) }, { E(1, 20) }, 1 },
    { "truncate_from_start on an empty cache", { TS(0, 0), TS(9, 0) }, { E(0, 0) }, 0 },
    { "assign after truncate_from_start", { A(0, 0, 1), A(1, 5, 1), TS(7, 1), A(2, 12, 1) },
      { E(1, 7), E(2, 12) }, 2 },
    { "assign below a moved start replaces it", { A(0, 0, 1), A(1, 5, 1), TS(7, 1), A(2, 3, 1) }, { E(2, 3) }, 1 },
    { "a lifetime: leaders, a truncation, retention",
      { A(0, 0, 1), A(1, 40, 1), A(1, 41, 0), A(3, 90, 1), TE(70, 1), A(2, 70, 1), A(4, 120, 1), TS(95, 1),
        A(4, 130, 0), A(5, 150, 1) },
      { E(2, 95), E(4, 120), E(5, 150) }, 3 },
};

static int run_op(ks_epochs *c, const op *o)
{
    switch (o->k) {
    case OP_ASSIGN:
        return ks_epochs_assign(c, o->epoch, o->off);
    case OP_TRUNC_END:
        return ks_epochs_truncate_from_end(c, o->off);
    case OP_TRUNC_START:
        return ks_epochs_truncate_from_start(c, o->off);
    case OP_END:
        break;
    }
    return -EINVAL;
}

static void check_invariant(const state *s, const char *what)
{
    for (size_t i = 0; i < s->n; i++) {
        cr_assert_geq(s->e[i].epoch, 0, "%s: %s", what, state_str(s));
        cr_assert_geq(s->e[i].start_offset, 0, "%s: %s", what, state_str(s));
        if (i > 0) {
            cr_assert_gt(s->e[i].epoch, s->e[i - 1].epoch, "%s: %s", what, state_str(s));
            cr_assert_gt(s->e[i].start_offset, s->e[i - 1].start_offset, "%s: %s", what, state_str(s));
        }
    }
}

Test(epoch, kafka_rules)
{
    for (size_t ci = 0; ci < sizeof rule_cases / sizeof rule_cases[0]; ci++) {
        const rule_case *rc = &rule_cases[ci];
        char dir[TU_PATH];
        ep_sub(dir, "rules");
        tu_rmrf(dir);
        cr_assert_eq(mkdir(dir, 0755), 0);
        kio *io = tu_fault_open(); /* to count the I/O of each step */
        ks_epochs *c = ep_open(io, dir);
        cr_assert_eq(ks_epochs_count(c), 0);
        cr_assert_eq(ks_epochs_latest(c), KS_EPOCH_UNDEFINED);
        state before, after, back;
        for (size_t i = 0; rc->ops[i].k != OP_END; i++) {
            char what[256];
            snprintf(what, sizeof what, "case \"%s\", step %zu", rc->name, i);
            snap(c, &before);
            uint64_t ops0 = kio_fault_ops(io, KIO_OP_ALL);
            int r = run_op(c, &rc->ops[i]);
            uint64_t nops = kio_fault_ops(io, KIO_OP_ALL) - ops0;
            cr_assert_eq(r, rc->ops[i].ret, "%s: returned %d (%s), expected %d", what, r,
                         r < 0 ? klog_strerror(r) : "ok", rc->ops[i].ret);
            snap(c, &after);
            check_invariant(&after, what);
            if (r == 1) {
                cr_assert(!state_eq(&before, &after), "%s: returned 1 but changed nothing", what);
                cr_assert_gt(nops, 0, "%s: changed without writing", what);
                expect_file(dir, &after, what);
            } else {
                cr_assert(state_eq(&before, &after), "%s: returned %d but changed %s into %s", what, r,
                          state_str(&before), state_str(&after));
                cr_assert_eq(nops, 0, "%s: nothing changed, yet %llu I/O ops", what, (unsigned long long)nops);
            }
            reload(dir, &back);
            cr_assert(state_eq(&after, &back), "%s: reload gives %s, cache is %s", what, state_str(&back),
                      state_str(&after));
            cr_assert_eq(ks_epochs_latest(c), after.n ? after.e[after.n - 1].epoch : KS_EPOCH_UNDEFINED, "%s", what);
        }
        state want = { .n = rc->nwant };
        memcpy(want.e, rc->want, rc->nwant * sizeof want.e[0]);
        cr_assert(state_eq(&after, &want), "case \"%s\": ends as %s, expected %s", rc->name, state_str(&after),
                  state_str(&want));
        ks_epochs_close(c);
        kio_close(io);
    }
}

/* The text written is byte for byte the example of Kafka's
 * LeaderEpochCheckpointFile comment. */
Test(epoch, file_is_kafkas_text)
{
    ks_epochs *c = ep_open(tu_io, ep_dir);
    cr_assert_eq(ks_epochs_assign(c, 0, 1), 1);
    cr_assert_eq(ks_epochs_assign(c, 1, 2), 1);
    ks_epochs_close(c);
    char path[TU_PATH];
    file_path(path, ep_dir);
    size_t len;
    uint8_t *b = tu_slurp(path, &len);
    const char want[] = "0\n2\n0 1\n1 2\n";
    cr_assert(len == sizeof want - 1 && memcmp(b, want, len) == 0);
    free(b);
    /* Emptied: version and a count of 0 (what Kafka writes too). */
    c = ep_open(tu_io, ep_dir);
    cr_assert_eq(ks_epochs_truncate_from_end(c, 0), 1);
    ks_epochs_close(c);
    b = tu_slurp(path, &len);
    cr_assert(len == 4 && memcmp(b, "0\n0\n", 4) == 0);
    free(b);
}

Test(epoch, null_arguments)
{
    ks_epochs *c = (ks_epochs *)1;
    cr_assert_eq(ks_epochs_open(&c, NULL, ep_dir), -EINVAL);
    cr_assert_null(c);
    cr_assert_eq(ks_epochs_open(&c, tu_io, NULL), -EINVAL);
    cr_assert_eq(ks_epochs_open(NULL, tu_io, ep_dir), -EINVAL);
    cr_assert_eq(ks_epochs_assign(NULL, 0, 0), -EINVAL);
    cr_assert_eq(ks_epochs_truncate_from_end(NULL, 0), -EINVAL);
    cr_assert_eq(ks_epochs_truncate_from_start(NULL, 0), -EINVAL);
    cr_assert_eq(ks_epochs_latest(NULL), KS_EPOCH_UNDEFINED);
    cr_assert_eq(ks_epochs_count(NULL), 0);
    ks_epochs_close(NULL);
    char longdir[TU_PATH + 16];
    memset(longdir, 'a', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = 0;
    cr_assert_eq(ks_epochs_open(&c, tu_io, longdir), -ENAMETOOLONG);
    cr_assert_null(c);
}

/* ---- lookups ------------------------------------------------------------------ */

typedef struct end_case {
    int32_t asked;
    int32_t epoch;
    int64_t end;
} end_case;

static ks_epochs *cache_of(const char *name, const ks_epoch_entry *e, size_t n)
{
    char dir[TU_PATH];
    ep_sub(dir, name);
    cr_assert_eq(mkdir(dir, 0755), 0);
    ks_epochs *c = ep_open(tu_io, dir);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ks_epochs_assign(c, e[i].epoch, e[i].start_offset), 1);
    return c;
}

static void expect_ends(const ks_epochs *c, int64_t leo, const end_case *t, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        int32_t e = 12345;
        int64_t end = 12345;
        ks_epochs_end_offset_for(c, t[i].asked, leo, &e, &end);
        cr_assert(e == t[i].epoch && end == t[i].end, "%s: end_offset_for(%d) = (%d, %lld), expected (%d, %lld)",
                  what, (int)t[i].asked, (int)e, (long long)end, (int)t[i].epoch, (long long)t[i].end);
    }
}

Test(epoch, end_offset_for)
{
    /* Epochs 0, 1, 3 (2 never wrote here), log end 15. */
    static const ks_epoch_entry e1[] = { E(0, 0), E(1, 4), E(3, 10) };
    static const end_case t1[] = {
        { -1, -1, -1 },            /* UNDEFINED asked: UNDEFINED */
        { 0, 0, 4 },               /* ends where epoch 1 starts */
        { 1, 1, 10 },              /* ends where the next known epoch (3) starts */
        { 2, 1, 10 },              /* unknown here: largest epoch below it (KIP-279) */
        { 3, 3, 15 },              /* the latest: the log end */
        { 4, -1, -1 },             /* above every known epoch */
        { INT32_MAX, -1, -1 },
        { -7, -7, 0 },             /* below every known epoch, yet not UNDEFINED: (asked, first start) */
    };
    ks_epochs *c = cache_of("e1", e1, 3);
    expect_ends(c, 15, t1, sizeof t1 / sizeof t1[0], "0,1,3");
    ks_epochs_close(c);

    /* Retention removed epochs 0 and 1: epochs 2 and 4 from offset 5. */
    static const ks_epoch_entry e2[] = { E(2, 5), E(4, 9) };
    static const end_case t2[] = {
        { 0, 0, 5 }, /* below the first known epoch: the requested epoch, ending at the first start */
        { 1, 1, 5 },
        { 2, 2, 9 },
        { 3, 2, 9 },
        { 4, 4, 12 },
        { 5, -1, -1 },
    };
    c = cache_of("e2", e2, 2);
    expect_ends(c, 12, t2, sizeof t2 / sizeof t2[0], "2,4");
    ks_epochs_close(c);

    /* A leader that just took over: its epoch starts at the log end. */
    static const ks_epoch_entry e3[] = { E(0, 0), E(1, 8) };
    static const end_case t3[] = { { 0, 0, 8 }, { 1, 1, 8 }, { 2, -1, -1 } };
    c = cache_of("e3", e3, 2);
    expect_ends(c, 8, t3, 3, "new leader");
    ks_epochs_close(c);

    /* Empty cache: nothing known. */
    static const end_case t4[] = { { -1, -1, -1 }, { 0, -1, -1 }, { 5, -1, -1 } };
    c = cache_of("e4", NULL, 0);
    expect_ends(c, 100, t4, 3, "empty");
    ks_epochs_close(c);
}

Test(epoch, epoch_for_offset)
{
    static const ks_epoch_entry e[] = { E(1, 4), E(3, 10), E(6, 11) };
    static const struct { int64_t off; int32_t epoch; } t[] = {
        { 0, -1 }, { 3, -1 }, { 4, 1 }, { 9, 1 }, { 10, 3 }, { 11, 6 }, { 1000, 6 }, { INT64_MAX, 6 }, { -1, -1 },
    };
    ks_epochs *c = cache_of("efo", e, 3);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_assert_eq(ks_epochs_epoch_for_offset(c, t[i].off), t[i].epoch, "offset %lld: %d, expected %d",
                     (long long)t[i].off, (int)ks_epochs_epoch_for_offset(c, t[i].off), (int)t[i].epoch);
    ks_epochs_close(c);
    c = cache_of("efo-empty", NULL, 0);
    cr_assert_eq(ks_epochs_epoch_for_offset(c, 0), KS_EPOCH_UNDEFINED);
    ks_epochs_close(c);
    cr_assert_eq(ks_epochs_epoch_for_offset(NULL, 0), KS_EPOCH_UNDEFINED);
}

/* ---- the follower truncation exchange (KIP-101, KIP-279) ----------------------------- */

/* A replica: its cache and its log end offset. */
typedef struct replica {
    ks_epochs *c;
    int64_t leo;
} replica;

/* A replica whose log is the given runs of (epoch, record count): each run
 * with records assigns its epoch at its start, as appends do; a last run
 * of 0 records is a leader that took over with nothing written yet. */
typedef struct run {
    int32_t epoch;
    int64_t count;
} run;

static replica replica_of(const char *name, const run *r, size_t n)
{
    char dir[TU_PATH];
    ep_sub(dir, name);
    tu_rmrf(dir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    replica x = { ep_open(tu_io, dir), 0 };
    for (size_t i = 0; i < n; i++) {
        if (r[i].count > 0 || i == n - 1)
            cr_assert_eq(ks_epochs_assign(x.c, r[i].epoch, x.leo), 1);
        x.leo += r[i].count;
    }
    return x;
}

/* The first offset where the lineages differ: records of the same epoch at
 * the same offset are the same records (one leader per epoch). */
static int64_t lineage_prefix(const replica *a, const replica *b)
{
    int64_t n = a->leo < b->leo ? a->leo : b->leo;
    for (int64_t o = 0; o < n; o++)
        if (ks_epochs_epoch_for_offset(a->c, o) != ks_epochs_epoch_for_offset(b->c, o))
            return o;
    return n;
}

/* Kafka's follower loop (AbstractFetcherThread, KIP-279): ask the leader
 * for the end of its own latest epoch, truncate to min(leader's end, own
 * end for the epoch the leader answered), and ask again until both name
 * the same epoch.  Returns the offset the follower truncated to. */
static int64_t truncate_follower(replica *f, const replica *l, int *rounds)
{
    *rounds = 0;
    for (;;) {
        cr_assert_lt(++*rounds, 100, "the exchange does not converge");
        int32_t asked = ks_epochs_latest(f->c);
        if (asked == KS_EPOCH_UNDEFINED)
            return f->leo;
        int32_t le, fe;
        int64_t lend, fend;
        ks_epochs_end_offset_for(l->c, asked, l->leo, &le, &lend);
        cr_assert_neq(le, KS_EPOCH_UNDEFINED, "leader knows nothing of epoch %d", (int)asked);
        ks_epochs_end_offset_for(f->c, le, f->leo, &fe, &fend);
        int64_t to = lend < fend ? lend : fend;
        if (to < f->leo) {
            f->leo = to;
            cr_assert_geq(ks_epochs_truncate_from_end(f->c, to), 0);
        }
        if (fe == le)
            return f->leo;
    }
}

/* Replicate the leader's records from f->leo: each epoch the follower
 * appends records of is assigned at the first offset it appends. */
static void replicate(replica *f, const replica *l)
{
    for (int64_t o = f->leo; o < l->leo; o++)
        cr_assert_geq(ks_epochs_assign(f->c, ks_epochs_epoch_for_offset(l->c, o), o), 0);
    f->leo = l->leo;
}

/* After replicate: the follower's cache is the leader's, but for a last
 * leader entry that starts at the log end (no records of it yet). */
static void expect_same_lineage(const replica *f, const replica *l, const char *what)
{
    state fs, ls;
    snap(f->c, &fs);
    snap(l->c, &ls);
    if (ls.n > 0 && ls.e[ls.n - 1].start_offset == l->leo)
        ls.n--;
    cr_assert(state_eq(&fs, &ls), "%s: follower %s, leader %s", what, state_str(&fs), state_str(&ls));
}

/* KIP-101 scenario 1: the follower had fetched m2 but its high watermark
 * said 1 when it restarted; truncating to the high watermark would lose m2
 * once it leads.  Asking the leader for epoch 0 gives the leader's log end:
 * nothing is truncated. */
Test(epoch, kip101_no_loss_on_restart)
{
    static const run a[] = { { 0, 2 } }, b[] = { { 0, 2 } };
    replica l = replica_of("leader", a, 1), f = replica_of("follower", b, 1);
    int rounds;
    cr_assert_eq(truncate_follower(&f, &l, &rounds), 2);
    cr_assert_eq(rounds, 1);
    cr_assert_eq(f.leo, 2);
    ks_epochs_close(l.c);
    ks_epochs_close(f.c);
}

/* KIP-101 scenario 2: A led epoch 0 and wrote m1, m2; B had m1.  Both
 * died; B came back first, led epoch 1 and wrote m3 at offset 1.  A, now a
 * follower, asks for epoch 0, learns it ended at 1, drops m2, and takes m3:
 * the logs no longer diverge. */
Test(epoch, kip101_divergence_after_double_failure)
{
    static const run b[] = { { 0, 1 }, { 1, 1 } }, a[] = { { 0, 2 } };
    replica l = replica_of("leader-b", b, 2), f = replica_of("follower-a", a, 1);
    int rounds;
    cr_assert_eq(truncate_follower(&f, &l, &rounds), 1);
    cr_assert_eq(ks_epochs_latest(f.c), 0);
    replicate(&f, &l);
    expect_same_lineage(&f, &l, "kip-101 scenario 2");
    state s;
    snap(f.c, &s);
    cr_assert(s.n == 2 && s.e[1].epoch == 1 && s.e[1].start_offset == 1, "%s", state_str(&s));
    ks_epochs_close(l.c);
    ks_epochs_close(f.c);
}

/* KIP-279: the follower's latest epoch (1) is one the new leader never saw.
 * The leader answers with the largest epoch it knows below it (0) and where
 * that ends; the follower truncates to the smaller of that and its own end
 * of epoch 0. */
Test(epoch, kip279_unknown_epoch_on_the_leader)
{
    /* Offsets 0-1 in epoch 0 on both; A led epoch 1 and wrote offset 2 alone;
     * B then led epoch 2 and wrote offsets 2-3. */
    static const run a[] = { { 0, 2 }, { 1, 1 } }, b[] = { { 0, 2 }, { 2, 2 } };
    replica l = replica_of("leader", b, 2), f = replica_of("follower", a, 2);
    int32_t e;
    int64_t end;
    ks_epochs_end_offset_for(l.c, 1, l.leo, &e, &end);
    cr_assert(e == 0 && end == 2, "(%d, %lld)", (int)e, (long long)end);
    int rounds;
    cr_assert_eq(truncate_follower(&f, &l, &rounds), 2);
    replicate(&f, &l);
    expect_same_lineage(&f, &l, "kip-279");
    ks_epochs_close(l.c);
    ks_epochs_close(f.c);
}

/* KIP-279, iterating: the follower holds two epochs the leader never saw
 * and needs two rounds; it keeps offsets 0-2 (epoch 0 on both), not 3 (epoch
 * 1, the follower's own). */
Test(epoch, kip279_iterates_over_several_unknown_epochs)
{
    static const run a[] = { { 0, 3 }, { 1, 3 }, { 3, 2 } };     /* (0,0) (1,3) (3,6), end 8 */
    static const run b[] = { { 0, 4 }, { 2, 6 }, { 4, 0 } };     /* (0,0) (2,4) (4,10), end 10 */
    replica l = replica_of("leader", b, 3), f = replica_of("follower", a, 3);
    int rounds;
    cr_assert_eq(truncate_follower(&f, &l, &rounds), 3);
    cr_assert_eq(rounds, 2);
    cr_assert_eq(lineage_prefix(&f, &l), 3);
    replicate(&f, &l);
    expect_same_lineage(&f, &l, "kip-279 iterating");
    ks_epochs_close(l.c);
    ks_epochs_close(f.c);
}

/* Random divergent histories: the leader's log cut at p is the follower's
 * prefix, then each goes on with epochs of its own (disjoint, all above the
 * epoch at p; the leader's last is the highest of all, as a new leader's
 * epoch is).  The exchange must stop exactly where the lineages part, and
 * replicating must give the follower the leader's cache. */
Test(epoch, random_divergent_histories)
{
    tu_rng rng = { 0x279 };
    for (int iter = 0; iter < 150; iter++) {
        run lr[24], fr[24];
        size_t nl = 0, nf = 0;
        int32_t ep = (int32_t)tu_range(&rng, 0, 3);
        size_t common = (size_t)tu_range(&rng, 1, 4);
        for (size_t i = 0; i < common; i++) {
            lr[nl++] = (run){ ep, (int64_t)tu_range(&rng, 1, 5) };
            ep += (int32_t)tu_range(&rng, 1, 3);
        }
        /* The follower has a prefix of the leader's log, cut at p >= 1. */
        int64_t total = 0;
        for (size_t i = 0; i < nl; i++)
            total += lr[i].count;
        int64_t p = (int64_t)tu_range(&rng, 1, (uint64_t)total), left = p;
        for (size_t i = 0; i < nl && left > 0; i++) {
            int64_t k = lr[i].count < left ? lr[i].count : left;
            fr[nf++] = (run){ lr[i].epoch, k };
            left -= k;
        }
        /* Then new epochs, each led by one side only: the follower's start
         * at p (it lost the rest of the common history), the leader's after
         * its whole common history. */
        size_t extra = (size_t)tu_range(&rng, 0, 6);
        for (size_t i = 0; i < extra; i++) {
            run r = { ep, (int64_t)tu_range(&rng, 1, 4) };
            ep += (int32_t)tu_range(&rng, 1, 2);
            if (tu_rand(&rng) % 2)
                lr[nl++] = r;
            else
                fr[nf++] = r;
        }
        lr[nl++] = (run){ ep, (int64_t)tu_range(&rng, 0, 3) };
        char ln[32], fn[32];
        snprintf(ln, sizeof ln, "rl%d", iter);
        snprintf(fn, sizeof fn, "rf%d", iter);
        replica l = replica_of(ln, lr, nl), f = replica_of(fn, fr, nf);
        int64_t want = lineage_prefix(&f, &l);
        int rounds;
        int64_t got = truncate_follower(&f, &l, &rounds);
        cr_assert_eq(got, want, "iteration %d: truncated to %lld, lineages part at %lld", iter, (long long)got,
                     (long long)want);
        replicate(&f, &l);
        expect_same_lineage(&f, &l, "random history");
        /* And a second exchange finds nothing to cut. */
        cr_assert_eq(truncate_follower(&f, &l, &rounds), l.leo);
        ks_epochs_close(l.c);
        ks_epochs_close(f.c);
        char d[TU_PATH];
        ep_sub(d, ln);
        tu_rmrf(d);
        ep_sub(d, fn);
        tu_rmrf(d);
    }
}

/* ---- loading ------------------------------------------------------------------ */

typedef struct load_case {
    const char *name;
    const char *text;
    size_t len;          /* 0: strlen(text) */
    int rc;
    ks_epoch_entry want[4];
    size_t nwant;
} load_case;

#define OK(name, text, ...) { name, text, 0, 0, { __VA_ARGS__ }, sizeof((ks_epoch_entry[]){ __VA_ARGS__ }) / sizeof(ks_epoch_entry) }
#define BAD(name, text, rc) { name, text, 0, rc, { E(0, 0) }, 0 }

static const load_case load_cases[] = {
    OK("Kafka's example", "0\n2\n0 1\n1 2\n", E(0, 1), E(1, 2)),
    OK("one entry", "0\n1\n5 100\n", E(5, 100)),
    OK("CRLF lines", "0\r\n2\r\n0 0\r\n3 7\r\n", E(0, 0), E(3, 7)),
    OK("runs of blanks between and after", "0\n2\n0 \t 0\n3\f7 \t\n", E(0, 0), E(3, 7)),
    OK("leading zeros and plus signs", "0\n+2\n00 +0\n3 007\n", E(0, 0), E(3, 7)),
    OK("equal start offsets keep the later epoch", "0\n3\n1 0\n2 0\n4 9\n", E(2, 0), E(4, 9)),
    OK("largest values", "0\n1\n2147483647 9223372036854775807\n", E(INT32_MAX, INT64_MAX)),
    BAD("version only", "0\n", KLOG_ECORRUPT),
    BAD("no newline after the version", "0", KLOG_ECORRUPT),
    BAD("no newline after the count", "0\n0", KLOG_ECORRUPT),
    BAD("version 1", "1\n0\n", KLOG_EFORMAT),
    BAD("version -1", "-1\n0\n", KLOG_EFORMAT),
    BAD("version not a number", "x\n0\n", KLOG_ECORRUPT),
    BAD("version with a blank", "0 \n0\n", KLOG_ECORRUPT),
    BAD("version too large for an int", "99999999999\n0\n", KLOG_ECORRUPT),
    BAD("empty version line", "\n0\n", KLOG_ECORRUPT),
    BAD("count not a number", "0\nabc\n", KLOG_ECORRUPT),
    BAD("count negative", "0\n-1\n", KLOG_ECORRUPT),
    BAD("count in hex", "0\n0x1\n0 0\n", KLOG_ECORRUPT),
    BAD("count too large for an int", "0\n99999999999\n0 0\n", KLOG_ECORRUPT),
    BAD("count huge", "0\n2147483647\n0 0\n", KLOG_ECORRUPT),
    BAD("count above the cap", "0\n1048577\n0 0\n", KLOG_ECORRUPT),
    BAD("count at the cap, file far too short", "0\n1048576\n0 0\n", KLOG_ECORRUPT),
    BAD("fewer entries than the count", "0\n3\n0 0\n1 5\n", KLOG_ECORRUPT),
    BAD("more entries than the count", "0\n1\n0 0\n1 5\n", KLOG_ECORRUPT),
    BAD("entries with a count of 0", "0\n0\n0 0\n", KLOG_ECORRUPT),
    BAD("a blank line after the entries", "0\n1\n0 0\n\n", KLOG_ECORRUPT),
    BAD("last line without newline", "0\n1\n0 0", KLOG_ECORRUPT),
    BAD("one number", "0\n1\n0\n", KLOG_ECORRUPT),
    BAD("three numbers", "0\n1\n0 1 2\n", KLOG_ECORRUPT),
    BAD("leading blank", "0\n1\n 0 1\n", KLOG_ECORRUPT),
    BAD("no separator", "0\n1\n01\n", KLOG_ECORRUPT),
    BAD("comma separator", "0\n1\n0,1\n", KLOG_ECORRUPT),
    BAD("a lone CR inside a line", "0\n1\n0\r1\n", KLOG_ECORRUPT),
    BAD("a sign alone", "0\n1\n- 1\n", KLOG_ECORRUPT),
    BAD("non-numeric epoch", "0\n1\nx 1\n", KLOG_ECORRUPT),
    BAD("non-numeric offset", "0\n1\n0 1x\n", KLOG_ECORRUPT),
    BAD("fractional offset", "0\n1\n0 1.5\n", KLOG_ECORRUPT),
    BAD("negative epoch", "0\n1\n-1 0\n", KLOG_ECORRUPT),
    BAD("negative offset", "0\n1\n0 -5\n", KLOG_ECORRUPT),
    BAD("epoch above int32", "0\n1\n2147483648 0\n", KLOG_ECORRUPT),
    BAD("offset above int64", "0\n1\n0 9223372036854775808\n", KLOG_ECORRUPT),
    BAD("offset far above int64", "0\n1\n0 99999999999999999999999\n", KLOG_ECORRUPT),
    BAD("decreasing epochs", "0\n2\n1 0\n0 5\n", KLOG_ECORRUPT),
    BAD("equal epochs", "0\n2\n1 0\n1 5\n", KLOG_ECORRUPT),
    BAD("decreasing offsets", "0\n2\n0 5\n1 3\n", KLOG_ECORRUPT),
    BAD("garbage", "\x7f" "ELF\x02\x01\x01", KLOG_ECORRUPT),
};

static void spit_file(const char *dir, const void *data, size_t len)
{
    char path[TU_PATH];
    file_path(path, dir);
    tu_spit(path, data, len);
}

Test(epoch, load_table)
{
    for (size_t i = 0; i < sizeof load_cases / sizeof load_cases[0]; i++) {
        const load_case *lc = &load_cases[i];
        spit_file(ep_dir, lc->text, lc->len ? lc->len : strlen(lc->text));
        ks_epochs *c = (ks_epochs *)1;
        int rc = ks_epochs_open(&c, tu_io, ep_dir);
        cr_assert_eq(rc, lc->rc, "\"%s\": load returned %d (%s), expected %d", lc->name, rc, klog_strerror(rc),
                     lc->rc);
        if (rc != 0) {
            cr_assert_null(c, "\"%s\"", lc->name);
            continue;
        }
        state got, want = { .n = lc->nwant };
        memcpy(want.e, lc->want, lc->nwant * sizeof want.e[0]);
        snap(c, &got);
        cr_assert(state_eq(&got, &want), "\"%s\": loaded %s, expected %s", lc->name, state_str(&got),
                  state_str(&want));
        ks_epochs_close(c);
    }
}

/* No file, or Kafka's empty file: an empty cache; loading writes nothing
 * (no file appears). */
Test(epoch, load_missing_and_empty)
{
    char path[TU_PATH];
    file_path(path, ep_dir);
    ks_epochs *c = ep_open(tu_io, ep_dir);
    cr_assert_eq(ks_epochs_count(c), 0);
    ks_epochs_close(c);
    cr_assert(!tu_exists(path));
    tu_spit(path, "", 0);
    c = ep_open(tu_io, ep_dir);
    cr_assert_eq(ks_epochs_count(c), 0);
    cr_assert_eq(ks_epochs_assign(c, 3, 0), 1);
    ks_epochs_close(c);
    c = ep_open(tu_io, ep_dir);
    cr_assert_eq(ks_epochs_latest(c), 3);
    ks_epochs_close(c);
    /* A missing directory is a missing file too: empty (a later change
     * would fail, nothing is written before it). */
    char gone[TU_PATH];
    ep_sub(gone, "no-such-dir");
    c = ep_open(tu_io, gone);
    cr_assert_eq(ks_epochs_count(c), 0);
    ks_epochs_close(c);
}

/* Reading errors pass through: a directory where the file should be. */
Test(epoch, load_read_error)
{
    char path[TU_PATH];
    file_path(path, ep_dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    ks_epochs *c = (ks_epochs *)1;
    int rc = ks_epochs_open(&c, tu_io, ep_dir);
    cr_assert_lt(rc, 0);
    cr_assert_null(c);
}

/* A file cut anywhere fails to load: every proper, non-empty prefix of a
 * valid file. */
Test(epoch, load_every_truncation)
{
    const char full[] = "0\n4\n0 0\n2 17\n5 40\n11 1234567\n";
    size_t n = sizeof full - 1;
    for (size_t len = 1; len < n; len++) {
        spit_file(ep_dir, full, len);
        ks_epochs *c = NULL;
        int rc = ks_epochs_open(&c, tu_io, ep_dir);
        cr_assert_eq(rc, KLOG_ECORRUPT, "cut to %zu bytes: %d (%s)", len, rc, klog_strerror(rc));
    }
    spit_file(ep_dir, full, n);
    ks_epochs *c = ep_open(tu_io, ep_dir);
    cr_assert_eq(ks_epochs_count(c), 4);
    ks_epochs_close(c);
}

/* A file larger than any cache could need is refused before it is read. */
Test(epoch, load_too_big)
{
    char path[TU_PATH];
    file_path(path, ep_dir);
    tu_spit(path, "0\n1\n0 0\n", 8);
    tu_truncate(path, (off_t)(64 + (size_t)KS_EPOCH_MAX_ENTRIES * 64) + 1); /* sparse */
    ks_epochs *c = NULL;
    cr_assert_eq(ks_epochs_open(&c, tu_io, ep_dir), KLOG_ECORRUPT);
}

/* Bytes of data segment the process uses now (VmData), from /proc. */
static size_t vm_data(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmData: %zu kB", &kb) == 1)
            break;
    fclose(f);
    cr_assert_gt(kb, 0);
    return kb * 1024;
}

/* The caps are checked before memory is set aside: with the data segment
 * limited to what the process uses plus 4 MiB, a huge count in a short file
 * and a file above the size cap fail as corrupt, not with -ENOMEM (without
 * the checks, the count would ask for 16 MiB and the file for 64 MiB). */
Test(epoch, caps_come_before_allocation)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("ASan's allocator reserves memory outside RLIMIT_DATA's view");
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    cr_skip_test("ASan's allocator reserves memory outside RLIMIT_DATA's view");
#endif
#endif
    char big[TU_PATH], huge[TU_PATH];
    ep_sub(big, "big");
    ep_sub(huge, "huge");
    cr_assert_eq(mkdir(big, 0755), 0);
    cr_assert_eq(mkdir(huge, 0755), 0);
    char path[TU_PATH];
    file_path(path, big);
    tu_spit(path, "0\n1\n0 0\n", 8);
    tu_truncate(path, (off_t)(64 + (size_t)KS_EPOCH_MAX_ENTRIES * 64) + 1); /* sparse */
    const char *hc = "0\n1048576\n0 0\n";
    spit_file(huge, hc, strlen(hc));

    struct rlimit rl = { vm_data() + 4 * 1024 * 1024, RLIM_INFINITY };
    cr_assert_eq(setrlimit(RLIMIT_DATA, &rl), 0, "setrlimit: %s", strerror(errno));
    /* The limit bites: 16 MiB cannot be had (RLIMIT_DATA covers mmap'd
     * memory since Linux 4.7; before, there is nothing to test with). */
    void *probe = malloc(16 * 1024 * 1024);
    if (probe) {
        free(probe);
        cr_skip_test("RLIMIT_DATA does not limit malloc on this kernel");
    }
    ks_epochs *c = NULL;
    int rc = ks_epochs_open(&c, tu_io, huge);
    cr_assert_eq(rc, KLOG_ECORRUPT, "huge count: %d (%s)", rc, klog_strerror(rc));
    rc = ks_epochs_open(&c, tu_io, big);
    cr_assert_eq(rc, KLOG_ECORRUPT, "file above the cap: %d (%s)", rc, klog_strerror(rc));
}

/* Random mutations of a valid file: a load never crashes, returns 0,
 * KLOG_ECORRUPT or KLOG_EFORMAT, and a cache it loads keeps the invariant. */
Test(epoch, load_mutations)
{
    const char base[] = "0\n4\n0 0\n2 17\n5 40\n11 1234567\n";
    static const char alphabet[] = "0123456789 \n\r\t-+x";
    tu_rng rng = { 77 };
    unsigned loaded = 0;
    for (int iter = 0; iter < 3000; iter++) {
        char buf[128];
        size_t len = sizeof base - 1;
        memcpy(buf, base, len);
        int muts = (int)tu_range(&rng, 1, 3);
        for (int m = 0; m < muts; m++) {
            size_t at = (size_t)tu_range(&rng, 0, len ? len - 1 : 0);
            char ch = alphabet[tu_rand(&rng) % (sizeof alphabet - 1)];
            switch (tu_rand(&rng) % 4) {
            case 0: /* replace */
                if (len)
                    buf[at] = ch;
                break;
            case 1: /* insert */
                if (len < sizeof buf - 1) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = ch;
                    len++;
                }
                break;
            case 2: /* delete */
                if (len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            case 3: /* random byte */
                if (len)
                    buf[at] = (char)(tu_rand(&rng) & 0xff);
                break;
            }
        }
        spit_file(ep_dir, buf, len);
        ks_epochs *c = NULL;
        int rc = ks_epochs_open(&c, tu_io, ep_dir);
        cr_assert(rc == 0 || rc == KLOG_ECORRUPT || rc == KLOG_EFORMAT, "iteration %d: %d (%s)", iter, rc,
                  klog_strerror(rc));
        if (rc == 0) {
            state s;
            snap(c, &s);
            check_invariant(&s, "mutated file");
            ks_epochs_close(c);
            loaded++;
        }
    }
    cr_assert_gt(loaded, 0); /* some mutations stay valid (a digit for a digit) */
}

/* ---- I/O errors while writing -------------------------------------------------------- */

/* Fail the first op of a class during a change: the error comes back, the
 * cache is as it was, the file holds the old or the new list, and the next
 * change writes the whole cache again. */
Test(epoch, write_errors)
{
    static const struct { unsigned ops; int err; } faults[] = {
        { KIO_OP_OPEN, -EACCES }, { KIO_OP_WRITE, -ENOSPC }, { KIO_OP_SYNC, -EIO },
        { KIO_OP_RENAME, -EIO }, { KIO_OP_DIRSYNC, -EIO },
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        char dir[TU_PATH];
        ep_sub(dir, "werr");
        tu_rmrf(dir);
        cr_assert_eq(mkdir(dir, 0755), 0);
        kio *io = tu_fault_open();
        ks_epochs *c = ep_open(io, dir);
        cr_assert_eq(ks_epochs_assign(c, 0, 0), 1);
        cr_assert_eq(ks_epochs_assign(c, 1, 10), 1);
        state old, now, disk;
        snap(c, &old);
        for (int step = 0; step < 3; step++) {
            cr_assert_eq(kio_fault_arm(io, faults[i].ops, 1, faults[i].err, 0), 0);
            int rc = step == 0 ? ks_epochs_assign(c, 2, 20)
                     : step == 1 ? ks_epochs_truncate_from_end(c, 5)
                                 : ks_epochs_truncate_from_start(c, 3);
            cr_assert_eq(rc, faults[i].err, "op class %#x step %d: %d (%s)", faults[i].ops, step, rc,
                         klog_strerror(rc));
            snap(c, &now);
            cr_assert(state_eq(&now, &old), "op class %#x step %d: cache changed to %s", faults[i].ops, step,
                      state_str(&now));
            reload(dir, &disk);
            /* The failed change's target state, computed on a copy. */
            bool is_old = state_eq(&disk, &old);
            bool late = faults[i].ops == KIO_OP_DIRSYNC; /* the rename happened */
            cr_assert(is_old != late, "op class %#x step %d: file holds %s, cache %s", faults[i].ops, step,
                      state_str(&disk), state_str(&old));
            kio_fault_clear(io);
        }
        /* The next change succeeds and the file is the cache again. */
        cr_assert_eq(ks_epochs_assign(c, 3, 30), 1);
        snap(c, &now);
        expect_file(dir, &now, "after the errors");
        reload(dir, &disk);
        cr_assert(state_eq(&disk, &now));
        ks_epochs_close(c);
        kio_close(io);
    }
}

/* ---- crashes ------------------------------------------------------------------ */

static const op crash_steps[] = {
    A(0, 0, 1), A(1, 5, 1), A(1, 7, 0), A(3, 12, 1), TE(10, 1), A(2, 10, 1), TS(6, 1), A(4, 20, 1),
    TE(0, 1), A(5, 25, 1), TS(30, 1),
};
#define NSTEPS (sizeof crash_steps / sizeof crash_steps[0])

static const enum kio_crash_mode modes[] = { KIO_CRASH_DROP, KIO_CRASH_PREFIX, KIO_CRASH_GARBAGE,
                                             KIO_CRASH_ZERO, KIO_CRASH_RANDOM };

/* For each step of the sequence: build the state before it (template),
 * count the step's I/O ops, then for every op n (and once past the last),
 * every crash mode, with and without losing un-dirsynced directory
 * entries: run the step on a copy of the template with a crash at op n
 * (or right after the step returned), reload with a healthy engine.  The
 * load must succeed and give the state before or after the step; after,
 * when the step had returned. */
Test(epoch, crash_every_op)
{
    char tmpl[TU_PATH], dir[TU_PATH];
    ep_sub(tmpl, "tmpl");
    ep_sub(dir, "run");
    cr_assert_eq(mkdir(tmpl, 0755), 0);
    unsigned runs = 0, mid = 0, old_seen = 0, new_seen = 0;
    for (size_t si = 0; si < NSTEPS; si++) {
        const op *st = &crash_steps[si];
        state pre, post;
        reload(tmpl, &pre);

        /* Count the step's ops (on a copy); the copy's result is the post state. */
        tu_crash cnt = { .at = 0 };
        tu_copy_dir(tmpl, dir);
        kio *io = tu_crash_io(&cnt);
        ks_epochs *c = ep_open(io, dir);
        uint64_t before = atomic_load(&cnt.ops);
        cr_assert_eq(run_op(c, st), st->ret, "step %zu", si);
        uint64_t nops = atomic_load(&cnt.ops) - before;
        snap(c, &post);
        ks_epochs_close(c);
        kio_close(io);
        if (st->ret == 0)
            cr_assert_eq(nops, 0);
        else
            cr_assert_gt(nops, 0);

        for (uint64_t n = 1; n <= nops + 1; n++)
            for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
                for (unsigned f = 0; f < 2; f++) {
                    unsigned cflags = f ? KIO_CRASH_LOSE_DIRENTS : 0;
                    char what[160];
                    snprintf(what, sizeof what, "step %zu: crash at op %llu of %llu, mode %d flags %u", si,
                             (unsigned long long)n, (unsigned long long)nops, modes[m], cflags);
                    tu_copy_dir(tmpl, dir);
                    tu_crash cx = { .at = 0, .crash = { modes[m], cflags, si * 1000 + n * 10 + m } };
                    io = tu_crash_io(&cx);
                    c = ep_open(io, dir);
                    atomic_store(&cx.at, atomic_load(&cx.ops) + n);
                    int rc = run_op(c, st);
                    bool crashed = atomic_load(&cx.crashed);
                    if (!crashed) {
                        cr_assert_eq(rc, st->ret, "%s: %d (%s) without a crash", what, rc, klog_strerror(rc));
                        cr_assert_eq(kio_fault_crash(io, modes[m], cflags, n), 0);
                    } else {
                        cr_assert_eq(rc, KLOG_TESTING_ECRASHED, "%s: %d (%s)", what, rc, klog_strerror(rc));
                        state now;
                        snap(c, &now);
                        cr_assert(state_eq(&now, &pre), "%s: failed change altered the cache", what);
                        mid++;
                    }
                    ks_epochs_close(c);
                    kio_close(io);
                    runs++;

                    ks_epochs *c2 = NULL;
                    rc = ks_epochs_open(&c2, tu_io, dir);
                    cr_assert_eq(rc, 0, "%s: reload: %s", what, klog_strerror(rc));
                    state got;
                    snap(c2, &got);
                    ks_epochs_close(c2);
                    bool is_pre = state_eq(&got, &pre), is_post = state_eq(&got, &post);
                    cr_assert(is_pre || is_post, "%s: reloaded %s, before %s, after %s", what, state_str(&got),
                              state_str(&pre), state_str(&post));
                    if (!crashed)
                        cr_assert(is_post, "%s: the step returned, yet the crash undid it", what);
                    if (crashed && !state_eq(&pre, &post)) {
                        old_seen += is_pre;
                        new_seen += is_post;
                    }
                }

        /* Advance the template by the step. */
        c = ep_open(tu_io, tmpl);
        cr_assert_eq(run_op(c, st), st->ret);
        ks_epochs_close(c);
    }
    cr_log_info("%u runs, %u crashed inside a step (%u kept the old file, %u the new)", runs, mid, old_seen,
                new_seen);
    cr_assert_gt(mid, 0);
    cr_assert_gt(old_seen, 0);
    cr_assert_gt(new_seen, 0); /* a crash between rename and dirsync, dirents kept */
}
