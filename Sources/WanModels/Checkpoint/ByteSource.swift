import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The read-only bytes of a checkpoint: a file mapped into memory (never read whole), or a buffer the
/// caller handed in. Every access is bounds-checked and throws `CheckpointError.truncated` outside.
///
/// A mapped file must not shrink while it is open (the kernel would signal SIGBUS on access to the
/// vanished pages); that is the one hazard a memory mapping cannot check.
final class ByteSource: @unchecked Sendable {
    /// The file name used in errors.
    let path: String
    /// Size in bytes.
    let count: Int
    private let base: UnsafeRawPointer?
    private let mapped: Bool

    /// Maps `path` read-only.
    init(mapping path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointError(path, .io(String(cString: strerror(errno)))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CheckpointError(path, .io(String(cString: strerror(errno)))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw CheckpointError(path, .io("not a regular file")) }
        let size = Int(st.st_size)
        count = size
        mapped = size > 0
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw CheckpointError(path, .io("mmap of \(size) bytes failed: \(String(cString: strerror(errno)))"))
        }
        base = UnsafeRawPointer(p)
    }

    /// Wraps a copy of `bytes` (for checkpoints already in memory, and tests).
    init(bytes: [UInt8], name: String) {
        path = name
        count = bytes.count
        mapped = false
        if bytes.isEmpty {
            base = nil
        } else {
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
            bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            base = UnsafeRawPointer(p)
        }
    }

    deinit {
        guard let base else { return }
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// Whether `[offset, offset + length)` lies inside the bytes (overflow-safe).
    func contains(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= count && length <= count - offset
    }

    /// The bytes `[offset, offset + length)`, or `truncated` naming `what`.
    func slice(_ offset: Int, _ length: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard contains(offset, length) else {
            throw CheckpointError(path, .truncated("\(what()) needs bytes \(offset)..<\(offset &+ length) of a \(count)-byte file"))
        }
        guard let base, length > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + offset, count: length)
    }

    /// Little-endian unsigned integers at `offset`.
    func u16(_ offset: Int, _ what: @autoclosure () -> String) throws -> UInt16 {
        UInt16(littleEndian: try slice(offset, 2, what()).loadUnaligned(as: UInt16.self))
    }

    func u32(_ offset: Int, _ what: @autoclosure () -> String) throws -> UInt32 {
        UInt32(littleEndian: try slice(offset, 4, what()).loadUnaligned(as: UInt32.self))
    }

    func u64(_ offset: Int, _ what: @autoclosure () -> String) throws -> UInt64 {
        UInt64(littleEndian: try slice(offset, 8, what()).loadUnaligned(as: UInt64.self))
    }

    /// Copies `[offset, offset + length)` into an array.
    func bytes(_ offset: Int, _ length: Int, _ what: @autoclosure () -> String) throws -> [UInt8] {
        [UInt8](try slice(offset, length, what()))
    }

    /// Tells the kernel a range will be read soon, in order (mapped files only).
    func willRead(_ offset: Int, _ length: Int) {
        advise(offset, length, MADV_WILLNEED)
    }

    /// Drops a range's pages from this process (mapped files only): they stay in the page cache but no
    /// longer count towards the resident set, so streaming through a large file keeps peak memory low.
    func release(_ offset: Int, _ length: Int) {
        advise(offset, length, MADV_DONTNEED)
    }

    private func advise(_ offset: Int, _ length: Int, _ advice: Int32) {
        guard mapped, let base, contains(offset, length), length > 0 else { return }
        let page = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        let start = offset / page * page
        let end = min(count, offset + length)
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, advice)
    }
}
