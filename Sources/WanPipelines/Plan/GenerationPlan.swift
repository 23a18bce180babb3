import Foundation
import WanModels
import WanRuntime

/// The device memory of a text-to-video generation, stage by stage, and the budget-saving steps that make it
/// fit a memory budget, computed without loading or running anything (`wan plan`).
///
/// Stages run one after another and each frees its model before the next loads, so the peak is the largest
/// stage. Each stage's activation memory comes from the very graphs the engine compiles (built from the
/// configurations with placeholder weights and planned by `Graph.footprint`), weights are counted exactly
/// (`expectedTensors()` × stored dtype):
/// 1. text: umT5 encodes the prompt and the negative prompt as a batch of 2 at the worst-case length
///    (`text_len`), weights as stored, fp32 activations, plus the copy of the context it hands over;
/// 2. DiT: the sampling loop's forward, with its inputs and RoPE table, cond + uncond as a batch of 2
///    (`cfgBatched`) or batch 1 twice, weights per precision, the later blocks optionally kept in host memory and
///    streamed each forward (`ditDeviceWeightBudget`, see `WanDiT.weightResidence`);
/// 3. VAE decode, one latent frame at a time: every chunk graph `WanVAE.decode` compiles and keeps (their arenas
///    and causal caches add up), plus the VAE's weights.
///
/// With a budget, the steps taken in order until a stage fits: the text encoder on the CPU, CFG as two passes,
/// DiT blocks streamed from host memory, the VAE decode in spatial tiles (diffusers' 256-pixel tiles every 192
/// pixels, one chunk graph alive at a time), the VAE on the CPU. When even the DiT's smallest option does not fit,
/// `fits` is false and `verdict` says by how much. Sizes are bytes of tensors (256-byte allocation padding, the
/// allocator's block granularity and driver overhead are not counted).
public struct GenerationPlan: Sendable {
    /// One stage of the generation.
    public struct Stage: Sendable, Equatable {
        /// `text encoder`, `dit` or `vae decode`.
        public var name: String
        /// Whether the stage runs on the CPU (its memory is host memory) instead of the device.
        public var onCPU: Bool
        /// Bytes of all the stage's weights as stored.
        public var weightBytes: Int
        /// Bytes of weights in device memory (0 on the CPU; less than `weightBytes` when blocks are streamed).
        public var deviceWeightBytes: Int
        /// Bytes of the activation arenas of the stage's compiled graphs.
        public var activationBytes: Int
        /// Other bytes the stage holds: graph inputs (latent, context, VAE causal caches), tables (RoPE, relative
        /// position buckets) and the text context's copy.
        public var otherBytes: Int
        /// Bytes of device memory the stage holds at once (0 on the CPU).
        public var deviceBytes: Int
        /// Bytes of host memory the stage's model needs: everything on the CPU, streamed weights on the device.
        public var hostBytes: Int
        /// How the stage runs (batch, chunks, streamed blocks).
        public var detail: String
        /// Whether the stage fits the budget where it runs (always on the CPU).
        public var fits: Bool
    }

    /// The DiT, umT5 and VAE configurations planned.
    public let dit: WanDiTConfig, t5: WanT5Config, vae: WanVAEConfig
    /// How the umT5 weights are stored (bf16 in the official file).
    public let t5WeightDType: DType
    /// Storage of the DiT's matmul weights.
    public let precision: WanDiT.Precision
    /// Video size and frame count.
    public let width: Int, height: Int, frames: Int
    /// The device memory budget in bytes (nil: no limit).
    public let budget: Int?
    /// A name for the model (`T2V-1.3B`, `tiny`, ...).
    public let modelName: String

    /// The three stages in order.
    public private(set) var stages: [Stage] = []
    /// Whether the text encoder runs on the CPU (its device stage does not fit the budget).
    public private(set) var textOnCPU = false
    /// Whether the DiT runs cond + uncond as one batch of 2 (false: two passes of batch 1).
    public private(set) var cfgBatched = true
    /// The device weight budget to load the DiT with (`WanDiT.load(deviceWeightBudget:)`) when blocks must be
    /// streamed from host memory; nil when every weight stays on the device.
    public private(set) var ditDeviceWeightBudget: Int?
    /// DiT blocks kept in host memory and streamed each forward.
    public private(set) var ditStreamedBlocks = 0
    /// The spatial tiling of the VAE decode in latent pixels (`WanVAE.Tiling(tile:stride:)`, diffusers' tiled
    /// decode: blended seams, not the official numerics) when whole frames do not fit; nil: whole frames.
    public private(set) var vaeTiling: (tile: Int, stride: Int)?
    /// Whether the VAE decodes on the CPU (its device stage does not fit the budget, tiled or not).
    public private(set) var vaeOnCPU = false
    /// Whether every stage fits the budget (always without one).
    public private(set) var fits = true
    /// The budget-saving steps taken, in order (empty without a budget or when everything fits as is).
    public private(set) var steps: [String] = []
    /// One sentence: fits (with the peak and the headroom) or does not (which stage, by how much, what could help).
    public private(set) var verdict = ""
    /// Bytes the smallest option of a stage that does not fit lacks (0 when everything fits).
    public private(set) var missingBytes = 0

