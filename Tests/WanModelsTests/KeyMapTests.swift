import Testing
@testable import WanModels
import WanRuntime

/// Shared helpers for the key-map and variant tests.
enum KeyMapFixtures {
    /// Tiny configurations of spec §11.2-11.4 (D1 t2v, D3 i2v, D4 flf2v), all exercising every rule.
    static let tinyT2V = WanDiTConfig(modelType: .t2v, dim: 32, ffnDim: 64, freqDim: 16, numHeads: 2, numLayers: 2,
                                      textLen: 8, textDim: 24)
    static let tinyI2V = WanDiTConfig(modelType: .i2v, dim: 32, ffnDim: 64, numHeads: 2, numLayers: 2, textDim: 24)
    static let tinyFLF2V = WanDiTConfig(modelType: .flf2v, dim: 32, ffnDim: 64, numHeads: 2, numLayers: 2, textDim: 24)
    static let tinyVAE = WanVAEConfig(dim: 8, zDim: 4)
    static let tinyT5 = WanT5Config(vocabSize: 100, dim: 64, dimAttn: 64, dimFFN: 96, numHeads: 4, numLayers: 2)
    static let tinyCLIP = WanCLIPConfig(imageSize: 28, patchSize: 14, dim: 16, mlpDim: 64, numHeads: 2, numLayers: 2, outDim: 8)

    /// The names of a list, sorted.
    static func sortedNames(_ entries: [TensorEntry]) -> [String] { entries.map(\.name).sorted() }

    /// Entries sorted by name (to compare lists whose order a mapping may change).
    static func sorted(_ entries: [TensorEntry]) -> [TensorEntry] { entries.sorted { $0.name < $1.name } }

    /// A ComfyUI fp8 "scaled" version of a list: every 2-D `*.weight` becomes fp8 e4m3 with a scale tensor;
    /// the rest becomes fp16. `legacy` writes `X.scale_weight` scalars plus a `scaled_fp8` marker, otherwise
    /// the newer `X.weight_scale` + `X.comfy_quant` pair.
    static func comfyScaled(_ entries: [TensorEntry], prefix: String, legacy: Bool = true) -> [TensorEntry] {
        var out: [TensorEntry] = []
        for entry in entries {
            if entry.name.hasSuffix(".weight") && entry.shape.count == 2 {
                out.append(TensorEntry(name: entry.name, dtype: .f8e4m3fn, shape: entry.shape))
                let base = String(entry.name.dropLast(".weight".count))
                if legacy {
                    out.append(TensorEntry(name: base + ".scale_weight", dtype: .f32, shape: []))
                } else {
                    out.append(TensorEntry(name: base + ".weight_scale", dtype: .f32, shape: []))
                    out.append(TensorEntry(name: base + ".comfy_quant", dtype: .u8, shape: [31]))
                }
            } else {
                out.append(TensorEntry(name: entry.name, dtype: .f16, shape: entry.shape))
            }
        }
        if legacy { out.append(TensorEntry(name: prefix + "scaled_fp8", dtype: .f8e4m3fn, shape: [0])) }
        return out
    }
}

@Suite struct KeyMapTests {
    // MARK: patterns

    @Test func patternsMatchWholeCanonicalIndices() {
        let p = KeyPattern("blocks.#.attn1.to_out.0.weight")
        #expect(p.match("blocks.12.attn1.to_out.0.weight") == [12])
        #expect(p.match("blocks.0.attn1.to_out.0.weight") == [0])
        #expect(p.match("blocks.012.attn1.to_out.0.weight") == nil)
        #expect(p.match("blocks..attn1.to_out.0.weight") == nil)
        #expect(p.match("blocks.1.attn1.to_out.1.weight") == nil)
        #expect(p.match("blocks.1.attn1.to_out.0.weights") == nil)
        #expect(p.match("xblocks.1.attn1.to_out.0.weight") == nil)
        #expect(p.render([7]) == "blocks.7.attn1.to_out.0.weight")
        let two = KeyPattern("decoder.up_blocks.#.resnets.#.norm1.gamma")
        #expect(two.match("decoder.up_blocks.3.resnets.2.norm1.gamma") == [3, 2])
        #expect(keyTemplate("blocks.31.ffn.net.0.proj.weight") == "blocks.#.ffn.net.#.proj.weight")
        #expect(KeyPattern("blocks.#.ffn.net.0.proj.weight").template == "blocks.#.ffn.net.#.proj.weight")
        #expect(blockKey("visual.transformer.5.mlp.0.bias") == "visual.transformer.5.")
        #expect(blockKey("head.modulation") == nil)
        #expect(blockIndex("blocks.29.norm3.weight", after: "blocks.") == 29)
        #expect(blockIndex("blocks.07.norm3.weight", after: "blocks.") == nil)
    }

