/* An LD_PRELOAD shim that records the file-system calls whose order makes an
 * atomic write durable, for tests/io/test_durability.py: which fd names
 * which path (open*, mkstemp*), write, fsync, fdatasync, close, rename*,
 * mkdtemp. Each call goes to the real function (dlsym RTLD_NEXT), then one
 * line is appended to the file named by DLV_FSORDER_LOG:
 *
 *   pid <TAB> op <TAB> result <TAB> fd <TAB> path <TAB> path2 <TAB> extra
 *
 * with paths made absolute (relative ones against the cwd or the dirfd) so
 * the checker can match "the parent of X" against the path a directory fd
 * was opened on. The line is written after the call returns, with one
 * write() on an O_APPEND fd, so lines of concurrent calls never mix and a
 * line's position is after the call it records. errno is kept for the
 * caller.
 *
 * DLV_FSORDER_NO_EXCHANGE=1 makes renameat2(RENAME_EXCHANGE) fail with
 * EINVAL, as on a file system without it, so that the fallback path of
 * dlv_dir_save_commit (two renames) is checked too. */

/* The wrappers must define the plain names (open, mkstemp): without this,
 * meson's -D_FILE_OFFSET_BITS=64 would turn them into open64/mkstemp64 by
 * asm labels, and _FORTIFY_SOURCE into inline functions. */
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* glibc's fortified open and the 64-bit names have no prototype here. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

/* dlsym returns an object pointer; copying it avoids the cast ISO C does not
 * define between object and function pointers. */
#define REAL(name, fnptr)                                                                      \
    do {                                                                                       \
        if (!(fnptr)) {                                                                        \
            void *sym_ = dlsym(RTLD_NEXT, name);                                               \
            memcpy(&(fnptr), &sym_, sizeof(fnptr));                                            \
        }                                                                                      \
    } while (0)

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*open2_fn)(const char *, int);
typedef int (*openat2_fn)(int, const char *, int);
typedef int (*mkstemp_fn)(char *);
typedef int (*mkostemp_fn)(char *, int);
typedef int (*mkstemps_fn)(char *, int);
typedef int (*mkostemps_fn)(char *, int, int);
typedef char *(*mkdtemp_fn)(char *);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef int (*fd_fn)(int);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*renameat_fn)(int, const char *, int, const char *);
typedef int (*renameat2_fn)(int, const char *, int, const char *, unsigned int);

static open_fn real_open, real_open64;
static openat_fn real_openat, real_openat64;
static open2_fn real_open_2, real_open64_2;
static openat2_fn real_openat_2, real_openat64_2;
static mkstemp_fn real_mkstemp, real_mkstemp64;
static mkostemp_fn real_mkostemp, real_mkostemp64;
static mkstemps_fn real_mkstemps, real_mkstemps64;
static mkostemps_fn real_mkostemps, real_mkostemps64;
static mkdtemp_fn real_mkdtemp;
static write_fn real_write;
static fd_fn real_fsync, real_fdatasync, real_close;
static rename_fn real_rename;
static renameat_fn real_renameat;
static renameat2_fn real_renameat2;

static int log_fd = -1;

/* The log fd sits high, away from the numbers the program uses, and is
 * close-on-exec; a program that closes it only loses its own log. */
static void log_open(void)
{
    if (log_fd >= 0) return;
    const char *name = getenv("DLV_FSORDER_LOG");
    if (!name || !*name) return;
    REAL("open", real_open);
    int fd = real_open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
    if (high >= 0) {
        REAL("close", real_close);
        real_close(fd);
        fd = high;
    }
    log_fd = fd;
}

__attribute__((constructor)) static void shim_init(void) { log_open(); }

/* path made absolute against dirfd (AT_FDCWD: the cwd); tabs and newlines
 * become '?' so that a line stays one record. */
static void absolute(char *out, size_t cap, int dirfd, const char *path)
{
    out[0] = '\0';
    if (!path) return;
    size_t n = 0;
    if (path[0] != '/') {
        char base[PATH_MAX];
        ssize_t len = -1;
        if (dirfd == AT_FDCWD) {
            if (getcwd(base, sizeof base)) len = (ssize_t)strlen(base);
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            len = readlink(link, base, sizeof base - 1);
        }
        if (len < 0) len = 0;
        base[len] = '\0';
        n = (size_t)snprintf(out, cap, "%s/", base);
        if (n >= cap) n = cap - 1;
    }
    snprintf(out + n, cap - n, "%s", path);
    for (char *p = out; *p; p++)
        if (*p == '\t' || *p == '\n') *p = '?';
}

