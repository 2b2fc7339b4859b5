/* A direct reader for the two large members of tokenizer.json, model.vocab
 * and model.merges (Qwen2's 11 MB file is ~450k strings): jansson would
 * allocate a JSON node per string and take ~0.6 s; reading them straight
 * into the tokenizer's own tables is several times faster. The rest of the
 * file is still parsed by jansson. Strict JSON: anything unexpected is a
 * DLV_E_FORMAT naming the byte offset. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_fast.h"

typedef struct rd {
    const char *s;
    size_t n, i;
    const char *label;
} rd;

static void ws(rd *r)
{
    while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\n' || r->s[r->i] == '\r' ||
                           r->s[r->i] == '\t'))
        r->i++;
}

static dlv_status fail(const rd *r, const char *what)
{
    return dlv_error(DLV_E_FORMAT, "%s: invalid JSON at byte %zu: %s", r->label, r->i, what);
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 1;
}

/* A JSON string at r->i into out (unescaped; out may be NULL to skip). */
static dlv_status string(rd *r, dlv_tbuf *out)
{
    if (r->i >= r->n || r->s[r->i] != '"') return fail(r, "expected a string");
    r->i++;
    if (out) out->len = 0;
    size_t run = r->i;
    dlv_status st = DLV_OK;
    while (r->i < r->n) {
        unsigned char c = (unsigned char)r->s[r->i];
        if (c == '"' || c == '\\') {
            if (out && (st = dlv_tbuf_append(out, r->s + run, r->i - run)) != DLV_OK) return st;
        }
        if (c == '"') {
            r->i++;
            if (out) {
                size_t bad = dlv_utf8_check(out->p ? out->p : "", out->len);
                if (bad) return fail(r, "a string is not valid UTF-8");
                if ((st = dlv_tbuf_reserve(out, 0)) != DLV_OK) return st;
            }
            return DLV_OK;
        }
        if (c < 0x20) return fail(r, "a control character in a string");
        if (c != '\\') {
            r->i++;
            /* Skip ahead over plain bytes in one go. */
            while (r->i < r->n && r->s[r->i] != '"' && r->s[r->i] != '\\' &&
                   (unsigned char)r->s[r->i] >= 0x20)
                r->i++;
            continue;
        }
        if (r->i + 1 >= r->n) break;
        char e = r->s[r->i + 1];
        r->i += 2;
        uint32_t cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (r->n - r->i < 4 || !hex4(r->s + r->i, &cp)) return fail(r, "a bad \\u escape");
            r->i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(r, "a lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (r->n - r->i < 6 || r->s[r->i] != '\\' || r->s[r->i + 1] != 'u' ||
                    !hex4(r->s + r->i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return fail(r, "a lone high surrogate");
                r->i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) return fail(r, "a NUL character in a string");
            break;
        default: return fail(r, "a bad escape");
        }
        if (out && (st = dlv_tbuf_append_cp(out, cp)) != DLV_OK) return st;
        run = r->i;
    }
    return fail(r, "an unterminated string");
}

static dlv_status skip_value(rd *r, int depth)
{
    ws(r);
    if (r->i >= r->n) return fail(r, "unexpected end");
    char c = r->s[r->i];
    if (c == '"') return string(r, NULL);
    if (c == '{' || c == '[') {
        if (depth > 64) return fail(r, "nested too deep");
        char close = c == '{' ? '}' : ']';
        r->i++;
        ws(r);
        if (r->i < r->n && r->s[r->i] == close) {
            r->i++;
            return DLV_OK;
        }
        for (;;) {
            dlv_status st;
            if (c == '{') {
                ws(r);
                if ((st = string(r, NULL)) != DLV_OK) return st;
                ws(r);
                if (r->i >= r->n || r->s[r->i] != ':') return fail(r, "expected ':'");
                r->i++;
            }
            if ((st = skip_value(r, depth + 1)) != DLV_OK) return st;
            ws(r);
            if (r->i < r->n && r->s[r->i] == ',') {
                r->i++;
                continue;
            }
            if (r->i < r->n && r->s[r->i] == close) {
                r->i++;
                return DLV_OK;
            }
            return fail(r, "expected ',' or a closing bracket");
        }
    }
    size_t start = r->i;
    while (r->i < r->n && strchr("+-.0123456789eEtrufalsn", r->s[r->i])) r->i++;
    return r->i > start ? DLV_OK : fail(r, "unexpected character");
}

