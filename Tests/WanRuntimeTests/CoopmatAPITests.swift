import Foundation
import Testing
@testable import WanRuntime
import WanShaders

/// The choice of cooperative-matrix extension (`CoopmatAPI`: NV, or KHR in a build with glslang 13) and the
/// tensor-core throughput probe (`coopmat_peak.comp`), native where the device has tensor cores and emulated
/// everywhere.
@Suite struct CoopmatAPITests {
    /// `WAN_COOPMAT_API` values: none, nv, khr (any case); anything else is a clear error.
    @Test func preferenceParsing() throws {
        #expect(try CoopmatAPI.preference(nil) == nil)
        #expect(try CoopmatAPI.preference("") == nil)
        #expect(try CoopmatAPI.preference("nv") == .nv)
        #expect(try CoopmatAPI.preference("KHR") == .khr)
        for bad in ["amd", "nv2", " khr"] {
            #expect(throws: RuntimeError.self, "\(bad)") { try CoopmatAPI.preference(bad) }
        }
    }

    /// What makes an API available (a 16x16x16 f16·f16→f32 subgroup shape, subgroups of 32, fp16) and the choice:
    /// NV first, KHR only where built, an explicit preference or nothing.
    @Test func availabilityAndChoice() throws {
        guard let d = try TestDevices.vulkan(), var caps = d.vulkan?.capabilities else { return }
        let shape = Capabilities.MatrixShape(m: 16, n: 16, k: 16, a: "f16", b: "f16", c: "f32", result: "f32", scope: "subgroup")
        caps.subgroupSize = 32
        caps.shaderFloat16 = true
        caps.nvCooperativeMatrix = true
        caps.cooperativeMatrixShapesNV = [shape]
        caps.khrCooperativeMatrix = true
        caps.cooperativeMatrixShapesKHR = [shape]
        #expect(CoopmatAPI.nv.available(caps) && CoopmatAPI.khr.available(caps))
        #expect(CoopmatAPI.chosen(caps, preference: nil) == .nv)
        #expect(CoopmatAPI.chosen(caps, preference: .nv) == .nv)
        #expect(CoopmatAPI.chosen(caps, preference: .khr) == (CoopmatAPI.khr.built ? .khr : nil))
        var onlyKHR = caps
        onlyKHR.nvCooperativeMatrix = false
        #expect(CoopmatAPI.chosen(onlyKHR, preference: nil) == (CoopmatAPI.khr.built ? .khr : nil))
        #expect(CoopmatAPI.chosen(onlyKHR, preference: .nv) == nil)
        var other = caps
        other.cooperativeMatrixShapesNV = [Capabilities.MatrixShape(m: 16, n: 8, k: 16, a: "f16", b: "f16", c: "f32", result: "f32", scope: "subgroup")]
        #expect(!CoopmatAPI.nv.available(other), "the shaders need 16x16x16")
        other = caps
        other.cooperativeMatrixShapesNV = [Capabilities.MatrixShape(m: 16, n: 16, k: 16, a: "f16", b: "f16", c: "f16", result: "f16", scope: "subgroup")]
        #expect(!CoopmatAPI.nv.available(other), "the shaders accumulate in fp32")
        other = caps
        other.subgroupSize = 64
        #expect(!CoopmatAPI.nv.available(other) && !CoopmatAPI.khr.available(other), "the shaders need subgroups of 32")
        other = caps
        other.shaderFloat16 = false
        #expect(!CoopmatAPI.nv.available(other))
        // The NV shaders are always built; the KHR ones either hold SPIR-V or are empty (not built).
        #expect(CoopmatAPI.nv.built)
        if CoopmatAPI.khr.built {
            let words = Data(base64Encoded: SPIRV.gemm_coopmat_khr).map { $0.prefix(4) }
            #expect(words == Data([0x03, 0x02, 0x23, 0x07]), "SPIR-V magic number")
        }
    }

