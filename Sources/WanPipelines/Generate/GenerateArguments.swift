import Foundation
import WanModels

/// The command line of `wan generate`, parsed and checked before any work starts.
public struct GenerateArguments: Sendable, Equatable {
    /// `--model`: paths (folders and files), or ["tiny"].
    public var models: [String] = []
    /// `--tokenizer`: a tokenizer file overriding the one found with the model.
    public var tokenizer: String?
    /// The generation settings (prompt, size, frames, sampler...).
    public var settings = GenerationSettings(prompt: "")
    /// `--device` and the per-stage overrides `--text-device`, `--dit-device`, `--vae-device`.
    public var device = "auto", textDevice: String?, ditDevice: String?, vaeDevice: String?
    /// `--out`; nil: `wan-<seed>.mp4` when ffmpeg is installed, else `.y4m` (`.png` for one frame).
    public var output: String?
    /// `--quiet`: no progress display.
    public var quiet = false
    /// Whether the seed was chosen at random (no `--seed`).
    public var randomSeed = true

    /// Whether the built-in tiny model is asked for.
    public var isTiny: Bool { models == ["tiny"] }

    /// The usage text.
    public static let usage = """
        wan generate --model PATH... | --model tiny --prompt TEXT [--negative-prompt TEXT] [--size WxH]
                     [--frames N] [--steps N] [--shift S] [--guidance G] [--sampler unipc|dpm++|euler] [--seed N]
                     [--noise FILE.safetensors] [--precision fp32|fp16|bf16|fp8] [--cfg batch|sequential] [--fps N]
                     [--device D] [--text-device D] [--dit-device D] [--vae-device D] [--tokenizer FILE]
                     [--out video.mp4|video.y4m|image.png|frames/|frames/%04d.png] [--vram-budget SIZE]
                     [--vae-tiling on|off|TILE/STRIDE] [--vae-precision fp32|fp16] [--no-cpu-fallback] [--quiet]
        """

    public init() {}

