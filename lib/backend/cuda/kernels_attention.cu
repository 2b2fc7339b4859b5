/* Compiled, not yet run on a GPU: tests/backend/test_ops_backends.c checks it
 * against the CPU where one exists.
 *
 * Fused attention, forward and backward, flash-attention style, in f32
 * throughout (the semantics of dlv_attention_args, backend/backend.h, and
 * of the CPU's cpu_flash.c / cpu_flash_bw.c): GQA (kv head g = h / (n_heads
 * / n_kv_heads)), key padding mask (uint8, 0 = never attended to), causal
 * mask aligned bottom-right (key j allowed for j <= i + n_kv - n_q), rows
 * with no allowed key give zeros. Nothing of size n_q x n_kv is stored:
 * scores live in registers, one per lane, a tile of KT = 32 keys at a time.
 *
 * Layout of the work (W = 8 warps = 256 threads per block; every lane keeps
 * NCH = head_dim / 32, rounded up to 1, 2, 4 or 8, values of a head_dim
 * vector, lane + 32 c for c < NCH):
 *
 * forward (attn_fwd): a block is W query rows of one (sequence, head), one
 *   warp per row. For each tile of 32 keys (K staged in shared memory, rows
 *   at an odd stride so that lane j reading key j's row is conflict-free):
 *   lane j computes s_j = scale q . k_j (or -inf where masked), the warp
 *   keeps the online softmax (running maximum m, running sum l of exp(s -
 *   m), the output rescaled by exp(m_old - m_new)); then V's tile replaces
 *   K's in the same shared buffer and o += sum_j p_j v_j (p_j broadcast by
 *   shuffles). out = o / l, or zeros for l == 0. Keys past the block's
 *   causal bound are not visited.
 * backward, three kernels in stream order:
 *   1. attn_fwd in its STATS form: the same forward, writing instead of out
 *      each row's m, l and D = dO . O into a scratch [3][rows] (rows =
 *      batch * n_heads * n_q);
 *   2. attn_bw_dkdv: a block is W keys of one (sequence, kv head), one warp
 *      per key. It visits every query head of the group and every query
 *      that may see the block (the causal bound skips the rest), 32 queries
 *      (Q and dO staged in shared memory) at a time: lane i recomputes
 *      p_i = exp(scale q_i . k - m_i) / l_i and ds_i = p_i (dO_i . v - D_i);
 *      the warp accumulates dv += sum_i p_i dO_i and dk += sum_i ds_i q_i in
 *      registers and adds them (scale dk) once at the end. Each element of
 *      dk and dv is owned by one thread of one block, and the heads sharing
 *      a kv head are summed in a fixed order: deterministic, no atomics.
 *   3. attn_bw_dq: a block is W query rows of one (sequence, head), as the
 *      forward; for each tile of 32 keys (K and V staged), lane j recomputes
 *      p_j and ds_j, and the warp accumulates dq += sum_j ds_j k_j, added
 *      (times scale) once at the end. Deterministic too.
 * The backward recomputes the scores twice (kernels 2 and 3) rather than
 * accumulating with atomics.
 *
 * Numerics: every dot product is a sequential f32 fma chain over head_dim;
 * expf (not __expf); no --use_fast_math. The summation orders differ from
 * the CPU's, within the tolerances of the backend comparison test. */
#include <cmath>
#include <cstdint>

#include "backend/cuda/cuda_kernels_attention.h"

namespace {

constexpr int W = 8;          /* warps per block: query rows (forward, dq) or keys (dk, dv) */
constexpr int THREADS = W * 32;
constexpr int KT = 32;        /* keys per tile (forward, dq): one per lane */
constexpr int QT = 32;        /* queries per tile (dk, dv): one per lane */
constexpr unsigned FULL = 0xffffffffu;

static_assert(DLV_CUK_ATTN_MAX_HEAD_DIM <= 8 * 32, "NCH <= 8 covers head_dim");

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
    return v;
}

/* A butterfly: every lane ends with the same bits (each step adds the same
 * pair in either order, and addition is commutative). */
__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}

/* rows x D floats from global (leading dimension src_ld) into shared
 * memory (leading dimension dst_ld), by the whole block. */
__device__ __forceinline__ void load_rows(float *dst, int dst_ld, const float *src,
                                          int64_t src_ld, int rows, int D)
{
    for (int e = threadIdx.x; e < rows * D; e += blockDim.x) {
        int r = e / D, c = e - r * D;
        dst[r * dst_ld + c] = src[r * src_ld + c];
    }
}

