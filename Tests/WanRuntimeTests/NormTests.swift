import Foundation
import Testing
@testable import WanRuntime

/// Reductions, softmax, LayerNorm and RMSNorm on every device against float64 references.
@Suite struct NormTests {
    static let floatTypes: [DType] = [.f32, .f16, .bf16]
    static let rowShapes: [(rows: Int, n: Int)] = [(1, 1), (7, 3), (37, 129), (3, 1537), (5, 40)]

    /// One result to check after a command list ran.
    struct Check {
        var out: Tensor
        var expected: [Double]
        var tolerance: Double
        var what: String
    }

    static func verify(_ device: Device, _ checks: [Check], sourceLocation: SourceLocation = #_sourceLocation) throws {
        for c in checks {
            let got = try device.read(c.out)
            let err = maxRelativeError(got, c.expected)
            #expect(err <= c.tolerance, "\(device.name) \(c.what): error \(err) > \(c.tolerance)", sourceLocation: sourceLocation)
        }
    }

    // MARK: float64 references

    static func refReduce(_ op: ReduceOp, _ x: [Float], rows: Int, n: Int) -> [Double] {
        (0..<rows).map { r in
            let row = x[r * n..<(r + 1) * n].map(Double.init)
            switch op {
            case .sum: return row.reduce(0, +)
            case .mean: return row.reduce(0, +) / Double(n)
            case .max: return row.max()!
            case .min: return row.min()!
            case .sumOfSquares: return row.reduce(0) { $0 + $1 * $1 }
            }
        }
    }

    static func refSoftmax(_ x: [Float], rows: Int, n: Int, scale: Double) -> [Double] {
        var y = [Double](repeating: 0, count: x.count)
        for r in 0..<rows {
            let s = (0..<n).map { Double(x[r * n + $0]) * scale }
            let m = s.max()!
            let e = s.map { Foundation.exp($0 - m) }
            let total = e.reduce(0, +)
            for i in 0..<n { y[r * n + i] = e[i] / total }
        }
        return y
    }

    static func roundScalar(_ v: Double, _ dtype: DType?) -> Double {
        switch dtype {
        case .f16: return Double(Float(Float16(Float(v))))
        case .bf16: return Double(ScalarConversion.bf16ToFloat(ScalarConversion.floatToBF16(Float(v))))
        default: return v
        }
    }

    /// mode 0 LayerNorm, 1 RMSNorm, 2 RMSNorm l2Clamped; x is [outer, n, inner].
    static func refNorm(_ x: [Float], outer: Int, n: Int, inner: Int, mode: Int, eps: Double,
                        weight: [Float]?, bias: [Float]?, roundTo: DType? = nil) -> [Double] {
        var y = [Double](repeating: 0, count: x.count)
        for o in 0..<outer {
            for j in 0..<inner {
                let idx = (0..<n).map { o * n * inner + $0 * inner + j }
                let v = idx.map { Double(x[$0]) }
                let mean = v.reduce(0, +) / Double(n)
                let ms = v.reduce(0) { $0 + $1 * $1 } / Double(n)
                let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
                for c in 0..<n {
                    var t: Double
                    switch mode {
                    case 0: t = (v[c] - mean) / (variance + eps).squareRoot()
                    case 1: t = v[c] / (ms + eps).squareRoot()
                    default: t = v[c] * Double(n).squareRoot() / max((ms * Double(n)).squareRoot(), eps)
                    }
                    t = roundScalar(t, roundTo)
                    if let weight { t *= Double(weight[c]) }
                    if let bias { t += Double(bias[c]) }
                    y[idx[c]] = t
                }
            }
        }
        return y
    }

    // MARK: reductions

