import Foundation

extension MllamaProcessorOutput {
    /// The processor's arrays as the model's input batch (no labels).
    public var batch: MllamaBatch {
        var b = MllamaBatch(inputIds: text.inputIds.map(Int.init), batchSize: text.batchSize,
                            seqLen: text.sequenceLength, attentionMask: text.attentionMask.map(Int.init))
        guard text.maxImages > 0 else { return b }
        let side = tileSize
        b.pixelValues = Tensor(pixelValues, shape: [text.batchSize, text.maxImages, text.maxTiles, 3, side, side])
        b.numImages = text.maxImages
        b.aspectRatioIds = aspectRatioIds.map(Int.init)
        b.aspectRatioMask = aspectRatioMask.map(Int.init)
        b.crossAttentionMask = text.crossAttentionMask.map(Int.init)
        return b
    }
}

extension MllamaProcessor {
    /// A user turn of `images` then `question`, rendered with the chat template and a generation prompt, as a
    /// prompt batch of one.
    public func chatPrompt(question: String, images: [RGBImage]) throws -> MllamaBatch {
        let parts = [ChatPart](repeating: .image, count: images.count) + [.text(question)]
        let chat = try ChatFormat.render([ChatMessage(role: "user", content: .parts(parts))],
                                         addGenerationPrompt: true, bosToken: tokenizerSettings.bosToken)
        return try self(text: [chat.text], images: [images]).batch
    }

    /// The ids generation stops at: the tokenizer's EOS, `<|eot_id|>` and `<|end_of_text|>` when it has them.
    public var stopTokenIds: [Int] {
        let names = [tokenizerSettings.eosToken, "<|eot_id|>", "<|end_of_text|>"]
        var ids: [Int] = []
        for id in names.compactMap(tokenizer.tokenToId) where !ids.contains(id) { ids.append(id) }
        return ids
    }
}
