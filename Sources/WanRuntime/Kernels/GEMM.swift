import Foundation
import WanShaders

/// Activation applied in a kernel epilogue.
public enum Activation: String, Sendable, CaseIterable {
    case none, geluTanh, geluErf, silu

    /// The number shaders use for this activation (`ACT` in `gemm.comp`).
    var code: UInt32 {
        switch self {
        case .none: return 0
        case .geluTanh: return 1
        case .geluErf: return 2
        case .silu: return 3
        }
    }

    /// The activation of one value, as the CPU kernels compute it.
    @inline(__always)
    func apply(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .geluTanh:
            let u = 0.797_884_560_8 * (x + 0.044715 * x * x * x)
            return x / (1 + Foundation.exp(-2 * u))
        case .geluErf: return 0.5 * x * (1 + Foundation.erf(x * 0.707_106_781_186_547_6))
        case .silu: return x / (1 + Foundation.exp(-x))
        }
    }
}

/// A tile configuration of the Vulkan GEMM: each workgroup computes `bm`×`bn` outputs from `bk`-wide
/// K slices, each thread `tm`×`tn` of them. Written `BMxBNxBKxTMxTN` (e.g. `128x128x16x8x8`).
struct GEMMTile: Sendable, Hashable, CustomStringConvertible {
    var bm, bn, bk, tm, tn: Int
    /// Whether the loop over a slice's k is unrolled; nil: on GPUs, not on CPU implementations of Vulkan
    /// (whose shader compiler takes seconds on the unrolled body).
    var unroll: Bool?

    /// Threads per workgroup.
    var threads: Int { (bm / tm) * (bn / tn) }
    /// Shared memory of the double-buffered A and B slices (one vec4 of padding per row).
    var sharedBytes: Int { 2 * bk * ((bm + 4) + (bn + 4)) * 4 }
    var description: String { "\(bm)x\(bn)x\(bk)x\(tm)x\(tn)" }

    static let large = GEMMTile(bm: 128, bn: 128, bk: 16, tm: 8, tn: 8)
    static let largeThin = GEMMTile(bm: 128, bn: 128, bk: 8, tm: 8, tn: 8)
    static let medium = GEMMTile(bm: 64, bn: 64, bk: 16, tm: 4, tn: 4)
    static let small = GEMMTile(bm: 32, bn: 32, bk: 16, tm: 4, tn: 4)

    init(bm: Int, bn: Int, bk: Int, tm: Int, tn: Int, unroll: Bool? = nil) {
        self.bm = bm; self.bn = bn; self.bk = bk; self.tm = tm; self.tn = tn; self.unroll = unroll
    }

    /// Parses `BMxBNxBKxTMxTN`.
    init(parsing text: String) throws {
        let parts = text.lowercased().split(separator: "x").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 5, let bm = parts[0], let bn = parts[1], let bk = parts[2], let tm = parts[3], let tn = parts[4] else {
            throw RuntimeError.invalidArgument("GEMM tile '\(text)': expected BMxBNxBKxTMxTN, e.g. 128x128x16x8x8")
        }
        self.init(bm: bm, bn: bn, bk: bk, tm: tm, tn: tn)
    }

    /// Throws unless the shader can run this tile on a device with `caps`.
    func validate(_ caps: Capabilities) throws {
        let shapeOK = bm > 0 && bn > 0 && bk > 0 && tm > 0 && tn > 0
            && tm % 4 == 0 && tn % 4 == 0 && bk % 4 == 0 && bm % tm == 0 && bn % tn == 0
            && bk * (max(bm, bn) / 4 + 1) < 65536
        guard shapeOK else {
            throw RuntimeError.invalidArgument("GEMM tile \(self): TM, TN, BK must be multiples of 4 dividing BM, BN")
        }
        guard threads <= caps.maxComputeWorkGroupInvocations, threads <= caps.maxComputeWorkGroupSize[0] else {
            throw RuntimeError.invalidArgument("GEMM tile \(self): \(threads) threads exceed the device's workgroup limit \(caps.maxComputeWorkGroupInvocations)")
        }
        guard sharedBytes <= caps.maxComputeSharedMemorySize else {
            throw RuntimeError.invalidArgument("GEMM tile \(self): \(sharedBytes) bytes of shared memory exceed \(caps.maxComputeSharedMemorySize)")
        }
    }

