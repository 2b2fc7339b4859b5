/*
 * disclvlm.h - public C API of libdisclvlm.
 *
 * libdisclvlm turns a generative LLaVA-style vision-language model into a
 * discriminative image-text model: image and text embeddings from the last
 * token's hidden state, cosine scores, and contrastive fine-tuning of soft
 * prompts and LoRA adapters.
 *
 * Conventions (see docs/abi.md and docs/api.md):
 *  - Every function that can fail returns a dlv_status; on failure a detailed
 *    message (naming the file, tensor or field) is available from
 *    dlv_last_error() on the same thread until the next failing call.
 *  - Handles are opaque. Option objects are opaque and set through setters,
 *    so new options never change a struct layout.
 *  - Output buffers belong to the caller; every output buffer comes with its
 *    capacity so that a wrong size is an error, not an overflow.
 *  - Nothing here calls abort(), exit() or longjmp() across the boundary.
 *
 * Thread safety: a dlv_model is immutable after loading and may be shared by
 * threads; a dlv_session is used by one thread at a time (dlv_session_cancel
 * is the one call that may come from another thread).
 */
#ifndef DISCLVLM_H
#define DISCLVLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version ----------------------------------------------------------- */

#define DLV_VERSION_MAJOR 0
#define DLV_VERSION_MINOR 1
#define DLV_VERSION_PATCH 0
#define DLV_VERSION_STRING "0.1.0"
/* Encoded as MAJOR*10000 + MINOR*100 + PATCH, for #if comparisons. */
#define DLV_VERSION_NUMBER                                                     \
    (DLV_VERSION_MAJOR * 10000 + DLV_VERSION_MINOR * 100 + DLV_VERSION_PATCH)
/* The ABI major: the N of the shared library's SONAME libdisclvlm.so.N. */
#define DLV_ABI_VERSION 1

/* ---- Visibility -------------------------------------------------------- */

#if defined(_WIN32) && defined(DLV_BUILDING_LIBRARY)
#define DLV_API __declspec(dllexport)
#elif defined(_WIN32) && !defined(DLV_STATIC)
#define DLV_API __declspec(dllimport)
#elif defined(__GNUC__) && defined(DLV_BUILDING_LIBRARY)
#define DLV_API __attribute__((visibility("default")))
#else
#define DLV_API
#endif

/* ---- Status and errors ------------------------------------------------- */

/* Values are fixed forever; new codes are only appended. */
typedef enum dlv_status {
    DLV_OK = 0,
    DLV_E_INVALID_ARG = 1,     /* a NULL handle, a bad size, a bad option */
    DLV_E_IO = 2,              /* a file could not be opened, read or written */
    DLV_E_FORMAT = 3,          /* a file's content is malformed */
    DLV_E_UNSUPPORTED = 4,     /* valid input that this build cannot handle */
    DLV_E_NOMEM = 5,           /* an allocation failed */
    DLV_E_BACKEND = 6,         /* a compute backend is missing or failed */
    DLV_E_NOT_IMPLEMENTED = 7, /* declared but not implemented in this version */
    DLV_E_NUMERIC = 8,         /* a NaN or Inf appeared */
    DLV_E_CANCELLED = 9,       /* dlv_session_cancel stopped the call */
    DLV_E_BUFFER_TOO_SMALL = 10 /* an output buffer's capacity is too small */
} dlv_status;

/* A short, static English name for a status ("invalid argument", ...).
 * Never NULL; unknown values give "unknown status". */
DLV_API const char *dlv_status_str(dlv_status status);

/* The message of the last failing call on this thread ("" if none). The
 * pointer stays valid until the next libdisclvlm call on this thread. */
DLV_API const char *dlv_last_error(void);

/* Clears this thread's last error message. */
DLV_API void dlv_clear_error(void);

/* ---- Run-time version -------------------------------------------------- */

/* The library's version string, e.g. "0.1.0" (compare with
 * DLV_VERSION_STRING to detect a header/library mismatch). */
DLV_API const char *dlv_version(void);

