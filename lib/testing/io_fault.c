/*
 * lib/testing/io_fault.c - the fault-injecting backend, for tests.
 *
 * Built into libklog-testing (klog/testing.h is its public face), not into
 * libklog.  Wraps a base backend (posix unless told otherwise) and adds two
 * things:
 *
 * 1. Injected failures (SQLite's test VFS): rules armed through
 *    KIO_CTL_FAULT_ARM fail the nth op of some classes with an errno, or
 *    cut a write to half its bytes (rounded down, so a 1-byte write moves
 *    nothing) or a read to half (rounded up: 0 would read as EOF).
 *    Several rules (up to 16) may be armed at once; each counts from when
 *    it was armed, and a non-sticky rule is spent once it fired.
 *    KIO_CTL_FAULT_CLEAR disarms all.  A failed op never reaches the base.
 *    KIO_CTL_FAULT_COUNT counts every op of a class since the disk (below)
 *    was made, failed ones included.
 *
 * 2. Simulated crashes (SQLite's crash test, with ALICE's rules about what
 *    a file system may lose).  The backend remembers what is not durable
 *    yet and, on KIO_CTL_FAULT_CRASH, rewrites the real files on disk into
 *    one state the disk could be in after power loss:
 *
 *    - per file (tracked by path, across close and reopen): `synced`, the
 *      length a successful datasync made durable, and undo copies of the
 *      durable bytes that were overwritten or truncated away since.  Bytes
 *      beyond `synced` are what the crash mode plays with; undo copies are
 *      always put back (an overwrite may not have reached the disk).
 *      The modes: DROP cuts the file back to `synced`; PREFIX keeps a
 *      random prefix of the bytes beyond; GARBAGE and ZERO keep the length
 *      and overwrite the bytes beyond with random bytes or zeros; HOLES
 *      keeps each 4 KiB page beyond or not, independently (pages reach the
 *      disk in any order: a lost page before a kept one is a hole of
 *      zeros, and the file ends with the last page kept); RANDOM draws
 *      one of these per file.  Files go in order of first sight, all
 *      draws come from one splitmix64 stream seeded by the caller: the
 *      same history and seed give the same disk.
 *      KIO_CRASH_TORN: an overwrite of durable bytes that no sync covered
 *      is torn, not undone whole: each 512-byte sector of it keeps the
 *      new bytes or gets the old ones back, drawn per sector (a disk
 *      writes sectors, not writes).  Without it undo copies go back whole.
 *    - fsyncgate: a datasync that fails (an injected error, or the base's)
 *      leaves the file's dirty pages clean but unwritten, as Linux does:
 *      what was not durable before it is lost at a crash even if a later
 *      datasync succeeds (the bytes beyond `synced` then read as zeros,
 *      overwritten durable bytes come back), unless a write dirtied their
 *      4 KiB page again before that later sync.
 *    - per directory entry change (create, mkdir, rename, unlink) not yet
 *      covered by a dirsync of its directory: a record, in order, so that
 *      KIO_CRASH_LOSE_DIRENTS can undo them newest first (a rename between
 *      two directories is durable once both were dirsynced).  What an undo
 *      needs is kept alive without a visible file: an unlinked file, or a
 *      file a rename replaced, is held open by a backup descriptor and
 *      copied back to its name on crash.  The descriptors are closed once
 *      a dirsync makes the change durable, or at crash, or when the disk
 *      forgets (reboot) or goes: nothing is ever left in the directories.
 *
 *    A file that existed before the engine first saw it counts as durable
 *    at its size then.  After the crash every op fails with
 *    KLOG_TESTING_ECRASHED, except close, which releases the handle and
 *    touches nothing on disk.
 *
 *    A crash is either called for (KIO_CTL_FAULT_CRASH) or armed to fall on
 *    the nth op of some classes (KIO_CTL_FAULT_CRASH_AT): that op does not
 *    happen (in a batch of writes, those before it do; the sync does not).
 *    With KIO_CRASH_INFLIGHT a batch of writes is what io_uring makes of
 *    it, requests in flight together that complete in any order: at a
 *    crash inside it every other request of the batch, before or after
 *    the one the power cut falls on, is issued or not, drawn per request.
 *
 * The disk and its engines.  Everything above is the state of a disk
 * (struct kio_fault_disk), not of an engine.  An engine opened without a
 * disk makes one of its own and rewrites the files the moment it crashes,
 * after the op it crashed in is done.  An engine opened on a shared disk
 * (kio_fault_init.disk; the testing library's klog_testing_fault) only
 * stops; the rewrite waits for kio_fault_disk_reboot, which refuses while
 * an engine is attached: a live instance keeps segments mmap'd, and cutting
 * a mapped file short under a reader would be a SIGBUS, not a crash test.
 * A shared disk outlives its engines, one attached at a time, so what is
 * not durable survives klog_close and klog_open as on a real machine.
 *
 * Names are compared after lexical canonicalisation (absolute, "." and
 * ".." folded, no symlinks resolved); directories by device and inode.
 *
 * The base must work on the real file system under the names it is given
 * (posix and uring do): the crash rewrite and the bookkeeping use plain
 * syscalls on those names.  Handles are the base's handles, passed through.
 *
 * Locking: one mutex covers all state and is held across each whole op,
 * base call included, so a write and the undo copy taken before it are
 * atomic with respect to other threads.  The engine stays thread-safe; it
 * is just not concurrent.
 */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "io/io_internal.h"
#include "testing/io_fault.h"

#define FF_MAX_RULES 16
#define FF_NCLASS 9 /* KIO_OP_OPEN .. KIO_OP_MKDIR */

typedef struct ff_undo {
    uint64_t off;
    size_t len;
    uint8_t *data;
    bool whole;        /* a truncation's: metadata, never torn */
} ff_undo;

/* What the backend knows about one file.  Lives until the disk forgets
 * (reboot) or goes, or a sweep finds it nameless and unreferenced. */
typedef struct ff_file {
    char *path;        /* canonical absolute name; meaningless while gone */
    bool gone;         /* has no name now (unlinked, replaced, undone) */
    dev_t dev;
    ino_t ino;
    uint64_t synced;   /* durable length */
    ff_undo *undo;     /* oldest first; restored newest first */
    size_t nundo, cundo;
    ff_undo *lost;     /* fsyncgate: what a failed sync dropped (data NULL:
                        * zeros); oldest first, restored after undo */
    size_t nlost, clost;
    struct ff_file *next;
} ff_file;

typedef enum { DE_CREATE, DE_MKDIR, DE_RENAME, DE_UNLINK } de_kind;

