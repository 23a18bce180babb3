import Foundation
import Testing
@testable import WanRuntime

/// One convolution problem: sizes, geometry, dtypes, epilogue and (Vulkan) tile.
private struct ConvCase: CustomStringConvertible {
    var batch = 1, cin = 3, cout = 7, t = 5, h = 9, w = 11
    /// Cached frames (0: no cache).
    var tc = 0
    var params = Conv3DParams.causal3
    var xType = DType.f32, wType = DType.f32, cacheType = DType.f32, outType = DType.f32
    var biasType: DType? = .f32
    var residualType: DType?
    /// The residual is `out` itself (out += conv).
    var residualInPlace = false
    var tile: Conv3DTile?
    /// The tensor-core variant forced on or off (nil: the policy), its tile, and emulated cooperative matrices.
    var coopmat: Bool?
    var coopmatTile: GEMMCoopmat.Tile?
    var emulation: CoopmatEmulation?
    /// The coopmat2 variant forced on or off (nil: the policy), its tile, and emulated workgroup-scope matrices.
    var coopmat2: Bool?
    var coopmat2Variant: Conv3DCoopmat2.Variant?
    var coopmat2Tile: GEMMCoopmat2.Tile?
    var coopmat2Emulated = false
    /// At most this many workgroups per looped grid axis (Vulkan): each workgroup then runs several tiles and batches.
    var gridCap: Int?

    var description: String {
        "\(batch)x\(cin)->\(cout) \(t)x\(h)x\(w)+\(tc) \(params) x \(xType) w \(wType) cache \(cacheType) -> \(outType)"
            + " bias \(biasType.map { "\($0)" } ?? "-") res \(residualInPlace ? "in-place" : residualType.map { "\($0)" } ?? "-")"
            + " tile \(tile.map { "\($0)" } ?? "auto")" + (coopmat.map { $0 ? " coopmat" : " no coopmat" } ?? "")
            + (coopmatTile.map { " \($0)" } ?? "") + (emulation.map { " emulated (layout \($0.layout))" } ?? "")
            + (coopmat2.map { $0 ? " coopmat2" : " no coopmat2" } ?? "") + (coopmat2Variant.map { " \($0.rawValue)" } ?? "")
            + (coopmat2Tile.map { " \($0)" } ?? "")
            + (coopmat2Emulated ? " coopmat2 emulated" : "") + (gridCap.map { " grid cap \($0)" } ?? "")
    }

    var xShape: [Int] { [batch, cin, t, h, w] }
    var cacheShape: [Int] { [batch, cin, tc, h, w] }
    var weightShape: [Int] { [cout, cin, params.kernelT, params.kernelH, params.kernelW] }
    func outShape() throws -> [Int] {
        let s = try params.outputSize(frames: t, height: h, width: w, cacheFrames: tc)
        return [batch, cout, s.t, s.h, s.w]
    }
}

/// The inputs of a case, already rounded to their dtypes.
private struct ConvData {
    var x: [Float], cache: [Float]?, weight: [Float], bias: [Float]?, residual: [Float]?
}

private func makeData(_ c: ConvCase, seed: UInt64) throws -> ConvData {
    var rng = TestRandom(seed: seed)
    let resType = c.residualInPlace ? c.outType : c.residualType
    return ConvData(
        x: quantized(rng.floats(c.xShape.reduce(1, *)), c.xType),
        cache: c.tc > 0 ? quantized(rng.floats(c.cacheShape.reduce(1, *)), c.cacheType) : nil,
        weight: quantized(rng.floats(c.weightShape.reduce(1, *), -0.5, 0.5), c.wType),
        bias: c.biasType.map { quantized(rng.floats(c.cout), $0) },
        residual: try resType.map { quantized(rng.floats(try c.outShape().reduce(1, *)), $0) })
}

/// Direct float64 convolution of the virtual sequence zeros(max(0, padFront − tc)) ++ cache ++ x
/// (spec §5.1/§5.5), zero outside the spatial extent, + bias + residual.
private func referenceConv3D(x: [Float], xShape: [Int], cache: [Float]?, tc: Int, weight: [Float], cout: Int,
                             bias: [Float]?, residual: [Float]?, params p: Conv3DParams) throws -> [Double] {
    let (batch, cin, t, h, w) = (xShape[0], xShape[1], xShape[2], xShape[3], xShape[4])
    let size = try p.outputSize(frames: t, height: h, width: w, cacheFrames: tc)
    let front = max(p.padFront, tc)
    let (kt, kh, kw) = (p.kernelT, p.kernelH, p.kernelW)
    var out = [Double](repeating: 0, count: batch * cout * size.t * size.h * size.w)
    var o = 0
    for b in 0..<batch {
        for co in 0..<cout {
            for to in 0..<size.t {
                for ho in 0..<size.h {
                    for wo in 0..<size.w {
                        var s = Double(bias?[co] ?? 0)
                        for ci in 0..<cin {
                            for dt in 0..<kt {
                                let u = to * p.strideT + dt - front
                                guard u >= -tc else { continue }
                                for dh in 0..<kh {
                                    let hi = ho * p.strideH + dh - p.padTop
                                    guard hi >= 0 && hi < h else { continue }
                                    for dw in 0..<kw {
                                        let wi = wo * p.strideW + dw - p.padLeft
                                        guard wi >= 0 && wi < w else { continue }
                                        let v: Float = u >= 0
                                            ? x[(((b * cin + ci) * t + u) * h + hi) * w + wi]
                                            : cache![(((b * cin + ci) * tc + tc + u) * h + hi) * w + wi]
                                        let wv = weight[(((co * cin + ci) * kt + dt) * kh + dh) * kw + dw]
                                        s += Double(wv) * Double(v)
                                    }
                                }
                            }
                        }
                        if let residual { s += Double(residual[o]) }
                        out[o] = s
                        o += 1
                    }
                }
            }
        }
    }
    return out
}

