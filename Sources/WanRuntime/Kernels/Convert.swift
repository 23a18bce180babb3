import WanShaders

extension CommandList {
    /// Converts the elements of a dense tensor to `out`'s dtype (round to nearest even; fp8
    /// saturating; NaN preserved). Shapes must hold the same number of elements.
    public func convert(_ x: Tensor, out: Tensor) throws {
        try checkDevice([x, out], op: "convert")
        guard x.count == out.count else { throw RuntimeError.shapeMismatch("convert \(x.shape) -> \(out.shape)") }
        guard x.isContiguous else { throw RuntimeError.invalidArgument("convert: input must be dense (copy it first)") }
        try checkOutput(out, notAliasing: [x], op: "convert")
        guard x.count < Int(UInt32.max) else { throw RuntimeError.invalidArgument("convert: too many elements") }
        switch impl {
        case let .cpu(r):
            r.enqueue("convert \(x.dtype)->\(out.dtype)") { device in
                let n = x.count
                let src = x.hostPointer!, dst = out.hostPointer!
                device.parallelFor((n + 4095) / 4096, costPerItem: 4096) { blocks in
                    var tmp = [Float](repeating: 0, count: 4096)
                    tmp.withUnsafeMutableBufferPointer { buf in
                        for b in blocks {
                            let lo = b * 4096, m = min(4096, n - lo)
                            HostConversion.load(src + lo * x.dtype.size, dtype: x.dtype, into: buf.baseAddress!, count: m)
                            HostConversion.store(buf.baseAddress!, to: dst + lo * out.dtype.size, dtype: out.dtype, count: m)
                        }
                    }
                }
            }
        case let .vulkan(r):
            var p = PushConstants()
            p.address(x)
            p.address(out)
            p.u32(x.count)
            try r.dispatch(Kernel(name: "convert", spirv: SPIRV.convert), constants: [x.dtype.code, out.dtype.code],
                           push: p, groups: r.grid1D(x.count, local: 256), reads: [x], writes: [out],
                           label: "convert \(x.dtype)->\(out.dtype)")
        }
    }
}
