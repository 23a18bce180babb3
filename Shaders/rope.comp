#version 450
// Rotary position embedding with interleaved pairs (Wan 3D RoPE, spec §3.9). One invocation per
// channel pair (2p, 2p+1) of x[b, l, h, :]:
//   out[2p]   = x[2p] cos(theta) - x[2p+1] sin(theta)
//   out[2p+1] = x[2p] sin(theta) + x[2p+1] cos(theta)
// with (cos, sin) from the host-built f32 table [tableL, P, 2]. Tokens l >= tableL (sequence padding)
// are copied unchanged. x is read through strides (b, l, h, channel); out is dense [B, L, H, 2P].
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = LINEAR_WG) in;
layout(constant_id = 0) const uint X_DT = 0;
layout(constant_id = 1) const uint OUT_DT = 0;

layout(push_constant) uniform P {
    uint64_t x;
    uint64_t dst;
    uint64_t table;
    uint n;       // B * L * H * pairs
    uint pairs;   // head_dim / 2
    uint heads;
    uint seq;     // L of x
    uint table_len;
    uint sb, sl, sh, sd; // strides of x in elements
} p;

void main() {
    uint i = linear_id();
    if (i >= p.n) return;
    uint r = i / p.pairs;
    uint pair = i - r * p.pairs;
    uint r2 = r / p.heads;
    uint h = r - r2 * p.heads;
    uint b = r2 / p.seq;
    uint l = r2 - b * p.seq;
    uint ox = b * p.sb + l * p.sl + h * p.sh + 2u * pair * p.sd;
    float x0 = load_elem(p.x, X_DT, ox);
    float x1 = load_elem(p.x, X_DT, ox + p.sd);
    if (l < p.table_len) {
        uint t = 2u * (l * p.pairs + pair);
        float c = F32Ref(p.table).v[t];
        float s = F32Ref(p.table).v[t + 1u];
        float y0 = fma(x0, c, -(x1 * s));
        float y1 = fma(x0, s, x1 * c);
        x0 = y0;
        x1 = y1;
    }
    store_elem(p.dst, OUT_DT, 2u * i, x0);
    store_elem(p.dst, OUT_DT, 2u * i + 1u, x1);
}
