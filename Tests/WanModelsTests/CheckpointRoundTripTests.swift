import Foundation
import Testing
import WanModels
import WanRuntime

/// The writer, the readers and the detector together: a tiny DiT written as safetensors (official and
/// diffusers names) reads back bit-exact and is recognised with its configuration; a damaged one is not.
@Suite struct CheckpointRoundTripTests {
    static func pattern(_ e: TensorEntry) -> [UInt8] {
        (0..<e.byteCount).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ e.name.utf8.count) }
    }

    @Test func writeReadDetect() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wan-roundtrip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = WanDiTConfig(modelType: .t2v, dim: 32, ffnDim: 48, numHeads: 2, numLayers: 2, textDim: 24)
        let official = config.expectedEntries(dtype: .bf16)

        let path = dir.appendingPathComponent("tiny.safetensors").path
        let size = try SafetensorsWriter.write(official, metadata: ["format": "pt"], to: path, bytes: Self.pattern)
        let reader = try CheckpointFile.open(path)
        #expect(reader.format == .safetensors && reader.metadata["format"] == "pt")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == size)
        #expect(reader.entries == official)
        for e in official { #expect(try reader.bytes(e.name) == Self.pattern(e)) }

        let detected = try WanCheckpointDetector.detect(reader.entries, options: WanDetectionOptions(allowCustom: true, numHeads: 2))
        #expect(detected.isCustom && detected.format.component == .dit && detected.format.convention == .official)
        #expect(detected.config == .dit(config))

        // The same model under diffusers names is recognised as such and maps back to the official list.
        let diffusers = try WanKeyMaps.fromOfficial(official, component: .dit, to: .diffusers).entries
        let dpath = dir.appendingPathComponent("diffusers.safetensors").path
        try SafetensorsWriter.write(diffusers, to: dpath, bytes: Self.pattern)
        let d2 = try WanCheckpointDetector.detect(try CheckpointFile.open(dpath).entries,
                                                   options: WanDetectionOptions(allowCustom: true, numHeads: 2))
        #expect(d2.format.convention == .diffusers && d2.config == .dit(config))

        // A file missing one tensor is not a known variant, and the error names the tensor.
        let damaged = official.filter { $0.name != "blocks.1.ffn.2.bias" }
        let bad = dir.appendingPathComponent("damaged.safetensors").path
        try SafetensorsWriter.write(damaged, to: bad, bytes: Self.pattern)
        #expect {
            _ = try WanCheckpointDetector.detect(try CheckpointFile.open(bad).entries, options: WanDetectionOptions(numHeads: 2))
        } throws: { "\($0)".contains("blocks.1.ffn.2.bias") }
    }

    @Test func writerRejectsBadInput() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wan-writer-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let e = TensorEntry(name: "x", dtype: .f32, shape: [2])
        #expect(throws: CheckpointError.self) { try SafetensorsWriter.write([e, e], to: path) { _ in [UInt8](repeating: 0, count: 8) } }
        #expect(throws: CheckpointError.self) { try SafetensorsWriter.write([e], to: path) { _ in [1, 2, 3] } }
        #expect(!FileManager.default.fileExists(atPath: path), "a failed write leaves no file under the requested name")
    }
}

/// Loading a weight as per-channel fp8 on the host gives the same bytes and scales as quantising it
/// with the runtime's kernel.
@Suite struct ScaledFP8LoadTests {
    @Test func hostQuantisationEqualsKernel() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wan-fp8-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let rows = 7, cols = 45
        var values = (0..<(rows * cols)).map { Float(sin(Double($0) * 0.37) * 3) }
        values[2 * cols + 1] = .infinity
        values[4 * cols + 3] = 2000
        for c in 0..<cols { values[5 * cols + c] = 0 }
        let entry = TensorEntry(name: "w", dtype: .f32, shape: [rows, cols])
        let path = dir.appendingPathComponent("w.safetensors").path
        try SafetensorsWriter.write([entry], to: path) { _ in HostConversion.encode(values, as: .f32) }
        let cpu = Device.cpu()
        let (w, s) = try CheckpointFile.open(path).loadScaledFP8("w", to: cpu)
        let x = try cpu.tensor(values, shape: [rows, cols])
        let q = try cpu.empty([rows, cols], dtype: .f8e4m3fn), sc = try cpu.empty([rows])
        let cl = try CommandList(device: cpu)
        try cl.quantizeFP8(x, out: q, scales: sc, scaling: .perChannel)
        try cl.run()
        #expect(try cpu.readBytes(w) == cpu.readBytes(q))
        #expect(try cpu.read(s) == cpu.read(sc))
    }
}
