import Foundation
import WanShaders

/// The causal 3-D convolution on VK_NV_cooperative_matrix2's workgroup-scope matrices, fp32 accumulation, f32 or f16
/// outputs, in two variants: `gather` (`conv3d_cm2.comp`: implicit GEMM with the weight tile loaded through a tensor
/// layout and the input slice gathered by the workgroup into shared memory, fp16; any geometry) and `rows`
/// (`conv3d_rows_cm2.comp`: every operand through tensor layouts, the driver staging them all; width stride 1). Built
/// only with glslang 15 (`Benchmarks/glslang-newer.sh`); used where `WAN_CONV_CM2` asks for it (for the inputs the
/// subgroup tensor-core convolution takes) until a GPU run has measured them against that kernel. Tiles are the
/// coopmat2 GEMM's `BMxBNxBK`: BM output channels by BN output voxels (of one output row for `rows`) in K slices of BK
/// (of Cin·taps for `gather`, of the input channels of one tap for `rows`).
enum Conv3DCoopmat2 {
    /// How the input reaches the matrices.
    enum Variant: String, Sendable, CaseIterable {
        /// Gathered by the workgroup into shared memory (any strides).
        case gather
        /// Loaded through 4-D tensor layouts, one output row per tile (width stride 1).
        case rows
    }

    /// The default tile: 128 output channels × 128 voxels in 32-wide K slices.
    static let defaultTile = GEMMCoopmat2.Tile(bm: 128, bn: 128, bk: 32)

    /// The emulated shader's default tile and workgroup size (`conv3d_cm2_emulated`, for tests on devices without the
    /// extension).
    static let emulatedTile = GEMMCoopmat2.Tile(bm: 32, bn: 32, bk: 16)
    static let emulatedInvocations = 64

    /// Shared memory of the gather shader's two fp16 input slices for tile `t`.
    static func sliceBytes(_ t: GEMMCoopmat2.Tile) -> Int { 2 * 2 * t.bk * t.bn }

    /// Whether the gather shader's slices of tile `t` fit the device's shared memory beside what the driver reserves for
    /// workgroup-scope matrices.
    static func slicesFit(_ t: GEMMCoopmat2.Tile, _ caps: Capabilities) -> Bool {
        sliceBytes(t) + (caps.cooperativeMatrix2?.reservedSharedMemory ?? 0) <= caps.maxComputeSharedMemorySize
    }

    /// Shared memory the emulated gather shader needs for `t`: the slices and the emulation's product scratch.
    static func emulationSharedBytes(_ t: GEMMCoopmat2.Tile) -> Int { sliceBytes(t) + GEMMCoopmat2.emulationSharedBytes(t) }

    /// `WAN_CONV_CM2_TILE` when set, else the default tile.
    static func tile() throws -> GEMMCoopmat2.Tile {
        guard let env = getenv("WAN_CONV_CM2_TILE"), env.pointee != 0 else { return defaultTile }
        return try GEMMCoopmat2.Tile(parsing: String(cString: env))
    }

    /// Whether this build holds the shaders (empty without glslang 15).
    static var built: Bool { !SPIRV.conv3d_cm2.isEmpty && !SPIRV.conv3d_rows_cm2.isEmpty }

    /// Whether the opened device can run the shaders (the coopmat2 GEMM's features).
    static func supported(_ caps: Capabilities) -> Bool { built && caps.cooperativeMatrix2Enabled && GEMMCoopmat2.offered(caps) }

    /// Whether the gather's split fits: BN/8 chunks of 8 voxels per slice row, a number that divides the workgroup size.
    static func splits(_ t: GEMMCoopmat2.Tile, invocations: Int) -> Bool {
        t.bn >= 8 && t.bn % 8 == 0 && invocations > 0 && invocations % (t.bn / 8) == 0
    }

