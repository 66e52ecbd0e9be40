/*
 * lib/testing/io_fault.h - the fault-injecting I/O backend (contract).
 *
 * Not part of libklog: built into libklog-testing (behind klog/testing.h)
 * and linked by the io and storage unit tests.  It wraps a base backend
 * (posix unless told otherwise) and injects failures (EIO, ENOSPC, short
 * writes) and simulated power cuts; see io_fault.c for the model of what a
 * power cut keeps.  Errors: those of the base, the injected ones, and
 * KLOG_TESTING_ECRASHED after a power cut.
 */
#ifndef KLOG_TESTING_IO_FAULT_H
#define KLOG_TESTING_IO_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include <klog/testing.h> /* KLOG_TESTING_ECRASHED */

#include "io/io.h"

/* Operation classes, for rules and counters. */
enum {
    KIO_OP_OPEN = 1 << 0,
    KIO_OP_WRITE = 1 << 1,   /* each request of writev_many counts once */
    KIO_OP_READ = 1 << 2,
    KIO_OP_SYNC = 1 << 3,    /* datasync and the linked sync of KIO_W_DSYNC */
    KIO_OP_TRUNCATE = 1 << 4,
    KIO_OP_RENAME = 1 << 5,
    KIO_OP_UNLINK = 1 << 6,
    KIO_OP_DIRSYNC = 1 << 7,
    KIO_OP_MKDIR = 1 << 8,
    KIO_OP_ALL = 0x1ff,
};

typedef struct kio_fault_disk kio_fault_disk;

/* The init argument of kio_fault_methods() (NULL = all defaults).  With disk
 * NULL the engine makes a disk of its own over base (NULL = posix) and a
 * crash rewrites the files at once; with a disk, the engine attaches to it
 * (base and base_arg ignored: the disk's) and a crash waits for
 * kio_fault_disk_reboot. */
typedef struct kio_fault_init {
    const struct kio_methods *base; /* backend underneath; NULL = posix */
    const void *base_arg;
    kio_fault_disk *disk;
} kio_fault_init;

/* Fail the nth (1-based) operation whose class is in ops, counting from when
 * the rule is armed.  err is a negative errno (-EIO, -ENOSPC).  With
 * KIO_FAULT_SHORT on a write, half the bytes are written and the short count
 * returned instead of an error (err ignored).  KIO_FAULT_STICKY keeps failing
 * every matching op after the nth until cleared. */
enum { KIO_FAULT_SHORT = 1 << 0, KIO_FAULT_STICKY = 1 << 1 };
typedef struct kio_fault_rule {
    unsigned ops;
    uint64_t nth;
    int err;
    unsigned flags;
} kio_fault_rule;

/* Simulated crash: what happens to data and directory entries not yet made
 * durable.  After the crash every further op on the engine fails with
 * KLOG_TESTING_ECRASHED (except close, which succeeds and does nothing to
 * disk).  An engine with a disk of its own rewrites the files into their
 * post-crash state at once, for a fresh engine to open; one on a shared
 * disk leaves them until kio_fault_disk_reboot (so that nothing a live
 * instance has mapped shrinks under it).  Data is durable once a datasync
 * of its file returned 0; a directory entry (create, rename, unlink) once a
 * dirsync of its directory did. */
enum kio_crash_mode {
    KIO_CRASH_DROP = 1,    /* unsynced writes vanish (files cut back / restored) */
    KIO_CRASH_PREFIX = 2,  /* per file, a random prefix of the unsynced bytes survives */
    KIO_CRASH_GARBAGE = 3, /* unsynced bytes replaced by random bytes */
    KIO_CRASH_ZERO = 4,    /* unsynced bytes replaced by zeros */
    KIO_CRASH_RANDOM = 5,  /* each file picks one of the others */
    KIO_CRASH_HOLES = 6,   /* each 4 KiB page of them kept or lost (zeros), out of order */
};
enum {
    KIO_CRASH_LOSE_DIRENTS = 1 << 0, /* also undo un-dirsynced creates/renames/unlinks */
    KIO_CRASH_TORN = 1 << 1,         /* unsynced overwrites of durable bytes torn per sector */
    KIO_CRASH_INFLIGHT = 1 << 2,     /* a batch of writes cut mid-way: any subset issued */
};
typedef struct kio_crash {
    enum kio_crash_mode mode;
    unsigned flags;
    uint64_t seed;
} kio_crash;

