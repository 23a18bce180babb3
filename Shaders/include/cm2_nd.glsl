// Dense 3- and 4-dimensional tensors for the workgroup-scope matrices of include/cm2.glsl (include after it): a
// matrix read from or written to a slice of a row-major tensor of dimensions (d0, .., dN-1), sliced at offsets
// (o0, ..) with spans (s0, ..) whose product is R · C; matrix element (i, j) is the slice's element number i · C + j
// in row-major order of the spans (so a slice with spans (R, 1, 1, C) is an R × C matrix of rows o0.. and columns
// o3.., and (R, C, 1) picks column o2 of the last dimension). Offsets are signed; coordinates outside the tensor
// read as zero and are dropped by stores (natively: a layout clamped to the constant 0).
//   CM2_LOAD3(m, R, C, ET, Buf, base, d0, d1, d2, o0, s0, o1, s1, o2, s2)
//   CM2_LOAD3_DECODE(m, R, C, ET, base, d0, d1, d2, o0, s0, o1, s1, o2, s2, decode, Elem, bytes)
//   CM2_LOAD4(m, R, C, ET, Buf, base, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3)
//   CM2_LOAD4_DECODE(m, R, C, ET, base, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3, decode, Elem, bytes)
//   CM2_STORE4(m, R, C, Buf, base, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3)
// Decode functions take coordinate arrays of the tensor's dimension count: CM2_ND_DECODERS(N) defines from_f32_N,
// from_bf16_N (fp16 operands), f32_from_f16_N and f32_from_bf16_N (fp32 accumulators) for N dimensions.

#define CM2_ND_DECODERS(N) \
    float16_t from_f32_##N(const in F32Elem e, const in uint block[N], const in uint inBlock[N]) { return float16_t(e.v); } \
    float16_t from_bf16_##N(const in U16Elem e, const in uint block[N], const in uint inBlock[N]) { \
        return float16_t(uintBitsToFloat(uint(e.v) << 16)); } \
    float f32_from_f16_##N(const in U16Elem e, const in uint block[N], const in uint inBlock[N]) { return f16_to_f32(uint(e.v)); } \
    float f32_from_bf16_##N(const in U16Elem e, const in uint block[N], const in uint inBlock[N]) { \
        return uintBitsToFloat(uint(e.v) << 16); }

#ifdef CM2_EMULATE

// The element index in a dense 4-D tensor of dimensions d of element (i, j) of a matrix with C columns read from
// the slice at offsets o with spans s (the spec's addressing: the matrix index i · C + j taken apart innermost
// dimension first), or -1 where a coordinate falls outside the tensor. 3-D tensors are 4-D ones of d0 = 1.
int cm2_nd_index(uint i, uint j, uint C, uint d[4], int o[4], uint s[4]) {
    uint idx = i * C + j;
    int index = 0, mult = 1;
    for (int dim = 3; dim >= 0; dim--) {
        int c = int(idx % s[dim]) + o[dim];
        idx /= s[dim];
        if (c < 0 || c >= int(d[dim])) return -1;
        index += c * mult;
        mult *= int(d[dim]);
    }
    return index;
}
#define CM2_ND4(C, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3) \
    cm2_nd_index(cm2_i / (C), cm2_i % (C), C, uint[4](d0, d1, d2, d3), int[4](int(o0), int(o1), int(o2), int(o3)), \
                 uint[4](s0, s1, s2, s3))

#define CM2_LOAD4(m, R, C, ET, Buf, base, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3) \
    do { CM2_FOR(m, R, C) { int cm2_x = CM2_ND4(C, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3); \
        m[cm2_e] = cm2_x >= 0 ? ET(Buf(base).v[cm2_x]) : ET(0); } } while (false)
#define CM2_LOAD3(m, R, C, ET, Buf, base, d0, d1, d2, o0, s0, o1, s1, o2, s2) \
    CM2_LOAD4(m, R, C, ET, Buf, base, 1u, d0, d1, d2, 0, 1u, o0, s0, o1, s1, o2, s2)

#define CM2_LOAD4_DECODE(m, R, C, ET, base, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3, decode, Elem, bytes) \
    do { CM2_FOR(m, R, C) { int cm2_x = CM2_ND4(C, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3); \
        m[cm2_e] = cm2_x >= 0 ? decode(Elem((base) + uint64_t(cm2_x) * uint64_t(bytes)), uint[4](0u, 0u, 0u, 0u), uint[4](0u, 0u, 0u, 0u)) \
                              : ET(0); } } while (false)
#define CM2_LOAD3_DECODE(m, R, C, ET, base, d0, d1, d2, o0, s0, o1, s1, o2, s2, decode, Elem, bytes) \
    do { CM2_FOR(m, R, C) { int cm2_x = CM2_ND4(C, 1u, d0, d1, d2, 0, 1u, o0, s0, o1, s1, o2, s2); \
        m[cm2_e] = cm2_x >= 0 ? decode(Elem((base) + uint64_t(cm2_x) * uint64_t(bytes)), uint[3](0u, 0u, 0u), uint[3](0u, 0u, 0u)) \
                              : ET(0); } } while (false)

#define CM2_STORE4(m, R, C, Buf, base, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3) \
    do { CM2_FOR(m, R, C) { int cm2_x = CM2_ND4(C, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3); \
        if (cm2_x >= 0) Buf(base).v[cm2_x] = m[cm2_e]; } } while (false)

#else

#define CM2_SLICE3(d0, d1, d2, o0, s0, o1, s1, o2, s2) \
    sliceTensorLayoutNV(setTensorLayoutDimensionNV(createTensorLayoutNV(3, CM2_CLAMP), d0, d1, d2), int(o0), s0, int(o1), s1, int(o2), s2)
#define CM2_SLICE4(d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3) \
    sliceTensorLayoutNV(setTensorLayoutDimensionNV(createTensorLayoutNV(4, CM2_CLAMP), d0, d1, d2, d3), \
                        int(o0), s0, int(o1), s1, int(o2), s2, int(o3), s3)

#define CM2_LOAD3(m, R, C, ET, Buf, base, d0, d1, d2, o0, s0, o1, s1, o2, s2) \
    coopMatLoadTensorNV(m, Buf(base).v, 0, CM2_SLICE3(d0, d1, d2, o0, s0, o1, s1, o2, s2))
#define CM2_LOAD3_DECODE(m, R, C, ET, base, d0, d1, d2, o0, s0, o1, s1, o2, s2, decode, Elem, bytes) \
    coopMatLoadTensorNV(m, Cm2Bytes(base).v, 0, CM2_SLICE3(d0, d1, d2, o0, s0, o1, s1, o2, s2), decode)
#define CM2_LOAD4(m, R, C, ET, Buf, base, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3) \
    coopMatLoadTensorNV(m, Buf(base).v, 0, CM2_SLICE4(d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3))
#define CM2_LOAD4_DECODE(m, R, C, ET, base, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3, decode, Elem, bytes) \
    coopMatLoadTensorNV(m, Cm2Bytes(base).v, 0, CM2_SLICE4(d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3), decode)
#define CM2_STORE4(m, R, C, Buf, base, d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3) \
    coopMatStoreTensorNV(m, Buf(base).v, 0, CM2_SLICE4(d0, d1, d2, d3, o0, s0, o1, s1, o2, s2, o3, s3))

#endif
