import Foundation

/// A sink for the frames of one video or image. Frames go to a temporary name; `finish()` checks that the output
/// is complete and renames it into place, `cancel()` (or releasing the writer without `finish()`) removes what
/// was written, so the requested name never holds a partial output. A writer that fails while writing cancels
/// itself.
public protocol VideoWriter: AnyObject {
    /// Where the output appears once `finish()` succeeds (a file, a directory, or a `%0Nd` file-name pattern).
    var destination: URL { get }
    /// Frame width in pixels.
    var width: Int { get }
    /// Frame height in pixels.
    var height: Int { get }
    /// Frames appended so far.
    var framesWritten: Int { get }
    /// Appends the next frame (it must have the writer's size).
    func append(_ frame: VideoFrame) throws
    /// Completes the output and moves it under `destination`.
    func finish() throws
    /// Abandons the output, removing everything written; safe to call more than once and after `finish()`.
    func cancel()
}

/// The state shared by every writer: the frame size, the expected frame count and where the writer stands.
struct FrameBookkeeping {
    enum State { case open, finished, cancelled }

    let width: Int
    let height: Int
    let expectedFrames: Int?
    let label: String
    var written = 0
    var state = State.open

    init(width: Int, height: Int, expectedFrames: Int?, label: String) throws {
        _ = try VideoFrame.byteCount(width: width, height: height, channels: 3)
        if let n = expectedFrames, n < 1 {
            throw OutputError.invalidArgument("\(label): the frame count must be at least 1, got \(n)")
        }
        self.width = width
        self.height = height
        self.expectedFrames = expectedFrames
        self.label = label
    }

    /// Throws unless the writer is open and `frame` fits; does not count it.
    func checkAppend(_ frame: VideoFrame) throws {
        try checkOpen()
        guard frame.width == width, frame.height == height else {
            throw OutputError.invalidArgument(
                "\(label): frame of \(frame.width)x\(frame.height) given to a \(width)x\(height) writer")
        }
        if let n = expectedFrames, written >= n {
            throw OutputError.invalidState("\(label): more than the \(n) expected frame(s)")
        }
    }

    /// Throws unless the writer is open and every expected frame (at least one) was appended.
    func checkFinish() throws {
        try checkOpen()
        guard written > 0 else { throw OutputError.invalidState("\(label): no frame was written") }
        if let n = expectedFrames, written != n {
            throw OutputError.invalidState("\(label): \(written) frame(s) written, \(n) expected")
        }
    }

    func checkOpen() throws {
        switch state {
        case .open: return
        case .finished: throw OutputError.invalidState("\(label) is already finished")
        case .cancelled: throw OutputError.invalidState("\(label) was cancelled")
        }
    }
}

/// A frame-file name pattern: one `%d` or `%0Nd` (N in 1...99) in the file name, as ffmpeg's image2 format uses.
public struct FrameNamePattern: Sendable, Equatable {
    /// The file name before the number.
    public let prefix: String
    /// Zero-padding width (0 for `%d`).
    public let digits: Int
    /// The file name after the number.
    public let suffix: String

    /// The pattern `%04d.png`.
    public static let defaultPNG = FrameNamePattern(prefix: "", digits: 4, suffix: ".png")

    /// A pattern from its parts.
    public init(prefix: String, digits: Int, suffix: String) {
        self.prefix = prefix
        self.digits = digits
        self.suffix = suffix
    }

    /// Parses a file name holding exactly one `%d` or `%0Nd`; nil when it holds no `%`.
    public init?(parsing name: String) throws {
        let parts = name.split(separator: "%", omittingEmptySubsequences: false)
        if parts.count == 1 { return nil }
        guard parts.count == 2 else {
            throw OutputError.invalidArgument("'\(name)': a frame pattern holds exactly one %d or %0Nd")
        }
        let spec = parts[1]
        guard let d = spec.firstIndex(of: "d") else {
            throw OutputError.invalidArgument("'\(name)': a frame pattern holds %d or %0Nd (e.g. %04d)")
        }
        let width = spec[spec.startIndex..<d]
        var digits = 0
        if !width.isEmpty {
            guard width.first == "0", width.count >= 2, width.count <= 3, let n = Int(width.dropFirst()), n >= 1 else {
                throw OutputError.invalidArgument("'\(name)': a frame pattern holds %d or %0Nd (e.g. %04d)")
            }
            digits = n
        }
        prefix = String(parts[0])
        self.digits = digits
        suffix = String(spec[spec.index(after: d)...])
    }

