// The causal 3-D convolution of conv3d.comp on VK_NV_cooperative_matrix2's workgroup-scope matrices with every operand
// loaded through tensor layouts (the driver stages them all; no gather code): for convolutions of width stride 1. A
// workgroup computes BM output channels x BN consecutive voxels of one output row (t', h'), summing over the taps
// (dt, dh, dw) and BK-wide slices of input channels:
//   out[m0.., t', h', w0..] += W[m0.., ci0.., dt, dh, dw] · in[ci0.., u, h, w0 + dw − padLeft ..]
// with u = t'·st + dt − (zero and cached frames in front), h = h'·sh + dh − padTop:
//   the weights as a 3-D tensor [Cout, Cin, taps] (slice: BM channels, BK input channels, one tap);
//   the input as a 4-D tensor [Cin, T, H, W] of x, or of the cache [Cin, Tc, H, W] for frames before x (slice: BK
//   channels, one frame, one row, BN columns; clamping gives the zero padding: columns outside the row, channels
//   past Cin); taps on zero frames or rows outside the frame are skipped (the same for the whole workgroup);
//   the residual and the output as 4-D tensors [Cout, T', H', W'] (columns past W' and channels past Cout dropped).
// fp16 operands (f16 as is, f32 and bf16 rounded by decode functions), fp32 accumulation, bias per element, f32 or f16
// outputs. x and the cache share one dtype. Natively (conv3d_rows_cm2.comp) it needs glslang 15 and a device with
// VK_NV_cooperative_matrix2; the host checks width stride 1, 16-byte aligned bases of the weights and of every batch
// of x, the cache, the output and the residual. conv3d_rows_cm2_emulated.comp runs the same code on emulated matrices.
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x_id = 5) in;

layout(constant_id = 0) const uint BM = 128;     // output channels per workgroup
layout(constant_id = 1) const uint BN = 128;     // output voxels (of one row) per workgroup
layout(constant_id = 2) const uint BK = 32;      // input channels per slice
// constants 3 and 4 are not used; 5 is the workgroup size
#include "conv3d_constants.glsl"

#include "conv3d_params.glsl"

#define CM2_EMU_A_SIZE (BM * BK)
#define CM2_EMU_B_SIZE (BK * BN)
#include "cm2.glsl"
#include "cm2_nd.glsl"
#include "cm2_output.glsl"
CM2_ND_DECODERS(3)
CM2_ND_DECODERS(4)

const uint TAPS = KT * KH * KW;

#include "conv3d_cm2_bias.glsl"

void main() {
    uint M = p.Cout, Cin = p.Cin;
    uint m0 = gl_WorkGroupID.y * BM;
    uint segments = (p.Wo + BN - 1u) / BN;
    uint tiles = p.To * p.Ho * segments;
    uint xs = dt_size(X_DT);

    for (uint z = gl_WorkGroupID.z; z < p.batch; z += gl_NumWorkGroups.z) {
        uint64_t xBase = p.x + uint64_t(z) * uint64_t(Cin * p.T * p.H * p.W) * xs;
        uint64_t cBase = p.cache + uint64_t(z) * uint64_t(Cin * p.Tc * p.H * p.W) * xs;
        uint64_t outBase = p.out_ + uint64_t(z) * uint64_t(M * p.To * p.Ho * p.Wo) * uint64_t(dt_size(OUT_DT));
        uint64_t resBase = p.res + uint64_t(z) * uint64_t(M * p.To * p.Ho * p.Wo) * uint64_t(dt_size(RES_DT));

        for (uint tile = gl_WorkGroupID.x; tile < tiles; tile += gl_NumWorkGroups.x) {
            uint wo0 = (tile % segments) * BN, row = tile / segments;
            uint ho = row % p.Ho, to = row / p.Ho;

            CM2_ACC(BM, BN) acc;
            CM2_ACC_FILL(acc, BM, BN, 0.0);
            for (uint dt = 0u; dt < KT; dt++) {
                int u = int(to * p.st + dt) - p.tFront;
                if (u < -int(p.Tc)) continue;                   // a zero frame in front
                // The frame: x's frame u, or, before x, the cache's frame Tc + u (the same for the whole workgroup).
                uint64_t base = u >= 0 ? xBase : cBase;
                uint frames = u >= 0 ? p.T : p.Tc;
                int f = u >= 0 ? u : int(p.Tc) + u;
                for (uint dh = 0u; dh < KH; dh++) {
                    int hi = int(ho * p.sh + dh) - p.padTop;
                    if (hi < 0 || hi >= int(p.H)) continue;     // a zero row above or below
                    for (uint dw = 0u; dw < KW; dw++) {
                        uint tap = (dt * KH + dh) * KW + dw;
                        int w0 = int(wo0 + dw) - p.padLeft;
                        for (uint ci0 = 0u; ci0 < Cin; ci0 += BK) {
                            // The weights of this tap for channels ci0.. times the input row hi, columns w0.., of frame f.
                            CM2_A(BM, BK) ma;
                            CM2_B(BK, BN) mb;
                            if (W_DT == DT_F16) CM2_LOAD3(ma, BM, BK, float16_t, Cm2F16, p.w, M, Cin, TAPS, m0, BM, ci0, BK, tap, 1u);
                            else if (W_DT == DT_F32) CM2_LOAD3_DECODE(ma, BM, BK, float16_t, p.w, M, Cin, TAPS, m0, BM, ci0, BK, tap, 1u, from_f32_3, F32Elem, 4u);
                            else CM2_LOAD3_DECODE(ma, BM, BK, float16_t, p.w, M, Cin, TAPS, m0, BM, ci0, BK, tap, 1u, from_bf16_3, U16Elem, 2u);
                            if (X_DT == DT_F16) CM2_LOAD4(mb, BK, BN, float16_t, Cm2F16, base, Cin, frames, p.H, p.W, ci0, BK, f, 1u, hi, 1u, w0, BN);
                            else if (X_DT == DT_F32) CM2_LOAD4_DECODE(mb, BK, BN, float16_t, base, Cin, frames, p.H, p.W, ci0, BK, f, 1u, hi, 1u, w0, BN, from_f32_4, F32Elem, 4u);
                            else CM2_LOAD4_DECODE(mb, BK, BN, float16_t, base, Cin, frames, p.H, p.W, ci0, BK, f, 1u, hi, 1u, w0, BN, from_bf16_4, U16Elem, 2u);
                            CM2_MULADD(acc, ma, mb, BM, BK, BN);
                        }
                    }
                }
            }

            CM2_PER_ELEMENT(acc, acc, BM, BN, tile_output, m0);
            CM2_RESIDUAL_STORE4(acc, BM, BN, resBase, outBase, M, p.To, p.Ho, p.Wo, m0, BM, to, 1u, ho, 1u, wo0, BN);
        }
    }
}
