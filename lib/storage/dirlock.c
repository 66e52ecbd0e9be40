/* lib/storage/dirlock.c - one writer per directory (flock on dir/.lock). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/common.h"
#include "storage/storage.h"

int ks_dirlock_acquire(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/.lock", dir) >= (int)sizeof path)
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    /* flock locks belong to the open file description, so a second open of
     * the same directory in this very process is refused as well: two
     * instances on one directory would corrupt each other just the same. */
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? KLOG_ELOCKED : -e;
    }
    return fd;
}

void ks_dirlock_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the last descriptor drops the flock */
}
