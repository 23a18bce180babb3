import WanRuntime

/// dtype conversion: f32 -> f16/bf16/fp8 and back, memory-bound.
let convertSuite = BenchSuite(name: "convert") { ctx in
    let n = ctx.fullSize ? 32760 * 1536 : 1 << 18
    var rows: [BenchRow] = []
    for device in ctx.devices {
        let x = try device.tensor(Bench.random(n), shape: [n], dtype: .f32)
        for dst in [DType.f16, .bf16, .f8e4m3fn] {
            let y = try device.empty([n], dtype: dst)
            let ms = try Bench.time(device, repeats: ctx.repeats) { try $0.convert(x, out: y) }
            rows.append(BenchRow(kernel: "convert f32->\(dst)", shape: "\(n)", device: Bench.label(device), ms: ms,
                                 bytes: Double(n * (4 + dst.size)), memoryBytes: device.memoryStatistics.used))
        }
    }
    return rows
}
