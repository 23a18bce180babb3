import Foundation
import WanShaders

/// Geometry of a 3-D convolution over [B, C, T, H, W]: kernel, strides and zero padding. Time is padded
/// in front only (causal), and the front zeros are replaced by cached frames of the previous chunk when
/// a cache is given (spec §5.1, §5.5); height and width may be padded asymmetrically (the VAE's
/// downsampling pads only bottom and right).
public struct Conv3DParams: Sendable, Equatable, CustomStringConvertible {
    /// Kernel extent in time, height and width.
    public var kernelT, kernelH, kernelW: Int
    /// Strides in time, height and width.
    public var strideT, strideH, strideW: Int
    /// Zero frames in front of the input when there is no cache (a CausalConv3d with time padding pt: 2·pt).
    public var padFront: Int
    /// Zero rows above / below and zero columns left / right of every frame.
    public var padTop, padBottom, padLeft, padRight: Int

    /// A convolution with `kernel` (t, h, w), `stride` and zero padding (front frames; spatial sides).
    public init(kernel: (Int, Int, Int), stride: (Int, Int, Int) = (1, 1, 1), padFront: Int = 0,
                padTop: Int = 0, padBottom: Int = 0, padLeft: Int = 0, padRight: Int = 0) {
        (kernelT, kernelH, kernelW) = kernel
        (strideT, strideH, strideW) = stride
        self.padFront = padFront
        self.padTop = padTop
        self.padBottom = padBottom
        self.padLeft = padLeft
        self.padRight = padRight
    }

    /// The VAE's `CausalConv3d` with constructor padding (pt, ph, pw): 2·pt frames in front, ph/pw on both sides.
    public static func causal(kernel: (Int, Int, Int), padding: (Int, Int, Int), stride: (Int, Int, Int) = (1, 1, 1)) -> Conv3DParams {
        Conv3DParams(kernel: kernel, stride: stride, padFront: 2 * padding.0, padTop: padding.1, padBottom: padding.1,
                     padLeft: padding.2, padRight: padding.2)
    }

    /// The kernel-3 `CausalConv3d` (padding 1): 2 front frames, 1 pixel on each spatial side.
    public static let causal3 = causal(kernel: (3, 3, 3), padding: (1, 1, 1))
    /// A 1×1×1 convolution (shortcuts, the VAE's top-level conv1/conv2).
    public static let pointwise = Conv3DParams(kernel: (1, 1, 1))
    /// `downsample2d`'s Conv2d per frame: kernel 3, stride 2, zero pad right 1 and bottom 1.
    public static let downsampleSpatial = Conv3DParams(kernel: (1, 3, 3), stride: (1, 2, 2), padBottom: 1, padRight: 1)
    /// `downsample3d`'s `time_conv`: kernel (3,1,1), stride (2,1,1), no padding; its left context (the
    /// previous chunk's last frame) comes in as a 1-frame cache.
    public static let downsampleTime = Conv3DParams(kernel: (3, 1, 1), stride: (2, 1, 1))
    /// `upsample3d`'s `time_conv`: kernel (3,1,1), 2 front frames.
    public static let upsampleTime = causal(kernel: (3, 1, 1), padding: (1, 0, 0))
    /// `upsample2d`'s Conv2d per frame: kernel 3, padding 1.
    public static let upsampleSpatial = Conv3DParams(kernel: (1, 3, 3), padTop: 1, padBottom: 1, padLeft: 1, padRight: 1)

    /// The spec's CACHE_T: frames a kernel-3 causal conv keeps for the next chunk.
    public static let cacheFrames = 2

    /// Frames of the cache a chunk of `inputFrames` leaves for the next chunk of a kernel-3 causal conv
    /// (spec §5.5 rule 1): the last 2 frames of cat(previous cache, chunk).
    public static func nextCacheFrames(inputFrames: Int, previousFrames: Int) -> Int {
        min(cacheFrames, inputFrames + previousFrames)
    }

    /// Most cached frames a call accepts: the front padding, or kernelT − 1 for unpadded time convs.
    public var maxCacheFrames: Int { max(padFront, kernelT - 1) }

