import WanRuntime

/// A graph compiled for one device: input tensors the caller fills, activation arenas, and the whole
/// graph recorded once into a command list that `run()` replays.
public final class CompiledGraph: @unchecked Sendable {
    public let device: Device
    /// The activation memory plan.
    public let plan: MemoryPlan
    let list: CommandList
    let inputs: [String: Tensor]
    let outputs: [String: Tensor]
    let arenas: [Tensor]

    init(graph g: Graph, device: Device, maxArenaBytes: Int?, profile: Bool) throws {
        self.device = device
        if let id = g.values.indices.first(where: { g.isPlaceholder(Graph.Value(id: $0)) }) {
            throw RuntimeError.invalidArgument("graph parameter %\(id) '\(g.values[id].label)' is a placeholder (shape and dtype only): plan it with planMemory; compiling needs its tensor")
        }
        let limit = maxArenaBytes ?? (device.vulkan.map { min($0.capabilities.maxMemoryAllocationSize, $0.capabilities.maxBufferSize) } ?? Int.max)
        plan = try MemoryPlan.plan(g, maxArenaBytes: limit)
        arenas = try plan.arenaBytes.map { try device.empty([$0], dtype: .u8) }
        var tensors: [Tensor?] = Array(repeating: nil, count: g.values.count)
        var ins: [String: Tensor] = [:]
        for (id, info) in g.values.enumerated() {
            switch info.kind {
            case let .input(name):
                let t = try device.zeros(info.shape, dtype: info.dtype)
                ins[name] = t
                tensors[id] = t
            case let .parameter(t):
                guard t.device === device else {
                    throw RuntimeError.deviceMismatch("graph parameter '\(info.label)' is on \(t.device.name), the graph compiles for \(device.name)")
                }
                tensors[id] = t
            case .placeholder:
                throw RuntimeError.invalidArgument("graph parameter %\(id) '\(info.label)' is a placeholder")
            case .intermediate:
                guard let place = plan.placements[id] else {
                    throw RuntimeError.invalidState("graph value %\(id) (\(info.label)) has no placement")
                }
                tensors[id] = try arenas[place.arena].view(atByteOffset: place.offset, shape: info.shape, dtype: info.dtype)
            case let .view(base, make):
                guard let b = tensors[base.id] else { throw RuntimeError.invalidState("graph view %\(id) before its base") }
                let t = try make(b)
                guard t.shape == info.shape, t.dtype == info.dtype else {
                    throw RuntimeError.shapeMismatch("graph view '\(info.label)' made \(t.dtype) \(t.shape), declared \(info.dtype) \(info.shape)")
                }
                tensors[id] = t
            }
        }
        inputs = ins
        let resolve = { (v: Graph.Value) throws -> Tensor in
            guard let t = tensors[v.id] else { throw RuntimeError.invalidState("graph value \(v) unresolved") }
            return t
        }
        outputs = Dictionary(uniqueKeysWithValues: try g.outputs.map { ($0.0, try resolve($0.1)) })
        list = try CommandList(device: device, profile: profile)
        for node in g.nodes {
            do {
                try node.record(list, try node.inputs.map(resolve), try node.outputs.map(resolve))
            } catch {
                throw RuntimeError.invalidArgument("graph op '\(node.label)': \(error)")
            }
        }
    }

    /// The tensor of input `name`: write it (`device.write` / `tensor(...)` copies) before `run()`.
    public func input(_ name: String) throws -> Tensor {
        guard let t = inputs[name] else { throw RuntimeError.invalidArgument("graph has no input '\(name)' (inputs: \(inputs.keys.sorted()))") }
        return t
    }

    /// Copies `values` (converted to the input's dtype) into input `name`.
    public func setInput(_ name: String, _ values: [Float]) throws {
        let t = try input(name)
        guard values.count == t.count else { throw RuntimeError.shapeMismatch("input '\(name)' holds \(t.count) values, got \(values.count)") }
        try device.write(HostConversion.encode(values, as: t.dtype), to: t)
    }

    /// The tensor of output `name`, valid after `run()` until the next run.
    public func output(_ name: String) throws -> Tensor {
        guard let t = outputs[name] else { throw RuntimeError.invalidArgument("graph has no output '\(name)' (outputs: \(outputs.keys.sorted()))") }
        return t
    }

    /// Replays the recorded graph and waits for it.
    public func run() throws { try list.run() }

    /// Kernels recorded and barriers they needed.
    public var kernelCount: Int { list.kernelCount }
    public var barrierCount: Int { list.barrierCount }

    /// Per-kernel times of the last run (when compiled with `profile`).
    public func timings() throws -> [(label: String, milliseconds: Double)] { try list.timings() }
}

extension Graph {
    /// Plans memory, binds every value to a tensor on `device` and records the graph. `maxArenaBytes`
    /// caps one arena (default: the device's largest allocation).
    public func compile(for device: Device, maxArenaBytes: Int? = nil, profile: Bool = false) throws -> CompiledGraph {
        try CompiledGraph(graph: self, device: device, maxArenaBytes: maxArenaBytes, profile: profile)
    }
}
