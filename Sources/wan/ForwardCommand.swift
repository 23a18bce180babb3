import Foundation
import WanPipelines
import WanRuntime

/// `wan forward COMPONENT --weights FILE --inputs FILE --out FILE [--prefix P] [--config JSON] [--device D]
/// [--precision P] [--text-len N]`: see `ComponentForward`.
func forwardCommand(_ args: [String]) throws {
    guard let component = args.first, !component.hasPrefix("-") else {
        throw CommandError.usage("forward needs a component: dit, t5, vae-encode, vae-decode or sample")
    }
    var weights: String?, inputs: String?, out: String?
    var options = ComponentForward.Options(component: component, weights: "", inputs: "", output: "")
    var deviceName = "auto"
    var it = args.dropFirst().makeIterator()
    func value(_ flag: String) throws -> String {
        guard let v = it.next() else { throw CommandError.usage("\(flag) needs a value") }
        return v
    }
    while let a = it.next() {
        switch a {
        case "--weights", "--model": weights = try value(a)
        case "--inputs": inputs = try value(a)
        case "--out", "--output": out = try value(a)
        case "--prefix": options.inputPrefix = try value(a)
        case "--config": options.configPath = try value(a)
        case "--device": deviceName = try value(a)
        case "--precision": options.precision = try value(a)
        case "--steps":
            guard let n = Int(try value(a)), n > 0 else { throw CommandError.usage("--steps needs a positive number") }
            options.steps = n
        case "--shift":
            guard let v = Double(try value(a)), v > 0, v.isFinite else { throw CommandError.usage("--shift needs a positive number") }
            options.shift = v
        case "--guidance":
            guard let v = Float(try value(a)), v.isFinite else { throw CommandError.usage("--guidance needs a number") }
            options.guidance = v
        case "--sampler":
            let v = try value(a)
            guard let s = SamplerKind(rawValue: v) else { throw CommandError.usage("--sampler \(v): expected unipc, dpm++ or euler") }
            options.sampler = s
        case "--text-len":
            guard let n = Int(try value(a)), n > 0 else { throw CommandError.usage("--text-len needs a positive number") }
            options.textLen = n
        default: throw CommandError.usage("unknown option \(a) for forward")
        }
    }
    guard let weights, let inputs, let out else { throw CommandError.usage("forward needs --weights, --inputs and --out") }
    options.weights = weights
    options.inputs = inputs
    options.output = out
    let device = try Device.open(deviceName)
    let start = Date()
    let written = try ComponentForward.run(options, device: device)
    print(String(format: "wan forward %@ on %@ (%@): %@ in %.2f s", component, device.name, options.precision,
                 written.map { "\($0.name) \($0.shape)" }.joined(separator: ", "), Date().timeIntervalSince(start)))
}