/* One directory entry change not yet durable. */
typedef struct ff_dirent {
    de_kind kind;
    char *path;        /* the name created / made / unlinked; rename: from */
    char *to;          /* rename: to */
    dev_t pdev[2];     /* parent directory of path, of to */
    ino_t pino[2];
    unsigned pending;  /* bit k: parent k not yet dirsynced */
    int backup;        /* fd on the inode that lost its name, or -1 */
    bool backup_dir;   /* rename replaced an empty directory */
    mode_t mode;       /* of the inode behind backup */
    ff_file *victim;   /* unlink, rename: record of the file that lost its
                        * name (may be NULL: untracked) */
} ff_dirent;

typedef struct ff_rule {
    kio_fault_rule r;
    uint64_t seen;
} ff_rule;

typedef struct ff_handle {
    bool open;
    ff_file *f;        /* NULL for directories */
} ff_handle;

/* The disk.  Lives as long as a reference does: its creator's and that of
 * the engine attached to it (an engine's own disk has only the latter). */
typedef struct kio_fault_disk {
    pthread_mutex_t mu;
    unsigned refs;
    bool shared;       /* made by kio_fault_disk_new: the rewrite waits for reboot */
    bool attached;     /* an engine is on it (bst and h are that engine's) */
    const struct kio_methods *bm;
    const void *barg;
    void *bst;         /* the attached engine's base state */
    bool binited;

    ff_rule rules[FF_MAX_RULES];
    unsigned nrules;
    uint64_t counts[FF_NCLASS];
    bool crash_armed;
    kio_crash_rule crash_at;
    uint64_t crash_seen;
    bool crashed;      /* the power is off */
    bool rewritten;    /* the files are in their post-crash state */
    kio_crash crash;   /* of the power cut, for the rewrite */

    ff_file *files, *files_tail;    /* in order of first sight */
    ff_dirent *de;
    size_t nde, cde;
    ff_handle *h;
    int hcap;
} ff_state;

/* An engine's state block: which disk it is on. */
typedef struct ff_engine {
    ff_state *s;
} ff_engine;

/* ---- small helpers ---------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: any seed, including 0, gives a good stream */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Lexically canonical absolute path ("//", ".", ".." folded; no symlinks
 * resolved).  Two spellings of one name then compare equal as strings. */
static char *canon(const char *path)
{
    char *full;
    if (path[0] == '/') {
        full = strdup(path);
    } else {
        char *cwd = getcwd(NULL, 0);
        if (!cwd)
            return NULL;
        if (asprintf(&full, "%s/%s", cwd, path) < 0)
            full = NULL;
        free(cwd);
    }
    if (!full)
        return NULL;
    size_t n = strlen(full);
    char *out = malloc(n + 2);
    if (!out) {
        free(full);
        return NULL;
    }
    size_t o = 0;
    char *save = NULL;
    for (char *c = strtok_r(full, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* drop the slash too */
            continue;
        }
        out[o++] = '/';
        size_t l = strlen(c);
        memcpy(out + o, c, l);
        o += l;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    free(full);
    return out;
}

/* Parent directory of a canonical path (malloc'd). */
static char *parent_of(const char *cp)
{
    const char *sl = strrchr(cp, '/');
    size_t n = sl && sl != cp ? (size_t)(sl - cp) : 1;
    return strndup(cp, n);
}

static bool parent_id(const char *cp, dev_t *dev, ino_t *ino)
{
    char *p = parent_of(cp);
    struct stat sb;
    bool ok = p && stat(p, &sb) == 0;
    if (ok) {
        *dev = sb.st_dev;
        *ino = sb.st_ino;
    }
    free(p);
    return ok;
}

/* Is `p` equal to `dir` or below it? */
static bool under(const char *p, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (int)(got == len ? 0 : -EIO);
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t put = 0;
    while (put < len) {
        ssize_t r = pwrite(fd, (const char *)buf + put, len - put, (off_t)(off + put));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        put += (size_t)r;
    }
    return 0;
}

/* ---- file records ----------------------------------------------------- */

static ff_file *file_find(ff_state *s, const char *cp)
{
    for (ff_file *f = s->files; f; f = f->next)
        if (!f->gone && strcmp(f->path, cp) == 0)
            return f;
    return NULL;
}

static void undo_clear(ff_file *f)
{
    for (size_t i = 0; i < f->nundo; i++)
        free(f->undo[i].data);
    f->nundo = 0;
}

static void lost_clear(ff_file *f)
{
    for (size_t i = 0; i < f->nlost; i++)
        free(f->lost[i].data);
    f->nlost = 0;
}

static ff_file *file_new(ff_state *s, const char *cp, uint64_t synced)
{
    ff_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(cp))) {
        free(f);
        return NULL;
    }
    f->synced = synced;
    if (s->files_tail)
        s->files_tail->next = f;
    else
        s->files = f;
    s->files_tail = f;
    return f;
}

static void file_free(ff_file *f)
{
    undo_clear(f);
    lost_clear(f);
    free(f->lost);
    free(f->undo);
    free(f->path);
    free(f);
}

static void file_set_id(ff_file *f, const char *cp)
{
    struct stat sb;
    if (stat(cp, &sb) == 0) {
        f->dev = sb.st_dev;
        f->ino = sb.st_ino;
    }
}

/* Remember bytes [off, off+len) of the file, as they are now.  Takes
 * ownership of data. */
static int undo_push(ff_file *f, uint64_t off, uint8_t *data, size_t len, bool whole)
{
    int rc = klog__vec_reserve(&f->undo, &f->cundo, f->nundo + 1, sizeof *f->undo);
    if (rc < 0) {
        free(data);
        return rc;
    }
    f->undo[f->nundo++] = (ff_undo){ off, len, data, whole };
    return 0;
}

/* Before bytes [off, off+len) of handle h change: keep a copy of those of
 * them that are durable (below `synced`) and exist (whole: a truncation's,
 * which a torn crash puts back whole too).  Reads through the base
 * so that any base works. */
static int capture(ff_state *s, ff_file *f, int h, uint64_t off, uint64_t len, bool whole)
{
    if (!f || off >= f->synced || len == 0)
        return 0;
    uint64_t cur;
    int rc = s->bm->filesize(s->bst, h, &cur);
    if (rc < 0)
        return rc;
    uint64_t end = KLOG_MIN(KLOG_MIN(off + len, f->synced), cur);
    if (end <= off)
        return 0;
    size_t n = (size_t)(end - off);
    uint8_t *buf = malloc(n);
    if (!buf)
        return -ENOMEM;
    size_t got = 0;
    while (got < n) {
        struct iovec v = { buf + got, n - got };
        ssize_t r = s->bm->readv(s->bst, h, &v, 1, off + got);
        if (r <= 0) {
            free(buf);
            return r < 0 ? (int)r : -EIO;
        }
        got += (size_t)r;
    }
    return undo_push(f, off, buf, n, whole);
}

static void mark_synced(ff_state *s, ff_file *f, int h)
{
    uint64_t len;
    if (!f || s->bm->filesize(s->bst, h, &len) < 0)
        return;
    f->synced = len;
    undo_clear(f);
}

