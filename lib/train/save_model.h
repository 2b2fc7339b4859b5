/* Writes a model whose weights are (partly) being trained as a Hugging Face
 * model directory: the model directory's config, preprocessor and tokenizer
 * files among model_files copied (config.json with torch_dtype set when a
 * dtype is forced), and model.safetensors with every checkpoint tensor, the
 * trained ones (weight-table entry i with woff[i] != SIZE_MAX, the kinds'
 * record of what they train) downloaded from their f32 device copies tv[i]. dtype NULL or
 * "" keeps each tensor's checkpoint dtype; "f32", "bf16" or "f16" converts
 * every float tensor. model_files (NULL-terminated, "model.safetensors"
 * included) is also what an existing dir may hold; the directory is
 * replaced atomically (core/fs.h, dlv_dir_save_begin). */
#ifndef DLV_TRAIN_SAVE_MODEL_H
#define DLV_TRAIN_SAVE_MODEL_H

#include "backend/tensor.h"
#include "disclvlm.h"

dlv_status dlv_save_model_dir(const dlv_model *m, const dlv_tensor *tv, const size_t *woff,
                              const char *const *model_files, const char *dir, const char *dtype);

#endif
