/* dlv_model_describe: a JSON summary of a loaded model, for `disclvlm info`
 * and for logs. Built with jansson so that strings (paths) are escaped. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/error.h"
#include "model/clip/clip_model.h"
#include "model/model.h"

/* jansson's setters steal the reference; a failed allocation leaves NULL,
 * which json_object_set_new rejects, so one check at the end catches it. */
static int set(json_t *obj, const char *key, json_t *value)
{
    return json_object_set_new(obj, key, value);
}

static json_t *vision_json(const dlv_llava_config *c)
{
    const dlv_vision_config *v = &c->vision;
    int64_t side = v->image_size / v->patch_size;
    json_t *o = json_object();
    int bad = !o;
    if (c->qwen2vl) { /* dynamic resolution: no image size, no feature layer */
        const dlv_qwen2vl_vision_config *q = &c->qv.vision;
        bad |= set(o, "type", json_string(q->qwen25 ? "qwen2_5_vl" : "qwen2_vl"));
        bad |= set(o, "hidden_size", json_integer(q->embed_dim));
        bad |= set(o, "intermediate_size", json_integer(q->mlp_dim));
        bad |= set(o, "layers", json_integer(q->depth));
        bad |= set(o, "heads", json_integer(q->num_heads));
        bad |= set(o, "patch_size", json_integer(q->patch_size));
        bad |= set(o, "temporal_patch_size", json_integer(q->temporal_patch_size));
        bad |= set(o, "spatial_merge_size", json_integer(q->spatial_merge_size));
        bad |= set(o, "hidden_act", json_string(dlv_act_name(q->hidden_act)));
        if (q->qwen25) bad |= set(o, "window_size", json_integer(q->window_size));
        if (bad) { json_decref(o); return NULL; }
        return o;
    }
    bad |= set(o, "type", json_string(dlv_vision_kind_name(v->kind)));
    bad |= set(o, "hidden_size", json_integer(v->hidden_size));
    bad |= set(o, "intermediate_size", json_integer(v->intermediate_size));
    bad |= set(o, "layers", json_integer(v->num_hidden_layers));
    bad |= set(o, "heads", json_integer(v->num_attention_heads));
    bad |= set(o, "image_size", json_integer(v->image_size));
    bad |= set(o, "patch_size", json_integer(v->patch_size));
    bad |= set(o, "num_patches", json_integer(side * side));
    bad |= set(o, "hidden_act", json_string(dlv_act_name(v->hidden_act)));
    bad |= set(o, "feature_layer", json_integer(c->vision_feature_layer));
    bad |= set(o, "feature_select", json_string(c->vision_feature_select_full ? "full" : "default"));
    if (bad) { json_decref(o); return NULL; }
    return o;
}

static json_t *projector_json(const dlv_llava_config *c)
{
    json_t *o = json_object();
    int bad = !o;
    if (c->qwen2vl) { /* Qwen2-VL's PatchMerger */
        const int64_t m = c->qv.vision.spatial_merge_size;
        bad |= set(o, "type", json_string("patch_merger"));
        bad |= set(o, "in_features", json_integer(c->qv.vision.embed_dim * m * m));
        bad |= set(o, "out_features", json_integer(c->text.hidden_size));
        bad |= set(o, "spatial_merge_size", json_integer(m));
        if (bad) { json_decref(o); return NULL; }
        return o;
    }
    bad |= set(o, "type", json_string("mlp2x"));
    bad |= set(o, "in_features", json_integer(c->vision.hidden_size));
    bad |= set(o, "out_features", json_integer(c->text.hidden_size));
    bad |= set(o, "hidden_act", json_string(dlv_act_name(c->projector_hidden_act)));
    bad |= set(o, "bias", json_boolean(c->multimodal_projector_bias));
    if (c->anyres) { /* LLaVA-NeXT: the tile grids an image may take */
        json_t *g = json_array();
        for (int64_t i = 0; g && i < c->n_pinpoints; i++)
            bad |= json_array_append_new(g, json_pack("[I, I]", (json_int_t)c->pinpoints[i][0],
                                                      (json_int_t)c->pinpoints[i][1]));
        bad |= set(o, "image_grid_pinpoints", g);
        bad |= set(o, "image_newline", json_true());
    }
    if (bad) { json_decref(o); return NULL; }
    return o;
}

static json_t *text_json(const dlv_text_config *t)
{
    json_t *o = json_object();
    int bad = !o;
    bad |= set(o, "type", json_string(dlv_text_kind_name(t->kind)));
    bad |= set(o, "vocab_size", json_integer(t->vocab_size));
    bad |= set(o, "hidden_size", json_integer(t->hidden_size));
    bad |= set(o, "layers", json_integer(t->num_hidden_layers));
    bad |= set(o, "heads", json_integer(t->num_attention_heads));
    bad |= set(o, "kv_heads", json_integer(t->num_key_value_heads));
    bad |= set(o, "head_dim", json_integer(t->head_dim));
    bad |= set(o, "intermediate_size", json_integer(t->intermediate_size));
    bad |= set(o, "rope_theta", json_real(t->rope_theta));
    bad |= set(o, "rope_scaling", t->has_rope_scaling ? json_string(t->rope_scaling_type)
                                                      : json_null());
    bad |= set(o, "tie_word_embeddings", json_boolean(t->tie_word_embeddings));
    if (bad) { json_decref(o); return NULL; }
    return o;
}

