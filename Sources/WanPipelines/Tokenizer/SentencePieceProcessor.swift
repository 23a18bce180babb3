/// A SentencePiece unigram model with SentencePiece's own semantics (`spiece.model`): its normalizer
/// (normalizer.cc), the optimized Viterbi of unigram_model.cc (float sums, user-defined pieces always preferred,
/// unknown characters at `min_score - 10`), and the id post-processing of sentencepiece_processor.cc
/// (runs of unknown pieces merged into one `<unk>`, or split into `<0xNN>` byte pieces with byte fallback).
struct SentencePieceProcessor: Sendable {
    typealias PieceType = SentencePieceModelProto.PieceType

    let pieces: [String]
    let scores: [Float]
    let types: [PieceType]
    let unkID: Int
    let bosID: Int?
    let eosID: Int?
    let padID: Int?
    let byteFallback: Bool
    /// Ids of `<0x00>` ... `<0xFF>` (only with byte fallback).
    let byteIDs: [Int]
    private let normalIDs: ExactStringMap
    private let reservedIDs: ExactStringMap
    private let trie: PieceTrie
    private let userDefinedTrie: PieceTrie?
    private let minScore: Float
    private let maxScore: Float
    private let charsmap: PrecompiledCharsMap?
    private let addDummyPrefix: Bool
    private let removeExtraWhitespaces: Bool
    private let escapeWhitespaces: Bool
    private let treatWhitespaceAsSuffix: Bool

    /// Validates the model like `ModelInterface::InitializePieces` and `Normalizer::Init`.
    init(proto: SentencePieceModelProto) throws(TokenizerError.Reason) {
        guard proto.trainerSpec.modelType == 1 else {
            let names: [Int32: String] = [2: "BPE", 3: "WORD", 4: "CHAR"]
            throw .unsupported("model_type \(names[proto.trainerSpec.modelType] ?? String(proto.trainerSpec.modelType)) (only UNIGRAM)")
        }
        guard !proto.pieces.isEmpty else { throw .corrupt("the model has no pieces") }
        var normal = ExactStringMap()
        var reserved = ExactStringMap()
        var trie = PieceTrie()
        var userTrie = PieceTrie()
        var hasUser = false
        var unk = -1
        var byteIDs = [Int](repeating: -1, count: 256)
        var minScore = Float.greatestFiniteMagnitude
        var maxScore = Float.leastNormalMagnitude
        for (i, p) in proto.pieces.enumerated() {
            guard !p.piece.isEmpty else { throw .corrupt("piece \(i) is empty") }
            let isNormal = p.type == .normal || p.type == .userDefined || p.type == .unused
            if isNormal {
                guard normal[p.piece] == nil else { throw .corrupt("piece \(i) '\(p.piece)' is already defined") }
                normal[p.piece] = i
                trie.insert(p.piece.utf8, id: Int32(i))
            } else {
                guard reserved[p.piece] == nil else { throw .corrupt("piece \(i) '\(p.piece)' is already defined") }
                reserved[p.piece] = i
            }
            switch p.type {
            case .normal:
                minScore = min(minScore, p.score)
                maxScore = max(maxScore, p.score)
            case .userDefined:
                userTrie.insert(p.piece.utf8, id: Int32(i))
                hasUser = true
            case .unknown:
                guard unk < 0 else { throw .corrupt("a second unknown piece at id \(i)") }
                unk = i
            case .byte:
                guard proto.trainerSpec.byteFallback else {
                    throw .corrupt("byte piece \(p.piece) is found although byte_fallback is false")
                }
                guard let b = Self.byteValue(p.piece) else { throw .corrupt("byte piece \(p.piece) is invalid") }
                byteIDs[b] = i
            case .control, .unused: break
            }
        }
        guard unk >= 0 else { throw .corrupt("no unknown piece (<unk>) is defined") }
        if proto.trainerSpec.byteFallback {
            guard !byteIDs.contains(-1) else { throw .corrupt("byte_fallback is true but not all 256 byte pieces exist") }
        }
        let n = proto.pieces.count
        func validID(_ id: Int32) -> Int? { id >= 0 && Int(id) < n ? Int(id) : nil }
        self.pieces = proto.pieces.map(\.piece)
        self.scores = proto.pieces.map(\.score)
        self.types = proto.pieces.map(\.type)
        self.unkID = unk
        self.bosID = validID(proto.trainerSpec.bosID)
        self.eosID = validID(proto.trainerSpec.eosID)
        self.padID = validID(proto.trainerSpec.padID)
        self.byteFallback = proto.trainerSpec.byteFallback
        self.byteIDs = byteIDs
        self.normalIDs = normal
        self.reservedIDs = reserved
        self.trie = trie
        self.userDefinedTrie = hasUser ? userTrie : nil
        self.minScore = minScore
        self.maxScore = maxScore
        let spec = proto.normalizerSpec
        if spec.precompiledCharsmap.isEmpty {
            self.charsmap = nil
        } else {
            do throws(PrecompiledCharsMap.Failure) { self.charsmap = try PrecompiledCharsMap(blob: spec.precompiledCharsmap) } catch {
                throw .corrupt(error.description)
            }
        }
        self.addDummyPrefix = spec.addDummyPrefix
        self.removeExtraWhitespaces = spec.removeExtraWhitespaces
        self.escapeWhitespaces = spec.escapeWhitespaces
        self.treatWhitespaceAsSuffix = proto.trainerSpec.treatWhitespaceAsSuffix
    }

