import Foundation
import WanModels
import WanRuntime

/// Runs one model component on named input tensors from a `.safetensors` file and writes its outputs
/// to another, so a user can compare this engine with their own PyTorch run tensor for tensor
/// (`wan forward`).
///
/// - `dit`: inputs `x` [B, C, F, H, W], `t` [B], `context` [B, L, text_dim], optional `context_lens` [B];
///   output `out` [B, C_out, F, H, W].
/// - `t5`: inputs `ids` [B, L] and optional `mask` [B, L] (1 for real tokens; default all); output `context`
///   [B, text_len, dim], each prompt's rows then zeros (as the pipeline feeds the DiT).
/// - `vae-decode`: input `latent` [16, T, h, w] (normalised, as the DiT produces it); output `video`
///   [3, 1 + 4(T−1), 8h, 8w] in [−1, 1]. `vae-encode`: input `video` [3, 1 + 4n, H, W]; output `latent`.
/// - `sample`: the whole sampling loop of the DiT weights: inputs `noise` [16, T, h, w], `context_cond` and
///   `context_uncond` [L, text_dim] (each prompt's trimmed umT5 output, L ≤ text_len; zero-padded as the
///   official model does); settings `steps`, `shift`, `guidance`, `sampler`; outputs the final `latent`, the
///   integer `timesteps` (I64) the DiT was given and the `sigmas` (N + 1) of the schedule.
public enum ComponentForward {
    /// Options of a run: the checkpoint, the inputs (names optionally prefixed, e.g. `case1.x`), the output
    /// file, an optional config JSON (DiT), the precision (`fp32`, `fp16`, `bf16`; `fp8` for the DiT; the VAE's fp16 is
    /// `WanVAE.fp16Compute`) and text length.
    public struct Options: Sendable {
        public var component: String
        public var weights: String
        public var inputs: String
        public var output: String
        public var inputPrefix: String = ""
        public var configPath: String?
        public var precision: String = "fp32"
        public var textLen: Int?
        /// `sample`: steps, shift, guidance scale and sampler.
        public var steps = 50, shift = 5.0, guidance: Float = 5, sampler = SamplerKind.unipc

        public init(component: String, weights: String, inputs: String, output: String) {
            self.component = component
            self.weights = weights
            self.inputs = inputs
            self.output = output
        }
    }

