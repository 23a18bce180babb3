import Testing
@testable import WanRuntime

@Suite struct GatherTests {
    /// Every table/out dtype pair on every device against a float64 gather of what the table holds;
    /// out-of-range ids (negative, = V, large) give zero rows.
    @Test func gatherMatchesReference() throws {
        var rng = TestRandom(seed: 21)
        let (vocab, width) = (37, 53)
        let idShape = [3, 29]
        var ids = (0..<idShape.reduce(1, *)).map { _ in Int32(rng.next() % UInt64(vocab)) }
        ids[5] = -1
        ids[17] = Int32(vocab)
        ids[40] = 1_000_000
        let idBytes = ids.withUnsafeBytes { Array($0) }
        let raw = rng.floats(vocab * width, -3, 3)
        for device in try TestDevices.all() {
            let idTensor = try device.tensor(bytes: idBytes, shape: idShape, dtype: .i32)
            for tdt in [DType.f32, .f16, .bf16] {
                let held = quantized(raw, tdt)
                let table = try device.tensor(raw, shape: [vocab, width], dtype: tdt)
                var expected = [Double]()
                for id in ids {
                    let ok = id >= 0 && Int(id) < vocab
                    for c in 0..<width { expected.append(ok ? Double(held[Int(id) * width + c]) : 0) }
                }
                for odt in [DType.f32, .f16, .bf16] {
                    let out = try device.empty(idShape + [width], dtype: odt)
                    let cl = try CommandList(device: device)
                    try cl.gather(table, ids: idTensor, out: out)
                    try cl.run()
                    let got = try device.read(out)
                    let want = quantized(expected.map { Float($0) }, odt)
                    #expect(got == want, "\(device.name) \(tdt)->\(odt)")
                }
            }
        }
        TestDevices.checkValidation()
    }

    /// Wrong dtypes, shapes and devices are errors.
    @Test func badInputsThrow() throws {
        let cpu = TestDevices.cpu
        let table = try cpu.zeros([5, 4])
        let ids = try cpu.tensor(bytes: [UInt8](repeating: 0, count: 12), shape: [3], dtype: .i32)
        let cl = try CommandList(device: cpu)
        #expect(throws: RuntimeError.self) { try cl.gather(table, ids: try cpu.zeros([3]), out: try cpu.empty([3, 4])) }   // f32 ids
        #expect(throws: RuntimeError.self) { try cl.gather(table, ids: ids, out: try cpu.empty([3, 5])) }                 // width
        #expect(throws: RuntimeError.self) { try cl.gather(try cpu.zeros([20]), ids: ids, out: try cpu.empty([3, 4])) }   // rank
        #expect(throws: RuntimeError.self) { try cl.gather(table, ids: ids, out: try cpu.empty([3, 4], dtype: .i32)) }    // out dtype
        #expect(throws: RuntimeError.self) { try cl.gather(try table.transposed(), ids: ids, out: try cpu.empty([3, 5])) } // strided
        if let v = try TestDevices.vulkan() {
            #expect(throws: RuntimeError.self) { try cl.gather(try v.zeros([5, 4]), ids: ids, out: try cpu.empty([3, 4])) }
        }
        TestDevices.checkValidation()
    }
}