    /// Whether the tensors suit the tensor layouts: an f32 or f16 output (residual f32/f16/bf16), x and the cache in
    /// one dtype, and 16-byte aligned bases of the weights, the output and the residual (each of the `batch` outputs').
    static func eligible(x: Tensor, cache: Tensor?, weight: Tensor, out: Tensor, residual: Tensor?, batch: Int,
                         outputsPerBatch: Int) -> Bool {
        guard out.dtype == .f32 || out.dtype == .f16, cache.map({ $0.dtype == x.dtype }) ?? true else { return false }
        let outputs = [out] + (residual.map { [$0] } ?? [])
        return weight.deviceAddress % 16 == 0
            && outputs.allSatisfy { $0.deviceAddress % 16 == 0 && (batch == 1 || (outputsPerBatch * $0.dtype.size) % 16 == 0) }
    }

    /// Whether the `rows` variant takes the call: width stride 1, and 16-byte aligned bases of x and the cache (each
    /// batch's too: `inputsPerBatch` and `cachePerBatch` elements apart).
    static func rowsEligible(strideW: Int, x: Tensor, cache: Tensor?, batch: Int, inputsPerBatch: Int, cachePerBatch: Int) -> Bool {
        let inputs = [(x, inputsPerBatch)] + (cache.map { [($0, cachePerBatch)] } ?? [])
        return strideW == 1 && inputs.allSatisfy { t, n in t.deviceAddress % 16 == 0 && (batch == 1 || (n * t.dtype.size) % 16 == 0) }
    }

    /// The variant a `WAN_CONV_CM2` value asks for: `rows`, or `1` / `gather` for the gather variant; nil when unset
    /// or anything else (`0`).
    static func requested(_ value: String?) -> Variant? {
        switch value {
        case "1", "gather": return .gather
        case "rows": return .rows
        default: return nil
        }
    }

    /// The variant `WAN_CONV_CM2` asks for (`requested(_:)` of the environment's value).
    static func requested() -> Variant? { requested(getenv("WAN_CONV_CM2").map { String(cString: $0) }) }

    /// The variant a call runs: `rows` where asked for and the call suits it (`rowsEligible`), else `gather`.
    static func variant(requested: Variant?, rowsSuit: Bool) -> Variant { requested == .rows && rowsSuit ? .rows : .gather }

    /// The policy: where `WAN_CONV_CM2` asks for a variant (`requested`), it runs where supported for the inputs the
    /// tensor-core convolution takes (`Conv3DCoopmat.wanted`: 16-bit, or f32 with fp16 compute allowed;
    /// `WAN_CONV_COOPMAT=0` turns tensor cores off).
    static func chosen(_ caps: Capabilities, x: DType, weight: DType, cache: DType?, fp16Compute: Bool) -> Bool {
        guard supported(caps), requested() != nil else { return false }
        return Conv3DCoopmat.wanted(x: x, weight: weight, cache: cache, fp16Compute: fp16Compute)
    }
}

