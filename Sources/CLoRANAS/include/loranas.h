/*
 * loranas.h: the C ABI of libloranas.so.
 *
 * Conventions
 *  - Every function returns int32_t status (LORANAS_OK = 0), except the getters loranas_abi_version,
 *    loranas_version, loranas_last_error and loranas_get_num_threads, the *_free functions and
 *    loranas_world_abort.
 *  - On failure, loranas_last_error() returns this thread's message for the last failed call.
 *  - Buffers are contiguous, row-major; dimensions are int64_t; the caller allocates outputs and
 *    passes their element count, which the engine checks.
 *  - Handles are opaque; *_free accepts NULL. A handle may be used from several threads: calls on
 *    one handle are serialized by the engine. Freeing a handle while another thread uses it is
 *    undefined. Functions that create a handle set *out to NULL on failure. Handles are typed:
 *    passing a handle of another kind, a freed one or a pointer that is not a handle gives
 *    LORANAS_ERR_INVALID_ARGUMENT (and is ignored by *_free).
 *  - Strings are returned through (buf, buf_len, out_len): *out_len gets the length without the NUL;
 *    buf = NULL with buf_len = 0 is a size query; a buffer shorter than out_len + 1 gives
 *    LORANAS_ERR_BUFFER_TOO_SMALL.
 *  - Nothing throws or traps across this boundary.
 */
#ifndef LORANAS_H
#define LORANAS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LORANAS_ABI_VERSION 5

enum {
    LORANAS_OK = 0,
    LORANAS_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, wrong size or shape, bad value */
    LORANAS_ERR_IO = 2,               /* a file could not be opened, read or written */
    LORANAS_ERR_FORMAT = 3,           /* a file's contents are malformed */
    LORANAS_ERR_NOT_FOUND = 4,        /* no such tensor, module or key */
    LORANAS_ERR_NUMERIC = 5,          /* non-finite loss or gradients */
    LORANAS_ERR_UNSUPPORTED = 6,      /* a valid request the engine does not support */
    LORANAS_ERR_BUFFER_TOO_SMALL = 7  /* an output buffer is too small; the size needed is reported */
};

/* dtypes as stored in a checkpoint (loranas_checkpoint_info). */
enum {
    LORANAS_DTYPE_F32 = 0, LORANAS_DTYPE_F16 = 1, LORANAS_DTYPE_BF16 = 2,
    LORANAS_DTYPE_I64 = 3, LORANAS_DTYPE_I32 = 4, LORANAS_DTYPE_F64 = 5,
    LORANAS_DTYPE_U8 = 6, LORANAS_DTYPE_I8 = 7, LORANAS_DTYPE_BOOL = 8, LORANAS_DTYPE_I16 = 9
};

#define LORANAS_MAX_DIMS 8

/* ---- library ---------------------------------------------------------------------------- */
int32_t loranas_abi_version(void);
/* Semantic version of the engine, a static string. */
const char *loranas_version(void);
/* This thread's last error message ("" if none). Valid until this thread's next failing call. */
const char *loranas_last_error(void);
/* Engine worker threads, 1...64; another count is refused, never clamped. An invalid
   LORANAS_NUM_THREADS in the environment makes every call fail with a message naming it. */
int32_t loranas_set_num_threads(int32_t n);
int32_t loranas_get_num_threads(void);

/* ---- processes (data-parallel runs under mpirun; README "Several processes") ------------- */
/* This process's rank and the number of processes. When mpirun started the process, the first call
   of any job (or of this) starts MPI, and searches, fine-tunes, pretraining and evaluations split
   every batch across the processes; otherwise the world is this process (rank 0 of 1). Fails when
   mpirun started the process but this build has no Open MPI. Every process must call the same jobs
   in the same order. `summary` gets "rank 0 of 2 (Open MPI v4.1.4)" or "one process (<why>)". */