__device__ __forceinline__ float dot_smem(const float *x, const float *y, int D)
{
    float acc = 0.0f;
    for (int d = 0; d < D; d++) acc = fmaf(x[d], y[d], acc);
    return acc;
}

/* One past the last key any query of [i0, i0 + rows) may attend to. */
__device__ __forceinline__ int64_t key_end(const dlv_cuk_attn &a, int64_t i0, int64_t rows)
{
    if (!a.causal) return a.n_kv;
    int64_t last = i0 + rows + (a.n_kv - a.n_q);
    return last < 0 ? 0 : last < a.n_kv ? last : a.n_kv;
}

/* Whether key j (< n_kv) of sequence b is allowed for query i. */
__device__ __forceinline__ bool allowed(const dlv_cuk_attn &a, const uint8_t *mask, int64_t i,
                                        int64_t j)
{
    if (mask && !mask[j]) return false;
    return !a.causal || j <= i + (a.n_kv - a.n_q);
}

/* Shared memory stride of a staged key/query row: odd, so that lane r
 * reading row r at the same column hits 32 different banks. */
__host__ __device__ __forceinline__ int odd_stride(int D)
{
    return D | 1;
}

/* ---- forward (and the backward's row statistics) ------------------------ */

/* Shared memory: qs [W][D], kv [KT][odd_stride(D)]. */
__host__ __forceinline__ size_t fwd_smem(int D)
{
    return ((size_t)W * D + (size_t)KT * odd_stride(D)) * sizeof(float);
}

/* acc += coef * row, for this lane's elements of a head_dim-D row in shared
 * memory (element lane + 32 c in acc[c]). */
template <int NCH>
__device__ __forceinline__ void add_scaled_row(float (&acc)[NCH], float coef, const float *row,
                                               int lane, int D)
{
#pragma unroll
    for (int c = 0; c < NCH; c++) {
        const int d = lane + 32 * c;
        if (d < D) acc[c] = fmaf(coef, row[d], acc[c]);
    }
}

template <int NCH, bool STATS>
__global__ void __launch_bounds__(THREADS) attn_fwd(const dlv_cuk_attn a)
{
    extern __shared__ float smem[];
    const int D = (int)a.head_dim, ks = odd_stride(D);
    float *qs = smem, *kv = smem + W * D;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t group = a.n_heads / a.n_kv_heads;
    const int64_t ldq = a.n_heads * a.head_dim, ldk = a.n_kv_heads * a.head_dim;
    const int64_t n_qb = (a.n_q + W - 1) / W;
    const int64_t items = a.batch * a.n_heads * n_qb;
    const int64_t n_rows = a.batch * a.n_heads * a.n_q;
    for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
        const int64_t qb = item % n_qb, bh = item / n_qb;
        const int64_t h = bh % a.n_heads, b = bh / a.n_heads, g = h / group;
        const int64_t i0 = qb * W, i = i0 + warp;
        const int64_t rows = a.n_q - i0 < W ? a.n_q - i0 : W;
        const bool row_ok = i < a.n_q; /* the same for the whole warp */
        const uint8_t *mask = a.key_mask ? a.key_mask + b * a.n_kv : nullptr;
        const float *kbase = a.k + b * a.n_kv * ldk + g * a.head_dim;
        const float *vbase = a.v + b * a.n_kv * ldk + g * a.head_dim;
        const int64_t k_end = key_end(a, i0, rows);

        __syncthreads(); /* the previous item is done with qs and kv */
        if (row_ok)
            for (int d = lane; d < D; d += 32) qs[warp * D + d] = a.q[(b * a.n_q + i) * ldq + h * D + d];
        float m = -INFINITY, l = 0.0f;
        float o[NCH];
#pragma unroll
        for (int c = 0; c < NCH; c++) o[c] = 0.0f;

        for (int64_t k0 = 0; k0 < k_end; k0 += KT) {
            const int nk = (int)(k_end - k0 < KT ? k_end - k0 : KT);
            __syncthreads(); /* kv free: the previous tile's V reads are done */
            load_rows(kv, ks, kbase + k0 * ldk, ldk, nk, D);
            __syncthreads();
            float s = -INFINITY;
            if (row_ok && lane < nk && allowed(a, mask, i, k0 + lane))
                s = dot_smem(qs + warp * D, kv + lane * ks, D) * a.scale;
            const float m_new = fmaxf(m, warp_max(s));
            float p = 0.0f, corr = 1.0f;
            if (m_new != -INFINITY) { /* warp-uniform */
                p = s == -INFINITY ? 0.0f : expf(s - m_new);
                corr = m == -INFINITY ? 0.0f : expf(m - m_new);
            }
            l = l * corr + warp_sum(p);
            m = m_new;
#pragma unroll
            for (int c = 0; c < NCH; c++) o[c] *= corr;
            __syncthreads(); /* every warp is done reading K */
            load_rows(kv, ks, vbase + k0 * ldk, ldk, nk, D);
            __syncthreads();
            for (int j = 0; j < nk; j++) {
                const float pj = __shfl_sync(FULL, p, j);
                if (pj == 0.0f) continue; /* warp-uniform */
                const float *vr = kv + j * ks;
                add_scaled_row<NCH>(o, pj, vr, lane, D);
            }
        }
        if (!row_ok) continue;
        const int64_t at = (b * a.n_q + i) * ldq + h * D;
        if (!STATS) {
#pragma unroll
            for (int c = 0; c < NCH; c++) {
                const int d = lane + 32 * c;
                if (d < D) a.out[at + d] = l > 0.0f ? o[c] / l : 0.0f;
            }
        } else {
            /* D = dO . O, with O = o / l (0 for a row with no key). */
            float part = 0.0f;
#pragma unroll
            for (int c = 0; c < NCH; c++) {
                const int d = lane + 32 * c;
                if (d < D && l > 0.0f) part = fmaf(a.dout[at + d], o[c] / l, part);
            }
            const float dsum = warp_sum(part);
            if (lane == 0) {
                const int64_t row = (b * a.n_heads + h) * a.n_q + i;
                a.row_stats[row] = l > 0.0f ? m : 0.0f;
                a.row_stats[n_rows + row] = l;
                a.row_stats[2 * n_rows + row] = dsum;
            }
        }
    }
}