    /// The probe's result is exact (small-integer inputs): accumulators·(accumulators − 1)/2 (their starting values) +
    /// iterations · accumulators · A·B per subgroup; on every API
    /// the device has, and emulated (both emulated layouts).
    @Test func peakProbe() throws {
        guard let d = try TestDevices.vulkan() else { return }
        var rng = TestRandom(seed: 5)
        let vals = (0..<512).map { _ in Float(Int(rng.floats(1, -4, 4)[0].rounded())) / 4 }
        var ab16 = try d.tensor(vals, shape: [512], dtype: .f16)
        var want = [Double](repeating: 0, count: 256)
        for i in 0..<16 { for j in 0..<16 { for k in 0..<16 { want[i * 16 + j] += Double(vals[i * 16 + k]) * Double(vals[256 + k * 16 + j]) } } }
        func run(api: CoopmatAPI?, emulation: CoopmatEmulation?, groups: Int, subgroups: Int, accumulators: Int, iterations: Int,
                 shared: Int = 0, packed: Bool = false, named: Bool = false) throws {
            let out = try d.empty([groups * subgroups, 16, 16])
            let list = try CommandList(device: d)
            try list.tensorCorePeak(ab: ab16, out: out, groups: groups, subgroups: subgroups, accumulators: accumulators,
                                    iterations: iterations, sharedFragments: shared, packedShared: packed,
                                    namedAccumulators: named, api: api, emulation: emulation)
            try list.run()
            let got = try d.read(out)
            let factor = Double(iterations * accumulators), start = Double(accumulators * (accumulators - 1) / 2)
            var bad = 0
            for (i, g) in got.enumerated() where Double(g) != start + factor * want[i % 256] { bad += 1 }
            #expect(bad == 0, "\(api.map { "\($0)" } ?? "emulated \(emulation!.layout)") \(groups)x\(subgroups) acc \(accumulators) iter \(iterations) shared \(shared)\(packed ? " uvec4" : "")\(named ? " named" : ""): \(bad) wrong values")
        }
        for layout in CoopmatEmulation.Layout.allCases {
            try run(api: nil, emulation: CoopmatEmulation(layout: layout), groups: 3, subgroups: 2, accumulators: 3, iterations: 5)
        }
        try run(api: nil, emulation: CoopmatEmulation(), groups: 1, subgroups: 1, accumulators: 1, iterations: 0)
        // Fragments from shared memory: the GEMM's 4 x 2, and 3 x 1; more rounds than copies.
        try run(api: nil, emulation: CoopmatEmulation(), groups: 2, subgroups: 2, accumulators: 8, iterations: 11, shared: 4)
        try run(api: nil, emulation: CoopmatEmulation(), groups: 1, subgroups: 1, accumulators: 3, iterations: 9, shared: 3)
        try run(api: nil, emulation: CoopmatEmulation(layout: .columns), groups: 2, subgroups: 2, accumulators: 8, iterations: 7,
                shared: 2, packed: true)
        try run(api: nil, emulation: CoopmatEmulation(layout: .nvidiaPermuted), groups: 2, subgroups: 3, accumulators: 8, iterations: 6,
                named: true)
        for api in d.coopmatAPIs {
            try run(api: api, emulation: nil, groups: 7, subgroups: 4, accumulators: 8, iterations: 100)
            try run(api: api, emulation: nil, groups: 7, subgroups: 4, accumulators: 8, iterations: 100, shared: 4)
            try run(api: api, emulation: nil, groups: 7, subgroups: 4, accumulators: 8, iterations: 100, shared: 4, packed: true)
            try run(api: api, emulation: nil, groups: 7, subgroups: 4, accumulators: 8, iterations: 100, named: true)
        }
        #expect(throws: RuntimeError.self, "3 shared fragments do not divide 8 accumulators") {
            try run(api: nil, emulation: CoopmatEmulation(), groups: 1, subgroups: 1, accumulators: 8, iterations: 1, shared: 3)
        }
        #expect(throws: RuntimeError.self, "named accumulators are 8") {
            try run(api: nil, emulation: CoopmatEmulation(), groups: 1, subgroups: 1, accumulators: 4, iterations: 1, named: true)
        }
        if d.coopmatAPIs.isEmpty {
            let out = try d.empty([4, 16, 16])
            #expect(throws: RuntimeError.self) {
                try CommandList(device: d).tensorCorePeak(ab: ab16, out: out, groups: 1, iterations: 1)
            }
        }
        // Bad arguments: wrong ab, wrong out size.
        ab16 = try d.tensor(vals, shape: [512])
        let out = try d.empty([4, 16, 16])
        #expect(throws: RuntimeError.self) {
            try CommandList(device: d).tensorCorePeak(ab: ab16, out: out, groups: 1, subgroups: 4, accumulators: 1, iterations: 1,
                                                      api: nil, emulation: CoopmatEmulation())
        }
        TestDevices.checkValidation()
    }

    /// The accumulator-layout probe: the emulation's NVIDIA layouts are recognised with the element bit that picks
    /// the row, the other one is not; on a device with NV matrices the probe ran at open and agrees with a fresh run.
    @Test func accumulatorLayoutProbe() throws {
        guard let d = try TestDevices.vulkan() else { return }
        for layout in CoopmatEmulation.Layout.allCases {
            let out = try CoopmatLayoutProbe.run(d, emulation: CoopmatEmulation(layout: layout))
            #expect(CoopmatLayoutProbe.rowBit(out) == layout.rowBit, "\(layout)")
        }
        // The check itself: every lane's 8 elements, rows and count.
        let nv = try CoopmatLayoutProbe.run(d, emulation: CoopmatEmulation(layout: .nvidia))
        var swapped = nv
        swapped.swapAt(0, 2)
        #expect(CoopmatLayoutProbe.rowBit(swapped) == nil, "elements 0 and 2 of lane 0 swapped: no bit picks the row")
        var short = nv
        short[256 + 5] = 4
        #expect(CoopmatLayoutProbe.rowBit(short) == nil)
        #expect(CoopmatLayoutProbe.rowBit(Array(nv.prefix(100))) == nil)
        if let v = d.vulkan, CoopmatAPI.nv.available(v.capabilities) {
            let native = try CoopmatLayoutProbe.run(d, emulation: nil)
            #expect(CoopmatLayoutProbe.rowBit(native) == v.accumulatorRowBit)
            print("note: \(v.capabilities.deviceName): NV accumulator rows \(v.accumulatorRowBit.map { "in NVIDIA's mma layout, element bit \($0) picks the row" } ?? "in another layout"); lane 0 holds \(native.prefix(8)), lane 5 \(native[40..<48])")
        } else {
            #expect(throws: RuntimeError.self) { try CoopmatLayoutProbe.run(d, emulation: nil) }
            #expect(!d.supportsRegisterSoftmaxAttention)
        }
        TestDevices.checkValidation()
    }
}
