import Foundation

/// Turns the architecture weights of a search into one rank per module.
///
/// Without a budget each module takes argmax α. With a budget B the ranks are the assignment
/// that maximizes Σ log softmax(α) (the most probable joint choice under the supernet's
/// independent softmaxes) among those whose LoRA parameter count lies within ±5% of B: a
/// multiple-choice knapsack, solved by dynamic programming over totals. Every module's cost is
/// a multiple of g = gcd(all costs), so the grid of totals is exact while it has at most
/// `maxBins` points; a larger grid is coarsened (costs rounded to the grid), and the totals
/// reported stay exact. When no assignment reaches the band, the one whose total is closest to
/// B wins (ties to the higher score) and `withinBand` says so.
struct RankDerivation {
    /// One module's choices: the LoRA parameter count and the score (log-probability) of each.
    struct Module {
        let costs: [Int]
        let scores: [Double]
    }

    struct Outcome: Equatable {
        /// Index of the chosen rank per module.
        let choices: [Int]
        let total: Int
        /// False when no assignment reached the band and the closest total was taken.
        let withinBand: Bool
    }

    static let tolerance = 0.05
    /// Bound on the DP's work: modules × bins × choices stays under this many updates.
    static let maxUpdates = 200_000_000

    static func argmax(_ m: Module) -> Int {
        var best = 0
        for k in m.scores.indices where m.scores[k] > m.scores[best] { best = k }
        return best
    }

    static func derive(_ modules: [Module], budget: Int?) -> Outcome {
        let free = modules.map(argmax)
        let freeTotal = zip(modules, free).reduce(0) { $0 + $1.0.costs[$1.1] }
        guard let budget else { return Outcome(choices: free, total: freeTotal, withinBand: true) }
        if inBand(freeTotal, budget) { return Outcome(choices: free, total: freeTotal, withinBand: true) }
        return knapsack(modules, budget: budget)
    }

    static func inBand(_ total: Int, _ budget: Int) -> Bool {
        abs(Double(total) - Double(budget)) <= tolerance * Double(budget)
    }

    /// The DP table: for each grid total reachable so far, the best score, the exact total of
    /// the path that reached it, and (per module) the choice that led there.
    private static func knapsack(_ modules: [Module], budget: Int) -> Outcome {
        let maxChoices = modules.map(\.costs.count).max() ?? 1
        let maxTotal = modules.reduce(0) { $0 + ($1.costs.max() ?? 0) }
        let unit = gridUnit(modules, maxTotal: maxTotal, maxChoices: maxChoices)
        let bins = maxTotal / unit + modules.count + 1
        var score = [Double](repeating: -.infinity, count: bins)
        var exact = [Int](repeating: 0, count: bins)
        var trail = [[UInt8]]()
        trail.reserveCapacity(modules.count)
        score[0] = 0
        var reach = 0
        for m in modules {
            let step = m.costs.map { ($0 + unit / 2) / unit }
            var nextScore = [Double](repeating: -.infinity, count: bins)
            var nextExact = [Int](repeating: 0, count: bins)
            var choice = [UInt8](repeating: 0, count: bins)
            for t in 0...reach where score[t] > -.infinity {
                for k in m.costs.indices {
                    let t2 = t + step[k], s2 = score[t] + m.scores[k]
                    if s2 > nextScore[t2] {
                        nextScore[t2] = s2
                        nextExact[t2] = exact[t] + m.costs[k]
                        choice[t2] = UInt8(k)
                    }
                }
            }
            reach = min(bins - 1, reach + (step.max() ?? 0))
            score = nextScore
            exact = nextExact
            trail.append(choice)
        }
        let end = bestEnd(score: score, exact: exact, budget: budget)
        var choices = [Int](repeating: 0, count: modules.count)
        var t = end
        for i in modules.indices.reversed() {
            let k = Int(trail[i][t])
            choices[i] = k
            t -= (modules[i].costs[k] + unit / 2) / unit
        }
        return Outcome(choices: choices, total: exact[end], withinBand: inBand(exact[end], budget))
    }

    /// The end bin: the best score within the band, else the total closest to the budget.
    private static func bestEnd(score: [Double], exact: [Int], budget: Int) -> Int {
        var best: Int? = nil
        for t in score.indices where score[t] > -.infinity && inBand(exact[t], budget) {
            if best.map({ score[t] > score[$0] }) ?? true { best = t }
        }
        if let best { return best }
        var closest = 0
        var closestGap = Int.max
        for t in score.indices where score[t] > -.infinity {
            let gap = abs(exact[t] - budget)
            if gap < closestGap || (gap == closestGap && score[t] > score[closest]) {
                closest = t
                closestGap = gap
            }
        }
        return closest
    }

    /// g = gcd of all costs, coarsened when the grid would cost more than `maxUpdates`.
    private static func gridUnit(_ modules: [Module], maxTotal: Int, maxChoices: Int) -> Int {
        var g = 0
        for m in modules { for c in m.costs { g = gcd(g, c) } }
        g = max(g, 1)
        let maxBins = max(1024, maxUpdates / max(1, modules.count * maxChoices))
        let coarse = (maxTotal + maxBins - 1) / maxBins
        return max(g, coarse)
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int {
        var (x, y) = (a, b)
        while y != 0 { (x, y) = (y, x % y) }
        return x
    }
}
