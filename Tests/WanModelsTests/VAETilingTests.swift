import Foundation
import Testing
@testable import WanModels
import WanRuntime

/// Spatially tiled VAE decode against diffusers' own `tiled_decode` of the fixture VAE
/// (Fixtures/vae/generate_vae_tiled.py): two tile geometries with edge tiles, on the CPU and the Vulkan device.
@Suite struct VAETilingTests {
    static func path(_ name: String) -> String { CheckpointFixtures.path("vae/" + name) }

    static func load(_ device: Device) throws -> WanVAE {
        try WanVAE.load(path: path("weights.safetensors"), device: device,
                        config: WanVAEConfig(dim: 6, zDim: 4, dimMult: [1, 2, 2, 2], numResBlocks: 1),
                        latentMean: Array(WanVAE.wan21LatentMean.prefix(4)), latentStd: Array(WanVAE.wan21LatentStd.prefix(4)))
    }

    /// Frames 0 and 3 of a [3, 5, H, W] video.
    static func keptFrames(_ v: [Float], height: Int, width: Int) -> [Float] {
        let plane = height * width
        var out: [Float] = []
        for c in 0..<3 { for f in [0, 3] { out += v[((c * 5 + f) * plane)..<((c * 5 + f + 1) * plane)] } }
        return out
    }

    @Test func matchesDiffusersTiledDecode() throws {
        let golden = try CheckpointFile.open(Self.path("tiled.safetensors"))
        let latent = try golden.floats("latent")
        for device in try CheckpointTestDevices.all() {
            let vae = try Self.load(device)
            for (name, tiling) in [("tiled", WanVAE.Tiling(tile: 8, stride: 6)), ("tiled_b", WanVAE.Tiling(tile: 6, stride: 4))] {
                let video = try vae.decodeTiled(latent: latent, frames: 2, height: 10, width: 14, tiling: tiling)
                #expect(video.count == 3 * 5 * 80 * 112)
                let expected = try golden.floats(name)
                let err = zip(Self.keptFrames(video, height: 80, width: 112), expected).map { Double(abs($0 - $1)) }.max() ?? .infinity
                #expect(err < 1e-4, "\(name) on \(device.name): max abs error \(err)")
            }
            // A latent one tile holds is a plain decode.
            let small = Array(latent.prefix(4 * 2 * 10 * 14))
            let plain = try vae.decode(latent: small, frames: 2, height: 10, width: 14)
            let again = try vae.decode(latent: small, frames: 2, height: 10, width: 14)
            #expect(again == plain, "decode is deterministic on \(device.name): max diff \(zip(again, plain).map { abs($0 - $1) }.max() ?? 0)")
            #expect(try vae.decodeTiled(latent: small, frames: 2, height: 10, width: 14, tiling: .init(tile: 16, stride: 12)) == plain)
            #expect(throws: RuntimeError.self) { try vae.decodeTiled(latent: small, frames: 2, height: 10, width: 14, tiling: .init(tile: 4, stride: 6)) }
            #expect(throws: RuntimeError.self) { try vae.decodeTiled(latent: small, frames: 3, height: 10, width: 14) }
        }
        CheckpointTestDevices.checkValidation()
    }
}
