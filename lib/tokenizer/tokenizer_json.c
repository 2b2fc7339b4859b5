/* Loading a Hugging Face tokenizer.json: the BPE model (vocab, merges in
 * either form), added tokens, and the normalizer / pre-tokenizer /
 * post-processor / decoder objects this library implements. Anything else
 * is refused with DLV_E_UNSUPPORTED naming the component. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_fast.h"

#define GPT2_PATTERN                                                                         \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* obj[key] as a string: absent or null gives def; another type is an error. */
static dlv_status get_str(const json_t *obj, const char *key, const char *def, const char *label,
                          const char *what, const char **out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DLV_OK;
    }
    if (!json_is_string(v))
        return dlv_error(DLV_E_FORMAT, "%s: %s: field '%s': expected a string", label, what, key);
    *out = json_string_value(v);
    return DLV_OK;
}

static dlv_status get_bool(const json_t *obj, const char *key, int def, const char *label,
                           const char *what, int *out)
{
    dlv_status st = dlv_json_bool(obj, key, def, label, out);
    return st == DLV_OK ? st : dlv_error_prefix(st, "%s", what);
}

static const char *type_of(const json_t *obj)
{
    const json_t *t = json_object_get(obj, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

/* ---- model -------------------------------------------------------------- */

static dlv_status load_vocab(dlv_bpe *bpe, json_t *vocab, const char *label)
{
    if (!json_is_object(vocab))
        return dlv_error(DLV_E_FORMAT, "%s: model: field 'vocab': expected an object", label);
    int64_t max_id = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= DLV_MAX_TOKEN_ID)
            return dlv_error(DLV_E_FORMAT, "%s: model: vocab token '%s': expected an id in "
                             "[0, 2^24)", label, key);
        if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
    }
    bpe->n_tokens = (size_t)(max_id + 1);
    bpe->tokens = calloc(bpe->n_tokens + 1, sizeof *bpe->tokens);
    bpe->lens = calloc(bpe->n_tokens + 1, sizeof *bpe->lens);
    if (!bpe->tokens || !bpe->lens) return dlv_error_nomem("the vocabulary", bpe->n_tokens * 12);
    dlv_status st = dlv_strmap_init(&bpe->vocab, json_object_size(vocab));
    json_object_foreach(vocab, key, v) {
        if (st != DLV_OK) break;
        size_t id = (size_t)json_integer_value(v), len = strlen(key);
        if (bpe->tokens[id])
            return dlv_error(DLV_E_FORMAT, "%s: model: vocab: id %zu is used by both '%s' and "
                             "'%s'", label, id, bpe->tokens[id], key);
        bpe->tokens[id] = malloc(len + 1);
        if (!bpe->tokens[id]) return dlv_error_nomem("a token", len + 1);
        memcpy(bpe->tokens[id], key, len + 1);
        bpe->lens[id] = (uint32_t)len;
        st = dlv_strmap_put(&bpe->vocab, bpe->tokens[id], len, (int32_t)id);
    }
    return st;
}

static dlv_status token_id(const dlv_bpe *bpe, const char *s, size_t n, const char *label,
                           size_t rank, int32_t *out)
{
    *out = dlv_strmap_get(&bpe->vocab, s, n);
    if (*out < 0)
        return dlv_error(DLV_E_FORMAT, "%s: model: merge %zu: token '%.*s' is not in the vocab",
                         label, rank, (int)n, s);
    return DLV_OK;
}

static dlv_status add_merge(dlv_bpe *bpe, const char *a, size_t na, const char *b, size_t nb,
                            size_t rank, const char *label, dlv_tbuf *scratch)
{
    int32_t ia, ib, im;
    dlv_status st = token_id(bpe, a, na, label, rank, &ia);
    if (st == DLV_OK) st = token_id(bpe, b, nb, label, rank, &ib);
    if (st != DLV_OK) return st;
    /* With a continuing-subword prefix the merged token drops b's prefix. */
    size_t pl = bpe->prefix ? strlen(bpe->prefix) : 0;
    if (pl && nb >= pl && memcmp(b, bpe->prefix, pl) == 0) {
        b += pl;
        nb -= pl;
    }
    scratch->len = 0;
    st = dlv_tbuf_append(scratch, a, na);
    if (st == DLV_OK) st = dlv_tbuf_append(scratch, b, nb);
    if (st == DLV_OK) st = token_id(bpe, scratch->p, scratch->len, label, rank, &im);
    if (st == DLV_OK) st = dlv_pairmap_put(&bpe->merges, ia, ib, (int32_t)rank, im);
    return st;
}

