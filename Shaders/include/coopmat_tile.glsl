// The tile shared by the tensor-core GEMM and convolution (file scope; the function-body half is
// coopmat_tile_loop.glsl). A workgroup computes BM x BN outputs with (BM/WM) x (BN/WN) subgroups of 32 invocations,
// each owning WM x WN outputs as (WM/16) x (WN/16) accumulator fragments; K is walked in BK-wide slices of A
// (BM x BK, or BK x BM when TRANS_A) and B (BK x BN, or BN x BK when TRANS_B) staged as fp16 into the shared
// array S in the operands' stored layouts, double-buffered, in chunks of 8 elements (one uvec4) along the
// contiguous dimension. Expects the constants BM, BN, BK, WM, WN, TRANS_A and TRANS_B.

const uint SUBGROUPS = (BM / WM) * (BN / WN);
const uint WG = SUBGROUPS * 32u;
const uint FM = WM / 16u;
const uint FN = WN / 16u;
// Staged slices in the operands' stored layouts: rows x cols halves, cols contiguous, rows padded to LD.
const uint A_ROWS = TRANS_A == 0u ? BM : BK;
const uint A_COLS = TRANS_A == 0u ? BK : BM;
const uint B_ROWS = TRANS_B == 0u ? BK : BN;
const uint B_COLS = TRANS_B == 0u ? BN : BK;
const uint A_LD = A_COLS + 8u;                  // halves; a multiple of 8 (16 bytes)
const uint B_LD = B_COLS + 8u;
const uint A_LD4 = A_LD / 8u;                   // in uvec4 (8 halves)
const uint B_LD4 = B_LD / 8u;
const uint A_STAGE = A_ROWS * A_LD4;            // uvec4 per buffer
const uint B_STAGE = B_ROWS * B_LD4;
const uint A_CPR = A_COLS / 8u;                 // 8-element chunks per row
const uint B_CPR = B_COLS / 8u;
const uint A_CHUNKS = A_ROWS * A_CPR;
const uint B_CHUNKS = B_ROWS * B_CPR;
const uint CA = (A_CHUNKS + WG - 1u) / WG;      // chunks per invocation
const uint CB = (B_CHUNKS + WG - 1u) / WG;
const uint STAGING = 2u * (A_STAGE + B_STAGE);  // A0, A1, B0, B1
const uint SCRATCH = SUBGROUPS * 64u;           // 16x16 fp32 per subgroup (aliases the staging buffers)
const uint S_SIZE = STAGING > SCRATCH ? STAGING : SCRATCH;

shared uvec4 S[S_SIZE];
