#version 450
// Tiled attention (FlashAttention-2 style, scalar fp32 arithmetic):
//   out[b, i, h, :] = softmax_j(scale · q[b, i, h, :] · k[b, j, h, :], j < kvLen) · v[b, j, h, :]
// without materialising the Lq × Lk matrix.
//
// A workgroup owns BR query rows of one (batch, head) and walks the keys in blocks of BC:
//   phase 1  S = Q·Kᵀ (BR × BC) as a register-blocked GEMM over the head dim, staged through shared
//            memory in DK-wide slices of Q and K (double buffered; Q is pre-multiplied by
//            scale·log2(e) so that the softmax uses exp2). Each thread holds TM × TN scores.
//   softmax  Row maxima of the block are combined across the threads sharing a row (partials in
//            shared memory); P = exp2(S − m_new) is written to shared memory (key-major) and the
//            row sums' partials likewise. Keys at or beyond kvLen are masked.
//   phase 3  O = O·exp2(m_old − m_new) + P·V (BR × D), again a register-blocked GEMM over the block's
//            keys, V staged in CK-key slices (double buffered, aliasing phase 1's buffers). Each thread
//            holds TM2 rows × TN2 dims of O and keeps their running max and sum in fp32.
// At the end O / sum is stored in out's dtype. Statistics and accumulation are fp32 throughout.
//
// Layouts: q [B, Lq, H, D], k and v [B, Lk, H, D] with any element strides for B, L, H (the head dim
// is contiguous); out is dense [B, Lq, H, D]. Grid: x = query blocks, y = heads, z = batch (x and z
// loop when the grid is capped). The dispatch covers batches batch0 ..< batch0 + batchCount, all with
// the same key count kvLen (the host splits batches with different key lengths into dispatches).
//
// Key ranges: a dispatch walks keys kBegin ..< min(kEnd, kvLen) only. Unless it starts at key 0 it resumes from
// the state a previous dispatch left; unless it ends at kvLen it leaves its state instead of storing out. The
// state is fp32 per (batch, head, query row), STATE_ROW floats apart: the unnormalised O (DP floats), the running
// max, the running sum. The host splits the keys on CPU Vulkan drivers: llvmpipe ends every loop of an invocation
// once all its loops together have iterated 65535 times (LP_MAX_TGSI_LOOP_ITERATIONS), so a long key loop would
// silently stop early.
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_memory_scope_semantics : require
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(constant_id = 0) const uint WG = 128;    // threads per workgroup = (BR / TM) * (BC / TN)
layout(constant_id = 1) const uint BR = 64;     // query rows per workgroup (multiple of TM and TM2)
layout(constant_id = 2) const uint BC = 64;     // keys per block (multiple of TN and of CK)
layout(constant_id = 3) const uint HD = 128;    // head dim D
layout(constant_id = 4) const uint DK = 16;     // head-dim slice of phase 1 (multiple of 4)
layout(constant_id = 5) const uint CK = 16;     // key slice of phase 3
layout(constant_id = 6) const uint TM = 4;      // phase 1: rows per thread (multiple of 4)
layout(constant_id = 7) const uint TN = 8;      // phase 1: keys per thread (multiple of 4)
layout(constant_id = 8) const uint TM2 = 8;     // phase 3: rows per thread (multiple of 4)
layout(constant_id = 9) const uint TN2 = 8;     // phase 3: head dims per thread (multiple of 4, divides DP)
layout(constant_id = 10) const uint Q_DT = 0;
layout(constant_id = 11) const uint K_DT = 0;
layout(constant_id = 12) const uint V_DT = 0;
layout(constant_id = 13) const uint O_DT = 0;
layout(constant_id = 14) const uint VEC_Q = 0;  // 4-element vector loads allowed (D, strides, address aligned)
layout(constant_id = 15) const uint VEC_K = 0;
layout(constant_id = 16) const uint VEC_V = 0;
layout(constant_id = 17) const uint UNROLL = 1; // unroll the inner loops (GPUs; not CPU Vulkan drivers)

layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer RoF32x4 { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer RoU32x2 { uvec2 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer RoF32 { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 2) readonly buffer RoU16 { uint16_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer StateF32x4 { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer StateF32 { float v[]; };

#include "attention_push.glsl"

const float NEG = -1.0e30;          // masked score / initial running max (exp2(NEG − m) == 0)
const uint DP = (HD + 3u) / 4u * 4u; // head dim padded to a multiple of 4
const uint DP4 = DP / 4u;
const uint TX1 = BC / TN;           // phase 1: threads along keys
const uint TY1 = BR / TM;           // phase 1: threads along rows
const uint T3X = DP / TN2;          // phase 3: threads along head dims
const uint T3Y = BR / TM2;          // phase 3: threads along rows
const uint ROWQ = BR / 4u + 1u;     // padded rows of the shared tiles, in vec4
const uint ROWK = BC / 4u + 1u;
const uint ROWV = DP4 + 1u;
const uint ROWP = BR / 4u + 1u;
const uint SLICES1 = (HD + DK - 1u) / DK;
const uint GROUPS_Q = BR * (DK / 4u);
const uint GROUPS_K = BC * (DK / 4u);
const uint GROUPS_V = CK * DP4;
const uint LOADS_Q = (GROUPS_Q + WG - 1u) / WG;
const uint LOADS_K = (GROUPS_K + WG - 1u) / WG;
const uint LOADS_V = (GROUPS_V + WG - 1u) / WG;
const uint KS0 = 2u * DK * ROWQ;    // start of the K slices in `buf`
const uint BUF1 = 2u * DK * (ROWQ + ROWK);
const uint BUF3 = 2u * CK * ROWV;
const uint BUF = BUF1 > BUF3 ? BUF1 : BUF3;
const uint STATE_ROW = DP + 4u;     // floats per query row of the key-range state: O, max, sum, 2 unused

shared vec4 buf[BUF];               // phase 1: Qs[2][DK][ROWQ], Ks[2][DK][ROWK]; phase 3: Vs[2][CK][ROWV]
shared vec4 Ps[BC * ROWP];          // P of the block, key-major: Ps[key][row / 4][row % 4]
shared float redMax[TX1 * BR];      // per-thread partial row maxima of the block
shared float redSum[TX1 * BR];      // per-thread partial row sums of the block

// Elements i .. i+3 of a tensor (`valid` of them exist; the rest read as 0).
vec4 load4(uint64_t base, uint dt, bool vec, uint i, int valid) {
    if (valid >= 4) {
        if (vec) {
            if (dt == DT_F32) return RoF32x4(base).v[i >> 2];
            uvec2 w = RoU32x2(base).v[i >> 2];
            if (dt == DT_F16) return half4_to_f32(w);
            return vec4(uintBitsToFloat(w.x << 16), uintBitsToFloat(w.x & 0xffff0000u),
                        uintBitsToFloat(w.y << 16), uintBitsToFloat(w.y & 0xffff0000u));
        }
        if (dt == DT_F32) {
            RoF32 r = RoF32(base);
            return vec4(r.v[i], r.v[i + 1u], r.v[i + 2u], r.v[i + 3u]);
        }
        RoU16 h = RoU16(base);
        uvec4 w = uvec4(h.v[i], h.v[i + 1u], h.v[i + 2u], h.v[i + 3u]);
        if (dt == DT_F16)
            return f16x4_to_f32(w);
        return uintBitsToFloat(w << 16);
    }
    vec4 r = vec4(0.0);
    for (int j = 0; j < valid; j++) r[j] = load_elem(base, dt, i + uint(j));
    return r;
}

uint dt_bytes(uint dt) { return dt == DT_F32 ? 4u : 2u; }

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint tx = tid % TX1, ty = tid / TX1;           // phase 1 position
    const uint tx3 = tid % T3X, ty3 = tid / T3X;         // phase 3 position
    const bool active3 = tid < T3X * T3Y;
    const uint h = gl_WorkGroupID.y;
    const uint Lq = p.Lq, kvLen = p.kvLen;
    const uint queryBlocks = min((Lq + BR - 1u) / BR, p.qbEnd);   // this dispatch: blocks qbBegin ..< queryBlocks
    const bool resume = p.kBegin > 0u, finish = p.kEnd >= kvLen;
    const uint kStop = min(p.kEnd, kvLen);

    for (uint z = gl_WorkGroupID.z; z < p.batchCount; z += gl_NumWorkGroups.z) {
        const uint b = p.batch0 + z;
        const uint64_t qHead = p.q + uint64_t(b * p.qsB + h * p.qsH) * dt_bytes(Q_DT);
        const uint64_t kHead = p.k + uint64_t(b * p.ksB + h * p.ksH) * dt_bytes(K_DT);
        const uint64_t vHead = p.v + uint64_t(b * p.vsB + h * p.vsH) * dt_bytes(V_DT);

        for (uint qb = p.qbBegin + gl_WorkGroupID.x; qb < queryBlocks; qb += gl_NumWorkGroups.x) {
            const uint q0 = qb * BR;

            vec4 O[TM2 * (TN2 / 4u)];
            float m3[TM2], l3[TM2];   // running max and sum of the phase-3 rows
            float m1[TM];             // running max of the phase-1 rows (same values as m3 for a row)
            [[unroll]] for (uint i = 0; i < TM2 * (TN2 / 4u); i++) O[i] = vec4(0.0);
            [[unroll]] for (uint i = 0; i < TM2; i++) { m3[i] = NEG; l3[i] = 0.0; }
            [[unroll]] for (uint i = 0; i < TM; i++) m1[i] = NEG;
            // The first row of this block in the key-range state.
            const uint stateRow0 = (b * p.H + h) * Lq + q0;
            if (resume) {
                StateF32 sf = StateF32(p.state);
                if (active3) {
                    [[unroll]] for (uint c = 0; c < TM2 / 4u; c++) {
                        [[unroll]] for (uint i = 0; i < 4u; i++) {
                            uint row = (c * T3Y + ty3) * 4u + i;
                            if (q0 + row >= Lq) continue;
                            uint s = (stateRow0 + row) * STATE_ROW;
                            m3[c * 4u + i] = sf.v[s + DP];
                            l3[c * 4u + i] = sf.v[s + DP + 1u];
                            [[unroll]] for (uint e = 0; e < TN2 / 4u; e++)
                                O[(c * 4u + i) * (TN2 / 4u) + e] = StateF32x4(p.state).v[s / 4u + e * T3X + tx3];
                        }
                    }
                }
                [[unroll]] for (uint c = 0; c < TM / 4u; c++) {
                    [[unroll]] for (uint i = 0; i < 4u; i++) {
                        uint row = (c * TY1 + ty) * 4u + i;
                        if (q0 + row < Lq) m1[c * 4u + i] = sf.v[(stateRow0 + row) * STATE_ROW + DP];
                    }
                }
                // Every read of the state happens before the writes at the end (invocations share rows).
                controlBarrier(gl_ScopeWorkgroup, gl_ScopeWorkgroup, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared,
                               gl_SemanticsAcquireRelease);
            }

            for (uint k0 = p.kBegin; k0 < kStop; k0 += BC) {
                // ---------------- phase 1: S = (scale·log2e · Q) · Kᵀ ----------------
                vec4 S[TM * (TN / 4u)];
                [[unroll]] for (uint i = 0; i < TM * (TN / 4u); i++) S[i] = vec4(0.0);
                vec4 rq[LOADS_Q], rk[LOADS_K];

                // Global memory -> registers: the head-dim slice starting at d0 of the Q and K tiles.
                #define LOAD1(d0)                                                                      \
                [[unroll]] for (uint l = 0; l < LOADS_Q; l++) {                                       \
                    uint g = tid + l * WG;                                                              \
                    uint r = g / (DK / 4u), d = (d0) + (g % (DK / 4u)) * 4u;                           \
                    int valid = (g < GROUPS_Q && q0 + r < Lq && d < HD) ? min(int(HD - d), 4) : 0;     \
                    rq[l] = load4(qHead, Q_DT, VEC_Q != 0u, (q0 + r) * p.qsL + d, valid);             \
                }                                                                                       \
                [[unroll]] for (uint l = 0; l < LOADS_K; l++) {                                       \
                    uint g = tid + l * WG;                                                              \
                    uint c = g / (DK / 4u), d = (d0) + (g % (DK / 4u)) * 4u;                           \
                    int valid = (g < GROUPS_K && k0 + c < kvLen && d < HD) ? min(int(HD - d), 4) : 0;  \
                    rk[l] = load4(kHead, K_DT, VEC_K != 0u, (k0 + c) * p.ksL + d, valid);             \
                }

                // Registers -> shared buffer `sb` (transposed: dim-major, rows/keys as vec4 lanes).
                #define STORE1(sb)                                                                     \
                [[unroll]] for (uint l = 0; l < LOADS_Q; l++) {                                       \
                    uint g = tid + l * WG;                                                              \
                    if (g < GROUPS_Q) {                                                                 \
                        uint r = g / (DK / 4u), d = (g % (DK / 4u)) * 4u;                              \
                        uint s = (sb) * DK * ROWQ + d * ROWQ + r / 4u, c = r % 4u;                     \
                        vec4 x = rq[l] * p.qscale;                                                      \
                        buf[s][c] = x.x; buf[s + ROWQ][c] = x.y;                                        \
                        buf[s + 2u * ROWQ][c] = x.z; buf[s + 3u * ROWQ][c] = x.w;                       \
                    }                                                                                   \
                }                                                                                       \
                [[unroll]] for (uint l = 0; l < LOADS_K; l++) {                                       \
                    uint g = tid + l * WG;                                                              \
                    if (g < GROUPS_K) {                                                                 \
                        uint n = g / (DK / 4u), d = (g % (DK / 4u)) * 4u;                              \
                        uint s = KS0 + (sb) * DK * ROWK + d * ROWK + n / 4u, c = n % 4u;               \
                        buf[s][c] = rk[l].x; buf[s + ROWK][c] = rk[l].y;                                \
                        buf[s + 2u * ROWK][c] = rk[l].z; buf[s + 3u * ROWK][c] = rk[l].w;               \
                    }                                                                                   \
                }

                LOAD1(0u)
                for (uint s = 0; s < SLICES1; s++) {
                    uint cur = s & 1u;
                    STORE1(cur)
                    barrier();
                    if (s + 1u < SLICES1) {
                        uint d0 = (s + 1u) * DK;
                        LOAD1(d0)
                    }
                    uint qOff = cur * DK * ROWQ + ty, kOff = KS0 + cur * DK * ROWK + tx;
                    #define QK_STEP(kk)                                                                \
                    {                                                                                   \
                        vec4 av[TM / 4u], bv[TN / 4u];                                                  \
                        [[unroll]] for (uint c = 0; c < TM / 4u; c++) av[c] = buf[qOff + (kk) * ROWQ + c * TY1]; \
                        [[unroll]] for (uint d = 0; d < TN / 4u; d++) bv[d] = buf[kOff + (kk) * ROWK + d * TX1]; \
                        [[unroll]] for (uint c = 0; c < TM / 4u; c++)                                   \
                        [[unroll]] for (uint i = 0; i < 4u; i++)                                        \
                        [[unroll]] for (uint d = 0; d < TN / 4u; d++)                                   \
                            S[(c * 4u + i) * (TN / 4u) + d] = fma(vec4(av[c][i]), bv[d], S[(c * 4u + i) * (TN / 4u) + d]); \
                    }
                    if (UNROLL != 0u) {
                        [[unroll]] for (uint kk = 0; kk < DK; kk++) QK_STEP(kk)
                    } else {
                        [[dont_unroll]] for (uint kk = 0; kk < DK; kk++) QK_STEP(kk)
                    }
                }

                // ---------------- softmax of the block ----------------
                // Mask keys at or beyond kvLen; partial row maxima of this thread's keys.
                [[unroll]] for (uint c = 0; c < TM / 4u; c++) {
                    [[unroll]] for (uint i = 0; i < 4u; i++) {
                        float mx = NEG;
                        [[unroll]] for (uint d = 0; d < TN / 4u; d++) {
                            [[unroll]] for (uint j = 0; j < 4u; j++) {
                                uint key = k0 + (d * TX1 + tx) * 4u + j;
                                if (key >= kvLen) S[(c * 4u + i) * (TN / 4u) + d][j] = NEG;
                                mx = max(mx, S[(c * 4u + i) * (TN / 4u) + d][j]);
                            }
                        }
                        redMax[tx * BR + (c * TY1 + ty) * 4u + i] = mx;
                    }
                }
                barrier();
                // The block's row maxima; P = exp2(S - m_new) into shared memory; partial row sums.
                [[unroll]] for (uint c = 0; c < TM / 4u; c++) {
                    [[unroll]] for (uint i = 0; i < 4u; i++) {
                        uint row = (c * TY1 + ty) * 4u + i;
                        float mx = m1[c * 4u + i];
                        for (uint t = 0; t < TX1; t++) mx = max(mx, redMax[t * BR + row]);
                        m1[c * 4u + i] = mx;
                        float sum = 0.0;
                        [[unroll]] for (uint d = 0; d < TN / 4u; d++) {
                            vec4 e = exp2(S[(c * 4u + i) * (TN / 4u) + d] - mx);
                            S[(c * 4u + i) * (TN / 4u) + d] = e;
                            sum += (e.x + e.y) + (e.z + e.w);
                        }
                        redSum[tx * BR + row] = sum;
                    }
                }
                [[unroll]] for (uint c = 0; c < TM / 4u; c++) {
                    [[unroll]] for (uint d = 0; d < TN / 4u; d++) {
                        [[unroll]] for (uint j = 0; j < 4u; j++) {
                            uint key = (d * TX1 + tx) * 4u + j;
                            Ps[key * ROWP + c * TY1 + ty] = vec4(S[(c * 4u) * (TN / 4u) + d][j], S[(c * 4u + 1u) * (TN / 4u) + d][j],
                                                                  S[(c * 4u + 2u) * (TN / 4u) + d][j], S[(c * 4u + 3u) * (TN / 4u) + d][j]);
                        }
                    }
                }

                // ---------------- phase 3: O = O·alpha + P·V ----------------
                const uint keys = min(BC, kvLen - k0);
                const uint slices3 = (keys + CK - 1u) / CK;
                vec4 rv[LOADS_V];
                #define LOAD3(c0)                                                                      \
                [[unroll]] for (uint l = 0; l < LOADS_V; l++) {                                       \
                    uint g = tid + l * WG;                                                              \
                    uint c = g / DP4, d = (g % DP4) * 4u;                                               \
                    uint key = k0 + (c0) + c;                                                           \
                    int valid = (g < GROUPS_V && key < kvLen && d < HD) ? min(int(HD - d), 4) : 0;     \
                    rv[l] = load4(vHead, V_DT, VEC_V != 0u, key * p.vsL + d, valid);                  \
                }
                #define STORE3(sb)                                                                     \
                [[unroll]] for (uint l = 0; l < LOADS_V; l++) {                                       \
                    uint g = tid + l * WG;                                                              \
                    if (g < GROUPS_V) buf[(sb) * CK * ROWV + (g / DP4) * ROWV + g % DP4] = rv[l];       \
                }
                LOAD3(0u)
                barrier();   // Ps, redSum visible; phase 1's shared slices no longer read

                if (active3) {
                    [[unroll]] for (uint c = 0; c < TM2 / 4u; c++) {
                        [[unroll]] for (uint i = 0; i < 4u; i++) {
                            uint row = (c * T3Y + ty3) * 4u + i;
                            float mx = m3[c * 4u + i], sum = 0.0;
                            for (uint t = 0; t < TX1; t++) {
                                mx = max(mx, redMax[t * BR + row]);
                                sum += redSum[t * BR + row];
                            }
                            float alpha = exp2(m3[c * 4u + i] - mx);
                            m3[c * 4u + i] = mx;
                            l3[c * 4u + i] = l3[c * 4u + i] * alpha + sum;
                            [[unroll]] for (uint e = 0; e < TN2 / 4u; e++) O[(c * 4u + i) * (TN2 / 4u) + e] *= alpha;
                        }
                    }
                }

                for (uint s = 0; s < slices3; s++) {
                    uint cur = s & 1u;
                    STORE3(cur)
                    barrier();
                    if (s + 1u < slices3) {
                        uint c0 = (s + 1u) * CK;
                        LOAD3(c0)
                    }
                    if (active3) {
                        uint pOff = s * CK * ROWP + ty3, vOff = cur * CK * ROWV + tx3;
                        #define PV_STEP(kk)                                                            \
                        {                                                                               \
                            vec4 pv[TM2 / 4u], vv[TN2 / 4u];                                            \
                            [[unroll]] for (uint c = 0; c < TM2 / 4u; c++) pv[c] = Ps[pOff + (kk) * ROWP + c * T3Y]; \
                            [[unroll]] for (uint e = 0; e < TN2 / 4u; e++) vv[e] = buf[vOff + (kk) * ROWV + e * T3X]; \
                            [[unroll]] for (uint c = 0; c < TM2 / 4u; c++)                              \
                            [[unroll]] for (uint i = 0; i < 4u; i++)                                    \
                            [[unroll]] for (uint e = 0; e < TN2 / 4u; e++)                              \
                                O[(c * 4u + i) * (TN2 / 4u) + e] = fma(vec4(pv[c][i]), vv[e], O[(c * 4u + i) * (TN2 / 4u) + e]); \
                        }
                        if (UNROLL != 0u) {
                            [[unroll]] for (uint kk = 0; kk < CK; kk++) PV_STEP(kk)
                        } else {
                            [[dont_unroll]] for (uint kk = 0; kk < CK; kk++) PV_STEP(kk)
                        }
                    }
                }
                // The next block overwrites buf, Ps and the partials: wait for every reader.
                barrier();
            }

            // ---------------- out = O / sum (or the state, for the next key range) ----------------
            if (active3 && !finish) {
                [[unroll]] for (uint c = 0; c < TM2 / 4u; c++) {
                    [[unroll]] for (uint i = 0; i < 4u; i++) {
                        uint row = (c * T3Y + ty3) * 4u + i;
                        if (q0 + row >= Lq) continue;
                        uint s = (stateRow0 + row) * STATE_ROW;
                        if (tx3 == 0u) {
                            StateF32(p.state).v[s + DP] = m3[c * 4u + i];
                            StateF32(p.state).v[s + DP + 1u] = l3[c * 4u + i];
                        }
                        [[unroll]] for (uint e = 0; e < TN2 / 4u; e++)
                            StateF32x4(p.state).v[s / 4u + e * T3X + tx3] = O[(c * 4u + i) * (TN2 / 4u) + e];
                    }
                }
            }
            if (active3 && finish) {
                [[unroll]] for (uint c = 0; c < TM2 / 4u; c++) {
                    [[unroll]] for (uint i = 0; i < 4u; i++) {
                        uint row = (c * T3Y + ty3) * 4u + i;
                        if (q0 + row >= Lq) continue;
                        float inv = 1.0 / l3[c * 4u + i];
                        uint base = ((b * Lq + q0 + row) * p.H + h) * HD;
                        [[unroll]] for (uint e = 0; e < TN2 / 4u; e++) {
                            uint d = (e * T3X + tx3) * 4u;
                            vec4 x = O[(c * 4u + i) * (TN2 / 4u) + e] * inv;
                            [[unroll]] for (uint j = 0; j < 4u; j++)
                                if (d + j < HD) store_elem(p.o, O_DT, base + d + j, x[j]);
                        }
                    }
                }
            }
        }
    }
}
