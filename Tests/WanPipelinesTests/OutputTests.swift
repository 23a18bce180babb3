import Foundation
import Testing

@testable import WanPipelines

/// Helpers of the output tests: a seeded generator, hex, scratch directories and fake ffmpeg scripts.
enum OutputTestSupport {
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(state: seed)
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// A fresh empty directory, removed by `cleanUp`.
    static func scratchDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("wan-output-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        return url
    }

    static func cleanUp(_ url: URL) { try? FileManager.default.removeItem(at: url) }

    static func contents(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
    }

    /// An executable shell script standing in for ffmpeg.
    static func script(_ body: String, in dir: URL, name: String = "fake-ffmpeg") throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(("#!/bin/sh\n" + body + "\n").utf8).write(to: url)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        return url
    }

    /// The bytes of the PNG at hex `s`.
    static func fixture(_ s: String) -> [UInt8] { hex(s) }

    /// Pixels of the Python fixtures' `formula(width, height, channels)`.
    static func formula(_ w: Int, _ h: Int, _ ch: Int) -> [UInt8] {
        var out: [UInt8] = []
        for y in 0..<h { for x in 0..<w { for c in 0..<ch { out.append(UInt8((x * 37 + y * 91 + c * 53 + x * y * 13) % 256)) } } }
        return out
    }

    /// Pixels of the Python fixtures' `smooth(width, height, channels)`.
    static func smooth(_ w: Int, _ h: Int, _ ch: Int) -> [UInt8] {
        var out: [UInt8] = []
        for y in 0..<h { for x in 0..<w { for _ in 0..<ch { out.append(UInt8((x + 2 * y + ((x * y * 3) % 7) * ((x + y) % 2)) % 256)) } } }
        return out
    }
}

// Written by Tests/WanPipelinesTests/Fixtures/generate_png_fixtures.py (Python struct + zlib).
private let tinyNoneLevel0 =
    "89504e470d0a1a0a0000000d49484452000000030000000208020000001216f14d0000001f494441547801011400ebff00ff000000ff"
    + "000000ff00ffffff00000080402046ef06dba908ebe30000000049454e44ae426082"
private let smoothAdaptiveLevel0 =
    "89504e470d0a1a0a0000000d4948445200000007000000060802000000806c13210000008f4944415478010184007bff010000000101"
    + "0101010101010101010101010101010103020202020202080808ffffff070707ffffff06060601040404070707fbfbfb050505fdfdfd"
    + "030303ffffff01060606010101050505fdfdfd02020200000006060604020202060606fcfcfc030303000000050505fdfdfd02020202"
    + "fdfdfd040404010101060606fefefe080808b62a1f00dec5c6630000000049454e44ae426082"
private let readerRGBAFilters =
    "89504e470d0a1a0a0000000d49484452000000050000000508060000008d6f26e50000000f74455874436f6d6d656e74006669787475"
    + "7265970fc658000000074944415478da636030cd9a8a25b6760000005049444154af1ad57fc4ab7ecbcbfc2537f9a69cfc67cc183de1"
    + "e82f2334c0140d041940500a044d40d00f04ccdb2e66b7dd8a8a8a4a0482f4f4e7e979eff2f258402a23c1a0b4f45c5364647f64e46d"
    + "00cadd2bb9307eaa8c0000000049454e44ae426082"
private let readerGray =
    "89504e470d0a1a0a0000000d4948445200000004000000030800000000919ff11a000000174944415478da6361505555658ef60d8962"
    + "dc666f6f0f0013f703415f70c8ec0000000049454e44ae426082"
private let readerGrayAlpha =
    "89504e470d0a1a0a0000000d4948445200000003000000030804000000fc217d340000001b4944415478da636230558df2aa67898e36"
    + "0202e6cec5212151b70033ae060d73b99c3e0000000049454e44ae426082"

@Suite struct OutputTests {
    typealias S = OutputTestSupport

    // MARK: Float → RGB