    @Test func reduceAllOpsShapesAndDTypes() throws {
        var rng = TestRandom(seed: 21)
        for device in try TestDevices.all() {
            let cl = try CommandList(device: device)
            var checks: [Check] = []
            // Every op on every shape (f32); two ops on every dtype combination (each distinct
            // combination is a pipeline, which lavapipe compiles slowly).
            var cases: [(rows: Int, n: Int, xd: DType, od: DType, keepDim: Bool, ops: [ReduceOp])] = []
            for s in Self.rowShapes { cases.append((s.rows, s.n, .f32, .f32, s.n % 2 == 1, ReduceOp.allCases)) }
            for xd in Self.floatTypes {
                for od in Self.floatTypes where !(xd == .f32 && od == .f32) { cases.append((37, 129, xd, od, false, [.mean, .max])) }
            }
            for c in cases {
                let values = rng.floats(c.rows * c.n, -1, 1)
                let q = quantized(values, c.xd)
                let x = try device.tensor(values, shape: [c.rows, c.n], dtype: c.xd)
                for op in c.ops {
                    let out = try device.empty(c.keepDim ? [c.rows, 1] : [c.rows], dtype: c.od)
                    try cl.reduce(op, x, out: out)
                    checks.append(Check(out: out, expected: Self.refReduce(op, q, rows: c.rows, n: c.n),
                                        tolerance: tolerance(c.od), what: "reduce \(op) [\(c.rows), \(c.n)] \(c.xd)->\(c.od)"))
                }
            }
            // Rank-1 input reduces to a scalar; large offsets keep the sum accurate.
            let big = rng.floats(2001, 999, 1001)
            let xb = try device.tensor(big, shape: [2001])
            let sb = try device.empty([])
            try cl.reduce(.mean, xb, out: sb)
            checks.append(Check(out: sb, expected: Self.refReduce(.mean, big, rows: 1, n: 2001), tolerance: 1e-6, what: "mean of 1000±1"))
            try cl.run()
            try Self.verify(device, checks)
        }
        TestDevices.checkValidation()
    }

    @Test func reduceMaxMinPropagateNaN() throws {
        for device in try TestDevices.all() {
            let n = 129
            var values = (0..<(3 * n)).map { Float($0 % 17) - 8 }
            values[n + 77] = .nan // row 1 holds a NaN
            values[2 * n + 5] = .infinity
            let x = try device.tensor(values, shape: [3, n])
            let mx = try device.empty([3]), mn = try device.empty([3])
            let cl = try CommandList(device: device)
            try cl.reduce(.max, x, out: mx)
            try cl.reduce(.min, x, out: mn)
            try cl.run()
            let a = try device.read(mx), b = try device.read(mn)
            #expect(a[0] == 8 && a[1].isNaN && a[2] == .infinity, "\(device.name) max \(a)")
            #expect(b[0] == -8 && b[1].isNaN && b[2] == -8, "\(device.name) min \(b)")
        }
        TestDevices.checkValidation()
    }

    // MARK: softmax

    @Test func softmaxShapesDTypesAndScale() throws {
        var rng = TestRandom(seed: 22)
        for device in try TestDevices.all() {
            let cl = try CommandList(device: device)
            var checks: [Check] = []
            var cases: [(rows: Int, n: Int, xd: DType, od: DType, scale: Float, lo: Float, hi: Float)] = []
            for s in Self.rowShapes { cases.append((s.rows, s.n, .f32, .f32, 1, -4, 4)) }
            for xd in Self.floatTypes { for od in Self.floatTypes { cases.append((37, 129, xd, od, 0.08838834764, -20, 20)) } }
            cases.append((7, 1537, .f32, .f32, 1, -1000, 1000))      // large values: no overflow
            cases.append((7, 129, .f32, .f32, -2.5, -1000, 1000))    // negative scale
            cases.append((37, 3, .bf16, .f32, 1, 900, 1000))         // all large and positive
            cases.append((5, 5000, .f32, .bf16, 0.5, -30, 30))       // rows longer than the register cache
            for c in cases {
                let values = rng.floats(c.rows * c.n, c.lo, c.hi)
                let q = quantized(values, c.xd)
                let x = try device.tensor(values, shape: [c.rows, c.n], dtype: c.xd)
                let out = try device.empty([c.rows, c.n], dtype: c.od)
                try cl.softmax(x, out: out, scale: c.scale)
                checks.append(Check(out: out, expected: Self.refSoftmax(q, rows: c.rows, n: c.n, scale: Double(c.scale)),
                                    tolerance: tolerance(c.od), what: "softmax [\(c.rows), \(c.n)] \(c.xd)->\(c.od) scale \(c.scale)"))
            }
            // In place, rank 3.
            let values = rng.floats(2 * 3 * 257, -8, 8)
            let x = try device.tensor(values, shape: [2, 3, 257])
            try cl.softmax(x, out: x, scale: 0.5)
            checks.append(Check(out: x, expected: Self.refSoftmax(values, rows: 6, n: 257, scale: 0.5), tolerance: 1e-5, what: "softmax in place"))
            try cl.run()
            try Self.verify(device, checks)
            // Rows sum to one.
            let y = try device.read(checks[0].out)
            #expect(abs(y.reduce(0, +) - 1) < 1e-6)
        }
        TestDevices.checkValidation()
    }

