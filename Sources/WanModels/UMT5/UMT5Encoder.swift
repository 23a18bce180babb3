import Foundation
import WanGraph
import WanRuntime

extension Graph {
    /// T5 RMSNorm: x / sqrt(mean(x²) + eps) with fp32 statistics, rounded to `roundTo` (the activation dtype
    /// of a reduced-precision run) before the product with `weight`, stored as `dtype`.
    func t5RMSNorm(_ x: Value, weight: Value, eps: Float, roundTo: DType?, dtype: DType) throws -> Value {
        try op("rmsNorm", inputs: [x, weight], outputs: [(shape(x), dtype)]) { cl, ins, outs in
            try cl.rmsNorm(ins[0], weight: ins[1], eps: eps, out: outs[0], roundNormalizedTo: roundTo)
        }[0]
    }
}

/// The umT5 encoder (official `T5Encoder`, spec §6): token embedding, `numLayers` pre-norm blocks with
/// per-layer relative position bias (bidirectional buckets), self-attention without 1/√d scaling,
/// gated GELU-tanh FFN, T5 RMSNorm (eps 1e-6), final norm. Parameters carry the official tensor names
/// (spec §4.4); weights may be stored f32, f16 or bf16 (fp32 accumulation). Activations are fp32 by
/// default; in bf16/f16 the graph rounds where the official bf16 run does (every matmul output, the
/// normalised value before the norm weight, logits + bias, softmax output, residual stream), and in f16
/// it clamps the residual stream to ±(65504 − 1000) after every residual add as the reference does when
/// an inf appears (here always, so a finite |x| in (64504, 65504] is clamped too).
public final class UMT5Encoder: @unchecked Sendable {
    /// Hyper-parameters.
    public let config: WanT5Config
    /// The device the weights live on.
    public let device: Device
    /// Weights by official name, exactly `config.expectedTensors()`.
    public let weights: [String: Tensor]
    /// `max_distance` of the relative position buckets (128).
    public let maxDistance: Int
    /// RMSNorm epsilon (1e-6).
    public let eps: Float = 1e-6
    /// Activation dtype of the graph: f32 (default), bf16 or f16.
    public let activationDType: DType
    /// Shapes of the weights a shape-only encoder declares as placeholders (empty for an encoder with weights).
    private let placeholderShapes: [String: [Int]]
    /// Storage type of a shape-only encoder's placeholder weights; nil for an encoder with weights.
    public let placeholderWeightDType: DType?

    /// Whether the encoder has no weights (`init(shapeOnly:...)`): its graphs plan memory but do not compile.
    public var isShapeOnly: Bool { placeholderWeightDType != nil }

    /// An encoder from weights in official names on `device`. Throws `RuntimeError.invalidArgument` naming
    /// every missing, unexpected or misshapen tensor, or a tensor on another device or of a non-float type.
    public init(config: WanT5Config, weights: [String: Tensor], device: Device, maxDistance: Int = 128,
                activationDType: DType = .f32) throws {
        try config.validate()
        guard activationDType.isComputeFloat else {
            throw RuntimeError.unsupportedDType("umT5: activations run in f32, bf16 or f16, not \(activationDType)")
        }
        guard maxDistance > 0 else { throw RuntimeError.invalidArgument("umT5: max_distance \(maxDistance) must be positive") }
        let expected = config.expectedTensors()
        var problems: [String] = []
        for spec in expected {
            guard let t = weights[spec.name] else { problems.append("missing tensor '\(spec.name)' \(spec.shape)"); continue }
            if t.shape != spec.shape { problems.append("tensor '\(spec.name)' is \(t.shape), expected \(spec.shape)") }
            if !t.dtype.isComputeFloat { problems.append("tensor '\(spec.name)' is \(t.dtype); expected f32, f16 or bf16") }
            if t.device !== device { problems.append("tensor '\(spec.name)' is on \(t.device.name), not \(device.name)") }
            if !t.isContiguous { problems.append("tensor '\(spec.name)' is not dense") }
        }
        let known = Set(expected.map(\.name))
        for name in weights.keys.sorted() where !known.contains(name) { problems.append("unexpected tensor '\(name)'") }
        guard problems.isEmpty else {
            let shown = problems.prefix(10).joined(separator: "; ")
            throw RuntimeError.invalidArgument("umT5 weights (\(config)): \(shown)\(problems.count > 10 ? "; … (\(problems.count) problems)" : "")")
        }
        self.config = config
        self.weights = weights
        self.device = device
        self.maxDistance = maxDistance
        self.activationDType = activationDType
        self.placeholderShapes = [:]
        self.placeholderWeightDType = nil
    }

