/// A storage a torch pickle refers to by persistent id: `('storage', <torch.XStorage>, key, location, numel)`.
/// `torch.storage.UntypedStorage` (used with `_rebuild_tensor_v3`, e.g. for fp8) has no dtype and counts bytes.
struct PickleStorage: Sendable {
    var key: String
    /// The element type, nil for an untyped (byte) storage.
    var dtype: CheckpointDType?
    /// Elements of `dtype`, or bytes when untyped.
    var numel: Int

    /// The storage's size in bytes, nil on overflow.
    var byteCount: Int? {
        let (b, o) = numel.multipliedReportingOverflow(by: dtype?.size ?? 1)
        return o ? nil : b
    }
}

/// A tensor a torch pickle rebuilds: a view (offset, shape, strides in elements) of a storage.
struct PickleTensor: Sendable {
    var storage: PickleStorage
    var dtype: CheckpointDType
    var offset: Int
    var shape: [Int]
    var strides: [Int]
}

/// The only globals the restricted unpickler knows. Everything else is refused by name.
enum PickleGlobal: Sendable, Equatable {
    case orderedDict
    case rebuildTensorV2
    case rebuildTensorV3
    case rebuildTensor
    case untypedStorage
    case rebuildParameter
    case storageType(CheckpointDType)
    case dtype(CheckpointDType)

    /// Resolves `module.name` against the allow-list.
    static func resolve(module: String, name: String) -> PickleGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): return .rebuildTensorV3
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch.storage", "UntypedStorage"), ("torch", "UntypedStorage"): return .untypedStorage
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch", _):
            let storages: [String: CheckpointDType] = [
                "DoubleStorage": .f64, "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16,
                "Float8_e4m3fnStorage": .f8e4m3fn, "Float8_e5m2Storage": .f8e5m2, "LongStorage": .i64,
                "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8, "ByteStorage": .u8, "BoolStorage": .bool,
            ]
            if let d = storages[name] { return .storageType(d) }
            let dtypes: [String: CheckpointDType] = [
                "float64": .f64, "double": .f64, "float32": .f32, "float": .f32, "float16": .f16, "half": .f16,
                "bfloat16": .bf16, "float8_e4m3fn": .f8e4m3fn, "float8_e5m2": .f8e5m2, "int64": .i64, "long": .i64,
                "int32": .i32, "int": .i32, "int16": .i16, "short": .i16, "int8": .i8, "uint8": .u8, "bool": .bool,
            ]
            return dtypes[name].map { .dtype($0) }
        default: return nil
        }
    }
}

/// An immutable tuple; `depth` is its nesting depth in tuples (bounded, so freeing it cannot recurse deeply).
final class PickleTuple {
    let items: [PickleValue]
    let depth: Int

    init(_ items: [PickleValue]) {
        self.items = items
        var d = 0
        for case let .tuple(t) in items { d = max(d, t.depth) }
        depth = d + 1
    }
}

/// A mutable list (pickle lists are shared through the memo).
final class PickleList {
    var items: [PickleValue] = []
}

/// A mutable dict, keys in insertion order; string and integer keys replace earlier equal keys.
final class PickleDict {
    var items: [(key: PickleValue, value: PickleValue)] = []
    private var index: [String: Int] = [:]

    func set(_ key: PickleValue, _ value: PickleValue) {
        let k: String?
        switch key {
        case let .string(s): k = "s" + s
        case let .int(i): k = "i\(i)"
        case let .bool(b): k = "i\(b ? 1 : 0)"
        default: k = nil
        }
        if let k, let i = index[k] {
            items[i].value = value
            return
        }
        if let k { index[k] = items.count }
        items.append((key, value))
    }
}

/// A value on the unpickler's stack.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    case global(PickleGlobal)
    case storage(PickleStorage)
    case tensor(PickleTensor)

    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global: return "global"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// The tensors of an unpickled state dict, with flattened names.
struct PickleStateDict {
    var tensors: [(name: String, tensor: PickleTensor)]
    /// The wrapper key that was unwrapped (`state_dict`, `model`, ...), if any.
    var unwrappedKey: String?
}