    // MARK: LayerNorm / RMSNorm

    /// Norm variants: LayerNorm with/without weight/bias, RMSNorm with/without weight, RMSNorm l2Clamped.
    enum Variant: CaseIterable { case ln, lnW, lnB, lnWB, rms, rmsW, l2W }

    @Test func normsRowsAllDTypes() throws {
        var rng = TestRandom(seed: 23)
        // Every variant on a few shapes; every dtype combination on the common variants (each distinct
        // combination is a pipeline, which lavapipe compiles slowly).
        var cases: [(rows: Int, n: Int, xd: DType, od: DType, wd: DType, variants: [Variant])] = [
            (1, 1, .f32, .f32, .f32, [.lnWB, .rms]), (7, 3, .f32, .f32, .f32, Variant.allCases),
            (37, 129, .f32, .f32, .f32, Variant.allCases), (3, 1537, .f32, .f32, .f32, [.lnWB, .rmsW]),
            (5, 40, .f32, .f32, .f32, [.ln, .l2W]), (3, 5121, .bf16, .f32, .bf16, [.lnWB, .rms]),
        ]
        for (i, xd) in Self.floatTypes.enumerated() {
            for (j, od) in Self.floatTypes.enumerated() where !(xd == .f32 && od == .f32) {
                cases.append((7, 129, xd, od, Self.floatTypes[(i + j) % 3], [.lnWB, .rmsW]))
            }
        }
        for device in try TestDevices.all() {
            let cl = try CommandList(device: device)
            var checks: [Check] = []
            for c in cases {
                let values = rng.floats(c.rows * c.n, -2, 3)
                let q = quantized(values, c.xd)
                let x = try device.tensor(values, shape: [c.rows, c.n], dtype: c.xd)
                let wv = quantized(rng.floats(c.n, 0.5, 1.5), c.wd), bv = quantized(rng.floats(c.n, -1, 1), c.wd)
                let w = try device.tensor(wv, shape: [c.n], dtype: c.wd), b = try device.tensor(bv, shape: [c.n], dtype: c.wd)
                for v in c.variants {
                    let out = try device.empty([c.rows, c.n], dtype: c.od)
                    let useW = [.lnW, .lnWB, .rmsW, .l2W].contains(v), useB = v == .lnB || v == .lnWB
                    let mode: Int
                    switch v {
                    case .ln, .lnW, .lnB, .lnWB:
                        mode = 0
                        try cl.layerNorm(x, weight: useW ? w : nil, bias: useB ? b : nil, eps: 1e-6, out: out)
                    case .rms, .rmsW:
                        mode = 1
                        try cl.rmsNorm(x, weight: useW ? w : nil, eps: 1e-6, out: out)
                    case .l2W:
                        mode = 2
                        try cl.rmsNorm(x, weight: w, eps: 1e-12, out: out, style: .l2Clamped)
                    }
                    let eps = mode == 2 ? 1e-12 : 1e-6
                    checks.append(Check(out: out, expected: Self.refNorm(q, outer: c.rows, n: c.n, inner: 1, mode: mode, eps: eps,
                                                                         weight: useW ? wv : nil, bias: useB ? bv : nil),
                                        tolerance: tolerance(c.od), what: "\(v) [\(c.rows), \(c.n)] \(c.xd)->\(c.od) w \(c.wd)"))
                }
            }
            try cl.run()
            try Self.verify(device, checks)
        }
        TestDevices.checkValidation()
    }

