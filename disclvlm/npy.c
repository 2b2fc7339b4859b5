/* NumPy .npy float32 writer (see npy.h). */
#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/fs.h"
#include "eval_cli.h"

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
static dlv_status write_f32_le(dlv_atomic_file *f, const float *x, size_t n)
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
        dlv_status st = dlv_atomic_write(f, buf, 4 * k);
        if (st != DLV_OK) return st;
        x += k;
        n -= k;
    }
    return DLV_OK;
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
    /* lib/core/fs.c, compiled into the tool: temporary beside path, fsync,
     * rename, fsync of the directory; its messages name path and land in
     * dlv_error_message() (core/error.c). */
    dlv_atomic_file *f = NULL;
    dlv_status st = dlv_atomic_open(path, &f);
    if (st == DLV_OK) {
        st = dlv_atomic_write(f, header, hn);
        if (st == DLV_OK) st = write_f32_le(f, data, count);
        if (st == DLV_OK)
            st = dlv_atomic_commit(f); /* removes the temporary on failure */
        else
            dlv_atomic_abort(f);
    }
    if (st != DLV_OK) {
        fprintf(stderr, "disclvlm: %s: %s\n", cmd, dlv_error_message());
        return 1;
    }
    return 0;
}
