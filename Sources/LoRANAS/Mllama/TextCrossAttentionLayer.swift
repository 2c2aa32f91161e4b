/// The vision side of a batch as every cross-attention layer sees it.
struct CrossAttentionInputs {
    let states: Tensor                      // (B·N, H) projected vision tokens, N = I·T·L per sample
    let allowed: [UInt8]                    // (B, S, N) 1 = the text row may attend the vision token
    let rowVisible: [Float]                 // (B·S) 1 where the row may see some tile, else 0
}

/// Mllama's gated cross-attention layer (no self-attention inside): queries from text, keys and
/// values from the projected vision states, q_norm / k_norm per head, tanh gates on both branches,
/// and the MLP branch zeroed on text rows that may see no tile.
final class TextCrossAttentionLayer {
    let q, k, v, o: LinearLayer
    let mlp: TextMLP
    let norm, qNorm, kNorm, attnGate, mlpGate: String

    init(prefix: String, params: ParameterSet, grads: ParameterSet?) {
        func lin(_ n: String) -> LinearLayer {
            LinearLayer(name: prefix + "cross_attn.\(n)", params: params, grads: grads, hasBias: false)
        }
        q = lin("q_proj")
        k = lin("k_proj")
        v = lin("v_proj")
        o = lin("o_proj")
        mlp = TextMLP(prefix: prefix, params: params, grads: grads)
        norm = prefix + "input_layernorm.weight"
        qNorm = prefix + "cross_attn.q_norm.weight"
        kNorm = prefix + "cross_attn.k_norm.weight"
        attnGate = prefix + "cross_attn_attn_gate"
        mlpGate = prefix + "cross_attn_mlp_gate"
    }

    var linears: [LinearLayer] { [q, k, v, o, mlp.gate, mlp.up, mlp.down] }

    func block(_ d: TextDims) -> AttentionBlock {
        AttentionBlock(o: o, dims: .init(b: d.b, sq: d.s, sk: d.n, nh: d.nh, nkv: d.nkv, hd: d.hd))
    }

    /// What backward reads. The attention block keeps q and k after q_norm / k_norm.
    struct Saved {
        let x: Tensor                       // (B·S, H) layer input
        let n: Tensor                       // (B·S, H) input_layernorm(x)
        let rstd: Tensor                    // (B·S)
        let q: Tensor                       // (B·S, nh·hd) q_proj(n), before q_norm
        let rstdQ: Tensor                   // (B·S·nh)
        let k: Tensor                       // (B·N, nkv·hd) k_proj(states), before k_norm
        let rstdK: Tensor                   // (B·N·nkv)
        let attention: AttentionBlock.Saved
        let out: Tensor                     // (B·S, H) attention branch before its gate
        let mlpOut: Tensor                  // (B·S, H) MLP branch after row masking, before its gate
        let mlp: TextMLP.Saved
        let cross: CrossAttentionInputs
    }

    /// x (B·S, H) → (B·S, H); with `keep`, also what backward reads.
    func forward(_ x: Tensor, _ d: TextDims, cross: CrossAttentionInputs, eps: Float, mask: AttentionMask,
                 params p: ParameterSet, keep: Bool) -> (Tensor, Saved?) {
        let cs = cross.states
        let n = Tensor(uninitialized: x.shape), rstd = Tensor(uninitialized: [d.rows])
        RMSNorm.forward(y: n.ptr, rstd: rstd.ptr, x: x.ptr, w: p[norm].ptr, n: d.rows, c: d.h, eps: eps)
        let qt = q.forward(n), qn = Tensor(zeros: qt.shape), rstdQ = Tensor(zeros: [d.rows * d.nh])
        RMSNorm.forward(y: qn.ptr, rstd: rstdQ.ptr, x: qt.ptr, w: p[qNorm].ptr, n: d.rows * d.nh, c: d.hd, eps: eps)
        let kt = k.forward(cs), kn = Tensor(zeros: kt.shape), rstdK = Tensor(zeros: [d.b * d.n * d.nkv])
        RMSNorm.forward(y: kn.ptr, rstd: rstdK.ptr, x: kt.ptr, w: p[kNorm].ptr, n: d.b * d.n * d.nkv, c: d.hd, eps: eps)
        let (out, attention) = block(d).forward(q: qn, k: kn, v: v.forward(cs), mask: mask, keep: keep)
        let (y, mlpOut, mlpSaved) = gatedResiduals(x, attention: out, d, rowVisible: cross.rowVisible, eps: eps,
                                                   params: p, keep: keep)
        guard let attention, let mlpSaved else { return (y, nil) }
        return (y, Saved(x: x, n: n, rstd: rstd, q: qt, rstdQ: rstdQ, k: kt, rstdK: rstdK, attention: attention,
                         out: out, mlpOut: mlpOut, mlp: mlpSaved, cross: cross))
    }

