import Foundation
import WanModels
import WanRuntime

/// The command line of `wan plan`, parsed and checked: which model (a released preset, the tiny one, or
/// checkpoint files whose configurations are read from their tensor headers), the video size, the DiT precision,
/// and the memory budget (given, or the device's).
public struct PlanArguments: Sendable, Equatable {
    /// `--model`: `1.3b`, `14b` or `tiny` (default `1.3b`).
    public var model = "1.3b"
    /// `--dit`, `--t5`, `--vae`: checkpoint files replacing the preset's component (headers read, no weights).
    public var ditFile: String?, t5File: String?, vaeFile: String?
    /// `--heads N`: the DiT's `num_heads` when neither its shapes (dim / 128) nor a `config.json` next to it tell.
    public var ditHeads: Int?
    /// `--size WxH` (default 832x480; the tiny model's own default for `--model tiny`).
    public var width = 832, height = 480
    /// `--frames N`, 4k + 1 (default 81).
    public var frames = 81
    /// `--precision` of the DiT's matmul weights.
    public var precision: WanDiT.Precision = .fp32
    /// `--vram-budget SIZE` in bytes; nil: the device's device-local memory (none for the CPU).
    public var budget: Int?
    /// `--device`: whose memory is the default budget (`auto`, `cpu`, `vulkan:N`).
    public var device = "auto"
    /// `--json`: print the plan as JSON.
    public var json = false

    /// The usage text.
    public static let usage = """
        wan plan [--model 1.3b|14b|tiny] [--dit FILE [--heads N]] [--t5 FILE] [--vae FILE] [--size WxH] [--frames N]
                 [--precision fp32|fp16|bf16|fp8] [--vram-budget SIZE] [--device auto|cpu|vulkan:N] [--json]
            Prints, without loading or running anything, the weights, activations and peak device memory of each
            stage (umT5, DiT, VAE decode) and the budget-saving steps a generation takes. Checkpoint files give
            their configurations (tensor headers only). SIZE: 8GB, 7.5GiB, 8192MiB, ...; default: the device's
            memory (no budget for cpu).
        """

    public init() {}

