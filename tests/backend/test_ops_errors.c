/* Argument checking of every compute-op wrapper: NULL backend and pointers,
 * negative and overflowing sizes, bad dtypes and enums, forbidden overlaps,
 * each op's own rules, and DLV_E_UNSUPPORTED (never a NULL call) from a
 * backend whose compute slots are empty. Each check asserts the status AND
 * that the message names the op and the offending argument. */
#include "ops_test_util.h"

static dlv_backend *cpu(void **state)
{
    return *state;
}

static int setup(void **state)
{
    dlv_backend *be = NULL;
    dlv_backend_config cfg = {.n_threads = 2};
    if (dlv_backend_create("cpu", &cfg, &be) != DLV_OK) return -1;
    *state = be;
    return 0;
}

static int teardown(void **state)
{
    dlv_backend_destroy(*state);
    return 0;
}

#define EXPECT(call, status, needle)                                                       \
    do {                                                                                   \
        assert_int_equal((call), (status));                                                \
        assert_error_mentions(needle);                                                     \
    } while (0)

static float buf_a[256], buf_b[256], buf_c[256];

static void test_add_errors(void **state)
{
    dlv_backend *be = cpu(state);
    float *o = buf_a, *a = buf_b;
    const void *b = buf_c;
    assert_int_equal(dlv_add(be, o, a, b, DLV_DTYPE_F32, 0, 4, 8), DLV_OK);
    EXPECT(dlv_add(NULL, o, a, b, DLV_DTYPE_F32, 0, 4, 8), DLV_E_INVALID_ARG,
           "add: backend is NULL");
    EXPECT(dlv_add(be, NULL, a, b, DLV_DTYPE_F32, 0, 4, 8), DLV_E_INVALID_ARG, "add: out is NULL");
    EXPECT(dlv_add(be, o, NULL, b, DLV_DTYPE_F32, 0, 4, 8), DLV_E_INVALID_ARG, "a is NULL");
    EXPECT(dlv_add(be, o, a, NULL, DLV_DTYPE_F32, 1, 4, 8), DLV_E_INVALID_ARG, "b is NULL");
    EXPECT(dlv_add(be, o, a, b, DLV_DTYPE_F32, 0, -1, 8), DLV_E_INVALID_ARG, "rows = -1");
    EXPECT(dlv_add(be, o, a, b, DLV_DTYPE_F32, 0, 4, -8), DLV_E_INVALID_ARG, "cols = -8");
    EXPECT(dlv_add(be, o, a, b, DLV_DTYPE_F32, 2, 4, 8), DLV_E_INVALID_ARG, "broadcast_b 2");
    EXPECT(dlv_add(be, o, a, b, DLV_DTYPE_I32, 0, 4, 8), DLV_E_UNSUPPORTED, "b_dtype I32");
    EXPECT(dlv_add(be, o, a, b, (dlv_dtype)99, 0, 4, 8), DLV_E_INVALID_ARG, "b_dtype 99");
    EXPECT(dlv_add(be, o, a, b, DLV_DTYPE_F32, 0, INT64_MAX / 2, 8), DLV_E_INVALID_ARG,
           "too large");
    /* out == a is fine; out one element into a is not; b inside out is not. */
    assert_int_equal(dlv_add(be, a, a, b, DLV_DTYPE_F32, 0, 4, 8), DLV_OK);
    EXPECT(dlv_add(be, a + 1, a, b, DLV_DTYPE_F32, 0, 4, 8), DLV_E_INVALID_ARG,
           "out overlaps a");
    EXPECT(dlv_add(be, o, a, o + 3, DLV_DTYPE_BF16, 1, 4, 8), DLV_E_INVALID_ARG,
           "out overlaps b");
    EXPECT(dlv_add_bias(be, NULL, b, DLV_DTYPE_F32, 2, 2), DLV_E_INVALID_ARG, "add_bias: add:");
    /* Empty tensors need no storage. */
    assert_int_equal(dlv_add(be, NULL, NULL, NULL, DLV_DTYPE_F32, 0, 0, 8), DLV_OK);
    assert_int_equal(dlv_add_bias(be, NULL, NULL, DLV_DTYPE_F32, 0, 8), DLV_OK);
}

