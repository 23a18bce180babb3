import Foundation

/// Wan's prompt cleaning before umT5 tokenization (spec §7.1): the official `HuggingfaceTokenizer` with
/// `clean='whitespace'`, i.e. `whitespace_clean(basic_clean(text))`:
///
///     basic_clean:      ftfy.fix_text(text); html.unescape(html.unescape(text)); strip()
///     whitespace_clean: regex.sub(r'\s+', ' ', text); strip()
///
/// `ftfy.fix_text` is ported with all of its default steps except `fix_encoding` (mojibake detection and repair;
/// see `Ftfy`). Text is processed as Unicode code points, as Python does.
public enum WanPromptCleaner {
    /// The cleaned prompt.
    public static func clean(_ text: String) -> String {
        var s = Ftfy.fixText(Array(text.unicodeScalars))
        s = PythonHTML.unescape(PythonHTML.unescape(s))
        s = PythonText.strip(s)
        s = PythonText.collapseWhitespace(s)
        s = PythonText.strip(s)
        return PythonText.string(s)
    }
}

/// Python `str` helpers on code-point arrays.
enum PythonText {
    static func string(_ s: [Unicode.Scalar]) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: s)
        return String(v)
    }

    /// `str.isspace()` for one code point (Python 3.11): bidi types WS/B/S or category Zs.
    static func isSpace(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// The `regex` module's `\s` (Unicode White_Space).
    static func isRegexSpace(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// `str.strip()`.
    static func strip(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var lo = 0
        var hi = s.count
        while lo < hi && isSpace(s[lo]) { lo += 1 }
        while hi > lo && isSpace(s[hi - 1]) { hi -= 1 }
        return Array(s[lo..<hi])
    }

    /// `regex.sub(r'\s+', ' ', s)`.
    static func collapseWhitespace(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var inRun = false
        for u in s {
            if isRegexSpace(u) {
                if !inRun { out.append(" ") }
                inRun = true
            } else {
                out.append(u)
                inRun = false
            }
        }
        return out
    }
}

/// Python's `html.unescape` (HTML5 named and numeric character references, including the legacy names without
/// ';' and the longest-prefix rule).
enum PythonHTML {
    private static let invalidCharrefs: [UInt32: UInt32] = [
        0x00: 0xFFFD, 0x0D: 0x0D, 0x80: 0x20AC, 0x81: 0x81, 0x82: 0x201A, 0x83: 0x0192, 0x84: 0x201E, 0x85: 0x2026,
        0x86: 0x2020, 0x87: 0x2021, 0x88: 0x02C6, 0x89: 0x2030, 0x8A: 0x0160, 0x8B: 0x2039, 0x8C: 0x0152, 0x8D: 0x8D,
        0x8E: 0x017D, 0x8F: 0x8F, 0x90: 0x90, 0x91: 0x2018, 0x92: 0x2019, 0x93: 0x201C, 0x94: 0x201D, 0x95: 0x2022,
        0x96: 0x2013, 0x97: 0x2014, 0x98: 0x02DC, 0x99: 0x2122, 0x9A: 0x0161, 0x9B: 0x203A, 0x9C: 0x0153, 0x9D: 0x9D,
        0x9E: 0x017E, 0x9F: 0x0178,
    ]

    private static func isInvalidCodepoint(_ v: UInt32) -> Bool {
        switch v {
        case 0x1...0x8, 0xB, 0xE...0x1F, 0x7F...0x9F, 0xFDD0...0xFDEF: return true
        default: return v & 0xFFFE == 0xFFFE && v <= 0x10FFFF
        }
    }

    /// The replacement of a numeric reference `&#NNN;` / `&#xHHH;` (`value` nil when it overflows).
    static func numeric(_ value: UInt32?) -> [Unicode.Scalar] {
        guard let v = value else { return ["\u{FFFD}"] }
        if let r = invalidCharrefs[v], let u = Unicode.Scalar(r) { return [u] }
        if (0xD800...0xDFFF).contains(v) || v > 0x10FFFF { return ["\u{FFFD}"] }
        if isInvalidCodepoint(v) { return [] }
        return Unicode.Scalar(v).map { [$0] } ?? ["\u{FFFD}"]
    }

    private static func isDigit(_ u: Unicode.Scalar) -> Bool { (0x30...0x39).contains(u.value) }
    private static func isHexDigit(_ u: Unicode.Scalar) -> Bool {
        isDigit(u) || (0x41...0x46).contains(u.value) || (0x61...0x66).contains(u.value)
    }

    /// Parses digits in `radix`, saturating to nil above U+10FFFF.
    private static func parse(_ digits: ArraySlice<Unicode.Scalar>, radix: UInt32) -> UInt32? {
        var v: UInt32 = 0
        for d in digits {
            let x: UInt32
            switch d.value {
            case 0x30...0x39: x = d.value - 0x30
            case 0x41...0x46: x = d.value - 0x41 + 10
            default: x = d.value - 0x61 + 10
            }
            v = v * radix + x
            if v > 0x10FFFF { return nil }
        }
        return v
    }

    /// Entity names are ASCII; the check also keeps Swift's canonical-equivalence string comparison out of it.
    static func lookup(_ name: [Unicode.Scalar]) -> String? {
        guard name.allSatisfy({ $0.isASCII }) else { return nil }
        return TextCleaningTables.html5[PythonText.string(name)]
    }

    static func unescape(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard s.contains("&") else { return s }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        let n = s.count
        var i = 0
        while i < n {
            guard s[i] == "&", i + 1 < n else { out.append(s[i]); i += 1; continue }
            let j = i + 1
            if s[j] == "#" {
                var k = j + 1
                if k < n && isDigit(s[k]) {
                    let d0 = k
                    while k < n && isDigit(s[k]) { k += 1 }
                    out += numeric(parse(s[d0..<k], radix: 10))
                    if k < n && s[k] == ";" { k += 1 }
                    i = k
                } else if k + 1 < n && (s[k] == "x" || s[k] == "X") && isHexDigit(s[k + 1]) {
                    k += 1
                    let d0 = k
                    while k < n && isHexDigit(s[k]) { k += 1 }
                    out += numeric(parse(s[d0..<k], radix: 16))
                    if k < n && s[k] == ";" { k += 1 }
                    i = k
                } else {
                    out.append("&")
                    i += 1
                }
                continue
            }
            // [^\t\n\f <&#;]{1,32};?
            var k = j
            while k < n && k - j < 32 {
                switch s[k] {
                case "\t", "\n", "\u{0C}", " ", "<", "&", "#", ";": break
                default: k += 1; continue
                }
                break
            }
            guard k > j else { out.append("&"); i += 1; continue }
            if k < n && s[k] == ";" { k += 1 }
            let name = Array(s[j..<k])
            if let v = lookup(name) {
                out += v.unicodeScalars
            } else {
                var replaced = false
                var x = name.count - 1
                while x > 1 {
                    if let v = lookup(Array(name[0..<x])) {
                        out += v.unicodeScalars
                        out += name[x...]
                        replaced = true
                        break
                    }
                    x -= 1
                }
                if !replaced {
                    out.append("&")
                    out += name
                }
            }
            i = k
        }
        return out
    }
}

/// A port of `ftfy.fix_text` (ftfy 6.3) with its default configuration, except for `fix_encoding`.
///
/// Ported exactly: the per-line segmentation (and the `unescape_html="auto"` rule: once a line contains `<`,
/// HTML unescaping stops for it and every later line), the repeat-until-stable loop, `unescape_html` (HTML5
/// entities ending in ';', ftfy's upper-case variants, numeric references), `fix_c1_controls`,
/// `fix_latin_ligatures`, `fix_character_width`, `uncurl_quotes`, `fix_line_breaks`, `remove_terminal_escapes`,
/// `remove_control_chars` and NFC. `fix_surrogates` is the identity on Swift strings (no lone surrogates).
///
/// Not ported: `fix_encoding` (mojibake detection by ftfy's badness heuristic, then re-decoding through
/// latin-1 / sloppy-windows-125x / macroman / cp437 with `restore_byte_a0`, `replace_lossy_sequences` and
/// `decode_inconsistent_utf8`). It only changes text that ftfy judges to be mojibake such as "sÃ³" or "âœ”";
/// typed prompts, in any script, go through unchanged (the tests check that on every case they use).
enum Ftfy {
    static func fixText(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        var unescape = true
        var pos = 0
        while pos < text.count {
            var brk = text[pos...].firstIndex(of: "\n").map { $0 + 1 } ?? text.count
            if brk - pos > 1_000_000 { brk = pos + 1_000_000 }
            let segment = Array(text[pos..<brk])
            if unescape && segment.contains("<") { unescape = false }
            out += fixSegment(segment, unescapeHTML: unescape)
            pos = brk
        }
        return out
    }

    /// `fix_and_explain` without `fix_encoding`: the fixers in ftfy's order, repeated until nothing changes.
    static func fixSegment(_ segment: [Unicode.Scalar], unescapeHTML: Bool) -> [Unicode.Scalar] {
        var text = segment
        while true {
            let orig = text
            if unescapeHTML { text = unescapeHTMLEntities(text) }
            text = fixC1Controls(text)
            text = fixLatinLigatures(text)
            text = fixCharacterWidth(text)
            text = uncurlQuotes(text)
            text = fixLineBreaks(text)
            text = removeTerminalEscapes(text)
            text = removeControlChars(text)
            text = nfc(text)
            if text == orig { return text }
        }
    }

    /// `ftfy.fixes.unescape_html`: `&#?[0-9A-Za-z]{1,24};` references.
    static func unescapeHTMLEntities(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard s.contains("&") else { return s }
        func isAlnum(_ u: Unicode.Scalar) -> Bool {
            switch u.value {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
            default: return false
            }
        }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        let n = s.count
        var i = 0
        while i < n {
            guard s[i] == "&" else { out.append(s[i]); i += 1; continue }
            let hasHash = i + 1 < n && s[i + 1] == "#"
            let k = i + 1 + (hasHash ? 1 : 0)
            var e = k
            while e < n && isAlnum(s[e]) && e - k < 25 { e += 1 }
            guard e > k, e - k <= 24, e < n, s[e] == ";" else { out.append("&"); i += 1; continue }
            let match = Array(s[i...e])
            let name = PythonText.string(Array(match.dropFirst()))
            if let v = TextCleaningTables.html5[name] ?? TextCleaningTables.ftfyUpper[name] {
                out += v.unicodeScalars
            } else if hasHash {
                let r = PythonHTML.unescape(match)
                out += r.contains(";") ? match : r
            } else {
                out += match
            }
            i = e + 1
        }
        return out
    }

    /// `fix_c1_controls`: U+0080-U+009F decoded as sloppy windows-1252.
    static func fixC1Controls(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        s.map { u in (0x80...0x9F).contains(u.value) ? PythonHTML.numeric(u.value)[0] : u }
    }

    private static let ligatures: [UInt32: String] = [
        0x0132: "IJ", 0x0133: "ij", 0x0149: "\u{02BC}n", 0x01F1: "DZ", 0x01F2: "Dz", 0x01F3: "dz",
        0x01C4: "D\u{017D}", 0x01C5: "D\u{017E}", 0x01C6: "d\u{017E}", 0x01C7: "LJ", 0x01C8: "Lj", 0x01C9: "lj",
        0x01CA: "NJ", 0x01CB: "Nj", 0x01CC: "nj", 0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi",
        0xFB04: "ffl", 0xFB05: "\u{017F}t", 0xFB06: "st",
    ]

    static func fixLatinLigatures(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        translate(s, ligatures)
    }

    static func fixCharacterWidth(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        translate(s, TextCleaningTables.width)
    }

    private static func translate(_ s: [Unicode.Scalar], _ table: [UInt32: String]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        for u in s {
            if let r = table[u.value] { out += r.unicodeScalars } else { out.append(u) }
        }
        return out
    }

    static func uncurlQuotes(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        s.map { u in
            switch u.value {
            case 0x02BC, 0x2018...0x201B: return "'"
            case 0x201C...0x201F: return "\""
            default: return u
            }
        }
    }

    static func fixLineBreaks(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            switch s[i].value {
            case 0x0D:
                out.append("\n")
                if i + 1 < s.count && s[i + 1] == "\n" { i += 1 }
            case 0x2028, 0x2029, 0x85: out.append("\n")
            default: out.append(s[i])
            }
            i += 1
        }
        return out
    }

    /// `remove_terminal_escapes`: `\x1b\[((?:\d|;)*)([a-zA-Z])` (Unicode `\d`).
    static func removeTerminalEscapes(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard s.contains("\u{1B}") else { return s }
        var out: [Unicode.Scalar] = []
        var i = 0
        while i < s.count {
            if s[i] == "\u{1B}", i + 1 < s.count, s[i + 1] == "[" {
                var k = i + 2
                while k < s.count && (s[k] == ";" || s[k].properties.numericType == .decimal) { k += 1 }
                if k < s.count, (0x41...0x5A).contains(s[k].value) || (0x61...0x7A).contains(s[k].value) {
                    i = k + 1
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    static func removeControlChars(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        s.filter { u in
            switch u.value {
            case 0x00...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC: return false
            default: return true
            }
        }
    }

    static func nfc(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        // ASCII is always NFC; skip Foundation for it.
        if !s.contains(where: { $0.value >= 0x80 }) { return s }
        return Array(PythonText.string(s).precomposedStringWithCanonicalMapping.unicodeScalars)
    }
}
