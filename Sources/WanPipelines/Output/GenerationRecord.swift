import Foundation

/// The JSON sidecar written next to an output: what was generated, from what, and how long each stage took.
public struct GenerationRecord: Codable, Sendable, Equatable {
    /// The time one stage took.
    public struct StageTiming: Codable, Sendable, Equatable {
        /// Stage name (e.g. `text encoder`, `denoise`, `vae decode`).
        public var stage: String
        /// Wall-clock seconds.
        public var seconds: Double

        /// A timing.
        public init(stage: String, seconds: Double) {
            self.stage = stage
            self.seconds = seconds
        }
    }

    /// The prompt as given (before cleaning).
    public var prompt: String
    /// The negative prompt used (the default one when none was given).
    public var negativePrompt: String
    /// The noise seed.
    public var seed: UInt64
    /// Output width in pixels.
    public var width: Int
    /// Output height in pixels.
    public var height: Int
    /// Frame count (1 for an image).
    public var frames: Int
    /// Frames per second of video output.
    public var fps: Int
    /// Sampling steps.
    public var steps: Int
    /// Flow shift.
    public var shift: Double
    /// Classifier-free guidance scale.
    public var guidance: Double
    /// Sampler name (`unipc`, `dpm++`, `euler`).
    public var sampler: String
    /// The model files loaded (DiT, VAE, text encoder, tokenizer), as given.
    public var modelFiles: [String]
    /// Per-stage times, in order.
    public var timings: [StageTiming]
    /// The device that ran the model (e.g. `vulkan:0 (NVIDIA H100)`), if recorded.
    public var device: String?
    /// The compute precision (e.g. `bf16`), if recorded.
    public var precision: String?
    /// The output path, if recorded.
    public var output: String?
    /// The `.safetensors` file the initial noise came from (`--noise`), nil when it came from `seed`.
    public var noiseFile: String?
    /// What the run decided or fell back to (e.g. a stage moved to the CPU), nil when nothing.
    public var notes: [String]?

    enum CodingKeys: String, CodingKey {
        case prompt, negativePrompt = "negative_prompt", seed, width, height, frames, fps, steps, shift, guidance
        case sampler, modelFiles = "model_files", timings, device, precision, output, noiseFile = "noise_file", notes
    }

    /// A record from every field.
    public init(prompt: String, negativePrompt: String, seed: UInt64, width: Int, height: Int, frames: Int,
                fps: Int = 16, steps: Int, shift: Double, guidance: Double, sampler: String, modelFiles: [String],
                timings: [StageTiming] = [], device: String? = nil, precision: String? = nil, output: String? = nil) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.seed = seed
        self.width = width
        self.height = height
        self.frames = frames
        self.fps = fps
        self.steps = steps
        self.shift = shift
        self.guidance = guidance
        self.sampler = sampler
        self.modelFiles = modelFiles
        self.timings = timings
        self.device = device
        self.precision = precision
        self.output = output
    }

    /// Pretty-printed JSON with sorted keys (snake_case names), ending in a newline.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            var data = try encoder.encode(self)
            data.append(0x0A)
            return data
        } catch {
            throw OutputError.invalidArgument("cannot encode the sidecar (non-finite number?): \(error)")
        }
    }

    /// Decodes a record from JSON; `name` labels errors.
    public static func decode(_ data: Data, name: String = "sidecar JSON") throws -> GenerationRecord {
        do {
            return try JSONDecoder().decode(GenerationRecord.self, from: data)
        } catch {
            throw OutputError.invalidArgument("\(name): not a generation record: \(error)")
        }
    }

    /// Writes the record as JSON to `url`, atomically.
    public func write(to url: URL) throws {
        let file = try AtomicFile(destination: url)
        try file.write([UInt8](jsonData()))
        try file.commit()
    }

    /// Reads a record written by `write(to:)`.
    public static func read(from url: URL) throws -> GenerationRecord {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw OutputError.io(path: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try decode(data, name: url.path)
    }
}