    /// Returns dx; accumulates the cross-attention states' gradient into dcs (B·N, H).
    func backward(_ dy: Tensor, _ d: TextDims, dcs: Tensor?, mask: AttentionMask, saved s: Saved,
                  params p: ParameterSet, grads: ParameterSet?, needInput: Bool = true) -> Tensor {
        let dh = dy.copy()
        let dmlp = gatedGrad(dy, branch: s.mlpOut, gate: mlpGate, params: p, grads: grads)
        maskRows(dmlp, d, rowVisible: s.cross.rowVisible)
        mlp.backward(dmlp, into: dh, saved: s.mlp, params: p, grads: grads)
        let dout = gatedGrad(dh, branch: s.out, gate: attnGate, params: p, grads: grads)
        let (dqn, dkn, dv) = block(d).backward(dout, mask: mask, s.attention)
        let dq = Tensor(zeros: dqn.shape), dk = Tensor(zeros: dkn.shape)
        RMSNorm.backward(dx: dq.ptr, dw: grads?[qNorm].ptr, dy: dqn.ptr, x: s.q.ptr, w: p[qNorm].ptr,
                         rstd: s.rstdQ.ptr, n: d.rows * d.nh, c: d.hd)
        RMSNorm.backward(dx: dk.ptr, dw: grads?[kNorm].ptr, dy: dkn.ptr, x: s.k.ptr, w: p[kNorm].ptr,
                         rstd: s.rstdK.ptr, n: d.b * d.n * d.nkv, c: d.hd)
        k.backward(dk, x: s.cross.states, dx: dcs)
        v.backward(dv, x: s.cross.states, dx: dcs)
        let dn = needInput || grads != nil ? Tensor(zeros: dh.shape) : nil
        q.backward(dq, x: s.n, dx: dn)
        guard let dn else { return dh }
        RMSNorm.backward(dx: dh.ptr, dw: grads?[norm].ptr, dy: dn.ptr, x: s.x.ptr, w: p[norm].ptr, rstd: s.rstd.ptr,
                         n: d.rows, c: d.h)
        return dh
    }

    /// The layer's two tanh-gated residual branches after attention: h = x + tanh(g_attn)·out, then
    /// y = h + tanh(g_mlp)·mlp(h) with the MLP's rows masked where no tile is visible; also returns the masked
    /// MLP output and the MLP's cache, which backward reads. Training and the cached generation step share it.
    func gatedResiduals(_ x: Tensor, attention out: Tensor, _ d: TextDims, rowVisible: [Float], eps: Float,
                        params p: ParameterSet, keep: Bool) -> (y: Tensor, mlpOut: Tensor, mlp: TextMLP.Saved?) {
        let h = x.copy()
        TanhGate.forward(y: h.ptr, a: out.ptr, gate: p[attnGate].ptr[0], n: h.count)
        let (mlpOut, mlpSaved) = mlp.forward(h, eps: eps, params: p, keep: keep)
        maskRows(mlpOut, d, rowVisible: rowVisible)
        let y = h.copy()
        TanhGate.forward(y: y.ptr, a: mlpOut.ptr, gate: p[mlpGate].ptr[0], n: y.count)
        return (y, mlpOut, mlpSaved)
    }

    /// Scales each row r of t (B·S, H) by rowVisible[r] (transformers' full_text_row_masked_out_mask).
    func maskRows(_ t: Tensor, _ d: TextDims, rowVisible: [Float]) {
        for r in 0..<d.rows where rowVisible[r] != 1 {
            let row = t.ptr + r * d.h
            for j in 0..<d.h { row[j] *= rowVisible[r] }
        }
    }
}
