import WanRuntime

/// How a tensor's shape differs between the official name and the other convention's name(s).
enum ShapeRule: Sendable, Hashable {
    /// Identical shapes.
    case same
    /// The official tensor has `n` extra leading 1-dimensions (CLIP `cls_embedding [1,1,D]` vs `[D]`).
    case unsqueeze(Int)
    /// The official 2-D tensor is the transpose of the other one (CLIP `visual.head` vs `visual_projection`).
    case transpose
}

/// How the block indices captured from the official name relate to those of the other name.
enum IndexMap: Sendable, Hashable {
    /// The same indices, in order.
    case same
    /// The first official index `i` is `(i / stride, i % stride)` on the other side (VAE decoder resnets).
    case split(stride: Int)
    /// The first official index `i = stride·k + offset` is `k` on the other side (VAE decoder upsamplers).
    case group(stride: Int, offset: Int)

    func toOther(_ official: [Int]) -> [Int]? {
        switch self {
        case .same: return official
        case let .split(stride):
            guard let i = official.first else { return nil }
            return [i / stride, i % stride] + official.dropFirst()
        case let .group(stride, offset):
            guard let i = official.first, i >= offset, (i - offset) % stride == 0 else { return nil }
            return [(i - offset) / stride] + official.dropFirst()
        }
    }

    func toOfficial(_ other: [Int]) -> [Int]? {
        switch self {
        case .same: return other
        case let .split(stride):
            guard other.count >= 2, other[1] < stride else { return nil }
            return [other[0] * stride + other[1]] + other.dropFirst(2)
        case let .group(stride, offset):
            guard let k = other.first else { return nil }
            return [k * stride + offset] + other.dropFirst()
        }
    }
}

/// One line of a key map: an official name pattern and the pattern(s) of the same tensor in another
/// convention. Several `other` patterns mean the official tensor is their concatenation along axis 0
/// (CLIP's fused `to_qkv` vs transformers' separate q/k/v projections).
struct KeyRule: Sendable, Hashable {
    let official: KeyPattern
    let other: [KeyPattern]
    let shape: ShapeRule
    let index: IndexMap
    /// A secondary spelling, used only when no primary rule provides the same official tensor
    /// (transformers' tied `encoder.embed_tokens.weight` beside `shared.weight`).
    let alias: Bool

    init(_ official: String, _ other: [String], shape: ShapeRule = .same, index: IndexMap = .same, alias: Bool = false) {
        self.official = KeyPattern(official)
        self.other = other.map(KeyPattern.init)
        self.shape = shape
        self.index = index
        self.alias = alias
    }

    init(_ official: String, _ other: String, shape: ShapeRule = .same, index: IndexMap = .same, alias: Bool = false) {
        self.init(official, [other], shape: shape, index: index, alias: alias)
    }
}

/// Names deliberately skipped: exact names and name prefixes.
struct IgnoreList: Sendable, Hashable {
    var names: Set<String> = []
    var prefixes: [String] = []

    func contains(_ name: String) -> Bool {
        names.contains(name) || prefixes.contains { name.hasPrefix($0) }
    }
}

/// A stored tensor ready for mapping: its name with any ComfyUI prefix removed, and the source itself.
struct MappingItem: Sendable {
    var name: String
    var source: TensorSource
}

/// What the mapping engine produces (before the public `KeyMapping` wraps it).
struct MappingOutcome: Sendable {
    var recipes: [TensorRecipe] = []
    var unmapped: [TensorEntry] = []
    var ignored: [TensorEntry] = []
    var rejected: [RejectedEntry] = []
}

/// A table of rules between the official names and one other convention, indexed by name template.
struct KeyRuleTable: Sendable {
    struct RulePart: Sendable, Hashable {
        var rule: Int
        var part: Int
    }

    let rules: [KeyRule]
    let ignoredOfficial: IgnoreList
    let ignoredOther: IgnoreList
    private let byOfficialTemplate: [String: [Int]]
    private let byOtherTemplate: [String: [RulePart]]

