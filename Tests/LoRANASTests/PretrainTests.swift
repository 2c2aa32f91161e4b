import Foundation
import XCTest
@testable import LoRANAS

/// Full-parameter training: transformers' initialization, the learning-rate schedule, bfloat16 saving, a run
/// that learns the synthetic task through the image, and a stopped run resumed to the same bits.
final class PretrainTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loranas-pre-\(UUID().uuidString)").path
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func fresh() throws -> MllamaModel {
        try MllamaModel.untrained(path: MllamaFixtureTests.path("tiles4_gqa"), seed: 3)
    }

    func options(epochs: Int = 3) -> PretrainOptions {
        var o = PretrainOptions()
        o.epochs = epochs
        o.batchSize = 4
        o.lr = 3e-3
        o.warmupSteps = 3
        o.seed = 7
        return o
    }

    func testInitializationFollowsTransformers() throws {
        let m = try fresh()
        var sum = 0.0, sumSq = 0.0, n = 0
        for e in m.params.entries {
            let t = m.params[e.name].array
            if e.name.hasSuffix("cross_attn_attn_gate") || e.name.hasSuffix("positional_embedding.gate")
                || e.name.hasSuffix(".bias") {
                XCTAssert(t.allSatisfy { $0 == 0 }, e.name)
            } else if e.name.contains("norm") && e.shape.count == 1 {
                XCTAssert(t.allSatisfy { $0 == 1 }, e.name)
            } else if e.shape.count == 2 {
                for x in t {
                    sum += Double(x)
                    sumSq += Double(x) * Double(x)
                }
                n += t.count
            }
        }
        let mean = sum / Double(n), std = (sumSq / Double(n) - mean * mean).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 5e-4)
        XCTAssertEqual(std, 0.02, accuracy: 4e-4, "N(0, 0.02²) over \(n) matrix entries")
        let again = try fresh()
        XCTAssertEqual(again.params.storage.array, m.params.storage.array, "the seed fixes the weights")
    }

    func testLearningRateWarmsUpThenDecaysAlongACosine() {
        var o = options()
        o.lr = 1
        o.warmupSteps = 4
        o.minLRRatio = 0.1
        XCTAssertEqual(o.learningRate(step: 1, totalSteps: 14), 0.25)
        XCTAssertEqual(o.learningRate(step: 4, totalSteps: 14), 1)
        XCTAssertEqual(o.learningRate(step: 9, totalSteps: 14), 0.55, accuracy: 1e-6, "half way: (1 + 0.1) / 2")
        XCTAssertEqual(o.learningRate(step: 14, totalSteps: 14), 0.1, accuracy: 1e-6)
    }

    func testBFloat16RoundsToNearestEven() {
        XCTAssertEqual(bfloat16Bits(1), 0x3f80)
        XCTAssertEqual(bfloat16Bits(Float(bitPattern: 0x3f80_8000)), 0x3f80, "a tie goes to the even neighbour")
        XCTAssertEqual(bfloat16Bits(Float(bitPattern: 0x3f81_8000)), 0x3f82, "a tie goes to the even neighbour")
        XCTAssertEqual(bfloat16Bits(Float(bitPattern: 0x3f80_8001)), 0x3f81, "above the tie rounds up")
        XCTAssertEqual(bfloat16Bits(-2.5), 0xc020)
        XCTAssertEqual(bfloat16Bits(.infinity), 0x7f80)
        XCTAssert(Float(bitPattern: UInt32(bfloat16Bits(.nan)) << 16).isNaN)
    }

    /// Every weight trains: a run memorizes four samples (the usual overfitting check) and opens the
    /// cross-attention gates from zero.
    func testTrainingMemorizesABatchAndOpensTheGates() throws {
        let m = try fresh()
        let data = try Dataset.synthetic(config: m.config, count: 4, seqLen: 8, seed: 1)
        var o = options(epochs: 24)
        o.lr = 1e-2
        let r = try m.pretrain(train: data, validation: data, options: o)
        XCTAssertEqual(r.steps, 24)
        XCTAssertLessThan(r.evaluations.last!.loss, 0.3 * r.initialEvaluation.loss)
        XCTAssertNil(m.grads, "gradients are released after the run")
        XCTAssertNotEqual(m.params["language_model.model.layers.1.cross_attn_attn_gate"].ptr[0], 0)
    }

    func testAStoppedRunResumesToTheSameBits() throws {
        let train = try Dataset.synthetic(config: try fresh().config, count: 12, seqLen: 8, seed: 1)
        let val = try Dataset.synthetic(config: train.config, count: 4, seqLen: 8, seed: 2)
        let whole = try fresh()
        let expected = try whole.pretrain(train: train, validation: val, options: options())

        var o = options()
        o.checkpointDir = dir
        let first = try fresh()
        let stopped = try first.pretrain(train: train, validation: val, options: o) { $0.step == 5 ? .stop : .more }
        XCTAssert(stopped.stopped)
        let second = try fresh()
        let resumed = try second.pretrain(train: train, validation: val, options: o)
        XCTAssertEqual(resumed.trainLosses, expected.trainLosses)
        XCTAssertEqual(resumed.evaluations, expected.evaluations)
        XCTAssertEqual(second.params.storage.array, whole.params.storage.array)
    }

    func testSavingAsBFloat16ReloadsTheRoundedWeights() throws {
        let m = try fresh()
        try m.saveMerged(to: dir, dtype: .bfloat16)
        let file = try SafeTensorsFile(path: dir + "/model.safetensors")
        XCTAssertEqual(try file.info("language_model.lm_head.weight").dtype, .BF16)
        let back = try MllamaModel(path: dir)
        let w = m.params.storage.array, r = back.params.storage.array
        for i in stride(from: 0, to: w.count, by: 97) {
            XCTAssertEqual(r[i].bitPattern, UInt32(bfloat16Bits(w[i])) << 16)
        }
    }

    func testAdaptersAndBadOptionsAreRefused() throws {
        let m = try fresh()
        let data = try Dataset.synthetic(config: m.config, count: 4, seqLen: 6, seed: 1)
        var o = options()
        o.warmupSteps = -1
        XCTAssertThrowsError(try m.pretrain(train: data, validation: data, options: o))
        o = options()
        o.maxGradNorm = .nan
        XCTAssertThrowsError(try m.pretrain(train: data, validation: data, options: o))
        _ = try m.attachLoRA(ranks: [m.targetableLinears[0].name: 2], loraAlpha: { _, _ in 4 }, dropout: 0, seed: 0)
        XCTAssertThrowsError(try m.pretrain(train: data, validation: data, options: options())) {
            XCTAssert("\($0)".contains("without adapters"), "\($0)")
        }
    }
}
