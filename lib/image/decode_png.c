/* PNG through libpng's classic interface. libpng reports errors by longjmp;
 * the one setjmp lives in read_pixels and every jump lands there, so no jump
 * ever leaves this file. Transformations are chosen to give what Pillow's
 * PNG plugin followed by convert("RGB") gives: no gamma, tRNS ignored,
 * 1/2/4-bit gray scaled to 0..255, 16-bit samples reduced to their high
 * byte except plain 16-bit gray (Pillow's I;16), which is clipped to 255.
 *
 * Memory (docs/images.md "Hostile input"): the whole input is in memory, so
 * every chunk's declared length is checked against the bytes that follow it
 * before libpng runs (libpng 1.6 allocates and zeroes a text chunk's
 * declared length before reading it, and only warns about its own limits);
 * the ancillary chunks this decoder never uses are skipped unread; and every
 * libpng allocation comes from a budget proportional to the input size and
 * the image width. */
#include <png.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "image/decode.h"

/* libpng's allocations beyond twice the input stay under this: its structs,
 * the zlib state and window, the IDAT read buffer, palettes. */
#define PNG_MEM_BASE ((size_t)1 << 20)

typedef struct png_ctx {
    const unsigned char *data;
    size_t n, pos;
    char msg[256];
    unsigned char *buf;   /* one row, or the whole image when interlaced */
    dlv_rgb8 *out;
    int orientation;
    /* The allocation budget (budget_malloc): bytes libpng holds, the most
     * it may hold, and the request refused when it would have gone over. */
    size_t mem_live, mem_cap, mem_refused;
} png_ctx;

#ifdef PNG_USER_MEM_SUPPORTED
/* Each block libpng gets is preceded by its size, so that budget_free can
 * give it back to the budget; the union keeps the block maximally aligned. */
typedef union mem_head {
    max_align_t align;
    size_t size;
} mem_head;

static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* libpng's malloc_fn: refuses (NULL) what would take libpng past mem_cap.
 * libpng turns a refusal into png_error("Out of Memory"), or, for an
 * ancillary chunk, into a warning and skips the chunk. */
static png_voidp budget_malloc(png_structp png, png_alloc_size_t size)
{
    png_ctx *c = png_get_mem_ptr(png);
    if (size == 0 || size > c->mem_cap - c->mem_live || size > SIZE_MAX - sizeof(mem_head)) {
        if (size > c->mem_refused) c->mem_refused = size;
        return NULL;
    }
    mem_head *h = malloc(sizeof *h + size);
    if (!h) return NULL;
    h->size = size;
    c->mem_live += size;
    return h + 1;
}

