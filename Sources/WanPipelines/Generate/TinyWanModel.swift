import Foundation
import WanModels
import WanRuntime

/// The built-in tiny Wan 2.1 (`wan generate --model tiny`): umT5, DiT and VAE of the real structure (every
/// layer kind, the real 512-row text context, RoPE, causal VAE caches) at toy widths, with seeded random weights
/// made in memory, and a small character-level unigram tokenizer. It runs every stage of a generation in seconds
/// on a fresh machine without downloading anything. Its weights are random: the video it produces is noise.
public enum TinyWanModel {
    /// The seed of the built-in weights (the same weights on every machine).
    public static let weightSeed: UInt64 = 0x7761_6E32_315F_7479

    /// The tiny DiT: T2V, width 64, 2 heads of 32 (RoPE split 12/10/10), FFN 128, 2 blocks, the real
    /// text_len 512, text_dim = the tiny umT5 width.
    public static let ditConfig = WanDiTConfig(modelType: .t2v, dim: 64, ffnDim: 128, numHeads: 2, numLayers: 2,
                                               textLen: 512, textDim: 64)
    /// The tiny umT5: width 64, 4 heads, FFN 128, 2 layers, 32 relative buckets, vocabulary of the tiny tokenizer.
    public static var t5Config: WanT5Config {
        WanT5Config(vocabSize: vocabulary.count, dim: 64, dimAttn: 64, dimFFN: 128, numHeads: 4, numLayers: 2, numBuckets: 32)
    }
    /// The tiny VAE: base width 8 (levels 8, 16, 32, 32), one residual block per level, the real temporal
    /// down/up-sampling and 16 latent channels.
    public static let vaeConfig = WanVAEConfig(dim: 8, zDim: 16, dimMult: [1, 2, 4, 4], numResBlocks: 1,
                                               temporalDownsample: [false, true, true])

    /// Defaults of `wan generate --model tiny` where the user gives none: small enough for seconds on a CPU.
    public static let defaultWidth = 128, defaultHeight = 128, defaultFrames = 9, defaultSteps = 10

    /// The tiny tokenizer's pieces in id order: `<pad>`, `</s>`, `<unk>`, `▁`, then ASCII letters, digits and
    /// punctuation alone and after `▁`, and a few common words.
    public static let vocabulary: [(piece: String, score: Double)] = {
        var v: [(String, Double)] = [("<pad>", 0), ("</s>", 0), ("<unk>", 0), ("\u{2581}", -3)]
        let chars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()")
        for c in chars { v.append((String(c), -6)) }
        for c in chars { v.append(("\u{2581}" + String(c), -5)) }
        let words = ["the", "a", "an", "of", "and", "in", "on", "with", "at", "to", "is", "cat", "dog", "sea", "sky",
                     "city", "street", "night", "walking", "running", "flying", "over", "under", "red", "blue",
                     "green", "white", "black", "light", "camera", "slow", "motion", "close", "up", "shot"]
        for w in words { v.append(("\u{2581}" + w, -2)) }
        return v
    }()

