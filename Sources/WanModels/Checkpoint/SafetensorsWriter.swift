import Foundation

/// Writes a `.safetensors` file: the header (names, dtypes, shapes, offsets, optional metadata) first,
/// then each tensor's bytes as `bytes(entry)` produces them, one tensor at a time, so a large file is
/// streamed rather than assembled in memory. The file is written under a temporary name and renamed
/// when complete.
public enum SafetensorsWriter {
    /// Writes `entries` to `path`; `bytes` must return exactly `entry.byteCount` little-endian bytes.
    /// Returns the file size.
    @discardableResult
    public static func write(_ entries: [TensorEntry], metadata: [String: String] = [:], to path: String,
                             bytes: (TensorEntry) throws -> [UInt8]) throws -> Int {
        var seen = Set<String>()
        for e in entries where !seen.insert(e.name).inserted {
            throw CheckpointError(path, .duplicateName(e.name))
        }
        func quoted(_ s: String) throws -> String {
            let data = try JSONSerialization.data(withJSONObject: [s], options: [.fragmentsAllowed])
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
        var parts: [String] = []
        if !metadata.isEmpty {
            let items = try metadata.sorted { $0.key < $1.key }.map { "\(try quoted($0.key)):\(try quoted($0.value))" }
            parts.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        for e in entries {
            let end = offset + e.byteCount
            parts.append("\(try quoted(e.name)):{\"dtype\":\"\(e.dtype.safetensorsName)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }

        let temp = path + ".partial"
        guard FileManager.default.createFile(atPath: temp, contents: nil), let out = FileHandle(forWritingAtPath: temp) else {
            throw CheckpointError(path, .io("cannot create \(temp)"))
        }
        do {
            defer { try? out.close() }
            try out.write(contentsOf: withUnsafeBytes(of: UInt64(header.count).littleEndian) { Data($0) })
            try out.write(contentsOf: Data(header))
            for e in entries {
                let b = try bytes(e)
                guard b.count == e.byteCount else {
                    throw CheckpointError(path, .shapeMismatch("\(e.name): \(b.count) bytes for \(e.dtype) \(e.shape)"))
                }
                try out.write(contentsOf: Data(b))
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temp)
            throw error
        }
        if FileManager.default.fileExists(atPath: path) { try? FileManager.default.removeItem(atPath: path) }
        do {
            try FileManager.default.moveItem(atPath: temp, toPath: path)
        } catch {
            throw CheckpointError(path, .io("cannot rename \(temp): \(error)"))
        }
        return 8 + header.count + offset
    }
}
