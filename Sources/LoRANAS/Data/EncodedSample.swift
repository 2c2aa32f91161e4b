import Foundation

/// One Cauldron record made ready for the model, before pixel normalization: token ids, labels, and each image
/// as its uint8 canvas. This is what a pack stores per sample; ``MllamaSampleDecoder`` turns it into the float
/// ``Sample`` a batch is made of.
public struct EncodedSample: Sendable, Equatable {
    /// (S) token ids.
    public var inputIds: [Int32]
    /// (S) labels, −100 where ignored.
    public var labels: [Int32]
    /// The images, in the order of their `<|image|>` tokens.
    public var images: [MllamaCanvasImage]

    /// A sample from its parts.
    public init(inputIds: [Int32], labels: [Int32], images: [MllamaCanvasImage]) {
        self.inputIds = inputIds
        self.labels = labels
        self.images = images
    }

    /// S, the number of tokens.
    public var length: Int { inputIds.count }
}

/// The date a dataset's chats are rendered with: the template's own fallback when `strftime_now` is
/// undefined. It appears only in chats without images; a fixed date keeps datasets and packs reproducible.
public let datasetDateString = "26 Jul 2024"

extension MllamaProcessor {
    /// A Cauldron record and its decoded images as one training sample: the chat rendered with the published
    /// template, ids and labels (answers and their `<|eot_id|>`), images as canvases, cut to `maxLength` by
    /// ``MllamaTextProcessor/encode(chat:numTiles:maxLength:)``'s rule. nil means the cut would remove an image
    /// token or every answer: the caller skips and counts the sample.
    public func encode(record: CauldronRecord, images: [RGBImage], maxLength: Int? = nil,
                       dateString: String = datasetDateString) throws -> EncodedSample?
    {
        guard images.count == record.imageCount else {
            throw LoRANASError.invalidArgument("the record lists \(record.imageCount) images but \(images.count) "
                                                   + "were given")
        }
        let chat = try ChatFormat.render(record.messages, dateString: dateString,
                                         bosToken: tokenizerSettings.bosToken)
        let canvases = try images.map(image.canvas)
        guard let encoded = try text.encode(chat: chat, numTiles: canvases.map(\.tileCount), maxLength: maxLength)
        else { return nil }
        return EncodedSample(inputIds: encoded.inputIds.map { Int32(truncatingIfNeeded: $0) },
                             labels: encoded.labels.map { Int32(truncatingIfNeeded: $0) }, images: canvases)
    }

    /// The decoder that turns this processor's encoded samples into float samples.
    public var sampleDecoder: MllamaSampleDecoder {
        MllamaSampleDecoder(image: image, imageTokenId: text.imageTokenId)
    }
}

/// Turns an ``EncodedSample`` into the float ``Sample`` of one processor call: pixel values (I, T, 3, t, t),
/// aspect ratio ids and mask, and the cross-attention mask (S, I, T) recomputed from the ids (§2.2).
public struct MllamaSampleDecoder: Sendable {
    /// The image processor whose settings normalize the canvases.
    public let image: MllamaImageProcessor
    /// The id of `<|image|>`.
    public let imageTokenId: Int

    /// A decoder for `image`'s settings and `<|image|>` = `imageTokenId`.
    public init(image: MllamaImageProcessor, imageTokenId: Int) {
        self.image = image
        self.imageTokenId = imageTokenId
    }

    /// The float sample; its image-token count must equal its image count.
    public func sample(_ e: EncodedSample) throws -> Sample {
        let ids = e.inputIds.map(Int.init)
        var s = Sample(inputIds: ids, labels: e.labels.map(Int.init))
        guard !e.images.isEmpty else { return s }
        let t = image.settings.maxImageTiles
        let side = image.settings.tileSize
        let perImage = t * 3 * side * side
        let pixels = Tensor(zeros: [e.images.count, t, 3, side, side])
        var ratioIds: [Int] = []
        var ratioMask: [Int] = []
        for (j, canvas) in e.images.enumerated() {
            try image.tiles(canvas, into: UnsafeMutableBufferPointer(start: pixels.ptr + j * perImage, count: perImage))
            ratioIds.append(canvas.aspectRatioId)
            ratioMask += image.aspectRatioMask(canvas).map(Int.init)
        }
        let ranges = MllamaTextProcessor.imageRanges(ids, imageTokenId: imageTokenId)
        guard ranges.count == e.images.count else {
            throw LoRANASError.format("the sample has \(ranges.count) <|image|> tokens but \(e.images.count) images")
        }
        var cross = [Int](repeating: 0, count: ids.count * e.images.count * t)
        for (j, r) in ranges.enumerated() {
            for pos in r {
                for tile in 0..<e.images[j].tileCount { cross[(pos * e.images.count + j) * t + tile] = 1 }
            }
        }
        s.numImages = e.images.count
        s.pixelValues = pixels
        s.aspectRatioIds = ratioIds
        s.aspectRatioMask = ratioMask
        s.crossAttentionMask = cross
        return s
    }
}