/* ---- backward: dq -------------------------------------------------------- */

/* Shared memory: qs [W][D], dos [W][D], kt [KT][ks], vt [KT][ks]. */
__host__ __forceinline__ size_t bw_smem(int D)
{
    return (2 * (size_t)W * D + 2 * (size_t)KT * odd_stride(D)) * sizeof(float);
}

template <int NCH>
__global__ void __launch_bounds__(THREADS) attn_bw_dq(const dlv_cuk_attn a)
{
    extern __shared__ float smem[];
    const int D = (int)a.head_dim, ks = odd_stride(D);
    float *qs = smem, *dos = qs + W * D, *kt = dos + W * D, *vt = kt + KT * ks;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t group = a.n_heads / a.n_kv_heads;
    const int64_t ldq = a.n_heads * a.head_dim, ldk = a.n_kv_heads * a.head_dim;
    const int64_t n_qb = (a.n_q + W - 1) / W;
    const int64_t items = a.batch * a.n_heads * n_qb;
    const int64_t n_rows = a.batch * a.n_heads * a.n_q;
    for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
        const int64_t qb = item % n_qb, bh = item / n_qb;
        const int64_t h = bh % a.n_heads, b = bh / a.n_heads, g = h / group;
        const int64_t i0 = qb * W, i = i0 + warp;
        const int64_t rows = a.n_q - i0 < W ? a.n_q - i0 : W;
        const bool row_ok = i < a.n_q;
        const uint8_t *mask = a.key_mask ? a.key_mask + b * a.n_kv : nullptr;
        const float *kbase = a.k + b * a.n_kv * ldk + g * a.head_dim;
        const float *vbase = a.v + b * a.n_kv * ldk + g * a.head_dim;
        const int64_t k_end = key_end(a, i0, rows);
        const int64_t at = (b * a.n_q + i) * ldq + h * D;

        __syncthreads();
        float mi = 0.0f, li = 0.0f, di = 0.0f;
        if (row_ok) {
            for (int d = lane; d < D; d += 32) {
                qs[warp * D + d] = a.q[at + d];
                dos[warp * D + d] = a.dout[at + d];
            }
            const int64_t row = (b * a.n_heads + h) * a.n_q + i;
            mi = a.row_stats[row];
            li = a.row_stats[n_rows + row];
            di = a.row_stats[2 * n_rows + row];
        }
        float acc[NCH];
#pragma unroll
        for (int c = 0; c < NCH; c++) acc[c] = 0.0f;

        for (int64_t k0 = 0; k0 < k_end; k0 += KT) {
            const int nk = (int)(k_end - k0 < KT ? k_end - k0 : KT);
            __syncthreads();
            load_rows(kt, ks, kbase + k0 * ldk, ldk, nk, D);
            load_rows(vt, ks, vbase + k0 * ldk, ldk, nk, D);
            __syncthreads();
            float ds = 0.0f;
            if (row_ok && li > 0.0f && lane < nk && allowed(a, mask, i, k0 + lane)) {
                const float s = dot_smem(qs + warp * D, kt + lane * ks, D) * a.scale;
                const float p = expf(s - mi) / li;
                const float dp = dot_smem(dos + warp * D, vt + lane * ks, D);
                ds = p * (dp - di);
            }
            for (int j = 0; j < nk; j++) {
                const float dsj = __shfl_sync(FULL, ds, j);
                if (dsj == 0.0f) continue; /* warp-uniform */
                const float *kr = kt + j * ks;
                add_scaled_row<NCH>(acc, dsj, kr, lane, D);
            }
        }
        if (!row_ok) continue;
#pragma unroll
        for (int c = 0; c < NCH; c++) {
            const int d = lane + 32 * c;
            if (d < D) a.dq[at + d] += a.scale * acc[c];
        }
    }
}

