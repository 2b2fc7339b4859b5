/* CSV / TSV tables (RFC 4180 quoting) and the CSV image-caption dataset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "data/dataset.h"

/* Data files up to 4 GiB. */
#define TABLE_MAX_BYTES ((size_t)4 << 30)

typedef struct cellvec {
    char **v;
    size_t n, cap;
} cellvec;

static int cellvec_add(cellvec *c, char *s)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        char **p = realloc(c->v, cap * sizeof *p);
        if (!p) return 0;
        c->v = p;
        c->cap = cap;
    }
    c->v[c->n++] = s;
    return 1;
}

/* The length of the line end at text[i]: "\n" or "\r\n", or a lone "\r"
 * as the file's last byte; 0 if there is none. */
static size_t eol(const char *text, size_t i, size_t len)
{
    if (text[i] == '\n') return 1;
    if (text[i] == '\r' && (i + 1 == len || text[i + 1] == '\n')) return i + 1 == len ? 1 : 2;
    return 0;
}

void dlv_table_free(dlv_table *t)
{
    if (!t) return;
    dlv_free_strings(t->header, t->n_cols);
    dlv_free_strings(t->cells, t->n_cols * t->n_rows);
    free(t->line);
    memset(t, 0, sizeof *t);
}

long dlv_table_column(const dlv_table *t, const char *name)
{
    for (size_t i = 0; i < t->n_cols; i++)
        if (strcmp(t->header[i], name) == 0) return (long)i;
    return -1;
}

