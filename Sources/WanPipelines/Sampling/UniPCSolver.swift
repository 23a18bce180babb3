import Foundation
import WanRuntime

/// UniPC multistep for flow matching, as the official `FlowUniPCMultistepScheduler` runs it (spec §8.3):
/// solver_order 2, `bh2` (B(h) = e^{−h} − 1), data prediction (`predict_x0`), lower_order_final, the UniC
/// corrector on every step after the first, final sigma 0.
///
/// Step i, with m_i = x_i − σ_i·v_i and λ(σ) = ln(1 − σ) − ln σ:
/// 1. corrector (i > 0, order q of the previous predictor) replaces x_i, from the previous corrected sample and
///    m_{i−1}, m_i (and m_{i−2} when q = 2, with the 2×2 system `[[1, 1], [r, 1]]·ρ = [b₁, b₂]` solved by
///    Gaussian elimination with partial pivoting as LAPACK does);
/// 2. predictor of order p = min(2, N − i, steps taken + 1) to σ_{i+1} (order 2 uses the fixed ρ = 0.5).
///
/// At the final step (σ_N = 0, h = ∞) the result is exactly m_{N−1}. With σ_0 = 1 (only on the DPM grid, which
/// the official code never gives UniPC) the λ = −∞ limits are taken: e^{−h} − 1 = −1 and vanishing r-terms.
public struct UniPCSolver: FlowSolver {
    /// The grid this solver walks.
    public let schedule: FlowMatchSchedule
    /// Index of the next step.
    public private(set) var stepIndex = 0

    /// Data predictions m_{i−2}, m_{i−1} (older first) before step i is taken; after it, m_{i−1}, m_i.
    private var history: [[Float]] = []
    /// The corrected sample of the previous step (the official `last_sample`).
    private var lastSample: [Float]?
    /// The predictor order of the previous step (the corrector's order).
    private var lastOrder = 0
    /// Steps taken, capped at the solver order 2 (the official `lower_order_nums`).
    private var lowerOrderNums = 0
    private var length: Int?

    private static let solverOrder = 2

    /// A solver walking `schedule` from step 0.
    public init(schedule: FlowMatchSchedule) {
        self.schedule = schedule
    }

    /// Forgets the history.
    public mutating func reset() {
        stepIndex = 0
        history = []
        lastSample = nil
        lastOrder = 0
        lowerOrderNums = 0
        length = nil
    }

    /// One UniPC step (corrector for x_i, then predictor to x_{i+1}).
    public mutating func step(modelOutput: [Float], timestepIndex: Int, sample: [Float]) throws -> [Float] {
        let i = stepIndex
        length = try FlowMath.checkStep(
            solver: "UniPC", schedule: schedule, expected: i, index: timestepIndex,
            modelOutput: modelOutput.count, sample: sample.count, length: length)
        let sigmas = schedule.sigmas
        let m = FlowMath.dataPrediction(sample: sample, velocity: modelOutput, sigma: sigmas[i])

        var x = sample
        if i > 0, let last = lastSample {
            x = corrector(current: m, lastSample: last, order: lastOrder)
        }

        history.append(m)
        if history.count > Self.solverOrder { history.removeFirst() }

        // lower_order_final, then the warm-up.
        let order = min(min(Self.solverOrder, schedule.steps - i), lowerOrderNums + 1)
        lastSample = x
        let next = predictor(x, order: order)

        lastOrder = order
        if lowerOrderNums < Self.solverOrder { lowerOrderNums += 1 }
        stepIndex += 1
        return next
    }

