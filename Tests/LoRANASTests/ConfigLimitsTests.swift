import Foundation
import XCTest
@testable import LoRANAS

/// Hostile or corrupt config.json files: sizes that would overflow Int or ask for more memory
/// than the machine has are refused with a message naming the field, before anything is allocated.
/// Before these checks, each case aborted the process ("failed to allocate" or an Int overflow trap).
final class ConfigLimitsTests: XCTestCase {
    var dir: URL!
    let fixture = MllamaFixtureTests.fixtures.appendingPathComponent("tiles4_gqa")

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loranas-limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Writes the fixture's config.json with each (old, new) text replacement applied, to a temp dir.
    func writeConfig(_ edits: [(String, String)], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        var text = try String(contentsOf: fixture.appendingPathComponent("config.json"), encoding: .utf8)
        for (old, new) in edits {
            XCTAssert(text.contains(old), "the fixture config has no \(old)", file: file, line: line)
            text = text.replacingOccurrences(of: old, with: new)
        }
        try text.write(to: dir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        return dir.path
    }

    /// Loading the model from `edits` of the fixture config throws an error mentioning every needle.
    func assertModelRefused(
        _ edits: [(String, String)], mentions needles: [String],
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let path = try writeConfig(edits, file: file, line: line)
        XCTAssertThrowsError(try MllamaModel(path: path), file: file, line: line) { e in
            print("refused: \(e)")
            for needle in needles {
                XCTAssert("\(e)".contains(needle), "'\(e)' should mention '\(needle)'", file: file, line: line)
            }
        }
    }

    func testHugeVocabSize() throws {
        try assertModelRefused(
            [("\"vocab_size\": 96", "\"vocab_size\": 1000000000000")],
            mentions: ["text_config.vocab_size", "1000000000000"])
    }

    func testHugeMaxNumTiles() throws {
        try assertModelRefused(
            [("\"max_num_tiles\": 4", "\"max_num_tiles\": 1000000000")],
            mentions: ["vision_config.max_num_tiles", "1000000000"])
    }

    func testHugeNumHiddenLayers() throws {
        try assertModelRefused(
            [("\"num_hidden_layers\": 5", "\"num_hidden_layers\": 1000000000")],
            mentions: ["text_config.num_hidden_layers", "1000000000"])
    }

    /// 3·2³¹: q_proj alone would have (3·2³¹)² elements, past Int.max.
    func testHiddenSizeOverflowingInt() throws {
        try assertModelRefused(
            [("\"hidden_size\": 32", "\"hidden_size\": 6442450944")],
            mentions: ["text_config.hidden_size", "6442450944"])
    }

    /// 2⁴⁰ pixels a side (a multiple of the patch size): the patch count (2³⁶)² overflows Int.
    func testVisionImageSizeOverflowingInt() throws {
        try assertModelRefused(
            [
                ("\"image_size\": 12", "\"image_size\": 1099511627776"),
                ("\"patch_size\": 3", "\"patch_size\": 16"),
            ],
            mentions: ["vision_config.image_size", "1099511627776"])
    }

    /// Every size within its limit, but 2 × 10⁸ × 65536 floats of embeddings and LM head (52 TB).
    func testParametersBeyondAvailableMemory() throws {
        try assertModelRefused(
            [
                ("\"vocab_size\": 96", "\"vocab_size\": 100000000"),
                ("\"hidden_size\": 32", "\"hidden_size\": 65536"),
            ],
            mentions: [
                "TB of parameters", "embed_tokens.weight [100000008, 65536]",
                "are available",
            ])
    }

    /// Python's json (and so transformers) keeps the last of duplicated keys.
    func testDuplicatedKeyTakesTheLastValue() throws {
        let path = try writeConfig([
            ("\"vocab_size\": 96", "\"vocab_size\": 50, \"vocab_size\": 96"),
            ("\"hidden_act\": \"silu\"", "\"hidden_act\": \"relu\", \"hidden_act\": \"silu\""),
            (
                "\"model_type\": \"mllama\",",
                "\"model_type\": \"llava\", \"model_type\": \"mllama\","
            ),
        ])
        let config = try MllamaConfig(contentsOf: path)
        XCTAssertEqual(config.text.vocabSize, 96)
        let json = try JSON.parse(Data(#"{"a": 1, "b": 2, "a": 3}"#.utf8), rejectDuplicateKeys: false)
        XCTAssertEqual(json["a"], .number(3))
    }
}