    /// The tile for a problem of `batch` × M×N outputs on a device: `WAN_GEMM_TILE` when set, else
    /// 128×128 (8×8 per thread) when the problem has enough tiles to fill a GPU, smaller tiles for
    /// small M or N, and small tiles on CPU implementations of Vulkan (lavapipe).
    static func choose(_ caps: Capabilities, m: Int, n: Int, batch: Int) throws -> GEMMTile {
        if let env = getenv("WAN_GEMM_TILE"), env.pointee != 0 {
            let t = try GEMMTile(parsing: String(cString: env))
            try t.validate(caps)
            return t
        }
        func fits(_ t: GEMMTile) -> Bool {
            (try? t.validate(caps)) != nil && t.threads >= caps.subgroupSize
        }
        func tiles(_ t: GEMMTile) -> Int { ((m + t.bm - 1) / t.bm) * ((n + t.bn - 1) / t.bn) * batch }
        if caps.isSoftware {
            return fits(.medium) ? .medium : .small
        }
        // Enough workgroups to occupy every multiprocessor of a large GPU a few times over.
        let enough = 256
        for t in [GEMMTile.large, .largeThin] where fits(t) && tiles(t) >= enough { return t }
        if fits(.medium) && tiles(.medium) >= enough / 2 { return .medium }
        if fits(.small) { return .small }
        return .medium
    }
}

/// The tensor-core GEMM variant (`gemm_coopmat.comp`, 16×16×16 cooperative matrices on the `CoopmatAPI`, fp16 → fp32,
/// operands rounded to fp16 while staged): used where the device has it for 16-bit/FP8 weights with 16-bit
/// activations, or with f32 activations when the caller allows fp16 compute; f32 weights stay exact.
enum GEMMCoopmat {
    /// A tile of the shader: BM×BN outputs per workgroup from BK-wide K slices, each subgroup WM×WN of them as
    /// (WM/16)×(WN/16) accumulators. Written `BMxBNxBKxWMxWN` (`WAN_GEMM_COOPMAT_TILE`, for tuning).
    struct Tile: Sendable, Hashable, CustomStringConvertible {
        var bm, bn, bk, wm, wn: Int
        var threads: Int { (bm / wm) * (bn / wn) * 32 }
        /// Shared memory: two fp16 slices of A and two of B (double buffering), rows padded by 8 halves, in the
        /// larger of the plain and transposed layouts; the per-subgroup 16×16 fp32 epilogue scratch reuses them.
        var sharedBytes: Int {
            let a = max(bm * (bk + 8), bk * (bm + 8)), b = max(bk * (bn + 8), bn * (bk + 8))
            return max(2 * (a + b) * 2, (threads / 32) * 256 * 4)
        }
        var description: String { "\(bm)x\(bn)x\(bk)x\(wm)x\(wn)" }

        /// Parses `BMxBNxBKxWMxWN`, checking the shader's constraints (multiples of 16, whole subgroups).
        init(parsing text: String) throws {
            let v = text.lowercased().split(separator: "x").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard v.count == 5 else {
                throw RuntimeError.invalidArgument("coopmat GEMM tile '\(text)': expected BMxBNxBKxWMxWN, e.g. 128x128x32x64x32")
            }
            self.init(bm: v[0], bn: v[1], bk: v[2], wm: v[3], wn: v[4])
            guard [bm, bn, bk, wm, wn].allSatisfy({ $0 > 0 && $0 % 16 == 0 }), bm % wm == 0, bn % wn == 0,
                  (wm / 16) * (wn / 16) <= 32 else {
                throw RuntimeError.invalidArgument("coopmat GEMM tile \(self): every size a multiple of 16, WM dividing BM, WN dividing BN, at most 32 accumulators per subgroup")
            }
        }

        init(bm: Int, bn: Int, bk: Int, wm: Int, wn: Int) {
            self.bm = bm; self.bn = bn; self.bk = bk; self.wm = wm; self.wn = wn
        }

        /// Whether a device with `caps` can run this tile (emulated: with the emulation's shared scratch).
        func fits(_ caps: Capabilities, emulated: Bool = false) -> Bool {
            let shared = sharedBytes + (emulated ? CoopmatEmulation.sharedBytes(threads: threads) : 0)
            return caps.maxComputeSharedMemorySize >= shared && caps.maxComputeWorkGroupInvocations >= threads
                && caps.maxComputeWorkGroupSize[0] >= threads
        }
    }

    /// The default tile: 128×128 in 32-wide K slices on 8 subgroups of 64×32 (40 KiB of shared memory).
    static let defaultTile = Tile(bm: 128, bn: 128, bk: 32, wm: 64, wn: 32)

