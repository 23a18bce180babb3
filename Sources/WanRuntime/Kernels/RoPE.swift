import Foundation
import WanShaders

/// The cos/sin table of Wan's 3D rotary position embedding (spec §3.9) for one latent token grid,
/// resident on a device: `table` is f32 `[length, headDim/2, 2]` holding (cos θ, sin θ) of every
/// token l = (f·height + h)·width + w and channel pair, computed in float64 and rounded to f32.
public struct RoPETable: Sendable {
    /// Channels per attention head (even).
    public let headDim: Int
    /// Grid size along the frame axis (F').
    public let frames: Int
    /// Grid size along the height axis (H').
    public let height: Int
    /// Grid size along the width axis (W').
    public let width: Int
    /// The f32 `[length, headDim/2, 2]` table of (cos, sin).
    public let table: Tensor

    /// Tokens covered by the table (F'·H'·W'); later tokens are sequence padding.
    public var length: Int { frames * height * width }

    /// Channel pairs per axis: c_f = c − 2⌊c/3⌋, c_h = c_w = ⌊c/3⌋ with c = headDim/2 (22/21/21 for 128).
    public static func pairSplit(headDim: Int) -> (frame: Int, height: Int, width: Int) {
        let c = headDim / 2
        return (c - 2 * (c / 3), c / 3, c / 3)
    }

    /// Per-axis frequencies ω_j = 1 / 10000^(2j/D) in float64, D = 2·(pairs of the axis).
    public static func frequencies(headDim: Int) -> (frame: [Double], height: [Double], width: [Double]) {
        func axis(_ pairs: Int) -> [Double] {
            (0..<pairs).map { 1.0 / Foundation.pow(10000.0, Double(2 * $0) / Double(2 * pairs)) }
        }
        let s = pairSplit(headDim: headDim)
        return (axis(s.frame), axis(s.height), axis(s.width))
    }

    /// Builds the table for a `frames × height × width` token grid on `device`.
    public static func wan3D(device: Device, headDim: Int, frames: Int, height: Int, width: Int) throws -> RoPETable {
        guard headDim > 0, headDim % 2 == 0 else {
            throw RuntimeError.invalidArgument("RoPE: head_dim must be positive and even, got \(headDim)")
        }
        guard frames > 0, height > 0, width > 0 else {
            throw RuntimeError.invalidArgument("RoPE: empty grid \(frames)x\(height)x\(width)")
        }
        let pairs = headDim / 2
        let length = frames * height * width
        guard length * pairs < Int(UInt32.max) / 2 else {
            throw RuntimeError.invalidArgument("RoPE: table of \(length) tokens x \(pairs) pairs is too large")
        }
        let freqs = frequencies(headDim: headDim)
        // (cos, sin) per position and pair of each axis, float64 angles rounded once to f32.
        func axisTable(_ positions: Int, _ omega: [Double]) -> [Float] {
            var t = [Float](repeating: 0, count: positions * omega.count * 2)
            for pos in 0..<positions {
                for (j, w) in omega.enumerated() {
                    let theta = Double(pos) * w
                    t[2 * (pos * omega.count + j)] = Float(Foundation.cos(theta))
                    t[2 * (pos * omega.count + j) + 1] = Float(Foundation.sin(theta))
                }
            }
            return t
        }
        let tf = axisTable(frames, freqs.frame), th = axisTable(height, freqs.height), tw = axisTable(width, freqs.width)
        let (cf, ch, cw) = (freqs.frame.count, freqs.height.count, freqs.width.count)
        var values = [Float](repeating: 0, count: length * pairs * 2)
        values.withUnsafeMutableBufferPointer { v in
            for f in 0..<frames {
                for h in 0..<height {
                    for w in 0..<width {
                        var o = ((f * height + h) * width + w) * pairs * 2
                        for k in 0..<(2 * cf) { v[o + k] = tf[2 * f * cf + k] }
                        o += 2 * cf
                        for k in 0..<(2 * ch) { v[o + k] = th[2 * h * ch + k] }
                        o += 2 * ch
                        for k in 0..<(2 * cw) { v[o + k] = tw[2 * w * cw + k] }
                    }
                }
            }
        }
        let table = try device.tensor(values, shape: [length, pairs, 2], dtype: .f32)
        return RoPETable(headDim: headDim, frames: frames, height: height, width: width, table: table)
    }
}

