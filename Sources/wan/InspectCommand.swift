import Foundation
import WanModels

/// `wan inspect FILE... [--tensors] [--custom] [--heads N]`: each checkpoint's format, tensor count and
/// bytes, the detected component / naming convention / variant with its configuration, and, for a file
/// that is none of the known variants, what is missing, unexpected or misshapen. `--tensors` lists
/// every tensor (name, dtype, shape, bytes).
func inspectCommand(_ args: [String]) throws {
    var files: [String] = []
    var listTensors = false
    var options = WanDetectionOptions()
    var it = args.makeIterator()
    while let a = it.next() {
        switch a {
        case "--tensors": listTensors = true
        case "--custom": options.allowCustom = true
        case "--heads":
            guard let v = it.next(), let n = Int(v), n > 0 else { throw CommandError.usage("--heads needs a positive number") }
            options.numHeads = n
        default:
            if a.hasPrefix("--") { throw CommandError.usage("unknown option \(a) for inspect") }
            files.append(a)
        }
    }
    guard !files.isEmpty else { throw CommandError.usage("inspect needs at least one checkpoint file") }
    var failures = 0
    for path in files {
        print("== \(path)")
        do {
            let reader = try CheckpointFile.open(path)
            let entries = reader.entries
            let bytes = entries.reduce(0) { $0 + $1.byteCount }
            var dtypes: [String: Int] = [:]
            for e in entries { dtypes[e.dtype.rawValue, default: 0] += 1 }
            print("format: \(reader.format), \(entries.count) tensors, \(String(format: "%.2f", Double(bytes) / 1e9)) GB (" +
                  dtypes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")")
            if listTensors {
                let width = entries.map(\.name.count).max() ?? 0
                for e in entries {
                    print("  \(e.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(e.dtype.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(e.shape)  \(e.byteCount)")
                }
            }
            if let format = WanCheckpointDetector.identify(entries) {
                print("names: \(format)")
            }
            do {
                let d = try WanCheckpointDetector.detect(entries, options: options)
                print("detected: \(d.variantName)\(d.isCustom ? " (custom configuration)" : "")")
                print("config: \(d.config)")
            } catch {
                failures += 1
                print("not a known Wan 2.1 checkpoint: \(error)")
            }
        } catch {
            failures += 1
            print("error: \(error)")
        }
    }
    if failures > 0 { throw CommandError.failed("\(failures) of \(files.count) file(s) could not be identified") }
}
