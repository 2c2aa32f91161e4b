"""Layer 2: 1:1 ctypes bindings of ``Sources/CLoRANAS/include/loranas.h``.

Each function keeps its C name and has its C prototype in a comment above it; ``argtypes`` and
``restype`` are always set. Nothing here raises on a non-zero status: ``errors.check`` does that.
Importing this module loads the library and refuses one whose ABI version differs from
``LORANAS_ABI_VERSION``.
"""

from __future__ import annotations

from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float, c_int32, c_int64, c_uint8, c_uint64,
                    c_void_p)

from ._lib import load_library

# LORANAS_OK, LORANAS_ERR_* and LORANAS_DTYPE_* are defined once, in _status (a test checks them
# against loranas.h).
from ._status import (  # noqa: F401  (re-exported)
    DTYPE_NAMES,
    LORANAS_DTYPE_BF16,
    LORANAS_DTYPE_BOOL,
    LORANAS_DTYPE_F16,
    LORANAS_DTYPE_F32,
    LORANAS_DTYPE_F64,
    LORANAS_DTYPE_I8,
    LORANAS_DTYPE_I16,
    LORANAS_DTYPE_I32,
    LORANAS_DTYPE_I64,
    LORANAS_DTYPE_U8,
    LORANAS_ERR_BUFFER_TOO_SMALL,
    LORANAS_ERR_FORMAT,
    LORANAS_ERR_INVALID_ARGUMENT,
    LORANAS_ERR_IO,
    LORANAS_ERR_NOT_FOUND,
    LORANAS_ERR_NUMERIC,
    LORANAS_ERR_UNSUPPORTED,
    LORANAS_OK,
    STATUS_NAMES,
)

# ---- constants (mirror loranas.h) --------------------------------------------------------------

# The ABI these bindings were written for.
LORANAS_ABI_VERSION = 5

LORANAS_MAX_DIMS = 8

# ---- types -------------------------------------------------------------------------------------

# typedef struct loranas_checkpoint loranas_checkpoint;  (opaque; a NULL handle is None)
loranas_checkpoint_p = c_void_p
# typedef struct loranas_model loranas_model;  (opaque)
loranas_model_p = c_void_p
# typedef struct loranas_dataset loranas_dataset;  (opaque)
loranas_dataset_p = c_void_p
# typedef struct loranas_result loranas_result;  (opaque)
loranas_result_p = c_void_p
# typedef struct loranas_tokenizer loranas_tokenizer;  (opaque)
loranas_tokenizer_p = c_void_p
c_float_p = POINTER(c_float)
c_int32_p = POINTER(c_int32)
c_int64_p = POINTER(c_int64)


class loranas_batch(Structure):
    """typedef struct loranas_batch { ... } loranas_batch;  (fourteen 8-byte fields)

    Inputs with transformers' names and shapes; optional pointers may be NULL (None).
    """

    _fields_ = [
        ("batch_size", c_int64),  # B
        ("seq_len", c_int64),  # S
        ("input_ids", c_int64_p),  # (B, S)
        ("attention_mask", c_int64_p),  # (B, S) or NULL (all real tokens)
        ("labels", c_int64_p),  # (B, S), -100 = ignored; NULL for no loss
        ("num_images", c_int64),  # I, 0 for a text-only batch
        ("num_tiles", c_int64),  # T, must equal vision max_num_tiles
        ("channels", c_int64),  # C of each tile
        ("height", c_int64),  # H
        ("width", c_int64),  # W
        ("pixel_values", c_float_p),  # (B, I, T, C, H, W) or NULL
        ("aspect_ratio_ids", c_int64_p),  # (B, I)
        ("aspect_ratio_mask", c_int64_p),  # (B, I, T)
        ("cross_attention_mask", c_int64_p),  # (B, S, I, T)
    ]

# ---- loading -----------------------------------------------------------------------------------

lib, lib_path = load_library()


def _bind(name: str, argtypes: list, restype):
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise ImportError(f"{lib_path} does not export {name}: the library and the bindings disagree") from None
    fn.argtypes = argtypes
    fn.restype = restype
    return fn