    @Test func quantizeEdgeValues() {
        // Videos truncate ⌊255·(x+1)/2⌋, images round ⌊255·(x+1)/2 + 0.5⌋ (spec §1.2 step 7).
        let cases: [(Float, UInt8, UInt8)] = [
            (-1, 0, 0), (1, 255, 255), (0, 127, 128), (-2, 0, 0), (3, 255, 255),
            (.infinity, 255, 255), (-.infinity, 0, 0), (.nan, 0, 0),
            (-0.2157, 99, 100), (0.9961, 254, 255), (-0.999, 0, 0), (0.999, 254, 255),
        ]
        for (x, t, r) in cases {
            #expect(VideoFrame.quantize(x, .truncate) == t, "truncate \(x)")
            #expect(VideoFrame.quantize(x, .round) == r, "round \(x)")
        }
    }

    @Test func decodedLayoutMapsChannelsFramesAndPixels() throws {
        // [3, T=2, H=2, W=3]; value chosen so that truncation gives byte b = 60c + 20t + 5y + x.
        let (t, h, w) = (2, 2, 3)
        var values = [Float](repeating: 0, count: 3 * t * h * w)
        for c in 0..<3 { for f in 0..<t { for y in 0..<h { for x in 0..<w {
            let b = Float(60 * c + 20 * f + 5 * y + x)
            values[((c * t + f) * h + y) * w + x] = (b + 0.5) / 255 * 2 - 1
        } } } }
        let frames = try VideoFrame.frames(decoded: values, shape: [3, t, h, w])
        #expect(frames.count == 2)
        for f in 0..<t { for y in 0..<h { for x in 0..<w {
            let p = try #require(frames[f].pixel(x: x, y: y))
            let base = 20 * f + 5 * y + x
            #expect(p.r == UInt8(base) && p.g == UInt8(60 + base) && p.b == UInt8(120 + base))
        } } }
        #expect(frames[0].width == 3 && frames[0].height == 2)
        // One frame of the video, and a [3, H, W] image with rounding.
        #expect(try VideoFrame(decoded: values, shape: [3, t, h, w], frame: 1) == frames[1])
        let image = try VideoFrame(decoded: [Float](repeating: 0, count: 12), shape: [3, 2, 2], quantization: .round)
        #expect(image.rgb == [UInt8](repeating: 128, count: 12))
    }

    @Test func decodedLayoutRejectsBadShapes() {
        #expect(throws: OutputError.self) { try VideoFrame.frames(decoded: [Float](repeating: 0, count: 16), shape: [4, 1, 2, 2]) }
        #expect(throws: OutputError.self) { try VideoFrame.frames(decoded: [Float](repeating: 0, count: 11), shape: [3, 2, 2]) }
        #expect(throws: OutputError.self) { try VideoFrame.frames(decoded: [], shape: [3, 0, 2, 2]) }
        #expect(throws: OutputError.self) { try VideoFrame.frames(decoded: [Float](repeating: 0, count: 12), shape: [12]) }
        #expect(throws: OutputError.self) { try VideoFrame(decoded: [Float](repeating: 0, count: 24), shape: [3, 2, 2, 2], frame: 2) }
        #expect(throws: OutputError.self) { try VideoFrame(width: 2, height: 2, rgb: [0, 0, 0]) }
        #expect(throws: OutputError.self) { try VideoFrame(width: 0, height: 2, rgb: []) }
    }

    // MARK: PNG

    @Test func pngMatchesPythonBytes() throws {
        let tiny = try VideoFrame(width: 3, height: 2, rgb: [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 128, 64, 32])
        #expect(try PNG.encode(tiny, filter: .none, compressionLevel: 0) == S.fixture(tinyNoneLevel0))
        let smooth = try VideoFrame(width: 7, height: 6, rgb: S.smooth(7, 6, 3))
        #expect(try PNG.encode(smooth, filter: .adaptive, compressionLevel: 0) == S.fixture(smoothAdaptiveLevel0))
    }

