/// Walks the rows (last dimension) of one or more strided views of the same shape, giving each
/// row's index and the element offset of its first element in every view. Kernels run their inner
/// loop over the last dimension with that dimension's strides, so the per-element cost stays low.
enum StridedRows {
    /// Calls `body(row, offsets)` for every row of `shape` (all dims but the last), where
    /// `offsets[k]` is the element offset of the row's first element in view `k` (`strides[k]`).
    static func forEach(shape: [Int], strides: [[Int]], rows range: Range<Int>? = nil,
                        _ body: (_ row: Int, _ offsets: [Int]) -> Void) {
        let outer = Array(shape.dropLast())
        let rowCount = outer.reduce(1, *)
        let r = range ?? 0..<rowCount
        if r.isEmpty || shape.contains(0) { return }
        var index = [Int](repeating: 0, count: outer.count)
        // Start position from the first row of the range.
        var rem = r.lowerBound
        for d in stride(from: outer.count - 1, through: 0, by: -1) {
            index[d] = rem % outer[d]
            rem /= outer[d]
        }
        var offsets = strides.map { s in zip(index, s).reduce(0) { $0 + $1.0 * $1.1 } }
        for row in r {
            body(row, offsets)
            // Advance the multi-index by one row.
            var d = outer.count - 1
            while d >= 0 {
                index[d] += 1
                for k in offsets.indices { offsets[k] += strides[k][d] }
                if index[d] < outer[d] { break }
                for k in offsets.indices { offsets[k] -= strides[k][d] * outer[d] }
                index[d] = 0
                d -= 1
            }
        }
    }
}
