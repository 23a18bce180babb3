import Foundation
import WanGraph
import WanRuntime

/// The Wan 2.1 diffusion transformer (`WanModel`, spec §3) on the runtime: parameters under their official
/// names on one device, and graph builders for a forward pass over a batch of latents.
///
/// Numerics follow the official fp32 path: the timestep sinusoid is computed on the host in float64 and
/// rounded to fp32, every op runs in fp32 (residual stream, time embedding, modulations and head included),
/// RoPE angles come from a float64 table, and the text context is **not masked** in cross-attention (the
/// official model zero-pads each prompt to `text_len` and attends over every row, spec §3.5); I2V / FLF2V
/// add the image branch (`img_emb`, `k_img` / `v_img`, summed attentions, spec §3.6, §3.10).
public final class WanDiT: Sendable {
    /// Storage type of the matmul weights; everything else stays fp32 (spec §3.14).
    public enum Precision: String, Sendable, CaseIterable {
        /// Every weight in fp32 (the default; the official fp32 numerics).
        case fp32
        /// Patch/text embedding and block Linear weights in fp16, fp32 accumulation and activations. On a GPU
        /// with tensor cores (every reduced mode) those matmuls and the attentions round their activations to
        /// fp16 on the way in (`Graph.fp16Compute`); the residual stream, norms and statistics stay fp32.
        case fp16
        /// Patch/text embedding and block Linear weights in bf16 (RNE from fp32), fp32 accumulation and activations.
        case bf16
        /// The same weights as FP8 E4M3FN bytes with one fp32 scale per output channel (decoded to fp16 in the
        /// GEMM's shared-memory tiles, never expanded in device memory); fp32 accumulation and activations.
        case fp8

        /// The weight dtype of the reduced-precision matmuls.
        public var matmulDType: DType {
            switch self {
            case .fp32: return .f32
            case .fp16: return .f16
            case .bf16: return .bf16
            case .fp8: return .f8e4m3fn
            }
        }
    }

    /// The hyper-parameters.
    public let config: WanDiTConfig
    /// Storage type of the patch/text embedding and block matmul weights.
    public let precision: Precision
    /// The device the parameters live on.
    public let device: Device
    /// Parameters by official name (f32, on `device`).
    public let weights: [String: Tensor]
    /// Per-output-channel fp32 scales of the FP8 matmul weights, by weight name (empty unless `.fp8`).
    public let weightScales: [String: Tensor]
    /// How many transformer blocks keep their weights in host memory and are streamed each forward.
    public let streamedBlocks: Int
    /// A shape-only model's weights (and FP8 scales, as `name:scale`) by name: shape, stored dtype, residence
    /// (`init(shapeOnly:...)`, see WanDiTPlanning.swift); empty for a model with weights.
    let placeholders: [String: WanDiT.Placeholder]

    /// Whether the official tensor `name` is a matmul weight that `precision` may store in 16 bits:
    /// patch embedding, text embedding, image MLP and block Linear weights (not the time embedding,
    /// time projection, head, modulations, norms or biases, which stay fp32 as in the official run).
    public static func isReducedPrecisionWeight(_ name: String) -> Bool {
        guard name.hasSuffix(".weight") else { return false }
        if name == "patch_embedding.weight" || name == "text_embedding.0.weight" || name == "text_embedding.2.weight"
            || name == "img_emb.proj.1.weight" || name == "img_emb.proj.3.weight" {
            return true
        }
        guard name.hasPrefix("blocks."), !name.contains(".norm") else { return false }
        return name.contains(".self_attn.") || name.contains(".cross_attn.") || name.contains(".ffn.")
    }

