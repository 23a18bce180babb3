import Foundation

/// Host memory for CPU tensors. Blocks of `hugePageThreshold` bytes and more are aligned to 2 MiB and
/// advised to use transparent huge pages, because first touches of fresh memory are the costly part of
/// large allocations (the kernel zeroes and maps every page): measured on this project's 2-core VM,
/// 1.1-1.6 s to first-touch 2 GiB in 4 KiB pages, 0.27 s in huge pages, 0.08 s to rewrite it. Where
/// huge pages are off (`/sys/kernel/mm/transparent_hugepage/enabled` = never) the advice does nothing.
enum CPUMemory {
    /// Smallest block advised to use huge pages.
    static let hugePageThreshold = 8 << 20
    static let hugePage = 2 << 20

    /// `bytes` (at least 64) of uninitialised host memory, aligned to 64 bytes (2 MiB for large blocks).
    static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let size = max(bytes, 64)
        guard size >= hugePageThreshold else { return .allocate(byteCount: size, alignment: 64) }
        let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: hugePage)
        _ = madvise(p, size / hugePage * hugePage, MADV_HUGEPAGE)
        return p
    }
}
