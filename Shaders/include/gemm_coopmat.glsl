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
#include "gemm_constants.glsl"
// 1: the operand's contiguous length (K for A, M for Aᵀ; N for B, K for Bᵀ) is a multiple of 8 and its
// address (and so every batch's) is aligned to min(16, 8 * element size) bytes: chunks are vector loads.
layout(constant_id = 17) const uint VEC_A = 0;
layout(constant_id = 18) const uint VEC_B = 0;

#include "gemm_push.glsl"

#include "coopmat_tile.glsl"

#include "half_staging.glsl"

#include "gemm_epilogue.glsl"

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
