/*
 * klog/testing.h - fault injection for tests: an instance whose disk fails,
 * fills up or loses power on cue.  FOR TESTS ONLY.
 *
 * The klog_testing_* functions are not in libklog.  They live in a library
 * of their own, libklog-testing (pkg-config klog-testing; in meson,
 * dependency('klog-testing')), which a test links beside libklog, as SQLite
 * keeps its test VFS apart from the library.  Production code has no use
 * for it and should not link it.  One function declared here is in libklog:
 * klog_conf_set_io_methods, the hook through which the testing library hands
 * klog_open its I/O backend; programs do not call it themselves.
 *
 * A klog_testing_fault is a simulated disk.  Put it on a conf with
 * klog_testing_conf_set_fault and every file operation of an instance opened
 * with that conf goes through it (klog_io_backend then says "fault"); the
 * files are the real ones in the data directory, read and written with
 * plain system calls.  On the way through it can
 *
 *   - fail an operation: the nth of some classes (writes, syncs, ...) fails
 *     with the errno you choose (-ENOSPC, -EIO), once or from then on, or a
 *     write is cut short (klog_testing_fault_fail);
 *   - cut the power: at the nth operation of some classes, or now
 *     (klog_testing_fault_crash_at, klog_testing_fault_crash).  The
 *     operation the power cut falls on does not happen; it and every later
 *     file operation of the instance fail with KLOG_TESTING_ECRASHED, so the
 *     instance sees a disk that went away.  Close it (klog_close: its errors
 *     are expected), then
 *   - reboot (klog_testing_fault_reboot): the files are rewritten into one
 *     state the disk could be in after that power cut, and klog_open (with
 *     this fault, or without one) recovers from it as after a real one.
 *
 * What survives a power cut.  Data is durable once an fdatasync of its file
 * returned success (acks=all and synchronous commits wait for one); a
 * directory entry (a file created, renamed or removed) once an fsync of its
 * directory did.  What is not durable is what the crash mode plays with:
 *   KLOG_TESTING_CRASH_DROP     unsynced bytes vanish (files cut back to
 *                               their synced length; overwritten synced
 *                               bytes put back)
 *   KLOG_TESTING_CRASH_PREFIX   per file, a random prefix of them survives
 *   KLOG_TESTING_CRASH_GARBAGE  they are replaced by random bytes
 *   KLOG_TESTING_CRASH_ZERO     they are replaced by zeros
 *   KLOG_TESTING_CRASH_HOLES    each 4 KiB page of them survives or not, in
 *                               any order (a lost page before a kept one
 *                               reads as zeros: a hole, then data)
 *   KLOG_TESTING_CRASH_RANDOM   each file draws one of the others
 * Overwritten durable bytes come back whole, unless the flag
 * KLOG_TESTING_CRASH_TORN tears the overwrite: each 512-byte sector keeps
 * the new bytes or gets the old ones back.  KLOG_TESTING_CRASH_INFLIGHT
 * lets a power cut inside a batch of writes (io_uring submits them
 * together) keep any subset of the batch, not only those before the cut.
 * KLOG_TESTING_CRASH_LOSE_DIRENTS also undoes directory entry changes not
 * yet made durable.  An fdatasync that fails (klog_testing_fault_fail)
 * behaves as Linux's: the dirty pages are dropped, and what was not
 * durable before it is lost at a power cut even after a later fdatasync
 * succeeds, unless written again first.  The draws come from the seed you pass: the
 * same run and seed give the same disk.  The data directory itself and its
 * lock file are made outside the simulated disk and always survive.
 *
 * Lifetime.  One instance at a time may be open on a fault (a second
 * klog_open fails with -EBUSY); the fault outlives instance after instance,
 * and keeps what it knows about unsynced data across klog_close and
 * klog_open, as a disk does.  The instance holds a reference, so
 * klog_testing_fault_free may come before klog_close.  A conf does not:
 * only open an instance from a conf whose fault is still alive.
 *
 * Threading: every function here is thread-safe and may be called while an
 * instance runs on the fault (to arm a power cut from another thread, say).
 * The fault serialises the instance's file operations through one mutex:
 * fine for tests, not for benchmarks.  No function here calls back into
 * klog.
 */
#ifndef KLOG_TESTING_H
#define KLOG_TESTING_H

#include <stdint.h>

#include <klog/conf.h>
#include <klog/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klog_testing_fault klog_testing_fault;

/* What every file operation of an instance returns after a simulated power
 * cut, until klog_close.  Outside klog's public band (KLOG_ERR_FIRST ..
 * KLOG_ERR_LAST): only an instance on a testing backend returns it.
 * klog_strerror and klog_err_name know it. */
#define KLOG_TESTING_ECRASHED (-31000)

/* Operation classes, for klog_testing_fault_fail, _crash_at and _ops. */
enum {
    KLOG_TESTING_OP_OPEN = 1 << 0,
    KLOG_TESTING_OP_WRITE = 1 << 1,    /* each write of a vectored batch counts once */
    KLOG_TESTING_OP_READ = 1 << 2,     /* reads through the engine (not mmap'd reads) */
    KLOG_TESTING_OP_SYNC = 1 << 3,     /* fdatasync of a file */
    KLOG_TESTING_OP_TRUNCATE = 1 << 4,
    KLOG_TESTING_OP_RENAME = 1 << 5,
    KLOG_TESTING_OP_UNLINK = 1 << 6,
    KLOG_TESTING_OP_DIRSYNC = 1 << 7,  /* fsync of a directory */
    KLOG_TESTING_OP_MKDIR = 1 << 8,
    KLOG_TESTING_OP_ALL = 0x1ff,
};

