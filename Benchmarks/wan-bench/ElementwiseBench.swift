import WanRuntime

/// Elementwise kernels at Wan 1.3B/14B-like shapes (memory-bound; GB/s counts bytes read + written):
/// GELU (tanh) on the FFN hidden state, SiLU, a broadcast bias add `[L, C] + [C]`, a same-shape mul,
/// and the 3D RoPE on q `[1, L, 12, 128]`.
let elementwiseSuite = BenchSuite(name: "elementwise") { ctx in
    // Full: L = 21·30·52 = 32760 tokens (81 frames at 480×832), C = 1536, FFN 8960.
    let grid = ctx.fullSize ? (f: 21, h: 30, w: 52) : (f: 4, h: 6, w: 10)
    let tokens = grid.f * grid.h * grid.w
    let (dim, ffn, heads) = ctx.fullSize ? (1536, 8960, 12) : (256, 640, 4)
    var rows: [BenchRow] = []
    for device in ctx.devices {
        func row(_ kernel: String, _ shape: [Int], bytes: Int, _ record: (CommandList) throws -> Void) throws {
            let ms = try Bench.time(device, repeats: ctx.repeats, record)
            rows.append(BenchRow(kernel: kernel, shape: shape.map(String.init).joined(separator: "x"), device: Bench.label(device),
                                 ms: ms, bytes: Double(bytes), memoryBytes: device.memoryStatistics.used))
        }
        do {
            let n = tokens * ffn
            let x = try device.tensor(Bench.random(n), shape: [tokens, ffn], dtype: .bf16)
            let y = try device.empty([tokens, ffn], dtype: .bf16)
            try row("unary gelu_tanh bf16", [tokens, ffn], bytes: 4 * n) { try $0.unary(.geluTanh, x, out: y) }
        }
        do {
            let n = tokens * dim
            let x = try device.tensor(Bench.random(n, seed: 2), shape: [tokens, dim], dtype: .bf16)
            let y = try device.empty([tokens, dim], dtype: .bf16)
            try row("unary silu bf16", [tokens, dim], bytes: 4 * n) { try $0.unary(.silu, x, out: y) }
            let a = try device.tensor(Bench.random(n, seed: 3), shape: [tokens, dim], dtype: .f32)
            let bias = try device.tensor(Bench.random(dim, seed: 4), shape: [dim], dtype: .f32)
            let z = try device.empty([tokens, dim], dtype: .f32)
            try row("binary add [L,C]+[C] f32", [tokens, dim], bytes: 8 * n + 4 * dim) { try $0.binary(.add, a, bias, out: z) }
            try row("binary mul bf16*f32->f32", [tokens, dim], bytes: 10 * n) { try $0.binary(.mul, x, a, out: z) }
        }
        do {
            let shape = [1, tokens, heads, 128]
            let n = Shape.count(shape)
            let table = try RoPETable.wan3D(device: device, headDim: 128, frames: grid.f, height: grid.h, width: grid.w)
            let q = try device.tensor(Bench.random(n, seed: 5), shape: shape, dtype: .bf16)
            let out = try device.empty(shape, dtype: .bf16)
            try row("rope bf16", shape, bytes: 4 * n + table.table.byteCount) { try $0.rope(q, table: table, out: out) }
        }
    }
    return rows
}
