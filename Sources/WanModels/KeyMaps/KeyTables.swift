/// The name tables (spec §4.2–4.5). Each rule pairs an official name pattern with the same tensor's name in
/// another convention; `#` is a block index. Shapes are identical unless the rule says otherwise: the spec's
/// tables give the same shapes on both sides for the DiT (diffusers' `scale_shift_table`s are `[1, 2, dim]` /
/// `[1, 6, dim]` like the official `modulation`s), the VAE and umT5; only CLIP differs (fused q/k/v, the
/// class/position embeddings' leading 1-dims, the transposed projection).
enum KeyTables {
    /// `X.weight` / `X.bias` pairs.
    private static func weightAndBias(_ official: String, _ other: String, index: IndexMap = .same) -> [KeyRule] {
        [KeyRule(official + ".weight", other + ".weight", index: index),
         KeyRule(official + ".bias", other + ".bias", index: index)]
    }

    /// DiT: official `WanModel` ↔ diffusers `WanTransformer3DModel` (spec §4.2). Note the norm2/norm3 swap.
    static let dit: KeyRuleTable = {
        var r: [KeyRule] = []
        r += weightAndBias("patch_embedding", "patch_embedding")
        r += weightAndBias("text_embedding.0", "condition_embedder.text_embedder.linear_1")
        r += weightAndBias("text_embedding.2", "condition_embedder.text_embedder.linear_2")
        r += weightAndBias("time_embedding.0", "condition_embedder.time_embedder.linear_1")
        r += weightAndBias("time_embedding.2", "condition_embedder.time_embedder.linear_2")
        r += weightAndBias("time_projection.1", "condition_embedder.time_proj")
        r.append(KeyRule("head.modulation", "scale_shift_table"))
        r += weightAndBias("head.head", "proj_out")
        r += weightAndBias("img_emb.proj.0", "condition_embedder.image_embedder.norm1")
        r += weightAndBias("img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj")
        r += weightAndBias("img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2")
        r += weightAndBias("img_emb.proj.4", "condition_embedder.image_embedder.norm2")
        r.append(KeyRule("img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"))
        let b = "blocks.#."
        r.append(KeyRule(b + "modulation", b + "scale_shift_table"))
        for (attention, diffusers) in [("self_attn", "attn1"), ("cross_attn", "attn2")] {
            for (o, d) in [("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0")] {
                r += weightAndBias(b + attention + "." + o, b + diffusers + "." + d)
            }
            r.append(KeyRule(b + attention + ".norm_q.weight", b + diffusers + ".norm_q.weight"))
            r.append(KeyRule(b + attention + ".norm_k.weight", b + diffusers + ".norm_k.weight"))
        }
        r += weightAndBias(b + "norm3", b + "norm2")
        r += weightAndBias(b + "cross_attn.k_img", b + "attn2.add_k_proj")
        r += weightAndBias(b + "cross_attn.v_img", b + "attn2.add_v_proj")
        r.append(KeyRule(b + "cross_attn.norm_k_img.weight", b + "attn2.norm_added_k.weight"))
        r += weightAndBias(b + "ffn.0", b + "ffn.net.0.proj")
        r += weightAndBias(b + "ffn.2", b + "ffn.net.2")
        return KeyRuleTable(rules: r)
    }()

