import Foundation
import Testing
import WanGraph
@testable import WanModels
@testable import WanRuntime

/// The VAE goldens of Fixtures/vae (generate_vae.py: diffusers' AutoencoderKLWan in fp32, dim 6,
/// z_dim 4, dim_mult [1, 2, 2, 2], num_res_blocks 1, weights saved under the official names).
private enum VAEFixture {
    static func path(_ name: String) -> String { CheckpointFixtures.path("vae/" + name) }
    static let config = WanVAEConfig(dim: 6, zDim: 4, dimMult: [1, 2, 2, 2], numResBlocks: 1)
    static let mean = Array(WanVAE.wan21LatentMean.prefix(4))
    static let std = Array(WanVAE.wan21LatentStd.prefix(4))
    static let height = 16, width = 24

    static func load(_ device: Device) throws -> WanVAE {
        try WanVAE.load(path: path("weights.safetensors"), device: device, config: config, latentMean: mean, latentStd: std)
    }
}

/// max |a − b| / max |b|.
private func relativeMaxError(_ a: [Float], _ b: [Float]) -> Double {
    guard a.count == b.count else { return .infinity }
    var d = 0.0, s = 1e-30
    for i in a.indices {
        d = max(d, Double(abs(a[i] - b[i])))
        s = max(s, Double(abs(b[i])))
    }
    return d / s
}

private func errorText(_ body: () throws -> Void) -> String {
    do { try body() } catch { return "\(error)" }
    return ""
}

@Suite struct VAETests {
    /// Decode of 1, 2, 3, 5 latent frames (one latent frame per chunk, caches carried on the device)
    /// against diffusers' whole-video decode; frames arrive 1, then 4 per chunk. Vulkan runs the 5-frame
    /// case only (chunk 0, the "Rep" chunk and the steady-state chunks) to keep lavapipe fast.
    @Test func decodeMatchesReference() throws {
        let cases = try CheckpointFile.open(VAEFixture.path("cases.safetensors"))
        let (h, w) = (VAEFixture.height / 8, VAEFixture.width / 8)
        for device in try CheckpointTestDevices.all() {
            let vae = try VAEFixture.load(device)
            let frameCounts = device.vulkan == nil ? [1, 2, 3, 5] : [5]
            for frames in frameCounts {
                let latent = try cases.floats("decode\(frames).latent")
                let golden = try cases.floats("decode\(frames).video")
                var chunkSizes: [Int] = []
                var streamed: [[Float]] = []
                try vae.decode(latent: latent, frames: frames, height: h, width: w) { values, n in
                    chunkSizes.append(n)
                    streamed.append(values)
                }
                #expect(chunkSizes == [1] + Array(repeating: 4, count: frames - 1))
                let video = try vae.decode(latent: latent, frames: frames, height: h, width: w)
                #expect(video.count == golden.count)
                let err = relativeMaxError(video, golden)
                #expect(err <= 1e-4, "\(device.name) decode \(frames): relative max error \(err)")
                // The streamed chunks are the golden's frames in order.
                let plane = VAEFixture.height * VAEFixture.width
                let total = 1 + 4 * (frames - 1)
                var start = 0
                for (k, values) in streamed.enumerated() {
                    let n = chunkSizes[k]
                    var part: [Float] = []
                    for c in 0..<3 { part += golden[((c * total + start) * plane)..<((c * total + start + n) * plane)] }
                    let e = relativeMaxError(values, part)
                    #expect(e <= 1e-4, "\(device.name) decode \(frames) chunk \(k): \(e)")
                    start += n
                }
            }
        }
        CheckpointTestDevices.checkValidation()
    }

