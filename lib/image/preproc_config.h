/* preprocessor_config.json: how a model's images become pixel values
 * (CLIPImageProcessor / SiglipImageProcessor / LlavaNextImageProcessor
 * fields, with those classes' defaults for absent fields). Below the model
 * layer: the image pipeline reads it. */
#ifndef DLV_IMAGE_PREPROC_CONFIG_H
#define DLV_IMAGE_PREPROC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

typedef enum dlv_resample {
    DLV_RESAMPLE_NEAREST = 0, DLV_RESAMPLE_LANCZOS = 1, DLV_RESAMPLE_BILINEAR = 2,
    DLV_RESAMPLE_BICUBIC = 3, DLV_RESAMPLE_BOX = 4, DLV_RESAMPLE_HAMMING = 5
} dlv_resample;   /* PIL's numbering, as preprocessor configs store it */

/* Bounds on image_grid_pinpoints, so that a config cannot make one image
 * cost far more than any model uses: llava-v1.6 tiles at most 2 x 2 or
 * 3 x 1, OneVision 6 x 6; 1 + 64 tiles of 336 x 336 are 88 MB of floats. */
#define DLV_MAX_PINPOINTS 64
#define DLV_MAX_PINPOINT_SIDE 8192
#define DLV_ANYRES_MAX_TILES 64

/* Qwen2VLImageProcessor (Qwen2-VL, Qwen2.5-VL): the image is resized to a
 * multiple of patch_size * merge_size within [min_pixels, max_pixels] and
 * cut into patches (image/qwen2vl.h); none of the size / crop fields apply. */
typedef struct dlv_qwen2vl_params {
    int enabled;                  /* image_processor_type is Qwen2VLImageProcessor */
    int64_t min_pixels, max_pixels;
    int64_t patch_size, temporal_patch_size, merge_size;
} dlv_qwen2vl_params;

typedef struct dlv_preproc_config {
    char processor_class[64];    /* image_processor_type, e.g. CLIPImageProcessor */
    int do_resize;
    int64_t shortest_edge;       /* size.shortest_edge, -1 if size is h x w */
    int64_t size_height, size_width;
    dlv_resample resample;
    int do_center_crop;
    int64_t crop_height, crop_width;
    int do_rescale;
    double rescale_factor;
    int do_normalize;
    double image_mean[3];
    double image_std[3];
    int do_convert_rgb;
    /* LlavaNextImageProcessor ("anyres", image/anyres.h): each image is
     * tiled at the best of these (height, width) resolutions, every side a
     * multiple of crop_height (the tile side), at most
     * DLV_ANYRES_MAX_TILES tiles each. anyres is 0 for the other classes. */
    int anyres;
    size_t n_pinpoints;
    int64_t pinpoints[DLV_MAX_PINPOINTS][2];
    dlv_qwen2vl_params qwen2vl;
} dlv_preproc_config;

/* Parses preprocessor_config.json; defaults follow CLIPImageProcessor,
 * SiglipImageProcessor, LlavaNextImageProcessor or Qwen2VLImageProcessor by
 * image_processor_type. */
dlv_status dlv_preproc_config_load(const char *path, dlv_preproc_config *out);
dlv_status dlv_preproc_config_parse(const char *json, size_t len, const char *label,
                                    dlv_preproc_config *out);

#endif
