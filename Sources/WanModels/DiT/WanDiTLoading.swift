import Foundation
import WanRuntime

extension WanDiT {
    /// Loads a DiT from a checkpoint in any supported format and naming convention (official, ComfyUI with
    /// or without prefix and fp8 scales, diffusers), mapped to official names (`WanKeyMaps.toOfficial`),
    /// on `device` (f32, matmul weights in `precision`'s type). With `config` nil the configuration is detected from the tensors
    /// (`WanCheckpointDetector`, custom sizes allowed); `numHeads`, `textLen` and `eps` supply what shapes
    /// cannot tell (`config.json`).
    public static func load(path: String, device: Device, config: WanDiTConfig? = nil, numHeads: Int? = nil,
                            textLen: Int = 512, eps: Double = 1e-6, precision: Precision = .fp32,
                            deviceWeightBudget: Int? = nil) throws -> WanDiT {
        let reader = try CheckpointFile.open(path)
        return try load(reader: reader, device: device, config: config, numHeads: numHeads, textLen: textLen, eps: eps,
                        precision: precision, deviceWeightBudget: deviceWeightBudget)
    }

    /// `load(path:...)` from an opened checkpoint.
    public static func load(reader: any CheckpointReader, device: Device, config: WanDiTConfig? = nil, numHeads: Int? = nil,
                            textLen: Int = 512, eps: Double = 1e-6, precision: Precision = .fp32,
                            deviceWeightBudget: Int? = nil) throws -> WanDiT {
        let options = WanDetectionOptions(component: .dit, allowCustom: true, numHeads: numHeads ?? config?.numHeads,
                                          textLen: config?.textLen ?? textLen, eps: config?.eps ?? eps)
        let mapping: KeyMapping
        let resolved: WanDiTConfig
        if let config {
            let convention = WanCheckpointDetector.identify(reader.entries, component: .dit)?.convention ?? .official
            mapping = try WanKeyMaps.toOfficial(reader.entries, component: .dit, from: convention)
            resolved = config
        } else {
            let detection = try WanCheckpointDetector.detect(reader.entries, options: options)
            guard case let .dit(detected) = detection.config else {
                throw RuntimeError.invalidArgument("\(reader.path): not a DiT checkpoint (\(detection.variantName))")
            }
            mapping = detection.mapping
            resolved = detected
        }
        if !mapping.unmapped.isEmpty || !mapping.rejected.isEmpty {
            let list = (mapping.unmapped.map { "unexpected \($0.name)" } + mapping.rejected.map(\.description)).prefix(20)
            throw RuntimeError.invalidArgument("\(reader.path): tensors that do not fit the DiT: \(list.joined(separator: "; "))")
        }
        // Each weight goes straight to where it will live (device memory, or host memory when streamed).
        let residence = try weightResidence(config: resolved, precision: precision, deviceWeightBudget: deviceWeightBudget)
        var weights: [String: Tensor] = [:]
        var scales: [String: Tensor] = [:]
        for recipe in mapping.recipes {
            let values = try materialize(recipe, reader: reader)
            let dtype = isReducedPrecisionWeight(recipe.name) ? precision.matmulDType : .f32
            let home = device.isCPU ? MemoryResidence.device : residence[recipe.name] ?? .device
            if dtype == .f8e4m3fn {
                let q = try quantizedFP8(values, shape: recipe.shape)
                weights[recipe.name] = try device.tensor(bytes: q.bytes, shape: recipe.shape, dtype: .f8e4m3fn, residence: home)
                scales[recipe.name] = try device.tensor(q.scales, shape: [recipe.shape[0]])
            } else {
                weights[recipe.name] = try device.tensor(values, shape: recipe.shape, dtype: dtype, residence: home)
            }
        }
        return try WanDiT(config: resolved, weights: weights, device: device, precision: precision,
                          deviceWeightBudget: deviceWeightBudget, weightScales: scales)
    }

    /// The target tensor of a key-map recipe as f32 values: sources decoded (times their fp8 scales) and
    /// arranged by the recipe's transform.
    static func materialize(_ recipe: TensorRecipe, reader: any CheckpointReader) throws -> [Float] {
        var parts: [[Float]] = []
        for source in recipe.sources {
            var v = try reader.floats(source.entry.name)
            if let scaleEntry = source.scale {
                let s = try reader.floats(scaleEntry.name)
                if s.count == 1 {
                    for i in v.indices { v[i] *= s[0] }
                } else {
                    let rows = source.entry.shape.first ?? 1
                    guard s.count == rows, rows > 0, v.count % rows == 0 else {
                        throw RuntimeError.shapeMismatch("\(source.entry.name): \(s.count) scales for \(rows) rows")
                    }
                    let per = v.count / rows
                    for r in 0..<rows { for i in 0..<per { v[r * per + i] *= s[r] } }
                }
            }
            parts.append(v)
        }
        func single() throws -> (values: [Float], shape: [Int]) {
            guard parts.count == 1 else { throw RuntimeError.invalidArgument("\(recipe.name): \(parts.count) sources for \(recipe.transform)") }
            return (parts[0], recipe.sources[0].entry.shape)
        }
        let total = recipe.shape.reduce(1, *)
        let result: [Float]
        switch recipe.transform {
        case .identity, .reshape:
            result = try single().values
        case .transpose:
            let (v, s) = try single()
            guard s.count == 2 else { throw RuntimeError.shapeMismatch("\(recipe.name): transpose of \(s)") }
            var out = [Float](repeating: 0, count: v.count)
            for i in 0..<s[0] { for j in 0..<s[1] { out[j * s[0] + i] = v[i * s[1] + j] } }
            result = out
        case let .concat(axis):
            let shapes = recipe.sources.map(\.entry.shape)
            guard axis >= 0, shapes.allSatisfy({ $0.count > axis }) else {
                throw RuntimeError.shapeMismatch("\(recipe.name): concat axis \(axis) of \(shapes)")
            }
            let outer = shapes[0].prefix(axis).reduce(1, *)
            var out: [Float] = []
            out.reserveCapacity(total)
            for o in 0..<outer {
                for (k, part) in parts.enumerated() {
                    let inner = shapes[k].suffix(from: axis).reduce(1, *)
                    out.append(contentsOf: part[(o * inner)..<((o + 1) * inner)])
                }
            }
            result = out
        case let .slice(axis, start, count):
            let (v, s) = try single()
            guard axis >= 0, axis < s.count, start >= 0, start + count <= s[axis] else {
                throw RuntimeError.shapeMismatch("\(recipe.name): slice \(start)..<\(start + count) of axis \(axis) of \(s)")
            }
            let outer = s.prefix(axis).reduce(1, *), inner = s.suffix(from: axis + 1).reduce(1, *)
            var out: [Float] = []
            out.reserveCapacity(total)
            for o in 0..<outer {
                let base = o * s[axis] * inner
                out.append(contentsOf: v[(base + start * inner)..<(base + (start + count) * inner)])
            }
            result = out
        }
        guard result.count == total else {
            throw RuntimeError.shapeMismatch("\(recipe.name): \(result.count) values for shape \(recipe.shape)")
        }
        return result
    }
}
