/// SwiGLU MLP with RMSNorm in front: y = down(silu(gate(n)) ⊙ up(n)), n = RMSNorm_post(h).
/// Rows are B·S text positions of width H; I is the intermediate size.
struct TextMLP {
    let gate, up, down: LinearLayer
    let norm: String

    init(prefix: String, params: ParameterSet, grads: ParameterSet?) {
        func lin(_ n: String) -> LinearLayer {
            LinearLayer(name: prefix + "mlp.\(n)", params: params, grads: grads, hasBias: false)
        }
        gate = lin("gate_proj")
        up = lin("up_proj")
        down = lin("down_proj")
        norm = prefix + "post_attention_layernorm.weight"
    }

    /// What backward reads. RMSNorm(h) and silu(g) ⊙ u are computed again there (cheap, the same bits) rather
    /// than kept through the whole step.
    struct Saved {
        let h: Tensor                       // (B·S, H) input
        let rstd: Tensor                    // (B·S)
        let g, u: KeptActivation            // (B·S, I) gate and up projections (bfloat16 in the bf16 mode)
        let eps: Float
    }

    /// h (B·S, H) → (B·S, H); with `keep`, also what backward reads.
    func forward(_ h: Tensor, eps: Float, params p: ParameterSet, keep: Bool) -> (Tensor, Saved?) {
        let rows = h.shape[0], width = h.shape[1]
        let n = Tensor(uninitialized: h.shape), rstd = Tensor(uninitialized: [rows])
        RMSNorm.forward(y: n.ptr, rstd: rstd.ptr, x: h.ptr, w: p[norm].ptr, n: rows, c: width, eps: eps)
        let n16 = gate.converted(n)  // gate and up read one conversion of n in bf16 mode
        let g = gate.forward(n, converted: n16), u = up.forward(n, converted: n16)
        let y = down.forward(product(g, u))
        guard keep else { return (y, nil) }
        let bf16 = gate.bf16 != nil
        return (y, Saved(h: h, rstd: rstd, g: KeptActivation(g, rounded: bf16), u: KeptActivation(u, rounded: bf16),
                         eps: eps))
    }

    private func product(_ g: Tensor, _ u: Tensor) -> Tensor {
        let m = Tensor(uninitialized: g.shape)
        SwiGLU.forward(m: m.ptr, gate: g.ptr, up: u.ptr, n: m.count)
        return m
    }

    /// Accumulates into dh the gradient flowing from the MLP output gradient dy.
    func backward(_ dy: Tensor, into dh: Tensor, saved s: Saved, params p: ParameterSet, grads: ParameterSet?) {
        let rows = dh.shape[0], width = dh.shape[1]
        let g = s.g.tensor(), u = s.u.tensor()
        let dm = Tensor(zeros: g.shape)
        down.backward(dy, x: product(g, u), dx: dm)
        let dg = Tensor(zeros: dm.shape), du = Tensor(zeros: dm.shape)
        SwiGLU.backward(dgate: dg.ptr, dup: du.ptr, dm: dm.ptr, gate: g.ptr, up: u.ptr, n: dm.count)
        let n = RMSNorm.recomputed(s.h, w: p[norm].ptr, eps: s.eps)
        let dn = Tensor(zeros: dh.shape)
        gate.backward(dg, x: n, dx: dn)
        up.backward(du, x: n, dx: dn)
        RMSNorm.backward(dx: dh.ptr, dw: grads?[norm].ptr, dy: dn.ptr, x: s.h.ptr, w: p[norm].ptr, rstd: s.rstd.ptr,
                         n: rows, c: width)
    }
}
