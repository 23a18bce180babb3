import Foundation

/// A Hugging Face `tokenizer.json` with a Unigram model, with the semantics of the `tokenizers` library:
/// added tokens split out first (leftmost-longest), the normalizer applied to the text between them, the
/// pre-tokenizer, Viterbi per pre-token (f64 scores, unknown characters at `min_score - 10`, runs of unknown
/// characters fused), byte fallback when the model has it, and the template post-processor.
struct HFTokenizer: Sendable {
    let model: HFUnigram
    let normalizer: HFNormalizer?
    let preTokenizer: HFPreTokenizer?
    let addedTokens: HFAddedVocabulary
    /// Ids the post-processor puts after the sequence (`$A </s>` -> [eos]); nil without a post-processor.
    let template: [HFTemplatePiece]?
    let padID: Int?

    init(json data: Data) throws(TokenizerError.Reason) {
        let root: [String: Any]
        do {
            guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw TokenizerError.Reason.corrupt("the JSON top level is not an object")
            }
            root = obj
        } catch let e as TokenizerError.Reason {
            throw e
        } catch {
            throw .corrupt("invalid JSON: \(error.localizedDescription)")
        }
        guard let modelJSON = root["model"] as? [String: Any] else { throw .corrupt("no \"model\" object") }
        model = try HFUnigram(json: modelJSON)
        normalizer = try HFNormalizer.parse(root["normalizer"], path: "normalizer")
        preTokenizer = try HFPreTokenizer.parse(root["pre_tokenizer"], path: "pre_tokenizer")
        addedTokens = try HFAddedVocabulary(json: root["added_tokens"], model: model, normalizer: normalizer)
        template = try HFTemplatePiece.parse(root["post_processor"])
        if let padding = root["padding"] as? [String: Any], let id = padding["pad_id"] as? Int {
            padID = id
        } else {
            padID = addedTokens.id(of: "<pad>") ?? model.tokenToID["<pad>"]
        }
    }

    /// `Tokenizer::encode` of one sequence, with special tokens, optionally truncated to `maxLength` ids
    /// (special tokens included, as HF's truncation does).
    func encode(_ text: String, addSpecialTokens: Bool, maxLength: Int?) -> (ids: [Int], pieces: [String]) {
        var ids: [Int] = []
        var pieces: [String] = []
        for segment in addedTokens.extractAndNormalize(text, normalizer: normalizer) {
            if let id = segment.addedID {
                ids.append(id)
                pieces.append(segment.text)
                continue
            }
            var splits = [HFSplit(text: segment.text, atOriginalStart: segment.atOriginalStart)]
            if let preTokenizer { splits = preTokenizer.apply(splits) }
            for split in splits where !split.text.isEmpty {
                model.tokenize(split.text, ids: &ids, pieces: &pieces)
            }
        }
        let suffix = addSpecialTokens ? (template ?? []) : []
        let added = suffix.reduce(0) { $0 + ($1.ids?.count ?? 0) }
        if let maxLength {
            let keep = max(0, maxLength - added)
            if ids.count > keep {
                ids.removeLast(ids.count - keep)
                pieces.removeLast(pieces.count - keep)
            }
        }
        if addSpecialTokens, let template {
            var out: [Int] = []
            var outPieces: [String] = []
            for p in template {
                if let special = p.ids {
                    out += special
                    outPieces += p.tokens
                } else {
                    out += ids
                    outPieces += pieces
                }
            }
            return (out, outPieces)
        }
        return (ids, pieces)
    }
}

// MARK: - Model

/// HF `models::unigram::Unigram` (the optimized encoder).
struct HFUnigram: Sendable {
    let pieces: [String]
    let scores: [Double]
    let tokenToID: ExactStringMap
    let unkID: Int
    let byteFallback: Bool
    let minScore: Double
    private let trie: PieceTrie

