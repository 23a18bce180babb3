import WanRuntime

/// What a sampling run produced: the final latent and the grid it walked.
public struct SamplingResult: Sendable, Equatable {
    /// The final latent x_N (same layout as the noise).
    public let latent: [Float]
    /// The N integer timesteps the model was given, in order.
    public let timesteps: [Int64]
    /// The N + 1 float32 sigmas (the last one 0).
    public let sigmas: [Float]
}

/// The sampling loop of the official `WanT2V.generate` (spec §1.2, §8): x_0 = noise (no σ_0 scaling); for each
/// step i the model is evaluated on x_i with the integer timestep t_i (and σ_i for models that want it), its
/// conditional and unconditional velocities are combined by classifier-free guidance, and the solver gives
/// x_{i+1}.
public enum FlowSampling {
    /// The model of a sampling run: given the sample x_i, the timestep t_i and σ_i, returns the conditional and
    /// unconditional velocities (each as long as x_i).
    public typealias GuidedModel = (_ sample: [Float], _ timestep: Int64, _ sigma: Float) throws
        -> (cond: [Float], uncond: [Float])

    /// Runs `steps` steps of `sampler` with shift `shift` and guidance scale `guidance` from `noise`. `onStep`
    /// (if given) is called after each step with the number of steps done and the total. Throws `RuntimeError`
    /// for bad settings (steps < 1, shift ≤ 0, non-finite guidance, empty noise), model outputs of the wrong
    /// length, and whatever `model` throws.
    public static func sample(
        noise: [Float], steps: Int, shift: Double, sampler: SamplerKind = .unipc, guidance: Float,
        onStep: ((_ done: Int, _ total: Int) -> Void)? = nil,
        model: GuidedModel
    ) throws -> SamplingResult {
        let schedule = try sampler.schedule(steps: steps, shift: shift)
        var solver = sampler.makeSolver(schedule: schedule)
        return try sample(noise: noise, solver: &solver, guidance: guidance, onStep: onStep, model: model)
    }

    /// Runs a given solver over its whole schedule from `noise` (the solver is reset first).
    public static func sample(
        noise: [Float], solver: inout any FlowSolver, guidance: Float,
        onStep: ((_ done: Int, _ total: Int) -> Void)? = nil,
        model: GuidedModel
    ) throws -> SamplingResult {
        guard guidance.isFinite else {
            throw RuntimeError.invalidArgument("guidance scale must be finite, got \(guidance)")
        }
        guard !noise.isEmpty else {
            throw RuntimeError.invalidArgument("sampling: the initial noise is empty")
        }
        solver.reset()
        let schedule = solver.schedule
        var x = noise
        for i in 0..<schedule.steps {
            let (cond, uncond) = try model(x, schedule.timesteps[i], schedule.sigmas[i])
            guard cond.count == x.count, uncond.count == x.count else {
                throw RuntimeError.shapeMismatch(
                    "sampling step \(i): the model returned \(cond.count) conditional and \(uncond.count) "
                        + "unconditional values for a sample of \(x.count)")
            }
            let v = try classifierFreeGuidance(cond: cond, uncond: uncond, scale: guidance)
            x = try solver.step(modelOutput: v, timestepIndex: i, sample: x)
            onStep?(i + 1, schedule.steps)
        }
        return SamplingResult(latent: x, timesteps: schedule.timesteps, sigmas: schedule.sigmas)
    }
}