    /// An encoder of `config` without weights, for planning memory: its graphs (`footprint`) declare every
    /// weight as a placeholder stored as `weightDType` and allocate only the small tables they build
    /// (relative position buckets) on `device`; they cannot be compiled.
    public init(shapeOnly config: WanT5Config, weightDType: DType = .bf16, device: Device = .cpu(), maxDistance: Int = 128,
                activationDType: DType = .f32) throws {
        try config.validate()
        guard activationDType.isComputeFloat, weightDType.isComputeFloat else {
            throw RuntimeError.unsupportedDType("umT5: weights and activations are f32, bf16 or f16, not \(weightDType) / \(activationDType)")
        }
        guard maxDistance > 0 else { throw RuntimeError.invalidArgument("umT5: max_distance \(maxDistance) must be positive") }
        self.config = config
        self.weights = [:]
        self.device = device
        self.maxDistance = maxDistance
        self.activationDType = activationDType
        self.placeholderShapes = Dictionary(config.expectedTensors().map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        self.placeholderWeightDType = weightDType
    }

    /// The device memory of the program `compile(batch:length:textLength:)` would make (activation arenas,
    /// inputs, tables; weights as parameters or placeholders), planned without compiling or allocating it.
    public func footprint(batch: Int, length: Int, textLength: Int = 512, maxArenaBytes: Int = Int.max) throws -> GraphFootprint {
        try UMT5Program.graph(encoder: self, batch: batch, length: length, textLength: textLength).footprint(maxArenaBytes: maxArenaBytes)
    }

    /// Loads an encoder from a checkpoint in official, transformers (`UMT5EncoderModel`) or ComfyUI names
    /// (including fp8 "scaled" files, whose scales are applied on load): the configuration is read from the
    /// tensor shapes (umT5-XXL or, with `allowCustom`, any consistent smaller one) and every weight is
    /// converted to `weightDType` (f32, f16 or bf16; default: the activation dtype).
    public static func load(_ reader: any CheckpointReader, device: Device, activationDType: DType = .f32,
                            weightDType: DType? = nil, allowCustom: Bool = true) throws -> UMT5Encoder {
        let weightDType = weightDType ?? activationDType
        guard weightDType.isComputeFloat else {
            throw RuntimeError.unsupportedDType("umT5: weights load as f32, f16 or bf16, not \(weightDType)")
        }
        let detection = try WanCheckpointDetector.detect(reader.entries, options: WanDetectionOptions(component: .t5, allowCustom: allowCustom))
        guard case let .t5(config) = detection.config else {
            throw RuntimeError.invalidArgument("umT5: \(reader.path) holds a \(detection.config.component), not the umT5 encoder")
        }
        var weights: [String: Tensor] = [:]
        for recipe in detection.mapping.recipes {
            guard recipe.sources.count == 1, let source = recipe.sources.first else {
                throw RuntimeError.invalidArgument("umT5: tensor '\(recipe.name)' needs \(recipe.transform) of \(recipe.sources.count) sources")
            }
            switch recipe.transform {
            case .identity, .reshape: break
            default: throw RuntimeError.invalidArgument("umT5: tensor '\(recipe.name)' needs an unsupported \(recipe.transform)")
            }
            let tensor: Tensor
            if let scale = source.scale {
                var values = try reader.floats(source.entry.name)
                let scales = try reader.floats(scale.name)
                let rows = source.entry.shape.first ?? 1
                let cols = rows > 0 ? values.count / rows : 0
                guard scales.count == 1 || scales.count == rows else {
                    throw RuntimeError.shapeMismatch("umT5: scale '\(scale.name)' has \(scales.count) values for \(rows) rows")
                }
                for r in 0..<rows {
                    let s = scales.count == 1 ? scales[0] : scales[r]
                    for c in 0..<cols { values[r * cols + c] *= s }
                }
                tensor = try device.tensor(values, shape: recipe.shape, dtype: weightDType)
            } else {
                let t = try reader.load(source.entry.name, to: device, as: weightDType)
                tensor = t.shape == recipe.shape ? t : try t.reshaped(recipe.shape)
            }
            weights[recipe.name] = tensor
        }
        return try UMT5Encoder(config: config, weights: weights, device: device, activationDType: activationDType)
    }

    /// `load(_:device:activationDType:weightDType:allowCustom:)` from a file (safetensors, sharded index,
    /// torch `.pth`, …).
    public static func load(path: String, device: Device, activationDType: DType = .f32, weightDType: DType? = nil,
                            allowCustom: Bool = true) throws -> UMT5Encoder {
        try load(CheckpointFile.open(path), device: device, activationDType: activationDType, weightDType: weightDType,
                 allowCustom: allowCustom)
    }

    /// The additive mask value of a padding key: `finfo(activationDType).min` (f32 −3.4028235e38,
    /// bf16 −3.3895314e38, f16 −65504).
    public var maskValue: Float {
        switch activationDType {
        case .bf16: return -Float(bitPattern: 0x7F7F_0000)
        case .f16: return -65504
        default: return -Float.greatestFiniteMagnitude
        }
    }

    // MARK: relative positions

    /// The bidirectional relative-position bucket of `n = key − query` exactly as the reference computes it
    /// (spec §6.2): keys before the query use buckets [0, half), keys after it [half, numBuckets); distances
    /// below half/2 are exact, larger ones logarithmic up to `maxDistance` (fp32 log, truncated).
    public static func relativeBucket(_ n: Int, numBuckets: Int = 32, maxDistance: Int = 128) -> Int {
        let half = numBuckets / 2
        let base = n > 0 ? half : 0
        let a = n.magnitude
        let maxExact = half / 2
        if maxExact == 0 { return base }
        if a < UInt(maxExact) { return base + Int(a) }
        // torch: (log(a.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)).long()
        let ratio = Float(a) / Float(maxExact)
        let scaled = logf(ratio) / Float(Foundation.log(Double(maxDistance) / Double(maxExact))) * Float(half - maxExact)
        // (NaN or ±inf only for degenerate max_distance ≤ max_exact: kept inside this half's buckets.)
        let truncated = scaled.isNaN ? Float(half) : min(max(scaled.rounded(.towardZero), -Float(half)), Float(half))
        return base + max(0, min(maxExact + Int(truncated), half - 1))
    }

    /// The bucket of every (query i, key j) pair of a sequence of `length` tokens, row-major [i, j].
    public static func bucketTable(length: Int, numBuckets: Int = 32, maxDistance: Int = 128) -> [Int32] {
        var out = [Int32](repeating: 0, count: length * length)
        // bucket(j − i) depends only on j − i: compute each distance once.
        let byDistance = length > 0 ? (-(length - 1)...(length - 1)).map { Int32(relativeBucket($0, numBuckets: numBuckets, maxDistance: maxDistance)) } : []
        for i in 0..<length {
            for j in 0..<length { out[i * length + j] = byDistance[j - i + length - 1] }
        }
        return out
    }

    // MARK: graph

    /// Adds the encoder to `graph`: `ids` [B, L] i32 token ids, `mask` [B, 1, 1, L] f32 additive key mask
    /// (0 for real tokens, `maskValue` for padding), `buckets` [L, L] i32 from `bucketTable(length: L)`.
    /// Returns the final hidden states [B, L, dim] in `activationDType`; rows of padding positions are
    /// computed but meaningless.
    public func encode(in graph: Graph, ids: Graph.Value, mask: Graph.Value, buckets: Graph.Value) throws -> Graph.Value {
        let sIds = graph.shape(ids)
        guard sIds.count == 2, graph.dtype(ids) == .i32 else {
            throw RuntimeError.shapeMismatch("umT5: ids must be i32 [B, L], got \(graph.dtype(ids)) \(sIds)")
        }
        let (b, l) = (sIds[0], sIds[1])
        guard graph.shape(mask) == [b, 1, 1, l] else { throw RuntimeError.shapeMismatch("umT5: mask \(graph.shape(mask)), expected [\(b), 1, 1, \(l)]") }
        guard graph.shape(buckets) == [l, l], graph.dtype(buckets) == .i32 else {
            throw RuntimeError.shapeMismatch("umT5: buckets \(graph.dtype(buckets)) \(graph.shape(buckets)), expected i32 [\(l), \(l)]")
        }
        let c = config
        let (h, d) = (c.numHeads, c.headDim)
        let act = activationDType
        let roundTo: DType? = act == .f32 ? nil : act
        let clampBounds: (Graph.Value, Graph.Value)? = act == .f16
            ? (graph.parameter("clamp_min", try device.tensor([-64504], shape: [1])), graph.parameter("clamp_max", try device.tensor([64504], shape: [1])))
            : nil
        func clamped(_ v: Graph.Value) throws -> Graph.Value {
            guard let (lo, hi) = clampBounds else { return v }
            return try graph.binary(.minimum, try graph.binary(.maximum, v, lo), hi)
        }
        func w(_ name: String) throws -> Graph.Value {
            if let t = weights[name] { return graph.parameter(name, t) }
            if let dtype = placeholderWeightDType, let shape = placeholderShapes[name] {
                return try graph.placeholder(name, shape: shape, dtype: dtype)
            }
            throw RuntimeError.invalidArgument("umT5: no tensor '\(name)'")
        }
        var x = try graph.gather(try w("token_embedding.weight"), ids: ids, dtype: act)        // [B, L, dim]
        for n in 0..<c.numLayers {
            let p = "blocks.\(n)."
            // Relative position bias of this layer, [1, H, L, L] (a view of the gathered [L, L, H]), plus the key mask.
            let rel = try graph.gather(try w(p + "pos_embedding.embedding.weight"), ids: buckets, dtype: act)
            let bias = try graph.permute(try graph.reshape(rel, [1, l, l, h]), [0, 3, 1, 2])
            let biasMask = try graph.add(bias, mask)                                               // [B, H, L, L]
            // Self-attention computed transposed: qᵀ = Wq·aᵀ [B, H, D, L] needs no head permutes.
            let a = try graph.t5RMSNorm(x, weight: try w(p + "norm1.weight"), eps: eps, roundTo: roundTo, dtype: act)
            func projT(_ name: String) throws -> Graph.Value {
                try graph.reshape(try graph.gemm(try w(p + name), a, transposeB: true, dtype: act), [b, h, d, l])
            }
            let qT = try projT("attn.q.weight"), kT = try projT("attn.k.weight"), vT = try projT("attn.v.weight")
            let scores = try graph.gemm(qT, kT, transposeA: true, residual: biasMask, dtype: act)    // q·kᵀ + bias + mask
            let probs = try graph.softmax(scores, dtype: act)                                          // fp32 math
            let oT = try graph.reshape(try graph.gemm(vT, probs, transposeB: true, dtype: act), [b, c.dimAttn, l])
            x = try clamped(try graph.gemm(oT, try w(p + "attn.o.weight"), transposeA: true, transposeB: true, residual: x, dtype: act))
            // Gated GELU-tanh FFN.
            let f = try graph.t5RMSNorm(x, weight: try w(p + "norm2.weight"), eps: eps, roundTo: roundTo, dtype: act)
            let gate = try graph.linear(f, weight: try w(p + "ffn.gate.0.weight"), activation: .geluTanh, dtype: act)
            let lin = try graph.linear(f, weight: try w(p + "ffn.fc1.weight"), dtype: act)
            x = try clamped(try graph.linear(try graph.mul(gate, lin), weight: try w(p + "ffn.fc2.weight"), residual: x, dtype: act))
        }
        return try graph.t5RMSNorm(x, weight: try w("norm.weight"), eps: eps, roundTo: roundTo, dtype: act)
    }

    /// Adds the pipeline's output handling (spec §6.3): `hidden` [B, L, dim] trimmed to each prompt's
    /// length (rows ≥ length zeroed through `rowMask` [B, L, 1], 1 for real tokens and 0 for padding) and
    /// zero-padded to `textLength` rows: the DiT context [B, textLength, dim].
    public func context(in graph: Graph, hidden: Graph.Value, rowMask: Graph.Value, textLength: Int) throws -> Graph.Value {
        let s = graph.shape(hidden)
        guard s.count == 3, graph.shape(rowMask) == [s[0], s[1], 1] else {
            throw RuntimeError.shapeMismatch("umT5 context: hidden \(s), row mask \(graph.shape(rowMask))")
        }
        guard textLength >= s[1] else { throw RuntimeError.invalidArgument("umT5 context: \(s[1]) tokens exceed text_len \(textLength)") }
        let kept = try graph.mul(hidden, rowMask)
        return textLength == s[1] ? kept : try graph.pad(kept, before: [0, 0], after: [textLength - s[1], 0])
    }

    /// Compiles the encoder for `batch` prompts of at most `length` tokens, producing hidden states and the
    /// DiT context of `textLength` rows (default 512).
    public func compile(batch: Int, length: Int, textLength: Int = 512) throws -> UMT5Program {
        try UMT5Program(encoder: self, batch: batch, length: length, textLength: textLength)
    }

    /// Encodes prompts (token ids, each with its real length, e.g. up to and including EOS) and returns the DiT
    /// context [B, textLength, dim] (`activationDType`, on the encoder's device): each prompt's rows, zero rows
    /// after them.
    /// The encoder runs on the unpadded length of the longest prompt (exact, spec §6.3).
    public func encode(_ prompts: [[Int32]], textLength: Int = 512) throws -> Tensor {
        let length = max(1, prompts.map(\.count).max() ?? 1)
        let program = try compile(batch: prompts.count, length: length, textLength: textLength)
        try program.run(prompts)
        let src = try program.context()
        let out = try device.empty(src.shape, dtype: src.dtype)
        let cl = try CommandList(device: device)
        try cl.copy(src, into: out)
        try cl.run()
        return out
    }
}

/// The umT5 encoder compiled for a fixed batch and sequence length: fill ids, run, read the hidden states
/// or the DiT context.
public final class UMT5Program: @unchecked Sendable {
    /// The encoder the program runs.
    public let encoder: UMT5Encoder
    /// Prompts per run.
    public let batch: Int
    /// Token positions per prompt.
    public let length: Int
    /// Rows of the DiT context.
    public let textLength: Int
    /// The compiled graph (inputs `ids`, `mask`, `rowMask`; outputs `hidden`, `context`).
    public let graph: CompiledGraph
    /// Real lengths of the last run's prompts.
    public private(set) var lengths: [Int]