    init(json: [String: Any]) throws(TokenizerError.Reason) {
        guard let type = json["type"] as? String else { throw .corrupt("model has no \"type\"") }
        guard type == "Unigram" else { throw .unsupported("model type \(type) (only Unigram)") }
        guard let vocab = json["vocab"] as? [Any] else { throw .corrupt("Unigram model has no \"vocab\" array") }
        guard !vocab.isEmpty else { throw .corrupt("the vocabulary is empty") }
        var pieces: [String] = []
        var scores: [Double] = []
        pieces.reserveCapacity(vocab.count)
        scores.reserveCapacity(vocab.count)
        var map = ExactStringMap()
        map.reserveCapacity(vocab.count)
        var trie = PieceTrie()
        var minScore = Double.infinity
        for (i, entry) in vocab.enumerated() {
            guard let pair = entry as? [Any], pair.count == 2, let piece = pair[0] as? String,
                  let number = pair[1] as? NSNumber
            else { throw .corrupt("vocab entry \(i) is not [piece, score]") }
            let score = number.doubleValue
            guard score.isFinite else { throw .corrupt("vocab entry \(i) has a non-finite score") }
            pieces.append(piece)
            scores.append(score)
            map[piece] = i
            trie.insert(piece.utf8, id: Int32(i))
            minScore = min(minScore, score)
        }
        // Duplicated pieces: the trie and the map both resolve to the last id, as in `tokenizers`.
        guard let unk = json["unk_id"] as? Int else {
            throw .unsupported("Unigram model without unk_id (unknown characters could not be encoded)")
        }
        guard unk >= 0, unk < pieces.count else { throw .corrupt("unk_id \(unk) is outside the vocabulary") }
        self.pieces = pieces
        self.scores = scores
        self.tokenToID = map
        self.unkID = unk
        self.byteFallback = (json["byte_fallback"] as? Bool) ?? false
        self.minScore = minScore
        self.trie = trie
    }