/* Power cut at the nth (1-based, counted from when armed) op whose class
 * is in ops: the op does not happen and fails with KLOG_TESTING_ECRASHED;
 * the crash is then as KIO_CTL_FAULT_CRASH with `crash`. */
typedef struct kio_crash_rule {
    unsigned ops;
    uint64_t nth;
    kio_crash crash;
} kio_crash_rule;

typedef struct kio_fault_count {
    unsigned ops;     /* in: classes to count */
    uint64_t count;   /* out: matching ops since the disk was made */
} kio_fault_count;

/* control() opcodes of the fault backend (io.h reserves 100..199). */
enum {
    KIO_CTL_FAULT_ARM = 100,      /* arg: const kio_fault_rule * */
    KIO_CTL_FAULT_CLEAR = 101,    /* failure rules and an armed crash */
    KIO_CTL_FAULT_CRASH = 102,    /* arg: const kio_crash * */
    KIO_CTL_FAULT_COUNT = 103,    /* arg: kio_fault_count * */
    KIO_CTL_FAULT_CRASH_AT = 104, /* arg: const kio_crash_rule * */
};

/* Typed helpers over kio_control for the fault backend (inline: the core's
 * kio_control is not in libklog-testing, which drives disks, not engines). */
static inline int kio_fault_arm(kio *io, unsigned ops, uint64_t nth, int err, unsigned flags)
{
    kio_fault_rule r = { ops, nth, err, flags };
    return kio_control(io, KIO_CTL_FAULT_ARM, &r);
}

static inline int kio_fault_clear(kio *io)
{
    return kio_control(io, KIO_CTL_FAULT_CLEAR, NULL);
}

static inline int kio_fault_crash(kio *io, enum kio_crash_mode mode, unsigned flags, uint64_t seed)
{
    kio_crash c = { mode, flags, seed };
    return kio_control(io, KIO_CTL_FAULT_CRASH, &c);
}

static inline int kio_fault_crash_at(kio *io, unsigned ops, uint64_t nth, enum kio_crash_mode mode,
                                     unsigned flags, uint64_t seed)
{
    kio_crash_rule r = { ops, nth, { mode, flags, seed } };
    return kio_control(io, KIO_CTL_FAULT_CRASH_AT, &r);
}

static inline uint64_t kio_fault_ops(kio *io, unsigned ops)
{
    kio_fault_count c = { ops, 0 };
    return kio_control(io, KIO_CTL_FAULT_COUNT, &c) < 0 ? 0 : c.count;
}

/* ---- a disk that outlives its engines ---------------------------------- */

/*
 * A simulated disk: the fault backend's whole model (rules, counters, what
 * is not durable yet, the power state), shared by the engines that attach
 * to it one after another (kio_fault_init.disk): klog_open and klog_close
 * of instance after instance on one machine.  One engine at a time (a
 * second attach fails with -EBUSY; an attach while the power is off fails
 * with KLOG_TESTING_ECRASHED).  Reference counted: the creator holds one,
 * an attached engine another.  All functions are thread-safe (the disk's
 * mutex) and may run while an engine is attached.
 */
/* A disk over base (NULL = posix; base_arg its init argument, which must
 * stay valid while the disk lives). */
int kio_fault_disk_new(kio_fault_disk **out, const struct kio_methods *base, const void *base_arg);
void kio_fault_disk_unref(kio_fault_disk *d); /* NULL-safe */
int kio_fault_disk_arm(kio_fault_disk *d, const kio_fault_rule *r);
int kio_fault_disk_clear(kio_fault_disk *d);
int kio_fault_disk_crash(kio_fault_disk *d, const kio_crash *c);
int kio_fault_disk_crash_at(kio_fault_disk *d, const kio_crash_rule *r);
bool kio_fault_disk_crashed(kio_fault_disk *d);
uint64_t kio_fault_disk_ops(kio_fault_disk *d, unsigned ops);
/* After a crash: rewrite the files into their post-crash state.  Then (and
 * after a clean shutdown) forget the past: nothing tracked, no rule, power
 * on.  -EBUSY while an engine is attached. */
int kio_fault_disk_reboot(kio_fault_disk *d);

const struct kio_methods *kio_fault_methods(void);

#endif /* KLOG_TESTING_IO_FAULT_H */
