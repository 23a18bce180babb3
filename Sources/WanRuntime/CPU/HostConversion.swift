/// Bulk conversion between `Float` and every dtype's raw little-endian bytes, on the host. Used for
/// uploads and downloads and by the CPU kernels that load and store non-f32 tensors.
public enum HostConversion {
    /// Encodes floats as `dtype` bytes (round to nearest even; fp8 saturating; ints truncate toward zero).
    public static func encode(_ values: [Float], as dtype: DType) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * dtype.size)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { dst in store(src.baseAddress!, to: dst.baseAddress!, dtype: dtype, count: values.count) }
        }
        return out
    }

    /// Decodes `dtype` bytes to floats (exact for every float type).
    public static func decode(_ bytes: [UInt8], as dtype: DType) -> [Float] {
        let n = bytes.count / dtype.size
        var out = [Float](repeating: 0, count: n)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in load(src.baseAddress!, dtype: dtype, into: dst.baseAddress!, count: n) }
        }
        return out
    }

    /// Loads `count` elements of `dtype` at `src` (element 0) into floats.
    @inline(__always)
    static func load(_ src: UnsafeRawPointer, dtype: DType, into dst: UnsafeMutablePointer<Float>, count: Int) {
        switch dtype {
        case .f32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16:
            let s = src.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { dst[i] = halfToFloat(s[i]) }
        case .bf16:
            let s = src.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { dst[i] = Float(bitPattern: UInt32(s[i]) << 16) }
        case .f8e4m3fn:
            let s = src.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { dst[i] = f8e4m3Table[Int(s[i])] }
        case .f8e5m2:
            let s = src.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { dst[i] = ScalarConversion.f8e5m2ToFloat(s[i]) }
        case .i32:
            let s = src.assumingMemoryBound(to: Int32.self)
            for i in 0..<count { dst[i] = Float(s[i]) }
        case .u8:
            let s = src.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { dst[i] = Float(s[i]) }
        }
    }

    /// Stores `count` floats at `src` as `dtype` elements at `dst`.
    @inline(__always)
    static func store(_ src: UnsafePointer<Float>, to dst: UnsafeMutableRawPointer, dtype: DType, count: Int) {
        switch dtype {
        case .f32: dst.assumingMemoryBound(to: Float.self).update(from: src, count: count)
        case .f16:
            let d = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { d[i] = floatToHalf(src[i]) }
        case .bf16:
            let d = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { d[i] = ScalarConversion.floatToBF16(src[i]) }
        case .f8e4m3fn:
            let d = dst.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { d[i] = ScalarConversion.floatToF8E4M3(src[i]) }
        case .f8e5m2:
            let d = dst.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { d[i] = ScalarConversion.floatToF8E5M2(src[i]) }
        case .i32:
            let d = dst.assumingMemoryBound(to: Int32.self)
            for i in 0..<count {
                let v = src[i]
                d[i] = v.isNaN ? 0 : Int32(max(-2_147_483_648, min(2_147_483_520, v.rounded(.towardZero))))
            }
        case .u8:
            let d = dst.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count {
                let v = src[i]
                d[i] = v.isNaN ? 0 : UInt8(max(0, min(255, v.rounded(.towardZero))))
            }
        }
    }

    /// IEEE half → Float, exact, without the (software, on x86) Float16 conversion: the bits are moved
    /// into place and the exponent rebiased; subnormals are normalised with one float subtraction.
    @inline(__always)
    static func halfToFloat(_ h: UInt16) -> Float {
        let shiftedExp: UInt32 = 0x7c00 << 13
        var o = UInt32(h & 0x7fff) << 13
        let exp = o & shiftedExp
        o &+= (127 - 15) << 23
        if exp == shiftedExp {
            o &+= (128 - 16) << 23                       // inf / NaN
        } else if exp == 0 {
            o &+= 1 << 23                                // subnormal: renormalise
            o = (Float(bitPattern: o) - Float(bitPattern: 113 << 23)).bitPattern
        }
        return Float(bitPattern: o | UInt32(h & 0x8000) << 16)
    }

    /// Float → IEEE half bits, round to nearest even, overflow to infinity, NaN kept quiet: integer
    /// rounding for normal results, one float addition (which rounds to nearest even) for subnormal ones.
    @inline(__always)
    static func floatToHalf(_ f: Float) -> UInt16 {
        var x = f.bitPattern
        let sign = x & 0x8000_0000
        x ^= sign
        let o: UInt32
        if x >= 0x4780_0000 {                            // |f| >= 65536, inf or NaN
            o = x > 0x7f80_0000 ? 0x7e00 : 0x7c00
        } else if x < 0x3880_0000 {                      // subnormal half or zero
            let magic: UInt32 = ((127 - 15) + (23 - 10) + 1) << 23
            o = (Float(bitPattern: x) + Float(bitPattern: magic)).bitPattern &- magic
        } else {
            let odd = (x >> 13) & 1
            o = (x &+ (UInt32(bitPattern: Int32(15 - 127)) << 23) &+ 0xfff &+ odd) >> 13
        }
        return UInt16(truncatingIfNeeded: o | sign >> 16)
    }

    /// All 256 e4m3fn values, for table decoding.
    static let f8e4m3Table: [Float] = (0..<256).map { ScalarConversion.f8e4m3ToFloat(UInt8($0)) }
}
