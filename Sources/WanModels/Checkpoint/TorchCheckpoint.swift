import Foundation

/// A `torch.save` checkpoint (the zip format of torch ≥ 1.6): `<archive>/data.pkl` (a pickle of the state
/// dict), `<archive>/data/<key>` (one stored entry per storage), and small records (`version`,
/// `byteorder`, ...). Opening parses the zip directory, CRC-checks and runs `data.pkl` through the
/// restricted `Unpickler` (which refuses every global but OrderedDict, the tensor rebuild functions and
/// torch storage/dtype names, and never executes anything), and validates every tensor against its
/// storage entry. Tensor bytes are read lazily from the mapped file.
///
/// Names: nested dicts are flattened with dots; a top-level wrapper (`state_dict`, `model_state_dict`,
/// `model`, `module`) holding the tensors is unwrapped (see `unwrappedKey`). Strided (non-contiguous)
/// tensors are gathered into dense row-major order when read; a view may hold at most as many bytes as
/// the whole file (so a zero-stride view cannot blow up memory).
public final class TorchCheckpoint: CheckpointReader {
    /// Largest `data.pkl` accepted.
    public static let maxPickleBytes = 256 << 20

    public let path: String
    public var format: CheckpointFormat { .torchZip }
    public let entries: [TensorEntry]
    public let metadata: [String: String]
    /// The archive's top folder (`<archive>` in `<archive>/data.pkl`), empty when there is none.
    public let archiveName: String
    /// The wrapper key whose dict holds the tensors (`state_dict`, `model`, ...), or nil.
    public let unwrappedKey: String?
    let source: ByteSource
    let zip: ZipArchive
    let locations: [String: Location]

    struct Location: Sendable {
        var index: Int
        /// Absolute file offset of the storage's first byte.
        var storageOffset: Int
        var storageBytes: Int
        var elementOffset: Int
        var shape: [Int]
        var strides: [Int]
        var contiguous: Bool
    }

    /// Opens the archive at `path` (mapped, not read).
    public convenience init(path: String) throws {
        try self.init(source: ByteSource(mapping: path))
    }

    /// Parses a torch zip checkpoint held in memory (`name` is used in errors).
    public convenience init(bytes: [UInt8], name: String) throws {
        try self.init(source: ByteSource(bytes: bytes, name: name))
    }

