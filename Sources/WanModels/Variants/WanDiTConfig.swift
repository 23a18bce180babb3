import WanRuntime

/// DiT (`WanModel`) hyper-parameters in the official `config.json` names (spec §2.1).
public struct WanDiTConfig: Sendable, Hashable, CustomStringConvertible {
    /// `model_type`: text-to-video, image-to-video, first-last-frame-to-video.
    public enum ModelType: String, Sendable, CaseIterable {
        case t2v, i2v, flf2v
    }

    /// `model_type`.
    public var modelType: ModelType
    /// `dim`: hidden width.
    public var dim: Int
    /// `ffn_dim`: feed-forward width.
    public var ffnDim: Int
    /// `freq_dim`: sinusoidal timestep width.
    public var freqDim: Int
    /// `num_heads` (not readable from tensor shapes: head_dim is 128 in every released model).
    public var numHeads: Int
    /// `num_layers`: transformer blocks.
    public var numLayers: Int
    /// `in_dim`: latent input channels (16, or 36 with the I2V conditioning).
    public var inDim: Int
    /// `out_dim`: latent output channels.
    public var outDim: Int
    /// `text_len`: rows the text context is padded to (not readable from shapes).
    public var textLen: Int
    /// `text_dim`: umT5 output width.
    public var textDim: Int
    /// `patch_size` (t, h, w).
    public var patchSize: [Int]
    /// `eps` of the LayerNorms and q/k RMSNorms (not readable from shapes).
    public var eps: Double
    /// `qk_norm`: RMSNorm on q and k (weights `norm_q`, `norm_k`).
    public var qkNorm: Bool
    /// `cross_attn_norm`: affine LayerNorm before cross-attention (`norm3`).
    public var crossAttnNorm: Bool
    /// Width of the CLIP features fed to `img_emb` (I2V / FLF2V).
    public var imageDim: Int
    /// Rows of FLF2V's `img_emb.emb_pos` (2 × 257 CLIP tokens).
    public var imagePositions: Int

    public init(modelType: ModelType, dim: Int, ffnDim: Int, freqDim: Int = 256, numHeads: Int, numLayers: Int,
                inDim: Int? = nil, outDim: Int = 16, textLen: Int = 512, textDim: Int = 4096, patchSize: [Int] = [1, 2, 2],
                eps: Double = 1e-6, qkNorm: Bool = true, crossAttnNorm: Bool = true, imageDim: Int = 1280,
                imagePositions: Int = 514) {
        self.modelType = modelType
        self.dim = dim
        self.ffnDim = ffnDim
        self.freqDim = freqDim
        self.numHeads = numHeads
        self.numLayers = numLayers
        self.inDim = inDim ?? (modelType == .t2v ? 16 : 36)
        self.outDim = outDim
        self.textLen = textLen
        self.textDim = textDim
        self.patchSize = patchSize
        self.eps = eps
        self.qkNorm = qkNorm
        self.crossAttnNorm = crossAttnNorm
        self.imageDim = imageDim
        self.imagePositions = imagePositions
    }

    /// `dim / num_heads`.
    public var headDim: Int { numHeads > 0 ? dim / numHeads : 0 }
    /// True for I2V and FLF2V (image cross-attention, `img_emb`).
    public var hasImageInput: Bool { modelType != .t2v }
    /// Image-context rows in cross-attention: 0 (T2V), 257 (I2V), 514 (FLF2V).
    public var imageContextTokens: Int {
        switch modelType {
        case .t2v: return 0
        case .i2v: return 257
        case .flf2v: return imagePositions
        }
    }
    /// Output features of the head: `out_dim · prod(patch_size)`.
    public var headOutputs: Int { outDim * patchSize.reduce(1, *) }

    /// T2V-1.3B.
    public static let t2v1_3B = WanDiTConfig(modelType: .t2v, dim: 1536, ffnDim: 8960, numHeads: 12, numLayers: 30)
    /// T2V-14B (also T2I-14B).
    public static let t2v14B = WanDiTConfig(modelType: .t2v, dim: 5120, ffnDim: 13824, numHeads: 40, numLayers: 40)
    /// I2V-14B, 480P and 720P (same tensors).
    public static let i2v14B = WanDiTConfig(modelType: .i2v, dim: 5120, ffnDim: 13824, numHeads: 40, numLayers: 40)
    /// FLF2V-14B-720P.
    public static let flf2v14B = WanDiTConfig(modelType: .flf2v, dim: 5120, ffnDim: 13824, numHeads: 40, numLayers: 40)

