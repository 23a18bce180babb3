// Tiled attention on tensor cores with the softmax in registers ("rs"): the same problem, layouts, push
// constants, grid and tiles as attention_coopmat.glsl, with less shared-memory traffic and half its barriers.
//
// A workgroup owns BR = 16·SG query rows of one (batch, head); each subgroup owns 16 of them, keeps their Q
// (times scale·log2(e), fp16) as HD/16 fragments and their output O as HD/16 fp32 accumulators. Per block of
// BC keys:
//   1. the workgroup stages K and V of the block together as fp16 (one barrier before, one after);
//   2. each subgroup computes S = Q·Kᵀ into BC/16 accumulators and keeps them in registers;
//   3. keys at or beyond kvLen get −∞ (each element's column comes from a fragment loaded from a table of
//      column numbers, so no layout is assumed for it);
//   4. the row maxima are reduced in registers: this relies on NVIDIA's mma layout of the accumulator, where
//      lane l holds rows l/4 (elements 0, 1, 4, 5) and l/4 + 8 (elements 2, 3, 6, 7; element bit ROW_BIT = 1
//      picks the row, another bit where the driver orders the elements otherwise) and the four lanes of a row
//      are l ^ 1, l ^ 2: two shuffles per row. The host runs this shader only where a probe found those rows
//      (coopmat_layout.comp), or on the emulation's NVIDIA layouts;
//   5. P = exp2(S − m) in place, α = exp2(m_old − m_new), O *= α per row; each lane keeps a partial row sum
//      (its own columns) scaled by the same α, reduced across the four lanes only at the end;
//   6. P is rounded to fp16 fragments in registers (an element-wise conversion: the driver keeps each
//      element's position) and O += P·V.
// At the end O / l goes straight from the accumulators to out (rows and columns from the tables).
// Requires what attention_coopmat.glsl requires; NV cooperative matrices or the emulation only (KHR matrices
// cannot turn an accumulator into an A operand).
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_extensions.glsl"
#include "common.glsl"

layout(local_size_x_id = 0) in;
#define CM_EMU_LAYOUT_ID 12
#include "coopmat.glsl"

#include "attention_coopmat_params.glsl"
// The element bit that picks a lane's lower row (l/4 + 8): 1 in NVIDIA's mma order; the host passes what the
// layout probe found.
layout(constant_id = 11) const uint ROW_BIT = 1;
const uint STAGE_ROWS = BR > 2u * BC ? BR : 2u * BC;

shared float16_t tile[STAGE_ROWS * LDT]; // Q at the start; then K (rows 0 .. BC) and V (rows BC .. 2·BC) of each block
shared float ids[512];                   // element (r, c) = r, then element (r, c) = c: the fragment's row and column maps