static void test_norm_errors(void **state)
{
    dlv_backend *be = cpu(state);
    float *o = buf_a, *x = buf_b, *w = buf_c;
    assert_int_equal(dlv_layernorm(be, o, x, w, w + 8, DLV_DTYPE_F32, 4, 8, 1e-5f), DLV_OK);
    EXPECT(dlv_layernorm(NULL, o, x, w, w, DLV_DTYPE_F32, 4, 8, 1e-5f), DLV_E_INVALID_ARG,
           "layernorm: backend is NULL");
    EXPECT(dlv_layernorm(be, o, NULL, w, w, DLV_DTYPE_F32, 4, 8, 1e-5f), DLV_E_INVALID_ARG,
           "layernorm: inp is NULL");
    EXPECT(dlv_layernorm(be, o, x, w, w, DLV_DTYPE_F32, 4, 8, -1.0f), DLV_E_INVALID_ARG,
           "eps -1");
    EXPECT(dlv_layernorm(be, o, x, w, w, DLV_DTYPE_F32, 4, 8, NAN), DLV_E_INVALID_ARG, "eps");
    EXPECT(dlv_layernorm(be, o, x, w, w, DLV_DTYPE_U8, 4, 8, 1e-5f), DLV_E_UNSUPPORTED,
           "param_dtype U8");
    EXPECT(dlv_layernorm(be, o, x, o + 4, NULL, DLV_DTYPE_F32, 4, 8, 1e-5f), DLV_E_INVALID_ARG,
           "out overlaps weight");
    EXPECT(dlv_layernorm(be, o, o + 1, NULL, NULL, DLV_DTYPE_F32, 4, 8, 1e-5f),
           DLV_E_INVALID_ARG, "out overlaps inp");
    EXPECT(dlv_rmsnorm(be, o, x, w, DLV_DTYPE_F32, -4, 8, 1e-5f), DLV_E_INVALID_ARG,
           "rmsnorm: rows = -4");
    EXPECT(dlv_rmsnorm(be, NULL, x, w, DLV_DTYPE_F32, 4, 8, 1e-5f), DLV_E_INVALID_ARG,
           "rmsnorm: out is NULL");
    EXPECT(dlv_rmsnorm(be, o, x, w, (dlv_dtype)-1, 4, 8, 1e-5f), DLV_E_INVALID_ARG,
           "weight_dtype -1");
    EXPECT(dlv_rmsnorm(be, o, x, w, DLV_DTYPE_F32, 4, 8, INFINITY), DLV_E_INVALID_ARG, "eps inf");
    EXPECT(dlv_l2_normalize(be, o, NULL, 4, 8), DLV_E_INVALID_ARG, "l2_normalize: inp is NULL");
    EXPECT(dlv_l2_normalize(NULL, o, x, 4, 8), DLV_E_INVALID_ARG, "l2_normalize: backend");
    EXPECT(dlv_l2_normalize(be, o, x, 4, -2), DLV_E_INVALID_ARG, "cols = -2");
    /* Without parameters their dtype is not looked at. */
    assert_int_equal(dlv_layernorm(be, o, x, NULL, NULL, (dlv_dtype)99, 4, 8, 0.0f), DLV_OK);
    assert_int_equal(dlv_rmsnorm(be, x, x, NULL, (dlv_dtype)99, 4, 8, 0.0f), DLV_OK);
}

