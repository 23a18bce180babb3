import Foundation
import Testing

@testable import WanPipelines

/// Writes SentencePiece `ModelProto` bytes for hand-made models.
enum ProtoWriter {
    static func varint(_ v: UInt64) -> [UInt8] {
        var v = v
        var out: [UInt8] = []
        repeat {
            var b = UInt8(v & 0x7F)
            v >>= 7
            if v != 0 { b |= 0x80 }
            out.append(b)
        } while v != 0
        return out
    }

    static func field(_ n: Int, varint v: Int64) -> [UInt8] { varint(UInt64(n << 3)) + varint(UInt64(bitPattern: v)) }
    static func field(_ n: Int, bytes: [UInt8]) -> [UInt8] { varint(UInt64(n << 3 | 2)) + varint(UInt64(bytes.count)) + bytes }
    static func field(_ n: Int, float: Float) -> [UInt8] {
        let b = float.bitPattern
        return varint(UInt64(n << 3 | 5)) + [UInt8(b & 0xFF), UInt8(b >> 8 & 0xFF), UInt8(b >> 16 & 0xFF), UInt8(b >> 24)]
    }

    /// Piece types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    static func model(
        _ pieces: [(String, Float, Int)], modelType: Int64 = 1, byteFallback: Bool = false,
        unk: Int64 = 3, eos: Int64 = 1, pad: Int64 = 0, charsmap: [UInt8]? = nil
    ) -> Data {
        var out: [UInt8] = []
        for (p, s, t) in pieces {
            out += field(1, bytes: field(1, bytes: Array(p.utf8)) + field(2, float: s) + field(3, varint: Int64(t)))
        }
        var trainer = field(3, varint: modelType) + field(40, varint: unk) + field(41, varint: 2) + field(42, varint: eos)
        trainer += field(43, varint: pad)
        if byteFallback { trainer += field(35, varint: 1) }
        out += field(2, bytes: trainer)
        var normalizer = field(1, bytes: Array("identity".utf8))
        if let charsmap { normalizer += field(2, bytes: charsmap) }
        out += field(3, bytes: normalizer)
        return Data(out)
    }

    /// The hand-made model also built with the `sentencepiece` Python package to get the expected ids below.
    static let synthetic: [(String, Float, Int)] = [
        ("<pad>", 0, 3), ("</s>", 0, 3), ("<s>", 0, 3), ("<unk>", 0, 2), ("\u{2581}", -2, 1), ("a", -1, 1), ("b", -1, 1),
        ("ab", -0.5, 1), ("\u{30D3}", -1, 1), ("\u{30D2}\u{3099}", -3, 1), ("<u>", 0, 4), ("zz", -0.1, 5), ("\u{2581}a", -1.5, 1),
    ]
}

@Suite struct TokenizerSyntheticTests {
    /// Ids from `sentencepiece` 0.2.3 on the same model (plus EOS). "ビ" and "ヒ\u{3099}" are distinct pieces
    /// although Swift strings call them equal.
    @Test func handMadeSentencePieceModel() throws {
        let tok = try UnigramTokenizer(data: ProtoWriter.model(ProtoWriter.synthetic), name: "synthetic.model")
        let cases: [(String, [Int])] = [
            ("\u{30D2}\u{3099}", [4, 9, 1]), ("\u{30D3}", [4, 8, 1]), ("zz", [4, 3, 1]), ("a<u>b", [12, 10, 6, 1]),
            ("ab a", [4, 7, 12, 1]), ("  a   b  ", [12, 4, 6, 1]), ("x", [4, 3, 1]), ("xyz ab", [4, 3, 4, 7, 1]),
            ("<u><u>", [4, 10, 10, 1]), ("\u{30D2}", [4, 3, 1]), ("", [1]), ("   ", [1]),
        ]
        for (text, want) in cases {
            #expect(tok.encode(text) == want, "\(text.debugDescription)")
        }
        #expect(tok.id(for: "\u{30D2}\u{3099}") == 9 && tok.id(for: "\u{30D3}") == 8)
    }

