#version 450
// The register-softmax tensor-core attention (include/attention_coopmat_rs.glsl) with its cooperative matrices
// emulated (include/coopmat.glsl): slow, for testing the shader's logic on devices without tensor cores.
#define CM_EMULATE 1
#extension GL_GOOGLE_include_directive : enable
#include "attention_coopmat_rs.glsl"
