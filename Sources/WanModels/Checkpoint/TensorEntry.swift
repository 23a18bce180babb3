import WanRuntime

/// Element types that appear in checkpoint files (safetensors and torch `.pth`), a superset of the
/// runtime's `DType`.
public enum CheckpointDType: String, Sendable, CaseIterable, CustomStringConvertible {
    case f64, f32, f16, bf16, f8e4m3fn, f8e5m2, i64, i32, i16, i8, u8, bool

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .f8e4m3fn, .f8e5m2, .i8, .u8, .bool: return 1
        }
    }

    /// The runtime dtype holding these elements unchanged, if there is one.
    public var runtimeType: DType? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .f8e4m3fn: return .f8e4m3fn
        case .f8e5m2: return .f8e5m2
        case .i32: return .i32
        case .u8: return .u8
        default: return nil
        }
    }

    public var description: String { rawValue }
}

/// One tensor as a checkpoint describes it, before its bytes are read: name, element type, shape.
public struct TensorEntry: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var dtype: CheckpointDType
    public var shape: [Int]

    public init(name: String, dtype: CheckpointDType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Bytes of the elements.
    public var byteCount: Int { count * dtype.size }

    public var description: String { "\(name) \(dtype) \(shape)" }
}
