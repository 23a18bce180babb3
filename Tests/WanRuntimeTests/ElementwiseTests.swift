import Foundation
import Testing
@testable import WanRuntime

/// The elements of a view in row-major order, read from the values of its whole (dense) storage.
private func viewElements(_ view: Tensor, storage: [Float]) -> [Float] {
    let n = view.count
    var out = [Float](repeating: 0, count: n)
    var index = [Int](repeating: 0, count: view.rank)
    for i in 0..<n {
        var o = view.offset
        for d in 0..<view.rank { o += index[d] * view.strides[d] }
        out[i] = storage[o]
        var d = view.rank - 1
        while d >= 0 {
            index[d] += 1
            if index[d] < view.shape[d] { break }
            index[d] = 0
            d -= 1
        }
    }
    return out
}

/// Row-major values of `shape` broadcast (NumPy rules) to `target`.
private func broadcastValues(_ values: [Float], _ shape: [Int], to target: [Int]) -> [Float] {
    let strides = Shape.broadcastStrides(shape: shape, strides: Shape.contiguousStrides(shape), to: target)
    let n = Shape.count(target)
    var out = [Float](repeating: 0, count: n)
    for i in 0..<n {
        var rem = i, o = 0
        for d in stride(from: target.count - 1, through: 0, by: -1) {
            o += (rem % target[d]) * strides[d]
            rem /= target[d]
        }
        out[i] = values[o]
    }
    return out
}

/// Float64 definitions of the unary ops, as the spec writes them.
private func referenceUnary(_ op: UnaryOp, _ x: Double) -> Double {
    switch op {
    case .identity: return x
    case .geluTanh: return 0.5 * x * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
    case .geluErf: return 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot()))
    case .silu: return x * (1 / (1 + Foundation.exp(-x)))
    case .sigmoid: return 1 / (1 + Foundation.exp(-x))
    case .tanh: return Foundation.tanh(x)
    case .exp: return Foundation.exp(x)
    case .neg: return -x
    case .abs: return Swift.abs(x)
    case .sqrt: return x.squareRoot()
    case .rsqrt: return 1 / x.squareRoot()
    case .square: return x * x
    case .relu: return Swift.max(x, 0)
    }
}

private func referenceBinary(_ op: BinaryOp, _ a: Double, _ b: Double) -> Double {
    switch op {
    case .add: return a + b
    case .sub: return a - b
    case .mul: return a * b
    case .div: return a / b
    case .maximum: return a.isNaN || b.isNaN ? .nan : Swift.max(a, b)
    case .minimum: return a.isNaN || b.isNaN ? .nan : Swift.min(a, b)
    }
}

/// Elementwise check: |got − want| ≤ rtol·|want| + atol, with `want` rounded to `dtype` first (so
/// overflow to inf and NaN are compared as what the output dtype holds).
private func expectClose(_ got: [Float], _ want: [Double], dtype: DType, rtol: Double? = nil, atol: Double = 1e-6,
                         _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.count == want.count, "\(what): \(got.count) results, want \(want.count)", sourceLocation: sourceLocation)
    guard got.count == want.count else { return }
    let w = quantized(want.map { Float($0) }, dtype)
    let r = rtol ?? tolerance(dtype)
    var bad: [String] = []
    for i in got.indices {
        let g = Double(got[i]), e = Double(w[i])
        let ok: Bool
        if e.isNaN { ok = g.isNaN } else if e.isInfinite { ok = g == e } else { ok = Swift.abs(g - e) <= r * Swift.abs(want[i]) + atol }
        if !ok && bad.count < 5 { bad.append("[\(i)] got \(g) want \(want[i])") }
    }
    #expect(bad.isEmpty, "\(what): \(bad.joined(separator: ", "))", sourceLocation: sourceLocation)
}

private let floatTypes: [DType] = [.f32, .f16, .bf16]