private func run(_ c: ConvCase, _ d: ConvData, on device: Device) throws -> [Float] {
    let x = try device.tensor(d.x, shape: c.xShape, dtype: c.xType)
    let cache = try d.cache.map { try device.tensor($0, shape: c.cacheShape, dtype: c.cacheType) }
    let weight = try device.tensor(d.weight, shape: c.weightShape, dtype: c.wType)
    let bias = try d.bias.map { try device.tensor($0, shape: [c.cout], dtype: c.biasType!) }
    let outShape = try c.outShape()
    var residual = try d.residual.map { try device.tensor($0, shape: outShape, dtype: c.residualInPlace ? c.outType : c.residualType!) }
    let out = c.residualInPlace ? residual! : try device.empty(outShape, dtype: c.outType)
    if c.residualInPlace { residual = out }
    let list = try CommandList(device: device)
    if let cap = c.gridCap { list.capGrid(cap) }
    try list.conv3d(x, weight: weight, bias: bias, cache: cache, params: c.params, residual: residual, out: out, tile: c.tile,
                    coopmat: device.isCPU ? nil : c.coopmat, coopmatTile: c.coopmatTile,
                    coopmatEmulation: device.isCPU ? nil : c.emulation, coopmat2: device.isCPU ? nil : c.coopmat2,
                    coopmat2Variant: c.coopmat2Variant, coopmat2Tile: c.coopmat2Tile, coopmat2Emulated: !device.isCPU && c.coopmat2Emulated)
    try list.run()
    return try device.read(out)
}

/// Runs a case on every device against the float64 reference, and Vulkan against the CPU.
private func check(_ c: ConvCase, devices: [Device], seed: UInt64 = 1, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let d = try makeData(c, seed: seed)
    let want = try referenceConv3D(x: d.x, xShape: c.xShape, cache: d.cache, tc: c.tc, weight: d.weight, cout: c.cout,
                                   bias: d.bias, residual: d.residual, params: c.params)
    #expect(want.contains { $0 != 0 }, "reference is all zeros: \(c)", sourceLocation: sourceLocation)
    var results: [(String, [Float])] = []
    for device in devices {
        let got = try run(c, d, on: device)
        let err = maxRelativeError(got, want)
        #expect(err <= tolerance(c.outType), "\(device.name) \(c): relative error \(err)", sourceLocation: sourceLocation)
        results.append((device.name, got))
    }
    if results.count == 2 {
        let err = maxRelativeError(results[1].1, results[0].1)
        #expect(err <= 2 * tolerance(c.outType), "\(results[1].0) vs cpu \(c): relative difference \(err)", sourceLocation: sourceLocation)
    }
}

/// Frames `range` of a [C, T, H, W] host array (batch 1).
private func frames(_ v: [Float], channels: Int, frames t: Int, plane: Int, _ range: Range<Int>) -> [Float] {
    var r: [Float] = []
    r.reserveCapacity(channels * range.count * plane)
    for c in 0..<channels { r += v[(c * t + range.lowerBound) * plane..<(c * t + range.upperBound) * plane] }
    return r
}

/// Concatenates [C, t_i, plane] host arrays along time.
private func concatFrames(_ parts: [(values: [Float], frames: Int)], channels: Int, plane: Int) -> [Float] {
    var r: [Float] = []
    for c in 0..<channels {
        for p in parts { r += p.values[c * p.frames * plane..<(c + 1) * p.frames * plane] }
    }
    return r
}

@Suite struct Conv3DTests {
    /// Every kernel shape, stride and padding of the VAE (and a 3-D stride-2 conv) against float64.
    @Test func shapesAndStrides() throws {
        let devices = try TestDevices.all()
        let k3s2 = Conv3DParams(kernel: (3, 3, 3), stride: (2, 2, 2), padFront: 2, padBottom: 1, padRight: 1)
        let cases: [ConvCase] = [
            ConvCase(cin: 3, t: 5),                                        // causal k3, no cache
            ConvCase(cin: 5, t: 1, tc: 2),                                 // 1 frame after 2 cached
            ConvCase(batch: 2, cin: 3, t: 2, tc: 1),                       // 1 cached frame + 1 zero frame
            ConvCase(cin: 5, t: 5, params: .upsampleTime),                 // (3,1,1)
            ConvCase(cin: 3, t: 2, params: .upsampleSpatial),              // (1,3,3) padding 1
            ConvCase(cin: 5, t: 5, params: .pointwise),                    // (1,1,1)
            ConvCase(cin: 3, t: 2, params: .downsampleSpatial),            // stride (1,2,2), pad bottom/right
            ConvCase(cin: 5, t: 4, tc: 1, params: .downsampleTime),        // stride (2,1,1), 1 cached frame
            ConvCase(cin: 5, t: 5, params: .downsampleTime),               // no cache: windows at 0, 2
            ConvCase(batch: 2, cin: 3, t: 5, tc: 2, params: k3s2),         // stride 2 everywhere
        ]
        for (i, c) in cases.enumerated() { try check(c, devices: devices, seed: UInt64(100 + i)) }
        TestDevices.checkValidation()
    }

    /// Mixed input/weight/cache/output dtypes, bias-free and residual (also in place) epilogues.
    @Test func dtypeCombinations() throws {
        let devices = try TestDevices.all()
        let cases: [ConvCase] = [
            ConvCase(cin: 5, t: 2, tc: 2, xType: .f16, wType: .f16, cacheType: .f16, outType: .f16, biasType: .f16),
            ConvCase(cin: 5, t: 2, tc: 2, xType: .bf16, wType: .bf16, cacheType: .bf16, outType: .bf16, biasType: .bf16,
                     residualType: .bf16),
            ConvCase(cin: 5, t: 2, tc: 2, xType: .f16, wType: .f32, cacheType: .bf16, outType: .f32, biasType: .bf16,
                     residualType: .f16),
            ConvCase(cin: 5, t: 2, tc: 1, xType: .bf16, wType: .f16, cacheType: .f32, outType: .f32, biasType: nil,
                     residualInPlace: true),
            ConvCase(cin: 5, t: 2, tc: 1, xType: .f32, wType: .f32, cacheType: .f32, outType: .f16, biasType: .f32,
                     residualInPlace: true),
        ]
        for (i, c) in cases.enumerated() { try check(c, devices: devices, seed: UInt64(200 + i)) }
        TestDevices.checkValidation()
    }

