/*
 * test/io/concurrency.c - one engine, many threads: writes, linked
 * write+sync batches and datasyncs at once, to private files and to
 * disjoint regions of a shared one.  All data must come back right, the
 * counters must add up, and the uring engine must not grow past max_rings.
 */
#include <pthread.h>

#include "io_test.h"

TestSuite(concurrency, .init = t_setup, .fini = t_teardown, .timeout = 240);

enum { THREADS = 8, ROUNDS = 120, CHUNK = 4096, BATCH = 4 };

typedef struct worker {
    kio *io;
    int id;
    int own;     /* private file */
    int shared;  /* shared file: this thread owns every THREADS-th chunk */
    int rc;      /* first failure, 0 if none */
    uint64_t writes;
} worker;

static void *run(void *arg)
{
    worker *w = arg;
    uint8_t buf[BATCH][CHUNK];
    for (int r = 0; r < ROUNDS && w->rc == 0; r++) {
        int rc;
        if (r % 3 == 0) {
            /* a linked batch to the private file */
            struct iovec v[BATCH];
            kio_wreq q[BATCH];
            for (int k = 0; k < BATCH; k++) {
                uint64_t off = ((uint64_t)r * BATCH + (uint64_t)k) * CHUNK;
                t_fill(buf[k], CHUNK, (uint64_t)w->id, off);
                v[k] = (struct iovec){ buf[k], CHUNK };
                q[k] = (kio_wreq){ w->own, &v[k], 1, off };
            }
            rc = kio_pwritev_many(w->io, q, BATCH, KIO_W_DSYNC, NULL);
            w->writes += BATCH;
        } else {
            /* plain writes to both files, then a datasync of one */
            for (int k = 0; k < BATCH && w->rc == 0; k++) {
                uint64_t off = ((uint64_t)r * BATCH + (uint64_t)k) * CHUNK;
                t_fill(buf[k], CHUNK, (uint64_t)w->id, off);
                struct iovec v = { buf[k], CHUNK };
                if ((rc = kio_pwritev(w->io, w->own, &v, 1, off)) < 0)
                    w->rc = rc;
                w->writes++;
            }
            uint64_t soff = ((uint64_t)r * THREADS + (uint64_t)w->id) * CHUNK;
            t_fill(buf[0], CHUNK, 1000, soff);
            struct iovec sv = { buf[0], CHUNK };
            if ((rc = kio_pwritev(w->io, w->shared, &sv, 1, soff)) < 0 && !w->rc)
                w->rc = rc;
            w->writes++;
            rc = kio_datasync(w->io, (r & 1) ? w->own : w->shared);
        }
        if (rc < 0 && !w->rc)
            w->rc = rc;
        /* read back something of our own while others write */
        uint8_t rb[CHUNK];
        uint64_t off = (uint64_t)r * BATCH * CHUNK;
        if (kio_pread(w->io, w->own, rb, CHUNK, off) != CHUNK || !t_check(rb, CHUNK, (uint64_t)w->id, off))
            if (!w->rc)
                w->rc = -EILSEQ;
    }
    return NULL;
}

/* anon_inode:[io_uring] descriptors this process holds */
static int count_rings(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[300], l[300];
        snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(p, l, sizeof l - 1);
        if (k > 0) {
            l[k] = '\0';
            n += strstr(l, "io_uring") != NULL;
        }
    }
    closedir(d);
    return n;
}

static void hammer(kio *io)
{
    worker w[THREADS];
    pthread_t t[THREADS];
    int shared = kio_file_open(io, t_path(g_dir, "shared"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(shared, 0);
    for (int i = 0; i < THREADS; i++) {
        char name[16];
        snprintf(name, sizeof name, "own%d", i);
        w[i] = (worker){ .io = io, .id = i, .shared = shared };
        w[i].own = kio_file_open(io, t_path(g_dir, name), KIO_O_RDWR | KIO_O_CREAT, 0644);
        cr_assert_geq(w[i].own, 0);
    }
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, run, &w[i]), 0);
    uint64_t writes = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].rc, 0, "thread %d: %s", i, klog_strerror(w[i].rc));
        writes += w[i].writes;
    }
    /* everything is where it belongs */
    size_t own_len = (size_t)ROUNDS * BATCH * CHUNK;
    uint8_t *b = malloc(own_len);
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(kio_pread(io, w[i].own, b, own_len, 0), (ssize_t)own_len);
        cr_assert(t_check(b, own_len, (uint64_t)i, 0), "own file %d corrupt", i);
        kio_file_close(io, w[i].own);
    }
    uint8_t chunk[CHUNK];
    for (int r = 0; r < ROUNDS; r++) {
        if (r % 3 == 0)
            continue;
        for (int i = 0; i < THREADS; i++) {
            uint64_t off = ((uint64_t)r * THREADS + (uint64_t)i) * CHUNK;
            cr_assert_eq(kio_pread(io, shared, chunk, CHUNK, off), CHUNK);
            cr_assert(t_check(chunk, CHUNK, 1000, off), "shared chunk r%d t%d corrupt", r, i);
        }
    }
    free(b);
    kio_file_close(io, shared);
    kio_stats st;
    kio_get_stats(io, &st);
    cr_assert_eq(st.writes, writes);
    cr_assert_eq(st.bytes_written, writes * CHUNK);
    cr_assert_eq(st.syncs, (uint64_t)THREADS * ROUNDS);
}

Test(concurrency, uring_default_pool)
{
    kio *io = t_open(TB_URING);
    hammer(io);
    cr_assert_leq(count_rings(), 4, "pool grew past max_rings");
    kio_close(io);
    cr_assert_eq(count_rings(), 0, "rings left after kio_close");
}

Test(concurrency, uring_two_rings_eight_threads)
{
    if (!t_uring_usable())
        t_skip("io_uring not available here");
    kio *io = NULL;
    cr_assert_eq(kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_URING, .max_rings = 2,
                                              .ring_entries = 4 }), 0);
    hammer(io);
    cr_assert_leq(count_rings(), 2, "pool grew past max_rings");
    kio_close(io);
}

Test(concurrency, uring_one_ring)
{
    if (!t_uring_usable())
        t_skip("io_uring not available here");
    kio *io = NULL;
    cr_assert_eq(kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_URING, .max_rings = 1 }), 0);
    hammer(io);
    cr_assert_eq(count_rings(), 1);
    kio_close(io);
}

Test(concurrency, posix)
{
    kio *io = t_open(TB_POSIX);
    hammer(io);
    kio_close(io);
}

Test(concurrency, fault_over_uring)
{
    kio *io = t_open(TB_FAULT_URING);
    hammer(io);
    kio_close(io);
}

/* Two engines in one process do not share anything. */
Test(concurrency, two_engines)
{
    kio *a = t_open(TB_URING), *b = t_open(TB_URING);
    int ha = kio_file_open(a, t_path(g_dir, "a"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    int hb = kio_file_open(b, t_path(g_dir, "b"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    t_put(a, ha, "aaaa", 4, 0);
    t_put(b, hb, "bbbbbb", 6, 0);
    kio_stats sa, sb;
    kio_get_stats(a, &sa);
    kio_get_stats(b, &sb);
    cr_assert_eq(sa.bytes_written, 4);
    cr_assert_eq(sb.bytes_written, 6);
    kio_file_close(a, ha);
    kio_close(a);
    /* b still works after a is gone */
    cr_assert_eq(kio_datasync(b, hb), 0);
    kio_file_close(b, hb);
    kio_close(b);
}
