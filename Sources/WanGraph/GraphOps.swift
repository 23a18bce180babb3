import WanRuntime

/// The runtime's kernels as graph ops: each infers its output's shape (throwing early on operands
/// that cannot fit) and records the kernel when the graph is compiled. Optional operands (`bias`,
/// `weight`, ...) are passed as values or nil.
extension Graph {
    /// Splits the resolved input tensors back into the required ones and the optional ones (nil kept).
    private func operands(_ required: [Value], _ optional: [Value?]) -> ([Value], ([Tensor]) -> ([Tensor], [Tensor?])) {
        let present = optional.compactMap { $0 }
        let split = { (ts: [Tensor]) -> ([Tensor], [Tensor?]) in
            var rest = ts.dropFirst(required.count).makeIterator()
            return (Array(ts.prefix(required.count)), optional.map { $0 == nil ? nil : rest.next() })
        }
        return (required + present, split)
    }

    private func one(_ label: String, _ inputs: [Value], _ shape: [Int], _ dtype: DType,
                     _ record: @escaping (CommandList, [Tensor], Tensor) throws -> Void) throws -> Value {
        try op(label, inputs: inputs, outputs: [(shape, dtype)]) { cl, ins, outs in try record(cl, ins, outs[0]) }[0]
    }

    /// op(A)·op(B) with bias, activation and residual (see `CommandList.gemm`), batched.
    public func gemm(_ a: Value, _ b: Value, transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1,
                     bias: Value? = nil, activation: Activation = .none, residual: Value? = nil, weightScale: Value? = nil,
                     dtype: DType? = nil) throws -> Value {
        let sa = shape(a), sb = shape(b)
        guard sa.count >= 2, sb.count >= 2 else { throw RuntimeError.shapeMismatch("gemm: ranks of \(sa) and \(sb)") }
        let m = transposeA ? sa[sa.count - 1] : sa[sa.count - 2], k = transposeA ? sa[sa.count - 2] : sa[sa.count - 1]
        let kb = transposeB ? sb[sb.count - 1] : sb[sb.count - 2], n = transposeB ? sb[sb.count - 2] : sb[sb.count - 1]
        let ba = Array(sa.dropLast(2)), bb = Array(sb.dropLast(2))
        guard k == kb, ba.isEmpty || bb.isEmpty || ba == bb else { throw RuntimeError.shapeMismatch("gemm: \(sa) · \(sb)") }
        let (ins, split) = operands([a, b], [bias, residual, weightScale])
        let fast = fp16Compute
        return try one("gemm", ins, (ba.isEmpty ? bb : ba) + [m, n], dtype ?? self.dtype(a)) { cl, ts, out in
            let (r, o) = split(ts)
            try cl.gemm(r[0], r[1], out: out, transposeA: transposeA, transposeB: transposeB, alpha: alpha, bias: o[0],
                        activation: activation, residual: o[1], weightScale: o[2], fp16Compute: fast)
        }
    }

    /// A Linear layer: x [..., in] · Wᵀ (W [out, in]) + bias, with an optional fused activation.
    public func linear(_ x: Value, weight: Value, bias: Value? = nil, activation: Activation = .none,
                       residual: Value? = nil, weightScale: Value? = nil, dtype: DType? = nil) throws -> Value {
        let sx = shape(x), sw = shape(weight)
        guard sw.count == 2, let last = sx.last, last == sw[1] else { throw RuntimeError.shapeMismatch("linear: x \(sx), weight \(sw)") }
        let rows = sx.dropLast().reduce(1, *)
        let flat = try reshape(x, [rows, last])
        let y = try gemm(flat, weight, transposeB: true, bias: bias, activation: activation,
                         residual: try residual.map { try reshape($0, [rows, sw[0]]) }, weightScale: weightScale, dtype: dtype)
        return try reshape(y, Array(sx.dropLast()) + [sw[0]])
    }

    /// An elementwise function (see `UnaryOp`), out = op(x)·scale + shift.
    public func unary(_ o: UnaryOp, _ x: Value, scale: Float = 1, shift: Float = 0, dtype: DType? = nil) throws -> Value {
        try one("unary \(o)", [x], shape(x), dtype ?? self.dtype(x)) { cl, ts, out in
            try cl.unary(o, ts[0], out: out, scale: scale, shift: shift)
        }
    }

