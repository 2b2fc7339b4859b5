/* Prompt templates: family defaults, prompts.json reading and writing. */
#include "model/prompts.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"
#include "tokenizer/text_util.h"
#include "tokenizer/tokenizer.h"
#include "model/model.h"

typedef struct defaults {
    const char *prefix, *image_instruction, *text_instruction, *suffix;
    int add_bos;
    const char *text_prefix; /* NULL: prefix */
} defaults;

/* E5-V-style wording: LLaVA-1.5's Vicuna format for the Llama family,
 * ChatML for Qwen2, and for Qwen2-VL ChatML with the image between
 * <|vision_start|> and <|vision_end|> as its processor's chat template
 * puts it (docs/adapter-format.md, "Default prompts"). <|vision_end|>
 * opens the image instruction: the image is the prompt's only slot, so a
 * soft prompt replacing the instruction starts at <|vision_end|>'s
 * embedding. */
static defaults family_defaults(int family, int has_bos)
{
    if (family == DLV_PROMPT_FAMILY_QWEN2VL)
        return (defaults){"<|im_start|>user\n<|vision_start|>",
                          "<|vision_end|>\nSummarize above image in one word:",
                          "\nSummarize above sentence in one word:",
                          "<|im_end|>\n<|im_start|>assistant\n", 0, "<|im_start|>user\n"};
    if (family == DLV_PROMPT_FAMILY_QWEN2)
        return (defaults){"<|im_start|>user\n", "\nSummarize above image in one word:",
                          "\nSummarize above sentence in one word:",
                          "<|im_end|>\n<|im_start|>assistant\n", 0, NULL};
    return (defaults){"USER: ", "\nSummarize above image in one word:",
                      "\nSummarize above sentence in one word:", " ASSISTANT:", has_bos, NULL};
}

static void piece_free(dlv_prompt_piece *p)
{
    free(p->text);
    free(p->ids);
    memset(p, 0, sizeof *p);
}

void dlv_prompts_free(dlv_prompts *p)
{
    if (!p) return;
    dlv_prompt_side *sides[2] = {&p->image, &p->text};
    for (int i = 0; i < 2; i++) {
        piece_free(&sides[i]->prefix);
        piece_free(&sides[i]->instruction);
        piece_free(&sides[i]->suffix);
    }
}

static dlv_status set_text(dlv_prompt_piece *p, const char *text)
{
    size_t n = strlen(text);
    p->text = malloc(n + 1);
    if (!p->text) return dlv_error_nomem("prompt text", n + 1);
    memcpy(p->text, text, n + 1);
    return DLV_OK;
}

/* p->ids = tokenizer(text), no special tokens added. */
static dlv_status tokenize_piece(const dlv_model *m, const char *what, dlv_prompt_piece *p)
{
    const dlv_tokenizer *tok = dlv_model_get_tokenizer(m);
    if (!tok)
        return dlv_error(DLV_E_UNSUPPORTED,
                         "%s: prompt '%s' has no ids and the model has no tokenizer to make "
                         "them (give them in prompts.json)", dlv_model_dir(m), what);
    dlv_ids ids = {0};
    dlv_status st = dlv_tokenizer_encode(tok, p->text, strlen(p->text), 0, &ids);
    if (st) {
        dlv_ids_free(&ids);
        return dlv_error_prefix(st, "prompt '%s'", what);
    }
    /* The piece owns the array (NULL when empty). */
    p->n = ids.n;
    p->ids = ids.n ? ids.v : NULL;
    if (!ids.n) dlv_ids_free(&ids);
    return DLV_OK;
}

static dlv_status ids_append(dlv_ids *dst, const int32_t *v, size_t n)
{
    dlv_status st = DLV_OK;
    for (size_t i = 0; i < n && !st; i++) st = dlv_ids_push(dst, v[i]);
    return st;
}

static size_t common_prefix(const dlv_ids *a, const dlv_ids *b)
{
    size_t k = 0;
    while (k < a->n && k < b->n && a->v[k] == b->v[k]) k++;
    return k;
}

void dlv_text_ids_free(dlv_text_ids *t)
{
    if (!t) return;
    dlv_ids_free(&t->head);
    dlv_ids_free(&t->instr);
    dlv_ids_free(&t->tail);
}