#define FF_PAGE 4096u
#define FF_SECTOR 512u

static int lost_push(ff_file *f, uint64_t off, uint8_t *data, size_t len)
{
    int rc = klog__vec_reserve(&f->lost, &f->clost, f->nlost + 1, sizeof *f->lost);
    if (rc < 0) {
        free(data);
        return rc;
    }
    f->lost[f->nlost++] = (ff_undo){ off, len, data, true };
    return 0;
}

/* fsyncgate: a datasync of h failed.  The kernel has marked the dirty
 * pages clean without writing them: what was not durable is lost for good
 * (a later sync that succeeds will not write it), though reads still see
 * it.  The undo copies (durable bytes overwritten since the last good
 * sync) move to the lost list; the bytes beyond `synced`, if any, are
 * lost as zeros. */
static void sync_failed(ff_state *s, ff_file *f, int h)
{
    uint64_t cur;
    if (!f || s->bm->filesize(s->bst, h, &cur) < 0)
        return;
    for (size_t i = 0; i < f->nundo; i++)
        (void)lost_push(f, f->undo[i].off, f->undo[i].data, f->undo[i].len);
    f->nundo = 0;
    if (cur > f->synced)
        (void)lost_push(f, f->synced, NULL, (size_t)(cur - f->synced));
}

/* Put [off, off+len) of old content (NULL: zeros) in front of the undo
 * list: the oldest, so restored last. */
static int undo_push_oldest(ff_file *f, uint64_t off, const uint8_t *old, size_t len)
{
    uint8_t *d = NULL;
    if (old && (d = malloc(len)) == NULL)
        return -ENOMEM;
    if (old)
        memcpy(d, old, len);
    int rc = undo_push(f, off, d, len, true);
    if (rc == 0 && f->nundo > 1) {
        ff_undo u = f->undo[f->nundo - 1];
        memmove(f->undo + 1, f->undo, (f->nundo - 1) * sizeof *f->undo);
        f->undo[0] = u;
    }
    return rc;
}

/* A write to [off, off+len) dirties its pages again: the next sync writes
 * them whole, so what a failed sync lost in them is lost no more once that
 * sync succeeds; until then it is an unsynced overwrite like any other.
 * Moves those pages from the lost list to the front of the undo list. */
static void lost_trim(ff_file *f, uint64_t off, uint64_t len)
{
    if (!f || f->nlost == 0 || len == 0)
        return;
    const uint64_t lo = off / FF_PAGE * FF_PAGE, hi = (off + len + FF_PAGE - 1) / FF_PAGE * FF_PAGE;
    size_t n = f->nlost;
    for (size_t i = 0; i < n; i++) {
        ff_undo *u = &f->lost[i];
        uint64_t a = u->off, b = u->off + u->len;
        if (b <= lo || a >= hi || u->len == 0)
            continue;
        if (b > hi) { /* the part after the pages stays, as a new record */
            uint8_t *d = NULL;
            if (u->data && (d = malloc((size_t)(b - hi))) != NULL)
                memcpy(d, u->data + (hi - a), (size_t)(b - hi));
            if (!u->data || d) {
                (void)lost_push(f, hi, d, (size_t)(b - hi));
                u = &f->lost[i]; /* the push may have moved the array */
            }
        }
        /* the pages themselves: undo, from now on */
        uint64_t ma = KLOG_MAX(a, lo), mb = KLOG_MIN(b, hi);
        (void)undo_push_oldest(f, ma, u->data ? u->data + (ma - a) : NULL, (size_t)(mb - ma));
        u = &f->lost[i];
        u->len = a < lo ? (size_t)(lo - a) : 0; /* the part before stays in place */
    }
}

/* A rename moved `from` (and all below it) to `to`: follow it. */
static void rename_paths(ff_state *s, const char *from, const char *to)
{
    size_t fl = strlen(from);
    for (ff_file *f = s->files; f; f = f->next) {
        if (f->gone || !under(f->path, from))
            continue;
        char *np;
        if (asprintf(&np, "%s%s", to, f->path + fl) < 0)
            continue; /* out of memory: the record keeps a stale name */
        free(f->path);
        f->path = np;
    }
}

/* The name `p` (and all below it) stopped existing. */
static void drop_names(ff_state *s, const char *p)
{
    for (ff_file *f = s->files; f; f = f->next)
        if (!f->gone && under(f->path, p))
            f->gone = true;
}

/* ---- handles ---------------------------------------------------------- */

static int handle_set(ff_state *s, int h, ff_file *f)
{
    if (h >= s->hcap) {
        size_t c = (size_t)s->hcap;
        int rc = klog__vec_reserve(&s->h, &c, KLOG_MAX((size_t)h + 1, (size_t)64), sizeof *s->h);
        if (rc < 0)
            return rc;
        memset(s->h + s->hcap, 0, (c - (size_t)s->hcap) * sizeof *s->h);
        s->hcap = (int)c;
    }
    s->h[h] = (ff_handle){ true, f };
    return 0;
}

static ff_file *handle_file(ff_state *s, int h)
{
    return h >= 0 && h < s->hcap && s->h[h].open ? s->h[h].f : NULL;
}

/* ---- directory entry records ---------------------------------------- */

static void de_free(ff_dirent *d)
{
    if (d->backup >= 0)
        close(d->backup);
    free(d->path);
    free(d->to);
}

/* Append a record; takes ownership of path, to and backup, even on
 * failure. */
static int de_push(ff_state *s, ff_dirent d)
{
    int rc = klog__vec_reserve(&s->de, &s->cde, s->nde + 1, sizeof *s->de);
    if (rc < 0) {
        de_free(&d);
        return rc;
    }
    s->de[s->nde++] = d;
    return 0;
}

/* Free records of files that have no name and that nothing can give one
 * back to: no pending dirent names them as its victim, no handle is open
 * on them. */
static void sweep_files(ff_state *s)
{
    ff_file **pp = &s->files, *prev = NULL;
    while (*pp) {
        ff_file *f = *pp;
        bool keep = !f->gone;
        for (size_t i = 0; !keep && i < s->nde; i++)
            keep = s->de[i].victim == f;
        for (int h = 0; !keep && h < s->hcap; h++)
            keep = s->h[h].open && s->h[h].f == f;
        if (keep) {
            prev = f;
            pp = &f->next;
            continue;
        }
        *pp = f->next;
        if (s->files_tail == f)
            s->files_tail = prev;
        file_free(f);
    }
}

/* ---- rules and counters ----------------------------------------------- */

/*
 * Count one op of class `cls` and see whether a rule fires on it.  Returns
 * the error to inject (negative), or 0; *shorten is set instead when the op
 * is to be cut short (writes and reads only).  Every armed rule matching the
 * class counts the op, even if an earlier one already fired.
 */
