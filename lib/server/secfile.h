/*
 * lib/server/secfile.h - what the users file (scram.c) and the ACL file
 * (acl.c) share: error messages into errbuf, the edit lock, and the
 * atomic rewrite (a temporary file, fsync, rename, mode 0600).  libc only,
 * like them, so the klog tool can carry all three without the core.
 */
#ifndef KLOG_SERVER_SECFILE_H
#define KLOG_SERVER_SECFILE_H

#include <stddef.h>
#include <stdio.h>

/* Format into errbuf (may be NULL) and return rc. */
int ksec_errf(char *errbuf, size_t errsize, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* An exclusive lock on PATH.lock for a read-change-write of path: a
 * descriptor to close, or -errno. */
int ksec_file_lock(const char *path);

/* Start rewriting path: *f is a new PATH.tmp.PID (its name in tmp, of
 * tmpsz bytes), mode 0600.  0 or -errno (errbuf says which file). */
int ksec_file_create(const char *path, char *tmp, size_t tmpsz, FILE **f, char *errbuf, size_t errsize);

/* Finish it: flush, fsync, close, rename over path; on any failure the
 * temporary file goes.  0 or -errno (errbuf says which file). */
int ksec_file_commit(FILE *f, const char *tmp, const char *path, char *errbuf, size_t errsize);

#endif
