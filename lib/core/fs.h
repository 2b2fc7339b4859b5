/* Small file helpers with error messages that name the path. */
#ifndef DLV_CORE_FS_H
#define DLV_CORE_FS_H

#include <stddef.h>

#include "disclvlm.h"

/* Reads a whole file into a NUL-terminated heap buffer (free with free()).
 * Files larger than max_bytes are refused. */
dlv_status dlv_read_file(const char *path, size_t max_bytes, char **out, size_t *len);

/* dir + "/" + name in a heap string; NULL on allocation failure. */
char *dlv_path_join(const char *dir, const char *name);

/* 1 if path exists and is a regular file / a directory. */
int dlv_is_file(const char *path);
int dlv_is_dir(const char *path);

/* An atomic writer: data goes to a temporary file beside path; commit
 * fsyncs, renames over path and fsyncs the directory; abort removes the
 * temporary. Exactly one of commit/abort must be called. */
typedef struct dlv_atomic_file dlv_atomic_file;
dlv_status dlv_atomic_open(const char *path, dlv_atomic_file **out);
dlv_status dlv_atomic_write(dlv_atomic_file *f, const void *data, size_t n);
dlv_status dlv_atomic_commit(dlv_atomic_file *f);
void dlv_atomic_abort(dlv_atomic_file *f);
/* The whole of data as path, through the atomic writer. */
dlv_status dlv_write_file_atomic(const char *path, const void *data, size_t n);

/* Directory-level atomic saves (adapters, training checkpoints): files are
 * written into a fresh sibling directory (dir + ".tmp-XXXXXX"), which then
 * replaces dir in one step (renameat2 RENAME_EXCHANGE; the old contents
 * are removed afterwards), so a reader or a crash sees the old directory or
 * the new one, never a mix. An existing dir may only hold entries named in
 * known (a NULL-terminated list): anything else is refused (DLV_E_IO naming
 * it) rather than deleted. begin creates the temporary (*tmp, free() it). */
dlv_status dlv_dir_save_begin(const char *dir, const char *const *known, char **tmp);
dlv_status dlv_dir_save_commit(const char *tmp, const char *dir, const char *const *known);
/* Whether a save into dir would be allowed, checked before any work: dir
 * absent with a writable parent directory, or a writable directory holding
 * only entries named in known. The error is the one the save would give. */
dlv_status dlv_dir_save_check(const char *dir, const char *const *known);
/* Removes the temporary directory and the known files in it. */
void dlv_dir_save_abort(const char *tmp, const char *const *known);

#endif
