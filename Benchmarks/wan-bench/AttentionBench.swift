import Foundation
import WanRuntime

/// Attention (softmax(q·kᵀ/√d)·v, fp32 statistics) at Wan's shapes: self-attention of the 1.3B model
/// (12 heads, 32760 tokens of 81 frames at 480×832) and of 14B (40 heads, 75600 tokens at 720×1280),
/// cross-attention over the 512 text tokens and I2V's 257 image tokens. Inputs in bf16 as the model
/// runs them. FLOPs = 4·B·H·Lq·Lk·D. On the CPU (OpenBLAS) the full-size rows time 4096 queries against
/// every key and scale the time to all queries (exact: work per query is constant); 14B self-attention
/// is left out there. Where the device and the build have them, rows for the coopmat2 kernel, the register softmax,
/// the KHR API and the scalar kernel follow the default's.
let attentionSuite = BenchSuite(name: "attention") { ctx in
    struct Shape {
        var name: String
        var heads, lq, lk, d: Int
        /// Skipped on the CPU (minutes per run).
        var gpuOnly = false
    }
    let shapes: [Shape] = ctx.fullSize
        ? [Shape(name: "self 1.3B", heads: 12, lq: 32760, lk: 32760, d: 128),
           Shape(name: "self 14B", heads: 40, lq: 75600, lk: 75600, d: 128, gpuOnly: true),
           Shape(name: "cross text", heads: 12, lq: 32760, lk: 512, d: 128),
           Shape(name: "cross image", heads: 12, lq: 32760, lk: 257, d: 128)]
        : [Shape(name: "self", heads: 2, lq: 512, lk: 512, d: 64),
           Shape(name: "self 1.3B 2x30x52", heads: 12, lq: 780, lk: 780, d: 128),
           Shape(name: "cross 1.3B 2x30x52", heads: 12, lq: 780, lk: 512, d: 128),
           Shape(name: "cross text", heads: 2, lq: 512, lk: 77, d: 64),
           Shape(name: "self d128", heads: 1, lq: 256, lk: 256, d: 128)]
    let dtypes: [DType] = ctx.fullSize ? [.bf16, .f16] : [.f32, .f16]
    var rows: [BenchRow] = []
    for device in ctx.devices {
        for s in shapes {
            if device.isCPU && s.gpuOnly { continue }
            // The CPU attends at most 4096 queries at full size (seconds per run otherwise).
            let lq = device.isCPU && ctx.fullSize ? min(s.lq, 4096) : s.lq
            // 14B self-attention is ~117 TFLOP a run: one timed run of one dtype.
            let huge = s.lq * s.lk >= 1 << 32
            let repeats = huge ? 1 : device.isCPU && ctx.fullSize ? min(ctx.repeats, 2) : ctx.repeats
            for dtype in huge ? [dtypes[0]] : dtypes {
                let q = try device.tensor(Bench.random(lq * s.heads * s.d, seed: 1), shape: [1, lq, s.heads, s.d], dtype: dtype)
                let k = try device.tensor(Bench.random(s.lk * s.heads * s.d, seed: 2), shape: [1, s.lk, s.heads, s.d], dtype: dtype)
                let v = try device.tensor(Bench.random(s.lk * s.heads * s.d, seed: 3), shape: [1, s.lk, s.heads, s.d], dtype: dtype)
                let out = try device.empty([1, lq, s.heads, s.d], dtype: dtype)
                // Time per query row is constant, so a capped run scales exactly to the full query count.
                let ms = try Bench.time(device, repeats: repeats) { try $0.attention(q: q, k: k, v: v, out: out) }
                    * Double(s.lq) / Double(lq)
                let elements = Double((2 * s.lq + 2 * s.lk) * s.heads * s.d)
                let flops = 4 * Double(s.heads) * Double(s.lq) * Double(s.lk) * Double(s.d)
                let coopmat = device.attentionUsesTensorCores(headDim: s.d, inputs: [dtype, dtype, dtype])
                rows.append(BenchRow(kernel: "attention \(s.name) \(dtype)\(coopmat ? " coopmat" : "")",
                                     shape: "h\(s.heads) \(s.lq)x\(s.lk) d\(s.d)",
                                     device: Bench.label(device), ms: ms, flops: flops,
                                     bytes: elements * Double(dtype.size), memoryBytes: device.memoryStatistics.used,
                                     note: lq < s.lq ? "scaled from \(lq) queries" : ""))
                if coopmat && dtype == dtypes[0] && device.supportsCoopmat2Attention(headDim: s.d) {
                    // The workgroup-scope kernel (VK_NV_cooperative_matrix2, WAN_ATTN_CM2_TILE) into an f16 output
                    // (its tensor stores take f32 and f16); 14B's self-attention included.
                    setenv("WAN_ATTN_CM2", "1", 1)
                    defer { unsetenv("WAN_ATTN_CM2") }
                    let out16 = try device.empty([1, lq, s.heads, s.d], dtype: .f16)
                    let ms = try Bench.time(device, repeats: repeats) { try $0.attention(q: q, k: k, v: v, out: out16) }
                        * Double(s.lq) / Double(lq)
                    rows.append(BenchRow(kernel: "attention \(s.name) \(dtype)->f16 coopmat2", shape: "h\(s.heads) \(s.lq)x\(s.lk) d\(s.d)",
                                         device: Bench.label(device), ms: ms, flops: flops,
                                         bytes: elements * Double(dtype.size), memoryBytes: device.memoryStatistics.used))
                }
                if coopmat && device.supportsRegisterSoftmaxAttention && !huge && dtype == dtypes[0] {
                    // The softmax in registers (attention_coopmat_rs): K and V staged together, half the barriers.
                    setenv("WAN_ATTN_COOPMAT_SOFTMAX", "registers", 1)
                    defer { unsetenv("WAN_ATTN_COOPMAT_SOFTMAX") }
                    let ms = try Bench.time(device, repeats: repeats) { try $0.attention(q: q, k: k, v: v, out: out) }
                    rows.append(BenchRow(kernel: "attention \(s.name) \(dtype) coopmat registers", shape: "h\(s.heads) \(s.lq)x\(s.lk) d\(s.d)",
                                         device: Bench.label(device), ms: ms, flops: flops,
                                         bytes: elements * Double(dtype.size), memoryBytes: device.memoryStatistics.used))
                }
                if coopmat && !huge && dtype == dtypes[0] && device.coopmatAPIs.count > 1 {
                    // The tensor-core kernel on the other cooperative-matrix API (VK_KHR_cooperative_matrix).
                    setenv("WAN_COOPMAT_API", "khr", 1)
                    defer { unsetenv("WAN_COOPMAT_API") }
                    let ms = try Bench.time(device, repeats: repeats) { try $0.attention(q: q, k: k, v: v, out: out) }
                    rows.append(BenchRow(kernel: "attention \(s.name) \(dtype) coopmat khr", shape: "h\(s.heads) \(s.lq)x\(s.lk) d\(s.d)",
                                         device: Bench.label(device), ms: ms, flops: flops,
                                         bytes: elements * Double(dtype.size), memoryBytes: device.memoryStatistics.used))
                }
                if coopmat && !huge && dtype == dtypes[0] {
                    // The scalar (CUDA-core) kernel on the same inputs, for comparison.
                    setenv("WAN_ATTN_COOPMAT", "0", 1)
                    defer { unsetenv("WAN_ATTN_COOPMAT") }
                    let ms = try Bench.time(device, repeats: repeats) { try $0.attention(q: q, k: k, v: v, out: out) }
                    rows.append(BenchRow(kernel: "attention \(s.name) \(dtype) scalar", shape: "h\(s.heads) \(s.lq)x\(s.lk) d\(s.d)",
                                         device: Bench.label(device), ms: ms, flops: flops,
                                         bytes: elements * Double(dtype.size), memoryBytes: device.memoryStatistics.used))
                }
            }
        }
    }
    return rows
}