# ---- library -----------------------------------------------------------------------------------

# int32_t loranas_abi_version(void);
loranas_abi_version = _bind("loranas_abi_version", [], c_int32)

# Checked before binding the rest, so an older or newer library reports its version rather than a
# missing symbol.
_found_abi = loranas_abi_version()
if _found_abi != LORANAS_ABI_VERSION:
    raise ImportError(
        f"{lib_path} has ABI version {_found_abi}, but these bindings were written for ABI version "
        f"{LORANAS_ABI_VERSION}; rebuild the library or reinstall the package"
    )

# const char *loranas_version(void);
loranas_version = _bind("loranas_version", [], c_char_p)

# const char *loranas_last_error(void);
loranas_last_error = _bind("loranas_last_error", [], c_char_p)

# int32_t loranas_set_num_threads(int32_t n);
loranas_set_num_threads = _bind("loranas_set_num_threads", [c_int32], c_int32)

# int32_t loranas_get_num_threads(void);
loranas_get_num_threads = _bind("loranas_get_num_threads", [], c_int32)

# int32_t loranas_world(int32_t *rank, int32_t *size, char *summary, int64_t summary_len, int64_t *out_len);
loranas_world = _bind("loranas_world", [POINTER(c_int32), POINTER(c_int32), c_char_p, c_int64, POINTER(c_int64)],
                      c_int32)

# void loranas_world_abort(const char *message);
loranas_world_abort = _bind("loranas_world_abort", [c_char_p], None)

# ---- checkpoints -------------------------------------------------------------------------------

# int32_t loranas_checkpoint_open(const char *path, loranas_checkpoint **out);
loranas_checkpoint_open = _bind("loranas_checkpoint_open", [c_char_p, POINTER(loranas_checkpoint_p)], c_int32)

# void loranas_checkpoint_free(loranas_checkpoint *ckpt);
loranas_checkpoint_free = _bind("loranas_checkpoint_free", [loranas_checkpoint_p], None)

# int32_t loranas_checkpoint_count(const loranas_checkpoint *ckpt, int64_t *out_count);
loranas_checkpoint_count = _bind("loranas_checkpoint_count", [loranas_checkpoint_p, c_int64_p], c_int32)

# int32_t loranas_checkpoint_name(const loranas_checkpoint *ckpt, int64_t index, char *buf, int64_t buf_len,
#                                 int64_t *out_len);
loranas_checkpoint_name = _bind(
    "loranas_checkpoint_name", [loranas_checkpoint_p, c_int64, c_char_p, c_int64, c_int64_p], c_int32
)

# int32_t loranas_checkpoint_info(const loranas_checkpoint *ckpt, const char *name, int32_t *out_dtype,
#                                 int64_t *out_ndim, int64_t *out_shape, int64_t shape_capacity);
loranas_checkpoint_info = _bind(
    "loranas_checkpoint_info", [loranas_checkpoint_p, c_char_p, c_int32_p, c_int64_p, c_int64_p, c_int64], c_int32
)

# int32_t loranas_checkpoint_read_f32(const loranas_checkpoint *ckpt, const char *name, float *out,
#                                     int64_t count);
loranas_checkpoint_read_f32 = _bind(
    "loranas_checkpoint_read_f32", [loranas_checkpoint_p, c_char_p, c_float_p, c_int64], c_int32
)

# ---- kernels -----------------------------------------------------------------------------------

# int32_t loranas_matmul_f32(const float *a, int64_t a_count, const float *b, int64_t b_count, float *c,
#                            int64_t c_count, int64_t m, int64_t k, int64_t n, int32_t trans_a, int32_t trans_b);
loranas_matmul_f32 = _bind(
    "loranas_matmul_f32",
    [c_float_p, c_int64, c_float_p, c_int64, c_float_p, c_int64, c_int64, c_int64, c_int64, c_int32, c_int32],
    c_int32,
)

# ---- models ------------------------------------------------------------------------------------

