import Foundation
import WanRuntime

/// What one benchmark run measures on: the devices side by side, and whether shapes are Wan's real
/// ones (a real GPU) or scaled down (lavapipe, which is hundreds of times slower than OpenBLAS).
struct BenchContext: Sendable {
    var devices: [Device]
    /// Full Wan shapes when true; scaled-down shapes when false.
    var fullSize: Bool
    /// Timed runs per measurement (the median is reported).
    var repeats: Int
    /// Only suites whose name contains this text run (empty: all).
    var filter: String
}

/// One line of a benchmark table.
struct BenchRow {
    var kernel: String
    var shape: String
    var device: String
    var ms: Double
    /// Floating-point operations per run (GFLOP/s column) or 0.
    var flops: Double = 0
    /// Bytes read and written per run (GB/s column) or 0.
    var bytes: Double = 0
    /// Device memory in use by the benchmark's tensors.
    var memoryBytes: Int = 0
    var note: String = ""
}

/// A benchmark suite: a name and a function that produces rows.
struct BenchSuite: Sendable {
    var name: String
    var run: @Sendable (BenchContext) throws -> [BenchRow]
}

enum Bench {
    /// Median milliseconds of one run of the kernels `record` puts into a command list. On Vulkan the
    /// time is the sum of the kernels' GPU timestamps (so submit overhead is excluded); elsewhere the
    /// wall time of `run()`. Warm-up runs precede the timed ones: one on the CPU, and on a GPU as many as
    /// fill a quarter of a second (its clocks drop while the host prepares the next row's inputs).
    static func time(_ device: Device, repeats: Int, _ record: (CommandList) throws -> Void) throws -> Double {
        let useTimestamps = device.vulkan?.capabilities.timestampSupported ?? false
        let list = try CommandList(device: device, profile: useTimestamps)
        try record(list)
        let warm0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<20 {
            try list.run()
            if device.isCPU || DispatchTime.now().uptimeNanoseconds - warm0 > 250_000_000 { break }
        }
        var samples: [Double] = []
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try list.run()
            let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            samples.append(useTimestamps ? try list.timings().map(\.milliseconds).reduce(0, +) : wall)
        }
        samples.sort()
        return samples[samples.count / 2]
    }

    /// Prints rows as an aligned table, grouping by kernel and shape so devices sit side by side.
    static func printTable(_ title: String, _ rows: [BenchRow]) {
        guard !rows.isEmpty else { return }
        print("\n## \(title)\n")
        let header = ["kernel", "shape", "device", "ms", "GFLOP/s", "GB/s", "mem MiB", "vs cpu", "note"]
        var lines: [[String]] = []
        for row in rows {
            let cpu = rows.first { $0.kernel == row.kernel && $0.shape == row.shape && $0.device == "cpu" }
            let ratio = cpu.map { String(format: "%.2fx", $0.ms / max(row.ms, 1e-9)) } ?? "-"
            lines.append([
                row.kernel, row.shape, row.device, String(format: "%.3f", row.ms),
                row.flops > 0 ? String(format: "%.1f", row.flops / row.ms / 1e6) : "-",
                row.bytes > 0 ? String(format: "%.2f", row.bytes / row.ms / 1e6) : "-",
                row.memoryBytes > 0 ? String(format: "%.1f", Double(row.memoryBytes) / 1_048_576) : "-",
                row.device == "cpu" ? "1.00x" : ratio, row.note,
            ])
        }
        let widths = header.indices.map { c in max(header[c].count, lines.map { $0[c].count }.max() ?? 0) }
        func fmt(_ cells: [String]) -> String {
            "| " + cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: " | ") + " |"
        }
        print(fmt(header))
        print("|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|")
        for l in lines { print(fmt(l)) }
    }

    /// Random floats in [-1, 1) (deterministic).
    static func random(_ n: Int, seed: UInt64 = 1) -> [Float] {
        var s = seed
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s) >> 40) / Float(1 << 23)
        }
    }

    /// Short device label for tables.
    static func label(_ d: Device) -> String { d.name }
}
