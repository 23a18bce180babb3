import CVulkan

extension VulkanDevice {
    /// Copies host bytes into device memory through a staging buffer (devices whose tensor memory
    /// is not host-visible).
    func stagedCopy(toDevice dst: VulkanAllocation, offset: Int, bytes: [UInt8]) throws {
        let chunk = min(64 << 20, allocator.maxAllocation)
        let staging = try allocator.allocate(min(chunk, bytes.count), kind: .staging)
        guard let mapped = staging.mapped else { throw RuntimeError.invalidState("staging memory is not mapped") }
        var done = 0
        while done < bytes.count {
            let n = min(chunk, bytes.count - done)
            bytes.withUnsafeBytes { mapped.copyMemory(from: $0.baseAddress! + done, byteCount: n) }
            try submitAndWait { cmd in
                var region = VkBufferCopy(srcOffset: VkDeviceSize(staging.offset),
                                          dstOffset: VkDeviceSize(dst.offset + offset + done), size: VkDeviceSize(n))
                vkCmdCopyBuffer(cmd, staging.buffer, dst.buffer, 1, &region)
            }
            done += n
        }
    }

    /// Reads device bytes back through a staging buffer.
    func stagedRead(fromDevice src: VulkanAllocation, offset: Int, count: Int) throws -> [UInt8] {
        let chunk = min(64 << 20, allocator.maxAllocation)
        let staging = try allocator.allocate(min(chunk, count), kind: .staging)
        guard let mapped = staging.mapped else { throw RuntimeError.invalidState("staging memory is not mapped") }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = min(chunk, count - done)
            try submitAndWait { cmd in
                var region = VkBufferCopy(srcOffset: VkDeviceSize(src.offset + offset + done),
                                          dstOffset: VkDeviceSize(staging.offset), size: VkDeviceSize(n))
                vkCmdCopyBuffer(cmd, src.buffer, staging.buffer, 1, &region)
            }
            out.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: done).copyMemory(from: mapped, byteCount: n) }
            done += n
        }
        return out
    }
}
