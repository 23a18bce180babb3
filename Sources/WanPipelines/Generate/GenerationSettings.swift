import WanModels

/// Everything that decides what a text-to-video run computes (spec §1.2, §2.4), with the official T2V defaults.
public struct GenerationSettings: Sendable, Equatable {
    /// The official default negative prompt (spec §2.4), used when the user gives none.
    public static let defaultNegativePrompt =
        "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"

    /// How the conditional and unconditional passes of classifier-free guidance run.
    public enum CFGMode: String, Sendable, CaseIterable {
        /// As one batch of 2 (faster; twice the activation memory).
        case batch
        /// As two passes of batch 1 (half the activation memory).
        case sequential
    }

    /// The prompt.
    public var prompt: String
    /// The negative prompt; nil: the official default.
    public var negativePrompt: String?
    /// Video width and height in pixels (multiples of 16).
    public var width: Int = 832, height: Int = 480
    /// Frame count, 4k + 1 (1 is an image).
    public var frames: Int = 81
    /// Sampling steps.
    public var steps: Int = 50
    /// Flow shift.
    public var shift: Double = 5
    /// Classifier-free guidance scale (1: the conditional pass alone, which equals CFG at scale 1).
    public var guidance: Float = 5
    /// The sampler.
    public var sampler: SamplerKind = .unipc
    /// The seed of the project's noise generator (`SeededNoise`).
    public var seed: UInt64 = 0
    /// A `.safetensors` file whose tensor `noise` (or only tensor) [16, T, H/8, W/8] replaces the seeded noise.
    public var noisePath: String?
    /// Storage of the DiT's matmul weights.
    public var precision: WanDiT.Precision = .fp32
    /// VAE convolutions with fp16 operands on tensor cores (`WanVAE.fp16Compute`, `--vae-precision fp16`); false:
    /// fp32 as the official code.
    public var vaeFP16Compute = false
    /// Classifier-free guidance as a batch of 2 or two passes; nil: a batch of 2 unless the memory plan needs
    /// two passes.
    public var cfgMode: CFGMode?
    /// Frames per second of the video file.
    public var fps: Int = 16
    /// Run a stage on the CPU, reported, when its Vulkan device runs out of memory or lacks a feature it needs.
    public var allowCPUFallback = true
    /// Decode with spatial VAE tiles (less device memory for large frames; the video is assembled on the
    /// host and written at the end); nil: whole frames, each written as soon as it is decoded, unless the
    /// memory plan needs tiles and `autoVAETiling` allows them.
    public var vaeTiling: WanVAE.Tiling?
    /// Whether the memory plan may choose tiles when whole frames do not fit the device (`--vae-tiling off`
    /// forbids it).
    public var autoVAETiling = true
    /// The device memory the run may use (`--vram-budget`); nil: the device's own memory. The run is planned
    /// against it (`GenerationPlan`): text encoder on the CPU, CFG as two passes, DiT blocks streamed, VAE in
    /// tiles or on the CPU, as needed, each step reported.
    public var vramBudget: Int?

    /// Settings for `prompt` with the official defaults.
    public init(prompt: String) {
        self.prompt = prompt
    }

    /// The negative prompt the run uses.
    public var effectiveNegativePrompt: String { negativePrompt ?? GenerationSettings.defaultNegativePrompt }

    /// The latent shape [16, T, H/8, W/8] (channels from `latentChannels`).
    public func latentShape(latentChannels: Int = 16) -> [Int] {
        [latentChannels, (frames - 1) / 4 + 1, height / 8, width / 8]
    }

    /// Checks every setting; throws `GenerationError.invalidSettings` with what is wrong and what is allowed.
    public func validate() throws {
        func fail(_ s: String) throws -> Never { throw GenerationError.invalidSettings(s) }
        if width <= 0 || height <= 0 || width % 16 != 0 || height % 16 != 0 {
            try fail("size \(width)x\(height): width and height must be positive multiples of 16 (e.g. 832x480, 480x832, 1280x720)")
        }
        if width > 8192 || height > 8192 { try fail("size \(width)x\(height) is larger than 8192 pixels on a side") }
        if frames < 1 || (frames - 1) % 4 != 0 {
            try fail("\(frames) frames: the frame count must be 4k + 1 (1, 5, 9, ..., 81); 1 makes an image")
        }
        if frames > 1001 { try fail("\(frames) frames is more than 1001") }
        if steps < 1 || steps > 1000 { try fail("\(steps) steps: expected 1 to 1000") }
        if !shift.isFinite || shift <= 0 { try fail("shift \(shift) must be a positive number") }
        if !guidance.isFinite || guidance < 0 { try fail("guidance \(guidance) must be a finite number ≥ 0") }
        if fps < 1 || fps > 240 { try fail("fps \(fps): expected 1 to 240") }
        if prompt.isEmpty { try fail("the prompt is empty") }
        if let b = vramBudget, b <= 0 { try fail("the memory budget must be positive") }
        if let t = vaeTiling, t.stride <= 0 || t.tile < t.stride {
            try fail("VAE tiling \(t.tile * 8)/\(t.stride * 8) px: the stride must be positive and at most the tile")
        }
    }
}
