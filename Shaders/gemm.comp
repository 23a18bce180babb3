#version 450
// Batched GEMM with a fused epilogue:
//   out[z] = act(alpha * op(A[z]) * op(B[z]) + bias) (+ residual[z]),  fp32 accumulation.
//
// Each workgroup computes a BM x BN tile of out. The K dimension is walked in BK-wide slices: every
// thread loads groups of 4 elements that are contiguous in memory (one vector load when the layout
// allows, else 4 scalar loads), converts them to fp32 and stores them into shared memory, where both
// slices are kept k-major (As[k][m], Bs[k][n]) with one vec4 of padding per row. Shared memory holds
// two slices (double buffering): each thread fetches its part of slice s + 1 from global memory into
// registers before multiplying slice s, and stores it into the other buffer at the start of the next
// iteration, so there is one barrier per slice. Each thread accumulates TM x TN outputs in registers
// from vec4 reads of shared memory; its rows are 4-row groups spaced BM/(TM/4) apart (columns likewise)
// so that the vec4 reads of a subgroup hit consecutive addresses or broadcast (no bank conflicts).
//
// Layouts (dense, row-major in their stored shape):
//   A: [M, K] (TRANS_A = 0) or [K, M] (TRANS_A = 1);  B: [K, N] (TRANS_B = 0) or [N, K] (TRANS_B = 1);
//   out, residual: [M, N];  bias: [N].  Batches are p.strideX elements apart (stride 0: shared).
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"

layout(local_size_x_id = 5) in;

layout(constant_id = 0) const uint BM = 64;      // tile rows (multiple of TM and of 4)
layout(constant_id = 1) const uint BN = 64;      // tile columns (multiple of TN and of 4)
layout(constant_id = 2) const uint BK = 16;      // K slice (multiple of 4)
layout(constant_id = 3) const uint TM = 4;       // rows per thread (multiple of 4)
layout(constant_id = 4) const uint TN = 4;       // columns per thread (multiple of 4)
// constant 5: workgroup size = (BM / TM) * (BN / TN)
layout(constant_id = 6) const uint A_DT = 0;
layout(constant_id = 7) const uint B_DT = 0;
layout(constant_id = 8) const uint OUT_DT = 0;
layout(constant_id = 9) const uint BIAS_DT = 0;
layout(constant_id = 10) const uint RES_DT = 0;
layout(constant_id = 11) const uint TRANS_A = 0;
layout(constant_id = 12) const uint TRANS_B = 0;
layout(constant_id = 13) const uint VEC_A = 0;   // A's contiguous length % 4 == 0 and its address aligned
layout(constant_id = 14) const uint VEC_B = 0;
layout(constant_id = 15) const uint HAS_BIAS = 0;
layout(constant_id = 16) const uint HAS_RES = 0;
layout(constant_id = 17) const uint ACT = 0;     // 0 none, 1 gelu (tanh), 2 gelu (erf), 3 silu
layout(constant_id = 18) const uint UNROLL = 1;  // unroll the loop over a slice's k
layout(constant_id = 19) const uint SCALE = 0;   // B's dequantisation scale: 0 none, 1 per tensor, 2 per column n

