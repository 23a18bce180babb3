#version 450
// LayerNorm and RMSNorm over one axis of a dense tensor, fp32 statistics.
//
// Row mode (COLUMNS = 0, the axis is the last one): x is [rows, n]; TPR threads (a power of two) share
// one row and a 256-thread workgroup holds 256 / TPR rows. Each thread keeps its CACHE strided elements
// in registers when the row fits (CACHE > 0), else re-reads them. LayerNorm uses a corrected two-pass
// variance: mean0 = sum(x) / n, then d = x - mean0, mean = mean0 + sum(d) / n,
// var = sum(d^2) / n - (sum(d) / n)^2 (exact even when mean0 is off, no E[x^2] - E[x]^2 cancellation).
// Partial sums are combined with a shared-memory tree (no assumption on the subgroup size).
//
// Column mode (COLUMNS = 1, the axis is not the last): x is [outer, n, inner]; one invocation per
// (outer, inner) position walks its n elements at stride inner (coalesced across invocations), with
// the same corrected two-pass variance (LayerNorm) or one sum of squares (RMSNorm).
//
// MODE 0: LayerNorm  y = (x - mean) / sqrt(var + eps)
// MODE 1: RMSNorm    y = x / sqrt(mean(x^2) + eps)
// MODE 2: RMSNorm    y = x * sqrt(n) / max(||x||_2, eps)   (F.normalize(x) * sqrt(n): Wan VAE RMS_norm)
// then y is rounded to ROUND_DT (f32: no rounding), times weight, plus bias, stored as OUT_DT.
// Weight and bias hold n elements.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"

layout(local_size_x = LINEAR_WG) in;
layout(constant_id = 0) const uint X_DT = 0;
layout(constant_id = 1) const uint OUT_DT = 0;
layout(constant_id = 2) const uint W_DT = 0;
layout(constant_id = 3) const uint B_DT = 0;
layout(constant_id = 4) const uint MODE = 0;
layout(constant_id = 5) const uint HAS_W = 0;
layout(constant_id = 6) const uint HAS_B = 0;
layout(constant_id = 7) const uint ROUND_DT = 0;
layout(constant_id = 8) const uint TPR = 256;
layout(constant_id = 9) const uint CACHE = 8;
layout(constant_id = 10) const uint COLUMNS = 0;

const uint CACHE_LEN = CACHE > 0 ? CACHE : 1;
const uint WG = 256;

layout(push_constant) uniform P {
    uint64_t x;
    uint64_t y;
    uint64_t w;
    uint64_t b;
    uint rows;            // row mode: rows; column mode: outer
    uint n;               // length of the normalised axis
    uint inner;           // column mode: elements after the axis
    float eps;
} p;

shared vec2 red[WG];

// Sums v over the TPR threads of this thread's row. Every invocation of the workgroup must call it.
vec2 row_sum(vec2 v) {
    if (TPR == 1) return v;
    uint lid = gl_LocalInvocationID.x;
    uint t = lid & (TPR - 1);
    red[lid] = v;
    barrier();
    for (uint s = TPR / 2; s > 0; s >>= 1) {
        if (t < s) red[lid] += red[lid + s];
        barrier();
    }
    vec2 r = red[lid - t];
    barrier();
    return r;
}

float round_to(float v) {
    if (ROUND_DT == DT_F16) return f16_to_f32(f32_to_f16(v));
    if (ROUND_DT == DT_BF16) return bf16_to_f32(f32_to_bf16(v));
    return v;
}

// Scale/shift of the normalised value: center is subtracted, then times rstd.
float finish(float xv, float center, float rstd, uint wi) {
    float v = round_to((xv - center) * rstd);
    if (HAS_W != 0) v *= load_elem(p.w, W_DT, wi);
    if (HAS_B != 0) v += load_elem(p.b, B_DT, wi);
    return v;
}

void stats_to_scale(float mean, float var, float sumsq, float n, out float center, out float rstd) {
    if (MODE == 0) {
        center = mean;
        rstd = inversesqrt(var + p.eps);
    } else if (MODE == 1) {
        center = 0.0;
        rstd = inversesqrt(sumsq / n + p.eps);
    } else {
        center = 0.0;
        rstd = sqrt(n) / max(sqrt(sumsq), p.eps);
    }
}

