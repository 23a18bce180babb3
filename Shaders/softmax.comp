#version 450
// Softmax over the last dimension of x * scale: y = exp(x*scale - max) / sum(exp(x*scale - max)), fp32 math.
// x is [rows, n]; TPR threads (a power of two) share one row and a 256-thread workgroup holds
// 256 / TPR rows. Each thread keeps its CACHE strided elements in registers when the row fits
// (CACHE > 0), else re-reads them. Max and sum are combined with a shared-memory tree (no assumption
// on the subgroup size).
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint X_DT = 0;
layout(constant_id = 1) const uint OUT_DT = 0;
layout(constant_id = 2) const uint TPR = 256;
layout(constant_id = 3) const uint CACHE = 8;

const uint CACHE_LEN = CACHE > 0 ? CACHE : 1;
const uint WG = 256;

layout(push_constant) uniform P {
    uint64_t x;
    uint64_t y;
    uint rows;
    uint n;
    float scale;
} p;

shared float red[WG];

// NaN-propagating maximum.
float max_nan(float a, float b) { return (a > b || isnan(a)) ? a : b; }

// Combines v over the TPR threads of this row (max when is_max, else sum). Every invocation calls it.
float row_reduce(float v, bool is_max) {
    if (TPR == 1) return v;
    uint lid = gl_LocalInvocationID.x;
    uint t = lid & (TPR - 1);
    red[lid] = v;
    barrier();
    for (uint s = TPR / 2; s > 0; s >>= 1) {
        if (t < s) red[lid] = is_max ? max_nan(red[lid], red[lid + s]) : red[lid] + red[lid + s];
        barrier();
    }
    float r = red[lid - t];
    barrier();
    return r;
}

void main() {
    uint lid = gl_LocalInvocationID.x;
    uint t = lid & (TPR - 1);
    uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint row = group * (WG / TPR) + lid / TPR;
    bool valid = row < p.rows;
    uint n = p.n;
    uint base = valid ? row * n : 0u;
    float scale = p.scale;
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    bool cached = CACHE > 0;

    float c[CACHE_LEN];
    float m = NEG_INF;
    if (cached) {
        for (uint k = 0; k < CACHE_LEN; k++) {
            uint i = t + k * TPR;
            c[k] = (valid && i < n) ? load_elem(p.x, X_DT, base + i) * scale : NEG_INF;
            m = max_nan(m, c[k]);
        }
    } else if (valid) {
        for (uint i = t; i < n; i += TPR) m = max_nan(m, load_elem(p.x, X_DT, base + i) * scale);
    }
    m = row_reduce(m, true);

    float s = 0.0;
    if (cached) {
        for (uint k = 0; k < CACHE_LEN; k++) {
            if (t + k * TPR < n) {
                c[k] = exp(c[k] - m);
                s += c[k];
            }
        }
    } else if (valid) {
        for (uint i = t; i < n; i += TPR) s += exp(load_elem(p.x, X_DT, base + i) * scale - m);
    }
    float inv = 1.0 / row_reduce(s, false);
    if (!valid) return;
    if (cached) {
        for (uint k = 0; k < CACHE_LEN; k++) {
            uint i = t + k * TPR;
            if (i < n) store_elem(p.y, OUT_DT, base + i, c[k] * inv);
        }
    } else {
        for (uint i = t; i < n; i += TPR) {
            store_elem(p.y, OUT_DT, base + i, exp(load_elem(p.x, X_DT, base + i) * scale - m) * inv);
        }
    }
}