    /// VAE: official `WanVAE_` ↔ diffusers `AutoencoderKLWan` (spec §4.3). The decoder's flat `upsamples.i`
    /// become `up_blocks.k.resnets.j` / `up_blocks.k.upsamplers.0` with `i = stride·k + j`, where
    /// `stride = num_res_blocks + 2` (3 resnets and one upsampler per level for Wan 2.1).
    static func vae(decoderStride stride: Int) -> KeyRuleTable {
        var r: [KeyRule] = []
        func residual(_ official: String, _ other: String, index: IndexMap = .same) {
            r.append(KeyRule(official + ".residual.0.gamma", other + ".norm1.gamma", index: index))
            r += weightAndBias(official + ".residual.2", other + ".conv1", index: index)
            r.append(KeyRule(official + ".residual.3.gamma", other + ".norm2.gamma", index: index))
            r += weightAndBias(official + ".residual.6", other + ".conv2", index: index)
            r += weightAndBias(official + ".shortcut", other + ".conv_shortcut", index: index)
        }
        func resample(_ official: String, _ other: String, index: IndexMap = .same) {
            r += weightAndBias(official + ".resample.1", other + ".resample.1", index: index)
            r += weightAndBias(official + ".time_conv", other + ".time_conv", index: index)
        }
        r += weightAndBias("encoder.conv1", "encoder.conv_in")
        residual("encoder.downsamples.#", "encoder.down_blocks.#")
        resample("encoder.downsamples.#", "encoder.down_blocks.#")
        r += weightAndBias("decoder.conv1", "decoder.conv_in")
        residual("decoder.upsamples.#", "decoder.up_blocks.#.resnets.#", index: .split(stride: stride))
        resample("decoder.upsamples.#", "decoder.up_blocks.#.upsamplers.0", index: .group(stride: stride, offset: stride - 1))
        for side in ["encoder", "decoder"] {
            residual(side + ".middle.0", side + ".mid_block.resnets.0")
            r.append(KeyRule(side + ".middle.1.norm.gamma", side + ".mid_block.attentions.0.norm.gamma"))
            r += weightAndBias(side + ".middle.1.to_qkv", side + ".mid_block.attentions.0.to_qkv")
            r += weightAndBias(side + ".middle.1.proj", side + ".mid_block.attentions.0.proj")
            residual(side + ".middle.2", side + ".mid_block.resnets.1")
            r.append(KeyRule(side + ".head.0.gamma", side + ".norm_out.gamma"))
            r += weightAndBias(side + ".head.2", side + ".conv_out")
        }
        r += weightAndBias("conv1", "quant_conv")
        r += weightAndBias("conv2", "post_quant_conv")
        return KeyRuleTable(rules: r)
    }

    /// The Wan 2.1 VAE table (num_res_blocks 2).
    static let vae: KeyRuleTable = vae(decoderStride: WanVAEConfig.wan21.numResBlocks + 2)

    /// umT5: official `T5Encoder` ↔ transformers `UMT5EncoderModel` (spec §4.4). `encoder.embed_tokens.weight`
    /// is the tied copy of `shared.weight` and only used when `shared.weight` is absent; a full `UMT5Model`'s
    /// decoder and `lm_head` are ignored.
    static let t5: KeyRuleTable = {
        var r: [KeyRule] = []
        r.append(KeyRule("token_embedding.weight", "shared.weight"))
        r.append(KeyRule("token_embedding.weight", "encoder.embed_tokens.weight", alias: true))
        let b = "blocks.#.", e = "encoder.block.#."
        r.append(KeyRule(b + "norm1.weight", e + "layer.0.layer_norm.weight"))
        for x in ["q", "k", "v", "o"] {
            r.append(KeyRule(b + "attn." + x + ".weight", e + "layer.0.SelfAttention." + x + ".weight"))
        }
        r.append(KeyRule(b + "pos_embedding.embedding.weight", e + "layer.0.SelfAttention.relative_attention_bias.weight"))
        r.append(KeyRule(b + "norm2.weight", e + "layer.1.layer_norm.weight"))
        r.append(KeyRule(b + "ffn.gate.0.weight", e + "layer.1.DenseReluDense.wi_0.weight"))
        r.append(KeyRule(b + "ffn.fc1.weight", e + "layer.1.DenseReluDense.wi_1.weight"))
        r.append(KeyRule(b + "ffn.fc2.weight", e + "layer.1.DenseReluDense.wo.weight"))
        r.append(KeyRule("norm.weight", "encoder.final_layer_norm.weight"))
        return KeyRuleTable(rules: r, ignoredOther: IgnoreList(prefixes: ["decoder.", "lm_head."]))
    }()

