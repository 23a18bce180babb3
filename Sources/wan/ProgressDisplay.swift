import Foundation
import WanPipelines

/// Shows a generation's progress on standard error: a redrawn bar with step, s/step and ETA on a terminal,
/// plain lines otherwise (logs, pipes).
final class ProgressDisplay {
    private let terminal = isatty(STDERR_FILENO) != 0
    private let quiet: Bool
    private var barOpen = false

    init(quiet: Bool) { self.quiet = quiet }

    /// Prints one line to standard error (closing an open bar first).
    func line(_ s: String) {
        if barOpen { FileHandle.standardError.write(Data("\n".utf8)); barOpen = false }
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    /// Shows an event.
    func show(_ e: GenerationEvent) {
        guard !quiet else { return }
        switch e {
        case let .stageStarted(stage, device): line("\(stage) on \(device)…")
        case let .note(s): line("  \(s)")
        case let .stageFinished(stage, seconds): line(String(format: "%@ done in %.2f s", stage, seconds))
        case let .step(done, total, elapsed):
            let perStep = elapsed / Double(max(done, 1))
            let eta = perStep * Double(total - done)
            let text = String(format: "step %d/%d  %.2f s/step  ETA %@", done, total, perStep, ProgressDisplay.clock(eta))
            if terminal {
                let width = 30
                let filled = total > 0 ? width * done / total : width
                let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
                FileHandle.standardError.write(Data("\r\u{1B}[2K[\(bar)] \(text)".utf8))
                barOpen = true
                if done == total { line("") }
            } else {
                line(text)
            }
        case let .frames(done, total):
            if terminal {
                FileHandle.standardError.write(Data("\r\u{1B}[2Kframes \(done)/\(total)".utf8))
                barOpen = true
                if done == total { line("") }
            } else {
                line("frames \(done)/\(total)")
            }
        }
    }

    /// `m:ss` or `h:mm:ss`.
    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
