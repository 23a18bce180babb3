import Foundation
import WanModels
import WanRuntime

/// Whole-model forwards with random weights generated in memory: one DiT forward of the real T2V-1.3B
/// architecture at a small latent, umT5-XXL with a few of its 24 layers at full width, L = 512, and a
/// VAE decode of 2 latent frames at 240x416.
/// Real sizes on a GPU and on the CPU (OpenBLAS); scaled down (2 layers, dim 256) on software Vulkan,
/// which is hundreds of times slower. Reports ms per forward (host transfers included) and peak memory
/// (device memory on Vulkan, the process's resident set on the CPU).
/// The suites `models dit`, `models t5` and `models vae` (the filter `models` selects all three).
let modelsSuites = ["dit", "t5", "vae"].map { part in BenchSuite(name: "models \(part)") { ctx in try modelRows(part, ctx) } }

private func modelRows(_ part: String, _ ctx: BenchContext) throws -> [BenchRow] {
    var rows: [BenchRow] = []
    for device in ctx.devices {
        let software = device.vulkan?.capabilities.isSoftware ?? false
        let real = ctx.fullSize || !software
        let repeats = max(1, min(ctx.repeats, 3))

        // Each model in its own scope, so that the next one's peak device memory does not count it.
        if part == "dit" {
            // DiT: T2V-1.3B (30 layers, dim 1536) at latent 2x30x52 (780 tokens), context 512 x 4096.
            let dit = real ? WanDiTConfig.t2v1_3B
                : WanDiTConfig(modelType: .t2v, dim: 256, ffnDim: 1024, numHeads: 2, numLayers: 2, textDim: 512)
            let (frames, height, width) = real ? (2, 30, 52) : (2, 6, 8)
            let rss0 = CheckpointBench.resetPeakRSS()
            device.resetPeakMemory()
            let model = try WanDiT(config: dit, weights: try ModelsBench.randomWeights(dit.expectedTensors(), device: device),
                                   device: device)
            let session = try model.session(batch: 1, frames: frames, height: height, width: width, contextRows: dit.textLen)
            let x = Bench.random(dit.inDim * frames * height * width, seed: 7)
            let context = Bench.random(dit.textLen * dit.textDim, seed: 8)
            _ = try session.run(x: x, timesteps: [999], context: context)
            let ditMs = try ModelsBench.medianMilliseconds(repeats) { _ = try session.run(x: x, timesteps: [500], context: context) }
            if ProcessInfo.processInfo.environment["WAN_PROFILE"] == "1" { ModelsBench.printProfile(try session.graph.timings()) }
            let tokens = frames * (height / 2) * (width / 2)
            rows.append(BenchRow(kernel: real ? "DiT T2V-1.3B forward" : "DiT tiny forward (2 layers, dim 256)",
                                 shape: "latent \(frames)x\(height)x\(width) (\(tokens) tokens), ctx \(dit.textLen)",
                                 device: Bench.label(device), ms: ditMs,
                                 memoryBytes: device.isCPU ? CheckpointBench.peakRSS() - rss0 : device.memoryStatistics.peak,
                                 note: device.isCPU ? "peak host RSS" : "peak device memory"))

            // On a hardware GPU at full size: the 1.3B forward at 832x480, 81 frames (latent 21x60x104, L = 32,760),
            // the shape of a real run (PyTorch eager on an H100: 0.54 s, ../shared/research/gpu-anchors-h100.md).
            if ctx.fullSize && !software && !device.isCPU {
                let big = try model.session(batch: 1, frames: 21, height: 60, width: 104, contextRows: dit.textLen)
                let bx = Bench.random(dit.inDim * 21 * 60 * 104, seed: 10)
                device.resetPeakMemory()
                _ = try big.run(x: bx, timesteps: [999], context: context)
                // Tens of seconds a run with the scalar kernels: one timed run after the warm-up.
                let bigMs = try ModelsBench.medianMilliseconds(1) { _ = try big.run(x: bx, timesteps: [500], context: context) }
                if ProcessInfo.processInfo.environment["WAN_PROFILE"] == "1" { ModelsBench.printProfile(try big.graph.timings()) }
                rows.append(BenchRow(kernel: "DiT T2V-1.3B forward", shape: "latent 21x60x104 (32760 tokens), ctx 512",
                                     device: Bench.label(device), ms: bigMs,
                                     memoryBytes: device.memoryStatistics.peak, note: "peak device memory; PyTorch eager H100: 540 ms"))
                // The same forward in the fp16 mode: fp16 matmul weights, and on tensor cores the matmuls and
                // attentions with their activations rounded to fp16 (fp32 accumulation).
                let half = try WanDiT(config: dit, weights: try ModelsBench.randomWeights(dit.expectedTensors(), device: device),
                                      device: device, precision: .fp16)
                let hs = try half.session(batch: 1, frames: 21, height: 60, width: 104, contextRows: dit.textLen)
                device.resetPeakMemory()
                let ref = try big.run(x: bx, timesteps: [500], context: context)
                let got = try hs.run(x: bx, timesteps: [500], context: context)
                let halfMs = try ModelsBench.medianMilliseconds(repeats) { _ = try hs.run(x: bx, timesteps: [500], context: context) }
                if ProcessInfo.processInfo.environment["WAN_PROFILE"] == "1" { ModelsBench.printProfile(try hs.graph.timings()) }
                var diff = 0.0, scale = 1e-30
                for i in ref.indices { diff = max(diff, Double(abs(ref[i] - got[i]))); scale = max(scale, Double(abs(ref[i]))) }
                rows.append(BenchRow(kernel: "DiT T2V-1.3B forward, --precision fp16", shape: "latent 21x60x104 (32760 tokens), ctx 512",
                                     device: Bench.label(device), ms: halfMs, memoryBytes: device.memoryStatistics.peak,
                                     note: String(format: "peak device memory; max rel. diff to fp32 %.1e", diff / scale)))
            }
        }

        if part == "t5" {
            // umT5-XXL with 4 layers (of 24) at full width; the vocabulary trimmed to 32k rows (the gather
            // reads only the rows of the ids, so the table size does not change the time).
            let t5 = real ? WanT5Config(vocabSize: 32_000, numLayers: 4)
                : WanT5Config(vocabSize: 1000, dim: 256, dimAttn: 256, dimFFN: 640, numHeads: 4, numLayers: 2)
            let length = real ? 512 : 64
            let rss1 = CheckpointBench.resetPeakRSS()
            device.resetPeakMemory()
            let encoder = try UMT5Encoder(config: t5, weights: try ModelsBench.randomWeights(t5.expectedTensors(), device: device),
                                          device: device)
            let program = try encoder.compile(batch: 1, length: length, textLength: length)
            let ids = [(0..<length).map { Int32($0 * 7 % t5.vocabSize) }]
            try program.run(ids)
            let t5Ms = try ModelsBench.medianMilliseconds(repeats) { try program.run(ids) }
            rows.append(BenchRow(kernel: real ? "umT5-XXL encoder, \(t5.numLayers) of 24 layers" : "umT5 tiny (2 layers, dim 256)",
                                 shape: "L \(length)", device: Bench.label(device), ms: t5Ms,
                                 memoryBytes: device.isCPU ? CheckpointBench.peakRSS() - rss1 : device.memoryStatistics.peak,
                                 note: device.isCPU ? "peak host RSS" : "peak device memory"))
        }

        if part == "vae" {
            // VAE decode of 2 latent frames (5 video frames) at 240x416, one latent frame per chunk.
            let vaeConfig = real ? WanVAEConfig() : WanVAEConfig(dim: 8, dimMult: [1, 2, 2, 2], numResBlocks: 1)
            let (lh, lw) = real ? (30, 52) : (4, 6)
            let rss2 = CheckpointBench.resetPeakRSS()
            device.resetPeakMemory()
            let weights = try ModelsBench.randomWeights(vaeConfig.expectedTensors(), device: device)
            let vae = try WanVAE(config: vaeConfig, weights: weights, device: device)
            let latent = Bench.random(vaeConfig.zDim * 2 * lh * lw, seed: 9)
            let exact = try vae.decode(latent: latent, frames: 2, height: lh, width: lw)
            let vaeMs = try ModelsBench.medianMilliseconds(repeats) { _ = try vae.decode(latent: latent, frames: 2, height: lh, width: lw) }
            rows.append(BenchRow(kernel: real ? "VAE decode (Wan 2.1)" : "VAE decode tiny (dim 8)",
                                 shape: "2 latent frames -> 5 x \(8 * lh)x\(8 * lw)", device: Bench.label(device),
                                 ms: vaeMs,
                                 memoryBytes: device.isCPU ? CheckpointBench.peakRSS() - rss2 : device.memoryStatistics.peak,
                                 note: device.isCPU ? "peak host RSS" : "peak device memory"))
            if device.conv3dUsesTensorCores(x: .f32, weight: .f32, fp16Compute: true) {
                // The same decode with fp16-compute convolutions on tensor cores (`WanVAE.fp16Compute`).
                device.resetPeakMemory()
                let fast = try WanVAE(config: vaeConfig, weights: weights, device: device, fp16Compute: true)
                let video = try fast.decode(latent: latent, frames: 2, height: lh, width: lw)
                let ms = try ModelsBench.medianMilliseconds(repeats) { _ = try fast.decode(latent: latent, frames: 2, height: lh, width: lw) }
                let diff = zip(video, exact).map { abs($0 - $1) }.max() ?? 0
                rows.append(BenchRow(kernel: (real ? "VAE decode (Wan 2.1)" : "VAE decode tiny (dim 8)") + " fp16 compute",
                                     shape: "2 latent frames -> 5 x \(8 * lh)x\(8 * lw)", device: Bench.label(device), ms: ms,
                                     memoryBytes: device.memoryStatistics.peak,
                                     note: String(format: "peak device memory (the fp32 VAE's graphs alive too); max |diff| to fp32 %.1e", diff)))
            }
        }
    }
    return rows
}