    /// Latent frames `(frames − 1)/4 + 1`.
    public var latentFrames: Int { (frames - 1) / 4 + 1 }
    /// Latent height (pixels / 8).
    public var latentHeight: Int { height / 8 }
    /// Latent width (pixels / 8).
    public var latentWidth: Int { width / 8 }
    /// DiT tokens `F'·H'·W'`.
    public var tokens: Int { latentFrames * (latentHeight / max(dit.patchSize[1], 1)) * (latentWidth / max(dit.patchSize[2], 1)) }
    /// The largest device memory of any stage: the generation's peak.
    public var peakDeviceBytes: Int { stages.map(\.deviceBytes).max() ?? 0 }

    /// Plans a generation of `width`×`height`, `frames` frames. `budget`: device memory limit in bytes (nil: none);
    /// `maxArenaBytes`: the device's largest allocation (one activation arena at most; nil: no limit).
    /// `allowStreaming` / `allowVAETiling` / `allowCPU`: whether DiT blocks may be streamed, the VAE decode tiled,
    /// and the text encoder / VAE moved to the CPU to fit. Throws `GenerationError.invalidSettings` for a size that is not a positive multiple of 16, a
    /// frame count that is not 4k + 1, a non-positive budget, or components that do not fit together.
    public init(dit: WanDiTConfig, t5: WanT5Config, vae: WanVAEConfig, t5WeightDType: DType = .bf16,
                precision: WanDiT.Precision = .fp32, width: Int = 832, height: Int = 480, frames: Int = 81,
                budget: Int? = nil, maxArenaBytes: Int? = nil, allowStreaming: Bool = true, allowVAETiling: Bool = true,
                allowCPU: Bool = true, modelName: String? = nil) throws {
        func fail(_ s: String) throws -> Never { throw GenerationError.invalidSettings(s) }
        if width <= 0 || height <= 0 || width % 16 != 0 || height % 16 != 0 {
            try fail("size \(width)x\(height): width and height must be positive multiples of 16 (e.g. 832x480, 1280x720)")
        }
        if frames < 1 || (frames - 1) % 4 != 0 { try fail("\(frames) frames: the frame count must be 4k + 1 (1, 5, ..., 81)") }
        if let budget, budget <= 0 { try fail("memory budget \(budget) bytes must be positive") }
        if let maxArenaBytes, maxArenaBytes <= 0 { try fail("largest allocation \(maxArenaBytes) bytes must be positive") }
        guard dit.modelType == .t2v else { try fail("wan plan covers text-to-video DiTs; this one is \(dit.modelType.rawValue)") }
        guard dit.textDim == t5.dim else { try fail("the umT5 width \(t5.dim) is not the DiT's text_dim \(dit.textDim)") }
        guard dit.inDim == vae.zDim, dit.outDim == vae.zDim else {
            try fail("the DiT takes \(dit.inDim) latent channels, the VAE has \(vae.zDim)")
        }
        guard t5WeightDType.isComputeFloat else { try fail("umT5 weights are f32, f16 or bf16, not \(t5WeightDType)") }
        do {
            try dit.validate()
            try t5.validate()
            try vae.validate()
        } catch { try fail("\(error)") }
        self.dit = dit
        self.t5 = t5
        self.vae = vae
        self.t5WeightDType = t5WeightDType
        self.precision = precision
        self.width = width
        self.height = height
        self.frames = frames
        self.budget = budget
        self.modelName = modelName ?? GenerationPlan.name(of: dit)
        let arena = maxArenaBytes ?? Int.max
        do {
            try planText(arena: arena, allowCPU: allowCPU)
            try planDiT(arena: arena, allowStreaming: allowStreaming)
            try planVAE(arena: arena, allowTiling: allowVAETiling, allowCPU: allowCPU)
        } catch let e as GenerationError {
            throw e
        } catch {
            try fail("\(error)")
        }
        fits = stages.allSatisfy(\.fits)
        verdict = makeVerdict()
    }

