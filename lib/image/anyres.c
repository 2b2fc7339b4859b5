/* LlavaNextImageProcessor's tiling (see anyres.h). Where transformers
 * rounds, this rounds the same way: select_best_resolution scales in double
 * and truncates with int(); _get_patch_output_size scales in double and
 * rounds up with math.ceil, capped at the target; _pad_for_patching pads
 * (target - new) // 2 on both sides. Everything stays 8-bit until the CLIP
 * pipeline's rescale, as in transformers, where the image is a uint8 array
 * through every resize, pad and slice. */
#include "image/anyres.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "image/preprocess.h"
#include "image/resample.h"

static dlv_status check_config(const dlv_preproc_config *cfg)
{
    if (!cfg || !cfg->anyres)
        return dlv_error(DLV_E_INVALID_ARG, "%s: not a LlavaNextImageProcessor (anyres) config",
                         cfg ? cfg->processor_class : "anyres");
    if (cfg->n_pinpoints == 0 || cfg->n_pinpoints > DLV_MAX_PINPOINTS)
        return dlv_error(DLV_E_FORMAT, "%s: image_grid_pinpoints: %zu resolutions, expected 1 "
                         "to %d", cfg->processor_class, cfg->n_pinpoints, DLV_MAX_PINPOINTS);
    for (size_t i = 0; i < cfg->n_pinpoints; i++)
        for (int j = 0; j < 2; j++)
            if (cfg->pinpoints[i][j] < 1 || cfg->pinpoints[i][j] > DLV_MAX_PINPOINT_SIDE)
                return dlv_error(DLV_E_FORMAT, "%s: image_grid_pinpoints[%zu][%d]: %lld is "
                                 "outside 1..%d", cfg->processor_class, i, j,
                                 (long long)cfg->pinpoints[i][j], DLV_MAX_PINPOINT_SIDE);
    if (cfg->crop_height < 1 || cfg->crop_height > DLV_MAX_PINPOINT_SIDE)
        return dlv_error(DLV_E_FORMAT, "%s: crop_size.height %lld cannot be a tile side",
                         cfg->processor_class, (long long)cfg->crop_height);
    return DLV_OK;
}

dlv_status dlv_anyres_select(const dlv_preproc_config *cfg, uint32_t w, uint32_t h, size_t *best)
{
    dlv_status st = check_config(cfg);
    if (st != DLV_OK) return st;
    if (w == 0 || h == 0 || !best)
        return dlv_error(DLV_E_INVALID_ARG, "%s: anyres of an empty image", cfg->processor_class);
    /* Starts at 0 kept pixels and "infinite" waste, so the first resolution
     * wins when none keeps a pixel (int() truncated every one to 0). */
    uint64_t best_kept = 0, area = (uint64_t)w * h;
    int64_t best_waste = 0;
    int have = 0;
    for (size_t i = 0; i < cfg->n_pinpoints; i++) {
        int64_t th = cfg->pinpoints[i][0], tw = cfg->pinpoints[i][1];
        double sw = (double)tw / w, sh = (double)th / h;
        double scale = sh < sw ? sh : sw; /* Python's min keeps the first of equals */
        /* Both products are at most the target side (scale <= side / size),
         * so the truncations fit. */
        uint64_t dw = (uint64_t)((double)w * scale), dh = (uint64_t)((double)h * scale);
        uint64_t kept = dw * dh < area ? dw * dh : area;
        int64_t waste = th * tw - (int64_t)kept;
        if (!have || kept > best_kept || (kept == best_kept && waste < best_waste)) {
            have = 1;
            best_kept = kept;
            best_waste = waste;
            *best = i;
        }
    }
    return DLV_OK;
}