    /// Checks the constraints the model relies on (spec §11.2); throws `RuntimeError.invalidArgument`.
    public func validate() throws {
        func fail(_ s: String) throws -> Never { throw RuntimeError.invalidArgument("DiT config \(self): \(s)") }
        for (name, v) in [("dim", dim), ("ffn_dim", ffnDim), ("freq_dim", freqDim), ("num_heads", numHeads), ("in_dim", inDim),
                          ("out_dim", outDim), ("text_len", textLen), ("text_dim", textDim), ("image_dim", imageDim)] where v <= 0 {
            try fail("\(name) must be positive")
        }
        if numLayers < 0 { try fail("num_layers must not be negative") }
        if patchSize.count != 3 || patchSize.contains(where: { $0 <= 0 }) { try fail("patch_size must be 3 positive sizes") }
        if dim % numHeads != 0 { try fail("dim \(dim) is not a multiple of num_heads \(numHeads)") }
        if headDim % 2 != 0 { try fail("head_dim \(headDim) must be even") }
        if headDim < 6 { try fail("head_dim \(headDim) must be at least 6 (every RoPE axis needs a pair)") }
        if freqDim % 2 != 0 { try fail("freq_dim \(freqDim) must be even") }
        if !(eps > 0) { try fail("eps must be positive") }
        if modelType == .flf2v && imagePositions <= 0 { try fail("FLF2V needs image positions") }
    }

    /// Every tensor of this configuration, official names and exact shapes, in `state_dict` order (spec §4.2).
    public func expectedTensors() -> [TensorSpec] {
        var t: [TensorSpec] = []
        func add(_ name: String, _ shape: [Int]) { t.append(TensorSpec(name: name, shape: shape)) }
        func linear(_ name: String, _ outputs: Int, _ inputs: Int) {
            add(name + ".weight", [outputs, inputs])
            add(name + ".bias", [outputs])
        }
        add("patch_embedding.weight", [dim, inDim] + patchSize)
        add("patch_embedding.bias", [dim])
        linear("text_embedding.0", dim, textDim)
        linear("text_embedding.2", dim, dim)
        linear("time_embedding.0", dim, freqDim)
        linear("time_embedding.2", dim, dim)
        linear("time_projection.1", 6 * dim, dim)
        for n in 0..<max(numLayers, 0) {
            let b = "blocks.\(n)."
            add(b + "modulation", [1, 6, dim])
            for x in ["q", "k", "v", "o"] { linear(b + "self_attn." + x, dim, dim) }
            if qkNorm {
                add(b + "self_attn.norm_q.weight", [dim])
                add(b + "self_attn.norm_k.weight", [dim])
            }
            if crossAttnNorm {
                add(b + "norm3.weight", [dim])
                add(b + "norm3.bias", [dim])
            }
            for x in ["q", "k", "v", "o"] { linear(b + "cross_attn." + x, dim, dim) }
            if qkNorm {
                add(b + "cross_attn.norm_q.weight", [dim])
                add(b + "cross_attn.norm_k.weight", [dim])
            }
            if hasImageInput {
                linear(b + "cross_attn.k_img", dim, dim)
                linear(b + "cross_attn.v_img", dim, dim)
                if qkNorm { add(b + "cross_attn.norm_k_img.weight", [dim]) }
            }
            linear(b + "ffn.0", ffnDim, dim)
            linear(b + "ffn.2", dim, ffnDim)
        }
        add("head.modulation", [1, 2, dim])
        linear("head.head", headOutputs, dim)
        if hasImageInput {
            add("img_emb.proj.0.weight", [imageDim])
            add("img_emb.proj.0.bias", [imageDim])
            linear("img_emb.proj.1", imageDim, imageDim)
            linear("img_emb.proj.3", dim, imageDim)
            add("img_emb.proj.4.weight", [dim])
            add("img_emb.proj.4.bias", [dim])
            if modelType == .flf2v { add("img_emb.emb_pos", [1, imagePositions, imageDim]) }
        }
        return t
    }

    /// `expectedTensors()` as entries of one dtype (synthetic checkpoints, tests).
    public func expectedEntries(dtype: CheckpointDType = .f32) -> [TensorEntry] {
        expectedTensors().map { TensorEntry(name: $0.name, dtype: dtype, shape: $0.shape) }
    }

