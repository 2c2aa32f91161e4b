import Foundation
import XCTest

@testable import LoRANAS

/// Packs: round trips, byte-identical rewrites, corruption found where it should be, and the writer's
/// temporary files.
final class PackTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "/loranas-pack-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    // MARK: - Fixtures

    private let vocab = 64
    private let imageToken: Int32 = 60

    private func metadata(tileSize: Int = 2) -> PackMetadata {
        PackMetadata(imageSettings: MllamaImageProcessorSettings(tileSize: tileSize, maxImageTiles: 4),
                     imageTokenId: Int(imageToken), padTokenId: 63, vocabSize: vocab, bosToken: "<|begin_of_text|>",
                     eosToken: "<|eot_id|>", maxLength: 128, source: "train.jsonl")
    }

    /// A sample of `tokens` ids (image tokens first) and `images` random canvases with tile side `t`.
    private func sample(_ rng: inout TestRNG, tokens: Int, images: Int, t: Int = 2) throws -> EncodedSample {
        var ids = (0..<tokens).map { _ in Int32(rng.next() % 60) }
        for j in 0..<min(images, tokens) { ids[j] = imageToken }
        let labels = ids.map { rng.next() % 2 == 0 ? Int32(-100) : $0 }
        let options = MllamaCanvas.arrangements(maxTiles: 4)
        let canvases = try (0..<images).map { _ -> MllamaCanvasImage in
            let k = Int(rng.next() % UInt64(options.count))
            let (a, b) = options[k]
            let pixels = (0..<(a * t * b * t * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            return try MllamaCanvasImage(rows: a, cols: b, tileSize: t, aspectRatioId: k + 1, maxTiles: 4,
                                         pixels: pixels)
        }
        return EncodedSample(inputIds: ids, labels: labels, images: canvases)
    }

    private func samples(seed: UInt64 = 1, count: Int = 12) throws -> [EncodedSample] {
        var rng = TestRNG(seed)
        return try (0..<count).map { i in try sample(&rng, tokens: 1 + i * 3 % 17, images: i % 4) }
    }

    @discardableResult
    private func write(_ xs: [EncodedSample], to path: String, skipped: Int = 0) throws -> [UInt8] {
        let w = try PackWriter(path: path, metadata: metadata())
        for x in xs { try w.append(x) }
        try w.finish(skipped: skipped)
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    private func files() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    private func open(_ bytes: [UInt8]) throws -> PackReader {
        try bytes.withUnsafeBytes { try PackReader(bytes: $0, name: "test.pack") }
    }

    private func assertFormatError(_ body: @autoclosure () throws -> Any, contains text: String = "",
                                   file: StaticString = #filePath, line: UInt = #line)
    {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard case .format(let m)? = error as? LoRANASError else {
                return XCTFail("expected a format error, got \(error)", file: file, line: line)
            }
            XCTAssertTrue(m.contains(text), "\(m) does not contain \(text)", file: file, line: line)
        }
    }

    // MARK: - Round trip

    func testRoundTripEqualsInput() throws {
        var rng = TestRNG(7)
        var xs = try samples()
        xs.append(try sample(&rng, tokens: 5, images: 2, t: 2))
        let path = dir + "/a.pack"
        try write(xs, to: path, skipped: 3)
        let r = try PackReader(path: path)
        XCTAssertEqual(r.count, xs.count)
        XCTAssertEqual(r.metadata.sampleCount, xs.count)
        XCTAssertEqual(r.metadata.skippedCount, 3)
        var expected = metadata()
        (expected.sampleCount, expected.skippedCount) = (xs.count, 3)
        XCTAssertEqual(r.metadata, expected)
        for (i, x) in xs.enumerated() {
            XCTAssertEqual(r.length(i), x.length)
            XCTAssertEqual(r.imageCount(i), x.images.count)
            XCTAssertEqual(try r.sample(i), x)
        }
        XCTAssertTrue(xs.contains { $0.images.isEmpty } && xs.contains { $0.images.count == 3 })
        XCTAssertGreaterThanOrEqual(Set(xs.flatMap { $0.images.map(\.tileCount) }).count, 3, "several tile counts")
        XCTAssertThrowsError(try r.sample(xs.count))
        XCTAssertThrowsError(try r.sample(-1))
        XCTAssertEqual(files(), ["a.pack"], "no temporary file is left")
    }

    func testMetadataWithoutOptionalsRoundTrips() throws {
        var m = metadata(tileSize: 3)
        (m.padTokenId, m.maxLength) = (nil, nil)
        m.imageSettings.imageMean = [0.48145466, 0.4578275, 0.40821073]
        m.source = "naïve \"quoted\"\n"
        let path = dir + "/m.pack"
        let w = try PackWriter(path: path, metadata: m)
        try w.append(EncodedSample(inputIds: [1, 2], labels: [-100, 2], images: []))
        try w.finish(skipped: 0)
        m.sampleCount = 1
        XCTAssertEqual(try PackReader(path: path).metadata, m)
    }

    func testReadsFromSeveralThreads() throws {
        let xs = try samples(count: 16)
        let path = dir + "/t.pack"
        try write(xs, to: path)
        let r = try PackReader(path: path)
        let ok = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 64)
        defer { ok.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 64) { k in
            ok[k] = (try? r.sample(k % 16)) == xs[k % 16]
        }
        XCTAssertTrue(ok.allSatisfy { $0 })
    }

    func testMetadataBlockIsSortedJSONPaddedWithSpaces() throws {
        let bytes = try write(try samples(count: 2), to: dir + "/a.pack", skipped: 1)
        let m = Int(bytes.withUnsafeBytes { $0.baseAddress!.loadLE(12) as UInt32 })
        let block = String(decoding: bytes[16..<(16 + m)], as: UTF8.self)
        let json = "{\"bos_token\":\"<|begin_of_text|>\",\"eos_token\":\"<|eot_id|>\",\"format_version\":1,"
            + "\"image_processor\":{\"image_mean\":[0.5,0.5,0.5],\"image_std\":[0.5,0.5,0.5],\"max_image_tiles\":4,"
            + "\"rescale_factor\":0.00392156862745098,\"tile_size\":2},\"image_token_id\":60,\"max_length\":128,"
            + "\"model_config\":\"\",\"pad_token_id\":63,\"sample_count\":2,\"skipped_count\":1,"
            + "\"source\":\"train.jsonl\",\"vocab_size\":64}"
        XCTAssertEqual(block.trimmingCharacters(in: .whitespaces), json)
        XCTAssertEqual(m, json.utf8.count + 40, "two zeros became 2 and 1: the block keeps its reserved size")
    }

    /// Reading every sample of a mapped pack hands each record's pages back: the resident size stays flat.
    func testStreamingKeepsResidentMemoryFlat() throws {
        let path = dir + "/big.pack"
        var rng = TestRNG(9)
        let w = try PackWriter(path: path, metadata: metadata(tileSize: 256))
        let one = try sample(&rng, tokens: 8, images: 1, t: 256)
        for _ in 0..<64 { try w.append(one) } // 64 × ≥ 192 KiB: at least 12 MiB of records
        try w.finish(skipped: 0)
        let r = try PackReader(path: path)
        let before = residentBytes()
        for i in 0..<r.count { XCTAssertEqual(try r.sample(i).images.count, 1) }
        let grown = residentBytes() - before
        XCTAssertLessThan(grown, 6 << 20, "resident memory grew by \(grown) bytes while streaming")
    }

    private func residentBytes() -> Int {
        let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }

    func testTwoWritesAreByteIdentical() throws {
        let xs = try samples()
        let a = try write(xs, to: dir + "/a.pack", skipped: 2)
        let b = try write(xs, to: dir + "/b.pack", skipped: 2)
        XCTAssertEqual(a, b)
        XCTAssertEqual(Array(a.prefix(8)), Array("LRNSPACK".utf8))
        XCTAssertEqual(Array(a.suffix(8)), Array("LRNSPACK".utf8))
    }

    // MARK: - Corruption

    func testEveryTruncationIsAFormatError() throws {
        let full = try write(try samples(count: 3), to: dir + "/full.pack")
        let path = dir + "/cut.pack"
        for n in 0..<full.count {
            try Data(full.prefix(n)).write(to: URL(fileURLWithPath: path))
            assertFormatError(try PackReader(path: path), contains: "cut.pack")
        }
        try Data(full).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try PackReader(path: path).count, 3)
    }

    func testFlippedRecordByteFailsWhenThatSampleIsRead() throws {
        let xs = try samples(count: 3)
        let full = try write(xs, to: dir + "/a.pack")
        let r = try open(full)
        let (start, end) = try recordRange(full, sample: 1)
        for k in start..<end {
            var bytes = full
            bytes[k] ^= 0x10
            let damaged = try open(bytes)
            XCTAssertEqual(try damaged.sample(0), xs[0])
            XCTAssertEqual(try damaged.sample(2), xs[2])
            assertFormatError(try damaged.sample(1), contains: "sample 1 is corrupt")
        }
        XCTAssertEqual(try r.sample(1), xs[1])
    }

    /// The byte range of record `sample`, from the index.
    private func recordRange(_ bytes: [UInt8], sample: Int) throws -> (Int, Int) {
        let n = Int(bytes.withUnsafeBytes { $0.baseAddress!.loadLE(bytes.count - 24) as UInt64 })
        let entry = bytes.count - 32 - 32 * n + 32 * sample
        let (offset, length) = bytes.withUnsafeBytes {
            ($0.baseAddress!.loadLE(entry) as UInt64, $0.baseAddress!.loadLE(entry + 8) as UInt64)
        }
        return (Int(offset), Int(offset + length))
    }

    func testFlippedHeaderIndexOrFooterByteFailsAtOpen() throws {
        let full = try write(try samples(count: 3), to: dir + "/a.pack")
        let (dataStart, _) = try recordRange(full, sample: 0)
        let (_, indexStart) = try recordRange(full, sample: 2)
        for k in Array(0..<dataStart) + Array(indexStart..<full.count) {
            var bytes = full
            bytes[k] ^= 0x04
            XCTAssertThrowsError(try open(bytes), "byte \(k)")
        }
        var bytes = full
        bytes[20] ^= 0x01
        assertFormatError(try open(bytes), contains: "checksum does not match")
        bytes = full
        bytes[indexStart + 3] ^= 0x01
        assertFormatError(try open(bytes), contains: "checksum does not match")
    }

    func testWrongMagicAndNewerVersion() throws {
        let full = try write(try samples(count: 2), to: dir + "/a.pack")
        var bytes = full
        bytes[0] = UInt8(ascii: "X")
        assertFormatError(try open(bytes), contains: "not a loranas pack")
        bytes = full
        bytes[8] = 2
        XCTAssertThrowsError(try open(bytes)) { error in
            guard case .unsupported(let m)? = error as? LoRANASError else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("version 2 was written by a newer loranas"), m)
            XCTAssertTrue(m.contains("reads version 1"), m)
        }
        bytes[8] = 0
        assertFormatError(try open(bytes), contains: "version 0")
    }

    /// Structural damage behind valid checksums (as a hostile file would have) is still refused.
    func testHostileIndexBehindValidChecksums() throws {
        let full = try write(try samples(count: 3), to: dir + "/a.pack")
        let n = 3
        let index = full.count - 32 - 32 * n
        let cases: [(Int, UInt8, String)] = [
            (index + 8, 0x01, "index entry 1"),      // record 0's length changed: record 1 no longer follows it
            (index + 16 + 3, 0x40, "index entry 0"), // token count far beyond the record
            (index + 32 * 2 + 20, 0x10, "index entry 2"), // 16 more images than bytes
            (full.count - 24, 0x01, "does not match"),
        ]
        for (k, bit, text) in cases {
            var bytes = full
            bytes[k] ^= bit
            PackSeal.reseal(&bytes)
            assertFormatError(try open(bytes), contains: text)
        }
    }

    func testHostileRecordBehindValidChecksums() throws {
        let xs = try samples(count: 4)
        let full = try write(xs, to: dir + "/a.pack")
        let (start, end) = try recordRange(full, sample: 3)
        XCTAssertEqual(xs[3].images.count, 3)
        var bytes = full
        bytes[start] = 0xFF // an id outside the vocabulary
        PackSeal.reseal(&bytes)
        assertFormatError(try open(bytes).sample(3), contains: "sample 3: has token id")
        let imageHead = start + 8 * xs[3].length
        for (offset, value) in [(0, UInt8(9)), (8, 3), (12, 99)] {
            bytes = full
            bytes[imageHead + offset] = value
            PackSeal.reseal(&bytes)
            assertFormatError(try open(bytes).sample(3), contains: "sample 3:")
        }
        XCTAssertLessThan(imageHead, end)
    }

    func testFIFOAndDirectoryAreRefused() throws {
        let fifo = dir + "/fifo.pack"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertThrowsError(try PackReader(path: fifo)) { error in
            guard case .io(let m)? = error as? LoRANASError else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("FIFO"), m)
        }
        XCTAssertThrowsError(try PackReader(path: dir))
        XCTAssertThrowsError(try PackReader(path: dir + "/missing.pack")) { error in
            guard case .notFound? = error as? LoRANASError else { return XCTFail("\(error)") }
        }
    }

    // MARK: - Writer

    func testUnfinishedWriterLeavesNoFile() throws {
        do {
            let w = try PackWriter(path: dir + "/a.pack", metadata: metadata())
            try w.append(try samples(count: 1)[0])
            XCTAssertEqual(files().count, 1)
            XCTAssertTrue(files()[0].hasPrefix(".a.pack.tmp-\(getpid())-"), files()[0])
        }
        XCTAssertEqual(files(), [])
    }

    func testEmptyDatasetIsRefused() throws {
        let w = try PackWriter(path: dir + "/a.pack", metadata: metadata())
        XCTAssertThrowsError(try w.finish(skipped: 4)) { error in
            XCTAssertTrue("\(error)".contains("empty dataset"), "\(error)")
        }
        XCTAssertEqual(files(), [])
        XCTAssertThrowsError(try w.append(try samples(count: 1)[0]), "a failed writer refuses more samples")
    }

    func testFailedWriteLeavesTargetUntouched() throws {
        let path = dir + "/a.pack"
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        do {
            let w = try PackWriter(path: path, metadata: metadata())
            try w.append(try samples(count: 1)[0])
            XCTAssertThrowsError(try w.finish(skipped: -1))
        }
        do {
            let w = try PackWriter(path: path, metadata: metadata())
            try w.append(try samples(count: 1)[0])
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data("old".utf8))
        XCTAssertEqual(files(), ["a.pack"])
    }

    func testInvalidSamplesAreRefusedAndTheWriterGoesOn() throws {
        var rng = TestRNG(3)
        let good = try sample(&rng, tokens: 4, images: 1)
        var shortLabels = good
        shortLabels.labels.removeLast()
        var badId = good
        badId.inputIds[2] = Int32(vocab)
        var badLabel = good
        badLabel.labels[2] = (good.inputIds[2] + 1) % 50
        var missingImage = good
        missingImage.images = []
        let bigTiles = try sample(&rng, tokens: 3, images: 1, t: 3)
        let empty = EncodedSample(inputIds: [], labels: [], images: [])
        let w = try PackWriter(path: dir + "/a.pack", metadata: metadata())
        for (bad, text) in [(shortLabels, "3 labels for 4 tokens"), (badId, "token id 64"),
                            (badLabel, "neither -100"), (missingImage, "1 <|image|> tokens but 0 images"),
                            (bigTiles, "tile size 3"), (empty, "0 tokens")]
        {
            XCTAssertThrowsError(try w.append(bad)) { error in
                guard case .invalidArgument(let m)? = error as? LoRANASError else { return XCTFail("\(error)") }
                XCTAssertTrue(m.contains(text), m)
            }
        }
        try w.append(good)
        try w.finish(skipped: 0)
        XCTAssertEqual(try PackReader(path: dir + "/a.pack").sample(0), good)
    }

    func testInvalidMetadataIsRefused() throws {
        var m = metadata()
        m.imageTokenId = vocab
        XCTAssertThrowsError(try PackWriter(path: dir + "/a.pack", metadata: m))
        m = metadata()
        m.imageSettings.tileSize = 0
        XCTAssertThrowsError(try PackWriter(path: dir + "/a.pack", metadata: m))
        XCTAssertEqual(files(), [])
    }
}
