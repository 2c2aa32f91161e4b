/// Padding samples into one batch, as transformers' processor pads them.
enum Collation {
    /// Pads `items` into one batch: text on the right (pad id, attention 0, label −100), and image slots up to
    /// the batch's largest count (zero pixels, aspect-ratio id 0, only tile 0 marked, as the processor pads
    /// them). A batch where no sample has an image is text-only.
    static func batch(_ items: [Sample], config: MllamaConfig) -> MllamaBatch {
        let s = items.map(\.length).max() ?? 0
        var batch = collateText(items, seqLen: s, padTokenId: config.text.padTokenId ?? 0)
        let imgs = items.map(\.numImages).max() ?? 0
        if imgs > 0 { collateImages(items, seqLen: s, images: imgs, vision: config.vision, into: &batch) }
        return batch
    }

    /// Text padded on the right: pad id, attention 0, label −100.
    static func collateText(_ items: [Sample], seqLen s: Int, padTokenId: Int) -> MllamaBatch {
        let b = items.count
        var ids = [Int](repeating: padTokenId, count: b * s)
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
    static func collateImages(
        _ items: [Sample], seqLen s: Int, images imgs: Int, vision v: MllamaVisionConfig, into batch: inout MllamaBatch
    ) {
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
}
