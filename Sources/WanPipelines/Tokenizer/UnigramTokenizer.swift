import Foundation

/// A SentencePiece unigram tokenizer (umT5's), read from a Hugging Face `tokenizer.json` or a SentencePiece
/// `spiece.model`. Each file is tokenized with the semantics of the library that reads it: `tokenizers` for
/// tokenizer.json (what Wan uses, through transformers' T5TokenizerFast), `sentencepiece` for spiece.model.
public final class UnigramTokenizer: Sendable {
    /// The kind of file a tokenizer was read from.
    public enum Format: String, Sendable {
        /// A Hugging Face `tokenizer.json` (Unigram model), tokenized like the `tokenizers` library.
        case huggingFaceJSON = "tokenizer.json"
        /// A SentencePiece `ModelProto` (`spiece.model`), tokenized like the `sentencepiece` library.
        case sentencePieceModel = "spiece.model"
    }

    private enum Backend: Sendable {
        case hf(HFTokenizer)
        case spm(SentencePieceProcessor)
    }

    private let backend: Backend
    /// The file format.
    public let format: Format
    /// The file name used in messages.
    public let name: String
    /// Number of ids (model pieces plus added tokens).
    public let vocabularySize: Int
    /// Id of the padding token (`<pad>`, 0 for umT5).
    public let padID: Int
    /// Id appended at the end of every sequence (`</s>`, 1 for umT5), nil if the file defines none.
    public let eosID: Int?
    /// Id of the unknown token (`<unk>`, 3 for umT5).
    public let unkID: Int
    /// Whether unknown characters become `<0xNN>` byte pieces.
    public let byteFallback: Bool

    /// Reads a tokenizer file; the format is detected from the content.
    public convenience init(contentsOfFile path: String) throws(TokenizerError) {
        guard FileManager.default.fileExists(atPath: path) else { throw .fileNotFound(path) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadable(file: path, reason: error.localizedDescription)
        }
        try self.init(data: data, name: path)
    }

