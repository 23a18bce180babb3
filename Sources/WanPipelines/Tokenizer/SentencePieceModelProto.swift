/// The parts of SentencePiece's `ModelProto` (sentencepiece_model.proto) a unigram tokenizer needs.
struct SentencePieceModelProto: Sendable {
    enum PieceType: Int32, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    struct Piece: Sendable {
        var piece: String = ""
        var score: Float = 0
        var type: PieceType = .normal
    }

    struct TrainerSpec: Sendable {
        /// UNIGRAM = 1, BPE = 2, WORD = 3, CHAR = 4.
        var modelType: Int32 = 1
        var byteFallback = false
        var treatWhitespaceAsSuffix = false
        var unkID: Int32 = 0
        var bosID: Int32 = 1
        var eosID: Int32 = 2
        var padID: Int32 = -1
    }

    struct NormalizerSpec: Sendable {
        var name = ""
        var precompiledCharsmap: [UInt8] = []
        var addDummyPrefix = true
        var removeExtraWhitespaces = true
        var escapeWhitespaces = true
    }

    var pieces: [Piece] = []
    var trainerSpec = TrainerSpec()
    var normalizerSpec = NormalizerSpec()

    /// Parses the wire format. Unknown fields are skipped, as protobuf does.
    init(bytes: [UInt8]) throws(ProtobufReader.Failure) {
        var r = ProtobufReader(bytes: bytes)
        while !r.isAtEnd {
            let (field, value) = try r.next()
            switch field {
            case 1: pieces.append(try Self.parsePiece(r, r.range(value, field: 1)))
            case 2: try Self.parseTrainerSpec(r, r.range(value, field: 2), into: &trainerSpec)
            case 3: try Self.parseNormalizerSpec(r, r.range(value, field: 3), into: &normalizerSpec)
            default: break
            }
        }
    }

    private static func parsePiece(_ outer: ProtobufReader, _ range: Range<Int>) throws(ProtobufReader.Failure) -> Piece {
        var r = ProtobufReader(bytes: outer.bytes, range: range)
        var p = Piece()
        while !r.isAtEnd {
            let (field, value) = try r.next()
            switch field {
            case 1: p.piece = try r.string(value, field: 1)
            case 2: p.score = try ProtobufReader.float(value, field: 2)
            case 3:
                let t = try ProtobufReader.int32(value, field: 3)
                guard let type = PieceType(rawValue: t) else {
                    throw ProtobufReader.Failure(description: "piece type \(t) is not a SentencePiece type")
                }
                p.type = type
            default: break
            }
        }
        return p
    }

    private static func parseTrainerSpec(
        _ outer: ProtobufReader, _ range: Range<Int>, into s: inout TrainerSpec
    ) throws(ProtobufReader.Failure) {
        var r = ProtobufReader(bytes: outer.bytes, range: range)
        while !r.isAtEnd {
            let (field, value) = try r.next()
            switch field {
            case 3: s.modelType = try ProtobufReader.int32(value, field: field)
            case 24: s.treatWhitespaceAsSuffix = try ProtobufReader.bool(value, field: field)
            case 35: s.byteFallback = try ProtobufReader.bool(value, field: field)
            case 40: s.unkID = try ProtobufReader.int32(value, field: field)
            case 41: s.bosID = try ProtobufReader.int32(value, field: field)
            case 42: s.eosID = try ProtobufReader.int32(value, field: field)
            case 43: s.padID = try ProtobufReader.int32(value, field: field)
            default: break
            }
        }
    }

    private static func parseNormalizerSpec(
        _ outer: ProtobufReader, _ range: Range<Int>, into s: inout NormalizerSpec
    ) throws(ProtobufReader.Failure) {
        var r = ProtobufReader(bytes: outer.bytes, range: range)
        while !r.isAtEnd {
            let (field, value) = try r.next()
            switch field {
            case 1: s.name = try r.string(value, field: field)
            case 2: s.precompiledCharsmap = Array(outer.bytes[try r.range(value, field: field)])
            case 3: s.addDummyPrefix = try ProtobufReader.bool(value, field: field)
            case 4: s.removeExtraWhitespaces = try ProtobufReader.bool(value, field: field)
            case 5: s.escapeWhitespaces = try ProtobufReader.bool(value, field: field)
            default: break
            }
        }
    }
}
