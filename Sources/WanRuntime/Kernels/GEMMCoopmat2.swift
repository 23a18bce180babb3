import Foundation
import WanShaders

/// The workgroup-scope tensor-core GEMM (`gemm_cm2.comp`, VK_NV_cooperative_matrix2): one cooperative matrix per
/// operand tile loaded straight from memory through tensor layouts, the driver staging them and scheduling the MMAs.
/// Same operands, epilogues and fp32 accumulation as the subgroup-scope `gemm_coopmat` (fp16 operand tiles; f32 and
/// bf16 rounded while loading, fp8 weights decoded exactly); f32 or f16 outputs. Built only with the newer glslang
/// (`Benchmarks/glslang-newer.sh`); used where `WAN_GEMM_CM2=1` asks for it until a GPU run has measured it
/// against the subgroup-scope kernel.
enum GEMMCoopmat2 {
    /// A workgroup's tile: BM×BN outputs from BK-wide K slices. Written `BMxBNxBK` (`WAN_GEMM_CM2_TILE`).
    struct Tile: Sendable, Hashable, CustomStringConvertible {
        var bm, bn, bk: Int
        var description: String { "\(bm)x\(bn)x\(bk)" }

        init(bm: Int, bn: Int, bk: Int) {
            self.bm = bm; self.bn = bn; self.bk = bk
        }

        /// Parses `BMxBNxBK` (multiples of 16).
        init(parsing text: String) throws {
            let v = text.lowercased().split(separator: "x").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard v.count == 3, v.allSatisfy({ $0 > 0 && $0 % 16 == 0 }) else {
                throw RuntimeError.invalidArgument("coopmat2 tile '\(text)' (GEMM or convolution): expected BMxBNxBK, multiples of 16, e.g. 128x128x32")
            }
            self.init(bm: v[0], bn: v[1], bk: v[2])
        }

        /// Whether the device's shape allows these matrix sizes (multiples of its granularities, within its maximum).
        func fits(_ shape: Capabilities.FlexibleShape, maxDimension: Int) -> Bool {
            bm % shape.mGranularity == 0 && bn % shape.nGranularity == 0 && bk % shape.kGranularity == 0
                && [bm, bn, bk].allSatisfy { $0 <= maxDimension }
        }
    }

    /// The default tile: 128×128 in 32-wide K slices.
    static let defaultTile = Tile(bm: 128, bn: 128, bk: 32)

    /// The emulated shader's default tile (`gemm_cm2_emulated`, for tests on devices without the extension) and
    /// workgroup size.
    static let emulatedTile = Tile(bm: 32, bn: 32, bk: 16)
    static let emulatedInvocations = 64

    /// Shared memory the emulation needs for `t` (its product scratch: an fp16 A and B tile).
    static func emulationSharedBytes(_ t: Tile) -> Int { 2 * (t.bm * t.bk + t.bk * t.bn) }

    /// Whether a device with `caps` runs the emulated shader with tile `t`.
    static func emulationFits(_ t: Tile, _ caps: Capabilities) -> Bool {
        emulationSharedBytes(t) <= caps.maxComputeSharedMemorySize && emulatedInvocations <= caps.maxComputeWorkGroupInvocations
    }

    /// `WAN_GEMM_CM2_TILE` when set, else the default tile.
    static func tile() throws -> Tile {
        guard let env = getenv("WAN_GEMM_CM2_TILE"), env.pointee != 0 else { return defaultTile }
        return try Tile(parsing: String(cString: env))
    }

    /// Whether this build holds the shader (empty without glslang 15).
    static var built: Bool { !SPIRV.gemm_cm2.isEmpty }

