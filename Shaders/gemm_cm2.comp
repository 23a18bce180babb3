#version 450
// The GEMM of gemm.comp and gemm_coopmat.comp on VK_NV_cooperative_matrix2: one workgroup-scope cooperative matrix
// per operand tile, loaded straight from memory through tensor layouts (the driver stages them through shared memory
// and picks the MMA instructions and their schedule; no staging code here), with the same operands, push constants
// and epilogue:
//   out[z] = act(alpha * op(A[z]) * op(B[z]) (* scale) + bias) (+ residual[z]).
// A workgroup computes a BM x BN tile in BK-wide K slices: fp16 operand tiles (f16 loaded as is; f32 and bf16
// converted to fp16 by decode functions while loading, fp8 weights decoded exactly), fp32 accumulation. Edges need
// no code: the layouts clamp to zero outside the operands (M, N and K tails contribute nothing) and drop stores
// outside the output. Transposed operands are loaded through a permuting tensor view. The epilogue runs per element
// (coopMatPerElementNV: scale, bias, activation), adds the residual loaded as a matrix, and stores f32 or f16.
// Needs glslang 15 (an optional build, Benchmarks/glslang-newer.sh) and a device with VK_NV_cooperative_matrix2
// (workgroup scope, flexible dimensions, per-element operations, tensor addressing); the host checks 16-byte aligned
// operand bases and batch strides and a workgroup size the driver lists for fp16 x fp16 -> fp32 at workgroup scope.
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
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
layout(constant_id = 6) const uint A_DT = 1;
layout(constant_id = 7) const uint B_DT = 1;
layout(constant_id = 8) const uint OUT_DT = 0;
layout(constant_id = 9) const uint BIAS_DT = 0;
layout(constant_id = 10) const uint RES_DT = 0;
layout(constant_id = 11) const uint TRANS_A = 0;
layout(constant_id = 12) const uint TRANS_B = 0;
layout(constant_id = 13) const uint HAS_BIAS = 0;
layout(constant_id = 14) const uint HAS_RES = 0;
layout(constant_id = 15) const uint ACT = 0;     // 0 none, 1 gelu (tanh), 2 gelu (erf), 3 silu
layout(constant_id = 16) const uint SCALE = 0;   // 0 none, 1 per tensor, 2 per column n

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

#include "gemm_epilogue.glsl"

