/* JPEG decoding through libjpeg(-turbo), with its longjmp errors caught here. */
#include "lr_image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char *msg;
    size_t msg_cap;
    uint8_t *pixels;
} jpeg_context;

static void on_error(j_common_ptr cinfo) {
    jpeg_context *ctx = (jpeg_context *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    snprintf(ctx->msg, ctx->msg_cap, "JPEG: %s", text);
    longjmp(ctx->jump, 1);
}

/* Warnings are ignored (as Pillow does) except a premature end of data: Pillow refuses a
   truncated JPEG ("image file is truncated") unless told otherwise, so this is an error too. */
static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        on_error(cinfo);
    }
}

static int decode(struct jpeg_decompress_struct *cinfo, jpeg_context *ctx, const uint8_t *data, size_t size,
                  int64_t max_pixels, lr_raw_image *out) {
    jpeg_mem_src(cinfo, (unsigned char *)data, (unsigned long)size);
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(cinfo, TRUE);
    int64_t width = cinfo->image_width;
    int64_t height = cinfo->image_height;
    if (width * height > max_pixels) {
        snprintf(ctx->msg, ctx->msg_cap, "JPEG: %lld x %lld = %lld pixels exceeds the limit of %lld",
                 (long long)width, (long long)height, (long long)(width * height), (long long)max_pixels);
        return LR_IMAGE_TOO_LARGE;
    }
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo->out_color_space = JCS_CMYK;
        break;
    default:
        cinfo->out_color_space = JCS_RGB;
        break;
    }
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            out->exif = malloc(m->data_length - 6 + 1);
            if (!out->exif) {
                return LR_IMAGE_NO_MEMORY;
            }
            memcpy(out->exif, m->data + 6, m->data_length - 6);
            out->exif_len = m->data_length - 6;
            break;
        }
    }
    jpeg_start_decompress(cinfo);
    int channels = cinfo->output_components;
    size_t rowbytes = (size_t)cinfo->output_width * (size_t)channels;
    ctx->pixels = malloc(rowbytes * cinfo->output_height + 1);
    if (!ctx->pixels) {
        snprintf(ctx->msg, ctx->msg_cap, "JPEG: out of memory for %lld x %lld pixels", (long long)width,
                 (long long)height);
        return LR_IMAGE_NO_MEMORY;
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = ctx->pixels + (size_t)cinfo->output_scanline * rowbytes;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
            snprintf(ctx->msg, ctx->msg_cap, "JPEG: file is truncated");
            return LR_IMAGE_CORRUPT;
        }
    }
    jpeg_finish_decompress(cinfo);
    out->pixels = ctx->pixels;
    ctx->pixels = NULL;
    out->width = cinfo->output_width;
    out->height = cinfo->output_height;
    out->channels = channels;
    out->depth = 8;
    out->png_color_type = -1;
    out->png_bit_depth = 8;
    out->jpeg_adobe = cinfo->saw_Adobe_marker;
    return LR_IMAGE_OK;
}

int lr_jpeg_decode(const uint8_t *data, size_t size, int64_t max_pixels, lr_raw_image *out, char *msg,
                   size_t msg_cap) {
    memset(out, 0, sizeof(*out));
    if (msg_cap > 0) {
        msg[0] = 0;
    }
    if (size < 3 || data[0] != 0xff || data[1] != 0xd8) {
        snprintf(msg, msg_cap, "JPEG: not a JPEG signature");
        return LR_IMAGE_CORRUPT;
    }
    struct jpeg_decompress_struct cinfo;
    memset(&cinfo, 0, sizeof(cinfo)); /* jpeg_destroy_decompress is then safe even if creation failed */
    jpeg_context ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.msg = msg;
    ctx.msg_cap = msg_cap;
    cinfo.err = jpeg_std_error(&ctx.base);
    ctx.base.error_exit = on_error;
    ctx.base.emit_message = on_message;
    int status;
    if (setjmp(ctx.jump)) {
        status = LR_IMAGE_CORRUPT;
    } else {
        jpeg_create_decompress(&cinfo);
        status = decode(&cinfo, &ctx, data, size, max_pixels, out);
    }
    jpeg_destroy_decompress(&cinfo);
    free(ctx.pixels);
    if (status != LR_IMAGE_OK) {
        free(out->exif);
        memset(out, 0, sizeof(*out));
    }
    return status;
}
