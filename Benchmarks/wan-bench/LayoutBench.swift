import WanRuntime

/// Layout kernels, memory-bound (GB/s = bytes read + written): the DiT's attention head split
/// (permute [1, L, 12, 128] -> [1, 12, L, 128]), the VAE attention's token transpose, and the VAE's
/// cache concat and causal/downsampling pads at 480x832. (A dense same-dtype copy is a vkCmdCopyBuffer,
/// which the recorder's GPU timestamps do not cover, so it has no row.)
let layoutSuite = BenchSuite(name: "layout") { ctx in
    let full = ctx.fullSize
    var rows: [BenchRow] = []
    func row(_ kernel: String, _ shape: String, _ device: Device, _ ms: Double, _ bytes: Int) {
        rows.append(BenchRow(kernel: kernel, shape: shape, device: Bench.label(device), ms: ms,
                             bytes: Double(bytes), memoryBytes: device.memoryStatistics.used))
    }
    for device in ctx.devices {
        // DiT: [1, L, heads, d] <-> [1, heads, L, d] around attention.
        let seq = full ? 32760 : 780
        for dtype in [DType.bf16, .f32] {
            let x = try device.tensor(Bench.random(seq * 12 * 128), shape: [1, seq, 12, 128], dtype: dtype)
            let y = try device.empty([1, 12, seq, 128], dtype: dtype)
            let ms = try Bench.time(device, repeats: ctx.repeats) { try $0.permute(x, order: [0, 2, 1, 3], out: y) }
            row("permute 0213 \(dtype)", "[1,\(seq),12,128]", device, ms, 2 * x.byteCount)
        }
        // VAE attention: [C, h*w] -> [h*w, C] (tiled transpose on Vulkan).
        do {
            let (c, hw) = full ? (384, 60 * 104) : (384, 30 * 52)
            let x = try device.tensor(Bench.random(c * hw), shape: [c, hw])
            let y = try device.empty([hw, c])
            let ms = try Bench.time(device, repeats: ctx.repeats) { try $0.permute(x, order: [1, 0], out: y) }
            row("transpose f32", "[\(c),\(hw)]", device, ms, 2 * x.byteCount)
        }
        // VAE causal conv input: cat(cache of 2 frames, chunk of 4 frames) along time.
        let (h, w) = full ? (480, 832) : (60, 104)
        do {
            let cache = try device.tensor(Bench.random(96 * 2 * h * w), shape: [1, 96, 2, h, w])
            let x = try device.tensor(Bench.random(96 * 4 * h * w, seed: 2), shape: [1, 96, 4, h, w])
            let y = try device.empty([1, 96, 6, h, w])
            let ms = try Bench.time(device, repeats: ctx.repeats) { try $0.concat([cache, x], dim: 2, out: y) }
            row("concat time f32", "[1,96,2+4,\(h),\(w)]", device, ms, 2 * y.byteCount)
        }
        // VAE pads: time by 2 in front; the causal conv's (t 2, h 1+1, w 1+1); downsampling's (h 0+1, w 0+1).
        do {
            let x = try device.tensor(Bench.random(96 * 4 * h * w), shape: [1, 96, 4, h, w])
            for (name, before, after) in [("pad t2", [2, 0, 0], [0, 0, 0]), ("pad t2 h1 w1", [2, 1, 1], [0, 1, 1]),
                                          ("pad h0+1 w0+1", [0, 0], [1, 1])] {
                let outShape = (0..<5).map { d -> Int in
                    let k = d - (5 - before.count)
                    return x.shape[d] + (k >= 0 ? before[k] + after[k] : 0)
                }
                let y = try device.empty(outShape)
                let ms = try Bench.time(device, repeats: ctx.repeats) { try $0.pad(x, before: before, after: after, out: y) }
                row("\(name) f32", "[1,96,4,\(h),\(w)]", device, ms, x.byteCount + y.byteCount)
            }
        }
    }
    return rows
}
