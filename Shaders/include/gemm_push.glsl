// The push constants of the GEMM shaders (gemm.comp, include/gemm_coopmat.glsl, include/gemm_cm2.glsl).
layout(push_constant) uniform P {
    uint64_t a;
    uint64_t b;
    uint64_t out_;
    uint64_t bias;
    uint64_t res;
    uint64_t scale;  // f32: [1] or [N] (fp8 weights)
    uint M;
    uint N;
    uint K;
    uint batch;
    uint strideA;    // elements between batches of A (0: shared)
    uint strideB;
    uint strideOut;  // of out and residual
    float alpha;
} p;