    /// Reads a tokenizer from the bytes of a `tokenizer.json` or `spiece.model`; `name` names it in errors.
    public init(data: Data, name: String) throws(TokenizerError) {
        self.name = name
        if data.isEmpty { throw .unknownFormat(file: name, reason: "the file is empty") }
        // A SentencePiece model starts with its first piece (field 1, length-delimited: byte 0x0A).
        let firstByte = data.first
        if data.first(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D) }) == UInt8(ascii: "{") {
            let hf: HFTokenizer
            do throws(TokenizerError.Reason) { hf = try HFTokenizer(json: data) } catch { throw error.error(file: name) }
            backend = .hf(hf)
            format = .huggingFaceJSON
            let maxAdded = hf.addedTokens.tokens.map(\.id).max() ?? -1
            let size = max(hf.model.pieces.count, maxAdded + 1)
            vocabularySize = size
            let templateIDs = hf.template?.compactMap(\.ids).flatMap { $0 } ?? []
            for id in templateIDs + [hf.padID ?? 0] where id < 0 || id >= size {
                throw .corrupt(file: name, reason: "special token id \(id) is outside the vocabulary (\(size) ids)")
            }
            padID = hf.padID ?? 0
            eosID = hf.template?.compactMap(\.ids).last?.last
            unkID = hf.model.unkID
            byteFallback = hf.model.byteFallback
        } else {
            let proto: SentencePieceModelProto
            do throws(ProtobufReader.Failure) { proto = try SentencePieceModelProto(bytes: [UInt8](data)) } catch {
                if firstByte == 0x0A {
                    throw .corrupt(file: name, reason: "SentencePiece model: \(error.description)")
                }
                throw .unknownFormat(file: name, reason: "neither JSON nor a SentencePiece model (\(error.description))")
            }
            if proto.pieces.isEmpty && firstByte != 0x0A {
                throw .unknownFormat(file: name, reason: "neither JSON nor a SentencePiece model (no pieces)")
            }
            let sp: SentencePieceProcessor
            do throws(TokenizerError.Reason) { sp = try SentencePieceProcessor(proto: proto) } catch { throw error.error(file: name) }
            backend = .spm(sp)
            format = .sentencePieceModel
            vocabularySize = sp.pieces.count
            padID = sp.padID ?? sp.id(of: "<pad>") ?? 0
            eosID = sp.eosID ?? sp.id(of: "</s>")
            unkID = sp.unkID
            byteFallback = sp.byteFallback
        }
    }

    /// The ids of `text`: its pieces, then EOS when `addEOS`. With `maxLength`, pieces are truncated from the end
    /// so that the result (EOS included) has at most `maxLength` ids, as HF's `truncation=True` does.
    public func encode(_ text: String, addEOS: Bool = true, maxLength: Int? = nil) -> [Int] {
        encodeWithPieces(text, addEOS: addEOS, maxLength: maxLength).ids
    }

    /// The pieces of `text` (strings as in the vocabulary, `▁` for spaces), without EOS.
    public func tokenize(_ text: String) -> [String] {
        encodeWithPieces(text, addEOS: false, maxLength: nil).pieces
    }

    /// Ids and pieces together.
    public func encodeWithPieces(_ text: String, addEOS: Bool = true, maxLength: Int? = nil) -> (ids: [Int], pieces: [String]) {
        switch backend {
        case let .hf(hf):
            return hf.encode(text, addSpecialTokens: addEOS, maxLength: maxLength)
        case let .spm(sp):
            let (pieceBytes, rawIDs) = sp.encode(text)
            var ids = rawIDs
            var pieces = pieceBytes.map { String(decoding: $0, as: UTF8.self) }
            let eos = addEOS ? eosID : nil
            if let maxLength {
                let keep = max(0, maxLength - (eos == nil ? 0 : 1))
                if ids.count > keep {
                    ids.removeLast(ids.count - keep)
                    pieces.removeLast(pieces.count - keep)
                }
            }
            if let eos {
                ids.append(eos)
                pieces.append(sp.pieces[eos])
            }
            return (ids, pieces)
        }
    }

    /// The SentencePiece backend (spiece.model files), for tests.
    var sentencePieceProcessor: SentencePieceProcessor? {
        if case let .spm(sp) = backend { return sp }
        return nil
    }

    /// The piece of an id, if it exists.
    public func piece(for id: Int) -> String? {
        switch backend {
        case let .hf(hf):
            if let t = hf.addedTokens.tokens.first(where: { $0.id == id }) { return t.content }
            return id >= 0 && id < hf.model.pieces.count ? hf.model.pieces[id] : nil
        case let .spm(sp):
            return id >= 0 && id < sp.pieces.count ? sp.pieces[id] : nil
        }
    }

    /// The id of a piece (or added token), if it exists.
    public func id(for piece: String) -> Int? {
        switch backend {
        case let .hf(hf): return hf.addedTokens.id(of: piece) ?? hf.model.tokenToID[piece]
        case let .spm(sp): return sp.id(of: piece)
        }
    }

    /// Wan's text-encoder input for one prompt (spec §6.3, §7): the prompt cleaned like the official
    /// `HuggingfaceTokenizer(clean='whitespace')`, tokenized with EOS and truncated to `maxLength` ids.
    /// The result is unpadded: its count is the mask's sum; `padded(_:to:)` gives the 512-id form.
    public func encodePrompt(_ prompt: String, maxLength: Int = 512) -> [Int] {
        encode(WanPromptCleaner.clean(prompt), addEOS: true, maxLength: maxLength)
    }

    /// `ids` padded with `padID` (or truncated) to `length`, and the attention mask (1 for real ids, 0 for padding).
    public func padded(_ ids: [Int], to length: Int) -> (ids: [Int], mask: [Int]) {
        let n = min(ids.count, max(0, length))
        let pad = max(0, length) - n
        return (Array(ids.prefix(n)) + Array(repeating: padID, count: pad),
                Array(repeating: 1, count: n) + Array(repeating: 0, count: pad))
    }
}
