import Foundation

/// Picks the next token from a row of logits: argmax when greedy, else a draw from the
/// temperature-scaled softmax restricted to the top-p nucleus, using the engine's SplitMix64.
struct TokenSampler {
    let temperature: Double
    let topP: Double
    private var rng: SplitMix64

    init(_ options: GenerationOptions) {
        temperature = options.temperature
        topP = options.topP
        rng = SplitMix64(seed: options.seed)
    }

    /// The next token of one sample from its logits (V). Non-finite logits are an error.
    mutating func next(_ logits: UnsafePointer<Float>, count v: Int) throws -> Int {
        let row = UnsafeBufferPointer(start: logits, count: v)
        guard row.allSatisfy(\.isFinite) else {
            throw LoRANASError.numeric("the logits contain NaN or infinity; generation stopped")
        }
        let best = Self.argmax(row)
        guard temperature > 0 else { return best }
        return sample(row, max: row[best])
    }

    /// The first index of the largest value (torch.argmax's choice on ties).
    static func argmax(_ row: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for j in 1..<row.count where row[j] > row[best] { best = j }
        return best
    }

    /// A draw from softmax(row / T) kept to the smallest most-likely set whose mass reaches top_p
    /// (at least one token; ties ordered by index).
    private mutating func sample(_ row: UnsafeBufferPointer<Float>, max m: Float) -> Int {
        let weights = row.map { exp((Double($0) - Double(m)) / temperature) }
        var order = Array(0..<row.count)
        var kept = order.count
        if topP < 1 {
            order.sort { weights[$0] > weights[$1] || (weights[$0] == weights[$1] && $0 < $1) }
            let total = weights.reduce(0, +)
            var mass = 0.0
            kept = 0
            while kept < order.count {
                mass += weights[order[kept]]
                kept += 1
                if mass >= topP * total { break }
            }
        }
        let mass = order[..<kept].reduce(0.0) { $0 + weights[$1] }
        let u = Double(rng.next() >> 11) * 0x1p-53 * mass
        var acc = 0.0, last = order[0]
        for j in order[..<kept] where weights[j] > 0 {
            acc += weights[j]
            last = j
            if u < acc { return j }
        }
        return last                         // u rounded up to the whole mass
    }
}