    /// Builds the model from tensors named as in the official checkpoint (spec §4.2). Every tensor of
    /// `config.expectedTensors()` must be present with its exact shape and no other tensor may be; tensors on
    /// another device or in another dtype are copied to `device` (f32, or `precision`'s type for the matmul
    /// weights). Throws `RuntimeError` listing missing, misshapen and unexpected tensors.
    /// `deviceWeightBudget` (bytes): weights beyond it stay in host memory and are streamed to the device
    /// block by block during each forward (see `weightResidence`); nil keeps every weight on the device.
    /// With `.fp8`, float matmul weights are quantised here (per output channel); weights already in
    /// `f8e4m3fn` need their scales in `weightScales`.
    public init(config: WanDiTConfig, weights: [String: Tensor], device: Device, precision: Precision = .fp32,
                deviceWeightBudget: Int? = nil, weightScales: [String: Tensor] = [:]) throws {
        try config.validate()
        guard config.patchSize.count == 3, config.patchSize[0] == 1 else {
            throw RuntimeError.invalidArgument("WanDiT: patch_size \(config.patchSize) is not supported (temporal patch must be 1, as in every released model)")
        }
        let expected = config.expectedTensors()
        var problems: [String] = []
        for spec in expected {
            guard let t = weights[spec.name] else {
                if !spec.optional { problems.append("missing \(spec.name) \(spec.shape)") }
                continue
            }
            if t.shape != spec.shape { problems.append("\(spec.name) has shape \(t.shape), expected \(spec.shape)") }
            if !t.dtype.isFloat { problems.append("\(spec.name) is \(t.dtype), not a float tensor") }
            if t.dtype == .f8e4m3fn && (precision != .fp8 || weightScales[spec.name] == nil || !WanDiT.isReducedPrecisionWeight(spec.name)) {
                problems.append("\(spec.name) is fp8: only matmul weights with their scales, in .fp8 precision")
            }
        }
        let known = Set(expected.map(\.name))
        for name in weights.keys.sorted() where !known.contains(name) { problems.append("unexpected tensor \(name)") }
        guard problems.isEmpty else {
            let shown = problems.prefix(20).joined(separator: "; ")
            throw RuntimeError.invalidArgument("WanDiT (\(config)): \(problems.count) weight problem(s): \(shown)\(problems.count > 20 ? "; …" : "")")
        }
        let residence = try WanDiT.weightResidence(config: config, precision: precision, deviceWeightBudget: deviceWeightBudget)
        var placed: [String: Tensor] = [:]
        var scales: [String: Tensor] = [:]
        for (name, t) in weights {
            let dtype = WanDiT.isReducedPrecisionWeight(name) ? precision.matmulDType : .f32
            let home = device.isCPU ? MemoryResidence.device : residence[name] ?? .device
            if dtype == .f8e4m3fn {
                if t.dtype == .f8e4m3fn, let s = weightScales[name] {
                    placed[name] = t.device === device && t.isContiguous && t.storage.residence == home ? t
                        : try device.tensor(bytes: try t.device.readBytes(t), shape: t.shape, dtype: .f8e4m3fn, residence: home)
                    scales[name] = s.device === device ? s : try device.tensor(try s.device.read(s), shape: s.shape)
                } else {
                    let q = try WanDiT.quantizedFP8(try t.device.read(t), shape: t.shape)
                    placed[name] = try device.tensor(bytes: q.bytes, shape: t.shape, dtype: .f8e4m3fn, residence: home)
                    scales[name] = try device.tensor(q.scales, shape: [t.shape[0]])
                }
                continue
            }
            if t.device === device && t.dtype == dtype && t.isContiguous && t.storage.residence == home {
                placed[name] = t
            } else {
                placed[name] = try device.tensor(try t.device.read(t), shape: t.shape, dtype: dtype, residence: home)
            }
        }
        self.weightScales = scales
        self.streamedBlocks = Set(residence.filter { $0.value == .host }.keys.compactMap { $0.split(separator: ".").dropFirst().first }).count
        self.config = config
        self.precision = precision
        self.device = device
        self.weights = placed
        self.placeholders = [:]
    }

    /// A model of `config` without weights, for planning memory: its graphs declare every weight (as `precision`
    /// stores it, placed in device or host memory as `weightResidence` does under `deviceWeightBudget`) as a
    /// placeholder and allocate only the tables they build (RoPE) on `device`; `footprint` plans them, they
    /// cannot be compiled.
    public init(shapeOnly config: WanDiTConfig, precision: Precision = .fp32, deviceWeightBudget: Int? = nil,
                device: Device = .cpu()) throws {
        try config.validate()
        guard config.patchSize.count == 3, config.patchSize[0] == 1 else {
            throw RuntimeError.invalidArgument("WanDiT: patch_size \(config.patchSize) is not supported (temporal patch must be 1, as in every released model)")
        }
        let residence = try WanDiT.weightResidence(config: config, precision: precision, deviceWeightBudget: deviceWeightBudget)
        self.placeholders = WanDiT.placeholders(config: config, precision: precision, residence: residence)
        self.weightScales = [:]
        self.streamedBlocks = Set(residence.filter { $0.value == .host }.keys.compactMap { $0.split(separator: ".").dropFirst().first }).count
        self.config = config
        self.precision = precision
        self.device = device
        self.weights = [:]
    }