    /// Reads the hyper-parameters the tensor shapes determine from official names → shapes. `num_heads`
    /// comes from `numHeads`, else `dim / 128` (the head width of every released model) when that divides;
    /// `text_len` and `eps` come from the arguments. Throws when the shapes cannot determine the config.
    public static func inferred(fromOfficialShapes shapes: [String: [Int]], numHeads: Int? = nil, textLen: Int = 512,
                                eps: Double = 1e-6) throws -> WanDiTConfig {
        func shape(_ name: String, rank: Int) -> [Int]? {
            guard let s = shapes[name], s.count == rank else { return nil }
            return s
        }
        let blockIndices = Set(shapes.keys.compactMap { blockIndex($0, after: "blocks.") })
        let firstBlock = blockIndices.min().map { "blocks.\($0)." }
        func blockShape(_ suffix: String, rank: Int) -> [Int]? {
            for n in blockIndices.sorted() { if let s = shape("blocks.\(n)." + suffix, rank: rank) { return s } }
            return nil
        }
        let patch = shape("patch_embedding.weight", rank: 5)
        guard let dim = patch?[0] ?? shape("head.modulation", rank: 3)?[2] ?? blockShape("modulation", rank: 3)?[2]
            ?? shape("time_embedding.2.weight", rank: 2)?[0] else {
            throw RuntimeError.invalidArgument("cannot read the DiT width: patch_embedding.weight, head.modulation and the block modulations are all missing")
        }
        guard let ffnDim = blockShape("ffn.0.weight", rank: 2)?[0] ?? blockShape("ffn.2.weight", rank: 2)?[1] else {
            throw RuntimeError.invalidArgument("cannot read ffn_dim: no blocks.N.ffn.0.weight / ffn.2.weight")
        }
        let hasEmbPos = shapes["img_emb.emb_pos"] != nil
        let hasImage = hasEmbPos || shapes.keys.contains { $0.hasPrefix("img_emb.") } || blockShape("cross_attn.k_img.weight", rank: 2) != nil
        let modelType: ModelType = hasEmbPos ? .flf2v : (hasImage ? .i2v : .t2v)
        let patchSize = patch.map { Array($0[2...]) } ?? [1, 2, 2]
        let heads: Int
        if let numHeads {
            heads = numHeads
        } else if dim % 128 == 0 {
            heads = dim / 128
        } else {
            throw RuntimeError.invalidArgument(
                "num_heads cannot be read from tensor shapes and dim \(dim) is not a multiple of 128 (the released head width); give num_heads (config.json)")
        }
        let patchVolume = patchSize.reduce(1, *)
        let headRows = shape("head.head.weight", rank: 2)?[0]
        let config = WanDiTConfig(
            modelType: modelType, dim: dim, ffnDim: ffnDim,
            freqDim: shape("time_embedding.0.weight", rank: 2)?[1] ?? 256,
            numHeads: heads,
            numLayers: (blockIndices.max() ?? -1) + 1,
            inDim: patch?[1] ?? (modelType == .t2v ? 16 : 36),
            outDim: headRows.map { patchVolume > 0 && $0 % patchVolume == 0 ? $0 / patchVolume : $0 } ?? 16,
            textLen: textLen,
            textDim: shape("text_embedding.0.weight", rank: 2)?[1] ?? 4096,
            patchSize: patchSize, eps: eps,
            qkNorm: firstBlock == nil || blockShape("self_attn.norm_q.weight", rank: 1) != nil
                || blockShape("cross_attn.norm_q.weight", rank: 1) != nil,
            crossAttnNorm: firstBlock == nil || blockShape("norm3.weight", rank: 1) != nil || blockShape("norm3.bias", rank: 1) != nil,
            imageDim: shape("img_emb.proj.0.weight", rank: 1)?[0] ?? shape("img_emb.proj.1.weight", rank: 2)?[1] ?? 1280,
            imagePositions: shape("img_emb.emb_pos", rank: 3)?[1] ?? 514)
        return config
    }

    public var description: String {
        "\(modelType.rawValue) dim \(dim), ffn_dim \(ffnDim), freq_dim \(freqDim), num_heads \(numHeads), num_layers \(numLayers), "
            + "in_dim \(inDim), out_dim \(outDim), text_dim \(textDim), text_len \(textLen), patch_size \(patchSize)"
    }
}

/// The released DiT weight layouts (I2V-14B covers both 480P and 720P: identical tensors; T2I-14B uses T2V-14B).
public enum WanDiTVariant: String, Sendable, CaseIterable, CustomStringConvertible {
    case t2v1_3B = "T2V-1.3B"
    case t2v14B = "T2V-14B"
    case i2v14B = "I2V-14B"
    case flf2v14B = "FLF2V-14B"

    /// The variant's configuration.
    public var config: WanDiTConfig {
        switch self {
        case .t2v1_3B: return .t2v1_3B
        case .t2v14B: return .t2v14B
        case .i2v14B: return .i2v14B
        case .flf2v14B: return .flf2v14B
        }
    }

    public var description: String { rawValue }
}
