import Foundation

/// Batch order: a seeded permutation per epoch (and per pass over the validation set), so the
/// order is a pure function of (seed, pass) and needs no saved generator state.
///
/// With `lengths`, batches group similar lengths (less padding) as transformers' `LengthGroupedSampler`
/// does: the permutation is cut into windows of ``groupWindow`` batches, each window is sorted by length,
/// longest first (ties keep the permutation's order), and batches are consecutive runs of the result.
struct BatchOrder {
    let seed: UInt64
    let count: Int
    let batchSize: Int
    /// Sample lengths when batches group similar lengths; nil for a plain shuffle.
    let lengths: [Int]?
    /// The last pass computed (a step asks for one batch of it at a time).
    private let cache = PassCache()

    /// Batches per window when grouping by length.
    static let groupWindow = 50

    init(seed: UInt64, count: Int, batchSize: Int, lengths: [Int]? = nil) {
        self.seed = seed
        self.count = count
        self.batchSize = batchSize
        self.lengths = lengths
    }

    /// The order of `dataset`'s samples for `settings` (grouped by length when it says so).
    init(seed: UInt64, dataset: Dataset, settings: some RunSettings) throws {
        let lengths = settings.groupByLength ? try (0..<dataset.count).map(dataset.length) : nil
        self.init(seed: seed, count: dataset.count, batchSize: settings.batchSize, lengths: lengths)
    }

    var batchesPerPass: Int { (count + batchSize - 1) / batchSize }

    func batch(pass: Int, index: Int, label: String) -> [Int] {
        let p = cache.order(key: "\(label)-\(pass)") { passOrder(label: label, pass: pass) }
        return Array(p[(index * batchSize)..<min(count, (index + 1) * batchSize)])
    }

    /// The batch at a running position that wraps around passes (the search's validation stream).
    func batch(cursor: Int, label: String) -> [Int] {
        batch(pass: cursor / batchesPerPass, index: cursor % batchesPerPass, label: label)
    }

    private func passOrder(label: String, pass: Int) -> [Int] {
        var rng = SplitMix64(seed: seed).derived("\(label)-\(pass)")
        let p = rng.permutation(count)
        guard let lengths else { return p }
        let window = batchSize * Self.groupWindow
        var out: [Int] = []
        out.reserveCapacity(count)
        for start in stride(from: 0, to: count, by: window) {
            let chunk = p[start..<min(count, start + window)].enumerated()
            out += chunk.sorted { a, b in
                lengths[a.element] != lengths[b.element] ? lengths[a.element] > lengths[b.element]
                    : a.offset < b.offset
            }.map(\.element)
        }
        return out
    }
}

/// The order of the last pass asked for, shared by copies of a `BatchOrder`.
private final class PassCache: @unchecked Sendable {
    private var key = ""
    private var order: [Int] = []
    private let lock = NSLock()

    func order(key: String, compute: () -> [Int]) -> [Int] {
        lock.withLock {
            if key != self.key {
                order = compute()
                self.key = key
            }
            return order
        }
    }
}
