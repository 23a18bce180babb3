import Foundation
import WanModels
import WanRuntime

/// Text-to-video with Wan 2.1 as the official `WanT2V.generate` (spec §1.2): the prompt and the negative prompt
/// are cleaned, tokenized and encoded by umT5 (then the encoder is freed), the seeded noise is denoised by the
/// DiT under classifier-free guidance with the chosen flow sampler (the DiT forward compiled once and replayed
/// every step), and the VAE decodes the latent one latent frame at a time straight into the video writer.
/// Each stage runs on its own device; only one stage's weights are loaded at a time.
public final class TextToVideo {
    /// Where the weights come from.
    public enum Source: Sendable, Equatable {
        /// The built-in tiny random-weight model (`TinyWanModel`): every stage, in seconds, producing noise.
        case tiny
        /// Checkpoint files.
        case files(WanModelFiles)
        /// Seeded random weights of any architecture (e.g. the real T2V-1.3B for benchmarks) with the tiny
        /// tokenizer (the umT5 vocabulary must hold its ids).
        case random(dit: WanDiTConfig, t5: WanT5Config, vae: WanVAEConfig)
    }

    /// The device of each stage.
    public struct Devices {
        /// umT5 text encoder.
        public var text: Device
        /// Diffusion transformer.
        public var dit: Device
        /// VAE decoder.
        public var vae: Device

        /// One device for every stage.
        public init(all device: Device) { (text, dit, vae) = (device, device, device) }

        /// A device per stage.
        public init(text: Device, dit: Device, vae: Device) { (self.text, self.dit, self.vae) = (text, dit, vae) }

        /// "cpu" or "text X, dit Y, vae Z".
        public var description: String {
            text === dit && dit === vae ? dit.name : "text \(text.name), dit \(dit.name), vae \(vae.name)"
        }
    }

    /// What a finished run produced.
    public struct Report: Sendable {
        /// The record written next to the output (prompt, settings, files, timings).
        public var record: GenerationRecord
        /// The output (file, frames folder or pattern folder).
        public var output: URL
        /// The JSON sidecar.
        public var sidecar: URL
        /// Peak device memory per Vulkan device used (name → bytes).
        public var peakDeviceBytes: [String: Int]
        /// Peak resident memory of the process in bytes.
        public var peakHostBytes: Int
        /// The final latent [16, T, H/8, W/8] (normalised, as the DiT produces it).
        public var latent: [Float]
        /// The integer timesteps and sigmas the sampler walked.
        public var timesteps: [Int64], sigmas: [Float]
    }

    /// The model source.
    public let source: Source
    /// The stage devices.
    public let devices: Devices

    /// A pipeline for `source` on `devices`.
    public init(source: Source, devices: Devices) {
        self.source = source
        self.devices = devices
    }

