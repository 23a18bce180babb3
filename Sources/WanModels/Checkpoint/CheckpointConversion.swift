import Foundation
import WanRuntime

/// Host conversion of checkpoint elements (any `CheckpointDType`, unaligned little-endian bytes) to
/// runtime dtypes. Floats convert through `Float` (round to nearest even; fp8 saturating, as the
/// runtime's `ScalarConversion`); integers convert exactly with a range check.
enum CheckpointConversion {
    /// All 256 e4m3fn values.
    static let e4m3Table: [Float] = (0..<256).map { ScalarConversion.f8e4m3ToFloat(UInt8($0)) }
    /// All 256 e5m2 values.
    static let e5m2Table: [Float] = (0..<256).map { ScalarConversion.f8e5m2ToFloat(UInt8($0)) }

    /// Elements per parallel chunk.
    static let chunk = 1 << 16

    /// Decodes elements `start..<start+count` of `src` (elements of `dtype`) into floats at `dst`.
    static func decode(_ src: UnsafeRawBufferPointer, _ dtype: CheckpointDType,
                       into dst: UnsafeMutablePointer<Float>, start: Int, count: Int) {
        guard count > 0, let base = src.baseAddress else { return }
        let p = base + start * dtype.size
        switch dtype {
        case .f64: for i in 0..<count { dst[i] = Float(p.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: p, byteCount: 4 * count)
        case .f16:
            for i in 0..<count { dst[i] = Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16:
            for i in 0..<count { dst[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        case .f8e4m3fn:
            e4m3Table.withUnsafeBufferPointer { t in for i in 0..<count { dst[i] = t[Int(p.load(fromByteOffset: i, as: UInt8.self))] } }
        case .f8e5m2:
            e5m2Table.withUnsafeBufferPointer { t in for i in 0..<count { dst[i] = t[Int(p.load(fromByteOffset: i, as: UInt8.self))] } }
        case .i64: for i in 0..<count { dst[i] = Float(p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        case .i32: for i in 0..<count { dst[i] = Float(p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .i16: for i in 0..<count { dst[i] = Float(p.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
        case .i8: for i in 0..<count { dst[i] = Float(p.load(fromByteOffset: i, as: Int8.self)) }
        case .u8: for i in 0..<count { dst[i] = Float(p.load(fromByteOffset: i, as: UInt8.self)) }
        case .bool: for i in 0..<count { dst[i] = p.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
        }
    }

    /// Encodes `count` floats as `dtype` elements at `dst` (float dtypes only).
    static func encode(_ src: UnsafePointer<Float>, count: Int, as dtype: DType, to dst: UnsafeMutableRawPointer) {
        switch dtype {
        case .f32: dst.copyMemory(from: src, byteCount: 4 * count)
        case .f16:
            for i in 0..<count { dst.storeBytes(of: Float16(src[i]).bitPattern, toByteOffset: 2 * i, as: UInt16.self) }
        case .bf16:
            for i in 0..<count { dst.storeBytes(of: ScalarConversion.floatToBF16(src[i]), toByteOffset: 2 * i, as: UInt16.self) }
        case .f8e4m3fn:
            for i in 0..<count { dst.storeBytes(of: ScalarConversion.floatToF8E4M3(src[i]), toByteOffset: i, as: UInt8.self) }
        case .f8e5m2:
            for i in 0..<count { dst.storeBytes(of: ScalarConversion.floatToF8E5M2(src[i]), toByteOffset: i, as: UInt8.self) }
        case .i32, .u8:
            break  // not reached: integer targets take the exact path
        }
    }

    /// Reads integer element `i` (integer and bool types only).
    @inline(__always)
    static func integer(_ p: UnsafeRawPointer, _ dtype: CheckpointDType, _ i: Int) -> Int64 {
        switch dtype {
        case .i64: return p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)
        case .i32: return Int64(p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
        case .i16: return Int64(p.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
        case .i8: return Int64(p.load(fromByteOffset: i, as: Int8.self))
        case .u8: return Int64(p.load(fromByteOffset: i, as: UInt8.self))
        case .bool: return p.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0
        default: return 0
        }
    }

    /// The first `count` bytes of `src` as an array (one memcpy).
    static func copy(_ src: UnsafeRawBufferPointer, _ count: Int) -> [UInt8] {
        guard count > 0, let base = src.baseAddress else { return [] }
        return [UInt8](unsafeUninitializedCapacity: count) { buf, n in
            UnsafeMutableRawPointer(buf.baseAddress!).copyMemory(from: base, byteCount: count)
            n = count
        }
    }

    /// Converts `count` elements of `from` to `to`, returning `count * to.size` bytes. Same-type copies
    /// are a plain copy; float conversions run in parallel chunks; integer conversions are exact and
    /// throw `CheckpointError.conversion` for a value the target cannot hold.
    static func convert(_ src: UnsafeRawBufferPointer, from: CheckpointDType, to: DType, count: Int,
                        file: String, name: String) throws -> [UInt8] {
        let outBytes = count * to.size
        guard src.count >= count * from.size else {
            throw CheckpointError(file, .truncated("tensor '\(name)' has \(src.count) bytes, needs \(count * from.size)"))
        }
        if from.runtimeType == to { return copy(src, outBytes) }
        if !to.isFloat {
            guard !from.isFloat else {
                throw CheckpointError(file, .conversion("tensor '\(name)' is \(from); refusing to convert it to \(to)"))
            }
            guard let p = src.baseAddress, count > 0 else { return [] }
            var failure: Int64?
            let out = [UInt8](unsafeUninitializedCapacity: outBytes) { buf, n in
                let d = UnsafeMutableRawPointer(buf.baseAddress!)
                let (lo, hi): (Int64, Int64) = to == .i32 ? (Int64(Int32.min), Int64(Int32.max)) : (0, 255)
                for i in 0..<count {
                    let v = integer(p, from, i)
                    if v < lo || v > hi { failure = v; break }
                    if to == .i32 { d.storeBytes(of: Int32(v), toByteOffset: 4 * i, as: Int32.self) }
                    else { d.storeBytes(of: UInt8(v), toByteOffset: i, as: UInt8.self) }
                }
                n = failure == nil ? outBytes : 0
            }
            if let failure {
                throw CheckpointError(file, .conversion("tensor '\(name)': value \(failure) of \(from) does not fit \(to)"))
            }
            return out
        }
        guard count > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: outBytes) { buf, n in
            let job = FloatJob(src: src, dst: UnsafeMutableRawPointer(buf.baseAddress!), from: from, to: to, count: count)
            let chunks = (count + chunk - 1) / chunk
            if chunks > 4 {
                DispatchQueue.concurrentPerform(iterations: chunks) { job.run($0) }
            } else {
                for c in 0..<chunks { job.run(c) }
            }
            n = outBytes
        }
    }

    /// One float conversion split into chunks that may run on several threads (disjoint outputs).
    struct FloatJob: @unchecked Sendable {
        let src: UnsafeRawBufferPointer
        let dst: UnsafeMutableRawPointer
        let from: CheckpointDType
        let to: DType
        let count: Int

        func run(_ c: Int) {
            let start = c * chunk
            let len = min(chunk, count - start)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk) { tmp in
                decode(src, from, into: tmp.baseAddress!, start: start, count: len)
                encode(tmp.baseAddress!, count: len, as: to, to: dst + start * to.size)
            }
        }
    }
}