/* Walks object members at r->i, calling back for each key of interest. */
static dlv_status find_members(rd *r, const char *k1, dlv_span *v1, const char *k2, dlv_span *v2)
{
    dlv_tbuf key = {0};
    dlv_status st = DLV_OK;
    ws(r);
    if (r->i >= r->n || r->s[r->i] != '{') return DLV_OK; /* jansson will report it */
    r->i++;
    ws(r);
    if (r->i < r->n && r->s[r->i] == '}') return DLV_OK;
    while (st == DLV_OK) {
        ws(r);
        if ((st = string(r, &key)) != DLV_OK) break;
        ws(r);
        if (r->i >= r->n || r->s[r->i] != ':') {
            st = fail(r, "expected ':'");
            break;
        }
        r->i++;
        ws(r);
        dlv_span *slot = NULL;
        if (key.len == strlen(k1) && memcmp(key.p, k1, key.len) == 0) slot = v1;
        else if (k2 && key.len == strlen(k2) && memcmp(key.p, k2, key.len) == 0)
            slot = v2;
        size_t start = r->i;
        if ((st = skip_value(r, 1)) != DLV_OK) break;
        if (slot) {
            slot->off = start;
            slot->len = r->i - start;
            slot->found = 1;
        }
        ws(r);
        if (r->i < r->n && r->s[r->i] == ',') {
            r->i++;
            continue;
        }
        if (r->i < r->n && r->s[r->i] == '}') break;
        st = fail(r, "expected ',' or '}'");
    }
    dlv_tbuf_free(&key);
    return st;
}

dlv_status dlv_tokjson_locate(const char *text, size_t len, const char *label, dlv_span *vocab,
                              dlv_span *merges)
{
    memset(vocab, 0, sizeof *vocab);
    memset(merges, 0, sizeof *merges);
    rd r = {text, len, 0, label};
    dlv_span model = {0};
    dlv_status st = find_members(&r, "model", &model, NULL, NULL);
    if (st != DLV_OK || !model.found) return st;
    rd m = {text, model.off + model.len, model.off, label};
    return find_members(&m, "vocab", vocab, "merges", merges);
}

dlv_status dlv_tokjson_vocab(dlv_bpe *bpe, const char *text, dlv_span sp, const char *label)
{
    rd r = {text, sp.off + sp.len, sp.off, label};
    dlv_tbuf key = {0};
    /* Two passes: ids first (for the table size), then the tokens. */
    int64_t max_id = -1;
    size_t count = 0;
    dlv_status st = DLV_OK;
    for (int pass = 0; pass < 2 && st == DLV_OK; pass++) {
        r.i = sp.off;
        if (pass == 1) {
            bpe->n_tokens = (size_t)(max_id + 1);
            bpe->tokens = calloc(bpe->n_tokens + 1, sizeof *bpe->tokens);
            bpe->lens = calloc(bpe->n_tokens + 1, sizeof *bpe->lens);
            if (!bpe->tokens || !bpe->lens) {
                st = dlv_error_nomem("the vocabulary", bpe->n_tokens * 12);
                break;
            }
            if ((st = dlv_strmap_init(&bpe->vocab, count)) != DLV_OK) break;
        }
        ws(&r);
        if (r.i >= r.n || r.s[r.i] != '{') {
            st = dlv_error(DLV_E_FORMAT, "%s: model: field 'vocab': expected an object", label);
            break;
        }
        r.i++;
        ws(&r);
        if (r.i < r.n && r.s[r.i] == '}') break;
        while (st == DLV_OK) {
            ws(&r);
            if ((st = string(&r, &key)) != DLV_OK) break;
            ws(&r);
            if (r.i >= r.n || r.s[r.i] != ':') {
                st = fail(&r, "expected ':'");
                break;
            }
            r.i++;
            ws(&r);
            int64_t id = 0;
            size_t digits = 0;
            while (r.i < r.n && r.s[r.i] >= '0' && r.s[r.i] <= '9' && id < DLV_MAX_TOKEN_ID) {
                id = id * 10 + (r.s[r.i++] - '0');
                digits++;
            }
            if (!digits || id >= DLV_MAX_TOKEN_ID ||
                (r.i < r.n && strchr(".eE-+0123456789", r.s[r.i]))) {
                st = dlv_error(DLV_E_FORMAT, "%s: model: vocab token '%s' (byte %zu): expected "
                               "an id in [0, 2^24)", label, key.p, r.i);
                break;
            }
            if (pass == 0) {
                if (id > max_id) max_id = id;
                count++;
            } else {
                size_t i = (size_t)id;
                if (bpe->tokens[i]) {
                    st = dlv_error(DLV_E_FORMAT, "%s: model: vocab: id %zu is used by both '%s' "
                                   "and '%s'", label, i, bpe->tokens[i], key.p);
                    break;
                }
                if (dlv_strmap_get(&bpe->vocab, key.p, key.len) >= 0) {
                    st = dlv_error(DLV_E_FORMAT, "%s: model: vocab: duplicate token '%s'", label,
                                   key.p);
                    break;
                }
                if (!(bpe->tokens[i] = malloc(key.len + 1))) {
                    st = dlv_error_nomem("a token", key.len + 1);
                    break;
                }
                memcpy(bpe->tokens[i], key.p, key.len + 1);
                bpe->lens[i] = (uint32_t)key.len;
                st = dlv_strmap_put(&bpe->vocab, bpe->tokens[i], key.len, (int32_t)i);
            }
            ws(&r);
            if (st == DLV_OK && r.i < r.n && r.s[r.i] == ',') {
                r.i++;
                continue;
            }
            if (st == DLV_OK && (r.i >= r.n || r.s[r.i] != '}')) st = fail(&r, "expected ',' or '}'");
            break;
        }
    }
    dlv_tbuf_free(&key);
    return st;
}