    public var description: String {
        "k\(kernelT)x\(kernelH)x\(kernelW) s\(strideT)x\(strideH)x\(strideW) pad front \(padFront) tblr \(padTop),\(padBottom),\(padLeft),\(padRight)"
    }

    /// Throws unless kernel and strides are positive and paddings non-negative.
    func validate(op: String) throws {
        guard [kernelT, kernelH, kernelW, strideT, strideH, strideW].allSatisfy({ $0 > 0 }),
              [padFront, padTop, padBottom, padLeft, padRight].allSatisfy({ $0 >= 0 }) else {
            throw RuntimeError.invalidArgument("\(op): \(self): kernel and strides must be positive, paddings non-negative")
        }
        guard kernelT * kernelH * kernelW < 1 << 16, [padFront, padTop, padBottom, padLeft, padRight].allSatisfy({ $0 < 1 << 16 }) else {
            throw RuntimeError.invalidArgument("\(op): \(self): kernel or padding too large")
        }
    }

    /// Output (frames, height, width) for `frames` input frames of `height`×`width` preceded by
    /// `cacheFrames` cached frames: the virtual sequence is max(0, padFront − cacheFrames) zero frames,
    /// the cache, then the input. 0 frames when that sequence is shorter than the kernel.
    public func outputSize(frames: Int, height: Int, width: Int, cacheFrames: Int = 0) throws -> (t: Int, h: Int, w: Int) {
        try validate(op: "conv3d")
        let tv = max(padFront, cacheFrames) + frames
        let hv = height + padTop + padBottom, wv = width + padLeft + padRight
        guard hv >= kernelH, wv >= kernelW else {
            throw RuntimeError.shapeMismatch("conv3d: \(height)x\(width) padded to \(hv)x\(wv) is smaller than the kernel \(kernelH)x\(kernelW)")
        }
        let t = tv >= kernelT ? (tv - kernelT) / strideT + 1 : 0
        return (t, (hv - kernelH) / strideH + 1, (wv - kernelW) / strideW + 1)
    }
}

/// Sizes of one validated conv3d call.
struct Conv3DGeometry: Sendable {
    var batch, cin, cout, t, h, w, tc: Int
    var kt, kh, kw, st, sh, sw: Int
    var padTop, padLeft: Int
    /// Zero frames plus cached frames in front of x: the virtual time of x's frame 0.
    var tFront: Int
    var to, ho, wo: Int

    var taps: Int { kt * kh * kw }

    /// The push constants of the convolution shaders (`include/conv3d_params.glsl`).
    static func push(_ g: Conv3DGeometry, x: Tensor, weight: Tensor, cache: Tensor?, out: Tensor, bias: Tensor?,
                     residual: Tensor?) -> PushConstants {
        var p = PushConstants()
        p.address(x)
        p.address(weight)
        p.u64(cache?.deviceAddress ?? 0)
        p.address(out)
        p.u64(bias?.deviceAddress ?? 0)
        p.u64(residual?.deviceAddress ?? 0)
        for v in [g.cin, g.cout, g.t, g.h, g.w, g.tc, g.to, g.ho, g.wo, g.st, g.sh, g.sw] { p.u32(v) }
        p.i32(g.padTop)
        p.i32(g.padLeft)
        p.i32(g.tFront)
        p.u32(g.batch)
        return p
    }
    /// GEMM sizes per batch: K = Cin·taps, N = output voxels.
    var k: Int { cin * taps }
    var n: Int { to * ho * wo }
}

/// Tiles of the Vulkan implicit-GEMM convolution: the GEMM's tile type (conv3d.comp tiles as gemm.comp
/// does), with BM output channels and BN output voxels per workgroup, chosen by the policy below.
typealias Conv3DTile = GEMMTile

