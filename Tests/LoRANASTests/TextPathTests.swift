import CLoRANAS
import Foundation
import XCTest

@testable import LoRANAS
@testable import LoRANASCAPI

/// The text path on the examples of mllama-processor.md §2-§3 (chat format, BOS rule, labels, padding and
/// cross_attention_mask), and its C exports. python/tests/test_text_path.py compares it with transformers on
/// hundreds of seeded records with the real Llama-3 tokenizer.
final class TextPathTests: XCTestCase {
    /// The byte-level BPE fixture (a `<s> $A` template) with the chat's special tokens added, ids 302...
    func chatTokenizer(template: Bool = true) throws -> Tokenizer {
        try Tokenizer(json: try Self.chatTokenizerJSON(template: template))
    }

    /// The tokenizer.json of ``chatTokenizer(template:)``.
    static func chatTokenizerJSON(template: Bool = true) throws -> Data {
        let url = TokenizerTests.fixtures.appendingPathComponent("bpe.json")
        guard var json = try JSONSerialization.jsonObject(with: try Data(contentsOf: url)) as? [String: Any],
            var added = json["added_tokens"] as? [[String: Any]]
        else { throw LoRANASError.format("fixture is not an object") }
        let names = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|pad|>"]
        for (i, name) in names.enumerated() {
            added.append([
                "id": 302 + i, "content": name, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true,
            ])
        }
        json["added_tokens"] = added
        if !template { json["post_processor"] = NSNull() }
        return try JSONSerialization.data(withJSONObject: json)
    }

    let bos = 302
    let header = 303
    let headerEnd = 304
    let eot = 305
    let pad = 306
    let image = 301

    func record(_ images: Int, _ turns: [(String, String)]) throws -> CauldronRecord {
        try CauldronRecord(imageCount: images, turns: turns.map { CauldronRecord.Turn(user: $0.0, assistant: $0.1) })
    }