dlv_status dlv_anyres_layout_of(const dlv_preproc_config *cfg, uint32_t w, uint32_t h,
                                dlv_anyres_layout *out)
{
    size_t best = 0;
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "anyres: no layout to fill");
    memset(out, 0, sizeof *out);
    dlv_status st = dlv_anyres_select(cfg, w, h, &best);
    if (st != DLV_OK) return st;
    uint32_t th = (uint32_t)cfg->pinpoints[best][0], tw = (uint32_t)cfg->pinpoints[best][1];
    out->orig_h = h;
    out->orig_w = w;
    out->target_h = th;
    out->target_w = tw;
    /* Fit inside the target along the side that scales least; the other
     * side is rounded up (so never 0) and capped. */
    double sw = (double)tw / w, sh = (double)th / h;
    if (sw < sh) {
        double v = ceil((double)h * sw);
        out->resized_w = tw;
        out->resized_h = v < (double)th ? (uint32_t)v : th;
    } else {
        double v = ceil((double)w * sh);
        out->resized_h = th;
        out->resized_w = v < (double)tw ? (uint32_t)v : tw;
    }
    out->pad_top = (th - out->resized_h) / 2;
    out->pad_left = (tw - out->resized_w) / 2;
    out->padded_h = out->resized_h + 2 * out->pad_top;
    out->padded_w = out->resized_w + 2 * out->pad_left;
    uint32_t side = (uint32_t)cfg->crop_height;
    out->rows = (out->padded_h + side - 1) / side;
    out->cols = (out->padded_w + side - 1) / side;
    if ((uint64_t)out->rows * out->cols > DLV_ANYRES_MAX_TILES)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: %u x %u tiles of %u px for %ux%u, more than %d",
                         cfg->processor_class, (unsigned)out->rows, (unsigned)out->cols,
                         (unsigned)side, (unsigned)w, (unsigned)h, DLV_ANYRES_MAX_TILES);
    out->n_tiles = out->rows * out->cols;
    /* get_image_patches resizes the base to a square whatever do_resize says. */
    int64_t base = cfg->shortest_edge > 0 ? cfg->shortest_edge
                   : cfg->size_height < cfg->size_width ? cfg->size_height : cfg->size_width;
    if (base < 1 || base > UINT32_MAX)
        return dlv_error(DLV_E_FORMAT, "%s: size gives no base image side",
                         cfg->processor_class);
    out->base_side = (uint32_t)base;
    /* The tiles are stacked, so they must all come out one size. */
    if ((st = dlv_preprocess_fixed_size(cfg, &out->tile_h, &out->tile_w)) != DLV_OK)
        return dlv_error_prefix(st, "anyres tiles");
    uint64_t n = (1 + (uint64_t)out->n_tiles) * 3 * out->tile_h * out->tile_w;
    if (n > SIZE_MAX / sizeof(float))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: %llu floats per image do not fit in memory",
                         cfg->processor_class, (unsigned long long)n);
    out->n_floats = (size_t)n;
    return DLV_OK;
}

/* Tile (r, c) of the padded image, zeros outside the resized one. */
static dlv_status cut_tile(const dlv_rgb8 *img, const dlv_anyres_layout *l, uint32_t side,
                           uint32_t r, uint32_t c, dlv_rgb8 *tile)
{
    int64_t y0 = (int64_t)r * side, x0 = (int64_t)c * side;
    int64_t th = l->padded_h - y0 < side ? l->padded_h - y0 : side;
    int64_t tw = l->padded_w - x0 < side ? l->padded_w - x0 : side;
    dlv_status st = dlv_rgb8_alloc(tile, (uint32_t)tw, (uint32_t)th);
    if (st != DLV_OK) return st;
    memset(tile->px, 0, (size_t)tw * (size_t)th * 3);
    /* The columns of the tile that fall on the image, in tile coordinates. */
    int64_t xa = l->pad_left > x0 ? l->pad_left : x0;
    int64_t xb = (int64_t)l->pad_left + img->width;
    if (xb > x0 + tw) xb = x0 + tw;
    for (int64_t y = 0; y < th && xa < xb; y++) {
        int64_t sy = y0 + y - l->pad_top;
        if (sy < 0 || sy >= img->height) continue;
        memcpy(tile->px + ((size_t)y * (size_t)tw + (size_t)(xa - x0)) * 3,
               img->px + ((size_t)sy * img->width + (size_t)(xa - l->pad_left)) * 3,
               (size_t)(xb - xa) * 3);
    }
    return DLV_OK;
}

/* Receives each finished 8-bit image; may take ownership of its pixels
 * (by setting img->px to NULL). */
typedef dlv_status (*tile_sink)(void *ctx, size_t index, dlv_rgb8 *img);

/* The CLIP pipeline on the base or one tile, handed to the sink. */
static dlv_status finish(const dlv_preproc_config *cfg, const dlv_rgb8 *src, uint64_t max_pixels,
                         const dlv_anyres_layout *l, size_t index, tile_sink sink, void *ctx)
{
    dlv_rgb8 out = {NULL, 0, 0};
    dlv_status st = dlv_preprocess_rgb8(cfg, src, 0, max_pixels, &out);
    if (st == DLV_OK && (out.height != l->tile_h || out.width != l->tile_w))
        st = dlv_error(DLV_E_UNSUPPORTED, "%s: tile %zu came out %ux%u, not %ux%u",
                       cfg->processor_class, index, (unsigned)out.width, (unsigned)out.height,
                       (unsigned)l->tile_w, (unsigned)l->tile_h);
    if (st == DLV_OK) st = sink(ctx, index, &out);
    dlv_rgb8_free(&out);
    return st;
}

static dlv_status over_limit(const char *what, uint64_t pixels, uint64_t max_pixels)
{
    return dlv_error(DLV_E_UNSUPPORTED, "anyres: %s has %llu pixels, more than the limit of %llu",
                     what, (unsigned long long)pixels, (unsigned long long)max_pixels);
}

