import Foundation
import Testing
import WanModels
import WanPipelines
import WanRuntime

/// `wan generate`'s library end to end on the built-in tiny model: every stage on the CPU and on the Vulkan
/// device, the same seed giving the same video on both, CFG modes, noise files, cancellation, model-folder
/// resolution and bad arguments.
@Suite(.serialized) struct GenerateTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("WanModelsTests/Fixtures")

    static func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wan-generate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func small(_ prompt: String = "a red cat walking in the city at night") -> GenerationSettings {
        var s = GenerationSettings(prompt: prompt)
        (s.width, s.height, s.frames, s.steps, s.seed) = (32, 48, 5, 3, 42)
        return s
    }

    @Test func tinyRunsEveryStageOnCPUAndWritesVideoAndSidecar() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        var events: [GenerationEvent] = []
        let out = dir.appendingPathComponent("v.y4m").path
        let report = try TextToVideo(source: .tiny, devices: .init(all: Device.cpu()))
            .generate(Self.small(), output: out, events: { events.append($0) })
        // 5 frames of 32x48 in a Y4M file (4:2:0: 1.5 bytes per pixel plus frame headers).
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(String(decoding: data.prefix(10), as: UTF8.self) == "YUV4MPEG2 ")
        #expect(data.count > 5 * 32 * 48 * 3 / 2)
        let record = try GenerationRecord.read(from: report.sidecar)
        #expect(record.prompt == "a red cat walking in the city at night")
        #expect(record.negativePrompt == GenerationSettings.defaultNegativePrompt)
        #expect(record.seed == 42 && record.width == 32 && record.height == 48 && record.frames == 5 && record.steps == 3)
        #expect(record.timings.map(\.stage) == ["text encoder", "dit", "vae decode", "total"])
        #expect(report.latent.count == 16 * 2 * 6 * 4 && report.latent.allSatisfy(\.isFinite))
        #expect(report.timesteps.count == 3 && report.sigmas.count == 4)
        #expect(events.filter { if case .step = $0 { return true }; return false }.count == 3)
        #expect(events.contains(.frames(done: 5, total: 5)))
        // The latent moved away from the noise (the model did something) and stays bounded.
        let noise = try SeededNoise.normal(shape: [16, 2, 6, 4], seed: 42)
        #expect(PipelineTestSupport.relError(report.latent, noise) > 0.01)
    }

    @Test func sameSeedSameVideoOnCPUAndVulkan() throws {
        guard let vk = try PipelineTestSupport.vulkan() else { return }
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cpu = try TextToVideo(source: .tiny, devices: .init(all: Device.cpu()))
            .generate(Self.small(), output: dir.appendingPathComponent("cpu.y4m").path)
        let gpu = try TextToVideo(source: .tiny, devices: .init(all: vk))
            .generate(Self.small(), output: dir.appendingPathComponent("vk.y4m").path)
        #expect(PipelineTestSupport.relError(gpu.latent, cpu.latent) < 1e-4)
        let a = [UInt8](try Data(contentsOf: dir.appendingPathComponent("cpu.y4m")))
        let b = [UInt8](try Data(contentsOf: dir.appendingPathComponent("vk.y4m")))
        #expect(a.count == b.count)
        let differing = zip(a, b).filter { $0 != $1 }.count
        let maxDiff = zip(a, b).map { abs(Int($0) - Int($1)) }.max() ?? 0
        #expect(maxDiff <= 2 && differing * 100 <= a.count, "\(differing) bytes differ, by up to \(maxDiff)")
        // Mixed placement: text on the CPU, DiT and VAE on the device.
        let mixed = try TextToVideo(source: .tiny, devices: .init(text: Device.cpu(), dit: vk, vae: vk))
            .generate(Self.small(), output: dir.appendingPathComponent("mixed.y4m").path)
        #expect(PipelineTestSupport.relError(mixed.latent, gpu.latent) < 1e-4)
        // Two Vulkan devices (a second logical device stands in for a second GPU): the DiT on one, text and VAE on the other.
        let second = try Device.vulkan(0)
        let two = try TextToVideo(source: .tiny, devices: .init(text: second, dit: vk, vae: second))
            .generate(Self.small(), output: dir.appendingPathComponent("two.y4m").path)
        #expect(PipelineTestSupport.relError(two.latent, gpu.latent) < 1e-4)
        #expect(two.record.device == "text encoder: vulkan:0, dit: vulkan:0, vae decode: vulkan:0")
        #expect(try Data(contentsOf: dir.appendingPathComponent("two.y4m")) == Data(contentsOf: dir.appendingPathComponent("vk.y4m")))
    }

    @Test func cfgAsTwoPassesEqualsTheBatchAndGuidanceOneIsTheConditionalPass() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pipeline = TextToVideo(source: .tiny, devices: .init(all: Device.cpu()))
        var s = Self.small()
        let batched = try pipeline.generate(s, output: dir.appendingPathComponent("a.y4m").path)
        s.cfgMode = .sequential
        let sequential = try pipeline.generate(s, output: dir.appendingPathComponent("b.y4m").path)
        #expect(PipelineTestSupport.relError(sequential.latent, batched.latent) < 1e-5)
        s.guidance = 1
        let conditional = try pipeline.generate(s, output: dir.appendingPathComponent("c.y4m").path)
        s.guidance = 5
        #expect(PipelineTestSupport.relError(conditional.latent, batched.latent) > 1e-3)
        // Other samplers run and differ.
        s.sampler = .euler
        let euler = try pipeline.generate(s, output: dir.appendingPathComponent("d.y4m").path)
        s.sampler = .dpmPlusPlus
        let dpm = try pipeline.generate(s, output: dir.appendingPathComponent("e.y4m").path)
        #expect(PipelineTestSupport.relError(euler.latent, batched.latent) > 1e-4 && PipelineTestSupport.relError(dpm.latent, batched.latent) > 1e-4)
    }

    @Test func noiseFromAFileReplacesTheSeed() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let shape = [16, 2, 6, 4]
        let noise = try SeededNoise.normal(shape: shape, seed: 42)
        let file = dir.appendingPathComponent("noise.safetensors").path
        try SafetensorsWriter.write([TensorEntry(name: "noise", dtype: .f32, shape: [1] + shape)], to: file) { _ in
            HostConversion.encode(noise, as: .f32)
        }
        let pipeline = TextToVideo(source: .tiny, devices: .init(all: Device.cpu()))
        var s = Self.small()
        let seeded = try pipeline.generate(s, output: dir.appendingPathComponent("a.y4m").path)
        s.noisePath = file
        s.seed = 999
        let fromFile = try pipeline.generate(s, output: dir.appendingPathComponent("b.y4m").path)
        #expect(fromFile.latent == seeded.latent)
        #expect(fromFile.record.noiseFile == file)
        // A noise file of the wrong shape is refused before any work, and nothing is written.
        s.width = 64
        #expect(throws: GenerationError.self) {
            try pipeline.generate(s, output: dir.appendingPathComponent("c.y4m").path)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("c.y4m").path))
    }

    @Test func cancellingStopsAndLeavesNothing() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cancellation = GenerationCancellation()
        var steps = 0
        #expect(throws: GenerationError.cancelled) {
            try TextToVideo(source: .tiny, devices: .init(all: Device.cpu())).generate(
                Self.small(), output: dir.appendingPathComponent("v.y4m").path,
                events: { if case .step = $0 { steps += 1; cancellation.cancel() } }, cancellation: cancellation)
        }
        #expect(steps == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        // Cancelled while decoding (after the first frames were written to the temporary file).
        let late = GenerationCancellation()
        #expect(throws: GenerationError.cancelled) {
            try TextToVideo(source: .tiny, devices: .init(all: Device.cpu())).generate(
                Self.small(), output: dir.path + "/frames/",
                events: { if case .frames = $0 { late.cancel() } }, cancellation: late)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func tiledVAEDecodeWritesEveryFrame() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        var s = Self.small()
        (s.width, s.height) = (64, 48)
        let pipeline = TextToVideo(source: .tiny, devices: .init(all: Device.cpu()))
        let whole = try pipeline.generate(s, output: dir.appendingPathComponent("a.y4m").path)
        s.vaeTiling = WanVAE.Tiling(tile: 4, stride: 3)
        var frames: [GenerationEvent] = []
        let tiled = try pipeline.generate(s, output: dir.appendingPathComponent("b.y4m").path,
                                          events: { if case .frames = $0 { frames.append($0) } })
        #expect(tiled.latent == whole.latent && frames == [.frames(done: 5, total: 5)])
        let a = try Data(contentsOf: dir.appendingPathComponent("a.y4m")), b = try Data(contentsOf: dir.appendingPathComponent("b.y4m"))
        #expect(a.count == b.count && a != b)   // same size; the seams differ (tiling is not exact)
    }

    @Test func imageForOneFrame() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        var s = Self.small()
        s.frames = 1
        let out = dir.appendingPathComponent("i.png").path
        _ = try TextToVideo(source: .tiny, devices: .init(all: Device.cpu())).generate(s, output: out)
        let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
        #expect(png.prefix(8) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    }

    @Test func mp4ThroughFFmpeg() throws {
        guard FFmpegWriter.locate() != nil else {
            // CI installs ffmpeg; elsewhere the missing executable is the error the user gets, before any work.
            let dir = try Self.scratch()
            defer { try? FileManager.default.removeItem(at: dir) }
            #expect(throws: OutputError.self) {
                try TextToVideo(source: .tiny, devices: .init(all: Device.cpu()))
                    .generate(Self.small(), output: dir.appendingPathComponent("v.mp4").path)
            }
            if ProcessInfo.processInfo.environment["WAN_REQUIRE_FFMPEG"] == "1" { Issue.record("ffmpeg is required (WAN_REQUIRE_FFMPEG=1) but not installed") }
            return
        }
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("v.mp4").path
        _ = try TextToVideo(source: .tiny, devices: .init(all: Device.cpu())).generate(Self.small(), output: out)
        let mp4 = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
        #expect(mp4.count > 100 && Array(mp4[4..<8]) == Array("ftyp".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["v.mp4", "v.mp4.json"])
    }

    @Test func badArgumentsAreClearErrorsBeforeAnyWork() throws {
        func parse(_ s: String) throws -> GenerateArguments {
            try GenerateArguments.parse(s.split(separator: " ").map(String.init))
        }
        let ok = try parse("--model tiny --prompt cat --seed 3")
        #expect(ok.isTiny && ok.settings.width == TinyWanModel.defaultWidth && ok.settings.frames == TinyWanModel.defaultFrames)
        #expect(ok.settings.seed == 3 && !ok.randomSeed && ok.resolvedOutput(ffmpegAvailable: false) == "wan-3.y4m")
        let real = try parse("--model a b --prompt cat --size 480x832 --frames 1 --sampler dpm++ --precision bf16 --cfg sequential")
        #expect(real.models == ["a", "b"] && real.settings.width == 480 && real.settings.height == 832)
        #expect(real.settings.sampler == .dpmPlusPlus && real.settings.precision == .bf16 && real.settings.cfgMode == .sequential)
        #expect(real.resolvedOutput(ffmpegAvailable: true).hasSuffix(".png"))
        #expect(try parse("--model tiny --prompt cat --vae-tiling on").settings.vaeTiling == .standard)
        #expect(try parse("--model tiny --prompt cat --vae-tiling 64/48").settings.vaeTiling == WanVAE.Tiling(tile: 8, stride: 6))
        #expect(try parse("--model tiny --prompt cat --precision fp8").settings.precision == .fp8)
        #expect(try parse("--model tiny --prompt cat --vae-precision fp16").settings.vaeFP16Compute)
        #expect(try !parse("--model tiny --prompt cat --vae-precision fp32").settings.vaeFP16Compute && !ok.settings.vaeFP16Compute)
        for bad in ["--model tiny --prompt cat --size 830x480", "--model tiny --prompt cat --size 832", "--model tiny --prompt cat --frames 80",
                    "--model tiny --prompt cat --frames 0", "--model tiny --prompt cat --steps 0", "--model tiny --prompt cat --shift -1",
                    "--model tiny --prompt cat --sampler ddim", "--model tiny --prompt cat --precision int4", "--model tiny",
                    "--prompt cat", "--model tiny x --prompt cat", "--model tiny --prompt cat --seed -1", "--model tiny --prompt cat --bogus",
                    "--model tiny --prompt cat --cfg both", "--model --prompt cat", "--model tiny --prompt cat --guidance nan",
                    "--model tiny --prompt cat --vae-tiling 250/192", "--model tiny --prompt cat --vae-tiling 128/256",
                    "--model tiny --prompt cat --vae-tiling maybe", "--model tiny --prompt cat --vae-precision bf16"] {
            #expect(throws: GenerationError.self, "\(bad)") { try parse(bad) }
        }
        // Output paths that cannot hold the result fail before the models load.
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pipeline = TextToVideo(source: .tiny, devices: .init(all: Device.cpu()))
        for out in ["v.png", "v.gif", "missing-dir/v.y4m"] {
            #expect(throws: (any Error).self, "\(out)") { try pipeline.generate(Self.small(), output: dir.appendingPathComponent(out).path) }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func modelFoldersAndFilesAreRecognisedByTheirTensors() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let dit = Self.fixtures.appendingPathComponent("dit/tiny.safetensors").path
        let t5 = Self.fixtures.appendingPathComponent("umt5/umt5_tiny_official.safetensors").path
        let vae = Self.fixtures.appendingPathComponent("vae/weights.safetensors").path
        let tokenizer = Self.fixtures.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("WanPipelinesTests/Fixtures/tokenizer.json").path
        // A diffusers folder.
        let diffusers = dir.appendingPathComponent("diffusers")
        for (sub, src, name) in [("transformer", dit, "diffusion_pytorch_model.safetensors"), ("vae", vae, "diffusion_pytorch_model.safetensors"),
                                 ("text_encoder", t5, "model.safetensors"), ("tokenizer", tokenizer, "tokenizer.json")] {
            try fm.createDirectory(at: diffusers.appendingPathComponent(sub), withIntermediateDirectories: true)
            try fm.createSymbolicLink(atPath: diffusers.appendingPathComponent(sub).appendingPathComponent(name).path, withDestinationPath: src)
        }
        let found = try WanModelFiles.resolve([diffusers.path])
        #expect(found.dit.hasSuffix("transformer/diffusion_pytorch_model.safetensors"))
        #expect(found.vae.hasSuffix("vae/diffusion_pytorch_model.safetensors"))
        #expect(found.textEncoder.hasSuffix("text_encoder/model.safetensors"))
        #expect(found.tokenizer.hasSuffix("tokenizer/tokenizer.json"))
        // ComfyUI-style loose files in any order, with the tokenizer given apart.
        let loose = try WanModelFiles.resolve([vae, t5, dit], tokenizer: tokenizer)
        #expect(loose.dit == dit && loose.vae == vae && loose.textEncoder == t5 && loose.tokenizer == tokenizer)
        // What is missing or doubled is named.
        #expect(throws: GenerationError.self) { try WanModelFiles.resolve([vae, t5], tokenizer: tokenizer) }
        #expect(throws: GenerationError.self) { try WanModelFiles.resolve([vae, t5, dit]) }
        #expect(throws: GenerationError.self) { try WanModelFiles.resolve([vae, vae, t5, dit], tokenizer: tokenizer) }
        #expect(throws: GenerationError.self) { try WanModelFiles.resolve([dir.appendingPathComponent("nope").path]) }
        #expect(throws: GenerationError.self) { try WanModelFiles.resolve([tokenizer, t5, dit, vae, Self.fixtures.appendingPathComponent("evil.pth").path]) }
    }

    @Test func tinyTokenizerAndWeightsAreDeterministic() throws {
        let tok = try TinyWanModel.tokenizer()
        let ids = tok.encodePrompt("a cat, walking!")
        #expect(ids.last == 1 && ids.count >= 4 && !ids.contains(2))
        #expect(tok.encodePrompt("猫").contains(2))   // outside the tiny vocabulary: <unk>
        let a = try TinyWanModel.randomWeights(TinyWanModel.ditConfig.expectedTensors(), seed: 5, on: Device.cpu())
        let b = try TinyWanModel.randomWeights(TinyWanModel.ditConfig.expectedTensors(), seed: 5, on: Device.cpu())
        for (name, t) in a { #expect(try Device.cpu().read(t) == Device.cpu().read(b[name]!)) }
    }
}

/// A stage that does not fit its Vulkan device runs on the CPU, reported; or fails cleanly when that is not allowed.
@Suite struct GenerateFallbackTests {
    @Test func stagesThatDoNotFitFallBackToTheCPUVisibly() throws {
        guard try PipelineTestSupport.vulkan() != nil else { return }
        let tight = try Device.vulkan(0, options: VulkanOptions(memoryBudget: 64 << 10))
        let dir = try GenerateTests.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        var notes: [String] = []
        let report = try TextToVideo(source: .tiny, devices: .init(all: tight)).generate(
            GenerateTests.small(), output: dir.appendingPathComponent("v.y4m").path,
            events: { if case let .note(n) = $0 { notes.append(n) } })
        #expect(notes.count == 3 && notes.allSatisfy { $0.contains("running it on the CPU") }, "\(notes)")
        #expect(report.record.notes == notes)
        #expect(report.record.device == "text encoder: cpu, dit: cpu, vae decode: cpu")
        let cpu = try TextToVideo(source: .tiny, devices: .init(all: Device.cpu()))
            .generate(GenerateTests.small(), output: dir.appendingPathComponent("cpu.y4m").path)
        #expect(report.latent == cpu.latent)
        // Without the fallback: the device's error, and nothing written.
        var s = GenerateTests.small()
        s.allowCPUFallback = false
        #expect(throws: RuntimeError.self) {
            try TextToVideo(source: .tiny, devices: .init(all: tight)).generate(s, output: dir.appendingPathComponent("w.y4m").path)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("w.y4m").path))
    }
}