    /// Runs the component on `device`; returns the output names and shapes written.
    @discardableResult
    public static func run(_ o: Options, device: Device) throws -> [(name: String, shape: [Int])] {
        guard ["fp32", "fp16", "bf16", "fp8"].contains(o.precision) else {
            throw RuntimeError.invalidArgument("precision \(o.precision): expected fp32, fp16, bf16 or fp8")
        }
        if o.precision == "fp8" && !["dit", "sample"].contains(o.component) {
            throw RuntimeError.invalidArgument("precision fp8 applies to the DiT (dit, sample); \(o.component) runs in fp32, fp16 or bf16")
        }
        if o.precision == "bf16" && o.component.hasPrefix("vae") {
            throw RuntimeError.invalidArgument("precision bf16: the VAE runs in fp32 or fp16 (fp16-compute convolutions)")
        }
        let reader = try CheckpointFile.open(o.inputs)
        func has(_ name: String) -> Bool { reader.entry(o.inputPrefix + name) != nil }
        func tensor(_ name: String) throws -> (values: [Float], shape: [Int]) {
            guard let e = reader.entry(o.inputPrefix + name) else {
                throw RuntimeError.invalidArgument("\(o.inputs) has no tensor '\(o.inputPrefix + name)' (it has: \(reader.entries.prefix(20).map(\.name).joined(separator: ", ")))")
            }
            return (try reader.floats(e.name), e.shape)
        }
        func loadDiT() throws -> WanDiT {
            try WanDiT.load(path: o.weights, device: device, config: try o.configPath.map { try ditConfig(fromJSON: $0) },
                            textLen: o.textLen ?? 512, precision: WanDiT.Precision(rawValue: o.precision) ?? .fp32)
        }
        var results: [(name: String, shape: [Int], values: [Float])] = []
        switch o.component {
        case "sample":
            let model = try loadDiT()
            let noise = try tensor("noise")
            let shape = noise.shape.count == 5 && noise.shape[0] == 1 ? Array(noise.shape.dropFirst()) : noise.shape
            guard shape.count == 4, shape[0] == model.config.inDim else {
                throw RuntimeError.shapeMismatch("sample: noise must be [\(model.config.inDim), T, h, w], got \(noise.shape)")
            }
            let (rows, width) = (model.config.textLen, model.config.textDim)
            func context(_ name: String) throws -> [Float] {
                let c = try tensor(name)
                let s = c.shape.count == 3 && c.shape[0] == 1 ? Array(c.shape.dropFirst()) : c.shape
                guard s.count == 2, s[1] == width, s[0] >= 1, s[0] <= rows else {
                    throw RuntimeError.shapeMismatch("sample: \(name) must be [L ≤ \(rows), \(width)], got \(c.shape)")
                }
                return c.values + [Float](repeating: 0, count: (rows - s[0]) * width)
            }
            var settings = GenerationSettings(prompt: "-")
            (settings.steps, settings.shift, settings.guidance, settings.sampler) = (o.steps, o.shift, o.guidance, o.sampler)
            let result = try TextToVideo.denoise(dit: model, noise: noise.values, latentShape: shape,
                                                 cond: try context("context_cond"), uncond: try context("context_uncond"),
                                                 settings: settings)
            results.append(("latent", shape, result.latent))
            results.append(("sigmas", [result.sigmas.count], result.sigmas))
            results.append(("timesteps", [result.timesteps.count], result.timesteps.map(Float.init)))
        case "dit":
            let model = try loadDiT()
            let x = try tensor("x"), t = try tensor("t"), context = try tensor("context")
            guard x.shape.count == 5, context.shape.count == 3, t.values.count == x.shape[0], context.shape[0] == x.shape[0] else {
                throw RuntimeError.shapeMismatch("dit inputs: x [B, C, F, H, W], t [B], context [B, L, D]; got x \(x.shape), t \(t.shape), context \(context.shape)")
            }
            let lens = has("context_lens") ? try tensor("context_lens").values.map { Int($0) } : nil
            let y = try model.forward(x: x.values, batch: x.shape[0], frames: x.shape[2], height: x.shape[3], width: x.shape[4],
                                      timesteps: t.values.map(Double.init), context: context.values, contextLengths: lens)
            results.append(("out", [x.shape[0], model.config.outDim] + Array(x.shape[2...]), y))
        case "t5":
            let dtype: DType = o.precision == "fp16" ? .f16 : o.precision == "bf16" ? .bf16 : .f32
            let encoder = try UMT5Encoder.load(path: o.weights, device: device, activationDType: dtype)
            let ids = try tensor("ids")
            guard ids.shape.count == 2 else { throw RuntimeError.shapeMismatch("t5 input ids must be [B, L], got \(ids.shape)") }
            let (b, l) = (ids.shape[0], ids.shape[1])
            let mask = has("mask") ? try tensor("mask").values : [Float](repeating: 1, count: b * l)
            guard mask.count == b * l else { throw RuntimeError.shapeMismatch("t5 mask must be [B, L] like ids") }
            let prompts: [[Int32]] = (0..<b).map { i in
                let n = (0..<l).reduce(0) { $0 + (mask[i * l + $1] != 0 ? 1 : 0) }
                return (0..<n).map { Int32(ids.values[i * l + $0]) }
            }
            let context = try encoder.encode(prompts, textLength: o.textLen ?? 512)
            results.append(("context", context.shape, try device.read(context)))
        case "vae-decode", "vae-encode":
            let vae = try WanVAE.load(path: o.weights, device: device, fp16Compute: o.precision == "fp16")
            let decode = o.component == "vae-decode"
            let input = try tensor(decode ? "latent" : "video")
            // [C, T, H, W], or [1, C, T, H, W] as PyTorch batches it.
            let s = input.shape.count == 5 && input.shape[0] == 1 ? Array(input.shape.dropFirst()) : input.shape
            guard s.count == 4 else {
                throw RuntimeError.shapeMismatch("\(decode ? "latent" : "video") must be [C, T, H, W] (or [1, C, T, H, W]), got \(input.shape)")
            }
            if decode {
                let video = try vae.decode(latent: input.values, frames: s[1], height: s[2], width: s[3])
                results.append(("video", [3, 1 + 4 * (s[1] - 1), 8 * s[2], 8 * s[3]], video))
            } else {
                let latent = try vae.encode(video: input.values, frames: s[1], height: s[2], width: s[3])
                results.append(("latent", [vae.config.zDim, 1 + (s[1] - 1) / 4, s[2] / 8, s[3] / 8], latent))
            }
        default:
            throw RuntimeError.invalidArgument("forward component '\(o.component)': expected dit, t5, vae-encode, vae-decode or sample")
        }
        // Timesteps are integers (int64 as the official code holds them); everything else is float32.
        let entries = results.map { TensorEntry(name: $0.name, dtype: $0.name == "timesteps" ? .i64 : .f32, shape: $0.shape) }
        var metadata = ["component": o.component, "device": device.name, "precision": o.precision]
        if o.component == "sample" {
            metadata.merge(["steps": "\(o.steps)", "shift": "\(o.shift)", "guidance": "\(o.guidance)", "sampler": o.sampler.rawValue]) { $1 }
        }
        try SafetensorsWriter.write(entries, metadata: metadata, to: o.output) { e in
            let values = results.first { $0.name == e.name }?.values ?? []
            guard e.dtype == .i64 else { return HostConversion.encode(values, as: .f32) }
            return values.flatMap { v in withUnsafeBytes(of: Int64(v).littleEndian) { Array($0) } }
        }
        return results.map { ($0.name, $0.shape) }
    }
    /// A DiT configuration from a JSON file in the official hyperparameter names (`dim`, `ffn_dim`,
    /// `freq_dim`, `num_heads`, `num_layers`, `in_dim`, `out_dim`, `text_len`, `text_dim`, `patch_size`, `eps`,
    /// `model_type` t2v / i2v / flf2v); diffusers' `config.json` names (`num_attention_heads`,
    /// `attention_head_dim`, `in_channels`, ...) are accepted too.
    public static func ditConfig(fromJSON path: String) throws -> WanDiTConfig {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let j = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RuntimeError.invalidArgument("\(path) is not a JSON object")
        }
        func int(_ keys: String...) -> Int? {
            for k in keys { if let v = j[k] as? Int { return v } }
            return nil
        }
        let heads = int("num_heads", "num_attention_heads")
        let dim = int("dim") ?? (heads.flatMap { h in int("attention_head_dim").map { $0 * h } })
        guard let dim, let heads, let ffn = int("ffn_dim"), let layers = int("num_layers") else {
            throw RuntimeError.invalidArgument("\(path): needs dim (or attention_head_dim), num_heads, ffn_dim and num_layers")
        }
        let typeName = (j["model_type"] as? String)?.lowercased() ?? ((int("in_dim", "in_channels") ?? 16) == 36 ? "i2v" : "t2v")
        guard let type = WanDiTConfig.ModelType(rawValue: typeName) else {
            throw RuntimeError.invalidArgument("\(path): model_type '\(typeName)' (expected t2v, i2v or flf2v)")
        }
        return WanDiTConfig(modelType: type, dim: dim, ffnDim: ffn, freqDim: int("freq_dim") ?? 256, numHeads: heads,
                            numLayers: layers, inDim: int("in_dim", "in_channels"), outDim: int("out_dim", "out_channels") ?? 16,
                            textLen: int("text_len") ?? 512, textDim: int("text_dim") ?? 4096,
                            patchSize: (j["patch_size"] as? [Int]) ?? [1, 2, 2], eps: (j["eps"] as? Double) ?? 1e-6)
    }
}
