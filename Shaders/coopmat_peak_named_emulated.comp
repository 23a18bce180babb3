#version 450
// The tensor-core throughput probe (include/coopmat_peak.glsl) with 8 named accumulators (PEAK_NAMED) with emulated cooperative matrices (tests the shader on devices without them).
#define CM_EMULATE 1
#define PEAK_NAMED 1
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_peak.glsl"
