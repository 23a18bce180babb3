import WanRuntime

/// A model configuration of any Wan 2.1 component.
public enum WanModelConfig: Sendable, Hashable, CustomStringConvertible {
    case dit(WanDiTConfig)
    case vae(WanVAEConfig)
    case t5(WanT5Config)
    case clip(WanCLIPConfig)

    /// The component the configuration describes.
    public var component: WanComponent {
        switch self {
        case .dit: return .dit
        case .vae: return .vae
        case .t5: return .t5
        case .clip: return .clip
        }
    }

    /// Every tensor the configuration expects (official names).
    public func expectedTensors() -> [TensorSpec] {
        switch self {
        case let .dit(c): return c.expectedTensors()
        case let .vae(c): return c.expectedTensors()
        case let .t5(c): return c.expectedTensors()
        case let .clip(c): return c.expectedTensors()
        }
    }

    public var description: String {
        switch self {
        case let .dit(c): return c.description
        case let .vae(c): return c.description
        case let .t5(c): return c.description
        case let .clip(c): return c.description
        }
    }
}

/// Which component a list of tensors holds and how it names them.
public struct WanCheckpointFormat: Sendable, Hashable, CustomStringConvertible {
    /// The network the tensors belong to.
    public var component: WanComponent
    /// How the tensors are named.
    public var convention: KeyConvention
    /// The ComfyUI prefix on the names, "" when none.
    public var prefix: String
    /// True when ComfyUI fp8 scale tensors or markers are present.
    public var scaledFP8: Bool
    /// How many stored tensors the component's name rules recognise.
    public var recognized: Int

    public var description: String {
        var s = "\(component), \(convention) names"
        if !prefix.isEmpty { s += ", prefix \(prefix)" }
        if scaledFP8 { s += ", fp8 scaled" }
        return s
    }
}

/// Options of `WanCheckpointDetector.detect`.
public struct WanDetectionOptions: Sendable, Hashable {
    /// Only consider this component (nil: decide from the names).
    public var component: WanComponent?
    /// Read the names in this convention (nil: decide from the names).
    public var convention: KeyConvention?
    /// Accept configurations other than the released ones when the tensors are self-consistent.
    public var allowCustom: Bool
    /// `num_heads` of the DiT or CLIP tower, which tensor shapes do not determine (from `config.json`).
    public var numHeads: Int?
    /// DiT `text_len` (not in any shape).
    public var textLen: Int
    /// DiT `eps` (not in any shape).
    public var eps: Double

    public init(component: WanComponent? = nil, convention: KeyConvention? = nil, allowCustom: Bool = false,
                numHeads: Int? = nil, textLen: Int = 512, eps: Double = 1e-6) {
        self.component = component
        self.convention = convention
        self.allowCustom = allowCustom
        self.numHeads = numHeads
        self.textLen = textLen
        self.eps = eps
    }
}

/// What a list of checkpoint tensors is: format, official-name mapping, configuration and variant.
public struct WanCheckpointDetection: Sendable {
    /// Component, convention, prefix, fp8 scaling.
    public var format: WanCheckpointFormat
    /// How to build every official tensor from the stored ones.
    public var mapping: KeyMapping
    /// The configuration the tensors match exactly.
    public var config: WanModelConfig
    /// The released DiT variant, nil for other components and custom DiTs.
    public var ditVariant: WanDiTVariant?
    /// True when the configuration is not a released one (accepted with `allowCustom`).
    public var isCustom: Bool
    /// "T2V-1.3B", "I2V-14B", "Wan2.1 VAE", "umT5-XXL", "CLIP ViT-H/14" or "custom".
    public var variantName: String
}

