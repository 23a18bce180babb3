// Specialization constants 6-16 of the tensor-core GEMMs (include/gemm_coopmat.glsl, include/gemm_cm2.glsl): dtypes,
// transposes and epilogue; 0-2 are their tile (BM, BN, BK), 5 the workgroup size.
layout(constant_id = 6) const uint A_DT = 0;
layout(constant_id = 7) const uint B_DT = 0;
layout(constant_id = 8) const uint OUT_DT = 0;
layout(constant_id = 9) const uint BIAS_DT = 0;
layout(constant_id = 10) const uint RES_DT = 0;
layout(constant_id = 11) const uint TRANS_A = 0;
layout(constant_id = 12) const uint TRANS_B = 0;
layout(constant_id = 13) const uint HAS_BIAS = 0;
layout(constant_id = 14) const uint HAS_RES = 0;
layout(constant_id = 15) const uint ACT = 0;     // 0 none, 1 gelu (tanh), 2 gelu (erf), 3 silu
layout(constant_id = 16) const uint SCALE = 0;   // 0 none, 1 per tensor, 2 per column n
