/* The CPU backend's backward-op slots (training), wired into the ops table
 * in cpu_backend.c. Semantics: the checked wrappers in backend/backend.h and
 * docs/backends.md ("Backward ops"). Internal to the CPU backend. */
#ifndef DLV_BACKEND_CPU_BACKWARD_H
#define DLV_BACKEND_CPU_BACKWARD_H

#include "backend/backend.h"

/* cpu_norm_bw.c */
dlv_status dlv_cpu_rmsnorm_backward(dlv_backend *be, float *dinp, float *dweight,
                                    const float *dout, const float *inp, const void *weight,
                                    dlv_dtype weight_dtype, int64_t rows, int64_t cols,
                                    float eps);
dlv_status dlv_cpu_layernorm_backward(dlv_backend *be, float *dinp, float *dweight,
                                      float *dbias, const float *dout, const float *inp,
                                      const void *weight, dlv_dtype param_dtype, int64_t rows,
                                      int64_t cols, float eps);
dlv_status dlv_cpu_l2_normalize_backward(dlv_backend *be, float *dinp, const float *dout,
                                         const float *inp, int64_t rows, int64_t cols);
dlv_status dlv_cpu_bias_backward(dlv_backend *be, float *dbias, const float *dout,
                                 int64_t rows, int64_t cols);

/* cpu_attention_bw.c */
dlv_status dlv_cpu_attention_backward(dlv_backend *be, const dlv_attention_bw_args *args);

/* cpu_rope_table.c */
dlv_status dlv_cpu_rope_table_backward(dlv_backend *be, float *dx, const float *cos_tab,
                                       const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                                       int64_t head_dim);

/* cpu_backward.c */
dlv_status dlv_cpu_rope_backward(dlv_backend *be, float *dx, const int32_t *positions,
                                 int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                                 double theta);
dlv_status dlv_cpu_activation_backward(dlv_backend *be, dlv_op_act act, float *dinp,
                                       const float *dout, const float *inp, int64_t n);
dlv_status dlv_cpu_swiglu_backward(dlv_backend *be, float *dgate, float *dup,
                                   const float *dout, const float *gate, const float *up,
                                   int64_t n);
dlv_status dlv_cpu_embedding_backward(dlv_backend *be, float *dtable, const float *dout,
                                      const int32_t *ids, int64_t n_ids, int64_t vocab,
                                      int64_t dim);
dlv_status dlv_cpu_softmax_cross_entropy(dlv_backend *be, float *losses, float *dlogits,
                                         const float *logits, const int32_t *targets,
                                         int64_t n, int64_t vocab, float dscale);

#endif