extension CommandList {
    /// Rotates interleaved channel pairs (2p, 2p+1) of every head of `x` `[B, L, heads, headDim]` by
    /// the angles of `table` (Wan 3D RoPE, spec §3.9), in fp32 math: tokens `l < table.length` are
    /// rotated, later ones (sequence padding) are copied unchanged. `x` (f32/f16/bf16) may be a strided
    /// view (e.g. q sliced from a fused qkv projection); `out` (f32/f16/bf16, dense, same shape) may
    /// alias a dense `x` exactly (in place).
    public func rope(_ x: Tensor, table: RoPETable, out: Tensor) throws {
        let name = "rope"
        try checkDevice([x, out, table.table], op: name)
        for t in [x, out] where !t.dtype.isComputeFloat {
            throw RuntimeError.unsupportedDType("\(name): \(t.dtype) (expected f32, f16 or bf16)")
        }
        guard x.rank == 4, x.shape[3] == table.headDim else {
            throw RuntimeError.shapeMismatch("\(name): x must be [B, L, heads, \(table.headDim)], got \(x.shape)")
        }
        guard x.shape[1] >= table.length else {
            throw RuntimeError.shapeMismatch("\(name): x has \(x.shape[1]) tokens, fewer than the table's \(table.length)")
        }
        guard out.shape == x.shape else {
            throw RuntimeError.shapeMismatch("\(name): out \(out.shape) differs from x \(x.shape)")
        }
        try checkOutput(out, notAliasing: [x], op: name)
        guard x.strides.allSatisfy({ $0 >= 0 }) else { throw RuntimeError.invalidArgument("\(name): negative strides \(x.strides)") }
        let span = zip(x.shape, x.strides).reduce(0) { $0 + max(0, $1.0 - 1) * $1.1 }
        guard x.count < Int(UInt32.max), span < Int(UInt32.max) else {
            throw RuntimeError.invalidArgument("\(name): \(x.shape) exceeds 32-bit indexing")
        }
        if x.count == 0 { return }
        let (batch, seq, heads, dim) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let pairs = dim / 2, tableLength = table.length
        let label = "rope \(x.dtype)->\(out.dtype) \(x.shape)"
        switch impl {
        case let .cpu(r):
            let tab = table.table
            r.enqueue(label) { device in
                let px = UnsafeRawPointer(x.hostPointer!), po = out.hostPointer!
                let cs = UnsafePointer(tab.hostPointer!.assumingMemoryBound(to: Float.self))
                let (sb, sl, sh, sd) = (x.strides[0], x.strides[1], x.strides[2], x.strides[3])
                device.parallelFor(batch * seq, costPerItem: heads * dim * 4) { tokens in
                    let v = UnsafeMutablePointer<Float>.allocate(capacity: dim)
                    defer { v.deallocate() }
                    for token in tokens {
                        let b = token / seq, l = token % seq
                        for h in 0..<heads {
                            ElementwiseLayout.gather(px, x.dtype, offset: b * sb + l * sl + h * sh, stride: sd, count: dim, into: v)
                            if l < tableLength {
                                let t = cs + l * pairs * 2
                                for p in 0..<pairs {
                                    let x0 = v[2 * p], x1 = v[2 * p + 1], c = t[2 * p], s = t[2 * p + 1]
                                    v[2 * p] = (-(x1 * s)).addingProduct(x0, c)
                                    v[2 * p + 1] = (x1 * c).addingProduct(x0, s)
                                }
                            }
                            HostConversion.store(v, to: po + (token * heads + h) * dim * out.dtype.size, dtype: out.dtype, count: dim)
                        }
                    }
                }
            }
        case let .vulkan(r):
            var p = PushConstants()
            p.address(x)
            p.address(out)
            p.address(table.table)
            let n = batch * seq * heads * pairs
            p.u32(n)
            p.u32(pairs)
            p.u32(heads)
            p.u32(seq)
            p.u32(tableLength)
            for s in x.strides { p.u32(s) }
            try r.dispatch(Kernel(name: "rope", spirv: SPIRV.rope), constants: [x.dtype.code, out.dtype.code],
                           push: p, groups: r.grid1D(n, local: 256), reads: [x, table.table], writes: [out], label: label)
        }
    }
}
