/// The tensor-core shaders built with their cooperative matrices emulated on ordinary invocations
/// (`Shaders/include/coopmat.glsl`, `CM_EMULATE`): slow, but they run on any device with fp16 arithmetic, so the
/// shaders' own logic (staging, edges, softmax, epilogues) is tested on lavapipe, where tensor cores do not exist.
struct CoopmatEmulation: Sendable, Hashable {
    /// Which invocation holds which element of a 16×16 fragment.
    enum Layout: UInt32, Sendable, CaseIterable {
        /// NVIDIA's mma layout: lane l holds rows l/4 and l/4 + 8 (what the native shaders run on).
        case nvidia = 0
        /// Lane l holds column l % 16 of eight rows: for checking that a shader works without NVIDIA's layout.
        case columns = 1
        /// NVIDIA's rows and columns with the elements in another order (element bit 2, not 1, picks the row).
        case nvidiaPermuted = 2

        /// The element bit that picks the lower of a lane's two rows where the layout has NVIDIA's rows.
        var rowBit: Int? {
            switch self {
            case .nvidia: return 1
            case .nvidiaPermuted: return 2
            case .columns: return nil
            }
        }
    }

    var layout: Layout = .nvidia

    /// Shared memory the emulation adds to a workgroup of `threads` invocations (products and shuffles).
    static func sharedBytes(threads: Int) -> Int { threads * (16 * 2 + 4) }

    /// Whether a device can run the emulated shaders.
    static func supported(_ caps: Capabilities) -> Bool { caps.shaderFloat16 }
}
