import Foundation
import Testing
@testable import WanRuntime

/// One GEMM problem: shapes, layouts, dtypes and epilogue.
private struct GEMMCase: CustomStringConvertible {
    var m: Int, n: Int, k: Int
    var batchA: [Int] = [], batchB: [Int] = []
    var transA = false, transB = false
    var aType = DType.f32, bType = DType.f32, outType = DType.f32
    var alpha: Float = 1
    var biasType: DType?
    var activation = Activation.none
    var residualType: DType?
    /// The residual is `out` itself (out += ...).
    var residualInPlace = false
    var tile: GEMMTile?
    /// At most this many workgroups on the batch axis (Vulkan): each workgroup then runs several batches.
    var gridCap: Int?

    var description: String {
        "\(batchA)\(batchB) \(m)x\(n)x\(k) A\(transA ? "ᵀ" : "") \(aType) B\(transB ? "ᵀ" : "") \(bType) -> \(outType)"
            + " alpha \(alpha) bias \(biasType.map { "\($0)" } ?? "-") \(activation) res \(residualType.map { "\($0)" } ?? "-")"
            + (residualInPlace ? " in-place" : "") + " tile \(tile.map { "\($0)" } ?? "auto")"
            + (gridCap.map { " grid cap \($0)" } ?? "")
    }

    var batchDims: [Int] { batchA.isEmpty ? batchB : batchA }
    var outShape: [Int] { batchDims + [m, n] }
}

private func activationReference(_ a: Activation, _ x: Double) -> Double {
    switch a {
    case .none: return x
    case .geluTanh: return 0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
    case .geluErf: return 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
    case .silu: return x / (1 + exp(-x))
    }
}

/// Runs a case on `device` and returns what it computed and the float64 reference.
private func runCase(_ c: GEMMCase, on device: Device, seed: UInt64) throws -> (got: [Float], want: [Double]) {
    var rng = TestRandom(seed: seed)
    let (m, n, k) = (c.m, c.n, c.k)
    let aShape = c.batchA + (c.transA ? [k, m] : [m, k])
    let bShape = c.batchB + (c.transB ? [n, k] : [k, n])
    let aVals = quantized(rng.floats(aShape.reduce(1, *)), c.aType)
    let bVals = quantized(rng.floats(bShape.reduce(1, *)), c.bType)
    let biasVals = c.biasType.map { quantized(rng.floats(n), $0) }
    let resType = c.residualInPlace ? c.outType : c.residualType
    let resVals = resType.map { quantized(rng.floats(c.outShape.reduce(1, *)), $0) }

    let a = try device.tensor(aVals, shape: aShape, dtype: c.aType)
    let b = try device.tensor(bVals, shape: bShape, dtype: c.bType)
    let bias = try biasVals.map { try device.tensor($0, shape: [n], dtype: c.biasType!) }
    var residual = try resVals.map { try device.tensor($0, shape: c.outShape, dtype: resType!) }
    let out = c.residualInPlace ? residual! : try device.empty(c.outShape, dtype: c.outType)
    if c.residualInPlace { residual = out }
    let list = try CommandList(device: device)
    if let cap = c.gridCap { list.capGrid(cap) }
    try list.gemm(a, b, out: out, transposeA: c.transA, transposeB: c.transB, alpha: c.alpha, bias: bias,
                  activation: c.activation, residual: residual, tile: c.tile)
    try list.run()
    let got = try device.read(out)

    let batch = c.batchDims.reduce(1, *)
    var want = [Double](repeating: 0, count: batch * m * n)
    for z in 0..<batch {
        let aOff = c.batchA.isEmpty ? 0 : z * m * k, bOff = c.batchB.isEmpty ? 0 : z * k * n
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for l in 0..<k {
                    let av = c.transA ? aVals[aOff + l * m + i] : aVals[aOff + i * k + l]
                    let bv = c.transB ? bVals[bOff + j * k + l] : bVals[bOff + l * n + j]
                    s += Double(av) * Double(bv)
                }
                var v = Double(c.alpha) * s + (biasVals.map { Double($0[j]) } ?? 0)
                v = activationReference(c.activation, v)
                let o = z * m * n + i * n + j
                if let resVals { v += Double(resVals[o]) }
                want[o] = v
            }
        }
    }
    return (got, want)
}

/// Runs a case on every test device and checks it against float64 within the output dtype's tolerance.
private func check(_ c: GEMMCase, devices: [Device], seed: UInt64 = 1, sourceLocation: SourceLocation = #_sourceLocation) throws {
    for device in devices {
        let (got, want) = try runCase(c, on: device, seed: seed)
        let err = maxRelativeError(got, want)
        #expect(err <= tolerance(c.outType), "\(device.name) \(c): error \(err)", sourceLocation: sourceLocation)
    }
}

@Suite struct GEMMTests {
    /// All four transpose combinations, odd sizes, unbatched and batched (both operands batched).
    @Test func transposesAndBatches() throws {
        let devices = try TestDevices.all()
        for transA in [false, true] {
            for transB in [false, true] {
                try check(GEMMCase(m: 37, n: 53, k: 29, transA: transA, transB: transB), devices: devices)
                try check(GEMMCase(m: 21, n: 19, k: 33, batchA: [3], batchB: [3], transA: transA, transB: transB),
                          devices: devices, seed: 2)
            }
        }
        // Several batch dimensions.
        try check(GEMMCase(m: 5, n: 7, k: 9, batchA: [2, 3], batchB: [2, 3], transB: true), devices: devices, seed: 3)
        // Workgroups looping over batches (5 on 2).
        try check(GEMMCase(m: 21, n: 19, k: 33, batchA: [5], batchB: [5], gridCap: 2), devices: devices, seed: 4)
        TestDevices.checkValidation()
    }

