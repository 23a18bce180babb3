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
            let s = src.assumingMemoryBound(to: Float16.self)
            for i in 0..<count { dst[i] = Float(s[i]) }
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
            let d = dst.assumingMemoryBound(to: Float16.self)
            for i in 0..<count { d[i] = Float16(src[i]) }
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

    /// All 256 e4m3fn values, for table decoding.
    static let f8e4m3Table: [Float] = (0..<256).map { ScalarConversion.f8e4m3ToFloat(UInt8($0)) }
}