    /// Explicit Vulkan tiles with M and N spanning several tiles, batches and a cache.
    @Test func vulkanTiles() throws {
        guard let v = try TestDevices.vulkan() else { return }
        for (i, tile) in [Conv3DTile.small, Conv3DTile(bm: 32, bn: 64, bk: 8, tm: 4, tn: 8)].enumerated() {
            try check(ConvCase(batch: 2, cin: 5, cout: 37, t: 3, tc: 2, tile: tile), devices: [TestDevices.cpu, v], seed: UInt64(300 + i))
        }
        // Workgroups looping over several column tiles (8 tiles on 2 workgroups) and batches (3 on 2).
        var looped = ConvCase(batch: 3, cin: 5, cout: 37, t: 3, tc: 2, tile: .small)
        looped.gridCap = 2
        try check(looped, devices: [TestDevices.cpu, v], seed: 302)
        TestDevices.checkValidation()
    }

    /// The VAE's chunked procedure with the §5.5 cache rule equals one convolution over the whole video
    /// (2 zero frames in front): encoder chunks (1 frame, then 4) and decoder chunks (1 frame at a time),
    /// for the kernel-3 causal conv and upsample3d's (3,1,1) time conv.
    @Test func chunkedEqualsWhole() throws {
        let (cin, cout, h, w) = (3, 5, 9, 11)
        let plane = h * w
        for device in try TestDevices.all() {
            for params in [Conv3DParams.causal3, .upsampleTime] {
                for (style, total, chunks) in [("encoder", 9, [0..<1, 1..<5, 5..<9]), ("decoder", 5, (0..<5).map { $0..<($0 + 1) })] {
                    var rng = TestRandom(seed: 400)
                    let xv = rng.floats(cin * total * plane)
                    let wv = rng.floats(cout * cin * params.kernelT * params.kernelH * params.kernelW, -0.5, 0.5)
                    let bv = rng.floats(cout)
                    let weight = try device.tensor(wv, shape: [cout, cin, params.kernelT, params.kernelH, params.kernelW])
                    let bias = try device.tensor(bv, shape: [cout])
                    // Whole video.
                    let xAll = try device.tensor(xv, shape: [1, cin, total, h, w])
                    let whole = try device.empty([1, cout, total, h, w])
                    let list = try CommandList(device: device)
                    try list.conv3d(xAll, weight: weight, bias: bias, params: params, out: whole)
                    // Chunk by chunk, in the same list (the cache copies and convs must be ordered).
                    var cache: Tensor?
                    var outs: [Tensor] = []
                    for r in chunks {
                        let xc = try device.tensor(frames(xv, channels: cin, frames: total, plane: plane, r), shape: [1, cin, r.count, h, w])
                        let tc = cache?.shape[2] ?? 0
                        let size = try params.outputSize(frames: r.count, height: h, width: w, cacheFrames: tc)
                        #expect(size.t == r.count)
                        let o = try device.empty([1, cout, size.t, size.h, size.w])
                        try list.conv3d(xc, weight: weight, bias: bias, cache: cache, params: params, out: o)
                        let next = try device.empty([1, cin, Conv3DParams.nextCacheFrames(inputFrames: r.count, previousFrames: tc), h, w])
                        try list.conv3dNextCache(xc, previous: cache, out: next)
                        cache = next
                        outs.append(o)
                    }
                    try list.run()
                    let chunked = concatFrames(try outs.map { (try device.read($0), $0.shape[2]) }, channels: cout, plane: plane)
                    let wholeV = try device.read(whole)
                    let ref = try referenceConv3D(x: xv, xShape: [1, cin, total, h, w], cache: nil, tc: 0, weight: wv, cout: cout,
                                                  bias: bv, residual: nil, params: params)
                    #expect(maxRelativeError(wholeV, ref) <= 1e-5, "\(device.name) \(params) whole")
                    let err = maxRelativeError(chunked, wholeV)
                    #expect(err <= 1e-6, "\(device.name) \(params) \(style) chunks: relative difference \(err)")
                }
            }
        }
        TestDevices.checkValidation()
    }

    /// downsample3d's time conv chunk by chunk (§5.5: first chunk cached whole without a conv, then
    /// time_conv(cat(last cached frame, chunk)) with stride 2) equals the whole-sequence form: windows
    /// starting at frames 0, 2, 4, ... of the whole video without padding.
    @Test func downsampleChunkedEqualsWhole() throws {
        let (c, h, w, total) = (4, 9, 11, 9)
        let plane = h * w
        let params = Conv3DParams.downsampleTime
        for device in try TestDevices.all() {
            var rng = TestRandom(seed: 500)
            let xv = rng.floats(c * total * plane)
            let wv = rng.floats(c * c * 3, -0.5, 0.5)
            let bv = rng.floats(c)
            let weight = try device.tensor(wv, shape: [c, c, 3, 1, 1])
            let bias = try device.tensor(bv, shape: [c])
            let list = try CommandList(device: device)
            let xAll = try device.tensor(xv, shape: [1, c, total, h, w])
            let wholeFrames = try params.outputSize(frames: total, height: h, width: w).t
            #expect(wholeFrames == (total - 1) / 2)
            let whole = try device.empty([1, c, wholeFrames, h, w])
            try list.conv3d(xAll, weight: weight, bias: bias, params: params, out: whole)
            var cache: Tensor?
            var outs: [Tensor] = []
            for r in [0..<1, 1..<5, 5..<9] {
                let xc = try device.tensor(frames(xv, channels: c, frames: total, plane: plane, r), shape: [1, c, r.count, h, w])
                let next: Tensor
                if let cache {
                    let last = try cache.sliced(dim: 2, cache.shape[2] - 1..<cache.shape[2])
                    let o = try device.empty([1, c, try params.outputSize(frames: r.count, height: h, width: w, cacheFrames: 1).t, h, w])
                    try list.conv3d(xc, weight: weight, bias: bias, cache: last, params: params, out: o)
                    outs.append(o)
                    next = try device.empty([1, c, 1, h, w])  // the last frame of the chunk
                } else {
                    next = try device.empty([1, c, r.count, h, w])  // first chunk: all of it, no conv
                }
                try list.conv3dNextCache(xc, previous: nil, out: next)
                cache = next
            }
            try list.run()
            let chunked = concatFrames(try outs.map { (try device.read($0), $0.shape[2]) }, channels: c, plane: plane)
            let wholeV = try device.read(whole)
            let ref = try referenceConv3D(x: xv, xShape: [1, c, total, h, w], cache: nil, tc: 0, weight: wv, cout: c,
                                          bias: bv, residual: nil, params: params)
            #expect(maxRelativeError(wholeV, ref) <= 1e-5, "\(device.name) whole")
            #expect(chunked.count == wholeV.count)
            let err = chunked.count == wholeV.count ? maxRelativeError(chunked, wholeV) : 1
            #expect(err <= 1e-6, "\(device.name) downsample chunks: relative difference \(err)")
        }
        TestDevices.checkValidation()
    }

