#version 450
// The tensor-core throughput probe (include/coopmat_peak.glsl) with 8 named accumulators (PEAK_NAMED) on VK_KHR_cooperative_matrix (glslang 13 or newer: an optional build, Benchmarks/glslang-newer.sh).
#define CM_KHR 1
#define PEAK_NAMED 1
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_peak.glsl"
