import Foundation
import Testing
import WanRuntime

@testable import WanPipelines

/// Goldens written by Fixtures/generate_samplers.py from the official Wan2.1 solver formulas (float64).
enum SamplerFixtures {
    nonisolated(unsafe) static let root: [String: Any] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/samplers_expected.json")
        guard let data = try? Data(contentsOf: url),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return obj
    }()

    static func doubles(_ any: Any?) throws -> [Double] {
        let list = try #require(any as? [Any])
        return try list.map { try #require(($0 as? NSNumber)?.doubleValue) }
    }

    static func floats(_ any: Any?) throws -> [Float] { try doubles(any).map { Float($0) } }

    static func entries(_ key: String) throws -> [[String: Any]] {
        try #require(root[key] as? [[String: Any]], "fixture file missing or without \(key)")
    }
}

/// max|a − b| / max|b| (the norm-wise relative error used by every trajectory check).
private func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    guard a.count == b.count else { return .infinity }
    var num = 0.0, den = 0.0
    for (x, y) in zip(a, b) {
        num = max(num, abs(Double(x) - y))
        den = max(den, abs(y))
    }
    return num / max(den, 1e-30)
}

/// The case name of a RuntimeError (for checking which error was thrown).
private func errorKind(_ error: any Error) -> String {
    guard let e = error as? RuntimeError else { return "not a RuntimeError: \(error)" }
    switch e {
    case .invalidArgument: return "invalidArgument"
    case .shapeMismatch: return "shapeMismatch"
    case .invalidState: return "invalidState"
    default: return "other: \(e)"
    }
}

private func expectError(
    _ kind: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected a RuntimeError.\(kind), nothing was thrown", sourceLocation: sourceLocation)
    } catch {
        #expect(errorKind(error) == kind, "\(error)", sourceLocation: sourceLocation)
    }
}

/// The synthetic models of the fixtures, evaluated in float32.
private struct SyntheticModel {
    let kind: String
    let a: [Float], b: [Float], n: Int

    func matvec(_ m: [Float], _ x: [Float]) -> [Float] {
        (0..<n).map { r in
            var acc: Float = 0
            for c in 0..<n { acc += m[r * n + c] * x[c] }
            return acc
        }
    }

    func callAsFunction(_ x: [Float], _ sigma: Float) -> (cond: [Float], uncond: [Float]) {
        switch kind {
        case "scalar":
            let v = x.map { $0 - 0.5 * sigma * $0 }
            return (v, v)
        case "linear":
            let v = matvec(a, x)
            return (v, v)
        default:
            return (matvec(a, x), matvec(b, x))
        }
    }
}

