#version 450
// Element type conversion of a dense tensor: dst[i] = convert(src[i]).
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = LINEAR_WG) in;
layout(constant_id = 0) const uint SRC_DT = 0;
layout(constant_id = 1) const uint DST_DT = 0;

layout(push_constant) uniform P {
    uint64_t src;
    uint64_t dst;
    uint n;
} p;

void main() {
    uint i = linear_id();
    if (i >= p.n) return;
    store_elem(p.dst, DST_DT, i, load_elem(p.src, SRC_DT, i));
}
