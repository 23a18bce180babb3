import WanShaders

extension CommandList {
    /// The tensor cores' throughput on their own (`coopmat_peak.comp`): `groups` workgroups of `subgroups` subgroups,
    /// each loading one 16×16 fp16 A and B (`ab`: A then B, 512 f16, row-major) and running `iterations` rounds of
    /// `accumulators` independent 16×16×16 products from registers (accumulator j starting at j); `out`
    /// ([groups·subgroups, 16, 16] f32) receives per subgroup accumulators·(accumulators − 1)/2 + iterations·accumulators·(A·B). FLOPs: groups·subgroups·iterations·accumulators·8192. `api` picks
    /// the cooperative-matrix extension (nil: the device's choice, `CoopmatAPI`). With `sharedFragments` m > 0 every
    /// round first loads m A and accumulators/m B fragments from shared memory and multiplies each A with each B (the
    /// GEMM's inner loop without staging: m = 4 with 8 accumulators is its 64x32 subgroup tile); `packedShared` loads
    /// them from a uvec4 array of packed halves (as the GEMM and the convolution do) instead of a float16_t array.
    /// `namedAccumulators` runs the register-only loop with 8 accumulators as named variables, every shape fixed at
    /// compile time (no arrays sized by specialization constants, as all the tensor-core kernels use).
    public func tensorCorePeak(ab: Tensor, out: Tensor, groups: Int, subgroups: Int = 4, accumulators: Int = 8,
                               iterations: Int, sharedFragments: Int = 0, packedShared: Bool = false,
                               namedAccumulators: Bool = false, api: CoopmatAPI? = nil) throws {
        try tensorCorePeak(ab: ab, out: out, groups: groups, subgroups: subgroups, accumulators: accumulators,
                           iterations: iterations, sharedFragments: sharedFragments, packedShared: packedShared,
                           namedAccumulators: namedAccumulators, api: api, emulation: nil)
    }

