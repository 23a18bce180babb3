import Foundation

/// Chroma subsampling of YUV output.
public enum Y4MChroma: Sendable, Equatable {
    /// 4:2:0, chroma sited at the centre of each 2×2 block (`C420jpeg`, what H.264 yuv420p encoders expect).
    case c420
    /// 4:4:4, no subsampling (`C444`).
    case c444
}

/// The value range of YUV output (both with BT.601 coefficients).
public enum YUVRange: Sendable, Equatable {
    /// "TV" range: Y in 16...235, Cb/Cr in 16...240 (the usual range of video files).
    case limited
    /// "PC"/JPEG range: Y, Cb, Cr in 0...255.
    case full
}

/// RGB → Y′CbCr with the BT.601 matrix.
///
/// Limited range: `Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255`, `Cb = 128 + (−37.797 R − 74.203 G + 112 B)/255`,
/// `Cr = 128 + (112 R − 93.786 G − 18.214 B)/255`. Full range (JFIF): `Y = 0.299 R + 0.587 G + 0.114 B`,
/// `Cb = 128 − 0.168736 R − 0.331264 G + 0.5 B`, `Cr = 128 + 0.5 R − 0.418688 G − 0.081312 B`. Computed in
/// Float64, rounded to nearest (ties away from zero) and clamped to 0...255. With 4:2:0, each chroma sample is
/// the rounded mean of the unrounded chroma of the (up to four) pixels of its 2×2 block; odd sizes give
/// `⌈W/2⌉ × ⌈H/2⌉` chroma planes whose edge blocks average the pixels present.
public enum YUV {
    @inline(__always)
    static func components(_ r: Double, _ g: Double, _ b: Double, _ range: YUVRange) -> (Double, Double, Double) {
        switch range {
        case .limited:
            return (16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255,
                    128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255,
                    128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255)
        case .full:
            return (0.299 * r + 0.587 * g + 0.114 * b,
                    128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                    128 + 0.5 * r - 0.418688 * g - 0.081312 * b)
        }
    }

    @inline(__always)
    static func byte(_ v: Double) -> UInt8 {
        UInt8(min(max(v.rounded(), 0), 255))
    }

    /// The (Y, Cb, Cr) bytes of one RGB pixel.
    public static func pixel(r: UInt8, g: UInt8, b: UInt8, range: YUVRange) -> (y: UInt8, cb: UInt8, cr: UInt8) {
        let (y, cb, cr) = components(Double(r), Double(g), Double(b), range)
        return (byte(y), byte(cb), byte(cr))
    }

    /// The planar Y, Cb, Cr bytes of a frame (Y plane, then Cb, then Cr), as one Y4M frame holds them.
    public static func planes(_ frame: VideoFrame, chroma: Y4MChroma, range: YUVRange) -> [UInt8] {
        let w = frame.width, h = frame.height
        let cw = chroma == .c420 ? (w + 1) / 2 : w
        let ch = chroma == .c420 ? (h + 1) / 2 : h
        let lumaCount = w * h, chromaCount = cw * ch
        var out = [UInt8](repeating: 0, count: lumaCount + 2 * chromaCount)
        // Unrounded chroma per pixel, needed for 4:2:0 averaging.
        var cbRow = [Double](repeating: 0, count: w * 2)
        var crRow = [Double](repeating: 0, count: w * 2)
        frame.rgb.withUnsafeBufferPointer { rgb in
            out.withUnsafeMutableBufferPointer { o in
                let yPlane = o.baseAddress!
                let cbPlane = yPlane + lumaCount
                let crPlane = cbPlane + chromaCount
                switch chroma {
                case .c444:
                    for i in 0..<lumaCount {
                        let (y, cb, cr) = components(Double(rgb[3 * i]), Double(rgb[3 * i + 1]), Double(rgb[3 * i + 2]), range)
                        yPlane[i] = byte(y)
                        cbPlane[i] = byte(cb)
                        crPlane[i] = byte(cr)
                    }
                case .c420:
                    var row = 0
                    while row < h {
                        let rows = min(2, h - row)
                        for dy in 0..<rows {
                            for x in 0..<w {
                                let i = (row + dy) * w + x
                                let (y, cb, cr) = components(Double(rgb[3 * i]), Double(rgb[3 * i + 1]), Double(rgb[3 * i + 2]), range)
                                yPlane[i] = byte(y)
                                cbRow[dy * w + x] = cb
                                crRow[dy * w + x] = cr
                            }
                        }
                        for cx in 0..<cw {
                            var sb = 0.0, sr = 0.0, n = 0.0
                            for dy in 0..<rows {
                                for x in (2 * cx)..<min(2 * cx + 2, w) {
                                    sb += cbRow[dy * w + x]
                                    sr += crRow[dy * w + x]
                                    n += 1
                                }
                            }
                            cbPlane[(row / 2) * cw + cx] = byte(sb / n)
                            crPlane[(row / 2) * cw + cx] = byte(sr / n)
                        }
                        row += 2
                    }
                }
            }
        }
        return out
    }
}

