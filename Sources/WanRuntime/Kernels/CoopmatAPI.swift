import Foundation
import WanShaders

/// The Vulkan extension the tensor-core shaders run on: `VK_NV_cooperative_matrix` (always built), or
/// `VK_KHR_cooperative_matrix` (built only with glslang 13 or newer: `Benchmarks/glslang-newer.sh`; Debian 12's
/// glslang 12 cannot compile it). Both compile the same shader bodies through `Shaders/include/coopmat.glsl`.
public enum CoopmatAPI: String, Sendable, CaseIterable {
    case nv, khr

    /// Whether this build holds the API's shaders (the KHR ones are empty when glslang was too old).
    public var built: Bool {
        switch self {
        case .nv: return true
        case .khr: return !SPIRV.gemm_coopmat_khr.isEmpty && !SPIRV.attention_coopmat_khr.isEmpty
        }
    }

    /// Whether a device with `caps` has the API with what the shaders use: a 16x16x16 f16 × f16 → f32
    /// subgroup-scope shape, subgroups of 32 and fp16 arithmetic.
    public func available(_ caps: Capabilities) -> Bool {
        guard caps.subgroupSize == 32, caps.shaderFloat16 else { return false }
        let (present, shapes) = self == .nv ? (caps.nvCooperativeMatrix, caps.cooperativeMatrixShapesNV)
                                            : (caps.khrCooperativeMatrix, caps.cooperativeMatrixShapesKHR)
        return present && shapes.contains {
            $0.m == 16 && $0.n == 16 && $0.k == 16 && $0.a == "f16" && $0.b == "f16" && $0.c == "f32"
                && $0.result == "f32" && $0.scope == "subgroup"
        }
    }

    /// The API the tensor-core shaders use on a device: `WAN_COOPMAT_API=nv|khr` when set (nil when that one is
    /// unavailable or not built, or the variable is not one of them), else NV where the device has it, else KHR
    /// where built and present.
    static func chosen(_ caps: Capabilities) -> CoopmatAPI? {
        do {
            return chosen(caps, preference: try preference(getenv("WAN_COOPMAT_API").map { String(cString: $0) }))
        } catch {
            return nil
        }
    }

    /// `chosen` for an explicit preference (nil: none).
    static func chosen(_ caps: Capabilities, preference: CoopmatAPI?) -> CoopmatAPI? {
        if let api = preference { return api.built && api.available(caps) ? api : nil }
        return [.nv, .khr].first { $0.built && $0.available(caps) }
    }

    /// Parses a `WAN_COOPMAT_API` value: nil or empty for no preference, `nv` or `khr` (any case), else an error.
    static func preference(_ text: String?) throws -> CoopmatAPI? {
        guard let text, !text.isEmpty else { return nil }
        guard let api = CoopmatAPI(rawValue: text.lowercased()) else {
            throw RuntimeError.invalidArgument("WAN_COOPMAT_API='\(text)': expected nv or khr")
        }
        return api
    }

    /// Throws when `WAN_COOPMAT_API` is set to something other than `nv` or `khr` (a typo would otherwise quietly
    /// turn the tensor cores off).
    static func checkEnvironment() throws {
        _ = try preference(getenv("WAN_COOPMAT_API").map { String(cString: $0) })
    }

    /// The tensor-core GEMM (`gemm_coopmat.comp` / `gemm_coopmat_khr.comp`) on this API.
    var gemmKernel: Kernel {
        self == .nv ? Kernel(name: "gemm_coopmat", spirv: SPIRV.gemm_coopmat)
                    : Kernel(name: "gemm_coopmat_khr", spirv: SPIRV.gemm_coopmat_khr)
    }

    /// The tensor-core attention (`attention_coopmat.comp` / `attention_coopmat_khr.comp`) on this API.
    var attentionKernel: Kernel {
        self == .nv ? Kernel(name: "attention_coopmat", spirv: SPIRV.attention_coopmat)
                    : Kernel(name: "attention_coopmat_khr", spirv: SPIRV.attention_coopmat_khr)
    }

    /// Whether the device should enable VK_KHR_cooperative_matrix (present, and this build has its shaders).
    static func enableKHR(_ caps: Capabilities) -> Bool { CoopmatAPI.khr.built && caps.khrCooperativeMatrix }
}
