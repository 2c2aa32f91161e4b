import Foundation
import XCTest
@testable import LoRANAS

/// A search's supernets saved to a file and re-attached to another model instance: the same
/// tensors bit for bit, the same warm-started fine-tune, and damaged or foreign files refused.
final class SupernetFileTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loranas-sn-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func model() throws -> MllamaModel { try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa")) }

    func searched(_ m: MllamaModel, _ train: Dataset, _ val: Dataset) throws -> SearchResult {
        var o = SearchOptions()
        o.space = [2, 4, 8]
        o.batchSize = 3
        o.lr = 3e-3
        o.alphaLR = 5e-2
        o.maxSteps = 2
        return try m.search(train: train, validation: val, options: o)
    }

    func warm(_ m: MllamaModel, _ r: SearchResult, _ train: Dataset, _ val: Dataset) throws -> FinetuneResult {
        var f = FinetuneOptions()
        f.ranks = .perModule(r.rankMap)
        f.initialization = .warm
        f.batchSize = 3
        f.maxSteps = 2
        return try m.finetune(train: train, validation: val, options: f)
    }

    func testSavedSupernetsReattachAndWarmStartTheSame() throws {
        let m = try model()
        let train = try Dataset.synthetic(config: m.config, count: 9, seqLen: 10, seed: 1)
        let val = try Dataset.synthetic(config: m.config, count: 3, seqLen: 10, seed: 2)
        let r = try searched(m, train, val)
        let path = dir + "/s.supernet.safetensors"
        try SupernetFile.save(m.supernetAdapters, to: path)
        let other = try model()
        let attached = try other.attachSupernets(from: path)
        XCTAssertEqual(attached.count, m.supernetAdapters.count)
        for (a, b) in zip(m.supernetAdapters, attached) {
            XCTAssertEqual(a.module, b.module)
            XCTAssertEqual(a.space, b.space)
            XCTAssertEqual(a.loraAlpha, b.loraAlpha)
            for (x, y) in [(a.a, b.a), (a.b, b.b), (a.logits, b.logits)] {
                XCTAssertEqual(x.value.array, y.value.array, x.name)
            }
        }
        let here = try warm(m, r, train, val)
        let there = try warm(other, r, train, val)
        XCTAssertEqual(here.trainLosses, there.trainLosses)
        XCTAssertEqual(here.evaluations, there.evaluations)
    }

    func testForeignAndDamagedFilesAreRefusedAndLeaveTheModelAlone() throws {
        let m = try model()
        let plain = dir + "/plain.safetensors"
        try SafeTensorsWriter.write([("x", .f32(Tensor(zeros: [2])))], to: plain)
        XCTAssertThrowsError(try m.attachSupernets(from: plain)) { e in
            XCTAssert("\(e)".contains("not a supernet file"), "\(e)")
        }
        let name = m.targetableLinears[0].name
        let meta = #"{"modules": [{"name": "\#(name)", "space": [2, 4], "lora_alpha": 8, "slices": "centered"}]}"#
        let wrong = dir + "/wrong.safetensors"
        try SafeTensorsWriter.write(
            [(name + ".lora_A", .f32(Tensor(zeros: [3, 3]))), (name + ".lora_B", .f32(Tensor(zeros: [3, 3]))),
             (name + ".arch_alpha", .f32(Tensor(zeros: [2])))],
            metadata: ["loranas_supernet": meta], to: wrong)
        XCTAssertThrowsError(try m.attachSupernets(from: wrong)) { e in
            XCTAssert("\(e)".contains("has shape [3, 3]"), "\(e)")
        }
        XCTAssert(m.supernetAdapters.isEmpty && m.loraAdapters.isEmpty)
    }
}