    /// `Unigram::tokenize`: appends the ids and pieces of one pre-token.
    func tokenize(_ sentence: String, ids: inout [Int], pieces out: inout [String]) {
        var bytes = Array(sentence.utf8)
        let size = bytes.count
        if size == 0 { return }
        let unkScore = minScore - 10
        var bestID = [Int32](repeating: 0, count: size + 1)
        var bestScore = [Double](repeating: 0, count: size + 1)
        var bestStart = [Int32](repeating: -1, count: size + 1)
        bytes.withUnsafeMutableBufferPointer { mbuf in
            let s = UnsafeBufferPointer(mbuf)
            var startsAt = 0
            while startsAt < size {
                let tillHere = bestScore[startsAt]
                let mblen = min(SentencePieceProcessor.oneCharLength(s[startsAt]), size - startsAt)
                var hasSingleNode = false
                trie.commonPrefixSearch(s, from: startsAt) { id, length in
                    let keyPos = startsAt + length
                    let candidate = scores[Int(id)] + tillHere
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
        }
        // Backtrack; runs of unknown nodes are fused into one token (fuse_unk).
        var tokens: [Range<Int>] = []
        var endsAt = size
        var unkEnd: Int?
        while endsAt > 0 {
            let start = Int(bestStart[endsAt])
            guard start >= 0, start < endsAt else { break }
            if Int(bestID[endsAt]) == unkID {
                if unkEnd == nil { unkEnd = endsAt }
            } else {
                if let e = unkEnd { tokens.append(endsAt..<e); unkEnd = nil }
                tokens.append(start..<endsAt)
            }
            endsAt = start
        }
        if let e = unkEnd { tokens.append(endsAt..<e) }
        tokens.reverse()
        for r in tokens {
            let piece = String(decoding: bytes[r], as: UTF8.self)
            if let id = tokenToID[bytes: Array(bytes[r])] {
                ids.append(id)
                out.append(piece)
                continue
            }
            if byteFallback {
                var byteIDs: [Int] = []
                var bytePieces: [String] = []
                for b in bytes[r] {
                    let name = String(format2Hex: b)
                    guard let id = tokenToID[name] else { break }
                    byteIDs.append(id)
                    bytePieces.append(name)
                }
                if byteIDs.count == r.count {
                    ids += byteIDs
                    out += bytePieces
                    continue
                }
            }
            ids.append(unkID)
            out.append(piece)
        }
    }
}

// MARK: - Patterns

/// A compiled `Replace` / `Split` pattern (literal string or regular expression).
struct HFPattern: @unchecked Sendable {  // NSRegularExpression is immutable and thread-safe
    let regex: NSRegularExpression

    static func parse(_ json: Any?, path: String) throws(TokenizerError.Reason) -> HFPattern {
        let source: String
        if let s = json as? String {
            source = NSRegularExpression.escapedPattern(for: s)
        } else if let d = json as? [String: Any], let s = d["String"] as? String {
            source = NSRegularExpression.escapedPattern(for: s)
        } else if let d = json as? [String: Any], let s = d["Regex"] as? String {
            source = s
        } else {
            throw .corrupt("\(path): pattern is neither {\"String\": ...} nor {\"Regex\": ...}")
        }
        do { return HFPattern(regex: try NSRegularExpression(pattern: source)) } catch {
            throw .unsupported("\(path): regular expression \(source) does not compile")
        }
    }

    /// The string cut into (piece, isMatch) parts covering it, in order.
    func parts(_ s: String) -> [(Range<String.Index>, Bool)] {
        var parts: [(Range<String.Index>, Bool)] = []
        var prev = s.startIndex
        for m in regex.matches(in: s, range: NSRange(s.startIndex..., in: s)) {
            guard let r = Range(m.range, in: s) else { continue }
            if prev < r.lowerBound { parts.append((prev..<r.lowerBound, false)) }
            parts.append((r, true))
            prev = r.upperBound
        }
        if prev < s.endIndex { parts.append((prev..<s.endIndex, false)) }
        return parts
    }

    func replaceAll(_ s: String, with content: String) -> String {
        var out = ""
        for (r, isMatch) in parts(s) { out += isMatch ? content : String(s[r]) }
        return out
    }
}

// MARK: - Normalizers

indirect enum HFNormalizer: Sendable {
    case sequence([HFNormalizer])
    case precompiled(PrecompiledCharsMap?)
    case replace(HFPattern, String)
    case strip(left: Bool, right: Bool)
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case prepend(String)

    static func parse(_ json: Any?, path: String) throws(TokenizerError.Reason) -> HFNormalizer? {
        if json == nil || json is NSNull { return nil }
        guard let d = json as? [String: Any], let type = d["type"] as? String else {
            throw .corrupt("\(path) is not an object with a \"type\"")
        }
        switch type {
        case "Sequence":
            guard let list = d["normalizers"] as? [Any] else { throw .corrupt("\(path): Sequence without \"normalizers\"") }
            var items: [HFNormalizer] = []
            for (i, item) in list.enumerated() {
                if let n = try parse(item, path: "\(path).normalizers[\(i)]") { items.append(n) }
            }
            return .sequence(items)
        case "Precompiled":
            let b64 = d["precompiled_charsmap"] as? String ?? ""
            if b64.isEmpty { return .precompiled(nil) }
            guard let data = Data(base64Encoded: b64) else { throw .corrupt("\(path): precompiled_charsmap is not base64") }
            do {
                let map = try PrecompiledCharsMap(blob: [UInt8](data))
                guard String(validating: map.normalized, as: UTF8.self) != nil else {
                    throw TokenizerError.Reason.corrupt("\(path): precompiled_charsmap strings are not UTF-8")
                }
                return .precompiled(map)
            } catch let e as TokenizerError.Reason {
                throw e
            } catch {
                throw .corrupt("\(path): \(error)")
            }
        case "Replace":
            guard let content = d["content"] as? String else { throw .corrupt("\(path): Replace without \"content\"") }
            return .replace(try HFPattern.parse(d["pattern"], path: path), content)
        case "Strip":
            return .strip(left: d["strip_left"] as? Bool ?? true, right: d["strip_right"] as? Bool ?? true)
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Prepend":
            guard let p = d["prepend"] as? String else { throw .corrupt("\(path): Prepend without \"prepend\"") }
            return .prepend(p)
        default:
            throw .unsupported("\(path): normalizer \(type)")
        }
    }

    func apply(_ s: String) -> String {
        switch self {
        case let .sequence(items): return items.reduce(s) { $1.apply($0) }
        case let .precompiled(map):
            guard let map else { return s }
            return Self.precompiled(s, map)
        case let .replace(pattern, content): return pattern.replaceAll(s, with: content)
        case let .strip(left, right):
            var scalars = Substring(s).unicodeScalars[...]
            if left { while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() } }
            if right { while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() } }
            return String(String.UnicodeScalarView(scalars))
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase: return s.lowercased()
        case let .prepend(p): return s.isEmpty ? s : p + s
        }
    }

