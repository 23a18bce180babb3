/// The loop budget of CPU Vulkan drivers: llvmpipe (lavapipe) ends every loop of a shader invocation, silently, once
/// all its loops together have iterated 65535 times (Mesa's LP_MAX_TGSI_LOOP_ITERATIONS: one counter per invocation,
/// loops it unrolls do not count), so a kernel whose invocations loop longer computes wrong results without an error.
/// Kernels estimate their loop iterations per invocation on such drivers, generously, and split the work (attention)
/// or refuse it with a clear error (GEMM and convolution, far beyond Wan's sizes).
enum LoopBudget {
    /// Loop iterations an invocation gets on a CPU Vulkan driver.
    static let iterations = 65535

    /// Throws unless `estimate` loop iterations per invocation fit the budget (always fits on GPUs).
    static func check(_ caps: Capabilities, estimate: Int, op: String, what: String) throws {
        guard caps.isSoftware, estimate > iterations else { return }
        throw RuntimeError.invalidArgument("\(op): \(what) needs about \(estimate) loop iterations per shader invocation; "
            + "\(caps.deviceName) stops every loop after \(iterations) (a CPU Vulkan driver's limit): run it on the CPU backend")
    }

    /// Loop iterations of one output tile of the tiled GEMM and convolution shaders over K: per BK slice the slice loop,
    /// its BK steps unless unrolled and the element loops of partial loads (calibrated on lavapipe: wrong results from
    /// K ≈ 56000 at BK 16).
    static func kLoop(k: Int, bk: Int, unrolled: Bool) -> Int { 1 + (k + bk - 1) / bk * ((unrolled ? 0 : bk) + 6) }

    /// Loop iterations of a row kernel (reduce, softmax, norms) whose `threadsPerRow` threads walk a row of `n` elements
    /// `passes` times, plus the tree reductions between passes.
    static func rowPasses(_ passes: Int, n: Int, threadsPerRow t: Int) -> Int { passes * ((n + t - 1) / t) + 64 }
}
