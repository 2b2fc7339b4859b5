/* tools/eval/metrics.c on hand-computed cases, ties included (ties count
 * against the model: see metrics.h). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "eval/metrics.h"

static void test_recall_basic(void **state)
{
    (void)state;
    /* 2 images x 4 texts; texts 0,1 describe image 0, texts 2,3 image 1. */
    const float s[2 * 4] = {0.9f, 0.1f, 0.8f, 0.2f, /* image 0 */
                            0.3f, 0.4f, 0.5f, 0.6f}; /* image 1 */
    const uint32_t ti[4] = {0, 0, 1, 1};
    size_t i2t[2], t2i[4];
    assert_int_equal(dlv_eval_retrieval_ranks(s, 2, 4, ti, i2t, t2i), DLV_OK);
    /* image 0: best right 0.9, no wrong text >= 0.9; image 1: best right
     * 0.6 (text 3), wrong texts 0.3, 0.4 below. */
    assert_int_equal(i2t[0], 0);
    assert_int_equal(i2t[1], 0);
    /* text 0: 0.9 vs 0.3 -> 0; text 1: 0.1 vs 0.4 -> 1; text 2: 0.5 vs
     * 0.8 -> 1; text 3: 0.6 vs 0.2 -> 0. */
    assert_int_equal(t2i[0], 0);
    assert_int_equal(t2i[1], 1);
    assert_int_equal(t2i[2], 1);
    assert_int_equal(t2i[3], 0);
    assert_true(dlv_eval_recall_at(i2t, 2, 1) == 100.0);
    assert_true(dlv_eval_recall_at(t2i, 4, 1) == 50.0);
    assert_true(dlv_eval_recall_at(t2i, 4, 2) == 100.0);
    /* Either output may be NULL. */
    assert_int_equal(dlv_eval_retrieval_ranks(s, 2, 4, ti, NULL, t2i), DLV_OK);
    assert_int_equal(dlv_eval_retrieval_ranks(s, 2, 4, ti, i2t, NULL), DLV_OK);
}

static void test_recall_ranks_deeper(void **state)
{
    (void)state;
    /* 3 images, 1 caption each (text j -> image j); image 0's caption is
     * beaten by both others: rank 2, a hit only at K >= 3. */
    const float s[3 * 3] = {0.1f, 0.5f, 0.3f, /* image 0 */
                            0.0f, 0.9f, 0.2f, /* image 1 */
                            0.4f, 0.1f, 0.8f}; /* image 2 */
    const uint32_t ti[3] = {0, 1, 2};
    size_t i2t[3], t2i[3];
    assert_int_equal(dlv_eval_retrieval_ranks(s, 3, 3, ti, i2t, t2i), DLV_OK);
    assert_int_equal(i2t[0], 2);
    assert_int_equal(i2t[1], 0);
    assert_int_equal(i2t[2], 0);
    /* text 0 (column 0): 0.1 vs 0.0, 0.4 -> 1; text 1: 0.9 best -> 0;
     * text 2: 0.8 best -> 0. */
    assert_int_equal(t2i[0], 1);
    assert_int_equal(t2i[1], 0);
    assert_int_equal(t2i[2], 0);
    assert_true(fabs(dlv_eval_recall_at(i2t, 3, 1) - 200.0 / 3) < 1e-9);
    assert_true(dlv_eval_recall_at(i2t, 3, 3) == 100.0);
}