// Read-only views of the operands (lets drivers use the non-coherent load path).
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer RoF32x4 { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer RoU32x2 { uvec2 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer RoF32 { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 2) readonly buffer RoU16 { uint16_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer RoU32 { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 1) readonly buffer RoU8 { uint8_t v[]; };

// Four fp8 codes (bytes of w, little-endian) decoded to fp32 (exact): FP8 weights stay one byte in
// device memory and are expanded only here, while a slice is staged into shared memory.
vec4 decode_fp8x4(uint w, uint dt) {
    if (dt == DT_F8E4M3)
        return vec4(f8e4m3_to_f32(w & 0xffu), f8e4m3_to_f32((w >> 8) & 0xffu),
                    f8e4m3_to_f32((w >> 16) & 0xffu), f8e4m3_to_f32(w >> 24));
    return vec4(f8e5m2_to_f32(w & 0xffu), f8e5m2_to_f32((w >> 8) & 0xffu),
                f8e5m2_to_f32((w >> 16) & 0xffu), f8e5m2_to_f32(w >> 24));
}

#include "gemm_push.glsl"

const uint WG = (BM / TM) * (BN / TN);
const uint TX = BN / TN;            // threads along N
const uint BM4 = BM / 4;
const uint BN4 = BN / 4;
const uint ROW_A = BM4 + 1;         // padded row of As, in vec4
const uint ROW_B = BN4 + 1;
const uint GROUPS_A = BM * BK / 4;  // 4-element groups per slice
const uint GROUPS_B = BN * BK / 4;
const uint LOADS_A = (GROUPS_A + WG - 1) / WG;
const uint LOADS_B = (GROUPS_B + WG - 1) / WG;

shared vec4 As[2 * BK * ROW_A];
shared vec4 Bs[2 * BK * ROW_B];

// Loads elements i .. i+3 of a tensor (`valid` of them exist; the rest read as 0).
vec4 load4(uint64_t base, uint dt, bool vec, uint i, int valid) {
    if (valid >= 4) {
        if (dt == DT_F8E4M3 || dt == DT_F8E5M2) {
            if (vec) return decode_fp8x4(RoU32(base).v[i >> 2], dt);
            RoU8 q = RoU8(base);
            return decode_fp8x4(uint(q.v[i]) | (uint(q.v[i + 1]) << 8) | (uint(q.v[i + 2]) << 16) | (uint(q.v[i + 3]) << 24), dt);
        }
        if (vec) {
            if (dt == DT_F32) return RoF32x4(base).v[i >> 2];
            uvec2 w = RoU32x2(base).v[i >> 2];
            if (dt == DT_F16) return half4_to_f32(w);
            return vec4(uintBitsToFloat(w.x << 16), uintBitsToFloat(w.x & 0xffff0000u),
                        uintBitsToFloat(w.y << 16), uintBitsToFloat(w.y & 0xffff0000u));
        }
        if (dt == DT_F32) {
            RoF32 r = RoF32(base);
            return vec4(r.v[i], r.v[i + 1], r.v[i + 2], r.v[i + 3]);
        }
        RoU16 h = RoU16(base);
        uvec4 w = uvec4(h.v[i], h.v[i + 1], h.v[i + 2], h.v[i + 3]);
        if (dt == DT_F16)
            return f16x4_to_f32(w);
        return uintBitsToFloat(w << 16);
    }
    vec4 r = vec4(0.0);
    for (int j = 0; j < valid; j++) r[j] = load_elem(base, dt, i + uint(j));
    return r;
}

#include "gemm_epilogue.glsl"

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % TX, ty = tid / TX;
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    uint M = p.M, N = p.N, K = p.K;
    uint slices = (K + BK - 1) / BK;

    // Per-thread load assignments, fixed for the whole K loop. Without transposition a group of A is
    // 4 consecutive k of one row m (stored transposed into As, one component per k row); with
    // transposition 4 consecutive m of one k (one vec4 store). B likewise with n for m.
    uint aIndex[LOADS_A];  // element index of the group's first element for slice 0
    uint aSlot[LOADS_A];   // its vec4 in As (+ component << 16 for transposed stores)
    uint aK[LOADS_A];      // k of its first element within a slice
    int aValid[LOADS_A];   // rows in range: 1 / 0 (A), or the count of valid m (Aᵀ; <= 0: none)
    [[unroll]] for (uint l = 0; l < LOADS_A; l++) {
        uint g = tid + l * WG;
        bool inTile = g < GROUPS_A;
        if (TRANS_A == 0u) {
            uint m = g / (BK / 4), k = (g % (BK / 4)) * 4;
            aIndex[l] = (m0 + m) * K + k;
            aSlot[l] = k * ROW_A + m / 4 + ((m % 4) << 16);
            aK[l] = k;
            aValid[l] = (inTile && m0 + m < M) ? 1 : 0;
        } else {
            uint k = g / BM4, m = (g % BM4) * 4;
            aIndex[l] = k * M + m0 + m;
            aSlot[l] = k * ROW_A + m / 4;
            aK[l] = k;
            aValid[l] = inTile ? int(M) - int(m0 + m) : 0;
        }
    }
    uint bIndex[LOADS_B], bSlot[LOADS_B], bK[LOADS_B];
    int bValid[LOADS_B];
    [[unroll]] for (uint l = 0; l < LOADS_B; l++) {
        uint g = tid + l * WG;
        bool inTile = g < GROUPS_B;
        if (TRANS_B == 0u) {
            uint k = g / BN4, n = (g % BN4) * 4;
            bIndex[l] = k * N + n0 + n;
            bSlot[l] = k * ROW_B + n / 4;
            bK[l] = k;
            bValid[l] = inTile ? int(N) - int(n0 + n) : 0;
        } else {
            uint n = g / (BK / 4), k = (g % (BK / 4)) * 4;
            bIndex[l] = (n0 + n) * K + k;
            bSlot[l] = k * ROW_B + n / 4 + ((n % 4) << 16);
            bK[l] = k;
            bValid[l] = (inTile && n0 + n < N) ? 1 : 0;
        }
    }

    for (uint z = gl_WorkGroupID.z; z < p.batch; z += gl_NumWorkGroups.z) {
        uint64_t aBase = p.a + uint64_t(z) * uint64_t(p.strideA) * uint64_t(dt_size(A_DT));
        uint64_t bBase = p.b + uint64_t(z) * uint64_t(p.strideB) * uint64_t(dt_size(B_DT));

        vec4 acc[TM * (TN / 4)];
        [[unroll]] for (uint i = 0; i < TM * (TN / 4); i++) acc[i] = vec4(0.0);
        vec4 ra[LOADS_A], rb[LOADS_B];

        // Global memory -> registers: the slice starting at k0.
        #define LOAD_SLICE(k0)                                                                          \
        [[unroll]] for (uint l = 0; l < LOADS_A; l++) {                                               \
            int valid;                                                                                  \
            if (TRANS_A == 0u) valid = aValid[l] > 0 ? min(int(K) - int((k0) + aK[l]), 4) : 0;       \
            else valid = (k0) + aK[l] < K ? min(aValid[l], 4) : 0;                                     \
            uint idx = aIndex[l] + (TRANS_A == 0u ? (k0) : (k0) * M);                                  \
            ra[l] = load4(aBase, A_DT, VEC_A != 0u, idx, valid);                                       \
        }                                                                                               \
        [[unroll]] for (uint l = 0; l < LOADS_B; l++) {                                               \
            int valid;                                                                                  \
            if (TRANS_B == 0u) valid = (k0) + bK[l] < K ? min(bValid[l], 4) : 0;                       \
            else valid = bValid[l] > 0 ? min(int(K) - int((k0) + bK[l]), 4) : 0;                       \
            uint idx = bIndex[l] + (TRANS_B == 0u ? (k0) * N : (k0));                                  \
            rb[l] = load4(bBase, B_DT, VEC_B != 0u, idx, valid);                                       \
        }

        // Registers -> shared buffer `buf`.
        #define STORE_SLICE(buf)                                                                        \
        [[unroll]] for (uint l = 0; l < LOADS_A; l++) {                                               \
            if (tid + l * WG < GROUPS_A) {                                                              \
                if (TRANS_A == 0u) {                                                                    \
                    uint s = (buf) * BK * ROW_A + (aSlot[l] & 0xffffu), c = aSlot[l] >> 16;             \
                    As[s][c] = ra[l].x; As[s + ROW_A][c] = ra[l].y;                                     \
                    As[s + 2 * ROW_A][c] = ra[l].z; As[s + 3 * ROW_A][c] = ra[l].w;                     \
                } else {                                                                                \
                    As[(buf) * BK * ROW_A + aSlot[l]] = ra[l];                                          \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
        [[unroll]] for (uint l = 0; l < LOADS_B; l++) {                                               \
            if (tid + l * WG < GROUPS_B) {                                                              \
                if (TRANS_B == 0u) {                                                                    \
                    Bs[(buf) * BK * ROW_B + bSlot[l]] = rb[l];                                          \
                } else {                                                                                \
                    uint s = (buf) * BK * ROW_B + (bSlot[l] & 0xffffu), c = bSlot[l] >> 16;             \
                    Bs[s][c] = rb[l].x; Bs[s + ROW_B][c] = rb[l].y;                                     \
                    Bs[s + 2 * ROW_B][c] = rb[l].z; Bs[s + 3 * ROW_B][c] = rb[l].w;                     \
                }                                                                                       \
            }                                                                                           \
        }

        // Slice s: its registers go to buffer s & 1, then (after the barrier) slice s + 1 is fetched
        // from global memory while slice s is multiplied. Buffer s & 1 was last read for slice s - 2,
        // before the previous iteration's barrier.
        if (slices > 0u) {
            LOAD_SLICE(0u)
        }
        for (uint s = 0; s < slices; s++) {
            uint cur = s & 1u;
            STORE_SLICE(cur)
            barrier();
            if (s + 1u < slices) {
                uint k0 = (s + 1u) * BK;
                LOAD_SLICE(k0)
            }
            uint aOff = cur * BK * ROW_A + ty, bOff = cur * BK * ROW_B + tx;
            #define MULTIPLY_ROW(k)                                                                       \
            {                                                                                           \
                vec4 av[TM / 4], bv[TN / 4];                                                            \
                [[unroll]] for (uint c = 0; c < TM / 4; c++) av[c] = As[aOff + (k) * ROW_A + c * (BM / TM)]; \
                [[unroll]] for (uint d = 0; d < TN / 4; d++) bv[d] = Bs[bOff + (k) * ROW_B + d * TX];  \
                [[unroll]] for (uint c = 0; c < TM / 4; c++)                                            \
                [[unroll]] for (uint i = 0; i < 4; i++)                                                 \
                [[unroll]] for (uint d = 0; d < TN / 4; d++)                                            \
                    acc[(c * 4 + i) * (TN / 4) + d] = fma(vec4(av[c][i]), bv[d], acc[(c * 4 + i) * (TN / 4) + d]); \
            }
            // Unrolled on GPUs; a loop on CPU implementations, whose shader compiler is slow on big bodies.
            if (UNROLL != 0u) {
                [[unroll]] for (uint k = 0; k < BK; k++) MULTIPLY_ROW(k)
            } else {
                [[dont_unroll]] for (uint k = 0; k < BK; k++) MULTIPLY_ROW(k)
            }
        }

        // Epilogue: acc * alpha (* scale) + bias -> activation -> + residual -> store (rounded once).
        vec4 biasv[TN / 4], scalev[TN / 4];
        [[unroll]] for (uint d = 0; d < TN / 4; d++) {
            biasv[d] = vec4(0.0);
            scalev[d] = vec4(p.alpha);
            if (SCALE == 1u) scalev[d] *= F32Ref(p.scale).v[0];
            if (SCALE == 2u) {
                uint n = n0 + (d * TX + tx) * 4;
                [[unroll]] for (uint j = 0; j < 4; j++) if (n + j < N) scalev[d][j] *= F32Ref(p.scale).v[n + j];
            }
            if (HAS_BIAS != 0u) {
                uint n = n0 + (d * TX + tx) * 4;
                [[unroll]] for (uint j = 0; j < 4; j++) if (n + j < N) biasv[d][j] = load_elem(p.bias, BIAS_DT, n + j);
            }
        }
        uint64_t outBase = p.out_ + uint64_t(z) * uint64_t(p.strideOut) * uint64_t(dt_size(OUT_DT));
        uint64_t resBase = p.res + uint64_t(z) * uint64_t(p.strideOut) * uint64_t(dt_size(RES_DT));
        [[unroll]] for (uint c = 0; c < TM / 4; c++) {
            [[unroll]] for (uint i = 0; i < 4; i++) {
                uint m = m0 + (c * (BM / TM) + ty) * 4 + i;
                if (m >= M) continue;
                [[unroll]] for (uint d = 0; d < TN / 4; d++) {
                    uint n = n0 + (d * TX + tx) * 4;
                    [[unroll]] for (uint j = 0; j < 4; j++) {
                        if (n + j < N) {
                            uint o = m * N + n + j;
                            float v = activate(acc[(c * 4 + i) * (TN / 4) + d][j] * scalev[d][j] + biasv[d][j]);
                            if (HAS_RES != 0u) v += load_elem(resBase, RES_DT, o);
                            store_elem(outBase, OUT_DT, o, v);
                        }
                    }
                }
            }
        }
        // The next batch reuses the shared buffers: make sure everyone is done with them.
        barrier();
    }
}