/* ---- backward: dk, dv ---------------------------------------------------- */

/* Shared memory: kr [W][D], vr [W][D] (each warp's key), qt [QT][ks],
 * dot [QT][ks]: the same size as bw_smem. */
static_assert(QT == KT, "attn_bw_dkdv shares bw_smem with attn_bw_dq");

template <int NCH>
__global__ void __launch_bounds__(THREADS) attn_bw_dkdv(const dlv_cuk_attn a)
{
    extern __shared__ float smem[];
    const int D = (int)a.head_dim, ks = odd_stride(D);
    float *kr = smem, *vr = kr + W * D, *qt = vr + W * D, *dot = qt + QT * ks;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t group = a.n_heads / a.n_kv_heads;
    const int64_t ldq = a.n_heads * a.head_dim, ldk = a.n_kv_heads * a.head_dim;
    const int64_t off = a.n_kv - a.n_q;
    const int64_t n_kb = (a.n_kv + W - 1) / W;
    const int64_t items = a.batch * a.n_kv_heads * n_kb;
    const int64_t n_rows = a.batch * a.n_heads * a.n_q;
    for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
        const int64_t kb = item % n_kb, bg = item / n_kb;
        const int64_t g = bg % a.n_kv_heads, b = bg / a.n_kv_heads;
        const int64_t j0 = kb * W, j = j0 + warp;
        const bool key_in = j < a.n_kv; /* the same for the whole warp */
        const uint8_t *mask = a.key_mask ? a.key_mask + b * a.n_kv : nullptr;
        const bool key_ok = key_in && (!mask || mask[j]);
        const int64_t kat = (b * a.n_kv + j) * ldk + g * D;
        /* The first query that may see a key of the block (causal: i >= j - off). */
        int64_t i_begin = 0;
        if (a.causal) i_begin = j0 - off > 0 ? j0 - off : 0;

        __syncthreads();
        if (key_in)
            for (int d = lane; d < D; d += 32) {
                kr[warp * D + d] = a.k[kat + d];
                vr[warp * D + d] = a.v[kat + d];
            }
        float dk[NCH], dv[NCH];
#pragma unroll
        for (int c = 0; c < NCH; c++) dk[c] = dv[c] = 0.0f;

        for (int64_t h = g * group; h < (g + 1) * group; h++) {
            const float *qbase = a.q + b * a.n_q * ldq + h * D;
            const float *dobase = a.dout + b * a.n_q * ldq + h * D;
            for (int64_t i0 = i_begin; i0 < a.n_q; i0 += QT) {
                const int ni = (int)(a.n_q - i0 < QT ? a.n_q - i0 : QT);
                __syncthreads();
                load_rows(qt, ks, qbase + i0 * ldq, ldq, ni, D);
                load_rows(dot, ks, dobase + i0 * ldq, ldq, ni, D);
                __syncthreads();
                const int64_t i = i0 + lane;
                float p = 0.0f, ds = 0.0f;
                if (key_ok && lane < ni && (!a.causal || j <= i + off)) {
                    const int64_t row = (b * a.n_heads + h) * a.n_q + i;
                    const float li = a.row_stats[n_rows + row];
                    if (li > 0.0f) {
                        const float s = dot_smem(qt + lane * ks, kr + warp * D, D) * a.scale;
                        p = expf(s - a.row_stats[row]) / li;
                        const float dp = dot_smem(dot + lane * ks, vr + warp * D, D);
                        ds = p * (dp - a.row_stats[2 * n_rows + row]);
                    }
                }
                for (int r = 0; r < ni; r++) {
                    const float pr = __shfl_sync(FULL, p, r);
                    const float dsr = __shfl_sync(FULL, ds, r);
                    if (pr == 0.0f && dsr == 0.0f) continue; /* warp-uniform */
                    const float *qr = qt + r * ks, *dr = dot + r * ks;
#pragma unroll
                    for (int c = 0; c < NCH; c++) {
                        const int d = lane + 32 * c;
                        if (d < D) {
                            dv[c] = fmaf(pr, dr[d], dv[c]);
                            dk[c] = fmaf(dsr, qr[d], dk[c]);
                        }
                    }
                }
            }
        }
        if (!key_in) continue;
#pragma unroll
        for (int c = 0; c < NCH; c++) {
            const int d = lane + 32 * c;
            if (d < D) {
                a.dk[kat + d] += a.scale * dk[c];
                a.dv[kat + d] += dv[c];
            }
        }
    }
}

