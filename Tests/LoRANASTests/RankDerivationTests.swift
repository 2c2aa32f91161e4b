import Foundation
import XCTest
@testable import LoRANAS

/// Rank derivation under a budget, against exhaustive enumeration, and the case that used to
/// spin for ever (a band no assignment reaches).
final class RankDerivationTests: XCTestCase {
    /// Every assignment, for small problems: the best score within the band, else the closest total.
    func bruteForce(_ modules: [RankDerivation.Module], budget: Int) -> (score: Double, total: Int, within: Bool) {
        var best: (score: Double, total: Int, within: Bool)? = nil
        var choice = [Int](repeating: 0, count: modules.count)
        func visit(_ i: Int) {
            if i == modules.count {
                let total = zip(modules, choice).reduce(0) { $0 + $1.0.costs[$1.1] }
                let score = zip(modules, choice).reduce(0.0) { $0 + $1.0.scores[$1.1] }
                let within = RankDerivation.inBand(total, budget)
                guard let b = best else {
                    best = (score, total, within)
                    return
                }
                let better: Bool
                if within != b.within {
                    better = within
                } else if within {
                    better = score > b.score
                } else {
                    let gap = abs(total - budget), bGap = abs(b.total - budget)
                    better = gap < bGap || (gap == bGap && score > b.score)
                }
                if better { best = (score, total, within) }
                return
            }
            for k in modules[i].costs.indices {
                choice[i] = k
                visit(i + 1)
            }
        }
        visit(0)
        return best ?? (0, 0, false)
    }

    func randomModules(_ rng: inout TestRNG, count: Int, space: [Int]) -> [RankDerivation.Module] {
        (0..<count).map { _ in
            let width = 8 * Int(1 + rng.next() % 40)
            return RankDerivation.Module(
                costs: space.map { $0 * width },
                scores: space.map { _ in Double(rng.uniform(-3, 0)) })
        }
    }

    func testKnapsackMatchesExhaustiveSearch() {
        var rng = TestRNG(11)
        for trial in 0..<200 {
            let space = trial % 2 == 0 ? [2, 4, 8, 16] : [4, 64]
            let modules = randomModules(&rng, count: 1 + trial % 6, space: space)
            let maxTotal = modules.reduce(0) { $0 + ($1.costs.last ?? 0) }
            let budget = max(1, Int(Double(maxTotal) * Double(rng.uniform(0.05, 1))))
            let got = RankDerivation.derive(modules, budget: budget)
            let want = bruteForce(modules, budget: budget)
            let score = zip(modules, got.choices).reduce(0.0) { $0 + $1.0.scores[$1.1] }
            XCTAssertEqual(got.withinBand, want.within, "trial \(trial)")
            XCTAssertEqual(got.total, zip(modules, got.choices).reduce(0) { $0 + $1.0.costs[$1.1] }, "trial \(trial)")
            if want.within {
                XCTAssertEqual(score, want.score, accuracy: 1e-9, "trial \(trial): not the best score in the band")
            } else {
                XCTAssertEqual(
                    abs(got.total - budget), abs(want.total - budget), "trial \(trial): not the closest total")
            }
        }
    }

    func testWithoutBudgetEachModuleTakesArgmax() {
        var rng = TestRNG(3)
        let modules = randomModules(&rng, count: 30, space: [4, 8, 16, 32, 64])
        let got = RankDerivation.derive(modules, budget: nil)
        for (m, k) in zip(modules, got.choices) { XCTAssertEqual(m.scores[k], m.scores.max()) }
    }

    /// A coarse grid (more bins than the DP may use) still returns a valid, exact total.
    func testLargeProblemsStayBoundedAndExact() {
        var rng = TestRNG(5)
        let modules = (0..<400).map { _ in
            let width = 4096 + Int(rng.next() % 20_000)
            // The largest rank scores best everywhere, so argmax (the uniform maximum) misses the budget.
            return RankDerivation.Module(
                costs: [4, 8, 16, 32, 64].map { $0 * width },
                scores: (0..<5).map { k in Double(k) + Double(rng.uniform(-0.5, 0)) })
        }
        let maxTotal = modules.reduce(0) { $0 + ($1.costs.last ?? 0) }
        XCTAssertFalse(RankDerivation.inBand(maxTotal, maxTotal * 2 / 5), "the DP must run")
        let t0 = Date()
        let got = RankDerivation.derive(modules, budget: maxTotal * 2 / 5)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 120, "bounded work")
        XCTAssertTrue(got.withinBand)
        XCTAssertEqual(got.total, zip(modules, got.choices).reduce(0) { $0 + $1.0.costs[$1.1] })
    }

    /// Issue 7, defect 1: q_proj on the text side with space {4, 64} and half the uniform-64
    /// budget has no assignment within ±5%; the old repair loop moved one module up and down for
    /// ever. Now the search returns the closest total and says the band was missed.
    func testUnreachableBandReturnsTheClosestAndSaysSo() throws {
        let model = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        let data = try Dataset.synthetic(config: model.config, count: 3, seqLen: 8, seed: 1)
        var o = SearchOptions()
        o.targets = try TargetSpec(parsing: "q_proj", side: "text")
        o.space = [4, 64]
        o.budget = .fraction(0.5)
        o.batchSize = 1
        o.maxSteps = 2
        let r = try model.search(train: data, validation: data, options: o)
        let budget = try XCTUnwrap(r.budgetParameters)
        XCTAssertEqual(r.budgetMet, false)
        // The closest reachable total, from every assignment of {4, 64} to the modules.
        let widths = model.linears(matching: o.targets).map { $0.inFeatures + $0.outFeatures }
        var closest = Int.max
        for mask in 0..<(1 << widths.count) {
            let total = widths.enumerated().reduce(0) { $0 + ((mask >> $1.offset) & 1 == 1 ? 64 : 4) * $1.element }
            closest = min(closest, abs(total - budget))
        }
        XCTAssertEqual(abs(r.loraParameters - budget), closest)
        XCTAssertEqual(r.json["budget_met"], .bool(false))
    }
}
