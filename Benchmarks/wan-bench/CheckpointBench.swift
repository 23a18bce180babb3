import Foundation
#if canImport(Glibc)
import Glibc
#endif
import WanModels
import WanRuntime

/// Checkpoint loading: writes a random bf16 safetensors file with the tensor names and shapes of Wan
/// T2V-1.3B (825 tensors, 1.42 G parameters, 2.8 GB; scaled to 2 small blocks without a real GPU) to a
/// temporary directory, then times opening it (header parse) and loading every tensor onto the device,
/// kept as bf16 and converted to f16, with the process's peak resident memory during the load. The file
/// is deleted afterwards. Loads read a warm page cache (the file was just written).
let checkpointSuite = BenchSuite(name: "checkpoint") { ctx in
    let config = ctx.fullSize ? WanDiTConfig.t2v1_3B
        : WanDiTConfig(modelType: .t2v, dim: 256, ffnDim: 1024, numHeads: 2, numLayers: 2)
    let (dim, blocks) = (config.dim, config.numLayers)
    let shapes = config.expectedEntries(dtype: .bf16)
    let params = shapes.reduce(0) { $0 + $1.count }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wan-bench-ckpt-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/diffusion_pytorch_model.safetensors"
    let fileBytes = try CheckpointBench.writeRandomBF16(shapes, to: path)
    let label = "\(shapes.count) tensors, \(blocks) blocks, dim \(dim), \(String(format: "%.1f", Double(params) / 1e6))M params"
    let runs = max(1, min(ctx.repeats, 3))

    var rows: [BenchRow] = []
    for device in ctx.devices {
        var openMs: [Double] = []
        for _ in 0..<max(1, ctx.repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let r = try CheckpointFile.open(path)
            openMs.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            guard r.entries.count == shapes.count else { throw CheckpointBench.Failure("read back \(r.entries.count) tensors") }
        }
        rows.append(BenchRow(kernel: "checkpoint open (safetensors header)", shape: label, device: Bench.label(device),
                             ms: CheckpointBench.median(openMs)))

        for target in [DType?.none, .f16] {
            var ms: [Double] = []
            var peak = 0, used = 0
            for _ in 0..<runs {
                let reader = try CheckpointFile.open(path)
                let before = CheckpointBench.resetPeakRSS()
                let t0 = DispatchTime.now().uptimeNanoseconds
                var tensors = try reader.loadAll(to: device, as: target)
                ms.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                peak = max(peak, CheckpointBench.peakRSS() - before)
                used = max(used, device.memoryStatistics.used)
                tensors.removeAll()
            }
            let name = target.map { "checkpoint load all bf16->\($0)" } ?? "checkpoint load all (keep bf16)"
            rows.append(BenchRow(kernel: name, shape: label, device: Bench.label(device), ms: CheckpointBench.median(ms),
                                 bytes: Double(fileBytes), memoryBytes: used,
                                 note: String(format: "peak host +%.0f MiB (file %.0f MiB)",
                                              Double(peak) / 1_048_576, Double(fileBytes) / 1_048_576)))
        }
    }
    return rows
}

enum CheckpointBench {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Writes random bf16 tensors (finite, |x| < 1) as safetensors; returns the file size.
    static func writeRandomBF16(_ entries: [TensorEntry], to path: String) throws -> Int {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: path) { e in
            var out = [UInt8](repeating: 0, count: e.byteCount)
            out.withUnsafeMutableBytes { raw in
                let h = raw.bindMemory(to: UInt16.self)
                for i in h.indices {
                    state ^= state << 13; state ^= state >> 7; state ^= state << 17
                    // sign, exponent 0x70-0x7E (|x| in [2^-15, 1)), random mantissa
                    let r = UInt16(truncatingIfNeeded: state)
                    h[i] = (r & 0x807F) | UInt16(0x70 + (r >> 8) % 15) << 7
                }
            }
            return out
        }
    }

    static func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }

    /// A /proc/self/status field in bytes.
    static func status(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }

    /// Trims the heap and resets the peak-RSS counter (VmHWM) to the current RSS; returns it.
    static func resetPeakRSS() -> Int {
        // Return freed heap memory first, so that memory an earlier run freed is not silently reused
        // (which would hide this run's growth): the CPU backend's kept blocks, then malloc's.
        Device.cpu().releaseCachedHostMemory()
        #if canImport(Glibc)
        if let sym = dlsym(nil, "malloc_trim") {  // glibc's malloc_trim (not in Swift's Glibc module)
            _ = unsafeBitCast(sym, to: (@convention(c) (Int) -> Int32).self)(0)
        }
        #endif
        if let f = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
            try? f.write(contentsOf: Data("5".utf8))
            try? f.close()
        }
        return status("VmHWM")
    }

    static func peakRSS() -> Int { status("VmHWM") }
}