void rows_main() {
    uint lid = gl_LocalInvocationID.x;
    uint t = lid & (TPR - 1);
    uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint row = group * (WG / TPR) + lid / TPR;
    bool valid = row < p.rows;
    uint n = p.n;
    uint base = valid ? row * n : 0u;
    float fn = float(n);
    bool cached = CACHE > 0;

    float c[CACHE_LEN];
    if (cached) {
        for (uint k = 0; k < CACHE_LEN; k++) {
            uint i = t + k * TPR;
            c[k] = (valid && i < n) ? load_elem(p.x, X_DT, base + i) : 0.0;
        }
    }

    float center, rstd;
    if (MODE == 0) {
        // Pass 1: provisional mean.
        float s = 0.0;
        if (cached) {
            for (uint k = 0; k < CACHE_LEN; k++) s += c[k];
        } else if (valid) {
            for (uint i = t; i < n; i += TPR) s += load_elem(p.x, X_DT, base + i);
        }
        float mean0 = row_sum(vec2(s, 0.0)).x / fn;
        // Pass 2: centred sums.
        vec2 d = vec2(0.0);
        if (cached) {
            for (uint k = 0; k < CACHE_LEN; k++) {
                if (t + k * TPR < n) {
                    float e = c[k] - mean0;
                    d += vec2(e, e * e);
                }
            }
        } else if (valid) {
            for (uint i = t; i < n; i += TPR) {
                float e = load_elem(p.x, X_DT, base + i) - mean0;
                d += vec2(e, e * e);
            }
        }
        d = row_sum(d) / fn;
        stats_to_scale(mean0 + d.x, max(d.y - d.x * d.x, 0.0), 0.0, fn, center, rstd);
    } else {
        float s = 0.0;
        if (cached) {
            for (uint k = 0; k < CACHE_LEN; k++) s += c[k] * c[k];
        } else if (valid) {
            for (uint i = t; i < n; i += TPR) {
                float v = load_elem(p.x, X_DT, base + i);
                s += v * v;
            }
        }
        float ss = row_sum(vec2(s, 0.0)).x;
        stats_to_scale(0.0, 0.0, ss, fn, center, rstd);
    }
    if (!valid) return;
    if (cached) {
        for (uint k = 0; k < CACHE_LEN; k++) {
            uint i = t + k * TPR;
            if (i < n) store_elem(p.y, OUT_DT, base + i, finish(c[k], center, rstd, i));
        }
    } else {
        for (uint i = t; i < n; i += TPR) {
            store_elem(p.y, OUT_DT, base + i, finish(load_elem(p.x, X_DT, base + i), center, rstd, i));
        }
    }
}

void columns_main() {
    uint id = linear_id();
    uint inner = p.inner;
    if (id >= p.rows * inner) return;
    uint o = id / inner, j = id - o * inner;
    uint n = p.n;
    uint base = o * n * inner + j;
    float fn = float(n);
    float center, rstd;
    if (MODE == 0) {
        float s = 0.0;
        for (uint k = 0; k < n; k++) s += load_elem(p.x, X_DT, base + k * inner);
        float mean0 = s / fn;
        vec2 d = vec2(0.0);
        for (uint k = 0; k < n; k++) {
            float e = load_elem(p.x, X_DT, base + k * inner) - mean0;
            d += vec2(e, e * e);
        }
        d /= fn;
        stats_to_scale(mean0 + d.x, max(d.y - d.x * d.x, 0.0), 0.0, fn, center, rstd);
    } else {
        float ss = 0.0;
        for (uint k = 0; k < n; k++) {
            float v = load_elem(p.x, X_DT, base + k * inner);
            ss += v * v;
        }
        stats_to_scale(0.0, 0.0, ss, fn, center, rstd);
    }
    for (uint k = 0; k < n; k++) {
        uint i = base + k * inner;
        store_elem(p.y, OUT_DT, i, finish(load_elem(p.x, X_DT, i), center, rstd, k));
    }
}

void main() {
    if (COLUMNS != 0) columns_main();
    else rows_main();
}