/* The library's version as numbers; any pointer may be NULL. */
DLV_API void dlv_version_numbers(int *major, int *minor, int *patch);

/* The features this build has, as a comma-separated list, e.g. "cpu,cuda". */
DLV_API const char *dlv_build_features(void);

/* ---- Handles ----------------------------------------------------------- */

typedef struct dlv_model dlv_model;                 /* weights, config, tokenizer */
typedef struct dlv_session dlv_session;             /* workspace, adapters, optimizer */
typedef struct dlv_model_options dlv_model_options; /* how to load a model */
typedef struct dlv_session_options dlv_session_options;
typedef struct dlv_image dlv_image;                 /* an image source */
typedef struct dlv_batch dlv_batch;                 /* a training batch */

/* ---- Model options ----------------------------------------------------- */

DLV_API dlv_status dlv_model_options_new(dlv_model_options **out);
DLV_API void dlv_model_options_free(dlv_model_options *opts);
/* "cpu", "cuda" or "auto" (CUDA where built and a device exists, else CPU).
 * Default "cpu". An unknown or unavailable backend makes dlv_model_load fail
 * with DLV_E_BACKEND. */
DLV_API dlv_status dlv_model_options_set_backend(dlv_model_options *opts,
                                                 const char *name);
/* The device ordinal for device backends (default 0). */
DLV_API dlv_status dlv_model_options_set_device(dlv_model_options *opts,
                                                int device);
/* The dtype the weights are held in once loaded: "auto" (the default: as
 * stored, so a bf16 checkpoint stays bf16 and, on the cpu backend, costs no
 * memory beyond its memory-mapped file), "f32", "bf16" or "f16". Converting
 * is transformers' torch_dtype: f32 holds a bf16 checkpoint at twice its
 * size, and then f32 compute needs no per-call widening (about 1.6x faster
 * text encoding on the cpu backend); bf16 or f16 halves an f32 checkpoint
 * (rounded to nearest even, as torch's .to() does), which changes results
 * like any lower precision. Any other name is DLV_E_INVALID_ARG. */
DLV_API dlv_status dlv_model_options_set_weight_dtype(dlv_model_options *opts,
                                                      const char *dtype);

/* ---- Model ------------------------------------------------------------- */

/* Loads a Hugging Face LlavaForConditionalGeneration directory: config.json,
 * model.safetensors or a sharded checkpoint with model.safetensors.index.json.
 * opts may be NULL for the defaults. Weights are memory-mapped. */
DLV_API dlv_status dlv_model_load(const char *dir,
                                  const dlv_model_options *opts,
                                  dlv_model **out);
DLV_API void dlv_model_free(dlv_model *model);

/* The length of every embedding this model produces (the LLM hidden size). */
DLV_API dlv_status dlv_model_embed_dim(const dlv_model *model, size_t *out);

/* A JSON description of the model (architectures, sizes, dtypes, parameter
 * counts, tensor count, embedding size), NUL-terminated, written to buf of
 * capacity cap. *needed (may be NULL) receives the size including the NUL.
 * buf NULL with cap 0 only asks for the size (DLV_OK); a non-NULL buf with a
 * short cap gives DLV_E_BUFFER_TOO_SMALL and buf[0] = '\0' if cap > 0. */
DLV_API dlv_status dlv_model_describe(const dlv_model *model, char *buf,
                                      size_t cap, size_t *needed);

/* ---- Session ----------------------------------------------------------- */

DLV_API dlv_status dlv_session_options_new(dlv_session_options **out);
DLV_API void dlv_session_options_free(dlv_session_options *opts);
/* Worker threads for CPU compute; 0 = one per online CPU (the default). */
DLV_API dlv_status dlv_session_options_set_threads(dlv_session_options *opts,
                                                   int n_threads);

/* Texts whose sequence is longer than the model's max_position_embeddings:
 * 0 (the default) refuses them (DLV_E_INVALID_ARG naming the text and the
 * limit); 1 cuts the caption's last tokens until the sequence fits, in
 * dlv_encode_text and in training (short and long captions). A CLIPModel
 * always truncates, as Hugging Face's CLIP pipelines do.
 * dlv_text_positions tells which texts are too long. */
