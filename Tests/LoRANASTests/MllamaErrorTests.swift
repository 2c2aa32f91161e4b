import Foundation
import XCTest
@testable import LoRANAS

/// Malformed configs, checkpoints and inputs give errors that name the problem.
final class MllamaErrorTests: XCTestCase {
    var dir: URL!
    let fixture = MllamaFixtureTests.fixtures.appendingPathComponent("tiles4_gqa")

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loranas-err-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// The fixture's config.json with `edit` applied to its JSON text.
    func config(_ edit: (String) -> String) throws -> MllamaConfig {
        let text = try String(contentsOf: fixture.appendingPathComponent("config.json"), encoding: .utf8)
        return try MllamaConfig(json: JSON.parse(edit(text)))
    }

    func assertThrows(_ needle: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            XCTAssert("\(e)".contains(needle), "'\(e)' should mention '\(needle)'", file: file, line: line)
        }
    }

    func testConfigReadsTheFixture() throws {
        let c = try MllamaConfig(contentsOf: fixture.path)
        XCTAssertEqual(c.vision.tokensPerTile, 17)
        XCTAssertEqual(c.vision.paddedTokensPerTile, 24)
        XCTAssertEqual(c.text.crossAttentionLayers, [1, 3])
        XCTAssertEqual(
            c.text.ropeScaling,
            Llama3RopeScaling(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64))
        XCTAssertEqual(c.vision.numAspectRatios, 8)
    }

    func testUnsupportedRopeType() {
        assertThrows("rope type \"yarn\"") {
            _ = try config { $0.replacingOccurrences(of: "\"llama3\"", with: "\"yarn\"") }
        }
    }

    func testWrongModelType() {
        assertThrows("model_type \"llava\"") {
            _ = try config {
                $0.replacingOccurrences(of: "\"model_type\": \"mllama\"", with: "\"model_type\": \"llava\"")
            }
        }
    }

    func testInconsistentVisionOutputDim() {
        assertThrows("vision_output_dim 99") {
            _ = try config {
                $0.replacingOccurrences(of: "\"vision_output_dim\": 72", with: "\"vision_output_dim\": 99")
            }
        }
    }

    func testBadFieldType() {
        assertThrows("text_config.hidden_size must be an integer") {
            _ = try config { $0.replacingOccurrences(of: "\"hidden_size\": 32", with: "\"hidden_size\": \"big\"") }
        }
    }

    func testHeadsNotDividingHidden() {
        assertThrows("not a multiple of num_key_value_heads") {
            _ = try config {
                $0.replacingOccurrences(of: "\"num_key_value_heads\": 2", with: "\"num_key_value_heads\": 3")
            }
        }
    }

    func testMissingConfigAndMalformedJSON() throws {
        assertThrows("no config.json") { _ = try MllamaConfig(contentsOf: dir.path) }
        try "{\"model_type\": \"mllama\",".write(
            to: dir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        assertThrows("malformed JSON") { _ = try MllamaConfig(contentsOf: dir.path) }
    }

    /// Copies the fixture checkpoint with one tensor dropped or reshaped.
    func brokenCheckpoint(drop: String? = nil, reshape: String? = nil) throws -> String {
        let src = try Checkpoint(path: fixture.path)
        var out: [(String, SafeTensorsWriter.Payload)] = []
        for name in src.names where name != drop {
            let t = try src.tensor(name)
            out.append((name, .f32(name == reshape ? t.reshaped([t.count]) : t)))
        }
        try SafeTensorsWriter.write(out, to: dir.appendingPathComponent("model.safetensors").path)
        try FileManager.default.copyItem(
            at: fixture.appendingPathComponent("config.json"), to: dir.appendingPathComponent("config.json"))
        return dir.path
    }

    func testMissingTensorIsNamed() throws {
        let path = try brokenCheckpoint(drop: "language_model.model.layers.3.cross_attn.k_norm.weight")
        assertThrows("has no tensor language_model.model.layers.3.cross_attn.k_norm.weight") {
            _ = try MllamaModel(path: path)
        }
    }

    func testMisShapedTensorIsNamed() throws {
        let path = try brokenCheckpoint(reshape: "vision_model.transformer.layers.1.mlp.fc1.weight")
        assertThrows("tensor vision_model.transformer.layers.1.mlp.fc1.weight has shape [1152]") {
            _ = try MllamaModel(path: path)
        }
    }

    func testBadInputs() throws {
        let model = try MllamaModel(path: fixture.path)
        let good = try MllamaFixtureTests.batch("tiles4_gqa/inputs.safetensors")
        var b = good
        b.inputIds[3] = 10_000
        assertThrows("input_ids contains 10000") { _ = try model.forward(b) }
        b = good
        b.labels![2] = 96
        assertThrows("labels contains 96") { _ = try model.forward(b) }
        b = good
        b.crossAttentionMask = nil
        assertThrows("cross_attention_mask is required") { _ = try model.forward(b) }
        b = good
        b.aspectRatioIds![0] = 9
        assertThrows("aspect_ratio_ids contains 9") { _ = try model.forward(b) }
        b = good
        b.pixelValues = Tensor(zeros: [3, 2, 4, 3, 12, 11])
        assertThrows("pixel_values has shape") { _ = try model.forward(b) }
        b = good
        b.pixelValues = good.pixelValues!.copy()
        b.pixelValues!.ptr[5] = .nan
        assertThrows("NaN") { _ = try model.forward(b) }
        b = good
        b.attentionMask = [1]
        assertThrows("attention_mask has 1 values") { _ = try model.forward(b) }
    }

    func testBackwardOfAnInferencePassIsRefused() throws {
        let model = try MllamaModel(path: fixture.path)
        let pass = try model.forward(MllamaFixtureTests.batch("tiles4_gqa/inputs.safetensors"))
        assertThrows("backward needs a pass from forward(_:keepForBackward: true)") { try model.backward(pass) }
    }
}