static void test_rope_errors(void **state)
{
    dlv_backend *be = cpu(state);
    float *x = buf_a;
    int32_t pos[4] = {0, 1, 2, 3};
    assert_int_equal(dlv_rope(be, x, pos, 4, 2, 8, 10000.0), DLV_OK);
    EXPECT(dlv_rope(NULL, x, pos, 4, 2, 8, 1e4), DLV_E_INVALID_ARG, "rope: backend is NULL");
    EXPECT(dlv_rope(be, x, pos, 4, 2, 7, 1e4), DLV_E_INVALID_ARG, "head_dim 7");
    EXPECT(dlv_rope(be, x, pos, 4, 2, 0, 1e4), DLV_E_INVALID_ARG, "head_dim 0");
    EXPECT(dlv_rope(be, x, pos, 4, 2, 8, 0.0), DLV_E_INVALID_ARG, "theta 0");
    EXPECT(dlv_rope(be, x, pos, 4, 2, 8, -5.0), DLV_E_INVALID_ARG, "theta -5");
    EXPECT(dlv_rope(be, x, pos, 4, 2, 8, (double)NAN), DLV_E_INVALID_ARG, "theta");
    EXPECT(dlv_rope(be, x, pos, 4, 2, 8, 1e300), DLV_E_INVALID_ARG, "theta 1e+300");
    EXPECT(dlv_rope(be, x, NULL, 4, 2, 8, 1e4), DLV_E_INVALID_ARG, "positions is NULL");
    EXPECT(dlv_rope(be, NULL, pos, 4, 2, 8, 1e4), DLV_E_INVALID_ARG, "x is NULL");
    EXPECT(dlv_rope(be, x, pos, -4, 2, 8, 1e4), DLV_E_INVALID_ARG, "n_tokens = -4");
    EXPECT(dlv_rope(be, x, pos, 4, -2, 8, 1e4), DLV_E_INVALID_ARG, "n_heads = -2");
    pos[2] = -1;
    float before[64];
    memcpy(before, x, sizeof before);
    EXPECT(dlv_rope(be, x, pos, 4, 2, 8, 1e4), DLV_E_INVALID_ARG, "positions[2] = -1");
    assert_memory_equal(before, x, sizeof before); /* nothing rotated */
}

static void test_rope_table_errors(void **state)
{
    dlv_backend *be = cpu(state);
    float *x = buf_a, *c = buf_b, *s = buf_c; /* x [4, 2 * 8], tables [4, 4] */
    assert_int_equal(dlv_rope_table(be, x, c, s, 4, 2, 8), DLV_OK);
    assert_int_equal(dlv_rope_table(be, x, c, c, 4, 2, 8), DLV_OK); /* inputs may overlap */
    EXPECT(dlv_rope_table(NULL, x, c, s, 4, 2, 8), DLV_E_INVALID_ARG,
           "rope_table: backend is NULL");
    EXPECT(dlv_rope_table(be, NULL, c, s, 4, 2, 8), DLV_E_INVALID_ARG,
           "rope_table: x is NULL for a 256-byte tensor");
    EXPECT(dlv_rope_table(be, x, NULL, s, 4, 2, 8), DLV_E_INVALID_ARG,
           "rope_table: cos is NULL for a 64-byte tensor");
    EXPECT(dlv_rope_table(be, x, c, NULL, 4, 2, 8), DLV_E_INVALID_ARG, "rope_table: sin is NULL");
    EXPECT(dlv_rope_table(be, x, c, s, 4, 2, 7), DLV_E_INVALID_ARG,
           "rope_table: head_dim 7 is not a positive even number");
    EXPECT(dlv_rope_table(be, x, c, s, 4, 2, 0), DLV_E_INVALID_ARG, "head_dim 0");
    EXPECT(dlv_rope_table(be, x, c, s, 4, 2, -2), DLV_E_INVALID_ARG, "head_dim -2");
    EXPECT(dlv_rope_table(be, x, c, s, -4, 2, 8), DLV_E_INVALID_ARG, "n_tokens = -4");
    EXPECT(dlv_rope_table(be, x, c, s, 4, -2, 8), DLV_E_INVALID_ARG, "n_heads = -2");
    EXPECT(dlv_rope_table(be, x, c, s, INT64_MAX / 2, 2, 8), DLV_E_INVALID_ARG, "too large");
    EXPECT(dlv_rope_table(be, x, c, s, 4, INT64_MAX / 4, 8), DLV_E_INVALID_ARG,
           "a token row of");
    /* x is rotated in place: a table inside it would be read half rotated. */
    EXPECT(dlv_rope_table(be, x, x + 8, s, 4, 2, 8), DLV_E_INVALID_ARG,
           "rope_table: x overlaps cos");
    EXPECT(dlv_rope_table(be, x, c, x, 4, 2, 8), DLV_E_INVALID_ARG,
           "rope_table: x overlaps sin");
    EXPECT(dlv_rope_table(be, x + 4, c, x, 4, 2, 8), DLV_E_INVALID_ARG, "x overlaps sin");
    /* Empty: nothing read, NULL allowed. */
    assert_int_equal(dlv_rope_table(be, NULL, NULL, NULL, 0, 2, 8), DLV_OK);
    assert_int_equal(dlv_rope_table(be, NULL, c, s, 4, 0, 8), DLV_OK);
}

