import Dispatch
import WanRuntime

/// The project's seeded standard-normal generator for the initial latent noise: the same seed gives the same
/// float32 values on every machine and device (the noise is always made on the host, with integer arithmetic
/// and IEEE-754 double `+ − × ÷ √` only: no platform `log`/`sin`/`cos`, no fused multiply-add).
///
/// It is NOT PyTorch's `torch.randn` (whose CUDA stream is not even portable between GPUs, spec §8.7); to
/// reproduce a PyTorch run, load its noise tensor instead.
///
/// Exact algorithm, for element j of the flattened (row-major) tensor, pair p = j / 2:
/// 1. SplitMix64 stream of `seed`: output n (0-based) is `mix(seed &+ (n + 1) &* 0x9E3779B97F4A7C15)` with
///    `mix(z)`: `z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) &* 0x94D049BB133111EB;
///    z ^ (z >> 31)` (all UInt64, wrapping). Pair p uses outputs 2p and 2p + 1: `k1 = out(2p) >> 11`,
///    `k2 = out(2p + 1) >> 11` (53-bit integers).
/// 2. `u1 = (k1 + 1) · 2⁻⁵³` ∈ (0, 1]; `r = √(−2·ln u1)` with `ln` below.
/// 3. The angle 2π·k2·2⁻⁵³ as quarter turns: `q = (k2 + 2⁵⁰) >> 51` (0…4), remainder
///    `ρ = Double(k2 − q·2⁵¹) · 2⁻⁵¹` ∈ [−½, ½], `x = ρ · 1.5707963267948966`; `(sin x, cos x)` by the Taylor
///    polynomials `x·Σₖ₌₀⁹ (−1)ᵏx²ᵏ/(2k+1)!` and `Σₖ₌₀¹⁰ (−1)ᵏx²ᵏ/(2k)!` (Horner in x², coefficients as the
///    correctly rounded doubles written out in `sinCosQuarter`); then by `q mod 4`:
///    (cos θ, sin θ) = (c, s), (−s, c), (−c, −s), (s, −c).
/// 4. Element 2p = `Float(r·cos θ)`, element 2p + 1 = `Float(r·sin θ)` (round to nearest even); an odd count
///    drops the last sine.
///
/// `ln u` (u > 0): `u = m·2ᵉ` with m ∈ [1, 2) (exact); if m > 1.4142135623730951 then m /= 2, e += 1;
/// `s = (m − 1)/(m + 1)`, `a = 1/23`, then for k = 10 … 0: `a = a·s² + 1/(2k + 1)`; `ln m = 2·s·a`;
/// `ln u = e·0.693147180369123816490 + (ln m + e·1.90821492927058770002e-10)` (fdlibm's split ln 2).
/// These agree with the platform `log`, `sin`, `cos` to about 1e-15; the point is that they are bit-identical
/// everywhere. Element j depends only on (seed, j), so any prefix of a longer run is the shorter run.
/// `Tests/WanPipelinesTests/Fixtures/generate_samplers.py` re-implements this in Python for the golden values.
public enum SeededNoise {
    /// The largest element count accepted (16 GiB of float32).
    public static let maxCount = 1 << 32

