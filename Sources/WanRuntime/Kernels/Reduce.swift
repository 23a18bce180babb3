import WanShaders

/// A reduction of the last dimension.
public enum ReduceOp: Sendable, CaseIterable, CustomStringConvertible {
    /// Σ x.
    case sum
    /// Σ x / n.
    case mean
    /// Largest element (NaN if any element is NaN).
    case max
    /// Smallest element (NaN if any element is NaN).
    case min
    /// Σ x².
    case sumOfSquares

    public var description: String {
        switch self {
        case .sum: return "sum"
        case .mean: return "mean"
        case .max: return "max"
        case .min: return "min"
        case .sumOfSquares: return "sumOfSquares"
        }
    }

    /// The number `reduce.comp` uses for this operation.
    var code: UInt32 {
        switch self {
        case .sum: return 0
        case .mean: return 1
        case .max: return 2
        case .min: return 3
        case .sumOfSquares: return 4
        }
    }
}

extension CommandList {
    /// Reduces the last dimension: x [..., n] -> out [...] (or [..., 1]), fp32 accumulation; max and
    /// min propagate NaN; n must be at least 1.
    public func reduce(_ op: ReduceOp, _ x: Tensor, out: Tensor) throws {
        let name = "reduce(\(op))"
        try checkDevice([x, out], op: name)
        try RowKernels.checkFloat([x, out], op: name)
        guard x.rank >= 1 else { throw RuntimeError.shapeMismatch("\(name): input must have at least one dimension, got \(x.shape)") }
        guard x.isContiguous else { throw RuntimeError.invalidArgument("\(name): input must be dense (copy it first)") }
        let n = x.shape[x.rank - 1]
        let outer = Array(x.shape.dropLast())
        guard out.shape == outer || out.shape == outer + [1] else {
            throw RuntimeError.shapeMismatch("\(name): input \(x.shape) reduces to \(outer) or \(outer + [1]), got out \(out.shape)")
        }
        try checkOutput(out, notAliasing: [x], op: name)
        guard x.count < Int(UInt32.max) else { throw RuntimeError.invalidArgument("\(name): too many elements") }
        let rows = out.count
        if rows == 0 { return }
        guard n >= 1 else { throw RuntimeError.invalidArgument("\(name): cannot reduce an empty dimension") }
        let label = "\(name) [\(rows), \(n)] \(x.dtype)->\(out.dtype)"
        switch impl {
        case let .cpu(r):
            r.enqueue(label) { device in
                let src = x.hostPointer!, dst = out.hostPointer!
                device.parallelFor(rows, costPerItem: n) { range in
                    let buf = UnsafeMutablePointer<Float>.allocate(capacity: n)
                    defer { buf.deallocate() }
                    for row in range {
                        let p = RowMath.row(src, row: row, n: n, dtype: x.dtype, scratch: buf)
                        var v: Float
                        switch op {
                        case .sum: v = Float(RowMath.sum(p, n))
                        case .mean: v = Float(RowMath.sum(p, n) / Double(n))
                        case .max: v = RowMath.max(p, n)
                        case .min: v = RowMath.min(p, n)
                        case .sumOfSquares: v = Float(RowMath.sumOfSquares(p, n))
                        }
                        HostConversion.store(&v, to: dst + row * out.dtype.size, dtype: out.dtype, count: 1)
                    }
                }
            }
        case let .vulkan(r):
            let tpr = RowKernels.threadsPerRow(n)
            try LoopBudget.check(r.device.capabilities, estimate: LoopBudget.rowPasses(1, n: n, threadsPerRow: tpr), op: name,
                                 what: "a row of \(n) elements")
            var p = PushConstants()
            p.address(x)
            p.address(out)
            p.u32(rows)
            p.u32(n)
            try r.dispatch(Kernel(name: "reduce", spirv: SPIRV.reduce),
                           constants: [x.dtype.code, out.dtype.code, op.code, UInt32(tpr)],
                           push: p, groups: r.grid1D(rows * tpr, local: RowKernels.workgroup),
                           reads: [x], writes: [out], label: label)
        }
    }
}

/// Launch shape shared by the row kernels (reduce, softmax, norm): a 256-thread workgroup holds
/// 256 / threadsPerRow rows; each thread handles every threadsPerRow-th element of its row.
enum RowKernels {
    static let workgroup = 256

    /// Threads per row: a power of two up to 256 giving each thread about 8 elements or fewer.
    static func threadsPerRow(_ n: Int) -> Int {
        var t = 1
        while t < workgroup && t * 8 < n { t *= 2 }
        return t
    }

    /// Elements per thread kept in registers (a power of two up to 32), or 0 when the row is longer.
    static func cache(_ n: Int, threadsPerRow t: Int) -> Int {
        let per = (n + t - 1) / t
        var c = 1
        while c < per { c *= 2 }
        return c <= 32 ? c : 0
    }

