import Foundation

/// Shapes shared by every text layer in one forward pass.
struct TextDims {
    var b: Int, s: Int, h: Int, nh: Int, nkv: Int, hd: Int
    /// Vision tokens per sample N = I·T·L (0 for a text-only batch).
    var n: Int
    var rows: Int { b * s }
}

/// SwiGLU MLP with RMSNorm in front: y = down(silu(gate(n)) ⊙ up(n)), n = RMSNorm_post(h).
struct TextMLP {
    let gate, up, down: LinearLayer
    let norm: String

    init(prefix: String, params: ParameterSet, grads: ParameterSet?) {
        func lin(_ n: String) -> LinearLayer { LinearLayer(name: prefix + "mlp.\(n)", params: params, grads: grads, hasBias: false) }
        gate = lin("gate_proj"); up = lin("up_proj"); down = lin("down_proj")
        norm = prefix + "post_attention_layernorm.weight"
    }

    final class Cache { var h, n, rstd, g, u, m: Tensor? }

    func forward(_ h: Tensor, eps: Float, params p: ParameterSet, cache c: Cache?) -> Tensor {
        let rows = h.shape[0], width = h.shape[1]
        let n = Tensor(uninitialized: h.shape), rstd = Tensor(uninitialized: [rows])
        RMSNorm.forward(y: n.ptr, rstd: rstd.ptr, x: h.ptr, w: p[norm].ptr, n: rows, c: width, eps: eps)
        let g = gate.forward(n), u = up.forward(n)
        let m = Tensor(uninitialized: g.shape)
        SwiGLU.forward(m: m.ptr, gate: g.ptr, up: u.ptr, n: m.count)
        if let c { c.h = h; c.n = n; c.rstd = rstd; c.g = g; c.u = u; c.m = m }
        return down.forward(m)
    }

    /// Accumulates into dh the gradient flowing from the MLP output gradient dy.
    func backward(_ dy: Tensor, into dh: Tensor, cache c: Cache, params p: ParameterSet, grads: ParameterSet?) {
        let rows = dh.shape[0], width = dh.shape[1]
        let dm = Tensor(zeros: c.m!.shape)
        down.backward(dy, x: c.m!, dx: dm)
        let dg = Tensor(zeros: dm.shape), du = Tensor(zeros: dm.shape)
        SwiGLU.backward(dgate: dg.ptr, dup: du.ptr, dm: dm.ptr, gate: c.g!.ptr, up: c.u!.ptr, n: dm.count)
        let dn = Tensor(zeros: dh.shape)
        gate.backward(dg, x: c.n!, dx: dn); up.backward(du, x: c.n!, dx: dn)
        RMSNorm.backward(dx: dh.ptr, dw: grads?[norm].ptr, dy: dn.ptr, x: c.h!.ptr, w: p[norm].ptr, rstd: c.rstd!.ptr, n: rows, c: width)
    }
}

/// A LLaMA decoder layer: causal self-attention with RoPE and grouped-query heads, then the MLP.
final class TextSelfAttentionLayer {
    let q, k, v, o: LinearLayer
    let mlp: TextMLP
    let norm: String

    init(prefix: String, params: ParameterSet, grads: ParameterSet?) {
        func lin(_ n: String) -> LinearLayer { LinearLayer(name: prefix + "self_attn.\(n)", params: params, grads: grads, hasBias: false) }
        q = lin("q_proj"); k = lin("k_proj"); v = lin("v_proj"); o = lin("o_proj")
        mlp = TextMLP(prefix: prefix, params: params, grads: grads)
        norm = prefix + "input_layernorm.weight"
    }

    var linears: [LinearLayer] { [q, k, v, o, mlp.gate, mlp.up, mlp.down] }

    func block(_ d: TextDims) -> AttentionBlock { AttentionBlock(o: o, dims: .init(b: d.b, sq: d.s, sk: d.s, nh: d.nh, nkv: d.nkv, hd: d.hd)) }

    final class Cache { var x, n, rstd: Tensor?; var attention: AttentionBlock.Saved?; let mlp = TextMLP.Cache() }