# int32_t loranas_model_load(const char *path, const char *dtype, loranas_model **out);
loranas_model_load = _bind("loranas_model_load", [c_char_p, c_char_p, POINTER(loranas_model_p)], c_int32)

# int32_t loranas_model_init(const char *path, uint64_t seed, loranas_model **out);
loranas_model_init = _bind("loranas_model_init", [c_char_p, c_uint64, POINTER(loranas_model_p)], c_int32)

# void loranas_model_free(loranas_model *model);
loranas_model_free = _bind("loranas_model_free", [loranas_model_p], None)

# int32_t loranas_model_describe(const loranas_model *model, char *buf, int64_t buf_len, int64_t *out_len);
loranas_model_describe = _bind("loranas_model_describe", [loranas_model_p, c_char_p, c_int64, c_int64_p], c_int32)

# int32_t loranas_model_use_bfloat16(loranas_model *model, char *summary, int64_t summary_len, int64_t *out_len);
loranas_model_use_bfloat16 = _bind("loranas_model_use_bfloat16", [loranas_model_p, c_char_p, c_int64, POINTER(c_int64)],
                                   c_int32)

# int32_t loranas_model_forward(loranas_model *model, const loranas_batch *batch, float *logits, int64_t logits_count,
#                               float *loss, int32_t *has_loss);
loranas_model_forward = _bind(
    "loranas_model_forward",
    [loranas_model_p, POINTER(loranas_batch), c_float_p, c_int64, c_float_p, c_int32_p],
    c_int32,
)

# int32_t loranas_model_generate(loranas_model *model, const loranas_batch *prompt, int64_t max_new_tokens,
#                                double temperature, double top_p, uint64_t seed, const int64_t *stop_ids,
#                                int64_t num_stop_ids, int64_t *out_ids, int64_t out_count, int64_t *out_lengths,
#                                int64_t lengths_count);
loranas_model_generate = _bind(
    "loranas_model_generate",
    [loranas_model_p, POINTER(loranas_batch), c_int64, c_double, c_double, c_uint64, c_int64_p, c_int64, c_int64_p,
     c_int64, c_int64_p, c_int64],
    c_int32,
)

# int32_t loranas_model_load_adapter(loranas_model *model, const char *dir);
loranas_model_load_adapter = _bind("loranas_model_load_adapter", [loranas_model_p, c_char_p], c_int32)

# int32_t loranas_model_save_adapter(loranas_model *model, const char *dir);
loranas_model_save_adapter = _bind("loranas_model_save_adapter", [loranas_model_p, c_char_p], c_int32)

# int32_t loranas_model_save_merged(loranas_model *model, const char *dir, const char *dtype);
loranas_model_save_merged = _bind("loranas_model_save_merged", [loranas_model_p, c_char_p, c_char_p], c_int32)

# int32_t loranas_model_clear_adapters(loranas_model *model);
loranas_model_clear_adapters = _bind("loranas_model_clear_adapters", [loranas_model_p], c_int32)

# ---- datasets, search and fine-tuning ----------------------------------------------------------

# typedef int32_t (*loranas_progress_fn)(const char *event_json, void *user_data);
# Return 0 to continue, 1 to stop. The CFUNCTYPE object must stay referenced for the whole call it
# is passed to, and an exception must never leave the Python function (ctypes would print it and
# return 0): wrap callables with ``progress.ProgressBridge``. ``loranas_progress_fn()`` is NULL.
loranas_progress_fn = CFUNCTYPE(c_int32, c_char_p, c_void_p)

# int32_t loranas_dataset_create(const loranas_model *model, loranas_dataset **out);
loranas_dataset_create = _bind("loranas_dataset_create", [loranas_model_p, POINTER(loranas_dataset_p)], c_int32)

# void loranas_dataset_free(loranas_dataset *dataset);
loranas_dataset_free = _bind("loranas_dataset_free", [loranas_dataset_p], None)

# int32_t loranas_dataset_add(loranas_dataset *dataset, const loranas_batch *sample);
loranas_dataset_add = _bind("loranas_dataset_add", [loranas_dataset_p, POINTER(loranas_batch)], c_int32)

