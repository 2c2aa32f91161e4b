import Foundation
import XCTest

@testable import LoRANAS

/// The tokenizer on two small tokenizer.json files (Fixtures/tokenizer: a byte-level BPE with the
/// Llama-3 split, ignore_merges, a `<s> $A` template and added tokens; a WordLevel with NFC,
/// Whitespace, `[CLS] $A [SEP]` and an lstrip `<mask>`), against the ids HF tokenizers 0.23.3 gives:
/// both files and every expected value below come from `python tools/tokenizer_fixtures.py`.
/// python/tests/test_tokenizer.py compares the real Llama-3 tokenizer on 20,000 strings.
final class TokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizer")

    func load(_ name: String) throws -> Tokenizer {
        try Tokenizer(path: Self.fixtures.appendingPathComponent(name).path)
    }

    /// (text, ids with special tokens, ids without, decode of the ids without).
    typealias Case = (text: String, special: [Int], plain: [Int], decoded: String)

    func check(_ tok: Tokenizer, _ cases: [Case], file: StaticString = #filePath, line: UInt = #line) throws {
        for c in cases {
            XCTAssertEqual(
                try tok.encode(c.text), c.special, "encode \(c.text.debugDescription)", file: file, line: line)
            XCTAssertEqual(
                try tok.encode(c.text, addSpecialTokens: false), c.plain, "encode \(c.text.debugDescription)",
                file: file, line: line)
            XCTAssertEqual(tok.decode(c.plain), c.decoded, "decode \(c.plain)", file: file, line: line)
        }
    }

    func testByteLevelBPEMatchesHF() throws {
        let tok = try load("bpe.json")
        XCTAssertEqual(tok.vocabSize, 302)
        try check(
            tok,
            [
                ("the cat", [300, 257, 260, 258], [257, 260, 258], "the cat"),
                (
                    "hello  world\n\n", [300, 268, 220, 220, 293, 282, 198, 198], [268, 220, 220, 293, 282, 198, 198],
                    "hello  world\n\n"
                ),
                (
                    "na\u{ef}ve 12345", [300, 286, 295, 220, 273, 18, 19, 20], [286, 295, 220, 273, 18, 19, 20],
                    "na\u{ef}ve 12345"
                ),
                (
                    "<s>the<|image|>dog's", [300, 300, 257, 301, 262, 70, 270], [300, 257, 301, 262, 70, 270],
                    "<s>the<|image|>dog's"
                ),
                ("", [300], [], ""),
                (
                    "\u{ff}\u{1F600} x", [300, 127, 123, 172, 253, 246, 222, 220, 87],
                    [127, 123, 172, 253, 246, 222, 220, 87], "\u{ff}\u{1F600} x"
                ),
                ("CAT'S the", [300, 34, 32, 51, 6, 50, 265], [34, 32, 51, 6, 50, 265], "CAT'S the"),
            ])
        XCTAssertEqual(try tok.encode("the cat", pair: "cat"), [300, 257, 260, 258, 300, 66, 258])
        XCTAssertEqual(tok.decode([300, 257, 301], skipSpecialTokens: true), "the")
        XCTAssertEqual(tok.decode([300, 257, 301]), "<s>the<|image|>")
        XCTAssertEqual(tok.decode([257, 99_999, 258]), "theat", "ids no token has are skipped, as in HF")
        XCTAssertEqual(tok.tokenToId("<|image|>"), 301)
        XCTAssertNil(tok.tokenToId("nope"))
    }

    func testWordLevelMatchesHF() throws {
        let tok = try load("wordlevel.json")
        XCTAssertEqual(tok.vocabSize, 30)
        try check(
            tok,
            [
                ("the cat sat", [1, 3, 15, 26, 2], [3, 15, 26], "the cat sat"),
                ("a new word!", [1, 0, 0, 0, 0, 2], [0, 0, 0, 0], "[UNK] [UNK] [UNK] [UNK]"),
                ("caf\u{e9} na\u{ef}ve", [1, 14, 23, 2], [14, 23], "caf\u{e9} na\u{ef}ve"),
                ("e\u{301}", [1, 0, 2], [0], "[UNK]"),
                ("[CLS] x [SEP]", [1, 1, 0, 2, 2], [1, 0, 2], "[CLS] [UNK] [SEP]"),
                ("", [1, 2], [], ""),
                ("mat <mask>  the", [1, 22, 29, 3, 2], [22, 29, 3], "mat <mask> the"),
            ])
        // NFC: the decomposed spelling of "café" is the vocabulary's composed one.
        XCTAssertEqual(try tok.encode("cafe\u{301}", addSpecialTokens: false), [14])
        XCTAssertEqual(tok.decode([1, 3, 2], skipSpecialTokens: true), "the")
    }

    /// Split's behaviors on "a1b22" cut at `\d` (HF's `NormalizedString::split` documentation cases).
    func testSplitBehaviors() throws {
        let regex = try TokenizerRegex(pattern: #"\d"#, field: "test")
        func words(_ b: SplitBehavior, invert: Bool = false) -> [String] {
            PreTokenizer.split(regex: regex, behavior: b, invert: invert).apply(["a1b22"])
        }
        XCTAssertEqual(words(.removed), ["a", "b"])
        XCTAssertEqual(words(.isolated), ["a", "1", "b", "2", "2"])
        XCTAssertEqual(words(.mergedWithPrevious), ["a1", "b2", "2"])
        XCTAssertEqual(words(.mergedWithNext), ["a", "1b", "2", "2"])
        XCTAssertEqual(words(.contiguous), ["a", "1", "b", "22"])
        XCTAssertEqual(words(.removed, invert: true), ["1", "2", "2"])
    }

    // MARK: - errors

    /// The BPE fixture's JSON, edited by `change`, then loaded.
    func loadEdited(_ name: String = "bpe.json", _ change: (inout [String: Any]) -> Void) throws -> Tokenizer {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent(name))
        guard var json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LoRANASError.format("fixture is not an object")
        }
        change(&json)
        return try Tokenizer(json: try JSONSerialization.data(withJSONObject: json))
    }

    func assertError(
        _ expected: (LoRANASError) -> Bool, _ text: String, _ body: () throws -> Tokenizer,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            guard let e = e as? LoRANASError else {
                return XCTFail("\(e) is not a LoRANASError", file: file, line: line)
            }
            XCTAssertTrue(expected(e), "unexpected error kind: \(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains(text), "\(e) does not name \(text)", file: file, line: line)
        }
    }

    func isUnsupported(_ e: LoRANASError) -> Bool {
        if case .unsupported = e { return true }
        return false
    }

    func isFormat(_ e: LoRANASError) -> Bool {
        if case .format = e { return true }
        return false
    }

    func testUnknownComponentsAreRefusedByName() {
        assertError(isUnsupported, "Unigram") { try loadEdited { $0["model"] = ["type": "Unigram", "vocab": []] } }
        assertError(isUnsupported, "Metaspace") {
            try loadEdited { $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "_"] }
        }
        assertError(isUnsupported, "Punctuation") {
            try loadEdited {
                $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "Punctuation"]]]
            }
        }
        assertError(isUnsupported, "Lowercase") { try loadEdited { $0["normalizer"] = ["type": "Lowercase"] } }
        assertError(isUnsupported, "BertProcessing") {
            try loadEdited { $0["post_processor"] = ["type": "BertProcessing"] }
        }
        assertError(isUnsupported, "WordPiece") { try loadEdited { $0["decoder"] = ["type": "WordPiece"] } }
        assertError(isUnsupported, "Sideways") {
            try loadEdited {
                $0["pre_tokenizer"] = [
                    "type": "Split", "pattern": ["Regex": "a"], "behavior": "Sideways", "invert": false,
                ]
            }
        }
        assertError(isUnsupported, "byte_fallback") {
            try loadEdited { j in
                var m = j["model"] as? [String: Any] ?? [:]
                m["byte_fallback"] = true
                j["model"] = m
            }
        }
    }

    func testMalformedFilesGiveFormatErrors() {
        assertError(isFormat, "malformed JSON") { try Tokenizer(json: Data("{\"model\": ".utf8)) }
        assertError(isFormat, "must be a JSON object") { try Tokenizer(json: Data("[1]".utf8)) }
        func editModel(_ change: @escaping (inout [String: Any]) -> Void) -> () throws -> Tokenizer {
            {
                try self.loadEdited { j in
                    var m = j["model"] as? [String: Any] ?? [:]
                    change(&m)
                    j["model"] = m
                }
            }
        }
        assertError(
            isFormat, "names \"zz\", which is not in the vocabulary", editModel { $0["merges"] = [["zz", "a"]] })
        assertError(isFormat, "model.merges[1] makes \"ab\"", editModel { $0["merges"] = [["h", "e"], ["a", "b"]] })
        assertError(isFormat, "model.merges[0] must name two tokens", editModel { $0["merges"] = ["a b c"] })
        assertError(isFormat, "model.merges must be an array", editModel { $0["merges"] = 3 })
        assertError(isFormat, "model.vocab[\"a\"] must be an id", editModel { $0["vocab"] = ["a": -1] })
        assertError(isFormat, "gives the id 0 to two tokens", editModel { $0["vocab"] = ["a": 0, "b": 0] })
        assertError(isFormat, "added_tokens[0].content") { try self.loadEdited { $0["added_tokens"] = [["id": 5]] } }
        assertError(isFormat, "pre_tokenizer.pretokenizers[0].pattern") {
            try self.loadEdited {
                $0["pre_tokenizer"] = [
                    "type": "Sequence",
                    "pretokenizers": [["type": "Split", "pattern": ["Regex": "(unclosed"], "behavior": "Isolated"]],
                ]
            }
        }
        assertError(isFormat, "uses the special token \"<x>\"") {
            try self.loadEdited { j in
                var p = j["post_processor"] as? [String: Any] ?? [:]
                p["single"] = [["SpecialToken": ["id": "<x>", "type_id": 0]]]
                j["post_processor"] = p
            }
        }
        assertError(isFormat, "pre_tokenizer.type") { try self.loadEdited { $0["pre_tokenizer"] = ["kind": "x"] } }
    }

    /// `ignore_merges`: a word that is a token is that token, whatever the merges make of it. Expected
    /// ids from HF tokenizers 0.23.3: `Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4,
    /// "abc": 5}, merges=[("a", "b"), ("b", "c")], ignore_merges=...)).encode(...).ids`.
    func testIgnoreMerges() throws {
        func bpe(ignoreMerges: Bool) throws -> Tokenizer {
            try loadEdited { j in
                j["model"] = [
                    "type": "BPE", "vocab": ["a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5],
                    "merges": [["a", "b"], ["b", "c"]], "ignore_merges": ignoreMerges,
                ]
                j["added_tokens"] = []
                j["pre_tokenizer"] = NSNull()
                j["post_processor"] = NSNull()
            }
        }
        XCTAssertEqual(try bpe(ignoreMerges: true).encode("abc"), [5])
        XCTAssertEqual(try bpe(ignoreMerges: true).encode("abcz"), [3, 2])
        XCTAssertEqual(try bpe(ignoreMerges: false).encode("abc"), [3, 2])
    }

    /// A word whose characters no token has is dropped (BPE without unk_token, as HF), and a
    /// WordLevel word outside a vocabulary without the unknown token is an error, not a trap.
    func testOutOfVocabulary() throws {
        let bpe = try loadEdited { j in
            var m = j["model"] as? [String: Any] ?? [:]
            m["vocab"] = ["a": 0, "b": 1, "ab": 2]
            m["merges"] = [["a", "b"]]
            j["model"] = m
            j["added_tokens"] = []
            j["post_processor"] = NSNull()
        }
        XCTAssertEqual(try bpe.encode("abzab"), [2, 2])
        let wordLevel = try loadEdited("wordlevel.json") { j in
            var m = j["model"] as? [String: Any] ?? [:]
            m["unk_token"] = "<missing>"
            j["model"] = m
        }
        XCTAssertThrowsError(try wordLevel.encode("zebra"))
    }
}