static void budget_free(png_structp png, png_voidp p)
{
    if (!p) return;
    png_ctx *c = png_get_mem_ptr(png);
    mem_head *h = (mem_head *)p - 1;
    c->mem_live -= h->size;
    free(h);
}
#endif

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int is_chunk_type(const unsigned char *t)
{
    for (int i = 0; i < 4; i++)
        if (!((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z'))) return 0;
    return 1;
}

/* Walks the chunk headers from the signature to IEND and refuses a chunk
 * whose declared length is more than the bytes after its header, before
 * libpng allocates for it. Pillow reads every chunk up to IEND, those after
 * the image data too, and refuses one that runs past the end of the file
 * ("Truncated File Read"), so the walk goes as far as Pillow's reading
 * does: to IEND, or in an animated PNG (an acTL before the image data
 * announcing more than one frame) to the fcTL of the second frame, where
 * Pillow stops loading the first. A cut inside a chunk header or a CRC, or
 * a type that is not four letters, ends the walk: libpng reports those if
 * they come before the image data, and neither libpng nor Pillow looks at
 * them after it. Returns 0, or -1 with c->msg set. */
static int check_chunk_lengths(png_ctx *c)
{
    size_t pos = 8; /* after the signature */
    int seen_idat = 0, n_actl = 0;
    uint32_t n_frames = 0;
    while (c->n - pos >= 8) {
        uint32_t len = be32(c->data + pos);
        const unsigned char *type = c->data + pos + 4;
        size_t left = c->n - pos - 8;
        if (!is_chunk_type(type) || memcmp(type, "IEND", 4) == 0) return 0;
        /* Pillow's animated test: one acTL, 2 to 2^31 frames. */
        if (seen_idat && memcmp(type, "fcTL", 4) == 0 && n_actl == 1 && n_frames > 1 &&
            n_frames <= 0x80000000u)
            return 0;
        if (len > left) {
            snprintf(c->msg, sizeof c->msg,
                     "truncated data: the %.4s chunk at offset %zu declares %lu bytes of "
                     "data, only %zu follow its header", (const char *)type, pos,
                     (unsigned long)len, left);
            return -1;
        }
        if (memcmp(type, "IDAT", 4) == 0) {
            seen_idat = 1;
        } else if (!seen_idat && memcmp(type, "acTL", 4) == 0 && len >= 8) {
            n_actl++;
            n_frames = be32(c->data + pos + 8);
        }
        pos += 8 + (size_t)len;
        if (c->n - pos < 4) return 0;
        pos += 4; /* CRC */
    }
    return 0;
}

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
    /* libpng's two row buffers (png_read_start_row) are at most 8 bytes a
     * pixel (RGBA 16-bit) plus a few dozen bytes each; room for four. */
    uint64_t rows = 4 * (8 * (uint64_t)w + 256);
    c->mem_cap = add_sat(c->mem_cap, rows > SIZE_MAX ? SIZE_MAX : (size_t)rows);

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
    /* What libpng may hold at once: twice the input (a chunk's read buffer
     * and the copy it stores, eXIf being the largest we keep), a constant,
     * and the row buffers, added once the width is known. */
    c.mem_cap = add_sat(PNG_MEM_BASE, add_sat(n, n));
    if (check_chunk_lengths(&c) != 0)
        return dlv_error(DLV_E_FORMAT, "%s: invalid PNG: %s", label, c.msg);
#ifdef PNG_USER_MEM_SUPPORTED
    png_structp png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning,
                                               &c, budget_malloc, budget_free);
#else
    /* No budget: the length check and the skipped chunks bound libpng. */
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
#endif
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return dlv_error_nomem("libpng state", sizeof c);
    }
    png_set_read_fn(png, &c, read_bytes);
    /* libpng's default 1,000,000-pixel side limit is not Pillow's; the pixel
     * count limit is checked after the header instead. */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
#ifdef PNG_HANDLE_AS_UNKNOWN_SUPPORTED
    /* Chunks read past unbuffered (png_crc_finish): the unknown ones, as by
     * default, and those libpng would buffer, inflate or store that nothing
     * here reads: text, suggested palettes, ICC profiles (Pillow keeps one
     * in info, but convert("RGB") does no colour management), pCAL, sCAL.
     * None changes a pixel under the transformations used here; gAMA,
     * cHRM, sRGB, tRNS, sBIT and the rest are small and stay handled, eXIf
     * is read for the orientation. CRC errors in skipped chunks are
     * warnings, as before. */
    static const png_byte skipped[] = "iCCP\0iTXt\0pCAL\0sCAL\0sPLT\0tEXt\0zTXt";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skipped, (int)(sizeof skipped / 5));
#endif
    /* For a libpng without the skip list: a chunk inflated to more than the
     * input (zTXt, iTXt, iCCP) is dropped with a warning, and at most a few
     * text or unknown chunks are stored. The budget holds either way. */
    png_set_chunk_malloc_max(png, add_sat(n, (size_t)64 << 10));
    png_set_chunk_cache_max(png, 32);
    dlv_status st = read_pixels(png, info, &c, label, max_pixels);
    png_destroy_read_struct(&png, &info, NULL);
    free(c.buf);
    if (st != DLV_OK) {
        dlv_rgb8_free(out);
        if (st == DLV_E_FORMAT && c.mem_refused)
            return dlv_error(DLV_E_FORMAT, "%s: invalid PNG: libpng asked for %zu bytes, more "
                             "than this file warrants (at most %zu at once for a %zu-byte "
                             "file: twice its size, 1 MiB and the row buffers): %s", label,
                             c.mem_refused, c.mem_cap, n, c.msg);
        if (st == DLV_E_FORMAT && c.msg[0])
            return dlv_error(DLV_E_FORMAT, "%s: invalid PNG: %s", label, c.msg);
        return st;
    }
    *orientation = c.orientation;
    return DLV_OK;
}
