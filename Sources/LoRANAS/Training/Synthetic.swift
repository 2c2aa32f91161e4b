import Foundation

extension Dataset {
    /// A learnable synthetic task for tests, benchmarks and smoke runs: each sample has one image
    /// whose brightness class c ∈ {0, 1, 2, 3} sets a step, and the text counts up from a random
    /// start by that step (mod vocab). Predicting the text well needs the image, so both the
    /// vision and text paths matter. The first token is the image token.
    public static func synthetic(config: MllamaConfig, count: Int, seqLen: Int, seed: UInt64, withImages: Bool = true)
        throws -> Dataset
    {
        try require(count > 0 && seqLen >= 3, "synthetic data needs count > 0 and seq_len ≥ 3")
        let d = Dataset(config: config)
        var rng = SplitMix64(seed: seed)
        let v = config.vision, t = v.maxNumTiles, vocab = config.text.vocabSize
        let tile = v.numChannels * v.imageSize * v.imageSize
        for _ in 0..<count {
            let cls = Int(rng.next() % 4), start = Int(rng.next() % UInt64(vocab))
            var ids = [config.imageTokenIndex < config.text.embeddingRows ? config.imageTokenIndex : vocab]
            for j in 0..<(seqLen - 1) { ids.append((start + j * (cls + 1)) % vocab) }
            var labels = ids
            labels[0] = CrossEntropy.ignoreIndex
            guard withImages else {
                ids[0] = start
                labels[0] = CrossEntropy.ignoreIndex
                try d.append(Sample(inputIds: ids, labels: labels))
                continue
            }
            let px = Tensor(zeros: [1, t, v.numChannels, v.imageSize, v.imageSize])
            let tiles = 1 + Int(rng.next() % UInt64(t))
            let level = Float(cls) / 1.5 - 1
            for i in 0..<(tiles * tile) { px.ptr[i] = level + rng.uniform(-0.3, 0.3) }
            let arId = min(
                v.numAspectRatios, tiles == 1 ? 1 : tiles == 2 ? 2 : tiles == 3 ? 3 : min(6, v.numAspectRatios))
            let arMask = (0..<t).map { $0 < tiles ? 1 : 0 }
            let cam = (0..<seqLen).flatMap { _ in arMask }
            try d.append(
                Sample(
                    inputIds: ids, labels: labels, numImages: 1, pixelValues: px, aspectRatioIds: [arId],
                    aspectRatioMask: arMask, crossAttentionMask: cam))
        }
        return d
    }
}
