// The per-element epilogue of the coopmat2 convolutions (include/conv3d_cm2.glsl, include/conv3d_rows_cm2.glsl): the
// bias of the accumulated value v at (r, c) of a tile whose first output channel is m0 (CM2_PER_ELEMENT's function).
float tile_output(const in uint r, const in uint c, const in float v, const in uint m0) {
    uint row = m0 + r;
    if (row >= p.Cout) return 0.0;   // outside the output: dropped by the store
    return HAS_BIAS != 0u ? v + load_elem(p.bias, BIAS_DT, row) : v;
}
