import WanShaders

extension CommandList {
    /// Row gather (embedding lookup): `out[..., :] = table[ids[...], :]` for a dense `[V, D]` table
    /// (f32/f16/bf16) and dense i32 `ids` of any shape; `out` (f32/f16/bf16) is `ids.shape + [D]`.
    /// An id outside `[0, V)` gives a row of zeros (callers that must reject such ids check them on the host).
    public func gather(_ table: Tensor, ids: Tensor, out: Tensor) throws {
        let op = "gather"
        try checkDevice([table, ids, out], op: op)
        guard table.dtype.isComputeFloat, out.dtype.isComputeFloat else {
            throw RuntimeError.unsupportedDType("\(op): table \(table.dtype), out \(out.dtype); expected f32, f16 or bf16")
        }
        guard ids.dtype == .i32 else { throw RuntimeError.unsupportedDType("\(op): ids are \(ids.dtype); expected i32") }
        guard table.rank == 2 else { throw RuntimeError.shapeMismatch("\(op): table must be [V, D], got \(table.shape)") }
        guard table.isContiguous, ids.isContiguous else {
            throw RuntimeError.invalidArgument("\(op): table and ids must be dense (copy them first)")
        }
        let vocab = table.shape[0], width = table.shape[1]
        guard out.shape == ids.shape + [width] else {
            throw RuntimeError.shapeMismatch("\(op): out is \(out.shape), expected \(ids.shape + [width])")
        }
        try checkOutput(out, notAliasing: [table, ids], op: op)
        if out.overlaps(table) || out.overlaps(ids) { throw RuntimeError.invalidArgument("\(op): output overlaps an input") }
        guard out.count < Int(UInt32.max), vocab < Int(Int32.max), width < Int(UInt32.max) else {
            throw RuntimeError.invalidArgument("\(op): too many elements")
        }
        let rows = ids.count
        if out.count == 0 { return }
        let label = "gather \(rows)x\(width) of \(vocab) \(table.dtype)->\(out.dtype)"
        switch impl {
        case let .cpu(r):
            r.enqueue(label) { device in
                let src = UnsafeRawPointer(table.hostPointer!), dst = out.hostPointer!
                let idp = UnsafeRawPointer(ids.hostPointer!).assumingMemoryBound(to: Int32.self)
                let ts = table.dtype.size, os = out.dtype.size
                device.parallelFor(rows, costPerItem: 2 * width) { range in
                    let buf = UnsafeMutablePointer<Float>.allocate(capacity: width)
                    defer { buf.deallocate() }
                    for row in range {
                        let id = Int(idp[row])
                        if id >= 0 && id < vocab {
                            HostConversion.load(src + id * width * ts, dtype: table.dtype, into: buf, count: width)
                        } else {
                            buf.update(repeating: 0, count: width)
                        }
                        HostConversion.store(buf, to: dst + row * width * os, dtype: out.dtype, count: width)
                    }
                }
            }
        case let .vulkan(r):
            var p = PushConstants()
            p.address(table)
            p.address(ids)
            p.address(out)
            p.u32(rows)
            p.u32(width)
            p.u32(vocab)
            try r.dispatch(Kernel(name: "gather", spirv: SPIRV.gather), constants: [table.dtype.code, out.dtype.code],
                           push: p, groups: r.grid1D(out.count, local: 256), reads: [table, ids], writes: [out], label: label)
        }
    }
}
