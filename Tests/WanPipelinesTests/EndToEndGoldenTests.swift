import Foundation
import Testing
import WanModels
import WanPipelines
import WanRuntime

/// A whole text-to-video run against the PyTorch reference (`Fixtures/generate_e2e.py`, checked there against
/// the official Wan2.1 code): token ids → umT5 → DiT sampling with classifier-free guidance (UniPC, DPM++,
/// Euler) → VAE decode, through the pipeline's own stage functions, on the CPU and on the Vulkan device;
/// and `wan forward sample` on the same inputs.
@Suite struct EndToEndGoldenTests {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let models = here.deletingLastPathComponent().appendingPathComponent("WanModelsTests/Fixtures")
    static let ditConfig = WanDiTConfig(modelType: .t2v, dim: 32, ffnDim: 64, freqDim: 256, numHeads: 2, numLayers: 2,
                                        textLen: 8, textDim: 32)
    static let vaeConfig = WanVAEConfig(dim: 6, zDim: 16, dimMult: [1, 2, 2, 2], numResBlocks: 1)

    static func golden() throws -> any CheckpointReader {
        try CheckpointFile.open(here.appendingPathComponent("Fixtures/e2e_expected.safetensors").path)
    }

    /// The fixture VAE (z_dim 4) with its latent-side layers replaced by the 16-channel ones of the e2e file.
    static func vae(_ golden: any CheckpointReader, on device: Device) throws -> WanVAE {
        let base = try CheckpointFile.open(models.appendingPathComponent("vae/weights.safetensors").path)
        var weights: [String: Tensor] = [:]
        for e in base.entries { weights[e.name] = try device.tensor(try base.floats(e.name), shape: e.shape) }
        for e in golden.entries where e.name.hasPrefix("vae16.") {
            weights[String(e.name.dropFirst("vae16.".count))] = try device.tensor(try golden.floats(e.name), shape: e.shape)
        }
        return try WanVAE(config: vaeConfig, weights: weights, device: device)
    }

    @Test(arguments: ["cpu", "vulkan"]) func wholeRunMatchesPyTorch(_ which: String) throws {
        let device = which == "cpu" ? Device.cpu() : try PipelineTestSupport.devices().last ?? Device.cpu()
        if which == "vulkan" && device.isCPU { return }   // no Vulkan device and none required
        let g = try Self.golden()
        let ids = try ["ids_cond", "ids_uncond"].map { try g.floats($0).map { Int32($0) } }
        let encoder = try UMT5Encoder.load(path: Self.models.appendingPathComponent("umt5/umt5_tiny_official.safetensors").path,
                                           device: device)
        let contexts = try TextToVideo.encodeText(encoder: encoder, ids: ids, textLength: 8)
        #expect(PipelineTestSupport.relError(contexts[0], try g.floats("context_cond")) < 1e-5)
        #expect(PipelineTestSupport.relError(contexts[1], try g.floats("context_uncond")) < 1e-5)
        #expect(contexts[0][6 * 32..<8 * 32].allSatisfy { $0 == 0 })

        let dit = try WanDiT.load(path: Self.models.appendingPathComponent("dit/tiny.safetensors").path, device: device,
                                  config: Self.ditConfig)
        let vae = try Self.vae(g, on: device)
        let noise = try g.floats("noise")
        let tolerance = device.isCPU ? 1e-4 : 2e-4
        for (name, sampler, steps) in [("unipc", SamplerKind.unipc, 4), ("dpm++", .dpmPlusPlus, 3), ("euler", .euler, 3)] {
            var settings = GenerationSettings(prompt: "-")
            (settings.steps, settings.shift, settings.guidance, settings.sampler) = (steps, 5, 5, sampler)
            let result = try TextToVideo.denoise(dit: dit, noise: noise, latentShape: [16, 2, 4, 6], cond: contexts[0],
                                                 uncond: contexts[1], settings: settings)
            #expect(result.timesteps == (try g.floats("\(name).timesteps").map { Int64($0) }), "\(name)")
            #expect(result.sigmas == (try g.floats("\(name).sigmas")), "\(name)")
            let latentError = PipelineTestSupport.relError(result.latent, try g.floats("\(name).latent"))
            #expect(latentError < tolerance, "\(name) on \(device.name): latent rel error \(latentError)")
            let video = try vae.decode(latent: result.latent, frames: 2, height: 4, width: 6)
            let expected = try g.floats("\(name).video")
            let videoError = zip(video, expected).map { Double(abs($0 - $1)) }.max() ?? .infinity
            #expect(video.count == 3 * 5 * 32 * 48 && videoError < tolerance, "\(name) on \(device.name): video abs error \(videoError)")
        }
    }

