import WanGraph
import WanRuntime

extension WanDiT {
    /// A weight of a shape-only model (`init(shapeOnly:...)`): its shape, stored dtype and residence.
    struct Placeholder: Sendable {
        var shape: [Int]
        var dtype: DType
        var residence: MemoryResidence
    }

    /// Every weight of `config` as `precision` stores it (FP8: plus a per-output-channel f32 scale named
    /// `name:scale`, in device memory as the loader puts it), in `residence` (default: device memory).
    static func placeholders(config: WanDiTConfig, precision: Precision,
                             residence: [String: MemoryResidence]) -> [String: Placeholder] {
        var out: [String: Placeholder] = [:]
        for spec in config.expectedTensors() where !spec.optional {
            let dtype = isReducedPrecisionWeight(spec.name) ? precision.matmulDType : .f32
            out[spec.name] = Placeholder(shape: spec.shape, dtype: dtype, residence: residence[spec.name] ?? .device)
            if dtype == .f8e4m3fn {
                out[spec.name + ":scale"] = Placeholder(shape: [spec.shape.first ?? 1], dtype: .f32, residence: .device)
            }
        }
        return out
    }

    /// Bytes of the weights of `config` as `precision` stores them: every tensor of `expectedTensors()` at its
    /// stored dtype (f32, or the matmul dtype for `isReducedPrecisionWeight` tensors), plus the f32
    /// per-output-channel scales of FP8 weights. Exact (no allocation padding).
    public static func weightBytes(config: WanDiTConfig, precision: Precision) -> Int {
        placeholders(config: config, precision: precision, residence: [:]).values.reduce(0) {
            $0 + $1.shape.reduce(1, *) * $1.dtype.size
        }
    }

    /// Bytes of the weights of `config` as `precision` stores them, split as `weightResidence` places them under
    /// `deviceWeightBudget`: in device memory, and in host memory (streamed each forward). Exact.
    public static func weightBytes(config: WanDiTConfig, precision: Precision,
                                   deviceWeightBudget: Int?) throws -> (device: Int, host: Int) {
        let residence = try weightResidence(config: config, precision: precision, deviceWeightBudget: deviceWeightBudget)
        var device = 0, host = 0
        for p in placeholders(config: config, precision: precision, residence: residence).values {
            let bytes = p.shape.reduce(1, *) * p.dtype.size
            if p.residence == .host { host += bytes } else { device += bytes }
        }
        return (device, host)
    }

    /// Bytes of the weights outside the transformer blocks and of each block, as `precision` stores them (FP8
    /// scales included): what `weightResidence` weighs against a device weight budget.
    public static func blockWeightBytes(config: WanDiTConfig, precision: Precision) -> (outside: Int, blocks: [Int]) {
        var outside = 0
        var blocks = [Int](repeating: 0, count: max(config.numLayers, 0))
        for (name, p) in placeholders(config: config, precision: precision, residence: [:]) {
            let bytes = p.shape.reduce(1, *) * p.dtype.size
            let parts = name.split(separator: ".")
            if parts.count > 2, parts[0] == "blocks", let i = Int(parts[1]), blocks.indices.contains(i) {
                blocks[i] += bytes
            } else {
                outside += bytes
            }
        }
        return (outside, blocks)
    }

    /// The device memory of the session `session(batch:frames:height:width:contextRows:clipTokens:)` would
    /// compile: activation arenas planned from the very graph it compiles, its inputs, the RoPE table and the
    /// weights (as tensors, or as placeholders for a shape-only model, streamed ones counted in host memory),
    /// without compiling or allocating it. `maxArenaBytes`: the device's largest allocation.
    public func footprint(batch: Int, frames: Int, height: Int, width: Int, contextRows: Int? = nil, clipTokens: Int? = nil,
                          maxArenaBytes: Int = Int.max) throws -> GraphFootprint {
        let rows = contextRows ?? config.textLen
        guard rows > 0 else { throw RuntimeError.invalidArgument("DiT: context rows must be positive") }
        let g = try WanDiTSession.graph(model: self, batch: batch, frames: frames, height: height, width: width,
                                        contextRows: rows, clipTokens: config.hasImageInput ? clipTokens : nil)
        return try g.footprint(maxArenaBytes: maxArenaBytes)
    }

    /// Whether the model has no weights (`init(shapeOnly:...)`).
    public var isShapeOnly: Bool { !placeholders.isEmpty }
}
