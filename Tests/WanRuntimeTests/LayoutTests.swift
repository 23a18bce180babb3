import Testing
@testable import WanRuntime

/// Exact checks of the layout kernels (copy, permute, slice, concat, pad) on the CPU and Vulkan against
/// index arithmetic done here on raw bytes: every result must be bit-identical to the reference, so
/// the two devices agree bit for bit.
@Suite struct LayoutTests {
    // MARK: reference helpers

    /// Multi-index of a row-major linear index.
    static func multiIndex(_ linear: Int, _ shape: [Int]) -> [Int] {
        var idx = [Int](repeating: 0, count: shape.count), rem = linear
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            idx[d] = rem % shape[d]
            rem /= shape[d]
        }
        return idx
    }

    static func linear(_ idx: [Int], _ shape: [Int]) -> Int {
        zip(idx, shape).reduce(0) { $0 * $1.1 + $1.0 }
    }

    static func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = TestRandom(seed: seed)
        return (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 17) }
    }

    /// The bytes of element `i` of `dtype` converted to `to` (through Float, as the kernels do).
    static func convertElement(_ bytes: ArraySlice<UInt8>, from: DType, to: DType) -> [UInt8] {
        if from == to { return Array(bytes) }
        return HostConversion.encode(HostConversion.decode(Array(bytes), as: from), as: to)
    }

    /// Applies a copy from view `x` (over storage bytes `src`) into view `out` (over storage bytes
    /// `dst`) element by element, with the views' own shapes, strides and offsets.
    static func referenceCopy(_ src: [UInt8], _ x: Tensor, into dst: inout [UInt8], _ out: Tensor) {
        let ses = x.dtype.size, des = out.dtype.size
        for j in 0..<x.count {
            let idx = multiIndex(j, x.shape)
            let so = x.offset + zip(idx, x.strides).reduce(0) { $0 + $1.0 * $1.1 }
            let dof = out.offset + zip(idx, out.strides).reduce(0) { $0 + $1.0 * $1.1 }
            let e = convertElement(src[so * ses..<(so + 1) * ses], from: x.dtype, to: out.dtype)
            dst.replaceSubrange(dof * des..<(dof + 1) * des, with: e)
        }
    }

    static func permutations(_ n: Int) -> [[Int]] {
        if n == 0 { return [[]] }
        return permutations(n - 1).flatMap { p in (0...p.count).map { i in var q = p; q.insert(n - 1, at: i); return q } }
    }

    static func firstMismatch(_ a: [UInt8], _ b: [UInt8]) -> Int? {
        if a.count != b.count { return -1 }
        return a.indices.first { a[$0] != b[$0] }
    }

    // MARK: copy / permute / slice

    /// Every permutation of odd-shaped 2-, 3- and 4-D tensors (small ones and ones large enough for the
    /// tiled transpose), for 4-, 2- and 1-byte elements, all recorded in one list per device.
    @Test func permuteAllOrders() throws {
        let shapes = [[3, 5, 7], [2, 3, 17, 19], [3, 40, 50], [37, 70]]
        for dtype in [DType.f32, .bf16, .u8] {
            for (si, shape) in shapes.enumerated() {
                let n = shape.reduce(1, *)
                let input = Self.randomBytes(n * dtype.size, seed: UInt64(100 + si))
                let orders = Self.permutations(shape.count)
                for device in try TestDevices.all() {
                    let x = try device.tensor(bytes: input, shape: shape, dtype: dtype)
                    let cl = try CommandList(device: device)
                    var outs: [Tensor] = []
                    for order in orders {
                        let out = try device.empty(order.map { shape[$0] }, dtype: dtype)
                        try cl.permute(x, order: order, out: out)
                        outs.append(out)
                    }
                    try cl.run()
                    for (order, out) in zip(orders, outs) {
                        let got = try device.readBytes(out)
                        var expected = [UInt8](repeating: 0, count: got.count)
                        let es = dtype.size
                        for j in 0..<n {
                            let oi = Self.multiIndex(j, out.shape)
                            var xi = [Int](repeating: 0, count: shape.count)
                            for (i, d) in order.enumerated() { xi[d] = oi[i] }
                            let s = Self.linear(xi, shape)
                            expected.replaceSubrange(j * es..<(j + 1) * es, with: input[s * es..<(s + 1) * es])
                        }
                        let bad = Self.firstMismatch(got, expected)
                        #expect(bad == nil, "permute \(shape) by \(order) \(dtype) on \(device.name): byte \(bad ?? 0) differs")
                    }
                }
            }
        }
        TestDevices.checkValidation()
    }

    /// Slices (of dense and of permuted views) copied into dense tensors, and dense tensors copied into
    /// slices of a bigger tensor (whose other elements must stay untouched).
    @Test func slicesIntoAndOutOf() throws {
        let shape = [5, 7, 9]
        for dtype in [DType.f32, .f16, .u8] {
            let n = shape.reduce(1, *), es = dtype.size
            let input = Self.randomBytes(n * es, seed: 7)
            let background = Self.randomBytes(n * es, seed: 8)
            for device in try TestDevices.all() {
                let x = try device.tensor(bytes: input, shape: shape, dtype: dtype)
                // Out of slices: (source view, dense destination).
                var reads: [(Tensor, Tensor)] = []
                for dim in 0..<3 {
                    for range in [0..<1, 1..<4, 2..<shape[dim]] {
                        let v = try x.sliced(dim: dim, range)
                        reads.append((v, try device.empty(v.shape, dtype: dtype)))
                    }
                }
                let pv = try x.permuted([2, 0, 1]).sliced(dim: 1, 1..<4).sliced(dim: 0, 3..<8)
                reads.append((pv, try device.empty(pv.shape, dtype: dtype)))
                // Into slices: (dense source, destination view over a prefilled tensor).
                var writes: [(Tensor, Tensor, Tensor)] = []
                for (dim, range) in [(0, 1..<3), (1, 2..<7), (2, 4..<7), (2, 0..<9)] {
                    let big = try device.tensor(bytes: background, shape: shape, dtype: dtype)
                    let view = try big.sliced(dim: dim, range)
                    let src = try device.tensor(bytes: Array(input[0..<view.count * es]), shape: view.shape, dtype: dtype)
                    writes.append((src, view, big))
                }
                let big = try device.tensor(bytes: background, shape: shape, dtype: dtype)
                let view = try big.permuted([1, 2, 0]).sliced(dim: 1, 2..<8).sliced(dim: 2, 1..<4)
                let src = try device.tensor(bytes: Array(input[0..<view.count * es]), shape: view.shape, dtype: dtype)
                writes.append((src, view, big))

                let cl = try CommandList(device: device)
                for (v, out) in reads { try cl.copy(v, into: out) }
                for (s, view, _) in writes { try cl.copy(s, into: view) }
                try cl.run()
                for (v, out) in reads {
                    var expected = [UInt8](repeating: 0, count: out.byteCount)
                    Self.referenceCopy(input, v, into: &expected, out)
                    let bad = Self.firstMismatch(try device.readBytes(out), expected)
                    #expect(bad == nil, "copy of slice \(v.shape) strides \(v.strides) offset \(v.offset) \(dtype) on \(device.name): byte \(bad ?? 0)")
                }
                for (s, view, whole) in writes {
                    var expected = background
                    Self.referenceCopy(try device.readBytes(s), s, into: &expected, view)
                    let bad = Self.firstMismatch(try device.readBytes(whole), expected)
                    #expect(bad == nil, "copy into slice \(view.shape) strides \(view.strides) offset \(view.offset) \(dtype) on \(device.name): byte \(bad ?? 0)")
                }
            }
        }
        TestDevices.checkValidation()
    }

    /// Copies that convert the dtype, from strided views (including a tiled transpose) into dense and
    /// strided destinations, bit-exact against HostConversion, so CPU and Vulkan agree bit for bit.
    @Test func convertingCopies() throws {
        var rng = TestRandom(seed: 21)
        let shape = [7, 20, 37]
        var values = rng.floats(shape.reduce(1, *), -300, 300)
        values[0] = .infinity
        values[1] = -0.0
        values[2] = 1e-6
        values[3] = 70000
        for (from, to) in [(DType.f32, DType.f16), (.f32, .bf16), (.f32, .f8e4m3fn), (.bf16, .f32), (.f16, .bf16), (.f32, .i32)] {
            let input = HostConversion.encode(values, as: from)
            var results: [[[UInt8]]] = []
            for device in try TestDevices.all() {
                let x = try device.tensor(bytes: input, shape: shape, dtype: from)
                let views = [x, try x.permuted([2, 0, 1]), try x.permuted([0, 2, 1]).sliced(dim: 1, 3..<30),
                             try x.sliced(dim: 2, 1..<36)]
                let cl = try CommandList(device: device)
                var outs: [Tensor] = []
                for v in views {
                    let out = try device.empty(v.shape, dtype: to)
                    try cl.copy(v, into: out)
                    outs.append(out)
                }
                // A strided destination: a transposed view of a dense tensor.
                let t = try device.zeros([shape[2], shape[1], shape[0]], dtype: to)
                try cl.copy(x, into: try t.permuted([2, 1, 0]))
                try cl.run()
                var got: [[UInt8]] = []
                for (v, out) in zip(views, outs) {
                    var expected = [UInt8](repeating: 0, count: out.byteCount)
                    Self.referenceCopy(input, v, into: &expected, out)
                    let r = try device.readBytes(out)
                    let bad = Self.firstMismatch(r, expected)
                    #expect(bad == nil, "\(from)->\(to) copy of \(v.shape) strides \(v.strides) on \(device.name): byte \(bad ?? 0)")
                    got.append(r)
                }
                var expected = [UInt8](repeating: 0, count: t.byteCount)
                Self.referenceCopy(input, x, into: &expected, try t.permuted([2, 1, 0]))
                let r = try device.readBytes(t)
                #expect(Self.firstMismatch(r, expected) == nil, "\(from)->\(to) copy into a transposed view on \(device.name)")
                got.append(r)
                results.append(got)
            }
            if results.count == 2 { #expect(results[0] == results[1], "\(from)->\(to): CPU and Vulkan differ") }
        }
        TestDevices.checkValidation()
    }

    // MARK: concat

    /// Concatenation along every dim of a 3-D and a 5-D (VAE-like) tensor, 3 inputs of different
    /// sizes, for 4-, 2- and 1-byte elements; on Vulkan dense same-dtype inputs take one dispatch.
    @Test func concatEachDim() throws {
        for (base, sizes) in [([4, 5, 6], [2, 3, 1]), ([1, 3, 2, 5, 7], [3, 1, 2])] {
            for dim in base.indices {
                for dtype in [DType.f32, .bf16, .u8] {
                    var shapes: [[Int]] = []
                    for s in sizes { var sh = base; sh[dim] = s; shapes.append(sh) }
                    var outShape = base
                    outShape[dim] = sizes.reduce(0, +)
                    let inputs = shapes.enumerated().map { Self.randomBytes($0.element.reduce(1, *) * dtype.size, seed: UInt64(30 + $0.offset)) }
                    let expected = Self.referenceConcat(inputs, shapes: shapes, dim: dim, outShape: outShape, dtypes: [dtype, dtype, dtype], out: dtype)
                    for device in try TestDevices.all() {
                        let xs = try zip(inputs, shapes).map { try device.tensor(bytes: $0.0, shape: $0.1, dtype: dtype) }
                        let out = try device.empty(outShape, dtype: dtype)
                        let cl = try CommandList(device: device)
                        try cl.concat(xs, dim: dim, out: out)
                        if !device.isCPU { #expect(cl.kernelCount == 1, "dense concat should be one dispatch") }
                        try cl.run()
                        let bad = Self.firstMismatch(try device.readBytes(out), expected)
                        #expect(bad == nil, "concat \(shapes) dim \(dim) \(dtype) on \(device.name): byte \(bad ?? 0)")
                    }
                }
            }
        }
        TestDevices.checkValidation()
    }

    /// Concat of six inputs (two dispatch groups), of an empty input, of a strided input and of an
    /// input of another dtype (the per-input copy path).
    @Test func concatMixedInputs() throws {
        let dim = 1
        let sizes = [1, 2, 3, 0, 2, 1]
        let shapes = sizes.map { [3, $0, 5] }
        let outShape = [3, sizes.reduce(0, +), 5]
        let dtypes: [[DType]] = [[.f32, .f32, .f32, .f32, .f32, .f32], [.f32, .f16, .bf16, .f32, .f32, .f32]]
        for types in dtypes {
            let inputs = zip(shapes, types).enumerated().map { k, st in
                var r = TestRandom(seed: UInt64(40 + k))
                return HostConversion.encode(r.floats(st.0.reduce(1, *)), as: st.1)
            }
            let expected = Self.referenceConcat(inputs, shapes: shapes, dim: dim, outShape: outShape, dtypes: types, out: .f32)
            for device in try TestDevices.all() {
                var xs = try zip(zip(inputs, shapes), types).map { try device.tensor(bytes: $0.0.0, shape: $0.0.1, dtype: $0.1) }
                // Input 2 as a strided view holding the same elements.
                let t = try device.empty([3, 5, 3], dtype: types[2])
                let cl = try CommandList(device: device)
                try cl.permute(xs[2], order: [0, 2, 1], out: t)
                xs[2] = try t.permuted([0, 2, 1])
                let out = try device.empty(outShape, dtype: .f32)
                try cl.concat(xs, dim: dim, out: out)
                try cl.run()
                let bad = Self.firstMismatch(try device.readBytes(out), expected)
                #expect(bad == nil, "concat of \(types) on \(device.name): byte \(bad ?? 0)")
                // Six dense same-dtype inputs: two dispatches (4 + 2 inputs).
                if types.allSatisfy({ $0 == .f32 }) {
                    let dense = try zip(inputs, shapes).map { try device.tensor(bytes: $0.0, shape: $0.1, dtype: .f32) }
                    let out2 = try device.empty(outShape, dtype: .f32)
                    let cl2 = try CommandList(device: device)
                    try cl2.concat(dense, dim: dim, out: out2)
                    if !device.isCPU { #expect(cl2.kernelCount == 2) }
                    try cl2.run()
                    #expect(Self.firstMismatch(try device.readBytes(out2), expected) == nil, "six-way concat on \(device.name)")
                }
            }
        }
        TestDevices.checkValidation()
    }

    static func referenceConcat(_ inputs: [[UInt8]], shapes: [[Int]], dim: Int, outShape: [Int], dtypes: [DType], out: DType) -> [UInt8] {
        let n = outShape.reduce(1, *), des = out.size
        var result = [UInt8](repeating: 0, count: n * des)
        for j in 0..<n {
            var idx = multiIndex(j, outShape)
            var k = 0
            while idx[dim] >= shapes[k][dim] { idx[dim] -= shapes[k][dim]; k += 1 }
            let s = linear(idx, shapes[k]), es = dtypes[k].size
            let e = convertElement(inputs[k][s * es..<(s + 1) * es], from: dtypes[k], to: out)
            result.replaceSubrange(j * des..<(j + 1) * des, with: e)
        }
        return result
    }

    // MARK: pad

    /// Asymmetric constant padding of 5-D tensors (the VAE's causal and downsampling pads, every dim
    /// padded), nonzero values, strided input, dtype conversion and an empty input dim.
    @Test func padCases() throws {
        struct Case { var shape: [Int]; var before: [Int]; var after: [Int]; var value: Float; var from: DType; var to: DType; var permute: [Int]? }
        let cases = [
            Case(shape: [1, 3, 2, 5, 7], before: [2, 1, 1], after: [0, 1, 1], value: 0, from: .f32, to: .f32, permute: nil),
            Case(shape: [1, 3, 2, 5, 7], before: [0, 0], after: [1, 1], value: 0, from: .f32, to: .f32, permute: nil),
            Case(shape: [2, 3, 4, 5, 6], before: [1, 0, 2, 1, 3], after: [0, 2, 1, 3, 0], value: -2.5, from: .f32, to: .f32, permute: nil),
            Case(shape: [2, 3, 4, 5, 6], before: [0, 1, 0, 0, 2], after: [1, 0, 0, 2, 1], value: 0.1, from: .f32, to: .bf16, permute: nil),
            Case(shape: [3, 4, 5], before: [1, 2, 0], after: [0, 1, 3], value: 7, from: .bf16, to: .bf16, permute: nil),
            Case(shape: [3, 4, 5], before: [1, 1], after: [2, 0], value: -1, from: .u8, to: .u8, permute: nil),
            Case(shape: [4, 5, 6], before: [0, 2, 1], after: [1, 0, 2], value: 3, from: .f16, to: .f32, permute: [2, 0, 1]),
            Case(shape: [2, 0, 3], before: [0, 1, 0], after: [0, 0, 1], value: 5, from: .f32, to: .f32, permute: nil),
        ]
        var rng = TestRandom(seed: 50)
        for c in cases {
            let n = c.shape.reduce(1, *)
            let input = HostConversion.encode(rng.floats(n, -4, 4), as: c.from)
            // The padded view: x itself or a permutation of it.
            let viewShape = c.permute.map { p in p.map { c.shape[$0] } } ?? c.shape
            let full = [Int](repeating: 0, count: viewShape.count - c.before.count)
            let before = full + c.before, after = full + c.after
            let outShape = viewShape.indices.map { viewShape[$0] + before[$0] + after[$0] }
            let valueBytes = HostConversion.encode([c.value], as: c.to)
            var expected: [UInt8] = []
            for j in 0..<outShape.reduce(1, *) {
                let oi = Self.multiIndex(j, outShape)
                let vi = oi.indices.map { oi[$0] - before[$0] }
                if vi.indices.allSatisfy({ vi[$0] >= 0 && vi[$0] < viewShape[$0] }) {
                    var xi = vi
                    if let p = c.permute { for (i, d) in p.enumerated() { xi[d] = vi[i] } }
                    let s = Self.linear(xi, c.shape), es = c.from.size
                    expected += Self.convertElement(input[s * es..<(s + 1) * es], from: c.from, to: c.to)
                } else {
                    expected += valueBytes
                }
            }
            for device in try TestDevices.all() {
                let x = try device.tensor(bytes: input, shape: c.shape, dtype: c.from)
                let view = try c.permute.map { try x.permuted($0) } ?? x
                let out = try device.empty(outShape, dtype: c.to)
                let cl = try CommandList(device: device)
                try cl.pad(view, before: c.before, after: c.after, value: c.value, out: out)
                try cl.run()
                let bad = Self.firstMismatch(try device.readBytes(out), expected)
                #expect(bad == nil, "pad \(viewShape) by \(c.before)/\(c.after) \(c.from)->\(c.to) on \(device.name): byte \(bad ?? 0)")
            }
        }
        TestDevices.checkValidation()
    }

    // MARK: errors

    static func expectError(_ kind: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                            _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("\(what): no error thrown", sourceLocation: sourceLocation)
        } catch let e as RuntimeError {
            let name: String
            switch e {
            case .shapeMismatch: name = "shape"
            case .invalidArgument: name = "argument"
            case .deviceMismatch: name = "device"
            default: name = "other"
            }
            #expect(name == kind, "\(what): \(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(what): \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func badArguments() throws {
        for device in try TestDevices.all() {
            let cl = try CommandList(device: device)
            let a = try device.zeros([2, 3]), b = try device.zeros([2, 3, 1]), c = try device.zeros([3, 2])
            Self.expectError("shape", "copy rank mismatch") { try cl.copy(a, into: b) }
            Self.expectError("shape", "copy shape mismatch") { try cl.copy(a, into: c) }
            Self.expectError("argument", "copy onto an overlapping view") { try cl.copy(a.sliced(dim: 1, 0..<2), into: a.sliced(dim: 1, 1..<3)) }
            let zeroStride = Tensor(storage: c.storage, dtype: .f32, shape: [2, 3], strides: [1, 0])
            Self.expectError("argument", "copy into a self-overlapping view") { try cl.copy(a, into: zeroStride) }
            Self.expectError("argument", "permute bad order") { try cl.permute(a, order: [0, 0], out: c) }
            Self.expectError("shape", "permute wrong output") { try cl.permute(a, order: [0, 1], out: c) }
            Self.expectError("argument", "permute in place") { try cl.permute(a, order: [1, 0], out: a.reshaped([3, 2])) }
            Self.expectError("argument", "concat dim too large") { try cl.concat([a, a], dim: 2, out: try device.zeros([4, 3])) }
            Self.expectError("argument", "concat negative dim") { try cl.concat([a, a], dim: -1, out: try device.zeros([4, 3])) }
            Self.expectError("argument", "concat no inputs") { try cl.concat([], dim: 0, out: a) }
            Self.expectError("shape", "concat rank mismatch") { try cl.concat([a, b], dim: 0, out: try device.zeros([4, 3])) }
            Self.expectError("shape", "concat other dim mismatch") { try cl.concat([a, c], dim: 0, out: try device.zeros([5, 3])) }
            Self.expectError("shape", "concat wrong total") { try cl.concat([a, a], dim: 0, out: try device.zeros([5, 3])) }
            Self.expectError("argument", "pad negative") { try cl.pad(a, before: [-1, 0], after: [1, 0], out: a) }
            Self.expectError("argument", "pad too many dims") { try cl.pad(a, before: [0, 0, 0], after: [0, 0, 0], out: a) }
            Self.expectError("argument", "pad unequal lists") { try cl.pad(a, before: [1], after: [0, 0], out: a) }
            Self.expectError("shape", "pad wrong output") { try cl.pad(a, before: [1], after: [1], out: try device.zeros([2, 4])) }
            if !device.isCPU {
                // Mixed devices.
                let h = try TestDevices.cpu.zeros([2, 3])
                Self.expectError("device", "copy across devices") { try cl.copy(h, into: a) }
                Self.expectError("device", "permute across devices") { try cl.permute(a, order: [1, 0], out: try TestDevices.cpu.zeros([3, 2])) }
                Self.expectError("device", "concat across devices") { try cl.concat([a, h], dim: 0, out: try device.zeros([4, 3])) }
                Self.expectError("device", "pad across devices") { try cl.pad(h, before: [1], after: [0], out: try device.zeros([2, 4])) }
                // A view reaching 2^32 elements exceeds the Vulkan kernels' 32-bit offsets.
                // (Rows of 3 f32 cannot be copied in wider units, so the offsets stay in elements.)
                let huge = Tensor(storage: a.storage, dtype: .f32, shape: [2, 3], strides: [1 << 32, 1])
                Self.expectError("argument", "copy of a view beyond 2^32 elements") { try cl.copy(huge, into: try device.zeros([2, 3])) }
            }
            #expect(cl.kernelCount == 0)
        }
        TestDevices.checkValidation()
    }
}
