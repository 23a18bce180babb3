// Causal 3-D convolution on tensor cores (16x16x16 cooperative matrices through include/coopmat.glsl, fp16
// operands, fp32 accumulation): the problem, layouts, push constants and grid of conv3d.comp, as an implicit GEMM
// per batch with M = Cout, N = T'·H'·W' output voxels, K = Cin·KT·KH·KW:
//   A[m][k] = weight (dense [Cout, Cin, KT, KH, KW] is [M, K] row-major), B[k][n] = the virtual input (zeros,
//   cache, x) at the position of tap k for voxel n, gathered while the slice is staged (no im2col buffer).
// The tile of include/coopmat_tile.glsl (as the GEMM): a workgroup computes BM x BN outputs from BK-wide K slices staged as fp16
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
#include "conv3d_constants.glsl"
layout(constant_id = 16) const uint VEC_W = 0;   // K % 8 == 0 and the weight address 8-element aligned
const uint TRANS_A = 0u;                         // the tile's A (weights, [M][K]) and B (inputs, [K][N]) as stored
const uint TRANS_B = 0u;

#include "conv3d_params.glsl"
#include "half_staging.glsl"
#include "coopmat_tile.glsl"

const uint KHW = KH * KW;
const uint TAPS = KT * KHW;
const int OUTSIDE = -1073741824;                // time coordinate of a voxel outside the output (reads as zero)

// The raw element (f32 bits, or 16 bits) of the virtual input of channel ci at virtual time u (relative to x's
// frame 0; negative: the cache, before it zeros) and spatial position (hi, wi); 0 outside.
uint gather_raw(uint64_t xBase, uint64_t cBase, uint ci, int u, int hi, int wi) {
    if (u < -int(p.Tc) || uint(hi) >= p.H || uint(wi) >= p.W) return 0u;
    uint sp = uint(hi) * p.W + uint(wi), plane = p.H * p.W;
    uint64_t base = u >= 0 ? xBase : cBase;
    uint i = u >= 0 ? (ci * p.T + uint(u)) * plane + sp : (ci * p.Tc + uint(int(p.Tc) + u)) * plane + sp;
    return X_DT == DT_F32 ? U32Ref(base).v[i] : uint(U16Ref(base).v[i]);
}

// The tile's staging encodings and its output before the residual (coopmat_tile_loop.glsl).
#define TILE_A_DT W_DT
#define TILE_B_DT X_DT
#define TILE_OUTPUT(val, row, col) { if (HAS_BIAS != 0u) val += load_elem(p.bias, BIAS_DT, row); }

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

            // The raw chunks of the slice at k0 (the tile's loop stages them).
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
#include "coopmat_tile_loop.glsl"
        }
    }
}
