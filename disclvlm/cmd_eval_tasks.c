/* disclvlm eval retrieval / sugarcrepe / winoground / classify. The data are
 * read (and checked) before the model is loaded, so a bad file fails fast. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/formats.h"
#include "eval/metrics.h"
#include "eval_cli.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static const size_t KS[3] = {1, 5, 10};

/* --images, else the data file's folder (as --help says), in buf. */
static const char *image_root(const eval_ctx *c, const char *data, char *buf, size_t cap)
{
    if (c->images) return c->images;
    const char *slash = strrchr(data, '/');
    if (!slash) return ".";
    size_t n = (size_t)(slash - data);
    if (n == 0) return "/";
    if (n >= cap) n = cap - 1;
    memcpy(buf, data, n);
    buf[n] = '\0';
    return buf;
}

/* ---- retrieval ---------------------------------------------------------- */

int eval_retrieval(eval_ctx *c)
{
    dlv_retrieval_set r;
    const char *data = c->data[0];
    char root[4096];
    dlv_status st = ends_with(data, ".json")
                        ? dlv_karpathy_read(data, c->split, image_root(c, data, root, sizeof root),
                                            c->limit, &r)
                        : dlv_retrieval_from_dataset(data, c->images, c->limit, &r);
    if (st != DLV_OK) return eval_fail(c);
    size_t n_img = r.images.n, n_txt = r.n_txt;
    float *img = NULL, *txt = NULL, *scores = NULL;
    size_t *i2t = NULL, *t2i = NULL;
    json_t *out = NULL;
    int rc = eval_open(c);
    if (rc) goto done;
    if (!(img = eval_alloc(c, n_img, c->dim)) || !(txt = eval_alloc(c, n_txt, c->dim)) ||
        !(scores = eval_alloc(c, n_img, n_txt))) {
        rc = 1;
        goto done;
    }
    if ((rc = eval_encode_images(c, r.images.items, n_img, img)) ||
        (rc = eval_encode_texts(c, (const char *const *)r.texts, n_txt, txt)))
        goto done;
    /* One GEMM for the whole score matrix. */
    if (dlv_score(c->session, img, n_img, txt, n_txt, c->dim, scores, n_img * n_txt) != DLV_OK) {
        rc = eval_fail_api(c, "scoring");
        goto done;
    }
    i2t = malloc(n_img * sizeof *i2t);
    t2i = malloc(n_txt * sizeof *t2i);
    if (!i2t || !t2i) {
        rc = eval_failf(c, "out of memory");
        goto done;
    }
    if (dlv_eval_retrieval_ranks(scores, n_img, n_txt, r.txt_img, i2t, t2i) != DLV_OK) {
        rc = eval_fail(c);
        goto done;
    }
    double ri[3], rt[3];
    for (int k = 0; k < 3; k++) {
        ri[k] = dlv_eval_recall_at(i2t, n_img, KS[k]);
        rt[k] = dlv_eval_recall_at(t2i, n_txt, KS[k]);
    }
    if (c->json) {
        out = json_object();
        if ((rc = eval_json_header(c, out))) goto done;
        json_object_set_new(out, "split", ends_with(data, ".json") ? json_string(c->split)
                                                                   : json_null());
        json_object_set_new(out, "counts", json_pack("{s:I, s:I}", "images", (json_int_t)n_img,
                                                     "texts", (json_int_t)n_txt));
        json_t *m = json_object();
        const char *names[2] = {"image_to_text", "text_to_image"};
        for (int w = 0; w < 2; w++) {
            const double *v = w ? rt : ri;
            json_object_set_new(m, names[w], json_pack("{s:f, s:f, s:f}", "R@1", v[0], "R@5", v[1],
                                                       "R@10", v[2]));
        }
        json_object_set_new(out, "metrics", m);
        rc = eval_json_print(out);
        out = NULL;
    } else {
        printf("retrieval: %s%s%s, %zu images, %zu texts\n", data,
               ends_with(data, ".json") ? ", split " : "",
               ends_with(data, ".json") ? c->split : "", n_img, n_txt);
        printf("%-16s %7s %7s %7s\n", "direction", "R@1", "R@5", "R@10");
        printf("%-16s %7.2f %7.2f %7.2f\n", "image -> text", ri[0], ri[1], ri[2]);
        printf("%-16s %7.2f %7.2f %7.2f\n", "text -> image", rt[0], rt[1], rt[2]);
    }
done:
    json_decref(out);
    free(i2t);
    free(t2i);
    free(scores);
    free(img);
    free(txt);
    dlv_retrieval_set_free(&r);
    return rc;
}

/* ---- sugarcrepe --------------------------------------------------------- */

