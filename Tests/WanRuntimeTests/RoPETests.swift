import Foundation
import Testing
@testable import WanRuntime

/// Float64 reference of Wan's 3D RoPE (spec §3.9) on dense logical values of x `[B, Lx, H, D]`,
/// written independently of `RoPETable`: tokens beyond F·Hg·Wg are returned unchanged.
private func ropeReference(_ x: [Float], batch: Int, seq: Int, heads: Int, dim: Int,
                           grid: (f: Int, h: Int, w: Int)) -> [Double] {
    let c = dim / 2
    let cf = c - 2 * (c / 3), ch = c / 3
    let length = grid.f * grid.h * grid.w
    var out = x.map(Double.init)
    for b in 0..<batch {
        for l in 0..<min(seq, length) {
            let f = l / (grid.h * grid.w), hh = (l / grid.w) % grid.h, w = l % grid.w
            for h in 0..<heads {
                for p in 0..<c {
                    let theta: Double
                    if p < cf {
                        theta = Double(f) * Foundation.pow(10000.0, -Double(2 * p) / Double(2 * cf))
                    } else if p < cf + ch {
                        theta = Double(hh) * Foundation.pow(10000.0, -Double(2 * (p - cf)) / Double(2 * ch))
                    } else {
                        theta = Double(w) * Foundation.pow(10000.0, -Double(2 * (p - cf - ch)) / Double(2 * ch))
                    }
                    let i = ((b * seq + l) * heads + h) * dim + 2 * p
                    let x0 = Double(x[i]), x1 = Double(x[i + 1])
                    out[i] = x0 * Foundation.cos(theta) - x1 * Foundation.sin(theta)
                    out[i + 1] = x0 * Foundation.sin(theta) + x1 * Foundation.cos(theta)
                }
            }
        }
    }
    return out
}

private func maxAbsDiff(_ a: [Float], _ b: [Double]) -> Double {
    zip(a, b).reduce(0) { Swift.max($0, Swift.abs(Double($1.0) - $1.1)) }
}

