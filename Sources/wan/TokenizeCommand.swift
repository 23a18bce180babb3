import Foundation
import WanPipelines

/// A command-line usage error of `wan tokenize`.
private struct TokenizeUsageError: Error, CustomStringConvertible {
    var description: String
}

/// `wan tokenize --tokenizer FILE [--json] [--max-length N] [--no-clean] [--pieces] TEXT...`: the umT5 ids of each
/// text after Wan's prompt cleaning (`--no-clean` skips it), with EOS, truncated to N ids (default 512; 0: no limit),
/// one line of ids per text (`--pieces` adds a line of pieces), or a JSON array with `--json`.
func tokenizeCommand(_ args: [String]) throws {
    var tokenizerPath: String?
    var json = false
    var clean = true
    var showPieces = false
    var maxLength: Int? = 512
    var texts: [String] = []
    var i = 0
    func value(_ flag: String) throws -> String {
        i += 1
        guard i < args.count else { throw TokenizeUsageError(description: "tokenize: \(flag) needs a value") }
        return args[i]
    }
    while i < args.count {
        let a = args[i]
        switch a {
        case "--tokenizer": tokenizerPath = try value(a)
        case "--json": json = true
        case "--no-clean": clean = false
        case "--pieces": showPieces = true
        case "--max-length":
            let v = try value(a)
            guard let n = Int(v), n >= 0 else { throw TokenizeUsageError(description: "tokenize: --max-length \(v) is not a count") }
            maxLength = n == 0 ? nil : n
        case "--":
            texts += args[(i + 1)...]
            i = args.count
            continue
        default:
            if a.hasPrefix("--") { throw TokenizeUsageError(description: "tokenize: unknown option \(a)") }
            texts.append(a)
        }
        i += 1
    }
    guard let tokenizerPath else {
        throw TokenizeUsageError(description: "tokenize: --tokenizer FILE (tokenizer.json or spiece.model) is required")
    }
    guard !texts.isEmpty else { throw TokenizeUsageError(description: "tokenize: no TEXT given") }
    let tokenizer = try UnigramTokenizer(contentsOfFile: tokenizerPath)
    var results: [(ids: [Int], pieces: [String])] = []
    for text in texts {
        let input = clean ? WanPromptCleaner.clean(text) : text
        results.append(tokenizer.encodeWithPieces(input, addEOS: true, maxLength: maxLength))
    }
    if json {
        let items: [Any] = results.map { r in
            showPieces ? ["ids": r.ids, "pieces": r.pieces] as [String: Any] : r.ids as Any
        }
        let data = try JSONSerialization.data(withJSONObject: items, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    } else {
        for r in results {
            print(r.ids.map(String.init).joined(separator: " "))
            if showPieces { print(r.pieces.joined(separator: " ")) }
        }
    }
}
