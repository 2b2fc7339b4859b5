/* The Split pre-tokenizer's regular expressions, on PCRE2: Unicode
 * properties (\p{L}, \p{N}) and lookahead as the Oniguruma patterns in
 * tokenizer.json expect them. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

struct dlv_matcher {
    const pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *stack;
};

dlv_status dlv_regex_compile(const char *pattern, size_t len, int literal, const char *label,
                             void **out)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len,
                                   PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0u), &err,
                                   &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return dlv_error(DLV_E_FORMAT, "%s: regex '%.*s': %s at offset %zu", label,
                         (int)(len > 200 ? 200 : len), pattern, (const char *)msg, (size_t)off);
    }
    /* JIT is an optimisation only: without it matching is slower, not wrong. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return DLV_OK;
}

void dlv_regex_free(void *re) { pcre2_code_free(re); }

dlv_status dlv_regex_matcher(const void *re, dlv_matcher **out)
{
    dlv_matcher *m = calloc(1, sizeof *m);
    if (!m) return dlv_error_nomem("a regex matcher", sizeof *m);
    m->re = re;
    m->md = pcre2_match_data_create_from_pattern(re, NULL);
    m->mc = pcre2_match_context_create(NULL);
    /* Long whitespace runs need more than the default 32 KiB JIT stack. */
    m->stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!m->md || !m->mc || !m->stack) {
        dlv_regex_matcher_free(m);
        return dlv_error_nomem("a regex matcher", 32 * 1024);
    }
    pcre2_jit_stack_assign(m->mc, NULL, m->stack);
    *out = m;
    return DLV_OK;
}

void dlv_regex_matcher_free(dlv_matcher *m)
{
    if (!m) return;
    pcre2_match_data_free(m->md);
    pcre2_match_context_free(m->mc);
    pcre2_jit_stack_free(m->stack);
    free(m);
}

int dlv_regex_next(dlv_matcher *m, const char *s, size_t n, size_t start, size_t *mstart,
                   size_t *mend)
{
    while (start <= n) {
        /* The text was validated as UTF-8 up front. */
        int rc = pcre2_match(m->re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, m->md, m->mc);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            dlv_error(DLV_E_UNSUPPORTED, "tokenizer regex failed at byte %zu: %s", start,
                      (const char *)msg);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
        if (ov[1] > ov[0]) {
            *mstart = ov[0];
            *mend = ov[1];
            return 1;
        }
        /* An empty match yields no piece; move on by one character. */
        if (ov[0] >= n) return 0;
        start = ov[0] + dlv_utf8_len((unsigned char)s[ov[0]]);
    }
    return 0;
}
