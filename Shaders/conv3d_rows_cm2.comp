#version 450
// The causal 3-D convolution with every operand loaded through tensor layouts, on VK_NV_cooperative_matrix2's
// workgroup-scope matrices (the shader: include/conv3d_rows_cm2.glsl).
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_GOOGLE_include_directive : enable
#include "conv3d_rows_cm2.glsl"
