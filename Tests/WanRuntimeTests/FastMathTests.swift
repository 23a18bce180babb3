import Foundation
import Testing
@testable import WanRuntime

/// The vectorised exponentials and activations of the CPU kernels against float64 references.
@Suite struct FastMathTests {
    static func ulpError(_ got: Float, _ want: Double) -> Double {
        guard want.isFinite, want != 0 else { return got == Float(want) ? 0 : .infinity }
        return abs(Double(got) - want) / Double(Float(want).ulp)
    }

    @Test func expIsWithinAFewUlp() throws {
        var worst = 0.0, worstX: Float = 0
        var x: Float = -87.3
        var values: [Float] = []
        while x < 88.7 { values.append(x); x += 0.001_37 }
        values += [0, -0, 1e-8, -1e-8, 88.72, -87.33, 0.3465736, -0.3465736]
        for chunk in Swift.stride(from: 0, to: values.count, by: 8) {
            var v = SIMD8<Float>(repeating: 0)
            let n = min(8, values.count - chunk)
            for j in 0..<n { v[j] = values[chunk + j] }
            let e = FastMath.exp(v)
            for j in 0..<n {
                let err = Self.ulpError(e[j], Foundation.exp(Double(v[j])))
                if err > worst { (worst, worstX) = (err, v[j]) }
            }
        }
        #expect(worst <= 3, "max error \(worst) ulp at x = \(worstX)")
        // Overflow, underflow, NaN, infinities.
        let edge = FastMath.exp(SIMD8<Float>(89, 1000, .infinity, -104, -1000, -.infinity, .nan, -95))
        #expect(edge[0] == .infinity && edge[1] == .infinity && edge[2] == .infinity)
        #expect(edge[3] < 1e-44 && edge[4] == 0 && edge[5] == 0 && edge[6].isNaN)
        #expect(Self.ulpError(edge[7], Foundation.exp(-95.0)) <= 1.5)   // a subnormal result
    }

    @Test func activationsMatchFloat64() throws {
        let n = 1003
        let xs = (0..<n).map { Float($0 - 501) * 0.037 } + [-120, 120, -30, 30]
        func check(_ name: String, tolerance: Double = 1e-6, upTo limit: Float = .infinity,
                   _ f: (UnsafeMutablePointer<Float>, Int) -> Void, _ ref: (Double) -> Double) {
            let xs = xs.filter { $0 <= limit }
            var v = xs
            v.withUnsafeMutableBufferPointer { f($0.baseAddress!, $0.count) }
            var worst = 0.0
            for (i, x) in xs.enumerated() {
                let want = ref(Double(x))
                worst = max(worst, abs(Double(v[i]) - want) / max(abs(want), 1e-6))
            }
            #expect(worst < tolerance, "\(name): relative error \(worst)")
        }
        check("silu", FastMath.silu) { $0 / (1 + Foundation.exp(-$0)) }
        check("sigmoid", FastMath.sigmoid) { 1 / (1 + Foundation.exp(-$0)) }
        // For large negative x the result is tiny and e^(−2u) carries u's fp32 rounding: a few ulp of x³.
        check("geluTanh", tolerance: 4e-6, FastMath.geluTanh) { 0.5 * $0 * (1 + Foundation.tanh(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0))) }
        check("expShifted", upTo: 90, { FastMath.expShifted($0, $1, by: 3) }) { Foundation.exp(Double(Float($0) - 3)) }
    }
}
