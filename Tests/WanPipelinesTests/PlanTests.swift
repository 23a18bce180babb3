import Foundation
import Testing
import WanModels
import WanPipelines
import WanRuntime

/// `wan plan`: exact weight sizes (spec §1.1), activation plans of shape-only graphs equal to the arenas of the
/// same graphs compiled with real weights, budget decisions, memory sizes and bad arguments.
@Suite struct PlanTests {
    static let gb = 1_000_000_000

    // MARK: weights

    /// Parameter counts of spec §1.1 times the stored dtype.
    @Test func weightBytesMatchTheSpec() throws {
        #expect(WanDiT.weightBytes(config: .t2v1_3B, precision: .fp32) == 1_418_996_800 * 4)
        #expect(WanDiT.weightBytes(config: .t2v14B, precision: .fp32) == 14_288_491_584 * 4)
        #expect(WanDiT.weightBytes(config: .i2v14B, precision: .fp32) == 16_394_878_784 * 4)
        #expect(WanVAE.weightBytes(config: .wan21) == 126_892_531 * 4)
        // 16-bit matmul weights: everything else (norms, biases, modulations, time embedding, head) stays fp32.
        let fp32 = WanDiT.weightBytes(config: .t2v1_3B, precision: .fp32)
        let bf16 = WanDiT.weightBytes(config: .t2v1_3B, precision: .bf16)
        let fp16 = WanDiT.weightBytes(config: .t2v1_3B, precision: .fp16)
        let reduced = WanDiTConfig.t2v1_3B.expectedTensors().filter { WanDiT.isReducedPrecisionWeight($0.name) }
            .reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(bf16 == fp32 - 2 * reduced && fp16 == bf16)
        // FP8: one byte per matmul weight plus an f32 scale per output row.
        let rows = WanDiTConfig.t2v1_3B.expectedTensors().filter { WanDiT.isReducedPrecisionWeight($0.name) }.reduce(0) { $0 + $1.shape[0] }
        #expect(WanDiT.weightBytes(config: .t2v1_3B, precision: .fp8) == fp32 - 3 * reduced + 4 * rows)

        let plan = try GenerationPlan(dit: .t2v1_3B, t5: .umt5XXL, vae: .wan21)
        #expect(plan.stages.map(\.name) == ["text encoder", "dit", "vae decode"])
        #expect(plan.stages[0].weightBytes == 5_680_910_336 * 2)       // umT5-XXL, bf16 as the official file
        #expect(plan.stages[1].weightBytes == 1_418_996_800 * 4)
        #expect(plan.stages[2].weightBytes == 126_892_531 * 4)
        #expect(plan.stages.allSatisfy { $0.deviceBytes == $0.deviceWeightBytes + $0.activationBytes + $0.otherBytes })
        #expect(plan.peakDeviceBytes == plan.stages.map(\.deviceBytes).max())
        // Streaming splits the DiT's weights between device and host memory, exactly.
        let split = try WanDiT.weightBytes(config: .t2v1_3B, precision: .fp32, deviceWeightBudget: 3 * Self.gb)
        #expect(split.device + split.host == fp32 && split.device <= 3 * Self.gb && split.host > 0)
    }

    // MARK: plans equal compiled arenas

