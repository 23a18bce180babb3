import WanRuntime

/// Wan-VAE (`WanVAE_`) hyper-parameters in the official names (spec §2.2, §5).
public struct WanVAEConfig: Sendable, Hashable, CustomStringConvertible {
    /// Base width `dim` (96).
    public var dim: Int
    /// Latent channels `z_dim` (16; the encoder emits 2·z_dim).
    public var zDim: Int
    /// `dim_mult` (4 entries: the decoder hard-codes the channel halving at levels 1–3).
    public var dimMult: [Int]
    /// `num_res_blocks` per encoder level (the decoder has one more per level).
    public var numResBlocks: Int
    /// `temperal_downsample` per encoder level transition (3 entries); the decoder uses the reverse.
    public var temporalDownsample: [Bool]

    public init(dim: Int = 96, zDim: Int = 16, dimMult: [Int] = [1, 2, 4, 4], numResBlocks: Int = 2,
                temporalDownsample: [Bool] = [false, true, true]) {
        self.dim = dim
        self.zDim = zDim
        self.dimMult = dimMult
        self.numResBlocks = numResBlocks
        self.temporalDownsample = temporalDownsample
    }

    /// The released Wan 2.1 VAE (`Wan2.1_VAE.pth`).
    public static let wan21 = WanVAEConfig()

    /// Encoder widths `[dim·1] + dim·dim_mult` (96, 96, 192, 384, 384).
    public var encoderWidths: [Int] { ([1] + dimMult).map { dim * $0 } }
    /// Decoder widths `dim·[dim_mult.last] + dim·reversed(dim_mult)` (384, 384, 384, 192, 96).
    public var decoderWidths: [Int] { ([dimMult.last ?? 1] + dimMult.reversed()).map { dim * $0 } }

    /// Checks the structure the official classes assume; throws `RuntimeError.invalidArgument`.
    public func validate() throws {
        func fail(_ s: String) throws -> Never { throw RuntimeError.invalidArgument("VAE config \(self): \(s)") }
        if dim <= 0 || zDim <= 0 { try fail("dim and z_dim must be positive") }
        if dimMult.count != 4 || dimMult.contains(where: { $0 <= 0 }) { try fail("dim_mult must have 4 positive entries") }
        if numResBlocks <= 0 { try fail("num_res_blocks must be positive") }
        if temporalDownsample.count != dimMult.count - 1 { try fail("temperal_downsample needs \(dimMult.count - 1) entries") }
        if decoderWidths.dropFirst().contains(where: { $0 % 2 != 0 }) { try fail("decoder widths must be even (upsampling halves them)") }
    }

    /// Every tensor, official names and exact shapes, in `state_dict` order (spec §4.3).
    public func expectedTensors() -> [TensorSpec] {
        var t: [TensorSpec] = []
        func add(_ name: String, _ shape: [Int]) { t.append(TensorSpec(name: name, shape: shape)) }
        func conv(_ name: String, _ outputs: Int, _ inputs: Int, _ kernel: [Int]) {
            add(name + ".weight", [outputs, inputs] + kernel)
            add(name + ".bias", [outputs])
        }
        func residual(_ p: String, _ i: Int, _ o: Int) {
            add(p + ".residual.0.gamma", [i, 1, 1, 1])
            conv(p + ".residual.2", o, i, [3, 3, 3])
            add(p + ".residual.3.gamma", [o, 1, 1, 1])
            conv(p + ".residual.6", o, o, [3, 3, 3])
            if i != o { conv(p + ".shortcut", o, i, [1, 1, 1]) }
        }
        func attention(_ p: String, _ c: Int) {
            add(p + ".norm.gamma", [c, 1, 1])
            conv(p + ".to_qkv", 3 * c, c, [1, 1])
            conv(p + ".proj", c, c, [1, 1])
        }
        func middle(_ p: String, _ c: Int) {
            residual(p + ".middle.0", c, c)
            attention(p + ".middle.1", c)
            residual(p + ".middle.2", c, c)
        }
        let levels = dimMult.count
        // Encoder3d (z_dim·2 outputs).
        let enc = encoderWidths
        conv("encoder.conv1", enc[0], 3, [3, 3, 3])
        var index = 0
        for level in 0..<levels {
            var inputs = enc[level]
            let outputs = enc[level + 1]
            for _ in 0..<numResBlocks {
                residual("encoder.downsamples.\(index)", inputs, outputs)
                index += 1
                inputs = outputs
            }
            if level != levels - 1 {
                let p = "encoder.downsamples.\(index)"
                conv(p + ".resample.1", outputs, outputs, [3, 3])
                if temporalDownsample.indices.contains(level) && temporalDownsample[level] {
                    conv(p + ".time_conv", outputs, outputs, [3, 1, 1])
                }
                index += 1
            }
        }
        let top = enc[levels]
        middle("encoder", top)
        add("encoder.head.0.gamma", [top, 1, 1, 1])
        conv("encoder.head.2", 2 * zDim, top, [3, 3, 3])
        conv("conv1", 2 * zDim, 2 * zDim, [1, 1, 1])
        conv("conv2", zDim, zDim, [1, 1, 1])
        // Decoder3d.
        let dec = decoderWidths
        let temporalUpsample = Array(temporalDownsample.reversed())
        conv("decoder.conv1", dec[0], zDim, [3, 3, 3])
        middle("decoder", dec[0])
        index = 0
        var outputs = dec[0]
        for level in 0..<levels {
            var inputs = level == 0 ? dec[level] : dec[level] / 2
            outputs = dec[level + 1]
            for _ in 0..<(numResBlocks + 1) {
                residual("decoder.upsamples.\(index)", inputs, outputs)
                index += 1
                inputs = outputs
            }
            if level != levels - 1 {
                let p = "decoder.upsamples.\(index)"
                conv(p + ".resample.1", outputs / 2, outputs, [3, 3])
                if temporalUpsample.indices.contains(level) && temporalUpsample[level] {
                    conv(p + ".time_conv", 2 * outputs, outputs, [3, 1, 1])
                }
                index += 1
            }
        }
        add("decoder.head.0.gamma", [outputs, 1, 1, 1])
        conv("decoder.head.2", 3, outputs, [3, 3, 3])
        return t
    }