    /// The cache helper keeps the last n frames of cat(previous, x), including the 1-frame-chunk case.
    @Test func nextCacheRules() throws {
        #expect(Conv3DParams.nextCacheFrames(inputFrames: 1, previousFrames: 0) == 1)
        #expect(Conv3DParams.nextCacheFrames(inputFrames: 1, previousFrames: 1) == 2)
        #expect(Conv3DParams.nextCacheFrames(inputFrames: 1, previousFrames: 2) == 2)
        #expect(Conv3DParams.nextCacheFrames(inputFrames: 4, previousFrames: 2) == 2)
        let (c, plane) = (2, 3)
        // Frame f of channel ch holds 100·f + 10·ch + pixel (previous: negative frames).
        func video(_ fr: [Int]) -> [Float] {
            var v: [Float] = []
            for ch in 0..<c { for f in fr { for p in 0..<plane { v.append(Float(100 * f + 10 * ch + p)) } } }
            return v
        }
        for device in try TestDevices.all() {
            for (prevFrames, xFrames, n) in [([-2, -1], [0], 2), ([], [0], 1), ([-1], [0], 2), ([-2, -1], [0, 1, 2, 3], 2), ([-1], [0, 1, 2, 3], 1)] {
                let x = try device.tensor(video(xFrames), shape: [1, c, xFrames.count, 1, plane])
                let prev = prevFrames.isEmpty ? nil : try device.tensor(video(prevFrames), shape: [1, c, prevFrames.count, 1, plane])
                let out = try device.empty([1, c, n, 1, plane])
                let list = try CommandList(device: device)
                try list.conv3dNextCache(x, previous: prev, out: out)
                try list.run()
                let all = prevFrames + xFrames
                #expect(try device.read(out) == video(Array(all.suffix(n))), "\(device.name) prev \(prevFrames) x \(xFrames) n \(n)")
            }
        }
        TestDevices.checkValidation()
    }

