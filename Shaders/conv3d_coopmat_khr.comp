#version 450
// The tensor-core causal 3-D convolution (include/conv3d_coopmat.glsl) on VK_KHR_cooperative_matrix (glslang 13 or
// newer: an optional build, Benchmarks/glslang-newer.sh).
#define CM_KHR 1
#extension GL_GOOGLE_include_directive : enable
#include "conv3d_coopmat.glsl"
