import Foundation
import WanRuntime

/// The container format of a checkpoint.
public enum CheckpointFormat: String, Sendable, CustomStringConvertible {
    /// One `.safetensors` file.
    case safetensors
    /// Several `.safetensors` shards tied together by a `*.safetensors.index.json`.
    case shardedSafetensors = "sharded safetensors"
    /// A `torch.save` zip archive (`data.pkl` + `data/<key>` storages).
    case torchZip = "torch zip"

    public var description: String { rawValue }
}

/// A checkpoint opened for reading: the tensors it holds and lazy access to their bytes. Opening only
/// reads and validates the header (safetensors JSON, zip directory + pickle); tensor bytes are read
/// when asked for, from a memory mapping, so a reader of a 30 GB file costs almost no memory.
///
/// Readers are immutable after opening and may be used from several threads.
public protocol CheckpointReader: AnyObject, Sendable {
    /// The file this reader was opened from (the index file for sharded safetensors).
    var path: String { get }
    /// The container format.
    var format: CheckpointFormat { get }
    /// Every tensor, in the order its bytes lie in the file(s).
    var entries: [TensorEntry] { get }
    /// String metadata: safetensors `__metadata__`, the index's `metadata`, or a torch archive's small
    /// text records (`version`, `byteorder`, ...).
    var metadata: [String: String] { get }
    /// The entry named `name`, or nil.
    func entry(_ name: String) -> TensorEntry?
    /// Calls `body` with the tensor's elements as dense row-major little-endian bytes of `entry.dtype`
    /// (exactly `entry.byteCount` bytes): a view of the mapped file when the tensor is stored dense, a
    /// gathered temporary for a strided torch tensor. The buffer is valid only inside `body`; afterwards
    /// the pages it touched are dropped from the process (they stay in the page cache).
    func withBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
}

extension CheckpointDType {
    /// The runtime dtype a tensor of this type loads as when no dtype is requested: the same type where
    /// the runtime has it, otherwise f64 → f32, i64/i16/i8 → i32, bool → u8.
    public var defaultRuntimeType: DType {
        if let t = runtimeType { return t }
        switch self {
        case .f64: return .f32
        case .i64, .i16, .i8: return .i32
        default: return .u8
        }
    }

    /// Whether the type is a floating-point format.
    public var isFloat: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16, .f8e4m3fn, .f8e5m2: return true
        case .i64, .i32, .i16, .i8, .u8, .bool: return false
        }
    }

    /// The type for a safetensors dtype string (`F32`, `BF16`, `F8_E4M3`, ...).
    public init?(safetensors name: String) {
        switch name {
        case "F64": self = .f64
        case "F32": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        case "F8_E4M3": self = .f8e4m3fn
        case "F8_E5M2": self = .f8e5m2
        case "I64": self = .i64
        case "I32": self = .i32
        case "I16": self = .i16
        case "I8": self = .i8
        case "U8": self = .u8
        case "BOOL": self = .bool
        default: return nil
        }
    }

    /// The safetensors dtype string of this type.
    public var safetensorsName: String {
        switch self {
        case .f64: return "F64"
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .f8e4m3fn: return "F8_E4M3"
        case .f8e5m2: return "F8_E5M2"
        case .i64: return "I64"
        case .i32: return "I32"
        case .i16: return "I16"
        case .i8: return "I8"
        case .u8: return "U8"
        case .bool: return "BOOL"
        }
    }
}

extension CheckpointReader {
    /// Names of all tensors, in file order.
    public var tensorNames: [String] { entries.map(\.name) }

    /// The entry named `name`, or `CheckpointError.noSuchTensor`.
    public func requireEntry(_ name: String) throws -> TensorEntry {
        guard let e = entry(name) else { throw CheckpointError(path, .noSuchTensor(name)) }
        return e
    }

    /// A copy of the tensor's dense little-endian bytes (`entry.byteCount` bytes of `entry.dtype`).
    public func bytes(_ name: String) throws -> [UInt8] {
        try withBytes(name) { CheckpointConversion.copy($0, $0.count) }
    }