    /// Shared weights: B unbatched with A batched (plain and transposed A), A unbatched with B batched.
    @Test func sharedOperands() throws {
        let devices = try TestDevices.all()
        try check(GEMMCase(m: 23, n: 31, k: 17, batchA: [3], transB: true, biasType: .f32), devices: devices)
        try check(GEMMCase(m: 23, n: 31, k: 17, batchA: [3], transA: true), devices: devices, seed: 2)
        try check(GEMMCase(m: 23, n: 31, k: 17, batchB: [3]), devices: devices, seed: 3)
        try check(GEMMCase(m: 23, n: 31, k: 17, batchB: [2], transA: true, transB: true), devices: devices, seed: 4)
        TestDevices.checkValidation()
    }

    /// Degenerate dimensions: M, N or K equal to 1, and K = 0 (out = epilogue of a zero product).
    @Test func degenerateSizes() throws {
        let devices = try TestDevices.all()
        for (m, n, k) in [(1, 53, 29), (37, 1, 29), (37, 53, 1), (1, 1, 1), (1, 1, 40)] {
            for transB in [false, true] {
                try check(GEMMCase(m: m, n: n, k: k, transB: transB), devices: devices)
            }
        }
        try check(GEMMCase(m: 1, n: 9, k: 6, batchA: [3], transB: true), devices: devices)
        try check(GEMMCase(m: 4, n: 5, k: 0, biasType: .f32, activation: .silu), devices: devices)
        TestDevices.checkValidation()
    }

    /// f32/f16/bf16 A, B and output: every (A, B), (A, out) and (B, out) pair (the shader's loads of A and
    /// B and its store are independent), all 27 combinations on the CPU.
    @Test func dtypeCombinations() throws {
        let devices = try TestDevices.all()
        let types: [DType] = [.f32, .f16, .bf16]
        for (ia, at) in types.enumerated() {
            for (ib, bt) in types.enumerated() {
                for (io, ot) in types.enumerated() {
                    let i = ia * 9 + ib * 3 + io
                    // A Latin square: out type = (A + B) mod 3 covers every pair exactly once.
                    let onVulkan = io == (ia + ib) % 3
                    try check(GEMMCase(m: 19, n: 23, k: 21, transA: i % 3 == 0, transB: i % 2 == 0,
                                       aType: at, bType: bt, outType: ot),
                              devices: onVulkan ? devices : [TestDevices.cpu], seed: UInt64(i))
                }
            }
        }
        // Vector loads of 16-bit operands (contiguous length a multiple of 4).
        for t in [DType.f16, .bf16] {
            try check(GEMMCase(m: 20, n: 24, k: 28, transB: true, aType: t, bType: t), devices: devices)
            try check(GEMMCase(m: 20, n: 24, k: 28, transA: true, aType: t, bType: t), devices: devices)
        }
        TestDevices.checkValidation()
    }

    /// alpha, bias, each activation and the residual (also in place), in several dtypes.
    @Test func epilogue() throws {
        let devices = try TestDevices.all()
        for (i, act) in Activation.allCases.enumerated() {
            // Pre-activation values spread over about [-6, 6] to reach every branch of erf.
            try check(GEMMCase(m: 37, n: 53, k: 29, batchA: [2], transB: true, alpha: 1.5, biasType: .f32,
                               activation: act, residualType: .f32), devices: devices, seed: UInt64(10 + i))
            // 16-bit bias, residual and output, in turn with each activation.
            let variants = [
                GEMMCase(m: 17, n: 13, k: 25, transA: true, aType: .bf16, bType: .f16, outType: .f16, alpha: 0.5,
                         biasType: .bf16, activation: act, residualType: .f16),
                GEMMCase(m: 17, n: 13, k: 25, batchA: [2], batchB: [2], outType: .bf16, biasType: .f16,
                         activation: act, residualType: .bf16),
            ]
            try check(variants[i % 2], devices: devices, seed: UInt64(20 + i))
        }
        // Bias only, residual only, residual in place (out += A·B) in f32 and f16.
        try check(GEMMCase(m: 37, n: 53, k: 29, biasType: .f16), devices: devices, seed: 40)
        try check(GEMMCase(m: 37, n: 53, k: 29, transB: true, residualType: .f16), devices: devices, seed: 41)
        try check(GEMMCase(m: 37, n: 53, k: 29, batchA: [2], transB: true, biasType: .f32, activation: .geluTanh,
                           residualInPlace: true), devices: devices, seed: 42)
        try check(GEMMCase(m: 37, n: 53, k: 29, outType: .f16, residualInPlace: true), devices: devices, seed: 43)
        TestDevices.checkValidation()
    }