    /// Where each weight lives under a device budget for weights: everything outside the blocks (embeddings,
    /// time projection, head) and the first blocks on the device, the blocks that do not fit in host memory,
    /// streamed to the device before use (the last blocks first, so the early blocks of every step run from
    /// device memory). Throws `RuntimeError.outOfDeviceMemory` when not even the weights outside the blocks and
    /// the largest block fit. Nil budget: everything on the device.
    public static func weightResidence(config: WanDiTConfig, precision: Precision,
                                       deviceWeightBudget: Int?) throws -> [String: MemoryResidence] {
        let specs = config.expectedTensors().filter { !$0.optional }
        guard let budget = deviceWeightBudget else { return Dictionary(uniqueKeysWithValues: specs.map { ($0.name, .device) }) }
        func bytes(_ spec: TensorSpec) -> Int {
            spec.shape.reduce(1, *) * (isReducedPrecisionWeight(spec.name) ? precision.matmulDType.size : 4)
        }
        var blockBytes = [Int](repeating: 0, count: config.numLayers)
        var fixed = 0
        for spec in specs {
            if spec.name.hasPrefix("blocks."), let i = Int(spec.name.split(separator: ".")[1]), i < blockBytes.count {
                blockBytes[i] += bytes(spec)
            } else {
                fixed += bytes(spec)
            }
        }
        guard fixed + (blockBytes.max() ?? 0) <= budget else {
            throw RuntimeError.outOfDeviceMemory(
                requested: fixed + (blockBytes.max() ?? 0),
                detail: "the DiT's weights outside the blocks (\(fixed) bytes) and one streamed block do not fit a weight budget of \(budget) bytes")
        }
        // Resident blocks 0..<k with the largest k that leaves room for one streamed block (when any is streamed).
        var k = config.numLayers
        while k > 0 && fixed + blockBytes[0..<k].reduce(0, +) + (k < config.numLayers ? (blockBytes.max() ?? 0) : 0) > budget { k -= 1 }
        var out: [String: MemoryResidence] = [:]
        for spec in specs {
            if spec.name.hasPrefix("blocks."), let i = Int(spec.name.split(separator: ".")[1]), i >= k {
                out[spec.name] = .host
            } else {
                out[spec.name] = .device
            }
        }
        return out
    }

    /// FP8 E4M3FN bytes of a matmul weight [out, ...] and its per-output-channel scales (the runtime's
    /// `quantizeFP8` on the CPU: scale = max|row| / 448, bytes = fp8(row / scale), round to nearest even).
    public static func quantizedFP8(_ values: [Float], shape: [Int]) throws -> (bytes: [UInt8], scales: [Float]) {
        let cpu = Device.cpu()
        let x = try cpu.tensor(values, shape: shape)
        let out = try cpu.empty(shape, dtype: .f8e4m3fn)
        let scales = try cpu.empty([shape.first ?? 1])
        let cl = try CommandList(device: cpu)
        try cl.quantizeFP8(x, out: out, scales: scales, scaling: .perChannel)
        try cl.run()
        return (try cpu.readBytes(out), try cpu.read(scales))
    }

    /// The FP8 scales of matmul weight `name` as a graph value, nil when the weight is not FP8.
    func scale(_ g: Graph, _ name: String) -> Graph.Value? {
        if let s = placeholders[name + ":scale"] { return try? g.placeholder(name + ":scale", shape: s.shape, dtype: s.dtype) }
        return weightScales[name].map { g.parameter(name + ":scale", $0) }
    }

    /// The parameter `name` (official) as a graph value.
    func p(_ g: Graph, _ name: String) throws -> Graph.Value {
        if let s = placeholders[name] { return try g.placeholder(name, shape: s.shape, dtype: s.dtype, residence: s.residence) }
        guard let t = weights[name] else { throw RuntimeError.invalidArgument("WanDiT: no parameter \(name)") }
        return g.parameter(name, t)
    }

    // MARK: host-side helpers

    /// The fp32 sinusoidal timestep embedding of spec §3.4: `[cos(t·ω_k)…, sin(t·ω_k)…]` with
    /// `ω_k = 10000^(−k/half)`, computed in float64 then rounded to fp32 (cosine half first).
    public static func timestepSinusoid(_ t: Double, dim: Int) -> [Float] {
        let half = dim / 2
        var out = [Float](repeating: 0, count: 2 * half)
        for k in 0..<half {
            let omega = Foundation.pow(10000.0, -Double(k) / Double(half))
            let a = t * omega
            out[k] = Float(Foundation.cos(a))
            out[half + k] = Float(Foundation.sin(a))
        }
        return out
    }