DLV_API dlv_status dlv_session_options_set_truncate(dlv_session_options *opts,
                                                    int truncate);

/* What the model's matrix products compute in (docs/backends.md, "Compute
 * dtype"): "f32" (the default: exact, what the reference goldens check) or
 * "bf16": weights and matmul inputs rounded to bf16, accumulation in f32,
 * as PyTorch's bf16 autocast; norms, softmax, attention and everything else
 * stay f32. Embeddings agree with f32 mode to cosine >= 0.9999. About 2x
 * faster on CPUs with AVX512-BF16 or AMX, and no faster (but still correct)
 * elsewhere. The cpu backend only for now; dlv_session_new fails with
 * DLV_E_UNSUPPORTED on cuda. Any other name is DLV_E_INVALID_ARG. */
DLV_API dlv_status dlv_session_options_set_compute(dlv_session_options *opts,
                                                   const char *dtype);

/* A session on a model; opts may be NULL. The model must outlive it. */
DLV_API dlv_status dlv_session_new(dlv_model *model,
                                   const dlv_session_options *opts,
                                   dlv_session **out);
DLV_API void dlv_session_free(dlv_session *session);

/* Asks the session's running or next long call to stop with
 * DLV_E_CANCELLED. Safe to call from any thread. */
DLV_API dlv_status dlv_session_cancel(dlv_session *session);

/* ---- Images ------------------------------------------------------------ */

/* An image source. The constructors copy what they are given (the caller's
 * buffer may be freed at once); decoding happens when the image is encoded. */
DLV_API dlv_status dlv_image_from_file(const char *path, dlv_image **out);
DLV_API dlv_status dlv_image_from_memory(const void *data, size_t n_bytes,
                                         dlv_image **out);
/* Raw 8-bit RGB, row-major, stride_bytes >= 3 * width between rows. */
DLV_API dlv_status dlv_image_from_rgb(const uint8_t *rgb, uint32_t width,
                                      uint32_t height, size_t stride_bytes,
                                      dlv_image **out);
DLV_API void dlv_image_free(dlv_image *image);

/* ---- Embeddings and scores --------------------------------------------- */

/* Embeds n images into out (n x dim floats, row-major, L2-normalised);
 * out_len is out's capacity in floats. */
DLV_API dlv_status dlv_encode_images(dlv_session *session,
                                     const dlv_image *const *images, size_t n,
                                     float *out, size_t out_len);
/* Conveniences for one image from each kind of source. */
DLV_API dlv_status dlv_encode_image_file(dlv_session *session,
                                         const char *path, float *out,
                                         size_t out_len);
DLV_API dlv_status dlv_encode_image_memory(dlv_session *session,
                                           const void *data, size_t n_bytes,
                                           float *out, size_t out_len);
DLV_API dlv_status dlv_encode_image_rgb(dlv_session *session,
                                        const uint8_t *rgb, uint32_t width,
                                        uint32_t height, size_t stride_bytes,
                                        float *out, size_t out_len);

/* Embeds n UTF-8 texts into out (n x dim floats, L2-normalised). */
DLV_API dlv_status dlv_encode_text(dlv_session *session,
                                   const char *const *texts, size_t n,
                                   float *out, size_t out_len);

/* How many positions (tokens, image features included) the model runs for
 * text, and the model's limit (max_position_embeddings), before any
 * truncation: what = DLV_POSITIONS_TEXT for the text's own prompt
 * (dlv_encode_text, a training caption), DLV_POSITIONS_AFTER_IMAGE for an
 * image prompt followed by text, the sequence of training's next-token loss
 * on a long caption (DLV_E_UNSUPPORTED for a CLIPModel; for LLaVA-NeXT,
 * whose image features depend on the image, counted with the most any image
 * can have: an upper bound). Lets a caller find and name the texts that are
 * too long before running anything. */
#define DLV_POSITIONS_TEXT 0
#define DLV_POSITIONS_AFTER_IMAGE 1
DLV_API dlv_status dlv_text_positions(dlv_session *session, const char *text, int what,
                                      size_t *positions, size_t *max_positions);