extension GEMMTile {
    /// The tile for `batch` convolutions of M output channels × N output voxels: `WAN_CONV_TILE` when
    /// set; 64×64 on CPU implementations of Vulkan (lavapipe: 32 KiB of shared memory); on GPUs
    /// 128×128 (8×8 per thread, 33 KiB) when M > 64 and the problem has enough tiles to fill the GPU,
    /// else 64×64, else 32×32.
    static func chooseConv(_ caps: Capabilities, m: Int, n: Int, batch: Int) throws -> Conv3DTile {
        if let env = getenv("WAN_CONV_TILE"), env.pointee != 0 {
            let t = try Conv3DTile(parsing: String(cString: env))
            try t.validate(caps)
            return t
        }
        func fits(_ t: Conv3DTile) -> Bool {
            (try? t.validate(caps)) != nil && t.threads >= caps.subgroupSize
        }
        func tiles(_ t: Conv3DTile) -> Int { ((m + t.bm - 1) / t.bm) * ((n + t.bn - 1) / t.bn) * batch }
        if caps.isSoftware {
            return fits(.medium) ? .medium : .small
        }
        if m > 64 && fits(.large) && tiles(.large) >= 256 { return .large }
        if fits(.medium) { return .medium }
        return .small
    }
}

extension CommandList {
    /// Causal 3D convolution (cross-correlation) as implicit GEMM, fp32 accumulation:
    /// out = conv(cat(zeros, cache, x)) + bias (+ residual). x [B, Cin, T, H, W], weight [Cout, Cin, kt, kh, kw],
    /// bias [Cout], cache [B, Cin, Tc, H, W] (the previous chunk's last frames; they replace front zero frames,
    /// Tc ≤ `params.maxCacheFrames`), out and residual [B, Cout, T', H', W'] (`params.outputSize`). With
    /// `fp16Compute` a device with tensor cores may round f32 inputs and weights to fp16 (16-bit ones take that
    /// path anyway; `Conv3DCoopmat`, and `Conv3DCoopmat2` where `WAN_CONV_CM2` asks for the coopmat2 kernels).
    public func conv3d(_ x: Tensor, weight: Tensor, bias: Tensor?, cache: Tensor? = nil, params: Conv3DParams,
                       residual: Tensor? = nil, out: Tensor, fp16Compute: Bool = false) throws {
        try conv3d(x, weight: weight, bias: bias, cache: cache, params: params, residual: residual, out: out, tile: nil,
                   fp16Compute: fp16Compute)
    }