    /// The text context as the official model sees it: each prompt's first `lengths[b]` rows of
    /// `context` ([batch, rows, textDim], rows ≤ text_len) kept, the rest zero, padded to `textLen` rows.
    public static func padContext(_ context: [Float], batch: Int, rows: Int, textDim: Int, textLen: Int,
                                  lengths: [Int]?) throws -> [Float] {
        guard batch > 0, rows >= 0, rows <= textLen, context.count == batch * rows * textDim else {
            throw RuntimeError.shapeMismatch("DiT context: \(context.count) values for \(batch) × \(rows) × \(textDim) (at most \(textLen) rows)")
        }
        let lens = lengths ?? Array(repeating: rows, count: batch)
        guard lens.count == batch, lens.allSatisfy({ $0 >= 0 && $0 <= rows }) else {
            throw RuntimeError.invalidArgument("DiT context lengths \(lens) for batch \(batch) of \(rows) rows")
        }
        var out = [Float](repeating: 0, count: batch * textLen * textDim)
        for b in 0..<batch {
            let n = lens[b] * textDim
            let src = b * rows * textDim, dst = b * textLen * textDim
            for i in 0..<n { out[dst + i] = context[src + i] }
        }
        return out
    }

    // MARK: graph building

    /// Latent [B, C, F, H, W] → patch vectors [B, F·(H/ph)·(W/pw), C·ph·pw] in token order (f, h, w) with the
    /// vector laid out (c, q, r) (spec §3.2); temporal patch 1.
    public static func patchify(_ g: Graph, _ x: Graph.Value, patch: (h: Int, w: Int)) throws -> Graph.Value {
        let s = g.shape(x)
        guard s.count == 5, s[3] % patch.h == 0, s[4] % patch.w == 0 else {
            throw RuntimeError.shapeMismatch("DiT patchify: latent \(s) is not [B, C, F, H, W] with H, W multiples of \(patch.h), \(patch.w)")
        }
        let (b, c, f, hp, wp) = (s[0], s[1], s[2], s[3] / patch.h, s[4] / patch.w)
        let v = try g.reshape(x, [b, c, f, hp, patch.h, wp, patch.w])
        let t = try g.contiguous(try g.permute(v, [0, 2, 3, 5, 1, 4, 6]))       // [B, F, H', W', C, ph, pw]
        return try g.reshape(t, [b, f * hp * wp, c * patch.h * patch.w])
    }

    /// Head output [B, F·H'·W', ph·pw·C] (channel fastest) → latent [B, C, F, H'·ph, W'·pw] (spec §3.13):
    /// `v[c, f, ph·h+q, pw·w+r] = out[n(f,h,w), (q·pw + r)·C + c]`.
    public static func unpatchify(_ g: Graph, _ tokens: Graph.Value, channels c: Int, frames f: Int, height hp: Int, width wp: Int,
                                  patch: (h: Int, w: Int)) throws -> Graph.Value {
        let s = g.shape(tokens)
        guard s.count == 3, s[1] == f * hp * wp, s[2] == patch.h * patch.w * c else {
            throw RuntimeError.shapeMismatch("DiT unpatchify: tokens \(s) for grid \(f)×\(hp)×\(wp), patch \(patch), \(c) channels")
        }
        let b = s[0]
        let v = try g.reshape(tokens, [b, f, hp, wp, patch.h, patch.w, c])
        let t = try g.contiguous(try g.permute(v, [0, 6, 1, 2, 4, 3, 5]))       // [B, C, F, H', ph, W', pw]
        return try g.reshape(t, [b, c, f, hp * patch.h, wp * patch.w])
    }

    /// The graph values of a forward pass, for callers that embed the DiT in a larger graph.
    public struct Inputs {
        /// Noisy latent [B, in_dim, F, H, W] (I2V: noise and conditioning `y` concatenated, 36 channels).
        public var x: Graph.Value
        /// Timestep sinusoid [B, freq_dim] (`timestepSinusoid`).
        public var timestepSinusoid: Graph.Value
        /// Text context [B, text_len, text_dim], zero rows beyond each prompt (`padContext`).
        public var context: Graph.Value
        /// CLIP features [B, tokens, image_dim] (I2V: any token count, FLF2V: `imagePositions`); nil for T2V.
        public var clipFeatures: Graph.Value?

