/// One self-attention layer's keys and values for every position generated so far.
struct SelfAttentionKV {
    let k: Tensor                           // (B, capacity, nkv·hd) after RoPE
    let v: Tensor                           // (B, capacity, nkv·hd)
}

/// One cross-attention layer's keys and values, computed once from the vision states in prefill.
struct CrossAttentionKV {
    let k: Tensor                           // (B·N, nkv·hd) after k_norm
    let v: Tensor                           // (B·N, nkv·hd)
}

/// What a decoder layer keeps between generation steps.
enum LayerKV {
    case selfAttention(SelfAttentionKV)
    case crossAttention(CrossAttentionKV)
    /// A cross-attention layer of a prompt without images: transformers skips it at every step.
    case skipped
}

/// The cross-attention mask rows of the tokens a step feeds (transformers' mask after
/// `_prepare_cross_attention_mask`): which vision tokens each row sees, and whether its MLP branch runs.
struct CrossRows {
    let allowed: [UInt8]                    // (B, Sq, N) 1 = the row may attend the vision token
    let rowVisible: [Float]                 // (B·Sq) 0 = the row sees no tile (its MLP branch is zeroed)
}

/// The text decoder's state between generation steps: every layer's keys and values, which cached
/// positions are real tokens, and the next RoPE position of each sample.
final class KVCache {
    let batchSize: Int
    /// Positions the self-attention caches hold: prompt length + new tokens.
    let capacity: Int
    var layers: [LayerKV]
    /// Positions filled so far (the same for every sample: left padding keeps rows aligned).
    private(set) var length = 0
    /// (B, capacity) 1 = a real token, 0 = left padding.
    private(set) var keyValid: [UInt8]
    /// (B) the RoPE position of each sample's next token (transformers: cumsum(attention_mask) − 1).
    private(set) var nextPosition: [Int]

    /// Allocates the self-attention caches; cross-attention layers start `.skipped` and are filled in prefill.
    init(config t: MllamaTextConfig, batchSize b: Int, capacity: Int) {
        batchSize = b
        self.capacity = capacity
        let width = t.numKeyValueHeads * t.headDim
        layers = (0..<t.numHiddenLayers).map { j in
            t.crossAttentionLayers.contains(j)
                ? .skipped
                : .selfAttention(SelfAttentionKV(k: Tensor(zeros: [b, capacity, width]),
                                                 v: Tensor(zeros: [b, capacity, width])))
        }
        keyValid = [UInt8](repeating: 0, count: b * capacity)
        nextPosition = [Int](repeating: 0, count: b)
    }

    /// Bytes the caches of a generation take (self-attention K/V at `capacity`, cross-attention K/V over
    /// N vision tokens), or nil on overflow.
    static func bytes(_ t: MllamaTextConfig, batchSize b: Int, capacity: Int, visionTokens n: Int) -> Int? {
        let cross = t.crossAttentionLayers.count, width = t.numKeyValueHeads * t.headDim
        guard let selfKV = Size.product([t.numHiddenLayers - cross, 2, b, capacity, width, 4]),
              let crossKV = Size.product([cross, 2, b, n, width, 4]) else { return nil }
        let (sum, overflow) = selfKV.addingReportingOverflow(crossKV)
        return overflow ? nil : sum
    }

    /// Records `sq` new positions per sample: `valid` (B, Sq) flags them real (1) or padding (0).
    /// Returns the RoPE position of each new row (B·Sq): real tokens count on, padding gets 0.
    func append(valid: [UInt8], sq: Int) -> [Int] {
        var positions = [Int](repeating: 0, count: batchSize * sq)
        for b in 0..<batchSize {
            for i in 0..<sq where valid[b * sq + i] != 0 {
                keyValid[b * capacity + length + i] = 1
                positions[b * sq + i] = nextPosition[b]
                nextPosition[b] += 1
            }
        }
        length += sq
        return positions
    }

    /// The self-attention mask of the last `sq` positions appended: (B, Sq, length) allowed pairs,
    /// causal over the cache and hiding padding keys (transformers' causal mask with attention_mask).
    func selfMask(sq: Int) -> [UInt8] {
        let sk = length, start = length - sq
        var allowed = [UInt8](repeating: 0, count: batchSize * sq * sk)
        for b in 0..<batchSize {
            for i in 0..<sq {
                let row = (b * sq + i) * sk
                for j in 0...(start + i) { allowed[row + j] = keyValid[b * capacity + j] }
            }
        }
        return allowed
    }
}