static dlv_attention_args good_attention(void)
{
    /* batch 2, 3 tokens, 4 heads / 2 kv heads of 4: q 96 floats, kv 48. */
    dlv_attention_args a = {.struct_size = sizeof a, .out = buf_a, .q = buf_b, .k = buf_c,
                            .v = buf_c + 64, .key_mask = NULL, .batch = 2, .n_q = 3, .n_kv = 3,
                            .n_heads = 4, .n_kv_heads = 2, .head_dim = 4, .scale = 0.5f,
                            .causal = 1};
    return a;
}

static void test_attention_errors(void **state)
{
    dlv_backend *be = cpu(state);
    memset(buf_b, 0, sizeof buf_b);
    memset(buf_c, 0, sizeof buf_c);
    dlv_attention_args a = good_attention();
    assert_int_equal(dlv_attention(be, &a), DLV_OK);
    EXPECT(dlv_attention(NULL, &a), DLV_E_INVALID_ARG, "attention: backend is NULL");
    EXPECT(dlv_attention(be, NULL), DLV_E_INVALID_ARG, "attention: args is NULL");
    a = good_attention(); a.struct_size = 8;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "struct_size 8");
    a = good_attention(); a.n_kv_heads = 3;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "n_heads 4 is not a multiple of n_kv_heads 3");
    a = good_attention(); a.n_kv_heads = 0;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "must be > 0");
    a = good_attention(); a.head_dim = -4;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "head_dim -4");
    a = good_attention(); a.batch = -1;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "batch = -1");
    a = good_attention(); a.n_kv = -3;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "n_kv = -3");
    a = good_attention(); a.causal = 2;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "causal 2");
    a = good_attention(); a.scale = NAN;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "scale");
    a = good_attention(); a.q = NULL;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "q is NULL");
    a = good_attention(); a.v = NULL;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "v is NULL");
    a = good_attention(); a.out = NULL;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "out is NULL");
    a = good_attention(); a.out = buf_b + 8;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "out overlaps q");
    a = good_attention(); a.out = (float *)(uintptr_t)a.k;
    EXPECT(dlv_attention(be, &a), DLV_E_INVALID_ARG, "out overlaps k");
    a = good_attention(); a.n_q = (int64_t)INT32_MAX + 1; a.batch = 0;
    EXPECT(dlv_attention(be, &a), DLV_E_UNSUPPORTED, "INT_MAX");
    /* Empty batch: nothing to read. */
    a = good_attention(); a.batch = 0; a.q = NULL; a.k = NULL; a.v = NULL; a.out = NULL;
    assert_int_equal(dlv_attention(be, &a), DLV_OK);
}

