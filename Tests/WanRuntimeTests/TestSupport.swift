import Foundation
import Testing
@testable import WanRuntime

/// Devices shared by the tests. The Vulkan device is opened once, with the Khronos validation layer
/// when it is installed; in CI (`CI` or `WAN_REQUIRE_VULKAN` set) a missing Vulkan device is an error,
/// elsewhere the Vulkan tests skip with a printed reason.
enum TestDevices {
    static let cpu = Device.cpu()

    private static let opened: Result<Device, Error> = Result {
        let env = ProcessInfo.processInfo.environment
        let index = env["WAN_TEST_VULKAN_DEVICE"].flatMap(Int.init) ?? 0
        return try Device.vulkan(index, validation: env["WAN_VK_VALIDATION"] != "0")
    }

    static var required: Bool {
        let env = ProcessInfo.processInfo.environment
        return (env["CI"].map { !$0.isEmpty && $0 != "0" && $0 != "false" } ?? false) || env["WAN_REQUIRE_VULKAN"] == "1"
    }

    /// The Vulkan test device, or nil (with a printed reason) when there is none and none is required.
    static func vulkan() throws -> Device? {
        switch opened {
        case let .success(d): return d
        case let .failure(e):
            if required { throw e }
            print("SKIP Vulkan test: \(e)")
            return nil
        }
    }

    /// Both devices to run a kernel test on (the CPU always; Vulkan when present).
    static func all() throws -> [Device] {
        if let v = try vulkan() { return [cpu, v] }
        return [cpu]
    }

    /// Records a test issue for every validation message reported since the last call.
    static func checkValidation(sourceLocation: SourceLocation = #_sourceLocation) {
        guard case let .success(d) = opened, let v = d.vulkan else { return }
        let messages = v.instance.validationMessages
        v.instance.clearValidationMessages()
        #expect(messages.isEmpty, "Vulkan validation: \(messages.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }
}

/// Deterministic pseudo-random numbers (SplitMix64) for test inputs.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Float = -1, _ hi: Float = 1) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }

    mutating func floats(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<n).map { _ in uniform(lo, hi) }
    }
}

/// Largest absolute difference divided by the largest reference magnitude (a norm-relative error).
func maxRelativeError(_ actual: [Float], _ expected: [Double]) -> Double {
    precondition(actual.count == expected.count)
    var diff = 0.0, scale = 1e-30
    for i in actual.indices {
        diff = max(diff, abs(Double(actual[i]) - expected[i]))
        scale = max(scale, abs(expected[i]))
    }
    return diff / scale
}

func maxRelativeError(_ actual: [Float], _ expected: [Float]) -> Double {
    maxRelativeError(actual, expected.map(Double.init))
}

/// Rounds values through a dtype as the host conversion does (what a tensor of that dtype holds).
func quantized(_ values: [Float], _ dtype: DType) -> [Float] {
    HostConversion.decode(HostConversion.encode(values, as: dtype), as: dtype)
}

/// Expects `body` to fail with an `invalidArgument` error whose message contains every one of `texts`.
func expectInvalidArgument(containing texts: [String], _ context: String = "", sourceLocation: SourceLocation = #_sourceLocation,
                           _ body: () throws -> Void) {
    let error = #expect(throws: RuntimeError.self, "\(context)", sourceLocation: sourceLocation) { try body() }
    guard case .invalidArgument(let message)? = error else {
        Issue.record("\(context): expected an invalid-argument error, got \(String(describing: error))", sourceLocation: sourceLocation)
        return
    }
    for text in texts { #expect(message.contains(text), "\(message)", sourceLocation: sourceLocation) }
}

/// Tolerance for comparing results stored in `dtype` against a float64 reference.
func tolerance(_ dtype: DType) -> Double {
    switch dtype {
    case .f32: return 1e-5
    case .f16: return 2e-3
    case .bf16: return 1e-2
    default: return 1e-1
    }
}

/// Policy tests of the coopmat2 kernels: a device offering VK_NV_cooperative_matrix2 on paper.
enum TestCoopmat2 {
    /// The workgroup-scope fp16 × fp16 → fp32 shape of 256 invocations, granularities 16.
    static let shape = Capabilities.FlexibleShape(mGranularity: 16, nGranularity: 16, kGranularity: 16, a: "f16", b: "f16", c: "f32",
                                                  result: "f32", scope: "workgroup", workgroupInvocations: 256)
}

extension Capabilities {
    /// These capabilities edited to offer everything the coopmat2 shaders use (Vulkan 1.4, fp16 arithmetic, the memory
    /// model, every coopmat2 feature, workgroups and dimensions up to 256, 1 KiB of shared memory reserved) with `shapes`
    /// listed, each workgroup-scope fp32-accumulating one with its fp16-accumulating twin unless `f16Twins` is false;
    /// the extension not enabled.
    func withCoopmat2(shapes: [FlexibleShape], f16Twins: Bool = true) -> Capabilities {
        let twins = f16Twins ? shapes.filter { $0.scope == "workgroup" && $0.c == "f32" && $0.result == "f32" }
            .map { $0.with(\.c, "f16").with(\.result, "f16") } : []
        var caps = self
        caps.apiVersion = "1.4.312"
        caps.shaderFloat16 = true
        caps.vulkanMemoryModel = true
        caps.maxComputeWorkGroupSize = [1024, 1024, 64]
        caps.cooperativeMatrix2 = CooperativeMatrix2(workgroupScope: true, flexibleDimensions: true, reductions: true, conversions: true,
                                                     perElementOperations: true, tensorAddressing: true, blockLoads: true,
                                                     maxWorkgroupSize: 256, maxDimension: 256, reservedSharedMemory: 1024,
                                                     shapes: shapes + twins)
        caps.cooperativeMatrix2Enabled = false
        return caps
    }
}

extension Capabilities.FlexibleShape {
    /// A copy with one property changed.
    func with<T>(_ key: WritableKeyPath<Self, T>, _ value: T) -> Self {
        var c = self
        c[keyPath: key] = value
        return c
    }
}
