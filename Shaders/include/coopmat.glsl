// 16x16 cooperative-matrix fragments for the tensor-core shaders, in one of three dialects chosen by the including
// file: VK_NV_cooperative_matrix (the default); VK_KHR_cooperative_matrix (CM_KHR: needs glslang 13 or newer, an
// optional build, see Benchmarks/glslang-newer.sh); or, with CM_EMULATE, an emulation on ordinary invocations that
// runs on any device (lavapipe in CI), so that the shaders' own logic (staging, edges, softmax, epilogues) is
// tested without tensor cores.
//
// Include after the workgroup size declaration; the including shader enables the dialect's GLSL extensions
// (GL_NV_cooperative_matrix or GL_KHR_cooperative_matrix, GL_KHR_memory_scope_semantics, subgroup basics). It uses
// only these names:
//   CM_F16A, CM_F16B, CM_F32    fragment types: fp16 A operand (left), fp16 B operand (right), fp32 accumulator,
//                               16x16 (KHR distinguishes the three uses; NV and the emulation do not)
//   CM_F16                      an fp16 fragment of no particular use (NV and emulated only)
//   CM_F32_ZERO                 a zero accumulator
//   cm_mma(a, b, c)             a·b + c
//   cm_to_f16(c)                an accumulator rounded to an fp16 fragment (element-wise; NV and emulated only:
//                               KHR cannot change a matrix's use)
//   CM_LOAD / CM_STORE          coopMatLoadNV / coopMatStoreNV on an array of the fragment's element type
//   CM_LOAD_U4H                 load of fp16 elements packed in a uvec4 array (offset and stride in uvec4)
//   CM_STORE_U4F                store of fp32 elements into a uvec4 array (offset and stride in uvec4)
//   CM_SG, CM_LANE              the subgroup of 32 and the lane in it
//   CM_UNROLL                   [[unroll]] natively; loops stay loops when emulated (lavapipe compiles
//                               unrolled barriers very slowly)
//   CM_SUBGROUP_SYNC()          subgroup barrier with shared-memory visibility
//   cm_shuffle_xor(x, mask)     subgroupShuffleXor
//   x.length(), x[i]            the elements an invocation holds (layout: the driver's, or the emulation's)
//
// The emulation: "subgroups" are the workgroup's invocations in consecutive groups of 32; a fragment is 8 elements
// per invocation; element i of lane l sits at (cm_row(l, i), cm_col(l, i)). CM_EMU_LAYOUT (specialization
// constant CM_EMU_LAYOUT_ID, which the shader defines) picks the layout: 0 is NVIDIA's mma layout (lane l holds
// rows l/4 and l/4 + 8, two adjacent columns in each 8-column half; element bit 1 picks the row), 2 the same with
// the element order permuted (bit 2 picks the row: drivers have reordered fragment registers), 1 another one (lane
// l holds column l%16 of eight rows), for checking code that must not depend on the layout. Products and shuffles go through shared
// memory with workgroup barriers, so every cm_mma, cm_shuffle_xor and CM_SUBGROUP_SYNC must be reached by the
// whole workgroup (the native operations need uniform control flow in the subgroup; the shaders keep it uniform
// in the workgroup). Products are exact fp16 × fp16 terms summed in fp32.

#ifdef CM_EMULATE

layout(constant_id = CM_EMU_LAYOUT_ID) const uint CM_EMU_LAYOUT = 0;

#define CM_F16 float16_t[8]
#define CM_F16A CM_F16
#define CM_F16B CM_F16
#define CM_F32 float[8]
#define CM_F32_ZERO float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
#define CM_SG (gl_LocalInvocationID.x >> 5)
#define CM_LANE (gl_LocalInvocationID.x & 31u)
#define CM_SUBGROUP_SYNC() barrier()
#define CM_UNROLL [[dont_unroll]]

shared float16_t cm_emu_ab[gl_WorkGroupSize.x * 16u];   // per subgroup: A then B, 256 halves each
shared float cm_emu_x[gl_WorkGroupSize.x];

uint cm_row(uint l, uint i) {
    if (CM_EMU_LAYOUT == 0u) return (l >> 2) + ((i & 2u) << 2);
    if (CM_EMU_LAYOUT == 2u) return (l >> 2) + ((i & 4u) << 1);
    return (i << 1) + (l >> 4);
}
uint cm_col(uint l, uint i) {
    if (CM_EMU_LAYOUT == 0u) return ((l & 3u) << 1) + (i & 1u) + ((i & 4u) << 1);
    if (CM_EMU_LAYOUT == 2u) return ((l & 3u) << 1) + (i & 1u) + ((i & 2u) << 2);
    return l & 15u;
}
// Index of element i of this lane in a matrix stored at off with stride (row-major, or column-major).
uint cm_index(uint i, uint off, uint stride, bool colMajor) {
    uint r = cm_row(CM_LANE, i), c = cm_col(CM_LANE, i);
    return colMajor ? off + c * stride + r : off + r * stride + c;
}