    init(source: ByteSource) throws {
        self.source = source
        path = source.path
        let file = source.path
        func fail(_ p: CheckpointError.Problem) -> CheckpointError { CheckpointError(file, p) }
        zip = try ZipArchive(source: source)

        // The record folder: the one holding data.pkl.
        let pickles = zip.entries.map(\.name).filter { name in
            name == "data.pkl" || (name.hasSuffix("/data.pkl") && name.split(separator: "/", omittingEmptySubsequences: false).count == 2)
        }
        guard let pkl = pickles.first else { throw fail(.missingZipEntry("<archive>/data.pkl")) }
        guard pickles.count == 1 else { throw fail(.corruptZip("several data.pkl records: \(pickles.joined(separator: ", "))")) }
        let prefix = String(pkl.dropLast("data.pkl".count))
        archiveName = prefix.isEmpty ? "" : String(prefix.dropLast())

        var meta: [String: String] = [:]
        for record in ["version", ".format_version", "byteorder", ".storage_alignment"] {
            guard zip.entry(prefix + record) != nil else { continue }
            let bytes = try zip.read(prefix + record, limit: 64)
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw fail(.corruptZip("record '\(prefix + record)' is not text"))
            }
            meta[record.hasPrefix(".") ? String(record.dropFirst()) : record] =
                text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let order = meta["byteorder"], order != "little" {
            throw fail(.unsupportedDType("byteorder '\(order)' (only little-endian checkpoints are supported)"))
        }
        metadata = meta

        let pickle = try zip.read(pkl, limit: Self.maxPickleBytes, checkCRC: true)
        let state = try Unpickler.load(pickle, file: file)
        unwrappedKey = state.unwrappedKey

        var storages: [String: (offset: Int, count: Int)] = [:]
        var list: [TensorEntry] = []
        var locs: [String: Location] = [:]
        list.reserveCapacity(state.tensors.count)
        for (name, t) in state.tensors {
            let s = t.storage
            let dtype = t.dtype
            guard t.shape.count == t.strides.count else {
                throw fail(.shapeMismatch("tensor '\(name)': \(t.shape.count) sizes but \(t.strides.count) strides"))
            }
            guard t.shape.allSatisfy({ $0 >= 0 }), t.strides.allSatisfy({ $0 >= 0 }), t.offset >= 0 else {
                throw fail(.shapeMismatch("tensor '\(name)': negative size, stride or offset (\(t.shape), \(t.strides), \(t.offset))"))
            }
            guard let count = CheckpointShape.count(t.shape), let bytes = CheckpointShape.byteCount(t.shape, dtype),
                  bytes <= source.count else {
                throw fail(.absurdSize("tensor '\(name)': shape \(t.shape) of \(dtype) is more than the file holds"))
            }
            guard let storageBytes = s.byteCount else {
                throw fail(.absurdSize("storage '\(s.key)' of \(s.numel) \(s.dtype?.description ?? "byte") elements"))
            }
            let capacity = storageBytes / dtype.size
            let range: (offset: Int, count: Int)
            if let r = storages[s.key] {
                range = r
            } else {
                range = try zip.dataRange(prefix + "data/" + s.key)
                storages[s.key] = range
            }
            guard storageBytes <= range.count else {
                throw fail(.truncated("storage '\(s.key)' should hold \(storageBytes) bytes but its entry has \(range.count)"))
            }
            // The last element the view touches must lie inside the storage.
            if count > 0 {
                var last = t.offset
                for (n, st) in Swift.zip(t.shape, t.strides) {
                    let (m, o1) = (n - 1).multipliedReportingOverflow(by: st)
                    let (sum, o2) = last.addingReportingOverflow(m)
                    guard !o1, !o2 else { throw fail(.absurdSize("tensor '\(name)': strides \(t.strides) overflow")) }
                    last = sum
                }
                guard last < capacity else {
                    throw fail(.offsetOutOfRange("tensor '\(name)' (offset \(t.offset), shape \(t.shape), strides \(t.strides)) reaches element \(last) of a \(capacity)-element \(dtype) storage"))
                }
            }
            var contiguous = true
            var expected = 1
            for i in stride(from: t.shape.count - 1, through: 0, by: -1) where t.shape[i] != 1 {
                if t.strides[i] != expected { contiguous = false; break }
                expected *= t.shape[i]
            }
            locs[name] = Location(index: list.count, storageOffset: range.offset, storageBytes: storageBytes,
                                  elementOffset: t.offset, shape: t.shape, strides: t.strides, contiguous: contiguous)
            list.append(TensorEntry(name: name, dtype: dtype, shape: t.shape))
        }
        // File order: by storage position, then offset in the storage.
        let order = list.indices.sorted { a, b in
            let la = locs[list[a].name], lb = locs[list[b].name]
            return (la?.storageOffset ?? 0, la?.elementOffset ?? 0, a) < (lb?.storageOffset ?? 0, lb?.elementOffset ?? 0, b)
        }
        entries = order.map { list[$0] }
        for (i, e) in entries.enumerated() { locs[e.name]?.index = i }
        locations = locs
    }

    public func entry(_ name: String) -> TensorEntry? {
        locations[name].map { entries[$0.index] }
    }

    /// Whether the tensor is stored dense (read without a gather).
    public func isContiguous(_ name: String) -> Bool? { locations[name]?.contiguous }

    public func withBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let l = locations[name] else { throw CheckpointError(path, .noSuchTensor(name)) }
        let e = entries[l.index]
        let size = e.dtype.size
        let storage = try source.slice(l.storageOffset, l.storageBytes, "storage of '\(name)'")
        source.willRead(l.storageOffset, l.storageBytes)
        defer { source.release(l.storageOffset, l.storageBytes) }
        if l.contiguous {
            let start = l.elementOffset * size
            guard start + e.byteCount <= storage.count else {
                throw CheckpointError(path, .offsetOutOfRange("tensor '\(name)' runs past its storage"))
            }
            return try body(UnsafeRawBufferPointer(rebasing: storage[start..<(start + e.byteCount)]))
        }
        // Gather a strided view into row-major order.
        let total = e.byteCount
        let dense = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 16)
        defer { dense.deallocate() }
        if let src = storage.baseAddress, let dst = dense.baseAddress, e.count > 0 {
            let rank = l.shape.count
            var index = [Int](repeating: 0, count: rank)
            var element = l.elementOffset
            for k in 0..<e.count {
                (dst + k * size).copyMemory(from: src + element * size, byteCount: size)
                // Advance the multi-index, last dimension fastest.
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    element += l.strides[d]
                    if index[d] < l.shape[d] { break }
                    element -= l.strides[d] * l.shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return try body(UnsafeRawBufferPointer(start: dense.baseAddress, count: total))
    }
}