    /// The shape-only DiT plans exactly the arenas the session compiles with real weights, in every precision,
    /// and counts its inputs and RoPE table.
    @Test func ditPlanEqualsCompiledArenas() throws {
        let cpu = Device.cpu()
        let cfg = TinyWanModel.ditConfig
        for precision in WanDiT.Precision.allCases {
            for batch in [1, 2] {
                let real = try TinyWanModel.dit(on: cpu, precision: precision)
                let session = try real.session(batch: batch, frames: 3, height: 8, width: 12)
                let shapeOnly = try WanDiT(shapeOnly: cfg, precision: precision)
                #expect(shapeOnly.isShapeOnly && !real.isShapeOnly)
                let f = try shapeOnly.footprint(batch: batch, frames: 3, height: 8, width: 12)
                #expect(f.plan.arenaBytes == session.graph.plan.arenaBytes, "\(precision) batch \(batch)")
                #expect(f.activationBytes == session.graph.plan.totalBytes && f.activationBytes > 0)
                // The same graph with real weights plans the same.
                let r = try real.footprint(batch: batch, frames: 3, height: 8, width: 12)
                #expect(r.activationBytes == f.activationBytes)
                #expect(f.placeholderBytes == WanDiT.weightBytes(config: cfg, precision: precision))
                #expect(r.parameterBytes == f.placeholderBytes + f.parameterBytes)
                // Inputs x, t_sinusoid, context (256-byte aligned) and the RoPE table [F·H'·W', hd/2, 2] f32.
                func aligned(_ b: Int) -> Int { (b + 255) / 256 * 256 }
                #expect(f.inputBytes == aligned(batch * 16 * 3 * 8 * 12 * 4) + aligned(batch * cfg.freqDim * 4)
                    + aligned(batch * cfg.textLen * cfg.textDim * 4))
                #expect(f.parameterBytes == 3 * 4 * 6 * (cfg.headDim / 2) * 2 * 4)
            }
        }
        // Compiling a placeholder graph is refused.
        #expect(throws: RuntimeError.self) { try WanDiT(shapeOnly: cfg).session(batch: 1, frames: 1, height: 4, width: 4) }
    }

    /// Streamed blocks: the shape-only plan with a device weight budget equals the compiled streaming session's
    /// arenas (the streamed copies included) on a Vulkan device (the CPU keeps every weight resident).
    @Test func streamedDiTPlanEqualsCompiledArenas() throws {
        guard let device = try PipelineTestSupport.vulkan() else { return }
        let cfg = TinyWanModel.ditConfig
        let (outside, blocks) = WanDiT.blockWeightBytes(config: cfg, precision: .fp32)
        let budget = outside + blocks[0] + blocks[0] / 2      // every block streamed
        let weights = try TinyWanModel.randomWeights(cfg.expectedTensors(), seed: 7, on: device)
        let real = try WanDiT(config: cfg, weights: weights, device: device, deviceWeightBudget: budget)
        let shapeOnly = try WanDiT(shapeOnly: cfg, deviceWeightBudget: budget)
        #expect(real.streamedBlocks == cfg.numLayers && shapeOnly.streamedBlocks == cfg.numLayers)
        let session = try real.session(batch: 2, frames: 2, height: 8, width: 8)
        let f = try shapeOnly.footprint(batch: 2, frames: 2, height: 8, width: 8)
        #expect(f.plan.arenaBytes == session.graph.plan.arenaBytes)
        #expect(f.hostPlaceholderBytes == blocks.reduce(0, +))
        let resident = try WanDiT(shapeOnly: cfg).footprint(batch: 2, frames: 2, height: 8, width: 8)
        #expect(f.activationBytes > resident.activationBytes)      // the streamed copies take arena memory
    }

    /// The shape-only umT5 plans exactly the arenas of the compiled program.
    @Test func textEncoderPlanEqualsCompiledArenas() throws {
        let cpu = Device.cpu()
        let real = try TinyWanModel.textEncoder(on: cpu)
        for (batch, length) in [(2, 7), (1, 16)] {
            let program = try real.compile(batch: batch, length: length, textLength: 16)
            let f = try UMT5Encoder(shapeOnly: TinyWanModel.t5Config, weightDType: .f32).footprint(batch: batch, length: length, textLength: 16)
            #expect(f.plan.arenaBytes == program.graph.plan.arenaBytes)
            #expect(f.parameterBytes == length * length * 4)                                // the relative position buckets
            #expect(f.placeholderBytes == TinyWanModel.t5Config.expectedTensors().reduce(0) { $0 + $1.shape.reduce(1, *) * 4 })
        }
    }

    /// The shape-only VAE plans the chunk graphs `decode` compiles (one alive at a time): as many, with the same arenas.
    @Test func vaePlanEqualsCompiledStages() throws {
        let cpu = Device.cpu()
        let real = try TinyWanModel.vae(on: cpu)
        let (frames, h, w) = (5, 4, 6)
        let latent = try SeededNoise.normal(count: 16 * frames * h * w, seed: 3)
        _ = try real.decode(latent: latent, frames: frames, height: h, width: w)
        let compiled = real.compiledStagePlans
        let planned = try WanVAE(shapeOnly: TinyWanModel.vaeConfig).decodeFootprints(frames: frames, height: h, width: w)
        #expect(compiled.count == planned.count && planned.count >= 3)
        #expect(compiled.map(\.arenaBytes) == planned.sorted { $0.activationBytes > $1.activationBytes }.map(\.plan.arenaBytes))
        // Later chunks take the causal caches as inputs.
        #expect(planned[0].inputBytes < planned[planned.count - 1].inputBytes)
        // Tiles: the chunk graphs of every distinct tile size (4×4, 4×1 at the right, 1×4 at the bottom, 1×1).
        let shapeOnly = try WanVAE(shapeOnly: TinyWanModel.vaeConfig)
        let tiled = try shapeOnly.tiledDecodeFootprints(frames: 2, height: 10, width: 7, tile: 4, stride: 3)
        let sizes = [(4, 4), (4, 1), (1, 4), (1, 1)]
        let each = try sizes.flatMap { try shapeOnly.decodeFootprints(frames: 2, height: $0.0, width: $0.1) }
        #expect(tiled.map(\.plan.arenaBytes) == each.map(\.plan.arenaBytes) && tiled.count == 8)
        #expect(throws: RuntimeError.self) { try shapeOnly.tiledDecodeFootprints(frames: 2, height: 10, width: 7, tile: 3, stride: 4) }
        // Fewer frames than cache layouts: only the chunks the latent reaches.
        #expect(try WanVAE(shapeOnly: TinyWanModel.vaeConfig).decodeFootprints(frames: 1, height: h, width: w).count == 1)
    }

    /// On a Vulkan device, each stage's planned device memory is what the allocator's peak shows when the stage
    /// runs (up to the 256-byte padding of each tensor).
    @Test func planMatchesTheAllocatorsPeak() throws {
        guard let device = try PipelineTestSupport.vulkan() else { return }
        let (width, height, frames) = (64, 48, 9)
        let plan = try GenerationPlan(dit: TinyWanModel.ditConfig, t5: TinyWanModel.t5Config, vae: TinyWanModel.vaeConfig,
                                      t5WeightDType: .f32, width: width, height: height, frames: frames)
        func close(_ observed: Int, _ planned: Int, _ tensors: Int) -> Bool {
            observed >= planned && observed - planned <= 256 * tensors
        }
        do {   // text: two prompts of text_len tokens
            let encoder = try TinyWanModel.textEncoder(on: device)
            device.resetPeakMemory()
            let ids = (0..<2).map { p in (0..<512).map { Int32(($0 * 7 + p) % TinyWanModel.vocabulary.count) } }
            _ = try encoder.encode(ids, textLength: 512)
            let peak = device.memoryStatistics.peak
            #expect(close(peak, plan.stages[0].deviceBytes, 64), "text: observed \(peak), planned \(plan.stages[0].deviceBytes)")
        }
        do {   // DiT: the batch-of-2 session, one step
            let dit = try TinyWanModel.dit(on: device)
            device.resetPeakMemory()
            let (t, h, w) = (plan.latentFrames, plan.latentHeight, plan.latentWidth)
            let session = try dit.session(batch: 2, frames: t, height: h, width: w)
            _ = try session.run(x: [Float](repeating: 0.1, count: 2 * 16 * t * h * w), timesteps: [900, 900],
                                context: [Float](repeating: 0.1, count: 2 * 512 * 64))
            let peak = device.memoryStatistics.peak
            #expect(close(peak, plan.stages[1].deviceBytes, 128), "dit: observed \(peak), planned \(plan.stages[1].deviceBytes)")
        }
        do {   // VAE: decode frame by frame
            let vae = try TinyWanModel.vae(on: device)
            device.resetPeakMemory()
            let latent = try SeededNoise.normal(count: 16 * plan.latentFrames * plan.latentHeight * plan.latentWidth, seed: 9)
            _ = try vae.decode(latent: latent, frames: plan.latentFrames, height: plan.latentHeight, width: plan.latentWidth)
            let peak = device.memoryStatistics.peak
            #expect(close(peak, plan.stages[2].deviceBytes, 256), "vae: observed \(peak), planned \(plan.stages[2].deviceBytes)")
        }
    }

    // MARK: decisions

    /// As the budget shrinks: text encoder to the CPU, CFG as two passes, DiT blocks streamed, VAE to the CPU,
    /// and finally "does not fit".
    @Test func decisionsFlipAsTheBudgetShrinks() throws {
        func plan(_ budget: Int?, _ precision: WanDiT.Precision = .fp32) throws -> GenerationPlan {
            try GenerationPlan(dit: .t2v1_3B, t5: .umt5XXL, vae: .wan21, precision: precision, budget: budget)
        }
        let free = try plan(nil)
        #expect(free.fits && !free.textOnCPU && free.cfgBatched && free.ditStreamedBlocks == 0 && !free.vaeOnCPU)
        #expect(free.ditDeviceWeightBudget == nil && free.steps.isEmpty)
        let text = free.stages[0].deviceBytes, ditBatched = free.stages[1].deviceBytes, vae = free.stages[2].deviceBytes
        // Everything fits at the unlimited peak.
        let roomy = try plan(free.peakDeviceBytes)
        #expect(roomy.fits && !roomy.textOnCPU && roomy.cfgBatched && !roomy.vaeOnCPU && roomy.steps.isEmpty)
        // Just below the text stage: umT5 on the CPU (no device memory), the rest unchanged.
        let t = try plan(text - 1)
        #expect(t.textOnCPU && t.stages[0].onCPU && t.stages[0].deviceBytes == 0 && t.stages[0].hostBytes == text)
        #expect(t.cfgBatched == (ditBatched < text) && t.steps.first?.hasPrefix("text encoder on the CPU") == true)
        // The Wan report's 8.19 GB in fp32: umT5 on the CPU, CFG as two passes, no streaming.
        let report = try plan(8_190_000_000)
        #expect(report.fits && report.textOnCPU && !report.cfgBatched && report.ditStreamedBlocks == 0)
        #expect(report.peakDeviceBytes <= 8_190_000_000 && report.stages[1].deviceBytes < ditBatched)
        // bf16 halves the matmul weights: the batch of 2 fits again.
        #expect(try plan(8_190_000_000, .bf16).cfgBatched)
        // Smaller: blocks streamed, fewer as the budget grows.
        let streamed = try plan(5 * Self.gb), more = try plan(3 * Self.gb)
        #expect(streamed.fits && streamed.ditStreamedBlocks > 0 && more.ditStreamedBlocks > streamed.ditStreamedBlocks)
        #expect(streamed.stages[1].deviceBytes <= 5 * Self.gb && streamed.stages[1].hostBytes > 0)
        #expect(try #require(streamed.ditDeviceWeightBudget) > (try #require(more.ditDeviceWeightBudget)))
        #expect(streamed.steps.contains { $0.hasPrefix("stream ") })
        // Whole frames (one chunk graph alive at a time) need more than 8.19 GB at 480p; tiles do not.
        #expect(vae > 8_190_000_000 && !report.vaeOnCPU && report.vaeTiling != nil && report.stages[2].deviceBytes < 3 * Self.gb)
        // Whole frames do not fit 9 GB, tiles do; without tiling: the CPU.
        let nine = try plan(9 * Self.gb)
        #expect(nine.fits && nine.textOnCPU && nine.cfgBatched && !nine.vaeOnCPU)
        #expect(nine.vaeTiling?.tile == 32 && nine.vaeTiling?.stride == 24 && nine.stages[2].deviceBytes <= 9 * Self.gb)
        #expect(nine.steps.last?.hasPrefix("VAE decode in tiles") == true)
        let untiled = try GenerationPlan(dit: .t2v1_3B, t5: .umt5XXL, vae: .wan21, budget: 9 * Self.gb, allowVAETiling: false)
        #expect(untiled.vaeOnCPU && untiled.vaeTiling == nil)
        // Too small for the DiT even with every block streamed: does not fit, and says by how much.
        let tiny = try plan(200_000_000)
        #expect(!tiny.fits && tiny.missingBytes > 0 && tiny.verdict.hasPrefix("does not fit"))
        #expect(tiny.stages[1].deviceBytes == 200_000_000 + tiny.missingBytes)
        // Without streaming or the CPU, the smallest options are reported as not fitting.
        let strict = try GenerationPlan(dit: .t2v1_3B, t5: .umt5XXL, vae: .wan21, budget: 8_190_000_000,
                                        allowStreaming: false, allowCPU: false)
        #expect(!strict.textOnCPU && !strict.fits && strict.stages[0].fits == false)
        // Text and JSON forms.
        #expect(report.table.contains("text encoder") && report.table.contains("CFG as two passes"))
        let json = try #require(try JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
        #expect(json["cfgBatched"] as? Bool == false && json["textOnCPU"] as? Bool == true && json["fits"] as? Bool == true)
        #expect(json["peakDeviceBytes"] as? Int == report.peakDeviceBytes && (json["stages"] as? [Any])?.count == 3)
    }

    /// Planning the big graphs takes seconds, not minutes.
    @Test func planningIsFast() throws {
        let t0 = Date()
        _ = try GenerationPlan(dit: .t2v14B, t5: .umt5XXL, vae: .wan21, width: 1280, height: 720, budget: 24 * Self.gb)
        #expect(Date().timeIntervalSince(t0) < 30)
    }

    // MARK: arguments

    @Test func memorySizes() throws {
        #expect(try MemorySize.parse("8GB") == 8_000_000_000)
        #expect(try MemorySize.parse("8.19GB") == 8_190_000_000)
        #expect(try MemorySize.parse("7.5GiB") == 7 * 1_073_741_824 + 536_870_912)
        #expect(try MemorySize.parse("8192MiB") == 8 * 1_073_741_824)
        #expect(try MemorySize.parse("512 mb") == 512_000_000)
        #expect(try MemorySize.parse("8g") == 8 * 1_073_741_824)
        #expect(try MemorySize.parse("1000") == 1000)
        #expect(try MemorySize.parse("1000B") == 1000)
        for bad in ["", "GB", "-1GB", "0", "0GB", "8XB", "abc", "1e9", "8..2GB", "99999999999TB"] {
            #expect(throws: GenerationError.self, "\(bad)") { try MemorySize.parse(bad) }
        }
        #expect(MemorySize.format(8_190_000_000) == "8.19 GB")
        #expect(MemorySize.format(17_800_000) == "17.8 MB")
    }

    @Test func arguments() throws {
        let d = try PlanArguments.parse([])
        #expect(d.model == "1.3b" && d.width == 832 && d.height == 480 && d.frames == 81 && d.precision == .fp32 && d.budget == nil)
        let a = try PlanArguments.parse(["--model", "14b", "--size", "1280x720", "--frames", "81", "--precision", "bf16",
                                         "--vram-budget", "24GB", "--device", "cpu", "--json"])
        #expect(a.model == "14b" && a.width == 1280 && a.height == 720 && a.precision == .bf16 && a.budget == 24 * Self.gb && a.json)
        let limits = try a.deviceLimits()
        #expect(limits.budget == 24 * Self.gb && limits.maxAllocation == nil)
        #expect(try PlanArguments.parse(["--device", "cpu"]).deviceLimits().budget == nil)     // the CPU: no budget
        let tiny = try PlanArguments.parse(["--model", "tiny"])
        #expect(tiny.width == TinyWanModel.defaultWidth && tiny.frames == TinyWanModel.defaultFrames)
        let tinyPlan = try PlanArguments.parse(["--model", "tiny", "--device", "cpu"]).plan().plan
        #expect(tinyPlan.modelName == "tiny" && tinyPlan.fits && tinyPlan.dit == TinyWanModel.ditConfig)
        let bad: [[String]] = [["--size", "830x480"], ["--size", "832"], ["--size", "0x480"], ["--size", "x"], ["--frames", "80"],
                               ["--frames", "0"], ["--frames", "many"], ["--vram-budget", "0"], ["--vram-budget", "lots"],
                               ["--vram-budget"], ["--model", "7b"], ["--precision", "int4"], ["--bogus"]]
        for args in bad {
            #expect(throws: GenerationError.self, "\(args)") { try PlanArguments.parse(args) }
        }
        #expect(throws: GenerationError.self) { try PlanArguments.parse(["--device", "vulkan:99"]).deviceLimits() }
        for (w, h, f) in [(830, 480, 81), (832, 480, 80), (0, 480, 81), (832, 480, -3)] {
            #expect(throws: GenerationError.self) { try GenerationPlan(dit: .t2v1_3B, t5: .umt5XXL, vae: .wan21, width: w, height: h, frames: f) }
        }
        #expect(throws: GenerationError.self) { try GenerationPlan(dit: .t2v1_3B, t5: .umt5XXL, vae: .wan21, budget: 0) }
        #expect(throws: GenerationError.self) { try GenerationPlan(dit: .i2v14B, t5: .umt5XXL, vae: .wan21) }
        var narrow = WanT5Config.umt5XXL
        narrow.dim = 1024
        #expect(throws: GenerationError.self) { try GenerationPlan(dit: .t2v1_3B, t5: narrow, vae: .wan21) }
    }

    /// Configurations come from checkpoint headers: a file of the tiny DiT, umT5 and VAE tensors plans as the
    /// built-in tiny model; a wrong file is a model-files error.
    @Test func configurationsFromFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wan-plan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func write(_ entries: [TensorEntry], _ name: String) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try SafetensorsWriter.write(entries, to: path) { [UInt8](repeating: 0, count: $0.byteCount) }
            return path
        }
        let dit = try write(TinyWanModel.ditConfig.expectedEntries(dtype: .f32), "dit.safetensors")
        let t5 = try write(TinyWanModel.t5Config.expectedEntries(dtype: .bf16), "t5.safetensors")
        let vae = try write(TinyWanModel.vaeConfig.expectedEntries(dtype: .f32), "vae.safetensors")
        // The tiny VAE has one residual block per level, which headers alone read as Wan 2.1's structure: give
        // the file only where shapes determine the configuration (DiT, umT5).
        #expect(throws: GenerationError.self) { try PlanArguments.parse(["--dit", dit]).configurations() }   // num_heads unknown
        let a = try PlanArguments.parse(["--model", "tiny", "--dit", dit, "--heads", "2", "--t5", t5, "--device", "cpu"])
        let c = try a.configurations()
        #expect(c.dit == TinyWanModel.ditConfig && c.t5 == TinyWanModel.t5Config && c.t5WeightDType == .bf16)
        #expect(throws: GenerationError.self) { try PlanArguments.parse(["--dit", vae]).configurations() }
        #expect(throws: GenerationError.self) { try PlanArguments.parse(["--t5", dir.appendingPathComponent("none").path]).configurations() }
        let p = try a.plan().plan
        #expect(p.stages[0].weightBytes == TinyWanModel.t5Config.expectedTensors().reduce(0) { $0 + $1.shape.reduce(1, *) } * 2)
    }
}
