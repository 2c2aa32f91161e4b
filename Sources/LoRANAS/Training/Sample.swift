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
