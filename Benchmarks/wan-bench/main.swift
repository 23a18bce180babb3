import Foundation
import WanRuntime

// wan-bench: kernel benchmarks, the Vulkan device against the CPU (OpenBLAS) side by side.
//
//   swift run -c release wan-bench [--device all|cpu|vulkan:N[,...]] [--full|--small] [--repeats N] [SUITE...]
//
// Shapes are Wan's real ones on a real GPU (--full, the default there) and scaled down on lavapipe/CPU.

let suites: [BenchSuite] = [
    convertSuite,
    elementwiseSuite,
    gemmSuite,
    normSuite,
    layoutSuite,
    conv3dSuite,
    attentionSuite,
    checkpointSuite,
] + modelsSuites + [pipelineSuite]

var deviceArg = "all"
var sizeArg: Bool?
var repeats = 5
var filters: [String] = []
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--device": deviceArg = args.next() ?? "all"
    case "--full": sizeArg = true
    case "--small": sizeArg = false
    case "--repeats": repeats = Int(args.next() ?? "") ?? repeats
    case "-h", "--help":
        print("usage: wan-bench [--device all|cpu|vulkan:N[,...]] [--full|--small] [--repeats N] [SUITE...]")
        print("suites: " + suites.map(\.name).joined(separator: ", "))
        exit(0)
    default: filters.append(a)
    }
}

do {
    // `all`: the CPU and every Vulkan device; otherwise a comma-separated list (`cpu,vulkan:0`, `vulkan:0`).
    var devices: [Device] = []
    if deviceArg == "all" {
        devices.append(Device.cpu())
        if let list = try? Device.enumerateVulkan() {
            for info in list { devices.append(try Device.vulkan(info.index)) }
        }
    } else {
        for name in deviceArg.split(separator: ",") { devices.append(try Device.open(String(name))) }
    }
    let hardware = devices.compactMap(\.vulkan).contains { !$0.capabilities.isSoftware }
    let full = sizeArg ?? hardware
    print("# wan-bench (\(full ? "full Wan shapes" : "scaled-down shapes"), median of \(repeats))")
    for d in devices { print("- \(d.name): \(d.label)") }
    for suite in suites where filters.isEmpty || filters.contains(where: { suite.name.contains($0) }) {
        // Each suite runs on every device, one table with the devices side by side; a failure on
        // one device is reported, not fatal.
        var rows: [BenchRow] = []
        var failures: [String] = []
        for device in devices {
            do {
                device.resetPeakMemory()
                let ctx = BenchContext(devices: [device], fullSize: full, repeats: repeats, filter: "")
                rows += try suite.run(ctx)
            } catch {
                failures.append("\(suite.name) on \(device.name) FAILED: \(error)")
            }
        }
        rows.sort { ($0.kernel, $0.shape) < ($1.kernel, $1.shape) }
        Bench.printTable(suite.name, rows)
        for f in failures { print("- " + f) }
    }
} catch {
    print("wan-bench: \(error)")
    exit(1)
}
