// Tiled flash attention on workgroup-scope cooperative matrices (VK_NV_cooperative_matrix2 natively,
// attention_cm2.comp; emulated on any device, attention_cm2_emulated.comp: include/cm2.glsl), with the layouts,
// push constants and grid of attention.comp:
//   out[b, i, h, :] = softmax_j(scale · q[b, i, h, :] · k[b, j, h, :], j < kvLen) · v[b, j, h, :]
// A workgroup owns BR query rows of one (batch, head); their Q (BR × HD) is loaded once as an fp16 operand (f16 as
// is, f32 and bf16 rounded while loading). Per block of BC keys (FlashAttention-2's online softmax, base 2):
//   S = Q·Kᵀ in fp32 (K through a transposed view of its rows; rows at or past kvLen load as zeros: the last block
//   clamps, blocks inside kvLen load unclamped);
//   per element: S · scale·log2(e), keys at or past kvLen set to NEG (masked);
//   M' = max(M, row max of S); P = exp2(S − M'); α = exp2(M − M'); L = α·L + row sum of P; O = α·O + P·V
//   (P rounded to fp16, V an fp16 operand of the block's rows, zeros past kvLen).
// M, L and α are BR × BC matrices whose columns all hold their row's value (what a row reduction yields); α and
// finally L are spread over BR × HD by another row reduction. O / L is stored as f32 or f16, dropping rows past
// Lq (the store's clamp). Statistics and accumulation are fp32.
// The host checks what the tensor layouts need: 16-byte aligned bases of every (batch, head) and of the output's
// rows, row strides of at least HD; BR, BC and HD multiples of the device's granularities; a workgroup size the
// device lists for fp16 × fp16 → fp32 at workgroup scope.
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(constant_id = 1) const uint BR = 64;     // query rows per workgroup
layout(constant_id = 2) const uint BC = 64;     // keys per block
layout(constant_id = 3) const uint HD = 128;    // head dim
layout(constant_id = 4) const uint Q_DT = 1;
layout(constant_id = 5) const uint K_DT = 1;
layout(constant_id = 6) const uint V_DT = 1;
layout(constant_id = 7) const uint O_DT = 0;    // f32 or f16

#include "attention_push.glsl"

const float NEG = -1.0e30;   // masked score / initial running max (exp2(NEG − m) == 0)

#define CM2_EMU_A_SIZE (BR * (HD > BC ? HD : BC))
#define CM2_EMU_B_SIZE (HD * BC)
#define CM2_EMU_R_SIZE (BR * BC)
#include "cm2.glsl"

// Per-element and reduction operations.
float score(const in uint r, const in uint c, const in float s, const in uint k0) {
    return k0 + c < p.kvLen ? s * p.qscale : NEG;
}
float max_of(const in uint r, const in uint c, const in float a, const in float b) { return max(a, b); }
float exp2_minus(const in uint r, const in uint c, const in float x, const in float m) { return exp2(x - m); }
float times(const in uint r, const in uint c, const in float a, const in float b) { return a * b; }
float over(const in uint r, const in uint c, const in float a, const in float b) { return a / b; }
float combine_max(const in float a, const in float b) { return max(a, b); }
float combine_sum(const in float a, const in float b) { return a + b; }

// The rows × HD matrix of `dt` elements at `base` (row stride `stride`), rows r0.. as an fp16 operand (R × HD), or
// transposed (HD × R) for Kᵀ, loaded by LOAD / LOAD_DECODE (include/cm2.glsl): LOAD_ROWS clamped (zero past `rows`),
// LOAD_ROWS_INSIDE unclamped (the cheaper load) for rows known to lie inside.
#define LOAD_ROWS_WITH(LOAD, LOAD_DECODE, m, R, C, dt, base, rows, stride, r0, transposed) \
    do { \
        if (dt == DT_F16) LOAD(m, R, C, float16_t, Cm2F16, base, rows, HD, stride, r0, 0u, transposed); \
        else if (dt == DT_F32) LOAD_DECODE(m, R, C, float16_t, base, rows, HD, stride, r0, 0u, transposed, from_f32, F32Elem, 4u); \
        else LOAD_DECODE(m, R, C, float16_t, base, rows, HD, stride, r0, 0u, transposed, from_bf16, U16Elem, 2u); \
    } while (false)
#define LOAD_ROWS(m, R, C, dt, base, rows, stride, r0, transposed) \
    LOAD_ROWS_WITH(CM2_LOAD, CM2_LOAD_DECODE, m, R, C, dt, base, rows, stride, r0, transposed)
#define LOAD_ROWS_INSIDE(m, R, C, dt, base, rows, stride, r0, transposed) \
    LOAD_ROWS_WITH(CM2_LOAD_INSIDE, CM2_LOAD_DECODE_INSIDE, m, R, C, dt, base, rows, stride, r0, transposed)