#include "attention_staging.glsl"

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint sg = CM_SG;
    const uint h = gl_WorkGroupID.y;
    const uint Lq = p.Lq, kvLen = p.kvLen;
    const uint queryBlocks = min((Lq + BR - 1u) / BR, p.qbEnd);   // this dispatch: blocks qbBegin ..< queryBlocks

    for (uint i = tid; i < 256u; i += WG) {
        ids[i] = float(i / 16u);
        ids[256u + i] = float(i % 16u);
    }
    barrier();
    CM_F32 rowMap, colMap;
    CM_LOAD(rowMap, ids, 0, 16, false);
    CM_LOAD(colMap, ids, 256, 16, false);

    for (uint z = gl_WorkGroupID.z; z < p.batchCount; z += gl_NumWorkGroups.z) {
        const uint b = p.batch0 + z;
        const uint64_t qHead = head_base(p.q, b, h, p.qsB, p.qsH, Q_DT);
        const uint64_t kHead = head_base(p.k, b, h, p.ksB, p.ksH, K_DT);
        const uint64_t vHead = head_base(p.v, b, h, p.vsB, p.vsH, V_DT);

        for (uint qb = p.qbBegin + gl_WorkGroupID.x; qb < queryBlocks; qb += gl_NumWorkGroups.x) {
            const uint q0 = qb * BR;

            // Q of this subgroup's rows into registers.
            CM_F16A qf[FD];
            LOAD_Q_FRAGMENTS(qf, qHead, q0)

            CM_F32 O[FD];
            CM_UNROLL for (uint f = 0; f < FD; f++) O[f] = CM_F32_ZERO;
            // Running maxima of this lane's two rows (element bit ROW_BIT clear: the upper row, set: the lower one),
            // and this lane's partial sums of their probabilities.
            float m0 = NEG, m1 = NEG, l0 = 0.0, l1 = 0.0;

            for (uint k0 = 0; k0 < kvLen; k0 += BC) {
                const uint keys = min(BC, kvLen - k0);
                // 1. K and V of the block.
                barrier();
                stage(kHead, K_DT, VEC_K != 0u, p.ksL, k0, keys, BC, false, 1.0, 0u);
                stage(vHead, V_DT, VEC_V != 0u, p.vsL, k0, keys, BC, false, 1.0, BC);
                barrier();

                // 2. S = Q·Kᵀ in registers.
                CM_F32 S[FC];
                CM_UNROLL for (uint c = 0; c < FC; c++) {
                    S[c] = CM_F32_ZERO;
                    CM_UNROLL for (uint f = 0; f < FD; f++) {
                        CM_F16B kf;
                        CM_LOAD(kf, tile, c * 16u * LDT + f * 16u, LDT, true);   // Kᵀ: (d, key) at key·LDT + d
                        S[c] = cm_mma(qf[f], kf, S[c]);
                    }
                }

                // 3. Masked keys (only in a block that runs past kvLen).
                if (keys < BC) {
                    CM_UNROLL for (uint c = 0; c < FC; c++)
                        [[unroll]] for (uint i = 0; i < 8u; i++)
                            if (c * 16u + uint(colMap[i]) >= keys) S[c][i] = NEG;
                }

                // 4. Row maxima: this lane's elements, then the four lanes of each row.
                float x0 = NEG, x1 = NEG;
                CM_UNROLL for (uint c = 0; c < FC; c++)
                    [[unroll]] for (uint i = 0; i < 8u; i++) {
                        if (((i >> ROW_BIT) & 1u) == 0u) x0 = max(x0, S[c][i]);
                        else x1 = max(x1, S[c][i]);
                    }
                x0 = max(x0, cm_shuffle_xor(x0, 1u));
                x1 = max(x1, cm_shuffle_xor(x1, 1u));
                x0 = max(x0, cm_shuffle_xor(x0, 2u));
                x1 = max(x1, cm_shuffle_xor(x1, 2u));
                const float n0 = max(m0, x0), n1 = max(m1, x1);
                const float a0 = exp2(m0 - n0), a1 = exp2(m1 - n1);
                m0 = n0;
                m1 = n1;

                // 5. P = exp2(S − m) in place, partial sums, O *= α.
                float s0 = 0.0, s1 = 0.0;
                CM_UNROLL for (uint c = 0; c < FC; c++)
                    [[unroll]] for (uint i = 0; i < 8u; i++) {
                        if (((i >> ROW_BIT) & 1u) == 0u) {
                            S[c][i] = exp2(S[c][i] - m0);
                            s0 += S[c][i];
                        } else {
                            S[c][i] = exp2(S[c][i] - m1);
                            s1 += S[c][i];
                        }
                    }
                l0 = l0 * a0 + s0;
                l1 = l1 * a1 + s1;
                CM_UNROLL for (uint f = 0; f < FD; f++)
                    [[unroll]] for (uint i = 0; i < 8u; i++) O[f][i] *= ((i >> ROW_BIT) & 1u) == 0u ? a0 : a1;

                // 6. O += P·V, P rounded to fp16 in registers.
                CM_UNROLL for (uint c = 0; c < FC; c++) {
                    CM_F16A pf = cm_to_f16(S[c]);
                    CM_UNROLL for (uint f = 0; f < FD; f++) {
                        CM_F16B vf;
                        CM_LOAD(vf, tile, (BC + c * 16u) * LDT + f * 16u, LDT, false);
                        O[f] = cm_mma(pf, vf, O[f]);
                    }
                }
            }

            // out = O / l, from the accumulators (row sums reduced across the four lanes of each row first).
            l0 += cm_shuffle_xor(l0, 1u);
            l1 += cm_shuffle_xor(l1, 1u);
            l0 += cm_shuffle_xor(l0, 2u);
            l1 += cm_shuffle_xor(l1, 2u);
            const float inv0 = 1.0 / l0, inv1 = 1.0 / l1;
            CM_UNROLL for (uint f = 0; f < FD; f++)
                [[unroll]] for (uint i = 0; i < 8u; i++) {
                    uint row = q0 + sg * 16u + uint(rowMap[i]);
                    if (row < Lq)
                        store_elem(p.o, O_DT, ((b * Lq + row) * p.H + h) * HD + f * 16u + uint(colMap[i]),
                                   O[f][i] * (((i >> ROW_BIT) & 1u) == 0u ? inv0 : inv1));
                }
        }
    }
}
