#version 450
// The tensor-core causal 3-D convolution (include/conv3d_coopmat.glsl) on VK_NV_cooperative_matrix.
#extension GL_GOOGLE_include_directive : enable
#include "conv3d_coopmat.glsl"
