// Tensor-core GEMM through VK_NV_cooperative_matrix (16x16x16, fp16 operands, fp32 accumulation), with
// the same operands, layouts, push constants and epilogue as gemm.comp:
//   out[z] = act(alpha * op(A[z]) * op(B[z]) (* scale) + bias) (+ residual[z]).
// The tile (include/coopmat_tile.glsl, shared with conv3d_coopmat): each workgroup computes a BM x BN tile
// with (BM/WM) x (BN/WN) subgroups of 32 invocations; each subgroup owns WM x WN outputs as (WM/16) x (WN/16)
// accumulator fragments. K is walked in BK-wide slices staged into shared memory as fp16 (f32 and bf16 operands
// are rounded to nearest even; fp8 weights decode exactly), double-buffered: the next slice is read from memory
// into registers before the MMAs of the current one and written to the other shared buffer after them (one
// barrier per slice).
// Staging moves chunks of 8 consecutive elements of an operand's contiguous dimension (one 16-byte load
// of f16/bf16, two of f32, one 8-byte load of fp8 when VEC_A / VEC_B say the contiguous length is a
// multiple of 8 and the base address is aligned; element by element with bounds checks otherwise).
// Shared slices keep the operand's own layout (rows along its contiguous dimension, padded by 8 halves
// against bank conflicts), and transposed operands are read as column-major fragments.
// The epilogue stores each fragment to a per-subgroup 16x16 fp32 scratch (aliasing the staging buffers,
// which are dead by then) and applies scale, bias, activation, residual and the output conversion.
// Requires subgroup size 32 and a 16x16x16 f16 x f16 -> f32 subgroup-scope shape (checked by the host).
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_extensions.glsl"
#include "common.glsl"

layout(local_size_x_id = 5) in;
#define CM_EMU_LAYOUT_ID 19
#include "coopmat.glsl"

layout(constant_id = 0) const uint BM = 128;
layout(constant_id = 1) const uint BN = 128;
layout(constant_id = 2) const uint BK = 32;      // multiple of 16
layout(constant_id = 3) const uint WM = 64;      // subgroup tile rows (multiple of 16)
layout(constant_id = 4) const uint WN = 32;      // subgroup tile columns (multiple of 16)
// constant 5: workgroup size = (BM / WM) * (BN / WN) * 32
layout(constant_id = 6) const uint A_DT = 0;
layout(constant_id = 7) const uint B_DT = 0;
layout(constant_id = 8) const uint OUT_DT = 0;
layout(constant_id = 9) const uint BIAS_DT = 0;
layout(constant_id = 10) const uint RES_DT = 0;
layout(constant_id = 11) const uint TRANS_A = 0;
layout(constant_id = 12) const uint TRANS_B = 0;
layout(constant_id = 13) const uint HAS_BIAS = 0;
layout(constant_id = 14) const uint HAS_RES = 0;
layout(constant_id = 15) const uint ACT = 0;     // 0 none, 1 gelu (tanh), 2 gelu (erf), 3 silu
layout(constant_id = 16) const uint SCALE = 0;   // 0 none, 1 per tensor, 2 per column n
// 1: the operand's contiguous length (K for A, M for Aᵀ; N for B, K for Bᵀ) is a multiple of 8 and its
// address (and so every batch's) is aligned to min(16, 8 * element size) bytes: chunks are vector loads.
layout(constant_id = 17) const uint VEC_A = 0;
layout(constant_id = 18) const uint VEC_B = 0;

layout(push_constant) uniform P {
    uint64_t a;
    uint64_t b;
    uint64_t out_;
    uint64_t bias;
    uint64_t res;
    uint64_t scale;
    uint M;
    uint N;
    uint K;
    uint batch;
    uint strideA;
    uint strideB;
    uint strideOut;
    float alpha;
} p;

#include "coopmat_tile.glsl"

#include "half_staging.glsl"

float tanh_safe(float y) {
    float e = exp(-2.0 * abs(y));
    return sign(y) * (1.0 - e) / (1.0 + e);
}

// erf, ~1e-7 absolute error (the same fit as gemm.comp).
float erf_approx(float x) {
    float t = abs(x);
    if (t <= 0.921875) {
        float s = x * x;
        float r = 8.395633631153032e-05;
        r = fma(r, s, -0.0008149241330102086);
        r = fma(r, s, 0.0052016605623066425);
        r = fma(r, s, -0.026859676465392113);
        r = fma(r, s, 0.11283700913190842);
        r = fma(r, s, -0.37612634897232056);
        r = fma(r, s, 1.128379225730896);
        return x * r;
    }
    if (t >= 4.0) return sign(x);
    float u = t - 2.4;
    float r = -2.6845814460330075e-08;
    r = fma(r, u, 1.6286921891150996e-06);
    r = fma(r, u, -1.446055102860555e-05);
    r = fma(r, u, 8.710234396858141e-05);
    r = fma(r, u, -0.00046971190022304654);
    r = fma(r, u, 0.002387396292760968);
    r = fma(r, u, -0.011768030934035778);
    r = fma(r, u, 0.05949811264872551);
    r = fma(r, u, -0.36423662304878235);
    r = fma(r, u, -1.520975112915039);
    r = fma(-t, t, r);
    return sign(x) * (1.0 - exp(r));
}