    /// Throws unless every tensor holds a compute float type (f32, f16, bf16).
    static func checkFloat(_ tensors: [Tensor], op: String) throws {
        for t in tensors where !t.dtype.isComputeFloat {
            throw RuntimeError.unsupportedDType("\(op): \(t.dtype) (f32, f16 or bf16 only)")
        }
    }
}

/// Row arithmetic for the CPU kernels: fp32 SIMD lanes within blocks of 1024 elements, block results
/// accumulated in Double (sound for rows of any length and for large means).
enum RowMath {
    private static let block = 1024

    /// The `row`-th row of `n` elements at `base` as floats: the storage itself for f32, else
    /// converted into `scratch`.
    @inline(__always)
    static func row(_ base: UnsafeMutableRawPointer, row: Int, n: Int, dtype: DType,
                    scratch: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let p = base + row * n * dtype.size
        if dtype == .f32 { return p.assumingMemoryBound(to: Float.self) }
        HostConversion.load(p, dtype: dtype, into: scratch, count: n)
        return scratch
    }

    /// The elements of a dense host tensor as floats.
    static func floats(_ t: Tensor) -> [Float] {
        var v = [Float](repeating: 0, count: t.count)
        if let p = t.hostPointer, t.count > 0 {
            v.withUnsafeMutableBufferPointer { HostConversion.load(p, dtype: t.dtype, into: $0.baseAddress!, count: t.count) }
        }
        return v
    }

    @inline(__always)
    private static func load16(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
    }

    /// Σ p[i].
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
        var total = 0.0
        var lo = 0
        while lo < n {
            let hi = Swift.min(n, lo + block)
            var acc = SIMD16<Float>()
            var i = lo
            while i + 16 <= hi { acc += load16(p, i); i += 16 }
            var s = acc.sum()
            while i < hi { s += p[i]; i += 1 }
            total += Double(s)
            lo = hi
        }
        return total
    }

    /// Σ p[i]².
    static func sumOfSquares(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
        var total = 0.0
        var lo = 0
        while lo < n {
            let hi = Swift.min(n, lo + block)
            var acc = SIMD16<Float>()
            var i = lo
            while i + 16 <= hi { let v = load16(p, i); acc += v * v; i += 16 }
            var s = acc.sum()
            while i < hi { s += p[i] * p[i]; i += 1 }
            total += Double(s)
            lo = hi
        }
        return total
    }

    /// (Σ (p[i] − c), Σ (p[i] − c)²).
    static func centeredSums(_ p: UnsafePointer<Float>, _ n: Int, center c: Float) -> (Double, Double) {
        var t1 = 0.0, t2 = 0.0
        var lo = 0
        let cv = SIMD16<Float>(repeating: c)
        while lo < n {
            let hi = Swift.min(n, lo + block)
            var a1 = SIMD16<Float>(), a2 = SIMD16<Float>()
            var i = lo
            while i + 16 <= hi { let d = load16(p, i) - cv; a1 += d; a2 += d * d; i += 16 }
            var s1 = a1.sum(), s2 = a2.sum()
            while i < hi { let d = p[i] - c; s1 += d; s2 += d * d; i += 1 }
            t1 += Double(s1)
            t2 += Double(s2)
            lo = hi
        }
        return (t1, t2)
    }

    /// Largest element; NaN when any element is NaN.
    static func max(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>(repeating: -.infinity)
        var nan = SIMDMask<SIMD16<Float>.MaskStorage>()
        var i = 0
        while i + 16 <= n {
            let v = load16(p, i)
            nan .|= v .!= v
            acc.replace(with: v, where: v .> acc)
            i += 16
        }
        if any(nan) { return .nan }
        var m = acc.max()
        while i < n {
            if p[i].isNaN { return .nan }
            if p[i] > m { m = p[i] }
            i += 1
        }
        return m
    }

    /// Smallest element; NaN when any element is NaN.
    static func min(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>(repeating: .infinity)
        var nan = SIMDMask<SIMD16<Float>.MaskStorage>()
        var i = 0
        while i + 16 <= n {
            let v = load16(p, i)
            nan .|= v .!= v
            acc.replace(with: v, where: v .< acc)
            i += 16
        }
        if any(nan) { return .nan }
        var m = acc.min()
        while i < n {
            if p[i].isNaN { return .nan }
            if p[i] < m { m = p[i] }
            i += 1
        }
        return m
    }

    /// Rounds `n` floats in place through `dtype` (f16 or bf16; f32 leaves them unchanged).
    static func round(_ p: UnsafeMutablePointer<Float>, _ n: Int, to dtype: DType) {
        switch dtype {
        case .f16:
            for i in 0..<n { p[i] = Float(Float16(p[i])) }
        case .bf16:
            for i in 0..<n { p[i] = Float(bitPattern: UInt32(ScalarConversion.floatToBF16(p[i])) << 16) }
        default:
            break
        }
    }
}
