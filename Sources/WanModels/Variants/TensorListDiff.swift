import WanRuntime

/// The difference between what a checkpoint holds (after mapping to official names) and what a model
/// configuration expects: missing, unexpected and misshapen tensors.
public struct TensorListDiff: Sendable, Hashable, CustomStringConvertible {
    /// An expected tensor the checkpoint lacks.
    public struct Missing: Sendable, Hashable {
        /// The expected tensor (official name and shape).
        public var spec: TensorSpec
        /// The name(s) the tensor would have in the checkpoint's own convention.
        public var storedNames: [String]
    }

    /// A stored tensor the configuration has no use for (or cannot use).
    public struct Unexpected: Sendable, Hashable {
        /// The tensor as stored.
        public var entry: TensorEntry
        /// Its official name when a rule maps it.
        public var officialName: String?
        /// Why it cannot be used, for tensors a rule matched but rejected.
        public var reason: String?
    }

    /// An expected tensor present with another shape.
    public struct Misshapen: Sendable, Hashable {
        /// Official name.
        public var name: String
        /// The stored tensor name(s) it comes from.
        public var storedNames: [String]
        /// The shape the configuration expects.
        public var expected: [Int]
        /// The shape found, in official layout (after the key map's transform).
        public var found: [Int]
    }

    /// Expected tensors the checkpoint lacks (optional ones excluded), in expected order.
    public var missing: [Missing]
    /// Stored tensors the configuration does not use or that cannot be used, in stored order.
    public var unexpected: [Unexpected]
    /// Expected tensors present with another shape, in expected order.
    public var misshapen: [Misshapen]
    /// Expected tensor count per block (`blocks.7.` → 27), to collapse whole missing blocks in reports.
    let expectedBlockSizes: [String: Int]

    /// True when the checkpoint matches the configuration exactly.
    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && misshapen.isEmpty }
    /// Number of problems (each missing, unexpected or misshapen tensor counts once).
    public var problemCount: Int { missing.count + unexpected.count + misshapen.count }
    /// "2 missing, 1 unexpected, 0 misshapen".
    public var summary: String { "\(missing.count) missing, \(unexpected.count) unexpected, \(misshapen.count) misshapen" }

    public var description: String { report() }

    /// Compares a mapping (to official names) with the tensors a configuration expects.
    public static func compare(_ mapping: KeyMapping, expected: [TensorSpec]) -> TensorListDiff {
        var expectedByName: [String: TensorSpec] = [:]
        var blockSizes: [String: Int] = [:]
        for spec in expected {
            expectedByName[spec.name] = spec
            if let key = blockKey(spec.name) { blockSizes[key, default: 0] += 1 }
        }
        let table = KeyTables.table(for: mapping.component, convention: mapping.sourceConvention)
        let targetIsOfficial = mapping.targetConvention == .official
        let sourceUsesOfficialNames = KeyTables.baseConvention(of: mapping.sourceConvention, for: mapping.component) == .official
        func storedNames(_ official: String) -> [String] {
            guard targetIsOfficial, let table else { return [official] }
            if sourceUsesOfficialNames { return [mapping.prefix + official] }
            let names = table.otherNames(of: official)
            return names.isEmpty ? [official] : names.map { mapping.prefix + $0 }
        }
        var found: [String: TensorRecipe] = [:]
        var unexpected: [Unexpected] = []
        var misshapenByName: [String: Misshapen] = [:]
        for recipe in mapping.recipes {
            found[recipe.name] = recipe
            if let spec = expectedByName[recipe.name] {
                if spec.shape != recipe.shape {
                    misshapenByName[recipe.name] = Misshapen(name: recipe.name, storedNames: recipe.sources.map(\.entry.name),
                                                             expected: spec.shape, found: recipe.shape)
                }
            } else {
                for source in recipe.sources {
                    unexpected.append(Unexpected(entry: source.entry, officialName: recipe.name, reason: nil))
                }
            }
        }
        unexpected += mapping.unmapped.map { Unexpected(entry: $0, officialName: nil, reason: nil) }
        unexpected += mapping.rejected.map { Unexpected(entry: $0.entry, officialName: nil, reason: $0.reason) }
        let missing = expected.filter { !$0.optional && found[$0.name] == nil }
            .map { Missing(spec: $0, storedNames: storedNames($0.name)) }
        let misshapen = expected.compactMap { misshapenByName[$0.name] }
        return TensorListDiff(missing: missing, unexpected: unexpected, misshapen: misshapen, expectedBlockSizes: blockSizes)
    }

    /// A readable report: one section per kind of problem, at most `maxLinesPerSection` lines each (with
    /// "… and N more"), whole missing or extra blocks collapsed into one line.
    public func report(maxLinesPerSection: Int = 10) -> String {
        var out: [String] = []
        func section(_ title: String, count: Int, _ lines: [String]) {
            guard count > 0 else { return }
            out.append("\(title) (\(count)):")
            let limit = max(1, maxLinesPerSection)
            out += lines.prefix(limit).map { "  " + $0 }
            if lines.count > limit { out.append("  … and \(lines.count - limit) more lines") }
        }

        // Missing: whole blocks collapse when every tensor of the block is missing.
        var missingPerBlock: [String: Int] = [:]
        for m in missing { if let key = blockKey(m.spec.name) { missingPerBlock[key, default: 0] += 1 } }
        var missingLines: [String] = []
        var collapsed = Set<String>()
        for m in missing {
            if let key = blockKey(m.spec.name), let size = expectedBlockSizes[key], size >= 3, missingPerBlock[key] == size {
                if collapsed.insert(key).inserted { missingLines.append("\(key)* (the whole block: \(size) tensors)") }
                continue
            }
            var line = "\(m.spec.name) \(m.spec.shape)"
            if m.storedNames != [m.spec.name] { line += " (stored as \(m.storedNames.joined(separator: " + ")))" }
            missingLines.append(line)
        }
        section("missing", count: missing.count, missingLines)

        // Unexpected: tensors of blocks the configuration does not have collapse per block.
        var extraPerBlock: [String: Int] = [:]
        func extraBlock(_ u: Unexpected) -> String? {
            guard u.reason == nil, let key = blockKey(u.officialName ?? u.entry.name) else { return nil }
            return u.officialName != nil && expectedBlockSizes[key] != nil ? nil : key
        }
        for u in unexpected { if let key = extraBlock(u) { extraPerBlock[key, default: 0] += 1 } }
        var unexpectedLines: [String] = []
        collapsed = []
        for u in unexpected {
            if let key = extraBlock(u), let n = extraPerBlock[key], n >= 3 {
                if collapsed.insert(key).inserted {
                    unexpectedLines.append("\(key)* (\(n) tensors of a block \(u.officialName == nil ? "no rule knows" : "the configuration does not have"))")
                }
                continue
            }
            var line = "\(u.entry.name) \(u.entry.dtype) \(u.entry.shape)"
            if let official = u.officialName, official != u.entry.name { line += " (official \(official))" }
            if let reason = u.reason { line += ": \(reason)" }
            unexpectedLines.append(line)
        }
        section("unexpected", count: unexpected.count, unexpectedLines)

        section("misshapen", count: misshapen.count, misshapen.map { m in
            var line = "\(m.name): expected \(m.expected), found \(m.found)"
            if m.storedNames != [m.name] { line += " (stored as \(m.storedNames.joined(separator: " + ")))" }
            return line
        })
        return out.joined(separator: "\n")
    }
}