    /// `WAN_GEMM_COOPMAT_TILE` when set, else the default tile (the dispatch checks that it fits the device).
    static func tile() throws -> Tile {
        guard let env = getenv("WAN_GEMM_COOPMAT_TILE"), env.pointee != 0 else { return defaultTile }
        return try Tile(parsing: String(cString: env))
    }

    /// Whether the shader may stage an operand in 8-element vector loads: its contiguous length is a
    /// multiple of 8 and its address aligned to 8 elements (16 bytes at most).
    static func vectorizable(_ x: Tensor, contiguousLength: Int) -> Bool {
        contiguousLength % 8 == 0 && x.deviceAddress % UInt64(min(16, 8 * x.dtype.size)) == 0
    }

    /// Whether the device has what both tensor-core shaders use, on the chosen API (`CoopmatAPI`).
    static func hasF16Matrices(_ caps: Capabilities) -> Bool { CoopmatAPI.chosen(caps) != nil }

    /// Whether the device can run the variant.
    static func supported(_ caps: Capabilities) -> Bool { hasF16Matrices(caps) && defaultTile.fits(caps) }

    /// The policy: `WAN_GEMM_COOPMAT=0` never, `=1` whenever supported (any operands); otherwise when supported,
    /// B is not f32 and A is not f32 unless the caller allowed fp16 compute.
    static func chosen(_ caps: Capabilities, a: DType, b: DType, fp16Compute: Bool = false) -> Bool {
        guard supported(caps) else { return false }
        if let env = getenv("WAN_GEMM_COOPMAT"), env.pointee != 0 { return String(cString: env) == "1" }
        return b != .f32 && (a != .f32 || fp16Compute)
    }
}

extension CommandList {
    /// out = act(alpha · op(A) · op(B) + bias) (+ residual), batched, fp32 accumulation. A is [..., M, K]
    /// ([..., K, M] with `transposeA`), B is [..., K, N] ([..., N, K] with `transposeB`, the Linear weight
    /// layout), either may be unbatched (shared); out and residual are [..., M, N], bias is [N].
    /// B may be FP8 (e4m3fn / e5m2, weights kept one byte on the device and decoded while tiles are
    /// staged) with `weightScale`, an f32 tensor of 1 (per tensor) or N (per output channel) values:
    /// out = act(alpha · op(A) · op(decode(B)) · scale + bias) (+ residual). With `fp16Compute` a device with
    /// tensor cores may round f32 operands to fp16 (fp32 accumulation).
    public func gemm(_ a: Tensor, _ b: Tensor, out: Tensor, transposeA: Bool = false, transposeB: Bool = false,
                     alpha: Float = 1, bias: Tensor? = nil, activation: Activation = .none, residual: Tensor? = nil,
                     weightScale: Tensor? = nil, fp16Compute: Bool = false) throws {
        try gemm(a, b, out: out, transposeA: transposeA, transposeB: transposeB, alpha: alpha, bias: bias,
                 activation: activation, residual: residual, weightScale: weightScale, tile: nil, fp16Compute: fp16Compute)
    }

