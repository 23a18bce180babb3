import WanShaders

/// Elementwise binary operations (`binary(_:_:_:out:)`).
public enum BinaryOp: UInt32, Sendable, CaseIterable {
    /// a + b
    case add
    /// a - b
    case sub
    /// a * b
    case mul
    /// a / b
    case div
    /// max(a, b); NaN if either is NaN.
    case maximum
    /// min(a, b); NaN if either is NaN.
    case minimum
}

extension CommandList {
    /// Elementwise `out = op(a, b)` with NumPy broadcasting of `a` and `b` to `out`'s shape, in fp32
    /// math. Inputs may be any strided views (transposed, sliced, size-1 or missing leading axes) of
    /// f32/f16/bf16 elements; `out` (f32/f16/bf16) must be dense with exactly the broadcast shape and may
    /// alias a dense input of the same shape exactly (in-place `a += b`). After merging axes, at most
    /// six distinct axes may remain.
    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, out: Tensor) throws {
        let name = "binary \(op)"
        try checkDevice([a, b, out], op: name)
        for t in [a, b, out] where !t.dtype.isComputeFloat {
            throw RuntimeError.unsupportedDType("\(name): \(t.dtype) (expected f32, f16 or bf16)")
        }
        guard let shape = Shape.broadcast(a.shape, b.shape) else {
            throw RuntimeError.shapeMismatch("\(name): cannot broadcast \(a.shape) with \(b.shape)")
        }
        guard shape == out.shape else {
            throw RuntimeError.shapeMismatch("\(name): \(a.shape) and \(b.shape) broadcast to \(shape), but out is \(out.shape)")
        }
        try checkOutput(out, notAliasing: [a, b], op: name)
        let layout = try ElementwiseLayout(outShape: out.shape, inputs: [a, b], op: name)
        if out.count == 0 { return }
        let label = "\(name) \(a.dtype),\(b.dtype)->\(out.dtype) \(out.shape)"
        switch impl {
        case let .cpu(r):
            r.enqueue(label) { device in
                let pa = UnsafeRawPointer(a.hostPointer!), pb = UnsafeRawPointer(b.hostPointer!), po = out.hostPointer!
                let sa = layout.strides[0].last!, sb = layout.strides[1].last!
                layout.forEachBlock(device: device, scratchBlocks: 2) { start, m, offsets, scratch in
                    let x = scratch, y = scratch + ElementwiseLayout.block
                    ElementwiseLayout.gather(pa, a.dtype, offset: offsets[0], stride: sa, count: m, into: x)
                    ElementwiseLayout.gather(pb, b.dtype, offset: offsets[1], stride: sb, count: m, into: y)
                    switch op {
                    case .add: for k in 0..<m { x[k] += y[k] }
                    case .sub: for k in 0..<m { x[k] -= y[k] }
                    case .mul: for k in 0..<m { x[k] *= y[k] }
                    case .div: for k in 0..<m { x[k] /= y[k] }
                    case .maximum:
                        for k in 0..<m where !x[k].isNaN { x[k] = y[k].isNaN ? y[k] : (y[k] > x[k] ? y[k] : x[k]) }
                    case .minimum:
                        for k in 0..<m where !x[k].isNaN { x[k] = y[k].isNaN ? y[k] : (y[k] < x[k] ? y[k] : x[k]) }
                    }
                    HostConversion.store(x, to: po + start * out.dtype.size, dtype: out.dtype, count: m)
                }
            }
        case let .vulkan(r):
            var p = PushConstants()
            p.address(a)
            p.address(b)
            p.address(out)
            p.u32(out.count)
            layout.push(into: &p)
            try r.dispatch(Kernel(name: "binary", spirv: SPIRV.binary),
                           constants: [a.dtype.code, b.dtype.code, out.dtype.code, op.rawValue, UInt32(layout.shape.count)],
                           push: p, groups: r.grid1D(out.count, local: 256), reads: [a, b], writes: [out], label: label)
        }
    }
}

/// Index layout shared by the elementwise kernels (unary, binary): the dense output's shape with
/// size-1 axes dropped and neighbouring axes merged wherever every input's strides allow it, and
/// each input's strides over that shape (0 on broadcast axes). A dense same-shape input becomes one
/// axis of stride 1, `[L, C] + [C]` becomes `[L, C]` with strides `[C, 1]` and `[0, 1]`.
struct ElementwiseLayout: Sendable {
    /// Most axes the shaders index (push-constant arrays of this length).
    static let maxRank = 6
    /// Elements per CPU work block.
    static let block = 4096

    /// Merged output shape (at least one axis).
    let shape: [Int]
    /// Per input, its strides (elements) over `shape`.
    let strides: [[Int]]