dlv_status dlv_table_parse(const char *name, const char *text, size_t len, char sep,
                           dlv_table *t)
{
    memset(t, 0, sizeof *t);
    cellvec cells = {NULL, 0, 0};
    size_t *lines = NULL, n_lines_cap = 0, n_rows = 0; /* rows including the header */
    size_t width = 0, row_fields = 0, line = 1, row_line = 1;
    char *field = malloc(len + 1); /* scratch: one field never exceeds the input */
    dlv_status st = DLV_OK;
    if (!field) return dlv_error_nomem("CSV field", len + 1);
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) i = 3;
    while (i < len) {
        /* An empty line (outside quotes) is skipped. */
        if (row_fields == 0 && eol(text, i, len)) {
            i += eol(text, i, len);
            line++;
            continue;
        }
        if (row_fields == 0) row_line = line;
        /* One field. */
        size_t k = 0;
        if (text[i] == '"') {
            size_t open_line = line;
            i++;
            for (;;) {
                if (i >= len) {
                    st = dlv_error(DLV_E_FORMAT, "%s:%zu: unterminated quoted field", name,
                                   open_line);
                    goto fail;
                }
                if (text[i] == '"') {
                    if (i + 1 < len && text[i + 1] == '"') {
                        field[k++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (text[i] == '\n') line++;
                field[k++] = text[i++];
            }
            if (i < len && text[i] != sep && !eol(text, i, len)) {
                st = dlv_error(DLV_E_FORMAT,
                               "%s:%zu: text after the closing quote of a field (a quote "
                               "inside a quoted field is written \"\")",
                               name, line);
                goto fail;
            }
        } else {
            while (i < len && text[i] != sep && !eol(text, i, len)) {
                if (text[i] == '"') {
                    st = dlv_error(DLV_E_FORMAT,
                                   "%s:%zu: a quote inside an unquoted field (quote the whole "
                                   "field and write the quote as \"\")",
                                   name, line);
                    goto fail;
                }
                field[k++] = text[i++];
            }
        }
        char *cell = malloc(k + 1);
        if (!cell || !cellvec_add(&cells, cell)) {
            free(cell);
            st = dlv_error_nomem("CSV cell", k + 1);
            goto fail;
        }
        memcpy(cell, field, k);
        cell[k] = '\0';
        row_fields++;
        /* What ends the field: a separator, or the end of the row. */
        if (i < len && text[i] == sep) {
            i++;
            if (i < len && !eol(text, i, len)) continue;
            /* A separator just before the line end: one more, empty, field. */
            char *e = calloc(1, 1);
            if (!e || !cellvec_add(&cells, e)) {
                free(e);
                st = dlv_error_nomem("CSV cell", 1);
                goto fail;
            }
            row_fields++;
        }
        i += eol(text, i, len);
        /* End of a row. */
        if (n_rows == 0)
            width = row_fields;
        else if (row_fields != width) {
            st = dlv_error(DLV_E_FORMAT, "%s:%zu: %zu fields where the header has %zu", name,
                           row_line, row_fields, width);
            goto fail;
        }
        if (n_rows == n_lines_cap) {
            size_t c = n_lines_cap ? n_lines_cap * 2 : 64;
            size_t *p = realloc(lines, c * sizeof *p);
            if (!p) {
                st = dlv_error_nomem("CSV rows", c * sizeof *p);
                goto fail;
            }
            lines = p;
            n_lines_cap = c;
        }
        lines[n_rows++] = row_line;
        row_fields = 0;
        line++;
    }
    if (n_rows == 0) {
        st = dlv_error(DLV_E_FORMAT, "%s: empty (no header row)", name);
        goto fail;
    }
    free(field);
    t->n_cols = width;
    t->n_rows = n_rows - 1;
    t->header = malloc(width * sizeof *t->header);
    t->cells = malloc((cells.n - width + 1) * sizeof *t->cells);
    if (!t->header || !t->cells) {
        free(t->header);
        free(t->cells);
        t->header = t->cells = NULL;
        dlv_free_strings(cells.v, cells.n);
        free(lines);
        memset(t, 0, sizeof *t);
        return dlv_error_nomem("CSV table", cells.n * sizeof(char *));
    }
    memcpy(t->header, cells.v, width * sizeof *t->header);
    memcpy(t->cells, cells.v + width, (cells.n - width) * sizeof *t->cells);
    free(cells.v);
    memmove(lines, lines + 1, (n_rows - 1) * sizeof *lines);
    t->line = lines;
    return DLV_OK;
fail:
    free(field);
    dlv_free_strings(cells.v, cells.n);
    free(lines);
    return st;
}

dlv_status dlv_table_read(const char *path, char sep, dlv_table *t)
{
    char *text = NULL;
    size_t len = 0;
    memset(t, 0, sizeof *t);
    dlv_status st = dlv_read_file(path, TABLE_MAX_BYTES, &text, &len);
    if (st != DLV_OK) return st;
    st = dlv_table_parse(path, text, len, sep, t);
    free(text);
    return st;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static char *where_line(const char *path, size_t line)
{
    size_t n = strlen(path) + 24;
    char *w = malloc(n);
    if (w) snprintf(w, n, "%s:%zu", path, line);
    return w;
}

dlv_status dlv_dataset_read_csv(const char *path, const dlv_dataset_options *o,
                                dlv_dataset *ds)
{
    dlv_dataset_options d = DLV_DATASET_OPTIONS_INIT;
    if (!o) o = &d;
    char sep = o->sep ? o->sep : ends_with(path, ".tsv") ? '\t' : ',';
    const char *img_name = o->image_col ? o->image_col : "filepath";
    const char *cap_name = o->caption_col ? o->caption_col : "title";
    dlv_table t;
    dlv_status st = dlv_table_read(path, sep, &t);
    if (st != DLV_OK) return st;
    long ci = dlv_table_column(&t, img_name), cc = dlv_table_column(&t, cap_name);
    long cl = o->long_col ? dlv_table_column(&t, o->long_col) : -1;
    char *base = o->base_dir ? strdup(o->base_dir) : dlv_dirname(path);
    if (ci < 0 || cc < 0 || (o->long_col && cl < 0)) {
        st = dlv_error(DLV_E_FORMAT, "%s: no column '%s' in the header", path,
                       ci < 0 ? img_name : cc < 0 ? cap_name : o->long_col);
        goto done;
    }
    if (!base) {
        st = dlv_error_nomem("path", strlen(path));
        goto done;
    }
    for (size_t r = 0; r < t.n_rows && (!o->limit || ds->n < o->limit); r++) {
        char **row = t.cells + r * t.n_cols;
        if (!row[ci][0]) {
            st = dlv_error(DLV_E_FORMAT, "%s:%zu: empty '%s'", path, t.line[r], img_name);
            goto done;
        }
        dlv_sample s = {0};
        s.image = dlv_resolve_path(base, row[ci]);
        s.caption = strdup(row[cc]);
        s.long_caption = cl >= 0 ? strdup(row[cl]) : NULL;
        s.where = where_line(path, t.line[r]);
        if (!s.image || !s.caption || (cl >= 0 && !s.long_caption) || !s.where) {
            dlv_sample_clear(&s);
            st = dlv_error_nomem("CSV sample", strlen(row[ci]) + strlen(row[cc]));
            goto done;
        }
        if ((st = dlv_dataset_push(ds, &s)) != DLV_OK) goto done;
    }
done:
    free(base);
    dlv_table_free(&t);
    return st;
}
