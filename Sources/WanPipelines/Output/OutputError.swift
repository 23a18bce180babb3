import Foundation

/// Errors raised while converting, writing or reading output images and videos. Each names the file or the
/// argument and the problem.
public enum OutputError: Error, CustomStringConvertible, Equatable, Sendable {
    /// An argument is out of range or inconsistent (a bad size, shape, frame count or output path).
    case invalidArgument(String)
    /// A writer was used in a way its state does not allow (a frame after `finish()`, too few frames...).
    case invalidState(String)
    /// A file-system operation failed.
    case io(path: String, reason: String)
    /// A PNG file is malformed (bad signature, chunk, CRC or image data).
    case corruptPNG(file: String, reason: String)
    /// A PNG file is valid but uses a feature the reader does not implement (palette, 16-bit, interlacing...).
    case unsupportedPNG(file: String, reason: String)
    /// zlib reported an error while compressing.
    case zlib(String)
    /// MP4 output needs an `ffmpeg` executable and none was found.
    case ffmpegNotFound(String)
    /// `ffmpeg` failed: its exit status (or terminating signal) and the tail of its standard error.
    case ffmpegFailed(status: Int32, stderr: String)

    public var description: String {
        switch self {
        case let .invalidArgument(s): return "invalid argument: \(s)"
        case let .invalidState(s): return "invalid state: \(s)"
        case let .io(path, reason): return "\(path): \(reason)"
        case let .corruptPNG(file, reason): return "\(file): corrupt PNG: \(reason)"
        case let .unsupportedPNG(file, reason): return "\(file): unsupported PNG: \(reason)"
        case let .zlib(s): return "zlib: \(s)"
        case let .ffmpegNotFound(s): return s
        case let .ffmpegFailed(status, stderr):
            let tail = stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            return "ffmpeg failed (status \(status))" + (tail.isEmpty ? " without a message" : ":\n\(tail)")
        }
    }
}
