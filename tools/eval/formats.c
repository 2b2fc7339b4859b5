/* Evaluation data formats (formats.h). */
#include "eval/formats.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/fs.h"

#define EVAL_JSON_MAX ((size_t)4 << 30)

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A string member of obj (NULL with an error message when missing or not a
 * string). */
static const char *member_str(json_t *obj, const char *key, const char *path, const char *what,
                              dlv_status *st)
{
    json_t *v = json_object_get(obj, key);
    if (!v || !json_is_string(v)) {
        *st = dlv_error(DLV_E_FORMAT, "%s: %s: \"%s\" is %s", path, what, key,
                        v ? "not a string" : "missing");
        return NULL;
    }
    return json_string_value(v);
}

static json_t *load_json(const char *path, dlv_status *st)
{
    char *text = NULL;
    size_t len = 0;
    *st = dlv_read_file(path, EVAL_JSON_MAX, &text, &len);
    if (*st != DLV_OK) return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root)
        *st = dlv_error(DLV_E_FORMAT, "%s: line %d, column %d: %s", path, jerr.line, jerr.column,
                        jerr.text);
    return root;
}

/* ---- Retrieval ---------------------------------------------------------- */

void dlv_retrieval_set_free(dlv_retrieval_set *r)
{
    if (!r) return;
    dlv_dataset_free(&r->images);
    dlv_free_strings(r->texts, r->n_txt);
    free(r->txt_img);
    memset(r, 0, sizeof *r);
}

static dlv_status add_text(dlv_retrieval_set *r, size_t *cap, const char *text, uint32_t img)
{
    if (r->n_txt == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        char **t = realloc(r->texts, c * sizeof *t);
        if (!t) return dlv_error_nomem("captions", c * sizeof *t);
        r->texts = t;
        uint32_t *m = realloc(r->txt_img, c * sizeof *m);
        if (!m) return dlv_error_nomem("captions", c * sizeof *m);
        r->txt_img = m;
        *cap = c;
    }
    char *d = strdup(text);
    if (!d) return dlv_error_nomem("caption", strlen(text) + 1);
    r->texts[r->n_txt] = d;
    r->txt_img[r->n_txt++] = img;
    return DLV_OK;
}

dlv_status dlv_karpathy_read(const char *path, const char *split, const char *img_root,
                             size_t limit, dlv_retrieval_set *out)
{
    memset(out, 0, sizeof *out);
    dlv_status st;
    json_t *root = load_json(path, &st);
    if (!root) return st;
    json_t *images = json_is_object(root) ? json_object_get(root, "images") : NULL;
    if (!images || !json_is_array(images)) {
        json_decref(root);
        return dlv_error(DLV_E_FORMAT, "%s: no \"images\" array (not a Karpathy-split file)",
                         path);
    }
    size_t cap = 0, idx;
    json_t *im;
    char what[64];
    json_array_foreach(images, idx, im)
    {
        if (limit && out->images.n >= limit) break;
        snprintf(what, sizeof what, "images[%zu]", idx);
        if (!json_is_object(im)) {
            st = dlv_error(DLV_E_FORMAT, "%s: %s is not an object", path, what);
            break;
        }
        if (split) {
            const char *sp = member_str(im, "split", path, what, &st);
            if (!sp) break;
            if (strcmp(sp, split) != 0) continue;
        }
        const char *fname = member_str(im, "filename", path, what, &st);
        if (!fname) break;
        json_t *fp = json_object_get(im, "filepath");
        if (fp && !json_is_string(fp)) {
            st = dlv_error(DLV_E_FORMAT, "%s: %s: \"filepath\" is not a string", path, what);
            break;
        }
        json_t *sents = json_object_get(im, "sentences");
        if (!sents || !json_is_array(sents) || json_array_size(sents) == 0) {
            st = dlv_error(DLV_E_FORMAT, "%s: %s (%s): no \"sentences\"", path, what, fname);
            break;
        }
        uint32_t img = (uint32_t)out->images.n;
        size_t k;
        json_t *sent;
        json_array_foreach(sents, k, sent)
        {
            char w2[96];
            snprintf(w2, sizeof w2, "%s.sentences[%zu]", what, k);
            const char *raw = json_is_object(sent) ? member_str(sent, "raw", path, w2, &st)
                                                   : NULL;
            if (!json_is_object(sent))
                st = dlv_error(DLV_E_FORMAT, "%s: %s is not an object", path, w2);
            if (!raw || (st = add_text(out, &cap, raw, img)) != DLV_OK) {
                if (st == DLV_OK) st = DLV_E_FORMAT;
                break;
            }
        }
        if (st != DLV_OK) break;
        char *rel = fp ? dlv_resolve_path(json_string_value(fp), fname) : strdup(fname);
        dlv_sample s = {0};
        s.image = rel ? dlv_resolve_path(img_root, rel) : NULL;
        free(rel);
        s.where = malloc(strlen(path) + 64);
        if (!s.image || !s.where) {
            dlv_sample_clear(&s);
            st = dlv_error_nomem("image path", strlen(fname) + 1);
            break;
        }
        snprintf(s.where, strlen(path) + 64, "%s:%s", path, what);
        if ((st = dlv_dataset_push(&out->images, &s)) != DLV_OK) break;
    }
    json_decref(root);
    if (st == DLV_OK && out->images.n == 0)
        st = dlv_error(DLV_E_FORMAT, "%s: no images in split '%s'", path, split ? split : "(any)");
    if (st != DLV_OK) dlv_retrieval_set_free(out);
    return st;
}