    /// `tokenizers`' Precompiled normalizer: per extended grapheme cluster, the whole cluster (when under 6 bytes)
    /// is replaced by the first (shortest) rule matching a prefix of it; otherwise each character is replaced by
    /// its rule, if any.
    static func precompiled(_ s: String, _ map: PrecompiledCharsMap) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var buf: [UInt8] = []
        for ch in s {
            buf.removeAll(keepingCapacity: true)
            buf.append(contentsOf: ch.utf8)
            if buf.count < 6, let v = buf.withUnsafeBufferPointer({ map.firstMatch($0) }) {
                out += map.replacement(at: v)
                continue
            }
            for scalar in ch.unicodeScalars {
                buf.removeAll(keepingCapacity: true)
                buf.append(contentsOf: String(scalar).utf8)
                if let v = buf.withUnsafeBufferPointer({ map.firstMatch($0) }) {
                    out += map.replacement(at: v)
                } else {
                    out += buf
                }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - Pre-tokenizers

/// One piece of pre-tokenized text; `atOriginalStart` tells whether it begins at offset 0 of the original input
/// (what Metaspace's `prepend_scheme: first` looks at).
struct HFSplit: Sendable {
    var text: String
    var atOriginalStart: Bool
}

enum HFSplitBehavior: String, Sendable {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"

    /// `SplitDelimiterBehavior` applied to (range, isMatch) parts.
    func apply(_ parts: [(Range<String.Index>, Bool)]) -> [Range<String.Index>] {
        switch self {
        case .removed: return parts.filter { !$0.1 }.map(\.0)
        case .isolated: return parts.map(\.0)
        case .mergedWithPrevious:
            var acc: [Range<String.Index>] = []
            var previousMatch = false
            for (r, isMatch) in parts {
                if isMatch && !previousMatch, let last = acc.last {
                    acc[acc.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    acc.append(r)
                }
                previousMatch = isMatch
            }
            return acc
        case .mergedWithNext:
            var acc: [Range<String.Index>] = []
            var previousMatch = false
            for (r, isMatch) in parts.reversed() {
                if isMatch && !previousMatch, let last = acc.last {
                    acc[acc.count - 1] = r.lowerBound..<last.upperBound
                } else {
                    acc.append(r)
                }
                previousMatch = isMatch
            }
            return acc.reversed()
        case .contiguous:
            var acc: [Range<String.Index>] = []
            var previousMatch = false
            for (r, isMatch) in parts {
                if isMatch == previousMatch, let last = acc.last {
                    acc[acc.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    acc.append(r)
                }
                previousMatch = isMatch
            }
            return acc
        }
    }
}

indirect enum HFPreTokenizer: Sendable {
    enum PrependScheme: String, Sendable { case always, first, never }

    case sequence([HFPreTokenizer])
    case metaspace(replacement: Unicode.Scalar, prepend: PrependScheme, split: Bool)
    case whitespaceSplit
    case split(HFPattern, HFSplitBehavior, invert: Bool)

    static func parse(_ json: Any?, path: String) throws(TokenizerError.Reason) -> HFPreTokenizer? {
        if json == nil || json is NSNull { return nil }
        guard let d = json as? [String: Any], let type = d["type"] as? String else {
            throw .corrupt("\(path) is not an object with a \"type\"")
        }
        switch type {
        case "Sequence":
            guard let list = d["pretokenizers"] as? [Any] else {
                throw .corrupt("\(path): Sequence without \"pretokenizers\"")
            }
            var items: [HFPreTokenizer] = []
            for (i, item) in list.enumerated() {
                if let p = try parse(item, path: "\(path).pretokenizers[\(i)]") { items.append(p) }
            }
            return .sequence(items)
        case "Metaspace":
            guard let r = d["replacement"] as? String, r.unicodeScalars.count == 1, let c = r.unicodeScalars.first else {
                throw .corrupt("\(path): Metaspace replacement is not one character")
            }
            var scheme = PrependScheme.always
            if let s = d["prepend_scheme"] as? String {
                guard let v = PrependScheme(rawValue: s) else { throw .corrupt("\(path): prepend_scheme \(s)") }
                scheme = v
            }
            if let add = d["add_prefix_space"] as? Bool, !add {
                guard d["prepend_scheme"] == nil || scheme == .never else {
                    throw .corrupt("\(path): add_prefix_space does not match declared prepend_scheme")
                }
                scheme = .never
            }
            return .metaspace(replacement: c, prepend: scheme, split: d["split"] as? Bool ?? true)
        case "WhitespaceSplit":
            return .whitespaceSplit
        case "Split":
            guard let b = d["behavior"] as? String, let behavior = HFSplitBehavior(rawValue: b) else {
                throw .corrupt("\(path): Split without a known \"behavior\"")
            }
            return .split(try HFPattern.parse(d["pattern"], path: path), behavior, invert: d["invert"] as? Bool ?? false)
        default:
            throw .unsupported("\(path): pre-tokenizer \(type)")
        }
    }

    func apply(_ splits: [HFSplit]) -> [HFSplit] {
        switch self {
        case let .sequence(items):
            return items.reduce(splits) { $1.apply($0) }
        case let .metaspace(replacement, prepend, split):
            // On code points, as `tokenizers` does (a space followed by a combining mark is still a space).
            let rep = replacement
            var out: [HFSplit] = []
            for s in splits {
                var text = String.UnicodeScalarView()
                for u in s.text.unicodeScalars { text.append(u == " " ? rep : u) }
                switch prepend {
                case .always: if text.first != rep { text.insert(rep, at: text.startIndex) }
                case .first: if text.first != rep && s.atOriginalStart { text.insert(rep, at: text.startIndex) }
                case .never: break
                }
                guard split else {
                    if !text.isEmpty { out.append(HFSplit(text: String(text), atOriginalStart: s.atOriginalStart)) }
                    continue
                }
                var current = String.UnicodeScalarView()
                var first = true
                for u in text {
                    if u == rep && !current.isEmpty {
                        out.append(HFSplit(text: String(current), atOriginalStart: first && s.atOriginalStart))
                        first = false
                        current = String.UnicodeScalarView()
                    }
                    current.append(u)
                }
                if !current.isEmpty {
                    out.append(HFSplit(text: String(current), atOriginalStart: first && s.atOriginalStart))
                }
            }
            return out
        case .whitespaceSplit:
            var out: [HFSplit] = []
            for s in splits {
                var current = String.UnicodeScalarView()
                var currentStartsAtZero = s.atOriginalStart
                for u in s.text.unicodeScalars {
                    if u.properties.isWhitespace {
                        if !current.isEmpty {
                            out.append(HFSplit(text: String(current), atOriginalStart: currentStartsAtZero))
                            current = String.UnicodeScalarView()
                        }
                        currentStartsAtZero = false
                    } else {
                        current.append(u)
                    }
                }
                if !current.isEmpty { out.append(HFSplit(text: String(current), atOriginalStart: currentStartsAtZero)) }
            }
            return out
        case let .split(pattern, behavior, invert):
            var out: [HFSplit] = []
            for s in splits {
                var parts = pattern.parts(s.text)
                if invert { parts = parts.map { ($0.0, !$0.1) } }
                for r in behavior.apply(parts) where !r.isEmpty {
                    out.append(HFSplit(text: String(s.text[r]), atOriginalStart: s.atOriginalStart && r.lowerBound == s.text.startIndex))
                }
            }
            return out
        }
    }
}

// MARK: - Added tokens

/// HF `AddedVocabulary`: tokens matched in the raw text (normalized: false) or in the normalized text
/// (normalized: true) before the model sees it.
struct HFAddedVocabulary: Sendable {
    struct Token: Sendable {
        var content: String
        var id: Int
        var singleWord: Bool
        var lstrip: Bool
        var rstrip: Bool
        var normalized: Bool
        var special: Bool
    }

    struct Segment {
        var text: String
        var addedID: Int?
        var atOriginalStart: Bool
    }

    private(set) var tokens: [Token] = []
    private var byContent = ExactStringMap()
    private var rawTrie: PieceTrie?
    private var normalizedTrie: PieceTrie?

    init(json: Any?, model: HFUnigram, normalizer: HFNormalizer?) throws(TokenizerError.Reason) {
        guard let list = json as? [Any] else {
            if json == nil || json is NSNull { return }
            throw .corrupt("\"added_tokens\" is not an array")
        }
        var nextID = model.pieces.count
        var raw = PieceTrie()
        var norm = PieceTrie()
        var hasRaw = false
        var hasNorm = false
        for (i, item) in list.enumerated() {
            guard let d = item as? [String: Any], let content = d["content"] as? String else {
                throw .corrupt("added_tokens[\(i)] has no \"content\"")
            }
            if content.isEmpty { continue }
            let special = d["special"] as? Bool ?? false
            let token = Token(
                content: content, id: 0, singleWord: d["single_word"] as? Bool ?? false,
                lstrip: d["lstrip"] as? Bool ?? false, rstrip: d["rstrip"] as? Bool ?? false,
                normalized: d["normalized"] as? Bool ?? !special, special: special)
            // The id is recomputed as `AddedVocabulary::add_tokens` does: an existing added token or model piece
            // keeps its id, a new one gets the next id after the vocabulary.
            let id: Int
            if let existing = byContent[content] {
                id = tokens[existing].id
            } else if let m = model.tokenToID[content] {
                id = m
            } else {
                id = nextID
                nextID += 1
            }
            var t = token
            t.id = id
            let index: Int
            if let existing = byContent[content] {
                tokens[existing] = t
                index = existing
            } else {
                tokens.append(t)
                index = tokens.count - 1
                byContent[content] = index
            }
            if nextID <= id { nextID = id + 1 }
            if t.normalized {
                let pattern = normalizer?.apply(content) ?? content
                norm.insert(pattern.utf8, id: Int32(index))
                hasNorm = true
            } else {
                raw.insert(content.utf8, id: Int32(index))
                hasRaw = true
            }
        }
        rawTrie = hasRaw ? raw : nil
        normalizedTrie = hasNorm ? norm : nil
    }

    func id(of content: String) -> Int? { byContent[content].map { tokens[$0].id } }

    /// `AddedVocabulary::extract_and_normalize`: raw-matched tokens, then the normalizer on the text between them,
    /// then normalized-matched tokens. Empty segments are dropped.
    func extractAndNormalize(_ text: String, normalizer: HFNormalizer?) -> [Segment] {
        var out: [Segment] = []
        for first in split(text, trie: rawTrie, atOriginalStart: true) {
            if first.addedID != nil { out.append(first); continue }
            let normalized = normalizer?.apply(first.text) ?? first.text
            for second in split(normalized, trie: normalizedTrie, atOriginalStart: first.atOriginalStart)
            where !second.text.isEmpty {
                out.append(second)
            }
        }
        return out
    }

    private func split(_ text: String, trie: PieceTrie?, atOriginalStart: Bool) -> [Segment] {
        guard let trie, !text.isEmpty else {
            return text.isEmpty ? [] : [Segment(text: text, addedID: nil, atOriginalStart: atOriginalStart)]
        }
        var bytes = Array(text.utf8)
        var matches: [(Range<Int>, Int)] = []
        bytes.withUnsafeMutableBufferPointer { mbuf in
            let s = UnsafeBufferPointer(mbuf)
            var i = 0
            var startOffset = 0
            while i < s.count {
                var best: (Int32, Int)?
                trie.commonPrefixSearch(s, from: i) { idx, length in best = (idx, length) }
                guard let (idx, length) = best else { i += 1; continue }
                let token = tokens[Int(idx)]
                var start = i
                var stop = i + length
                i = stop  // non-overlapping: the search goes on after this match, kept or not
                if token.singleWord {
                    let startSpace = start == 0 || !Self.endsWithWord(s, start)
                    let stopSpace = stop == s.count || !Self.startsWithWord(s, stop)
                    if !startSpace || !stopSpace { continue }
                }
                if token.lstrip {
                    var ns = start
                    while ns > 0, let (u, len) = Self.scalarBefore(s, ns), u.properties.isWhitespace { ns -= len }
                    start = max(ns, startOffset)
                }
                if token.rstrip {
                    while stop < s.count, let (u, len) = Self.scalarAt(s, stop), u.properties.isWhitespace { stop += len }
                }
                matches.append((start..<stop, Int(idx)))
                startOffset = stop
                i = max(i, stop)
            }
        }
        var out: [Segment] = []
        var prev = 0
        for (r, idx) in matches {
            if prev < r.lowerBound {
                out.append(Segment(text: String(decoding: bytes[prev..<r.lowerBound], as: UTF8.self), addedID: nil,
                                   atOriginalStart: atOriginalStart && prev == 0))
            }
            out.append(Segment(text: String(decoding: bytes[r], as: UTF8.self), addedID: tokens[idx].id,
                               atOriginalStart: false))
            prev = r.upperBound
        }
        if prev < bytes.count {
            out.append(Segment(text: String(decoding: bytes[prev...], as: UTF8.self), addedID: nil,
                               atOriginalStart: atOriginalStart && prev == 0))
        }
        return out
    }

    private static func scalarAt(_ s: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Unicode.Scalar, Int)? {
        let len = min(SentencePieceProcessor.oneCharLength(s[i]), s.count - i)
        let str = String(decoding: UnsafeBufferPointer(rebasing: s[i..<(i + len)]), as: UTF8.self)
        return str.unicodeScalars.first.map { ($0, len) }
    }

    private static func scalarBefore(_ s: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Unicode.Scalar, Int)? {
        var j = i - 1
        while j > 0 && s[j] & 0xC0 == 0x80 { j -= 1 }
        return scalarAt(s, j).map { ($0.0, i - j) }
    }

    /// Rust regex `\w` (Unicode): alphabetic, marks, decimal digits, connector punctuation, join controls.
    private static func isWord(_ u: Unicode.Scalar) -> Bool {
        let p = u.properties
        if p.isAlphabetic || p.isJoinControl || p.numericType == .decimal { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .connectorPunctuation: return true
        default: return false
        }
    }

    private static func endsWithWord(_ s: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
        scalarBefore(s, i).map { isWord($0.0) } ?? false
    }

    private static func startsWithWord(_ s: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
        scalarAt(s, i).map { isWord($0.0) } ?? false
    }
}

// MARK: - Post-processor

/// One item of a `TemplateProcessing` single-sequence template: the sequence itself (ids nil) or a special token.
struct HFTemplatePiece: Sendable {
    var ids: [Int]?
    var tokens: [String]

    static func parse(_ json: Any?) throws(TokenizerError.Reason) -> [HFTemplatePiece]? {
        if json == nil || json is NSNull { return nil }
        guard let d = json as? [String: Any], let type = d["type"] as? String else {
            throw .corrupt("post_processor is not an object with a \"type\"")
        }
        guard type == "TemplateProcessing" else { throw .unsupported("post_processor \(type)") }
        guard let single = d["single"] as? [Any] else { throw .corrupt("TemplateProcessing without \"single\"") }
        let specials = d["special_tokens"] as? [String: Any] ?? [:]
        var out: [HFTemplatePiece] = []
        for (i, item) in single.enumerated() {
            guard let p = item as? [String: Any] else { throw .corrupt("post_processor.single[\(i)] is not an object") }
            if p["Sequence"] != nil {
                out.append(HFTemplatePiece(ids: nil, tokens: []))
            } else if let st = p["SpecialToken"] as? [String: Any], let name = st["id"] as? String {
                guard let spec = specials[name] as? [String: Any], let ids = spec["ids"] as? [Int] else {
                    throw .corrupt("post_processor: special token \(name) has no ids")
                }
                let tokens = spec["tokens"] as? [String] ?? Array(repeating: name, count: ids.count)
                out.append(HFTemplatePiece(ids: ids, tokens: tokens))
            } else {
                throw .corrupt("post_processor.single[\(i)] is neither Sequence nor SpecialToken")
            }
        }
        return out
    }
}