    init(rules: [KeyRule], ignoredOfficial: IgnoreList = IgnoreList(), ignoredOther: IgnoreList = IgnoreList()) {
        self.rules = rules
        self.ignoredOfficial = ignoredOfficial
        self.ignoredOther = ignoredOther
        var byOfficial: [String: [Int]] = [:]
        var byOther: [String: [RulePart]] = [:]
        for (i, rule) in rules.enumerated() {
            byOfficial[rule.official.template, default: []].append(i)
            for (p, pattern) in rule.other.enumerated() {
                byOther[pattern.template, default: []].append(RulePart(rule: i, part: p))
            }
        }
        byOfficialTemplate = byOfficial
        byOtherTemplate = byOther
    }

    /// The identity table over this table's official names (official files map onto themselves).
    var identity: KeyRuleTable {
        var seen = Set<String>()
        var out: [KeyRule] = []
        for rule in rules where seen.insert(rule.official.text).inserted {
            out.append(KeyRule(rule.official.text, rule.official.text))
        }
        return KeyRuleTable(rules: out, ignoredOfficial: ignoredOfficial, ignoredOther: ignoredOfficial)
    }

    /// The official names of the rules (their patterns), for reports.
    var officialPatterns: [String] { rules.map(\.official.text) }

    /// True when some rule's non-official side matches `name`.
    func matchesOther(_ name: String) -> Bool {
        matchesOther(template: keyTemplate(name), bytes: Array(name.utf8))
    }

    /// `matchesOther` with the name's template and bytes already computed.
    func matchesOther(template: String, bytes: [UInt8]) -> Bool {
        guard let parts = byOtherTemplate[template] else { return false }
        return parts.contains { rp in
            let rule = rules[rp.rule]
            guard let caps = rule.other[rp.part].match(bytes) else { return false }
            return rule.index.toOfficial(caps) != nil
        }
    }

    /// The official name of a stored name, when a rule maps it (the fused name for q/k/v parts).
    func officialName(of name: String) -> String? {
        guard let parts = byOtherTemplate[keyTemplate(name)] else { return nil }
        let bytes = Array(name.utf8)
        for rp in parts {
            let rule = rules[rp.rule]
            if let caps = rule.other[rp.part].match(bytes), let oc = rule.index.toOfficial(caps) {
                return rule.official.render(oc)
            }
        }
        return nil
    }

    /// The name(s) an official tensor has in the other convention (several for a fused tensor).
    func otherNames(of officialName: String) -> [String] {
        guard let candidates = byOfficialTemplate[keyTemplate(officialName)] else { return [] }
        let bytes = Array(officialName.utf8)
        for i in candidates where !rules[i].alias {
            let rule = rules[i]
            if let caps = rule.official.match(bytes), let oc = rule.index.toOther(caps) {
                return rule.other.map { $0.render(oc) }
            }
        }
        return []
    }

    // MARK: other convention -> official

