/// Builds a push-constant block in the std430 layout a GLSL `layout(push_constant)` block declares
/// for the same members in the same order (uint64_t addresses 8-byte aligned, 4-byte scalars).
struct PushConstants {
    private(set) var bytes: [UInt8] = []

    private mutating func align(_ n: Int) {
        while bytes.count % n != 0 { bytes.append(0) }
    }

    /// Appends a 32-bit unsigned value.
    mutating func u32(_ v: UInt32) {
        align(4)
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends an `Int` as a 32-bit unsigned value (callers check the range).
    mutating func u32(_ v: Int) { u32(UInt32(truncatingIfNeeded: v)) }

    /// Appends a 32-bit signed value.
    mutating func i32(_ v: Int) {
        align(4)
        withUnsafeBytes(of: Int32(truncatingIfNeeded: v).littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends a 32-bit float.
    mutating func f32(_ v: Float) { u32(v.bitPattern) }

    /// Appends a 64-bit value (8-byte aligned).
    mutating func u64(_ v: UInt64) {
        align(8)
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends the device address of a tensor view's first element.
    mutating func address(_ t: Tensor) { u64(t.deviceAddress) }
}
