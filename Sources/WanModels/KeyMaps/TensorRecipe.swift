import WanRuntime

/// The Wan 2.1 networks whose weights come in checkpoint files.
public enum WanComponent: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The diffusion transformer (`WanModel`).
    case dit
    /// The causal 3-D video VAE (`WanVAE_`).
    case vae
    /// The umT5-XXL text encoder (encoder only).
    case t5
    /// The CLIP ViT-H/14 visual tower used by I2V / FLF2V.
    case clip

    /// A readable name for messages.
    public var description: String {
        switch self {
        case .dit: return "DiT"
        case .vae: return "VAE"
        case .t5: return "umT5 encoder"
        case .clip: return "CLIP visual tower"
        }
    }
}

/// The tensor-naming convention of a checkpoint (spec §4).
///
/// The project's own parameter names are the official ones. `comfyUI` means ComfyUI's repackaged single
/// files: official names for the DiT and VAE (the DiT optionally prefixed with `model.diffusion_model.`),
/// transformers names for umT5 and CLIP, possibly fp8 "scaled" (`*.scale_weight` / `*.weight_scale` tensors,
/// a `scaled_fp8` marker). `transformers` covers the HF `UMT5EncoderModel` / `CLIPVisionModel` names
/// (diffusers' `text_encoder/` and `image_encoder/` folders use them too).
public enum KeyConvention: String, Sendable, CaseIterable, CustomStringConvertible {
    case official, diffusers, comfyUI, transformers

    public var description: String { rawValue }
}

/// One tensor a model configuration expects: official name, exact shape, and whether files may omit it.
public struct TensorSpec: Sendable, Hashable, CustomStringConvertible {
    /// Official name.
    public var name: String
    /// Exact shape.
    public var shape: [Int]
    /// True for tensors that some valid files lack and the model does not need (e.g. CLIP `visual.head`).
    public var optional: Bool

    public init(name: String, shape: [Int], optional: Bool = false) {
        self.name = name
        self.shape = shape
        self.optional = optional
    }

    public var description: String { "\(name) \(shape)\(optional ? " (optional)" : "")" }
}

/// How the bytes of the source tensor(s) become the target tensor. Every transform keeps element values;
/// only their arrangement changes.
public enum TensorTransform: Sendable, Hashable, CustomStringConvertible {
    /// Same elements, same order, same shape.
    case identity
    /// Same elements in the same (row-major) order, another shape.
    case reshape
    /// A 2-D matrix transposed: source `[a, b]` becomes target `[b, a]`.
    case transpose
    /// The sources joined along `axis`, in order (axis 0: their bytes appended).
    case concat(axis: Int)
    /// The part `start ..< start + count` along `axis` of the single source.
    case slice(axis: Int, start: Int, count: Int)

    public var description: String {
        switch self {
        case .identity: return "identity"
        case .reshape: return "reshape"
        case .transpose: return "transpose"
        case let .concat(axis): return "concat(axis \(axis))"
        case let .slice(axis, start, count): return "slice(axis \(axis), \(start)..<\(start + count))"
        }
    }
}

/// One stored tensor feeding a recipe, with the fp8 scale its values must be multiplied by, if any.
public struct TensorSource: Sendable, Hashable, CustomStringConvertible {
    /// The tensor as the file names and stores it.
    public var entry: TensorEntry
    /// ComfyUI fp8 "scaled" files: the scale tensor (`*.scale_weight` / `*.weight_scale`); the real weight is
    /// `Float(entry) * scale`. Its shape is `[]` or `[1]` (one scale) or `[rows]` / `[rows, 1]` (one per row).
    public var scale: TensorEntry?

    public init(entry: TensorEntry, scale: TensorEntry? = nil) {
        self.entry = entry
        self.scale = scale
    }

    /// True when `scale` holds one value per row (output channel) rather than one for the whole tensor
    /// (a per-row scale of a one-row tensor counts as one scale).
    public var scaleIsPerRow: Bool {
        guard let scale else { return false }
        return scale.count > 1
    }

    public var description: String { scale.map { "\(entry.name) × \($0.name)" } ?? entry.name }
}

/// How to build one target tensor from the stored ones: target name/shape, sources, transform.
public struct TensorRecipe: Sendable, Hashable, CustomStringConvertible {
    /// Target name (official names when mapping to official).
    public var name: String
    /// Target shape, after the transform.
    public var shape: [Int]
    /// Stored element type of the sources (all sources of one recipe share it).
    public var dtype: CheckpointDType
    /// The stored tensors, in transform order.
    public var sources: [TensorSource]
    /// How the sources become the target.
    public var transform: TensorTransform

    public init(name: String, shape: [Int], dtype: CheckpointDType, sources: [TensorSource], transform: TensorTransform) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.sources = sources
        self.transform = transform
    }

    /// The target tensor as an entry (name, stored dtype, target shape).
    public var entry: TensorEntry { TensorEntry(name: name, dtype: dtype, shape: shape) }
    /// True when any source carries an fp8 scale.
    public var isScaled: Bool { sources.contains { $0.scale != nil } }

    public var description: String {
        "\(name) \(shape) ← \(transform)(\(sources.map(\.description).joined(separator: ", ")))"
    }
}

/// A stored tensor that matched a rule but cannot be used, with the reason.
public struct RejectedEntry: Sendable, Hashable, CustomStringConvertible {
    /// The tensor as stored.
    public var entry: TensorEntry
    /// Why it cannot be used.
    public var reason: String

    public init(entry: TensorEntry, reason: String) {
        self.entry = entry
        self.reason = reason
    }

    public var description: String { "\(entry.name) \(entry.shape): \(reason)" }
}

/// The result of mapping a list of entries from one convention to another.
public struct KeyMapping: Sendable, Hashable {
    /// The component whose tables were used.
    public var component: WanComponent
    /// The convention of the source entries.
    public var sourceConvention: KeyConvention
    /// The convention of the recipe names.
    public var targetConvention: KeyConvention
    /// The prefix stripped from (or added to) the ComfyUI DiT / VAE names, "" when none.
    public var prefix: String
    /// One recipe per target tensor, in the order the sources appear.
    public var recipes: [TensorRecipe]
    /// Entries no rule knows (unexpected tensors).
    public var unmapped: [TensorEntry]
    /// Entries deliberately left out: fp8 markers and input scales, tied duplicates, unused towers
    /// (the CLIP text tower, the T5 decoder, HF `position_ids` buffers).
    public var ignored: [TensorEntry]
    /// Entries that matched a rule but cannot be used (duplicates, impossible shapes, orphan or
    /// misshapen fp8 scales, incomplete q/k/v groups).
    public var rejected: [RejectedEntry]
    /// True when the source carried ComfyUI fp8 scale tensors or a `scaled_fp8` marker.
    public var scaledFP8: Bool

    /// The target tensors as entries (name, stored dtype, target shape), in recipe order.
    public var entries: [TensorEntry] { recipes.map(\.entry) }
    /// Number of recipes whose sources carry an fp8 scale.
    public var scaledCount: Int { recipes.filter(\.isScaled).count }
    /// The recipe for a target name.
    public func recipe(named name: String) -> TensorRecipe? { recipes.first { $0.name == name } }
}
