import Foundation

/// What a compute device can do, read once when the device is opened. The kernel policies size tiles
/// and pick variants from this value; `wan devices` prints it.
public struct Capabilities: Sendable, CustomStringConvertible {
    /// One cooperative-matrix shape the driver reports (M×N×K with operand and result types).
    public struct MatrixShape: Sendable, Hashable, CustomStringConvertible {
        public var m, n, k: Int
        public var a, b, c, result: String
        public var scope: String
        public var description: String { "\(m)x\(n)x\(k) A \(a) B \(b) C \(c) R \(result) (\(scope))" }
    }

    /// One flexible-dimension shape of VK_NV_cooperative_matrix2: matrix sizes are multiples of the granularities,
    /// and workgroup-scope shapes need exactly `workgroupInvocations` invocations.
    public struct FlexibleShape: Sendable, Hashable, CustomStringConvertible {
        public var mGranularity, nGranularity, kGranularity: Int
        public var a, b, c, result: String
        public var scope: String
        public var workgroupInvocations: Int
        public var description: String {
            "M%\(mGranularity) N%\(nGranularity) K%\(kGranularity) A \(a) B \(b) C \(c) R \(result) (\(scope)\(scope == "workgroup" ? ", \(workgroupInvocations) invocations" : ""))"
        }
    }

    /// What VK_NV_cooperative_matrix2 offers on a device.
    public struct CooperativeMatrix2: Sendable {
        public var workgroupScope, flexibleDimensions, reductions, conversions: Bool
        public var perElementOperations, tensorAddressing, blockLoads: Bool
        public var maxWorkgroupSize, maxDimension, reservedSharedMemory: Int
        public var shapes: [FlexibleShape]
    }

    public var deviceName: String
    public var deviceType: String
    public var vendorID: UInt32
    public var deviceID: UInt32
    public var driverVersion: UInt32
    public var apiVersion: String
    public var driverName: String
    public var pipelineCacheUUID: [UInt8]

    public var subgroupSize: Int
    public var subgroupOperations: [String]
    public var maxComputeSharedMemorySize: Int
    public var maxComputeWorkGroupInvocations: Int
    public var maxComputeWorkGroupSize: [Int]
    public var maxComputeWorkGroupCount: [Int]
    public var maxPushConstantsSize: Int
    public var maxStorageBufferRange: Int
    public var maxMemoryAllocationSize: Int
    public var maxBufferSize: Int
    public var minStorageBufferOffsetAlignment: Int

    public var shaderFloat16: Bool
    public var shaderInt8: Bool
    public var shaderInt16: Bool
    public var shaderInt64: Bool
    public var shaderFloat64: Bool
    public var storageBuffer16BitAccess: Bool
    public var storageBuffer8BitAccess: Bool
    public var bufferDeviceAddress: Bool
    public var vulkanMemoryModel: Bool
    public var shaderSubgroupExtendedTypes: Bool

    public var nvCooperativeMatrix: Bool
    public var khrCooperativeMatrix: Bool
    public var nvCooperativeMatrix2: Bool
    public var khrShaderBFloat16: Bool
    /// VK_NV_cooperative_matrix2's features, limits and shapes (nil without the extension).
    public var cooperativeMatrix2: CooperativeMatrix2?
    /// Whether the opened device enabled VK_NV_cooperative_matrix2 (its shaders built, the features present).
    public var cooperativeMatrix2Enabled = false
    public var cooperativeMatrixShapesNV: [MatrixShape]
    public var cooperativeMatrixShapesKHR: [MatrixShape]

    /// Device memory heaps: size in bytes and whether device-local.
    public var heaps: [(size: Int, deviceLocal: Bool)]
    /// Whether every device-local memory type is also host-visible (unified memory, e.g. lavapipe).
    public var unifiedMemory: Bool

    public var timestampSupported: Bool
    public var timestampPeriodNs: Double
    public var extensions: [String]

    /// Whether this is a CPU implementation of Vulkan (lavapipe, SwiftShader).
    public var isSoftware: Bool { deviceType == "cpu" }

    /// Total device-local heap bytes.
    public var deviceLocalBytes: Int { heaps.filter(\.deviceLocal).map(\.size).reduce(0, +) }

    public var description: String {
        func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1_048_576) }
        func gib(_ b: Int) -> String { String(format: "%.1f GiB", Double(b) / 1_073_741_824) }
        var lines: [String] = []
        lines.append("\(deviceName) [\(deviceType)] vendor 0x\(String(vendorID, radix: 16)) device 0x\(String(deviceID, radix: 16)) Vulkan \(apiVersion) driver \(driverName)")
        lines.append("  subgroup size \(subgroupSize) (\(subgroupOperations.joined(separator: ",")))")
        lines.append("  shared memory \(maxComputeSharedMemorySize / 1024) KiB, workgroup invocations \(maxComputeWorkGroupInvocations), size \(maxComputeWorkGroupSize.map(String.init).joined(separator: "x")), count \(maxComputeWorkGroupCount.map(String.init).joined(separator: "x"))")
        lines.append("  push constants \(maxPushConstantsSize) B, storage buffer range \(mib(maxStorageBufferRange)), max allocation \(gib(maxMemoryAllocationSize)), max buffer \(gib(maxBufferSize))")
        let flags: [(String, Bool)] = [
            ("fp16", shaderFloat16), ("int8", shaderInt8), ("int16", shaderInt16), ("int64", shaderInt64),
            ("fp64", shaderFloat64), ("16-bit storage", storageBuffer16BitAccess),
            ("8-bit storage", storageBuffer8BitAccess), ("buffer device address", bufferDeviceAddress),
            ("memory model", vulkanMemoryModel), ("subgroup extended types", shaderSubgroupExtendedTypes),
            ("NV coopmat", nvCooperativeMatrix), ("KHR coopmat", khrCooperativeMatrix),
            ("NV coopmat2", nvCooperativeMatrix2), ("bfloat16", khrShaderBFloat16),
            ("timestamps", timestampSupported),
        ]
        lines.append("  features: " + flags.map { "\($0.0) \($0.1 ? "yes" : "no")" }.joined(separator: ", "))
        for (i, h) in heaps.enumerated() {
            lines.append("  heap \(i): \(gib(h.size))\(h.deviceLocal ? " device-local" : "")")
        }
        lines.append("  unified memory: \(unifiedMemory ? "yes" : "no")")
        for s in cooperativeMatrixShapesNV { lines.append("  coopmat NV \(s)") }
        for s in cooperativeMatrixShapesKHR { lines.append("  coopmat KHR \(s)") }
        if let c = cooperativeMatrix2 {
            let f: [(String, Bool)] = [
                ("workgroup scope", c.workgroupScope), ("flexible dimensions", c.flexibleDimensions),
                ("reductions", c.reductions), ("conversions", c.conversions), ("per-element", c.perElementOperations),
                ("tensor addressing", c.tensorAddressing), ("block loads", c.blockLoads),
            ]
            lines.append("  coopmat2: " + f.map { "\($0.0) \($0.1 ? "yes" : "no")" }.joined(separator: ", ")
                         + "; workgroup size <= \(c.maxWorkgroupSize), dimension <= \(c.maxDimension), \(c.reservedSharedMemory) B shared memory reserved")
            for s in c.shapes { lines.append("  coopmat2 \(s)") }
        }
        return lines.joined(separator: "\n")
    }
}
