/* The CUDA backend's compute, backward and optimizer slots (and copy),
 * wired into cuda_ops in cuda_backend.c. Semantics: the checked wrappers in
 * backend/backend.h, which have validated every argument before a slot is
 * called; the arithmetic mirrors the CPU backend's (backend/cpu/). Hidden
 * in the module like everything but dlv_cuda_module_get.
 *
 * Each slot queues its kernels on the instance's stream and returns without
 * waiting, except those with index arguments (embedding, rope, the loss and
 * their backwards), which first check the indices on the device and wait
 * for that answer (cuda_ops_util.h, dlv_cuda_check_index). */
#ifndef DLV_BACKEND_CUDA_OPS_ROWS_H
#define DLV_BACKEND_CUDA_OPS_ROWS_H

#include "backend/backend.h"

/* cuda_ops_rows.c: forward ops */
dlv_status dlv_cuda_add(dlv_backend *be, float *out, const float *a, const void *b,
                        dlv_dtype b_dtype, int broadcast_b, int64_t rows, int64_t cols);
dlv_status dlv_cuda_layernorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                              const void *bias, dlv_dtype param_dtype, int64_t rows,
                              int64_t cols, float eps);
dlv_status dlv_cuda_rmsnorm(dlv_backend *be, float *out, const float *inp, const void *weight,
                            dlv_dtype weight_dtype, int64_t rows, int64_t cols, float eps);
dlv_status dlv_cuda_add_layernorm(dlv_backend *be, float *sum, float *out, const float *a,
                                  const float *b, const void *weight, const void *bias,
                                  dlv_dtype param_dtype, int64_t rows, int64_t cols, float eps);
dlv_status dlv_cuda_add_rmsnorm(dlv_backend *be, float *sum, float *out, const float *a,
                                const float *b, const void *weight, dlv_dtype weight_dtype,
                                int64_t rows, int64_t cols, float eps);
dlv_status dlv_cuda_l2_normalize(dlv_backend *be, float *out, const float *inp, int64_t rows,
                                 int64_t cols);
dlv_status dlv_cuda_activation(dlv_backend *be, dlv_op_act act, float *out, const float *inp,
                               int64_t n);
dlv_status dlv_cuda_swiglu(dlv_backend *be, float *out, const float *gate, const float *up,
                           int64_t n);
dlv_status dlv_cuda_embedding(dlv_backend *be, float *out, const void *table,
                              dlv_dtype table_dtype, const int32_t *ids, int64_t n_ids,
                              int64_t vocab, int64_t dim);
dlv_status dlv_cuda_im2col_patches(dlv_backend *be, float *out, const float *pixels, int64_t c,
                                   int64_t h, int64_t w, int64_t patch);

/* cuda_ops_rope.c: RoPE and its backward, from theta or from cos/sin tables */
dlv_status dlv_cuda_rope(dlv_backend *be, float *x, const int32_t *positions, int64_t n_tokens,
                         int64_t n_heads, int64_t head_dim, double theta);
dlv_status dlv_cuda_rope_backward(dlv_backend *be, float *dx, const int32_t *positions,
                                  int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                                  double theta);
dlv_status dlv_cuda_rope_table(dlv_backend *be, float *x, const float *cos_tab,
                               const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                               int64_t head_dim);
dlv_status dlv_cuda_rope_table_backward(dlv_backend *be, float *dx, const float *cos_tab,
                                        const float *sin_tab, int64_t n_tokens, int64_t n_heads,
                                        int64_t head_dim);

/* cuda_ops_backward.c: backward ops and the loss */
dlv_status dlv_cuda_rmsnorm_backward(dlv_backend *be, float *dinp, float *dweight,
                                     const float *dout, const float *inp, const void *weight,
                                     dlv_dtype weight_dtype, int64_t rows, int64_t cols,
                                     float eps);
dlv_status dlv_cuda_layernorm_backward(dlv_backend *be, float *dinp, float *dweight,
                                       float *dbias, const float *dout, const float *inp,
                                       const void *weight, dlv_dtype param_dtype, int64_t rows,
                                       int64_t cols, float eps);
dlv_status dlv_cuda_activation_backward(dlv_backend *be, dlv_op_act act, float *dinp,
                                        const float *dout, const float *inp, int64_t n);
dlv_status dlv_cuda_swiglu_backward(dlv_backend *be, float *dgate, float *dup,
                                    const float *dout, const float *gate, const float *up,
                                    int64_t n);
dlv_status dlv_cuda_embedding_backward(dlv_backend *be, float *dtable, const float *dout,
                                       const int32_t *ids, int64_t n_ids, int64_t vocab,
                                       int64_t dim);
dlv_status dlv_cuda_bias_backward(dlv_backend *be, float *dbias, const float *dout,
                                  int64_t rows, int64_t cols);
dlv_status dlv_cuda_l2_normalize_backward(dlv_backend *be, float *dinp, const float *dout,
                                          const float *inp, int64_t rows, int64_t cols);
dlv_status dlv_cuda_softmax_cross_entropy(dlv_backend *be, float *losses, float *dlogits,
                                          const float *logits, const int32_t *targets,
                                          int64_t n, int64_t vocab, float dscale);

/* cuda_ops_optim.c: optimizer ops and device-to-device copies */
dlv_status dlv_cuda_adamw_update(dlv_backend *be, const dlv_adamw_args *args);
dlv_status dlv_cuda_sgd_update(dlv_backend *be, float *params, const float *grads, int64_t n,
                               float lr, float weight_decay, float grad_scale);
dlv_status dlv_cuda_sum_squares(dlv_backend *be, double *out, const float *x, int64_t n);
dlv_status dlv_cuda_copy(dlv_backend *be, dlv_buffer *dst, size_t dst_offset,
                         const dlv_buffer *src, size_t src_offset, size_t size);

#endif
