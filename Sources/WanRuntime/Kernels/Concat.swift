import Foundation
import WanShaders

extension CommandList {
    /// Concatenates tensors (same rank, equal sizes except along `dim`) along `dim` into dense `out`,
    /// converting dtypes where they differ from `out`'s.
    public func concat(_ xs: [Tensor], dim: Int, out: Tensor) throws {
        try checkDevice(xs + [out], op: "concat")
        guard !xs.isEmpty else { throw RuntimeError.invalidArgument("concat: no inputs") }
        guard dim >= 0 && dim < out.rank else {
            throw RuntimeError.invalidArgument("concat: dim \(dim) out of range for output rank \(out.rank)")
        }
        var total = 0
        for x in xs {
            guard x.rank == out.rank else {
                throw RuntimeError.shapeMismatch("concat: input \(x.shape) has rank \(x.rank), output \(out.shape) has \(out.rank)")
            }
            for d in 0..<out.rank where d != dim && x.shape[d] != out.shape[d] {
                throw RuntimeError.shapeMismatch("concat along \(dim): input \(x.shape) does not match output \(out.shape) in dim \(d)")
            }
            total += x.shape[dim]
        }
        guard total == out.shape[dim] else {
            throw RuntimeError.shapeMismatch("concat along \(dim): inputs sum to \(total), output \(out.shape) has \(out.shape[dim])")
        }
        try checkOutput(out, notAliasing: [], op: "concat")
        if out.count == 0 { return }
        for x in xs where x.count > 0 && out.overlaps(x) {
            throw RuntimeError.invalidArgument("concat: output overlaps an input")
        }
        // The slice of `out` each non-empty input fills.
        var parts: [(x: Tensor, start: Int)] = []
        var start = 0
        for x in xs {
            if x.count > 0 { parts.append((x, start)) }
            start += x.shape[dim]
        }
        let label = "concat \(xs.count)x\(out.dtype) dim \(dim) -> \(out.shape)"
        if case let .vulkan(r) = impl, parts.allSatisfy({ $0.x.dtype == out.dtype && $0.x.isContiguous }) {
            // Dense inputs of the output's dtype: one dispatch per 4 inputs (disjoint columns of
            // every output row), instead of one strided copy each.
            for g in stride(from: 0, to: parts.count, by: 4) {
                try recordConcatGroup(Array(parts[g..<min(g + 4, parts.count)]), dim: dim, out: out,
                                      recorder: r, label: label)
            }
            return
        }
        for (x, s) in parts {
            try recordLayoutCopy(x, into: try out.sliced(dim: dim, s..<s + x.shape[dim]), label: label)
        }
    }

    /// One dispatch of `copy.comp`'s concat mode for up to 4 dense inputs of `out`'s dtype.
    private func recordConcatGroup(_ parts: [(x: Tensor, start: Int)], dim: Int, out: Tensor,
                                   recorder r: VulkanRecorder, label: String) throws {
        let es = out.dtype.size
        let inner = out.shape[(dim + 1)...].reduce(1, *)
        let outer = out.shape[..<dim].reduce(1, *)
        let rowBytes = out.shape[dim] * inner * es
        let groupStart = parts[0].start * inner * es
        let partBytes = parts.map { $0.x.shape[dim] * inner * es }
        // The widest unit dividing every row segment and address.
        let addresses = [out.deviceAddress] + parts.map { $0.x.deviceAddress }
        let sizes = [rowBytes, groupStart] + partBytes
        let unit = [16, 8, 4, 2, 1].first { (u: Int) -> Bool in
            let aligned = addresses.allSatisfy { $0 % UInt64(u) == 0 }
            return aligned && sizes.allSatisfy { $0 % u == 0 }
        } ?? 1
        var starts = [0], groupLength = 0
        for b in partBytes {
            groupLength += b / unit
            starts.append(groupLength)
        }
        let n = outer * groupLength
        guard n < LayoutCopy.maxUnits, out.byteCount / unit < LayoutCopy.maxUnits else {
            throw LayoutCopy.tooLarge("concat", "the output \(out.shape)")
        }
        let p = LayoutCopy.copyPush(dst: out, srcs: parts.map(\.x), n: n, rank: parts.count, aux: 0,
                                    shape: starts, src: [rowBytes / unit, groupStart / unit], dstStrides: [])
        try r.dispatch(Kernel(name: "copy", spirv: SPIRV.copy),
                       constants: [2, 0, 0, 1, UInt32(unit)],
                       push: p, groups: r.grid1D(n, local: 256), reads: parts.map(\.x), writes: [out], label: label)
    }
}