    /// Rows with a large mean and small spread (where E[x²] − E[x]² in fp32 fails), and constant rows.
    @Test func layerNormLargeMean() throws {
        var rng = TestRandom(seed: 24)
        for device in try TestDevices.all() {
            let cl = try CommandList(device: device)
            var checks: [Check] = []
            for (rows, n) in [(7, 1537), (37, 129), (3, 9000)] {
                let values = rng.floats(rows * n, 999, 1001)
                let x = try device.tensor(values, shape: [rows, n])
                let out = try device.empty([rows, n])
                try cl.layerNorm(x, weight: nil, bias: nil, eps: 1e-6, out: out)
                checks.append(Check(out: out, expected: Self.refNorm(values, outer: rows, n: n, inner: 1, mode: 0, eps: 1e-6, weight: nil, bias: nil),
                                    tolerance: 1e-4, what: "layerNorm 1000±1 [\(rows), \(n)]"))
                let outC = try device.empty([n, rows])
                let xt = try device.tensor(values, shape: [n, rows])
                try cl.layerNorm(xt, weight: nil, bias: nil, eps: 1e-6, out: outC, axis: 0)
                checks.append(Check(out: outC, expected: Self.refNorm(values, outer: 1, n: n, inner: rows, mode: 0, eps: 1e-6, weight: nil, bias: nil),
                                    tolerance: 1e-4, what: "layerNorm 1000±1 axis 0 [\(n), \(rows)]"))
            }
            // A constant row normalises to exactly zero (then the bias).
            let x = try device.tensor([Float](repeating: 1234.5, count: 300), shape: [2, 150])
            let b = try device.tensor((0..<150).map { Float($0) }, shape: [150])
            let out = try device.empty([2, 150])
            try cl.layerNorm(x, weight: nil, bias: b, eps: 1e-6, out: out)
            checks.append(Check(out: out, expected: (0..<300).map { Double($0 % 150) }, tolerance: 0, what: "constant rows"))
            try cl.run()
            try Self.verify(device, checks)
        }
        TestDevices.checkValidation()
    }

    /// Normalising a middle axis ([outer, n, inner], the VAE's channel-first RMS_norm), in place,
    /// and rounding the normalised value before the weight (the DiT q/k norms, T5).
    @Test func normsOverOtherAxesAndRounding() throws {
        var rng = TestRandom(seed: 25)
        for device in try TestDevices.all() {
            let cl = try CommandList(device: device)
            var checks: [Check] = []
            for (shape, axis, xd, od) in [([3, 37, 5, 7], 1, DType.f32, DType.f32), ([37, 129], 0, .bf16, .f32),
                                          ([2, 96, 3, 11, 13], 1, .f16, .bf16), ([1537, 3], -2, .f32, .f16)] {
                let ax = axis < 0 ? axis + shape.count : axis
                let n = shape[ax], outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
                let values = rng.floats(shape.reduce(1, *), -3, 2)
                let q = quantized(values, xd)
                let x = try device.tensor(values, shape: shape, dtype: xd)
                let gv = rng.floats(n, 0.5, 1.5), bv = rng.floats(n, -1, 1)
                // The VAE's gamma is [C, 1, 1, 1]: any shape holding n elements is accepted.
                let g = try device.tensor(gv, shape: [n, 1, 1]), b = try device.tensor(bv, shape: [n], dtype: .bf16)
                let what = "\(shape) axis \(axis) \(xd)->\(od)"
                let o1 = try device.empty(shape, dtype: od)
                try cl.rmsNorm(x, weight: g, eps: 1e-12, out: o1, axis: axis, style: .l2Clamped)
                checks.append(Check(out: o1, expected: Self.refNorm(q, outer: outer, n: n, inner: inner, mode: 2, eps: 1e-12, weight: gv, bias: nil),
                                    tolerance: tolerance(od), what: "rmsNorm(l2) \(what)"))
                let o2 = try device.empty(shape, dtype: od)
                try cl.rmsNorm(x, weight: nil, eps: 1e-6, out: o2, axis: axis)
                checks.append(Check(out: o2, expected: Self.refNorm(q, outer: outer, n: n, inner: inner, mode: 1, eps: 1e-6, weight: nil, bias: nil),
                                    tolerance: tolerance(od), what: "rmsNorm \(what)"))
                let o3 = try device.empty(shape, dtype: od)
                try cl.layerNorm(x, weight: g, bias: b, eps: 1e-5, out: o3, axis: axis)
                checks.append(Check(out: o3, expected: Self.refNorm(q, outer: outer, n: n, inner: inner, mode: 0, eps: 1e-5,
                                                                     weight: gv, bias: quantized(bv, .bf16)),
                                    tolerance: tolerance(od), what: "layerNorm \(what)"))
            }
            // In place (rows and columns).
            let v1 = rng.floats(7 * 129, -1, 1)
            let x1 = try device.tensor(v1, shape: [7, 129])
            try cl.rmsNorm(x1, weight: nil, eps: 1e-6, out: x1)
            checks.append(Check(out: x1, expected: Self.refNorm(v1, outer: 7, n: 129, inner: 1, mode: 1, eps: 1e-6, weight: nil, bias: nil),
                                tolerance: 1e-5, what: "rmsNorm in place"))
            let x2 = try device.tensor(v1, shape: [7, 129])
            try cl.layerNorm(x2, weight: nil, bias: nil, eps: 1e-6, out: x2, axis: 0)
            checks.append(Check(out: x2, expected: Self.refNorm(v1, outer: 1, n: 7, inner: 129, mode: 0, eps: 1e-6, weight: nil, bias: nil),
                                tolerance: 1e-5, what: "layerNorm axis 0 in place"))
            // Rounding the normalised value (bf16 / f16) before an fp32 weight, fp32 output.
            for rd in [DType.bf16, .f16] {
                let values = rng.floats(37 * 129, -2, 2)
                let x = try device.tensor(values, shape: [37, 129])
                let wv = rng.floats(129, 0.5, 1.5), bv = rng.floats(129, -1, 1)
                let w = try device.tensor(wv, shape: [129]), b = try device.tensor(bv, shape: [129])
                let o1 = try device.empty([37, 129])
                try cl.rmsNorm(x, weight: w, eps: 1e-6, out: o1, roundNormalizedTo: rd)
                checks.append(Check(out: o1, expected: Self.refNorm(values, outer: 37, n: 129, inner: 1, mode: 1, eps: 1e-6, weight: wv, bias: nil, roundTo: rd),
                                    tolerance: tolerance(rd) / 4, what: "rmsNorm round \(rd)"))
                let o2 = try device.empty([37, 129])
                try cl.layerNorm(x, weight: w, bias: b, eps: 1e-6, out: o2, roundNormalizedTo: rd)
                checks.append(Check(out: o2, expected: Self.refNorm(values, outer: 37, n: 129, inner: 1, mode: 0, eps: 1e-6, weight: wv, bias: bv, roundTo: rd),
                                    tolerance: tolerance(rd) / 4, what: "layerNorm round \(rd)"))
            }
            try cl.run()
            try Self.verify(device, checks)
        }
        TestDevices.checkValidation()
    }

