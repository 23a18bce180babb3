import Testing
@testable import WanModels
import WanRuntime

@Suite struct VariantTests {
    /// The message of a thrown `RuntimeError.invalidArgument` (fails the test for anything else).
    func failure(_ body: () throws -> Void) -> String {
        do {
            try body()
            Issue.record("expected an error")
        } catch let RuntimeError.invalidArgument(text) {
            return text
        } catch {
            Issue.record("unexpected error \(error)")
        }
        return ""
    }

    // MARK: expected tensor lists

    @Test func expectedListsMatchTheSpecCountsAndSizes() {
        // Tensor counts (spec §4.2, §4.4) and weight memory (spec §10.1: fp32 GB, umT5 bf16).
        let counts = WanDiTVariant.allCases.map { $0.config.expectedTensors().count }
        #expect(counts == [825, 1095, 1303, 1304])
        func gigabytes(_ specs: [TensorSpec], bytes: Int) -> Double {
            Double(specs.reduce(0) { $0 + $1.shape.reduce(1, *) } * bytes) / 1e9
        }
        let sizes = WanDiTVariant.allCases.map { gigabytes($0.config.expectedTensors(), bytes: 4) }
        for (size, spec) in zip(sizes, [5.68, 57.15, 65.58, 65.58]) { #expect(abs(size - spec) < 0.006, "\(size) vs \(spec)") }
        // umT5: 1 + 24 × 10 + 1 (the spec's "218 tensors" forgets one of the ten per-layer tensors: the official
        // T5SelfAttention has norm1, attn.{q,k,v,o}, norm2, ffn.{gate.0,fc1,fc2} and, with shared_pos=False,
        // its own pos_embedding).
        let t5 = WanT5Config.umt5XXL.expectedTensors()
        #expect(t5.count == 242)
        #expect(abs(gigabytes(t5, bytes: 2) - 11.36) < 0.006)
        #expect(abs(gigabytes(WanVAEConfig.wan21.expectedTensors(), bytes: 4) - 0.51) < 0.006)
        #expect(WanCLIPConfig.vitH14.expectedTensors().count == 3 + 2 + 32 * 12 + 2 + 1)

        // Spot shapes from the spec tables.
        func shapes(_ specs: [TensorSpec]) -> [String: [Int]] { Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0.shape) }) }
        let flf = shapes(WanDiTConfig.flf2v14B.expectedTensors())
        #expect(flf["patch_embedding.weight"] == [5120, 36, 1, 2, 2])
        #expect(flf["time_projection.1.weight"] == [30720, 5120])
        #expect(flf["head.modulation"] == [1, 2, 5120] && flf["head.head.weight"] == [64, 5120])
        #expect(flf["blocks.39.modulation"] == [1, 6, 5120] && flf["blocks.39.ffn.2.weight"] == [5120, 13824])
        #expect(flf["blocks.0.cross_attn.norm_k_img.weight"] == [5120] && flf["img_emb.proj.3.weight"] == [5120, 1280])
        #expect(flf["img_emb.emb_pos"] == [1, 514, 1280] && flf["text_embedding.0.weight"] == [5120, 4096])
        let small = shapes(WanDiTConfig.t2v1_3B.expectedTensors())
        #expect(small["blocks.29.ffn.0.weight"] == [8960, 1536] && small["time_embedding.0.weight"] == [1536, 256])
        #expect(small["img_emb.proj.0.weight"] == nil && small["blocks.0.cross_attn.k_img.weight"] == nil)
        let vae = shapes(WanVAEConfig.wan21.expectedTensors())
        #expect(vae["encoder.conv1.weight"] == [96, 3, 3, 3, 3])
        #expect(vae["encoder.downsamples.0.residual.0.gamma"] == [96, 1, 1, 1])
        #expect(vae["encoder.downsamples.2.resample.1.weight"] == [96, 96, 3, 3] && vae["encoder.downsamples.2.time_conv.weight"] == nil)
        #expect(vae["encoder.downsamples.3.shortcut.weight"] == [192, 96, 1, 1, 1])
        #expect(vae["encoder.downsamples.5.time_conv.weight"] == [192, 192, 3, 1, 1])
        #expect(vae["encoder.downsamples.8.resample.1.weight"] == [384, 384, 3, 3])
        #expect(vae["encoder.downsamples.10.residual.6.weight"] == [384, 384, 3, 3, 3] && vae["encoder.downsamples.11.residual.0.gamma"] == nil)
        #expect(vae["encoder.middle.1.norm.gamma"] == [384, 1, 1] && vae["encoder.middle.1.to_qkv.weight"] == [1152, 384, 1, 1])
        #expect(vae["encoder.head.2.weight"] == [32, 384, 3, 3, 3])
        #expect(vae["conv1.weight"] == [32, 32, 1, 1, 1] && vae["conv2.weight"] == [16, 16, 1, 1, 1])
        #expect(vae["decoder.conv1.weight"] == [384, 16, 3, 3, 3])
        #expect(vae["decoder.upsamples.3.resample.1.weight"] == [192, 384, 3, 3])
        #expect(vae["decoder.upsamples.3.time_conv.weight"] == [768, 384, 3, 1, 1])
        #expect(vae["decoder.upsamples.4.shortcut.weight"] == [384, 192, 1, 1, 1])
        #expect(vae["decoder.upsamples.7.time_conv.weight"] == [768, 384, 3, 1, 1])
        #expect(vae["decoder.upsamples.8.residual.2.weight"] == [192, 192, 3, 3, 3] && vae["decoder.upsamples.8.shortcut.weight"] == nil)
        #expect(vae["decoder.upsamples.11.resample.1.weight"] == [96, 192, 3, 3] && vae["decoder.upsamples.11.time_conv.weight"] == nil)
        #expect(vae["decoder.upsamples.14.residual.3.gamma"] == [96, 1, 1, 1] && vae["decoder.upsamples.15.residual.0.gamma"] == nil)
        #expect(vae["decoder.head.2.weight"] == [3, 96, 3, 3, 3])
        let t5Shapes = shapes(t5)
        #expect(t5Shapes["token_embedding.weight"] == [256_384, 4096] && t5Shapes["blocks.23.pos_embedding.embedding.weight"] == [32, 64])
        #expect(t5Shapes["blocks.0.ffn.fc2.weight"] == [4096, 10240] && t5Shapes["blocks.0.attn.o.weight"] == [4096, 4096])
        let clip = shapes(WanCLIPConfig.vitH14.expectedTensors())
        #expect(clip["visual.pos_embedding"] == [1, 257, 1280] && clip["visual.transformer.31.attn.to_qkv.weight"] == [3840, 1280])
        #expect(clip["visual.patch_embedding.weight"] == [1280, 3, 14, 14] && clip["visual.head"] == [1280, 1024])
    }

    @Test func configValidation() throws {
        for config in WanDiTVariant.allCases.map(\.config) + [KeyMapFixtures.tinyT2V, KeyMapFixtures.tinyI2V] { try config.validate() }
        try WanVAEConfig.wan21.validate()
        try WanT5Config.umt5XXL.validate()
        try WanCLIPConfig.vitH14.validate()
        var bad = KeyMapFixtures.tinyT2V
        bad.numHeads = 3
        #expect(failure { try bad.validate() }.contains("not a multiple of num_heads 3"))
        bad.numHeads = 8
        #expect(failure { try bad.validate() }.contains("head_dim 4 must be at least 6"))
        #expect(failure { try WanVAEConfig(dimMult: [1, 2, 4]).validate() }.contains("dim_mult must have 4"))
        #expect(failure { try WanT5Config(dimAttn: 100).validate() }.contains("not a multiple of num_heads"))
        #expect(failure { try WanCLIPConfig(imageSize: 225).validate() }.contains("patch_size"))
    }

    // MARK: detection of released variants

    @Test func detectsEveryDiTVariantInEveryConvention() throws {
        for variant in WanDiTVariant.allCases {
            let official = variant.config.expectedEntries(dtype: .bf16)
            let diffusers = try WanKeyMaps.fromOfficial(official, component: .dit, to: .diffusers).entries
            let comfy = try WanKeyMaps.fromOfficial(official, component: .dit, to: .comfyUI).entries
            let cases: [([TensorEntry], KeyConvention, String, Bool)] = [
                (official, .official, "", false),
                (diffusers, .diffusers, "", false),
                (comfy, .comfyUI, "model.diffusion_model.", false),
                (KeyMapFixtures.comfyScaled(comfy, prefix: "model.diffusion_model."), .comfyUI, "model.diffusion_model.", true),
                (KeyMapFixtures.comfyScaled(official, prefix: "", legacy: false), .comfyUI, "", true),
            ]
            for (entries, convention, prefix, scaled) in cases {
                let found = try WanCheckpointDetector.detect(entries)
                #expect(found.format.component == .dit)
                #expect(found.format.convention == convention, "\(variant) \(convention)")
                #expect(found.format.prefix == prefix && found.format.scaledFP8 == scaled)
                #expect(found.ditVariant == variant && found.variantName == variant.rawValue && !found.isCustom)
                #expect(found.config == .dit(variant.config))
                #expect(KeyMapFixtures.sortedNames(found.mapping.entries) == KeyMapFixtures.sortedNames(official))
                if scaled {
                    let linear = official.filter { $0.name.hasSuffix(".weight") && $0.shape.count == 2 }.count
                    #expect(found.mapping.scaledCount == linear)
                    let recipe = try #require(found.mapping.recipe(named: "blocks.0.ffn.0.weight"))
                    #expect(recipe.sources[0].scale?.name == prefix + "blocks.0.ffn.0." + (prefix.isEmpty ? "weight_scale" : "scale_weight"))
                }
            }
        }
        // I2V 480P and 720P are the same tensors; text_len / eps / num_heads come from the options.
        let found = try WanCheckpointDetector.detect(WanDiTConfig.i2v14B.expectedEntries(),
                                                     options: WanDetectionOptions(numHeads: 40, textLen: 256, eps: 1e-5))
        guard case let .dit(config) = found.config else { Issue.record("not a DiT"); return }
        #expect(config.textLen == 256 && config.eps == 1e-5 && config.numHeads == 40 && config.inDim == 36)
        #expect(failure { _ = try WanCheckpointDetector.detect(WanDiTConfig.t2v1_3B.expectedEntries(), options: WanDetectionOptions(numHeads: 16)) }
            .contains("num_heads 16 contradicts T2V-1.3B"))
    }

    @Test func detectsTheOtherComponents() throws {
        let vae = WanVAEConfig.wan21.expectedEntries()
        let vaeFound = try WanCheckpointDetector.detect(vae)
        #expect(vaeFound.format.component == .vae && vaeFound.format.convention == .official && vaeFound.config == .vae(.wan21))
        let vaeDiffusers = try WanCheckpointDetector.detect(try WanKeyMaps.fromOfficial(vae, component: .vae, to: .diffusers).entries)
        #expect(vaeDiffusers.format.convention == .diffusers && vaeDiffusers.variantName == "Wan2.1 VAE")

        let t5 = WanT5Config.umt5XXL.expectedEntries()
        let t5Official = try WanCheckpointDetector.detect(t5)
        #expect(t5Official.format.component == .t5 && t5Official.format.convention == .official && t5Official.config == .t5(.umt5XXL))
        let hf = try WanKeyMaps.fromOfficial(t5, component: .t5, to: .transformers).entries
        #expect(try WanCheckpointDetector.detect(hf).format.convention == .transformers)
        let scaled = try WanCheckpointDetector.detect(KeyMapFixtures.comfyScaled(hf, prefix: ""))
        #expect(scaled.format.convention == .comfyUI && scaled.format.scaledFP8 && scaled.variantName == "umT5-XXL")
        #expect(scaled.mapping.scaledCount == hf.filter { $0.name.hasSuffix(".weight") && $0.shape.count == 2 }.count)
        #expect(scaled.mapping.recipe(named: "blocks.5.attn.q.weight")?.sources[0].scale?.name
                == "encoder.block.5.layer.0.SelfAttention.q.scale_weight")

        let clip = WanCLIPConfig.vitH14.expectedEntries()
        let withText = clip + [TensorEntry(name: "textual.head.0.weight", dtype: .f16, shape: [1152, 1024]),
                               TensorEntry(name: "log_scale", dtype: .f32, shape: [])]
        let clipOfficial = try WanCheckpointDetector.detect(withText)
        #expect(clipOfficial.format.component == .clip && clipOfficial.format.convention == .official)
        #expect(clipOfficial.config == .clip(.vitH14) && clipOfficial.mapping.ignored.count == 2)
        // transformers CLIPVisionModel: no projection (visual.head is optional), position_ids buffer.
        let hfCLIP = try WanKeyMaps.fromOfficial(clip, component: .clip, to: .transformers).entries
            .filter { $0.name != "visual_projection.weight" }
            + [TensorEntry(name: "vision_model.embeddings.position_ids", dtype: .i64, shape: [1, 257])]
        let clipHF = try WanCheckpointDetector.detect(hfCLIP)
        #expect(clipHF.format.convention == .transformers && clipHF.variantName == "CLIP ViT-H/14")
        #expect(clipHF.mapping.recipe(named: "visual.head") == nil)

        // Forcing a component that does not fit gives the closest report, not a guess.
        let forced = failure { _ = try WanCheckpointDetector.detect(vae, options: WanDetectionOptions(component: .t5)) }
        #expect(forced.contains("checkpoint (umT5 encoder, official names, 194 tensors)") && forced.contains("missing (242)"))
        #expect(failure { _ = try WanCheckpointDetector.detect([TensorEntry(name: "foo.bar", dtype: .f32, shape: [1])]) }
            .contains("no Wan 2.1 tensor names recognised among 1 tensors (foo.bar)"))
        #expect(WanCheckpointDetector.identify([]) == nil)
    }

    // MARK: custom configurations

    @Test func customTinyConfigsAreReadFromShapes() throws {
        for config in [KeyMapFixtures.tinyT2V, KeyMapFixtures.tinyI2V, KeyMapFixtures.tinyFLF2V] {
            for convention in [KeyConvention.official, .diffusers] {
                let entries = try WanKeyMaps.fromOfficial(config.expectedEntries(), component: .dit, to: convention).entries
                let options = WanDetectionOptions(allowCustom: true, numHeads: 2, textLen: config.textLen)
                let found = try WanCheckpointDetector.detect(entries, options: options)
                #expect(found.isCustom && found.ditVariant == nil && found.variantName == "custom")
                #expect(found.config == .dit(config), "\(config.modelType) \(convention)")
                // Not accepted without permission; the error says so.
                let refused = failure { _ = try WanCheckpointDetector.detect(entries, options: WanDetectionOptions(numHeads: 2)) }
                #expect(refused.contains("allow custom configurations to load it") && refused.contains("closest: "))
                // num_heads is not in any shape: without it the custom path explains why it failed.
                let noHeads = failure { _ = try WanCheckpointDetector.detect(entries, options: WanDetectionOptions(allowCustom: true)) }
                #expect(noHeads.contains("num_heads cannot be read from tensor shapes"))
            }
        }
        // A width that is a multiple of 128 gets head_dim 128 like the released models.
        let wide = WanDiTConfig(modelType: .t2v, dim: 256, ffnDim: 512, numHeads: 2, numLayers: 1)
        let wideFound = try WanCheckpointDetector.detect(wide.expectedEntries(), options: WanDetectionOptions(allowCustom: true))
        #expect(wideFound.config == .dit(wide))

        let vae = try WanCheckpointDetector.detect(KeyMapFixtures.tinyVAE.expectedEntries(), options: WanDetectionOptions(allowCustom: true))
        #expect(vae.config == .vae(KeyMapFixtures.tinyVAE) && vae.isCustom)
        let t5Entries = try WanKeyMaps.fromOfficial(KeyMapFixtures.tinyT5.expectedEntries(), component: .t5, to: .transformers).entries
        let t5 = try WanCheckpointDetector.detect(t5Entries, options: WanDetectionOptions(allowCustom: true))
        #expect(t5.config == .t5(KeyMapFixtures.tinyT5) && t5.format.convention == .transformers)
        let clip = try WanCheckpointDetector.detect(KeyMapFixtures.tinyCLIP.expectedEntries(),
                                                    options: WanDetectionOptions(allowCustom: true, numHeads: 2))
        #expect(clip.config == .clip(KeyMapFixtures.tinyCLIP))
    }

    // MARK: corrupted lists

    @Test func corruptedListsGivePreciseErrors() throws {
        let official = WanDiTConfig.t2v1_3B.expectedEntries()
        let diffusers = try WanKeyMaps.fromOfficial(official, component: .dit, to: .diffusers).entries

        // One missing tensor, reported with its stored (diffusers) name.
        let missing = failure { _ = try WanCheckpointDetector.detect(diffusers.filter { $0.name != "blocks.7.attn1.to_k.bias" }) }
        #expect(missing.contains("closest: T2V-1.3B, 825 tensors expected: 1 missing, 0 unexpected, 0 misshapen"))
        #expect(missing.contains("blocks.7.self_attn.k.bias [1536] (stored as blocks.7.attn1.to_k.bias)"))

        // One extra tensor.
        let extra = failure { _ = try WanCheckpointDetector.detect(official + [TensorEntry(name: "blocks.3.lora_A.weight", dtype: .f32, shape: [4, 1536])]) }
        #expect(extra.contains("0 missing, 1 unexpected, 0 misshapen") && extra.contains("blocks.3.lora_A.weight f32 [4, 1536]"))

        // One wrong shape.
        var reshaped = official
        if let i = reshaped.firstIndex(where: { $0.name == "blocks.12.ffn.0.weight" }) { reshaped[i].shape = [8960, 1535] }
        let shape = failure { _ = try WanCheckpointDetector.detect(reshaped) }
        #expect(shape.contains("0 missing, 0 unexpected, 1 misshapen"))
        #expect(shape.contains("blocks.12.ffn.0.weight: expected [8960, 1536], found [8960, 1535]"))

        // A truncated block count: the whole block collapses to one line; allowed as custom on request.
        let truncated = official.filter { !$0.name.hasPrefix("blocks.29.") }
        let short = failure { _ = try WanCheckpointDetector.detect(truncated) }
        #expect(short.contains("27 missing, 0 unexpected, 0 misshapen") && short.contains("blocks.29.* (the whole block: 27 tensors)"))
        #expect(short.contains("allow custom configurations"))
        let custom = try WanCheckpointDetector.detect(truncated, options: WanDetectionOptions(allowCustom: true))
        guard case let .dit(config) = custom.config else { Issue.record("not a DiT"); return }
        #expect(custom.isCustom && config.numLayers == 29 && config.numHeads == 12)

        // An extra block of a 30-layer model collapses too; a ComfyUI orphan scale is reported with its reason.
        let block30 = official.filter { $0.name.hasPrefix("blocks.0.") }.map {
            TensorEntry(name: $0.name.replacingOccurrences(of: "blocks.0.", with: "blocks.30."), dtype: $0.dtype, shape: $0.shape)
        }
        let orphan = TensorEntry(name: "blocks.0.ffn.9.scale_weight", dtype: .f32, shape: [])
        let more = failure { _ = try WanCheckpointDetector.detect(official + block30 + [orphan]) }
        #expect(more.contains("0 missing, 28 unexpected, 0 misshapen"))
        #expect(more.contains("blocks.30.* (27 tensors of a block the configuration does not have)"))
        #expect(more.contains("blocks.0.ffn.9.scale_weight f32 []: fp8 scale without its weight blocks.0.ffn.9.weight"))

        // Many problems stay readable: at most 10 lines per section plus a count.
        var scrambled = official
        for i in scrambled.indices where scrambled[i].name.hasSuffix(".bias") && scrambled[i].name.hasPrefix("blocks.") {
            scrambled[i].shape = [scrambled[i].shape[0] + 1]
        }
        let many = failure { _ = try WanCheckpointDetector.detect(scrambled) }
        #expect(many.contains("misshapen (330):") && many.contains("… and 320 more lines"))
        #expect(many.split(separator: "\n").count < 20)

        // A custom configuration that is not self-consistent is reported against the closest candidate.
        let tiny = KeyMapFixtures.tinyT2V.expectedEntries().filter { $0.name != "blocks.1.norm3.bias" }
        let broken = failure { _ = try WanCheckpointDetector.detect(tiny, options: WanDetectionOptions(allowCustom: true, numHeads: 2, textLen: 8)) }
        #expect(broken.contains("nor a consistent custom configuration"))
        #expect(broken.contains("closest: the custom configuration read from the shapes (t2v dim 32"))
        #expect(broken.contains("1 missing, 0 unexpected, 0 misshapen") && broken.contains("blocks.1.norm3.bias [32]"))
    }

    @Test func diffCountsAgainstAConfiguration() throws {
        let mapping = try WanKeyMaps.toOfficial(WanT5Config.umt5XXL.expectedEntries().filter { !$0.name.hasPrefix("blocks.23.") },
                                                component: .t5, from: .official)
        let diff = TensorListDiff.compare(mapping, expected: WanT5Config.umt5XXL.expectedTensors())
        #expect(diff.missing.count == 10 && diff.unexpected.isEmpty && diff.misshapen.isEmpty && diff.problemCount == 10)
        #expect(diff.report() == "missing (10):\n  blocks.23.* (the whole block: 10 tensors)")
        #expect(TensorListDiff.compare(mapping, expected: WanT5Config(numLayers: 23).expectedTensors()).isEmpty)
    }
}