int32_t loranas_world(int32_t *rank, int32_t *size, char *summary, int64_t summary_len, int64_t *out_len);
/* Prints `message` (may be NULL) on stderr and stops every process of the job (MPI_Abort); in a
   single process, exits with status 1. Never returns. */
void loranas_world_abort(const char *message);

/* ---- checkpoints (safetensors, single file, sharded index, or a directory) --------------- */
typedef struct loranas_checkpoint loranas_checkpoint;

int32_t loranas_checkpoint_open(const char *path, loranas_checkpoint **out);
void loranas_checkpoint_free(loranas_checkpoint *ckpt);
int32_t loranas_checkpoint_count(const loranas_checkpoint *ckpt, int64_t *out_count);
/* Copies the NUL-terminated name of tensor `index` into buf; *out_len gets the length needed
   without the NUL. A buffer too small gives LORANAS_ERR_BUFFER_TOO_SMALL. */
int32_t loranas_checkpoint_name(const loranas_checkpoint *ckpt, int64_t index, char *buf, int64_t buf_len,
                                int64_t *out_len);
/* dtype (LORANAS_DTYPE_*), number of dims and the shape. out_shape holds shape_capacity elements;
   when the tensor has more dims, *out_ndim is still set and the call fails (LORANAS_MAX_DIMS is
   always enough for checkpoints the engine opens). */
int32_t loranas_checkpoint_info(const loranas_checkpoint *ckpt, const char *name, int32_t *out_dtype,
                                int64_t *out_ndim, int64_t *out_shape, int64_t shape_capacity);
/* Reads tensor `name` converted to float32 into out (count elements, must equal its size).
   Integer tensors convert too (exactly up to 2^24). */
int32_t loranas_checkpoint_read_f32(const loranas_checkpoint *ckpt, const char *name, float *out, int64_t count);

/* ---- tokenizer (a Hugging Face tokenizer.json) -------------------------------------------- */
typedef struct loranas_tokenizer loranas_tokenizer;

/* Reads a tokenizer.json: models BPE (byte-level) and WordLevel; pre-tokenizers Split, ByteLevel,
   Whitespace, WhitespaceSplit, Sequence; normalizers NFC, Sequence; post-processors
   TemplateProcessing, ByteLevel; decoder ByteLevel or none; added tokens with their flags. Any
   other component gives LORANAS_ERR_UNSUPPORTED naming it; a malformed file LORANAS_ERR_FORMAT. */
int32_t loranas_tokenizer_load(const char *path, loranas_tokenizer **out);
void loranas_tokenizer_free(loranas_tokenizer *tok);
/* Encodes text_len (< 2^31) bytes of UTF-8 (NUL bytes are text; invalid UTF-8 is an error) into
   ids, with the post-processor's special tokens when add_special is non-zero. *out_count gets the
   number of ids. ids NULL with ids_capacity 0 only counts; otherwise a capacity below the count
   gives LORANAS_ERR_BUFFER_TOO_SMALL (*out_count is still set). */
int32_t loranas_tokenizer_encode(const loranas_tokenizer *tok, const char *text_utf8, int64_t text_len,
                                 int32_t add_special, int64_t *ids, int64_t ids_capacity, int64_t *out_count);
/* Decodes count ids into NUL-terminated UTF-8 text, without the special added tokens when
   skip_special is non-zero; ids that no token has are skipped (as Hugging Face does), an id
   outside 0...2^32-1 is an error. Same buffer protocol as loranas_checkpoint_name. */
int32_t loranas_tokenizer_decode(const loranas_tokenizer *tok, const int64_t *ids, int64_t count, int32_t skip_special,
                                 char *buf, int64_t buf_len, int64_t *out_len);
/* The number of distinct tokens, added tokens included (Hugging Face's get_vocab_size(True)). */
int32_t loranas_tokenizer_vocab_size(const loranas_tokenizer *tok, int64_t *out_size);
/* The id of a token string (added tokens first, then the model's vocabulary); -1 when none. */
int32_t loranas_tokenizer_token_to_id(const loranas_tokenizer *tok, const char *token, int64_t *out_id);

