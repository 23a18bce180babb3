import Foundation
import WanPipelines

/// `wan plan ...`: the device memory of a generation, stage by stage, and the budget-saving steps it takes,
/// without loading or running anything (see `PlanArguments.usage`).
func planCommand(_ args: [String]) throws {
    if args.contains("--help") || args.contains("-h") {
        print(PlanArguments.usage)
        return
    }
    let a: PlanArguments
    do { a = try PlanArguments.parse(args) } catch {
        throw CommandError.usage("plan: \(error)\n\n\(PlanArguments.usage)")
    }
    let (plan, device) = try a.plan()
    if a.json {
        guard var object = try JSONSerialization.jsonObject(with: plan.json()) as? [String: Any] else {
            throw CommandError.failed("plan: the plan did not serialise as a JSON object")
        }
        object["device"] = device
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    } else {
        print("device: \(device)")
        print(plan.table)
    }
}
