import WanRuntime

/// CLIP visual tower (`XLMRobertaCLIP.visual`, open-clip ViT-H/14) hyper-parameters (spec §2.3, §9.2).
public struct WanCLIPConfig: Sendable, Hashable, CustomStringConvertible {
    /// Input image side (224).
    public var imageSize: Int
    /// Patch side (14).
    public var patchSize: Int
    /// Width (1280).
    public var dim: Int
    /// MLP width (`dim · mlp_ratio` = 5120).
    public var mlpDim: Int
    /// Attention heads (16 × 80; not readable from shapes).
    public var numHeads: Int
    /// Transformer blocks in the file (32; Wan runs the first 31).
    public var numLayers: Int
    /// Width of the (unused) `visual.head` projection (1024).
    public var outDim: Int

    public init(imageSize: Int = 224, patchSize: Int = 14, dim: Int = 1280, mlpDim: Int = 5120, numHeads: Int = 16,
                numLayers: Int = 32, outDim: Int = 1024) {
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.dim = dim
        self.mlpDim = mlpDim
        self.numHeads = numHeads
        self.numLayers = numLayers
        self.outDim = outDim
    }

    /// ViT-H/14 of `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth` / `clip_vision_h.safetensors`.
    public static let vitH14 = WanCLIPConfig()

    /// Tokens: patches plus the class token (257).
    public var numPositions: Int { patchSize > 0 ? (imageSize / patchSize) * (imageSize / patchSize) + 1 : 0 }
    /// Per-head width (80).
    public var headDim: Int { numHeads > 0 ? dim / numHeads : 0 }

    /// Checks the hyper-parameters; throws `RuntimeError.invalidArgument`.
    public func validate() throws {
        func fail(_ s: String) throws -> Never { throw RuntimeError.invalidArgument("CLIP config \(self): \(s)") }
        for (name, v) in [("image_size", imageSize), ("patch_size", patchSize), ("dim", dim), ("mlp_dim", mlpDim),
                          ("num_heads", numHeads), ("out_dim", outDim)] where v <= 0 {
            try fail("\(name) must be positive")
        }
        if numLayers < 0 { try fail("num_layers must not be negative") }
        if imageSize % patchSize != 0 { try fail("image_size is not a multiple of patch_size") }
        if dim % numHeads != 0 { try fail("dim \(dim) is not a multiple of num_heads \(numHeads)") }
    }

    /// Every visual-tower tensor, official names and exact shapes, in `state_dict` order (spec §4.5).
    /// `visual.head` is optional (transformers' `CLIPVisionModel` has no projection; Wan does not use it).
    public func expectedTensors() -> [TensorSpec] {
        var t: [TensorSpec] = []
        func add(_ name: String, _ shape: [Int], optional: Bool = false) { t.append(TensorSpec(name: name, shape: shape, optional: optional)) }
        func affine(_ name: String, _ n: Int) {
            add(name + ".weight", [n])
            add(name + ".bias", [n])
        }
        func linear(_ name: String, _ outputs: Int, _ inputs: Int) {
            add(name + ".weight", [outputs, inputs])
            add(name + ".bias", [outputs])
        }
        add("visual.patch_embedding.weight", [dim, 3, patchSize, patchSize])
        add("visual.cls_embedding", [1, 1, dim])
        add("visual.pos_embedding", [1, numPositions, dim])
        affine("visual.pre_norm", dim)
        for n in 0..<max(numLayers, 0) {
            let b = "visual.transformer.\(n)."
            affine(b + "norm1", dim)
            linear(b + "attn.to_qkv", 3 * dim, dim)
            linear(b + "attn.proj", dim, dim)
            affine(b + "norm2", dim)
            linear(b + "mlp.0", mlpDim, dim)
            linear(b + "mlp.2", dim, mlpDim)
        }
        affine("visual.post_norm", dim)
        add("visual.head", [dim, outDim], optional: true)
        return t
    }

    /// `expectedTensors()` as entries of one dtype (optional ones included).
    public func expectedEntries(dtype: CheckpointDType = .f16) -> [TensorEntry] {
        expectedTensors().map { TensorEntry(name: $0.name, dtype: dtype, shape: $0.shape) }
    }

    /// Reads the hyper-parameters from official names → shapes; `num_heads` comes from `numHeads`, else
    /// `dim / 80` (ViT-H/14's head width) when that divides.
    public static func inferred(fromOfficialShapes shapes: [String: [Int]], numHeads: Int? = nil) throws -> WanCLIPConfig {
        guard let patch = shapes["visual.patch_embedding.weight"], patch.count == 4, patch[2] == patch[3] else {
            throw RuntimeError.invalidArgument("cannot read the CLIP patch embedding: visual.patch_embedding.weight is missing or not [dim, 3, p, p]")
        }
        let dim = patch[0]
        let layers = Set(shapes.keys.compactMap { blockIndex($0, after: "visual.transformer.") })
        var mlpDim = 4 * dim
        for n in layers.sorted() {
            if let s = shapes["visual.transformer.\(n).mlp.0.weight"], s.count == 2 { mlpDim = s[0]; break }
        }
        var imageSize = 224
        if let pos = shapes["visual.pos_embedding"], pos.count == 3 {
            let side = Int(Double(max(pos[1] - 1, 0)).squareRoot().rounded())
            if side * side == pos[1] - 1 { imageSize = side * patch[2] }
        }
        let heads: Int
        if let numHeads {
            heads = numHeads
        } else if dim % 80 == 0 {
            heads = dim / 80
        } else {
            throw RuntimeError.invalidArgument(
                "num_heads cannot be read from tensor shapes and dim \(dim) is not a multiple of 80 (ViT-H/14's head width); give num_heads")
        }
        let head = shapes["visual.head"].flatMap { $0.count == 2 ? $0 : nil }
        return WanCLIPConfig(imageSize: imageSize, patchSize: patch[2], dim: dim, mlpDim: mlpDim, numHeads: heads,
                             numLayers: (layers.max() ?? -1) + 1, outDim: head?[1] ?? 1024)
    }

    public var description: String {
        "image \(imageSize), patch \(patchSize), dim \(dim), mlp \(mlpDim), num_heads \(numHeads), num_layers \(numLayers), out_dim \(outDim)"
    }
}
