/// Element types a tensor can hold.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case f32, f16, bf16, f8e4m3fn, f8e5m2, i32, u8

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .f8e4m3fn, .f8e5m2, .u8: return 1
        }
    }

    /// The number shaders use for this type (see `Shaders/include/common.glsl`).
    public var code: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .bf16: return 2
        case .f8e4m3fn: return 3
        case .f8e5m2: return 4
        case .i32: return 5
        case .u8: return 6
        }
    }

    /// Whether the type is a floating-point format.
    public var isFloat: Bool { self != .i32 && self != .u8 }

    /// Types that arithmetic kernels accept as inputs and outputs (fp8 is a storage format).
    public var isComputeFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }

    public var description: String { rawValue }

    /// Parses names as users and checkpoints spell them (`f32`, `float16`, `BF16`, `F8_E4M3`, ...).
    public init?(parsing text: String) {
        switch text.lowercased() {
        case "f32", "float32", "float", "fp32": self = .f32
        case "f16", "float16", "half", "fp16": self = .f16
        case "bf16", "bfloat16": self = .bf16
        case "f8e4m3fn", "f8_e4m3", "float8_e4m3fn", "fp8", "e4m3", "fp8_e4m3fn": self = .f8e4m3fn
        case "f8e5m2", "f8_e5m2", "float8_e5m2", "e5m2", "fp8_e5m2": self = .f8e5m2
        case "i32", "int32": self = .i32
        case "u8", "uint8": self = .u8
        default: return nil
        }
    }
}