@Suite struct ElementwiseTests {
    /// Inputs for an op: random values over its domain plus the extremes (±80, tiny, zero).
    private func inputs(_ op: UnaryOp, _ n: Int, seed: UInt64) -> [Float] {
        var rng = TestRandom(seed: seed)
        switch op {
        case .sqrt, .rsqrt:
            return rng.floats(n - 4, 1e-3, 100) + [1, 4, 1e-4, 80]
        default:
            return rng.floats(n - 9, -8, 8) + [80, -80, 30, -30, 1e-4, -1e-4, 0, 0.5, -0.5]
        }
    }

    /// Every unary op against float64 on both devices: every op in f32, bf16 and f16→f32, and every
    /// dtype pair for identity, gelu_tanh and silu; 1001 elements (not a multiple of the workgroup).
    @Test func unaryOpsAllDTypes() throws {
        let n = 1001
        var cases: [(UnaryOp, DType, DType)] = []
        for op in UnaryOp.allCases { cases += [(op, .f32, .f32), (op, .bf16, .bf16), (op, .f16, .f32)] }
        for op in [UnaryOp.identity, .geluTanh, .silu] {
            for i in floatTypes { for o in floatTypes where !(i == .f32 && o == .f32) && !(i == .bf16 && o == .bf16) && !(i == .f16 && o == .f32) { cases.append((op, i, o)) } }
        }
        for device in try TestDevices.all() {
            for (ci, (op, inType, outType)) in cases.enumerated() {
                let values = quantized(inputs(op, n, seed: UInt64(ci)), inType)
                let x = try device.tensor(values, shape: [n], dtype: inType)
                let y = try device.empty([n], dtype: outType)
                let cl = try CommandList(device: device)
                try cl.unary(op, x, out: y)
                try cl.run()
                let want = values.map { referenceUnary(op, Double($0)) }
                expectClose(try device.read(y), want, dtype: outType, "\(device.name) \(op) \(inType)->\(outType)")
            }
        }
        TestDevices.checkValidation()
    }

    /// The transcendental ops are accurate to a few ulp in f32 (|x| up to 80, no NaN or inf/inf), and
    /// GELU's erf form needs an accurate erf (GLSL has none).
    @Test func unaryTranscendentalAccuracy() throws {
        var values: [Float] = (0...4000).map { -10 + Float($0) * 0.005 }  // dense over [-10, 10]
        values += [-80, -60, -40, -20, 20, 40, 60, 80, 1e-6, -1e-6, 1e-30]
        let n = values.count
        for device in try TestDevices.all() {
            for op in [UnaryOp.geluTanh, .geluErf, .silu, .sigmoid, .tanh, .exp] {
                let x = try device.tensor(values, shape: [n])
                let y = try device.empty([n])
                let cl = try CommandList(device: device)
                try cl.unary(op, x, out: y)
                try cl.run()
                let got = try device.read(y)
                #expect(!got.contains { $0.isNaN }, "\(device.name) \(op): NaN for finite input")
                let want = values.map { referenceUnary(op, Double($0)) }
                expectClose(got, want, dtype: .f32, rtol: 2e-6, atol: 1.5e-7, "\(device.name) \(op) accuracy")
            }
        }
        TestDevices.checkValidation()
    }

    /// Strided, sliced and broadcast inputs, the affine epilogue, and in-place use.
    @Test func unaryStridedBroadcastAffineInPlace() throws {
        var rng = TestRandom(seed: 5)
        let base = rng.floats(37 * 29, -4, 4)
        for device in try TestDevices.all() {
            for dtype in [DType.f32, .bf16] {
                let q = quantized(base, dtype)
                let t = try device.tensor(q, shape: [37, 29], dtype: dtype)
                let views: [(String, Tensor, [Int])] = [
                    ("transposed", try t.transposed(), [29, 37]),
                    ("sliced", try t.sliced(dim: 1, 3..<20).sliced(dim: 0, 5..<36), [31, 17]),
                    ("row broadcast", try t.sliced(dim: 0, 2..<3), [13, 1, 29]),
                    ("column broadcast", try t.sliced(dim: 1, 4..<5), [37, 9]),
                ]
                for (what, v, outShape) in views {
                    let y = try device.empty(outShape, dtype: .f32)
                    let cl = try CommandList(device: device)
                    try cl.unary(.silu, v, out: y, scale: 1.5, shift: -0.25)
                    try cl.run()
                    let want = broadcastValues(viewElements(v, storage: q), v.shape, to: outShape)
                        .map { referenceUnary(.silu, Double($0)) * 1.5 - 0.25 }
                    expectClose(try device.read(y), want, dtype: .f32, "\(device.name) \(dtype) \(what)")
                }
                // In place: out is x.
                let x = try device.tensor(q, shape: [37, 29], dtype: dtype)
                let cl = try CommandList(device: device)
                try cl.unary(.geluTanh, x, out: x)
                try cl.run()
                expectClose(try device.read(x), q.map { referenceUnary(.geluTanh, Double($0)) }, dtype: dtype, "\(device.name) \(dtype) in place")
            }
        }
        TestDevices.checkValidation()
    }

