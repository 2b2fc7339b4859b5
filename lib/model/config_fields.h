/* Reading config.json fields with transformers' defaults for absent or null
 * ones and messages that name the file and the field ("config.json:
 * vision_config.depth: expected an integer"); shared by the config parsers
 * of each family (config.c, config_qwen2vl.c). */
#ifndef DLV_MODEL_CONFIG_FIELDS_H
#define DLV_MODEL_CONFIG_FIELDS_H

#include <jansson.h>
#include <stdint.h>

#include "disclvlm.h"

/* Sizes above this are refused so that products of a few of them (tensor
 * element counts) cannot overflow 64 bits. */
#define DLV_CFG_MAX_DIM ((int64_t)1 << 31)

/* Where a field sits, for messages. */
typedef struct dlv_cfg_where {
    const char *label;   /* the file */
    const char *prefix;  /* "" or "vision_config." */
} dlv_cfg_where;

/* obj[key], or NULL when absent or null. */
const json_t *dlv_cfg_present(const json_t *obj, const char *key);

/* Each sets *out to def when the field is absent or null (and on failure). */
dlv_status dlv_cfg_int(const json_t *obj, const char *key, int64_t def, dlv_cfg_where w,
                       int64_t *out);
/* An integer in [lo, hi] when the file gives one. */
dlv_status dlv_cfg_range(const json_t *obj, const char *key, int64_t def, int64_t lo,
                         int64_t hi, dlv_cfg_where w, int64_t *out);
/* A size: an integer in [1, DLV_CFG_MAX_DIM]. */
dlv_status dlv_cfg_size(const json_t *obj, const char *key, int64_t def, dlv_cfg_where w,
                        int64_t *out);
dlv_status dlv_cfg_real(const json_t *obj, const char *key, double def, dlv_cfg_where w,
                        double *out);
dlv_status dlv_cfg_bool(const json_t *obj, const char *key, int def, dlv_cfg_where w, int *out);
/* *out points into the JSON tree (valid while it lives). */
dlv_status dlv_cfg_str(const json_t *obj, const char *key, const char *def, dlv_cfg_where w,
                       const char **out);

/* Qwen2-VL / Qwen2.5-VL's config.json from its parsed JSON (config_qwen2vl.c;
 * what dlv_llava_config_parse calls for those model types). */
struct dlv_qwen2vl_config;
dlv_status dlv_qwen2vl_config_from_json(const json_t *root, const char *label,
                                        struct dlv_qwen2vl_config *out);

#endif
