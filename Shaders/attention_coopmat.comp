#version 450
// Tiled attention on tensor cores through VK_NV_cooperative_matrix (the shader: include/attention_coopmat.glsl).
#extension GL_GOOGLE_include_directive : enable
#include "attention_coopmat.glsl"
