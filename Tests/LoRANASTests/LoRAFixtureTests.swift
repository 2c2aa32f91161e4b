import Foundation
import XCTest
@testable import LoRANAS

/// LoRA on the model against PEFT: a mixed-rank adapter made by PEFT (rank_pattern and
/// alpha_pattern), its logits, loss and every lora_A / lora_B gradient.
final class LoRAFixtureTests: XCTestCase {
    let base = MllamaFixtureTests.path("tiles4_gqa")
    let adapterDir = MllamaFixtureTests.path("tiles4_gqa/peft")

    func loadedModel() throws -> (MllamaModel, [LoRAAdapter]) {
        let model = try MllamaModel(path: base)
        let adapters = try model.loadPEFTAdapter(adapterDir)
        return (model, adapters)
    }

    func testPEFTMixedRankAdapterLoadsWithItsRanksAndAlphas() throws {
        let (_, adapters) = try loadedModel()
        XCTAssertEqual(adapters.count, 65)
        let ranks = Dictionary(grouping: adapters, by: \.rank).mapValues(\.count)
        XCTAssertEqual(ranks, [4: 52, 2: 7, 8: 6])
        let o3 = adapters.first { $0.module == "language_model.model.layers.3.cross_attn.o_proj" }!
        XCTAssertEqual(o3.rank, 8)
        XCTAssertEqual(o3.loraAlpha, 32)
        XCTAssertEqual(o3.scaling, 4)
    }

    func testLogitsLossAndLoRAGradientsMatchPEFT() throws {
        let (model, adapters) = try loadedModel()
        let ref = try SafeTensorsFile(path: adapterDir + "/reference.safetensors")
        let batch = try MllamaFixtureTests.batch("tiles4_gqa/inputs.safetensors")
        let pass = try model.forward(batch, keepForBackward: true)
        XCTAssertLessThan(relativeError(pass.logits, try ref.tensor("logits")), 1e-5)
        XCTAssertEqual(Double(pass.loss!), Double(try ref.tensor("loss").array[0]), accuracy: 1e-5)
        try model.backward(pass)
        var checked = 0
        for a in adapters {
            let key = "grad.base_model.model." + PEFTNames.peft(a.module)
            for (t, part) in [(a.a, "lora_A"), (a.b, "lora_B")] {
                let expected = try ref.tensor("\(key).\(part).weight")
                XCTAssertLessThan(relativeError(t.grad, expected), 1e-4, "\(a.module).\(part)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 130)
        XCTAssertNil(model.grads, "the base stays frozen")
    }

    /// Merged, unmerged, and unmerged again agree (PEFT's atol = rtol = 1e-4), and unmerge restores W exactly.
    func testMergedEqualsUnmerged() throws {
        let (model, adapters) = try loadedModel()
        let batch = try MllamaFixtureTests.batch("tiles4_gqa/inputs.safetensors")
        let before = try model.forward(batch).logits.copy()
        let weights = model.params.storage.copy()
        let linears = Dictionary(uniqueKeysWithValues: model.targetableLinears.map { ($0.name, $0) })
        for a in adapters { try a.merge(into: linears[a.module]!.weight) }
        let merged = try model.forward(batch).logits
        assertClose(merged, before, rtol: 1e-4, atol: 1e-4, "merged")
        XCTAssertGreaterThan(relativeError(model.params.storage, weights), 0, "merging changed W")
        for a in adapters { a.unmerge(from: linears[a.module]!.weight) }
        XCTAssertEqual(model.params.storage.array, weights.array, "unmerge restores W bit for bit")
        XCTAssertEqual(try model.forward(batch).logits.array, before.array)
    }

    func testExportThenImportRoundTrips() throws {
        let (model, adapters) = try loadedModel()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peft-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try PEFTAdapter.save(adapters, to: dir)
        let again = try PEFTAdapter.load(dir)
        XCTAssertEqual(again.map(\.name), adapters.map(\.module))
        XCTAssertEqual(again.map(\.rank), adapters.map(\.rank))
        XCTAssertEqual(again.map(\.loraAlpha), adapters.map(\.loraAlpha))
        for (m, a) in zip(again, adapters) {
            XCTAssertEqual(m.a.array, a.a.value.array)
            XCTAssertEqual(m.b.array, a.b.value.array)
        }
        // A rank_pattern that disagrees with the tensors is refused, naming the module.
        var cfg = try String(contentsOfFile: dir + "/adapter_config.json", encoding: .utf8)
        cfg = cfg.replacingOccurrences(
            of: "\"rank_pattern\":{",
            with: "\"rank_pattern\":{\"model\\\\.language_model\\\\.layers\\\\.0\\\\.self_attn\\\\.q_proj\":16,")
        try cfg.write(toFile: dir + "/adapter_config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PEFTAdapter.load(dir)) { XCTAssert("\($0)".contains("size mismatch"), "\($0)") }
        _ = model
    }
}
