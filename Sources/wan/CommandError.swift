/// Errors of the command line itself (bad usage, a command that did not succeed).
enum CommandError: Error, CustomStringConvertible {
    case usage(String)
    case failed(String)

    var description: String {
        switch self {
        case let .usage(s): return "\(s) (see wan --help)"
        case let .failed(s): return s
        }
    }
}
