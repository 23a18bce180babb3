import Foundation
import Testing

@testable import WanPipelines

/// Fixtures written by Fixtures/generate_tokenizer.py from the real `sentencepiece`, `tokenizers`, `transformers`
/// and `ftfy`. `WAN_TOKENIZER_FIXTURES` may point at another set written by the script (e.g. its `--full` set
/// with the complete nmt_nfkc character map).
enum TokenizerFixtures {
    static let directory: URL = {
        if let dir = ProcessInfo.processInfo.environment["WAN_TOKENIZER_FIXTURES"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    }()

    static let cleaningFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/cleaning_expected.json")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func data(_ name: String) throws -> Data { try Data(contentsOf: directory.appendingPathComponent(name)) }

    static func json(_ url: URL) throws -> [String: Any] {
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
        return try #require(obj as? [String: Any])
    }

    static func expected() throws -> [String: Any] { try json(directory.appendingPathComponent("tokenizer_expected.json")) }

    /// The tokenizer.json variants the generator derived from the converted file, derived the same way.
    static func variant(_ name: String) throws -> Data {
        let base = try data("tokenizer.json")
        var root = try #require(try JSONSerialization.jsonObject(with: base) as? [String: Any])
        switch name {
        case "t5": return base
        case "t5_byte_fallback":
            var model = try #require(root["model"] as? [String: Any])
            model["byte_fallback"] = true
            root["model"] = model
        case "t5_legacy":
            let normalizer = try #require(root["normalizer"] as? [String: Any])
            let list = try #require(normalizer["normalizers"] as? [[String: Any]])
            let charsmap = try #require(list.first { $0["type"] as? String == "Precompiled" })
            root["normalizer"] = ["type": "Sequence", "normalizers": [
                charsmap, ["type": "Replace", "pattern": ["Regex": " {2,}"], "content": " "],
            ]] as [String: Any]
            root["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
                ["type": "WhitespaceSplit"], ["type": "Metaspace", "replacement": "\u{2581}", "add_prefix_space": true],
            ]] as [String: Any]
        case "t5_first":
            var pre = try #require(root["pre_tokenizer"] as? [String: Any])
            pre["prepend_scheme"] = "first"
            root["pre_tokenizer"] = pre
        default:
            Issue.record("unknown variant \(name)")
        }
        return try JSONSerialization.data(withJSONObject: root)
    }
}

@Suite struct TokenizerFixtureTests {
    static let variants = ["t5", "t5_byte_fallback", "t5_legacy", "t5_first"]

    @Test func sentencePieceModelMatchesSentencePiece() throws {
        let expected = try TokenizerFixtures.expected()
        let cases = try #require(expected["cases"] as? [[String: Any]])
        #expect(cases.count >= 300)
        let tok = try UnigramTokenizer(contentsOfFile: TokenizerFixtures.path("spiece.model"))
        #expect(tok.format == .sentencePieceModel)
        let model = try #require(expected["model"] as? [String: Any])
        #expect(tok.vocabularySize == model["vocab_size"] as? Int)
        #expect(tok.padID == 0 && tok.eosID == 1 && tok.unkID == 3)
        #expect(tok.unkID == model["unk_id"] as? Int)
        #expect(tok.byteFallback)
        let sp = try #require(tok.sentencePieceProcessor)
        var failures = 0
        for (i, c) in cases.enumerated() {
            let text = try #require(c["text"] as? String)
            let want = try #require(c["spm"] as? [Int])
            let got = tok.encode(text)
            if got != want {
                failures += 1
                if failures <= 10 { Issue.record("spm case \(i) \(text.debugDescription): got \(got), want \(want)") }
            }
            if let norm = c["spm_normalized"] as? String {
                let mine = String(decoding: sp.normalize(text), as: UTF8.self)
                if Array(mine.unicodeScalars) != Array(norm.unicodeScalars) {
                    failures += 1
                    if failures <= 10 { Issue.record("spm normalize \(i) \(text.debugDescription): \(mine.debugDescription) != \(norm.debugDescription)") }
                }
            }
            if want.count > 512 {
                #expect(tok.encode(text, maxLength: 512) == Array(want.prefix(511)) + [1])
            }
        }
        #expect(failures == 0)
    }