/* The tokens of prefix + middle + instruction + suffix, tokenized as one
 * string, split into head (up to the instruction), instruction and tail.
 * Hugging Face's tokenizers give no character offsets through our
 * normalizers, so the boundaries come from two more tokenizations: the
 * tokens the whole string shares with the tokenization of the text before
 * the instruction are the head, those it shares with the text up to the
 * instruction's end are head + instruction. Where a token merges across a
 * boundary (Qwen2's ".\n" after a caption ending in a full stop) the two
 * disagree from that token on, and it goes to the later part. */
static dlv_status template_split(const dlv_tokenizer *tok, const char *prefix,
                                 const char *middle, size_t middle_len, const char *instr,
                                 const char *suffix, dlv_text_ids *out)
{
    memset(out, 0, sizeof *out);
    const size_t lp = strlen(prefix), li = strlen(instr), ls = strlen(suffix);
    if (middle_len > SIZE_MAX - lp - li - ls - 1)
        return dlv_error(DLV_E_INVALID_ARG, "prompt: the text is too long");
    const size_t n = lp + middle_len + li + ls;
    char *buf = malloc(n + 1);
    if (!buf) return dlv_error_nomem("prompt text", n + 1);
    memcpy(buf, prefix, lp);
    if (middle_len) memcpy(buf + lp, middle, middle_len);
    memcpy(buf + lp + middle_len, instr, li);
    memcpy(buf + lp + middle_len + li, suffix, ls);
    buf[n] = 0;
    dlv_ids all = {0}, head = {0}, upto = {0};
    dlv_status st = dlv_tokenizer_encode(tok, buf, n, 0, &all);
    if (!st) st = dlv_tokenizer_encode(tok, buf, lp + middle_len, 0, &head);
    if (!st && ls) st = dlv_tokenizer_encode(tok, buf, lp + middle_len + li, 0, &upto);
    free(buf);
    if (!st) {
        size_t nh = common_prefix(&all, &head);
        size_t nhi = ls ? common_prefix(&all, &upto) : all.n;
        if (nhi < nh) nhi = nh;
        st = ids_append(&out->head, all.v, nh);
        if (!st) st = ids_append(&out->instr, all.v + nh, nhi - nh);
        if (!st) st = ids_append(&out->tail, all.v + nhi, all.n - nhi);
    }
    dlv_ids_free(&all);
    dlv_ids_free(&head);
    dlv_ids_free(&upto);
    if (st) dlv_text_ids_free(out);
    return st;
}

static const char *or_empty(const char *s) { return s ? s : ""; }

/* Appends the ids of text (NULL: empty), no special tokens added. */
static dlv_status encode_text(const dlv_tokenizer *tok, const char *text, dlv_ids *out)
{
    return dlv_tokenizer_encode(tok, or_empty(text), strlen(or_empty(text)), 0, out);
}

dlv_status dlv_prompts_text_ids(const dlv_prompts *p, const dlv_tokenizer *tok,
                                const char *caption, size_t len, dlv_text_ids *out)
{
    const dlv_prompt_side *t = &p->text;
    if (p->whole)
        return template_split(tok, or_empty(t->prefix.text), caption, len,
                              or_empty(t->instruction.text), or_empty(t->suffix.text), out);
    memset(out, 0, sizeof *out);
    dlv_status st = ids_append(&out->head, t->prefix.ids, t->prefix.n);
    if (!st) st = dlv_tokenizer_encode(tok, caption, len, 0, &out->head);
    if (!st) st = ids_append(&out->instr, t->instruction.ids, t->instruction.n);
    if (!st) st = ids_append(&out->tail, t->suffix.ids, t->suffix.n);
    if (st) dlv_text_ids_free(out);
    return st;
}

/* Moves ids into a piece (which owns the array, NULL when empty). */
static void piece_take(dlv_prompt_piece *p, dlv_ids *ids)
{
    free(p->ids);
    p->n = ids->n;
    p->ids = ids->n ? ids->v : NULL;
    if (!ids->n) dlv_ids_free(ids);
    memset(ids, 0, sizeof *ids);
}

/* Whole mode: every piece's ids from the sides' templates (the texts must
 * be set). The image side is split at the image token, which the tokenizer
 * splits out as a special token; a tokenizer without it gets the prefix
 * tokenized on its own, which is what that split amounts to. The text
 * side's ids are those of a one-letter caption: the instruction's are the
 * soft prompt's first value; every caption gets its own (text_ids). */