static int hit(ff_state *s, unsigned cls, bool *shorten)
{
    s->counts[__builtin_ctz(cls)]++;
    if (shorten)
        *shorten = false;
    if (s->crash_armed && (s->crash_at.ops & cls) && ++s->crash_seen == s->crash_at.nth) {
        /* the power goes before this op runs; the rewrite (for an engine's
         * own disk) comes in leave(), once the op has stopped touching files */
        s->crash_armed = false;
        s->crashed = true;
        s->crash = s->crash_at.crash;
        return KLOG_TESTING_ECRASHED;
    }
    int out = 0;
    bool sh = false;
    unsigned k = 0;
    for (unsigned i = 0; i < s->nrules; i++) {
        ff_rule *r = &s->rules[i];
        bool keep = true;
        if (r->r.ops & cls) {
            r->seen++;
            bool sticky = r->r.flags & KIO_FAULT_STICKY;
            bool fire = r->seen == r->r.nth || (sticky && r->seen > r->r.nth);
            if (fire) {
                keep = sticky;
                if (!out && !sh) {
                    if ((r->r.flags & KIO_FAULT_SHORT) && (cls == KIO_OP_WRITE || cls == KIO_OP_READ))
                        sh = true;
                    else
                        out = r->r.err < 0 ? r->r.err : -EIO;
                }
            }
        }
        if (keep)
            s->rules[k++] = *r;
    }
    s->nrules = k;
    if (shorten)
        *shorten = sh;
    else if (sh)
        out = -EIO; /* cannot happen: only reads and writes pass shorten */
    return out;
}

/* ---- ops -------------------------------------------------------------- */

#define ENTER(s)                                                               \
    do {                                                                       \
        pthread_mutex_lock(&(s)->mu);                                          \
        if ((s)->crashed) {                                                    \
            pthread_mutex_unlock(&(s)->mu);                                    \
            return KLOG_TESTING_ECRASHED;                                      \
        }                                                                      \
    } while (0)

static int rewrite(ff_state *s);

/* End of an op: if the power went during it and the disk is the engine's
 * own, put the files into their post-crash state now; then unlock. */
static void leave(ff_state *s)
{
    if (s->crashed && !s->shared && !s->rewritten)
        (void)rewrite(s);
    pthread_mutex_unlock(&s->mu);
}

static int ff_open(void *st, const char *path, unsigned flags, unsigned mode)
{
    ff_state *s = ((ff_engine *)st)->s;
    ENTER(s);
    int rc = hit(s, KIO_OP_OPEN, NULL);
    char *cp = NULL;
    uint8_t *tbuf = NULL;
    size_t tlen = 0;
    if (rc < 0)
        goto out;
    if (!(cp = canon(path))) {
        rc = -ENOMEM;
        goto out;
    }
    struct stat sb;
    bool existed = stat(cp, &sb) == 0;
    bool is_dir = flags & KIO_O_DIRECTORY;
    ff_file *f = NULL;
    if (!is_dir && existed && S_ISREG(sb.st_mode)) {
        f = file_find(s, cp);
        if (f && (f->dev != sb.st_dev || f->ino != sb.st_ino)) {
            /* replaced behind the engine's back: start over from what
             * is there now */
            f->gone = true;
            f = NULL;
        }
        /* O_TRUNC destroys durable bytes: copy them first */
        uint64_t keep = f ? KLOG_MIN(f->synced, (uint64_t)sb.st_size) : (uint64_t)sb.st_size;
        if ((flags & KIO_O_TRUNC) && keep > 0) {
            int fd = open(cp, O_RDONLY | O_CLOEXEC);
            tlen = (size_t)keep;
            tbuf = malloc(tlen);
            rc = fd < 0 ? -errno : !tbuf ? -ENOMEM : pread_full(fd, tbuf, tlen, 0);
            if (fd >= 0)
                close(fd);
            if (rc < 0)
                goto out;
        }
    }
    int h = s->bm->open(s->bst, path, flags, mode);
    if (h < 0) {
        rc = h;
        goto out;
    }
    bool created = !existed && (flags & KIO_O_CREAT);
    /* Only regular files are tracked: a device or fifo has no durable
     * length to go back to. */
    if (!is_dir && (created || (existed && S_ISREG(sb.st_mode)))) {
        if (!f && (f = file_new(s, cp, existed ? (uint64_t)sb.st_size : 0)) == NULL) {
            s->bm->close(s->bst, h);
            rc = -ENOMEM;
            goto out;
        }
        file_set_id(f, cp);
        if (tbuf) {
            (void)undo_push(f, 0, tbuf, tlen, true);
            tbuf = NULL;
        }
        if (created) {
            ff_dirent d = { .kind = DE_CREATE, .backup = -1, .pending = 1 };
            if (parent_id(cp, &d.pdev[0], &d.pino[0]) && (d.path = strdup(cp)))
                (void)de_push(s, d);
        }
    }
    if ((rc = handle_set(s, h, f)) < 0) {
        s->bm->close(s->bst, h);
        goto out;
    }
    rc = h;
out:
    free(tbuf);
    free(cp);
    leave(s);
    return rc;
}