/* Flag for dlv_embed_tokens: write the raw final hidden state (after the
 * final norm) instead of its L2-normalised form. */
#define DLV_EMBED_HIDDEN 1u

/* Runs exactly the n_ids token ids given (no BOS, prompt or soft prompt is
 * added; the session's LoRA adapter, if any, applies) and writes the final
 * hidden state at the last position into out (dim floats, L2-normalised
 * unless flags has DLV_EMBED_HIDDEN). An id equal to the model's
 * image_token_index expands to the projected features of image; there may
 * be at most one such id, and image must be given exactly when there is one
 * (NULL otherwise). */
DLV_API dlv_status dlv_embed_tokens(dlv_session *session, const int32_t *ids, size_t n_ids,
                                    const dlv_image *image, unsigned flags, float *out,
                                    size_t out_len);

/* The multiplier the contrastive loss applies to cosines: exp(logit_scale)
 * of the session's adapter, or 1/0.07 (CLIP's initial temperature) when the
 * adapter has none; for a CLIPModel, exp of its own logit_scale weight (the
 * trained value while training). Scores times this value are the logits. */
DLV_API dlv_status dlv_session_logit_scale(const dlv_session *session, float *out);

/* Cosine similarities of n_img image embeddings with n_txt text embeddings,
 * each of length dim: out[i * n_txt + j] = cos(img_i, txt_j); out_len is
 * out's capacity in floats (>= n_img * n_txt). */
DLV_API dlv_status dlv_score(dlv_session *session, const float *img,
                             size_t n_img, const float *txt, size_t n_txt,
                             size_t dim, float *out, size_t out_len);

/* ---- Training ---------------------------------------------------------- */

DLV_API dlv_status dlv_batch_new(dlv_batch **out);
DLV_API void dlv_batch_free(dlv_batch *batch);
/* Adds one example: an image, its short caption (contrastive loss) and an
 * optional long caption (next-token loss; NULL for none). The image handle is
 * borrowed and must outlive the batch; the strings are copied. */
DLV_API dlv_status dlv_batch_add(dlv_batch *batch, const dlv_image *image,
                                 const char *caption,
                                 const char *long_caption);

/* What one training step did. The caller sets struct_size to
 * sizeof(dlv_train_stats) (DLV_TRAIN_STATS_INIT does); the library fills only
 * the fields that fit in struct_size, so fields can be appended later. */
typedef struct dlv_train_stats {
    size_t struct_size;
    double loss;             /* total loss */
    double loss_contrastive; /* symmetric InfoNCE part */
    double loss_ntp;         /* next-token prediction part */
    double grad_norm;        /* global gradient norm before clipping */
    double learning_rate;    /* the rate this step used */
    double logit_scale;      /* exp(logit_scale) after the step */
    uint64_t step;           /* steps done, this one included */
    uint64_t tokens;         /* tokens processed by this step */
} dlv_train_stats;

#define DLV_TRAIN_STATS_INIT {sizeof(dlv_train_stats), 0, 0, 0, 0, 0, 0, 0, 0}

/* Training options (docs/training.md), set as key = value strings so that
 * new options never change the ABI. Keys and their defaults:
 *   train          "soft,lora,logit_scale"  trainable sets (comma list)
 *   optimizer      "adamw"                  or "sgd"
 *   lr             "1e-4"
 *   weight_decay   "0"      (AdamW: decoupled; none on soft prompts, logit scale)
 *   beta1, beta2, eps  "0.9", "0.999", "1e-8"
 *   schedule       "constant"               or "cosine" (needs total_steps)
 *   warmup         "0"                      linear warmup steps
 *   total_steps    "0"                      the cosine schedule's length
 *   grad_clip      "0"                      global-norm clipping; 0 = off
 *   lora_rank, lora_alpha  "16", "16"       for a new LoRA (an adapter's own LoRA keeps its)
 *   lora_targets   "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
 *   ntp_weight     "1"                      0 switches the next-token loss off
 *   contrastive    "1"                      0 switches the contrastive loss off
 *   seed           "0"                      LoRA initialisation
 *   micro_batch    "0"                      GradCache micro-batch; 0 = whole batch
 *   recompute      "0"                      1: recompute activations per layer
 *   cache_features "0"                      1: keep frozen image features of image
 *                                           files across steps (memory: features x images)
 * An unknown key or a bad value is DLV_E_INVALID_ARG naming it. */
