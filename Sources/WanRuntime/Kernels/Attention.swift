import Foundation
import WanShaders

/// A tile configuration of the Vulkan attention kernel (`attention.comp`): a workgroup of `threads`
/// owns `br` query rows of one (batch, head) and walks the keys in blocks of `bc`; Q·Kᵀ is staged
/// through shared memory in `dk`-wide head-dim slices, P·V in `ck`-key slices. Written
/// `BRxBCxTHREADS` or `BRxBCxTHREADSxDKxCK` (e.g. `64x64x128x16x16`).
struct AttentionTile: Sendable, Hashable, CustomStringConvertible {
    var br, bc, threads: Int
    var dk, ck: Int
    /// Whether the inner loops are unrolled; nil: on GPUs, not on CPU implementations of Vulkan.
    var unroll: Bool?

    /// Per-thread register tiles for one head dim: phase 1 holds `tm`×`tn` scores, phase 3 `tm2`×`tn2`
    /// outputs; `active3` threads take part in phase 3 (all of them unless the head dim is small).
    struct Mapping: Sendable, Hashable {
        var tm, tn, tm2, tn2, active3: Int
    }

    var description: String { "\(br)x\(bc)x\(threads)x\(dk)x\(ck)" }

    init(br: Int, bc: Int, threads: Int, dk: Int = 16, ck: Int = 16, unroll: Bool? = nil) {
        self.br = br; self.bc = bc; self.threads = threads; self.dk = dk; self.ck = ck; self.unroll = unroll
    }

    /// Parses `BRxBCxTHREADS` or `BRxBCxTHREADSxDKxCK`.
    init(parsing text: String) throws {
        let parts = text.lowercased().split(separator: "x").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3 || parts.count == 5, parts.allSatisfy({ $0 != nil }) else {
            throw RuntimeError.invalidArgument("attention tile '\(text)': expected BRxBCxTHREADS or BRxBCxTHREADSxDKxCK, e.g. 64x64x128")
        }
        let v = parts.map { $0! }
        self.init(br: v[0], bc: v[1], threads: v[2], dk: v.count == 5 ? v[3] : 16, ck: v.count == 5 ? v[4] : 16)
    }

    /// The head dim padded to a multiple of 4 (the shader's vec4 granularity).
    static func paddedHeadDim(_ d: Int) -> Int { (d + 3) / 4 * 4 }

    /// The register tiles for head dim `d`, or nil when this tile cannot be mapped onto its threads.
    func mapping(headDim d: Int) -> Mapping? {
        guard br > 0, bc > 0, threads > 0, dk > 0, ck > 0, d > 0,
              br % 4 == 0, bc % 4 == 0, dk % 4 == 0, bc % ck == 0 else { return nil }
        let dp = AttentionTile.paddedHeadDim(d)
        // Phase 1: exactly one score tile per thread; 8 keys per thread keeps the row partials few.
        guard let (tm, tn) = [(4, 8), (8, 4), (4, 4), (8, 8), (4, 16), (16, 4)].first(where: { tm, tn in
            br % tm == 0 && bc % tn == 0 && (br / tm) * (bc / tn) == threads
        }) else { return nil }
        // Phase 3: as many threads busy as the head dim allows.
        var best: Mapping?
        for tn2 in [8, 4, 16] where dp % tn2 == 0 {
            for tm2 in [4, 8, 16, 32] where br % tm2 == 0 {
                let active = (br / tm2) * (dp / tn2)
                if active <= threads && active > (best?.active3 ?? 0) {
                    best = Mapping(tm: tm, tn: tn, tm2: tm2, tn2: tn2, active3: active)
                }
            }
        }
        return best
    }

    /// Shared memory the shader declares for head dim `d` (mirrors its `buf`, `Ps`, `redMax`, `redSum`).
    func sharedBytes(headDim d: Int, mapping m: Mapping) -> Int {
        let dp = AttentionTile.paddedHeadDim(d)
        let rowQ = br / 4 + 1, rowK = bc / 4 + 1, rowV = dp / 4 + 1, rowP = br / 4 + 1
        let buf = max(2 * dk * (rowQ + rowK), 2 * ck * rowV)
        return 16 * (buf + bc * rowP) + 2 * 4 * (bc / m.tn) * br
    }

    /// The mapping for head dim `d`, throwing unless the shader can run this tile on a device with `caps`.
    func validate(_ caps: Capabilities, headDim d: Int) throws -> Mapping {
        guard let m = mapping(headDim: d) else {
            throw RuntimeError.invalidArgument("attention tile \(self): BR, BC, DK must be multiples of 4, CK must divide BC, "
                + "and BR×BC/THREADS must split into 4/8/16-wide register tiles (head dim \(d))")
        }
        guard threads <= caps.maxComputeWorkGroupInvocations, threads <= caps.maxComputeWorkGroupSize[0] else {
            throw RuntimeError.invalidArgument("attention tile \(self): \(threads) threads exceed the device's workgroup limit \(caps.maxComputeWorkGroupInvocations)")
        }
        let shared = sharedBytes(headDim: d, mapping: m)
        guard shared <= caps.maxComputeSharedMemorySize else {
            throw RuntimeError.invalidArgument("attention tile \(self): \(shared) bytes of shared memory for head dim \(d) exceed \(caps.maxComputeSharedMemorySize)")
        }
        return m
    }

