/// A LLaMA decoder layer: causal self-attention with RoPE and grouped-query heads, then the MLP.
final class TextSelfAttentionLayer {
    let q, k, v, o: LinearLayer
    let mlp: TextMLP
    let norm: String

    init(prefix: String, params: ParameterSet, grads: ParameterSet?) {
        func lin(_ n: String) -> LinearLayer {
            LinearLayer(name: prefix + "self_attn.\(n)", params: params, grads: grads, hasBias: false)
        }
        q = lin("q_proj")
        k = lin("k_proj")
        v = lin("v_proj")
        o = lin("o_proj")
        mlp = TextMLP(prefix: prefix, params: params, grads: grads)
        norm = prefix + "input_layernorm.weight"
    }

    var linears: [LinearLayer] { [q, k, v, o, mlp.gate, mlp.up, mlp.down] }

    func block(_ d: TextDims) -> AttentionBlock {
        AttentionBlock(o: o, dims: .init(b: d.b, sq: d.s, sk: d.s, nh: d.nh, nkv: d.nkv, hd: d.hd))
    }

    /// What backward reads.
    struct Saved {
        let x: Tensor                       // (B·S, H) layer input (input_layernorm(x) is computed again)
        let rstd: Tensor                    // (B·S)
        let attention: AttentionBlock.Saved // q and k after RoPE
        let mlp: TextMLP.Saved
    }

    /// x (B·S, H) → (B·S, H); with `keep`, also what backward reads.
    func forward(_ x: Tensor, _ d: TextDims, eps: Float, rope: RopeTables, mask: AttentionMask,
                 params p: ParameterSet, keep: Bool) -> (Tensor, Saved?) {
        let n = Tensor(uninitialized: x.shape), rstd = Tensor(uninitialized: [d.rows])
        RMSNorm.forward(y: n.ptr, rstd: rstd.ptr, x: x.ptr, w: p[norm].ptr, n: d.rows, c: d.h, eps: eps)
        let n16 = q.converted(n)  // q, k and v read one conversion of n in bf16 mode
        let qt = q.forward(n, converted: n16), kt = k.forward(n, converted: n16), vt = v.forward(n, converted: n16)
        Rope.forward(qt.ptr, cos: rope.cos, sin: rope.sin, rows: d.rows, seq: d.s, heads: d.nh, headDim: d.hd)
        Rope.forward(kt.ptr, cos: rope.cos, sin: rope.sin, rows: d.rows, seq: d.s, heads: d.nkv, headDim: d.hd)
        let (h, attention) = block(d).forward(q: qt, k: kt, v: vt, mask: mask, keep: keep)
        axpy(1, x.ptr, h.ptr, h.count)
        let (y, mlpSaved) = mlp.forward(h, eps: eps, params: p, keep: keep)
        axpy(1, h.ptr, y.ptr, y.count)
        guard let attention, let mlpSaved else { return (y, nil) }
        return (y, Saved(x: x, rstd: rstd, attention: attention, mlp: mlpSaved))
    }

    /// Without `needInput` (layer 0 with a frozen base) the input gradient is left unfinished.
    func backward(_ dy: Tensor, _ d: TextDims, rope: RopeTables, mask: AttentionMask, saved s: Saved,
                  params p: ParameterSet, grads: ParameterSet?, needInput: Bool = true) -> Tensor {
        let dh = dy.copy()
        mlp.backward(dy, into: dh, saved: s.mlp, params: p, grads: grads)
        let (dq, dk, dv) = block(d).backward(dh, mask: mask, s.attention)
        Rope.backward(dq.ptr, cos: rope.cos, sin: rope.sin, rows: d.rows, seq: d.s, heads: d.nh, headDim: d.hd)
        Rope.backward(dk.ptr, cos: rope.cos, sin: rope.sin, rows: d.rows, seq: d.s, heads: d.nkv, headDim: d.hd)
        let dn = needInput || grads != nil ? Tensor(zeros: dh.shape) : nil
        let n = RMSNorm.recomputed(s.x, w: p[norm].ptr, eps: s.mlp.eps)
        q.backward(dq, x: n, dx: dn)
        k.backward(dk, x: n, dx: dn)
        v.backward(dv, x: n, dx: dn)
        guard let dn else { return dh }
        RMSNorm.backward(dx: dh.ptr, dw: grads?[norm].ptr, dy: dn.ptr, x: s.x.ptr, w: p[norm].ptr, rstd: s.rstd.ptr,
                         n: d.rows, c: d.h)
        return dh
    }
}
