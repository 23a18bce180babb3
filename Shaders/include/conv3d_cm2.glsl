// The causal 3-D convolution of conv3d.comp on VK_NV_cooperative_matrix2's workgroup-scope matrices: the problem,
// layouts, push constants and grid of conv3d.comp, as an implicit GEMM per batch with M = Cout, N = T'·H'·W' output
// voxels, K = Cin·KT·KH·KW:
//   A[m][k] = weight (dense [Cout, Cin, KT, KH, KW] is [M, K] row-major), loaded as a cooperative matrix straight from
//   memory through a tensor layout (the driver stages it; clamping gives zeros past M and K, tiles inside the weights
//   load unclamped), f16 as is, f32 and bf16 rounded to fp16 by decode functions;
//   B[k][n] = the virtual input (zero frames, cache, x; zero outside the frame) at tap k of voxel n: gathered by the
//   workgroup into shared memory as fp16 (no im2col buffer in device memory), a BK x BN slice per step in two
//   alternating buffers (one barrier per slice), then loaded as a cooperative matrix.
// A workgroup computes BM output channels x BN voxels with fp32 accumulation; the epilogue runs per element (bias),
// adds the residual loaded as a matrix and stores f32 or f16 through a clamped layout (voxels past N and channels
// past Cout are dropped). x and the cache share one dtype (the host checks). f32 and bf16 values beyond fp16's
// range become infinite when rounded, as in the subgroup tensor-core convolution.
// Natively (conv3d_cm2.comp) it needs glslang 15 and a device with VK_NV_cooperative_matrix2; the host checks
// 16-byte aligned weight, output and residual bases (and per-batch output strides) and a workgroup size the driver
// lists for fp16 x fp16 -> fp32 at workgroup scope, with BN and the workgroup size multiples of one another.
// conv3d_cm2_emulated.comp runs the same code on emulated matrices (include/cm2.glsl).
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x_id = 5) in;

layout(constant_id = 0) const uint BM = 128;     // output channels per workgroup
layout(constant_id = 1) const uint BN = 128;     // output voxels per workgroup
layout(constant_id = 2) const uint BK = 32;      // K slice
// constants 3 and 4 (the subgroup tile of conv3d_coopmat) are not used; 5 is the workgroup size
#include "conv3d_constants.glsl"

#include "conv3d_params.glsl"

#define CM2_EMU_A_SIZE (BM * BK)
#define CM2_EMU_B_SIZE (BK * BN)
#include "cm2.glsl"
#include "cm2_output.glsl"

const uint KHW = KH * KW;
const uint TAPS = KT * KHW;
const int OUTSIDE = -1073741824;                 // time coordinate of a voxel outside the output (reads as zero)

// The gather's work split: an invocation owns NCOL columns of the slice (its index mod BN, then every WG-th) and
// every RSTEP-th row from its index / BN (BN and the workgroup size are multiples of one another).
const uint WG = gl_WorkGroupSize.x;
const uint NCOL = (BN + WG - 1u) / WG;
const uint RSTEP = (WG + BN - 1u) / BN;

// Two B slices (fp16, BK rows of BN voxels).
shared float16_t convB[2u * BK * BN];

// The virtual input of channel ci at virtual time u (relative to x's frame 0; negative: the cache, before it zeros)
// and spatial position (hi, wi), rounded to fp16; 0 outside.
float16_t gather(uint64_t xBase, uint64_t cBase, uint ci, int u, int hi, int wi) {
    if (u < -int(p.Tc) || uint(hi) >= p.H || uint(wi) >= p.W) return float16_t(0.0);
    uint sp = uint(hi) * p.W + uint(wi), plane = p.H * p.W;
    uint64_t base = u >= 0 ? xBase : cBase;
    uint i = u >= 0 ? (ci * p.T + uint(u)) * plane + sp : (ci * p.Tc + uint(int(p.Tc) + u)) * plane + sp;
    if (X_DT == DT_F16) return uint16BitsToFloat16(U16Ref(base).v[i]);
    if (X_DT == DT_BF16) return float16_t(uintBitsToFloat(uint(U16Ref(base).v[i]) << 16));
    return float16_t(F32Ref(base).v[i]);
}

// Bias of the accumulated value v at (r, c) of the tile whose first output channel is m0.
float tile_output(const in uint r, const in uint c, const in float v, const in uint m0) {
    uint row = m0 + r;
    if (row >= p.Cout) return 0.0;   // outside the output: dropped by the store
    return HAS_BIAS != 0u ? v + load_elem(p.bias, BIAS_DT, row) : v;
}

