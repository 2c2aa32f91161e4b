import Foundation

/// One training example without the batch axis, with transformers' argument names:
/// input_ids (S), attention_mask (S), labels (S), pixel_values (I, T, C, H, W),
/// aspect_ratio_ids (I), aspect_ratio_mask (I, T), cross_attention_mask (S, I, T).
public struct Sample: Sendable {
    public var inputIds: [Int]
    public var attentionMask: [Int]?
    public var labels: [Int]?
    public var numImages: Int
    public var pixelValues: Tensor?
    public var aspectRatioIds: [Int]?
    public var aspectRatioMask: [Int]?
    public var crossAttentionMask: [Int]?

    public init(
        inputIds: [Int], attentionMask: [Int]? = nil, labels: [Int]? = nil, numImages: Int = 0,
        pixelValues: Tensor? = nil,
        aspectRatioIds: [Int]? = nil, aspectRatioMask: [Int]? = nil, crossAttentionMask: [Int]? = nil
    ) {
        self.inputIds = inputIds
        self.attentionMask = attentionMask
        self.labels = labels
        self.numImages = numImages
        self.pixelValues = pixelValues
        self.aspectRatioIds = aspectRatioIds
        self.aspectRatioMask = aspectRatioMask
        self.crossAttentionMask = crossAttentionMask
    }

    public var length: Int { inputIds.count }

    /// The sample in a batch of one (`batch.batchSize` must be 1): the inverse of `asBatch`.
    public init(batchOfOne b: MllamaBatch) throws {
        try require(b.batchSize == 1, "a sample is a batch of one, got batch_size \(b.batchSize)")
        self.init(
            inputIds: b.inputIds, attentionMask: b.attentionMask, labels: b.labels, numImages: b.numImages,
            pixelValues: b.pixelValues.map { $0.reshaped(Array($0.shape.dropFirst())) },
            aspectRatioIds: b.aspectRatioIds, aspectRatioMask: b.aspectRatioMask,
            crossAttentionMask: b.crossAttentionMask)
    }

    /// The sample as a batch of one; `validate` on it checks every field.
    var asBatch: MllamaBatch {
        var b = MllamaBatch(
            inputIds: inputIds, batchSize: 1, seqLen: inputIds.count, attentionMask: attentionMask, labels: labels)
        if let px = pixelValues {
            b.pixelValues = px.reshaped([1] + px.shape)
            b.numImages = numImages
            b.aspectRatioIds = aspectRatioIds
            b.aspectRatioMask = aspectRatioMask
            b.crossAttentionMask = crossAttentionMask
        }
        return b
    }
}

/// A list of samples checked against one model config, with the collation that pads them into batches.
public final class Dataset: @unchecked Sendable {
    public let config: MllamaConfig
    public private(set) var samples: [Sample] = []
    private let lock = NSLock()

    public init(config: MllamaConfig) { self.config = config }

