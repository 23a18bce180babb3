import Foundation
import Testing
@testable import WanRuntime

/// One attention problem: sizes, dtypes, masking, scale, layout and the tile/blocks to run it with.
private struct AttentionCase: CustomStringConvertible {
    var batch = 2, lq = 37, lk = 53, heads = 3, d = 16
    var qType = DType.f32, kType = DType.f32, vType = DType.f32, outType = DType.f32
    var lengths: [Int]?
    var scale: Float?
    /// Inputs uniform in ±magnitude (large values: logits far beyond fp16's range of exp).
    var magnitude: Float = 1
    /// q, k, v as slices of one fused [B, L, 3, H, D] tensor (needs lq == lk and one dtype).
    var fused = false
    /// k and v as permuted views of [B, H, Lk, D] tensors.
    var headMajorKV = false
    var tile: AttentionTile?
    var cpuBlocks: (queries: Int, keys: Int)?
    /// The CPU's wide variant with these blocks.
    var cpuWide: (queries: Int, keys: Int)?
    /// Forces the tensor-core variant on or off on Vulkan (nil: the policy), and its tile.
    var coopmat: Bool?
    var coopmatTile: AttentionCoopmat.Tile?
    /// Runs the tensor-core shader with emulated cooperative matrices (on devices without them).
    var emulation: CoopmatEmulation?
    /// The tensor-core variant's softmax (nil: `WAN_ATTN_COOPMAT_SOFTMAX` or shared).
    var softmax: AttentionCoopmat.Softmax?
    /// Forces the coopmat2 variant on or off (nil: the policy), its tile, and its emulated build.
    var coopmat2: Bool?
    var coopmat2Tile: AttentionCoopmat2.Tile?
    var coopmat2Emulated = false
    /// At most this many workgroups per looped grid axis (Vulkan): each workgroup then runs several query blocks and batches.
    var gridCap: Int?
    /// The scalar kernel's keys per dispatch (Vulkan; nil: the policy, which splits only on CPU drivers).
    var keysPerDispatch: Int?
    /// Query blocks per dispatch (Vulkan, every kernel; nil: the policy, which splits only very long attentions).
    var queryBlocksPerDispatch: Int?

    var description: String {
        "B\(batch) Lq\(lq) Lk\(lk) H\(heads) D\(d) \(qType),\(kType),\(vType)->\(outType)"
            + (lengths.map { " lengths \($0)" } ?? "") + (scale.map { " scale \($0)" } ?? "")
            + (magnitude != 1 ? " ±\(magnitude)" : "") + (fused ? " fused" : "") + (headMajorKV ? " kv[B,H,L,D]" : "")
            + " tile \(tile.map { "\($0)" } ?? "auto")" + (cpuBlocks.map { " cpu \($0.queries)x\($0.keys)" } ?? "")
            + (cpuWide.map { " cpu wide \($0.queries)x\($0.keys)" } ?? "")
            + (coopmat.map { $0 ? " coopmat" : " no coopmat" } ?? "") + (coopmatTile.map { " \($0)" } ?? "")
            + (emulation.map { " emulated (layout \($0.layout))" } ?? "") + (softmax.map { " softmax \($0)" } ?? "")
            + (coopmat2.map { $0 ? " coopmat2" : " no coopmat2" } ?? "") + (coopmat2Tile.map { " \($0)" } ?? "")
            + (coopmat2Emulated ? " coopmat2 emulated" : "") + (gridCap.map { " grid cap \($0)" } ?? "")
            + (keysPerDispatch.map { " \($0) keys per dispatch" } ?? "")
            + (queryBlocksPerDispatch.map { " \($0) query blocks per dispatch" } ?? "")
    }
}