static void record(const char *op, long result, int fd, int dirfd1, const char *p1, int dirfd2,
                   const char *p2, const char *extra)
{
    int saved = errno;
    log_open();
    if (log_fd >= 0) {
        char a[PATH_MAX + 64], b[PATH_MAX + 64];
        char line[2 * sizeof a + 256];
        absolute(a, sizeof a, dirfd1, p1);
        absolute(b, sizeof b, dirfd2, p2);
        int n = snprintf(line, sizeof line, "%ld\t%s\t%ld\t%d\t%s\t%s\t%s\n", (long)getpid(), op,
                         result, fd, a, b, extra ? extra : "");
        if (n > 0) {
            size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
            REAL("write", real_write);
            (void)real_write(log_fd, line, len);
        }
    }
    errno = saved;
}

static void record_open(const char *op, int fd, int dirfd, const char *path, int flags)
{
    char extra[32];
    snprintf(extra, sizeof extra, "0x%x", (unsigned)flags);
    record(op, fd, fd, dirfd, path, AT_FDCWD, NULL, extra);
}

/* O_CREAT and O_TMPFILE take a mode argument. */
static int needs_mode(int flags)
{
#ifdef O_TMPFILE
    if ((flags & O_TMPFILE) == O_TMPFILE) return 1;
#endif
    return (flags & O_CREAT) != 0;
}

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, unsigned int);
        va_end(ap);
    }
    REAL("open", real_open);
    int fd = real_open(path, flags, mode);
    record_open("open", fd, AT_FDCWD, path, flags);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, unsigned int);
        va_end(ap);
    }
    REAL("open64", real_open64);
    int fd = real_open64(path, flags, mode);
    record_open("open", fd, AT_FDCWD, path, flags);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, unsigned int);
        va_end(ap);
    }
    REAL("openat", real_openat);
    int fd = real_openat(dirfd, path, flags, mode);
    record_open("open", fd, dirfd, path, flags);
    return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, unsigned int);
        va_end(ap);
    }
    REAL("openat64", real_openat64);
    int fd = real_openat64(dirfd, path, flags, mode);
    record_open("open", fd, dirfd, path, flags);
    return fd;
}

int __open_2(const char *path, int flags)
{
    REAL("__open_2", real_open_2);
    int fd = real_open_2(path, flags);
    record_open("open", fd, AT_FDCWD, path, flags);
    return fd;
}

int __open64_2(const char *path, int flags)
{
    REAL("__open64_2", real_open64_2);
    int fd = real_open64_2(path, flags);
    record_open("open", fd, AT_FDCWD, path, flags);
    return fd;
}

int __openat_2(int dirfd, const char *path, int flags)
{
    REAL("__openat_2", real_openat_2);
    int fd = real_openat_2(dirfd, path, flags);
    record_open("open", fd, dirfd, path, flags);
    return fd;
}

int __openat64_2(int dirfd, const char *path, int flags)
{
    REAL("__openat64_2", real_openat64_2);
    int fd = real_openat64_2(dirfd, path, flags);
    record_open("open", fd, dirfd, path, flags);
    return fd;
}

/* glibc's mkstemp family opens the file internally, out of the shim's
 * reach: the wrappers record the name it chose and the fd as a "mkstemp"
 * event (an open for writing that created the file). */
int mkstemp(char *tmpl)
{
    REAL("mkstemp", real_mkstemp);
    int fd = real_mkstemp(tmpl);
    record("mkstemp", fd, fd, AT_FDCWD, tmpl, AT_FDCWD, NULL, NULL);
    return fd;
}

int mkstemp64(char *tmpl)
{
    REAL("mkstemp64", real_mkstemp64);
    int fd = real_mkstemp64(tmpl);
    record("mkstemp", fd, fd, AT_FDCWD, tmpl, AT_FDCWD, NULL, NULL);
    return fd;
}

int mkostemp(char *tmpl, int flags)
{
    REAL("mkostemp", real_mkostemp);
    int fd = real_mkostemp(tmpl, flags);
    record("mkstemp", fd, fd, AT_FDCWD, tmpl, AT_FDCWD, NULL, NULL);
    return fd;
}

int mkostemp64(char *tmpl, int flags)
{
    REAL("mkostemp64", real_mkostemp64);
    int fd = real_mkostemp64(tmpl, flags);
    record("mkstemp", fd, fd, AT_FDCWD, tmpl, AT_FDCWD, NULL, NULL);
    return fd;
}