    /// `<0xNN>` -> NN.
    static func byteValue(_ piece: String) -> Int? {
        let u = Array(piece.utf8)
        guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"),
              u[5] == UInt8(ascii: ">"), let v = Int(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
        else { return nil }
        return v
    }

    /// `SentencePieceProcessor::PieceToId`.
    func id(of piece: String) -> Int? { reservedIDs[piece] ?? normalIDs[piece] }

    // MARK: Normalizer (normalizer.cc)

    private static let space: [UInt8] = [0xE2, 0x96, 0x81]  // U+2581

    /// `Normalizer::NormalizePrefix`: the normalized form of the longest rule at the start of `input`, and how many
    /// input bytes it consumes.
    private func normalizePrefix(_ input: UnsafeBufferPointer<UInt8>) -> (ArraySlice<UInt8>?, Int) {
        if let user = userDefinedTrie {
            var longest = 0
            user.commonPrefixSearch(input, from: 0) { _, length in longest = max(longest, length) }
            if longest > 0 { return (nil, longest) }  // nil: the raw bytes
        }
        if let map = charsmap, let m = map.longestMatch(input) {
            return (map.replacement(at: m.value), m.length)
        }
        // One UTF-8 character (the input is valid UTF-8).
        return (nil, min(Self.oneCharLength(input[0]), input.count))
    }

    @inline(__always) static func oneCharLength(_ b: UInt8) -> Int {
        switch b >> 4 {
        case 0xC, 0xD: return 2
        case 0xE: return 3
        case 0xF: return 4
        default: return 1
        }
    }

    /// `Normalizer::Normalize`: the normalized UTF-8 bytes of `text`.
    func normalize(_ text: String) -> [UInt8] {
        var utf8 = Array(text.utf8)
        return utf8.withUnsafeMutableBufferPointer { buf in normalize(UnsafeBufferPointer(buf)) }
    }

    private func normalize(_ all: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var pos = 0
        let n = all.count
        if n == 0 { return [] }
        func rest() -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: all[pos..<n]) }
        func isSingleSpace(_ s: ArraySlice<UInt8>?, _ len: Int) -> Bool {
            if let s { return s.count == 1 && s.first == 0x20 }
            return len == 1 && all[pos] == 0x20
        }
        if removeExtraWhitespaces {
            while pos < n {
                let (sp, len) = normalizePrefix(rest())
                guard isSingleSpace(sp, len) else { break }
                pos += len
            }
        }
        if pos >= n { return [] }
        var out: [UInt8] = []
        out.reserveCapacity((n - pos) * 3)
        let ws: [UInt8] = escapeWhitespaces ? Self.space : [0x20]
        if !treatWhitespaceAsSuffix && addDummyPrefix { out += ws }
        var isPrevSpace = removeExtraWhitespaces
        while pos < n {
            let (norm, len) = normalizePrefix(rest())
            var sp: ArraySlice<UInt8> = norm ?? ArraySlice(all[pos..<(pos + len)])
            while isPrevSpace, sp.first == 0x20 { sp = sp.dropFirst() }
            if !sp.isEmpty {
                for b in sp {
                    if escapeWhitespaces && b == 0x20 { out += Self.space } else { out.append(b) }
                }
                isPrevSpace = sp.last == 0x20
            }
            pos += len
            if !removeExtraWhitespaces { isPrevSpace = false }
        }
        if removeExtraWhitespaces {
            while out.count >= ws.count, Array(out.suffix(ws.count)) == ws { out.removeLast(ws.count) }
        }
        if treatWhitespaceAsSuffix && addDummyPrefix { out += ws }
        return out
    }

    // MARK: Model (unigram_model.cc, EncodeOptimized)

    /// The best segmentation of normalized bytes: (piece range, id) in order.
    func viterbi(_ s: UnsafeBufferPointer<UInt8>) -> [(Range<Int>, Int)] {
        let size = s.count
        if size == 0 { return [] }
        let unkScore = minScore - 10
        var bestID = [Int32](repeating: -1, count: size + 1)
        var bestScore = [Float](repeating: 0, count: size + 1)
        var bestStart = [Int32](repeating: -1, count: size + 1)
        var startsAt = 0
        while startsAt < size {
            let tillHere = bestScore[startsAt]
            let mblen = min(Self.oneCharLength(s[startsAt]), size - startsAt)
            var hasSingleNode = false
            trie.commonPrefixSearch(s, from: startsAt) { id, length in
                let type = types[Int(id)]
                if type == .unused { return }
                let keyPos = startsAt + length
                // All in float: this is what sentencepiece 0.2.x computes (checked against the PyPI wheel on
                // thousands of tie-heavy strings; a double sum breaks exact ties the other way).
                let score: Float = type == .userDefined ? Float(length) * maxScore - 0.1 : scores[Int(id)]
                let candidate = score + tillHere
                if bestStart[keyPos] == -1 || candidate > bestScore[keyPos] {
                    bestScore[keyPos] = candidate
                    bestStart[keyPos] = Int32(startsAt)
                    bestID[keyPos] = id
                }
                if !hasSingleNode && length == mblen { hasSingleNode = true }
            }
            if !hasSingleNode {
                let target = startsAt + mblen
                let candidate = unkScore + tillHere
                if bestStart[target] == -1 || candidate > bestScore[target] {
                    bestScore[target] = candidate
                    bestStart[target] = Int32(startsAt)
                    bestID[target] = Int32(unkID)
                }
            }
            startsAt += mblen
        }
        var results: [(Range<Int>, Int)] = []
        var endsAt = size
        while endsAt > 0 {
            let start = Int(bestStart[endsAt])
            guard start >= 0, start < endsAt else { break }  // unreachable for well-formed input
            results.append((start..<endsAt, Int(bestID[endsAt])))
            endsAt = start
        }
        results.reverse()
        return results
    }

    // MARK: Processor (sentencepiece_processor.cc)

    /// Pieces (normalized bytes) and ids of `text`, after merging unknown runs / byte fallback. No EOS.
    func encode(_ text: String) -> (pieces: [[UInt8]], ids: [Int]) {
        let normalized = normalize(text)
        return normalized.withUnsafeBufferPointer { buf in
            var pieces: [[UInt8]] = []
            var ids: [Int] = []
            var isPrevUnk = false
            for (range, id) in viterbi(buf) {
                let w = Array(buf[range])
                let isUnk = id == unkID
                if isUnk && byteFallback {
                    for b in w {
                        pieces.append(Array(String(format2Hex: b).utf8))
                        ids.append(byteIDs[Int(b)])
                    }
                } else if isPrevUnk && isUnk, !pieces.isEmpty {
                    pieces[pieces.count - 1] += w
                } else {
                    pieces.append(w)
                    ids.append(id)
                }
                isPrevUnk = isUnk
            }
            return (pieces, ids)
        }
    }
}

extension String {
    /// `<0xNN>` for one byte.
    init(format2Hex b: UInt8) {
        let hex = Array("0123456789ABCDEF".utf8)
        self = String(decoding: [UInt8(ascii: "<"), UInt8(ascii: "0"), UInt8(ascii: "x"),
                                 hex[Int(b >> 4)], hex[Int(b & 15)], UInt8(ascii: ">")], as: UTF8.self)
    }
}