/// Runs a case on each of `devices`: what each computed, and the float64 reference.
private func runCase(_ c: AttentionCase, on devices: [Device], seed: UInt64) throws -> (got: [[Float]], want: [Double]) {
    var rng = TestRandom(seed: seed)
    let (b, lq, lk, h, d) = (c.batch, c.lq, c.lk, c.heads, c.d)
    let qVals = quantized(rng.floats(b * lq * h * d, -c.magnitude, c.magnitude), c.qType)
    var kVals = quantized(rng.floats(b * lk * h * d, -c.magnitude, c.magnitude), c.kType)
    var vVals = quantized(rng.floats(b * lk * h * d), c.vType)
    // Masked keys hold NaN: any read of them would show in the result.
    if let lengths = c.lengths {
        for z in 0..<b {
            for j in lengths[z]..<lk {
                for i in 0..<(h * d) { kVals[(z * lk + j) * h * d + i] = .nan; vVals[(z * lk + j) * h * d + i] = .nan }
            }
        }
    }
    var got: [[Float]] = []
    for device in devices {
        let q: Tensor, k: Tensor, v: Tensor
        if c.fused {
            precondition(lq == lk && c.qType == c.kType && c.kType == c.vType)
            var fusedVals = [Float](repeating: 0, count: 3 * qVals.count)
            for row in 0..<(b * lq) {
                for (part, vals) in [qVals, kVals, vVals].enumerated() {
                    for i in 0..<(h * d) { fusedVals[(row * 3 + part) * h * d + i] = vals[row * h * d + i] }
                }
            }
            let fused = try device.tensor(fusedVals, shape: [b, lq, 3, h, d], dtype: c.qType)
            func part(_ p: Int) -> Tensor {
                Tensor(storage: fused.storage, dtype: c.qType, shape: [b, lq, h, d], strides: [lq * 3 * h * d, 3 * h * d, d, 1],
                       offset: p * h * d)
            }
            (q, k, v) = (part(0), part(1), part(2))
        } else {
            q = try device.tensor(qVals, shape: [b, lq, h, d], dtype: c.qType)
            if c.headMajorKV {
                // [B, H, Lk, D] storage viewed as [B, Lk, H, D].
                func headMajor(_ vals: [Float], _ t: DType) throws -> Tensor {
                    var hm = [Float](repeating: 0, count: vals.count)
                    for z in 0..<b { for j in 0..<lk { for hh in 0..<h { for i in 0..<d {
                        hm[((z * h + hh) * lk + j) * d + i] = vals[((z * lk + j) * h + hh) * d + i]
                    } } } }
                    return try device.tensor(hm, shape: [b, h, lk, d], dtype: t).permuted([0, 2, 1, 3])
                }
                k = try headMajor(kVals, c.kType)
                v = try headMajor(vVals, c.vType)
            } else {
                k = try device.tensor(kVals, shape: [b, lk, h, d], dtype: c.kType)
                v = try device.tensor(vVals, shape: [b, lk, h, d], dtype: c.vType)
            }
        }
        let out = try device.empty([b, lq, h, d], dtype: c.outType)
        let list = try CommandList(device: device)
        if let cap = c.gridCap { list.capGrid(cap) }
        try list.attention(q: q, k: k, v: v, out: out, scale: c.scale, keyLengths: c.lengths, tile: c.tile, cpuBlocks: c.cpuBlocks,
                           coopmat: device.isCPU ? nil : c.coopmat, coopmatTile: c.coopmatTile, cpuWideBlocks: c.cpuWide,
                           coopmatEmulation: device.isCPU ? nil : c.emulation, coopmatSoftmax: c.softmax,
                           coopmat2: device.isCPU ? nil : c.coopmat2, coopmat2Tile: c.coopmat2Tile,
                           coopmat2Emulated: !device.isCPU && c.coopmat2Emulated, keysPerDispatch: device.isCPU ? nil : c.keysPerDispatch,
                           queryBlocksPerDispatch: device.isCPU ? nil : c.queryBlocksPerDispatch)
        try list.run()
        got.append(try device.read(out))
    }

    // float64 reference (unsafe pointers: this runs in debug builds).
    let scale = Double(c.scale ?? 1 / Float(d).squareRoot())
    var want = [Double](repeating: 0, count: b * lq * h * d)
    var s = [Double](repeating: 0, count: lk)
    qVals.withUnsafeBufferPointer { qp in kVals.withUnsafeBufferPointer { kp in vVals.withUnsafeBufferPointer { vp in
    want.withUnsafeMutableBufferPointer { wp in s.withUnsafeMutableBufferPointer { sp in
        for z in 0..<b {
            let n = c.lengths?[z] ?? lk
            for hh in 0..<h {
                for i in 0..<lq {
                    let qo = ((z * lq + i) * h + hh) * d
                    var mx = -Double.infinity
                    for j in 0..<n {
                        let ko = ((z * lk + j) * h + hh) * d
                        var dot = 0.0
                        for e in 0..<d { dot += Double(qp[qo + e]) * Double(kp[ko + e]) }
                        sp[j] = dot * scale
                        mx = max(mx, sp[j])
                    }
                    var sum = 0.0
                    for j in 0..<n { sp[j] = exp(sp[j] - mx); sum += sp[j] }
                    for j in 0..<n {
                        let vo = ((z * lk + j) * h + hh) * d
                        let pj = sp[j] / sum
                        for e in 0..<d { wp[qo + e] += pj * Double(vp[vo + e]) }
                    }
                }
            }
        }
    } } } } }
    return (got, want)
}

/// Runs a case on `devices` against float64 within `tol` (default: the output dtype's tolerance).
private func check(_ c: AttentionCase, devices: [Device], seed: UInt64 = 1, tol: Double? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    let (results, want) = try runCase(c, on: devices, seed: seed)
    for (device, got) in zip(devices, results) {
        let err = maxRelativeError(got, want), limit = tol ?? tolerance(c.outType)
        let finite = got.allSatisfy { $0.isFinite }
        #expect(finite, "\(device.name) \(c): non-finite output", sourceLocation: sourceLocation)
        #expect(err <= limit, "\(device.name) \(c): error \(err)", sourceLocation: sourceLocation)
    }
}

@Suite struct AttentionTests {
    /// Self-attention sizes with odd lengths, head dims 8/16/64/128, text-length cross-attention (512 +
    /// a few keys) and a single key, against float64. Vulkan runs d 64 and d 128 with the GPUs' thread
    /// mapping (64×64 tiles on 128 threads; head-dim slices narrowed to fit lavapipe's 32 KiB).
    @Test func matchesFloat64Reference() throws {
        let devices = try TestDevices.all()
        try check(AttentionCase(d: 8), devices: devices, seed: 1)
        try check(AttentionCase(d: 16), devices: devices, seed: 2)
        try check(AttentionCase(d: 64, tile: AttentionTile(br: 64, bc: 64, threads: 128, dk: 8, ck: 16)), devices: devices, seed: 3)
        let gpu128 = AttentionTile(br: 64, bc: 64, threads: 128, dk: 8, ck: 8)
        try check(AttentionCase(batch: 1, lq: 19, lk: 517, heads: 2, d: 128, tile: gpu128), devices: devices, seed: 4)
        try check(AttentionCase(batch: 2, lq: 37, lk: 1, heads: 3, d: 128, tile: gpu128), devices: devices, seed: 5)
        // An explicit scale (the default is 1/√D).
        try check(AttentionCase(batch: 1, lq: 19, lk: 29, heads: 2, d: 16, scale: 0.9), devices: devices, seed: 6)
        TestDevices.checkValidation()
    }