static dlv_status whole_ids(const dlv_model *m, dlv_prompts *p)
{
    const dlv_tokenizer *tok = dlv_model_get_tokenizer(m);
    if (!tok)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: the model has no tokenizer to make the "
                         "prompts' ids with (give them in prompts.json)", dlv_model_dir(m));
    dlv_status st = dlv_prompts_tokenize_whole(p, tok,
                                               (int32_t)dlv_model_config(m)->image_token_index);
    return st ? dlv_error_prefix(st, "%s", dlv_model_dir(m)) : DLV_OK;
}

dlv_status dlv_prompts_tokenize_whole(dlv_prompts *p, const dlv_tokenizer *tok,
                                      int32_t image_id)
{
    const dlv_added_token *img = dlv_tokenizer_added(tok, image_id);
    dlv_prompt_side *s = &p->image;
    dlv_text_ids t = {0};
    dlv_status st;
    if (img) {
        st = template_split(tok, or_empty(s->prefix.text), img->content, img->len,
                            or_empty(s->instruction.text), or_empty(s->suffix.text), &t);
        if (!st && (!t.head.n || t.head.v[t.head.n - 1] != image_id))
            st = dlv_error(DLV_E_FORMAT, "the image prompt's template does not tokenize "
                           "to its prefix, then the image token %d", (int)image_id);
        if (!st) t.head.n--;
    } else {
        /* Instruction + suffix as one string (its head is empty), then the
         * prefix on its own. */
        st = template_split(tok, "", "", 0, or_empty(s->instruction.text),
                            or_empty(s->suffix.text), &t);
        if (!st) st = encode_text(tok, s->prefix.text, &t.head);
    }
    if (!st) {
        piece_take(&s->prefix, &t.head);
        piece_take(&s->instruction, &t.instr);
        piece_take(&s->suffix, &t.tail);
    }
    dlv_text_ids_free(&t);
    if (st) return st;
    s = &p->text;
    st = template_split(tok, or_empty(s->prefix.text), "x", 1, or_empty(s->instruction.text),
                        or_empty(s->suffix.text), &t);
    dlv_ids prefix = {0};
    if (!st) st = encode_text(tok, s->prefix.text, &prefix);
    if (!st) {
        piece_take(&s->prefix, &prefix);
        piece_take(&s->instruction, &t.instr);
        piece_take(&s->suffix, &t.tail);
    }
    dlv_ids_free(&prefix);
    dlv_text_ids_free(&t);
    return st;
}

static dlv_status check_ids(const dlv_model *m, const dlv_prompts *p, const char *label)
{
    const dlv_llava_config *cfg = dlv_model_config(m);
    const dlv_prompt_side *sides[2] = {&p->image, &p->text};
    static const char *side_names[2] = {"image", "text"};
    for (int s = 0; s < 2; s++) {
        const dlv_prompt_piece *pieces[3] = {&sides[s]->prefix, &sides[s]->instruction,
                                             &sides[s]->suffix};
        static const char *piece_names[3] = {"prefix_ids", "instruction_ids", "suffix_ids"};
        for (int k = 0; k < 3; k++)
            for (size_t i = 0; i < pieces[k]->n; i++) {
                int32_t id = pieces[k]->ids[i];
                if (id < 0 || id >= cfg->text.vocab_size)
                    return dlv_error(DLV_E_FORMAT, "%s: %s.%s[%zu] = %d is outside this "
                                     "model's vocabulary of %lld tokens (prompts made for "
                                     "another model?)", label, side_names[s],
                                     piece_names[k], i, (int)id,
                                     (long long)cfg->text.vocab_size);
                if (id == cfg->image_token_index)
                    return dlv_error(DLV_E_FORMAT, "%s: %s.%s[%zu] is the image token %d, "
                                     "which only the image features may stand for", label,
                                     side_names[s], piece_names[k], i, (int)id);
            }
    }
    if (p->add_bos && (p->bos_id < 0 || p->bos_id >= cfg->text.vocab_size))
        return dlv_error(DLV_E_FORMAT, "%s: add_bos is true but the model's bos_token_id (%d) "
                         "is not a token", label, (int)p->bos_id);
    return DLV_OK;
}

int dlv_prompts_family(const dlv_llava_config *cfg)
{
    return cfg->qwen2vl                        ? DLV_PROMPT_FAMILY_QWEN2VL
           : cfg->text.kind == DLV_TEXT_QWEN2 ? DLV_PROMPT_FAMILY_QWEN2
                                               : DLV_PROMPT_FAMILY_LLAMA;
}