# int32_t loranas_dataset_count(const loranas_dataset *dataset, int64_t *out_count);
loranas_dataset_count = _bind("loranas_dataset_count", [loranas_dataset_p, c_int64_p], c_int32)

# int32_t loranas_dataset_skipped(const loranas_dataset *dataset, int64_t *out_skipped);
loranas_dataset_skipped = _bind("loranas_dataset_skipped", [loranas_dataset_p, c_int64_p], c_int32)

# int32_t loranas_dataset_split(const loranas_dataset *dataset, double fraction, uint64_t seed,
#                               loranas_dataset **out_train, loranas_dataset **out_validation);
loranas_dataset_split = _bind(
    "loranas_dataset_split",
    [loranas_dataset_p, c_double, c_uint64, POINTER(loranas_dataset_p), POINTER(loranas_dataset_p)],
    c_int32)


class loranas_sample(Structure):
    """One sample's dims and the caller's buffers (loranas.h)."""

    _fields_ = [
        ("seq_len", c_int64), ("num_images", c_int64), ("num_tiles", c_int64),
        ("channels", c_int64), ("height", c_int64), ("width", c_int64),
        ("input_ids", c_int64_p), ("labels", c_int64_p), ("pixel_values", c_float_p),
        ("aspect_ratio_ids", c_int64_p), ("aspect_ratio_mask", c_int64_p), ("cross_attention_mask", c_int64_p),
    ]


# int32_t loranas_dataset_sample(const loranas_dataset *dataset, int64_t index, loranas_sample *sample);
loranas_dataset_sample = _bind("loranas_dataset_sample", [loranas_dataset_p, c_int64, POINTER(loranas_sample)],
                               c_int32)

# int32_t loranas_search(loranas_model *model, const loranas_dataset *train, const loranas_dataset *validation,
#                        const char *options_json, loranas_progress_fn progress, void *user_data, loranas_result **out);
loranas_search = _bind(
    "loranas_search",
    [loranas_model_p, loranas_dataset_p, loranas_dataset_p, c_char_p, loranas_progress_fn, c_void_p,
     POINTER(loranas_result_p)],
    c_int32,
)

# int32_t loranas_pretrain(loranas_model *model, const loranas_dataset *train, const loranas_dataset *validation,
#                          const char *options_json, loranas_progress_fn progress, void *user_data,
#                          loranas_result **out);
loranas_pretrain = _bind(
    "loranas_pretrain",
    [loranas_model_p, loranas_dataset_p, loranas_dataset_p, c_char_p, loranas_progress_fn, c_void_p,
     POINTER(loranas_result_p)],
    c_int32,
)

# int32_t loranas_finetune(loranas_model *model, const loranas_dataset *train, const loranas_dataset *validation,
#                          const char *options_json, loranas_progress_fn progress, void *user_data,
#                          loranas_result **out);
loranas_finetune = _bind(
    "loranas_finetune",
    [loranas_model_p, loranas_dataset_p, loranas_dataset_p, c_char_p, loranas_progress_fn, c_void_p,
     POINTER(loranas_result_p)],
    c_int32,
)

# int32_t loranas_evaluate(loranas_model *model, const loranas_dataset *dataset, int64_t batch_size,
#                          loranas_result **out);
loranas_evaluate = _bind(
    "loranas_evaluate", [loranas_model_p, loranas_dataset_p, c_int64, POINTER(loranas_result_p)], c_int32
)

# int32_t loranas_evaluate_answers(loranas_model *model, const loranas_dataset *dataset, loranas_result **out);
loranas_evaluate_answers = _bind(
    "loranas_evaluate_answers", [loranas_model_p, loranas_dataset_p, POINTER(loranas_result_p)], c_int32)

# int32_t loranas_result_json(const loranas_result *result, char *buf, int64_t buf_len, int64_t *out_len);
loranas_result_json = _bind("loranas_result_json", [loranas_result_p, c_char_p, c_int64, c_int64_p], c_int32)

# void loranas_result_free(loranas_result *result);
loranas_result_free = _bind("loranas_result_free", [loranas_result_p], None)


