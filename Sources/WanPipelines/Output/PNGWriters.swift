import Foundation

/// Writes one frame as one PNG file (T2I output), atomically.
public final class PNGImageWriter: VideoWriter {
    /// Where the output appears once `finish()` succeeds.
    public let destination: URL
    /// Frame width in pixels.
    public var width: Int { book.width }
    /// Frame height in pixels.
    public var height: Int { book.height }
    /// Frames appended so far.
    public var framesWritten: Int { book.written }
    private var book: FrameBookkeeping
    private let file: AtomicFile
    private let filter: PNGFilterStrategy
    private let compressionLevel: Int

    /// Opens the temporary file next to `destination` for one `width × height` frame.
    public init(destination: URL, width: Int, height: Int, filter: PNGFilterStrategy = .adaptive,
                compressionLevel: Int = 6) throws {
        guard (0...9).contains(compressionLevel) else {
            throw OutputError.invalidArgument("zlib compression level \(compressionLevel) is not in 0...9")
        }
        book = try FrameBookkeeping(width: width, height: height, expectedFrames: 1, label: destination.path)
        self.destination = destination
        self.filter = filter
        self.compressionLevel = compressionLevel
        file = try AtomicFile(destination: destination)
    }

    deinit { cancel() }

    /// Appends the next frame (it must have the writer's size).
    public func append(_ frame: VideoFrame) throws {
        try book.checkAppend(frame)
        do {
            try file.write(PNG.encode(frame, filter: filter, compressionLevel: compressionLevel))
            book.written += 1
        } catch {
            cancel()
            throw error
        }
    }

    /// Completes the output and moves it under `destination`.
    public func finish() throws {
        try book.checkFinish()
        do {
            try file.commit()
            book.state = .finished
        } catch {
            cancel()
            throw error
        }
    }

    /// Abandons the output, removing everything written; safe to call more than once.
    public func cancel() {
        guard book.state == .open else { return }
        book.state = .cancelled
        file.discard()
    }
}

/// Writes frames as numbered PNG files: either into a new directory (renamed into place when complete), or by a
/// `%0Nd` pattern into an existing directory (each frame under a temporary name until `finish()` renames them
/// all, in order).
public final class PNGSequenceWriter: VideoWriter {
    /// Where the output appears once `finish()` succeeds.
    public let destination: URL
    /// Frame width in pixels.
    public var width: Int { book.width }
    /// Frame height in pixels.
    public var height: Int { book.height }
    /// Frames appended so far.
    public var framesWritten: Int { book.written }
    /// How frame files are named.
    public let pattern: FrameNamePattern
    private var book: FrameBookkeeping
    private let filter: PNGFilterStrategy
    private let compressionLevel: Int
    /// Directory mode: the temporary directory.
    private let directory: AtomicDirectory?
    /// Pattern mode: the directory holding the frames and the finished temporary frame files.
    private let frameDirectory: URL
    private var pending: [AtomicFile] = []

    /// Frames `0000.png`, `0001.png`... (per `pattern`) in the new directory `directory`, which must not exist
    /// or be empty; its parent must exist.
    public convenience init(directory: URL, pattern: FrameNamePattern = .defaultPNG, width: Int, height: Int,
                expectedFrames: Int? = nil, filter: PNGFilterStrategy = .adaptive, compressionLevel: Int = 6) throws {
        try self.init(mode: .directory(directory), pattern: pattern, width: width, height: height,
                      expectedFrames: expectedFrames, filter: filter, compressionLevel: compressionLevel)
    }

    /// Frames named by `pattern` inside the existing directory `existingDirectory`; existing files of those
    /// names are replaced at `finish()` (should a rename fail there, the frames renamed before it stay).
    public convenience init(existingDirectory: URL, pattern: FrameNamePattern, width: Int, height: Int, expectedFrames: Int? = nil,
                filter: PNGFilterStrategy = .adaptive, compressionLevel: Int = 6) throws {
        try self.init(mode: .pattern(existingDirectory), pattern: pattern, width: width, height: height,
                      expectedFrames: expectedFrames, filter: filter, compressionLevel: compressionLevel)
    }

    private enum Mode { case directory(URL), pattern(URL) }

    private init(mode: Mode, pattern: FrameNamePattern, width: Int, height: Int, expectedFrames: Int?,
                 filter: PNGFilterStrategy, compressionLevel: Int) throws {
        guard (0...9).contains(compressionLevel) else {
            throw OutputError.invalidArgument("zlib compression level \(compressionLevel) is not in 0...9")
        }
        guard !pattern.name(0).contains("/") else {
            throw OutputError.invalidArgument("frame pattern '\(pattern.text)' must be a file name, not a path")
        }
        self.pattern = pattern
        self.filter = filter
        self.compressionLevel = compressionLevel
        switch mode {
        case let .directory(dir):
            book = try FrameBookkeeping(width: width, height: height, expectedFrames: expectedFrames, label: dir.path)
            destination = dir
            let atomic = try AtomicDirectory(destination: dir)
            directory = atomic
            frameDirectory = atomic.temporaryURL
        case let .pattern(dir):
            let dest = dir.appendingPathComponent(pattern.text)
            book = try FrameBookkeeping(width: width, height: height, expectedFrames: expectedFrames, label: dest.path)
            destination = dest
            directory = nil
            frameDirectory = dir
        }
    }

    deinit { cancel() }

    /// Appends the next frame (it must have the writer's size).
    public func append(_ frame: VideoFrame) throws {
        try book.checkAppend(frame)
        do {
            let bytes = try PNG.encode(frame, filter: filter, compressionLevel: compressionLevel)
            let url = frameDirectory.appendingPathComponent(pattern.name(book.written))
            let file = try AtomicFile(destination: url)
            pending.append(file)
            try file.write(bytes)
            try file.closeDescriptor()
            book.written += 1
        } catch {
            cancel()
            throw error
        }
    }

    /// Completes the output and moves it under `destination`.
    public func finish() throws {
        try book.checkFinish()
        do {
            if let directory {
                // Inside the temporary directory the frames take their final names at once.
                for file in pending { try file.commit() }
                pending.removeAll()
                try directory.commit()
            } else {
                for file in pending { try file.commit() }
                pending.removeAll()
            }
            book.state = .finished
        } catch {
            cancel()
            throw error
        }
    }

    /// Abandons the output, removing everything written; safe to call more than once.
    public func cancel() {
        guard book.state == .open else { return }
        book.state = .cancelled
        for file in pending { file.discard() }
        pending.removeAll()
        directory?.discard()
    }
}
