/* A directory-level save through lib/core/fs.c alone, for
 * tests/io/test_durability.py:
 *
 *   fsorder_dirsave DIR
 *
 * fills the temporary directory with one file through the atomic writer
 * and then, last, one written in place (open, write, fsync: no rename),
 * and commits. Every save of the library writes its files with the atomic
 * writer, whose directory fsync after each rename already makes the
 * temporary directory's entries durable; the in-place file is what leaves
 * dlv_dir_save_commit's own fsync of the temporary the only one that
 * covers an entry, so its order is checked too. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"

static const char *const known[] = {"atomic.txt", "inplace.txt", NULL};

static int fail(const char *what)
{
    fprintf(stderr, "fsorder_dirsave: %s: %s\n", what, dlv_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fsorder_dirsave DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char *tmp = NULL;
    if (dlv_dir_save_begin(dir, known, &tmp) != DLV_OK) return fail("begin");

    char *a = dlv_path_join(tmp, "atomic.txt");
    char *b = dlv_path_join(tmp, "inplace.txt");
    dlv_atomic_file *f = NULL;
    dlv_status st = a && b ? DLV_OK : DLV_E_NOMEM;
    if (!st) st = dlv_atomic_open(a, &f);
    if (!st) st = dlv_atomic_write(f, "atomic\n", 7);
    if (!st) st = dlv_atomic_commit(f);
    else if (f) dlv_atomic_abort(f);
    if (!st) {
        int fd = open(b, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, "in place\n", 9) != 9 || fsync(fd) != 0) {
            fprintf(stderr, "fsorder_dirsave: %s: %s\n", b, strerror(errno));
            st = DLV_E_IO;
        }
        if (fd >= 0) close(fd);
    }
    free(a);
    free(b);
    if (!st) st = dlv_dir_save_commit(tmp, dir, known);
    if (st) {
        dlv_dir_save_abort(tmp, known);
        free(tmp);
        return fail(dir);
    }
    free(tmp);
    return 0;
}