typedef struct merge_ctx {
    dlv_bpe *bpe;
    const char *label;
    dlv_tbuf scratch;
} merge_ctx;

static dlv_status merge_cb(void *ctx, const char *a, size_t na, const char *b, size_t nb,
                           size_t rank)
{
    merge_ctx *m = ctx;
    return add_merge(m->bpe, a, na, b, nb, rank, m->label, &m->scratch);
}

static dlv_status load_merges(dlv_bpe *bpe, const json_t *merges, const char *label)
{
    if (!merges || json_is_null(merges)) return dlv_pairmap_init(&bpe->merges, 0);
    if (!json_is_array(merges))
        return dlv_error(DLV_E_FORMAT, "%s: model: field 'merges': expected an array", label);
    dlv_status st = dlv_pairmap_init(&bpe->merges, json_array_size(merges));
    dlv_tbuf scratch = {0};
    for (size_t i = 0; st == DLV_OK && i < json_array_size(merges); i++) {
        const json_t *m = json_array_get(merges, i);
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                st = dlv_error(DLV_E_FORMAT, "%s: model: merge %zu ('%s'): expected two tokens "
                               "separated by one space", label, i, s);
            else
                st = add_merge(bpe, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), i, label,
                               &scratch);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            const json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
            st = add_merge(bpe, json_string_value(a), json_string_length(a),
                           json_string_value(b), json_string_length(b), i, label, &scratch);
        } else
            st = dlv_error(DLV_E_FORMAT, "%s: model: merge %zu: expected \"a b\" or [\"a\", \"b\"]",
                           label, i);
    }
    dlv_tbuf_free(&scratch);
    return st;
}

/* Where the fast readers found model.vocab / model.merges in the text. */
typedef struct fast_spans {
    const char *text;
    dlv_span vocab, merges;
} fast_spans;

static dlv_status load_model(dlv_tokenizer *tok, const json_t *model, const char *label,
                             const fast_spans *fast)
{
    if (!json_is_object(model))
        return dlv_error(DLV_E_FORMAT, "%s: field 'model': missing or not an object", label);
    const char *type = type_of(model);
    const json_t *tv = json_object_get(model, "type");
    if (tv && !json_is_null(tv) && !type)
        return dlv_error(DLV_E_FORMAT, "%s: model: field 'type': expected a string", label);
    if (!type && !json_object_get(model, "merges"))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: model: no 'type' and no 'merges'; only BPE "
                         "models are supported", label);
    if (type && strcmp(type, "BPE") != 0)
        return dlv_error(DLV_E_UNSUPPORTED, "%s: model type '%s' is not supported (only BPE)",
                         label, type);
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && !(json_is_number(dropout) &&
                                               json_number_value(dropout) == 0.0))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: model: BPE dropout is not supported", label);
    dlv_bpe *bpe = &tok->bpe;
    const char *unk = NULL, *prefix = NULL, *suffix = NULL;
    const char *what = "model";
    dlv_status st = get_str(model, "unk_token", NULL, label, what, &unk);
    if (st == DLV_OK) st = get_str(model, "continuing_subword_prefix", NULL, label, what, &prefix);
    if (st == DLV_OK) st = get_str(model, "end_of_word_suffix", NULL, label, what, &suffix);
    if (st == DLV_OK) st = get_bool(model, "fuse_unk", 0, label, what, &bpe->fuse_unk);
    if (st == DLV_OK) st = get_bool(model, "byte_fallback", 0, label, what, &bpe->byte_fallback);
    if (st == DLV_OK) st = get_bool(model, "ignore_merges", 0, label, what, &bpe->ignore_merges);
    if (st != DLV_OK) return st;
    if ((prefix && *prefix && !(bpe->prefix = dup_str(prefix))) ||
        (suffix && *suffix && !(bpe->suffix = dup_str(suffix))))
        return dlv_error_nomem("a token affix", 64);
    if (fast->vocab.found) st = dlv_tokjson_vocab(bpe, fast->text, fast->vocab, label);
    else st = load_vocab(bpe, json_object_get(model, "vocab"), label);
    if (st == DLV_OK && fast->merges.found) {
        merge_ctx ctx = {bpe, label, {0}};
        /* A generous first size; the table grows if needed. */
        st = dlv_pairmap_init(&bpe->merges, fast->merges.len / 8);
        if (st == DLV_OK) st = dlv_tokjson_merges(fast->text, fast->merges, label, merge_cb, &ctx);
        dlv_tbuf_free(&ctx.scratch);
    } else if (st == DLV_OK)
        st = load_merges(bpe, json_object_get(model, "merges"), label);
    if (st == DLV_OK && unk) bpe->unk_id = dlv_strmap_get(&bpe->vocab, unk, strlen(unk));
    return st;
}