/* ---- text: the Llama-3.2-Vision chat format, labels and the Mllama processor's text path ------- */
/* Renders a Cauldron record ({"images": [...], "texts": [{"user": ..., "assistant": ...}, ...]}, other
   keys ignored) as the published Llama-3.2-Vision-Instruct chat template does: per turn a user message
   (the record's images first, as <|image|>, in the first one) and an assistant message. A turn without
   a string assistant is LORANAS_ERR_FORMAT naming it. date_string is the "Today Date" of the system
   block a chat without images gets (NULL: today, as strftime_now("%d %b %Y")). add_generation_prompt
   non-zero appends the assistant header. Same buffer protocol as loranas_checkpoint_name. */
int32_t loranas_chat_render_record(const char *record_json, int32_t add_generation_prompt, const char *date_string,
                                   char *buf, int64_t buf_len, int64_t *out_len);
/* The same for Hugging Face messages JSON: [{"role": ..., "content": "..." or [{"type": "image"},
   {"type": "text", "text": ...}]}]; equals transformers' apply_chat_template(tokenize=False) with the
   published template. A system message with images is an error; tools are not supported. */
int32_t loranas_chat_render_messages(const char *messages_json, int32_t add_generation_prompt,
                                     const char *date_string, char *buf, int64_t buf_len, int64_t *out_len);
/* One training sample from a Cauldron record: the rendered chat tokenized as MllamaProcessor does (BOS
   rule, the tokenizer's special tokens), labels (-100 except the assistant answers and their <|eot_id|>),
   and cross_attention_mask (len, I, max_image_tiles) with I = num_tiles_count, the record's number of
   images; num_tiles[j] is image j's tile count (1...max_image_tiles). max_length > 0 cuts the sample to
   its first max_length tokens; a sample whose cut would remove an <|image|> token or every labelled token
   is skipped: *out_len = 0 and nothing is written (the caller counts it). *out_len gets len. ids and
   labels hold capacity elements, cross_attention_mask mask_count; all NULL with capacity and mask_count 0
   only sets *out_len; a smaller buffer gives LORANAS_ERR_BUFFER_TOO_SMALL. */
int32_t loranas_text_encode_record(const loranas_tokenizer *tok, const char *record_json, const char *date_string,
                                   const int64_t *num_tiles, int64_t num_tiles_count, int64_t max_image_tiles,
                                   int64_t max_length, int64_t *ids, int64_t *labels, int64_t capacity,
                                   int64_t *cross_attention_mask, int64_t mask_count, int64_t *out_len);
/* MllamaProcessor(text=prompts, images=..., padding=True)'s text outputs. prompts_json is a JSON array of
   B strings; num_tiles_json a JSON array of B arrays, the tile count of each image of each sample (a
   sample's <|image|> count must equal its number of images). Pads (pad_token_id) go right, or left when
   padding_left is non-zero. Sets *out_batch = B, *out_seq_len = S and *out_max_images = I; fills
   input_ids and attention_mask (B, S) (ids_count elements each) and cross_attention_mask
   (B, S, I, max_image_tiles) (mask_count elements). All outputs NULL with counts 0 only sets the sizes. */
int32_t loranas_text_encode_prompts(const loranas_tokenizer *tok, const char *prompts_json, const char *num_tiles_json,
                                    int64_t max_image_tiles, int64_t pad_token_id, int32_t padding_left,
                                    int64_t *input_ids, int64_t *attention_mask, int64_t ids_count,
                                    int64_t *cross_attention_mask, int64_t mask_count, int64_t *out_batch,
                                    int64_t *out_seq_len, int64_t *out_max_images);

/* ---- kernels ----------------------------------------------------------------------------- */
/* C (m, n) = op(A) (m, k) · op(B) (k, n); A is (m, k) or (k, m) when trans_a, B is (k, n) or (n, k)
   when trans_b. a_count, b_count and c_count are the buffers' element counts (at least m·k, k·n
   and m·n). Dimensions must be in [0, 2^31). */