@Suite struct SamplerScheduleTests {
    /// Spec §8.8: the model timesteps of the official UniPC path (and one DPM++ grid).
    @Test func specGoldenTimesteps() throws {
        let golden: [(SigmaGrid, Int, Double, String)] = [
            (.unipc, 50, 5, "999,995,991,987,982,978,973,968,963,957,952,946,940,934,927,920,913,906,898,890,882,873,863,854,843,833,821,809,796,783,768,753,737,720,701,681,660,636,611,584,555,522,487,448,405,356,302,241,172,92"),
            (.unipc, 50, 8, "999,997,994,991,989,986,983,979,976,973,969,965,961,957,953,948,944,939,934,928,922,916,910,903,896,888,880,871,862,852,841,830,817,804,789,773,756,737,716,692,666,636,603,565,521,470,409,337,249,140"),
            (.unipc, 50, 3, "999,992,985,978,971,963,956,948,939,931,922,913,904,894,884,874,864,853,841,829,817,805,792,778,764,749,734,718,701,684,666,647,627,606,585,562,538,512,486,458,428,396,363,327,290,249,206,160,111,57"),
            (.unipc, 40, 3, "999,991,982,973,963,954,944,933,922,911,899,887,874,861,847,832,817,801,785,767,749,730,710,688,666,642,617,590,562,531,499,465,428,388,345,299,249,195,136,71"),
            (.unipc, 40, 5, "999,994,989,983,978,972,965,959,952,944,937,929,920,911,902,892,882,870,859,846,833,818,803,786,768,749,728,706,681,654,624,591,555,514,468,416,356,288,208,113"),
            (.unipc, 50, 16, "999,998,997,995,994,993,991,989,988,986,984,982,980,978,976,973,971,968,965,963,959,956,953,949,945,941,936,931,926,920,914,907,899,891,882,872,861,848,834,818,799,778,752,722,685,639,581,504,399,245"),
            (.dpmSolver, 50, 5, "1000,995,991,987,982,978,973,968,963,957,952,946,940,934,927,921,913,906,898,890,882,873,864,854,844,833,821,809,797,783,769,753,737,720,701,681,660,637,612,585,555,523,487,448,405,357,303,241,172,92"),
        ]
        for (grid, steps, shift, text) in golden {
            let schedule = try FlowMatchSchedule(steps: steps, shift: shift, grid: grid)
            let expected = text.split(separator: ",").map { Int64($0)! }
            #expect(schedule.timesteps == expected, "\(grid) N=\(steps) s=\(shift)")
            #expect(schedule.sigmas.count == steps + 1)
            #expect(schedule.sigmas.last == 0)
        }
        // Spec §8.2 / §8.8: σ_max = float32(0.999) and the N = 50, s = 5 sigmas.
        #expect(Double(FlowMatchSchedule.unipcSigmaMax) == 0.99900001287460327)
        let s = try FlowMatchSchedule(steps: 50, shift: 5)
        let listed: [(Int, Double)] = [
            (0, 0.99979985), (1, 0.99573237), (2, 0.99153048), (3, 0.98718739), (47, 0.24174035),
            (48, 0.17226514), (49, 0.09250686), (50, 0),
        ]
        // The spec prints 8 decimals: within half a unit of the last one.
        for (i, value) in listed { #expect(abs(Double(s.sigmas[i]) - value) <= 5e-9, "sigma[\(i)]") }
        let dpm = try SamplerKind.dpmPlusPlus.schedule(steps: 50, shift: 5)
        #expect(dpm.sigmas[0] == 1 && dpm.grid == .dpmSolver)
    }

    /// Every grid of the fixture (NumPy's linspace + shift of the official code), bit for bit.
    @Test func fixtureGridsBitExact() throws {
        let entries = try SamplerFixtures.entries("schedules")
        #expect(entries.count >= 20)
        for e in entries {
            let grid: SigmaGrid = (e["grid"] as? String) == "dpm" ? .dpmSolver : .unipc
            let steps = try #require(e["steps"] as? Int)
            let shift = try #require((e["shift"] as? NSNumber)?.doubleValue)
            let schedule = try FlowMatchSchedule(steps: steps, shift: shift, grid: grid)
            let sigmas = try SamplerFixtures.floats(e["sigmas"])
            let timesteps = try SamplerFixtures.doubles(e["timesteps"]).map { Int64($0) }
            #expect(schedule.sigmas.map(\.bitPattern) == sigmas.map(\.bitPattern), "\(grid) N=\(steps) s=\(shift)")
            #expect(schedule.timesteps == timesteps, "\(grid) N=\(steps) s=\(shift)")
        }
    }

    /// Bad settings are typed errors, before any work.
    @Test func badScheduleArguments() {
        expectError("invalidArgument") { _ = try FlowMatchSchedule(steps: 0, shift: 5) }
        expectError("invalidArgument") { _ = try FlowMatchSchedule(steps: -3, shift: 5) }
        expectError("invalidArgument") { _ = try FlowMatchSchedule(steps: FlowMatchSchedule.maxSteps + 1, shift: 5) }
        expectError("invalidArgument") { _ = try FlowMatchSchedule(steps: 50, shift: -1) }
        expectError("invalidArgument") { _ = try FlowMatchSchedule(steps: 50, shift: 0) }
        expectError("invalidArgument") { _ = try FlowMatchSchedule(steps: 50, shift: .nan) }
        expectError("invalidArgument") { _ = try FlowMatchSchedule(steps: 50, shift: .infinity) }
        // A shift so large that the float32 sigmas all round to 1: not strictly decreasing.
        expectError("invalidArgument") { _ = try FlowMatchSchedule(steps: 50, shift: 1e12) }
        expectError("invalidArgument") { _ = try SamplerKind.unipc.schedule(steps: 0, shift: 5) }
    }
}

@Suite struct SamplerSolverTests {
    /// Whole runs of the three solvers with the synthetic models, against the float64 official formulas:
    /// every sample the model sees (N ≤ 10) and the final latent, relative error ≤ 1e-5.
    @Test func trajectoriesMatchOfficialFormulas() throws {
        let x0 = try SamplerFixtures.floats(SamplerFixtures.root["x0"])
        let a = try SamplerFixtures.floats(SamplerFixtures.root["A"])
        let b = try SamplerFixtures.floats(SamplerFixtures.root["B"])
        let guidance = try #require((SamplerFixtures.root["guidance"] as? NSNumber)?.floatValue)
        let entries = try SamplerFixtures.entries("trajectories")
        #expect(entries.count == 72)
        var worst = 0.0
        for e in entries {
            let solverName = try #require(e["solver"] as? String)
            let kind = try #require(SamplerKind(rawValue: solverName))
            let model = SyntheticModel(kind: try #require(e["model"] as? String), a: a, b: b, n: x0.count)
            let steps = try #require(e["steps"] as? Int)
            let shift = try #require((e["shift"] as? NSNumber)?.doubleValue)
            let label = "\(solverName) \(model.kind) N=\(steps) s=\(shift)"
            let schedule = try kind.schedule(steps: steps, shift: shift)

            var visited: [[Float]] = []
            var seen: [(Int64, Float)] = []
            let result = try FlowSampling.sample(
                noise: x0, steps: steps, shift: shift, sampler: kind, guidance: guidance
            ) { x, t, sigma in
                visited.append(x)
                seen.append((t, sigma))
                return model(x, sigma)
            }
            #expect(result.timesteps == schedule.timesteps, "\(label)")
            #expect(result.sigmas == schedule.sigmas, "\(label)")
            #expect(seen.map(\.0) == schedule.timesteps, "\(label)")
            #expect(seen.map(\.1) == Array(schedule.sigmas.dropLast()), "\(label)")

            let final = try SamplerFixtures.doubles(e["final"])
            let err = relativeError(result.latent, final)
            worst = max(worst, err)
            #expect(err <= 1e-5, "\(label): final latent relative error \(err)")
            if let expectedVisited = e["visited"] as? [Any] {
                #expect(expectedVisited.count == steps, "\(label)")
                for (i, expected) in expectedVisited.enumerated() where i < visited.count {
                    let err = relativeError(visited[i], try SamplerFixtures.doubles(expected))
                    worst = max(worst, err)
                    #expect(err <= 1e-5, "\(label): x_\(i) relative error \(err)")
                }
            }
        }
        print("sampler trajectories: worst relative error vs float64 official formulas \(worst)")
    }

    /// Final steps: UniPC and DPM++ return exactly the last data prediction x − σ·v (σ_N = 0), and DPM++'s first
    /// step from σ_0 = 1 is σ_1·x_0 + (1 − σ_1)·m_0 with m_0 = x_0 − v_0.
    @Test func limitStepsAreExact() throws {
        let x: [Float] = [0.5, -1.25, 2, 0.1, -0.7]
        let v: [Float] = [0.3, 0.2, -1.5, 0.05, 0.9]
        for kind in [SamplerKind.unipc, .dpmPlusPlus] {
            let schedule = try kind.schedule(steps: 1, shift: 5)
            var solver = kind.makeSolver(schedule: schedule)
            let out = try solver.step(modelOutput: v, timestepIndex: 0, sample: x)
            let sigma = schedule.sigmas[0]
            #expect(out == zip(x, v).map { $0 - sigma * $1 }, "\(kind)")
            #expect(solver.stepIndex == 1)
        }
        let dpm = try FlowMatchSchedule(steps: 3, shift: 5, grid: .dpmSolver)
        var solver = DPMSolverPlusPlus(schedule: dpm)
        let s1 = dpm.sigmas[1]
        let x1 = try solver.step(modelOutput: v, timestepIndex: 0, sample: x)
        let m0 = zip(x, v).map { $0 - 1 * $1 }
        #expect(x1 == zip(x, m0).map { s1 * $0 + (1 - s1) * $1 })
        // Step 1: r₀ = ∞ so D1 = 0 — the step equals the first-order (DDIM-like) update.
        let v1: [Float] = [-0.2, 0.4, 0.6, -0.1, 0.3]
        let x2 = try solver.step(modelOutput: v1, timestepIndex: 1, sample: x1)
        let s2 = dpm.sigmas[2]
        let h = FlowMath.lambda(s2) - FlowMath.lambda(s1)
        let c2 = (1 - s2) * (exp(-h) - 1)
        let m1 = zip(x1, v1).map { $0 - s1 * $1 }
        #expect(x2 == zip(x1, m1).map { (s2 / s1) * $0 - c2 * $1 })
        #expect(x2.allSatisfy { $0.isFinite })

        // UniPC on the DPM grid (σ_0 = 1, never done by the official code): the λ = −∞ limits give finite
        // values, and its order-1 first step is the same exponential-integrator step as DPM++'s.
        var unipc = UniPCSolver(schedule: try FlowMatchSchedule(steps: 4, shift: 5, grid: .dpmSolver))
        var dpm4 = DPMSolverPlusPlus(schedule: try FlowMatchSchedule(steps: 4, shift: 5, grid: .dpmSolver))
        var xu = x, xd = x
        for i in 0..<4 {
            let vu = xu.map { $0 - 0.5 * $0 }
            let vd = xd.map { $0 - 0.5 * $0 }
            xu = try unipc.step(modelOutput: vu, timestepIndex: i, sample: xu)
            xd = try dpm4.step(modelOutput: vd, timestepIndex: i, sample: xd)
            if i == 0 { #expect(xu == xd) }
            #expect(xu.allSatisfy { $0.isFinite }, "step \(i)")
        }
    }

    /// The 2×2 solve of the order-2 corrector agrees with Cramer's rule on both pivoting branches.
    @Test func correctorSystemSolve() {
        for (rk, b1, b2) in [(Float(-0.9), Float(0.4), Float(0.7)), (-1.3, 0.45, 0.62), (0.5, -0.3, 0.2), (2.5, 1, 3)] {
            let (r0, r1) = UniPCSolver.solve2x2(rk: rk, b1: b1, b2: b2)
            let e0 = Double(b1 - b2) / Double(1 - rk)
            let e1 = Double(b1) - e0
            #expect(abs(Double(r0) - e0) <= 1e-6 * max(1, abs(e0)))
            #expect(abs(Double(r1) - e1) <= 1e-6 * max(1, abs(e1)))
            #expect(abs(Double(r0) + Double(r1) - Double(b1)) <= 1e-6)
        }
    }

    /// Steps out of order, past the end, with mismatched lengths or an empty sample are typed errors; reset()
    /// makes a solver walk again with identical results.
    @Test func solverStateErrorsAndReset() throws {
        let schedule = try FlowMatchSchedule(steps: 3, shift: 5)
        let x: [Float] = [1, 2, 3], v: [Float] = [0.1, 0.2, 0.3]
        for kind in SamplerKind.allCases {
            var solver = kind.makeSolver(schedule: try kind.schedule(steps: 3, shift: 5))
            expectError("invalidState") { _ = try solver.step(modelOutput: v, timestepIndex: 1, sample: x) }
            expectError("shapeMismatch") { _ = try solver.step(modelOutput: [1, 2], timestepIndex: 0, sample: x) }
            expectError("invalidArgument") { _ = try solver.step(modelOutput: [], timestepIndex: 0, sample: []) }
            var outs: [[Float]] = []
            var xi = x
            for i in 0..<3 {
                xi = try solver.step(modelOutput: v, timestepIndex: i, sample: xi)
                outs.append(xi)
                if i == 0 {
                    expectError("shapeMismatch") {
                        _ = try solver.step(modelOutput: [1, 2], timestepIndex: 1, sample: [1, 2])
                    }
                }
            }
            #expect(solver.stepIndex == 3)
            expectError("invalidState") { _ = try solver.step(modelOutput: v, timestepIndex: 3, sample: xi) }
            solver.reset()
            #expect(solver.stepIndex == 0)
            xi = x
            for i in 0..<3 {
                xi = try solver.step(modelOutput: v, timestepIndex: i, sample: xi)
                #expect(xi == outs[i], "\(kind) step \(i) after reset")
            }
        }
        #expect(schedule.steps == 3)
    }

    /// The loop rejects bad settings and model outputs of the wrong length, and passes the model's own errors on.
    @Test func samplingLoopErrors() {
        struct Boom: Error {}
        let noise: [Float] = [0.1, 0.2, 0.3]
        let ok: FlowSampling.GuidedModel = { x, _, _ in (x, x) }
        expectError("invalidArgument") { _ = try FlowSampling.sample(noise: noise, steps: 0, shift: 5, guidance: 5, model: ok) }
        expectError("invalidArgument") { _ = try FlowSampling.sample(noise: noise, steps: 4, shift: -2, guidance: 5, model: ok) }
        expectError("invalidArgument") { _ = try FlowSampling.sample(noise: noise, steps: 4, shift: 5, guidance: .nan, model: ok) }
        expectError("invalidArgument") { _ = try FlowSampling.sample(noise: [], steps: 4, shift: 5, guidance: 5, model: ok) }
        expectError("shapeMismatch") {
            _ = try FlowSampling.sample(noise: noise, steps: 4, shift: 5, guidance: 5) { x, _, _ in (x, [1]) }
        }
        #expect(throws: Boom.self) {
            _ = try FlowSampling.sample(noise: noise, steps: 4, shift: 5, guidance: 5) { _, _, _ in throw Boom() }
        }
        var progress: [Int] = []
        let result = try? FlowSampling.sample(
            noise: noise, steps: 4, shift: 5, sampler: .euler, guidance: 5, onStep: { done, total in
                progress.append(done)
                #expect(total == 4)
            }, model: ok)
        #expect(progress == [1, 2, 3, 4])
        #expect(result?.latent.count == 3)
    }
}

@Suite struct SamplerGuidanceTests {
    @Test func classifierFreeGuidanceCombine() throws {
        let cond: [Float] = [1, -2, 0.5, 3.25, 0]
        let uncond: [Float] = [0.5, 1, -0.5, 3, 2]
        for g: Float in [0, 1, 5, 7.5, -1] {
            let v = try classifierFreeGuidance(cond: cond, uncond: uncond, scale: g)
            for j in cond.indices {
                let expected = Double(uncond[j]) + Double(g) * (Double(cond[j]) - Double(uncond[j]))
                #expect(abs(Double(v[j]) - expected) <= 1e-6 * max(1, abs(expected)), "g=\(g) j=\(j)")
            }
            if g == 0 { #expect(v == uncond) }
        }
        #expect(try classifierFreeGuidance(cond: [], uncond: [], scale: 5) == [])
        expectError("shapeMismatch") { _ = try classifierFreeGuidance(cond: [1, 2], uncond: [1], scale: 5) }
        expectError("invalidArgument") { _ = try classifierFreeGuidance(cond: [1], uncond: [1], scale: .infinity) }
        expectError("invalidArgument") { _ = try classifierFreeGuidance(cond: [1], uncond: [1], scale: .nan) }
    }
}

@Suite struct SeededNoiseTests {
    /// The first values for several seeds, bit for bit as the generator script's re-implementation.
    @Test func goldenValues() throws {
        let entries = try SamplerFixtures.entries("noise")
        #expect(entries.contains { ($0["seed"] as? String) == "42" })
        for e in entries {
            let seedText = try #require(e["seed"] as? String)
            let seed = try #require(UInt64(seedText))
            let count = try #require(e["count"] as? Int)
            let expected = try SamplerFixtures.floats(e["values"])
            let got = try SeededNoise.normal(count: count, seed: seed)
            #expect(got.map(\.bitPattern) == expected.map(\.bitPattern), "seed \(seed)")
        }
        // Seed 42, written out (also in the fixture).
        let prefix: [Float] = try SeededNoise.normal(count: 4, seed: 42)
        let fixture42 = try #require(try SamplerFixtures.entries("noise").first { ($0["seed"] as? String) == "42" })
        #expect(prefix == Array(try SamplerFixtures.floats(fixture42["values"]).prefix(4)))
    }