static dlv_status each_tile(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                            uint64_t max_pixels, dlv_anyres_layout *l, tile_sink sink, void *ctx)
{
    if (!in || !in->px || in->width == 0 || in->height == 0)
        return dlv_error(DLV_E_INVALID_ARG, "anyres: no image");
    dlv_anyres_layout own;
    if (!l) l = &own;
    dlv_status st = dlv_anyres_layout_of(cfg, in->width, in->height, l);
    if (st != DLV_OK) return st;
    /* Bounded before anything is allocated, as the plain pipeline is. */
    uint64_t base_px = (uint64_t)l->base_side * l->base_side;
    uint64_t resized_px = (uint64_t)l->resized_h * l->resized_w;
    uint64_t out_px = (1 + (uint64_t)l->n_tiles) * l->tile_h * l->tile_w;
    if (base_px > max_pixels) return over_limit("the base image", base_px, max_pixels);
    if (resized_px > max_pixels) return over_limit("the resized image", resized_px, max_pixels);
    if (out_px > max_pixels) return over_limit("the tiles together", out_px, max_pixels);

    dlv_rgb8 img = {NULL, 0, 0}, tile = {NULL, 0, 0};
    st = dlv_resample_rgb8(in, l->base_side, l->base_side, cfg->resample, &img);
    if (st == DLV_OK) st = finish(cfg, &img, max_pixels, l, 0, sink, ctx);
    dlv_rgb8_free(&img);
    if (st == DLV_OK) st = dlv_resample_rgb8(in, l->resized_w, l->resized_h, cfg->resample, &img);
    uint32_t side = (uint32_t)cfg->crop_height;
    for (uint32_t i = 0; st == DLV_OK && i < l->n_tiles; i++) {
        st = cut_tile(&img, l, side, i / l->cols, i % l->cols, &tile);
        if (st == DLV_OK) st = finish(cfg, &tile, max_pixels, l, 1 + (size_t)i, sink, ctx);
        dlv_rgb8_free(&tile);
    }
    dlv_rgb8_free(&img);
    return st;
}

static dlv_status keep_rgb8(void *ctx, size_t index, dlv_rgb8 *img)
{
    dlv_rgb8 *tiles = ctx;
    tiles[index] = *img;
    img->px = NULL;
    return DLV_OK;
}

void dlv_anyres_tiles_free(dlv_rgb8 *tiles, size_t n)
{
    if (!tiles) return;
    for (size_t i = 0; i < n; i++) dlv_rgb8_free(&tiles[i]);
    free(tiles);
}

dlv_status dlv_anyres_rgb8(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                           uint64_t max_pixels, dlv_anyres_layout *layout, dlv_rgb8 **tiles)
{
    if (!tiles || !layout) return dlv_error(DLV_E_INVALID_ARG, "dlv_anyres_rgb8: NULL output");
    *tiles = calloc(1 + DLV_ANYRES_MAX_TILES, sizeof **tiles);
    if (!*tiles) return dlv_error_nomem("anyres tiles", (1 + DLV_ANYRES_MAX_TILES) * sizeof **tiles);
    dlv_status st = each_tile(cfg, in, max_pixels, layout, keep_rgb8, *tiles);
    if (st != DLV_OK) {
        dlv_anyres_tiles_free(*tiles, 1 + DLV_ANYRES_MAX_TILES);
        *tiles = NULL;
    }
    return st;
}

typedef struct float_sink {
    const dlv_preproc_config *cfg;
    float *out;
    size_t per_image;
} float_sink;

static dlv_status write_float(void *ctx, size_t index, dlv_rgb8 *img)
{
    const float_sink *f = ctx;
    return dlv_preprocess_to_float(f->cfg, img, f->out + index * f->per_image, f->per_image);
}

dlv_status dlv_anyres_to_float(const dlv_preproc_config *cfg, const dlv_rgb8 *in,
                               uint64_t max_pixels, dlv_anyres_layout *layout, float *out,
                               size_t out_len)
{
    dlv_anyres_layout own;
    if (!layout) layout = &own;
    if (!in || !in->px)
        return dlv_error(DLV_E_INVALID_ARG, "anyres: no image");
    /* The size check first, so that a short buffer costs no resizing. */
    dlv_status st = dlv_anyres_layout_of(cfg, in->width, in->height, layout);
    if (st != DLV_OK) return st;
    if (!out || out_len < layout->n_floats)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "anyres: output holds %zu floats, [%u, 3, %u, "
                         "%u] needs %zu", out ? out_len : 0, 1 + (unsigned)layout->n_tiles,
                         (unsigned)layout->tile_h, (unsigned)layout->tile_w, layout->n_floats);
    float_sink f = {cfg, out, layout->n_floats / (1 + (size_t)layout->n_tiles)};
    return each_tile(cfg, in, max_pixels, layout, write_float, &f);
}
