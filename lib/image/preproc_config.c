/* preprocessor_config.json: how images become pixel_values. The defaults are
 * those of CLIPImageProcessor (resize the shortest edge, center-crop, OpenAI
 * CLIP mean/std), SiglipImageProcessor (resize to height x width, no crop,
 * mean/std 0.5), LlavaNextImageProcessor (CLIP's, plus the anyres
 * image_grid_pinpoints) or Qwen2VLImageProcessor (its own fields,
 * parse_qwen2vl), chosen by image_processor_type. A LlavaProcessor file
 * carries the same image_processor_type and fields. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"
#include "image/preproc_config.h"

#define MAX_PIXELS ((int64_t)1 << 20)

typedef enum proc_kind { PROC_CLIP, PROC_SIGLIP, PROC_LLAVA_NEXT, PROC_QWEN2VL } proc_kind;

static const struct {
    const char *name;
    proc_kind kind;
} known_processors[] = {
    {"CLIPImageProcessor", PROC_CLIP},     {"CLIPImageProcessorFast", PROC_CLIP},
    {"LlavaImageProcessor", PROC_CLIP},    {"LlavaImageProcessorFast", PROC_CLIP},
    {"SiglipImageProcessor", PROC_SIGLIP}, {"SiglipImageProcessorFast", PROC_SIGLIP},
    {"LlavaNextImageProcessor", PROC_LLAVA_NEXT},
    /* Only the slow processor: the fast one resizes with torchvision. */
    {"Qwen2VLImageProcessor", PROC_QWEN2VL},
};

static void defaults(proc_kind kind, dlv_preproc_config *p)
{
    static const double clip_mean[3] = {0.48145466, 0.4578275, 0.40821073};
    static const double clip_std[3] = {0.26862954, 0.26130258, 0.27577711};
    p->do_resize = 1;
    p->resample = DLV_RESAMPLE_BICUBIC;
    p->do_rescale = 1;
    p->rescale_factor = 1.0 / 255.0;
    p->do_normalize = 1;
    if (kind == PROC_QWEN2VL) {
        /* Qwen2VLImageProcessor(): CLIP's mean and std, no size or crop. */
        p->shortest_edge = p->size_height = p->size_width = -1;
        p->do_center_crop = 0;
        p->crop_height = p->crop_width = -1;
        memcpy(p->image_mean, clip_mean, sizeof clip_mean);
        memcpy(p->image_std, clip_std, sizeof clip_std);
        p->do_convert_rgb = 1;
    } else if (kind == PROC_CLIP || kind == PROC_LLAVA_NEXT) {
        p->shortest_edge = 224;
        p->size_height = p->size_width = -1;
        p->do_center_crop = 1;
        p->crop_height = p->crop_width = 224;
        memcpy(p->image_mean, clip_mean, sizeof clip_mean);
        memcpy(p->image_std, clip_std, sizeof clip_std);
        p->do_convert_rgb = 1;
    } else {
        p->shortest_edge = -1;
        p->size_height = p->size_width = 224;
        p->do_center_crop = 0;
        p->crop_height = p->crop_width = -1;
        for (int i = 0; i < 3; i++) p->image_mean[i] = p->image_std[i] = 0.5;
        p->do_convert_rgb = 0; /* None in SiglipImageProcessor */
    }
    p->anyres = kind == PROC_LLAVA_NEXT;
    if (p->anyres) {
        /* LlavaNextImageProcessor's default list (note: not multiples of
         * its default crop of 224, so a config must name its crop_size). */
        static const int64_t def[5][2] = {{336, 672}, {672, 336}, {672, 672}, {1008, 336},
                                          {336, 1008}};
        p->n_pinpoints = 5;
        memcpy(p->pinpoints, def, sizeof def);
    }
}

static dlv_status pixels(const json_t *v, const char *label, const char *field, int64_t *out)
{
    if (!json_is_integer(v))
        return dlv_error(DLV_E_FORMAT, "%s: %s: expected an integer", label, field);
    *out = (int64_t)json_integer_value(v);
    if (*out <= 0 || *out > MAX_PIXELS)
        return dlv_error(DLV_E_FORMAT, "%s: %s: %lld is outside 1..%lld", label, field,
                         (long long)*out, (long long)MAX_PIXELS);
    return DLV_OK;
}

