import Foundation

/// Scratch memory the CPU kernels borrow for the length of one op (im2col columns, converted operands,
/// product blocks) and give back, kept between ops: a fresh large allocation is a fresh mapping whose
/// pages the kernel zeroes on first touch (measured on 2 cores: page zeroing was 7% of a VAE decode's
/// CPU time, most of it the convolution's 64 MiB im2col buffer allocated per call). Buffers kept are
/// bounded by `keptLimit` bytes; a borrower takes the smallest kept buffer that fits, else a new one.
final class CPUScratch: @unchecked Sendable {
    /// Bytes of idle buffers kept for reuse (larger buffers are freed when given back).
    let keptLimit: Int
    private let lock = NSLock()
    private var kept: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []

    init(keptLimit: Int) {
        self.keptLimit = keptLimit
    }

    deinit {
        for b in kept { CPUMemory.shared.free(b.pointer) }
    }

    /// Bytes held by idle buffers now.
    var keptBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return kept.reduce(0) { $0 + $1.bytes }
    }

    /// Frees every idle buffer; returns the bytes released.
    @discardableResult
    func releaseKept() -> Int {
        lock.lock()
        let all = kept
        kept.removeAll()
        lock.unlock()
        for b in all { CPUMemory.shared.free(b.pointer) }
        return all.reduce(0) { $0 + $1.bytes }
    }

    /// Runs `body` with `count` floats of scratch (contents undefined), returned to the pool afterwards.
    func withFloats<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let bytes = max(64, count * MemoryLayout<Float>.size)
        let buffer = take(bytes)
        defer { give(buffer) }
        return try body(buffer.pointer.bindMemory(to: Float.self, capacity: max(1, count)))
    }

    /// `withFloats` for an optional need: a nil count gives a nil pointer and borrows nothing.
    func withFloats<R>(ifNeeded count: Int?, _ body: (UnsafeMutablePointer<Float>?) throws -> R) rethrows -> R {
        guard let count else { return try body(nil) }
        return try withFloats(count) { try body($0) }
    }

    private func take(_ bytes: Int) -> (pointer: UnsafeMutableRawPointer, bytes: Int) {
        lock.lock()
        var best: Int?
        for (i, b) in kept.enumerated() where b.bytes >= bytes && (best.map { b.bytes < kept[$0].bytes } ?? true) {
            best = i
        }
        if let best {
            let b = kept.remove(at: best)
            lock.unlock()
            return b
        }
        lock.unlock()
        // Out of host memory: the standard allocator's failure (a trap) is all that is left inside a kernel.
        return (CPUMemory.shared.allocate(bytes) ?? .allocate(byteCount: bytes, alignment: 64), bytes)
    }

    private func give(_ buffer: (pointer: UnsafeMutableRawPointer, bytes: Int)) {
        lock.lock()
        kept.append(buffer)
        // Over the limit: free the smallest buffers first (the large ones are the costly ones to remake).
        kept.sort { $0.bytes > $1.bytes }
        var total = 0, freed: [UnsafeMutableRawPointer] = []
        kept = kept.filter { b in
            if total + b.bytes <= keptLimit { total += b.bytes; return true }
            freed.append(b.pointer)
            return false
        }
        lock.unlock()
        for p in freed { CPUMemory.shared.free(p) }
    }
}
