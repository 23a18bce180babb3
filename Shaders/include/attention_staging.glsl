// Staging of q, k, v rows for the tensor-core attention shaders, as fp16 into the shared array `tile` (rows of
// LDT halves). The including shader declares HD (head dim), WG (workgroup size), LDT and `tile` before including.

layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer RoF32x4 { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer RoU32x2 { uvec2 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer RoF32 { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 2) readonly buffer RoU16 { uint16_t v[]; };

// Elements i .. i+3 of a tensor (`valid` of them exist; the rest read as 0).
vec4 load4(uint64_t base, uint dt, bool vec, uint i, int valid) {
    if (valid >= 4) {
        if (vec) {
            if (dt == DT_F32) return RoF32x4(base).v[i >> 2];
            uvec2 w = RoU32x2(base).v[i >> 2];
            if (dt == DT_F16) return half4_to_f32(w);
            return vec4(uintBitsToFloat(w.x << 16), uintBitsToFloat(w.x & 0xffff0000u),
                        uintBitsToFloat(w.y << 16), uintBitsToFloat(w.y & 0xffff0000u));
        }
        if (dt == DT_F32) {
            RoF32 r = RoF32(base);
            return vec4(r.v[i], r.v[i + 1u], r.v[i + 2u], r.v[i + 3u]);
        }
        RoU16 h = RoU16(base);
        uvec4 w = uvec4(h.v[i], h.v[i + 1u], h.v[i + 2u], h.v[i + 3u]);
        if (dt == DT_F16) return f16x4_to_f32(w);
        return uintBitsToFloat(w << 16);
    }
    vec4 r = vec4(0.0);
    for (int j = 0; j < valid; j++) r[j] = load_elem(base, dt, i + uint(j));
    return r;
}

uint dt_bytes(uint dt) { return dt == DT_F32 ? 4u : 2u; }

// Stages `rows` rows (from row0 of a head, `valid` of them exist) of HD elements as fp16 into tile rows
// dst0 ..., times `mul` (`scaled`); unscaled aligned f16 rows are copied bit for bit (the staging's arithmetic
// is on the critical path: a conversion per element cost f16 inputs 1.75x against bf16 on an H200).
void stage(uint64_t head, uint dt, bool vec, uint strideL, uint row0, uint valid, uint rows, bool scaled, float mul, uint dst0) {
    const uint groups = rows * (HD / 4u);
    for (uint g = gl_LocalInvocationID.x; g < groups; g += WG) {
        uint r = g / (HD / 4u), d = (g % (HD / 4u)) * 4u;
        uint s = (dst0 + r) * LDT + d;
        if (dt == DT_F16 && vec && !scaled) {
            uvec2 w = r < valid ? RoU32x2(head).v[((row0 + r) * strideL + d) >> 2] : uvec2(0u);
            f16vec2 lo = unpackFloat2x16(w.x), hi = unpackFloat2x16(w.y);
            tile[s] = lo.x;
            tile[s + 1u] = lo.y;
            tile[s + 2u] = hi.x;
            tile[s + 3u] = hi.y;
        } else {
            vec4 x = load4(head, dt, vec, (row0 + r) * strideL + d, r < valid ? 4 : 0);
            if (scaled) x *= mul;
            tile[s] = float16_t(x.x);
            tile[s + 1u] = float16_t(x.y);
            tile[s + 2u] = float16_t(x.z);
            tile[s + 3u] = float16_t(x.w);
        }
    }
}

// Base address of head h of batch b in a tensor of element strides sB (batch) and sH (head).
uint64_t head_base(uint64_t t, uint b, uint h, uint sB, uint sH, uint dt) {
    return t + uint64_t(b * sB + h * sH) * dt_bytes(dt);
}

// The query block at q0 staged into `tile` (scaled by qscale, between barriers) and this subgroup's 16 rows of it
// loaded as FD fragments into qf[FD] (declared by the caller; needs sg and Lq).
#define LOAD_Q_FRAGMENTS(qf, qHead, q0)                                                                         \
    {                                                                                                           \
        barrier();                                                                                              \
        stage(qHead, Q_DT, VEC_Q != 0u, p.qsL, q0, Lq - min(q0, Lq), BR, true, p.qscale, 0u);                   \
        barrier();                                                                                              \
        CM_UNROLL for (uint f = 0; f < FD; f++) CM_LOAD(qf[f], tile, sg * 16u * LDT + f * 16u, LDT, false);     \
    }