static int ff_close(void *st, int h)
{
    ff_state *s = ((ff_engine *)st)->s;
    pthread_mutex_lock(&s->mu);
    int rc = s->bm->close(s->bst, h);
    if (h >= 0 && h < s->hcap)
        s->h[h] = (ff_handle){ false, NULL };
    if (s->crashed)
        rc = 0; /* after a crash close only releases the handle */
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static ssize_t ff_readv(void *st, int h, const struct iovec *iov, int iovcnt, uint64_t off)
{
    ff_state *s = ((ff_engine *)st)->s;
    ENTER(s);
    bool sh = false;
    ssize_t rc = hit(s, KIO_OP_READ, &sh);
    if (rc == 0 && sh && iovcnt > 0) {
        struct iovec *v = malloc(sizeof *v * (size_t)iovcnt);
        if (!v) {
            rc = -ENOMEM;
        } else {
            /* rounded up, unlike writes: a read of 0 bytes means EOF */
            size_t half = (kio__iov_len(iov, iovcnt) + 1) / 2;
            int cnt = kio__iov_slice(v, iov, iovcnt, 0, half);
            rc = cnt ? s->bm->readv(s->bst, h, v, cnt, off) : 0;
            free(v);
        }
    } else if (rc == 0) {
        rc = s->bm->readv(s->bst, h, iov, iovcnt, off);
    }
    leave(s);
    return rc;
}

/*
 * Faults are decided per request before anything is written: a failed
 * request is not passed to the base; a short one is passed with half its
 * bytes.  The linked sync counts as a SYNC op only if every write is
 * clean (otherwise it would be cancelled and never run).  If the sync is
 * the op to fail, the writes still go (without the link) and the sync's
 * error is returned.  A power cut at request i lets the requests before
 * it through and no other.
 */
static int ff_writev_many(void *st, const kio_wreq *reqs, unsigned n, ssize_t *res, unsigned flags)
{
    ff_state *s = ((ff_engine *)st)->s;
    pthread_mutex_lock(&s->mu);
    if (s->crashed) {
        for (unsigned i = 0; i < n; i++)
            res[i] = KLOG_TESTING_ECRASHED;
        pthread_mutex_unlock(&s->mu);
        return KLOG_TESTING_ECRASHED;
    }
    bool dsync = flags & KIO_W_DSYNC;
    int rc = 0;
    size_t niov = 0;
    for (unsigned i = 0; i < n; i++)
        niov += reqs[i].iovcnt > 0 ? (size_t)reqs[i].iovcnt : 0;
    int *fault = calloc(n ? n : 1, sizeof *fault);
    unsigned *map = calloc(n ? n : 1, sizeof *map);
    kio_wreq *fwd = calloc(n ? n : 1, sizeof *fwd);
    ssize_t *fres = calloc(n ? n : 1, sizeof *fres);
    struct iovec *pool = calloc(niov ? niov : 1, sizeof *pool);
    if (!fault || !map || !fwd || !fres || !pool) {
        rc = -ENOMEM;
        for (unsigned i = 0; i < n; i++)
            res[i] = rc;
        goto out;
    }

    bool clean = true;
    for (unsigned i = 0; i < n; i++) {
        bool sh = false;
        int e = hit(s, KIO_OP_WRITE, &sh);
        fault[i] = e ? e : sh ? 1 : 0;
        clean = clean && fault[i] == 0;
        if (s->crashed) {
            /* the power went at request i: those before it were issued
             * (unsynced, so the crash mode decides), the rest never are;
             * or, in flight together (KIO_CRASH_INFLIGHT), each of the
             * others was issued or not */
            for (unsigned j = i; j < n; j++)
                fault[j] = KLOG_TESTING_ECRASHED;
            if (s->crash.flags & KIO_CRASH_INFLIGHT) {
                uint64_t rng = s->crash.seed ^ 0x1f1f1f1f1f1f1f1full;
                for (unsigned j = 0; j < n; j++)
                    if (j != i)
                        fault[j] = rng_next(&rng) & 1 ? 0 : KLOG_TESTING_ECRASHED;
            }
            break;
        }
    }
    int sync_fault = dsync && clean && n > 0 ? hit(s, KIO_OP_SYNC, NULL) : 0;

    unsigned m = 0;
    size_t used = 0;
    for (unsigned i = 0; i < n; i++) {
        const kio_wreq *q = &reqs[i];
        if (fault[i] < 0) {
            res[i] = fault[i];
            continue;
        }
        kio_wreq w = *q;
        if (fault[i] == 1) {
            struct iovec *v = pool + used;
            size_t half = kio__iov_len(q->iov, q->iovcnt) / 2;
            w.iovcnt = kio__iov_slice(v, q->iov, q->iovcnt, 0, half);
            w.iov = v;
            used += (size_t)w.iovcnt;
            if (w.iovcnt == 0) {
                res[i] = 0; /* half of one byte: nothing written */
                continue;
            }
        }
        int cr = capture(s, handle_file(s, q->h), q->h, q->off, kio__iov_len(w.iov, w.iovcnt), false);
        if (cr < 0) {
            res[i] = cr;
            fault[i] = cr;
            continue;
        }
        lost_trim(handle_file(s, q->h), q->off, kio__iov_len(w.iov, w.iovcnt));
        map[m] = i;
        fwd[m++] = w;
    }
    bool link = dsync && clean && sync_fault == 0;
    int brc = m ? s->bm->writev_many(s->bst, fwd, m, fres, link ? KIO_W_DSYNC : 0) : 0;
    bool all_full = true;
    for (unsigned j = 0; j < m; j++) {
        unsigned i = map[j];
        res[i] = fres[j];
        if (fres[j] < 0 || (size_t)fres[j] != kio__iov_len(reqs[i].iov, reqs[i].iovcnt))
            all_full = false;
    }
    for (unsigned i = 0; i < n; i++) {
        if (res[i] < 0) {
            rc = (int)res[i];
            break;
        }
    }
    if (rc == 0 && dsync && clean && all_full) {
        if (sync_fault) {
            rc = sync_fault;
            if (!s->crashed)
                sync_failed(s, handle_file(s, reqs[n - 1].h), reqs[n - 1].h);
        } else {
            rc = brc;
            if (brc == 0)
                mark_synced(s, handle_file(s, reqs[n - 1].h), reqs[n - 1].h);
            else
                sync_failed(s, handle_file(s, reqs[n - 1].h), reqs[n - 1].h);
        }
    }
out:
    free(fault);
    free(map);
    free(fwd);
    free(fres);
    free(pool);
    leave(s);
    return rc;
}

static int ff_datasync(void *st, int h)
{
    ff_state *s = ((ff_engine *)st)->s;
    ENTER(s);
    int rc = hit(s, KIO_OP_SYNC, NULL);
    if (rc == 0 && (rc = s->bm->datasync(s->bst, h)) == 0)
        mark_synced(s, handle_file(s, h), h);
    else if (rc < 0 && !s->crashed)
        sync_failed(s, handle_file(s, h), h);
    leave(s);
    return rc;
}

static int ff_truncate(void *st, int h, uint64_t len)
{
    ff_state *s = ((ff_engine *)st)->s;
    ENTER(s);
    int rc = hit(s, KIO_OP_TRUNCATE, NULL);
    ff_file *f = handle_file(s, h);
    if (rc == 0 && f && len < f->synced)
        rc = capture(s, f, h, len, f->synced - len, true);
    if (rc == 0)
        rc = s->bm->truncate(s->bst, h, len);
    leave(s);
    return rc;
}

static int ff_filesize(void *st, int h, uint64_t *len)
{
    ff_state *s = ((ff_engine *)st)->s;
    ENTER(s);
    int rc = s->bm->filesize(s->bst, h, len);
    leave(s);
    return rc;
}

static int ff_rename(void *st, const char *from, const char *to)
{
    ff_state *s = ((ff_engine *)st)->s;
    ENTER(s);
    int rc = hit(s, KIO_OP_RENAME, NULL);
    char *cf = NULL, *ct = NULL;
    int backup = -1;
    if (rc < 0)
        goto out;
    if (!(cf = canon(from)) || !(ct = canon(to))) {
        rc = -ENOMEM;
        goto out;
    }
    struct stat sb;
    bool replaced = lstat(ct, &sb) == 0;
    bool backup_dir = replaced && S_ISDIR(sb.st_mode);
    ff_file *victim = replaced ? file_find(s, ct) : NULL;
    if (replaced && S_ISREG(sb.st_mode))
        backup = open(ct, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if ((rc = s->bm->rename(s->bst, from, to)) < 0)
        goto out;
    if (strcmp(cf, ct) == 0)
        goto out; /* same name: nothing happened */
    if (victim)
        victim->gone = true;
    rename_paths(s, cf, ct);
    ff_dirent d = { .kind = DE_RENAME, .path = cf, .to = ct, .backup = backup,
                    .backup_dir = backup_dir, .mode = sb.st_mode & 07777,
                    .victim = victim, .pending = 0 };
    if (parent_id(cf, &d.pdev[0], &d.pino[0]))
        d.pending |= 1;
    if (parent_id(ct, &d.pdev[1], &d.pino[1]))
        d.pending |= 2;
    cf = ct = NULL;
    backup = -1;
    (void)de_push(s, d);
out:
    if (backup >= 0)
        close(backup);
    free(cf);
    free(ct);
    leave(s);
    return rc;
}

static int ff_unlink(void *st, const char *path)
{
    ff_state *s = ((ff_engine *)st)->s;
    ENTER(s);
    int rc = hit(s, KIO_OP_UNLINK, NULL);
    char *cp = NULL;
    int backup = -1;
    if (rc < 0)
        goto out;
    if (!(cp = canon(path))) {
        rc = -ENOMEM;
        goto out;
    }
    struct stat sb;
    bool is_reg = lstat(cp, &sb) == 0 && S_ISREG(sb.st_mode);
    if (is_reg)
        backup = open(cp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if ((rc = s->bm->unlink(s->bst, path)) < 0)
        goto out;
    ff_file *victim = file_find(s, cp);
    if (victim)
        victim->gone = true;
    ff_dirent d = { .kind = DE_UNLINK, .path = cp, .backup = backup,
                    .mode = is_reg ? sb.st_mode & 07777 : 0644, .victim = victim };
    if (parent_id(cp, &d.pdev[0], &d.pino[0]))
        d.pending = 1;
    cp = NULL;
    backup = -1;
    (void)de_push(s, d);
out:
    if (backup >= 0)
        close(backup);
    free(cp);
    leave(s);
    return rc;
}

static int ff_dirsync(void *st, const char *dir)
{
    ff_state *s = ((ff_engine *)st)->s;
    ENTER(s);
    int rc = hit(s, KIO_OP_DIRSYNC, NULL);
    if (rc == 0)
        rc = s->bm->dirsync(s->bst, dir);
    struct stat sb;
    if (rc == 0 && stat(dir, &sb) == 0) {
        size_t k = 0;
        for (size_t i = 0; i < s->nde; i++) {
            ff_dirent *d = &s->de[i];
            for (unsigned side = 0; side < 2; side++)
                if ((d->pending & (1u << side)) && d->pdev[side] == sb.st_dev &&
                    d->pino[side] == sb.st_ino)
                    d->pending &= ~(1u << side);
            if (d->pending)
                s->de[k++] = *d;
            else
                de_free(d); /* durable: the backup is not needed any more */
        }
        s->nde = k;
        sweep_files(s);
    }
    leave(s);
    return rc;
}

static int ff_mkdir(void *st, const char *path, unsigned mode)
{
    ff_state *s = ((ff_engine *)st)->s;
    ENTER(s);
    int rc = hit(s, KIO_OP_MKDIR, NULL);
    if (rc == 0 && (rc = s->bm->mkdir(s->bst, path, mode)) == 0) {
        ff_dirent d = { .kind = DE_MKDIR, .backup = -1, .pending = 1 };
        if ((d.path = canon(path)) && parent_id(d.path, &d.pdev[0], &d.pino[0]))
            (void)de_push(s, d);
        else
            free(d.path);
    }
    leave(s);
    return rc;
}

/* ---- the crash -------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)remove(p);
    return 0;
}

/* Give `path` the content of the inode behind backup (a fresh inode: the
 * old one cannot be linked back once its last name is gone). */
static int restore_copy(int backup, const char *path, mode_t mode, ff_file *victim)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode ? mode : 0644);
    if (fd < 0)
        return -errno;
    uint8_t buf[65536];
    uint64_t off = 0;
    int rc = 0;
    for (;;) {
        ssize_t r = pread(backup, buf, sizeof buf, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : 0;
            break;
        }
        if ((rc = pwrite_full(fd, buf, (size_t)r, off)) < 0)
            break;
        off += (uint64_t)r;
    }
    close(fd);
    if (victim) {
        free(victim->path);
        victim->path = strdup(path);
        victim->gone = victim->path == NULL;
        if (!victim->gone)
            file_set_id(victim, path);
    }
    return rc;
}

/* Undo one directory entry change (they go newest first, so the names
 * it refers to are as they were right after the change). */
static void de_undo(ff_state *s, ff_dirent *d)
{
    switch (d->kind) {
    case DE_CREATE:
        (void)unlink(d->path);
        drop_names(s, d->path);
        break;
    case DE_MKDIR:
        (void)nftw(d->path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        drop_names(s, d->path);
        break;
    case DE_RENAME:
        if (rename(d->to, d->path) == 0)
            rename_paths(s, d->to, d->path);
        if (d->backup >= 0)
            (void)restore_copy(d->backup, d->to, d->mode, d->victim);
        else if (d->backup_dir)
            (void)mkdir(d->to, d->mode ? d->mode : 0755);
        break;
    case DE_UNLINK:
        if (d->backup >= 0)
            (void)restore_copy(d->backup, d->path, d->mode, d->victim);
        break;
    }
}

static int fill_random(int fd, uint64_t from, uint64_t to, uint64_t *rng, bool zero)
{
    uint8_t buf[65536];
    if (zero)
        memset(buf, 0, sizeof buf);
    for (uint64_t off = from; off < to;) {
        size_t n = (size_t)KLOG_MIN((uint64_t)sizeof buf, to - off);
        for (size_t i = 0; !zero && i < n; i += 8) {
            uint64_t r = rng_next(rng);
            memcpy(buf + i, &r, KLOG_MIN((size_t)8, n - i));
        }
        int rc = pwrite_full(fd, buf, n, off);
        if (rc < 0)
            return rc;
        off += n;
    }
    return 0;
}

/* Put one file into its post-crash state: durable bytes as they were at
 * the last datasync, the bytes beyond as the mode says. */
/* Put back [u->off, u->off+u->len) from u (zeros when u->data is NULL);
 * torn: each 512-byte sector of it only with a coin's chance. */
static int put_back(int fd, const ff_undo *u, bool torn, uint64_t *rng)
{
    static const uint8_t zeros[FF_SECTOR];
    uint64_t a = u->off, b = u->off + u->len;
    while (a < b) {
        uint64_t e = KLOG_MIN(b, (a / FF_SECTOR + 1) * FF_SECTOR);
        if (!torn || u->whole || (rng_next(rng) & 1)) {
            const uint8_t *src = u->data ? u->data + (a - u->off) : NULL;
            int rc = src ? pwrite_full(fd, src, (size_t)(e - a), a) : 0;
            for (uint64_t z = a; !src && rc == 0 && z < e;) {
                size_t k = (size_t)KLOG_MIN((uint64_t)sizeof zeros, e - z);
                rc = pwrite_full(fd, zeros, k, z);
                z += k;
            }
            if (rc < 0)
                return rc;
        }
        a = e;
    }
    return 0;
}

/* HOLES: each whole or partial 4 KiB page of [from, to) kept or lost
 * (zeroed), drawn per page; returns the end of the last page kept (from
 * if none), the file's new length. */
static int holes(int fd, uint64_t from, uint64_t to, uint64_t *rng, uint64_t *end)
{
    *end = from;
    for (uint64_t a = from; a < to;) {
        uint64_t e = KLOG_MIN(to, (a / FF_PAGE + 1) * FF_PAGE);
        if (rng_next(rng) & 1) {
            *end = e;
        } else {
            int rc = fill_random(fd, a, e, rng, true);
            if (rc < 0)
                return rc;
        }
        a = e;
    }
    return 0;
}

static int crash_file(ff_file *f, enum kio_crash_mode mode, unsigned flags, uint64_t *rng)
{
    int fd = open(f->path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    struct stat sb;
    int rc = fstat(fd, &sb) < 0 ? -errno : 0;
    uint64_t cur = rc == 0 ? (uint64_t)sb.st_size : 0;
    const bool torn = flags & KIO_CRASH_TORN;
    for (size_t i = f->nundo; rc == 0 && i-- > 0;)
        rc = put_back(fd, &f->undo[i], torn, rng);
    /* What a failed sync dropped is older than any undo copy, and gone
     * whole: it never went anywhere to be torn. */
    for (size_t i = f->nlost; rc == 0 && i-- > 0;)
        rc = put_back(fd, &f->lost[i], false, rng);
    uint64_t extra = cur > f->synced ? cur - f->synced : 0;
    if (mode == KIO_CRASH_RANDOM) {
        unsigned m = (unsigned)(rng_next(rng) % 5);
        mode = m == 4 ? KIO_CRASH_HOLES : (enum kio_crash_mode)(KIO_CRASH_DROP + m);
    }
    uint64_t end = cur;
    if (rc == 0) {
        switch (mode) {
        case KIO_CRASH_DROP:
            end = f->synced;
            break;
        case KIO_CRASH_PREFIX:
            end = f->synced + (extra ? rng_next(rng) % (extra + 1) : 0);
            break;
        case KIO_CRASH_GARBAGE:
        case KIO_CRASH_ZERO:
            rc = fill_random(fd, f->synced, cur, rng, mode == KIO_CRASH_ZERO);
            break;
        case KIO_CRASH_HOLES:
            rc = holes(fd, f->synced, cur, rng, &end);
            break;
        default:
            break;
        }
        /* Never shorter than what was durable (a truncation of durable
         * bytes was undone above; this covers the length). */
        if (end < f->synced)
            end = f->synced;
        if (rc == 0 && ftruncate(fd, (off_t)end) < 0)
            rc = -errno;
    }
    close(fd);
    return rc;
}

static bool crash_ok(const kio_crash *c)
{
    return c && c->mode >= KIO_CRASH_DROP && c->mode <= KIO_CRASH_HOLES &&
           !(c->flags & ~(unsigned)(KIO_CRASH_LOSE_DIRENTS | KIO_CRASH_TORN | KIO_CRASH_INFLIGHT));
}

/* Put the files into their post-crash state, as s->crash says.  Once per
 * power cut; lock held. */
static int rewrite(ff_state *s)
{
    const kio_crash *c = &s->crash;
    s->rewritten = true;
    uint64_t rng = c->seed;
    if (c->flags & KIO_CRASH_LOSE_DIRENTS)
        for (size_t i = s->nde; i-- > 0;)
            de_undo(s, &s->de[i]);
    for (size_t i = 0; i < s->nde; i++)
        de_free(&s->de[i]);
    s->nde = 0;
    int rc = 0;
    for (ff_file *f = s->files; f; f = f->next) {
        if (f->gone)
            continue;
        int r = crash_file(f, c->mode, c->flags, &rng);
        if (r < 0 && rc == 0)
            rc = r;
        undo_clear(f);
        lost_clear(f);
    }
    return rc;
}

/* The power goes now, between two ops (lock held).  An engine's own disk is
 * rewritten at once; a shared one at reboot. */
static int power_cut(ff_state *s, const kio_crash *c)
{
    if (s->crashed)
        return KLOG_TESTING_ECRASHED;
    if (!crash_ok(c))
        return -EINVAL;
    s->crashed = true;
    s->crash_armed = false;
    s->crash = *c;
    return s->shared ? 0 : rewrite(s);
}

/* ---- rules, counters (lock held) ---------------------------------------- */

static int arm_locked(ff_state *s, const kio_fault_rule *r)
{
    const unsigned fl = KIO_FAULT_SHORT | KIO_FAULT_STICKY;
    if (!r || !r->ops || (r->ops & ~(unsigned)KIO_OP_ALL) || r->nth == 0 || (r->flags & ~fl) ||
        r->err > 0)
        return -EINVAL;
    if (s->nrules == FF_MAX_RULES)
        return -ENOSPC;
    s->rules[s->nrules++] = (ff_rule){ *r, 0 };
    return 0;
}

static int crash_at_locked(ff_state *s, const kio_crash_rule *r)
{
    if (!r || !r->ops || (r->ops & ~(unsigned)KIO_OP_ALL) || r->nth == 0 || !crash_ok(&r->crash))
        return -EINVAL;
    if (s->crashed)
        return KLOG_TESTING_ECRASHED;
    s->crash_armed = true;
    s->crash_at = *r;
    s->crash_seen = 0;
    return 0;
}

static uint64_t count_locked(const ff_state *s, unsigned ops)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < FF_NCLASS; i++)
        if (ops & (1u << i))
            n += s->counts[i];
    return n;
}

/* ---- control ------------------------------------------------------------ */

static int ff_control(void *st, int op, void *arg)
{
    ff_state *s = ((ff_engine *)st)->s;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    switch (op) {
    case KIO_CTL_FAULT_ARM:
        rc = arm_locked(s, arg);
        break;
    case KIO_CTL_FAULT_CLEAR:
        s->nrules = 0;
        s->crash_armed = false;
        break;
    case KIO_CTL_FAULT_COUNT: {
        kio_fault_count *c = arg;
        if (c)
            c->count = count_locked(s, c->ops);
        else
            rc = -EINVAL;
        break;
    }
    case KIO_CTL_FAULT_CRASH:
        rc = power_cut(s, arg);
        break;
    case KIO_CTL_FAULT_CRASH_AT:
        rc = crash_at_locked(s, arg);
        break;
    case KIO_CTL_WRITEBACK:
        rc = -ENOTSUP; /* handles are the engine's own; and it models only syncs */
        break;
    case KIO_CTL_BACKEND_NAME:
        /* name what does the I/O underneath ("fault" is kio_name's) */
        rc = s->bm->control ? s->bm->control(s->bst, op, arg) : -ENOTSUP;
        if (rc == -ENOTSUP && arg) {
            *(const char **)arg = s->bm->name;
            rc = 0;
        }
        break;
    default:
        if (s->crashed)
            rc = KLOG_TESTING_ECRASHED;
        else
            rc = s->bm->control ? s->bm->control(s->bst, op, arg) : -ENOTSUP;
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- the disk, and engines on it ---------------------------------------- */

static ff_state *disk_alloc(const struct kio_methods *base, const void *barg, int *rc)
{
    base = base ? base : kio_posix_methods();
    if ((*rc = kio__check_methods(base)) < 0)
        return NULL;
    ff_state *s = calloc(1, sizeof *s);
    if (!s || pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        *rc = -ENOMEM;
        return NULL;
    }
    s->bm = base;
    s->barg = barg;
    s->refs = 1;
    return s;
}

/* Forget the past: what is not durable, the rules, an armed crash (lock
 * held, no engine attached). */
static void forget(ff_state *s)
{
    for (size_t i = 0; i < s->nde; i++)
        de_free(&s->de[i]);
    s->nde = 0;
    for (ff_file *f = s->files, *n; f; f = n) {
        n = f->next;
        file_free(f);
    }
    s->files = s->files_tail = NULL;
    s->nrules = 0;
    s->crash_armed = false;
}

static void disk_unref(ff_state *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (!last)
        return;
    forget(s);
    free(s->de);
    free(s->h);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/*
 * Attach the engine to a disk: its own (made here, over fi->base), or
 * fi->disk (-EBUSY if another engine is on it, KLOG_TESTING_ECRASHED if its
 * power is off).  Leaves st so that fini is safe whatever happened.
 */
static int ff_init(void *st, const void *arg)
{
    ff_engine *e = st;
    const kio_fault_init *fi = arg;
    ff_state *s = fi ? fi->disk : NULL;
    int rc = 0;
    if (!s && !(s = disk_alloc(fi ? fi->base : NULL, fi ? fi->base_arg : NULL, &rc)))
        return rc;
    pthread_mutex_lock(&s->mu);
    if (s->shared) {
        rc = s->attached ? -EBUSY : s->crashed ? KLOG_TESTING_ECRASHED : 0;
        if (rc < 0) {
            pthread_mutex_unlock(&s->mu);
            return rc; /* e->s stays NULL: fini does nothing */
        }
        s->refs++;
    }
    e->s = s;
    s->attached = true;
    if (!(s->bst = calloc(1, s->bm->state_size ? s->bm->state_size : 1))) {
        rc = -ENOMEM;
    } else {
        s->binited = true; /* the base's fini is due from here on, as in the core */
        rc = s->bm->init ? s->bm->init(s->bst, s->barg) : 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Detach (safe after a failed init).  Handles still open are closed (the
 * caller forgot them, or a crash test dropped the engine).  The disk stays
 * if someone else holds it. */
static void ff_fini(void *st)
{
    ff_engine *e = st;
    ff_state *s = e->s;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->binited) {
        for (int h = 0; h < s->hcap; h++)
            if (s->h[h].open)
                s->bm->close(s->bst, h);
        if (s->bm->fini)
            s->bm->fini(s->bst);
    }
    s->binited = false;
    free(s->bst);
    s->bst = NULL;
    if (s->h)
        memset(s->h, 0, (size_t)s->hcap * sizeof *s->h);
    sweep_files(s);
    s->attached = false;
    pthread_mutex_unlock(&s->mu);
    e->s = NULL;
    disk_unref(s);
}

static const struct kio_methods fault_methods = {
    .version = KIO_METHODS_VERSION,
    .size = sizeof(struct kio_methods),
    .name = "fault",
    .state_size = sizeof(ff_engine),
    .init = ff_init,
    .fini = ff_fini,
    .open = ff_open,
    .close = ff_close,
    .readv = ff_readv,
    .writev_many = ff_writev_many,
    .datasync = ff_datasync,
    .truncate = ff_truncate,
    .filesize = ff_filesize,
    .rename = ff_rename,
    .unlink = ff_unlink,
    .dirsync = ff_dirsync,
    .mkdir = ff_mkdir,
    .control = ff_control,
};

const struct kio_methods *kio_fault_methods(void)
{
    return &fault_methods;
}

int kio_fault_disk_new(kio_fault_disk **out, const struct kio_methods *base, const void *base_arg)
{
    if (!out)
        return -EINVAL;
    int rc;
    ff_state *s = *out = disk_alloc(base, base_arg, &rc);
    if (!s)
        return rc;
    s->shared = true;
    return 0;
}

void kio_fault_disk_unref(kio_fault_disk *d)
{
    disk_unref(d);
}

/* expr, evaluated under the disk's lock. */
#define LOCKED(d, expr)                                                        \
    ({                                                                         \
        pthread_mutex_lock(&(d)->mu);                                          \
        __typeof__(expr) r_ = (expr);                                          \
        pthread_mutex_unlock(&(d)->mu);                                        \
        r_;                                                                    \
    })

int kio_fault_disk_arm(kio_fault_disk *d, const kio_fault_rule *r)
{
    return d ? LOCKED(d, arm_locked(d, r)) : -EINVAL;
}

int kio_fault_disk_clear(kio_fault_disk *d)
{
    if (!d)
        return -EINVAL;
    pthread_mutex_lock(&d->mu);
    d->nrules = 0;
    d->crash_armed = false;
    pthread_mutex_unlock(&d->mu);
    return 0;
}

int kio_fault_disk_crash(kio_fault_disk *d, const kio_crash *c)
{
    return d ? LOCKED(d, power_cut(d, c)) : -EINVAL;
}

int kio_fault_disk_crash_at(kio_fault_disk *d, const kio_crash_rule *r)
{
    return d ? LOCKED(d, crash_at_locked(d, r)) : -EINVAL;
}

bool kio_fault_disk_crashed(kio_fault_disk *d)
{
    return d && LOCKED(d, d->crashed);
}

uint64_t kio_fault_disk_ops(kio_fault_disk *d, unsigned ops)
{
    return d ? LOCKED(d, count_locked(d, ops)) : 0;
}

int kio_fault_disk_reboot(kio_fault_disk *d)
{
    if (!d)
        return -EINVAL;
    pthread_mutex_lock(&d->mu);
    int rc = 0;
    if (d->attached) {
        rc = -EBUSY;
    } else {
        if (d->crashed && !d->rewritten)
            rc = rewrite(d);
        forget(d);
        d->crashed = d->rewritten = false;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}