dlv_status dlv_retrieval_from_dataset(const char *path, const char *img_root, size_t limit,
                                      dlv_retrieval_set *out)
{
    memset(out, 0, sizeof *out);
    dlv_dataset ds = DLV_DATASET_INIT;
    dlv_dataset_options o = DLV_DATASET_OPTIONS_INIT;
    o.base_dir = img_root;
    dlv_status st = dlv_dataset_read(path, &o, &ds);
    size_t cap = 0;
    /* Samples with the same image path are one image; a sorted index of
     * the paths (order[0..n_order)) finds them. In-memory images
     * (WebDataset) are never merged. */
    size_t *order = NULL, n_order = 0;
    for (size_t i = 0; i < ds.n && st == DLV_OK; i++) {
        dlv_sample *s = &ds.items[i];
        if (!s->caption) {
            st = dlv_error(DLV_E_FORMAT, "%s: no short caption (retrieval uses \"caption\")",
                           s->where);
            break;
        }
        size_t img = out->images.n, lo = 0;
        if (s->image) {
            size_t hi = n_order;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (strcmp(out->images.items[order[mid]].image, s->image) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo < n_order && strcmp(out->images.items[order[lo]].image, s->image) == 0)
                img = order[lo];
        }
        if (img == out->images.n) {
            if (limit && out->images.n >= limit) continue;
            if (s->image) {
                size_t *no = realloc(order, (n_order + 1) * sizeof *no);
                if (!no) {
                    st = dlv_error_nomem("image index", (n_order + 1) * sizeof *no);
                    break;
                }
                order = no;
                memmove(order + lo + 1, order + lo, (n_order - lo) * sizeof *order);
                order[lo] = img;
                n_order++;
            }
            dlv_sample im = {0};
            im.image = s->image;
            im.image_data = s->image_data;
            im.image_size = s->image_size;
            im.where = s->where;
            s->image = NULL;
            s->image_data = NULL;
            s->where = NULL;
            if ((st = dlv_dataset_push(&out->images, &im)) != DLV_OK) break;
        }
        st = add_text(out, &cap, s->caption, (uint32_t)img);
    }
    free(order);
    dlv_dataset_free(&ds);
    if (st == DLV_OK && out->images.n == 0) st = dlv_error(DLV_E_FORMAT, "%s: no samples", path);
    if (st != DLV_OK) dlv_retrieval_set_free(out);
    return st;
}

/* ---- SugarCrepe --------------------------------------------------------- */

void dlv_pair_set_free(dlv_pair_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].id);
        free(s->items[i].image);
        free(s->items[i].pos);
        free(s->items[i].neg);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}

