import Foundation

/// How the PNG writer filters scanlines before compressing them.
public enum PNGFilterStrategy: Sendable, Equatable {
    /// Filter type 0 (None) on every row.
    case none
    /// Per row, the filter type 0–4 whose output has the smallest sum of absolute values (bytes read as signed),
    /// libpng's heuristic; ties go to the lower type.
    case adaptive
}

/// An 8-bit, non-interlaced image as PNG stores it: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) interleaved
/// channels per pixel, rows top to bottom.
public struct PNGImage: Sendable, Equatable {
    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// Bytes per pixel: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
    public let channels: Int
    /// `width · height · channels` bytes.
    public let pixels: [UInt8]

    /// An image from its pixels; throws `OutputError.invalidArgument` for a bad channel count or byte count.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        guard (1...4).contains(channels) else {
            throw OutputError.invalidArgument("a PNG image has 1 to 4 channels, not \(channels)")
        }
        guard width <= PNG.maxDimension, height <= PNG.maxDimension else {
            throw OutputError.invalidArgument("PNG sizes are limited to \(PNG.maxDimension), got \(width)x\(height)")
        }
        let count = try VideoFrame.byteCount(width: width, height: height, channels: channels)
        guard pixels.count == count else {
            throw OutputError.invalidArgument(
                "a \(width)x\(height) image with \(channels) channel(s) needs \(count) bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// The RGB image of a frame.
    public init(_ frame: VideoFrame) {
        width = frame.width
        height = frame.height
        channels = 3
        pixels = frame.rgb
    }

    /// The image as an RGB frame: gray is replicated into R, G and B, and alpha is dropped without blending
    /// (as PIL's `Image.convert("RGB")` does, which Wan uses to load I2V input images).
    public func rgbFrame() -> VideoFrame {
        if channels == 3 { return VideoFrame(uncheckedWidth: width, height: height, rgb: pixels) }
        let n = width * height
        let c = channels
        let rgb = [UInt8](unsafeUninitializedCapacity: n * 3) { out, initialized in
            pixels.withUnsafeBufferPointer { src in
                for i in 0..<n {
                    if c <= 2 {
                        let g = src[i * c]
                        out[i * 3] = g
                        out[i * 3 + 1] = g
                        out[i * 3 + 2] = g
                    } else {
                        out[i * 3] = src[i * c]
                        out[i * 3 + 1] = src[i * c + 1]
                        out[i * 3 + 2] = src[i * c + 2]
                    }
                }
            }
            initialized = n * 3
        }
        return VideoFrame(uncheckedWidth: width, height: height, rgb: rgb)
    }
}

/// A PNG encoder (8-bit gray/RGB(A), zlib deflate, CRC-32 via the system zlib) and a decoder for 8-bit
/// non-interlaced gray, gray + alpha, RGB and RGBA files (palette, 16-bit and interlaced files are rejected with
/// `OutputError.unsupportedPNG`).
public enum PNG {
    /// The eight bytes every PNG file starts with.
    public static let signature: [UInt8] = [137, 80, 78, 71, 13, 10, 26, 10]
    /// The largest width or height PNG allows (2³¹ − 1).
    public static let maxDimension = Int(Int32.max)
    /// The largest decoded image the reader accepts, in bytes (filter bytes included): 2 GiB.
    static let maxDecodedBytes = 1 << 31

    // MARK: Encoding

    /// The PNG file of an RGB frame: IHDR, one IDAT (zlib stream at `compressionLevel` 0...9), IEND.
    public static func encode(_ frame: VideoFrame, filter: PNGFilterStrategy = .adaptive,
                              compressionLevel: Int = 6) throws -> [UInt8] {
        try encode(PNGImage(frame), filter: filter, compressionLevel: compressionLevel)
    }

    /// The PNG file of an image: IHDR, one IDAT (zlib stream at `compressionLevel` 0...9), IEND.
    public static func encode(_ image: PNGImage, filter: PNGFilterStrategy = .adaptive,
                              compressionLevel: Int = 6) throws -> [UInt8] {
        let colorType: UInt8
        switch image.channels {
        case 1: colorType = 0
        case 2: colorType = 4
        case 3: colorType = 2
        default: colorType = 6
        }
        var ihdr = bigEndian32(UInt32(image.width)) + bigEndian32(UInt32(image.height))
        ihdr += [8, colorType, 0, 0, 0]  // bit depth, color type, compression, filter method, no interlace
        let scanlines = filterScanlines(image, strategy: filter)
        let compressed = try Zlib.compress(scanlines, level: compressionLevel)
        var out = signature
        out.reserveCapacity(compressed.count + 64)
        appendChunk("IHDR", ihdr, to: &out)
        appendChunk("IDAT", compressed, to: &out)
        appendChunk("IEND", [], to: &out)
        return out
    }

    /// Writes an RGB frame as a PNG file, atomically (a temporary name in the same directory, renamed when
    /// complete).
    public static func write(_ frame: VideoFrame, to url: URL, filter: PNGFilterStrategy = .adaptive,
                             compressionLevel: Int = 6) throws {
        let bytes = try encode(frame, filter: filter, compressionLevel: compressionLevel)
        let file = try AtomicFile(destination: url)
        try file.write(bytes)
        try file.commit()
    }

    static func bigEndian32(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    static func appendChunk(_ type: String, _ data: [UInt8], to out: inout [UInt8]) {
        let typeBytes = Array(type.utf8)
        out += bigEndian32(UInt32(data.count))
        out += typeBytes
        out += data
        let crc = Zlib.crc32(data, continuing: Zlib.crc32(typeBytes))
        out += bigEndian32(crc)
    }

    /// The Paeth predictor of PNG's filter type 4.
    @inline(__always)
    static func paeth(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
        let p = Int(a) + Int(b) - Int(c)
        let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
        if pa <= pb && pa <= pc { return a }
        if pb <= pc { return b }
        return c
    }

    /// Writes row `cur` filtered with `type` into `out` (`count` bytes; `prev` is the row above, zeros for the
    /// first row) and returns the heuristic cost Σ|signed byte|.
    static func filterRow(_ type: Int, cur: UnsafePointer<UInt8>, prev: UnsafePointer<UInt8>, count: Int, bpp: Int,
                          out: UnsafeMutablePointer<UInt8>) -> Int {
        var cost = 0
        for i in 0..<count {
            let x = cur[i]
            let a: UInt8 = i >= bpp ? cur[i - bpp] : 0
            let b = prev[i]
            let c: UInt8 = i >= bpp ? prev[i - bpp] : 0
            let f: UInt8
            switch type {
            case 0: f = x
            case 1: f = x &- a
            case 2: f = x &- b
            case 3: f = x &- UInt8((Int(a) + Int(b)) >> 1)
            default: f = x &- paeth(a, b, c)
            }
            out[i] = f
            cost += f < 128 ? Int(f) : 256 - Int(f)
        }
        return cost
    }

    /// The filtered scanlines (one filter-type byte then the row) of an image.
    static func filterScanlines(_ image: PNGImage, strategy: PNGFilterStrategy) -> [UInt8] {
        let bpp = image.channels
        let stride = image.width * bpp
        let zeros = [UInt8](repeating: 0, count: stride)
        var scratch = [UInt8](repeating: 0, count: stride * 5)
        var out = [UInt8](repeating: 0, count: image.height * (stride + 1))
        image.pixels.withUnsafeBufferPointer { px in
            zeros.withUnsafeBufferPointer { zero in
                scratch.withUnsafeMutableBufferPointer { tmp in
                    out.withUnsafeMutableBufferPointer { o in
                        for y in 0..<image.height {
                            let cur = px.baseAddress! + y * stride
                            let prev = y > 0 ? cur - stride : zero.baseAddress!
                            let dst = o.baseAddress! + y * (stride + 1)
                            switch strategy {
                            case .none:
                                dst[0] = 0
                                (dst + 1).update(from: cur, count: stride)
                            case .adaptive:
                                var best = 0, bestCost = Int.max
                                for type in 0...4 {
                                    let cost = filterRow(type, cur: cur, prev: prev, count: stride, bpp: bpp,
                                                         out: tmp.baseAddress! + type * stride)
                                    if cost < bestCost { (best, bestCost) = (type, cost) }
                                }
                                dst[0] = UInt8(best)
                                (dst + 1).update(from: tmp.baseAddress! + best * stride, count: stride)
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    // MARK: Decoding

    /// Reads and decodes a PNG file.
    public static func read(contentsOf url: URL) throws -> PNGImage {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw OutputError.io(path: path, reason: "no such file")
        }
        guard !isDirectory.boolValue else { throw OutputError.io(path: path, reason: "is a directory, not a PNG file") }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw OutputError.io(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try decode([UInt8](data), name: path)
    }

    /// Decodes PNG file bytes; `name` labels errors (a file path).
    public static func decode(_ bytes: [UInt8], name: String = "PNG data") throws -> PNGImage {
        func corrupt(_ s: String) -> OutputError { .corruptPNG(file: name, reason: s) }
        func unsupported(_ s: String) -> OutputError { .unsupportedPNG(file: name, reason: s) }
        func be32(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
        }

        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else {
            throw corrupt("not a PNG file (bad signature)")
        }
        var pos = 8
        var header: (width: Int, height: Int, channels: Int)?
        var idat: [UInt8] = []
        var idatState = 0  // 0 none yet, 1 inside the IDAT run, 2 after it
        var sawEnd = false
        while pos < bytes.count {
            guard bytes.count - pos >= 12 else { throw corrupt("truncated chunk at offset \(pos)") }
            let length = Int(be32(pos))
            let typeBytes = Array(bytes[(pos + 4)..<(pos + 8)])
            let isLetter = { (b: UInt8) in (65...90).contains(b) || (97...122).contains(b) }
            guard typeBytes.allSatisfy(isLetter) else { throw corrupt("invalid chunk type at offset \(pos)") }
            let type = String(decoding: typeBytes, as: UTF8.self)
            guard length <= Int(Int32.max), length <= bytes.count - pos - 12 else {
                throw corrupt("chunk '\(type)' at offset \(pos) runs past the end of the file")
            }
            let dataStart = pos + 8
            let storedCRC = be32(dataStart + length)
            let crc = bytes.withUnsafeBytes { raw in
                Zlib.crc32(UnsafeRawBufferPointer(rebasing: raw[(pos + 4)..<(dataStart + length)]))
            }
            guard crc == storedCRC else { throw corrupt("CRC mismatch in chunk '\(type)' at offset \(pos)") }
            if header == nil && type != "IHDR" { throw corrupt("the first chunk is '\(type)', not 'IHDR'") }
            if idatState == 1 && type != "IDAT" { idatState = 2 }
            switch type {
            case "IHDR":
                guard header == nil else { throw corrupt("more than one IHDR chunk") }
                guard length == 13 else { throw corrupt("IHDR has \(length) bytes, not 13") }
                let w = Int(be32(dataStart)), h = Int(be32(dataStart + 4))
                let depth = bytes[dataStart + 8], colorType = bytes[dataStart + 9]
                let compression = bytes[dataStart + 10], filter = bytes[dataStart + 11]
                let interlace = bytes[dataStart + 12]
                guard (1...maxDimension).contains(w), (1...maxDimension).contains(h) else {
                    throw corrupt("image size \(w)x\(h) is out of range")
                }
                let allowedDepths: [UInt8: [UInt8]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
                guard let depths = allowedDepths[colorType] else { throw corrupt("invalid color type \(colorType)") }
                guard depths.contains(depth) else { throw corrupt("bit depth \(depth) is invalid for color type \(colorType)") }
                guard compression == 0 else { throw corrupt("unknown compression method \(compression)") }
                guard filter == 0 else { throw corrupt("unknown filter method \(filter)") }
                guard interlace <= 1 else { throw corrupt("unknown interlace method \(interlace)") }
                if colorType == 3 { throw unsupported("palette images (color type 3) are not read; convert to RGB") }
                if depth != 8 { throw unsupported("bit depth \(depth) (only 8-bit images are read)") }
                if interlace == 1 { throw unsupported("interlaced (Adam7) images are not read") }
                let channels: Int
                switch colorType {
                case 0: channels = 1
                case 4: channels = 2
                case 2: channels = 3
                default: channels = 4
                }
                header = (w, h, channels)
            case "IDAT":
                guard idatState != 2 else { throw corrupt("IDAT chunks are not consecutive") }
                idatState = 1
                idat += bytes[dataStart..<(dataStart + length)]
            case "IEND":
                sawEnd = true
            default:
                // Ancillary chunks (lowercase first letter) and PLTE (a suggested palette here) are skipped.
                if type != "PLTE" && (65...90).contains(typeBytes[0]) {
                    throw unsupported("unknown critical chunk '\(type)'")
                }
            }
            pos = dataStart + length + 4
            if sawEnd { break }
        }
        guard let (width, height, channels) = header else { throw corrupt("missing IHDR chunk") }
        guard !idat.isEmpty else { throw corrupt("no image data (IDAT chunk)") }
        guard sawEnd else { throw corrupt("missing IEND chunk (the file is truncated)") }

        let stride = width * channels
        let (rows, o1) = (stride + 1).multipliedReportingOverflow(by: height)
        guard !o1, stride <= maxDecodedBytes, rows <= maxDecodedBytes else {
            throw unsupported("a \(width)x\(height) image is larger than this reader's 2 GiB limit")
        }
        let raw: [UInt8]
        switch Zlib.decompress(idat, expectedCount: rows) {
        case let .ok(r): raw = r
        case let .failed(why): throw corrupt(why)
        }
        var pixels = [UInt8](repeating: 0, count: stride * height)
        var badRow: (Int, UInt8)?
        raw.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                let zeros = [UInt8](repeating: 0, count: stride)
                zeros.withUnsafeBufferPointer { zero in
                    for y in 0..<height {
                        let line = src.baseAddress! + y * (stride + 1)
                        let type = line[0]
                        let f = line + 1
                        let cur = dst.baseAddress! + y * stride
                        let prev = y > 0 ? UnsafePointer(cur - stride) : zero.baseAddress!
                        switch type {
                        case 0:
                            cur.update(from: f, count: stride)
                        case 1:
                            for i in 0..<stride { cur[i] = f[i] &+ (i >= channels ? cur[i - channels] : 0) }
                        case 2:
                            for i in 0..<stride { cur[i] = f[i] &+ prev[i] }
                        case 3:
                            for i in 0..<stride {
                                let a = i >= channels ? Int(cur[i - channels]) : 0
                                cur[i] = f[i] &+ UInt8((a + Int(prev[i])) >> 1)
                            }
                        case 4:
                            for i in 0..<stride {
                                let a: UInt8 = i >= channels ? cur[i - channels] : 0
                                let c: UInt8 = i >= channels ? prev[i - channels] : 0
                                cur[i] = f[i] &+ paeth(a, prev[i], c)
                            }
                        default:
                            badRow = (y, type)
                            return
                        }
                    }
                }
            }
        }
        if let (y, type) = badRow { throw corrupt("unknown filter type \(type) in row \(y)") }
        return try PNGImage(width: width, height: height, channels: channels, pixels: pixels)
    }
}
