// The GEMM of gemm.comp and gemm_coopmat.comp on VK_NV_cooperative_matrix2: one workgroup-scope cooperative matrix
// per operand tile, loaded straight from memory through tensor layouts (the driver stages them through shared memory
// and picks the MMA instructions and their schedule; no staging code here), with the same operands, push constants
// and epilogue:
//   out[z] = act(alpha * op(A[z]) * op(B[z]) (* scale) + bias) (+ residual[z]).
// A workgroup computes a BM x BN tile in BK-wide K slices: fp16 operand tiles (f16 loaded as is; f32 and bf16
// converted to fp16 by decode functions while loading, fp8 weights decoded exactly), fp32 accumulation. Edges need
// no code: the layouts clamp to zero outside the operands (M, N and K tails contribute nothing) and drop stores
// outside the output; slices entirely inside the operands load through unclamped layouts (cheaper, as llama.cpp's
// coopmat2 GEMM found). Transposed operands are loaded through a permuting tensor view. The epilogue runs per element
// (coopMatPerElementNV: scale, bias, activation), adds the residual loaded as a matrix, and stores f32 or f16.
// Natively (gemm_cm2.comp) it needs glslang 15 (an optional build, Benchmarks/glslang-newer.sh) and a device with
// VK_NV_cooperative_matrix2 (workgroup scope, flexible dimensions, per-element operations, tensor addressing); the
// host checks 16-byte aligned operand bases and batch strides and a workgroup size the driver lists for fp16 x fp16
// -> fp32 at workgroup scope. gemm_cm2_emulated.comp runs the same code on emulated matrices (include/cm2.glsl).
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
#define CM_UNROLL [[unroll]]
#include "half_staging.glsl"

layout(local_size_x_id = 5) in;

layout(constant_id = 0) const uint BM = 128;
layout(constant_id = 1) const uint BN = 128;
layout(constant_id = 2) const uint BK = 32;
// constants 3 and 4 (gemm_coopmat's subgroup tile) are not used; 5 is the workgroup size
#include "gemm_constants.glsl"

#include "gemm_push.glsl"

#include "gemm_epilogue.glsl"

#define CM2_EMU_A_SIZE (BM * BK)
#define CM2_EMU_B_SIZE (BK * BN)
#include "cm2.glsl"
#include "cm2_output.glsl"

// FP8 weights decoded to fp16 (exactly; the layouts' block size is 1: each call gets one element).
float16_t from_e4m3(const in U8Elem e, const in uint block[2], const in uint inBlock[2]) {
    return uint16BitsToFloat16(uint16_t(e4m3x4_to_f16(uvec4(uint(e.v))).x));
}
float16_t from_e5m2(const in U8Elem e, const in uint block[2], const in uint inBlock[2]) {
    return uint16BitsToFloat16(uint16_t(uint(e.v) << 8));
}

// Scale, bias and activation of the accumulated value v at (r, c) of the tile whose first column is n0.
float tile_output(const in uint r, const in uint c, const in float v, const in uint n0) {
    uint col = n0 + c;
    if (col >= p.N) return 0.0;   // outside the output: dropped by the store
    float s = p.alpha;
    if (SCALE == 1u) s *= F32Ref(p.scale).v[0];
    if (SCALE == 2u) s *= F32Ref(p.scale).v[col];
    float x = v * s;
    if (HAS_BIAS != 0u) x += load_elem(p.bias, BIAS_DT, col);
    return activate(x);
}

const uint UNROLL_SLICES = 4u;