    /// `gemm` with an explicit Vulkan tile configuration (tests and benchmarks); nil picks one.
    func gemm(_ a: Tensor, _ b: Tensor, out: Tensor, transposeA: Bool, transposeB: Bool, alpha: Float,
              bias: Tensor?, activation: Activation, residual: Tensor?, weightScale: Tensor? = nil, tile: GEMMTile?,
              coopmat: Bool? = nil, fp16Compute: Bool = false, coopmatTile: GEMMCoopmat.Tile? = nil,
              coopmatEmulation: CoopmatEmulation? = nil, coopmat2: Bool? = nil, coopmat2Tile: GEMMCoopmat2.Tile? = nil,
              coopmat2Emulated: Bool = false) throws {
        let op = "gemm"
        try checkDevice([a, b, out] + [bias, residual, weightScale].compactMap { $0 }, op: op)
        for (name, t) in [("A", a), ("out", out)] + [("bias", bias), ("residual", residual)].compactMap({ n, t in t.map { (n, $0) } }) {
            guard t.dtype.isComputeFloat else {
                throw RuntimeError.unsupportedDType("\(op): \(name) is \(t.dtype); expected f32, f16 or bf16")
            }
        }
        let fp8B = b.dtype == .f8e4m3fn || b.dtype == .f8e5m2
        guard b.dtype.isComputeFloat || fp8B else {
            throw RuntimeError.unsupportedDType("\(op): B is \(b.dtype); expected f32, f16, bf16, f8e4m3fn or f8e5m2")
        }
        guard a.rank >= 2, b.rank >= 2 else {
            throw RuntimeError.shapeMismatch("\(op): operands need rank >= 2, got A \(a.shape) B \(b.shape)")
        }
        guard a.isContiguous, b.isContiguous else {
            throw RuntimeError.invalidArgument("\(op): A and B must be dense in their stored layout (copy them first)")
        }
        let ra = a.rank, rb = b.rank
        let m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2]
        let k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1]
        let kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2]
        let n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1]
        guard k == kb else {
            throw RuntimeError.shapeMismatch("\(op): inner dimensions differ: A \(a.shape)\(transposeA ? "ᵀ" : "") B \(b.shape)\(transposeB ? "ᵀ" : "")")
        }
        let aBatch = Array(a.shape.dropLast(2)), bBatch = Array(b.shape.dropLast(2))
        guard aBatch.isEmpty || bBatch.isEmpty || aBatch == bBatch else {
            throw RuntimeError.shapeMismatch("\(op): batch dimensions differ: A \(a.shape) B \(b.shape)")
        }
        let batchDims = aBatch.isEmpty ? bBatch : aBatch
        let batch = batchDims.reduce(1, *)
        guard out.shape == batchDims + [m, n] else {
            throw RuntimeError.shapeMismatch("\(op): out is \(out.shape), expected \(batchDims + [m, n])")
        }
        if let bias {
            guard bias.shape == [n] else { throw RuntimeError.shapeMismatch("\(op): bias is \(bias.shape), expected [\(n)]") }
            guard bias.isContiguous else { throw RuntimeError.invalidArgument("\(op): bias must be dense") }
        }
        if let residual {
            guard residual.shape == out.shape else {
                throw RuntimeError.shapeMismatch("\(op): residual is \(residual.shape), expected \(out.shape)")
            }
            guard residual.isContiguous else { throw RuntimeError.invalidArgument("\(op): residual must be dense") }
            try checkOutput(out, notAliasing: [residual], op: op)
        } else {
            try checkOutput(out, notAliasing: [], op: op)
        }
        for t in [a, b] + [bias].compactMap({ $0 }) where out.overlaps(t) {
            throw RuntimeError.invalidArgument("\(op): output overlaps an input")
        }
        if let weightScale {
            guard weightScale.dtype == .f32, weightScale.isContiguous, weightScale.count == 1 || weightScale.count == n else {
                throw RuntimeError.shapeMismatch("\(op): weightScale must be dense f32 with 1 or \(n) values, got \(weightScale.dtype) \(weightScale.shape)")
            }
        }
        let scaleMode: UInt32 = weightScale.map { $0.count == 1 && n != 1 ? 1 : 2 } ?? 0
        if out.count == 0 { return }

        // One batch of M' = batch·M rows when A is batched, not transposed, and B is shared.
        var mm = m, nb = batch
        var strideA = aBatch.isEmpty ? 0 : m * k, strideB = bBatch.isEmpty ? 0 : k * n, strideOut = m * n
        if batch > 1 && bBatch.isEmpty && !transposeA && batch * m * max(k, n) < Int(Int32.max) {
            mm = batch * m; nb = 1; strideA = 0; strideB = 0; strideOut = 0
        }
        guard mm * k < Int(Int32.max), k * n < Int(Int32.max), mm * n < Int(Int32.max), nb < Int(UInt32.max) else {
            throw RuntimeError.invalidArgument("\(op): a matrix of \(m)x\(n)x\(k) exceeds 2^31 elements per batch")
        }
        let label = "gemm \(batch > 1 ? "\(batch)x" : "")\(m)x\(n)x\(k) \(a.dtype)\(transposeA ? "ᵀ" : "")·\(b.dtype)\(transposeB ? "ᵀ" : "")->\(out.dtype)"
            + (weightScale != nil ? "·scale" : "") + (bias != nil ? "+bias" : "") + (activation != .none ? " \(activation)" : "") + (residual != nil ? "+res" : "")

        switch impl {
        case let .cpu(r):
            let shape = CPUGEMMShape(m: mm, n: n, k: k, batch: nb, strideA: strideA, strideB: strideB, strideOut: strideOut,
                                     transposeA: transposeA, transposeB: transposeB, alpha: alpha, activation: activation)
            r.enqueue(label) { device in
                CPUGEMM.run(shape, a: a, b: b, out: out, bias: bias, residual: residual, scale: weightScale, device: device)
            }
        case let .vulkan(r):
            let caps = r.device.capabilities
            try CoopmatAPI.checkEnvironment()
            let tensorCores = coopmat ?? GEMMCoopmat.chosen(caps, a: a.dtype, b: b.dtype, fp16Compute: fp16Compute)
            let c2 = GEMMCoopmat2.self
            let eligible2 = c2.eligible(a: a, b: b, out: out, residual: residual, batch: nb, strideA: strideA, strideB: strideB, strideOut: strideOut)
            if coopmat2Emulated || coopmat2 ?? (coopmat == nil && coopmatEmulation == nil && tensorCores && c2.chosen(caps) && eligible2) {
                let t: GEMMCoopmat2.Tile, invocations: Int
                if coopmat2Emulated {
                    t = coopmat2Tile ?? c2.emulatedTile
                    invocations = c2.emulatedInvocations
                    guard CoopmatEmulation.supported(caps), c2.emulationFits(t, caps) else {
                        throw RuntimeError.missingFeature(device: caps.deviceName, feature: "fp16 arithmetic and \(c2.emulationSharedBytes(t)) bytes of shared memory (emulated coopmat2 tile \(t))")
                    }
                } else {
                    guard c2.supported(caps), let shape = c2.shape(caps), let limits = caps.cooperativeMatrix2 else {
                        throw RuntimeError.missingFeature(device: caps.deviceName, feature: "VK_NV_cooperative_matrix2 (workgroup scope, flexible dimensions, per-element operations, tensor addressing, block loads; fp16 x fp16 -> fp32) on Vulkan 1.3\(c2.built ? "" : ", in a build with glslang 15 (Benchmarks/glslang-newer.sh)")")
                    }
                    t = try coopmat2Tile ?? c2.tile()
                    guard t.fits(shape, maxDimension: limits.maxDimension) else {
                        throw RuntimeError.invalidArgument("\(op): coopmat2 tile \(t) does not fit \(caps.deviceName)'s shape \(shape) (dimensions up to \(limits.maxDimension))")
                    }
                    invocations = shape.workgroupInvocations
                }
                guard eligible2 else {
                    throw RuntimeError.invalidArgument("\(op): the coopmat2 GEMM needs an f32 or f16 output and 16-byte aligned operands and batch strides")
                }
                let constants: [UInt32] = [
                    UInt32(t.bm), UInt32(t.bn), UInt32(t.bk), 0, 0, UInt32(invocations),
                    a.dtype.code, b.dtype.code, out.dtype.code, bias?.dtype.code ?? 0, residual?.dtype.code ?? 0,
                    transposeA ? 1 : 0, transposeB ? 1 : 0, bias != nil ? 1 : 0, residual != nil ? 1 : 0,
                    activation.code, scaleMode,
                ]
                let groups = ((n + t.bn - 1) / t.bn, (mm + t.bm - 1) / t.bm, min(nb, r.maxGroups(2)))
                let kernel = coopmat2Emulated ? Kernel(name: "gemm_cm2_emulated", spirv: SPIRV.gemm_cm2_emulated)
                                              : Kernel(name: "gemm_cm2", spirv: SPIRV.gemm_cm2)
                try r.dispatch(kernel, constants: constants,
                               push: gemmPush(a, b, out, bias, residual, weightScale, mm, n, k, nb, strideA, strideB, strideOut, alpha),
                               groups: groups, reads: [a, b] + [bias, residual, weightScale].compactMap { $0 }, writes: [out],
                               label: label + " [coopmat2 \(coopmat2Emulated ? "emulated " : "")\(t)]")
                return
            }
            if coopmatEmulation != nil || tensorCores {
                let emulated = coopmatEmulation != nil
                guard emulated ? CoopmatEmulation.supported(caps) : GEMMCoopmat.supported(caps) else {
                    throw RuntimeError.missingFeature(device: caps.deviceName, feature: emulated ? "fp16 arithmetic (emulated cooperative matrices)"
                                                      : "cooperative matrices (VK_NV_cooperative_matrix, or VK_KHR_cooperative_matrix in a build with the newer glslang: Benchmarks/glslang-newer.sh) 16x16x16 f16->f32 with subgroup size 32\(getenv("WAN_COOPMAT_API") != nil ? " on WAN_COOPMAT_API's choice" : "")")
                }
                let c = GEMMCoopmat.self, t = try coopmatTile ?? c.tile()
                guard t.fits(caps, emulated: emulated) else {
                    throw RuntimeError.invalidArgument("\(op): coopmat tile \(t) (\(t.threads) threads, \(t.sharedBytes) bytes of shared memory\(emulated ? " and the emulation's" : "")) does not fit \(caps.deviceName)")
                }
                let constants: [UInt32] = [
                    UInt32(t.bm), UInt32(t.bn), UInt32(t.bk), UInt32(t.wm), UInt32(t.wn), UInt32(t.threads),
                    a.dtype.code, b.dtype.code, out.dtype.code, bias?.dtype.code ?? 0, residual?.dtype.code ?? 0,
                    transposeA ? 1 : 0, transposeB ? 1 : 0, bias != nil ? 1 : 0, residual != nil ? 1 : 0,
                    activation.code, scaleMode,
                    c.vectorizable(a, contiguousLength: transposeA ? m : k) ? 1 : 0,
                    c.vectorizable(b, contiguousLength: transposeB ? k : n) ? 1 : 0,
                ] + (coopmatEmulation.map { [$0.layout.rawValue] } ?? [])
                let groups = ((n + t.bn - 1) / t.bn, (mm + t.bm - 1) / t.bm, min(nb, r.maxGroups(2)))
                let api = CoopmatAPI.chosen(caps) ?? .nv
                let kernel = emulated ? Kernel(name: "gemm_coopmat_emulated", spirv: SPIRV.gemm_coopmat_emulated) : api.gemmKernel
                try r.dispatch(kernel, constants: constants,
                               push: gemmPush(a, b, out, bias, residual, weightScale, mm, n, k, nb, strideA, strideB, strideOut, alpha),
                               groups: groups, reads: [a, b] + [bias, residual, weightScale].compactMap { $0 }, writes: [out],
                               label: label + " [coopmat \(emulated ? "emulated" : api.rawValue) \(t)]")
                return
            }
            let t: GEMMTile
            if let tile {
                try tile.validate(caps)
                t = tile
            } else {
                t = try GEMMTile.choose(caps, m: mm, n: n, batch: nb)
            }
            func vectorizable(_ x: Tensor, contiguousLength: Int) -> Bool {
                contiguousLength % 4 == 0 && x.deviceAddress % UInt64(4 * x.dtype.size) == 0
            }
            let vecA = vectorizable(a, contiguousLength: transposeA ? m : k)
            let vecB = vectorizable(b, contiguousLength: transposeB ? k : n)
            let constants: [UInt32] = [
                UInt32(t.bm), UInt32(t.bn), UInt32(t.bk), UInt32(t.tm), UInt32(t.tn), UInt32(t.threads),
                a.dtype.code, b.dtype.code, out.dtype.code, bias?.dtype.code ?? 0, residual?.dtype.code ?? 0,
                transposeA ? 1 : 0, transposeB ? 1 : 0, vecA ? 1 : 0, vecB ? 1 : 0,
                bias != nil ? 1 : 0, residual != nil ? 1 : 0, activation.code, (t.unroll ?? !caps.isSoftware) ? 1 : 0,
                scaleMode,
            ]
            let p = gemmPush(a, b, out, bias, residual, weightScale, mm, n, k, nb, strideA, strideB, strideOut, alpha)
            let groups = ((n + t.bn - 1) / t.bn, (mm + t.bm - 1) / t.bm, min(nb, r.maxGroups(2)))
            try LoopBudget.check(caps, estimate: LoopBudget.kLoop(k: k, bk: t.bk, unrolled: t.unroll ?? false) * ((nb + groups.2 - 1) / groups.2),
                                 op: op, what: "K = \(k)\(nb > groups.2 ? " over \(nb) batches" : "")")
            try r.dispatch(Kernel(name: "gemm", spirv: SPIRV.gemm), constants: constants, push: p, groups: groups,
                           reads: [a, b] + [bias, residual, weightScale].compactMap { $0 }, writes: [out], label: label + " [\(t)]")
        }
    }
}

