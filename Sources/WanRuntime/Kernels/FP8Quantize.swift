import WanShaders

/// How FP8 quantisation chooses its scales.
public enum FP8Scaling: Sendable {
    /// One scale for the whole tensor (ComfyUI's `scale_weight`).
    case perTensor
    /// One scale per output channel (row of a [out, in] weight; the `weight_scale` spelling).
    case perChannel
}

extension CommandList {
    /// Quantises a weight [rows, ...] (f32/f16/bf16) to FP8 (`out`'s dtype, e4m3fn or e5m2) with scales
    /// so that x ≈ decode(out) · scale: scale = max|x| / FP8 max over finite x, 1 when that is 0 (per tensor: `scales` holds 1 value;
    /// per channel: one per row), then out = fp8(x / scale), round to nearest even, saturating.
    /// The result feeds `gemm(..., weightScale: scales)`.
    public func quantizeFP8(_ x: Tensor, out: Tensor, scales: Tensor, scaling: FP8Scaling) throws {
        let op = "quantizeFP8"
        try checkDevice([x, out, scales], op: op)
        guard x.dtype.isComputeFloat else { throw RuntimeError.unsupportedDType("\(op): input is \(x.dtype)") }
        guard out.dtype == .f8e4m3fn || out.dtype == .f8e5m2 else {
            throw RuntimeError.unsupportedDType("\(op): output must be f8e4m3fn or f8e5m2, got \(out.dtype)")
        }
        guard x.shape == out.shape, x.rank >= 1 else {
            throw RuntimeError.shapeMismatch("\(op): input \(x.shape) and output \(out.shape) differ")
        }
        guard x.isContiguous else { throw RuntimeError.invalidArgument("\(op): input must be dense") }
        let rows = scaling == .perChannel ? x.shape[0] : 1
        let len = rows == 0 ? 0 : x.count / rows
        guard scales.dtype == .f32, scales.isContiguous, scales.count == rows else {
            throw RuntimeError.shapeMismatch("\(op): scales must be dense f32 with \(rows) values, got \(scales.dtype) \(scales.shape)")
        }
        try checkOutput(out, notAliasing: [x, scales], op: op)
        try checkOutput(scales, notAliasing: [x, out], op: op)
        guard x.count < Int(UInt32.max) else { throw RuntimeError.invalidArgument("\(op): too many elements") }
        if x.count == 0 { return }
        let fmax: Float = out.dtype == .f8e4m3fn ? 448 : 57344
        switch impl {
        case let .cpu(r):
            r.enqueue("\(op) \(x.dtype)->\(out.dtype) \(scaling)") { device in
                let src = x.hostPointer!, dst = out.hostPointer!.assumingMemoryBound(to: UInt8.self)
                let sc = scales.hostPointer!.assumingMemoryBound(to: Float.self)
                device.parallelFor(rows, costPerItem: len * 4) { range in
                    let row = UnsafeMutablePointer<Float>.allocate(capacity: len)
                    defer { row.deallocate() }
                    for ri in range {
                        HostConversion.load(src + ri * len * x.dtype.size, dtype: x.dtype, into: row, count: len)
                        var m: Float = 0
                        for j in 0..<len where row[j].isFinite { m = Swift.max(m, Swift.abs(row[j])) }
                        let s: Float = m > 0 ? m / fmax : 1
                        sc[ri] = s
                        for j in 0..<len {
                            let q = row[j] / s
                            dst[ri * len + j] = out.dtype == .f8e4m3fn ? ScalarConversion.floatToF8E4M3(q) : ScalarConversion.floatToF8E5M2(q)
                        }
                    }
                }
            }
        case let .vulkan(r):
            let kernel = Kernel(name: "fp8_quantize", spirv: SPIRV.fp8_quantize)
            var p = PushConstants()
            p.address(x)
            p.address(out)
            p.address(scales)
            p.u32(rows)
            p.u32(len)
            p.u32(x.count)
            let maxX = r.maxGroups(0)
            let rowGroups = rows <= maxX ? (rows, 1, 1) : (maxX, (rows + maxX - 1) / maxX, 1)
            try r.dispatch(kernel, constants: [0, x.dtype.code, out.dtype.code, scaling == .perChannel ? 1 : 0],
                           push: p, groups: rowGroups, reads: [x], writes: [scales], label: "\(op) scales")
            try r.dispatch(kernel, constants: [1, x.dtype.code, out.dtype.code, scaling == .perChannel ? 1 : 0],
                           push: p, groups: r.grid1D(x.count, local: 256), reads: [x, scales], writes: [out],
                           label: "\(op) \(x.dtype)->\(out.dtype)")
        }
    }
}
