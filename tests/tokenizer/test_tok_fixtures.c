/* Exact ids on the small tokenizers committed under tests/tokenizer/fixtures/,
 * against the goldens tests/reference/tokenizer_fixtures.py wrote with HF
 * `tokenizers` (cross-checked with `sentencepiece` for tokenizer.model).
 * Unlike test_tok_reference.c this needs nothing outside the repository, so
 * it runs in every build and CI: a Llama-style tokenizer.json (legacy
 * Prepend + Replace, byte fallback), the same vocabulary as a SentencePiece
 * tokenizer.model and with a Metaspace pre-tokenizer, a SentencePiece model
 * with SentencePiece's default whitespace squeezing, a Qwen2-style
 * byte-level BPE and a CLIP-style one (end-of-word suffix, unk, Roberta
 * template), a SentencePiece model whose pieces share scores (goldens from
 * `sentencepiece`), and a byte-level BPE behind an NFKC normalizer with
 * overlapping added tokens, and a Llama-3-style byte-level BPE (its Split
 * regex, ignore_merges, 256 special tokens). Each golden has cases whose
 * ids depend on which of two equal-rank merges is applied first (repeated
 * letters, spaces, newlines, CJK); those are counted, so a wrong tie-break
 * cannot pass unnoticed. So are the cases the last three fixtures exist
 * for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "disclvlm.h"
#include "text_test_util.h"

/* The tie cases each golden must carry (the script counted 27 to 74). */
enum { MIN_TIES = 20 };
/* As tests/reference/tokenizer_fixtures.py requires (it found 23, 47, 21). */
enum { MIN_SCORE_TIES = 10, MIN_NFKC_CASES = 30, MIN_OVERLAP_CASES = 15 };
/* As the script requires for llama3 (it found 11, 32, 23). */
enum { MIN_IGNORE_MERGES = 8, MIN_DIGIT_GROUPS = 20, MIN_CONTRACTION_CASE = 15 };

static char *fixture(const char *rel)
{
    char buf[256];
    snprintf(buf, sizeof buf, "tests/tokenizer/fixtures/%s", rel);
    return tt_source(buf);
}

/* The cases of fixtures/<golden> marked flag. */
static size_t count(const char *golden, const char *flag)
{
    char *gpath = fixture(golden);
    size_t n = tt_golden_count(gpath, flag);
    print_message("%s: %zu cases marked \"%s\"\n", golden, n, flag);
    free(gpath);
    return n;
}

/* Loads fixtures/<tok_rel> with the public loader (a file, or a directory
 * with tokenizer_config.json) and compares it with fixtures/<golden>. */
static tt_golden_stats check(const char *tok_rel, const char *golden)
{
    char *path = fixture(tok_rel), *gpath = fixture(golden);
    dlv_tokenizer *tok = NULL;
    dlv_status st = dlv_tokenizer_load(path, &tok);
    if (st != DLV_OK) print_error("%s: %s\n", path, dlv_last_error());
    assert_int_equal(st, DLV_OK);
    tt_golden_stats stats = tt_run_golden(tok, gpath, tok_rel);
    assert_true(stats.cases >= 290);
    assert_true(stats.ties >= MIN_TIES);
    dlv_tokenizer_free(tok);
    free(path);
    free(gpath);
    return stats;
}

static void llama_json(void **state)
{
    (void)state;
    tt_golden_stats s = check("llama/tokenizer.json", "llama/golden.json");
    assert_true(s.trips > s.cases / 2);
}

/* The SentencePiece model through lib/tokenizer/sentencepiece_model.c: same
 * goldens as its HF conversion. */
static void llama_model(void **state)
{
    (void)state;
    tt_golden_stats s = check("llama/tokenizer.model", "llama/golden.json");
    assert_true(s.trips > s.cases / 2);
}

/* The directory: tokenizer.json plus tokenizer_config.json (add_bos_token). */
static void llama_dir(void **state)
{
    (void)state;
    check("llama", "llama/golden.json");
}

/* A SentencePiece model with SentencePiece's default normalization
 * (remove_extra_whitespaces on, which the HF conversion ignores): goldens
 * from `sentencepiece` itself, without the cases that hold "<s>" and the
 * like (the library, like the HF conversion, treats those as special). */
static void spm_default(void **state)
{
    (void)state;
    check("spm/tokenizer.model", "spm/golden.json");
}