        /// Groups the input values.
        public init(x: Graph.Value, timestepSinusoid: Graph.Value, context: Graph.Value, clipFeatures: Graph.Value? = nil) {
            self.x = x
            self.timestepSinusoid = timestepSinusoid
            self.context = context
            self.clipFeatures = clipFeatures
        }
    }

    /// Adds one forward pass to `g` and returns the velocity [B, out_dim, F, H, W] (fp32).
    public func forward(_ g: Graph, _ inputs: Inputs) throws -> Graph.Value {
        let cfg = config
        let sx = g.shape(inputs.x)
        guard sx.count == 5, sx[1] == cfg.inDim else {
            throw RuntimeError.shapeMismatch("DiT: latent \(sx) is not [B, \(cfg.inDim), F, H, W]")
        }
        let (batch, frames, height, width) = (sx[0], sx[2], sx[3], sx[4])
        let (ph, pw) = (cfg.patchSize[1], cfg.patchSize[2])
        guard batch > 0, frames > 0, height > 0, width > 0, height % ph == 0, width % pw == 0 else {
            throw RuntimeError.shapeMismatch("DiT: latent \(sx) needs H, W multiples of \(ph), \(pw)")
        }
        let (hp, wp) = (height / ph, width / pw)
        guard frames <= 1024, hp <= 1024, wp <= 1024 else {
            throw RuntimeError.invalidArgument("DiT: token grid \(frames)×\(hp)×\(wp) exceeds the 1024 RoPE positions per axis")
        }
        guard g.shape(inputs.timestepSinusoid) == [batch, cfg.freqDim] else {
            throw RuntimeError.shapeMismatch("DiT: timestep sinusoid \(g.shape(inputs.timestepSinusoid)), expected [\(batch), \(cfg.freqDim)]")
        }
        let sc = g.shape(inputs.context)
        guard sc.count == 3, sc[0] == batch, sc[2] == cfg.textDim else {
            throw RuntimeError.shapeMismatch("DiT: context \(sc), expected [\(batch), rows, \(cfg.textDim)]")
        }
        let dim = cfg.dim, heads = cfg.numHeads, hd = cfg.headDim
        let eps = Float(cfg.eps)
        let tokens = frames * hp * wp

        // Patch embedding: a Linear on the (c, q, r) patch vectors.
        let patches = try WanDiT.patchify(g, inputs.x, patch: (ph, pw))
        let pe = try g.reshape(try p(g, "patch_embedding.weight"), [dim, cfg.inDim * ph * pw])
        var x = try g.linear(patches, weight: pe, bias: try p(g, "patch_embedding.bias"),
                             weightScale: scale(g, "patch_embedding.weight"))          // [B, L, dim]

        // Time embedding (fp32): e = te.2(SiLU(te.0(sin))), e0 = tp.1(SiLU(e)) → [B, 6, dim].
        let e1 = try g.linear(inputs.timestepSinusoid, weight: try p(g, "time_embedding.0.weight"),
                              bias: try p(g, "time_embedding.0.bias"), activation: .silu)
        let e = try g.linear(e1, weight: try p(g, "time_embedding.2.weight"), bias: try p(g, "time_embedding.2.bias"))
        let e0 = try g.reshape(try g.linear(try g.unary(.silu, e), weight: try p(g, "time_projection.1.weight"),
                                            bias: try p(g, "time_projection.1.bias")), [batch, 6, dim])

        // Text embedding: te.2(gelu_tanh(te.0(c))) over every row (padding rows included, unmasked).
        let c1 = try g.linear(inputs.context, weight: try p(g, "text_embedding.0.weight"), bias: try p(g, "text_embedding.0.bias"),
                              activation: .geluTanh, weightScale: scale(g, "text_embedding.0.weight"))
        let ctx = try g.linear(c1, weight: try p(g, "text_embedding.2.weight"), bias: try p(g, "text_embedding.2.bias"),
                               weightScale: scale(g, "text_embedding.2.weight"))

        // Image embedding (I2V / FLF2V).
        var imageContext: Graph.Value?
        if cfg.hasImageInput {
            guard let clip = inputs.clipFeatures else { throw RuntimeError.invalidArgument("DiT \(cfg.modelType): CLIP features are required") }
            let sf = g.shape(clip)
            guard sf.count == 3, sf[0] == batch, sf[2] == cfg.imageDim, sf[1] > 0 else {
                throw RuntimeError.shapeMismatch("DiT: CLIP features \(sf), expected [\(batch), tokens, \(cfg.imageDim)]")
            }
            var f = clip
            if cfg.modelType == .flf2v {
                guard sf[1] == cfg.imagePositions else {
                    throw RuntimeError.shapeMismatch("DiT FLF2V: \(sf[1]) CLIP tokens, expected \(cfg.imagePositions)")
                }
                f = try g.add(f, try p(g, "img_emb.emb_pos"))
            }
            f = try g.layerNorm(f, weight: try p(g, "img_emb.proj.0.weight"), bias: try p(g, "img_emb.proj.0.bias"), eps: 1e-5)
            f = try g.linear(f, weight: try p(g, "img_emb.proj.1.weight"), bias: try p(g, "img_emb.proj.1.bias"), activation: .geluErf,
                             weightScale: scale(g, "img_emb.proj.1.weight"))
            f = try g.linear(f, weight: try p(g, "img_emb.proj.3.weight"), bias: try p(g, "img_emb.proj.3.bias"),
                             weightScale: scale(g, "img_emb.proj.3.weight"))
            imageContext = try g.layerNorm(f, weight: try p(g, "img_emb.proj.4.weight"), bias: try p(g, "img_emb.proj.4.bias"), eps: 1e-5)
        } else if inputs.clipFeatures != nil {
            throw RuntimeError.invalidArgument("DiT t2v takes no CLIP features")
        }

        let rope = try RoPETable.wan3D(device: device, headDim: hd, frames: frames, height: hp, width: wp)
        func heads4(_ v: Graph.Value, _ rows: Int) throws -> Graph.Value { try g.reshape(v, [batch, rows, heads, hd]) }
        func merge(_ v: Graph.Value) throws -> Graph.Value { try g.reshape(v, [batch, g.shape(v)[1], dim]) }
        func lin(_ v: Graph.Value, _ name: String, activation: Activation = .none, residual: Graph.Value? = nil) throws -> Graph.Value {
            try g.linear(v, weight: try p(g, name + ".weight"), bias: try p(g, name + ".bias"), activation: activation, residual: residual,
                         weightScale: scale(g, name + ".weight"))
        }
        func chunk(_ m: Graph.Value, _ i: Int) throws -> Graph.Value { try g.slice(m, dim: 1, i..<(i + 1)) }   // [B, 1, dim]

        for n in 0..<cfg.numLayers {
            let b = "blocks.\(n)."
            let mod = try g.add(try p(g, b + "modulation"), e0)                     // [B, 6, dim] fp32
            let onePlus = try g.unary(.identity, mod, shift: 1)                      // 1 + chunk
            // Self-attention on the modulated norm1.
            let h = try g.add(try g.mul(try g.layerNorm(x, eps: eps), try chunk(onePlus, 1)), try chunk(mod, 0))
            var q = try lin(h, b + "self_attn.q"), k = try lin(h, b + "self_attn.k")
            if cfg.qkNorm {
                q = try g.rmsNorm(q, weight: try p(g, b + "self_attn.norm_q.weight"), eps: eps)
                k = try g.rmsNorm(k, weight: try p(g, b + "self_attn.norm_k.weight"), eps: eps)
            }
            let v = try lin(h, b + "self_attn.v")
            let qr = try g.rope(try heads4(q, tokens), table: rope), kr = try g.rope(try heads4(k, tokens), table: rope)
            let att = try merge(try g.attention(q: qr, k: kr, v: try heads4(v, tokens)))
            x = try g.add(x, try g.mul(try lin(att, b + "self_attn.o"), try chunk(mod, 2)))
            // Cross-attention on norm3(x), no modulation, no gate, no mask.
            let xn = cfg.crossAttnNorm
                ? try g.layerNorm(x, weight: try p(g, b + "norm3.weight"), bias: try p(g, b + "norm3.bias"), eps: eps) : x
            var cq = try lin(xn, b + "cross_attn.q"), ck = try lin(ctx, b + "cross_attn.k")
            if cfg.qkNorm {
                cq = try g.rmsNorm(cq, weight: try p(g, b + "cross_attn.norm_q.weight"), eps: eps)
                ck = try g.rmsNorm(ck, weight: try p(g, b + "cross_attn.norm_k.weight"), eps: eps)
            }
            let cv = try lin(ctx, b + "cross_attn.v")
            let cq4 = try heads4(cq, tokens)
            var cross = try merge(try g.attention(q: cq4, k: try heads4(ck, sc[1]), v: try heads4(cv, sc[1])))
            if let img = imageContext {
                let rows = g.shape(img)[1]
                var ki = try lin(img, b + "cross_attn.k_img")
                if cfg.qkNorm { ki = try g.rmsNorm(ki, weight: try p(g, b + "cross_attn.norm_k_img.weight"), eps: eps) }
                let vi = try lin(img, b + "cross_attn.v_img")
                cross = try g.add(cross, try merge(try g.attention(q: cq4, k: try heads4(ki, rows), v: try heads4(vi, rows))))
            }
            x = try lin(cross, b + "cross_attn.o", residual: x)
            // FFN on the modulated norm2, gated residual.
            let h2 = try g.add(try g.mul(try g.layerNorm(x, eps: eps), try chunk(onePlus, 4)), try chunk(mod, 3))
            let f = try lin(try lin(h2, b + "ffn.0", activation: .geluTanh), b + "ffn.2")
            x = try g.add(x, try g.mul(f, try chunk(mod, 5)))
        }

        // Head (fp32): modulation from the raw time embedding e.
        let hm = try g.add(try p(g, "head.modulation"), try g.reshape(e, [batch, 1, dim]))           // [B, 2, dim]
        let hScale = try g.unary(.identity, try chunk(hm, 1), shift: 1)
        let hx = try g.add(try g.mul(try g.layerNorm(x, eps: eps), hScale), try chunk(hm, 0))
        let out = try lin(hx, "head.head")                                                            // [B, L, ph·pw·out]
        return try WanDiT.unpatchify(g, out, channels: cfg.outDim, frames: frames, height: hp, width: wp, patch: (ph, pw))
    }

