#version 450
// Row gather (embedding lookup): out[r, c] = table[ids[r], c] for a dense [V, D] table and i32 ids;
// an id outside [0, V) gives a row of zeros.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = LINEAR_WG) in;
layout(constant_id = 0) const uint TABLE_DT = 0;
layout(constant_id = 1) const uint OUT_DT = 0;

layout(push_constant) uniform P {
    uint64_t table;
    uint64_t ids;
    uint64_t dst;
    uint rows;   // number of ids
    uint width;  // D
    uint vocab;  // V
} p;

void main() {
    uint i = linear_id();
    if (i >= p.rows * p.width) return;
    uint r = i / p.width, c = i - r * p.width;
    int id = I32Ref(p.ids).v[r];
    float v = 0.0;
    if (id >= 0 && uint(id) < p.vocab) {
        // 64-bit row offset: a table may exceed 4 GiB.
        uint64_t row = p.table + uint64_t(uint(id)) * uint64_t(p.width) * uint64_t(TABLE_DT == DT_F32 ? 4u : 2u);
        v = load_elem(row, TABLE_DT, c);
    }
    store_elem(p.dst, OUT_DT, i, v);
}
