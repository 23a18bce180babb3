/// Errors raised while reading a tokenizer file. Each names the file and the problem.
public enum TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file does not exist.
    case fileNotFound(String)
    /// The file exists but could not be read.
    case unreadable(file: String, reason: String)
    /// The file is neither a `tokenizer.json` nor a SentencePiece model.
    case unknownFormat(file: String, reason: String)
    /// The file has the expected format but its content is broken (truncated, bad field, inconsistent ids...).
    case corrupt(file: String, reason: String)
    /// The file is valid but uses a feature this tokenizer does not implement (a BPE model, an unknown normalizer...).
    case unsupported(file: String, reason: String)

    public var description: String {
        switch self {
        case let .fileNotFound(file): return "\(file): no such file"
        case let .unreadable(file, reason): return "\(file): cannot read: \(reason)"
        case let .unknownFormat(file, reason): return "\(file): not a tokenizer file: \(reason)"
        case let .corrupt(file, reason): return "\(file): corrupt tokenizer: \(reason)"
        case let .unsupported(file, reason): return "\(file): unsupported tokenizer: \(reason)"
        }
    }
}

extension TokenizerError {
    /// A problem found while decoding a file, before the file name is attached.
    enum Reason: Error {
        case corrupt(String)
        case unsupported(String)

        func error(file: String) -> TokenizerError {
            switch self {
            case let .corrupt(s): return .corrupt(file: file, reason: s)
            case let .unsupported(s): return .unsupported(file: file, reason: s)
            }
        }
    }
}