    /// The tensor's elements converted to `Float` (exact for every float type except f64; integers
    /// beyond 2^24 round).
    public func floats(_ name: String) throws -> [Float] {
        let e = try requireEntry(name)
        return try withBytes(name) { src in
            [Float](unsafeUninitializedCapacity: e.count) { buf, n in
                CheckpointConversion.decode(src, e.dtype, into: buf.baseAddress!, start: 0, count: e.count)
                n = e.count
            }
        }
    }

    /// The runtime dtype `load(_:to:as:)` gives the tensor `name` for a requested `dtype`.
    ///
    /// `nil` keeps the stored type (`CheckpointDType.defaultRuntimeType`). A floating-point request
    /// applies to floating-point tensors; integer and bool tensors keep their integer type then (so
    /// "load everything as bf16" leaves index tensors intact). An integer request (`.i32`, `.u8`)
    /// applies to integer tensors and is refused for floating-point ones.
    public func loadType(of entry: TensorEntry, as dtype: DType?) throws -> DType {
        guard let dtype else { return entry.dtype.defaultRuntimeType }
        if dtype.isFloat { return entry.dtype.isFloat ? dtype : entry.dtype.defaultRuntimeType }
        guard !entry.dtype.isFloat else {
            throw CheckpointError(path, .conversion("tensor '\(entry.name)' is \(entry.dtype); refusing to load it as \(dtype)"))
        }
        return dtype
    }

    /// The tensor's bytes converted to `target` (one host copy: the only one this tensor makes).
    public func convertedBytes(_ name: String, to target: DType) throws -> [UInt8] {
        let e = try requireEntry(name)
        return try withBytes(name) { src in
            try CheckpointConversion.convert(src, from: e.dtype, to: target, count: e.count, file: path, name: name)
        }
    }

    /// Loads one tensor onto `device`, converted to `dtype` (see `loadType(of:as:)`; nil keeps the stored
    /// type). Streams: the only host copy made is this tensor's converted bytes, freed on return.
    public func load(_ name: String, to device: Device, as dtype: DType? = nil) throws -> Tensor {
        let e = try requireEntry(name)
        let target = try loadType(of: e, as: dtype)
        let bytes = try convertedBytes(name, to: target)
        return try device.tensor(bytes: bytes, shape: e.shape, dtype: target)
    }

    /// Loads every tensor (or those `include` accepts) onto `device`, one at a time.
    public func loadAll(to device: Device, as dtype: DType? = nil,
                        include: (TensorEntry) -> Bool = { _ in true }) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for e in entries where include(e) {
            out[e.name] = try load(e.name, to: device, as: dtype)
        }
        return out
    }

    /// Loads a floating-point tensor as fp8 with one f32 scale per slice along dimension 0 ("per output
    /// channel" for a weight `[out, in, ...]`): `scale[r] = max|w[r, ...]| / maxFinite(format)` over finite
    /// values (1 for an all-zero slice) and `weight = fp8(w / scale)` (round to nearest even, saturating) —
    /// bit for bit what the runtime's `quantizeFP8(..., scaling: .perChannel)` computes — so
    /// `w ≈ weight * scale[r]`. `format` is `.f8e4m3fn` (max 448) or `.f8e5m2` (max 57344).
    public func loadScaledFP8(_ name: String, to device: Device,
                              format: DType = .f8e4m3fn) throws -> (weight: Tensor, scale: Tensor) {
        let e = try requireEntry(name)
        guard format == .f8e4m3fn || format == .f8e5m2 else {
            throw CheckpointError(path, .conversion("scaled fp8 format must be f8e4m3fn or f8e5m2, not \(format)"))
        }
        guard e.dtype.isFloat, !e.shape.isEmpty else {
            throw CheckpointError(path, .conversion("tensor '\(name)' (\(e.dtype) \(e.shape)) cannot be fp8-scaled per channel"))
        }
        let values = try floats(name)
        let rows = e.shape[0]
        let cols = rows == 0 ? 0 : e.count / rows
        let maxFinite: Float = format == .f8e4m3fn ? 448 : 57344
        var scales = [Float](repeating: 1, count: rows)
        var q = [UInt8](repeating: 0, count: e.count)
        for r in 0..<rows {
            var m: Float = 0
            for c in 0..<cols where values[r * cols + c].isFinite { m = max(m, abs(values[r * cols + c])) }
            let s = m > 0 ? m / maxFinite : 1
            scales[r] = s
            for c in 0..<cols {
                let v = values[r * cols + c] / s
                q[r * cols + c] = format == .f8e4m3fn ? ScalarConversion.floatToF8E4M3(v) : ScalarConversion.floatToF8E5M2(v)
            }
        }
        let w = try device.tensor(bytes: q, shape: e.shape, dtype: format)
        let s = try device.tensor(scales, shape: [rows], dtype: .f32)
        return (w, s)
    }
}