    init(encoder: UMT5Encoder, batch: Int, length: Int, textLength: Int) throws {
        let g = try UMT5Program.graph(encoder: encoder, batch: batch, length: length, textLength: textLength)
        self.encoder = encoder
        self.batch = batch
        self.length = length
        self.textLength = textLength
        self.graph = try g.compile(for: encoder.device)
        self.lengths = Array(repeating: length, count: batch)
    }

    /// The program's graph (inputs `ids`, `mask`, `rowMask`; outputs `hidden`, `context`), not compiled.
    static func graph(encoder: UMT5Encoder, batch: Int, length: Int, textLength: Int) throws -> Graph {
        guard batch >= 1, length >= 1 else { throw RuntimeError.invalidArgument("umT5: batch \(batch) and length \(length) must be positive") }
        guard textLength >= length else { throw RuntimeError.invalidArgument("umT5: length \(length) exceeds text_len \(textLength)") }
        let g = Graph()
        let ids = try g.input("ids", shape: [batch, length], dtype: .i32)
        let mask = try g.input("mask", shape: [batch, 1, 1, length])
        let rowMask = try g.input("rowMask", shape: [batch, length, 1])
        let table = UMT5Encoder.bucketTable(length: length, numBuckets: encoder.config.numBuckets, maxDistance: encoder.maxDistance)
        let buckets = g.parameter("relative_buckets",
                                  try encoder.device.tensor(bytes: table.withUnsafeBytes { Array($0) }, shape: [length, length], dtype: .i32))
        let hidden = try encoder.encode(in: g, ids: ids, mask: mask, buckets: buckets)
        try g.output("hidden", hidden)
        try g.output("context", try encoder.context(in: g, hidden: hidden, rowMask: rowMask, textLength: textLength))
        return g
    }