    /// `T2V-1.3B`, `T2V-14B`, ... for a released configuration, else `custom DiT (dim D, N layers)`.
    static func name(of dit: WanDiTConfig) -> String {
        if let v = WanDiTVariant.allCases.first(where: { $0.config == dit }) { return v.rawValue }
        if dit == TinyWanModel.ditConfig { return "tiny" }
        return "custom DiT (dim \(dit.dim), \(dit.numLayers) layers)"
    }

    private func allows(_ bytes: Int) -> Bool { budget.map { bytes <= $0 } ?? true }

    // MARK: stages

    private mutating func planText(arena: Int, allowCPU: Bool) throws {
        let length = dit.textLen
        let encoder = try UMT5Encoder(shapeOnly: t5, weightDType: t5WeightDType)
        let f = try encoder.footprint(batch: 2, length: length, textLength: length, maxArenaBytes: arena)
        let weights = t5.expectedTensors().reduce(0) { $0 + $1.shape.reduce(1, *) } * t5WeightDType.size
        let contextCopy = 2 * length * t5.dim * encoder.activationDType.size     // `UMT5Encoder.encode` hands a copy over
        let other = f.inputBytes + f.parameterBytes + contextCopy
        let total = weights + f.activationBytes + other
        let detail = "prompt + negative prompt as a batch of 2, \(length) tokens (worst case), weights \(t5WeightDType), fp32 activations"
        if allows(total) || !allowCPU {
            stages.append(Stage(name: "text encoder", onCPU: false, weightBytes: weights, deviceWeightBytes: weights,
                                activationBytes: f.activationBytes, otherBytes: other, deviceBytes: total, hostBytes: 0,
                                detail: detail + "; freed before the DiT loads", fits: allows(total)))
        } else {
            textOnCPU = true
            steps.append("text encoder on the CPU: on the device it would need \(MemorySize.format(total))")
            stages.append(Stage(name: "text encoder", onCPU: true, weightBytes: weights, deviceWeightBytes: 0,
                                activationBytes: f.activationBytes, otherBytes: other, deviceBytes: 0, hostBytes: total,
                                detail: detail, fits: true))
        }
    }

    /// The DiT stage with `batch` and a device weight budget (nil: every weight on the device).
    private func ditStage(batch: Int, weightBudget: Int?, arena: Int) throws -> (stage: Stage, streamed: Int) {
        let model = try WanDiT(shapeOnly: dit, precision: precision, deviceWeightBudget: weightBudget)
        let f = try model.footprint(batch: batch, frames: latentFrames, height: latentHeight, width: latentWidth,
                                    contextRows: dit.textLen, maxArenaBytes: arena)
        let w = try WanDiT.weightBytes(config: dit, precision: precision, deviceWeightBudget: weightBudget)
        let other = f.inputBytes + f.parameterBytes
        let total = w.device + f.activationBytes + other
        var detail = batch == 2 ? "cond + uncond as a batch of 2" : "cond and uncond as two passes of batch 1"
        detail += ", \(tokens) tokens, weights \(precision.rawValue)"
        if model.streamedBlocks > 0 {
            detail += ", \(model.streamedBlocks) of \(dit.numLayers) blocks streamed from host memory each forward"
                + " (\(MemorySize.format(w.device)) of weights in device memory; the streamed copies are activations)"
        }
        return (Stage(name: "dit", onCPU: false, weightBytes: w.device + w.host, deviceWeightBytes: w.device,
                      activationBytes: f.activationBytes, otherBytes: other, deviceBytes: total, hostBytes: w.host,
                      detail: detail, fits: allows(total)), model.streamedBlocks)
    }