    @Test func determinismAndStatistics() throws {
        let small = 10_001
        let a0 = try SeededNoise.normal(count: small, seed: 42)
        #expect(a0 == (try SeededNoise.normal(count: small, seed: 42)))
        let c = try SeededNoise.normal(count: small, seed: 43)
        let differing = zip(a0, c).filter { $0 != $1 }.count
        #expect(differing > small - 5)
        // Large enough for the parallel fill (> 65,536 pairs).
        let n = 140_001
        let a = try SeededNoise.normal(count: n, seed: 42)
        #expect(a.count == n)
        #expect(Array(a.prefix(small)) == a0)
        // Prefix property: element j depends only on (seed, j).
        #expect(Array(a.prefix(1001)) == (try SeededNoise.normal(count: 1001, seed: 42)))
        // The parallel fill (> 65,536 pairs) agrees with the per-pair definition.
        for p in [0, 1, 65_535, 65_536, 65_537, 70_000] {
            let (z0, z1) = SeededNoise.pair(seed: 42, index: UInt64(p))
            #expect(a[2 * p] == Float(z0))
            if 2 * p + 1 < n { #expect(a[2 * p + 1] == Float(z1)) }
        }
        var sum = 0.0, sumSq = 0.0, beyond3 = 0
        for x in a {
            sum += Double(x)
            sumSq += Double(x) * Double(x)
            if abs(x) > 3 { beyond3 += 1 }
        }
        let mean = sum / Double(n), std = (sumSq / Double(n) - mean * mean).squareRoot()
        #expect(abs(mean) < 0.015, "mean \(mean)")
        #expect(abs(std - 1) < 0.015, "std \(std)")
        // P(|z| > 3) = 0.0027: about 378 ± 20 of 140k.
        #expect(beyond3 > 300 && beyond3 < 460, "\(beyond3) values beyond 3 sigma")
        #expect(a.allSatisfy { $0.isFinite })
    }

    @Test func shapesAndBadArguments() throws {
        let shaped = try SeededNoise.normal(shape: [2, 3, 5], seed: 7)
        #expect(shaped == (try SeededNoise.normal(count: 30, seed: 7)))
        #expect(try SeededNoise.normal(shape: [4, 0, 3], seed: 7).isEmpty)
        #expect(try SeededNoise.normal(count: 0, seed: 7).isEmpty)
        expectError("invalidArgument") { _ = try SeededNoise.normal(count: -1, seed: 1) }
        expectError("invalidArgument") { _ = try SeededNoise.normal(shape: [16, -2, 4], seed: 1) }
        expectError("invalidArgument") { _ = try SeededNoise.normal(shape: [1 << 40, 1 << 40], seed: 1) }
        expectError("invalidArgument") { _ = try SeededNoise.normal(count: SeededNoise.maxCount + 1, seed: 1) }
    }

    /// The portable ln / sin / cos agree with the platform's to ~1e-15, and SplitMix64 is the published one.
    @Test func portableMath() {
        #expect(SeededNoise.splitMix64(seed: 0, index: 0) == 0xE220_A839_7B1D_CDAF)
        var worst = 0.0
        for k in stride(from: UInt64(1), to: 1 << 53, by: 1_234_567_890_123) {
            let u = Double(k) * 0x1p-53
            let ref = Foundation.log(u)
            worst = max(worst, abs(SeededNoise.deterministicLog(u) - ref) / max(abs(ref), 1e-300))
        }
        #expect(SeededNoise.deterministicLog(1) == 0)
        #expect(worst < 1e-15, "log relative error \(worst)")
        var worstTrig = 0.0
        for i in 0...1000 {
            let r = Double(i) / 1000 - 0.5
            let (s, c) = SeededNoise.sinCosQuarter(r)
            let x = r * Double.pi / 2
            worstTrig = max(worstTrig, abs(s - Foundation.sin(x)), abs(c - Foundation.cos(x)))
        }
        #expect(worstTrig < 1e-15, "sin/cos error \(worstTrig)")
    }
}
