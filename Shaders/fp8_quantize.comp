#version 450
// FP8 weight quantisation with scales, in two passes over a [rows, len] tensor:
//   PASS 0: scale[r] = max|x[r, :]| / FP8_MAX over finite values (1 when that is 0); one workgroup per row
//           (per-tensor scaling: one row spanning the whole tensor);
//   PASS 1: q[i] = fp8(x[i] / scale[row(i)]), round to nearest even, saturating.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = LINEAR_WG) in;
layout(constant_id = 0) const uint PASS = 0;
layout(constant_id = 1) const uint SRC_DT = 0;
layout(constant_id = 2) const uint DST_DT = DT_F8E4M3;
layout(constant_id = 3) const uint PER_ROW = 1;   // PASS 1: scale per row (1) or one scale (0)

layout(push_constant) uniform P {
    uint64_t src;
    uint64_t dst;
    uint64_t scale;
    uint rows;
    uint len;
    uint count;
} p;

shared float partial[LINEAR_WG];

void main() {
    if (PASS == 0u) {
        uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
        if (row >= p.rows) return;
        uint lid = gl_LocalInvocationID.x;
        float m = 0.0;
        // Non-finite values do not set the scale (they saturate or stay NaN when quantised).
        for (uint j = lid; j < p.len; j += LINEAR_WG) {
            float a = abs(load_elem(p.src, SRC_DT, row * p.len + j));
            if (a < uintBitsToFloat(0x7f800000u)) m = max(m, a);
        }
        partial[lid] = m;
        barrier();
        for (uint s = LINEAR_WG / 2u; s > 0u; s >>= 1) {
            if (lid < s) partial[lid] = max(partial[lid], partial[lid + s]);
            barrier();
        }
        if (lid == 0u) {
            float fmax = DST_DT == DT_F8E4M3 ? 448.0 : 57344.0;
            float a = partial[0];
            F32Ref(p.scale).v[row] = a > 0.0 ? a / fmax : 1.0;
        }
    } else {
        uint i = linear_id();
        if (i >= p.count) return;
        float s = F32Ref(p.scale).v[PER_ROW != 0u ? i / p.len : 0u];
        float q = load_elem(p.src, SRC_DT, i) / s;
        if (DST_DT == DT_F8E4M3) U8Ref(p.dst).v[i] = uint8_t(f32_to_f8e4m3(q));
        else U8Ref(p.dst).v[i] = uint8_t(f32_to_f8e5m2(q));
    }
}