# ---- tokenizer ---------------------------------------------------------------------------------

# int32_t loranas_tokenizer_load(const char *path, loranas_tokenizer **out);
loranas_tokenizer_load = _bind("loranas_tokenizer_load", [c_char_p, POINTER(loranas_tokenizer_p)], c_int32)

# void loranas_tokenizer_free(loranas_tokenizer *tok);
loranas_tokenizer_free = _bind("loranas_tokenizer_free", [loranas_tokenizer_p], None)

# int32_t loranas_tokenizer_encode(const loranas_tokenizer *tok, const char *text_utf8, int64_t text_len,
#                                  int32_t add_special, int64_t *ids, int64_t ids_capacity, int64_t *out_count);
loranas_tokenizer_encode = _bind(
    "loranas_tokenizer_encode",
    [loranas_tokenizer_p, c_char_p, c_int64, c_int32, c_int64_p, c_int64, c_int64_p],
    c_int32,
)

# int32_t loranas_tokenizer_decode(const loranas_tokenizer *tok, const int64_t *ids, int64_t count,
#                                  int32_t skip_special,
#                                  char *buf, int64_t buf_len, int64_t *out_len);
loranas_tokenizer_decode = _bind(
    "loranas_tokenizer_decode",
    [loranas_tokenizer_p, c_int64_p, c_int64, c_int32, c_char_p, c_int64, c_int64_p],
    c_int32,
)

# int32_t loranas_tokenizer_vocab_size(const loranas_tokenizer *tok, int64_t *out_size);
loranas_tokenizer_vocab_size = _bind("loranas_tokenizer_vocab_size", [loranas_tokenizer_p, c_int64_p], c_int32)

# int32_t loranas_tokenizer_token_to_id(const loranas_tokenizer *tok, const char *token, int64_t *out_id);
loranas_tokenizer_token_to_id = _bind(
    "loranas_tokenizer_token_to_id", [loranas_tokenizer_p, c_char_p, c_int64_p], c_int32
)

# ---- text --------------------------------------------------------------------------------------

# int32_t loranas_chat_render_record(const char *record_json, int32_t add_generation_prompt, const char *date_string,
#                                    char *buf, int64_t buf_len, int64_t *out_len);
loranas_chat_render_record = _bind(
    "loranas_chat_render_record", [c_char_p, c_int32, c_char_p, c_char_p, c_int64, c_int64_p], c_int32
)

# int32_t loranas_chat_render_messages(const char *messages_json, int32_t add_generation_prompt,
#                                      const char *date_string, char *buf, int64_t buf_len, int64_t *out_len);
loranas_chat_render_messages = _bind(
    "loranas_chat_render_messages", [c_char_p, c_int32, c_char_p, c_char_p, c_int64, c_int64_p], c_int32
)

# int32_t loranas_text_encode_record(const loranas_tokenizer *tok, const char *record_json, const char *date_string,
#                                    const int64_t *num_tiles, int64_t num_tiles_count, int64_t max_image_tiles,
#                                    int64_t max_length, int64_t *ids, int64_t *labels, int64_t capacity,
#                                    int64_t *cross_attention_mask, int64_t mask_count, int64_t *out_len);
loranas_text_encode_record = _bind(
    "loranas_text_encode_record",
    [loranas_tokenizer_p, c_char_p, c_char_p, c_int64_p, c_int64, c_int64, c_int64, c_int64_p, c_int64_p,
     c_int64, c_int64_p, c_int64, c_int64_p],
    c_int32,
)

# int32_t loranas_text_encode_prompts(const loranas_tokenizer *tok, const char *prompts_json,
#                                     const char *num_tiles_json, int64_t max_image_tiles, int64_t pad_token_id,
#                                     int32_t padding_left, int64_t *input_ids, int64_t *attention_mask,
#                                     int64_t ids_count, int64_t *cross_attention_mask, int64_t mask_count,
#                                     int64_t *out_batch, int64_t *out_seq_len, int64_t *out_max_images);
loranas_text_encode_prompts = _bind(
    "loranas_text_encode_prompts",
    [loranas_tokenizer_p, c_char_p, c_char_p, c_int64, c_int64, c_int32, c_int64_p, c_int64_p, c_int64,
     c_int64_p, c_int64, c_int64_p, c_int64_p, c_int64_p],
    c_int32,
)