    /// Parses `args` (after `generate`). `--model` takes every following value up to the next option. Sizes,
    /// frames, steps and the rest are validated here (`GenerationSettings.validate`); the tiny model's defaults
    /// (`TinyWanModel`) apply where the user gave no size, frames or steps. Throws
    /// `GenerationError.invalidSettings` naming the problem.
    public static func parse(_ args: [String]) throws -> GenerateArguments {
        var a = GenerateArguments()
        var given = Set<String>()
        var i = 0
        func fail(_ s: String) throws -> Never { throw GenerationError.invalidSettings(s) }
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < args.count else { try fail("\(flag) needs a value") }
            return args[i]
        }
        func int(_ flag: String) throws -> Int {
            let v = try value(flag)
            guard let n = Int(v) else { try fail("\(flag) needs a whole number, got '\(v)'") }
            return n
        }
        func double(_ flag: String) throws -> Double {
            let v = try value(flag)
            guard let d = Double(v), d.isFinite else { try fail("\(flag) needs a number, got '\(v)'") }
            return d
        }
        var prompt: String?
        while i < args.count {
            let flag = args[i]
            given.insert(flag)
            switch flag {
            case "--model":
                var any = false
                while i + 1 < args.count, !args[i + 1].hasPrefix("--") {
                    i += 1
                    a.models.append(args[i])
                    any = true
                }
                if !any { try fail("--model needs a path (or tiny)") }
            case "--tokenizer": a.tokenizer = try value(flag)
            case "--prompt": prompt = try value(flag)
            case "--negative-prompt", "--negative": a.settings.negativePrompt = try value(flag)
            case "--size":
                let v = try value(flag)
                let parts = v.lowercased().split(separator: "x")
                guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]) else {
                    try fail("--size needs WIDTHxHEIGHT (e.g. 832x480), got '\(v)'")
                }
                (a.settings.width, a.settings.height) = (w, h)
            case "--frames": a.settings.frames = try int(flag)
            case "--steps": a.settings.steps = try int(flag)
            case "--shift": a.settings.shift = try double(flag)
            case "--guidance", "--guide-scale": a.settings.guidance = Float(try double(flag))
            case "--sampler":
                let v = try value(flag)
                guard let s = SamplerKind(rawValue: v.lowercased()) ?? (v.lowercased() == "dpmpp" ? .dpmPlusPlus : nil) else {
                    try fail("--sampler \(v): expected unipc, dpm++ or euler")
                }
                a.settings.sampler = s
            case "--seed":
                let v = try value(flag)
                guard let s = UInt64(v) else { try fail("--seed needs a whole number ≥ 0, got '\(v)'") }
                a.settings.seed = s
                a.randomSeed = false
            case "--noise": a.settings.noisePath = try value(flag)
            case "--precision":
                let v = try value(flag)
                guard let p = WanDiT.Precision(rawValue: v) else { try fail("--precision \(v): expected fp32, fp16, bf16 or fp8") }
                a.settings.precision = p
            case "--cfg":
                let v = try value(flag)
                guard let m = GenerationSettings.CFGMode(rawValue: v) else { try fail("--cfg \(v): expected batch or sequential") }
                a.settings.cfgMode = m
            case "--fps": a.settings.fps = try int(flag)
            case "--device": a.device = try value(flag)
            case "--text-device": a.textDevice = try value(flag)
            case "--dit-device": a.ditDevice = try value(flag)
            case "--vae-device": a.vaeDevice = try value(flag)
            case "--out", "--output", "-o": a.output = try value(flag)
            case "--quiet", "-q": a.quiet = true
            case "--no-cpu-fallback": a.settings.allowCPUFallback = false
            case "--vram-budget": a.settings.vramBudget = try MemorySize.parse(try value(flag))
            case "--vae-precision":
                let v = try value(flag)
                guard ["fp32", "fp16"].contains(v) else { try fail("--vae-precision \(v): expected fp32 or fp16") }
                a.settings.vaeFP16Compute = v == "fp16"
            case "--vae-tiling":
                // "on" (256-pixel tiles every 192 pixels, as diffusers), "off", or TILE/STRIDE in pixels.
                let v = try value(flag).lowercased()
                switch v {
                case "on": a.settings.vaeTiling = .standard
                case "off": (a.settings.vaeTiling, a.settings.autoVAETiling) = (nil, false)
                default:
                    let parts = v.split(separator: "/").compactMap { Int($0) }
                    guard parts.count == 2, parts[0] % 8 == 0, parts[1] % 8 == 0, parts[1] > 0, parts[0] >= parts[1] else {
                        try fail("--vae-tiling \(v): expected on, off or TILE/STRIDE in pixels, multiples of 8 (e.g. 256/192)")
                    }
                    a.settings.vaeTiling = WanVAE.Tiling(tile: parts[0] / 8, stride: parts[1] / 8)
                }
            default: try fail("unknown option '\(flag)' for generate")
            }
            i += 1
        }
        guard let prompt, !prompt.isEmpty else { try fail("--prompt is required") }
        a.settings.prompt = prompt
        guard !a.models.isEmpty else { try fail("--model is required: model files or folders, or --model tiny") }
        if a.models.contains("tiny") && a.models.count > 1 { try fail("--model tiny takes no other path") }
        if a.isTiny {
            if !given.contains("--size") { (a.settings.width, a.settings.height) = (TinyWanModel.defaultWidth, TinyWanModel.defaultHeight) }
            if !given.contains("--frames") { a.settings.frames = TinyWanModel.defaultFrames }
            if !given.contains("--steps") { a.settings.steps = TinyWanModel.defaultSteps }
        }
        if a.randomSeed { a.settings.seed = UInt64.random(in: 0...UInt64(Int32.max)) }
        try a.settings.validate()
        return a
    }

    /// The output path: `--out`, or `wan-<seed>.png` for one frame, `.mp4` when ffmpeg is found, `.y4m` otherwise.
    public func resolvedOutput(ffmpegAvailable: Bool) -> String {
        if let output { return output }
        let stem = "wan-\(settings.seed)"
        if settings.frames == 1 { return stem + ".png" }
        return stem + (ffmpegAvailable ? ".mp4" : ".y4m")
    }
}
