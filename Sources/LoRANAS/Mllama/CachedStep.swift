/// What every decoder layer reads in one cached inference step over Sq new tokens per sample
/// (the whole prompt in prefill, one token per decode step).
struct CachedStep {
    let d: TextDims                         // s = Sq new rows per sample, n = N vision tokens
    /// Cache position of the first new token (the same for every sample).
    let start: Int
    let rope: RopeTables                    // (B·Sq, hd/2) cos and sin at each new row's own position
    let selfAllowed: [UInt8]                // (B, Sq, start + Sq)
    /// nil for a prompt without images (every cross-attention layer is skipped).
    let cross: CrossRows?

    /// Writes the new rows' keys and values kt, vt (B·Sq, nkv·hd) into the cache at [start, start + Sq).
    func store(_ kt: Tensor, _ vt: Tensor, into kv: SelfAttentionKV) {
        let width = kt.shape[1], cap = kv.k.shape[1]
        for b in 0..<d.b {
            let src = b * d.s * width, dst = (b * cap + start) * width
            (kv.k.ptr + dst).update(from: kt.ptr + src, count: d.s * width)
            (kv.v.ptr + dst).update(from: vt.ptr + src, count: d.s * width)
        }
    }

    /// Attention of the new queries q (B·Sq, nh·hd) over the cached keys and values → (B·Sq, nh·hd).
    /// One call per sample, since each sample's cache rows are `capacity` apart.
    func selfAttention(q: Tensor, kv: SelfAttentionKV) -> Tensor {
        let sk = start + d.s, qs = d.nh * d.hd, ks = d.nkv * d.hd, cap = kv.k.shape[1]
        let out = Tensor(uninitialized: [d.rows, qs]), lse = Tensor(uninitialized: [d.nh, d.s])
        let dims = Attention.Dims(b: 1, sq: d.s, sk: sk, nh: d.nh, nkv: d.nkv, hd: d.hd)
        selfAllowed.withUnsafeBufferPointer { a in
            guard let allowed = a.baseAddress else { return }
            for b in 0..<d.b {
                Attention.forward(out: out.ptr + b * d.s * qs, lse: lse.ptr, q: q.ptr + b * d.s * qs,
                                  k: kv.k.ptr + b * cap * ks, v: kv.v.ptr + b * cap * ks,
                                  mask: .dense(allowed: allowed + b * d.s * sk), dims)
            }
        }
        return out
    }
}

extension TextSelfAttentionLayer {
    /// The layer on the new rows x (B·Sq, H) → (B·Sq, H), appending their keys and values to `kv`.
    func step(_ x: Tensor, _ s: CachedStep, kv: SelfAttentionKV, eps: Float, params p: ParameterSet) -> Tensor {
        let d = s.d
        let n = Tensor(uninitialized: x.shape), rstd = Tensor(uninitialized: [d.rows])
        RMSNorm.forward(y: n.ptr, rstd: rstd.ptr, x: x.ptr, w: p[norm].ptr, n: d.rows, c: d.h, eps: eps)
        let qt = q.forward(n), kt = k.forward(n), vt = v.forward(n)
        // The tables hold one row per new token, so row r reads its own position (seq = rows).
        Rope.forward(qt.ptr, cos: s.rope.cos, sin: s.rope.sin, rows: d.rows, seq: d.rows, heads: d.nh, headDim: d.hd)
        Rope.forward(kt.ptr, cos: s.rope.cos, sin: s.rope.sin, rows: d.rows, seq: d.rows, heads: d.nkv, headDim: d.hd)
        s.store(kt, vt, into: kv)
        let h = o.forward(s.selfAttention(q: qt, kv: kv))
        axpy(1, x.ptr, h.ptr, h.count)
        let (y, _) = mlp.forward(h, eps: eps, params: p, keep: false)
        axpy(1, h.ptr, y.ptr, y.count)
        return y
    }
}