int eval_sugarcrepe(eval_ctx *c)
{
    size_t n_sets = c->n_data;
    dlv_pair_set *sets = calloc(n_sets, sizeof *sets);
    size_t *wins = calloc(n_sets, sizeof *wins);
    json_t *out = NULL;
    int rc = 0;
    if (!sets || !wins) {
        free(sets);
        free(wins);
        return eval_failf(c, "out of memory");
    }
    for (size_t s = 0; s < n_sets && !rc; s++)
    {
        char root[4096];
        if (dlv_sugarcrepe_read(c->data[s], image_root(c, c->data[s], root, sizeof root),
                                c->limit, &sets[s]) != DLV_OK)
            rc = eval_fail(c);
    }
    if (rc || (rc = eval_open(c))) goto done;
    for (size_t s = 0; s < n_sets && !rc; s++) {
        size_t n = sets[s].n;
        const char **paths = malloc(n * sizeof *paths), **texts = malloc(2 * n * sizeof *texts);
        float *img = eval_alloc(c, n, c->dim), *txt = eval_alloc(c, 2 * n, c->dim);
        float *pos = malloc(n * sizeof *pos), *neg = malloc(n * sizeof *neg);
        if (!paths || !texts || !img || !txt || !pos || !neg)
            rc = eval_failf(c, "out of memory");
        for (size_t i = 0; i < n && !rc; i++) {
            paths[i] = sets[s].items[i].image;
            texts[2 * i] = sets[s].items[i].pos;
            texts[2 * i + 1] = sets[s].items[i].neg;
        }
        if (!rc) rc = eval_encode_paths(c, paths, n, img);
        if (!rc) rc = eval_encode_texts(c, texts, 2 * n, txt);
        for (size_t i = 0; i < n && !rc; i++) {
            pos[i] = (float)eval_dot(img + i * c->dim, txt + 2 * i * c->dim, c->dim);
            neg[i] = (float)eval_dot(img + i * c->dim, txt + (2 * i + 1) * c->dim, c->dim);
        }
        if (!rc && dlv_eval_pair_wins(pos, neg, n, &wins[s]) != DLV_OK) rc = eval_fail(c);
        free(paths);
        free(texts);
        free(img);
        free(txt);
        free(pos);
        free(neg);
    }
    if (rc) goto done;
    if (c->json) {
        out = json_object();
        if ((rc = eval_json_header(c, out))) goto done;
        json_t *subsets = json_array();
        for (size_t s = 0; s < n_sets; s++)
            json_array_append_new(
                subsets, json_pack("{s:s, s:I, s:I, s:f}", "data", c->data[s], "items",
                                   (json_int_t)sets[s].n, "correct", (json_int_t)wins[s],
                                   "accuracy", 100.0 * (double)wins[s] / (double)sets[s].n));
        json_object_set_new(out, "subsets", subsets);
        rc = eval_json_print(out);
        out = NULL;
    } else {
        size_t w = 6;
        for (size_t s = 0; s < n_sets; s++)
            if (strlen(c->data[s]) > w) w = strlen(c->data[s]);
        printf("%-*s %7s %8s\n", (int)w, "subset", "items", "accuracy");
        for (size_t s = 0; s < n_sets; s++)
            printf("%-*s %7zu %8.2f\n", (int)w, c->data[s], sets[s].n,
                   100.0 * (double)wins[s] / (double)sets[s].n);
    }
done:
    json_decref(out);
    for (size_t s = 0; s < n_sets; s++) dlv_pair_set_free(&sets[s]);
    free(sets);
    free(wins);
    return rc;
}

/* ---- winoground --------------------------------------------------------- */

