import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How `FFmpegWriter` runs ffmpeg.
public struct FFmpegOptions: Sendable, Equatable {
    /// The ffmpeg executable: a path, or a name looked up on `PATH`; nil looks up `ffmpeg`.
    public var executable: String?
    /// x264 constant rate factor, 0 (lossless) ... 51.
    public var crf: Int
    /// x264 preset (`ultrafast` ... `veryslow`).
    public var preset: String
    /// Arguments added before the output file (e.g. `["-tune", "film"]`).
    public var extraOutputArguments: [String]

    /// Defaults: `ffmpeg` from `PATH`, CRF 18, preset `medium`.
    public init(executable: String? = nil, crf: Int = 18, preset: String = "medium", extraOutputArguments: [String] = []) {
        self.executable = executable
        self.crf = crf
        self.preset = preset
        self.extraOutputArguments = extraOutputArguments
    }
}

/// Ignores SIGPIPE for the whole process (once), so that writing to an ffmpeg that exited returns EPIPE instead
/// of killing this process.
private let ignoreSIGPIPE: Void = {
    signal(SIGPIPE, SIG_IGN)
}()

/// The last bytes a child process writes to a pipe, collected by a background thread.
private final class PipeTail: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer: [UInt8] = []
    private let limit: Int
    private let done = DispatchSemaphore(value: 0)
    private var waited = false

    init(limit: Int) { self.limit = limit }

    /// Starts draining `fd` until end of file; the caller keeps `fd` open until `waitForEnd()` returns.
    func start(fd: Int32) {
        Thread.detachNewThread { [self] in
            var chunk = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                lock.lock()
                buffer += chunk[0..<n]
                if buffer.count > limit { buffer.removeFirst(buffer.count - limit) }
                lock.unlock()
            }
            done.signal()
        }
    }

    /// Blocks until the writer side of the pipe is closed (the child exited); returns at once after the first call.
    func waitForEnd() {
        if waited { return }
        waited = true
        done.wait()
    }

    /// The collected text (lossy UTF-8).
    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: buffer, as: UTF8.self)
    }
}

/// Encodes frames to H.264 MP4 with an `ffmpeg` executable: raw RGB24 frames are piped to its standard input
/// (nothing intermediate on disk); it writes a temporary file next to the destination, renamed at `finish()`.
/// Color: swscale's BT.601 limited-range conversion to yuv420p, tagged as such (`smpte170m`, `tv`).
public final class FFmpegWriter: VideoWriter {
    /// Where the output appears once `finish()` succeeds.
    public let destination: URL
    /// Frame width in pixels.
    public var width: Int { book.width }
    /// Frame height in pixels.
    public var height: Int { book.height }
    /// Frames appended so far.
    public var framesWritten: Int { book.written }
    /// Frames per second.
    public let fps: Int
    /// The ffmpeg executable in use.
    public let executable: URL
    /// The arguments ffmpeg was started with.
    public let arguments: [String]
    private var book: FrameBookkeeping
    private let file: AtomicFile
    private let process: Process
    private let input: Pipe
    private let errorPipe: Pipe
    private let errorTail: PipeTail
    private var inputOpen = true

    /// The executable `executable` names (a path, or a name looked up in `searchPath`, a `PATH`-style list),
    /// `ffmpeg` from `searchPath` when nil; nil when there is no such executable file.
    public static func locate(_ executable: String? = nil,
                              searchPath: String? = ProcessInfo.processInfo.environment["PATH"]) -> URL? {
        let fm = FileManager.default
        func runnable(_ path: String) -> Bool {
            var isDirectory: ObjCBool = false
            return fm.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
                && fm.isExecutableFile(atPath: path)
        }
        let name = executable ?? "ffmpeg"
        if name.contains("/") { return runnable(name) ? URL(fileURLWithPath: name) : nil }
        for dir in (searchPath ?? "").split(separator: ":") where !dir.isEmpty {
            let candidate = String(dir) + "/" + name
            if runnable(candidate) { return URL(fileURLWithPath: candidate) }
        }
        return nil
    }

    /// The command line (without the executable) that encodes `width × height` RGB24 frames read from standard
    /// input at `fps` into the MP4 file `output`.
    public static func arguments(width: Int, height: Int, fps: Int, options: FFmpegOptions, output: String) -> [String] {
        ["-hide_banner", "-nostats", "-loglevel", "error", "-y",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "\(width)x\(height)", "-framerate", "\(fps)", "-i", "pipe:0",
         "-an", "-c:v", "libx264", "-preset", options.preset, "-crf", "\(options.crf)", "-pix_fmt", "yuv420p",
         "-colorspace", "smpte170m", "-color_range", "tv", "-movflags", "+faststart"]
            + options.extraOutputArguments + ["-f", "mp4", output]
    }

