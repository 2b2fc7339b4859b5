/* NumPy .npy float32 writer (see npy.h). */
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w == 0) errno = EIO;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The header: magic, version 1.0, a little-endian 2-byte length, and the
 * dict padded with spaces to make the total a multiple of 64 bytes, ending
 * in a newline. Returns its size, 0 if it does not fit in cap. */
static size_t npy_header(char *buf, size_t cap, const size_t *shape, size_t ndim)
{
    char dict[512];
    size_t n = (size_t)snprintf(dict, sizeof dict,
                                "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (size_t i = 0; i < ndim && n < sizeof dict; i++)
        n += (size_t)snprintf(dict + n, sizeof dict - n, ndim == 1 ? "%zu," : i ? ", %zu" : "%zu",
                              shape[i]);
    if (n < sizeof dict) n += (size_t)snprintf(dict + n, sizeof dict - n, "), }");
    if (n >= sizeof dict) return 0;
    size_t total = (10 + n + 1 + 63) / 64 * 64;
    if (total > cap || total - 10 > 0xffff) return 0;
    size_t hlen = total - 10;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, n);
    memset(buf + 10 + n, ' ', total - 10 - n - 1);
    buf[total - 1] = '\n';
    return total;
}

/* Writes n floats as little-endian bytes, through a bounded buffer. */
static int write_f32_le(int fd, const float *x, size_t n)
{
    unsigned char buf[4096 * 4];
    while (n > 0) {
        size_t k = n < 4096 ? n : 4096;
        for (size_t i = 0; i < k; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            buf[4 * i] = (unsigned char)u;
            buf[4 * i + 1] = (unsigned char)(u >> 8);
            buf[4 * i + 2] = (unsigned char)(u >> 16);
            buf[4 * i + 3] = (unsigned char)(u >> 24);
        }
        if (write_all(fd, buf, 4 * k) != 0) return -1;
        x += k;
        n -= k;
    }
    return 0;
}

/* fsyncs the directory that holds path so that the rename is durable. */
static void sync_parent(const char *path)
{
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir)
        d = "/";
    else if (slash) {
        *slash = '\0';
        d = dir;
    }
    int dfd = open(d, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
}

int npy_write_f32(const char *cmd, const char *path, const float *data, const size_t *shape,
                  size_t ndim)
{
    char header[640];
    size_t count = 1;
    for (size_t i = 0; i < ndim; i++) {
        if (shape[i] && count > SIZE_MAX / 4 / shape[i]) {
            fprintf(stderr, "disclvlm: %s: %s: array too large\n", cmd, path);
            return 1;
        }
        count *= shape[i];
    }
    size_t hn = (ndim >= 1 && ndim <= 8) ? npy_header(header, sizeof header, shape, ndim) : 0;
    if (hn == 0) {
        fprintf(stderr, "disclvlm: %s: %s: cannot describe a %zu-dimensional array\n", cmd, path,
                ndim);
        return 1;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        fprintf(stderr, "disclvlm: %s: out of memory\n", cmd);
        return 1;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "disclvlm: %s: %s: cannot create: %s\n", cmd, path, strerror(errno));
        free(tmp);
        return 1;
    }
    /* mkstemp creates the file 0600; give it the mode a plain creat() would. */
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);

    int err = 0;
    if (write_all(fd, header, hn) != 0 || write_f32_le(fd, data, count) != 0 || fsync(fd) != 0)
        err = errno ? errno : EIO;
    if (close(fd) != 0 && !err) err = errno ? errno : EIO;
    if (!err && rename(tmp, path) != 0) err = errno ? errno : EIO;
    if (err) {
        fprintf(stderr, "disclvlm: %s: %s: write failed: %s\n", cmd, path, strerror(err));
        remove(tmp);
        free(tmp);
        return 1;
    }
    sync_parent(path);
    free(tmp);
    return 0;
}