    @Test func pngRoundTripsExactly() throws {
        var seed: UInt64 = 1
        for (w, h) in [(1, 1), (7, 5), (33, 17), (2, 9)] {
            for filter in [PNGFilterStrategy.none, .adaptive] {
                for level in [0, 6, 9] {
                    seed += 1
                    let frame = try VideoFrame(width: w, height: h, rgb: S.randomBytes(w * h * 3, seed: seed))
                    let bytes = try PNG.encode(frame, filter: filter, compressionLevel: level)
                    let image = try PNG.decode(bytes)
                    #expect(image.width == w && image.height == h && image.channels == 3)
                    #expect(image.rgbFrame() == frame, "\(w)x\(h) \(filter) level \(level)")
                }
            }
            // Smooth content makes the adaptive filter choose every filter type.
            let smooth = try VideoFrame(width: w, height: h, rgb: S.smooth(w, h, 3))
            #expect(try PNG.decode(PNG.encode(smooth)).rgbFrame() == smooth)
        }
        // Gray, gray + alpha and RGBA through the same encoder.
        for channels in [1, 2, 4] {
            let image = try PNGImage(width: 9, height: 4, channels: channels, pixels: S.randomBytes(36 * channels, seed: 99))
            #expect(try PNG.decode(PNG.encode(image)) == image)
        }
    }

    @Test func pngReaderDecodesPythonFiles() throws {
        // RGBA with filters 0-4 by row, an ancillary tEXt chunk and the zlib stream split over two IDAT chunks.
        let rgba = try PNG.decode(S.fixture(readerRGBAFilters))
        #expect(rgba.width == 5 && rgba.height == 5 && rgba.channels == 4)
        #expect(rgba.pixels == S.formula(5, 5, 4))
        // PIL's convert("RGB") drops alpha.
        let rgb = S.formula(5, 5, 4).enumerated().filter { $0.offset % 4 != 3 }.map(\.element)
        #expect(rgba.rgbFrame().rgb == rgb)
        let gray = try PNG.decode(S.fixture(readerGray))
        #expect(gray.channels == 1 && gray.pixels == S.formula(4, 3, 1))
        #expect(gray.rgbFrame().rgb == S.formula(4, 3, 1).flatMap { [$0, $0, $0] })
        let grayAlpha = try PNG.decode(S.fixture(readerGrayAlpha))
        #expect(grayAlpha.channels == 2 && grayAlpha.pixels == S.formula(3, 3, 2))
    }

    /// A PNG built chunk by chunk, for malformed files.
    private func png(ihdr: [UInt8], idat: [UInt8]?, end: Bool = true, extra: [(String, [UInt8])] = []) -> [UInt8] {
        var out = PNG.signature
        PNG.appendChunk("IHDR", ihdr, to: &out)
        for (type, data) in extra { PNG.appendChunk(type, data, to: &out) }
        if let idat { PNG.appendChunk("IDAT", idat, to: &out) }
        if end { PNG.appendChunk("IEND", [], to: &out) }
        return out
    }

    private func ihdr(_ w: UInt32, _ h: UInt32, depth: UInt8 = 8, color: UInt8 = 2, interlace: UInt8 = 0) -> [UInt8] {
        PNG.bigEndian32(w) + PNG.bigEndian32(h) + [depth, color, 0, 0, interlace]
    }