    @Test func tablesAreConsistent() {
        let tables: [(String, KeyRuleTable)] = [("dit", KeyTables.dit), ("vae", KeyTables.vae), ("t5", KeyTables.t5), ("clip", KeyTables.clip)]
        for (label, table) in tables {
            var official = Set<String>()
            var other = Set<String>()
            for rule in table.rules {
                let extra: Int
                switch rule.index {
                case .same, .group: extra = 0
                case .split: extra = 1
                }
                for pattern in rule.other {
                    #expect(pattern.captureCount == rule.official.captureCount + extra, "\(label): \(rule.official)")
                    #expect(other.insert(pattern.text).inserted, "\(label): \(pattern) twice")
                }
                if !rule.alias { #expect(official.insert(rule.official.text).inserted, "\(label): \(rule.official) twice") }
            }
            #expect(table.identity.rules.count == official.count)
        }
    }

    // MARK: DiT

    @Test func ditDiffusersNamesFollowTheSpecTable() throws {
        let entries = KeyMapFixtures.tinyI2V.expectedEntries()
        let mapping = try WanKeyMaps.fromOfficial(entries, component: .dit, to: .diffusers)
        #expect(mapping.unmapped.isEmpty && mapping.rejected.isEmpty && mapping.ignored.isEmpty)
        let block1 = mapping.recipes.map(\.name).filter { $0.hasPrefix("blocks.1.") }.sorted()
        let expected = [
            "scale_shift_table",
            "attn1.to_q.weight", "attn1.to_q.bias", "attn1.to_k.weight", "attn1.to_k.bias",
            "attn1.to_v.weight", "attn1.to_v.bias", "attn1.to_out.0.weight", "attn1.to_out.0.bias",
            "attn1.norm_q.weight", "attn1.norm_k.weight",
            "norm2.weight", "norm2.bias",
            "attn2.to_q.weight", "attn2.to_q.bias", "attn2.to_k.weight", "attn2.to_k.bias",
            "attn2.to_v.weight", "attn2.to_v.bias", "attn2.to_out.0.weight", "attn2.to_out.0.bias",
            "attn2.norm_q.weight", "attn2.norm_k.weight",
            "attn2.add_k_proj.weight", "attn2.add_k_proj.bias", "attn2.add_v_proj.weight", "attn2.add_v_proj.bias",
            "attn2.norm_added_k.weight",
            "ffn.net.0.proj.weight", "ffn.net.0.proj.bias", "ffn.net.2.weight", "ffn.net.2.bias",
        ].map { "blocks.1." + $0 }.sorted()
        #expect(block1 == expected)
        let top = Set(mapping.recipes.map(\.name).filter { !$0.hasPrefix("blocks.") })
        #expect(top == [
            "patch_embedding.weight", "patch_embedding.bias",
            "condition_embedder.text_embedder.linear_1.weight", "condition_embedder.text_embedder.linear_1.bias",
            "condition_embedder.text_embedder.linear_2.weight", "condition_embedder.text_embedder.linear_2.bias",
            "condition_embedder.time_embedder.linear_1.weight", "condition_embedder.time_embedder.linear_1.bias",
            "condition_embedder.time_embedder.linear_2.weight", "condition_embedder.time_embedder.linear_2.bias",
            "condition_embedder.time_proj.weight", "condition_embedder.time_proj.bias",
            "scale_shift_table", "proj_out.weight", "proj_out.bias",
            "condition_embedder.image_embedder.norm1.weight", "condition_embedder.image_embedder.norm1.bias",
            "condition_embedder.image_embedder.ff.net.0.proj.weight", "condition_embedder.image_embedder.ff.net.0.proj.bias",
            "condition_embedder.image_embedder.ff.net.2.weight", "condition_embedder.image_embedder.ff.net.2.bias",
            "condition_embedder.image_embedder.norm2.weight", "condition_embedder.image_embedder.norm2.bias",
        ])
        // The norm2/norm3 swap and the modulation tables (same shapes on both sides).
        #expect(WanKeyMaps.names(forOfficial: "blocks.1.norm3.bias", component: .dit, convention: .diffusers) == ["blocks.1.norm2.bias"])
        #expect(WanKeyMaps.officialName(of: "blocks.1.norm2.weight", component: .dit, convention: .diffusers) == "blocks.1.norm3.weight")
        #expect(mapping.recipe(named: "scale_shift_table")?.shape == [1, 2, 32])
        #expect(mapping.recipe(named: "blocks.0.scale_shift_table")?.shape == [1, 6, 32])
        #expect(mapping.recipes.allSatisfy { $0.transform == .identity && $0.sources.count == 1 })