static void test_recall_ties(void **state)
{
    (void)state;
    /* Every score equal: every wrong candidate ties, so it counts against
     * the model: a collapsed model gets R@1 = 0, not 100. */
    const float s[2 * 4] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    const uint32_t ti[4] = {0, 0, 1, 1};
    size_t i2t[2], t2i[4];
    assert_int_equal(dlv_eval_retrieval_ranks(s, 2, 4, ti, i2t, t2i), DLV_OK);
    assert_int_equal(i2t[0], 2); /* both wrong texts tie */
    assert_int_equal(i2t[1], 2);
    for (int j = 0; j < 4; j++) assert_int_equal(t2i[j], 1);
    assert_true(dlv_eval_recall_at(i2t, 2, 1) == 0.0);
    assert_true(dlv_eval_recall_at(t2i, 4, 1) == 0.0);
    assert_true(dlv_eval_recall_at(i2t, 2, 5) == 100.0);

    /* One wrong text ties the best right one: rank 1. Another right
     * caption above the best does not exist, and right captions tying
     * each other do not count. */
    const float s2[2 * 4] = {0.7f, 0.7f, 0.7f, 0.1f, /* image 0: texts 0,1 right, text 2 ties */
                             0.0f, 0.0f, 0.9f, 0.9f};
    assert_int_equal(dlv_eval_retrieval_ranks(s2, 2, 4, ti, i2t, t2i), DLV_OK);
    assert_int_equal(i2t[0], 1);
    assert_int_equal(i2t[1], 0);
    /* text 2 (image 1): 0.9 vs image 0's 0.7 -> 0; text 0: 0.7 vs 0.0 -> 0. */
    assert_int_equal(t2i[2], 0);
    assert_int_equal(t2i[0], 0);

    /* A weaker right caption does not push the best one down. */
    const float s3[2 * 4] = {0.2f, 0.95f, 0.9f, 0.1f, 0.f, 0.f, 1.f, 1.f};
    assert_int_equal(dlv_eval_retrieval_ranks(s3, 2, 4, ti, i2t, NULL), DLV_OK);
    assert_int_equal(i2t[0], 0);
}

static void test_recall_errors(void **state)
{
    (void)state;
    float s[2 * 2] = {0.1f, 0.2f, 0.3f, 0.4f};
    uint32_t bad[2] = {0, 2};
    size_t i2t[2], t2i[2];
    assert_int_equal(dlv_eval_retrieval_ranks(s, 2, 2, bad, i2t, t2i), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "text 1"));
    uint32_t lonely[2] = {0, 0}; /* image 1 has no caption */
    assert_int_equal(dlv_eval_retrieval_ranks(s, 2, 2, lonely, i2t, t2i), DLV_E_INVALID_ARG);
    assert_non_null(strstr(dlv_last_error(), "image 1 has no caption"));
    /* ...which only matters for image -> text. */
    assert_int_equal(dlv_eval_retrieval_ranks(s, 2, 2, lonely, NULL, t2i), DLV_OK);
    uint32_t ok[2] = {0, 1};
    s[3] = NAN;
    assert_int_equal(dlv_eval_retrieval_ranks(s, 2, 2, ok, i2t, t2i), DLV_E_NUMERIC);
    assert_non_null(strstr(dlv_last_error(), "[1, 1]"));
}

static void test_recall_at(void **state)
{
    (void)state;
    const size_t r[5] = {0, 1, 5, 9, 10};
    assert_true(dlv_eval_recall_at(r, 5, 1) == 20.0);
    assert_true(dlv_eval_recall_at(r, 5, 5) == 40.0);
    assert_true(dlv_eval_recall_at(r, 5, 10) == 80.0);
    assert_true(dlv_eval_recall_at(r, 0, 10) == 0.0);
}

static void test_pair_wins(void **state)
{
    (void)state;
    const float pos[5] = {0.9f, 0.2f, 0.5f, -0.1f, 0.30001f};
    const float neg[5] = {0.1f, 0.3f, 0.5f, -0.2f, 0.3f};
    size_t w = 99;
    assert_int_equal(dlv_eval_pair_wins(pos, neg, 5, &w), DLV_OK);
    assert_int_equal(w, 3); /* items 0, 3, 4; the tie (item 2) is a loss */
    const float nanpos[1] = {NAN}, zero[1] = {0};
    assert_int_equal(dlv_eval_pair_wins(nanpos, zero, 1, &w), DLV_E_NUMERIC);
    assert_int_equal(dlv_eval_pair_wins(NULL, NULL, 0, &w), DLV_OK);
    assert_int_equal(w, 0);
}