void main() {
    const uint h = gl_WorkGroupID.y;
    const uint Lq = p.Lq, kvLen = p.kvLen;
    const uint queryBlocks = min((Lq + BR - 1u) / BR, p.qbEnd);   // this dispatch: blocks qbBegin ..< queryBlocks
    // Row strides (a length-1 dimension has stride 0; the layouts want at least the row's length).
    const uint qStride = max(p.qsL, HD), kStride = max(p.ksL, HD), vStride = max(p.vsL, HD), oStride = p.H * HD;

    for (uint z = gl_WorkGroupID.z; z < p.batchCount; z += gl_NumWorkGroups.z) {
        const uint b = p.batch0 + z;
        const uint64_t qHead = p.q + uint64_t(b * p.qsB + h * p.qsH) * uint64_t(dt_size(Q_DT));
        const uint64_t kHead = p.k + uint64_t(b * p.ksB + h * p.ksH) * uint64_t(dt_size(K_DT));
        const uint64_t vHead = p.v + uint64_t(b * p.vsB + h * p.vsH) * uint64_t(dt_size(V_DT));
        const uint64_t oHead = p.o + uint64_t((b * Lq * p.H + h) * HD) * uint64_t(dt_size(O_DT));

        for (uint qb = p.qbBegin + gl_WorkGroupID.x; qb < queryBlocks; qb += gl_NumWorkGroups.x) {
            const uint q0 = qb * BR;
            CM2_A(BR, HD) Q;
            LOAD_ROWS(Q, BR, HD, Q_DT, qHead, Lq, qStride, q0, false);

            CM2_ACC(BR, HD) O;
            CM2_ACC_FILL(O, BR, HD, 0.0);
            CM2_ACC(BR, BC) M;
            CM2_ACC_FILL(M, BR, BC, NEG);
            CM2_ACC(BR, BC) L;
            CM2_ACC_FILL(L, BR, BC, 0.0);

            for (uint k0 = 0u; k0 < kvLen; k0 += BC) {
                // Blocks of keys inside kvLen load unclamped; the last, partial one clamps (keys past kvLen, masked,
                // read as zero: their probabilities are 0, and 0 times a value must not be NaN).
                const bool inside = k0 + BC <= kvLen;
                // S = Q·Kᵀ, scaled and masked.
                CM2_B(HD, BC) Kt;
                if (inside) LOAD_ROWS_INSIDE(Kt, HD, BC, K_DT, kHead, kvLen, kStride, k0, true);
                else LOAD_ROWS(Kt, HD, BC, K_DT, kHead, kvLen, kStride, k0, true);
                CM2_ACC(BR, BC) S;
                CM2_ACC_FILL(S, BR, BC, 0.0);
                CM2_MULADD(S, Q, Kt, BR, HD, BC);
                CM2_PER_ELEMENT(S, S, BR, BC, score, k0);

                // Online softmax: new row maxima, probabilities, the old statistics' decay.
                CM2_ACC(BR, BC) rowMax;
                CM2_REDUCE_ROWS(rowMax, BC, S, BR, BC, combine_max);
                CM2_ACC(BR, BC) newM;
                CM2_PER_ELEMENT_M(newM, M, BR, BC, max_of, rowMax);
                CM2_ACC(BR, BC) P;
                CM2_PER_ELEMENT_M(P, S, BR, BC, exp2_minus, newM);
                CM2_ACC(BR, BC) alpha;
                CM2_PER_ELEMENT_M(alpha, M, BR, BC, exp2_minus, newM);
                CM2_COPY(M, newM);
                CM2_ACC(BR, BC) rowSum;
                CM2_REDUCE_ROWS(rowSum, BC, P, BR, BC, combine_sum);
                CM2_PER_ELEMENT_M(L, L, BR, BC, times, alpha);
                CM2_ADD(L, rowSum);

                // O = α·O + P·V.
                CM2_ACC(BR, HD) alphaO;
                CM2_REDUCE_ROWS(alphaO, HD, alpha, BR, BC, combine_max);
                CM2_PER_ELEMENT_M(O, O, BR, HD, times, alphaO);
                CM2_A(BR, BC) P16;
                CM2_CONVERT(P16, CM2_A(BR, BC), P, BR, BC, float16_t);
                CM2_B(BC, HD) V;
                if (inside) LOAD_ROWS_INSIDE(V, BC, HD, V_DT, vHead, kvLen, vStride, k0, false);
                else LOAD_ROWS(V, BC, HD, V_DT, vHead, kvLen, vStride, k0, false);
                CM2_MULADD(O, P16, V, BR, BC, HD);
            }

            // out = O / L.
            CM2_ACC(BR, HD) LO;
            CM2_REDUCE_ROWS(LO, HD, L, BR, BC, combine_max);
            CM2_PER_ELEMENT_M(O, O, BR, HD, over, LO);
            if (O_DT == DT_F32) {
                CM2_STORE(O, BR, HD, Cm2F32, oHead, Lq, HD, oStride, q0, 0u);
            } else {
                CM2_ACC16(BR, HD) O16;
                CM2_CONVERT(O16, CM2_ACC16(BR, HD), O, BR, HD, float16_t);
                CM2_STORE(O16, BR, HD, Cm2F16, oHead, Lq, HD, oStride, q0, 0u);
            }
        }
    }
}