/// Writes a YUV4MPEG2 (`.y4m`) file: the header line, then `FRAME` and the Y, Cb, Cr planes of each frame
/// (BT.601, see `YUV`), atomically (a temporary name, renamed at `finish()`).
public final class Y4MWriter: VideoWriter {
    /// Where the output appears once `finish()` succeeds.
    public let destination: URL
    /// Frame width in pixels.
    public var width: Int { book.width }
    /// Frame height in pixels.
    public var height: Int { book.height }
    /// Frames appended so far.
    public var framesWritten: Int { book.written }
    /// Frames per second recorded in the header.
    public let fps: Int
    /// Chroma subsampling.
    public let chroma: Y4MChroma
    /// Value range.
    public let range: YUVRange
    private var book: FrameBookkeeping
    private let file: AtomicFile

    /// The header line, e.g. `YUV4MPEG2 W832 H480 F16:1 Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\n`.
    public static func header(width: Int, height: Int, fps: Int, chroma: Y4MChroma, range: YUVRange) -> String {
        let c = chroma == .c420 ? "C420jpeg XYSCSS=420JPEG" : "C444 XYSCSS=444"
        let r = range == .limited ? "LIMITED" : "FULL"
        return "YUV4MPEG2 W\(width) H\(height) F\(fps):1 Ip A1:1 \(c) XCOLORRANGE=\(r)\n"
    }

    /// Opens the temporary file next to `destination` and writes the header.
    public init(destination: URL, width: Int, height: Int, fps: Int = 16, chroma: Y4MChroma = .c420,
                range: YUVRange = .limited, expectedFrames: Int? = nil) throws {
        guard fps >= 1 else { throw OutputError.invalidArgument("frame rate \(fps) must be at least 1") }
        book = try FrameBookkeeping(width: width, height: height, expectedFrames: expectedFrames, label: destination.path)
        self.destination = destination
        self.fps = fps
        self.chroma = chroma
        self.range = range
        file = try AtomicFile(destination: destination)
        do {
            try file.write(Array(Y4MWriter.header(width: width, height: height, fps: fps, chroma: chroma, range: range).utf8))
        } catch {
            file.discard()
            throw error
        }
    }

    deinit { cancel() }

    /// Appends the next frame (it must have the writer's size).
    public func append(_ frame: VideoFrame) throws {
        try book.checkAppend(frame)
        do {
            try file.write(Array("FRAME\n".utf8) + YUV.planes(frame, chroma: chroma, range: range))
            book.written += 1
        } catch {
            cancel()
            throw error
        }
    }

    /// Completes the output and moves it under `destination`.
    public func finish() throws {
        try book.checkFinish()
        do {
            try file.commit()
            book.state = .finished
        } catch {
            cancel()
            throw error
        }
    }

    /// Abandons the output, removing everything written; safe to call more than once.
    public func cancel() {
        guard book.state == .open else { return }
        book.state = .cancelled
        file.discard()
    }
}