typedef struct dlv_train_options dlv_train_options;
DLV_API dlv_status dlv_train_options_new(dlv_train_options **out);
DLV_API void dlv_train_options_free(dlv_train_options *opts);
DLV_API dlv_status dlv_train_options_set(dlv_train_options *opts, const char *key,
                                         const char *value);

/* Starts (or restarts) training on the session: the trainable state is made
 * from the session's adapter (dlv_adapter_load) or the model's defaults:
 * soft prompts = the instruction's token embeddings, a new LoRA with A
 * random (as PEFT initialises it, from the seed) and B = 0, logit scale
 * log(1/0.07). opts may be NULL for the defaults. dlv_train_step calls it
 * with the defaults when training has not begun. */
DLV_API dlv_status dlv_train_begin(dlv_session *session, const dlv_train_options *opts);

/* One optimizer step on a batch: forward, backward, update. The session's
 * adapter then holds the updated state (encode with it, or save it with
 * dlv_adapter_save). */
DLV_API dlv_status dlv_train_step(dlv_session *session, const dlv_batch *batch,
                                  dlv_train_stats *stats);

/* Training checkpoints: the adapter plus the optimizer state, step and RNG
 * state (train_state.safetensors), each file written atomically. Loading
 * one and continuing gives bit-identical results to an uninterrupted run. */
DLV_API dlv_status dlv_train_checkpoint_save(dlv_session *session, const char *dir);
DLV_API dlv_status dlv_train_checkpoint_load(dlv_session *session, const char *dir);

/* ---- Data-parallel training (docs/training.md, "Distributed") ----------- */

/* The processes of one job started together (mpirun, srun): "mpi", the MPI
 * world, through the module libdisclvlm-mpi.so loaded on demand (MPI is
 * initialised if the program has not done it, and finalised by
 * dlv_comm_free then). DLV_E_BACKEND naming the cause when the module or
 * MPI is missing; DLV_E_INVALID_ARG for another kind. */
typedef struct dlv_comm dlv_comm;
DLV_API dlv_status dlv_comm_open(const char *kind, dlv_comm **out);
DLV_API void dlv_comm_free(dlv_comm *comm);
/* This process's rank (0 .. size - 1) and the number of processes. */
DLV_API dlv_status dlv_comm_rank(const dlv_comm *comm, int *rank, int *size);
/* "Open MPI v4.1.4, 2 ranks". */
DLV_API const char *dlv_comm_describe(const dlv_comm *comm);
/* Collectives over host memory; every rank calls them in the same order with
 * the same sizes. sum: buf = the sum over the ranks, identical on every
 * rank. all_gather: recv [size * bytes] = every rank's send, in rank order. */
DLV_API dlv_status dlv_comm_sum_f64(dlv_comm *comm, double *buf, size_t n);
DLV_API dlv_status dlv_comm_all_gather(dlv_comm *comm, const void *send, size_t bytes,
                                       void *recv);
DLV_API dlv_status dlv_comm_broadcast(dlv_comm *comm, void *buf, size_t bytes, int root);
/* Prints message (if not NULL) on stderr and ends every process of the job
 * with code: what a rank that cannot go on calls, so that no other rank
 * waits for it. Does not return. */
DLV_API void dlv_comm_abort(dlv_comm *comm, const char *message, int code);

/* Makes the session's training data-parallel over comm (NULL: one process
 * again); call it before dlv_train_begin or dlv_train_checkpoint_load, on
 * every rank. Each rank then passes dlv_train_step its own share of the
 * global batch (any split; the CLI gives each rank batch / size examples);
 * the contrastive loss is that of the global batch (embeddings
 * all-gathered), the next-token loss its token mean, gradients are summed
 * over the ranks and every rank applies the same update, so their states
 * stay identical. comm must outlive the session's training. A checkpoint
 * records the number of ranks; loading it with another number fails. */