dlv_status dlv_sugarcrepe_read(const char *path, const char *img_root, size_t limit,
                               dlv_pair_set *out)
{
    memset(out, 0, sizeof *out);
    dlv_status st;
    json_t *root = load_json(path, &st);
    if (!root) return st;
    if (!json_is_object(root)) {
        json_decref(root);
        return dlv_error(DLV_E_FORMAT,
                         "%s: not a JSON object (SugarCrepe: {id: {\"filename\", \"caption\", "
                         "\"negative_caption\"}})",
                         path);
    }
    size_t n = json_object_size(root);
    if (limit && limit < n) n = limit;
    out->items = calloc(n ? n : 1, sizeof *out->items);
    if (!out->items) {
        json_decref(root);
        return dlv_error_nomem("SugarCrepe items", n * sizeof *out->items);
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (out->n >= n) break;
        char what[96];
        snprintf(what, sizeof what, "\"%.60s\"", key);
        if (!json_is_object(v)) {
            st = dlv_error(DLV_E_FORMAT, "%s: %s is not an object", path, what);
            break;
        }
        const char *f = member_str(v, "filename", path, what, &st), *c = NULL, *neg = NULL;
        if (!f || !(c = member_str(v, "caption", path, what, &st)) ||
            !(neg = member_str(v, "negative_caption", path, what, &st)))
            break;
        dlv_pair_item *it = &out->items[out->n++];
        it->id = strdup(key);
        it->image = dlv_resolve_path(img_root, f);
        it->pos = strdup(c);
        it->neg = strdup(neg);
        if (!it->id || !it->image || !it->pos || !it->neg) {
            st = dlv_error_nomem("SugarCrepe item", strlen(c) + strlen(neg));
            break;
        }
    }
    json_decref(root);
    if (st == DLV_OK && out->n == 0) st = dlv_error(DLV_E_FORMAT, "%s: no items", path);
    if (st != DLV_OK) dlv_pair_set_free(out);
    return st;
}

/* ---- Winoground --------------------------------------------------------- */

void dlv_wino_set_free(dlv_wino_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].id);
        for (int k = 0; k < 2; k++) {
            free(s->items[i].image[k]);
            free(s->items[i].caption[k]);
        }
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}

dlv_status dlv_winoground_read(const char *path, const char *img_root, size_t limit,
                               dlv_wino_set *out)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0, cap = 0, line = 0;
    dlv_status st = dlv_read_file(path, EVAL_JSON_MAX, &text, &len);
    if (st != DLV_OK) return st;
    char *p = text, *end = text + len;
    while (p < end && st == DLV_OK && (!limit || out->n < limit)) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        char *cur = p;
        p = nl ? nl + 1 : end;
        size_t blank = 0;
        while (blank < n && (cur[blank] == ' ' || cur[blank] == '\t' || cur[blank] == '\r'))
            blank++;
        if (blank == n) continue;
        json_error_t jerr;
        json_t *o = json_loadb(cur, n, JSON_REJECT_DUPLICATES, &jerr);
        char what[32];
        snprintf(what, sizeof what, "line %zu", line);
        if (!o || !json_is_object(o)) {
            st = dlv_error(DLV_E_FORMAT, "%s:%zu: %s", path, line,
                           o ? "not a JSON object" : jerr.text);
            json_decref(o);
            break;
        }
        if (out->n == cap) {
            size_t c = cap ? cap * 2 : 64;
            dlv_wino_entry *ni = realloc(out->items, c * sizeof *ni);
            if (!ni) {
                json_decref(o);
                st = dlv_error_nomem("Winoground items", c * sizeof *ni);
                break;
            }
            out->items = ni;
            cap = c;
        }
        dlv_wino_entry *e = &out->items[out->n++];
        memset(e, 0, sizeof *e);
        /* "id" is a number in the public file; accept a string too. */
        json_t *id = json_object_get(o, "id");
        char idbuf[32];
        if (id && json_is_integer(id))
            snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(id));
        else if (id && json_is_string(id))
            snprintf(idbuf, sizeof idbuf, "%.31s", json_string_value(id));
        else
            snprintf(idbuf, sizeof idbuf, "%zu", out->n - 1);
        e->id = strdup(idbuf);
        if (!e->id) st = dlv_error_nomem("id", sizeof idbuf);
        for (int k = 0; k < 2 && st == DLV_OK; k++) {
            char ik[8], ck[10];
            snprintf(ik, sizeof ik, "image_%d", k);
            snprintf(ck, sizeof ck, "caption_%d", k);
            const char *im = member_str(o, ik, path, what, &st), *c = NULL;
            if (!im || !(c = member_str(o, ck, path, what, &st))) break;
            size_t m = strlen(im);
            char *file = malloc(m + 5);
            if (file) {
                memcpy(file, im, m);
                memcpy(file + m, ".png", 5);
                e->image[k] = dlv_resolve_path(img_root, file);
                free(file);
            }
            e->caption[k] = strdup(c);
            if (!e->image[k] || !e->caption[k]) st = dlv_error_nomem("Winoground item", m + 5);
        }
        json_decref(o);
    }
    free(text);
    if (st == DLV_OK && out->n == 0) st = dlv_error(DLV_E_FORMAT, "%s: no items", path);
    if (st != DLV_OK) dlv_wino_set_free(out);
    return st;
}

/* ---- Zero-shot classification ------------------------------------------- */