/// A run planned against a device memory budget takes the plan's steps (text encoder on the CPU, DiT blocks
/// streamed from host memory, ...), reports them, and computes the same video; a budget nothing fits is an error
/// before any work.
@Suite struct GenerateBudgetTests {
    @Test func budgetStepsAreTakenAndReported() throws {
        guard let vk = try PipelineTestSupport.vulkan(), let caps = vk.vulkan?.capabilities else { return }
        let dir = try GenerateTests.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pipeline = TextToVideo(source: .tiny, devices: .init(all: vk))
        var s = GenerateTests.small()
        let free = try pipeline.memoryPlan(s, capabilities: caps)
        #expect(free.fits && free.steps.isEmpty)
        let cpu = try TextToVideo(source: .tiny, devices: .init(all: Device.cpu()))
            .generate(s, output: dir.appendingPathComponent("cpu.y4m").path)
        // The largest budget that streams DiT blocks.
        var budget = free.peakDeviceBytes
        var plan = free
        while budget > 0 && plan.ditStreamedBlocks == 0 {
            budget = budget * 9 / 10
            s.vramBudget = budget
            plan = try pipeline.memoryPlan(s, capabilities: caps)
        }
        #expect(plan.fits && plan.ditStreamedBlocks > 0 && plan.textOnCPU)
        let tight = try Device.vulkan(0, options: VulkanOptions(memoryBudget: budget))
        var notes: [String] = []
        let report = try TextToVideo(source: .tiny, devices: .init(all: tight)).generate(
            s, output: dir.appendingPathComponent("tight.y4m").path, events: { if case let .note(n) = $0 { notes.append(n) } })
        #expect(notes == plan.steps && notes.contains { $0.hasPrefix("text encoder on the CPU") } && notes.contains { $0.hasPrefix("stream ") })
        #expect(report.record.notes == plan.steps)
        #expect(report.record.device?.hasPrefix("text encoder: cpu, dit: vulkan:0") == true)
        #expect(PipelineTestSupport.relError(report.latent, cpu.latent) < 1e-4)
        #expect(report.peakDeviceBytes["vulkan:0"].map { $0 <= budget } ?? false)
        // Nothing fits: an error before any work, nothing written.
        s.vramBudget = 1000
        s.allowCPUFallback = false
        #expect(throws: GenerationError.self) {
            try TextToVideo(source: .tiny, devices: .init(all: vk)).generate(s, output: dir.appendingPathComponent("none.y4m").path)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("none.y4m").path))
    }
}

