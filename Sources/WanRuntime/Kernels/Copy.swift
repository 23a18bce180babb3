import Foundation
import WanShaders

extension CommandList {
    /// Copies a view of any strides into another view of the same shape (any strides, e.g. a slice of
    /// a bigger tensor), converting the dtype if they differ (round to nearest even, as `convert`).
    public func copy(_ x: Tensor, into out: Tensor) throws {
        try checkDevice([x, out], op: "copy")
        guard x.shape == out.shape else { throw RuntimeError.shapeMismatch("copy \(x.shape) into \(out.shape)") }
        try LayoutCopy.checkWritable(out, op: "copy")
        if x.count == 0 { return }
        if out.overlaps(x) {
            // Copying a view onto itself is a no-op; any other overlap would race.
            if out.storage === x.storage, out.offset == x.offset, out.strides == x.strides, out.dtype == x.dtype { return }
            throw RuntimeError.invalidArgument("copy: output overlaps the input")
        }
        try recordLayoutCopy(x, into: out, label: "copy \(x.dtype)\(x.shape)->\(out.dtype)")
    }

    /// Writes x with its dimensions reordered (out dim i = x dim `order[i]`) into dense `out`,
    /// converting the dtype if they differ.
    public func permute(_ x: Tensor, order: [Int], out: Tensor) throws {
        try checkDevice([x, out], op: "permute")
        let view = try x.permuted(order)
        guard view.shape == out.shape else {
            throw RuntimeError.shapeMismatch("permute \(x.shape) by \(order) gives \(view.shape), output is \(out.shape)")
        }
        try checkOutput(out, notAliasing: [], op: "permute")
        if out.count == 0 { return }
        if out.overlaps(x) { throw RuntimeError.invalidArgument("permute: output overlaps the input") }
        try recordLayoutCopy(view, into: out, label: "permute \(x.dtype)\(x.shape) \(order)->\(out.dtype)")
    }

    /// Records a copy between two views of the same shape (checks done by the caller).
    func recordLayoutCopy(_ x: Tensor, into out: Tensor, label: String) throws {
        let plan = LayoutCopy.Plan(shape: x.shape, src: x.strides, dst: out.strides)
        switch impl {
        case let .cpu(r):
            r.enqueue(label) { device in LayoutCopy.cpuCopy(x, into: out, plan: plan, device: device) }
        case let .vulkan(r):
            try LayoutCopy.vulkanCopy(x, into: out, plan: plan, recorder: r, label: label)
        }
    }
}

/// Shared machinery of the layout kernels (copy, permute, concat, pad).
enum LayoutCopy {
    /// Largest element offset the Vulkan layout shaders address (32-bit unit offsets).
    static let maxUnits = 1 << 32

    /// A copy between two views of one shape reduced to the fewest dimensions: size-1 dimensions
    /// dropped, dimensions ordered by the destination's strides (largest first, so writes walk memory
    /// forward), neighbours merged where both views are contiguous across them. Never empty.
    struct Plan {
        var shape: [Int]
        var src: [Int]
        var dst: [Int]

        init(shape: [Int], src: [Int], dst: [Int]) {
            let dims = shape.indices.filter { shape[$0] != 1 }
                .sorted { (dst[$0], src[$0], -$0) > (dst[$1], src[$1], -$1) }
            var s: [Int] = [], a: [Int] = [], b: [Int] = []
            for d in dims {
                if let k = s.indices.last, a[k] == src[d] * shape[d], b[k] == dst[d] * shape[d] {
                    s[k] *= shape[d]
                    a[k] = src[d]
                    b[k] = dst[d]
                } else {
                    s.append(shape[d])
                    a.append(src[d])
                    b.append(dst[d])
                }
            }
            if s.isEmpty { (s, a, b) = ([1], [1], [1]) }
            self.shape = s
            self.src = a
            self.dst = b
        }

        var rank: Int { shape.count }
        var count: Int { shape.reduce(1, *) }

        /// Largest offset (in elements of these strides) a view with `strides` reaches.
        func reach(_ strides: [Int]) -> Int {
            zip(shape, strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
        }
    }

    /// Throws unless every element of `out` is a distinct memory location (so a copy into it is
    /// well defined): non-negative strides, each at least the extent of the next smaller one.
    static func checkWritable(_ out: Tensor, op: String) throws {
        let dims = out.shape.indices.filter { out.shape[$0] > 1 }.sorted { out.strides[$0] < out.strides[$1] }
        var extent = 1
        for d in dims {
            guard out.strides[d] >= extent else {
                throw RuntimeError.invalidArgument("\(op): output view \(out.shape) strides \(out.strides) has overlapping elements")
            }
            extent = out.strides[d] * out.shape[d]
        }
    }

    // MARK: Vulkan

