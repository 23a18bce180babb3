import Foundation

/// A flag that stops a running generation at its next check (between sampling steps, between decoded frames).
/// Set from any thread, e.g. a SIGINT handler.
public final class GenerationCancellation: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false

    public init() {}

    /// Asks the generation to stop.
    public func cancel() {
        lock.lock()
        flag = true
        lock.unlock()
    }

    /// Whether `cancel()` was called.
    public var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return flag
    }

    /// Throws `GenerationError.cancelled` once `cancel()` was called.
    public func check() throws {
        if isCancelled { throw GenerationError.cancelled }
    }
}
