/* JPEG through libjpeg(-turbo), set up as Pillow's JPEG decoder is: the
 * accurate integer IDCT (JDCT_ISLOW) and fancy upsampling, libjpeg's own
 * colour conversion to RGB or gray, and raw CMYK for 4-component files,
 * which Pillow reads as Adobe-inverted ("CMYK;I") and converts to RGB with
 * its cmyk2rgb formula. libjpeg's error_exit longjmps back into read_pixels,
 * the only setjmp; nothing escapes this file.
 *
 * What is refused is what Pillow's Image.open + load() refuses
 * (docs/images.md "Hostile input"): Pillow's decoder (JpegDecode.c) ignores
 * every libjpeg warning, turns every libjpeg error into "broken data
 * stream", and feeds the data through a suspending source, so running out
 * of data before the last row is "image file is truncated". After the last
 * row it calls jpeg_finish_decompress, which reads the markers up to EOI:
 * an error there (an unknown marker met in the scan, a second scan in a
 * baseline file) is refused too, while running out of data there is not.
 * libjpeg's memory source meets a premature end with a warning
 * (JWRN_JPEG_EOF) and a fake EOI instead of suspending, so that warning is
 * the truncation before the last row and harmless after it. */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "core/error.h"
#include "image/decode.h"

typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub; /* first: libjpeg hands back this pointer */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    char warning[JMSG_LENGTH_MAX]; /* the first warning, for context in messages */
    int truncated;
    int in_header;     /* inside jpeg_read_header */
    int tem_in_header; /* a TEM marker came before the first scan */
    int rows_done;     /* every row read: only jpeg_finish_decompress is left */
    JSAMPLE *row;
    dlv_rgb8 *out;
    int orientation;
} jpeg_ctx;

static void on_error_exit(j_common_ptr cinfo)
{
    jpeg_ctx *c = (jpeg_ctx *)(void *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, c->msg);
    longjmp(c->jump, 1);
}

static void on_emit(j_common_ptr cinfo, int level)
{
    jpeg_ctx *c = (jpeg_ctx *)(void *)cinfo->err;
    int code = cinfo->err->msg_code;
    if (level < 0) {
        cinfo->err->num_warnings++;
        if (code == JWRN_JPEG_EOF) {
            if (!c->rows_done) c->truncated = 1;
        } else if (c->warning[0] == '\0') {
            (*cinfo->err->format_message)(cinfo, c->warning);
        }
    } else if (c->in_header && code == JTRC_PARMLESS_MARKER &&
               cinfo->err->msg_parm.i[0] == 0x01) {
        /* libjpeg skips TEM (0xFF01); Pillow's own header parser, which
         * walks the markers up to the first SOS, knows no such marker and
         * refuses the file ("no marker found"). */
        c->tem_in_header = 1;
    }
}

static void on_output(j_common_ptr cinfo)
{
    (void)cinfo; /* never print to stderr */
}

/* MULDIV255 of Pillow's Convert.c: a * b / 255, rounded. */
static unsigned muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128u;
    return ((t >> 8) + t) >> 8;
}

static void convert_row(int comps, const JSAMPLE *in, uint8_t *out, uint32_t w)
{
    for (uint32_t x = 0; x < w; x++, out += 3) {
        if (comps == 1) {
            out[0] = out[1] = out[2] = in[x];
        } else if (comps == 3) {
            memcpy(out, in + 3 * (size_t)x, 3);
        } else {
            const JSAMPLE *p = in + 4 * (size_t)x;
            unsigned nk = (unsigned)p[3]; /* 255 - inverted k */
            for (int ch = 0; ch < 3; ch++) {
                unsigned cc = 255u - p[ch];
                unsigned m = muldiv255(cc, nk);
                out[ch] = (uint8_t)(nk > m ? nk - m : 0u);
            }
        }
    }
}

/* The orientation from the first APP1 "Exif\0\0" marker saved by libjpeg. */
static int marker_orientation(j_decompress_ptr cinfo)
{
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
            memcmp(m->data, "Exif\0\0", 6) == 0)
            return dlv_exif_orientation(m->data + 6, m->data_length - 6);
    return 1;
}

