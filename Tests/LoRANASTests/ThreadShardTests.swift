import Foundation
import XCTest
@testable import LoRANAS

/// A training step split across threads (`threadShards`) computes the whole batch's mean-loss gradient: the
/// reference is the same step on one thread, where the batch runs as one forward and backward.
final class ThreadShardTests: XCTestCase {
    var model: MllamaModel!
    var threads = 1

    override func setUpWithError() throws {
        threads = Engine.threads
        model = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
    }

    override func tearDown() {
        Engine.threads = threads
    }

    /// Samples of five lengths (so each shard pads differently from the whole batch), with and without images.
    func dataset(images: Bool) throws -> Dataset {
        guard images else {
            let data = Dataset(config: model.config)
            for n in [5, 9, 6, 8, 7] {
                let ids = [1] + (1..<n).map { ($0 * 37 + n) % 80 + 5 }
                try data.append(Sample(inputIds: ids, labels: [-100] + Array(ids.dropFirst())))
            }
            return data
        }
        return try Dataset.synthetic(config: model.config, count: 5, seqLen: 8, seed: 4)
    }

    func attachLoRA(dropout: Float = 0) throws -> [TrainableTensor] {
        let ranks = Dictionary(uniqueKeysWithValues: model.targetableLinears.map { ($0.name, 4) })
        let adapters = try model.attachLoRA(ranks: ranks, loraAlpha: { _, _ in 8 }, dropout: dropout, seed: 5)
        var rng = TestRNG(6)
        for a in adapters {
            for i in 0..<a.b.value.count { a.b.value.ptr[i] = rng.uniform(-0.1, 0.1) }
            a.training = true
        }
        return adapters.flatMap(\.parameters)
    }

    /// The loss and every gradient of one step on `threads` threads (gradients zeroed first).
    func step(_ data: Dataset, _ gradients: [TrainableTensor], threads: Int) throws -> (Float, [[Float]]) {
        Engine.threads = threads
        for g in gradients { g.grad.zero() }
        let loss = try model.trainingStep(data, Array(0..<data.count), step: 1, gradients: gradients)
        return (loss, gradients.map(\.grad.array))
    }

    /// Equal to rounding: the parts' gradients are summed in another order than one backward sums them.
    func assertSameStep(_ a: (Float, [[Float]]), _ b: (Float, [[Float]]), _ what: String) {
        XCTAssertEqual(a.0, b.0, accuracy: 1e-5 * abs(b.0), "\(what): loss")
        var worst: Float = 0
        for (x, y) in zip(a.1, b.1) {
            let scale = max(1e-6, y.map(abs).max() ?? 0)
            for (u, v) in zip(x, y) { worst = max(worst, abs(u - v) / scale) }
        }
        XCTAssertLessThan(worst, 1e-5, "\(what): largest gradient difference relative to each tensor's largest")
        XCTAssert(b.1.joined().contains { $0 != 0 }, "\(what): the reference gradients are not all zero")
    }

    func testShardedLoRAStepEqualsTheWholeBatchStep() throws {
        let gradients = try attachLoRA()
        _ = try step(try dataset(images: true), gradients, threads: 1)
        XCTAssertNil(model.shardReplicas, "one thread runs the batch whole")
        for images in [true, false] {
            let data = try dataset(images: images)
            let whole = try step(data, gradients, threads: 1)
            for t in [2, 3, 5] {
                let sharded = try step(data, gradients, threads: t)
                XCTAssertEqual(model.shardReplicas?.models.count, t - 1, "\(t) threads run \(t) shards")
                assertSameStep(sharded, whole, "images \(images), \(t) threads")
                let again = try step(data, gradients, threads: t)
                XCTAssertEqual(again.1, sharded.1, "the same thread count gives the same bits")
            }
        }
    }

