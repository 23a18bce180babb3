#version 450
// Reduction of the last dimension: x [rows, n] -> y [rows], fp32 accumulation.
// OP 0 sum, 1 mean, 2 max, 3 min, 4 sum of squares. Max and min propagate NaN.
// TPR threads (a power of two) share one row and a 256-thread workgroup holds 256 / TPR rows; the
// per-thread partial results are combined with a shared-memory tree (no assumption on the subgroup size).
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint X_DT = 0;
layout(constant_id = 1) const uint OUT_DT = 0;
layout(constant_id = 2) const uint OP = 0;
layout(constant_id = 3) const uint TPR = 256;

const uint WG = 256;

layout(push_constant) uniform P {
    uint64_t x;
    uint64_t y;
    uint rows;
    uint n;
} p;

shared float red[WG];

float combine(float a, float b) {
    if (OP == 2) return (a > b || isnan(a)) ? a : b;
    if (OP == 3) return (a < b || isnan(a)) ? a : b;
    return a + b;
}

void main() {
    uint lid = gl_LocalInvocationID.x;
    uint t = lid & (TPR - 1);
    uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint row = group * (WG / TPR) + lid / TPR;
    bool valid = row < p.rows;
    uint n = p.n;
    uint base = valid ? row * n : 0u;

    float acc = OP == 2 ? uintBitsToFloat(0xff800000u) : (OP == 3 ? uintBitsToFloat(0x7f800000u) : 0.0);
    if (valid) {
        for (uint i = t; i < n; i += TPR) {
            float v = load_elem(p.x, X_DT, base + i);
            acc = combine(acc, OP == 4 ? v * v : v);
        }
    }
    if (TPR > 1) {
        red[lid] = acc;
        barrier();
        for (uint s = TPR / 2; s > 0; s >>= 1) {
            if (t < s) red[lid] = combine(red[lid], red[lid + s]);
            barrier();
        }
        acc = red[lid];
    }
    if (valid && t == 0) {
        if (OP == 1) acc /= float(n);
        store_elem(p.y, OUT_DT, row, acc);
    }
}
