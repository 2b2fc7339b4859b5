/* WebDataset tar shards through libarchive. A sample is the run of
 * consecutive entries that share a key (the path up to the first '.' of
 * the file name, as webdataset's base_plus_ext): KEY.jpg / .jpeg / .png /
 * .webp is the image, KEY.txt the caption, KEY.json may carry "caption"
 * (used when there is no .txt) and "long_caption". Other entries are
 * ignored. */
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/dataset.h"

#define WDS_MAX_SHARDS 1000000
#define WDS_MAX_ENTRY ((int64_t)256 << 20)

typedef struct pending {
    char *key;
    dlv_sample s;
    char *json_caption;
} pending;

static void pending_clear(pending *p)
{
    free(p->key);
    free(p->json_caption);
    dlv_sample_clear(&p->s);
    p->key = NULL;
    p->json_caption = NULL;
}

/* Moves the pending sample (if any) into ds, checking it is complete. */
static dlv_status flush(const char *shard, pending *p, dlv_dataset *ds)
{
    if (!p->key) return DLV_OK;
    if (!p->s.caption && p->json_caption) {
        p->s.caption = p->json_caption;
        p->json_caption = NULL;
    }
    dlv_status st = DLV_OK;
    if (!p->s.image_data)
        st = dlv_error(DLV_E_FORMAT, "%s: sample '%s' has no image (.jpg, .jpeg, .png, .webp)",
                       shard, p->key);
    else if (!p->s.caption && !p->s.long_caption)
        st = dlv_error(DLV_E_FORMAT,
                       "%s: sample '%s' has no caption (.txt, or \"caption\" in .json)", shard,
                       p->key);
    else {
        size_t n = strlen(shard) + strlen(p->key) + 2;
        p->s.where = malloc(n);
        if (!p->s.where)
            st = dlv_error_nomem("sample name", n);
        else {
            snprintf(p->s.where, n, "%s:%s", shard, p->key);
            st = dlv_dataset_push(ds, &p->s);
        }
    }
    pending_clear(p);
    return st;
}

static int ext_is(const char *ext, const char *want)
{
    for (; *ext && *want; ext++, want++)
        if (tolower((unsigned char)*ext) != *want) return 0;
    return *ext == '\0' && *want == '\0';
}

/* A caption file's text: NUL-terminated, one trailing newline (and CR)
 * dropped. */
static char *text_of(uint8_t *data, size_t n)
{
    char *t = malloc(n + 1);
    if (!t) return NULL;
    memcpy(t, data, n);
    while (n && (t[n - 1] == '\n' || t[n - 1] == '\r')) n--;
    t[n] = '\0';
    return t;
}

static dlv_status json_fields(const char *shard, const char *name, const uint8_t *data,
                              size_t n, pending *p)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)data, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return dlv_error(DLV_E_FORMAT, "%s: %s: %s", shard, name,
                         o ? "not a JSON object" : jerr.text);
    }
    static const char *keys[2] = {"caption", "long_caption"};
    char **slots[2] = {&p->json_caption, &p->s.long_caption};
    dlv_status st = DLV_OK;
    for (int k = 0; k < 2 && st == DLV_OK; k++) {
        json_t *v = json_object_get(o, keys[k]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_string(v)) {
            st = dlv_error(DLV_E_FORMAT, "%s: %s: \"%s\" is not a string", shard, name, keys[k]);
            break;
        }
        free(*slots[k]);
        *slots[k] = strdup(json_string_value(v));
        if (!*slots[k]) st = dlv_error_nomem(keys[k], json_string_length(v) + 1);
    }
    json_decref(o);
    return st;
}

