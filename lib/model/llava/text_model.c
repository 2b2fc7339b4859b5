/* The decoder forward pass (Llama / Mistral / Qwen2) on the backend ops. */
#include "model/llava/text_model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/llava/llava_weights.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/nn/decoder.h"

dlv_status dlv_text_check_config(const dlv_llava_config *cfg, const char *label)
{
    if (!cfg) return dlv_error(DLV_E_INVALID_ARG, "text forward: config is NULL");
    const dlv_text_config *t = &cfg->text;
    if (t->has_rope_scaling)
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: text_config.rope_scaling: rope type '%s' is not supported "
                         "(only none/default)", label, t->rope_scaling_type);
    /* The gated MLP is fused as SiLU(gate) * up; other activations would need
     * an elementwise product op the backends do not have yet. */
    if (t->hidden_act != DLV_ACT_SILU)
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: text_config.hidden_act: '%s' is not supported (only silu)", label,
                         dlv_act_name(t->hidden_act));
    if (t->head_dim <= 0 || t->head_dim % 2 != 0)
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: text_config.head_dim: %lld must be even for RoPE", label,
                         (long long)t->head_dim);
    return DLV_OK;
}

dlv_status dlv_text_check(const dlv_model *m, const dlv_backend *be)
{
    if (!m || !be) return dlv_error(DLV_E_INVALID_ARG, "text forward: model or backend is NULL");
    const char *label = dlv_model_dir(m);
    dlv_status st = dlv_text_check_config(dlv_model_config(m), label);
    if (st) return st;
    if (!dlv_backend_same_memory(be, dlv_model_backend(m)))
        return dlv_error(DLV_E_INVALID_ARG, "%s: backend '%s' cannot read the model's weights "
                         "(they live on backend '%s')", label, be->ops->name,
                         dlv_model_backend(m)->ops->name);
    return DLV_OK;
}

/* A device buffer holding a host array (an upload). */
static dlv_status to_device(dlv_backend *be, const void *host, size_t bytes, dlv_buffer *out)
{
    dlv_status st = dlv_buffer_alloc(be, bytes, out);
    if (!st) st = dlv_buffer_upload(out, 0, host, bytes);
    return st;
}

dlv_status dlv_text_embed_ids(const dlv_model *m, dlv_backend *be, const int32_t *ids,
                              int64_t n, float *out, size_t out_len)
{
    dlv_status st = dlv_text_check(m, be);
    if (st) return st;
    const dlv_text_config *t = &dlv_model_config(m)->text;
    if (n < 0 || (n > 0 && (!ids || !out)))
        return dlv_error(DLV_E_INVALID_ARG, "%s: text embedding: bad ids/out (n = %lld)",
                         dlv_model_dir(m), (long long)n);
    if (n > 0 && (uint64_t)n > SIZE_MAX / (uint64_t)t->hidden_size / sizeof(float))
        return dlv_error(DLV_E_INVALID_ARG, "%s: text embedding: %lld ids is too many",
                         dlv_model_dir(m), (long long)n);
    if (out_len < (size_t)n * (size_t)t->hidden_size)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL,
                         "%s: text embedding: out holds %zu floats, %lld ids need %zu",
                         dlv_model_dir(m), out_len, (long long)n,
                         (size_t)n * (size_t)t->hidden_size);
    /* Ids are checked here, on the host, before they go to the device. */
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return dlv_error(DLV_E_INVALID_ARG, "%s: embed_tokens: token id %d at position %lld "
                             "is outside the vocabulary [0, %lld)", dlv_model_dir(m),
                             (int)ids[i], (long long)i, (long long)t->vocab_size);
    if (n == 0) return DLV_OK;
    const dlv_tensor *table = &dlv_model_llava_w(m)->embed_tokens;
    const size_t bytes = (size_t)n * (size_t)t->hidden_size * sizeof(float);
    dlv_buffer dids = {0}, dout = {0};
    st = to_device(be, ids, (size_t)n * sizeof *ids, &dids);
    if (!st) st = dlv_buffer_alloc(be, bytes, &dout);
    if (!st)
        st = dlv_embedding(be, dlv_buffer_ptr(&dout), dlv_tensor_data(table), table->dtype,
                           dlv_buffer_ptr(&dids), n, t->vocab_size, t->hidden_size);
    if (!st) st = dlv_buffer_download(out, &dout, 0, bytes);
    dlv_buffer_free(&dids);
    dlv_buffer_free(&dout);
    if (st) return dlv_error_prefix(st, "%s: embed_tokens", dlv_model_dir(m));
    return DLV_OK;
}

