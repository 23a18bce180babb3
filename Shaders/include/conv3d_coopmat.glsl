// Causal 3-D convolution on tensor cores (16x16x16 cooperative matrices through include/coopmat.glsl, fp16
// operands, fp32 accumulation): the problem, layouts, push constants and grid of conv3d.comp, as an implicit GEMM
// per batch with M = Cout, N = T'·H'·W' output voxels, K = Cin·KT·KH·KW:
//   A[m][k] = weight (dense [Cout, Cin, KT, KH, KW] is [M, K] row-major), B[k][n] = the virtual input (zeros,
//   cache, x) at the position of tap k for voxel n, gathered while the slice is staged (no im2col buffer).
// Tiles as include/gemm_coopmat.glsl: a workgroup computes BM x BN outputs from BK-wide K slices staged as fp16
// into shared memory in chunks of 8 elements (weights: 8 consecutive k of one output channel, one 16-byte load of
// f16/bf16 where VEC_W; inputs: 8 consecutive voxels of one tap, gathered element by element with the bounds
// rules), double-buffered through registers (one barrier per slice); each subgroup owns WM x WN outputs as
// accumulator fragments; the epilogue goes through a per-subgroup 16x16 fp32 scratch (bias, residual, output
// dtype). x and the cache share one dtype (the host checks). f32 operands are rounded to fp16 (nearest even):
// this variant is for 16-bit inputs or a caller that allowed fp16 compute.
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_extensions.glsl"
#include "common.glsl"

layout(local_size_x_id = 5) in;
#define CM_EMU_LAYOUT_ID 17
#include "coopmat.glsl"

layout(constant_id = 0) const uint BM = 128;     // output channels per workgroup (multiple of WM)
layout(constant_id = 1) const uint BN = 128;     // output voxels per workgroup (multiple of WN)
layout(constant_id = 2) const uint BK = 32;      // K slice (multiple of 16)
layout(constant_id = 3) const uint WM = 64;      // subgroup tile (multiples of 16)
layout(constant_id = 4) const uint WN = 32;
// constant 5: workgroup size = (BM / WM) * (BN / WN) * 32
layout(constant_id = 6) const uint X_DT = 0;     // x and the cache
layout(constant_id = 7) const uint W_DT = 0;
layout(constant_id = 8) const uint OUT_DT = 0;
layout(constant_id = 9) const uint BIAS_DT = 0;
layout(constant_id = 10) const uint RES_DT = 0;
layout(constant_id = 11) const uint HAS_BIAS = 0;
layout(constant_id = 12) const uint HAS_RES = 0;
layout(constant_id = 13) const uint KT = 3;      // kernel extent in time, height, width
layout(constant_id = 14) const uint KH = 3;
layout(constant_id = 15) const uint KW = 3;
layout(constant_id = 16) const uint VEC_W = 0;   // K % 8 == 0 and the weight address 8-element aligned

#include "conv3d_params.glsl"
#include "half_staging.glsl"

const uint SUBGROUPS = (BM / WM) * (BN / WN);
const uint WG = SUBGROUPS * 32u;
const uint FM = WM / 16u;
const uint FN = WN / 16u;
// Shared slices: A as [BM][BK] and B as [BK][BN] halves, rows padded by 8 halves (16 bytes).
const uint A_LD4 = (BK + 8u) / 8u;              // row stride in uvec4
const uint B_LD4 = (BN + 8u) / 8u;
const uint A_STAGE = BM * A_LD4;                // uvec4 per buffer
const uint B_STAGE = BK * B_LD4;
const uint A_CPR = BK / 8u;                     // 8-element chunks per row
const uint B_CPR = BN / 8u;
const uint A_CHUNKS = BM * A_CPR;
const uint B_CHUNKS = BK * B_CPR;
const uint CA = (A_CHUNKS + WG - 1u) / WG;      // chunks per invocation
const uint CB = (B_CHUNKS + WG - 1u) / WG;
const uint STAGING = 2u * (A_STAGE + B_STAGE);  // A0, A1, B0, B1
const uint SCRATCH = SUBGROUPS * 64u;           // 16x16 fp32 per subgroup (aliases the staging buffers)
const uint S_SIZE = STAGING > SCRATCH ? STAGING : SCRATCH;
const uint KHW = KH * KW;
const uint TAPS = KT * KHW;
const int OUTSIDE = -1073741824;                // time coordinate of a voxel outside the output (reads as zero)

shared uvec4 S[S_SIZE];