    /// The rounding is really applied: with bf16 rounding the fp32 result sits on weight · bf16 values.
    @Test func roundNormalizedIsExactlyRepresentable() throws {
        var rng = TestRandom(seed: 26)
        for device in try TestDevices.all() {
            let values = rng.floats(5 * 40, -2, 2)
            let x = try device.tensor(values, shape: [5, 40])
            let out = try device.empty([5, 40])
            let cl = try CommandList(device: device)
            try cl.rmsNorm(x, weight: nil, eps: 1e-6, out: out, roundNormalizedTo: .bf16)
            try cl.run()
            let y = try device.read(out)
            #expect(y == quantized(y, .bf16), "\(device.name): rmsNorm output not rounded to bf16")
            #expect(maxRelativeError(y, Self.refNorm(values, outer: 5, n: 40, inner: 1, mode: 1, eps: 1e-6, weight: nil, bias: nil)) < 1e-2)
        }
        TestDevices.checkValidation()
    }

    /// The CPU and Vulkan paths agree closely on the same inputs (row and column layouts).
    @Test func vulkanMatchesCPU() throws {
        guard let vk = try TestDevices.vulkan() else { return }
        var rng = TestRandom(seed: 27)
        let values = rng.floats(11 * 333, -3, 3)
        let wv = rng.floats(333, 0.5, 1.5), bv = rng.floats(333, -1, 1)
        var results: [[[Float]]] = []
        for device in [TestDevices.cpu, vk] {
            let x = try device.tensor(values, shape: [11, 333])
            let w = try device.tensor(wv, shape: [333]), b = try device.tensor(bv, shape: [333])
            let outs = try (0..<5).map { _ in try device.empty([11, 333]) }
            let r = try device.empty([11])
            let cl = try CommandList(device: device)
            try cl.layerNorm(x, weight: w, bias: b, eps: 1e-6, out: outs[0])
            try cl.rmsNorm(x, weight: w, eps: 1e-6, out: outs[1])
            try cl.softmax(x, out: outs[2], scale: 0.3)
            try cl.rmsNorm(try x.reshaped([11, 333, 1]), weight: nil, eps: 1e-12, out: try outs[3].reshaped([11, 333, 1]), axis: 1, style: .l2Clamped)
            try cl.layerNorm(x, weight: nil, bias: nil, eps: 1e-6, out: outs[4], axis: 0)
            try cl.reduce(.sumOfSquares, x, out: r)
            try cl.run()
            results.append(try outs.map { try device.read($0) } + [try device.read(r)])
        }
        for i in results[0].indices {
            let err = maxRelativeError(results[1][i], results[0][i])
            #expect(err < 2e-6, "output \(i): vulkan vs cpu \(err)")
        }
        TestDevices.checkValidation()
    }