    /// Generates a video (or an image for 1 frame) for `settings` into `output` (see `OutputTarget.resolve`)
    /// with a JSON sidecar. Everything checkable is checked before the models load (settings, output path,
    /// ffmpeg for MP4, the noise file). `events` reports progress; `cancellation` stops the run between steps or
    /// frames with `GenerationError.cancelled`, leaving nothing under the output name.
    public func generate(_ requested: GenerationSettings, output: String, outputOptions: VideoOutputOptions? = nil,
                         events: @escaping (GenerationEvent) -> Void = { _ in },
                         cancellation: GenerationCancellation = GenerationCancellation()) throws -> Report {
        let started = Date()
        try requested.validate()
        var settings = requested
        var devices = self.devices
        var notes: [String] = []
        func note(_ s: String) {
            notes.append(s)
            events(.note(s))
        }
        // Plan device memory when the DiT runs on a Vulkan device; take the plan's budget-saving steps.
        var ditWeightBudget: Int?
        if let caps = devices.dit.vulkan?.capabilities {
            let plan = try memoryPlan(settings, capabilities: caps)
            guard plan.fits else {
                throw GenerationError.invalidSettings("the run does not fit \(devices.dit.name)'s memory: \(plan.verdict)")
            }
            for step in plan.steps { note(step) }
            if plan.textOnCPU && devices.text === devices.dit { devices.text = Device.cpu() }
            if settings.cfgMode == nil && !plan.cfgBatched { settings.cfgMode = .sequential }
            ditWeightBudget = plan.ditDeviceWeightBudget
            if settings.vaeTiling == nil && settings.autoVAETiling && devices.vae === devices.dit, let t = plan.vaeTiling {
                settings.vaeTiling = WanVAE.Tiling(tile: t.tile, stride: t.stride)
            }
            if plan.vaeOnCPU && devices.vae === devices.dit { devices.vae = Device.cpu() }
        }
        let target = try OutputTarget.resolve(output, frameCount: settings.frames)
        let latentShape = settings.latentShape()
        let noise = try settings.noisePath.map { try TextToVideo.loadNoise($0, shape: latentShape) }
            ?? SeededNoise.normal(shape: latentShape, seed: settings.seed)
        var options = outputOptions ?? VideoOutputOptions()
        options.fps = settings.fps
        let writer = try VideoOutput.makeWriter(target: target, width: settings.width, height: settings.height,
                                                frameCount: settings.frames, options: options)
        var finished = false
        defer { if !finished { writer.cancel() } }
        [devices.text, devices.dit, devices.vae].forEach { $0.resetPeakMemory() }
        var timings: [GenerationRecord.StageTiming] = []
        var used: [String: Device] = [:]
        /// Runs a stage on `device`; when a Vulkan device cannot hold or run it (out of device memory, a missing
        /// feature) and `allowCPUFallback` is set, runs it again on the CPU, reported as an event and in the record.
        func stage<T>(_ name: String, on device: Device, canRetry: () -> Bool = { true },
                      _ body: (Device) throws -> T) throws -> T {
            events(.stageStarted(stage: name, device: device.name))
            let t0 = Date()
            var result: T
            do {
                result = try body(device)
                used[name] = device
            } catch let error as RuntimeError where settings.allowCPUFallback && !device.isCPU && canRetry() {
                switch error {
                case .outOfDeviceMemory, .missingFeature: break
                default: throw error
                }
                note("\(name): \(device.name) cannot run it (\(error)); running it on the CPU instead")
                result = try body(Device.cpu())
                used[name] = Device.cpu()
            }
            let seconds = Date().timeIntervalSince(t0)
            timings.append(.init(stage: name, seconds: seconds))
            events(.stageFinished(stage: name, seconds: seconds))
            return result
        }

        // 1. Text: tokenize, encode both prompts as one batch, free the encoder.
        let textLen = try ditTextLength()
        let tokenizer = try loadTokenizer()
        let ids = [settings.prompt, settings.effectiveNegativePrompt].map {
            tokenizer.encodePrompt($0, maxLength: textLen).map(Int32.init)
        }
        let contexts = try stage("text encoder", on: devices.text) { device in
            try TextToVideo.encodeText(encoder: try loadTextEncoder(on: device), ids: ids, textLength: textLen)
        }
        let (cond, uncond) = (contexts[0], contexts[1])
        try cancellation.check()

        // 2. DiT: load, sample, free.
        let sampling = try stage("dit", on: devices.dit) { device -> SamplingResult in
            let dit = try loadDiT(on: device, precision: settings.precision, deviceWeightBudget: device.isCPU ? nil : ditWeightBudget)
            guard dit.config.textDim * textLen == cond.count else {
                throw GenerationError.modelFiles("the text encoder's width \(cond.count / textLen) does not match the DiT's text_dim \(dit.config.textDim)")
            }
            guard dit.config.inDim == latentShape[0], dit.config.outDim == latentShape[0] else {
                throw GenerationError.modelFiles("the DiT takes \(dit.config.inDim) input channels (\(dit.config.modelType)); text-to-video needs 16")
            }
            let t0 = Date()
            return try TextToVideo.denoise(
                dit: dit, noise: noise, latentShape: latentShape, cond: cond, uncond: uncond, settings: settings,
                cancellation: cancellation) { done, total in
                    events(.step(done: done, total: total, elapsed: Date().timeIntervalSince(t0)))
                }
        }

        // 3. VAE: decode frame by frame into the writer (a fallback only before the first frame is written).
        try stage("vae decode", on: devices.vae, canRetry: { writer.framesWritten == 0 }) { device in
            let vae = try loadVAE(on: device, fp16Compute: settings.vaeFP16Compute)
            guard vae.config.zDim == latentShape[0] else {
                throw GenerationError.modelFiles("the VAE has \(vae.config.zDim) latent channels, the DiT makes \(latentShape[0])")
            }
            var done = 0
            try cancellation.check()
            func write(_ values: [Float], _ n: Int) throws {
                let shape = [3, n, settings.height, settings.width]
                for f in 0..<n {
                    try writer.append(try VideoFrame(decoded: values, shape: shape, frame: f, quantization: target.quantization))
                }
                done += n
                events(.frames(done: done, total: settings.frames))
                try cancellation.check()
            }
            if let tiling = settings.vaeTiling {
                let video = try vae.decodeTiled(latent: sampling.latent, frames: latentShape[1], height: latentShape[2],
                                                width: latentShape[3], tiling: tiling)
                try write(video, settings.frames)
            } else {
                try vae.decode(latent: sampling.latent, frames: latentShape[1], height: latentShape[2], width: latentShape[3],
                               onFrames: write)
            }
        }
        try cancellation.check()
        try writer.finish()
        finished = true
        timings.append(.init(stage: "total", seconds: Date().timeIntervalSince(started)))

        var peaks: [String: Int] = [:]
        for d in used.values where !d.isCPU {
            peaks[d.name] = d.memoryStatistics.peak
        }
        let placement = ["text encoder", "dit", "vae decode"].map { "\($0): \(used[$0]?.name ?? "-")" }.joined(separator: ", ")
        var record = GenerationRecord(
            prompt: settings.prompt, negativePrompt: settings.effectiveNegativePrompt, seed: settings.seed,
            width: settings.width, height: settings.height, frames: settings.frames, fps: settings.fps,
            steps: settings.steps, shift: settings.shift, guidance: Double(settings.guidance),
            sampler: settings.sampler.rawValue, modelFiles: modelFileList, timings: timings,
            device: placement, precision: settings.precision.rawValue + (settings.vaeFP16Compute ? ", vae fp16" : ""),
            output: target.url.path)
        record.noiseFile = settings.noisePath
        record.notes = notes.isEmpty ? nil : notes
        try record.write(to: target.sidecarURL)
        return Report(record: record, output: target.url, sidecar: target.sidecarURL, peakDeviceBytes: peaks,
                      peakHostBytes: TextToVideo.peakResidentBytes(), latent: sampling.latent,
                      timesteps: sampling.timesteps, sigmas: sampling.sigmas)
    }

