import Foundation
import WanShaders

/// Elementwise unary operations (`unary(_:_:out:scale:shift:)`).
public enum UnaryOp: UInt32, Sendable, CaseIterable {
    /// x (with `scale`/`shift`: an affine map; also a broadcasting, dtype-converting strided copy).
    case identity
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the tanh approximation of GELU.
    case geluTanh
    /// 0.5·x·(1 + erf(x/√2)), the exact GELU.
    case geluErf
    /// x·sigmoid(x).
    case silu
    /// 1 / (1 + e^(−x)).
    case sigmoid
    /// tanh(x).
    case tanh
    /// e^x.
    case exp
    /// −x.
    case neg
    /// |x|.
    case abs
    /// √x.
    case sqrt
    /// 1/√x.
    case rsqrt
    /// x².
    case square
    /// max(x, 0) (NaN stays NaN).
    case relu
}

extension CommandList {
    /// Elementwise `out = op(x)·scale + shift` in fp32 math. `x` (f32/f16/bf16) may be any strided
    /// view and is broadcast (NumPy rules) to `out`'s shape; `out` (f32/f16/bf16) must be dense and may
    /// alias a dense `x` of the same shape exactly (in place). Results do not overflow to NaN for large
    /// |x| (gelu, silu, sigmoid, tanh saturate; exp overflows to +inf only beyond ≈ 88.72).
    public func unary(_ op: UnaryOp, _ x: Tensor, out: Tensor, scale: Float = 1, shift: Float = 0) throws {
        let name = "unary \(op)"
        try checkDevice([x, out], op: name)
        for t in [x, out] where !t.dtype.isComputeFloat {
            throw RuntimeError.unsupportedDType("\(name): \(t.dtype) (expected f32, f16 or bf16)")
        }
        guard Shape.broadcast(x.shape, out.shape) == out.shape else {
            throw RuntimeError.shapeMismatch("\(name): input \(x.shape) does not broadcast to out \(out.shape)")
        }
        try checkOutput(out, notAliasing: [x], op: name)
        let layout = try ElementwiseLayout(outShape: out.shape, inputs: [x], op: name)
        if out.count == 0 { return }
        let label = "\(name) \(x.dtype)->\(out.dtype) \(out.shape)"
        switch impl {
        case let .cpu(r):
            r.enqueue(label) { device in
                let px = UnsafeRawPointer(x.hostPointer!), po = out.hostPointer!
                let sx = layout.strides[0].last!
                let affine = scale != 1 || shift != 0
                layout.forEachBlock(device: device, scratchBlocks: 1) { start, m, offsets, v in
                    ElementwiseLayout.gather(px, x.dtype, offset: offsets[0], stride: sx, count: m, into: v)
                    UnaryMath.apply(op, v, m)
                    if affine { for k in 0..<m { v[k] = shift.addingProduct(v[k], scale) } }
                    HostConversion.store(v, to: po + start * out.dtype.size, dtype: out.dtype, count: m)
                }
            }
        case let .vulkan(r):
            var p = PushConstants()
            p.address(x)
            p.address(out)
            p.u32(out.count)
            p.f32(scale)
            p.f32(shift)
            layout.push(into: &p)
            try r.dispatch(Kernel(name: "unary", spirv: SPIRV.unary),
                           constants: [x.dtype.code, out.dtype.code, op.rawValue, UInt32(layout.shape.count)],
                           push: p, groups: r.grid1D(out.count, local: 256), reads: [x], writes: [out], label: label)
        }
    }
}

/// The CPU definitions of the unary ops (the same formulas as `Shaders/unary.comp`).
enum UnaryMath {
    /// Applies `op` to `count` floats in place.
    @inline(__always)
    static func apply(_ op: UnaryOp, _ v: UnsafeMutablePointer<Float>, _ count: Int) {
        switch op {
        case .identity: break
        case .geluTanh:
            // 0.5 x (1 + tanh(u)) == x * sigmoid(2u): no cancellation for negative x, no inf/inf.
            FastMath.geluTanh(v, count)
        case .geluErf:
            for k in 0..<count {
                let x = v[k]
                // 1 + erf(z) = erfc(-z): accurate for negative x as well.
                v[k] = 0.5 * x * Foundation.erfc(-x * 0.70710678118654752)
            }
        case .silu: FastMath.silu(v, count)
        case .sigmoid: FastMath.sigmoid(v, count)
        case .tanh: for k in 0..<count { v[k] = Foundation.tanh(v[k]) }
        case .exp: for k in 0..<count { v[k] = Foundation.exp(v[k]) }
        case .neg: for k in 0..<count { v[k] = -v[k] }
        case .abs: for k in 0..<count { v[k] = Swift.abs(v[k]) }
        case .sqrt: for k in 0..<count { v[k] = v[k].squareRoot() }
        case .rsqrt: for k in 0..<count { v[k] = 1 / v[k].squareRoot() }
        case .square: for k in 0..<count { v[k] = v[k] * v[k] }
        case .relu: for k in 0..<count where v[k] < 0 { v[k] = 0 }
        }
    }
}
