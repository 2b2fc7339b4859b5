/* PNG through libpng's classic interface. libpng reports errors by longjmp;
 * the one setjmp lives in read_pixels and every jump lands there, so no jump
 * ever leaves this file. Transformations are chosen to give what Pillow's
 * PNG plugin followed by convert("RGB") gives: no gamma, tRNS ignored,
 * 1/2/4-bit gray scaled to 0..255, 16-bit samples reduced to their high
 * byte except plain 16-bit gray (Pillow's I;16), which is clipped to 255. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "image/decode.h"

typedef struct png_ctx {
    const unsigned char *data;
    size_t n, pos;
    char msg[256];
    unsigned char *buf;   /* one row, or the whole image when interlaced */
    dlv_rgb8 *out;
    int orientation;
} png_ctx;

static void on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    if (c->msg[0] == '\0') snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings (bad ancillary chunks, sRGB profiles) do not stop Pillow either */
}

static void read_bytes(png_structp png, png_bytep dst, size_t len)
{
    png_ctx *c = png_get_io_ptr(png);
    if (len > c->n - c->pos) {
        snprintf(c->msg, sizeof c->msg, "truncated data (%zu bytes needed at offset %zu, %zu left)",
                 len, c->pos, c->n - c->pos);
        png_error(png, c->msg);
    }
    memcpy(dst, c->data + c->pos, len);
    c->pos += len;
}

typedef enum row_kind { ROW_GRAY8, ROW_GRAY16, ROW_GA8, ROW_RGB8, ROW_RGBA8, ROW_INDEX } row_kind;

static void convert_row(row_kind kind, const unsigned char *in, uint8_t *out, uint32_t w,
                        const uint8_t palette[256][3])
{
    for (uint32_t x = 0; x < w; x++, out += 3) {
        switch (kind) {
        case ROW_GRAY8: out[0] = out[1] = out[2] = in[x]; break;
        case ROW_GRAY16: {
            unsigned v = ((unsigned)in[2 * x] << 8) | in[2 * x + 1];
            out[0] = out[1] = out[2] = (uint8_t)(v > 255u ? 255u : v);
            break;
        }
        case ROW_GA8: out[0] = out[1] = out[2] = in[2 * x]; break;
        case ROW_RGB8: memcpy(out, in + 3 * (size_t)x, 3); break;
        case ROW_RGBA8: memcpy(out, in + 4 * (size_t)x, 3); break;
        case ROW_INDEX: memcpy(out, palette[in[x]], 3); break;
        }
    }
}

/* Everything that may longjmp. Returns DLV_OK, or DLV_E_FORMAT with c->msg
 * set, or another status with the last error already recorded. */
static dlv_status read_pixels(png_structp png, png_infop info, png_ctx *c, const char *label,
                              uint64_t max_pixels)
{
    if (setjmp(png_jmpbuf(png))) return DLV_E_FORMAT;

    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    dlv_status st = dlv_decode_check_size(label, "PNG", w, h, max_pixels);
    if (st != DLV_OK) return st;

#ifdef PNG_eXIf_SUPPORTED
    png_uint_32 n_exif = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(png, info, &n_exif, &exif) && exif)
        c->orientation = dlv_exif_orientation(exif, n_exif);
#endif

    row_kind kind;
    size_t bpp;
    switch (color) {
    case PNG_COLOR_TYPE_GRAY:
        kind = depth == 16 ? ROW_GRAY16 : ROW_GRAY8;
        bpp = depth == 16 ? 2 : 1;
        if (depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: kind = ROW_GA8; bpp = 2; break;
    case PNG_COLOR_TYPE_RGB: kind = ROW_RGB8; bpp = 3; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: kind = ROW_RGBA8; bpp = 4; break;
    case PNG_COLOR_TYPE_PALETTE:
        kind = ROW_INDEX;
        bpp = 1;
        if (depth < 8) png_set_packing(png);
        break;
    default:
        snprintf(c->msg, sizeof c->msg, "unknown colour type %d", color);
        return DLV_E_FORMAT;
    }
    if (depth == 16 && kind != ROW_GRAY16) png_set_strip_16(png);

    /* Indices beyond the palette read as black, like Pillow's zero-filled palette. */
    uint8_t palette[256][3];
    memset(palette, 0, sizeof palette);
    if (kind == ROW_INDEX) {
        png_colorp plte = NULL;
        int n_plte = 0;
        if (!png_get_PLTE(png, info, &plte, &n_plte) || !plte) {
            snprintf(c->msg, sizeof c->msg, "palette image without a PLTE chunk");
            return DLV_E_FORMAT;
        }
        for (int i = 0; i < n_plte && i < 256; i++) {
            palette[i][0] = plte[i].red;
            palette[i][1] = plte[i].green;
            palette[i][2] = plte[i].blue;
        }
    }

    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * bpp) {
        snprintf(c->msg, sizeof c->msg, "unexpected row size %zu for width %u", rowbytes,
                 (unsigned)w);
        return DLV_E_FORMAT;
    }
    if ((st = dlv_rgb8_alloc(c->out, w, h)) != DLV_OK) return st;

    if (passes > 1) {
        if (h > SIZE_MAX / rowbytes) return dlv_error_nomem("interlaced PNG rows", SIZE_MAX);
        c->buf = calloc((size_t)h, rowbytes);
        if (!c->buf) return dlv_error_nomem("interlaced PNG rows", (size_t)h * rowbytes);
        for (int p = 0; p < passes; p++)
            for (png_uint_32 y = 0; y < h; y++) png_read_row(png, c->buf + y * rowbytes, NULL);
        for (png_uint_32 y = 0; y < h; y++)
            convert_row(kind, c->buf + y * rowbytes, c->out->px + (size_t)y * w * 3, w,
                        (const uint8_t(*)[3])palette);
    } else {
        c->buf = malloc(rowbytes);
        if (!c->buf) return dlv_error_nomem("PNG row", rowbytes);
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, c->buf, NULL);
            convert_row(kind, c->buf, c->out->px + (size_t)y * w * 3, w,
                        (const uint8_t(*)[3])palette);
        }
    }
    return DLV_OK;
}

dlv_status dlv_decode_png(const unsigned char *data, size_t n, const char *label,
                          uint64_t max_pixels, dlv_rgb8 *out, int *orientation)
{
    out->px = NULL;
    out->width = out->height = 0;
    *orientation = 1;
    png_ctx c;
    memset(&c, 0, sizeof c);
    c.data = data;
    c.n = n;
    c.out = out;
    c.orientation = 1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return dlv_error_nomem("libpng state", sizeof c);
    }
    png_set_read_fn(png, &c, read_bytes);
    /* libpng's default 1,000,000-pixel side limit is not Pillow's; the pixel
     * count limit is checked after the header instead. */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    dlv_status st = read_pixels(png, info, &c, label, max_pixels);
    png_destroy_read_struct(&png, &info, NULL);
    free(c.buf);
    if (st != DLV_OK) {
        dlv_rgb8_free(out);
        if (st == DLV_E_FORMAT && c.msg[0])
            return dlv_error(DLV_E_FORMAT, "%s: invalid PNG: %s", label, c.msg);
        return st;
    }
    *orientation = c.orientation;
    return DLV_OK;
}