    init(outShape: [Int], inputs: [Tensor], op: String) throws {
        let full = inputs.map { Shape.broadcastStrides(shape: $0.shape, strides: $0.strides, to: outShape) }
        var shape: [Int] = []
        var strides = [[Int]](repeating: [], count: inputs.count)
        for d in outShape.indices where outShape[d] != 1 {
            if let last = shape.last, strides.indices.allSatisfy({ strides[$0].last! == full[$0][d] * outShape[d] }) {
                shape[shape.count - 1] = last * outShape[d]
                for k in strides.indices { strides[k][strides[k].count - 1] = full[k][d] }
            } else {
                shape.append(outShape[d])
                for k in strides.indices { strides[k].append(full[k][d]) }
            }
        }
        if shape.isEmpty {
            shape = [1]
            strides = strides.map { _ in [0] }
        }
        guard shape.count <= ElementwiseLayout.maxRank else {
            throw RuntimeError.invalidArgument("\(op): \(shape.count) axes remain after merging \(outShape) (at most \(ElementwiseLayout.maxRank))")
        }
        guard Shape.count(outShape) < Int(UInt32.max) else {
            throw RuntimeError.invalidArgument("\(op): \(Shape.count(outShape)) elements exceed 32-bit indexing")
        }
        for s in strides {
            guard s.allSatisfy({ $0 >= 0 }) else { throw RuntimeError.invalidArgument("\(op): negative strides \(s)") }
            let span = zip(shape, s).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
            guard span < Int(UInt32.max) else {
                throw RuntimeError.invalidArgument("\(op): an input spans \(span) elements, beyond 32-bit indexing")
            }
        }
        self.shape = shape
        self.strides = strides
    }

    /// Appends `shape` and every input's strides, each padded to `maxRank` entries.
    func push(into p: inout PushConstants) {
        let pad = ElementwiseLayout.maxRank - shape.count
        for v in shape + [Int](repeating: 1, count: pad) { p.u32(v) }
        for s in strides {
            for v in s + [Int](repeating: 0, count: pad) { p.u32(v) }
        }
    }

    /// Calls `body(start, count, offsets, scratch)` for runs of at most `block` consecutive output
    /// elements that lie in one innermost row: `start` is the first output element, `offsets[k]` the
    /// element offset of input k's first element (its innermost stride applies within the run), and
    /// `scratch` holds `scratchBlocks * block` floats private to the calling thread. Runs are spread
    /// over the CPU cores.
    func forEachBlock(device: CPUDevice, scratchBlocks: Int,
                      _ body: (_ start: Int, _ count: Int, _ offsets: [Int], _ scratch: UnsafeMutablePointer<Float>) -> Void) {
        let block = ElementwiseLayout.block
        let inner = shape.last!
        let rows = Shape.count(shape) / inner
        let outer = Array(shape.dropLast())
        if inner >= block {
            let perRow = (inner + block - 1) / block
            device.parallelFor(rows * perRow, costPerItem: block) { items in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchBlocks * block)
                defer { scratch.deallocate() }
                for item in items {
                    let row = item / perRow, chunk = item % perRow
                    var rem = row
                    var offsets = [Int](repeating: 0, count: strides.count)
                    for d in stride(from: outer.count - 1, through: 0, by: -1) {
                        let i = rem % outer[d]
                        rem /= outer[d]
                        for k in strides.indices { offsets[k] += i * strides[k][d] }
                    }
                    for k in strides.indices { offsets[k] += chunk * block * strides[k][outer.count] }
                    body(row * inner + chunk * block, min(block, inner - chunk * block), offsets, scratch)
                }
            }
        } else {
            let rowsPerItem = max(1, block / inner)
            let items = (rows + rowsPerItem - 1) / rowsPerItem
            device.parallelFor(items, costPerItem: rowsPerItem * inner) { range in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchBlocks * block)
                defer { scratch.deallocate() }
                let rowRange = range.lowerBound * rowsPerItem..<min(rows, range.upperBound * rowsPerItem)
                StridedRows.forEach(shape: shape, strides: strides, rows: rowRange) { row, offsets in
                    body(row * inner, inner, offsets, scratch)
                }
            }
        }
    }

    /// Loads `count` elements of `dtype` starting at element `offset` of `base`, `stride` elements
    /// apart, into floats.
    @inline(__always)
    static func gather(_ base: UnsafeRawPointer, _ dtype: DType, offset: Int, stride: Int, count: Int,
                       into dst: UnsafeMutablePointer<Float>) {
        let src = base + offset * dtype.size
        if stride == 1 || count == 1 {
            HostConversion.load(src, dtype: dtype, into: dst, count: count)
            return
        }
        if stride == 0 {
            HostConversion.load(src, dtype: dtype, into: dst, count: 1)
            dst.update(repeating: dst[0], count: count)
            return
        }
        switch dtype {
        case .f32:
            let s = src.assumingMemoryBound(to: Float.self)
            for k in 0..<count { dst[k] = s[k * stride] }
        case .f16:
            let s = src.assumingMemoryBound(to: Float16.self)
            for k in 0..<count { dst[k] = Float(s[k * stride]) }
        case .bf16:
            let s = src.assumingMemoryBound(to: UInt16.self)
            for k in 0..<count { dst[k] = Float(bitPattern: UInt32(s[k * stride]) << 16) }
        default:
            for k in 0..<count {
                HostConversion.load(src + k * stride * dtype.size, dtype: dtype, into: dst + k, count: 1)
            }
        }
    }
}
