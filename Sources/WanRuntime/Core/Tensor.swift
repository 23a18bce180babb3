/// A view of typed elements in a `Storage`: shape, strides and offset in elements. Views (reshape,
/// permute, slice, transpose) share storage; kernels that need dense input say so in their checks.
public struct Tensor: Sendable, CustomStringConvertible {
    public let storage: Storage
    public let dtype: DType
    public let shape: [Int]
    /// Strides in elements.
    public let strides: [Int]
    /// Offset of the first element, in elements.
    public let offset: Int

    init(storage: Storage, dtype: DType, shape: [Int], strides: [Int]? = nil, offset: Int = 0) {
        self.storage = storage
        self.dtype = dtype
        self.shape = shape
        self.strides = strides ?? Shape.contiguousStrides(shape)
        self.offset = offset
    }

    /// The device holding the elements.
    public var device: Device { storage.device }
    /// Number of elements.
    public var count: Int { Shape.count(shape) }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// Bytes the elements of this view span when dense.
    public var byteCount: Int { count * dtype.size }
    /// Whether the view is dense row-major.
    public var isContiguous: Bool {
        var expected = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] != 1 {
            if strides[i] != expected { return false }
            expected *= shape[i]
        }
        return true
    }

    public var description: String { "Tensor<\(dtype)>\(shape) on \(device.name)" }

    /// Device address of the first element of this view (Vulkan).
    var deviceAddress: UInt64 { storage.deviceAddress + UInt64(offset * dtype.size) }

    /// Host pointer to the first element of this view, when host-addressable.
    var hostPointer: UnsafeMutableRawPointer? { storage.hostPointer.map { $0 + offset * dtype.size } }

    /// Byte range of the storage this view can touch (for hazard tracking).
    var byteRange: Range<Int> {
        if count == 0 { return offset * dtype.size..<offset * dtype.size }
        var lo = offset, hi = offset
        for (n, s) in zip(shape, strides) where n > 1 {
            if s >= 0 { hi += (n - 1) * s } else { lo += (n - 1) * s }
        }
        return lo * dtype.size..<(hi + 1) * dtype.size
    }

    // MARK: views

    /// The same elements with another shape (one dimension may be -1). Requires a dense view.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var dims = newShape
        let known = dims.filter { $0 != -1 }.reduce(1, *)
        if let i = dims.firstIndex(of: -1) {
            guard known > 0, count % known == 0, dims.filter({ $0 == -1 }).count == 1 else {
                throw RuntimeError.shapeMismatch("cannot reshape \(shape) to \(newShape)")
            }
            dims[i] = count / known
        }
        guard Shape.count(dims) == count, dims.allSatisfy({ $0 >= 0 }) else {
            throw RuntimeError.shapeMismatch("cannot reshape \(shape) (\(count) elements) to \(newShape)")
        }
        guard isContiguous else { throw RuntimeError.invalidArgument("reshape of a non-contiguous view; copy it first") }
        return Tensor(storage: storage, dtype: dtype, shape: dims, offset: offset)
    }

    /// A view with dimensions reordered: result dim i is source dim `order[i]`.
    public func permuted(_ order: [Int]) throws -> Tensor {
        guard order.sorted() == Array(0..<rank) else {
            throw RuntimeError.invalidArgument("permutation \(order) for rank \(rank)")
        }
        return Tensor(storage: storage, dtype: dtype, shape: order.map { shape[$0] },
                      strides: order.map { strides[$0] }, offset: offset)
    }

    /// A view of the last two dimensions swapped.
    public func transposed() throws -> Tensor {
        guard rank >= 2 else { throw RuntimeError.invalidArgument("transpose needs rank >= 2, got \(shape)") }
        var order = Array(0..<rank)
        order.swapAt(rank - 1, rank - 2)
        return try permuted(order)
    }

    /// A view of `range` along dimension `dim`.
    public func sliced(dim: Int, _ range: Range<Int>) throws -> Tensor {
        guard dim >= 0 && dim < rank, range.lowerBound >= 0, range.upperBound <= shape[dim] else {
            throw RuntimeError.invalidArgument("slice \(range) of dim \(dim) of \(shape)")
        }
        var s = shape
        s[dim] = range.count
        return Tensor(storage: storage, dtype: dtype, shape: s, strides: strides,
                      offset: offset + range.lowerBound * strides[dim])
    }

    /// A dense view of `shape`/`dtype` elements starting `byteOffset` bytes into this tensor's storage
    /// (past this view's own offset): how planned activation arenas hand out their intermediates.
    public func view(atByteOffset byteOffset: Int, shape: [Int], dtype: DType) throws -> Tensor {
        let start = offset * self.dtype.size + byteOffset
        let bytes = Shape.count(shape) * dtype.size
        guard byteOffset >= 0, start % dtype.size == 0, shape.allSatisfy({ $0 >= 0 }),
              start + bytes <= storage.byteCount else {
            throw RuntimeError.invalidArgument("view of \(bytes) bytes at byte \(start) (\(dtype)) outside a storage of \(storage.byteCount) bytes or misaligned")
        }
        return Tensor(storage: storage, dtype: dtype, shape: shape, offset: start / dtype.size)
    }

    /// Whether two views may touch the same bytes.
    func overlaps(_ other: Tensor) -> Bool {
        storage === other.storage && byteRange.overlaps(other.byteRange)
    }
}
