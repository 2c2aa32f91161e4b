import Foundation

/// One generation's model state: the prompt, the KV cache, and the cross-attention rows of the tokens
/// still to come. `prefill` runs the vision tower and the prompt once; each `decode` feeds one token per
/// sample and reads the cache, so no step recomputes the prompt.
final class GenerationSession {
    let model: MllamaModel
    let prompt: MllamaBatch
    let cache: KVCache
    private let invFreq: [Float]
    /// N, vision tokens per sample (0 without images).
    private let visionTokens: Int
    /// Each sample's last prompt row of the cross-attention mask, which transformers repeats for
    /// every generated token; nil without images.
    private var decodeRows: CrossRows?

    /// Checks the prompt (left padding only) and reserves a cache for `maxNewTokens` more positions.
    init(model: MllamaModel, prompt: MllamaBatch, maxNewTokens: Int) throws {
        try prompt.validate(for: model.config)
        try Self.requireLeftPadding(prompt)
        let t = model.config.text, v = model.config.vision, (b, s) = (prompt.batchSize, prompt.seqLen)
        let n = prompt.hasImages ? prompt.numImages * v.maxNumTiles * v.tokensPerTile : 0
        let capacity = s + maxNewTokens
        let cacheBytes = KVCache.bytes(t, batchSize: b, capacity: capacity, visionTokens: n)
        try Memory.require(cacheBytes.flatMap { c in Size.product([b, s, s]).map { $0 + c } },
                           for: "the KV cache of \(b) × \(capacity) positions")
        self.model = model
        self.prompt = prompt
        visionTokens = n
        invFreq = Rope.inverseFrequencies(headDim: t.headDim, theta: t.ropeTheta, llama3: t.ropeScaling)
        cache = KVCache(config: t, batchSize: b, capacity: capacity)
    }

    /// transformers generates from left-padded prompts only: each sample's padding (attention_mask 0)
    /// must come before its tokens, and its last token must be real.
    private static func requireLeftPadding(_ p: MllamaBatch) throws {
        guard let mask = p.attentionMask else { return }
        for b in 0..<p.batchSize {
            let row = mask[(b * p.seqLen)..<((b + 1) * p.seqLen)]
            let firstReal = row.firstIndex(of: 1) ?? row.endIndex
            try require(firstReal < row.endIndex, "prompt \(b) has no real token (attention_mask is all 0)")
            try require(row[firstReal...].allSatisfy { $0 == 1 },
                        "prompt \(b) is not left-padded: generation needs the padding (attention_mask 0) before "
                            + "the tokens, as transformers requires for batched generation")
        }
    }

    /// Runs the vision tower once, fills the cross-attention caches and runs the whole prompt:
    /// → the next-token logits (B, V) of each sample.
    func prefill() throws -> Tensor {
        let (b, s) = (prompt.batchSize, prompt.seqLen)
        var rows: CrossRows?
        if let images = try model.encodeImages(prompt, keep: false) {
            model.decoder.fillCrossCache(cache, states: images.cross.states, dims(sq: s), params: model.params)
            rows = CrossRows(allowed: images.cross.allowed, rowVisible: images.cross.rowVisible)
            decodeRows = lastPromptRows()
        }
        let valid = prompt.attentionMask.map { $0.map { UInt8($0) } } ?? [UInt8](repeating: 1, count: b * s)
        return run(ids: prompt.inputIds, valid: valid, sq: s, cross: rows)
    }

    /// Feeds one token per sample (B) → the next-token logits (B, V).
    func decode(_ tokens: [Int]) -> Tensor {
        run(ids: tokens, valid: [UInt8](repeating: 1, count: prompt.batchSize), sq: 1, cross: decodeRows)
    }

    private func dims(sq: Int) -> TextDims {
        let t = model.config.text
        return TextDims(b: prompt.batchSize, s: sq, h: t.hiddenSize, nh: t.numAttentionHeads,
                        nkv: t.numKeyValueHeads, hd: t.headDim, n: visionTokens)
    }

    /// The cross-attention mask rows for generated tokens: each sample's last prompt row.
    private func lastPromptRows() -> CrossRows? {
        guard let cam = prompt.crossAttentionMask else { return nil }
        let (b, s, it) = (prompt.batchSize, prompt.seqLen, prompt.numImages * model.config.vision.maxNumTiles)
        var last: [Int] = []
        last.reserveCapacity(b * it)
        for i in 0..<b { last += cam[((i * s + s - 1) * it)..<((i * s + s) * it)] }
        let (allowed, visible) = model.crossAttentionMask(last, batchSize: b, seqLen: 1, images: prompt.numImages)
        return CrossRows(allowed: allowed, rowVisible: visible)
    }

    /// One cached step over `sq` new tokens per sample → the logits (B, V) of each sample's last new row.
    private func run(ids: [Int], valid: [UInt8], sq: Int, cross: CrossRows?) -> Tensor {
        let positions = cache.append(valid: valid, sq: sq)
        let d = dims(sq: sq)
        let step = CachedStep(d: d, start: cache.length - sq, rope: ropeRows(positions),
                              selfAllowed: cache.selfMask(sq: sq), cross: cross)
        let z = model.decoder.step(ids: ids, step, cache: cache, params: model.params)
        let last = Tensor(uninitialized: [d.b, d.h])
        for i in 0..<d.b { (last.ptr + i * d.h).update(from: z.ptr + (i * sq + sq - 1) * d.h, count: d.h) }
        return model.lmHead.forward(last)
    }

    /// cos and sin (rows, hd/2) at each row's position, as `Rope.tables` computes them.
    private func ropeRows(_ positions: [Int]) -> RopeTables {
        let half = invFreq.count
        var c = [Float](repeating: 0, count: positions.count * half), s = c
        for (r, p) in positions.enumerated() {
            for k in 0..<half {
                let angle = Float(p) * invFreq[k]
                c[r * half + k] = cosf(angle)
                s[r * half + k] = sinf(angle)
            }
        }
        return (c, s)
    }
}
