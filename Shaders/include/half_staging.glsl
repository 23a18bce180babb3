// Staging helpers of the tensor-core shaders: operands read in chunks of 8 elements in their raw encoding and
// converted to 8 packed fp16 (exact round to nearest even from f32 and bf16; exact fp8 decoding), ready to be
// stored as one uvec4 into shared memory. Include after coopmat.glsl (CM_UNROLL).

layout(buffer_reference, std430, buffer_reference_align = 16) buffer U32x4Ref { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer U32x2Ref { uvec2 v[]; };

// ---- staging: raw chunks of 8 elements, converted to 8 packed halves ----

// fp32 bits -> fp16 bits, round to nearest even (overflow to infinity, NaN to 0x7e00), as f32_to_f16 in
// common.glsl but branch-free on four values: results below 2^-14 are rounded by one fp32 addition
// (0.5 + x has an ulp of 2^-24, the fp16 subnormal quantum; fp32 addition rounds to nearest even).
uvec4 f32x4_to_f16(uvec4 x) {
    uvec4 s = (x >> 16) & 0x8000u;
    uvec4 a = x & 0x7fffffffu;
    uvec4 nrm = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;      // rebias 127 -> 15, round, drop 13 bits
    precise vec4 t = uintBitsToFloat(a) + 0.5;
    uvec4 sub = floatBitsToUint(t) - 0x3f000000u;
    uvec4 h = mix(nrm, sub, lessThan(a, uvec4(0x38800000u)));
    h = mix(h, uvec4(0x7c00u), greaterThanEqual(a, uvec4(0x47800000u)));
    h = mix(h, uvec4(0x7e00u), greaterThan(a, uvec4(0x7f800000u)));
    return s | h;
}

// float8 e4m3fn bytes -> fp16 bits, exact (every e4m3 value is a normal fp16 or zero); 0x7f/0xff -> NaN.
uvec4 e4m3x4_to_f16(uvec4 b) {
    uvec4 mag = b & 0x7fu;
    uvec4 nrm = (mag << 7) + 0x2000u;                           // exponent + 8, mantissa << 7
    uvec4 sub = (floatBitsToUint(vec4(b & 7u) * 0.001953125) >> 13) - (112u << 10); // m * 2^-9
    uvec4 h = mix(nrm, sub, lessThan(mag, uvec4(8u)));
    h = mix(h, uvec4(0u), equal(mag, uvec4(0u)));
    h = mix(h, uvec4(0x7e00u), equal(mag, uvec4(0x7fu)));
    return ((b & 0x80u) << 8) | h;
}


uvec4 bytes_to_f16(uint dt, uvec2 w) {
    if (dt == DT_F8E5M2) {   // e5m2 is the top byte of an fp16
        return uvec4(((w.x & 0xffu) << 8) | ((w.x & 0xff00u) << 16), ((w.x >> 8) & 0xff00u) | (w.x & 0xff000000u),
                     ((w.y & 0xffu) << 8) | ((w.y & 0xff00u) << 16), ((w.y >> 8) & 0xff00u) | (w.y & 0xff000000u));
    }
    uvec4 sh = uvec4(0u, 8u, 16u, 24u);
    uvec4 h0 = e4m3x4_to_f16((uvec4(w.x) >> sh) & 0xffu), h1 = e4m3x4_to_f16((uvec4(w.y) >> sh) & 0xffu);
    return uvec4(h0.x | (h0.y << 16), h0.z | (h0.w << 16), h1.x | (h1.y << 16), h1.z | (h1.w << 16));
}

// Raw chunk (r0, r1) of dtype dt -> 8 halves packed two per word, lowest element first.
uvec4 to_half8(uint dt, uvec4 r0, uvec4 r1) {
    if (dt == DT_F16) return r0;
    if (dt == DT_BF16) {     // even elements in the low halves, odd in the high
        uvec4 lo = f32x4_to_f16(r0 << 16), hi = f32x4_to_f16(r0 & 0xffff0000u);
        return lo | (hi << 16);
    }
    if (dt == DT_F32) {
        uvec4 h0 = f32x4_to_f16(r0), h1 = f32x4_to_f16(r1);
        return uvec4(h0.x | (h0.y << 16), h0.z | (h0.w << 16), h1.x | (h1.y << 16), h1.z | (h1.w << 16));
    }
    return bytes_to_f16(dt, r0.xy);
}

// Loads the 8 elements idx..idx+7 of the operand at base into (r0, r1) in their raw encoding: f32 as 8
// words, 16-bit types as 8 packed halves in r0, fp8 as 8 bytes in r0.xy. Elements past the row's end
// (cols_left of them are in range) or of a row out of range read as zero.
void load_chunk(uint64_t base, uint dt, bool vec, uint idx, bool row_ok, int cols_left, out uvec4 r0, out uvec4 r1) {
    r0 = uvec4(0u);
    r1 = uvec4(0u);
    if (vec) {
        if (row_ok && cols_left > 0) {   // the contiguous length is a multiple of 8: the whole chunk
            if (dt == DT_F32) {
                r0 = U32x4Ref(base).v[idx / 4u];
                r1 = U32x4Ref(base).v[idx / 4u + 1u];
            } else if (dt == DT_F16 || dt == DT_BF16) {
                r0 = U32x4Ref(base).v[idx / 8u];
            } else {
                r0.xy = U32x2Ref(base).v[idx / 8u];
            }
        }
        return;
    }
    if (!row_ok) return;
    CM_UNROLL for (uint e = 0u; e < 8u; e++) {
        if (int(e) < cols_left) {
            if (dt == DT_F32) {
                uint v = U32Ref(base).v[idx + e];
                if (e < 4u) r0[e] = v; else r1[e - 4u] = v;
            } else if (dt == DT_F16 || dt == DT_BF16) {
                r0[e / 2u] |= uint(U16Ref(base).v[idx + e]) << (16u * (e & 1u));
            } else {
                r0[e / 4u] |= uint(U8Ref(base).v[idx + e]) << (8u * (e & 3u));
            }
        }
    }
}
