import WanRuntime

/// The pre-shift sigma grid of a schedule. The official code has two (spec §8.2).
public enum SigmaGrid: String, Sendable, CaseIterable {
    /// `FlowUniPCMultistepScheduler.set_timesteps(N, shift:)`: pre-shift sigmas
    /// `np.linspace(float32(0.999), 0, N + 1)[:-1]`, so the first model timestep is 999. Used by UniPC (the
    /// official default) and, in this project, by Euler.
    case unipc
    /// The DPM++ path (`get_sampling_sigmas` + `retrieve_timesteps(sigmas:)`): pre-shift sigmas
    /// `np.linspace(1, 0, N + 1)[:N]`, so sigma_0 is exactly 1 and the first model timestep is 1000.
    case dpmSolver
}

/// The flow-matching sigma / timestep grid of a sampling run, bit for bit as the official Wan2.1 schedulers
/// build it (spec §8.2):
///
/// 1. pre-shift sigmas `p_i = fl(fl(i · d) + start)` for i = 0 … N−1 with `d = fl((0 − start) / N)` (NumPy's
///    `linspace`), `start = Double(Float(0.999))` = 0.99900001287460327 for `.unipc`, 1 for `.dpmSolver`;
/// 2. shift in float64: `σ_i = fl(fl(s · p_i) / fl(1 + fl((s − 1) · p_i)))`;
/// 3. model timesteps `t_i = Int64(trunc(fl(σ_i · 1000)))` from the float64 sigmas;
/// 4. the stored sigmas are `Float(σ_i)` followed by a final 0 (N + 1 values).
///
/// The grid must be strictly decreasing in float32 (always true for sane shifts); the integer timesteps may
/// repeat for large N (the official index-search bug of spec §8.2 does not apply: solvers count steps from 0).
public struct FlowMatchSchedule: Sendable, Equatable {
    /// `num_train_timesteps` of every Wan model.
    public static let trainTimesteps = 1000
    /// The largest accepted step count (a guard against absurd allocations).
    public static let maxSteps = 100_000
    /// σ_max of the UniPC grid: the float32 value of `1 − 1/1000` (= 0.99900001287460327).
    public static let unipcSigmaMax = Float(1.0 - 1.0 / 1000.0)

    /// Number of sampling steps N (model evaluations).
    public let steps: Int
    /// The shift s of `S(σ) = s·σ / (1 + (s − 1)·σ)`.
    public let shift: Double
    /// The pre-shift grid.
    public let grid: SigmaGrid
    /// N + 1 float32 sigmas, strictly decreasing, the last one 0 (what the solvers use).
    public let sigmas: [Float]
    /// N integer model timesteps `trunc(1000·σ_i)` (what the DiT's sinusoid receives).
    public let timesteps: [Int64]

    /// Builds the grid for `steps` steps and shift `shift`; throws `RuntimeError.invalidArgument` for steps < 1 or
    /// > `maxSteps`, a shift that is not finite and > 0, or a grid that is not strictly decreasing in float32.
    public init(steps: Int, shift: Double, grid: SigmaGrid = .unipc) throws {
        guard steps >= 1 else {
            throw RuntimeError.invalidArgument("sampling steps must be at least 1, got \(steps)")
        }
        guard steps <= Self.maxSteps else {
            throw RuntimeError.invalidArgument("sampling steps must be at most \(Self.maxSteps), got \(steps)")
        }
        guard shift.isFinite, shift > 0 else {
            throw RuntimeError.invalidArgument("sample shift must be a finite number > 0, got \(shift)")
        }
        let start: Double = grid == .unipc ? Double(Self.unipcSigmaMax) : 1
        let delta = 0 - start
        let increment = delta / Double(steps)
        var sigmas = [Float]()
        var timesteps = [Int64]()
        sigmas.reserveCapacity(steps + 1)
        timesteps.reserveCapacity(steps)
        for i in 0..<steps {
            let pre = Double(i) * increment + start
            let sigma = Self.shifted(pre, shift: shift)
            let scaled = sigma * Double(Self.trainTimesteps)
            timesteps.append(Int64(scaled.rounded(.towardZero)))
            sigmas.append(Float(sigma))
        }
        sigmas.append(0)
        for i in 0..<steps where !(sigmas[i] > sigmas[i + 1]) {
            throw RuntimeError.invalidArgument(
                "shift \(shift) with \(steps) steps gives a sigma grid that is not strictly decreasing in float32 "
                    + "(sigma[\(i)] = \(sigmas[i]), sigma[\(i + 1)] = \(sigmas[i + 1]))")
        }
        self.steps = steps
        self.shift = shift
        self.grid = grid
        self.sigmas = sigmas
        self.timesteps = timesteps
    }

    /// The shift map `S(σ) = s·σ / (1 + (s − 1)·σ)` evaluated in float64 in the official operation order.
    public static func shifted(_ sigma: Double, shift: Double) -> Double {
        (shift * sigma) / (1 + (shift - 1) * sigma)
    }
}