/* ---- added tokens ------------------------------------------------------- */

static dlv_status load_added(dlv_tokenizer *tok, const json_t *arr, const char *label)
{
    if (!arr || json_is_null(arr)) return DLV_OK;
    if (!json_is_array(arr))
        return dlv_error(DLV_E_FORMAT, "%s: field 'added_tokens': expected an array", label);
    size_t n = json_array_size(arr);
    tok->added = calloc(n + 1, sizeof *tok->added);
    if (!tok->added) return dlv_error_nomem("the added tokens", n * sizeof *tok->added);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(arr, i);
        const json_t *content = json_object_get(t, "content");
        int64_t id;
        if (!json_is_object(t) || !json_is_string(content))
            return dlv_error(DLV_E_FORMAT, "%s: added_tokens[%zu]: expected an object with a "
                             "string 'content'", label, i);
        char what[48];
        snprintf(what, sizeof what, "added_tokens[%zu]", i);
        dlv_status st = dlv_json_int(t, "id", -1, label, &id);
        if (st == DLV_OK && (id < 0 || id >= DLV_MAX_TOKEN_ID))
            st = dlv_error(DLV_E_FORMAT, "%s: %s: 'id' missing or out of range", label, what);
        int special, lstrip, rstrip, single, normalized;
        if (st == DLV_OK) st = get_bool(t, "special", 0, label, what, &special);
        if (st == DLV_OK) st = get_bool(t, "lstrip", 0, label, what, &lstrip);
        if (st == DLV_OK) st = get_bool(t, "rstrip", 0, label, what, &rstrip);
        if (st == DLV_OK) st = get_bool(t, "single_word", 0, label, what, &single);
        if (st == DLV_OK) st = get_bool(t, "normalized", !special, label, what, &normalized);
        if (st != DLV_OK) return st;
        dlv_added_token *a = &tok->added[tok->n_added];
        a->len = json_string_length(content);
        a->content = malloc(a->len + 1);
        if (!a->content) return dlv_error_nomem("an added token", a->len + 1);
        memcpy(a->content, json_string_value(content), a->len + 1);
        a->id = (int32_t)id;
        a->special = (uint8_t)special;
        a->lstrip = (uint8_t)lstrip;
        a->rstrip = (uint8_t)rstrip;
        a->single_word = (uint8_t)single;
        a->normalized = (uint8_t)normalized;
        tok->n_added++;
    }
    return DLV_OK;
}

/* ---- normalizers -------------------------------------------------------- */

static dlv_status push_norm(dlv_tokenizer *tok, dlv_normalizer nm)
{
    dlv_normalizer *v = realloc(tok->norms, (tok->n_norms + 1) * sizeof *v);
    if (!v) {
        free(nm.a);
        free(nm.b);
        if (nm.regex) dlv_regex_free(nm.regex);
        return dlv_error_nomem("a normalizer", sizeof *v);
    }
    tok->norms = v;
    v[tok->n_norms++] = nm;
    return DLV_OK;
}