    // MARK: stages (public so that a run can be checked stage by stage against the reference)

    /// Encodes token-id sequences (each unpadded, with EOS) into DiT contexts: one `[textLength × dim]` array
    /// per sequence, its rows then zero rows (official: trimmed to the prompt's length, zero-padded by the DiT).
    public static func encodeText(encoder: UMT5Encoder, ids: [[Int32]], textLength: Int) throws -> [[Float]] {
        guard !ids.isEmpty, ids.allSatisfy({ !$0.isEmpty && $0.count <= textLength }) else {
            throw GenerationError.invalidSettings("every token sequence needs 1 to \(textLength) ids")
        }
        let context = try encoder.encode(ids, textLength: textLength)
        let values = try encoder.device.read(context)
        let per = textLength * encoder.config.dim
        return (0..<ids.count).map { Array(values[$0 * per..<($0 + 1) * per]) }
    }

    /// The sampling loop of `settings` (steps, shift, sampler, guidance, CFG mode) from `noise`
    /// [C, T, h, w] with the contexts `cond` and `uncond` (each `[text_len × text_dim]`). With guidance 1 only
    /// the conditional pass runs (CFG at scale 1 is exactly the conditional velocity). The DiT forward is
    /// compiled once (batch 2 for `.batch`, else batch 1) and replayed every step.
    public static func denoise(dit: WanDiT, noise: [Float], latentShape: [Int], cond: [Float], uncond: [Float],
                               settings: GenerationSettings, cancellation: GenerationCancellation = GenerationCancellation(),
                               onStep: ((Int, Int) -> Void)? = nil) throws -> SamplingResult {
        guard latentShape.count == 4, noise.count == latentShape.reduce(1, *) else {
            throw GenerationError.invalidSettings("noise of \(noise.count) values for a latent \(latentShape)")
        }
        let rows = dit.config.textLen
        guard cond.count == rows * dit.config.textDim, uncond.count == cond.count else {
            throw GenerationError.invalidSettings("contexts must be [\(rows), \(dit.config.textDim)] each")
        }
        let conditionalOnly = settings.guidance == 1
        let batched = (settings.cfgMode ?? .batch) == .batch && !conditionalOnly
        let session = try dit.session(batch: batched ? 2 : 1, frames: latentShape[1], height: latentShape[2],
                                      width: latentShape[3], contextRows: rows)
        // The conditioning is uploaded once (twice per step only for CFG as two passes, which alternates it).
        if conditionalOnly { try session.setConditioning(context: cond) }
        if batched { try session.setConditioning(context: cond + uncond) }
        return try FlowSampling.sample(noise: noise, steps: settings.steps, shift: settings.shift,
                                       sampler: settings.sampler, guidance: settings.guidance, onStep: onStep) { x, t, _ in
            try cancellation.check()
            let timestep = Double(t)
            if conditionalOnly {
                let v = try session.run(x: x, timesteps: [timestep])
                return (v, v)
            }
            if batched {
                let v = try session.run(x: x + x, timesteps: [timestep, timestep])
                return (Array(v[0..<x.count]), Array(v[x.count...]))
            }
            let c = try session.run(x: x, timesteps: [timestep], context: cond)
            try cancellation.check()
            let u = try session.run(x: x, timesteps: [timestep], context: uncond)
            return (c, u)
        }
    }