    /// Tiles and CPU blocks that divide neither length: 16×16 tiles with the GPUs' unrolled inner loops
    /// and idle phase-3 threads (d 12), 8×8 scores per thread, CPU blocks of a few rows and keys.
    @Test func tilesAndBlocksNotDividingLengths() throws {
        let cpu = [TestDevices.cpu]
        try check(AttentionCase(cpuBlocks: (16, 24)), devices: cpu)
        try check(AttentionCase(batch: 1, lq: 37, lk: 131, heads: 2, d: 64, cpuBlocks: (5, 7)), devices: cpu, seed: 2)
        // The wide variant: several key blocks (online softmax across them), ragged query and key blocks,
        // masking per batch, f16 inputs converted, strided fused views; and its own block choice.
        try check(AttentionCase(batch: 2, lq: 37, lk: 131, heads: 2, d: 64, lengths: [131, 50], cpuWide: (16, 40)), devices: cpu, seed: 5)
        try check(AttentionCase(batch: 1, lq: 70, lk: 70, heads: 3, d: 128, qType: .f16, kType: .bf16, vType: .f16, outType: .f16,
                                fused: false, cpuWide: (64, 32)), devices: cpu, seed: 6)
        try check(AttentionCase(batch: 1, lq: 45, lk: 45, heads: 2, d: 16, fused: true, cpuWide: (20, 20)), devices: cpu, seed: 7)
        try check(AttentionCase(batch: 1, lq: 50, lk: 300, heads: 2, d: 128), devices: cpu, seed: 8)   // wide by the policy
        #expect(CPUAttention.wideBlocks(queries: 32760, keys: 32760) == (queries: 2048, keys: 8192))
        #expect(CPUAttention.wideBlocks(queries: 780, keys: 512) == (queries: 780, keys: 512))
        guard let vk = try TestDevices.vulkan() else { return }
        try check(AttentionCase(d: 12, tile: AttentionTile(br: 16, bc: 16, threads: 16, dk: 8, ck: 8, unroll: true)),
                  devices: [vk], seed: 3)
        try check(AttentionCase(d: 16, tile: AttentionTile(br: 64, bc: 64, threads: 64, dk: 8, ck: 16)), devices: [vk], seed: 4)
        // Workgroups looping over query blocks (5 on 2) and batches (3 on 2).
        try check(AttentionCase(batch: 3, lq: 70, lk: 29, heads: 2, d: 16, tile: AttentionTile(br: 16, bc: 16, threads: 16, dk: 8, ck: 8),
                                gridCap: 2), devices: [vk], seed: 9)
        TestDevices.checkValidation()
    }

    /// The scalar kernel with its keys split over dispatches (fp32 state carried between them): key ranges ending
    /// inside and at the last block, masking per batch (different splits per run of batches), strided views, 16-bit
    /// outputs, workgroups looping over query blocks and batches. On CPU drivers (lavapipe) the policy splits long key
    /// loops itself: llvmpipe stops an invocation's loops after 65535 iterations in all, and a long attention in one
    /// dispatch came out wrong (relative error 1.5 at Lk 16384, d 128, before the split).
    @Test func keysSplitOverDispatches() throws {
        guard let vk = try TestDevices.vulkan() else { return }
        let tiny = AttentionTile(br: 16, bc: 16, threads: 16, dk: 8, ck: 8)
        // The scalar kernel pinned (16-bit inputs would take the tensor cores on GPUs that have them).
        func scalar(_ c: AttentionCase) -> AttentionCase {
            var c = c
            (c.coopmat, c.coopmat2) = (false, false)
            return c
        }
        try check(scalar(AttentionCase(batch: 2, lq: 37, lk: 131, heads: 2, d: 64, tile: .small, keysPerDispatch: 64)), devices: [vk], seed: 40)
        try check(scalar(AttentionCase(batch: 3, lq: 21, lk: 100, heads: 3, d: 12, lengths: [100, 100, 33], tile: tiny, keysPerDispatch: 32)),
                  devices: [vk], seed: 41)
        try check(scalar(AttentionCase(batch: 1, lq: 45, lk: 45, heads: 2, d: 16, qType: .bf16, kType: .bf16, vType: .bf16, outType: .bf16,
                                       fused: true, tile: tiny, keysPerDispatch: 16)), devices: [vk], seed: 42)
        try check(scalar(AttentionCase(batch: 3, lq: 70, lk: 29, heads: 2, d: 16, qType: .f16, kType: .f16, vType: .f16, outType: .f16,
                                       headMajorKV: true, tile: tiny, gridCap: 2, keysPerDispatch: 16)), devices: [vk], seed: 43)
        // Query blocks split over dispatches too (5 blocks in 3 dispatches, each with its key ranges), masked per batch.
        try check(scalar(AttentionCase(batch: 3, lq: 70, lk: 100, heads: 2, d: 16, lengths: [100, 100, 40], tile: tiny, keysPerDispatch: 32,
                                       queryBlocksPerDispatch: 2)), devices: [vk], seed: 47)
        // 8 phase-1 rows and 16 phase-3 rows per thread (several register groups restored), a head dim padded to 4.
        try check(scalar(AttentionCase(batch: 2, lq: 70, lk: 100, heads: 2, d: 20, tile: AttentionTile(br: 64, bc: 32, threads: 32),
                                       keysPerDispatch: 32)), devices: [vk], seed: 45)
        // Keys per dispatch must be whole key blocks, and only the scalar kernel splits them.
        #expect(throws: RuntimeError.self) { try check(scalar(AttentionCase(tile: tiny, keysPerDispatch: 24)), devices: [vk]) }
        var forced = AttentionCase(d: 64, qType: .f16, kType: .f16, vType: .f16, keysPerDispatch: 32)
        forced.coopmat2Emulated = true
        #expect(throws: RuntimeError.self) { try check(forced, devices: [vk]) }
        // The policy: every key at once on GPUs; on CPU drivers whole key blocks within the loop budget.
        guard let caps = vk.vulkan?.capabilities, let m = AttentionTile.small.mapping(headDim: 128) else { return }
        var gpu = caps
        gpu.deviceType = "discrete"
        #expect(try AttentionTile.small.keysPerDispatch(gpu, headDim: 128, mapping: m, gridIterations: 1) == nil)
        var cpu = caps
        cpu.deviceType = "cpu"
        let keys = try #require(try AttentionTile.small.keysPerDispatch(cpu, headDim: 128, mapping: m, gridIterations: 1))
        #expect(keys % 32 == 0 && keys >= 32 && keys < 16384)
        let fewer = try #require(try AttentionTile.small.keysPerDispatch(cpu, headDim: 128, mapping: m, gridIterations: 3))
        #expect(fewer < keys)
        #expect(throws: RuntimeError.self) { try AttentionTile.small.keysPerDispatch(cpu, headDim: 128, mapping: m, gridIterations: 100_000) }
        // A long key loop on this device, split by the policy where it is a CPU driver (lavapipe in CI); then with
        // workgroups looping over 2 query blocks and 2 batches (4 times the loops per key: fewer keys per dispatch).
        try check(AttentionCase(batch: 1, lq: 40, lk: 20000, heads: 1, d: 128), devices: [vk], seed: 44)
        try check(AttentionCase(batch: 2, lq: 40, lk: 12000, heads: 1, d: 128, gridCap: 1), devices: [vk], seed: 46)
        TestDevices.checkValidation()
    }