    /// `conv3d` with an explicit Vulkan tile configuration (tests and benchmarks); nil picks one. `coopmat` forces
    /// the tensor-core variant on or off (nil: the policy), `coopmatTile` its tile, `coopmatEmulation` runs it on
    /// emulated cooperative matrices (tests on devices without them); `coopmat2` forces the coopmat2 kernel on or off
    /// (nil: its policy, which a forced `coopmat` or `coopmatEmulation` turns off), `coopmat2Variant` picks its variant
    /// (nil: `WAN_CONV_CM2=rows` where the call suits it, else gather), `coopmat2Tile` its tile, `coopmat2Emulated`
    /// runs it on emulated workgroup-scope matrices (and so forces it on).
    func conv3d(_ x: Tensor, weight: Tensor, bias: Tensor?, cache: Tensor?, params: Conv3DParams,
                residual: Tensor?, out: Tensor, tile: Conv3DTile?, fp16Compute: Bool = false, coopmat: Bool? = nil,
                coopmatTile: GEMMCoopmat.Tile? = nil, coopmatEmulation: CoopmatEmulation? = nil, coopmat2: Bool? = nil,
                coopmat2Variant: Conv3DCoopmat2.Variant? = nil, coopmat2Tile: GEMMCoopmat2.Tile? = nil,
                coopmat2Emulated: Bool = false) throws {
        let op = "conv3d"
        try checkDevice([x, weight, out] + [bias, cache, residual].compactMap { $0 }, op: op)
        let named: [(String, Tensor?)] = [("x", x), ("weight", weight), ("out", out), ("bias", bias), ("cache", cache), ("residual", residual)]
        for case let (name, t?) in named {
            guard t.dtype.isComputeFloat else {
                throw RuntimeError.unsupportedDType("\(op): \(name) is \(t.dtype); expected f32, f16 or bf16")
            }
            guard t.isContiguous || name == "out" else {
                throw RuntimeError.invalidArgument("\(op): \(name) must be dense (copy it first)")
            }
        }
        try params.validate(op: op)
        guard x.rank == 5 else { throw RuntimeError.shapeMismatch("\(op): x must be [B, Cin, T, H, W], got \(x.shape)") }
        let (batch, cin, t, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        guard weight.rank == 5 else {
            throw RuntimeError.shapeMismatch("\(op): weight must be [Cout, Cin, kt, kh, kw], got \(weight.shape)")
        }
        let cout = weight.shape[0]
        guard weight.shape[1] == cin else {
            throw RuntimeError.shapeMismatch("\(op): weight \(weight.shape) expects \(weight.shape[1]) input channels, x \(x.shape) has \(cin)")
        }
        guard Array(weight.shape[2...]) == [params.kernelT, params.kernelH, params.kernelW] else {
            throw RuntimeError.shapeMismatch("\(op): weight \(weight.shape) does not match the kernel of \(params)")
        }
        guard cin > 0, cout > 0 else { throw RuntimeError.invalidArgument("\(op): channel counts must be positive, weight \(weight.shape)") }
        if let bias, bias.shape != [cout] {
            throw RuntimeError.shapeMismatch("\(op): bias is \(bias.shape), expected [\(cout)]")
        }
        var tc = 0
        if let cache {
            guard cache.rank == 5, cache.shape[0] == batch, cache.shape[1] == cin, cache.shape[3] == h, cache.shape[4] == w else {
                throw RuntimeError.shapeMismatch("\(op): cache is \(cache.shape), expected [\(batch), \(cin), Tc, \(h), \(w)]")
            }
            tc = cache.shape[2]
            guard tc <= params.maxCacheFrames else {
                throw RuntimeError.shapeMismatch("\(op): cache has \(tc) frames; \(params) takes at most \(params.maxCacheFrames)")
            }
        }
        let size = try params.outputSize(frames: t, height: h, width: w, cacheFrames: tc)
        let outShape = [batch, cout, size.t, size.h, size.w]
        guard out.shape == outShape else {
            throw RuntimeError.shapeMismatch("\(op): out is \(out.shape), expected \(outShape) for x \(x.shape) with \(tc) cached frames and \(params)")
        }
        if let residual {
            guard residual.shape == outShape else {
                throw RuntimeError.shapeMismatch("\(op): residual is \(residual.shape), expected \(outShape)")
            }
            if residual.overlaps(out) && !(residual.storage === out.storage && residual.offset == out.offset && residual.dtype == out.dtype) {
                throw RuntimeError.invalidArgument("\(op): residual overlaps out without being out itself")
            }
            try checkOutput(out, notAliasing: [residual], op: op)
        } else {
            try checkOutput(out, notAliasing: [], op: op)
        }
        for t in [x, weight] + [bias, cache].compactMap({ $0 }) where out.overlaps(t) {
            throw RuntimeError.invalidArgument("\(op): output overlaps an input")
        }
        let limit = Int(Int32.max)
        guard x.count / max(1, batch) < limit, (cache?.count ?? 0) / max(1, batch) < limit, weight.count < limit,
              out.count / max(1, batch) < limit, batch < limit else {
            throw RuntimeError.invalidArgument("\(op): a tensor exceeds 2^31 elements per batch")
        }
        if out.count == 0 { return }

        let g = Conv3DGeometry(batch: batch, cin: cin, cout: cout, t: t, h: h, w: w, tc: tc,
                               kt: params.kernelT, kh: params.kernelH, kw: params.kernelW,
                               st: params.strideT, sh: params.strideH, sw: params.strideW,
                               padTop: params.padTop, padLeft: params.padLeft,
                               tFront: max(params.padFront, tc), to: size.t, ho: size.h, wo: size.w)
        let cacheUsed = tc > 0 ? cache : nil
        let label = "conv3d \(cin)->\(cout) \(params) \(batch)x\(t)x\(h)x\(w)\(tc > 0 ? "+\(tc)" : "") "
            + "\(x.dtype)·\(weight.dtype)->\(out.dtype)" + (bias != nil ? "+bias" : "") + (residual != nil ? "+res" : "")

        switch impl {
        case let .cpu(r):
            r.enqueue(label) { device in
                CPUConv3D.run(g, x: x, weight: weight, bias: bias, cache: cacheUsed, residual: residual, out: out, device: device)
            }
        case let .vulkan(r):
            let caps = r.device.capabilities
            try CoopmatAPI.checkEnvironment()
            if coopmat2Emulated || coopmat2 ?? (coopmat == nil && coopmatEmulation == nil && coopmat2Policy(caps, x: x, weight: weight, cache: cacheUsed,
                                                                                                  out: out, residual: residual, g: g, fp16Compute: fp16Compute)) {
                let rowsSuit = Conv3DCoopmat2.rowsEligible(strideW: g.sw, x: x, cache: cacheUsed, batch: batch,
                                                           inputsPerBatch: cin * t * h * w, cachePerBatch: cin * tc * h * w)
                let variant = coopmat2Variant ?? Conv3DCoopmat2.variant(requested: Conv3DCoopmat2.requested(), rowsSuit: rowsSuit)
                try r.conv3dCoopmat2(g, x: x, weight: weight, bias: bias, cache: cacheUsed, residual: residual, out: out,
                                     variant: variant, tile: coopmat2Tile, emulated: coopmat2Emulated, label: label)
                return
            }
            // Emulated where asked (tests), or where the test hook stands in for tensor cores this device lacks.
            let emulated = coopmatEmulation.map { ($0, coopmatTile) }
                ?? (coopmat == nil && !Conv3DCoopmat.supported(caps)
                    && Conv3DCoopmat.wanted(x: x.dtype, weight: weight.dtype, cache: cacheUsed?.dtype, fp16Compute: fp16Compute)
                    ? Conv3DCoopmat.emulatedForTests.map { ($0.emulation, $0.tile) } : nil)
            if emulated != nil || (coopmat ?? Conv3DCoopmat.chosen(caps, x: x.dtype, weight: weight.dtype, cache: cacheUsed?.dtype,
                                                                   fp16Compute: fp16Compute)) {
                try r.conv3dCoopmat(g, x: x, weight: weight, bias: bias, cache: cacheUsed, residual: residual, out: out,
                                    tile: emulated?.1 ?? coopmatTile, emulation: emulated?.0, label: label)
                return
            }
            let tl: Conv3DTile
            if let tile {
                try tile.validate(caps)
                tl = tile
            } else {
                tl = try Conv3DTile.chooseConv(caps, m: cout, n: g.n, batch: batch)
            }
            let vecW = g.k % 4 == 0 && weight.deviceAddress % UInt64(4 * weight.dtype.size) == 0
            let constants: [UInt32] = [
                UInt32(tl.bm), UInt32(tl.bn), UInt32(tl.bk), UInt32(tl.tm), UInt32(tl.tn), UInt32(tl.threads),
                x.dtype.code, weight.dtype.code, cacheUsed?.dtype.code ?? 0, out.dtype.code,
                bias?.dtype.code ?? 0, residual?.dtype.code ?? 0, bias != nil ? 1 : 0, residual != nil ? 1 : 0,
                UInt32(g.kt), UInt32(g.kh), UInt32(g.kw), vecW ? 1 : 0, (tl.unroll ?? !caps.isSoftware) ? 1 : 0,
            ]
            let p = Conv3DGeometry.push(g, x: x, weight: weight, cache: cacheUsed, out: out, bias: bias, residual: residual)
            let nTiles = (g.n + tl.bn - 1) / tl.bn
            let groups = (min(nTiles, r.maxGroups(0)), (cout + tl.bm - 1) / tl.bm,
                          min(batch, r.maxGroups(2)))
            let tilesPerGroup = (nTiles + groups.0 - 1) / groups.0 * ((batch + groups.2 - 1) / groups.2)
            try LoopBudget.check(caps, estimate: tilesPerGroup * LoopBudget.kLoop(k: g.k, bk: tl.bk, unrolled: tl.unroll ?? false),
                                 op: op, what: "K = \(g.k) (Cin·taps)\(tilesPerGroup > 1 ? " for each of \(tilesPerGroup) tiles per workgroup" : "")")
            try r.dispatch(Kernel(name: "conv3d", spirv: SPIRV.conv3d), constants: constants, push: p, groups: groups,
                           reads: [x, weight] + [bias, cacheUsed, residual].compactMap { $0 }, writes: [out],
                           label: label + " [\(tl)]")
        }
    }

    /// Whether the coopmat2 convolution takes this call by policy (`Conv3DCoopmat2.chosen`, the tensors eligible).
    private func coopmat2Policy(_ caps: Capabilities, x: Tensor, weight: Tensor, cache: Tensor?, out: Tensor, residual: Tensor?,
                                g: Conv3DGeometry, fp16Compute: Bool) -> Bool {
        guard Conv3DCoopmat2.chosen(caps, x: x.dtype, weight: weight.dtype, cache: cache?.dtype, fp16Compute: fp16Compute) else { return false }
        return Conv3DCoopmat2.eligible(x: x, cache: cache, weight: weight, out: out, residual: residual, batch: g.batch, outputsPerBatch: g.cout * g.n)
    }

    /// Writes the cache for the next chunk: `out` [B, C, n, H, W] receives the last n frames of
    /// cat(previous, x) along time (n ≤ frames of both). For a kernel-3 causal conv (spec §5.5 rule 1,
    /// x being that conv's input chunk) use n = `Conv3DParams.nextCacheFrames(...)`: the last 2 frames of
    /// x, or [previous's last frame, x] for a 1-frame chunk; for `downsample3d`'s time conv n = 1 (x's last
    /// frame; its first chunk keeps all of x and runs no conv). upsample3d's time conv: no conv on the first
    /// chunk, no cache on the second, then the kernel-3 rule (the spec's `[zeros, x]` cache after a 1-frame
    /// second chunk equals the 1-frame cache `[x]`, whose missing frame becomes a front zero frame).
    /// Record it before x is overwritten; `out` must not overlap x or previous (ping-pong two buffers).
    public func conv3dNextCache(_ x: Tensor, previous: Tensor?, out: Tensor) throws {
        let op = "conv3dNextCache"
        try checkDevice([x, out] + [previous].compactMap { $0 }, op: op)
        guard x.rank == 5 else { throw RuntimeError.shapeMismatch("\(op): x must be [B, C, T, H, W], got \(x.shape)") }
        let tp: Int
        if let previous {
            guard previous.rank == 5, previous.shape[0] == x.shape[0], previous.shape[1] == x.shape[1],
                  previous.shape[3] == x.shape[3], previous.shape[4] == x.shape[4] else {
                throw RuntimeError.shapeMismatch("\(op): previous cache \(previous.shape) does not match x \(x.shape)")
            }
            tp = previous.shape[2]
        } else {
            tp = 0
        }
        let t = x.shape[2]
        guard out.rank == 5, out.shape[0] == x.shape[0], out.shape[1] == x.shape[1], out.shape[3] == x.shape[3],
              out.shape[4] == x.shape[4], out.shape[2] <= t + tp else {
            throw RuntimeError.shapeMismatch("\(op): out \(out.shape) must be [B, C, n, H, W] with n ≤ \(t + tp) for x \(x.shape) and \(tp) previous frames")
        }
        try checkOutput(out, notAliasing: [], op: op)
        for s in [x] + [previous].compactMap({ $0 }) where out.overlaps(s) {
            throw RuntimeError.invalidArgument("\(op): out overlaps x or the previous cache")
        }
        let n = out.shape[2]
        let fromX = min(n, t), fromPrevious = n - fromX
        if fromPrevious > 0, let previous {
            try copy(previous.sliced(dim: 2, tp - fromPrevious..<tp), into: out.sliced(dim: 2, 0..<fromPrevious))
        }
        if fromX > 0 {
            try copy(x.sliced(dim: 2, t - fromX..<t), into: out.sliced(dim: 2, fromPrevious..<n))
        }
    }
}

/// The CPU convolution: per batch, slabs of whole output rows (t', h'), each an im2col into bounded
/// scratch (≤ `scratchLimit` bytes with the output scratch, borrowed from `CPUMemory`) and one `CPUBLAS` product
/// W[Cout, K] · col[K, slab], then bias, residual and conversion to the output dtype. A 1×1×1
/// convolution without padding or strides multiplies x directly (no im2col).
enum CPUConv3D {
    /// Bytes of im2col plus output scratch per slab (at least one output row).
    static let scratchLimit = 64 << 20