/// A restricted pickle interpreter for `torch.save` state dicts. It implements the opcodes of protocols
/// 2-5 that such pickles use and knows only the globals in `PickleGlobal` (OrderedDict, the tensor
/// rebuild functions, torch storage classes and dtypes). Any other global (`os.system`, `builtins.eval`,
/// ...) is refused when named, before anything could call it; nothing from the file is ever executed.
/// Every read is bounds-checked, work is linear in the pickle's size, tuples nest at most
/// `maxTupleDepth` deep, and lists and dicts are torn down iteratively (no deep recursion on free).
struct Unpickler {
    /// Keys whose dict is taken as the state dict when the top-level dict holds no tensor itself.
    static let wrapperKeys = ["state_dict", "model_state_dict", "model", "module"]
    static let maxTupleDepth = 64
    static let maxNameDepth = 32

    private let data: [UInt8]
    private let file: String
    private var pos = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var lists: [PickleList] = []
    private var dicts: [PickleDict] = []

    private init(_ data: [UInt8], file: String) {
        self.data = data
        self.file = file
    }

    /// Runs the pickle and flattens the state dict it leaves: nested dicts (and lists/tuples) give dotted
    /// names (`a.b.0.weight`); values that are not tensors are skipped. When the top-level dict holds no
    /// tensor directly but one of `wrapperKeys` (tried in order) maps to a dict holding tensors, only that
    /// dict is used, without the prefix (`{"state_dict": {...}, "epoch": 3}` gives the inner names).
    static func load(_ data: [UInt8], file: String) throws -> PickleStateDict {
        var u = Unpickler(data, file: file)
        defer { u.teardown() }
        let root = try u.run()
        return try u.flatten(root)
    }

    /// Empties every list and dict so that freeing them cannot recurse through deep chains or leak cycles.
    private mutating func teardown() {
        for l in lists { l.items = [] }
        for d in dicts { d.items = [] }
        stack = []
        memo = [:]
    }

    private func corrupt(_ m: String) -> CheckpointError {
        CheckpointError(file, .corruptPickle("\(m) (at byte \(pos) of data.pkl)"))
    }

    // MARK: flattening

    private func flatten(_ root: PickleValue) throws -> PickleStateDict {
        guard case let .dict(top) = root else { throw corrupt("the pickle holds a \(root.typeName), not a dict of tensors") }
        var budget = data.count + 1024
        var out: [(name: String, tensor: PickleTensor)] = []
        var seen = Set<String>()
        var start = top
        var unwrapped: String?
        let direct = top.items.contains { if case .tensor = $0.value { return true } else { return false } }
        if !direct {
            outer: for key in Self.wrapperKeys {
                for item in top.items {
                    guard case .string(key) = item.key, case let .dict(inner) = item.value else { continue }
                    var probe: [(name: String, tensor: PickleTensor)] = []
                    var probeSeen = Set<String>()
                    var probeBudget = budget
                    try walk(.dict(inner), "", 0, &probe, &probeSeen, &probeBudget)
                    if !probe.isEmpty {
                        start = inner
                        unwrapped = key
                        break outer
                    }
                }
            }
        }
        try walk(.dict(start), "", 0, &out, &seen, &budget)
        return PickleStateDict(tensors: out, unwrappedKey: unwrapped)
    }

    private func walk(_ v: PickleValue, _ prefix: String, _ depth: Int,
                      _ out: inout [(name: String, tensor: PickleTensor)], _ seen: inout Set<String>,
                      _ budget: inout Int) throws {
        budget -= 1
        guard budget >= 0 else { throw corrupt("the state dict refers to its parts too many times") }
        func join(_ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }
        switch v {
        case let .tensor(t):
            guard seen.insert(prefix).inserted else { throw CheckpointError(file, .duplicateName(prefix)) }
            out.append((prefix, t))
        case let .dict(d):
            guard depth < Self.maxNameDepth else { throw corrupt("dicts nest deeper than \(Self.maxNameDepth)") }
            for item in d.items {
                let name: String
                switch item.key {
                case let .string(s): name = s
                case let .int(i): name = String(i)
                default: continue
                }
                try walk(item.value, join(name), depth + 1, &out, &seen, &budget)
            }
        case let .list(l):
            guard depth < Self.maxNameDepth else { throw corrupt("lists nest deeper than \(Self.maxNameDepth)") }
            for (i, item) in l.items.enumerated() { try walk(item, join(String(i)), depth + 1, &out, &seen, &budget) }
        case let .tuple(t):
            guard depth < Self.maxNameDepth else { throw corrupt("tuples nest deeper than \(Self.maxNameDepth)") }
            for (i, item) in t.items.enumerated() { try walk(item, join(String(i)), depth + 1, &out, &seen, &budget) }
        default:
            break
        }
    }