float[8] cm_mma(float16_t a[8], float16_t b[8], float c[8]) {
    uint base = CM_SG * 512u, l = CM_LANE;
    [[dont_unroll]] for (uint i = 0u; i < 8u; i++) {
        uint e = cm_row(l, i) * 16u + cm_col(l, i);
        cm_emu_ab[base + e] = a[i];
        cm_emu_ab[base + 256u + e] = b[i];
    }
    barrier();
    [[dont_unroll]] for (uint i = 0u; i < 8u; i++) {
        uint r = cm_row(l, i), col = cm_col(l, i);
        float s = c[i];
        [[dont_unroll]] for (uint k = 0u; k < 16u; k++)
            s += float(cm_emu_ab[base + r * 16u + k]) * float(cm_emu_ab[base + 256u + k * 16u + col]);
        c[i] = s;
    }
    barrier();
    return c;
}

float16_t[8] cm_to_f16(float c[8]) {
    float16_t h[8];
    [[dont_unroll]] for (uint i = 0u; i < 8u; i++) h[i] = float16_t(c[i]);
    return h;
}

float cm_shuffle_xor(float x, uint mask) {
    uint t = gl_LocalInvocationID.x;
    cm_emu_x[t] = x;
    barrier();
    float y = cm_emu_x[(t & ~31u) | ((t & 31u) ^ mask)];
    barrier();
    return y;
}

#define CM_LOAD(dst, arr, off, stride, colMajor) \
    do { for (uint cm_i = 0u; cm_i < 8u; cm_i++) dst[cm_i] = arr[cm_index(cm_i, (off), (stride), (colMajor))]; } while (false)
#define CM_STORE(src, arr, off, stride, colMajor) \
    do { for (uint cm_i = 0u; cm_i < 8u; cm_i++) arr[cm_index(cm_i, (off), (stride), (colMajor))] = src[cm_i]; } while (false)
#define CM_LOAD_U4H(dst, arr, off, stride, colMajor) \
    do { for (uint cm_i = 0u; cm_i < 8u; cm_i++) { \
        uint cm_e = cm_index(cm_i, (off) * 8u, (stride) * 8u, (colMajor)); \
        dst[cm_i] = float16_t(unpackHalf2x16(arr[cm_e >> 3][(cm_e >> 1) & 3u] >> (16u * (cm_e & 1u))).x); } } while (false)
#define CM_STORE_U4F(src, arr, off, stride) \
    do { for (uint cm_i = 0u; cm_i < 8u; cm_i++) { \
        uint cm_e = cm_index(cm_i, (off) * 4u, (stride) * 4u, false); \
        arr[cm_e >> 2][cm_e & 3u] = floatBitsToUint(src[cm_i]); } } while (false)

#elif defined(CM_KHR)

#define CM_F16A coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define CM_F16B coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define CM_F32 coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define CM_F32_ZERO CM_F32(0.0)
#define CM_SG gl_SubgroupID
#define CM_LANE gl_SubgroupInvocationID
#define CM_SUBGROUP_SYNC() { subgroupMemoryBarrierShared(); subgroupBarrier(); }
#define CM_UNROLL [[unroll]]

#define cm_mma(a, b, c) coopMatMulAdd(a, b, c)
#define cm_shuffle_xor(x, mask) subgroupShuffleXor(x, mask)

#define CM_KHR_LAYOUT(colMajor) ((colMajor) ? gl_CooperativeMatrixLayoutColumnMajor : gl_CooperativeMatrixLayoutRowMajor)
#define CM_LOAD(dst, arr, off, stride, colMajor) coopMatLoad(dst, arr, off, stride, CM_KHR_LAYOUT(colMajor))
#define CM_STORE(src, arr, off, stride, colMajor) coopMatStore(src, arr, off, stride, CM_KHR_LAYOUT(colMajor))
#define CM_LOAD_U4H(dst, arr, off, stride, colMajor) coopMatLoad(dst, arr, off, stride, CM_KHR_LAYOUT(colMajor))
#define CM_STORE_U4F(src, arr, off, stride) coopMatStore(src, arr, off, stride, gl_CooperativeMatrixLayoutRowMajor)

#else

#define CM_F16 fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CM_F16A CM_F16
#define CM_F16B CM_F16
#define CM_F32 fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define CM_F32_ZERO CM_F32(0.0)
#define CM_SG gl_SubgroupID
#define CM_LANE gl_SubgroupInvocationID
#define CM_SUBGROUP_SYNC() { subgroupMemoryBarrierShared(); subgroupBarrier(); }
#define CM_UNROLL [[unroll]]

#define cm_mma(a, b, c) coopMatMulAddNV(a, b, c)
#define cm_to_f16(c) CM_F16(c)
#define cm_shuffle_xor(x, mask) subgroupShuffleXor(x, mask)

#define CM_LOAD(dst, arr, off, stride, colMajor) coopMatLoadNV(dst, arr, off, stride, colMajor)
#define CM_STORE(src, arr, off, stride, colMajor) coopMatStoreNV(src, arr, off, stride, colMajor)
#define CM_LOAD_U4H(dst, arr, off, stride, colMajor) coopMatLoadNV(dst, arr, off, stride, colMajor)
#define CM_STORE_U4F(src, arr, off, stride) coopMatStoreNV(src, arr, off, stride, false)

#endif
