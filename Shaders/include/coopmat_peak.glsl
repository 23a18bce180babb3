// The tensor cores' throughput on their own: each subgroup loads one 16x16 fp16 A and B fragment and then runs
// ITER rounds of ACC independent accumulations acc[j] += A·B from registers (no memory traffic in the loop), so
// its time measures what the cooperative-matrix API and the driver reach, the ceiling any kernel built on them
// can approach. Output: per subgroup, the sum of its accumulators (accumulator j starts at j: ACC·(ACC − 1)/2 +
// ITER · ACC · A·B, exact for small-integer inputs) as a dense 16x16 fp32 tile.
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_extensions.glsl"
#include "common.glsl"

layout(local_size_x_id = 0) in;
#define CM_EMU_LAYOUT_ID 2
#include "coopmat.glsl"

layout(constant_id = 0) const uint WG = 128;   // 32 · subgroups
layout(constant_id = 1) const uint ACC = 8;    // independent accumulators per subgroup (1 ... 16)

layout(buffer_reference, std430, buffer_reference_align = 2) readonly buffer RoU16 { uint16_t v[]; };

layout(push_constant) uniform P {
    uint64_t ab;    // A then B: 2 × 256 fp16, row-major
    uint64_t out_;  // [groups · WG/32, 16, 16] fp32
    uint iter;
} p;

shared float16_t abs_[512];
shared float tile_[WG * 8u];   // per subgroup 256 floats

void main() {
    const uint tid = gl_LocalInvocationID.x, sg = CM_SG, lane = CM_LANE;
    for (uint i = tid; i < 512u; i += WG) abs_[i] = uint16BitsToFloat16(RoU16(p.ab).v[i]);
    barrier();
    CM_F16A a;
    CM_F16B b;
    CM_LOAD(a, abs_, 0, 16, false);
    CM_LOAD(b, abs_, 256, 16, false);
    // Accumulator j starts at j everywhere: no two chains are provably equal, so none can be merged away.
    CM_F32 acc[ACC];
    CM_UNROLL for (uint j = 0u; j < ACC; j++) {
        acc[j] = CM_F32_ZERO;
        [[unroll]] for (uint i = 0u; i < acc[j].length(); i++) acc[j][i] = float(j);
    }
    for (uint it = 0u; it < p.iter; it++) {
        CM_UNROLL for (uint j = 0u; j < ACC; j++) acc[j] = cm_mma(a, b, acc[j]);
    }
    // Constant indices only (unrolled), so the accumulators can stay in registers.
    CM_UNROLL for (uint j = 1u; j < ACC; j++)
        [[unroll]] for (uint i = 0u; i < acc[0].length(); i++) acc[0][i] += acc[j][i];
    CM_STORE(acc[0], tile_, sg * 256u, 16, false);
    CM_SUBGROUP_SYNC();
    const uint base = (gl_WorkGroupID.x * (WG / 32u) + sg) * 256u;
    for (uint e = lane; e < 256u; e += 32u) F32Ref(p.out_).v[base + e] = tile_[sg * 256u + e];
}