    /// Push constants of `copy.comp` (see its header for the meaning per mode).
    static func copyPush(dst: Tensor, srcs: [Tensor], n: Int, rank: Int, aux: Int,
                         shape: [Int], src: [Int], dstStrides: [Int]) -> PushConstants {
        var p = PushConstants()
        p.address(dst)
        for k in 0..<4 { p.u64(k < srcs.count ? srcs[k].deviceAddress : 0) }
        p.u32(n)
        p.u32(rank)
        p.u32(aux)
        for d in 0..<6 { p.u32(d < shape.count ? shape[d] : 1) }
        for d in 0..<6 { p.u32(d < src.count ? src[d] : 0) }
        for d in 0..<6 { p.u32(d < dstStrides.count ? dstStrides[d] : 0) }
        return p
    }

    static func tooLarge(_ op: String, _ what: String) -> RuntimeError {
        RuntimeError.invalidArgument("\(op): \(what) spans 2^32 or more elements, beyond the 32-bit offsets of the Vulkan layout kernels; split it")
    }

    static func vulkanCopy(_ x: Tensor, into out: Tensor, plan original: Plan, recorder r: VulkanRecorder, label: String) throws {
        var plan = original
        let rank = plan.rank
        let same = x.dtype == out.dtype
        let es = x.dtype.size
        // Dense to dense in the same order: a plain buffer copy.
        if same && rank == 1 && plan.src[0] == 1 && plan.dst[0] == 1 {
            try r.copyBytes(from: x, to: out, count: x.byteCount)
            return
        }
        guard rank <= 6 else {
            throw RuntimeError.invalidArgument("copy: views \(x.shape) strides \(x.strides) -> \(out.strides) need \(rank) dimensions after merging; the Vulkan kernel takes at most 6")
        }
        // Same dtype with a contiguous innermost dimension in both views: copy the widest raw unit
        // that divides the rows, the other strides and both addresses.
        var unit = same ? es : 1
        let last = rank - 1
        if same && plan.src[last] == 1 && plan.dst[last] == 1 {
            for u in [16, 8, 4, 2] where u > es {
                let fits = (plan.shape[last] * es) % u == 0
                    && plan.src.dropLast().allSatisfy { ($0 * es) % u == 0 }
                    && plan.dst.dropLast().allSatisfy { ($0 * es) % u == 0 }
                    && x.deviceAddress % UInt64(u) == 0 && out.deviceAddress % UInt64(u) == 0
                if fits {
                    let f = u / es
                    plan.shape[last] /= f
                    for d in 0..<last {
                        plan.src[d] /= f
                        plan.dst[d] /= f
                    }
                    unit = u
                    break
                }
            }
        }
        let n = plan.count
        guard n < maxUnits else { throw tooLarge("copy", "\(x.shape)") }
        guard plan.reach(plan.src) < maxUnits else { throw tooLarge("copy", "the input view \(x.shape) strides \(x.strides)") }
        guard plan.reach(plan.dst) < maxUnits else { throw tooLarge("copy", "the output view \(out.shape) strides \(out.strides)") }
        // A transpose of the innermost dimension: the source's contiguous dim is another one.
        var mode: UInt32 = 0, aux = 0, work = n
        var groups = r.grid1D(n, local: 256)
        if rank >= 2, plan.src[last] != 1,
           let s = (0..<last).last(where: { plan.src[$0] == 1 }), plan.shape[s] >= 16, plan.shape[last] >= 16 {
            let tiles = (plan.shape[last] + 31) / 32 * ((plan.shape[s] + 31) / 32) * (n / (plan.shape[last] * plan.shape[s]))
            mode = 1
            aux = s
            work = tiles
            groups = r.grid1D(tiles * 256, local: 256)
        }
        // Raw copies depend only on the unit size, not the dtype: one pipeline per (mode, unit).
        let p = copyPush(dst: out, srcs: [x], n: work, rank: rank, aux: aux,
                         shape: plan.shape, src: plan.src, dstStrides: plan.dst)
        try r.dispatch(Kernel(name: "copy", spirv: SPIRV.copy),
                       constants: same ? [mode, 0, 0, 1, UInt32(unit)] : [mode, x.dtype.code, out.dtype.code, 0, 1],
                       push: p, groups: groups, reads: [x], writes: [out], label: label)
    }

    // MARK: CPU

    /// Elements per piece of a long row (bounds scratch memory and spreads long rows over threads).
    static let piece = 16_384

    static func cpuCopy(_ x: Tensor, into out: Tensor, plan: Plan, device: CPUDevice) {
        let src = UnsafeRawPointer(x.hostPointer!), dst = out.hostPointer!
        let rank = plan.rank, last = rank - 1
        let length = plan.shape[last], sa = plan.src[last], da = plan.dst[last]
        let rows = plan.count / length
        let sdt = x.dtype, ddt = out.dtype
        if rows == 1 || length > piece {
            // Long rows: pieces of rows, offsets by division per piece.
            let perRow = (length + piece - 1) / piece
            device.parallelFor(rows * perRow, costPerItem: min(length, piece)) { items in
                let scratch = Scratch(sdt == ddt ? 0 : piece)
                defer { scratch.free() }
                for item in items {
                    let row = item / perRow, lo = item % perRow * piece
                    var rem = row, so = 0, dof = 0
                    for d in stride(from: last - 1, through: 0, by: -1) {
                        let c = rem % plan.shape[d]
                        rem /= plan.shape[d]
                        so += c * plan.src[d]
                        dof += c * plan.dst[d]
                    }
                    moveRow(src, so + lo * sa, sa, sdt, dst, dof + lo * da, da, ddt, min(piece, length - lo), scratch)
                }
            }
        } else {
            device.parallelFor(rows, costPerItem: length) { range in
                let scratch = Scratch(sdt == ddt ? 0 : length)
                defer { scratch.free() }
                StridedRows.forEach(shape: plan.shape, strides: [plan.src, plan.dst], rows: range) { _, offsets in
                    moveRow(src, offsets[0], sa, sdt, dst, offsets[1], da, ddt, length, scratch)
                }
            }
        }
    }

