import Foundation
import WanShaders

extension CommandList {
    /// Softmax over the last dimension of x·scale (max-subtracted, fp32 math); `out` has x's shape and
    /// may be x itself. A row holding NaN gives NaN; a row of −∞ gives NaN (as PyTorch).
    public func softmax(_ x: Tensor, out: Tensor, scale: Float = 1) throws {
        let name = "softmax"
        try checkDevice([x, out], op: name)
        try RowKernels.checkFloat([x, out], op: name)
        guard x.rank >= 1 else { throw RuntimeError.shapeMismatch("\(name): input must have at least one dimension, got \(x.shape)") }
        guard x.isContiguous else { throw RuntimeError.invalidArgument("\(name): input must be dense (copy it first)") }
        guard out.shape == x.shape else { throw RuntimeError.shapeMismatch("\(name): input \(x.shape), out \(out.shape)") }
        guard scale.isFinite else { throw RuntimeError.invalidArgument("\(name): scale \(scale) is not finite") }
        try checkOutput(out, notAliasing: [x], op: name)
        guard x.count < Int(UInt32.max) else { throw RuntimeError.invalidArgument("\(name): too many elements") }
        if x.count == 0 { return }
        let n = x.shape[x.rank - 1]
        let rows = x.count / n
        let label = "softmax [\(rows), \(n)] \(x.dtype)->\(out.dtype)"
        switch impl {
        case let .cpu(r):
            r.enqueue(label) { device in
                let src = x.hostPointer!, dst = out.hostPointer!
                device.parallelFor(rows, costPerItem: 8 * n) { range in
                    let buf = UnsafeMutablePointer<Float>.allocate(capacity: n)
                    defer { buf.deallocate() }
                    for row in range {
                        let p = RowMath.row(src, row: row, n: n, dtype: x.dtype, scratch: buf)
                        for i in 0..<n { buf[i] = p[i] * scale }
                        let m = RowMath.max(buf, n)
                        FastMath.expShifted(buf, n, by: m)
                        let inv = Float(1 / RowMath.sum(buf, n))
                        for i in 0..<n { buf[i] *= inv }
                        HostConversion.store(buf, to: dst + row * n * out.dtype.size, dtype: out.dtype, count: n)
                    }
                }
            }
        case let .vulkan(r):
            let tpr = RowKernels.threadsPerRow(n)
            let cache = RowKernels.cache(n, threadsPerRow: tpr)
            try LoopBudget.check(r.device.capabilities, estimate: LoopBudget.rowPasses(3, n: n, threadsPerRow: tpr), op: name,
                                 what: "a row of \(n) elements")
            var p = PushConstants()
            p.address(x)
            p.address(out)
            p.u32(rows)
            p.u32(n)
            p.f32(scale)
            try r.dispatch(Kernel(name: "softmax", spirv: SPIRV.softmax),
                           constants: [x.dtype.code, out.dtype.code, UInt32(tpr), UInt32(cache)],
                           push: p, groups: r.grid1D(rows * tpr, local: RowKernels.workgroup),
                           reads: [x], writes: [out], label: label)
        }
    }
}
