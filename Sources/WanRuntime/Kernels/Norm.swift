import WanShaders

/// How RMSNorm turns the row's magnitude into a divisor.
public enum RMSNormStyle: Sendable {
    /// y = x / sqrt(mean(x²) + eps): T5 ("T5LayerNorm"), Wan's DiT q/k norms.
    case meanSquare
    /// y = x · √n / max(‖x‖₂, eps): `F.normalize(x, dim) · √n`, the Wan VAE's `RMS_norm` (eps 1e-12).
    case l2Clamped
}

extension CommandList {
    /// LayerNorm over `axis` (default the last): y = (x − mean) / sqrt(var + eps) with biased variance and
    /// fp32 statistics, rounded to `roundNormalizedTo` when given, then · weight + bias (each optional,
    /// `n` elements, any float dtype). `out` has x's shape and may be x itself.
    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, out: Tensor,
                          axis: Int = -1, roundNormalizedTo: DType? = nil) throws {
        try normalize(x, weight: weight, bias: bias, eps: eps, out: out, axis: axis, mode: 0,
                      roundTo: roundNormalizedTo, op: "layerNorm")
    }

    /// RMSNorm over `axis` (default the last): y = x / sqrt(mean(x²) + eps) (or the `l2Clamped` form) with
    /// fp32 statistics, rounded to `roundNormalizedTo` when given, then · weight (optional, `n` elements).
    /// `out` has x's shape and may be x itself.
    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, out: Tensor, axis: Int = -1,
                        style: RMSNormStyle = .meanSquare, roundNormalizedTo: DType? = nil) throws {
        try normalize(x, weight: weight, bias: nil, eps: eps, out: out, axis: axis,
                      mode: style == .meanSquare ? 1 : 2, roundTo: roundNormalizedTo,
                      op: style == .meanSquare ? "rmsNorm" : "rmsNorm(l2)")
    }

    /// mode 0 LayerNorm, 1 RMSNorm (mean square + eps), 2 RMSNorm (clamped L2 norm · √n).
    private func normalize(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, out: Tensor, axis: Int,
                           mode: Int, roundTo: DType?, op: String) throws {
        let params = [weight, bias].compactMap { $0 }
        try checkDevice([x, out] + params, op: op)
        try RowKernels.checkFloat([x, out] + params, op: op)
        if let roundTo, !roundTo.isComputeFloat {
            throw RuntimeError.unsupportedDType("\(op): cannot round the normalised value to \(roundTo)")
        }
        guard x.rank >= 1 else { throw RuntimeError.shapeMismatch("\(op): input must have at least one dimension, got \(x.shape)") }
        let ax = axis < 0 ? axis + x.rank : axis
        guard ax >= 0 && ax < x.rank else { throw RuntimeError.invalidArgument("\(op): axis \(axis) of a rank-\(x.rank) tensor") }
        guard x.isContiguous else { throw RuntimeError.invalidArgument("\(op): input must be dense (copy it first)") }
        guard out.shape == x.shape else { throw RuntimeError.shapeMismatch("\(op): input \(x.shape), out \(out.shape)") }
        guard eps >= 0 && eps.isFinite else { throw RuntimeError.invalidArgument("\(op): eps \(eps) must be finite and >= 0") }
        let n = x.shape[ax]
        for (what, t) in [("weight", weight), ("bias", bias)] {
            guard let t else { continue }
            guard t.count == n else {
                throw RuntimeError.shapeMismatch("\(op): \(what) \(t.shape) for a normalised dimension of \(n)")
            }
            guard t.isContiguous else { throw RuntimeError.invalidArgument("\(op): \(what) must be dense") }
        }
        try checkOutput(out, notAliasing: [x] + params, op: op)
        guard x.count < Int(UInt32.max) else { throw RuntimeError.invalidArgument("\(op): too many elements") }
        if x.count == 0 { return }
        let outer = x.shape[..<ax].reduce(1, *)
        let inner = x.shape[(ax + 1)...].reduce(1, *)
        let roundDT = roundTo ?? .f32
        let label = "\(op) [\(outer), \(n), \(inner)] \(x.dtype)->\(out.dtype)"
        switch impl {
        case let .cpu(r):
            r.enqueue(label) { device in
                let w = weight.map(RowMath.floats), b = bias.map(RowMath.floats)
                if inner == 1 {
                    NormCPU.rows(device, x, out, rows: outer, n: n, mode: mode, eps: eps, roundTo: roundDT, weight: w, bias: b)
                } else {
                    NormCPU.columns(device, x, out, outer: outer, n: n, inner: inner, mode: mode, eps: eps,
                                    roundTo: roundDT, weight: w, bias: b)
                }
            }
        case let .vulkan(r):
            let columns = inner > 1
            let tpr = columns ? 1 : RowKernels.threadsPerRow(n)
            let cache = columns ? 1 : RowKernels.cache(n, threadsPerRow: tpr)
            // Rows: mean, variance (or mean square) and the write; across a strided axis one thread walks it 4 times.
            try LoopBudget.check(r.device.capabilities, estimate: LoopBudget.rowPasses(columns ? 4 : 3, n: n, threadsPerRow: tpr),
                                 op: op, what: "\(n) elements per normalized vector")
            var p = PushConstants()
            p.address(x)
            p.address(out)
            p.address(weight ?? x)
            p.address(bias ?? x)
            p.u32(outer)
            p.u32(n)
            p.u32(inner)
            p.f32(eps)
            let constants: [UInt32] = [
                x.dtype.code, out.dtype.code, weight?.dtype.code ?? 0, bias?.dtype.code ?? 0, UInt32(mode),
                weight == nil ? 0 : 1, bias == nil ? 0 : 1, roundDT.code, UInt32(tpr), UInt32(cache), columns ? 1 : 0,
            ]
            let groups = columns ? r.grid1D(outer * inner, local: RowKernels.workgroup)
                                 : r.grid1D(outer * tpr, local: RowKernels.workgroup)
            try r.dispatch(Kernel(name: "norm", spirv: SPIRV.norm), constants: constants, push: p, groups: groups,
                           reads: [x] + params, writes: [out], label: label)
        }
    }
}

