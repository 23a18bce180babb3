import Foundation
import WanShaders

/// The tensor-core convolution variant (`conv3d_coopmat.comp`: implicit GEMM on 16×16×16 cooperative matrices of the
/// `CoopmatAPI`, fp16 operands, fp32 accumulation): used where the device has them for 16-bit inputs and weights, or
/// f32 ones when the caller allows fp16 compute. Tiles as the tensor-core GEMM's (`BMxBNxBKxWMxWN`, M output channels
/// by N output voxels). As there, bf16 and f32 values beyond fp16's range (±65504) become infinite when staged.
enum Conv3DCoopmat {
    /// `WAN_CONV_COOPMAT_TILE` when set, else the tensor-core GEMM's default tile.
    static func tile() throws -> GEMMCoopmat.Tile {
        guard let env = getenv("WAN_CONV_COOPMAT_TILE"), env.pointee != 0 else { return GEMMCoopmat.defaultTile }
        return try GEMMCoopmat.Tile(parsing: String(cString: env))
    }

    /// Whether the device can run the variant.
    static func supported(_ caps: Capabilities) -> Bool { GEMMCoopmat.supported(caps) }

    /// The policy: `WAN_CONV_COOPMAT=0` never, `=1` whenever supported; otherwise when supported and either x and the
    /// weights are 16-bit or the caller allowed fp16 compute. A cache of another dtype than x keeps the tiled kernel
    /// (the shader gathers both in one encoding).
    static func chosen(_ caps: Capabilities, x: DType, weight: DType, cache: DType?, fp16Compute: Bool = false) -> Bool {
        supported(caps) && wanted(x: x, weight: weight, cache: cache, fp16Compute: fp16Compute)
    }

    /// The policy on a device that has tensor cores.
    static func wanted(x: DType, weight: DType, cache: DType?, fp16Compute: Bool) -> Bool {
        guard cache.map({ $0 == x }) ?? true else { return false }
        if let env = getenv("WAN_CONV_COOPMAT"), env.pointee != 0 { return String(cString: env) == "1" }
        return fp16Compute || (x != .f32 && weight != .f32)
    }

    /// Tests of whole models on devices without tensor cores: while bound (`$emulatedForTests.withValue`), every
    /// Vulkan conv3d the policy would put on tensor cores runs the emulated kernel with this emulation and tile.
    @TaskLocal static var emulatedForTests: (emulation: CoopmatEmulation, tile: GEMMCoopmat.Tile)? = nil
}

extension VulkanRecorder {
    /// Records the tensor-core convolution (natively, or with `emulation` on emulated cooperative matrices) for a
    /// call `CommandList.conv3d` has validated.
    func conv3dCoopmat(_ g: Conv3DGeometry, x: Tensor, weight: Tensor, bias: Tensor?, cache: Tensor?, residual: Tensor?,
                       out: Tensor, tile: GEMMCoopmat.Tile?, emulation: CoopmatEmulation?, label: String) throws {
        let op = "conv3d"
        let caps = device.capabilities
        let emulated = emulation != nil
        guard emulated ? CoopmatEmulation.supported(caps) : Conv3DCoopmat.supported(caps) else {
            throw RuntimeError.missingFeature(device: caps.deviceName, feature: emulated ? "fp16 arithmetic (emulated cooperative matrices)"
                                              : "cooperative matrices (VK_NV_cooperative_matrix, or VK_KHR_cooperative_matrix in a build with the newer glslang: Benchmarks/glslang-newer.sh) 16x16x16 f16->f32 with subgroup size 32")
        }
        if let cache, cache.dtype != x.dtype {
            throw RuntimeError.unsupportedDType("\(op): the tensor-core convolution needs the cache in x's dtype (\(x.dtype)), got \(cache.dtype)")
        }
        let t = try tile ?? Conv3DCoopmat.tile()
        guard t.fits(caps, emulated: emulated) else {
            throw RuntimeError.invalidArgument("\(op): coopmat tile \(t) (\(t.threads) threads, \(t.sharedBytes) bytes of shared memory\(emulated ? " and the emulation's" : "")) does not fit \(caps.deviceName)")
        }
        let api = CoopmatAPI.chosen(caps) ?? .nv
        let kernel: Kernel
        switch (emulated, api) {
        case (true, _): kernel = Kernel(name: "conv3d_coopmat_emulated", spirv: SPIRV.conv3d_coopmat_emulated)
        case (false, .nv): kernel = Kernel(name: "conv3d_coopmat", spirv: SPIRV.conv3d_coopmat)
        case (false, .khr): kernel = Kernel(name: "conv3d_coopmat_khr", spirv: SPIRV.conv3d_coopmat_khr)
        }
        let vecW = g.k % 8 == 0 && weight.deviceAddress % UInt64(min(16, 8 * weight.dtype.size)) == 0
        let constants: [UInt32] = [
            UInt32(t.bm), UInt32(t.bn), UInt32(t.bk), UInt32(t.wm), UInt32(t.wn), UInt32(t.threads),
            x.dtype.code, weight.dtype.code, out.dtype.code, bias?.dtype.code ?? 0, residual?.dtype.code ?? 0,
            bias != nil ? 1 : 0, residual != nil ? 1 : 0, UInt32(g.kt), UInt32(g.kh), UInt32(g.kw), vecW ? 1 : 0,
        ] + (emulation.map { [$0.layout.rawValue] } ?? [])
        let nTiles = (g.n + t.bn - 1) / t.bn
        let groups = (min(nTiles, maxGroups(0)), (g.cout + t.bm - 1) / t.bm,
                      min(g.batch, maxGroups(2)))
        try dispatch(kernel, constants: constants, push: Conv3DGeometry.push(g, x: x, weight: weight, cache: cache, out: out, bias: bias, residual: residual),
                     groups: groups, reads: [x, weight] + [bias, cache, residual].compactMap { $0 }, writes: [out],
                     label: label + " [coopmat \(emulated ? "emulated" : api.rawValue) \(t)]")
    }
}

extension Device {
    /// Whether `conv3d` of `x` and `weight` dtypes (with a cache of `cache`'s) runs on tensor cores here (the policy,
    /// `WAN_CONV_COOPMAT` included).
    public func conv3dUsesTensorCores(x: DType, weight: DType, cache: DType? = nil, fp16Compute: Bool = false) -> Bool {
        vulkan.map { Conv3DCoopmat.chosen($0.capabilities, x: x, weight: weight, cache: cache, fp16Compute: fp16Compute) } ?? false
    }
}
