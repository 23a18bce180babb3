#version 450
// Tensor-core GEMM through VK_NV_cooperative_matrix (16x16x16, fp16 operands, fp32 accumulation), with
// the same operands, layouts, push constants and epilogue as gemm.comp:
//   out[z] = act(alpha * op(A[z]) * op(B[z]) (* scale) + bias) (+ residual[z]).
// Each workgroup computes a BM x BN tile with (BM/WM) x (BN/WN) subgroups of 32 invocations; each subgroup
// owns WM x WN outputs as (WM/16) x (WN/16) accumulator fragments. K is walked in BK-wide slices staged
// into shared memory as fp16 (f32 and bf16 operands are rounded to fp16; fp8 weights decode exactly).
// The epilogue stores each fragment to a per-subgroup shared scratch and applies bias, activation,
// residual and the output conversion element by element.
// Requires subgroup size 32 and a 16x16x16 f16 x f16 -> f32 subgroup-scope shape (checked by the host).
#extension GL_GOOGLE_include_directive : enable
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"

layout(local_size_x_id = 5) in;

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

const uint SUBGROUPS = (BM / WM) * (BN / WN);
const uint WG = SUBGROUPS * 32u;
const uint FM = WM / 16u;
const uint FN = WN / 16u;
const uint LDA = BK + 8u;   // padded rows (in elements) against bank conflicts
const uint LDB = BN + 8u;

shared float16_t As[BM * LDA];
shared float16_t Bs[BK * LDB];
shared float Cs[SUBGROUPS * 256u];

uint dt_size(uint dt) { return dt == DT_F32 ? 4u : (dt == DT_F16 || dt == DT_BF16) ? 2u : 1u; }

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

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint wm = sg / (BN / WN), wn = sg % (BN / WN);
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    uint M = p.M, N = p.N, K = p.K;

    for (uint z = gl_WorkGroupID.z; z < p.batch; z += gl_NumWorkGroups.z) {
        uint64_t aBase = p.a + uint64_t(z) * uint64_t(p.strideA) * uint64_t(dt_size(A_DT));
        uint64_t bBase = p.b + uint64_t(z) * uint64_t(p.strideB) * uint64_t(dt_size(B_DT));

        fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[FM * FN];
        [[unroll]] for (uint f = 0; f < FM * FN; f++) acc[f] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);

        for (uint k0 = 0; k0 < K; k0 += BK) {
            // Stage A [BM x BK] and B [BK x BN] as fp16; consecutive invocations read consecutive
            // addresses of the operand's contiguous dimension.
            for (uint i = tid; i < BM * BK; i += WG) {
                uint m, k;
                if (TRANS_A == 0u) { m = i / BK; k = i % BK; } else { k = i / BM; m = i % BM; }
                float v = 0.0;
                if (m0 + m < M && k0 + k < K)
                    v = load_elem(aBase, A_DT, TRANS_A == 0u ? (m0 + m) * K + k0 + k : (k0 + k) * M + m0 + m);
                As[m * LDA + k] = float16_t(v);
            }
            for (uint i = tid; i < BK * BN; i += WG) {
                uint k, n;
                if (TRANS_B == 0u) { k = i / BN; n = i % BN; } else { n = i / BK; k = i % BK; }
                float v = 0.0;
                if (n0 + n < N && k0 + k < K)
                    v = load_elem(bBase, B_DT, TRANS_B == 0u ? (k0 + k) * N + n0 + n : (n0 + n) * K + k0 + k);
                Bs[k * LDB + n] = float16_t(v);
            }
            barrier();
            [[unroll]] for (uint kk = 0; kk < BK; kk += 16u) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> af[FM];
                fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> bf[FN];
                [[unroll]] for (uint i = 0; i < FM; i++) coopMatLoadNV(af[i], As, (wm * WM + i * 16u) * LDA + kk, LDA, false);
                [[unroll]] for (uint j = 0; j < FN; j++) coopMatLoadNV(bf[j], Bs, kk * LDB + wn * WN + j * 16u, LDB, false);
                [[unroll]] for (uint i = 0; i < FM; i++)
                [[unroll]] for (uint j = 0; j < FN; j++)
                    acc[i * FN + j] = coopMatMulAddNV(af[i], bf[j], acc[i * FN + j]);
            }
            barrier();
        }

        // Epilogue, one fragment at a time through this subgroup's 16x16 scratch.
        uint64_t outBase = p.out_ + uint64_t(z) * uint64_t(p.strideOut) * uint64_t(dt_size(OUT_DT));
        uint64_t resBase = p.res + uint64_t(z) * uint64_t(p.strideOut) * uint64_t(dt_size(RES_DT));
        [[unroll]] for (uint i = 0; i < FM; i++) {
            [[unroll]] for (uint j = 0; j < FN; j++) {
                coopMatStoreNV(acc[i * FN + j], Cs, sg * 256u, 16u, false);
                subgroupMemoryBarrierShared();
                subgroupBarrier();
                for (uint e = lane; e < 256u; e += 32u) {
                    uint m = m0 + wm * WM + i * 16u + e / 16u;
                    uint n = n0 + wn * WN + j * 16u + e % 16u;
                    if (m < M && n < N) {
                        float s = p.alpha;
                        if (SCALE == 1u) s *= F32Ref(p.scale).v[0];
                        if (SCALE == 2u) s *= F32Ref(p.scale).v[n];
                        float v = Cs[sg * 256u + e] * s;
                        if (HAS_BIAS != 0u) v += load_elem(p.bias, BIAS_DT, n);
                        v = activate(v);
                        uint o = m * N + n;
                        if (HAS_RES != 0u) v += load_elem(resBase, RES_DT, o);
                        store_elem(outBase, OUT_DT, o, v);
                    }
                }
                subgroupMemoryBarrierShared();
                subgroupBarrier();
            }
        }
    }
}