int32_t loranas_matmul_f32(const float *a, int64_t a_count, const float *b, int64_t b_count, float *c,
                           int64_t c_count, int64_t m, int64_t k, int64_t n, int32_t trans_a, int32_t trans_b);

/* ---- models (Hugging Face Mllama: config.json + safetensors) ---------------------------- */
typedef struct loranas_model loranas_model;

/* Inputs with transformers' names and shapes. Optional pointers may be NULL. */
typedef struct loranas_batch {
    int64_t batch_size;                    /* B */
    int64_t seq_len;                       /* S */
    const int64_t *input_ids;              /* (B, S) */
    const int64_t *attention_mask;         /* (B, S) or NULL (all real tokens) */
    const int64_t *labels;                 /* (B, S), -100 = ignored; NULL for no loss */
    int64_t num_images;                    /* I, 0 for a text-only batch */
    int64_t num_tiles;                     /* T, must equal vision max_num_tiles */
    int64_t channels, height, width;       /* C, H, W of each tile */
    const float *pixel_values;             /* (B, I, T, C, H, W) or NULL */
    const int64_t *aspect_ratio_ids;       /* (B, I) */
    const int64_t *aspect_ratio_mask;      /* (B, I, T) */
    const int64_t *cross_attention_mask;   /* (B, S, I, T) */
} loranas_batch;

/* Loads a model directory (config.json + model.safetensors or a sharded index). dtype: "float32" (or NULL;
   exact against transformers) or "bfloat16": the linear layers' weights are read as bfloat16 (a bf16 checkpoint
   as stored, others rounded once) straight into the bf16 GEMM's packing, never held as float32; see
   loranas_model_use_bfloat16. */
int32_t loranas_model_load(const char *path, const char *dtype, loranas_model **out);
/* A model from a directory's config.json with fresh weights drawn as transformers' _init_weights draws them
   (N(0, 0.02^2) matrices and embeddings, norms 1, biases and cross-attention gates 0), from a SplitMix64 seed:
   for training from scratch with loranas_pretrain. The directory needs no weights. */
int32_t loranas_model_init(const char *path, uint64_t seed, loranas_model **out);
void loranas_model_free(loranas_model *model);
/* A JSON object describing the model (config, parameter counts, targetable modules);
   same buffer protocol as loranas_checkpoint_name. */
int32_t loranas_model_describe(const loranas_model *model, char *buf, int64_t buf_len, int64_t *out_len);
/* Switches the frozen base weights to bfloat16 (one-way): every linear weight is rounded to bfloat16, packed
   for the best bf16 GEMM of this CPU (AMX tiles, else AVX512-BF16 dot products; fp32 sums) and its float32 memory
   given back. LoRA's products with the activations run on the same kernel (as torch's autocast runs them); LoRA's
   parameters, alpha, norms, attention and the loss stay float32. Without either kernel the rounded weights
   are computed in float32. `summary` gets which (same buffer protocol as loranas_checkpoint_name); on a model
   already in bfloat16 it only reports. A model whose base is being trained is refused. */
int32_t loranas_model_use_bfloat16(loranas_model *model, char *summary, int64_t summary_len, int64_t *out_len);
/* Forward pass. logits (B, S, vocab_size) must hold logits_count floats. *has_loss is set to 1
   and *loss to the mean cross-entropy when labels are given; else *has_loss = 0 and *loss = NaN.
   loss and has_loss may be NULL. */
int32_t loranas_model_forward(loranas_model *model, const loranas_batch *batch, float *logits, int64_t logits_count,
                              float *loss, int32_t *has_loss);
