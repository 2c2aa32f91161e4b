import Foundation
import XCTest
@testable import LoRANAS

/// The mistakes of the paper's public code, each of which must fail a test here:
/// α stepped on train data; α moved by the weight optimizer; one optimizer for both; A and B
/// moved during the α step; ranks not derived as argmax α.
///
/// The reference is the bilevel algorithm replayed from the engine's primitives (forward,
/// backward, Adam) on the batches the search draws: per step, an AdamW step on A and B from a
/// train batch with α frozen, then an Adam step on α (β 0.5/0.999, L2 decay) from a validation
/// batch with A and B frozen, each optimizer owning only its own parameters.
final class BilevelTests: XCTestCase {
    var model: MllamaModel!
    var train: Dataset!
    var val: Dataset!

    var threads = 1

    /// On one thread the search's step runs each batch whole, as the replay does, so the two agree to rounding
    /// (Adam turns the split step's different summation order into larger differences; ThreadShardTests checks
    /// the split step itself).
    override func setUpWithError() throws {
        threads = Engine.threads
        Engine.threads = 1
        model = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        // Different tasks on the two sets, so their α gradients differ.
        train = try Dataset.synthetic(config: model.config, count: 6, seqLen: 8, seed: 1)
        val = try Dataset.synthetic(config: model.config, count: 6, seqLen: 8, seed: 99, withImages: false)
    }

    override func tearDown() {
        Engine.threads = threads
    }

    func options(steps: Int) -> SearchOptions {
        var o = SearchOptions()
        o.targets = try! TargetSpec(parsing: "q_proj,v_proj,down_proj", side: "both")
        o.space = [2, 4, 8]
        o.batchSize = 2
        o.lr = 0.05
        o.weightDecay = 0.1
        o.alphaLR = 0.05
        o.alphaWeightDecay = 0.05
        o.seed = 3
        o.maxSteps = steps
        return o
    }

    struct State {
        var weights: [[Float]]  // A and B of every module
        var alpha: [[Float]]  // α of every module
    }

    func state() -> State {
        let s = model.supernetAdapters
        return State(
            weights: s.flatMap { [$0.a.value.array, $0.b.value.array] }, alpha: s.map { $0.logits.value.array })
    }

    /// The bilevel algorithm from primitives, from the search's initial supernet.
    /// `alphaData` chooses the α step's data (the validation set; the train set for the discrimination check).
    func replay(_ o: SearchOptions, steps: Int, alphaOnTrain: Bool = false) throws -> State {
        var init0 = o
        init0.maxSteps = 0
        _ = try model.search(train: train, validation: val, options: init0)
        let sn = model.supernetAdapters
        let weights = sn.flatMap { [$0.a, $0.b] }, arch = sn.map(\.logits)
        let wOpt = Adam(weights, AdamConfig(lr: o.lr, weightDecay: o.weightDecay))
        let aOpt = Adam(
            arch,
            AdamConfig(
                lr: o.alphaLR, beta1: 0.5, beta2: 0.999, weightDecay: o.alphaWeightDecay,
                decoupled: false))
        let order = BatchOrder(seed: o.seed, count: train.count, batchSize: o.batchSize)
        let valOrder = BatchOrder(seed: o.seed, count: val.count, batchSize: o.batchSize)
        for step in 0..<steps {
            let indices = order.batch(
                pass: step / order.batchesPerPass, index: step % order.batchesPerPass, label: "train")
            for s in sn { s.train(weights: true, alpha: false) }
            try model.backward(try model.forward(train.batch(indices), keepForBackward: true))
            wOpt.step()
            for s in sn { s.train(weights: false, alpha: true) }
            let valIndices = valOrder.batch(cursor: step, label: "val")
            let alphaBatch = alphaOnTrain ? try train.batch(indices) : try val.batch(valIndices)
            try model.backward(try model.forward(alphaBatch, keepForBackward: true))
            aOpt.step()
        }
        return state()
    }

    func assertClose(_ a: [[Float]], _ b: [[Float]], _ what: String, file: StaticString = #filePath, line: UInt = #line)
    {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        var worst: Float = 0
        for (x, y) in zip(a, b) {
            for (u, v) in zip(x, y) { worst = max(worst, abs(u - v) / max(1e-3, abs(v))) }
        }
        XCTAssertLessThanOrEqual(worst, 1e-5, "\(what): largest relative difference \(worst)", file: file, line: line)
    }

    func searched(_ o: SearchOptions) throws -> (SearchResult, State) {
        let r = try model.search(train: train, validation: val, options: o)
        return (r, state())
    }

    /// Mistake 1: α stepped on train data.
    func testAlphaStepsOnValidationBatches() throws {
        let o = options(steps: 3)
        let reference = try replay(o, steps: 3)
        let onTrain = try replay(o, steps: 3, alphaOnTrain: true)
        let (_, got) = try searched(o)
        assertClose(got.alpha, reference.alpha, "α after 3 steps vs the reference on validation batches")
        // The check can tell the two apart: α from train batches is elsewhere.
        let apart = zip(onTrain.alpha.joined(), reference.alpha.joined()).contains { abs($0 - $1) > 1e-3 }
        XCTAssert(apart, "train and validation batches give the same α; the test could not see the mistake")
    }

    /// Mistake 2: α moved by the weight optimizer (its decoupled decay, or α's gradient in the weight step).
    func testWeightOptimizerNeverMovesAlpha() throws {
        var o = options(steps: 3)
        o.alphaLR = 1e-30  // α's own optimizer now barely moves it
        o.alphaWeightDecay = 0
        let (r, got) = try searched(o)
        for row in got.alpha { for a in row { XCTAssertLessThan(abs(a), 1e-20, "α moved without its optimizer") } }
        for h in r.alphaHistory.values { for step in h { for a in step { XCTAssertLessThan(abs(a), 1e-20) } } }
        XCTAssert(got.weights.joined().contains { $0 != 0 }, "A and B train")
    }

    /// Mistake 3: one optimizer shared by A, B and α (one learning rate, betas, decay and step
    /// count for both): with different settings per side, A, B and α each follow their own Adam.
    func testAlphaAndWeightsHaveTheirOwnOptimizers() throws {
        var o = options(steps: 3)
        o.lr = 0.02
        o.alphaLR = 0.2
        let reference = try replay(o, steps: 3)
        let (_, got) = try searched(o)
        assertClose(got.weights, reference.weights, "A and B after 3 steps (AdamW at lr)")
        assertClose(got.alpha, reference.alpha, "α after 3 steps (Adam β 0.5/0.999 at alpha_lr)")
        XCTAssert(got.alpha.joined().contains { abs($0) > 1e-2 }, "α trains at alpha_lr")
    }

    /// Mistake 4: A and B moved during the α step.
    func testAlphaStepLeavesAAndBUntouched() throws {
        let o = options(steps: 2)
        let reference = try replay(o, steps: 2)
        let (_, got) = try searched(o)
        assertClose(got.weights, reference.weights, "A and B after 2 steps vs weight steps alone")
    }

    /// Mistake 5: ranks not derived as argmax α.
    func testRanksAreArgmaxAlpha() throws {
        var o = options(steps: 3)
        o.alphaLR = 0.5  // a clear winner per module
        let (r, got) = try searched(o)
        let modules = model.supernetAdapters.map(\.module)
        for (m, alpha) in zip(modules, got.alpha) {
            let best = alpha.indices.max { alpha[$0] < alpha[$1] } ?? 0
            XCTAssertEqual(r.rankMap[m], o.space[best], "\(m): α = \(alpha)")
        }
    }
}