@Suite struct RoPETests {
    /// The pair split and the first frequencies match the spec's listed values (head_dim 128), and
    /// the small test-config head dims split as the official formula does.
    @Test func splitAndFrequencies() {
        #expect(RoPETable.pairSplit(headDim: 128) == (22, 21, 21))
        #expect(RoPETable.pairSplit(headDim: 16) == (4, 2, 2))
        #expect(RoPETable.pairSplit(headDim: 12) == (2, 2, 2))
        #expect(RoPETable.pairSplit(headDim: 8) == (2, 1, 1))
        let f = RoPETable.frequencies(headDim: 128)
        #expect(f.frame.count == 22 && f.height.count == 21 && f.width.count == 21)
        for (got, want) in zip(f.frame.prefix(3), [1, 0.65793322, 0.43287613]) { #expect(Swift.abs(got - want) < 1e-8, "frame \(got) vs \(want)") }
        for (got, want) in zip(f.height.prefix(3), [1, 0.64494668, 0.41595622]) { #expect(Swift.abs(got - want) < 1e-8, "height \(got) vs \(want)") }
        #expect(f.height == f.width)
        #expect(Swift.abs(f.frame.last! / 1.5199e-4 - 1) < 1e-4, "last frame frequency \(f.frame.last!)")
        #expect(Swift.abs(f.height.last! / 1.5505e-4 - 1) < 1e-4, "last height frequency \(f.height.last!)")
    }

    /// The table holds (cos, sin) of the grid angles; position (0, 0, 0) is the identity rotation.
    @Test func tableContents() throws {
        let t = try RoPETable.wan3D(device: TestDevices.cpu, headDim: 128, frames: 3, height: 4, width: 5)
        #expect(t.length == 60 && t.table.shape == [60, 64, 2] && t.table.dtype == .f32)
        let v = try TestDevices.cpu.read(t.table)
        #expect((0..<64).allSatisfy { v[2 * $0] == 1 && v[2 * $0 + 1] == 0 }, "token 0 is not the identity")
        let f = RoPETable.frequencies(headDim: 128)
        // Token (f=2, h=3, w=4) = index (2*4 + 3)*5 + 4 = 59: pair 1 (frame), 22 + 1 (height), 43 + 1 (width).
        let row = 59 * 128
        for (pair, theta) in [(1, 2 * f.frame[1]), (23, 3 * f.height[1]), (44, 4 * f.width[1]), (21, 2 * f.frame[21]), (63, 4 * f.width[20])] {
            #expect(v[row + 2 * pair] == Float(Foundation.cos(theta)) && v[row + 2 * pair + 1] == Float(Foundation.sin(theta)), "pair \(pair)")
        }
    }

    /// CPU and Vulkan against the float64 reference: several head dims, non-square grids, batch 2,
    /// padding tokens (copied unchanged, bit for bit), every dtype pair.
    @Test func ropeMatchesReference() throws {
        let configs: [(dim: Int, heads: Int, grid: (f: Int, h: Int, w: Int), pad: Int)] = [
            (8, 3, (2, 3, 5), 3), (12, 2, (3, 2, 7), 0), (16, 3, (1, 5, 3), 4), (128, 2, (3, 4, 5), 3),
        ]
        let dtypes: [DType] = [.f32, .f16, .bf16]
        var rng = TestRandom(seed: 17)
        for device in try TestDevices.all() {
            for (ci, cfg) in configs.enumerated() {
                let pairsOfTypes: [(DType, DType)] = ci == 3 ? dtypes.flatMap { a in dtypes.map { (a, $0) } } : [(.f32, .f32), (.bf16, .bf16)]
                let table = try RoPETable.wan3D(device: device, headDim: cfg.dim, frames: cfg.grid.f, height: cfg.grid.h, width: cfg.grid.w)
                let batch = 2, seq = table.length + cfg.pad
                let shape = [batch, seq, cfg.heads, cfg.dim]
                for (ti, to) in pairsOfTypes {
                    let xv = quantized(rng.floats(Shape.count(shape), -2, 2), ti)
                    let x = try device.tensor(xv, shape: shape, dtype: ti)
                    let y = try device.empty(shape, dtype: to)
                    let cl = try CommandList(device: device)
                    try cl.rope(x, table: table, out: y)
                    try cl.run()
                    let got = try device.read(y)
                    let want = ropeReference(xv, batch: batch, seq: seq, heads: cfg.heads, dim: cfg.dim, grid: cfg.grid)
                    let wq = quantized(want.map { Float($0) }, to)
                    let err = maxAbsDiff(got, want)
                    let tol = to == .f32 ? 2e-6 : (to == .f16 ? 2e-3 : 1.6e-2)  // half an ulp of |values| < 2·√2
                    #expect(err < tol, "\(device.name) d\(cfg.dim) \(ti)->\(to): max error \(err)")
                    // Output rounding of the reference agrees almost everywhere.
                    let mismatches = zip(got, wq).filter { $0.0 != $0.1 }.count
                    #expect(to == .f32 || mismatches * 50 < got.count, "\(device.name) \(ti)->\(to): \(mismatches) roundings differ")
                    // Padding tokens are untouched, and token 0 of every batch is the identity.
                    let tokenSize = cfg.heads * cfg.dim
                    for b in 0..<batch {
                        for l in [0] + Array(table.length..<seq) {
                            let o = (b * seq + l) * tokenSize
                            let same = (0..<tokenSize).allSatisfy { got[o + $0] == quantized([xv[o + $0]], to)[0] }
                            #expect(same, "\(device.name) d\(cfg.dim) \(ti)->\(to): token \(l) of batch \(b) changed")
                        }
                    }
                }
            }
        }
        TestDevices.checkValidation()
    }

    /// Strided inputs (k sliced from a fused qkv tensor; a head-major tensor permuted) and in-place use.
    @Test func ropeStridedAndInPlace() throws {
        let dim = 16, heads = 3, batch = 2
        var rng = TestRandom(seed: 23)
        for device in try TestDevices.all() {
            let table = try RoPETable.wan3D(device: device, headDim: dim, frames: 2, height: 3, width: 4)
            let seq = table.length + 2
            let shape = [batch, seq, heads, dim]
            // qkv [B, L, 3, H, D]: k = index 1 of axis 2.
            let qkvShape = [batch, seq, 3, heads, dim]
            let qkvv = rng.floats(Shape.count(qkvShape), -2, 2)
            let qkv = try device.tensor(qkvv, shape: qkvShape)
            let k = Tensor(storage: qkv.storage, dtype: .f32, shape: shape,
                           strides: [seq * 3 * heads * dim, 3 * heads * dim, dim, 1], offset: heads * dim)
            var kv = [Float]()
            for b in 0..<batch { for l in 0..<seq { let o = ((b * seq + l) * 3 + 1) * heads * dim; kv += qkvv[o..<(o + heads * dim)] } }
            // Head-major [B, H, L, D] viewed as [B, L, H, D].
            let hm = rng.floats(batch * heads * seq * dim, -2, 2)
            let hmT = try device.tensor(hm, shape: [batch, heads, seq, dim]).permuted([0, 2, 1, 3])
            var hmv = [Float](repeating: 0, count: hm.count)
            for b in 0..<batch { for h in 0..<heads { for l in 0..<seq { for d in 0..<dim {
                hmv[((b * seq + l) * heads + h) * dim + d] = hm[((b * heads + h) * seq + l) * dim + d]
            } } } }
            for (what, view, values) in [("qkv slice", k, kv), ("permuted", hmT, hmv)] {
                let y = try device.empty(shape)
                let cl = try CommandList(device: device)
                try cl.rope(view, table: table, out: y)
                try cl.run()
                let want = ropeReference(values, batch: batch, seq: seq, heads: heads, dim: dim, grid: (2, 3, 4))
                let err = maxAbsDiff(try device.read(y), want)
                #expect(err < 2e-6, "\(device.name) \(what): max error \(err)")
            }
            // In place, bf16.
            let xv = quantized(rng.floats(Shape.count(shape), -2, 2), .bf16)
            let x = try device.tensor(xv, shape: shape, dtype: .bf16)
            let cl = try CommandList(device: device)
            try cl.rope(x, table: table, out: x)
            try cl.run()
            let err = maxAbsDiff(try device.read(x), ropeReference(xv, batch: batch, seq: seq, heads: heads, dim: dim, grid: (2, 3, 4)))
            #expect(err < 1.6e-2, "\(device.name) in place: max error \(err)")
        }
        TestDevices.checkValidation()
    }

    /// Bad shapes, dtypes, tables and devices are refused.
    @Test func ropeErrors() throws {
        #expect(throws: RuntimeError.self) { try RoPETable.wan3D(device: TestDevices.cpu, headDim: 15, frames: 1, height: 1, width: 1) }
        #expect(throws: RuntimeError.self) { try RoPETable.wan3D(device: TestDevices.cpu, headDim: 16, frames: 0, height: 1, width: 1) }
        for device in try TestDevices.all() {
            let table = try RoPETable.wan3D(device: device, headDim: 16, frames: 2, height: 2, width: 2)
            let cl = try CommandList(device: device)
            let x = try device.zeros([1, 8, 2, 16])
            #expect(throws: RuntimeError.self) { try cl.rope(try device.zeros([1, 8, 2, 8]), table: table, out: try device.empty([1, 8, 2, 8])) }
            #expect(throws: RuntimeError.self) { try cl.rope(try device.zeros([1, 7, 2, 16]), table: table, out: try device.empty([1, 7, 2, 16])) }
            #expect(throws: RuntimeError.self) { try cl.rope(try device.zeros([8, 2, 16]), table: table, out: try device.empty([8, 2, 16])) }
            #expect(throws: RuntimeError.self) { try cl.rope(x, table: table, out: try device.empty([1, 9, 2, 16])) }
            #expect(throws: RuntimeError.self) { try cl.rope(x, table: table, out: try device.empty([1, 8, 2, 16], dtype: .i32)) }
            #expect(throws: RuntimeError.self) { try cl.rope(try device.zeros([1, 8, 2, 16], dtype: .f8e5m2), table: table, out: try device.empty([1, 8, 2, 16])) }
            #expect(throws: RuntimeError.self) { try cl.rope(x, table: table, out: try device.empty([1, 8, 16, 2]).permuted([0, 1, 3, 2])) }
        }
        if let v = try TestDevices.vulkan() {
            let cpuTable = try RoPETable.wan3D(device: TestDevices.cpu, headDim: 16, frames: 2, height: 2, width: 2)
            let cl = try CommandList(device: v)
            #expect(throws: RuntimeError.self) { try cl.rope(try v.zeros([1, 8, 2, 16]), table: cpuTable, out: try v.empty([1, 8, 2, 16])) }
        }
        TestDevices.checkValidation()
    }
}
