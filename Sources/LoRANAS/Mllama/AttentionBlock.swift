/// Scaled dot-product attention followed by the output projection: the part every Mllama
/// attention layer (vision, text self, text cross) shares, with what its backward reads.
struct AttentionBlock {
    let o: LinearLayer
    let dims: Attention.Dims

    /// The inputs and outputs backward needs: q, k, v as attention saw them, the row log-sum-exp,
    /// the probabilities when small enough to keep, and the projection's input.
    struct Saved {
        let q: Tensor                       // (B·Sq, nh·hd)
        let k, v: Tensor                    // (B·Sk, nkv·hd)
        let lse: Tensor                     // (B, nh, Sq)
        let attn: Tensor                    // (B·Sq, nh·hd) attention output, o's input
        /// (B, nh, Sq, Sk), only while it fits in `Attention.keptProbabilityLimit`; else recomputed.
        let probs: Tensor?
    }

    /// o(attention(q, k, v)); with `keep`, also what backward needs.
    func forward(q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask, keep: Bool) -> (Tensor, Saved?) {
        let d = dims
        let attn = Tensor(uninitialized: [d.b * d.sq, d.nh * d.hd]), lse = Tensor(uninitialized: [d.b, d.nh, d.sq])
        let probs = keep ? Attention.probsBuffer(d) : nil
        Attention.forward(out: attn.ptr, lse: lse.ptr, q: q.ptr, k: k.ptr, v: v.ptr, mask: mask, d, probs: probs?.ptr)
        return (o.forward(attn), keep ? Saved(q: q, k: k, v: v, lse: lse, attn: attn, probs: probs) : nil)
    }

    /// The gradient of the projection's output → gradients of q, k and v (and o's parameters).
    func backward(_ dout: Tensor, mask: AttentionMask, _ s: Saved) -> (dq: Tensor, dk: Tensor, dv: Tensor) {
        let dattn = Tensor(zeros: s.attn.shape)
        o.backward(dout, x: s.attn, dx: dattn)
        let dq = Tensor(zeros: s.q.shape), dk = Tensor(zeros: s.k.shape), dv = Tensor(zeros: s.v.shape)
        Attention.backward(dq: dq.ptr, dk: dk.ptr, dv: dv.ptr, dout: dattn.ptr, q: s.q.ptr, k: s.k.ptr, v: s.v.ptr,
                           lse: s.lse.ptr, mask: mask, dims, probs: s.probs.map { UnsafePointer($0.ptr) })
        return (dq, dk, dv)
    }
}
