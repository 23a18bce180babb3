#version 450
// The accumulator-layout probe (include/coopmat_layout.glsl) on VK_NV_cooperative_matrix.
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_layout.glsl"
