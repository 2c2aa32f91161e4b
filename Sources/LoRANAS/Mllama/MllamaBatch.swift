/// One batch of model inputs, with the names and shapes of transformers' `MllamaForConditionalGeneration.forward`.
///
/// B = batch, S = text length, I = images per sample, T = max_num_tiles, C = channels, H = W = image_size.
public struct MllamaBatch: Sendable {
    public var batchSize: Int, seqLen: Int
    /// (B, S) token ids; the image token is an id past the vocabulary (the embedding table has 8 extra rows).
    public var inputIds: [Int]
    /// (B, S) 1 = real token, 0 = padding; nil means all real.
    public var attentionMask: [Int]?
    /// (B, S) targets before the causal shift, −100 = ignored; nil for no loss.
    public var labels: [Int]?
    /// Images per sample I, 0 for a text-only batch.
    public var numImages: Int
    /// (B, I, T, C, H, W)
    public var pixelValues: Tensor?
    /// (B, I) 1-based index into supported_aspect_ratios, 0 = padded image slot.
    public var aspectRatioIds: [Int]?
    /// (B, I, T) 1 = real tile.
    public var aspectRatioMask: [Int]?
    /// (B, S, I, T) 1 = token s may see tile t of image i.
    public var crossAttentionMask: [Int]?

    public init(inputIds: [Int], batchSize: Int, seqLen: Int, attentionMask: [Int]? = nil, labels: [Int]? = nil,
                pixelValues: Tensor? = nil, numImages: Int = 0, aspectRatioIds: [Int]? = nil,
                aspectRatioMask: [Int]? = nil, crossAttentionMask: [Int]? = nil) {
        self.inputIds = inputIds
        self.batchSize = batchSize
        self.seqLen = seqLen
        self.attentionMask = attentionMask
        self.labels = labels
        self.pixelValues = pixelValues
        self.numImages = numImages
        self.aspectRatioIds = aspectRatioIds
        self.aspectRatioMask = aspectRatioMask
        self.crossAttentionMask = crossAttentionMask
    }

    public var hasImages: Bool { pixelValues != nil }

    /// Samples `r` of a validated batch, every per-sample array cut alike.
    func rows(_ r: Range<Int>) -> MllamaBatch {
        func cut(_ a: [Int]?) -> [Int]? {
            guard let a else { return nil }
            let per = a.count / batchSize
            return Array(a[(r.lowerBound * per)..<(r.upperBound * per)])
        }
        var out = MllamaBatch(inputIds: cut(inputIds) ?? [], batchSize: r.count, seqLen: seqLen,
                              attentionMask: cut(attentionMask), labels: cut(labels), numImages: numImages,
                              aspectRatioIds: cut(aspectRatioIds), aspectRatioMask: cut(aspectRatioMask),
                              crossAttentionMask: cut(crossAttentionMask))
        if let px = pixelValues {
            let per = px.count / batchSize
            let part = Tensor(uninitialized: [r.count] + Array(px.shape.dropFirst()))
            part.ptr.update(from: px.ptr + r.lowerBound * per, count: r.count * per)
            out.pixelValues = part
        }
        return out
    }

    /// Checks every shape and value against the model, with errors naming the argument.
    public func validate(for config: MllamaConfig) throws {
        let (b, s) = (batchSize, seqLen)
        try require(b > 0 && s > 0, "batch size and sequence length must be positive, got (\(b), \(s))")
        let rows = try Self.count([b, s], "B×S")
        try require(s <= config.text.maxPositionEmbeddings,
                    "seq_len \(s) is past max_position_embeddings (\(config.text.maxPositionEmbeddings))")
        // GEMM rows are 32-bit; the logits and their gradient alone take B·S·vocab floats twice.
        try require(rows < Int(Int32.max), "B×S = \(rows) tokens is more than one batch can hold")
        try Memory.require(Size.product([rows, config.text.vocabSize + 16 * config.text.hiddenSize, 8]),
                           for: "a batch of \(b) × \(s) tokens")
        try require(inputIds.count == rows, "input_ids has \(inputIds.count) values, expected B×S = \(rows)")
        let embeddingRows = config.text.embeddingRows
        if let bad = inputIds.first(where: { $0 < 0 || $0 >= embeddingRows }) {
            throw LoRANASError.invalidArgument(
                "input_ids contains \(bad), outside the embedding table 0..<\(embeddingRows)")
        }
        if let m = attentionMask {
            try require(m.count == rows, "attention_mask has \(m.count) values, expected \(rows)")
            try require(m.allSatisfy { $0 == 0 || $0 == 1 }, "attention_mask values must be 0 or 1")
        }
        if let l = labels {
            let vocab = config.text.vocabSize
            try require(l.count == rows, "labels has \(l.count) values, expected \(rows)")
            if let bad = l.first(where: { $0 != -100 && ($0 < 0 || $0 >= vocab) }) {
                throw LoRANASError.invalidArgument("labels contains \(bad): targets must be −100 or in 0..<\(vocab) "
                                                   + "(set −100 on image and pad tokens)")
            }
        }
        guard let px = pixelValues else {
            try require(numImages == 0 && aspectRatioIds == nil && crossAttentionMask == nil,
                        "aspect_ratio_ids / cross_attention_mask given without pixel_values")
            return
        }
        try validateImages(px, config.vision)
    }

    private func validateImages(_ px: Tensor, _ v: MllamaVisionConfig) throws {
        let (b, s, t, i) = (batchSize, seqLen, v.maxNumTiles, numImages)
        try require(i > 0, "pixel_values has no image axis")
        let expected = [b, i, t, v.numChannels, v.imageSize, v.imageSize]
        try require(px.shape == expected, "pixel_values has shape \(px.shape), expected "
                        + "(B, I, max_num_tiles, C, image_size, image_size) = \(expected)")
        try require(px.isFinite, "pixel_values contains NaN or infinity")
        guard let ar = aspectRatioIds else {
            throw LoRANASError.invalidArgument("aspect_ratio_ids is required with pixel_values")
        }
        let images = try Self.count([b, i], "B×I")
        try require(ar.count == images, "aspect_ratio_ids has \(ar.count) values, expected B×I = \(images)")
        if let bad = ar.first(where: { $0 < 0 || $0 > v.numAspectRatios }) {
            throw LoRANASError.invalidArgument("aspect_ratio_ids contains \(bad), outside 0...\(v.numAspectRatios)")
        }
        guard let am = aspectRatioMask else {
            throw LoRANASError.invalidArgument("aspect_ratio_mask is required with pixel_values")
        }
        let tiles = try Self.count([b, i, t], "B×I×T")
        try require(am.count == tiles, "aspect_ratio_mask has \(am.count) values, expected B×I×T = \(tiles)")
        // transformers' result without a cross-attention mask depends on the attention backend
        // (SDPA crops the keys), so the engine asks for it rather than guess.
        guard let cam = crossAttentionMask else {
            throw LoRANASError.invalidArgument("cross_attention_mask is required with pixel_values")
        }
        let pairs = try Self.count([b, s, i, t], "B×S×I×T")
        try require(cam.count == pairs, "cross_attention_mask has \(cam.count) values, expected B×S×I×T = \(pairs)")
    }

    /// The product of positive dimensions, or an error naming it when it overflows `Int`.
    private static func count(_ dims: [Int], _ name: String) throws -> Int {
        var p = 1
        for d in dims {
            let (r, overflow) = p.multipliedReportingOverflow(by: d)
            if overflow { throw LoRANASError.invalidArgument("\(name) = \(dims) overflows a 64-bit count") }
            p = r
        }
        return p
    }
}