    /// Per-batch key lengths (1, full, in between; runs of equal lengths); masked keys hold NaN.
    @Test func keyLengthMasking() throws {
        let devices = try TestDevices.all()
        try check(AttentionCase(batch: 3, lq: 21, lk: 53, heads: 2, lengths: [1, 53, 29]), devices: devices)
        try check(AttentionCase(batch: 4, lq: 40, lk: 37, heads: 1, lengths: [29, 29, 37, 2]), devices: devices, seed: 2)
        try check(AttentionCase(batch: 2, lq: 37, lk: 53, heads: 3, lengths: [53, 53]), devices: devices, seed: 3)
        try check(AttentionCase(batch: 2, lq: 7, lk: 70, heads: 2, lengths: [33, 65], cpuBlocks: (4, 16)),
                  devices: [TestDevices.cpu], seed: 4)
        TestDevices.checkValidation()
    }

    /// f32/f16/bf16 for q, k, v and out: three mixes on every device, more on the CPU.
    @Test func dtypeCombinations() throws {
        let devices = try TestDevices.all()
        let mixes: [(DType, DType, DType, DType)] = [(.f16, .f16, .f16, .f16), (.bf16, .bf16, .bf16, .bf16), (.f16, .bf16, .f32, .bf16)]
        for (i, m) in mixes.enumerated() {
            try check(AttentionCase(lq: 21, lk: 19, qType: m.0, kType: m.1, vType: m.2, outType: m.3),
                      devices: devices, seed: UInt64(i))
        }
        let cpuMixes: [(DType, DType, DType, DType)] = [
            (.f32, .f16, .bf16, .f16), (.f32, .f32, .f32, .bf16), (.bf16, .f16, .f32, .f16), (.f16, .f32, .bf16, .f32),
            (.bf16, .f32, .f16, .f32),
        ]
        for (i, m) in cpuMixes.enumerated() {
            try check(AttentionCase(lq: 21, lk: 19, qType: m.0, kType: m.1, vType: m.2, outType: m.3),
                      devices: [TestDevices.cpu], seed: UInt64(10 + i))
        }
        TestDevices.checkValidation()
    }

    /// fp16 inputs whose logits reach thousands (exp would overflow anything but fp32 max-subtracted
    /// statistics): finite and close to float64. The tolerance covers the fp32 rounding of the logits.
    @Test func largeLogitsFP16() throws {
        let devices = try TestDevices.all()
        try check(AttentionCase(lq: 21, lk: 19, qType: .f16, kType: .f16, vType: .f16, outType: .f16, scale: 1, magnitude: 60),
                  devices: devices, tol: 1e-2)
        try check(AttentionCase(lq: 21, lk: 19, qType: .f16, kType: .f16, vType: .f16, outType: .f16, magnitude: 200),
                  devices: devices, seed: 2, tol: 1e-2)
        TestDevices.checkValidation()
    }

    /// Strided inputs: q, k, v as slices of a fused [B, L, 3, H, D] tensor (vector loads at d 16, scalar
    /// loads at d 6), and k, v as permuted [B, H, Lk, D] tensors.
    @Test func stridedViews() throws {
        let devices = try TestDevices.all()
        try check(AttentionCase(lq: 37, lk: 37, d: 16, fused: true), devices: devices)
        try check(AttentionCase(batch: 1, lq: 29, lk: 29, heads: 2, d: 6, fused: true), devices: devices, seed: 2)
        try check(AttentionCase(lq: 21, lk: 33, d: 16, headMajorKV: true), devices: devices, seed: 3)
        TestDevices.checkValidation()
    }

    /// Long attentions are split over dispatches of at most 2 TFLOP (query blocks): Wan 14B's self-attention at 720p
    /// (117 TFLOP) in 60 dispatches of 20 blocks, 1.3B's at 480p in 4, the test sizes in one; a forced split is positive.
    @Test func dispatchSplitPolicy() throws {
        #expect(AttentionDispatchSplit.queryBlocks(rows: 64, keys: 75600, headDim: 128, heads: 40, batches: 1) == 20)
        #expect(AttentionDispatchSplit.queryBlocks(rows: 64, keys: 32760, headDim: 128, heads: 12, batches: 1) == 155)
        #expect(AttentionDispatchSplit.queryBlocks(rows: 64, keys: 512, headDim: 128, heads: 12, batches: 2) >= 512)
        #expect(AttentionDispatchSplit.queryBlocks(rows: 64, keys: 1 << 30, headDim: 256, heads: 64, batches: 8) == 1)
        #expect(AttentionDispatchSplit.queryBlocks(rows: 64, keys: 0, headDim: 128, heads: 12, batches: 1) == 1)
        guard let vk = try TestDevices.vulkan() else { return }
        #expect(throws: RuntimeError.self) { try check(AttentionCase(queryBlocksPerDispatch: 0), devices: [vk]) }
    }