/// Detects the component, naming convention, ComfyUI prefix / fp8 scaling and model variant of a list of
/// checkpoint tensors from their names and shapes alone.
public enum WanCheckpointDetector {
    /// The component and convention whose name rules recognise the most tensors, or nil if none does.
    /// Official-named DiT/VAE and transformers-named umT5/CLIP lists count as ComfyUI when they carry a
    /// ComfyUI prefix or fp8 scale tensors.
    public static func identify(_ entries: [TensorEntry], component: WanComponent? = nil) -> WanCheckpointFormat? {
        // Names (without the prefix), their templates and bytes, computed once per distinct prefix.
        struct Prepared {
            var names: [(template: String, bytes: [UInt8])] = []
            var quantized = false
        }
        var preparedByPrefix: [String: Prepared] = [:]
        func prepared(_ prefix: String) -> Prepared {
            if let done = preparedByPrefix[prefix] { return done }
            var out = Prepared()
            for entry in entries {
                let name = !prefix.isEmpty && entry.name.hasPrefix(prefix) ? String(entry.name.dropFirst(prefix.count)) : entry.name
                if WanKeyMaps.isQuantizationMarker(name) || WanKeyMaps.scaledWeightName(name) != nil {
                    out.quantized = true
                } else {
                    out.names.append((keyTemplate(name), Array(name.utf8)))
                }
            }
            preparedByPrefix[prefix] = out
            return out
        }
        var best: WanCheckpointFormat?
        for candidate in component.map({ [$0] }) ?? WanComponent.allCases {
            let prefix = WanKeyMaps.detectPrefix(entries, component: candidate)
            let names = prepared(prefix)
            let quantized = names.quantized
            let other: KeyConvention = candidate == .dit || candidate == .vae ? .diffusers : .transformers
            for base in [KeyConvention.official, other] {
                guard let table = KeyTables.table(for: candidate, convention: base) else { continue }
                let score = names.names.reduce(0) { $0 + (table.matchesOther(template: $1.template, bytes: $1.bytes) ? 1 : 0) }
                guard score > (best?.recognized ?? 0) else { continue }
                let comfyBase = KeyTables.baseConvention(of: .comfyUI, for: candidate)
                let comfy = base == comfyBase && (!prefix.isEmpty || quantized)
                best = WanCheckpointFormat(component: candidate, convention: comfy ? .comfyUI : base,
                                           prefix: comfy ? prefix : "", scaledFP8: quantized, recognized: score)
            }
        }
        return best
    }

