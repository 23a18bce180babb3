/// A byte trie over vocabulary pieces, for common-prefix search during Viterbi segmentation.
/// Nodes are stored in flat arrays (first child / next sibling), with a direct table for the root's children,
/// so a 256k-piece vocabulary costs a few tens of MB at most.
struct PieceTrie: Sendable {
    private var label: [UInt8] = [0]
    private var firstChild: [Int32] = [-1]
    private var nextSibling: [Int32] = [-1]
    private var value: [Int32] = [-1]
    private var root = [Int32](repeating: -1, count: 256)

    init() {}

    /// Inserts `key` with `id`; a later insert of the same key replaces the id.
    mutating func insert<C: Collection>(_ key: C, id: Int32) where C.Element == UInt8 {
        guard let first = key.first else { return }
        var node: Int32
        if root[Int(first)] >= 0 {
            node = root[Int(first)]
        } else {
            node = newNode(first)
            root[Int(first)] = node
        }
        for b in key.dropFirst() {
            var child = firstChild[Int(node)]
            while child >= 0 && label[Int(child)] != b { child = nextSibling[Int(child)] }
            if child < 0 {
                child = newNode(b)
                nextSibling[Int(child)] = firstChild[Int(node)]
                firstChild[Int(node)] = child
            }
            node = child
        }
        value[Int(node)] = id
    }

    private mutating func newNode(_ b: UInt8) -> Int32 {
        label.append(b)
        firstChild.append(-1)
        nextSibling.append(-1)
        value.append(-1)
        return Int32(label.count - 1)
    }

    /// Calls `body(id, length)` for every piece that is a prefix of `bytes[start...]`, shortest first.
    @inline(__always)
    func commonPrefixSearch(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, _ body: (Int32, Int) -> Void) {
        guard start < bytes.count else { return }
        var node = root[Int(bytes[start])]
        var i = start
        while node >= 0 {
            let v = value[Int(node)]
            if v >= 0 { body(v, i - start + 1) }
            i += 1
            guard i < bytes.count else { return }
            let b = bytes[i]
            var child = firstChild[Int(node)]
            while child >= 0 && label[Int(child)] != b { child = nextSibling[Int(child)] }
            node = child
        }
    }
}

/// A dictionary keyed by the exact UTF-8 bytes of strings. Swift's `String` equality is canonical equivalence,
/// which would merge distinct vocabulary pieces such as "ビ" (U+30D3) and "ヒ" + U+3099; the tokenizer libraries
/// compare bytes.
struct ExactStringMap: Sendable {
    private var storage: [[UInt8]: Int] = [:]

    init() {}

    subscript(key: String) -> Int? {
        get { storage[Array(key.utf8)] }
        set { storage[Array(key.utf8)] = newValue }
    }

    subscript(bytes key: [UInt8]) -> Int? { storage[key] }

    mutating func reserveCapacity(_ n: Int) { storage.reserveCapacity(n) }
}
