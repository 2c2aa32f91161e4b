import Foundation

/// HF's BPE model (as byte-level tokenizers such as Llama 3 use it): a word starts as one symbol
/// per character, and the adjacent pair with the lowest merge rank (the leftmost among equals) is
/// merged until no pair has a merge.
final class BPEModel: TokenizerModel, @unchecked Sendable {  // the cache is guarded by cacheLock
    let vocab: TokenVocabulary
    /// (left id << 32 | right id) → (rank, id of the merged token).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// The id of each one-character token.
    private let charIds: [UInt32: Int]
    /// A word that is a whole token is that token, without merges (`ignore_merges`).
    let ignoreMerges: Bool
    let unkToken: String?
    let fuseUnk: Bool

    private var cache: [TokenBytes: [Int]] = [:]
    private let cacheLock = NSLock()
    private static let cacheLimit = 50_000

    init(json: JSON) throws {
        vocab = try TokenVocabulary(json: json["vocab"], field: "model.vocab")
        for key in ["dropout", "continuing_subword_prefix", "end_of_word_suffix"] {
            guard let v = json[key], !v.isNull else { continue }
            throw LoRANASError.unsupported("BPE model with \(key) = \(v.serialized)")
        }
        if json["byte_fallback"]?.bool == true { throw LoRANASError.unsupported("BPE model with byte_fallback") }
        ignoreMerges = try Self.flag(json, "ignore_merges")
        fuseUnk = try Self.flag(json, "fuse_unk")
        switch json["unk_token"] {
        case nil, .null?: unkToken = nil
        case .string(let s)?: unkToken = s
        default: throw LoRANASError.format("model.unk_token must be a string or null")
        }
        var chars: [UInt32: Int] = [:]
        for (key, id) in vocab.ids {
            let s = String(decoding: key.bytes, as: UTF8.self).unicodeScalars
            if s.count == 1, let c = s.first { chars[c.value] = id }
        }
        charIds = chars
        merges = try Self.readMerges(json["merges"], vocab: vocab)
    }

    private static func flag(_ json: JSON, _ key: String) throws -> Bool {
        guard let v = json[key], !v.isNull else { return false }
        guard let b = v.bool else { throw LoRANASError.format("model.\(key) must be true or false") }
        return b
    }

