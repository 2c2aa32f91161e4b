import Foundation
import XCTest
@testable import LoRANAS

/// Image-processor settings from a model directory: which file wins, and what is refused.
final class ImageProcessorConfigTests: XCTestCase {
    /// The published Llama-3.2-11B-Vision preprocessor_config.json (../shared/mllama-processor.md §1.10).
    static let published = """
        {"do_convert_rgb": true, "do_normalize": true, "do_pad": true, "do_rescale": true, "do_resize": true,
         "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "MllamaImageProcessor",
         "image_std": [0.26862954, 0.26130258, 0.27577711], "max_image_tiles": 4, "resample": 2,
         "rescale_factor": 0.00392156862745098, "size": {"height": 560, "width": 560}}
        """
    static let config = #"{"model_type": "mllama", "vision_config": {"image_size": 560, "max_num_tiles": 4}}"#

    func directory(_ files: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("img-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        for (name, text) in files {
            try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return dir
    }

    func testPublishedFlatFile() throws {
        let s = try MllamaImageProcessorSettings.load(
            directory: directory([
                "preprocessor_config.json": Self.published,
                "config.json": Self.config,
            ]))
        XCTAssertEqual(s.tileSize, 560)
        XCTAssertEqual(s.maxImageTiles, 4)
        XCTAssertEqual(s.imageMean, [0.48145466, 0.4578275, 0.40821073])
        XCTAssertEqual(s.imageStd, [0.26862954, 0.26130258, 0.27577711])
        XCTAssertEqual(s.rescaleFactor, 1.0 / 255.0)
    }

    func testTransformers5NestedFile() throws {
        let nested = #"{"image_processor": \#(Self.published), "processor_class": "MllamaProcessor"}"#
        let s = try MllamaImageProcessorSettings.load(directory: directory(["processor_config.json": nested]))
        XCTAssertEqual(s.tileSize, 560)
        XCTAssertEqual(s.imageStd[0], 0.26862954)
    }

    func testConfigJSONAloneGivesTileSettingsAndClassDefaults() throws {
        let config = #"{"vision_config": {"image_size": 224, "max_num_tiles": 2}}"#
        let s = try MllamaImageProcessorSettings.load(directory: directory(["config.json": config]))
        XCTAssertEqual(s.tileSize, 224)
        XCTAssertEqual(s.maxImageTiles, 2)
        XCTAssertEqual(s.imageMean, [0.5, 0.5, 0.5])
    }

    func testRefusals() throws {
        let contradiction = #"{"vision_config": {"image_size": 448, "max_num_tiles": 4}}"#
        let cases: [([String: String], String)] = [
            (["preprocessor_config.json": Self.published, "config.json": contradiction], "contradicts"),
            (
                [
                    "preprocessor_config.json": Self.published.replacingOccurrences(
                        of: "\"do_pad\": true",
                        with: "\"do_pad\": false")
                ], "do_pad"
            ),
            (
                [
                    "preprocessor_config.json": Self.published.replacingOccurrences(
                        of: "\"width\": 560",
                        with: "\"width\": 280")
                ], "width"
            ),
            (
                [
                    "preprocessor_config.json": Self.published.replacingOccurrences(
                        of: "\"resample\": 2",
                        with: "\"resample\": 3")
                ], "resample"
            ),
            (["preprocessor_config.json": "{\"image_mean\": [1, 2]}"], "image_mean"),
            (["preprocessor_config.json": "{not json"], "preprocessor_config.json"),
            ([:], "no preprocessor_config.json"),
        ]
        for (files, needle) in cases {
            XCTAssertThrowsError(try MllamaImageProcessorSettings.load(directory: directory(files))) { error in
                XCTAssertTrue("\(error)".contains(needle), "\(needle): \(error)")
            }
        }
    }
}
