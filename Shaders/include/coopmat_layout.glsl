// Which elements of a 16x16 fp32 accumulator fragment each lane holds: one subgroup loads a fragment from a table
// whose element (r, c) is r·16 + c and writes, per lane, its elements in order (out[lane·8 + i], 8 slots a lane)
// and their count (out[256 + lane]). The host compares that with the layout a shader relies on (the register
// softmax of attention_coopmat_rs.glsl relies on NVIDIA's mma layout).
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_extensions.glsl"
#include "common.glsl"

layout(local_size_x_id = 0) in;
#define CM_EMU_LAYOUT_ID 1
#include "coopmat.glsl"

layout(constant_id = 0) const uint WG = 32;

layout(push_constant) uniform P {
    uint64_t out_;  // 288 fp32
} p;

shared float table[256];

void main() {
    const uint lane = CM_LANE;
    for (uint i = gl_LocalInvocationID.x; i < 256u; i += WG) table[i] = float(i);
    barrier();
    CM_F32 m;
    CM_LOAD(m, table, 0, 16, false);
    const uint n = uint(m.length());
    for (uint i = 0u; i < 8u; i++) F32Ref(p.out_).v[lane * 8u + i] = i < n ? m[i] : -1.0;
    F32Ref(p.out_).v[256u + lane] = float(n);
}