static dlv_status check_args(const dlv_model *m, const dlv_text_config *t, const float *embeds,
                             const int32_t *lengths, int64_t batch, int64_t max_len,
                             const float *last_hidden, size_t last_len,
                             const float *all_hidden, size_t all_len)
{
    const char *label = dlv_model_dir(m);
    if (!embeds || !lengths || !last_hidden)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text forward: embeds, lengths or last_hidden "
                         "is NULL", label);
    if (batch < 1 || max_len < 1)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text forward: batch = %lld, max_len = %lld "
                         "must be >= 1", label, (long long)batch, (long long)max_len);
    int64_t widest = t->hidden_size;
    if (t->intermediate_size > widest) widest = t->intermediate_size;
    if (t->num_attention_heads * t->head_dim > widest)
        widest = t->num_attention_heads * t->head_dim;
    const int64_t limit = (int64_t)(PTRDIFF_MAX / 4) / (int64_t)sizeof(float) / widest /
                          (t->num_hidden_layers + 1);
    if (max_len > limit / batch || batch * max_len > INT32_MAX)
        return dlv_error(DLV_E_INVALID_ARG, "%s: text forward: batch %lld x max_len %lld is "
                         "too large", label, (long long)batch, (long long)max_len);
    for (int64_t b = 0; b < batch; b++)
        if (lengths[b] < 1 || lengths[b] > max_len)
            return dlv_error(DLV_E_INVALID_ARG, "%s: text forward: lengths[%lld] = %d is "
                             "outside [1, max_len = %lld]", label, (long long)b,
                             (int)lengths[b], (long long)max_len);
    const size_t need_last = (size_t)batch * (size_t)t->hidden_size;
    if (last_len < need_last)
        return dlv_error(DLV_E_BUFFER_TOO_SMALL, "%s: text forward: last_hidden holds %zu "
                         "floats, needs %zu", label, last_len, need_last);
    if (all_hidden) {
        const size_t need_all = (size_t)(t->num_hidden_layers + 1) * (size_t)batch *
                                (size_t)max_len * (size_t)t->hidden_size;
        if (all_len < need_all)
            return dlv_error(DLV_E_BUFFER_TOO_SMALL, "%s: text forward: all_hidden holds %zu "
                             "floats, needs %zu", label, all_len, need_all);
    }
    return DLV_OK;
}

dlv_status dlv_text_forward(const dlv_model *m, dlv_backend *be, const float *embeds,
                            const int32_t *lengths, int64_t batch, int64_t max_len,
                            float *last_hidden, size_t last_len, float *all_hidden,
                            size_t all_len)
{
    return dlv_text_forward_lora(m, be, NULL, embeds, lengths, batch, max_len, last_hidden,
                                 last_len, all_hidden, all_len);
}

dlv_status dlv_text_forward_lora(const dlv_model *m, dlv_backend *be, const dlv_lora *lora,
                                 const float *embeds, const int32_t *lengths, int64_t batch,
                                 int64_t max_len, float *last_hidden, size_t last_len,
                                 float *all_hidden, size_t all_len)
{
    dlv_status st = dlv_text_check(m, be);
    if (st) return st;
    const dlv_text_config *t = &dlv_model_config(m)->text;
    if ((st = check_args(m, t, embeds, lengths, batch, max_len, last_hidden, last_len,
                         all_hidden, all_len)))
        return st;
    if (lora && (lora->n_layers != t->num_hidden_layers || lora->rank < 1))
        return dlv_error(DLV_E_INVALID_ARG, "%s: text forward: the LoRA adapter has %lld layers "
                         "(rank %lld), the model %lld", dlv_model_dir(m),
                         (long long)lora->n_layers, (long long)lora->rank,
                         (long long)t->num_hidden_layers);
    const dlv_llava_w *w = dlv_model_llava_w(m);
    const size_t H = (size_t)t->hidden_size, n = (size_t)(batch * max_len);
    const size_t plane_bytes = n * H * sizeof(float);
    const size_t trace_bytes = all_hidden ? ((size_t)t->num_hidden_layers + 1) * plane_bytes : 0;
    dlv_buffer x = {0}, hidden = {0}, trace = {0}, lbuf = {0};
    dlv_lora_pair *pairs = NULL;
    st = to_device(be, embeds, plane_bytes, &x);
    if (!st) st = dlv_buffer_alloc(be, plane_bytes, &hidden);
    if (!st && all_hidden) st = dlv_buffer_alloc(be, trace_bytes, &trace);
    dlv_decoder_lora dl = {0};
    if (!st && lora) {
        pairs = calloc((size_t)lora->n_layers * DLV_LORA_N_MODULES, sizeof *pairs);
        if (!pairs) st = dlv_error_nomem("LoRA pairs", 64);
        if (!st) st = to_device(be, lora->params, lora->n_params * sizeof(float), &lbuf);
        if (!st) dlv_lora_pairs(lora, dlv_buffer_ptr(&lbuf), pairs);
        dl = (dlv_decoder_lora){pairs, lora->rank};
    }
    dlv_llava_dims d;
    dlv_llava_dims_of(dlv_model_config(m), &d);
    if (!st)
        st = dlv_decoder_forward(be, &d.text, &w->text, lora ? &dl : NULL, dlv_buffer_ptr(&x),
                                 lengths, batch, max_len, 0, NULL, dlv_buffer_ptr(&hidden),
                                 all_hidden ? dlv_buffer_ptr(&trace) : NULL);
    if (st) st = dlv_error_prefix(st, "%s: language model", dlv_model_dir(m));
    for (int64_t b = 0; b < batch && !st; b++) {
        const size_t row = (size_t)(b * max_len + lengths[b] - 1);
        st = dlv_buffer_download(last_hidden + (size_t)b * H, &hidden, row * H * sizeof(float),
                                 H * sizeof(float));
    }
    if (!st && all_hidden) st = dlv_buffer_download(all_hidden, &trace, 0, trace_bytes);
    dlv_buffer_free(&x);
    dlv_buffer_free(&hidden);
    dlv_buffer_free(&trace);
    dlv_buffer_free(&lbuf);
    free(pairs);
    return st;
}