/* A {"String": s} pattern (decoder Replace); Regex patterns are refused. */
static dlv_status string_pattern(const json_t *obj, const char *label, const char *what,
                                 const char **out)
{
    const json_t *p = json_object_get(obj, "pattern");
    const json_t *s = json_object_get(p, "String");
    if (json_is_string(s)) {
        *out = json_string_value(s);
        return DLV_OK;
    }
    if (json_object_get(p, "Regex"))
        return dlv_error(DLV_E_UNSUPPORTED, "%s: %s: Regex patterns are not supported here",
                         label, what);
    return dlv_error(DLV_E_FORMAT, "%s: %s: field 'pattern': expected {\"String\": ...}", label,
                     what);
}

static dlv_status load_normalizer(dlv_tokenizer *tok, const json_t *obj, const char *label,
                                  int depth)
{
    if (!obj || json_is_null(obj)) return DLV_OK;
    const char *type = type_of(obj);
    if (!type || depth > 8)
        return dlv_error(DLV_E_FORMAT, "%s: normalizer: missing 'type' or nested too deep", label);
    dlv_normalizer nm = {0};
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(obj, "normalizers");
        if (!json_is_array(list))
            return dlv_error(DLV_E_FORMAT, "%s: normalizer Sequence: 'normalizers' must be an "
                             "array", label);
        for (size_t i = 0; i < json_array_size(list); i++) {
            dlv_status st = load_normalizer(tok, json_array_get(list, i), label, depth + 1);
            if (st != DLV_OK) return st;
        }
        return DLV_OK;
    }
    if (strcmp(type, "NFC") == 0) nm.kind = DLV_NORM_NFC;
    else if (strcmp(type, "NFD") == 0) nm.kind = DLV_NORM_NFD;
    else if (strcmp(type, "NFKC") == 0) nm.kind = DLV_NORM_NFKC;
    else if (strcmp(type, "NFKD") == 0) nm.kind = DLV_NORM_NFKD;
    else if (strcmp(type, "Lowercase") == 0) nm.kind = DLV_NORM_LOWERCASE;
    else if (strcmp(type, "Strip") == 0) {
        nm.kind = DLV_NORM_STRIP;
        dlv_status st = get_bool(obj, "strip_left", 1, label, "normalizer Strip", &nm.flag1);
        if (st == DLV_OK) st = get_bool(obj, "strip_right", 1, label, "normalizer Strip", &nm.flag2);
        if (st != DLV_OK) return st;
    } else if (strcmp(type, "Prepend") == 0) {
        const char *p = NULL;
        dlv_status st = get_str(obj, "prepend", NULL, label, "normalizer Prepend", &p);
        if (st == DLV_OK && !p)
            st = dlv_error(DLV_E_FORMAT, "%s: normalizer Prepend: missing 'prepend'", label);
        if (st != DLV_OK) return st;
        nm.kind = DLV_NORM_PREPEND;
        if (!(nm.a = dup_str(p))) return dlv_error_nomem("a normalizer", strlen(p));
    } else if (strcmp(type, "Replace") == 0) {
        /* {"String": s} is replaced literally, {"Regex": r} on every
         * non-empty match of r (HF compiles both into one regex). */
        const char *what = "normalizer Replace", *to = NULL;
        const json_t *p = json_object_get(obj, "pattern");
        const json_t *str = json_object_get(p, "String"), *re = json_object_get(p, "Regex");
        dlv_status st = get_str(obj, "content", "", label, what, &to);
        if (st != DLV_OK) return st;
        if (!json_is_string(str) && !json_is_string(re))
            return dlv_error(DLV_E_FORMAT, "%s: %s: field 'pattern': expected {\"String\": ...} "
                             "or {\"Regex\": ...}", label, what);
        nm.kind = DLV_NORM_REPLACE;
        if (!json_is_string(str)) {
            st = dlv_regex_compile(json_string_value(re), json_string_length(re), 0, label,
                                   &nm.regex);
            if (st != DLV_OK) return st;
        }
        const char *from = json_is_string(str) ? json_string_value(str) : "";
        nm.a = dup_str(from);
        nm.b = dup_str(to);
        if (!nm.a || !nm.b) {
            free(nm.a);
            free(nm.b);
            if (nm.regex) dlv_regex_free(nm.regex);
            return dlv_error_nomem("a normalizer", strlen(from) + strlen(to));
        }
    } else
        return dlv_error(DLV_E_UNSUPPORTED, "%s: normalizer type '%s' is not supported", label,
                         type);
    return push_norm(tok, nm);
}

