// The tensor cores' throughput on their own: each subgroup runs ITER rounds of ACC independent accumulations
// acc[j] += A·B of 16x16 fp16 fragments. With SHARED_A = 0 the fragments are loaded once and the loop runs from
// registers (no memory traffic), so its time is what the cooperative-matrix API and the driver reach, the ceiling
// any kernel built on them can approach. With SHARED_A = m > 0 every round first loads m A fragments and ACC/m B
// fragments from shared memory (copies of A and B in padded rows, a different copy each round so that no load
// can be hoisted) and multiplies each A with each B: the inner loop of the tensor-core GEMM (4 × 2 fragments for
// its 64x32 subgroup tile) without staging or barriers; SHARED_U4 = 1 loads them from a uvec4 array of packed
// halves, as the GEMM and the convolution do, against a float16_t array. Output: per subgroup, the sum of its accumulators
// (accumulator j starts at j: ACC·(ACC − 1)/2 + ITER · ACC · A·B, exact for small-integer inputs) as a dense
// 16x16 fp32 tile. Built with PEAK_NAMED: the register-only loop with 8 accumulators as named variables (no arrays,
// no loops over fragments: every shape fixed at compile time), against the arrays sized by specialization constants.
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_extensions.glsl"
#include "common.glsl"

layout(local_size_x_id = 0) in;
#define CM_EMU_LAYOUT_ID 4
#include "coopmat.glsl"

layout(constant_id = 0) const uint WG = 128;   // 32 · subgroups
#ifdef PEAK_NAMED
const uint ACC = 8u;
const uint SHARED_A = 0u;
const uint SHARED_U4 = 0u;
#else
layout(constant_id = 1) const uint ACC = 8;    // independent accumulators per subgroup (1 ... 16)
layout(constant_id = 2) const uint SHARED_A = 0; // A fragments loaded from shared memory per round (0: registers only)
layout(constant_id = 3) const uint SHARED_U4 = 0; // 1: load them from a uvec4 array of packed halves (as the GEMM does)
#endif

layout(buffer_reference, std430, buffer_reference_align = 2) readonly buffer RoU16 { uint16_t v[]; };

layout(push_constant) uniform P {
    uint64_t ab;    // A then B: 2 × 256 fp16, row-major
    uint64_t out_;  // [groups · WG/32, 16, 16] fp32
    uint iter;
} p;

const uint COPIES = 4u;                        // copies of A and of B in shared memory
const uint LD = 24u;                            // their row stride in halves (16 + 8: conflict-free rows)
const uint NA = SHARED_A == 0u ? 1u : SHARED_A;  // fragments loaded a round (when SHARED_A > 0)
const uint NB = ACC / NA;

shared float16_t abs_[2u * COPIES * 16u * LD]; // A copies, then B copies
shared uvec4 abs4[2u * COPIES * 16u * LD / 8u]; // the same packed 8 halves a uvec4 (SHARED_U4)
shared float tile_[WG * 8u];   // per subgroup 256 floats

