// Tiled attention on tensor cores (16x16x16 cooperative matrices, fp16 operands, fp32 accumulation; through
// include/coopmat.glsl: VK_NV_cooperative_matrix, or emulated for testing without tensor cores):
//   out[b, i, h, :] = softmax_j(scale · q[b, i, h, :] · k[b, j, h, :], j < kvLen) · v[b, j, h, :]
// with the same layouts, push constants and grid as attention.comp (FlashAttention-2 style, online softmax).
//
// A workgroup owns BR = 16·SG query rows of one (batch, head); each of its SG subgroups owns 16 of them and
// keeps their Q (pre-multiplied by scale·log2(e), rounded to fp16) as HD/16 matrix fragments in registers,
// and their output O as HD/16 fp32 accumulator fragments. Per block of BC keys:
//   1. the workgroup stages K [BC × HD] as fp16 in shared memory;
//   2. each subgroup computes S = Q·Kᵀ (16 × BC, fp32) and stores it to its shared scratch;
//   3. softmax, two lanes per row (fp32, exp2): new row max, α = exp2(m_old − m_new), P = exp2(S − m_new) as
//      fp16 into shared memory, row sum l = l·α + Σ P; keys at or beyond kvLen are masked;
//   4. O *= α per row (the accumulator's element → row map is read once from a matrix loaded from a table of
//      row numbers, so no driver-specific fragment layout is assumed);
//   5. the workgroup stages V [BC × HD] as fp16 (aliasing K), and each subgroup accumulates O += P·V.
// At the end O / l is stored in out's dtype. Statistics and accumulation are fp32; q, k, v and P are
// rounded to fp16 (inputs above 65504 in magnitude overflow: this variant is for 16-bit inputs or a
// caller that asked for fp16 compute).
//
// Requires subgroup size 32, subgroup shuffles and a 16x16x16 f16 × f16 → f32 subgroup-scope shape
// (checked by the host); HD a multiple of 16. Every cooperative-matrix operation and subgroup sync is reached
// by the whole workgroup (what the emulation needs).
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_extensions.glsl"
#include "common.glsl"

layout(local_size_x_id = 0) in;
#define CM_EMU_LAYOUT_ID 11
#include "coopmat.glsl"

#include "attention_coopmat_params.glsl"
const uint LDS = BC + 4u;              // row stride (floats) of a subgroup's score scratch
const uint LDP = BC + 8u;              // row stride (halves) of a subgroup's probabilities
const uint TILE_ROWS = BR > BC ? BR : BC;
const uint HALF = BC / 2u;             // keys per lane in the softmax (two lanes per row)

shared float16_t tile[TILE_ROWS * LDT]; // Q at the start, then K and V of each block
shared float Ss[SG * 16u * LDS];        // per subgroup: 16 rows of scores; also the output scratch
shared float16_t Ps[SG * 16u * LDP];    // per subgroup: 16 rows of probabilities
shared float rowScale[SG * 16u];        // per subgroup: α of each row, then 1 / l at the end
shared float rowIds[256];               // element (r, c) = r: the accumulator's element → row map