/// The CPU side of LayerNorm / RMSNorm: statistics accumulated in Double, output math in fp32.
private enum NormCPU {
    /// (center, 1/divisor) of `n` values for `mode` (see `normalize`).
    @inline(__always)
    static func scale(mode: Int, n: Int, eps: Float, centered: (Double, Double),
                      center c0: Float, sumOfSquares: Double) -> (Float, Float) {
        let dn = Double(n)
        switch mode {
        case 0:
            let d = centered.0 / dn
            let variance = Swift.max(centered.1 / dn - d * d, 0)
            return (Float(Double(c0) + d), Float(1 / (variance + Double(eps)).squareRoot()))
        case 1:
            return (0, Float(1 / (sumOfSquares / dn + Double(eps)).squareRoot()))
        default:
            return (0, Float(dn.squareRoot() / Swift.max(sumOfSquares.squareRoot(), Double(eps))))
        }
    }

    /// y = round((x − center) · rstd) · w + b over `n` elements (x and y may be the same).
    @inline(__always)
    static func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, n: Int, center: Float, rstd: Float,
                      roundTo: DType, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?) {
        for i in 0..<n { y[i] = (x[i] - center) * rstd }
        RowMath.round(y, n, to: roundTo)
        if let weight { for i in 0..<n { y[i] *= weight[i] } }
        if let bias { for i in 0..<n { y[i] += bias[i] } }
    }

    /// Normalises each of `rows` dense rows of `n` elements.
    static func rows(_ device: CPUDevice, _ x: Tensor, _ out: Tensor, rows: Int, n: Int, mode: Int, eps: Float,
                     roundTo: DType, weight: [Float]?, bias: [Float]?) {
        let src = x.hostPointer!, dst = out.hostPointer!
        let wp = weight.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.count) }
        let bp = bias.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.count) }
        defer { wp?.deallocate(); bp?.deallocate() }
        if let wp, let weight { wp.initialize(from: weight, count: weight.count) }
        if let bp, let bias { bp.initialize(from: bias, count: bias.count) }
        device.parallelFor(rows, costPerItem: 4 * n) { range in
            let xbuf = UnsafeMutablePointer<Float>.allocate(capacity: n)
            let ybuf = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { xbuf.deallocate(); ybuf.deallocate() }
            for row in range {
                let xp = RowMath.row(src, row: row, n: n, dtype: x.dtype, scratch: xbuf)
                var c0: Float = 0, centered = (0.0, 0.0), ss = 0.0
                if mode == 0 {
                    c0 = Float(RowMath.sum(xp, n) / Double(n))
                    centered = RowMath.centeredSums(xp, n, center: c0)
                } else {
                    ss = RowMath.sumOfSquares(xp, n)
                }
                let (center, rstd) = scale(mode: mode, n: n, eps: eps, centered: centered, center: c0, sumOfSquares: ss)
                let yrow = dst + row * n * out.dtype.size
                let yp = out.dtype == .f32 ? yrow.assumingMemoryBound(to: Float.self) : ybuf
                apply(xp, yp, n: n, center: center, rstd: rstd, roundTo: roundTo, weight: wp, bias: bp)
                if out.dtype != .f32 { HostConversion.store(ybuf, to: yrow, dtype: out.dtype, count: n) }
            }
        }
    }

    /// Normalises x [outer, n, inner] over its middle axis, in tiles of columns.
    static func columns(_ device: CPUDevice, _ x: Tensor, _ out: Tensor, outer: Int, n: Int, inner: Int, mode: Int,
                        eps: Float, roundTo: DType, weight: [Float]?, bias: [Float]?) {
        let src = x.hostPointer!, dst = out.hostPointer!
        let tile = 64
        let tiles = (inner + tile - 1) / tile
        let xs = x.dtype.size, ys = out.dtype.size
        device.parallelFor(outer * tiles, costPerItem: 3 * n * tile) { range in
            var v = [Float](repeating: 0, count: tile), c0 = [Float](repeating: 0, count: tile)
            var center = [Float](repeating: 0, count: tile), rstd = [Float](repeating: 0, count: tile)
            var a1 = [Double](repeating: 0, count: tile), a2 = [Double](repeating: 0, count: tile)
            for item in range {
                let o = item / tiles, j0 = (item % tiles) * tile, w = Swift.min(tile, inner - j0)
                let base = o * n * inner + j0
                for j in 0..<w { a1[j] = 0; a2[j] = 0 }
                // Pass 1: sum (LayerNorm) or sum of squares (RMSNorm) per column.
                v.withUnsafeMutableBufferPointer { vb in
                    for c in 0..<n {
                        HostConversion.load(src + (base + c * inner) * xs, dtype: x.dtype, into: vb.baseAddress!, count: w)
                        if mode == 0 {
                            for j in 0..<w { a1[j] += Double(vb[j]) }
                        } else {
                            for j in 0..<w { let d = Double(vb[j]); a2[j] += d * d }
                        }
                    }
                    if mode == 0 {
                        // Pass 2: centred sums around the provisional mean.
                        for j in 0..<w { c0[j] = Float(a1[j] / Double(n)); a1[j] = 0; a2[j] = 0 }
                        for c in 0..<n {
                            HostConversion.load(src + (base + c * inner) * xs, dtype: x.dtype, into: vb.baseAddress!, count: w)
                            for j in 0..<w { let d = Double(vb[j] - c0[j]); a1[j] += d; a2[j] += d * d }
                        }
                    }
                    for j in 0..<w {
                        (center[j], rstd[j]) = scale(mode: mode, n: n, eps: eps, centered: (a1[j], a2[j]),
                                                     center: c0[j], sumOfSquares: a2[j])
                    }
                    // Pass 3: output.
                    for c in 0..<n {
                        HostConversion.load(src + (base + c * inner) * xs, dtype: x.dtype, into: vb.baseAddress!, count: w)
                        for j in 0..<w { vb[j] = (vb[j] - center[j]) * rstd[j] }
                        RowMath.round(vb.baseAddress!, w, to: roundTo)
                        if let weight { let g = weight[c]; for j in 0..<w { vb[j] *= g } }
                        if let bias { let g = bias[c]; for j in 0..<w { vb[j] += g } }
                        HostConversion.store(vb.baseAddress!, to: dst + (base + c * inner) * ys, dtype: out.dtype, count: w)
                    }
                }
            }
        }
    }
}