void main() {
    const uint tid = gl_LocalInvocationID.x, sg = CM_SG, lane = CM_LANE;
    for (uint i = tid; i < 2u * COPIES * 256u; i += WG) {
        uint m = i / (COPIES * 256u), r = (i / 16u) % (COPIES * 16u), c = i % 16u;   // matrix, row (all copies), column
        abs_[(m * COPIES * 16u + r) * LD + c] = uint16BitsToFloat16(RoU16(p.ab).v[m * 256u + (r % 16u) * 16u + c]);
    }
    barrier();
    if (SHARED_U4 != 0u) {
        for (uint i = tid; i < 2u * COPIES * 16u * LD / 8u; i += WG) {
            uvec4 w;
            [[unroll]] for (uint e = 0u; e < 4u; e++) w[e] = packFloat2x16(f16vec2(abs_[i * 8u + 2u * e], abs_[i * 8u + 2u * e + 1u]));
            abs4[i] = w;
        }
        barrier();
    }
    CM_F16A a;
    CM_F16B b;
    CM_LOAD(a, abs_, 0, LD, false);
    CM_LOAD(b, abs_, COPIES * 16u * LD, LD, false);
    // Accumulator j starts at j everywhere: no two chains are provably equal, so none can be merged away.
#ifdef PEAK_NAMED
#define PEAK_START(x, j) CM_F32 x = CM_F32_ZERO; [[unroll]] for (uint i = 0u; i < x.length(); i++) x[i] = float(j);
    PEAK_START(c0, 0) PEAK_START(c1, 1) PEAK_START(c2, 2) PEAK_START(c3, 3)
    PEAK_START(c4, 4) PEAK_START(c5, 5) PEAK_START(c6, 6) PEAK_START(c7, 7)
#undef PEAK_START
    for (uint it = 0u; it < p.iter; it++) {
        c0 = cm_mma(a, b, c0); c1 = cm_mma(a, b, c1); c2 = cm_mma(a, b, c2); c3 = cm_mma(a, b, c3);
        c4 = cm_mma(a, b, c4); c5 = cm_mma(a, b, c5); c6 = cm_mma(a, b, c6); c7 = cm_mma(a, b, c7);
    }
    [[unroll]] for (uint i = 0u; i < c0.length(); i++) c0[i] += ((c1[i] + c2[i]) + (c3[i] + c4[i])) + ((c5[i] + c6[i]) + c7[i]);
    CM_STORE(c0, tile_, sg * 256u, 16, false);
#else
    CM_F32 acc[ACC];
    CM_UNROLL for (uint j = 0u; j < ACC; j++) {
        acc[j] = CM_F32_ZERO;
        [[unroll]] for (uint i = 0u; i < acc[j].length(); i++) acc[j][i] = float(j);
    }
    if (SHARED_A == 0u) {
        for (uint it = 0u; it < p.iter; it++) {
            CM_UNROLL for (uint j = 0u; j < ACC; j++) acc[j] = cm_mma(a, b, acc[j]);
        }
    } else {
        for (uint it = 0u; it < p.iter; it++) {
            CM_F16A af[NA];
            CM_F16B bf[NB];
            if (SHARED_U4 != 0u) {   // offsets and strides in uvec4
                CM_UNROLL for (uint i = 0u; i < NA; i++)
                    CM_LOAD_U4H(af[i], abs4, ((it + i) % COPIES) * 16u * LD / 8u, LD / 8u, false);
                CM_UNROLL for (uint j = 0u; j < NB; j++)
                    CM_LOAD_U4H(bf[j], abs4, (COPIES + (it + j) % COPIES) * 16u * LD / 8u, LD / 8u, false);
            } else {
                CM_UNROLL for (uint i = 0u; i < NA; i++)
                    CM_LOAD(af[i], abs_, ((it + i) % COPIES) * 16u * LD, LD, false);
                CM_UNROLL for (uint j = 0u; j < NB; j++)
                    CM_LOAD(bf[j], abs_, (COPIES + (it + j) % COPIES) * 16u * LD, LD, false);
            }
            CM_UNROLL for (uint i = 0u; i < NA; i++)
            CM_UNROLL for (uint j = 0u; j < NB; j++)
                acc[i * NB + j] = cm_mma(af[i], bf[j], acc[i * NB + j]);
        }
    }
    // Constant indices only (unrolled), so the accumulators can stay in registers.
    CM_UNROLL for (uint j = 1u; j < ACC; j++)
        [[unroll]] for (uint i = 0u; i < acc[0].length(); i++) acc[0][i] += acc[j][i];
    CM_STORE(acc[0], tile_, sg * 256u, 16, false);
#endif
    CM_SUBGROUP_SYNC();
    const uint base = (gl_WorkGroupID.x * (WG / 32u) + sg) * 256u;
    for (uint e = lane; e < 256u; e += 32u) F32Ref(p.out_).v[base + e] = tile_[sg * 256u + e];
}
