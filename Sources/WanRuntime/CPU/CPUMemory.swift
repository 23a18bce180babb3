import Foundation

/// Host memory for CPU tensors and the kernels' scratch (`withFloats`: im2col columns, converted operands,
/// product blocks, borrowed for one op). First touches of fresh memory are the costly part of large
/// allocations (the kernel zeroes and maps every page; measured on this project's 2-core VM: 1.1-1.6 s to
/// first-touch 2 GiB in 4 KiB pages, 0.27 s in huge pages, 0.08 s to rewrite it), so blocks of
/// `poolThreshold` bytes and more are mapped directly, advised to use transparent huge pages, and kept
/// when freed (up to `keptLimit` bytes) for the next large allocation: the smallest kept block that holds
/// the request is handed out as it is when it is at most 4× the request (its pages are resident
/// already), with its tail returned to the system when larger. Smaller blocks come from malloc.
final class CPUMemory: @unchecked Sendable {
    /// Smallest block mapped directly and pooled.
    static let poolThreshold = 8 << 20
    /// The process's pool (the CPU device's tensors and scratch): it keeps up to an eighth of physical
    /// memory, at most 4 GiB.
    static let shared = CPUMemory(keptLimit: Int(min(ProcessInfo.processInfo.physicalMemory / 8, 4 << 30)))

    /// Bytes of freed large blocks kept for reuse.
    let keptLimit: Int
    private let lock = NSLock()
    private var kept: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
    private var mapped: [UnsafeMutableRawPointer: Int] = [:]

    init(keptLimit: Int) {
        self.keptLimit = keptLimit
    }

    /// `bytes` (at least 64) of uninitialised host memory, aligned to 64 bytes (large blocks: to pages), or
    /// nil when the system has no memory for it.
    func allocate(_ bytes: Int) -> UnsafeMutableRawPointer? {
        let size = max(bytes, 64)
        guard size >= CPUMemory.poolThreshold else { return .allocate(byteCount: size, alignment: 64) }
        let length = (size + 4095) / 4096 * 4096
        lock.lock()
        defer { lock.unlock() }
        if let i = kept.indices.filter({ kept[$0].bytes >= length }).min(by: { kept[$0].bytes < kept[$1].bytes }) {
            let b = kept.remove(at: i)
            if b.bytes > 4 * length {
                munmap(b.pointer + length, b.bytes - length)
                mapped[b.pointer] = length
            } else {
                mapped[b.pointer] = b.bytes
            }
            return b.pointer
        }
        guard let p = map(length) else {
            // Out of memory with blocks kept: give them back and try once more.
            for k in kept { munmap(k.pointer, k.bytes) }
            kept.removeAll()
            guard let p = map(length) else { return nil }
            mapped[p] = length
            return p
        }
        mapped[p] = length
        return p
    }

    /// Runs `body` with `count` floats of scratch (contents undefined), freed afterwards (a large block: kept
    /// for the next op, so scratch of a repeated op is not fresh memory each time).
    func withFloats<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let bytes = max(1, count) * MemoryLayout<Float>.size
        // Out of host memory: the standard allocator's failure (a trap) is all that is left inside a kernel.
        let p = allocate(bytes) ?? .allocate(byteCount: bytes, alignment: 64)
        defer { free(p) }
        return try body(p.bindMemory(to: Float.self, capacity: max(1, count)))
    }

    /// `withFloats` for an optional need: a nil count gives a nil pointer and borrows nothing.
    func withFloats<R>(ifNeeded count: Int?, _ body: (UnsafeMutablePointer<Float>?) throws -> R) rethrows -> R {
        guard let count else { return try body(nil) }
        return try withFloats(count) { try body($0) }
    }

    /// Frees a block from `allocate` (large blocks are kept for reuse while they fit under `keptLimit`).
    func free(_ p: UnsafeMutableRawPointer) {
        lock.lock()
        guard let bytes = mapped.removeValue(forKey: p) else {
            lock.unlock()
            p.deallocate()
            return
        }
        defer { lock.unlock() }
        guard bytes <= keptLimit else {
            munmap(p, bytes)
            return
        }
        // The newest block stays; the oldest kept ones go until it fits.
        var total = kept.reduce(0) { $0 + $1.bytes } + bytes
        while total > keptLimit, !kept.isEmpty {
            let old = kept.removeFirst()
            munmap(old.pointer, old.bytes)
            total -= old.bytes
        }
        kept.append((p, bytes))
    }

    /// Gives every kept block back to the system; returns the bytes released.
    @discardableResult
    func releaseKept() -> Int {
        lock.lock()
        defer { lock.unlock() }
        let total = kept.reduce(0) { $0 + $1.bytes }
        for k in kept { munmap(k.pointer, k.bytes) }
        kept.removeAll()
        return total
    }

    /// Bytes held by kept (idle) large blocks.
    var keptBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return kept.reduce(0) { $0 + $1.bytes }
    }

    private func map(_ length: Int) -> UnsafeMutableRawPointer? {
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else { return nil }
        _ = madvise(p, length, MADV_HUGEPAGE)
        return p
    }
}