        let flf = try WanKeyMaps.fromOfficial(KeyMapFixtures.tinyFLF2V.expectedEntries(), component: .dit, to: .diffusers)
        #expect(flf.recipe(named: "condition_embedder.image_embedder.pos_embed")?.shape == [1, 514, 1280])
        #expect(flf.recipe(named: "condition_embedder.image_embedder.pos_embed")?.sources.first?.entry.name == "img_emb.emb_pos")
    }

    @Test func ditRoundTripsAreIdentity() throws {
        let configs = WanDiTVariant.allCases.map(\.config) + [KeyMapFixtures.tinyT2V, KeyMapFixtures.tinyI2V, KeyMapFixtures.tinyFLF2V]
        for config in configs {
            let official = config.expectedEntries(dtype: .bf16)
            for convention in [KeyConvention.diffusers, .comfyUI, .official] {
                let out = try WanKeyMaps.fromOfficial(official, component: .dit, to: convention)
                #expect(out.recipes.count == official.count && out.unmapped.isEmpty && out.rejected.isEmpty)
                if convention == .comfyUI { #expect(out.entries.allSatisfy { $0.name.hasPrefix("model.diffusion_model.") }) }
                let back = try WanKeyMaps.toOfficial(out.entries, component: .dit, from: convention)
                #expect(back.entries == official, "\(config.modelType) \(convention)")
                #expect(back.unmapped.isEmpty && back.rejected.isEmpty && back.ignored.isEmpty)
                #expect(back.recipes.allSatisfy { $0.transform == .identity })
            }
        }
    }

    @Test func ditComfyPrefixesAreStripped() throws {
        let official = KeyMapFixtures.tinyT2V.expectedEntries()
        for prefix in ["model.diffusion_model.", "diffusion_model."] {
            let stored = official.map { TensorEntry(name: prefix + $0.name, dtype: $0.dtype, shape: $0.shape) }
            let mapping = try WanKeyMaps.toOfficial(stored, component: .dit, from: .comfyUI)
            #expect(mapping.prefix == prefix)
            #expect(mapping.entries == official)
            #expect(mapping.recipes.first?.sources.first?.entry.name == prefix + "patch_embedding.weight")
        }
        // Without the ComfyUI convention the prefixed names are unknown.
        let stored = official.map { TensorEntry(name: "model.diffusion_model." + $0.name, dtype: $0.dtype, shape: $0.shape) }
        #expect(try WanKeyMaps.toOfficial(stored, component: .dit, from: .official).unmapped.count == official.count)
        #expect(throws: RuntimeError.self) { try WanKeyMaps.toOfficial(official, component: .dit, from: .transformers) }
        #expect(throws: RuntimeError.self) { try WanKeyMaps.fromOfficial(official, component: .vae, to: .transformers) }
    }

    // MARK: fp8 scaled

    @Test func fp8ScalesAttachToTheirWeights() throws {
        let official = KeyMapFixtures.tinyI2V.expectedEntries()
        let linearWeights = official.filter { $0.name.hasSuffix(".weight") && $0.shape.count == 2 }.count
        let comfy = try WanKeyMaps.fromOfficial(official, component: .dit, to: .comfyUI).entries
        for legacy in [true, false] {
            let stored = KeyMapFixtures.comfyScaled(comfy, prefix: "model.diffusion_model.", legacy: legacy)
            let mapping = try WanKeyMaps.toOfficial(stored, component: .dit, from: .comfyUI)
            #expect(mapping.scaledFP8)
            #expect(mapping.scaledCount == linearWeights)
            #expect(mapping.unmapped.isEmpty && mapping.rejected.isEmpty)
            #expect(mapping.ignored.count == (legacy ? 1 : linearWeights))
            #expect(KeyMapFixtures.sortedNames(mapping.entries) == KeyMapFixtures.sortedNames(official))
            let q = try #require(mapping.recipe(named: "blocks.1.cross_attn.k_img.weight"))
            #expect(q.dtype == .f8e4m3fn)
            #expect(q.sources[0].scale?.name == "model.diffusion_model.blocks.1.cross_attn.k_img." + (legacy ? "scale_weight" : "weight_scale"))
            #expect(q.sources[0].scaleIsPerRow == false)
            #expect(mapping.recipe(named: "blocks.1.cross_attn.k_img.bias")?.isScaled == false)
        }

        // Per-row scales, a misshapen scale, an orphan scale and a second scale for one weight.
        var stored = [TensorEntry(name: "blocks.0.ffn.0.weight", dtype: .f8e4m3fn, shape: [64, 32]),
                      TensorEntry(name: "blocks.0.ffn.0.scale_weight", dtype: .f32, shape: [64, 1]),
                      TensorEntry(name: "blocks.0.ffn.2.weight", dtype: .f8e4m3fn, shape: [32, 64]),
                      TensorEntry(name: "blocks.0.ffn.2.scale_weight", dtype: .f32, shape: [3]),
                      TensorEntry(name: "blocks.0.self_attn.q.scale_weight", dtype: .f32, shape: [])]
        stored.append(TensorEntry(name: "blocks.0.ffn.0.weight_scale", dtype: .f32, shape: []))
        let mapping = try WanKeyMaps.toOfficial(stored, component: .dit, from: .official)
        #expect(mapping.scaledFP8)
        #expect(mapping.recipe(named: "blocks.0.ffn.0.weight")?.sources[0].scaleIsPerRow == true)
        #expect(mapping.recipe(named: "blocks.0.ffn.2.weight")?.isScaled == false)
        let reasons = mapping.rejected.map(\.reason)
        #expect(reasons.count == 3)
        #expect(reasons.contains { $0.contains("fits neither") && $0.contains("[32]") })
        #expect(reasons.contains { $0.contains("without its weight blocks.0.self_attn.q.weight") })
        #expect(reasons.contains { $0.contains("second fp8 scale") })
    }

    // MARK: VAE

    @Test func vaeDiffusersNamesAndRoundTrip() throws {
        for config in [WanVAEConfig.wan21, KeyMapFixtures.tinyVAE] {
            let official = config.expectedEntries()
            let out = try WanKeyMaps.fromOfficial(official, component: .vae, to: .diffusers)
            #expect(out.recipes.count == official.count && out.unmapped.isEmpty && out.rejected.isEmpty)
            let names = Set(out.entries.map(\.name))
            for name in ["encoder.conv_in.weight", "encoder.down_blocks.0.norm1.gamma", "encoder.down_blocks.2.resample.1.weight",
                         "encoder.down_blocks.3.conv_shortcut.weight", "encoder.down_blocks.5.time_conv.bias",
                         "encoder.down_blocks.10.conv2.weight", "encoder.mid_block.resnets.0.norm2.gamma",
                         "encoder.mid_block.attentions.0.to_qkv.weight", "encoder.mid_block.resnets.1.conv1.bias",
                         "encoder.norm_out.gamma", "encoder.conv_out.weight", "quant_conv.weight", "post_quant_conv.bias",
                         "decoder.conv_in.weight", "decoder.mid_block.attentions.0.proj.weight",
                         "decoder.up_blocks.0.resnets.2.conv2.bias", "decoder.up_blocks.0.upsamplers.0.resample.1.weight",
                         "decoder.up_blocks.0.upsamplers.0.time_conv.weight", "decoder.up_blocks.1.resnets.0.conv_shortcut.weight",
                         "decoder.up_blocks.1.upsamplers.0.time_conv.bias", "decoder.up_blocks.2.upsamplers.0.resample.1.bias",
                         "decoder.up_blocks.3.resnets.2.norm1.gamma", "decoder.norm_out.gamma", "decoder.conv_out.bias"] {
                #expect(names.contains(name), "\(name)")
            }
            #expect(!names.contains("decoder.up_blocks.2.upsamplers.0.time_conv.weight"))
            #expect(WanKeyMaps.names(forOfficial: "decoder.upsamples.13.residual.3.gamma", component: .vae, convention: .diffusers)
                    == ["decoder.up_blocks.3.resnets.1.norm2.gamma"])
            #expect(WanKeyMaps.officialName(of: "decoder.up_blocks.1.upsamplers.0.resample.1.weight", component: .vae, convention: .diffusers)
                    == "decoder.upsamples.7.resample.1.weight")
            let back = try WanKeyMaps.toOfficial(out.entries, component: .vae, from: .diffusers)
            #expect(back.entries == official)
            #expect(back.unmapped.isEmpty && back.rejected.isEmpty)
        }
        // Names that only look like decoder blocks do not map.
        let odd = [TensorEntry(name: "decoder.up_blocks.0.resnets.4.conv1.weight", dtype: .f32, shape: [1]),
                   TensorEntry(name: "decoder.up_blocks.0.upsamplers.1.resample.1.weight", dtype: .f32, shape: [1])]
        #expect(try WanKeyMaps.toOfficial(odd, component: .vae, from: .diffusers).unmapped == odd)
    }

    // MARK: umT5

    @Test func t5TransformersNamesAliasesAndIgnoredParts() throws {
        let official = KeyMapFixtures.tinyT5.expectedEntries()
        let out = try WanKeyMaps.fromOfficial(official, component: .t5, to: .transformers)
        #expect(out.recipes.count == official.count && out.unmapped.isEmpty)
        let names = Set(out.entries.map(\.name))
        for name in ["shared.weight", "encoder.block.1.layer.0.layer_norm.weight", "encoder.block.1.layer.0.SelfAttention.q.weight",
                     "encoder.block.1.layer.0.SelfAttention.o.weight", "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight",
                     "encoder.block.1.layer.1.layer_norm.weight", "encoder.block.1.layer.1.DenseReluDense.wi_0.weight",
                     "encoder.block.1.layer.1.DenseReluDense.wi_1.weight", "encoder.block.1.layer.1.DenseReluDense.wo.weight",
                     "encoder.final_layer_norm.weight"] {
            #expect(names.contains(name), "\(name)")
        }
        #expect(WanKeyMaps.names(forOfficial: "blocks.0.ffn.gate.0.weight", component: .t5, convention: .transformers)
                == ["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"])
        let back = try WanKeyMaps.toOfficial(out.entries, component: .t5, from: .transformers)
        #expect(back.entries == official)

        // Tied embedding copy and a full model's decoder are set aside; the copy is used when alone.
        let tied = TensorEntry(name: "encoder.embed_tokens.weight", dtype: .bf16, shape: [100, 64])
        let decoder = TensorEntry(name: "decoder.block.0.layer.0.SelfAttention.q.weight", dtype: .bf16, shape: [64, 64])
        let lmHead = TensorEntry(name: "lm_head.weight", dtype: .bf16, shape: [100, 64])
        let full = try WanKeyMaps.toOfficial(out.entries + [tied, decoder, lmHead], component: .t5, from: .transformers)
        #expect(full.entries == official)
        #expect(Set(full.ignored) == [tied, decoder, lmHead])
        #expect(full.recipe(named: "token_embedding.weight")?.sources[0].entry.name == "shared.weight")
        let onlyTied = out.entries.filter { $0.name != "shared.weight" } + [tied]
        let alone = try WanKeyMaps.toOfficial(onlyTied, component: .t5, from: .transformers)
        #expect(alone.recipe(named: "token_embedding.weight")?.sources[0].entry.name == "encoder.embed_tokens.weight")
        #expect(alone.ignored.isEmpty && alone.unmapped.isEmpty)
        // diffusers' text_encoder/ folder uses the same names.
        #expect(try WanKeyMaps.toOfficial(out.entries, component: .t5, from: .diffusers).entries == official)
    }

    // MARK: CLIP

    @Test func clipFusedQKVReshapesAndTranspose() throws {
        let official = WanCLIPConfig.vitH14.expectedEntries()
        let out = try WanKeyMaps.fromOfficial(official + [TensorEntry(name: "textual.token_embedding.weight", dtype: .f16, shape: [250002, 1024]),
                                                          TensorEntry(name: "log_scale", dtype: .f32, shape: [])],
                                              component: .clip, to: .transformers)
        #expect(out.ignored.map(\.name) == ["textual.token_embedding.weight", "log_scale"])
        #expect(out.unmapped.isEmpty && out.rejected.isEmpty)
        #expect(out.recipes.count == official.count + 2 * 2 * 32)
        let q = try #require(out.recipe(named: "vision_model.encoder.layers.7.self_attn.q_proj.weight"))
        let k = try #require(out.recipe(named: "vision_model.encoder.layers.7.self_attn.k_proj.weight"))
        let v = try #require(out.recipe(named: "vision_model.encoder.layers.7.self_attn.v_proj.bias"))
        #expect(q.shape == [1280, 1280] && q.transform == .slice(axis: 0, start: 0, count: 1280))
        #expect(k.transform == .slice(axis: 0, start: 1280, count: 1280))
        #expect(v.shape == [1280] && v.transform == .slice(axis: 0, start: 2560, count: 1280))
        #expect(q.sources[0].entry.name == "visual.transformer.7.attn.to_qkv.weight")
        let cls = try #require(out.recipe(named: "vision_model.embeddings.class_embedding"))
        #expect(cls.shape == [1280] && cls.transform == .reshape)
        #expect(out.recipe(named: "vision_model.embeddings.position_embedding.weight")?.shape == [257, 1280])
        let projection = try #require(out.recipe(named: "visual_projection.weight"))
        #expect(projection.shape == [1024, 1280] && projection.transform == .transpose)
        #expect(out.recipe(named: "vision_model.pre_layrnorm.weight") != nil)
        #expect(WanKeyMaps.names(forOfficial: "visual.transformer.3.attn.to_qkv.bias", component: .clip, convention: .transformers)
                == ["q_proj", "k_proj", "v_proj"].map { "vision_model.encoder.layers.3.self_attn.\($0).bias" })

        // Back: q/k/v concatenated, reshapes and transpose undone; position_ids ignored.
        let positionIDs = TensorEntry(name: "vision_model.embeddings.position_ids", dtype: .i64, shape: [1, 257])
        let back = try WanKeyMaps.toOfficial(out.entries + [positionIDs], component: .clip, from: .transformers)
        #expect(back.entries == official)
        #expect(back.ignored == [positionIDs])
        let qkv = try #require(back.recipe(named: "visual.transformer.31.attn.to_qkv.weight"))
        #expect(qkv.transform == .concat(axis: 0) && qkv.shape == [3840, 1280])
        #expect(qkv.sources.map(\.entry.name) == ["q_proj", "k_proj", "v_proj"].map { "vision_model.encoder.layers.31.self_attn.\($0).weight" })
        #expect(back.recipe(named: "visual.cls_embedding")?.transform == .reshape)
        #expect(back.recipe(named: "visual.head")?.transform == .transpose)
        #expect(WanKeyMaps.officialName(of: "vision_model.encoder.layers.2.self_attn.k_proj.bias", component: .clip, convention: .transformers)
                == "visual.transformer.2.attn.to_qkv.bias")

        // An incomplete q/k/v group and a non-matrix projection are rejected with the reason.
        let broken = out.entries.filter { $0.name != "vision_model.encoder.layers.4.self_attn.v_proj.weight" && $0.name != "visual_projection.weight" }
            + [TensorEntry(name: "visual_projection.weight", dtype: .f16, shape: [1024, 1280, 1])]
        let partial = try WanKeyMaps.toOfficial(broken, component: .clip, from: .transformers)
        #expect(partial.recipe(named: "visual.transformer.4.attn.to_qkv.weight") == nil)
        #expect(partial.rejected.count == 3)
        #expect(partial.rejected.contains { $0.entry.name.hasSuffix("layers.4.self_attn.q_proj.weight")
            && $0.reason.contains("missing vision_model.encoder.layers.4.self_attn.v_proj.weight") })
        #expect(partial.rejected.contains { $0.entry.name == "visual_projection.weight" && $0.reason.contains("2-D") })
        // Parts that disagree in shape cannot be concatenated.
        var mismatched = out.entries
        if let i = mismatched.firstIndex(where: { $0.name == "vision_model.encoder.layers.0.self_attn.k_proj.weight" }) {
            mismatched[i].shape = [1280, 1279]
        }
        let bad = try WanKeyMaps.toOfficial(mismatched, component: .clip, from: .transformers)
        #expect(bad.rejected.filter { $0.reason.contains("cannot form visual.transformer.0.attn.to_qkv.weight") }.count == 3)
    }

    @Test func duplicatesAreRejected() throws {
        let entries = [TensorEntry(name: "model.diffusion_model.head.modulation", dtype: .f32, shape: [1, 2, 32]),
                       TensorEntry(name: "head.modulation", dtype: .f32, shape: [1, 2, 32])]
        let mapping = try WanKeyMaps.toOfficial(entries, component: .dit, from: .comfyUI)
        #expect(mapping.recipes.count == 1)
        #expect(mapping.rejected.count == 1 && mapping.rejected[0].reason.contains("duplicate of model.diffusion_model.head.modulation"))
    }
}