    /// An elementwise binary op with NumPy broadcasting.
    public func binary(_ o: BinaryOp, _ a: Value, _ b: Value, dtype: DType? = nil) throws -> Value {
        guard let s = Shape.broadcast(shape(a), shape(b)) else {
            throw RuntimeError.shapeMismatch("\(o): \(shape(a)) and \(shape(b)) do not broadcast")
        }
        return try one("binary \(o)", [a, b], s, dtype ?? self.dtype(a)) { cl, ts, out in try cl.binary(o, ts[0], ts[1], out: out) }
    }

    /// a + b (broadcasting).
    public func add(_ a: Value, _ b: Value) throws -> Value { try binary(.add, a, b) }
    /// a · b (broadcasting).
    public func mul(_ a: Value, _ b: Value) throws -> Value { try binary(.mul, a, b) }

    /// LayerNorm over the last dimension (fp32 statistics), optional affine weight and bias.
    public func layerNorm(_ x: Value, weight: Value? = nil, bias: Value? = nil, eps: Float, dtype: DType? = nil) throws -> Value {
        let (ins, split) = operands([x], [weight, bias])
        return try one("layerNorm", ins, shape(x), dtype ?? self.dtype(x)) { cl, ts, out in
            let (r, o) = split(ts)
            try cl.layerNorm(r[0], weight: o[0], bias: o[1], eps: eps, out: out)
        }
    }

    /// RMSNorm over the last dimension (fp32 statistics), optional weight.
    public func rmsNorm(_ x: Value, weight: Value? = nil, eps: Float, dtype: DType? = nil) throws -> Value {
        let (ins, split) = operands([x], [weight])
        return try one("rmsNorm", ins, shape(x), dtype ?? self.dtype(x)) { cl, ts, out in
            let (r, o) = split(ts)
            try cl.rmsNorm(r[0], weight: o[0], eps: eps, out: out)
        }
    }

    /// Softmax over the last dimension of x·scale.
    public func softmax(_ x: Value, scale: Float = 1, dtype: DType? = nil) throws -> Value {
        try one("softmax", [x], shape(x), dtype ?? self.dtype(x)) { cl, ts, out in try cl.softmax(ts[0], out: out, scale: scale) }
    }

    /// Attention of q [B, Lq, H, D] over k, v [B, Lk, H, D] (see `CommandList.attention`).
    public func attention(q: Value, k: Value, v: Value, scale: Float? = nil, keyLengths: [Int]? = nil, dtype: DType? = nil) throws -> Value {
        guard shape(q).count == 4 else { throw RuntimeError.shapeMismatch("attention: q \(shape(q)) is not [B, L, H, D]") }
        let fast = fp16Compute
        return try one("attention", [q, k, v], shape(q), dtype ?? self.dtype(q)) { cl, ts, out in
            try cl.attention(q: ts[0], k: ts[1], v: ts[2], out: out, scale: scale, keyLengths: keyLengths, fp16Compute: fast)
        }
    }

    /// Wan's 3D RoPE on x [B, L, H, D] with a table built for the grid. The table's tensor is an operand
    /// too (a parameter), so that the graph's footprint counts the device memory it holds.
    public func rope(_ x: Value, table: RoPETable) throws -> Value {
        let t = parameter("rope table", table.table)
        return try one("rope", [x, t], shape(x), dtype(x)) { cl, ts, out in try cl.rope(ts[0], table: table, out: out) }
    }

    /// x converted to `dtype`.
    public func convert(_ x: Value, to dtype: DType) throws -> Value {
        try one("convert", [x], shape(x), dtype) { cl, ts, out in
            if ts[0].isContiguous { try cl.convert(ts[0], out: out) } else { try cl.copy(ts[0], into: out) }
        }
    }

    /// A dense copy of a view (e.g. after `permute`), optionally converting the dtype.
    public func contiguous(_ x: Value, dtype: DType? = nil) throws -> Value {
        try one("copy", [x], shape(x), dtype ?? self.dtype(x)) { cl, ts, out in try cl.copy(ts[0], into: out) }
    }

    /// Concatenation along `dim`.
    public func concat(_ xs: [Value], dim: Int) throws -> Value {
        guard let first = xs.first, dim >= 0, dim < shape(first).count else { throw RuntimeError.invalidArgument("concat: dim \(dim)") }
        var s = shape(first)
        s[dim] = xs.reduce(0) { $0 + shape($1)[dim] }
        return try one("concat", xs, s, dtype(first)) { cl, ts, out in try cl.concat(ts, dim: dim, out: out) }
    }

