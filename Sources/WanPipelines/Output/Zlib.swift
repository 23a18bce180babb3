import CZlib

/// The few zlib calls the PNG writer and reader need (system zlib, linked through `CZlib`).
enum Zlib {
    /// The CRC-32 (ISO 3309, as PNG uses) of `bytes`, continuing from `crc` (0 to start).
    static func crc32(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var c = UInt(crc)
        var rest = bytes
        while !rest.isEmpty {
            let n = min(rest.count, Int(UInt32.max >> 1))
            c = CZlib.crc32(c, rest.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(n))
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
        }
        return UInt32(truncatingIfNeeded: c)
    }

    /// The CRC-32 of `bytes`, continuing from `crc`.
    static func crc32(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { crc32($0, continuing: crc) }
    }

    /// `data` as one zlib stream (RFC 1950: header, deflate, Adler-32) at `level` 0...9.
    static func compress(_ data: [UInt8], level: Int) throws -> [UInt8] {
        guard (0...9).contains(level) else {
            throw OutputError.invalidArgument("zlib compression level \(level) is not in 0...9")
        }
        var capacity = compressBound(uLong(data.count))
        var out = [UInt8](repeating: 0, count: Int(capacity))
        let status = out.withUnsafeMutableBufferPointer { dst in
            data.withUnsafeBufferPointer { src in
                compress2(dst.baseAddress, &capacity, src.baseAddress, uLong(src.count), Int32(level))
            }
        }
        guard status == Z_OK else { throw OutputError.zlib("compress2 failed with status \(status)") }
        out.removeSubrange(Int(capacity)...)
        return out
    }

    /// The outcome of inflating a zlib stream whose decompressed size is known in advance.
    enum InflateResult: Equatable {
        case ok([UInt8])
        /// The stream is damaged or does not hold exactly the expected number of bytes.
        case failed(String)
    }

    /// Inflates the zlib stream `data`, which must decompress to exactly `expectedCount` bytes.
    static func decompress(_ data: [UInt8], expectedCount: Int) -> InflateResult {
        var produced = uLong(expectedCount + 1)
        var out = [UInt8](repeating: 0, count: expectedCount + 1)
        let status = out.withUnsafeMutableBufferPointer { dst in
            data.withUnsafeBufferPointer { src in
                uncompress(dst.baseAddress, &produced, src.baseAddress, uLong(src.count))
            }
        }
        switch status {
        case Z_OK:
            guard Int(produced) == expectedCount else {
                return .failed("image data is truncated: \(produced) bytes, the header implies \(expectedCount)")
            }
            out.removeLast()
            return .ok(out)
        case Z_BUF_ERROR:
            // Either the output did not fit (too much data) or the input ended early.
            if Int(produced) > expectedCount {
                return .failed("image data holds more bytes than the header implies (\(expectedCount))")
            }
            return .failed("image data is truncated (zlib stream ends early)")
        case Z_DATA_ERROR:
            return .failed("image data is damaged or truncated (not a complete zlib stream)")
        default:
            return .failed("zlib uncompress failed with status \(status)")
        }
    }

    /// The linked zlib's version string.
    static var version: String { String(cString: zlibVersion()) }
}
