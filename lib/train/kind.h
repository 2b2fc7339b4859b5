/* The model-kind interface of the trainer core (train/trainer.c): what a
 * model family plugs in to be trained (train/kind_llava.c, kind_clip.c).
 *
 * The core owns the flat device buffers (parameters, gradients, Adam
 * moments), the GradCache step, the contrastive loss, clipping, the
 * optimizer and checkpoints. A kind lays its trainable tensors out in the
 * flat buffers (dlv_trainer_reserve), initialises them, and runs its
 * networks forward (normalised embeddings of one side of a chunk of
 * examples) and backward (the gradients of those embeddings, plus any loss
 * of its own such as the next-token loss), reading and writing parameters
 * only through the device addresses the core gives it. */
#ifndef DLV_TRAIN_KIND_H
#define DLV_TRAIN_KIND_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "disclvlm.h"
#include "model/adapter.h"
#include "train/trainer.h"

typedef struct dlv_train_kind {
    const char *name;                /* "llava", "clip" */
    /* Files a checkpoint directory may hold (NULL-terminated). */
    const char *const *checkpoint_files;
    const char *const *model_files;       /* what save_model writes */

    /* Set-up: validates cfg for the model, reserves the trainable set
     * (dlv_trainer_reserve), and after the core allocated the buffers,
     * writes the initial parameters. from: the adapter to start from (NULL
     * for kinds without adapters). *state is the kind's. */
    dlv_status (*create)(dlv_trainer *t, const dlv_adapter *from, void **state);
    dlv_status (*init)(void *state, dlv_trainer *t);
    void (*destroy)(void *state);

    /* One step: prepare reads the n examples (tokenizes, decodes,
     * uploads; features that stay fixed for the step); forward writes the
     * L2-normalised embeddings of examples [first, first + count) of one
     * side to out (device [count, embed_dim]), keeping what the backward
     * needs when with_tape; backward takes dEn (device [count, embed_dim],
     * the loss's gradient w.r.t. those embeddings; NULL: none) and adds
     * every gradient into the core's buffer, the kind's own losses
     * included. end_step releases the step's data. */
    dlv_status (*prepare)(void *state, dlv_trainer *t, const dlv_train_example *ex, size_t n);
    dlv_status (*forward)(void *state, dlv_trainer *t, int image_side, size_t first, size_t count,
                          int with_tape, float *out);
    dlv_status (*backward)(void *state, dlv_trainer *t, int image_side, const float *dEn);
    /* The kind's own loss for the step (0 if none) and the tokens it read.
     * The loss is the sum of its terms over the count below (a share of
     * the global mean in a data-parallel step). */
    void (*step_losses)(void *state, double *extra_loss, uint64_t *tokens);
    /* The number of terms the kind's own loss averages over this step, as
     * prepare counted them, and setting it to the global batch's (the sum
     * over the ranks) before any backward. NULL for a kind without one. */
    int64_t (*loss_count)(void *state);
    void (*set_loss_count)(void *state, int64_t count);
    void (*end_step)(void *state);

    /* The logit scale the contrastive loss uses (log of 1/temperature). */
    dlv_status (*logit_scale)(void *state, dlv_trainer *t, float *out);

    /* The current state as an adapter (kinds with adapters; NULL slot:
     * DLV_E_UNSUPPORTED). */
    dlv_status (*export_adapter)(void *state, dlv_trainer *t, dlv_adapter *out);
    /* The kind's checkpoint files other than the training state, into the
     * (temporary) directory dir; NULL: none. */
    dlv_status (*save_files)(void *state, dlv_trainer *t, const char *dir);
    /* A Hugging Face model directory with the trained weights. */
    dlv_status (*save_model)(void *state, dlv_trainer *t, const char *dir, const char *dtype);

    /* The weights as trained (one tensor per weight-table entry), and the
     * view the model kind's encoders read (model/kind.h) for the current
     * state. */
    const dlv_tensor *(*tensors)(void *state);
    const void *(*encode_view)(void *state);
} dlv_train_kind;

extern const dlv_train_kind dlv_train_kind_llava;
extern const dlv_train_kind dlv_train_kind_clip;

/* ---- services of the core to the kinds --------------------------------- */

const dlv_model *dlv_trainer_model(const dlv_trainer *t);
dlv_backend *dlv_trainer_backend(const dlv_trainer *t);
const dlv_train_config *dlv_trainer_config(const dlv_trainer *t);
/* The trainer's RNG (xoshiro256**, seeded from cfg.seed; saved in
 * checkpoints): uniform in [-1, 1). */
float dlv_trainer_rand_sym(dlv_trainer *t);

/* Reserves n floats of the flat buffers (during create) and returns their
 * offset. trained: the optimizer updates them (and they count in the
 * gradient norm); decay: AdamW's weight decay applies (matrices only,
 * docs/training.md). */
size_t dlv_trainer_reserve(dlv_trainer *t, size_t n, int trained, int decay);

/* Device addresses in the flat buffers (after create). */
float *dlv_trainer_params_at(const dlv_trainer *t, size_t offset);
float *dlv_trainer_grads_at(const dlv_trainer *t, size_t offset);
/* An f32 device tensor of the given shape over the parameters / gradients
 * at offset. */
dlv_tensor dlv_trainer_param_tensor(const dlv_trainer *t, size_t offset, int ndim,
                                    const int64_t *shape);
dlv_tensor dlv_trainer_grad_tensor(const dlv_trainer *t, size_t offset, int ndim,
                                   const int64_t *shape);

/* The logit scale's parameter offset when it is trained (the core clamps
 * it to log 100 after each update and adds the loss's gradient to it). */
void dlv_trainer_set_logit_scale_slot(dlv_trainer *t, size_t offset);

/* Micro-batch size for a step of n examples (cfg.micro_batch, or n). */
size_t dlv_trainer_chunk(const dlv_trainer *t, size_t n);

#endif
