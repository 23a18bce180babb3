import Foundation
import Testing
import WanGraph
import WanRuntime
@testable import WanModels

/// The tiny umT5 fixtures of Fixtures/umt5 (generate_umt5.py): weights, ids, lengths, golden hidden states.
private enum UMT5Fixture {
    static let transformersWeights = CheckpointFixtures.path("umt5/umt5_tiny_transformers.safetensors")
    static let officialWeights = CheckpointFixtures.path("umt5/umt5_tiny_official.safetensors")
    static let config = WanT5Config(vocabSize: 257, dim: 32, dimAttn: 32, dimFFN: 48, numHeads: 4, numLayers: 2, numBuckets: 32)
    static let (batch, length, dim) = (2, 150, 32)

    struct IO {
        var ids: [Int32]
        var lengths: [Int]
        var hidden: [Float]
        var hiddenBF16: [Float]
        var hiddenF16: [Float]
    }

    static func io() throws -> IO {
        let r = try CheckpointFile.open(CheckpointFixtures.path("umt5/umt5_tiny_io.safetensors"))
        let ids = try r.bytes("ids").withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        let lengths = try r.bytes("lengths").withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }.map { Int($0) }
        return IO(ids: ids, lengths: lengths, hidden: try r.floats("hidden"), hiddenBF16: try r.floats("hidden_bf16"),
                  hiddenF16: try r.floats("hidden_f16"))
    }
}

/// max |a − b| / max |b| over the given rows of [B, L, dim] tensors.
private func relativeError(_ a: [Float], _ b: [Float], rows: [Range<Int>], dim: Int) -> Double {
    var diff = 0.0, scale = 1e-30
    for r in rows {
        for i in (r.lowerBound * dim)..<(r.upperBound * dim) {
            diff = max(diff, Double(abs(a[i] - b[i])))
            scale = max(scale, Double(abs(b[i])))
        }
    }
    return diff / scale
}