/// Opens checkpoints of any supported format, detected from the file's first bytes (not its name).
public enum CheckpointFile {
    /// Opens `path`: a `.safetensors` file, a `*.safetensors.index.json` (sharded), a torch zip `.pth`,
    /// or a directory holding exactly one `*.safetensors.index.json` or else exactly one `*.safetensors`.
    public static func open(_ path: String) throws -> any CheckpointReader {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CheckpointError(path, .io("no such file or directory"))
        }
        if isDir.boolValue { return try openDirectory(path) }
        return try open(source: ByteSource(mapping: path))
    }

    /// Opens a checkpoint held in memory (`name` is used in errors). Sharded indexes need files.
    public static func open(bytes: [UInt8], name: String) throws -> any CheckpointReader {
        try open(source: ByteSource(bytes: bytes, name: name))
    }

    /// The format of `path`'s first bytes, or nil when it is none of the supported ones.
    public static func detectFormat(_ path: String) throws -> CheckpointFormat? {
        let source = try ByteSource(mapping: path)
        return try detect(source)
    }

    static func detect(_ s: ByteSource) throws -> CheckpointFormat? {
        let head = try s.bytes(0, min(s.count, 16), "file header")
        if head.count >= 4, head[0] == 0x50, head[1] == 0x4B,
           (head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6) {
            return .torchZip
        }
        let firstText = head.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 })
        let looksJSON = firstText == UInt8(ascii: "{")
        if head.count >= 9, head[8] == UInt8(ascii: "{") {
            // A safetensors header length whose low byte happens to be '{' still has a sane length;
            // a JSON index read as a length gives an impossible one.
            let n = try s.u64(0, "header length")
            if !looksJSON || n <= UInt64(s.count - 8) { return .safetensors }
        }
        if looksJSON { return .shardedSafetensors }
        return nil
    }

    static func open(source s: ByteSource) throws -> any CheckpointReader {
        switch try detect(s) {
        case .torchZip: return try TorchCheckpoint(source: s)
        case .safetensors: return try SafetensorsFile(source: s)
        case .shardedSafetensors:
            // An index names its shards relative to itself; that needs a path on disk.
            return try ShardedSafetensors(indexSource: s)
        case nil:
            let head = (try? s.bytes(0, min(s.count, 16), "file header")) ?? []
            if head.count >= 2, head[0] == 0x80, head[1] <= 5 {
                throw CheckpointError(s.path, .unknownFormat("a legacy (pre-1.6, non-zip) torch.save file; re-save it with a current torch or convert it to safetensors"))
            }
            if head.starts(with: Array("GGUF".utf8)) {
                throw CheckpointError(s.path, .unknownFormat("GGUF files are not supported"))
            }
            if s.count < 9 {
                throw CheckpointError(s.path, .truncated("\(s.count) bytes is too short for any checkpoint"))
            }
            throw CheckpointError(s.path, .unknownFormat("neither safetensors, a safetensors index, nor a torch zip archive"))
        }
    }

    static func openDirectory(_ path: String) throws -> any CheckpointReader {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        } catch {
            throw CheckpointError(path, .io("cannot list directory: \(error.localizedDescription)"))
        }
        let dir = path.hasSuffix("/") ? path : path + "/"
        let indexes = names.filter { $0.hasSuffix(".safetensors.index.json") }
        if indexes.count == 1 { return try ShardedSafetensors(indexPath: dir + indexes[0]) }
        if indexes.count > 1 {
            throw CheckpointError(path, .unknownFormat("directory holds several indexes: \(indexes.joined(separator: ", "))"))
        }
        let files = names.filter { $0.hasSuffix(".safetensors") }
        if files.count == 1 { return try SafetensorsFile(path: dir + files[0]) }
        throw CheckpointError(path, .unknownFormat(files.isEmpty
            ? "directory holds no .safetensors file or index"
            : "directory holds \(files.count) .safetensors files and no index"))
    }
}
