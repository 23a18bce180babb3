import COpenBLAS
import Dispatch
import Foundation

/// The CPU backend: OpenBLAS for matrix products, Swift loops (vectorised in release builds) for the
/// rest, spread over cores with `parallelFor` where the work is large enough to pay.
final class CPUDevice: @unchecked Sendable {
    static let shared = CPUDevice()

    let threads: Int
    let label: String

    private init() {
        threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
        var model = "CPU"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        label = "\(model), \(threads) threads, OpenBLAS \(String(cString: openblas_get_config()))"
    }

    /// Runs `body(range)` over `0..<count` in chunks, in parallel when `count * costPerItem` is large.
    func parallelFor(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        let work = count * max(1, costPerItem)
        let chunks = min(threads, max(1, work / 32_768), count)
        if chunks <= 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { escaping in
            nonisolated(unsafe) let work = escaping
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = count * c / chunks, hi = count * (c + 1) / chunks
                if lo < hi { work(lo..<hi) }
            }
        }
    }
}