    /// Loop iterations per key block and invocation, counted generously: twice the loops the shader keeps on CPU
    /// drivers (the key block, head-dim slices and their steps, the partial maxima and sums, key slices and their
    /// steps) plus every element loop of a partial load.
    func loopIterationsPerKeyBlock(headDim d: Int, mapping m: Mapping) -> Int {
        let slices1 = (d + dk - 1) / dk, tx1 = bc / m.tn, dp4 = AttentionTile.paddedHeadDim(d) / 4
        let loadsQK = (br * dk / 4 + threads - 1) / threads + (bc * dk / 4 + threads - 1) / threads
        let loadsV = (ck * dp4 + threads - 1) / threads
        let kept = 1 + slices1 * (1 + dk) + (m.tm + m.tm2) * tx1 + bc / ck + bc
            + 3 * (slices1 + 1) * loadsQK + 3 * (bc / ck) * loadsV
        return 2 * kept
    }

    /// Keys per dispatch: every key (nil) on GPUs; on CPU Vulkan drivers a multiple of `bc` that keeps an invocation
    /// within `LoopBudget` (less a margin for the rest of the shader) when it loops `gridIterations` times
    /// over query blocks and batches.
    func keysPerDispatch(_ caps: Capabilities, headDim d: Int, mapping m: Mapping, gridIterations: Int) throws -> Int? {
        guard caps.isSoftware else { return nil }
        let perBlock = loopIterationsPerKeyBlock(headDim: d, mapping: m) * gridIterations
        let blocks = (LoopBudget.iterations - 2048) / perBlock
        try LoopBudget.check(caps, estimate: perBlock + 2048, op: "attention", what: "\(gridIterations) query blocks per workgroup")
        return blocks * bc
    }

    static let large = AttentionTile(br: 64, bc: 64, threads: 128)
    static let largeWide = AttentionTile(br: 64, bc: 64, threads: 256, dk: 16, ck: 8)
    static let medium = AttentionTile(br: 32, bc: 64, threads: 64)
    static let small = AttentionTile(br: 32, bc: 32, threads: 64)
    static let smallThin = AttentionTile(br: 32, bc: 32, threads: 64, dk: 16, ck: 8)
    static let tiny = AttentionTile(br: 16, bc: 16, threads: 16, dk: 8, ck: 8)

    /// The tile for `batch × heads` attentions of `queries` rows with head dim `d`: `WAN_ATTN_TILE` when
    /// set; on GPUs 64 query rows × 64 keys on 128 threads (8×8 outputs per thread for d 128), 32-row
    /// tiles when that gives too few workgroups to fill a large GPU, 256 threads for head dims above
    /// 128; 32×32 tiles on CPU implementations of Vulkan (lavapipe). Each candidate must fit the device.
    static func choose(_ caps: Capabilities, headDim d: Int, queries: Int, heads: Int, batch: Int) throws -> AttentionTile {
        if let env = getenv("WAN_ATTN_TILE"), env.pointee != 0 {
            let t = try AttentionTile(parsing: String(cString: env))
            _ = try t.validate(caps, headDim: d)
            return t
        }
        func fits(_ t: AttentionTile, registers: Bool) -> Bool {
            guard let m = try? t.validate(caps, headDim: d) else { return false }
            // Keep the per-thread accumulators of real GPUs in registers.
            return !registers || (m.tm2 * m.tn2 <= 64 && m.tm * m.tn <= 32)
        }
        let candidates: [AttentionTile]
        if caps.isSoftware {
            candidates = [.small, .smallThin, .tiny]
        } else {
            // Enough workgroups to occupy every multiprocessor of a large GPU a few times over.
            let blocks = (queries + 63) / 64 * heads * batch
            candidates = blocks >= 256 ? [.large, .largeWide, .medium, .small, .smallThin, .tiny]
                                       : [.medium, .small, .large, .largeWide, .smallThin, .tiny]
        }
        for t in candidates where fits(t, registers: !caps.isSoftware) { return t }
        for t in candidates where fits(t, registers: false) { return t }
        throw RuntimeError.invalidArgument("attention: no tile configuration fits head dim \(d) on \(caps.deviceName)")
    }
}

/// The tensor-core attention variant (`attention_coopmat.comp`, 16×16×16 cooperative matrices on the `CoopmatAPI`, fp16 →
/// fp32): q, k, v and the probabilities rounded to fp16, fp32 softmax statistics and accumulation.
enum AttentionCoopmat {
    /// A tile of the shader: `subgroups` × 16 query rows per workgroup, keys in blocks of `keys`. Written
    /// `SUBGROUPSxKEYS` (`WAN_ATTN_COOPMAT_TILE`, for tuning).
    struct Tile: Sendable, Hashable, CustomStringConvertible {
        var subgroups, keys: Int
        var description: String { "\(subgroups)x\(keys)" }

        /// Shared memory the shader declares for head dim `d` (mirrors `tile`, `Ss`, `Ps`, `rowScale`, `rowIds` of
        /// attention_coopmat; `tile` with K and V together and `ids` of attention_coopmat_rs).
        func sharedBytes(headDim d: Int, softmax: Softmax = .shared) -> Int {
            let br = 16 * subgroups, bc = keys
            if softmax == .registers { return max(br, 2 * bc) * (d + 8) * 2 + 512 * 4 }
            return max(br, bc) * (d + 8) * 2 + subgroups * 16 * (bc + 4) * 4 + subgroups * 16 * (bc + 8) * 2
                + subgroups * 16 * 4 + 256 * 4
        }

        /// Parses `SUBGROUPSxKEYS` (1-16 subgroups; keys a multiple of 32).
        init(parsing text: String) throws {
            let v = text.lowercased().split(separator: "x").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard v.count == 2, (1...16).contains(v[0]), v[1] > 0, v[1] % 32 == 0 else {
                throw RuntimeError.invalidArgument("coopmat attention tile '\(text)': expected SUBGROUPSxKEYS with 1-16 subgroups and keys a multiple of 32, e.g. 4x64")
            }
            self.init(subgroups: v[0], keys: v[1])
        }

