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
        CPUBLAS.configure()
        var model = "CPU", flags: Set<Substring> = []
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
            let lines = info.split(separator: "\n")
            func value(_ key: String) -> Substring? {
                guard let line = lines.first(where: { $0.hasPrefix(key) }), let colon = line.firstIndex(of: ":") else { return nil }
                return line[line.index(after: colon)...]
            }
            if let m = value("model name") { model = m.trimmingCharacters(in: .whitespaces) }
            if let f = value("flags") { flags = Set(f.split(separator: " ")) }
        }
        let advice = CPUDevice.blasAdvice(core: String(cString: openblas_get_corename()), flags: flags)
        label = "\(model), \(threads) threads, OpenBLAS \(String(cString: openblas_get_config()))" + (advice.map { " (\($0))" } ?? "")
    }

    /// What to set when OpenBLAS picked generic kernels on a CPU it did not recognise (seen on a cloud VM whose
    /// CPUID hides the model: "Prescott", SSE3 kernels, on a Xeon with AVX-512), or nil when its choice is fine.
    static func blasAdvice(core: String, flags: Set<Substring>) -> String? {
        let generic: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "katmai", "coppermine",
                                    "northwood", "banias", "atom", "barcelona", "opteron", "athlon"]
        guard generic.contains(core.lowercased()) else { return nil }
        let better = flags.contains("avx512f") && flags.contains("avx512bw") ? "SkylakeX"
            : flags.contains("avx2") && flags.contains("fma") ? "Haswell" : nil
        return better.map { "generic \(core) kernels on a CPU with \($0 == "SkylakeX" ? "AVX-512" : "AVX2"): set OPENBLAS_CORETYPE=\($0) for several times faster CPU matmuls" }
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