    private func expectCorrupt(_ bytes: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try PNG.decode(bytes, name: "x.png")
            Issue.record("decoded a malformed PNG (\(fragment))", sourceLocation: sourceLocation)
        } catch let OutputError.corruptPNG(file, reason) {
            #expect(file == "x.png" && reason.contains(fragment), "\(reason)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    private func expectUnsupported(_ bytes: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try PNG.decode(bytes, name: "x.png")
            Issue.record("decoded an unsupported PNG (\(fragment))", sourceLocation: sourceLocation)
        } catch let OutputError.unsupportedPNG(_, reason) {
            #expect(reason.contains(fragment), "\(reason)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func pngReaderRejectsBadFiles() throws {
        let good = try PNG.encode(VideoFrame(width: 2, height: 2, rgb: S.randomBytes(12, seed: 5)), filter: .none)
        let rows = try Zlib.compress([0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6], level: 6)  // 2x2 RGB, filter 0
        expectCorrupt([1, 2, 3], "signature")
        expectCorrupt(Array(good.prefix(good.count - 6)), "truncated chunk")
        expectCorrupt(Array(good.prefix(50)), "runs past the end")
        var flipped = good
        flipped[good.count - 20] ^= 0x40  // inside IDAT data
        expectCorrupt(flipped, "CRC mismatch")
        expectCorrupt(png(ihdr: ihdr(2, 2), idat: rows, end: false), "IEND")
        expectCorrupt(png(ihdr: ihdr(2, 2), idat: nil), "IDAT")
        expectCorrupt(png(ihdr: ihdr(0, 2), idat: rows), "out of range")
        expectCorrupt(png(ihdr: ihdr(2, 2, color: 5), idat: rows), "color type")
        expectCorrupt(png(ihdr: ihdr(2, 2, depth: 4), idat: rows), "bit depth 4")
        expectCorrupt(png(ihdr: ihdr(2, 3), idat: rows), "truncated")  // needs 3 rows
        expectCorrupt(png(ihdr: ihdr(2, 1), idat: rows), "more bytes")
        expectCorrupt(png(ihdr: ihdr(2, 2), idat: try Zlib.compress([0, 1, 2, 3, 4, 5, 6, 9, 1, 2, 3, 4, 5, 6], level: 6)),
                      "filter type 9 in row 1")
        expectCorrupt(png(ihdr: ihdr(2, 2), idat: [1, 2, 3, 4]), "zlib")
        var noHeader = PNG.signature
        PNG.appendChunk("IDAT", rows, to: &noHeader)
        expectCorrupt(noHeader, "not 'IHDR'")
        expectUnsupported(png(ihdr: ihdr(2, 2, color: 3), idat: rows, extra: [("PLTE", [0, 0, 0])]), "palette")
        expectUnsupported(png(ihdr: ihdr(2, 2, depth: 16), idat: rows), "bit depth 16")
        expectUnsupported(png(ihdr: ihdr(2, 2, interlace: 1), idat: rows), "interlaced")
        expectUnsupported(png(ihdr: ihdr(2, 2), idat: rows, extra: [("ABCD", [1])]), "critical chunk 'ABCD'")
        // Ancillary chunks are skipped.
        #expect(try PNG.decode(png(ihdr: ihdr(2, 2), idat: rows, extra: [("gAMA", [0, 0, 0xB1, 0x8F])])).pixels
            == [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6])
        // Reading a missing file names it.
        #expect(throws: OutputError.io(path: "/nonexistent/wan.png", reason: "no such file")) {
            try PNG.read(contentsOf: URL(fileURLWithPath: "/nonexistent/wan.png"))
        }
    }

    // MARK: Y4M

    private let red: [UInt8] = [255, 0, 0], green: [UInt8] = [0, 255, 0], blue: [UInt8] = [0, 0, 255]
    private let white: [UInt8] = [255, 255, 255], black: [UInt8] = [0, 0, 0]

    @Test func y4mBytesAreExact() throws {
        let dir = try S.scratchDirectory()
        defer { S.cleanUp(dir) }
        let a = try VideoFrame(width: 2, height: 2, rgb: red + green + blue + white)
        let b = try VideoFrame(width: 2, height: 2, rgb: black + white + red + red)
        let frame = Array("FRAME\n".utf8)

        // 4:2:0, limited range: Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255, chroma = mean of the 2x2 block.
        let url420 = dir.appendingPathComponent("v420.y4m")
        let w420 = try Y4MWriter(destination: url420, width: 2, height: 2, expectedFrames: 2)
        try w420.append(a)
        try w420.append(b)
        try w420.finish()
        let expected420 = Array("YUV4MPEG2 W2 H2 F16:1 Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\n".utf8)
            + frame + [81, 145, 41, 235, 128, 128]
            + frame + [16, 235, 81, 81, 109, 184]
        #expect([UInt8](try Data(contentsOf: url420)) == expected420)

        // 4:4:4, full range (JFIF): Y = 0.299 R + 0.587 G + 0.114 B, clamped to 0...255.
        let url444 = dir.appendingPathComponent("v444.y4m")
        let w444 = try Y4MWriter(destination: url444, width: 2, height: 2, fps: 24, chroma: .c444, range: .full)
        try w444.append(a)
        try w444.append(b)
        try w444.finish()
        let expected444 = Array("YUV4MPEG2 W2 H2 F24:1 Ip A1:1 C444 XYSCSS=444 XCOLORRANGE=FULL\n".utf8)
            + frame + [76, 150, 29, 255, 85, 44, 255, 128, 255, 21, 107, 128]
            + frame + [0, 255, 76, 76, 128, 128, 85, 85, 128, 128, 255, 255]
        #expect([UInt8](try Data(contentsOf: url444)) == expected444)
        #expect(S.contents(dir) == ["v420.y4m", "v444.y4m"])
    }

    @Test func y4mOddSizesAverageTheEdgeBlocks() throws {
        // 3x3: chroma planes are 2x2; the right column and bottom row blocks hold 2 and 1 pixels.
        var rgb: [UInt8] = []
        for y in 0..<3 { for x in 0..<3 { rgb += (x == 2 || y == 2) ? blue : white } }
        let planes = YUV.planes(try VideoFrame(width: 3, height: 3, rgb: rgb), chroma: .c420, range: .limited)
        #expect(planes.count == 9 + 4 + 4)
        #expect(Array(planes[9..<13]) == [128, 240, 240, 240])  // Cb: white block, then blue-only blocks
        #expect(Array(planes[13..<17]) == [128, 110, 110, 110])
        let green601 = YUV.pixel(r: 0, g: 255, b: 0, range: .limited)
        #expect(green601.y == 145 && green601.cb == 54 && green601.cr == 34)
    }

    // MARK: Atomic output

    @Test func atomicFileAppearsOnlyOnCommit() throws {
        let dir = try S.scratchDirectory()
        defer { S.cleanUp(dir) }
        let dest = dir.appendingPathComponent("out.bin")
        let file = try AtomicFile(destination: dest)
        try file.write([1, 2, 3])
        #expect(!FileManager.default.fileExists(atPath: dest.path))
        #expect(S.contents(dir) == [file.temporaryURL.lastPathComponent])
        try file.commit()
        #expect([UInt8](try Data(contentsOf: dest)) == [1, 2, 3])
        #expect(S.contents(dir) == ["out.bin"])
        #expect(throws: OutputError.self) { try file.write([4]) }

        // Replacing: an abandoned writer leaves the old file intact and no temporary.
        do {
            let second = try AtomicFile(destination: dest)
            try second.write([9, 9])
        }
        #expect([UInt8](try Data(contentsOf: dest)) == [1, 2, 3])
        #expect(S.contents(dir) == ["out.bin"])
        let third = try AtomicFile(destination: dest)
        try third.write([7])
        try third.commit()
        #expect([UInt8](try Data(contentsOf: dest)) == [7])
        #expect(throws: OutputError.self) { try AtomicFile(destination: dir.appendingPathComponent("missing/x.bin")) }
    }

    @Test func interruptedWritersLeaveNothing() throws {
        let dir = try S.scratchDirectory()
        defer { S.cleanUp(dir) }
        let frame = try VideoFrame(width: 4, height: 2, rgb: S.randomBytes(24, seed: 3))
        // Released without finish().
        do {
            let w = try VideoOutput.makeWriter(path: dir.appendingPathComponent("v.y4m").path, width: 4, height: 2, frameCount: 3)
            try w.append(frame)
        }
        do {
            let w = try VideoOutput.makeWriter(path: dir.appendingPathComponent("frames").path + "/", width: 4, height: 2, frameCount: 3)
            try w.append(frame)
            try w.append(frame)
        }
        do {
            let w = try VideoOutput.makeWriter(path: dir.appendingPathComponent("f_%03d.png").path, width: 4, height: 2, frameCount: 3)
            try w.append(frame)
        }
        #expect(S.contents(dir) == [])
        // Explicit cancel(), and finish() with too few frames followed by release.
        let y4m = try VideoOutput.makeWriter(path: dir.appendingPathComponent("v.y4m").path, width: 4, height: 2, frameCount: 2)
        try y4m.append(frame)
        #expect(throws: OutputError.self) { try y4m.finish() }
        y4m.cancel()
        y4m.cancel()
        #expect(throws: OutputError.self) { try y4m.append(frame) }
        let png = try VideoOutput.makeWriter(path: dir.appendingPathComponent("i.png").path, width: 4, height: 2, frameCount: 1)
        #expect(throws: OutputError.self) { try png.finish() }
        png.cancel()
        #expect(S.contents(dir) == [])
    }

    @Test func pngOutputsLandComplete() throws {
        let dir = try S.scratchDirectory()
        defer { S.cleanUp(dir) }
        let frames = try (0..<3).map { try VideoFrame(width: 5, height: 3, rgb: S.randomBytes(45, seed: UInt64(10 + $0))) }

        let image = try VideoOutput.makeWriter(path: dir.appendingPathComponent("still.png").path, width: 5, height: 3, frameCount: 1)
        try image.append(frames[0])
        #expect(throws: OutputError.self) { try image.append(frames[1]) }
        try image.finish()
        #expect(try PNG.read(contentsOf: dir.appendingPathComponent("still.png")).rgbFrame() == frames[0])
        #expect(throws: OutputError.self) { try image.finish() }

        let seq = try VideoOutput.makeWriter(path: dir.appendingPathComponent("seq").path + "/", width: 5, height: 3, frameCount: 3)
        #expect(throws: OutputError.self) { try seq.append(VideoFrame(width: 3, height: 5, rgb: frames[0].rgb)) }
        for f in frames { try seq.append(f) }
        try seq.finish()
        let seqDir = dir.appendingPathComponent("seq")
        #expect(S.contents(seqDir) == ["0000.png", "0001.png", "0002.png"])
        for (i, f) in frames.enumerated() {
            #expect(try PNG.read(contentsOf: seqDir.appendingPathComponent(String(format: "%04d.png", i))).rgbFrame() == f)
        }

        let pattern = try VideoOutput.makeWriter(path: dir.appendingPathComponent("shot-%02d.png").path, width: 5, height: 3, frameCount: 3)
        for f in frames { try pattern.append(f) }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("shot-00.png").path))
        try pattern.finish()
        #expect(S.contents(dir) == ["seq", "shot-00.png", "shot-01.png", "shot-02.png", "still.png"])
        #expect(try PNG.read(contentsOf: dir.appendingPathComponent("shot-02.png")).rgbFrame() == frames[2])
    }

    // MARK: Output paths

    @Test func outputPathsResolve() throws {
        let dir = try S.scratchDirectory()
        defer { S.cleanUp(dir) }
        let p = dir.path
        let mp4 = try OutputTarget.resolve("\(p)/video.mp4", frameCount: 81)
        #expect(mp4.kind == .mp4 && mp4.sidecarURL.path == "\(p)/video.mp4.json")
        #expect(try OutputTarget.resolve("\(p)/video.Y4M", frameCount: 5).kind == .y4m)
        let still = try OutputTarget.resolve("\(p)/still.png", frameCount: 1)
        #expect(still.kind == .png && still.sidecarURL.path == "\(p)/still.png.json")
        #expect(still.quantization == .round && mp4.quantization == .truncate)
        let frames = try OutputTarget.resolve("\(p)/frames/", frameCount: 5)
        #expect(frames.kind == .pngDirectory && frames.sidecarURL.path == "\(p)/frames.json")
        #expect(try OutputTarget.resolve(p, frameCount: 5).kind == .pngDirectory)  // an existing empty directory
        let pattern = try OutputTarget.resolve("\(p)/img_%04d.png", frameCount: 5)
        #expect(pattern.kind == .pngPattern(FrameNamePattern(prefix: "img_", digits: 4, suffix: ".png")))
        #expect(pattern.sidecarURL.path == "\(p)/img.json")
        #expect(try OutputTarget.resolve("\(p)/%d.png", frameCount: 5).sidecarURL.path == "\(p)/frames.json")
        #expect(FrameNamePattern(prefix: "a", digits: 3, suffix: ".png").name(7) == "a007.png")
        #expect(FrameNamePattern(prefix: "", digits: 0, suffix: ".png").name(12345) == "12345.png")

        for (bad, count) in [("\(p)/still.png", 5), ("\(p)/video.avi", 5), ("\(p)/a%d%d.png", 5), ("\(p)/a%4d.png", 5),
                             ("\(p)/a%04d.jpg", 5), ("\(p)/missing/video.mp4", 5), ("", 5), ("\(p)/v.y4m", 0)] {
            #expect(throws: OutputError.self, "\(bad)") { try OutputTarget.resolve(bad, frameCount: count) }
        }
        try Data([1]).write(to: dir.appendingPathComponent("occupied"))
        #expect(throws: OutputError.self) { try OutputTarget.resolve(p, frameCount: 5) }  // not empty
        #expect(throws: OutputError.self) { try OutputTarget.resolve("\(p)/occupied/", frameCount: 5) }
    }

    // MARK: ffmpeg

    @Test func ffmpegMissingIsAClearError() throws {
        let dir = try S.scratchDirectory()
        defer { S.cleanUp(dir) }
        do {
            _ = try FFmpegWriter(destination: dir.appendingPathComponent("v.mp4"), width: 4, height: 2, searchPath: "/nonexistent")
            Issue.record("found an ffmpeg in /nonexistent")
        } catch let OutputError.ffmpegNotFound(message) {
            #expect(message.contains(".y4m") && message.contains("%04d.png"))
        }
        #expect(throws: OutputError.self) {
            try FFmpegWriter(destination: dir.appendingPathComponent("v.mp4"), width: 4, height: 2,
                             options: FFmpegOptions(executable: dir.appendingPathComponent("nope").path))
        }
        if FFmpegWriter.locate() == nil {
            #expect(throws: OutputError.self) {
                try VideoOutput.makeWriter(path: dir.appendingPathComponent("v.mp4").path, width: 4, height: 2, frameCount: 1)
            }
        }
        #expect(S.contents(dir) == [])
    }

    @Test func ffmpegWriterPipesFramesAndRenames() throws {
        let dir = try S.scratchDirectory()
        defer { S.cleanUp(dir) }
        // Stands in for ffmpeg: records its arguments, copies standard input to the output (the last argument).
        let tool = try S.script("for last; do :; done\necho \"$@\" > \"$(dirname \"$0\")/args.txt\"\ncat > \"$last\"", in: dir)
        let options = VideoOutputOptions(ffmpeg: FFmpegOptions(executable: tool.path, crf: 20))
        let dest = dir.appendingPathComponent("video.mp4")
        let w = try VideoOutput.makeWriter(path: dest.path, width: 4, height: 2, frameCount: 2, options: options)
        let frames = try (0..<2).map { try VideoFrame(width: 4, height: 2, rgb: S.randomBytes(24, seed: UInt64(40 + $0))) }
        for f in frames { try w.append(f) }
        #expect(!FileManager.default.fileExists(atPath: dest.path))
        try w.finish()
        #expect([UInt8](try Data(contentsOf: dest)) == frames[0].rgb + frames[1].rgb)
        let args = try String(contentsOf: dir.appendingPathComponent("args.txt"), encoding: .utf8)
        #expect(args.contains("-f rawvideo -pix_fmt rgb24 -s 4x2 -framerate 16 -i pipe:0"))
        #expect(args.contains("-c:v libx264") && args.contains("-crf 20") && args.contains("-pix_fmt yuv420p"))
        #expect(S.contents(dir) == ["args.txt", "fake-ffmpeg", "video.mp4"])
        #expect(throws: OutputError.self) {
            try FFmpegWriter(destination: dest, width: 5, height: 2, options: FFmpegOptions(executable: tool.path))
        }
    }

    @Test func ffmpegFailuresReportStderrAndLeaveNothing() throws {
        let dir = try S.scratchDirectory()
        defer { S.cleanUp(dir) }
        let dest = dir.appendingPathComponent("video.mp4")
        let frame = try VideoFrame(width: 128, height: 128, rgb: S.randomBytes(128 * 128 * 3, seed: 7))

        // Fails at the end.
        let late = try S.script("cat > /dev/null\necho \"Unknown encoder 'libx264'\" >&2\nexit 1", in: dir, name: "late")
        let w1 = try FFmpegWriter(destination: dest, width: 128, height: 128, options: FFmpegOptions(executable: late.path))
        try w1.append(frame)
        #expect(throws: OutputError.ffmpegFailed(status: 1, stderr: "Unknown encoder 'libx264'\n")) { try w1.finish() }

        // Exits at once: the writes (4 x 48 KiB, more than a pipe holds) hit a closed pipe.
        let early = try S.script("echo 'boom: bad option' >&2\nexit 3", in: dir, name: "early")
        let w2 = try FFmpegWriter(destination: dest, width: 128, height: 128, options: FFmpegOptions(executable: early.path))
        do {
            for _ in 0..<4 { try w2.append(frame) }
            try w2.finish()
            Issue.record("an ffmpeg that exited at once succeeded")
        } catch let OutputError.ffmpegFailed(status, stderr) {
            #expect(status == 3 && stderr.contains("boom: bad option"))
        }

        // Cancelled while running.
        let copy = try S.script("for last; do :; done\ncat > \"$last\"", in: dir, name: "copy")
        let w3 = try FFmpegWriter(destination: dest, width: 128, height: 128, options: FFmpegOptions(executable: copy.path))
        try w3.append(frame)
        w3.cancel()
        #expect(throws: OutputError.self) { try w3.append(frame) }
        do {
            let w4 = try FFmpegWriter(destination: dest, width: 128, height: 128, options: FFmpegOptions(executable: copy.path))
            try w4.append(frame)
        }
        #expect(S.contents(dir) == ["copy", "early", "late"])
    }

    @Test func realFFmpegEncodesDecodableVideo() throws {
        // Runs only where an ffmpeg is installed (the missing case is covered by ffmpegMissingIsAClearError).
        guard let ffmpeg = FFmpegWriter.locate() else { return }
        let dir = try S.scratchDirectory()
        defer { S.cleanUp(dir) }
        let dest = dir.appendingPathComponent("real.mp4")
        let colors: [[UInt8]] = [red, green, blue]
        let w = try VideoOutput.makeWriter(path: dest.path, width: 32, height: 16, frameCount: 3)
        for c in colors { try w.append(VideoFrame(width: 32, height: 16, rgb: Array([[UInt8]](repeating: c, count: 512).joined()))) }
        try w.finish()
        // Decode back to RGB and compare with generous tolerance (lossy 4:2:0).
        let raw = dir.appendingPathComponent("back.rgb")
        let p = Process()
        p.executableURL = ffmpeg
        p.arguments = ["-hide_banner", "-loglevel", "error", "-i", dest.path, "-f", "rawvideo", "-pix_fmt", "rgb24", raw.path]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let back = [UInt8](try Data(contentsOf: raw))
        #expect(back.count == 3 * 32 * 16 * 3)
        guard back.count == 3 * 32 * 16 * 3 else { return }
        for (i, c) in colors.enumerated() {
            let px = Array(back[(i * 512 + 200) * 3..<(i * 512 + 200) * 3 + 3])
            #expect(zip(px, c).allSatisfy { abs(Int($0) - Int($1)) <= 12 }, "frame \(i): \(px) vs \(c)")
        }
    }

    // MARK: Sidecar

    @Test func sidecarRoundTrips() throws {
        let dir = try S.scratchDirectory()
        defer { S.cleanUp(dir) }
        let record = GenerationRecord(
            prompt: "一只猫 on a skateboard, \"quoted\"", negativePrompt: "色调艳丽，过曝", seed: UInt64.max - 5,
            width: 832, height: 480, frames: 81, steps: 50, shift: 5, guidance: 5.5, sampler: "unipc",
            modelFiles: ["/models/wan2.1_t2v_1.3B_fp16.safetensors", "/models/wan_2.1_vae.safetensors"],
            timings: [.init(stage: "text encoder", seconds: 1.25), .init(stage: "denoise", seconds: 300.5)],
            device: "vulkan:0", precision: "bf16", output: "video.mp4")
        let url = dir.appendingPathComponent("video.mp4.json")
        try record.write(to: url)
        #expect(try GenerationRecord.read(from: url) == record)
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text.contains("\"negative_prompt\"") && text.contains("\"model_files\"") && text.contains("18446744073709551610"))
        #expect(S.contents(dir) == ["video.mp4.json"])

        var bad = record
        bad.timings = [.init(stage: "x", seconds: .nan)]
        #expect(throws: OutputError.self) { try bad.write(to: url) }
        #expect(try GenerationRecord.read(from: url) == record)
        #expect(throws: OutputError.self) { try GenerationRecord.decode(Data("{\"prompt\": 1}".utf8)) }
        #expect(throws: OutputError.self) { try GenerationRecord.read(from: dir.appendingPathComponent("none.json")) }
    }
}