    /// The file name of frame `index`.
    public func name(_ index: Int) -> String {
        let n = String(index)
        return prefix + String(repeating: "0", count: max(0, digits - n.count)) + n + suffix
    }

    /// The pattern as text (`prefix%0Nd suffix`).
    public var text: String { prefix + (digits > 0 ? "%0\(digits)d" : "%d") + suffix }
}

/// What an output path asks for.
public enum OutputKind: Sendable, Equatable {
    /// An H.264 MP4 file, encoded by an `ffmpeg` executable.
    case mp4
    /// A YUV4MPEG2 file.
    case y4m
    /// A single PNG image (one frame only).
    case png
    /// PNG frames `0000.png`, `0001.png`... in a new directory.
    case pngDirectory
    /// PNG frames named by a `%0Nd` pattern in an existing directory.
    case pngPattern(FrameNamePattern)
}

/// A resolved output path: its kind, the final URL and the JSON sidecar's URL.
public struct OutputTarget: Sendable, Equatable {
    /// What is written.
    public let kind: OutputKind
    /// The output file, the frames directory, or (for a pattern) the directory holding the frames.
    public let url: URL
    /// Where the JSON sidecar goes: `<file>.json` for a file, `<dir>.json` next to a frames directory,
    /// `<dir>/<pattern without the number and extension, or "frames">.json` for a pattern.
    public let sidecarURL: URL

    /// How decoded frames for this output are quantised, as the official code saves them: a single PNG image
    /// rounds (torchvision `save_image`, T2I), every video form truncates (`cache_video`).
    public var quantization: PixelQuantization { kind == .png ? .round : .truncate }

    /// Interprets `path`, before any work starts: `.mp4`, `.y4m`, `.png` (only when `frameCount` is 1), a
    /// directory (an existing one, which must be empty, or a path ending in `/`), or a PNG file-name pattern with
    /// `%d`/`%0Nd`. The containing directory must exist. Throws `OutputError.invalidArgument` otherwise.
    public static func resolve(_ path: String, frameCount: Int) throws -> OutputTarget {
        guard !path.isEmpty else { throw OutputError.invalidArgument("the output path is empty") }
        guard frameCount >= 1 else {
            throw OutputError.invalidArgument("the frame count must be at least 1, got \(frameCount)")
        }
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        // Without its trailing slashes, so that "file/" finds the file.
        var bare = path
        while bare.count > 1 && bare.hasSuffix("/") { bare.removeLast() }
        let exists = fm.fileExists(atPath: bare, isDirectory: &isDirectory)
        let url = URL(fileURLWithPath: path)
        let parent = url.deletingLastPathComponent()

        func requireParent() throws {
            var parentIsDirectory: ObjCBool = false
            guard fm.fileExists(atPath: parent.path, isDirectory: &parentIsDirectory), parentIsDirectory.boolValue else {
                throw OutputError.invalidArgument("'\(path)': the directory \(parent.path) does not exist")
            }
        }

        if path.hasSuffix("/") || (exists && isDirectory.boolValue) {
            if exists {
                guard isDirectory.boolValue else {
                    throw OutputError.invalidArgument("'\(path)' names a directory but a file exists there")
                }
                let content = (try? fm.contentsOfDirectory(atPath: path)) ?? []
                guard content.isEmpty else {
                    throw OutputError.invalidArgument(
                        "the frames directory '\(path)' exists and is not empty; remove it or name a new one")
                }
            }
            try requireParent()
            let dir = url.standardizedFileURL
            let sidecar = dir.deletingLastPathComponent().appendingPathComponent(dir.lastPathComponent + ".json")
            return OutputTarget(kind: .pngDirectory, url: dir, sidecarURL: sidecar)
        }

        let name = url.lastPathComponent
        if let pattern = try FrameNamePattern(parsing: name) {
            guard pattern.suffix.lowercased().hasSuffix(".png") else {
                throw OutputError.invalidArgument("'\(path)': a frame pattern must end in .png (e.g. frames/%04d.png)")
            }
            try requireParent()
            var stem = pattern.prefix + pattern.suffix.dropLast(4)
            stem = stem.trimmingCharacters(in: CharacterSet(charactersIn: "_-. "))
            if stem.isEmpty { stem = "frames" }
            return OutputTarget(kind: .pngPattern(pattern), url: parent,
                                sidecarURL: parent.appendingPathComponent(stem + ".json"))
        }

        let kind: OutputKind
        switch url.pathExtension.lowercased() {
        case "mp4": kind = .mp4
        case "y4m": kind = .y4m
        case "png":
            guard frameCount == 1 else {
                throw OutputError.invalidArgument(
                    "'\(path)' is one PNG image but the output has \(frameCount) frames; give a directory "
                    + "(frames/) or a pattern (frames/%04d.png) for PNG frames, or a .mp4/.y4m video")
            }
            kind = .png
        default:
            throw OutputError.invalidArgument(
                "'\(path)': unknown output type; use .mp4 (needs ffmpeg), .y4m, .png (one frame), "
                + "a directory ending in / or a pattern such as frames/%04d.png")
        }
        if exists && isDirectory.boolValue {
            throw OutputError.invalidArgument("'\(path)' is a directory, not a file")
        }
        try requireParent()
        return OutputTarget(kind: kind, url: url, sidecarURL: URL(fileURLWithPath: url.path + ".json"))
    }
}

