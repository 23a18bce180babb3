#version 450
// Layout copies between strided views: copy / permute / slice / concat.
//
// The host reduces both views to the fewest dimensions (size-1 dims dropped, dims ordered by the
// destination's strides, contiguous neighbours merged) and, for same-dtype copies, to the widest raw
// unit (1..16 bytes) the layout allows. Offsets are 32-bit counts of units from each view's first
// element; the byte address is formed in 64 bits, so a tensor may be larger than maxStorageBufferRange.
//
// MODE 0: one unit per invocation, 1D grid over the destination's units; index -> coordinates -> offsets.
// MODE 1: tiled transpose (32x32 tiles through shared memory) when the source's contiguous dimension
//         (p.aux) is not the destination's innermost one (rank - 1): reads and writes both coalesced.
// MODE 2: concatenation of up to 4 dense inputs (same dtype as the output) in one dispatch: the output
//         is [outer, p.sst[0]] units; this group of inputs fills units [p.sst[1], p.sst[1] + p.shape[rank])
//         of every row, input k the part [p.shape[k], p.shape[k+1]) of that range.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = LINEAR_WG) in;
layout(constant_id = 0) const uint MODE = 0;
layout(constant_id = 1) const uint SRC_DT = 0;
layout(constant_id = 2) const uint DST_DT = 0;
layout(constant_id = 3) const uint RAW = 1;   // 1: copy UNIT raw bytes; 0: convert SRC_DT -> DST_DT
layout(constant_id = 4) const uint UNIT = 4;  // bytes per raw unit: 1, 2, 4, 8 or 16

layout(buffer_reference, std430, buffer_reference_align = 16) buffer U32x4Ref { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer U32x2Ref { uvec2 v[]; };

layout(push_constant) uniform P {
    uint64_t dst;
    uint64_t src0;
    uint64_t src1;   // MODE 2 only
    uint64_t src2;   // MODE 2 only
    uint64_t src3;   // MODE 2 only
    uint n;          // MODE 0/2: destination units; MODE 1: tiles (workgroups)
    uint rank;       // MODE 0/1: dimensions; MODE 2: number of inputs
    uint aux;        // MODE 1: the source's contiguous dimension
    uint shape[6];   // MODE 2: starts of the inputs within the group, shape[rank] = group length
    uint sst[6];     // source strides in units (MODE 2: output row length, group start)
    uint dstr[6];    // destination strides in units
} p;

// Bytes per unit of each view: the raw unit, or the element size when converting.
const uint SES = RAW == 1u ? UNIT
    : ((SRC_DT == DT_F32 || SRC_DT == DT_I32) ? 4u : ((SRC_DT == DT_F16 || SRC_DT == DT_BF16) ? 2u : 1u));
const uint DES = RAW == 1u ? UNIT
    : ((DST_DT == DT_F32 || DST_DT == DT_I32) ? 4u : ((DST_DT == DT_F16 || DST_DT == DT_BF16) ? 2u : 1u));

void copy_unit(uint64_t s, uint64_t d) {
    if (UNIT == 16u) U32x4Ref(d).v[0] = U32x4Ref(s).v[0];
    else if (UNIT == 8u) U32x2Ref(d).v[0] = U32x2Ref(s).v[0];
    else if (UNIT == 4u) U32Ref(d).v[0] = U32Ref(s).v[0];
    else if (UNIT == 2u) U16Ref(d).v[0] = U16Ref(s).v[0];
    else U8Ref(d).v[0] = U8Ref(s).v[0];
}

// One element (MODE 0/1) as 32 bits: raw bits, or the value as float bits when converting.
uint load_unit(uint64_t a) {
    if (RAW == 0u) return floatBitsToUint(load_elem(a, SRC_DT, 0u));
    if (UNIT == 4u) return U32Ref(a).v[0];
    if (UNIT == 2u) return uint(U16Ref(a).v[0]);
    return uint(U8Ref(a).v[0]);
}

void store_unit(uint64_t a, uint v) {
    if (RAW == 0u) store_elem(a, DST_DT, 0u, uintBitsToFloat(v));
    else if (UNIT == 4u) U32Ref(a).v[0] = v;
    else if (UNIT == 2u) U16Ref(a).v[0] = uint16_t(v);
    else U8Ref(a).v[0] = uint8_t(v);
}


shared uint tile[32][33];

void strided() {
    uint i = linear_id();
    if (i >= p.n) return;
    uint rem = i, so = 0u, dof = 0u;
    for (int d = int(p.rank) - 1; d > 0; --d) {
        uint sz = p.shape[d];
        uint q = rem / sz;
        uint c = rem - q * sz;
        so += c * p.sst[d];
        dof += c * p.dstr[d];
        rem = q;
    }
    so += rem * p.sst[0];
    dof += rem * p.dstr[0];
    uint64_t sa = p.src0 + uint64_t(so) * SES;
    uint64_t da = p.dst + uint64_t(dof) * DES;
    if (RAW == 1u) copy_unit(sa, da);
    else store_elem(da, DST_DT, 0u, load_elem(sa, SRC_DT, 0u));
}

void tiled() {
    uint g = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (g >= p.n) return; // uniform over the workgroup
    uint L = p.rank - 1u, S = p.aux;
    uint nL = p.shape[L], nS = p.shape[S];
    uint tilesL = (nL + 31u) / 32u, tilesS = (nS + 31u) / 32u;
    uint tl = g % tilesL;
    g /= tilesL;
    uint ts = g % tilesS;
    g /= tilesS;
    uint so = 0u, dof = 0u;
    for (int d = int(L) - 1; d >= 0; --d) {
        if (uint(d) == S) continue;
        uint sz = p.shape[d];
        uint q = g / sz;
        uint c = g - q * sz;
        so += c * p.sst[d];
        dof += c * p.dstr[d];
        g = q;
    }
    uint tx = gl_LocalInvocationID.x & 31u, ty = gl_LocalInvocationID.x >> 5u;
    // Read: consecutive invocations walk the source's contiguous dimension S.
    for (uint k = 0u; k < 32u; k += 8u) {
        uint iS = ts * 32u + tx, iL = tl * 32u + ty + k;
        if (iS < nS && iL < nL) tile[ty + k][tx] = load_unit(p.src0 + uint64_t(so + iS * p.sst[S] + iL * p.sst[L]) * SES);
    }
    barrier();
    // Write: consecutive invocations walk the destination's innermost dimension L.
    for (uint k = 0u; k < 32u; k += 8u) {
        uint iL = tl * 32u + tx, iS = ts * 32u + ty + k;
        if (iS < nS && iL < nL) store_unit(p.dst + uint64_t(dof + iL * p.dstr[L] + iS * p.dstr[S]) * DES, tile[tx][ty + k]);
    }
}

void concat() {
    uint i = linear_id();
    if (i >= p.n) return;
    uint group = p.shape[p.rank];
    uint o = i / group;
    uint j = i - o * group;
    uint k = 0u;
    for (uint q = 1u; q < p.rank; ++q) k += (j >= p.shape[q]) ? 1u : 0u;
    uint st = p.shape[k], len = p.shape[k + 1u] - st;
    uint64_t base = k == 0u ? p.src0 : (k == 1u ? p.src1 : (k == 2u ? p.src2 : p.src3));
    copy_unit(base + uint64_t(o * len + (j - st)) * UNIT, p.dst + uint64_t(o * p.sst[0] + p.sst[1] + j) * UNIT);
}

void main() {
    if (MODE == 1u) tiled();
    else if (MODE == 2u) concat();
    else strided();
}