    /// Identifies the tensors, maps them to official names and determines the configuration: a released
    /// variant when the tensors match one exactly, a custom configuration read from the shapes when
    /// `options.allowCustom` and the tensors are self-consistent. Otherwise throws
    /// `RuntimeError.invalidArgument` with a report of missing, unexpected and misshapen tensors against the
    /// closest configuration.
    public static func detect(_ entries: [TensorEntry], options: WanDetectionOptions = WanDetectionOptions()) throws -> WanCheckpointDetection {
        var format: WanCheckpointFormat
        if let identified = identify(entries, component: options.component) {
            format = identified
        } else if let component = options.component {
            format = WanCheckpointFormat(component: component, convention: options.convention ?? .official, prefix: "",
                                         scaledFP8: false, recognized: 0)
        } else {
            let sample = entries.prefix(3).map(\.name).joined(separator: ", ")
            throw RuntimeError.invalidArgument(
                "no Wan 2.1 tensor names recognised among \(entries.count) tensors\(sample.isEmpty ? "" : " (\(sample)\(entries.count > 3 ? ", …" : ""))")")
        }
        if let convention = options.convention { format.convention = convention }
        let mapping = try WanKeyMaps.toOfficial(entries, component: format.component, from: format.convention)
        format.prefix = mapping.prefix
        format.scaledFP8 = mapping.scaledFP8
        var shapes: [String: [Int]] = [:]
        for recipe in mapping.recipes { shapes[recipe.name] = recipe.shape }

        let known: [Candidate]
        let custom: () throws -> Candidate
        switch format.component {
        case .dit:
            known = WanDiTVariant.allCases.map { variant in
                var config = variant.config
                config.textLen = options.textLen
                config.eps = options.eps
                return Candidate(name: variant.rawValue, config: .dit(config), ditVariant: variant)
            }
            custom = {
                let config = try WanDiTConfig.inferred(fromOfficialShapes: shapes, numHeads: options.numHeads,
                                                       textLen: options.textLen, eps: options.eps)
                try config.validate()
                return Candidate(name: "custom", config: .dit(config), ditVariant: nil)
            }
        case .vae:
            known = [Candidate(name: "Wan2.1 VAE", config: .vae(.wan21), ditVariant: nil)]
            custom = {
                let config = try WanVAEConfig.inferred(fromOfficialShapes: shapes)
                try config.validate()
                return Candidate(name: "custom", config: .vae(config), ditVariant: nil)
            }
        case .t5:
            known = [Candidate(name: "umT5-XXL", config: .t5(.umt5XXL), ditVariant: nil)]
            custom = {
                let config = try WanT5Config.inferred(fromOfficialShapes: shapes)
                try config.validate()
                return Candidate(name: "custom", config: .t5(config), ditVariant: nil)
            }
        case .clip:
            known = [Candidate(name: "CLIP ViT-H/14", config: .clip(.vitH14), ditVariant: nil)]
            custom = {
                let config = try WanCLIPConfig.inferred(fromOfficialShapes: shapes, numHeads: options.numHeads)
                try config.validate()
                return Candidate(name: "custom", config: .clip(config), ditVariant: nil)
            }
        }

        // Fast path: only candidates whose tensor count fits can match exactly.
        let expectedLists = known.map { $0.config.expectedTensors() }
        let clean = mapping.unmapped.isEmpty && mapping.rejected.isEmpty
        for (candidate, expected) in zip(known, expectedLists) {
            let required = expected.reduce(0) { $0 + ($1.optional ? 0 : 1) }
            guard clean, (required...expected.count).contains(mapping.recipes.count) else { continue }
            if TensorListDiff.compare(mapping, expected: expected).isEmpty {
                try checkHeads(options.numHeads, candidate)
                return WanCheckpointDetection(format: format, mapping: mapping, config: candidate.config,
                                              ditVariant: candidate.ditVariant, isCustom: false, variantName: candidate.name)
            }
        }
        var customCandidate: Candidate?
        var customDiff: TensorListDiff?
        var customProblem: String?
        do {
            let candidate = try custom()
            customCandidate = candidate
            customDiff = TensorListDiff.compare(mapping, expected: candidate.config.expectedTensors())
        } catch let error as RuntimeError {
            if case let .invalidArgument(text) = error { customProblem = text } else { customProblem = error.description }
        }
        if options.allowCustom, let candidate = customCandidate, let diff = customDiff, diff.isEmpty {
            return WanCheckpointDetection(format: format, mapping: mapping, config: candidate.config, ditVariant: nil,
                                          isCustom: true, variantName: candidate.name)
        }

        var closest: (candidate: Candidate, diff: TensorListDiff)?
        for (candidate, expected) in zip(known, expectedLists) {
            let diff = TensorListDiff.compare(mapping, expected: expected)
            if let best = closest, best.diff.problemCount <= diff.problemCount { continue }
            closest = (candidate, diff)
        }
        guard var chosen = closest else {
            throw RuntimeError.invalidArgument("no known \(format.component) configuration")
        }
        if options.allowCustom, let candidate = customCandidate, let diff = customDiff, diff.problemCount < chosen.diff.problemCount {
            chosen = (candidate, diff)
        }
        let what: String
        switch format.component {
        case .dit: what = "a released Wan 2.1 DiT (\(WanDiTVariant.allCases.map(\.rawValue).joined(separator: ", ")))"
        default: what = "the released Wan 2.1 \(format.component) (\(known.map(\.name).joined(separator: ", ")))"
        }
        var message = "checkpoint (\(format), \(entries.count) tensors) is not \(what)"
        if options.allowCustom { message += " nor a consistent custom configuration" }
        let expectedCount = chosen.candidate.config.expectedTensors().filter { !$0.optional }.count
        let label = chosen.candidate.ditVariant == nil && chosen.candidate.name == "custom"
            ? "the custom configuration read from the shapes (\(chosen.candidate.config))" : chosen.candidate.name
        message += ".\nclosest: \(label), \(expectedCount) tensors expected: \(chosen.diff.summary)\n"
        message += chosen.diff.report()
        if !options.allowCustom, let candidate = customCandidate, let diff = customDiff, diff.isEmpty {
            message += "\nthe tensors form a consistent custom configuration (\(candidate.config)); allow custom configurations to load it"
        }
        if options.allowCustom, let customProblem {
            message += "\nno custom configuration: \(customProblem)"
        }
        throw RuntimeError.invalidArgument(message)
    }

    struct Candidate {
        var name: String
        var config: WanModelConfig
        var ditVariant: WanDiTVariant?
    }

    static func checkHeads(_ numHeads: Int?, _ candidate: Candidate) throws {
        guard let numHeads else { return }
        let known: Int?
        switch candidate.config {
        case let .dit(c): known = c.numHeads
        case let .clip(c): known = c.numHeads
        default: known = nil
        }
        if let known, known != numHeads {
            throw RuntimeError.invalidArgument("num_heads \(numHeads) contradicts \(candidate.name), which has \(known) heads")
        }
    }
}