static json_t *describe(const dlv_model *m)
{
    const dlv_llava_config *c = dlv_model_config(m);
    const dlv_weights *w = dlv_model_weights(m);
    const dlv_st_set *ck = dlv_model_checkpoint(m);
    const dlv_backend *be = dlv_model_backend(m);
    json_t *root = json_object();
    if (!root) return NULL;
    int bad = 0;

    const dlv_clip_config *clip = dlv_model_clip(m);
    const char *format = clip ? "clip" : c->anyres ? "llava_next" : "llava";
    if (c->qwen2vl) format = c->qv.qwen25 ? "qwen2_5_vl" : "qwen2_vl";
    bad |= set(root, "format", json_string(format));
    json_t *arch = json_array();
    if (arch && c->architecture[0]) bad |= json_array_append_new(arch, json_string(c->architecture));
    bad |= set(root, "architectures", arch);
    bad |= set(root, "model_dir", json_string(dlv_model_dir(m)));

    json_t *ckj = json_object();
    if (ckj) {
        bad |= set(ckj, "files", json_integer((json_int_t)dlv_st_set_n_files(ck)));
        bad |= set(ckj, "sharded", json_boolean(dlv_st_set_sharded(ck)));
        bad |= set(ckj, "tensor_layout", json_string(dlv_weight_layout_name(w->layout)));
        bad |= set(ckj, "tensor_count", json_integer((json_int_t)dlv_st_set_count(ck)));
        bad |= set(ckj, "unused_tensors", json_integer((json_int_t)w->n_unused));
    }
    bad |= set(root, "checkpoint", ckj);

    json_t *dt = json_object();
    for (int d = 0; dt && d < DLV_DTYPE_COUNT; d++)
        if (w->dtype_count[d])
            bad |= set(dt, dlv_dtype_name((dlv_dtype)d), json_integer((json_int_t)w->dtype_count[d]));
    bad |= set(root, "dtype", dt);
    /* dlv_model_options_set_weight_dtype: null when held as stored. */
    dlv_dtype held = dlv_model_weight_dtype(m);
    bad |= set(root, "weight_dtype",
               held == DLV_DTYPE_COUNT ? json_null() : json_string(dlv_dtype_name(held)));
    bad |= set(root, "torch_dtype", c->torch_dtype[0] ? json_string(c->torch_dtype) : json_null());

    bad |= set(root, "vision", vision_json(c));
    if (clip) {
        /* A dual encoder: its own text tower and the two projections. */
        const dlv_clip_text_config *t = &clip->text;
        bad |= set(root, "text", json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I}",
                                           "type", "clip_text_model",
                                           "vocab_size", (json_int_t)t->vocab_size,
                                           "hidden_size", (json_int_t)t->hidden_size,
                                           "intermediate_size", (json_int_t)t->intermediate_size,
                                           "layers", (json_int_t)t->num_hidden_layers,
                                           "heads", (json_int_t)t->num_attention_heads,
                                           "max_positions",
                                           (json_int_t)t->max_position_embeddings,
                                           "hidden_act", dlv_act_name(t->hidden_act),
                                           "eos_token_id", (json_int_t)t->eos_token_id));
        bad |= set(root, "projection_dim", json_integer((json_int_t)clip->projection_dim));
    } else {
        bad |= set(root, "projector", projector_json(c));
        bad |= set(root, "text", text_json(&c->text));
        bad |= set(root, "image_token_index", json_integer(c->image_token_index));
    }

    json_t *params = json_object();
    if (params) {
        uint64_t total = w->params[0] + w->params[1] + w->params[2];
        bad |= set(params, "vision", json_integer((json_int_t)w->params[DLV_PART_VISION]));
        bad |= set(params, "projector", json_integer((json_int_t)w->params[DLV_PART_PROJECTOR]));
        bad |= set(params, "text", json_integer((json_int_t)w->params[DLV_PART_TEXT]));
        bad |= set(params, "total", json_integer((json_int_t)total));
    }
    bad |= set(root, "parameters", params);
    bad |= set(root, "embedding_size",
               json_integer(clip ? (json_int_t)clip->projection_dim : c->text.hidden_size));
    bad |= set(root, "backend", json_string(be && be->ops ? be->ops->name : "none"));
    bad |= set(root, "backend_detail", json_string(dlv_backend_describe(be)));
    bad |= set(root, "has_preprocessor_config", json_boolean(dlv_model_preproc(m) != NULL));
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

DLV_API dlv_status dlv_model_describe(const dlv_model *model, char *buf, size_t cap,
                                      size_t *needed)
{
    if (needed) *needed = 0;
    if (!model) return dlv_error(DLV_E_INVALID_ARG, "dlv_model_describe: model is NULL");
    if (!buf && cap != 0)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_model_describe: buf is NULL but cap is %zu", cap);
    json_t *root = describe(model);
    if (!root) return dlv_error_nomem("the model description", 0);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return dlv_error_nomem("the model description text", 0);
    size_t n = strlen(text) + 1;
    if (needed) *needed = n;
    dlv_status st = DLV_OK;
    if (buf) {
        if (cap < n) {
            if (cap > 0) buf[0] = '\0';
            st = dlv_error(DLV_E_BUFFER_TOO_SMALL,
                           "dlv_model_describe: the description needs %zu bytes, the buffer has %zu",
                           n, cap);
        } else {
            memcpy(buf, text, n);
        }
    }
    free(text);
    return st;
}
