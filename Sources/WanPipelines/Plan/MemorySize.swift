import Foundation

/// Memory sizes as people write them (`8GB`, `7.5GiB`, `8192MiB`, `512 MB`, `8000000000`) and back.
/// Decimal units are powers of 1000 (`KB`, `MB`, `GB`, `TB`), binary ones powers of 1024 (`KiB`, `MiB`, `GiB`,
/// `TiB`, and the one-letter `K`, `M`, `G`, `T`); a bare number is bytes (`B` may follow). Case does not matter.
public enum MemorySize {
    /// Bytes of `text`; throws `GenerationError.invalidSettings` for anything that is not a positive size
    /// (empty, negative, zero, not a number, an unknown unit, more than `Int.max` bytes).
    public static func parse(_ text: String) throws -> Int {
        let s = text.trimmingCharacters(in: .whitespaces)
        func fail(_ why: String) throws -> Never {
            throw GenerationError.invalidSettings("memory size '\(text)': \(why) (e.g. 8GB, 7.5GiB, 8192MiB)")
        }
        let split = s.firstIndex(where: { !($0.isASCII && ($0.isNumber || $0 == ".")) }) ?? s.endIndex
        guard split > s.startIndex else { try fail("expected a number and a unit") }
        let number = String(s[..<split])
        let unit = s[split...].trimmingCharacters(in: .whitespaces).lowercased()
        guard let value = Double(number), value.isFinite else { try fail("'\(number)' is not a number") }
        let scale: Double
        switch unit {
        case "", "b": scale = 1
        case "kb": scale = 1e3
        case "mb": scale = 1e6
        case "gb": scale = 1e9
        case "tb": scale = 1e12
        case "k", "kib": scale = 1024
        case "m", "mib": scale = 1_048_576
        case "g", "gib": scale = 1_073_741_824
        case "t", "tib": scale = 1_099_511_627_776
        default: try fail("unknown unit '\(unit)' (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
        }
        let bytes = (value * scale).rounded()
        guard bytes >= 1 else { try fail("the size must be at least 1 byte") }
        guard bytes < 9.2e18 else { try fail("too large") }
        return Int(bytes)
    }

    /// `bytes` in decimal gigabytes with two decimals (`7.52 GB`), megabytes below 0.1 GB, bytes below 1 MB.
    public static func format(_ bytes: Int) -> String {
        let b = Double(bytes)
        if bytes < 1_000_000 { return "\(bytes) B" }
        if bytes < 100_000_000 { return String(format: "%.1f MB", b / 1e6) }
        return String(format: "%.2f GB", b / 1e9)
    }

    /// `bytes` in binary gibibytes with two decimals (`7.00 GiB`).
    public static func formatGiB(_ bytes: Int) -> String {
        String(format: "%.2f GiB", Double(bytes) / 1_073_741_824)
    }
}