layout(buffer_reference, std430, buffer_reference_align = 16) buffer F16Tensor { float16_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer F32Tensor { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer U8Tensor { uint8_t v[]; };
// One element, as the decode functions receive it.
layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32Elem { float v; };
layout(buffer_reference, std430, buffer_reference_align = 2) buffer U16Elem { uint16_t v; };
layout(buffer_reference, std430, buffer_reference_align = 1) buffer U8Elem { uint8_t v; };

// Operand decoding to fp16 (the layouts' block size is 1: each call gets one element).
float16_t from_f32(const in F32Elem e, const in uint block[2], const in uint inBlock[2]) { return float16_t(e.v); }
float16_t from_bf16(const in U16Elem e, const in uint block[2], const in uint inBlock[2]) {
    return float16_t(uintBitsToFloat(uint(e.v) << 16));
}
float16_t from_e4m3(const in U8Elem e, const in uint block[2], const in uint inBlock[2]) {
    return uint16BitsToFloat16(uint16_t(e4m3x4_to_f16(uvec4(uint(e.v))).x));
}
float16_t from_e5m2(const in U8Elem e, const in uint block[2], const in uint inBlock[2]) {
    return uint16BitsToFloat16(uint16_t(uint(e.v) << 8));
}
// Residual decoding to fp32.
float res_from_f16(const in U16Elem e, const in uint block[2], const in uint inBlock[2]) { return f16_to_f32(uint(e.v)); }
float res_from_bf16(const in U16Elem e, const in uint block[2], const in uint inBlock[2]) {
    return uintBitsToFloat(uint(e.v) << 16);
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

#define CLAMP gl_CooperativeMatrixClampModeConstantNV

void main() {
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    uint M = p.M, N = p.N, K = p.K;
    // The operands in their stored layouts: A is M x K (K x M when transposed), B K x N (N x K when transposed).
    tensorLayoutNV<2, CLAMP> tA = createTensorLayoutNV(2, CLAMP);
    tensorLayoutNV<2, CLAMP> tB = createTensorLayoutNV(2, CLAMP);
    tensorLayoutNV<2, CLAMP> tO = createTensorLayoutNV(2, CLAMP);
    if (TRANS_A == 0u) tA = setTensorLayoutDimensionNV(tA, M, K); else tA = setTensorLayoutDimensionNV(tA, K, M);
    if (TRANS_B == 0u) tB = setTensorLayoutDimensionNV(tB, K, N); else tB = setTensorLayoutDimensionNV(tB, N, K);
    tO = setTensorLayoutDimensionNV(tO, M, N);
    tO = sliceTensorLayoutNV(tO, m0, BM, n0, BN);
    tensorViewNV<2, false, 1, 0> transposed = createTensorViewNV(2, false, 1, 0);

    for (uint z = gl_WorkGroupID.z; z < p.batch; z += gl_NumWorkGroups.z) {
        uint64_t aBase = p.a + uint64_t(z) * uint64_t(p.strideA) * uint64_t(dt_size(A_DT));
        uint64_t bBase = p.b + uint64_t(z) * uint64_t(p.strideB) * uint64_t(dt_size(B_DT));
        uint64_t outBase = p.out_ + uint64_t(z) * uint64_t(p.strideOut) * uint64_t(dt_size(OUT_DT));
        uint64_t resBase = p.res + uint64_t(z) * uint64_t(p.strideOut) * uint64_t(dt_size(RES_DT));

        coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> acc =
            coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>(0.0);
        for (uint k0 = 0u; k0 < K; k0 += BK) {
            coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA> ma;
            coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB> mb;
            if (TRANS_A == 0u) {
                tensorLayoutNV<2, CLAMP> s = sliceTensorLayoutNV(tA, m0, BM, k0, BK);
                if (A_DT == DT_F16) coopMatLoadTensorNV(ma, F16Tensor(aBase).v, 0, s);
                else if (A_DT == DT_F32) coopMatLoadTensorNV(ma, U8Tensor(aBase).v, 0, s, from_f32);
                else coopMatLoadTensorNV(ma, U8Tensor(aBase).v, 0, s, from_bf16);
            } else {
                tensorLayoutNV<2, CLAMP> s = sliceTensorLayoutNV(tA, k0, BK, m0, BM);
                if (A_DT == DT_F16) coopMatLoadTensorNV(ma, F16Tensor(aBase).v, 0, s, transposed);
                else if (A_DT == DT_F32) coopMatLoadTensorNV(ma, U8Tensor(aBase).v, 0, s, transposed, from_f32);
                else coopMatLoadTensorNV(ma, U8Tensor(aBase).v, 0, s, transposed, from_bf16);
            }
            if (TRANS_B == 0u) {
                tensorLayoutNV<2, CLAMP> s = sliceTensorLayoutNV(tB, k0, BK, n0, BN);
                if (B_DT == DT_F16) coopMatLoadTensorNV(mb, F16Tensor(bBase).v, 0, s);
                else if (B_DT == DT_F32) coopMatLoadTensorNV(mb, U8Tensor(bBase).v, 0, s, from_f32);
                else if (B_DT == DT_BF16) coopMatLoadTensorNV(mb, U8Tensor(bBase).v, 0, s, from_bf16);
                else if (B_DT == DT_F8E4M3) coopMatLoadTensorNV(mb, U8Tensor(bBase).v, 0, s, from_e4m3);
                else coopMatLoadTensorNV(mb, U8Tensor(bBase).v, 0, s, from_e5m2);
            } else {
                tensorLayoutNV<2, CLAMP> s = sliceTensorLayoutNV(tB, n0, BN, k0, BK);
                if (B_DT == DT_F16) coopMatLoadTensorNV(mb, F16Tensor(bBase).v, 0, s, transposed);
                else if (B_DT == DT_F32) coopMatLoadTensorNV(mb, U8Tensor(bBase).v, 0, s, transposed, from_f32);
                else if (B_DT == DT_BF16) coopMatLoadTensorNV(mb, U8Tensor(bBase).v, 0, s, transposed, from_bf16);
                else if (B_DT == DT_F8E4M3) coopMatLoadTensorNV(mb, U8Tensor(bBase).v, 0, s, transposed, from_e4m3);
                else coopMatLoadTensorNV(mb, U8Tensor(bBase).v, 0, s, transposed, from_e5m2);
            }
            acc = coopMatMulAdd(ma, mb, acc);
        }

        coopMatPerElementNV(acc, acc, tile_output, n0);
        if (HAS_RES != 0u) {
            coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> r;
            if (RES_DT == DT_F32) coopMatLoadTensorNV(r, F32Tensor(resBase).v, 0, tO);
            else if (RES_DT == DT_F16) coopMatLoadTensorNV(r, U8Tensor(resBase).v, 0, tO, res_from_f16);
            else coopMatLoadTensorNV(r, U8Tensor(resBase).v, 0, tO, res_from_bf16);
            acc += r;
        }
        if (OUT_DT == DT_F32) {
            coopMatStoreTensorNV(acc, F32Tensor(outBase).v, 0, tO);
        } else {   // f16 (bf16 outputs use the other GEMMs)
            coopmat<float16_t, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> h =
                coopmat<float16_t, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>(acc);
            coopMatStoreTensorNV(h, F16Tensor(outBase).v, 0, tO);
        }
    }
}