# ---- images ------------------------------------------------------------------------------------

# enum { LORANAS_IMAGE_EXIF_TRANSPOSE = 1, LORANAS_IMAGE_DROP_ALPHA = 2 };
LORANAS_IMAGE_EXIF_TRANSPOSE = 1
LORANAS_IMAGE_DROP_ALPHA = 2
c_uint8_p = POINTER(c_uint8)
c_double_p = POINTER(c_double)

# int32_t loranas_image_decode(const uint8_t *bytes, int64_t n, int32_t flags, uint8_t *out_rgb, int64_t capacity,
#                              int64_t *out_h, int64_t *out_w);
loranas_image_decode = _bind(
    "loranas_image_decode", [c_uint8_p, c_int64, c_int32, c_uint8_p, c_int64, c_int64_p, c_int64_p], c_int32
)

# int32_t loranas_image_resize_rgb(const uint8_t *rgb, int64_t rgb_count, int64_t h, int64_t w, int64_t out_h,
#                                  int64_t out_w, uint8_t *out, int64_t out_count);
loranas_image_resize_rgb = _bind(
    "loranas_image_resize_rgb",
    [c_uint8_p, c_int64, c_int64, c_int64, c_int64, c_int64, c_uint8_p, c_int64],
    c_int32,
)

# int32_t loranas_image_process(const uint8_t *bytes, int64_t n, int32_t flags, int64_t tile_size,
#                               int64_t max_tiles, const double *mean, const double *std, double rescale_factor,
#                               float *pixel_values, int64_t pixel_values_count, int64_t *aspect_ratio_id,
#                               int64_t *aspect_ratio_mask, int64_t mask_count);
loranas_image_process = _bind(
    "loranas_image_process",
    [c_uint8_p, c_int64, c_int32, c_int64, c_int64, c_double_p, c_double_p, c_double, c_float_p, c_int64,
     c_int64_p, c_int64_p, c_int64],
    c_int32,
)

# ---- processor ---------------------------------------------------------------------------------

# typedef struct loranas_processor loranas_processor;  (opaque)
loranas_processor_p = c_void_p
# typedef struct loranas_processor_output loranas_processor_output;  (opaque)
loranas_processor_output_p = c_void_p


class loranas_image_input(Structure):
    """typedef struct loranas_image_input { ... } loranas_image_input;

    width = height = 0: ``data`` holds ``size`` bytes of PNG/JPEG decoded with ``flags``; otherwise raw RGB
    uint8 (height, width, 3). ``sample`` is the index of the sample the image belongs to.
    """

    _fields_ = [
        ("data", c_uint8_p),
        ("size", c_int64),
        ("width", c_int64),
        ("height", c_int64),
        ("flags", c_int32),
        ("sample", c_int32),
    ]


# int32_t loranas_processor_load(const char *model_dir, loranas_processor **out);
loranas_processor_load = _bind("loranas_processor_load", [c_char_p, POINTER(loranas_processor_p)], c_int32)

# void loranas_processor_free(loranas_processor *proc);
loranas_processor_free = _bind("loranas_processor_free", [loranas_processor_p], None)

# int32_t loranas_processor_info(const loranas_processor *proc, int64_t *out_pad_token_id,
#                                int64_t *out_image_token_id, int64_t *out_bos_token_id, int64_t *out_eos_token_id,
#                                int64_t *out_tile_size, int64_t *out_max_tiles, int32_t *out_padding_left);
loranas_processor_info = _bind(
    "loranas_processor_info",
    [loranas_processor_p, c_int64_p, c_int64_p, c_int64_p, c_int64_p, c_int64_p, c_int64_p, c_int32_p],
    c_int32,
)