/* Generates up to max_new_tokens tokens after each prompt, token for token as transformers'
   MllamaForConditionalGeneration.generate: the vision tower and the prompt run once, then one token per step
   against a KV cache; generated tokens see the prompt's last cross_attention_mask row. The prompt's labels
   are ignored; with B > 1 it must be left-padded (attention_mask 0 before the tokens).
   max_new_tokens: 1 ... max_position_embeddings - seq_len. temperature: 0 = greedy, else finite > 0
   (sampling from softmax(logits / temperature)). top_p in (0, 1]: the nucleus kept when sampling. seed:
   the sampler's SplitMix64 seed (the same seed gives the same tokens). stop_ids (num_stop_ids in
   0...65536, NULL when 0): a sample stops after producing one of them (the id is included).
   out_ids (B, max_new_tokens) must hold out_count = B * max_new_tokens values; each row gets its new ids
   then -1. out_lengths (B) must hold lengths_count = B values: each row's count. Bad values give
   LORANAS_ERR_INVALID_ARGUMENT; the cache not fitting in memory too; non-finite logits LORANAS_ERR_NUMERIC. */
int32_t loranas_model_generate(loranas_model *model, const loranas_batch *prompt, int64_t max_new_tokens,
                               double temperature, double top_p, uint64_t seed, const int64_t *stop_ids,
                               int64_t num_stop_ids, int64_t *out_ids, int64_t out_count, int64_t *out_lengths,
                               int64_t lengths_count);

/* Loads a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) onto the
   model, replacing any adapter; mixed ranks via rank_pattern / alpha_pattern. */
int32_t loranas_model_load_adapter(loranas_model *model, const char *dir);
/* Saves the model's LoRA adapters in PEFT's format (PeftModel.from_pretrained loads them). */
int32_t loranas_model_save_adapter(loranas_model *model, const char *dir);
/* Writes config.json + model.safetensors with the LoRA adapters merged into the weights. dtype: "float32"
   (or NULL) or "bfloat16" (rounded to nearest even, as torch's .to(torch.bfloat16)). */
int32_t loranas_model_save_merged(loranas_model *model, const char *dir, const char *dtype);
/* Removes every adapter (LoRA or supernet). */
int32_t loranas_model_clear_adapters(loranas_model *model);

/* ---- datasets, search and fine-tuning ----------------------------------------------------- */
typedef struct loranas_dataset loranas_dataset;
typedef struct loranas_result loranas_result;

/* Progress callback: event_json describes a finished step or epoch. Return 0 to continue,
   non-zero to stop cleanly: the run checkpoints first when it has a checkpoint_dir, and its
   result says "stopped": true. */
typedef int32_t (*loranas_progress_fn)(const char *event_json, void *user_data);

/* An empty dataset for `model`'s config. */
int32_t loranas_dataset_create(const loranas_model *model, loranas_dataset **out);
void loranas_dataset_free(loranas_dataset *dataset);
/* Appends one sample: a loranas_batch with batch_size 1 (labels required, with at least one
   target: a label other than -100 after the first position). The engine copies it, checks it
   against the model, and later pads samples into batches. */
int32_t loranas_dataset_add(loranas_dataset *dataset, const loranas_batch *sample);
int32_t loranas_dataset_count(const loranas_dataset *dataset, int64_t *out_count);
/* Records dropped while the dataset was made (max_length would have cut an image or every answer). */
int32_t loranas_dataset_skipped(const loranas_dataset *dataset, int64_t *out_skipped);
/* Splits off `fraction` (in (0, 1)) of the samples, chosen by a seeded shuffle, as a validation set. Both
   parts are new handles viewing the same samples (nothing is copied); free each. */
int32_t loranas_dataset_split(const loranas_dataset *dataset, double fraction, uint64_t seed,
                              loranas_dataset **out_train, loranas_dataset **out_validation);

/* One sample, as the processor makes it (no batch axis). Call with input_ids NULL to get the dims;
   then call again with every buffer sized by them (the image buffers may be NULL when num_images is 0). */
