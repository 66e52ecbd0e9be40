/*
 * lib/topic/follow.c - the background thread of a read-only instance
 * (read.only): its partition logs follow the writer of another process.
 *
 * One inotify descriptor watches every partition directory: a write to a
 * segment (IN_MODIFY) has that partition's log catch up
 * (ks_log_refresh), a file made, removed or renamed (a roll, retention, a
 * cleaning pass's swap) has it list its directory again.  The catch-up
 * runs the partition's listener, which wakes its consumers: a record is
 * seen within the time the thread takes to wake (well under a millisecond
 * on an idle machine).  Every FOLLOW_TICK_MS every partition looks again
 * (an event lost to a full inotify queue, a kernel without inotify: then
 * every FOLLOW_POLL_MS).  The set of topics is the one klog_open found.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/common.h"
#include "topic/internal.h"

#define FOLLOW_TICK_MS 1000 /* every partition looks again, events or not */
#define FOLLOW_POLL_MS 10   /* without inotify */
#define FOLLOW_MASK (IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF)

typedef struct fpart {
    kpart *p;
    bool dirty, rescan;
} fpart;

typedef struct follow {
    fpart *v;
    size_t n;
    int *by_wd; /* watch descriptor -> index in v, -1 */
    size_t nwd;
} follow;

/* Watch every partition directory of the table (the table is fixed: the
 * topics klog_open found).  Returns the inotify descriptor, or -1. */
static int follow_setup(klog *k, follow *f, kt_topic **snap, size_t nt)
{
    size_t n = 0;
    for (size_t i = 0; i < nt; i++)
        n += (size_t)atomic_load(&snap[i]->nparts);
    if (!(f->v = calloc(n ? n : 1, sizeof *f->v)))
        return -1;
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    for (size_t i = 0; i < nt; i++) {
        int np = atomic_load(&snap[i]->nparts);
        for (int p = 0; p < np; p++) {
            size_t at = f->n++;
            f->v[at].p = snap[i]->parts[p];
            char d[4400];
            int wd = -1;
            if (ifd >= 0 && snprintf(d, sizeof d, "%s/%s-%d", k->dir, snap[i]->name, p) < (int)sizeof d)
                wd = inotify_add_watch(ifd, d, FOLLOW_MASK);
            if (wd < 0)
                continue; /* looked at every tick */
            if ((size_t)wd >= f->nwd) {
                size_t nn = KLOG_MAX((size_t)wd + 1, f->nwd * 2);
                int *b = realloc(f->by_wd, nn * sizeof *b);
                if (!b)
                    continue;
                for (size_t j = f->nwd; j < nn; j++)
                    b[j] = -1;
                f->by_wd = b;
                f->nwd = nn;
            }
            f->by_wd[wd] = (int)at;
        }
    }
    return ifd;
}

/* Read the queued events, marking their partitions.  Returns true when
 * the queue overflowed (every partition must look). */
static bool follow_events(int ifd, follow *f)
{
    _Alignas(struct inotify_event) char buf[16384];
    bool overflow = false;
    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t n = read(ifd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *q = buf; q < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)q;
            if (e->mask & IN_Q_OVERFLOW)
                overflow = true;
            else if (e->wd >= 0 && (size_t)e->wd < f->nwd && f->by_wd[e->wd] >= 0) {
                fpart *fp = &f->v[f->by_wd[e->wd]];
                fp->dirty = true;
                fp->rescan = fp->rescan || (e->mask & ~IN_MODIFY) != 0;
            }
            q += sizeof *e + e->len;
        }
    }
    return overflow;
}

void *klog__follow_main(void *arg)
{
    klog *k = arg;
    pthread_setname_np(pthread_self(), "klog-follow");
    kt_topic **snap = NULL;
    ssize_t nt = klog__topics_snapshot(k, &snap);
    follow f = { 0 };
    int ifd = nt >= 0 ? follow_setup(k, &f, snap, (size_t)nt) : -1;
    uint64_t next_tick = klog__now_ns() + FOLLOW_TICK_MS * 1000000ull;
    for (;;) {
        struct pollfd pfd[2] = { { .fd = k->follow_efd, .events = POLLIN }, { .fd = ifd, .events = POLLIN } };
        uint64_t now = klog__now_ns();
        int timeout = ifd < 0 ? FOLLOW_POLL_MS : now >= next_tick ? 0 : (int)((next_tick - now) / 1000000u) + 1;
        poll(pfd, ifd < 0 ? 1 : 2, timeout);
        pthread_mutex_lock(&k->bg_mu);
        bool stop = k->stopping;
        pthread_mutex_unlock(&k->bg_mu);
        if (stop)
            break;
        bool all = ifd < 0, rescan = false;
        if (ifd >= 0 && (pfd[1].revents & POLLIN) && follow_events(ifd, &f))
            all = rescan = true;
        if ((now = klog__now_ns()) >= next_tick) {
            all = true;
            next_tick = now + FOLLOW_TICK_MS * 1000000ull;
        }
        for (size_t i = 0; i < f.n; i++) {
            fpart *fp = &f.v[i];
            if (!all && !fp->dirty)
                continue;
            /* errors (a directory gone with its topic) leave the log as it was */
            (void)ks_log_refresh(kpart_log(fp->p), rescan || fp->rescan);
            fp->dirty = fp->rescan = false;
        }
    }
    if (ifd >= 0)
        close(ifd);
    free(f.v);
    free(f.by_wd);
    if (nt >= 0)
        klog__topics_release(snap, (size_t)nt);
    return NULL;
}