    func forward(_ x: Tensor, _ d: TextDims, eps: Float, rope: (cos: [Float], sin: [Float]), mask: AttentionMask,
                 params p: ParameterSet, cache c: Cache?) -> Tensor {
        let n = Tensor(uninitialized: x.shape), rstd = Tensor(uninitialized: [d.rows])
        RMSNorm.forward(y: n.ptr, rstd: rstd.ptr, x: x.ptr, w: p[norm].ptr, n: d.rows, c: d.h, eps: eps)
        let qt = q.forward(n), kt = k.forward(n), vt = v.forward(n)
        Rope.forward(qt.ptr, cos: rope.cos, sin: rope.sin, rows: d.rows, seq: d.s, heads: d.nh, headDim: d.hd)
        Rope.forward(kt.ptr, cos: rope.cos, sin: rope.sin, rows: d.rows, seq: d.s, heads: d.nkv, headDim: d.hd)
        let (h, saved) = block(d).forward(q: qt, k: kt, v: vt, mask: mask, keep: c != nil)
        axpy(1, x.ptr, h.ptr, h.count)
        let y = mlp.forward(h, eps: eps, params: p, cache: c?.mlp)
        axpy(1, h.ptr, y.ptr, y.count)
        if let c { c.x = x; c.n = n; c.rstd = rstd; c.attention = saved }
        return y
    }

    /// Without `needInput` (layer 0 with a frozen base) the input gradient is left unfinished.
    func backward(_ dy: Tensor, _ d: TextDims, rope: (cos: [Float], sin: [Float]), mask: AttentionMask, cache c: Cache,
                  params p: ParameterSet, grads: ParameterSet?, needInput: Bool = true) -> Tensor {
        let dh = dy.copy()
        mlp.backward(dy, into: dh, cache: c.mlp, params: p, grads: grads)
        let (dq, dk, dv) = block(d).backward(dh, mask: mask, c.attention!)
        Rope.backward(dq.ptr, cos: rope.cos, sin: rope.sin, rows: d.rows, seq: d.s, heads: d.nh, headDim: d.hd)
        Rope.backward(dk.ptr, cos: rope.cos, sin: rope.sin, rows: d.rows, seq: d.s, heads: d.nkv, headDim: d.hd)
        let dn = needInput || grads != nil ? Tensor(zeros: dh.shape) : nil
        q.backward(dq, x: c.n!, dx: dn); k.backward(dk, x: c.n!, dx: dn); v.backward(dv, x: c.n!, dx: dn)
        guard let dn else { return dh }
        RMSNorm.backward(dx: dh.ptr, dw: grads?[norm].ptr, dy: dn.ptr, x: c.x!.ptr, w: p[norm].ptr, rstd: c.rstd!.ptr, n: d.rows, c: d.h)
        return dh
    }
}

/// Mllama's gated cross-attention layer (no self-attention inside): queries from text, keys and
/// values from the projected vision states, q_norm / k_norm per head, tanh gates on both branches,
/// and the MLP branch zeroed on text rows that may see no tile.
final class TextCrossAttentionLayer {
    let q, k, v, o: LinearLayer
    let mlp: TextMLP
    let norm, qNorm, kNorm, attnGate, mlpGate: String

    init(prefix: String, params: ParameterSet, grads: ParameterSet?) {
        func lin(_ n: String) -> LinearLayer { LinearLayer(name: prefix + "cross_attn.\(n)", params: params, grads: grads, hasBias: false) }
        q = lin("q_proj"); k = lin("k_proj"); v = lin("v_proj"); o = lin("o_proj")
        mlp = TextMLP(prefix: prefix, params: params, grads: grads)
        norm = prefix + "input_layernorm.weight"
        qNorm = prefix + "cross_attn.q_norm.weight"; kNorm = prefix + "cross_attn.k_norm.weight"
        attnGate = prefix + "cross_attn_attn_gate"; mlpGate = prefix + "cross_attn_mlp_gate"
    }

    var linears: [LinearLayer] { [q, k, v, o, mlp.gate, mlp.up, mlp.down] }

    func block(_ d: TextDims) -> AttentionBlock { AttentionBlock(o: o, dims: .init(b: d.b, sq: d.s, sk: d.n, nh: d.nh, nkv: d.nkv, hd: d.hd)) }

    /// q and k are the projections before q_norm / k_norm; the attention block keeps the normed ones.
    final class Cache { var x, n, rstd, q, rstdQ, k, rstdK, out, h, mlpOut: Tensor?; var attention: AttentionBlock.Saved?; let mlp = TextMLP.Cache() }