    /// Parses `args` (after `plan`); throws `GenerationError.invalidSettings` naming the problem: an unknown
    /// option or model, a size that is not WxH in positive multiples of 16, a frame count that is not 4k + 1,
    /// a budget that is not a positive memory size.
    public static func parse(_ args: [String]) throws -> PlanArguments {
        var a = PlanArguments()
        var i = 0
        var sizeGiven = false, framesGiven = false
        func fail(_ s: String) throws -> Never { throw GenerationError.invalidSettings(s) }
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < args.count else { try fail("\(flag) needs a value") }
            return args[i]
        }
        while i < args.count {
            let flag = args[i]
            switch flag {
            case "--model":
                let v = try value(flag).lowercased()
                guard ["1.3b", "14b", "tiny"].contains(v) else { try fail("--model \(v): expected 1.3b, 14b or tiny (or --dit/--t5/--vae FILE)") }
                a.model = v
            case "--dit": a.ditFile = try value(flag)
            case "--heads":
                let v = try value(flag)
                guard let n = Int(v), n > 0 else { try fail("--heads \(v): expected a positive whole number") }
                a.ditHeads = n
            case "--t5", "--text-encoder": a.t5File = try value(flag)
            case "--vae": a.vaeFile = try value(flag)
            case "--size":
                let v = try value(flag)
                let parts = v.lowercased().split(separator: "x", omittingEmptySubsequences: false)
                guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]) else {
                    try fail("--size needs WIDTHxHEIGHT (e.g. 832x480), got '\(v)'")
                }
                guard w > 0, h > 0, w % 16 == 0, h % 16 == 0 else {
                    try fail("--size \(v): width and height must be positive multiples of 16 (e.g. 832x480, 1280x720)")
                }
                (a.width, a.height) = (w, h)
                sizeGiven = true
            case "--frames":
                let v = try value(flag)
                guard let n = Int(v), n >= 1, (n - 1) % 4 == 0 else {
                    try fail("--frames \(v): the frame count must be 4k + 1 (1, 5, 9, ..., 81)")
                }
                a.frames = n
                framesGiven = true
            case "--precision":
                let v = try value(flag)
                guard let p = WanDiT.Precision(rawValue: v.lowercased()) else {
                    try fail("--precision \(v): expected \(WanDiT.Precision.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                a.precision = p
            case "--vram-budget", "--budget":
                let v = try value(flag)
                do { a.budget = try MemorySize.parse(v) } catch { try fail("--vram-budget: \(error)") }
            case "--device": a.device = try value(flag)
            case "--json": a.json = true
            default: try fail("unknown option '\(flag)' for plan")
            }
            i += 1
        }
        if a.model == "tiny" {
            if !sizeGiven { (a.width, a.height) = (TinyWanModel.defaultWidth, TinyWanModel.defaultHeight) }
            if !framesGiven { a.frames = TinyWanModel.defaultFrames }
        }
        return a
    }

    /// The configurations planned: the preset's, each replaced by the one detected in its file (tensor headers
    /// only), and how the umT5 weights are stored (the file's dtype as `TextToVideo` keeps it; bf16 for the
    /// presets, f32 for the tiny model). Throws `GenerationError.modelFiles` for an unreadable or wrong file.
    public func configurations() throws -> (dit: WanDiTConfig, t5: WanT5Config, vae: WanVAEConfig, t5WeightDType: DType, name: String?) {
        var dit: WanDiTConfig, t5: WanT5Config, vae: WanVAEConfig, t5DType: DType
        var name: String?
        switch model {
        case "tiny":
            (dit, t5, vae, t5DType, name) = (TinyWanModel.ditConfig, TinyWanModel.t5Config, TinyWanModel.vaeConfig, .f32, "tiny")
        case "14b": (dit, t5, vae, t5DType) = (.t2v14B, .umt5XXL, .wan21, .bf16)
        default: (dit, t5, vae, t5DType) = (.t2v1_3B, .umt5XXL, .wan21, .bf16)
        }
        func detect(_ path: String, _ component: WanComponent, numHeads: Int? = nil, textLen: Int = 512,
                    eps: Double = 1e-6) throws -> (WanModelConfig, [TensorEntry], String) {
            do {
                let reader = try CheckpointFile.open(path)
                let options = WanDetectionOptions(component: component, allowCustom: true, numHeads: numHeads, textLen: textLen, eps: eps)
                let d = try WanCheckpointDetector.detect(reader.entries, options: options)
                return (d.config, reader.entries, d.variantName)
            } catch {
                throw GenerationError.modelFiles("\(path): \(error)")
            }
        }
        if let ditFile {
            // What shapes cannot tell (num_heads, text_len, eps) comes from a config.json beside the file, as
            // `TextToVideo` reads it, or from --heads.
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: ditFile, isDirectory: &isDir)
            let folder = isDir.boolValue ? ditFile : (ditFile as NSString).deletingLastPathComponent
            let json = try? ComponentForward.ditConfig(fromJSON: (folder as NSString).appendingPathComponent("config.json"))
            guard case let (.dit(c), _, variant) = try detect(ditFile, .dit, numHeads: ditHeads ?? json?.numHeads,
                                                               textLen: json?.textLen ?? 512, eps: json?.eps ?? 1e-6) else {
                throw GenerationError.modelFiles("\(ditFile): not a DiT checkpoint")
            }
            dit = c
            name = variant == "custom" ? nil : variant
        }
        if let t5File {
            guard case let (.t5(c), entries, _) = try detect(t5File, .t5) else { throw GenerationError.modelFiles("\(t5File): not a umT5 checkpoint") }
            t5 = c
            t5DType = TextToVideo.textEncoderWeightDType(entries)   // as `TextToVideo` loads it
        }
        if let vaeFile {
            guard case let (.vae(c), _, _) = try detect(vaeFile, .vae) else { throw GenerationError.modelFiles("\(vaeFile): not a VAE checkpoint") }
            vae = c
        }
        return (dit, t5, vae, t5DType, name)
    }

    /// The budget and the largest allocation of `device`: `--vram-budget` or the device's device-local memory
    /// (none for the CPU), and its `maxMemoryAllocationSize`/`maxBufferSize` (an activation arena's limit).
    /// Reads Vulkan capabilities without opening a device; `auto` picks as `Device.open` does.
    public func deviceLimits() throws -> (budget: Int?, maxAllocation: Int?, device: String) {
        let s = device.lowercased()
        if s == "cpu" { return (budget, nil, "cpu") }
        let list: [Device.VulkanDeviceInfo]
        do { list = try Device.enumerateVulkan() } catch {
            if s == "auto" { return (budget, nil, "cpu") }
            throw GenerationError.invalidSettings("--device \(device): no Vulkan (\(error))")
        }
        var chosen: Device.VulkanDeviceInfo?
        if s == "auto" {
            for kind in ["discrete", "integrated", "virtual"] where chosen == nil {
                chosen = list.first { $0.capabilities.deviceType == kind }
            }
            guard chosen != nil else { return (budget, nil, "cpu") }
        } else {
            let index = s == "vulkan" ? 0 : s.hasPrefix("vulkan:") ? Int(s.dropFirst("vulkan:".count)) : nil
            guard let index, let info = list.first(where: { $0.index == index }) else {
                throw GenerationError.invalidSettings("--device \(device): expected auto, cpu or vulkan:N with N < \(list.count)")
            }
            chosen = info
        }
        guard let info = chosen else { return (budget, nil, "cpu") }
        let c = info.capabilities
        return (budget ?? c.deviceLocalBytes, min(c.maxMemoryAllocationSize, c.maxBufferSize), "vulkan:\(info.index) (\(c.deviceName))")
    }

    /// The plan of these arguments (configurations from the files, budget from the device).
    public func plan() throws -> (plan: GenerationPlan, device: String) {
        let c = try configurations()
        let limits = try deviceLimits()
        let plan = try GenerationPlan(dit: c.dit, t5: c.t5, vae: c.vae, t5WeightDType: c.t5WeightDType, precision: precision,
                                      width: width, height: height, frames: frames, budget: limits.budget,
                                      maxArenaBytes: limits.maxAllocation, modelName: c.name)
        return (plan, limits.device)
    }
}
