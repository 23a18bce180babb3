// Specialization constants 6-15 of the tensor-core convolutions (include/conv3d_coopmat.glsl, include/conv3d_cm2.glsl,
// include/conv3d_rows_cm2.glsl): dtypes, epilogue and kernel extent; 0-2 are their tile (BM, BN, BK), 5 the workgroup size.
layout(constant_id = 6) const uint X_DT = 0;     // x and the cache
layout(constant_id = 7) const uint W_DT = 0;
layout(constant_id = 8) const uint OUT_DT = 0;
layout(constant_id = 9) const uint BIAS_DT = 0;
layout(constant_id = 10) const uint RES_DT = 0;
layout(constant_id = 11) const uint HAS_BIAS = 0;
layout(constant_id = 12) const uint HAS_RES = 0;
layout(constant_id = 13) const uint KT = 3;      // kernel extent in time, height, width
layout(constant_id = 14) const uint KH = 3;
layout(constant_id = 15) const uint KW = 3;
