#version 450
// Tiled attention on tensor cores with the softmax in registers, through VK_NV_cooperative_matrix (the shader:
// include/attention_coopmat_rs.glsl).
#extension GL_GOOGLE_include_directive : enable
#include "attention_coopmat_rs.glsl"
