import COpenBLAS
import Foundation

/// The CPU's matrix products: one OpenBLAS `sgemm` per part of the output, single-threaded, each part on
/// one of the CPU device's own workers — the device owns every thread. OpenBLAS's own threading is off
/// (`openblas_set_num_threads(1)`) because its idle workers spin (`sched_yield`, ~0.1 s after every call)
/// and take the cores from the element-wise work between products (measured on 2 cores: the VAE decode
/// 38.7 → 35.7 s with OpenBLAS's spin cut to nothing). `WAN_CPU_BLAS=openblas` hands every product to
/// OpenBLAS's threading instead.
enum CPUBLAS {
    /// Whether products are split over the device's workers (default) rather than threaded by OpenBLAS.
    static let ownThreads: Bool = {
        guard let env = getenv("WAN_CPU_BLAS"), env.pointee != 0 else { return true }
        return String(cString: env) != "openblas"
    }()

    /// Configures OpenBLAS for the chosen threading (once, when the CPU device is made).
    static func configure() {
        if ownThreads { openblas_set_num_threads(1) }
    }

    /// A product this small (multiply-adds) runs in one call: splitting it costs more than it saves.
    static let splitThreshold = 1 << 21

    /// How C [m × n] is cut for `parts` workers: `pm` row blocks × `pn` column blocks with pm·pn = parts,
    /// the grid that packs least (each part packs its rows of A and its columns of B: pn·|A| + pm·|B|
    /// elements in all), with parts of at least 16 rows and 16 columns.
    static func grid(m: Int, n: Int, k: Int, parts: Int) -> (pm: Int, pn: Int) {
        var best = (pm: 1, pn: 1), bestCost = Int.max
        for pm in 1...max(1, parts) where parts % pm == 0 {
            let pn = parts / pm
            guard m / pm >= 16 || pm == 1, n / pn >= 16 || pn == 1 else { continue }
            let cost = pn * m * k + pm * k * n
            if cost < bestCost { (best, bestCost) = ((pm, pn), cost) }
        }
        return best
    }

    /// Boundary `i` of `p` blocks over `total`: on multiples of 16 (OpenBLAS's register tiles), the last
    /// block taking the rest.
    static func bound(_ i: Int, of p: Int, _ total: Int) -> Int {
        i == p ? total : min(total, (total * i / p + 8) / 16 * 16)
    }

    /// C = alpha·op(A)·op(B) + beta·C in row-major storage (op = transpose when `transA`/`transB`), with
    /// leading dimensions as cblas takes them. `threads` 1: one call on the calling thread (already inside
    /// a worker); nil: split over as many parts as the device has workers; n: over n parts.
    static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, device: CPUDevice, threads: Int? = nil) {
        guard m > 0, n > 0 else { return }
        let parts = threads ?? device.threads
        let (pm, pn) = ownThreads && parts > 1 && m * n * k >= splitThreshold ? grid(m: m, n: n, k: k, parts: parts) : (1, 1)
        let call = { (r0: Int, r1: Int, c0: Int, c1: Int) in
            guard r1 > r0, c1 > c0 else { return }
            let ap = transA ? a + r0 : a + r0 * lda
            let bp = transB ? b + c0 * ldb : b + c0
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        blasint(r1 - r0), blasint(c1 - c0), blasint(k), alpha, ap, blasint(lda), bp, blasint(ldb),
                        beta, c + r0 * ldc + c0, blasint(ldc))
        }
        if pm * pn == 1 {
            call(0, m, 0, n)
            return
        }
        nonisolated(unsafe) let run = call
        DispatchQueue.concurrentPerform(iterations: pm * pn) { p in
            let i = p / pn, j = p % pn
            run(bound(i, of: pm, m), bound(i + 1, of: pm, m), bound(j, of: pn, n), bound(j + 1, of: pn, n))
        }
    }
}
