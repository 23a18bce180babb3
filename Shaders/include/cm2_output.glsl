// The output stage of the coopmat2 GEMM and convolutions (include/gemm_cm2.glsl, include/conv3d_cm2.glsl,
// include/conv3d_rows_cm2.glsl), after their
// per-element epilogue: CM2_RESIDUAL_STORE(acc, BM, BN, resBase, outBase, M, N, m0, n0) adds the residual (HAS_RES,
// RES_DT: f32, f16 or bf16), loaded as a BM x BN matrix at (m0, n0) of the M x N tensor at resBase (row stride N,
// zero outside), to the fp32 accumulator acc, and stores it at (m0, n0) of the M x N output at outBase (OUT_DT: f32,
// or f16; elements outside are dropped). CM2_RESIDUAL_STORE4(acc, BM, BN, resBase, outBase, d0, d1, d2, d3, o0, s0, o1, s1,
// o2, s2, o3, s3) does the same with the residual and the output as slices of dense 4-D tensors (include/cm2_nd.glsl,
// whose CM2_ND_DECODERS(4) the shader then defines). Include after cm2.glsl and the spec constants it names.
#define CM2_RESIDUAL_STORE(acc, BM, BN, resBase, outBase, M, N, m0, n0) \
    do { \
        if (HAS_RES != 0u) { \
            CM2_ACC(BM, BN) cm2_res; \
            if (RES_DT == DT_F32) CM2_LOAD(cm2_res, BM, BN, float, Cm2F32, resBase, M, N, N, m0, n0, false); \
            else if (RES_DT == DT_F16) CM2_LOAD_DECODE(cm2_res, BM, BN, float, resBase, M, N, N, m0, n0, false, f32_from_f16, U16Elem, 2u); \
            else CM2_LOAD_DECODE(cm2_res, BM, BN, float, resBase, M, N, N, m0, n0, false, f32_from_bf16, U16Elem, 2u); \
            CM2_ADD(acc, cm2_res); \
        } \
        if (OUT_DT == DT_F32) { \
            CM2_STORE(acc, BM, BN, Cm2F32, outBase, M, N, N, m0, n0); \
        } else { \
            CM2_ACC16(BM, BN) cm2_h; \
            CM2_CONVERT(cm2_h, CM2_ACC16(BM, BN), acc, BM, BN, float16_t); \
            CM2_STORE(cm2_h, BM, BN, Cm2F16, outBase, M, N, N, m0, n0); \
        } \
    } while (false)

#define CM2_RESIDUAL_STORE4(acc, BM, BN, resBase, outBase, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3) \
    do { \
        if (HAS_RES != 0u) { \
            CM2_ACC(BM, BN) cm2_res; \
            if (RES_DT == DT_F32) CM2_LOAD4(cm2_res, BM, BN, float, Cm2F32, resBase, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3); \
            else if (RES_DT == DT_F16) CM2_LOAD4_DECODE(cm2_res, BM, BN, float, resBase, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3, f32_from_f16_4, U16Elem, 2u); \
            else CM2_LOAD4_DECODE(cm2_res, BM, BN, float, resBase, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3, f32_from_bf16_4, U16Elem, 2u); \
            CM2_ADD(acc, cm2_res); \
        } \
        if (OUT_DT == DT_F32) { \
            CM2_STORE4(acc, BM, BN, Cm2F32, outBase, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3); \
        } else { \
            CM2_ACC16(BM, BN) cm2_h; \
            CM2_CONVERT(cm2_h, CM2_ACC16(BM, BN), acc, BM, BN, float16_t); \
            CM2_STORE4(cm2_h, BM, BN, Cm2F16, outBase, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3); \
        } \
    } while (false)
