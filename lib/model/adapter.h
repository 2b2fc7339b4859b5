/* An adapter: what is learned on top of a frozen model (LoRA, soft prompts,
 * logit scale) plus the prompt template, read from and written to an
 * adapter directory (docs/adapter-format.md). */
#ifndef DLV_MODEL_ADAPTER_H
#define DLV_MODEL_ADAPTER_H

#include <stdint.h>

#include "disclvlm.h"
#include "model/lora.h"
#include "model/prompts.h"

/* log(1 / 0.07): CLIP's initial temperature. */
#define DLV_DEFAULT_LOGIT_SCALE 2.659260036932778

typedef struct dlv_adapter {
    dlv_prompts prompts;
    float *image_prompt;        /* [n_image_prompt, hidden]; NULL: instruction embeddings */
    int64_t n_image_prompt;
    float *text_prompt;         /* [n_text_prompt, hidden]; NULL likewise */
    int64_t n_text_prompt;
    float logit_scale;          /* log(1 / temperature) */
    int has_lora;
    dlv_lora lora;
} dlv_adapter;

/* The model's defaults: family prompts, no soft prompts, no LoRA. */
dlv_status dlv_adapter_init_default(const dlv_model *m, dlv_adapter *out);

/* Reads an adapter directory; absent files take the defaults. */
dlv_status dlv_adapter_read(const dlv_model *m, const char *dir, dlv_adapter *out);

/* Writes every part the adapter has into dir atomically as a whole: a new
 * sibling directory replaces dir in one step (core/fs.h,
 * dlv_dir_save_begin); an existing dir may only hold adapter files. */
dlv_status dlv_adapter_write(const dlv_model *m, const dlv_adapter *a, const char *dir);
/* The files alone, into an existing (temporary) directory. */
dlv_status dlv_adapter_write_files(const dlv_model *m, const dlv_adapter *a, const char *dir);
/* The names an adapter or training-checkpoint directory may hold
 * (NULL-terminated). */
extern const char *const dlv_adapter_files[];

void dlv_adapter_release(dlv_adapter *a);

#endif