typedef struct loranas_sample {
    int64_t seq_len, num_images, num_tiles, channels, height, width; /* S, I, T, C, H, W */
    int64_t *input_ids;             /* (S) */
    int64_t *labels;                /* (S), -100 = ignored */
    float *pixel_values;            /* (I, T, C, H, W) */
    int64_t *aspect_ratio_ids;      /* (I) */
    int64_t *aspect_ratio_mask;     /* (I, T) */
    int64_t *cross_attention_mask;  /* (S, I, T) */
} loranas_sample;
int32_t loranas_dataset_sample(const loranas_dataset *dataset, int64_t index, loranas_sample *sample);

/* Supernet rank search. options_json is a JSON object (every key optional): targets ("all",
   "mlp", "qk" or "q,k,v,..."), side ("both", "vision", "text"), space ([4,8,16,32,64]),
   slices ("centered" | "prefix"), lora_alpha, budget (parameter count, or {"fraction": f}),
   budget_weight, epochs, batch_size, lr, weight_decay, alpha_lr, alpha_weight_decay, seed,
   checkpoint_dir, checkpoint_every, max_steps. The supernet stays attached for a warm fine-tune.
   progress may be NULL. */
int32_t loranas_search(loranas_model *model, const loranas_dataset *train, const loranas_dataset *validation,
                       const char *options_json, loranas_progress_fn progress, void *user_data, loranas_result **out);
/* Mixed-rank LoRA fine-tune. options_json: ranks (an integer, or {"module": rank, ...}, or
   {"random": parameter_count, "space": [...]}), targets, side, init ("warm" | "fresh"),
   lora_alpha, dropout, epochs, batch_size, eval_batch_size, lr, weight_decay, seed,
   checkpoint_dir, checkpoint_every, max_steps. */
int32_t loranas_finetune(loranas_model *model, const loranas_dataset *train, const loranas_dataset *validation,
                         const char *options_json, loranas_progress_fn progress, void *user_data, loranas_result **out);
/* Full-parameter training (every base weight; the model must have no adapters): AdamW with a linear warm-up
   and a cosine decay, the gradient's global norm clipped. options_json: epochs, batch_size, eval_batch_size,
   lr (the peak), warmup_steps, min_lr_ratio, weight_decay (matrices and embeddings only), max_grad_norm,
   seed, checkpoint_dir, checkpoint_every, max_steps, group_by_length. */
int32_t loranas_pretrain(loranas_model *model, const loranas_dataset *train, const loranas_dataset *validation,
                         const char *options_json, loranas_progress_fn progress, void *user_data, loranas_result **out);
/* Token-weighted evaluation of a dataset (batch_size in 1...2^20); the result's JSON has loss,
   perplexity, mean_batch_loss. */
int32_t loranas_evaluate(loranas_model *model, const loranas_dataset *dataset, int64_t batch_size, loranas_result **out);
/* Exact-match answer accuracy by greedy generation: each sample's last answer (its last run of labelled
   tokens: the answer and its <|eot_id|>) is generated from the tokens before it, stopping at that run's last
   token, and compared token for token. The result's JSON has accuracy and answers (per sample: reference,
   generated, correct). */
int32_t loranas_evaluate_answers(loranas_model *model, const loranas_dataset *dataset, loranas_result **out);
/* A result as JSON (same buffer protocol as loranas_checkpoint_name). */
int32_t loranas_result_json(const loranas_result *result, char *buf, int64_t buf_len, int64_t *out_len);
void loranas_result_free(loranas_result *result);

/* ---- images ------------------------------------------------------------------------------ */
/* Flags of the image functions. 0 treats the bytes as transformers treats a PIL image the caller
   opened (no EXIF transpose; alpha and tRNS transparency composited onto white with Pillow's
   integer alpha_composite). LORANAS_IMAGE_EXIF_TRANSPOSE | LORANAS_IMAGE_DROP_ALPHA is its route
   for a path, URL or base64 string (load_image: ImageOps.exif_transpose, then convert("RGB")). */
enum {
    LORANAS_IMAGE_EXIF_TRANSPOSE = 1, /* apply the EXIF orientation (JPEG) */
    LORANAS_IMAGE_DROP_ALPHA = 2      /* drop alpha instead of compositing onto white */
};