dlv_status dlv_prompts_default_texts(int family, int has_bos, int32_t bos_id, dlv_prompts *out)
{
    memset(out, 0, sizeof *out);
    defaults d = family_defaults(family, has_bos);
    out->whole = 1;
    out->add_bos = d.add_bos;
    out->bos_id = bos_id;
    const char *texts[2][3] = {{d.prefix, d.image_instruction, d.suffix},
                               {d.text_prefix ? d.text_prefix : d.prefix, d.text_instruction,
                                d.suffix}};
    dlv_prompt_side *sides[2] = {&out->image, &out->text};
    dlv_status st = DLV_OK;
    for (int s = 0; s < 2 && !st; s++) {
        dlv_prompt_piece *pieces[3] = {&sides[s]->prefix, &sides[s]->instruction,
                                       &sides[s]->suffix};
        for (int k = 0; k < 3 && !st; k++) st = set_text(pieces[k], texts[s][k]);
    }
    if (st) dlv_prompts_free(out);
    return st;
}

dlv_status dlv_prompts_default(const dlv_model *m, dlv_prompts *out)
{
    const dlv_llava_config *cfg = dlv_model_config(m);
    dlv_status st = dlv_prompts_default_texts(dlv_prompts_family(cfg),
                                              cfg->text.bos_token_id >= 0,
                                              (int32_t)cfg->text.bos_token_id, out);
    if (st) return dlv_error_prefix(st, "default prompts");
    st = whole_ids(m, out);
    if (!st) st = check_ids(m, out, dlv_model_dir(m));
    if (st) {
        dlv_prompts_free(out);
        return dlv_error_prefix(st, "default prompts");
    }
    out->vocab_size = cfg->text.vocab_size;
    return DLV_OK;
}

/* One piece from side_obj: "<name>" (string) and "<name>_ids" (int array). */
static dlv_status parse_piece(const dlv_model *m, const json_t *side_obj, const char *side,
                              const char *name, const char *label, int whole,
                              dlv_prompt_piece *p)
{
    char key[32];
    snprintf(key, sizeof key, "%s_ids", name);
    const json_t *text = json_object_get(side_obj, name);
    const json_t *ids = json_object_get(side_obj, key);
    if (text && !json_is_null(text)) {
        if (!json_is_string(text))
            return dlv_error(DLV_E_FORMAT, "%s: field '%s.%s': expected a string", label, side,
                             name);
        dlv_status st = set_text(p, json_string_value(text));
        if (st) return st;
    }
    if (ids && !json_is_null(ids)) {
        if (!json_is_array(ids))
            return dlv_error(DLV_E_FORMAT, "%s: field '%s.%s': expected an array of token ids",
                             label, side, key);
        size_t n = json_array_size(ids);
        if (n > 0) {
            p->ids = malloc(n * sizeof *p->ids);
            if (!p->ids) return dlv_error_nomem("prompt ids", n * sizeof *p->ids);
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *v = json_array_get(ids, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > INT32_MAX)
                return dlv_error(DLV_E_FORMAT, "%s: field '%s.%s[%zu]': expected a token id "
                                 "(an integer >= 0)", label, side, key, i);
            p->ids[i] = (int32_t)json_integer_value(v);
        }
        p->n = n;
        return DLV_OK;
    }
    if (whole) {
        /* Whole mode needs every text; an absent one is empty. */
        return p->text ? DLV_OK : set_text(p, "");
    }
    if (p->text) {
        char what[64];
        snprintf(what, sizeof what, "%s.%s", side, name);
        return tokenize_piece(m, what, p);
    }
    return DLV_OK; /* neither: an empty piece */
}

static dlv_status parse_side(const dlv_model *m, const json_t *root, const char *side,
                             const char *label, int whole, dlv_prompt_side *out)
{
    json_t *obj = json_object_get(root, side);
    if (!obj || json_is_null(obj))
        return dlv_error(DLV_E_FORMAT, "%s: field '%s' is missing (an object with prefix, "
                         "instruction, suffix and their _ids)", label, side);
    if (!json_is_object(obj))
        return dlv_error(DLV_E_FORMAT, "%s: field '%s': expected an object", label, side);
    static const char *known[] = {"prefix", "instruction", "suffix", "prefix_ids",
                                  "instruction_ids", "suffix_ids"};
    const char *key;
    const json_t *val;
    json_object_foreach(obj, key, val) {
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++) ok |= !strcmp(key, known[i]);
        if (!ok)
            return dlv_error(DLV_E_FORMAT, "%s: field '%s.%s' is not a prompts.json field", label,
                             side, key);
    }
    dlv_status st;
    if ((st = parse_piece(m, obj, side, "prefix", label, whole, &out->prefix)) ||
        (st = parse_piece(m, obj, side, "instruction", label, whole, &out->instruction)) ||
        (st = parse_piece(m, obj, side, "suffix", label, whole, &out->suffix)))
        return st;
    return DLV_OK;
}

