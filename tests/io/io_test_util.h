/* Helpers shared by the io tests: a fresh temporary directory per test and
 * hand-built safetensors images for the malformed-input cases. */
#ifndef DLV_TESTS_IO_TEST_UTIL_H
#define DLV_TESTS_IO_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* mkdtemp under $TMPDIR (or /tmp); NULL on failure. Free with
 * io_tmpdir_remove, which deletes the files in it and the directory. */
char *io_tmpdir_new(void);
void io_tmpdir_remove(char *dir);
/* Number of entries in dir whose name contains needle. */
int io_count_matching(const char *dir, const char *needle);

/* dir/name in a heap string. */
char *io_join(const char *dir, const char *name);
/* Writes n bytes to path; 0 on success. */
int io_write_bytes(const char *path, const void *data, size_t n);
int io_write_text(const char *path, const char *text);

/* An image: u64 LE len(header), header, then data. Heap; *size set. */
unsigned char *io_st_image(const char *header, const void *data, size_t data_len,
                           size_t *size);
/* The same with an explicit (possibly lying) header length field. */
unsigned char *io_st_image_len(uint64_t hlen_field, const char *header, const void *data,
                               size_t data_len, size_t *size);

#endif