/* ---- pre-tokenizers ----------------------------------------------------- */

static dlv_status push_pretok(dlv_tokenizer *tok, dlv_pretokenizer pt)
{
    dlv_pretokenizer *v = realloc(tok->pretoks, (tok->n_pretoks + 1) * sizeof *v);
    if (!v) {
        if (pt.regex) dlv_regex_free(pt.regex);
        free(pt.a);
        return dlv_error_nomem("a pre-tokenizer", sizeof *v);
    }
    tok->pretoks = v;
    v[tok->n_pretoks++] = pt;
    return DLV_OK;
}

static dlv_status prepend_scheme(const json_t *obj, const char *label, const char *what,
                                 dlv_prepend_scheme *out)
{
    const char *s = NULL;
    int add_prefix = 1;
    dlv_status st = get_str(obj, "prepend_scheme", NULL, label, what, &s);
    if (st == DLV_OK) st = get_bool(obj, "add_prefix_space", 1, label, what, &add_prefix);
    if (st != DLV_OK) return st;
    if (!s) *out = add_prefix ? DLV_PREPEND_ALWAYS : DLV_PREPEND_NEVER;
    else if (strcmp(s, "always") == 0) *out = DLV_PREPEND_ALWAYS;
    else if (strcmp(s, "first") == 0) *out = DLV_PREPEND_FIRST;
    else if (strcmp(s, "never") == 0) *out = DLV_PREPEND_NEVER;
    else
        return dlv_error(DLV_E_FORMAT, "%s: %s: unknown prepend_scheme '%s'", label, what, s);
    return DLV_OK;
}

static dlv_status load_split(const json_t *obj, const char *label, dlv_pretokenizer *pt)
{
    const char *what = "pre_tokenizer Split";
    const json_t *p = json_object_get(obj, "pattern");
    const json_t *re = json_object_get(p, "Regex"), *str = json_object_get(p, "String");
    const char *beh = NULL;
    int invert = 0;
    dlv_status st = get_str(obj, "behavior", "Isolated", label, what, &beh);
    if (st == DLV_OK) st = get_bool(obj, "invert", 0, label, what, &invert);
    if (st != DLV_OK) return st;
    pt->invert = invert;
    if (strcmp(beh, "Isolated") == 0) pt->behavior = DLV_SPLIT_ISOLATED;
    else if (strcmp(beh, "Removed") == 0) pt->behavior = DLV_SPLIT_REMOVED;
    else if (strcmp(beh, "MergedWithPrevious") == 0) pt->behavior = DLV_SPLIT_MERGED_PREV;
    else if (strcmp(beh, "MergedWithNext") == 0) pt->behavior = DLV_SPLIT_MERGED_NEXT;
    else if (strcmp(beh, "Contiguous") == 0) pt->behavior = DLV_SPLIT_CONTIGUOUS;
    else
        return dlv_error(DLV_E_UNSUPPORTED, "%s: %s: behavior '%s' is not supported", label, what,
                         beh);
    pt->kind = DLV_PRETOK_SPLIT;
    if (json_is_string(re))
        return dlv_regex_compile(json_string_value(re), json_string_length(re), 0, label,
                                 &pt->regex);
    if (json_is_string(str))
        return dlv_regex_compile(json_string_value(str), json_string_length(str), 1, label,
                                 &pt->regex);
    return dlv_error(DLV_E_FORMAT, "%s: %s: field 'pattern': expected {\"Regex\": ...} or "
                     "{\"String\": ...}", label, what);
}