# int32_t loranas_processor_tokenizer(const loranas_processor *proc, loranas_tokenizer **out);
loranas_processor_tokenizer = _bind(
    "loranas_processor_tokenizer", [loranas_processor_p, POINTER(loranas_tokenizer_p)], c_int32
)

# int32_t loranas_processor_call(const loranas_processor *proc, const char *texts_json,
#                                const loranas_image_input *images, int64_t num_images,
#                                loranas_processor_output **out);
loranas_processor_call = _bind(
    "loranas_processor_call",
    [loranas_processor_p, c_char_p, POINTER(loranas_image_input), c_int64, POINTER(loranas_processor_output_p)],
    c_int32,
)

# int32_t loranas_processor_output_shape(const loranas_processor_output *output, int64_t *out_batch,
#                                        int64_t *out_seq_len, int64_t *out_max_images, int64_t *out_max_tiles,
#                                        int64_t *out_tile_size);
loranas_processor_output_shape = _bind(
    "loranas_processor_output_shape",
    [loranas_processor_output_p, c_int64_p, c_int64_p, c_int64_p, c_int64_p, c_int64_p],
    c_int32,
)

# int32_t loranas_processor_output_read(const loranas_processor_output *output, int64_t *input_ids,
#                                       int64_t *attention_mask, int64_t ids_count, int64_t *cross_attention_mask,
#                                       int64_t cross_count, float *pixel_values, int64_t pixel_count,
#                                       int64_t *aspect_ratio_ids, int64_t ratio_ids_count,
#                                       int64_t *aspect_ratio_mask, int64_t ratio_mask_count);
loranas_processor_output_read = _bind(
    "loranas_processor_output_read",
    [loranas_processor_output_p, c_int64_p, c_int64_p, c_int64, c_int64_p, c_int64, c_float_p, c_int64,
     c_int64_p, c_int64, c_int64_p, c_int64],
    c_int32,
)

# void loranas_processor_output_free(loranas_processor_output *output);
loranas_processor_output_free = _bind("loranas_processor_output_free", [loranas_processor_output_p], None)

# int32_t loranas_processor_chat_template(const loranas_processor *proc, const char *messages_json,
#                                         int32_t add_generation_prompt, const char *date_string, char *buf,
#                                         int64_t buf_len, int64_t *out_len);
loranas_processor_chat_template = _bind(
    "loranas_processor_chat_template",
    [loranas_processor_p, c_char_p, c_int32, c_char_p, c_char_p, c_int64, c_int64_p],
    c_int32,
)

# ---- datasets from Cauldron records and packs -----------------------------------------------------------------

# int32_t loranas_dataset_from_cauldron(const char *model_dir, const loranas_processor *processor,
#                                       const char *jsonl_path, int64_t max_length, loranas_dataset **out);
loranas_dataset_from_cauldron = _bind(
    "loranas_dataset_from_cauldron",
    [c_char_p, loranas_processor_p, c_char_p, c_int64, POINTER(loranas_dataset_p)], c_int32)

# int32_t loranas_dataset_create_for_records(const char *model_dir, loranas_dataset **out);
loranas_dataset_create_for_records = _bind(
    "loranas_dataset_create_for_records", [c_char_p, POINTER(loranas_dataset_p)], c_int32)

# int32_t loranas_dataset_add_record(loranas_dataset *dataset, const loranas_processor *processor,
#                                    const char *record_json, const loranas_image_input *images,
#                                    int64_t num_images, int64_t max_length, int32_t *out_kept);
loranas_dataset_add_record = _bind(
    "loranas_dataset_add_record",
    [loranas_dataset_p, loranas_processor_p, c_char_p, POINTER(loranas_image_input), c_int64, c_int64,
     POINTER(c_int32)], c_int32)

# int32_t loranas_dataset_load(const char *pack_path, loranas_dataset **out);
loranas_dataset_load = _bind("loranas_dataset_load", [c_char_p, POINTER(loranas_dataset_p)], c_int32)

# int32_t loranas_dataset_save(const loranas_dataset *dataset, const char *pack_path);
loranas_dataset_save = _bind("loranas_dataset_save", [loranas_dataset_p, c_char_p], c_int32)
