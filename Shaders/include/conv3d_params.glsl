// Push constants of the convolution shaders (conv3d.comp, include/conv3d_coopmat.glsl, include/conv3d_cm2.glsl,
// include/conv3d_rows_cm2.glsl): tensors by device address, sizes, strides and paddings (see conv3d.comp for the
// layouts and the virtual input).
layout(push_constant) uniform P {
    uint64_t x;
    uint64_t w;
    uint64_t cache;
    uint64_t out_;
    uint64_t bias;
    uint64_t res;
    uint Cin;
    uint Cout;
    uint T;        // input frames (x)
    uint H;
    uint W;
    uint Tc;       // cached frames
    uint To;       // output frames, height, width
    uint Ho;
    uint Wo;
    uint st;       // strides
    uint sh;
    uint sw;
    int padTop;
    int padLeft;
    int tFront;    // zero frames + cached frames in front of x: virtual time of x's frame 0
    uint batch;
} p;