    /// Every binary op (f32) and every dtype triple (add, mul) with broadcasting both ways and odd sizes.
    @Test func binaryOpsBroadcastAllDTypes() throws {
        let shapes: [([Int], [Int])] = [([3, 1, 7], [5, 7]), ([5, 7], [3, 1, 7]), ([4, 1], [1, 6]), ([], [1001]),
                                         ([1001], [1]), ([2, 3, 13], [2, 3, 13]), ([11, 1, 1], [1, 3, 1])]
        var cases: [(BinaryOp, DType, DType, DType)] = BinaryOp.allCases.map { ($0, .f32, .f32, .f32) }
        for a in floatTypes { for b in floatTypes { for o in floatTypes { cases.append((.add, a, b, o)) } } }
        cases += [(.mul, .bf16, .f32, .bf16), (.div, .f16, .bf16, .f32), (.maximum, .bf16, .bf16, .bf16), (.sub, .f16, .f16, .f16)]
        var rng = TestRandom(seed: 9)
        for device in try TestDevices.all() {
            for (op, ta, tb, to) in cases {
                for (sa, sb) in shapes {
                    let outShape = Shape.broadcast(sa, sb)!
                    let av = quantized(rng.floats(Shape.count(sa), -3, 3), ta)
                    // Divisors away from zero.
                    let bv = quantized(rng.floats(Shape.count(sb), -3, 3).map { op == .div ? ($0 < 0 ? $0 - 0.5 : $0 + 0.5) : $0 }, tb)
                    let a = try device.tensor(av, shape: sa, dtype: ta)
                    let b = try device.tensor(bv, shape: sb, dtype: tb)
                    let y = try device.empty(outShape, dtype: to)
                    let cl = try CommandList(device: device)
                    try cl.binary(op, a, b, out: y)
                    try cl.run()
                    let ab = broadcastValues(av, sa, to: outShape), bb = broadcastValues(bv, sb, to: outShape)
                    let want = zip(ab, bb).map { referenceBinary(op, Double($0.0), Double($0.1)) }
                    expectClose(try device.read(y), want, dtype: to, "\(device.name) \(op) \(ta),\(tb)->\(to) \(sa)∘\(sb)")
                }
            }
        }
        TestDevices.checkValidation()
    }