    // MARK: reading

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= data.count - pos else {
            throw CheckpointError(file, .truncated("data.pkl ends inside an argument at byte \(pos)"))
        }
        defer { pos += n }
        return data[pos..<(pos + n)]
    }

    private mutating func u8() throws -> Int { Int(try take(1).first ?? 0) }

    private mutating func uint(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (k, b) in try take(n).enumerated() { v |= UInt64(b) << (8 * UInt64(k)) }
        return v
    }

    private mutating func length(_ n: Int) throws -> Int {
        let v = try uint(n)
        guard v <= UInt64(data.count - pos) else {
            throw CheckpointError(file, .truncated("data.pkl announces \(v) bytes at byte \(pos) but has \(data.count - pos) left"))
        }
        return Int(v)
    }

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.popLast() else { throw corrupt("stack underflow") }
        return v
    }

    private mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw corrupt("no mark on the stack") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    /// The value on top of the stack (above the innermost mark).
    private func top(_ what: String) throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.last else { throw corrupt("\(what) with nothing on the stack") }
        return v
    }

    private func tuple(_ items: [PickleValue]) throws -> PickleValue {
        let t = PickleTuple(items)
        guard t.depth <= Self.maxTupleDepth else { throw corrupt("tuples nest deeper than \(Self.maxTupleDepth)") }
        return .tuple(t)
    }

    private mutating func newList(_ items: [PickleValue] = []) -> PickleValue {
        let l = PickleList()
        l.items = items
        lists.append(l)
        return .list(l)
    }

    private mutating func newDict() -> PickleDict {
        let d = PickleDict()
        dicts.append(d)
        return d
    }

    private func utf8(_ bytes: ArraySlice<UInt8>) throws -> String {
        guard let s = String(validating: bytes, as: UTF8.self) else { throw corrupt("invalid UTF-8 in a string") }
        return s
    }

    /// A line of a text opcode (GLOBAL), without its newline.
    private mutating func line() throws -> String {
        let limit = min(data.count, pos + 1024)
        guard let nl = data[pos..<limit].firstIndex(of: 0x0A) else {
            if limit == data.count { throw CheckpointError(file, .truncated("data.pkl ends inside a GLOBAL name")) }
            throw corrupt("GLOBAL name longer than 1024 bytes")
        }
        let s = try utf8(data[pos..<nl])
        pos = nl + 1
        return s
    }

    private func global(_ module: String, _ name: String) throws -> PickleValue {
        guard let g = PickleGlobal.resolve(module: module, name: name) else {
            throw CheckpointError(file, .forbiddenGlobal("\(module).\(name)"))
        }
        return .global(g)
    }

    private mutating func run() throws -> PickleValue {
        while true {
            guard pos < data.count else { throw CheckpointError(file, .truncated("data.pkl ends without STOP")) }
            let op = data[pos]
            pos += 1
            switch op {
            case 0x80:  // PROTO
                let v = try u8()
                guard v >= 2 && v <= 5 else { throw corrupt("pickle protocol \(v) (2-5 supported)") }
            case 0x95: _ = try uint(8)  // FRAME: frames are only a buffering hint
            case 0x2E:  // STOP
                guard marks.isEmpty, stack.count == 1, let v = stack.last else {
                    throw corrupt("STOP with \(stack.count) values and \(marks.count) marks on the stack")
                }
                return v
            case 0x28: marks.append(stack.count)  // MARK
            case 0x29: stack.append(try tuple([]))  // EMPTY_TUPLE
            case 0x5D: stack.append(newList())  // EMPTY_LIST
            case 0x7D: stack.append(.dict(newDict()))  // EMPTY_DICT
            case 0x85, 0x86, 0x87:  // TUPLE1-3
                let n = Int(op) - 0x84
                guard stack.count - (marks.last ?? 0) >= n else { throw corrupt("TUPLE\(n) needs \(n) values") }
                let items = Array(stack.suffix(n))
                stack.removeLast(n)
                stack.append(try tuple(items))
            case 0x74: stack.append(try tuple(try popMark()))  // TUPLE
            case 0x6C: stack.append(newList(try popMark()))  // LIST
            case 0x64:  // DICT
                let items = try popMark()
                guard items.count % 2 == 0 else { throw corrupt("DICT with an odd number of values") }
                let d = newDict()
                for k in stride(from: 0, to: items.count, by: 2) { d.set(items[k], items[k + 1]) }
                stack.append(.dict(d))
            case 0x73:  // SETITEM
                let v = try pop(), k = try pop()
                guard case let .dict(d) = try top("SETITEM") else { throw corrupt("SETITEM on a \(try top("SETITEM").typeName)") }
                d.set(k, v)
            case 0x75:  // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0 else { throw corrupt("SETITEMS with an odd number of values") }
                guard case let .dict(d) = try top("SETITEMS") else { throw corrupt("SETITEMS on a \(try top("SETITEMS").typeName)") }
                for k in stride(from: 0, to: items.count, by: 2) { d.set(items[k], items[k + 1]) }
            case 0x61:  // APPEND
                let v = try pop()
                guard case let .list(l) = try top("APPEND") else { throw corrupt("APPEND on a \(try top("APPEND").typeName)") }
                l.items.append(v)
            case 0x65:  // APPENDS
                let items = try popMark()
                guard case let .list(l) = try top("APPENDS") else { throw corrupt("APPENDS on a \(try top("APPENDS").typeName)") }
                l.items += items
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popMark()  // POP_MARK
            case 0x32: stack.append(try top("DUP"))  // DUP
            case 0x4A: stack.append(.int(Int(Int32(bitPattern: UInt32(try uint(4))))))  // BININT
            case 0x4B: stack.append(.int(try u8()))  // BININT1
            case 0x4D: stack.append(.int(Int(try uint(2))))  // BININT2
            case 0x8A, 0x8B:  // LONG1, LONG4
                let n = try length(op == 0x8A ? 1 : 4)
                let bytes = try take(n)
                guard n <= 8 else { throw corrupt("integer of \(n) bytes is too large") }
                var v: UInt64 = 0
                for (k, b) in bytes.enumerated() { v |= UInt64(b) << (8 * UInt64(k)) }
                if n > 0 && n < 8 && bytes.last.map({ $0 & 0x80 != 0 }) == true {
                    v |= ~UInt64(0) << (8 * UInt64(n))  // sign-extend
                }
                stack.append(.int(Int(Int64(bitPattern: v))))
            case 0x47:  // BINFLOAT (big-endian)
                var v: UInt64 = 0
                for b in try take(8) { v = v << 8 | UInt64(b) }
                stack.append(.float(Double(bitPattern: v)))
            case 0x88: stack.append(.bool(true))  // NEWTRUE
            case 0x89: stack.append(.bool(false))  // NEWFALSE
            case 0x4E: stack.append(.none)  // NONE
            case 0x58, 0x8C, 0x8D:  // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                let n = try length(op == 0x58 ? 4 : op == 0x8C ? 1 : 8)
                stack.append(.string(try utf8(try take(n))))
            case 0x54, 0x55:  // BINSTRING, SHORT_BINSTRING (protocol-1 str: bytes read as Latin-1)
                let n = try length(op == 0x54 ? 4 : 1)
                var scalars = String.UnicodeScalarView()
                for b in try take(n) { scalars.append(Unicode.Scalar(b)) }
                stack.append(.string(String(scalars)))
            case 0x42, 0x43, 0x8E:  // BINBYTES, SHORT_BINBYTES, BINBYTES8
                let n = try length(op == 0x42 ? 4 : op == 0x43 ? 1 : 8)
                stack.append(.bytes(Array(try take(n))))
            case 0x71, 0x72:  // BINPUT, LONG_BINPUT
                let k = Int(try uint(op == 0x71 ? 1 : 4))
                memo[k] = try top("PUT")
            case 0x94: memo[memo.count] = try top("MEMOIZE")  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let k = Int(try uint(op == 0x68 ? 1 : 4))
                guard let v = memo[k] else { throw corrupt("GET of unknown memo slot \(k)") }
                stack.append(v)
            case 0x63:  // GLOBAL
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93:  // STACK_GLOBAL
                let n = try pop(), m = try pop()
                guard case let .string(module) = m, case let .string(name) = n else {
                    throw corrupt("STACK_GLOBAL needs two strings")
                }
                stack.append(try global(module, name))
            case 0x51:  // BINPERSID
                stack.append(try persistentLoad(try pop()))
            case 0x52:  // REDUCE
                let args = try pop(), callable = try pop()
                guard case let .tuple(a) = args else { throw corrupt("REDUCE arguments are a \(args.typeName), not a tuple") }
                stack.append(try call(callable, a.items))
            case 0x81:  // NEWOBJ
                let args = try pop(), cls = try pop()
                guard case .global(.orderedDict) = cls, case let .tuple(a) = args, a.items.isEmpty else {
                    throw corrupt("NEWOBJ of a \(cls.typeName) (only OrderedDict() is allowed)")
                }
                stack.append(.dict(newDict()))
            case 0x62:  // BUILD: object state (e.g. an OrderedDict's `_metadata`) is not needed.
                _ = try pop()
                switch try top("BUILD") {
                case .dict, .tensor: break
                case let other: throw corrupt("BUILD on a \(other.typeName)")
                }
            default:
                let c = op >= 0x20 && op < 0x7F ? " '\(Character(Unicode.Scalar(op)))'" : ""
                throw CheckpointError(file, .unsupportedOpcode("0x\(String(op, radix: 16))\(c) at byte \(pos - 1) of data.pkl"))
            }
        }
    }

    private func int(_ v: PickleValue, _ what: String) throws -> Int {
        guard case let .int(i) = v else { throw corrupt("\(what) is a \(v.typeName), not an int") }
        return i
    }

    private func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
        guard case let .tuple(t) = v else { throw corrupt("\(what) is a \(v.typeName), not a tuple") }
        return try t.items.map { try int($0, what) }
    }

    private func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case let .tuple(tt) = pid, tt.items.count == 5, case .string("storage") = tt.items[0] else {
            throw corrupt("persistent id is not ('storage', type, key, location, numel)")
        }
        let t = tt.items
        let dtype: CheckpointDType?
        switch t[1] {
        case let .global(.storageType(d)): dtype = d
        case .global(.untypedStorage): dtype = nil
        default: throw corrupt("persistent id names a \(t[1].typeName), not a torch storage type")
        }
        let key: String
        switch t[2] {
        case let .string(s): key = s
        case let .int(i): key = String(i)
        default: throw corrupt("storage key is a \(t[2].typeName)")
        }
        guard !key.isEmpty, !key.contains("/"), key != "..", key != "." else {
            throw corrupt("storage key '\(key)' is not a plain name")
        }
        let numel = try int(t[4], "storage size")
        guard numel >= 0 else { throw corrupt("negative storage size \(numel)") }
        return .storage(PickleStorage(key: key, dtype: dtype, numel: numel))
    }

    private mutating func call(_ callable: PickleValue, _ a: [PickleValue]) throws -> PickleValue {
        guard case let .global(g) = callable else { throw corrupt("REDUCE calls a \(callable.typeName)") }
        switch g {
        case .orderedDict:
            let d = newDict()
            if let first = a.first {
                guard a.count == 1 else { throw corrupt("OrderedDict with \(a.count) arguments") }
                let pairs: [PickleValue]
                switch first {
                case let .list(l): pairs = l.items
                case let .tuple(t): pairs = t.items
                default: throw corrupt("OrderedDict of a \(first.typeName)")
                }
                for p in pairs {
                    guard case let .tuple(kv) = p, kv.items.count == 2 else { throw corrupt("OrderedDict item is not a pair") }
                    d.set(kv.items[0], kv.items[1])
                }
            }
            return .dict(d)
        case .rebuildTensorV2, .rebuildTensor, .rebuildTensorV3:
            // v2: (storage, offset, size, stride, requires_grad, hooks[, metadata]); v3 adds dtype after hooks.
            let needed = g == .rebuildTensor ? 4 : g == .rebuildTensorV2 ? 6 : 7
            guard a.count >= needed else { throw corrupt("tensor rebuild with \(a.count) arguments") }
            guard case let .storage(s) = a[0] else { throw corrupt("tensor rebuilt from a \(a[0].typeName), not a storage") }
            let offset = try int(a[1], "storage offset")
            let shape = try ints(a[2], "tensor size")
            let strides = try ints(a[3], "tensor stride")
            var dtype = s.dtype
            if g == .rebuildTensorV3 {
                guard case let .global(.dtype(d)) = a[6] else { throw corrupt("tensor dtype is a \(a[6].typeName), not a torch dtype") }
                dtype = d
            }
            guard let dtype else { throw corrupt("tensor on an untyped storage without a dtype") }
            return .tensor(PickleTensor(storage: s, dtype: dtype, offset: offset, shape: shape, strides: strides))
        case .rebuildParameter:
            guard let first = a.first, case .tensor = first else { throw corrupt("parameter rebuilt from something other than a tensor") }
            return first
        case .storageType, .dtype, .untypedStorage:
            throw corrupt("a torch storage type or dtype is called")
        }
    }
}