    func testCauldronRecordRendersAsTheSpecExample() throws {
        let r = try CauldronRecord(json: #"{"images": ["a.png"], "texts": [{"user": "q1", "assistant": "a1"},"#
            + #" {"user": "q2", "assistant": "a2", "source": 3}], "other": null}"#)
        let chat = try ChatFormat.render(r.messages)
        let u = "<|start_header_id|>user<|end_header_id|>\n\n"
        let a = "<|start_header_id|>assistant<|end_header_id|>\n\n"
        let want = "<|begin_of_text|>" + u + "<|image|>q1<|eot_id|>" + a + "a1<|eot_id|>" + u + "q2<|eot_id|>" + a
            + "a2<|eot_id|>"
        XCTAssertEqual(chat.text, want)
        let bytes = Array(chat.text.utf8)
        XCTAssertEqual(chat.assistantSpans.map { String(decoding: bytes[$0], as: UTF8.self) },
                       ["a1<|eot_id|>", "a2<|eot_id|>"])
        XCTAssertEqual(try ChatFormat.render(r.messages, addGenerationPrompt: true).text, want + a)
    }

    func testSystemBlockOnlyWithoutImages() throws {
        let msgs = [
            ChatMessage(role: "system", content: .string("\u{3000} Be brief.\n")),
            ChatMessage(role: "user", content: .string("Hi")),
        ]
        let want = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
            + "December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>"
            + "\n\nHi<|eot_id|>"
        XCTAssertEqual(try ChatFormat.render(msgs, dateString: "26 Jul 2024").text, want)
        let withImage = [msgs[0], ChatMessage(role: "user", content: .parts([.image]))]
        XCTAssertThrowsError(try ChatFormat.render(withImage)) { XCTAssert("\($0)".contains("incompatible")) }
        let blankSystem = [ChatMessage(role: "system", content: .string(" \n")), withImage[1]]
        XCTAssertEqual(try ChatFormat.render(blankSystem).text,
                       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|><|eot_id|>")
        XCTAssertThrowsError(try ChatFormat.render([]))
        XCTAssertThrowsError(try ChatFormat.render([ChatMessage(role: "tool", content: .string("x"))]))
    }

    func testBadRecordsAreErrorsNamingTheTurn() {
        let cases: [(String, String)] = [
            (#"{"texts": [{"user": "a", "assistant": "b"}, {"user": "c"}]}"#, "texts[1] has no assistant turn"),
            (#"{"texts": [{"assistant": "b"}]}"#, "texts[0] has no user turn"),
            (#"{"texts": [{"user": "a", "assistant": 3}]}"#, "texts[0] has no assistant turn"),
            (#"{"texts": []}"#, "no turns"),
            (#"{"images": [1]}"#, "no texts"),
            (#"{"images": 1, "texts": [{"user": "a", "assistant": "b"}]}"#, "images must be an array"),
            (#"[1]"#, "must be a JSON object"),
        ]
        for (json, message) in cases {
            XCTAssertThrowsError(try CauldronRecord(json: json), json) {
                XCTAssert("\($0)".contains(message), "\($0)")
            }
        }
    }

    func testBOSRule() {
        XCTAssertEqual(MllamaTextProcessor.applyBOSRule("Describe.").text, "<|begin_of_text|>Describe.")
        XCTAssertEqual(MllamaTextProcessor.applyBOSRule("<|image|>Hi").text, "<|image|><|begin_of_text|>Hi")
        XCTAssertEqual(MllamaTextProcessor.applyBOSRule("<|image|><|image|>Hi").insertedAt, 18)
        XCTAssertEqual(MllamaTextProcessor.applyBOSRule("Hi<|image|>").text, "<|begin_of_text|>Hi<|image|>")
        XCTAssertNil(MllamaTextProcessor.applyBOSRule("x<|begin_of_text|>\u{301}").insertedAt)
        XCTAssertEqual(MllamaTextProcessor.applyBOSRule("").text, "<|begin_of_text|>")
    }

    func testImageRangesShareTheEndOfConsecutiveImages() throws {
        let p = try MllamaTextProcessor(tokenizer: try chatTokenizer(), padTokenId: pad)
        let i = image
        XCTAssertEqual(p.imageRanges([bos, i, i, 5, i, 6]), [1..<4, 2..<4, 4..<6])
        XCTAssertEqual(p.imageRanges([bos, i, 5, i, 6, 7]), [1..<3, 3..<6])
        XCTAssertEqual(p.imageRanges([i, i]), [0..<2, 1..<2])
        XCTAssertEqual(p.imageRanges([bos, 5]), [])
        XCTAssertEqual(p.imageRanges([bos, i, 5]), [1..<3])
    }

    func testPaddingAndCrossAttentionMask() throws {
        let tok = try chatTokenizer(template: false)
        for side in [PaddingSide.right, .left] {
            let p = try MllamaTextProcessor(tokenizer: tok, padTokenId: pad, paddingSide: side, maxImageTiles: 4)
            let out = try p.encode(["<|image|>the cat the cat", "the"], numTiles: [[2], []])
            let ids0 = try tok.encode("<|image|><|begin_of_text|>the cat the cat")
            let ids1 = try tok.encode("<|begin_of_text|>the")
            let s = ids0.count
            XCTAssertEqual(out.sequenceLength, s)
            XCTAssertEqual(out.maxImages, 1)
            let padded1 = side == .right ? ids1 + Array(repeating: pad, count: s - ids1.count)
                : Array(repeating: pad, count: s - ids1.count) + ids1
            XCTAssertEqual(out.inputIds.map { Int($0) }, ids0 + padded1)
            XCTAssertEqual(out.attentionMask[s...].filter { $0 == 1 }.count, ids1.count)
            // Sample 0: every row from the image on sees tiles 0 and 1; sample 1 sees nothing.
            for pos in 0..<s {
                XCTAssertEqual(Array(out.crossAttentionMask[(pos * 4)..<(pos * 4 + 4)]), [1, 1, 0, 0])
            }
            XCTAssert(out.crossAttentionMask[(s * 4)...].allSatisfy { $0 == 0 })
        }
        let p = try MllamaTextProcessor(tokenizer: tok, padTokenId: pad)
        XCTAssertThrowsError(try p.encode(["<|image|>x"], numTiles: [[1, 1]]))
        XCTAssertThrowsError(try p.encode(["<|image|>x"], numTiles: [[5]]))
        XCTAssertThrowsError(try p.encode([], numTiles: []))
        let many = String(repeating: "<|image|>", count: 20_000)
        let big = try MllamaTextProcessor(tokenizer: tok, padTokenId: pad, maxImageTiles: 1024)
        XCTAssertThrowsError(try big.encode([many], numTiles: [Array(repeating: 1, count: 20_000)])) {
            XCTAssert("\($0)".contains("elements"), "\($0)")
        }
    }

    func testLabelsAreTheAnswersAndTheirEndOfTurn() throws {
        for template in [false, true] {
            let tok = try chatTokenizer(template: template)
            let chat = try ChatFormat.render(try record(1, [("the", "cat"), ("dog", "the cat")]).messages)
            let p = try MllamaTextProcessor(tokenizer: tok, padTokenId: pad)
            let out = try p.encode(chats: [chat], numTiles: [[1]])
            let ids = out.inputIds.map { Int($0) }
            XCTAssertEqual(ids, try tok.encode(chat.text))
            // The answers' tokens, spelled back, are exactly "cat<|eot_id|>" and "the cat<|eot_id|>".
            var answers: [String] = []
            var current: [Int] = []
            for (id, label) in zip(ids, out.labels) {
                if label != -100 {
                    XCTAssertEqual(Int(label), id)
                    current.append(id)
                } else if !current.isEmpty {
                    answers.append(tok.decode(current))
                    current = []
                }
            }
            if !current.isEmpty { answers.append(tok.decode(current)) }
            XCTAssertEqual(answers, ["cat<|eot_id|>", "the cat<|eot_id|>"])
            XCTAssertEqual(out.labels.first, -100)
        }
    }

    func testTruncationKeepsImagesAndSkipsSamplesWithoutAnswers() throws {
        let tok = try chatTokenizer(template: false)
        let p = try MllamaTextProcessor(tokenizer: tok, padTokenId: pad, maxImageTiles: 4)
        let chat = try ChatFormat.render(try record(2, [("the", "the cat the cat")]).messages)
        guard let full = try p.encode(chat: chat, numTiles: [1, 3]) else { return XCTFail("not skipped") }
        let firstLabel = try XCTUnwrap(full.labels.firstIndex { $0 != -100 })
        XCTAssertNil(try p.encode(chat: chat, numTiles: [1, 3], maxLength: firstLabel), "no answer left")
        let cut = try XCTUnwrap(try p.encode(chat: chat, numTiles: [1, 3], maxLength: firstLabel + 1))
        XCTAssertEqual(cut.inputIds, Array(full.inputIds[...firstLabel]))
        XCTAssertEqual(cut.labels, Array(full.labels[...firstLabel]))
        XCTAssertEqual(cut.crossAttentionMask, Array(full.crossAttentionMask[..<((firstLabel + 1) * 8)]))
        let expected = try p.encode(chats: [chat], numTiles: [[1, 3]])
        XCTAssertEqual(try p.encode(chat: chat, numTiles: [1, 3], maxLength: full.sequenceLength), expected)
        let images = try XCTUnwrap(full.inputIds.lastIndex(of: Int64(image)))
        XCTAssertNil(try p.encode(chat: chat, numTiles: [1, 3], maxLength: images), "an image token would be cut")
        XCTAssertThrowsError(try p.encode(chat: chat, numTiles: [1, 3], maxLength: 0))
    }

    func testLabelsRefuseATokenizerThatDoesNotSpellTheText() throws {
        let tok = try Tokenizer(path: TokenizerTests.fixtures.appendingPathComponent("wordlevel.json").path)
        let chat = RenderedChat(text: "hello world", assistantSpans: [0..<5])
        XCTAssertThrowsError(try Labels.encode(chat, tokenizer: tok)) {
            guard case LoRANASError.unsupported = $0 else { return XCTFail("\($0)") }
        }
    }

    func testCExports() throws {
        let recordJSON = #"{"images": [0], "texts": [{"user": "the", "assistant": "cat"}]}"#
        var n: Int64 = 0
        XCTAssertEqual(loranas_chat_render_record(recordJSON, 0, nil, nil, 0, &n), Int32(LORANAS_ERR_BUFFER_TOO_SMALL))
        var buf = [CChar](repeating: 0, count: Int(n) + 1)
        XCTAssertEqual(loranas_chat_render_record(recordJSON, 0, nil, &buf, n + 1, &n), 0)
        let rendered = String(decoding: buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let tail = "<|image|>the<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\ncat<|eot_id|>"
        XCTAssert(rendered.hasSuffix(tail), rendered)
        let bad = #"{"texts": [{"user": "a"}]}"#
        XCTAssertEqual(loranas_chat_render_record(bad, 0, nil, &buf, Int64(buf.count), &n), Int32(LORANAS_ERR_FORMAT))
        XCTAssert(String(cString: loranas_last_error()).contains("texts[0] has no assistant turn"))

        let handle = TokenizerHandle.retain(try chatTokenizer(template: false))
        defer { loranas_tokenizer_free(handle) }
        let tok = try TokenizerHandle.borrow(handle)
        let tiles: [Int64] = [2]
        var len: Int64 = 0
        XCTAssertEqual(
            loranas_text_encode_record(handle, recordJSON, nil, tiles, 1, 4, 0, nil, nil, 0, nil, 0, &len), 0)
        XCTAssertGreaterThan(len, 0)
        var ids = [Int64](repeating: 0, count: Int(len))
        var labels = ids
        var mask = [Int64](repeating: 0, count: Int(len) * 4)
        XCTAssertEqual(
            loranas_text_encode_record(handle, recordJSON, nil, tiles, 1, 4, 0, &ids, &labels, len - 1, &mask, len * 4,
                                       &len), Int32(LORANAS_ERR_BUFFER_TOO_SMALL))
        XCTAssertEqual(
            loranas_text_encode_record(handle, recordJSON, nil, tiles, 1, 4, 0, &ids, &labels, len, &mask, len * 4,
                                       &len), 0)
        XCTAssertEqual(ids.last, Int64(eot))
        XCTAssertEqual(labels.last, Int64(eot))
        XCTAssertEqual(
            loranas_text_encode_record(handle, recordJSON, nil, tiles, 0, 4, 0, nil, nil, 0, nil, 0, &len), 1)
        // max_length 3 cuts every answer away: skipped, *out_len = 0.
        XCTAssertEqual(
            loranas_text_encode_record(handle, recordJSON, nil, tiles, 1, 4, 3, nil, nil, 0, nil, 0, &len), 0)
        XCTAssertEqual(len, 0)

        var b: Int64 = 0
        var s: Int64 = 0
        var i: Int64 = 0
        let prompts = #"["<|image|>the", "the cat"]"#
        XCTAssertEqual(loranas_text_encode_prompts(handle, prompts, "[[1], []]", 4, Int64(pad), 0, nil, nil, 0, nil, 0,
                                                   &b, &s, &i), 0)
        XCTAssertEqual([b, i], [2, 1])
        var inputIds = [Int64](repeating: 0, count: Int(b * s))
        var attention = inputIds
        var cross = [Int64](repeating: 0, count: Int(b * s * i * 4))
        XCTAssertEqual(loranas_text_encode_prompts(handle, prompts, "[[1], []]", 4, Int64(pad), 1, &inputIds,
                                                   &attention, b * s, &cross, b * s * i * 4, &b, &s, &i), 0)
        let first = try tok.value.encode("<|image|><|begin_of_text|>the").map { Int64($0) }
        XCTAssertEqual(Array(inputIds[(Int(s) - first.count)..<Int(s)]), first, "left padding")
        XCTAssertEqual(attention[0..<Int(s)].reduce(0, +), Int64(first.count))
        XCTAssertEqual(loranas_text_encode_prompts(handle, "[1]", "[[]]", 4, 0, 0, nil, nil, 0, nil, 0, &b, &s, &i), 1)
        XCTAssertEqual(loranas_text_encode_prompts(nil, prompts, "[[1], []]", 4, 0, 0, nil, nil, 0, nil, 0, &b, &s,
                                                   &i), 1)
    }
}
