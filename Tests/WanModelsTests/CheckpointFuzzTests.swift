import Foundation
import Testing
import WanRuntime
@testable import WanModels

/// Random byte flips and truncations of the valid fixtures: every mutant must either open and read
/// consistently or throw a `CheckpointError` — never crash, hang, or throw anything else.
@Suite struct CheckpointFuzzTests {
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    }

    /// Mutates `bytes`: 1-4 flips (random bits, or bytes set to 0x00/0xFF/'{'/'"'), or a truncation, or both.
    /// `hot` is a byte range (a header) that half of the flips aim at.
    static func mutate(_ bytes: [UInt8], hot: Range<Int>, _ rng: inout Random) -> [UInt8] {
        var b = bytes
        let mode = rng.below(10)
        if mode < 8 || b.isEmpty {
            for _ in 0...rng.below(4) where !b.isEmpty {
                let i = rng.below(2) == 0 && !hot.isEmpty ? hot.lowerBound + rng.below(hot.count) : rng.below(b.count)
                guard i < b.count else { continue }
                switch rng.below(4) {
                case 0: b[i] ^= UInt8(1 << rng.below(8))
                case 1: b[i] = [0x00, 0xFF, 0x7B, 0x22, 0x2E, 0x7F][rng.below(6)]
                case 2: b[i] = UInt8(truncatingIfNeeded: rng.next())
                default: b[i] = b[i] &+ 1
                }
            }
        }
        if mode >= 7 && !b.isEmpty { b = Array(b.prefix(rng.below(b.count))) }
        return b
    }

    /// Opens and reads a mutant; returns whether it opened. Any error other than CheckpointError is an issue.
    static func exercise(_ bytes: [UInt8], name: String) -> Bool {
        do {
            let r = try CheckpointFile.open(bytes: bytes, name: name)
            for e in r.entries {
                let data = try r.bytes(e.name)
                #expect(data.count == e.byteCount, "\(name): \(e)")
                let again = try r.bytes(e.name)
                #expect(again == data)
                let floats = try r.floats(e.name)
                #expect(floats.count == e.count)
                do {
                    let t = try r.load(e.name, to: cpu, as: e.dtype.isFloat ? .f32 : nil)
                    #expect(t.shape == e.shape)
                } catch let err as CheckpointError {
                    // Only an integer out of the target's range may fail to load.
                    if case .conversion = err.problem {} else { Issue.record("\(name): \(err)") }
                }
            }
            return true
        } catch let e as CheckpointError {
            #expect(e.file == name)
            return false
        } catch {
            Issue.record("\(name): not a CheckpointError: \(error)")
            return false
        }
    }

    static let cpu = Device.cpu()

    @Test func mutatedFixturesFailSafely() throws {
        var rng = Random(state: ProcessInfo.processInfo.environment["WAN_FUZZ_SEED"].flatMap(UInt64.init) ?? 0x5EED_CAFE)
        var sources: [(name: String, bytes: [UInt8], hot: Range<Int>)] = []
        for f in ["basic.safetensors", "shard-00001-of-00002.safetensors"] {
            let b = try CheckpointFixtures.bytes(f)
            let n = Int(b.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            sources.append((f, b, 0..<min(b.count, 8 + n)))
        }
        for f in ["state.pth", "zip64.pth", "nested.pth"] {
            let b = try CheckpointFixtures.bytes(f)
            // The central directory and end records sit in the last ~1 KB.
            sources.append((f, b, max(0, b.count - 1100)..<b.count))
        }
        // WAN_FUZZ_SECONDS raises the budget for a long local run (the default keeps `swift test` quick).
        let seconds = ProcessInfo.processInfo.environment["WAN_FUZZ_SECONDS"].flatMap(Double.init)
        let deadline = Date().addingTimeInterval(seconds ?? 3.0)
        let maxCases = seconds == nil ? 4000 : Int.max
        var cases = 0, opened = 0
        while cases < maxCases && Date() < deadline {
            let s = sources[cases % sources.count]
            if Self.exercise(Self.mutate(s.bytes, hot: s.hot, &rng), name: s.name) { opened += 1 }
            cases += 1
        }
        print("checkpoint fuzz: \(cases) mutants, \(opened) opened and read consistently")
        #expect(cases >= 1000)
        #expect(opened > 0 && opened < cases)
    }

    @Test func mutatedPicklesFailSafely() throws {
        // The zip CRC check stops most mutants of data.pkl; feed mutated pickles to the unpickler directly.
        var rng = Random(state: ProcessInfo.processInfo.environment["WAN_FUZZ_SEED"].flatMap(UInt64.init) ?? 0xB1C4_1E5)
        var pickles: [[UInt8]] = []
        for f in ["state.pth", "nested.pth"] {
            let zip = try ZipArchive(source: ByteSource(bytes: try CheckpointFixtures.bytes(f), name: f))
            let name = try #require(zip.entries.map(\.name).first { $0.hasSuffix("/data.pkl") })
            pickles.append(try zip.read(name, limit: 1 << 20))
        }
        let seconds = ProcessInfo.processInfo.environment["WAN_FUZZ_SECONDS"].flatMap(Double.init)
        let deadline = Date().addingTimeInterval(seconds ?? 1.5)
        let maxCases = seconds == nil ? 4000 : Int.max
        var cases = 0, parsed = 0
        while cases < maxCases && Date() < deadline {
            let p = pickles[cases % pickles.count]
            let m = Self.mutate(p, hot: 0..<p.count, &rng)
            do {
                let state = try Unpickler.load(m, file: "fuzz.pkl")
                parsed += 1
                for (_, t) in state.tensors { _ = t.storage.byteCount }
            } catch let e as CheckpointError {
                #expect(e.file == "fuzz.pkl")
            } catch {
                Issue.record("not a CheckpointError: \(error)")
            }
            cases += 1
        }
        print("pickle fuzz: \(cases) mutants, \(parsed) parsed")
        #expect(cases >= 1000 && parsed > 0)
    }

    @Test func mutatedIndexesFailSafely() throws {
        let dir = try CheckpointFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for s in ["shard-00001-of-00002.safetensors", "shard-00002-of-00002.safetensors"] {
            try FileManager.default.copyItem(atPath: CheckpointFixtures.path(s), toPath: dir + "/" + s)
        }
        let index = try CheckpointFixtures.bytes("sharded.safetensors.index.json")
        var rng = Random(state: 42)
        let path = dir + "/m.safetensors.index.json"
        for _ in 0..<150 {
            try Data(Self.mutate(index, hot: 0..<index.count, &rng)).write(to: URL(fileURLWithPath: path))
            do {
                let r = try CheckpointFile.open(path)
                for e in r.entries { #expect(try r.bytes(e.name).count == e.byteCount) }
            } catch is CheckpointError {
            } catch {
                Issue.record("not a CheckpointError: \(error)")
            }
        }
    }
}