dlv_status dlv_read_lines(const char *path, char ***out, size_t *n_out)
{
    char *text = NULL;
    size_t len = 0, n = 0, cap = 0;
    char **lines = NULL;
    *out = NULL;
    *n_out = 0;
    dlv_status st = dlv_read_file(path, (size_t)64 << 20, &text, &len);
    if (st != DLV_OK) return st;
    char *p = text, *end = text + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        if (stop > p && stop[-1] == '\r') stop--;
        int blank = 1;
        for (char *q = p; q < stop && blank; q++) blank = *q == ' ' || *q == '\t';
        if (!blank) {
            if (memchr(p, '\0', (size_t)(stop - p))) {
                st = dlv_error(DLV_E_FORMAT, "%s: line %zu contains a NUL byte", path, n + 1);
                break;
            }
            if (n == cap) {
                size_t c = cap ? cap * 2 : 64;
                char **nl2 = realloc(lines, c * sizeof *nl2);
                if (!nl2) {
                    st = dlv_error_nomem("lines", c * sizeof *nl2);
                    break;
                }
                lines = nl2;
                cap = c;
            }
            size_t k = (size_t)(stop - p);
            if (!(lines[n] = malloc(k + 1))) {
                st = dlv_error_nomem("line", k + 1);
                break;
            }
            memcpy(lines[n], p, k);
            lines[n++][k] = '\0';
        }
        p = next;
    }
    free(text);
    if (st == DLV_OK && n == 0) st = dlv_error(DLV_E_FORMAT, "%s: no lines", path);
    if (st != DLV_OK) {
        dlv_free_strings(lines, n);
        return st;
    }
    *out = lines;
    *n_out = n;
    return DLV_OK;
}

dlv_status dlv_read_templates(const char *path, char ***out, size_t *n)
{
    dlv_status st = dlv_read_lines(path, out, n);
    if (st != DLV_OK) return st;
    for (size_t i = 0; i < *n; i++)
        if (!strstr((*out)[i], "{}") && !strstr((*out)[i], "{c}")) {
            st = dlv_error(DLV_E_FORMAT,
                           "%s: template %zu (\"%s\") has no \"{}\" for the class name", path,
                           i + 1, (*out)[i]);
            dlv_free_strings(*out, *n);
            *out = NULL;
            *n = 0;
            return st;
        }
    return DLV_OK;
}

char *dlv_fill_template(const char *tmpl, const char *name)
{
    size_t nl = strlen(name), cap = strlen(tmpl) + 1, k = 0;
    for (const char *p = tmpl; (p = strchr(p, '{')); p++) cap += nl;
    char *r = malloc(cap);
    if (!r) return NULL;
    for (const char *p = tmpl; *p;) {
        size_t ph = strncmp(p, "{}", 2) == 0 ? 2 : strncmp(p, "{c}", 3) == 0 ? 3 : 0;
        if (ph) {
            memcpy(r + k, name, nl);
            k += nl;
            p += ph;
        } else
            r[k++] = *p++;
    }
    r[k] = '\0';
    return r;
}

void dlv_class_set_free(dlv_class_set *s)
{
    if (!s) return;
    dlv_free_strings(s->names, s->n_cls);
    dlv_free_strings(s->images, s->n);
    free(s->label);
    memset(s, 0, sizeof *s);
}

static dlv_status add_example(dlv_class_set *s, size_t *cap, char *path, uint32_t label)
{
    if (!path) return dlv_error_nomem("example path", 0);
    if (s->n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        char **ni = realloc(s->images, c * sizeof *ni);
        if (!ni) {
            free(path);
            return dlv_error_nomem("examples", c * sizeof *ni);
        }
        s->images = ni;
        uint32_t *nl = realloc(s->label, c * sizeof *nl);
        if (!nl) {
            free(path);
            return dlv_error_nomem("examples", c * sizeof *nl);
        }
        s->label = nl;
        *cap = c;
    }
    s->images[s->n] = path;
    s->label[s->n++] = label;
    return DLV_OK;
}

