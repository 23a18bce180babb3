import Foundation
import Testing
@testable import WanRuntime

/// Tensors larger than the device's maxStorageBufferRange (128 MiB on lavapipe): the kernels reach
/// memory through 64-bit buffer device addresses, so no binding range limits them. Checks a strided
/// copy, a converting strided copy and `convert` on Vulkan at the start, across the 128 MiB boundary,
/// at the end and at sampled positions everywhere.
@Suite struct LargeTensorTests {
    /// The input pattern: element i holds i mod a prime below 2^24 (exact in f32; a misplaced element
    /// shows up unless it moved by a multiple of the prime, far beyond any addressing slip checked).
    static let modulus = 16_777_213

    static func pattern(_ i: Int) -> Float { Float(i % modulus) }

    @Test func copyAndConvertBeyondStorageBufferRange() throws {
        guard let device = try TestDevices.vulkan(), let vk = device.vulkan else { return }
        let rows = 3701, cols = 11003 // 40.7M f32 elements, 155 MiB
        let n = rows * cols, bytes = n * 4
        let range = vk.capabilities.maxStorageBufferRange
        if vk.capabilities.isSoftware {
            #expect(range < bytes, "lavapipe's maxStorageBufferRange \(range) should be below the test tensor's \(bytes) bytes")
        } else if range >= bytes {
            print("note: \(device.label) has maxStorageBufferRange \(range) >= \(bytes) bytes; this test does not cross it there")
        }

        // Upload the pattern (filled through a running counter: no per-element division).
        let values = [Float](unsafeUninitializedCapacity: n) { buf, count in
            let p = buf.baseAddress!
            var v = 0
            for i in 0..<n {
                p[i] = Float(v)
                v += 1
                if v == Self.modulus { v = 0 }
            }
            count = n
        }
        let x = try device.tensor(values, shape: [rows, cols])

        // 1. Strided raw copy into columns 1..<cols+1 of a wider tensor (offset 1: 4-byte units).
        let wide = try device.zeros([rows, cols + 2])
        // 2. Converting copy of that strided slice to f16 (the converting path of the copy kernel).
        let half = try device.empty([rows, cols], dtype: .f16)
        // 3. Dense conversion to bf16.
        let brain = try device.empty([rows, cols], dtype: .bf16)
        let cl = try CommandList(device: device)
        let slice = try wide.sliced(dim: 1, 1..<cols + 1)
        try cl.copy(x, into: slice)
        try cl.copy(slice, into: half)
        try cl.convert(x, out: brain)
        try cl.run()

        // Positions to check: the first and last 2048 elements, 4096 around the 128 MiB boundary of
        // x (and of the wide tensor, whose elements sit further out), and ~200k spread with a stride.
        var positions = Array(0..<2048) + Array(n - 2048..<n)
        for boundary in [range / 4, range / 4 * cols / (cols + 2)] where boundary < n {
            positions += Array(max(0, boundary - 2048)..<min(n, boundary + 2048))
        }
        positions += Array(stride(from: 17, to: n, by: 223))

        let wideBytes = try device.readBytes(wide)
        let halfBytes = try device.readBytes(half)
        let brainBytes = try device.readBytes(brain)
        // Mismatch count and first few examples per result.
        var wrong = [0, 0, 0], examples: [String] = []
        func miss(_ k: Int, _ text: @autoclosure () -> String) {
            wrong[k] += 1
            if wrong[k] <= 3 { examples.append(text()) }
        }
        wideBytes.withUnsafeBytes { w in
            halfBytes.withUnsafeBytes { h in
                brainBytes.withUnsafeBytes { b in
                    let wf = w.bindMemory(to: Float.self), hb = h.bindMemory(to: UInt16.self), bb = b.bindMemory(to: UInt16.self)
                    for i in positions {
                        let r = i / cols, c = i % cols
                        let want = Self.pattern(i)
                        let got = wf[r * (cols + 2) + c + 1]
                        if got != want { miss(0, "copy into slice: [\(r), \(c + 1)] = \(got), want \(want)") }
                        if hb[i] != Float16(want).bitPattern { miss(1, "converting copy to f16: [\(i)] = \(Float16(bitPattern: hb[i])), want \(Float16(want))") }
                        if bb[i] != ScalarConversion.floatToBF16(want) { miss(2, "convert to bf16: [\(i)] = \(bb[i]), want \(ScalarConversion.floatToBF16(want))") }
                    }
                    // The columns around the slice stay zero.
                    for r in [0, rows / 2, rows - 1] where wf[r * (cols + 2)] != 0 || wf[r * (cols + 2) + cols + 1] != 0 {
                        miss(0, "copy into slice: row \(r) wrote outside the slice")
                    }
                }
            }
        }
        #expect(wrong == [0, 0, 0], "mismatches (copy, converting copy, convert) of \(positions.count) checked: \(wrong)\n\(examples.joined(separator: "\n"))")
        TestDevices.checkValidation()
    }
}