    static func run(_ g: Conv3DGeometry, x: Tensor, weight: Tensor, bias: Tensor?, cache: Tensor?, residual: Tensor?,
                    out: Tensor, device: CPUDevice) {
        let (m, kk) = (g.cout, g.k)
        let pointwise = g.taps == 1 && g.st == 1 && g.sh == 1 && g.sw == 1 && g.padTop == 0 && g.padLeft == 0
            && g.tFront == 0 && g.ho == g.h && g.wo == g.w && x.dtype == .f32
        let residualIsOut = residual.map { $0.storage === out.storage && $0.offset == out.offset } ?? false
        // The product goes straight into out when it is f32 (beta = 1 adds a residual that is out itself).
        let direct = out.dtype == .f32 && (residual == nil || residualIsOut)
        let rowsTotal = g.to * g.ho
        let perRow = ((pointwise ? 0 : kk) + (direct ? 0 : m)) * g.wo * MemoryLayout<Float>.size
        let slabRows = max(1, min(rowsTotal, scratchLimit / max(1, perRow)))
        let slabN = slabRows * g.wo
        // Scratch borrowed from `CPUMemory` (kept between calls: no fresh pages per convolution).
        CPUMemory.shared.withFloats(ifNeeded: weight.dtype == .f32 ? nil : m * kk) { wScratch in
        CPUMemory.shared.withFloats(ifNeeded: pointwise ? nil : kk * slabN) { col in
        CPUMemory.shared.withFloats(ifNeeded: direct ? nil : m * slabN) { cScratch in
            if let wScratch { CPUGEMM.toFloat(weight.hostPointer!, dtype: weight.dtype, into: wScratch, count: m * kk, device: device) }
            let wF = wScratch ?? weight.hostPointer!.assumingMemoryBound(to: Float.self)
            slabs(g, x: x, cache: cache, residual: residual, out: out, bias: bias, device: device, wF: wF, col: col,
                  cScratch: cScratch, slabRows: slabRows, direct: direct, residualIsOut: residualIsOut)
        }
        }
        }
    }

