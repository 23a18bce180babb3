import WanRuntime

/// Where a compiled graph keeps its intermediate tensors: arenas (device allocations) and each
/// intermediate's byte offset in one of them, chosen from the values' lifetimes so that values whose
/// lifetimes do not overlap share memory.
public struct MemoryPlan: Sendable, CustomStringConvertible {
    /// Size of each arena in bytes.
    public var arenaBytes: [Int]
    /// Bytes all intermediates would take without any reuse.
    public var unplannedBytes: Int
    /// Arena and byte offset of each intermediate (by value id of the storage-owning value).
    public var placements: [Int: (arena: Int, offset: Int)]

    /// Bytes of all arenas: the activation memory the graph needs.
    public var totalBytes: Int { arenaBytes.reduce(0, +) }

    public var description: String {
        func mib(_ b: Int) -> String { String(Double(b * 10 / 1_048_576) / 10) }
        return "\(placements.count) intermediates in \(arenaBytes.count) arena(s) of \(arenaBytes.map(mib).joined(separator: " + ")) MiB (\(mib(unplannedBytes)) MiB without reuse)"
    }

    /// Alignment of every intermediate in an arena (enough for every dtype and for vector loads).
    public static let alignment = 256

    /// Plans the graph's intermediates: each gets the lowest offset, in the first arena with room (at
    /// most `maxArenaBytes` each), that no value alive at the same time occupies. Larger values are
    /// placed first. Outputs stay alive to the end of the run.
    static func plan(_ g: Graph, maxArenaBytes: Int) throws -> MemoryPlan {
        let n = g.nodes.count
        var start: [Int: Int] = [:], end: [Int: Int] = [:], size: [Int: Int] = [:]
        for (i, node) in g.nodes.enumerated() {
            for v in node.outputs {
                start[v.id] = i
                end[v.id] = i
                let bytes = Shape.count(g.shape(v)) * g.dtype(v).size
                size[v.id] = max(MemoryPlan.alignment, (bytes + MemoryPlan.alignment - 1) / MemoryPlan.alignment * MemoryPlan.alignment)
            }
            for v in node.inputs {
                let r = g.root(v)
                if end[r.id] != nil { end[r.id] = max(end[r.id]!, i) }
            }
        }
        for (_, v) in g.outputs {
            let r = g.root(v)
            if end[r.id] != nil { end[r.id] = n }
        }
        let order = size.keys.sorted { (size[$0]!, -start[$0]!, -$0) > (size[$1]!, -start[$1]!, -$1) }
        var arenas: [[(offset: Int, size: Int, start: Int, end: Int)]] = []
        var arenaBytes: [Int] = []
        var placements: [Int: (arena: Int, offset: Int)] = [:]
        for id in order {
            let (sz, s, e) = (size[id]!, start[id]!, end[id]!)
            guard sz <= maxArenaBytes else {
                throw RuntimeError.outOfDeviceMemory(requested: sz, detail: "graph value %\(id) (\(g.values[id].label)) is larger than one arena may be (\(maxArenaBytes) bytes)")
            }
            var placed = false
            for a in arenas.indices {
                let live = arenas[a].filter { $0.start <= e && s <= $0.end }.sorted { $0.offset < $1.offset }
                var candidate = 0
                for b in live {
                    if candidate + sz <= b.offset { break }
                    candidate = max(candidate, b.offset + b.size)
                }
                if candidate + sz <= maxArenaBytes {
                    arenas[a].append((candidate, sz, s, e))
                    arenaBytes[a] = max(arenaBytes[a], candidate + sz)
                    placements[id] = (a, candidate)
                    placed = true
                    break
                }
            }
            if !placed {
                arenas.append([(0, sz, s, e)])
                arenaBytes.append(sz)
                placements[id] = (arenas.count - 1, 0)
            }
        }
        return MemoryPlan(arenaBytes: arenaBytes, unplannedBytes: size.values.reduce(0, +), placements: placements)
    }
}