static dlv_status load_pretok(dlv_tokenizer *tok, const json_t *obj, const char *label, int depth)
{
    if (!obj || json_is_null(obj)) return DLV_OK;
    const char *type = type_of(obj);
    if (!type || depth > 8)
        return dlv_error(DLV_E_FORMAT, "%s: pre_tokenizer: missing 'type' or nested too deep",
                         label);
    dlv_pretokenizer pt = {0};
    dlv_status st = DLV_OK;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(obj, "pretokenizers");
        if (!json_is_array(list))
            return dlv_error(DLV_E_FORMAT, "%s: pre_tokenizer Sequence: 'pretokenizers' must be "
                             "an array", label);
        for (size_t i = 0; st == DLV_OK && i < json_array_size(list); i++)
            st = load_pretok(tok, json_array_get(list, i), label, depth + 1);
        return st;
    }
    if (strcmp(type, "Split") == 0) {
        st = load_split(obj, label, &pt);
    } else if (strcmp(type, "ByteLevel") == 0) {
        int use_regex;
        pt.kind = DLV_PRETOK_BYTE_LEVEL;
        st = get_bool(obj, "add_prefix_space", 1, label, "pre_tokenizer ByteLevel", &pt.flag1);
        if (st == DLV_OK)
            st = get_bool(obj, "use_regex", 1, label, "pre_tokenizer ByteLevel", &use_regex);
        if (st == DLV_OK && use_regex)
            st = dlv_regex_compile(GPT2_PATTERN, strlen(GPT2_PATTERN), 0, label, &pt.regex);
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *what = "pre_tokenizer Metaspace", *rep = NULL;
        pt.kind = DLV_PRETOK_METASPACE;
        st = get_str(obj, "replacement", "\xE2\x96\x81", label, what, &rep);
        if (st == DLV_OK) st = prepend_scheme(obj, label, what, &pt.scheme);
        if (st == DLV_OK) st = get_bool(obj, "split", 1, label, what, &pt.flag1);
        if (st == DLV_OK && !*rep)
            st = dlv_error(DLV_E_FORMAT, "%s: %s: empty replacement", label, what);
        if (st == DLV_OK && !(pt.a = dup_str(rep))) st = dlv_error_nomem("a pre-tokenizer", 8);
    } else
        return dlv_error(DLV_E_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported",
                         label, type);
    if (st != DLV_OK) {
        if (pt.regex) dlv_regex_free(pt.regex);
        free(pt.a);
        return st;
    }
    return push_pretok(tok, pt);
}

/* ---- post-processor ----------------------------------------------------- */

static dlv_status special_ids(const json_t *specials, const char *name, const char *label,
                              dlv_ids *out)
{
    const json_t *ids = json_object_get(json_object_get(specials, name), "ids");
    if (!json_is_array(ids))
        return dlv_error(DLV_E_FORMAT, "%s: post_processor: special token '%s' has no 'ids'",
                         label, name);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= INT32_MAX)
            return dlv_error(DLV_E_FORMAT, "%s: post_processor: special token '%s': bad id", label,
                             name);
        dlv_status st = dlv_ids_push(out, (int32_t)json_integer_value(v));
        if (st != DLV_OK) return st;
    }
    return DLV_OK;
}

static dlv_status load_template(dlv_tokenizer *tok, const json_t *obj, const char *label)
{
    const json_t *single = json_object_get(obj, "single");
    const json_t *specials = json_object_get(obj, "special_tokens");
    if (!json_is_array(single))
        return dlv_error(DLV_E_FORMAT, "%s: post_processor TemplateProcessing: 'single' must be "
                         "an array", label);
    dlv_ids tpl = {0};
    dlv_status st = DLV_OK;
    for (size_t i = 0; st == DLV_OK && i < json_array_size(single); i++) {
        const json_t *item = json_array_get(single, i);
        const json_t *sp = json_object_get(item, "SpecialToken");
        const json_t *id = json_object_get(sp, "id");
        if (json_is_string(id)) st = special_ids(specials, json_string_value(id), label, &tpl);
        else if (json_object_get(item, "Sequence")) st = dlv_ids_push(&tpl, DLV_TPL_SEQ);
        else
            st = dlv_error(DLV_E_FORMAT, "%s: post_processor: single[%zu]: expected "
                           "SpecialToken or Sequence", label, i);
    }
    if (st != DLV_OK) {
        dlv_ids_free(&tpl);
        return st;
    }
    free(tok->tpl);
    tok->tpl = tpl.v;
    tok->n_tpl = tpl.n;
    return DLV_OK;
}

