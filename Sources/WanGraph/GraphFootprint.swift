import WanRuntime

/// What a graph needs in device memory once compiled, known without compiling it: the activation arenas
/// of its memory plan, the inputs `compile` allocates, the tensors its parameters reference, and the weights
/// declared as placeholders (shape and dtype only). Built by `Graph.footprint(maxArenaBytes:)`.
public struct GraphFootprint: Sendable, CustomStringConvertible {
    /// The activation memory plan (the arenas `compile` allocates).
    public var plan: MemoryPlan
    /// Bytes of the inputs `compile` allocates (each rounded up to `MemoryPlan.alignment`, as device memory is).
    public var inputBytes: Int
    /// Bytes of the real tensors the graph's parameters reference in device memory (each storage counted once):
    /// weights given as tensors, and tables a model builds with its graph (RoPE, relative position buckets).
    public var parameterBytes: Int
    /// Bytes of the real parameter tensors kept in host memory (streamed through the arenas each run).
    public var hostParameterBytes: Int
    /// Bytes of the placeholder weights that stay in device memory (each name counted once).
    public var placeholderBytes: Int
    /// Bytes of the placeholder weights kept in host memory (streamed through the arenas each run).
    public var hostPlaceholderBytes: Int

    /// Bytes of all activation arenas.
    public var activationBytes: Int { plan.totalBytes }
    /// Device memory the compiled graph owns besides its arenas and weights: its inputs.
    public var ownedBytes: Int { inputBytes }
    /// Everything in device memory while the graph is compiled: arenas, inputs, parameters and placeholders.
    public var deviceBytes: Int { activationBytes + inputBytes + parameterBytes + placeholderBytes }

    public var description: String {
        func mib(_ b: Int) -> String { String(Double(b * 10 / 1_048_576) / 10) }
        return "activations \(mib(activationBytes)) MiB, inputs \(mib(inputBytes)) MiB, parameters \(mib(parameterBytes)) MiB"
            + " (+ \(mib(hostParameterBytes)) MiB in host memory), placeholders \(mib(placeholderBytes)) MiB"
            + " (+ \(mib(hostPlaceholderBytes)) MiB in host memory)"
    }
}

extension Graph {
    /// A weight declared by `shape` and `dtype` only, for planning memory without allocating it: the graph
    /// builds, infers shapes and plans (`planMemory`, `footprint`) as with `parameter`, but `compile` refuses
    /// it. A `.host` placeholder is streamed as a `.host` parameter is: copied into planned device memory right
    /// before its use, so its copy takes arena memory.
    public func placeholder(_ name: String, shape: [Int], dtype: DType, residence: MemoryResidence = .device) throws -> Value {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw RuntimeError.invalidArgument("graph: placeholder '\(name)' shape \(shape)") }
        values.append(Info(shape: shape, dtype: dtype, kind: .placeholder(residence), label: name))
        let v = Value(id: values.count - 1)
        return residence == .host ? streamed(v, name) : v
    }

    /// Whether `v` is a placeholder (declared by shape and dtype only).
    func isPlaceholder(_ v: Value) -> Bool {
        if case .placeholder = values[v.id].kind { return true }
        return false
    }

    /// The activation memory plan `compile` would make, without allocating anything: every intermediate's
    /// arena and offset, at most `maxArenaBytes` per arena (`compile` uses the device's largest allocation).
    /// Works on graphs with placeholders.
    public func planMemory(maxArenaBytes: Int = Int.max) throws -> MemoryPlan {
        guard maxArenaBytes > 0 else { throw RuntimeError.invalidArgument("planMemory: maxArenaBytes \(maxArenaBytes) must be positive") }
        return try MemoryPlan.plan(self, maxArenaBytes: maxArenaBytes)
    }

    /// The graph's device memory once compiled (see `GraphFootprint`), without allocating anything.
    public func footprint(maxArenaBytes: Int = Int.max) throws -> GraphFootprint {
        let plan = try planMemory(maxArenaBytes: maxArenaBytes)
        func aligned(_ bytes: Int) -> Int {
            max(MemoryPlan.alignment, (bytes + MemoryPlan.alignment - 1) / MemoryPlan.alignment * MemoryPlan.alignment)
        }
        var inputs = 0, parameters = 0, hostParameters = 0, placeholders = 0, hostPlaceholders = 0
        var storages = Set<ObjectIdentifier>(), names = Set<String>()
        for info in values {
            switch info.kind {
            case .input:
                inputs += aligned(Shape.count(info.shape) * info.dtype.size)
            case let .parameter(t):
                guard storages.insert(ObjectIdentifier(t.storage)).inserted else { continue }
                if t.storage.residence == .host { hostParameters += t.storage.byteCount } else { parameters += t.storage.byteCount }
            case let .placeholder(residence):
                guard names.insert(info.label).inserted else { continue }
                let bytes = Shape.count(info.shape) * info.dtype.size
                if residence == .host { hostPlaceholders += bytes } else { placeholders += bytes }
            case .intermediate, .view:
                continue
            }
        }
        return GraphFootprint(plan: plan, inputBytes: inputs, parameterBytes: parameters, hostParameterBytes: hostParameters,
                              placeholderBytes: placeholders, hostPlaceholderBytes: hostPlaceholders)
    }
}