static void test_activation_errors(void **state)
{
    dlv_backend *be = cpu(state);
    float *o = buf_a, *x = buf_b;
    assert_int_equal(dlv_activation(be, DLV_OP_ACT_SILU, o, x, 10), DLV_OK);
    EXPECT(dlv_activation(be, (dlv_op_act)9, o, x, 10), DLV_E_INVALID_ARG,
           "activation: 9 is not a dlv_op_act");
    EXPECT(dlv_activation(be, DLV_OP_ACT_COUNT, o, x, 10), DLV_E_INVALID_ARG, "not a dlv_op_act");
    EXPECT(dlv_activation(NULL, DLV_OP_ACT_GELU, o, x, 10), DLV_E_INVALID_ARG, "backend is NULL");
    EXPECT(dlv_activation(be, DLV_OP_ACT_GELU, o, NULL, 10), DLV_E_INVALID_ARG, "inp is NULL");
    EXPECT(dlv_activation(be, DLV_OP_ACT_GELU, o, x, -10), DLV_E_INVALID_ARG, "n = -10");
    EXPECT(dlv_activation(be, DLV_OP_ACT_GELU, x + 1, x, 10), DLV_E_INVALID_ARG,
           "out overlaps inp");
    EXPECT(dlv_swiglu(be, o, x, NULL, 10), DLV_E_INVALID_ARG, "swiglu: up is NULL");
    EXPECT(dlv_swiglu(be, o, NULL, x, 10), DLV_E_INVALID_ARG, "swiglu: gate is NULL");
    EXPECT(dlv_swiglu(be, o + 2, o, x, 10), DLV_E_INVALID_ARG, "out overlaps gate");
    EXPECT(dlv_swiglu(be, x + 5, o, x, 10), DLV_E_INVALID_ARG, "out overlaps up");
    assert_int_equal(dlv_swiglu(be, x, o, x, 10), DLV_OK);
}

static void test_embedding_errors(void **state)
{
    dlv_backend *be = cpu(state);
    int32_t ids[3] = {0, 1, 2};
    float *o = buf_a;
    const void *t = buf_c;
    assert_int_equal(dlv_embedding(be, o, t, DLV_DTYPE_F32, ids, 3, 4, 8), DLV_OK);
    EXPECT(dlv_embedding(NULL, o, t, DLV_DTYPE_F32, ids, 3, 4, 8), DLV_E_INVALID_ARG,
           "embedding: backend is NULL");
    EXPECT(dlv_embedding(be, o, NULL, DLV_DTYPE_F32, ids, 3, 4, 8), DLV_E_INVALID_ARG,
           "table is NULL");
    EXPECT(dlv_embedding(be, o, t, DLV_DTYPE_F32, NULL, 3, 4, 8), DLV_E_INVALID_ARG,
           "ids is NULL");
    EXPECT(dlv_embedding(be, NULL, t, DLV_DTYPE_F32, ids, 3, 4, 8), DLV_E_INVALID_ARG,
           "out is NULL");
    EXPECT(dlv_embedding(be, o, t, DLV_DTYPE_I64, ids, 3, 4, 8), DLV_E_UNSUPPORTED,
           "table_dtype I64");
    EXPECT(dlv_embedding(be, o, t, DLV_DTYPE_F32, ids, 3, 2, 8), DLV_E_INVALID_ARG,
           "token id 2 at position 2 is outside the vocabulary [0, 2)");
    EXPECT(dlv_embedding(be, o, t, DLV_DTYPE_F32, ids, 3, 0, 8), DLV_E_INVALID_ARG,
           "token id 0 at position 0");
    EXPECT(dlv_embedding(be, o, t, DLV_DTYPE_F32, ids, -3, 4, 8), DLV_E_INVALID_ARG,
           "n_ids = -3");
    EXPECT(dlv_embedding(be, o, o + 4, DLV_DTYPE_F32, ids, 3, 4, 8), DLV_E_INVALID_ARG,
           "out overlaps table");
    assert_int_equal(dlv_embedding(be, NULL, NULL, DLV_DTYPE_F32, NULL, 0, 0, 8), DLV_OK);
    /* dim 0: ids are still checked, nothing is read or written. */
    assert_int_equal(dlv_embedding(be, NULL, NULL, DLV_DTYPE_F32, ids, 3, 4, 0), DLV_OK);
}

