import Testing
import WanModels

@Suite struct TensorEntryTests {
    @Test func sizesAndRuntimeTypes() {
        let e = TensorEntry(name: "blocks.0.ffn.0.weight", dtype: .bf16, shape: [8960, 1536])
        #expect(e.count == 8960 * 1536 && e.byteCount == 2 * 8960 * 1536)
        #expect(CheckpointDType.f8e4m3fn.runtimeType == .f8e4m3fn)
        #expect(CheckpointDType.i64.runtimeType == nil && CheckpointDType.i64.size == 8)
    }
}
