import Foundation
import WanGraph
import WanRuntime

/// The Wan 2.1 causal video VAE (`WanVAE_`, spec §5) on WanGraph: encoder and decoder run chunk by chunk
/// (encode: the first frame, then 4-frame chunks; decode: one latent frame at a time) with the 2-frame
/// causal feature caches of spec §5.5 kept on the device between chunks, so memory does not grow with
/// the video's length. Weights carry the official names. Videos are `[3, T, H, W]` in [−1, 1], latents
/// `[z_dim, T', H/8, W/8]` in the normalised space the DiT uses (spec §5.8).
public final class WanVAE: @unchecked Sendable {
    /// The hyper-parameters.
    public let config: WanVAEConfig
    /// The device the weights live on and the graphs run on.
    public let device: Device
    /// Per-channel latent mean (spec §5.8).
    public let latentMean: [Float]
    /// Per-channel latent standard deviation (spec §5.8).
    public let latentStd: [Float]
    /// Convolutions may round their f32 inputs and weights to fp16 to run on tensor cores (fp32 accumulation; the
    /// activations, norms and caches stay fp32): the precision PyTorch's default TF32 convolutions on NVIDIA give (10
    /// mantissa bits) with fp16's range (±65504). False: fp32 throughout, as the official VAE. Devices without tensor
    /// cores compute fp32 either way.
    public let fp16Compute: Bool
    let weights: [String: Tensor]
    /// Shapes of the weights a shape-only VAE declares as placeholders (empty for a VAE with weights).
    private let placeholderShapes: [String: [Int]]
    var stages: [StageKey: Stage] = [:]
    /// The memory plans of the chunk graphs the last `decode` / `encode` call compiled, in order.
    var stagePlansOfLastCall: [MemoryPlan] = []
    private var transfers: [TransferKey: CommandList] = [:]
    private let lock = NSLock()

