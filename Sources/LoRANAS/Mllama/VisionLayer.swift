/// One vision encoder layer: pre-LayerNorm attention and GELU MLP, each on a residual branch,
/// tanh-gated in the global encoder. Rows are N = BI·T·Lp tokens of width D.
final class VisionLayer {
    let q, k, v, o, fc1, fc2: LinearLayer
    // Parameter names.
    let ln1w, ln1b, ln2w, ln2b: String
    let gateAttn, gateFFN: String?
    let eps: Float
    let heads: Int
    let width: Int

    init(prefix: String, gated: Bool, config: MllamaVisionConfig, params: ParameterSet, grads: ParameterSet?) {
        func lin(_ n: String, bias: Bool) -> LinearLayer {
            LinearLayer(name: prefix + n, params: params, grads: grads, hasBias: bias)
        }
        q = lin("self_attn.q_proj", bias: false)
        k = lin("self_attn.k_proj", bias: false)
        v = lin("self_attn.v_proj", bias: false)
        o = lin("self_attn.o_proj", bias: false)
        fc1 = lin("mlp.fc1", bias: true)
        fc2 = lin("mlp.fc2", bias: true)
        ln1w = prefix + "input_layernorm.weight"
        ln1b = prefix + "input_layernorm.bias"
        ln2w = prefix + "post_attention_layernorm.weight"
        ln2b = prefix + "post_attention_layernorm.bias"
        gateAttn = gated ? prefix + "gate_attn" : nil
        gateFFN = gated ? prefix + "gate_ffn" : nil
        eps = config.normEps
        heads = config.attentionHeads
        width = config.hiddenSize
    }

    static func specs(prefix: String, gated: Bool, _ c: MllamaVisionConfig) -> [(String, [Int])] {
        let d = c.hiddenSize, i = c.intermediateSize
        var s: [(String, [Int])] = ["q", "k", "v", "o"].map { (prefix + "self_attn.\($0)_proj.weight", [d, d]) }
        s += [(prefix + "mlp.fc1.weight", [i, d]), (prefix + "mlp.fc1.bias", [i]),
              (prefix + "mlp.fc2.weight", [d, i]), (prefix + "mlp.fc2.bias", [d]),
              (prefix + "input_layernorm.weight", [d]), (prefix + "input_layernorm.bias", [d]),
              (prefix + "post_attention_layernorm.weight", [d]), (prefix + "post_attention_layernorm.bias", [d])]
        if gated { s += [(prefix + "gate_attn", [1]), (prefix + "gate_ffn", [1])] }
        return s
    }

    var linears: [LinearLayer] { [q, k, v, o, fc1, fc2] }

    /// What backward reads. The two LayerNorms' outputs and GELU(f1) are computed again there (cheap, the same
    /// bits) rather than kept through the whole step.
    struct Saved {
        let x: Tensor                       // (N, D) layer input
        let mean1, rstd1: Tensor            // (N)
        let attention: AttentionBlock.Saved
        let h: Tensor                       // (N, D) x + attention branch
        let mean2, rstd2: Tensor            // (N)
        let f1: KeptActivation              // (N, I) fc1 output (bfloat16 in the bf16 mode)
        /// The two branches before their tanh gates, which the gates' gradients read; gated layers only.
        let branches: GatedBranches?
    }

    struct GatedBranches {
        let attention: Tensor               // (N, D) o(attention)
        let mlp: Tensor                     // (N, D) fc2 output
    }

    func dims(images: Int, tokens: Int) -> Attention.Dims {
        Attention.Dims(b: images, sq: tokens, sk: tokens, nh: heads, nkv: heads, hd: width / heads)
    }

    /// x (N, D) → y (N, D); with `keep`, also what backward reads.
    func forward(_ x: Tensor, images: Int, tokens: Int, mask: AttentionMask, params p: ParameterSet,
                 keep: Bool) -> (Tensor, Saved?) {
        let n = images * tokens, d = width
        let ln1 = Tensor(uninitialized: [n, d]), mean1 = Tensor(uninitialized: [n]), rstd1 = Tensor(uninitialized: [n])
        LayerNorm.forward(y: ln1.ptr, mean: mean1.ptr, rstd: rstd1.ptr, x: x.ptr, w: p[ln1w].ptr, b: p[ln1b].ptr,
                          n: n, c: d, eps: eps)
        let block = AttentionBlock(o: o, dims: dims(images: images, tokens: tokens))
        let x16 = q.converted(ln1)  // q, k and v read one conversion of ln1 in bf16 mode
        let (ot, attention) = block.forward(q: q.forward(ln1, converted: x16), k: k.forward(ln1, converted: x16),
                                            v: v.forward(ln1, converted: x16), mask: mask, keep: keep)
        let h = x.copy()
        TanhGate.forward(y: h.ptr, a: ot.ptr, gate: gateAttn.map { p[$0].ptr[0] } ?? .infinity, n: n * d)
        let ln2 = Tensor(uninitialized: [n, d]), mean2 = Tensor(uninitialized: [n]), rstd2 = Tensor(uninitialized: [n])
        LayerNorm.forward(y: ln2.ptr, mean: mean2.ptr, rstd: rstd2.ptr, x: h.ptr, w: p[ln2w].ptr, b: p[ln2b].ptr,
                          n: n, c: d, eps: eps)
        let f1 = fc1.forward(ln2)
        let g = Tensor(uninitialized: f1.shape)
        GELU.forward(y: g.ptr, x: f1.ptr, n: g.count)
        let f2 = fc2.forward(g)
        let y = h.copy()
        TanhGate.forward(y: y.ptr, a: f2.ptr, gate: gateFFN.map { p[$0].ptr[0] } ?? .infinity, n: n * d)
        let saved = attention.map {
            Saved(x: x, mean1: mean1, rstd1: rstd1, attention: $0, h: h, mean2: mean2, rstd2: rstd2,
                  f1: KeptActivation(f1, rounded: fc1.bf16 != nil),
                  branches: gateAttn == nil ? nil : GatedBranches(attention: ot, mlp: f2))
        }
        return (y, saved)
    }

