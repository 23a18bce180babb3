import Foundation
import WanModels
import WanPipelines
import WanRuntime

/// A whole text-to-video run (`wan generate`'s pipeline: tokenize → umT5 → DiT sampling with CFG as a batch of
/// 2 → VAE decode frame by frame → Y4M file) with seeded random weights, per stage. Scaled down (the built-in
/// tiny model at 128x128, 9 frames, 10 steps) on the CPU and software Vulkan; on a real GPU (--full) the
/// T2V-1.3B DiT and the Wan 2.1 VAE at 832x480, 81 frames (the real run's shapes and so its peak memory), 2
/// steps under an 8 GB budget (measured peak against the plan), with umT5-XXL cut to 4 of its 24 layers (the text stage is a small share of a run). One run per device
/// (a run is long; the stages are its rows).
let pipelineSuite = BenchSuite(name: "pipeline") { ctx in
    var rows: [BenchRow] = []
    for device in ctx.devices {
        let software = device.vulkan?.capabilities.isSoftware ?? false
        let full = ctx.fullSize && !software
        var settings = GenerationSettings(prompt: "a red cat walking on the street at night, slow motion")
        let source: TextToVideo.Source
        if full {
            source = .random(dit: .t2v1_3B, t5: WanT5Config(vocabSize: 32_000, numLayers: 4), vae: .wan21)
            (settings.width, settings.height, settings.frames, settings.steps) = (832, 480, 81, 2)
            // The budget of a consumer GPU (the Wan report's 8.19 GB for T2V-1.3B at 480p): the run takes the
            // plan's budget-saving steps, and its measured peak is compared with the plan.
            settings.vramBudget = 8_000_000_000
        } else {
            source = .tiny
            (settings.width, settings.height, settings.frames, settings.steps) = (128, 128, 9, 10)
        }
        settings.seed = 1
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("wan-bench-pipeline-\(UUID().uuidString).y4m")
        defer {
            try? FileManager.default.removeItem(at: out)
            try? FileManager.default.removeItem(at: URL(fileURLWithPath: out.path + ".json"))
        }
        let planned = try device.vulkan.map { try TextToVideo(source: source, devices: .init(all: device)).memoryPlan(settings, capabilities: $0.capabilities) }
        let rss0 = CheckpointBench.resetPeakRSS()
        device.resetPeakMemory()
        var stepTimes: [Double] = []
        var last = 0.0
        let report = try TextToVideo(source: source, devices: .init(all: device)).generate(settings, output: out.path) { e in
            if case let .step(_, _, elapsed) = e {
                stepTimes.append(elapsed - last)
                last = elapsed
            }
        }
        let model = full ? "T2V-1.3B arch (umT5 4/24 layers)" : "tiny"
        let shape = "\(settings.width)x\(settings.height)x\(settings.frames), \(settings.steps) steps"
            + (settings.vramBudget.map { ", budget \(MemorySize.format($0))" } ?? "")
        let memory = device.isCPU ? CheckpointBench.peakRSS() - rss0 : report.peakDeviceBytes[device.name] ?? 0
        let note = device.isCPU ? "peak host RSS"
            : "peak device memory" + (planned.map { "; planned \(MemorySize.format($0.peakDeviceBytes))" + ($0.steps.isEmpty ? "" : ": " + $0.steps.joined(separator: ", ")) } ?? "")
        for t in report.record.timings {
            rows.append(BenchRow(kernel: "pipeline \(model): \(t.stage)", shape: shape, device: Bench.label(device),
                                 ms: t.seconds * 1000, memoryBytes: t.stage == "total" ? memory : 0,
                                 note: t.stage == "total" ? note : ""))
        }
        // The first step includes compiling the DiT forward; the median of the others is the replay cost.
        let replay = stepTimes.count > 1 ? stepTimes.dropFirst().sorted()[(stepTimes.count - 1) / 2] : stepTimes.first ?? 0
        rows.append(BenchRow(kernel: "pipeline \(model): DiT step (CFG batch 2)", shape: shape, device: Bench.label(device),
                             ms: replay * 1000, note: "median after the first"))
    }
    return rows
}
