#version 450
// The tensor-core throughput probe (include/coopmat_peak.glsl) on VK_NV_cooperative_matrix.
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_peak.glsl"
