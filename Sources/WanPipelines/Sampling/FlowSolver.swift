import Foundation
import WanRuntime

/// A flow-matching ODE solver over a flattened float32 latent (spec §8). The model predicts the velocity
/// `v = ε − x_data` at `x_σ = (1 − σ)·x_data + σ·ε`, so its data prediction is `x̂ = x − σ·v`.
///
/// A solver walks its schedule once: step i takes the (guided) velocity the model returned for the sample of
/// step i and returns the sample for step i + 1; step N − 1 returns the final latent. Multistep solvers keep their
/// history between calls, so steps must come in order 0, 1, …, N − 1 with samples of one length.
///
/// Arithmetic: float32 scalars and float32 element operations, in the operation order of the official PyTorch
/// code (which runs these steps on float32 tensors with float32 0-d coefficient tensors); the limits at σ = 1
/// (λ = −∞) and σ = 0 (λ = +∞) are taken explicitly instead of through infinities.
public protocol FlowSolver: Sendable {
    /// The sigma / timestep grid the solver walks.
    var schedule: FlowMatchSchedule { get }
    /// Index of the next step to take: 0 before the first, `schedule.steps` once finished.
    var stepIndex: Int { get }
    /// Takes step `timestepIndex` (must equal `stepIndex`): from `sample` (x_i) and the model's velocity at it
    /// (`modelOutput`, v_i) returns x_{i+1}. Throws `RuntimeError` for an out-of-order step or mismatched lengths.
    mutating func step(modelOutput: [Float], timestepIndex: Int, sample: [Float]) throws -> [Float]
    /// Forgets the history so that the solver can walk its schedule again from step 0.
    mutating func reset()
}

/// The samplers a user can choose (`--sampler`).
public enum SamplerKind: String, Sendable, CaseIterable {
    /// UniPC multistep, bh2, order 2 with the UniC corrector and lower-order final step (the official default).
    case unipc
    /// DPM-Solver++ 2M (midpoint), the official `--sample_solver dpm++`.
    case dpmPlusPlus = "dpm++"
    /// Plain Euler on the velocity (not in the official repo; diffusers' FlowMatchEuler step).
    case euler

    /// The sigma grid the official code pairs with this solver (`.dpmSolver` for DPM++, `.unipc` otherwise).
    public var grid: SigmaGrid {
        self == .dpmPlusPlus ? .dpmSolver : .unipc
    }

    /// The schedule for `steps` steps and shift `shift` on this sampler's grid.
    public func schedule(steps: Int, shift: Double) throws -> FlowMatchSchedule {
        try FlowMatchSchedule(steps: steps, shift: shift, grid: grid)
    }

    /// A fresh solver of this kind walking `schedule`.
    public func makeSolver(schedule: FlowMatchSchedule) -> any FlowSolver {
        switch self {
        case .unipc: return UniPCSolver(schedule: schedule)
        case .dpmPlusPlus: return DPMSolverPlusPlus(schedule: schedule)
        case .euler: return EulerSolver(schedule: schedule)
        }
    }
}

/// Shared pieces of the solvers.
enum FlowMath {
    /// λ(σ) = ln(1 − σ) − ln(σ) in float32, for 0 < σ < 1 (callers handle σ = 0 and σ = 1 explicitly).
    @inline(__always)
    static func lambda(_ sigma: Float) -> Float {
        log(1 - sigma) - log(sigma)
    }

    /// h = λ(σ_to) − λ(σ_from), or nil when it is +∞ (σ_to = 0 or σ_from = 1).
    @inline(__always)
    static func logSNRStep(from: Float, to: Float) -> Float? {
        if to == 0 || from == 1 { return nil }
        return lambda(to) - lambda(from)
    }

    /// Checks a step's index and lengths against the solver's state; returns the latent length.
    static func checkStep(
        solver: String, schedule: FlowMatchSchedule, expected: Int, index: Int,
        modelOutput: Int, sample: Int, length: Int?
    ) throws -> Int {
        guard expected < schedule.steps else {
            throw RuntimeError.invalidState(
                "\(solver): all \(schedule.steps) steps were taken; reset() before walking the schedule again")
        }
        guard index == expected else {
            throw RuntimeError.invalidState("\(solver): expected step \(expected), got step \(index)")
        }
        guard sample > 0 else {
            throw RuntimeError.invalidArgument("\(solver): the sample is empty")
        }
        guard modelOutput == sample else {
            throw RuntimeError.shapeMismatch(
                "\(solver): model output has \(modelOutput) values, the sample \(sample)")
        }
        if let length, length != sample {
            throw RuntimeError.shapeMismatch(
                "\(solver): the sample has \(sample) values, earlier steps had \(length)")
        }
        return sample
    }

    /// The data prediction `x̂ = x − σ·v` (official `convert_model_output`, flow_prediction), in float32.
    static func dataPrediction(sample: [Float], velocity: [Float], sigma: Float) -> [Float] {
        let n = sample.count
        return [Float](unsafeUninitializedCapacity: n) { out, count in
            sample.withUnsafeBufferPointer { x in
                velocity.withUnsafeBufferPointer { v in
                    for j in 0..<n { out[j] = x[j] - sigma * v[j] }
                }
            }
            count = n
        }
    }

    /// `c1·x − c2·m` elementwise (each product rounded to float32, then the difference), the base of every
    /// exponential-integrator step.
    static func linearStep(_ c1: Float, _ x: [Float], _ c2: Float, _ m: [Float]) -> [Float] {
        let n = x.count
        return [Float](unsafeUninitializedCapacity: n) { out, count in
            x.withUnsafeBufferPointer { xp in
                m.withUnsafeBufferPointer { mp in
                    for j in 0..<n { out[j] = c1 * xp[j] - c2 * mp[j] }
                }
            }
            count = n
        }
    }
}
