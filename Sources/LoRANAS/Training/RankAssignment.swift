import Foundation

extension MllamaModel {
    /// Resolves a rank assignment to (module, rank) in model order.
    public func resolveRanks(_ a: RankAssignment, targets: TargetSpec) throws -> [(String, Int)] {
        switch a {
        case .uniform(let r):
            try checkRank(r, of: "every module")
            let ls = linears(matching: targets)
            try require(!ls.isEmpty, "no module matches the targets")
            return ls.map { ($0.name, r) }
        case .perModule(let m):
            try require(!m.isEmpty, "no ranks given")
            let order = targetableLinears.map(\.name)
            let known = Set(order)
            for k in m.keys where !known.contains(k) { throw LoRANASError.notFound("no targetable linear module \(k)") }
            for (k, r) in m { try checkRank(r, of: k) }
            return order.compactMap { n in m[n].map { (n, $0) } }
        case .random(let target, let space, let seed):
            return try randomRanks(parameters: target, space: space, seed: seed, targets: targets)
        }
    }

    private func checkRank(_ r: Int, of module: String) throws {
        try require(r > 0 && r <= RunLimits.maxRank, "rank of \(module) must be in 1...\(RunLimits.maxRank), got \(r)")
    }

    /// Random choices from `space`, then random single-step moves until the total lands within
    /// ±2% of `parameters`; an assignment that cannot get there (within a bounded number of
    /// moves) is an error, never a silent miss.
    private func randomRanks(
        parameters target: Int, space: [Int], seed: UInt64,
        targets: TargetSpec
    ) throws -> [(String, Int)] {
        let ls = linears(matching: targets)
        try require(!ls.isEmpty, "no module matches the targets")
        try require(
            !space.isEmpty && space == space.sorted() && Set(space).count == space.count,
            "random ranks need a space of distinct ranks in increasing order, got \(space)")
        for r in space { try checkRank(r, of: "a random choice") }
        try require(target > 0, "the random control's parameter count must be positive, got \(target)")
        var rng = SplitMix64(seed: seed)
        var k = ls.map { _ in Int(rng.next() % UInt64(space.count)) }
        let cost = ls.map { l in space.map { $0 * (l.inFeatures + l.outFeatures) } }
        var total = zip(cost, k).reduce(0) { $0 + $1.0[$1.1] }
        let lo = Double(target) * 0.98
        let hi = Double(target) * 1.02
        let maxMoves = 100_000
        var moves = 0
        while Double(total) > hi || Double(total) < lo {
            let down = Double(total) > hi
            let movable = k.indices.filter { down ? k[$0] > 0 : k[$0] < space.count - 1 }
            guard !movable.isEmpty, moves < maxMoves else {
                throw LoRANASError.invalidArgument(
                    "no rank assignment from \(space) reaches \(target) ± 2% parameters on these modules")
            }
            let i = movable[Int(rng.next() % UInt64(movable.count))]
            total -= cost[i][k[i]]
            k[i] += down ? -1 : 1
            total += cost[i][k[i]]
            moves += 1
        }
        return zip(ls, k).map { ($0.name, space[$1]) }
    }
}