static void test_im2col_errors(void **state)
{
    dlv_backend *be = cpu(state);
    float *o = buf_a, *px = buf_b;
    assert_int_equal(dlv_im2col_patches(be, o, px, 3, 4, 5, 2), DLV_OK);
    EXPECT(dlv_im2col_patches(NULL, o, px, 3, 4, 5, 2), DLV_E_INVALID_ARG,
           "im2col_patches: backend is NULL");
    EXPECT(dlv_im2col_patches(be, o, px, 3, 4, 5, 0), DLV_E_INVALID_ARG, "patch 0");
    EXPECT(dlv_im2col_patches(be, o, px, -3, 4, 5, 2), DLV_E_INVALID_ARG, "c = -3");
    EXPECT(dlv_im2col_patches(be, o, NULL, 3, 4, 5, 2), DLV_E_INVALID_ARG, "pixels is NULL");
    EXPECT(dlv_im2col_patches(be, NULL, px, 3, 4, 5, 2), DLV_E_INVALID_ARG, "out is NULL");
    EXPECT(dlv_im2col_patches(be, px + 1, px, 3, 4, 5, 2), DLV_E_INVALID_ARG,
           "out overlaps pixels");
    EXPECT(dlv_im2col_patches(be, o, px, 3, INT64_MAX / 2, 5, 2), DLV_E_INVALID_ARG,
           "too large");
    /* Smaller than one patch: no patches, nothing read. */
    assert_int_equal(dlv_im2col_patches(be, NULL, NULL, 3, 1, 5, 2), DLV_OK);
    assert_int_equal(dlv_im2col_patches(be, NULL, NULL, 0, 4, 4, 2), DLV_OK);
    /* Zero-sized everything else. */
    assert_int_equal(dlv_layernorm(be, NULL, NULL, NULL, NULL, DLV_DTYPE_F32, 0, 5, 1e-5f),
                     DLV_OK);
    assert_int_equal(dlv_rmsnorm(be, NULL, NULL, NULL, DLV_DTYPE_F32, 3, 0, 1e-5f), DLV_OK);
    assert_int_equal(dlv_l2_normalize(be, NULL, NULL, 0, 0), DLV_OK);
    assert_int_equal(dlv_rope(be, NULL, NULL, 0, 2, 8, 1e4), DLV_OK);
    assert_int_equal(dlv_activation(be, DLV_OP_ACT_GELU, NULL, NULL, 0), DLV_OK);
    assert_int_equal(dlv_swiglu(be, NULL, NULL, NULL, 0), DLV_OK);
}

static void test_matmul_weight_dtype_errors(void **state)
{
    dlv_backend *be = cpu(state);
    dlv_matmul_args a = {.struct_size = sizeof a, .trans_b = DLV_TRANS, .m = 2, .n = 3, .k = 4,
                         .alpha = 1.0f, .a = buf_a, .a_dtype = DLV_DTYPE_F32, .lda = 4,
                         .b = buf_b, .b_dtype = DLV_DTYPE_BF16, .ldb = 4, .c = buf_c, .ldc = 3};
    assert_int_equal(dlv_matmul(be, &a), DLV_OK);
    a.b_dtype = DLV_DTYPE_F16;
    assert_int_equal(dlv_matmul(be, &a), DLV_OK);
    a.b_dtype = DLV_DTYPE_I8;
    EXPECT(dlv_matmul(be, &a), DLV_E_UNSUPPORTED, "b_dtype I8");
    a.b_dtype = DLV_DTYPE_F32;
    a.a_dtype = DLV_DTYPE_BF16;
    EXPECT(dlv_matmul(be, &a), DLV_E_UNSUPPORTED, "a_dtype BF16");
}

/* A backend that has only the required slots: every compute wrapper says
 * which op is missing on which backend instead of calling NULL. */
