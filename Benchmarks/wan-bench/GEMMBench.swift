import Foundation
import WanRuntime

/// Batched GEMM (fp32 accumulation) at Wan 14B's Linear shapes: M = 32760 tokens, hidden 1536 (1.3B)
/// with the FFN's 8960; f32 and f16 inputs, plus a Linear with a fused bias + GELU epilogue. The CPU
/// rows are OpenBLAS `sgemm` (f16 operands converted to f32 first). On devices with tensor cores, first their
/// ceiling through each cooperative-matrix API (`tensorCorePeak`), the f16 GEMM on each API, and the workgroup-scope
/// coopmat2 GEMM where the device and the build have it.
let gemmSuite = BenchSuite(name: "gemm") { ctx in
    // (M, N, K): projections 1536→1536, FFN down 8960→1536, FFN up 1536→8960.
    let shapes = ctx.fullSize
        ? [(32760, 1536, 1536), (32760, 1536, 8960), (32760, 8960, 1536)]
        : [(256, 192, 320), (200, 96, 448), (136, 320, 96)]
    var rows: [BenchRow] = []
    for device in ctx.devices {
        // OpenBLAS at full size takes seconds per run: fewer repeats there.
        let repeats = device.isCPU && ctx.fullSize ? min(ctx.repeats, 2) : ctx.repeats
        // The tensor cores' ceiling through each cooperative-matrix API: products from registers only (8 named
        // accumulators with every shape fixed at compile time, and the array sized by a specialization constant), then with
        // the GEMM's fragment loads from shared memory (4 A x 2 B per round, its 64x32 subgroup tile), from a float16_t
        // array and from the uvec4 array of packed halves the GEMM and the convolution use.
        for api in device.coopmatAPIs {
            let (groups, subgroups, accumulators, iterations) = ctx.fullSize ? (4096, 4, 8, 4096) : (8, 4, 8, 16)
            let ab = try device.tensor(Bench.random(512, seed: 9).map { ($0 * 4).rounded() / 4 }, shape: [512], dtype: .f16)
            let out = try device.empty([groups * subgroups, 16, 16])
            for (shared, packed, named) in [(0, false, true), (0, false, false), (4, false, false), (4, true, false)] {
                let ms = try Bench.time(device, repeats: repeats) {
                    try $0.tensorCorePeak(ab: ab, out: out, groups: groups, subgroups: subgroups, accumulators: accumulators,
                                          iterations: iterations, sharedFragments: shared, packedShared: packed,
                                          namedAccumulators: named, api: api)
                }
                let source = shared == 0 ? "registers only, \(accumulators) \(named ? "named accumulators" : "accumulators in an array")"
                                         : "4x2 fragments from shared \(packed ? "uvec4[]" : "f16[]"), \(accumulators) accumulators"
                rows.append(BenchRow(kernel: "tensor-core peak \(api) (\(source))",
                                     shape: "\(groups)x\(subgroups) subgroups x\(iterations)", device: Bench.label(device), ms: ms,
                                     flops: Double(groups * subgroups * accumulators) * Double(iterations) * 8192,
                                     memoryBytes: device.memoryStatistics.used))
            }
        }
        for (m, n, k) in shapes {
            let flops = 2 * Double(m) * Double(n) * Double(k)
            for dtype in [DType.f32, .f16] {
                // x [M, K] · Wᵀ with W [N, K]: the Linear layout.
                let x = try device.tensor(Bench.random(m * k, seed: 1), shape: [m, k], dtype: dtype)
                let w = try device.tensor(Bench.random(n * k, seed: 2), shape: [n, k], dtype: dtype)
                let out = try device.empty([m, n], dtype: dtype)
                let tensorCores = device.gemmUsesTensorCores(a: dtype, b: dtype)
                let ms = try Bench.time(device, repeats: repeats) { try $0.gemm(x, w, out: out, transposeB: true) }
                rows.append(BenchRow(kernel: "gemm \(dtype) x·Wᵀ\(tensorCores ? " coopmat" : "")", shape: "\(m)x\(n)x\(k)",
                                     device: Bench.label(device), ms: ms,
                                     flops: flops, bytes: Double((m * k + n * k + m * n) * dtype.size),
                                     memoryBytes: device.memoryStatistics.used))
                if dtype == .f32 && (m, n, k) == shapes[shapes.count - 1] {
                    // The FFN up projection as the model runs it: bias and GELU (tanh) fused.
                    let bias = try device.tensor(Bench.random(n, seed: 3), shape: [n], dtype: dtype)
                    let ms = try Bench.time(device, repeats: repeats) {
                        try $0.gemm(x, w, out: out, transposeB: true, bias: bias, activation: .geluTanh)
                    }
                    rows.append(BenchRow(kernel: "gemm \(dtype) x·Wᵀ+b gelu", shape: "\(m)x\(n)x\(k)", device: Bench.label(device),
                                         ms: ms, flops: flops, bytes: Double((m * k + n * k + m * n) * dtype.size),
                                         memoryBytes: device.memoryStatistics.used))
                }
                if dtype == .f16 && tensorCores && device.coopmatAPIs.count > 1 {
                    // The same GEMM on the other cooperative-matrix API (VK_KHR_cooperative_matrix).
                    setenv("WAN_COOPMAT_API", "khr", 1)
                    defer { unsetenv("WAN_COOPMAT_API") }
                    let ms = try Bench.time(device, repeats: repeats) { try $0.gemm(x, w, out: out, transposeB: true) }
                    rows.append(BenchRow(kernel: "gemm f16 x·Wᵀ coopmat khr", shape: "\(m)x\(n)x\(k)", device: Bench.label(device), ms: ms,
                                         flops: flops, bytes: Double((m * k + n * k + m * n) * dtype.size),
                                         memoryBytes: device.memoryStatistics.used))
                }
                if dtype == .f16 && tensorCores && device.supportsCoopmat2GEMM {
                    // The workgroup-scope kernel (VK_NV_cooperative_matrix2, WAN_GEMM_CM2_TILE): f16, the DiT's fp16
                    // compute (f32 activations) and FP8 weights.
                    setenv("WAN_GEMM_CM2", "1", 1)
                    defer { unsetenv("WAN_GEMM_CM2") }
                    let ms = try Bench.time(device, repeats: repeats) { try $0.gemm(x, w, out: out, transposeB: true) }
                    rows.append(BenchRow(kernel: "gemm f16 x·Wᵀ coopmat2", shape: "\(m)x\(n)x\(k)", device: Bench.label(device), ms: ms,
                                         flops: flops, bytes: Double((m * k + n * k + m * n) * dtype.size),
                                         memoryBytes: device.memoryStatistics.used))
                    let x32 = try device.tensor(Bench.random(m * k, seed: 1), shape: [m, k])
                    let out32 = try device.empty([m, n])
                    let ms32 = try Bench.time(device, repeats: repeats) { try $0.gemm(x32, w, out: out32, transposeB: true, fp16Compute: true) }
                    rows.append(BenchRow(kernel: "gemm f32·f16ᵀ->f32 coopmat2 (fp16 compute)", shape: "\(m)x\(n)x\(k)", device: Bench.label(device),
                                         ms: ms32, flops: flops, bytes: Double((m * k + m * n) * 4 + n * k * 2),
                                         memoryBytes: device.memoryStatistics.used))
                    let codes = Bench.random(n * k, seed: 4).map { ScalarConversion.floatToF8E4M3($0 * 400) }
                    let w8 = try device.tensor(bytes: codes, shape: [n, k], dtype: .f8e4m3fn)
                    let scale = try device.tensor([Float](repeating: 0.0025, count: n), shape: [n])
                    let ms8 = try Bench.time(device, repeats: repeats) { try $0.gemm(x, w8, out: out, transposeB: true, weightScale: scale) }
                    rows.append(BenchRow(kernel: "gemm f16 x·W8ᵀ (fp8 e4m3) coopmat2", shape: "\(m)x\(n)x\(k)", device: Bench.label(device), ms: ms8,
                                         flops: flops, bytes: Double((m * k + m * n) * dtype.size + n * k),
                                         memoryBytes: device.memoryStatistics.used))
                }
                if dtype == .f16 && tensorCores {
                    // The tiled (CUDA-core) kernel on the same operands, for comparison.
                    setenv("WAN_GEMM_COOPMAT", "0", 1)
                    defer { unsetenv("WAN_GEMM_COOPMAT") }
                    let ms = try Bench.time(device, repeats: repeats) { try $0.gemm(x, w, out: out, transposeB: true) }
                    rows.append(BenchRow(kernel: "gemm f16 x·Wᵀ tiled", shape: "\(m)x\(n)x\(k)", device: Bench.label(device), ms: ms,
                                         flops: flops, bytes: Double((m * k + n * k + m * n) * dtype.size),
                                         memoryBytes: device.memoryStatistics.used))
                }
                if dtype == .f16 && tensorCores && (m, n, k) == shapes[0] {
                    // bf16 operands on the tiled kernel (f16 operands there run far below f32: is it all 16-bit loads?).
                    setenv("WAN_GEMM_COOPMAT", "0", 1)
                    defer { unsetenv("WAN_GEMM_COOPMAT") }
                    let xb = try device.tensor(Bench.random(m * k, seed: 1), shape: [m, k], dtype: .bf16)
                    let wb = try device.tensor(Bench.random(n * k, seed: 2), shape: [n, k], dtype: .bf16)
                    let ob = try device.empty([m, n], dtype: .bf16)
                    let ms = try Bench.time(device, repeats: repeats) { try $0.gemm(xb, wb, out: ob, transposeB: true) }
                    rows.append(BenchRow(kernel: "gemm bf16 x·Wᵀ tiled", shape: "\(m)x\(n)x\(k)", device: Bench.label(device), ms: ms,
                                         flops: flops, bytes: Double((m * k + n * k + m * n) * 2),
                                         memoryBytes: device.memoryStatistics.used))
                    let o32 = try device.empty([m, n])
                    let ms32 = try Bench.time(device, repeats: repeats) { try $0.gemm(x, w, out: o32, transposeB: true) }
                    rows.append(BenchRow(kernel: "gemm f16 x·Wᵀ->f32 tiled", shape: "\(m)x\(n)x\(k)", device: Bench.label(device), ms: ms32,
                                         flops: flops, bytes: Double((m * k + n * k) * 2 + m * n * 4),
                                         memoryBytes: device.memoryStatistics.used))
                }
                if dtype == .f16 && device.gemmUsesTensorCores(a: .f32, b: .f16, fp16Compute: true) {
                    // The DiT's fp16 mode: f32 activations rounded to fp16 while staged, fp16 weights.
                    let x32 = try device.tensor(Bench.random(m * k, seed: 1), shape: [m, k])
                    let out32 = try device.empty([m, n])
                    let ms = try Bench.time(device, repeats: repeats) { try $0.gemm(x32, w, out: out32, transposeB: true, fp16Compute: true) }
                    rows.append(BenchRow(kernel: "gemm f32·f16ᵀ->f32 coopmat (fp16 compute)", shape: "\(m)x\(n)x\(k)", device: Bench.label(device),
                                         ms: ms, flops: flops, bytes: Double((m * k + m * n) * 4 + n * k * 2),
                                         memoryBytes: device.memoryStatistics.used))
                }
                if dtype == .f16 {
                    // FP8 weights (e4m3fn, per-channel scale), decoded while tiles are staged: against the f16 row.
                    let codes = Bench.random(n * k, seed: 4).map { ScalarConversion.floatToF8E4M3($0 * 400) }
                    let w8 = try device.tensor(bytes: codes, shape: [n, k], dtype: .f8e4m3fn)
                    let scale = try device.tensor([Float](repeating: 0.0025, count: n), shape: [n])
                    let ms = try Bench.time(device, repeats: repeats) { try $0.gemm(x, w8, out: out, transposeB: true, weightScale: scale) }
                    rows.append(BenchRow(kernel: "gemm f16 x·W8ᵀ (fp8 e4m3)\(device.gemmUsesTensorCores(a: .f16, b: .f8e4m3fn) ? " coopmat" : "")", shape: "\(m)x\(n)x\(k)", device: Bench.label(device), ms: ms,
                                         flops: flops, bytes: Double((m * k + m * n) * dtype.size + n * k),
                                         memoryBytes: device.memoryStatistics.used))
                }
                if dtype == .f32 && (m, n, k) == shapes[0] {
                    // x · W with W [K, N] (no transposition) for comparison.
                    let wn = try device.tensor(Bench.random(n * k, seed: 2), shape: [k, n], dtype: dtype)
                    let ms = try Bench.time(device, repeats: repeats) { try $0.gemm(x, wn, out: out) }
                    rows.append(BenchRow(kernel: "gemm \(dtype) x·W", shape: "\(m)x\(n)x\(k)", device: Bench.label(device), ms: ms,
                                         flops: flops, bytes: Double((m * k + n * k + m * n) * dtype.size),
                                         memoryBytes: device.memoryStatistics.used))
                }
            }
        }
    }
    return rows
}
