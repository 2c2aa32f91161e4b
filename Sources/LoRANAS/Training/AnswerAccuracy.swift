import Foundation

/// One sample's answer, checked by greedy generation.
public struct AnswerCheck: Sendable, Equatable {
    /// The sample's last labelled span: its last answer and the `<|eot_id|>` after it.
    public var reference: [Int]
    /// What greedy decoding produced from the tokens before that span (at most as many tokens, stopping at the
    /// span's last token).
    public var generated: [Int]

    /// Exact match, token for token.
    public var correct: Bool { generated == reference }

    public var json: JSON {
        .object([
            ("reference", .array(reference.map { .number(Double($0)) })),
            ("generated", .array(generated.map { .number(Double($0)) })), ("correct", .bool(correct)),
        ])
    }
}

/// Exact-match answer accuracy: the model answers each sample's last question by greedy decoding.
///
/// A sample's answer is its last run of labelled positions (the chat format labels each answer and its
/// `<|eot_id|>`); the prompt is every token before it, with the sample's images. Decoding stops at the span's
/// last token (`<|eot_id|>`) or after as many tokens as the span holds, and the sample is correct when the
/// generated ids equal the span's ids. A truncated answer is compared as far as it was kept.
public struct AnswerAccuracy: Sendable, Equatable {
    /// Correct samples over all samples.
    public var accuracy: Double
    /// One check per sample, in dataset order.
    public var checks: [AnswerCheck]

    public var json: JSON {
        .object([("accuracy", .number(accuracy)), ("answers", .array(checks.map(\.json)))])
    }
}

extension MllamaModel {
    /// Answers every sample of `data` by greedy decoding (adapters in inference mode) and checks it; at most
    /// `maxNewTokens` tokens are generated per answer (default: the reference's length).
    public func answerAccuracy(_ data: Dataset, maxNewTokens: Int? = nil) throws -> AnswerAccuracy {
        if let maxNewTokens { try require(maxNewTokens >= 1, "max_new_tokens must be at least 1") }
        try require(data.count > 0, "cannot evaluate an empty dataset")
        try require(data.config == config, "the dataset was made for another model (its config.json differs)")
        for a in loraAdapters { a.training = false }
        let world = try World.current()
        let mine = world.shardRange(data.count)
        let local = try world.agree {
            try mine.map { i in try answerCheck(try data.sample(i), index: i, maxNewTokens: maxNewTokens) }
        }
        // Every rank's checks, in sample order, on every rank.
        let references = world.gather(local.map(\.reference), offset: mine.lowerBound, total: data.count)
        let generated = world.gather(local.map(\.generated), offset: mine.lowerBound, total: data.count)
        let checks = zip(references, generated).map { AnswerCheck(reference: $0, generated: $1) }
        let correct = checks.filter(\.correct).count
        return AnswerAccuracy(accuracy: Double(correct) / Double(checks.count), checks: checks)
    }

    private func answerCheck(_ sample: Sample, index: Int, maxNewTokens: Int?) throws -> AnswerCheck {
        guard let labels = sample.labels, let last = labels.lastIndex(where: { $0 != CrossEntropy.ignoreIndex })
        else {
            throw LoRANASError.invalidArgument("sample \(index) has no labelled answer")
        }
        var start = last
        while start > 0 && labels[start - 1] != CrossEntropy.ignoreIndex { start -= 1 }
        try require(start > 0, "sample \(index): its answer starts at the first token, so there is no prompt")
        let reference = Array(sample.inputIds[start...last])
        let options = GenerationOptions(maxNewTokens: min(reference.count, maxNewTokens ?? reference.count),
                                        stopTokenIds: [reference[reference.count - 1]])
        let generated = try generateHere(Self.prompt(sample, length: start), options: options)
        return AnswerCheck(reference: reference, generated: generated.first ?? [])
    }

    /// The first `length` tokens of `s` with its images, as a batch of one without labels.
    static func prompt(_ s: Sample, length: Int) -> MllamaBatch {
        var b = MllamaBatch(inputIds: Array(s.inputIds[..<length]), batchSize: 1, seqLen: length,
                            attentionMask: s.attentionMask.map { Array($0[..<length]) }, labels: nil)
        if let px = s.pixelValues, let cross = s.crossAttentionMask, s.numImages > 0 {
            b.pixelValues = px.reshaped([1] + px.shape)
            b.numImages = s.numImages
            b.aspectRatioIds = s.aspectRatioIds
            b.aspectRatioMask = s.aspectRatioMask
            b.crossAttentionMask = Array(cross[..<(length * cross.count / max(s.length, 1))])
        }
        return b
    }
}