    /// Whether a device with `caps` offers everything the shader uses: the features, Vulkan 1.3 (SPIR-V 1.6),
    /// fp16 arithmetic and the Vulkan memory model.
    static func offered(_ caps: Capabilities) -> Bool {
        guard let c = caps.cooperativeMatrix2, c.workgroupScope, c.flexibleDimensions, c.perElementOperations,
              c.tensorAddressing, c.blockLoads, caps.shaderFloat16, caps.vulkanMemoryModel else { return false }
        let version = caps.apiVersion.split(separator: ".").compactMap { Int($0) }
        return version.count >= 2 && (version[0], version[1]) >= (1, 3) && shape(caps) != nil
    }

    /// Whether the device should enable VK_NV_cooperative_matrix2 (the shader built and the device offering it).
    static func enable(_ caps: Capabilities) -> Bool { built && offered(caps) }

    /// The workgroup-scope fp16 × fp16 → fp32 shape the device lists (its granularities and invocation count): the one
    /// with `invocations` (default 256: 8 subgroups of 32, as large GEMM tiles want) where there are several, else the
    /// first. The shaders also declare fp16 accumulators (their f16 outputs), so a shape counts only where the device
    /// lists fp16 × fp16 → fp16 for the same invocation count too; the granularities returned are the coarser of the two.
    static func shape(_ caps: Capabilities, preferring invocations: Int = 256) -> Capabilities.FlexibleShape? {
        guard let c = caps.cooperativeMatrix2 else { return nil }
        func listed(_ s: Capabilities.FlexibleShape, accumulator: String) -> Bool {
            s.scope == "workgroup" && s.a == "f16" && s.b == "f16" && s.c == accumulator && s.result == accumulator
                && s.workgroupInvocations > 0 && s.workgroupInvocations <= min(c.maxWorkgroupSize, caps.maxComputeWorkGroupSize[0])
        }
        let usable: [Capabilities.FlexibleShape] = c.shapes.filter { listed($0, accumulator: "f32") }.compactMap { s in
            guard let h = c.shapes.first(where: { listed($0, accumulator: "f16") && $0.workgroupInvocations == s.workgroupInvocations }) else {
                return nil
            }
            var both = s
            both.mGranularity = max(s.mGranularity, h.mGranularity)
            both.nGranularity = max(s.nGranularity, h.nGranularity)
            both.kGranularity = max(s.kGranularity, h.kGranularity)
            return both
        }
        return usable.first { $0.workgroupInvocations == invocations } ?? usable.first
    }

    /// Whether the opened device can run the shader.
    static func supported(_ caps: Capabilities) -> Bool { built && caps.cooperativeMatrix2Enabled && offered(caps) }

    /// Whether the operands suit the shader: an f32 or f16 output (residual f32/f16/bf16), and every tensor's base
    /// (each of the `batch` batches' too) on 16 bytes, as tensor-layout loads and stores require.
    static func eligible(a: Tensor, b: Tensor, out: Tensor, residual: Tensor?, batch: Int, strideA: Int, strideB: Int,
                         strideOut: Int) -> Bool {
        guard out.dtype == .f32 || out.dtype == .f16 else { return false }
        let bases: [(Tensor, Int)] = [(a, strideA), (b, strideB), (out, strideOut)] + (residual.map { [($0, strideOut)] } ?? [])
        return bases.allSatisfy { t, stride in t.deviceAddress % 16 == 0 && (batch == 1 || (stride * t.dtype.size) % 16 == 0) }
    }

    /// The policy: `WAN_GEMM_CM2=1` uses it where supported and eligible (otherwise, or unset, the subgroup-scope
    /// kernel keeps the tensor-core GEMMs until a GPU run has compared the two).
    static func chosen(_ caps: Capabilities) -> Bool {
        guard supported(caps), let env = getenv("WAN_GEMM_CM2") else { return false }
        return String(cString: env) == "1"
    }
}

extension Device {
    /// Whether this device runs the workgroup-scope coopmat2 GEMM (`WAN_GEMM_CM2=1` selects it).
    public var supportsCoopmat2GEMM: Bool { vulkan.map { GEMMCoopmat2.supported($0.capabilities) } ?? false }
}
