import Foundation

/// Shared helpers for validating untrusted shapes.
enum CheckpointShape {
    /// Element count of `shape`, or nil on overflow or a negative dimension.
    static func count(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (m, o) = n.multipliedReportingOverflow(by: d)
            guard !o else { return nil }
            n = m
        }
        return n
    }

    /// Byte count of `shape` elements of `dtype`, or nil on overflow.
    static func byteCount(_ shape: [Int], _ dtype: CheckpointDType) -> Int? {
        guard let n = count(shape) else { return nil }
        let (b, o) = n.multipliedReportingOverflow(by: dtype.size)
        return o ? nil : b
    }
}

/// A `.safetensors` file, memory-mapped. Opening validates the whole header: an 8-byte little-endian
/// length (at most 100 MB and inside the file), strict JSON (an object; no duplicate names), each tensor's
/// `dtype` (F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U8 BOOL), `shape` (non-negative integers) and
/// `data_offsets` ([begin, end] inside the data section, end - begin = shape × dtype size), no two tensors
/// sharing bytes, and `__metadata__` as string → string. Unknown extra fields of a tensor are ignored.
public final class SafetensorsFile: CheckpointReader {
    /// Largest header accepted (the limit of the reference implementation).
    public static let maxHeaderBytes = 100_000_000

    public let path: String
    public var format: CheckpointFormat { .safetensors }
    public let entries: [TensorEntry]
    public let metadata: [String: String]
    /// File offset of the data section (8 + header length).
    public let dataOffset: Int
    let source: ByteSource
    /// Name → (index in `entries`, absolute byte range in the file).
    let locations: [String: (index: Int, offset: Int, count: Int)]

    /// Opens and validates the file at `path` (mapped, not read).
    public convenience init(path: String) throws {
        try self.init(source: ByteSource(mapping: path))
    }

    /// Parses a safetensors file held in memory (`name` is used in errors).
    public convenience init(bytes: [UInt8], name: String) throws {
        try self.init(source: ByteSource(bytes: bytes, name: name))
    }