    /// Strided views as operands (transposed, sliced, permuted), six unmergeable axes, an input of
    /// rank 7 whose axes merge, NaN propagation of maximum/minimum, and in-place a += b.
    @Test func binaryStridedRank6InPlace() throws {
        var rng = TestRandom(seed: 21)
        for device in try TestDevices.all() {
            // Transposed a + sliced b (broadcast over rows).
            let av = rng.floats(7 * 9, -2, 2), bv = rng.floats(4 * 11, -2, 2)
            let a = try device.tensor(av, shape: [7, 9], dtype: .bf16)
            let aq = quantized(av, .bf16)
            let b = try device.tensor(bv, shape: [4, 11])
            let at = try a.transposed()                     // [9, 7]
            let bs = try b.sliced(dim: 1, 2..<9).sliced(dim: 0, 1..<2) // [1, 7]
            let y = try device.empty([9, 7], dtype: .f32)
            var cl = try CommandList(device: device)
            try cl.binary(.mul, at, bs, out: y)
            try cl.run()
            var want = zip(viewElements(at, storage: aq), broadcastValues(viewElements(bs, storage: bv), [1, 7], to: [9, 7]))
                .map { Double($0.0) * Double($0.1) }
            expectClose(try device.read(y), want, dtype: .f32, "\(device.name) transposed*sliced")

            // Six axes that cannot merge: a fully reversed permutation, b broadcast on every other axis.
            let shape6 = [3, 2, 3, 2, 3, 2]
            let pv = rng.floats(Shape.count(shape6), -2, 2)
            let p = try device.tensor(pv, shape: shape6)
            let pr = try p.permuted([5, 4, 3, 2, 1, 0])     // [2, 3, 2, 3, 2, 3]
            let qShape = [2, 1, 2, 1, 2, 1]
            let qv = rng.floats(Shape.count(qShape), -2, 2)
            let q = try device.tensor(qv, shape: qShape, dtype: .f16)
            let qq = quantized(qv, .f16)
            let y6 = try device.empty(pr.shape, dtype: .f32)
            cl = try CommandList(device: device)
            try cl.binary(.sub, pr, q, out: y6)
            try cl.run()
            want = zip(viewElements(pr, storage: pv), broadcastValues(qq, qShape, to: pr.shape)).map { Double($0.0) - Double($0.1) }
            expectClose(try device.read(y6), want, dtype: .f32, "\(device.name) rank 6")

            // Rank 7 with size-1 axes merges to few axes.
            let s7 = [1, 2, 1, 3, 1, 4, 5]
            let v7 = rng.floats(Shape.count(s7), -2, 2)
            let t7 = try device.tensor(v7, shape: s7)
            let u7 = try device.tensor([0.5, -1, 2, 3, -4], shape: [5])
            let y7 = try device.empty(s7)
            cl = try CommandList(device: device)
            try cl.binary(.div, t7, u7, out: y7)
            try cl.run()
            want = zip(v7, broadcastValues([0.5, -1, 2, 3, -4], [5], to: s7)).map { Double($0.0) / Double($0.1) }
            expectClose(try device.read(y7), want, dtype: .f32, "\(device.name) rank 7")

            // Rows longer than the CPU work block (4096), strided along the row: a [2, 9001] transposed
            // view (inner stride 2) times a column of a [9001, 3] tensor (inner stride 3).
            let lv = rng.floats(9001 * 2, -2, 2), cv = rng.floats(9001 * 3, -2, 2)
            let lt = try device.tensor(lv, shape: [9001, 2]).transposed()
            let col = try device.tensor(cv, shape: [9001, 3], dtype: .bf16).sliced(dim: 1, 1..<2).transposed() // [1, 9001]
            let yl = try device.empty([2, 9001], dtype: .f16)
            let yu = try device.empty([2, 9001])
            cl = try CommandList(device: device)
            try cl.binary(.add, lt, col, out: yl)
            try cl.unary(.square, lt, out: yu)
            try cl.run()
            let cq = viewElements(col, storage: quantized(cv, .bf16))
            want = zip(viewElements(lt, storage: lv), broadcastValues(cq, [1, 9001], to: [2, 9001])).map { Double($0.0) + Double($0.1) }
            expectClose(try device.read(yl), want, dtype: .f16, "\(device.name) long strided rows")
            expectClose(try device.read(yu), viewElements(lt, storage: lv).map { Double($0) * Double($0) }, dtype: .f32, "\(device.name) long strided unary")

            // NaN propagates through maximum and minimum (either side).
            let na = try device.tensor([.nan, 1, 2, -3, .nan], shape: [5])
            let nb = try device.tensor([1, .nan, 1, 4, .nan], shape: [5])
            for op in [BinaryOp.maximum, .minimum] {
                let yn = try device.empty([5])
                cl = try CommandList(device: device)
                try cl.binary(op, na, nb, out: yn)
                try cl.run()
                let got = try device.read(yn)
                #expect(got[0].isNaN && got[1].isNaN && got[4].isNaN, "\(device.name) \(op) NaN: \(got)")
                #expect(got[2] == (op == .maximum ? 2 : 1) && got[3] == (op == .maximum ? 4 : -3), "\(device.name) \(op): \(got)")
            }

            // In place: x += bias (broadcast), twice in one list (the second reads the first's result).
            let xv = rng.floats(5 * 13, -1, 1), biasv = rng.floats(13, -1, 1)
            let x = try device.tensor(xv, shape: [5, 13])
            let bias = try device.tensor(biasv, shape: [13])
            cl = try CommandList(device: device)
            try cl.binary(.add, x, bias, out: x)
            try cl.binary(.mul, x, x, out: x)
            try cl.run()
            want = zip(xv, broadcastValues(biasv, [13], to: [5, 13])).map { let s = Double($0.0) + Double($0.1); return s * s }
            expectClose(try device.read(x), want, dtype: .f32, "\(device.name) in place")
        }
        TestDevices.checkValidation()
    }