    /// Wan 2.1's latent mean (16 channels, spec §5.8).
    public static let wan21LatentMean: [Float] = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                                                  0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
    /// Wan 2.1's latent standard deviation (16 channels, spec §5.8).
    public static let wan21LatentStd: [Float] = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                                 3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]

    /// A VAE from f32 weights on `device` in the official names (every tensor of `config.expectedTensors()`,
    /// exact shapes, nothing else). `latentMean`/`latentStd` default to Wan 2.1's constants (z_dim 16 only).
    /// `fp16Compute`: see the property.
    public init(config: WanVAEConfig, weights: [String: Tensor], device: Device,
                latentMean: [Float]? = nil, latentStd: [Float]? = nil, fp16Compute: Bool = false) throws {
        try config.validate()
        let mean = latentMean ?? (config.zDim == 16 ? WanVAE.wan21LatentMean : [])
        let std = latentStd ?? (config.zDim == 16 ? WanVAE.wan21LatentStd : [])
        guard mean.count == config.zDim, std.count == config.zDim else {
            throw RuntimeError.invalidArgument("WanVAE: latent mean/std need \(config.zDim) values each (got \(mean.count), \(std.count))")
        }
        guard std.allSatisfy({ $0 != 0 && $0.isFinite }), mean.allSatisfy(\.isFinite) else {
            throw RuntimeError.invalidArgument("WanVAE: latent std must be finite and non-zero")
        }
        let expected = config.expectedTensors()
        var problems: [String] = []
        let names = Set(expected.map(\.name))
        for spec in expected {
            guard let t = weights[spec.name] else { problems.append("missing \(spec.name)"); continue }
            if t.shape != spec.shape { problems.append("\(spec.name): shape \(t.shape), expected \(spec.shape)") }
            if t.dtype != .f32 { problems.append("\(spec.name): dtype \(t.dtype), expected f32") }
            if t.device !== device { problems.append("\(spec.name): on \(t.device.name), not \(device.name)") }
        }
        for name in weights.keys.sorted() where !names.contains(name) { problems.append("unexpected \(name)") }
        if !problems.isEmpty {
            throw RuntimeError.invalidArgument("WanVAE (\(config)): \(problems.prefix(12).joined(separator: "; "))\(problems.count > 12 ? " (\(problems.count) problems)" : "")")
        }
        self.config = config
        self.device = device
        self.weights = weights
        self.latentMean = mean
        self.latentStd = std
        self.placeholderShapes = [:]
        self.fp16Compute = fp16Compute
    }

    /// A VAE of `config` without weights, for planning memory: its chunk graphs (`decodeFootprints`) declare
    /// every weight as an f32 placeholder; they cannot be compiled, and `decode` / `encode` throw.
    public init(shapeOnly config: WanVAEConfig, device: Device = .cpu()) throws {
        try config.validate()
        self.config = config
        self.device = device
        self.weights = [:]
        self.latentMean = Array(repeating: 0, count: config.zDim)
        self.latentStd = Array(repeating: 1, count: config.zDim)
        self.placeholderShapes = Dictionary(config.expectedTensors().map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        self.fp16Compute = false
    }

    /// Whether the VAE has no weights (`init(shapeOnly:device:)`).
    public var isShapeOnly: Bool { weights.isEmpty && !placeholderShapes.isEmpty }

    /// The shape of weight `name` (a tensor's or a placeholder's), nil when the model has none of that name.
    func weightShape(_ name: String) -> [Int]? { weights[name]?.shape ?? placeholderShapes[name] }

    /// The chunk graph of `key`, built (with its output and cache outputs) but not compiled.
    func graphBuilder(for key: StageKey) throws -> (builder: VAEGraphBuilder, output: Graph.Value) {
        let b = VAEGraphBuilder(vae: self, incoming: key.caches)
        let y: Graph.Value
        if key.decoder {
            let x = try b.g.input("x", shape: [1, config.zDim, 1, key.height, key.width])
            y = try b.decoder(x)
        } else {
            let x = try b.g.input("x", shape: [1, 3, key.frames, key.height, key.width])
            y = try b.encoder(x)
        }
        try b.g.output("y", y)
        return (b, y)
    }

    /// Loads a VAE from a checkpoint in any supported format and naming convention (official, ComfyUI,
    /// diffusers), mapped to official names, onto `device` as f32. `config` nil: detected from the shapes
    /// (Wan 2.1's level structure).
    public static func load(path: String, device: Device, config: WanVAEConfig? = nil,
                            latentMean: [Float]? = nil, latentStd: [Float]? = nil, fp16Compute: Bool = false) throws -> WanVAE {
        let reader = try CheckpointFile.open(path)
        let convention = WanCheckpointDetector.identify(reader.entries, component: .vae)?.convention ?? .official
        let mapping = try WanKeyMaps.toOfficial(reader.entries, component: .vae, from: convention)
        if !mapping.unmapped.isEmpty || !mapping.rejected.isEmpty {
            let list = (mapping.unmapped.map { "unexpected \($0.name)" } + mapping.rejected.map(\.description)).prefix(20)
            throw RuntimeError.invalidArgument("\(reader.path): tensors that do not fit the VAE: \(list.joined(separator: "; "))")
        }
        var shapes: [String: [Int]] = [:]
        for recipe in mapping.recipes { shapes[recipe.name] = recipe.shape }
        let resolved = try config ?? WanVAEConfig.inferred(fromOfficialShapes: shapes)
        var weights: [String: Tensor] = [:]
        for recipe in mapping.recipes {
            let values = try WanDiT.materialize(recipe, reader: reader)
            weights[recipe.name] = try device.tensor(values, shape: recipe.shape, dtype: .f32)
        }
        return try WanVAE(config: resolved, weights: weights, device: device, latentMean: latentMean, latentStd: latentStd,
                          fp16Compute: fp16Compute)
    }

    // MARK: decode

    /// Decodes a normalised latent `[z_dim, frames, h, w]` one latent frame at a time, handing each chunk's
    /// frames to `onFrames(values [3, n, 8h, 8w], n)` as they are ready (1 frame for the first latent frame,
    /// 4 for every later one), clamped to [−1, 1].
    public func decode(latent: [Float], frames: Int, height: Int, width: Int,
                       onFrames: ([Float], Int) throws -> Void) throws {
        try decode(latent: latent, frames: frames, height: height, width: width, clamp: true, onFrames: onFrames)
    }

    /// `decode(latent:frames:height:width:onFrames:)` with the clamp to [−1, 1] optional (tiles are blended
    /// before clamping).
    func decode(latent: [Float], frames: Int, height: Int, width: Int, clamp: Bool,
                onFrames: ([Float], Int) throws -> Void) throws {
        let z = config.zDim
        guard frames > 0, height > 0, width > 0, latent.count == z * frames * height * width else {
            throw RuntimeError.shapeMismatch("WanVAE.decode: latent of \(latent.count) values is not [\(z), \(frames), \(height), \(width)]")
        }
        let plane = height * width
        let inverse = latentStd.map { Float(1) / $0 }
        try withLock {
            stagePlansOfLastCall = []
            defer { releaseStages() }
            var previous: StageKey?
            for t in 0..<frames {
                // De-normalise (spec §5.8: z / (1/std) + mean) this latent frame.
                var chunk = [Float](repeating: 0, count: z * plane)
                for c in 0..<z {
                    let src = (c * frames + t) * plane
                    for i in 0..<plane { chunk[c * plane + i] = latent[src + i] / inverse[c] + latentMean[c] }
                }
                let key = StageKey(decoder: true, frames: 1, height: height, width: width,
                                   caches: try previous.map { try outgoing(of: $0) } ?? [])
                let stage = try advance(from: previous, to: key)
                try stage.graph.setInput("x", chunk)
                try stage.graph.run()
                var out = try device.read(try stage.graph.output("y"))
                if clamp { for i in out.indices { out[i] = min(max(out[i], -1), 1) } }
                try onFrames(out, stage.outputFrames)
                previous = key
            }
        }
    }

    /// Decodes a whole normalised latent `[z_dim, frames, h, w]` to a video `[3, 1 + 4(frames−1), 8h, 8w]`.
    public func decode(latent: [Float], frames: Int, height: Int, width: Int) throws -> [Float] {
        let plane = height * 8 * width * 8
        let total = 1 + 4 * (frames - 1)
        var video = [Float](repeating: 0, count: 3 * max(total, 0) * plane)
        var done = 0
        try decode(latent: latent, frames: frames, height: height, width: width) { values, n in
            for c in 0..<3 {
                for f in 0..<n {
                    let src = (c * n + f) * plane, dst = (c * total + done + f) * plane
                    for i in 0..<plane { video[dst + i] = values[src + i] }
                }
            }
            done += n
        }
        return video
    }

    // MARK: encode

    /// Encodes a video `[3, frames, H, W]` in [−1, 1] (frames = 1 + 4n, H and W multiples of 8) to the
    /// normalised latent mean `[z_dim, 1 + n, H/8, W/8]`: the first frame alone, then 4-frame chunks.
    public func encode(video: [Float], frames: Int, height: Int, width: Int) throws -> [Float] {
        guard frames > 0, (frames - 1) % 4 == 0, height > 0, width > 0, height % 8 == 0, width % 8 == 0,
              video.count == 3 * frames * height * width else {
            throw RuntimeError.shapeMismatch("WanVAE.encode: video of \(video.count) values as [3, \(frames), \(height), \(width)] (frames 1 + 4n, sizes multiples of 8)")
        }
        let z = config.zDim
        let plane = height * width
        let chunks = 1 + (frames - 1) / 4
        let lplane = (height / 8) * (width / 8)
        var latent = [Float](repeating: 0, count: z * chunks * lplane)
        let inverse = latentStd.map { Float(1) / $0 }
        try withLock {
            stagePlansOfLastCall = []
            defer { releaseStages() }
            var previous: StageKey?
            for k in 0..<chunks {
                let start = k == 0 ? 0 : 1 + 4 * (k - 1)
                let n = k == 0 ? 1 : 4
                var chunk = [Float](repeating: 0, count: 3 * n * plane)
                for c in 0..<3 {
                    for f in 0..<n {
                        let src = (c * frames + start + f) * plane, dst = (c * n + f) * plane
                        for i in 0..<plane { chunk[dst + i] = video[src + i] }
                    }
                }
                let key = StageKey(decoder: false, frames: n, height: height, width: width,
                                   caches: try previous.map { try outgoing(of: $0) } ?? [])
                let stage = try advance(from: previous, to: key)
                try stage.graph.setInput("x", chunk)
                try stage.graph.run()
                let mu = try device.read(try stage.graph.output("y"))  // [2z, 1, h, w]
                guard stage.outputFrames == 1, mu.count == 2 * z * lplane else {
                    throw RuntimeError.invalidState("WanVAE.encode: chunk \(k) gave \(stage.outputFrames) latent frames")
                }
                for c in 0..<z {
                    for i in 0..<lplane {
                        latent[(c * chunks + k) * lplane + i] = (mu[c * lplane + i] - latentMean[c]) * inverse[c]
                    }
                }
                previous = key
            }
        }
        return latent
    }

    // MARK: stages (one compiled graph per chunk shape and incoming cache layout)

    /// What a cache slot holds when a chunk starts.
    enum CacheState: Hashable {
        /// Nothing (first chunk).
        case none
        /// The upsample3d "Rep" marker (after its first chunk).
        case rep
        /// A device tensor of this many frames.
        case frames(Int)
    }

    struct StageKey: Hashable {
        var decoder: Bool
        var frames, height, width: Int
        var caches: [CacheState]
    }

    struct TransferKey: Hashable {
        var from, to: StageKey
    }

    struct Stage {
        var graph: CompiledGraph
        var outgoing: [CacheState]
        var outputFrames: Int
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    private func stageFor(_ key: StageKey) throws -> Stage {
        if let s = stages[key] { return s }
        let (b, y) = try graphBuilder(for: key)
        let s = Stage(graph: try b.g.compile(for: device), outgoing: b.outgoing, outputFrames: b.g.shape(y)[2])
        stages[key] = s
        stagePlansOfLastCall.append(s.graph.plan)
        return s
    }

    /// The compiled graph of chunk `key`, with the caches the previous chunk left in its cache inputs. One
    /// chunk graph is alive at a time: when the cache layout changes (the first chunks), the previous graph's
    /// outgoing caches are stashed in host memory, the graph is released, and the caches are written into the
    /// new graph's inputs; in the steady state the graph's own cache outputs are copied into its inputs on the
    /// device.
    private func advance(from previous: StageKey?, to key: StageKey) throws -> Stage {
        guard let previous else { return try stageFor(key) }
        if previous == key {
            try transfer(from: previous, to: key)
            guard let s = stages[key] else { throw RuntimeError.invalidState("WanVAE: missing stage") }
            return s
        }
        var stash: [Int: [UInt8]] = [:]
        do {
            guard let old = stages[previous] else { throw RuntimeError.invalidState("WanVAE: missing stage") }
            for (s, state) in key.caches.enumerated() {
                if case .frames = state { stash[s] = try device.readBytes(try old.graph.output("cache\(s)")) }
            }
        }
        releaseStages()   // the previous graph's memory goes back before the next one is compiled
        let stage = try stageFor(key)
        for (s, bytes) in stash { try device.write(bytes, to: try stage.graph.input("cache\(s)")) }
        return stage
    }

    /// Frees every compiled chunk graph (their arenas and caches); the next chunk compiles again.
    private func releaseStages() {
        stages.removeAll()
        transfers.removeAll()
    }

    /// Copies the caches `from`'s run left into the cache inputs of `to`.
    private func transfer(from: StageKey, to: StageKey) throws {
        let key = TransferKey(from: from, to: to)
        if transfers[key] == nil {
            guard let a = stages[from], let b = stages[to] else { throw RuntimeError.invalidState("WanVAE: missing stage") }
            let list = try CommandList(device: device)
            for (s, state) in to.caches.enumerated() {
                if case .frames = state {
                    try list.copy(try a.graph.output("cache\(s)"), into: try b.graph.input("cache\(s)"))
                }
            }
            transfers[key] = list
        }
        guard let list = transfers[key] else { throw RuntimeError.invalidState("WanVAE: missing cache transfer") }
        try list.run()
    }

    private func outgoing(of key: StageKey) throws -> [CacheState] {
        guard let s = stages[key] else { throw RuntimeError.invalidState("WanVAE: missing stage") }
        return s.outgoing
    }
}

/// Builds one chunk's graph: the layers of spec §5.1–§5.3 with cache slots in execution order (§5.4).
final class VAEGraphBuilder {
    let g = Graph()
    let vae: WanVAE
    let incoming: [WanVAE.CacheState]
    var outgoing: [WanVAE.CacheState] = []
    private var params: [String: Graph.Value] = [:]

    init(vae: WanVAE, incoming: [WanVAE.CacheState]) {
        self.vae = vae
        self.incoming = incoming
        g.fp16Compute = vae.fp16Compute
    }

    /// A weight, optionally viewed with another shape.
    func w(_ name: String, shape: [Int]? = nil) throws -> Graph.Value {
        let key = name + (shape.map { "\($0)" } ?? "")
        if let v = params[key] { return v }
        let v: Graph.Value
        if let t = vae.weights[name] {
            v = g.parameter(name, try shape.map { try t.reshaped($0) } ?? t)
        } else if vae.isShapeOnly, let declared = vae.weightShape(name) {
            let s = shape ?? declared
            guard s.reduce(1, *) == declared.reduce(1, *) else {
                throw RuntimeError.shapeMismatch("WanVAE: weight \(name) \(declared) viewed as \(s)")
            }
            v = try g.placeholder(name, shape: s, dtype: .f32)
        } else {
            throw RuntimeError.invalidArgument("WanVAE: missing weight \(name)")
        }
        params[key] = v
        return v
    }

    /// The next slot's incoming state; registers its outgoing cache.
    private func nextSlot() -> (index: Int, state: WanVAE.CacheState) {
        let s = outgoing.count
        outgoing.append(.none)
        return (s, s < incoming.count ? incoming[s] : .none)
    }

    private func cacheInput(_ s: Int, like x: Graph.Value, frames: Int) throws -> Graph.Value {
        var shape = g.shape(x)
        shape[2] = frames
        return try g.input("cache\(s)", shape: shape)
    }

    private func saveCache(_ s: Int, x: Graph.Value, previous: Graph.Value?, frames: Int) throws {
        let c = try g.vaeNextCache(x, previous: previous, frames: frames)
        try g.output("cache\(s)", c)
        outgoing[s] = .frames(frames)
    }

    /// A kernel-3 CausalConv3d with a cache slot (spec §5.5 rule for kernel-3 convs).
    func causalConv(_ x: Graph.Value, _ name: String, residual: Graph.Value? = nil) throws -> Graph.Value {
        let (s, state) = nextSlot()
        let t = g.shape(x)[2]
        var cache: Graph.Value?
        var previousFrames = 0
        if case let .frames(n) = state {
            cache = try cacheInput(s, like: x, frames: n)
            previousFrames = n
        }
        try saveCache(s, x: x, previous: cache,
                      frames: Conv3DParams.nextCacheFrames(inputFrames: t, previousFrames: previousFrames))
        return try g.conv3d(x, weight: try w(name + ".weight"), bias: try w(name + ".bias"), cache: cache,
                            params: .causal3, residual: residual)
    }

    func pointwise(_ x: Graph.Value, _ name: String, residual: Graph.Value? = nil) throws -> Graph.Value {
        let sw = vae.weightShape(name + ".weight") ?? []
        let shape = sw.count == 4 ? sw + [1] : nil
        return try g.conv3d(x, weight: try w(name + ".weight", shape: shape), bias: try w(name + ".bias"),
                            params: .pointwise, residual: residual)
    }

    func norm(_ x: Graph.Value, _ name: String) throws -> Graph.Value {
        let c = g.shape(x)[1]
        return try g.vaeRMSNorm(x, gamma: try w(name, shape: [c]))
    }

    func residualBlock(_ x: Graph.Value, _ p: String) throws -> Graph.Value {
        let h = vae.weightShape(p + ".shortcut.weight") != nil ? try pointwise(x, p + ".shortcut") : x
        var r = try g.unary(.silu, try norm(x, p + ".residual.0.gamma"))
        r = try causalConv(r, p + ".residual.2")
        r = try g.unary(.silu, try norm(r, p + ".residual.3.gamma"))
        return try causalConv(r, p + ".residual.6", residual: h)
    }

    /// Single-head self-attention within each frame over its H·W positions (spec §5.1).
    func attentionBlock(_ x: Graph.Value, _ p: String) throws -> Graph.Value {
        let s = g.shape(x)
        let (c, t, h, wd) = (s[1], s[2], s[3], s[4])
        let n = try norm(x, p + ".norm.gamma")
        let qkv = try pointwise(n, p + ".to_qkv")  // [1, 3C, T, H, W]
        let tokens = try g.contiguous(try g.permute(qkv, [0, 2, 3, 4, 1]))  // [1, T, H, W, 3C]
        let r = try g.reshape(tokens, [t, h * wd, 3, c])
        func part(_ i: Int) throws -> Graph.Value {
            try g.reshape(try g.slice(r, dim: 2, i..<(i + 1)), [t, h * wd, 1, c])
        }
        let a = try g.attention(q: try part(0), k: try part(1), v: try part(2))  // [T, HW, 1, C]
        let back = try g.contiguous(try g.permute(try g.reshape(a, [1, t, h, wd, c]), [0, 4, 1, 2, 3]))
        return try pointwise(back, p + ".proj", residual: x)
    }

    func middle(_ x: Graph.Value, _ p: String) throws -> Graph.Value {
        var y = try residualBlock(x, p + ".middle.0")
        y = try attentionBlock(y, p + ".middle.1")
        return try residualBlock(y, p + ".middle.2")
    }

    /// Nearest ×2 in height and width ("nearest-exact": out (i, j) ← in (i/2, j/2)).
    func upsampleNearest(_ x: Graph.Value) throws -> Graph.Value {
        let s = g.shape(x)
        let rows = s[0] * s[1] * s[2] * s[3]
        let a = try g.reshape(x, [rows, s[4], 1])
        let wide = try g.concat([a, a], dim: 2)  // [rows, W, 2]
        let b = try g.reshape(wide, [rows, 1, 2 * s[4]])
        let tall = try g.concat([b, b], dim: 1)  // [rows, 2, 2W]
        return try g.reshape(tall, [s[0], s[1], s[2], 2 * s[3], 2 * s[4]])
    }

    func upsample(_ x: Graph.Value, _ p: String, temporal: Bool) throws -> Graph.Value {
        var y = x
        if temporal {
            let (s, state) = nextSlot()
            let sh = g.shape(x)
            let t = sh[2]
            var conv: Graph.Value?
            switch state {
            case .none:
                outgoing[s] = .rep
            case .rep:
                // Ordinary zero padding; the cache left is the last 2 frames ([zeros, x] ≡ [x] for 1 frame).
                try saveCache(s, x: x, previous: nil, frames: min(2, t))
                conv = try g.conv3d(x, weight: try w(p + ".time_conv.weight"), bias: try w(p + ".time_conv.bias"),
                                    params: .upsampleTime)
            case let .frames(n):
                let cache = try cacheInput(s, like: x, frames: n)
                try saveCache(s, x: x, previous: cache, frames: Conv3DParams.nextCacheFrames(inputFrames: t, previousFrames: n))
                conv = try g.conv3d(x, weight: try w(p + ".time_conv.weight"), bias: try w(p + ".time_conv.bias"),
                                    cache: cache, params: .upsampleTime)
            }
            if let conv {
                // [1, 2C, T, H, W] → frames 2τ (channels [0, C)) and 2τ+1 (channels [C, 2C)).
                let c = sh[1]
                let six = try g.reshape(conv, [1, 2, c, t, sh[3], sh[4]])
                let inter = try g.contiguous(try g.permute(six, [0, 2, 3, 1, 4, 5]))
                y = try g.reshape(inter, [1, c, 2 * t, sh[3], sh[4]])
            }
        }
        let up = try upsampleNearest(y)
        let sw = vae.weightShape(p + ".resample.1.weight") ?? []
        return try g.conv3d(up, weight: try w(p + ".resample.1.weight", shape: sw.count == 4 ? [sw[0], sw[1], 1, sw[2], sw[3]] : nil),
                            bias: try w(p + ".resample.1.bias"), params: .upsampleSpatial)
    }

    func downsample(_ x: Graph.Value, _ p: String, temporal: Bool) throws -> Graph.Value {
        let sw = vae.weightShape(p + ".resample.1.weight") ?? []
        let y = try g.conv3d(x, weight: try w(p + ".resample.1.weight", shape: sw.count == 4 ? [sw[0], sw[1], 1, sw[2], sw[3]] : nil),
                             bias: try w(p + ".resample.1.bias"), params: .downsampleSpatial)
        guard temporal else { return y }
        let (s, state) = nextSlot()
        switch state {
        case .frames(1):
            let cache = try cacheInput(s, like: y, frames: 1)
            try saveCache(s, x: y, previous: nil, frames: 1)
            return try g.conv3d(y, weight: try w(p + ".time_conv.weight"), bias: try w(p + ".time_conv.bias"),
                                cache: cache, params: .downsampleTime)
        case .none:
            // First chunk: no temporal conv; only the last frame is ever used as context.
            try saveCache(s, x: y, previous: nil, frames: 1)
            return y
        default:
            throw RuntimeError.invalidState("WanVAE: downsample3d cache \(state)")
        }
    }

    func decoder(_ z: Graph.Value) throws -> Graph.Value {
        let cfg = vae.config
        var x = try pointwise(z, "conv2")
        x = try causalConv(x, "decoder.conv1")
        x = try middle(x, "decoder")
        let temporal = Array(cfg.temporalDownsample.reversed())
        var index = 0
        let levels = cfg.dimMult.count
        for level in 0..<levels {
            for _ in 0..<(cfg.numResBlocks + 1) {
                x = try residualBlock(x, "decoder.upsamples.\(index)")
                index += 1
            }
            if level != levels - 1 {
                x = try upsample(x, "decoder.upsamples.\(index)", temporal: temporal.indices.contains(level) && temporal[level])
                index += 1
            }
        }
        x = try g.unary(.silu, try norm(x, "decoder.head.0.gamma"))
        return try causalConv(x, "decoder.head.2")
    }

    func encoder(_ video: Graph.Value) throws -> Graph.Value {
        let cfg = vae.config
        var x = try causalConv(video, "encoder.conv1")
        var index = 0
        let levels = cfg.dimMult.count
        for level in 0..<levels {
            for _ in 0..<cfg.numResBlocks {
                x = try residualBlock(x, "encoder.downsamples.\(index)")
                index += 1
            }
            if level != levels - 1 {
                let temporal = cfg.temporalDownsample.indices.contains(level) && cfg.temporalDownsample[level]
                x = try downsample(x, "encoder.downsamples.\(index)", temporal: temporal)
                index += 1
            }
        }
        x = try middle(x, "encoder")
        x = try g.unary(.silu, try norm(x, "encoder.head.0.gamma"))
        x = try causalConv(x, "encoder.head.2")
        return try pointwise(x, "conv1")
    }
}

extension Graph {
    /// The VAE's `RMS_norm` over the channel axis 1: x / max(‖x‖₂, 1e-12) · √C · γ (γ has C elements).
    func vaeRMSNorm(_ x: Value, gamma: Value) throws -> Value {
        try op("rmsNorm(l2)", inputs: [x, gamma], outputs: [(shape(x), dtype(x))]) { cl, ts, outs in
            try cl.rmsNorm(ts[0], weight: ts[1], eps: 1e-12, out: outs[0], axis: 1, style: .l2Clamped)
        }[0]
    }

    /// The last `frames` frames of cat(previous, x) along time (the next chunk's cache, spec §5.5).
    func vaeNextCache(_ x: Value, previous: Value?, frames: Int) throws -> Value {
        var s = shape(x)
        s[2] = frames
        let ins = [x] + (previous.map { [$0] } ?? [])
        return try op("conv3dNextCache", inputs: ins, outputs: [(s, dtype(x))]) { cl, ts, outs in
            try cl.conv3dNextCache(ts[0], previous: ts.count > 1 ? ts[1] : nil, out: outs[0])
        }[0]
    }
}
