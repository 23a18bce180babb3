// Workgroup-scope cooperative matrices for the coopmat2 shaders (gemm_cm2, attention_cm2, conv3d_cm2, conv3d_rows_cm2):
// natively through VK_NV_cooperative_matrix2 (tensor-addressed loads and stores, per-element operations, row
// reductions, use conversions), or, with CM2_EMULATE, emulated on ordinary invocations so that the shaders' own
// logic (addressing, edges, masks, the online softmax, epilogues) runs and is tested on any device with fp16
// arithmetic (lavapipe in CI), where no driver offers the extension.
//
// Include after the workgroup size declaration (1-D workgroups); the including .comp file enables, natively,
// GL_KHR_cooperative_matrix, GL_NV_cooperative_matrix2, GL_KHR_memory_scope_semantics and fp16 arithmetic. The
// shaders use only these names:
//   CM2_A(R, C), CM2_B(R, C)     fp16 operand types (left, right) of R rows and C columns
//   CM2_ACC(R, C), CM2_ACC16(R, C) fp32 and fp16 accumulators
//   CM2_ACC_FILL(m, R, C, v)     an fp32 accumulator filled with v
//   CM2_LOAD(m, R, C, ET, Buf, base, rows, cols, stride, r0, c0, transposed)
//                                m[i][j] = T[r0 + i][c0 + j] (transposed: T[r0 + j][c0 + i]) where T is the
//                                rows × cols matrix of ET elements at base (row stride `stride` elements, Buf a
//                                buffer_reference to ET[]), and 0 outside it
//   CM2_LOAD_DECODE(m, R, C, ET, base, rows, cols, stride, r0, c0, transposed, decode, Elem, bytes)
//                                the same through a decode function: decode(Elem element, uint block[2],
//                                uint inBlock[2]) of elements `bytes` long
//   CM2_LOAD_INSIDE(...), CM2_LOAD_DECODE_INSIDE(...)
//                                the same for a slice known to lie inside T: no clamping (natively a layout without
//                                a clamp mode, the cheaper load; emulated, no bounds check, so a slice that is not
//                                inside reads wrong elements and fails the tests)
//   CM2_LOAD_SHARED(m, R, C, arr, offset, stride)
//                                m[i][j] = arr[offset + i · stride + j] of a shared float16_t array (row-major)
//   CM2_STORE(m, R, C, Buf, base, rows, cols, stride, r0, c0)
//                                T[r0 + i][c0 + j] = m[i][j] inside T (elements outside are dropped)
//   CM2_MULADD(c, a, b, R, K, C) c = a · b + c
//   CM2_PER_ELEMENT(dst, src, R, C, fn, arg)      dst[i][j] = fn(i, j, src[i][j], arg)
//   CM2_PER_ELEMENT_M(dst, src, R, C, fn, other)  dst[i][j] = fn(i, j, src[i][j], other[i][j])
//   CM2_REDUCE_ROWS(dst, DC, src, R, C, fn)       dst (R × DC)[i][j] = fn-combination of src's row i
//   CM2_CONVERT(dst, DT, src, R, C, ET)           dst = src as type DT (element type ET), e.g. an accumulator
//                                                 to an operand
//   CM2_ADD(dst, src)                             dst += src
//   CM2_COPY(dst, src)                            dst = src (same type)
//
// The emulation: a matrix is an array of ceil(R·C / WG) elements per invocation; element e of invocation t is
// (i / C, i % C) with i = t + e·WG. Products, reductions and nothing else go through shared memory
// (cm2_emu_a / cm2_emu_b of CM2_EMU_A_SIZE / CM2_EMU_B_SIZE halves, cm2_emu_r of CM2_EMU_R_SIZE floats, sizes
// the shader defines), so every CM2_MULADD and CM2_REDUCE_ROWS must be reached by the whole workgroup. Natively
// every operation on a workgroup-scope matrix (fills, loads, stores, per-element operations, conversions too) must
// be reached by the whole workgroup in uniform control flow; the emulation does not catch a violation of that, so
// shaders branch around them only on specialization constants, push constants and workgroup-uniform values.
// Products are exact fp16 × fp16 terms summed in fp32 in order.

#define CM2_CLAMP gl_CooperativeMatrixClampModeConstantNV

