#version 450
// The workgroup-scope tensor-core GEMM on VK_NV_cooperative_matrix2 (the shader: include/gemm_cm2.glsl).
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_GOOGLE_include_directive : enable
#include "gemm_cm2.glsl"
