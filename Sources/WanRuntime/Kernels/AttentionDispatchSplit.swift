/// How a long attention is split over dispatches on every device: by query blocks, so that no dispatch runs long enough
/// to trip a GPU driver's watchdog (Windows' 2 s TDR, amdgpu's 10 s ring timeout, NVIDIA's on a GPU that drives a
/// display). Wan 14B's self-attention at 720p is 117 TFLOP: seconds in one dispatch even on a datacenter GPU. The parts
/// write disjoint output rows, so the recorder puts no barrier between them. (CPU drivers also split keys:
/// `AttentionTile.keysPerDispatch`.)
enum AttentionDispatchSplit {
    /// Floating-point work per dispatch at most: 2 TFLOP, 45 ms at the 44 TFLOP/s measured on an H200, 0.2 s at 10.
    static let maxFlops = 2.0e12

    /// Query blocks per dispatch for blocks of `rows` query rows against `keys` keys of head dim `d`, for `heads` heads
    /// and `batches` batches per dispatch (at least one block).
    static func queryBlocks(rows: Int, keys: Int, headDim d: Int, heads: Int, batches: Int, maxFlops: Double = maxFlops) -> Int {
        let perBlock = 4 * Double(rows) * Double(keys) * Double(d) * Double(heads) * Double(batches)
        return perBlock > 0 ? max(1, Int(maxFlops / perBlock)) : 1
    }
}
