import Foundation

/// A recorded sequence of kernels on one device. Kernels are recorded once (each kernel is an
/// extension method in `Kernels/`), then the list is submitted and may be replayed any number of
/// times: on Vulkan it is one command buffer with barriers only where a kernel reads or overwrites
/// what an earlier one wrote; on the CPU it is a list of closures. Tensors used are kept alive by
/// the list. Recording never waits for the device.
public final class CommandList: @unchecked Sendable {
    enum Impl {
        case cpu(CPURecorder)
        case vulkan(VulkanRecorder)
    }

    public let device: Device
    let impl: Impl

    /// A new, empty command list. With `profile`, each kernel is timed (GPU timestamps on Vulkan).
    public init(device: Device, profile: Bool = false) throws {
        self.device = device
        switch device.backend {
        case let .cpu(c): impl = .cpu(CPURecorder(device: c, profile: profile))
        case let .vulkan(v): impl = .vulkan(try VulkanRecorder(device: v, profile: profile))
        }
    }

    /// Number of kernels recorded.
    public var kernelCount: Int {
        switch impl {
        case let .cpu(r): return r.ops.count
        case let .vulkan(r): return r.dispatchCount
        }
    }

    /// Caps the workgroups each later Vulkan dispatch puts on an axis its shader loops over (no effect on the CPU):
    /// a test hook that makes every workgroup of a grid-stride kernel process several tiles on small inputs (1-D grids
    /// spread into y instead, where a tiny cap can exceed the device's y limit: a dispatch error).
    func capGrid(_ groups: Int) {
        if case let .vulkan(r) = impl { r.gridCap = max(1, groups) }
    }

    /// Number of barriers the Vulkan recording needed (0 on the CPU).
    public var barrierCount: Int {
        if case let .vulkan(r) = impl { return r.barrierCount }
        return 0
    }

    /// Ends recording (on first use) and starts execution. On the CPU the work runs before this returns.
    public func submit() throws {
        switch impl {
        case let .cpu(r): try r.run()
        case let .vulkan(r): try r.submit()
        }
    }

    /// Waits for the last submission to finish.
    public func wait() throws {
        if case let .vulkan(r) = impl { try r.wait() }
    }

    /// Submits and waits.
    public func run() throws {
        try submit()
        try wait()
    }

    /// Per-kernel times of the last completed run, in recording order (profiling lists only).
    public func timings() throws -> [(label: String, milliseconds: Double)] {
        switch impl {
        case let .cpu(r): return r.timings
        case let .vulkan(r): return try r.timings()
        }
    }

    // MARK: helpers for kernels

    /// Throws unless every tensor lives on this list's device.
    func checkDevice(_ tensors: [Tensor], op: String) throws {
        for t in tensors where t.device !== device {
            throw RuntimeError.deviceMismatch("\(op): \(t) used in a command list of \(device.name)")
        }
    }

    /// Throws unless the output is dense and does not overlap any input (ops that forbid aliasing).
    func checkOutput(_ out: Tensor, notAliasing inputs: [Tensor], op: String) throws {
        guard out.isContiguous else { throw RuntimeError.invalidArgument("\(op): output must be dense, got strides \(out.strides)") }
        for t in inputs where out.overlaps(t) && !(out.storage === t.storage && out.offset == t.offset && out.shape == t.shape && t.isContiguous) {
            throw RuntimeError.invalidArgument("\(op): output overlaps an input")
        }
    }
}

/// The CPU side of a command list: closures run in order on submit.
final class CPURecorder: @unchecked Sendable {
    let device: CPUDevice
    let profile: Bool
    /// The recorded ops. Each body gets the device as an argument and must not capture the recorder:
    /// the recorder owns the bodies, so a body holding it would keep the list and every tensor it
    /// uses alive forever.
    var ops: [(label: String, body: (CPUDevice) throws -> Void)] = []
    var timings: [(label: String, milliseconds: Double)] = []

    init(device: CPUDevice, profile: Bool) {
        self.device = device
        self.profile = profile
    }

    func enqueue(_ label: String, _ body: @escaping (CPUDevice) throws -> Void) {
        ops.append((label, body))
    }

    func run() throws {
        timings.removeAll()
        for op in ops {
            if profile {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try op.body(device)
                timings.append((op.label, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6))
            } else {
                try op.body(device)
            }
        }
    }
}
