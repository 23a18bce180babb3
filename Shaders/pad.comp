#version 450
// Constant padding: dense out[c] = x[c - before] where every coordinate is inside x, else `value`.
//
// The host merges unpadded contiguous dimensions into their outer neighbour, so the rank here is small.
// One output element per invocation; source offsets are 32-bit element counts from x's first element,
// byte addresses are formed in 64 bits (tensors may exceed maxStorageBufferRange).
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = LINEAR_WG) in;
layout(constant_id = 0) const uint SRC_DT = 0;
layout(constant_id = 1) const uint DST_DT = 0;

const uint SES = (SRC_DT == DT_F32 || SRC_DT == DT_I32) ? 4u : ((SRC_DT == DT_F16 || SRC_DT == DT_BF16) ? 2u : 1u);
const uint DES = (DST_DT == DT_F32 || DST_DT == DT_I32) ? 4u : ((DST_DT == DT_F16 || DST_DT == DT_BF16) ? 2u : 1u);

layout(push_constant) uniform P {
    uint64_t src;
    uint64_t dst;
    uint n;           // output elements
    uint rank;
    uint value;       // the pad value's bits in DST_DT (low DES bytes)
    uint oshape[6];   // output shape
    uint before[6];   // elements added in front of each dim
    uint ishape[6];   // input shape
    uint sst[6];      // input strides (elements)
} p;


void store_raw(uint64_t a, uint v) {
    if (DES == 4u) U32Ref(a).v[0] = v;
    else if (DES == 2u) U16Ref(a).v[0] = uint16_t(v);
    else U8Ref(a).v[0] = uint8_t(v);
}

uint load_raw(uint64_t a) {
    if (SES == 4u) return U32Ref(a).v[0];
    if (SES == 2u) return uint(U16Ref(a).v[0]);
    return uint(U8Ref(a).v[0]);
}

void main() {
    uint i = linear_id();
    if (i >= p.n) return;
    uint rem = i, so = 0u;
    bool inside = true;
    for (int d = int(p.rank) - 1; d >= 0; --d) {
        uint c = rem;
        if (d > 0) {
            uint q = rem / p.oshape[d];
            c = rem - q * p.oshape[d];
            rem = q;
        }
        uint ci = c - p.before[d]; // wraps to a huge value in front of x
        inside = inside && ci < p.ishape[d];
        so += ci * p.sst[d];
    }
    uint64_t da = p.dst + uint64_t(i) * DES;
    if (!inside) {
        store_raw(da, p.value);
    } else {
        uint64_t sa = p.src + uint64_t(so) * SES;
        if (SRC_DT == DST_DT) store_raw(da, load_raw(sa));
        else store_elem(da, DST_DT, 0u, load_elem(sa, SRC_DT, 0u));
    }
}
