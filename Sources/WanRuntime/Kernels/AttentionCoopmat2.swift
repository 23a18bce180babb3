import Foundation
import WanShaders

/// The flash attention on VK_NV_cooperative_matrix2's workgroup-scope matrices (`attention_cm2.comp`): a workgroup's
/// query rows loaded once, per key block S = Q·Kᵀ, the online softmax through row reductions and per-element
/// operations, O += P·V; fp16 operands (f32 and bf16 rounded while loading), fp32 scores, statistics and
/// accumulation; f32 or f16 outputs. Built only with glslang 15 (`Benchmarks/glslang-newer.sh`); used where
/// `WAN_ATTN_CM2=1` asks for it until a GPU run has measured it against the subgroup-scope variant.
enum AttentionCoopmat2 {
    /// A workgroup's tile: `br` query rows, keys in blocks of `bc`. Written `BRxBC` (`WAN_ATTN_CM2_TILE`).
    struct Tile: Sendable, Hashable, CustomStringConvertible {
        var br, bc: Int
        var description: String { "\(br)x\(bc)" }

        init(br: Int, bc: Int) { self.br = br; self.bc = bc }

        /// Parses `BRxBC` (multiples of 16).
        init(parsing text: String) throws {
            let v = text.lowercased().split(separator: "x").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard v.count == 2, v.allSatisfy({ $0 > 0 && $0 % 16 == 0 }) else {
                throw RuntimeError.invalidArgument("coopmat2 attention tile '\(text)': expected BRxBC, multiples of 16, e.g. 64x64")
            }
            self.init(br: v[0], bc: v[1])
        }

        /// Whether the device's shape allows the two products at head dim `d`: S = Q·Kᵀ (M br, N bc, K d) and
        /// O += P·V (M br, N d, K bc), every dimension within the maximum.
        func fits(_ shape: Capabilities.FlexibleShape, maxDimension: Int, headDim d: Int) -> Bool {
            br % shape.mGranularity == 0 && bc % shape.nGranularity == 0 && bc % shape.kGranularity == 0
                && d % shape.nGranularity == 0 && d % shape.kGranularity == 0 && [br, bc, d].allSatisfy { $0 <= maxDimension }
        }
    }

    /// The default tile: 64 query rows, blocks of 64 keys.
    static let defaultTile = Tile(br: 64, bc: 64)

    /// The emulated shader's default tile and workgroup size (`attention_cm2_emulated`, for tests on devices without
    /// the extension).
    static let emulatedTile = Tile(br: 32, bc: 32)
    static let emulatedInvocations = 64

    /// Shared memory the emulation needs (its product and reduction scratch) for tile `t` at head dim `d`.
    static func emulationSharedBytes(_ t: Tile, headDim d: Int) -> Int {
        2 * (t.br * max(d, t.bc) + d * t.bc) + 4 * t.br * t.bc
    }

    /// `WAN_ATTN_CM2_TILE` when set, else the default tile.
    static func tile() throws -> Tile {
        guard let env = getenv("WAN_ATTN_CM2_TILE"), env.pointee != 0 else { return defaultTile }
        return try Tile(parsing: String(cString: env))
    }

    /// Whether this build holds the shader (empty without glslang 15).
    static var built: Bool { !SPIRV.attention_cm2.isEmpty }

    /// Head dims the shader takes: multiples of 16 up to 256.
    static func headDimSupported(_ d: Int) -> Bool { d > 0 && d % 16 == 0 && d <= 256 }

    /// The workgroup shape: the device's fp16 × fp16 → fp32 workgroup-scope shape of 128 invocations where listed.
    static func shape(_ caps: Capabilities) -> Capabilities.FlexibleShape? { GEMMCoopmat2.shape(caps, preferring: 128) }

    /// Whether a device with `caps` offers what the shader uses: the coopmat2 GEMM's features plus row reductions and
    /// accumulator-to-operand conversions.
    static func offered(_ caps: Capabilities) -> Bool {
        GEMMCoopmat2.offered(caps) && caps.cooperativeMatrix2?.reductions == true && caps.cooperativeMatrix2?.conversions == true
    }

    /// Whether the opened device runs the shader at head dim `d` with the default tile.
    static func supported(_ caps: Capabilities, headDim d: Int) -> Bool {
        guard built, caps.cooperativeMatrix2Enabled, offered(caps), headDimSupported(d), let shape = shape(caps),
              let limits = caps.cooperativeMatrix2 else { return false }
        return defaultTile.fits(shape, maxDimension: limits.maxDimension, headDim: d)
    }

    /// Whether the operands suit the tensor layouts: an f32 or f16 output; 16-byte aligned bases of every (batch, head)
    /// of q, k, v (element strides `qs`, `ks`, `vs`: batch, position, head) and of every output row; rows that do not
    /// overlap (position stride at least `d` where a length exceeds 1).
    static func eligible(q: Tensor, k: Tensor, v: Tensor, out: Tensor, qs: [Int], ks: [Int], vs: [Int], headDim d: Int) -> Bool {
        guard out.dtype == .f32 || out.dtype == .f16, out.deviceAddress % 16 == 0, (d * out.dtype.size) % 16 == 0 else { return false }
        func suits(_ t: Tensor, _ st: [Int]) -> Bool {
            let size = t.dtype.size
            let aligned = t.deviceAddress % 16 == 0 && (st[0] * size) % 16 == 0 && (st[2] * size) % 16 == 0
            return aligned && (t.shape[1] == 1 || st[1] >= d)
        }
        return suits(q, qs) && suits(k, ks) && suits(v, vs)
    }

    /// The policy: `WAN_ATTN_CM2=1` uses it where supported for the inputs the tensor-core attention takes (16-bit, or
    /// f32 with fp16 compute allowed; `WAN_ATTN_COOPMAT=0` turns tensor cores off), otherwise the subgroup-scope variant
    /// keeps them until a GPU run has compared the two.
    static func chosen(_ caps: Capabilities, headDim d: Int, inputs: [DType], fp16Compute: Bool) -> Bool {
        guard supported(caps, headDim: d), let env = getenv("WAN_ATTN_CM2"), String(cString: env) == "1" else { return false }
        if let off = getenv("WAN_ATTN_COOPMAT"), String(cString: off) == "0" { return false }
        return fp16Compute || inputs.allSatisfy { $0 == .f16 || $0 == .bf16 }
    }
}

extension Device {
    /// Whether this device runs the coopmat2 attention at head dim `d` (`WAN_ATTN_CM2=1` selects it).
    public func supportsCoopmat2Attention(headDim d: Int) -> Bool {
        vulkan.map { AttentionCoopmat2.supported($0.capabilities, headDim: d) } ?? false
    }
}
