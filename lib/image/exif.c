/* EXIF orientation: read from the TIFF structure of an EXIF block, applied
 * as Pillow's ImageOps.exif_transpose does. The Hugging Face processors do
 * not rotate, so this runs only when asked (exif_rotate). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "image/decode.h"

static unsigned rd16(const unsigned char *p, int le)
{
    return le ? (unsigned)p[0] | ((unsigned)p[1] << 8) : ((unsigned)p[0] << 8) | p[1];
}

static uint32_t rd32(const unsigned char *p, int le)
{
    return le ? (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                    ((uint32_t)p[3] << 24)
              : ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                    (uint32_t)p[3];
}

int dlv_exif_orientation(const unsigned char *tiff, size_t n)
{
    if (!tiff || n < 8) return 1;
    int le;
    if (memcmp(tiff, "II*\0", 4) == 0)
        le = 1;
    else if (memcmp(tiff, "MM\0*", 4) == 0)
        le = 0;
    else
        return 1;
    uint32_t ifd = rd32(tiff + 4, le);
    if (ifd > n || n - ifd < 2) return 1;
    unsigned count = rd16(tiff + ifd, le);
    size_t room = (n - ifd - 2) / 12;
    if (count > room) count = (unsigned)room;
    for (unsigned i = 0; i < count; i++) {
        const unsigned char *e = tiff + ifd + 2 + 12 * (size_t)i;
        if (rd16(e, le) != 0x0112) continue;
        unsigned type = rd16(e + 2, le);
        uint32_t v = type == 3 ? rd16(e + 8, le) : type == 4 ? rd32(e + 8, le) : 1;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

dlv_status dlv_rgb8_orient(dlv_rgb8 *img, int orientation)
{
    if (orientation < 2 || orientation > 8) return DLV_OK;
    uint32_t w = img->width, h = img->height;
    int swap = orientation >= 5; /* transpose-like: width and height exchange */
    dlv_rgb8 out;
    dlv_status st = dlv_rgb8_alloc(&out, swap ? h : w, swap ? w : h);
    if (st != DLV_OK) return st;
    uint32_t ow = out.width, oh = out.height;
    for (uint32_t y = 0; y < oh; y++) {
        for (uint32_t x = 0; x < ow; x++) {
            uint32_t sx, sy;
            switch (orientation) {
            case 2: sx = w - 1 - x; sy = y; break;         /* mirror left-right */
            case 3: sx = w - 1 - x; sy = h - 1 - y; break; /* rotate 180 */
            case 4: sx = x; sy = h - 1 - y; break;         /* mirror top-bottom */
            case 5: sx = y; sy = x; break;                 /* transpose */
            case 6: sx = y; sy = h - 1 - x; break;         /* rotate 90 clockwise */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break; /* transverse */
            default: sx = w - 1 - y; sy = x; break;        /* 8: rotate 90 counter-clockwise */
            }
            memcpy(out.px + ((size_t)y * ow + x) * 3, img->px + ((size_t)sy * w + sx) * 3, 3);
        }
    }
    dlv_rgb8_free(img);
    *img = out;
    return DLV_OK;
}