int mkstemps(char *tmpl, int suffixlen)
{
    REAL("mkstemps", real_mkstemps);
    int fd = real_mkstemps(tmpl, suffixlen);
    record("mkstemp", fd, fd, AT_FDCWD, tmpl, AT_FDCWD, NULL, NULL);
    return fd;
}

int mkstemps64(char *tmpl, int suffixlen)
{
    REAL("mkstemps64", real_mkstemps64);
    int fd = real_mkstemps64(tmpl, suffixlen);
    record("mkstemp", fd, fd, AT_FDCWD, tmpl, AT_FDCWD, NULL, NULL);
    return fd;
}

int mkostemps(char *tmpl, int suffixlen, int flags)
{
    REAL("mkostemps", real_mkostemps);
    int fd = real_mkostemps(tmpl, suffixlen, flags);
    record("mkstemp", fd, fd, AT_FDCWD, tmpl, AT_FDCWD, NULL, NULL);
    return fd;
}

int mkostemps64(char *tmpl, int suffixlen, int flags)
{
    REAL("mkostemps64", real_mkostemps64);
    int fd = real_mkostemps64(tmpl, suffixlen, flags);
    record("mkstemp", fd, fd, AT_FDCWD, tmpl, AT_FDCWD, NULL, NULL);
    return fd;
}

char *mkdtemp(char *tmpl)
{
    REAL("mkdtemp", real_mkdtemp);
    char *r = real_mkdtemp(tmpl);
    record("mkdtemp", r ? 0 : -1, -1, AT_FDCWD, tmpl, AT_FDCWD, NULL, NULL);
    return r;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    REAL("write", real_write);
    ssize_t w = real_write(fd, buf, n);
    if (fd != log_fd) record("write", (long)w, fd, AT_FDCWD, NULL, AT_FDCWD, NULL, NULL);
    return w;
}

int fsync(int fd)
{
    REAL("fsync", real_fsync);
    int rc = real_fsync(fd);
    record("fsync", rc, fd, AT_FDCWD, NULL, AT_FDCWD, NULL, NULL);
    return rc;
}

int fdatasync(int fd)
{
    REAL("fdatasync", real_fdatasync);
    int rc = real_fdatasync(fd);
    record("fsync", rc, fd, AT_FDCWD, NULL, AT_FDCWD, NULL, "fdatasync");
    return rc;
}

int close(int fd)
{
    REAL("close", real_close);
    /* The program closing the log's fd (a close-everything loop) would
     * otherwise end the log silently: keep it. */
    if (fd == log_fd && fd >= 0) return 0;
    int rc = real_close(fd);
    record("close", rc, fd, AT_FDCWD, NULL, AT_FDCWD, NULL, NULL);
    return rc;
}

/* "d" or "f": what now sits at the new path, so the checker tells file
 * renames from directory swaps. */
static void record_rename(int rc, int olddirfd, const char *oldpath, int newdirfd,
                          const char *newpath, unsigned int flags)
{
    int saved = errno;
    char extra[48];
    struct stat sb;
    char kind = '-';
    if (rc == 0 && fstatat(newdirfd, newpath, &sb, AT_SYMLINK_NOFOLLOW) == 0)
        kind = S_ISDIR(sb.st_mode) ? 'd' : 'f';
    snprintf(extra, sizeof extra, "%c 0x%x", kind, flags);
    errno = saved;
    record("rename", rc, -1, olddirfd, oldpath, newdirfd, newpath, extra);
}

int rename(const char *oldpath, const char *newpath)
{
    REAL("rename", real_rename);
    int rc = real_rename(oldpath, newpath);
    record_rename(rc, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
    return rc;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    REAL("renameat", real_renameat);
    int rc = real_renameat(olddirfd, oldpath, newdirfd, newpath);
    record_rename(rc, olddirfd, oldpath, newdirfd, newpath, 0);
    return rc;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags)
{
    int rc;
    const char *no = getenv("DLV_FSORDER_NO_EXCHANGE");
    if ((flags & RENAME_EXCHANGE) && no && !strcmp(no, "1")) {
        rc = -1;
        errno = EINVAL;
    } else {
        REAL("renameat2", real_renameat2);
        rc = real_renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
    }
    record_rename(rc, olddirfd, oldpath, newdirfd, newpath, flags);
    return rc;
}
