/* Evaluation metrics on precomputed scores: retrieval Recall@K both ways,
 * pairwise accuracy (SugarCrepe), Winoground's text / image / group scores,
 * zero-shot classification top-K with prompt ensembling.
 *
 * Tie rule (docs/evaluation.md): ties count against the model, everywhere.
 *  - A comparison of a right answer with a wrong one is won only when the
 *    right one's score is strictly greater (SugarCrepe, Winoground).
 *  - A rank is the number of wrong candidates whose score is greater than
 *    OR EQUAL TO the right one's (0 = first); a hit at K means rank < K.
 *    With several right candidates (image -> text: an image's 5 captions),
 *    the best-scored right one counts, and the other right ones do not push
 *    it down. This equals "some right candidate is in the top K" when ties
 *    are broken in favour of the wrong candidates, so a model that gives
 *    every pair the same score gets 0, not 100.
 * A NaN score is an error (DLV_E_NUMERIC naming its row and column), never
 * silently ranked. */
#ifndef DLV_EVAL_METRICS_H
#define DLV_EVAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

/* Retrieval ranks from the score matrix scores[i * n_txt + j] = s(image i,
 * text j), where text j describes image txt_img[j] (< n_img). i2t_rank
 * (n_img entries, may be NULL) receives each image's rank of its best
 * caption among all texts; t2i_rank (n_txt, may be NULL) each text's rank
 * of its image among all images. Every image needs at least one text when
 * i2t_rank is wanted. */
dlv_status dlv_eval_retrieval_ranks(const float *scores, size_t n_img, size_t n_txt,
                                    const uint32_t *txt_img, size_t *i2t_rank,
                                    size_t *t2i_rank);

/* The percentage (0..100) of the n ranks that are < k; 0 when n is 0. */
double dlv_eval_recall_at(const size_t *ranks, size_t n, size_t k);

/* The number of i with pos[i] > neg[i] (strictly). NaN: DLV_E_NUMERIC. */
dlv_status dlv_eval_pair_wins(const float *pos, const float *neg, size_t n, size_t *wins);

/* One Winoground item's scores: s[c][i] = s(caption c, image i). */
typedef struct dlv_wino_item {
    float s[2][2];
} dlv_wino_item;

typedef struct dlv_wino_result {
    size_t text, image, group; /* items won under each score */
    size_t n;                  /* items */
} dlv_wino_result;

/* text:  s(c0,i0) > s(c1,i0) and s(c1,i1) > s(c0,i1)
 * image: s(c0,i0) > s(c0,i1) and s(c1,i1) > s(c1,i0)
 * group: both. */
dlv_status dlv_eval_winoground(const dlv_wino_item *items, size_t n, dlv_wino_result *out);

/* Prompt ensembling: text_emb holds n_cls * n_tpl rows of dim floats, class
 * c's templates at rows c * n_tpl .. c * n_tpl + n_tpl - 1. out (n_cls x
 * dim) receives, per class, the mean of the L2-normalised rows,
 * L2-normalised again. A zero row or a zero mean is DLV_E_NUMERIC. */
dlv_status dlv_eval_class_embeddings(const float *text_emb, size_t n_cls, size_t n_tpl,
                                     size_t dim, float *out);

/* Classification ranks: logits[i * n_cls + c] for example i and class c,
 * label[i] < n_cls; rank[i] = the number of other classes scoring >= the
 * true class (so top-K accuracy = dlv_eval_recall_at(rank, n, K)). */
dlv_status dlv_eval_class_ranks(const float *logits, size_t n, size_t n_cls,
                                const uint32_t *label, size_t *rank);

#endif
