// The GEMM epilogues' activations (gemm.comp, gemm_coopmat, gemm_cm2): activate(v) by the specialization constant ACT
// (0 none, 1 GELU with tanh, 2 GELU with erf, 3 SiLU), which the including shader declares first.

// tanh without overflow for large |y| (absolute error ~1e-7).
float tanh_safe(float y) {
    float e = exp(-2.0 * abs(y));
    return sign(y) * (1.0 - e) / (1.0 + e);
}

// erf with ~1e-7 absolute error: x * P(x^2) on |x| <= 0.921875, 1 - exp(-x^2 + Q(|x|)) up to 4, +-1 beyond.
float erf_approx(float x) {
    float t = abs(x);
    if (t <= 0.921875) {
        float s = x * x;
        float r = 8.395633631153032e-05;
        r = fma(r, s, -0.0008149241330102086);
        r = fma(r, s, 0.0052016605623066425);
        r = fma(r, s, -0.026859676465392113);
        r = fma(r, s, 0.11283700913190842);
        r = fma(r, s, -0.37612634897232056);
        r = fma(r, s, 1.128379225730896);
        return x * r;
    }
    if (t >= 4.0) return sign(x);
    float u = t - 2.4;
    float r = -2.6845814460330075e-08;
    r = fma(r, u, 1.6286921891150996e-06);
    r = fma(r, u, -1.446055102860555e-05);
    r = fma(r, u, 8.710234396858141e-05);
    r = fma(r, u, -0.00046971190022304654);
    r = fma(r, u, 0.002387396292760968);
    r = fma(r, u, -0.011768030934035778);
    r = fma(r, u, 0.05949811264872551);
    r = fma(r, u, -0.36423662304878235);
    r = fma(r, u, -1.520975112915039);
    r = fma(-t, t, r);
    return sign(x) * (1.0 - exp(r));
}

float activate(float v) {
    if (ACT == 1u) return 0.5 * v * (1.0 + tanh_safe(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    if (ACT == 2u) return 0.5 * v * (1.0 + erf_approx(v * 0.7071067811865476));
    if (ACT == 3u) return v / (1.0 + exp(-v));
    return v;
}