    func testShardedSupernetStepsEqualTheWholeBatchSteps() throws {
        let spec = try TargetSpec(parsing: "q_proj,v_proj,fc1,down_proj", side: "both")
        var rng = SplitMix64(seed: 7)
        let supernets = model.linears(matching: spec).map { l in
            let s = SupernetAdapter(module: l.name, inFeatures: l.inFeatures, outFeatures: l.outFeatures,
                                    space: [2, 4, 8], loraAlpha: 16, rng: &rng)
            for i in 0..<s.b.value.count { s.b.value.ptr[i] = rng.uniform(-0.1, 0.1) }
            for i in 0..<s.logits.value.count { s.logits.value.ptr[i] = rng.uniform(-1, 1) }
            l.adapter = s
            return s
        }
        let data = try dataset(images: true)
        for (weights, alpha) in [(true, false), (false, true)] {
            for s in supernets {
                s.train(weights: weights, alpha: alpha)
                for p in s.parameters { p.grad.zero() }
            }
            let gradients = weights ? supernets.flatMap { [$0.a, $0.b] } : supernets.map(\.logits)
            let whole = try step(data, gradients, threads: 1)
            let sharded = try step(data, gradients, threads: 2)
            assertSameStep(sharded, whole, weights ? "weight step" : "α step")
            let untouched = weights ? supernets.map(\.logits) : supernets.flatMap { [$0.a, $0.b] }
            XCTAssert(untouched.allSatisfy { $0.grad.array.allSatisfy { $0 == 0 } }, "frozen side stays zero")
        }
    }

    /// Replicas follow the model: new adapters, and new values of the old ones (the optimizer's updates).
    func testReplicasFollowNewAdaptersAndUpdatedValues() throws {
        let data = try dataset(images: true)
        _ = try step(data, try attachLoRA(), threads: 2)
        let first = try XCTUnwrap(model.shardReplicas)
        let gradients = try attachLoRA()
        for g in gradients { for i in 0..<g.value.count { g.value.ptr[i] += 0.01 * Float(i % 7) } }
        let sharded = try step(data, gradients, threads: 2)
        XCTAssertFalse(model.shardReplicas === first, "new adapters, new replicas")
        assertSameStep(sharded, try step(data, gradients, threads: 1), "after replacing the adapters")
    }

    /// Dropout draws each shard's masks from a stream derived from the adapter's, so a run repeats its bits.
    func testShardedDropoutRepeatsItsBits() throws {
        let gradients = try attachLoRA(dropout: 0.3)
        let data = try dataset(images: false)
        let states = model.loraAdapters.map(\.rng)
        let first = try step(data, gradients, threads: 2)
        for (a, s) in zip(model.loraAdapters, states) { a.rng = s }
        let second = try step(data, gradients, threads: 2)
        let copies = try XCTUnwrap(model.shardReplicas?.models.first?.loraAdapters)
        XCTAssert(copies.allSatisfy { $0.training && $0.dropout == 0.3 }, "the shard's copies drop out too")
        XCTAssertEqual(first.1, second.1)
        XCTAssertEqual(first.0, second.0)
    }

    /// Wide layers' GEMMs split well across cores, and two parts' buffers at once cost memory: such a step runs
    /// whole.
    func testWideLayersRunWhole() throws {
        var config = model.config
        config.text.hiddenSize = 2 * ShardReplicas.widestHidden
        model = try MllamaModel(config: config)
        model.initializeRandomly(seed: 8)
        let gradients = try attachLoRA()
        _ = try step(try dataset(images: true), gradients, threads: 2)
        XCTAssertNil(model.shardReplicas)
    }

    /// Base gradients are shared by every layer, so a step that trains the base runs whole.
    func testATrainedBaseRunsWhole() throws {
        let parameters = model.trainBase()
        let gradients = model.params.entries.map { TrainableTensor(name: $0.name, value: model.params[$0.name],
                                                                    grad: parameters[$0.name]) }
        _ = try step(try dataset(images: true), gradients, threads: 2)
        XCTAssertNil(model.shardReplicas)
    }
}