    /// A compiled forward pass for one batch size and latent size, reusable across sampling steps.
    public func session(batch: Int, frames: Int, height: Int, width: Int, contextRows: Int? = nil,
                        clipTokens: Int? = nil) throws -> WanDiTSession {
        try WanDiTSession(model: self, batch: batch, frames: frames, height: height, width: width,
                          contextRows: contextRows ?? config.textLen, clipTokens: clipTokens)
    }

    /// One forward pass (compiles a session; use `session` to reuse it across steps). `x` is
    /// [B, in_dim, F, H, W], `timesteps` B values, `context` [B, rows ≤ text_len, text_dim] with
    /// `contextLengths` (rows beyond are zeroed, default: all), `clipFeatures` [B, tokens, image_dim] for
    /// I2V / FLF2V. Returns the velocity [B, out_dim, F, H, W].
    public func forward(x: [Float], batch: Int, frames: Int, height: Int, width: Int, timesteps: [Double],
                        context: [Float], contextLengths: [Int]? = nil, clipFeatures: [Float]? = nil,
                        clipTokens: Int? = nil) throws -> [Float] {
        let s = try session(batch: batch, frames: frames, height: height, width: width, clipTokens: clipTokens)
        return try s.run(x: x, timesteps: timesteps, context: context, contextLengths: contextLengths, clipFeatures: clipFeatures)
    }
}