    /// The tile policy: WAN_CONV_TILE syntax, shared-memory limits, and the choice per device kind.
    @Test func tilePolicy() throws {
        #expect(throws: RuntimeError.self) { try Conv3DTile(parsing: "64x64x16") }
        #expect(try Conv3DTile(parsing: "128x64x8x8x4") == Conv3DTile(bm: 128, bn: 64, bk: 8, tm: 8, tn: 4))
        guard let v = try TestDevices.vulkan()?.vulkan else { return }
        let caps = v.capabilities
        let chosen = try Conv3DTile.chooseConv(caps, m: 96, n: 4 * 480 * 832, batch: 1)
        try chosen.validate(caps)
        if caps.isSoftware { #expect(chosen == .medium) }
        var small = caps
        small.maxComputeSharedMemorySize = 32 * 1024
        #expect(throws: RuntimeError.self) { try Conv3DTile.large.validate(small) }
        #expect(throws: RuntimeError.self) { try Conv3DTile(bm: 64, bn: 64, bk: 16, tm: 3, tn: 4).validate(caps) }
        var gpu = caps
        gpu.deviceType = "discrete"
        gpu.maxComputeSharedMemorySize = 48 * 1024
        gpu.subgroupSize = 32
        gpu.maxComputeWorkGroupInvocations = 1024
        gpu.maxComputeWorkGroupSize = [1024, 1024, 64]
        #expect(try Conv3DTile.chooseConv(gpu, m: 96, n: 4 * 480 * 832, batch: 1) == .large)
        #expect(try Conv3DTile.chooseConv(gpu, m: 3, n: 4 * 480 * 832, batch: 1) == .medium)
        #expect(try Conv3DTile.chooseConv(small, m: 96, n: 4 * 480 * 832, batch: 1).sharedBytes <= 32 * 1024)
    }

    /// A K loop (Cin·taps) beyond a CPU driver's loop budget is a clear error there (lavapipe computed Cin 2600 wrong,
    /// relative error 0.5); GPUs compute it against the CPU.
    @Test func loopBudgetOnCPUDrivers() throws {
        guard let vk = try TestDevices.vulkan(), let caps = vk.vulkan?.capabilities else { return }
        let c = ConvCase(cin: 2600, cout: 8, t: 1, h: 4, w: 4)
        guard caps.isSoftware else {
            try check(c, devices: [TestDevices.cpu, vk], seed: 92)
            return
        }
        let d = try makeData(c, seed: 92)
        expectInvalidArgument(containing: ["loop iterations", "K = 70200"]) { _ = try run(c, d, on: vk) }
    }

    /// Wrong shapes, dtypes, caches and devices throw RuntimeErrors.
    @Test func invalidArguments() throws {
        let d = TestDevices.cpu
        let p = Conv3DParams.causal3
        let x = try d.zeros([1, 3, 2, 5, 6])
        let wgt = try d.zeros([4, 3, 3, 3, 3])
        let out = try d.zeros([1, 4, 2, 5, 6])
        let list = try CommandList(device: d)
        func expectError(_ what: String, _ body: () throws -> Void) {
            #expect(throws: RuntimeError.self, "\(what)") { try body() }
        }
        // Sanity: the valid call records.
        try list.conv3d(x, weight: wgt, bias: nil, params: p, out: out)
        expectError("channel mismatch") { try list.conv3d(x, weight: try d.zeros([4, 5, 3, 3, 3]), bias: nil, params: p, out: out) }
        expectError("kernel mismatch") { try list.conv3d(x, weight: try d.zeros([4, 3, 1, 3, 3]), bias: nil, params: p, out: out) }
        expectError("bias shape") { try list.conv3d(x, weight: wgt, bias: try d.zeros([3]), params: p, out: out) }
        expectError("out shape") { try list.conv3d(x, weight: wgt, bias: nil, params: p, out: try d.zeros([1, 4, 3, 5, 6])) }
        expectError("cache height") {
            try list.conv3d(x, weight: wgt, bias: nil, cache: try d.zeros([1, 3, 2, 4, 6]), params: p, out: out)
        }
        expectError("cache channels") {
            try list.conv3d(x, weight: wgt, bias: nil, cache: try d.zeros([1, 5, 2, 5, 6]), params: p, out: out)
        }
        expectError("cache too long") {
            try list.conv3d(x, weight: wgt, bias: nil, cache: try d.zeros([1, 3, 3, 5, 6]), params: p, out: out)
        }
        expectError("cache on a 1x1x1 conv") {
            try list.conv3d(x, weight: try d.zeros([4, 3, 1, 1, 1]), bias: nil, cache: try d.zeros([1, 3, 1, 5, 6]),
                            params: .pointwise, out: try d.zeros([1, 4, 2, 5, 6]))
        }
        expectError("x rank") { try list.conv3d(try d.zeros([3, 2, 5, 6]), weight: wgt, bias: nil, params: p, out: out) }
        expectError("i32 input") {
            try list.conv3d(try d.zeros([1, 3, 2, 5, 6], dtype: .i32), weight: wgt, bias: nil, params: p, out: out)
        }
        expectError("fp8 weight") {
            try list.conv3d(x, weight: try d.zeros([4, 3, 3, 3, 3], dtype: .f8e4m3fn), bias: nil, params: p, out: out)
        }
        expectError("negative padding") {
            try list.conv3d(x, weight: wgt, bias: nil, params: Conv3DParams(kernel: (3, 3, 3), padFront: -1), out: out)
        }
        expectError("zero stride") {
            try list.conv3d(x, weight: wgt, bias: nil, params: Conv3DParams(kernel: (3, 3, 3), stride: (1, 0, 1)), out: out)
        }
        expectError("residual shape") {
            try list.conv3d(x, weight: wgt, bias: nil, params: p, residual: try d.zeros([1, 4, 2, 5, 5]), out: out)
        }
        let big = try d.zeros([1, 3, 2, 5, 6])
        expectError("out overlaps x") {
            try list.conv3d(big, weight: try d.zeros([3, 3, 3, 3, 3]), bias: nil, params: p, out: big)
        }
        expectError("spatial size below the kernel") {
            try list.conv3d(try d.zeros([1, 3, 2, 1, 1]), weight: wgt, bias: nil, params: Conv3DParams(kernel: (3, 3, 3)),
                            out: try d.zeros([1, 4, 0, 1, 1]))
        }
        expectError("next cache too long") { try list.conv3dNextCache(x, previous: nil, out: try d.zeros([1, 3, 3, 5, 6])) }
        expectError("next cache shape") {
            try list.conv3dNextCache(x, previous: try d.zeros([1, 3, 2, 5, 7]), out: try d.zeros([1, 3, 2, 5, 6]))
        }
        if let v = try TestDevices.vulkan() {
            let vx = try v.zeros([1, 3, 2, 5, 6])
            expectError("mixed devices") { try list.conv3d(vx, weight: wgt, bias: nil, params: p, out: out) }
            let vlist = try CommandList(device: v)
            expectError("mixed devices (cache)") {
                try vlist.conv3d(vx, weight: try v.zeros([4, 3, 3, 3, 3]), bias: nil, cache: try d.zeros([1, 3, 2, 5, 6]),
                                 params: p, out: try v.zeros([1, 4, 2, 5, 6]))
            }
            expectError("tile too big for the device") {
                var caps = v.vulkan!.capabilities
                caps.maxComputeSharedMemorySize = 1024
                try Conv3DTile.medium.validate(caps)
            }
        }
        TestDevices.checkValidation()
    }
}

/// Runs a case on device `d` against float64 with fp16's tolerance (the tensor-core variants round operands to fp16).
private func checkFP16(_ c: ConvCase, _ d: Device, seed: UInt64, sourceLocation: SourceLocation) throws {
    let data = try makeData(c, seed: seed)
    let want = try referenceConv3D(x: data.x, xShape: c.xShape, cache: data.cache, tc: c.tc, weight: data.weight, cout: c.cout,
                                   bias: data.bias, residual: data.residual, params: c.params)
    let got = try run(c, data, on: d)
    let err = maxRelativeError(got, want)
    #expect(err <= 1e-2, "\(c): relative error \(err)", sourceLocation: sourceLocation)
}

/// The tensor-core convolutions' case list: every geometry of the VAE, dtypes and epilogues, edges in M, N and K.
private func tensorCoreConvCases() -> [ConvCase] {
    let k3s2 = Conv3DParams(kernel: (3, 3, 3), stride: (2, 2, 2), padFront: 2, padBottom: 1, padRight: 1)
    return [
        // Causal k3 after 2 cached frames; M spans two partial tiles; K = 135 (element staging of the weights).
        ConvCase(cin: 5, cout: 70, t: 3, h: 9, w: 11, tc: 2, xType: .f16, wType: .f16, cacheType: .f16, outType: .f16, biasType: .f16),
        // K = 648 (many slices, vector staging), bf16 with a residual, a 1-frame cache.
        ConvCase(batch: 2, cin: 24, cout: 20, t: 2, h: 7, w: 10, tc: 1, xType: .bf16, wType: .bf16, cacheType: .bf16, outType: .bf16,
                 biasType: .bf16, residualType: .bf16),
        // f32 operands rounded to fp16 (what fp16 compute does), f32 out.
        ConvCase(cin: 8, cout: 12, t: 4, h: 6, w: 7, tc: 2),
        // The VAE's other kernels: (3,1,1), (1,3,3), 1x1x1, spatial stride 2 with its asymmetric pad, time stride 2.
        ConvCase(cin: 16, cout: 17, t: 5, h: 5, w: 6, params: .upsampleTime, xType: .f16, wType: .f16, outType: .f32),
        ConvCase(cin: 16, cout: 9, t: 2, h: 8, w: 9, params: .upsampleSpatial, xType: .f16, wType: .f16, outType: .f16,
                 biasType: nil, residualInPlace: true),
        ConvCase(cin: 8, cout: 33, t: 5, h: 9, w: 11, params: .pointwise, xType: .f16, wType: .f16, outType: .f16),
        // (W' = 17: chunks of 8 voxels inside a row, where the gather steps by the stride, and across rows.)
        ConvCase(cin: 16, cout: 20, t: 2, h: 9, w: 34, params: .downsampleSpatial, xType: .bf16, wType: .bf16, outType: .f32),
        ConvCase(cin: 8, cout: 10, t: 4, h: 5, w: 6, tc: 1, params: .downsampleTime, xType: .f16, wType: .f16, cacheType: .f16,
                 outType: .f16),
        ConvCase(batch: 2, cin: 3, cout: 6, t: 5, h: 7, w: 20, tc: 2, params: k3s2, xType: .f16, wType: .bf16, cacheType: .f16,
                 outType: .f32, residualType: .f32),
        // Workgroups looping over several tiles (up to 10) and batches (3 on 2 workgroups); K = 36, an odd number of
        // 16-wide slices per tile (the gather variant's buffers alternate across tiles). Few taps and channels: emulated
        // on lavapipe, whose loops stop after 65535 iterations per invocation in all, a K slice costs hundreds of them.
        ConvCase(batch: 3, cin: 12, cout: 20, t: 2, h: 5, w: 34, tc: 2, params: .upsampleTime, xType: .f16, wType: .f16,
                 cacheType: .f16, outType: .f16, residualType: .f16, gridCap: 2),
    ]
}

/// The tensor-core variant (`conv3d_coopmat.comp`): against float64 where the device has cooperative matrices, and
/// the same shader with emulated ones everywhere (lavapipe in CI). Operands are rounded to fp16, so fp16 tolerances.
@Suite struct Conv3DCoopmatTests {
    @Test func coopmatVariant() throws {
        guard let d = try TestDevices.vulkan(), let caps = d.vulkan?.capabilities else { return }
        if Conv3DCoopmat.supported(caps) {
            if getenv("WAN_CONV_COOPMAT") == nil {
                #expect(Conv3DCoopmat.chosen(caps, x: .f16, weight: .f16, cache: .f16))
                #expect(!Conv3DCoopmat.chosen(caps, x: .f32, weight: .f32, cache: nil), "f32 stays exact unless fp16 compute is allowed")
                #expect(Conv3DCoopmat.chosen(caps, x: .f32, weight: .bf16, cache: nil, fp16Compute: true))
                #expect(!Conv3DCoopmat.chosen(caps, x: .f16, weight: .f16, cache: .f32), "a cache in another dtype keeps the tiled kernel")
            }
            try cases(d, caps, emulation: nil)
        } else {
            #expect(!Conv3DCoopmat.chosen(caps, x: .f16, weight: .f16, cache: nil, fp16Compute: true))
            #expect(throws: RuntimeError.self) {
                try self.check(ConvCase(cin: 5, t: 2, xType: .f16, wType: .f16, coopmat: true), d, seed: 1)
            }
            print("note: \(caps.deviceName) has no usable cooperative matrices; the tensor-core convolution runs emulated")
        }
        try cases(d, caps, emulation: CoopmatEmulation())
        TestDevices.checkValidation()
    }

