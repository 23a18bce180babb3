#version 450
// Causal 3-D convolution (cross-correlation) as an implicit GEMM, fp32 accumulation:
//   out[b, co, t', h', w'] = bias[co] (+ residual) + sum_{ci, dt, dh, dw} w[co, ci, dt, dh, dw] · v[b, ci, t'·st + dt, h'·sh + dh − padTop, w'·sw + dw − padLeft]
// where the virtual input v along time is  zeros (front padding) ++ cache (the previous chunk's last
// frames) ++ x, and zero outside [0, H) × [0, W) spatially (any asymmetric spatial padding).
//
// GEMM view per batch: M = Cout, N = T'·H'·W' output voxels, K = Cin·KT·KH·KW, with
//   A[m][k] = weight (dense [Cout, Cin, KT, KH, KW] is exactly [M, K] row-major) and
//   B[k][n] = v at the input position of tap k for output voxel n, gathered from x, the cache or zero
//   while the slice is staged into shared memory: no im2col buffer exists in device memory.
// Tiling as `gemm.comp`: a workgroup computes a BM × BN tile of out from BK-wide K slices, double
// buffered in shared memory (As[k][m], Bs[k][n], one vec4 of padding per row), one barrier per slice;
// each thread accumulates TM × TN outputs from vec4 reads of shared memory.
//
// Layouts (dense): x [B, Cin, T, H, W]; cache [B, Cin, Tc, H, W]; weight [Cout, Cin, KT, KH, KW];
// bias [Cout]; out, residual [B, Cout, T', H', W'].
// NOTE: no gl_GlobalInvocationID / gl_WorkGroupSize (wrong on lavapipe for workgroups with y/z > 0).
#extension GL_GOOGLE_include_directive : enable
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"

layout(local_size_x_id = 5) in;

layout(constant_id = 0) const uint BM = 64;      // tile rows (output channels; multiple of TM and of 4)
layout(constant_id = 1) const uint BN = 64;      // tile columns (output voxels; multiple of TN and of 4)
layout(constant_id = 2) const uint BK = 16;      // K slice (multiple of 4)
layout(constant_id = 3) const uint TM = 4;       // rows per thread (multiple of 4)
layout(constant_id = 4) const uint TN = 4;       // columns per thread (multiple of 4)
// constant 5: workgroup size = (BM / TM) * (BN / TN)
layout(constant_id = 6) const uint X_DT = 0;
layout(constant_id = 7) const uint W_DT = 0;
layout(constant_id = 8) const uint C_DT = 0;     // cache
layout(constant_id = 9) const uint OUT_DT = 0;
layout(constant_id = 10) const uint BIAS_DT = 0;
layout(constant_id = 11) const uint RES_DT = 0;
layout(constant_id = 12) const uint HAS_BIAS = 0;
layout(constant_id = 13) const uint HAS_RES = 0;
layout(constant_id = 14) const uint KT = 3;      // kernel extent in time, height, width
layout(constant_id = 15) const uint KH = 3;
layout(constant_id = 16) const uint KW = 3;
layout(constant_id = 17) const uint VEC_W = 0;   // K % 4 == 0 and the weight address 4-element aligned
layout(constant_id = 18) const uint UNROLL = 1;  // unroll the loop over a slice's k

layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer RoF32x4 { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer RoU32x2 { uvec2 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer RoF32 { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 2) readonly buffer RoU16 { uint16_t v[]; };

#include "conv3d_params.glsl"

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
const uint KHW = KH * KW;
const uint TAPS = KT * KHW;
const int OUTSIDE = -1073741824;    // time coordinate of a voxel outside the tile (reads as zero)

shared vec4 As[2 * BK * ROW_A];
shared vec4 Bs[2 * BK * ROW_B];

uint dtSize(uint dt) { return dt == DT_F32 ? 4u : 2u; }

// One element of a compute-float tensor (f32, f16, bf16) as fp32.
float ld(uint64_t base, uint dt, uint i) {
    if (dt == DT_F32) return RoF32(base).v[i];
    uint h = uint(RoU16(base).v[i]);
    if (dt == DT_F16) return f16_to_f32(h);
    return uintBitsToFloat(h << 16);
}

// Loads elements i .. i+3 of the weights (`valid` of them exist; the rest read as 0).
vec4 load4(uint64_t base, uint dt, bool vec, uint i, int valid) {
    if (valid >= 4) {
        if (vec) {
            if (dt == DT_F32) return RoF32x4(base).v[i >> 2];
            uvec2 w = RoU32x2(base).v[i >> 2];
            if (dt == DT_F16) return half4_to_f32(w);
            return vec4(uintBitsToFloat(w.x << 16), uintBitsToFloat(w.x & 0xffff0000u),
                        uintBitsToFloat(w.y << 16), uintBitsToFloat(w.y & 0xffff0000u));
        }
        return vec4(ld(base, dt, i), ld(base, dt, i + 1u), ld(base, dt, i + 2u), ld(base, dt, i + 3u));
    }
    vec4 r = vec4(0.0);
    for (int j = 0; j < valid; j++) r[j] = ld(base, dt, i + uint(j));
    return r;
}

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % TX, ty = tid / TX;
    uint M = p.Cout, K = p.Cin * TAPS;
    uint N = p.To * p.Ho * p.Wo;
    uint HW = p.H * p.W;
    uint m0 = gl_WorkGroupID.y * BM;
    uint nTiles = (N + BN - 1u) / BN;
    uint slices = (K + BK - 1u) / BK;
    int Tc = int(p.Tc);

    // Weight loads: a group is 4 consecutive k of one output channel m, stored transposed into As.
    uint aIndex[LOADS_A];  // element index of the group's first element for slice 0
    uint aSlot[LOADS_A];   // its vec4 in As + (component << 16)
    uint aK[LOADS_A];      // k of its first element within a slice
    bool aValid[LOADS_A];
    [[unroll]] for (uint l = 0; l < LOADS_A; l++) {
        uint g = tid + l * WG;
        uint m = g / (BK / 4), k = (g % (BK / 4)) * 4;
        aIndex[l] = (m0 + m) * K + k;
        aSlot[l] = k * ROW_A + m / 4 + ((m % 4) << 16);
        aK[l] = k;
        aValid[l] = g < GROUPS_A && m0 + m < M;
    }
    // Input gathers: a group is 4 consecutive output voxels n of one k (one vec4 store into Bs).
    uint bK[LOADS_B], bSlot[LOADS_B];
    [[unroll]] for (uint l = 0; l < LOADS_B; l++) {
        uint g = tid + l * WG;
        bK[l] = g / BN4;
        bSlot[l] = bK[l] * ROW_B + g % BN4;
    }

    for (uint z = gl_WorkGroupID.z; z < p.batch; z += gl_NumWorkGroups.z) {
        uint64_t xBase = p.x + uint64_t(z) * uint64_t(p.Cin * p.T * HW) * dtSize(X_DT);
        uint64_t cBase = p.cache + uint64_t(z) * uint64_t(p.Cin * p.Tc * HW) * dtSize(C_DT);
        uint64_t outBase = p.out_ + uint64_t(z) * uint64_t(M * N) * dtSize(OUT_DT);
        uint64_t resBase = p.res + uint64_t(z) * uint64_t(M * N) * dtSize(RES_DT);

        for (uint nt = gl_WorkGroupID.x; nt < nTiles; nt += gl_NumWorkGroups.x) {
            uint n0 = nt * BN;
            // Virtual input coordinates (time relative to x's frame 0) of the window origin of each
            // of this thread's output voxels; fixed for the whole K loop.
            int bU[LOADS_B * 4], bH[LOADS_B * 4], bW[LOADS_B * 4];
            [[unroll]] for (uint l = 0; l < LOADS_B; l++) {
                uint g = tid + l * WG;
                [[unroll]] for (uint j = 0; j < 4; j++) {
                    uint n = n0 + (g % BN4) * 4 + j;
                    uint e = l * 4 + j;
                    if (g < GROUPS_B && n < N) {
                        uint wo = n % p.Wo, r = n / p.Wo;
                        uint ho = r % p.Ho, to = r / p.Ho;
                        bU[e] = int(to * p.st) - p.tFront;
                        bH[e] = int(ho * p.sh) - p.padTop;
                        bW[e] = int(wo * p.sw) - p.padLeft;
                    } else {
                        bU[e] = OUTSIDE; bH[e] = 0; bW[e] = 0;
                    }
                }
            }

            vec4 acc[TM * (TN / 4)];
            [[unroll]] for (uint i = 0; i < TM * (TN / 4); i++) acc[i] = vec4(0.0);
            vec4 ra[LOADS_A], rb[LOADS_B];

            // Global memory -> registers: the slice starting at k0 (weights; gathered inputs).
            #define LOAD_SLICE(k0)                                                                      \
            [[unroll]] for (uint l = 0; l < LOADS_A; l++) {                                           \
                int valid = aValid[l] ? min(int(K) - int((k0) + aK[l]), 4) : 0;                       \
                ra[l] = load4(p.w, W_DT, VEC_W != 0u, aIndex[l] + (k0), valid);                       \
            }                                                                                           \
            [[unroll]] for (uint l = 0; l < LOADS_B; l++) {                                           \
                uint k = (k0) + bK[l];                                                                  \
                rb[l] = vec4(0.0);                                                                      \
                if (k < K) {                                                                            \
                    uint ci = k / TAPS, tap = k - ci * TAPS;                                            \
                    uint dt = tap / KHW, rr = tap - dt * KHW;                                           \
                    uint dh = rr / KW, dw = rr - dh * KW;                                               \
                    [[unroll]] for (uint j = 0; j < 4; j++) {                                          \
                        uint e = l * 4 + j;                                                             \
                        int u = bU[e] + int(dt), hi = bH[e] + int(dh), wi = bW[e] + int(dw);            \
                        if (u >= -Tc && uint(hi) < p.H && uint(wi) < p.W) {                             \
                            uint sp = uint(hi) * p.W + uint(wi);                                        \
                            if (u >= 0) rb[l][j] = ld(xBase, X_DT, (ci * p.T + uint(u)) * HW + sp);    \
                            else rb[l][j] = ld(cBase, C_DT, (ci * p.Tc + uint(Tc + u)) * HW + sp);     \
                        }                                                                               \
                    }                                                                                   \
                }                                                                                       \
            }

            // Registers -> shared buffer `buf`.
            #define STORE_SLICE(buf)                                                                    \
            [[unroll]] for (uint l = 0; l < LOADS_A; l++) {                                           \
                if (tid + l * WG < GROUPS_A) {                                                          \
                    uint s = (buf) * BK * ROW_A + (aSlot[l] & 0xffffu), c = aSlot[l] >> 16;             \
                    As[s][c] = ra[l].x; As[s + ROW_A][c] = ra[l].y;                                     \
                    As[s + 2 * ROW_A][c] = ra[l].z; As[s + 3 * ROW_A][c] = ra[l].w;                     \
                }                                                                                       \
            }                                                                                           \
            [[unroll]] for (uint l = 0; l < LOADS_B; l++) {                                           \
                if (tid + l * WG < GROUPS_B) Bs[(buf) * BK * ROW_B + bSlot[l]] = rb[l];                \
            }

            // Slice s goes to buffer s & 1; slice s + 1 is fetched into registers while s is multiplied.
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
                #define MULTIPLY_ROW(k)                                                                   \
                {                                                                                       \
                    vec4 av[TM / 4], bv[TN / 4];                                                        \
                    [[unroll]] for (uint c = 0; c < TM / 4; c++) av[c] = As[aOff + (k) * ROW_A + c * (BM / TM)]; \
                    [[unroll]] for (uint d = 0; d < TN / 4; d++) bv[d] = Bs[bOff + (k) * ROW_B + d * TX]; \
                    [[unroll]] for (uint c = 0; c < TM / 4; c++)                                        \
                    [[unroll]] for (uint i = 0; i < 4; i++)                                             \
                    [[unroll]] for (uint d = 0; d < TN / 4; d++)                                        \
                        acc[(c * 4 + i) * (TN / 4) + d] = fma(vec4(av[c][i]), bv[d], acc[(c * 4 + i) * (TN / 4) + d]); \
                }
                if (UNROLL != 0u) {
                    [[unroll]] for (uint k = 0; k < BK; k++) MULTIPLY_ROW(k)
                } else {
                    [[dont_unroll]] for (uint k = 0; k < BK; k++) MULTIPLY_ROW(k)
                }
            }

            // Epilogue: acc + bias[co] (+ residual) -> out (rounded once).
            [[unroll]] for (uint c = 0; c < TM / 4; c++) {
                [[unroll]] for (uint i = 0; i < 4; i++) {
                    uint m = m0 + (c * (BM / TM) + ty) * 4 + i;
                    if (m >= M) continue;
                    float bv = HAS_BIAS != 0u ? ld(p.bias, BIAS_DT, m) : 0.0;
                    [[unroll]] for (uint d = 0; d < TN / 4; d++) {
                        uint n = n0 + (d * TX + tx) * 4;
                        [[unroll]] for (uint j = 0; j < 4; j++) {
                            if (n + j < N) {
                                uint o = m * N + n + j;
                                float v = acc[(c * 4 + i) * (TN / 4) + d][j] + bv;
                                if (HAS_RES != 0u) v += ld(resBase, RES_DT, o);
                                store_elem(outBase, OUT_DT, o, v);
                            }
                        }
                    }
                }
            }
            // The next tile reuses the shared buffers: make sure everyone is done with them.
            barrier();
        }
    }
}