/* ---- launchers ----------------------------------------------------------- */

/* Blocks for `items` work items: grid-stride beyond this. */
unsigned grid_for(int64_t items)
{
    const int64_t cap = (int64_t)1 << 20;
    return (unsigned)(items < cap ? items : cap);
}

/* Lets a kernel use more than the default 48 KiB of dynamic shared memory
 * (head_dim > 128 in the backward); the device's opt-in limit (>= 99 KiB
 * on sm_80 and later) covers head_dim 256. */
template <typename K>
cudaError_t allow_smem(K kernel, size_t bytes)
{
    if (bytes <= 48 * 1024) return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

template <int NCH, bool STATS>
cudaError_t launch_fwd(cudaStream_t s, const dlv_cuk_attn &a)
{
    const size_t smem = fwd_smem((int)a.head_dim);
    cudaError_t err = allow_smem(attn_fwd<NCH, STATS>, smem);
    if (err != cudaSuccess) return err;
    const int64_t items = a.batch * a.n_heads * ((a.n_q + W - 1) / W);
    attn_fwd<NCH, STATS><<<grid_for(items), THREADS, smem, s>>>(a);
    return cudaGetLastError();
}

template <int NCH>
cudaError_t launch_bw(cudaStream_t s, const dlv_cuk_attn &a)
{
    cudaError_t err = launch_fwd<NCH, true>(s, a);
    if (err != cudaSuccess) return err;
    const size_t smem = bw_smem((int)a.head_dim);
    if ((err = allow_smem(attn_bw_dkdv<NCH>, smem)) != cudaSuccess) return err;
    if ((err = allow_smem(attn_bw_dq<NCH>, smem)) != cudaSuccess) return err;
    const int64_t kv_items = a.batch * a.n_kv_heads * ((a.n_kv + W - 1) / W);
    attn_bw_dkdv<NCH><<<grid_for(kv_items), THREADS, smem, s>>>(a);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
    const int64_t q_items = a.batch * a.n_heads * ((a.n_q + W - 1) / W);
    attn_bw_dq<NCH><<<grid_for(q_items), THREADS, smem, s>>>(a);
    return cudaGetLastError();
}

/* NCH: head_dim / 32 rounded up to 1, 2, 4 or 8; 0 outside (0, 256]. */
int nch_for(int64_t d)
{
    if (d <= 0 || d > DLV_CUK_ATTN_MAX_HEAD_DIM) return 0;
    return d <= 32 ? 1 : d <= 64 ? 2 : d <= 128 ? 4 : 8;
}

} // namespace

extern "C" cudaError_t dlv_cuk_attention_forward(cudaStream_t s, const dlv_cuk_attn *a)
{
    if (a->batch <= 0 || a->n_q <= 0 || a->n_heads <= 0) return cudaSuccess;
    switch (nch_for(a->head_dim)) {
    case 1: return launch_fwd<1, false>(s, *a);
    case 2: return launch_fwd<2, false>(s, *a);
    case 4: return launch_fwd<4, false>(s, *a);
    case 8: return launch_fwd<8, false>(s, *a);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t dlv_cuk_attention_backward(cudaStream_t s, const dlv_cuk_attn *a)
{
    if (a->batch <= 0 || a->n_q <= 0 || a->n_kv <= 0 || a->n_heads <= 0) return cudaSuccess;
    switch (nch_for(a->head_dim)) {
    case 1: return launch_bw<1>(s, *a);
    case 2: return launch_bw<2>(s, *a);
    case 4: return launch_bw<4>(s, *a);
    case 8: return launch_bw<8>(s, *a);
    default: return cudaErrorInvalidValue;
    }
}
