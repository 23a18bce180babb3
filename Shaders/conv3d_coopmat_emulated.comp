#version 450
// The tensor-core causal 3-D convolution (include/conv3d_coopmat.glsl) with emulated cooperative matrices
// (include/coopmat.glsl): slow, for testing the shader's logic on devices without tensor cores.
#define CM_EMULATE 1
#extension GL_GOOGLE_include_directive : enable
#include "conv3d_coopmat.glsl"