extension TextCrossAttentionLayer {
    /// k_norm(k_proj(states)) and v_proj(states) for states (B·N, H): computed once per generation.
    func keysAndValues(_ states: Tensor, _ d: TextDims, eps: Float, params p: ParameterSet) -> CrossAttentionKV {
        let kt = k.forward(states), rows = d.b * d.n * d.nkv
        let kn = Tensor(uninitialized: kt.shape), rstd = Tensor(uninitialized: [rows])
        RMSNorm.forward(y: kn.ptr, rstd: rstd.ptr, x: kt.ptr, w: p[kNorm].ptr, n: rows, c: d.hd, eps: eps)
        return CrossAttentionKV(k: kn, v: v.forward(states))
    }

    /// The layer on the new rows x (B·Sq, H) → (B·Sq, H) against the cached vision keys and values;
    /// the same arithmetic as `forward`.
    func step(_ x: Tensor, _ d: TextDims, kv: CrossAttentionKV, rows: CrossRows, eps: Float,
              params p: ParameterSet) -> Tensor {
        let n = Tensor(uninitialized: x.shape), rstd = Tensor(uninitialized: [d.rows])
        RMSNorm.forward(y: n.ptr, rstd: rstd.ptr, x: x.ptr, w: p[norm].ptr, n: d.rows, c: d.h, eps: eps)
        let qt = q.forward(n), qn = Tensor(uninitialized: qt.shape), rstdQ = Tensor(uninitialized: [d.rows * d.nh])
        RMSNorm.forward(y: qn.ptr, rstd: rstdQ.ptr, x: qt.ptr, w: p[qNorm].ptr, n: d.rows * d.nh, c: d.hd, eps: eps)
        let out = rows.allowed.withUnsafeBufferPointer { a -> Tensor in
            let mask = a.baseAddress.map { AttentionMask.dense(allowed: $0) } ?? .none
            return block(d).forward(q: qn, k: kv.k, v: kv.v, mask: mask, keep: false).0
        }
        return gatedResiduals(x, attention: out, d, rowVisible: rows.rowVisible, eps: eps, params: p, keep: false).y
    }
}

extension TextDecoder {
    /// Fills every cross-attention layer's cache from the projected vision states (B·N, H).
    func fillCrossCache(_ cache: KVCache, states: Tensor, _ d: TextDims, params p: ParameterSet) {
        for (j, layer) in layers.enumerated() {
            guard case .crossAttention(let l) = layer else { continue }
            cache.layers[j] = .crossAttention(l.keysAndValues(states, d, eps: config.rmsNormEps, params: p))
        }
    }

    /// ids (B·Sq) of the new tokens → the normed hidden states (B·Sq, H), reading and extending the cache.
    func step(ids: [Int], _ s: CachedStep, cache: KVCache, params p: ParameterSet) -> Tensor {
        let d = s.d, eps = config.rmsNormEps
        var x = Tensor(zeros: [d.rows, d.h])
        Embedding.forward(out: x.ptr, ids: ids, table: p[Self.embedding].ptr, n: d.rows, c: d.h)
        for (j, layer) in layers.enumerated() {
            switch (layer, cache.layers[j]) {
            case (.selfAttention(let l), .selfAttention(let kv)):
                x = l.step(x, s, kv: kv, eps: eps, params: p)
            case (.crossAttention(let l), .crossAttention(let kv)):
                guard let rows = s.cross else { continue }
                x = l.step(x, d, kv: kv, rows: rows, eps: eps, params: p)
            default:
                continue                    // a cross-attention layer without images is skipped
            }
        }
        let z = Tensor(uninitialized: x.shape), rstd = Tensor(uninitialized: [d.rows])
        RMSNorm.forward(y: z.ptr, rstd: rstd.ptr, x: x.ptr, w: p[Self.finalNorm].ptr, n: d.rows, c: d.h, eps: eps)
        return z
    }
}
