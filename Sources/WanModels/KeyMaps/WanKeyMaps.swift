import WanRuntime

/// Key maps between the official Wan 2.1 tensor names (the project's own parameter names) and the
/// diffusers, transformers and ComfyUI names (spec §4), with exact shape transforms. The tables are in
/// `KeyTables`; mapping never reads tensor data, it only plans how to build each target tensor.
public enum WanKeyMaps {
    /// Maps a checkpoint's entries, named in `convention`, to official names.
    ///
    /// ComfyUI prefixes (`model.diffusion_model.` …) are stripped for `.comfyUI`; fp8 scale tensors
    /// (`X.scale_weight` / `X.weight_scale`) are attached to `X.weight` in every convention, and the
    /// `scaled_fp8` / `X.comfy_quant` markers and input scales are set aside as ignored. Problems (unknown
    /// names, duplicates, impossible shapes, orphan scales) are reported in the mapping, not thrown.
    /// Throws only when `component` has no names in `convention` (a DiT or VAE in transformers names).
    public static func toOfficial(_ entries: [TensorEntry], component: WanComponent, from convention: KeyConvention) throws -> KeyMapping {
        guard let table = KeyTables.table(for: component, convention: convention) else {
            throw RuntimeError.invalidArgument("the \(component) has no \(convention) tensor names")
        }
        let prefix = convention == .comfyUI ? detectPrefix(entries, component: component) : ""
        let prepared = prepare(entries, prefix: prefix)
        let outcome = table.mapToOfficial(prepared.items)
        return KeyMapping(component: component, sourceConvention: convention, targetConvention: .official, prefix: prefix,
                          recipes: outcome.recipes, unmapped: outcome.unmapped, ignored: prepared.ignored + outcome.ignored,
                          rejected: prepared.rejected + outcome.rejected, scaledFP8: prepared.scaled)
    }

    /// Maps official entries to `convention`'s names and shapes (for writing files in that layout, and the
    /// reverse direction of `toOfficial`). ComfyUI DiT names get the `model.diffusion_model.` prefix.
    public static func fromOfficial(_ entries: [TensorEntry], component: WanComponent, to convention: KeyConvention) throws -> KeyMapping {
        guard let table = KeyTables.table(for: component, convention: convention) else {
            throw RuntimeError.invalidArgument("the \(component) has no \(convention) tensor names")
        }
        let prefix = KeyTables.writtenPrefix(for: component, convention: convention)
        let items = entries.map { MappingItem(name: $0.name, source: TensorSource(entry: $0)) }
        let outcome = table.mapFromOfficial(items, prefix: prefix)
        return KeyMapping(component: component, sourceConvention: .official, targetConvention: convention, prefix: prefix,
                          recipes: outcome.recipes, unmapped: outcome.unmapped, ignored: outcome.ignored,
                          rejected: outcome.rejected, scaledFP8: false)
    }

    /// The official name of one stored name in `convention` (for q/k/v parts: the fused tensor), or nil.
    public static func officialName(of name: String, component: WanComponent, convention: KeyConvention) -> String? {
        guard let table = KeyTables.table(for: component, convention: convention) else { return nil }
        var stripped = name
        if convention == .comfyUI, let p = KeyTables.prefixes(for: component).first(where: { name.hasPrefix($0) }) {
            stripped = String(name.dropFirst(p.count))
        }
        return table.officialName(of: stripped)
    }

    /// The name(s) an official tensor has in `convention` (three for CLIP's fused q/k/v), or [] if unknown.
    public static func names(forOfficial name: String, component: WanComponent, convention: KeyConvention) -> [String] {
        guard let table = KeyTables.table(for: component, convention: convention) else { return [] }
        let prefix = KeyTables.writtenPrefix(for: component, convention: convention)
        return table.otherNames(of: name).map { prefix + $0 }
    }

    /// The prefixes ComfyUI may put before `component`'s names.
    public static func knownPrefixes(for component: WanComponent) -> [String] { KeyTables.prefixes(for: component) }

    // MARK: internals

    /// The first known prefix any entry starts with, or "".
    static func detectPrefix(_ entries: [TensorEntry], component: WanComponent) -> String {
        for p in KeyTables.prefixes(for: component) where entries.contains(where: { $0.name.hasPrefix(p) }) {
            return p
        }
        return ""
    }

    /// True for ComfyUI quantization side tensors that carry no weight of their own.
    static func isQuantizationMarker(_ name: String) -> Bool {
        name == "scaled_fp8" || name.hasSuffix(".comfy_quant") || name.hasSuffix(".scale_input") || name.hasSuffix(".input_scale")
    }

    /// The weight an fp8 scale tensor belongs to (`X.scale_weight` / `X.weight_scale` → `X.weight`), if it is one.
    static func scaledWeightName(_ name: String) -> String? {
        for suffix in [".scale_weight", ".weight_scale"] where name.hasSuffix(suffix) {
            return String(name.dropLast(suffix.count)) + ".weight"
        }
        return nil
    }

    struct Prepared {
        var items: [MappingItem] = []
        var ignored: [TensorEntry] = []
        var rejected: [RejectedEntry] = []
        var scaled = false
    }

    /// Strips `prefix`, sets quantization markers aside and attaches fp8 scales to their weights.
    static func prepare(_ entries: [TensorEntry], prefix: String) -> Prepared {
        var out = Prepared()
        var scales: [String: TensorEntry] = [:]
        var scaleOrder: [String] = []
        for entry in entries {
            let name = !prefix.isEmpty && entry.name.hasPrefix(prefix) ? String(entry.name.dropFirst(prefix.count)) : entry.name
            if isQuantizationMarker(name) {
                out.ignored.append(entry)
                out.scaled = true
            } else if let weight = scaledWeightName(name) {
                out.scaled = true
                if let first = scales[weight] {
                    out.rejected.append(RejectedEntry(entry: entry, reason: "second fp8 scale for \(weight) (first: \(first.name))"))
                } else {
                    scales[weight] = entry
                    scaleOrder.append(weight)
                }
            } else {
                out.items.append(MappingItem(name: name, source: TensorSource(entry: entry)))
            }
        }
        for i in out.items.indices {
            guard let scale = scales.removeValue(forKey: out.items[i].name) else { continue }
            let weight = out.items[i].source.entry
            let rows = weight.shape.first ?? 1
            let perTensor = scale.count == 1 && scale.shape.count <= 2
            let perRow = scale.shape == [rows] || scale.shape == [rows, 1]
            if perTensor || perRow {
                out.items[i].source.scale = scale
            } else {
                out.rejected.append(RejectedEntry(entry: scale, reason:
                    "fp8 scale shape \(scale.shape) fits neither one scale ([] or [1]) nor one per row ([\(rows)]) of \(weight.name) \(weight.shape)"))
            }
        }
        for weight in scaleOrder {
            if let scale = scales[weight] {
                out.rejected.append(RejectedEntry(entry: scale, reason: "fp8 scale without its weight \(weight)"))
            }
        }
        return out
    }
}