/* Decodes PNG or JPEG bytes (n bytes) to 8-bit RGB, (h, w, 3) row-major, as Pillow's
   Image.open(...).convert("RGB") with transformers' alpha rule. *out_h and *out_w are always set on
   success; out_rgb = NULL with capacity = 0 is a size query, otherwise capacity must hold h*w*3.
   An unknown format, a corrupt or truncated file gives LORANAS_ERR_FORMAT; more than 178,956,970
   pixels (Pillow's decompression-bomb error threshold) gives LORANAS_ERR_INVALID_ARGUMENT. */
int32_t loranas_image_decode(const uint8_t *bytes, int64_t n, int32_t flags, uint8_t *out_rgb, int64_t capacity,
                             int64_t *out_h, int64_t *out_w);
/* Resizes an (h, w, 3) uint8 image to (out_h, out_w, 3) exactly as Pillow's
   Image.resize((out_w, out_h), BILINEAR, reducing_gap=None). Sides are in 1...2^20. */
int32_t loranas_image_resize_rgb(const uint8_t *rgb, int64_t rgb_count, int64_t h, int64_t w, int64_t out_h,
                                 int64_t out_w, uint8_t *out, int64_t out_count);
/* transformers' MllamaImageProcessor (Pillow path) on one image: canvas, resize, pad, rescale,
   normalize, tiles. tile_size t in 1...4096, max_tiles T in 1...64, mean and std hold 3 values,
   rescale_factor is usually 1/255. pixel_values gets (T, 3, t, t) float32 (unused tiles 0),
   *aspect_ratio_id the id (1-based), aspect_ratio_mask (T) int64. */
int32_t loranas_image_process(const uint8_t *bytes, int64_t n, int32_t flags, int64_t tile_size, int64_t max_tiles,
                              const double *mean, const double *std, double rescale_factor, float *pixel_values,
                              int64_t pixel_values_count, int64_t *aspect_ratio_id, int64_t *aspect_ratio_mask,
                              int64_t mask_count);

/* ---- processor: transformers' MllamaProcessor for a model directory ------------------------------ */
typedef struct loranas_processor loranas_processor;
typedef struct loranas_processor_output loranas_processor_output;

/* One image of a processor call. width = height = 0: data holds size bytes of PNG or JPEG, decoded with
   flags (LORANAS_IMAGE_*; 0 is transformers' route for a PIL image). Otherwise data holds raw RGB uint8
   (height, width, 3), size = height*width*3, and flags must be 0. sample is the index of the sample the
   image belongs to; images are given in order (sample non-decreasing, each sample's images in the order
   of its <|image|> tokens). */
typedef struct loranas_image_input {
    const uint8_t *data;
    int64_t size;
    int64_t width;
    int64_t height;
    int32_t flags;
    int32_t sample;
} loranas_image_input;

/* Reads a Hugging Face model directory: tokenizer.json, tokenizer_config.json (bos/eos/pad tokens,
   padding_side), preprocessor_config.json (or processor_config.json, or config.json's vision_config),
   and the chat template, which must be the published Llama-3.2-Vision one when present. */
int32_t loranas_processor_load(const char *model_dir, loranas_processor **out);
void loranas_processor_free(loranas_processor *proc);
/* The processor's settings; every pointer must be non-NULL. *out_padding_left is 1 for left padding. */
int32_t loranas_processor_info(const loranas_processor *proc, int64_t *out_pad_token_id, int64_t *out_image_token_id,
                               int64_t *out_bos_token_id, int64_t *out_eos_token_id, int64_t *out_tile_size,
                               int64_t *out_max_tiles, int32_t *out_padding_left);
