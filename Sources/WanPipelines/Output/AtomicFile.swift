import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The text of the current `errno`.
func errnoDescription(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// POSIX `write(2)` (a free function so that methods named `write` do not shadow it).
func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}

/// A hidden, unique temporary name next to `name` in the same directory: `.<name>.partial-<8 hex digits>`.
func temporarySiblingName(for name: String) -> String {
    let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    return "." + String(name.prefix(200)) + ".partial-" + String(repeating: "0", count: 8 - tag.count) + tag
}

/// A file written under a temporary name in its destination's directory and renamed onto the destination by
/// `commit()`. `discard()`, or deinit without `commit()`, removes the temporary, so the destination never holds a
/// partial file: either the old content or the complete new one. An existing file at the destination is replaced.
public final class AtomicFile {
    /// The final path.
    public let destination: URL
    /// The temporary path being written (hidden, in the destination's directory).
    public let temporaryURL: URL
    private var fd: Int32
    private var finished = false

    /// Creates the temporary file (permissions 0666 less the umask); the destination's directory must exist.
    public init(destination: URL) throws {
        self.destination = destination
        let directory = destination.deletingLastPathComponent()
        var attempt = 0
        while true {
            let candidate = directory.appendingPathComponent(temporarySiblingName(for: destination.lastPathComponent))
            let fd = open(candidate.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 {
                self.fd = fd
                self.temporaryURL = candidate
                return
            }
            let code = errno
            attempt += 1
            guard code == EEXIST, attempt < 64 else {
                throw OutputError.io(path: destination.path,
                                     reason: "cannot create a temporary file in \(directory.path): \(errnoDescription(code))")
            }
        }
    }

    deinit { discard() }

    /// Whether `commit()` or `discard()` has run.
    public var isFinished: Bool { finished }

    /// Appends bytes to the temporary file.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw OutputError.invalidState("\(destination.path) is already complete or discarded") }
        guard fd >= 0 else { throw OutputError.invalidState("\(temporaryURL.path) was closed before writing") }
        var rest = bytes
        while !rest.isEmpty {
            let n = posixWrite(fd, rest.baseAddress!, rest.count)
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                throw OutputError.io(path: temporaryURL.path, reason: "write failed: \(errnoDescription(code))")
            }
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
        }
    }

    /// Appends bytes to the temporary file.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Closes this object's descriptor of the temporary file, for another process to write the temporary path;
    /// `commit()` still renames it and `discard()` still removes it.
    public func closeDescriptor() throws {
        guard fd >= 0 else { return }
        let result = close(fd)
        fd = -1
        if result != 0 {
            throw OutputError.io(path: temporaryURL.path, reason: "close failed: \(errnoDescription())")
        }
    }

    /// Flushes the temporary file to disk, closes it and renames it onto the destination.
    public func commit() throws {
        guard !finished else { throw OutputError.invalidState("\(destination.path) is already complete or discarded") }
        do {
            if fd >= 0 {
                if fsync(fd) != 0 {
                    let code = errno
                    // fsync is not supported by every file system (pipes, some FUSE mounts): not an error there.
                    if code != EINVAL && code != ENOTSUP {
                        throw OutputError.io(path: temporaryURL.path, reason: "fsync failed: \(errnoDescription(code))")
                    }
                }
                try closeDescriptor()
            }
            if rename(temporaryURL.path, destination.path) != 0 {
                throw OutputError.io(path: destination.path, reason: "cannot rename the finished file into place: \(errnoDescription())")
            }
            finished = true
        } catch {
            discard()
            throw error
        }
    }

    /// Closes and removes the temporary file; the destination is left untouched. Safe to call more than once.
    public func discard() {
        guard !finished else { return }
        finished = true
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        unlink(temporaryURL.path)
    }
}

/// A directory filled under a temporary name next to its destination and renamed onto it by `commit()`;
/// `discard()`, or deinit without `commit()`, removes it with its content. The destination must not exist or be
/// an empty directory.
final class AtomicDirectory {
    let destination: URL
    let temporaryURL: URL
    private var finished = false

    init(destination: URL) throws {
        self.destination = destination
        let parent = destination.deletingLastPathComponent()
        var attempt = 0
        while true {
            let candidate = parent.appendingPathComponent(temporarySiblingName(for: destination.lastPathComponent),
                                                          isDirectory: true)
            if mkdir(candidate.path, 0o777) == 0 {
                temporaryURL = candidate
                return
            }
            let code = errno
            attempt += 1
            guard code == EEXIST, attempt < 64 else {
                throw OutputError.io(path: destination.path,
                                     reason: "cannot create a temporary directory in \(parent.path): \(errnoDescription(code))")
            }
        }
    }

    deinit { discard() }

    /// Renames the temporary directory onto the destination.
    func commit() throws {
        guard !finished else { throw OutputError.invalidState("\(destination.path) is already complete or discarded") }
        if rename(temporaryURL.path, destination.path) != 0 {
            let code = errno
            discard()
            let reason = code == ENOTEMPTY || code == EEXIST
                ? "exists and is not empty"
                : "cannot rename the finished directory into place: \(errnoDescription(code))"
            throw OutputError.io(path: destination.path, reason: reason)
        }
        finished = true
    }

    /// Removes the temporary directory and its content. Safe to call more than once.
    func discard() {
        guard !finished else { return }
        finished = true
        try? FileManager.default.removeItem(at: temporaryURL)
    }
}
