import Foundation
import Testing
import WanRuntime
@testable import WanModels

/// Writes protocol-2 pickles the way torch.save does, for hand-made (and hostile) test archives.
struct PickleBuilder {
    var bytes: [UInt8] = [0x80, 2]

    mutating func op(_ b: UInt8...) { bytes += b }

    mutating func global(_ module: String, _ name: String) {
        bytes += [0x63] + Array(module.utf8) + [0x0A] + Array(name.utf8) + [0x0A]
    }

    mutating func string(_ s: String) {
        let u = Array(s.utf8)
        bytes += [0x58] + withUnsafeBytes(of: UInt32(u.count).littleEndian) { Array($0) } + u
    }

    mutating func int(_ i: Int) {
        if i >= 0 && i < 256 { bytes += [0x4B, UInt8(i)] } else {
            bytes += [0x4A] + withUnsafeBytes(of: Int32(i).littleEndian) { Array($0) }
        }
    }

    mutating func intTuple(_ v: [Int]) {
        op(0x28)
        for i in v { int(i) }
        op(0x74)
    }

    /// `_rebuild_tensor_v2(('storage', torch.<storage>, key, 'cpu', numel), offset, shape, stride, False, OrderedDict())`.
    mutating func tensor(key: String, storage: String = "FloatStorage", numel: Int, offset: Int = 0,
                         shape: [Int], stride: [Int]) {
        global("torch._utils", "_rebuild_tensor_v2")
        op(0x28, 0x28)
        string("storage")
        global("torch", storage)
        string(key)
        string("cpu")
        int(numel)
        op(0x74, 0x51)  // TUPLE, BINPERSID
        int(offset)
        intTuple(shape)
        intTuple(stride)
        op(0x89)
        global("collections", "OrderedDict")
        op(0x29, 0x52, 0x74, 0x52)  // EMPTY_TUPLE REDUCE TUPLE REDUCE
    }

    /// An OrderedDict of `items` (each appends its value) and STOP.
    static func stateDict(_ items: [(String, (inout PickleBuilder) -> Void)]) -> [UInt8] {
        var p = PickleBuilder()
        p.global("collections", "OrderedDict")
        p.op(0x29, 0x52, 0x28)
        for (name, value) in items {
            p.string(name)
            value(&p)
        }
        p.op(0x75, 0x2E)  // SETITEMS STOP
        return p.bytes
    }
}

/// A minimal ZIP writer (stored entries) for hand-made archives.
func zipBytes(_ records: [(String, [UInt8])]) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt16(truncatingIfNeeded: v).littleEndian) { Array($0) } }
    func le32(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { Array($0) } }
    var out: [UInt8] = [], central: [UInt8] = []
    for (name, data) in records {
        let n = Array(name.utf8), crc = Int(CRC32.checksum(data)), offset = out.count
        out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0x21) + le32(crc)
        out += le32(data.count) + le32(data.count) + le16(n.count) + le16(0) + n + data
        central += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0x21) + le32(crc)
        central += le32(data.count) + le32(data.count) + le16(n.count) + le16(0) + le16(0) + le16(0) + le16(0)
        central += le32(0) + le32(offset) + n
    }
    let cd = out.count
    out += central
    out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(records.count) + le16(records.count)
    out += le32(central.count) + le32(cd) + le16(0)
    return out
}

func floatBytes(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }

@Suite struct TorchCheckpointTests {
    @Test func readsTorchSaveOutput() throws {
        for file in ["state.pth", "zip64.pth"] {
            let r = try CheckpointFile.open(CheckpointFixtures.path(file))
            #expect(r.format == .torchZip)
            try CheckpointFixtures.check(r, against: file)
            let t = try #require(r as? TorchCheckpoint)
            #expect(t.archiveName == "state" && t.unwrappedKey == nil)
            #expect(t.metadata["byteorder"] == "little" && t.metadata["version"] != nil)
            #expect(t.isContiguous("base_t") == false && t.isContiguous("base_rows") == true)
            #expect(r.entry("fp8")?.dtype == .f8e4m3fn && r.entry("param")?.shape == [2, 2])
        }
    }