/// The push constants both GEMM shaders declare (addresses, sizes, batch strides, alpha).
private func gemmPush(_ a: Tensor, _ b: Tensor, _ out: Tensor, _ bias: Tensor?, _ residual: Tensor?, _ scale: Tensor?,
                      _ m: Int, _ n: Int, _ k: Int, _ batch: Int, _ strideA: Int, _ strideB: Int, _ strideOut: Int,
                      _ alpha: Float) -> PushConstants {
    var p = PushConstants()
    p.address(a)
    p.address(b)
    p.address(out)
    p.u64(bias?.deviceAddress ?? 0)
    p.u64(residual?.deviceAddress ?? 0)
    p.u64(scale?.deviceAddress ?? 0)
    p.u32(m)
    p.u32(n)
    p.u32(k)
    p.u32(batch)
    p.u32(strideA)
    p.u32(strideB)
    p.u32(strideOut)
    p.f32(alpha)
    return p
}

/// Problem description of one CPU GEMM call (after folding a shared-weight batch into M).
struct CPUGEMMShape: Sendable {
    var m, n, k, batch, strideA, strideB, strideOut: Int
    var transposeA, transposeB: Bool
    var alpha: Float
    var activation: Activation
}

/// The CPU GEMM: one OpenBLAS product (split over the cores by `CPUBLAS`) per batch on fp32 operands (f16/bf16 converted first), then
/// the epilogue (bias, activation, residual, conversion to the output dtype) over rows in parallel.
enum CPUGEMM {
    /// Converts `count` elements at `src` to fp32 at `dst`, in parallel chunks.
    static func toFloat(_ src: UnsafeRawPointer, dtype: DType, into dst: UnsafeMutablePointer<Float>, count: Int, device: CPUDevice) {
        let chunk = 1 << 16
        device.parallelFor((count + chunk - 1) / chunk, costPerItem: chunk) { blocks in
            for c in blocks {
                let lo = c * chunk, len = min(chunk, count - lo)
                HostConversion.load(src + lo * dtype.size, dtype: dtype, into: dst + lo, count: len)
            }
        }
    }