extension VulkanRecorder {
    /// Records the coopmat2 convolution `variant` (natively, or `emulated` on emulated workgroup-scope matrices) with
    /// `tile` (nil: `Conv3DCoopmat2.tile()`, or the emulated default) for a call `CommandList.conv3d` has validated.
    func conv3dCoopmat2(_ g: Conv3DGeometry, x: Tensor, weight: Tensor, bias: Tensor?, cache: Tensor?, residual: Tensor?,
                        out: Tensor, variant: Conv3DCoopmat2.Variant, tile: GEMMCoopmat2.Tile?, emulated: Bool, label: String) throws {
        let op = "conv3d"
        let caps = device.capabilities
        let c2 = Conv3DCoopmat2.self
        let gather = variant == .gather
        let t: GEMMCoopmat2.Tile, invocations: Int
        if emulated {
            t = tile ?? c2.emulatedTile
            invocations = c2.emulatedInvocations
            let shared = gather ? c2.emulationSharedBytes(t) : GEMMCoopmat2.emulationSharedBytes(t)
            guard CoopmatEmulation.supported(caps), shared <= caps.maxComputeSharedMemorySize,
                  invocations <= caps.maxComputeWorkGroupInvocations else {
                throw RuntimeError.missingFeature(device: caps.deviceName, feature: "fp16 arithmetic and \(shared) bytes of shared memory (emulated coopmat2 convolution tile \(t))")
            }
        } else {
            guard c2.supported(caps), let shape = GEMMCoopmat2.shape(caps), let limits = caps.cooperativeMatrix2 else {
                throw RuntimeError.missingFeature(device: caps.deviceName, feature: "VK_NV_cooperative_matrix2 (workgroup scope, flexible dimensions, per-element operations, tensor addressing, block loads; fp16 x fp16 -> fp32 and fp16) on Vulkan 1.3\(c2.built ? "" : ", in a build with glslang 15 (Benchmarks/glslang-newer.sh)")")
            }
            t = try tile ?? c2.tile()
            guard t.fits(shape, maxDimension: limits.maxDimension), !gather || c2.slicesFit(t, caps) else {
                throw RuntimeError.invalidArgument("\(op): coopmat2 tile \(t) does not fit \(caps.deviceName)'s shape \(shape) (dimensions up to \(limits.maxDimension)) or its shared memory (\(c2.sliceBytes(t)) bytes of input slices, \(caps.maxComputeSharedMemorySize) bytes less \(limits.reservedSharedMemory) reserved)")
            }
            invocations = shape.workgroupInvocations
        }
        guard !gather || c2.splits(t, invocations: invocations) else {
            throw RuntimeError.invalidArgument("\(op): coopmat2 tile \(t): BN / 8 must divide the workgroup size (\(invocations))")
        }
        guard c2.eligible(x: x, cache: cache, weight: weight, out: out, residual: residual, batch: g.batch, outputsPerBatch: g.cout * g.n) else {
            throw RuntimeError.invalidArgument("\(op): the coopmat2 convolution needs an f32 or f16 output, the cache in x's dtype and 16-byte aligned weights, outputs and residual")
        }
        guard gather || c2.rowsEligible(strideW: g.sw, x: x, cache: cache, batch: g.batch, inputsPerBatch: g.cin * g.t * g.h * g.w,
                                        cachePerBatch: g.cin * g.tc * g.h * g.w) else {
            throw RuntimeError.invalidArgument("\(op): the coopmat2 rows convolution needs width stride 1 and 16-byte aligned x and cache (every batch)")
        }
        let constants: [UInt32] = [
            UInt32(t.bm), UInt32(t.bn), UInt32(t.bk), 0, 0, UInt32(invocations),
            x.dtype.code, weight.dtype.code, out.dtype.code, bias?.dtype.code ?? 0, residual?.dtype.code ?? 0,
            bias != nil ? 1 : 0, residual != nil ? 1 : 0, UInt32(g.kt), UInt32(g.kh), UInt32(g.kw),
        ]
        // gather: tiles of BN voxels in output order; rows: BN voxels of one output row.
        let nTiles = gather ? (g.n + t.bn - 1) / t.bn : g.to * g.ho * ((g.wo + t.bn - 1) / t.bn)
        let groups = (min(nTiles, maxGroups(0)), (g.cout + t.bm - 1) / t.bm, min(g.batch, maxGroups(2)))
        let kernel: Kernel
        switch (variant, emulated) {
        case (.gather, false): kernel = Kernel(name: "conv3d_cm2", spirv: SPIRV.conv3d_cm2)
        case (.gather, true): kernel = Kernel(name: "conv3d_cm2_emulated", spirv: SPIRV.conv3d_cm2_emulated)
        case (.rows, false): kernel = Kernel(name: "conv3d_rows_cm2", spirv: SPIRV.conv3d_rows_cm2)
        case (.rows, true): kernel = Kernel(name: "conv3d_rows_cm2_emulated", spirv: SPIRV.conv3d_rows_cm2_emulated)
        }
        try dispatch(kernel, constants: constants,
                     push: Conv3DGeometry.push(g, x: x, weight: weight, cache: cache, out: out, bias: bias, residual: residual),
                     groups: groups, reads: [x, weight] + [bias, cache, residual].compactMap { $0 }, writes: [out],
                     label: label + " [coopmat2 \(variant.rawValue) \(emulated ? "emulated " : "")\(t)]")
    }
}

extension Device {
    /// Whether this device runs the coopmat2 convolutions (`WAN_CONV_CM2=1` or `=rows` selects one).
    public var supportsCoopmat2Conv3D: Bool { vulkan.map { Conv3DCoopmat2.supported($0.capabilities) } ?? false }
}