    /// The slab loop of `run` over borrowed scratch: im2col (or x itself), one product, the epilogue.
    private static func slabs(_ g: Conv3DGeometry, x: Tensor, cache: Tensor?, residual: Tensor?, out: Tensor, bias: Tensor?,
                              device: CPUDevice, wF: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>?,
                              cScratch: UnsafeMutablePointer<Float>?, slabRows: Int, direct: Bool, residualIsOut: Bool) {
        let (m, kk, n) = (g.cout, g.k, g.n)
        let rowsTotal = g.to * g.ho
        var biasF = [Float](repeating: 0, count: bias == nil ? 0 : m)
        if let bias {
            biasF.withUnsafeMutableBufferPointer { HostConversion.load(bias.hostPointer!, dtype: bias.dtype, into: $0.baseAddress!, count: m) }
        }
        let xHost = x.hostPointer!, outHost = out.hostPointer!
        for b in 0..<g.batch {
            let xb = xHost + b * g.cin * g.t * g.h * g.w * x.dtype.size
            let cb = cache.map { ($0.hostPointer! + b * g.cin * g.tc * g.h * g.w * $0.dtype.size, $0.dtype) }
            let outB = outHost + b * m * n * out.dtype.size
            let resB = residual.map { ($0.hostPointer! + b * m * n * $0.dtype.size, $0.dtype) }
            var r0 = 0
            while r0 < rowsTotal {
                let r1 = min(rowsTotal, r0 + slabRows)
                let n0 = r0 * g.wo, cnt = (r1 - r0) * g.wo
                let bPtr: UnsafePointer<Float>, ldb: Int
                if let col {
                    im2col(g, x: (xb, x.dtype), cache: cb, rows: r0..<r1, into: col, device: device)
                    bPtr = UnsafePointer(col)
                    ldb = cnt
                } else {
                    bPtr = UnsafePointer(xb.assumingMemoryBound(to: Float.self) + n0)
                    ldb = n
                }
                let c: UnsafeMutablePointer<Float>, ldc: Int
                if let cScratch {
                    c = cScratch
                    ldc = cnt
                } else {
                    c = outB.assumingMemoryBound(to: Float.self) + n0
                    ldc = n
                }
                CPUBLAS.sgemm(transA: false, transB: false, m: m, n: cnt, k: kk, alpha: 1, a: wF, lda: kk, b: bPtr, ldb: ldb,
                              beta: residualIsOut && direct ? 1 : 0, c: c, ldc: ldc, device: device)
                biasF.withUnsafeBufferPointer { biasBuf in
                    let bp = biasBuf.isEmpty ? nil : biasBuf.baseAddress
                    if direct {
                        guard let bp else { return }
                        device.parallelFor(m, costPerItem: cnt) { rows in
                            for co in rows {
                                let row = c + co * ldc, v = bp[co]
                                for j in 0..<cnt { row[j] += v }
                            }
                        }
                        return
                    }
                    device.parallelFor(m, costPerItem: cnt * 2) { rows in
                        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: cnt)
                        defer { tmp.deallocate() }
                        for co in rows {
                            let row = c + co * ldc
                            let v = bp?[co] ?? 0
                            let o = co * n + n0
                            if let (res, rdt) = resB {
                                HostConversion.load(res + o * rdt.size, dtype: rdt, into: tmp, count: cnt)
                                for j in 0..<cnt { row[j] += v + tmp[j] }
                            } else if bp != nil {
                                for j in 0..<cnt { row[j] += v }
                            }
                            HostConversion.store(row, to: outB + o * out.dtype.size, dtype: out.dtype, count: cnt)
                        }
                    }
                }
                r0 = r1
            }
        }
    }