/// `wan generate` from checkpoint files: the official folder layout is recognised, and a run from files
/// (umT5, DiT and VAE fixtures of the PyTorch reference, with a config.json and a tokenizer.json) equals the
/// pipeline's stages composed by hand.
@Suite struct GenerateFromFilesTests {
    static let models = GenerateTests.fixtures

    /// An official-style folder: DiT safetensors + config.json, the VAE and umT5 as ".pth" names (the format is
    /// read from the bytes), the tokenizer under google/umt5-xxl/.
    static func officialFolder(in dir: URL) throws -> URL {
        let fm = FileManager.default
        let root = dir.appendingPathComponent("Wan2.1-T2V-tiny")
        try fm.createDirectory(at: root.appendingPathComponent("google/umt5-xxl"), withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: root.appendingPathComponent("diffusion_pytorch_model.safetensors").path,
                                  withDestinationPath: models.appendingPathComponent("dit/tiny.safetensors").path)
        try Data(#"{"model_type": "t2v", "dim": 32, "ffn_dim": 64, "num_heads": 2, "num_layers": 2, "text_dim": 32, "text_len": 8, "freq_dim": 256}"#.utf8)
            .write(to: root.appendingPathComponent("config.json"))
        try fm.createSymbolicLink(atPath: root.appendingPathComponent("models_t5_umt5-xxl-enc-bf16.pth").path,
                                  withDestinationPath: models.appendingPathComponent("umt5/umt5_tiny_official.safetensors").path)
        // The fixture VAE with 16 latent channels (its z_dim 4 layers replaced, as in the end-to-end golden).
        let golden = try CheckpointFile.open(EndToEndGoldenTests.here.appendingPathComponent("Fixtures/e2e_expected.safetensors").path)
        let base = try CheckpointFile.open(models.appendingPathComponent("vae/weights.safetensors").path)
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for e in base.entries { tensors[e.name] = (e.shape, try base.floats(e.name)) }
        for e in golden.entries where e.name.hasPrefix("vae16.") {
            tensors[String(e.name.dropFirst("vae16.".count))] = (e.shape, try golden.floats(e.name))
        }
        try SafetensorsWriter.write(tensors.keys.sorted().map { TensorEntry(name: $0, dtype: .f32, shape: tensors[$0]!.shape) },
                                    to: root.appendingPathComponent("Wan2.1_VAE.pth").path) { e in
            HostConversion.encode(tensors[e.name]!.values, as: .f32)
        }
        // A tokenizer whose ids fit the fixture umT5's 257-entry vocabulary.
        try TinyWanModel.tokenizerJSON().write(to: root.appendingPathComponent("google/umt5-xxl/tokenizer.json"))
        return root
    }

    @Test func officialFolderRunEqualsTheStages() throws {
        let dir = try GenerateTests.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = try Self.officialFolder(in: dir)
        let files = try WanModelFiles.resolve([root.path])
        #expect(files.dit.hasSuffix("diffusion_pytorch_model.safetensors") && files.vae.hasSuffix("Wan2.1_VAE.pth"))
        #expect(files.textEncoder.hasSuffix("models_t5_umt5-xxl-enc-bf16.pth") && files.tokenizer.hasSuffix("google/umt5-xxl/tokenizer.json"))
        #expect(files.ditConfigJSON?.hasSuffix("config.json") == true)
        var s = GenerationSettings(prompt: "a cat")
        (s.width, s.height, s.frames, s.steps, s.seed, s.negativePrompt) = (48, 32, 5, 3, 11, "dog")
        for device in try PipelineTestSupport.devices() {
            let report = try TextToVideo(source: .files(files), devices: .init(all: device))
                .generate(s, output: dir.appendingPathComponent("v-\(device.isCPU ? "cpu" : "vk").y4m").path)
            #expect(report.record.modelFiles == files.all)
            // The same run composed from the stages.
            let tok = try UnigramTokenizer(contentsOfFile: files.tokenizer)
            let ids = ["a cat", "dog"].map { tok.encodePrompt($0, maxLength: 8).map(Int32.init) }
            let encoder = try UMT5Encoder.load(path: files.textEncoder, device: device)
            let ctx = try TextToVideo.encodeText(encoder: encoder, ids: ids, textLength: 8)
            let dit = try WanDiT.load(path: files.dit, device: device, config: EndToEndGoldenTests.ditConfig)
            let noise = try SeededNoise.normal(shape: [16, 2, 4, 6], seed: 11)
            let sampled = try TextToVideo.denoise(dit: dit, noise: noise, latentShape: [16, 2, 4, 6], cond: ctx[0], uncond: ctx[1], settings: s)
            #expect(PipelineTestSupport.relError(report.latent, sampled.latent) < 1e-6, "\(device.name)")
        }
    }
}

/// The `wan` executable itself (built next to the tests by `swift build --build-tests`): Ctrl-C during a run stops
/// it with status 130 and leaves nothing under the output name; bad arguments exit with an error before any work.
@Suite struct GenerateCommandLineTests {
    /// The `wan` binary beside the test bundle.
    static func wan() throws -> URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("wan")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        throw GenerationError.modelFiles("the wan executable was not found next to \(CommandLine.arguments[0]); run swift build --build-tests")
    }

    @Test func ctrlCStopsCleanly() throws {
        let dir = try GenerateTests.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = Process()
        p.executableURL = try Self.wan()
        p.arguments = ["generate", "--model", "tiny", "--prompt", "a cat", "--device", "cpu", "--steps", "1000",
                       "--size", "32x32", "--frames", "5", "--seed", "1", "--out", dir.appendingPathComponent("v.y4m").path]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        // Wait for sampling to start (a progress line), then interrupt.
        var seen = Data()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, !String(decoding: seen, as: UTF8.self).contains("step ") {
            seen.append(err.fileHandleForReading.availableData)
        }
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        seen.append(err.fileHandleForReading.readDataToEndOfFile())
        #expect(p.terminationStatus == 130, "\(String(decoding: seen, as: UTF8.self).suffix(300))")
        #expect(String(decoding: seen, as: UTF8.self).contains("cancelled"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func badArgumentsFailBeforeWork() throws {
        let p = Process()
        p.executableURL = try Self.wan()
        p.arguments = ["generate", "--model", "tiny", "--prompt", "a cat", "--frames", "6"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus != 0 && text.contains("4k + 1"))
    }
}