static int is_image_name(const char *n)
{
    const char *dot = strrchr(n, '.');
    return n[0] != '.' && dot &&
           (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
            strcasecmp(dot, ".png") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static dlv_status read_class_folder(const char *root, dlv_class_set *s, size_t *cap)
{
    for (size_t c = 0; c < s->n_cls; c++) {
        char *dir = dlv_path_join(root, s->names[c]);
        if (!dir) return dlv_error_nomem("path", strlen(root) + strlen(s->names[c]) + 2);
        DIR *d = opendir(dir);
        if (!d) {
            dlv_status st = dlv_error(DLV_E_IO, "%s: no folder for class %zu ('%s')", dir, c,
                                      s->names[c]);
            free(dir);
            return st;
        }
        char **names = NULL;
        size_t n = 0, ncap = 0;
        dlv_status st = DLV_OK;
        struct dirent *ent;
        while ((ent = readdir(d))) {
            if (!is_image_name(ent->d_name)) continue;
            if (n == ncap) {
                size_t k = ncap ? ncap * 2 : 64;
                char **nn = realloc(names, k * sizeof *nn);
                if (!nn) {
                    st = dlv_error_nomem("file names", k * sizeof *nn);
                    break;
                }
                names = nn;
                ncap = k;
            }
            if (!(names[n] = strdup(ent->d_name))) {
                st = dlv_error_nomem("file name", strlen(ent->d_name) + 1);
                break;
            }
            n++;
        }
        closedir(d);
        if (st == DLV_OK && n) qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n && st == DLV_OK; i++)
            st = add_example(s, cap, dlv_path_join(dir, names[i]), (uint32_t)c);
        dlv_free_strings(names, n);
        free(dir);
        if (st != DLV_OK) return st;
    }
    return DLV_OK;
}

static dlv_status read_class_csv(const char *path, const char *img_root, dlv_class_set *s,
                                 size_t *cap)
{
    dlv_table t;
    dlv_status st = dlv_table_read(path, ends_with(path, ".tsv") ? '\t' : ',', &t);
    if (st != DLV_OK) return st;
    long cf = dlv_table_column(&t, "filepath"), cl = dlv_table_column(&t, "label");
    char *base = img_root ? strdup(img_root) : dlv_dirname(path);
    if (cf < 0 || cl < 0)
        st = dlv_error(DLV_E_FORMAT, "%s: no column '%s' in the header", path,
                       cf < 0 ? "filepath" : "label");
    else if (!base)
        st = dlv_error_nomem("path", strlen(path));
    for (size_t r = 0; r < t.n_rows && st == DLV_OK; r++) {
        const char *f = t.cells[r * t.n_cols + (size_t)cf];
        const char *l = t.cells[r * t.n_cols + (size_t)cl];
        size_t label = s->n_cls;
        for (size_t c = 0; c < s->n_cls && label == s->n_cls; c++)
            if (strcmp(s->names[c], l) == 0) label = c;
        if (label == s->n_cls && *l) {
            char *end;
            unsigned long long v = strtoull(l, &end, 10);
            if (*end == '\0' && l[0] >= '0' && l[0] <= '9' && v < s->n_cls) label = (size_t)v;
        }
        if (label == s->n_cls) {
            st = dlv_error(DLV_E_FORMAT,
                           "%s:%zu: label '%s' is neither a class name nor an index below %zu",
                           path, t.line[r], l, s->n_cls);
            break;
        }
        if (!*f) {
            st = dlv_error(DLV_E_FORMAT, "%s:%zu: empty filepath", path, t.line[r]);
            break;
        }
        st = add_example(s, cap, dlv_resolve_path(base, f), (uint32_t)label);
    }
    free(base);
    dlv_table_free(&t);
    return st;
}

dlv_status dlv_class_set_read(const char *data, const char *names_path, const char *img_root,
                              size_t limit, dlv_class_set *out)
{
    memset(out, 0, sizeof *out);
    dlv_status st = dlv_read_lines(names_path, &out->names, &out->n_cls);
    if (st != DLV_OK) return st;
    for (size_t i = 0; i < out->n_cls; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->names[i], out->names[j]) == 0) {
                st = dlv_error(DLV_E_FORMAT, "%s: class '%s' is listed twice (lines %zu, %zu)",
                               names_path, out->names[i], j + 1, i + 1);
                dlv_class_set_free(out);
                return st;
            }
    size_t cap = 0;
    if (dlv_is_dir(data))
        st = read_class_folder(data, out, &cap);
    else
        st = read_class_csv(data, img_root, out, &cap);
    if (st == DLV_OK && out->n == 0) st = dlv_error(DLV_E_FORMAT, "%s: no examples", data);
    if (st == DLV_OK && limit && limit < out->n) {
        /* Keep limit examples spread evenly: index floor(k * n / limit). */
        for (size_t k = 0; k < limit; k++) {
            size_t src = (size_t)((unsigned long long)k * out->n / limit);
            if (src == k) continue;
            free(out->images[k]);
            out->images[k] = out->images[src];
            out->images[src] = NULL;
            out->label[k] = out->label[src];
        }
        for (size_t k = limit; k < out->n; k++) free(out->images[k]);
        out->n = limit;
    }
    if (st != DLV_OK) dlv_class_set_free(out);
    return st;
}