    /// The tensor `noise` (or the file's only tensor) of a `.safetensors` file, shaped `shape` (a leading
    /// batch of 1 is accepted), as float32.
    public static func loadNoise(_ path: String, shape: [Int]) throws -> [Float] {
        let reader: any CheckpointReader
        do { reader = try CheckpointFile.open(path) } catch {
            throw GenerationError.invalidSettings("--noise \(path): \(error)")
        }
        guard let entry = reader.entry("noise") ?? (reader.entries.count == 1 ? reader.entries.first : nil) else {
            throw GenerationError.invalidSettings("--noise \(path): no tensor named 'noise' (it has \(reader.entries.map(\.name).prefix(10).joined(separator: ", ")))")
        }
        let s = entry.shape.count == shape.count + 1 && entry.shape.first == 1 ? Array(entry.shape.dropFirst()) : entry.shape
        guard s == shape else {
            throw GenerationError.invalidSettings("--noise \(path): '\(entry.name)' is \(entry.shape), the run needs \(shape)")
        }
        let values = try reader.floats(entry.name)
        guard values.allSatisfy(\.isFinite) else {
            throw GenerationError.invalidSettings("--noise \(path): '\(entry.name)' holds non-finite values")
        }
        return values
    }

    /// Peak resident set size of this process (getrusage), in bytes.
    public static func peakResidentBytes() -> Int {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
        return Int(usage.ru_maxrss) * 1024
    }

    // MARK: loading

    var modelFileList: [String] {
        switch source {
        case .tiny: return ["tiny (built-in random weights)"]
        case let .files(f): return f.all
        case let .random(dit, t5, vae): return ["random weights: DiT \(dit), umT5 \(t5), VAE \(vae)"]
        }
    }

    func ditTextLength() throws -> Int {
        switch source {
        case .tiny, .random: return randomArchitecture?.dit.textLen ?? 512
        case let .files(f): return try ditConfig(f)?.textLen ?? 512
        }
    }

    func ditConfig(_ f: WanModelFiles) throws -> WanDiTConfig? {
        guard let json = f.ditConfigJSON else { return nil }
        // A config.json that is not a DiT config (or lacks fields) leaves detection to the tensors.
        return try? ComponentForward.ditConfig(fromJSON: json)
    }

