/* Image decoding glue for libpng and libjpeg-turbo. Both libraries report errors with longjmp;
 * these functions catch them (setjmp) and return a status and a message instead, so a corrupt
 * file never aborts the process. Pixel conversion (Pillow's rules) happens in Swift. */
#ifndef LR_IMAGE_H
#define LR_IMAGE_H

#include <stddef.h>
#include <stdint.h>

enum {
    LR_IMAGE_OK = 0,
    LR_IMAGE_CORRUPT = 1,    /* the library refused the data; msg says why */
    LR_IMAGE_TOO_LARGE = 2,  /* width * height exceeds max_pixels */
    LR_IMAGE_NO_MEMORY = 3
};

/* A decoded image as the library delivers it. PNG: after expanding palettes (with their tRNS alphas)
 * and grey below 8 bits to full channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), 8 or 16 bits
 * (big-endian samples); a grey or RGB tRNS colour is returned in png_trns, not applied.
 * JPEG: 1 (grey), 3 (RGB) or 4 (CMYK as stored, Adobe-inverted), 8 bits. */
typedef struct lr_raw_image {
    uint8_t *pixels;   /* malloc'd, height * width * channels * depth / 8 bytes, rows packed */
    int64_t width;
    int64_t height;
    int32_t channels;
    int32_t depth;
    int32_t png_color_type; /* PNG: the file's colour type; JPEG: -1 */
    int32_t png_bit_depth;  /* PNG: the file's bit depth; JPEG: 8 */
    int32_t png_has_trns;   /* PNG: a tRNS chunk was present */
    int32_t png_trns[3];    /* PNG grey/RGB tRNS colour as stored (not applied); grey in [0] */
    int32_t jpeg_adobe;     /* JPEG: an Adobe APP14 marker was present */
    uint8_t *exif;          /* malloc'd TIFF-structured EXIF (JPEG: the first APP1 "Exif\0\0" payload;
                               PNG: the eXIf chunk), or NULL */
    int64_t exif_len;
} lr_raw_image;

/* Decode `size` bytes. On success *out owns its buffers (free with lr_raw_image_free). On failure
 * *out holds no buffers and msg (msg_cap bytes) gets a NUL-terminated reason. */
int lr_png_decode(const uint8_t *data, size_t size, int64_t max_pixels, lr_raw_image *out, char *msg,
                  size_t msg_cap);
int lr_jpeg_decode(const uint8_t *data, size_t size, int64_t max_pixels, lr_raw_image *out, char *msg,
                   size_t msg_cap);
void lr_raw_image_free(lr_raw_image *image);

#endif
