/// Bit-exact scalar conversions between `Float` and the narrow storage formats, matching the shaders
/// in `Shaders/include/common.glsl`: round to nearest even; fp16 overflows to infinity (as PyTorch);
/// fp8 saturates to its largest finite value (as PyTorch's saturating casts and ComfyUI do), NaN stays NaN.
public enum ScalarConversion {
    /// IEEE half bits → Float (exact).
    @inline(__always)
    public static func f16ToFloat(_ h: UInt16) -> Float { Float(Float16(bitPattern: h)) }

    /// Float → IEEE half bits, round to nearest even.
    @inline(__always)
    public static func floatToF16(_ f: Float) -> UInt16 { Float16(f).bitPattern }

    /// bfloat16 bits → Float (exact).
    @inline(__always)
    public static func bf16ToFloat(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// Float → bfloat16 bits, round to nearest even; NaN stays a quiet NaN.
    @inline(__always)
    public static func floatToBF16(_ f: Float) -> UInt16 {
        let x = f.bitPattern
        if x & 0x7fff_ffff > 0x7f80_0000 { return UInt16(truncatingIfNeeded: (x >> 16) | 0x40) }
        let r = x &+ 0x7fff &+ ((x >> 16) & 1)
        return UInt16(truncatingIfNeeded: r >> 16)
    }

    /// float8 e4m3fn bits → Float (exact). 0x7f / 0xff are NaN; there are no infinities.
    public static func f8e4m3ToFloat(_ b: UInt8) -> Float {
        let s = (b >> 7) & 1, e = Int((b >> 3) & 15), m = Int(b & 7)
        var v: Float
        if e == 15 && m == 7 { v = .nan }
        else if e == 0 { v = Float(m) * 0.001953125 }
        else { v = Float(sign: .plus, exponent: e - 7, significand: 1 + Float(m) / 8) }
        return s == 1 ? -v : v
    }

    /// float8 e5m2 bits → Float (exact): the top byte of an IEEE half.
    public static func f8e5m2ToFloat(_ b: UInt8) -> Float { f16ToFloat(UInt16(b) << 8) }

    /// Float → float8 e4m3fn, round to nearest even, saturating at ±448; NaN → 0x7f.
    public static func floatToF8E4M3(_ f: Float) -> UInt8 {
        let x = f.bitPattern
        let s = UInt8(truncatingIfNeeded: (x >> 24) & 0x80)
        let a = x & 0x7fff_ffff
        if a > 0x7f80_0000 { return s | 0x7f }
        if a >= 0x43e0_0000 { return s | 0x7e }
        return s | smallMagnitude(a, mantissaBits: 3, bias: 7, maxBits: 0x7e)
    }

    /// Float → float8 e5m2, round to nearest even, saturating at ±57344; NaN → 0x7f.
    public static func floatToF8E5M2(_ f: Float) -> UInt8 {
        let x = f.bitPattern
        let s = UInt8(truncatingIfNeeded: (x >> 24) & 0x80)
        let a = x & 0x7fff_ffff
        if a > 0x7f80_0000 { return s | 0x7f }
        if a >= 0x4760_0000 { return s | 0x7b }
        return s | smallMagnitude(a, mantissaBits: 2, bias: 15, maxBits: 0x7b)
    }

    /// Rounds a finite non-negative Float (given as bits) into a small float format's magnitude bits.
    private static func smallMagnitude(_ a: UInt32, mantissaBits mb: Int, bias: Int, maxBits: UInt8) -> UInt8 {
        let v = Float(bitPattern: a)
        let e = Int(a >> 23) - 127
        let emin = 1 - bias
        var ee = max(e, emin)
        let scaled = v * Float(sign: .plus, exponent: -(ee - mb), significand: 1)
        var n = Int(scaled.rounded(.toNearestOrEven))
        if n == 0 { return 0 }
        let enc: Int
        if ee == emin && n < (1 << mb) {
            enc = n
        } else {
            if n >= (2 << mb) { n >>= 1; ee += 1 }
            enc = ((ee + bias) << mb) | (n & ((1 << mb) - 1))
        }
        return UInt8(min(enc, Int(maxBits)))
    }
}