int eval_winoground(eval_ctx *c)
{
    dlv_wino_set w;
    char root[4096];
    if (dlv_winoground_read(c->data[0], image_root(c, c->data[0], root, sizeof root), c->limit,
                            &w) != DLV_OK)
        return eval_fail(c);
    size_t n = w.n;
    const char **paths = malloc(2 * n * sizeof *paths), **texts = malloc(2 * n * sizeof *texts);
    dlv_wino_item *items = malloc(n * sizeof *items);
    float *img = NULL, *txt = NULL;
    json_t *out = NULL;
    int rc = 0;
    if (!paths || !texts || !items) {
        rc = eval_failf(c, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            paths[2 * i + (size_t)k] = w.items[i].image[k];
            texts[2 * i + (size_t)k] = w.items[i].caption[k];
        }
    if ((rc = eval_open(c))) goto done;
    if (!(img = eval_alloc(c, 2 * n, c->dim)) || !(txt = eval_alloc(c, 2 * n, c->dim))) {
        rc = 1;
        goto done;
    }
    if ((rc = eval_encode_paths(c, paths, 2 * n, img)) ||
        (rc = eval_encode_texts(c, texts, 2 * n, txt)))
        goto done;
    for (size_t i = 0; i < n; i++)
        for (int cc = 0; cc < 2; cc++)
            for (int ii = 0; ii < 2; ii++)
                items[i].s[cc][ii] = (float)eval_dot(txt + (2 * i + (size_t)cc) * c->dim,
                                                     img + (2 * i + (size_t)ii) * c->dim, c->dim);
    dlv_wino_result res;
    if (dlv_eval_winoground(items, n, &res) != DLV_OK) {
        rc = eval_fail(c);
        goto done;
    }
    double t = 100.0 * (double)res.text / (double)n, im = 100.0 * (double)res.image / (double)n,
           g = 100.0 * (double)res.group / (double)n;
    if (c->json) {
        out = json_object();
        if ((rc = eval_json_header(c, out))) goto done;
        json_object_set_new(out, "counts", json_pack("{s:I}", "items", (json_int_t)n));
        json_object_set_new(out, "metrics",
                            json_pack("{s:f, s:f, s:f}", "text", t, "image", im, "group", g));
        rc = eval_json_print(out);
        out = NULL;
    } else {
        printf("winoground: %s, %zu items\n", c->data[0], n);
        printf("%-8s %7s\n", "score", "%");
        printf("%-8s %7.2f\n%-8s %7.2f\n%-8s %7.2f\n", "text", t, "image", im, "group", g);
    }
done:
    json_decref(out);
    free(img);
    free(txt);
    free(items);
    free(paths);
    free(texts);
    dlv_wino_set_free(&w);
    return rc;
}

/* ---- classify ----------------------------------------------------------- */

int eval_classify(eval_ctx *c)
{
    dlv_class_set cs;
    char **tpl = NULL;
    size_t n_tpl = 0;
    static const char *default_tpl = "a photo of a {}.";
    if (dlv_class_set_read(c->data[0], c->classes, c->images, c->limit, &cs) != DLV_OK)
        return eval_fail(c);
    if (c->templates && dlv_read_templates(c->templates, &tpl, &n_tpl) != DLV_OK) {
        dlv_class_set_free(&cs);
        return eval_fail(c);
    }
    const char *const *tpls = tpl ? (const char *const *)tpl : &default_tpl;
    if (!tpl) n_tpl = 1;
    size_t n_prompts = cs.n_cls * n_tpl;
    char **prompts = calloc(n_prompts, sizeof *prompts);
    float *temb = NULL, *cemb = NULL, *img = NULL, *logits = NULL;
    size_t *rank = NULL;
    json_t *out = NULL;
    int rc = 0;
    if (!prompts) {
        rc = eval_failf(c, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < cs.n_cls && !rc; k++)
        for (size_t t = 0; t < n_tpl && !rc; t++)
            if (!(prompts[k * n_tpl + t] = dlv_fill_template(tpls[t], cs.names[k])))
                rc = eval_failf(c, "out of memory");
    if (rc || (rc = eval_open(c))) goto done;
    if (!(temb = eval_alloc(c, n_prompts, c->dim)) || !(cemb = eval_alloc(c, cs.n_cls, c->dim)) ||
        !(img = eval_alloc(c, cs.n, c->dim)) || !(logits = eval_alloc(c, cs.n, cs.n_cls))) {
        rc = 1;
        goto done;
    }
    if (!(rank = malloc(cs.n * sizeof *rank))) {
        rc = eval_failf(c, "out of memory");
        goto done;
    }
    if ((rc = eval_encode_texts(c, (const char *const *)prompts, n_prompts, temb)) ||
        (rc = eval_encode_paths(c, (const char *const *)cs.images, cs.n, img)))
        goto done;
    if (dlv_eval_class_embeddings(temb, cs.n_cls, n_tpl, c->dim, cemb) != DLV_OK) {
        rc = eval_fail(c);
        goto done;
    }
    if (dlv_score(c->session, img, cs.n, cemb, cs.n_cls, c->dim, logits, cs.n * cs.n_cls) !=
        DLV_OK) {
        rc = eval_fail_api(c, "scoring");
        goto done;
    }
    if (dlv_eval_class_ranks(logits, cs.n, cs.n_cls, cs.label, rank) != DLV_OK) {
        rc = eval_fail(c);
        goto done;
    }
    double top1 = dlv_eval_recall_at(rank, cs.n, 1), top5 = dlv_eval_recall_at(rank, cs.n, 5);
    if (c->json) {
        out = json_object();
        if ((rc = eval_json_header(c, out))) goto done;
        json_t *ta = json_array();
        for (size_t t = 0; t < n_tpl; t++) json_array_append_new(ta, json_string(tpls[t]));
        json_object_set_new(out, "templates", ta);
        json_object_set_new(out, "counts", json_pack("{s:I, s:I}", "examples", (json_int_t)cs.n,
                                                     "classes", (json_int_t)cs.n_cls));
        json_object_set_new(out, "metrics", json_pack("{s:f, s:f}", "top1", top1, "top5", top5));
        rc = eval_json_print(out);
        out = NULL;
    } else {
        printf("classify: %s, %zu examples, %zu classes, %zu template%s\n", c->data[0], cs.n,
               cs.n_cls, n_tpl, n_tpl == 1 ? "" : "s");
        printf("%-6s %7s\n%-6s %7.2f\n%-6s %7.2f\n", "metric", "%", "top-1", top1, "top-5",
               top5);
    }
done:
    json_decref(out);
    free(rank);
    free(logits);
    free(img);
    free(cemb);
    free(temb);
    if (prompts) dlv_free_strings(prompts, n_prompts);
    dlv_free_strings(tpl, n_tpl);
    dlv_class_set_free(&cs);
    return rc;
}
