import Foundation
import WanRuntime

/// Causal 3-D convolution at the Wan VAE's shapes (fp32 accumulation): implicit GEMM on Vulkan,
/// im2col slabs + OpenBLAS on the CPU. Rows: the encoder's 96→96 kernel-3 conv over a 4-frame chunk at
/// 480×832 with 2 cached frames (the issue's row), the decoder's middle 384→384 at 60×104, and the two
/// downsampling convs (spatial stride 2 with the bottom/right pad; temporal stride 2 with 1 cached frame).
/// FLOPs = 2·Cout·Cin·kt·kh·kw·T'·H'·W'. 16-bit rows run on tensor cores where the device has them (`coopmat`, with
/// the tiled kernel's row and, where built, the VK_KHR_cooperative_matrix build and the coopmat2 kernel beside them),
/// and f32 with fp16 compute allowed.
let conv3dSuite = BenchSuite(name: "conv3d") { ctx in
    struct Row {
        var name: String
        var cin, cout, t, h, w, cached: Int
        var params: Conv3DParams
        var dtypes: [DType]
    }
    let shapes: [Row] = ctx.fullSize
        ? [
            Row(name: "k3", cin: 96, cout: 96, t: 4, h: 480, w: 832, cached: 2, params: .causal3, dtypes: [.f32, .f16]),
            Row(name: "k3", cin: 384, cout: 384, t: 4, h: 60, w: 104, cached: 2, params: .causal3, dtypes: [.f32, .f16]),
            Row(name: "down2d", cin: 96, cout: 96, t: 4, h: 480, w: 832, cached: 0, params: .downsampleSpatial, dtypes: [.f32, .f16]),
            Row(name: "downT", cin: 192, cout: 192, t: 4, h: 120, w: 208, cached: 1, params: .downsampleTime, dtypes: [.f32]),
        ]
        : [
            Row(name: "k3", cin: 16, cout: 16, t: 4, h: 16, w: 24, cached: 2, params: .causal3, dtypes: [.f32, .f16]),
            Row(name: "k3", cin: 48, cout: 48, t: 4, h: 12, w: 16, cached: 2, params: .causal3, dtypes: [.f32]),
            Row(name: "down2d", cin: 16, cout: 16, t: 4, h: 24, w: 40, cached: 0, params: .downsampleSpatial, dtypes: [.f32]),
            Row(name: "downT", cin: 24, cout: 24, t: 4, h: 12, w: 20, cached: 1, params: .downsampleTime, dtypes: [.f32]),
        ]
    var rows: [BenchRow] = []
    for device in ctx.devices {
        // OpenBLAS at full size takes about a second per run: fewer repeats there.
        let repeats = device.isCPU && ctx.fullSize ? min(ctx.repeats, 2) : ctx.repeats
        for s in shapes {
            let p = s.params
            let size = try p.outputSize(frames: s.t, height: s.h, width: s.w, cacheFrames: s.cached)
            let taps = p.kernelT * p.kernelH * p.kernelW
            let flops = 2 * Double(s.cout) * Double(s.cin * taps) * Double(size.t * size.h * size.w)
            for dtype in s.dtypes {
                let x = try device.tensor(Bench.random(s.cin * s.t * s.h * s.w, seed: 1), shape: [1, s.cin, s.t, s.h, s.w], dtype: dtype)
                let cache = s.cached > 0
                    ? try device.tensor(Bench.random(s.cin * s.cached * s.h * s.w, seed: 2), shape: [1, s.cin, s.cached, s.h, s.w], dtype: dtype)
                    : nil
                let weight = try device.tensor(Bench.random(s.cout * s.cin * taps, seed: 3).map { $0 * 0.05 },
                                               shape: [s.cout, s.cin, p.kernelT, p.kernelH, p.kernelW], dtype: dtype)
                let bias = try device.tensor(Bench.random(s.cout, seed: 4), shape: [s.cout], dtype: dtype)
                let out = try device.empty([1, s.cout, size.t, size.h, size.w], dtype: dtype)
                let bytes = (x.count + (cache?.count ?? 0) + weight.count + s.cout + out.count) * dtype.size
                let shape = "\(s.cin)→\(s.cout) \(s.t)x\(s.h)x\(s.w)\(s.cached > 0 ? "+\(s.cached)" : "") s\(p.strideT)x\(p.strideH)x\(p.strideW)"
                // One timed row of this convolution, with an environment setting in force (the variant's override).
                func row(_ kernel: String, env: (String, String)? = nil, fp16Compute: Bool = false) throws {
                    if let env { setenv(env.0, env.1, 1) }
                    defer { if let env { unsetenv(env.0) } }
                    let ms = try Bench.time(device, repeats: repeats) {
                        try $0.conv3d(x, weight: weight, bias: bias, cache: cache, params: p, out: out, fp16Compute: fp16Compute)
                    }
                    rows.append(BenchRow(kernel: "conv3d \(s.name) " + kernel, shape: shape, device: Bench.label(device), ms: ms,
                                         flops: flops, bytes: Double(bytes), memoryBytes: device.memoryStatistics.used))
                }
                let tensorCores = device.conv3dUsesTensorCores(x: dtype, weight: dtype, cache: cache?.dtype)
                try row("\(dtype)\(tensorCores ? " coopmat" : "")")
                if tensorCores {
                    // The tiled (CUDA-core) kernel on the same operands, and the tensor-core one on the other
                    // cooperative-matrix API (VK_KHR_cooperative_matrix) where built, for comparison.
                    try row("\(dtype) tiled", env: ("WAN_CONV_COOPMAT", "0"))
                    if device.coopmatAPIs.count > 1 { try row("\(dtype) coopmat khr", env: ("WAN_COOPMAT_API", "khr")) }
                    // The workgroup-scope coopmat2 kernels (VK_NV_cooperative_matrix2) where the device and the build have them.
                    if device.supportsCoopmat2Conv3D {
                        try row("\(dtype) coopmat2", env: ("WAN_CONV_CM2", "1"))
                        // The variant with every operand through tensor layouts (width stride 1; else the gather one).
                        if p.strideW == 1 { try row("\(dtype) coopmat2 rows", env: ("WAN_CONV_CM2", "rows")) }
                    }
                }
                if dtype == .f32 && device.conv3dUsesTensorCores(x: .f32, weight: .f32, cache: cache?.dtype, fp16Compute: true) {
                    // f32 tensors with fp16 compute allowed: rounded to fp16 while staged, on tensor cores.
                    try row("f32 coopmat (fp16 compute)", fp16Compute: true)
                }
            }
        }
    }
    return rows
}