    /// Maps stored tensors named in the other convention to official recipes.
    func mapToOfficial(_ items: [MappingItem]) -> MappingOutcome {
        struct GroupKey: Hashable {
            var rule: Int
            var captures: [Int]
        }
        struct Pending {
            var position: Int
            var recipe: TensorRecipe
            var alias: Bool
        }
        var outcome = MappingOutcome()
        var pending: [Pending] = []
        var groups: [GroupKey: (position: Int, parts: [TensorSource?])] = [:]
        var groupOrder: [GroupKey] = []

        for (position, item) in items.enumerated() {
            let bytes = Array(item.name.utf8)
            var matched = false
            for rp in byOtherTemplate[keyTemplate(item.name)] ?? [] {
                let rule = rules[rp.rule]
                guard let caps = rule.other[rp.part].match(bytes), let oc = rule.index.toOfficial(caps) else { continue }
                matched = true
                if rule.other.count == 1 {
                    switch Self.officialShape(of: item.source.entry, rule: rule) {
                    case let .success((shape, transform)):
                        let recipe = TensorRecipe(name: rule.official.render(oc), shape: shape, dtype: item.source.entry.dtype,
                                                  sources: [item.source], transform: transform)
                        pending.append(Pending(position: position, recipe: recipe, alias: rule.alias))
                    case let .failure(reason):
                        outcome.rejected.append(RejectedEntry(entry: item.source.entry, reason: reason.text))
                    }
                } else {
                    let key = GroupKey(rule: rp.rule, captures: oc)
                    if groups[key] == nil {
                        groups[key] = (position, Array(repeating: nil, count: rule.other.count))
                        groupOrder.append(key)
                    }
                    if groups[key]?.parts[rp.part] != nil {
                        outcome.rejected.append(RejectedEntry(entry: item.source.entry,
                                                              reason: "duplicate part of \(rule.official.render(oc))"))
                    } else {
                        groups[key]?.parts[rp.part] = item.source
                    }
                }
                break
            }
            if !matched {
                if ignoredOther.contains(item.name) { outcome.ignored.append(item.source.entry) } else { outcome.unmapped.append(item.source.entry) }
            }
        }

        for key in groupOrder {
            guard let group = groups[key] else { continue }
            let rule = rules[key.rule]
            let target = rule.official.render(key.captures)
            let present = group.parts.compactMap { $0 }
            if present.count != group.parts.count {
                let names = rule.other.map { $0.render(rule.index.toOther(key.captures) ?? key.captures) }
                let missing = zip(names, group.parts).filter { $0.1 == nil }.map(\.0)
                for source in present {
                    outcome.rejected.append(RejectedEntry(entry: source.entry,
                        reason: "\(target) needs \(names.joined(separator: " + ")); missing \(missing.joined(separator: ", "))"))
                }
                continue
            }
            switch Self.concatShape(present.map(\.entry)) {
            case let .success(shape):
                let recipe = TensorRecipe(name: target, shape: shape, dtype: present[0].entry.dtype, sources: present,
                                          transform: .concat(axis: 0))
                pending.append(Pending(position: group.position, recipe: recipe, alias: rule.alias))
            case let .failure(reason):
                for source in present {
                    outcome.rejected.append(RejectedEntry(entry: source.entry, reason: "cannot form \(target): \(reason.text)"))
                }
            }
        }

        pending.sort { $0.position < $1.position }
        var produced: [String: TensorRecipe] = [:]
        var kept: [Pending] = []
        for p in pending where !p.alias {
            if let first = produced[p.recipe.name] {
                for source in p.recipe.sources {
                    outcome.rejected.append(RejectedEntry(entry: source.entry, reason:
                        "duplicate of \(first.sources.map(\.entry.name).joined(separator: " + ")) (both give \(p.recipe.name))"))
                }
            } else {
                produced[p.recipe.name] = p.recipe
                kept.append(p)
            }
        }
        for p in pending where p.alias {
            if produced[p.recipe.name] != nil {
                outcome.ignored.append(contentsOf: p.recipe.sources.map(\.entry))
            } else {
                produced[p.recipe.name] = p.recipe
                kept.append(p)
            }
        }
        kept.sort { $0.position < $1.position }
        outcome.recipes = kept.map(\.recipe)
        return outcome
    }

    // MARK: official -> other convention