/* {"height": h, "width": w}; an integer n means n x n. */
static dlv_status hw(const json_t *v, const char *label, const char *key, int64_t *h,
                     int64_t *w)
{
    char field[64];
    if (json_is_integer(v)) {
        dlv_status st = pixels(v, label, key, h);
        *w = *h;
        return st;
    }
    const json_t *jh = json_is_object(v) ? json_object_get(v, "height") : NULL;
    const json_t *jw = json_is_object(v) ? json_object_get(v, "width") : NULL;
    if (!jh || !jw)
        return dlv_error(DLV_E_FORMAT, "%s: %s: expected {\"height\": H, \"width\": W} or an integer",
                         label, key);
    snprintf(field, sizeof field, "%s.height", key);
    dlv_status st = pixels(jh, label, field, h);
    if (st != DLV_OK) return st;
    snprintf(field, sizeof field, "%s.width", key);
    return pixels(jw, label, field, w);
}

static dlv_status parse_size(const json_t *v, proc_kind kind, const char *label,
                             dlv_preproc_config *p)
{
    if (json_is_object(v) && json_object_get(v, "shortest_edge")) {
        p->size_height = p->size_width = -1;
        return pixels(json_object_get(v, "shortest_edge"), label, "size.shortest_edge",
                      &p->shortest_edge);
    }
    /* CLIPImageProcessor and LlavaNextImageProcessor read a bare integer
     * as the shortest edge (get_size_dict with default_to_square=False). */
    if (json_is_integer(v) && kind != PROC_SIGLIP) {
        p->size_height = p->size_width = -1;
        return pixels(v, label, "size", &p->shortest_edge);
    }
    p->shortest_edge = -1;
    return hw(v, label, "size", &p->size_height, &p->size_width);
}

/* A list of three numbers, or one number for all channels. */
static dlv_status triple(const json_t *root, const char *key, const char *label, double out[3])
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return DLV_OK;
    if (json_is_number(v)) {
        out[0] = out[1] = out[2] = json_number_value(v);
        return DLV_OK;
    }
    if (!json_is_array(v) || json_array_size(v) != 3)
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': expected a list of 3 numbers", label, key);
    for (size_t i = 0; i < 3; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_number(e))
            return dlv_error(DLV_E_FORMAT, "%s: field '%s'[%zu]: expected a number", label, key, i);
        out[i] = json_number_value(e);
    }
    return DLV_OK;
}

/* image_grid_pinpoints: [[height, width], ...]. */
static dlv_status parse_pinpoints(const json_t *v, const char *label, dlv_preproc_config *p)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > DLV_MAX_PINPOINTS)
        return dlv_error(DLV_E_FORMAT, "%s: field 'image_grid_pinpoints': expected a list of 1 "
                         "to %d [height, width] pairs", label, DLV_MAX_PINPOINTS);
    p->n_pinpoints = json_array_size(v);
    for (size_t i = 0; i < p->n_pinpoints; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_array(e) || json_array_size(e) != 2)
            return dlv_error(DLV_E_FORMAT, "%s: field 'image_grid_pinpoints'[%zu]: expected a "
                             "[height, width] pair", label, i);
        for (size_t j = 0; j < 2; j++) {
            const json_t *x = json_array_get(e, j);
            int64_t n = json_is_integer(x) ? (int64_t)json_integer_value(x) : 0;
            if (n < 1 || n > DLV_MAX_PINPOINT_SIDE)
                return dlv_error(DLV_E_FORMAT, "%s: field 'image_grid_pinpoints'[%zu][%zu]: "
                                 "expected an integer in 1..%d", label, i, j,
                                 DLV_MAX_PINPOINT_SIDE);
            p->pinpoints[i][j] = n;
        }
    }
    return DLV_OK;
}

/* Each resolution is cut into square tiles of crop_size.height. The model
 * (LlavaNextForConditionalGeneration) counts a resolution's tiles as
 * (h // side) * (w // side) while the processor cuts ceil(h / side) rows, so
 * a side that is not a multiple makes transformers fail at the model;
 * refused here, with the tile count bounded. */
static dlv_status check_pinpoints(const char *label, const dlv_preproc_config *p)
{
    int64_t side = p->crop_height;
    for (size_t i = 0; i < p->n_pinpoints; i++) {
        int64_t h = p->pinpoints[i][0], w = p->pinpoints[i][1];
        if (h % side != 0 || w % side != 0)
            return dlv_error(DLV_E_FORMAT, "%s: field 'image_grid_pinpoints'[%zu]: %lld x %lld "
                             "is not a multiple of crop_size.height %lld (the tile side)", label,
                             i, (long long)h, (long long)w, (long long)side);
        if ((h / side) * (w / side) > DLV_ANYRES_MAX_TILES)
            return dlv_error(DLV_E_UNSUPPORTED, "%s: field 'image_grid_pinpoints'[%zu]: %lld x "
                             "%lld makes %lld tiles of %lld x %lld, more than %d", label, i,
                             (long long)h, (long long)w, (long long)((h / side) * (w / side)),
                             (long long)side, (long long)side, DLV_ANYRES_MAX_TILES);
    }
    return DLV_OK;
}