    /// dy → dx; accumulates parameter gradients into `grads` (when training the base) and the adapters.
    /// Without `needInput` (nothing below trains) the input gradient is not finished: the result is
    /// only meaningful when it is needed.
    func backward(_ dy: Tensor, images: Int, tokens: Int, mask: AttentionMask, saved s: Saved,
                  params p: ParameterSet, grads: ParameterSet?, needInput: Bool = true) -> Tensor {
        let n = images * tokens, d = width
        // MLP branch: y = h + tanh(gf)·fc2(gelu(fc1(LN2(h))))
        let dh = dy.copy()
        let df2 = ungated(dy, gate: gateFFN, branch: s.branches?.mlp, params: p, grads: grads)
        let f1 = s.f1.tensor()
        let g = Tensor(uninitialized: f1.shape), slope = Tensor(uninitialized: f1.shape)
        GELU.forwardWithSlope(y: g.ptr, slope: slope.ptr, x: f1.ptr, n: g.count)
        let dg = Tensor(zeros: g.shape)
        fc2.backward(df2, x: g, dx: dg)
        let df1 = Tensor(uninitialized: f1.shape)
        GELU.backward(dx: df1.ptr, dy: dg.ptr, slope: slope.ptr, n: df1.count)
        let dln2 = Tensor(zeros: [n, d])
        fc1.backward(df1, x: LayerNorm.recomputed(s.h, w: p[ln2w].ptr, b: p[ln2b].ptr, eps: eps), dx: dln2)
        LayerNorm.backward(dx: dh.ptr, dw: grads?[ln2w].ptr, db: grads?[ln2b].ptr, dy: dln2.ptr, x: s.h.ptr,
                           w: p[ln2w].ptr, mean: s.mean2.ptr, rstd: s.rstd2.ptr, n: n, c: d)
        // Attention branch: h = x + tanh(ga)·o(attn(LN1(x)))
        let dout = ungated(dh, gate: gateAttn, branch: s.branches?.attention, params: p, grads: grads)
        let block = AttentionBlock(o: o, dims: dims(images: images, tokens: tokens))
        let (dq, dk, dv) = block.backward(dout, mask: mask, s.attention)
        let dln1 = needInput || grads != nil ? Tensor(zeros: [n, d]) : nil
        let ln1 = LayerNorm.recomputed(s.x, w: p[ln1w].ptr, b: p[ln1b].ptr, eps: eps)
        q.backward(dq, x: ln1, dx: dln1)
        k.backward(dk, x: ln1, dx: dln1)
        v.backward(dv, x: ln1, dx: dln1)
        guard let dln1 else { return dh }
        LayerNorm.backward(dx: dh.ptr, dw: grads?[ln1w].ptr, db: grads?[ln1b].ptr, dy: dln1.ptr, x: s.x.ptr,
                           w: p[ln1w].ptr, mean: s.mean1.ptr, rstd: s.rstd1.ptr, n: n, c: d)
        return dh
    }

    /// The gradient of a branch from that of its output: `gatedGrad` in the global encoder, dy itself
    /// in the local one (which has neither gates nor kept branches).
    private func ungated(_ dy: Tensor, gate: String?, branch: Tensor?, params: ParameterSet,
                         grads: ParameterSet?) -> Tensor {
        guard let gate, let branch else { return dy }
        return gatedGrad(dy, branch: branch, gate: gate, params: params, grads: grads)
    }
}

/// For y = x + tanh(g)·a: returns ∂L/∂a = tanh(g)·dy and accumulates ∂L/∂g.
func gatedGrad(_ dy: Tensor, branch a: Tensor, gate: String, params: ParameterSet, grads: ParameterSet?) -> Tensor {
    let g = params[gate].ptr[0]
    let da = Tensor(zeros: dy.shape)
    let dg = TanhGate.backward(da: da.ptr, dy: dy.ptr, a: a.ptr, gate: g, n: dy.count)
    if let grads { grads[gate].ptr[0] += dg }
    return da
}