    @Test func unwrapsNestedDicts() throws {
        let r = try CheckpointFile.open(CheckpointFixtures.path("nested.pth"))
        try CheckpointFixtures.check(r, against: "nested.pth")
        #expect((r as? TorchCheckpoint)?.unwrappedKey == "state_dict")
        // Without a wrapper key, nested names are dotted from the top.
        let w = floatBytes([1, 2])
        let pkl = PickleBuilder.stateDict([
            ("outer", { p in
                p.op(0x7D, 0x28)
                p.string("inner")
                p.tensor(key: "0", numel: 2, shape: [2], stride: [1])
                p.string("list")
                p.op(0x5D, 0x28)
                p.tensor(key: "0", numel: 2, offset: 1, shape: [1], stride: [1])
                p.op(0x65, 0x75)  // APPENDS, SETITEMS
            }),
            ("step", { $0.int(5) }),
        ])
        let r2 = try CheckpointFile.open(bytes: zipBytes([("a/data.pkl", pkl), ("a/data/0", w)]), name: "n.pth")
        #expect(Set(r2.tensorNames) == ["outer.inner", "outer.list.0"])
        #expect(try r2.floats("outer.list.0") == [2])
    }

    @Test func loadsAndConvertsOnDevices() throws {
        let r = try CheckpointFile.open(CheckpointFixtures.path("state.pth"))
        let want = try #require(CheckpointFixtures.expected["state.pth"])
        for device in try CheckpointTestDevices.all() {
            for name in ["norm.weight", "base_t", "linear.bias", "double"] {
                let t = try r.load(name, to: device, as: .f32)
                #expect(t.dtype == .f32 && t.shape == want[name]?.shape)
                #expect(try device.read(t) == want[name]?.values.map { Float($0) }, "\(name) on \(device.name)")
            }
            let steps = try r.load("steps", to: device)
            #expect(try steps.dtype == .i32 && device.read(steps) == want["steps"]?.values.map { Float($0) })
            let fp8 = try r.load("fp8", to: device)
            #expect(try fp8.dtype == .f8e4m3fn && device.read(fp8) == want["fp8"]?.values.map { Float($0) })
        }
        CheckpointTestDevices.checkValidation()
    }

    @Test func gathersStridedViews() throws {
        // A 2x3 storage read as its 3x2 transpose, with an offset view beside it.
        let pkl = PickleBuilder.stateDict([
            ("t", { $0.tensor(key: "0", numel: 7, offset: 1, shape: [3, 2], stride: [1, 3]) }),
            ("row", { $0.tensor(key: "0", numel: 7, offset: 4, shape: [1, 3], stride: [9, 1]) }),
        ])
        let r = try CheckpointFile.open(bytes: zipBytes([("x/data.pkl", pkl), ("x/data/0", floatBytes([9, 0, 1, 2, 3, 4, 5]))]), name: "s.pth")
        #expect(try r.floats("t") == [0, 3, 1, 4, 2, 5])
        #expect(try r.floats("row") == [3, 4, 5])
        #expect((r as? TorchCheckpoint)?.isContiguous("row") == true)
    }