    /// The tile policy: WAN_ATTN_TILE syntax, the thread mappings, shared-memory limits, the choice per device kind.
    @Test func tilePolicy() throws {
        #expect(throws: RuntimeError.self) { try AttentionTile(parsing: "64x64") }
        #expect(throws: RuntimeError.self) { try AttentionTile(parsing: "64xAx128") }
        #expect(try AttentionTile(parsing: "64x64x128") == .large)
        #expect(try AttentionTile(parsing: "64x64x256x16x8") == .largeWide)
        #expect(AttentionTile.large.mapping(headDim: 128) == .init(tm: 4, tn: 8, tm2: 8, tn2: 8, active3: 128))
        #expect(AttentionTile.large.mapping(headDim: 64) == .init(tm: 4, tn: 8, tm2: 4, tn2: 8, active3: 128))
        #expect(AttentionTile.small.mapping(headDim: 12)?.active3 == 24)
        #expect(AttentionTile(br: 64, bc: 64, threads: 100).mapping(headDim: 64) == nil)
        #expect(AttentionTile(br: 64, bc: 60, threads: 120, dk: 16, ck: 16).mapping(headDim: 64) == nil) // CK ∤ BC
        guard let v = try TestDevices.vulkan()?.vulkan else { return }
        let caps = v.capabilities
        for d in [1, 6, 8, 12, 16, 32, 64, 80, 128, 256] {
            let t = try AttentionTile.choose(caps, headDim: d, queries: 1000, heads: 4, batch: 1)
            _ = try t.validate(caps, headDim: d)
        }
        var gpu = caps
        gpu.deviceType = "discrete"
        gpu.maxComputeSharedMemorySize = 48 * 1024
        gpu.subgroupSize = 32
        gpu.maxComputeWorkGroupInvocations = 1024
        gpu.maxComputeWorkGroupSize = [1024, 1024, 64]
        #expect(try AttentionTile.choose(gpu, headDim: 128, queries: 32760, heads: 12, batch: 1) == .large)
        #expect(try AttentionTile.choose(gpu, headDim: 64, queries: 32760, heads: 12, batch: 1) == .large)
        #expect(try AttentionTile.choose(gpu, headDim: 256, queries: 32760, heads: 12, batch: 1) == .largeWide)
        #expect(try AttentionTile.choose(gpu, headDim: 128, queries: 300, heads: 2, batch: 1) == .medium)
        var small = gpu
        small.maxComputeSharedMemorySize = 32 * 1024
        #expect(throws: RuntimeError.self) { try AttentionTile.large.validate(small, headDim: 128) }
        let t = try AttentionTile.choose(small, headDim: 128, queries: 32760, heads: 12, batch: 1)
        let m = try t.validate(small, headDim: 128)
        #expect(t.sharedBytes(headDim: 128, mapping: m) <= 32 * 1024)
    }

    /// Wrong shapes, strides, dtypes, key lengths, devices and aliasing throw RuntimeErrors.
    @Test func invalidArguments() throws {
        let d = TestDevices.cpu
        let q = try d.zeros([2, 5, 3, 8]), k = try d.zeros([2, 7, 3, 8]), v = try d.zeros([2, 7, 3, 8])
        let out = try d.zeros([2, 5, 3, 8])
        let list = try CommandList(device: d)
        func expectError(_ what: String, _ body: () throws -> Void) {
            #expect(throws: RuntimeError.self, "\(what)") { try body() }
        }
        // Sanity: the valid calls record.
        try list.attention(q: q, k: k, v: v, out: out)
        try list.attention(q: q, k: k, v: v, out: out, keyLengths: [1, 7])
        expectError("rank") { try list.attention(q: try d.zeros([5, 3, 8]), k: k, v: v, out: out) }
        expectError("head dim") { try list.attention(q: q, k: try d.zeros([2, 7, 3, 4]), v: v, out: out) }
        expectError("heads") { try list.attention(q: q, k: try d.zeros([2, 7, 2, 8]), v: v, out: out) }
        expectError("batch") { try list.attention(q: q, k: try d.zeros([1, 7, 3, 8]), v: v, out: out) }
        expectError("v shape") { try list.attention(q: q, k: k, v: try d.zeros([2, 6, 3, 8]), out: out) }
        expectError("out shape") { try list.attention(q: q, k: k, v: v, out: try d.zeros([2, 7, 3, 8])) }
        expectError("int dtype") { try list.attention(q: q, k: k, v: v, out: try d.zeros([2, 5, 3, 8], dtype: .i32)) }
        expectError("fp8 input") { try list.attention(q: try d.zeros([2, 5, 3, 8], dtype: .f8e4m3fn), k: k, v: v, out: out) }
        expectError("strided head dim") {
            // Every other element of a [2, 7, 3, 16] tensor.
            let wide = try d.zeros([2, 7, 3, 16])
            let k2 = Tensor(storage: wide.storage, dtype: .f32, shape: [2, 7, 3, 8], strides: [336, 48, 16, 2])
            try list.attention(q: q, k: k2, v: v, out: out)
        }
        expectError("strided out") { try list.attention(q: q, k: k, v: v, out: try d.zeros([2, 3, 5, 8]).permuted([0, 2, 1, 3])) }
        expectError("out aliases q") { try list.attention(q: q, k: k, v: v, out: q) }
        expectError("no keys") { try list.attention(q: q, k: try d.zeros([2, 0, 3, 8]), v: try d.zeros([2, 0, 3, 8]), out: out) }
        expectError("key length 0") { try list.attention(q: q, k: k, v: v, out: out, keyLengths: [0, 7]) }
        expectError("key length > Lk") { try list.attention(q: q, k: k, v: v, out: out, keyLengths: [8, 7]) }
        expectError("key length count") { try list.attention(q: q, k: k, v: v, out: out, keyLengths: [7]) }
        expectError("scale") { try list.attention(q: q, k: k, v: v, out: out, scale: .infinity) }
        if let vk = try TestDevices.vulkan() {
            expectError("mixed devices") { try list.attention(q: q, k: try vk.zeros([2, 7, 3, 8]), v: v, out: out) }
            let vl = try CommandList(device: vk)
            let vq = try vk.zeros([2, 5, 3, 8]), vkk = try vk.zeros([2, 7, 3, 8]), vo = try vk.zeros([2, 5, 3, 8])
            expectError("bad tile") {
                try vl.attention(q: vq, k: vkk, v: vkk, out: vo, scale: nil, keyLengths: nil,
                                 tile: AttentionTile(br: 64, bc: 64, threads: 100), cpuBlocks: nil)
            }
        }
    }
}

/// The tensor-core variant (`attention_coopmat.comp`): against float64 on the device where it runs (q, k, v
/// and the probabilities rounded to fp16, so fp16 tolerances); elsewhere (lavapipe) forcing it is a clear error,
/// and the same shader runs its whole case list with emulated cooperative matrices (`attention_coopmat_emulated`).
@Suite struct AttentionCoopmatTests {
    /// `WAN_ATTN_COOPMAT_TILE` syntax and constraints; the default tile's shared memory at d 128.
    @Test func coopmatTileParsing() throws {
        #expect(try AttentionCoopmat.Tile(parsing: "4x64") == AttentionCoopmat.defaultTile)
        #expect(AttentionCoopmat.defaultTile.sharedBytes(headDim: 128) == 45312)
        #expect(AttentionCoopmat.defaultTile.sharedBytes(headDim: 128, softmax: .registers) == 36864)
        #expect(AttentionCoopmat.Tile(subgroups: 8, keys: 64).sharedBytes(headDim: 128, softmax: .registers) == 36864)
        for bad in ["4", "0x64", "17x64", "4x48", "4x0", "ax64"] {
            #expect(throws: RuntimeError.self, "\(bad)") { try AttentionCoopmat.Tile(parsing: bad) }
        }
    }