    /// `count` standard-normal float32 values for `seed`. Throws `RuntimeError.invalidArgument` for a negative
    /// count or one above `maxCount`.
    public static func normal(count: Int, seed: UInt64) throws -> [Float] {
        guard count >= 0 else {
            throw RuntimeError.invalidArgument("noise: element count must be >= 0, got \(count)")
        }
        guard count <= maxCount else {
            throw RuntimeError.invalidArgument("noise: \(count) elements is more than the limit \(maxCount)")
        }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress { fill(base, count: count, seed: seed) }
            initialized = count
        }
    }

    /// Standard-normal float32 values for a tensor of `shape` (row-major), e.g. `[16, T, H, W]` for a latent.
    /// Throws `RuntimeError.invalidArgument` for a negative dimension or a size above `maxCount`.
    public static func normal(shape: [Int], seed: UInt64) throws -> [Float] {
        var count = 1
        for d in shape {
            guard d >= 0 else {
                throw RuntimeError.invalidArgument("noise: negative dimension in shape \(shape)")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= maxCount else {
                throw RuntimeError.invalidArgument("noise: shape \(shape) has more than \(maxCount) elements")
            }
            count = product
        }
        return try normal(count: count, seed: seed)
    }

    /// Fills `count` values, in parallel chunks of pairs for large counts (element j depends only on j).
    private static func fill(_ base: UnsafeMutablePointer<Float>, count: Int, seed: UInt64) {
        let pairs = count / 2 + count % 2
        let chunkPairs = 1 << 16
        let chunks = (pairs + chunkPairs - 1) / chunkPairs
        // Chunks write disjoint ranges of the buffer.
        nonisolated(unsafe) let out = base
        let body: @Sendable (Int) -> Void = { chunk in
            let lo = chunk * chunkPairs, hi = min(pairs, lo + chunkPairs)
            for p in lo..<hi {
                let (z0, z1) = pair(seed: seed, index: UInt64(p))
                out[2 * p] = Float(z0)
                if 2 * p + 1 < count { out[2 * p + 1] = Float(z1) }
            }
        }
        if chunks <= 1 {
            if chunks == 1 { body(0) }
        } else {
            DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
        }
    }

    /// The two float64 normals of pair `index` (elements 2·index and 2·index + 1, before the float32 rounding).
    static func pair(seed: UInt64, index: UInt64) -> (Double, Double) {
        let k1 = splitMix64(seed: seed, index: 2 &* index) >> 11
        let k2 = splitMix64(seed: seed, index: 2 &* index &+ 1) >> 11
        let u1 = Double(k1 + 1) * 0x1p-53
        let radius = (-2.0 * deterministicLog(u1)).squareRoot()
        let q = (k2 + (1 << 50)) >> 51
        let remainder = Double(Int64(bitPattern: k2 &- (q << 51))) * 0x1p-51
        let (s, c) = sinCosQuarter(remainder)
        let cosTheta: Double, sinTheta: Double
        switch q & 3 {
        case 0: (cosTheta, sinTheta) = (c, s)
        case 1: (cosTheta, sinTheta) = (-s, c)
        case 2: (cosTheta, sinTheta) = (-c, -s)
        default: (cosTheta, sinTheta) = (s, -c)
        }
        return (radius * cosTheta, radius * sinTheta)
    }

    /// Output `index` (0-based) of the SplitMix64 generator seeded with `seed`.
    static func splitMix64(seed: UInt64, index: UInt64) -> UInt64 {
        var z = seed &+ (index &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// ln(u) for finite u > 0 with + − × ÷ only (see the type's documentation).
    static func deterministicLog(_ u: Double) -> Double {
        var m = u.significand
        var e = Double(u.exponent)
        if m > 1.4142135623730951 {
            m *= 0.5
            e += 1
        }
        let s = (m - 1.0) / (m + 1.0)
        let s2 = s * s
        // Horner from 1/23 down to 1/1 (each 1/(2k + 1) a correctly rounded double).
        var acc = 1.0 / 23.0
        acc = acc * s2 + 1.0 / 21.0
        acc = acc * s2 + 1.0 / 19.0
        acc = acc * s2 + 1.0 / 17.0
        acc = acc * s2 + 1.0 / 15.0
        acc = acc * s2 + 1.0 / 13.0
        acc = acc * s2 + 1.0 / 11.0
        acc = acc * s2 + 1.0 / 9.0
        acc = acc * s2 + 1.0 / 7.0
        acc = acc * s2 + 1.0 / 5.0
        acc = acc * s2 + 1.0 / 3.0
        acc = acc * s2 + 1.0
        let lnM = 2.0 * s * acc
        return e * 6.93147180369123816490e-01 + (lnM + e * 1.90821492927058770002e-10)
    }

    /// (sin x, cos x) for x = r·π/2, r ∈ [−½, ½]: Horner in x² over the Taylor coefficients (−1)ᵏ/(2k+1)!,
    /// k = 9 … 0, and (−1)ᵏ/(2k)!, k = 10 … 0, each the correctly rounded double written out below.
    static func sinCosQuarter(_ r: Double) -> (Double, Double) {
        let x = r * 1.5707963267948966
        let x2 = x * x
        var s = -8.22063524662433e-18
        s = s * x2 + 2.8114572543455206e-15
        s = s * x2 + -7.647163731819816e-13
        s = s * x2 + 1.6059043836821613e-10
        s = s * x2 + -2.505210838544172e-08
        s = s * x2 + 2.7557319223985893e-06
        s = s * x2 + -0.0001984126984126984
        s = s * x2 + 0.008333333333333333
        s = s * x2 + -0.16666666666666666
        s = s * x2 + 1.0
        s = s * x
        var c = 4.110317623312165e-19
        c = c * x2 + -1.5619206968586225e-16
        c = c * x2 + 4.779477332387385e-14
        c = c * x2 + -1.1470745597729725e-11
        c = c * x2 + 2.08767569878681e-09
        c = c * x2 + -2.755731922398589e-07
        c = c * x2 + 2.48015873015873e-05
        c = c * x2 + -0.001388888888888889
        c = c * x2 + 0.041666666666666664
        c = c * x2 + -0.5
        c = c * x2 + 1.0
        return (s, c)
    }
}