        init(subgroups: Int, keys: Int) { self.subgroups = subgroups; self.keys = keys }

        /// Whether a device with `caps` can run this tile for head dim `d` (emulated: with the emulation's shared
        /// scratch).
        func fits(_ caps: Capabilities, headDim d: Int, emulated: Bool = false, softmax: Softmax = .shared) -> Bool {
            let threads = 32 * subgroups
            let shared = sharedBytes(headDim: d, softmax: softmax) + (emulated ? CoopmatEmulation.sharedBytes(threads: threads) : 0)
            return caps.maxComputeSharedMemorySize >= shared && caps.maxComputeWorkGroupInvocations >= threads
                && caps.maxComputeWorkGroupSize[0] >= threads
        }
    }

    /// Where the variant computes its softmax: `shared` (scores and probabilities through shared memory, any
    /// fragment layout: `attention_coopmat`) or `registers` (on the accumulators, K and V staged together, half the
    /// barriers: `attention_coopmat_rs`; needs NVIDIA's accumulator layout, which `CoopmatLayoutProbe` checks, and
    /// NV matrices; elsewhere `shared` runs). `WAN_ATTN_COOPMAT_SOFTMAX=shared|registers`, default `shared` until
    /// a GPU has measured `registers`.
    enum Softmax: String, Sendable, CaseIterable {
        case shared, registers
    }

    /// `WAN_ATTN_COOPMAT_SOFTMAX` when set, else `shared`.
    static func softmax() throws -> Softmax {
        guard let env = getenv("WAN_ATTN_COOPMAT_SOFTMAX"), env.pointee != 0 else { return .shared }
        let text = String(cString: env)
        guard let s = Softmax(rawValue: text.lowercased()) else {
            throw RuntimeError.invalidArgument("WAN_ATTN_COOPMAT_SOFTMAX='\(text)': expected shared or registers")
        }
        return s
    }

    /// The default tile: 64 query rows on 4 subgroups, blocks of 64 keys (44 KiB of shared memory at d 128).
    static let defaultTile = Tile(subgroups: 4, keys: 64)

    /// The default tile of the emulated shader: 32 query rows on 2 subgroups, blocks of 32 keys (19 KiB of shared
    /// memory with the emulation's at d 128: within lavapipe's 32 KiB).
    static let emulatedTile = Tile(subgroups: 2, keys: 32)

    /// `WAN_ATTN_COOPMAT_TILE` when set, else the default tile (the dispatch checks that it fits the device).
    static func tile() throws -> Tile {
        guard let env = getenv("WAN_ATTN_COOPMAT_TILE"), env.pointee != 0 else { return defaultTile }
        return try Tile(parsing: String(cString: env))
    }

    /// Whether the device can run the variant for head dim `d` (a multiple of 16, at most 128: the
    /// per-subgroup output accumulators live in registers).
    static func supported(_ caps: Capabilities, headDim d: Int) -> Bool {
        headDimSupported(d) && GEMMCoopmat.hasF16Matrices(caps) && caps.subgroupOperations.contains("shuffle")
            && defaultTile.fits(caps, headDim: d)
    }

    /// Head dims the shader takes: multiples of 16 up to 128.
    static func headDimSupported(_ d: Int) -> Bool { d % 16 == 0 && d <= 128 }

    /// The policy: `WAN_ATTN_COOPMAT=0` never, `=1` whenever supported; otherwise when supported and
    /// either every input is 16-bit or the caller allowed fp16 compute.
    static func chosen(_ caps: Capabilities, headDim d: Int, inputs: [DType], fp16Compute: Bool) -> Bool {
        guard supported(caps, headDim: d) else { return false }
        if let env = getenv("WAN_ATTN_COOPMAT"), env.pointee != 0 { return String(cString: env) == "1" }
        return fp16Compute || inputs.allSatisfy { $0 == .f16 || $0 == .bf16 }
    }
}

extension Device {
    /// Whether the tensor-core attention can compute its softmax in registers here (`WAN_ATTN_COOPMAT_SOFTMAX=registers`):
    /// NV cooperative matrices chosen and NVIDIA's accumulator layout found by the probe.
    public var supportsRegisterSoftmaxAttention: Bool {
        vulkan.map { CoopmatAPI.chosen($0.capabilities) == .nv && $0.accumulatorRowBit != nil } ?? false
    }

    /// Whether `attention` of head dim `d` over inputs of `inputs` dtypes runs on tensor cores here (the policy,
    /// `WAN_ATTN_COOPMAT` included).
    public func attentionUsesTensorCores(headDim d: Int, inputs: [DType], fp16Compute: Bool = false) -> Bool {
        vulkan.map { AttentionCoopmat.chosen($0.capabilities, headDim: d, inputs: inputs, fp16Compute: fp16Compute) } ?? false
    }
}

extension CommandList {
    /// out = softmax(q·kᵀ·scale) · v per batch and head, without materialising the Lq×Lk matrix (fp32
    /// softmax statistics and accumulation). q is [B, Lq, H, D], k and v [B, Lk, H, D] (views with the
    /// head dim contiguous, e.g. slices of a fused QKV tensor), out dense [B, Lq, H, D]; `scale` defaults
    /// to 1/√D; `keyLengths[b]` (1...Lk) masks the keys at and beyond it in batch b. With `fp16Compute`
    /// a device with tensor cores may round f32 inputs to fp16 (16-bit inputs take that path anyway).
    public func attention(q: Tensor, k: Tensor, v: Tensor, out: Tensor, scale: Float? = nil, keyLengths: [Int]? = nil,
                          fp16Compute: Bool = false) throws {
        try attention(q: q, k: k, v: v, out: out, scale: scale, keyLengths: keyLengths, tile: nil, cpuBlocks: nil,
                      fp16Compute: fp16Compute)
    }