    /// Finds ffmpeg and starts it, writing to a temporary file next to `destination`. Throws
    /// `OutputError.ffmpegNotFound` when there is no ffmpeg, `.invalidArgument` for odd sizes (yuv420p needs even
    /// ones) or bad options.
    public init(destination: URL, width: Int, height: Int, fps: Int = 16, options: FFmpegOptions = FFmpegOptions(),
                expectedFrames: Int? = nil,
                searchPath: String? = ProcessInfo.processInfo.environment["PATH"]) throws {
        guard let exe = FFmpegWriter.locate(options.executable, searchPath: searchPath) else {
            let what = options.executable.map { "'\($0)' is not an executable file" }
                ?? "no ffmpeg executable was found on PATH"
            throw OutputError.ffmpegNotFound(
                "MP4 output needs ffmpeg, but \(what). Install ffmpeg (e.g. apt-get install ffmpeg), or write "
                + "a Y4M file (--out video.y4m) or PNG frames (--out frames/ or --out frames/%04d.png) instead.")
        }
        guard fps >= 1 else { throw OutputError.invalidArgument("frame rate \(fps) must be at least 1") }
        guard (0...51).contains(options.crf) else {
            throw OutputError.invalidArgument("x264 CRF \(options.crf) is not in 0...51")
        }
        guard !options.preset.isEmpty else { throw OutputError.invalidArgument("the x264 preset is empty") }
        book = try FrameBookkeeping(width: width, height: height, expectedFrames: expectedFrames, label: destination.path)
        guard width % 2 == 0, height % 2 == 0 else {
            throw OutputError.invalidArgument(
                "H.264 (yuv420p) needs an even width and height, got \(width)x\(height); write .y4m or PNG frames instead")
        }
        _ = ignoreSIGPIPE
        self.destination = destination
        self.fps = fps
        executable = exe
        file = try AtomicFile(destination: destination)
        do {
            try file.closeDescriptor()
        } catch {
            file.discard()
            throw error
        }
        arguments = FFmpegWriter.arguments(width: width, height: height, fps: fps, options: options,
                                           output: file.temporaryURL.path)
        process = Process()
        process.executableURL = exe
        process.arguments = arguments
        input = Pipe()
        errorPipe = Pipe()
        errorTail = PipeTail(limit: 8192)
        process.standardInput = input
        process.standardError = errorPipe
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            book.state = .cancelled
            file.discard()
            throw OutputError.io(path: exe.path, reason: "cannot start ffmpeg: \(error.localizedDescription)")
        }
        errorTail.start(fd: errorPipe.fileHandleForReading.fileDescriptor)
    }

    deinit { cancel() }

    /// Appends the next frame (it must have the writer's size).
    public func append(_ frame: VideoFrame) throws {
        try book.checkAppend(frame)
        let fd = input.fileHandleForWriting.fileDescriptor
        var failure: Int32 = 0
        frame.rgb.withUnsafeBytes { raw in
            var rest = raw
            while !rest.isEmpty {
                let n = posixWrite(fd, rest.baseAddress!, rest.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            }
        }
        if failure != 0 {
            // ffmpeg stopped reading (it exited): report what it said.
            let (status, tail) = stop(terminate: false)
            cleanUp()
            let note = failure == EPIPE ? "" : " (writing to it failed: \(errnoDescription(failure)))"
            throw OutputError.ffmpegFailed(status: status, stderr: tail.isEmpty ? "ffmpeg stopped reading frames\(note)" : tail)
        }
        book.written += 1
    }

    /// Completes the output and moves it under `destination`.
    public func finish() throws {
        try book.checkFinish()
        let (status, tail) = stop(terminate: false)
        guard status == 0 else {
            cleanUp()
            throw OutputError.ffmpegFailed(status: status, stderr: tail)
        }
        do {
            try file.commit()
            book.state = .finished
        } catch {
            cleanUp()
            throw error
        }
    }

    /// Abandons the output, removing everything written; safe to call more than once.
    public func cancel() {
        guard book.state == .open else { return }
        _ = stop(terminate: true)
        cleanUp()
    }

    /// Closes ffmpeg's input (and with `terminate`, sends it SIGTERM), waits for it to exit and for its standard
    /// error to end; returns its exit status (minus the signal number if a signal ended it) and standard error.
    private func stop(terminate: Bool) -> (Int32, String) {
        if inputOpen {
            inputOpen = false
            try? input.fileHandleForWriting.close()
        }
        if terminate && process.isRunning { process.terminate() }
        process.waitUntilExit()
        errorTail.waitForEnd()
        let status = process.terminationReason == .exit ? process.terminationStatus : -process.terminationStatus
        return (status, errorTail.text)
    }

    private func cleanUp() {
        book.state = .cancelled
        file.discard()
    }
}
