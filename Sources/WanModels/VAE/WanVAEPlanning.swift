import WanGraph
import WanRuntime

extension WanVAE {
    /// Bytes of the weights of `config` as `WanVAE` holds them: every tensor of `expectedTensors()` in f32
    /// (encoder included, as the loader keeps it). Exact.
    public static func weightBytes(config: WanVAEConfig) -> Int {
        config.expectedTensors().reduce(0) { $0 + $1.shape.reduce(1, *) * DType.f32.size }
    }

    /// The device memory of each chunk graph `decode` compiles for a latent of `frames` × `height` × `width`, in
    /// the order it first needs them (the first latent frame, then each new cache layout until it repeats);
    /// `decode` keeps one alive at a time (caches carried through host memory when the layout changes), so the
    /// largest one, with the weights, is the decode's device memory. Planned
    /// without compiling or allocating (weights are parameters, or placeholders for a shape-only VAE).
    public func decodeFootprints(frames: Int, height: Int, width: Int, maxArenaBytes: Int = Int.max) throws -> [GraphFootprint] {
        guard frames > 0, height > 0, width > 0 else {
            throw RuntimeError.invalidArgument("WanVAE.decodeFootprints: latent \(frames)×\(height)×\(width)")
        }
        var seen = Set<StageKey>()
        var result: [GraphFootprint] = []
        var caches: [CacheState] = []
        for _ in 0..<frames {
            let key = StageKey(decoder: true, frames: 1, height: height, width: width, caches: caches)
            guard seen.insert(key).inserted else { break }
            let (b, _) = try graphBuilder(for: key)
            result.append(try b.g.footprint(maxArenaBytes: maxArenaBytes))
            caches = b.outgoing
        }
        return result
    }

    /// The device memory of a tiled decode: tiles of `tile` latent pixels with origins every `stride` (smaller at the
    /// right and bottom edges), each decoded frame by frame by `decode` (one chunk graph alive at a time, freed
    /// after each tile). Returns the chunk graphs of every distinct tile size, in the order the tiles first need
    /// them (row-major). Throws unless 0 < stride ≤ tile.
    public func tiledDecodeFootprints(frames: Int, height: Int, width: Int, tile: Int, stride: Int,
                                      maxArenaBytes: Int = Int.max) throws -> [GraphFootprint] {
        guard stride > 0, tile >= stride else {
            throw RuntimeError.invalidArgument("VAE tiling: need 0 < stride ≤ tile, got tile \(tile), stride \(stride)")
        }
        guard height > 0, width > 0 else { throw RuntimeError.invalidArgument("WanVAE.tiledDecodeFootprints: latent \(height)×\(width)") }
        var sizes: [[Int]] = []
        for i in Swift.stride(from: 0, to: height, by: stride) {
            for j in Swift.stride(from: 0, to: width, by: stride) {
                let size = [min(tile, height - i), min(tile, width - j)]
                if !sizes.contains(size) { sizes.append(size) }
            }
        }
        return try sizes.flatMap { try decodeFootprints(frames: frames, height: $0[0], width: $0[1], maxArenaBytes: maxArenaBytes) }
    }
}

extension WanVAE {
    /// The memory plans of the chunk graphs the last `decode` / `encode` call compiled (one alive at a time),
    /// largest first, to check `decodeFootprints` against.
    public var compiledStagePlans: [MemoryPlan] {
        withLock { stagePlansOfLastCall.sorted { $0.totalBytes > $1.totalBytes } }
    }
}