    /// The architecture of a random-weight source (`.tiny` or `.random`), nil for files.
    var randomArchitecture: (dit: WanDiTConfig, t5: WanT5Config, vae: WanVAEConfig)? {
        switch source {
        case .tiny: return (TinyWanModel.ditConfig, TinyWanModel.t5Config, TinyWanModel.vaeConfig)
        case let .random(dit, t5, vae): return (dit, t5, vae)
        case .files: return nil
        }
    }

    func loadTokenizer() throws -> UnigramTokenizer {
        guard case let .files(f) = source else { return try TinyWanModel.tokenizer() }
        return try UnigramTokenizer(contentsOfFile: f.tokenizer)
    }

    func loadTextEncoder(on device: Device) throws -> UMT5Encoder {
        if let arch = randomArchitecture { return try TinyWanModel.textEncoder(config: arch.t5, on: device) }
        guard case let .files(f) = source else { throw GenerationError.modelFiles("no text encoder") }
        let reader = try CheckpointFile.open(f.textEncoder)
        return try UMT5Encoder.load(reader, device: device, activationDType: .f32,
                                    weightDType: TextToVideo.textEncoderWeightDType(reader.entries))
    }

    func loadDiT(on device: Device, precision: WanDiT.Precision, deviceWeightBudget: Int? = nil) throws -> WanDiT {
        if let arch = randomArchitecture {
            return try TinyWanModel.dit(config: arch.dit, on: device, precision: precision, deviceWeightBudget: deviceWeightBudget)
        }
        guard case let .files(f) = source else { throw GenerationError.modelFiles("no DiT") }
        return try WanDiT.load(path: f.dit, device: device, config: try ditConfig(f), precision: precision,
                               deviceWeightBudget: deviceWeightBudget)
    }

    /// How the umT5 weights of a checkpoint are kept: a 16-bit file in its dtype (exact, half the memory),
    /// anything else (fp32, fp8 scaled) as f32; activations run in fp32 either way.
    public static func textEncoderWeightDType(_ entries: [TensorEntry]) -> DType {
        let bf16 = entries.filter { $0.dtype == .bf16 }.count, f16 = entries.filter { $0.dtype == .f16 }.count
        return bf16 * 2 > entries.count ? .bf16 : f16 * 2 > entries.count ? .f16 : .f32
    }

    /// The memory plan of `settings` on a device with `capabilities` (budget: `settings.vramBudget` or the
    /// device's own memory), from the model's configurations (read from the checkpoint headers for files).
    public func memoryPlan(_ settings: GenerationSettings, capabilities caps: Capabilities) throws -> GenerationPlan {
        let dit: WanDiTConfig, t5: WanT5Config, vae: WanVAEConfig, t5DType: DType
        if let arch = randomArchitecture {
            (dit, t5, vae, t5DType) = (arch.dit, arch.t5, arch.vae, .f32)
        } else if case let .files(f) = source {
            var a = PlanArguments()
            (a.ditFile, a.t5File, a.vaeFile) = (f.dit, f.textEncoder, f.vae)
            let c = try a.configurations()
            (dit, t5, vae, t5DType) = (try ditConfig(f) ?? c.dit, c.t5, c.vae, c.t5WeightDType)
        } else {
            throw GenerationError.modelFiles("no model")
        }
        return try GenerationPlan(dit: dit, t5: t5, vae: vae, t5WeightDType: t5DType, precision: settings.precision,
                                  width: settings.width, height: settings.height, frames: settings.frames,
                                  budget: settings.vramBudget ?? caps.deviceLocalBytes,
                                  maxArenaBytes: min(caps.maxMemoryAllocationSize, caps.maxBufferSize),
                                  allowVAETiling: settings.autoVAETiling || settings.vaeTiling != nil,
                                  allowCPU: settings.allowCPUFallback)
    }

    func loadVAE(on device: Device, fp16Compute: Bool) throws -> WanVAE {
        if let arch = randomArchitecture {
            return try TinyWanModel.vae(config: arch.vae, on: device, fp16Compute: fp16Compute)
        }
        guard case let .files(f) = source else { throw GenerationError.modelFiles("no VAE") }
        return try WanVAE.load(path: f.vae, device: device, fp16Compute: fp16Compute)
    }
}