    /// `tensorCorePeak`, or with `emulation` its shader on emulated cooperative matrices (tests).
    func tensorCorePeak(ab: Tensor, out: Tensor, groups: Int, subgroups: Int, accumulators: Int, iterations: Int,
                        sharedFragments: Int = 0, packedShared: Bool = false, namedAccumulators: Bool = false,
                        api: CoopmatAPI?, emulation: CoopmatEmulation?) throws {
        let op = "tensorCorePeak"
        try checkDevice([ab, out], op: op)
        guard ab.dtype == .f16, ab.count == 512, ab.isContiguous else {
            throw RuntimeError.invalidArgument("\(op): ab must be 512 contiguous f16 values (A then B), got \(ab.dtype) \(ab.shape)")
        }
        guard (1...16).contains(subgroups), (1...16).contains(accumulators), groups >= 1, iterations >= 0,
              iterations < Int(UInt32.max) else {
            throw RuntimeError.invalidArgument("\(op): 1-16 subgroups and accumulators, at least one group, iterations ≥ 0")
        }
        guard sharedFragments >= 0, sharedFragments == 0 || accumulators % sharedFragments == 0 else {
            throw RuntimeError.invalidArgument("\(op): shared fragments (\(sharedFragments)) must divide the accumulators (\(accumulators))")
        }
        guard !namedAccumulators || (accumulators == 8 && sharedFragments == 0) else {
            throw RuntimeError.invalidArgument("\(op): named accumulators are 8, from registers only (got \(accumulators), \(sharedFragments) shared fragments)")
        }
        guard out.dtype == .f32, out.isContiguous, out.count == groups * subgroups * 256 else {
            throw RuntimeError.shapeMismatch("\(op): out must be \(groups * subgroups * 256) contiguous f32 values, got \(out.dtype) \(out.shape)")
        }
        try checkOutput(out, notAliasing: [ab], op: op)
        guard case let .vulkan(r) = impl else {
            throw RuntimeError.invalidArgument("\(op): the tensor-core probe runs on a Vulkan device")
        }
        let caps = r.device.capabilities
        let kernel: Kernel, name: String
        if emulation != nil {
            guard CoopmatEmulation.supported(caps) else {
                throw RuntimeError.missingFeature(device: caps.deviceName, feature: "fp16 arithmetic (emulated cooperative matrices)")
            }
            kernel = namedAccumulators ? Kernel(name: "coopmat_peak_named_emulated", spirv: SPIRV.coopmat_peak_named_emulated)
                                       : Kernel(name: "coopmat_peak_emulated", spirv: SPIRV.coopmat_peak_emulated)
            name = "emulated"
        } else {
            try CoopmatAPI.checkEnvironment()
            guard let chosen = api ?? CoopmatAPI.chosen(caps), chosen.built, chosen.available(caps) else {
                throw RuntimeError.missingFeature(device: caps.deviceName,
                                                  feature: "cooperative matrices 16x16x16 f16->f32 with subgroup size 32 on \(api.map { "VK_\($0.rawValue.uppercased())_cooperative_matrix (\($0.built ? "built" : "not built"))" } ?? "any API")")
            }
            switch (chosen, namedAccumulators) {
            case (.nv, false): kernel = Kernel(name: "coopmat_peak", spirv: SPIRV.coopmat_peak)
            case (.nv, true): kernel = Kernel(name: "coopmat_peak_named", spirv: SPIRV.coopmat_peak_named)
            case (.khr, false): kernel = Kernel(name: "coopmat_peak_khr", spirv: SPIRV.coopmat_peak_khr)
            case (.khr, true): kernel = Kernel(name: "coopmat_peak_named_khr", spirv: SPIRV.coopmat_peak_named_khr)
            }
            name = chosen.rawValue
        }
        let threads = 32 * subgroups
        // The shader's shared memory: 4 copies each of A and B (16 rows of 24 halves) as float16_t and again as uvec4,
        // and 256 floats of output tile per subgroup.
        let fragmentBytes = 2 * (2 * 4 * 16 * 24 * 2)
        guard threads <= caps.maxComputeWorkGroupInvocations, threads <= caps.maxComputeWorkGroupSize[0],
              fragmentBytes + threads * 8 * 4 + (emulation != nil ? CoopmatEmulation.sharedBytes(threads: threads) : 0)
                <= caps.maxComputeSharedMemorySize else {
            throw RuntimeError.invalidArgument("\(op): \(subgroups) subgroups do not fit \(caps.deviceName)")
        }
        guard groups <= caps.maxComputeWorkGroupCount[0] else {
            throw RuntimeError.invalidArgument("\(op): \(groups) groups exceed the device's limit \(caps.maxComputeWorkGroupCount[0])")
        }
        var p = PushConstants()
        p.address(ab)
        p.address(out)
        p.u32(iterations)
        try r.dispatch(kernel, constants: [UInt32(threads), UInt32(accumulators), UInt32(sharedFragments), packedShared ? 1 : 0]
                        + (emulation.map { [$0.layout.rawValue] } ?? []),
                       push: p, groups: (groups, 1, 1), reads: [ab], writes: [out],
                       label: "tensor-core peak \(name) \(groups)x\(subgroups) subgroups, \(accumulators)\(namedAccumulators ? " named" : "") accumulators, \(iterations) rounds"
                        + (sharedFragments > 0 ? ", \(sharedFragments)x\(accumulators / sharedFragments) fragments from shared memory\(packedShared ? " (uvec4)" : "")" : ""))
    }
}

extension Device {
    /// The cooperative-matrix APIs this build and device can run the tensor-core shaders on (`CoopmatAPI`).
    public var coopmatAPIs: [CoopmatAPI] {
        vulkan.map { v in CoopmatAPI.allCases.filter { $0.built && $0.available(v.capabilities) } } ?? []
    }
}
