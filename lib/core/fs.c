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

/* ---- directory-level atomic saves ------------------------------------- */

#include <dirent.h>

static int is_known(const char *name, const char *const *known)
{
    for (size_t i = 0; known && known[i]; i++)
        if (!strcmp(name, known[i])) return 1;
    return 0;
}

/* DLV_OK if dir holds only known entries (and ".", ".."). */
static dlv_status check_only_known(const char *dir, const char *const *known)
{
    DIR *d = opendir(dir);
    if (!d) return dlv_error(DLV_E_IO, "%s: cannot open the directory: %s", dir, strerror(errno));
    dlv_status st = DLV_OK;
    struct dirent *e;
    while (!st && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!is_known(e->d_name, known))
            st = dlv_error(DLV_E_IO, "%s: holds '%s', which is not a file this save writes; "
                           "refusing to replace the directory (choose an empty or new one)",
                           dir, e->d_name);
    }
    closedir(d);
    return st;
}

static void remove_known(const char *dir, const char *const *known)
{
    for (size_t i = 0; known && known[i]; i++) {
        char *p = dlv_path_join(dir, known[i]);
        if (p) unlink(p);
        free(p);
    }
    rmdir(dir);
}

static dlv_status sync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return dlv_error(DLV_E_IO, "%s: cannot open for fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL)
        return dlv_error(DLV_E_IO, "%s: fsync failed: %s", path, strerror(err));
    return DLV_OK;
}

/* The parent directory of path (a heap string). */
static char *parent_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return NULL;
    char *parent = strdup(dirname(copy));
    free(copy);
    return parent;
}

/* DLV_OK if dir is absent, or a directory holding only known entries. */
static dlv_status check_replaceable(const char *dir, const char *const *known)
{
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return dlv_error(DLV_E_IO, "%s: exists and is not a directory", dir);
        return check_only_known(dir, known);
    }
    if (errno != ENOENT) return dlv_error(DLV_E_IO, "%s: %s", dir, strerror(errno));
    return DLV_OK;
}

dlv_status dlv_dir_save_check(const char *dir, const char *const *known)
{
    dlv_status st = check_replaceable(dir, known);
    if (st) return st;
    struct stat sb;
    /* The save makes a sibling temporary and renames it: the parent must be
     * a writable directory. */
    char *parent = parent_of(dir);
    if (!parent) return dlv_error_nomem("a path", strlen(dir) + 1);
    if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode))
        st = dlv_error(DLV_E_IO, "%s: the directory %s does not exist", dir, parent);
    else if (access(parent, W_OK | X_OK) != 0)
        st = dlv_error(DLV_E_IO, "%s: cannot write in %s: %s", dir, parent, strerror(errno));
    free(parent);
    return st;
}

dlv_status dlv_dir_save_begin(const char *dir, const char *const *known, char **tmp)
{
    *tmp = NULL;
    dlv_status st = check_replaceable(dir, known);
    if (st) return st;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    char *t = malloc(n + 16);
    if (!t) return dlv_error_nomem("a path", n + 16);
    memcpy(t, dir, n);
    memcpy(t + n, ".tmp-XXXXXX", 12);
    if (!mkdtemp(t)) {
        st = dlv_error(DLV_E_IO, "%s: cannot create a temporary directory beside it: %s", dir,
                       strerror(errno));
        free(t);
        return st;
    }
    *tmp = t;
    return DLV_OK;
}

dlv_status dlv_dir_save_commit(const char *tmp, const char *dir, const char *const *known)
{
    dlv_status st = sync_path(tmp);
    if (st) return st;
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        /* Swap in one step; tmp then names the old contents. */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) != 0) {
            if (errno != EINVAL && errno != ENOSYS)
                return dlv_error(DLV_E_IO, "%s: cannot replace it with %s: %s", dir, tmp,
                                 strerror(errno));
            /* A file system without RENAME_EXCHANGE: move the old one aside
             * first (a crash between the two renames leaves it there). */
            size_t n = strlen(tmp);
            char *old = malloc(n + 5);
            if (!old) return dlv_error_nomem("a path", n + 5);
            memcpy(old, tmp, n);
            memcpy(old + n, ".old", 5);
            if (rename(dir, old) != 0 || rename(tmp, dir) != 0) {
                st = dlv_error(DLV_E_IO, "%s: cannot replace it: %s", dir, strerror(errno));
                free(old);
                return st;
            }
            remove_known(old, known);
            free(old);
        } else {
            remove_known(tmp, known);
        }
    } else if (rename(tmp, dir) != 0) {
        return dlv_error(DLV_E_IO, "%s: cannot rename %s to it: %s", dir, tmp, strerror(errno));
    }
    char *parent = parent_of(dir);
    if (!parent) return dlv_error_nomem("a path", strlen(dir) + 1);
    st = sync_path(parent);
    free(parent);
    return st;
}

void dlv_dir_save_abort(const char *tmp, const char *const *known)
{
    if (tmp) remove_known(tmp, known);
}

dlv_status dlv_write_file_atomic(const char *path, const void *data, size_t n)
{
    dlv_atomic_file *f = NULL;
    dlv_status st = dlv_atomic_open(path, &f);
    if (!st) st = dlv_atomic_write(f, data, n);
    if (!st) st = dlv_atomic_commit(f);
    else if (f) dlv_atomic_abort(f);
    return st;
}
