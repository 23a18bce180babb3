import Foundation

/// Vectorised float32 math of the CPU kernels (8 lanes): `exp` and `exp2` from polynomials (within a few ulp
/// of the platform's functions), and the row operations built on them — the activations (SiLU, GELU-tanh,
/// sigmoid), softmax's exponentials and the online softmax of the CPU attention. The scalar platform functions
/// cost 10–20 ns an element, which made the activations a noticeable share of a CPU model forward.
enum FastMath {
    typealias V = SIMD8<Float>

    /// The largest of `n` floats (−∞ for none; NaN-free inputs assumed). Compare-and-select on four
    /// accumulators: the standard library's `pointwiseMax` ran 9x slower (not vectorised).
    @inline(__always)
    static func max(_ x: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
        var m0 = V(repeating: -.infinity), m1 = m0, m2 = m0, m3 = m0
        var i = 0
        while i + 32 <= n {
            let p = UnsafeRawPointer(x + i)
            let a = p.loadUnaligned(fromByteOffset: 0, as: V.self), b = p.loadUnaligned(fromByteOffset: 32, as: V.self)
            let c = p.loadUnaligned(fromByteOffset: 64, as: V.self), d = p.loadUnaligned(fromByteOffset: 96, as: V.self)
            m0 = m0.replacing(with: a, where: a .> m0)
            m1 = m1.replacing(with: b, where: b .> m1)
            m2 = m2.replacing(with: c, where: c .> m2)
            m3 = m3.replacing(with: d, where: d .> m3)
            i += 32
        }
        while i + 8 <= n {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            m0 = m0.replacing(with: a, where: a .> m0)
            i += 8
        }
        m0 = m0.replacing(with: m1, where: m1 .> m0)
        m2 = m2.replacing(with: m3, where: m3 .> m2)
        m0 = m0.replacing(with: m2, where: m2 .> m0)
        var r = m0.max()
        while i < n { r = Swift.max(r, x[i]); i += 1 }
        return r
    }

    /// x[i] = 2^(x[i] − shift) for i < n (x[i] ≤ shift), returning their sum.
    @inline(__always)
    static func exp2Shifted(_ x: UnsafeMutablePointer<Float>, _ n: Int, by shift: Float) -> Float {
        var sum = V(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let e = exp2(UnsafeRawPointer(x + i).loadUnaligned(as: V.self) - shift)
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: V.self)
            sum += e
            i += 8
        }
        if i < n {
            var t = V(repeating: -.infinity)
            for j in 0..<(n - i) { t[j] = x[i + j] - shift }
            let e = exp2(t)
            for j in 0..<(n - i) { x[i + j] = e[j] }
            sum += e
        }
        return sum.sum()
    }

    /// 2^x for x ≤ 0 (0 below −126; NaN stays NaN), relative error about 2e-7: x = n + f with n an
    /// integer and |f| ≤ 1/2, 2^f from its degree-7 Taylor polynomial, 2^n from the exponent bits.
    @inline(__always)
    static func exp2(_ x: V) -> V {
        let xc = x.replacing(with: -127, where: x .< -127)
        let magic = V(repeating: 12_582_912) // 1.5·2^23: adding it rounds to an integer
        let t = xc + magic
        let f = xc - (t - magic)
        var p = V(repeating: 1.525_273_4e-5)
        p = p * f + 1.540_353_0e-4
        p = p * f + 1.333_355_8e-3
        p = p * f + 9.618_129_1e-3
        p = p * f + 5.550_410_9e-2
        p = p * f + 0.240_226_51
        p = p * f + 0.693_147_18
        p = p * f + 1
        let n = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((n &+ 127) &<< 23, to: V.self)
        return (p * scale).replacing(with: 0, where: x .< -126)
    }

    /// e^x for every float x, within about 2 ulp of `expf` (Cephes' reduction x = n·ln 2 + r with ln 2 in two
    /// parts, |r| ≤ ln2/2, and its degree-7 polynomial; 2^n applied in two halves so that overflow gives +∞ and
    /// tiny results come out subnormal or 0). NaN stays NaN.
    @inline(__always)
    static func exp(_ x: V) -> V {
        // Clamped with compare-and-select (NaN stays NaN; `pointwiseMin`/`pointwiseMax` are not vectorised).
        let lo = V(repeating: -103.97), hi = V(repeating: 88.73)
        let xc = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
        let magic = V(repeating: 12_582_912)
        let t = xc * 1.442_695_040_888_963_4 + magic       // n = round(x / ln 2), in the low bits
        let fx = t - magic
        let r = xc - fx * 0.693_359_375 - fx * -2.121_944_4e-4
        let z = r * r
        var y = V(repeating: 1.987_569_150_0e-4)
        y = y * r + 1.398_199_950_7e-3
        y = y * r + 8.333_451_907_3e-3
        y = y * r + 4.166_579_589_4e-2
        y = y * r + 1.666_666_545_9e-1
        y = y * r + 5.000_000_120_1e-1
        y = y * z + r + 1
        let n = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let n1 = n &>> 1, n2 = n &- n1
        let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: V.self), s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: V.self)
        return (y * s1 * s2).replacing(with: 0, where: x .< -103.97).replacing(with: x, where: x .!= x)
    }

    /// Applies `f` to `count` floats in place, 8 at a time (the tail padded with zeros).
    @inline(__always)
    static func map(_ v: UnsafeMutablePointer<Float>, _ count: Int, _ f: (V) -> V) {
        var i = 0
        while i + 8 <= count {
            UnsafeMutableRawPointer(v + i).storeBytes(of: f(UnsafeRawPointer(v + i).loadUnaligned(as: V.self)), as: V.self)
            i += 8
        }
        if i < count {
            var t = V(repeating: 0)
            for j in 0..<(count - i) { t[j] = v[i + j] }
            let y = f(t)
            for j in 0..<(count - i) { v[i + j] = y[j] }
        }
    }

    /// SiLU x·σ(x) = x / (1 + e^−x), in place.
    static func silu(_ v: UnsafeMutablePointer<Float>, _ count: Int) {
        map(v, count) { x in x / (1 + exp(-x)) }
    }

    /// GELU with the tanh approximation, 0.5·x·(1 + tanh(u)) = x / (1 + e^(−2u)) with u = √(2/π)·(x + 0.044715·x³)
    /// (no cancellation for negative x), in place.
    static func geluTanh(_ v: UnsafeMutablePointer<Float>, _ count: Int) {
        map(v, count) { x in
            let u = 0.797_884_560_8 * (x + 0.044715 * x * x * x)
            return x / (1 + exp(-2 * u))
        }
    }

    /// The logistic function 1 / (1 + e^−x), in place.
    static func sigmoid(_ v: UnsafeMutablePointer<Float>, _ count: Int) {
        map(v, count) { x in 1 / (1 + exp(-x)) }
    }

    /// x[i] = e^(x[i] − shift), in place.
    static func expShifted(_ v: UnsafeMutablePointer<Float>, _ count: Int, by shift: Float) {
        map(v, count) { x in exp(x - shift) }
    }
}
