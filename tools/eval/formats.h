/* The evaluation data formats users bring (docs/evaluation.md):
 *  - retrieval: the Karpathy-split JSON of COCO / Flickr30k, or any
 *    image-caption dataset of tools/data (JSONL, CSV/TSV, WebDataset), whose
 *    samples with the same image path become one image with several
 *    captions;
 *  - SugarCrepe: {id: {"filename", "caption", "negative_caption"}};
 *  - Winoground: JSONL {"id", "image_0", "image_1", "caption_0",
 *    "caption_1"}, images at IMG_ROOT/<image_x>.png;
 *  - zero-shot classification: class names (one a line), prompt templates
 *    (one a line, "{}" or "{c}" stands for the class name), and examples
 *    from a folder (one subfolder per class) or a CSV (filepath,label).
 * Every error names the file and the entry. */
#ifndef DLV_EVAL_FORMATS_H
#define DLV_EVAL_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "disclvlm.h"

/* ---- Retrieval ---------------------------------------------------------- */

typedef struct dlv_retrieval_set {
    dlv_dataset images; /* image / image_data of each image (captions unused) */
    char **texts;       /* n_txt captions */
    uint32_t *txt_img;  /* the image of each caption */
    size_t n_txt;
} dlv_retrieval_set;

/* Karpathy JSON: the images whose "split" is split (NULL: every image),
 * at most limit of them (0: all), with the "raw" text of every sentence.
 * Image paths are img_root/filepath/filename (filepath when present). */
dlv_status dlv_karpathy_read(const char *path, const char *split, const char *img_root,
                             size_t limit, dlv_retrieval_set *out);
/* Any tools/data dataset; at most limit images (0: all). img_root as the
 * dataset's base_dir (NULL: the data file's folder). */
dlv_status dlv_retrieval_from_dataset(const char *path, const char *img_root, size_t limit,
                                      dlv_retrieval_set *out);
void dlv_retrieval_set_free(dlv_retrieval_set *r);

/* ---- SugarCrepe --------------------------------------------------------- */

typedef struct dlv_pair_item {
    char *id, *image, *pos, *neg;
} dlv_pair_item;

typedef struct dlv_pair_set {
    dlv_pair_item *items;
    size_t n;
} dlv_pair_set;

dlv_status dlv_sugarcrepe_read(const char *path, const char *img_root, size_t limit,
                               dlv_pair_set *out);
void dlv_pair_set_free(dlv_pair_set *s);

/* ---- Winoground --------------------------------------------------------- */

typedef struct dlv_wino_entry {
    char *id;
    char *image[2];
    char *caption[2];
} dlv_wino_entry;

typedef struct dlv_wino_set {
    dlv_wino_entry *items;
    size_t n;
} dlv_wino_set;

dlv_status dlv_winoground_read(const char *path, const char *img_root, size_t limit,
                               dlv_wino_set *out);
void dlv_wino_set_free(dlv_wino_set *s);

/* ---- Zero-shot classification ------------------------------------------- */

typedef struct dlv_class_set {
    char **names;      /* n_cls class names */
    size_t n_cls;
    char **images;     /* n example image paths */
    uint32_t *label;   /* n labels (< n_cls) */
    size_t n;
} dlv_class_set;

/* Non-empty lines of a text file (a final newline, CRs before newlines
 * and a UTF-8 BOM dropped; blank lines skipped). An empty list is an
 * error. */
dlv_status dlv_read_lines(const char *path, char ***out, size_t *n);

/* names: the class list. data: a folder (one subfolder per class, named as
 * the class; .jpg .jpeg .png files, sorted by name; a missing subfolder is
 * an error, other subfolders are ignored) or a CSV/TSV with the columns
 * filepath and label (label: a class name, or else a 0-based index into
 * names; relative paths against img_root, or the CSV's folder). limit > 0
 * keeps limit examples spread evenly over the list. */
dlv_status dlv_class_set_read(const char *data, const char *names_path, const char *img_root,
                              size_t limit, dlv_class_set *out);
void dlv_class_set_free(dlv_class_set *s);

/* Prompt templates, one a line (as dlv_read_lines); each must hold "{}" or
 * "{c}" (an error naming the line otherwise). */
dlv_status dlv_read_templates(const char *path, char ***out, size_t *n);

/* The prompt for one class: tmpl with every "{}" and "{c}" replaced by
 * name. Heap; NULL on allocation failure. */
char *dlv_fill_template(const char *tmpl, const char *name);

#endif