    @Test func stepSamplesMatchPyTorch() throws {
        // Every intermediate sample x_i of the UniPC run, captured from the model calls.
        let g = try Self.golden()
        let device = Device.cpu()
        let dit = try WanDiT.load(path: Self.models.appendingPathComponent("dit/tiny.safetensors").path, device: device,
                                  config: Self.ditConfig)
        let session = try dit.session(batch: 2, frames: 2, height: 4, width: 6, contextRows: 8)
        let both = try g.floats("context_cond") + g.floats("context_uncond")
        var seen: [[Float]] = []
        _ = try FlowSampling.sample(noise: try g.floats("noise"), steps: 4, shift: 5, sampler: .unipc, guidance: 5) { x, t, _ in
            seen.append(x)
            let v = try session.run(x: x + x, timesteps: [Double(t), Double(t)], context: both)
            return (Array(v[0..<x.count]), Array(v[x.count...]))
        }
        let xs = try g.floats("unipc.x")
        let n = 16 * 2 * 4 * 6
        #expect(seen.count == 4)
        for (i, x) in seen.enumerated() {
            #expect(PipelineTestSupport.relError(x, Array(xs[i * n..<(i + 1) * n])) < 1e-4, "x_\(i)")
        }
    }

    @Test func forwardSampleWritesTheReferenceLatent() throws {
        let g = try Self.golden()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wan-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Inputs as a PyTorch user saves them: the trimmed contexts (6 and 8 rows).
        let cond = Array(try g.floats("context_cond").prefix(6 * 32))
        let uncond = try g.floats("context_uncond")
        let noise = try g.floats("noise")
        let inputs = dir.appendingPathComponent("in.safetensors").path
        let tensors: [(String, [Int], [Float])] = [("noise", [1, 16, 2, 4, 6], noise), ("context_cond", [6, 32], cond),
                                                    ("context_uncond", [8, 32], uncond)]
        try SafetensorsWriter.write(tensors.map { TensorEntry(name: $0.0, dtype: .f32, shape: $0.1) }, to: inputs) { e in
            HostConversion.encode(tensors.first { $0.0 == e.name }!.2, as: .f32)
        }
        let config = dir.appendingPathComponent("config.json")
        try Data(#"{"model_type": "t2v", "dim": 32, "ffn_dim": 64, "num_heads": 2, "num_layers": 2, "text_dim": 32, "text_len": 8}"#.utf8)
            .write(to: config)
        var o = ComponentForward.Options(component: "sample", weights: Self.models.appendingPathComponent("dit/tiny.safetensors").path,
                                         inputs: inputs, output: dir.appendingPathComponent("out.safetensors").path)
        o.configPath = config.path
        (o.steps, o.shift, o.guidance, o.sampler) = (3, 5, 5, .dpmPlusPlus)
        let written = try ComponentForward.run(o, device: Device.cpu())
        #expect(written.map(\.name) == ["latent", "sigmas", "timesteps"])
        let out = try CheckpointFile.open(o.output)
        #expect(PipelineTestSupport.relError(try out.floats("latent"), try g.floats("dpm++.latent")) < 1e-4)
        #expect(try out.floats("timesteps") == g.floats("dpm++.timesteps"))
        #expect(out.entry("timesteps")?.dtype == .i64)
        #expect(try out.floats("sigmas") == g.floats("dpm++.sigmas"))
        // A context wider than text_len rows, or of the wrong width, is refused.
        let bad = dir.appendingPathComponent("bad.safetensors").path
        try SafetensorsWriter.write([TensorEntry(name: "noise", dtype: .f32, shape: [16, 2, 4, 6]),
                                     TensorEntry(name: "context_cond", dtype: .f32, shape: [9, 32]),
                                     TensorEntry(name: "context_uncond", dtype: .f32, shape: [8, 32])], to: bad) { e in
            HostConversion.encode([Float](repeating: 0, count: e.shape.reduce(1, *)), as: .f32)
        }
        o.inputs = bad
        o.output = dir.appendingPathComponent("bad-out.safetensors").path
        #expect(throws: RuntimeError.self) { try ComponentForward.run(o, device: Device.cpu()) }
        #expect(!FileManager.default.fileExists(atPath: o.output))
    }
}