static dlv_status read_pixels(struct jpeg_decompress_struct *cinfo, jpeg_ctx *c,
                              const unsigned char *data, size_t n, const char *label,
                              uint64_t max_pixels)
{
    if (setjmp(c->jump)) return DLV_E_FORMAT;

    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, data, (unsigned long)n);
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
    c->in_header = 1;
    int header = jpeg_read_header(cinfo, TRUE);
    c->in_header = 0;
    if (header != JPEG_HEADER_OK) {
        snprintf(c->msg, sizeof c->msg, "no image in the data");
        return DLV_E_FORMAT;
    }
    if (c->truncated) {
        snprintf(c->msg, sizeof c->msg, "truncated data (premature end in the header)");
        return DLV_E_FORMAT;
    }
    if (c->tem_in_header) {
        snprintf(c->msg, sizeof c->msg, "a TEM marker (0xFF01) before the first scan (Pillow "
                 "refuses it: no marker found)");
        return DLV_E_FORMAT;
    }
    dlv_status st = dlv_decode_check_size(label, "JPEG", cinfo->image_width,
                                          cinfo->image_height, max_pixels);
    if (st != DLV_OK) return st;
    c->orientation = marker_orientation(cinfo);

    int comps = cinfo->num_components;
    if (comps == 1)
        cinfo->out_color_space = JCS_GRAYSCALE;
    else if (comps == 3)
        cinfo->out_color_space = JCS_RGB;
    else if (comps == 4)
        cinfo->out_color_space = JCS_CMYK;
    else
        return dlv_error(DLV_E_UNSUPPORTED, "%s: JPEG with %d components is not supported "
                         "(1, 3 or 4)", label, comps);
    cinfo->dct_method = JDCT_ISLOW;
    cinfo->do_fancy_upsampling = TRUE;
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != comps || cinfo->output_width != cinfo->image_width ||
        cinfo->output_height != cinfo->image_height) {
        snprintf(c->msg, sizeof c->msg, "unexpected output geometry");
        return DLV_E_FORMAT;
    }
    uint32_t w = cinfo->output_width, h = cinfo->output_height;
    if ((st = dlv_rgb8_alloc(c->out, w, h)) != DLV_OK) return st;
    c->row = malloc((size_t)w * (size_t)comps);
    if (!c->row) return dlv_error_nomem("JPEG row", (size_t)w * (size_t)comps);
    while (cinfo->output_scanline < h) {
        uint32_t y = cinfo->output_scanline;
        JSAMPROW rows[1] = {c->row};
        if (jpeg_read_scanlines(cinfo, rows, 1) != 1) {
            snprintf(c->msg, sizeof c->msg, "decoder stopped at row %u", (unsigned)y);
            return DLV_E_FORMAT;
        }
        if (c->truncated) {
            snprintf(c->msg, sizeof c->msg, "truncated data (premature end at row %u of %u)",
                     (unsigned)y, (unsigned)h);
            return DLV_E_FORMAT;
        }
        convert_row(comps, c->row, c->out->px + (size_t)y * w * 3, w);
    }
    /* As Pillow does: the markers after the scan data, up to EOI, are read
     * and an error among them refuses the image (on_error_exit). A marker
     * met inside a baseline scan is only read here: libjpeg zero-fills the
     * rest of the scan with a warning and leaves the marker for later. */
    c->rows_done = 1;
    (void)jpeg_finish_decompress(cinfo); /* no suspension with a memory source */
    return DLV_OK;
}

dlv_status dlv_decode_jpeg(const unsigned char *data, size_t n, const char *label,
                           uint64_t max_pixels, dlv_rgb8 *out, int *orientation)
{
    out->px = NULL;
    out->width = out->height = 0;
    *orientation = 1;
    if (n > ULONG_MAX) return dlv_error(DLV_E_UNSUPPORTED, "%s: JPEG data too large", label);
    struct jpeg_decompress_struct cinfo;
    jpeg_ctx c;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&c, 0, sizeof c);
    cinfo.err = jpeg_std_error(&c.pub);
    c.pub.error_exit = on_error_exit;
    c.pub.emit_message = on_emit;
    c.pub.output_message = on_output;
    c.out = out;
    c.orientation = 1;
    dlv_status st = read_pixels(&cinfo, &c, data, n, label, max_pixels);
    jpeg_destroy_decompress(&cinfo);
    free(c.row);
    if (st != DLV_OK) {
        dlv_rgb8_free(out);
        /* libjpeg meets a premature end with a warning and a fake end of
         * image, so its later error ("contains no image") hides the cause. */
        if (st == DLV_E_FORMAT && c.truncated && strncmp(c.msg, "truncated", 9) != 0)
            return dlv_error(DLV_E_FORMAT, "%s: invalid JPEG: truncated data (%s)", label, c.msg);
        if (st == DLV_E_FORMAT && c.rows_done)
            return dlv_error(DLV_E_FORMAT, "%s: invalid JPEG: %s (in the markers after the "
                             "image data%s%s)", label, c.msg,
                             c.warning[0] ? "; libjpeg had warned: " : "", c.warning);
        if (st == DLV_E_FORMAT && c.msg[0])
            return dlv_error(DLV_E_FORMAT, "%s: invalid JPEG: %s", label, c.msg);
        return st;
    }
    *orientation = c.orientation;
    return DLV_OK;
}
