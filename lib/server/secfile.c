/* lib/server/secfile.c - the users and ACL files' shared pieces (secfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "server/secfile.h"

int ksec_errf(char *errbuf, size_t errsize, int rc, const char *fmt, ...)
{
    if (errbuf && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errsize, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int ksec_file_lock(const char *path)
{
    char lk[4200];
    if (snprintf(lk, sizeof lk, "%s.lock", path) >= (int)sizeof lk)
        return -ENAMETOOLONG;
    int fd = open(lk, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int ksec_file_create(const char *path, char *tmp, size_t tmpsz, FILE **f, char *errbuf, size_t errsize)
{
    if (snprintf(tmp, tmpsz, "%s.tmp.%d", path, (int)getpid()) >= (int)tmpsz)
        return ksec_errf(errbuf, errsize, -ENAMETOOLONG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        return ksec_errf(errbuf, errsize, rc, "%s: %s", tmp, strerror(-rc));
    }
    if (!(*f = fdopen(fd, "w"))) {
        close(fd);
        unlink(tmp);
        return -ENOMEM;
    }
    return 0;
}

int ksec_file_commit(FILE *f, const char *tmp, const char *path, char *errbuf, size_t errsize)
{
    int rc = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return ksec_errf(errbuf, errsize, rc, "%s: %s", path, strerror(-rc));
    }
    return 0;
}
