/// SentencePiece's precompiled character map: `<uint32 trie size><Darts double-array trie><normalized strings>`.
/// The trie maps UTF-8 byte sequences to offsets of NUL-terminated replacement strings. Lookups are bounds-checked,
/// so a corrupt map can give wrong replacements but never reads outside its buffers.
struct PrecompiledCharsMap: Sendable {
    let units: [UInt32]
    let normalized: [UInt8]

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Decodes the blob like `Normalizer::DecodePrecompiledCharsMap` (little-endian).
    init(blob: [UInt8]) throws(Failure) {
        guard blob.count > 4 else { throw Failure(description: "precompiled_charsmap of \(blob.count) bytes is too short") }
        let trieSize = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
        guard trieSize < blob.count else {
            throw Failure(description: "precompiled_charsmap trie size \(trieSize) exceeds the blob (\(blob.count) bytes)")
        }
        guard trieSize <= blob.count - 4 else {
            throw Failure(description: "precompiled_charsmap trie of \(trieSize) bytes is truncated")
        }
        let count = trieSize / 4
        var units = [UInt32](repeating: 0, count: count)
        for i in 0..<count {
            let o = 4 + 4 * i
            units[i] = UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
        }
        self.units = units
        self.normalized = Array(blob[(4 + trieSize)...])
    }

    @inline(__always) private static func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
    @inline(__always) private static func value(_ u: UInt32) -> Int { Int(u & 0x7FFF_FFFF) }
    @inline(__always) private static func label(_ u: UInt32) -> UInt32 { u & 0x8000_00FF }
    @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }

    /// Darts `commonPrefixSearch` over `key`: calls `body(value, length)` for every key of the trie that is a
    /// prefix of `key`, shortest first; `body` returns false to stop.
    @inline(__always)
    func commonPrefixSearch(_ key: UnsafeBufferPointer<UInt8>, _ body: (Int, Int) -> Bool) {
        guard !units.isEmpty else { return }
        units.withUnsafeBufferPointer { a in
            var nodePos = Self.offset(a[0])
            for i in 0..<key.count {
                let c = key[i]
                nodePos ^= Int(c)
                guard nodePos < a.count else { return }
                let unit = a[nodePos]
                guard Self.label(unit) == UInt32(c) else { return }
                nodePos ^= Self.offset(unit)
                if Self.hasLeaf(unit) {
                    guard nodePos < a.count else { return }
                    if !body(Self.value(a[nodePos]), i + 1) { return }
                }
            }
        }
    }

    /// SentencePiece's rule (`Normalizer::NormalizePrefix`): the longest of the first 32 matches.
    func longestMatch(_ key: UnsafeBufferPointer<UInt8>) -> (length: Int, value: Int)? {
        var best: (length: Int, value: Int)?
        var n = 0
        commonPrefixSearch(key) { value, length in
            if length > (best?.length ?? 0) { best = (length, value) }
            n += 1
            return n < 32
        }
        return best
    }

    /// Hugging Face's rule (`spm_precompiled::Precompiled::transform`): the first (shortest) match; the key ends at
    /// its first NUL byte.
    func firstMatch(_ key: UnsafeBufferPointer<UInt8>) -> Int? {
        var end = key.count
        if let z = key.firstIndex(of: 0) { end = z }
        var found: Int?
        commonPrefixSearch(UnsafeBufferPointer(rebasing: key[0..<end])) { value, _ in
            found = value
            return false
        }
        return found
    }

    /// The replacement string starting at `value`: up to the next NUL byte (empty when out of range).
    func replacement(at value: Int) -> ArraySlice<UInt8> {
        guard value >= 0, value < normalized.count else { return [] }
        var e = value
        while e < normalized.count, normalized[e] != 0 { e += 1 }
        return normalized[value..<e]
    }
}