    /// `expectedTensors()` as entries of one dtype.
    public func expectedEntries(dtype: CheckpointDType = .f32) -> [TensorEntry] {
        expectedTensors().map { TensorEntry(name: $0.name, dtype: dtype, shape: $0.shape) }
    }

    /// Reads `dim` and `z_dim` from official names → shapes, and the level structure (`dim_mult`,
    /// `num_res_blocks`, temporal downsampling) from the encoder's blocks: residual blocks per level, the
    /// resample blocks between levels and which of them have a `time_conv`. Without encoder blocks (a
    /// decoder-only file) the structure is Wan 2.1's (`dim_mult` [1, 2, 4, 4], 2 residual blocks, [F, T, T]).
    public static func inferred(fromOfficialShapes shapes: [String: [Int]]) throws -> WanVAEConfig {
        func first(_ names: [(String, Int, Int)]) -> Int? {
            for (name, rank, axis) in names { if let s = shapes[name], s.count == rank { return s[axis] } }
            return nil
        }
        guard let dim = first([("encoder.conv1.weight", 5, 0), ("encoder.conv1.bias", 1, 0),
                               ("decoder.head.2.weight", 5, 1), ("decoder.head.0.gamma", 4, 0)]) else {
            throw RuntimeError.invalidArgument("cannot read the VAE width: encoder.conv1 and decoder.head are missing")
        }
        guard let zDim = first([("conv2.weight", 5, 0), ("conv2.bias", 1, 0), ("decoder.conv1.weight", 5, 1)])
            ?? first([("conv1.weight", 5, 0)]).map({ $0 / 2 }) else {
            throw RuntimeError.invalidArgument("cannot read z_dim: conv1, conv2 and decoder.conv1 are missing")
        }
        // The encoder's blocks in order: residual blocks (their output width) and resamples (temporal or not).
        var levelWidths: [[Int]] = [[]]
        var temporal: [Bool] = []
        var i = 0
        while true {
            let p = "encoder.downsamples.\(i)"
            if let w = shapes[p + ".residual.2.weight"], w.count == 5 {
                levelWidths[levelWidths.count - 1].append(w[0])
            } else if shapes[p + ".resample.1.weight"] != nil {
                temporal.append(shapes[p + ".time_conv.weight"] != nil)
                levelWidths.append([])
            } else {
                break
            }
            i += 1
        }
        guard i > 0 else { return WanVAEConfig(dim: dim, zDim: zDim) }
        let blocks = levelWidths.map(\.count)
        guard let numResBlocks = blocks.first, numResBlocks > 0, blocks.allSatisfy({ $0 == numResBlocks }),
              levelWidths.allSatisfy({ Set($0).count == 1 }) else {
            throw RuntimeError.invalidArgument("VAE encoder levels of uneven structure: \(levelWidths) residual block widths per level")
        }
        let widths = levelWidths.map { $0[0] }
        guard widths.allSatisfy({ $0 % dim == 0 }) else {
            throw RuntimeError.invalidArgument("VAE encoder widths \(widths) are not multiples of dim \(dim)")
        }
        return WanVAEConfig(dim: dim, zDim: zDim, dimMult: widths.map { $0 / dim }, numResBlocks: numResBlocks,
                            temporalDownsample: temporal)
    }

    public var description: String {
        "dim \(dim), z_dim \(zDim), dim_mult \(dimMult), num_res_blocks \(numResBlocks), temperal_downsample \(temporalDownsample)"
    }
}
