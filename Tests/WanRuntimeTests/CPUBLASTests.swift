import Foundation
import Testing
@testable import WanRuntime

/// The CPU device's own threading of matrix products, its scratch pool and its host allocations.
@Suite struct CPUBLASTests {
    /// C = alpha·op(A)·op(B) + beta·C0 in float64, row-major with leading dimensions.
    static func reference(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
                          b: [Float], ldb: Int, beta: Float, c0: [Float], ldc: Int) -> [Double] {
        var c = c0.map(Double.init)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                c[i * ldc + j] = Double(alpha) * s + Double(beta) * Double(c0[i * ldc + j])
            }
        }
        return c
    }

    @Test(arguments: [1, 2, 3, 4, 6])
    func splitProductsEqualFloat64(parts: Int) throws {
        var rng = TestRandom(seed: UInt64(40 + parts))
        // Odd shapes, each over the split threshold, tall, wide and square; every transpose; padded leading
        // dimensions; beta 0 (C's old contents ignored, NaN included) and beta 1 (accumulate).
        let shapes = [(m: 131, n: 257, k: 97), (m: 1030, n: 37, k: 61), (m: 19, n: 1100, k: 129), (m: 300, n: 301, k: 33)]
        for (m, n, k) in shapes {
            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                for beta: Float in [0, 1] {
                    let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 5, ldc = n + 2
                    let a = rng.floats((transA ? k : m) * lda), b = rng.floats((transB ? n : k) * ldb)
                    var c = rng.floats(m * ldc)
                    if beta == 0 { c[0] = .nan }
                    let alpha: Float = 0.75
                    let want = Self.reference(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                              b: b, ldb: ldb, beta: beta, c0: beta == 0 ? c.map { $0.isNaN ? 0 : $0 } : c, ldc: ldc)
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            c.withUnsafeMutableBufferPointer { cp in
                                CPUBLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                              a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb, beta: beta,
                                              c: cp.baseAddress!, ldc: ldc, device: .shared, threads: parts)
                            }
                        }
                    }
                    let err = maxRelativeError(c, want)
                    #expect(err < 1e-5, "parts \(parts) \(m)x\(n)x\(k) tA \(transA) tB \(transB) beta \(beta): \(err)")
                }
            }
        }
    }

    @Test func gridPacksLeastAndKeepsBlocksUseful() {
        // The VAE's convolution W[96, 2592]·col[2592, 99840]: split the pixels (W is packed twice, col once).
        #expect(CPUBLAS.grid(m: 96, n: 99_840, k: 2592, parts: 2) == (1, 2))
        // The DiT's x[780, 1536]·Wᵀ[1536, 8960]: split the weight's columns.
        #expect(CPUBLAS.grid(m: 780, n: 8960, k: 1536, parts: 2) == (1, 2))
        // Tall and thin: split the rows.
        #expect(CPUBLAS.grid(m: 32_760, n: 16, k: 1536, parts: 4) == (4, 1))
        // Both large with 16 parts: a 2-D grid.
        let g = CPUBLAS.grid(m: 32_760, n: 8960, k: 1536, parts: 16)
        #expect(g.pm * g.pn == 16 && g.pm > 1 && g.pn > 1)
        // No block under 16 rows or columns unless there is one block that way.
        #expect(CPUBLAS.grid(m: 20, n: 20, k: 4096, parts: 4) == (1, 1))
    }

    @Test func blockBoundsCoverTheRangeInOrder() {
        for total in [1, 15, 16, 17, 100, 1031] {
            for p in 1...7 {
                let b = (0...p).map { CPUBLAS.bound($0, of: p, total) }
                #expect(b.first == 0 && b.last == total)
                #expect(zip(b, b.dropFirst()).allSatisfy { $0 <= $1 })
                #expect(b.dropFirst().dropLast().allSatisfy { $0 % 16 == 0 || $0 == total })
            }
        }
    }

    @Test func scratchIsReusedAndBounded() {
        let mib = 1 << 20
        let pool = CPUMemory(keptLimit: 48 * mib)
        let floats = 4 * mib   // 16 MiB: a pooled block
        let first = pool.withFloats(floats) { UnsafeMutableRawPointer($0) }
        // Given back and taken again: the same block (no new mapping), also for a smaller need.
        #expect(pool.withFloats(floats) { UnsafeMutableRawPointer($0) } == first)
        #expect(pool.withFloats(floats / 2) { UnsafeMutableRawPointer($0) } == first)
        // Two borrowers at once get different blocks.
        pool.withFloats(floats) { outer in
            pool.withFloats(floats) { inner in #expect(outer != inner) }
        }
        #expect(pool.keptBytes == 32 * mib)
        // A block over the limit is unmapped when given back; those under it are kept.
        pool.withFloats(16 * mib) { $0[0] = 1 }
        #expect(pool.keptBytes == 32 * mib)
        // Nothing borrowed for a nil need.
        pool.withFloats(ifNeeded: nil) { #expect($0 == nil) }
        pool.releaseKept()
    }

    @Test func hostBlocksAreAligned() throws {
        let pool = CPUMemory(keptLimit: 64 << 20)
        for bytes in [1, 100, 4096, CPUMemory.poolThreshold - 1, CPUMemory.poolThreshold, 3 * CPUMemory.poolThreshold + 5] {
            let p = try #require(pool.allocate(bytes))
            defer { pool.free(p) }
            #expect(Int(bitPattern: p) % (bytes >= CPUMemory.poolThreshold ? 4096 : 64) == 0)
            // The whole block is writable.
            p.initializeMemory(as: UInt8.self, repeating: 7, count: max(bytes, 64))
            #expect(p.load(fromByteOffset: max(bytes, 64) - 1, as: UInt8.self) == 7)
        }
    }

    @Test func largeBlocksAreKeptAndReused() throws {
        let mib = 1 << 20
        let pool = CPUMemory(keptLimit: 48 * mib)
        let a = try #require(pool.allocate(16 * mib))
        a.storeBytes(of: 42, as: Int.self)
        pool.free(a)
        #expect(pool.keptBytes == 16 * mib)
        // The kept block serves a request it holds (up to 4x smaller), with its contents (its pages) intact.
        let b = try #require(pool.allocate(9 * mib))
        #expect(b == a && b.load(as: Int.self) == 42)
        // A larger request maps a new block; both come back to the pool.
        let c = try #require(pool.allocate(24 * mib))
        #expect(c != a)
        pool.free(b)
        pool.free(c)
        #expect(pool.keptBytes == 40 * mib)
        #expect(pool.releaseKept() == 40 * mib && pool.keptBytes == 0)
        // A much smaller request (over 4x) takes the smallest block that holds it, cut down to its size.
        let big = try #require(pool.allocate(40 * mib))
        pool.free(big)
        let d = try #require(pool.allocate(8 * mib))
        #expect(d == big)
        pool.free(d)
        #expect(pool.keptBytes == 8 * mib)
        // A block over the limit is not kept.
        let f = try #require(pool.allocate(64 * mib))
        pool.free(f)
        #expect(pool.keptBytes == 8 * mib)
        // Over the limit: the newest block stays, the oldest kept ones are unmapped first.
        let x = try #require(pool.allocate(30 * mib)), y = try #require(pool.allocate(30 * mib))
        pool.free(x)
        #expect(pool.keptBytes == 38 * mib)
        pool.free(y)
        #expect(pool.keptBytes == 30 * mib)
        // Small blocks are malloc's, never kept.
        let g = try #require(pool.allocate(1000))
        pool.free(g)
        #expect(pool.releaseKept() == 30 * mib)
        #expect(pool.keptBytes == 0)
    }
}