    /// Shapes, dtypes, aliasing and devices that the kernels must refuse.
    @Test func elementwiseErrors() throws {
        for device in try TestDevices.all() {
            let cl = try CommandList(device: device)
            let a = try device.zeros([3, 4]), b = try device.zeros([5, 4]), c = try device.zeros([4])
            #expect(throws: RuntimeError.self) { try cl.binary(.add, a, b, out: try device.empty([5, 4])) }  // [3,4] vs [5,4]
            #expect(throws: RuntimeError.self) { try cl.binary(.add, a, c, out: try device.empty([4, 3])) }  // bad out shape
            #expect(throws: RuntimeError.self) { try cl.binary(.add, a, c, out: try device.empty([1, 3, 4])) } // out must be exact
            #expect(throws: RuntimeError.self) { try cl.binary(.add, a, c, out: try device.empty([3, 4], dtype: .i32)) }
            #expect(throws: RuntimeError.self) { try cl.binary(.add, try device.zeros([3, 4], dtype: .f8e4m3fn), c, out: try device.empty([3, 4])) }
            #expect(throws: RuntimeError.self) { try cl.binary(.add, a, c, out: try device.empty([4, 3]).transposed()) } // strided out
            #expect(throws: RuntimeError.self) { try cl.unary(.silu, a, out: try device.empty([4])) }        // does not broadcast
            #expect(throws: RuntimeError.self) { try cl.unary(.silu, a, out: try device.empty([3, 4], dtype: .u8)) }
            // Output overlapping an input without being exactly it.
            let big = try device.zeros([10])
            #expect(throws: RuntimeError.self) { try cl.binary(.add, try big.sliced(dim: 0, 0..<5), try c.sliced(dim: 0, 0..<1), out: try big.sliced(dim: 0, 1..<6)) }
            #expect(throws: RuntimeError.self) { try cl.unary(.neg, try big.sliced(dim: 0, 0..<5), out: try big.sliced(dim: 0, 2..<7)) }
            // Seven axes that cannot merge exceed the shaders' six.
            let s7 = [2, 2, 2, 2, 2, 2, 2]
            let p7 = try device.zeros(s7).permuted([6, 5, 4, 3, 2, 1, 0])
            #expect(throws: RuntimeError.self) { try cl.unary(.neg, p7, out: try device.empty(s7)) }
        }
        // Mixed devices.
        if let v = try TestDevices.vulkan() {
            let cpu = TestDevices.cpu
            let cl = try CommandList(device: v)
            let a = try v.zeros([4]), b = try cpu.zeros([4])
            #expect(throws: RuntimeError.self) { try cl.binary(.add, a, b, out: try v.empty([4])) }
            #expect(throws: RuntimeError.self) { try cl.binary(.add, a, a, out: try cpu.empty([4])) }
            #expect(throws: RuntimeError.self) { try cl.unary(.exp, b, out: try v.empty([4])) }
        }
        TestDevices.checkValidation()
    }

    /// Empty tensors are a no-op.
    @Test func elementwiseEmpty() throws {
        for device in try TestDevices.all() {
            let cl = try CommandList(device: device)
            let e = try device.empty([0, 5])
            try cl.unary(.silu, e, out: try device.empty([0, 5]))
            try cl.binary(.add, e, try device.zeros([5]), out: try device.empty([0, 5]))
            try cl.run()
            #expect(cl.kernelCount == 0)
        }
        TestDevices.checkValidation()
    }
}
