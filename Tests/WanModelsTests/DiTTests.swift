import Foundation
import Testing
import WanGraph
@testable import WanModels
@testable import WanRuntime

/// The DiT goldens of Fixtures/dit (generate_dit.py: diffusers' WanTransformer3DModel in fp32 with the
/// official float64 sinusoid and zero-padded context).
private enum DiTFixture {
    static func path(_ name: String) -> String { CheckpointFixtures.path("dit/" + name) }

    struct Case {
        var name: String, model: String
        var batch: Int, frames: Int, height: Int, width: Int
        var t: [Double], contextLens: [Int]
    }

    static func config(_ model: String) throws -> WanDiTConfig {
        let root = try json()
        guard let c = root[model] as? [String: Any], let dim = c["dim"] as? Int, let heads = c["num_heads"] as? Int,
              let ffn = c["ffn_dim"] as? Int, let layers = c["num_layers"] as? Int, let textDim = c["text_dim"] as? Int,
              let textLen = c["text_len"] as? Int, let freq = c["freq_dim"] as? Int else {
            throw RuntimeError.invalidArgument("dit/config.json: no model \(model)")
        }
        let type = WanDiTConfig.ModelType(rawValue: c["model_type"] as? String ?? "") ?? .t2v
        return WanDiTConfig(modelType: type, dim: dim, ffnDim: ffn, freqDim: freq, numHeads: heads, numLayers: layers,
                            inDim: c["in_dim"] as? Int, textLen: textLen, textDim: textDim, imageDim: c["image_dim"] as? Int ?? 1280,
                            imagePositions: c["image_positions"] as? Int ?? 514)
    }

    static func cases() throws -> [Case] {
        guard let list = try json()["cases"] as? [[String: Any]] else { throw RuntimeError.invalidArgument("dit/config.json: no cases") }
        return list.compactMap { c in
            guard let name = c["name"] as? String, let model = c["model"] as? String, let b = c["batch"] as? Int,
                  let f = c["frames"] as? Int, let h = c["height"] as? Int, let w = c["width"] as? Int,
                  let t = c["t"] as? [NSNumber], let lens = c["context_lens"] as? [Int] else { return nil }
            return Case(name: name, model: model, batch: b, frames: f, height: h, width: w, t: t.map(\.doubleValue), contextLens: lens)
        }
    }

    static func json() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path("config.json")))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RuntimeError.invalidArgument("dit/config.json is not an object")
        }
        return root
    }
}

/// max |a − b| / max |b|.
private func relativeMaxError(_ a: [Float], _ b: [Float]) -> Double {
    guard a.count == b.count else { return .infinity }
    var d = 0.0, s = 1e-30
    for i in a.indices {
        d = max(d, Double(abs(a[i] - b[i])))
        s = max(s, Double(abs(b[i])))
    }
    return d / s
}

private func errorText(_ body: () throws -> Void) -> String {
    do { try body() } catch { return "\(error)" }
    return ""
}

