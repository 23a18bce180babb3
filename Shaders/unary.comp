#version 450
// Elementwise unary op with an affine epilogue: out[i] = op(x[idx(i)]) * scale + shift.
// `out` is dense; x is read through per-axis strides (0 on broadcast axes) over the host-coalesced
// shape (RANK axes, at most 6), so strided views and broadcast inputs need no copy. fp32 math.
// The transcendental functions are written out here (not the driver's tanh/exp/erf) so that results
// are accurate to a few ulp on every vendor and never overflow to NaN for large |x|.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = LINEAR_WG) in;
layout(constant_id = 0) const uint X_DT = 0;
layout(constant_id = 1) const uint OUT_DT = 0;
layout(constant_id = 2) const uint OP = 0;
layout(constant_id = 3) const int RANK = 1;

layout(push_constant) uniform P {
    uint64_t x;
    uint64_t dst;
    uint n;
    float scale;
    float shift;
    uint shape[6];
    uint sx[6];
} p;

#define OP_IDENTITY 0u
#define OP_GELU_TANH 1u
#define OP_GELU_ERF 2u
#define OP_SILU 3u
#define OP_SIGMOID 4u
#define OP_TANH 5u
#define OP_EXP 6u
#define OP_NEG 7u
#define OP_ABS 8u
#define OP_SQRT 9u
#define OP_RSQRT 10u
#define OP_SQUARE 11u
#define OP_RELU 12u

// exp with range reduction: x = n*ln2 + r, |r| <= ln2/2, so exp2 only sees arguments in [-0.5, 0.5]
// (a few ulp on every driver, even for |x| near 88). Overflows to +inf, underflows to 0, NaN stays NaN.
float exp_acc(float x) {
    if (isnan(x)) return x;
    if (x > 88.72284) return uintBitsToFloat(0x7f800000u);
    if (x < -103.97208) return 0.0;
    float n = roundEven(x * 1.44269504);
    // Cody-Waite reduction with ln2 in two parts; n * LN2_HI is exact for |n| <= 150. `precise`
    // keeps compilers from folding it into x - n*ln2 (one rounded product, ~4e-6 error at x = 80).
    precise float r = x - n * 0.693145752;   // ln2 high part (15 significant bits)
    r = r - n * 1.42860682e-06;              // ln2 low part
    float e = exp2(r * 1.44269504);
    // Scale by 2^n in two exact power-of-two factors (each a normal float for n in -150 .. 128), so
    // overflow and underflow happen in an IEEE multiply.
    int k = int(n);
    int k1 = k / 2;
    return e * uintBitsToFloat(uint(k1 + 127) << 23) * uintBitsToFloat(uint(k - k1 + 127) << 23);
}

// tanh accurate to a few ulp: odd Taylor polynomial for |x| < 0.55, (1 - t) / (1 + t) with
// t = exp(-2|x|) elsewhere (never inf/inf).
float tanh_acc(float x) {
    float a = abs(x);
    if (a < 0.55) {
        float s = x * x;
        float r = 5.90027441e-04;                // 6404582/10854718875
        r = fma(r, s, -1.45583439e-03);          // -929569/638512875
        r = fma(r, s, 3.59212804e-03);           // 21844/6081075
        r = fma(r, s, -8.86323553e-03);          // -1382/155925
        r = fma(r, s, 2.18694885e-02);           // 62/2835
        r = fma(r, s, -5.39682540e-02);          // -17/315
        r = fma(r, s, 1.33333333e-01);           // 2/15
        r = fma(r, s, -3.33333333e-01);          // -1/3
        return fma(x * s, r, x);
    }
    float t = exp_acc(-2.0 * a);
    float r = (1.0 - t) / (1.0 + t);
    return x < 0.0 ? -r : r;
}

// erf(a) for 0 <= a < 1: a + a*P(a^2), Taylor series of 2/sqrt(pi) * sum (-1)^n a^(2n+1) / (n! (2n+1)).
float erf_small(float a) {
    float s = a * a;
    float r = 1.480719282e-08;
    r = fma(r, s, -1.636584469e-07);
    r = fma(r, s, 1.646211437e-06);
    r = fma(r, s, -1.492565036e-05);
    r = fma(r, s, 1.205533298e-04);
    r = fma(r, s, -8.548327023e-04);
    r = fma(r, s, 5.223977625e-03);
    r = fma(r, s, -2.686617065e-02);
    r = fma(r, s, 1.128379167e-01);
    r = fma(r, s, -3.761263890e-01);
    r = fma(r, s, 1.283791671e-01);          // 2/sqrt(pi) - 1
    return fma(r, a, a);
}

// erfc(a) for a >= 0 with relative error < 1.2e-7 (Chebyshev fit, Numerical Recipes `erfcc`).
float erfc_pos(float a) {
    float t = 1.0 / fma(0.5, a, 1.0);
    float q = 0.17087277;
    q = fma(q, t, -0.82215223);
    q = fma(q, t, 1.48851587);
    q = fma(q, t, -1.13520398);
    q = fma(q, t, 0.27886807);
    q = fma(q, t, -0.18628806);
    q = fma(q, t, 0.09678418);
    q = fma(q, t, 0.37409196);
    q = fma(q, t, 1.00002368);
    q = fma(q, t, -1.26551223);
    return t * exp_acc(fma(-a, a, q));
}

// 1 + erf(z) without cancellation for negative z (absolute error of erf about 1e-7).
float one_plus_erf(float z) {
    float a = abs(z);
    if (z >= 0.0) return 1.0 + (a < 1.0 ? erf_small(a) : 1.0 - erfc_pos(a));
    return a < 1.0 ? 1.0 - erf_small(a) : erfc_pos(a);
}

float apply_op(float x) {
    if (OP == OP_IDENTITY) return x;
    if (OP == OP_GELU_TANH) {
        // 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3); no cancellation.
        float u = 0.7978845608 * fma(0.044715 * x, x * x, x);
        return x / (1.0 + exp_acc(-2.0 * u));
    }
    if (OP == OP_GELU_ERF) return 0.5 * x * one_plus_erf(x * 0.70710678118654752);
    if (OP == OP_SILU) return x / (1.0 + exp_acc(-x));
    if (OP == OP_SIGMOID) return 1.0 / (1.0 + exp_acc(-x));
    if (OP == OP_TANH) return tanh_acc(x);
    if (OP == OP_EXP) return exp_acc(x);
    if (OP == OP_NEG) return -x;
    if (OP == OP_ABS) return abs(x);
    if (OP == OP_SQRT) return sqrt(x);
    if (OP == OP_RSQRT) return 1.0 / sqrt(x);
    if (OP == OP_SQUARE) return x * x;
    return x < 0.0 ? 0.0 : x; // relu; NaN stays NaN
}

void main() {
    uint i = linear_id();
    if (i >= p.n) return;
    uint rem = i, ox = 0u;
    for (int d = RANK - 1; d > 0; --d) {
        uint q = rem / p.shape[d];
        ox += (rem - q * p.shape[d]) * p.sx[d];
        rem = q;
    }
    ox += rem * p.sx[0];
    float v = apply_op(load_elem(p.x, X_DT, ox));
    if (p.scale != 1.0 || p.shift != 0.0) v = fma(v, p.scale, p.shift);
    store_elem(p.dst, OUT_DT, i, v);
}
