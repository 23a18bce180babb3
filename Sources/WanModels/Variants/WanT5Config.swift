import WanRuntime

/// umT5 encoder (`T5Encoder`) hyper-parameters in the official names (spec §2.3, §6.1). Every field is
/// readable from the tensor shapes.
public struct WanT5Config: Sendable, Hashable, CustomStringConvertible {
    /// `vocab_size`: embedding rows (256,384).
    public var vocabSize: Int
    /// `dim` (d_model, 4096).
    public var dim: Int
    /// `dim_attn`: inner attention width, `num_heads · d_kv` (4096).
    public var dimAttn: Int
    /// `dim_ffn` (10240).
    public var dimFFN: Int
    /// `num_heads` (64).
    public var numHeads: Int
    /// `num_layers` (24).
    public var numLayers: Int
    /// `num_buckets` of the relative position tables (32; one table per layer in umT5).
    public var numBuckets: Int

    public init(vocabSize: Int = 256_384, dim: Int = 4096, dimAttn: Int = 4096, dimFFN: Int = 10240, numHeads: Int = 64,
                numLayers: Int = 24, numBuckets: Int = 32) {
        self.vocabSize = vocabSize
        self.dim = dim
        self.dimAttn = dimAttn
        self.dimFFN = dimFFN
        self.numHeads = numHeads
        self.numLayers = numLayers
        self.numBuckets = numBuckets
    }

    /// umT5-XXL, the encoder of `models_t5_umt5-xxl-enc-bf16.pth`.
    public static let umt5XXL = WanT5Config()

    /// Per-head width `dim_attn / num_heads` (64).
    public var headDim: Int { numHeads > 0 ? dimAttn / numHeads : 0 }

    /// Checks the hyper-parameters; throws `RuntimeError.invalidArgument`.
    public func validate() throws {
        func fail(_ s: String) throws -> Never { throw RuntimeError.invalidArgument("umT5 config \(self): \(s)") }
        for (name, v) in [("vocab", vocabSize), ("dim", dim), ("dim_attn", dimAttn), ("dim_ffn", dimFFN), ("num_heads", numHeads),
                          ("num_buckets", numBuckets)] where v <= 0 {
            try fail("\(name) must be positive")
        }
        if numLayers < 0 { try fail("num_layers must not be negative") }
        if dimAttn % numHeads != 0 { try fail("dim_attn \(dimAttn) is not a multiple of num_heads \(numHeads)") }
        if numBuckets % 2 != 0 { try fail("num_buckets must be even (bidirectional buckets)") }
    }

    /// Every tensor, official names and exact shapes (242 for umT5-XXL: 1 + 24 × 10 + 1; the spec says 218, a miscount), in `state_dict` order (spec §4.4).
    public func expectedTensors() -> [TensorSpec] {
        var t: [TensorSpec] = [TensorSpec(name: "token_embedding.weight", shape: [vocabSize, dim])]
        for n in 0..<max(numLayers, 0) {
            let b = "blocks.\(n)."
            t.append(TensorSpec(name: b + "norm1.weight", shape: [dim]))
            t.append(TensorSpec(name: b + "attn.q.weight", shape: [dimAttn, dim]))
            t.append(TensorSpec(name: b + "attn.k.weight", shape: [dimAttn, dim]))
            t.append(TensorSpec(name: b + "attn.v.weight", shape: [dimAttn, dim]))
            t.append(TensorSpec(name: b + "attn.o.weight", shape: [dim, dimAttn]))
            t.append(TensorSpec(name: b + "norm2.weight", shape: [dim]))
            t.append(TensorSpec(name: b + "ffn.gate.0.weight", shape: [dimFFN, dim]))
            t.append(TensorSpec(name: b + "ffn.fc1.weight", shape: [dimFFN, dim]))
            t.append(TensorSpec(name: b + "ffn.fc2.weight", shape: [dim, dimFFN]))
            t.append(TensorSpec(name: b + "pos_embedding.embedding.weight", shape: [numBuckets, numHeads]))
        }
        t.append(TensorSpec(name: "norm.weight", shape: [dim]))
        return t
    }

    /// `expectedTensors()` as entries of one dtype.
    public func expectedEntries(dtype: CheckpointDType = .bf16) -> [TensorEntry] {
        expectedTensors().map { TensorEntry(name: $0.name, dtype: dtype, shape: $0.shape) }
    }

    /// Reads every hyper-parameter from official names → shapes.
    public static func inferred(fromOfficialShapes shapes: [String: [Int]]) throws -> WanT5Config {
        let layers = Set(shapes.keys.compactMap { blockIndex($0, after: "blocks.") })
        func blockShape(_ suffix: String) -> [Int]? {
            for n in layers.sorted() { if let s = shapes["blocks.\(n)." + suffix], s.count == 2 { return s } }
            return nil
        }
        let embedding = shapes["token_embedding.weight"].flatMap { $0.count == 2 ? $0 : nil }
        guard let dim = embedding?[1] ?? blockShape("attn.q.weight")?[1] ?? blockShape("ffn.fc1.weight")?[1] else {
            throw RuntimeError.invalidArgument("cannot read the umT5 width: token_embedding and the block projections are missing")
        }
        guard let relative = blockShape("pos_embedding.embedding.weight") else {
            throw RuntimeError.invalidArgument("cannot read num_heads: no blocks.N.pos_embedding.embedding.weight")
        }
        return WanT5Config(vocabSize: embedding?[0] ?? 256_384, dim: dim,
                           dimAttn: blockShape("attn.q.weight")?[0] ?? blockShape("attn.o.weight")?[1] ?? dim,
                           dimFFN: blockShape("ffn.fc1.weight")?[0] ?? blockShape("ffn.gate.0.weight")?[0] ?? 10240,
                           numHeads: relative[1], numLayers: (layers.max() ?? -1) + 1, numBuckets: relative[0])
    }

    public var description: String {
        "vocab \(vocabSize), dim \(dim), dim_attn \(dimAttn), dim_ffn \(dimFFN), num_heads \(numHeads), num_layers \(numLayers), num_buckets \(numBuckets)"
    }
}