    /// Runs on padded ids [batch · length] (row-major) with each prompt's real length (1…length); ids must
    /// lie in [0, vocab).
    public func run(ids: [Int32], lengths: [Int]) throws {
        guard ids.count == batch * length else { throw RuntimeError.shapeMismatch("umT5: \(ids.count) ids for batch \(batch) × length \(length)") }
        guard lengths.count == batch, lengths.allSatisfy({ $0 >= 1 && $0 <= length }) else {
            throw RuntimeError.invalidArgument("umT5: lengths \(lengths) for batch \(batch), length \(length)")
        }
        let vocab = encoder.config.vocabSize
        if let bad = ids.firstIndex(where: { $0 < 0 || Int($0) >= vocab }) {
            throw RuntimeError.invalidArgument("umT5: token id \(ids[bad]) at \(bad) is outside the vocabulary [0, \(vocab))")
        }
        var mask = [Float](repeating: 0, count: batch * length), rows = mask
        let maskValue = encoder.maskValue
        for p in 0..<batch {
            for j in 0..<length {
                let real = j < lengths[p]
                mask[p * length + j] = real ? 0 : maskValue
                rows[p * length + j] = real ? 1 : 0
            }
        }
        try encoder.device.write(ids.withUnsafeBytes { Array($0) }, to: try graph.input("ids"))
        try graph.setInput("mask", mask)
        try graph.setInput("rowMask", rows)
        try graph.run()
        self.lengths = lengths
    }

