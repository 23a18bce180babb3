#version 450
// The tensor-core throughput probe (include/coopmat_peak.glsl) with 8 named accumulators (PEAK_NAMED) on VK_NV_cooperative_matrix.
#define PEAK_NAMED 1
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_peak.glsl"