static dlv_status read_shard(const char *shard, size_t limit, dlv_dataset *ds)
{
    struct archive *a = archive_read_new();
    if (!a) return dlv_error_nomem("libarchive reader", 0);
    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);
    if (archive_read_open_filename(a, shard, 1 << 16) != ARCHIVE_OK) {
        dlv_status st =
            dlv_error(DLV_E_IO, "%s: cannot open as a tar file: %s", shard, archive_error_string(a));
        archive_read_free(a);
        return st;
    }
    pending p = {0};
    dlv_status st = DLV_OK;
    struct archive_entry *e;
    uint8_t *buf = NULL;
    int r;
    while (st == DLV_OK && (!limit || ds->n < limit)) {
        r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            st = dlv_error(DLV_E_FORMAT, "%s: %s", shard, archive_error_string(a));
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG) continue;
        const char *name = archive_entry_pathname(e);
        if (!name) continue;
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        const char *dot = strchr(base, '.');
        if (!dot || dot == base) continue; /* no key or no extension: not a sample file */
        size_t klen = (size_t)(dot - name);
        const char *ext = dot + 1;
        if (p.key && (strlen(p.key) != klen || memcmp(p.key, name, klen) != 0))
            if ((st = flush(shard, &p, ds)) != DLV_OK) break;
        if (limit && ds->n >= limit) break;
        if (!p.key) {
            p.key = malloc(klen + 1);
            if (!p.key) {
                st = dlv_error_nomem("sample key", klen + 1);
                break;
            }
            memcpy(p.key, name, klen);
            p.key[klen] = '\0';
        }
        int is_img = ext_is(ext, "jpg") || ext_is(ext, "jpeg") || ext_is(ext, "png") ||
                     ext_is(ext, "webp");
        int is_txt = ext_is(ext, "txt"), is_json = ext_is(ext, "json");
        if (!is_img && !is_txt && !is_json) continue;
        int64_t size = archive_entry_size(e);
        if (size < 0 || size > WDS_MAX_ENTRY) {
            st = dlv_error(DLV_E_FORMAT, "%s: %s: size %lld is out of range (at most %lld)",
                           shard, name, (long long)size, (long long)WDS_MAX_ENTRY);
            break;
        }
        size_t n = (size_t)size;
        buf = malloc(n ? n : 1);
        if (!buf) {
            st = dlv_error_nomem(name, n);
            break;
        }
        la_ssize_t got = archive_read_data(a, buf, n);
        if (got < 0 || (size_t)got != n) {
            st = dlv_error(DLV_E_FORMAT, "%s: %s: truncated entry: %s", shard, name,
                           got < 0 ? archive_error_string(a) : "short read");
            break;
        }
        if (is_img) {
            if (p.s.image_data) {
                st = dlv_error(DLV_E_FORMAT, "%s: sample '%s' has more than one image", shard,
                               p.key);
                break;
            }
            p.s.image_data = buf;
            p.s.image_size = n;
            buf = NULL;
        } else if (is_txt) {
            free(p.s.caption);
            if (!(p.s.caption = text_of(buf, n))) st = dlv_error_nomem(name, n + 1);
        } else {
            st = json_fields(shard, name, buf, n, &p);
        }
        free(buf);
        buf = NULL;
    }
    free(buf);
    if (st == DLV_OK && (!limit || ds->n < limit)) st = flush(shard, &p, ds);
    pending_clear(&p);
    archive_read_free(a);
    return st;
}

dlv_status dlv_dataset_read_wds(const char *pattern, const dlv_dataset_options *o,
                                dlv_dataset *ds)
{
    dlv_dataset_options d = DLV_DATASET_OPTIONS_INIT;
    if (!o) o = &d;
    char **shards = NULL;
    size_t n = 0;
    dlv_status st = dlv_expand_braces(pattern, WDS_MAX_SHARDS, &shards, &n);
    if (st != DLV_OK) return st;
    for (size_t i = 0; i < n && st == DLV_OK && (!o->limit || ds->n < o->limit); i++) {
        st = read_shard(shards[i], o->limit, ds);
    }
    dlv_free_strings(shards, n);
    return st;
}