/* ---- Qwen2VLImageProcessor ---- */

/* Bounds (far above Qwen2-VL's 14 / 2 / 2 and 12845056 pixels) that keep
 * the patch buffers of one image within a few GB whatever the file says. */
#define QWEN2VL_MAX_PIXELS_CAP ((int64_t)1 << 26) /* 64 Mpixel */
#define QWEN2VL_MAX_PATCH 512
#define QWEN2VL_MAX_TEMPORAL 8
#define QWEN2VL_MAX_MERGE 16

/* An integer field in lo..hi; absent or null gives def. */
static dlv_status bounded(const json_t *v, const char *field, int64_t def, int64_t lo,
                          int64_t hi, const char *label, int64_t *out)
{
    *out = def;
    if (!v || json_is_null(v)) return DLV_OK;
    if (!json_is_integer(v))
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': expected an integer", label, field);
    *out = (int64_t)json_integer_value(v);
    if (*out < lo || *out > hi)
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': %lld is outside %lld..%lld", label, field,
                         (long long)*out, (long long)lo, (long long)hi);
    return DLV_OK;
}

/* min_pixels / max_pixels as transformers 4.46.3 reads them: the top-level
 * fields, or Qwen2VLImageProcessor()'s 56*56 and 28*28*1280. 4.46 ignores
 * `size`; later versions spell the bounds size.shortest_edge /
 * size.longest_edge (and 4.46 saves size.min_pixels / size.max_pixels next
 * to the top-level fields), so a file that gives only `size` is read as
 * the version that wrote it meant. */
static dlv_status pixel_bound(const json_t *root, const char *key, const char *size_key,
                              int64_t def, const char *label, int64_t *out)
{
    const json_t *v = json_object_get(root, key);
    const json_t *size = json_object_get(root, "size");
    char field[64];
    snprintf(field, sizeof field, "%s", key);
    if ((!v || json_is_null(v)) && json_is_object(size)) {
        const char *k = size_key;
        v = json_object_get(size, k);
        if (!v || json_is_null(v)) v = json_object_get(size, k = key);
        snprintf(field, sizeof field, "size.%s", k);
    }
    return bounded(v, field, def, 0, QWEN2VL_MAX_PIXELS_CAP, label, out);
}

static dlv_status parse_qwen2vl(const json_t *root, const char *label, dlv_qwen2vl_params *q)
{
    dlv_status st;
    q->enabled = 1;
    if ((st = pixel_bound(root, "min_pixels", "shortest_edge", 56 * 56, label,
                          &q->min_pixels)) ||
        (st = pixel_bound(root, "max_pixels", "longest_edge", 28 * 28 * 1280, label,
                          &q->max_pixels)) ||
        (st = bounded(json_object_get(root, "patch_size"), "patch_size", 14, 1,
                      QWEN2VL_MAX_PATCH, label, &q->patch_size)) ||
        (st = bounded(json_object_get(root, "temporal_patch_size"), "temporal_patch_size", 2, 1,
                      QWEN2VL_MAX_TEMPORAL, label, &q->temporal_patch_size)) ||
        (st = bounded(json_object_get(root, "merge_size"), "merge_size", 2, 1,
                      QWEN2VL_MAX_MERGE, label, &q->merge_size)))
        return st;
    if (q->min_pixels > q->max_pixels)
        return dlv_error(DLV_E_FORMAT, "%s: field 'min_pixels': %lld is above max_pixels %lld",
                         label, (long long)q->min_pixels, (long long)q->max_pixels);
    /* Below factor^2 every image would be resized to a zero side. */
    int64_t factor = q->patch_size * q->merge_size;
    if (q->max_pixels < factor * factor)
        return dlv_error(DLV_E_FORMAT, "%s: field 'max_pixels': %lld is below (patch_size * "
                         "merge_size)^2 = %lld", label, (long long)q->max_pixels,
                         (long long)(factor * factor));
    return DLV_OK;
}