    init(source: ByteSource) throws {
        self.source = source
        path = source.path
        let file = source.path
        func fail(_ p: CheckpointError.Problem) -> CheckpointError { CheckpointError(file, p) }

        guard source.count >= 8 else {
            throw fail(.truncated("\(source.count) bytes cannot hold the 8-byte header length"))
        }
        let n64 = try source.u64(0, "header length")
        guard n64 <= UInt64(Self.maxHeaderBytes) else {
            throw fail(.absurdSize("header length \(n64) exceeds \(Self.maxHeaderBytes) bytes"))
        }
        let n = Int(n64)
        guard n <= source.count - 8 else {
            throw fail(.truncated("header of \(n) bytes but only \(source.count - 8) bytes follow the length"))
        }
        dataOffset = 8 + n
        let dataLength = source.count - dataOffset

        let json: JSONValue
        do {
            json = try StrictJSON.parse(try source.slice(8, n, "header"))
        } catch let e as JSONParseError {
            if let key = e.duplicateKey { throw fail(.duplicateName(key)) }
            throw fail(.corruptHeader("invalid JSON: \(e.message)"))
        }
        guard case let .object(members) = json else {
            throw fail(.corruptHeader("the header is a JSON \(json.typeName), not an object"))
        }

        var meta: [String: String] = [:]
        var parsed: [(entry: TensorEntry, begin: Int, end: Int)] = []
        parsed.reserveCapacity(members.count)
        for (name, value) in members {
            if name == "__metadata__" {
                guard case let .object(items) = value else {
                    throw fail(.corruptHeader("__metadata__ is a \(value.typeName), not an object"))
                }
                for (k, v) in items {
                    guard case let .string(s) = v else {
                        throw fail(.corruptHeader("__metadata__ value '\(k)' is a \(v.typeName), not a string"))
                    }
                    meta[k] = s
                }
                continue
            }
            guard case let .object(fields) = value else {
                throw fail(.corruptHeader("tensor '\(name)' is described by a \(value.typeName), not an object"))
            }
            func field(_ key: String) throws -> JSONValue {
                guard let v = fields.first(where: { $0.key == key })?.value else {
                    throw fail(.corruptHeader("tensor '\(name)' has no '\(key)'"))
                }
                return v
            }
            func ints(_ key: String) throws -> [Int] {
                guard case let .array(items) = try field(key) else {
                    throw fail(.corruptHeader("tensor '\(name)': '\(key)' is not an array"))
                }
                return try items.map { item in
                    guard case let .int(v) = item, v >= 0 else {
                        throw fail(.corruptHeader("tensor '\(name)': '\(key)' holds \(item), not a non-negative integer"))
                    }
                    return v
                }
            }
            guard case let .string(dtypeName) = try field("dtype") else {
                throw fail(.corruptHeader("tensor '\(name)': 'dtype' is not a string"))
            }
            guard let dtype = CheckpointDType(safetensors: dtypeName) else {
                throw fail(.unsupportedDType("tensor '\(name)' has dtype '\(dtypeName)'"))
            }
            let shape = try ints("shape")
            let offsets = try ints("data_offsets")
            guard offsets.count == 2 else {
                throw fail(.corruptHeader("tensor '\(name)': data_offsets has \(offsets.count) values, not 2"))
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end else {
                throw fail(.corruptHeader("tensor '\(name)': data_offsets [\(begin), \(end)] are reversed"))
            }
            guard let bytes = CheckpointShape.byteCount(shape, dtype) else {
                throw fail(.absurdSize("tensor '\(name)': shape \(shape) of \(dtypeName) overflows"))
            }
            guard bytes == end - begin else {
                throw fail(.shapeMismatch("tensor '\(name)': shape \(shape) of \(dtypeName) is \(bytes) bytes but data_offsets [\(begin), \(end)] span \(end - begin)"))
            }
            guard end <= dataLength else {
                throw fail(.offsetOutOfRange("tensor '\(name)': data_offsets [\(begin), \(end)] pass the end of the \(dataLength)-byte data section"))
            }
            parsed.append((TensorEntry(name: name, dtype: dtype, shape: shape), begin, end))
        }
        // File order; then no two non-empty ranges may intersect.
        parsed.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var furthest: (name: String, end: Int)?
        for p in parsed where p.end > p.begin {
            if let f = furthest, p.begin < f.end { throw fail(.overlappingTensors(f.name, p.entry.name)) }
            if p.end > (furthest?.end ?? -1) { furthest = (p.entry.name, p.end) }
        }
        entries = parsed.map(\.entry)
        var loc: [String: (index: Int, offset: Int, count: Int)] = [:]
        loc.reserveCapacity(parsed.count)
        for (i, p) in parsed.enumerated() {
            loc[p.entry.name] = (i, dataOffset + p.begin, p.end - p.begin)
        }
        locations = loc
        metadata = meta
    }

    public func entry(_ name: String) -> TensorEntry? {
        locations[name].map { entries[$0.index] }
    }

    /// Absolute byte range of a tensor in the file.
    public func byteRange(_ name: String) -> Range<Int>? {
        locations[name].map { $0.offset..<($0.offset + $0.count) }
    }

    public func withBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let l = locations[name] else { throw CheckpointError(path, .noSuchTensor(name)) }
        let buf = try source.slice(l.offset, l.count, "tensor '\(name)'")
        source.willRead(l.offset, l.count)
        defer { source.release(l.offset, l.count) }
        return try body(buf)
    }
}

/// A sharded safetensors checkpoint: a `*.safetensors.index.json` whose `weight_map` maps each tensor
/// name to a shard file (resolved relative to the index; absolute names and `..` are refused). Every
/// shard is opened (and fully validated) once; every name must be in its shard's header. Tensors a
/// shard holds but the weight map does not name (or puts in another shard) are not part of the checkpoint.
public final class ShardedSafetensors: CheckpointReader {
    public let path: String
    public var format: CheckpointFormat { .shardedSafetensors }
    public let entries: [TensorEntry]
    /// The index's `metadata` object (strings kept, numbers and booleans written out).
    public let metadata: [String: String]
    /// The shards, in the order of their file names.
    public let shards: [SafetensorsFile]
    let locations: [String: (index: Int, shard: Int)]

