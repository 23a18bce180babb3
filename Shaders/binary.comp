#version 450
// Elementwise binary op with NumPy broadcasting: out[i] = op(a[idx_a(i)], b[idx_b(i)]).
// `out` is dense; a and b are read through per-axis strides (0 on broadcast axes) over the
// host-coalesced output shape (RANK axes, at most 6). fp32 math.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = LINEAR_WG) in;
layout(constant_id = 0) const uint A_DT = 0;
layout(constant_id = 1) const uint B_DT = 0;
layout(constant_id = 2) const uint OUT_DT = 0;
layout(constant_id = 3) const uint OP = 0;
layout(constant_id = 4) const int RANK = 1;

layout(push_constant) uniform P {
    uint64_t a;
    uint64_t b;
    uint64_t dst;
    uint n;
    uint shape[6];
    uint sa[6];
    uint sb[6];
} p;

#define OP_ADD 0u
#define OP_SUB 1u
#define OP_MUL 2u
#define OP_DIV 3u
#define OP_MAX 4u
#define OP_MIN 5u

float apply_op(float x, float y) {
    if (OP == OP_ADD) return x + y;
    if (OP == OP_SUB) return x - y;
    if (OP == OP_MUL) return x * y;
    if (OP == OP_DIV) return x / y;
    // maximum / minimum propagate NaN (as torch.maximum / torch.minimum).
    if (isnan(x) || isnan(y)) return x + y;
    return OP == OP_MAX ? max(x, y) : min(x, y);
}

void main() {
    uint i = linear_id();
    if (i >= p.n) return;
    uint rem = i, oa = 0u, ob = 0u;
    for (int d = RANK - 1; d > 0; --d) {
        uint q = rem / p.shape[d];
        uint c = rem - q * p.shape[d];
        oa += c * p.sa[d];
        ob += c * p.sb[d];
        rem = q;
    }
    oa += rem * p.sa[0];
    ob += rem * p.sb[0];
    store_elem(p.dst, OUT_DT, i, apply_op(load_elem(p.a, A_DT, oa), load_elem(p.b, B_DT, ob)));
}