extension TokenizerTests {
    /// Damaged tokenizer files and hostile text: every load either succeeds or throws, and every
    /// encode of a loaded one either succeeds or throws (a trap would end the test process).
    func testDamagedFilesAndRandomTextNeverTrap() throws {
        var rng = SplitMix64(seed: 8)
        for name in ["bpe.json", "wordlevel.json"] {
            let original = try Data(contentsOf: Self.fixtures.appendingPathComponent(name))
            var loaded = 0
            for trial in 0..<300 {
                var bytes = [UInt8](original)
                if trial % 3 == 0 {
                    bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
                } else {
                    for _ in 0..<(1 + Int(rng.next() % 4)) {
                        bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                    }
                }
                guard let tok = try? Tokenizer(json: Data(bytes)) else { continue }
                loaded += 1
                var scalars = String.UnicodeScalarView()
                for _ in 0..<40 { scalars.append(Unicode.Scalar(UInt32(rng.next() % 0xD800)) ?? " ") }
                let text = String(scalars) + " the cat <s> [CLS] <mask>"
                if let ids = try? tok.encode(text) { _ = tok.decode(ids + [Int(Int32.max)]) }
            }
            XCTAssertGreaterThan(loaded, 0, "some mutations of \(name) (in a string, say) still load")
        }
    }

    /// One tokenizer used from several threads at once (its word cache is shared) gives each
    /// thread the ids it gives alone.
    func testConcurrentEncodes() throws {
        let tok = try load("bpe.json")
        let texts = (0..<64).map { i in "the cat \(i) hello world\(i % 7) na\u{ef}ve dog's <s>" }
        let expected = try texts.map { try tok.encode($0) }
        final class Results: @unchecked Sendable {  // guarded by lock
            let lock = NSLock()
            var ids: [[Int]?]
            init(_ n: Int) { ids = Array(repeating: nil, count: n) }
        }
        let results = Results(texts.count * 4)
        DispatchQueue.concurrentPerform(iterations: texts.count * 4) { k in
            let ids = try? tok.encode(texts[k % texts.count])
            results.lock.lock()
            results.ids[k] = ids
            results.lock.unlock()
        }
        XCTAssertEqual(results.ids, (0..<(texts.count * 4)).map { expected[$0 % texts.count] })
    }
}
