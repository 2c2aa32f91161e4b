import Foundation

/// How a rank choice r selects components out of the largest rank R.
public enum SliceMode: String, Sendable, Codable {
    /// Components [(R − r)/2, (R + r)/2), as the paper's code does.
    case centered
    /// Components [0, r).
    case prefix

    public func range(rank r: Int, maxRank R: Int) -> Range<Int> {
        switch self {
        case .centered: return ((R - r) / 2)..<((R - r) / 2 + r)
        case .prefix: return 0..<r
        }
    }
}

/// The LangVision-LoRA-NAS supernet on one linear layer.
///
/// A (R, in) and B (out, R) at the largest rank R of the search space, and one architecture
/// logit α per rank choice. With w = softmax(α), component j's weight is c_j = Σ w_r over the
/// choices r whose slice holds j; as in the paper's code, α weights both A's rows and B's
/// columns, so the layer computes (lora_alpha / R)·B·diag(c²)·A·x — two GEMMs whatever the
/// number of choices. `naiveForward` is the per-choice sum kept as the test oracle.
public final class SupernetAdapter: LinearAdapter {
    public let module: String
    public let space: [Int]
    public let maxRank: Int
    /// lora_alpha: the search scales by lora_alpha / R.
    public let loraAlpha: Float
    public let slices: SliceMode
    public let a: TrainableTensor, b: TrainableTensor
    /// Architecture logits, one per rank choice.
    public let logits: TrainableTensor
    /// Whether backward accumulates A and B's gradients.
    public var trainWeights = true
    /// Whether backward accumulates α's gradient.
    public var trainAlpha = true
    private var saved: (n: Int, u: Tensor, scale: [Float], c: [Float], packed: LowRank.PackedFactors?)?

    public var inFeatures: Int { a.value.shape[1] }
    public var outFeatures: Int { b.value.shape[0] }

    /// `space`: distinct positive ranks in increasing order (`SearchOptions.validate` checks them).
    public init(
        module: String, inFeatures: Int, outFeatures: Int, space: [Int], loraAlpha: Float,
        slices: SliceMode = .centered, rng: inout SplitMix64
    ) {
        self.module = module
        self.space = space
        self.loraAlpha = loraAlpha
        self.slices = slices
        maxRank = space.last ?? 1
        a = TrainableTensor(name: module + ".lora_A", value: Tensor(zeros: [maxRank, inFeatures]))
        b = TrainableTensor(name: module + ".lora_B", value: Tensor(zeros: [outFeatures, maxRank]))
        logits = TrainableTensor(name: module + ".arch_alpha", value: Tensor(zeros: [space.count]))  // uniform start
        let bound = 1 / Float(inFeatures).squareRoot()
        for i in 0..<a.value.count { a.value.ptr[i] = rng.uniform(-bound, bound) }
    }

    private init(sharing other: SupernetAdapter) {
        module = other.module
        space = other.space
        maxRank = other.maxRank
        loraAlpha = other.loraAlpha
        slices = other.slices
        a = other.a.sharingValue()
        b = other.b.sharingValue()
        logits = other.logits.sharingValue()
    }

    public var parameters: [TrainableTensor] { [a, b, logits] }

    public func shardCopy() -> LinearAdapter { SupernetAdapter(sharing: self) }

    public func copySettings(to copy: LinearAdapter, part: Int) {
        guard let copy = copy as? SupernetAdapter else { return }
        copy.train(weights: trainWeights, alpha: trainAlpha)
    }

    /// Sets which gradients backward accumulates: the search's weight step trains A and B, its
    /// architecture step trains α.
    public func train(weights: Bool, alpha: Bool) {
        trainWeights = weights
        trainAlpha = alpha
    }

    /// softmax(α)
    public var weights: [Float] {
        let l = logits.value.array
        let m = l.max() ?? 0
        let e = l.map { expf($0 - m) }
        let z = e.reduce(0, +)
        return e.map { $0 / z }
    }

    /// log softmax(α), in Double: finite for any finite α.
    public var logSoftmax: [Double] {
        let l = logits.value.array.map(Double.init)
        let m = l.max() ?? 0
        let z = l.reduce(0) { $0 + exp($1 - m) }
        return l.map { $0 - m - log(z) }
    }

    /// c_j = Σ_{r ∋ j} w_r
    func componentWeights(_ w: [Float]) -> [Float] {
        var c = [Float](repeating: 0, count: maxRank)
        for (k, r) in space.enumerated() { for j in slices.range(rank: r, maxRank: maxRank) { c[j] += w[k] } }
        return c
    }

    /// σ_j = (lora_alpha / R)·c_j²
    public var componentScale: [Float] {
        let s = loraAlpha / Float(maxRank)
        return componentWeights(weights).map { s * $0 * $0 }
    }

    /// The rank choice with the largest α (ties go to the smaller rank).
    public var derivedRank: Int {
        let l = logits.value.array
        var best = 0
        for k in l.indices where l[k] > l[best] { best = k }
        return space[best]
    }

