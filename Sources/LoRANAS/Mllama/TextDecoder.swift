/// cos and sin tables (S, hd/2) of the rotary embedding for positions 0..<S.
typealias RopeTables = (cos: [Float], sin: [Float])

/// Shapes shared by every text layer in one forward pass.
struct TextDims {
    var b: Int, s: Int, h: Int, nh: Int, nkv: Int, hd: Int
    /// Vision tokens per sample N = I·T·L (0 for a text-only batch).
    var n: Int
    var rows: Int { b * s }
}

/// transformers' `MllamaTextModel`: the token embedding, the decoder layers (self-attention, or gated
/// cross-attention at `cross_attention_layers`) and the final RMSNorm. Rows are B·S positions of width H.
struct TextDecoder {
    enum Layer {
        case selfAttention(TextSelfAttentionLayer)
        case crossAttention(TextCrossAttentionLayer)
    }

    /// What one layer kept for backward, with the layer that reads it.
    enum LayerCache {
        case selfAttention(TextSelfAttentionLayer, TextSelfAttentionLayer.Saved)
        case crossAttention(TextCrossAttentionLayer, TextCrossAttentionLayer.Saved)
        /// A cross-attention layer in a batch without images: transformers skips it entirely.
        case skipped
    }

    let config: MllamaTextConfig
    let layers: [Layer]
    static let prefix = "language_model.model."
    static let embedding = prefix + "embed_tokens.weight"
    static let finalNorm = prefix + "norm.weight"

    init(config: MllamaTextConfig, params: ParameterSet) {
        self.config = config
        layers = (0..<config.numHiddenLayers).map { j in
            let prefix = Self.prefix + "layers.\(j)."
            return config.crossAttentionLayers.contains(j)
                ? .crossAttention(TextCrossAttentionLayer(prefix: prefix, params: params, grads: nil))
                : .selfAttention(TextSelfAttentionLayer(prefix: prefix, params: params, grads: nil))
        }
    }

    /// The embedding table, every layer's parameters and the final norm, in checkpoint order.
    static func specs(_ t: MllamaTextConfig) -> [(String, [Int])] {
        let h = t.hiddenSize, hd = t.headDim, q = t.numAttentionHeads * hd, kv = t.numKeyValueHeads * hd
        var s: [(String, [Int])] = [(embedding, [t.embeddingRows, h])]
        for j in 0..<t.numHiddenLayers {
            let lp = prefix + "layers.\(j).", cross = t.crossAttentionLayers.contains(j)
            let a = lp + (cross ? "cross_attn." : "self_attn.")
            s += [(a + "q_proj.weight", [q, h]), (a + "k_proj.weight", [kv, h]),
                  (a + "v_proj.weight", [kv, h]), (a + "o_proj.weight", [h, q])]
            if cross {
                s += [(a + "q_norm.weight", [hd]), (a + "k_norm.weight", [hd]),
                      (lp + "cross_attn_attn_gate", [1]), (lp + "cross_attn_mlp_gate", [1])]
            }
            s += [(lp + "mlp.gate_proj.weight", [t.intermediateSize, h]),
                  (lp + "mlp.up_proj.weight", [t.intermediateSize, h]),
                  (lp + "mlp.down_proj.weight", [h, t.intermediateSize]),
                  (lp + "input_layernorm.weight", [h]), (lp + "post_attention_layernorm.weight", [h])]
        }
        return s + [(finalNorm, [h])]
    }

    var linears: [LinearLayer] {
        layers.flatMap { layer -> [LinearLayer] in
            switch layer {
            case .selfAttention(let l): return l.linears
            case .crossAttention(let l): return l.linears
            }
        }
    }

    /// What backward reads.
    struct Saved {
        let layers: [LayerCache]
        let x: Tensor                       // (B·S, H) input of the final norm
        let normed: Tensor                  // (B·S, H) the output, the LM head's input
        let rstd: Tensor                    // (B·S)
    }

    /// ids (B·S) → the normed hidden states (B·S, H); with `keep`, also what backward reads.
    /// `cross` is nil for a text-only batch.
    func forward(ids: [Int], _ d: TextDims, rope: RopeTables, selfMask: AttentionMask, crossMask: AttentionMask,
                 cross: CrossAttentionInputs?, params p: ParameterSet, keep: Bool) -> (Tensor, Saved?) {
        let eps = config.rmsNormEps
        var x = Tensor(zeros: [d.rows, d.h])
        Embedding.forward(out: x.ptr, ids: ids, table: p[Self.embedding].ptr, n: d.rows, c: d.h)
        var caches: [LayerCache] = []
        for layer in layers {
            switch layer {
            case .selfAttention(let l):
                let (y, saved) = l.forward(x, d, eps: eps, rope: rope, mask: selfMask, params: p, keep: keep)
                x = y
                if let saved { caches.append(.selfAttention(l, saved)) }
            case .crossAttention(let l):
                guard let cross else {
                    if keep { caches.append(.skipped) }
                    continue
                }
                let (y, saved) = l.forward(x, d, cross: cross, eps: eps, mask: crossMask, params: p, keep: keep)
                x = y
                if let saved { caches.append(.crossAttention(l, saved)) }
            }
        }
        let z = Tensor(zeros: x.shape), rstd = Tensor(zeros: [d.rows])
        RMSNorm.forward(y: z.ptr, rstd: rstd.ptr, x: x.ptr, w: p[Self.finalNorm].ptr, n: d.rows, c: d.h, eps: eps)
        return (z, keep ? Saved(layers: caches, x: x, normed: z, rstd: rstd) : nil)
    }

    /// dz (B·S, H), the gradient of the normed output → the input embeddings' gradient (B·S, H).
    /// Accumulates into `grads` (embedding table included) when the base trains, into the adapters,
    /// and the vision states' gradient into dcs. Without `grads` the result is unfinished: nothing
    /// below layer 0 trains.
    func backward(_ dz: Tensor, saved s: Saved, ids: [Int], _ d: TextDims, rope: RopeTables, selfMask: AttentionMask,
                  crossMask: AttentionMask, dcs: Tensor?, params p: ParameterSet, grads: ParameterSet?) -> Tensor {
        var dx = Tensor(zeros: [d.rows, d.h])
        RMSNorm.backward(dx: dx.ptr, dw: grads?[Self.finalNorm].ptr, dy: dz.ptr, x: s.x.ptr, w: p[Self.finalNorm].ptr,
                         rstd: s.rstd.ptr, n: d.rows, c: d.h)
        for (j, cache) in s.layers.enumerated().reversed() {
            // The embeddings' gradient is wanted only for full training (and the activation report that comes with it).
            let needInput = j > 0 || grads != nil
            switch cache {
            case .selfAttention(let l, let saved):
                dx = l.backward(dx, d, rope: rope, mask: selfMask, saved: saved, params: p, grads: grads,
                                needInput: needInput)
            case .crossAttention(let l, let saved):
                dx = l.backward(dx, d, dcs: dcs, mask: crossMask, saved: saved, params: p, grads: grads,
                                needInput: needInput)
            case .skipped:
                continue
            }
        }
        if let grads {
            Embedding.backward(dtable: grads[Self.embedding].ptr, dout: dx.ptr, ids: ids, n: d.rows, c: d.h,
                               paddingIdx: config.padTokenId)
        }
        return dx
    }
}
