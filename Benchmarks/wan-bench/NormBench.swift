import WanRuntime

/// LayerNorm / RMSNorm / softmax / reductions at Wan's shapes: memory-bound, reported in GB/s.
let normSuite = BenchSuite(name: "norm") { ctx in
    let full = ctx.fullSize
    // DiT tokens (480x832, 81 frames: 32760) x dim 1536 (1.3B) / 5120 (14B); attention-like softmax rows;
    // a VAE decoder activation normalised over its channel axis.
    let tokens = full ? 32760 : 1024
    let dit14 = full ? 32760 : 256
    let softmaxRows = full ? 12 * 256 : 384
    let vae = full ? [96, 4 * 240 * 416] : [96, 4 * 30 * 52]
    var rows: [BenchRow] = []
    for device in ctx.devices {
        func row(_ kernel: String, _ shape: [Int], _ dt: DType, _ od: DType, _ body: (CommandList) throws -> Void) throws {
            let ms = try Bench.time(device, repeats: ctx.repeats, body)
            let n = shape.reduce(1, *)
            rows.append(BenchRow(kernel: kernel, shape: shape.map(String.init).joined(separator: "x"), device: Bench.label(device),
                                 ms: ms, bytes: Double(n * (dt.size + od.size)), memoryBytes: device.memoryStatistics.used))
        }
        do {
            let shape = [tokens, 1536]
            let x = try device.tensor(Bench.random(shape[0] * shape[1]), shape: shape)
            let w = try device.tensor(Bench.random(1536, seed: 2), shape: [1536])
            let b = try device.tensor(Bench.random(1536, seed: 3), shape: [1536])
            let y = try device.empty(shape), yb = try device.empty(shape, dtype: .bf16)
            try row("layerNorm f32 (no affine)", shape, .f32, .f32) { try $0.layerNorm(x, weight: nil, bias: nil, eps: 1e-6, out: y) }
            try row("layerNorm f32->bf16 w+b", shape, .f32, .bf16) { try $0.layerNorm(x, weight: w, bias: b, eps: 1e-6, out: yb) }
            try row("rmsNorm bf16->f32 w, round bf16", shape, .bf16, .f32) {
                try $0.rmsNorm(yb, weight: w, eps: 1e-6, out: y, roundNormalizedTo: .bf16)
            }
            try row("rmsNorm f32 w", shape, .f32, .f32) { try $0.rmsNorm(x, weight: w, eps: 1e-6, out: y) }
            let s = try device.empty([tokens])
            try row("reduce sum f32", shape, .f32, .f32) { try $0.reduce(.sum, x, out: s) }
        }
        do {
            let shape = [dit14, 5120]
            let x = try device.tensor(Bench.random(shape[0] * shape[1]), shape: shape)
            let w = try device.tensor(Bench.random(5120, seed: 2), shape: [5120])
            let y = try device.empty(shape)
            try row("rmsNorm f32 w (14B)", shape, .f32, .f32) { try $0.rmsNorm(x, weight: w, eps: 1e-6, out: y) }
            try row("layerNorm f32 (14B)", shape, .f32, .f32) { try $0.layerNorm(x, weight: nil, bias: nil, eps: 1e-6, out: y) }
        }
        do {
            let shape = [softmaxRows, 4096]
            let x = try device.tensor(Bench.random(shape[0] * shape[1]), shape: shape)
            let y = try device.empty(shape)
            try row("softmax f32", shape, .f32, .f32) { try $0.softmax(x, out: y, scale: 0.088388) }
        }
        do {
            let x = try device.tensor(Bench.random(vae[0] * vae[1]), shape: vae)
            let g = try device.tensor(Bench.random(vae[0], seed: 2), shape: [vae[0]])
            let y = try device.empty(vae)
            try row("rmsNorm l2 axis 0 (VAE)", vae, .f32, .f32) {
                try $0.rmsNorm(x, weight: g, eps: 1e-12, out: y, axis: 0, style: .l2Clamped)
            }
        }
    }
    return rows
}