    private mutating func planDiT(arena: Int, allowStreaming: Bool) throws {
        let batched = try ditStage(batch: 2, weightBudget: nil, arena: arena).stage
        if batched.fits {
            stages.append(batched)
            return
        }
        let single = try ditStage(batch: 1, weightBudget: nil, arena: arena).stage
        cfgBatched = false
        steps.append("CFG as two passes of batch 1: a batch of 2 would need \(MemorySize.format(batched.deviceBytes))")
        if single.fits || !allowStreaming {
            stages.append(single)
            return
        }
        // Stream the later blocks: the most resident blocks k (0 ≤ k < layers) whose plan fits.
        let (outside, blocks) = WanDiT.blockWeightBytes(config: dit, precision: precision)
        let largest = blocks.max() ?? 0
        func weightBudget(_ k: Int) -> Int { outside + blocks[0..<k].reduce(0, +) + largest }
        var best: (stage: Stage, streamed: Int, budget: Int)?
        var smallest: (stage: Stage, streamed: Int)?
        var lo = 0, hi = blocks.count - 1
        while lo <= hi {
            let k = (lo + hi) / 2
            let s = try ditStage(batch: 1, weightBudget: weightBudget(k), arena: arena)
            if k == 0 { smallest = s }
            if s.stage.fits {
                best = (s.stage, s.streamed, weightBudget(k))
                lo = k + 1
            } else {
                hi = k - 1
            }
        }
        if let best {
            ditDeviceWeightBudget = best.budget
            ditStreamedBlocks = best.streamed
            steps.append("stream \(best.streamed) of \(dit.numLayers) DiT blocks from host memory (device weight budget \(MemorySize.format(best.budget))): with every weight on the device it would need \(MemorySize.format(single.deviceBytes))")
            stages.append(best.stage)
        } else if let smallest {
            // Not even every block streamed fits (binary search ended at k = 0): show that smallest option.
            ditDeviceWeightBudget = weightBudget(0)
            ditStreamedBlocks = smallest.streamed
            stages.append(smallest.stage)
        } else {
            stages.append(single)
        }
    }

    /// diffusers' tiled-decode defaults in latent pixels (256-pixel tiles every 192 pixels), as `WanVAE.Tiling.standard`.
    static let standardTiling = (tile: 32, stride: 24)

    private mutating func planVAE(arena: Int, allowTiling: Bool, allowCPU: Bool) throws {
        let model = try WanVAE(shapeOnly: vae)
        let weights = WanVAE.weightBytes(config: vae)
        func stage(_ graphs: [GraphFootprintSummary], _ detail: String) -> Stage {
            // One chunk graph is alive at a time: the largest sets the stage's memory.
            let largest = graphs.max { $0.activations + $0.other < $1.activations + $1.other }
            let activations = largest?.activations ?? 0
            let other = largest?.other ?? 0
            let total = weights + activations + other
            return Stage(name: "vae decode", onCPU: false, weightBytes: weights, deviceWeightBytes: weights,
                         activationBytes: activations, otherBytes: other, deviceBytes: total, hostBytes: 0,
                         detail: detail, fits: allows(total))
        }
        let frames = try model.decodeFootprints(frames: latentFrames, height: latentHeight, width: latentWidth, maxArenaBytes: arena)
            .map { GraphFootprintSummary(activations: $0.activationBytes, other: $0.inputBytes + $0.parameterBytes) }
        let whole = stage(frames, "one latent frame at a time: \(frames.count) chunk graph(s), one alive at a time, causal caches on the device")
        if whole.fits {
            stages.append(whole)
            return
        }
        var smallest = whole
        let t = GenerationPlan.standardTiling
        if allowTiling && (latentHeight > t.tile || latentWidth > t.tile) {
            let graphs = try model.tiledDecodeFootprints(frames: latentFrames, height: latentHeight, width: latentWidth,
                                                         tile: t.tile, stride: t.stride, maxArenaBytes: arena)
                .map { GraphFootprintSummary(activations: $0.activationBytes, other: $0.inputBytes + $0.parameterBytes) }
            let tiled = stage(graphs, "in tiles of \(8 * t.tile) px every \(8 * t.stride) px (diffusers' tiled decode, blended seams), one latent frame at a time: \(graphs.count) chunk graph(s) over the tile sizes, one alive at a time")
            if tiled.fits {
                vaeTiling = t
                steps.append("VAE decode in tiles of \(8 * t.tile) px (blended seams, not the official numerics): whole frames would need \(MemorySize.format(whole.deviceBytes))")
                stages.append(tiled)
                return
            }
            if tiled.deviceBytes < smallest.deviceBytes { smallest = tiled }
        }
        if allowCPU {
            vaeOnCPU = true
            steps.append("VAE decode on the CPU (slow): on the device it would need \(MemorySize.format(smallest.deviceBytes))\(smallest.detail.hasPrefix("in tiles") ? " even in tiles" : "")")
            var cpu = whole
            (cpu.onCPU, cpu.deviceWeightBytes, cpu.hostBytes, cpu.deviceBytes, cpu.fits) = (true, 0, whole.deviceBytes, 0, true)
            stages.append(cpu)
        } else {
            if smallest.detail.hasPrefix("in tiles") { vaeTiling = t }
            stages.append(smallest)
        }
    }

    /// What the plan keeps of a chunk graph's footprint.
    private struct GraphFootprintSummary {
        var activations: Int, other: Int
    }

