#version 450
// The tensor-core GEMM on VK_NV_cooperative_matrix (the shader: include/gemm_coopmat.glsl).
#extension GL_GOOGLE_include_directive : enable
#include "gemm_coopmat.glsl"
