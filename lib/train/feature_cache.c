/* Feature cache (see feature_cache.h): open addressing on an FNV-1a hash. */
#include "train/feature_cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image/image_source.h"
#include "core/error.h"

typedef struct entry {
    char *path;            /* NULL: empty slot */
    long long size, mtime_ns;
    float *feats;
} entry;

struct dlv_feature_cache {
    size_t floats;
    entry *slots;
    size_t cap, count;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The file identity of an image; 0 if it is not a readable file. */
static int identity(const dlv_image *img, long long *size, long long *mtime_ns)
{
    if (!img || img->kind != DLV_IMAGE_FILE || !img->path) return 0;
    struct stat sb;
    if (stat(img->path, &sb) != 0) return 0;
    *size = (long long)sb.st_size;
    *mtime_ns = (long long)sb.st_mtim.tv_sec * 1000000000LL + (long long)sb.st_mtim.tv_nsec;
    return 1;
}

dlv_status dlv_feature_cache_new(size_t floats_per_image, dlv_feature_cache **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return dlv_error_nomem("feature cache", sizeof **out);
    (*out)->floats = floats_per_image;
    return DLV_OK;
}

void dlv_feature_cache_free(dlv_feature_cache *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->cap; i++) {
        free(c->slots[i].path);
        free(c->slots[i].feats);
    }
    free(c->slots);
    free(c);
}

size_t dlv_feature_cache_count(const dlv_feature_cache *c) { return c ? c->count : 0; }

static entry *find(const dlv_feature_cache *c, const char *path)
{
    if (!c->cap) return NULL;
    for (size_t i = fnv1a(path) & (c->cap - 1);; i = (i + 1) & (c->cap - 1))
        if (!c->slots[i].path || !strcmp(c->slots[i].path, path)) return &c->slots[i];
}

const float *dlv_feature_cache_get(const dlv_feature_cache *c, const dlv_image *image)
{
    long long size, mt;
    if (!c || !identity(image, &size, &mt)) return NULL;
    const entry *e = find(c, image->path);
    if (!e || !e->path || e->size != size || e->mtime_ns != mt) return NULL;
    return e->feats;
}

static dlv_status grow(dlv_feature_cache *c)
{
    size_t cap = c->cap ? c->cap * 2 : 64;
    entry *old = c->slots;
    size_t old_cap = c->cap;
    c->slots = calloc(cap, sizeof *c->slots);
    if (!c->slots) {
        c->slots = old;
        return dlv_error_nomem("feature cache table", cap * sizeof(entry));
    }
    c->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        entry *slot = old[i].path ? find(c, old[i].path) : NULL;
        if (slot) *slot = old[i];
    }
    free(old);
    return DLV_OK;
}

dlv_status dlv_feature_cache_put(dlv_feature_cache *c, const dlv_image *image, const float *feats)
{
    long long size, mt;
    if (!c || !identity(image, &size, &mt)) return DLV_OK;
    if ((c->count + 1) * 2 > c->cap) {
        dlv_status st = grow(c);
        if (st) return st;
    }
    entry *e = find(c, image->path);
    if (!e) return DLV_OK; /* unreachable: grow() made room */
    if (!e->path) {
        e->path = strdup(image->path);
        e->feats = malloc(c->floats * sizeof *e->feats);
        if (!e->path || !e->feats) {
            free(e->path);
            free(e->feats);
            memset(e, 0, sizeof *e);
            return dlv_error_nomem("cached features", c->floats * sizeof(float));
        }
        c->count++;
    }
    e->size = size;
    e->mtime_ns = mt;
    memcpy(e->feats, feats, c->floats * sizeof *feats);
    return DLV_OK;
}
