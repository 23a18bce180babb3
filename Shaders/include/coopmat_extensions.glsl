// The GLSL extensions of the cooperative-matrix dialect (include/coopmat.glsl) and of the tensor-core shaders
// around it: VK_KHR_cooperative_matrix with CM_KHR, VK_NV_cooperative_matrix by default, none for the emulation;
// subgroup basics and shuffles natively; fp16 arithmetic and loop-control attributes always. Include first.
#if defined(CM_KHR)
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#elif !defined(CM_EMULATE)
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#endif
#ifndef CM_EMULATE
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_control_flow_attributes : enable