    @Test func refusesForbiddenGlobals() throws {
        CheckpointFixtures.expectError("evil.pth", { _ = try CheckpointFile.open(CheckpointFixtures.path("evil.pth")) }) {
            $0 == .forbiddenGlobal("os.system")
        }
        // A pickle that would create a file if anything ran it.
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("wan-pwned-\(UUID().uuidString)").path
        func hostile(_ build: (inout PickleBuilder) -> Void) -> [UInt8] {
            var p = PickleBuilder()
            build(&p)
            p.op(0x2E)
            return zipBytes([("a/data.pkl", p.bytes), ("a/data/0", floatBytes([1]))])
        }
        let cases: [(String, [UInt8])] = [
            ("os.system", hostile { p in p.global("os", "system"); p.string("touch \(marker)"); p.op(0x85, 0x52) }),
            ("posix.system", hostile { p in p.global("posix", "system"); p.string("touch \(marker)"); p.op(0x85, 0x52) }),
            ("builtins.eval", hostile { p in
                p.string("builtins"); p.string("eval"); p.op(0x93)  // STACK_GLOBAL
                p.string("__import__('os').system('touch \(marker)')"); p.op(0x85, 0x52)
            }),
            ("subprocess.Popen", hostile { p in p.global("subprocess", "Popen"); p.op(0x29, 0x52) }),
            ("torch.load", hostile { p in p.global("torch", "load"); p.op(0x29, 0x52) }),
            ("torch._utils._rebuild_device_tensor_from_numpy", hostile { p in
                p.global("torch._utils", "_rebuild_device_tensor_from_numpy"); p.op(0x29, 0x52)
            }),
            // Hidden inside an otherwise normal state dict.
            ("builtins.exec", PickleBuilder.stateDict([("w", { p in p.global("builtins", "exec"); p.string("1"); p.op(0x85, 0x52) })])
                .withZip()),
        ]
        for (global, bytes) in cases {
            CheckpointFixtures.expectError("hostile.pth", { _ = try CheckpointFile.open(bytes: bytes, name: "hostile.pth") }) {
                $0 == .forbiddenGlobal(global)
            }
        }
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func rejectsBrokenArchives() throws {
        let f = "bad.pth"
        let w = floatBytes([1, 2, 3, 4, 5, 6])
        let good = PickleBuilder.stateDict([("w", { $0.tensor(key: "0", numel: 6, shape: [2, 3], stride: [3, 1]) })])
        func open(_ bytes: [UInt8]) throws { _ = try CheckpointFile.open(bytes: bytes, name: f) }
        func expect(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation,
                    _ matches: @escaping (CheckpointError.Problem) -> Bool) {
            CheckpointFixtures.expectError(f, sourceLocation: sourceLocation, body, matches: matches)
        }
        func kind(_ want: String) -> (CheckpointError.Problem) -> Bool {
            { "\($0)".hasPrefix(want + "(") }
        }
        // The valid archive these variations break.
        let ok = try CheckpointFile.open(bytes: zipBytes([("a/data.pkl", good), ("a/data/0", w)]), name: f)
        #expect(try ok.floats("w") == [1, 2, 3, 4, 5, 6])

        expect({ try open(zipBytes([("a/data.pkl", good)])) }) { $0 == .missingZipEntry("a/data/0") }
        expect({ try open(zipBytes([("a/other", w)])) }) { $0 == .missingZipEntry("<archive>/data.pkl") }
        expect({ try open(zipBytes([("a/data.pkl", good), ("a/data/0", Array(w[0..<20]))])) }, kind("truncated"))
        expect({ try open(zipBytes([("a/data.pkl", good), ("a/data/0", w), ("a/data/0", w)])) }) { $0 == .duplicateName("a/data/0") }
        expect({ try open(zipBytes([("a/data.pkl", good), ("a/data/0", w), ("a/byteorder", Array("big".utf8))])) },
               kind("unsupportedDType"))
        expect({ try open(Array(zipBytes([("a/data.pkl", good), ("a/data/0", w)]).dropLast(10))) }, kind("corruptZip"))
        expect({ try open(Array(zipBytes([("a/data.pkl", good), ("a/data/0", w)]).prefix(200))) }, kind("corruptZip"))
        expect({ try open(CheckpointFixtures.bytes("deflated.pth")) }, kind("compressedEntry"))
        // A flipped byte inside data.pkl fails its CRC.
        var flipped = zipBytes([("a/data.pkl", good), ("a/data/0", w)])
        flipped[30 + 10 + 5] ^= 0x20
        expect({ try open(flipped) }) { if case let .corruptZip(m) = $0 { return m.contains("CRC") } else { return false } }

        func pickle(_ pkl: [UInt8], storage: [UInt8] = w) throws { try open(zipBytes([("a/data.pkl", pkl), ("a/data/0", storage)])) }
        expect({ try pickle(Array(good.dropLast())) }, kind("truncated"))
        expect({ try pickle(Array(good.prefix(40))) }, kind("truncated"))
        expect({ try pickle([0x80, 2, 0x5D, 0x2E]) }, kind("corruptPickle"))  // a list, not a dict
        expect({ try pickle([0x80, 2, 0x7D, 0x69, 0x2E]) }, kind("unsupportedOpcode"))  // INST
        expect({ try pickle([0x80, 2, 0x7D, 0x8F, 0x2E]) }, kind("unsupportedOpcode"))  // EMPTY_SET
        expect({ try pickle([0x80, 9, 0x7D, 0x2E]) }, kind("corruptPickle"))  // protocol 9
        expect({ try pickle([0x80, 2, 0x7D, 0x30, 0x30, 0x2E]) }, kind("corruptPickle"))  // stack underflow
        expect({ try pickle([0x80, 2, 0x7D, 0x68, 7, 0x2E]) }, kind("corruptPickle"))  // unknown memo slot
        expect({ try pickle([0x80, 2, 0x7D, 0x58, 0xFF, 0xFF, 0xFF, 0x7F, 0x2E]) }, kind("truncated"))
        expect({ try pickle([0x80, 2] + [UInt8](repeating: 0x29, count: 1) + [UInt8](repeating: 0x85, count: 100) + [0x2E]) },
               kind("corruptPickle"))  // tuples nested 100 deep
        expect({ try pickle(PickleBuilder.stateDict([("w", { $0.tensor(key: "0", numel: 6, offset: 4, shape: [3], stride: [1]) })])) },
               kind("offsetOutOfRange"))
        expect({ try pickle(PickleBuilder.stateDict([("w", { $0.tensor(key: "0", numel: 6, shape: [3], stride: [-1]) })])) },
               kind("shapeMismatch"))
        expect({ try pickle(PickleBuilder.stateDict([("w", { $0.tensor(key: "0", numel: 6, shape: [2, 3], stride: [1]) })])) },
               kind("shapeMismatch"))
        expect({ try pickle(PickleBuilder.stateDict([("w", { $0.tensor(key: "0", numel: 6, shape: [1 << 20, 1 << 20], stride: [0, 0]) })])) },
               kind("absurdSize"))
        expect({ try pickle(PickleBuilder.stateDict([("w", { $0.tensor(key: "0", storage: "ComplexFloatStorage", numel: 3, shape: [3], stride: [1]) })])) }) {
            $0 == .forbiddenGlobal("torch.ComplexFloatStorage")
        }
        expect({ try pickle(PickleBuilder.stateDict([("w", { $0.tensor(key: "../x", numel: 6, shape: [6], stride: [1]) })])) },
               kind("corruptPickle"))
        expect({
            try pickle(PickleBuilder.stateDict([
                ("a.b", { $0.tensor(key: "0", numel: 6, shape: [6], stride: [1]) }),
                ("a", { p in p.op(0x7D); p.string("b"); p.tensor(key: "0", numel: 6, shape: [6], stride: [1]); p.op(0x73) }),
            ]))
        }) { $0 == .duplicateName("a.b") }
    }
}

extension Array where Element == UInt8 {
    /// This pickle as the `data.pkl` of a one-storage torch archive.
    func withZip() -> [UInt8] { zipBytes([("a/data.pkl", self), ("a/data/0", floatBytes([1]))]) }
}