    private mutating func makeVerdict() -> String {
        let peak = peakDeviceBytes
        guard let budget else { return "peak device memory \(MemorySize.format(peak)) (\(MemorySize.formatGiB(peak))), no budget" }
        if fits {
            return "fits: peak device memory \(MemorySize.format(peak)) (\(MemorySize.formatGiB(peak))) of a \(MemorySize.format(budget)) budget, \(MemorySize.format(budget - peak)) to spare"
        }
        let over = stages.filter { !$0.fits }
        missingBytes = over.map { $0.deviceBytes - budget }.max() ?? 0
        var s = "does not fit: " + over.map { "\($0.name) needs \(MemorySize.format($0.deviceBytes)) at least" }.joined(separator: ", ")
        s += ", \(MemorySize.format(missingBytes)) more than the \(MemorySize.format(budget)) budget"
        if over.contains(where: { $0.name == "dit" }) {
            s += ditStreamedBlocks > 0 ? " (the DiT with every block streamed from host memory)" : ""
            s += "; a lower precision (--precision bf16 or fp8) or a smaller size would help"
        }
        return s
    }

    // MARK: output

    /// A table of the stages (device, weights, activations, other, device memory, host memory), the steps and the verdict.
    public var table: String {
        func pad(_ s: String, _ n: Int, right: Bool = true) -> String {
            s.count >= n ? s : right ? String(repeating: " ", count: n - s.count) + s : s + String(repeating: " ", count: n - s.count)
        }
        func size(_ b: Int) -> String { b == 0 ? "-" : MemorySize.format(b) }
        var lines: [String] = []
        lines.append("\(modelName): \(width)x\(height), \(frames) frame(s) (latent \(vae.zDim)x\(latentFrames)x\(latentHeight)x\(latentWidth), \(tokens) DiT tokens), DiT \(precision.rawValue), umT5 \(t5WeightDType)")
        lines.append("budget: " + (budget.map { "\(MemorySize.format($0)) (\(MemorySize.formatGiB($0)))" } ?? "none"))
        lines.append("")
        lines.append(pad("stage", 13, right: false) + pad("runs on", 8, right: false) + pad("weights", 11) + pad("activations", 13)
                     + pad("other", 10) + pad("device", 11) + pad("host", 11))
        for s in stages {
            lines.append(pad(s.name, 13, right: false) + pad(s.onCPU ? "cpu" : "device", 8, right: false) + pad(size(s.weightBytes), 11)
                         + pad(size(s.activationBytes), 13) + pad(size(s.otherBytes), 10) + pad(size(s.deviceBytes), 11)
                         + pad(size(s.hostBytes), 11))
        }
        lines.append("")
        for s in stages { lines.append("\(s.name): \(s.detail)") }
        lines.append("")
        lines.append("peak device memory: \(MemorySize.format(peakDeviceBytes)) (\(MemorySize.formatGiB(peakDeviceBytes)), the largest stage; stages run one after another)")
        if steps.isEmpty {
            lines.append("budget-saving steps: none needed")
        } else {
            lines.append("budget-saving steps:")
            for s in steps { lines.append("  - \(s)") }
        }
        lines.append(verdict)
        return lines.joined(separator: "\n")
    }

    /// The plan as a JSON object (sizes in bytes), keys sorted.
    public func json() throws -> Data {
        let stageObjects: [[String: Any]] = stages.map {
            ["name": $0.name, "device": $0.onCPU ? "cpu" : "device", "weightBytes": $0.weightBytes,
             "deviceWeightBytes": $0.deviceWeightBytes, "activationBytes": $0.activationBytes, "otherBytes": $0.otherBytes,
             "deviceBytes": $0.deviceBytes, "hostBytes": $0.hostBytes, "detail": $0.detail, "fits": $0.fits]
        }
        var object: [String: Any] = [
            "model": modelName, "dit": dit.description, "t5": t5.description, "vae": vae.description,
            "t5WeightDType": "\(t5WeightDType)", "precision": precision.rawValue,
            "width": width, "height": height, "frames": frames,
            "latent": [vae.zDim, latentFrames, latentHeight, latentWidth], "tokens": tokens,
            "stages": stageObjects, "peakDeviceBytes": peakDeviceBytes,
            "textOnCPU": textOnCPU, "cfgBatched": cfgBatched, "ditStreamedBlocks": ditStreamedBlocks, "vaeOnCPU": vaeOnCPU,
            "vaeTiling": vaeTiling.map { ["tile": $0.tile, "stride": $0.stride] as [String: Any] } ?? NSNull(),
            "fits": fits, "steps": steps, "verdict": verdict, "missingBytes": missingBytes,
        ]
        object["budget"] = budget ?? NSNull()
        object["ditDeviceWeightBudget"] = ditDeviceWeightBudget ?? NSNull()
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}
