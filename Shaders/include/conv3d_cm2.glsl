// The causal 3-D convolution of conv3d.comp on VK_NV_cooperative_matrix2's workgroup-scope matrices: the problem,
// layouts, push constants and grid of conv3d.comp, as an implicit GEMM per batch with M = Cout, N = T'·H'·W' output
// voxels, K = Cin·KT·KH·KW:
//   A[m][k] = weight (dense [Cout, Cin, KT, KH, KW] is [M, K] row-major), loaded as a cooperative matrix straight from
//   memory through a tensor layout (the driver stages it; clamping gives zeros past M and K, tiles inside the weights
//   load unclamped), f16 as is, f32 and bf16 rounded to fp16 by decode functions;
//   B[k][n] = the virtual input (zero frames, cache, x; zero outside the frame) at tap k of voxel n: gathered by the
//   workgroup into shared memory as fp16 (no im2col buffer in device memory) in chunks of 8 voxels (the 8 windows of
//   one output row read one input row: one address computation per chunk), a BK x BN slice per step in two
//   alternating buffers (one barrier per slice), then loaded as a cooperative matrix.
// A workgroup computes BM output channels x BN voxels with fp32 accumulation; the epilogue runs per element (bias),
// adds the residual loaded as a matrix and stores f32 or f16 through a clamped layout (voxels past N and channels
// past Cout are dropped). x and the cache share one dtype (the host checks). f32 and bf16 values beyond fp16's
// range become infinite when rounded, as in the subgroup tensor-core convolution.
// Natively (conv3d_cm2.comp) it needs glslang 15 and a device with VK_NV_cooperative_matrix2; the host checks
// 16-byte aligned weight, output and residual bases (and per-batch output strides) and a workgroup size the driver
// lists for fp16 x fp16 -> fp32 at workgroup scope, with BN / 8 dividing the workgroup size.
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

// The gather's work split: a slice row holds CPR chunks of 8 consecutive voxels; an invocation owns the chunk column
// of its index mod CPR in every RSTEP-th row from its index / CPR (CPR divides the workgroup size).
const uint WG = gl_WorkGroupSize.x;
const uint CPR = BN / 8u;
const uint RSTEP = WG / CPR;

// Two B slices (fp16, BK rows of BN voxels).
shared float16_t convB[2u * BK * BN];

// The row of the virtual input of channel ci at virtual time u (relative to x's frame 0; negative: the cache, before
// it zeros) and height hi: false where it is zero padding, else its buffer and the element index of its column 0.
bool input_row(uint64_t xBase, uint64_t cBase, uint ci, int u, int hi, out uint64_t base, out uint index) {
    base = u >= 0 ? xBase : cBase;
    index = 0u;
    if (u < -int(p.Tc) || uint(hi) >= p.H) return false;
    uint frame = u >= 0 ? ci * p.T + uint(u) : ci * p.Tc + uint(int(p.Tc) + u);
    index = (frame * p.H + uint(hi)) * p.W;
    return true;
}

// Element i of the input at base (x and the cache share X_DT), rounded to fp16.
float16_t input_at(uint64_t base, uint i) {
    if (X_DT == DT_F16) return uint16BitsToFloat16(U16Ref(base).v[i]);
    if (X_DT == DT_BF16) return float16_t(uintBitsToFloat(uint(U16Ref(base).v[i]) << 16));
    return float16_t(F32Ref(base).v[i]);
}

#include "conv3d_cm2_bias.glsl"

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
    uint c = (tid % CPR) * 8u;   // this invocation's chunk: columns c .. c+7 of every slice row it fills
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
            // This invocation's 8 voxels n .. n+7: the window origin of the first (virtual time relative to x's frame 0,
            // row, column), and whether all 8 exist and lie in one output row (then the others are the next windows
            // along w, the usual case; a chunk crossing a row or the end decomposes each voxel).
            uint n = n0 + c;
            uint wo = n % p.Wo, ho = (n / p.Wo) % p.Ho, to = n / p.Wo / p.Ho;
            int cU = n < N ? int(to * p.st) - p.tFront : OUTSIDE;
            int cH = int(ho * p.sh) - p.padTop, cW = int(wo * p.sw) - p.padLeft;
            bool cRow = wo + 7u < p.Wo && n + 7u < N;

            CM2_ACC(BM, BN) acc;
            CM2_ACC_FILL(acc, BM, BN, 0.0);
            for (uint k0 = 0u; k0 < K; k0 += BK, buf ^= 1u) {
                uint off = buf * BK * BN;
                for (uint r = tid / CPR; r < BK; r += RSTEP) {
                    uint k = k0 + r;
                    uint ci = k / TAPS, tap = k - ci * TAPS;
                    int dt = int(tap / KHW), rr = int(tap % KHW);
                    int dh = rr / int(KW), dw = rr % int(KW);
                    float16_t v[8];
                    if (cRow) {
                        // One input row: the 8 windows step by the stride along it.
                        uint64_t base;
                        uint index;
                        bool inRow = k < K && input_row(xBase, cBase, ci, cU + dt, cH + dh, base, index);
                        [[unroll]] for (uint e = 0u; e < 8u; e++) {
                            int wi = cW + dw + int(e * p.sw);
                            v[e] = inRow && uint(wi) < p.W ? input_at(base, index + uint(wi)) : float16_t(0.0);
                        }
                    } else {
                        [[unroll]] for (uint e = 0u; e < 8u; e++) {
                            uint ne = n + e, we = ne % p.Wo, he = (ne / p.Wo) % p.Ho, te = ne / p.Wo / p.Ho;
                            int u = ne < N ? int(te * p.st) - p.tFront + dt : OUTSIDE;
                            int wi = int(we * p.sw) - p.padLeft + dw;
                            uint64_t base;
                            uint index;
                            bool inRow = k < K && input_row(xBase, cBase, ci, u, int(he * p.sh) - p.padTop + dh, base, index);
                            v[e] = inRow && uint(wi) < p.W ? input_at(base, index + uint(wi)) : float16_t(0.0);
                        }
                    }
                    [[unroll]] for (uint e = 0u; e < 8u; e++) convB[off + r * BN + c + e] = v[e];
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