@Suite struct DiTTests {
    /// Spec §3.4 / §11.1 goldens of the fp32 sinusoid.
    @Test func timestepSinusoidGoldens() {
        let zero = WanDiT.timestepSinusoid(0, dim: 256)
        #expect(zero == Array(repeating: 1, count: 128) + Array(repeating: 0, count: 128))
        let goldens: [(Double, [Int: Float])] = [
            (999, [0: 0.99964988, 1: 0.96378249, 2: -0.39899176, 127: 0.99424314, 128: -0.02646075, 129: -0.26668957,
                   130: -0.91695452, 255: 0.10714724]),
            (500, [0: -0.88384926, 1: 0.94594258, 2: 0.84851456, 127: 0.99855685, 128: -0.46777180, 129: 0.32433414,
                   130: -0.52917206, 255: 0.05370454]),
        ]
        for (t, values) in goldens {
            let e = WanDiT.timestepSinusoid(t, dim: 256)
            #expect(e.count == 256)
            for (i, v) in values { #expect(abs(e[i] - v) <= 1e-7, "t \(t) index \(i): \(e[i]) vs \(v)") }
        }
    }

    /// Spec §3.13 / §11.1: unpatchify on integer values, and patchify (§3.2) is its inverse layout.
    @Test func patchifyAndUnpatchifyIndexMapping() throws {
        let (b, c, f, hp, wp) = (2, 3, 2, 3, 4)
        let device = Device.cpu()
        let g = Graph()
        let tokens = try g.input("tokens", shape: [b, f * hp * wp, 4 * c])
        let latent = try g.input("latent", shape: [b, c, f, 2 * hp, 2 * wp])
        try g.output("v", try WanDiT.unpatchify(g, tokens, channels: c, frames: f, height: hp, width: wp, patch: (2, 2)))
        try g.output("p", try WanDiT.patchify(g, latent, patch: (2, 2)))
        let compiled = try g.compile(for: device)
        let nt = b * f * hp * wp * 4 * c
        try compiled.setInput("tokens", (0..<nt).map(Float.init))
        try compiled.setInput("latent", (0..<nt).map(Float.init))
        try compiled.run()
        let v = try device.read(try compiled.output("v")), p = try device.read(try compiled.output("p"))
        var okV = true, okP = true
        for bi in 0..<b { for ci in 0..<c { for fi in 0..<f { for h in 0..<hp { for w in 0..<wp { for q in 0..<2 { for r in 0..<2 {
            let n = (fi * hp + h) * wp + w
            let latentIndex = (((bi * c + ci) * f + fi) * 2 * hp + 2 * h + q) * 2 * wp + 2 * w + r
            // v[c, f, 2h+q, 2w+r] = out[n, (q·2 + r)·C + c]
            if v[latentIndex] != Float((bi * f * hp * wp + n) * 4 * c + (q * 2 + r) * c + ci) { okV = false }
            // patch vector laid out (c, q, r)
            if p[(bi * f * hp * wp + n) * 4 * c + (ci * 2 + q) * 2 + r] != Float(latentIndex) { okP = false }
        } } } } } } }
        #expect(okV)
        #expect(okP)
    }

    /// Every fixture case on CPU and Vulkan against diffusers' fp32 output: relative max error ≤ 1e-4.
    @Test func matchesReference() throws {
        let cases = try DiTFixture.cases()
        #expect(cases.count == 8)
        let inputs = try CheckpointFile.open(DiTFixture.path("cases.safetensors"))
        for device in try CheckpointTestDevices.all() {
            // tiny: diffusers names, explicit config; hd128: official names, detected (custom) config.
            let tiny = try WanDiT.load(path: DiTFixture.path("tiny.safetensors"), device: device, config: try DiTFixture.config("tiny"))
            let hd128 = try WanDiT.load(path: DiTFixture.path("hd128.safetensors"), device: device, numHeads: 1, textLen: 8)
            #expect(hd128.config == (try DiTFixture.config("hd128")))
            #expect(hd128.config.headDim == 128)
            // I2V: diffusers names, explicit config; FLF2V: official names, detected config.
            let i2v = try WanDiT.load(path: DiTFixture.path("i2v.safetensors"), device: device, config: try DiTFixture.config("i2v"))
            let flf2v = try WanDiT.load(path: DiTFixture.path("flf2v.safetensors"), device: device, numHeads: 2)
            #expect(flf2v.config == (try DiTFixture.config("flf2v")))
            let models = ["tiny": tiny, "hd128": hd128, "i2v": i2v, "flf2v": flf2v]
            for c in cases {
                guard let model = models[c.model] else {
                    Issue.record("no model \(c.model)")
                    continue
                }
                let cfg = model.config
                let x = try inputs.floats(c.name + ".x")
                let t = try inputs.floats(c.name + ".t").map(Double.init)
                #expect(t == c.t)
                let lens = try inputs.floats(c.name + ".context_lens").map { Int($0) }
                #expect(lens == c.contextLens)
                // Pass the context trimmed to the longest prompt: the model pads it to text_len.
                let full = try inputs.floats(c.name + ".context")
                let rows = lens.max() ?? 0
                var ctx: [Float] = []
                for b in 0..<c.batch {
                    let start = b * cfg.textLen * cfg.textDim
                    ctx += full[start..<(start + rows * cfg.textDim)]
                }
                let expected = try inputs.floats(c.name + ".out")
                let clip = cfg.hasImageInput ? try inputs.floats(c.name + ".clip") : nil
                let clipTokens = clip.map { $0.count / (c.batch * cfg.imageDim) }
                let session = try model.session(batch: c.batch, frames: c.frames, height: c.height, width: c.width, clipTokens: clipTokens)
                let out = try session.run(x: x, timesteps: t, context: ctx, contextLengths: lens, clipFeatures: clip)
                let err = relativeMaxError(out, expected)
                #expect(err <= 1e-4, "\(c.name) on \(device.name): relative max error \(err)")
                if c.name == "a5" {
                    // Batching is exact: each sample alone gives its half of the batch.
                    let n = x.count / 2, m = expected.count / 2, r = rows * cfg.textDim
                    let one = try model.session(batch: 1, frames: c.frames, height: c.height, width: c.width)
                    let second = try one.run(x: Array(x[n...]), timesteps: [t[1]], context: Array(ctx[r...]), contextLengths: [lens[1]])
                    #expect(relativeMaxError(second, Array(expected[m...])) <= 1e-4)
                    // Rows beyond a prompt's length do not matter (they are zeroed).
                    var noisy = ctx
                    for i in (lens[0] * cfg.textDim)..<r { noisy[i] = 7 }
                    let again = try session.run(x: x, timesteps: t, context: noisy, contextLengths: lens)
                    #expect(again == out)
                }
            }
        }
        CheckpointTestDevices.checkValidation()
    }

    /// Reduced-precision matmul weights (fp16 / bf16, fp32 accumulation) stay within 2e-2 of the fp32 golden.
    @Test func reducedPrecisionModes() throws {
        let inputs = try CheckpointFile.open(DiTFixture.path("cases.safetensors"))
        let c = try #require(try DiTFixture.cases().first { $0.name == "a2" })
        let x = try inputs.floats("a2.x"), ctx = try inputs.floats("a2.context"), expected = try inputs.floats("a2.out")
        for device in try CheckpointTestDevices.all() {
            for precision in [WanDiT.Precision.bf16, .fp16] {
                let model = try WanDiT.load(path: DiTFixture.path("tiny.safetensors"), device: device,
                                            config: try DiTFixture.config("tiny"), precision: precision)
                #expect(model.weights["blocks.1.ffn.2.weight"]?.dtype == precision.matmulDType)
                #expect(model.weights["time_projection.1.weight"]?.dtype == .f32)
                #expect(model.weights["head.head.weight"]?.dtype == .f32)
                let out = try model.forward(x: x, batch: 1, frames: c.frames, height: c.height, width: c.width,
                                            timesteps: c.t, context: ctx, contextLengths: c.contextLens)
                let err = relativeMaxError(out, expected)
                #expect(err <= 2e-2, "\(precision) on \(device.name): relative max error \(err)")
            }
        }
        CheckpointTestDevices.checkValidation()
    }

    /// FP8 matmul weights (E4M3FN bytes, per-channel scales): the forward equals the fp32 model whose weights
    /// are the decoded FP8 values (the FP8 path adds no error of its own), and stays near the fp32 golden.
    @Test func fp8Mode() throws {
        let inputs = try CheckpointFile.open(DiTFixture.path("cases.safetensors"))
        let c = try #require(try DiTFixture.cases().first { $0.name == "a2" })
        let x = try inputs.floats("a2.x"), ctx = try inputs.floats("a2.context"), expected = try inputs.floats("a2.out")
        let config = try DiTFixture.config("tiny")
        for device in try CheckpointTestDevices.all() {
            let fp8 = try WanDiT.load(path: DiTFixture.path("tiny.safetensors"), device: device, config: config, precision: .fp8)
            #expect(fp8.weights["blocks.1.ffn.2.weight"]?.dtype == .f8e4m3fn && fp8.weights["head.head.weight"]?.dtype == .f32)
            #expect(fp8.weightScales["blocks.1.ffn.2.weight"]?.shape == [config.dim])
            // The decoded model: every FP8 weight back to fp32 (decode · scale), in an fp32 model.
            var decoded: [String: Tensor] = [:]
            for (name, t) in fp8.weights {
                guard let s = fp8.weightScales[name] else { decoded[name] = t; continue }
                let f = try Device.cpu().tensor(bytes: try device.readBytes(t), shape: t.shape, dtype: .f8e4m3fn)
                let values = try Device.cpu().read(f), scales = try device.read(s)
                let per = values.count / scales.count
                decoded[name] = try device.tensor(values.enumerated().map { $0.element * scales[$0.offset / per] }, shape: t.shape)
            }
            let reference = try WanDiT(config: config, weights: decoded, device: device)
            func run(_ m: WanDiT) throws -> [Float] {
                try m.forward(x: x, batch: 1, frames: c.frames, height: c.height, width: c.width, timesteps: c.t,
                              context: ctx, contextLengths: c.contextLens)
            }
            let out = try run(fp8)
            let exact = relativeMaxError(out, try run(reference)), golden = relativeMaxError(out, expected)
            // On tensor cores the reduced-precision modes also round the matmuls' activations to fp16.
            let fp16Compute = device.gemmUsesTensorCores(a: .f32, b: .f8e4m3fn, fp16Compute: true)
            #expect(exact <= (fp16Compute ? 2e-2 : 1e-4), "fp8 vs decoded weights on \(device.name): \(exact)")
            #expect(golden <= 0.15 && golden > 1e-3, "fp8 vs fp32 golden on \(device.name): \(golden)")
            // In-memory float weights given to an .fp8 model are quantised the same way.
            let again = try WanDiT(config: config, weights: try WanDiT.load(path: DiTFixture.path("tiny.safetensors"), device: device,
                                                                          config: config).weights, device: device, precision: .fp8)
            #expect(try run(again) == out)
        }
        CheckpointTestDevices.checkValidation()
    }

    /// Missing, misshapen and unexpected tensors are clear errors; so are bad inputs.
    @Test func badWeightsAndInputs() throws {
        let cfg = try DiTFixture.config("tiny")
        let device = Device.cpu()
        let reader = try CheckpointFile.open(DiTFixture.path("tiny.safetensors"))
        let good = try WanDiT.load(reader: reader, device: device, config: cfg).weights
        _ = try WanDiT(config: cfg, weights: good, device: device)

        var missing = good
        missing["blocks.1.cross_attn.norm_k.weight"] = nil
        #expect(errorText { _ = try WanDiT(config: cfg, weights: missing, device: device) }.contains("missing blocks.1.cross_attn.norm_k.weight"))

        var misshapen = good
        misshapen["blocks.0.ffn.0.weight"] = try device.zeros([cfg.ffnDim, cfg.dim + 1])
        #expect(errorText { _ = try WanDiT(config: cfg, weights: misshapen, device: device) }.contains("blocks.0.ffn.0.weight has shape"))

        var extra = good
        extra["blocks.2.modulation"] = try device.zeros([1, 6, cfg.dim])
        #expect(errorText { _ = try WanDiT(config: cfg, weights: extra, device: device) }.contains("unexpected tensor blocks.2.modulation"))

        // A config that does not match the file (more layers than stored).
        var deeper = cfg
        deeper.numLayers = 3
        #expect(errorText { _ = try WanDiT.load(reader: reader, device: device, config: deeper) }.contains("missing blocks.2."))

        // A temporal patch other than 1 is refused up front.
        var patched = cfg
        patched.patchSize = [2, 2, 2]
        #expect(throws: RuntimeError.self) { _ = try WanDiT(config: patched, weights: good, device: device) }

        let model = try WanDiT(config: cfg, weights: good, device: device)
        #expect(throws: RuntimeError.self) { _ = try model.session(batch: 1, frames: 1, height: 3, width: 4) }     // odd H
        let s = try model.session(batch: 1, frames: 1, height: 2, width: 2)
        let x = [Float](repeating: 0, count: 16 * 4)
        let ctx = [Float](repeating: 0, count: 2 * cfg.textDim)
        #expect(throws: RuntimeError.self) { _ = try s.run(x: Array(x.dropLast()), timesteps: [1], context: ctx) }
        #expect(throws: RuntimeError.self) { _ = try s.run(x: x, timesteps: [1, 2], context: ctx) }
        #expect(throws: RuntimeError.self) { _ = try s.run(x: x, timesteps: [1], context: ctx, contextLengths: [3]) }
        #expect(throws: RuntimeError.self) {
            _ = try s.run(x: x, timesteps: [1], context: [Float](repeating: 0, count: (cfg.textLen + 1) * cfg.textDim))
        }
        _ = try s.run(x: x, timesteps: [1], context: ctx)
    }
}