layout(buffer_reference, std430, buffer_reference_align = 16) buffer Cm2F16 { float16_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer Cm2F32 { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer Cm2Bytes { uint8_t v[]; };

// One element, as decode functions receive it.
layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32Elem { float v; };
layout(buffer_reference, std430, buffer_reference_align = 2) buffer U16Elem { uint16_t v; };
layout(buffer_reference, std430, buffer_reference_align = 1) buffer U8Elem { uint8_t v; };

// f32 and bf16 operands rounded to fp16 while loading (CM2_LOAD_DECODE with F32Elem, 4 or U16Elem, 2).
float16_t from_f32(const in F32Elem e, const in uint block[2], const in uint inBlock[2]) { return float16_t(e.v); }
float16_t from_bf16(const in U16Elem e, const in uint block[2], const in uint inBlock[2]) {
    return float16_t(uintBitsToFloat(uint(e.v) << 16));
}
// f16 and bf16 elements widened to fp32 (accumulator loads: residuals).
float f32_from_f16(const in U16Elem e, const in uint block[2], const in uint inBlock[2]) { return f16_to_f32(uint(e.v)); }
float f32_from_bf16(const in U16Elem e, const in uint block[2], const in uint inBlock[2]) {
    return uintBitsToFloat(uint(e.v) << 16);
}

#ifdef CM2_EMULATE

#define CM2_WG gl_WorkGroupSize.x
#define CM2_LEN(R, C) (((R) * (C) + CM2_WG - 1u) / CM2_WG)
#define CM2_A(R, C) float16_t[CM2_LEN(R, C)]
#define CM2_B(R, C) float16_t[CM2_LEN(R, C)]
#define CM2_ACC(R, C) float[CM2_LEN(R, C)]
#define CM2_ACC16(R, C) float16_t[CM2_LEN(R, C)]

shared float16_t cm2_emu_a[CM2_EMU_A_SIZE];
shared float16_t cm2_emu_b[CM2_EMU_B_SIZE];
#ifdef CM2_EMU_R_SIZE
shared float cm2_emu_r[CM2_EMU_R_SIZE];
#endif

// Loops over this invocation's elements of an R × C matrix m: cm2_e its index in m, cm2_i the linear index.
#define CM2_FOR(m, R, C) \
    [[dont_unroll]] for (uint cm2_e = 0u, cm2_i = gl_LocalInvocationIndex; cm2_e < m.length(); cm2_e++, cm2_i += CM2_WG) \
        if (cm2_i < (R) * (C))

#define CM2_ACC_FILL(m, R, C, v) do { CM2_FOR(m, R, C) m[cm2_e] = (v); } while (false)

// The tensor element (row, col) of matrix element cm2_i: cm2_tr, cm2_tc.
#define CM2_TENSOR_COORD(C, r0, c0, transposed) \
    uint cm2_tr = (transposed) ? (r0) + cm2_i % (C) : (r0) + cm2_i / (C); \
    uint cm2_tc = (transposed) ? (c0) + cm2_i / (C) : (c0) + cm2_i % (C)

#define CM2_LOAD(m, R, C, ET, Buf, base, rows, cols, stride, r0, c0, transposed) \
    do { CM2_FOR(m, R, C) { CM2_TENSOR_COORD(C, r0, c0, transposed); \
        m[cm2_e] = cm2_tr < (rows) && cm2_tc < (cols) ? ET(Buf(base).v[cm2_tr * (stride) + cm2_tc]) : ET(0); } } while (false)

#define CM2_LOAD_DECODE(m, R, C, ET, base, rows, cols, stride, r0, c0, transposed, decode, Elem, bytes) \
    do { CM2_FOR(m, R, C) { CM2_TENSOR_COORD(C, r0, c0, transposed); \
        m[cm2_e] = cm2_tr < (rows) && cm2_tc < (cols) \
            ? decode(Elem((base) + uint64_t(cm2_tr * (stride) + cm2_tc) * uint64_t(bytes)), uint[2](cm2_tr, cm2_tc), uint[2](0u, 0u)) \
            : ET(0); } } while (false)

#define CM2_LOAD_INSIDE(m, R, C, ET, Buf, base, rows, cols, stride, r0, c0, transposed) \
    do { CM2_FOR(m, R, C) { CM2_TENSOR_COORD(C, r0, c0, transposed); m[cm2_e] = ET(Buf(base).v[cm2_tr * (stride) + cm2_tc]); } } while (false)

#define CM2_LOAD_DECODE_INSIDE(m, R, C, ET, base, rows, cols, stride, r0, c0, transposed, decode, Elem, bytes) \
    do { CM2_FOR(m, R, C) { CM2_TENSOR_COORD(C, r0, c0, transposed); \
        m[cm2_e] = decode(Elem((base) + uint64_t(cm2_tr * (stride) + cm2_tc) * uint64_t(bytes)), uint[2](cm2_tr, cm2_tc), uint[2](0u, 0u)); } } while (false)

#define CM2_LOAD_SHARED(m, R, C, arr, offset, stride) \
    do { CM2_FOR(m, R, C) m[cm2_e] = arr[(offset) + (cm2_i / (C)) * (stride) + cm2_i % (C)]; } while (false)

#define CM2_STORE(m, R, C, Buf, base, rows, cols, stride, r0, c0) \
    do { CM2_FOR(m, R, C) { CM2_TENSOR_COORD(C, r0, c0, false); \
        if (cm2_tr < (rows) && cm2_tc < (cols)) Buf(base).v[cm2_tr * (stride) + cm2_tc] = m[cm2_e]; } } while (false)

#define CM2_MULADD(c, a, b, R, K, C) \
    do { \
        CM2_FOR(a, R, K) cm2_emu_a[cm2_i] = a[cm2_e]; \
        CM2_FOR(b, K, C) cm2_emu_b[cm2_i] = b[cm2_e]; \
        barrier(); \
        CM2_FOR(c, R, C) { \
            uint cm2_r = cm2_i / (C), cm2_c = cm2_i % (C); \
            float cm2_s = c[cm2_e]; \
            [[dont_unroll]] for (uint cm2_k = 0u; cm2_k < (K); cm2_k++) \
                cm2_s += float(cm2_emu_a[cm2_r * (K) + cm2_k]) * float(cm2_emu_b[cm2_k * (C) + cm2_c]); \
            c[cm2_e] = cm2_s; \
        } \
        barrier(); \
    } while (false)

#define CM2_PER_ELEMENT(dst, src, R, C, fn, arg) \
    do { CM2_FOR(dst, R, C) dst[cm2_e] = fn(cm2_i / (C), cm2_i % (C), src[cm2_e], arg); } while (false)
#define CM2_PER_ELEMENT_M(dst, src, R, C, fn, other) \
    do { CM2_FOR(dst, R, C) dst[cm2_e] = fn(cm2_i / (C), cm2_i % (C), src[cm2_e], other[cm2_e]); } while (false)

#define CM2_REDUCE_ROWS(dst, DC, src, R, C, fn) \
    do { \
        CM2_FOR(src, R, C) cm2_emu_r[cm2_i] = src[cm2_e]; \
        barrier(); \
        CM2_FOR(dst, R, DC) { \
            uint cm2_r = cm2_i / (DC); \
            float cm2_x = cm2_emu_r[cm2_r * (C)]; \
            [[dont_unroll]] for (uint cm2_c = 1u; cm2_c < (C); cm2_c++) cm2_x = fn(cm2_x, cm2_emu_r[cm2_r * (C) + cm2_c]); \
            dst[cm2_e] = cm2_x; \
        } \
        barrier(); \
    } while (false)

#define CM2_CONVERT(dst, DT, src, R, C, ET) do { CM2_FOR(dst, R, C) dst[cm2_e] = ET(src[cm2_e]); } while (false)
#define CM2_ADD(dst, src) do { [[dont_unroll]] for (uint cm2_e = 0u; cm2_e < dst.length(); cm2_e++) dst[cm2_e] += src[cm2_e]; } while (false)
#define CM2_COPY(dst, src) do { [[dont_unroll]] for (uint cm2_e = 0u; cm2_e < dst.length(); cm2_e++) dst[cm2_e] = src[cm2_e]; } while (false)

#else

#define CM2_A(R, C) coopmat<float16_t, gl_ScopeWorkgroup, R, C, gl_MatrixUseA>
#define CM2_B(R, C) coopmat<float16_t, gl_ScopeWorkgroup, R, C, gl_MatrixUseB>
#define CM2_ACC(R, C) coopmat<float, gl_ScopeWorkgroup, R, C, gl_MatrixUseAccumulator>
#define CM2_ACC16(R, C) coopmat<float16_t, gl_ScopeWorkgroup, R, C, gl_MatrixUseAccumulator>

#define CM2_ACC_FILL(m, R, C, v) m = CM2_ACC(R, C)(v)

// The rows × cols tensor (row stride `stride`): clamped to zero outside (CM2_LAYOUT), or not clamped (the `inside`
// layouts of CM2_LOAD_INSIDE); CM2_LT_<mode> and CM2_NEW_<mode> name each kind's type and constructor.
#define CM2_LT_clamped tensorLayoutNV<2, CM2_CLAMP>
#define CM2_NEW_clamped createTensorLayoutNV(2, CM2_CLAMP)
#define CM2_LT_inside tensorLayoutNV<2>
#define CM2_NEW_inside createTensorLayoutNV(2)
#define CM2_LAYOUT_OF(mode, rows, cols, stride) \
    setTensorLayoutStrideNV(setTensorLayoutDimensionNV(CM2_NEW_##mode, rows, cols), stride, 1u)
#define CM2_LAYOUT(rows, cols, stride) CM2_LAYOUT_OF(clamped, rows, cols, stride)
#define CM2_TRANSPOSED createTensorViewNV(2, false, 1, 0)

#define CM2_LOAD_MODE(mode, m, R, C, Buf, base, rows, cols, stride, r0, c0, transposed) \
    do { \
        CM2_LT_##mode cm2_t = CM2_LAYOUT_OF(mode, rows, cols, stride); \
        if (transposed) coopMatLoadTensorNV(m, Buf(base).v, 0, sliceTensorLayoutNV(cm2_t, r0, C, c0, R), CM2_TRANSPOSED); \
        else coopMatLoadTensorNV(m, Buf(base).v, 0, sliceTensorLayoutNV(cm2_t, r0, R, c0, C)); \
    } while (false)

#define CM2_LOAD_DECODE_MODE(mode, m, R, C, base, rows, cols, stride, r0, c0, transposed, decode) \
    do { \
        CM2_LT_##mode cm2_t = CM2_LAYOUT_OF(mode, rows, cols, stride); \
        if (transposed) coopMatLoadTensorNV(m, Cm2Bytes(base).v, 0, sliceTensorLayoutNV(cm2_t, r0, C, c0, R), CM2_TRANSPOSED, decode); \
        else coopMatLoadTensorNV(m, Cm2Bytes(base).v, 0, sliceTensorLayoutNV(cm2_t, r0, R, c0, C), decode); \
    } while (false)

#define CM2_LOAD(m, R, C, ET, Buf, base, rows, cols, stride, r0, c0, transposed) \
    CM2_LOAD_MODE(clamped, m, R, C, Buf, base, rows, cols, stride, r0, c0, transposed)
#define CM2_LOAD_INSIDE(m, R, C, ET, Buf, base, rows, cols, stride, r0, c0, transposed) \
    CM2_LOAD_MODE(inside, m, R, C, Buf, base, rows, cols, stride, r0, c0, transposed)
#define CM2_LOAD_DECODE(m, R, C, ET, base, rows, cols, stride, r0, c0, transposed, decode, Elem, bytes) \
    CM2_LOAD_DECODE_MODE(clamped, m, R, C, base, rows, cols, stride, r0, c0, transposed, decode)
#define CM2_LOAD_DECODE_INSIDE(m, R, C, ET, base, rows, cols, stride, r0, c0, transposed, decode, Elem, bytes) \
    CM2_LOAD_DECODE_MODE(inside, m, R, C, base, rows, cols, stride, r0, c0, transposed, decode)

#define CM2_LOAD_SHARED(m, R, C, arr, offset, stride) coopMatLoad(m, arr, offset, stride, gl_CooperativeMatrixLayoutRowMajor)

#define CM2_STORE(m, R, C, Buf, base, rows, cols, stride, r0, c0) \
    coopMatStoreTensorNV(m, Buf(base).v, 0, sliceTensorLayoutNV(CM2_LAYOUT(rows, cols, stride), r0, R, c0, C))

#define CM2_MULADD(c, a, b, R, K, C) c = coopMatMulAdd(a, b, c)
#define CM2_PER_ELEMENT(dst, src, R, C, fn, arg) coopMatPerElementNV(dst, src, fn, arg)
#define CM2_PER_ELEMENT_M(dst, src, R, C, fn, other) coopMatPerElementNV(dst, src, fn, other)
#define CM2_REDUCE_ROWS(dst, DC, src, R, C, fn) coopMatReduceNV(dst, src, gl_CooperativeMatrixReduceRowNV, fn)
#define CM2_CONVERT(dst, DT, src, R, C, ET) dst = DT(src)
#define CM2_ADD(dst, src) dst += src
#define CM2_COPY(dst, src) dst = src

#endif
