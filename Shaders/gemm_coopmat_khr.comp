#version 450
// The tensor-core GEMM (include/gemm_coopmat.glsl) on VK_KHR_cooperative_matrix. Needs glslang 13 or newer:
// an optional build (Benchmarks/glslang-newer.sh); without it this shader is not built and the KHR variant reports so.
#define CM_KHR 1
#extension GL_GOOGLE_include_directive : enable
#include "gemm_coopmat.glsl"