DLV_API dlv_status dlv_session_set_comm(dlv_session *session, dlv_comm *comm);

/* Before the first step: whether dlv_adapter_save(adapter_dir),
 * dlv_train_checkpoint_save(checkpoint_dir) and dlv_train_save_model(model_dir)
 * would be allowed (any may be NULL: not asked; adapter_dir is ignored for a
 * model without adapters): each directory absent with a writable parent,
 * or holding only the files that save writes. The error is the one the save
 * would give (DLV_E_IO naming the directory and the foreign file), so a run
 * can fail before its work rather than after. The checkpoint and model
 * directories need a training session (dlv_train_begin or _checkpoint_load). */
DLV_API dlv_status dlv_train_check_outputs(dlv_session *session, const char *adapter_dir,
                                           const char *checkpoint_dir, const char *model_dir);

/* Writes the model as it is being trained (the "projector", "llm" and
 * "vision" sets change the model's own weights) as a Hugging Face LLaVA
 * directory that dlv_model_load and transformers load: config.json,
 * preprocessor_config.json and tokenizer files copied, model.safetensors
 * with every tensor. dtype NULL keeps each tensor's checkpoint dtype;
 * "f32", "bf16" or "f16" converts all float tensors. Atomic as a directory;
 * an existing dir may hold only those files. */
DLV_API dlv_status dlv_train_save_model(dlv_session *session, const char *dir,
                                        const char *dtype);

/* ---- Adapters ---------------------------------------------------------- */

/* Loads / saves the session's adapter (soft prompts, LoRA, logit scale,
 * prompts) in a PEFT-compatible directory (docs/adapter-format.md). Loading
 * replaces the session's adapter only on success. Saving is atomic per file:
 * each is written to a temporary, synced and renamed. */
DLV_API dlv_status dlv_adapter_load(dlv_session *session, const char *dir);
DLV_API dlv_status dlv_adapter_save(dlv_session *session, const char *dir);
/* Drops the session's adapter: back to the model's default prompts, no
 * LoRA, no soft prompts. */
DLV_API dlv_status dlv_adapter_clear(dlv_session *session);

/* ---- Image preprocessing ---------------------------------------------- */

/* The pixels the vision tower sees, computed as the model's Hugging Face
 * image processor (CLIPImageProcessor / SiglipImageProcessor, from
 * preprocessor_config.json) computes them: images are decoded and converted
 * to RGB as Pillow's convert("RGB") does, resized with Pillow's filters,
 * center-cropped, rescaled and normalized (see docs/images.md). */
typedef struct dlv_preprocess_options dlv_preprocess_options;

DLV_API dlv_status dlv_preprocess_options_new(dlv_preprocess_options **out);
DLV_API void dlv_preprocess_options_free(dlv_preprocess_options *opts);
/* LLaVA-1.5's image_aspect_ratio "pad": pad to a square of the mean colour
 * before the processor runs. Default off. */
DLV_API dlv_status dlv_preprocess_options_set_pad_square(dlv_preprocess_options *opts,
                                                         int on);
/* Apply the EXIF orientation (as ImageOps.exif_transpose). Default off, as
 * the Hugging Face processors do not rotate. */
DLV_API dlv_status dlv_preprocess_options_set_exif_rotate(dlv_preprocess_options *opts,
                                                          int on);
/* Images (and resized intermediates) with more pixels are refused before
 * their pixels are allocated. Default 178956970, the count above which
 * Pillow raises DecompressionBombError (2 * Image.MAX_IMAGE_PIXELS). Any
 * value > 0 is accepted: a larger one raises the limit, and memory then
 * grows with the image. */
DLV_API dlv_status dlv_preprocess_options_set_max_pixels(dlv_preprocess_options *opts,
                                                         uint64_t max_pixels);

