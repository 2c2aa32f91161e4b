import Foundation
import XCTest

@testable import LoRANAS

/// Cauldron JSONL files into datasets: images by path and base64, errors that name file and line, truncation
/// counts, split views and the length-grouped batch order. python/tests compare the same path with
/// transformers' MllamaProcessor on the real Llama-3 tokenizer.
final class CauldronDatasetTests: XCTestCase {
    /// A 1×1 RGBA PNG.
    static let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cauldron-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try makeModelDirectory()
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// config.json from the tiles4_gqa fixture (tiles of 12, 4 tiles) with the BPE fixture's vocabulary, its
    /// tokenizer.json with the chat tokens, tokenizer_config.json, and no image settings (config.json's apply).
    func makeModelDirectory() throws {
        let fixture = MllamaFixtureTests.fixtures.appendingPathComponent("tiles4_gqa/config.json")
        guard var config = try JSONSerialization.jsonObject(with: Data(contentsOf: fixture)) as? [String: Any],
            var text = config["text_config"] as? [String: Any]
        else { throw LoRANASError.format("fixture config is not an object") }
        text["vocab_size"] = 320
        text["pad_token_id"] = 306
        config["text_config"] = text
        config["image_token_index"] = 301
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        let tokenizer = try TextPathTests.chatTokenizerJSON(template: false)
        try tokenizer.write(to: dir.appendingPathComponent("tokenizer.json"))
        let settings = #"{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|pad|>"}"#
        try Data(settings.utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        try Data(base64Encoded: Self.png)?.write(to: dir.appendingPathComponent("one.png"))
    }

    func writeJSONL(_ lines: [String]) throws -> CauldronFile {
        let url = dir.appendingPathComponent("data.jsonl")
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        return try CauldronFile(path: url.path)
    }

    func dataset(_ lines: [String], maxLength: Int? = nil) throws -> Dataset {
        let processor = try MllamaProcessor.load(directory: dir)
        return try Dataset.cauldron(file: try writeJSONL(lines), processor: processor,
                                    model: try ModelConfigFile(directory: dir), maxLength: maxLength)
    }

    func record(_ images: String, _ user: String, _ answer: String) -> String {
        #"{"images": [\#(images)], "texts": [{"user": "\#(user)", "assistant": "\#(answer)"}], "id": 7}"#
    }

    func testPathAndBase64ImagesGiveTheProcessorsSample() throws {
        let lines = [record(#""one.png""#, "ab", "ba"), "", record(#""\#(Self.png)""#, "ab", "ba"),
                     record("", "abab", "b")]
        let ds = try dataset(lines)
        XCTAssertEqual(ds.count, 3)
        XCTAssertEqual(ds.skipped, 0)
        XCTAssertEqual(try ds.encoded(0), try ds.encoded(1), "a path and its base64 bytes are one image")
        let processor = try MllamaProcessor.load(directory: dir)
        let image = try ImageDecoder.decode(Array(Data(base64Encoded: Self.png) ?? Data()), options: .path)
        let chat = try ChatFormat.render(try CauldronRecord(json: lines[0]).messages, dateString: datasetDateString)
        let direct = try processor(text: [chat.text], images: [[image]])
        let sample = try ds.sample(0)
        XCTAssertEqual(sample.inputIds, direct.text.inputIds.map(Int.init))
        XCTAssertEqual(sample.crossAttentionMask, direct.text.crossAttentionMask.map(Int.init))
        XCTAssertEqual(sample.aspectRatioIds, direct.aspectRatioIds.map(Int.init))
        XCTAssertEqual(sample.aspectRatioMask, direct.aspectRatioMask.map(Int.init))
        let pixels = try XCTUnwrap(sample.pixelValues)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: pixels.ptr, count: pixels.count)), direct.pixelValues)
        XCTAssertNil(try ds.sample(2).pixelValues)
    }

    func testErrorsNameTheFileAndLine() throws {
        let cases: [([String], String)] = [
            ([record(#""one.png""#, "a", "b"), "{not json"], "data.jsonl:2: "),
            ([record(#""missing.png""#, "a", "b")], "data.jsonl:1: images[0]: no file"),
            ([record(#""aGVsbG8gd29ybGQh""#, "a", "b")], "data.jsonl:1: images[0]: unknown image format"),
            ([#"{"images": [], "texts": [{"user": "a"}]}"#], "data.jsonl:1: texts[0] has no assistant turn"),
            ([record(#""one.png""#, "<|image|>a", "b")], "data.jsonl:1: "),
            ([record(#""https://x.org/a.png""#, "a", "b")], "is a URL"),
            ([""], "empty dataset"),
        ]
        for (lines, message) in cases {
            XCTAssertThrowsError(try dataset(lines), "\(lines)") { error in
                XCTAssert("\(error)".contains(message), "\(error) lacks \(message)")
            }
        }
    }

    func testTruncationSkipsAndCounts() throws {
        let long = String(repeating: "ab", count: 40)
        let lines = [record("", long, "b"), record("", "a", "ba")]
        let full = try dataset(lines)
        let short = try full.length(1)
        XCTAssertGreaterThan(try full.length(0), short + 10)
        let ds = try dataset(lines, maxLength: short)
        XCTAssertEqual(ds.count, 1)
        XCTAssertEqual(ds.skipped, 1)
        XCTAssertEqual(try ds.encoded(0), try full.encoded(1))
        let cut = try dataset(lines, maxLength: short - 1)
        XCTAssertEqual(try cut.encoded(0).inputIds, Array(try full.encoded(1).inputIds.dropLast()),
                       "a partly cut answer is kept")
    }

    func testSplitViewsPartitionTheSamples() throws {
        let ds = try dataset((0..<10).map { record("", String(repeating: "a", count: $0 + 1), "b") })
        let (train, val) = try ds.split(validationFraction: 0.3, seed: 4)
        XCTAssertEqual(train.count, 7)
        XCTAssertEqual(val.count, 3)
        let lengths = try (0..<7).map(train.length) + (0..<3).map(val.length)
        XCTAssertEqual(lengths.sorted(), try (0..<10).map(ds.length).sorted())
        XCTAssertThrowsError(try train.append(try ds.sample(0)))
    }

    func testPacksStreamTheSameSamples() throws {
        let lines = [record(#""one.png""#, "ab", "ba"), record("", "abab", "b"), record(#""one.png""#, "b", "a")]
        let ds = try dataset(lines)
        let viaDataset = dir.appendingPathComponent("a.pack").path
        let streamed = dir.appendingPathComponent("b.pack").path
        try ds.save(pack: viaDataset)
        let encoder = try CauldronEncoder(processor: try MllamaProcessor.load(directory: dir), maxLength: nil)
        let (samples, skipped) = try encoder.pack(file: try CauldronFile(path: dir.appendingPathComponent("data.jsonl")
            .path), model: try ModelConfigFile(directory: dir), to: streamed)
        XCTAssertEqual([samples, skipped], [3, 0])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: viaDataset)),
                       try Data(contentsOf: URL(fileURLWithPath: streamed)), "both ways write the same bytes")
        let loaded = try Dataset.load(pack: streamed)
        XCTAssertEqual(loaded.config, ds.config)
        XCTAssertEqual(loaded.count, 3)
        for i in 0..<3 {
            XCTAssertEqual(try loaded.encoded(i), try ds.encoded(i))
            XCTAssertEqual(try loaded.batch([i]).inputIds, try ds.batch([i]).inputIds)
        }
        let (train, val) = try loaded.split(validationFraction: 0.34, seed: 1)
        XCTAssertEqual(train.count + val.count, 3)
    }

    func testLengthGroupingIsAPermutationWithLessPadding() {
        var rng = SplitMix64(seed: 3)
        let lengths = (0..<1000).map { _ in 1 + Int(rng.next() % 500) }
        let plain = BatchOrder(seed: 9, count: 1000, batchSize: 8)
        let grouped = BatchOrder(seed: 9, count: 1000, batchSize: 8, lengths: lengths)
        func padding(_ o: BatchOrder) -> Int {
            (0..<o.batchesPerPass).map { b in
                let batch = o.batch(pass: 2, index: b, label: "train").map { lengths[$0] }
                return batch.count * (batch.max() ?? 0) - batch.reduce(0, +)
            }.reduce(0, +)
        }
        let all = (0..<grouped.batchesPerPass).flatMap { grouped.batch(pass: 2, index: $0, label: "train") }
        XCTAssertEqual(all.sorted(), Array(0..<1000))
        XCTAssertLessThan(padding(grouped) * 5, padding(plain), "grouping cuts padding at least 5×")
        let again = BatchOrder(seed: 9, count: 1000, batchSize: 8, lengths: lengths)
        XCTAssertEqual(again.batch(pass: 2, index: 17, label: "train"),
                       grouped.batch(pass: 2, index: 17, label: "train"))
        XCTAssertNotEqual(grouped.batch(pass: 3, index: 0, label: "train"),
                          grouped.batch(pass: 2, index: 0, label: "train"))
    }
}
