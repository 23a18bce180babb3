// The function-body half of coopmat_tile.glsl (the tile of the tensor-core GEMM and convolution), included inside
// the loop over a workgroup's output tiles: zeroed accumulators, the K loop over double-buffered slices (the next
// slice is read from memory into registers before the MMAs of the current one and written to the other shared
// buffer after them: one barrier per slice) and the epilogue, one fragment at a time through a per-subgroup
// 16x16 fp32 scratch. Expects from the includer: tid, sg, lane, wm, wn, m0, n0, M, N and nk; aRow, aCol, bRow,
// bCol (where this invocation's chunks sit in a slice); LOAD_SLICE(k0), reading the raw chunks of the slice at k0
// into ra0/ra1 (A) and rb0/rb1 (B), whose encodings TILE_A_DT and TILE_B_DT name; TILE_OUTPUT(val, row, col), turning
// the accumulated value val of output (row, col) into the output before the residual; outBase, resBase, OUT_DT, RES_DT
// and HAS_RES. LOAD_SLICE is undefined at the end.
        CM_F32 acc[FM * FN];
        CM_UNROLL for (uint f = 0; f < FM * FN; f++) acc[f] = CM_F32_ZERO;

        // Raw chunks of the next slice, held in registers across the MMAs of the current one.
        uvec4 ra0[CA], ra1[CA], rb0[CB], rb1[CB];

#define STORE_SLICE(buf)                                                                                        \
        {                                                                                                       \
            CM_UNROLL for (uint c = 0u; c < CA; c++)                                                           \
                if (tid + c * WG < A_CHUNKS)                                                                    \
                    S[(buf) * A_STAGE + aRow[c] * A_LD4 + aCol[c] / 8u] = to_half8(TILE_A_DT, ra0[c], ra1[c]);  \
            CM_UNROLL for (uint c = 0u; c < CB; c++)                                                           \
                if (tid + c * WG < B_CHUNKS)                                                                    \
                    S[2u * A_STAGE + (buf) * B_STAGE + bRow[c] * B_LD4 + bCol[c] / 8u] = to_half8(TILE_B_DT, rb0[c], rb1[c]); \
        }

        if (nk > 0u) {
            LOAD_SLICE(0u)
            STORE_SLICE(0u)
        }
        barrier();
        for (uint t = 0u; t < nk; t++) {
            uint cur = t & 1u;
            bool more = t + 1u < nk;
            if (more) LOAD_SLICE((t + 1u) * BK)
            uint aOff = cur * A_STAGE, bOff = 2u * A_STAGE + cur * B_STAGE;
            CM_UNROLL for (uint kk = 0; kk < BK; kk += 16u) {
                CM_F16A af[FM];
                CM_F16B bf[FN];
                // Offsets in uvec4 (8 halves): fragment corners are multiples of 16 halves.
                CM_UNROLL for (uint i = 0; i < FM; i++) {
                    uint m = wm * WM + i * 16u;
                    if (TRANS_A == 0u) CM_LOAD_U4H(af[i], S, aOff + m * A_LD4 + kk / 8u, A_LD4, false);
                    else CM_LOAD_U4H(af[i], S, aOff + kk * A_LD4 + m / 8u, A_LD4, true);
                }
                CM_UNROLL for (uint j = 0; j < FN; j++) {
                    uint n = wn * WN + j * 16u;
                    if (TRANS_B == 0u) CM_LOAD_U4H(bf[j], S, bOff + kk * B_LD4 + n / 8u, B_LD4, false);
                    else CM_LOAD_U4H(bf[j], S, bOff + n * B_LD4 + kk / 8u, B_LD4, true);
                }
                CM_UNROLL for (uint i = 0; i < FM; i++)
                CM_UNROLL for (uint j = 0; j < FN; j++)
                    acc[i * FN + j] = cm_mma(af[i], bf[j], acc[i * FN + j]);
            }
            // The other buffer was last read in the previous slice, before the barrier that ended it.
            if (more) STORE_SLICE(cur ^ 1u)
            barrier();
        }
#undef LOAD_SLICE
#undef STORE_SLICE

        // Epilogue, one fragment at a time through this subgroup's 16x16 fp32 scratch at S[sg * 64]
        // (the staging buffers are dead: every read of them happened before the last barrier).
        CM_UNROLL for (uint i = 0; i < FM; i++) {
            CM_UNROLL for (uint j = 0; j < FN; j++) {
                CM_STORE_U4F(acc[i * FN + j], S, sg * 64u, 4u);
                CM_SUBGROUP_SYNC();
                for (uint e = lane; e < 256u; e += 32u) {
                    uint m = m0 + wm * WM + i * 16u + e / 16u;
                    uint n = n0 + wn * WN + j * 16u + e % 16u;
                    if (m < M && n < N) {
                        float v = uintBitsToFloat(S[sg * 64u + e / 4u][e % 4u]);
                        TILE_OUTPUT(v, m, n)
                        uint o = m * N + n;
                        if (HAS_RES != 0u) v += load_elem(resBase, RES_DT, o);
                        store_elem(outBase, OUT_DT, o, v);
                    }
                }
                CM_SUBGROUP_SYNC();
            }
        }
        // The next tile's first slice overwrites the scratch.
        barrier();
