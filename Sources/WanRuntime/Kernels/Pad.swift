import Foundation
import WanShaders

extension CommandList {
    /// Constant padding: dense `out` = x with `before[d]` / `after[d]` elements of `value` added in
    /// front of / behind dimension d (non-negative). `before`/`after` may list fewer dims than x has:
    /// they then pad the last ones (e.g. `[2, 1, 1]` on [B, C, T, H, W] pads T, H, W). Converts the
    /// dtype when `out`'s differs from x's; `value` is rounded to `out`'s dtype.
    public func pad(_ x: Tensor, before: [Int], after: [Int], value: Float = 0, out: Tensor) throws {
        try checkDevice([x, out], op: "pad")
        guard before.count == after.count, before.count <= x.rank else {
            throw RuntimeError.invalidArgument("pad: before \(before) / after \(after) for rank \(x.rank): need equally many, at most the rank")
        }
        guard before.allSatisfy({ $0 >= 0 }), after.allSatisfy({ $0 >= 0 }) else {
            throw RuntimeError.invalidArgument("pad: negative padding before \(before) / after \(after)")
        }
        let lead = [Int](repeating: 0, count: x.rank - before.count)
        let front = lead + before, back = lead + after
        let expected = x.shape.indices.map { x.shape[$0] + front[$0] + back[$0] }
        guard out.shape == expected else {
            throw RuntimeError.shapeMismatch("pad \(x.shape) by \(front)/\(back) gives \(expected), output is \(out.shape)")
        }
        try checkOutput(out, notAliasing: [], op: "pad")
        if out.count == 0 { return }
        if x.count > 0 && out.overlaps(x) { throw RuntimeError.invalidArgument("pad: output overlaps the input") }
        let bytes = HostConversion.encode([value], as: out.dtype)
        let bits = bytes.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
        let plan = PadPlan(input: x.shape, strides: x.strides, before: front, output: out.shape)
        let label = "pad \(x.dtype)\(x.shape)->\(out.dtype)\(out.shape)"
        switch impl {
        case let .cpu(r):
            r.enqueue(label) { device in PadPlan.cpuPad(x, out: out, plan: plan, bits: bits, device: device) }
        case let .vulkan(r):
            guard plan.rank <= 6 else {
                throw RuntimeError.invalidArgument("pad: \(x.shape) by \(front)/\(back) needs \(plan.rank) dimensions after merging; the Vulkan kernel takes at most 6")
            }
            guard out.count < LayoutCopy.maxUnits else { throw LayoutCopy.tooLarge("pad", "the output \(out.shape)") }
            guard plan.inputReach < LayoutCopy.maxUnits else {
                throw LayoutCopy.tooLarge("pad", "the input view \(x.shape) strides \(x.strides)")
            }
            var p = PushConstants()
            p.address(x)
            p.address(out)
            p.u32(out.count)
            p.u32(plan.rank)
            p.u32(bits)
            for a in [plan.output, plan.before, plan.input, plan.strides] {
                for d in 0..<6 { p.u32(d < a.count ? a[d] : 0) }
            }
            // Same dtype: a raw copy, so any dtype of the same size shares the pipeline.
            let sized = x.dtype.size == 4 ? DType.f32 : (x.dtype.size == 2 ? DType.f16 : DType.u8)
            let codes = x.dtype == out.dtype ? [sized.code, sized.code] : [x.dtype.code, out.dtype.code]
            try r.dispatch(Kernel(name: "pad", spirv: SPIRV.pad), constants: codes,
                           push: p, groups: r.grid1D(out.count, local: 256), reads: [x], writes: [out], label: label)
        }
    }
}

/// Padding reduced to the fewest dimensions: unpadded size-1 dims dropped, and an unpadded dimension
/// merged into its outer neighbour where the input is contiguous across them. Never empty.
struct PadPlan {
    var input: [Int]
    var output: [Int]
    var before: [Int]
    var strides: [Int]

    init(input: [Int], strides: [Int], before: [Int], output: [Int]) {
        var i: [Int] = [], o: [Int] = [], b: [Int] = [], s: [Int] = []
        for d in input.indices where !(input[d] == 1 && output[d] == 1) {
            let unpadded = output[d] == input[d]
            if let k = i.indices.last, unpadded, s[k] == strides[d] * input[d] {
                i[k] *= input[d]
                o[k] *= input[d]
                b[k] *= input[d]
                s[k] = strides[d]
            } else {
                i.append(input[d])
                o.append(output[d])
                b.append(before[d])
                s.append(strides[d])
            }
        }
        if i.isEmpty { (i, o, b, s) = ([1], [1], [0], [1]) }
        self.input = i
        self.output = o
        self.before = b
        self.strides = s
    }

    var rank: Int { input.count }

    /// Largest input element offset the plan reads.
    var inputReach: Int { zip(input, strides).reduce(0) { $0 + max(0, $1.0 - 1) * $1.1 } }

    static func cpuPad(_ x: Tensor, out: Tensor, plan: PadPlan, bits: UInt32, device: CPUDevice) {
        let src = UnsafeRawPointer(x.hostPointer!), dst = out.hostPointer!
        let last = plan.rank - 1
        let width = plan.output[last], inWidth = plan.input[last], front = plan.before[last]
        let sa = plan.strides[last], des = out.dtype.size
        let rows = out.count / width
        device.parallelFor(rows, costPerItem: width) { range in
            let scratch = LayoutCopy.Scratch(x.dtype == out.dtype ? 0 : LayoutCopy.piece)
            defer { scratch.free() }
            for row in range {
                var rem = row, so = 0, inside = inWidth > 0
                for d in stride(from: last - 1, through: 0, by: -1) where inside {
                    let c = rem % plan.output[d] - plan.before[d]
                    rem /= plan.output[d]
                    if c < 0 || c >= plan.input[d] { inside = false }
                    so += c * plan.strides[d]
                }
                let base = row * width
                if !inside {
                    LayoutCopy.fill(dst + base * des, size: des, bits: bits, count: width)
                    continue
                }
                LayoutCopy.fill(dst + base * des, size: des, bits: bits, count: front)
                LayoutCopy.moveRow(src, so, sa, x.dtype, dst, base + front, 1, out.dtype, inWidth, scratch)
                LayoutCopy.fill(dst + (base + front + inWidth) * des, size: des, bits: bits, count: width - front - inWidth)
            }
        }
    }
}