/// A DiT forward pass compiled for one batch size and latent size (inputs `x`, `t_sinusoid`, `context`,
/// `clip`; output `out`).
public final class WanDiTSession {
    /// The model.
    public let model: WanDiT
    /// Batch size, latent frames, height, width.
    public let batch: Int, frames: Int, height: Int, width: Int
    /// Rows of the context input (text_len by default).
    public let contextRows: Int
    /// CLIP tokens (I2V / FLF2V), else nil.
    public let clipTokens: Int?
    /// The compiled graph.
    public let graph: CompiledGraph

    init(model: WanDiT, batch: Int, frames: Int, height: Int, width: Int, contextRows: Int, clipTokens: Int?) throws {
        let cfg = model.config
        guard contextRows > 0 else { throw RuntimeError.invalidArgument("DiT: context rows must be positive") }
        if cfg.hasImageInput {
            guard let n = clipTokens, n > 0 else { throw RuntimeError.invalidArgument("DiT \(cfg.modelType): give the CLIP token count") }
        }
        let g = try WanDiTSession.graph(model: model, batch: batch, frames: frames, height: height, width: width,
                                        contextRows: contextRows, clipTokens: clipTokens)
        self.model = model
        self.batch = batch
        self.frames = frames
        self.height = height
        self.width = width
        self.contextRows = contextRows
        self.clipTokens = cfg.hasImageInput ? clipTokens : nil
        self.graph = try g.compile(for: model.device, profile: ProcessInfo.processInfo.environment["WAN_PROFILE"] == "1")
    }

