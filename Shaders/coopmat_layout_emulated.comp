#version 450
// The accumulator-layout probe (include/coopmat_layout.glsl) with emulated cooperative matrices (tests of the probe).
#define CM_EMULATE 1
#extension GL_GOOGLE_include_directive : enable
#include "coopmat_layout.glsl"
