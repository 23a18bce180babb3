import Dispatch
import Foundation
import WanPipelines
import WanRuntime

/// `wan generate ...`: text to video (see `GenerateArguments.usage`). Ctrl-C stops after the current step or
/// frame and removes the partial output; a second Ctrl-C quits at once.
func generateCommand(_ args: [String]) throws {
    let a: GenerateArguments
    do { a = try GenerateArguments.parse(args) } catch {
        throw CommandError.usage("generate: \(error)\n\n\(GenerateArguments.usage)")
    }
    let output = a.resolvedOutput(ffmpegAvailable: FFmpegWriter.locate() != nil)
    let source: TextToVideo.Source = a.isTiny ? .tiny : .files(try WanModelFiles.resolve(a.models, tokenizer: a.tokenizer))
    // A memory budget is enforced by the Vulkan allocator too (an allocation beyond it fails as on a full device).
    let options = VulkanOptions(memoryBudget: a.settings.vramBudget)
    let main = try Device.open(a.device, options: options)
    let devices = TextToVideo.Devices(text: try a.textDevice.map { try Device.open($0, options: options) } ?? main,
                                      dit: try a.ditDevice.map { try Device.open($0, options: options) } ?? main,
                                      vae: try a.vaeDevice.map { try Device.open($0, options: options) } ?? main)
    let display = ProgressDisplay(quiet: a.quiet)
    let s = a.settings
    if a.isTiny {
        display.line("model: tiny (built-in random weights: the output is noise; see README for the real 1.3B/14B weights)")
    }
    display.line("\(s.width)x\(s.height), \(s.frames) frame(s), \(s.steps) \(s.sampler.rawValue) steps, shift \(s.shift), guidance \(s.guidance), seed \(s.seed)\(a.randomSeed ? " (random)" : ""), \(s.precision.rawValue)\(s.vaeFP16Compute ? " (VAE fp16)" : ""), on \(devices.description)")

    let cancellation = GenerationCancellation()
    signal(SIGINT, SIG_IGN)
    let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    interrupt.setEventHandler {
        if cancellation.isCancelled { _exit(130) }
        cancellation.cancel()
        FileHandle.standardError.write(Data("\nstopping after the current step (Ctrl-C again to quit at once)…\n".utf8))
    }
    interrupt.resume()
    defer { interrupt.cancel() }

    let report: TextToVideo.Report
    do {
        report = try TextToVideo(source: source, devices: devices).generate(
            s, output: output, events: { display.show($0) }, cancellation: cancellation)
    } catch GenerationError.cancelled {
        display.line("wan generate: cancelled; nothing was written under \(output)")
        exit(130)
    }
    display.line("wrote \(report.output.path) (+ \(report.sidecar.lastPathComponent))")
    for t in report.record.timings {
        display.line("  " + t.stage.padding(toLength: 14, withPad: " ", startingAt: 0) + String(format: "%8.2f s", t.seconds))
    }
    for (name, bytes) in report.peakDeviceBytes.sorted(by: { $0.key < $1.key }) {
        display.line(String(format: "  peak device memory %@: %.1f MiB", name, Double(bytes) / 1_048_576))
    }
    display.line(String(format: "  peak host memory: %.1f MiB", Double(report.peakHostBytes) / 1_048_576))
}