// One K slice at k0 into acc, its operand tiles loaded by LOAD / LOAD_DECODE (clamped or inside, include/cm2.glsl).
// A's tile: rows m0.., columns k0.. (of the stored K x M when transposed: rows k0.., columns m0..); B's likewise.
#define GEMM_CM2_SLICE(LOAD, LOAD_DECODE)                                                                                          \
    do {                                                                                                                            \
        CM2_A(BM, BK) ma;                                                                                                          \
        CM2_B(BK, BN) mb;                                                                                                          \
        uint ar0 = ta ? k0 : m0, ac0 = ta ? m0 : k0;                                                                               \
        if (A_DT == DT_F16) LOAD(ma, BM, BK, float16_t, Cm2F16, aBase, aRows, aCols, aCols, ar0, ac0, ta);                         \
        else if (A_DT == DT_F32) LOAD_DECODE(ma, BM, BK, float16_t, aBase, aRows, aCols, aCols, ar0, ac0, ta, from_f32, F32Elem, 4u); \
        else LOAD_DECODE(ma, BM, BK, float16_t, aBase, aRows, aCols, aCols, ar0, ac0, ta, from_bf16, U16Elem, 2u);                 \
        uint br0 = tb ? n0 : k0, bc0 = tb ? k0 : n0;                                                                               \
        if (B_DT == DT_F16) LOAD(mb, BK, BN, float16_t, Cm2F16, bBase, bRows, bCols, bCols, br0, bc0, tb);                         \
        else if (B_DT == DT_F32) LOAD_DECODE(mb, BK, BN, float16_t, bBase, bRows, bCols, bCols, br0, bc0, tb, from_f32, F32Elem, 4u); \
        else if (B_DT == DT_BF16) LOAD_DECODE(mb, BK, BN, float16_t, bBase, bRows, bCols, bCols, br0, bc0, tb, from_bf16, U16Elem, 2u); \
        else if (B_DT == DT_F8E4M3) LOAD_DECODE(mb, BK, BN, float16_t, bBase, bRows, bCols, bCols, br0, bc0, tb, from_e4m3, U8Elem, 1u); \
        else LOAD_DECODE(mb, BK, BN, float16_t, bBase, bRows, bCols, bCols, br0, bc0, tb, from_e5m2, U8Elem, 1u);                  \
        CM2_MULADD(acc, ma, mb, BM, BK, BN);                                                                                       \
    } while (false)

void main() {
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    uint M = p.M, N = p.N, K = p.K;
    // The operands in their stored layouts: A is M x K (K x M when transposed), B K x N (N x K when transposed).
    const bool ta = TRANS_A != 0u, tb = TRANS_B != 0u;
    uint aRows = ta ? K : M, aCols = ta ? M : K, bRows = tb ? N : K, bCols = tb ? K : N;

    for (uint z = gl_WorkGroupID.z; z < p.batch; z += gl_NumWorkGroups.z) {
        uint64_t aBase = p.a + uint64_t(z) * uint64_t(p.strideA) * uint64_t(dt_size(A_DT));
        uint64_t bBase = p.b + uint64_t(z) * uint64_t(p.strideB) * uint64_t(dt_size(B_DT));
        uint64_t outBase = p.out_ + uint64_t(z) * uint64_t(p.strideOut) * uint64_t(dt_size(OUT_DT));
        uint64_t resBase = p.res + uint64_t(z) * uint64_t(p.strideOut) * uint64_t(dt_size(RES_DT));

        CM2_ACC(BM, BN) acc;
        CM2_ACC_FILL(acc, BM, BN, 0.0);
        // Slices entirely inside both operands (every K slice but a tail, where the tile lies inside M and N) load
        // without clamping, the cheaper load; the rest clamp.
        // The inside slices go UNROLL_SLICES at a time through an unrolled loop (the compiler sees the next slices' loads
        // beside the current product, as llama.cpp's coopmat2 GEMM arranges it).
        uint kInside = m0 + BM <= M && n0 + BN <= N ? K - K % BK : 0u;
        uint kUnrolled = kInside - kInside % (UNROLL_SLICES * BK);
        uint k0 = 0u;
        while (k0 < kUnrolled) {
            [[unroll]] for (uint u = 0u; u < UNROLL_SLICES; u++, k0 += BK) GEMM_CM2_SLICE(CM2_LOAD_INSIDE, CM2_LOAD_DECODE_INSIDE);
        }
        for (; k0 < kInside; k0 += BK) GEMM_CM2_SLICE(CM2_LOAD_INSIDE, CM2_LOAD_DECODE_INSIDE);
        for (; k0 < K; k0 += BK) GEMM_CM2_SLICE(CM2_LOAD, CM2_LOAD_DECODE);

        CM2_PER_ELEMENT(acc, acc, BM, BN, tile_output, n0);
        CM2_RESIDUAL_STORE(acc, BM, BN, resBase, outBase, M, N, m0, n0);   // bf16 outputs use the other GEMMs
    }
}
