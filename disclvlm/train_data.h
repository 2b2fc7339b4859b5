/* disclvlm train: the training examples and their order (train_data.c).
 * The data file is read with lib/data (compiled into the tool, see
 * eval_error.c); every example is checked before training starts (its
 * image decodes and preprocesses for the model, its caption is not
 * empty, its sequences fit the model's positions), so that the usable set, and with it the step -> batch mapping,
 * is fixed for the whole run and for every resumed run. */
#ifndef DISCLVLM_TRAIN_DATA_H
#define DISCLVLM_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "disclvlm.h"

/* One example the check refused. */
typedef struct train_bad {
    char *where;   /* "file:line" */
    char *reason;  /* "empty caption", "image: <library message>" */
} train_bad;

typedef struct train_data {
    dlv_dataset ds;      /* everything the file holds, in file order */
    size_t *good;        /* indices into ds.items of the usable examples */
    size_t n_good;
    train_bad *bad;      /* the refused ones, in file order */
    size_t n_bad;
} train_data;

#define TRAIN_DATA_INIT {DLV_DATASET_INIT, NULL, 0, NULL, 0}

/* What the check asks of the session: every caption's sequence (and, with
 * long_captions, every long caption's next-token sequence) must fit the
 * model's positions, or be cut with truncate. */
typedef struct train_check {
    dlv_session *session;
    int truncate;
    int long_captions;   /* the next-token loss is on */
} train_check;

/* Reads the JSONL file and checks every example against the model.
 * on_bad_fail: stop at the first bad example (returns 1 after printing
 * "disclvlm train: FILE:LINE: reason"). check_images 0 skips the image
 * decode (used for --steps 0, where no image is read). Returns 0, or 1
 * after printing the error. */
int train_data_load(const char *path, const dlv_model *model, const train_check *tc,
                    int on_bad_fail, int check_images, train_data *d);
void train_data_free(train_data *d);

/* Prints "disclvlm train: skipped K bad example(s): where (reason), ..."
 * (the first 10) to stderr when there were any. */
void train_data_report(const train_data *d);

/* An image handle for a sample: its file, or the in-memory bytes of a
 * WebDataset sample. */
dlv_status train_sample_image(const dlv_sample *s, dlv_image **out);

/* The order of the usable examples in epoch `epoch`: 0..n-1 in file order,
 * or, with shuffle, a Fisher-Yates permutation drawn from a splitmix64
 * stream seeded with seed + 0x9E3779B97F4A7C15 * (epoch + 1)
 * (docs/cli.md, "Training"). perm has n entries. */
void train_epoch_order(size_t n, int shuffle, uint64_t seed, uint64_t epoch, size_t *perm);

#endif