    /// Runs a case with the variant forced on against float64 (fp16 tolerance).
    private func check(_ c: ConvCase, _ d: Device, seed: UInt64, sourceLocation: SourceLocation = #_sourceLocation) throws {
        var c = c
        c.coopmat = true
        try checkFP16(c, d, seed: seed, sourceLocation: sourceLocation)
    }

    /// Every geometry of the VAE, dtypes and epilogues, edges in M, N and K, vector and element weight staging.
    private func cases(_ d: Device, _ caps: Capabilities, emulation e: CoopmatEmulation?) throws {
        // Emulated on lavapipe (32 KiB of shared memory): a 64x64 tile of 4 subgroups.
        let tile = e == nil ? nil : GEMMCoopmat.Tile(bm: 64, bn: 64, bk: 32, wm: 32, wn: 32)
        let cases = tensorCoreConvCases()
        for (i, var c) in cases.enumerated() {
            c.coopmatTile = tile
            c.emulation = e
            try check(c, d, seed: UInt64(500 + i))
        }
        // Another tile: BK 16, 16-row subgroup tiles, N spanning tiles.
        var c = ConvCase(cin: 8, cout: 24, t: 3, h: 10, w: 11, tc: 2, xType: .f16, wType: .f16, cacheType: .f16, outType: .f16)
        c.coopmatTile = GEMMCoopmat.Tile(bm: 32, bn: 64, bk: 16, wm: 16, wn: 32)
        c.emulation = e
        try check(c, d, seed: 520)
        // The other emulated layout: the shader must not depend on it.
        if var other = e {
            other.layout = .columns
            var c = cases[1]
            c.coopmatTile = tile
            c.emulation = other
            try check(c, d, seed: 521)
        }
        // A cache in another dtype than x: a clear error when forced.
        var bad = ConvCase(cin: 5, t: 2, tc: 1, xType: .f16, wType: .f16, cacheType: .f32, coopmatTile: tile)
        bad.emulation = e
        #expect(throws: RuntimeError.self) { try self.check(bad, d, seed: 1) }
    }
}