// The weight tile (rows m0.., columns k0.. of the M x K weights) into ma, loaded by LOAD / LOAD_DECODE (clamped or
// inside, include/cm2.glsl).
#define CONV_CM2_LOAD_WEIGHTS(LOAD, LOAD_DECODE)                                                                   \
    do {                                                                                                            \
        if (W_DT == DT_F16) LOAD(ma, BM, BK, float16_t, Cm2F16, p.w, M, K, K, m0, k0, false);                      \
        else if (W_DT == DT_F32) LOAD_DECODE(ma, BM, BK, float16_t, p.w, M, K, K, m0, k0, false, from_f32, F32Elem, 4u); \
        else LOAD_DECODE(ma, BM, BK, float16_t, p.w, M, K, K, m0, k0, false, from_bf16, U16Elem, 2u);             \
    } while (false)

void main() {
    uint tid = gl_LocalInvocationIndex;
    uint M = p.Cout, K = p.Cin * TAPS, N = p.To * p.Ho * p.Wo;
    uint m0 = gl_WorkGroupID.y * BM;
    uint nTiles = (N + BN - 1u) / BN;
    uint xs = dt_size(X_DT);
    uint col0 = tid % BN, row0 = tid / BN;
    // The slice buffer in use; it alternates across every slice of every tile, so that a buffer is rewritten only
    // after the barrier that follows its last reads.
    uint buf = 0u;

    for (uint z = gl_WorkGroupID.z; z < p.batch; z += gl_NumWorkGroups.z) {
        uint64_t xBase = p.x + uint64_t(z) * uint64_t(p.Cin * p.T * p.H * p.W) * xs;
        uint64_t cBase = p.cache + uint64_t(z) * uint64_t(p.Cin * p.Tc * p.H * p.W) * xs;
        uint64_t outBase = p.out_ + uint64_t(z) * uint64_t(M * N) * uint64_t(dt_size(OUT_DT));
        uint64_t resBase = p.res + uint64_t(z) * uint64_t(M * N) * uint64_t(dt_size(RES_DT));

        for (uint nt = gl_WorkGroupID.x; nt < nTiles; nt += gl_NumWorkGroups.x) {
            uint n0 = nt * BN;
            // The window origins of this invocation's voxels (virtual time relative to x's frame 0, row, column).
            int cU[NCOL], cH[NCOL], cW[NCOL];
            [[unroll]] for (uint j = 0u; j < NCOL; j++) {
                uint n = n0 + col0 + j * WG;
                uint wo = n % p.Wo, r = n / p.Wo;
                uint ho = r % p.Ho, to = r / p.Ho;
                cU[j] = n < N ? int(to * p.st) - p.tFront : OUTSIDE;
                cH[j] = int(ho * p.sh) - p.padTop;
                cW[j] = int(wo * p.sw) - p.padLeft;
            }

            CM2_ACC(BM, BN) acc;
            CM2_ACC_FILL(acc, BM, BN, 0.0);
            for (uint k0 = 0u; k0 < K; k0 += BK, buf ^= 1u) {
                uint off = buf * BK * BN;
                for (uint r = row0; r < BK; r += RSTEP) {
                    uint k = k0 + r;
                    uint ci = k / TAPS, tap = k - ci * TAPS;
                    int dt = int(tap / KHW), rr = int(tap % KHW);
                    int dh = rr / int(KW), dw = rr % int(KW);
                    [[unroll]] for (uint j = 0u; j < NCOL; j++) {
                        uint c = col0 + j * WG;
                        convB[off + r * BN + c] = k < K ? gather(xBase, cBase, ci, cU[j] + dt, cH[j] + dh, cW[j] + dw)
                                                        : float16_t(0.0);
                    }
                }
                barrier();
                CM2_A(BM, BK) ma;
                CM2_B(BK, BN) mb;
                // The weight tile without clamping where it lies inside the weights (the cheaper load).
                if (m0 + BM <= M && k0 + BK <= K) CONV_CM2_LOAD_WEIGHTS(CM2_LOAD_INSIDE, CM2_LOAD_DECODE_INSIDE);
                else CONV_CM2_LOAD_WEIGHTS(CM2_LOAD, CM2_LOAD_DECODE);
                CM2_LOAD_SHARED(mb, BK, BN, convB, off, BN);
                CM2_MULADD(acc, ma, mb, BM, BK, BN);
            }

            CM2_PER_ELEMENT(acc, acc, BM, BN, tile_output, m0);
            CM2_RESIDUAL_STORE(acc, BM, BN, resBase, outBase, M, N, m0, n0);   // bf16 outputs use the other convolutions
        }
    }
}
