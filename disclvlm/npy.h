/* A small NumPy .npy writer for the disclvlm tool: float32 arrays, format
 * 1.0, little-endian ('<f4') whatever the host, C order, written atomically
 * (temporary file beside the target, fsync, rename, fsync of the
 * directory), so a reader never sees a half-written file. */
#ifndef DISCLVLM_NPY_H
#define DISCLVLM_NPY_H

#include <stddef.h>

/* Writes the float32 array data of the given shape (ndim in 1..8; the
 * product of the dimensions is the element count; a zero dimension is
 * allowed) to path. On failure prints "disclvlm: CMD: PATH: ..." to stderr,
 * leaves no temporary behind and an existing file at path untouched, and
 * returns 1; returns 0 on success. */
int npy_write_f32(const char *cmd, const char *path, const float *data, const size_t *shape,
                  size_t ndim);

#endif
