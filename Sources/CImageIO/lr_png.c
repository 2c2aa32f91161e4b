/* PNG decoding through libpng's transformations, with its longjmp errors caught here. */
#include "lr_image.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    char *msg;
    size_t msg_cap;
    uint8_t *pixels;
    png_bytep *rows;
} png_context;

static void on_error(png_structp png, png_const_charp text) {
    png_context *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, ctx->msg_cap, "PNG: %s", text);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void read_bytes(png_structp png, png_bytep out, png_size_t n) {
    png_context *ctx = png_get_io_ptr(png);
    if (n > ctx->size - ctx->pos) {
        png_error(png, "file is truncated");
    }
    memcpy(out, ctx->data + ctx->pos, n);
    ctx->pos += n;
}

static int decode(png_structp png, png_infop info, png_context *ctx, int64_t max_pixels, lr_raw_image *out) {
    png_set_read_fn(png, ctx, read_bytes);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    int color_type = png_get_color_type(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    if ((int64_t)width * (int64_t)height > max_pixels) {
        snprintf(ctx->msg, ctx->msg_cap, "PNG: %u x %u = %lld pixels exceeds the limit of %lld", width, height,
                 (long long)width * (long long)height, (long long)max_pixels);
        return LR_IMAGE_TOO_LARGE;
    }
    int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_set_palette_to_rgb(png);
    }
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png);
    }
    if (has_trns && color_type == PNG_COLOR_TYPE_PALETTE) {
        png_set_tRNS_to_alpha(png);
    } else if (has_trns) {
        png_color_16p colour = NULL;
        png_get_tRNS(png, info, NULL, NULL, &colour);
        if (colour) {
            out->png_trns[0] = color_type == PNG_COLOR_TYPE_GRAY ? colour->gray : colour->red;
            out->png_trns[1] = colour->green;
            out->png_trns[2] = colour->blue;
        }
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    int depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)width * (size_t)channels * (size_t)(depth / 8) || (depth != 8 && depth != 16)) {
        snprintf(ctx->msg, ctx->msg_cap, "PNG: unexpected layout after expansion (%d channels, %d bits)", channels,
                 depth);
        return LR_IMAGE_CORRUPT;
    }
    ctx->pixels = malloc(rowbytes * height + 1);
    ctx->rows = malloc(sizeof(png_bytep) * height + 1);
    if (!ctx->pixels || !ctx->rows) {
        snprintf(ctx->msg, ctx->msg_cap, "PNG: out of memory for %u x %u pixels", width, height);
        return LR_IMAGE_NO_MEMORY;
    }
    for (png_uint_32 y = 0; y < height; y++) {
        ctx->rows[y] = ctx->pixels + (size_t)y * rowbytes;
    }
    png_read_image(png, ctx->rows);
    /* With info, chunks after the image data (an eXIf may follow IDAT) are read into it too. */
    png_read_end(png, info);
    png_uint_32 exif_len = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(png, info, &exif_len, &exif) && exif && exif_len > 0) {
        out->exif = malloc(exif_len);
        if (!out->exif) {
            return LR_IMAGE_NO_MEMORY;
        }
        memcpy(out->exif, exif, exif_len);
        out->exif_len = exif_len;
    }
    out->pixels = ctx->pixels;
    ctx->pixels = NULL;
    out->width = width;
    out->height = height;
    out->channels = channels;
    out->depth = depth;
    out->png_color_type = color_type;
    out->png_bit_depth = bit_depth;
    out->png_has_trns = has_trns;
    return LR_IMAGE_OK;
}

int lr_png_decode(const uint8_t *data, size_t size, int64_t max_pixels, lr_raw_image *out, char *msg,
                  size_t msg_cap) {
    memset(out, 0, sizeof(*out));
    if (msg_cap > 0) {
        msg[0] = 0;
    }
    png_context ctx = {data, size, 0, msg, msg_cap, NULL, NULL};
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(msg, msg_cap, "PNG: not a PNG signature");
        return LR_IMAGE_CORRUPT;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
    if (!png) {
        snprintf(msg, msg_cap, "PNG: out of memory");
        return LR_IMAGE_NO_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(msg, msg_cap, "PNG: out of memory");
        return LR_IMAGE_NO_MEMORY;
    }
    /* Pillow reads images up to its own pixel limit; lift libpng's 1,000,000-pixel side limit. */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    int status;
    if (setjmp(png_jmpbuf(png))) {
        status = LR_IMAGE_CORRUPT;
    } else {
        status = decode(png, info, &ctx, max_pixels, out);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx.pixels);
    free(ctx.rows);
    if (status != LR_IMAGE_OK) {
        free(out->exif);
        memset(out, 0, sizeof(*out));
    }
    return status;
}

void lr_raw_image_free(lr_raw_image *image) {
    if (!image) {
        return;
    }
    free(image->pixels);
    free(image->exif);
    image->pixels = NULL;
    image->exif = NULL;
}