    /// `fp16Compute`: every convolution on tensor cores with fp16 operands (emulated on devices without them) stays
    /// within fp16 tolerance (3e-2 at the worst pixel, 5e-3 root mean square, relative) of diffusers' fp32 decode and differs from our fp32 decode (so the path ran); the CPU
    /// computes fp32 either way. Vulkan decodes 5 latent frames and encodes 9 frames (1e-2), the CPU decodes 2.
    @Test func fp16ComputeMatchesReference() throws {
        let cases = try CheckpointFile.open(VAEFixture.path("cases.safetensors"))
        let (h, w) = (VAEFixture.height / 8, VAEFixture.width / 8)
        for device in try CheckpointTestDevices.all() {
            let frames = device.vulkan == nil ? 2 : 5
            let latent = try cases.floats("decode\(frames).latent")
            let golden = try cases.floats("decode\(frames).video")
            let exact = try VAEFixture.load(device).decode(latent: latent, frames: frames, height: h, width: w)
            let vae = try WanVAE.load(path: VAEFixture.path("weights.safetensors"), device: device, config: VAEFixture.config,
                                      latentMean: VAEFixture.mean, latentStd: VAEFixture.std, fp16Compute: true)
            #expect(vae.fp16Compute)
            let tensorCores = device.conv3dUsesTensorCores(x: .f32, weight: .f32, fp16Compute: true)
            // Emulated on lavapipe (32 KiB of shared memory): a 64x64 tile of 4 subgroups.
            let emulated = device.vulkan != nil && !tensorCores
            let emulation = emulated ? (CoopmatEmulation(), GEMMCoopmat.Tile(bm: 64, bn: 64, bk: 32, wm: 32, wn: 32)) : nil
            let video = try Conv3DCoopmat.$emulatedForTests.withValue(emulation) {
                try vae.decode(latent: latent, frames: frames, height: h, width: w)
            }
            if device.vulkan != nil {
                // The encoder (its stride-2 convolutions) too: 9 frames.
                let encoded = try Conv3DCoopmat.$emulatedForTests.withValue(emulation) {
                    try vae.encode(video: try cases.floats("encode9.video"), frames: 9, height: VAEFixture.height, width: VAEFixture.width)
                }
                let e = relativeMaxError(encoded, try cases.floats("encode9.latent"))
                #expect(e <= 1e-2, "\(device.name) fp16-compute encode 9: relative max error \(e) (measured on lavapipe: 1.1e-3)")
            }
            // fp16 operands (unit roundoff 2^-11) through the decoder's convolutions: measured on lavapipe 1.3e-2 at the
            // worst pixel, 2.0e-3 root mean square.
            let err = relativeMaxError(video, golden)
            let rms = zip(video, golden).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
                / max(golden.reduce(0.0) { $0 + Double($1) * Double($1) }, 1e-30)
            #expect(err <= 3e-2 && rms.squareRoot() <= 5e-3,
                    "\(device.name) fp16-compute decode \(frames): relative max error \(err), rms \(rms.squareRoot())")
            let moved = relativeMaxError(video, exact)
            if device.vulkan != nil {
                #expect(moved > 0, "\(device.name): the fp16-compute decode equals the fp32 one (tensor cores not used)")
            } else {
                #expect(moved == 0, "the CPU computes fp32 either way")
            }
            print("note: \(device.name) VAE decode with fp16 compute\(emulated ? " (emulated tensor cores)" : ""): relative max error \(err), rms \(rms.squareRoot()) (fp32 path \(relativeMaxError(exact, golden)))")
        }
        CheckpointTestDevices.checkValidation()
    }

    /// Encode of 1, 5, 9 frames (first frame alone, then 4-frame chunks) against diffusers' encode +
    /// the official normalisation. Vulkan runs 1 and 9 frames.
    @Test func encodeMatchesReference() throws {
        let cases = try CheckpointFile.open(VAEFixture.path("cases.safetensors"))
        for device in try CheckpointTestDevices.all() {
            let vae = try VAEFixture.load(device)
            for frames in device.vulkan == nil ? [1, 5, 9] : [1, 9] {
                let video = try cases.floats("encode\(frames).video")
                let golden = try cases.floats("encode\(frames).latent")
                let latent = try vae.encode(video: video, frames: frames, height: VAEFixture.height, width: VAEFixture.width)
                let err = relativeMaxError(latent, golden)
                #expect(err <= 1e-4, "\(device.name) encode \(frames): relative max error \(err)")
            }
        }
        CheckpointTestDevices.checkValidation()
    }

    /// The loader maps diffusers names (Wan 2.1's level structure: num_res_blocks 2) to official ones:
    /// a random tiny VAE written under diffusers names decodes exactly like the same weights given directly.
    @Test func loadsDiffusersNames() throws {
        let device = Device.cpu()
        let config = WanVAEConfig(dim: 2, zDim: 4, dimMult: [1, 2, 2, 2], numResBlocks: 2)
        var rng = SystemRandomNumberGenerator()
        var official: [String: [Float]] = [:]
        var entries: [TensorEntry] = []
        var byName: [String: [Float]] = [:]
        for spec in config.expectedTensors() {
            let v = (0..<spec.shape.reduce(1, *)).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
            official[spec.name] = v
            let names = WanKeyMaps.names(forOfficial: spec.name, component: .vae, convention: .diffusers)
            #expect(names.count == 1, "\(spec.name) → \(names)")
            guard let name = names.first else { continue }
            entries.append(TensorEntry(name: name, dtype: .f32, shape: spec.shape))
            byName[name] = v
        }
        let path = NSTemporaryDirectory() + "wan-vae-diffusers-\(UInt32.random(in: 0...UInt32.max)).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafetensorsWriter.write(entries, to: path) { e in HostConversion.encode(byName[e.name] ?? [], as: .f32) }
        let mean = VAEFixture.mean, std = VAEFixture.std
        let loaded = try WanVAE.load(path: path, device: device, config: config, latentMean: mean, latentStd: std)
        let direct = try WanVAE(config: config, weights: try official.mapValues { v in
            try device.tensor(v, shape: [v.count]) }.reduce(into: [:]) { d, kv in
                d[kv.key] = try kv.value.reshaped(config.expectedTensors().first { $0.name == kv.key }?.shape ?? []) },
            device: device, latentMean: mean, latentStd: std)
        let latent = (0..<(4 * 2 * 1 * 2)).map { _ in Float.random(in: -1...1, using: &rng) }
        let a = try loaded.decode(latent: latent, frames: 2, height: 1, width: 2)
        let b = try direct.decode(latent: latent, frames: 2, height: 1, width: 2)
        #expect(a.count == 3 * 5 * 8 * 16)
        #expect(a == b)
        #expect(a.contains { abs($0) < 0.999 }, "the decode saturated: the comparison would be weak")
    }

    /// Missing, misshaped and unexpected weights, wrong mean/std and bad input sizes throw clear errors.
    @Test func rejectsBadWeightsAndInputs() throws {
        let device = Device.cpu()
        let config = VAEFixture.config
        var weights: [String: Tensor] = [:]
        for spec in config.expectedTensors() { weights[spec.name] = try device.zeros(spec.shape) }
        _ = try WanVAE(config: config, weights: weights, device: device, latentMean: VAEFixture.mean, latentStd: VAEFixture.std)

        var missing = weights
        missing["decoder.head.2.weight"] = nil
        #expect(errorText { _ = try WanVAE(config: config, weights: missing, device: device, latentMean: VAEFixture.mean, latentStd: VAEFixture.std) }
            .contains("missing decoder.head.2.weight"))
        var misshaped = weights
        misshaped["encoder.conv1.weight"] = try device.zeros([6, 3, 3, 3, 1])
        #expect(errorText { _ = try WanVAE(config: config, weights: misshaped, device: device, latentMean: VAEFixture.mean, latentStd: VAEFixture.std) }
            .contains("encoder.conv1.weight: shape"))
        var extra = weights
        extra["decoder.extra"] = try device.zeros([1])
        #expect(errorText { _ = try WanVAE(config: config, weights: extra, device: device, latentMean: VAEFixture.mean, latentStd: VAEFixture.std) }
            .contains("unexpected decoder.extra"))
        #expect(errorText { _ = try WanVAE(config: config, weights: weights, device: device) }.contains("latent mean/std"))

        let vae = try WanVAE(config: config, weights: weights, device: device, latentMean: VAEFixture.mean, latentStd: VAEFixture.std)
        #expect(errorText { _ = try vae.decode(latent: [0, 1], frames: 1, height: 2, width: 3) }.contains("WanVAE.decode"))
        #expect(errorText { _ = try vae.encode(video: Array(repeating: 0, count: 3 * 2 * 16 * 24), frames: 2, height: 16, width: 24) }
            .contains("WanVAE.encode"))
        // A checkpoint of another model is rejected by the loader.
        #expect(!errorText { _ = try WanVAE.load(path: CheckpointFixtures.path("dit/tiny.safetensors"), device: device, config: config) }.isEmpty)
    }
}