    @Test(arguments: variants)
    func tokenizerJSONMatchesTokenizers(variant: String) throws {
        let expected = try TokenizerFixtures.expected()
        let cases = try #require(expected["cases"] as? [[String: Any]])
        let tok = try UnigramTokenizer(data: TokenizerFixtures.variant(variant), name: "tokenizer.json/\(variant)")
        #expect(tok.format == .huggingFaceJSON)
        let model = try #require(expected["model"] as? [String: Any])
        #expect(tok.vocabularySize == model["hf_vocab_size"] as? Int)
        #expect(tok.padID == 0 && tok.eosID == 1 && tok.unkID == 3)
        #expect(tok.byteFallback == (variant == "t5_byte_fallback"))
        var failures = 0
        var truncated = 0
        for (i, c) in cases.enumerated() {
            let text = try #require(c["text"] as? String)
            let want = try #require((c[variant] ?? c["t5"]) as? [Int])
            let got = tok.encode(text)
            if got != want {
                failures += 1
                if failures <= 10 {
                    Issue.record("\(variant) case \(i) \(text.debugDescription): got \(got) \(tok.tokenize(text)), want \(want)")
                }
            }
            if let want512 = (c[variant + "@512"] ?? c["t5@512"]) as? [Int] {
                truncated += 1
                #expect(tok.encode(text, maxLength: 512) == want512, "\(variant) case \(i) truncated")
                #expect(want512.count == 512 && want512.last == 1)
            }
        }
        #expect(truncated >= 3)
        #expect(failures == 0)
    }