    /// Constant padding of the last dimensions.
    public func pad(_ x: Value, before: [Int], after: [Int], value: Float = 0) throws -> Value {
        var s = shape(x)
        guard before.count == after.count, before.count <= s.count else { throw RuntimeError.invalidArgument("pad: \(before) / \(after)") }
        let off = s.count - before.count
        for i in before.indices { s[off + i] += before[i] + after[i] }
        return try one("pad", [x], s, dtype(x)) { cl, ts, out in try cl.pad(ts[0], before: before, after: after, value: value, out: out) }
    }

    /// Causal 3D convolution (see `CommandList.conv3d`), optional bias, chunk cache and residual.
    public func conv3d(_ x: Value, weight: Value, bias: Value? = nil, cache: Value? = nil, params: Conv3DParams,
                       residual: Value? = nil, dtype: DType? = nil) throws -> Value {
        let sx = shape(x), sw = shape(weight)
        guard sx.count == 5, sw.count == 5 else { throw RuntimeError.shapeMismatch("conv3d: x \(sx), weight \(sw)") }
        let o = try params.outputSize(frames: sx[2], height: sx[3], width: sx[4], cacheFrames: cache.map { shape($0)[2] } ?? 0)
        let (ins, split) = operands([x, weight], [bias, cache, residual])
        let fast = fp16Compute
        return try one("conv3d", ins, [sx[0], sw[0], o.t, o.h, o.w], dtype ?? self.dtype(x)) { cl, ts, out in
            let (r, opt) = split(ts)
            try cl.conv3d(r[0], weight: r[1], bias: opt[0], cache: opt[1], params: params, residual: opt[2], out: out,
                          fp16Compute: fast)
        }
    }

    /// Rows of `table` [V, D] picked by the i32 `ids` (any shape): the result is `ids.shape + [D]`
    /// (see `CommandList.gather`; ids outside [0, V) give zero rows).
    public func gather(_ table: Value, ids: Value, dtype: DType? = nil) throws -> Value {
        let st = shape(table)
        guard st.count == 2 else { throw RuntimeError.shapeMismatch("gather: table \(st) is not [V, D]") }
        guard self.dtype(ids) == .i32 else { throw RuntimeError.unsupportedDType("gather: ids are \(self.dtype(ids)); expected i32") }
        return try op("gather", inputs: [table, ids], outputs: [(shape(ids) + [st[1]], dtype ?? self.dtype(table))]) { cl, ins, outs in
            try cl.gather(ins[0], ids: ins[1], out: outs[0])
        }[0]
    }

    // MARK: views (no copy)

    /// The same elements with another shape (one dimension may be -1); the value must be dense when compiled.
    public func reshape(_ x: Value, _ newShape: [Int]) throws -> Value {
        let count = Shape.count(shape(x))
        var dims = newShape
        if let i = dims.firstIndex(of: -1) {
            let known = dims.filter { $0 != -1 }.reduce(1, *)
            guard known > 0, count % known == 0 else { throw RuntimeError.shapeMismatch("reshape \(shape(x)) to \(newShape)") }
            dims[i] = count / known
        }
        guard Shape.count(dims) == count else { throw RuntimeError.shapeMismatch("reshape \(shape(x)) to \(newShape)") }
        if dims == shape(x) { return x }
        return try view(x, shape: dims, label: "reshape") { try $0.reshaped(dims) }
    }

    /// Dimensions reordered (out dim i = x dim order[i]), as a view.
    public func permute(_ x: Value, _ order: [Int]) throws -> Value {
        let s = shape(x)
        guard order.sorted() == Array(0..<s.count) else { throw RuntimeError.invalidArgument("permute \(order) of rank \(s.count)") }
        return try view(x, shape: order.map { s[$0] }, label: "permute") { try $0.permuted(order) }
    }

    /// `range` along dimension `dim`, as a view.
    public func slice(_ x: Value, dim: Int, _ range: Range<Int>) throws -> Value {
        var s = shape(x)
        guard dim >= 0, dim < s.count, range.lowerBound >= 0, range.upperBound <= s[dim] else {
            throw RuntimeError.invalidArgument("slice \(range) of dim \(dim) of \(s)")
        }
        s[dim] = range.count
        return try view(x, shape: s, label: "slice") { try $0.sliced(dim: dim, range) }
    }
}
