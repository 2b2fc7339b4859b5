/* The contrastive loss (docs/training.md, "Losses"): symmetric InfoNCE over
 * a batch of n image and n text embeddings (unit vectors), logits
 * s * V T^T with s = exp(min(logit_scale, log 100)):
 *   L_c = (CE over rows + CE over columns) / 2, each the mean over n.
 * The next-token part runs through the LM head in trainer.c. */
#ifndef DLV_TRAIN_LOSS_H
#define DLV_TRAIN_LOSS_H

#include <stdint.h>

/* log(100): CLIP's cap on the logit scale. */
#define DLV_LOGIT_SCALE_MAX 4.605170185988092

/* v, t [n, dim] (normalised). Writes the loss, dv and dt (SET, [n, dim]:
 * d L / d v, d L / d t) and d L / d logit_scale (0 where the cap is
 * active, as clamp's gradient). Sums in double. */
void dlv_contrastive_loss(const float *v, const float *t, int64_t n, int64_t dim,
                          double logit_scale, double *loss, float *dv, float *dt,
                          double *dlogit_scale);

#endif