/// Weights beyond a device budget stay in host memory and are streamed each forward: same output as the
/// resident model (against the PyTorch golden), less device memory.
@Suite struct DiTStreamingTests {
    @Test func residencePolicy() throws {
        let cfg = WanDiTConfig.t2v1_3B
        let all = try WanDiT.weightResidence(config: cfg, precision: .fp32, deviceWeightBudget: nil)
        #expect(all.values.allSatisfy { $0 == .device } && all.count == cfg.expectedTensors().count)
        // 1.3B in fp32 is 5.68 GB: under 3 GB the later blocks are streamed, the early ones and the rest stay.
        let r = try WanDiT.weightResidence(config: cfg, precision: .fp32, deviceWeightBudget: 3_000_000_000)
        let streamed = Set(r.filter { $0.value == .host }.keys.map { Int($0.split(separator: ".")[1])! })
        #expect(!streamed.isEmpty && streamed.max() == 29 && streamed.min()! > 0)
        #expect(streamed == Set(streamed.min()!...29))
        #expect(r["patch_embedding.weight"] == .device && r["head.head.weight"] == .device && r["blocks.0.ffn.0.weight"] == .device)
        let resident = r.filter { $0.value == .device }.keys.compactMap { name in cfg.expectedTensors().first { $0.name == name } }
        #expect(resident.reduce(0) { $0 + $1.shape.reduce(1, *) * 4 } <= 3_000_000_000)
        // bf16 halves the matmul weights: fewer streamed blocks under the same budget.
        let b = try WanDiT.weightResidence(config: cfg, precision: .bf16, deviceWeightBudget: 3_000_000_000)
        #expect(b.values.filter { $0 == .host }.count < r.values.filter { $0 == .host }.count)
        #expect(throws: RuntimeError.self) { try WanDiT.weightResidence(config: cfg, precision: .fp32, deviceWeightBudget: 100_000_000) }
    }