    @Test func coopmatVariant() throws {
        guard let d = try TestDevices.vulkan(), let caps = d.vulkan?.capabilities else { return }
        #expect(!AttentionCoopmat.supported(caps, headDim: 24), "head dims must be multiples of 16")
        #expect(!AttentionCoopmat.supported(caps, headDim: 256), "at most 128 (register accumulators)")
        guard AttentionCoopmat.supported(caps, headDim: 64) else {
            #expect(throws: RuntimeError.self) { try check(AttentionCase(d: 64, coopmat: true), devices: [d]) }
            #expect(!AttentionCoopmat.chosen(caps, headDim: 64, inputs: [.f16, .f16, .f16], fp16Compute: true))
            print("note: \(caps.deviceName) has no usable NV cooperative matrix; the tensor-core attention runs emulated")
            // Head dims the shader does not take are a clear error emulated too.
            #expect(throws: RuntimeError.self) {
                try check(AttentionCase(d: 24, coopmat: true, emulation: CoopmatEmulation()), devices: [d])
            }
            for softmax in AttentionCoopmat.Softmax.allCases {
                try cases(d, caps, emulation: CoopmatEmulation(), softmax: softmax)
            }
            TestDevices.checkValidation()
            return
        }
        // The policy (unless WAN_ATTN_COOPMAT overrides it): 16-bit inputs, or f32 with fp16 compute allowed.
        if getenv("WAN_ATTN_COOPMAT") == nil {
            #expect(AttentionCoopmat.chosen(caps, headDim: 128, inputs: [.bf16, .bf16, .bf16], fp16Compute: false))
            #expect(!AttentionCoopmat.chosen(caps, headDim: 128, inputs: [.f32, .f32, .f32], fp16Compute: false))
            #expect(AttentionCoopmat.chosen(caps, headDim: 128, inputs: [.f32, .f32, .f32], fp16Compute: true))
        }
        try cases(d, caps, emulation: nil, softmax: .shared)
        if d.supportsRegisterSoftmaxAttention {
            try cases(d, caps, emulation: nil, softmax: .registers)
        } else {
            print("note: \(caps.deviceName) lacks NVIDIA's accumulator layout; the register-softmax attention was not run natively")
        }
        TestDevices.checkValidation()
    }

    /// The attentions of the variant test, on the device's cooperative matrices or emulated ones, with the softmax
    /// in shared memory or in registers.
    private func cases(_ d: Device, _ caps: Capabilities, emulation e: CoopmatEmulation?, softmax: AttentionCoopmat.Softmax) throws {
        let tol = 2e-2
        func run(_ c: AttentionCase, seed: UInt64, sourceLocation: SourceLocation = #_sourceLocation) throws {
            var c = c
            c.coopmat = true
            c.emulation = e
            c.softmax = softmax
            try check(c, devices: [d], seed: seed, tol: tol, sourceLocation: sourceLocation)
        }
        // Odd lengths (query blocks and key blocks both ragged), every head dim the shader takes. The long case
        // is shorter emulated (lavapipe runs the emulated products at ~50 MFLOP/s).
        try run(AttentionCase(batch: 2, lq: 150, lk: 77, heads: 3, d: 64, qType: .f16, kType: .f16, vType: .f16,
                              outType: .f16), seed: 1)
        let (longQ, longK) = e == nil ? (300, 513) : (70, 161)
        try run(AttentionCase(batch: 1, lq: longQ, lk: longK, heads: 2, d: 128, qType: .bf16, kType: .bf16, vType: .bf16,
                              outType: .bf16), seed: 2)
        try run(AttentionCase(batch: 1, lq: 33, lk: 1, heads: 2, d: 16, qType: .f16, kType: .f16, vType: .f16), seed: 3)
        // f32 inputs rounded to fp16 (what fp16 compute does), f32 output; mixed dtypes.
        try run(AttentionCase(batch: 2, lq: 65, lk: 130, heads: 2, d: 32), seed: 4)
        try run(AttentionCase(batch: 1, lq: 70, lk: 64, heads: 2, d: 48, qType: .f32, kType: .bf16, vType: .f16), seed: 5)
        // Key-length masking (the masked keys hold NaN), different per batch.
        try run(AttentionCase(batch: 2, lq: 40, lk: 150, heads: 2, d: 64, qType: .f16, kType: .f16, vType: .f16,
                              lengths: [150, 23]), seed: 6)
        // Strided views: slices of a fused QKV tensor, and head-major k, v.
        try run(AttentionCase(batch: 1, lq: 70, lk: 70, heads: 2, d: 64, qType: .f16, kType: .f16, vType: .f16,
                              fused: true), seed: 7)
        try run(AttentionCase(batch: 2, lq: 21, lk: 33, heads: 3, d: 16, qType: .bf16, kType: .bf16, vType: .bf16,
                              headMajorKV: true), seed: 8)
        // Large logits (softmax far from uniform).
        try run(AttentionCase(batch: 1, lq: 64, lk: 96, heads: 1, d: 64, qType: .f16, kType: .f16, vType: .f16,
                              magnitude: 4), seed: 9)
        // Workgroups looping over query blocks and batches (at most 2 workgroups on each).
        try run(AttentionCase(batch: 3, lq: 150, lk: 45, heads: 2, d: 32, qType: .f16, kType: .f16, vType: .f16, gridCap: 2), seed: 10)
        // Query blocks split over dispatches (AttentionDispatchSplit, forced: 2 blocks each), masked per batch.
        try run(AttentionCase(batch: 2, lq: 150, lk: 77, heads: 2, d: 64, qType: .f16, kType: .f16, vType: .f16, lengths: [77, 30],
                              queryBlocksPerDispatch: 2), seed: 11)
        // Other tiles (for tuning through WAN_ATTN_COOPMAT_TILE): fewer/more query rows, other key blocks.
        var ran = 0
        for (i, text) in ["4x64", "2x64", "4x32", "1x128", "8x32", "1x32"].enumerated() {
            let t = try AttentionCoopmat.Tile(parsing: text)
            guard t.fits(caps, headDim: 64, emulated: e != nil, softmax: softmax) else { continue }
            try run(AttentionCase(batch: 2, lq: 150, lk: 77, heads: 3, d: 64, qType: .f16, kType: .f16, vType: .f16,
                                  lengths: [77, 40], coopmatTile: t), seed: 20 + UInt64(i))
            ran += 1
        }
        #expect(ran >= 2, "at least two other tiles fit \(caps.deviceName)")
        // The shared-memory softmax must not assume the fragment layout (it reads rows from a loaded table): the
        // other layout. The register softmax assumes NVIDIA's: on the other layout the shared-memory one runs.
        if var other = e {
            other.layout = .columns
            var c = AttentionCase(batch: 2, lq: 40, lk: 150, heads: 2, d: 64, qType: .f16, kType: .f16, vType: .f16,
                                  lengths: [150, 23], coopmat: true)
            c.emulation = other
            c.softmax = softmax
            try check(c, devices: [d], seed: 30, tol: tol)
            // NVIDIA's rows with the elements in another order: the register softmax takes the row bit.
            other.layout = .nvidiaPermuted
            c.emulation = other
            try check(c, devices: [d], seed: 31, tol: tol)
            c.d = 128
            c.qType = .bf16
            try check(c, devices: [d], seed: 32, tol: tol)
        }
    }
}