/* A new tokenizer handle on the processor's tokenizer (free it with loranas_tokenizer_free). */
int32_t loranas_processor_tokenizer(const loranas_processor *proc, loranas_tokenizer **out);
/* MllamaProcessor(text=texts, images=..., padding=True, return_tensors="np"): texts_json is a JSON array
   of B strings; images holds num_images entries (NULL when 0). Each sample's <|image|> count must equal its
   number of images. The result is kept in *out: read its sizes and arrays, then free it. */
int32_t loranas_processor_call(const loranas_processor *proc, const char *texts_json,
                               const loranas_image_input *images, int64_t num_images,
                               loranas_processor_output **out);
/* B, S, I (the most images of a sample; 0 when no sample has one), T (max tiles) and t (tile size). */
int32_t loranas_processor_output_shape(const loranas_processor_output *output, int64_t *out_batch,
                                       int64_t *out_seq_len, int64_t *out_max_images, int64_t *out_max_tiles,
                                       int64_t *out_tile_size);
/* Copies the arrays, each buffer with its element count: input_ids and attention_mask (B, S) ids_count,
   cross_attention_mask (B, S, I, T) cross_count, pixel_values (B, I, T, 3, t, t) float32 pixel_count,
   aspect_ratio_ids (B, I) ratio_ids_count, aspect_ratio_mask (B, I, T) ratio_mask_count. A count below the
   array's size is an error; buffers of empty arrays (I = 0) may be NULL with count 0. */
int32_t loranas_processor_output_read(const loranas_processor_output *output, int64_t *input_ids,
                                      int64_t *attention_mask, int64_t ids_count, int64_t *cross_attention_mask,
                                      int64_t cross_count, float *pixel_values, int64_t pixel_count,
                                      int64_t *aspect_ratio_ids, int64_t ratio_ids_count,
                                      int64_t *aspect_ratio_mask, int64_t ratio_mask_count);
void loranas_processor_output_free(loranas_processor_output *output);
/* The processor's apply_chat_template(messages, add_generation_prompt, tokenize=False) with its bos_token;
   messages_json and date_string as in loranas_chat_render_messages; string protocol as above. */
int32_t loranas_processor_chat_template(const loranas_processor *proc, const char *messages_json,
                                        int32_t add_generation_prompt, const char *date_string, char *buf,
                                        int64_t buf_len, int64_t *out_len);

/* ---- datasets from Cauldron records and packs ---------------------------------------------- */
/* Datasets from Cauldron records {"images": [...], "texts": [{"user": ..., "assistant": ...}]}: each is
   rendered in the Llama-3.2-Vision chat format, tokenized and labelled (answers and their <|eot_id|>), and its
   images resized onto their tile canvases, by `processor` (NULL: the one of model_dir); model_dir's
   config.json checks the samples. max_length 0 means no cut; otherwise a sample is cut to its first
   max_length tokens, or skipped (and counted) when the cut would remove an image or every answer.
   Errors name the file and line. */
int32_t loranas_dataset_from_cauldron(const char *model_dir, const loranas_processor *processor,
                                      const char *jsonl_path, int64_t max_length, loranas_dataset **out);
/* An empty dataset for records added one by one with loranas_dataset_add_record. */
int32_t loranas_dataset_create_for_records(const char *model_dir, loranas_dataset **out);
/* Encodes and appends one record (its JSON: images only counted, texts read) with its images, all of
   sample 0. *out_kept is 0 when max_length skipped it. */
int32_t loranas_dataset_add_record(loranas_dataset *dataset, const loranas_processor *processor,
                                   const char *record_json, const loranas_image_input *images, int64_t num_images,
                                   int64_t max_length, int32_t *out_kept);
/* Opens a pack (written by loranas_dataset_save or `loranas pack`) as a dataset streamed from disk. */
int32_t loranas_dataset_load(const char *pack_path, loranas_dataset **out);
/* Writes a dataset made from records (or a pack) as a pack: a temporary file renamed into place. */
int32_t loranas_dataset_save(const loranas_dataset *dataset, const char *pack_path);

#ifdef __cplusplus
}
#endif

#endif /* LORANAS_H */
