import Foundation
import Testing
import WanRuntime
@testable import WanModels

/// The checkpoint fixtures (written by Fixtures/generate_checkpoints.py) and their expected contents.
enum CheckpointFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path

    static func path(_ name: String) -> String { directory + "/" + name }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    struct Expected {
        var dtype: String
        var shape: [Int]
        var values: [Double]
    }

    /// expected.json: file → tensor name → dtype, shape, values (row-major).
    static let expected: [String: [String: Expected]] = {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path("expected.json"))),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: [String: [String: Any]]] else { return [:] }
        return root.mapValues { tensors in
            tensors.mapValues { t in
                Expected(dtype: t["dtype"] as? String ?? "",
                         shape: (t["shape"] as? [NSNumber] ?? []).map(\.intValue),
                         values: (t["values"] as? [NSNumber] ?? []).map(\.doubleValue))
            }
        }
    }()

    /// Checks that `reader` holds exactly the tensors expected.json lists for `file`, with their values.
    static func check(_ reader: any CheckpointReader, against file: String,
                      sourceLocation: SourceLocation = #_sourceLocation) throws {
        let want = try #require(expected[file], "expected.json has no entry for \(file)", sourceLocation: sourceLocation)
        #expect(Set(reader.tensorNames) == Set(want.keys), sourceLocation: sourceLocation)
        #expect(reader.tensorNames.count == want.count, sourceLocation: sourceLocation)
        for (name, w) in want {
            let e = try #require(reader.entry(name), "missing \(name)", sourceLocation: sourceLocation)
            #expect(e.dtype.rawValue == w.dtype, "\(name) dtype", sourceLocation: sourceLocation)
            #expect(e.shape == w.shape, "\(name) shape", sourceLocation: sourceLocation)
            let got = try reader.floats(name)
            #expect(got == w.values.map { Float($0) }, "\(name) values", sourceLocation: sourceLocation)
            #expect(try reader.bytes(name).count == e.byteCount, sourceLocation: sourceLocation)
        }
    }

    /// Asserts that `body` throws a `CheckpointError` whose problem `matches` and whose text names `file`.
    static func expectError(_ file: String, sourceLocation: SourceLocation = #_sourceLocation,
                            _ body: () throws -> Void, matches: (CheckpointError.Problem) -> Bool) {
        do {
            try body()
            Issue.record("expected a CheckpointError for \(file)", sourceLocation: sourceLocation)
        } catch let e as CheckpointError {
            #expect(matches(e.problem), "unexpected problem: \(e)", sourceLocation: sourceLocation)
            #expect(e.file.hasSuffix(file) && e.description.contains(file), "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected a CheckpointError, got \(error)", sourceLocation: sourceLocation)
        }
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wan-ckpt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// The CPU device, and the Vulkan device when there is one (required when WAN_REQUIRE_VULKAN=1 or CI).
enum CheckpointTestDevices {
    private static let opened: Result<Device, Error> = Result {
        let env = ProcessInfo.processInfo.environment
        return try Device.vulkan(env["WAN_TEST_VULKAN_DEVICE"].flatMap(Int.init) ?? 0,
                                 validation: env["WAN_VK_VALIDATION"] != "0")
    }

    static func all() throws -> [Device] {
        switch opened {
        case let .success(d): return [Device.cpu(), d]
        case let .failure(e):
            let env = ProcessInfo.processInfo.environment
            let ci = env["CI"].map { !$0.isEmpty && $0 != "0" && $0 != "false" } ?? false
            if ci || env["WAN_REQUIRE_VULKAN"] == "1" { throw e }
            print("SKIP Vulkan checkpoint loads: \(e)")
            return [Device.cpu()]
        }
    }

    static func checkValidation(sourceLocation: SourceLocation = #_sourceLocation) {
        guard case let .success(d) = opened, let v = d.vulkan else { return }
        let messages = v.instance.validationMessages
        v.instance.clearValidationMessages()
        #expect(messages.isEmpty, "Vulkan validation: \(messages.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }
}

/// Builds safetensors bytes from a header and a data section.
func safetensorsBytes(_ header: String, data: [UInt8] = [], lengthOverride: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    let n = lengthOverride ?? UInt64(h.count)
    return withUnsafeBytes(of: n.littleEndian) { Array($0) } + h + data
}

@Suite struct SafetensorsTests {
    @Test func readsEveryDtype() throws {
        let r = try CheckpointFile.open(CheckpointFixtures.path("basic.safetensors"))
        #expect(r.format == .safetensors)
        #expect(r.metadata == ["format": "pt", "note": "fixture"])
        try CheckpointFixtures.check(r, against: "basic.safetensors")
        // Entries come in file order: byte ranges increase.
        let st = try #require(r as? SafetensorsFile)
        let starts = st.entries.compactMap { st.byteRange($0.name)?.lowerBound }
        #expect(starts == starts.sorted())
        #expect(r.entry("scalar")?.shape == [] && r.entry("empty")?.count == 0)
    }

    @Test func detectsFormatByContentNotName() throws {
        let dir = try CheckpointFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let renamed = dir + "/weights.bin"
        try FileManager.default.copyItem(atPath: CheckpointFixtures.path("basic.safetensors"), toPath: renamed)
        #expect(try CheckpointFile.detectFormat(renamed) == .safetensors)
        try CheckpointFixtures.check(try CheckpointFile.open(renamed), against: "basic.safetensors")
        // A directory with one .safetensors file opens that file.
        try FileManager.default.moveItem(atPath: renamed, toPath: dir + "/model.safetensors")
        #expect(try CheckpointFile.open(dir).entries.count == 14)
        // In memory.
        let mem = try CheckpointFile.open(bytes: CheckpointFixtures.bytes("basic.safetensors"), name: "mem.safetensors")
        try CheckpointFixtures.check(mem, against: "basic.safetensors")
    }

    @Test func loadsAndConvertsOnDevices() throws {
        let r = try CheckpointFile.open(CheckpointFixtures.path("basic.safetensors"))
        let want = try #require(CheckpointFixtures.expected["basic.safetensors"])
        for device in try CheckpointTestDevices.all() {
            // Keep: the stored type where the runtime has it, else the documented widening/narrowing.
            let kept: [String: DType] = ["f32": .f32, "f16": .f16, "bf16": .bf16, "f64": .f32, "f8e4m3": .f8e4m3fn,
                                         "f8e5m2": .f8e5m2, "i64": .i32, "i32": .i32, "i16": .i32, "i8": .i32,
                                         "u8": .u8, "mask": .u8, "scalar": .f32, "empty": .f32]
            for (name, dtype) in kept {
                let t = try r.load(name, to: device, as: nil)
                #expect(t.dtype == dtype && t.shape == want[name]?.shape, "\(name) on \(device.name)")
                #expect(try device.read(t) == want[name]?.values.map { Float($0) }, "\(name) on \(device.name)")
            }
            // Float conversions (the fixture values are exact in every float type).
            for target in [DType.f32, .f16, .bf16] {
                for name in ["f32", "f16", "bf16", "f64"] {
                    let t = try r.load(name, to: device, as: target)
                    #expect(t.dtype == target)
                    #expect(try device.read(t) == want[name]?.values.map { Float($0) }, "\(name) as \(target)")
                }
            }
            let fp8 = try r.load("f8e5m2", to: device, as: .f8e4m3fn)
            #expect(try device.read(fp8) == want["f8e5m2"]?.values.map { Float($0) })
            // A float request leaves integer tensors integer; an integer request refuses float tensors.
            #expect(try r.load("i64", to: device, as: .bf16).dtype == .i32)
            #expect(try r.load("u8", to: device, as: .i32).dtype == .i32)
            CheckpointFixtures.expectError("basic.safetensors", { _ = try r.load("f32", to: device, as: .i32) }) {
                if case .conversion = $0 { return true } else { return false }
            }
            let all = try r.loadAll(to: device, as: .f16) { $0.dtype.isFloat }
            #expect(all.count == 8 && all["bf16"]?.dtype == .f16 && all["f8e4m3"]?.dtype == .f16)
            // Per-channel fp8: w ≈ q * scale[row], scale = max|row| / 448.
            let (q, scale) = try r.loadScaledFP8("f32", to: device)
            let qs = try device.read(q), ss = try device.read(scale)
            let w = try r.floats("f32")
            #expect(q.dtype == .f8e4m3fn && scale.shape == [3])
            for row in 0..<3 {
                let m = (0..<5).map { abs(w[row * 5 + $0]) }.max() ?? 0
                #expect(abs(ss[row] - m / 448) <= 1e-6 * m)
                for c in 0..<5 { #expect(abs(qs[row * 5 + c] * ss[row] - w[row * 5 + c]) <= 0.07 * m) }
            }
        }
        CheckpointTestDevices.checkValidation()
    }

    @Test func integerConversionChecksRange() throws {
        let data = withUnsafeBytes(of: Int64(1) << 40) { Array($0) } + withUnsafeBytes(of: Int64(-5)) { Array($0) }
        let bytes = safetensorsBytes(#"{"big":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#, data: data)
        let r = try CheckpointFile.open(bytes: bytes, name: "ints.safetensors")
        #expect(try r.floats("big") == [Float(1 << 40), -5])
        CheckpointFixtures.expectError("ints.safetensors", { _ = try r.load("big", to: Device.cpu()) }) {
            if case let .conversion(m) = $0 { return m.contains("1099511627776") } else { return false }
        }
    }

    @Test func readsShardedCheckpoints() throws {
        let r = try CheckpointFile.open(CheckpointFixtures.path("sharded.safetensors.index.json"))
        #expect(r.format == .shardedSafetensors)
        try CheckpointFixtures.check(r, against: "sharded.safetensors.index.json")
        let sharded = try #require(r as? ShardedSafetensors)
        #expect(sharded.shards.count == 2)
        #expect(sharded.shard(of: "head.weight")?.path.hasSuffix("shard-00002-of-00002.safetensors") == true)
        #expect(r.metadata["total_size"] == "80")
        // The fixture directory holds exactly one index: opening the directory opens it.
        #expect(try CheckpointFile.open(CheckpointFixtures.directory).format == .shardedSafetensors)
        let cpu = Device.cpu()
        let t = try r.load("blocks.1.weight", to: cpu, as: .f32)
        #expect(try cpu.read(t) == CheckpointFixtures.expected["sharded.safetensors.index.json"]?["blocks.1.weight"]?.values.map { Float($0) })
    }

    @Test func rejectsBadShardIndexes() throws {
        let dir = try CheckpointFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        for s in ["shard-00001-of-00002.safetensors", "shard-00002-of-00002.safetensors"] {
            try fm.copyItem(atPath: CheckpointFixtures.path(s), toPath: dir + "/" + s)
        }
        func index(_ json: String) throws -> String {
            let p = dir + "/model.safetensors.index.json"
            try? fm.removeItem(atPath: p)
            try Data(json.utf8).write(to: URL(fileURLWithPath: p))
            return p
        }
        let s1 = "shard-00001-of-00002.safetensors"
        let isHeader: (CheckpointError.Problem) -> Bool = { if case .corruptHeader = $0 { return true } else { return false } }
        CheckpointFixtures.expectError("model.safetensors.index.json", {
            _ = try CheckpointFile.open(try index(#"{"weight_map":{"blocks.0.bias":"\#(s1)","nope":"\#(s1)"}}"#))
        }, matches: { if case let .corruptHeader(m) = $0 { return m.contains("nope") } else { return false } })
        CheckpointFixtures.expectError("model.safetensors.index.json", {
            _ = try CheckpointFile.open(try index(#"{"weight_map":{"a":"../\#(s1)"}}"#))
        }, matches: isHeader)
        CheckpointFixtures.expectError("model.safetensors.index.json", {
            _ = try CheckpointFile.open(try index(#"{"weight_map":{"a":"/etc/passwd"}}"#))
        }, matches: isHeader)
        CheckpointFixtures.expectError("model.safetensors.index.json", {
            _ = try CheckpointFile.open(try index(#"{"metadata":{}}"#))
        }, matches: isHeader)
        CheckpointFixtures.expectError("model.safetensors.index.json", {
            _ = try CheckpointFile.open(try index(#"{"weight_map":{"a":"\#(s1)","a":"\#(s1)"}}"#))
        }, matches: { $0 == .duplicateName("a") })
        CheckpointFixtures.expectError("missing.safetensors", {
            _ = try CheckpointFile.open(try index(#"{"weight_map":{"a":"missing.safetensors"}}"#))
        }, matches: { if case .io = $0 { return true } else { return false } })
        // A valid index over the copied shards, names only from the weight map.
        let ok = try CheckpointFile.open(try index(#"{"weight_map":{"blocks.0.bias":"\#(s1)"}}"#))
        #expect(ok.tensorNames == ["blocks.0.bias"])
    }

    @Test func rejectsBadHeaders() throws {
        let f = "bad.safetensors"
        func open(_ bytes: [UInt8]) throws { _ = try CheckpointFile.open(bytes: bytes, name: f) }
        func header(_ h: String, data: Int = 16) throws { try open(safetensorsBytes(h, data: [UInt8](repeating: 0, count: data))) }
        func kind(_ p: CheckpointError.Problem) -> String { "\(p)".components(separatedBy: "(").first ?? "" }
        func expect(_ want: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
            CheckpointFixtures.expectError(f, sourceLocation: sourceLocation, body) { kind($0) == want }
        }
        let t = #""dtype":"F32","shape":[2],"data_offsets":[0,8]"#
        expect("truncated") { try open([1, 2, 3]) }
        expect("truncated") { try open(safetensorsBytes("{}", lengthOverride: 500)) }
        expect("absurdSize") { try open(safetensorsBytes("{}", lengthOverride: 1 << 40)) }
        expect("absurdSize") { _ = try SafetensorsFile(bytes: safetensorsBytes("{}", lengthOverride: 200_000_000), name: f) }
        expect("corruptHeader") { try header(#"{"a":{\#(t)}"#) }
        expect("corruptHeader") { try header(#"{"a":{\#(t)}} x"#) }
        expect("corruptHeader") { _ = try SafetensorsFile(bytes: safetensorsBytes(#"[1]"#), name: f) }
        expect("corruptHeader") { try header(#"{"a":[1]}"#) }
        expect("corruptHeader") { try header(#"{"a":{"dtype":5,"shape":[2],"data_offsets":[0,8]}}"#) }
        expect("corruptHeader") { try header(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#) }
        expect("corruptHeader") { try header(#"{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#) }
        expect("corruptHeader") { try header(#"{"a":{"dtype":"F32","shape":[2]}}"#) }
        expect("corruptHeader") { try header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#) }
        expect("corruptHeader") { try header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#) }
        expect("corruptHeader") { try header(#"{"__metadata__":{"k":1},"a":{\#(t)}}"#) }
        expect("corruptHeader") { try header(#"{"__metadata__":[],"a":{\#(t)}}"#) }
        expect("corruptHeader") { try header("{\"a\u{1}\":{\(t)}}") }
        expect("corruptHeader") { try open(safetensorsBytes(#"{"\#u{FF}":1}"#).map { $0 == 0xC3 ? 0xFF : $0 }) }
        expect("corruptHeader") { try header(#"{"a":"# + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}") }
        expect("unsupportedDType") { try header(#"{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#) }
        expect("shapeMismatch") { try header(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#) }
        expect("absurdSize") { try header(#"{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}}"#) }
        expect("offsetOutOfRange") { try header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}"#) }
        expect("corruptHeader") { try header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}}"#) }
        CheckpointFixtures.expectError(f, {
            try header(#"{"a":{\#(t)},"a":{\#(t)}}"#)
        }, matches: { $0 == .duplicateName("a") })
        CheckpointFixtures.expectError(f, {
            try header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[6,10]}}"#)
        }, matches: { $0 == .overlappingTensors("a", "b") })
        CheckpointFixtures.expectError(f, {
            try header(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"c":{"dtype":"U8","shape":[0],"data_offsets":[6,6]}}"#)
        }, matches: { $0 == .overlappingTensors("a", "b") })
        // Accepted: empty tensors anywhere, gaps, trailing padding spaces, unknown fields, escapes.
        let ok = try CheckpointFile.open(bytes: safetensorsBytes(
            #"{"a\"\u00e9":{"dtype":"U8","shape":[2],"data_offsets":[4,6],"extra":null},"e":{"dtype":"F32","shape":[0,5],"data_offsets":[5,5]}}   "#,
            data: [0, 0, 0, 0, 7, 9]), name: f)
        #expect(try ok.tensorNames == ["a\"é", "e"] && ok.bytes("a\"é") == [7, 9])
        // Names that are not there, and files that are nothing at all.
        CheckpointFixtures.expectError(f, { _ = try ok.bytes("zzz") }, matches: { $0 == .noSuchTensor("zzz") })
        CheckpointFixtures.expectError("legacy.pth", { _ = try CheckpointFile.open(CheckpointFixtures.path("legacy.pth")) }) {
            if case let .unknownFormat(m) = $0 { return m.contains("legacy") } else { return false }
        }
        CheckpointFixtures.expectError("noise.bin", {
            _ = try CheckpointFile.open(bytes: (0..<64).map { UInt8(($0 * 151 + 7) % 251) }, name: "noise.bin")
        }, matches: { if case .unknownFormat = $0 { return true } else { return false } })
        CheckpointFixtures.expectError("empty.bin", { _ = try CheckpointFile.open(bytes: [], name: "empty.bin") }) {
            if case .truncated = $0 { return true } else { return false }
        }
        CheckpointFixtures.expectError("/nonexistent/x.safetensors", { _ = try CheckpointFile.open("/nonexistent/x.safetensors") }) {
            if case .io = $0 { return true } else { return false }
        }
    }
}
