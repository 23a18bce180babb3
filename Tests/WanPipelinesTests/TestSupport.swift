import Foundation
import WanRuntime

/// What the pipeline tests share: the Vulkan test device and a relative error.
enum PipelineTestSupport {
    /// Vulkan device 0, or nil when there is none and none is required (`CI` or `WAN_REQUIRE_VULKAN=1` make a
    /// missing device an error).
    static func vulkan() throws -> Device? {
        let env = ProcessInfo.processInfo.environment
        let required = (env["CI"].map { !$0.isEmpty && $0 != "0" && $0 != "false" } ?? false) || env["WAN_REQUIRE_VULKAN"] == "1"
        do { return try Device.vulkan(0) } catch {
            if required { throw error }
            print("SKIP Vulkan test: \(error)")
            return nil
        }
    }

    /// The CPU and, when present, the Vulkan device.
    static func devices() throws -> [Device] {
        [Device.cpu()] + (try vulkan().map { [$0] } ?? [])
    }

    /// max |a − b| / max |b| (infinite when the lengths differ).
    static func relError(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count else { return .infinity }
        var d = 0.0, s = 1e-30
        for i in a.indices { d = max(d, Double(abs(a[i] - b[i]))); s = max(s, Double(abs(b[i]))) }
        return d / s
    }
}