    /// More rows than the x dimension of a grid holds (65535 workgroups of 256 one-thread rows): the
    /// dispatch spills into y and every row must still be computed once, by the right thread.
    @Test func manyRowsUseSecondGridDimension() throws {
        guard let vk = try TestDevices.vulkan() else { return }
        let rows = 65535 * 256 + 1001
        var values = [Float](repeating: 0, count: rows)
        values.withUnsafeMutableBufferPointer { v in
            for r in 0..<rows { v[r] = Float(r % 65521 + 1) * ((r / 7) % 2 == 0 ? 1 : -1) }
        }
        let x = try vk.tensor(values, shape: [rows, 1])
        let s = try vk.zeros([rows]), y = try vk.zeros([rows, 1]), z = try vk.zeros([rows, 1])
        let cl = try CommandList(device: vk)
        try cl.reduce(.sum, x, out: s)
        try cl.rmsNorm(x, weight: nil, eps: 0, out: y)
        try cl.softmax(x, out: z)
        try cl.run()
        let sums = try vk.read(s), ys = try vk.read(y), zs = try vk.read(z)
        var badSum = 0, badNorm = 0, badSoftmax = 0
        sums.withUnsafeBufferPointer { sp in
            ys.withUnsafeBufferPointer { yp in
                zs.withUnsafeBufferPointer { zp in
                    values.withUnsafeBufferPointer { v in
                        for r in 0..<rows {
                            if sp[r] != v[r] { badSum += 1 }
                            if abs(yp[r] - (v[r] > 0 ? 1 : -1)) > 1e-6 { badNorm += 1 }
                            if zp[r] != 1 { badSoftmax += 1 }
                        }
                    }
                }
            }
        }
        #expect(badSum == 0 && badNorm == 0 && badSoftmax == 0, "wrong rows: sum \(badSum), rmsNorm \(badNorm), softmax \(badSoftmax)")
        TestDevices.checkValidation()
    }