static void test_missing_slots_unsupported(void **state)
{
    dlv_backend *be = cpu(state);
    dlv_backend_ops ops = *be->ops;
    ops.name = "bare";
    ops.add = NULL;
    ops.layernorm = NULL;
    ops.rmsnorm = NULL;
    ops.rope = NULL;
    ops.attention = NULL;
    ops.activation = NULL;
    ops.swiglu = NULL;
    ops.embedding = NULL;
    ops.im2col_patches = NULL;
    ops.l2_normalize = NULL;
    ops.rope_table = NULL;
    dlv_backend bare = {.ops = &ops, .device = 0};
    assert_false(DLV_BACKEND_HAS(&ops, attention));
    assert_true(DLV_BACKEND_HAS(&ops, matmul));
    float *o = buf_a, *x = buf_b;
    int32_t ids[2] = {0, 1};
    dlv_attention_args a = good_attention();
    EXPECT(dlv_add(&bare, o, x, x, DLV_DTYPE_F32, 1, 2, 4), DLV_E_UNSUPPORTED,
           "op add is not implemented on backend bare");
    EXPECT(dlv_add_bias(&bare, o, x, DLV_DTYPE_F32, 2, 4), DLV_E_UNSUPPORTED, "op add is not");
    EXPECT(dlv_layernorm(&bare, o, x, NULL, NULL, DLV_DTYPE_F32, 2, 4, 1e-5f), DLV_E_UNSUPPORTED,
           "op layernorm is not implemented on backend bare");
    EXPECT(dlv_rmsnorm(&bare, o, x, NULL, DLV_DTYPE_F32, 2, 4, 1e-5f), DLV_E_UNSUPPORTED,
           "op rmsnorm is not");
    EXPECT(dlv_rope(&bare, o, ids, 2, 1, 4, 1e4), DLV_E_UNSUPPORTED, "op rope is not");
    EXPECT(dlv_rope_table(&bare, o, x, x, 2, 1, 4), DLV_E_UNSUPPORTED,
           "op rope_table is not implemented on backend bare");
    EXPECT(dlv_rope_table(&bare, o, x, x, 2, 1, 5), DLV_E_INVALID_ARG, "head_dim 5");
    EXPECT(dlv_attention(&bare, &a), DLV_E_UNSUPPORTED, "op attention is not");
    EXPECT(dlv_activation(&bare, DLV_OP_ACT_GELU_TANH, o, x, 4), DLV_E_UNSUPPORTED,
           "op gelu_tanh is not implemented on backend bare");
    EXPECT(dlv_swiglu(&bare, o, x, x, 4), DLV_E_UNSUPPORTED, "op swiglu is not");
    EXPECT(dlv_embedding(&bare, o, x, DLV_DTYPE_F32, ids, 2, 2, 4), DLV_E_UNSUPPORTED,
           "op embedding is not");
    EXPECT(dlv_im2col_patches(&bare, o, x, 1, 4, 4, 2), DLV_E_UNSUPPORTED,
           "op im2col_patches is not");
    EXPECT(dlv_l2_normalize(&bare, o, x, 2, 4), DLV_E_UNSUPPORTED, "op l2_normalize is not");
    /* Argument errors still come first, the same on every backend. */
    EXPECT(dlv_l2_normalize(&bare, o, NULL, 2, 4), DLV_E_INVALID_ARG, "inp is NULL");
}

/* The pool copes with more threads than items and with many short runs. */
static void test_many_threads_few_rows(void **state)
{
    (void)state;
    dlv_backend *be = NULL;
    dlv_backend_config cfg = {.n_threads = 16};
    assert_int_equal(dlv_backend_create("cpu", &cfg, &be), DLV_OK);
    float x[3 * 5], o[3 * 5];
    for (int i = 0; i < 15; i++) x[i] = (float)i;
    for (int rep = 0; rep < 200; rep++)
        assert_int_equal(dlv_l2_normalize(be, o, x, 3, 5), DLV_OK);
    static float big[100000], big_out[100000];
    for (int i = 0; i < 100000; i++) big[i] = (float)(i % 17) - 8.0f;
    for (int rep = 0; rep < 50; rep++)
        assert_int_equal(dlv_activation(be, DLV_OP_ACT_RELU, big_out, big, 100000), DLV_OK);
    for (int i = 0; i < 100000; i++) assert_true(big_out[i] == (big[i] > 0 ? big[i] : 0.0f));
    dlv_backend_destroy(be);
    cfg.n_threads = 5000;
    EXPECT(dlv_backend_create("cpu", &cfg, &be), DLV_E_INVALID_ARG, "n_threads 5000");
    assert_null(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_norm_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rope_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rope_table_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attention_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedding_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_im2col_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_matmul_weight_dtype_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_slots_unsupported, setup, teardown),
        cmocka_unit_test(test_many_threads_few_rows),
    };
    return cmocka_run_group_tests_name("ops_errors", tests, NULL, NULL);
}
