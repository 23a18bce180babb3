/// A tensor-name pattern: literal text with `#` standing for one non-negative decimal index
/// (a block number), e.g. `blocks.#.self_attn.q.weight`. Matching is anchored at both ends.
struct KeyPattern: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written.
    let text: String
    /// Literal pieces between the `#` placeholders (one more than the number of placeholders).
    let pieces: [[UInt8]]
    /// The lookup key shared by the pattern and every name it matches (see `keyTemplate`).
    let template: String

    init(_ text: String) {
        self.text = text
        var pieces: [[UInt8]] = [[]]
        for byte in text.utf8 {
            if byte == UInt8(ascii: "#") { pieces.append([]) } else { pieces[pieces.count - 1].append(byte) }
        }
        self.pieces = pieces
        self.template = keyTemplate(text)
    }

    /// Number of `#` placeholders.
    var captureCount: Int { pieces.count - 1 }

    var description: String { text }

    /// The indices captured by the placeholders, or nil when `name` does not match. Indices are
    /// canonical decimals (no sign, no leading zero other than `0` itself) below 10^9.
    func match(_ name: [UInt8]) -> [Int]? {
        var pos = 0
        var captures: [Int] = []
        captures.reserveCapacity(captureCount)
        for i in 0..<pieces.count {
            let piece = pieces[i]
            if name.count - pos < piece.count { return nil }
            var j = 0
            while j < piece.count {
                if name[pos + j] != piece[j] { return nil }
                j += 1
            }
            pos += piece.count
            if i == pieces.count - 1 { break }
            let start = pos
            var value = 0
            while pos < name.count, name[pos] >= UInt8(ascii: "0"), name[pos] <= UInt8(ascii: "9") {
                value = value * 10 + Int(name[pos] - UInt8(ascii: "0"))
                pos += 1
                if pos - start > 9 { return nil }
            }
            let length = pos - start
            if length == 0 || (length > 1 && name[start] == UInt8(ascii: "0")) { return nil }
            captures.append(value)
        }
        return pos == name.count ? captures : nil
    }

    /// Convenience overload on a `String`.
    func match(_ name: String) -> [Int]? { match(Array(name.utf8)) }

    /// The name with the placeholders replaced by `indices` (in order; a missing index renders as `#`).
    func render(_ indices: [Int]) -> String {
        var out = String(decoding: pieces[0], as: UTF8.self)
        for i in 1..<max(pieces.count, 1) {
            out += i - 1 < indices.count ? String(indices[i - 1]) : "#"
            out += String(decoding: pieces[i], as: UTF8.self)
        }
        return out
    }
}

/// A name's lookup key: every maximal run of ASCII digits (and every `#`) becomes one `#`.
/// A pattern and all names it matches have the same template, so rule lookup is one dictionary access.
func keyTemplate(_ name: String) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(name.utf8.count)
    var inRun = false
    for byte in name.utf8 {
        let isDigitLike = (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "#")
        if isDigitLike {
            if !inRun { out.append(UInt8(ascii: "#")) }
            inRun = true
        } else {
            out.append(byte)
            inRun = false
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// The leading part of a name up to and including its first all-digit path component
/// (`blocks.29.ffn.0.weight` → `blocks.29.`), or nil when it has none. Used to group report lines.
func blockKey(_ name: String) -> String? {
    let bytes = name.utf8
    var start = bytes.startIndex
    while start < bytes.endIndex {
        let end = bytes[start...].firstIndex(of: UInt8(ascii: ".")) ?? bytes.endIndex
        let component = bytes[start..<end]
        if !component.isEmpty, component.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            return end == bytes.endIndex ? name + "." : String(name[..<bytes.index(after: end)])
        }
        if end == bytes.endIndex { break }
        start = bytes.index(after: end)
    }
    return nil
}

/// The block index right after `prefix` (`blocks.12.ffn.0.weight` after `blocks.` → 12), or nil when the
/// name does not continue with a canonical decimal and a dot.
func blockIndex(_ name: String, after prefix: String) -> Int? {
    guard name.hasPrefix(prefix) else { return nil }
    let rest = name.utf8.dropFirst(prefix.utf8.count)
    guard let dot = rest.firstIndex(of: UInt8(ascii: ".")) else { return nil }
    let digits = rest[..<dot]
    guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
          digits.count == 1 || digits.first != UInt8(ascii: "0") else { return nil }
    return digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
}