    /// col[k][(r − rows.lowerBound)·Wo + w'] = the virtual input under tap k of output voxel (row r, w'),
    /// for the output rows r = t'·Ho + h' in `rows`; zero in the padding. Source rows of f16/bf16 inputs
    /// are converted to fp32 one input row at a time.
    static func im2col(_ g: Conv3DGeometry, x: (UnsafeMutableRawPointer, DType), cache: (UnsafeMutableRawPointer, DType)?,
                       rows: Range<Int>, into col: UnsafeMutablePointer<Float>, device: CPUDevice) {
        let cnt = rows.count * g.wo
        let hw = g.h * g.w, khw = g.kh * g.kw
        device.parallelFor(g.k, costPerItem: cnt) { ks in
            let rowBuf = UnsafeMutablePointer<Float>.allocate(capacity: max(1, g.w))
            defer { rowBuf.deallocate() }
            for k in ks {
                let ci = k / g.taps, tap = k % g.taps
                let dt = tap / khw, dh = (tap / g.kw) % g.kh, dw = tap % g.kw
                // Output columns whose input column w'·sw + dw − padLeft lies in [0, W).
                let off = dw - g.padLeft
                let woLo = off >= 0 ? 0 : min(g.wo, (-off + g.sw - 1) / g.sw)
                let last = g.w - 1 - off
                let woHi = last < 0 ? woLo : max(woLo, min(g.wo, last / g.sw + 1))
                let dst = col + k * cnt
                for (ri, r) in rows.enumerated() {
                    let to = r / g.ho, ho = r % g.ho
                    let u = to * g.st + dt - g.tFront, hi = ho * g.sh + dh - g.padTop
                    let d = dst + ri * g.wo
                    guard u >= -g.tc, hi >= 0, hi < g.h, woLo < woHi else {
                        d.update(repeating: 0, count: g.wo)
                        continue
                    }
                    // u < 0 only reaches cached frames (g.tc > 0 exactly when a cache is given).
                    let source = u >= 0 ? x : cache
                    guard let (base, dtype) = source else {
                        d.update(repeating: 0, count: g.wo)
                        continue
                    }
                    let index = (u >= 0 ? (ci * g.t + u) : (ci * g.tc + g.tc + u)) * hw + hi * g.w
                    let src: UnsafePointer<Float>
                    if dtype == .f32 {
                        src = UnsafePointer(base.assumingMemoryBound(to: Float.self) + index)
                    } else {
                        HostConversion.load(base + index * dtype.size, dtype: dtype, into: rowBuf, count: g.w)
                        src = UnsafePointer(rowBuf)
                    }
                    if woLo > 0 { d.update(repeating: 0, count: woLo) }
                    if woHi < g.wo { (d + woHi).update(repeating: 0, count: g.wo - woHi) }
                    if g.sw == 1 {
                        (d + woLo).update(from: src + woLo + off, count: woHi - woLo)
                    } else {
                        for j in woLo..<woHi { d[j] = src[j * g.sw + off] }
                    }
                }
            }
        }
    }
}
