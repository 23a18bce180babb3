import WanRuntime

extension WanVAE {
    /// Spatial tiles of a tiled decode, in latent pixels (one latent pixel is 8×8 video pixels).
    public struct Tiling: Sendable, Equatable, CustomStringConvertible {
        /// Side of a tile (edge tiles may be smaller).
        public var tile: Int
        /// Distance between tile origins; `tile − stride` latent pixels of each tile overlap the next.
        public var stride: Int

        /// diffusers' defaults: 256-pixel tiles every 192 pixels (64 pixels blended).
        public static let standard = Tiling(tile: 32, stride: 24)

        public init(tile: Int, stride: Int) {
            self.tile = tile
            self.stride = stride
        }

        public var description: String { "tiles of \(tile * 8) px every \(stride * 8) px" }

        /// Throws `RuntimeError.invalidArgument` unless 0 < stride ≤ tile.
        public func validate() throws {
            guard stride > 0, tile >= stride else {
                throw RuntimeError.invalidArgument("VAE tiling: need 0 < stride ≤ tile, got tile \(tile), stride \(stride)")
            }
        }
    }

    /// Decodes a normalised latent `[z_dim, frames, h, w]` in spatial tiles, as diffusers'
    /// `AutoencoderKLWan.tiled_decode` (a plain decode when one tile holds the whole latent): each tile (origins every `stride` latent pixels down and across, `tile`
    /// pixels wide, smaller at the right and bottom edges) is decoded through every frame with its own causal
    /// caches; then, tile by tile in row-major order, a tile's top `8·(tile − stride)` rows are blended
    /// linearly with the bottom rows of the (already blended) tile above, its left columns with the right
    /// columns of the (already blended) tile to its left, it is cropped to its first `8·stride` rows and
    /// columns, and the mosaic is cropped to `8h × 8w` and clamped to [−1, 1]. Device memory is that of one
    /// tile's decode; the video `[3, 1 + 4(frames − 1), 8h, 8w]` is assembled on the host.
    public func decodeTiled(latent: [Float], frames: Int, height: Int, width: Int, tiling: Tiling = .standard) throws -> [Float] {
        try tiling.validate()
        let z = config.zDim
        guard frames > 0, height > 0, width > 0, latent.count == z * frames * height * width else {
            throw RuntimeError.shapeMismatch("WanVAE.decodeTiled: latent of \(latent.count) values is not [\(z), \(frames), \(height), \(width)]")
        }
        // One tile holds it all: a plain decode, as diffusers does.
        if height <= tiling.tile && width <= tiling.tile {
            return try decode(latent: latent, frames: frames, height: height, width: width)
        }
        let outFrames = 1 + 4 * (frames - 1)
        // Decode every tile (unclamped), row by row.
        var rows: [[Tile]] = []
        for i in Swift.stride(from: 0, to: height, by: tiling.stride) {
            var row: [Tile] = []
            for j in Swift.stride(from: 0, to: width, by: tiling.stride) {
                let th = min(tiling.tile, height - i), tw = min(tiling.tile, width - j)
                var crop = [Float](repeating: 0, count: z * frames * th * tw)
                for c in 0..<z {
                    for t in 0..<frames {
                        for y in 0..<th {
                            let src = ((c * frames + t) * height + i + y) * width + j
                            let dst = ((c * frames + t) * th + y) * tw
                            for x in 0..<tw { crop[dst + x] = latent[src + x] }
                        }
                    }
                }
                var tile = Tile(frames: outFrames, height: 8 * th, width: 8 * tw)
                var done = 0
                try decode(latent: crop, frames: frames, height: th, width: tw, clamp: false) { values, n in
                    let plane = tile.height * tile.width
                    for c in 0..<3 {
                        for f in 0..<n {
                            let src = (c * n + f) * plane, dst = (c * outFrames + done + f) * plane
                            for p in 0..<plane { tile.values[dst + p] = values[src + p] }
                        }
                    }
                    done += n
                }
                row.append(tile)
            }
            rows.append(row)
        }
        // Blend in place (later neighbours see blended tiles), crop, assemble.
        let blend = 8 * (tiling.tile - tiling.stride), keep = 8 * tiling.stride
        let (outH, outW) = (8 * height, 8 * width)
        var video = [Float](repeating: 0, count: 3 * outFrames * outH * outW)
        for i in rows.indices {
            for j in rows[i].indices {
                if i > 0 { WanVAE.blendVertical(rows[i - 1][j], &rows[i][j], extent: blend) }
                if j > 0 { WanVAE.blendHorizontal(rows[i][j - 1], &rows[i][j], extent: blend) }
                let tile = rows[i][j]
                let (y0, x0) = (i * keep, j * keep)
                let h = min(keep, tile.height, outH - y0), w = min(keep, tile.width, outW - x0)
                guard h > 0, w > 0 else { continue }
                for cf in 0..<(3 * outFrames) {
                    for y in 0..<h {
                        let src = (cf * tile.height + y) * tile.width
                        let dst = (cf * outH + y0 + y) * outW + x0
                        for x in 0..<w { video[dst + x] = min(max(tile.values[src + x], -1), 1) }
                    }
                }
            }
        }
        return video
    }

    /// One decoded tile `[3, frames, height, width]`.
    struct Tile {
        var frames, height, width: Int
        var values: [Float]

        init(frames: Int, height: Int, width: Int) {
            (self.frames, self.height, self.width) = (frames, height, width)
            values = [Float](repeating: 0, count: 3 * frames * height * width)
        }
    }

    /// diffusers' `blend_v`: b's first rows fade in from a's last rows over min(a.h, b.h, extent) rows,
    /// weights `1 − y/e` and `y/e` (computed in double, applied in fp32).
    static func blendVertical(_ a: Tile, _ b: inout Tile, extent: Int) {
        let e = min(a.height, b.height, extent)
        guard e > 0, a.width == b.width else { return }
        for y in 0..<e {
            let wa = Float(1 - Double(y) / Double(e)), wb = Float(Double(y) / Double(e))
            for cf in 0..<(3 * b.frames) {
                let ra = (cf * a.height + a.height - e + y) * a.width, rb = (cf * b.height + y) * b.width
                for x in 0..<b.width { b.values[rb + x] = a.values[ra + x] * wa + b.values[rb + x] * wb }
            }
        }
    }

    /// diffusers' `blend_h`: b's first columns fade in from a's last columns over min(a.w, b.w, extent) columns.
    static func blendHorizontal(_ a: Tile, _ b: inout Tile, extent: Int) {
        let e = min(a.width, b.width, extent)
        guard e > 0, a.height == b.height else { return }
        for x in 0..<e {
            let wa = Float(1 - Double(x) / Double(e)), wb = Float(Double(x) / Double(e))
            for cf in 0..<(3 * b.frames) {
                for y in 0..<b.height {
                    let ra = (cf * a.height + y) * a.width + a.width - e, rb = (cf * b.height + y) * b.width
                    b.values[rb + x] = a.values[ra + x] * wa + b.values[rb + x] * wb
                }
            }
        }
    }
}
