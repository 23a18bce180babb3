// Specialization constants, push constants and derived sizes shared by the tensor-core attention shaders
// (attention_coopmat.glsl, attention_coopmat_rs.glsl): same layouts, push constants and grid as attention.comp.

layout(constant_id = 0) const uint WG = 128;    // 32 · SG
layout(constant_id = 1) const uint SG = 4;      // subgroups; BR = 16 · SG query rows per workgroup
layout(constant_id = 2) const uint BC = 64;     // keys per block (multiple of 32)
layout(constant_id = 3) const uint HD = 128;    // head dim (multiple of 16)
layout(constant_id = 4) const uint Q_DT = 0;
layout(constant_id = 5) const uint K_DT = 0;
layout(constant_id = 6) const uint V_DT = 0;
layout(constant_id = 7) const uint O_DT = 0;
layout(constant_id = 8) const uint VEC_Q = 0;   // 4-element vector loads allowed (strides, address aligned)
layout(constant_id = 9) const uint VEC_K = 0;
layout(constant_id = 10) const uint VEC_V = 0;

#include "attention_push.glsl"

const float NEG = -1.0e30;
const uint BR = 16u * SG;
const uint FD = HD / 16u;              // fragments along the head dim
const uint FC = BC / 16u;              // fragments along a key block
const uint LDT = HD + 8u;              // row stride (halves) of the staged Q / K / V tiles
