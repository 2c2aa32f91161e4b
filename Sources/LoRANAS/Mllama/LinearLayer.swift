/// A linear layer of the model: y = x·Wᵀ (+ b) (+ adapter(x)).
public final class LinearLayer {
    /// The module's name in the checkpoint, without ".weight"
    /// (e.g. "vision_model.transformer.layers.0.self_attn.q_proj").
    public let name: String
    public let inFeatures: Int, outFeatures: Int
    /// (out, in). In bf16 mode its memory is given back and `frozen` holds the weight: read it through
    /// `weightValues()`.
    public let weight: Tensor
    /// (out)
    public let bias: Tensor?
    /// Gradient views, present when the base weights are being trained.
    public var weightGrad: Tensor?, biasGrad: Tensor?
    public var adapter: LinearAdapter?
    /// The frozen weight as bfloat16, packed once for the bf16 GEMM (`MllamaModel.useBFloat16`); nil in float32
    /// mode.
    var bf16: PackedBF16Matrix?
    /// The last forward's weight with the adapter folded in, for its backward (float32, base frozen, and only
    /// where folding is cheaper: `FoldedLowRank.pays`).
    private(set) var folded: FoldedLowRank.Saved?

    init(name: String, params: ParameterSet, grads: ParameterSet?, hasBias: Bool) {
        self.name = name
        weight = params[name + ".weight"]
        bias = hasBias ? params[name + ".bias"] : nil
        outFeatures = weight.shape[0]
        inFeatures = weight.shape[1]
        weightGrad = grads?[name + ".weight"]
        biasGrad = hasBias ? grads?[name + ".bias"] : nil
    }

    /// x (n, in) → y (n, out). `converted`: x already rounded for the bf16 GEMM (`converted(_:)`), when layers
    /// reading the same input share it.
    public func forward(_ x: Tensor, converted: BF16Rows? = nil) -> Tensor {
        let n = x.count / inFeatures
        let y = Tensor(uninitialized: [n, outFeatures])   // the GEMM writes every element (beta = 0)
        guard let bf16 else {
            forwardFloat32(x, y, n: n)
            return y
        }
        let rows = converted ?? BF16Rows(x.ptr, m: n, k: inFeatures, kernel: bf16.kernel)
        BF16.linear(rows, w: bf16, y: y.ptr)
        if let bias { Linear.addBias(y.ptr, bias.ptr, n: n, oc: outFeatures) }
        adapter?.forward(x: x.ptr, y: y.ptr, n: n, bf16X: rows)
        return y
    }

    /// x rounded to bfloat16 for this layer's GEMM, to share among the layers that read it; nil in float32 mode.
    public func converted(_ x: Tensor) -> BF16Rows? {
        bf16.map { BF16Rows(x.ptr, m: x.count / inFeatures, k: inFeatures, kernel: $0.kernel) }
    }

    /// Accumulates dx (if given), the weight gradients (if trained) and the adapter's gradients.
    public func backward(_ dy: Tensor, x: Tensor, dx: Tensor?) {
        let n = x.count / inFeatures
        if let bf16 {  // the base is frozen in bf16 mode: only the input gradient
            let rows = BF16Rows(dy.ptr, m: n, k: outFeatures, kernel: bf16.kernel)
            if let dx { BF16.inputGradient(rows, w: bf16, dx: dx.ptr) }
            adapter?.backward(dx: dx?.ptr, dy: dy.ptr, x: x.ptr, n: n, bf16DY: rows)
            return
        }
        if let f = folded, f.n == n, let adapter {
            folded = nil
            Linear.backward(dx: dx?.ptr, dw: nil, db: nil, dy: dy.ptr, x: x.ptr, w: f.weight.ptr, n: n,
                            c: inFeatures, oc: outFeatures)
            adapter.backward(folded: f.factors, dy: dy.ptr, x: x.ptr, n: n)
            return
        }
        Linear.backward(dx: dx?.ptr, dw: weightGrad?.ptr, db: biasGrad?.ptr, dy: dy.ptr, x: x.ptr, w: weight.ptr,
                        n: n, c: inFeatures, oc: outFeatures)
        adapter?.backward(dx: dx?.ptr, dy: dy.ptr, x: x.ptr, n: n, bf16DY: nil)
    }

    /// y = x·Wᵀ (+ b) + adapter(x) in float32, with the adapter folded into W where that is cheaper.
    private func forwardFloat32(_ x: Tensor, _ y: Tensor, n: Int) {
        folded = fold(n: n)
        let w = folded?.weight ?? weight
        Linear.forward(y: y.ptr, x: x.ptr, w: w.ptr, b: bias?.ptr, n: n, c: inFeatures, oc: outFeatures)
        if folded == nil { adapter?.forward(x: x.ptr, y: y.ptr, n: n, bf16X: nil) }
    }

    /// The adapter folded into the weight for a float32 forward on n rows, when the base is frozen and folding
    /// costs less than the factored form.
    private func fold(n: Int) -> FoldedLowRank.Saved? {
        guard weightGrad == nil, biasGrad == nil, let f = adapter?.weightDelta(), FoldedLowRank.pays(n: n, f) else {
            return nil
        }
        return FoldedLowRank.Saved(n: n, weight: FoldedLowRank.weight(weight, f), factors: f)
    }

    /// The weight the layer computes with, as float32: `weight` itself, or in bf16 mode a copy unpacked from
    /// `bf16`.
    public func weightValues() -> Tensor {
        bf16?.unpacked() ?? weight
    }
}
