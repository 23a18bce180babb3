/// One entry of a ZIP central directory.
struct ZipEntry: Sendable {
    var name: String
    var flags: UInt16
    var method: UInt16
    var crc32: UInt32
    var compressedSize: Int
    var size: Int
    var localHeaderOffset: Int
}

/// A read-only ZIP archive over a `ByteSource`: the central directory (classic and ZIP64 end records,
/// ZIP64 extra fields) is parsed when opened; entry data is located lazily. Only stored (uncompressed,
/// unencrypted) entries can be read, which is what `torch.save` writes; a compressed or encrypted entry
/// gives `CheckpointError.compressedEntry` when read. CRCs are not checked (except where the caller asks).
final class ZipArchive: Sendable {
    let source: ByteSource
    /// Entries in central-directory order.
    let entries: [ZipEntry]
    private let byName: [String: Int]

    private static let eocdSignature: UInt32 = 0x0605_4B50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    private static let zip64EOCDSignature: UInt32 = 0x0606_4B50
    private static let centralSignature: UInt32 = 0x0201_4B50
    private static let localSignature: UInt32 = 0x0403_4B50

    init(source s: ByteSource) throws {
        source = s
        let file = s.path
        func fail(_ m: String) -> CheckpointError { CheckpointError(file, .corruptZip(m)) }

        // End of central directory: the last signature whose comment runs exactly to the end of the file.
        guard s.count >= 22 else { throw CheckpointError(file, .truncated("\(s.count) bytes cannot hold a zip directory")) }
        var eocd = -1
        let lowest = max(0, s.count - 22 - 65535)
        var pos = s.count - 22
        while pos >= lowest {
            if try s.u32(pos, "end record") == Self.eocdSignature,
               pos + 22 + Int(try s.u16(pos + 20, "comment length")) == s.count {
                eocd = pos
                break
            }
            pos -= 1
        }
        guard eocd >= 0 else { throw fail("end of central directory record not found (truncated or not a zip)") }

        let disk = try s.u16(eocd + 4, "end record"), cdDisk = try s.u16(eocd + 6, "end record")
        var total = Int(try s.u16(eocd + 10, "end record"))
        var cdSize = Int(try s.u32(eocd + 12, "end record"))
        var cdOffset = Int(try s.u32(eocd + 16, "end record"))
        var cdLimit = eocd
        let saturated = total == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF
        if eocd >= 20, try s.u32(eocd - 20, "zip64 locator") == Self.zip64LocatorSignature {
            let recordOffset64 = try s.u64(eocd - 20 + 8, "zip64 locator")
            guard recordOffset64 <= UInt64(eocd - 20) else { throw fail("zip64 end record offset \(recordOffset64) is past the locator") }
            let r = Int(recordOffset64)
            guard try s.u32(r, "zip64 end record") == Self.zip64EOCDSignature else {
                throw fail("no zip64 end record at offset \(r)")
            }
            let disk64 = try s.u32(r + 16, "zip64 end record"), cdDisk64 = try s.u32(r + 20, "zip64 end record")
            guard disk64 == 0 && cdDisk64 == 0 else { throw fail("multi-disk archives are not supported") }
            let t = try s.u64(r + 32, "zip64 end record")
            let size = try s.u64(r + 40, "zip64 end record")
            let off = try s.u64(r + 48, "zip64 end record")
            guard t <= UInt64(s.count), size <= UInt64(s.count), off <= UInt64(s.count) else {
                throw fail("zip64 end record has impossible values (\(t) entries, directory \(size) bytes at \(off))")
            }
            total = Int(t)
            cdSize = Int(size)
            cdOffset = Int(off)
            cdLimit = r
        } else if saturated {
            throw fail("end record fields need a zip64 end record, which is missing")
        } else {
            guard disk == 0 && cdDisk == 0 else { throw fail("multi-disk archives are not supported") }
        }
        guard cdOffset <= cdLimit, cdSize <= cdLimit - cdOffset else {
            throw fail("central directory (\(cdSize) bytes at \(cdOffset)) runs past its end record at \(cdLimit)")
        }
        guard total <= cdSize / 46 else {
            throw fail("\(total) entries cannot fit a \(cdSize)-byte central directory")
        }

        var list: [ZipEntry] = []
        list.reserveCapacity(total)
        var names: [String: Int] = [:]
        var p = cdOffset
        let cdEnd = cdOffset + cdSize
        for k in 0..<total {
            guard p <= cdEnd - 46 else { throw fail("central directory ends inside entry \(k)") }
            guard try s.u32(p, "directory entry") == Self.centralSignature else {
                throw fail("bad central directory signature at offset \(p) (entry \(k))")
            }
            let flags = try s.u16(p + 8, "directory entry")
            let method = try s.u16(p + 10, "directory entry")
            let crc = try s.u32(p + 16, "directory entry")
            var csize = UInt64(try s.u32(p + 20, "directory entry"))
            var usize = UInt64(try s.u32(p + 24, "directory entry"))
            let nameLen = Int(try s.u16(p + 28, "directory entry"))
            let extraLen = Int(try s.u16(p + 30, "directory entry"))
            let commentLen = Int(try s.u16(p + 32, "directory entry"))
            var diskStart = UInt64(try s.u16(p + 34, "directory entry"))
            var local = UInt64(try s.u32(p + 42, "directory entry"))
            let recordLen = 46 + nameLen + extraLen + commentLen
            guard recordLen <= cdEnd - p else { throw fail("central directory ends inside entry \(k)'s name or extra fields") }
            let name = String(decoding: try s.slice(p + 46, nameLen, "entry name"), as: UTF8.self)
            // ZIP64 extended information: 8-byte values for the saturated fields, in this order.
            var x = p + 46 + nameLen
            let xEnd = x + extraLen
            while x + 4 <= xEnd {
                let id = try s.u16(x, "extra field"), len = Int(try s.u16(x + 2, "extra field"))
                guard len <= xEnd - x - 4 else { throw fail("extra field of entry '\(name)' runs past its record") }
                if id == 0x0001 {
                    var q = x + 4
                    let qEnd = q + len
                    func next64() throws -> UInt64 {
                        guard q + 8 <= qEnd else { throw fail("zip64 extra field of entry '\(name)' is too short") }
                        defer { q += 8 }
                        return try s.u64(q, "zip64 extra field")
                    }
                    if usize == 0xFFFF_FFFF { usize = try next64() }
                    if csize == 0xFFFF_FFFF { csize = try next64() }
                    if local == 0xFFFF_FFFF { local = try next64() }
                    if diskStart == 0xFFFF {
                        guard q + 4 <= qEnd else { throw fail("zip64 extra field of entry '\(name)' is too short") }
                        diskStart = UInt64(try s.u32(q, "zip64 extra field"))
                    }
                }
                x += 4 + len
            }
            guard diskStart == 0 else { throw fail("entry '\(name)' starts on disk \(diskStart)") }
            guard csize <= UInt64(s.count), usize <= UInt64(Int.max), local <= UInt64(s.count) else {
                throw fail("entry '\(name)' has impossible sizes or offset (\(csize)/\(usize) bytes at \(local))")
            }
            if names[name] != nil { throw CheckpointError(file, .duplicateName(name)) }
            names[name] = list.count
            list.append(ZipEntry(name: name, flags: flags, method: method, crc32: crc, compressedSize: Int(csize),
                                 size: Int(usize), localHeaderOffset: Int(local)))
            p += recordLen
        }
        entries = list
        byName = names
    }

