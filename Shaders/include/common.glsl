// Shared definitions for every compute shader of the runtime.
//
// Tensors are reached through buffer device addresses passed in push constants (no descriptors), so a
// tensor of any size up to maxMemoryAllocationSize is addressable without a binding range limit.
// Element types are numbered as Swift's `DType.code`; conversions here are bit-exact and identical on
// every vendor (round-to-nearest-even, fp8 saturating), independent of the driver's own rounding.
#ifndef WAN_COMMON_GLSL
#define WAN_COMMON_GLSL

#extension GL_EXT_buffer_reference : require
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int8 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require

#define DT_F32 0u
#define DT_F16 1u
#define DT_BF16 2u
#define DT_F8E4M3 3u
#define DT_F8E5M2 4u
#define DT_I32 5u
#define DT_U8 6u

layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32Ref { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer F32x4Ref { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer U32Ref { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer I32Ref { int v[]; };
layout(buffer_reference, std430, buffer_reference_align = 2) buffer U16Ref { uint16_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 1) buffer U8Ref { uint8_t v[]; };

// ---- scalar conversions (bit-exact) ----

// IEEE binary16 -> fp32, exact, with selects instead of branches; the loaders use it rather than the built-in
// unpackHalf2x16, so that every driver decodes with the same code.
vec4 f16x4_to_f32(uvec4 h) {
    uvec4 a = h & 0x7fffu;
    vec4 v = mix(vec4(a) * 5.9604644775390625e-8,                       // subnormal: m * 2^-24
                 uintBitsToFloat((a << 13) + 0x38000000u),              // normal: exponent rebiased 15 -> 127
                 greaterThanEqual(a, uvec4(0x0400u)));
    v = mix(v, uintBitsToFloat(0x7f800000u | ((a & 0x3ffu) << 13)),    // infinity / NaN (payload kept)
            greaterThanEqual(a, uvec4(0x7c00u)));
    return uintBitsToFloat(floatBitsToUint(v) | ((h & 0x8000u) << 16));
}

float f16_to_f32(uint h) { return f16x4_to_f32(uvec4(h, 0u, 0u, 0u)).x; }

// Two halves packed in a word (low first) as fp32.
vec2 half2_to_f32(uint w) { return f16x4_to_f32(uvec4(w & 0xffffu, w >> 16, 0u, 0u)).xy; }

// Four halves packed in two words (low first) as fp32.
vec4 half4_to_f32(uvec2 w) { return f16x4_to_f32(uvec4(w.x & 0xffffu, w.x >> 16, w.y & 0xffffu, w.y >> 16)); }

// IEEE binary16, round to nearest even, overflow to infinity (as PyTorch's .half()); selects instead of
// branches (checked exhaustively against numpy over all 2^32 inputs). The branchy version it replaces made
// GEMMs with f16 outputs 14x slower on NVIDIA's Vulkan driver (f16 in, f32 out ran at full speed).
uint f32_to_f16(float f) {
    uint x = floatBitsToUint(f);
    uint a = x & 0x7fffffffu;
    uint r = a - 0x38000000u;                                     // exponent rebiased 127 -> 15 (normal halves)
    uint h = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;
    // Subnormal halves (and zero): |f| · 2^24 rounded to nearest even, exact in fp32 below 2^-14.
    uint sub = uint(roundEven(uintBitsToFloat(min(a, 0x38800000u)) * 16777216.0));
    h = a < 0x38800000u ? sub : h;
    h = a >= 0x477ff000u ? 0x7c00u : h;                           // rounds to >= 65520: infinity
    h = a > 0x7f800000u ? 0x7e00u : h;                            // NaN
    return ((x >> 16) & 0x8000u) | h;
}

float bf16_to_f32(uint b) { return uintBitsToFloat(b << 16); }

// bfloat16, round to nearest even; NaN stays NaN (quiet).
uint f32_to_bf16(float f) {
    uint x = floatBitsToUint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return ((x >> 16) | 0x40u) & 0xffffu;
    return ((x + 0x7fffu + ((x >> 16) & 1u)) >> 16) & 0xffffu;
}

// float8 e4m3fn: bias 7, no infinities, 0x7f/0xff are NaN, max 448.
float f8e4m3_to_f32(uint b) {
    uint s = (b >> 7) & 1u, e = (b >> 3) & 15u, m = b & 7u;
    float v;
    if (e == 15u && m == 7u) v = uintBitsToFloat(0x7fc00000u);
    else if (e == 0u) v = float(m) * 0.001953125; // m * 2^-9
    else v = uintBitsToFloat(((e + 120u) << 23) | (m << 20));
    return s == 1u ? -v : v;
}

// float8 e5m2: bias 15, IEEE-like with infinities, max 57344.
float f8e5m2_to_f32(uint b) { return f16_to_f32(b << 8); }

// Generic round-to-nearest-even into a small float format, saturating to +-max_finite.
// mbits mantissa bits, bias, emin_norm = 1 - bias. Returns the magnitude bits (no sign).
uint f32_to_small_mag(uint a, uint mbits, uint bias, uint maxbits) {
    // a: |f| bits, finite. maxbits: encoding of the largest finite value.
    float v = uintBitsToFloat(a);
    int e = int(a >> 23) - 127;
    int emin = 1 - int(bias);
    uint q; // quantum exponent
    int qe = max(e, emin) - int(mbits);
    // scale v to units of 2^qe and round to nearest even
    float scaled = v * exp2(float(-qe));
    float r = roundEven(scaled);
    uint n = uint(r);
    // n in [0, 2^(mbits+1)]; rebuild encoding
    uint enc;
    if (n == 0u) return 0u;
    if (max(e, emin) == emin && n < (1u << mbits)) {
        enc = n; // subnormal
    } else {
        int ee = max(e, emin);
        if (n >= (2u << mbits)) { n >>= 1; ee += 1; }
        enc = (uint(ee + int(bias)) << mbits) | (n & ((1u << mbits) - 1u));
    }
    return min(enc, maxbits);
}

uint f32_to_f8e4m3(float f) {
    uint x = floatBitsToUint(f);
    uint s = (x >> 24) & 0x80u;
    uint a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return s | 0x7fu;   // NaN
    if (a >= 0x43e00000u) return s | 0x7eu;  // >= 448 (and inf) saturate to 448
    return s | f32_to_small_mag(a, 3u, 7u, 0x7eu);
}

uint f32_to_f8e5m2(float f) {
    uint x = floatBitsToUint(f);
    uint s = (x >> 24) & 0x80u;
    uint a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return s | 0x7fu;   // NaN
    if (a >= 0x47600000u) return s | 0x7bu;  // >= 57344 (and inf) saturate to 57344
    return s | f32_to_small_mag(a, 2u, 15u, 0x7bu);
}

// ---- typed element access by dtype code ----

// Bytes of one element of dtype dt.
uint dt_size(uint dt) { return dt == DT_F32 ? 4u : (dt == DT_F16 || dt == DT_BF16) ? 2u : 1u; }

float load_elem(uint64_t base, uint dt, uint i) {
    if (dt == DT_F32) return F32Ref(base).v[i];
    if (dt == DT_F16) return f16_to_f32(uint(U16Ref(base).v[i]));
    if (dt == DT_BF16) return bf16_to_f32(uint(U16Ref(base).v[i]));
    if (dt == DT_F8E4M3) return f8e4m3_to_f32(uint(U8Ref(base).v[i]));
    if (dt == DT_F8E5M2) return f8e5m2_to_f32(uint(U8Ref(base).v[i]));
    if (dt == DT_I32) return float(I32Ref(base).v[i]);
    return float(uint(U8Ref(base).v[i]));
}

void store_elem(uint64_t base, uint dt, uint i, float x) {
    if (dt == DT_F32) F32Ref(base).v[i] = x;
    else if (dt == DT_F16) U16Ref(base).v[i] = uint16_t(f32_to_f16(x));
    else if (dt == DT_BF16) U16Ref(base).v[i] = uint16_t(f32_to_bf16(x));
    else if (dt == DT_F8E4M3) U8Ref(base).v[i] = uint8_t(f32_to_f8e4m3(x));
    else if (dt == DT_F8E5M2) U8Ref(base).v[i] = uint8_t(f32_to_f8e5m2(x));
    else if (dt == DT_I32) I32Ref(base).v[i] = isnan(x) ? 0 : int(clamp(trunc(x), -2147483648.0, 2147483520.0));
    else U8Ref(base).v[i] = uint8_t(isnan(x) ? 0u : uint(clamp(trunc(x), 0.0, 255.0)));
}

// Raw element copy of one element (no conversion), by byte size.
void copy_raw(uint64_t src, uint si, uint64_t dst, uint di, uint esize) {
    if (esize == 4u) U32Ref(dst).v[di] = U32Ref(src).v[si];
    else if (esize == 2u) U16Ref(dst).v[di] = U16Ref(src).v[si];
    else U8Ref(dst).v[di] = U8Ref(src).v[si];
}

// Linear index of a 1D dispatch whose workgroups are spread over x and y (see `grid1D` in Swift).
// Shaders using it declare `layout(local_size_x = LINEAR_WG) in;`.
// NOTE: lavapipe (Mesa 22.3, LLVM 15) computes gl_GlobalInvocationID and gl_WorkGroupSize wrongly for
// workgroups with y or z > 0 (only gl_LocalInvocationID and gl_WorkGroupID are right), so no shader
// here uses those two built-ins.
#define LINEAR_WG 256u
uint linear_id() {
    return gl_LocalInvocationID.x + LINEAR_WG * (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x);
}

#endif