/* Whether image can be encoded by this model: decodes and preprocesses it
 * as the model's encoders would (LLaVA-NeXT's tiles included), keeping
 * nothing. DLV_OK, or the error encoding it would give, naming the image.
 * opts may be NULL for the defaults. */
DLV_API dlv_status dlv_image_check(const dlv_model *model, const dlv_image *image,
                                   const dlv_preprocess_options *opts);

/* The shape [channels, height, width] of the float32 tensor that
 * dlv_preprocess_image writes for this model. */
DLV_API dlv_status dlv_model_image_size(const dlv_model *model, size_t *channels,
                                        size_t *height, size_t *width);
/* Decodes and preprocesses image into out (channels-first float32 of
 * dlv_model_image_size's shape); out_len is out's capacity in floats. opts
 * may be NULL for the defaults. */
DLV_API dlv_status dlv_preprocess_image(const dlv_model *model, const dlv_image *image,
                                        const dlv_preprocess_options *opts, float *out,
                                        size_t out_len);

/* ---- Tokenizers -------------------------------------------------------- */

/* A text tokenizer: Hugging Face tokenizer.json (BPE, byte-level BPE) or a
 * SentencePiece BPE tokenizer.model, exact to the id with the `tokenizers`
 * library. Immutable after loading; may be shared by threads. */
typedef struct dlv_tokenizer dlv_tokenizer;

/* path: a model directory (tokenizer.json, else tokenizer.model, plus
 * tokenizer_config.json's add_bos_token / add_eos_token when present), a
 * tokenizer.json or a tokenizer.model. Unsupported components (WordPiece,
 * Unigram, ...) give DLV_E_UNSUPPORTED naming them. */
DLV_API dlv_status dlv_tokenizer_load(const char *path, dlv_tokenizer **out);
DLV_API void dlv_tokenizer_free(dlv_tokenizer *tok);

/* Add the special tokens of the post-processor template (BOS/EOS ...). */
#define DLV_TOKENIZE_ADD_SPECIAL 1u

/* Tokenizes len bytes of UTF-8 text (NUL bytes allowed; text may be NULL
 * when len is 0) into ids of capacity cap. *n_ids always receives the number
 * of ids the text needs: ids NULL with cap 0 only asks for it (DLV_OK); a
 * shorter cap gives DLV_E_BUFFER_TOO_SMALL. Invalid UTF-8 gives
 * DLV_E_INVALID_ARG naming the byte offset (no replacement is made). */
DLV_API dlv_status dlv_tokenize(const dlv_tokenizer *tok, const char *text, size_t len,
                                unsigned flags, int32_t *ids, size_t cap, size_t *n_ids);

/* Leave out special tokens (BOS, EOS, chat markers) when detokenizing. */
#define DLV_DETOKENIZE_SKIP_SPECIAL 1u

/* Decodes n ids into buf (capacity cap) as NUL-terminated UTF-8. *needed
 * receives the text's length + 1 (the text itself may contain NUL bytes
 * when the ids encode them). buf NULL with cap 0 only asks for the size
 * (DLV_OK); a short non-NULL buf gives DLV_E_BUFFER_TOO_SMALL and buf[0] =
 * '\0' if cap > 0. An id outside the vocabulary gives DLV_E_INVALID_ARG.
 * Byte sequences that are not UTF-8 decode to U+FFFD, as in Hugging Face. */
DLV_API dlv_status dlv_detokenize(const dlv_tokenizer *tok, const int32_t *ids, size_t n,
                                  unsigned flags, char *buf, size_t cap, size_t *needed);

/* The model's tokenizer, owned by the model (do not free). A model
 * directory without tokenizer.json or tokenizer.model gives
 * DLV_E_UNSUPPORTED ("has no tokenizer"). */
DLV_API dlv_status dlv_model_tokenizer(const dlv_model *model, const dlv_tokenizer **out);

/* The number of ids: 1 + the largest model or added-token id. */
DLV_API dlv_status dlv_tokenizer_vocab_size(const dlv_tokenizer *tok, size_t *out);

#ifdef __cplusplus
}
#endif

#endif /* DISCLVLM_H */
