import Testing
@testable import WanRuntime

/// FP8 weights: quantisation with per-tensor / per-channel scales, and the GEMM that decodes them
/// while staging tiles (the result must equal a GEMM on the decoded weights).
@Suite struct FP8Tests {
    static func decode(_ bytes: [UInt8], _ dtype: DType) -> [Float] { HostConversion.decode(bytes, as: dtype) }

    @Test func quantizeMatchesReference() throws {
        var rng = TestRandom(seed: 21)
        let rows = 13, cols = 37
        var w = rng.floats(rows * cols, -3, 3)
        for j in 0..<cols { w[5 * cols + j] = 0 }          // an all-zero row: scale 1
        w[7 * cols + 3] = 900                               // an outlier row
        for fp8 in [DType.f8e4m3fn, .f8e5m2] {
            let fmax: Float = fp8 == .f8e4m3fn ? 448 : 57344
            for scaling in [FP8Scaling.perChannel, .perTensor] {
                let nScales = scaling == .perChannel ? rows : 1
                var results: [([Float], [UInt8])] = []
                for d in try TestDevices.all() {
                    for inType in [DType.f32, .bf16] {
                        let x = try d.tensor(w, shape: [rows, cols], dtype: inType)
                        let q = try d.empty([rows, cols], dtype: fp8)
                        let s = try d.empty([nScales], dtype: .f32)
                        let cl = try CommandList(device: d)
                        cl.capGrid(4)   // the 13 rows' workgroups spill from x into y on Vulkan
                        try cl.quantizeFP8(x, out: q, scales: s, scaling: scaling)
                        try cl.run()
                        let scales = try d.read(s), codes = try d.readBytes(q)
                        // Reference from the values the input really holds.
                        let held = quantized(w, inType)
                        for r in 0..<nScales {
                            let slice = scaling == .perChannel ? Array(held[r * cols..<(r + 1) * cols]) : held
                            let m = slice.map { Swift.abs($0) }.max() ?? 0
                            let want: Float = m > 0 ? m / fmax : 1
                            #expect(Swift.abs(scales[r] - want) <= want * 1e-6, "\(fp8) \(scaling) scale \(r): \(scales[r]) want \(want)")
                        }
                        // Dequantised values are within half an fp8 step of the input (relative 2^-4 / 2^-3).
                        let deq = FP8Tests.decode(codes, fp8)
                        let rel: Float = fp8 == .f8e4m3fn ? 0.0625 : 0.125
                        for i in 0..<(rows * cols) {
                            let s = scales[scaling == .perChannel ? i / cols : 0]
                            let err = Swift.abs(deq[i] * s - held[i])
                            #expect(err <= rel * Swift.abs(held[i]) + s * (fp8 == .f8e4m3fn ? 0.001953125 : 1.5e-5) + 1e-30,
                                    "\(fp8) \(scaling) element \(i): \(deq[i] * s) vs \(held[i])")
                        }
                        if inType == .f32 { results.append((scales, codes)) }
                    }
                }
                // Vulkan equals the CPU (a division may round differently by one ulp: allow a rare code step).
                if results.count == 2 {
                    let (s0, c0) = results[0], (s1, c1) = results[1]
                    for i in s0.indices { #expect(Swift.abs(s0[i] - s1[i]) <= s0[i] * 1e-6) }
                    let differing = zip(c0, c1).filter { $0 != $1 }.count
                    #expect(differing <= 2, "\(fp8) \(scaling): \(differing) codes differ between CPU and Vulkan")
                }
            }
        }
        TestDevices.checkValidation()
    }