/// Settings of the writers the factory makes.
public struct VideoOutputOptions: Sendable, Equatable {
    /// Frames per second of videos (Wan's `sample_fps` is 16).
    public var fps: Int
    /// Scanline filtering of PNG output.
    public var pngFilter: PNGFilterStrategy
    /// zlib level 0...9 of PNG output.
    public var pngCompressionLevel: Int
    /// Chroma subsampling of Y4M output.
    public var y4mChroma: Y4MChroma
    /// Value range of Y4M output.
    public var y4mRange: YUVRange
    /// How MP4 output runs ffmpeg.
    public var ffmpeg: FFmpegOptions

    /// Defaults: 16 fps, adaptive PNG filtering at zlib level 6, Y4M 4:2:0 limited range, ffmpeg with CRF 18.
    public init(fps: Int = 16, pngFilter: PNGFilterStrategy = .adaptive, pngCompressionLevel: Int = 6,
                y4mChroma: Y4MChroma = .c420, y4mRange: YUVRange = .limited, ffmpeg: FFmpegOptions = FFmpegOptions()) {
        self.fps = fps
        self.pngFilter = pngFilter
        self.pngCompressionLevel = pngCompressionLevel
        self.y4mChroma = y4mChroma
        self.y4mRange = y4mRange
        self.ffmpeg = ffmpeg
    }
}

/// Chooses and opens the writer for an output path.
public enum VideoOutput {
    /// The writer for `path` (see `OutputTarget.resolve`) of `frameCount` frames of `width × height`: `.mp4`
    /// → `FFmpegWriter` (`OutputError.ffmpegNotFound` when no ffmpeg is installed), `.y4m` → `Y4MWriter`, `.png`
    /// → `PNGImageWriter`, a directory or a `%0Nd` pattern → `PNGSequenceWriter`. Everything that can be checked
    /// before the frames exist is checked here.
    public static func makeWriter(path: String, width: Int, height: Int, frameCount: Int,
                                  options: VideoOutputOptions = VideoOutputOptions()) throws -> any VideoWriter {
        let target = try OutputTarget.resolve(path, frameCount: frameCount)
        return try makeWriter(target: target, width: width, height: height, frameCount: frameCount, options: options)
    }

    /// The writer for a resolved target.
    public static func makeWriter(target: OutputTarget, width: Int, height: Int, frameCount: Int,
                                  options: VideoOutputOptions = VideoOutputOptions()) throws -> any VideoWriter {
        switch target.kind {
        case .mp4:
            return try FFmpegWriter(destination: target.url, width: width, height: height, fps: options.fps,
                                    options: options.ffmpeg, expectedFrames: frameCount)
        case .y4m:
            return try Y4MWriter(destination: target.url, width: width, height: height, fps: options.fps,
                                 chroma: options.y4mChroma, range: options.y4mRange, expectedFrames: frameCount)
        case .png:
            return try PNGImageWriter(destination: target.url, width: width, height: height,
                                      filter: options.pngFilter, compressionLevel: options.pngCompressionLevel)
        case .pngDirectory:
            return try PNGSequenceWriter(directory: target.url, width: width, height: height,
                                         expectedFrames: frameCount, filter: options.pngFilter,
                                         compressionLevel: options.pngCompressionLevel)
        case let .pngPattern(pattern):
            return try PNGSequenceWriter(existingDirectory: target.url, pattern: pattern, width: width, height: height,
                                         expectedFrames: frameCount, filter: options.pngFilter,
                                         compressionLevel: options.pngCompressionLevel)
        }
    }
}