    /// Activations near their tricky points: large magnitudes (tanh/exp overflow) and erf's range boundaries.
    @Test func activationExtremes() throws {
        let values: [Float] = [-30, -9, -4.1, -3.9, -1.31, -1.3, -0.5, -1e-3, 0, 1e-3, 0.5, 1.3, 1.31, 2.4, 3.9, 4.1, 9, 30, 90]
        let n = values.count
        for device in try TestDevices.all() {
            // A = values as a column (M = n, K = 1), B = [[1]]: out = act(values).
            let a = try device.tensor(values, shape: [n, 1])
            let b = try device.tensor([1], shape: [1, 1])
            for act in Activation.allCases {
                let out = try device.empty([n, 1])
                let list = try CommandList(device: device)
                try list.gemm(a, b, out: out, activation: act)
                try list.run()
                let got = try device.read(out)
                for i in 0..<n {
                    let want = activationReference(act, Double(values[i]))
                    #expect(abs(Double(got[i]) - want) <= 2.5e-7 * max(1, abs(Double(values[i]))),
                            "\(device.name) \(act)(\(values[i])) = \(got[i]), want \(want)")
                }
            }
        }
        TestDevices.checkValidation()
    }

    /// Explicit tile configurations on Vulkan, including the 128×128 / 8×8-per-thread path, with sizes that
    /// straddle tile edges in M, N and K, with and without vector loads, in every transpose combination.
    @Test func tileConfigurations() throws {
        guard let device = try TestDevices.vulkan() else { return }
        let caps = device.vulkan!.capabilities
        // (The default tile, 64×64×16×4×4 on lavapipe, runs in every other test.)
        // 128×128×12: 1.5 loads per thread (the partial-group guard); .largeThin also unrolled as on GPUs.
        var tiles = [GEMMTile.largeThin, GEMMTile(bm: 128, bn: 64, bk: 16, tm: 8, tn: 4), .small,
                     GEMMTile(bm: 128, bn: 128, bk: 12, tm: 8, tn: 8)]
        if (try? GEMMTile.large.validate(caps)) != nil { tiles.append(.large) }
        var seed: UInt64 = 100
        for tile in tiles {
            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                seed += 1
                // Edges in M, N and K, scalar loads.
                try check(GEMMCase(m: 150, n: 140, k: 45, transA: transA, transB: transB, tile: tile),
                          devices: [device], seed: seed)
            }
            // Vector loads along K (A, Bᵀ) and along M, N (Aᵀ, B), with partial tiles.
            try check(GEMMCase(m: 132, n: 136, k: 44, transB: true, tile: tile), devices: [device], seed: seed + 1)
            try check(GEMMCase(m: 132, n: 136, k: 44, transA: true, tile: tile), devices: [device], seed: seed + 2)
            // 16-bit operands, full epilogue, a batch folded into M, and a batched transposed A.
            try check(GEMMCase(m: 70, n: 130, k: 36, batchA: [2], transB: true, aType: .f16, bType: .bf16, outType: .f16,
                               biasType: .f32, activation: .geluTanh, residualType: .f32, tile: tile), devices: [device], seed: seed)
            try check(GEMMCase(m: 33, n: 20, k: 17, batchA: [3], batchB: [3], transA: true, tile: tile),
                      devices: [device], seed: seed + 1000)
        }
        var unrolled = GEMMTile.largeThin
        unrolled.unroll = true
        try check(GEMMCase(m: 150, n: 140, k: 45, transB: true, tile: unrolled), devices: [device], seed: 99)
        TestDevices.checkValidation()
    }

    /// The tile policy and the tile string format.
    @Test func tilePolicy() throws {
        #expect(try GEMMTile(parsing: "64x64x16x4x4") == .medium)
        #expect(try GEMMTile(parsing: "128X128x16x8x8") == .large)
        #expect(throws: RuntimeError.self) { try GEMMTile(parsing: "64x64x16") }
        #expect(throws: RuntimeError.self) { try GEMMTile(parsing: "64x64x16x4xq") }
        guard let device = try TestDevices.vulkan(), getenv("WAN_GEMM_TILE") == nil else { return }
        var caps = device.vulkan!.capabilities
        #expect(throws: RuntimeError.self) { try GEMMTile(bm: 64, bn: 64, bk: 16, tm: 6, tn: 4).validate(caps) }
        #expect(throws: RuntimeError.self) { try GEMMTile(bm: 64, bn: 64, bk: 10, tm: 4, tn: 4).validate(caps) }
        #expect(throws: RuntimeError.self) { try GEMMTile(bm: 256, bn: 256, bk: 16, tm: 4, tn: 4).validate(caps) }
        if caps.isSoftware {
            let t = try GEMMTile.choose(caps, m: 4096, n: 4096, batch: 1)
            #expect(t.bm <= 64 && t.bn <= 64)
        }
        // An NVIDIA-like GPU: 48 KiB of shared memory, subgroups of 32.
        caps.deviceType = "discrete"
        caps.maxComputeSharedMemorySize = 48 * 1024
        caps.maxComputeWorkGroupInvocations = 1024
        caps.maxComputeWorkGroupSize = [1024, 1024, 64]
        caps.subgroupSize = 32
        #expect(try GEMMTile.choose(caps, m: 32760, n: 1536, batch: 1) == .large)
        #expect(try GEMMTile.choose(caps, m: 2048, n: 5120, batch: 1) == .large)
        #expect(try GEMMTile.choose(caps, m: 512, n: 5120, batch: 1) == .medium)
        let small = try GEMMTile.choose(caps, m: 1, n: 3072, batch: 1)
        #expect(small.bm < 128)
        // 32 KiB of shared memory: the 128×128 tile with BK 8.
        caps.maxComputeSharedMemorySize = 32 * 1024
        #expect(try GEMMTile.choose(caps, m: 32760, n: 1536, batch: 1) == .largeThin)
    }

    /// A K loop beyond a CPU driver's loop budget (lavapipe stops an invocation's loops after 65535 iterations and
    /// computed this product wrong, relative error 0.5) is a clear error there; GPUs compute it.
    @Test func loopBudgetOnCPUDrivers() throws {
        guard let vk = try TestDevices.vulkan(), let caps = vk.vulkan?.capabilities else { return }
        let k = 60000
        var rng = TestRandom(seed: 90)
        let a = rng.floats(8 * k), b = rng.floats(8 * k)
        var results: [[Float]] = []
        for d in [TestDevices.cpu, vk] {
            let at = try d.tensor(a, shape: [8, k]), bt = try d.tensor(b, shape: [8, k]), out = try d.empty([8, 8])
            let cl = try CommandList(device: d)
            if d === vk && caps.isSoftware {
                expectInvalidArgument(containing: ["loop iterations", "CPU backend"]) { try cl.gemm(at, bt, out: out, transposeB: true) }
                // Within the budget it runs.
                let k2 = 20000
                try check(GEMMCase(m: 8, n: 8, k: k2, transB: true), devices: [vk], seed: 91)
                return
            }
            try cl.gemm(at, bt, out: out, transposeB: true)
            try cl.run()
            results.append(try d.read(out))
        }
        #expect(maxRelativeError(results[1], results[0]) <= 1e-4)
    }

    /// Bad shapes, dtypes, layouts and devices throw.
    @Test func invalidArguments() throws {
        for device in try TestDevices.all() {
            let list = try CommandList(device: device)
            let a = try device.zeros([4, 6]), b = try device.zeros([6, 5]), out = try device.zeros([4, 5])
            // K mismatch.
            #expect(throws: RuntimeError.self) { try list.gemm(a, try device.zeros([7, 5]), out: out) }
            #expect(throws: RuntimeError.self) { try list.gemm(a, b, out: out, transposeB: true) }
            // Wrong output shape.
            #expect(throws: RuntimeError.self) { try list.gemm(a, b, out: try device.zeros([4, 6])) }
            #expect(throws: RuntimeError.self) { try list.gemm(a, b, out: try device.zeros([1, 4, 5])) }
            // Bias of the wrong size, residual of the wrong shape.
            #expect(throws: RuntimeError.self) { try list.gemm(a, b, out: out, bias: try device.zeros([4])) }
            #expect(throws: RuntimeError.self) { try list.gemm(a, b, out: out, residual: try device.zeros([5, 4])) }
            // Batch dimensions that differ.
            #expect(throws: RuntimeError.self) {
                try list.gemm(try device.zeros([2, 4, 6]), try device.zeros([3, 6, 5]), out: try device.zeros([2, 4, 5]))
            }
            // fp8 A (only weights, B, may be fp8: see FP8Tests) and integer operands are rejected.
            #expect(throws: RuntimeError.self) { try list.gemm(try device.zeros([4, 6], dtype: .f8e4m3fn), b, out: out) }
            #expect(throws: RuntimeError.self) { try list.gemm(a, try device.zeros([6, 5], dtype: .i32), out: out) }
            #expect(throws: RuntimeError.self) { try list.gemm(a, b, out: try device.zeros([4, 5], dtype: .i32)) }
            #expect(throws: RuntimeError.self) { try list.gemm(a, b, out: out, bias: try device.zeros([5], dtype: .u8)) }
            // A non-dense view (use transposeA instead).
            #expect(throws: RuntimeError.self) { try list.gemm(try device.zeros([6, 4]).transposed(), b, out: out) }
            // Output overlapping an input.
            let sq = try device.zeros([5, 5])
            #expect(throws: RuntimeError.self) { try list.gemm(sq, sq, out: sq) }
            // Rank 1 operands.
            #expect(throws: RuntimeError.self) { try list.gemm(try device.zeros([6]), b, out: out) }
            #expect(list.kernelCount == 0)
        }
        // Mixed devices.
        if let vk = try TestDevices.vulkan() {
            let list = try CommandList(device: vk)
            let a = try TestDevices.cpu.zeros([4, 6]), b = try vk.zeros([6, 5]), out = try vk.zeros([4, 5])
            #expect(throws: RuntimeError.self) { try list.gemm(a, b, out: out) }
            #expect(throws: RuntimeError.self) { try list.gemm(try vk.zeros([4, 6]), b, out: out, bias: try TestDevices.cpu.zeros([5])) }
            // A tile the device cannot run.
            #expect(throws: RuntimeError.self) {
                try list.gemm(try vk.zeros([4, 6]), b, out: out, transposeA: false, transposeB: false, alpha: 1, bias: nil,
                              activation: .none, residual: nil, tile: GEMMTile(bm: 512, bn: 512, bk: 64, tm: 4, tn: 4))
            }
            TestDevices.checkValidation()
        }
    }
}