/// The coopmat2 variant (`attention_cm2.comp`, VK_NV_cooperative_matrix2): against float64 on devices that have the
/// extension (q, k, v and the probabilities rounded to fp16); elsewhere (lavapipe) forcing it is a clear error, and the
/// same shader runs its whole case list with emulated workgroup-scope matrices (`attention_cm2_emulated`).
@Suite struct AttentionCoopmat2Tests {
    /// `WAN_ATTN_CM2_TILE` syntax, what the variant needs of a device (edited capabilities) and of its operands.
    @Test func coopmat2Policy() throws {
        #expect(try AttentionCoopmat2.Tile(parsing: "64x64") == AttentionCoopmat2.defaultTile)
        for bad in ["64", "64x60", "0x64", "64x64x64", "axb"] {
            #expect(throws: RuntimeError.self, "\(bad)") { try AttentionCoopmat2.Tile(parsing: bad) }
        }
        guard let d = try TestDevices.vulkan(), let real = d.vulkan?.capabilities else { return }
        let shape = TestCoopmat2.shape, shape128 = shape.with(\.workgroupInvocations, 128)
        var caps = real.withCoopmat2(shapes: [shape, shape128])
        #expect(AttentionCoopmat2.offered(caps) && AttentionCoopmat2.shape(caps) == shape128, "128 invocations preferred")
        for missing in [\Capabilities.CooperativeMatrix2.reductions, \.conversions, \.perElementOperations, \.tensorAddressing] {
            var c = caps
            c.cooperativeMatrix2?[keyPath: missing] = false
            #expect(!AttentionCoopmat2.offered(c), "\(missing)")
        }
        caps.cooperativeMatrix2Enabled = true
        #expect(AttentionCoopmat2.supported(caps, headDim: 128) == AttentionCoopmat2.built)
        #expect(!AttentionCoopmat2.supported(caps, headDim: 24) && !AttentionCoopmat2.supported(caps, headDim: 272))
        caps.cooperativeMatrix2Enabled = false
        #expect(!AttentionCoopmat2.supported(caps, headDim: 128), "not enabled on the opened device")
        // Tiles: both products' dimensions multiples of the granularities, within the maximum.
        #expect(AttentionCoopmat2.defaultTile.fits(shape, maxDimension: 256, headDim: 128))
        #expect(!AttentionCoopmat2.defaultTile.fits(shape, maxDimension: 256, headDim: 40), "head dim off the granularity")
        var coarse = shape
        coarse.kGranularity = 32
        #expect(!AttentionCoopmat2.Tile(br: 64, bc: 48).fits(coarse, maxDimension: 256, headDim: 128), "keys off K's granularity")
        #expect(!AttentionCoopmat2.Tile(br: 64, bc: 64).fits(shape, maxDimension: 128, headDim: 256), "beyond the maximum")
        // Operands: f32/f16 outputs, aligned heads and rows, rows that do not overlap.
        let q = try d.empty([2, 10, 3, 64], dtype: .f16), st = [10 * 3 * 64, 3 * 64, 64]
        #expect(AttentionCoopmat2.eligible(q: q, k: q, v: q, out: try d.empty([2, 10, 3, 64]), qs: st, ks: st, vs: st, headDim: 64))
        #expect(AttentionCoopmat2.eligible(q: q, k: q, v: q, out: try d.empty([2, 10, 3, 64], dtype: .f16), qs: st, ks: st, vs: st, headDim: 64))
        #expect(!AttentionCoopmat2.eligible(q: q, k: q, v: q, out: try d.empty([2, 10, 3, 64], dtype: .bf16), qs: st, ks: st, vs: st, headDim: 64))
        let odd = try d.empty([2, 10, 3, 20], dtype: .f16), so = [600, 60, 20]
        #expect(!AttentionCoopmat2.eligible(q: odd, k: odd, v: odd, out: try d.empty([2, 10, 3, 20]), qs: so, ks: so, vs: so, headDim: 20),
                "heads 40 bytes apart")
        #expect(!AttentionCoopmat2.eligible(q: q, k: q, v: q, out: try d.empty([2, 10, 3, 64]), qs: st, ks: [st[0], 32, 64], vs: st, headDim: 64),
                "overlapping rows")
        let view = try q.view(atByteOffset: 8, shape: [1, 10, 3, 64], dtype: .f16)
        #expect(!AttentionCoopmat2.eligible(q: view, k: q, v: q, out: try d.empty([1, 10, 3, 64]), qs: [0, 192, 64], ks: st, vs: st, headDim: 64))
        if getenv("WAN_ATTN_CM2") == nil {
            #expect(!AttentionCoopmat2.chosen(caps, headDim: 128, inputs: [.f16, .f16, .f16], fp16Compute: false), "opt-in")
        }
    }

    /// Native where the device has VK_NV_cooperative_matrix2 and this build the shader; elsewhere forcing it fails.
    @Test func coopmat2Variant() throws {
        guard let d = try TestDevices.vulkan(), let caps = d.vulkan?.capabilities else { return }
        guard AttentionCoopmat2.supported(caps, headDim: 64) else {
            #expect(throws: RuntimeError.self) { try check(AttentionCase(d: 64, qType: .f16, kType: .f16, vType: .f16, coopmat2: true), devices: [d]) }
            #expect(!AttentionCoopmat2.chosen(caps, headDim: 64, inputs: [.f16, .f16, .f16], fp16Compute: true))
            print("note: \(caps.deviceName): no coopmat2 attention (shader \(AttentionCoopmat2.built ? "built" : "not built"), VK_NV_cooperative_matrix2 \(caps.nvCooperativeMatrix2 ? "present" : "absent"))")
            return
        }
        var sweep: [AttentionCoopmat2.Tile] = []
        if let shape = AttentionCoopmat2.shape(caps), let limits = caps.cooperativeMatrix2 {
            sweep = try ["128x64", "64x128", "32x64", "128x128", "64x32"].map { try AttentionCoopmat2.Tile(parsing: $0) }
                .filter { $0.fits(shape, maxDimension: limits.maxDimension, headDim: 64) }
        }
        try cases(d, emulated: false, sweep: sweep)
        TestDevices.checkValidation()
    }

    /// The shader with emulated matrices: the whole case list on any device.
    @Test func coopmat2Emulated() throws {
        guard let d = try TestDevices.vulkan() else { return }
        let sweep = try ["16x16", "48x32", "32x64", "64x16"].map { try AttentionCoopmat2.Tile(parsing: $0) }
        try cases(d, emulated: true, sweep: sweep)
        // Outputs the tensor layouts cannot store (bf16) are a clear error when forced.
        #expect(throws: RuntimeError.self) {
            try check(AttentionCase(d: 64, qType: .f16, kType: .f16, vType: .f16, outType: .bf16, coopmat2Emulated: true), devices: [d])
        }
        TestDevices.checkValidation()
    }

    /// The attentions of the variant tests, natively or emulated, then the tiles of `sweep`.
    private func cases(_ d: Device, emulated: Bool, sweep: [AttentionCoopmat2.Tile]) throws {
        let tol = 2e-2
        func run(_ c: AttentionCase, seed: UInt64, sourceLocation: SourceLocation = #_sourceLocation) throws {
            var c = c
            c.coopmat2 = true
            c.coopmat2Emulated = emulated
            try check(c, devices: [d], seed: seed, tol: tol, sourceLocation: sourceLocation)
        }
        // Odd lengths (ragged query and key blocks); the long case is shorter emulated.
        try run(AttentionCase(batch: 2, lq: 150, lk: 77, heads: 3, d: 64, qType: .f16, kType: .f16, vType: .f16, outType: .f16), seed: 1)
        let (longQ, longK) = emulated ? (70, 161) : (300, 513)
        try run(AttentionCase(batch: 1, lq: longQ, lk: longK, heads: 2, d: 128, qType: .bf16, kType: .bf16, vType: .bf16), seed: 2)
        // One key, one query (length-1 dimensions have stride 0).
        try run(AttentionCase(batch: 1, lq: 33, lk: 1, heads: 2, d: 16, qType: .f16, kType: .f16, vType: .f16), seed: 3)
        try run(AttentionCase(batch: 2, lq: 1, lk: 40, heads: 3, d: 64, qType: .f16, kType: .f16, vType: .f16, outType: .f16), seed: 4)
        // f32 inputs rounded to fp16 while loading; mixed dtypes.
        try run(AttentionCase(batch: 2, lq: 65, lk: 130, heads: 2, d: 32), seed: 5)
        try run(AttentionCase(batch: 1, lq: 70, lk: 64, heads: 2, d: 48, qType: .f32, kType: .bf16, vType: .f16), seed: 6)
        // Key-length masking (the masked keys hold NaN), different per batch.
        try run(AttentionCase(batch: 2, lq: 40, lk: 150, heads: 2, d: 64, qType: .f16, kType: .f16, vType: .f16,
                              lengths: [150, 23]), seed: 7)
        // Strided views: slices of a fused QKV tensor, and head-major k, v.
        try run(AttentionCase(batch: 1, lq: 70, lk: 70, heads: 2, d: 64, qType: .f16, kType: .f16, vType: .f16, fused: true), seed: 8)
        try run(AttentionCase(batch: 2, lq: 21, lk: 33, heads: 3, d: 16, qType: .bf16, kType: .bf16, vType: .bf16, headMajorKV: true), seed: 9)
        // Large logits (softmax far from uniform).
        try run(AttentionCase(batch: 1, lq: 64, lk: 96, heads: 1, d: 64, qType: .f16, kType: .f16, vType: .f16, magnitude: 4), seed: 10)
        // Workgroups looping over query blocks and batches (at most 2 workgroups on each).
        try run(AttentionCase(batch: 3, lq: 150, lk: 45, heads: 2, d: 32, qType: .f16, kType: .f16, vType: .f16, gridCap: 2), seed: 12)
        // Query blocks split over dispatches (AttentionDispatchSplit, forced: 2 blocks each), masked per batch.
        try run(AttentionCase(batch: 2, lq: 150, lk: 77, heads: 2, d: 64, qType: .f16, kType: .f16, vType: .f16, lengths: [77, 30],
                              queryBlocksPerDispatch: 2), seed: 13)
        // Head dim 256 (small tile emulated: the emulation's scratch grows with the head dim).
        var wide = AttentionCase(batch: 1, lq: 40, lk: 50, heads: 2, d: 256, qType: .f16, kType: .f16, vType: .f16)
        if emulated { wide.coopmat2Tile = AttentionCoopmat2.Tile(br: 16, bc: 16) }
        try run(wide, seed: 11)
        // Other tiles (WAN_ATTN_CM2_TILE).
        for (i, t) in sweep.enumerated() {
            try run(AttentionCase(batch: 2, lq: 150, lk: 77, heads: 3, d: 64, qType: .f16, kType: .f16, vType: .f16,
                                  lengths: [77, 40], coopmat2Tile: t), seed: 20 + UInt64(i))
        }
    }
}
