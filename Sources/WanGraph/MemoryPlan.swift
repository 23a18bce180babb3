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
    /// The most bytes of intermediates alive at once: no plan can need less in all (`totalBytes` above it is
    /// fragmentation).
    public var peakLiveBytes = 0

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
    ///
    /// Cost: O(n log n) to order the n intermediates plus, per intermediate, one pass over the values already
    /// placed in each arena it tries (kept sorted by offset): O(n²) simple steps at worst, well under a second
    /// for the few thousand intermediates of a 14B DiT forward.
    static func plan(_ g: Graph, maxArenaBytes: Int) throws -> MemoryPlan {
        let n = g.nodes.count
        let count = g.values.count
        // Per value id (-1: not an intermediate): first and last node using it, and its aligned size.
        var start = [Int](repeating: -1, count: count), end = start, size = [Int](repeating: 0, count: count)
        var ids: [Int] = []
        var rootOf = [Int](repeating: -1, count: count)
        func root(_ v: Graph.Value) -> Int {
            if rootOf[v.id] < 0 { rootOf[v.id] = g.root(v).id }
            return rootOf[v.id]
        }
        for (i, node) in g.nodes.enumerated() {
            for v in node.outputs {
                start[v.id] = i
                end[v.id] = i
                let bytes = Shape.count(g.shape(v)) * g.dtype(v).size
                size[v.id] = max(MemoryPlan.alignment, (bytes + MemoryPlan.alignment - 1) / MemoryPlan.alignment * MemoryPlan.alignment)
                ids.append(v.id)
            }
            for v in node.inputs {
                let r = root(v)
                if start[r] >= 0 { end[r] = max(end[r], i) }
            }
        }
        for (_, v) in g.outputs {
            let r = root(v)
            if start[r] >= 0 { end[r] = n }
        }
        // Largest first; ties: earlier start, then lower id.
        let order = ids.sorted { (size[$0], -start[$0], -$0) > (size[$1], -start[$1], -$1) }
        typealias Block = (offset: Int, size: Int, start: Int, end: Int)
        var arenas: [[Block]] = []          // each arena's blocks, sorted by offset
        var arenaBytes: [Int] = []
        var placements: [Int: (arena: Int, offset: Int)] = [:]
        placements.reserveCapacity(ids.count)
        for id in order {
            let (sz, s, e) = (size[id], start[id], end[id])
            guard sz <= maxArenaBytes else {
                throw RuntimeError.outOfDeviceMemory(requested: sz, detail: "graph value %\(id) (\(g.values[id].label)) is larger than one arena may be (\(maxArenaBytes) bytes)")
            }
            var placed = false
            for a in arenas.indices {
                // Lowest gap among the blocks alive at the same time, scanned in offset order.
                var candidate = 0
                for b in arenas[a] where b.start <= e && s <= b.end {
                    if candidate + sz <= b.offset { break }
                    candidate = max(candidate, b.offset + b.size)
                }
                if candidate + sz <= maxArenaBytes {
                    // Insert after every block at a lower or equal offset (binary search).
                    var lo = 0, hi = arenas[a].count
                    while lo < hi {
                        let mid = (lo + hi) / 2
                        if arenas[a][mid].offset <= candidate { lo = mid + 1 } else { hi = mid }
                    }
                    arenas[a].insert((candidate, sz, s, e), at: lo)
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
        // Live bytes per node: +size at its first node, −size after its last.
        var delta = [Int](repeating: 0, count: n + 2)
        for id in ids {
            delta[start[id]] += size[id]
            delta[end[id] + 1] -= size[id]
        }
        var live = 0, peak = 0
        for d in delta {
            live += d
            peak = max(peak, live)
        }
        var result = MemoryPlan(arenaBytes: arenaBytes, unplannedBytes: ids.reduce(0) { $0 + size[$1] }, placements: placements)
        result.peakLiveBytes = peak
        return result
    }
}
