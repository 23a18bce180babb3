import Foundation
import Testing
import WanModels
import WanPipelines
import WanRuntime

/// `wan forward`'s library: the DiT and umT5 fixtures (made by the PyTorch reference) run from files and
/// their written outputs match the golden tensors.
@Suite struct ComponentForwardTests {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("WanModelsTests/Fixtures")


    func temp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("wan-forward-\(UUID().uuidString)-\(name)").path
    }

    @Test func ditFromFiles() throws {
        let dir = Self.models.appendingPathComponent("dit")
        // The tiny model's configuration as a JSON file in the official names.
        let all = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as? [String: Any]
        let tiny = try #require(all?["tiny"] as? [String: Any])
        let configPath = temp("config.json")
        try JSONSerialization.data(withJSONObject: tiny).write(to: URL(fileURLWithPath: configPath))
        defer { try? FileManager.default.removeItem(atPath: configPath) }
        let golden = try CheckpointFile.open(dir.appendingPathComponent("cases.safetensors").path)
        for device in try PipelineTestSupport.devices() {
            let out = temp("out.safetensors")
            defer { try? FileManager.default.removeItem(atPath: out) }
            var o = ComponentForward.Options(component: "dit", weights: dir.appendingPathComponent("tiny.safetensors").path,
                                             inputs: dir.appendingPathComponent("cases.safetensors").path, output: out)
            o.inputPrefix = "a2."
            o.configPath = configPath
            o.textLen = tiny["text_len"] as? Int
            let written = try ComponentForward.run(o, device: device)
            #expect(written.map(\.name) == ["out"])
            let result = try CheckpointFile.open(out)
            #expect(result.metadata["component"] == "dit")
            let err = PipelineTestSupport.relError(try result.floats("out"), try golden.floats("a2.out"))
            #expect(err <= 1e-4, "\(device.name): \(err)")
        }
    }

    @Test func t5FromFiles() throws {
        let dir = Self.models.appendingPathComponent("umt5")
        let io = try CheckpointFile.open(dir.appendingPathComponent("umt5_tiny_io.safetensors").path)
        let hidden = try io.floats("hidden"), mask = try io.floats("mask")
        let shape = try #require(io.entry("hidden")?.shape)
        let (b, l, d) = (shape[0], shape[1], shape[2])
        let textLen = l + 10
        for device in try PipelineTestSupport.devices() {
            let out = temp("ctx.safetensors")
            defer { try? FileManager.default.removeItem(atPath: out) }
            var o = ComponentForward.Options(component: "t5", weights: dir.appendingPathComponent("umt5_tiny_transformers.safetensors").path,
                                             inputs: dir.appendingPathComponent("umt5_tiny_io.safetensors").path, output: out)
            o.textLen = textLen
            try ComponentForward.run(o, device: device)
            let ctx = try CheckpointFile.open(out).floats("context")
            #expect(ctx.count == b * textLen * d)
            // Each prompt's real rows equal the reference; everything after them is zero.
            var want = [Float](repeating: 0, count: b * textLen * d)
            for i in 0..<b {
                let n = (0..<l).filter { mask[i * l + $0] != 0 }.count
                for r in 0..<n { for c in 0..<d { want[(i * textLen + r) * d + c] = hidden[(i * l + r) * d + c] } }
            }
            #expect(PipelineTestSupport.relError(ctx, want) <= 1e-4, "\(device.name)")
        }
    }

    @Test func badArgumentsAreErrors() throws {
        let dir = Self.models.appendingPathComponent("umt5")
        var o = ComponentForward.Options(component: "vae3", weights: dir.appendingPathComponent("umt5_tiny_transformers.safetensors").path,
                                         inputs: dir.appendingPathComponent("umt5_tiny_io.safetensors").path, output: temp("x"))
        #expect(throws: RuntimeError.self) { try ComponentForward.run(o, device: Device.cpu()) }
        o.component = "t5"
        o.precision = "fp64"
        #expect(throws: RuntimeError.self) { try ComponentForward.run(o, device: Device.cpu()) }
        o.precision = "fp32"
        o.inputPrefix = "missing."
        #expect(throws: (any Error).self) { try ComponentForward.run(o, device: Device.cpu()) }
        #expect(!FileManager.default.fileExists(atPath: o.output))
    }
}

/// The VAE components read their inputs and fail clearly where the weights are not Wan 2.1's (the tiny
/// fixture VAE has z_dim 4, whose latent mean/std Wan does not define); the numerics of the VAE itself
/// are tested in VAETests.
@Suite struct ComponentForwardVAETests {
    @Test func vaeNeedsWan21Statistics() throws {
        let dir = ComponentForwardTests.models.appendingPathComponent("vae")
        let o = ComponentForward.Options(component: "vae-decode", weights: dir.appendingPathComponent("weights.safetensors").path,
                                         inputs: dir.appendingPathComponent("cases.safetensors").path,
                                         output: FileManager.default.temporaryDirectory.appendingPathComponent("wan-vae-\(UUID().uuidString)").path)
        #expect(throws: (any Error).self) { try ComponentForward.run(o, device: Device.cpu()) }
        #expect(!FileManager.default.fileExists(atPath: o.output))
    }
}