#include "attention_staging.glsl"

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint sg = CM_SG, lane = CM_LANE;
    const uint h = gl_WorkGroupID.y;
    const uint Lq = p.Lq, kvLen = p.kvLen;
    const uint queryBlocks = min((Lq + BR - 1u) / BR, p.qbEnd);   // this dispatch: blocks qbBegin ..< queryBlocks
    // Softmax lanes: row `sr` of this subgroup, keys [half·HALF, (half+1)·HALF) of the block.
    const uint sr = lane >> 1, half_ = lane & 1u;

    for (uint i = tid; i < 256u; i += WG) rowIds[i] = float(i / 16u);
    barrier();
    CM_F32 rowMap;
    CM_LOAD(rowMap, rowIds, 0, 16, false);

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
            float m = NEG, l = 0.0;   // running max and sum of row `sr` (both lanes of a row hold them)

            for (uint k0 = 0; k0 < kvLen; k0 += BC) {
                const uint keys = min(BC, kvLen - k0);
                // 1. K of the block.
                barrier();
                stage(kHead, K_DT, VEC_K != 0u, p.ksL, k0, keys, BC, false, 1.0, 0u);
                barrier();

                // 2. S = Q·Kᵀ into this subgroup's scratch.
                CM_UNROLL for (uint c = 0; c < FC; c++) {
                    CM_F32 s = CM_F32_ZERO;
                    CM_UNROLL for (uint f = 0; f < FD; f++) {
                        CM_F16B kf;
                        CM_LOAD(kf, tile, c * 16u * LDT + f * 16u, LDT, true);   // Kᵀ: (d, key) at key·LDT + d
                        s = cm_mma(qf[f], kf, s);
                    }
                    CM_STORE(s, Ss, sg * 16u * LDS + c * 16u, LDS, false);
                }
                CM_SUBGROUP_SYNC();

                // 3. Online softmax of the block, two lanes per row.
                const uint sBase = (sg * 16u + sr) * LDS + half_ * HALF;
                float mx = NEG;
                [[unroll]] for (uint j = 0; j < HALF; j++) {
                    float x = half_ * HALF + j < keys ? Ss[sBase + j] : NEG;
                    mx = max(mx, x);
                }
                mx = max(mx, cm_shuffle_xor(mx, 1u));
                const float mNew = max(m, mx);
                const float alpha = exp2(m - mNew);
                const uint pBase = (sg * 16u + sr) * LDP + half_ * HALF;
                float sum = 0.0;
                [[unroll]] for (uint j = 0; j < HALF; j++) {
                    float e = half_ * HALF + j < keys ? exp2(Ss[sBase + j] - mNew) : 0.0;
                    sum += e;
                    Ps[pBase + j] = float16_t(e);
                }
                sum += cm_shuffle_xor(sum, 1u);
                l = l * alpha + sum;
                m = mNew;
                if (half_ == 0u) rowScale[sg * 16u + sr] = alpha;
                CM_SUBGROUP_SYNC();

                // 4. O *= α per row.
                CM_UNROLL for (uint f = 0; f < FD; f++)
                    for (uint i = 0; i < O[f].length(); i++) O[f][i] *= rowScale[sg * 16u + uint(rowMap[i])];

                // 5. V of the block (over K: every subgroup must be done with K), then O += P·V.
                barrier();
                stage(vHead, V_DT, VEC_V != 0u, p.vsL, k0, keys, BC, false, 1.0, 0u);
                barrier();
                CM_UNROLL for (uint c = 0; c < FC; c++) {
                    CM_F16A pf;
                    CM_LOAD(pf, Ps, sg * 16u * LDP + c * 16u, LDP, false);
                    CM_UNROLL for (uint f = 0; f < FD; f++) {
                        CM_F16B vf;
                        CM_LOAD(vf, tile, c * 16u * LDT + f * 16u, LDT, false);
                        O[f] = cm_mma(pf, vf, O[f]);
                    }
                }
            }

            // out = O / l, through this subgroup's scratch, 16 × 16 at a time.
            if (half_ == 0u) rowScale[sg * 16u + sr] = 1.0 / l;
            CM_SUBGROUP_SYNC();
            CM_UNROLL for (uint f = 0; f < FD; f++) {
                for (uint i = 0; i < O[f].length(); i++) O[f][i] *= rowScale[sg * 16u + uint(rowMap[i])];
                CM_STORE(O[f], Ss, sg * 16u * LDS, LDS, false);
                CM_SUBGROUP_SYNC();
                for (uint e = lane; e < 256u; e += 32u) {
                    uint r = e / 16u, d = f * 16u + e % 16u, row = q0 + sg * 16u + r;
                    if (row < Lq) store_elem(p.o, O_DT, ((b * Lq + row) * p.H + h) * HD + d, Ss[sg * 16u * LDS + r * LDS + e % 16u]);
                }
                CM_SUBGROUP_SYNC();
            }
        }
    }
}