/* The llama model with equal scores: every run of 32 consecutive merged
 * pieces shares one score. SentencePiece's BPE encoder takes the
 * best-scoring adjacent pair and, between equal scores, the leftmost, so
 * equal scores must share one merge rank: ranking them apart by
 * vocabulary order gives other ids on the "score_tie" cases (runs of "a"
 * and "ab", "tab\tseparated\tvalues", ...), and so does HF's conversion to
 * ranked merges. Goldens from `sentencepiece` itself. */
static void spm_tied_scores(void **state)
{
    (void)state;
    check("spm_ties/tokenizer.model", "spm_ties/golden.json");
    assert_true(count("spm_ties/golden.json", "score_tie") >= MIN_SCORE_TIES);
}

static void llama_metaspace(void **state)
{
    (void)state;
    tt_golden_stats s = check("llama_metaspace/tokenizer.json", "llama_metaspace/golden.json");
    assert_true(s.trips > s.cases / 2);
}

static void qwen2_json(void **state)
{
    (void)state;
    tt_golden_stats s = check("qwen2/tokenizer.json", "qwen2/golden.json");
    assert_true(s.trips > s.cases / 2);
}

static void qwen2_dir(void **state)
{
    (void)state;
    check("qwen2", "qwen2/golden.json");
}

/* CLIP lowercases, squeezes whitespace and decodes with "</w>" left in, so
 * the reference round-trips almost nothing: no round-trip quota. Its cases
 * include U+0130, whose full lowercase (HF's Lowercase) is two code points. */
static void clip_json(void **state)
{
    (void)state;
    check("clip/tokenizer.json", "clip/golden.json");
}

/* NFKC folds compatibility characters (ligatures, full-width and
 * half-width forms, superscripts, circled numbers, ...; "nfkc" cases) where
 * NFC keeps them. Added tokens overlap ("<x>", "<x><y>", "<x><y><z>" matched
 * on the raw text; "ok", "okay", "okay!" on the NFKC form, so "ｏｋａｙ"
 * is one token): the longest match at the leftmost position wins, as HF's
 * automaton does ("added_overlap" cases). Goldens from HF `tokenizers`. */
static void nfkc_json(void **state)
{
    (void)state;
    tt_golden_stats s = check("nfkc/tokenizer.json", "nfkc/golden.json");
    assert_true(s.trips > s.cases / 2);
    assert_true(count("nfkc/golden.json", "nfkc") >= MIN_NFKC_CASES);
    assert_true(count("nfkc/golden.json", "added_overlap") >= MIN_OVERLAP_CASES);
}

/* What a Llama 3 tokenizer needs beyond Qwen2's, each counted by the cases
 * whose ids depend on it: digits go in runs of up to three (\p{N}{1,3};
 * "digit_groups" cases such as "1234567", "$100.00"); contractions are
 * matched in any case ((?i:'s|...); "contraction_case" cases such as
 * "'Sorry'", which case-sensitive contractions would leave one pre-token
 * "'Sorry"); and its BPE has ignore_merges: a pre-token found in the
 * vocabulary is one token even when the merges would not build it
 * ("ignore_merges" cases: " tokenizer", "!!!\n\n", ...). Also 256 special
 * tokens (chat-format texts, lookalikes), BOS template. Goldens from HF
 * `tokenizers`. */
static void llama3_json(void **state)
{
    (void)state;
    tt_golden_stats s = check("llama3/tokenizer.json", "llama3/golden.json");
    assert_true(s.trips > s.cases / 2);
    assert_true(count("llama3/golden.json", "ignore_merges") >= MIN_IGNORE_MERGES);
    assert_true(count("llama3/golden.json", "digit_groups") >= MIN_DIGIT_GROUPS);
    assert_true(count("llama3/golden.json", "contraction_case") >= MIN_CONTRACTION_CASE);
}

/* The directory: Llama 3's tokenizer_config.json has no add_bos_token, so
 * the tokenizer.json template (BOS) stays. */
static void llama3_dir(void **state)
{
    (void)state;
    check("llama3", "llama3/golden.json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(llama_json),      cmocka_unit_test(llama_model),
        cmocka_unit_test(llama_dir),       cmocka_unit_test(spm_default),
        cmocka_unit_test(spm_tied_scores), cmocka_unit_test(llama_metaspace),
        cmocka_unit_test(qwen2_json),      cmocka_unit_test(qwen2_dir),
        cmocka_unit_test(clip_json),       cmocka_unit_test(nfkc_json),
        cmocka_unit_test(llama3_json),     cmocka_unit_test(llama3_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