    /// cs: cross-attention states (B·N, H); rowVisible: F (B·S), 1 where the row may see some tile.
    func forward(_ x: Tensor, _ d: TextDims, cs: Tensor, rowVisible: [Float], eps: Float, mask: AttentionMask,
                 params p: ParameterSet, cache c: Cache?) -> Tensor {
        let n = Tensor(uninitialized: x.shape), rstd = Tensor(uninitialized: [d.rows])
        RMSNorm.forward(y: n.ptr, rstd: rstd.ptr, x: x.ptr, w: p[norm].ptr, n: d.rows, c: d.h, eps: eps)
        let qt = q.forward(n), qn = Tensor(zeros: qt.shape), rstdQ = Tensor(zeros: [d.rows * d.nh])
        RMSNorm.forward(y: qn.ptr, rstd: rstdQ.ptr, x: qt.ptr, w: p[qNorm].ptr, n: d.rows * d.nh, c: d.hd, eps: eps)
        let kt = k.forward(cs), kn = Tensor(zeros: kt.shape), rstdK = Tensor(zeros: [d.b * d.n * d.nkv])
        RMSNorm.forward(y: kn.ptr, rstd: rstdK.ptr, x: kt.ptr, w: p[kNorm].ptr, n: d.b * d.n * d.nkv, c: d.hd, eps: eps)
        let (out, saved) = block(d).forward(q: qn, k: kn, v: v.forward(cs), mask: mask, keep: c != nil)
        let h = x.copy()
        TanhGate.forward(y: h.ptr, a: out.ptr, gate: p[attnGate].ptr[0], n: h.count)
        let mlpOut = mlp.forward(h, eps: eps, params: p, cache: c?.mlp)
        for r in 0..<d.rows where rowVisible[r] != 1 {
            let row = mlpOut.ptr + r * d.h
            for j in 0..<d.h { row[j] *= rowVisible[r] }
        }
        let y = h.copy()
        TanhGate.forward(y: y.ptr, a: mlpOut.ptr, gate: p[mlpGate].ptr[0], n: y.count)
        if let c {
            c.x = x; c.n = n; c.rstd = rstd; c.q = qt; c.rstdQ = rstdQ; c.k = kt; c.rstdK = rstdK
            c.attention = saved; c.out = out; c.h = h; c.mlpOut = mlpOut
        }
        return y
    }

    /// Returns dx; accumulates the cross-attention states' gradient into dcs.
    func backward(_ dy: Tensor, _ d: TextDims, cs: Tensor, dcs: Tensor?, rowVisible: [Float], mask: AttentionMask,
                  cache c: Cache, params p: ParameterSet, grads: ParameterSet?, needInput: Bool = true) -> Tensor {
        let dh = dy.copy()
        let dmlp = gatedGrad(dy, branch: c.mlpOut, gate: mlpGate, params: p, grads: grads)
        for r in 0..<d.rows where rowVisible[r] != 1 {
            let row = dmlp.ptr + r * d.h
            for j in 0..<d.h { row[j] *= rowVisible[r] }
        }
        mlp.backward(dmlp, into: dh, cache: c.mlp, params: p, grads: grads)
        let dout = gatedGrad(dh, branch: c.out, gate: attnGate, params: p, grads: grads)
        let (dqn, dkn, dv) = block(d).backward(dout, mask: mask, c.attention!)
        let dq = Tensor(zeros: dqn.shape), dk = Tensor(zeros: dkn.shape)
        RMSNorm.backward(dx: dq.ptr, dw: grads?[qNorm].ptr, dy: dqn.ptr, x: c.q!.ptr, w: p[qNorm].ptr, rstd: c.rstdQ!.ptr, n: d.rows * d.nh, c: d.hd)
        RMSNorm.backward(dx: dk.ptr, dw: grads?[kNorm].ptr, dy: dkn.ptr, x: c.k!.ptr, w: p[kNorm].ptr, rstd: c.rstdK!.ptr, n: d.b * d.n * d.nkv, c: d.hd)
        k.backward(dk, x: cs, dx: dcs); v.backward(dv, x: cs, dx: dcs)
        let dn = needInput || grads != nil ? Tensor(zeros: dh.shape) : nil
        q.backward(dq, x: c.n!, dx: dn)
        guard let dn else { return dh }
        RMSNorm.backward(dx: dh.ptr, dw: grads?[norm].ptr, dy: dn.ptr, x: c.x!.ptr, w: p[norm].ptr, rstd: c.rstd!.ptr, n: d.rows, c: d.h)
        return dh
    }
}