    /// Expected LoRA parameter count under softmax(α), and its gradient with respect to α.
    public func expectedParameters() -> (value: Double, dLogits: [Double]) {
        let w = weights.map(Double.init)
        let per = space.map { Double($0 * (inFeatures + outFeatures)) }
        let e = zip(w, per).reduce(0) { $0 + $1.0 * $1.1 }
        return (e, w.indices.map { w[$0] * (per[$0] - e) })
    }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, bf16X: BF16Rows?) {
        let w = weights
        let c = componentWeights(w)
        let s = loraAlpha / Float(maxRank)
        let scale = c.map { s * $0 * $0 }
        let u = Tensor(uninitialized: [n, maxRank])  // written by the first GEMM
        let packed = LowRank.forward(
            y: y, u: u.ptr, x: x, a: a.value.ptr, b: b.value.ptr, scale: scale, n: n,
            inFeatures: inFeatures, outFeatures: outFeatures, rank: maxRank, bf16X: bf16X)
        saved = (n, u, scale, c, packed)
    }

    public func backward(dx: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int,
                         bf16DY: BF16Rows?) {
        // x holds the forward's input values (the layer may have computed them again)
        guard let sv = saved, sv.n == n else {
            preconditionFailure("supernet backward on \(module) without its forward")
        }
        var dScale = [Float](repeating: 0, count: maxRank)
        dScale.withUnsafeMutableBufferPointer { ds in
            LowRank.backward(
                dx: dx, dA: trainWeights ? a.grad.ptr : nil, dB: trainWeights ? b.grad.ptr : nil,
                dScale: trainAlpha ? ds.baseAddress! : nil, dy: dy, x: x, u: sv.u.ptr,
                a: a.value.ptr, b: b.value.ptr, scale: sv.scale, n: n,
                inFeatures: inFeatures, outFeatures: outFeatures, rank: maxRank, packed: sv.packed, bf16DY: bf16DY)
        }
        if trainAlpha { accumulateLogitGradient(dScale: dScale, c: sv.c) }
    }

    public func weightDelta() -> FoldedLowRank.Factors? {
        FoldedLowRank.Factors(a: a.value, b: b.value, scale: componentScale)
    }

    public func backward(folded factors: FoldedLowRank.Factors, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                         n: Int) {
        var dScale = [Float](repeating: 0, count: maxRank)
        dScale.withUnsafeMutableBufferPointer { ds in
            FoldedLowRank.backward(factors, dy: dy, x: x, n: n, dA: trainWeights ? a.grad.ptr : nil,
                                   dB: trainWeights ? b.grad.ptr : nil, dScale: trainAlpha ? ds.baseAddress : nil)
        }
        if trainAlpha { accumulateLogitGradient(dScale: dScale, c: componentWeights(weights)) }
    }

    /// α's gradient from σ's: σ_j = s·c_j² → dc_j = 2·s·c_j·dσ_j; dw_r = Σ_{j ∈ slice r} dc_j;
    /// dα = w ⊙ (dw − Σ w·dw).
    private func accumulateLogitGradient(dScale: [Float], c: [Float]) {
        let s = Double(loraAlpha) / Double(maxRank)
        let w = weights.map(Double.init)
        var dw = [Double](repeating: 0, count: space.count)
        for (k, r) in space.enumerated() {
            for j in slices.range(rank: r, maxRank: maxRank) { dw[k] += 2 * s * Double(c[j]) * Double(dScale[j]) }
        }
        let mean = zip(w, dw).reduce(0) { $0 + $1.0 * $1.1 }
        for k in space.indices { logits.grad.ptr[k] += Float(w[k] * (dw[k] - mean)) }
    }

    /// Σ_r w_r · (B_r·diag(c_r)·A_r)·x, one choice at a time with the same component weights:
    /// the literal definition, for tests. Adds into y.
    public func naiveForward(x: Tensor, y: Tensor) {
        let n = x.count / inFeatures
        let w = weights
        let s = loraAlpha / Float(maxRank)
        // The mixed superweight: A_mix = Σ_r w_r·mask_r ⊙ A, B_mix = Σ_r w_r·mask_r ⊙ B.
        let aMix = Tensor(zeros: a.value.shape)
        let bMix = Tensor(zeros: b.value.shape)
        for (k, r) in space.enumerated() {
            for j in slices.range(rank: r, maxRank: maxRank) {
                for i in 0..<inFeatures { aMix.ptr[j * inFeatures + i] += w[k] * a.value.ptr[j * inFeatures + i] }
                for o in 0..<outFeatures { bMix.ptr[o * maxRank + j] += w[k] * b.value.ptr[o * maxRank + j] }
            }
        }
        let t = Tensor(zeros: [n, maxRank])
        gemm(false, true, m: n, n: maxRank, k: inFeatures, a: x.ptr, b: aMix.ptr, c: t.ptr)
        gemm(false, true, m: n, n: outFeatures, k: maxRank, scale: s, a: t.ptr, b: bMix.ptr, beta: 1, c: y.ptr)
    }
}
