/// A minimal protocol-buffers wire-format reader (proto2), enough for SentencePiece's `ModelProto`.
/// Every read is bounds-checked; malformed input raises `ProtobufReader.Failure`.
struct ProtobufReader {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    enum WireType: UInt8 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    /// One field value as it appears on the wire.
    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case bytes(Range<Int>)
    }

    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int

    init(bytes: [UInt8], range: Range<Int>? = nil) {
        self.bytes = bytes
        let r = range ?? 0..<bytes.count
        self.position = r.lowerBound
        self.end = r.upperBound
    }

    var isAtEnd: Bool { position >= end }

    mutating func readVarint() throws(Failure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw Failure(description: "truncated varint at byte \(position)") }
            let b = bytes[position]
            position += 1
            if shift == 63 && b > 1 { throw Failure(description: "varint overflows 64 bits at byte \(position - 1)") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw Failure(description: "varint longer than 10 bytes at byte \(position - 1)") }
        }
    }

    private mutating func readFixed(_ n: Int) throws(Failure) -> UInt64 {
        guard end - position >= n else { throw Failure(description: "truncated \(n * 8)-bit field at byte \(position)") }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
        position += n
        return v
    }

    /// Reads the next field: its number and value. Groups (deprecated, unused by SentencePiece) are rejected.
    mutating func next() throws(Failure) -> (field: Int, value: Value) {
        let start = position
        let key = try readVarint()
        let field = key >> 3
        guard field >= 1, field <= 536_870_911 else { throw Failure(description: "bad field number \(field) at byte \(start)") }
        guard let wire = WireType(rawValue: UInt8(key & 7)) else {
            throw Failure(description: "bad wire type \(key & 7) at byte \(start)")
        }
        switch wire {
        case .varint: return (Int(field), .varint(try readVarint()))
        case .fixed64: return (Int(field), .fixed64(try readFixed(8)))
        case .fixed32: return (Int(field), .fixed32(UInt32(try readFixed(4))))
        case .lengthDelimited:
            let len = try readVarint()
            guard len <= UInt64(end - position) else {
                throw Failure(description: "field \(field) at byte \(start) claims \(len) bytes, \(end - position) remain")
            }
            let r = position..<(position + Int(len))
            position += Int(len)
            return (Int(field), .bytes(r))
        case .startGroup, .endGroup:
            throw Failure(description: "unsupported group wire type in field \(field) at byte \(start)")
        }
    }

    // Typed accessors for one value.

    static func int32(_ v: Value, field: Int) throws(Failure) -> Int32 {
        guard case let .varint(x) = v else { throw Failure(description: "field \(field) is not a varint") }
        return Int32(truncatingIfNeeded: x)
    }

    static func bool(_ v: Value, field: Int) throws(Failure) -> Bool {
        guard case let .varint(x) = v else { throw Failure(description: "field \(field) is not a varint") }
        return x != 0
    }

    static func float(_ v: Value, field: Int) throws(Failure) -> Float {
        guard case let .fixed32(x) = v else { throw Failure(description: "field \(field) is not a 32-bit float") }
        return Float(bitPattern: x)
    }

    func range(_ v: Value, field: Int) throws(Failure) -> Range<Int> {
        guard case let .bytes(r) = v else { throw Failure(description: "field \(field) is not length-delimited") }
        return r
    }

    func string(_ v: Value, field: Int) throws(Failure) -> String {
        let r = try range(v, field: field)
        guard let s = String(validating: bytes[r], as: UTF8.self) else {
            throw Failure(description: "field \(field) is not valid UTF-8")
        }
        return s
    }
}