    /// Scratch memory for converting copies: `count` floats and `count` 4-byte raw elements.
    struct Scratch {
        let count: Int
        let floats: UnsafeMutablePointer<Float>
        let raw: UnsafeMutableRawPointer

        init(_ count: Int) {
            self.count = count
            floats = .allocate(capacity: max(count, 1))
            raw = .allocate(byteCount: max(count, 1) * 4, alignment: 64)
        }

        func free() {
            floats.deallocate()
            raw.deallocate()
        }
    }

    /// Copies `n` elements from `src` (offset `so`, stride `sa`, elements of `sdt`) to `dst` (offset
    /// `dof`, stride `da`, elements of `ddt`); offsets and strides in elements. Raw when the dtypes are
    /// equal, converted through `Float` (HostConversion) otherwise, at most `scratch.count` at a time.
    @inline(__always)
    static func moveRow(_ src: UnsafeRawPointer, _ so: Int, _ sa: Int, _ sdt: DType,
                        _ dst: UnsafeMutableRawPointer, _ dof: Int, _ da: Int, _ ddt: DType, _ n: Int,
                        _ scratch: Scratch) {
        if sdt == ddt {
            let es = sdt.size
            if sa == 1 && da == 1 {
                (dst + dof * es).copyMemory(from: src + so * es, byteCount: n * es)
            } else {
                moveRaw(size: es, src, so, sa, dst, dof, da, n)
            }
            return
        }
        let ses = sdt.size, des = ddt.size
        var done = 0
        while done < n {
            let m = min(scratch.count, n - done)
            let s0 = so + done * sa, d0 = dof + done * da
            if sa == 1 {
                HostConversion.load(src + s0 * ses, dtype: sdt, into: scratch.floats, count: m)
            } else {
                moveRaw(size: ses, src, s0, sa, scratch.raw, 0, 1, m)
                HostConversion.load(scratch.raw, dtype: sdt, into: scratch.floats, count: m)
            }
            if da == 1 {
                HostConversion.store(scratch.floats, to: dst + d0 * des, dtype: ddt, count: m)
            } else {
                HostConversion.store(scratch.floats, to: scratch.raw, dtype: ddt, count: m)
                moveRaw(size: des, scratch.raw, 0, 1, dst, d0, da, m)
            }
            done += m
        }
    }

    /// Strided raw copy of `n` elements of `size` bytes.
    @inline(__always)
    static func moveRaw(size: Int, _ src: UnsafeRawPointer, _ so: Int, _ sa: Int,
                        _ dst: UnsafeMutableRawPointer, _ dof: Int, _ da: Int, _ n: Int) {
        switch size {
        case 4: moveTyped(UInt32.self, src, so, sa, dst, dof, da, n)
        case 2: moveTyped(UInt16.self, src, so, sa, dst, dof, da, n)
        default: moveTyped(UInt8.self, src, so, sa, dst, dof, da, n)
        }
    }

    @inline(__always)
    static func moveTyped<T>(_: T.Type, _ src: UnsafeRawPointer, _ so: Int, _ sa: Int,
                             _ dst: UnsafeMutableRawPointer, _ dof: Int, _ da: Int, _ n: Int) {
        let s = src.assumingMemoryBound(to: T.self) + so, d = dst.assumingMemoryBound(to: T.self) + dof
        if sa == 1 && da == 1 {
            d.update(from: s, count: n)
            return
        }
        var i = 0, si = 0, di = 0
        while i < n {
            d[di] = s[si]
            si += sa
            di += da
            i += 1
        }
    }

    /// Fills `n` elements of `size` bytes at `dst` with the low bytes of `bits`.
    static func fill(_ dst: UnsafeMutableRawPointer, size: Int, bits: UInt32, count n: Int) {
        if n <= 0 { return }
        switch size {
        case 4: dst.assumingMemoryBound(to: UInt32.self).update(repeating: bits, count: n)
        case 2: dst.assumingMemoryBound(to: UInt16.self).update(repeating: UInt16(truncatingIfNeeded: bits), count: n)
        default: dst.assumingMemoryBound(to: UInt8.self).update(repeating: UInt8(truncatingIfNeeded: bits), count: n)
        }
    }
}