    /// Rows so long that a row kernel's loops would pass a CPU driver's loop budget (lavapipe stops an invocation's loops
    /// after 65535 iterations: 256 threads walking a softmax row of 6M elements three times need ~70k) are a clear
    /// error there; a row of 5M runs and matches the CPU. GPUs run both.
    @Test func loopBudgetOnCPUDrivers() throws {
        guard let vk = try TestDevices.vulkan(), let caps = vk.vulkan?.capabilities else { return }
        for n in [5_000_000, 6_000_000] {
            let values = (0..<n).map { Float($0 % 1000) * 0.001 }
            var results: [[Float]] = []
            for d in [TestDevices.cpu, vk] {
                let x = try d.tensor(values, shape: [1, n]), y = try d.empty([1, n])
                let cl = try CommandList(device: d)
                if d === vk && caps.isSoftware && n > 5_000_000 {
                    expectInvalidArgument(containing: ["loop iterations", "6000000"]) { try cl.softmax(x, out: y) }
                    expectInvalidArgument(containing: ["loop iterations"], "reduce") {
                        try cl.reduce(.sum, try vk.tensor([Float](repeating: 1, count: 17_000_000), shape: [1, 17_000_000]), out: try vk.empty([1]))
                    }
                    expectInvalidArgument(containing: ["loop iterations"], "layerNorm") {
                        try cl.layerNorm(x, weight: nil, bias: nil, eps: 1e-5, out: y)
                    }
                    break
                }
                try cl.softmax(x, out: y)
                try cl.run()
                results.append(try d.read(y))
            }
            if results.count == 2 { #expect(maxRelativeError(results[1], results[0]) <= 1e-4, "n \(n)") }
        }
    }

    // MARK: errors

    @Test func badInputsThrow() throws {
        for device in try TestDevices.all() {
            let cl = try CommandList(device: device)
            let x = try device.zeros([4, 6])
            let w5 = try device.zeros([5])
            // weight / bias size mismatch
            #expect(throws: RuntimeError.self) { try cl.layerNorm(x, weight: w5, bias: nil, eps: 1e-6, out: try device.empty([4, 6])) }
            #expect(throws: RuntimeError.self) { try cl.layerNorm(x, weight: nil, bias: w5, eps: 1e-6, out: try device.empty([4, 6])) }
            #expect(throws: RuntimeError.self) { try cl.rmsNorm(x, weight: w5, eps: 1e-6, out: try device.empty([4, 6])) }
            #expect(throws: RuntimeError.self) { try cl.rmsNorm(x, weight: try device.zeros([6]), eps: 1e-6, out: try device.empty([4, 6]), axis: 0) }
            // out shape mismatch
            #expect(throws: RuntimeError.self) { try cl.layerNorm(x, weight: nil, bias: nil, eps: 1e-6, out: try device.empty([6, 4])) }
            #expect(throws: RuntimeError.self) { try cl.softmax(x, out: try device.empty([4, 5])) }
            #expect(throws: RuntimeError.self) { try cl.reduce(.sum, x, out: try device.empty([6])) }
            #expect(throws: RuntimeError.self) { try cl.reduce(.sum, x, out: try device.empty([4, 2])) }
            // dtypes
            #expect(throws: RuntimeError.self) { try cl.reduce(.max, try device.zeros([4, 6], dtype: .i32), out: try device.empty([4])) }
            #expect(throws: RuntimeError.self) { try cl.softmax(x, out: try device.empty([4, 6], dtype: .f8e4m3fn)) }
            #expect(throws: RuntimeError.self) { try cl.rmsNorm(x, weight: try device.zeros([6], dtype: .u8), eps: 1e-6, out: try device.empty([4, 6])) }
            #expect(throws: RuntimeError.self) { try cl.rmsNorm(x, weight: nil, eps: 1e-6, out: try device.empty([4, 6]), roundNormalizedTo: .f8e4m3fn) }
            // axis, eps, scale, empty reduction, non-dense input, aliasing
            #expect(throws: RuntimeError.self) { try cl.layerNorm(x, weight: nil, bias: nil, eps: 1e-6, out: try device.empty([4, 6]), axis: 2) }
            #expect(throws: RuntimeError.self) { try cl.layerNorm(x, weight: nil, bias: nil, eps: -1, out: try device.empty([4, 6])) }
            #expect(throws: RuntimeError.self) { try cl.softmax(x, out: try device.empty([4, 6]), scale: .infinity) }
            #expect(throws: RuntimeError.self) { try cl.reduce(.sum, try device.zeros([4, 0]), out: try device.empty([4])) }
            #expect(throws: RuntimeError.self) { try cl.softmax(try x.transposed(), out: try device.empty([6, 4])) }
            let big = try device.zeros([5, 6])
            #expect(throws: RuntimeError.self) { try cl.rmsNorm(try big.sliced(dim: 0, 0..<4), weight: nil, eps: 1e-6, out: try big.sliced(dim: 0, 1..<5)) }
            #expect(cl.kernelCount == 0)
        }
        if let vk = try TestDevices.vulkan() {
            let cl = try CommandList(device: vk)
            let x = try vk.zeros([4, 6])
            #expect(throws: RuntimeError.self) { try cl.layerNorm(x, weight: try TestDevices.cpu.zeros([6]), bias: nil, eps: 1e-6, out: try vk.empty([4, 6])) }
            #expect(throws: RuntimeError.self) { try cl.softmax(try TestDevices.cpu.zeros([4, 6]), out: try vk.empty([4, 6])) }
        }
        TestDevices.checkValidation()
    }
}
