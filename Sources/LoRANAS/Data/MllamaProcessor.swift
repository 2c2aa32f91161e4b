import Foundation

/// The outputs of transformers' `MllamaProcessor(text=..., images=..., padding=True, return_tensors="np")`.
public struct MllamaProcessorOutput: Sendable {
    /// input_ids, attention_mask and cross_attention_mask (B, S, I_max, T).
    public var text: MllamaTextBatch
    /// (B, I_max, T, 3, t, t) float32; empty slots and unused tiles are 0. Empty when no sample has an image
    /// (transformers then returns no image keys).
    public var pixelValues: [Float]
    /// (B, I_max): 1 + the arrangement index, 0 for empty slots.
    public var aspectRatioIds: [Int64]
    /// (B, I_max, T): tile 0 of every slot is 1, then the image's tiles.
    public var aspectRatioMask: [Int64]
    /// t, the side of a tile in `pixelValues`.
    public var tileSize: Int
}

/// transformers' `MllamaProcessor` for a model directory: the tokenizer, the text rules, the image processor and
/// the chat format, with the settings the directory gives (mllama-processor.md).
public struct MllamaProcessor: Sendable {
    /// The text path (BOS rule, padding, cross-attention mask, labels).
    public let text: MllamaTextProcessor
    /// The image path.
    public let image: MllamaImageProcessor
    /// The special tokens, padding side and chat template source of tokenizer_config.json.
    public let tokenizerSettings: MllamaTokenizerSettings

    /// The tokenizer.
    public var tokenizer: Tokenizer { text.tokenizer }

    /// A processor from its parts.
    public init(tokenizer: Tokenizer, image: MllamaImageProcessorSettings,
                tokenizerSettings: MllamaTokenizerSettings = .init(), padTokenId: Int) throws
    {
        self.image = try MllamaImageProcessor(settings: image)
        text = try MllamaTextProcessor(tokenizer: tokenizer, padTokenId: padTokenId,
                                       paddingSide: tokenizerSettings.paddingSide,
                                       maxImageTiles: image.maxImageTiles)
        self.tokenizerSettings = tokenizerSettings
    }

    /// The processor of a Hugging Face model directory: `tokenizer.json`, `tokenizer_config.json` (special tokens,
    /// padding side), the image settings (``MllamaImageProcessorSettings/load(directory:)``) and the chat
    /// template, which must be the published one when present. The pad id is the tokenizer's pad token, else
    /// config.json's `text_config.pad_token_id`; neither is an error.
    public static func load(directory: URL) throws -> MllamaProcessor {
        let tokenizer = try Tokenizer(path: directory.appendingPathComponent("tokenizer.json").path)
        let settings = try MllamaTokenizerSettings.load(directory: directory)
        for token in [settings.bosToken, settings.eosToken] where tokenizer.tokenToId(token) == nil {
            throw LoRANASError.format("tokenizer_config.json names \(token), which tokenizer.json does not have")
        }
        let pad = try padTokenId(settings, tokenizer: tokenizer, directory: directory)
        return try MllamaProcessor(tokenizer: tokenizer, image: .load(directory: directory),
                                   tokenizerSettings: settings, padTokenId: pad)
    }

    private static func padTokenId(_ settings: MllamaTokenizerSettings, tokenizer: Tokenizer, directory: URL) throws
        -> Int
    {
        if let token = settings.padToken {
            guard let id = tokenizer.tokenToId(token) else {
                throw LoRANASError.format("tokenizer_config.json pad_token \(token) is not in tokenizer.json")
            }
            return id
        }
        let config = directory.appendingPathComponent("config.json").path
        if FileManager.default.fileExists(atPath: config),
            let id = try MllamaConfig(contentsOf: config).text.padTokenId
        {
            return id
        }
        throw LoRANASError.format("no pad token: tokenizer_config.json has no pad_token and config.json no "
                                      + "text_config.pad_token_id")
    }

    /// `MllamaProcessor(text=texts, images=images, padding=True)`: `images[b]` are sample b's images, in the
    /// order of its `<|image|>` tokens (a sample may have none).
    public func callAsFunction(text texts: [String], images: [[RGBImage]]) throws -> MllamaProcessorOutput {
        guard images.count == texts.count else {
            throw LoRANASError.invalidArgument("\(texts.count) texts but images for \(images.count) samples")
        }
        let canvases = try images.map { try $0.map(image.canvas) }
        let batch = try text.encode(texts, numTiles: canvases.map { $0.map(\.tileCount) })
        var out = MllamaProcessorOutput(text: batch, pixelValues: [], aspectRatioIds: [], aspectRatioMask: [],
                                        tileSize: image.settings.tileSize)
        if batch.maxImages > 0 { try packImages(canvases, slots: batch.maxImages, into: &out) }
        return out
    }

    /// §1.9: every sample gets `slots` image slots; empty ones are zero pixels, id 0 and only tile 0 marked.
    private func packImages(_ canvases: [[MllamaCanvasImage]], slots: Int, into out: inout MllamaProcessorOutput)
        throws
    {
        let tiles = image.settings.maxImageTiles
        let side = image.settings.tileSize
        let perImage = tiles * 3 * side * side
        let count = try Size.product([canvases.count, slots, perImage])
            .orThrow(LoRANASError.invalidArgument("pixel_values of \(canvases.count)×\(slots) images is too large"))
        try Memory.require(Size.product([count, MemoryLayout<Float>.size]), for: "pixel_values")
        out.pixelValues = [Float](repeating: 0, count: count)
        out.aspectRatioIds = [Int64](repeating: 0, count: canvases.count * slots)
        out.aspectRatioMask = [Int64](repeating: 0, count: canvases.count * slots * tiles)
        for slot in 0..<(canvases.count * slots) { out.aspectRatioMask[slot * tiles] = 1 }
        for (b, sample) in canvases.enumerated() {
            for (j, canvas) in sample.enumerated() {
                let slot = b * slots + j
                try out.pixelValues.withUnsafeMutableBufferPointer { all in
                    try image.tiles(canvas, into: UnsafeMutableBufferPointer(rebasing: all[(slot * perImage)...]
                        .prefix(perImage)))
                }
                out.aspectRatioIds[slot] = Int64(canvas.aspectRatioId)
                for (k, v) in image.aspectRatioMask(canvas).enumerated() { out.aspectRatioMask[slot * tiles + k] = v }
            }
        }
    }
}

extension Optional {
    /// The wrapped value, or `error` thrown.
    func orThrow(_ error: @autoclosure () -> Error) throws -> Wrapped {
        guard let value = self else { throw error() }
        return value
    }
}