/* [cls] SEQ [sep] from ["token", id] pairs. */
static dlv_status load_cls_sep(dlv_tokenizer *tok, const json_t *obj, const char *label,
                               const char *type)
{
    const json_t *cls = json_array_get(json_object_get(obj, "cls"), 1);
    const json_t *sep = json_array_get(json_object_get(obj, "sep"), 1);
    if (!json_is_integer(cls) || !json_is_integer(sep) || json_integer_value(cls) < 0 ||
        json_integer_value(sep) < 0 || json_integer_value(cls) >= INT32_MAX ||
        json_integer_value(sep) >= INT32_MAX)
        return dlv_error(DLV_E_FORMAT, "%s: post_processor %s: 'cls' and 'sep' must be [token, "
                         "id]", label, type);
    return dlv_tokenizer_set_bos_eos(tok, (int32_t)json_integer_value(cls),
                                     (int32_t)json_integer_value(sep));
}

static dlv_status load_post(dlv_tokenizer *tok, const json_t *obj, const char *label, int depth)
{
    if (!obj || json_is_null(obj)) return DLV_OK;
    const char *type = type_of(obj);
    if (!type || depth > 8)
        return dlv_error(DLV_E_FORMAT, "%s: post_processor: missing 'type' or nested too deep",
                         label);
    if (strcmp(type, "ByteLevel") == 0) return DLV_OK; /* offsets only */
    if (strcmp(type, "TemplateProcessing") == 0) return load_template(tok, obj, label);
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0)
        return load_cls_sep(tok, obj, label, type);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(obj, "processors");
        if (!json_is_array(list))
            return dlv_error(DLV_E_FORMAT, "%s: post_processor Sequence: 'processors' must be an "
                             "array", label);
        for (size_t i = 0; i < json_array_size(list); i++) {
            dlv_status st = load_post(tok, json_array_get(list, i), label, depth + 1);
            if (st != DLV_OK) return st;
        }
        return DLV_OK;
    }
    return dlv_error(DLV_E_UNSUPPORTED, "%s: post_processor type '%s' is not supported", label,
                     type);
}

/* ---- decoders ----------------------------------------------------------- */

static dlv_status push_dec(dlv_tokenizer *tok, dlv_decoder d)
{
    dlv_decoder *v = realloc(tok->decs, (tok->n_decs + 1) * sizeof *v);
    if (!v) {
        free(d.a);
        free(d.b);
        return dlv_error_nomem("a decoder", sizeof *v);
    }
    tok->decs = v;
    v[tok->n_decs++] = d;
    return DLV_OK;
}

static dlv_status load_decoder(dlv_tokenizer *tok, const json_t *obj, const char *label,
                               int depth)
{
    if (!obj || json_is_null(obj)) return DLV_OK;
    const char *type = type_of(obj);
    if (!type || depth > 8)
        return dlv_error(DLV_E_FORMAT, "%s: decoder: missing 'type' or nested too deep", label);
    tok->has_decoder = 1;
    dlv_decoder d = {0};
    dlv_status st = DLV_OK;
    const char *a = NULL, *b = NULL;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(obj, "decoders");
        if (!json_is_array(list))
            return dlv_error(DLV_E_FORMAT, "%s: decoder Sequence: 'decoders' must be an array",
                             label);
        for (size_t i = 0; st == DLV_OK && i < json_array_size(list); i++)
            st = load_decoder(tok, json_array_get(list, i), label, depth + 1);
        return st;
    }
    if (strcmp(type, "ByteFallback") == 0) d.kind = DLV_DEC_BYTE_FALLBACK;
    else if (strcmp(type, "Fuse") == 0) d.kind = DLV_DEC_FUSE;
    else if (strcmp(type, "ByteLevel") == 0) d.kind = DLV_DEC_BYTE_LEVEL;
    else if (strcmp(type, "Replace") == 0) {
        d.kind = DLV_DEC_REPLACE;
        st = string_pattern(obj, label, "decoder Replace", &a);
        if (st == DLV_OK) st = get_str(obj, "content", "", label, "decoder Replace", &b);
    } else if (strcmp(type, "Strip") == 0) {
        int64_t start = 0, stop = 0;
        d.kind = DLV_DEC_STRIP;
        st = get_str(obj, "content", " ", label, "decoder Strip", &a);
        if (st == DLV_OK) st = dlv_json_int(obj, "start", 0, label, &start);
        if (st == DLV_OK) st = dlv_json_int(obj, "stop", 0, label, &stop);
        if (st == DLV_OK && (start < 0 || stop < 0 || start > 1 << 20 || stop > 1 << 20))
            st = dlv_error(DLV_E_FORMAT, "%s: decoder Strip: bad start/stop", label);
        d.n1 = (size_t)start;
        d.n2 = (size_t)stop;
    } else if (strcmp(type, "Metaspace") == 0) {
        dlv_prepend_scheme scheme = DLV_PREPEND_ALWAYS;
        d.kind = DLV_DEC_METASPACE;
        st = get_str(obj, "replacement", "\xE2\x96\x81", label, "decoder Metaspace", &a);
        if (st == DLV_OK) st = prepend_scheme(obj, label, "decoder Metaspace", &scheme);
        d.flag = scheme != DLV_PREPEND_NEVER;
    } else
        return dlv_error(DLV_E_UNSUPPORTED, "%s: decoder type '%s' is not supported", label, type);
    if (st != DLV_OK) return st;
    if ((a && !(d.a = dup_str(a))) || (b && !(d.b = dup_str(b)))) {
        free(d.a);
        return dlv_error_nomem("a decoder", 16);
    }
    return push_dec(tok, d);
}