    static func run(_ s: CPUGEMMShape, a: Tensor, b: Tensor, out: Tensor, bias: Tensor?, residual: Tensor?, scale: Tensor?,
                    device: CPUDevice) {
        let (m, n, k) = (s.m, s.n, s.k)
        let aPerBatch = m * k, bPerBatch = k * n
        // The product goes straight into out when it is f32 and the residual is not out itself.
        let direct = out.dtype == .f32 && !(residual.map { $0.overlaps(out) } ?? false)
        // fp32 views of the operands: the tensors themselves, or scratch (borrowed from `CPUMemory`)
        // converted per batch.
        CPUMemory.shared.withFloats(ifNeeded: a.dtype == .f32 ? nil : max(1, aPerBatch)) { aScratch in
        CPUMemory.shared.withFloats(ifNeeded: b.dtype == .f32 ? nil : max(1, bPerBatch)) { bScratch in
        CPUMemory.shared.withFloats(ifNeeded: direct ? nil : m * n) { cScratch in
            run(s, a: a, b: b, out: out, bias: bias, residual: residual, scale: scale, device: device,
                aScratch: aScratch, bScratch: bScratch, cScratch: cScratch)
        }
        }
        }
    }

    /// `run` over borrowed scratch: per batch, operands converted when needed, one product, the epilogue.
    private static func run(_ s: CPUGEMMShape, a: Tensor, b: Tensor, out: Tensor, bias: Tensor?, residual: Tensor?, scale: Tensor?,
                            device: CPUDevice, aScratch: UnsafeMutablePointer<Float>?, bScratch: UnsafeMutablePointer<Float>?,
                            cScratch: UnsafeMutablePointer<Float>?) {
        let (m, n, k) = (s.m, s.n, s.k)
        let aPerBatch = m * k, bPerBatch = k * n
        var biasF: [Float] = []
        if let bias {
            biasF = [Float](repeating: 0, count: n)
            biasF.withUnsafeMutableBufferPointer { HostConversion.load(bias.hostPointer!, dtype: bias.dtype, into: $0.baseAddress!, count: n) }
        }
        // Dequantisation scale per output column (empty: none).
        var scaleF: [Float] = []
        if let scale {
            let v = HostConversion.decode([UInt8](UnsafeRawBufferPointer(start: scale.hostPointer!, count: scale.byteCount)), as: .f32)
            scaleF = v.count == n ? v : [Float](repeating: v[0], count: n)
        }
        let aHost = a.hostPointer!, bHost = b.hostPointer!, outHost = out.hostPointer!
        var bConverted = -1
        for z in 0..<s.batch {
            let aOff = z * s.strideA, bOff = z * s.strideB
            let aF: UnsafeMutablePointer<Float>
            if let aScratch {
                if z == 0 || s.strideA != 0 {
                    toFloat(aHost + aOff * a.dtype.size, dtype: a.dtype, into: aScratch, count: aPerBatch, device: device)
                }
                aF = aScratch
            } else {
                aF = aHost.assumingMemoryBound(to: Float.self) + aOff
            }
            let bF: UnsafeMutablePointer<Float>
            if let bScratch {
                if bConverted != bOff {
                    toFloat(bHost + bOff * b.dtype.size, dtype: b.dtype, into: bScratch, count: bPerBatch, device: device)
                    bConverted = bOff
                }
                bF = bScratch
            } else {
                bF = bHost.assumingMemoryBound(to: Float.self) + bOff
            }
            let outOff = z * s.strideOut
            let c = cScratch ?? outHost.assumingMemoryBound(to: Float.self) + outOff
            if k == 0 {
                c.update(repeating: 0, count: m * n)
            } else {
                CPUBLAS.sgemm(transA: s.transposeA, transB: s.transposeB, m: m, n: n, k: k, alpha: s.alpha,
                              a: aF, lda: max(1, s.transposeA ? m : k), b: bF, ldb: max(1, s.transposeB ? k : n),
                              beta: 0, c: c, ldc: max(1, n), device: device)
            }
            epilogue(c: c, m: m, n: n, scale: scaleF, bias: biasF, activation: s.activation,
                     residual: residual.map { ($0.hostPointer! + outOff * $0.dtype.size, $0.dtype) },
                     out: outHost + outOff * out.dtype.size, outDType: out.dtype, device: device)
        }
    }

