extension MllamaConfig {
    /// Upper bounds on config.json's sizes. Each is far above every released Mllama (11B and 90B:
    /// vocabulary 128256, hidden ≤ 8192, 100 layers, 4 tiles of 560 px). Together they keep every
    /// shape and shape product of `MllamaModel.specs` below 2⁶⁰, so `validate` can add them up with
    /// overflow checks, and a corrupt file gets an error naming its field instead of a trap.
    enum Limit {
        static let vocabSize = 1 << 28
        static let hiddenSize = 1 << 17
        static let intermediateSize = 1 << 20
        static let layers = 1 << 12
        static let numChannels = 64
        static let imageSize = 1 << 13
        static let maxNumTiles = 64
        static let aspectRatios = 1 << 10
        static let maxPositionEmbeddings = 1 << 31
    }

    /// Every size within its limit, the cross-field rules transformers would otherwise hit as shape
    /// errors deep in the forward, and a parameter count that fits in `Int` (checked arithmetic).
    public func validate() throws {
        try validateVision()
        try validateText()
        try check(text.rmsNormEps > 0 && vision.normEps > 0, "norm eps must be positive")
        _ = try ModelFootprint(self)
    }

    private func validateVision() throws {
        let v = vision, s = "vision_config."
        try requireRange(s + "hidden_size", v.hiddenSize, 1...Limit.hiddenSize)
        try requireRange(s + "num_hidden_layers", v.numHiddenLayers, 1...Limit.layers)
        try requireRange(s + "num_global_layers", v.numGlobalLayers, 0...Limit.layers)
        try requireRange(s + "attention_heads", v.attentionHeads, 1...v.hiddenSize)
        try requireRange(s + "num_channels", v.numChannels, 1...Limit.numChannels)
        try requireRange(s + "intermediate_size", v.intermediateSize, 1...Limit.intermediateSize)
        try requireRange(s + "image_size", v.imageSize, 1...Limit.imageSize)
        try requireRange(s + "patch_size", v.patchSize, 1...v.imageSize)
        try requireRange(s + "max_num_tiles", v.maxNumTiles, 1...Limit.maxNumTiles)
        try requireRange("the number of " + s + "supported_aspect_ratios", v.numAspectRatios, 1...Limit.aspectRatios)
        try check(v.hiddenSize % v.attentionHeads == 0,
                    "vision hidden_size \(v.hiddenSize) is not a multiple of attention_heads \(v.attentionHeads)")
        try check(v.imageSize % v.patchSize == 0,
                    "vision image_size \(v.imageSize) is not a multiple of patch_size \(v.patchSize)")
        let indices = v.intermediateLayersIndices
        try check(indices.count <= Limit.layers && indices.allSatisfy { $0 >= 0 && $0 < v.numHiddenLayers },
                    "intermediate_layers_indices \(indices) must lie in 0..<\(v.numHiddenLayers)")
        let expected = v.hiddenSize * (indices.count + 1)
        try check(v.visionOutputDim == expected,
                    "vision_output_dim \(v.visionOutputDim) must equal hidden_size × "
                        + "(len(intermediate_layers_indices) + 1) = \(expected)")
    }

    private func validateText() throws {
        let t = text, s = "text_config."
        try requireRange(s + "vocab_size", t.vocabSize, 1...Limit.vocabSize)
        try requireRange(s + "hidden_size", t.hiddenSize, 1...Limit.hiddenSize)
        try requireRange(s + "num_hidden_layers", t.numHiddenLayers, 1...Limit.layers)
        try requireRange(s + "num_attention_heads", t.numAttentionHeads, 1...t.hiddenSize)
        try requireRange(s + "num_key_value_heads", t.numKeyValueHeads, 1...t.numAttentionHeads)
        try requireRange(s + "intermediate_size", t.intermediateSize, 1...Limit.intermediateSize)
        try requireRange(s + "max_position_embeddings", t.maxPositionEmbeddings, 1...Limit.maxPositionEmbeddings)
        try check(t.hiddenSize % t.numAttentionHeads == 0,
                    "text hidden_size \(t.hiddenSize) is not a multiple of num_attention_heads \(t.numAttentionHeads)")
        try check(t.headDim % 2 == 0, "text head_dim \(t.headDim) must be even for RoPE")
        try check(t.numAttentionHeads % t.numKeyValueHeads == 0,
                    "num_attention_heads \(t.numAttentionHeads) is not a multiple of "
                        + "num_key_value_heads \(t.numKeyValueHeads)")
        try check(t.crossAttentionLayers.allSatisfy { $0 >= 0 && $0 < t.numHiddenLayers },
                    "cross_attention_layers \(t.crossAttentionLayers) must lie in 0..<\(t.numHiddenLayers)")
        if let p = t.padTokenId {
            try check(p >= 0 && p < t.embeddingRows, "pad_token_id \(p) is outside the embedding table")
        }
    }

    private func check(_ ok: Bool, _ message: @autoclosure () -> String) throws {
        if !ok { throw LoRANASError.format(message()) }
    }

    private func requireRange(_ field: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        try check(range.contains(value),
                    "\(field) is \(value); loranas accepts \(range.lowerBound)...\(range.upperBound)")
    }
}