    /// The tiny tokenizer as a Hugging Face `tokenizer.json` (Unigram, Metaspace, EOS appended as umT5 does).
    public static func tokenizerJSON() throws -> Data {
        let json: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(), "padding": NSNull(),
            "added_tokens": [
                ["id": 0, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true],
                ["id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true],
                ["id": 2, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true],
            ],
            "normalizer": NSNull(),
            "pre_tokenizer": ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true],
            "post_processor": [
                "type": "TemplateProcessing",
                "single": [["Sequence": ["id": "A", "type_id": 0]], ["SpecialToken": ["id": "</s>", "type_id": 0]]],
                "pair": [["Sequence": ["id": "A", "type_id": 0]], ["SpecialToken": ["id": "</s>", "type_id": 0]],
                         ["Sequence": ["id": "B", "type_id": 0]], ["SpecialToken": ["id": "</s>", "type_id": 0]]],
                "special_tokens": ["</s>": ["id": "</s>", "ids": [1], "tokens": ["</s>"]]],
            ],
            "decoder": ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true],
            "model": ["type": "Unigram", "unk_id": 2, "byte_fallback": false,
                      "vocab": vocabulary.map { [$0.piece, $0.score] as [Any] }],
        ]
        return try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    }

    /// The tiny tokenizer.
    public static func tokenizer() throws -> UnigramTokenizer {
        try UnigramTokenizer(data: tokenizerJSON(), name: "tiny tokenizer")
    }

    /// Seeded random weights for `specs` (official names): matrices and convolution kernels ~ N(0, 1/fan_in),
    /// biases ~ N(0, 0.02²), norm scales (RMS `gamma`, LayerNorm and T5 norm weights) 1, modulation tables
    /// ~ N(0, 1/dim). Each tensor depends only on (`seed`, its name).
    public static func randomWeights(_ specs: [TensorSpec], seed: UInt64, on device: Device,
                                     dtype: DType = .f32) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for spec in specs where !spec.optional {
            let count = spec.shape.reduce(1, *)
            let leaf = spec.name.split(separator: ".").last.map(String.init) ?? spec.name
            let isNorm = spec.name.contains("norm") || leaf == "gamma"
            var values: [Float]
            if isNorm && leaf != "bias" {
                values = [Float](repeating: 1, count: count)
            } else {
                values = try SeededNoise.normal(count: count, seed: seed ^ nameHash(spec.name))
                let scale: Float
                if leaf == "bias" {
                    scale = 0.02
                } else if spec.shape.count >= 2 {
                    let fanIn = spec.shape.dropFirst().reduce(1, *)
                    scale = 1 / Float(fanIn).squareRoot()
                } else {
                    scale = 1 / Float(max(1, count)).squareRoot()
                }
                for i in values.indices { values[i] *= scale }
            }
            out[spec.name] = try device.tensor(values, shape: spec.shape, dtype: dtype)
        }
        return out
    }

    /// A umT5 encoder of `config` (default: the tiny one) with seeded random weights on `device`. The
    /// vocabulary must hold the tiny tokenizer's ids.
    public static func textEncoder(config: WanT5Config = t5Config, on device: Device) throws -> UMT5Encoder {
        guard config.vocabSize >= vocabulary.count else {
            throw RuntimeError.invalidArgument("random umT5: the vocabulary (\(config.vocabSize)) must hold the tiny tokenizer's \(vocabulary.count) ids")
        }
        return try UMT5Encoder(config: config, weights: randomWeights(config.expectedTensors(), seed: weightSeed ^ 1, on: device),
                               device: device)
    }

    /// A DiT of `config` (default: the tiny one) with seeded random weights on `device`, matmul weights stored
    /// per `precision`.
    public static func dit(config: WanDiTConfig = ditConfig, on device: Device, precision: WanDiT.Precision = .fp32,
                           deviceWeightBudget: Int? = nil) throws -> WanDiT {
        // Weights made on the CPU, placed by the model (device or host memory, FP8 quantised, per its settings).
        try WanDiT(config: config, weights: randomWeights(config.expectedTensors(), seed: weightSeed ^ 2,
                                                          on: deviceWeightBudget == nil ? device : Device.cpu()),
                   device: device, precision: precision, deviceWeightBudget: deviceWeightBudget)
    }

    /// A VAE of `config` (default: the tiny one) with seeded random weights on `device` (Wan 2.1's latent mean and std).
    public static func vae(config: WanVAEConfig = vaeConfig, on device: Device, fp16Compute: Bool = false) throws -> WanVAE {
        try WanVAE(config: config, weights: randomWeights(config.expectedTensors(), seed: weightSeed ^ 3, on: device),
                   device: device, fp16Compute: fp16Compute)
    }

    /// FNV-1a of a tensor name, the per-tensor part of its seed.
    static func nameHash(_ name: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in name.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }
}
