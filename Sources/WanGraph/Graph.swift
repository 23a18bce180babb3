import WanRuntime

/// A static graph of tensor operations, built symbolically (shapes and dtypes known at build time),
/// then compiled for a device: intermediate tensors get offsets in activation arenas planned from
/// their lifetimes, and the whole graph is recorded once into a `CommandList` that every run replays.
///
/// Values are SSA: an op's outputs are new values. Inputs are written by the caller between runs;
/// parameters (weights) are tensors already on the device; views (reshape, permute, slice) cost nothing
/// and keep their base alive as long as they are used.
public final class Graph {
    /// A symbolic tensor of the graph.
    public struct Value: Hashable, Sendable, CustomStringConvertible {
        public let id: Int
        public var description: String { "%\(id)" }
    }

    enum Kind {
        case input(String)
        case parameter(Tensor)
        /// A weight declared by shape and dtype only (`placeholder`): planned, never compiled.
        case placeholder(MemoryResidence)
        case intermediate
        case view(base: Value, make: (Tensor) throws -> Tensor)
    }

    struct Info {
        var shape: [Int]
        var dtype: DType
        var kind: Kind
        var label: String
    }

    struct Node {
        var label: String
        var inputs: [Value]
        var outputs: [Value]
        var record: (CommandList, [Tensor], [Tensor]) throws -> Void
    }

    var values: [Info] = []
    var nodes: [Node] = []
    var outputs: [(String, Value)] = []
    var inputNames: [String: Value] = [:]

    /// Lets the matmuls, attentions and convolutions added from now on round f32 operands to fp16 on devices with tensor
    /// cores (fp32 accumulation; the reduced-precision modes of the models). Off: f32 operands stay exact.
    public var fp16Compute = false

    /// An empty graph.
    public init() {}

    /// Shape of a value.
    public func shape(_ v: Value) -> [Int] { values[v.id].shape }
    /// Element type of a value.
    public func dtype(_ v: Value) -> DType { values[v.id].dtype }

    /// Number of ops.
    public var nodeCount: Int { nodes.count }

    private func add(_ info: Info) -> Value {
        values.append(info)
        return Value(id: values.count - 1)
    }

    private func check(_ v: Value) throws {
        guard v.id >= 0 && v.id < values.count else { throw RuntimeError.invalidArgument("graph: unknown value \(v)") }
    }

    /// A tensor the caller fills before each run (dense, owned by the compiled graph).
    public func input(_ name: String, shape: [Int], dtype: DType = .f32) throws -> Value {
        guard inputNames[name] == nil else { throw RuntimeError.invalidArgument("graph: input '\(name)' declared twice") }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw RuntimeError.invalidArgument("graph: input '\(name)' shape \(shape)") }
        let v = add(Info(shape: shape, dtype: dtype, kind: .input(name), label: name))
        inputNames[name] = v
        return v
    }

    /// A tensor that stays as it is across runs (a weight), already on the device the graph compiles for. A
    /// weight kept in host memory (`MemoryResidence.host`: it did not fit the device's budget) is streamed: the
    /// graph copies it into planned device memory right before its use, each run, and the memory is reused
    /// once its last reader has run.
    public func parameter(_ name: String, _ tensor: Tensor) -> Value {
        let v = add(Info(shape: tensor.shape, dtype: tensor.dtype, kind: .parameter(tensor), label: name))
        return tensor.storage.residence == .host ? streamed(v, name) : v
    }

    /// A copy of the host-resident weight `v` into planned device memory, recorded right here in the run.
    func streamed(_ v: Value, _ name: String) -> Value {
        let info = values[v.id]
        let copy = Info(shape: info.shape, dtype: info.dtype, kind: .intermediate, label: "stream \(name)")
        let out = add(copy)
        nodes.append(Node(label: copy.label, inputs: [v], outputs: [out]) { cl, ins, outs in try cl.copy(ins[0], into: outs[0]) })
        return out
    }

    /// Marks `v` as an output readable after each run under `name`.
    public func output(_ name: String, _ v: Value) throws {
        try check(v)
        guard !outputs.contains(where: { $0.0 == name }) else { throw RuntimeError.invalidArgument("graph: output '\(name)' declared twice") }
        outputs.append((name, v))
    }

    /// Adds an op: its outputs (shape, dtype) and how to record it once operands are bound to tensors.
    /// The op's `record` receives the input tensors in order and the output tensors (dense, planned).
    public func op(_ label: String, inputs: [Value], outputs outs: [(shape: [Int], dtype: DType)],
                   record: @escaping (CommandList, [Tensor], [Tensor]) throws -> Void) throws -> [Value] {
        for v in inputs { try check(v) }
        let results = outs.map { add(Info(shape: $0.shape, dtype: $0.dtype, kind: .intermediate, label: label)) }
        nodes.append(Node(label: label, inputs: inputs, outputs: results, record: record))
        return results
    }

    /// A view of `v` made by `make` from its tensor (no copy): `shape` is the view's shape.
    public func view(_ v: Value, shape: [Int], label: String, _ make: @escaping (Tensor) throws -> Tensor) throws -> Value {
        try check(v)
        return add(Info(shape: shape, dtype: values[v.id].dtype, kind: .view(base: v, make: make), label: label))
    }

    /// The value whose storage `v` uses (itself unless it is a view).
    func root(_ v: Value) -> Value {
        var r = v
        while case let .view(base, _) = values[r.id].kind { r = base }
        return r
    }
}