    /// `attention` with an explicit Vulkan tile and CPU block sizes (query rows, keys) for tests and
    /// benchmarks; nil picks them. `coopmat` forces the tensor-core variant on or off (nil: the policy), and
    /// `coopmatTile` its tile (nil: `WAN_ATTN_COOPMAT_TILE` or the default); `cpuBlocks` runs the CPU's blocked
    /// variant with those blocks, `cpuWideBlocks` its wide variant. `coopmatEmulation` runs the tensor-core
    /// shader with emulated cooperative matrices (tests on devices without them; default tile `emulatedTile`).
    /// `keysPerDispatch` splits the scalar Vulkan kernel's keys over dispatches of that many (a multiple of its key
    /// block; nil: the policy, which splits only on CPU drivers); any other kernel refuses it, the CPU ignores it.
    /// `queryBlocksPerDispatch` splits any Vulkan kernel's query blocks over dispatches of that many (nil: the policy,
    /// `AttentionDispatchSplit`).
    func attention(q: Tensor, k: Tensor, v: Tensor, out: Tensor, scale: Float?, keyLengths: [Int]?,
                   tile: AttentionTile?, cpuBlocks: (queries: Int, keys: Int)?, fp16Compute: Bool = false,
                   coopmat: Bool? = nil, coopmatTile: AttentionCoopmat.Tile? = nil,
                   cpuWideBlocks: (queries: Int, keys: Int)? = nil, coopmatEmulation: CoopmatEmulation? = nil,
                   coopmatSoftmax: AttentionCoopmat.Softmax? = nil, coopmat2: Bool? = nil,
                   coopmat2Tile: AttentionCoopmat2.Tile? = nil, coopmat2Emulated: Bool = false,
                   keysPerDispatch forcedKeys: Int? = nil, queryBlocksPerDispatch forcedBlocks: Int? = nil) throws {
        let op = "attention"
        try checkDevice([q, k, v, out], op: op)
        for (name, t) in [("q", q), ("k", k), ("v", v), ("out", out)] {
            guard t.dtype.isComputeFloat else {
                throw RuntimeError.unsupportedDType("\(op): \(name) is \(t.dtype); expected f32, f16 or bf16")
            }
            guard t.rank == 4 else {
                throw RuntimeError.shapeMismatch("\(op): \(name) must be [B, L, H, D], got \(t.shape)")
            }
        }
        let (batch, lq, heads, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let lk = k.shape[1]
        guard k.shape == [batch, lk, heads, d] else {
            throw RuntimeError.shapeMismatch("\(op): k is \(k.shape); expected [\(batch), Lk, \(heads), \(d)] for q \(q.shape)")
        }
        guard v.shape == k.shape else { throw RuntimeError.shapeMismatch("\(op): v is \(v.shape), k is \(k.shape)") }
        guard out.shape == q.shape else { throw RuntimeError.shapeMismatch("\(op): out is \(out.shape), expected \(q.shape)") }
        try checkOutput(out, notAliasing: [], op: op)
        for t in [q, k, v] where out.overlaps(t) {
            throw RuntimeError.invalidArgument("\(op): output overlaps an input")
        }
        if let keyLengths {
            guard keyLengths.count == batch else {
                throw RuntimeError.invalidArgument("\(op): \(keyLengths.count) key lengths for a batch of \(batch)")
            }
            if let bad = keyLengths.first(where: { $0 < 1 || $0 > lk }) {
                throw RuntimeError.invalidArgument("\(op): key length \(bad) outside 1...\(lk)")
            }
        }
        let s = scale ?? 1 / Float(d).squareRoot()
        guard s.isFinite else { throw RuntimeError.invalidArgument("\(op): scale \(s) is not finite") }
        if out.count == 0 { return }
        guard lk > 0 else { throw RuntimeError.invalidArgument("\(op): no keys (Lk = 0) to attend to") }
        // Element strides (batch, position, head) of each view; a dimension of size 1 gets stride 0.
        func strides(_ t: Tensor, _ name: String) throws -> [Int] {
            guard t.shape[3] == 1 || t.strides[3] == 1 else {
                throw RuntimeError.invalidArgument("\(op): \(name)'s head dim must be contiguous (stride 1), got strides \(t.strides)")
            }
            let st = (0..<3).map { t.shape[$0] == 1 ? 0 : t.strides[$0] }
            guard st.allSatisfy({ $0 >= 0 }) else {
                throw RuntimeError.invalidArgument("\(op): \(name) has negative strides \(t.strides)")
            }
            let span = zip(t.shape.prefix(3), st).reduce(t.shape[3]) { $0 + ($1.0 - 1) * $1.1 }
            guard span < Int(UInt32.max) else {
                throw RuntimeError.invalidArgument("\(op): \(name) spans \(span) elements (limit 2^32)")
            }
            return st
        }
        let qs = try strides(q, "q"), ks = try strides(k, "k"), vs = try strides(v, "v")
        guard out.count < Int(UInt32.max) else { throw RuntimeError.invalidArgument("\(op): out has too many elements") }
        let lengths = keyLengths ?? [Int](repeating: lk, count: batch)
        let masked = keyLengths.map { $0.contains { $0 < lk } } ?? false
        let label = "attention \(batch)x\(heads)h \(lq)x\(lk)\(masked ? " masked" : "") d\(d) \(q.dtype),\(k.dtype),\(v.dtype)->\(out.dtype)"

        switch impl {
        case let .cpu(r):
            let wide = cpuWideBlocks != nil || cpuBlocks == nil && CPUAttention.wide(headDim: d, keys: lengths.max() ?? lk)
            let blocks = cpuWideBlocks ?? cpuBlocks ?? (wide ? CPUAttention.wideBlocks(queries: lq, keys: lengths.max() ?? lk)
                                                             : CPUAttention.blocks(headDim: d))
            guard blocks.queries > 0, blocks.keys > 0 else { throw RuntimeError.invalidArgument("\(op): empty CPU blocks") }
            let problem = CPUAttention.Problem(batch: batch, lq: lq, heads: heads, d: d, lengths: lengths,
                                               qStrides: qs, kStrides: ks, vStrides: vs, scaleLog2: s * Float(M_LOG2E),
                                               queryBlock: blocks.queries, keyBlock: blocks.keys)
            r.enqueue(label + (wide ? " [wide]" : "")) { device in
                CPUAttention.run(problem, q: q, k: k, v: v, out: out, device: device, wide: wide)
            }
        case let .vulkan(r):
            let caps = r.device.capabilities
            func vectorizable(_ x: Tensor, _ st: [Int]) -> Bool {
                d % 4 == 0 && st.allSatisfy { $0 % 4 == 0 } && x.deviceAddress % UInt64(4 * x.dtype.size) == 0
            }
            let vec: [UInt32] = [vectorizable(q, qs) ? 1 : 0, vectorizable(k, ks) ? 1 : 0, vectorizable(v, vs) ? 1 : 0]
            guard heads <= caps.maxComputeWorkGroupCount[1] else {
                throw RuntimeError.invalidArgument("\(op): \(heads) heads exceed the device's workgroup count limit \(caps.maxComputeWorkGroupCount[1])")
            }
            let kernel: Kernel, constants: [UInt32], rowsPerGroup: Int, tileLabel: String
            // The scalar kernel's keys per dispatch when they are split (CPU drivers; `forcedKeys` in tests).
            var keysPerDispatch: Int?
            try CoopmatAPI.checkEnvironment()
            let c2 = AttentionCoopmat2.self
            let eligible2 = c2.eligible(q: q, k: k, v: v, out: out, qs: qs, ks: ks, vs: vs, headDim: d)
            if coopmat2Emulated || coopmat2 ?? (coopmatEmulation == nil && coopmat != false && eligible2
                && c2.chosen(caps, headDim: d, inputs: [q.dtype, k.dtype, v.dtype], fp16Compute: fp16Compute)) {
                let t: AttentionCoopmat2.Tile, invocations: Int
                if coopmat2Emulated {
                    t = coopmat2Tile ?? c2.emulatedTile
                    invocations = c2.emulatedInvocations
                    let shared = c2.emulationSharedBytes(t, headDim: d)
                    guard c2.headDimSupported(d), CoopmatEmulation.supported(caps), shared <= caps.maxComputeSharedMemorySize,
                          invocations <= caps.maxComputeWorkGroupInvocations else {
                        throw RuntimeError.missingFeature(device: caps.deviceName,
                                                          feature: "fp16 arithmetic and \(shared) bytes of shared memory (emulated coopmat2 attention, tile \(t)), head dim a multiple of 16 up to 256 (got \(d))")
                    }
                } else {
                    guard c2.built, caps.cooperativeMatrix2Enabled, c2.offered(caps), c2.headDimSupported(d), let shape = c2.shape(caps),
                          let limits = caps.cooperativeMatrix2 else {
                        throw RuntimeError.missingFeature(device: caps.deviceName,
                                                          feature: "VK_NV_cooperative_matrix2 (workgroup scope, flexible dimensions, reductions, conversions, per-element operations, tensor addressing; fp16 x fp16 -> fp32) on Vulkan 1.3\(c2.built ? "" : ", in a build with glslang 15 (Benchmarks/glslang-newer.sh)"), head dim a multiple of 16 up to 256 (got \(d))")
                    }
                    t = try coopmat2Tile ?? c2.tile()
                    guard t.fits(shape, maxDimension: limits.maxDimension, headDim: d) else {
                        throw RuntimeError.invalidArgument("\(op): coopmat2 tile \(t) at head dim \(d) does not fit \(caps.deviceName)'s shape \(shape) (dimensions up to \(limits.maxDimension))")
                    }
                    invocations = shape.workgroupInvocations
                }
                guard eligible2 else {
                    throw RuntimeError.invalidArgument("\(op): the coopmat2 attention needs an f32 or f16 output, 16-byte aligned bases of every batch, head and output row, and rows that do not overlap")
                }
                kernel = coopmat2Emulated ? Kernel(name: "attention_cm2_emulated", spirv: SPIRV.attention_cm2_emulated)
                                          : Kernel(name: "attention_cm2", spirv: SPIRV.attention_cm2)
                constants = [UInt32(invocations), UInt32(t.br), UInt32(t.bc), UInt32(d), q.dtype.code, k.dtype.code, v.dtype.code, out.dtype.code]
                rowsPerGroup = t.br
                tileLabel = "coopmat2 \(coopmat2Emulated ? "emulated " : "")\(t)"
            } else if coopmatEmulation != nil
                || (coopmat ?? AttentionCoopmat.chosen(caps, headDim: d, inputs: [q.dtype, k.dtype, v.dtype], fp16Compute: fp16Compute)) {
                let emulated = coopmatEmulation != nil
                if emulated {
                    guard AttentionCoopmat.headDimSupported(d), CoopmatEmulation.supported(caps) else {
                        throw RuntimeError.missingFeature(device: caps.deviceName,
                                                          feature: "fp16 arithmetic (emulated cooperative matrices), head dim a multiple of 16 up to 128 (got \(d))")
                    }
                } else {
                    guard AttentionCoopmat.supported(caps, headDim: d) else {
                        throw RuntimeError.missingFeature(device: caps.deviceName,
                                                          feature: "cooperative matrices (VK_NV_cooperative_matrix, or VK_KHR_cooperative_matrix in a build with the newer glslang: Benchmarks/glslang-newer.sh) 16x16x16 f16->f32, subgroup size 32 and shuffles, head dim a multiple of 16 up to 128 (got \(d))")
                    }
                }
                let api = CoopmatAPI.chosen(caps) ?? .nv
                // The register softmax where the accumulator layout is NVIDIA's (probed; the emulation's by construction).
                let rowBit = coopmatEmulation.map { $0.layout.rowBit } ?? (api == .nv ? r.device.accumulatorRowBit : nil)
                let registers = try (coopmatSoftmax ?? AttentionCoopmat.softmax()) == .registers && rowBit != nil
                let softmax: AttentionCoopmat.Softmax = registers ? .registers : .shared
                let t = try coopmatTile ?? (emulated ? AttentionCoopmat.emulatedTile : AttentionCoopmat.tile())
                guard t.fits(caps, headDim: d, emulated: emulated, softmax: softmax) else {
                    throw RuntimeError.invalidArgument("\(op): coopmat tile \(t) (\(t.sharedBytes(headDim: d, softmax: softmax)) bytes of shared memory at head dim \(d)\(emulated ? " and the emulation's" : "")) does not fit \(caps.deviceName)")
                }
                switch (emulated, registers) {
                case (true, true): kernel = Kernel(name: "attention_coopmat_rs_emulated", spirv: SPIRV.attention_coopmat_rs_emulated)
                case (true, false): kernel = Kernel(name: "attention_coopmat_emulated", spirv: SPIRV.attention_coopmat_emulated)
                case (false, true): kernel = Kernel(name: "attention_coopmat_rs", spirv: SPIRV.attention_coopmat_rs)
                case (false, false): kernel = api.attentionKernel
                }
                // The register softmax takes the row bit as constant 11 (its emulated layout is constant 12).
                constants = [UInt32(32 * t.subgroups), UInt32(t.subgroups), UInt32(t.keys), UInt32(d),
                             q.dtype.code, k.dtype.code, v.dtype.code, out.dtype.code] + vec
                    + (registers ? [UInt32(rowBit ?? 1)] : []) + (coopmatEmulation.map { [$0.layout.rawValue] } ?? [])
                rowsPerGroup = 16 * t.subgroups
                tileLabel = "coopmat \(emulated ? "emulated" : api.rawValue) \(t)\(registers ? " registers" : "")"
            } else {
                let t = try tile ?? AttentionTile.choose(caps, headDim: d, queries: lq, heads: heads, batch: batch)
                let m = try t.validate(caps, headDim: d)
                kernel = Kernel(name: "attention", spirv: SPIRV.attention)
                constants = [
                    UInt32(t.threads), UInt32(t.br), UInt32(t.bc), UInt32(d), UInt32(t.dk), UInt32(t.ck),
                    UInt32(m.tm), UInt32(m.tn), UInt32(m.tm2), UInt32(m.tn2),
                    q.dtype.code, k.dtype.code, v.dtype.code, out.dtype.code,
                ] + vec + [(t.unroll ?? !caps.isSoftware) ? 1 : 0]
                rowsPerGroup = t.br
                tileLabel = "\(t)"
                let blocks = (lq + t.br - 1) / t.br, runs = lengths.indices.filter { $0 == 0 || lengths[$0] != lengths[$0 - 1] }
                let longestRun = zip(runs, runs.dropFirst() + [batch]).map { $1 - $0 }.max() ?? 1
                let gridIterations = (blocks + r.maxGroups(0) - 1) / r.maxGroups(0) * ((longestRun + r.maxGroups(2) - 1) / r.maxGroups(2))
                if let forcedKeys {
                    guard forcedKeys > 0, forcedKeys % t.bc == 0 else {
                        throw RuntimeError.invalidArgument("\(op): keys per dispatch \(forcedKeys) must be a positive multiple of the key block \(t.bc)")
                    }
                    keysPerDispatch = forcedKeys
                } else {
                    keysPerDispatch = try t.keysPerDispatch(caps, headDim: d, mapping: m, gridIterations: gridIterations)
                }
            }
            guard forcedKeys == nil || keysPerDispatch != nil else {
                throw RuntimeError.invalidArgument("\(op): only the scalar kernel splits its keys over dispatches")
            }
            // fp32 (O, max, sum) per query row between the dispatches of split keys (attention.comp's STATE_ROW).
            let stateFloats = batch * heads * lq * (AttentionTile.paddedHeadDim(d) + 4)
            let split = keysPerDispatch.map { n in lengths.contains { $0 > n } } ?? false
            guard !split || stateFloats <= Int(UInt32.max) else {
                throw RuntimeError.invalidArgument("\(op): \(stateFloats) floats of split-key state exceed the shader's 32-bit indexing")
            }
            let state = split ? try r.attentionState(floats: stateFloats, device: device) : nil
            let queryBlocks = (lq + rowsPerGroup - 1) / rowsPerGroup
            if let forcedBlocks, forcedBlocks < 1 {
                throw RuntimeError.invalidArgument("\(op): query blocks per dispatch must be positive, got \(forcedBlocks)")
            }
            // One dispatch per run of batches with the same key length (the shader masks by push constant), per range of
            // query blocks (AttentionDispatchSplit), and per range of keys where they are split (each but the first
            // resumes from the state, each but the last leaves it).
            var b0 = 0
            while b0 < batch {
                var b1 = b0 + 1
                while b1 < batch && lengths[b1] == lengths[b0] { b1 += 1 }
                let kvLen = lengths[b0]
                let blocksPerDispatch = forcedBlocks ?? AttentionDispatchSplit.queryBlocks(rows: rowsPerGroup, keys: kvLen, headDim: d,
                                                                                            heads: heads, batches: b1 - b0)
                var qb0 = 0
                while qb0 < queryBlocks {
                    let qb1 = min(qb0 + blocksPerDispatch, queryBlocks)
                    var kBegin = 0
                    repeat {
                        let kEnd = keysPerDispatch.map { min(kBegin + $0, kvLen) } ?? kvLen
                        var p = PushConstants()
                        p.address(q)
                        p.address(k)
                        p.address(v)
                        p.address(out)
                        for st in [qs, ks, vs] { for x in st { p.u32(x) } }
                        p.u32(lq)
                        p.u32(kvLen)
                        p.u32(heads)
                        p.u32(b0)
                        p.u32(b1 - b0)
                        p.f32(s * Float(M_LOG2E))
                        p.u32(kBegin)
                        p.u32(kEnd)
                        p.u64(state?.deviceAddress ?? 0)
                        p.u32(qb0)
                        p.u32(qb1)
                        let groups = (min(qb1 - qb0, r.maxGroups(0)), heads, min(b1 - b0, r.maxGroups(2)))
                        let rows = qb0 * rowsPerGroup..<min(lq, qb1 * rowsPerGroup)
                        let written = try out.sliced(dim: 0, b0..<b1).sliced(dim: 1, rows)
                        let range = (rows.count == lq ? "" : " queries \(rows)") + (kBegin == 0 && kEnd == kvLen ? "" : " keys \(kBegin)..<\(kEnd)")
                        try r.dispatch(kernel, constants: constants, push: p, groups: groups,
                                       reads: [q, k, v] + (kBegin > 0 ? [state].compactMap { $0 } : []),
                                       writes: kEnd < kvLen ? [state].compactMap { $0 } : [written],
                                       label: label + (masked ? " keys \(kvLen)" : "") + range + " [\(tileLabel)]")
                        kBegin = kEnd
                    } while kBegin < kvLen
                    qb0 = qb1
                }
                b0 = b1
            }
        }
    }
}

/// The CPU attention: per (batch, head, block of query rows), blocks of keys are multiplied with
/// OpenBLAS (`S = Q·Kᵀ`, then `O += P·V`) around an online softmax in fp32, so scratch stays bounded
/// (a query block × a key block) whatever the sequence lengths. Two variants: blocked (small blocks, each
/// worker thread calling single-threaded sgemm) and wide (large blocks one at a time, each product split over
/// the cores by `CPUBLAS`).
enum CPUAttention {
    struct Problem: Sendable {
        var batch, lq, heads, d: Int
        var lengths: [Int]
        var qStrides, kStrides, vStrides: [Int]
        /// The softmax scale times log2(e) (the softmax runs in base 2).
        var scaleLog2: Float
        var queryBlock, keyBlock: Int
    }

    /// Block sizes: 32 query rows, and keys such that each sgemm stays at or under OpenBLAS's
    /// single-thread threshold (M·N·K ≤ 262144): the blocks already run on every core, and with
    /// `WAN_CPU_BLAS=openblas` a threaded OpenBLAS call from inside them serialises on its lock (measured
    /// then: 64×64×128 blocks ran 20× slower than 32×64×128 on 2 cores; 32×64 beat 64×32 by about 1.5×).
    static func blocks(headDim d: Int) -> (queries: Int, keys: Int) {
        let q = 32
        let k = max(8, min(256, 262_144 / (q * max(1, d)) / 8 * 8))
        return (q, k)
    }

    /// Whether the wide variant runs: `WAN_CPU_ATTN=blocked|wide` when set, else for head dims of 128 and more
    /// over 128 keys or more (measured on 2 cores: the DiT's 780-token self-attention 24.8 ms wide against
    /// 30.7 blocked; 512×77 and d 64 problems ran faster blocked).
    static func wide(headDim d: Int, keys: Int) -> Bool {
        if let env = getenv("WAN_CPU_ATTN"), env.pointee != 0 { return String(cString: env) == "wide" }
        return d >= 128 && keys >= 128
    }

    /// Blocks of the wide variant: all keys up to 8192 at a time, and as many query rows as keep the score
    /// block at or under 16 Mi floats (64 MiB), at least 64.
    static func wideBlocks(queries: Int, keys: Int) -> (queries: Int, keys: Int) {
        let kb = max(1, min(keys, 8192))
        return (max(1, min(queries, max(64, (1 << 24) / kb))), kb)
    }

    /// Runs the attention: blocked — the (batch, head, query block) items spread over the cores, each worker
    /// calling single-threaded sgemm on small blocks; wide — the items one at a time with large blocks, each
    /// product and the row loops split over the cores. Scratch is borrowed from `CPUMemory`.
    static func run(_ pr: Problem, q: Tensor, k: Tensor, v: Tensor, out: Tensor, device: CPUDevice, wide: Bool) {
        let items = pr.batch * pr.heads * ((pr.lq + pr.queryBlock - 1) / pr.queryBlock)
        if wide {
            CPUMemory.shared.withFloats(Worker.floats(pr)) { memory in
                let worker = Worker(pr, memory: memory)
                for item in 0..<items {
                    worker.run(item: item, pr, q: q, k: k, v: v, out: out, device: device, blasThreads: nil) { n, cost, body in
                        device.parallelFor(n, costPerItem: cost, body)
                    }
                }
            }
        } else {
            let maxLength = pr.lengths.max() ?? 0
            device.parallelFor(items, costPerItem: 4 * pr.queryBlock * maxLength * pr.d) { range in
                CPUMemory.shared.withFloats(Worker.floats(pr)) { memory in
                    let worker = Worker(pr, memory: memory)
                    for item in range {
                        worker.run(item: item, pr, q: q, k: k, v: v, out: out, device: device, blasThreads: 1) { n, _, body in body(0..<n) }
                    }
                }
            }
        }
    }

    /// Scratch of one worker (converted Q/K/V blocks, scores, output accumulator, row statistics) and the
    /// work of one (batch, head, query block).
    struct Worker {
        let qs, ks, vs, sc, acc, rowMax, rowSum: UnsafeMutablePointer<Float>

        /// Floats of scratch one worker needs.
        static func floats(_ pr: Problem) -> Int {
            let (d, qb, kb) = (pr.d, pr.queryBlock, pr.keyBlock)
            return 2 * qb * d + 2 * kb * d + qb * kb + 2 * qb
        }

        /// A worker over `memory` (`floats(pr)` of them, borrowed by the caller).
        init(_ pr: Problem, memory: UnsafeMutablePointer<Float>) {
            let (d, qb, kb) = (pr.d, pr.queryBlock, pr.keyBlock)
            qs = memory
            ks = qs + qb * d
            vs = ks + kb * d
            sc = vs + kb * d
            acc = sc + qb * kb
            rowMax = acc + qb * d
            rowSum = rowMax + qb
        }

        /// Item `item` of the problem; `rows(n, costPerRow, body)` runs body over 0..<n (in parallel or not),
        /// the products split over `blasThreads` workers (nil: all of the device's).
        func run(item: Int, _ pr: Problem, q: Tensor, k: Tensor, v: Tensor, out: Tensor, device: CPUDevice, blasThreads: Int?,
                 rows split: (Int, Int, (Range<Int>) -> Void) -> Void) {
            let d = pr.d, qb = pr.queryBlock, kb = pr.keyBlock
            let queryBlocks = (pr.lq + qb - 1) / qb
            let blk = item % queryBlocks, h = (item / queryBlocks) % pr.heads, b = item / (queryBlocks * pr.heads)
            let q0 = blk * qb, rows = min(qb, pr.lq - q0)
            let kvLen = pr.lengths[b]
            let (sc, acc, rowMax, rowSum) = (sc, acc, rowMax, rowSum)
            // A block of `n` rows of a strided view as an fp32 matrix with a leading dimension.
            func matrix(_ t: Tensor, _ st: [Int], row0: Int, n: Int, scratch: UnsafeMutablePointer<Float>) -> (UnsafePointer<Float>, Int) {
                let base = t.hostPointer! + (b * st[0] + row0 * st[1] + h * st[2]) * t.dtype.size
                if t.dtype == .f32 && (st[1] >= d || n == 1) {
                    return (UnsafePointer(base.assumingMemoryBound(to: Float.self)), n == 1 ? d : st[1])
                }
                split(n, d) { range in
                    for r in range {
                        HostConversion.load(base + r * st[1] * t.dtype.size, dtype: t.dtype, into: scratch + r * d, count: d)
                    }
                }
                return (UnsafePointer(scratch), d)
            }
            let (qm, ldq) = matrix(q, pr.qStrides, row0: q0, n: rows, scratch: qs)
            acc.update(repeating: 0, count: rows * d)
            rowMax.update(repeating: -.infinity, count: rows)
            rowSum.update(repeating: 0, count: rows)
            var k0 = 0
            while k0 < kvLen {
                let n = min(kb, kvLen - k0)
                let (km, ldk) = matrix(k, pr.kStrides, row0: k0, n: n, scratch: ks)
                // S = (scale·log2e) · Q·Kᵀ  [rows × n]
                CPUBLAS.sgemm(transA: false, transB: true, m: rows, n: n, k: d, alpha: pr.scaleLog2, a: qm, lda: ldq,
                              b: km, ldb: ldk, beta: 0, c: sc, ldc: kb, device: device, threads: blasThreads)
                split(rows, 4 * n) { range in
                    for r in range {
                        let srow = sc + r * kb
                        let mNew = max(rowMax[r], FastMath.max(srow, n))
                        let alpha: Float = rowMax[r] == -.infinity ? 0 : Foundation.exp2(rowMax[r] - mNew)
                        rowSum[r] = rowSum[r] * alpha + FastMath.exp2Shifted(srow, n, by: mNew)
                        rowMax[r] = mNew
                        if alpha != 1 {
                            let o = acc + r * d
                            for j in 0..<d { o[j] *= alpha }
                        }
                    }
                }
                let (vm, ldv) = matrix(v, pr.vStrides, row0: k0, n: n, scratch: vs)
                // O += P·V  [rows × d]
                CPUBLAS.sgemm(transA: false, transB: false, m: rows, n: d, k: n, alpha: 1, a: sc, lda: kb,
                              b: vm, ldb: ldv, beta: 1, c: acc, ldc: d, device: device, threads: blasThreads)
                k0 += n
            }
            let outHost = out.hostPointer!
            split(rows, 2 * d) { range in
                for r in range {
                    let o = acc + r * d
                    let inv = 1 / rowSum[r]
                    for j in 0..<d { o[j] *= inv }
                    let dst = outHost + (((b * pr.lq + q0 + r) * pr.heads + h) * d) * out.dtype.size
                    HostConversion.store(o, to: dst, dtype: out.dtype, count: d)
                }
            }
        }
    }
}