    @Test func streamedWeightsGiveTheSameOutput() throws {
        guard let device = try CheckpointTestDevices.all().first(where: { !$0.isCPU }) else { return }
        let inputs = try CheckpointFile.open(DiTFixture.path("cases.safetensors"))
        let c = try #require(try DiTFixture.cases().first { $0.name == "a2" })
        let x = try inputs.floats("a2.x"), ctx = try inputs.floats("a2.context"), expected = try inputs.floats("a2.out")
        let config = try DiTFixture.config(c.model)
        let resident = try WanDiT.load(path: DiTFixture.path("\(c.model).safetensors"), device: device, config: config)
        // A budget that holds everything outside the blocks and one block at a time (the fixture has 2 equal
        // blocks: room for both would hold them resident): every block is streamed.
        let fixed = config.expectedTensors().filter { !$0.name.hasPrefix("blocks.") }.reduce(0) { $0 + $1.shape.reduce(1, *) * 4 }
        let block = config.expectedTensors().filter { $0.name.hasPrefix("blocks.0.") }.reduce(0) { $0 + $1.shape.reduce(1, *) * 4 }
        let streamed = try WanDiT.load(path: DiTFixture.path("\(c.model).safetensors"), device: device, config: config,
                                       deviceWeightBudget: fixed + block + block / 2)
        #expect(resident.streamedBlocks == 0 && streamed.streamedBlocks == config.numLayers)
        #expect(streamed.weights["blocks.1.ffn.0.weight"]?.storage.residence == .host)
        #expect(streamed.weights["head.head.weight"]?.storage.residence == .device)
        func run(_ m: WanDiT) throws -> [Float] {
            try m.session(batch: c.batch, frames: c.frames, height: c.height, width: c.width)
                .run(x: x, timesteps: c.t, context: ctx, contextLengths: c.contextLens)
        }
        let a = try run(resident), b = try run(streamed)
        #expect(a == b)
        #expect(relativeMaxError(b, expected) <= 1e-4)
        CheckpointTestDevices.checkValidation()
    }
}