static dlv_status parse_root(const json_t *root, const char *label, void *out_)
{
    dlv_preproc_config *p = out_;
    if (!json_is_object(root))
        return dlv_error(DLV_E_FORMAT, "%s: expected a JSON object at the top level", label);
    dlv_status st = dlv_json_str(root, "image_processor_type", "CLIPImageProcessor", label,
                                 p->processor_class, sizeof p->processor_class);
    if (st != DLV_OK) return st;
    size_t k = 0, n_known = sizeof known_processors / sizeof known_processors[0];
    while (k < n_known && strcmp(p->processor_class, known_processors[k].name) != 0) k++;
    if (k == n_known)
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: image_processor_type: '%s' is not supported (expected "
                         "CLIPImageProcessor, SiglipImageProcessor, LlavaNextImageProcessor or "
                         "Qwen2VLImageProcessor)",
                         label, p->processor_class);
    proc_kind kind = known_processors[k].kind;
    defaults(kind, p);

    int64_t resample;
    int do_pad;
    if ((st = dlv_json_bool(root, "do_resize", p->do_resize, label, &p->do_resize)) ||
        (st = dlv_json_int(root, "resample", p->resample, label, &resample)) ||
        (st = dlv_json_bool(root, "do_rescale", p->do_rescale, label, &p->do_rescale)) ||
        (st = dlv_json_real(root, "rescale_factor", p->rescale_factor, label,
                            &p->rescale_factor)) ||
        (st = dlv_json_bool(root, "do_normalize", p->do_normalize, label, &p->do_normalize)) ||
        (st = dlv_json_bool(root, "do_convert_rgb", p->do_convert_rgb, label,
                            &p->do_convert_rgb)) ||
        (st = dlv_json_bool(root, "do_pad", 0, label, &do_pad)) ||
        (st = triple(root, "image_mean", label, p->image_mean)) ||
        (st = triple(root, "image_std", label, p->image_std)))
        return st;
    if (resample < DLV_RESAMPLE_NEAREST || resample > DLV_RESAMPLE_HAMMING)
        return dlv_error(DLV_E_FORMAT, "%s: field 'resample': %lld is not a PIL filter (0..5)",
                         label, (long long)resample);
    p->resample = (dlv_resample)resample;
    /* LlavaNextImageProcessor's do_pad only pads a batch to the same number
     * of tiles per image, which a caller does by itself; elsewhere it means
     * padding to a square. */
    if (do_pad && kind != PROC_LLAVA_NEXT)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: field 'do_pad': padding to a square is not "
                         "supported", label);
    for (int i = 0; i < 3; i++)
        if (!(p->image_std[i] != 0.0))
            return dlv_error(DLV_E_FORMAT, "%s: field 'image_std'[%d]: must be non-zero", label, i);

    if (kind == PROC_QWEN2VL) return parse_qwen2vl(root, label, &p->qwen2vl);
    const json_t *size = json_object_get(root, "size");
    if (size && !json_is_null(size) && (st = parse_size(size, kind, label, p))) return st;

    /* SiglipImageProcessor has no center crop: it ignores crop fields. */
    if (kind != PROC_SIGLIP) {
        if ((st = dlv_json_bool(root, "do_center_crop", p->do_center_crop, label,
                                &p->do_center_crop)))
            return st;
        const json_t *crop = json_object_get(root, "crop_size");
        if (crop && !json_is_null(crop) &&
            (st = hw(crop, label, "crop_size", &p->crop_height, &p->crop_width)))
            return st;
    }
    if (kind == PROC_LLAVA_NEXT) {
        const json_t *pins = json_object_get(root, "image_grid_pinpoints");
        if (pins && !json_is_null(pins) && (st = parse_pinpoints(pins, label, p))) return st;
        return check_pinpoints(label, p);
    }
    return DLV_OK;
}

dlv_status dlv_preproc_config_parse(const char *json, size_t len, const char *label,
                                    dlv_preproc_config *out)
{
    if (!json || !out)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_preproc_config_parse: NULL argument");
    return dlv_json_config_parse(json, len, label ? label : "preprocessor_config.json", parse_root, out,
                                 sizeof *out);
}

dlv_status dlv_preproc_config_load(const char *path, dlv_preproc_config *out)
{
    if (!path || !out) return dlv_error(DLV_E_INVALID_ARG, "dlv_preproc_config_load: NULL argument");
    return dlv_json_config_load(path, (size_t)1 << 20, parse_root, out, sizeof *out);
}