    /// Ids from `tokenizers` 0.23.3 on the same tokenizer.json: byte-exact vocabulary lookups.
    @Test func handMadeTokenizerJSON() throws {
        func json(byteFallback: Bool) throws -> Data {
            var vocab: [[Any]] = [["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["\u{2581}", -2.0], ["\u{30D3}", -1.0], ["a", -1.0]]
            for b in 0..<256 { vocab.append([String(format2Hex: UInt8(b)), 0.0]) }
            let root: [String: Any] = [
                "added_tokens": [
                    ["id": 0, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true],
                    ["id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true],
                ],
                "normalizer": NSNull(),
                "pre_tokenizer": ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true],
                "post_processor": [
                    "type": "TemplateProcessing",
                    "single": [["Sequence": ["id": "A", "type_id": 0]], ["SpecialToken": ["id": "</s>", "type_id": 0]]],
                    "special_tokens": ["</s>": ["id": "</s>", "ids": [1], "tokens": ["</s>"]]],
                ],
                "model": ["type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": byteFallback],
            ]
            return try JSONSerialization.data(withJSONObject: root)
        }
        let plain = try UnigramTokenizer(data: json(byteFallback: false), name: "synthetic.json")
        #expect(plain.encode("\u{30D2}\u{3099}") == [3, 2, 1])
        #expect(plain.encode("\u{30D3}") == [3, 4, 1])
        #expect(plain.encode("a\u{30D2}\u{3099}a") == [3, 5, 2, 5, 1])
        #expect(plain.encode("a  a") == [3, 5, 3, 3, 5, 1])
        #expect(plain.encode("</s>a") == [1, 3, 5, 1])
        let bytes = try UnigramTokenizer(data: json(byteFallback: true), name: "synthetic.json")
        #expect(bytes.encode("\u{30D2}\u{3099}") == [3, 233, 137, 152, 233, 136, 159, 1])
        #expect(bytes.encode("a\u{30D2}\u{3099}a") == [3, 5, 233, 137, 152, 233, 136, 159, 5, 1])
    }
}

@Suite struct TokenizerBadInputTests {
    static func expectError(_ data: Data, _ match: (TokenizerError) -> Bool, _ what: String) {
        do {
            _ = try UnigramTokenizer(data: data, name: "bad")
            Issue.record("\(what): loaded")
        } catch {
            #expect(match(error), "\(what): \(error)")
            #expect(error.description.hasPrefix("bad: "), "\(what): the message names the file: \(error)")
        }
    }

    static func isCorrupt(_ e: TokenizerError) -> Bool { if case .corrupt = e { return true }; return false }
    static func isUnsupported(_ e: TokenizerError) -> Bool { if case .unsupported = e { return true }; return false }
    static func isUnknown(_ e: TokenizerError) -> Bool { if case .unknownFormat = e { return true }; return false }

    @Test func files() {
        #expect(throws: TokenizerError.fileNotFound("/nonexistent/spiece.model")) {
            try UnigramTokenizer(contentsOfFile: "/nonexistent/spiece.model")
        }
        do {
            _ = try UnigramTokenizer(contentsOfFile: NSTemporaryDirectory())
            Issue.record("a directory loaded")
        } catch {
            guard case .unreadable = error else { Issue.record("directory: \(error)"); return }
        }
        Self.expectError(Data(), Self.isUnknown, "empty")
        Self.expectError(Data("hello, world".utf8), Self.isUnknown, "text")
        Self.expectError(Data([0xFF, 0xFF, 0xFF]), Self.isUnknown, "garbage")
    }

    @Test func sentencePieceModels() {
        let base = ProtoWriter.synthetic
        Self.expectError(ProtoWriter.model(base, modelType: 2), Self.isUnsupported, "BPE")
        Self.expectError(ProtoWriter.model(base.filter { $0.2 != 2 }), Self.isCorrupt, "no unk")
        Self.expectError(ProtoWriter.model(base + [("a", -1, 1)]), Self.isCorrupt, "duplicate piece")
        Self.expectError(ProtoWriter.model(base + [("", -1, 1)]), Self.isCorrupt, "empty piece")
        Self.expectError(ProtoWriter.model(base + [("<unk2>", 0, 2)]), Self.isCorrupt, "two unk")
        Self.expectError(ProtoWriter.model(base + [("<0x41>", 0, 6)]), Self.isCorrupt, "byte piece without byte_fallback")
        Self.expectError(ProtoWriter.model(base + [("<0x41>", 0, 6)], byteFallback: true), Self.isCorrupt, "256 bytes missing")
        Self.expectError(ProtoWriter.model(base + [("<0xZZ>", 0, 6)], byteFallback: true), Self.isCorrupt, "bad byte piece")
        Self.expectError(ProtoWriter.model(base + [("q", 0, 9)]), Self.isCorrupt, "bad piece type")
        Self.expectError(ProtoWriter.model(base, charsmap: [1, 2, 3]), Self.isCorrupt, "short charsmap")
        Self.expectError(ProtoWriter.model(base, charsmap: [0xFF, 0, 0, 0, 1, 2]), Self.isCorrupt, "charsmap trie size")
        var truncated = ProtoWriter.model(base)
        truncated.removeLast(5)
        Self.expectError(truncated, Self.isCorrupt, "truncated")
        Self.expectError(Data([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), Self.isCorrupt, "absurd length")
        Self.expectError(Data([0x0A, 0x02, 0x0B, 0x00]), Self.isCorrupt, "group wire type")
        Self.expectError(Data([0x0A] + Array(repeating: 0xFF, count: 11)), Self.isCorrupt, "overlong varint")
        // A valid model whose eos/pad ids are out of range still loads; those ids are just absent.
        let noEOS = try? UnigramTokenizer(data: ProtoWriter.model(base.filter { $0.0 != "</s>" }, eos: 999, pad: -1), name: "x")
        #expect(noEOS?.eosID == nil && noEOS?.padID == 0)
        #expect(noEOS?.encode("a") == [11])
    }

    @Test func tokenizerJSONFiles() throws {
        let good = try #require(try JSONSerialization.jsonObject(with: TokenizerFixtures.data("tokenizer.json")) as? [String: Any])
        func variant(_ edit: (inout [String: Any]) -> Void) throws -> Data {
            var root = good
            edit(&root)
            return try JSONSerialization.data(withJSONObject: root)
        }
        func model(_ edit: (inout [String: Any]) -> Void) throws -> Data {
            try variant { root in
                var m = root["model"] as? [String: Any] ?? [:]
                edit(&m)
                root["model"] = m
            }
        }
        Self.expectError(Data("{\"model\": ".utf8), Self.isCorrupt, "truncated JSON")
        Self.expectError(Data("{}".utf8), Self.isCorrupt, "no model")
        Self.expectError(try model { $0["type"] = "BPE" }, Self.isUnsupported, "BPE")
        Self.expectError(try model { $0["unk_id"] = NSNull() }, Self.isUnsupported, "no unk_id")
        Self.expectError(try model { $0["unk_id"] = 1_000_000 }, Self.isCorrupt, "unk_id out of range")
        Self.expectError(try model { $0["vocab"] = [["a"]] }, Self.isCorrupt, "bad vocab entry")
        Self.expectError(try model { $0["vocab"] = [] as [Any] }, Self.isCorrupt, "empty vocab")
        Self.expectError(try variant { $0["normalizer"] = ["type": "BertNormalizer"] }, Self.isUnsupported, "normalizer")
        Self.expectError(try variant { $0["normalizer"] = ["type": "Precompiled", "precompiled_charsmap": "!!"] },
                         Self.isCorrupt, "base64")
        Self.expectError(try variant { $0["normalizer"] = ["type": "Precompiled", "precompiled_charsmap": "AQID"] },
                         Self.isCorrupt, "charsmap")
        Self.expectError(try variant { $0["normalizer"] = ["type": "Replace", "pattern": ["Regex": "("], "content": ""] },
                         Self.isUnsupported, "regex")
        Self.expectError(try variant { $0["pre_tokenizer"] = ["type": "ByteLevel"] }, Self.isUnsupported, "pre-tokenizer")
        Self.expectError(try variant { $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "ab"] },
                         Self.isCorrupt, "metaspace")
        Self.expectError(try variant { $0["post_processor"] = ["type": "BertProcessing"] }, Self.isUnsupported, "post-processor")
        Self.expectError(try variant {
            $0["post_processor"] = ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "</s>", "type_id": 0]]],
                                    "special_tokens": ["</s>": ["id": "</s>", "ids": [99_999], "tokens": ["</s>"]]]]
        }, Self.isCorrupt, "template id")
        Self.expectError(try variant { $0["added_tokens"] = [["id": 5]] }, Self.isCorrupt, "added token")
    }

    /// Random byte flips and truncations of the fixture files (and random character maps): every load either
    /// fails with a TokenizerError or gives a tokenizer whose ids stay in range. Bounded to about 2 s.
    @Test func fuzz() throws {
        var rng = SplitMix64(seed: 0x5EED)
        let samples = ["", "hello world", "色调艳丽，过曝 😀 ﬁ Ａ\u{301}", "  a  <extra_id_1> </s> ｶﾀｶﾅ"]
        let clock = ContinuousClock()
        var counts = (loaded: 0, failed: 0)
        func check(_ data: Data) {
            do {
                let tok = try UnigramTokenizer(data: data, name: "fuzz")
                counts.loaded += 1
                for s in samples {
                    let ids = tok.encode(s, maxLength: 64)
                    if !ids.allSatisfy({ $0 >= 0 && $0 < tok.vocabularySize }) || ids.count > 64 {
                        Issue.record("ids out of range: \(ids)")
                    }
                }
            } catch {
                counts.failed += 1
            }
        }
        for file in ["spiece.model", "tokenizer.json"] {
            let original = [UInt8](try TokenizerFixtures.data(file))
            let deadline = clock.now + .milliseconds(800)
            var n = 0
            while clock.now < deadline || n < 20 {
                var bytes = original
                switch rng.next() % 3 {
                case 0:
                    bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
                case 1:
                    for _ in 0..<(1 + rng.next() % 8) {
                        bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(1 << (rng.next() % 8))
                    }
                default:
                    // Flips inside the first 2 kB (headers, trainer/normalizer specs, JSON structure).
                    for _ in 0..<(1 + rng.next() % 4) {
                        bytes[Int(rng.next() % UInt64(min(2048, bytes.count)))] = UInt8(truncatingIfNeeded: rng.next())
                    }
                }
                check(Data(bytes))
                n += 1
            }
        }
        // Random precompiled character maps, through both normalizers.
        let deadline = clock.now + .milliseconds(300)
        var maps = 0
        while clock.now < deadline || maps < 20 {
            var blob = [UInt8](repeating: 0, count: 8 + Int(rng.next() % 512))
            for i in 0..<blob.count { blob[i] = UInt8(truncatingIfNeeded: rng.next()) }
            let trie = Int(rng.next() % UInt64(blob.count - 4)) & ~3
            blob[0] = UInt8(trie & 0xFF); blob[1] = UInt8(trie >> 8); blob[2] = 0; blob[3] = 0
            if let map = try? PrecompiledCharsMap(blob: blob) {
                for s in samples { _ = HFNormalizer.precompiled(s, map) }
            }
            check(ProtoWriter.model(ProtoWriter.synthetic, charsmap: blob))
            maps += 1
        }
        print("tokenizer fuzz: \(counts.loaded) loaded, \(counts.failed) rejected, \(maps) random character maps")
        #expect(counts.loaded + counts.failed >= 40)
        #expect(counts.failed > 0)
    }
}

/// A small deterministic generator for the fuzz test.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
