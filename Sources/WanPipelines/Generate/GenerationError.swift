/// Why a generation did not produce its output.
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    /// A setting is out of range or inconsistent (checked before any work starts).
    case invalidSettings(String)
    /// The model files could not be found, told apart or read.
    case modelFiles(String)
    /// The user stopped the run (Ctrl-C); nothing was left under the output name.
    case cancelled

    public var description: String {
        switch self {
        case let .invalidSettings(s): return "invalid settings: \(s)"
        case let .modelFiles(s): return "model files: \(s)"
        case .cancelled: return "cancelled; no output was written"
        }
    }
}