dlv_status dlv_tokjson_merges(const char *text, dlv_span sp, const char *label,
                              dlv_merge_fn add, void *ctx)
{
    rd r = {text, sp.off + sp.len, sp.off, label};
    dlv_tbuf a = {0}, b = {0};
    dlv_status st = DLV_OK;
    ws(&r);
    if (r.i >= r.n || r.s[r.i] != '[')
        return dlv_error(DLV_E_FORMAT, "%s: model: field 'merges': expected an array", label);
    r.i++;
    ws(&r);
    if (r.i < r.n && r.s[r.i] == ']') return DLV_OK;
    for (size_t rank = 0; st == DLV_OK; rank++) {
        ws(&r);
        if (r.i < r.n && r.s[r.i] == '[') {
            r.i++;
            ws(&r);
            st = string(&r, &a);
            ws(&r);
            if (st == DLV_OK && (r.i >= r.n || r.s[r.i] != ','))
                st = dlv_error(DLV_E_FORMAT, "%s: model: merge %zu: expected [\"a\", \"b\"]",
                               label, rank);
            if (st == DLV_OK) {
                r.i++;
                ws(&r);
                st = string(&r, &b);
                ws(&r);
            }
            if (st == DLV_OK && (r.i >= r.n || r.s[r.i] != ']'))
                st = dlv_error(DLV_E_FORMAT, "%s: model: merge %zu: expected [\"a\", \"b\"]",
                               label, rank);
            if (st != DLV_OK) break;
            r.i++;
            st = add(ctx, a.p, a.len, b.p, b.len, rank);
        } else if (r.i < r.n && r.s[r.i] == '"') {
            if ((st = string(&r, &a)) != DLV_OK) break;
            const char *sp1 = memchr(a.p, ' ', a.len);
            if (!sp1 || memchr(sp1 + 1, ' ', a.len - (size_t)(sp1 - a.p) - 1)) {
                st = dlv_error(DLV_E_FORMAT, "%s: model: merge %zu ('%s'): expected two tokens "
                               "separated by one space", label, rank, a.p);
                break;
            }
            st = add(ctx, a.p, (size_t)(sp1 - a.p), sp1 + 1, a.len - (size_t)(sp1 - a.p) - 1, rank);
        } else {
            st = dlv_error(DLV_E_FORMAT, "%s: model: merge %zu: expected \"a b\" or [\"a\", \"b\"]",
                           label, rank);
            break;
        }
        ws(&r);
        if (st == DLV_OK && r.i < r.n && r.s[r.i] == ',') {
            r.i++;
            continue;
        }
        if (st == DLV_OK && (r.i >= r.n || r.s[r.i] != ']')) st = fail(&r, "expected ',' or ']'");
        break;
    }
    dlv_tbuf_free(&a);
    dlv_tbuf_free(&b);
    return st;
}