static void test_winoground(void **state)
{
    (void)state;
    /* s[c][i] = s(caption c, image i). */
    const dlv_wino_item items[4] = {
        {{{0.9f, 0.1f}, {0.2f, 0.8f}}}, /* text, image, group */
        {{{0.5f, 0.6f}, {0.4f, 0.7f}}}, /* text only: s00 < s01 fails image */
        {{{0.5f, 0.4f}, {0.6f, 0.7f}}}, /* image only: s00 < s10 fails text */
        {{{0.5f, 0.5f}, {0.5f, 0.5f}}}, /* all ties: nothing */
    };
    dlv_wino_result r;
    assert_int_equal(dlv_eval_winoground(items, 4, &r), DLV_OK);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.text, 2);
    assert_int_equal(r.image, 2);
    assert_int_equal(r.group, 1);
    /* A tie on one side only breaks that score. */
    const dlv_wino_item half[1] = {{{{0.9f, 0.1f}, {0.9f, 0.95f}}}};
    assert_int_equal(dlv_eval_winoground(half, 1, &r), DLV_OK);
    assert_int_equal(r.text, 0);  /* s00 == s10 */
    assert_int_equal(r.image, 1); /* 0.9 > 0.1 and 0.95 > 0.9 */
    assert_int_equal(r.group, 0);
    dlv_wino_item bad[1] = {{{{0.9f, 0.1f}, {NAN, 0.8f}}}};
    assert_int_equal(dlv_eval_winoground(bad, 1, &r), DLV_E_NUMERIC);
    assert_non_null(strstr(dlv_last_error(), "s(c1, i0)"));
}

static void test_class_embeddings(void **state)
{
    (void)state;
    /* 2 classes x 2 templates, dim 2. */
    const float e[4 * 2] = {3, 0, 0, 2,   /* class 0: normalised [1,0], [0,1] */
                            1, 1, -1, 1}; /* class 1: [.707,.707], [-.707,.707] */
    float out[4 * 2];
    assert_int_equal(dlv_eval_class_embeddings(e, 2, 2, 2, out), DLV_OK);
    const float r = (float)(1.0 / sqrt(2.0));
    assert_true(fabsf(out[0] - r) < 1e-6f && fabsf(out[1] - r) < 1e-6f);
    assert_true(fabsf(out[2]) < 1e-6f && fabsf(out[3] - 1.0f) < 1e-6f);
    /* One template: just the normalised row. */
    assert_int_equal(dlv_eval_class_embeddings(e, 4, 1, 2, out), DLV_OK);
    assert_true(fabsf(out[0] - 1.0f) < 1e-6f && fabsf(out[3] - 1.0f) < 1e-6f);
    assert_true(fabsf(out[6] + r) < 1e-6f && fabsf(out[7] - r) < 1e-6f);
    const float zero[2 * 2] = {1, 0, 0, 0};
    assert_int_equal(dlv_eval_class_embeddings(zero, 1, 2, 2, out), DLV_E_NUMERIC);
    const float opposite[2 * 2] = {1, 0, -1, 0};
    assert_int_equal(dlv_eval_class_embeddings(opposite, 1, 2, 2, out), DLV_E_NUMERIC);
    assert_int_equal(dlv_eval_class_embeddings(e, 2, 0, 2, out), DLV_E_INVALID_ARG);
}

static void test_class_ranks(void **state)
{
    (void)state;
    const float l[4 * 3] = {0.1f, 0.5f, 0.3f, /* label 1: top -> 0 */
                            0.1f, 0.5f, 0.3f, /* label 2: one above -> 1 */
                            0.5f, 0.5f, 0.1f, /* label 0: a tie -> 1 */
                            0.1f, 0.2f, 0.3f}; /* label 0: last -> 2 */
    const uint32_t lab[4] = {1, 2, 0, 0};
    size_t r[4];
    assert_int_equal(dlv_eval_class_ranks(l, 4, 3, lab, r), DLV_OK);
    assert_int_equal(r[0], 0);
    assert_int_equal(r[1], 1);
    assert_int_equal(r[2], 1);
    assert_int_equal(r[3], 2);
    assert_true(dlv_eval_recall_at(r, 4, 1) == 25.0);
    assert_true(dlv_eval_recall_at(r, 4, 2) == 75.0);
    const uint32_t bad[1] = {3};
    assert_int_equal(dlv_eval_class_ranks(l, 1, 3, bad, r), DLV_E_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recall_basic),      cmocka_unit_test(test_recall_ranks_deeper),
        cmocka_unit_test(test_recall_ties),       cmocka_unit_test(test_recall_errors),
        cmocka_unit_test(test_recall_at),         cmocka_unit_test(test_pair_wins),
        cmocka_unit_test(test_winoground),        cmocka_unit_test(test_class_embeddings),
        cmocka_unit_test(test_class_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