    /// Maps official tensors to recipes named in the other convention (`prefix` is put before each name).
    func mapFromOfficial(_ items: [MappingItem], prefix: String) -> MappingOutcome {
        var outcome = MappingOutcome()
        var produced: [String: String] = [:]
        for item in items {
            let bytes = Array(item.name.utf8)
            var matched = false
            for i in byOfficialTemplate[keyTemplate(item.name)] ?? [] where !rules[i].alias {
                let rule = rules[i]
                guard let caps = rule.official.match(bytes), let oc = rule.index.toOther(caps) else { continue }
                matched = true
                let entry = item.source.entry
                var made: [TensorRecipe] = []
                if rule.other.count == 1 {
                    switch Self.otherShape(of: entry, rule: rule) {
                    case let .success((shape, transform)):
                        made.append(TensorRecipe(name: prefix + rule.other[0].render(oc), shape: shape, dtype: entry.dtype,
                                                 sources: [item.source], transform: transform))
                    case let .failure(reason):
                        outcome.rejected.append(RejectedEntry(entry: entry, reason: reason.text))
                    }
                } else {
                    let k = rule.other.count
                    if entry.shape.isEmpty || entry.shape[0] % k != 0 {
                        outcome.rejected.append(RejectedEntry(entry: entry,
                            reason: "cannot split \(entry.shape) into \(k) equal parts along axis 0"))
                    } else if item.source.scaleIsPerRow {
                        outcome.rejected.append(RejectedEntry(entry: entry, reason: "a per-row fp8 scale cannot be split"))
                    } else {
                        let rows = entry.shape[0] / k
                        for (p, pattern) in rule.other.enumerated() {
                            made.append(TensorRecipe(name: prefix + pattern.render(oc), shape: [rows] + entry.shape.dropFirst(),
                                                     dtype: entry.dtype, sources: [item.source],
                                                     transform: .slice(axis: 0, start: p * rows, count: rows)))
                        }
                    }
                }
                for recipe in made {
                    if let first = produced[recipe.name] {
                        outcome.rejected.append(RejectedEntry(entry: entry, reason: "duplicate of \(first) (both give \(recipe.name))"))
                    } else {
                        produced[recipe.name] = entry.name
                        outcome.recipes.append(recipe)
                    }
                }
                break
            }
            if !matched {
                if ignoredOfficial.contains(item.name) { outcome.ignored.append(item.source.entry) } else { outcome.unmapped.append(item.source.entry) }
            }
        }
        return outcome
    }

    // MARK: shapes

    struct Reason: Error {
        var text: String
    }

    static func officialShape(of entry: TensorEntry, rule: KeyRule) -> Result<([Int], TensorTransform), Reason> {
        switch rule.shape {
        case .same: return .success((entry.shape, .identity))
        case let .unsqueeze(n): return .success((Array(repeating: 1, count: n) + entry.shape, .reshape))
        case .transpose:
            guard entry.shape.count == 2 else {
                return .failure(Reason(text: "expected a 2-D matrix (stored transposed), found \(entry.shape)"))
            }
            return .success(([entry.shape[1], entry.shape[0]], .transpose))
        }
    }

    static func otherShape(of entry: TensorEntry, rule: KeyRule) -> Result<([Int], TensorTransform), Reason> {
        switch rule.shape {
        case .same: return .success((entry.shape, .identity))
        case let .unsqueeze(n):
            guard entry.shape.count >= n, entry.shape.prefix(n).allSatisfy({ $0 == 1 }) else {
                return .failure(Reason(text: "expected \(n) leading 1-dimensions, found \(entry.shape)"))
            }
            return .success((Array(entry.shape.dropFirst(n)), .reshape))
        case .transpose:
            guard entry.shape.count == 2 else { return .failure(Reason(text: "expected a 2-D matrix, found \(entry.shape)")) }
            return .success(([entry.shape[1], entry.shape[0]], .transpose))
        }
    }

    static func concatShape(_ parts: [TensorEntry]) -> Result<[Int], Reason> {
        guard let first = parts.first, !first.shape.isEmpty else { return .failure(Reason(text: "scalar parts")) }
        for part in parts.dropFirst() {
            guard part.shape.count == first.shape.count, part.shape.dropFirst() == first.shape.dropFirst() else {
                return .failure(Reason(text: "parts have shapes \(parts.map(\.shape)) (must agree beyond axis 0)"))
            }
            guard part.dtype == first.dtype else {
                return .failure(Reason(text: "parts have dtypes \(parts.map(\.dtype.rawValue)) (must agree)"))
            }
        }
        return .success([parts.reduce(0) { $0 + $1.shape[0] }] + first.shape.dropFirst())
    }
}