// The raw element (f32 bits, or 16 bits) of the virtual input of channel ci at virtual time u (relative to x's
// frame 0; negative: the cache, before it zeros) and spatial position (hi, wi); 0 outside.
uint gather_raw(uint64_t xBase, uint64_t cBase, uint ci, int u, int hi, int wi) {
    if (u < -int(p.Tc) || uint(hi) >= p.H || uint(wi) >= p.W) return 0u;
    uint sp = uint(hi) * p.W + uint(wi), plane = p.H * p.W;
    uint64_t base = u >= 0 ? xBase : cBase;
    uint i = u >= 0 ? (ci * p.T + uint(u)) * plane + sp : (ci * p.Tc + uint(int(p.Tc) + u)) * plane + sp;
    return X_DT == DT_F32 ? U32Ref(base).v[i] : uint(U16Ref(base).v[i]);
}

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint sg = CM_SG, lane = CM_LANE;
    uint wm = sg / (BN / WN), wn = sg % (BN / WN);
    uint M = p.Cout, K = p.Cin * TAPS, N = p.To * p.Ho * p.Wo;
    uint m0 = gl_WorkGroupID.y * BM;
    uint nTiles = (N + BN - 1u) / BN;
    uint nk = (K + BK - 1u) / BK;
    uint xs = X_DT == DT_F32 ? 4u : 2u;
    // Where this invocation's chunks sit in the slices (row, first column), the same for every slice.
    uint aRow[CA], aCol[CA], bRow[CB], bCol[CB];
    CM_UNROLL for (uint c = 0u; c < CA; c++) { uint q = tid + c * WG; aRow[c] = q / A_CPR; aCol[c] = (q % A_CPR) * 8u; }
    CM_UNROLL for (uint c = 0u; c < CB; c++) { uint q = tid + c * WG; bRow[c] = q / B_CPR; bCol[c] = (q % B_CPR) * 8u; }

    for (uint z = gl_WorkGroupID.z; z < p.batch; z += gl_NumWorkGroups.z) {
        uint64_t xBase = p.x + uint64_t(z) * uint64_t(p.Cin * p.T * p.H * p.W) * xs;
        uint64_t cBase = p.cache + uint64_t(z) * uint64_t(p.Cin * p.Tc * p.H * p.W) * xs;
        uint64_t outBase = p.out_ + uint64_t(z) * uint64_t(M * N) * uint64_t(dt_size(OUT_DT));
        uint64_t resBase = p.res + uint64_t(z) * uint64_t(M * N) * uint64_t(dt_size(RES_DT));

        for (uint nt = gl_WorkGroupID.x; nt < nTiles; nt += gl_NumWorkGroups.x) {
            uint n0 = nt * BN;
            // Each B chunk's 8 voxels n .. n+7: the window origin of the first (virtual time relative to x's frame 0),
            // and whether all 8 exist and lie in one output row (then the others are the next windows along w, the
            // usual case: Wo is a multiple of 8 in the VAE); chunks crossing a row or the end decompose each voxel.
            // Kept to a few registers per chunk (the full origins of 8 voxels would take 24).
            int cU[CB], cH[CB], cW[CB];
            uint cN[CB];
            bool cRow[CB];
            CM_UNROLL for (uint c = 0u; c < CB; c++) {
                uint n = n0 + bCol[c];
                cN[c] = tid + c * WG < B_CHUNKS && n < N ? n : 0xffffffffu;
                uint wo = n % p.Wo, r = n / p.Wo;
                uint ho = r % p.Ho, to = r / p.Ho;
                cU[c] = int(to * p.st) - p.tFront;
                cH[c] = int(ho * p.sh) - p.padTop;
                cW[c] = int(wo * p.sw) - p.padLeft;
                cRow[c] = wo + 7u < p.Wo && n + 7u < N;
            }

            CM_F32 acc[FM * FN];
            CM_UNROLL for (uint f = 0; f < FM * FN; f++) acc[f] = CM_F32_ZERO;

            // Raw chunks of the next slice, held in registers across the MMAs of the current one.
            uvec4 ra0[CA], ra1[CA], rb0[CB], rb1[CB];

#define LOAD_SLICE(k0)                                                                                          \
            {                                                                                                   \
                CM_UNROLL for (uint c = 0u; c < CA; c++)                                                       \
                    load_chunk(p.w, W_DT, VEC_W != 0u, (m0 + aRow[c]) * K + (k0) + aCol[c],                     \
                               tid + c * WG < A_CHUNKS && m0 + aRow[c] < M, int(K) - int((k0) + aCol[c]), ra0[c], ra1[c]); \
                CM_UNROLL for (uint c = 0u; c < CB; c++) {                                                     \
                    rb0[c] = uvec4(0u);                                                                         \
                    rb1[c] = uvec4(0u);                                                                         \
                    uint k = (k0) + bRow[c];                                                                    \
                    if (cN[c] < N && k < K) {                                                                   \
                        uint ci = k / TAPS, tap = k - ci * TAPS;                                                \
                        uint dt = tap / KHW, rr = tap - dt * KHW;                                               \
                        uint dh = rr / KW, dw = rr - dh * KW;                                                   \
                        CM_UNROLL for (uint e = 0u; e < 8u; e++) {                                             \
                            int u = cU[c] + int(dt), hi = cH[c] + int(dh), wi = cW[c] + int(dw) + int(e * p.sw); \
                            if (!cRow[c]) {                                                                     \
                                uint n = cN[c] + e, wo = n % p.Wo, r = n / p.Wo, ho = r % p.Ho, to = r / p.Ho;  \
                                u = n < N ? int(to * p.st) - p.tFront + int(dt) : OUTSIDE;                      \
                                hi = int(ho * p.sh) - p.padTop + int(dh);                                       \
                                wi = int(wo * p.sw) - p.padLeft + int(dw);                                      \
                            }                                                                                   \
                            uint v = gather_raw(xBase, cBase, ci, u, hi, wi);                                   \
                            if (X_DT == DT_F32) {                                                               \
                                if (e < 4u) rb0[c][e] = v; else rb1[c][e - 4u] = v;                             \
                            } else {                                                                            \
                                rb0[c][e / 2u] |= v << (16u * (e & 1u));                                        \
                            }                                                                                   \
                        }                                                                                       \
                    }                                                                                           \
                }                                                                                               \
            }
#define STORE_SLICE(buf)                                                                                        \
            {                                                                                                   \
                CM_UNROLL for (uint c = 0u; c < CA; c++)                                                       \
                    if (tid + c * WG < A_CHUNKS)                                                                \
                        S[(buf) * A_STAGE + aRow[c] * A_LD4 + aCol[c] / 8u] = to_half8(W_DT, ra0[c], ra1[c]);   \
                CM_UNROLL for (uint c = 0u; c < CB; c++)                                                       \
                    if (tid + c * WG < B_CHUNKS)                                                                \
                        S[2u * A_STAGE + (buf) * B_STAGE + bRow[c] * B_LD4 + bCol[c] / 8u] = to_half8(X_DT, rb0[c], rb1[c]); \
            }

            if (nk > 0u) {
                LOAD_SLICE(0u)
                STORE_SLICE(0u)
            }
            barrier();
            for (uint t = 0u; t < nk; t++) {
                uint cur = t & 1u;
                bool more = t + 1u < nk;
                if (more) LOAD_SLICE((t + 1u) * BK)
                uint aOff = cur * A_STAGE, bOff = 2u * A_STAGE + cur * B_STAGE;
                CM_UNROLL for (uint kk = 0; kk < BK; kk += 16u) {
                    CM_F16A af[FM];
                    CM_F16B bf[FN];
                    // Offsets in uvec4 (8 halves): fragment corners are multiples of 16 halves.
                    CM_UNROLL for (uint i = 0; i < FM; i++)
                        CM_LOAD_U4H(af[i], S, aOff + (wm * WM + i * 16u) * A_LD4 + kk / 8u, A_LD4, false);
                    CM_UNROLL for (uint j = 0; j < FN; j++)
                        CM_LOAD_U4H(bf[j], S, bOff + kk * B_LD4 + (wn * WN + j * 16u) / 8u, B_LD4, false);
                    CM_UNROLL for (uint i = 0; i < FM; i++)
                    CM_UNROLL for (uint j = 0; j < FN; j++)
                        acc[i * FN + j] = cm_mma(af[i], bf[j], acc[i * FN + j]);
                }
                // The other buffer was last read in the previous slice, before the barrier that ended it.
                if (more) STORE_SLICE(cur ^ 1u)
                barrier();
            }
#undef LOAD_SLICE
#undef STORE_SLICE

            // Epilogue, one fragment at a time through this subgroup's 16x16 fp32 scratch at S[sg * 64]
            // (the staging buffers are dead: every read of them happened before the last barrier).
            CM_UNROLL for (uint i = 0; i < FM; i++) {
                CM_UNROLL for (uint j = 0; j < FN; j++) {
                    CM_STORE_U4F(acc[i * FN + j], S, sg * 64u, 4u);
                    CM_SUBGROUP_SYNC();
                    for (uint e = lane; e < 256u; e += 32u) {
                        uint m = m0 + wm * WM + i * 16u + e / 16u;
                        uint n = n0 + wn * WN + j * 16u + e % 16u;
                        if (m < M && n < N) {
                            float v = uintBitsToFloat(S[sg * 64u + e / 4u][e % 4u]);
                            if (HAS_BIAS != 0u) v += load_elem(p.bias, BIAS_DT, m);
                            uint o = m * N + n;
                            if (HAS_RES != 0u) v += load_elem(resBase, RES_DT, o);
                            store_elem(outBase, OUT_DT, o, v);
                        }
                    }
                    CM_SUBGROUP_SYNC();
                }
            }
            // The next tile's first slice overwrites the scratch.
            barrier();
        }
    }
}
