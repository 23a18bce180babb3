/// What a running generation reports as it goes, for a progress display.
public enum GenerationEvent: Sendable, Equatable {
    /// A stage starts: "text", "dit", "vae" (with the device it runs on).
    case stageStarted(stage: String, device: String)
    /// A detail worth showing (e.g. a decision taken to fit the memory budget).
    case note(String)
    /// Sampling step `done` of `total` finished after `elapsed` seconds of sampling.
    case step(done: Int, total: Int, elapsed: Double)
    /// Video frames `done` of `total` are decoded and written.
    case frames(done: Int, total: Int)
    /// A stage ended after `seconds`.
    case stageFinished(stage: String, seconds: Double)
}