    /// The entry named `name`, if any.
    func entry(_ name: String) -> ZipEntry? { byName[name].map { entries[$0] } }

    /// Absolute file range of a stored entry's data (checks the local header).
    func dataRange(_ name: String) throws -> (offset: Int, count: Int) {
        let file = source.path
        guard let e = entry(name) else { throw CheckpointError(file, .missingZipEntry(name)) }
        guard e.flags & 1 == 0 else { throw CheckpointError(file, .compressedEntry("entry '\(name)' is encrypted")) }
        guard e.method == 0 else {
            let how = e.method == 8 ? "deflate" : "method \(e.method)"
            throw CheckpointError(file, .compressedEntry("entry '\(name)' is compressed (\(how)); torch.save stores entries uncompressed"))
        }
        guard e.compressedSize == e.size else {
            throw CheckpointError(file, .corruptZip("stored entry '\(name)' has compressed size \(e.compressedSize) ≠ size \(e.size)"))
        }
        let h = e.localHeaderOffset
        guard try source.u32(h, "local header of '\(name)'") == Self.localSignature else {
            throw CheckpointError(file, .corruptZip("bad local header signature for entry '\(name)' at offset \(h)"))
        }
        let n = Int(try source.u16(h + 26, "local header of '\(name)'"))
        let m = Int(try source.u16(h + 28, "local header of '\(name)'"))
        let start = h + 30 + n + m
        guard source.contains(start, e.size) else {
            throw CheckpointError(file, .truncated("entry '\(name)' needs bytes \(start)..<\(start + e.size) of a \(source.count)-byte file"))
        }
        return (start, e.size)
    }

    /// A copy of a stored entry's bytes, at most `limit` bytes; optionally CRC-checked.
    func read(_ name: String, limit: Int, checkCRC: Bool = false) throws -> [UInt8] {
        let (off, n) = try dataRange(name)
        guard n <= limit else {
            throw CheckpointError(source.path, .absurdSize("entry '\(name)' is \(n) bytes (at most \(limit) expected)"))
        }
        let bytes = try source.bytes(off, n, "entry '\(name)'")
        if checkCRC, let e = entry(name), CRC32.checksum(bytes) != e.crc32 {
            throw CheckpointError(source.path, .corruptZip("CRC mismatch in entry '\(name)'"))
        }
        return bytes
    }
}

/// CRC-32 (IEEE 802.3, as ZIP uses).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }
}
