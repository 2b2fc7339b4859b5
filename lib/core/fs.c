#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

dlv_status dlv_read_file(const char *path, size_t max_bytes, char **out, size_t *len)
{
    *out = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dlv_error(DLV_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dlv_error(DLV_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        close(fd);
        return dlv_error(DLV_E_FORMAT, "%s: file is %lld bytes, more than the %zu allowed",
                         path, (long long)st.st_size, max_bytes);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) { close(fd); return dlv_error_nomem(path, size + 1); }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return dlv_error(DLV_E_IO, "%s: read failed: %s", path,
                             r == 0 ? "file shrank while reading" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    *out = buf;
    if (len) *len = size;
    return DLV_OK;
}

char *dlv_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + (size_t)slash + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + (size_t)slash, name, b + 1);
    return p;
}

int dlv_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int dlv_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

struct dlv_atomic_file {
    int fd;
    char *path;
    char *tmp_path;
};

dlv_status dlv_atomic_open(const char *path, dlv_atomic_file **out)
{
    *out = NULL;
    dlv_atomic_file *f = calloc(1, sizeof *f);
    size_t n = strlen(path);
    if (f) {
        f->path = strdup(path);
        f->tmp_path = malloc(n + sizeof ".tmp.XXXXXX");
    }
    if (!f || !f->path || !f->tmp_path) {
        if (f) { free(f->path); free(f->tmp_path); }
        free(f);
        return dlv_error_nomem("atomic file", n);
    }
    memcpy(f->tmp_path, path, n);
    memcpy(f->tmp_path + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    f->fd = mkostemp(f->tmp_path, O_CLOEXEC);
    if (f->fd < 0) {
        dlv_status st = dlv_error(DLV_E_IO, "%s: cannot create temporary file: %s", path,
                                  strerror(errno));
        free(f->path);
        free(f->tmp_path);
        free(f);
        return st;
    }
    /* mkstemp creates 0600; the finished file should be readable like any
     * other the user writes. */
    (void)fchmod(f->fd, 0644);
    *out = f;
    return DLV_OK;
}

dlv_status dlv_atomic_write(dlv_atomic_file *f, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return dlv_error(DLV_E_IO, "%s: write failed: %s", f->path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return DLV_OK;
}

static void atomic_release(dlv_atomic_file *f)
{
    free(f->path);
    free(f->tmp_path);
    free(f);
}

void dlv_atomic_abort(dlv_atomic_file *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp_path);
    atomic_release(f);
}

/* fsync the directory holding path so that the rename itself is durable. */
static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(copy);
}

dlv_status dlv_atomic_commit(dlv_atomic_file *f)
{
    dlv_status st = DLV_OK;
    if (fsync(f->fd) != 0)
        st = dlv_error(DLV_E_IO, "%s: fsync failed: %s", f->path, strerror(errno));
    if (close(f->fd) != 0 && st == DLV_OK)
        st = dlv_error(DLV_E_IO, "%s: close failed: %s", f->path, strerror(errno));
    f->fd = -1;
    if (st == DLV_OK && rename(f->tmp_path, f->path) != 0)
        st = dlv_error(DLV_E_IO, "%s: rename from temporary failed: %s", f->path,
                       strerror(errno));
    if (st != DLV_OK) {
        unlink(f->tmp_path);
    } else {
        sync_parent_dir(f->path);
    }
    atomic_release(f);
    return st;
}