    @Test func gemmWithFP8WeightsEqualsDecodedGEMM() throws {
        var rng = TestRandom(seed: 22)
        // (M, N, K, transposeB, per-channel): K 53 takes the scalar load path, K 64 the 4-byte vector path.
        let cases: [(Int, Int, Int, Bool, Bool)] = [(37, 29, 53, true, true), (37, 29, 64, true, false),
                                                      (9, 31, 20, false, true), (1, 5, 7, true, true)]
        for (m, n, k, transB, perChannel) in cases {
            for fp8 in [DType.f8e4m3fn, .f8e5m2] {
                let codes = (0..<(n * k)).map { _ -> UInt8 in
                    var c = UInt8(truncatingIfNeeded: rng.next())
                    if fp8 == .f8e4m3fn && c & 0x7f == 0x7f { c &= 0xfe }   // no NaN codes
                    if fp8 == .f8e5m2 && c & 0x7c == 0x7c { c &= 0xbb }     // no inf/NaN codes
                    return c
                }
                let wDec = FP8Tests.decode(codes, fp8)
                let scales = perChannel ? rng.floats(n, 0.001, 0.01) : [rng.uniform(0.001, 0.01)]
                let a = rng.floats(m * k)
                let bias = rng.floats(n)
                for aType in [DType.f32, .f16] {
                    let aHeld = quantized(a, aType)
                    // float64 reference: out = A · (decode(W) · scale)ᵀ + bias
                    var ref = [Double](repeating: 0, count: m * n)
                    for i in 0..<m {
                        for j in 0..<n {
                            var acc = 0.0
                            for kk in 0..<k {
                                let w = transB ? wDec[j * k + kk] : wDec[kk * n + j]
                                acc += Double(aHeld[i * k + kk]) * Double(w)
                            }
                            ref[i * n + j] = acc * Double(scales[perChannel ? j : 0]) + Double(bias[j])
                        }
                    }
                    for d in try TestDevices.all() {
                        let at = try d.tensor(a, shape: [m, k], dtype: aType)
                        let wt = try d.tensor(bytes: codes, shape: transB ? [n, k] : [k, n], dtype: fp8)
                        let st = try d.tensor(scales, shape: [scales.count])
                        let bt = try d.tensor(bias, shape: [n])
                        let out = try d.empty([m, n], dtype: .f32)
                        let cl = try CommandList(device: d)
                        try cl.gemm(at, wt, out: out, transposeB: transB, bias: bt, weightScale: st)
                        try cl.run()
                        let err = maxRelativeError(try d.read(out), ref)
                        #expect(err <= 1e-5, "\(d.name) \(fp8) \(aType) \(m)x\(n)x\(k) transB \(transB) perChannel \(perChannel): \(err)")
                    }
                }
            }
        }
        TestDevices.checkValidation()
    }

    @Test func quantizeThenGEMMApproximatesFullPrecision() throws {
        var rng = TestRandom(seed: 23)
        let m = 17, n = 24, k = 40
        let w = rng.floats(n * k, -0.2, 0.2), a = rng.floats(m * k)
        var ref = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for kk in 0..<k { ref[i * n + j] += Double(a[i * k + kk]) * Double(w[j * k + kk]) } } }
        for d in try TestDevices.all() {
            let wt = try d.tensor(w, shape: [n, k], dtype: .bf16)
            let q = try d.empty([n, k], dtype: .f8e4m3fn), s = try d.empty([n])
            let at = try d.tensor(a, shape: [m, k]), out = try d.empty([m, n])
            let cl = try CommandList(device: d)
            try cl.quantizeFP8(wt, out: q, scales: s, scaling: .perChannel)
            try cl.gemm(at, q, out: out, transposeB: true, weightScale: s)
            try cl.run()
            // e4m3 keeps 3 mantissa bits: a relative error of a few percent of the output scale.
            #expect(maxRelativeError(try d.read(out), ref) < 0.05)
        }
        TestDevices.checkValidation()
    }

    @Test func badInputIsAnError() throws {
        let d = TestDevices.cpu
        let a = try d.zeros([4, 8]), w = try d.zeros([6, 8], dtype: .f8e4m3fn), out = try d.empty([4, 6])
        let cl = try CommandList(device: d)
        #expect(throws: RuntimeError.self) { try cl.gemm(a, w, out: out, transposeB: true, weightScale: try d.zeros([5])) }
        #expect(throws: RuntimeError.self) { try cl.gemm(a, w, out: out, transposeB: true, weightScale: try d.zeros([6], dtype: .f16)) }
        #expect(throws: RuntimeError.self) { try cl.gemm(try d.zeros([4, 8], dtype: .f8e4m3fn), try d.zeros([6, 8]), out: out, transposeB: true) }
        #expect(throws: RuntimeError.self) { try cl.quantizeFP8(a, out: try d.empty([4, 8], dtype: .f16), scales: try d.empty([4]), scaling: .perChannel) }
        #expect(throws: RuntimeError.self) { try cl.quantizeFP8(a, out: try d.empty([4, 8], dtype: .f8e5m2), scales: try d.empty([3]), scaling: .perChannel) }
        #expect(throws: RuntimeError.self) { try cl.quantizeFP8(a, out: try d.empty([4, 8], dtype: .f8e5m2), scales: try d.empty([4]), scaling: .perTensor) }
    }
}