/// The tensor-core variant: checked against float64 where the device has VK_NV_cooperative_matrix;
/// elsewhere (lavapipe) asking for it is a clear error and the policy never picks it, and the same shader is
/// checked with its cooperative matrices emulated (`CoopmatEmulation`).
@Suite struct GEMMCoopmatTests {
    /// Norm-relative error allowed against the float64 reference of the fp16-rounded operands.
    static let tolerance = 1e-2

    /// One tensor-core GEMM against float64, its operands rounded to fp16 as the shader stages them (f32
    /// and bf16 to nearest even; fp8 decodes exactly): out[z] = act(alpha·op(A[z])·op(B[z])·scale + bias)
    /// (+ residual[z]). batchA / batchB 0: that operand is unbatched (shared).
    private func check(_ d: Device, emulation: CoopmatEmulation? = nil, m: Int, n: Int, k: Int, batchA: Int = 0, batchB: Int = 0,
                       transA: Bool = false, transB: Bool = true, aType: DType = .f16, bType: DType = .f16,
                       outType: DType = .f32, alpha: Float = 1, bias: Bool = false, activation: Activation = .none,
                       residualType: DType? = nil, perColumnScale: Bool = false, tile: GEMMCoopmat.Tile? = nil,
                       coopmat2: GEMMCoopmat2.Tile? = nil, coopmat2Emulated: Bool = false, gridCap: Int? = nil, seed: UInt64,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        var rng = TestRandom(seed: seed)
        let batchDims: [Int] = batchA > 0 ? [batchA] : batchB > 0 ? [batchB] : []
        let batch = batchDims.first ?? 1
        let aShape: [Int] = (batchA > 0 ? [batchA] : []) + (transA ? [k, m] : [m, k])
        let bShape: [Int] = (batchB > 0 ? [batchB] : []) + (transB ? [n, k] : [k, n])
        let outShape: [Int] = batchDims + [m, n]
        let aStored = quantized(rng.floats(aShape.reduce(1, *)), aType)
        let aHalf = quantized(aStored, .f16)
        let bt: Tensor, bHalf: [Float]
        if bType == .f8e4m3fn || bType == .f8e5m2 {
            let codes = (0..<bShape.reduce(1, *)).map { _ -> UInt8 in
                var c = UInt8(truncatingIfNeeded: rng.next())
                if bType == .f8e4m3fn && c & 0x7f == 0x7f { c &= 0xfe }   // no NaN codes
                if bType == .f8e5m2 && c & 0x7c == 0x7c { c &= 0xbb }     // no inf/NaN codes
                return c
            }
            bt = try d.tensor(bytes: codes, shape: bShape, dtype: bType)
            bHalf = HostConversion.decode(codes, as: bType)   // every fp8 value is exact in fp16
        } else {
            let stored = quantized(rng.floats(bShape.reduce(1, *)), bType)
            bt = try d.tensor(stored, shape: bShape, dtype: bType)
            bHalf = quantized(stored, .f16)
        }
        let scales = perColumnScale ? rng.floats(n, 0.001, 0.01) : nil
        let biasVals = bias ? rng.floats(n) : nil
        let resVals = residualType.map { quantized(rng.floats(batch * m * n), $0) }

        let at = try d.tensor(aStored, shape: aShape, dtype: aType)
        let st = try scales.map { try d.tensor($0, shape: [n]) }
        let biasT = try biasVals.map { try d.tensor($0, shape: [n]) }
        let resT = try resVals.map { try d.tensor($0, shape: outShape, dtype: residualType!) }
        let out = try d.empty(outShape, dtype: outType)
        let cl = try CommandList(device: d)
        if let gridCap { cl.capGrid(gridCap) }
        try cl.gemm(at, bt, out: out, transposeA: transA, transposeB: transB, alpha: alpha, bias: biasT,
                    activation: activation, residual: resT, weightScale: st, tile: nil, coopmat: true,
                    coopmatTile: tile ?? emulation.map { _ in Self.emulatedTile }, coopmatEmulation: emulation,
                    coopmat2: coopmat2 != nil, coopmat2Tile: coopmat2, coopmat2Emulated: coopmat2Emulated)
        try cl.run()

        var want = [Double](repeating: 0, count: batch * m * n)
        for z in 0..<batch {
            let aOff = batchA > 0 ? z * m * k : 0, bOff = batchB > 0 ? z * k * n : 0
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for l in 0..<k {
                        let av = transA ? aHalf[aOff + l * m + i] : aHalf[aOff + i * k + l]
                        let bv = transB ? bHalf[bOff + j * k + l] : bHalf[bOff + l * n + j]
                        s += Double(av) * Double(bv)
                    }
                    var v = Double(alpha) * s * (scales.map { Double($0[j]) } ?? 1) + (biasVals.map { Double($0[j]) } ?? 0)
                    v = activationReference(activation, v)
                    let o = z * m * n + i * n + j
                    if let resVals { v += Double(resVals[o]) }
                    want[o] = v
                }
            }
        }
        let err = maxRelativeError(try d.read(out), want)
        let label = "\(batchA)/\(batchB) \(m)x\(n)x\(k) A\(transA ? "ᵀ" : "") \(aType) B\(transB ? "ᵀ" : "") \(bType) -> \(outType)"
            + " bias \(bias) \(activation) res \(residualType.map { "\($0)" } ?? "-") scale \(perColumnScale)" + (gridCap.map { " grid cap \($0)" } ?? "")
        #expect(err <= Self.tolerance, "\(d.name) \(coopmat2.map { "coopmat2 \($0)" } ?? "coopmat")\(emulation != nil || coopmat2Emulated ? " (emulated)" : "") \(label): error \(err)",
                sourceLocation: sourceLocation)
    }

    /// Forcing a tensor-core variant the device lacks is a clear error (not a silent fallback).
    private func expectForcedVariantFails(_ d: Device, coopmat: Bool? = nil, coopmat2: Bool? = nil,
                                          sourceLocation: SourceLocation = #_sourceLocation) throws {
        let at = try d.tensor([Float](repeating: 0.5, count: 6 * 8), shape: [6, 8], dtype: .f16)
        let wt = try d.tensor([Float](repeating: 0.5, count: 5 * 8), shape: [5, 8], dtype: .f16)
        let out = try d.empty([6, 5], dtype: .f32)
        let cl = try CommandList(device: d)
        #expect(throws: RuntimeError.self, sourceLocation: sourceLocation) {
            try cl.gemm(at, wt, out: out, transposeA: false, transposeB: true, alpha: 1, bias: nil, activation: .none,
                        residual: nil, tile: nil, coopmat: coopmat, coopmat2: coopmat2)
        }
    }

    /// The tile of the emulated runs (the default's 40 KiB of shared memory exceed lavapipe's 32 KiB).
    static let emulatedTile = GEMMCoopmat.Tile(bm: 64, bn: 64, bk: 32, wm: 32, wn: 32)

    /// `WAN_GEMM_COOPMAT_TILE` syntax and constraints.
    @Test func coopmatTileParsing() throws {
        #expect(try GEMMCoopmat.Tile(parsing: "128x128x32x64x32") == GEMMCoopmat.defaultTile)
        #expect(GEMMCoopmat.defaultTile.threads == 256 && GEMMCoopmat.defaultTile.sharedBytes == 40960)
        for bad in ["128x128x32x64", "128x128x24x64x32", "128x96x32x64x64", "256x256x32x256x256", "axbxcxdxe"] {
            #expect(throws: RuntimeError.self, "\(bad)") { try GEMMCoopmat.Tile(parsing: bad) }
        }
    }

    @Test func coopmatVariant() throws {
        guard let d = try TestDevices.vulkan(), let caps = d.vulkan?.capabilities else { return }
        #expect(!GEMMCoopmat.chosen(caps, a: .f32, b: .f32), "f32 operands never take the fp16 tensor-core path")
        guard GEMMCoopmat.supported(caps) else {
            try expectForcedVariantFails(d, coopmat: true)
            print("note: \(caps.deviceName) has no usable NV cooperative matrix; the tensor-core GEMM runs emulated")
            try cases(d, caps, emulation: CoopmatEmulation())
            TestDevices.checkValidation()
            return
        }
        if getenv("WAN_GEMM_COOPMAT") == nil {
            // The policy: 16-bit/FP8 weights with 16-bit activations, or f32 activations with fp16 compute allowed.
            #expect(GEMMCoopmat.chosen(caps, a: .f16, b: .f16) && GEMMCoopmat.chosen(caps, a: .bf16, b: .f8e4m3fn))
            #expect(!GEMMCoopmat.chosen(caps, a: .f32, b: .f16))
            #expect(GEMMCoopmat.chosen(caps, a: .f32, b: .bf16, fp16Compute: true))
            #expect(!GEMMCoopmat.chosen(caps, a: .f32, b: .f32, fp16Compute: true), "f32 weights stay exact")
        }
        try cases(d, caps, emulation: nil)
        TestDevices.checkValidation()
    }

    /// The products of the variant test, on the device's cooperative matrices or emulated ones.
    private func cases(_ d: Device, _ caps: Capabilities, emulation e: CoopmatEmulation?) throws {
        // Odd sizes (edges in M, N and K; element-by-element staging) in every transpose combination, and
        // sizes that are multiples of 8 (16-byte staging; partial tiles in M and N; several K slices).
        var seed: UInt64 = 31
        for (transA, transB) in [(false, true), (false, false), (true, false), (true, true)] {
            try check(d, emulation: e, m: 150, n: 133, k: 70, transA: transA, transB: transB, bias: true, activation: .geluTanh, seed: seed)
            try check(d, emulation: e, m: 136, n: 72, k: 64, transA: transA, transB: transB, seed: seed + 100)
            seed += 1
        }
        // The vectorized path on a larger problem (x·Wᵀ, and the untransposed weight); smaller when emulated
        // (lavapipe runs the emulated products at ~50 MFLOP/s).
        let (bm, bn, bk) = e == nil ? (300, 264, 520) : (140, 136, 200)
        try check(d, emulation: e, m: bm, n: bn, k: bk, seed: 40)
        try check(d, emulation: e, m: bm, n: bn, k: bk, transB: false, seed: 41)
        // One operand vectorized, the other staged element by element (odd M for Aᵀ, odd N for B).
        try check(d, emulation: e, m: 77, n: 72, k: 64, transA: true, seed: 42)
        try check(d, emulation: e, m: 72, n: 77, k: 64, transB: false, seed: 43)
        // A in bf16 and f32 (rounded to fp16 when staged), both staging paths.
        for aType in [DType.bf16, .f32] {
            try check(d, emulation: e, m: 150, n: 133, k: 70, aType: aType, seed: 50)
            try check(d, emulation: e, m: 136, n: 72, k: 64, transA: true, aType: aType, bType: .bf16, seed: 51)
            try check(d, emulation: e, m: 136, n: 72, k: 64, aType: aType, bType: .f32, seed: 52)
        }
        // FP8 weights with a per-column scale (and e5m2 without a scale), both layouts, both staging paths.
        for transB in [true, false] {
            try check(d, emulation: e, m: 150, n: 133, k: 70, transB: transB, bType: .f8e4m3fn, bias: true, perColumnScale: true, seed: 60)
            try check(d, emulation: e, m: 136, n: 72, k: 64, transB: transB, bType: .f8e4m3fn, perColumnScale: true, seed: 61)
            try check(d, emulation: e, m: 136, n: 72, k: 64, transB: transB, aType: .bf16, bType: .f8e5m2, seed: 62)
        }
        // Batches: A [3, M, K] with a shared B (folded into M), a transposed batched A with a shared B,
        // and A and B both batched.
        try check(d, emulation: e, m: 50, n: 40, k: 72, batchA: 3, seed: 70)
        try check(d, emulation: e, m: 45, n: 40, k: 70, batchA: 3, transA: true, transB: false, seed: 71)
        try check(d, emulation: e, m: 37, n: 29, k: 48, batchA: 3, batchB: 3, transA: true, transB: false, seed: 72)
        try check(d, emulation: e, m: 40, n: 48, k: 56, batchA: 3, batchB: 3, seed: 73)
        // Workgroups looping over batches (3 on 2).
        try check(d, emulation: e, m: 40, n: 48, k: 56, batchA: 3, batchB: 3, gridCap: 2, seed: 74)
        // Epilogue: alpha, bias, gelu and a residual; a 16-bit output with a bf16 residual.
        try check(d, emulation: e, m: 150, n: 133, k: 70, batchA: 2, alpha: 0.5, bias: true, activation: .geluTanh,
                  residualType: .f32, seed: 80)
        try check(d, emulation: e, m: 136, n: 72, k: 64, outType: .f16, bias: true, activation: .geluErf, residualType: .bf16, seed: 81)
        try check(d, emulation: e, m: 136, n: 72, k: 64, aType: .bf16, bType: .f8e4m3fn, outType: .bf16, bias: true,
                  activation: .silu, residualType: .f16, perColumnScale: true, seed: 82)
        // Other tiles of the shader (for tuning through WAN_GEMM_COOPMAT_TILE) compute the same products.
        for (i, text) in ["64x64x32x32x32", "128x64x16x64x32", "128x128x32x64x64", "64x128x32x32x64"].enumerated() {
            let t = try GEMMCoopmat.Tile(parsing: text)
            guard t.fits(caps, emulated: e != nil) else { continue }
            try check(d, emulation: e, m: 150, n: 133, k: 70, transA: false, transB: true, bias: true, activation: .geluTanh, tile: t, seed: 500 + UInt64(i))
            try check(d, emulation: e, m: bm, n: bn, k: bk, transA: i % 2 == 1, transB: true, aType: .f32, bType: .bf16, tile: t, seed: 600 + UInt64(i))
        }
    }

    /// What the coopmat2 GEMM needs of a device (`GEMMCoopmat2.offered`/`shape`) and of its operands (`eligible`), and
    /// its tile syntax: checked on every device with its capabilities edited.
    @Test func coopmat2Policy() throws {
        #expect(try GEMMCoopmat2.Tile(parsing: "128x128x32") == GEMMCoopmat2.defaultTile)
        for bad in ["128x128", "128x120x32", "0x128x32", "axbxc"] {
            #expect(throws: RuntimeError.self, "\(bad)") { try GEMMCoopmat2.Tile(parsing: bad) }
        }
        guard let d = try TestDevices.vulkan(), let real = d.vulkan?.capabilities else { return }
        let wg = TestCoopmat2.shape
        var caps = real.withCoopmat2(shapes: [wg.with(\.scope, "subgroup"), wg.with(\.c, "f16"), wg.with(\.workgroupInvocations, 128), wg])
        #expect(GEMMCoopmat2.offered(caps) && GEMMCoopmat2.shape(caps) == wg, "the f32-accumulating workgroup shape of 256 invocations")
        #expect(GEMMCoopmat2.enable(caps) == GEMMCoopmat2.built)
        caps.cooperativeMatrix2Enabled = false
        #expect(!GEMMCoopmat2.supported(caps), "not enabled on the opened device")
        for missing in [\Capabilities.CooperativeMatrix2.workgroupScope, \.flexibleDimensions, \.perElementOperations,
                        \.tensorAddressing, \.blockLoads] {
            var c = caps
            c.cooperativeMatrix2?[keyPath: missing] = false
            #expect(!GEMMCoopmat2.offered(c), "\(missing)")
        }
        var c = caps
        c.apiVersion = "1.2.250"
        #expect(!GEMMCoopmat2.offered(c), "SPIR-V 1.6 needs Vulkan 1.3")
        c = caps
        c.cooperativeMatrix2?.maxWorkgroupSize = 128
        #expect(GEMMCoopmat2.shape(c)?.workgroupInvocations == 128, "the shape within the workgroup limit")
        c.cooperativeMatrix2?.maxWorkgroupSize = 64
        #expect(!GEMMCoopmat2.offered(c), "no shape within the workgroup limit")
        c = real.withCoopmat2(shapes: [wg], f16Twins: false)
        #expect(!GEMMCoopmat2.offered(c), "no fp16-accumulating shape (the f16 outputs) for the invocation count")
        c = real.withCoopmat2(shapes: [wg, wg.with(\.c, "f16").with(\.result, "f16").with(\.kGranularity, 32)], f16Twins: false)
        #expect(GEMMCoopmat2.shape(c) == wg.with(\.kGranularity, 32), "the coarser granularities of the two")
        c = caps
        c.cooperativeMatrix2 = nil
        #expect(!GEMMCoopmat2.offered(c) && GEMMCoopmat2.shape(c) == nil)
        // Tiles: multiples of the granularities, within the maximum dimension.
        #expect(GEMMCoopmat2.defaultTile.fits(wg, maxDimension: 256))
        #expect(!GEMMCoopmat2.Tile(bm: 512, bn: 128, bk: 32).fits(wg, maxDimension: 256))
        #expect(!GEMMCoopmat2.Tile(bm: 128, bn: 128, bk: 32).fits(wg.with(\.kGranularity, 64), maxDimension: 256))
        // Operands: an f32 or f16 output, 16-byte aligned bases and batch strides.
        let a = try d.empty([3, 8, 16], dtype: .f16), b = try d.empty([16, 24], dtype: .f16)
        let out = try d.empty([3, 8, 24]), out16 = try d.empty([3, 8, 24], dtype: .f16), outBF = try d.empty([3, 8, 24], dtype: .bf16)
        #expect(GEMMCoopmat2.eligible(a: a, b: b, out: out, residual: nil, batch: 3, strideA: 128, strideB: 0, strideOut: 192))
        #expect(GEMMCoopmat2.eligible(a: a, b: b, out: out16, residual: out, batch: 3, strideA: 128, strideB: 0, strideOut: 192))
        #expect(!GEMMCoopmat2.eligible(a: a, b: b, out: outBF, residual: nil, batch: 3, strideA: 128, strideB: 0, strideOut: 192))
        #expect(!GEMMCoopmat2.eligible(a: a, b: b, out: out, residual: nil, batch: 3, strideA: 124, strideB: 0, strideOut: 192), "8 rows of odd K")
        #expect(GEMMCoopmat2.eligible(a: a, b: b, out: out, residual: nil, batch: 1, strideA: 124, strideB: 0, strideOut: 192), "one batch: strides unused")
        let view = try a.view(atByteOffset: 8, shape: [300], dtype: .f16)   // 8 bytes past an aligned base
        #expect(!GEMMCoopmat2.eligible(a: view, b: b, out: out, residual: nil, batch: 1, strideA: 0, strideB: 0, strideOut: 0))
    }

    /// The coopmat2 GEMM against float64 where the device has VK_NV_cooperative_matrix2 and this build its shader;
    /// elsewhere (lavapipe) forcing it is a clear error. The same shader with emulated matrices runs the same cases
    /// on every device (`coopmat2Emulated`).
    @Test func coopmat2Variant() throws {
        guard let d = try TestDevices.vulkan(), let caps = d.vulkan?.capabilities else { return }
        guard GEMMCoopmat2.supported(caps) else {
            try expectForcedVariantFails(d, coopmat2: true)
            #expect(!GEMMCoopmat2.chosen(caps))
            print("note: \(caps.deviceName): no coopmat2 GEMM (shader \(GEMMCoopmat2.built ? "built" : "not built"), VK_NV_cooperative_matrix2 \(caps.nvCooperativeMatrix2 ? "present" : "absent"))")
            return
        }
        var tiles: [GEMMCoopmat2.Tile] = []
        if let shape = GEMMCoopmat2.shape(caps), let limits = caps.cooperativeMatrix2 {
            tiles = try ["64x64x32", "128x256x32", "256x128x32", "128x128x64", "64x128x16"].map { try GEMMCoopmat2.Tile(parsing: $0) }
                .filter { $0.fits(shape, maxDimension: limits.maxDimension) }
        }
        try coopmat2Cases(d, tile: GEMMCoopmat2.defaultTile, emulated: false, sweep: tiles)
        // An operand off 16 bytes: a clear error when forced; the policy keeps the other kernel.
        let a = try d.tensor([Float](repeating: 0.5, count: 8 * 16 + 4), shape: [8 * 16 + 4], dtype: .f16)
            .view(atByteOffset: 8, shape: [8, 16], dtype: .f16)
        let b = try d.tensor([Float](repeating: 0.25, count: 16 * 24), shape: [24, 16], dtype: .f16)
        let out = try d.empty([8, 24])
        let cl = try CommandList(device: d)
        #expect(throws: RuntimeError.self) {
            try cl.gemm(a, b, out: out, transposeA: false, transposeB: true, alpha: 1, bias: nil, activation: .none, residual: nil,
                        tile: nil, coopmat2: true)
        }
        TestDevices.checkValidation()
    }

    /// The coopmat2 GEMM's case list with tile `t` (native or emulated), then each tile of `sweep`.
    private func coopmat2Cases(_ d: Device, tile t: GEMMCoopmat2.Tile, emulated: Bool, sweep: [GEMMCoopmat2.Tile]) throws {
        var seed: UInt64 = 1031
        // Edges in M, N and K in every transpose combination (tensor layouts clamp; rows of odd length).
        for (transA, transB) in [(false, true), (false, false), (true, false), (true, true)] {
            try check(d, m: 150, n: 133, k: 70, transA: transA, transB: transB, bias: true, activation: .geluTanh, coopmat2: t, coopmat2Emulated: emulated, seed: seed)
            try check(d, m: 136, n: 72, k: 64, transA: transA, transB: transB, coopmat2: t, coopmat2Emulated: emulated, seed: seed + 100)
            seed += 1
        }
        try check(d, m: 300, n: 264, k: 520, coopmat2: t, coopmat2Emulated: emulated, seed: 1040)
        // A in bf16 and f32, B in bf16 and f32 (decoded to fp16 while loading).
        for aType in [DType.bf16, .f32] {
            try check(d, m: 150, n: 133, k: 70, aType: aType, coopmat2: t, coopmat2Emulated: emulated, seed: 1050)
            try check(d, m: 136, n: 72, k: 64, transA: true, aType: aType, bType: .bf16, coopmat2: t, coopmat2Emulated: emulated, seed: 1051)
            try check(d, m: 136, n: 72, k: 64, aType: aType, bType: .f32, coopmat2: t, coopmat2Emulated: emulated, seed: 1052)
        }
        // FP8 weights (exact decode) with a per-column scale, both layouts; e5m2 with bf16 activations.
        for transB in [true, false] {
            try check(d, m: 150, n: 133, k: 70, transB: transB, bType: .f8e4m3fn, bias: true, perColumnScale: true, coopmat2: t, coopmat2Emulated: emulated, seed: 1060)
            try check(d, m: 136, n: 72, k: 64, transB: transB, aType: .bf16, bType: .f8e5m2, coopmat2: t, coopmat2Emulated: emulated, seed: 1061)
        }
        // Batches (16-byte aligned strides): folded into M, transposed A with a shared B, both batched.
        try check(d, m: 50, n: 40, k: 72, batchA: 3, coopmat2: t, coopmat2Emulated: emulated, seed: 1070)
        try check(d, m: 48, n: 40, k: 70, batchA: 3, transA: true, transB: false, coopmat2: t, coopmat2Emulated: emulated, seed: 1071)
        try check(d, m: 40, n: 48, k: 56, batchA: 3, batchB: 3, coopmat2: t, coopmat2Emulated: emulated, seed: 1073)
        // Workgroups looping over batches (3 on 2).
        try check(d, m: 40, n: 48, k: 56, batchA: 3, batchB: 3, coopmat2: t, coopmat2Emulated: emulated, gridCap: 2, seed: 1074)
        // Epilogues: alpha, bias, activations, residuals of each type; f16 output.
        try check(d, m: 150, n: 133, k: 70, batchA: 2, alpha: 0.5, bias: true, activation: .geluTanh, residualType: .f32,
                  coopmat2: t, coopmat2Emulated: emulated, seed: 1080)
        try check(d, m: 136, n: 72, k: 64, outType: .f16, bias: true, activation: .geluErf, residualType: .bf16, coopmat2: t, coopmat2Emulated: emulated, seed: 1081)
        try check(d, m: 136, n: 72, k: 64, aType: .bf16, bType: .f8e4m3fn, outType: .f16, bias: true, activation: .silu,
                  residualType: .f16, perColumnScale: true, coopmat2: t, coopmat2Emulated: emulated, seed: 1082)
        // The tiles a tuning sweep tries (WAN_GEMM_CM2_TILE).
        for (i, tile) in sweep.enumerated() {
            try check(d, m: 300, n: 264, k: 520, transB: true, aType: .f32, bType: .bf16, coopmat2: tile, coopmat2Emulated: emulated,
                      seed: 1100 + UInt64(i))
            try check(d, m: 150, n: 133, k: 70, transA: true, transB: false, bias: true, coopmat2: tile, coopmat2Emulated: emulated,
                      seed: 1200 + UInt64(i))
        }
    }

    /// The coopmat2 GEMM's shader with emulated matrices (`gemm_cm2_emulated`): the whole case list on any device,
    /// including tiles of other shapes and a non-power-of-two one.
    @Test func coopmat2Emulated() throws {
        guard let d = try TestDevices.vulkan() else { return }
        let sweep = try ["48x32x16", "16x64x32", "32x16x48"].map { try GEMMCoopmat2.Tile(parsing: $0) }
        try coopmat2Cases(d, tile: GEMMCoopmat2.emulatedTile, emulated: true, sweep: sweep)
        TestDevices.checkValidation()
    }
}