/* ---- the file ----------------------------------------------------------- */

dlv_status dlv_tokenizer_from_json_text(const char *text, size_t len, const char *label,
                                        dlv_tokenizer **out)
{
    *out = NULL;
    json_t *root = NULL;
    dlv_tokenizer *tok = NULL;
    fast_spans fast = {text, {0, 0, 0}, {0, 0, 0}};
    char *rest = NULL;
    dlv_status st = dlv_tokjson_locate(text, len, label, &fast.vocab, &fast.merges);
    if (st == DLV_OK && (fast.vocab.found || fast.merges.found)) {
        /* jansson parses the file with those two values blanked out: the
         * same length, so its error positions stay right. */
        rest = malloc(len + 1);
        if (!rest) st = dlv_error_nomem("a tokenizer.json copy", len);
        else {
            memcpy(rest, text, len);
            if (fast.vocab.found) {
                memset(rest + fast.vocab.off, ' ', fast.vocab.len);
                memcpy(rest + fast.vocab.off, "{}", 2);
            }
            if (fast.merges.found) {
                memset(rest + fast.merges.off, ' ', fast.merges.len);
                memcpy(rest + fast.merges.off, "[]", 2);
            }
        }
    }
    if (st == DLV_OK) st = dlv_json_parse(rest ? rest : text, len, label, &root);
    if (st == DLV_OK && !json_is_object(root))
        st = dlv_error(DLV_E_FORMAT, "%s: expected a JSON object", label);
    if (st == DLV_OK) st = dlv_tokenizer_new_empty(label, &tok);
    if (st == DLV_OK) st = load_model(tok, json_object_get(root, "model"), label, &fast);
    if (st == DLV_OK) st = load_added(tok, json_object_get(root, "added_tokens"), label);
    if (st == DLV_OK) st = load_normalizer(tok, json_object_get(root, "normalizer"), label, 0);
    if (st == DLV_OK) st = load_pretok(tok, json_object_get(root, "pre_tokenizer"), label, 0);
    if (st == DLV_OK) st = load_post(tok, json_object_get(root, "post_processor"), label, 0);
    if (st == DLV_OK) st = load_decoder(tok, json_object_get(root, "decoder"), label, 0);
    if (st == DLV_OK) st = dlv_tokenizer_finish(tok);
    json_decref(root);
    free(rest);
    if (st != DLV_OK) {
        dlv_tokenizer_destroy(tok);
        return st;
    }
    *out = tok;
    return DLV_OK;
}

dlv_status dlv_tokenizer_from_json(const char *path, dlv_tokenizer **out)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    dlv_status st = dlv_read_file(path, (size_t)512 << 20, &text, &len);
    if (st == DLV_OK) st = dlv_tokenizer_from_json_text(text, len, path, out);
    free(text);
    return st;
}
