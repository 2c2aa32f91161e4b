/// Scaled dot-product attention followed by the output projection: the part every Mllama
/// attention layer (vision, text self, text cross) shares, with what its backward reads.
struct AttentionBlock {
    let o: LinearLayer
    let dims: Attention.Dims

    /// The inputs and outputs backward needs: q, k, v as attention saw them, the row log-sum-exp,
    /// the probabilities when small enough to keep, and the projection's input; all but the log-sum-exp kept in
    /// bfloat16 in the bf16 mode.
    struct Saved {
        let q: KeptActivation               // (B·Sq, nh·hd)
        let k, v: KeptActivation            // (B·Sk, nkv·hd)
        let lse: Tensor                     // (B, nh, Sq)
        let attn: KeptActivation            // (B·Sq, nh·hd) attention output, o's input
        /// (B, nh, Sq, Sk), only while it fits in `Attention.keptProbabilityLimit`; else recomputed.
        let probs: KeptActivation?
    }

    /// o(attention(q, k, v)); with `keep`, also what backward needs.
    func forward(q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask, keep: Bool) -> (Tensor, Saved?) {
        let d = dims
        let attn = Tensor(uninitialized: [d.b * d.sq, d.nh * d.hd]), lse = Tensor(uninitialized: [d.b, d.nh, d.sq])
        let probs = keep ? Attention.probsBuffer(d) : nil
        Attention.forward(out: attn.ptr, lse: lse.ptr, q: q.ptr, k: k.ptr, v: v.ptr, mask: mask, d, probs: probs?.ptr)
        let y = o.forward(attn)
        guard keep else { return (y, nil) }
        let bf16 = o.bf16 != nil
        return (y, Saved(q: KeptActivation(q, rounded: bf16), k: KeptActivation(k, rounded: bf16),
                         v: KeptActivation(v, rounded: bf16), lse: lse, attn: KeptActivation(attn, rounded: bf16),
                         probs: probs.map { KeptActivation($0, rounded: bf16) }))
    }

    /// The gradient of the projection's output → gradients of q, k and v (and o's parameters).
    func backward(_ dout: Tensor, mask: AttentionMask, _ s: Saved) -> (dq: Tensor, dk: Tensor, dv: Tensor) {
        let dattn = Tensor(zeros: s.attn.shape)
        o.backward(dout, x: s.attn.tensor(), dx: dattn)
        let q = s.q.tensor(), k = s.k.tensor(), v = s.v.tensor()
        let dq = Tensor(zeros: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
        let probs = s.probs?.tensor()
        Attention.backward(dq: dq.ptr, dk: dk.ptr, dv: dv.ptr, dout: dattn.ptr, q: q.ptr, k: k.ptr, v: v.ptr,
                           lse: s.lse.ptr, mask: mask, dims, probs: probs.map { UnsafePointer($0.ptr) })
        return (dq, dk, dv)
    }
}
