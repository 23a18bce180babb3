import WanRuntime

/// Plain Euler on the velocity: `x_{i+1} = x_i + (σ_{i+1} − σ_i)·v_i` in float32 (spec §8.5; diffusers'
/// FlowMatchEuler step). Not in the official repository; first order, no history.
public struct EulerSolver: FlowSolver {
    /// The grid this solver walks (normally `SigmaGrid.unipc`).
    public let schedule: FlowMatchSchedule
    /// Index of the next step.
    public private(set) var stepIndex = 0
    private var length: Int?

    /// A solver walking `schedule` from step 0.
    public init(schedule: FlowMatchSchedule) {
        self.schedule = schedule
    }

    /// Returns to step 0.
    public mutating func reset() {
        stepIndex = 0
        length = nil
    }

    /// One Euler step from x_i to x_{i+1}.
    public mutating func step(modelOutput: [Float], timestepIndex: Int, sample: [Float]) throws -> [Float] {
        let i = stepIndex
        length = try FlowMath.checkStep(
            solver: "Euler", schedule: schedule, expected: i, index: timestepIndex,
            modelOutput: modelOutput.count, sample: sample.count, length: length)
        let dt = schedule.sigmas[i + 1] - schedule.sigmas[i]
        let n = sample.count
        let out = [Float](unsafeUninitializedCapacity: n) { o, count in
            sample.withUnsafeBufferPointer { x in
                modelOutput.withUnsafeBufferPointer { v in
                    for j in 0..<n { o[j] = x[j] + dt * v[j] }
                }
            }
            count = n
        }
        stepIndex += 1
        return out
    }
}