    /// Runs on `batch` prompts of 1…`length` ids each (padded with id 0).
    public func run(_ prompts: [[Int32]]) throws {
        guard prompts.count == batch, prompts.allSatisfy({ !$0.isEmpty && $0.count <= length }) else {
            throw RuntimeError.invalidArgument("umT5: \(prompts.count) prompts of up to \(prompts.map(\.count).max() ?? 0) tokens for a program of batch \(batch), length \(length)")
        }
        var ids = [Int32](repeating: 0, count: batch * length)
        var lengths = [Int](repeating: 0, count: batch)
        for (p, prompt) in prompts.enumerated() {
            for (j, id) in prompt.enumerated() { ids[p * length + j] = id }
            lengths[p] = prompt.count
        }
        try run(ids: ids, lengths: lengths)
    }

    /// The last run's final hidden states [batch, length, dim] (valid until the next run).
    public func hiddenStates() throws -> Tensor { try graph.output("hidden") }

    /// The last run's DiT context [batch, textLength, dim]: each prompt's rows, then zero rows (valid until
    /// the next run).
    public func context() throws -> Tensor { try graph.output("context") }

    /// The last run's hidden states trimmed to each prompt's length, on the host (as floats): prompt p's
    /// [lengths[p], dim] row-major.
    public func trimmed() throws -> [[Float]] {
        let all = try encoder.device.read(try hiddenStates())
        let dim = encoder.config.dim
        return (0..<batch).map { p in Array(all[(p * length * dim)..<((p * length + lengths[p]) * dim)]) }
    }
}