/* Whole mode: the ids a file gives are what its tokenizer made of the
 * texts; different ones mean another tokenizer (or an edited file). */
static dlv_status check_given_ids(const dlv_prompts *given, const dlv_prompts *made,
                                  const char *label)
{
    const dlv_prompt_side *gs[2] = {&given->image, &given->text};
    const dlv_prompt_side *ms[2] = {&made->image, &made->text};
    static const char *side_names[2] = {"image", "text"};
    static const char *piece_names[3] = {"prefix_ids", "instruction_ids", "suffix_ids"};
    for (int s = 0; s < 2; s++) {
        const dlv_prompt_piece *g[3] = {&gs[s]->prefix, &gs[s]->instruction, &gs[s]->suffix};
        const dlv_prompt_piece *k[3] = {&ms[s]->prefix, &ms[s]->instruction, &ms[s]->suffix};
        for (int i = 0; i < 3; i++) {
            if (!g[i]->n) continue;
            if (g[i]->n != k[i]->n || memcmp(g[i]->ids, k[i]->ids, g[i]->n * sizeof *g[i]->ids))
                return dlv_error(DLV_E_FORMAT, "%s: %s.%s are not what this model's tokenizer "
                                 "makes of the %s template (%zu ids given, %zu made): the "
                                 "prompts were written for another tokenizer", label,
                                 side_names[s], piece_names[i], side_names[s], g[i]->n, k[i]->n);
        }
    }
    return DLV_OK;
}

dlv_status dlv_prompts_load(const dlv_model *m, const char *path, dlv_prompts *out)
{
    memset(out, 0, sizeof *out);
    json_t *root = NULL;
    dlv_status st = dlv_json_load_object(path, (size_t)16 << 20, &root);
    if (st) return st;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "add_bos") && strcmp(key, "image") && strcmp(key, "text") &&
            strcmp(key, "tokenize") && strcmp(key, "vocab_size")) {
            st = dlv_error(DLV_E_FORMAT, "%s: field '%s' is not a prompts.json field (add_bos, "
                           "tokenize, vocab_size, image, text)", path, key);
            break;
        }
    }
    const dlv_llava_config *cfg = dlv_model_config(m);
    defaults d = family_defaults(dlv_prompts_family(cfg), cfg->text.bos_token_id >= 0);
    out->bos_id = (int32_t)cfg->text.bos_token_id;
    /* Without "tokenize" a file is read as it was before whole mode:
     * pieces, so adapters trained then keep their sequences. */
    const json_t *mode = json_object_get(root, "tokenize");
    if (!st && mode && !json_is_null(mode)) {
        const char *v = json_is_string(mode) ? json_string_value(mode) : NULL;
        if (v && !strcmp(v, "whole")) out->whole = 1;
        else if (!v || strcmp(v, "pieces"))
            st = dlv_error(DLV_E_FORMAT, "%s: field 'tokenize': expected \"whole\" or "
                           "\"pieces\"", path);
    }
    /* Written since 0.1.0: the ids' vocabulary, so that an adapter of
     * another model is named as such rather than by an id out of range. */
    const json_t *vs = json_object_get(root, "vocab_size");
    if (!st && vs && !json_is_null(vs)) {
        if (!json_is_integer(vs) || json_integer_value(vs) < 1)
            st = dlv_error(DLV_E_FORMAT, "%s: field 'vocab_size': expected an integer >= 1",
                           path);
        else if (json_integer_value(vs) != cfg->text.vocab_size)
            st = dlv_error(DLV_E_FORMAT, "%s: made for a vocabulary of %lld tokens, this model "
                           "has %lld (an adapter of another model?)", path,
                           (long long)json_integer_value(vs), (long long)cfg->text.vocab_size);
    }
    out->vocab_size = cfg->text.vocab_size;
    if (!st) st = dlv_json_bool(root, "add_bos", d.add_bos, path, &out->add_bos);
    if (!st) st = parse_side(m, root, "image", path, out->whole, &out->image);
    if (!st) st = parse_side(m, root, "text", path, out->whole, &out->text);
    if (!st && out->whole) {
        dlv_prompts given;
        st = dlv_prompts_copy(out, &given);
        if (!st) {
            st = whole_ids(m, out);
            if (!st) st = check_given_ids(&given, out, path);
            dlv_prompts_free(&given);
        }
    }
    if (!st) st = check_ids(m, out, path);
    json_decref(root);
    if (st) dlv_prompts_free(out);
    return st;
}

