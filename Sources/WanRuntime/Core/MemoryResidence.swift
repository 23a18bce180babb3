/// Where a tensor's memory lives.
public enum MemoryResidence: Sendable, Equatable {
    /// The device's own memory (VRAM on a discrete GPU).
    case device
    /// Host memory the device reads over the bus (weights streamed to the device before use).
    case host
}
