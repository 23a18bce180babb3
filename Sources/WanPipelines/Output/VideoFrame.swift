/// One 8-bit RGB image: `width × height` pixels, row-major from the top-left, three interleaved bytes (R, G, B)
/// per pixel.
public struct VideoFrame: Sendable, Equatable {
    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// `width · height · 3` bytes: R, G, B of each pixel, rows top to bottom.
    public let rgb: [UInt8]

    /// A frame from its pixels; throws `OutputError.invalidArgument` when the sizes and the byte count disagree.
    public init(width: Int, height: Int, rgb: [UInt8]) throws {
        let count = try VideoFrame.byteCount(width: width, height: height, channels: 3)
        guard rgb.count == count else {
            throw OutputError.invalidArgument("a \(width)x\(height) RGB frame needs \(count) bytes, got \(rgb.count)")
        }
        self.width = width
        self.height = height
        self.rgb = rgb
    }

    /// Unchecked initialiser for callers that built `rgb` with exactly `width · height · 3` bytes.
    init(uncheckedWidth width: Int, height: Int, rgb: [UInt8]) {
        self.width = width
        self.height = height
        self.rgb = rgb
    }

    /// The (R, G, B) bytes of pixel (`x`, `y`), or nil outside the frame.
    public func pixel(x: Int, y: Int) -> (r: UInt8, g: UInt8, b: UInt8)? {
        guard x >= 0, x < width, y >= 0, y < height else { return nil }
        let i = (y * width + x) * 3
        return (rgb[i], rgb[i + 1], rgb[i + 2])
    }

    /// `width · height · channels`, checking that sizes are positive and the product does not overflow.
    static func byteCount(width: Int, height: Int, channels: Int) throws -> Int {
        guard width > 0, height > 0 else {
            throw OutputError.invalidArgument("image size \(width)x\(height) must be positive")
        }
        let (wh, o1) = width.multipliedReportingOverflow(by: height)
        let (n, o2) = wh.multipliedReportingOverflow(by: channels)
        guard !o1, !o2, n <= Int(Int32.max) * 4 else {
            throw OutputError.invalidArgument("image size \(width)x\(height) is too large")
        }
        return n
    }
}

/// How decoded values in [0, 1] become bytes, following Wan's official saving code (spec §1.2 step 7).
public enum PixelQuantization: Sendable, Equatable {
    /// `⌊255·v⌋`: videos (`cache_video`: `(tensor * 255).type(torch.uint8)`).
    case truncate
    /// `⌊255·v + 0.5⌋`: single images (torchvision `save_image`, used for T2I).
    case round
}

extension VideoFrame {
    /// The byte for one decoded value `x` (nominally in [−1, 1]), computed in fp32 exactly as the official code
    /// does: `v = (clamp(x, −1, 1) + 1) / 2`, then `⌊255·v⌋` (`.truncate`) or `⌊min(255·v + 0.5, 255)⌋`
    /// (`.round`). NaN becomes 0.
    @inlinable
    public static func quantize(_ x: Float, _ quantization: PixelQuantization) -> UInt8 {
        guard !x.isNaN else { return 0 }
        let v = (min(max(x, -1), 1) + 1) / 2
        let scaled = v * 255
        switch quantization {
        case .truncate:
            return UInt8(min(scaled, 255))
        case .round:
            let r = scaled + 0.5
            return UInt8(min(r, 255))
        }
    }

    /// Frame `t` of a decoded video of shape `[3, T, H, W]`, or the image of shape `[3, H, W]` (then `t` must
    /// be 0), from its fp32 values in [−1, 1] (the VAE's output, read back to the host), quantised per `quantization`.
    public init(decoded values: [Float], shape: [Int], frame t: Int = 0,
                quantization: PixelQuantization = .truncate) throws {
        let (frames, h, w) = try VideoFrame.decodedLayout(shape: shape, count: values.count)
        guard t >= 0, t < frames else {
            throw OutputError.invalidArgument("frame \(t) is outside the \(frames) decoded frame(s)")
        }
        let plane = h * w
        let channelStride = frames * plane
        let base = t * plane
        let rgb = [UInt8](unsafeUninitializedCapacity: plane * 3) { out, initialized in
            values.withUnsafeBufferPointer { src in
                for c in 0..<3 {
                    let p = src.baseAddress! + c * channelStride + base
                    for i in 0..<plane {
                        out[i * 3 + c] = VideoFrame.quantize(p[i], quantization)
                    }
                }
            }
            initialized = plane * 3
        }
        self.init(uncheckedWidth: w, height: h, rgb: rgb)
    }

    /// Every frame of a decoded video `[3, T, H, W]` (or the image `[3, H, W]`), in order.
    public static func frames(decoded values: [Float], shape: [Int],
                              quantization: PixelQuantization = .truncate) throws -> [VideoFrame] {
        let (frames, _, _) = try decodedLayout(shape: shape, count: values.count)
        return try (0..<frames).map { try VideoFrame(decoded: values, shape: shape, frame: $0, quantization: quantization) }
    }

    /// (frames, height, width) of a `[3, T, H, W]` or `[3, H, W]` shape holding `count` values.
    static func decodedLayout(shape: [Int], count: Int) throws -> (Int, Int, Int) {
        let frames: Int, h: Int, w: Int
        switch shape.count {
        case 4: (frames, h, w) = (shape[1], shape[2], shape[3])
        case 3: (frames, h, w) = (1, shape[1], shape[2])
        default:
            throw OutputError.invalidArgument("decoded video shape \(shape) must be [3, T, H, W] or [3, H, W]")
        }
        guard shape[0] == 3 else {
            throw OutputError.invalidArgument("decoded video shape \(shape) must have 3 channels first")
        }
        guard frames > 0 else { throw OutputError.invalidArgument("decoded video shape \(shape) has no frames") }
        let perFrame = try byteCount(width: w, height: h, channels: 3)
        let (total, overflow) = perFrame.multipliedReportingOverflow(by: frames)
        guard !overflow, total == count else {
            throw OutputError.invalidArgument("decoded video shape \(shape) does not match \(count) values")
        }
        return (frames, h, w)
    }
}