static dlv_status put_piece(json_t *obj, const char *name, const dlv_prompt_piece *p)
{
    char key[32];
    snprintf(key, sizeof key, "%s_ids", name);
    if (p->text && json_object_set_new(obj, name, json_string(p->text)))
        return dlv_error(DLV_E_NOMEM, "prompts.json: cannot build '%s'", name);
    json_t *ids = json_array();
    if (!ids) return dlv_error(DLV_E_NOMEM, "prompts.json: cannot build '%s'", key);
    for (size_t i = 0; i < p->n; i++)
        if (json_array_append_new(ids, json_integer(p->ids[i]))) {
            json_decref(ids);
            return dlv_error(DLV_E_NOMEM, "prompts.json: cannot build '%s'", key);
        }
    if (json_object_set_new(obj, key, ids))
        return dlv_error(DLV_E_NOMEM, "prompts.json: cannot build '%s'", key);
    return DLV_OK;
}

dlv_status dlv_prompts_save(const dlv_prompts *p, const char *path)
{
    json_t *root = json_object();
    if (!root) return dlv_error(DLV_E_NOMEM, "%s: cannot build the JSON", path);
    dlv_status st = DLV_OK;
    if ((p->vocab_size > 0 &&
         json_object_set_new(root, "vocab_size", json_integer((json_int_t)p->vocab_size))) ||
        json_object_set_new(root, "add_bos", json_boolean(p->add_bos)) ||
        (p->whole && json_object_set_new(root, "tokenize", json_string("whole"))))
        st = dlv_error(DLV_E_NOMEM, "%s: cannot build the JSON", path);
    const dlv_prompt_side *sides[2] = {&p->image, &p->text};
    static const char *names[2] = {"image", "text"};
    for (int s = 0; s < 2 && !st; s++) {
        json_t *obj = json_object();
        if (!obj || json_object_set_new(root, names[s], obj)) {
            st = dlv_error(DLV_E_NOMEM, "%s: cannot build the JSON", path);
            break;
        }
        if ((st = put_piece(obj, "prefix", &sides[s]->prefix)) ||
            (st = put_piece(obj, "instruction", &sides[s]->instruction)) ||
            (st = put_piece(obj, "suffix", &sides[s]->suffix)))
            break;
    }
    if (!st) st = dlv_json_save(root, path);
    json_decref(root);
    return st;
}

static dlv_status copy_piece(const dlv_prompt_piece *src, dlv_prompt_piece *dst)
{
    memset(dst, 0, sizeof *dst);
    if (src->text) {
        dlv_status st = set_text(dst, src->text);
        if (st) return st;
    }
    if (src->n) {
        dst->ids = malloc(src->n * sizeof *dst->ids);
        if (!dst->ids) return dlv_error_nomem("prompt ids", src->n * sizeof *dst->ids);
        memcpy(dst->ids, src->ids, src->n * sizeof *dst->ids);
        dst->n = src->n;
    }
    return DLV_OK;
}

dlv_status dlv_prompts_copy(const dlv_prompts *src, dlv_prompts *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->whole = src->whole;
    dst->vocab_size = src->vocab_size;
    dst->add_bos = src->add_bos;
    dst->bos_id = src->bos_id;
    const dlv_prompt_side *ss[2] = {&src->image, &src->text};
    dlv_prompt_side *ds[2] = {&dst->image, &dst->text};
    dlv_status st = DLV_OK;
    for (int s = 0; s < 2 && !st; s++) {
        if ((st = copy_piece(&ss[s]->prefix, &ds[s]->prefix)) ||
            (st = copy_piece(&ss[s]->instruction, &ds[s]->instruction)) ||
            (st = copy_piece(&ss[s]->suffix, &ds[s]->suffix)))
            break;
    }
    if (st) dlv_prompts_free(dst);
    return st;
}