    /// out[row] = act(c[row] + bias) + residual[row], converted to `outDType` (c may be out itself).
    static func epilogue(c: UnsafeMutablePointer<Float>, m: Int, n: Int, scale: [Float] = [], bias: [Float], activation: Activation,
                         residual: (UnsafeMutableRawPointer, DType)?, out: UnsafeMutableRawPointer, outDType: DType,
                         device: CPUDevice) {
        let inPlace = outDType == .f32 && UnsafeMutableRawPointer(c) == out
        if inPlace && scale.isEmpty && bias.isEmpty && activation == .none && residual == nil { return }
        scale.withUnsafeBufferPointer { scaleBuf in
        bias.withUnsafeBufferPointer { biasBuf in
            let bp = biasBuf.isEmpty ? nil : biasBuf.baseAddress
            let sp = scaleBuf.isEmpty ? nil : scaleBuf.baseAddress
            device.parallelFor(m, costPerItem: n * (activation == .none ? 2 : 16)) { rows in
                let tmp = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
                defer { tmp.deallocate() }
                for row in rows {
                    let src = c + row * n
                    if let sp {
                        if let bp { for j in 0..<n { tmp[j] = src[j] * sp[j] + bp[j] } } else { for j in 0..<n { tmp[j] = src[j] * sp[j] } }
                    } else if let bp {
                        for j in 0..<n { tmp[j] = src[j] + bp[j] }
                    } else {
                        tmp.update(from: src, count: n)
                    }
                    switch activation {
                    case .none: break
                    case .geluTanh: FastMath.geluTanh(tmp, n)
                    case .silu: FastMath.silu(tmp, n)
                    case .geluErf: for j in 0..<n { tmp[j] = activation.apply(tmp[j]) }
                    }
                    if let (res, dt) = residual {
                        if dt == .f32 {
                            let rp = res.assumingMemoryBound(to: Float.self) + row * n
                            for j in 0..<n { tmp[j] += rp[j] }
                        } else {
                            let dst = src // c is consumed: reuse the row as the residual's fp32 copy
                            HostConversion.load(res + row * n * dt.size, dtype: dt, into: dst, count: n)
                            for j in 0..<n { tmp[j] += dst[j] }
                        }
                    }
                    HostConversion.store(tmp, to: out + row * n * outDType.size, dtype: outDType, count: n)
                }
            }
        }
        }
    }
}

extension Device {
    /// Whether this device can run the tensor-core (cooperative-matrix) GEMM variant.
    public var supportsTensorCoreGEMM: Bool { vulkan.map { GEMMCoopmat.supported($0.capabilities) } ?? false }

    /// Whether `gemm` of an `a` by `b` product runs on tensor cores here (the policy, `WAN_GEMM_COOPMAT` included).
    public func gemmUsesTensorCores(a: DType, b: DType, fp16Compute: Bool = false) -> Bool {
        vulkan.map { GEMMCoopmat.chosen($0.capabilities, a: a, b: b, fp16Compute: fp16Compute) } ?? false
    }
}
