import Testing
@testable import WanRuntime

@Suite struct ConvertTests {
    /// Scalar conversions against independent definitions and PyTorch's documented values.
    @Test func scalarConversions() {
        // bf16 round to nearest even: 1 + 2^-8 is a tie -> 1.0; 1 + 3*2^-8 -> 1 + 2^-6.
        #expect(ScalarConversion.floatToBF16(1 + 1.0 / 256) == 0x3f80)
        #expect(ScalarConversion.floatToBF16(1 + 3.0 / 256) == 0x3f82)
        #expect(ScalarConversion.floatToBF16(.nan) & 0x7fc0 == 0x7fc0)
        // e4m3fn: max 448, saturating; smallest subnormal 2^-9.
        #expect(ScalarConversion.floatToF8E4M3(448) == 0x7e)
        #expect(ScalarConversion.floatToF8E4M3(1000) == 0x7e)
        #expect(ScalarConversion.floatToF8E4M3(-.infinity) == 0xfe)
        #expect(ScalarConversion.floatToF8E4M3(.nan) == 0x7f)
        #expect(ScalarConversion.f8e4m3ToFloat(0x01) == 0.001953125)
        #expect(ScalarConversion.floatToF8E4M3(0.001953125 / 2) == 0)      // tie to even -> 0
        #expect(ScalarConversion.floatToF8E4M3(0.001953125 * 1.5) == 0x02) // tie to even -> 2
        #expect(ScalarConversion.f8e4m3ToFloat(0x7e) == 448)
        // e5m2: max 57344, saturating.
        #expect(ScalarConversion.floatToF8E5M2(60000) == 0x7b)
        #expect(ScalarConversion.f8e5m2ToFloat(0x7b) == 57344)
        #expect(ScalarConversion.f8e5m2ToFloat(0x7c) == .infinity)
        // Every e4m3fn and e5m2 code round-trips (except NaN payloads).
        for b in 0...255 {
            let v = ScalarConversion.f8e4m3ToFloat(UInt8(b))
            if !v.isNaN { #expect(ScalarConversion.floatToF8E4M3(v) == UInt8(b)) }
            let w = ScalarConversion.f8e5m2ToFloat(UInt8(b))
            if w.isFinite { #expect(ScalarConversion.floatToF8E5M2(w) == UInt8(b)) }
        }
    }

    /// fp8 rounding against a brute-force nearest-even search over all finite codes.
    @Test func fp8RoundingMatchesNearestEven() {
        var rng = TestRandom(seed: 7)
        for (dtype, maxFinite) in [(DType.f8e4m3fn, Float(448)), (.f8e5m2, 57344)] {
            let codes = (0..<128).map { UInt8($0) }.filter {
                let v = dtype == .f8e4m3fn ? ScalarConversion.f8e4m3ToFloat($0) : ScalarConversion.f8e5m2ToFloat($0)
                return v.isFinite
            }
            let values = codes.map { dtype == .f8e4m3fn ? ScalarConversion.f8e4m3ToFloat($0) : ScalarConversion.f8e5m2ToFloat($0) }
            for _ in 0..<2000 {
                let x = rng.uniform(0, 1) * (rng.next() % 2 == 0 ? maxFinite : 1)
                let got = dtype == .f8e4m3fn ? ScalarConversion.floatToF8E4M3(x) : ScalarConversion.floatToF8E5M2(x)
                // nearest; ties to the even code
                var best = 0
                for i in values.indices {
                    let d = abs(Double(values[i]) - Double(x)), db = abs(Double(values[best]) - Double(x))
                    if d < db || (d == db && codes[i] % 2 == 0) { best = i }
                }
                #expect(got == codes[best], "\(dtype) \(x): got \(got) want \(codes[best])")
            }
        }
    }

    /// Every pair of dtypes converts identically on the CPU and on Vulkan, bit for bit.
    @Test func convertAllPairsBothDevices() throws {
        var rng = TestRandom(seed: 11)
        var values = rng.floats(1000, -600, 600) + rng.floats(1000, -2, 2) + rng.floats(997, -1e-3, 1e-3)
        values += [0, -0, .infinity, -.infinity, .nan, 65504, 65520, 1e-8, 448, 464, 57344, 70000, 255, 256, -1]
        let n = values.count
        for src in DType.allCases {
            let input = HostConversion.encode(values, as: src)
            for dst in DType.allCases {
                var results: [[UInt8]] = []
                for device in try TestDevices.all() {
                    let x = try device.tensor(bytes: input, shape: [n], dtype: src)
                    let y = try device.empty([n], dtype: dst)
                    let cl = try CommandList(device: device)
                    try cl.convert(x, out: y)
                    try cl.run()
                    results.append(try device.readBytes(y))
                }
                // Reference: host decode then host encode.
                let expected = HostConversion.encode(HostConversion.decode(input, as: src), as: dst)
                for (i, r) in results.enumerated() {
                    let a = HostConversion.decode(r, as: dst), e = HostConversion.decode(expected, as: dst)
                    let mismatch = zip(a, e).enumerated().first { !($0.element.0 == $0.element.1 || ($0.element.0.isNaN && $0.element.1.isNaN)) }
                    #expect(mismatch == nil, "\(src)->\(dst) device \(i): element \(mismatch?.offset ?? -1) got \(mismatch?.element.0 ?? 0) want \(mismatch?.element.1 ?? 0) (input \(values[mismatch?.offset ?? 0]))")
                }
            }
        }
        TestDevices.checkValidation()
    }
}

/// The host's fast fp16 conversions against Swift's `Float16` on every half value and on floats around
/// every rounding boundary.
@Suite struct HalfConversionTests {
    @Test func everyHalfDecodes() {
        for h in 0...0xffff {
            let want = Float(Float16(bitPattern: UInt16(h)))
            let got = HostConversion.halfToFloat(UInt16(h))
            #expect(got.bitPattern == want.bitPattern || (got.isNaN && want.isNaN), "half 0x\(String(h, radix: 16))")
        }
    }

    @Test func floatsRoundLikeFloat16() {
        var rng = TestRandom(seed: 5)
        var values: [Float] = [0, -0, .infinity, -.infinity, .nan, 65504, 65519.99, 65520, 65536, 1e-8, 2.98e-8, 5.96e-8,
                               6.1e-5, 6.1035156e-5, 1e30, -1e-30, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        for h in stride(from: 0, through: 0x7bff, by: 7) {
            // Each half, the midpoint to the next one, and a hair on either side of it.
            let a = Float(Float16(bitPattern: UInt16(h))), b = Float(Float16(bitPattern: UInt16(h + 1)))
            let mid = (a + b) / 2
            values += [a, mid, mid.nextUp, mid.nextDown, -mid]
        }
        values += (0..<20000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        for v in values {
            let want = Float16(v).bitPattern, got = HostConversion.floatToHalf(v)
            let bothNaN = Float16(bitPattern: want).isNaN && Float16(bitPattern: got).isNaN
            #expect(got == want || bothNaN, "\(v) (0x\(String(v.bitPattern, radix: 16))): got 0x\(String(got, radix: 16)) want 0x\(String(want, radix: 16))")
        }
    }
}