float activate(float v) {
    if (ACT == 1u) return 0.5 * v * (1.0 + tanh_safe(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    if (ACT == 2u) return 0.5 * v * (1.0 + erf_approx(v * 0.7071067811865476));
    if (ACT == 3u) return v / (1.0 + exp(-v));
    return v;
}

// The tile's staging encodings and its output before the residual (coopmat_tile_loop.glsl).
#define TILE_A_DT A_DT
#define TILE_B_DT B_DT
#define TILE_OUTPUT(val, row, col)                                                                              \
    {                                                                                                           \
        float s = p.alpha;                                                                                      \
        if (SCALE == 1u) s *= F32Ref(p.scale).v[0];                                                             \
        if (SCALE == 2u) s *= F32Ref(p.scale).v[col];                                                           \
        val *= s;                                                                                               \
        if (HAS_BIAS != 0u) val += load_elem(p.bias, BIAS_DT, col);                                             \
        val = activate(val);                                                                                    \
    }

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint sg = CM_SG, lane = CM_LANE;
    uint wm = sg / (BN / WN), wn = sg % (BN / WN);
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    uint M = p.M, N = p.N, K = p.K;
    uint nk = (K + BK - 1u) / BK;
    // Where this invocation's chunks sit in the slices (row, first column), the same for every slice.
    uint aRow[CA], aCol[CA], bRow[CB], bCol[CB];
    CM_UNROLL for (uint c = 0u; c < CA; c++) { uint q = tid + c * WG; aRow[c] = q / A_CPR; aCol[c] = (q % A_CPR) * 8u; }
    CM_UNROLL for (uint c = 0u; c < CB; c++) { uint q = tid + c * WG; bRow[c] = q / B_CPR; bCol[c] = (q % B_CPR) * 8u; }

    for (uint z = gl_WorkGroupID.z; z < p.batch; z += gl_NumWorkGroups.z) {
        uint64_t aBase = p.a + uint64_t(z) * uint64_t(p.strideA) * uint64_t(dt_size(A_DT));
        uint64_t bBase = p.b + uint64_t(z) * uint64_t(p.strideB) * uint64_t(dt_size(B_DT));
        uint64_t outBase = p.out_ + uint64_t(z) * uint64_t(p.strideOut) * uint64_t(dt_size(OUT_DT));
        uint64_t resBase = p.res + uint64_t(z) * uint64_t(p.strideOut) * uint64_t(dt_size(RES_DT));
        // The raw chunks of the slice at k0 (the tile's loop stages them).
#define LOAD_SLICE(k0)                                                                                          \
        {                                                                                                       \
            /* A slice: rows m (cols k), or rows k (cols m) when transposed. */                                 \
            uint aRows = TRANS_A == 0u ? M - m0 : K - (k0), aCols = TRANS_A == 0u ? K - (k0) : M - m0;          \
            uint aLd = TRANS_A == 0u ? K : M, aStart = TRANS_A == 0u ? m0 * K + (k0) : (k0) * M + m0;          \
            CM_UNROLL for (uint c = 0u; c < CA; c++)                                                           \
                load_chunk(aBase, A_DT, VEC_A != 0u, aStart + aRow[c] * aLd + aCol[c],                          \
                           tid + c * WG < A_CHUNKS && aRow[c] < aRows, int(aCols) - int(aCol[c]), ra0[c], ra1[c]); \
            uint bRows = TRANS_B == 0u ? K - (k0) : N - n0, bCols = TRANS_B == 0u ? N - n0 : K - (k0);          \
            uint bLd = TRANS_B == 0u ? N : K, bStart = TRANS_B == 0u ? (k0) * N + n0 : n0 * K + (k0);          \
            CM_UNROLL for (uint c = 0u; c < CB; c++)                                                           \
                load_chunk(bBase, B_DT, VEC_B != 0u, bStart + bRow[c] * bLd + bCol[c],                          \
                           tid + c * WG < B_CHUNKS && bRow[c] < bRows, int(bCols) - int(bCol[c]), rb0[c], rb1[c]); \
        }
#include "coopmat_tile_loop.glsl"
    }
}
