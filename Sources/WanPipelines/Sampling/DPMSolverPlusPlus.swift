import Foundation
import WanRuntime

/// DPM-Solver++ 2M for flow matching, as the official `FlowDPMSolverMultistepScheduler` runs it (spec §8.4):
/// `dpmsolver++`, solver_order 2, `midpoint`, lower_order_final, final sigma 0, no Euler at the final step.
///
/// With m_i = x_i − σ_i·v_i, λ(σ) = ln(1 − σ) − ln σ and h = λ(σ_{i+1}) − λ(σ_i):
/// * first order (step 0, and the last step because the final sigma is 0):
///   `x_{i+1} = (σ_{i+1}/σ_i)·x_i − (1 − σ_{i+1})·(e^{−h} − 1)·m_i`;
/// * second order (every other step): `D1 = (1/r₀)·(m_i − m_{i−1})`, `r₀ = (λ(σ_i) − λ(σ_{i−1}))/h`, and
///   `x_{i+1} = (σ_{i+1}/σ_i)·x_i − (1 − σ_{i+1})·(e^{−h} − 1)·m_i − 0.5·(1 − σ_{i+1})·(e^{−h} − 1)·D1`.
///
/// The grid of the official DPM++ path starts at σ_0 = 1 (λ_0 = −∞): step 0 is then `x_1 = σ_1·x_0 + (1 − σ_1)·m_0`
/// and at step 1 r₀ = ∞, so D1 = 0. These limits, and the last step (σ_N = 0, result m_{N−1}), are taken explicitly.
/// `e^{−h} − 1` is computed as `exp(−h) − 1` in float32, like the official code (not `expm1`).
public struct DPMSolverPlusPlus: FlowSolver {
    /// The grid this solver walks (normally `SigmaGrid.dpmSolver`).
    public let schedule: FlowMatchSchedule
    /// Index of the next step.
    public private(set) var stepIndex = 0

    /// m_{i−1} after step i − 1 was taken (nil before the first step).
    private var previous: [Float]?
    private var length: Int?

    /// A solver walking `schedule` from step 0.
    public init(schedule: FlowMatchSchedule) {
        self.schedule = schedule
    }

    /// Forgets the history.
    public mutating func reset() {
        stepIndex = 0
        previous = nil
        length = nil
    }

    /// One DPM-Solver++ step from x_i to x_{i+1}.
    public mutating func step(modelOutput: [Float], timestepIndex: Int, sample: [Float]) throws -> [Float] {
        let i = stepIndex
        length = try FlowMath.checkStep(
            solver: "DPM++", schedule: schedule, expected: i, index: timestepIndex,
            modelOutput: modelOutput.count, sample: sample.count, length: length)
        let sigmas = schedule.sigmas
        let sigmaT = sigmas[i + 1], sigmaS0 = sigmas[i]
        let alphaT = 1 - sigmaT
        let m0 = FlowMath.dataPrediction(sample: sample, velocity: modelOutput, sigma: sigmaS0)
        defer {
            previous = m0
            stepIndex += 1
        }

        guard let h = FlowMath.logSNRStep(from: sigmaS0, to: sigmaT) else {
            // h = ∞, e^{−h} − 1 = −1 (first order: step 0 with σ_0 = 1, or the last step).
            if sigmaT == 0 { return m0 }
            return FlowMath.linearStep(sigmaT / sigmaS0, sample, alphaT * -1, m0)
        }
        let phi = exp(-h) - 1
        var out = FlowMath.linearStep(sigmaT / sigmaS0, sample, alphaT * phi, m0)

        let lowerOrderFinal = i == schedule.steps - 1
        guard i >= 1, !lowerOrderFinal, let m1 = previous else { return out }
        let sigmaS1 = sigmas[i - 1]
        // σ_{i−1} = 1: h₀ = ∞, r₀ = ∞, 1/r₀ = 0, D1 = 0: the step is the first-order one.
        guard sigmaS1 < 1 else { return out }
        let lambdaS0 = FlowMath.lambda(sigmaS0)
        let h0 = lambdaS0 - FlowMath.lambda(sigmaS1)
        let r0 = h0 / h
        let inverse = 1 / r0
        let c = 0.5 * (alphaT * phi)
        let n = out.count
        out.withUnsafeMutableBufferPointer { o in
            m0.withUnsafeBufferPointer { a in
                m1.withUnsafeBufferPointer { b in
                    for j in 0..<n {
                        let d1 = inverse * (a[j] - b[j])
                        o[j] = o[j] - c * d1
                    }
                }
            }
        }
        return out
    }
}
