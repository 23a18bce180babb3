import WanShaders

/// Which elements of a 16×16 fp32 accumulator fragment each lane holds, read from the device (`coopmat_layout.comp`):
/// the cooperative-matrix extensions leave it to the driver, and the register-softmax attention
/// (`attention_coopmat_rs`) relies on NVIDIA's mma layout, so it runs only where this probe finds that layout.
enum CoopmatLayoutProbe {
    /// The row of element `i` of lane `lane` in NVIDIA's mma layout with element bit `rowBit` picking the row: lanes
    /// 4r … 4r+3 hold rows r and r + 8 (the register softmax reduces a row over those four lanes).
    static func nvRow(lane: Int, element i: Int, rowBit: Int) -> Int { lane / 4 + 8 * ((i >> rowBit) & 1) }

    /// The element bit (0, 1 or 2) that picks the row in the probe's output (per lane 8 values r·16 + c, then the
    /// element counts) when it shows NVIDIA's rows (8 elements a lane, rows l/4 and l/4 + 8); nil otherwise.
    static func rowBit(_ out: [Float]) -> Int? {
        guard out.count == 288, (0..<32).allSatisfy({ out[256 + $0] == 8 }) else { return nil }
        return (0..<3).first { bit in
            (0..<32).allSatisfy { lane in
                (0..<8).allSatisfy { i in
                    let v = out[lane * 8 + i]
                    return v >= 0 && v < 256 && v == v.rounded() && Int(v) / 16 == nvRow(lane: lane, element: i, rowBit: bit)
                }
            }
        }
    }

    /// Runs the probe on `device`, natively (NV cooperative matrices) or emulated; its raw output.
    static func run(_ device: Device, emulation: CoopmatEmulation?) throws -> [Float] {
        guard case let .vulkan(v) = device.backend else {
            throw RuntimeError.invalidArgument("coopmat layout probe: needs a Vulkan device")
        }
        let caps = v.capabilities
        if emulation == nil {
            guard CoopmatAPI.nv.available(caps) else {
                throw RuntimeError.missingFeature(device: caps.deviceName, feature: "VK_NV_cooperative_matrix 16x16x16 f16->f32 with subgroup size 32")
            }
        } else {
            guard CoopmatEmulation.supported(caps) else {
                throw RuntimeError.missingFeature(device: caps.deviceName, feature: "fp16 arithmetic (emulated cooperative matrices)")
            }
        }
        let out = try device.empty([288])
        let list = try CommandList(device: device)
        guard case let .vulkan(r) = list.impl else { return [] }
        var p = PushConstants()
        p.address(out)
        let kernel = emulation == nil ? Kernel(name: "coopmat_layout", spirv: SPIRV.coopmat_layout)
                                      : Kernel(name: "coopmat_layout_emulated", spirv: SPIRV.coopmat_layout_emulated)
        try r.dispatch(kernel, constants: [32] + (emulation.map { [$0.layout.rawValue] } ?? []), push: p, groups: (1, 1, 1),
                       reads: [], writes: [out], label: "coopmat layout probe")
        try list.run()
        return try device.read(out)
    }
}