    /// Opens the index at `indexPath` and all shards it names.
    public convenience init(indexPath: String) throws {
        try self.init(indexSource: ByteSource(mapping: indexPath))
    }

    init(indexSource: ByteSource) throws {
        let file = indexSource.path
        path = file
        func fail(_ p: CheckpointError.Problem) -> CheckpointError { CheckpointError(file, p) }
        guard indexSource.count <= SafetensorsFile.maxHeaderBytes else {
            throw fail(.absurdSize("index of \(indexSource.count) bytes exceeds \(SafetensorsFile.maxHeaderBytes)"))
        }
        let json: JSONValue
        do {
            json = try StrictJSON.parse(try indexSource.slice(0, indexSource.count, "index"))
        } catch let e as JSONParseError {
            if let key = e.duplicateKey { throw fail(.duplicateName(key)) }
            throw fail(.corruptHeader("invalid JSON: \(e.message)"))
        }
        guard case let .object(members) = json else {
            throw fail(.corruptHeader("the index is a JSON \(json.typeName), not an object"))
        }
        var meta: [String: String] = [:]
        if let m = members.first(where: { $0.key == "metadata" })?.value {
            guard case let .object(items) = m else { throw fail(.corruptHeader("'metadata' is not an object")) }
            for (k, v) in items {
                switch v {
                case let .string(s): meta[k] = s
                case let .int(i): meta[k] = String(i)
                case let .number(d): meta[k] = String(d)
                case let .bool(b): meta[k] = String(b)
                default: break
                }
            }
        }
        guard let wm = members.first(where: { $0.key == "weight_map" })?.value else {
            throw fail(.corruptHeader("the index has no 'weight_map'"))
        }
        guard case let .object(mapItems) = wm else { throw fail(.corruptHeader("'weight_map' is not an object")) }
        var shardOf: [String: String] = [:]
        for (name, v) in mapItems {
            guard case let .string(shard) = v else {
                throw fail(.corruptHeader("weight_map['\(name)'] is a \(v.typeName), not a file name"))
            }
            let parts = shard.split(separator: "/", omittingEmptySubsequences: false)
            guard !shard.isEmpty, !shard.hasPrefix("/"), !shard.contains("\0"),
                  !parts.contains(where: { $0 == ".." || $0.isEmpty }) else {
                throw fail(.corruptHeader("weight_map['\(name)'] names the shard '\(shard)', which is not a plain relative file name"))
            }
            shardOf[name] = shard
        }
        let dir: String = {
            guard let slash = file.lastIndex(of: "/") else { return "" }
            return String(file[...slash])
        }()
        let shardNames = Set(shardOf.values).sorted()
        var opened: [SafetensorsFile] = []
        var shardIndex: [String: Int] = [:]
        for s in shardNames {
            shardIndex[s] = opened.count
            opened.append(try SafetensorsFile(path: dir + s))
        }
        var list: [TensorEntry] = []
        var loc: [String: (index: Int, shard: Int)] = [:]
        for (si, shard) in opened.enumerated() {
            let shardName = shardNames[si]
            for e in shard.entries where shardOf[e.name] == shardName {
                loc[e.name] = (list.count, si)
                list.append(e)
            }
        }
        for (name, _) in mapItems where loc[name] == nil {
            throw fail(.corruptHeader("weight_map puts '\(name)' in '\(shardOf[name] ?? "")', which has no such tensor"))
        }
        entries = list
        locations = loc
        shards = opened
        metadata = meta
    }

    public func entry(_ name: String) -> TensorEntry? {
        locations[name].map { entries[$0.index] }
    }

    /// The shard holding `name`.
    public func shard(of name: String) -> SafetensorsFile? {
        locations[name].map { shards[$0.shard] }
    }

    public func withBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let l = locations[name] else { throw CheckpointError(path, .noSuchTensor(name)) }
        return try shards[l.shard].withBytes(name, body)
    }
}
