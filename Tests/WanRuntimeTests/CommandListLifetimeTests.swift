import Foundation
import Testing
@testable import WanRuntime

/// A command list keeps the tensors it uses alive while it exists, and no longer: a released list
/// (a released compiled graph) gives its memory back. (The CPU recorder once leaked every list: its op
/// closures held the recorder that held them.)
@Suite struct CommandListLifetimeTests {
    @Test func releasedListsFreeTheirTensors() throws {
        for device in try TestDevices.all() {
            var storages: [Storage] = []
            weak var probeList: CommandList?
            try {
                var rng = TestRandom(seed: 77)
                func t(_ shape: [Int], _ dtype: DType = .f32) throws -> Tensor {
                    let x = try device.tensor(rng.floats(shape.reduce(1, *)), shape: shape, dtype: dtype)
                    storages.append(x.storage)
                    return x
                }
                let list = try CommandList(device: device)
                probeList = list
                // One op of every kind the CPU recorder has a closure for.
                let a = try t([6, 16]), w = try t([8, 16]), g = try t([6, 8])
                try list.gemm(a, w, out: g, transposeB: true, bias: try t([8]), activation: .geluTanh)
                let x = try t([1, 4, 3, 5, 6]), y = try t([1, 4, 3, 5, 6])
                try list.conv3d(x, weight: try t([4, 4, 3, 3, 3]), bias: try t([4]), cache: try t([1, 4, 2, 5, 6]),
                                params: Conv3DParams(kernel: (3, 3, 3), padFront: 2, padTop: 1, padBottom: 1, padLeft: 1, padRight: 1),
                                out: y)
                let q = try t([1, 7, 2, 16]), o = try t([1, 7, 2, 16])
                try list.attention(q: q, k: try t([1, 9, 2, 16]), v: try t([1, 9, 2, 16]), out: o)
                let table = try RoPETable.wan3D(device: device, headDim: 16, frames: 1, height: 1, width: 7)
                try list.rope(q, table: table, out: try t([1, 7, 2, 16]))
                try list.layerNorm(g, weight: nil, bias: nil, eps: 1e-6, out: try t([6, 8]))
                try list.rmsNorm(g, weight: try t([8]), eps: 1e-6, out: try t([6, 8]))
                try list.softmax(g, out: try t([6, 8]))
                try list.reduce(.sum, g, out: try t([6, 1]))
                try list.unary(.silu, g, out: try t([6, 8]))
                try list.binary(.add, g, g, out: try t([6, 8]))
                try list.convert(g, out: try t([6, 8], .f16))
                try list.copy(g, into: try t([6, 8]))
                try list.permute(g, order: [1, 0], out: try t([8, 6]))
                try list.concat([g, g], dim: 0, out: try t([12, 8]))
                try list.pad(g, before: [1, 0], after: [0, 2], out: try t([7, 10]))
                let ids = try device.tensor(bytes: [1, 0, 0, 0, 3, 0, 0, 0], shape: [2], dtype: .i32)
                storages.append(ids.storage)
                try list.gather(w, ids: ids, out: try t([2, 16]))
                try list.run()
            }()
            let weakStorages = storages.map { WeakBox($0) }
            storages.removeAll()
            #expect(probeList == nil, "\(device.name): the command list outlived its last reference")
            let alive = weakStorages.filter { $0.value != nil }.count
            #expect(alive == 0, "\(device.name): \(alive) of \(weakStorages.count) tensors outlived their command list")
        }
    }
}

private final class WeakBox {
    weak var value: Storage?
    init(_ value: Storage) { self.value = value }
}