    /// UniP of order 1 or 2 from σ_i (sample x, history m_{i−1}, m_i) to σ_{i+1}.
    private func predictor(_ x: [Float], order: Int) -> [Float] {
        let i = stepIndex
        let sigmas = schedule.sigmas
        let sigmaT = sigmas[i + 1], sigmaS0 = sigmas[i]
        let m0 = history[history.count - 1]
        guard let h = FlowMath.logSNRStep(from: sigmaS0, to: sigmaT) else {
            // h = ∞: e^{−h} − 1 = B(h) = −1. A second-order term cannot occur here (order 2 needs i ≥ 1, so
            // σ_i < 1, and N − i ≥ 2, so σ_{i+1} > 0).
            if sigmaT == 0 { return m0 }               // (0/σ)·x + 1·m0: exactly the data prediction
            return FlowMath.linearStep(sigmaT / sigmaS0, x, (1 - sigmaT) * -1, m0)
        }
        let alphaT = 1 - sigmaT
        let hPhi1 = expm1(-h)
        let bH = hPhi1
        var out = FlowMath.linearStep(sigmaT / sigmaS0, x, alphaT * hPhi1, m0)
        if order == 2 {
            let sigmaS1 = sigmas[i - 1]
            // σ_{i−1} = 1: r = −∞ and D1 = (m_{i−1} − m_i)/r = 0, so the term vanishes.
            if sigmaS1 < 1 {
                let lambdaS0 = FlowMath.lambda(sigmaS0)
                let rk = (FlowMath.lambda(sigmaS1) - lambdaS0) / h
                let c = alphaT * bH
                let m1 = history[history.count - 2]
                let n = out.count
                out.withUnsafeMutableBufferPointer { o in
                    m0.withUnsafeBufferPointer { a in
                        m1.withUnsafeBufferPointer { b in
                            for j in 0..<n {
                                let d1 = (b[j] - a[j]) / rk
                                o[j] = o[j] - c * (0.5 * d1)
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// UniC of order 1 or 2: recomputes x_i from the previous corrected sample with the new m_i (`current`);
    /// the history still ends with m_{i−1}.
    private func corrector(current mT: [Float], lastSample x: [Float], order: Int) -> [Float] {
        let i = stepIndex
        let sigmas = schedule.sigmas
        let sigmaT = sigmas[i], sigmaS0 = sigmas[i - 1]
        let alphaT = 1 - sigmaT
        let m0 = history[history.count - 1]

        let hPhi1: Float, b1: Float, b2: Float
        let h = FlowMath.logSNRStep(from: sigmaS0, to: sigmaT)
        if let h {
            let hh = -h
            hPhi1 = expm1(hh)
            let bH = hPhi1
            var hPhiK = hPhi1 / hh - 1
            b1 = hPhiK * 1 / bH
            hPhiK = hPhiK / hh - 0.5   // - 1/factorial(2)
            b2 = hPhiK * 2 / bH
        } else {
            // σ_{i−1} = 1: hh = −∞, e^{hh} − 1 = −1, so hPhiK = 0 − 1, b₁ = 1; next hPhiK = 0 − 1/2, b₂ = 1.
            hPhi1 = -1
            b1 = 1
            b2 = 1
        }
        let bH = hPhi1

        // ρ for the D1_t = m_i − m_{i−1} term and, at order 2, ρ₀ for the D1 = (m_{i−2} − m_{i−1})/r term.
        var rhoLast: Float = 0.5
        var secondOrder: (rho0: Float, rk: Float, m1: [Float])?
        if order == 2 {
            let sigmaS1 = sigmas[i - 2]
            if sigmaS1 < 1, let h {
                let lambdaS0 = FlowMath.lambda(sigmaS0)
                let rk = (FlowMath.lambda(sigmaS1) - lambdaS0) / h
                let (rho0, rho1) = Self.solve2x2(rk: rk, b1: b1, b2: b2)
                rhoLast = rho1
                secondOrder = (rho0, rk, history[history.count - 2])
            } else {
                // r = −∞: ρ₀ = (b₁ − b₂)/(1 − r) → 0 and D1 → 0, ρ₁ = b₁.
                rhoLast = b1
            }
        }

        var out = FlowMath.linearStep(sigmaT / sigmaS0, x, alphaT * hPhi1, m0)
        let c = alphaT * bH
        let n = out.count
        out.withUnsafeMutableBufferPointer { o in
            m0.withUnsafeBufferPointer { a in
                mT.withUnsafeBufferPointer { t in
                    if let (rho0, rk, m1) = secondOrder {
                        m1.withUnsafeBufferPointer { b in
                            for j in 0..<n {
                                let corrRes = rho0 * ((b[j] - a[j]) / rk)
                                o[j] = o[j] - c * (corrRes + rhoLast * (t[j] - a[j]))
                            }
                        }
                    } else {
                        for j in 0..<n {
                            o[j] = o[j] - c * (rhoLast * (t[j] - a[j]))
                        }
                    }
                }
            }
        }
        return out
    }

    /// Solves `[[1, 1], [rk, 1]]·[ρ₀, ρ₁] = [b₁, b₂]` in float32 by LU with partial pivoting (LAPACK `sgesv`'s
    /// operation order for a 2×2 system).
    static func solve2x2(rk: Float, b1: Float, b2: Float) -> (Float, Float) {
        if abs(rk) > 1 {
            // Rows swapped: pivot rk.
            let l = (1 / rk) * 1
            let u11 = 1 - l * 1
            let y1 = b1 - l * b2
            let rho1 = y1 / u11
            let rho0 = (b2 - 1 * rho1) / rk
            return (rho0, rho1)
        }
        let l = rk
        let u11 = 1 - l * 1
        let y1 = b2 - l * b1
        let rho1 = y1 / u11
        let rho0 = (b1 - 1 * rho1) / 1
        return (rho0, rho1)
    }
}