    /// CLIP visual tower: official `XLMRobertaCLIP.visual` ↔ transformers `CLIPVisionModel[WithProjection]`
    /// (spec §4.5). The official text tower (`textual.*`, `log_scale`) and HF's `position_ids` buffer and
    /// text parts are ignored.
    static let clip: KeyRuleTable = {
        var r: [KeyRule] = []
        r.append(KeyRule("visual.patch_embedding.weight", "vision_model.embeddings.patch_embedding.weight"))
        r.append(KeyRule("visual.cls_embedding", "vision_model.embeddings.class_embedding", shape: .unsqueeze(2)))
        r.append(KeyRule("visual.pos_embedding", "vision_model.embeddings.position_embedding.weight", shape: .unsqueeze(1)))
        r += weightAndBias("visual.pre_norm", "vision_model.pre_layrnorm")
        for suffix in ["weight", "bias"] {
            r.append(KeyRule("visual.pre_norm." + suffix, "vision_model.pre_layernorm." + suffix, alias: true))
        }
        let b = "visual.transformer.#.", h = "vision_model.encoder.layers.#."
        r += weightAndBias(b + "norm1", h + "layer_norm1")
        for suffix in ["weight", "bias"] {
            r.append(KeyRule(b + "attn.to_qkv." + suffix,
                             ["q_proj", "k_proj", "v_proj"].map { h + "self_attn." + $0 + "." + suffix }))
        }
        r += weightAndBias(b + "attn.proj", h + "self_attn.out_proj")
        r += weightAndBias(b + "norm2", h + "layer_norm2")
        r += weightAndBias(b + "mlp.0", h + "mlp.fc1")
        r += weightAndBias(b + "mlp.2", h + "mlp.fc2")
        r += weightAndBias("visual.post_norm", "vision_model.post_layernorm")
        r.append(KeyRule("visual.head", "visual_projection.weight", shape: .transpose))
        return KeyRuleTable(
            rules: r,
            ignoredOfficial: IgnoreList(names: ["log_scale"], prefixes: ["textual."]),
            ignoredOther: IgnoreList(names: ["vision_model.embeddings.position_ids", "logit_scale", "text_projection.weight"],
                                     prefixes: ["text_model."]))
    }()

    /// Identity tables over the official names.
    static let ditOfficial = dit.identity
    static let vaeOfficial = vae.identity
    static let t5Official = t5.identity
    static let clipOfficial = clip.identity

    /// The table between the official names and `convention`'s base names for `component`, or nil when the
    /// component has no such names. Official and ComfyUI DiT/VAE files share the official names.
    static func table(for component: WanComponent, convention: KeyConvention) -> KeyRuleTable? {
        switch (component, convention) {
        case (.dit, .official), (.dit, .comfyUI): return ditOfficial
        case (.dit, .diffusers): return dit
        case (.vae, .official), (.vae, .comfyUI): return vaeOfficial
        case (.vae, .diffusers): return vae
        case (.t5, .official): return t5Official
        case (.t5, _): return t5
        case (.clip, .official): return clipOfficial
        case (.clip, _): return clip
        case (.dit, .transformers), (.vae, .transformers): return nil
        }
    }

    /// The base naming of `convention` for `component` (ComfyUI's umT5/CLIP files use transformers names).
    static func baseConvention(of convention: KeyConvention, for component: WanComponent) -> KeyConvention {
        switch (component, convention) {
        case (.dit, .comfyUI), (.vae, .comfyUI): return .official
        case (.t5, .comfyUI), (.clip, .comfyUI), (.t5, .diffusers), (.clip, .diffusers): return .transformers
        default: return convention
        }
    }

    /// The name prefixes a ComfyUI file may put before a component's names (stripped on load).
    static func prefixes(for component: WanComponent) -> [String] {
        switch component {
        case .dit: return ["model.diffusion_model.", "diffusion_model."]
        case .vae: return ["first_stage_model."]
        case .t5, .clip: return []
        }
    }

    /// The prefix `fromOfficial` writes for ComfyUI files.
    static func writtenPrefix(for component: WanComponent, convention: KeyConvention) -> String {
        component == .dit && convention == .comfyUI ? "model.diffusion_model." : ""
    }
}