    /// The session's graph (inputs `x`, `t_sinusoid`, `context`, `clip`; output `out`), not compiled.
    static func graph(model: WanDiT, batch: Int, frames: Int, height: Int, width: Int, contextRows: Int,
                      clipTokens: Int?) throws -> Graph {
        let cfg = model.config
        let g = Graph()
        // Reduced-precision modes: the 16-bit/FP8 matmuls and the attentions may run on tensor cores with their
        // f32 activations rounded to fp16 (fp32 accumulation); fp32 weights (time embedding, modulation, head) stay exact.
        g.fp16Compute = model.precision != .fp32
        let x = try g.input("x", shape: [batch, cfg.inDim, frames, height, width])
        let t = try g.input("t_sinusoid", shape: [batch, cfg.freqDim])
        let c = try g.input("context", shape: [batch, contextRows, cfg.textDim])
        let clip = cfg.hasImageInput ? try g.input("clip", shape: [batch, clipTokens ?? 0, cfg.imageDim]) : nil
        let out = try model.forward(g, WanDiT.Inputs(x: x, timestepSinusoid: t, context: c, clipFeatures: clip))
        try g.output("out", out)
        return g
    }

    /// Whether `setConditioning` has filled the context (and CLIP) inputs.
    private var conditioned = false

    /// Runs the pass: `x` [B, in_dim, F, H, W], one timestep per sample, `context` [B, rows, text_dim]
    /// with rows ≤ `contextRows` (zero-padded, rows at and beyond `contextLengths[b]` zeroed), CLIP
    /// features [B, tokens, image_dim] for I2V / FLF2V. Returns [B, out_dim, F, H, W].
    public func run(x: [Float], timesteps: [Double], context: [Float], contextLengths: [Int]? = nil,
                    clipFeatures: [Float]? = nil) throws -> [Float] {
        try setConditioning(context: context, contextLengths: contextLengths, clipFeatures: clipFeatures)
        return try run(x: x, timesteps: timesteps)
    }

    /// Fills the context (and CLIP) inputs once for the following `run(x:timesteps:)` calls (a sampling loop's
    /// conditioning does not change between steps): `context` [B, rows ≤ contextRows, text_dim], rows at and
    /// beyond `contextLengths[b]` zeroed; CLIP features [B, tokens, image_dim] for I2V / FLF2V.
    public func setConditioning(context: [Float], contextLengths: [Int]? = nil, clipFeatures: [Float]? = nil) throws {
        let cfg = model.config
        guard context.count % (batch * cfg.textDim) == 0 else {
            throw RuntimeError.shapeMismatch("DiT: context of \(context.count) values is not [\(batch), rows, \(cfg.textDim)]")
        }
        let rows = context.count / (batch * cfg.textDim)
        if cfg.hasImageInput {
            guard clipFeatures != nil else { throw RuntimeError.invalidArgument("DiT \(cfg.modelType): CLIP features are required") }
        } else if clipFeatures != nil {
            throw RuntimeError.invalidArgument("DiT t2v takes no CLIP features")
        }
        conditioned = false
        try graph.setInput("context", try WanDiT.padContext(context, batch: batch, rows: rows, textDim: cfg.textDim,
                                                            textLen: contextRows, lengths: contextLengths))
        if let clipFeatures { try graph.setInput("clip", clipFeatures) }
        conditioned = true
    }

    /// Runs the pass on `x` [B, in_dim, F, H, W] with one timestep per sample and the conditioning last set by
    /// `setConditioning`. Returns [B, out_dim, F, H, W].
    public func run(x: [Float], timesteps: [Double]) throws -> [Float] {
        let cfg = model.config
        guard conditioned else { throw RuntimeError.invalidState("DiT session: setConditioning before run(x:timesteps:)") }
        guard x.count == batch * cfg.inDim * frames * height * width else {
            throw RuntimeError.shapeMismatch("DiT: x holds \(x.count) values, expected [\(batch), \(cfg.inDim), \(frames), \(height), \(width)]")
        }
        guard timesteps.count == batch else { throw RuntimeError.shapeMismatch("DiT: \(timesteps.count) timesteps for batch \(batch)") }
        try graph.setInput("x", x)
        try graph.setInput("t_sinusoid", timesteps.flatMap { WanDiT.timestepSinusoid($0, dim: cfg.freqDim) })
        try graph.run()
        return try model.device.read(try graph.output("out"))
    }
}