    /// The two libraries disagree on some strings; the generator lists them. Both readers reproduce their own
    /// library, so the Swift results must disagree on exactly the same strings.
    @Test func disagreementsBetweenLibrariesAreReproduced() throws {
        let expected = try TokenizerFixtures.expected()
        let listed = Set(try #require(expected["spm_vs_hf_disagreements"] as? [String]))
        let cases = try #require(expected["cases"] as? [[String: Any]])
        let spm = try UnigramTokenizer(contentsOfFile: TokenizerFixtures.path("spiece.model"))
        let hf = try UnigramTokenizer(data: TokenizerFixtures.variant("t5_byte_fallback"), name: "bf")
        var found = Set<String>()
        for c in cases {
            let text = try #require(c["text"] as? String)
            if spm.encode(text) != hf.encode(text) { found.insert(text) }
        }
        #expect(found == listed)
        #expect(listed.count > 0)
    }

    @Test func piecesAndIDs() throws {
        let tok = try UnigramTokenizer(contentsOfFile: TokenizerFixtures.path("tokenizer.json"))
        #expect(tok.id(for: "</s>") == 1)
        #expect(tok.id(for: "<extra_id_0>") == tok.vocabularySize - 1)
        #expect(tok.piece(for: 3) == "<unk>")
        #expect(tok.piece(for: -1) == nil && tok.piece(for: tok.vocabularySize) == nil)
        #expect(tok.tokenize("").isEmpty)
        #expect(tok.encode("") == [1])
        #expect(tok.encode("", addEOS: false) == [])
        let ids = tok.encode("a cat walks")
        #expect(tok.encode("a cat walks", addEOS: false) == Array(ids.dropLast()))
        #expect(tok.tokenize("a cat walks").joined() == "\u{2581}a\u{2581}cat\u{2581}walks")
        let (padded, mask) = tok.padded(ids, to: 8)
        #expect(padded.count == 8 && Array(padded.prefix(ids.count)) == ids && padded.dropFirst(ids.count).allSatisfy { $0 == 0 })
        #expect(mask == Array(repeating: 1, count: ids.count) + Array(repeating: 0, count: 8 - ids.count))
        #expect(tok.padded(ids, to: 2).ids == Array(ids.prefix(2)))
        #expect(tok.encode("a cat walks", maxLength: 2) == [ids[0], 1])
        #expect(tok.encode("a cat walks", maxLength: 1) == [1])
        // The spec's example: the default negative prompt's full-width commas become ASCII before tokenizing.
        #expect(tok.encodePrompt("色调艳丽，过曝") == tok.encode("色调艳丽,过曝"))
        #expect(tok.encodePrompt("") == [1])
        #expect(tok.encodePrompt(String(repeating: "hello world ", count: 400)).count == 512)
    }
}

@Suite struct WanPromptCleanerTests {
    @Test func matchesOfficialCleaning() throws {
        let root = try TokenizerFixtures.json(TokenizerFixtures.cleaningFile)
        let cases = try #require(root["cases"] as? [[String: Any]])
        let mojibake = Set(try #require(root["mojibake"] as? [String]))
        #expect(cases.count > 200)
        var failures = 0
        var identical = 0
        for (i, c) in cases.enumerated() {
            let text = try #require(c["text"] as? String)
            let withoutEncoding = try #require(c["clean_without_fix_encoding"] as? String)
            let official = try #require(c["clean"] as? String)
            let ftfyOut = try #require(c["ftfy_without_fix_encoding"] as? String)
            let got = WanPromptCleaner.clean(text)
            // Code-point equality (Swift's == is canonical equivalence).
            if Array(got.unicodeScalars) != Array(withoutEncoding.unicodeScalars) {
                failures += 1
                if failures <= 10 { Issue.record("clean \(i) \(text.debugDescription): \(got.debugDescription) != \(withoutEncoding.debugDescription)") }
            }
            let fixed = PythonText.string(Ftfy.fixText(Array(text.unicodeScalars)))
            if Array(fixed.unicodeScalars) != Array(ftfyOut.unicodeScalars) {
                failures += 1
                if failures <= 10 { Issue.record("ftfy \(i) \(text.debugDescription): \(fixed.debugDescription) != \(ftfyOut.debugDescription)") }
            }
            // Outside mojibake, ftfy's fix_encoding changes nothing, so this port equals the official cleaning.
            if !mojibake.contains(text) {
                #expect(Array(official.unicodeScalars) == Array(withoutEncoding.unicodeScalars), "case \(i) \(text.debugDescription)")
                identical += 1
            } else {
                #expect(official != withoutEncoding, "mojibake case \(i) is repaired by ftfy only")
            }
        }
        #expect(identical > 200)
        #expect(failures == 0)
    }

    @Test func handCheckedCases() {
        let cases: [(String, String)] = [
            ("", ""),
            ("  a  b\t\nc  ", "a b c"),
            ("色调艳丽，过曝，静态", "色调艳丽,过曝,静态"),          // full-width comma -> ASCII
            ("ＬＯＵＤ　ＮＯＩＳＥＳ！", "LOUD NOISES!"),               // full-width forms and U+3000
            ("ﬁne ﬂour", "fine flour"),                             // Latin ligatures
            ("“quoted” ‘single’", "\"quoted\" 'single'"),            // curly quotes
            ("Tom &amp; Jerry", "Tom & Jerry"),
            ("&amp;lt;b&amp;gt;", "<b>"),                           // ftfy loop, then html.unescape twice
            ("a <b> &amp; c", "a <b> & c"),                          // '<': ftfy keeps entities, html.unescape does not
            ("caf\u{65}\u{301}", "caf\u{E9}"),                      // NFC
            ("x\u{1B}[31mred\u{1B}[0m", "xred"),                     // terminal escapes
            ("a\u{0}b\u{7F}c\u{FEFF}d", "abcd"),                     // control characters
            ("one\u{2028}two\r\nthree", "one two three"),            // line breaks, whitespace collapse
            ("nbsp\u{A0}\u{A0}here", "nbsp here"),
            ("&#x1F600; &#128512;", "\u{1F600} \u{1F600}"),
            ("&#150;", "\u{2013}"),                                  // windows-1252 numeric reference
            ("&copy 2024", "\u{A9} 2024"),                           // legacy entity without ';' (html.unescape)
            ("ｶﾀｶﾅ", "カタカナ"),                                    // half-width katakana
        ]
        for (input, want) in cases {
            let got = WanPromptCleaner.clean(input)
            #expect(Array(got.unicodeScalars) == Array(want.unicodeScalars), "\(input.debugDescription) -> \(got.debugDescription)")
        }
    }

    @Test func pythonHTMLUnescape() {
        func u(_ s: String) -> String { PythonText.string(PythonHTML.unescape(Array(s.unicodeScalars))) }
        #expect(u("&lt;&gt;&amp;&quot;&#39;") == "<>&\"'")
        #expect(u("&notit;") == "\u{AC}it;")           // longest prefix 'not'
        #expect(u("&ampx") == "&x")
        #expect(u("&#;") == "&#;" && u("&#x;") == "&#x;" && u("&;") == "&;")
        #expect(u("&#0;") == "\u{FFFD}" && u("&#xD800;") == "\u{FFFD}" && u("&#1114112;") == "\u{FFFD}")
        #expect(u("&#1;x") == "x" && u("&#xFFFF;") == "")
        #expect(u("&#65&#x42") == "AB")
        #expect(u("&#99999999999999999999;") == "\u{FFFD}")
        #expect(u("no entity") == "no entity" && u("&") == "&")
    }
}
