import Foundation
import XCTest
@testable import LoRANAS

/// The bilevel search, budget, derivation, fine-tuning, checkpoint/resume and non-finite handling,
/// on the tiles4_gqa fixture model with a synthetic task.
final class SearchTests: XCTestCase {
    var model: MllamaModel!
    var train: Dataset!, val: Dataset!
    var dir: String!

    override func setUpWithError() throws {
        model = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        train = try Dataset.synthetic(config: model.config, count: 12, seqLen: 10, seed: 1)
        val = try Dataset.synthetic(config: model.config, count: 6, seqLen: 10, seed: 2)
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loranas-run-\(UUID().uuidString)").path
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func options(steps: Int = 4) -> SearchOptions {
        var o = SearchOptions()
        o.space = [2, 4, 8]
        o.batchSize = 3
        o.epochs = 2
        o.lr = 3e-3
        o.alphaLR = 5e-2
        o.seed = 5
        o.maxSteps = steps
        return o
    }

    func testSearchDerivesRanksAndKeepsHistory() throws {
        let r = try model.search(train: train, validation: val, options: options())
        XCTAssertEqual(r.ranks.count, 65)
        XCTAssert(r.ranks.allSatisfy { [2, 4, 8].contains($0.1) })
        XCTAssertEqual(r.steps, 4)
        XCTAssertEqual(r.alphaHistory.values.first!.count, 4)
        // Derived rank is argmax of the final α.
        let s = model.supernetAdapters.first!
        XCTAssertEqual(r.rankMap[s.module], s.derivedRank)
        XCTAssertEqual(r.alphaHistory[s.module]!.last!, s.logits.value.array)
        XCTAssert(r.trainLosses.allSatisfy(\.isFinite))
        XCTAssertEqual(try SearchResult(json: JSON.parse(r.json.serialized)), r, "JSON round trip")
        // α moved away from uniform; the weights moved from their init (B from zero).
        XCTAssertGreaterThan(s.logits.value.norm, 0)
        XCTAssertGreaterThan(s.b.value.norm, 0)
    }

    /// The weight step never moves α and the α step never moves A or B: a run whose α learning
    /// rate differs gets, after its first weight step, the same A and B bit for bit.
    func testTheTwoOptimizersTouchOnlyTheirOwnParameters() throws {
        var o = options(steps: 1)
        _ = try model.search(train: train, validation: val, options: o)
        let a1 = model.supernetAdapters.map { $0.a.value.array + $0.b.value.array }
        let alpha1 = model.supernetAdapters.map { $0.logits.value.array }
        o.alphaLR = 0.5
        _ = try model.search(train: train, validation: val, options: o)
        XCTAssertEqual(model.supernetAdapters.map { $0.a.value.array + $0.b.value.array }, a1)
        XCTAssertNotEqual(model.supernetAdapters.map { $0.logits.value.array }, alpha1)
        o.alphaLR = 5e-2
        o.lr = 0.3
        _ = try model.search(train: train, validation: val, options: o)
        XCTAssertNotEqual(model.supernetAdapters.map { $0.a.value.array + $0.b.value.array }, a1)
    }

    func testBudgetLandsWithinFivePercent() throws {
        var o = options(steps: 3)
        o.space = [2, 4, 8, 16]
        o.budget = .fraction(0.3)
        let r = try model.search(train: train, validation: val, options: o)
        let budget = Double(r.budgetParameters!)
        XCTAssertEqual(Double(r.uniformMaxParameters) * 0.3, budget, accuracy: 1)
        XCTAssertLessThanOrEqual(abs(Double(r.loraParameters) - budget) / budget, 0.05)
        let unconstrained = try model.search(train: train, validation: val, options: options(steps: 3))
        XCTAssertNil(unconstrained.budgetParameters)
    }

    func testSearchKilledAndResumedGivesTheSameBits() throws {
        var o = options(steps: 7)
        o.checkpointEvery = 2
        let full = try model.search(train: train, validation: val, options: o)
        let fullState = model.supernetAdapters.flatMap { $0.a.value.array + $0.b.value.array + $0.logits.value.array }

        // Killed after step 5 was computed but before it was saved: the last checkpoint is step 4.
        o.checkpointDir = dir
        let copy = dir + "-kill"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        _ = try model.search(train: train, validation: val, options: o) { e in
            if e.kind == .step && e.step == 5 {
                try? FileManager.default.copyItem(atPath: self.dir, toPath: copy)
                return .stop
            }
            return .more
        }
        var resumed = o
        resumed.checkpointDir = copy
        let fresh = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        let r = try fresh.search(train: train, validation: val, options: resumed)
        XCTAssertEqual(
            fresh.supernetAdapters.flatMap { $0.a.value.array + $0.b.value.array + $0.logits.value.array }, fullState)
        XCTAssertEqual(r.ranks.map(\.1), full.ranks.map(\.1))
        XCTAssertEqual(r.alphaHistory, full.alphaHistory)
        XCTAssertEqual(r.trainLosses, full.trainLosses)
    }

    func testResumeRefusesADifferentRun() throws {
        var o = options(steps: 2)
        o.checkpointDir = dir
        _ = try model.search(train: train, validation: val, options: o)
        o.space = [2, 4]
        XCTAssertThrowsError(try model.search(train: train, validation: val, options: o)) {
            XCTAssert("\($0)".contains("different run"))
        }
    }

    func testNonFiniteLossStopsWithClearErrorAndKeepsLastCheckpoint() throws {
        var o = options(steps: 6)
        o.checkpointDir = dir
        o.checkpointEvery = 2
        let w = model.params["language_model.model.norm.weight"]
        XCTAssertThrowsError(
            try model.search(train: train, validation: val, options: o) { e in
                if e.step == 3 { w.ptr[0] = .nan }
                return .more
            }
        ) { e in
            guard case .numeric(let m) = e as? LoRANASError else { return XCTFail("\(e)") }
            XCTAssert(m.contains("step 4"), m)
        }
        let state = try XCTUnwrap(SafeTensorsFile(path: RunState.path(dir)).metadata["loranas_state"])
        XCTAssertEqual(try JSON.parse(state)["loop"]?["global_step"]?.int, 2, "the last good checkpoint is kept")
    }

    func testFinetuneWarmStartsFromTheSupernetSlices() throws {
        var o = options(steps: 3)
        o.loraAlpha = 8
        let r = try model.search(train: train, validation: val, options: o)
        // Output of the supernet restricted to each module's kept slice…
        let supernets = model.supernetAdapters
        var f = FinetuneOptions()
        f.ranks = .perModule(r.rankMap)
        f.initialization = .warm
        f.epochs = 1
        f.maxSteps = 2
        f.batchSize = 3
        let s0 = supernets[0]
        let rank = r.rankMap[s0.module]!
        let range = s0.slices.range(rank: rank, maxRank: s0.maxRank)
        let sigma = s0.componentScale
        let inp = TestRNG(3).tensorCopy([2, s0.inFeatures])
        let expected = Tensor(zeros: [2, s0.outFeatures])
        // Σ_{j ∈ slice} σ_j · B_j A_j x
        for i in 0..<2 {
            for o2 in 0..<s0.outFeatures {
                var acc: Float = 0
                for j in range {
                    var ax: Float = 0
                    for c in 0..<s0.inFeatures {
                        ax += s0.a.value.ptr[j * s0.inFeatures + c] * inp.ptr[i * s0.inFeatures + c]
                    }
                    acc += sigma[j] * s0.b.value.ptr[o2 * s0.maxRank + j] * ax
                }
                expected.ptr[i * s0.outFeatures + o2] = acc
            }
        }
        f.maxSteps = 0
        let result = try model.finetune(train: train, validation: val, options: f)
        let lora = model.loraAdapters.first { $0.module == s0.module }!
        XCTAssertEqual(lora.rank, rank)
        let got = Tensor(zeros: [2, s0.outFeatures])
        lora.forward(x: inp.ptr, y: got.ptr, n: 2)
        assertClose(got, expected, rtol: 1e-5, atol: 1e-6, "warm adapter = supernet's kept slice")
        XCTAssertEqual(result.loraParameters, r.loraParameters)
    }

    func testFinetuneFreshImprovesAndResumesBitExactly() throws {
        var f = FinetuneOptions()
        f.ranks = .uniform(4)
        f.epochs = 2
        f.batchSize = 3
        f.lr = 1e-2
        f.seed = 3
        f.dropout = 0.1
        f.checkpointEvery = 3
        let full = try model.finetune(train: train, validation: val, options: f)
        XCTAssertEqual(full.evaluations.count, 2)
        XCTAssertLessThan(
            full.evaluations.last!.loss, full.initialEvaluation.loss, "training lowers the validation loss")
        XCTAssertEqual(full.loraParameters, model.loraAdapters.reduce(0) { $0 + $1.parameterCount })
        let bits = model.loraAdapters.flatMap { $0.a.value.array + $0.b.value.array }

        f.checkpointDir = dir
        let copy = dir + "-kill"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let m2 = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        _ = try m2.finetune(train: train, validation: val, options: f) { e in
            if e.kind == .step && e.step == 5 {
                try? FileManager.default.copyItem(atPath: self.dir, toPath: copy)
                return .stop
            }
            return .more
        }
        f.checkpointDir = copy
        let m3 = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        let resumed = try m3.finetune(train: train, validation: val, options: f)
        XCTAssertEqual(m3.loraAdapters.flatMap { $0.a.value.array + $0.b.value.array }, bits)
        XCTAssertEqual(resumed.trainLosses, full.trainLosses)
        XCTAssertEqual(resumed.evaluations, full.evaluations)
    }

    func testRandomRanksHitTheirParameterCount() throws {
        let ranks = try model.resolveRanks(.random(parameters: 20_000, space: [2, 4, 8, 16], seed: 4), targets: .all)
        let sizes = Dictionary(
            uniqueKeysWithValues: model.targetableLinears.map { ($0.name, $0.inFeatures + $0.outFeatures) })
        let total = ranks.reduce(0) { $0 + $1.1 * sizes[$1.0]! }
        XCTAssertEqual(Double(total), 20_000, accuracy: 400)
        XCTAssertGreaterThan(Set(ranks.map(\.1)).count, 1)
    }
}

extension TestRNG {
    func tensorCopy(_ shape: [Int]) -> Tensor {
        var r = self
        return r.tensor(shape)
    }
}
