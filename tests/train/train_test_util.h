/* Helpers shared by the training tests that compare the library with
 * committed PyTorch goldens (test_train_golden.c, test_optim_golden.c). */
#ifndef DLV_TESTS_TRAIN_TEST_UTIL_H
#define DLV_TESTS_TRAIN_TEST_UTIL_H

#include <stddef.h>

#include "disclvlm.h"
#include "io/safetensors.h"

/* Fails the cmocka test (printing the last error) unless st is DLV_OK. */
void tt_check(dlv_status st, const char *what);

/* The first element of golden tensor `name` as a float (fails if absent). */
float tt_golden_scalar(const dlv_st_file *g, const char *name);
/* Element i of golden tensor `name`. */
float tt_golden_at(const dlv_st_file *g, const char *name, size_t i);

/* A copy of adapter dir `from` in a fresh temporary directory (tmp, of
 * capacity cap, receives its path); with set_scale the soft prompts'
 * logit_scale is replaced by `scale`. */
void tt_copy_adapter(const char *from, char *tmp, size_t cap, int set_scale, float scale);

/* A fresh temporary directory named after `stem` (tmp receives the path). */
void tt_mkdtemp(const char *stem, char *tmp, size_t cap);

/* Removes an adapter or saved-model directory made by a test (the files
 * the library writes there, then the directory). */
void tt_remove_dir(const char *dir);

/* The golden batch of llava_grad_reference.py: images img0..2.png of
 * images_dir with their short and long captions. Free with
 * tt_golden_batch_free. */
typedef struct tt_golden_batch {
    dlv_batch *batch;
    dlv_image *images[3];
} tt_golden_batch;
void tt_golden_batch_make(const char *images_dir, tt_golden_batch *out);
void tt_golden_batch_free(tt_golden_batch *b);

#endif