    public var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return samples.count
    }

    /// Adds a sample after checking its shapes and values against the model.
    /// A sample must have a target: a label other than -100 after the first position (position
    /// j predicts label j + 1, so the first label is never a target). A sample without one would
    /// make a batch of its own with no loss, and stop every run that draws it.
    public func append(_ s: Sample) throws {
        let index = count
        guard let labels = s.labels else { throw LoRANASError.invalidArgument("sample \(index) has no labels") }
        try s.asBatch.validate(for: config)
        guard labels.dropFirst().contains(where: { $0 != CrossEntropy.ignoreIndex }) else {
            throw LoRANASError.invalidArgument(
                "sample \(index) has no target tokens: every label after the first is -100, so it cannot train or "
                    + "be evaluated; drop it or label its answer")
        }
        lock.lock()
        samples.append(s)
        lock.unlock()
    }

    /// Pads `indices`' samples into one batch: text on the right (pad id, attention 0, label −100),
    /// and image slots up to the batch's largest count (zero pixels, aspect-ratio id 0, only tile 0
    /// marked, as the processor pads them). A batch where no sample has an image is text-only.
    public func batch(_ indices: [Int]) -> MllamaBatch {
        lock.lock()
        let items = indices.map { samples[$0] }
        lock.unlock()
        let s = items.map(\.length).max() ?? 0
        var batch = collateText(items, seqLen: s)
        let imgs = items.map(\.numImages).max() ?? 0
        if imgs > 0 { collateImages(items, seqLen: s, images: imgs, into: &batch) }
        return batch
    }

    /// Text padded on the right: pad id, attention 0, label −100.
    private func collateText(_ items: [Sample], seqLen s: Int) -> MllamaBatch {
        let b = items.count
        var ids = [Int](repeating: config.text.padTokenId ?? 0, count: b * s)
        var mask = [Int](repeating: 0, count: b * s)
        var labels = [Int](repeating: CrossEntropy.ignoreIndex, count: b * s)
        for (i, x) in items.enumerated() {
            for j in 0..<x.length {
                ids[i * s + j] = x.inputIds[j]
                mask[i * s + j] = x.attentionMask?[j] ?? 1
                labels[i * s + j] = x.labels?[j] ?? CrossEntropy.ignoreIndex
            }
        }
        return MllamaBatch(inputIds: ids, batchSize: b, seqLen: s, attentionMask: mask, labels: labels)
    }

    /// Image slots up to `images` per sample: a sample's own images, then empty slots (zero
    /// pixels, aspect-ratio id 0, only tile 0 marked, as the processor pads them).
    private func collateImages(_ items: [Sample], seqLen s: Int, images imgs: Int, into batch: inout MllamaBatch) {
        let v = config.vision
        let t = v.maxNumTiles
        let tileSize = v.numChannels * v.imageSize * v.imageSize
        let b = items.count
        let px = Tensor(zeros: [b, imgs, t, v.numChannels, v.imageSize, v.imageSize])
        var ar = [Int](repeating: 0, count: b * imgs)
        var am = [Int](repeating: 0, count: b * imgs * t)
        var cam = [Int](repeating: 0, count: b * s * imgs * t)
        for (i, x) in items.enumerated() {
            for k in x.numImages..<imgs { am[(i * imgs + k) * t] = 1 }
            // `append` checked that a sample with images has every image field.
            guard x.numImages > 0, let pixels = x.pixelValues, let ids = x.aspectRatioIds,
                let mask = x.aspectRatioMask, let cross = x.crossAttentionMask
            else { continue }
            (px.ptr + i * imgs * t * tileSize).update(from: pixels.ptr, count: x.numImages * t * tileSize)
            for k in 0..<x.numImages {
                ar[i * imgs + k] = ids[k]
                for tile in 0..<t { am[(i * imgs + k) * t + tile] = mask[k * t + tile] }
            }
            for j in 0..<x.length {
                for k in 0..<x.numImages {
                    let from = (j * x.numImages + k) * t
                    let to = ((i * s + j) * imgs + k) * t
                    for tile in 0..<t { cam[to + tile] = cross[from + tile] }
                }
            }
        }
        batch.pixelValues = px
        batch.numImages = imgs
        batch.aspectRatioIds = ar
        batch.aspectRatioMask = am
        batch.crossAttentionMask = cam
    }

    /// Splits off a validation set: `fraction` of the samples, chosen by a seeded shuffle.
    public func split(validationFraction fraction: Double, seed: UInt64) throws -> (train: Dataset, validation: Dataset)
    {
        try require(fraction > 0 && fraction < 1, "validation fraction must be in (0, 1)")
        var rng = SplitMix64(seed: seed)
        let order = rng.permutation(count)
        let nVal = max(1, Int((Double(count) * fraction).rounded()))
        try require(nVal < count, "not enough samples to split")
        let train = Dataset(config: config), val = Dataset(config: config)
        for (k, i) in order.enumerated() { (k < nVal ? val : train).samples.append(samples[i]) }
        return (train, val)
    }
}