/* Flags of klog_testing_fault_fail. */
enum {
    KLOG_TESTING_FAIL_SHORT = 1 << 0,  /* a write (read) moves half its bytes instead */
    KLOG_TESTING_FAIL_STICKY = 1 << 1, /* fail every matching op from the nth on */
};

/* What a power cut does to what was not durable (see above). */
enum klog_testing_crash_mode {
    KLOG_TESTING_CRASH_DROP = 1,
    KLOG_TESTING_CRASH_PREFIX = 2,
    KLOG_TESTING_CRASH_GARBAGE = 3,
    KLOG_TESTING_CRASH_ZERO = 4,
    KLOG_TESTING_CRASH_RANDOM = 5,
    KLOG_TESTING_CRASH_HOLES = 6,
};
/* Flags of klog_testing_fault_crash and _crash_at. */
enum {
    KLOG_TESTING_CRASH_LOSE_DIRENTS = 1 << 0,
    KLOG_TESTING_CRASH_TORN = 1 << 1,
    KLOG_TESTING_CRASH_INFLIGHT = 1 << 2,
};

/*
 * A new simulated disk: no rule armed, power on, nothing known yet (a file
 * the fault first sees counts as durable at its size then).  Free with
 * klog_testing_fault_free.  Returns 0, -EINVAL, -ENOMEM.
 */
KLOG_API int klog_testing_fault_new(klog_testing_fault **out);

/* Drop the caller's reference; the fault goes when the instance open on it
 * (if any) closes.  NULL-safe. */
KLOG_API void klog_testing_fault_free(klog_testing_fault *f);

/*
 * Make klog_open with conf run the instance on f (f NULL: back to the
 * backends io.backend picks).  The conf keeps a pointer, no reference.
 * Returns 0, -EINVAL.
 */
KLOG_API int klog_testing_conf_set_fault(klog_conf *conf, klog_testing_fault *f);

/*
 * Fail the nth (1-based, counted from this call) operation whose class is
 * in ops with err, a negative errno (-ENOSPC, -EIO; 0 means -EIO).  The
 * failed operation does not reach the disk.  KLOG_TESTING_FAIL_STICKY fails
 * every matching operation from the nth on, until klog_testing_fault_clear;
 * KLOG_TESTING_FAIL_SHORT makes the nth write move half its bytes (a read,
 * half rounded up) and report the short count instead (err ignored).  Up to
 * 16 rules at once; each counts on its own.
 * Returns 0, -EINVAL (f NULL, ops empty or unknown, nth 0, err > 0, unknown
 * flags), -ENOSPC (16 rules armed).
 */
KLOG_API int klog_testing_fault_fail(klog_testing_fault *f, unsigned ops, uint64_t nth, int err,
                                     unsigned flags);

/* Disarm every failure rule and an armed power cut.  Returns 0, -EINVAL. */
KLOG_API int klog_testing_fault_clear(klog_testing_fault *f);

/*
 * Cut the power at the nth (1-based, counted from this call) operation
 * whose class is in ops: that operation does not happen and returns
 * KLOG_TESTING_ECRASHED, as does every later one.  mode, flags and seed
 * say, at reboot, what survives.  Replaces an earlier armed power cut.
 * Returns 0, -EINVAL (bad arguments), KLOG_TESTING_ECRASHED (the power is
 * already off).
 */
KLOG_API int klog_testing_fault_crash_at(klog_testing_fault *f, unsigned ops, uint64_t nth,
                                         enum klog_testing_crash_mode mode, unsigned flags, uint64_t seed);

/* Cut the power now, between two operations.  Returns 0, -EINVAL,
 * KLOG_TESTING_ECRASHED (already off). */
KLOG_API int klog_testing_fault_crash(klog_testing_fault *f, enum klog_testing_crash_mode mode,
                                      unsigned flags, uint64_t seed);

/* 1 while the power is off (from the power cut to the reboot), 0 while it
 * is on, -EINVAL for NULL. */
KLOG_API int klog_testing_fault_crashed(klog_testing_fault *f);

/*
 * Reboot the disk: after a power cut, rewrite the files into their
 * post-crash state; with the power on, a clean shutdown (everything
 * written counts as durable).  Either way the fault then forgets what it
 * knew about unsynced data, no rule or power cut is armed and the power is
 * on (its operation count goes on).  The instance must be closed first.
 * Returns 0, -EINVAL, -EBUSY (an instance is open on f), or a negative
 * errno from rewriting a file (the disk is then as far as it got).
 */
KLOG_API int klog_testing_fault_reboot(klog_testing_fault *f);

/* Operations whose class is in ops since the fault was made, failed ones
 * and the one a power cut fell on included (0 for NULL).  Count a clean
 * run, then cut the power at each of its operations in turn. */
KLOG_API uint64_t klog_testing_fault_ops(klog_testing_fault *f, unsigned ops);

/*
 * In libklog, not libklog-testing: the hook klog_testing_conf_set_fault
 * uses.  methods is an I/O backend vtable whose layout is internal to klog
 * (it starts with a version word carrying a magic number, and its size);
 * klog_open checks both and fails with -EINVAL for a vtable it cannot use,
 * so a libklog-testing from another release is refused, not misread.
 * init_arg is handed to the backend's init as it is.  methods NULL: the
 * shipped backends again.  Returns 0, -EINVAL (conf NULL).
 */
KLOG_API int klog_conf_set_io_methods(klog_conf *conf, const void *methods, const void *init_arg);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_TESTING_H */