    /// Merges as `["a b", ...]` (older files) or `[["a", "b"], ...]`; each part and the merged
    /// token must be in the vocabulary.
    private static func readMerges(_ json: JSON?, vocab: TokenVocabulary) throws
        -> [UInt64: (rank: Int32, id: Int32)]
    {
        guard let list = json?.array else { throw LoRANASError.format("model.merges must be an array") }
        guard list.count < Int(Int32.max) else { throw LoRANASError.format("model.merges is too long") }
        var out: [UInt64: (rank: Int32, id: Int32)] = [:]
        out.reserveCapacity(list.count)
        for (rank, m) in list.enumerated() {
            let parts: [String]
            if let s = m.string {
                parts = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else if let a = m.array, let strings = Optional(a.compactMap(\.string)), strings.count == a.count {
                parts = strings
            } else {
                throw LoRANASError.format("model.merges[\(rank)] must be \"a b\" or [\"a\", \"b\"]")
            }
            guard parts.count == 2 else {
                throw LoRANASError.format("model.merges[\(rank)] must name two tokens, got \(parts.count)")
            }
            for p in parts where vocab[p] == nil {
                throw LoRANASError.format(
                    "model.merges[\(rank)] names \(JSON.quote(p)), which is not in the vocabulary")
            }
            guard let a = vocab[parts[0]], let b = vocab[parts[1]], let merged = vocab[parts[0] + parts[1]] else {
                throw LoRANASError.format(
                    "model.merges[\(rank)] makes \(JSON.quote(parts[0] + parts[1])), which is not in the vocabulary")
            }
            let key = UInt64(a) << 32 | UInt64(b)
            out[key] = (Int32(rank), Int32(merged))  // a repeated pair keeps its last rank, as in HF
        }
        return out
    }

    func tokenize(_ word: String, into ids: inout [Int]) throws {
        let bytes = Array(word.utf8)
        let key = TokenBytes(bytes)
        cacheLock.lock()
        let hit = cache[key]
        cacheLock.unlock()
        if let hit {
            ids.append(contentsOf: hit)
            return
        }
        let out = try merge(word, bytes: bytes)
        cacheLock.lock()
        if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[key] = out
        cacheLock.unlock()
        ids.append(contentsOf: out)
    }

    private func merge(_ word: String, bytes: [UInt8]) throws -> [Int] {
        if ignoreMerges, let id = vocab[bytes: bytes] { return [id] }
        var symbols: [Int] = []
        symbols.reserveCapacity(bytes.count)
        var lastWasUnk = false
        for c in word.unicodeScalars {
            if let id = charIds[c.value] {
                symbols.append(id)
                lastWasUnk = false
                continue
            }
            // A character outside the vocabulary: the unknown token, or dropped when there is none (as HF).
            guard let unkToken else { continue }
            guard let unk = vocab[unkToken] else {
                throw LoRANASError.invalidArgument("BPE: unk_token \(JSON.quote(unkToken)) is not in the vocabulary")
            }
            if !(fuseUnk && lastWasUnk) { symbols.append(unk) }
            lastWasUnk = true
        }
        return mergeSymbols(symbols)
    }

    /// Applies the merges as HF does, in O(n log n): a heap of candidate pairs ordered by (rank,
    /// position), so the lowest rank merges first and the leftmost among equal ranks. A popped pair
    /// that a neighbour's merge has changed since it was pushed is skipped (a pair's rank identifies it).
    private func mergeSymbols(_ initial: [Int]) -> [Int] {
        var symbols = initial
        let n = symbols.count
        if n < 2 { return symbols }
        var next = Array(1...n)  // n = none
        var previous = Array(-1..<(n - 1))  // -1 = none
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        func rank(_ left: Int, _ right: Int) -> Int32? {
            merges[UInt64(symbols[left]) << 32 | UInt64(symbols[right])]?.rank
        }
        for i in 0..<(n - 1) {
            if let r = rank(i, i + 1) { heap.push(UInt64(r) << 32 | UInt64(i)) }
        }
        // Each push follows a merge or the first scan, so the loop ends after at most 3n pops.
        while let top = heap.pop() {
            let pos = Int(top & 0xFFFF_FFFF)
            let expected = Int32(truncatingIfNeeded: top >> 32)
            guard alive[pos], next[pos] < n else { continue }
            let right = next[pos]
            guard let m = merges[UInt64(symbols[pos]) << 32 | UInt64(symbols[right])], m.rank == expected else {
                continue
            }
            symbols[pos] = Int(m.id)
            alive[right] = false
            next[pos] = next[right]
            if next[pos] < n { previous[next[pos]] = pos }
            if previous[pos] >= 0, let r = rank(previous[pos], pos) {
                heap.push(UInt64(r) << 32 | UInt64(previous[pos]))
            }
            if next[pos] < n, let r = rank(pos, next[pos]) { heap.push(UInt64(r) << 32 | UInt64(pos)) }
        }
        var out: [Int] = []
        var i = 0
        while i < n {
            out.append(symbols[i])
            i = next[i]
        }
        return out
    }

    func id(of token: String) -> Int? { vocab[token] }
    func token(of id: Int) -> String? { vocab.tokenOfId[id] }
    var tokens: [String] { Array(vocab.tokenOfId.values) }
}

/// A binary min-heap of UInt64 keys.
private struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ x: UInt64) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent] <= items[i] { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var smallest = i
            if l < items.count && items[l] < items[smallest] { smallest = l }
            if r < items.count && items[r] < items[smallest] { smallest = r }
            if smallest == i { break }
            items.swapAt(i, smallest)
            i = smallest
        }
        return top
    }
}
