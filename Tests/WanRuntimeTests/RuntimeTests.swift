import Foundation
import Testing
@testable import WanRuntime

/// The device layer: selection, capabilities, memory, command recording, transfers, views.
@Suite struct RuntimeTests {
    @Test func deviceSelectors() throws {
        #expect(try Device.open("cpu").isCPU)
        #expect(throws: RuntimeError.self) { try Device.open("gpu") }
        #expect(throws: RuntimeError.self) { try Device.open("vulkan:x") }
        #expect(throws: RuntimeError.self) { try Device.open("vulkan:-1") }
        guard let v = try TestDevices.vulkan() else { return }
        let list = try Device.enumerateVulkan()
        #expect(!list.isEmpty)
        #expect(throws: RuntimeError.self) { try Device.open("vulkan:\(list.count)") }
        // `auto` never picks a software Vulkan driver over the CPU path.
        let auto = try Device.open("auto")
        if list.allSatisfy({ $0.capabilities.isSoftware }) { #expect(auto.isCPU) } else { #expect(!auto.isCPU) }
        _ = v
    }

    /// OpenBLAS's fallback to generic kernels on a CPU it did not recognise is pointed out with the core type to set.
    @Test func blasAdviceForGenericKernels() {
        #expect(CPUDevice.blasAdvice(core: "Prescott", flags: ["sse3", "avx2", "fma", "avx512f", "avx512bw"])?.contains("OPENBLAS_CORETYPE=SkylakeX") == true)
        #expect(CPUDevice.blasAdvice(core: "Prescott", flags: ["sse3", "avx2", "fma"])?.contains("OPENBLAS_CORETYPE=Haswell") == true)
        #expect(CPUDevice.blasAdvice(core: "Prescott", flags: ["sse3"]) == nil)
        #expect(CPUDevice.blasAdvice(core: "Cooperlake", flags: ["avx2", "fma", "avx512f", "avx512bw"]) == nil)
        #expect(CPUDevice.blasAdvice(core: "Zen", flags: ["avx2", "fma"]) == nil)
    }

    @Test func capabilitiesAreRead() throws {
        guard let d = try TestDevices.vulkan(), let v = d.vulkan else { return }
        let c = v.capabilities
        #expect(c.subgroupSize >= 1)
        #expect(c.maxComputeSharedMemorySize >= 16384)
        #expect(c.maxStorageBufferRange >= 1 << 27)
        #expect(c.maxMemoryAllocationSize >= c.maxStorageBufferRange / 2)
        #expect(c.maxPushConstantsSize >= 128)
        #expect(c.bufferDeviceAddress && c.storageBuffer16BitAccess && c.storageBuffer8BitAccess)
        #expect(!c.heaps.isEmpty && c.deviceLocalBytes > 0)
        #expect(!c.description.isEmpty)
        if TestDevices.required && ProcessInfo.processInfo.environment["WAN_VK_VALIDATION"] == "1" {
            // CI installs the Khronos layer: the tests must really run under it.
            #expect(v.instance.validationEnabled, "validation layer requested but not active")
        }
    }

    @Test func allocatorSubAllocatesAndReuses() throws {
        guard let d = try TestDevices.vulkan(), let v = d.vulkan else { return }
        let alloc = v.allocator
        // Many small tensors share blocks; memory comes back when they go.
        var tensors: [Tensor] = []
        for i in 0..<64 { tensors.append(try d.empty([1000 + i], dtype: .f32)) }
        let blocksAddresses = Set(tensors.map { t -> UInt64 in
            if case let .vulkan(a) = t.storage.backing { return a.block.address }
            return 0
        })
        #expect(blocksAddresses.count <= 2, "64 small tensors should share a block")
        // Distinct, aligned, non-overlapping ranges.
        let ranges = tensors.map { t -> (UInt64, UInt64) in (t.deviceAddress, t.deviceAddress + UInt64(t.byteCount)) }.sorted { $0.0 < $1.0 }
        for i in 1..<ranges.count { #expect(ranges[i].0 >= ranges[i - 1].1) }
        #expect(tensors.allSatisfy { $0.deviceAddress % UInt64(VulkanAllocator.alignment) == 0 })
        let used = alloc.statistics.used
        tensors.removeAll()
        #expect(alloc.statistics.used <= used - 64 * 4000)
        // A freed range is found again (first fit after coalescing).
        let a = try d.empty([10_000])
        let addr = a.deviceAddress
        _ = consume a
        let b = try d.empty([10_000])
        #expect(b.deviceAddress == addr)
        // Larger than one tensor may ever be: a clear error, no driver call.
        #expect(throws: RuntimeError.self) { _ = try d.empty([alloc.maxAllocation / 4 + 1024], dtype: .f32) }
    }

    @Test func largeBlockGetsDedicatedAllocation() throws {
        guard let d = try TestDevices.vulkan(), let v = d.vulkan else { return }
        let size = v.allocator.blockSize + 4096
        guard size <= v.allocator.maxAllocation else { return }
        let before = v.allocator.statistics.reserved
        do {
            let t = try d.empty([size], dtype: .u8)
            withExtendedLifetime(t) { #expect(v.allocator.statistics.reserved >= before + size) }
        }
        #expect(v.allocator.statistics.reserved <= before, "a dedicated block is released with its tensor")
    }

    @Test func memoryBudgetIsEnforcedAndGivenBack() throws {
        guard try TestDevices.vulkan() != nil else { return }
        let budget = 5 << 20
        let d = try Device.vulkan(0, options: VulkanOptions(memoryBudget: budget))
        guard let v = d.vulkan else { return }
        // Under the budget: tensors get blocks of their own (a 256 MiB shared block would not fit).
        // (Kept alive explicitly: optimised builds may free values after their last use.)
        var held = [try d.empty([256 * 1024]), try d.empty([256 * 1024])]       // 2 × 1 MiB
        try withExtendedLifetime(held) {
            #expect(v.allocator.statistics.reserved <= budget)
            do {
                _ = try d.empty([1024 * 1024])                                     // 4 MiB more: over
                Issue.record("an allocation beyond the budget succeeded")
            } catch let RuntimeError.outOfDeviceMemory(requested, detail) {
                #expect(requested == 4 << 20 && detail.contains("budget"))
            }
        }
        held.removeAll()
        #expect(v.allocator.statistics.reserved == 0, "freed dedicated blocks go back to the driver")
        let big = try d.empty([512 * 1024])                                        // 2 MiB (+ 2 MiB staging on a GPU)
        try d.write([UInt8](repeating: 7, count: 2 << 20), to: big)
        #expect(try d.readBytes(big).allSatisfy { $0 == 7 })
        #expect(throws: RuntimeError.self) { _ = try Device.vulkan(0, options: VulkanOptions(memoryBudget: 0)) }
    }

    @Test func hostResidentTensorsAreReadByKernelsAndNotBudgeted() throws {
        for d in try TestDevices.all() {
            let values = (0..<(37 * 19)).map { Float($0 % 23) - 11 }
            let host = try d.tensor(values, shape: [37, 19], residence: .host)
            #expect(host.storage.residence == (d.isCPU ? .device : .host))
            #expect(try d.read(host) == values)
            // Copied into device memory (as a streamed weight is) and read directly by a kernel.
            let local = try d.empty([37, 19])
            let x = try d.tensor((0..<(5 * 19)).map { Float($0 % 7) }, shape: [5, 19])
            let y1 = try d.empty([5, 37]), y2 = try d.empty([5, 37])
            let cl = try CommandList(device: d)
            try cl.copy(host, into: local)
            try cl.gemm(x, local, out: y1, transposeB: true)
            try cl.gemm(x, host, out: y2, transposeB: true)
            try cl.run()
            #expect(try d.read(local) == values)
            #expect(try d.read(y1) == d.read(y2))
        }
        guard try TestDevices.vulkan() != nil else { return }
        let d = try Device.vulkan(0, options: VulkanOptions(memoryBudget: 1 << 20))
        let big = try d.empty([1 << 20], residence: .host)       // 4 MiB of host memory under a 1 MiB device budget
        #expect(big.storage.residence == .host)
        #expect(throws: RuntimeError.self) { _ = try d.empty([1 << 20]) }
        withExtendedLifetime(big) {}
    }

    @Test func uploadDownloadBothPaths() throws {
        guard TestDevices.required || (try? TestDevices.vulkan()) != nil else { return }
        var rng = TestRandom(seed: 3)
        let values = rng.floats(12_345)
        for staging in [false, true] {
            let d = try Device.vulkan(0, options: VulkanOptions(forceStaging: staging))
            for dtype in [DType.f32, .f16, .bf16] {
                let t = try d.tensor(values, shape: [12_345], dtype: dtype)
                #expect(try d.read(t) == quantized(values, dtype))
            }
            let z = try d.zeros([1001], dtype: .f16)
            #expect(try d.read(z).allSatisfy { $0 == 0 })
            // A view that starts inside the storage reads from the right offset.
            let t = try d.tensor(values, shape: [12_345])
            let s = try t.sliced(dim: 0, 100..<200)
            #expect(try d.read(s) == Array(values[100..<200]))
        }
        TestDevices.checkValidation()
    }

    @Test func recorderInsertsBarriersOnlyOnHazards() throws {
        for d in try TestDevices.all() {
            let a = try d.tensor([1, 2, 3, 4], shape: [4])
            let b = try d.empty([4], dtype: .f16)
            let c = try d.empty([4], dtype: .f32)
            let e = try d.empty([4], dtype: .bf16)
            let list = try CommandList(device: d)
            try list.convert(a, out: b)   // writes b
            try list.convert(a, out: e)   // reads a again: no hazard
            try list.convert(b, out: c)   // reads b: RAW hazard -> barrier
            try list.run()
            #expect(list.kernelCount == 3)
            if !d.isCPU { #expect(list.barrierCount == 1) }
            #expect(try d.read(c) == [1, 2, 3, 4])
            #expect(try d.read(e) == [1, 2, 3, 4])
            // Replay sees new input contents.
            try d.write(HostConversion.encode([5, 6, 7, 8], as: .f32), to: a)
            try list.run()
            #expect(try d.read(c) == [5, 6, 7, 8])
            // A submitted list cannot be extended on Vulkan.
            if !d.isCPU { #expect(throws: RuntimeError.self) { try list.convert(a, out: b) } }
        }
        TestDevices.checkValidation()
    }

    @Test func profilingReportsEveryKernel() throws {
        for d in try TestDevices.all() {
            let a = try d.tensor(Array(repeating: 1, count: 4096), shape: [4096])
            let b = try d.empty([4096], dtype: .f16)
            let list = try CommandList(device: d, profile: true)
            for _ in 0..<3 { try list.convert(a, out: b) }
            try list.run()
            let t = try list.timings()
            if d.vulkan?.capabilities.timestampSupported ?? true {
                #expect(t.count == 3)
                #expect(t.allSatisfy { $0.milliseconds >= 0 && $0.label.hasPrefix("convert") })
            }
        }
        TestDevices.checkValidation()
    }

    @Test func mixingDevicesIsAnError() throws {
        guard let v = try TestDevices.vulkan() else { return }
        let a = try TestDevices.cpu.tensor([1, 2], shape: [2])
        let b = try v.empty([2])
        let list = try CommandList(device: v)
        #expect(throws: RuntimeError.self) { try list.convert(a, out: b) }
        #expect(throws: RuntimeError.self) { try v.read(a) }
    }

    @Test func pipelineCacheIsWritten() throws {
        guard TestDevices.required || (try? TestDevices.vulkan()) != nil else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wan-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let d = try Device.vulkan(0, options: VulkanOptions(pipelineCacheDirectory: dir))
            let a = try d.tensor([1, 2, 3], shape: [3])
            let b = try d.empty([3], dtype: .bf16)
            let list = try CommandList(device: d)
            try list.convert(a, out: b)
            try list.run()
            d.vulkan?.savePipelineCache()
            let url = try #require(d.vulkan?.pipelineCacheURL)
            #expect(FileManager.default.fileExists(atPath: url.path))
        }
        // A corrupt cache file is ignored, not fatal.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        for f in files { try Data("garbage".utf8).write(to: dir.appendingPathComponent(f)) }
        let d2 = try Device.vulkan(0, options: VulkanOptions(pipelineCacheDirectory: dir))
        let list = try CommandList(device: d2)
        try list.convert(try d2.tensor([1], shape: [1]), out: try d2.empty([1], dtype: .f16))
        try list.run()
        TestDevices.checkValidation()
    }

    @Test func tensorViews() throws {
        let d = TestDevices.cpu
        let t = try d.tensor((0..<24).map(Float.init), shape: [2, 3, 4])
        #expect(t.isContiguous && t.strides == [12, 4, 1])
        let p = try t.permuted([2, 0, 1])
        #expect(p.shape == [4, 2, 3] && p.strides == [1, 12, 4] && !p.isContiguous)
        let s = try t.sliced(dim: 1, 1..<3)
        #expect(s.shape == [2, 2, 4] && s.offset == 4 && !s.isContiguous)
        #expect(s.byteRange == 16..<96)
        #expect(try t.reshaped([6, -1]).shape == [6, 4])
        #expect(throws: RuntimeError.self) { try t.reshaped([5, -1]) }
        #expect(throws: RuntimeError.self) { try p.reshaped([24]) }
        #expect(throws: RuntimeError.self) { try t.sliced(dim: 3, 0..<1) }
        #expect(throws: RuntimeError.self) { try t.permuted([0, 0, 1]) }
        #expect(try t.transposed().shape == [2, 4, 3])
        #expect(Shape.broadcast([3, 1, 5], [4, 1]) == [3, 4, 5])
        #expect(Shape.broadcast([3, 2], [4, 2]) == nil)
        #expect(Shape.broadcastStrides(shape: [4, 1], strides: [1, 1], to: [3, 4, 5]) == [0, 1, 0])
        #expect(throws: RuntimeError.self) { try d.tensor([1, 2, 3], shape: [2]) }
    }
}