enum ModelsBench {
    /// The median wall time in milliseconds of `repeats` runs of `body` (at least one).
    static func medianMilliseconds(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        var ms: [Double] = []
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            ms.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        return ms.sorted()[ms.count / 2]
    }

    /// With `WAN_PROFILE=1`: the last run's kernel times summed by kind (label up to the first space or colon).
    static func printProfile(_ timings: [(label: String, milliseconds: Double)]) {
        var total: [String: (ms: Double, count: Int)] = [:]
        for t in timings {
            let kind = String(t.label.prefix { $0 != " " && $0 != ":" && $0 != "(" })
            total[kind, default: (0, 0)].ms += t.milliseconds
            total[kind, default: (0, 0)].count += 1
        }
        let all = total.values.reduce(0) { $0 + $1.ms }
        print("profile (\(timings.count) kernels, \(String(format: "%.1f", all)) ms):")
        for (kind, v) in total.sorted(by: { $0.value.ms > $1.value.ms }).prefix(12) {
            print(String(format: "  %-28@ %5d  %10.1f ms  %5.1f%%", kind, v.count, v.ms, 100 * v.ms / max(all, 1e-9)))
        }
    }

    /// Random f32 weights of the given official shapes (norm weights near 1, others ~N(0, 0.02)-sized).
    static func randomWeights(_ specs: [TensorSpec], device: Device) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        var seed: UInt64 = 1
        for s in specs where !s.optional {
            seed &+= 1
            let n = s.shape.reduce(1, *)
            let isNorm = s.name.contains("norm") && s.shape.count == 1
            var v = Bench.random(n, seed: seed)
            for i in v.indices { v[i] = isNorm ? 1 + 0.1 * v[i] : 0.02 * v[i] }
            out[s.name] = try device.tensor(v, shape: s.shape)
        }
        return out
    }
}
