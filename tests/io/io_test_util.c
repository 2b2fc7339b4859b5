#include "io_test_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *io_tmpdir_new(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    char *tmpl = io_join(base, "dlv-io-test-XXXXXX");
    if (!tmpl) return NULL;
    if (!mkdtemp(tmpl)) {
        free(tmpl);
        return NULL;
    }
    return tmpl;
}

void io_tmpdir_remove(char *dir)
{
    if (!dir) return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char *p = io_join(dir, e->d_name);
            if (p) {
                /* The tests make one level of files plus possibly one
                 * empty subdirectory. */
                if (unlink(p) != 0) rmdir(p);
                free(p);
            }
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

int io_count_matching(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, needle)) n++;
    closedir(d);
    return n;
}

char *io_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int io_write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = (n == 0 || fwrite(data, 1, n, f) == n);
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
}

int io_write_text(const char *path, const char *text)
{
    return io_write_bytes(path, text, strlen(text));
}

unsigned char *io_st_image_len(uint64_t hlen_field, const char *header, const void *data,
                               size_t data_len, size_t *size)
{
    size_t h = strlen(header);
    unsigned char *img = malloc(8 + h + data_len + 1);
    if (!img) return NULL;
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)(hlen_field >> (8 * i));
    memcpy(img + 8, header, h);
    if (data_len) memcpy(img + 8 + h, data, data_len);
    *size = 8 + h + data_len;
    return img;
}

unsigned char *io_st_image(const char *header, const void *data, size_t data_len,
                           size_t *size)
{
    return io_st_image_len(strlen(header), header, data, data_len, size);
}
