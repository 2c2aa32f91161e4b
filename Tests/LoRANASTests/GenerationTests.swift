import Foundation
import XCTest
@testable import LoRANAS

/// Generation with a KV cache: every cached step's logits equal a full forward's last-position logits,
/// and bad options are errors.
final class GenerationTests: XCTestCase {
    /// Sample `i` of a fixture batch, its first `s` tokens, without labels.
    static func prompt(_ file: String, sample i: Int, length s: Int) throws -> MllamaBatch {
        let all = try MllamaFixtureTests.batch(file)
        let (full, it) = (all.seqLen, all.numImages * (all.pixelValues?.shape[2] ?? 0))
        var p = MllamaBatch(inputIds: Array(all.inputIds[(i * full)..<(i * full + s)]), batchSize: 1, seqLen: s)
        guard let px = all.pixelValues else { return p }
        let per = px.count / all.batchSize
        let pixels = Tensor(zeros: [1] + px.shape.dropFirst())
        pixels.ptr.update(from: px.ptr + i * per, count: per)
        p.pixelValues = pixels
        p.numImages = all.numImages
        p.aspectRatioIds = all.aspectRatioIds.map { Array($0[(i * all.numImages)..<((i + 1) * all.numImages)]) }
        let tiles = all.numImages * px.shape[2]
        p.aspectRatioMask = all.aspectRatioMask.map { Array($0[(i * tiles)..<((i + 1) * tiles)]) }
        p.crossAttentionMask = all.crossAttentionMask.map { Array($0[(i * full * it)..<((i * full + s) * it)]) }
        return p
    }

    /// The prompt with `token` appended and, as transformers does, its last cross-attention row repeated.
    static func appending(_ token: Int, to p: MllamaBatch) -> MllamaBatch {
        var q = p
        q.inputIds.append(token)
        q.seqLen += 1
        if let cam = p.crossAttentionMask {
            let it = cam.count / p.seqLen
            q.crossAttentionMask = cam + cam.suffix(it)
        }
        return q
    }

    /// max |a − b| / max |b| over the last position's logits of a full forward.
    func checkSteps(_ model: MllamaModel, _ prompt: MllamaBatch, steps: Int) throws {
        let session = try GenerationSession(model: model, prompt: prompt, maxNewTokens: steps)
        var logits = try session.prefill(), batch = prompt
        let v = model.config.text.vocabSize
        for step in 0..<steps {
            let full = try model.forward(batch).logits
            let last = Tensor(Array(full.array.suffix(v)), shape: [1, v])
            XCTAssertLessThan(relativeError(logits, last), 1e-5, "step \(step)")
            let token = TokenSampler.argmax(UnsafeBufferPointer(start: logits.ptr, count: v))
            batch = Self.appending(token, to: batch)
            if step < steps - 1 { logits = session.decode([token]) }
        }
    }

    func testCachedStepsEqualFullForwardWithImages() throws {
        let model = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        // Sample 0 has two images and cross-attention rows before the first image token.
        try checkSteps(model, try Self.prompt("tiles4_gqa/inputs.safetensors", sample: 0, length: 14), steps: 6)
        try checkSteps(model, try Self.prompt("tiles4_gqa/inputs.safetensors", sample: 0, length: 5), steps: 4)
    }

    func testCachedStepsEqualFullForwardWithAdapter() throws {
        let model = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        _ = try model.loadPEFTAdapter(MllamaFixtureTests.path("tiles4_gqa/peft"))
        try checkSteps(model, try Self.prompt("tiles4_gqa/inputs.safetensors", sample: 1, length: 9), steps: 5)
    }

    func testCachedStepsEqualFullForwardTextOnly() throws {
        let model = try MllamaModel(path: MllamaFixtureTests.path("tile1_bf16"))
        try checkSteps(model, try Self.prompt("tile1_bf16/inputs_text_only.safetensors", sample: 0, length: 9),
                       steps: 6)
        try checkSteps(model, try Self.prompt("tile1_bf16/inputs.safetensors", sample: 0, length: 9), steps: 6)
    }

    func testSamplingIsSeeded() throws {
        let model = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        let p = try Self.prompt("tiles4_gqa/inputs.safetensors", sample: 0, length: 14)
        let o = GenerationOptions(maxNewTokens: 12, temperature: 1.5, topP: 0.95, seed: 7)
        let a = try model.generate(p, options: o), b = try model.generate(p, options: o)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a[0].count, 12)
        let greedy = try model.generate(p, options: GenerationOptions(maxNewTokens: 12))
        XCTAssertEqual(try model.generate(p, options: GenerationOptions(maxNewTokens: 12, temperature: 1, topP: 1e-9)),
                       greedy)
    }

    func testBadOptionsAreErrors() throws {
        let model = try MllamaModel(path: MllamaFixtureTests.path("tile1_bf16"))
        let p = try Self.prompt("tile1_bf16/inputs_text_only.safetensors", sample: 0, length: 9)
        let bad: [GenerationOptions] = [
            .init(maxNewTokens: 0), .init(maxNewTokens: 256 - 8), .init(temperature: .nan),
            .init(temperature: -1), .init(topP: 0), .init(topP: 1.5), .init(stopTokenIds: [64]),
        ]
        for o in bad {
            XCTAssertThrowsError(try model.generate(p, options: o), "\(o)")
        }
        var right = p
        right.attentionMask = [1, 1, 1, 1, 1, 1, 1, 0, 0]
        XCTAssertThrowsError(try model.generate(right, options: .init())) {
            XCTAssertTrue("\($0)".contains("left-padded"), "\($0)")
        }
    }
}
