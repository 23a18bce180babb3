#version 450
// The tensor-layout coopmat2 convolution (include/conv3d_rows_cm2.glsl) with its workgroup-scope matrices emulated
// (include/cm2.glsl): slow, for testing the shader's logic on devices without VK_NV_cooperative_matrix2.
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_GOOGLE_include_directive : enable
#define CM2_EMULATE 1
#include "conv3d_rows_cm2.glsl"
