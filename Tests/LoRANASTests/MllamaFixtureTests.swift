import Foundation
import XCTest
@testable import LoRANAS

/// The model against transformers: fixtures written by tools/make_mllama_fixtures.py
/// (float64 reference from the same stored weights).
final class MllamaFixtureTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Fixtures/mllama")

    static func path(_ p: String) -> String { fixtures.appendingPathComponent(p).path }

    /// Reads a fixture inputs file into a batch.
    static func batch(_ file: String) throws -> MllamaBatch {
        let f = try SafeTensorsFile(path: path(file))
        let ids = try f.info("input_ids").shape
        var batch = MllamaBatch(
            inputIds: try f.ints("input_ids"), batchSize: ids[0], seqLen: ids[1],
            attentionMask: try f.ints("attention_mask"), labels: try f.ints("labels"))
        if f.names.contains("pixel_values") {
            batch.pixelValues = try f.tensor("pixel_values")
            batch.numImages = batch.pixelValues!.shape[1]
            batch.aspectRatioIds = try f.ints("aspect_ratio_ids")
            batch.aspectRatioMask = try f.ints("aspect_ratio_mask")
            batch.crossAttentionMask = try f.ints("cross_attention_mask")
        }
        return batch
    }

    /// Forward, loss and every gradient against the reference.
    func check(
        model modelDir: String, inputs: String, reference: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let model = try MllamaModel(path: Self.path(modelDir))
        let batch = try Self.batch(inputs)
        let ref = try SafeTensorsFile(path: Self.path(reference))
        model.setBaseTrainable(true)
        let pass = try model.forward(batch, keepForBackward: true)
        let refLogits = try ref.tensor("logits")
        XCTAssertEqual(pass.logits.shape, refLogits.shape, file: file, line: line)
        XCTAssertLessThan(relativeError(pass.logits, refLogits), 1e-5, "logits", file: file, line: line)
        XCTAssertEqual(
            Double(pass.loss!), Double(try ref.tensor("loss").array[0]), accuracy: 1e-5, "loss", file: file, line: line)
        try model.backward(pass)

        var checked = 0, worst = (0.0, "")
        for name in ref.names where name.hasPrefix("grad.") {
            let p = String(name.dropFirst(5))
            let expected = try ref.tensor(name)
            guard let ours = model.grads!.tensor(p) else {
                XCTFail("no parameter \(p)", file: file, line: line)
                continue
            }
            XCTAssertEqual(ours.count, expected.count, p, file: file, line: line)
            if expected.norm == 0 {
                XCTAssertEqual(ours.norm, 0, accuracy: 1e-7, "\(p) should have zero gradient", file: file, line: line)
            } else {
                let e = relativeError(ours, expected)
                if e > worst.0 { worst = (e, p) }
                XCTAssertLessThan(e, 1e-4, "gradient of \(p)", file: file, line: line)
            }
            checked += 1
        }
        XCTAssertEqual(
            checked, model.params.entries.count, "every parameter's gradient is checked", file: file, line: line)
        for (key, act) in pass.activationGradients {
            guard ref.names.contains("grad_act." + key) else { continue }
            let expected = try ref.tensor("grad_act." + key)
            XCTAssertEqual(act.shape, expected.shape, key, file: file, line: line)
            XCTAssertLessThan(relativeError(act, expected), 1e-4, "activation gradient \(key)", file: file, line: line)
        }
        print(
            "\(modelDir)/\(inputs): logits rel \(relativeError(pass.logits, refLogits)), loss \(pass.loss!) vs "
                + "\(try ref.tensor("loss").array[0]), worst grad rel \(worst.0) (\(worst.1)), \(checked) gradients"
        )
    }

    func testFourTilesGQALlama3RopePaddingBothSides() throws {
        try check(
            model: "tiles4_gqa", inputs: "tiles4_gqa/inputs.safetensors", reference: "tiles4_gqa/reference.safetensors")
    }

    func testShardedCheckpointLoadsTheSameModel() throws {
        try check(
            model: "tiles4_gqa_sharded", inputs: "tiles4_gqa/inputs.safetensors",
            reference: "tiles4_gqa/reference.safetensors")
    }

    func testOneTileBF16WithImagelessSample() throws {
        try check(
            model: "tile1_bf16", inputs: "tile1_bf16/inputs.safetensors", reference: "tile1_bf16/reference.safetensors")
    }

    func testTextOnlyForwardSkipsCrossLayers() throws {
        try check(
            model: "tile1_bf16", inputs: "tile1_bf16/inputs_text_only.safetensors",
            reference: "tile1_bf16/reference_text_only.safetensors")
    }
}