/// The coopmat2 convolutions (`conv3d_cm2.comp`, the gather variant, and `conv3d_rows_cm2.comp`, the rows variant): their
/// policy on edited capabilities; against float64 natively where the device has VK_NV_cooperative_matrix2 and the build
/// its shaders, and with emulated workgroup-scope matrices on every device (lavapipe in CI). Operands are rounded to
/// fp16, so fp16 tolerances.
@Suite struct Conv3DCoopmat2Tests {
    @Test func policy() throws {
        guard let d = try TestDevices.vulkan(), let real = d.vulkan?.capabilities else { return }
        var caps = real.withCoopmat2(shapes: [TestCoopmat2.shape])
        caps.cooperativeMatrix2?.reductions = false
        caps.cooperativeMatrix2?.conversions = false
        caps.cooperativeMatrix2Enabled = true
        #expect(Conv3DCoopmat2.supported(caps) == Conv3DCoopmat2.built, "the GEMM's features suffice (no reductions)")
        caps.cooperativeMatrix2Enabled = false
        #expect(!Conv3DCoopmat2.supported(caps) && !Conv3DCoopmat2.chosen(caps, x: .f16, weight: .f16, cache: nil, fp16Compute: true))
        // The gather's split: BN / 8 chunks per slice row dividing the workgroup size.
        #expect(Conv3DCoopmat2.splits(Conv3DCoopmat2.defaultTile, invocations: 256))
        #expect(Conv3DCoopmat2.splits(GEMMCoopmat2.Tile(bm: 64, bn: 256, bk: 32), invocations: 128))
        #expect(!Conv3DCoopmat2.splits(GEMMCoopmat2.Tile(bm: 64, bn: 48, bk: 32), invocations: 128))
        #expect(!Conv3DCoopmat2.splits(GEMMCoopmat2.Tile(bm: 64, bn: 1024, bk: 32), invocations: 64))
        #expect(!Conv3DCoopmat2.splits(GEMMCoopmat2.Tile(bm: 64, bn: 0, bk: 32), invocations: 64))
        // WAN_CONV_CM2's values, and the variant a call runs.
        #expect(Conv3DCoopmat2.requested("rows") == .rows && Conv3DCoopmat2.requested("1") == .gather)
        #expect(Conv3DCoopmat2.requested("gather") == .gather)
        #expect(Conv3DCoopmat2.requested("0") == nil && Conv3DCoopmat2.requested(nil) == nil && Conv3DCoopmat2.requested("") == nil)
        #expect(Conv3DCoopmat2.variant(requested: .rows, rowsSuit: true) == .rows)
        #expect(Conv3DCoopmat2.variant(requested: .rows, rowsSuit: false) == .gather, "width stride 2: the gather variant")
        #expect(Conv3DCoopmat2.variant(requested: .gather, rowsSuit: true) == .gather)
        #expect(Conv3DCoopmat2.splits(Conv3DCoopmat2.emulatedTile, invocations: Conv3DCoopmat2.emulatedInvocations))
        #expect(Conv3DCoopmat2.emulationSharedBytes(Conv3DCoopmat2.emulatedTile) <= 32 << 10, "fits lavapipe")
        // Native slices beside the driver's reserved shared memory (1 KiB here): 16 KiB for the default tile.
        caps.maxComputeSharedMemorySize = 17 << 10
        #expect(Conv3DCoopmat2.slicesFit(Conv3DCoopmat2.defaultTile, caps))
        caps.maxComputeSharedMemorySize = 17 << 10 - 1
        #expect(!Conv3DCoopmat2.slicesFit(Conv3DCoopmat2.defaultTile, caps))
        // Tensors: f32/f16 outputs, x and the cache in one dtype, 16-byte aligned weights and outputs (per batch).
        let x = try d.empty([2, 3, 2, 4, 4], dtype: .f16), w = try d.empty([5, 3, 3, 3, 3], dtype: .f16)
        let out = try d.empty([2, 5, 2, 4, 4]), out16 = try d.empty([2, 5, 2, 4, 4], dtype: .f16)
        let outBF = try d.empty([2, 5, 2, 4, 4], dtype: .bf16)
        #expect(Conv3DCoopmat2.eligible(x: x, cache: nil, weight: w, out: out, residual: nil, batch: 2, outputsPerBatch: 160))
        #expect(Conv3DCoopmat2.eligible(x: x, cache: x, weight: w, out: out16, residual: out, batch: 2, outputsPerBatch: 160))
        #expect(!Conv3DCoopmat2.eligible(x: x, cache: nil, weight: w, out: outBF, residual: nil, batch: 2, outputsPerBatch: 160))
        #expect(!Conv3DCoopmat2.eligible(x: x, cache: out, weight: w, out: out, residual: nil, batch: 2, outputsPerBatch: 160),
                "a cache in another dtype than x")
        #expect(!Conv3DCoopmat2.eligible(x: x, cache: nil, weight: w, out: out16, residual: nil, batch: 2, outputsPerBatch: 161),
                "per-batch outputs off 16 bytes")
        #expect(Conv3DCoopmat2.eligible(x: x, cache: nil, weight: w, out: out16, residual: nil, batch: 1, outputsPerBatch: 161),
                "one batch: no per-batch offset")
        let wView = try w.view(atByteOffset: 8, shape: [10], dtype: .f16)
        #expect(!Conv3DCoopmat2.eligible(x: x, cache: nil, weight: wView, out: out, residual: nil, batch: 1, outputsPerBatch: 160))
        // The rows variant: width stride 1 and 16-byte aligned x and cache, per batch too (x here: 96 halves a batch).
        #expect(Conv3DCoopmat2.rowsEligible(strideW: 1, x: x, cache: x, batch: 2, inputsPerBatch: 96, cachePerBatch: 96))
        #expect(!Conv3DCoopmat2.rowsEligible(strideW: 2, x: x, cache: nil, batch: 1, inputsPerBatch: 96, cachePerBatch: 0))
        #expect(!Conv3DCoopmat2.rowsEligible(strideW: 1, x: x, cache: x, batch: 2, inputsPerBatch: 96, cachePerBatch: 20),
                "cache batches off 16 bytes")
        #expect(!Conv3DCoopmat2.rowsEligible(strideW: 1, x: wView, cache: nil, batch: 1, inputsPerBatch: 10, cachePerBatch: 0))
    }

    /// Natively where the device and the build have it; elsewhere forcing it is a clear error.
    @Test func coopmat2Variant() throws {
        guard let d = try TestDevices.vulkan(), let caps = d.vulkan?.capabilities else { return }
        guard Conv3DCoopmat2.supported(caps) else {
            #expect(throws: RuntimeError.self) {
                try self.check(ConvCase(cin: 5, t: 2, xType: .f16, wType: .f16, outType: .f16), d, seed: 1)
            }
            print("note: \(caps.deviceName): no coopmat2 convolution (shader \(Conv3DCoopmat2.built ? "built" : "not built"), VK_NV_cooperative_matrix2 \(caps.nvCooperativeMatrix2 ? "present" : "absent"))")
            return
        }
        var sweep: [GEMMCoopmat2.Tile] = []
        if let shape = GEMMCoopmat2.shape(caps), let limits = caps.cooperativeMatrix2 {
            sweep = try ["64x128x32", "128x256x32", "256x128x32", "128x128x64"].map { try GEMMCoopmat2.Tile(parsing: $0) }
                .filter {
                    $0.fits(shape, maxDimension: limits.maxDimension) && Conv3DCoopmat2.splits($0, invocations: shape.workgroupInvocations)
                        && Conv3DCoopmat2.slicesFit($0, caps)
                }
        }
        for variant in Conv3DCoopmat2.Variant.allCases {
            try cases(d, variant: variant, tile: nil, emulated: false, sweep: sweep)
        }
        TestDevices.checkValidation()
    }

    /// The same shaders on emulated workgroup-scope matrices: the whole case list on any device.
    @Test(arguments: Conv3DCoopmat2.Variant.allCases) func coopmat2Emulated(_ variant: Conv3DCoopmat2.Variant) throws {
        guard let d = try TestDevices.vulkan() else { return }
        // gather: a tile of 128 voxels (16 chunks per slice row) for 64 invocations, 4 slice rows per pass; rows: 128
        // voxels of a row, 48 input channels per slice (more than the case's 8: a K slice mostly past Cin).
        let sweep = variant == .gather ? GEMMCoopmat2.Tile(bm: 16, bn: 128, bk: 32) : GEMMCoopmat2.Tile(bm: 16, bn: 128, bk: 48)
        try cases(d, variant: variant, tile: nil, emulated: true, sweep: [sweep])
        TestDevices.checkValidation()
    }

    /// Runs a case with the variant forced on against float64 (fp16 tolerance).
    private func check(_ c: ConvCase, _ d: Device, seed: UInt64, sourceLocation: SourceLocation = #_sourceLocation) throws {
        var c = c
        c.coopmat2 = true
        try checkFP16(c, d, seed: seed, sourceLocation: sourceLocation)
    }

    /// The tensor-core case list (bf16 outputs as f16: the shaders store f32 or f16; for `rows`, the cases of width
    /// stride 1, the others a clear error) with `tile` (nil: the default), then one case per tile of `sweep`; the errors
    /// of ineligible calls.
    private func cases(_ d: Device, variant: Conv3DCoopmat2.Variant, tile: GEMMCoopmat2.Tile?, emulated: Bool,
                       sweep: [GEMMCoopmat2.Tile]) throws {
        for (i, var c) in tensorCoreConvCases().enumerated() {
            if c.outType == .bf16 { c.outType = .f16 }
            c.coopmat2Variant = variant
            c.coopmat2Tile = tile
            c.coopmat2Emulated = emulated
            if variant == .rows && c.params.strideW != 1 {
                expectRefused(c, d, saying: "rows convolution needs width stride 1")
                continue
            }
            try check(c, d, seed: UInt64(600 + i))
        }
        // Wide rows: several tiles per output row, the last one partial (140 = 4·32 + 12 = 128 + 12).
        var wide = ConvCase(cin: 8, cout: 20, t: 2, h: 3, w: 140, tc: 2, xType: .f16, wType: .f16, cacheType: .f16, outType: .f16)
        wide.coopmat2Variant = variant
        wide.coopmat2Tile = tile
        wide.coopmat2Emulated = emulated
        try check(wide, d, seed: 630)
        for (i, t) in sweep.enumerated() {
            // M, N and K spanning several tiles with tails (K = 8·27 = 216, N = 3·10·11 = 330).
            var c = ConvCase(batch: 2, cin: 8, cout: 40, t: 3, h: 10, w: 11, tc: 2, xType: .f16, wType: .f16, cacheType: .f16,
                             outType: .f32, residualType: .f16)
            c.coopmat2Variant = variant
            c.coopmat2Tile = t
            c.coopmat2Emulated = emulated
            try check(c, d, seed: UInt64(620 + i))
        }
        // Ineligible calls forced onto the variant: a bf16 output, a cache in another dtype than x.
        var bad = ConvCase(cin: 5, t: 2, xType: .f16, wType: .f16, outType: .bf16)
        bad.coopmat2Variant = variant
        bad.coopmat2Emulated = emulated
        expectRefused(bad, d, saying: "the coopmat2 convolution needs an f32 or f16 output")
        bad = ConvCase(cin: 5, t: 2, tc: 1, xType: .f16, wType: .f16, cacheType: .f32, outType: .f16)
        bad.coopmat2Variant = variant
        bad.coopmat2Emulated = emulated
        expectRefused(bad, d, saying: "the cache in x's dtype")
    }

    /// Expects forcing case `c` onto the variant to fail with an `invalidArgument` error whose message contains `text`.
    private func expectRefused(_ c: ConvCase, _ d: Device, saying text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        expectInvalidArgument(containing: [text], "\(c)", sourceLocation: sourceLocation) { try self.check(c, d, seed: 1) }
    }
}