@Suite struct UMT5Tests {
    /// The bucket function against a float64 evaluation of the reference formula for n ∈ [−600, 600], the
    /// spec's distance → bucket table, and the [query, key] layout of `bucketTable`.
    @Test func bucketsMatchFloat64Reference() {
        for n in -600...600 {
            let base = n > 0 ? 16 : 0, a = abs(n)
            let want = a < 8 ? base + a : base + min(15, 8 + Int((Foundation.log(Double(a) / 8) / Foundation.log(16.0) * 8).rounded(.towardZero)))
            #expect(UMT5Encoder.relativeBucket(n) == want, "n = \(n)")
        }
        // Spec §6.2: a → bucket − base.
        let spans: [(ClosedRange<Int>, Int)] = [(8...11, 8), (12...15, 9), (16...22, 10), (23...31, 11), (32...45, 12),
                                                (46...63, 13), (64...90, 14), (91...1023, 15)]
        for a in 0..<8 { #expect(UMT5Encoder.relativeBucket(a) == (a > 0 ? 16 + a : 0) && UMT5Encoder.relativeBucket(-a) == a) }
        for (span, b) in spans {
            for a in span { #expect(UMT5Encoder.relativeBucket(-a) == b && UMT5Encoder.relativeBucket(a) == 16 + b, "a = \(a)") }
        }
        #expect(UMT5Encoder.relativeBucket(1 << 40) == 31 && UMT5Encoder.relativeBucket(-(1 << 40)) == 15)
        // Degenerate settings stay inside their half (no trap).
        for n in [-300, -9, -8, 0, 8, 9, 300] {
            for (buckets, distance) in [(2, 128), (32, 8), (32, 1)] {
                let bucket = UMT5Encoder.relativeBucket(n, numBuckets: buckets, maxDistance: distance)
                #expect(n > 0 ? (buckets / 2..<buckets).contains(bucket) : (0..<buckets / 2).contains(bucket))
            }
        }
        let t = UMT5Encoder.bucketTable(length: 200)
        for (i, j) in [(0, 0), (0, 199), (199, 0), (5, 100), (100, 5), (37, 38)] {
            #expect(t[i * 200 + j] == Int32(UMT5Encoder.relativeBucket(j - i)))
        }
    }

    /// Weights in transformers names (mapped to official names on load) reproduce transformers'
    /// UMT5EncoderModel last_hidden_state with padding and distances beyond 128, on every device; the DiT
    /// context is each prompt's rows then zeros; the unpadded prompt gives the same rows (spec §6.3).
    @Test func matchesTransformersGolden() throws {
        let io = try UMT5Fixture.io()
        let (b, l, dim) = (UMT5Fixture.batch, UMT5Fixture.length, UMT5Fixture.dim)
        #expect(io.lengths == [150, 97])
        for device in try CheckpointTestDevices.all() {
            let encoder = try UMT5Encoder.load(path: UMT5Fixture.transformersWeights, device: device)
            #expect(encoder.config == UMT5Fixture.config)
            let program = try encoder.compile(batch: b, length: l, textLength: 160)
            try program.run(ids: io.ids, lengths: io.lengths)
            let hidden = try device.read(try program.hiddenStates())
            let real = (0..<b).map { ($0 * l)..<($0 * l + io.lengths[$0]) }
            let err = relativeError(hidden, io.hidden, rows: real, dim: dim)
            print("umT5 tiny vs transformers on \(device.name): relative max error \(err)")
            #expect(err <= 1e-4, "\(device.name): relative error \(err)")
            // Padding queries are computed as the reference computes them.
            #expect(relativeError(hidden, io.hidden, rows: [0..<(b * l)], dim: dim) <= 1e-4, "\(device.name): padding rows")

            // Context: trimmed to each length, zero-padded to text_len rows.
            let context = try device.read(try program.context())
            #expect(try program.context().shape == [b, 160, dim])
            for p in 0..<b {
                for row in 0..<160 {
                    let got = Array(context[((p * 160 + row) * dim)..<((p * 160 + row + 1) * dim)])
                    if row < io.lengths[p] {
                        #expect(got == Array(hidden[((p * l + row) * dim)..<((p * l + row + 1) * dim)]))
                    } else {
                        #expect(got.allSatisfy { $0 == 0 }, "prompt \(p) row \(row) is not zero")
                    }
                }
            }
            let trimmed = try program.trimmed()
            #expect(trimmed.map(\.count) == io.lengths.map { $0 * dim })

            // Prompt 1 alone, unpadded (97 tokens), through `encode`: the same rows, zeros after them.
            let prompt = Array(io.ids[l..<(l + io.lengths[1])])
            let alone = try device.read(try encoder.encode([prompt], textLength: 100))
            let n = io.lengths[1]
            var golden = Array(io.hidden[(l * dim)..<((l + n) * dim)])
            golden += [Float](repeating: 0, count: (100 - n) * dim)
            #expect(alone.count == 100 * dim)
            let errAlone = relativeError(alone, golden, rows: [0..<100], dim: dim)
            #expect(errAlone <= 1e-4, "\(device.name): unpadded prompt, relative error \(errAlone)")
            #expect(alone[(n * dim)...].allSatisfy { $0 == 0 })
        }
        CheckpointTestDevices.checkValidation()
    }

    /// The official-named file loads to the same weights and the same output; bf16 weights stay close.
    @Test func officialNamesAndBF16Weights() throws {
        let io = try UMT5Fixture.io()
        let cpu = Device.cpu()
        let fromHF = try UMT5Encoder.load(path: UMT5Fixture.transformersWeights, device: cpu)
        let official = try UMT5Encoder.load(path: UMT5Fixture.officialWeights, device: cpu)
        #expect(Set(official.weights.keys) == Set(UMT5Fixture.config.expectedTensors().map(\.name)))
        for (name, t) in official.weights {
            let other = try #require(fromHF.weights[name])
            #expect(try cpu.read(t) == cpu.read(other), "\(name)")
        }
        // The encoder built directly from official-named tensors.
        let direct = try UMT5Encoder(config: UMT5Fixture.config, weights: official.weights, device: cpu)
        let program = try direct.compile(batch: 2, length: 150, textLength: 150)
        try program.run(ids: io.ids, lengths: io.lengths)
        let hidden = try cpu.read(try program.hiddenStates())
        let real = (0..<2).map { ($0 * 150)..<($0 * 150 + io.lengths[$0]) }
        #expect(relativeError(hidden, io.hidden, rows: real, dim: 32) <= 1e-4)

        let bf16 = try UMT5Encoder.load(path: UMT5Fixture.officialWeights, device: cpu, activationDType: .f32, weightDType: .bf16)
        #expect(bf16.weights.values.allSatisfy { $0.dtype == .bf16 })
        let p16 = try bf16.compile(batch: 2, length: 150, textLength: 150)
        try p16.run(ids: io.ids, lengths: io.lengths)
        let e16 = relativeError(try cpu.read(try p16.hiddenStates()), io.hidden, rows: real, dim: 32)
        print("umT5 tiny with bf16 weights vs fp32 transformers: relative max error \(e16)")
        #expect(e16 <= 5e-2 && e16 > 1e-6, "bf16 weights: relative error \(e16)")
    }

    /// bf16 and f16 activations (weights in the same dtype) against transformers' model cast to bf16 / fp16,
    /// on every device.
    @Test func reducedPrecisionMatchesTransformers() throws {
        let io = try UMT5Fixture.io()
        let real = (0..<2).map { ($0 * 150)..<($0 * 150 + io.lengths[$0]) }
        for device in try CheckpointTestDevices.all() {
            for (dtype, golden) in [(DType.bf16, io.hiddenBF16), (.f16, io.hiddenF16)] {
                let encoder = try UMT5Encoder.load(path: UMT5Fixture.transformersWeights, device: device, activationDType: dtype)
                #expect(encoder.weights.values.allSatisfy { $0.dtype == dtype })
                let program = try encoder.compile(batch: 2, length: 150, textLength: 150)
                try program.run(ids: io.ids, lengths: io.lengths)
                #expect(try program.hiddenStates().dtype == dtype)
                let hidden = try device.read(try program.hiddenStates())
                let err = relativeError(hidden, golden, rows: real, dim: 32)
                let errFP32 = relativeError(hidden, io.hidden, rows: real, dim: 32)
                print("umT5 tiny \(dtype) on \(device.name): vs transformers \(dtype) \(err), vs fp32 \(errFP32)")
                #expect(err <= 2e-2, "\(device.name) \(dtype): relative error \(err)")
            }
        }
        CheckpointTestDevices.checkValidation()
    }

    /// In f16 a residual stream that overflows is clamped to ±64504 (as the reference does once an inf
    /// appears), so the output stays finite; in f32 the same weights give finite values too.
    @Test func f16ClampKeepsOverflowFinite() throws {
        let cpu = Device.cpu()
        var weights = try UMT5Encoder.load(path: UMT5Fixture.officialWeights, device: cpu).weights
        let fc2 = try cpu.read(try #require(weights["blocks.0.ffn.fc2.weight"]))
        weights["blocks.0.ffn.fc2.weight"] = try cpu.tensor(fc2.map { $0 * 1e5 }, shape: [32, 48])      // |w| < 65504
        let fc1 = try cpu.read(try #require(weights["blocks.0.ffn.fc1.weight"]))
        weights["blocks.0.ffn.fc1.weight"] = try cpu.tensor(fc1.map { $0 * 4 }, shape: [48, 32])
        let half = try weights.mapValues { try cpu.tensor(try cpu.read($0), shape: $0.shape, dtype: .f16) }
        let encoder = try UMT5Encoder(config: UMT5Fixture.config, weights: half, device: cpu, activationDType: .f16)
        let program = try encoder.compile(batch: 1, length: 12, textLength: 12)
        try program.run([[5, 9, 17, 3, 250, 1, 2, 77, 8, 100]])
        let hidden = try cpu.read(try program.hiddenStates())
        #expect(hidden.allSatisfy { $0.isFinite })
        // The scaled weights do overflow f16: the f32 residual stream after block 0 exceeds 65504.
        let g = Graph()
        let ids = try g.input("ids", shape: [1, 10], dtype: .i32)
        let x = try g.gather(g.parameter("emb", try #require(half["token_embedding.weight"])), ids: ids, dtype: .f32)
        let n = try g.rmsNorm(x, weight: g.parameter("n2", try #require(half["blocks.0.norm2.weight"])), eps: 1e-6)
        let gate = try g.linear(n, weight: g.parameter("g", try #require(half["blocks.0.ffn.gate.0.weight"])), activation: .geluTanh)
        let lin = try g.linear(n, weight: g.parameter("f1", try #require(half["blocks.0.ffn.fc1.weight"])))
        try g.output("ffn", try g.linear(try g.mul(gate, lin), weight: g.parameter("f2", try #require(half["blocks.0.ffn.fc2.weight"]))))
        let c = try g.compile(for: cpu)
        try cpu.write([Int32]([5, 9, 17, 3, 250, 1, 2, 77, 8, 100]).withUnsafeBytes { Array($0) }, to: try c.input("ids"))
        try c.run()
        let ffn = try cpu.read(try c.output("ffn"))
        #expect(ffn.contains { abs($0) > 65504 })
    }

    /// Missing, misshapen, unexpected and foreign-device weights, bad ids and lengths are clear errors.
    @Test func badWeightsAndInputsThrow() throws {
        let cpu = Device.cpu()
        let good = try UMT5Encoder.load(path: UMT5Fixture.officialWeights, device: cpu).weights
        let config = UMT5Fixture.config
        func message(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "\(error)" }
            return ""
        }
        var missing = good
        missing["blocks.1.ffn.fc1.weight"] = nil
        let m = message { _ = try UMT5Encoder(config: config, weights: missing, device: cpu) }
        #expect(m.contains("missing tensor 'blocks.1.ffn.fc1.weight'"), "\(m)")

        var misshapen = good
        misshapen["norm.weight"] = try cpu.zeros([31])
        #expect(message { _ = try UMT5Encoder(config: config, weights: misshapen, device: cpu) }.contains("'norm.weight' is [31]"))

        var extra = good
        extra["blocks.2.norm1.weight"] = try cpu.zeros([32])
        #expect(message { _ = try UMT5Encoder(config: config, weights: extra, device: cpu) }.contains("unexpected tensor 'blocks.2.norm1.weight'"))

        var intIDs = good
        intIDs["norm.weight"] = try cpu.zeros([32], dtype: .i32)
        #expect(throws: RuntimeError.self) { _ = try UMT5Encoder(config: config, weights: intIDs, device: cpu) }

        var badConfig = config
        badConfig.numHeads = 5
        #expect(throws: RuntimeError.self) { _ = try UMT5Encoder(config: badConfig, weights: good, device: cpu) }

        if let vulkan = try CheckpointTestDevices.all().first(where: { !$0.isCPU }) {
            #expect(message { _ = try UMT5Encoder(config: config, weights: good, device: vulkan) }.contains("is on"))
        }
        #expect(throws: RuntimeError.self) { _ = try UMT5Encoder.load(path: UMT5Fixture.officialWeights, device: cpu, weightDType: .i32) }

        let encoder = try UMT5Encoder(config: config, weights: good, device: cpu)
        let program = try encoder.compile(batch: 1, length: 6, textLength: 8)
        #expect(throws: RuntimeError.self) { try program.run([[1, 2, 257]]) }                  // id outside the vocabulary
        #expect(throws: RuntimeError.self) { try program.run([[1, -1]]) }
        #expect(throws: RuntimeError.self) { try program.run([[1, 2, 3, 4, 5, 6, 7]]) }         // longer than the program
        #expect(throws: RuntimeError.self) { try program.run([[1], [2]]) }                      // more prompts than its batch
        #expect(throws: RuntimeError.self) { try program.run(ids: [1, 2, 3, 4, 5, 6], lengths: [7]) }
        #expect(throws: RuntimeError.self) { _ = try encoder.compile(batch: 1, length: 9, textLength: 8) }
        try program.run([[5, 6, 7]])
        #expect(try program.context().shape == [1, 8, 32])
        #expect(try program.trimmed().map(\.count) == [3 * 32])
    }
}
