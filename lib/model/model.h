/* Internal view of a loaded model, for the session and encode code. */
#ifndef DLV_MODEL_MODEL_H
#define DLV_MODEL_MODEL_H

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"

/* Loads a model directory with its weights on backend `backend` ("cpu",
 * "sim", "cuda", "auto") device `device` (api/model_api.c's dlv_model_load
 * validates the public options and calls this). */
dlv_status dlv_model_open(const char *dir, const char *backend, int device,
                          dlv_dtype weight_dtype, dlv_model **out);
/* The dtype the weights were converted to at load (weight_dtype above), or
 * DLV_DTYPE_COUNT when each is held as stored. */
dlv_dtype dlv_model_weight_dtype(const dlv_model *model);

/* The backend the model's weights live on. */
dlv_backend *dlv_model_backend(const dlv_model *model);

/* The weights as device tensors on that backend, one per table entry. */
struct dlv_device_weights;
const struct dlv_device_weights *dlv_model_device_weights(const dlv_model *model);
/* LLaVA models: the typed weights (zeroed for a CLIPModel); the network
 * dimensions follow from the config (dlv_llava_dims_of). */
struct dlv_llava_w;
const struct dlv_llava_w *dlv_model_llava_w(const dlv_model *model);
/* The model kind's name: "llava" or "clip" (model/kind.h). */
const char *dlv_model_kind_name(const dlv_model *model);
const dlv_llava_config *dlv_model_config(const dlv_model *model);
const dlv_st_set *dlv_model_checkpoint(const dlv_model *model);
/* The model directory as given to dlv_model_load. */
const char *dlv_model_dir(const dlv_model *model);
/* The resolved weight table (tensors memory-mapped in the checkpoint). */
const dlv_weights *dlv_model_weights(const dlv_model *model);
/* preprocessor_config.json, or NULL if the directory has none. */
const dlv_preproc_config *dlv_model_preproc(const dlv_model *model);
/* The tokenizer loaded from the model directory, or NULL if it has none. */
const dlv_tokenizer *dlv_model_get_tokenizer(const dlv_model *model);

#endif
